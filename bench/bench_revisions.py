"""This tree against another installed revision of smtpproto: did a change cost speed?

For refactors (a move, a split, a new boundary) that must not slow anything down. Each
row runs in a fresh interpreter of either environment, through the public API only
(``smtpproto``, ``smtpproto.blocking``), so any two revisions compare. Rounds are
interleaved (the other revision, then this one, the order alternating per round) and
each round gives one paired ratio, this / other; the table prints the median ratio,
the spread of the ratios (min-max and the middle half), and the load average. No
best-of: every round counts.

Rows:

* ``engine lock-step`` / ``engine pipelined``: 2,000 complete transactions in memory
  through ``ClientConnection`` (greeting, EHLO, MAIL, RCPT, DATA, 1 KB, final reply),
  the compiled parser when it was built, every connection made with one ``ClientConfig``
  (as the session drivers do); ``engine, own config``: lock-step, each connection
  with a config of its own (``ClientConnection()``);
* ``blocking send_many`` / ``asyncio send_many``: 2,000 messages of 1 KB over one
  connection to Postfix's ``smtp-sink`` on 127.0.0.1 (skipped when it is not
  installed).

A parsed EHLO reply is cached per ``ClientConfig``; before the layout change the cache
was one for the whole process, so ``engine, own config`` shows what a caller who makes
a config per connection pays now.

Set up the other revision in its own environment, then run::

    git worktree add /tmp/old-src REV
    python3 -m venv /tmp/venv-old && /tmp/venv-old/bin/pip install /tmp/old-src
    .venv/bin/python bench/bench_revisions.py --other /tmp/venv-old/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import BODY, ours

MESSAGES = 2000


def engine_rate(pipelined: bool, *, shared_config: bool = True) -> float:
    """Transactions per second through the client engine, in memory (``bench_engine``'s
    transaction, the compiled parser when it was built)."""
    from smtpproto import ReplyParser

    transaction = ours(ReplyParser, pipelined=pipelined, shared_config=shared_config)
    transaction()  # warm-up
    start = time.perf_counter()
    for _ in range(MESSAGES):
        transaction()
    return MESSAGES / (time.perf_counter() - start)


def send_many_rate(host: str, port: int) -> float:
    """Messages per second with the blocking client's ``send_many`` over one connection."""
    from smtpproto.blocking import SMTPClient

    batch = [("a@example.org", ["b@example.org"], BODY)] * MESSAGES
    start = time.perf_counter()
    with SMTPClient(host, port, tls="none") as client:
        outcomes = client.send_many(batch)
    elapsed = time.perf_counter() - start
    assert len(outcomes) == MESSAGES
    return MESSAGES / elapsed


def asyncio_send_many_rate(host: str, port: int) -> float:
    """Messages per second with the asyncio client's ``send_many`` over one connection."""
    import asyncio

    from smtpproto.asyncio_client import AsyncSMTPClient

    batch = [("a@example.org", ["b@example.org"], BODY)] * MESSAGES

    async def session() -> float:
        start = time.perf_counter()
        async with AsyncSMTPClient(host, port, tls="none") as client:
            outcomes = await client.send_many(batch)
        elapsed = time.perf_counter() - start
        assert len(outcomes) == MESSAGES
        return MESSAGES / elapsed

    return asyncio.run(session())


def child(row: str, host: str, port: int) -> None:
    rate = {
        "engine lock-step": lambda: engine_rate(False),
        "engine pipelined": lambda: engine_rate(True),
        "engine, own config": lambda: engine_rate(False, shared_config=False),
        "blocking send_many": lambda: send_many_rate(host, port),
        "asyncio send_many": lambda: asyncio_send_many_rate(host, port),
    }[row]()
    print(json.dumps(rate))


def measure(python: str, row: str, host: str, port: int) -> float:
    result = subprocess.run(
        [python, "-I", str(Path(__file__).resolve()), "--child", row, host, str(port)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd="/",
    )
    if result.returncode != 0:
        raise SystemExit(f"{python} {row}: {result.stderr.strip()[-2000:]}")
    return float(json.loads(result.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", help="python of the other revision's venv (required)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        row, host, port = args.child
        child(row, host, int(port))
        return
    if not args.other:
        parser.error("--other PYTHON is required")

    from peers import smtp_sink

    rows = [
        "engine lock-step",
        "engine pipelined",
        "engine, own config",
        "blocking send_many",
        "asyncio send_many",
    ]
    ratios: dict[str, list[float]] = {row: [] for row in rows}
    rates: dict[str, tuple[list[float], list[float]]] = {row: ([], []) for row in rows}
    loads = [os.getloadavg()[0]]
    try:
        sink_context = smtp_sink()
        sink = sink_context.__enter__()
        host, port = sink.host, sink.port
    except (FileNotFoundError, RuntimeError) as error:
        print(f"send_many rows skipped: {error}")
        rows = rows[:3]
        sink_context, host, port = None, "127.0.0.1", 0
    try:
        for round_number in range(args.rounds):
            for row in rows:
                order = [(args.other, 0), (sys.executable, 1)]
                if round_number % 2:
                    order.reverse()
                pair = [0.0, 0.0]
                for python, side in order:
                    pair[side] = measure(python, row, host, port)
                    rates[row][side].append(pair[side])
                ratios[row].append(pair[1] / pair[0])
            loads.append(os.getloadavg()[0])
    finally:
        if sink_context is not None:
            sink_context.__exit__(None, None, None)

    print(f"{args.rounds} interleaved rounds; this tree: {sys.executable}; other: {args.other}")
    print(f"load average (1 min) during the run: {min(loads):.2f}-{max(loads):.2f}")
    header = f"{'row':<20} {'other /s':>10} {'this /s':>10} {'this/other':>10}  spread"
    print(header)
    for row in rows:
        values = sorted(ratios[row])
        quartiles = (
            statistics.quantiles(values, n=4, method="inclusive")
            if len(values) > 1
            else [values[0]] * 3
        )
        print(
            f"{row:<20} {statistics.median(rates[row][0]):>10,.0f} "
            f"{statistics.median(rates[row][1]):>10,.0f} {statistics.median(values):>9.3f}x  "
            f"min {values[0]:.3f} / IQR {quartiles[0]:.3f}-{quartiles[2]:.3f} "
            f"/ max {values[-1]:.3f}"
        )


if __name__ == "__main__":
    main()
