"""The client engine removes AUTH secrets from all server text (issue 11, security item 2).

``client_engine.transcript.Redactor`` learns the mechanism's secrets when AUTH is sent;
from then on every reply the connection parses is redacted before an event is built,
every ``ProtocolError`` leaving the connection loses them, and a challenge that carries
one is answered with ``*``. Both reply parser twins. The adapter side (exceptions
through blocking, asyncio and trio) is ``tests/adapters/test_secret_redaction.py``.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from engine_helpers import feed, greeted
from smtpproto.client_engine.config import TLSPolicy
from smtpproto.client_engine.connection import ClientConnection
from smtpproto.client_engine.events import (
    Auth,
    AuthChallenge,
    AuthContinue,
    AuthFailed,
    AuthSucceeded,
    Mail,
    Noop,
)
from smtpproto.client_engine.redaction import (
    MIN_REDACTED_SECRET,
    REDACTED,
    Redactor,
    base64_cores,
)
from smtpproto.sasl import Login, Plain, ScramSHA256
from smtpproto.wire.errors import RemoteProtocolError
from smtpproto.wire.reply import Reply

PASSWORD = "s3cret-Pa55w0rd"
B64 = base64.b64encode(PASSWORD.encode()).decode()
PLAIN = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()


def _authed(parser_cls: Any, lines: list[bytes], ehlo: bytes) -> ClientConnection:
    return greeted(
        parser_cls,
        ehlo,
        tls_policy=TLSPolicy.IMPLICIT,
        transcript=lambda _direction, line: lines.append(line),
    )


@pytest.mark.parametrize("echo", [PASSWORD, B64, PLAIN])
def test_an_auth_failure_event_is_redacted(parser_cls: Any, echo: str) -> None:
    lines: list[bytes] = []
    conn = _authed(parser_cls, lines, b"250-mx\r\n250 AUTH PLAIN\r\n")
    conn.send(Auth(mechanism=Plain("alice", PASSWORD)))
    (event,) = feed(conn, f"535-5.7.8 no {echo}\r\n535 5.7.8 {echo}!\r\n".encode())
    assert isinstance(event, AuthFailed)
    assert event.reply == Reply(535, (b"5.7.8 no <redacted>", b"5.7.8 <redacted>!"))
    assert echo not in repr(event) and echo not in str(event.reply)
    assert not any(echo.encode() in line for line in lines)


def test_before_auth_nothing_is_redacted(parser_cls: Any) -> None:
    """The secrets are learnt when AUTH is sent, not before."""
    conn = _authed(parser_cls, [], b"250-mx\r\n250 AUTH PLAIN\r\n")
    conn.send(Noop())
    (event,) = feed(conn, f"250 {PASSWORD}\r\n".encode())
    assert event.reply.raw_lines == (PASSWORD.encode(),)  # type: ignore[attr-defined]


def test_replies_after_a_successful_auth_stay_redacted(parser_cls: Any) -> None:
    conn = _authed(parser_cls, [], b"250-mx\r\n250 AUTH PLAIN\r\n")
    conn.send(Auth(mechanism=Plain("alice", PASSWORD)))
    (event,) = feed(conn, b"235 2.7.0 ok\r\n")
    assert isinstance(event, AuthSucceeded)
    conn.send(Mail(sender="a@example.org"))
    events = feed(conn, f"451 4.3.0 {PASSWORD} busy\r\n".encode())
    assert events and all(PASSWORD not in repr(event) for event in events)
    assert events[0].reply.raw_lines == (b"4.3.0 <redacted> busy",)  # type: ignore[attr-defined]


def test_a_protocol_error_message_is_redacted(parser_cls: Any) -> None:
    conn = _authed(parser_cls, [], b"250-mx\r\n250 AUTH PLAIN\r\n")
    conn.send(Auth(mechanism=Plain("alice", PASSWORD)))
    feed(conn, b"235 2.7.0 ok\r\n")
    with pytest.raises(RemoteProtocolError) as caught:
        feed(conn, f"250 unsolicited {PASSWORD}\r\n".encode())
    assert "unsolicited" in str(caught.value) and PASSWORD not in str(caught.value)
    assert "<redacted>" in str(caught.value)
    with pytest.raises(RemoteProtocolError) as again:  # the sticky error, too
        conn.next_event()
    assert PASSWORD not in str(again.value)


def test_a_challenge_carrying_the_password_is_cancelled(parser_cls: Any) -> None:
    conn = _authed(parser_cls, [], b"250-mx\r\n250 AUTH LOGIN\r\n")
    conn.send(Auth(mechanism=Login("alice", PASSWORD)))
    (event,) = feed(conn, b"334 " + base64.b64encode(b"Username:") + b"\r\n")
    assert isinstance(event, AuthChallenge) and event.challenge == b"Username:"
    conn.send(AuthContinue())
    echo = base64.b64encode(b"Password (was " + PASSWORD.encode() + b")")
    (event,) = feed(conn, b"334 " + echo + b"\r\n")
    assert isinstance(event, AuthChallenge) and event.challenge is None
    assert PASSWORD not in repr(event)
    assert conn.send(AuthContinue()) == b"*\r\n"


def test_the_redactor_on_each_side_of_the_minimum_length() -> None:
    redactor = Redactor()
    assert not redactor.active
    short = b"x" * (MIN_REDACTED_SECRET - 1)
    redactor.add_secrets([short])
    assert redactor.redact(b"a" + short) == b"a" + short  # too short to hunt
    # nor its base64, which carries no more than the secret (a chance match, no echo)
    assert redactor.redact(base64.b64encode(short)) == base64.b64encode(short)
    assert not redactor.active
    exact = b"y" * MIN_REDACTED_SECRET
    redactor.add_secrets([exact])
    assert redactor.active and redactor.redact(b"a" + exact) == b"a<redacted>"
    error = RemoteProtocolError(f"got {exact.decode()}")
    redactor.error(error)
    assert str(error) == "got <redacted>"


def test_a_secret_whose_text_form_is_short_does_not_shred_messages() -> None:
    """Four UTF-8 octets that are two characters: the bytes are hunted, the text is
    too short to be (an empty alternation would match everywhere)."""
    redactor = Redactor()
    redactor.add_secrets(["\u00e9\u00e9".encode()])
    error = RemoteProtocolError("plain text")
    redactor.error(error)
    assert str(error) == "plain text"
    assert redactor.redact("a\u00e9\u00e9".encode()) == b"a<redacted>"


def _recoverable(text: bytes) -> bytes:
    """Everything the base64 words of ``text`` decode to, at every alignment."""
    decoded = b""
    for word in re.findall(rb"[A-Za-z0-9+/]+", text):
        for skip in range(4):
            chunk = word[skip:]
            decoded += base64.b64decode(chunk[: len(chunk) // 4 * 4]) + b"|"
    return decoded


@pytest.mark.parametrize("prefix", [b"", b"x", b"xy", b"\0alice\0", b"you sent: alice "])
@pytest.mark.parametrize("suffix", [b"", b"!", b" ok"])
def test_a_secret_inside_a_longer_base64_value_is_redacted(
    parser_cls: Any, prefix: bytes, suffix: bytes
) -> None:
    """The base64 of the password depends on where it sits: every alignment is hunted,
    and the whole base64 word that holds it goes."""
    echo = base64.b64encode(prefix + PASSWORD.encode() + suffix).decode()
    conn = _authed(parser_cls, [], b"250-mx\r\n250 AUTH PLAIN\r\n")
    conn.send(Auth(mechanism=Plain("alice", PASSWORD)))
    (event,) = feed(conn, f"535 5.7.8 user=bob {echo} (bad)\r\n".encode())
    assert isinstance(event, AuthFailed)
    assert event.reply.raw_lines == (b"5.7.8 user=bob <redacted> (bad)",)


@pytest.mark.parametrize("echo", [PLAIN, B64, PASSWORD])
def test_a_secret_split_over_the_lines_of_a_reply_is_redacted(parser_cls: Any, echo: str) -> None:
    """A server may cut what it echoes anywhere over a multiline reply: no line, nor
    the lines put back together, gives the password (or its base64) away."""
    for cut in range(1, len(echo)):
        conn = _authed(parser_cls, [], b"250-mx\r\n250 AUTH PLAIN\r\n")
        conn.send(Auth(mechanism=Plain("alice", PASSWORD)))
        (event,) = feed(conn, f"535-{echo[:cut]}\r\n535 {echo[cut:]}\r\n".encode())
        assert isinstance(event, AuthFailed)
        lines = event.reply.raw_lines
        joined = b"".join(lines).replace(b"<redacted>", b"")
        assert PASSWORD.encode() not in joined, cut
        assert PASSWORD.encode() not in _recoverable(joined), cut
        assert b"<redacted>" in lines[-1] or lines[-1] == b"", (cut, lines)


def test_a_core_is_widened_within_its_line_only() -> None:
    redactor = Redactor()
    redactor.add_secrets([PASSWORD.encode()])
    echo = base64.b64encode(b"x" + PASSWORD.encode()).decode()
    reply = redactor.reply(Reply(535, (f"5.7.8 {echo}".encode(), b"5.7.8 ABCD")))
    assert reply.raw_lines == (b"5.7.8 <redacted>", b"5.7.8 ABCD")
    error = RemoteProtocolError(f"bad reply line b'535 {echo}'")
    redactor.error(error)
    assert str(error) == "bad reply line b'535 <redacted>'"


def test_base64_cores_on_each_side_of_the_minimum() -> None:
    """A core encodes the secret alone; one under eight characters could be chance."""
    assert base64_cores(b"abcdef") == [b"YWJjZGVm"]  # 6 octets: only the aligned core
    assert len(base64_cores(b"abcdefgh")) == 3  # 8 octets: all three alignments
    assert base64_cores(b"abcde") == []
    redactor = Redactor()
    redactor.add_secrets([b"abc"])  # too short: unrelated text is untouched
    assert redactor.redact(b"250 2.1.0 abcdef OK") == b"250 2.1.0 abcdef OK"


@pytest.mark.parametrize("password", [",", "ab", "xyz"])
def test_a_challenge_holding_the_base64_of_a_short_password_is_answered(
    parser_cls: Any, password: str
) -> None:
    """A password too short to hunt is not looked for in a challenge, nor is its
    base64: a SCRAM salt whose base64 ends in ``LA==`` (one in 256 for the password
    ``,``) got ``*`` and failed a good login (a hypothesis round trip found it)."""
    salt = "AAAA" + base64.b64encode(password.encode()).decode()  # "AAAALA==" for ","
    assert base64.b64decode(salt) == b"\0\0\0" + password.encode()
    conn = _authed(parser_cls, [], b"250-mx\r\n250 AUTH SCRAM-SHA-256\r\n")
    conn.send(Auth(mechanism=ScramSHA256("alice", password, _nonce="clientnonce")))
    server_first = f"r=clientnonceSERVER,s={salt},i=4096".encode()
    (event,) = feed(conn, b"334 " + base64.b64encode(server_first) + b"\r\n")
    assert isinstance(event, AuthChallenge) and event.challenge == server_first
    answer = conn.send(AuthContinue())
    assert answer != b"*\r\n" and base64.b64decode(answer).startswith(b"c=biws,r=clientnonce")


CASED = "Secret123-Pässwort"


@pytest.mark.parametrize(
    "echo",
    [CASED.upper(), CASED.lower(), CASED.swapcase(), "sECRET123-Pässwort", CASED],
)
def test_the_password_echoed_in_another_letter_case_is_redacted(parser_cls: Any, echo: str) -> None:
    # ASCII letters in any case; the non-ASCII ones all-upper or all-lower (ä/Ä).
    lines: list[bytes] = []
    conn = _authed(parser_cls, lines, b"250-mx\r\n250 AUTH PLAIN\r\n")
    conn.send(Auth(mechanism=Plain("alice", CASED)))
    (event,) = feed(conn, f"535-5.7.8 no {echo}\r\n535 5.7.8 {echo}!\r\n".encode())
    assert isinstance(event, AuthFailed)
    assert event.reply == Reply(535, (b"5.7.8 no <redacted>", b"5.7.8 <redacted>!"))
    assert not any(echo.encode() in line for line in lines)
    conn.send(Mail(sender="a@example.org"))
    with pytest.raises(RemoteProtocolError) as caught:  # a ProtocolError's message too
        feed(conn, f"250 unsolicited {echo}\r\n250 again\r\n".encode())
    assert echo not in str(caught.value)


def test_base64_is_matched_in_its_own_case_only() -> None:
    """Base64 letters are data: the secret's base64 in another case is other octets,
    and folding case would redact innocent base64 (nonces, salts)."""
    redactor = Redactor()
    redactor.add_secrets([b"Secret123"])
    encoded = base64.b64encode(b"Secret123")
    assert redactor.redact(encoded) == REDACTED
    assert redactor.redact(encoded.swapcase()) == encoded.swapcase()
    assert base64.b64decode(encoded.swapcase()) != b"Secret123"
    assert redactor.redact(b"x SECRET123 y") == b"x <redacted> y"


def test_a_challenge_naming_the_password_in_another_case_is_hidden_not_refused(
    parser_cls: Any,
) -> None:
    """AUTH LOGIN with the password "password": its "Password:" prompt holds it in
    another case. The prompt is answered (cancelling would fail a good login), but no
    event shows it; the exact password in a challenge still cancels."""
    conn = _authed(parser_cls, [], b"250-mx\r\n250 AUTH LOGIN\r\n")
    conn.send(Auth(mechanism=Login("alice", "password")))
    (event,) = feed(conn, b"334 " + base64.b64encode(b"Username:") + b"\r\n")
    conn.send(AuthContinue())
    (event,) = feed(conn, b"334 " + base64.b64encode(b"Password:") + b"\r\n")
    assert isinstance(event, AuthChallenge) and event.challenge is None  # hidden
    assert conn.send(AuthContinue()) == base64.b64encode(b"password") + b"\r\n"
    (event,) = feed(conn, b"235 2.7.0 ok\r\n")
    assert isinstance(event, AuthSucceeded)
