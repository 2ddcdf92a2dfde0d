"""Where a Python server's CPU per message goes under ``smtp-source`` (issue 14).

Usage: ``python bench/server_split.py [--rounds N] [--messages M] [KIND ...]`` with
kinds of ``servers.py`` (default ``builtin-drop asyncio-minimal``). Each server runs in
its own process with two CPU clocks added (``time.thread_time`` sums: CPU time,
so a read that loses the processor to another process is not charged for it): around
its protocol's ``buffer_updated`` (the read callback: our
code, plus the writes it makes) and around asyncio's socket transport ``write`` (the
``send`` system call and the kernel's loopback work behind it). Per round every server
gets ``smtp-source -d -s 4 -m M -l 1024``, in alternating order, and the script prints
per message, median (min-max) over the rounds:

* ``cpu`` — the server process's CPU (``/proc``, user + system);
* ``callback`` — inside ``buffer_updated`` but outside ``write``: the Python that
  handles a read (for the built-in server: front end, engine and policy), plus the
  clocks' own cost (a system call each, about the same for every server: four reads
  and four writes per message);
* ``rest`` — ``cpu`` minus ``callback``: the event loop, the system calls (``recv``,
  ``send``, ``epoll_wait``) and the kernel's loopback work, the same for every server
  that reads and writes alike.

The difference between two servers' ``callback`` is what their own code costs in
place: in a running server each read follows the kernel's network work and the loop,
so the code runs with colder caches than in a tight in-process loop (measured: about
twice the in-process cost for the built-in server). The load average is printed; the
figures are per round and paired, never a best-of.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from asyncio import selector_events
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from measure import run_program, tree_cpu
from peers import HOST, find_postfix_tool, free_port, listening

HERE = Path(__file__).resolve().parent
#: What each snapshot holds: seconds inside the read callback and inside ``write``.
FIELDS = ("callback", "write")


def _timed(owner: Any, name: str, total: list[float]) -> None:
    """Wrap ``owner.name`` to add its wall time to ``total[0]``."""
    original: Callable[..., Any] = getattr(owner, name)
    clock = time.thread_time

    def timed(*args: Any) -> Any:
        start = clock()
        try:
            return original(*args)
        finally:
            total[0] += clock() - start

    setattr(owner, name, timed)


def serve(kind: str, port: int, snapshots: Path) -> None:
    """Run ``servers.py``'s ``kind`` with the clocks added; each SIGUSR1 appends a
    snapshot of the sums (one JSON line) to ``snapshots``."""
    import servers

    from smtpproto.builtin_server import server as builtin

    callback, write = [0.0], [0.0]
    protocol = builtin._Connection if kind.startswith("builtin") else servers.MinimalSMTP
    _timed(protocol, "buffer_updated", callback)
    _timed(selector_events._SelectorSocketTransport, "write", write)

    def snapshot(*_: object) -> None:
        with snapshots.open("a") as out:
            out.write(json.dumps({"callback": callback[0], "write": write[0]}) + "\n")

    signal.signal(signal.SIGUSR1, snapshot)
    asyncio.run(servers.KINDS[kind](port, []))


def _snapshot(pid: int, path: Path) -> dict[str, float]:
    """Ask the server for its sums (bounded wait) and add its CPU so far."""
    before = path.read_text().count("\n") if path.exists() else 0
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10.0
    while (path.read_text().count("\n") if path.exists() else 0) <= before:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no snapshot from {pid}")
        time.sleep(0.01)
    values: dict[str, float] = json.loads(path.read_text().splitlines()[-1])
    values["cpu"] = tree_cpu(pid)
    return values


def _source(port: int, messages: int) -> list[str]:
    return [
        str(find_postfix_tool("smtp-source")),
        "-d", "-s", "4", "-m", str(messages), "-l", "1024",
        "-M", "bench.example", "-f", "bench@example.test", "-t", "sink@example.test",
        f"{HOST}:{port}",
    ]  # fmt: skip


@contextlib.contextmanager
def _running(kinds: list[str], folder: Path) -> Iterator[dict[str, tuple[int, int, Path]]]:
    with contextlib.ExitStack() as stack:
        started = {}
        for kind in kinds:
            port, path = free_port(), folder / f"{kind}.jsonl"
            argv = [sys.executable, __file__, "--serve", kind, str(port), str(path)]
            process = stack.enter_context(listening(argv, port, kind))
            started[kind] = (port, process.pid, path)
        yield started


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--serve", nargs=3, metavar=("KIND", "PORT", "FILE"), help="internal")
    parser.add_argument("kinds", nargs="*", default=["builtin-drop", "asyncio-minimal"])
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), Path(args.serve[2]))
        return 0
    rows: dict[str, dict[str, list[float]]] = {k: {} for k in args.kinds}
    with tempfile.TemporaryDirectory() as folder, _running(args.kinds, Path(folder)) as started:
        for port, _, _ in started.values():
            run_program(_source(port, 400), 400)  # warm up
        for number in range(args.rounds):
            order = args.kinds if number % 2 == 0 else args.kinds[::-1]
            for kind in order:
                port, pid, path = started[kind]
                before = _snapshot(pid, path)
                run_program(_source(port, args.messages), args.messages)
                after = _snapshot(pid, path)
                per = {k: (after[k] - before[k]) / args.messages * 1e6 for k in after}
                callback = per["callback"] - per["write"]
                split = {"cpu": per["cpu"], "callback": callback, "rest": per["cpu"] - callback}
                for key, value in split.items():
                    rows[kind].setdefault(key, []).append(value)
            print(f"round {number + 1}: load {os.getloadavg()[0]:.2f}", flush=True)
    print("us per message, median (min-max):")
    for kind, row in rows.items():
        print(f"{kind:16s} " + "  ".join(f"{key} {_spread(v)}" for key, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
