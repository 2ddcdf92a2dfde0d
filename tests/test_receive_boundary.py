"""One receive boundary (h11's rule, docs/design.md §2): any exception escaping a public
method of ``ClientConnection`` or ``ServerConnection`` — not only a ``ProtocolError`` —
leaves the connection in the sticky ERROR state before it propagates. Caller misuse the
server finds before changing anything still leaves it usable."""

from __future__ import annotations

from typing import Any, Literal

import pytest

from engine_helpers import EHLO_ALL, drain, make_conn
from smtpproto.client_engine.config import ClientConfig
from smtpproto.client_engine.connection import ClientConnection
from smtpproto.client_engine.events import Auth, AuthContinue, Ehlo, Noop
from smtpproto.client_engine.states import ClientState
from smtpproto.sasl.mechanisms import ClientMechanism
from smtpproto.server_engine import connection as server_connection
from smtpproto.server_engine.connection import ServerConnection
from smtpproto.server_engine.replies import ehlo_reply, greeting, ok
from smtpproto.server_engine.states import ServerState
from smtpproto.wire.errors import LocalProtocolError, ProtocolError
from smtpproto.wire.reply import Reply


class Boom(Exception):
    """The unexpected exception injected into the engine."""


class Faulty(ClientMechanism):
    """A mechanism that fails with something other than ``SASLError``."""

    name = "PLAIN"

    def __init__(self, where: str) -> None:
        self.where = where

    def initial_response(self) -> bytes | None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        if self.where == "respond":
            raise Boom("respond")
        return b"answer"

    def finish(self) -> None:
        if self.where == "finish":
            raise Boom("finish")


def greeted(parser_cls: Any, **config: Any) -> ClientConnection:
    conn = make_conn(parser_cls, allow_cleartext_auth=True, **config)
    conn.receive_data(b"220 mx.example.org ESMTP\r\n")
    drain(conn)
    conn.send(Ehlo(hostname="client.example"))
    conn.receive_data(EHLO_ALL)
    drain(conn)
    return conn


def assert_client_error(conn: ClientConnection) -> None:
    assert conn.state is ClientState.ERROR
    with pytest.raises(ProtocolError):  # sticky: nothing works any more
        conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())


def test_mechanism_respond_raising_moves_client_to_error(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Auth(mechanism=Faulty("respond")))
    conn.receive_data(b"334 \r\n")
    drain(conn)
    assert conn.state is ClientState.AUTH_CHALLENGED
    with pytest.raises(Boom):
        conn.send(AuthContinue())
    assert_client_error(conn)


def test_mechanism_finish_raising_moves_client_to_error(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Auth(mechanism=Faulty("finish")))
    conn.receive_data(b"235 2.7.0 ok\r\n")
    with pytest.raises(Boom):
        conn.next_event()
    assert_client_error(conn)


def test_parser_raising_moves_client_to_error(parser_cls: Any) -> None:
    def factory(**limits: Any) -> Any:
        parser = parser_cls(**limits)

        class Broken:
            buffered = property(lambda self: parser.buffered)
            failed = property(lambda self: parser.failed)

            def feed(self, data: bytes) -> Any:
                raise Boom("parser")

            def feed_eof(self) -> None:
                parser.feed_eof()

        return Broken()

    conn = ClientConnection(ClientConfig(parser_factory=factory))
    conn.receive_data(b"220 mx.example.org ESMTP\r\n")
    with pytest.raises(Boom):
        conn.next_event()
    assert_client_error(conn)


@pytest.mark.parametrize("direction", ["C", "S"])
@pytest.mark.parametrize("exception", [Boom, KeyboardInterrupt])
def test_transcript_hook_raising_moves_client_to_error(
    parser_cls: Any, direction: str, exception: type[BaseException]
) -> None:
    armed = False

    def hook(side: Literal["C", "S"], line: bytes) -> None:
        if armed and side == direction:
            raise exception("hook")

    conn = greeted(parser_cls, transcript=hook)
    armed = True
    with pytest.raises(exception):
        conn.send(Noop())
        conn.receive_data(b"250 2.0.0 ok\r\n")
        conn.next_event()
    assert_client_error(conn)


def test_unreadable_buffer_moves_client_to_error(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    view = memoryview(b"250 ok\r\n")
    view.release()
    with pytest.raises(ValueError):
        conn.receive_data(view)  # type: ignore[arg-type]
    assert_client_error(conn)


# -- server ---------------------------------------------------------------------------


def serving() -> ServerConnection:
    conn = ServerConnection()
    conn.send(greeting("mx.test"))
    return conn


def assert_server_error(conn: ServerConnection) -> None:
    assert conn.state is ServerState.ERROR
    with pytest.raises(ProtocolError):
        conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send(ok())  # only a last 4xx/5xx may go out


@pytest.mark.parametrize(
    ("parser", "line"),
    [
        ("parse_mail", b"MAIL FROM: <a@x.test>\r\n"),  # the general path
        ("plain_event", b"MAIL FROM:<a@x.test>\r\n"),  # the fast path's recogniser
    ],
)
def test_command_parser_raising_moves_server_to_error(
    monkeypatch: pytest.MonkeyPatch, parser: str, line: bytes
) -> None:
    def broken(*args: Any) -> Any:
        raise Boom(parser)

    conn = serving()
    conn.receive_data(b"EHLO client.test\r\n")
    conn.next_event()
    conn.send(ehlo_reply("mx.test"))
    monkeypatch.setattr(server_connection, parser, broken)
    monkeypatch.setattr(server_connection, "PLAIN_MEMO", {})  # read before plain_event
    conn.receive_data(line)
    with pytest.raises(Boom):
        conn.next_event()
    assert_server_error(conn)


def test_reply_applied_raising_moves_server_to_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(reply: Reply) -> Any:
        raise Boom("parse_extensions")

    monkeypatch.setattr(server_connection, "parse_extensions", broken)
    conn = serving()
    conn.receive_data(b"EHLO client.test\r\n")
    conn.next_event()
    with pytest.raises(Boom):
        conn.send(ehlo_reply("mx.test", ["PIPELINING"]))
    assert_server_error(conn)


def test_unreadable_buffer_moves_server_to_error() -> None:
    conn = serving()
    view = memoryview(b"NOOP\r\n")
    view.release()
    with pytest.raises(ValueError):
        conn.receive_data(view)  # type: ignore[arg-type]
    assert_server_error(conn)


def test_server_misuse_found_before_any_change_leaves_it_usable() -> None:
    conn = serving()
    with pytest.raises(LocalProtocolError):
        conn.send("250 ok")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        conn.send(ok())  # nobody is waiting for a reply
    with pytest.raises(LocalProtocolError):
        conn.receive_data("NOOP\r\n")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        conn.tls_established()
    assert conn.state is ServerState.CONNECTED
    conn.receive_data(b"NOOP\r\n")
    conn.next_event()
    conn.send(ok())
    assert conn.state is ServerState.CONNECTED
