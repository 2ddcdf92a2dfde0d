"""``smtpproto serve --workers N`` against one ``serve``: throughput, cores and spread.

Usage (from the repository root, after ``.ci/install-peers``)::

    .venv/bin/python bench/bench_workers.py                       # 5 rounds, -s 4,8,16,32
    .venv/bin/python bench/bench_workers.py --new-connections     # a connection per message
    .venv/bin/python bench/bench_workers.py --other-src /tmp/old/src   # A/B another tree

Every configuration (``serve``, ``serve --workers N`` and, with ``--other-src``, the
same ``--workers N`` from another source tree, run with ``PYTHONPATH`` set to it) is
started once, each a ``serve --maildir -q --no-starttls``, and fed by Postfix's
``smtp-source -d -s S -m M -l 1024`` (``--new-connections``: no ``-d``, a connection
per message) once per round and per session count ``S``, the configurations in a
shuffled order per round. Per run: the server's CPU per process (the parent and each
worker, from ``/proc``), smtp-source's CPU, the whole machine's CPU (``/proc/stat``,
other jobs included) and the wall time. Printed per session count and configuration,
as the median over the rounds with the min-max: msg/s, the paired ratio against the
single process, cores busy (server, smtp-source, machine), the server's share of the
cores left to it (its cores over the CPU count less smtp-source's and other jobs'
cores: 1.00 is every core nobody else used), server CPU per message, the server's
context switches per message (every thread of the parent and the workers, from
``/proc``: wake-ups), the user share of the server's CPU (user time over user and
system time, from ``/proc`` in clock ticks: Python's work against the kernel's), the
parent's cores busy, and two spreads: the least busy
worker's CPU over the busiest one's, and the fewest messages a worker stored over
the most (from the pids in the maildir names; 1.00: even; 0.00: one worker served
every session). With ``--other-src`` a line under each table pairs this tree's
workers with the other tree's per round. The load average is printed per round, every
run with ``--verbose``. The machine's CPU comes in clock ticks (10 ms): a short run
can show more cores than there are.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import _children, _process_cpu, machine_cpu, run_program, tree_cpu
from peers import HOST, find_postfix_tool, free_port, listening
from stats import Spread, per_row
from stats import paired as paired_ratio

Run = dict[str, float]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--sessions", default="4,8,16,32", help="smtp-source -s values")
    parser.add_argument("--messages", type=int, default=4000, help="per run (4000)")
    parser.add_argument("--workers", type=int, default=2, help="serve --workers N (2)")
    parser.add_argument(
        "--new-connections", action="store_true", help="no -d: a connection per message"
    )
    parser.add_argument("--other-src", type=Path, help="also run --workers from this src/")
    parser.add_argument("--seed", type=int, default=14, help="seed of the per-round order")
    parser.add_argument("--tmpdir", type=Path, help="where the Maildirs go (made if missing)")
    parser.add_argument("--verbose", action="store_true", help="print every run")
    return parser


def _processes(pid: int) -> dict[int, float]:
    """CPU seconds so far of ``pid`` (key ``pid``) and of each child of it."""
    found = {pid: _process_cpu(pid)}
    for child in _children(pid):
        found[child] = tree_cpu(child)
    return found


def _switches(pids: Sequence[int]) -> int:
    """Context switches so far (voluntary: the process slept, waiting for an event; and
    involuntary) of every thread of ``pids``: a wake-up count."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                for line in (task / "status").read_text().splitlines():
                    if "ctxt_switches:" in line:
                        total += int(line.split()[1])
    return total


@contextlib.contextmanager
def _serve(maildir: Path, options: Sequence[str], src: Path | None) -> Iterator[tuple[int, int]]:
    """Run one configuration until the block ends; its port and pid (``env`` execs)."""
    port = free_port()
    prefix = [] if src is None else ["env", f"PYTHONPATH={src}"]
    argv = [*prefix, sys.executable, "-m", "smtpproto", "serve", "--host", HOST]
    argv += ["--port", str(port), "-q", "--no-starttls", "--maildir", str(maildir)]
    with listening([*argv, *options], port, maildir.name, "listening on") as process:
        yield port, process.pid


def _ticks(pids: Sequence[int]) -> tuple[int, int]:
    """User and system clock ticks so far of ``pids`` (each as one process)."""
    user = system = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            user, system = user + int(fields[11]), system + int(fields[12])
    return user, system


def _stored(maildir: Path) -> dict[int, int]:
    """Messages per writer pid in ``maildir``/new (the pid is in each name), removed."""
    counts: dict[int, int] = {}
    for path in (maildir / "new").glob("*"):
        match = re.search(r"P([0-9]+)Q", path.name)
        if match is not None:
            counts[int(match[1])] = counts.get(int(match[1]), 0) + 1
        path.unlink()
    return counts


def _once(pid: int, port: int, sessions: int, args: argparse.Namespace, maildir: Path) -> Run:
    argv = [str(find_postfix_tool("smtp-source"))] + ([] if args.new_connections else ["-d"])
    argv += ["-s", str(sessions), "-m", str(args.messages), "-l", "1024", "-M", "bench.example"]
    argv += ["-f", "bench@example.test", "-t", "sink@example.test", f"{HOST}:{port}"]
    before, machine = _processes(pid), machine_cpu()
    switches, ticks = _switches(list(before)), _ticks(list(before))
    client = run_program(argv, args.messages)
    after, machine = _processes(pid), machine_cpu() - machine
    switches = _switches(list(after)) - switches
    user, system = (now - then for now, then in zip(_ticks(list(after)), ticks, strict=True))
    used = {key: after[key] - before.get(key, 0.0) for key in after}
    workers = [cpu for key, cpu in used.items() if key != pid]
    run = {"wall": client.wall, "client": client.cpu, "machine": machine, "parent": used[pid]}
    run["server"] = sum(used.values())
    run["switches"] = switches / args.messages
    run["user"] = user / (user + system) if user + system > 0 else 0.0
    run["spread"] = min(workers) / max(workers) if workers and max(workers) > 0 else 1.0
    stored = [count for key, count in _stored(maildir).items() if key != pid]
    stored += [0] * (len(workers) - len(stored))
    run["messages"] = min(stored) / max(stored) if stored and max(stored) > 0 else 1.0
    if args.verbose:
        print(f"  -s {sessions} {maildir.name}: {args.messages / client.wall:,.0f} msg/s, "
              f"{client.wall:.3f} s, worker CPU {', '.join(f'{c:.3f}' for c in workers)} s, "
              f"messages {', '.join(map(str, sorted(stored)))}", flush=True)  # fmt: skip
    return run


def _share(run: Run) -> float:
    """The server's cores busy over the cores smtp-source and other jobs left it."""
    left = (os.cpu_count() or 1) - (run["machine"] - run["server"]) / run["wall"]
    return run["server"] / run["wall"] / left if left > 0 else 0.0


def _report(rounds: Sequence[dict[str, Run]], names: Sequence[str], messages: int) -> None:
    def show(spread: Spread | None, spec: str) -> str:
        return "n/a" if spread is None else spread.format(spec)

    print("| configuration | msg/s | vs one process | cores busy: server | smtp-source | "
          "machine | server ÷ cores left | server CPU | switches/msg | user share | "
          "parent cores | spread: CPU | messages |")  # fmt: skip
    print("|---" * 13 + "|")
    for name in names:
        cells = [
            name,
            show(per_row(rounds, name, lambda r: messages / r["wall"]), ",.0f"),
            show(paired_ratio(rounds, names[0], name, lambda r: r["wall"]), ".2f"),
            show(per_row(rounds, name, lambda r: r["server"] / r["wall"]), ".2f"),
            show(per_row(rounds, name, lambda r: r["client"] / r["wall"]), ".2f"),
            show(per_row(rounds, name, lambda r: r["machine"] / r["wall"]), ".2f"),
            show(per_row(rounds, name, _share), ".2f"),
            show(per_row(rounds, name, lambda r: r["server"] / messages * 1e6), ".0f") + " µs/msg",
            show(per_row(rounds, name, lambda r: r["switches"]), ".2f"),
            show(per_row(rounds, name, lambda r: r["user"]), ".2f"),
        ]
        if name == names[0]:
            cells += ["", "", ""]
        else:
            cells.append(show(per_row(rounds, name, lambda r: r["parent"] / r["wall"]), ".2f"))
            cells.append(show(per_row(rounds, name, lambda r: r["spread"]), ".2f"))
            cells.append(show(per_row(rounds, name, lambda r: r["messages"]), ".2f"))
        print("| " + " | ".join(cells) + " |")
    if len(names) > 2:  # this tree's workers against --other-src's, paired per round
        speed = paired_ratio(rounds, names[2], names[1], lambda r: r["wall"])
        cpu = paired_ratio(rounds, names[1], names[2], lambda r: r["server"])
        print(f"\n{names[1]} against {names[2]}, paired: msg/s {show(speed, '.2f')}x, "
              f"server CPU per message {show(cpu, '.2f')}x")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.workers < 2:  # serve --workers 1 is one process: the serve row again
        parser.error("--workers needs 2 or more (serve --workers 1 is one process)")
    sessions = [int(value) for value in args.sessions.split(",")]
    configs: dict[str, tuple[list[str], Path | None]] = {
        "serve": ([], None),
        f"serve --workers {args.workers}": (["--workers", str(args.workers)], None),
    }
    if args.other_src is not None:
        configs[f"--workers {args.workers} from --other-src"] = (
            ["--workers", str(args.workers)],
            args.other_src.resolve(),
        )
    names = list(configs)
    results: dict[int, list[dict[str, Run]]] = {count: [] for count in sessions}
    if args.tmpdir is not None:
        args.tmpdir.mkdir(parents=True, exist_ok=True)
    with (
        contextlib.ExitStack() as stack,
        tempfile.TemporaryDirectory(prefix="bench-workers-", dir=args.tmpdir) as folder,
    ):
        maildirs = {name: Path(folder) / f"m{number}" for number, name in enumerate(names)}
        servers = {
            name: stack.enter_context(_serve(maildirs[name], options, src))
            for name, (options, src) in configs.items()
        }
        for number in range(args.rounds):
            rng = random.Random(args.seed + number)
            began = time.monotonic()
            for count in sessions:
                order = names[:]
                rng.shuffle(order)
                results[count].append(
                    {
                        name: _once(*servers[name][::-1], count, args, maildirs[name])
                        for name in order
                    }
                )
            load = "/".join(f"{value:.2f}" for value in os.getloadavg())
            print(f"round {number + 1}/{args.rounds}: {time.monotonic() - began:.1f} s, "
                  f"load average {load} at end", flush=True)  # fmt: skip
    mode = "a connection per message" if args.new_connections else "-d"
    for count in sessions:
        print(f"\n## smtp-source {mode} -s {count}, {args.messages} messages\n")
        _report(results[count], names, args.messages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
