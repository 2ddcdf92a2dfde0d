"""The asyncio and trio adapters' runners for ``bench_delivery.py`` (throughput, memory).

``register_all(register, register_memory)`` adds them to a ``bench_delivery`` module's
registries, like ``runners_smtpproto.register_all``. Run directly, this script registers
the blocking runners too and hands over to ``bench_delivery.main`` (same arguments), so
one run measures all three adapters against the peers::

    .venv/bin/python bench/runners_async.py --quick
    .venv/bin/python bench/runners_async.py --runners aiosmtplib,asyncio,trio --no-memory

Each throughput runner opens one session per measurement and sends ``workload.count``
messages over it (``asyncio``/``trio`` with ``send_many``, the ``-sendmail`` rows with one
``sendmail`` per message); the memory runners stream the message in 64 KiB pieces
(``runners_smtpproto.stream_message``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runners_smtpproto import (  # after the path insert
    SESSION_TIMEOUT,
    batch,
    check,
    stream_message,
)

from smtpproto.asyncio_client import AsyncSMTPClient
from smtpproto.trio_client import TrioSMTPClient


def register_all(register: Callable[[str], Any], register_memory: Callable[[str], Any]) -> None:
    """Add the asyncio and trio adapters' runners to ``bench_delivery``'s registries."""

    @register("asyncio")
    def run_asyncio(sink: Any, workload: Any) -> None:
        async def session() -> None:
            async with AsyncSMTPClient(
                sink.host, sink.port, tls="none", timeout=SESSION_TIMEOUT
            ) as client:
                check(await client.send_many(batch(workload)), workload.count)

        asyncio.run(session())

    @register("asyncio-sendmail")
    def run_asyncio_sendmail(sink: Any, workload: Any) -> None:
        async def session() -> None:
            async with AsyncSMTPClient(
                sink.host, sink.port, tls="none", timeout=SESSION_TIMEOUT
            ) as client:
                for _ in range(workload.count):
                    await client.sendmail(workload.sender, workload.recipients, workload.message)

        asyncio.run(session())

    @register("trio")
    def run_trio(sink: Any, workload: Any) -> None:
        async def session() -> None:
            async with TrioSMTPClient(
                sink.host, sink.port, tls="none", timeout=SESSION_TIMEOUT
            ) as client:
                check(await client.send_many(batch(workload)), workload.count)

        trio.run(session)

    @register("trio-sendmail")
    def run_trio_sendmail(sink: Any, workload: Any) -> None:
        async def session() -> None:
            async with TrioSMTPClient(
                sink.host, sink.port, tls="none", timeout=SESSION_TIMEOUT
            ) as client:
                for _ in range(workload.count):
                    await client.sendmail(workload.sender, workload.recipients, workload.message)

        trio.run(session)

    @register_memory("asyncio")
    def memory_asyncio(sink: Any, size: int) -> None:
        import bench_delivery

        async def session() -> None:
            content = stream_message(bench_delivery.make_message, size)
            async with AsyncSMTPClient(
                sink.host, sink.port, tls="none", timeout=SESSION_TIMEOUT
            ) as client:
                await client.sendmail(bench_delivery.SENDER, [bench_delivery.RECIPIENT], content)

        asyncio.run(session())

    @register_memory("trio")
    def memory_trio(sink: Any, size: int) -> None:
        import bench_delivery

        async def session() -> None:
            content = stream_message(bench_delivery.make_message, size)
            async with TrioSMTPClient(
                sink.host, sink.port, tls="none", timeout=SESSION_TIMEOUT
            ) as client:
                await client.sendmail(bench_delivery.SENDER, [bench_delivery.RECIPIENT], content)

        trio.run(session)


def main() -> int:
    import bench_delivery
    import runners_smtpproto

    runners_smtpproto.register_all(bench_delivery.register, bench_delivery.register_memory)
    register_all(bench_delivery.register, bench_delivery.register_memory)
    # The memory child re-runs bench_delivery's file: point it at this script, whose
    # registries know every runner.
    bench_delivery.__file__ = __file__
    return bench_delivery.main()


if __name__ == "__main__":
    sys.exit(main())
