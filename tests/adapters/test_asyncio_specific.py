"""Fault injection for the asyncio adapter against scripted loopback servers.

Each test runs ``asyncio.start_server`` on 127.0.0.1 port 0 with a script for the server
side, and the client under short timeout overrides; every test body is bounded by
``asyncio.wait_for(..., BOUND)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from interop.peers import TLSMaterial
from smtpproto.adapters.tls import SSLConnection
from smtpproto.asyncio_client import AsyncSMTPClient
from smtpproto.client_engine.config import Timeouts
from smtpproto.exceptions import (
    SMTPDeliveryStatusUnknown,
    SMTPDeliveryTimeoutError,
    SMTPProtocolError,
    SMTPReplyError,
    SMTPTimeoutError,
)

from .scripted import MESSAGE, STUFFED, ScriptedPeer

BOUND = 10.0
SHORT = 0.2


class AsyncPeer(ScriptedPeer):
    """The server end of one connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def expect(self, prefix: bytes) -> bytes:
        line = await self.reader.readuntil(b"\r\n")
        assert line.upper().startswith(prefix), (line, prefix)
        return line

    async def read_data(self) -> bytes:
        content = await self.reader.readuntil(b"\r\n.\r\n")
        return content[:-3]


Script = Callable[[AsyncPeer], Awaitable[None]]
ClientPart = Callable[[int], Awaitable[None]]


def run(script: Script, client_part: ClientPart) -> None:
    """Serve ``script`` on 127.0.0.1 and run ``client_part(port)``; both bounded.

    Teardown ends every connection itself before ``Server.wait_closed()``: since Python
    3.12.1 that call waits until every connection the server accepted is closed, so a
    script still sleeping (a stalling server) would hold it until the bound. The
    handlers are cancelled and awaited (each aborts its transport on the way out); a
    handler that was accepted but had not yet run registers itself in the one loop
    iteration given before that, and ``server.close()`` stops new ones.
    """
    failures: list[BaseException] = []
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await script(AsyncPeer(reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client closed first
        except AssertionError as exc:
            failures.append(exc)
        finally:
            writer.transport.abort()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            await client_part(port)
        finally:
            server.close()
            await asyncio.sleep(0)  # accepted connections start their handler
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await server.wait_closed()

    asyncio.run(asyncio.wait_for(main(), BOUND))
    if failures:
        raise failures[0]


def test_delivery_over_a_given_stream_pair() -> None:
    received: list[bytes] = []

    async def script(peer: AsyncPeer) -> None:
        await peer.greet()
        received.append(await peer.deliver_one())
        await peer.expect(b"QUIT")
        await peer.send(b"221 bye\r\n")

    async def client_part(port: int) -> None:
        streams = await asyncio.open_connection("127.0.0.1", port)
        async with AsyncSMTPClient(streams=streams, timeout=5) as client:
            result = await client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
            assert result.delivered == ("b@example.org",)
        assert streams[1].transport.is_closing()

    run(script, client_part)
    assert received == [STUFFED]


def test_cancellation_breaks_the_client_and_propagates() -> None:
    async def script(peer: AsyncPeer) -> None:
        await peer.greet()
        await peer.expect(b"MAIL")
        await asyncio.sleep(BOUND)

    async def client_part(port: int) -> None:
        client = AsyncSMTPClient("127.0.0.1", port, timeout=5)
        await client.connect()
        task = asyncio.create_task(client.sendmail("a@example.org", ["b@example.org"], MESSAGE))
        await asyncio.sleep(SHORT)  # the client is waiting for the MAIL reply now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not client.session.usable and client._channel is None
        with pytest.raises(SMTPProtocolError, match="broken"):
            await client.noop()

    run(script, client_part)


@pytest.mark.parametrize("stall", ["greeting", "mail", "final"])
def test_short_timeout_overrides(stall: str) -> None:
    async def script(peer: AsyncPeer) -> None:
        if stall != "greeting":
            await peer.greet()
            await peer.expect_transaction()
            if stall == "final":
                await peer.go_ahead()
        await asyncio.sleep(BOUND)

    async def client_part(port: int) -> None:
        client = AsyncSMTPClient("127.0.0.1", port, timeout=SHORT)
        with pytest.raises(SMTPTimeoutError) as info:
            await client.connect()
            await client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert info.value.timeout == SHORT  # the short limit fired, not the peer's end
        assert isinstance(info.value, SMTPDeliveryTimeoutError) == (stall == "final")
        assert not client.session.usable and client._channel is None

    run(script, client_part)


@pytest.mark.parametrize("stage", ["rcpt", "final"])
def test_server_failures_mid_transaction(stage: str) -> None:
    async def script(peer: AsyncPeer) -> None:
        await peer.greet()
        await peer.expect_transaction()
        if stage == "rcpt":
            await peer.send(b"250 ok\r\n421 4.3.2 going away\r\n")
            return
        await peer.go_ahead()
        await peer.send(b"25")  # then the connection drops

    async def client_part(port: int) -> None:
        client = AsyncSMTPClient("127.0.0.1", port, timeout=5)
        await client.connect()
        expected = SMTPReplyError if stage == "rcpt" else SMTPDeliveryStatusUnknown
        with pytest.raises(expected):
            await client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert not client.session.usable and client._channel is None

    run(script, client_part)


class _InjectingClient(AsyncSMTPClient):
    """Puts bytes in its channel once the STARTTLS 220 was handled, before the
    handshake starts, as if the server's injected bytes had arrived in between."""

    async def _handshake(self, server_hostname: str | None, timeout: float | None) -> SSLConnection:
        assert self._channel is not None
        self._channel.received(b"250-mx.example.org\r\n250 AUTH PLAIN\r\n")
        return await super()._handshake(server_hostname, timeout)


def test_bytes_buffered_before_the_tls_handshake_are_refused(tls_material: TLSMaterial) -> None:
    """RFC 3207 §4: bytes the channel received after the 220 never count as replies
    after TLS; the engine refuses them."""

    async def script(peer: AsyncPeer) -> None:
        await peer.greet(b"250-mx.example.org\r\n250 STARTTLS\r\n")
        await peer.expect(b"STARTTLS")
        await peer.send(b"220 2.0.0 ready\r\n")
        await peer.writer.start_tls(tls_material.server_context())
        await peer.expect(b"EHLO")
        await peer.send(b"250-mx.example.org\r\n250 SIZE 10\r\n")

    async def client_part(port: int) -> None:
        client = _InjectingClient(
            "127.0.0.1",
            port,
            ssl_context=tls_material.client_context(),
            server_hostname="localhost",
            timeout=5,
        )
        with pytest.raises(SMTPProtocolError) as info:
            await client.connect()
        assert info.value.remote and "STARTTLS" in str(info.value)
        assert not client.session.conn.tls_active and not client.session.usable

    run(script, client_part)


def test_server_that_stops_reading_mid_body_times_out() -> None:
    """``drain`` blocks for good once the socket buffers fill; the data-block timeout
    (overridden to SHORT) ends it and the connection is dropped, not reused."""
    stopped = asyncio.Event()

    async def script(peer: AsyncPeer) -> None:
        await peer.greet()
        await peer.expect_transaction()
        await peer.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        peer.writer.transport.pause_reading()  # the buffers fill up and stay full
        stopped.set()
        await asyncio.sleep(BOUND)

    async def client_part(port: int) -> None:
        timeouts = Timeouts(data_block=SHORT)
        client = AsyncSMTPClient("127.0.0.1", port, timeout=timeouts)
        await client.connect()
        body = (b"x" * 78 + b"\r\n") * 400_000  # 32 MB: far more than the buffers hold
        with pytest.raises(SMTPTimeoutError) as info:
            await client.sendmail("a@example.org", ["b@example.org"], body)
        assert stopped.is_set()
        assert info.value.timeout == SHORT and not info.value.delivery_status_unknown
        assert not client.session.usable and client._channel is None

    run(script, client_part)
