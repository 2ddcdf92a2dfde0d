"""What ``receive_data`` will hold, both engines (docs/design.md §2 "Bounded").

A caller that feeds octets without calling ``next_event`` in between (a framework
vendoring the engine, not the bundled adapters, which interleave) made the client and
the server engine hold everything it fed. ``max_receive_buffer``
(``DEFAULT_MAX_RECEIVE_BUFFER``) caps the octets fed and not yet consumed: a chunk that
would take them past the cap is refused with ``LocalProtocolError`` before anything is
stored, the connection stays as it was (everything fed below the cap is still parsed),
and after ``next_event`` has consumed the backlog feeding goes on. The client's buffer
logic is the connection's (the parser twins only hold one reply, bounded by
``max_reply_bytes``); the tests run with both twins anyway.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine_helpers import make_conn, names
from smtpproto.client_engine.config import ClientConfig
from smtpproto.client_engine.events import NEED_DATA, Greeting
from smtpproto.client_engine.states import ClientState
from smtpproto.server_engine.config import ServerConfig
from smtpproto.server_engine.connection import ServerConnection
from smtpproto.server_engine.events import ContentReceived, DataRequested, MessageComplete
from smtpproto.server_engine.replies import ehlo_reply, greeting, ok, start_mail_input
from smtpproto.server_engine.states import ServerState
from smtpproto.wire.errors import LocalProtocolError
from smtpproto.wire.limits import DEFAULT_MAX_RECEIVE_BUFFER

CAP = 4096
PIECE = 512


def _greeting_of(total: int) -> bytes:
    """A multiline 220 greeting of exactly ``total`` octets (64-octet lines)."""
    line = b"220-" + b"g" * 58 + b"\r\n"
    count, rest = divmod(total, len(line))
    last = b"220 " + b"h" * (rest + len(line) - 6) + b"\r\n"
    data = line * (count - 1) + last
    assert len(data) == total
    return data


def _client(parser_cls: Any) -> Any:
    return make_conn(
        parser_cls, max_reply_line_length=512, max_reply_bytes=CAP, max_receive_buffer=CAP
    )


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_client_holds_exactly_the_cap_and_loses_nothing(parser_cls: Any, kind: type) -> None:
    conn = _client(parser_cls)
    data = _greeting_of(CAP)
    for start in range(0, CAP, PIECE):  # at the bound, in pieces, no next_event between
        conn.receive_data(kind(data[start : start + PIECE]))
    event = conn.next_event()
    assert isinstance(event, Greeting)
    assert event.reply.to_bytes() == data
    assert conn.next_event() is NEED_DATA


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_client_refuses_one_octet_past_the_cap_and_stays_usable(
    parser_cls: Any, kind: type
) -> None:
    conn = _client(parser_cls)
    data = _greeting_of(CAP)
    conn.receive_data(data[: CAP - 1])
    conn.receive_data(data[CAP - 1 :])  # the cap reached, not crossed
    with pytest.raises(LocalProtocolError, match=f"max_receive_buffer={CAP}.*next_event"):
        conn.receive_data(kind(b"2"))
    assert conn.state is ClientState.GREETING  # nothing stored, nothing changed
    assert names([conn.next_event()]) == ["Greeting"]
    conn.receive_data(b"x" * CAP)  # consumed: the whole cap is free again


def test_client_refuses_a_single_chunk_over_the_cap(parser_cls: Any) -> None:
    conn = _client(parser_cls)
    with pytest.raises(LocalProtocolError, match="max_receive_buffer"):
        conn.receive_data(b"2" * (CAP + 1))
    conn.receive_data(_greeting_of(CAP))
    assert names([conn.next_event()]) == ["Greeting"]


def test_client_default_and_config_checks() -> None:
    assert ClientConfig().max_receive_buffer == DEFAULT_MAX_RECEIVE_BUFFER
    assert DEFAULT_MAX_RECEIVE_BUFFER >= 4 * 1024 * 1024
    with pytest.raises(LocalProtocolError, match="max_receive_buffer"):
        ClientConfig(max_receive_buffer=ClientConfig().max_reply_bytes - 1)
    with pytest.raises(LocalProtocolError, match="max_receive_buffer"):
        ClientConfig(max_receive_buffer=float(CAP))  # type: ignore[arg-type]
    ClientConfig(max_receive_buffer=ClientConfig().max_reply_bytes)


def test_client_many_small_feeds_are_bounded(parser_cls: Any) -> None:
    """The review's case: many chunks without ``next_event`` (256 x 64 KiB there)."""
    conn = make_conn(parser_cls)
    chunk = b"2" * 65536
    fed = 0
    with pytest.raises(LocalProtocolError, match="max_receive_buffer"):
        for _ in range(DEFAULT_MAX_RECEIVE_BUFFER // len(chunk) + 1):
            conn.receive_data(chunk)
            fed += len(chunk)
    assert fed == DEFAULT_MAX_RECEIVE_BUFFER


# -- server -------------------------------------------------------------------------------


def _server_in_data() -> ServerConnection:
    conn = ServerConnection(
        config=ServerConfig(max_pipelined_input=CAP, max_receive_buffer=2 * CAP)
    )
    conn.send(greeting("mx.test"))
    conn.receive_data(b"EHLO c.test\r\n")
    conn.next_event()
    conn.send(ehlo_reply("mx.test", ["PIPELINING", "8BITMIME"]))
    conn.receive_data(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n")
    conn.next_event()
    conn.send(ok())
    conn.next_event()
    conn.send(ok())
    assert isinstance(conn.next_event(), DataRequested)
    conn.send(start_mail_input())
    return conn


def _content(total: int) -> bytes:
    """DATA content of exactly ``total`` octets, end marker included."""
    end = b"\r\n.\r\n"
    line = b"x" * 62 + b"\r\n"
    count, rest = divmod(total - len(end) - 2, len(line))
    data = line * count + b"y" * rest + b"\r\n" + end
    assert len(data) == total
    return data


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_server_holds_exactly_the_cap_and_loses_nothing(kind: type) -> None:
    conn = _server_in_data()
    data = _content(2 * CAP)
    for start in range(0, len(data), PIECE):
        conn.receive_data(kind(data[start : start + PIECE]))
    received = b""
    while not isinstance(event := conn.next_event(), MessageComplete):
        assert isinstance(event, ContentReceived), event
        received += event.data
    assert received == data[:-3]


def test_server_refuses_one_octet_past_the_cap_and_stays_usable() -> None:
    conn = _server_in_data()
    data = _content(2 * CAP)
    conn.receive_data(data[:-5])
    conn.receive_data(data[-5:])  # the cap reached, not crossed
    with pytest.raises(LocalProtocolError, match=f"max_receive_buffer={2 * CAP}.*next_event"):
        conn.receive_data(b"Q")
    assert conn.state is not ServerState.ERROR
    events = []
    while not isinstance(event := conn.next_event(), MessageComplete):
        events.append(event)
    assert b"".join(e.data for e in events if isinstance(e, ContentReceived)) == data[:-3]
    conn.send(ok())
    conn.receive_data(b"Q" * (2 * CAP))  # consumed: the whole cap is free again


def test_server_default_and_config_checks() -> None:
    assert ServerConfig().max_receive_buffer == DEFAULT_MAX_RECEIVE_BUFFER
    with pytest.raises(ValueError, match="max_receive_buffer"):
        ServerConfig(max_pipelined_input=CAP, max_receive_buffer=CAP - 1)
    with pytest.raises(ValueError, match="max_receive_buffer"):
        ServerConfig(max_receive_buffer="big")  # type: ignore[arg-type]
    ServerConfig(max_pipelined_input=CAP, max_receive_buffer=CAP)


def test_server_many_small_feeds_are_bounded() -> None:
    conn = ServerConnection()
    conn.send(greeting("mx.test"))
    chunk = b"x" * 65536
    fed = 0
    with pytest.raises(LocalProtocolError, match="max_receive_buffer"):
        for _ in range(DEFAULT_MAX_RECEIVE_BUFFER // len(chunk) + 1):
            conn.receive_data(chunk)
            fed += len(chunk)
    assert fed == DEFAULT_MAX_RECEIVE_BUFFER
