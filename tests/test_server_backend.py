"""The built-in server's policy seam (``Backend`` / ``Session``) driven without a socket.

Each test feeds client octets to a ``ServerConnection``, asks the ``Session`` for the
replies to every event and sends them back through the engine, exactly as a front end
does. One test plugs a ``Session`` subclass into ``SMTPServer`` and checks the changed
reply with smtplib over 127.0.0.1.
"""

from __future__ import annotations

import base64
import mailbox
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smtpproto.server import Backend, MessageStore, Session, SMTPServer, StoredMessage
from smtpproto.server_engine.connection import ServerConnection
from smtpproto.server_engine.events import (
    PAUSED,
    MessageComplete,
    NoopReceived,
    RcptReceived,
    ServerEvent,
)
from smtpproto.server_engine.replies import mailbox_unavailable, ok
from smtpproto.server_engine.states import ServerState
from smtpproto.testing import run_server
from smtpproto.wire.need_data import NEED_DATA
from smtpproto.wire.reply import Reply

BODY = b"Subject: hi\r\n\r\n..leading dot\r\nend\r\n"


class Front:
    """A front end without I/O: octets in, the replies the policy chose out."""

    def __init__(self, backend: Backend, *, lmtp: bool = False, starttls: bool = False) -> None:
        self.conn = ServerConnection(lmtp=lmtp)
        self.notes: list[str] = []
        self.session = backend.new_session(self.conn, starttls=starttls, note=self.notes.append)
        self.conn.send(self.session.greeting())

    def feed(self, data: bytes) -> list[Reply]:
        self.conn.receive_data(data)
        sent: list[Reply] = []
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA or event is PAUSED:
                return sent
            assert isinstance(event, ServerEvent)
            for reply in self.session.replies(event):
                self.conn.send(reply)
                sent.append(reply)

    def codes(self, data: bytes) -> list[int]:
        return [reply.code for reply in self.feed(data)]


def _ehlo_keywords(reply: Reply) -> list[str]:
    return [line.split(" ")[0] for line in reply.lines[1:]]


def test_default_session_accepts_and_delivers_to_backend_messages() -> None:
    backend = Backend(hostname="mx.test")
    front = Front(backend)
    (ehlo,) = front.feed(b"EHLO client.test\r\n")
    assert ehlo.code == 250 and ehlo.lines[0] == "mx.test greets you"
    assert "STARTTLS" not in _ehlo_keywords(ehlo) and "AUTH" not in _ehlo_keywords(ehlo)
    assert "CHUNKING" in _ehlo_keywords(ehlo)
    pipelined = b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"
    assert front.codes(pipelined) == [250, 250, 354]
    (queued,) = front.feed(BODY + b".\r\n")
    assert queued.code == 250 and queued.raw_lines == (b"2.0.0 Ok: queued as 1",)
    assert backend.messages == [
        StoredMessage("a@x.test", ("b@y.test",), b"Subject: hi\r\n\r\n.leading dot\r\nend\r\n")
    ]
    assert front.codes(b"QUIT\r\n") == [221]


def test_bdat_chunks_are_joined_and_lmtp_answers_once_per_recipient() -> None:
    backend = Backend()
    front = Front(backend, lmtp=True)
    front.feed(b"LHLO client.test\r\n")
    assert front.codes(b"MAIL FROM:<>\r\nRCPT TO:<a@y.test>\r\nRCPT TO:<b@y.test>\r\n") == [
        250,
        250,
        250,
    ]
    assert front.codes(b"BDAT 4\r\nabcd") == [250]
    replies = front.feed(b"BDAT 2 LAST\r\nef")
    assert [r.code for r in replies] == [250, 250]  # RFC 2033 §4.2
    assert backend.messages == [StoredMessage("", ("a@y.test", "b@y.test"), b"abcdef")]


def test_starttls_is_offered_only_when_the_front_end_can_do_it() -> None:
    front = Front(Backend(), starttls=True)
    (ehlo,) = front.feed(b"EHLO c\r\n")
    assert "STARTTLS" in _ehlo_keywords(ehlo)
    (ready,) = front.feed(b"STARTTLS\r\n")
    assert ready.code == 220
    assert front.conn.state is ServerState.TLS_HANDSHAKE  # the front end starts TLS now


def test_require_auth_refuses_mail_before_auth() -> None:
    front = Front(Backend(users={"alice": "pw"}, require_auth=True))
    (ehlo,) = front.feed(b"EHLO c\r\n")
    assert "AUTH" not in _ehlo_keywords(ehlo)  # no TLS and plaintext AUTH not allowed
    (refused,) = front.feed(b"MAIL FROM:<a@x.test>\r\n")
    assert refused.code == 530


def test_auth_plain_verifies_against_backend_users_and_notes_no_secret() -> None:
    backend = Backend(users={"alice": "wonderland"}, allow_plaintext_auth=True, require_auth=True)
    front = Front(backend)
    (ehlo,) = front.feed(b"EHLO c\r\n")
    assert "AUTH SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN" in ehlo.lines
    wrong = base64.b64encode(b"\0alice\0nope")
    assert front.codes(b"AUTH PLAIN " + wrong + b"\r\n") == [535]
    right = base64.b64encode(b"\0alice\0wonderland")
    assert front.codes(b"AUTH PLAIN " + right + b"\r\n") == [235]
    assert front.conn.authenticated
    assert front.codes(b"MAIL FROM:<a@x.test>\r\n") == [250]
    assert front.notes[-1] == "AUTH alice"
    assert front.notes[0].startswith("AUTH failed (")
    assert not any("wonderland" in note or "nope" in note for note in front.notes)
    assert "wonderland" not in repr(backend) and "alice" in repr(backend)


def test_unknown_mechanism_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unsupported AUTH mechanisms"):
        Backend(mechanisms=["PLAIN", "X-NOPE"])


class _QueueId(str):
    """A queue id whose formatting is its own: the reply must show what ``ok`` shows."""

    def __format__(self, spec: str) -> str:
        return "formatted"


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=220) | st.text("!~ \r\n\x00\x7fé", max_size=8))
@example("A" * 180)  # the longest queue id the reply keeps whole
@example("A" * 181)  # one more: the text is cut at 200 characters
@example("")
@example("id\r\n250 injected")
@example(_QueueId("abc"))
def test_the_queued_reply_is_exactly_oks_for_any_queue_id(queue_id: str) -> None:
    """``message`` builds its 250 directly for a plain queue id: the same reply (and
    octets on the wire) as ``ok``, which escapes and cuts what is not plain."""
    backend = Backend(hostname="mx.test", deliver=lambda message: queue_id)
    front = Front(backend)
    front.feed(b"EHLO client.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n")
    front.conn.receive_data(BODY + b".\r\n")
    event = front.conn.next_event()
    while not isinstance(event, MessageComplete):
        assert isinstance(event, ServerEvent)
        front.session.replies(event)
        event = front.conn.next_event()
    (queued,) = front.session.replies(event)
    expected = ok(f"2.0.0 Ok: queued as {queue_id}")
    assert type(queued) is Reply and queued == expected
    assert front.conn.send(queued) == expected.to_bytes()


def test_a_delivery_that_fails_is_451_and_noted() -> None:
    def deliver(message: StoredMessage) -> str:
        raise OSError("disk full")

    front = Front(Backend(deliver=deliver))
    front.feed(b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n")
    (failed,) = front.feed(b"x\r\n.\r\n")
    assert failed.code == 451 and failed.raw_lines == (b"4.3.0 Could not store the message",)
    assert front.notes == ["storing the message failed: disk full"]


class NoBob(Session):
    """Refuses every recipient at bob's; counts the messages it saw."""

    def rcpt(self, event: RcptReceived) -> Reply:
        if event.recipient.startswith("bob@"):
            return mailbox_unavailable("No such user here")
        return super().rcpt(event)

    def message(self, event: MessageComplete, data: bytes) -> Reply:
        self.note(f"{len(event.recipients)} recipient(s)")
        return super().message(event, data)


def test_a_session_subclass_changes_replies_and_the_engine_follows() -> None:
    backend = Backend(session_class=NoBob)
    front = Front(backend)
    front.feed(b"EHLO c\r\nMAIL FROM:<a@x.test>\r\n")
    replies = front.feed(b"RCPT TO:<bob@y.test>\r\nRCPT TO:<carol@y.test>\r\nDATA\r\n")
    assert [r.code for r in replies] == [550, 250, 354]
    assert replies[0].raw_lines == (b"5.1.1 No such user here",)
    front.feed(b"hello\r\n.\r\n")
    assert backend.messages == [StoredMessage("a@x.test", ("carol@y.test",), b"hello\r\n")]
    assert front.notes == ["1 recipient(s)"]


def test_message_store_writes_maildir_and_mbox(tmp_path: Path) -> None:
    store = MessageStore(maildir=tmp_path / "Maildir", mbox=tmp_path / "mbox")
    message = StoredMessage("a@x.test", ("b@y.test",), b"Subject: s\r\n\r\nFrom here\r\n")
    queue_id = store.store(message)
    assert store.messages == [message]
    (stored,) = (tmp_path / "Maildir" / "new").iterdir()
    assert stored.name.startswith(queue_id) and stored.read_bytes() == message.data
    box = mailbox.mbox(str(tmp_path / "mbox"))
    try:
        (entry,) = box
        assert entry.get_from().startswith("a@x.test ")
        assert entry.get_payload() == ">From here\n"  # mboxrd quoting
    finally:
        box.close()


def test_the_policy_modules_load_no_event_loop() -> None:
    script = (
        "import sys\n"
        "import smtpproto.builtin_server.backend, smtpproto.builtin_server.transcript\n"
        "assert 'asyncio' not in sys.modules and 'trio' not in sys.modules\n"
        "assert 'ssl' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_a_custom_session_in_smtpserver_refuses_a_recipient_end_to_end() -> None:
    transcript: list[str] = []
    with run_server(starttls=False, session_class=NoBob, transcript=transcript.append) as server:
        with smtplib.SMTP(server.host, server.port, timeout=15) as client:
            refused = client.sendmail(
                "a@x.test", ["bob@y.test", "carol@y.test"], b"Subject: s\r\n\r\nhi\r\n"
            )
            assert refused == {"bob@y.test": (550, b"5.1.1 No such user here")}
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("a@x.test", ["bob@y.test"], b"x\r\n")
        (message,) = server.wait_for_messages(1)
    assert message.recipients == ("carol@y.test",)
    assert "S: 550 5.1.1 No such user here" in transcript
    assert "* 1 recipient(s)" in transcript


def test_smtpserver_settings_are_the_backends() -> None:
    server = SMTPServer(users={"alice": "pw"}, require_auth=True, starttls=False)
    assert server.backend.users is server.users and server.backend.require_auth
    server.hostname = "mx.test"
    assert server.backend.hostname == "mx.test"
    assert server.messages is server.storage.messages


def test_a_constant_reply_shares_one_response_and_a_fresh_reply_gets_its_own() -> None:
    from smtpproto.builtin_server import backend as backend_module
    from smtpproto.builtin_server.backend import Response

    class Fresh(Session):
        def rcpt(self, event: RcptReceived) -> Reply:
            return Reply(250, (b"2.1.5 fresh",))

        def noop(self, event: NoopReceived) -> Reply:
            return Reply(250, (b"2.0.0 fresh",))

    front = Front(Backend(session_class=Fresh))
    front.feed(b"EHLO c\r\n")
    responses = []
    for _ in range(2):
        front.conn.receive_data(b"MAIL FROM:<a@x.test>\r\n")
        mail = front.conn.next_event()
        assert isinstance(mail, ServerEvent)
        responses.append(front.session.respond(mail))
        front.conn.send(responses[-1].replies[0])
        front.conn.receive_data(b"RCPT TO:<b@y.test>\r\n")
        rcpt = front.conn.next_event()
        assert isinstance(rcpt, ServerEvent)
        answer = front.session.respond(rcpt)
        assert answer == Response((Reply(250, (b"2.1.5 fresh",)),))
        front.conn.send(answer.replies[0])
        front.feed(b"RSET\r\n")
    assert responses[0] is responses[1]  # the hook's constant 250, one Response
    assert responses[0] == Response((Reply(250, (b"2.1.0 Sender OK",)),))
    for _ in range(3 * backend_module._MAX_SINGLE):  # the sharing is bounded
        assert front.codes(b"NOOP\r\n") == [250]
        assert len(backend_module._SINGLE) <= backend_module._MAX_SINGLE


def test_users_with_a_lone_surrogate_are_refused_without_the_password() -> None:
    """No AUTH can carry a password without a UTF-8 form (what surrogateescape makes of
    undecodable octets); the server took it, and CRAM-MD5 then raised with it."""
    for users in ({"alice": "StoredPW\udcff"}, {"al\udcffice": "StoredPW"}):
        with pytest.raises(ValueError, match="lone surrogate") as info:
            Backend(users=users)
        assert "StoredPW" not in str(info.value)
    with pytest.raises(ValueError, match="lone surrogate"):
        SMTPServer(users={"alice": "StoredPW\udcff"})


def test_a_stored_password_with_a_lone_surrogate_is_535_to_smtplib_never_logged() -> None:
    """A session's own lookup (``mechanism``) returning such a password: CRAM-MD5, the
    mechanism smtplib prefers, raised UnicodeEncodeError, the built-in server answered
    421 'Policy error' and its transcript showed the error's repr, the password in it."""
    from smtpproto.sasl.server import CramMD5Server, ServerMechanism

    class Stored(Session):
        def mechanism(self, name: str) -> ServerMechanism | None:
            if name == "CRAM-MD5":
                return CramMD5Server({"alice": "StoredPW\udcff"}.get)
            return super().mechanism(name)

    transcript: list[str] = []
    options = {"starttls": False, "allow_plaintext_auth": True, "users": {"alice": "pw"}}
    with run_server(session_class=Stored, transcript=transcript.append, **options) as server:
        with smtplib.SMTP(server.host, server.port, timeout=10) as client:
            client.ehlo("client.test")
            with pytest.raises(smtplib.SMTPAuthenticationError) as info:
                client.login("alice", "StoredPW")
            assert info.value.smtp_code == 535
            assert client.noop()[0] == 250
        assert server.policy_errors == []
    assert not [line for line in transcript if "StoredPW" in line]
