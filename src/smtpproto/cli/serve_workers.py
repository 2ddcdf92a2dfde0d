"""``smtpproto serve --workers N``: the built-in server in N processes on one port.

CLI adapter layer. One asyncio process uses one core; this runs N worker processes,
each a whole ``SMTPServer`` with its own listening socket on the same address, bound
with ``SO_REUSEPORT`` so that the Linux kernel spreads new connections over them (by a
hash of the connection's addresses). ``--workers 0`` starts one per core.

Theory of operation. The parent (the process the user started) never serves:

1. it binds a socket to the address with ``SO_REUSEPORT`` and keeps it, *without*
   listening, so that ``--port 0`` has one port for every worker and the port stays
   reserved while they run (a bound socket that does not listen gets no connection);
2. it makes the temporary STARTTLS certificate once, so every worker presents the same
   one and the parent alone removes it;
3. with SIGINT, SIGTERM and SIGCHLD blocked (taken synchronously by ``sigtimedwait``,
   so no handler races the shutdown), it forks the workers; each unblocks them, starts
   its server and writes one octet on a pipe when it listens;
4. when every worker listens, it prints the usual banner (``listening on HOST:PORT``
   first), then waits for a signal. SIGINT, SIGTERM or SIGHUP: it sends SIGTERM to every worker
   (each closes its sessions as ``serve`` does), waits ``STOP_TIMEOUT`` seconds, kills
   what is left, reaps every worker, removes the certificate and exits 0. A worker that
   exits on its own stops the others too; the exit code is then the worker's
   (``CONNECT`` when it could not listen), else ``INTERNAL``.

A worker also stops when its parent is gone (checked every second), so even a parent
killed with SIGKILL leaves no worker behind for long. Workers print their transcript
lines with a ``wN`` prefix; each stores messages itself (maildir names carry the
worker's pid; an mbox gets one ``O_APPEND`` write per message).

Scaling beyond one machine is the deployment's job, not this package's: run one such
server per machine behind your own load balancer.
"""

from __future__ import annotations

import argparse
import asyncio  # noqa: TID251 -- CLI adapter layer: the built-in server runs on asyncio
import contextlib
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
#: What stops the workers (as ``serve`` stops: Ctrl-C, ``kill``, the terminal closing).
_STOP = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_SIGNALS = {*_STOP, signal.SIGCHLD}

#: Makes one worker's server, not started, listening with ``SO_REUSEPORT``: ``(port,
#: certfile, keyfile, transcript prefix)``.
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


def _reserve(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT``, not listening."""
    if sys.platform != "linux" or not hasattr(socket, "SO_REUSEPORT"):
        raise CLIError("--workers needs Linux (SO_REUSEPORT spreads connections)", ExitCode.USAGE)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        reserved = socket.socket(family, kind, proto)
    except OSError as error:
        raise _cannot_listen(host, port, error) from None
    try:
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reserved.bind(address)
    except OSError as error:
        reserved.close()
        raise _cannot_listen(host, port, error) from None
    return reserved


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
    reserved = _reserve(args.host, args.port)
    port = reserved.getsockname()[1]
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
            lambda number: make_server(port, cert, key, f"w{number}"),
            lambda: banner(port, cert, tool),
        )
    finally:
        reserved.close()
        if certdir is not None:
            certdir.cleanup()


def _supervise(count: int, make: Callable[[int], SMTPServer], banner: Callable[[], None]) -> int:
    """Fork the workers, wait until they listen, print the banner, then wait for a
    signal or a worker's exit; stop them all in every case."""
    workers: dict[int, int] = {}  # pid -> worker number
    ready_read, ready_write = os.pipe()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    code: int = ExitCode.INTERNAL
    try:
        parent = os.getpid()
        for number in range(1, count + 1):
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the worker: never returns
                os.close(ready_read)
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
                _exit(_run_worker(make(number), ready_write, parent))
            workers[pid] = number
        os.close(ready_write)
        ready_write = -1
        failed = _wait_until_listening(workers, ready_read, count)
        if failed is not None:
            return failed
        banner()
        print(f"workers: {count} (pids {', '.join(map(str, sorted(workers)))})", flush=True)
        code = _wait_for_the_end(workers)
        return code
    finally:
        _stop(workers)
        os.close(ready_read)
        if ready_write >= 0:
            os.close(ready_write)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _exit(code: int) -> None:
    """Leave a forked worker at once: no ``atexit`` (the parent's certificate), no
    ``finally`` of the parent's frames."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _run_worker(server: SMTPServer, ready: int, parent: int) -> int:
    """A worker's whole life: serve until SIGINT, SIGTERM or the parent is gone."""
    try:
        asyncio.run(_serve(server, ready, parent))
    except CLIError as error:
        print(f"smtpproto serve: {error}", file=sys.stderr)
        return int(error.code)
    except BaseException as error:  # a bug: say so, the parent stops the others
        print(f"smtpproto serve: worker failed: {error!r}", file=sys.stderr)
        return ExitCode.INTERNAL
    return ExitCode.OK


async def _serve(server: SMTPServer, ready: int, parent: int) -> None:
    try:
        await server.start()
    except OSError as error:
        await server.close()
        raise _cannot_listen(server.host, server.port, error) from None
    try:
        os.write(ready, b"R")
        os.close(ready)
        await _until_stopped(parent)
    finally:
        await server.close()


async def _until_stopped(parent: int) -> None:
    """Until SIGINT, SIGTERM, SIGHUP or the parent's exit."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in _STOP:
        loop.add_signal_handler(signum, stop.set)

    def check_parent() -> None:
        if os.getppid() != parent:
            stop.set()
        else:
            loop.call_later(_PARENT_CHECK, check_parent)

    loop.call_later(_PARENT_CHECK, check_parent)
    await stop.wait()


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
