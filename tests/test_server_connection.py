"""ServerConnection: sessions, sequencing, line rules, limits, replies, EOF."""

from __future__ import annotations

import array

import pytest

from server_support import Session
from smtpproto.client_engine.events import NEED_DATA
from smtpproto.server_engine.config import ServerConfig
from smtpproto.server_engine.connection import ServerConnection
from smtpproto.server_engine.events import (
    PAUSED,
    ClientDisconnected,
    CommandRejected,
    DataRequested,
    EhloReceived,
    ExpnReceived,
    HeloReceived,
    HelpReceived,
    MailReceived,
    MessageComplete,
    NoopReceived,
    RcptReceived,
    ResetReceived,
    UnknownCommand,
    VrfyReceived,
)
from smtpproto.server_engine.replies import (
    bad_sequence,
    closing,
    ehlo_reply,
    greeting,
    mailbox_unavailable,
    no_service,
    ok,
    service_closing,
    start_mail_input,
)
from smtpproto.server_engine.states import INTERMEDIATE, ServerState, code_allowed
from smtpproto.wire.errors import LocalProtocolError, RemoteProtocolError
from smtpproto.wire.reply import Reply

HELLO = b"EHLO client.test\r\n"
ENVELOPE = HELLO + b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"


def test_whole_session_delivers_content_byte_exact() -> None:
    s = Session()
    s.feed(ENVELOPE + b"DATA\r\nSubject: hi\r\n\r\n..leading dot\r\nend\r\n.\r\nQUIT\r\n")
    assert s.codes() == [220, 250, 250, 250, 354, 250, 221]
    assert s.content() == b"Subject: hi\r\n\r\n.leading dot\r\nend\r\n"
    (done,) = s.of(MessageComplete)
    assert done == MessageComplete(
        sender="a@x.test", recipients=("b@y.test",), size=len(s.content()), bdat=False
    )
    assert s.conn.state is ServerState.CLOSED


def test_events_have_parsed_values() -> None:
    s = Session()
    s.feed(HELLO + b"MAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nVRFY bob\r\nEXPN list\r\n")
    s.feed(b"HELP\r\nHELP MAIL\r\nNOOP anything\r\nRSET\r\n")
    mail = s.of(MailReceived)[0]
    assert isinstance(mail, MailReceived) and mail.sender == ""
    assert s.of(RcptReceived) == [RcptReceived(recipient="Postmaster", params={})]
    assert s.of(VrfyReceived) == [VrfyReceived(argument="bob")]
    assert s.of(ExpnReceived) == [ExpnReceived(argument="list")]
    assert s.of(HelpReceived) == [HelpReceived(topic=""), HelpReceived(topic="MAIL")]
    assert s.of(NoopReceived) and s.of(ResetReceived)
    assert s.conn.state is ServerState.READY and s.conn.sender is None


def test_paused_until_greeting_and_until_each_reply() -> None:
    conn = ServerConnection()
    conn.receive_data(HELLO + b"NOOP\r\n")
    assert conn.next_event() is PAUSED
    with pytest.raises(LocalProtocolError):
        conn.send(ok())  # the greeting must be 220 or 554
    conn.send(greeting("mx.test"))
    assert conn.next_event() == EhloReceived(domain="client.test")
    assert conn.next_event() is PAUSED  # one command at a time
    assert conn.replies_due == 1
    conn.send(ehlo_reply("mx.test", ["PIPELINING"]))
    assert conn.next_event() == NoopReceived()
    conn.send(ok())
    assert conn.next_event() is NEED_DATA


@pytest.mark.parametrize(
    ("commands", "reason"),
    [
        (b"MAIL FROM:<a@x.test>\r\n", b"Send EHLO or HELO first"),
        (HELLO + b"RCPT TO:<b@y.test>\r\n", b"Need MAIL command"),
        (HELLO + b"DATA\r\n", b"Need MAIL and RCPT commands"),
        (HELLO + b"MAIL FROM:<a@x.test>\r\nDATA\r\n", b"Need RCPT command"),
        (ENVELOPE + b"MAIL FROM:<c@x.test>\r\n", b"Nested MAIL command"),
        (ENVELOPE + b"STARTTLS\r\n", b"STARTTLS is not allowed during a mail transaction"),
        (ENVELOPE + b"AUTH PLAIN\r\n", b"AUTH is not allowed during a mail transaction"),
        (b"STARTTLS\r\n", b"Send EHLO or HELO first"),
    ],
)
def test_out_of_sequence_gets_503(commands: bytes, reason: bytes) -> None:
    s = Session()
    s.feed(commands)
    assert s.codes()[-1] == 503
    assert bytes(s.out).endswith(b"503 5.5.1 " + reason + b"\r\n")


def test_refused_mail_makes_pipelined_rcpt_and_data_out_of_sequence() -> None:
    s = Session(policy=lambda e: mailbox_unavailable() if isinstance(e, MailReceived) else None)
    s.feed(ENVELOPE + b"DATA\r\nbody\r\n.\r\n")
    # MAIL refused -> RCPT 503 -> DATA 503 -> "body" and "." are (unknown) commands
    assert s.codes()[:5] == [220, 250, 550, 503, 503]
    assert not s.of(DataRequested)


def test_rset_clears_transaction_and_ehlo_resets_too() -> None:
    s = Session()
    s.feed(ENVELOPE + b"RSET\r\nRCPT TO:<b@y.test>\r\n")
    assert s.codes()[-1] == 503
    s.feed(b"MAIL FROM:<a@x.test>\r\nEHLO again.test\r\nRCPT TO:<b@y.test>\r\n")
    assert s.codes()[-1] == 503


def test_helo_means_no_extensions() -> None:
    s = Session()
    s.feed(b"HELO client.test\r\nMAIL FROM:<a@x.test> SIZE=10\r\n")
    assert s.of(HeloReceived) == [HeloReceived(domain="client.test")]
    assert s.codes()[-1] == 555
    assert dict(s.conn.extensions) == {}


def test_ehlo_needs_a_valid_domain() -> None:
    s = Session()
    s.feed(b"EHLO\r\nEHLO bad_name!\r\nEHLO [127.0.0.1]\r\n")
    assert s.codes() == [220, 501, 501, 250]


def test_554_greeting_accepts_only_quit() -> None:
    conn = ServerConnection()
    conn.send(no_service("mx.test"))
    assert conn.state is ServerState.REJECTING
    conn.receive_data(HELLO + b"QUIT\r\n")
    event = conn.next_event()
    assert isinstance(event, CommandRejected) and event.reply.code == 503
    conn.send(event.reply)
    assert conn.next_event().__class__.__name__ == "QuitReceived"
    assert conn.send(closing("mx.test")).startswith(b"221 ")


# -- line rules ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [b"NOOP\nNOOP\r\n", b"NOOP\rx\r\n", b"NO\rOP\r\n", b"NOOP\n\r\n"])
def test_bare_cr_or_lf_is_not_a_line_end(bad: bytes) -> None:
    s = Session()
    s.feed(HELLO + bad)
    assert s.codes() == [220, 250, 500]  # one line, refused; NOOP never ran
    assert not s.of(NoopReceived)
    rejected = s.of(CommandRejected)[0]
    assert isinstance(rejected, CommandRejected) and rejected.line == bad[:-2]


def test_lone_lf_waits_for_crlf() -> None:
    s = Session()
    s.feed(b"NOOP\n")
    assert s.events == [] and s.conn.next_event() is NEED_DATA


@pytest.mark.parametrize(("total", "accepted"), [(511, True), (512, True), (513, False)])
def test_command_line_limit_512(total: int, accepted: bool) -> None:
    line = b"NOOP " + b"x" * (total - 7) + b"\r\n"
    assert len(line) == total
    s = Session()
    s.feed(line + b"NOOP\r\n")
    assert s.codes() == ([220, 250, 250] if accepted else [220, 500, 250])


def test_overlong_line_refused_early_and_dropped_in_pieces() -> None:
    s = Session()
    s.feed(b"NOOP " + b"y" * 600)  # no CRLF yet: refused as soon as 512 is crossed
    assert s.codes() == [220, 500]
    for _ in range(100):  # the rest is dropped as it arrives: memory stays bounded
        s.feed(b"z" * 1000 + b"\r")
        assert len(s.conn._buf) <= 1
    s.feed(b"\nNOOP\r\n")
    assert s.codes() == [220, 500, 250]


def test_crlf_split_across_the_limit() -> None:
    s = Session()
    s.feed(b"NOOP " + b"x" * 505 + b"\r", b"\n")  # 512 octets with the CRLF
    assert s.codes() == [220, 250]


def test_mail_and_auth_lines_have_larger_limits() -> None:
    s = Session()
    padding = " ENVID=" + "e" * 101
    s.feed(HELLO + f"MAIL FROM:<a@x.test>{padding}\r\n".encode())
    assert s.codes()[-1] == 501  # over 100 characters: refused by grammar, not length
    s.feed(b"MAIL FROM:<a@x.test>" + b" " * 1800 + b"\r\n")
    assert s.codes()[-1] == 250
    s.feed(b"RSET\r\nMAIL FROM:<a@x.test>" + b" " * 2100 + b"\r\n")
    assert s.codes()[-1] == 500


def test_control_characters_and_non_ascii_verbs() -> None:
    s = Session()
    s.feed(b"NO\x00OP\r\n\xff\xfe\r\nNOOP\tx\r\n\r\n")
    assert s.codes() == [220, 500, 500, 500, 500]


def test_unknown_command_and_escaped_reason() -> None:
    s = Session()
    s.feed(b"XYZZY \x1b[31mred\r\n")
    assert s.codes() == [220, 500]  # control character: refused before the verb lookup
    s.feed(b"XYZZY plugh\r\n")
    assert s.of(UnknownCommand) == [UnknownCommand(verb="XYZZY", line=b"XYZZY plugh")]
    assert s.conn.error_count == 2


def test_rejection_reply_never_echoes_raw_octets() -> None:
    s = Session(extensions=("SMTPUTF8",))
    s.feed(HELLO + "MAIL FROM:<\u2028\x85@x.test> SMTPUTF8\r\n".encode())
    (rejected,) = s.of(CommandRejected)
    assert isinstance(rejected, CommandRejected)
    wire = rejected.reply.to_bytes()
    assert wire.isascii() and all(0x20 <= b < 0x7F for b in wire[:-2])


# -- replies the caller sends --------------------------------------------------------


def test_reply_validation() -> None:
    s = Session()
    with pytest.raises(LocalProtocolError):
        s.conn.send(ok())  # nothing pending
    with pytest.raises(LocalProtocolError):
        s.conn.send("250 ok")  # type: ignore[arg-type]  # deliberately wrong type
    s.conn.receive_data(HELLO)
    s.conn.next_event()
    for wrong in (start_mail_input(), Reply(250, (b"a\rb",)), Reply(250, (b"x" * 507,))):
        with pytest.raises(LocalProtocolError):
            s.conn.send(wrong)
    assert s.conn.replies_due == 1 and s.conn.state is ServerState.CONNECTED
    s.conn.send(ehlo_reply("mx.test"))
    assert s.conn.state.name == "READY"  # (mypy narrowed state above)


def test_421_closes_at_any_time() -> None:
    s = Session()
    s.conn.send(service_closing("mx.test"))
    assert s.conn.state is ServerState.CLOSED
    with pytest.raises(LocalProtocolError):
        s.conn.send(ok())
    s.conn.receive_data(b"NOOP\r\n")
    assert s.conn.next_event() is PAUSED


def test_send_failed_is_sticky() -> None:
    s = Session()
    s.conn.send_failed()
    with pytest.raises(RemoteProtocolError):
        s.conn.next_event()
    with pytest.raises(LocalProtocolError):
        s.conn.send(ok())
    assert s.conn.send(service_closing("mx.test")).startswith(b"421")


# -- EOF -------------------------------------------------------------------------------


def test_eof_between_commands_is_clean() -> None:
    s = Session()
    s.feed(HELLO, b"")
    assert s.events[-1] == ClientDisconnected(clean=True)
    assert s.conn.next_event() == ClientDisconnected(clean=True)
    with pytest.raises(LocalProtocolError):
        s.conn.receive_data(b"more")


@pytest.mark.parametrize("tail", [b"NOO", b"DATA\r\npartial", b"AUTH PLAIN\r\n"])
def test_eof_mid_line_content_or_auth_is_not_clean(tail: bytes) -> None:
    s = Session()
    s.feed(ENVELOPE if tail.startswith(b"DATA") else HELLO, tail, b"")
    assert s.events[-1] == ClientDisconnected(clean=False)


def test_eof_after_quit_is_clean() -> None:
    s = Session()
    s.feed(b"QUIT\r\n", b"")
    assert s.events[-1] == ClientDisconnected(clean=True)


# -- limits -----------------------------------------------------------------------------


def test_too_many_recipients_452() -> None:
    s = Session(config=ServerConfig(max_recipients=2))
    s.feed(ENVELOPE + b"RCPT TO:<c@y.test>\r\nRCPT TO:<d@y.test>\r\n")
    assert s.codes()[-3:] == [250, 250, 452]
    assert s.conn.recipients == ("b@y.test", "c@y.test")


def test_pipelined_flood_while_paused_is_an_error() -> None:
    conn = ServerConnection(config=ServerConfig(max_pipelined_input=4096))
    conn.send(greeting("mx.test"))
    conn.receive_data(b"NOOP\r\n" * 1000)
    assert conn.next_event() == NoopReceived()
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    with pytest.raises(RemoteProtocolError):
        conn.next_event()  # sticky
    assert conn.state is ServerState.ERROR


def test_data_line_over_decoder_bound_is_sticky_error() -> None:
    s = Session(config=ServerConfig(max_data_line=1000))
    s.feed(ENVELOPE + b"DATA\r\n")
    s.conn.receive_data(b"x" * 1001 + b"\r\n")
    with pytest.raises(RemoteProtocolError):
        s.conn.next_event()
    assert s.conn.state is ServerState.ERROR
    assert s.conn.send(bad_sequence()).startswith(b"503")


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        ServerConfig(max_command_line=100)
    with pytest.raises(ValueError):
        ServerConfig(max_recipients=0)
    with pytest.raises(ValueError):
        ServerConfig(max_message_size=-1)
    with pytest.raises(ValueError):
        ServerConfig(timeout=0)
    assert ServerConnection().timeout == 300.0


@pytest.mark.parametrize("bad", ["NOOP\r\n", 7, None, [b"NOOP\r\n"]])
def test_receive_data_refuses_non_bytes(bad: object) -> None:
    # Like the client engine: a clear LocalProtocolError, not a TypeError from inside.
    conn = ServerConnection()
    with pytest.raises(LocalProtocolError, match="needs bytes"):
        conn.receive_data(bad)  # type: ignore[arg-type]  # deliberately wrong type


def test_receive_data_takes_any_bytes_like() -> None:
    # A strided memoryview made bytearray += raise BufferError; octets are what count
    # (the plaintext discarded before TLS is counted in octets, not view items).
    s = Session()
    s.feed(bytearray(b"NOOP\r\n"), memoryview(b"N-O-O-P-\r-\n-")[::2])
    assert s.codes() == [220, 250, 250]
    s.feed(b"EHLO c.test\r\nSTARTTLS\r\n")
    assert s.codes()[-1] == 220
    s.conn.receive_data(memoryview(array.array("H", [0x4F4E, 0x504F])))
    assert s.conn.discarded_plaintext == 4


def test_a_connection_keeps_no_per_instance_dict() -> None:
    # A server holds one engine per client: slots, and the reply-wire cache is shared.
    conn = ServerConnection()
    assert not hasattr(conn, "__dict__")
    with pytest.raises(AttributeError):
        conn.unexpected = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "kind",
    ["greeting", "ehlo", "helo", "mail", "rcpt", "data", "message", "chunk", "chunk_failed",
     "rset", "quit", "other", "starttls", "auth", "sync", "rejected"],
)  # fmt: skip
def test_send_takes_exactly_the_codes_code_allowed_takes(kind: str) -> None:
    """``send`` skips ``code_allowed`` for a 2xx to a kind without code rules of its own
    (``_CODE_RULED``): over every code, it still refuses exactly what the rules refuse
    (354 outside DATA, 334 outside AUTH, a 250 to the greeting, QUIT, STARTTLS, DATA ...)."""
    for code in range(200, 600):
        if code == 421:  # closes at any time (test_421_closes_at_any_time)
            continue
        conn = ServerConnection()
        conn._state, conn._pending, conn._replies_due = ServerState.READY, kind, 1
        allowed = code_allowed(kind, code) and not (
            300 <= code < 400 and INTERMEDIATE.get(kind) != code
        )
        try:
            conn.send(Reply(code, (b"x",)))
        except LocalProtocolError as error:
            refused = "cannot answer" in str(error)
        except Exception:  # accepted; the state change lacks the command's event here
            refused = False
        else:
            refused = False
        assert refused is not allowed, (kind, code)
