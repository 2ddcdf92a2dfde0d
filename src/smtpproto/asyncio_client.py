"""An asyncio SMTP/LMTP client: the session drivers (``_session``) over asyncio streams.

Theory of operation
-------------------
This adapter knows nothing about SMTP. ``_run`` takes a driver generator from
``Session`` and performs its requests: ``Write`` (``writer.write`` then ``drain``),
``Read`` (``reader.read``), ``UpgradeTLS`` (``StreamWriter.start_tls``, then the channel
binding of the new ``SSLObject``). Timeouts (``TimeoutError``) and transport errors
(``OSError``) are thrown back into the driver, which maps them to ``SMTPTimeoutError``,
``SMTPDeliveryStatusUnknown`` and so on; TLS errors are mapped here (``SMTPTLSError``),
since only this layer knows ``ssl``.

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
refuses them (RFC 3207 §4, DESIGN.md §4 rule 4).

Every deadline is absolute on the loop clock: a request's timeout, capped by the
per-message deadline (``message_timeout``). On a timeout, a transport error, a
cancellation (``CancelledError``) or any other exception that leaves the session
unusable, the transport is aborted and the client is never reused; the cancellation
propagates. STARTTLS and implicit TLS need ``StreamWriter.start_tls`` (Python 3.11+).
"""

from __future__ import annotations

import asyncio  # noqa: TID251  (adapter layer: I/O allowed)
import contextlib
import socket  # noqa: TID251  (adapter layer: I/O allowed)
import ssl
import sys
from collections.abc import Awaitable, Iterable
from email.message import Message
from types import TracebackType
from typing import Any, Literal, TypeVar

from ._capabilities import Capabilities
from ._client_config import ClientConfig, Timeouts, TLSPolicy
from ._errors import ProtocolError
from ._events import TransactionResult
from ._reply import Reply
from ._sasl_base import ChannelBinding, ClientMechanism
from ._session import (
    MAX_READAHEAD,
    Driver,
    MailOptions,
    Read,
    Session,
    T,
    UpgradeTLS,
    Write,
    default_port,
    hello_name,
    session_config,
)
from ._session_support import ContentSource, ProgressCallback
from ._tls import channel_binding, client_ssl_context
from .exceptions import SMTPConnectError, SMTPError, SMTPTLSError

__all__ = ["AsyncSMTPClient"]

_RECV_SIZE = 256 * 1024
#: Octets written since the last ``Read`` past which a write first lets the loop read.
_UNREAD_WINDOW = 16 * 1024
TLSName = Literal["none", "opportunistic", "required", "implicit"]
R = TypeVar("R")


class AsyncSMTPClient:
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
    ) -> None:
        if sum(x is not None for x in (host, sock, streams, unix_socket)) != 1:
            raise ValueError("give exactly one of host, sock, streams or unix_socket")
        self._config = session_config(
            tls=tls,
            port=port,
            timeout=timeout,
            lmtp=lmtp,
            allow_cleartext_auth=allow_cleartext_auth,
            config=config,
        )
        self.host = host
        self.port = port if port is not None else default_port(self._config.tls_policy, lmtp)
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname if server_hostname is not None else host
        self._message_timeout = message_timeout
        self._source_address = source_address
        self._local_hostname = local_hostname
        self._sock = sock
        self._unix_socket = unix_socket
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        if streams is not None:
            self._reader, self._writer = streams
        self._deadline: float | None = None
        self._unread = 0
        self._session: Session | None = None

    # -- connection ---------------------------------------------------------------------

    async def connect(self) -> Reply:
        """Connect and open the session (greeting, EHLO, STARTTLS per the policy)."""
        if self._session is not None:
            raise ValueError("this client is already connected; make a new one")
        if self._writer is None:
            await self._open_streams()
        assert self._writer is not None
        sockname = self._writer.get_extra_info("sockname")  # a str for unix sockets
        local = sockname[0] if isinstance(sockname, tuple) else None
        self._session = Session(
            self._config,
            server_hostname=self._server_hostname,
            local_hostname=hello_name(self._local_hostname, local),
        )
        return await self._run(self._session.open())

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
            raise SMTPConnectError(
                f"cannot connect: {error}", host=self.host or self._unix_socket, port=self.port
            ) from error

    async def aclose(self) -> None:
        """Close the connection without QUIT; the client cannot be used again."""
        self._abort()
        await asyncio.sleep(0)  # let the transport's close callbacks run

    def _abort(self) -> None:
        """Drop the transport at once (no TLS close_notify); the session is broken."""
        if self._session is not None:
            self._session.mark_broken()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.transport.abort()
        elif self._sock is not None and self._reader is None:
            self._sock.close()  # given but never wrapped in a transport

    async def __aenter__(self) -> AsyncSMTPClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """QUIT when the session is still healthy (also after a refused command), then
        close. A failing QUIT after an exception in the block is not reported over it."""
        try:
            if self._session is not None and self._session.quit_on_exit(exc_type):
                if exc_type is None:
                    await self.quit()
                else:
                    with contextlib.suppress(SMTPError):
                        await self.quit()
        finally:
            await self.aclose()

    @property
    def capabilities(self) -> Capabilities | None:
        """What the server's last EHLO advertised (None before it, or after HELO)."""
        return self._session.conn.capabilities if self._session is not None else None

    @property
    def session(self) -> Session:
        """The sans-IO session (engine state, TLS status, channel binding)."""
        if self._session is None:
            raise ValueError("not connected: await connect() or use `async with`")
        return self._session

    # -- operations ---------------------------------------------------------------------

    async def login(
        self,
        username: str,
        password: str | None = None,
        *,
        token: str | None = None,
        mechanism: ClientMechanism | None = None,
    ) -> Reply:
        """AUTH with the strongest offered mechanism (see ``Session.login``)."""
        driver = self.session.login(username, password, token=token, mechanism=mechanism)
        return await self._run(driver)

    async def sendmail(
        self,
        sender: str,
        recipients: str | Iterable[str],
        content: ContentSource,
        *,
        options: MailOptions | None = None,
        pipelining: bool | None = None,
        chunking: bool | None = None,
        progress: ProgressCallback | None = None,
    ) -> TransactionResult:
        """Send one message (see ``Session.sendmail``); per-recipient results."""
        driver = self.session.sendmail(
            sender,
            recipients,
            content,
            options=options,
            pipelining=pipelining,
            chunking=chunking,
            progress=progress,
        )
        return await self._run_message(driver)

    async def send_message(
        self,
        msg: Message,
        *,
        sender: str | None = None,
        recipients: str | Iterable[str] | None = None,
        options: MailOptions | None = None,
        pipelining: bool | None = None,
        chunking: bool | None = None,
        progress: ProgressCallback | None = None,
    ) -> TransactionResult:
        """Send an ``email.message`` message (see ``Session.send_message``)."""
        driver = self.session.send_message(
            msg,
            sender=sender,
            recipients=recipients,
            options=options,
            pipelining=pipelining,
            chunking=chunking,
            progress=progress,
        )
        return await self._run_message(driver)

    async def noop(self) -> Reply:
        """NOOP."""
        return await self._run(self.session.noop())

    async def rset(self) -> Reply:
        """RSET."""
        return await self._run(self.session.rset())

    async def vrfy(self, address: str) -> Reply:
        """VRFY ``address``."""
        return await self._run(self.session.vrfy(address))

    async def quit(self) -> Reply:
        """QUIT, then close the connection."""
        try:
            return await self._run(self.session.quit())
        finally:
            await self.aclose()

    # -- the driver loop ----------------------------------------------------------------

    async def _run_message(self, driver: Driver[TransactionResult]) -> TransactionResult:
        if self._message_timeout is not None:
            self._deadline = asyncio.get_running_loop().time() + self._message_timeout
        try:
            return await self._run(driver)
        finally:
            self._deadline = None

    async def _run(self, driver: Driver[T]) -> T:
        """Perform ``driver``'s requests; abort the transport when the session breaks."""
        session = self.session
        answer: Any = None
        error: BaseException | None = None
        while True:
            try:
                request = driver.send(answer) if error is None else driver.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            except BaseException:
                if not session.usable:
                    self._abort()
                raise
            answer = error = None
            try:
                if type(request) is Write:
                    await self._write(request.data, request.timeout)
                elif type(request) is Read:
                    answer = await self._read(request.timeout)
                else:
                    assert type(request) is UpgradeTLS
                    answer = await self._start_tls(request.server_hostname, request.timeout)
            except ssl.SSLError as exc:
                error = SMTPTLSError(f"TLS failed: {exc}")
                error.__cause__ = exc
            except (OSError, SMTPTLSError, ProtocolError) as exc:  # TimeoutError is an OSError
                error = exc
            except BaseException:  # CancelledError, KeyboardInterrupt: cut short, never reused
                driver.close()
                self._abort()
                raise

    # -- I/O ----------------------------------------------------------------------------

    def _deadline_for(self, timeout: float | None) -> float | None:
        """The loop time a wait must end: the request's timeout, capped by the message
        deadline."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        if self._deadline is not None and (deadline is None or self._deadline < deadline):
            deadline = self._deadline
        return deadline

    async def _write(self, data: bytes, timeout: float | None) -> None:
        writer = self._writer
        if writer is None:
            raise ConnectionError("the connection is closed")
        self._unread += len(data)
        if self._unread > _UNREAD_WINDOW:
            # Let the transport take in what arrived (say a 421 mid-body) first: once a
            # write fails asyncio stops reading and what was unread is lost. A task
            # resumes before the I/O callbacks of its loop iteration, hence two yields.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        writer.write(data)
        transport = writer.transport
        if transport.get_write_buffer_size() or transport.is_closing():
            await _within(writer.drain(), self._deadline_for(timeout))  # raises if broken

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
        return await _within(reader.read(_RECV_SIZE), self._deadline_for(timeout))

    async def _start_tls(
        self, server_hostname: str | None, timeout: float | None
    ) -> ChannelBinding | None:
        context = self._ssl_context or client_ssl_context()
        if server_hostname is None and context.check_hostname:
            raise SMTPTLSError(
                "no host name to verify the certificate against: pass server_hostname= "
                "(or an ssl_context with check_hostname=False)"
            )
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        # Bytes already buffered arrived before the handshake: the engine refuses them.
        early = _take_buffered(reader)
        if early:
            self.session.conn.receive_data(early)
        if sys.version_info < (3, 11):
            raise SMTPTLSError("TLS with the asyncio client needs Python 3.11 (start_tls)")
        try:
            await _within(
                writer.start_tls(context, server_hostname=server_hostname),
                self._deadline_for(timeout),
            )
        except (EOFError, ConnectionError) as exc:
            raise SMTPTLSError(f"TLS handshake failed: {exc or type(exc).__name__}") from exc
        tls = writer.get_extra_info("ssl_object")
        assert isinstance(tls, ssl.SSLObject)
        return channel_binding(tls)


def _take_buffered(reader: asyncio.StreamReader) -> bytes:
    """Remove and return the bytes ``reader`` holds, without waiting and even after the
    transport failed. StreamReader has no public API for this, hence ``_buffer``."""
    buffer = getattr(reader, "_buffer", None)
    if not isinstance(buffer, bytearray) or not buffer:
        return b""
    data = bytes(buffer)
    buffer.clear()
    return data


async def _within(awaitable: Awaitable[R], deadline: float | None) -> R:
    """Await ``awaitable`` until the loop time ``deadline``; ``TimeoutError`` after it."""
    if deadline is None:
        return await awaitable
    if sys.version_info >= (3, 11):
        async with asyncio.timeout_at(deadline):
            return await awaitable
    remaining = max(0.0, deadline - asyncio.get_running_loop().time())
    try:
        return await asyncio.wait_for(awaitable, remaining)
    except asyncio.TimeoutError as exc:  # not the built-in TimeoutError before 3.11
        raise TimeoutError("timed out") from exc
