"""The idle timeout of a server's connections, with no timer pending in the event loop.

Adapter layer (a thread, the loop's thread-safe call). RFC 5321 §4.5.3.2.7: a server
should wait at least 5 minutes for the next command, then may close. A loop timer per
connection (or one per server) would do it, but while any timer is pending asyncio's
loop reads the clock twice on every pass and waits in ``epoll_wait`` with a timeout:
measured under ``smtp-source`` at 2.4-3.4 µs of server CPU per message
(bench/README.md, "The built-in server's CPU per message"), against some 45 for the
whole message. So no timer is kept: each connection notes the time of its last input
(one clock read per read), and one ``IdleSweeper`` thread per server sleeps for
``interval`` seconds at a time and then asks the loop, through ``call_soon_threadsafe``
(one wake-up of the loop), to run ``sweep``, which times out every connection idle
for the timeout or longer. A connection is timed out between ``timeout`` and
``timeout + interval`` seconds after its last input (plus the loop's own latency);
``interval_for`` makes the interval at most 1 s and at most an eighth of the timeout.

The thread never touches a connection: it only schedules ``sweep`` on the loop, so
everything else stays single-threaded. It stops when the server closes (``stop``), or
by itself once the loop is closed (``call_soon_threadsafe`` refuses). A sweep queued
before ``stop()`` that the loop runs after it does nothing, and a sweeper starts once
(``start`` again raises ``RuntimeError``): a server started again makes a new one, and
a failed ``SMTPServer.start`` stops only the sweeper it made itself. The same class
gives ``smtpproto serve --workers``' workers their heartbeat (``cli/serve_workers.py``).
"""

from __future__ import annotations

import asyncio  # noqa: TID251  (adapter layer: I/O allowed)
import threading
from collections.abc import Callable

__all__ = ["MAX_INTERVAL", "MIN_INTERVAL", "IdleSweeper", "interval_for"]

#: The longest time between two sweeps, in seconds: how late a timeout may fire.
MAX_INTERVAL = 1.0
#: The shortest time between two sweeps, in seconds: a tiny timeout does not make the
#: thread wake the loop thousands of times a second.
MIN_INTERVAL = 0.01


def interval_for(timeout: float) -> float:
    """Seconds between sweeps for an idle ``timeout``: at most ``MAX_INTERVAL`` and at
    most an eighth of the timeout (a short test timeout stays short), never below
    ``MIN_INTERVAL``."""
    return max(MIN_INTERVAL, min(MAX_INTERVAL, timeout / 8))


class IdleSweeper:
    """Runs ``sweep`` on ``loop`` about every ``interval`` seconds, from a daemon thread
    that does nothing else, until ``stop`` (or until the loop is closed). At most one
    sweep waits in the loop at a time: a loop that does not run for a while (stopped
    between ``run_until_complete`` calls, or busy) finds one sweep, not one per interval."""

    __slots__ = ("_interval", "_loop", "_queued", "_stopped", "_sweep", "_thread")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sweep: Callable[[], None], interval: float
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0, got {interval!r}")
        self._loop = loop
        self._sweep = sweep
        self._interval = interval
        self._queued = False  # a sweep waits in the loop (set by the thread, cleared by it)
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="smtpproto-idle-sweeper", daemon=True
        )

    @property
    def running(self) -> bool:
        """The thread runs (started, and neither stopped nor ended with its loop)."""
        return self._thread.is_alive()

    def serves(self, loop: asyncio.AbstractEventLoop) -> bool:
        """It runs and sweeps on ``loop`` (a server started again on another loop, or
        after its loop ended without ``close()``, needs a new one)."""
        return self._loop is loop and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread. A sweeper starts once: a second ``start()``, or one after
        ``stop()``, raises ``RuntimeError`` and changes nothing (make a new one)."""
        if self._thread.ident is not None or self._stopped.is_set():
            raise RuntimeError("an IdleSweeper starts once: make a new one")
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (it wakes at once)."""
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            if self._queued:  # the last one has not run yet: the loop is not running
                continue
            self._queued = True
            try:
                self._loop.call_soon_threadsafe(self._queued_sweep)
            except RuntimeError:  # the loop is closed: nothing is left to time out
                return

    def _queued_sweep(self) -> None:
        self._queued = False
        if not self._stopped.is_set():  # queued before ``stop()``: that sweep is over
            self._sweep()
