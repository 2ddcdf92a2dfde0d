"""``smtpproto serve --workers N``: the built-in server in N processes on one port.

CLI adapter layer. One asyncio process uses one core; this runs N worker processes,
each a whole ``SMTPServer``, accepting from one listening socket they share (a
pre-fork server). ``--workers 0`` starts one per core.

How the connections are shared, and why (measured on a 2-core machine with Postfix's
``smtp-source`` on the same machine, 1 KB messages, paired rounds; bench/README.md):

* ``SO_REUSEPORT`` (a socket per worker, the kernel choosing by a hash of the
  addresses) spreads a few long sessions by luck: 4 sessions over 2 workers all landed
  on one worker one time in 8.
* A parent that accepts and hands each connection to a worker (``SCM_RIGHTS`` over a
  socket pair, after an offer/take exchange so that a stuck worker was given none),
  the design before this one, spread them evenly but cost every connection two
  messages each way and two more wake-ups of two processes: with a new connection per
  message (``smtp-source -s 16`` without ``-d``) the server took 385 (355-411) µs of
  CPU per message against 279 (261-286) µs now (one process: 216). With long sessions
  (``-d``) both designs measured about the same (now/before 1.15x and 1.11x at 4 and
  32 sessions).
* A shared socket alone (each worker accepting what its loop sees) passes nothing
  between processes, but put all 4 sessions on one worker in some rounds: the worker
  that wakes first takes them. So a worker that serves more connections than another one
  that runs (by more than a quarter of its own: ``_UNEVEN``) leaves a new connection to
  the others for ``_DEFER`` seconds before it takes it itself (``_Acceptor``; the
  workers' loads are in shared memory, each written only by its own worker). The
  kernel gives each connection to one ``accept``, so no connection is served twice,
  and a stuck worker (stopped, not scheduled, or busy for long) accepts nothing, so it
  holds up none: it delays one new connection by ``_DEFER`` at most, not again until it
  has run since, and none once it has not run for ``_STALE`` seconds.
* Waiting on every difference (2 against 1 as 9 against 8), the previous rule, cost a
  connection per message (``smtp-source -s 16`` without ``-d``) 0.77x (0.54-1.01) the
  msg/s of never waiting; the quarter rule gave 1.11x (0.95-1.38) the previous one
  there, 1.08x and 1.01x with ``-d -s 4`` and ``-s 32`` (paired, 5 rounds each, the
  machine saturated by other jobs).
* Every worker waiting wakes for a new connection and one accepts it (the thundering
  herd). ``EPOLLEXCLUSIVE`` on the loop's own epoll (an ``EpollSelector`` registering
  the listening socket with the flag; an epoll nested in the loop's does not do: the
  kernel's ``ep_poll_callback`` counts an exclusive wake-up only for a thread waiting
  on that very epoll) woke one worker per connection instead of 1.6-1.8, but measured
  1.01-1.04x the CPU per message of the herd with a connection per message (4 paired
  runs): the other worker's ``epoll_wait`` finds the connection taken and sleeps again
  in the kernel (``accept`` failed 51 times in 2,000 connections). It also needs a
  nudge from a worker that leaves a connection to another (the kernel woke that one
  alone) and stalls a connection whose woken worker stops before it accepts, where the
  herd lets whichever runs first take it. So it is not used.

Per message, 2 workers use more CPU than one process (1.09x with ``-d -s 32``) but
less than two independent ``serve`` processes (0.90x): the cost is two processes each
with fewer events per wake-up; once accepted, a session never meets this module.

What it takes to use every core: enough sessions at once. ``smtp-source`` sends one
command and waits for its reply (no pipelining), so 4 sessions over 2 workers leave
each worker idle between round trips: with ``-d -s 4`` 2 workers gave 1.26x one
process, the machine 1.70 cores busy; from 16 sessions on 1.6x-1.7x, the machine 1.9
of its 2 cores busy (the server 1.3 of them, ``smtp-source`` the rest; measured with
the hand-over design, the same as this one with ``-d``, on a lightly loaded machine). A
client on the same machine takes its share of the cores; the server alone can use
every core only when the clients run elsewhere.

Theory of operation. The parent (the process the user started) never serves:

1. it listens on the address itself (``--port 0``: one port for everyone), blocks
   SIGINT, SIGTERM, SIGHUP and SIGCHLD (taken synchronously by ``sigtimedwait``, so
   no handler races the shutdown; one while the certificate is made waits; one ignored
   when serve started, SIGINT for ``serve --workers &`` from a script, stays ignored
   by the parent and the workers: ``serve_reaping.taken``) and makes
   the temporary STARTTLS certificate once, so every worker presents the same one and
   the parent alone removes it;
2. it forks the workers, each inheriting the listening socket, the shared loads and
   one end of a ``socketpair``; each starts its server without a socket of its own
   (``SMTPServer.start(listen=False)``), unblocks them once its handlers are set and
   its heartbeat's thread runs, in its loop's thread only (a Ctrl-C while it starts
   then stops it like a later one; its other threads never take one), publishes its
   load, accepts from the shared socket and serves each connection as its own
   (``SMTPServer.adopt``), and writes one octet on a pipe when it accepts; once
   stopping it blocks them again
   (a repeated one waits for the exit). Nothing a worker raises unwinds into the
   parent's frames: it exits;
3. when every worker is ready (a stop signal meanwhile stops them all as in 4), it
   prints the usual banner (``listening on HOST:PORT`` first);
4. then it waits for a signal (``serve_reaping``: the waits, the stop, the reaping).
   SIGINT, SIGTERM or SIGHUP: it sends SIGTERM to every worker (each stops accepting
   and closes its sessions as ``serve`` does), waits
   ``STOP_TIMEOUT`` seconds, kills what is left, reaps every worker, removes the
   certificate and exits 0; connections still in the kernel's queue are closed with
   the listening socket. The signals stay blocked until the certificate is removed: one
   repeated meanwhile (``kill`` twice) is dropped, not taken by its default action. A
   worker that exits on its own (a crash, a kill) is reported on stderr and stops the
   others too; the exit code is then the worker's, else ``INTERNAL``.

A worker also stops when its parent is gone (its end of the socketpair reads end of
file; the parent's pid is checked at every heartbeat too), so even a parent killed with
SIGKILL leaves no worker behind. A worker keeps no timer pending in its loop (with one
pending, asyncio reads the clock twice on every pass of the loop and ``epoll_wait``
sleeps with a timeout: ``builtin_server/idle.py``): its heartbeat, which publishes its
load and checks its parent, comes from a thread (``_Acceptor``), as the idle timeout's
sweep does. Workers print their transcript lines with a ``wN``
prefix; each stores messages itself (maildir names carry the worker's pid; an mbox gets
one ``O_APPEND`` write per message).

Scaling beyond one machine is the deployment's job, not this package's: run one such
server per machine behind your own load balancer.
"""

from __future__ import annotations

import argparse
import asyncio  # noqa: TID251 -- CLI adapter layer: the built-in server runs on asyncio
import contextlib
import dataclasses
import mmap
import os
import select
import signal
import socket  # noqa: TID251 -- CLI adapter layer: the shared port
import sys
import tempfile
import time  # noqa: TID251 -- CLI adapter layer: bounded waits
from collections.abc import Callable
from pathlib import Path

from ..builtin_server.certificates import make_certificate
from ..builtin_server.idle import IdleSweeper
from ..builtin_server.server import SMTPServer
from ..wire.text import escape_text
from .common import CLIError, ExitCode
from .serve_reaping import SIGNALS as _SIGNALS
from .serve_reaping import STOP as _STOP
from .serve_reaping import (
    STOP_TIMEOUT,
    stop_workers,
    taken,
    wait_for_the_end,
    wait_until_listening,
)

__all__ = ["STOP_TIMEOUT", "run_workers", "worker_count"]

#: Connections the kernel queues before a worker accepts them (asyncio's default).
_BACKLOG = 100
#: Seconds a worker that serves more connections than another leaves a new connection
#: to the others before it takes it itself (``_Acceptor``).
_DEFER = 0.05
#: A worker leaves a new connection to a live one that serves fewer only when the
#: difference is more than ``1 / _UNEVEN`` of its own (``_Acceptor``): 1 against 0 and
#: 2 against 1 (a few long sessions are spread evenly), not 9 against 7.
_UNEVEN = 4
#: Seconds between a waiting worker's looks at the loads (``_Acceptor``).
_RECHECK = 0.005
#: Seconds between a worker's notes that it runs (``_Acceptor``), and its checks that
#: its parent is still there.
_HEARTBEAT = 0.25
#: Seconds after which a worker that has not run is not waited for.
_STALE = 1.0
#: Seconds before a worker tries again when ``accept`` failed for want of descriptors
#: or memory (asyncio's own delay).
_ACCEPT_RETRY = 1.0

#: Makes one worker's server, not started: ``(port, certfile, keyfile, transcript
#: prefix)``.
MakeServer = Callable[[int, "str | None", "str | None", str], SMTPServer]
#: Prints the banner: ``(port, certificate path, what made it)``.
Banner = Callable[[int, "str | None", "str | None"], None]
#: Per worker (by worker number - 1) its open connections and when it last ran, in
#: memory the workers share (a ``memoryview`` of 64-bit integers over an anonymous
#: shared ``mmap``: worker ``i``'s two are at ``2 * i`` and ``2 * i + 1``).
Loads = memoryview


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
    listener.setblocking(False)  # each worker accepts only what its loop saw
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
    previous: set[int | signal.Signals] | None = None  # the mask before ``_SIGNALS``
    try:
        # Blocked until the certificate is removed: one while it is made waits (its
        # default action killed the parent then and left the certificate's folder
        # behind; the workers start, see it and stop), and one repeated while the
        # workers stop is taken by nobody, rather than by its default action (killed
        # before the cleanup) or as a KeyboardInterrupt once unblocked.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, taken(_SIGNALS))
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
            previous,
        )
    finally:
        listener.close()
        if certdir is not None:
            certdir.cleanup()
        if previous is not None:
            for sig in (signal.sigpending() & set(_STOP)) - previous:
                signal.sigtimedwait((sig,), 0)  # repeated while stopping: dropped
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _supervise(
    count: int,
    listener: socket.socket,
    make: Callable[[int], SMTPServer],
    banner: Callable[[], None],
    previous: set[int | signal.Signals],
) -> int:
    """Fork the workers, wait until they are ready, print the banner, then wait for a
    signal or a worker's exit; stop them all in every case. ``_SIGNALS`` are blocked
    (the caller unblocks them; ``previous`` is the mask before, the workers' own)."""
    workers: dict[int, int] = {}  # pid -> worker number
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(count)]
    channels = [ours for ours, _ in pairs]  # the parent's ends, by worker number - 1
    shared = mmap.mmap(-1, 16 * count)  # anonymous and shared: the workers' loads
    loads = memoryview(shared).cast("q")
    ready_read, ready_write = os.pipe()
    code: int = ExitCode.INTERNAL
    try:
        parent = os.getpid()
        for number in range(1, count + 1):
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the worker
                code = ExitCode.INTERNAL
                try:  # nothing unwinds into the parent's frames: their cleanup is not ours
                    channel = pairs[number - 1][1]
                    os.close(ready_read)
                    for ours, theirs in pairs:
                        ours.close()
                        if theirs is not channel:
                            theirs.close()
                    worker = _Worker(listener, channel, loads, number - 1, previous)
                    code = _run_worker(make(number), ready_write, parent, worker)
                except BaseException as error:  # making its server failed: a bug, say so
                    print(f"smtpproto serve: worker failed: {error!r}", file=sys.stderr)
                finally:
                    _exit(code)
            workers[pid] = number
        for _, theirs in pairs:
            theirs.close()
        os.close(ready_write)
        ready_write = -1
        failed = wait_until_listening(workers, ready_read, count)
        if failed is not None:
            return failed
        banner()
        print(f"workers: {count} (pids {', '.join(map(str, sorted(workers)))})", flush=True)
        code = wait_for_the_end(workers)
        return code
    finally:
        stop_workers(workers)
        loads.release()
        shared.close()
        for channel in channels:
            channel.close()
        os.close(ready_read)
        if ready_write >= 0:
            os.close(ready_write)


def _exit(code: int) -> None:
    """Leave a forked worker at once: no ``atexit`` (the parent's certificate), no
    ``finally`` of the parent's frames."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _run_worker(server: SMTPServer, ready: int, parent: int, worker: _Worker) -> int:
    """A worker's whole life: accept and serve connections until SIGINT, SIGTERM or
    the parent is gone."""
    try:
        asyncio.run(_serve(server, ready, parent, worker))
    except CLIError as error:
        print(f"smtpproto serve: {error}", file=sys.stderr)
        return int(error.code)
    except BaseException as error:  # a bug: say so, the parent stops the others
        print(f"smtpproto serve: worker failed: {error!r}", file=sys.stderr)
        return ExitCode.INTERNAL
    return ExitCode.OK


async def _serve(server: SMTPServer, ready: int, parent: int, worker: _Worker) -> None:
    try:
        await server.start(listen=False)
    except OSError as error:
        await server.close()
        raise _cannot_listen(server.host, server.port, error) from None
    try:
        await _until_stopped(parent, server, worker, ready)
    finally:
        await server.close()


@dataclasses.dataclass(frozen=True)
class _Worker:
    """What a worker inherits: the shared listening socket, its end of the channel to
    the parent (end of file: the parent is gone), every worker's published load and
    its own place in them."""

    listener: socket.socket
    channel: socket.socket
    loads: Loads
    index: int
    #: The signal mask to restore once the stop signals have their handlers (until
    #: then they stay blocked, as the parent blocked them: a Ctrl-C while the worker
    #: starts waits for them rather than interrupting whatever runs).
    mask: set[int | signal.Signals]


async def _until_stopped(parent: int, server: SMTPServer, worker: _Worker, ready: int) -> None:
    """Say ``ready`` once accepting (its load published: the others wait for it from
    the first connection on), then accept and serve connections until SIGINT, SIGTERM,
    SIGHUP or the parent's exit (the channel at end of file, or another parent pid)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in taken(_STOP):  # not one ignored when serve started (``taken``)
        loop.add_signal_handler(signum, stop.set)
    adopting: set[asyncio.Task[None]] = set()

    def adopted(task: asyncio.Task[None]) -> None:
        adopting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            print(f"smtpproto serve: a connection was lost: {task.exception()!r}", file=sys.stderr)

    def serve(connection: socket.socket) -> None:
        task = loop.create_task(server.adopt(connection))
        adopting.add(task)
        task.add_done_callback(adopted)

    def parent_gone() -> None:
        with contextlib.suppress(BlockingIOError):
            if worker.channel.recv(1):
                return  # the parent never writes: nothing to read but end of file
        loop.remove_reader(worker.channel.fileno())
        stop.set()

    def check_parent() -> None:
        if os.getppid() != parent:
            stop.set()

    acceptor = _Acceptor(
        worker.listener,
        worker.loads,
        worker.index,
        lambda: server.open_connections + len(adopting),
        serve,
        beat=check_parent,
    )
    # Unblocked in this thread only, once the heartbeat's thread was started (it keeps
    # the mask it was made with, as the idle sweeper and asyncio's executor do): a stop
    # signal is taken by the loop's thread alone, so none can reach a thread that
    # outlives the block below.
    signal.pthread_sigmask(signal.SIG_SETMASK, worker.mask)
    worker.channel.setblocking(False)
    loop.add_reader(worker.channel.fileno(), parent_gone)
    os.write(ready, b"R")
    os.close(ready)
    try:
        await stop.wait()
    finally:
        # Stopping already: a stop signal repeated from here (Ctrl-C in the terminal
        # reaches the workers and the parent's SIGTERM follows) waits, blocked, for the
        # exit. Else one arriving as ``asyncio.run`` closes the loop is written to its
        # closed wakeup socket (the loop closes it before it removes its handlers): an
        # "Exception ignored ... BrokenPipeError" traceback on stderr.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)
        acceptor.close()
        loop.remove_reader(worker.channel.fileno())
        for task in adopting:
            task.cancel()


class _Acceptor:
    """A worker's side of the shared listening socket: one connection accepted each
    time the socket is readable (the kernel gives each connection to one ``accept``),
    except that a worker serving more connections than another live one (by more than
    ``1 / _UNEVEN`` of its own) leaves the new connection to the others for ``_DEFER``
    seconds before it takes it itself, once per time the others ran.

    ``loads`` holds, per worker, its load (open connections) and when it last ran
    (``time.monotonic`` in milliseconds, the same clock in every process), each written
    only by its own worker: when it decides, when it accepts and every ``_HEARTBEAT``
    seconds (a thread, ``IdleSweeper``, has the loop run ``_beat``: no timer is pending
    in the loop, and a loop that does not run publishes nothing). It is a hint read
    without a lock: a value a little stale changes only who goes first. A worker that
    leaves a connection looks again every ``_RECHECK`` seconds with fresh loads (two
    workers that each saw the other lower from stale values cannot both see it again),
    and takes it after ``_DEFER``. A worker that let it wait that long is not waited for
    again until it has published since (it ran): a worker the kernel does not schedule
    (a busy machine), stopped or stuck delays one connection by ``_DEFER``, not each one
    of a burst (smtp-source opening 32 sessions at once waited up to ``_DEFER`` per
    session before). Nobody waits for a worker that has not run for ``_STALE`` seconds:
    such a worker accepts nothing, so it holds no connection.

    ``load`` is this worker's load now; ``serve`` takes each accepted connection;
    ``beat`` runs on the loop at each heartbeat too."""

    def __init__(
        self,
        listener: socket.socket,
        loads: Loads,
        index: int,
        load: Callable[[], int],
        serve: Callable[[socket.socket], None],
        *,
        beat: Callable[[], None] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._listener = listener
        self._fd = listener.fileno()
        self._loads = loads
        self._index = index
        self._load = load
        self._serve = serve
        self._on_beat = beat
        self._waited = False  # waited ``_DEFER`` already: the next connection is ours
        #: Per other worker that let a connection wait ``_DEFER`` seconds, when it had
        #: last run then: it is not waited for again until it has run since.
        self._unanswered: dict[int, int] = {}
        #: Connections left to the others for a while (for tests and diagnostics).
        self.deferred = 0
        self._since = 0.0  # loop time at which this worker began to leave one
        self._timer: asyncio.TimerHandle | None = None
        self._poll = select.poll()  # whether a connection waits, without accepting it
        self._poll.register(self._fd, select.POLLIN)
        listener.setblocking(False)
        self.publish()
        self._heartbeat = IdleSweeper(self._loop, self._beat, _HEARTBEAT)
        self._heartbeat.start()
        self._loop.add_reader(self._fd, self._readable)

    def publish(self) -> tuple[int, int]:
        """Write this worker's load and the time now where the others read them."""
        load, now = self._load(), int(time.monotonic() * 1000)
        self._loads[2 * self._index] = load
        self._loads[2 * self._index + 1] = now
        return load, now

    def _beat(self) -> None:
        self.publish()
        if self._on_beat is not None:
            self._on_beat()

    def _behind_others(self) -> bool:
        """Whether another worker that ran within ``_STALE`` has fewer open
        connections than this one, by more than ``1 / _UNEVEN`` of this one's (and
        has run since it last let one wait)."""
        return bool(self._lighter())

    def _lighter(self) -> list[int]:
        """The other workers ``_behind_others`` looks at: with fewer open connections
        (by more than ``1 / _UNEVEN`` of this one's), run within ``_STALE``, and run
        since they last let a connection wait."""
        load, now = self.publish()
        loads, stale, unanswered = self._loads, _STALE * 1000, self._unanswered
        return [
            other
            for other in range(len(loads) // 2)
            if other != self._index
            and (load - loads[2 * other]) * _UNEVEN > load
            and now - loads[2 * other + 1] <= stale
            and unanswered.get(other) != loads[2 * other + 1]
        ]

    def _readable(self) -> None:
        if not self._waited and self._behind_others():
            self._loop.remove_reader(self._fd)  # level-triggered: else it fires again
            self.deferred += 1
            self._since = self._loop.time()
            self._timer = self._loop.call_later(_RECHECK, self._recheck)
            return
        self._waited = False
        try:
            connection, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it (or the client gave up)
        except OSError as error:  # out of descriptors or memory: retry later
            print(f"smtpproto serve: cannot accept: {error}", file=sys.stderr)
            self._loop.remove_reader(self._fd)
            self._timer = self._loop.call_later(_ACCEPT_RETRY, self._resume)
            return
        self._loads[2 * self._index] += 1  # at once: the others see it before they decide
        self._serve(connection)

    def _recheck(self) -> None:
        """While leaving a connection to the others: every ``_RECHECK`` seconds, take
        the next turn again once nothing waits (taken), this worker is no longer
        behind (the loads changed), or it waited ``_DEFER`` (then it is this worker's)."""
        self._timer = None
        waited = self._loop.time() - self._since >= _DEFER
        if not waited and self._poll.poll(0) and self._behind_others():
            self._timer = self._loop.call_later(_RECHECK, self._recheck)
            return
        if waited:  # not waited for again until they have run (published) since
            for other in self._lighter():
                self._unanswered[other] = self._loads[2 * other + 1]
        self._waited = waited
        self._loop.add_reader(self._fd, self._readable)

    def _resume(self) -> None:
        self._timer = None
        self._loop.add_reader(self._fd, self._readable)

    def close(self) -> None:
        """Stop accepting (the listening socket stays open for the other workers)."""
        self._heartbeat.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop.remove_reader(self._fd)
