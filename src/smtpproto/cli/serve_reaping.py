"""``smtpproto serve --workers``: the parent's side of its workers' lives, once they
are forked (``serve_workers``): it waits until they listen, then for a stop signal or
a worker's own exit, and stops and reaps them.

CLI adapter layer. The parent keeps ``SIGNALS`` blocked and takes them synchronously
(``sigtimedwait``), so no handler races the shutdown; a worker that exits on its own
(a crash, a kill) is reported on stderr and ends the run with its exit code (else
``INTERNAL``). ``Workers`` maps each running worker's pid to its number (from 1).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time  # noqa: TID251 -- CLI adapter layer: bounded waits
from collections.abc import Iterable

from .common import ExitCode

__all__ = [
    "SIGNALS",
    "START_TIMEOUT",
    "STOP",
    "STOP_TIMEOUT",
    "Workers",
    "stop_workers",
    "taken",
    "wait_for_the_end",
    "wait_until_listening",
]

#: Seconds the workers get to stop after SIGTERM before they are killed.
STOP_TIMEOUT = 10.0
#: Seconds the workers get to listen after they were started.
START_TIMEOUT = 60.0
#: What stops the workers (as ``serve`` stops: Ctrl-C, ``kill``, the terminal closing).
STOP = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: What the parent keeps blocked and waits for: ``STOP`` and a worker's exit.
SIGNALS = {*STOP, signal.SIGCHLD}

#: The running workers: pid -> worker number.
Workers = dict[int, int]


def taken(signals: Iterable[signal.Signals]) -> set[signal.Signals]:
    """``signals`` but those ignored (``SIG_IGN``) when serve started, which it leaves
    ignored as ``serve`` does: ``serve --workers &`` from a script ignores Ctrl-C. A
    blocked signal is kept pending even when ignored, so the parent blocks (and waits
    for) only these, and the workers set handlers only for these."""
    return {sig for sig in signals if signal.getsignal(sig) != signal.SIG_IGN}


def wait_until_listening(workers: Workers, ready: int, count: int) -> int | None:
    """None once ``count`` workers said they listen; else the exit code to return (0
    for a stop signal meanwhile: Ctrl-C while they start stops them as it would later)."""
    deadline = time.monotonic() + START_TIMEOUT
    listening = 0
    while listening < count:
        if _stopping(signal.sigtimedwait(STOP, 0), workers):
            return ExitCode.OK
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


def wait_for_the_end(workers: Workers) -> int:
    """Wait for SIGINT/SIGTERM/SIGHUP (exit 0) or a worker's own exit (its code)."""
    while True:
        if _stopping(signal.sigtimedwait(SIGNALS, 1.0), workers):
            return ExitCode.OK
        exited = _reap(workers, report=True)
        if exited is not None:
            return exited


def _stopping(info: signal.struct_siginfo | None, workers: Workers) -> bool:
    """Whether ``info`` is a stop signal (said on stderr), not SIGCHLD or none."""
    if info is None or info.si_signo == signal.SIGCHLD:
        return False
    name = signal.Signals(info.si_signo).name
    print(f"stopping {len(workers)} workers ({name})", file=sys.stderr, flush=True)
    return True


def _reap(workers: Workers, *, report: bool = False) -> int | None:
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


def stop_workers(workers: Workers) -> None:
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
