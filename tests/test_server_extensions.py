"""ServerConnection: STARTTLS boundary, AUTH, MAIL/RCPT parameters, and fuzzing."""

from __future__ import annotations

import base64
import hmac
import smtplib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server_support import Session
from smtpproto.client_engine.events import NEED_DATA
from smtpproto.sasl import ScramSHA256
from smtpproto.sasl.server import CramMD5Server, LoginServer, PlainServer, ScramSHA256Server
from smtpproto.server_engine.auth import AuthExchange
from smtpproto.server_engine.events import (
    PAUSED,
    AuthCancelled,
    AuthRequested,
    AuthResponse,
    ClientDisconnected,
    CommandRejected,
    MailReceived,
    PlaintextDiscarded,
    QuitReceived,
    RcptReceived,
    ServerEvent,
    StartTLSRequested,
)
from smtpproto.server_engine.states import ServerState
from smtpproto.testing import run_server
from smtpproto.wire.errors import LocalProtocolError, ProtocolError

HELLO = b"EHLO client.test\r\n"


# -- STARTTLS ----------------------------------------------------------------------------


def test_plaintext_pipelined_behind_starttls_is_discarded() -> None:
    s = Session()
    injected = b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<v@y.test>\r\nQUIT\r\n"
    s.feed(HELLO + b"STARTTLS\r\n" + injected)
    assert s.codes() == [220, 250, 220]
    assert s.conn.state is ServerState.TLS_HANDSHAKE
    assert s.conn.next_event() is PAUSED
    s.feed(b"more plaintext before the handshake\r\n")  # fed before tls_established
    assert not s.of(MailReceived) and not s.of(QuitReceived)
    s.conn.tls_established()
    s.feed(b"")  # nothing new: the discard report comes first
    expected = len(injected) + len(b"more plaintext before the handshake\r\n")
    assert s.of(PlaintextDiscarded) == [PlaintextDiscarded(size=expected)]
    assert s.conn.discarded_plaintext == expected


def test_session_starts_over_after_tls() -> None:
    s = Session(extensions=("STARTTLS", "AUTH PLAIN", "SIZE 10"))
    s.feed(HELLO + b"STARTTLS\r\n")
    s.conn.tls_established()
    assert s.conn.tls_active and dict(s.conn.extensions) == {} and s.conn.client_name is None
    s.feed(b"MAIL FROM:<a@x.test>\r\n")
    assert s.codes()[-1] == 503  # EHLO again first (RFC 3207 section 4.2)
    s.feed(HELLO + b"STARTTLS\r\n")
    assert s.codes()[-1] == 503  # TLS already active
    assert s.of(StartTLSRequested) == [StartTLSRequested()]


def test_starttls_not_advertised_or_with_argument() -> None:
    s = Session(extensions=("PIPELINING",))
    s.feed(HELLO + b"STARTTLS\r\n")
    assert s.codes()[-1] == 502
    s = Session()
    s.feed(HELLO + b"STARTTLS now\r\n")
    assert s.codes()[-1] == 501


def test_tls_established_misuse() -> None:
    s = Session()
    with pytest.raises(LocalProtocolError):
        s.conn.tls_established()


def test_refused_starttls_keeps_plaintext_session() -> None:
    from smtpproto.server_engine.replies import transaction_failed

    s = Session(policy=lambda e: transaction_failed() if isinstance(e, StartTLSRequested) else None)
    s.feed(HELLO + b"STARTTLS\r\nNOOP\r\n")
    assert s.codes() == [220, 250, 554, 250]


def test_implicit_tls_refuses_starttls() -> None:
    s = Session(tls_active=True)
    s.feed(HELLO + b"STARTTLS\r\n")
    assert s.codes()[-1] == 503


# -- AUTH ------------------------------------------------------------------------------

USERS = {"alice": "wonderland"}


def auth_session(mechanism_factory: object, extensions: tuple[str, ...]) -> Session:
    holder: dict[str, AuthExchange] = {}

    def policy(event: ServerEvent) -> object:
        if isinstance(event, AuthRequested):
            holder["x"] = AuthExchange(mechanism_factory())  # type: ignore[operator]  # test factory
            return holder["x"].reply(event)
        if isinstance(event, (AuthResponse, AuthCancelled)):
            return holder["x"].reply(event)
        return None

    return Session(extensions=extensions, policy=policy)  # type: ignore[arg-type]  # see above


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def test_auth_plain_initial_response_success() -> None:
    s = auth_session(lambda: PlainServer(USERS.get), ("AUTH PLAIN",))
    s.feed(HELLO + b"AUTH PLAIN " + b64(b"\0alice\0wonderland") + b"\r\nAUTH PLAIN\r\n")
    assert s.codes() == [220, 250, 235, 503]  # second AUTH refused (RFC 4954 section 4)
    assert s.conn.authenticated


def test_auth_plain_equals_then_response_and_wrong_password() -> None:
    s = auth_session(lambda: PlainServer(USERS.get), ("AUTH PLAIN",))
    s.feed(HELLO + b"AUTH PLAIN =\r\n")
    assert s.of(AuthRequested) == [AuthRequested(mechanism="PLAIN", initial_response=b"")]
    s = auth_session(lambda: PlainServer(USERS.get), ("AUTH PLAIN",))
    s.feed(HELLO + b"AUTH plain\r\n", b64(b"\0alice\0wrong") + b"\r\n")
    assert s.codes() == [220, 250, 334, 535]
    assert not s.conn.authenticated and s.conn.state is ServerState.READY


def test_auth_login_two_steps() -> None:
    s = auth_session(lambda: LoginServer(USERS.get), ("AUTH LOGIN",))
    s.feed(HELLO + b"AUTH LOGIN\r\n" + b64(b"alice") + b"\r\n" + b64(b"wonderland") + b"\r\n")
    assert s.codes() == [220, 250, 334, 334, 235]
    assert b"334 VXNlcm5hbWU6\r\n" in s.out  # "Username:"


def test_auth_cram_md5() -> None:
    s = auth_session(lambda: CramMD5Server(USERS.get, hostname="mx.test"), ("AUTH CRAM-MD5",))
    s.feed(HELLO + b"AUTH CRAM-MD5\r\n")
    challenge = base64.b64decode(bytes(s.out).split(b"334 ")[1].split(b"\r\n")[0])
    digest = hmac.new(b"wonderland", challenge, "md5").hexdigest().encode()
    s.feed(b64(b"alice " + digest) + b"\r\n")
    assert s.codes()[-1] == 235


def test_auth_scram_sha256_with_final_334() -> None:
    s = auth_session(lambda: ScramSHA256Server(USERS.get), ("AUTH SCRAM-SHA-256",))
    client = ScramSHA256("alice", "wonderland")
    first = client.initial_response()
    assert first is not None
    s.feed(HELLO + b"AUTH SCRAM-SHA-256 " + b64(first) + b"\r\n")
    for _ in range(3):
        last = bytes(s.out).rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]
        if not last.startswith(b"334 "):
            break
        answer = client.respond(base64.b64decode(last[4:]))
        s.feed(b64(answer or b"") + b"\r\n")
    assert s.codes()[-1] == 235 and s.conn.authenticated


def test_auth_cancel_bad_base64_and_unknown_mechanism() -> None:
    s = auth_session(lambda: LoginServer(USERS.get), ("AUTH LOGIN",))
    s.feed(HELLO + b"AUTH LOGIN\r\n*\r\n")
    assert s.codes()[-1] == 501 and s.of(AuthCancelled)
    s.feed(b"AUTH LOGIN\r\n!!notbase64\r\n")
    assert s.codes()[-1] == 501 and s.conn.state is ServerState.READY
    s.feed(b"AUTH GSSAPI\r\nAUTH PLAIN abc=\r\n")
    assert s.codes()[-2:] == [504, 504]
    s.feed(b"AUTH LOGIN a b\r\nAUTH LOGIN @@@\r\n")
    assert s.codes()[-2:] == [501, 501]


def test_auth_not_advertised() -> None:
    s = Session(extensions=("PIPELINING",))
    s.feed(HELLO + b"AUTH PLAIN\r\n")
    assert s.codes()[-1] == 503


def test_auth_response_repr_hides_secret() -> None:
    assert "wonderland" not in repr(AuthResponse(data=b"wonderland"))


def test_auth_response_line_limit_is_12288() -> None:
    s = Session()
    s.feed(HELLO + b"AUTH LOGIN\r\n" + b"QUFB" * 3071 + b"\r\n")
    assert s.codes()[-1] != 500
    s.feed(b"AUTH LOGIN\r\n" + b"QUFB" * 3073 + b"\r\n")
    assert s.codes()[-1] == 500


# -- parameters -----------------------------------------------------------------------


def test_mail_parameters_parsed() -> None:
    s = Session(extensions=("SIZE", "8BITMIME", "DSN", "AUTH PLAIN", "SMTPUTF8"))
    s.feed(
        HELLO + b"MAIL FROM:<a@x.test> size=123 BODY=8bitmime RET=hdrs ENVID=QQ+2BZZ "
        b"AUTH=<> SMTPUTF8\r\n"
    )
    (mail,) = s.of(MailReceived)
    assert mail == MailReceived(
        sender="a@x.test",
        params={
            "SIZE": "123",
            "BODY": "8bitmime",
            "RET": "hdrs",
            "ENVID": "QQ+2BZZ",
            "AUTH": "<>",
            "SMTPUTF8": None,
        },
        size=123,
        body="8BITMIME",
        smtputf8=True,
        ret="HDRS",
        envid="QQ+ZZ",
        auth="<>",
    )


@pytest.mark.parametrize(
    ("extensions", "params", "code"),
    [
        ((), b"SIZE=1", 555),
        ((), b"BODY=8BITMIME", 555),
        (("8BITMIME",), b"BODY=BINARYMIME", 555),
        (("8BITMIME",), b"BODY=9BIT", 501),
        ((), b"SMTPUTF8", 555),
        (("SMTPUTF8",), b"SMTPUTF8=yes", 501),
        ((), b"RET=FULL", 555),
        (("DSN",), b"RET=MOST", 501),
        (("DSN",), b"ENVID=a+zz", 501),
        ((), b"XFOO=1", 555),
        (("SIZE",), b"SIZE=12x", 501),
        (("SIZE",), b"SIZE=1 SIZE=2", 501),
    ],
)
def test_mail_parameter_errors(extensions: tuple[str, ...], params: bytes, code: int) -> None:
    s = Session(extensions=extensions)
    s.feed(HELLO + b"MAIL FROM:<a@x.test> " + params + b"\r\n")
    assert s.codes()[-1] == code


# RFC 3461 §4.2, §4.4: ENVID and ORCPT are printable before xtext; RFC 4954 §5: AUTH=
# is a mailbox. A line break, NUL or other control hidden in xtext is refused (501), as
# Postfix's smtpd refuses ENVID=+0D+0A ("501 5.5.4 Bad ENVID parameter syntax").
XTEXT_CONTROLS = [*(f"+{c:02X}" for c in (*range(0x20), 0x7F)), "+C2+85", "+E2+80+A8"]


@settings(max_examples=200, deadline=None)
@given(
    control=st.sampled_from(XTEXT_CONTROLS),
    where=st.sampled_from(["ENVID", "ORCPT", "AUTH"]),
    before=st.text("abc.@", max_size=4),
    after=st.text("xyz", max_size=4),
)
def test_an_xtext_parameter_decoding_to_a_control_is_refused(
    control: str, where: str, before: str, after: str
) -> None:
    s = Session(extensions=("DSN", "AUTH PLAIN", "SMTPUTF8"))
    value = f"{before}{control}{after}".encode()
    if where == "ORCPT":
        s.feed(
            HELLO + b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test> ORCPT=rfc822;" + value + b"\r\n"
        )
        assert not s.of(RcptReceived)
    else:
        s.feed(HELLO + b"MAIL FROM:<a@x.test> " + where.encode() + b"=" + value + b"\r\n")
        assert not s.of(MailReceived)
    (refused,) = s.of(CommandRejected)
    assert refused.reply.code == 501
    assert "control character" in refused.reply.text


def test_smtplib_envid_with_a_line_break_is_refused_by_the_builtin_server() -> None:
    with run_server() as server, smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.ehlo("client.test")
        code, _ = client.mail("a@x.test", ["ENVID=id+0D+0AX-Injected:+20yes"])
        assert code == 501
        code, _ = client.mail("a@x.test", ["ENVID=id+20ok"])
        assert code == 250
        client.rset()
        client.mail("a@x.test")
        code, _ = client.rcpt("b@y.test", ["ORCPT=rfc822;b+00@y.test"])
        assert code == 501


@pytest.mark.parametrize(
    "line", [b"AUTH \xff", b"AUTH PL\xc3\xa9 AGFsaWNlAHB3", b"auth \xe9PLAIN =", b"AUTH \x80"]
)
def test_a_non_ascii_auth_mechanism_is_a_syntax_error(line: bytes) -> None:
    """It raised UnicodeDecodeError out of the engine (the built-in server dropped the
    connection without a reply, calling it a policy error)."""
    s = Session()
    s.feed(HELLO + line + b"\r\nNOOP\r\n")
    assert s.codes()[-2:] == [501, 250]
    (refused,) = s.of(CommandRejected)
    assert b"AGFsaWNlAHB3" not in refused.line
    assert s.conn.state is ServerState.READY


def test_smtplib_non_ascii_auth_mechanism_gets_501_from_the_builtin_server() -> None:
    users = {"alice": "pw"}
    with run_server(users=users, starttls=False, allow_plaintext_auth=True) as server:
        with smtplib.SMTP(server.host, server.port, timeout=10) as client:
            client.ehlo("client.test")
            client.send(b"AUTH PL\xc3\xa9 AGFsaWNlAHB3\r\n")
            assert client.getreply()[0] == 501
            assert client.noop()[0] == 250
        assert server.policy_errors == []


@pytest.mark.parametrize("verb", [b"VRFY", b"EXPN", b"HELP"])
@pytest.mark.parametrize("control", ["\x80", "\x85", "\x9f", "\u2028", "\u2029"])
def test_a_utf8_argument_holding_a_c1_or_line_separator_is_refused(
    verb: bytes, control: str
) -> None:
    """Under SMTPUTF8 a VRFY/EXPN/HELP argument reached its event with NEL, U+2028 ...
    (line breaks for some software), where an address with one is refused (553)."""
    s = Session()
    s.feed(HELLO + verb + f" a{control}b\r\n".encode() + b"NOOP\r\n")
    assert s.codes()[-2:] == [501, 250]
    assert "control character" in s.of(CommandRejected)[0].reply.text
    s.feed(verb + " j\u00e9\r\n".encode())
    assert s.codes()[-1] != 501


def test_smtplib_vrfy_with_a_nel_gets_501_from_the_builtin_server() -> None:
    with run_server(starttls=False) as server, smtplib.SMTP(server.host, server.port) as client:
        client.command_encoding = "utf-8"  # as smtplib sets it for SMTPUTF8
        client.ehlo("client.test")
        assert client.verify("a\x85b")[0] == 501
        assert client.verify("j\u00e9")[0] == 252


def test_rcpt_dsn_parameters() -> None:
    s = Session()
    s.feed(
        HELLO + b"MAIL FROM:<a@x.test>\r\n"
        b"RCPT TO:<b@y.test> NOTIFY=success,delay ORCPT=rfc822;b+40y.test\r\n"
        b"RCPT TO:<c@y.test> NOTIFY=NEVER ORCPT=utf-8;j\\x{E9}@y.test\r\n"
        b"RCPT TO:<d@y.test> NOTIFY=NEVER,SUCCESS\r\n"
        b"RCPT TO:<e@y.test> ORCPT=rfc822\r\n"
        b"RCPT TO:<f@y.test> XFOO\r\n"
        b"RCPT TO:<>\r\n"
    )
    first, second = s.of(RcptReceived)
    assert isinstance(first, RcptReceived) and isinstance(second, RcptReceived)
    assert first.notify == ("SUCCESS", "DELAY") and first.orcpt == ("rfc822", "b@y.test")
    assert second.notify == ("NEVER",) and second.orcpt == ("utf-8", "j\xe9@y.test")
    assert s.codes()[-4:] == [501, 501, 555, 553]


def test_smtputf8_addresses() -> None:
    s = Session()
    s.feed(HELLO + "MAIL FROM:<j\xe9@x.test>\r\n".encode())
    assert s.codes()[-1] == 553
    s.feed("MAIL FROM:<j\xe9@x.test> SMTPUTF8\r\nRCPT TO:<\u7528\u6237@y.test>\r\n".encode())
    assert s.codes()[-2:] == [250, 250]
    assert s.conn.recipients == ("\u7528\u6237@y.test",)


def test_mail_syntax_errors() -> None:
    s = Session()
    s.feed(HELLO + b"MAIL TO:<a@x.test>\r\nMAIL FROM:a@x.test\r\nMAIL FROM:<a@x.test>junk\r\n")
    s.feed(b"MAIL FROM:<a@@x.test>\r\nMAIL FROM: <a@x.test>\r\n")
    assert s.codes()[1:] == [250, 501, 501, 501, 553, 250]


# -- fuzzing ---------------------------------------------------------------------------

ALPHABET = [
    b"EHLO c.test\r\n",
    b"LHLO c.test\r\n",
    b"MAIL FROM:<a@x.test>\r\n",
    b"RCPT TO:<b@y.test>\r\n",
    b"DATA\r\n",
    b"BDAT 5\r\n",
    b"BDAT 3 LAST\r\n",
    b"STARTTLS\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH LOGIN =\r\n",
    b"*\r\n",
    b"RSET\r\n",
    b"QUIT\r\n",
    b"\r\n.\r\n",
    b".\r\n",
    b"\r",
    b"\n",
    b".",
    b"x" * 600,
]


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.one_of(st.sampled_from(ALPHABET), st.binary(min_size=1, max_size=30)), max_size=40
    ),
    lmtp=st.booleans(),
    eof=st.booleans(),
)
def test_any_byte_stream_raises_only_protocol_errors(
    pieces: list[bytes], lmtp: bool, eof: bool
) -> None:
    s = Session(lmtp=lmtp)
    try:
        for piece in pieces:
            s.feed(piece)
            if s.conn.state is ServerState.TLS_HANDSHAKE:
                s.conn.tls_established()
        if eof:
            s.feed(b"")
    except ProtocolError:
        return
    # every reply was a well-formed line, and nothing is left half-answered
    assert all(line[:3].isdigit() for line in bytes(s.out).split(b"\r\n") if line)
    assert s.conn.replies_due == 0
    if eof:
        assert s.conn.next_event() == ClientDisconnected(clean=s.events[-1].clean)  # type: ignore[attr-defined]  # last event is ClientDisconnected
    else:
        assert s.conn.next_event() in (NEED_DATA, PAUSED)


def test_rejection_reasons_are_printable() -> None:
    s = Session()
    s.feed(HELLO + b"MAIL FROM:<a\x1b@x.test>\r\n")
    rejected = [e for e in s.events if isinstance(e, CommandRejected)]
    for event in rejected:
        assert all(0x20 <= b < 0x7F for b in event.reply.to_bytes()[:-2])


def test_orcpt_length_limit_shared_with_client() -> None:
    s = Session()
    base = HELLO + b"MAIL FROM:<a@x.test>\r\n"
    s.feed(base + b"RCPT TO:<b@y.test> ORCPT=rfc822;" + b"a" * 493 + b"\r\n")
    s.feed(b"RCPT TO:<b@y.test> ORCPT=rfc822;" + b"a" * 494 + b"\r\n")
    assert s.codes()[-2:] == [250, 501]  # 500 characters accepted, 501 refused


# -- AUTH credentials never reach reprs or CommandRejected.line (docs/design.md §4 rule 11) ----

CREDENTIALS = base64.b64encode(b"\x00user\x00hunter2")


def test_auth_requested_repr_hides_the_initial_response() -> None:
    event = AuthRequested(mechanism="PLAIN", initial_response=b"\x00user\x00hunter2")
    assert "hunter2" not in repr(event) and "13 octets" in repr(event)
    assert "None" in repr(AuthRequested(mechanism="LOGIN", initial_response=None))


@pytest.mark.parametrize(
    ("extensions", "before", "line", "code"),
    [
        ((), HELLO, b"AUTH PLAIN " + CREDENTIALS, 503),  # AUTH not advertised
        (("AUTH PLAIN",), b"", b"AUTH PLAIN " + CREDENTIALS, 503),  # before EHLO
        (("AUTH PLAIN",), HELLO + b"MAIL FROM:<a@x.test>\r\n", b"auth plain " + CREDENTIALS, 503),
        (("AUTH LOGIN",), HELLO, b"AUTH PLAIN " + CREDENTIALS, 504),  # not offered
        (("AUTH PLAIN",), HELLO, b"AUTH PLAIN " + CREDENTIALS + b"!", 501),  # bad base64
    ],
)
def test_rejected_auth_line_is_redacted(
    extensions: tuple[str, ...], before: bytes, line: bytes, code: int
) -> None:
    # The built-in server logs CommandRejected.line: a refused AUTH line must not carry
    # the base64 credentials there (nor in the event's repr).
    s = Session(extensions=extensions)
    s.feed(before + line + b"\r\n")
    (rejected,) = [e for e in s.of(CommandRejected) if e.line.upper().startswith(b"AUTH")]
    assert rejected.reply.code == code
    assert rejected.line == line[:10] + b" <redacted>"
    assert CREDENTIALS not in repr(s.events).encode()


def test_rejected_lines_other_than_auth_are_kept() -> None:
    s = Session()
    s.feed(HELLO + b"AUTH\r\nRCPT TO:<b@y.test>\r\n")
    assert [e.line for e in s.of(CommandRejected)] == [b"AUTH", b"RCPT TO:<b@y.test>"]
