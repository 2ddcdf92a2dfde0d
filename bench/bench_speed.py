"""Issue 14's speed table from one run: client, concurrency and server rows, interleaved.

Usage (from the repository root, after ``.ci/install-peers``)::

    .venv/bin/python bench/bench_speed.py --rounds 7        # the full run (minutes)
    .venv/bin/python bench/bench_speed.py --quick           # a smoke run (seconds)
    .venv/bin/python bench/bench_speed.py --families client --rounds 11

Theory of operation
-------------------
Three families of rows (bench/README.md describes each row):

* ``client`` (``client_rows.py``): one connection, ``--messages`` messages of 1 KB to
  a Postfix ``smtp-sink`` on 127.0.0.1, per client; the references are a raw
  pipelined-socket floor (``floor.py``), ``smtp-source``, smtplib and aiosmtplib;
* ``concurrency`` (``concurrency.py``): 1, 10 and 100 connections at once from one
  asyncio process, ``--concurrent-messages`` messages in all, each measurement in a
  fresh process that also reports the RSS growth per open connection;
* ``server`` (``server_rows.py``): ``smtp-source -d -s SESSIONS -l LENGTH`` into each
  server (smtp-sink, the built-in server and aiosmtpd dropping messages,
  ``smtpproto serve --maildir`` and aiosmtpd storing into a Maildir, and ``serve
  --workers`` when that option exists), the server's CPU read from ``/proc``.

Every row runs once per round, a family's rows back to back, the families' order
rotated and each family's rows shuffled per round with ``--seed`` (``rounds.py``).
Before the first round every client row runs once unmeasured (imports, caches, the
sink's first connections). The tables then give, per
row, the median over the rounds and the min-max, and every comparison as the median of
per-round *paired* ratios (``stats.py``): the machine's load moves both sides of a pair
together, so ratios stay meaningful on a busy machine where absolute rates do not. The
load average is printed at the start and end of every round. Never best-of.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import client_rows
import concurrency
import report
import server_rows
from peers import smtp_sink
from rounds import Results, Task, run_rounds
from workload import Workload

FAMILIES = ("client", "concurrency", "server")
LEVELS = (1, 10, 100)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, help="interleaved rounds (7; --quick: 1)")
    parser.add_argument(
        "--quick", action="store_true", help="1 round, 200/100/200 messages: a smoke run"
    )
    parser.add_argument("--seed", type=int, default=14, help="seed of the per-round order")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset")
    parser.add_argument("--messages", type=int, help="client rows, per session (2000)")
    parser.add_argument("--size", type=int, default=1024, help="client message size, octets")
    parser.add_argument("--concurrent-messages", type=int, help="per measurement (2000)")
    parser.add_argument("--server-messages", type=int, help="per smtp-source run (4000)")
    parser.add_argument("--source-sessions", type=int, default=4, help="smtp-source -s")
    parser.add_argument("--source-length", type=int, default=1024, help="smtp-source -l")
    parser.add_argument(
        "--tmpdir",
        type=Path,
        help="where the Maildirs go, made if missing (default: the system's temp folder)",
    )
    parser.add_argument("--json", type=Path, help="also write every sample and summary here")
    return parser


def _options(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    for name, full, quick in (
        ("rounds", 7, 1),
        ("messages", 2000, 200),
        ("concurrent_messages", 2000, 100),
        ("server_messages", 4000, 200),
    ):
        if getattr(args, name) is None:  # given on the command line: kept, also with --quick
            setattr(args, name, quick if args.quick else full)
    families = args.families.split(",")
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families {unknown}; known: {list(FAMILIES)}")
    args.families = [family for family in FAMILIES if family in families]
    if args.rounds < 1 or min(args.messages, args.server_messages, args.source_sessions) < 1:
        parser.error("--rounds, --messages, --server-messages, --source-sessions must be >= 1")
    if args.concurrent_messages < max(LEVELS):
        parser.error(f"--concurrent-messages must be at least {max(LEVELS)}")
    return args


def _describe() -> str:
    import smtpproto

    try:
        revision = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        revision = "unknown"
    parser = smtpproto.ReplyParser.__module__.rsplit(".", 1)[-1]
    return (
        f"smtpproto {smtpproto.__version__} at {revision} (reply parser: {parser}); "
        f"Python {sys.version.split()[0]}; {sys.executable}"
    )


def _tasks(
    args: argparse.Namespace, host: str, port: int, servers: dict[str, object]
) -> list[Task]:
    tasks: list[Task] = []
    if "client" in args.families:
        work = Workload.of_size(args.messages, args.size)
        for name, row in client_rows.ROWS.items():
            tasks.append(Task("client", name, functools.partial(row, host, port, work)))
    if "concurrency" in args.families:
        for name in concurrency.ROWS:
            for level in LEVELS:
                measure = functools.partial(
                    concurrency.session, name, level, args.concurrent_messages, host, port
                )
                tasks.append(Task("concurrency", f"{name} x{level}", measure))
    if "server" in args.families:
        load = server_rows.SourceLoad(
            args.server_messages, args.source_sessions, args.source_length
        )
        for name, server in servers.items():
            assert isinstance(server, server_rows.Server)
            measure = functools.partial(
                server_rows.source_session, server, server_rows.row_load(name, load)
            )
            tasks.append(Task("server", name, measure))
    return tasks


def _warm_up(args: argparse.Namespace, host: str, port: int) -> None:
    if "client" in args.families:
        work = Workload.of_size(min(args.messages, 50), args.size)
        for row in client_rows.ROWS.values():
            row(host, port, work)


def _print_tables(args: argparse.Namespace, results: Results, note: str | None) -> None:
    sections = [("client", "One connection, 1 KB messages, to smtp-sink")]
    sections += [("concurrency", "Concurrent connections from one asyncio process")]
    sections += [("server", "Server role: smtp-source into each server")]
    for family, title in sections:
        rounds = results.family(family)
        if not rounds:
            continue
        print(f"\n## {title} ({len(rounds)} rounds)\n")
        if family == "client":
            lines = report.client_table(rounds, client_rows.REFERENCES)
        elif family == "concurrency":
            lines = report.concurrency_table(rounds, concurrency.REFERENCE, LEVELS)
        else:
            lines = report.server_table(rounds, server_rows.PAIRS)
        print("\n".join(lines))
    if note is not None and "server" in args.families:
        print(f"\nNote: {note}.")
    print("\n## Load average\n")
    print("\n".join(report.load_lines(results)))
    if set(args.families) == set(FAMILIES):
        print("\n## Issue 14's table, measured in this run\n")
        wide = (server_rows.WORKERS_ROWS[1], server_rows.PAIRS[server_rows.WORKERS_ROWS[1]])
        print("\n".join(report.issue_table(results, server_rows.WORKERS_ROW, note, wide)))


def _json(results: Results) -> dict[str, object]:
    return {
        "rounds": {
            family: [
                {row: {"messages": s.messages, "wall": s.wall, "cpu": s.cpu, **s.extra}
                 for row, s in measured.items()}
                for measured in rounds
            ]
            for family, rounds in results.rounds.items()
        },
        "loads": results.loads,
        "orders": results.orders,
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = _options(argv)
    print(_describe())
    note = server_rows.workers_note() if "server" in args.families else None
    names = [n for n in server_rows.ROWS if n not in server_rows.WORKERS_ROWS or note is None]
    if note is not None:
        print(f"Note: {note}.")
    if "server" not in args.families:
        names = []
    print(
        f"{args.rounds} rounds, seed {args.seed}; client rows {args.messages} x {args.size} "
        f"octets; concurrency {args.concurrent_messages} messages at N = {LEVELS}; "
        f"server rows smtp-source -d -s {args.source_sessions} -l {args.source_length} "
        f"-m {args.server_messages} (rows ending in -s N: N sessions, "
        f"{server_rows.WIDE_SCALE} times the messages)",
        flush=True,
    )
    if args.tmpdir is not None:
        args.tmpdir.mkdir(parents=True, exist_ok=True)
    with (
        smtp_sink() as sink,
        tempfile.TemporaryDirectory(prefix="bench-speed-", dir=args.tmpdir) as folder,
        server_rows.running(names, Path(folder)) as servers,
    ):
        _warm_up(args, sink.host, sink.port)
        tasks = _tasks(args, sink.host, sink.port, dict(servers))
        results = run_rounds(tasks, args.rounds, args.seed)
    _print_tables(args, results, note)
    if args.json:
        args.json.write_text(json.dumps(_json(results), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
