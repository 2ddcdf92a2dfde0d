"""A blocking SMTP/LMTP client: the session drivers (``drivers``) over a socket.

Theory of operation
-------------------
This adapter knows nothing about SMTP. The operations and the loop that runs a
``Session`` driver are ``SyncClientBase``'s (``sync_base``, generated from the async
clients' ``async_base`` by ``scripts/unasync.py``); this module supplies the transport
primitives over a socket: ``Write`` (send all bytes), ``Read`` (receive some bytes),
``UpgradeTLS`` (wrap the socket and handshake; the base records ``tls_info`` and the
channel binding). Timeouts (``TimeoutError``) and transport errors (``OSError``) are
thrown back into the driver, which maps them to ``SMTPTimeoutError``,
``SMTPDeliveryStatusUnknown`` and so on; TLS errors are mapped here (``SMTPTLSError``),
since only this layer knows ssl.

The socket is non-blocking and every wait goes through one ``select.poll`` object,
registered once per socket (again after the TLS wrap), so a write that would block
also watches for readable data and buffers it (up to ``MAX_READAHEAD`` octets): a
server answering a long pipelined group early never deadlocks us (RFC 2920 §3.2). The
next ``Read`` returns the buffered bytes at once. A ``Read`` tries ``recv`` first: on
loopback a pipelined group's replies are usually in by then. Once a ``recv`` found
nothing (the server runs on another CPU, so every reply wait sleeps), the next
``_WAIT_FIRST`` reads of a plain socket wait first (poll, then ``recv``): a system call
and a ``BlockingIOError`` per message saved, the deadline the same (bench/README.md,
"the socket path on loopback"). A poll object, not ``selectors``:
a wait is one call into C, about half what ``selectors``' key bookkeeping costs, and
under load most reads of a pipelined batch wait. Where ``select.poll`` does not
exist (Windows), ``_SelectPoll`` offers the same three methods over ``select.select``.

After any exception that leaves the session unusable (everything except a refused
command on a healthy session), and after a driver that ends the session on purpose
(``sendmail(stop_after="data")``), the socket is closed; the client is never reused.

Right after a TLS handshake the base records ``tls_info`` (version, cipher,
certificate): transport facts the engine never sees. Deadlines are absolute on
``time.monotonic`` (``ClientCore``).
"""

from __future__ import annotations

import contextlib
import math
import select
import socket  # noqa: TID251  (adapter layer: I/O allowed)
import ssl
import threading
import time  # noqa: TID251  (adapter layer: I/O allowed)
from collections.abc import Callable
from typing import Any

from ..client_engine.config import ClientConfig, Timeouts, TLSPolicy
from ..client_engine.proxy import ProxyHeader
from ..drivers.session import MAX_READAHEAD, Driver, Request, Write
from .common import (
    RECV_SIZE,
    Step,
    TLSName,
    require_one_target,
    tls_failure,
)
from .pool_support import RateLimit
from .sync_base import SyncClientBase, one_call_send, send_in_one_call
from .sync_pool import SyncPoolBase
from .tls import SSLConnection, TLSInfo

__all__ = ["RateLimit", "SMTPClient", "SMTPPool", "TLSInfo", "send"]

_READ = select.POLLIN
_WRITE = select.POLLOUT
#: What a poll reports besides the events asked for (error, hang-up, closed): the
#: next ``recv``/``send`` raises or sees EOF, so it counts as both ready.
_NOT_READ = ~_READ
_NOT_WRITE = ~_WRITE
#: The longest single wait, in milliseconds; a later deadline takes several.
_MAX_WAIT_MS = 86_400_000
#: Reads that wait before they ``recv`` after a ``recv`` found nothing (``_read``); the
#: next one tries ``recv`` first again, so a server whose replies are in by then (one
#: sharing this CPU) costs no poll per read.
_WAIT_FIRST = 8


class _SelectPoll:
    """``select.poll``'s ``register``/``modify``/``poll`` for one socket over
    ``select.select``, for platforms without ``poll()`` (Windows)."""

    def __init__(self) -> None:
        self._fd = -1
        self._mask = 0

    def register(self, fd: int, mask: int) -> None:
        self._fd, self._mask = fd, mask

    modify = register

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        reads = [self._fd] if self._mask & _READ else []
        writes = [self._fd] if self._mask & _WRITE else []
        seconds = None if timeout is None else timeout / 1000
        readable, writable, failed = select.select(reads, writes, [self._fd], seconds)
        events = (_READ if readable else 0) | (_WRITE if writable else 0)
        events |= select.POLLERR if failed else 0
        return [(self._fd, events)] if events else []


_new_poll: Any = getattr(select, "poll", _SelectPoll)


class SMTPClient(SyncClientBase):
    """A blocking SMTP client; use it as a context manager::

        with SMTPClient("mail.example.org", 587) as client:
            client.login("user", "password")
            client.send_message(message)

    ``tls``: ``"none"``, ``"opportunistic"`` (STARTTLS when offered), ``"required"`` or
    ``"implicit"``; by default implicit on port 465, required on 587, opportunistic
    otherwise. ``ssl_context`` defaults to ``client_ssl_context()`` (certificate and
    host-name verification on, SNI). ``server_hostname`` is the name verified
    (default: ``host``). ``timeout`` overrides the RFC 5321 §4.5.3.2 timeouts (a number
    for all, or ``Timeouts``); ``message_timeout`` bounds each ``sendmail`` /
    ``send_message`` as a whole. Connect with ``host``/``port`` (IPv4 or IPv6, optional
    ``source_address``), a ``unix_socket`` path, or ``sock``, an already-connected
    socket (proxies, socket pairs). ``config`` passes further ``ClientConfig`` options.
    ``proxy_header`` (a ``ProxyHeader``) is written first on the connection, before
    implicit TLS and the greeting, for servers behind an HAProxy PROXY-protocol proxy
    (docs/proxy-protocol.md).
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
        unix_socket: str | None = None,
        lmtp: bool = False,
        allow_cleartext_auth: bool = False,
        config: ClientConfig | None = None,
        proxy_header: ProxyHeader | None = None,
    ) -> None:
        require_one_target(host=host, sock=sock, unix_socket=unix_socket)
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
        self._sock: socket.socket | None = sock
        self._poll: Any = None  # select.poll() (or _SelectPoll) while connected
        self._events = 0
        self._fd = -1
        self._rbuf = bytearray()
        self._eof = False
        #: Reads left that poll before ``recv`` (``_WAIT_FIRST``); never on TLS, whose
        #: object may hold decrypted bytes the descriptor no longer shows.
        self._wait_first = 0
        self._plain = False

    # -- connection ---------------------------------------------------------------------

    def _open(self) -> str | None:
        timeout = self._config.timeouts.greeting
        if timeout is not None:  # settimeout() overflows past ~292 years: a day is as long
            timeout = min(timeout, _MAX_WAIT_MS / 1000)
        try:
            if self._sock is None and self._unix_socket is not None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.settimeout(timeout)
                self._sock.connect(self._unix_socket)
            elif self._sock is None:
                assert self.host is not None
                self._sock = socket.create_connection(
                    (self.host, self.port), timeout, source_address=self._source_address
                )
        except OSError as error:
            self._close()
            raise self._connect_error(error) from error
        sock = self._sock
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            local: str | None = sock.getsockname()[0]
        else:
            local = None
        sock.setblocking(False)
        self._plain = not isinstance(sock, ssl.SSLSocket)
        self._poll = _new_poll()
        self._fd = sock.fileno()
        self._poll.register(self._fd, _READ)
        self._events = _READ
        return local

    def close(self) -> None:
        """Close the socket without QUIT; the client cannot be used again."""
        if self._session is not None:
            self._session.mark_broken()
        self._close()

    def _close(self) -> None:
        self._poll = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- I/O ----------------------------------------------------------------------------

    _clock = staticmethod(time.monotonic)

    def _transport_error(self, exc: BaseException) -> BaseException | None:
        if isinstance(exc, ssl.SSLError):
            return tls_failure(exc)
        return exc if isinstance(exc, OSError) else None  # TimeoutError is an OSError

    def _wait(self, events: int, deadline: float) -> int:
        """Block until the socket is ready for ``events``; ``TimeoutError`` at the
        deadline (``math.inf``: none). Returns the ready events (an error or hang-up
        counts as both; only the events asked for are reported, as ``selectors`` does)."""
        poll = self._poll
        assert poll is not None and self._sock is not None
        if events != self._events:
            poll.modify(self._fd, events)
            self._events = events
        while True:
            if deadline == math.inf:
                ready = poll.poll()
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("timed out")
                # Whole milliseconds, rounded up (never a busy loop of zero-length
                # waits), at most a day per wait: poll() takes a C int of milliseconds
                # and a longer timeout (user-given) must not overflow it.
                ready = poll.poll(min(math.ceil(remaining * 1000), _MAX_WAIT_MS))
            if ready:
                event: int = ready[0][1]
                both = (_WRITE if event & _NOT_READ else 0) | (_READ if event & _NOT_WRITE else 0)
                return both & events

    def _send(self, request: Write, driver: Driver[Any], step: Step) -> Request | None:
        sock = self._sock
        assert sock is not None
        data = request.data
        if not data:
            return None
        try:  # the common case: the kernel takes all of it at once
            sent = sock.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        if sent == len(data):
            return None
        view = memoryview(data)[sent:]
        deadline: float | None = None
        while view:
            try:
                sent = sock.send(view)
            except (BlockingIOError, ssl.SSLWantWriteError):
                want = _WRITE
            except ssl.SSLWantReadError:
                want = _READ
            else:
                view = view[sent:]
                continue
            if deadline is None:
                deadline = self._deadline_for(request.timeout)
            # RFC 2920 §3.2: keep reading while the server cannot take more.
            if not self._eof and len(self._rbuf) < MAX_READAHEAD:
                want |= _READ
            if self._wait(want, deadline) & _READ:
                self._read_ahead()
        return None

    def _read_ahead(self) -> None:
        assert self._sock is not None
        try:
            data = self._sock.recv(RECV_SIZE)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        if data:
            self._rbuf += data
        else:
            self._eof = True

    def _read(self, timeout: float | None) -> bytes:
        if self._rbuf:
            data = bytes(self._rbuf)
            self._rbuf.clear()
            return data
        if self._eof:
            return b""
        sock = self._sock
        assert sock is not None
        # Receive before waiting: a pipelined group's replies are often there already
        # (a loopback server answers during our send; TLS may hold decrypted bytes),
        # which saves a poll. When a recv found nothing, the next ``_WAIT_FIRST``
        # reads of a plain socket wait first instead (the module docstring).
        deadline: float | None = None
        want = 0
        if self._wait_first:
            self._wait_first -= 1
            want = _READ
        while True:
            if want:
                if deadline is None:
                    deadline = self._read_deadline(timeout)
                self._wait(want, deadline)
            try:
                return sock.recv(RECV_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError):
                want = _READ
            except ssl.SSLWantWriteError:
                want = _WRITE
            if self._plain:
                self._wait_first = _WAIT_FIRST

    def _handshake(self, server_hostname: str | None, timeout: float | None) -> SSLConnection:
        context = self._tls_context(server_hostname)
        sock = self._sock
        poll = self._poll
        assert sock is not None and poll is not None
        tls = context.wrap_socket(
            sock, server_hostname=server_hostname, do_handshake_on_connect=False
        )
        self._sock = tls
        self._plain = False
        self._wait_first = 0
        self._fd = tls.fileno()
        poll.register(self._fd, _READ)  # the same descriptor in practice: re-registered
        self._events = _READ
        deadline = self._deadline_for(timeout)
        while True:
            try:
                tls.do_handshake()
                return tls
            except ssl.SSLWantReadError:
                self._wait(_READ, deadline)
            except ssl.SSLWantWriteError:
                self._wait(_WRITE, deadline)


#: The one-call send: connect, log in when ``username`` is given, send, QUIT
#: (``sync_base.send_in_one_call``, which documents the parameters).
send = one_call_send(send_in_one_call, SMTPClient)


class SMTPPool(SyncPoolBase):
    """A pool of ``SMTPClient`` connections shared by threads; it never sends a message
    twice (docs/pool.md)::

        with SMTPPool("mail.example.org", 587, username="u", password="p") as pool:
            pool.send_message(message)  # from any number of threads

    Options: ``max_connections``, ``max_per_destination``, ``max_messages`` and
    ``max_age`` per connection, ``idle_check`` (``"noop"``, ``"rset"`` or None) after
    ``check_idle_after`` idle seconds, ``rate_limit=RateLimit(messages, per)``; the
    rest go to ``SMTPClient``. See ``sync_pool.SyncPoolBase``.
    """

    _client_class = SMTPClient

    def _new_condition(self) -> threading.Condition:
        return threading.Condition()

    def _new_lock(self) -> threading.Lock:
        return threading.Lock()

    def _clock(self) -> float:
        return time.monotonic()

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def _together(self, count: int, work: Callable[[], None]) -> None:
        """``work`` in this thread and in ``count - 1`` others; a ``KeyboardInterrupt``
        here returns at once (the others stop taking messages and end on their own).
        What ``work`` raises in another thread (an interrupt from the caller's code it
        ran) the batch kept (``PoolBatch.abandon``) and ``send_many`` raises here: that
        thread ends without reporting it again."""
        threads = [
            threading.Thread(target=_quietly, args=(work,), daemon=True) for _ in range(count - 1)
        ]
        for thread in threads:
            thread.start()
        work()
        for thread in threads:
            thread.join()


def _quietly(work: Callable[[], None]) -> None:
    """``work`` in a thread of a batch (``SMTPPool._together``), what it raises dropped:
    the batch kept it, and the caller's thread raises it."""
    with contextlib.suppress(BaseException):
        work()
