"""``smtpproto serve --workers N``: the built-in server in N processes on one port.

CLI adapter layer. One asyncio process uses one core; this runs N worker processes,
each a whole ``SMTPServer``, and hands them the connections in turn. ``--workers 0``
starts one per core.

Why not ``SO_REUSEPORT`` (each worker listening on the port, the kernel choosing): the
kernel picks a worker by a hash of the connection's addresses, so a few long sessions
are spread by luck (4 sessions over 2 workers: all on one worker one time in 8, 3 to 1
half the time) and a multi-core run measured little better than one process. Round
robin gives every worker its share of the connections, however few.

Theory of operation. The parent (the process the user started) never serves:

1. it listens on the address itself (``--port 0``: one port for everyone) and makes
   the temporary STARTTLS certificate once, so every worker presents the same one and
   the parent alone removes it;
2. with SIGINT, SIGTERM, SIGHUP and SIGCHLD blocked (taken synchronously by
   ``sigtimedwait``, so no handler races the shutdown), it forks the workers, each with
   one end of a ``socketpair``; each unblocks them, starts its server without a socket
   of its own (``SMTPServer.start(listen=False)``) and writes one octet on a pipe when
   it is ready;
3. when every worker is ready, it prints the usual banner (``listening on HOST:PORT``
   first) and starts a thread that accepts connections and passes each one
   (``SCM_RIGHTS``: the file descriptor itself) to a worker, which serves it as its own
   (``SMTPServer.adopt``): the workers in turn, but only one that answered the offer of
   a connection, so that none waits in the queue of a stuck worker (``_Dispatcher``);
   a worker that is gone is skipped;
4. then it waits for a signal. SIGINT, SIGTERM or SIGHUP: it stops accepting, sends
   SIGTERM to every worker (each closes its sessions as ``serve`` does), waits
   ``STOP_TIMEOUT`` seconds, kills what is left, reaps every worker, removes the
   certificate and exits 0. A worker that exits on its own (a crash, a kill) is
   reported on stderr and stops the others too; the exit code is then the worker's, else
   ``INTERNAL``.

A worker also stops when its parent is gone (its end of the socketpair reads end of
file; the parent's pid is checked every second too), so even a parent killed with
SIGKILL leaves no worker behind. Workers print their transcript lines with a ``wN``
prefix; each stores messages itself (maildir names carry the worker's pid; an mbox gets
one ``O_APPEND`` write per message).

Scaling beyond one machine is the deployment's job, not this package's: run one such
server per machine behind your own load balancer.
"""

from __future__ import annotations

import argparse
import asyncio  # noqa: TID251 -- CLI adapter layer: the built-in server runs on asyncio
import collections
import contextlib
import dataclasses
import os
import select
import signal
import socket  # noqa: TID251 -- CLI adapter layer: the shared port
import sys
import tempfile
import threading
import time  # noqa: TID251 -- CLI adapter layer: bounded waits
from collections.abc import Callable
from pathlib import Path

from ..builtin_server.certificates import make_certificate
from ..builtin_server.server import SMTPServer
from ..wire.text import escape_text
from .common import CLIError, ExitCode

__all__ = ["STOP_TIMEOUT", "run_workers", "worker_count"]

#: Seconds the workers get to stop after SIGTERM before they are killed.
STOP_TIMEOUT = 10.0
#: Seconds the workers get to listen after they were started.
START_TIMEOUT = 60.0
#: Seconds between a worker's checks that its parent is still there.
_PARENT_CHECK = 1.0
#: Connections the kernel queues before the parent accepts them (asyncio's default).
_BACKLOG = 100
#: Seconds the accepting thread waits at most before it checks whether to stop.
_ACCEPT_POLL = 0.25
#: Seconds a worker may take to answer an offer before the connection is offered to
#: the next worker as well (``_Dispatcher``).
_OFFER_TIMEOUT = 1.0
#: What stops the workers (as ``serve`` stops: Ctrl-C, ``kill``, the terminal closing).
_STOP = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_SIGNALS = {*_STOP, signal.SIGCHLD}

#: Makes one worker's server, not started: ``(port, certfile, keyfile, transcript
#: prefix)``.
MakeServer = Callable[[int, "str | None", "str | None", str], SMTPServer]
#: Prints the banner: ``(port, certificate path, what made it)``.
Banner = Callable[[int, "str | None", "str | None"], None]


def worker_count(text: str) -> int:
    """``--workers``: a number of processes, ``0`` for one per core."""
    try:
        count = int(text)
    except ValueError:
        count = -1
    if not 0 <= count <= 1024:
        raise argparse.ArgumentTypeError(f"not a number of workers from 0 to 1024: {text!r}")
    return count or os.cpu_count() or 1


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket the parent accepts on (as asyncio binds: ``SO_REUSEADDR``):
    the first address ``host`` resolves to (a name with an IPv4 and an IPv6 address
    gets one of them; give an address to choose)."""
    if not hasattr(os, "fork") or not hasattr(socket, "send_fds"):
        raise CLIError("--workers needs fork and descriptor passing (POSIX)", ExitCode.USAGE)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        listener = socket.socket(family, kind, proto)
    except OSError as error:
        raise _cannot_listen(host, port, error) from None
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(_BACKLOG)
    except OSError as error:
        listener.close()
        raise _cannot_listen(host, port, error) from None
    listener.setblocking(False)  # the dispatcher accepts only what ``select`` saw
    return listener


def _cannot_listen(host: str, port: int, error: OSError) -> CLIError:
    reason = escape_text(error.strerror or str(error))
    return CLIError(f"cannot listen on {escape_text(host)}:{port}: {reason}", ExitCode.CONNECT)


def run_workers(
    args: argparse.Namespace,
    count: int,
    make_server: MakeServer,
    banner: Banner,
) -> int:
    """Serve with ``count`` worker processes until SIGINT, SIGTERM or SIGHUP; the exit
    code."""
    listener = _listen(args.host, args.port)
    port = listener.getsockname()[1]
    certdir: tempfile.TemporaryDirectory[str] | None = None
    cert, key, tool = args.cert, args.key, None if args.cert is None else "given"
    try:
        if cert is None and not args.no_starttls:
            certdir = tempfile.TemporaryDirectory(prefix="smtpproto-server-")
            try:
                made = make_certificate(Path(certdir.name), "localhost")
            except OSError as error:
                print(
                    f"smtpproto server: STARTTLS not offered: {escape_text(str(error))}",
                    file=sys.stderr,
                )
                args.no_starttls = True
            else:
                cert, key, tool = str(made.cert), str(made.key), made.tool
        return _supervise(
            count,
            listener,
            lambda number: make_server(port, cert, key, f"w{number}"),
            lambda: banner(port, cert, tool),
        )
    finally:
        listener.close()
        if certdir is not None:
            certdir.cleanup()


def _supervise(
    count: int,
    listener: socket.socket,
    make: Callable[[int], SMTPServer],
    banner: Callable[[], None],
) -> int:
    """Fork the workers, wait until they are ready, print the banner, hand out the
    connections, then wait for a signal or a worker's exit; stop them all in every
    case."""
    workers: dict[int, int] = {}  # pid -> worker number
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(count)]
    channels = [ours for ours, _ in pairs]  # the parent's ends, by worker number - 1
    ready_read, ready_write = os.pipe()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    dispatcher: _Dispatcher | None = None
    code: int = ExitCode.INTERNAL
    try:
        parent = os.getpid()
        for number in range(1, count + 1):
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the worker: never returns
                channel = pairs[number - 1][1]
                os.close(ready_read)
                listener.close()
                for ours, theirs in pairs:
                    ours.close()
                    if theirs is not channel:
                        theirs.close()
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
                _exit(_run_worker(make(number), ready_write, parent, channel))
            workers[pid] = number
        for _, theirs in pairs:
            theirs.close()
        os.close(ready_write)
        ready_write = -1
        failed = _wait_until_listening(workers, ready_read, count)
        if failed is not None:
            return failed
        banner()
        print(f"workers: {count} (pids {', '.join(map(str, sorted(workers)))})", flush=True)
        dispatcher = _Dispatcher(listener, channels)  # a thread: after the last fork
        code = _wait_for_the_end(workers)
        return code
    finally:
        if dispatcher is not None:
            dispatcher.stop()
        _stop(workers)
        for channel in channels:
            channel.close()
        os.close(ready_read)
        if ready_write >= 0:
            os.close(ready_write)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@dataclasses.dataclass
class _Offer:
    """A connection offered to a worker that has not answered yet: when, and which
    (``None`` once it went back to the waiting ones, the offer gone stale)."""

    made: float
    connection: socket.socket | None


class _Dispatcher:
    """A thread that accepts the connections and hands each to a worker, in turn, and
    only to a worker that has just shown it is taking connections, so that none waits
    in the queue of a worker that stopped reading (stopped, or busy for long).

    The hand-over, on each worker's channel (``SOCK_SEQPACKET``): the parent *offers*
    the next waiting connection to the next worker in turn (``O``), the worker's loop
    answers *take* (``T``) when it runs, and only then does the parent pass that
    connection (``C`` with the descriptor, ``SCM_RIGHTS``). The turn waits for a
    worker's answer before it passes on, so a few sessions are spread evenly whoever
    answers first (unlike ``SO_REUSEPORT``'s hash), but only for ``_OFFER_TIMEOUT``:
    then the connection goes back to the waiting ones, and the turn passes over that
    worker until it answers (a late take gets nothing). A stuck worker thus delays one
    connection by ``_OFFER_TIMEOUT`` and holds none; a worker that is gone is dropped,
    its connection offered to the next. At most ``_BACKLOG`` accepted connections
    wait here; beyond that the kernel's listen queue holds them. Signals stay blocked
    in this thread (the mask is inherited)."""

    def __init__(self, listener: socket.socket, channels: list[socket.socket]) -> None:
        self._listener = listener
        self._channels = channels
        for channel in channels:
            channel.setblocking(False)
        #: Accepted connections not offered yet (or given back), oldest first.
        self._waiting: collections.deque[socket.socket] = collections.deque()
        #: The open offer of each worker (by index).
        self._offers: dict[int, _Offer] = {}
        self._live = set(range(len(channels)))
        self._turn = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="serve-dispatch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopping.is_set() and self._live:
                readable = [self._channels[index] for index in self._live]
                if len(self._waiting) < _BACKLOG:
                    readable.append(self._listener)
                ready, _, _ = select.select(readable, [], [], _ACCEPT_POLL)
                for channel in ready:
                    if channel is self._listener:
                        self._accept()
                    else:
                        self._answered(self._channels.index(channel))
                self._offer()
        finally:  # never handed over: the clients see the close
            for offer in self._offers.values():
                if offer.connection is not None:
                    offer.connection.close()
            while self._waiting:
                self._waiting.popleft().close()

    def _accept(self) -> None:
        """Accept what the kernel has queued, up to ``_BACKLOG`` waiting here."""
        while len(self._waiting) < _BACKLOG:
            try:
                connection, _ = self._listener.accept()
            except BlockingIOError:  # none left (or the client took it back)
                return
            except OSError:  # the listener is unusable: nothing more to hand out
                self._stopping.set()
                return
            self._waiting.append(connection)

    def _answered(self, index: int) -> None:
        """Worker ``index`` wrote on its channel: a take, or end of file (gone)."""
        channel = self._channels[index]
        try:
            message = channel.recv(16)
        except BlockingIOError:
            return
        except OSError:
            message = b""
        if not message:
            self._gone(index)
            return
        offer = self._offers.pop(index, None)
        if message != b"T" or offer is None or offer.connection is None:
            return  # a late take: its connection went to another worker
        try:
            socket.send_fds(channel, [b"C"], [offer.connection.fileno()])
        except OSError:  # gone meanwhile: the connection goes to another worker
            self._waiting.appendleft(offer.connection)
            self._gone(index)
            return
        offer.connection.close()  # the worker has its own descriptor now

    def _gone(self, index: int) -> None:
        self._live.discard(index)
        offer = self._offers.pop(index, None)
        if offer is not None and offer.connection is not None:
            self._waiting.appendleft(offer.connection)

    def _offer(self) -> None:
        """Take back the connections of offers older than ``_OFFER_TIMEOUT``, then
        offer the waiting ones to the workers in turn, the turn waiting at a worker
        whose offer is still fresh."""
        now = time.monotonic()
        for stale in self._offers.values():
            if stale.connection is not None and now - stale.made >= _OFFER_TIMEOUT:
                self._waiting.appendleft(stale.connection)
                stale.connection = None
        count = len(self._channels)
        passed = 0  # workers passed over since the last offer
        while self._waiting and passed < count:
            index = self._turn
            offer = self._offers.get(index)
            if offer is not None and offer.connection is not None:
                return  # its turn still: wait for its answer
            self._turn = (index + 1) % count
            passed += 1
            if index not in self._live or offer is not None:
                continue  # gone, or its stale offer not answered yet
            try:
                self._channels[index].send(b"O")
            except BlockingIOError:  # its queue is full: it is not reading
                continue
            except OSError:
                self._gone(index)
                continue
            self._offers[index] = _Offer(now, self._waiting.popleft())
            passed = 0

    def stop(self) -> None:
        """Stop accepting (within ``_ACCEPT_POLL``); connections not handed over yet
        are closed, those still in the kernel's queue are left to the listener's
        close."""
        self._stopping.set()
        self._thread.join(_ACCEPT_POLL + 1.0)


def _exit(code: int) -> None:
    """Leave a forked worker at once: no ``atexit`` (the parent's certificate), no
    ``finally`` of the parent's frames."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _run_worker(server: SMTPServer, ready: int, parent: int, channel: socket.socket) -> int:
    """A worker's whole life: serve what the parent hands over until SIGINT, SIGTERM or
    the parent is gone."""
    try:
        asyncio.run(_serve(server, ready, parent, channel))
    except CLIError as error:
        print(f"smtpproto serve: {error}", file=sys.stderr)
        return int(error.code)
    except BaseException as error:  # a bug: say so, the parent stops the others
        print(f"smtpproto serve: worker failed: {error!r}", file=sys.stderr)
        return ExitCode.INTERNAL
    return ExitCode.OK


async def _serve(server: SMTPServer, ready: int, parent: int, channel: socket.socket) -> None:
    try:
        await server.start(listen=False)
    except OSError as error:
        await server.close()
        raise _cannot_listen(server.host, server.port, error) from None
    try:
        os.write(ready, b"R")
        os.close(ready)
        await _until_stopped(parent, server, channel)
    finally:
        await server.close()


async def _until_stopped(parent: int, server: SMTPServer, channel: socket.socket) -> None:
    """Serve each connection the parent passes on ``channel`` until SIGINT, SIGTERM,
    SIGHUP or the parent's exit (``channel`` at end of file, or another parent pid)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in _STOP:
        loop.add_signal_handler(signum, stop.set)
    adopting: set[asyncio.Task[None]] = set()

    def adopted(task: asyncio.Task[None]) -> None:
        adopting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            print(f"smtpproto serve: a connection was lost: {task.exception()!r}", file=sys.stderr)

    def receive() -> None:
        """The parent's offers (answered: take) and connections (served), until end
        of file (the parent is gone). Answering from the loop is what shows the
        parent that this worker is taking connections (``_Dispatcher``)."""
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(channel, 1, 1)
            except BlockingIOError:
                return
            except OSError:
                message, fds = b"", []
            if not message and not fds:  # end of file: the parent is gone
                loop.remove_reader(channel.fileno())
                stop.set()
                return
            if message == b"O":
                with contextlib.suppress(OSError):  # the parent is gone: end of file next
                    channel.send(b"T")
            for fd in fds:
                task = loop.create_task(server.adopt(socket.socket(fileno=fd)))
                adopting.add(task)
                task.add_done_callback(adopted)

    def check_parent() -> None:
        if os.getppid() != parent:
            stop.set()
        else:
            loop.call_later(_PARENT_CHECK, check_parent)

    channel.setblocking(False)
    loop.add_reader(channel.fileno(), receive)
    loop.call_later(_PARENT_CHECK, check_parent)
    try:
        await stop.wait()
    finally:
        loop.remove_reader(channel.fileno())
        for task in adopting:
            task.cancel()


def _wait_until_listening(workers: dict[int, int], ready: int, count: int) -> int | None:
    """None once ``count`` workers said they listen; else the exit code to return."""
    deadline = time.monotonic() + START_TIMEOUT
    listening = 0
    while listening < count:
        exited = _reap(workers, report=True)
        if exited is not None:
            return exited
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            print("smtpproto serve: the workers did not start in time", file=sys.stderr)
            return ExitCode.INTERNAL
        readable, _, _ = select.select([ready], [], [], min(remaining, 0.1))
        if readable:
            listening += len(os.read(ready, count))
    return None


def _wait_for_the_end(workers: dict[int, int]) -> int:
    """Wait for SIGINT/SIGTERM/SIGHUP (exit 0) or a worker's own exit (its code)."""
    while True:
        info = signal.sigtimedwait(_SIGNALS, 1.0)
        if info is not None and info.si_signo != signal.SIGCHLD:
            name = signal.Signals(info.si_signo).name
            print(f"stopping {len(workers)} workers ({name})", file=sys.stderr, flush=True)
            return ExitCode.OK
        exited = _reap(workers, report=True)
        if exited is not None:
            return exited


def _reap(workers: dict[int, int], *, report: bool = False) -> int | None:
    """Collect the workers that exited; the exit code to end with if one did (said on
    stderr when ``report``: a worker that exits on its own)."""
    code = None
    while workers:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            break
        number = workers.pop(pid, None)
        if number is None:
            continue
        exit_code = os.waitstatus_to_exitcode(status)
        if report:
            print(f"smtpproto serve: worker {number} exited ({exit_code})", file=sys.stderr)
        code = exit_code if exit_code > 0 else ExitCode.INTERNAL
    return code


def _stop(workers: dict[int, int]) -> None:
    """SIGTERM every worker, wait ``STOP_TIMEOUT``, SIGKILL the rest, reap them all."""
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while workers and time.monotonic() < deadline:
        _reap(workers)
        if workers:
            time.sleep(0.02)
    for pid in list(workers):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        del workers[pid]
