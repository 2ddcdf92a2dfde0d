"""The concurrency rows: N connections at once from one asyncio process, and their memory.

Each measurement is a fresh process (``python bench/concurrency.py ROW N TOTAL HOST
PORT``, started by ``session``), so one row's heap cannot flatter or burden the next.
The child:

1. warms up: one connection opened, one message sent, closed (first-use imports and
   caches are not counted as per-connection memory);
2. reads its resident set (``measure.rss``), opens N connections concurrently (connect,
   greeting, EHLO), collects garbage and reads it again: the growth divided by N is
   ``rss_open_per_connection``;
3. sends TOTAL messages of 1 KB, split evenly over the N connections, all concurrently
   (``asyncio.gather``), timing that span (wall and ``time.process_time``), then QUITs
   every connection;
4. after the timed span, opens N connections again under ``tracemalloc`` and reports
   the traced Python heap growth divided by N (``heap_open_per_connection``: exact to
   the byte at any N, but blind to memory outside Python's allocator), closes them
   and prints one JSON object.

Resident memory moves in 4 KiB pages, so the RSS figure is meaningful at N = 100 (41
octets of resolution) and coarse at N = 1; the traced heap figure is not (tracemalloc
slows allocation, which is why it runs outside the timed span and apart from the RSS
reading).

Rows (``ROWS``): ``asyncio send_many`` (smtpproto's asyncio client, ``send_many`` per
connection), ``asyncio sendmail`` (``sendmail`` per message) and ``aiosmtplib``
(``sendmail`` per message, the reference).
"""

from __future__ import annotations

import abc
import asyncio
import gc
import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from measure import Sample, rss
from workload import Workload

__all__ = ["REFERENCE", "ROWS", "session"]

TIMEOUT = 600.0
REFERENCE = "aiosmtplib"


class _Client(abc.ABC):
    """One connection of a row: ``open``, ``send`` ``count`` messages, ``close``."""

    def __init__(self, host: str, port: int, work: Workload) -> None:
        self.host, self.port, self.work = host, port, work

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def send(self, count: int) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


class _Smtpproto(_Client):
    many = True

    async def open(self) -> None:
        from smtpproto.asyncio_client import AsyncSMTPClient

        self.client = AsyncSMTPClient(self.host, self.port, tls="none", timeout=TIMEOUT)
        await self.client.connect()

    async def send(self, count: int) -> None:
        work = self.work
        if self.many:
            batch = ((work.sender, work.recipients, work.message) for _ in range(count))
            outcomes = await self.client.send_many(batch)
            if len(outcomes) != count or any(isinstance(o, Exception) for o in outcomes):
                raise RuntimeError(f"send_many: {outcomes[:3]!r}")
        else:
            for _ in range(count):
                await self.client.sendmail(work.sender, work.recipients, work.message)

    async def close(self) -> None:
        await self.client.quit()
        await self.client.aclose()


class _SmtpprotoSendmail(_Smtpproto):
    many = False


class _Aiosmtplib(_Client):
    async def open(self) -> None:
        import aiosmtplib

        self.client = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, timeout=TIMEOUT, start_tls=False
        )
        await self.client.connect()
        await self.client.ehlo()

    async def send(self, count: int) -> None:
        work = self.work
        for _ in range(count):
            await self.client.sendmail(work.sender, list(work.recipients), work.message)

    async def close(self) -> None:
        await self.client.quit()


ROWS: dict[str, type[_Client]] = {
    "asyncio send_many": _Smtpproto,
    "asyncio sendmail": _SmtpprotoSendmail,
    "aiosmtplib": _Aiosmtplib,
}


async def _gather(calls: list[Awaitable[Any]]) -> None:
    await asyncio.gather(*calls)


async def _child(row: str, n: int, total: int, host: str, port: int) -> dict[str, float]:
    work = Workload.of_size(1, 1024)
    make: Callable[[], _Client] = lambda: ROWS[row](host, port, work)  # noqa: E731
    warm = make()
    await warm.open()
    await warm.send(1)
    await warm.close()
    gc.collect()
    base = rss()
    clients = [make() for _ in range(n)]
    await _gather([client.open() for client in clients])
    gc.collect()
    opened = rss()
    shares = [total // n + (index < total % n) for index in range(n)]
    cpu, wall = time.process_time(), time.perf_counter()
    await _gather([client.send(share) for client, share in zip(clients, shares, strict=True)])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await _gather([client.close() for client in clients])
    del clients
    return {
        "messages": total,
        "wall": wall,
        "cpu": cpu,
        "rss_open_per_connection": (opened - base) / n,
        "heap_open_per_connection": await _traced_open(make, n) / n,
    }


async def _traced_open(make: Callable[[], _Client], n: int) -> int:
    """Python heap growth (tracemalloc) while ``n`` connections are opened and held."""
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        clients = [make() for _ in range(n)]
        await _gather([client.open() for client in clients])
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    await _gather([client.close() for client in clients])
    return after - before


def session(row: str, n: int, total: int, host: str, port: int) -> Sample:
    """Measure ``row`` with ``n`` concurrent connections sending ``total`` messages, in
    a fresh process; ``extra`` holds ``rss_open_per_connection`` and
    ``heap_open_per_connection`` (bytes)."""
    if row not in ROWS or n < 1 or total < n:
        raise ValueError(f"bad concurrency row {row!r} x {n} for {total} messages")
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), row, str(n), str(total), host, str(port)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if result.returncode:
        raise RuntimeError(f"concurrency {row} x {n} failed: {result.stderr.strip()[-2000:]}")
    data = json.loads(result.stdout)
    extra = {key: float(data[key]) for key in data if key.endswith("_per_connection")}
    return Sample(int(data["messages"]), float(data["wall"]), float(data["cpu"]), extra)


def main(argv: list[str]) -> int:
    row, n, total, host, port = argv
    print(json.dumps(asyncio.run(_child(row, int(n), int(total), host, int(port)))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
