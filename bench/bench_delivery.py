"""Delivery throughput over loopback against Postfix's ``smtp-sink``, plus peak memory.

Usage (from the repository root, after ``.ci/install-peers``)::

    .venv/bin/python bench/bench_delivery.py            # 2,000 x 1 KB and 100 x 1 MB
    .venv/bin/python bench/bench_delivery.py --quick    # 200 x 1 KB and 10 x 1 MB
    .venv/bin/python bench/bench_delivery.py --runners smtplib,smtp-source --no-memory

Theory of operation
-------------------
Every runner delivers ``count`` identical messages of ``size`` bytes over ONE connection
to a fresh ``smtp-sink`` (PIPELINING and 8BITMIME advertised, nothing stored). The wall
time of the whole session (connect to QUIT) is measured ``--repeat`` times and the best
run is kept; every runner is measured in the same process run, so the ratio columns
compare like with like. Runners are plain functions in ``RUNNERS`` (name -> callable
taking the sink and the workload); adding a client is one decorated function::

    @register("blocking")
    def run_blocking(sink: Sink, workload: Workload) -> None:
        with smtpproto.blocking.connect(sink.host, sink.port) as client: ...

Peak memory: ``MEMORY_RUNNERS`` (name -> callable sending one message of N bytes) run
one at a time in a child process, which reports the growth of its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) across the send. smtplib needs the whole
message as one ``bytes`` and copies it while dot-stuffing, so its number is the baseline
a streaming client is compared with.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import resource
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import Sink, find_postfix_tool, smtp_sink  # after the path insert

SENDER = "bench@example.test"
RECIPIENT = "sink@example.test"
#: Runners whose numbers the others are divided by, in the ratio columns.
BASELINES = ("smtplib", "aiosmtplib", "smtp-source")
SESSION_TIMEOUT = 600.0


@dataclasses.dataclass(frozen=True)
class Workload:
    """``count`` messages of exactly ``size`` bytes (CRLF line ends), one connection."""

    label: str
    count: int
    size: int
    message: bytes
    sender: str = SENDER
    recipients: tuple[str, ...] = (RECIPIENT,)


def make_message(size: int) -> bytes:
    """A plain ASCII message of exactly ``size`` bytes: headers, then 78-octet lines.

    Some body lines start with ``.`` so dot-stuffing (RFC 5321 §4.5.2) is exercised.
    """
    header = (
        f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: benchmark\r\n"
        "Message-ID: <bench@example.test>\r\n\r\n"
    ).encode("ascii")
    if size < len(header) + 2:
        raise ValueError(f"a message needs at least {len(header) + 2} bytes")
    plain = b"x" * 76 + b"\r\n"
    dotted = b"." + b"y" * 75 + b"\r\n"
    block = plain * 9 + dotted
    body_size = size - len(header)
    body = block * (body_size // len(block))
    rest = body_size - len(body)
    body += b"z" * (rest - 2) + b"\r\n" if rest >= 2 else b""
    if len(body) < body_size:  # a single byte left over: widen the last line by one
        body = body[:-2] + b"z\r\n"
    message = header + body
    assert len(message) == size, (len(message), size)
    return message


Runner = Callable[[Sink, Workload], None]
RUNNERS: dict[str, Runner] = {}
MemoryRunner = Callable[[Sink, int], None]
MEMORY_RUNNERS: dict[str, MemoryRunner] = {}


def register(name: str) -> Callable[[Runner], Runner]:
    """Add a throughput runner under ``name``."""

    def decorate(function: Runner) -> Runner:
        RUNNERS[name] = function
        return function

    return decorate


def register_memory(name: str) -> Callable[[MemoryRunner], MemoryRunner]:
    """Add a peak-memory runner (sends one message of the given size) under ``name``."""

    def decorate(function: MemoryRunner) -> MemoryRunner:
        MEMORY_RUNNERS[name] = function
        return function

    return decorate


# -- the peers' clients ----------------------------------------------------------------------


@register("smtplib")
def run_smtplib(sink: Sink, workload: Workload) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=60) as client:
        for _ in range(workload.count):
            client.sendmail(workload.sender, list(workload.recipients), workload.message)


@register("aiosmtplib")
def run_aiosmtplib(sink: Sink, workload: Workload) -> None:
    import aiosmtplib

    async def session() -> None:
        client = aiosmtplib.SMTP(hostname=sink.host, port=sink.port, timeout=60, start_tls=False)
        await client.connect()
        try:
            for _ in range(workload.count):
                await client.sendmail(workload.sender, list(workload.recipients), workload.message)
        finally:
            await client.quit()

    asyncio.run(session())


@register("smtp-source")
def run_smtp_source(sink: Sink, workload: Workload) -> None:
    """Postfix's C client: ``-d`` one connection, ``-s 1`` one session, ``-l`` body size.

    smtp-source writes its own few header lines and a body of ``-l`` bytes, so its
    messages are within a hundred bytes of the others'. It does not pipeline.
    """
    header_size = workload.message.index(b"\r\n\r\n") + 4
    command = [
        str(find_postfix_tool("smtp-source")),
        "-d",
        "-s", "1",
        "-m", str(workload.count),
        "-l", str(workload.size - header_size),
        "-M", "bench.test",
        "-f", workload.sender,
        "-t", workload.recipients[0],
        f"{sink.host}:{sink.port}",
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=SESSION_TIMEOUT, stdin=subprocess.DEVNULL)


@register_memory("smtplib")
def memory_smtplib(sink: Sink, size: int) -> None:
    message = make_message(size)  # smtplib takes the message only as one str/bytes
    with smtplib.SMTP(sink.host, sink.port, timeout=SESSION_TIMEOUT) as client:
        client.sendmail(SENDER, [RECIPIENT], message)


# -- measuring ---------------------------------------------------------------------------------


def measure(runner: Runner, workload: Workload, repeat: int) -> float:
    """Best messages/s over ``repeat`` sessions, each against a fresh smtp-sink."""
    best = 0.0
    for _ in range(repeat):
        with smtp_sink() as sink:
            start = time.perf_counter()
            runner(sink, workload)
            elapsed = time.perf_counter() - start
        best = max(best, workload.count / elapsed)
    return best


def measure_memory(name: str, size: int) -> int:
    """Peak RSS growth in bytes while ``MEMORY_RUNNERS[name]`` sends ``size`` bytes."""
    with smtp_sink() as sink:
        result = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-child",
                name,
                sink.host,
                str(sink.port),
                str(size),
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=SESSION_TIMEOUT,
        )
    return int(json.loads(result.stdout)["growth_bytes"])


def memory_child(name: str, host: str, port: int, size: int) -> None:
    """Child process: report ru_maxrss growth (KiB on Linux) across one send, as JSON."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    MEMORY_RUNNERS[name](Sink(host, port), size)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_bytes": (after - before) * 1024}))


def workloads(quick: bool) -> list[Workload]:
    small, large = (200, 10) if quick else (2000, 100)
    return [
        Workload(f"{small} x 1 KB", small, 1024, make_message(1024)),
        Workload(f"{large} x 1 MB", large, 1024 * 1024, make_message(1024 * 1024)),
    ]


def report(results: dict[str, dict[str, float]]) -> str:
    """A table: messages/s, MB/s and ratios against every baseline that ran."""
    lines = []
    for label, by_runner in results.items():
        baselines = [name for name in BASELINES if name in by_runner]
        size = 1024 if "1 KB" in label else 1024 * 1024
        lines.append(f"== {label} (one connection, best of runs) ==")
        header = f"{'runner':<18}{'msgs/s':>10}{'MB/s':>9}" + "".join(
            f"{'vs ' + name:>16}" for name in baselines
        )
        lines.append(header)
        for name, rate in by_runner.items():
            ratios = "".join(f"{rate / by_runner[base]:>15.2f}x" for base in baselines)
            lines.append(f"{name:<18}{rate:>10.1f}{rate * size / 1e6:>9.1f}{ratios}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 x 1 KB and 10 x 1 MB")
    parser.add_argument("--repeat", type=int, default=3, help="sessions per runner (best kept)")
    parser.add_argument("--runners", help="comma-separated subset of: " + ", ".join(RUNNERS))
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory test")
    parser.add_argument("--memory-mb", type=int, default=100, help="size of the big message")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        name, host, port, size = args.memory_child
        memory_child(name, host, int(port), int(size))
        return 0
    names = args.runners.split(",") if args.runners else list(RUNNERS)
    unknown = [name for name in names if name not in RUNNERS]
    if unknown:
        parser.error(f"unknown runner(s) {unknown}; known: {list(RUNNERS)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    results: dict[str, dict[str, float]] = {}
    for workload in workloads(args.quick):
        results[workload.label] = {
            name: measure(RUNNERS[name], workload, args.repeat) for name in names
        }
    print(report(results))
    memory: dict[str, int] = {}
    if not args.no_memory:
        size = args.memory_mb * 1024 * 1024
        print(f"== peak RSS growth while sending one {args.memory_mb} MB message ==")
        for name in MEMORY_RUNNERS:
            memory[name] = measure_memory(name, size)
            print(f"{name:<14}{memory[name] / 2**20:>10.1f} MiB")
    if args.json:
        args.json.write_text(json.dumps({"throughput": results, "memory_bytes": memory}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
