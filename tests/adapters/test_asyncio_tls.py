"""The asyncio adapter's TLS upgrade: ``loop.start_tls`` under the client's own protocol
(``asyncio_channel.Channel``), the one path on every supported Python. Each test is
bounded by ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from interop.peers import TLSMaterial
from smtpproto.asyncio_client import AsyncSMTPClient
from smtpproto.exceptions import SMTPError, SMTPTLSError
from smtpproto.testing import RunningServer, run_server

BOUND = 15.0
TIMEOUT = 5.0
MESSAGE = b"Subject: tls\r\n\r\nhello\r\n"


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with run_server() as running:
        yield running


def _client(server: RunningServer, **kwargs: Any) -> AsyncSMTPClient:
    kwargs.setdefault("ssl_context", server.ssl_context())
    return AsyncSMTPClient(
        server.host,
        server.port,
        tls="required",
        server_hostname="localhost",
        timeout=TIMEOUT,
        **kwargs,
    )


def test_starttls_then_delivery_and_quit(server: RunningServer) -> None:
    """After STARTTLS every command, reply and content octet goes through TLS: the
    channel uses the new transport both ways; a 1 MiB body makes the client wait on the
    TLS transport's flow control."""
    body = b"Subject: big\r\n\r\n" + b"x" * 998 + b"\r\n"
    big = body + (b"y" * 998 + b"\r\n") * 1050

    async def main() -> None:
        async with _client(server) as client:
            assert client.session.conn.tls_active
            info = client.tls_info
            assert info is not None and info.version is not None
            assert info.version.startswith("TLSv1.") and info.peer_certificate_der
            assert client.session.channel_binding is not None
            await client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
            await client.sendmail("a@example.org", ["c@example.org"], big)
            channel = client._channel  # the test looks inside: which transport is used
            assert channel is not None and channel.transport is not None
            assert channel.transport.get_extra_info("ssl_object") is not None
        assert client._channel is None

    asyncio.run(asyncio.wait_for(main(), BOUND))
    first, second = server.wait_for_messages(2, timeout=TIMEOUT)
    assert first.data == MESSAGE and second.data == big


def test_unverified_certificate_is_a_tls_error(server: RunningServer) -> None:
    async def main() -> None:
        client = _client(server, ssl_context=ssl.create_default_context())
        with pytest.raises(SMTPTLSError, match="certificate verify failed"):
            await client.connect()
        assert client.tls_info is None and client._channel is None

    asyncio.run(asyncio.wait_for(main(), BOUND))
    assert server.messages == []


def test_implicit_tls(tls_material: TLSMaterial) -> None:
    """RFC 8314 §3.3: the handshake comes first, then the greeting under TLS."""
    commands: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"220 mx.example.org ready\r\n")
            commands.append(await reader.readuntil(b"\r\n"))
            writer.write(b"250 mx.example.org\r\n")
            commands.append(await reader.readuntil(b"\r\n"))
            writer.write(b"221 bye\r\n")
            await writer.drain()
        finally:
            writer.transport.abort()

    async def main() -> None:
        listener = await asyncio.start_server(
            handle, "127.0.0.1", 0, ssl=tls_material.server_context()
        )
        port = listener.sockets[0].getsockname()[1]
        try:
            client = AsyncSMTPClient(
                "127.0.0.1",
                port,
                tls="implicit",
                ssl_context=tls_material.client_context(),
                server_hostname="localhost",
                timeout=TIMEOUT,
            )
            async with client:
                assert client.tls_info is not None and client.session.conn.tls_active
        finally:
            listener.close()
            await listener.wait_closed()

    asyncio.run(asyncio.wait_for(main(), BOUND))
    assert [line.split()[0] for line in commands] == [b"EHLO", b"QUIT"]


def test_server_closing_under_tls(
    tls_material: TLSMaterial, caplog: pytest.LogCaptureFixture
) -> None:
    """A 421 and a clean TLS close from the server: the client reports the 421, and
    the stream knows it runs over TLS (``eof_received`` must not ask to stay half-open,
    which asyncio's TLS layer logs as a warning)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"220 mx.example.org ready\r\n")
            await reader.readuntil(b"\r\n")
            writer.write(b"250 mx.example.org\r\n")
            await reader.readuntil(b"\r\n")
            writer.write(b"421 4.3.2 shutting down\r\n")
            writer.close()
            await writer.wait_closed()
        except (OSError, asyncio.IncompleteReadError):
            writer.transport.abort()

    async def main() -> None:
        listener = await asyncio.start_server(
            handle, "127.0.0.1", 0, ssl=tls_material.server_context()
        )
        port = listener.sockets[0].getsockname()[1]
        try:
            client = AsyncSMTPClient(
                "127.0.0.1",
                port,
                tls="implicit",
                ssl_context=tls_material.client_context(),
                server_hostname="localhost",
                timeout=TIMEOUT,
            )
            await client.connect()
            with pytest.raises(SMTPError) as info:
                await client.noop()
            assert getattr(info.value, "code", None) == 421
            await client.aclose()
        finally:
            listener.close()
            await listener.wait_closed()

    with caplog.at_level("WARNING", logger="asyncio"):
        asyncio.run(asyncio.wait_for(main(), BOUND))
    assert [r.getMessage() for r in caplog.records if "eof_received" in r.getMessage()] == []
