"""A trio SMTP/LMTP client: the session drivers (``_session``) over any ``trio.abc.Stream``.

Theory of operation
-------------------
This adapter knows nothing about SMTP. ``_run`` takes a driver generator from
``Session`` and performs its requests: ``Write`` (``send_all``), ``Read``
(``receive_some``), ``UpgradeTLS`` (wrap the stream in ``trio.SSLStream``, handshake,
return the channel binding). Timeouts (``TimeoutError``) and transport errors
(``OSError``) are thrown back into the driver, which maps them to ``SMTPTimeoutError``,
``SMTPDeliveryStatusUnknown`` and so on; TLS failures are mapped here
(``SMTPTLSError``), since only this layer knows ``ssl``. trio's
``BrokenResourceError``/``ClosedResourceError`` become ``OSError`` for the driver.

Reading while writing (RFC 2920 §3.2): once more than ``_UNREAD_WINDOW`` octets have
been written since the last ``Read`` (a long pipelined group, a message body), the
writes up to the driver's next non-write request run in one nursery beside a task that
reads into ``_inbox`` (at most ``MAX_READAHEAD`` octets), so a server that answers early
and then waits for us to read never deadlocks the write. Short writes (one
transaction's commands) skip the nursery: their replies cannot fill the socket buffers.
The next ``Read`` takes ``_inbox`` first.

Deadlines are absolute on trio's clock: a request's timeout, capped by the per-message
deadline (``message_timeout``), set on one cancel scope per operation (a scope per
request cost 10% of a small message's time). On a timeout, a transport error, a cancellation
(``trio.Cancelled``) or any other exception that leaves the session unusable, the
stream is closed forcefully and the client is never reused; the cancellation
propagates.
"""

from __future__ import annotations

import contextlib
import math
import ssl
from collections.abc import Iterable
from email.message import Message
from types import TracebackType
from typing import Any, Literal, cast

import trio  # noqa: TID251  (adapter layer: I/O allowed)

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

__all__ = ["TrioSMTPClient"]

_RECV_SIZE = 256 * 1024
#: Octets written since the last ``Read`` below which a write does not also read: the
#: replies to that much pipelined command text fit easily in the socket buffers.
_UNREAD_WINDOW = 16 * 1024
TLSName = Literal["none", "opportunistic", "required", "implicit"]
#: What a trio stream raises when the transport fails (OSError includes TimeoutError).
_STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class TrioSMTPClient:
    """A trio SMTP client; use it as an async context manager::

        async with TrioSMTPClient("mail.example.org", 587) as client:
            await client.login("user", "password")
            await client.send_message(message)

    The options are those of ``blocking.SMTPClient``: ``tls`` (``"none"``,
    ``"opportunistic"``, ``"required"``, ``"implicit"``; by default from the port: 465
    implicit, 587 required, else opportunistic), ``ssl_context`` (default
    ``client_ssl_context()``: verification on, SNI), ``server_hostname`` (default
    ``host``), ``timeout`` (overrides the RFC 5321 §4.5.3.2 timeouts), ``message_timeout``
    (bounds each ``sendmail``/``send_message``). Connect with ``host``/``port`` (IPv4 or
    IPv6; ``source_address`` binds the local IP, its port must be 0), a ``unix_socket``
    path, or ``stream``, any connected ``trio.abc.Stream`` (proxies, memory streams); the
    client owns and closes whatever it was given.
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
        stream: trio.abc.Stream | None = None,
        unix_socket: str | None = None,
        lmtp: bool = False,
        allow_cleartext_auth: bool = False,
        config: ClientConfig | None = None,
    ) -> None:
        if sum(x is not None for x in (host, stream, unix_socket)) != 1:
            raise ValueError("give exactly one of host, stream or unix_socket")
        if source_address is not None and source_address[1] != 0:
            raise ValueError("trio binds only the source IP: give port 0 in source_address")
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
        self._unix_socket = unix_socket
        self._stream: trio.abc.Stream | None = stream
        self._inbox = bytearray()
        self._eof = False
        self._read_error: Exception | None = None
        self._unread = 0
        self._deadline = math.inf
        self._scope = trio.CancelScope()  # replaced by each operation's deadline scope
        self._session: Session | None = None

    # -- connection ---------------------------------------------------------------------

    async def connect(self) -> Reply:
        """Connect and open the session (greeting, EHLO, STARTTLS per the policy)."""
        if self._session is not None:
            raise ValueError("this client is already connected; make a new one")
        if self._stream is None:
            try:
                with trio.fail_at(self._deadline_for(self._config.timeouts.greeting)):
                    if self._unix_socket is not None:
                        self._stream = await trio.open_unix_socket(self._unix_socket)
                    else:
                        assert self.host is not None
                        local = self._source_address[0] if self._source_address else None
                        self._stream = await trio.open_tcp_stream(
                            self.host, self.port, local_address=local
                        )
            except (OSError, trio.TooSlowError) as error:
                raise SMTPConnectError(
                    f"cannot connect: {error or 'timed out'}",
                    host=self.host or self._unix_socket,
                    port=self.port,
                ) from error
        address: str | None = None
        if isinstance(self._stream, trio.SocketStream):
            name = self._stream.socket.getsockname()
            address = name[0] if isinstance(name, tuple) else None
        self._session = Session(
            self._config,
            server_hostname=self._server_hostname,
            local_hostname=hello_name(self._local_hostname, address),
        )
        return await self._run(self._session.open())

    async def aclose(self) -> None:
        """Close the connection without QUIT; the client cannot be used again.

        Forceful (no TLS close_notify), so it never blocks and works while cancelled.
        """
        if self._session is not None:
            self._session.mark_broken()
        stream, self._stream = self._stream, None
        if stream is not None:
            await trio.aclose_forcefully(stream)

    async def __aenter__(self) -> TrioSMTPClient:
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
            self._deadline = trio.current_time() + self._message_timeout
        try:
            return await self._run(driver)
        finally:
            self._deadline = math.inf

    async def _run(self, driver: Driver[T]) -> T:
        """Perform ``driver``'s requests; close the stream when the session breaks.

        One cancel scope serves every request of the operation (cheaper than one per
        request): each request sets its deadline. When the scope catches its own
        cancellation the deadline passed, and ``TimeoutError`` goes into the driver.
        """
        step = _Step()
        while True:
            try:
                with trio.CancelScope() as scope:
                    self._scope = scope
                    return await self._drive(driver, step)
            except BaseException:
                if step.cut_short:  # another cancellation came too: never reused
                    driver.close()
                    await self.aclose()
                raise
            step.cut_short = False
            step.error = TimeoutError("timed out")

    async def _drive(self, driver: Driver[T], step: _Step) -> T:
        session = self.session
        scope = self._scope
        while True:
            request = step.request
            if request is None:
                try:
                    request = step.advance(driver)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
                except BaseException:
                    if not session.usable:
                        await self.aclose()
                    raise
            step.request = None
            try:
                if type(request) is Write:
                    if self._unread + len(request.data) <= _UNREAD_WINDOW or not self._can_read:
                        await self._write(request.data, request.timeout)
                    else:
                        step.request = await self._write_reading(driver, request, step)
                elif type(request) is Read:
                    step.answer = await self._read(request.timeout)
                else:
                    assert type(request) is UpgradeTLS
                    step.answer = await self._start_tls(request.server_hostname, request.timeout)
            except _STREAM_ERRORS as exc:
                step.error = _lost(exc)
            except (SMTPTLSError, ProtocolError) as exc:
                step.error = exc
            except BaseException:  # Cancelled, KeyboardInterrupt: cut short, never reused
                if scope.cancel_called:  # our deadline (``_run`` sees if it was only that)
                    step.cut_short = True
                    raise
                driver.close()
                await self.aclose()
                raise
            finally:
                scope.deadline = math.inf

    async def _write_reading(
        self, driver: Driver[Any], request: Write, step: _Step
    ) -> Write | Read | UpgradeTLS | None:
        """Perform ``request`` and every ``Write`` the driver yields right after it while
        a task reads ahead (RFC 2920 §3.2); one nursery for the whole burst (a body).

        Returns the first request that is not a ``Write``, or None when a write failed
        (``step.error`` holds what to throw into the driver) or the driver ended
        (``step.ended``). Outcomes are stored, not raised, so that they leave the nursery
        as themselves rather than inside an ``ExceptionGroup``.
        """
        stream = self._live_stream()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_ahead, stream)
            try:
                while True:
                    try:
                        await self._write(request.data, request.timeout)
                    except _STREAM_ERRORS as exc:
                        step.error = _lost(exc)
                        return None
                    try:
                        following = driver.send(None)
                    except Exception as exc:  # StopIteration included: re-raised by advance
                        step.ended = exc
                        return None
                    if type(following) is not Write:
                        return following
                    request = following
            finally:
                nursery.cancel_scope.cancel()

    # -- I/O ----------------------------------------------------------------------------

    def _deadline_for(self, timeout: float | None) -> float:
        """The trio time a wait must end: the request's timeout, capped by the message
        deadline (``inf``: no limit)."""
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        return min(deadline, self._deadline)

    def _live_stream(self) -> trio.abc.Stream:
        if self._stream is None:
            raise ConnectionError("the connection is closed")
        return self._stream

    @property
    def _can_read(self) -> bool:
        return not self._eof and self._read_error is None

    async def _write(self, data: bytes, timeout: float | None) -> None:
        stream = self._live_stream()
        self._unread += len(data)
        self._scope.deadline = self._deadline_for(timeout)
        await stream.send_all(data)

    async def _read_ahead(self, stream: trio.abc.Stream) -> None:
        """Buffer what the server sends while a write is blocked (RFC 2920 §3.2)."""
        while len(self._inbox) < MAX_READAHEAD:
            try:
                data = await stream.receive_some(_RECV_SIZE)
            except _STREAM_ERRORS as exc:
                self._read_error = _lost(exc)
                return
            if not data:
                self._eof = True
                return
            self._inbox += data
        await trio.sleep_forever()  # full: stop reading until the write ends

    async def _read(self, timeout: float | None) -> bytes:
        self._unread = 0
        if self._inbox:
            data = bytes(self._inbox)
            self._inbox.clear()
            return data
        if self._read_error is not None:
            raise self._read_error
        if self._eof:
            return b""
        stream = self._live_stream()
        self._scope.deadline = self._deadline_for(timeout)
        return bytes(await stream.receive_some(_RECV_SIZE))

    async def _start_tls(
        self, server_hostname: str | None, timeout: float | None
    ) -> ChannelBinding | None:
        context = self._ssl_context or client_ssl_context()
        if server_hostname is None and context.check_hostname:
            raise SMTPTLSError(
                "no host name to verify the certificate against: pass server_hostname= "
                "(or an ssl_context with check_hostname=False)"
            )
        # Reads drain the inbox and the driver yields no write between the STARTTLS 220
        # and this request, so every later byte goes through the TLS layer.
        assert not self._inbox
        tls = trio.SSLStream(self._live_stream(), context, server_hostname=server_hostname)
        self._stream = tls
        self._scope.deadline = self._deadline_for(timeout)
        try:
            await tls.do_handshake()
        except (trio.BrokenResourceError, ssl.SSLError) as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            message = f"TLS handshake failed: {cause or 'connection closed'}"
            raise SMTPTLSError(message) from cause  # the ssl.SSLError when there is one
        # SSLStream forwards getpeercert() and version() to its SSLObject.
        return channel_binding(cast("ssl.SSLObject", tls))


class _Step:
    """Where ``_run`` is with a driver: what to send or throw into it next, a request
    it yielded that is not performed yet, or how it ended (re-raised by ``advance``)."""

    __slots__ = ("answer", "cut_short", "ended", "error", "request")

    def __init__(self) -> None:
        #: A request was interrupted while the deadline scope was cancelled.
        self.cut_short = False
        self.answer: Any = None
        self.error: BaseException | None = None
        self.request: Write | Read | UpgradeTLS | None = None
        self.ended: Exception | None = None

    def advance(self, driver: Driver[Any]) -> Write | Read | UpgradeTLS:
        """The driver's next request; raises ``StopIteration`` when it returns."""
        ended, answer, error = self.ended, self.answer, self.error
        self.ended = self.answer = self.error = None
        if ended is not None:
            raise ended
        return driver.send(answer) if error is None else driver.throw(error)


def _lost(exc: Exception) -> Exception:
    """What the driver gets for a failed stream: ``SMTPTLSError`` when TLS failed, else
    an ``OSError`` (a broken or closed trio stream becomes ``ConnectionError``)."""
    cause = exc if isinstance(exc, ssl.SSLError) else exc.__cause__
    if isinstance(cause, ssl.SSLError):
        tls_error = SMTPTLSError(f"TLS failed: {cause}")
        tls_error.__cause__ = cause
        return tls_error
    if isinstance(exc, OSError):
        return exc
    error = ConnectionError(f"connection lost: {cause or exc or type(exc).__name__}")
    error.__cause__ = exc
    return error
