"""An asyncio SMTP/LMTP client: the session drivers (``drivers``) over asyncio streams.

Theory of operation
-------------------
This adapter knows nothing about SMTP. The operations and the loop that runs a
``Session`` driver are ``AsyncClientBase``'s (``async_base``, shared with trio);
this module supplies the transport primitives: ``Write`` (``writer.write`` then
``drain``), ``Read`` (``reader.read``), ``UpgradeTLS`` (``StreamWriter.start_tls``; the
base reads ``tls_info`` and the channel binding from the new ``SSLObject``). Timeouts
(``TimeoutError``) and transport errors (``OSError``) are thrown back into the driver,
which maps them to ``SMTPTimeoutError``, ``SMTPDeliveryStatusUnknown`` and so on; TLS
errors are mapped here (``SMTPTLSError``), since only this layer knows ``ssl``.

Reading while writing (RFC 2920 §3.2) comes free with asyncio: the transport keeps
delivering received bytes into the ``StreamReader`` buffer while ``drain`` waits, up to
the reader's limit (``MAX_READAHEAD``), where asyncio pauses reading. One gap is closed
by hand: a write that fails makes asyncio stop reading, losing replies still in the
kernel (the server's last words, e.g. a 421 mid-body), so past ``_UNREAD_WINDOW``
octets written since the last ``Read`` each write first lets the loop read; after a
failure ``_read`` hands out what the reader buffered before ``read()`` would raise.

The ``StreamReader`` buffers independently of the driver, so bytes the server sends
after the STARTTLS 220 but before the handshake would sit in that buffer and later look
like decrypted data. Before ``start_tls`` any such bytes are handed to the engine, which
refuses them (RFC 3207 §4, docs/design.md §4 rule 4).

Every deadline is absolute on the loop clock: a request's timeout, capped by the
per-message deadline (``message_timeout``). On a timeout, a transport error, a
cancellation (``CancelledError``) or any other exception that leaves the session
unusable, the transport is aborted and the client is never reused; the cancellation
propagates.

STARTTLS and implicit TLS use ``StreamWriter.start_tls`` (Python 3.11+). Python 3.10
lacks it, so ``_upgrade_stream`` does its steps by hand: ``loop.start_tls`` on the
stream's transport, then points the writer and the protocol at the new TLS transport.
"""

from __future__ import annotations

import asyncio  # noqa: TID251  (adapter layer: I/O allowed)
import math
import socket  # noqa: TID251  (adapter layer: I/O allowed)
import ssl
import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

from ..client_engine.config import ClientConfig, Timeouts, TLSPolicy
from ..client_engine.proxy import ProxyHeader
from ..drivers.exceptions import SMTPTLSError
from ..drivers.session import MAX_READAHEAD, Driver, Request, Write
from .async_base import AsyncClientBase, one_call_send, send_in_one_call
from .async_pool import AsyncPoolBase
from .common import (
    Step,
    TLSName,
    require_one_target,
    tls_failure,
)
from .pool_support import RateLimit
from .tls import SSLConnection

__all__ = ["AsyncSMTPClient", "AsyncSMTPPool", "RateLimit", "send"]

_RECV_SIZE = 256 * 1024
#: Octets written since the last ``Read`` past which a write first lets the loop read.
_UNREAD_WINDOW = 16 * 1024
R = TypeVar("R")
#: Whether to use ``StreamWriter.start_tls`` (3.11+); tests turn it off to run the 3.10
#: path on a newer Python.
_STREAM_START_TLS = hasattr(asyncio.StreamWriter, "start_tls")


class AsyncSMTPClient(AsyncClientBase):
    """An asyncio SMTP client; use it as an async context manager::

        async with AsyncSMTPClient("mail.example.org", 587) as client:
            await client.login("user", "password")
            await client.send_message(message)

    The options are those of ``blocking.SMTPClient``: ``tls`` (``"none"``,
    ``"opportunistic"``, ``"required"``, ``"implicit"``; by default from the port: 465
    implicit, 587 required, else opportunistic), ``ssl_context`` (default
    ``client_ssl_context()``: verification on, SNI), ``server_hostname`` (default
    ``host``), ``timeout`` (overrides the RFC 5321 §4.5.3.2 timeouts), ``message_timeout``
    (bounds each ``sendmail``/``send_message``). Connect with ``host``/``port`` (IPv4 or
    IPv6, optional ``source_address``), a ``unix_socket`` path, ``sock`` (a connected
    socket) or ``streams``, a connected ``(StreamReader, StreamWriter)`` pair (proxies,
    in-memory pipes); the client owns and closes whatever it was given.
    ``proxy_header``: a PROXY protocol header written first (docs/proxy-protocol.md).
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        tls: TLSPolicy | TLSName | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: Timeouts | float | None = None,
        message_timeout: float | None = None,
        source_address: tuple[str, int] | None = None,
        local_hostname: str | None = None,
        sock: socket.socket | None = None,
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None,
        unix_socket: str | None = None,
        lmtp: bool = False,
        allow_cleartext_auth: bool = False,
        config: ClientConfig | None = None,
        proxy_header: ProxyHeader | None = None,
    ) -> None:
        require_one_target(host=host, sock=sock, streams=streams, unix_socket=unix_socket)
        super().__init__(
            host,
            port,
            tls=tls,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            timeout=timeout,
            message_timeout=message_timeout,
            source_address=source_address,
            local_hostname=local_hostname,
            unix_socket=unix_socket,
            lmtp=lmtp,
            allow_cleartext_auth=allow_cleartext_auth,
            config=config,
            proxy_header=proxy_header,
        )
        self._sock = sock
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        if streams is not None:
            self._reader, self._writer = streams
        self._unread = 0

    # -- connection ---------------------------------------------------------------------

    async def _open(self) -> str | None:
        if self._writer is None:
            await self._open_streams()
        assert self._writer is not None
        sockname = self._writer.get_extra_info("sockname")  # a str for unix sockets
        return sockname[0] if isinstance(sockname, tuple) else None

    async def _open_streams(self) -> None:
        limit = MAX_READAHEAD // 2  # asyncio pauses reading past twice the limit
        try:
            opening: Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
            if self._unix_socket is not None:
                opening = asyncio.open_unix_connection(self._unix_socket, limit=limit)
            elif self._sock is not None:
                opening = asyncio.open_connection(sock=self._sock, limit=limit)
            else:
                opening = asyncio.open_connection(
                    self.host, self.port, local_addr=self._source_address, limit=limit
                )
            deadline = self._deadline_for(self._config.timeouts.greeting)
            self._reader, self._writer = await _within(opening, deadline)
        except OSError as error:  # TimeoutError included
            if self._sock is not None:
                self._sock.close()
            raise self._connect_error(error) from error

    async def aclose(self) -> None:
        """Close the connection without QUIT; the client cannot be used again."""
        self._abort()
        await asyncio.sleep(0)  # let the transport's close callbacks run

    async def _drop(self) -> None:
        self._abort()

    def _abort(self) -> None:
        """Drop the transport at once (no TLS close_notify); the session is broken."""
        if self._session is not None:
            self._session.mark_broken()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.transport.abort()
        elif self._sock is not None and self._reader is None:
            self._sock.close()  # given but never wrapped in a transport

    # -- I/O ----------------------------------------------------------------------------

    def _clock(self) -> float:
        return asyncio.get_running_loop().time()

    def _transport_error(self, exc: BaseException) -> BaseException | None:
        if isinstance(exc, ssl.SSLError):
            return tls_failure(exc)
        return exc if isinstance(exc, OSError) else None  # TimeoutError is an OSError

    async def _send(self, request: Write, driver: Driver[Any], step: Step) -> Request | None:
        writer = self._writer
        if writer is None:
            raise ConnectionError("the connection is closed")
        self._unread += len(request.data)
        if self._unread > _UNREAD_WINDOW:
            # Let the transport take in what arrived (say a 421 mid-body) first: once a
            # write fails asyncio stops reading and what was unread is lost. A task
            # resumes before the I/O callbacks of its loop iteration, hence two yields.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        writer.write(request.data)
        transport = writer.transport
        if transport.get_write_buffer_size() or transport.is_closing():
            await _within(writer.drain(), self._deadline_for(request.timeout))  # raises if broken
        return None

    async def _read(self, timeout: float | None) -> bytes:
        reader = self._reader
        if reader is None or self._writer is None:
            raise ConnectionError("the connection is closed")
        self._unread = 0
        if reader.exception() is not None:
            # The transport failed (a write hit a reset): read() would raise before
            # handing out what was received first, such as the server's last words.
            buffered = _take_buffered(reader)
            if buffered:
                return buffered
        return await _within(reader.read(_RECV_SIZE), self._read_deadline(timeout))

    async def _handshake(self, server_hostname: str | None, timeout: float | None) -> SSLConnection:
        context = self._tls_context(server_hostname)
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        # Bytes already buffered arrived before the handshake: the engine refuses them.
        early = _take_buffered(reader)
        if early:
            self.session.conn.receive_data(early)
        try:
            await _within(
                _upgrade_stream(writer, context, server_hostname),
                self._deadline_for(timeout),
            )
        except (EOFError, ConnectionError) as exc:
            raise SMTPTLSError(f"TLS handshake failed: {exc or type(exc).__name__}") from exc
        tls = writer.get_extra_info("ssl_object")
        assert isinstance(tls, ssl.SSLObject)
        return tls


async def _upgrade_stream(
    writer: asyncio.StreamWriter, context: ssl.SSLContext, server_hostname: str | None
) -> None:
    """Run the TLS client handshake on ``writer``'s connection and switch the stream
    (writer and reader alike) to the TLS transport."""
    if sys.version_info >= (3, 11) and _STREAM_START_TLS:
        await writer.start_tls(context, server_hostname=server_hostname)
        return
    # Python 3.10: what 3.11's StreamWriter.start_tls does. The protocol (a
    # StreamReaderProtocol feeding our reader) stays; loop.start_tls puts the TLS layer
    # between it and the socket transport and returns the TLS transport, which the
    # writer and the protocol must then use (3.11: ``protocol._replace_writer``). The
    # reader keeps the socket transport, which it only pauses and resumes.
    transport = writer.transport
    protocol = transport.get_protocol()
    await writer.drain()
    new_transport = await asyncio.get_running_loop().start_tls(
        transport, protocol, context, server_hostname=server_hostname
    )
    # typeshed says ``Transport | None``; CPython returns the TLS transport or raises.
    assert new_transport is not None
    # No public API rebinds a stream; these are the attributes 3.11 sets.
    writer._transport = new_transport  # type: ignore[attr-defined]  # see above
    protocol._stream_writer = writer  # type: ignore[attr-defined]  # see above
    protocol._transport = new_transport  # type: ignore[attr-defined]  # see above
    protocol._over_ssl = True  # type: ignore[attr-defined]  # eof_received() under TLS


def _take_buffered(reader: asyncio.StreamReader) -> bytes:
    """Remove and return the bytes ``reader`` holds, without waiting and even after the
    transport failed. StreamReader has no public API for this, hence ``_buffer``."""
    buffer = getattr(reader, "_buffer", None)
    if not isinstance(buffer, bytearray) or not buffer:
        return b""
    data = bytes(buffer)
    buffer.clear()
    return data


async def _within(awaitable: Awaitable[R], deadline: float) -> R:
    """Await ``awaitable`` until the loop time ``deadline`` (``inf``: no limit);
    ``TimeoutError`` after it."""
    if deadline == math.inf:
        return await awaitable
    if sys.version_info >= (3, 11):
        async with asyncio.timeout_at(deadline):
            return await awaitable
    remaining = max(0.0, deadline - asyncio.get_running_loop().time())
    try:
        return await asyncio.wait_for(awaitable, remaining)
    except asyncio.TimeoutError as exc:  # not the built-in TimeoutError before 3.11
        raise TimeoutError("timed out") from exc


#: The one-call send: connect, log in when ``username`` is given, send, QUIT
#: (``async_base.send_in_one_call``, which documents the parameters).
send = one_call_send(send_in_one_call, AsyncSMTPClient)


class AsyncSMTPPool(AsyncPoolBase):
    """A pool of ``AsyncSMTPClient`` connections shared by tasks; it never sends a
    message twice (docs/pool.md)::

        async with AsyncSMTPPool("mail.example.org", 587, username="u", password="p") as pool:
            await pool.send_message(message)  # from any number of tasks

    The options are ``SMTPPool``'s (``blocking``); see ``async_pool.AsyncPoolBase``.
    """

    _client_class = AsyncSMTPClient

    def _new_condition(self) -> asyncio.Condition:
        return asyncio.Condition()

    def _clock(self) -> float:
        return asyncio.get_running_loop().time()

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
