"""Peak memory while sending one big message (default 100 MB), per client, to smtp-sink.

Usage (from the repository root, after ``.ci/install-peers``)::

    .venv/bin/python bench/bench_peak_memory.py               # 100 MB, 3 rounds
    .venv/bin/python bench/bench_peak_memory.py --mb 10 --rounds 5

Each measurement is a fresh process (this file with ``--child NAME HOST PORT SIZE``)
that sends one message of SIZE octets over one connection to a Postfix ``smtp-sink``
(which stores nothing) and reports the growth of its peak resident set
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) across the send. smtpproto's clients
stream the content from a generator in 64 KiB pieces (``workload.stream_message``), so
only the client's own buffering counts; smtplib takes a message only as one ``bytes``
and copies it while dot-stuffing, so its growth is the baseline. Rounds are
interleaved (the row order shuffled per round, seeded); the table gives the median and
the min-max over the rounds. Throughput of big messages is ``bench_speed.py
--families client --size 1048576 --messages 100``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import smtplib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import smtp_sink
from stats import Spread
from workload import RECIPIENT, SENDER, make_message, stream_message

from smtpproto.asyncio_client import AsyncSMTPClient
from smtpproto.blocking import SMTPClient
from smtpproto.trio_client import TrioSMTPClient

TIMEOUT = 600.0


def _smtplib(host: str, port: int, size: int) -> None:
    message = make_message(size)  # smtplib takes the message only as one str/bytes
    with smtplib.SMTP(host, port, timeout=TIMEOUT) as client:
        client.sendmail(SENDER, [RECIPIENT], message)


def _blocking(host: str, port: int, size: int) -> None:
    with SMTPClient(host, port, tls="none", timeout=TIMEOUT) as client:
        client.sendmail(SENDER, [RECIPIENT], stream_message(size))


def _asyncio(host: str, port: int, size: int) -> None:
    async def session() -> None:
        async with AsyncSMTPClient(host, port, tls="none", timeout=TIMEOUT) as client:
            await client.sendmail(SENDER, [RECIPIENT], stream_message(size))

    asyncio.run(session())


def _trio(host: str, port: int, size: int) -> None:
    async def session() -> None:
        async with TrioSMTPClient(host, port, tls="none", timeout=TIMEOUT) as client:
            await client.sendmail(SENDER, [RECIPIENT], stream_message(size))

    trio.run(session)


ROWS: dict[str, Callable[[str, int, int], None]] = {
    "smtplib": _smtplib,
    "blocking": _blocking,
    "asyncio": _asyncio,
    "trio": _trio,
}


def _child(name: str, host: str, port: int, size: int) -> None:
    """Report ru_maxrss growth (KiB on Linux) across one send, as JSON bytes."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ROWS[name](host, port, size)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_bytes": (after - before) * 1024}))


def _measure(name: str, host: str, port: int, size: int) -> int:
    argv = [sys.executable, __file__, "--child", name, host, str(port), str(size)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if result.returncode:
        raise RuntimeError(f"{name} failed: {result.stderr.strip()[-2000:]}")
    return int(json.loads(result.stdout)["growth_bytes"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mb", type=int, default=100, help="message size in MiB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        name, host, port, size = args.child
        _child(name, host, int(port), int(size))
        return 0
    if args.rounds < 1 or args.mb < 1:
        parser.error("--rounds and --mb must be at least 1")
    size = args.mb * 1024 * 1024
    growth: dict[str, list[float]] = {name: [] for name in ROWS}
    with smtp_sink() as sink:
        for number in range(args.rounds):
            order = list(ROWS)
            random.Random(args.seed + number).shuffle(order)
            for name in order:
                growth[name].append(_measure(name, sink.host, sink.port, size) / 2**20)
    print(f"peak RSS growth sending one {args.mb} MiB message, {args.rounds} rounds")
    print("| client | MiB, median (min-max) |\n|---|---|")
    for name, values in growth.items():
        print(f"| {name} | {Spread.of(values).format('.1f')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
