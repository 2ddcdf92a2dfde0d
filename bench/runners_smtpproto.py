"""smtpproto's runners for ``bench_delivery.py`` (throughput and peak memory).

``register_all(register, register_memory)`` adds them to a ``bench_delivery`` module's
registries. Run directly, this script imports ``bench_delivery``, registers the runners
and hands over to its ``main`` (same arguments)::

    .venv/bin/python bench/runners_smtpproto.py --quick
    .venv/bin/python bench/runners_smtpproto.py --runners smtplib,aiosmtplib,blocking

``blocking`` sends the N messages with ``send_many`` (one round trip per message with
PIPELINING, RFC 2920 §3.1); ``blocking-sendmail`` calls ``sendmail`` once per message
(two round trips each). The memory runner streams the message from a generator in
64 KiB pieces (the same bytes ``bench_delivery.make_message`` builds), so only the
client's own buffering counts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from smtpproto import TransactionResult
from smtpproto.blocking import SMTPClient

# ``bench_delivery`` (imported where used) lives next to this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))

SESSION_TIMEOUT = 600.0
PIECE = 64 * 1024


def stream_message(make_message: Callable[[int], bytes], size: int) -> Iterator[bytes]:
    """The bytes of ``make_message(size)`` in pieces, never holding the whole message.

    ``make_message`` repeats a 780-octet block after its header; one small message gives
    the header and the block, and the tail is built exactly as ``make_message`` does.
    """
    sample = make_message(1024 * 16)
    header_end = sample.index(b"\r\n\r\n") + 4
    header = sample[:header_end]
    block = sample[header_end : header_end + 780]
    body_size = size - len(header)
    yield header
    whole_blocks = body_size // len(block)
    per_piece = max(1, PIECE // len(block))
    piece = block * per_piece
    for _ in range(whole_blocks // per_piece):
        yield piece
    yield block * (whole_blocks % per_piece)
    rest = body_size - whole_blocks * len(block)
    tail = b"z" * (rest - 2) + b"\r\n" if rest >= 2 else b""
    if rest == 1:  # make_message widens the last line by one octet
        yield tail
        raise ValueError("a one-octet remainder is not supported by the streaming twin")
    yield tail


def batch(workload: Any) -> Iterator[tuple[str, tuple[str, ...], bytes]]:
    """``workload.count`` messages for ``send_many``, made lazily."""
    for _ in range(workload.count):
        yield workload.sender, workload.recipients, workload.message


def check(outcomes: list[Any], count: int) -> None:
    """Every message of a ``send_many`` run was accepted (else the number is void)."""
    accepted = sum(isinstance(outcome, TransactionResult) for outcome in outcomes)
    if accepted != count:
        raise RuntimeError(f"send_many: {accepted} of {count} accepted: {outcomes[:3]!r}")


Decorator = Callable[[Callable[..., None]], Callable[..., None]]


def register_all(
    register: Callable[[str], Decorator], register_memory: Callable[[str], Decorator]
) -> None:
    """Add the blocking adapter's runners to ``bench_delivery``'s registries."""

    @register("blocking")
    def run_blocking(sink: Any, workload: Any) -> None:
        with SMTPClient(sink.host, sink.port, tls="none", timeout=SESSION_TIMEOUT) as client:
            check(client.send_many(batch(workload)), workload.count)

    @register("blocking-sendmail")
    def run_blocking_sendmail(sink: Any, workload: Any) -> None:
        with SMTPClient(sink.host, sink.port, tls="none", timeout=SESSION_TIMEOUT) as client:
            for _ in range(workload.count):
                client.sendmail(workload.sender, workload.recipients, workload.message)

    @register_memory("blocking")
    def memory_blocking(sink: Any, size: int) -> None:
        import bench_delivery

        content = stream_message(bench_delivery.make_message, size)
        with SMTPClient(sink.host, sink.port, tls="none", timeout=SESSION_TIMEOUT) as client:
            client.sendmail(bench_delivery.SENDER, [bench_delivery.RECIPIENT], content)


def main() -> int:
    import bench_delivery

    register_all(bench_delivery.register, bench_delivery.register_memory)
    # The memory child re-runs bench_delivery.py itself, so its registry must know our
    # runner too: point it at this script instead.
    bench_delivery.__file__ = __file__
    return bench_delivery.main()


if __name__ == "__main__":
    sys.exit(main())
