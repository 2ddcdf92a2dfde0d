"""A trio SMTP/LMTP client: the session drivers (``drivers``) over any ``trio.abc.Stream``.

Theory of operation
-------------------
This adapter knows nothing about SMTP. The operations and the loop that runs a
``Session`` driver are ``AsyncClientBase``'s (``async_base``, shared with
asyncio); this module supplies the transport primitives: ``Write``, ``Read``,
``UpgradeTLS`` (wrap the stream in ``trio.SSLStream`` and handshake; the base reads
``tls_info`` and the channel binding from it), and the deadline of each wait.
Timeouts (``TimeoutError``) and transport errors (``OSError``) are thrown back into the
driver, which maps them to ``SMTPTimeoutError``, ``SMTPDeliveryStatusUnknown`` and so
on; TLS failures are mapped here (``SMTPTLSError``), since only this layer knows
``ssl``. trio's ``BrokenResourceError``/``ClosedResourceError`` become ``OSError`` for
the driver.

Two transports. On a connection this client opened itself (``host``/``port`` or
``unix_socket``), until TLS starts, ``Write`` and ``Read`` call the non-blocking
socket directly (``_sock``) and wait (``trio.lowlevel.wait_writable`` /
``wait_readable``) only when it would block: a message of ``send_many`` costs one
``send`` and one ``recv``, and a scheduler pass every ``_READS_PER_PASS`` messages.
trio's guarantees hold all the same: each ``Write`` first checks for cancellation
(``checkpoint_if_cancelled``: nothing new goes out once the task is cancelled), and so
does each ``Read`` but the one right after a ``Write`` that let no other task run (the
next ``Write`` checks before anything goes out: one check per message of
``send_many``, not two; about 3% of its client CPU per message against smtp-sink,
paired rounds, bench/README.md), and a ``Read`` whose ``recv`` did not wait checks
the task's effective
deadline against the clock, so a batch to a server that always answers at once is
still cut short at the next message by a cancellation or a deadline (the deadline is
read once per pass and operation: one the batch's own hooks move is seen at the next
pass; with no deadline at all, the clock is not read). A scheduler pass (the
deadline's expiry, other tasks' turns) comes with every ``Read`` that waits, every
``_READS_PER_PASS``-th that does not (counted per thread, whichever clients read: one
task going round many connections gets no more), and with the ``Read`` that finds the
deadline passed: a batch lets other tasks run every few messages, not after each (a
pass per message was about a quarter of trio ``send_many``'s client CPU per message
against smtp-sink, paired rounds). A ``Write`` that did not wait has no schedule point of its
own (fewer than ``_UNREAD_WINDOW`` octets unread); a longer burst of writes gets one
per write. With TLS, or over a ``stream`` given by the caller,
``send_all``/``receive_some`` do the same jobs, each a checkpoint.

Reading while writing (RFC 2920 §3.2): once more than ``_UNREAD_WINDOW`` octets have
been written since the last ``Read`` (a long pipelined group, a message body), the
writes up to the driver's next non-write request run in one nursery beside a task that
reads into ``_inbox`` (at most ``MAX_READAHEAD`` octets), so a server that answers early
and then waits for us to read never deadlocks the write. Short writes (one
transaction's commands) skip the nursery: their replies cannot fill the socket buffers.
The next ``Read`` takes ``_inbox`` first.

Deadlines are absolute on trio's clock: a request's timeout, capped by the per-message
deadline (``message_timeout``). On the socket path only a request that has to wait
gets a cancel scope, around that one wait, with its deadline (``_timed``); when it
fires, ``TimeoutError`` goes into the driver. A request that does not wait sets
nothing, so no deadline is left behind to fire later, and an operation whose requests
never wait (a fast server) costs no cancel scope at all (a scope per operation, with a
deadline change per wait and one more before each schedule point, cost ``sendmail``
about 13% of its client CPU per message against smtp-sink; paired runs). Over a
stream every call is a checkpoint that may wait, so one cancel scope serves the whole
operation (a scope per call cost TLS ``send_many`` about 9% more): each call sets its
deadline on it first, only when it changes (each change costs trio a heap update), and
the driver's code between calls has no checkpoint, so no earlier deadline fires later;
when the scope fires, ``_run`` resumes the driver with ``TimeoutError`` thrown in
(``_cut_by_deadline``). Only ``aclose``, which may run on the way out of an
operation, resets the deadline otherwise.

On a timeout, a transport error, a cancellation (``trio.Cancelled``) or any other
exception that leaves the session unusable, the stream is closed forcefully and the
client is never reused; the cancellation propagates.
"""

from __future__ import annotations

import math
import socket  # noqa: TID251  (adapter layer: I/O allowed)
import ssl
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import trio  # noqa: TID251  (adapter layer: I/O allowed)

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
else:  # trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

from ..client_engine.config import ClientConfig, Timeouts, TLSPolicy
from ..client_engine.proxy import ProxyHeader
from ..drivers.exceptions import SMTPTLSError
from ..drivers.session import MAX_READAHEAD, Driver, Request, T, Write
from .async_base import AsyncClientBase, one_call_send, send_in_one_call
from .async_pool import AsyncPoolBase
from .common import (
    RECV_SIZE,
    Step,
    TLSName,
    require_one_target,
    tls_failure,
    usage_error,
)
from .pool_support import RateLimit
from .tls import SSLConnection

__all__ = ["RateLimit", "TrioSMTPClient", "TrioSMTPPool", "send"]

#: Octets written since the last ``Read`` below which a write does not also read: the
#: replies to that much pipelined command text fit easily in the socket buffers.
_UNREAD_WINDOW = 16 * 1024
#: ``Read``\s on the socket path that found their bytes without waiting, at most, between
#: two scheduler passes: other tasks run at least every so many replies of a batch (64,
#: not 16: a pass costs some 20 µs in place; 4% less client CPU per message, paired
#: rounds, bench/README.md; about 1.5 ms of 1 KB messages to a server that always
#: answers at once).
_READS_PER_PASS = 64


class _Unpassed(threading.local):
    """The ``Read`` requests on the socket path that did not wait since the running task's
    last scheduler pass, whichever clients they read (``_READS_PER_PASS``): counted per
    thread (its trio run), not per client, as one task may go round many connections.
    Only the running task reads; a count another task left only makes the next pass
    come sooner. It restarts at every pass this module makes and when a client has
    connected (the connect waited)."""

    def __init__(self) -> None:
        self.count = 0


_unpassed = _Unpassed()
#: What a trio stream raises when the transport fails (OSError includes TimeoutError).
_STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
R = TypeVar("R")
_INF = math.inf


class TrioSMTPClient(AsyncClientBase):
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
        stream: trio.abc.Stream | None = None,
        unix_socket: str | None = None,
        lmtp: bool = False,
        allow_cleartext_auth: bool = False,
        config: ClientConfig | None = None,
        proxy_header: ProxyHeader | None = None,
    ) -> None:
        require_one_target(host=host, stream=stream, unix_socket=unix_socket)
        if source_address is not None and source_address[1] != 0:
            raise usage_error("trio binds only the source IP: give port 0 in source_address")
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
        self._stream: trio.abc.Stream | None = stream
        #: The plain socket under ``_stream`` while the fast path may use it (a
        #: connection this client opened, before TLS); None otherwise.
        self._sock: socket.socket | None = None
        self._inbox = bytearray()
        self._eof = False
        self._read_error: Exception | None = None
        self._unread = 0
        #: The task's effective deadline, read at the first of them in an operation (only
        #: the task's own code runs between two passes, and current_effective_deadline
        #: costs about 2 µs); None: read it at the next.
        self._pass_deadline: float | None = None
        #: A ``Write`` on the socket path checked for cancellation, and neither a ``Read``
        #: nor a schedule point came since: the next ``Read`` need not check again
        #: (nothing goes out before the following ``Write``, which checks).
        self._checked = False
        #: Inside ``_write_reading``'s burst, whose writes ``_send`` performs.
        self._bursting = False
        #: The operation's deadline scope over a stream (``_run``); None otherwise.
        self._scope: trio.CancelScope | None = None

    # -- connection ---------------------------------------------------------------------

    async def _open(self) -> str | None:
        if self._stream is None:
            try:
                with trio.fail_at(self._deadline_for(self._config.timeouts.greeting)):
                    if self._unix_socket is not None:
                        opened = await trio.open_unix_socket(self._unix_socket)
                    else:
                        assert self.host is not None
                        local = self._source_address[0] if self._source_address else None
                        opened = await trio.open_tcp_stream(
                            self.host, self.port, local_address=local
                        )
            except (OSError, trio.TooSlowError) as error:
                raise self._connect_error(error) from error
            self._stream, self._sock = _with_socket(opened)
            _unpassed.count = 0  # the connect waited: the task has been through the scheduler
        if isinstance(self._stream, trio.SocketStream):
            name = self._stream.socket.getsockname()
            return name[0] if isinstance(name, tuple) else None
        return None

    async def aclose(self) -> None:
        """Close the connection without QUIT; the client cannot be used again.

        Forceful (no TLS close_notify), so it never blocks and works while cancelled.
        """
        if self._scope is not None:  # the last request's deadline no longer applies
            self._scope.deadline = math.inf
        if self._session is not None:
            self._session.mark_broken()
        stream, self._stream = self._stream, None
        self._sock = None
        if stream is not None:
            await trio.aclose_forcefully(stream)

    # -- the driver loop ----------------------------------------------------------------

    async def _run(self, driver: Driver[T]) -> T:
        """Perform ``driver``'s requests; close the stream when the session breaks.

        On the socket path each wait has its own deadline scope (``_timed``). Over a
        stream, one cancel scope serves every request of the operation (cheaper than one
        per request): each request sets its deadline (``_within``). When that scope
        catches its own cancellation the deadline passed: ``_drive`` left the driver as
        it was, and it resumes with ``TimeoutError`` thrown in.
        """
        if self._sock is not None:
            self._pass_deadline = None  # the caller may have entered a scope since
            self._checked = False  # ... or cancelled one: the first Read checks again
            return await self._drive(driver, Step())
        step = Step()
        while True:
            try:
                with trio.CancelScope() as scope:
                    self._scope = scope
                    try:
                        return await self._drive(driver, step)
                    finally:
                        self._scope = None
            except BaseException:
                if step.cut_short:  # another cancellation came too: never reused
                    driver.close()
                    await self.aclose()
                raise
            step.cut_short = False
            step.error = self._timed_out(TimeoutError("timed out"))

    def _cut_by_deadline(self) -> bool:
        return self._scope is not None and self._scope.cancel_called

    async def _within(self, waiting: Awaitable[R], deadline: float) -> R:
        """Await ``waiting`` (a stream's call) until ``deadline``: on the operation's
        scope when there is one (a deadline change costs trio a heap update, so only
        when it differs), else on a scope of its own (``_timed``)."""
        scope = self._scope
        if scope is None:
            return await _timed(waiting, deadline)
        if scope.deadline != deadline:
            scope.deadline = deadline
        return await waiting

    def _transport_error(self, exc: BaseException) -> BaseException | None:
        return _lost(exc) if isinstance(exc, _STREAM_ERRORS) else None

    async def _send(self, request: Write, driver: Driver[Any], step: Step) -> Request | None:
        """Write ``request.data``; past ``_UNREAD_WINDOW`` octets unread, with the writes
        that follow it, while a task reads (``_write_reading``, whose writes come back
        here). On the socket path the common case, a short group the kernel takes at
        once, is one cancellation check and one ``send``, with no other coroutine."""
        data = request.data
        unread = self._unread + len(data)
        if unread > _UNREAD_WINDOW and not self._bursting and self._can_read:
            return await self._write_reading(driver, request, step)
        self._unread = unread
        sock = self._sock
        if sock is None:
            stream = self._live_stream()
            await self._within(stream.send_all(data), self._deadline_for(request.timeout))
            return None
        await trio.lowlevel.checkpoint_if_cancelled()  # once cancelled, nothing new goes out
        self._checked = True
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            if unread > _UNREAD_WINDOW:  # a burst of writes: let others run
                _unpassed.count = 0
                self._pass_deadline = None
                await trio.lowlevel.cancel_shielded_checkpoint()
                self._checked = False  # others ran: one may have cancelled this task
            return None  # else the Read that comes next is the schedule point
        await _timed(_send_rest(sock, data, sent), self._deadline_for(request.timeout))
        self._checked = False  # it waited: a cancellation may have come since the check
        return None

    async def _write_reading(
        self, driver: Driver[Any], request: Write, step: Step
    ) -> Request | None:
        """Perform ``request`` and every ``Write`` the driver yields right after it while
        a task reads ahead (RFC 2920 §3.2); one nursery for the whole burst (a body).

        Returns the first request that is not a ``Write``, or None when a write failed
        (``step.error`` holds what to throw into the driver) or the driver ended
        (``step.ended``, whatever it raised: a hook's ``KeyboardInterrupt`` too). Outcomes
        are stored, not raised, so that they leave the nursery as themselves rather than
        inside an ``ExceptionGroup``.
        """
        stream = self._live_stream()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_ahead, stream)
            self._bursting = True
            try:
                while True:
                    try:
                        await self._send(request, driver, step)
                    except _STREAM_ERRORS as exc:
                        step.error = self._thrown(exc)
                        return None
                    try:
                        following = driver.send(None)
                    except BaseException as exc:  # StopIteration, a hook's KeyboardInterrupt:
                        step.ended = exc  # re-raised by ``_drive``, not in an ExceptionGroup
                        return None
                    if type(following) is not Write:
                        return following
                    request = following
            finally:
                self._bursting = False
                nursery.cancel_scope.cancel()

    # -- I/O ----------------------------------------------------------------------------

    def _clock(self) -> float:
        return trio.current_time()

    def _live_stream(self) -> trio.abc.Stream:
        if self._stream is None:
            raise ConnectionError("the connection is closed")
        return self._stream

    @property
    def _can_read(self) -> bool:
        return not self._eof and self._read_error is None

    async def _read(self, timeout: float | None) -> bytes:
        self._unread = 0
        if self._inbox:
            self._checked = False  # the Read after this one is not right after a Write
            data = bytes(self._inbox)
            self._inbox.clear()
            return data
        if self._read_error is not None:
            raise self._read_error
        if self._eof:
            return b""
        sock = self._sock
        if sock is None:
            stream = self._live_stream()
            deadline = self._read_deadline(timeout)
            return bytes(await self._within(stream.receive_some(RECV_SIZE), deadline))
        if self._checked:  # the Write just before checked; the next Write checks again
            self._checked = False
        else:
            await trio.lowlevel.checkpoint_if_cancelled()
        try:
            data = sock.recv(RECV_SIZE)
        except BlockingIOError:
            _unpassed.count = 0  # the wait is a scheduler pass
            self._pass_deadline = None
            return await _timed(_wait_and_receive(sock), self._read_deadline(timeout))
        limit = self._pass_deadline
        if limit is None:  # the first since a pass or the operation's start
            limit = self._pass_deadline = trio.current_effective_deadline()
        unpassed = _unpassed
        unpassed.count += 1
        if unpassed.count >= _READS_PER_PASS or (
            limit != _INF and limit <= trio.current_time()  # no deadline: no clock read
        ):
            # Let others run; or a deadline passed (-inf: cancelled): the pass cancels, the
            # next request raises.
            unpassed.count = 0
            self._pass_deadline = None
            await trio.lowlevel.cancel_shielded_checkpoint()
        return data

    async def _read_ahead(self, stream: trio.abc.Stream) -> None:
        """Buffer what the server sends while a write is blocked (RFC 2920 §3.2). It sets
        no deadline: the end of the burst of writes cancels it (over a stream it waits
        under the operation's scope, set for the write)."""
        sock = self._sock
        while len(self._inbox) < MAX_READAHEAD:
            try:
                if sock is None:
                    data = bytes(await stream.receive_some(RECV_SIZE))
                else:
                    data = await _wait_and_receive(sock)
            except _STREAM_ERRORS as exc:
                self._read_error = _lost(exc)
                return
            if not data:
                self._eof = True
                return
            self._inbox += data
        await trio.sleep_forever()  # full: stop reading until the write ends

    async def _handshake(self, server_hostname: str | None, timeout: float | None) -> SSLConnection:
        context = self._tls_context(server_hostname)
        # Reads drain the inbox and the driver yields no write between the STARTTLS 220
        # and this request, so every later byte goes through the TLS layer.
        assert not self._inbox
        self._sock = None  # from now on every byte goes through the TLS layer
        tls = trio.SSLStream(self._live_stream(), context, server_hostname=server_hostname)
        self._stream = tls
        try:
            await self._within(tls.do_handshake(), self._deadline_for(timeout))
        except (trio.BrokenResourceError, ssl.SSLError) as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            message = f"TLS handshake failed: {cause or 'connection closed'}"
            raise SMTPTLSError(message) from cause  # the ssl.SSLError when there is one
        # SSLStream forwards version(), cipher() and getpeercert() to its SSLObject
        # (untyped, through __getattr__): all that TLSInfo and channel_binding ask.
        return cast("ssl.SSLObject", tls)


async def _timed(waiting: Awaitable[R], deadline: float) -> R:
    """Await ``waiting`` until ``deadline`` (trio's clock; ``math.inf``: no limit), then
    ``TimeoutError``: a cancel scope around this one wait, made only when a request has
    to wait, so no deadline is ever set while nothing waits. A cancellation from outside
    propagates as ``trio.Cancelled``."""
    if deadline == math.inf:
        return await waiting
    with trio.CancelScope(deadline=deadline):
        return await waiting
    raise TimeoutError("timed out")


async def _send_rest(sock: socket.socket, data: bytes, sent: int) -> None:
    """Write ``data`` from octet ``sent`` on, waiting whenever ``sock`` is full."""
    with memoryview(data) as view:
        while sent < len(data):
            await trio.lowlevel.wait_writable(sock)
            try:
                sent += sock.send(view[sent:])
            except BlockingIOError:
                continue


async def _wait_and_receive(sock: socket.socket) -> bytes:
    """What ``sock`` receives once it is readable (``b""`` at the end of the stream)."""
    while True:
        await trio.lowlevel.wait_readable(sock)
        try:
            return sock.recv(RECV_SIZE)
        except BlockingIOError:
            continue


def _with_socket(stream: trio.SocketStream) -> tuple[trio.SocketStream, socket.socket]:
    """The stdlib socket under ``stream`` (for the fast path) and a ``SocketStream``
    over that same socket object (for TLS and closing). trio exposes no socket's stdlib
    object, so the descriptor is detached from ``stream`` and wrapped anew."""
    inner = stream.socket
    fd = inner.detach()
    try:
        sock = socket.socket(inner.family, inner.type, inner.proto, fileno=fd)
    except BaseException:
        socket.close(fd)
        raise
    return trio.SocketStream(trio.socket.from_stdlib_socket(sock)), sock


def _lost(exc: Exception) -> Exception:
    """What the driver gets for a failed stream: ``SMTPTLSError`` when TLS failed, else
    an ``OSError`` (a broken or closed trio stream becomes ``ConnectionError``)."""
    cause = exc if isinstance(exc, ssl.SSLError) else exc.__cause__
    if isinstance(cause, ssl.SSLError):
        return tls_failure(cause)
    if isinstance(exc, OSError):
        return exc
    error = ConnectionError(f"connection lost: {cause or exc or type(exc).__name__}")
    error.__cause__ = exc
    return error


#: The one-call send: connect, log in when ``username`` is given, send, QUIT
#: (``async_base.send_in_one_call``, which documents the parameters).
send = one_call_send(send_in_one_call, TrioSMTPClient)


class TrioSMTPPool(AsyncPoolBase):
    """A pool of ``TrioSMTPClient`` connections shared by tasks; it never sends a
    message twice (docs/pool.md)::

        async with TrioSMTPPool("mail.example.org", 587, username="u", password="p") as pool:
            await pool.send_message(message)  # from any number of tasks

    The options are ``SMTPPool``'s (``blocking``); see ``async_pool.AsyncPoolBase``.
    """

    _client_class = TrioSMTPClient

    def _new_condition(self) -> _PoolCondition:
        return _PoolCondition()

    def _clock(self) -> float:
        return trio.current_time()

    async def _sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

    async def _together(self, count: int, work: Callable[[], Awaitable[None]]) -> None:
        try:
            async with trio.open_nursery() as nursery:
                for _ in range(count):
                    nursery.start_soon(work)
        except BaseExceptionGroup as group:
            # ``work`` raises nothing but a cancellation or an interrupt from the
            # caller's code (KeyboardInterrupt, SystemExit), and the nursery cancels
            # the others: the first propagates as itself, as with one connection and
            # from the asyncio pool (docs/pool.md), not in the nursery's group.
            error = group.exceptions[0]
            raise error from error.__cause__


class _PoolCondition:
    """A ``trio.Condition`` whose acquire is shielded: a cancel scope stays cancelled,
    and a cancelled send must still give its slot back (the lock is only ever held
    for a few statements). ``wait`` stays cancellable."""

    def __init__(self) -> None:
        self._condition = trio.Condition()

    async def __aenter__(self) -> None:
        with trio.CancelScope(shield=True):
            await self._condition.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._condition.release()

    async def wait(self) -> None:
        await self._condition.wait()

    def notify_all(self) -> None:
        self._condition.notify_all()
