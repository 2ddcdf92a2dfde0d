"""The redactor is made when AUTH is sent (issue 14: an idle connection holds none) and
still removes every secret from then on (docs/design.md §4 rule 11).

Until AUTH a connection shares the stateless ``NO_SECRETS``; ``Session.learn_secrets``
gives it a ``Redactor`` of its own, for its events, its errors and a transcript hook
attached from the start. One flow per mechanism that has secrets (PLAIN, LOGIN,
CRAM-MD5, SCRAM, XOAUTH2), both reply parser twins.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
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
    CommandReply,
    Noop,
)
from smtpproto.client_engine.redaction import NO_SECRETS, NoSecrets, Redactor
from smtpproto.sasl import CramMD5, Login, Plain, ScramSHA256, XOAuth2
from smtpproto.wire.errors import RemoteProtocolError

SECRET = "Zq8-lazy-Secret-77"
EHLO = b"250-mx\r\n250 AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 XOAUTH2\r\n"


def _b64(text: bytes) -> bytes:
    return base64.b64encode(text)


def _plain(conn: ClientConnection) -> None:
    conn.send(Auth(mechanism=Plain("alice", SECRET)))


def _login(conn: ClientConnection) -> None:
    conn.send(Auth(mechanism=Login("alice", SECRET)))
    for prompt in (b"Username:", b"Password:"):
        (event,) = feed(conn, b"334 " + _b64(prompt) + b"\r\n")
        assert isinstance(event, AuthChallenge) and event.challenge == prompt
        conn.send(AuthContinue())


def _cram_md5(conn: ClientConnection) -> None:
    conn.send(Auth(mechanism=CramMD5("alice", SECRET)))
    (event,) = feed(conn, b"334 " + _b64(b"<1896.697170952@mx.example>") + b"\r\n")
    assert isinstance(event, AuthChallenge)
    conn.send(AuthContinue())


def _scram(conn: ClientConnection) -> None:
    conn.send(Auth(mechanism=ScramSHA256("alice", SECRET)))


def _xoauth2(conn: ClientConnection) -> None:
    conn.send(Auth(mechanism=XOAuth2("alice", SECRET)))


FLOWS: dict[str, Callable[[ClientConnection], None]] = {
    "PLAIN": _plain,
    "LOGIN": _login,
    "CRAM-MD5": _cram_md5,
    "SCRAM-SHA-256": _scram,
    "XOAUTH2": _xoauth2,
}


def _connection(parser_cls: Any, lines: list[bytes]) -> ClientConnection:
    return greeted(
        parser_cls,
        EHLO,
        tls_policy=TLSPolicy.IMPLICIT,
        transcript=lambda _direction, line: lines.append(line),
    )


def _hidden(text: str | bytes) -> bool:
    data = text.encode() if isinstance(text, str) else text
    return SECRET.encode() not in data and _b64(SECRET.encode()) not in data


def test_a_connection_holds_no_redactor_before_auth(parser_cls: Any) -> None:
    conn = _connection(parser_cls, [])
    assert conn._s.redactor is NO_SECRETS
    assert not NO_SECRETS.active and not hasattr(NO_SECRETS, "add_secrets")
    assert NoSecrets.__slots__ == ()  # no state to share


@pytest.mark.parametrize("flow", FLOWS)
def test_every_secret_is_removed_once_auth_is_sent(parser_cls: Any, flow: str) -> None:
    lines: list[bytes] = []
    conn = _connection(parser_cls, lines)
    FLOWS[flow](conn)
    redactor = conn._s.redactor
    assert isinstance(redactor, Redactor) and redactor.active
    assert conn._s.transcript is not None and conn._s.transcript.redactor is redactor
    echo = SECRET.encode()
    # A 535 echoing the secret and its base64, over two lines.
    (failed,) = feed(conn, b"535-5.7.8 no " + echo + b"\r\n535 5.7.8 " + _b64(echo) + b"\r\n")
    assert isinstance(failed, AuthFailed)
    assert failed.reply.raw_lines == (b"5.7.8 no <redacted>", b"5.7.8 <redacted>")
    assert _hidden(repr(failed))
    # A later reply, in another letter case.
    conn.send(Noop())
    (noop,) = feed(conn, b"250 2.0.0 ok " + echo.upper() + b"\r\n")
    assert isinstance(noop, CommandReply) and noop.reply.raw_lines == (b"2.0.0 ok <redacted>",)
    # An error leaving the connection, and the sticky one after it.
    with pytest.raises(RemoteProtocolError) as caught:
        feed(conn, b"250 unsolicited " + echo + b"\r\n")
    assert "unsolicited" in str(caught.value) and _hidden(str(caught.value))
    with pytest.raises(RemoteProtocolError) as again:
        conn.next_event()
    assert _hidden(str(again.value))
    # The transcript attached before AUTH: every line after it is redacted too.
    assert lines and all(_hidden(line) for line in lines)
    assert any(b"<redacted>" in line for line in lines)
    # The shared instance learnt nothing.
    assert NO_SECRETS.active is False and NO_SECRETS.redact(echo) == echo


def test_another_connection_learns_nothing_from_one_that_authenticated(parser_cls: Any) -> None:
    authed = _connection(parser_cls, [])
    _plain(authed)
    other_lines: list[bytes] = []
    other = _connection(parser_cls, other_lines)
    assert other._s.redactor is NO_SECRETS and authed._s.redactor is not NO_SECRETS
    other.send(Noop())
    (event,) = feed(other, b"250 " + SECRET.encode() + b"\r\n")
    # Not redacted: the other connection never sent these secrets (nothing is shared).
    assert isinstance(event, CommandReply) and event.reply.raw_lines == (SECRET.encode(),)
    assert other_lines[-1] == b"250 " + SECRET.encode()


def test_a_second_auth_adds_to_the_same_redactor(parser_cls: Any) -> None:
    conn = _connection(parser_cls, [])
    conn.send(Auth(mechanism=Plain("alice", "first-Secret-1")))
    (event,) = feed(conn, b"535 5.7.8 no\r\n")
    assert isinstance(event, AuthFailed)
    redactor = conn._s.redactor
    conn.send(Auth(mechanism=Login("alice", SECRET)))
    assert conn._s.redactor is redactor  # one redactor per connection, kept
    (event,) = feed(conn, b"535 5.7.8 first-Secret-1 " + SECRET.encode() + b"\r\n")
    assert isinstance(event, AuthFailed)
    assert event.reply.raw_lines == (b"5.7.8 <redacted> <redacted>",)


def test_a_mechanism_without_secrets_long_enough_still_gets_a_redactor(
    parser_cls: Any,
) -> None:
    """A three-letter password is below ``MIN_REDACTED_SECRET``: the connection gets
    its own (inactive) redactor and shows the reply unchanged, as before."""
    conn = _connection(parser_cls, [])
    conn.send(Auth(mechanism=Login("alice", "abc")))
    assert isinstance(conn._s.redactor, Redactor) and not conn._s.redactor.active
    (event,) = feed(conn, b"535 5.7.8 abc\r\n")
    assert isinstance(event, AuthFailed) and event.reply.raw_lines == (b"5.7.8 abc",)


def test_a_transcript_hook_from_the_start_sees_no_auth_answer(parser_cls: Any) -> None:
    """LOGIN's answers (base64 user name and password) never reach the transcript."""
    seen: list[tuple[str, bytes]] = []
    conn = greeted(
        parser_cls,
        EHLO,
        tls_policy=TLSPolicy.IMPLICIT,
        transcript=lambda direction, line: seen.append((direction, line)),
    )
    _login(conn)
    sent = [line for direction, line in seen if direction == "C"]
    assert sent[-3:] == [b"AUTH LOGIN", b"<redacted>", b"<redacted>"]
    assert all(_hidden(line) and _b64(b"alice") not in line for _, line in seen)
