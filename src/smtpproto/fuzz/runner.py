"""Acting a transcript against a live server: blocking sockets, bounded waits, recording.

Theory of operation
-------------------
``Runner.run(events)`` walks client events (``connect``, ``c2s``, ``tls``, ``tcp``) in
order, exactly as ``FUZZ-TRANSCRIPT.md`` says a replayer does, and returns the
``Observation`` (bytes read after each event, how each connection ended) together with the
full ``Transcript`` (client and server bytes) of what happened. Two reading policies:

* **live** (the fuzzer): after a ``c2s`` event with ``expect`` = n, read until n more
  complete replies have arrived (the strict reply parser counts them), the connection
  ends, or ``reply_timeout`` passes; then keep reading for ``grace`` seconds when the
  event asks for it (``extra["grace"]``), to catch replies a correct server never sends.
* **replay** (``smtpproto replay``): read until at least as many bytes as the recorded
  ``s2c`` events that follow hold, the connection ends, or the read timeout (2 s) passes.

Writes in cleartext go out with a non-blocking loop that also reads: a server that
answers "500 line too long" and closes while we are still sending makes the kernel reset
the connection, and a reply read before that reset is not lost.

TLS (RFC 3207) is done without certificate verification; handshake bytes are not
recorded. Implicit TLS (RFC 8314) wraps right after the TCP connect (``implicit_tls``);
the transcript header says so, as the format has no event for it.

Every wait is bounded, every connection is counted (``Target.connections``) and new
connections are paced by ``Target.rate`` (per second).
"""

from __future__ import annotations

import errno
import math
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..adapters.tls import client_ssl_context
from ..wire.errors import RemoteProtocolError
from ..wire.fields import check_flag, check_int, check_seconds
from ..wire.twins import ReplyParser
from .observation import ConnResult, Liveness, Observation, Step, tls_records_length
from .transcript import MAX_SLEEP, Event, Transcript, recv

__all__ = ["REPLAY_READ_TIMEOUT", "Runner", "Target"]

#: The replayer's read timeout of FUZZ-TRANSCRIPT.md.
REPLAY_READ_TIMEOUT = 2.0
_CLOSE_WAIT = 1.0
_CHUNK = 65536


@dataclass
class Target:
    """Where and how to connect, and the budget of connections.

    ``rate`` bounds new connections per second (token bucket of one second's worth).
    """

    host: str
    port: int
    implicit_tls: bool = False
    connect_timeout: float = 5.0
    reply_timeout: float = 5.0
    rate: float = 20.0
    connections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _next_slot: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ValueError(f"host must be a non-empty str, got {self.host!r}")
        check_int("port", self.port, minimum=1, maximum=65535)
        check_flag("implicit_tls", self.implicit_tls)
        check_seconds("connect_timeout", self.connect_timeout)
        check_seconds("reply_timeout", self.reply_timeout)
        _check_rate(self.rate)

    @property
    def address(self) -> str:
        """``HOST:PORT`` as ``smtpproto replay`` reads it back (``[::1]:25`` for IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def pace(self) -> None:
        """Wait for the next connection slot and count the connection."""
        with self._lock:
            now = time.monotonic()
            interval = 1.0 / self.rate if self.rate > 0 else 0.0
            slot = max(now, self._next_slot)
            self._next_slot = slot + interval
            self.connections += 1
        if slot > now:
            time.sleep(slot - now)


def _check_rate(rate: object) -> None:
    """``ValueError`` unless ``rate`` (new connections per second) is a finite number
    of at least 0 (0: unpaced, ``Target.pace``); never a bool or NaN."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < math.inf:
        raise ValueError(
            f"rate must be a finite number of connections per second >= 0 (0: unpaced), "
            f"got {rate!r}"
        )


class _Conn:
    """One TCP (maybe TLS) connection with a receive buffer read under deadlines."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket = sock
        self.tls = False
        self.closed_by_peer = ""  # "eof" / "reset" once the peer ended it
        self.after_notify = False  # a late TLS alert of the server may come in cleartext

    def for_parser(self, data: bytes) -> bytes:
        """``data`` without the server's TLS records that follow our close_notify
        (``observation.reply_bytes`` does the same for the oracles)."""
        if self.after_notify and data:
            data = data[tls_records_length(data) :]
            self.after_notify = not data
        return data

    def _recv_some(self, deadline: float) -> bytes | None:
        """Up to one chunk; ``b""`` on timeout, ``None`` once the peer ended."""
        if self.closed_by_peer:
            return None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return b""
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            remaining = 0
        self.sock.settimeout(max(remaining, 0.0001))
        try:
            data = self.sock.recv(_CHUNK)
        except (TimeoutError, BlockingIOError, ssl.SSLWantReadError):
            return b""
        except ConnectionResetError:
            self.closed_by_peer = "reset"
            return None
        except (ssl.SSLError, OSError) as error:
            self.closed_by_peer = "reset" if _is_reset(error) else "eof"
            return None
        if not data:
            self.closed_by_peer = "eof"
            return None
        return data

    def send(self, data: bytes, deadline: float) -> bytes:
        """Write ``data`` in full (or until the peer ends); return bytes read meanwhile."""
        got = bytearray()
        if self.closed_by_peer:
            return bytes(got)
        if self.tls:
            try:
                self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
                self.sock.sendall(data)
            except TimeoutError:
                return bytes(got)
            except OSError as error:
                self.closed_by_peer = "reset" if _is_reset(error) else "eof"
            return bytes(got)
        view = memoryview(data)
        self.sock.setblocking(False)
        try:
            while view and time.monotonic() < deadline:
                readable, writable, _ = select.select(
                    [self.sock], [self.sock], [], max(deadline - time.monotonic(), 0)
                )
                if readable:
                    try:
                        chunk = self.sock.recv(_CHUNK)
                    except BlockingIOError:
                        chunk = b"-"
                    except OSError as error:
                        self.closed_by_peer = "reset" if _is_reset(error) else "eof"
                        return bytes(got)
                    if not chunk:
                        self.closed_by_peer = "eof"
                        return bytes(got)
                    if chunk != b"-":
                        got += chunk
                if writable:
                    try:
                        sent = self.sock.send(view)
                    except BlockingIOError:
                        continue
                    except OSError as error:
                        self.closed_by_peer = "reset" if _is_reset(error) else "eof"
                        return bytes(got)
                    view = view[sent:]
        finally:
            self.sock.setblocking(True)
        return bytes(got)

    def close(self, *, abortive: bool = False) -> None:
        try:
            if abortive:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
        except OSError:
            return


def _parser() -> ReplyParser:
    return ReplyParser(max_line_length=1 << 20, max_lines=100_000, max_reply_bytes=1 << 24)


def _is_reset(error: BaseException) -> bool:
    return isinstance(error, ConnectionResetError) or getattr(error, "errno", None) in (
        errno.ECONNRESET,
        errno.EPIPE,
    )


def _has_final_220(steps: Sequence[Step]) -> bool:
    """Whether the last step received a complete final ``220`` reply line (the answer to
    STARTTLS that lets the handshake start)."""
    if not steps:
        return False
    lines = steps[-1].received.split(b"\n")[:-1]  # the part after the last LF is partial
    return any(line.rstrip(b"\r")[:4] in (b"220 ", b"220") for line in lines)


class Runner:
    """Acts client events against ``target``; ``replay=True`` reads by recorded byte count."""

    def __init__(self, target: Target, *, replay: bool = False) -> None:
        self.target = target
        self.replay = replay
        #: A campaign's end (``time.monotonic()``): ``run`` starts no event after it,
        #: unless called with ``bounded=False`` (confirming a candidate).
        self.deadline: float | None = None
        self._context = client_ssl_context(verify=False)

    # -- the connection primitives -------------------------------------------------

    def _open(self) -> tuple[_Conn | None, str]:
        self.target.pace()
        try:
            sock = socket.create_connection(
                (self.target.host, self.target.port), self.target.connect_timeout
            )
        except OSError as error:
            return None, f"connect: {error}"
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(sock)
        if self.target.implicit_tls and not self._handshake(conn):
            return None, "implicit TLS handshake failed"
        return conn, ""

    def _handshake(self, conn: _Conn) -> bool:
        try:
            conn.sock.setblocking(True)
            conn.sock.settimeout(self.target.connect_timeout)
            conn.sock = self._context.wrap_socket(conn.sock, server_hostname=None)
        except (OSError, ValueError):
            conn.close()
            return False
        conn.tls = True
        return True

    def _close_notify(self, conn: _Conn) -> None:
        """Send a close_notify and go on in cleartext on the same TCP connection,
        without waiting for the server's alert (FUZZ-TRANSCRIPT.md; RFC 8446 §6.1
        does not make the sender wait). A server that never answers it and reads on
        in cleartext is the downgrade the cleartext-after-close-notify probe is for."""
        sock = conn.sock
        if not isinstance(sock, ssl.SSLSocket):
            return
        conn.tls = False
        deadline = time.monotonic() + self.target.connect_timeout
        sock.setblocking(False)
        while True:
            try:
                conn.sock = sock.unwrap()  # the server's alert was already there
                break
            except ssl.SSLWantReadError:  # ours is out; the server's is not awaited
                conn.sock = socket.socket(sock.family, sock.type, sock.proto, sock.detach())
                break
            except ssl.SSLWantWriteError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    conn.closed_by_peer = conn.closed_by_peer or "eof"
                    return
                select.select([], [sock], [], remaining)
            except (OSError, ValueError) as error:
                conn.closed_by_peer = conn.closed_by_peer or (
                    "reset" if _is_reset(error) else "eof"
                )
                return
        conn.sock.setblocking(True)
        conn.after_notify = True

    # -- reading policies ------------------------------------------------------------

    def _read(
        self,
        conn: _Conn,
        parser: ReplyParser,
        want: int,
        timeout: float,
        *,
        grace: float = 0.0,
        min_bytes: int = 0,
    ) -> tuple[bytes, bool]:
        """Read until ``want`` more replies completed and ``min_bytes`` arrived, the peer
        ended, or ``timeout`` passed (then the flag is true); then ``grace`` seconds more."""
        got = bytearray()
        done = 0
        deadline = time.monotonic() + timeout
        broken = parser.failed
        while (done < want and not broken) or len(got) < min_bytes:
            data = conn._recv_some(deadline)
            if data is None:
                return bytes(got), False
            if not data:
                return bytes(got), True
            got += data
            if not broken:
                try:
                    done += len(parser.feed(conn.for_parser(data)))
                except RemoteProtocolError:
                    broken = True  # garbage: the oracle sees it; count bytes only
        end = time.monotonic() + grace
        while grace > 0:
            data = conn._recv_some(end)
            if not data:
                break
            got += data
            if not broken:
                try:
                    parser.feed(conn.for_parser(data))
                except RemoteProtocolError:
                    broken = True
        return bytes(got), False

    # -- the walk --------------------------------------------------------------------

    def run(
        self,
        events: Sequence[Event],
        *,
        check_liveness: bool = False,
        read_timeout: float | None = None,
        max_seconds: float | None = None,
        bounded: bool = True,
    ) -> tuple[Observation, Transcript]:
        """Act ``events``: ``s2c`` events only say, when replaying, how much to read.
        With ``max_seconds``, or past ``self.deadline`` when ``bounded``, no event starts
        (the rest is left out, ``Observation.stopped`` says so): one event waits at most
        its own bound."""
        started = time.monotonic()
        stop_at = started + max_seconds if max_seconds is not None else math.inf
        if bounded and self.deadline is not None:
            stop_at = min(stop_at, self.deadline)
        obs = Observation()
        out = Transcript()
        default = REPLAY_READ_TIMEOUT if self.replay else self.target.reply_timeout
        timeout = read_timeout or default
        conn: _Conn | None = None
        result = ConnResult()
        parser = _parser()
        skipping = False
        client = [(i, e) for i, e in enumerate(events) if e.dir != "s2c"]
        for position, (index, event) in enumerate(client):
            if time.monotonic() > stop_at:
                left = len(client) - position
                if max_seconds is not None and started + max_seconds <= stop_at:
                    obs.stopped = f"stopped after {max_seconds:g} s, {left} events left"
                else:
                    obs.stopped = f"stopped at the campaign's deadline, {left} events left"
                break
            following = client[position + 1][0] if position + 1 < len(client) else len(events)
            recorded = sum(len(e.data) for e in events[index + 1 : following] if e.dir == "s2c")
            if not self.replay:
                recorded = 0
            if event.dir == "tcp" and event.note == "connect":
                if conn is not None:
                    # "Any connection still open is closed first, as for close": the
                    # replayer drains it for up to 1 s, so unread bytes make no RST.
                    wait = _CLOSE_WAIT if self.replay else 0.0
                    self._finish(conn, result, out, abortive=False, wait=wait)
                    conn = None
                out.events.append(event)
                parser = _parser()
                result = ConnResult()
                obs.conns.append(result)
                conn, why = self._open()
                skipping = conn is None
                if conn is None:
                    result.end = "tls-failed" if "TLS" in why else "refused"
                    result.detail = why
                    continue
                t0 = time.monotonic()
                data, late = self._read(conn, parser, 1, timeout, min_bytes=recorded)
                self._record(result, out, Step(None, data, time.monotonic() - t0, late), conn)
                skipping = bool(conn.closed_by_peer)
                continue
            out.events.append(event)
            if skipping or conn is None:
                continue
            if event.dir == "tcp" and event.note == "sleep":
                time.sleep(min(event.seconds, MAX_SLEEP))
                if recorded:  # s2c events after the pause are read, as after any event
                    t0 = time.monotonic()
                    data, late = self._read(conn, parser, 0, timeout, min_bytes=recorded)
                    self._record(result, out, Step(event, data, time.monotonic() - t0, late), conn)
                    skipping = bool(conn.closed_by_peer)
                continue
            if event.dir == "tcp":
                out.events.pop()  # recorded after the bytes drained before the close
                self._finish(conn, result, out, abortive=event.note == "reset", wait=_CLOSE_WAIT)
                out.events.append(event)
                conn = None
                continue
            t0 = time.monotonic()
            early = b""
            if event.dir == "c2s":
                early = conn.send(event.data, t0 + max(timeout, 10.0))
            elif event.note == "starttls":
                if not self.replay and not _has_final_220(result.steps):
                    # RFC 3207 §4: the handshake starts only after a 220. A ClientHello
                    # sent to a server that refused STARTTLS is read as a command line
                    # and would blame the next oracle's state on binary garbage.
                    out.events.pop()
                    self._finish(conn, result, out, abortive=False, wait=0.0)
                    conn, skipping = None, True
                    continue
                if not self._handshake(conn):
                    result.steps.append(Step(event))
                    result.end, result.detail = "tls-failed", "TLS handshake failed"
                    result.ended_after = len(result.steps) - 1
                    conn, skipping = None, True
                    continue
            else:
                self._close_notify(conn)
            early_replies = 0
            if early and not parser.failed:
                try:
                    early_replies = len(parser.feed(conn.for_parser(early)))
                except RemoteProtocolError:
                    early_replies = 0
            want = max((event.expect or 0) - early_replies, 0)
            grace = 0.0 if self.replay else float(event.extra.get("grace", 0.0))
            data, late = self._read(
                conn,
                parser,
                want,
                timeout,
                grace=grace,
                min_bytes=max(recorded - len(early), 0),
            )
            step = Step(event, early + data, time.monotonic() - t0, late)
            self._record(result, out, step, conn)
            skipping = bool(conn.closed_by_peer)
        if conn is not None:
            wait = _CLOSE_WAIT if self.replay else 0.2
            self._finish(conn, result, out, abortive=False, wait=wait)
        if check_liveness:
            obs.liveness = self.liveness()
        obs.seconds = time.monotonic() - started
        return obs, out

    def _record(self, result: ConnResult, out: Transcript, step: Step, conn: _Conn) -> None:
        result.steps.append(step)
        if step.received:
            out.events.append(recv(step.received))
        if conn.closed_by_peer and result.end == "closed":
            result.end = conn.closed_by_peer
            result.ended_after = len(result.steps) - 1

    def _finish(
        self, conn: _Conn, result: ConnResult, out: Transcript, *, abortive: bool, wait: float
    ) -> None:
        """Wait up to ``wait`` seconds for more data (kept in the last step), then close."""
        if wait > 0 and not conn.closed_by_peer:
            deadline = time.monotonic() + wait
            extra = bytearray()
            while True:
                data = conn._recv_some(deadline)
                if not data:
                    break
                extra += data
            if extra and result.steps:
                result.steps[-1].received += bytes(extra)
                out.events.append(recv(bytes(extra)))
            if conn.closed_by_peer and result.end == "closed":
                result.end = conn.closed_by_peer
                result.ended_after = len(result.steps) - 1
        conn.close(abortive=abortive)

    def liveness(self) -> Liveness:
        """Open a fresh connection and read the banner (the crash oracle's second half)."""
        conn, why = self._open()
        if conn is None:
            return Liveness(False, detail=why)
        parser = _parser()
        data, late = self._read(conn, parser, 1, self.target.reply_timeout)
        conn.send(b"QUIT\r\n", time.monotonic() + 1.0)
        conn.close()
        if not data:
            return Liveness(False, detail="no banner" if late else "closed without banner")
        return Liveness(True, banner=data)
