"""Engine limits that lacked a test exactly at their bound and one past it.

docs/design.md §2: every buffer (and every guard) is bounded by a named limit, with a test
at and past the bound. The reply parser, DATA codec, command-line and message-size
limits have theirs next to their rules; these are the rest: the client's AUTH
challenge guard (``DEFAULT_MAX_AUTH_ROUNDS``) and the server's MAIL/RCPT and AUTH line
limits, unanswered pipelined input and DATA line length.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from engine_helpers import feed, greeted
from server_support import Session
from smtpproto.client_engine.config import DEFAULT_MAX_AUTH_ROUNDS, ClientConfig
from smtpproto.client_engine.events import Auth, AuthContinue
from smtpproto.sasl import ClientMechanism
from smtpproto.server_engine.config import (
    DEFAULT_MAX_AUTH_LINE,
    DEFAULT_MAX_MAIL_RCPT_LINE,
    DEFAULT_MAX_PIPELINED_INPUT,
    ServerConfig,
)
from smtpproto.server_engine.connection import ServerConnection
from smtpproto.server_engine.events import PAUSED, NoopReceived
from smtpproto.server_engine.replies import greeting
from smtpproto.server_engine.states import ServerState
from smtpproto.wire.errors import RemoteProtocolError

HELLO = b"EHLO c.test\r\n"


class Echo(ClientMechanism):
    """Answers every challenge: only the engine's guard can end the exchange."""

    name = "X-ECHO"

    def initial_response(self) -> bytes | None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        return b"answer"


@pytest.mark.parametrize("rounds", [1, 3, DEFAULT_MAX_AUTH_ROUNDS])
def test_auth_rounds_at_and_past_the_bound(parser_cls: Any, rounds: int) -> None:
    conn = greeted(
        parser_cls,
        b"250-mx.test\r\n250 AUTH X-ECHO\r\n",
        allow_cleartext_auth=True,
        max_auth_rounds=rounds,
    )
    conn.send(Auth(mechanism=Echo()))
    challenge = b"334 " + base64.b64encode(b"more") + b"\r\n"
    for _ in range(rounds):  # at the bound: every challenge answered by the mechanism
        feed(conn, challenge)
        assert conn.send(AuthContinue()) == base64.b64encode(b"answer") + b"\r\n"
    feed(conn, challenge)  # one past: the guard cancels (RFC 4954 §4)
    assert conn.send(AuthContinue()) == b"*\r\n"


def test_default_auth_rounds_is_the_config_default() -> None:
    assert ClientConfig().max_auth_rounds == DEFAULT_MAX_AUTH_ROUNDS


def _line(verb: bytes, total: int) -> bytes:
    """``verb`` padded with trailing spaces to ``total`` octets including CRLF."""
    line = verb + b" " * (total - len(verb) - 2) + b"\r\n"
    assert len(line) == total
    return line


@pytest.mark.parametrize(
    ("total", "code"),
    [(DEFAULT_MAX_MAIL_RCPT_LINE, 250), (DEFAULT_MAX_MAIL_RCPT_LINE + 1, 500)],
)
def test_mail_line_at_and_past_the_bound(total: int, code: int) -> None:
    s = Session()
    s.feed(HELLO, _line(b"MAIL FROM:<a@x.test>", total))
    assert s.codes()[-1] == code


@pytest.mark.parametrize(
    ("total", "code"),
    [(DEFAULT_MAX_MAIL_RCPT_LINE, 250), (DEFAULT_MAX_MAIL_RCPT_LINE + 1, 500)],
)
def test_rcpt_line_at_and_past_the_bound(total: int, code: int) -> None:
    s = Session()
    s.feed(HELLO, b"MAIL FROM:<a@x.test>\r\n", _line(b"RCPT TO:<b@y.test>", total))
    assert s.codes()[-1] == code


@pytest.mark.parametrize(
    ("total", "accepted"), [(DEFAULT_MAX_AUTH_LINE, True), (DEFAULT_MAX_AUTH_LINE + 1, False)]
)
def test_auth_continuation_line_at_and_past_the_bound(total: int, accepted: bool) -> None:
    # RFC 4954 §4: 12288 octets; the response is base64 padded out with "A"s.
    s = Session()
    s.feed(HELLO, b"AUTH LOGIN\r\n")
    assert s.codes()[-1] == 334
    s.feed(b"A" * (total - 2) + b"\r\n")
    assert (s.codes()[-1] != 500) is accepted


@pytest.mark.parametrize(
    ("total", "accepted"), [(DEFAULT_MAX_AUTH_LINE, True), (DEFAULT_MAX_AUTH_LINE + 1, False)]
)
def test_auth_command_line_at_and_past_the_bound(total: int, accepted: bool) -> None:
    s = Session()
    head = b"AUTH LOGIN "
    s.feed(HELLO, head + b"A" * (total - len(head) - 2) + b"\r\n")
    assert (s.codes()[-1] != 500) is accepted


def test_pipelined_input_at_and_past_the_bound() -> None:
    bound = 4096
    conn = ServerConnection(config=ServerConfig(max_pipelined_input=bound))
    conn.send(greeting("mx.test"))
    conn.receive_data(b"NOOP\r\n" + b"x" * bound)
    assert conn.next_event() == NoopReceived()
    assert conn.next_event() is PAUSED  # exactly the bound held while the reply is due
    conn.receive_data(b"x")
    with pytest.raises(RemoteProtocolError, match=str(bound)):
        conn.next_event()
    assert conn.state is ServerState.ERROR


def test_default_pipelined_input_is_the_config_default() -> None:
    assert ServerConfig().max_pipelined_input == DEFAULT_MAX_PIPELINED_INPUT


@pytest.mark.parametrize(("length", "ok"), [(1000, True), (1001, False)])
def test_server_data_line_at_and_past_the_bound(length: int, ok: bool) -> None:
    s = Session(config=ServerConfig(max_data_line=1000))
    s.feed(HELLO, b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n")
    s.conn.receive_data(b"x" * length + b"\r\n.\r\n")
    if ok:
        s.pump()
        assert s.content() == b"x" * length + b"\r\n"
        assert s.codes()[-1] == 250
    else:
        with pytest.raises(RemoteProtocolError):
            s.conn.next_event()
        assert s.conn.state is ServerState.ERROR
