"""The asyncio client's byte channel: an ``asyncio.BufferedProtocol`` that the
transport calls back, and the waits the client adapter performs on it.

Theory of operation
-------------------
``AsyncSMTPClient`` (``asyncio_client``) needs four things of a connection: write
bytes, wait until the transport takes more (flow control), hand out what was
received, and run a TLS handshake. Streams (``StreamReader``/``StreamWriter``) do
this with three objects per connection, a read buffer that grows and shrinks, a
future per ``drain`` and a task cancellation per timeout; ``Channel`` does it with one
object of fixed slots:

* Receiving: the transport ``recv_into``\\s a buffer shared by every channel of the
  thread (``get_buffer``; one loop runs one callback at a time, and the bytes are
  copied out in ``buffer_updated`` before it returns), so an idle connection holds no
  receive buffer. What arrived waits in ``inbox`` for the next ``take``; past
  ``MAX_READAHEAD`` octets the channel pauses reading until it is taken (RFC 2920 §3.2:
  it reads while the client writes, within a bound).
* Waiting: one waiter future at a time (the client performs one request at a time),
  resolved by the transport callbacks (data, EOF, connection lost, writing resumed).
  A deadline is one timer per channel, armed lazily: a wait whose deadline is later
  than the armed timer leaves it, and when it fires it re-arms for the wait in
  progress, so a steady stream of replies costs no timer operations; a timeout sets
  ``TimeoutError`` on the waiter, with no task cancellation.
* The server's last words: when a write fails (the server reset the connection after
  answering, say ``552`` mid-body) asyncio stops reading and closes the socket right
  after ``connection_lost``. Before that, on a plaintext connection, ``connection_lost``
  reads what the kernel still holds (a non-blocking ``recv`` on the socket, at most
  ``MAX_READAHEAD`` octets) into ``inbox``, so the reply the server sent before it went
  away is handed out before the error. Under TLS those bytes would need the TLS
  layer, which is gone; the client lets the loop read before large writes instead.
* Replies handled where they arrive: while the client's task waits (plaintext or TLS:
  the TLS transport calls this same protocol), it may hand the channel a ``consumer``
  (``asyncio_client``'s pump of the session driver); data is then passed to it from
  ``buffer_updated`` instead of waking the task, so a reply that only leads to the
  next write (``send_many``: the 354, then the content and the next pipelined group)
  costs no future, no task switch and no second loop iteration. The consumer wakes
  the task when it needs it.
* Reading past the loop (issue 14): on a connection the client opened itself, on a
  selector event loop, until TLS starts, ``receive_now`` reads the socket at once
  (``os.read`` on its descriptor, non-blocking as asyncio keeps it) when the inbox is
  empty. The pump (``asyncio_client``) calls it after its writes: a reply already in
  the kernel (a loopback or LAN server answers while we write) then costs one
  ``read`` instead of a loop pass (the selector's poll, a handle, ``get_buffer``,
  ``buffer_updated``). Bytes read there are exactly the bytes the transport would
  have read next: it holds none of its own (everything it read is in ``inbox``, taken
  first), the loop runs one callback at a time, and it reads the same descriptor
  only when the poll says there is more. The descriptor is forgotten in
  ``connection_lost``, before asyncio closes it. An end of stream or a failure seen
  there is left to the transport, which sees it too on its next read (an error
  already consumed is reported as the transport would: ``connection_lost`` with it).
  At most ``READS_PER_PASS`` such reads follow each other before the loop runs again
  (a callback of a channel, or a task waiting on one, woken). The count is the
  thread's, shared by its channels, not each channel's: what it bounds is how long the
  loop goes without running, and one task going round many connections (a
  ``sendmail`` on each in turn, every reply already in) would otherwise hold the loop
  for ``READS_PER_PASS`` reads per connection. A count left by another task's reads
  only makes the next pass come sooner; it restarts whenever the loop provably ran
  (those callbacks, a wait's end, a connection just opened).
* TLS: ``start_tls`` runs ``loop.start_tls`` on the transport with this same protocol
  (every supported Python's way; streams need 3.11) and switches to the TLS transport
  it returns.

Errors keep the streams' meaning: after the buffered bytes, a read raises the
exception the connection was lost with (``b""`` at EOF or a clean close), and a write
on a lost connection raises it too (``ConnectionResetError("Connection lost")`` when
the connection ended without one).
"""

from __future__ import annotations

import asyncio  # noqa: TID251  (adapter layer: I/O allowed)
import math
import os
import socket  # noqa: TID251  (adapter layer: I/O allowed)
import ssl
import threading
from collections.abc import Callable

from ..drivers.session import MAX_READAHEAD
from .common import RECV_SIZE as READ_SIZE

__all__ = ["RECV_SIZE", "Channel", "take_over"]

#: Whether ``os.read`` reads a socket's descriptor (not on Windows).
_READ_SOCKETS = os.name == "posix"
#: Reads past the loop (``receive_now``) that may follow each other before the loop runs
#: again, counted per thread (its loop), whichever channels they read: a batch to a
#: server that always answers at once, or one task going round many such connections,
#: still lets the loop's other callbacks and tasks run, and a cancellation reach the
#: waiting task, every few replies.
READS_PER_PASS = 16

#: The size of the shared receive buffer: the most one ``recv_into`` takes.
RECV_SIZE = 256 * 1024
#: The most ``recv`` calls that salvage the server's last words (each up to RECV_SIZE).
_SALVAGE_READS = MAX_READAHEAD // RECV_SIZE


class _PerThread(threading.local):
    """What the channels of a thread's loop share, made when the thread first uses it:
    one receive buffer (every channel fills it in turn and copies its bytes out at
    once), and the count of reads past the loop since the loop last ran."""

    def __init__(self) -> None:
        self.view = memoryview(bytearray(RECV_SIZE))
        #: ``receive_now`` reads since the loop last ran a callback of a channel or woke
        #: a task waiting on one (``READS_PER_PASS``). Per thread, not per channel: the
        #: bound is on the loop, and one task may read many channels between its waits.
        self.passless = 0


_shared = _PerThread()


class Channel(asyncio.BufferedProtocol):
    """One connection's protocol: what the transport delivered, and the waits on it;
    see the module doc. ``transport`` is set by ``connection_made`` and replaced by
    ``start_tls``."""

    __slots__ = (
        "_fd",
        "_read_failed",
        "_reading_paused",
        "_timer",
        "_timer_at",
        "_wait_deadline",
        "_waiter",
        "consumer",
        "eof",
        "failure",
        "inbox",
        "loop",
        "lost",
        "tls",
        "transport",
        "writing_paused",
    )

    def __init__(self) -> None:
        #: The loop the connection lives on.
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        #: Received, not yet taken.
        self.inbox: bytes | bytearray = b""
        #: The server ended its side (``eof_received``).
        self.eof = False
        #: ``connection_lost`` was called; ``failure`` is what it was lost with.
        self.lost = False
        self.failure: BaseException | None = None
        #: Whether the bytes pass through TLS (no salvage; EOF closes).
        self.tls = False
        self._waiter: asyncio.Future[None] | None = None
        self._wait_deadline = math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        #: The transport asked to stop writing (``pause_writing``) until it resumes.
        self.writing_paused = False
        self._reading_paused = False
        #: Called with nothing (it ``take``\s) instead of waking the waiter when data
        #: arrives; None: wake the waiter (see the module doc).
        self.consumer: Callable[[], None] | None = None
        #: The socket's descriptor for ``receive_now``; -1: never read past the loop.
        self._fd = -1
        #: ``receive_now`` met a failure and reported the loss itself.
        self._read_failed = False

    # -- transport callbacks ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return _shared.view

    def buffer_updated(self, nbytes: int) -> None:
        self.received(_shared.view[:nbytes].tobytes())

    def received(self, data: bytes) -> None:
        """Keep ``data`` for the next ``take`` (past ``MAX_READAHEAD`` stop reading)."""
        _shared.passless = 0  # the loop ran
        inbox = self.inbox
        if not inbox:
            self.inbox = inbox = data
        else:
            if type(inbox) is bytes:
                self.inbox = inbox = bytearray(inbox)
            inbox += data
        if len(inbox) >= MAX_READAHEAD and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        consumer = self.consumer
        if consumer is not None:
            consumer()
        else:
            self.wake()

    def eof_received(self) -> bool:
        self.eof = True
        self.wake()
        return not self.tls  # half-open like streams; TLS ignores it (with a warning)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fd = -1  # asyncio closes it next
        if self._read_failed:
            return  # reported already, by ``receive_now``, which consumed the error
        self.consumer = None  # the last words wait in the inbox for the task
        if exc is not None and not self.tls:
            self._salvage()
        self.lost = True
        self.failure = exc
        self._cancel_timer()
        self.wake()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.wake()

    def _salvage(self) -> None:
        """Read what the kernel still holds before asyncio closes the socket (see the
        module doc); never blocks (asyncio's sockets are non-blocking)."""
        transport = self.transport
        held = transport.get_extra_info("socket") if transport is not None else None
        fileno = held.fileno() if held is not None else -1
        if fileno < 0:
            return
        sock = socket.socket(fileno=fileno)  # a view of asyncio's socket, detached below
        try:
            sock.setblocking(False)  # as asyncio keeps it, whatever the default timeout
            for _ in range(_SALVAGE_READS):
                if len(self.inbox) >= MAX_READAHEAD:
                    break
                data = sock.recv(RECV_SIZE)
                if not data:
                    break
                self.received(data)
        except OSError:
            pass  # nothing more (EAGAIN), or the error the connection was lost with
        finally:
            sock.detach()

    # -- what the client does -----------------------------------------------------------

    def read_directly(self) -> None:
        """Let ``receive_now`` read the socket past the loop (see the module doc): for a
        connection the client opened on a selector event loop, before TLS."""
        transport = self.transport
        if (
            _READ_SOCKETS
            and isinstance(self.loop, asyncio.SelectorEventLoop)
            and transport is not None
            and not self.tls
            and not self.lost
        ):
            held = transport.get_extra_info("socket")
            self._fd = held.fileno() if held is not None else -1
            _shared.passless = 0  # the loop ran: the client just awaited its connection

    def receive_now(self) -> bytes:
        """What the kernel holds for the connection right now, read past the loop
        (``read_directly``; call it with ``inbox`` empty); ``b""`` when nothing is
        there, or when this channel does not read past the loop. At the end of the
        stream it stops (the transport reports the end); a failure is reported as the
        transport reports a failed read (``connection_lost``), and the transport
        dropped."""
        fd = self._fd
        if fd < 0:
            return b""
        shared = _shared
        if shared.passless >= READS_PER_PASS:
            return b""
        shared.passless += 1
        try:
            data = os.read(fd, READ_SIZE)  # a fresh object of the common size: no shared buffer
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:  # ECONNRESET ...: the transport's next read would see EOF
            self.connection_lost(exc)  # so report it as the transport reports a failed read
            self._read_failed = True
            if self.transport is not None:
                self.transport.abort()  # its own connection_lost comes later: ignored
            return b""
        if not data:
            self._fd = -1  # the end of the stream stays readable: the transport sees it
        return data

    def take(self) -> bytes:
        """Remove and return what was received (``b""``: nothing yet); resume reading if
        the read-ahead bound had paused it."""
        data = self.inbox
        self.inbox = b""
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data if type(data) is bytes else bytes(data)

    def loss(self) -> BaseException:
        """What a read (after the buffered bytes) or a write raises once the connection
        is lost: its exception, else ``ConnectionResetError``."""
        if self.failure is not None:
            return self.failure
        return ConnectionResetError("Connection lost")

    async def drain(self, deadline: float) -> None:
        """Wait until the transport takes more (``deadline`` on the loop clock, then
        ``TimeoutError``); raise ``loss()`` if the connection is lost or closing."""
        transport = self.transport
        while True:
            if self.lost:
                raise self.loss()
            closing = transport is None or transport.is_closing()
            if not self.writing_paused and not closing:
                return
            await self.wait(deadline)

    async def wait(self, deadline: float) -> None:
        """Wait for the next transport event (data, EOF, loss, writing resumed) until
        ``deadline`` (``math.inf``: no limit), then ``TimeoutError``."""
        if deadline <= self.loop.time():
            raise TimeoutError("timed out")
        waiter = self._waiter = self.loop.create_future()
        self.retime(deadline)
        try:
            await waiter
        finally:
            self._waiter = None
            _shared.passless = 0  # the loop ran

    def retime(self, deadline: float) -> None:
        """Make ``deadline`` the deadline of the wait in progress (a ``consumer`` moved
        on to the next reply), arming the timer earlier if needed."""
        self._wait_deadline = deadline
        if deadline < self._timer_at:
            self._cancel_timer()
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def wake(self) -> None:
        """End the wait in progress, if any (a transport event; a ``consumer`` done)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_timer(self) -> None:
        fired_at = self._timer_at
        self._timer = None
        self._timer_at = math.inf
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # no wait in progress: the next one arms the timer
        if self._wait_deadline <= fired_at:
            waiter.set_exception(TimeoutError("timed out"))
        else:  # armed by an earlier wait: re-arm for this one
            self._timer_at = self._wait_deadline
            self._timer = self.loop.call_at(self._wait_deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        timer = self._timer
        if timer is not None:
            self._timer = None
            self._timer_at = math.inf
            timer.cancel()

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """The TLS client handshake over the transport; afterwards ``transport`` is the
        TLS transport (``loop.start_tls``, this protocol above it)."""
        transport = self.transport
        assert transport is not None
        await self.drain(math.inf)  # the caller bounds the whole upgrade
        self.tls = True  # from here the socket carries TLS records: never salvage them
        self._fd = -1  # nor read them past the TLS layer
        upgraded = await self.loop.start_tls(
            transport, self, context, server_hostname=server_hostname
        )
        # typeshed says ``Transport | None``; CPython returns the TLS transport or raises.
        assert upgraded is not None
        self.transport = upgraded

    def abort(self) -> None:
        """Drop the connection at once (no TLS close_notify)."""
        self._fd = -1
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()


def take_over(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Channel:
    """A ``Channel`` in place of the streams' protocol on ``writer``'s transport; what
    ``reader`` buffered or learnt (EOF, an error) carries over. StreamReader has no
    public API for its buffer, hence ``_buffer``; the streams stay referenced by the
    caller (a collected ``StreamWriter`` would close the transport)."""
    channel = Channel()
    transport = writer.transport
    assert isinstance(transport, asyncio.Transport)
    channel.transport = transport
    channel.tls = transport.get_extra_info("sslcontext") is not None
    buffer = getattr(reader, "_buffer", None)
    if isinstance(buffer, bytearray) and buffer:
        channel.inbox = bytes(buffer)
        buffer.clear()
    channel.eof = reader.at_eof()  # the buffer is empty now: whether EOF was fed
    if transport.is_closing():  # lost already, or about to be: the streams saw it
        failure = reader.exception()
        channel.connection_lost(failure if isinstance(failure, Exception) else None)
    transport.set_protocol(channel)
    if not transport.is_closing() and not transport.is_reading():
        transport.resume_reading()  # the StreamReader may have paused it (its limit)
    return channel
