"""An asyncio SMTP/LMTP client: the session drivers (``drivers``) over an asyncio
transport and its protocol (``asyncio_channel.Channel``).

Theory of operation
-------------------
This adapter knows nothing about SMTP. The operations and the loop that runs a
``Session`` driver are ``AsyncClientBase``'s (``async_base``, shared with trio);
this module supplies the transport primitives over a ``Channel``: ``Write``
(``transport.write``, then a wait only while the transport has paused writing),
``Read`` (what the channel received, else a wait for more), ``UpgradeTLS``
(``loop.start_tls``; the base reads ``tls_info`` and the channel binding from the new
``SSLObject``). Timeouts (``TimeoutError``) and transport errors (``OSError``) are
thrown back into the driver, which maps them to ``SMTPTimeoutError``,
``SMTPDeliveryStatusUnknown`` and so on; TLS errors are mapped here (``SMTPTLSError``),
since only this layer knows ``ssl``.

Reading while writing (RFC 2920 §3.2) comes free: the transport keeps delivering
received bytes to the channel while a write waits, up to ``MAX_READAHEAD``, where the
channel pauses reading. When a write fails the channel keeps the server's last words
(e.g. a 421 or 552 mid-body, then a reset): on a plaintext connection it reads what the
kernel still holds before asyncio closes the socket, and ``_read`` hands out what was
received before it raises the error. Under TLS that salvage is impossible, so past
``_UNREAD_WINDOW`` octets written since the loop last read (a ``Read``, a data callback
that ran the pump, or these yields themselves) a write first lets the loop read.

Replies are handled where they arrive (issue 14): after a write, ``_send`` goes on with
the driver itself (``_Pump``) while it asks only for writes the transport takes at once
(under TLS, within ``_UNREAD_WINDOW`` octets since the last read) and reads; a read that
has to wait hands the pump to the channel as its ``consumer``, so the next reply is fed
to the driver from the transport's callback, which writes what the driver answers, and
so on. The task sleeps through the whole exchange (a ``send_many`` batch: one wait, not
one per reply) and is woken only for what the pump does not do: a write the transport
cannot take now (or, under TLS, past the unread window), a TLS upgrade, EOF or a lost
connection, a deadline, the driver's end. On a connection the client opened itself,
before TLS, a read first takes what the kernel already holds, past the loop
(``Channel.receive_now``, at most ``READS_PER_PASS`` between two passes of the loop,
counted per thread, whichever channels read):
a reply that came while the pump wrote costs one ``read``, not a loop pass (with
smtp-sink on loopback, 28% less client CPU per message of ``send_many``, 1 KB
messages, paired rounds). Under TLS the pump saves about 12% of
``send_many``'s client CPU per message with DATA (paired rounds). With BDAT the driver
writes many messages before it reads; the window restarting after the task's yields and
at each data callback (not only at the driver's ``Read``) keeps most of those writes in
the pump: the task wrote 1,059 times (two loop passes each) in a batch of 2,000 1 KB
messages, now about 120 (8% less client CPU per message, paired rounds). From the
callback the driver runs in a copy of the task's context, so a transcript hook or
``on_outcome`` reads the task's context variables (a value it sets stays in the copy).
Nothing raised there escapes into the event loop: whatever a hook raises
(``KeyboardInterrupt`` included) ends the driver and is raised in the task, which drops
the connection (``tests/adapters/test_hook_exceptions.py``).

Bytes the server sends after the STARTTLS 220 but before the handshake would sit in
the channel and later look like decrypted data. Before ``start_tls`` any such bytes are
handed to the engine, which refuses them (RFC 3207 §4, docs/design.md §4 rule 4).

Every deadline is absolute on the loop clock: a request's timeout, capped by the
per-message deadline (``message_timeout``). On a timeout, a transport error, a
cancellation (``CancelledError``) or any other exception that leaves the session
unusable, the transport is aborted and the client is never reused; the cancellation
propagates. A connected ``(StreamReader, StreamWriter)`` pair (``streams=``) is taken
over: a ``Channel`` replaces the streams' protocol on the writer's transport.
"""

from __future__ import annotations

import asyncio  # noqa: TID251  (adapter layer: I/O allowed)
import contextvars
import math
import socket  # noqa: TID251  (adapter layer: I/O allowed)
import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..client_engine.config import ClientConfig, Timeouts, TLSPolicy
from ..client_engine.proxy import ProxyHeader
from ..drivers.exceptions import SMTPTLSError
from ..drivers.session import Driver, Read, Request, Write
from .async_base import AsyncClientBase, one_call_send, send_in_one_call
from .async_pool import AsyncPoolBase
from .asyncio_channel import Channel, take_over
from .common import (
    Step,
    TLSName,
    require_one_target,
    tls_failure,
)
from .pool_support import RateLimit
from .tls import SSLConnection

__all__ = ["AsyncSMTPClient", "AsyncSMTPPool", "RateLimit", "send"]

#: Octets written since the loop last read (a ``Read``, a data callback, or the yields
#: below) past which a write over TLS first lets the loop read (a plaintext channel
#: salvages the server's last words instead).
_UNREAD_WINDOW = 16 * 1024
R = TypeVar("R")


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
        #: The given streams, kept referenced while the client uses their transport (a
        #: collected ``StreamWriter`` closes it).
        self._streams = streams
        #: The connection's protocol, once open; None again once closed.
        self._channel: Channel | None = None
        self._unread = 0

    # -- connection ---------------------------------------------------------------------

    async def _open(self) -> str | None:
        if self._streams is not None:
            self._channel = take_over(*self._streams)
        else:
            self._channel = await self._connect()
        transport = self._channel.transport
        assert transport is not None
        sockname = transport.get_extra_info("sockname")  # a str for unix sockets
        return sockname[0] if isinstance(sockname, tuple) else None

    async def _connect(self) -> Channel:
        loop = asyncio.get_running_loop()
        try:
            opening: Awaitable[tuple[asyncio.BaseTransport, Channel]]
            if self._unix_socket is not None:
                opening = loop.create_unix_connection(Channel, self._unix_socket)
            elif self._sock is not None:
                opening = loop.create_connection(Channel, sock=self._sock)
            else:
                assert self.host is not None  # require_one_target
                opening = loop.create_connection(
                    Channel, self.host, self.port, local_addr=self._source_address
                )
            deadline = self._deadline_for(self._config.timeouts.greeting)
            _, channel = await _within(opening, deadline)
        except OSError as error:  # TimeoutError included
            if self._sock is not None:
                self._sock.close()
            raise self._connect_error(error) from error
        channel.read_directly()  # a transport of the loop's own, over a socket: see _Pump
        return channel

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
        channel, self._channel = self._channel, None
        streams, self._streams = self._streams, None
        sock, self._sock = self._sock, None
        if channel is not None:
            channel.abort()
        elif streams is not None:
            streams[1].transport.abort()  # given but never taken over
        elif sock is not None:
            sock.close()  # given but never wrapped in a transport

    # -- I/O ----------------------------------------------------------------------------

    def _clock(self) -> float:
        # The channel's loop once connected: get_running_loop() costs a getpid() system
        # call before Python 3.12, and a batch reads the clock for every reply it awaits.
        channel = self._channel
        return (channel.loop if channel is not None else asyncio.get_running_loop()).time()

    def _transport_error(self, exc: BaseException) -> BaseException | None:
        if isinstance(exc, ssl.SSLError):
            return tls_failure(exc)
        return exc if isinstance(exc, OSError) else None  # TimeoutError is an OSError

    def _live_channel(self) -> Channel:
        channel = self._channel
        if channel is None:
            raise ConnectionError("the connection is closed")
        return channel

    async def _send(self, request: Write, driver: Driver[Any], step: Step) -> Request | None:
        channel = self._live_channel()
        transport = channel.transport
        assert transport is not None
        if channel.tls:
            if self._unread + len(request.data) > _UNREAD_WINDOW:
                # Let the transport take in what arrived (say a 421 mid-body) first: once
                # a write fails asyncio stops reading, and under TLS what was unread is
                # lost. A task resumes before the I/O callbacks of its loop iteration,
                # hence two yields; then the loop has read all that had arrived.
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                self._unread = 0
            self._unread += len(request.data)
        if channel.lost:
            raise channel.loss()
        transport.write(request.data)
        if channel.writing_paused or transport.is_closing():
            await channel.drain(self._deadline_for(request.timeout))  # raises if lost
            return None
        return await self._pumped(channel, driver, step)

    async def _pumped(self, channel: Channel, driver: Driver[Any], step: Step) -> Request | None:
        """Go on with ``driver`` inline (``_Pump``; module doc) until it needs the task;
        return the request the task must perform (a ``Read`` whose wait ended without
        data: ``_read`` hands out the EOF or the error), or None when the driver ended
        (``step.ended``). A timeout or a cancellation leaves the driver at its read."""
        pump = _Pump(self, channel, driver, step)
        pump.run(None)
        if pump.done:
            return pump.request
        channel.consumer = pump.consume
        try:
            while not pump.done:
                if channel.eof or channel.lost:
                    return pump.request
                await channel.wait(pump.deadline)
        finally:
            channel.consumer = None
        if pump.failure is not None:
            raise pump.failure
        return pump.request

    async def _read(self, timeout: float | None) -> bytes:
        channel = self._live_channel()
        self._unread = 0
        while True:
            data = channel.take()
            if data:
                return data
            if channel.failure is not None:
                raise channel.failure  # after what was received: the server's last words
            if channel.eof or channel.lost:
                return b""
            await channel.wait(self._read_deadline(timeout))

    async def _handshake(self, server_hostname: str | None, timeout: float | None) -> SSLConnection:
        context = self._tls_context(server_hostname)
        channel = self._live_channel()
        # Bytes already received arrived before the handshake: the engine refuses them.
        early = channel.take()
        if early:
            self.session.conn.receive_data(early)
        try:
            await _within(channel.start_tls(context, server_hostname), self._deadline_for(timeout))
        except (EOFError, ConnectionError) as exc:
            raise SMTPTLSError(f"TLS handshake failed: {exc or type(exc).__name__}") from exc
        assert channel.transport is not None
        tls = channel.transport.get_extra_info("ssl_object")
        assert isinstance(tls, ssl.SSLObject)
        return tls


class _Pump:
    """Runs a session driver from the channel's data callback while all it asks for is
    a write the transport takes at once or a read (``AsyncSMTPClient._pumped``; the
    module doc): the same requests ``_drive`` would perform, with the same per-reply
    deadlines (``_read_deadline``), without waking the task."""

    __slots__ = (
        "_channel",
        "_client",
        "_context",
        "_driver",
        "_step",
        "deadline",
        "done",
        "failure",
        "request",
    )

    def __init__(
        self, client: AsyncSMTPClient, channel: Channel, driver: Driver[Any], step: Step
    ) -> None:
        self._client = client
        self._channel = channel
        self._driver = driver
        self._step = step
        self._context = contextvars.copy_context()
        #: The read waited on; once ``done``, the request for the task (None: the
        #: driver ended, see ``step.ended``).
        self.request: Request | None = None
        self.done = False
        #: What the pump itself raised from the transport's callback (not the driver):
        #: ``_pumped`` raises it in the task, which drops the connection.
        self.failure: BaseException | None = None
        #: When the read waited on times out (loop clock).
        self.deadline = math.inf

    def consume(self) -> None:
        """The channel received data for the read waited on (``Channel.consumer``).
        Nothing escapes into the transport's callback: what the driver raises ends it
        (``run``), anything else goes to the task as ``failure``."""
        data = self._channel.take()
        if data:
            self._client._unread = 0  # the loop just read all that had arrived
            try:
                self._context.run(self.run, data)
            except BaseException as exc:
                self.failure = exc
                self._finish(None)

    def run(self, answer: bytes | None) -> None:
        """Send ``answer`` into the driver, then perform its requests while each is a
        write the transport takes at once or a read of data already received; stop at
        a read that must wait (``deadline``) or hand the task the first request it
        must perform."""
        client, channel, driver = self._client, self._channel, self._driver
        while True:
            try:
                request = driver.send(answer)
            except BaseException as exc:  # StopIteration, a hook's KeyboardInterrupt ...:
                self._step.ended = exc  # ``_drive`` re-raises it in the task
                return self._finish(None)
            if type(request) is Write:
                transport = channel.transport
                if (
                    channel.lost
                    or channel.writing_paused
                    or transport is None
                    or transport.is_closing()
                    or (channel.tls and client._unread + len(request.data) > _UNREAD_WINDOW)
                ):
                    return self._finish(request)  # ``_send`` waits, lets the loop read, raises
                try:
                    transport.write(request.data)
                except Exception:  # misuse of the transport: ``_send`` raises it again
                    return self._finish(request)
                if channel.tls:
                    client._unread += len(request.data)
                answer = None
            elif type(request) is Read:
                client._unread = 0
                if not request.resume:
                    client._wait_deadline = None  # a new reply: a new deadline
                answer = channel.take()
                if not answer:
                    answer = channel.receive_now()  # already in the kernel: no loop pass
                if not answer:
                    if channel.eof or channel.lost:
                        return self._finish(request)  # ``_read`` hands out the end
                    self.request = request
                    self.deadline = client._read_deadline(request.timeout)
                    channel.retime(self.deadline)
                    return None
            else:
                return self._finish(request)  # TLS: the task's

    def _finish(self, request: Request | None) -> None:
        self.request = request
        self.done = True
        self._channel.consumer = None
        self._channel.wake()


async def _within(awaitable: Awaitable[R], deadline: float) -> R:
    """Await ``awaitable`` until the loop time ``deadline`` (``inf``: no limit);
    ``TimeoutError`` after it. For the rare waits (connect, TLS handshake); the
    channel times its own."""
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

    async def _together(self, count: int, work: Callable[[], Awaitable[None]]) -> None:
        await asyncio.gather(*(work() for _ in range(count)))
