"""Taking one measurement: wall time, CPU time, memory, of this process or another.

* ``timed(session, messages)`` runs a session in this process and returns a ``Sample``
  with its wall time (``time.perf_counter``) and this process's CPU time
  (``time.process_time``: user + system, every thread) over the same span.
* ``run_program(argv, messages)`` runs another program to its end and takes its CPU
  time from the kernel's accounting of that one child (``os.wait4``'s rusage, the
  precise form of ``RUSAGE_CHILDREN`` deltas: another child reaped meanwhile cannot
  leak into it).
* ``tree_cpu(pid)`` is the CPU time so far of a running process and all its
  descendants (a server and its workers), from ``/proc/PID/task/*/schedstat``
  (nanoseconds) or, without it, ``/proc/PID/stat`` (clock ticks).
* ``machine_cpu()`` is the CPU time every process of the machine used so far
  (``/proc/stat``: all but idle, I/O wait and steal), so that a row can say how busy
  the whole machine was, other jobs included;
* ``rss()`` is this process's resident set now (``/proc/self/statm``), for the growth
  per open connection (``ru_maxrss`` is a peak and cannot show growth after a peak).
"""

from __future__ import annotations

import dataclasses
import gc
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["Sample", "machine_cpu", "rss", "run_program", "timed", "tree_cpu"]

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICK = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One measured session: ``messages`` delivered in ``wall`` s using ``cpu`` s of CPU.

    ``cpu`` is the measured side's CPU (the client's for a client row, the server's for
    a server row); ``extra`` holds a row's other figures (``rss_per_connection``, the
    other side's CPU ...), each a number.
    """

    messages: int
    wall: float
    cpu: float
    extra: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.wall

    @property
    def cpu_per_message(self) -> float:
        """CPU seconds per message."""
        return self.cpu / self.messages


def timed(session: Callable[[], object], messages: int) -> Sample:
    """Run ``session`` here; wall and this process's CPU time over it (garbage collected
    first, so one row's garbage is not collected in the next row's time)."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    session()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Sample(messages, wall, cpu)


def run_program(argv: Sequence[str], messages: int, timeout: float = 600.0) -> Sample:
    """Run ``argv`` to its end (killed after ``timeout`` s); its own CPU time, exactly.

    ``CalledProcessError`` when it fails: a failed session gives no number.
    """
    wall = time.perf_counter()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        watchdog.cancel()
    wall = time.perf_counter() - wall
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, list(argv))
    return Sample(messages, wall, usage.ru_utime + usage.ru_stime)


def _children(pid: int) -> list[int]:
    """The pids whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _process_cpu(pid: int) -> float:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # gone meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and every live descendant of it."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += _process_cpu(current)
        todo.extend(_children(current))
    return total


def machine_cpu() -> float:
    """CPU seconds the whole machine used so far (0.0 without ``/proc/stat``)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / _TICK


def rss() -> int:
    """This process's resident set size now, in bytes."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE
