"""Memory per message of ``send_many``: every outcome kept in a list, or streamed to a
callback (``on_outcome``) and dropped (issue 13 part 3).

The blocking client sends N small messages to Postfix's ``smtp-sink`` (a separate
process, so its memory is not counted) under ``tracemalloc``; the peak of traced memory
above the start, divided by N, is the cost of one message that is never given back.
Each mode is run ``--repeat`` times; the table gives the median and the spread.

    .venv/bin/python bench/bench_send_many_memory.py [--messages 2000 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tracemalloc
from collections.abc import Iterator
from typing import Any

from peers import smtp_sink

from smtpproto.blocking import SMTPClient

MESSAGE = b"Subject: memory\r\n\r\n" + b"x" * 200 + b"\r\n"


def _messages(count: int) -> Iterator[tuple[str, list[str], bytes]]:
    for _ in range(count):
        yield ("a@example.org", ["b@example.org"], MESSAGE)


def peak_per_message(host: str, port: int, count: int, stream: bool) -> float:
    """Traced peak above the start, in bytes per message, for one batch of ``count``."""
    kept: Any = None
    seen = 0

    def count_outcome(index: int, outcome: object) -> None:
        nonlocal seen
        seen += 1

    with SMTPClient(host, port, tls="none", timeout=30) as client:
        gc.collect()
        tracemalloc.start()
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        if stream:
            client.send_many(_messages(count), on_outcome=count_outcome)
        else:
            kept = client.send_many(_messages(count))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    done = seen if stream else len(kept)
    assert done == count, (done, count)
    return (peak - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--list-only", action="store_true", help="no streaming run")
    args = parser.parse_args()
    modes = [False] if args.list_only else [False, True]
    with smtp_sink() as sink:
        print(f"{'mode':8} {'messages':>8} {'bytes/msg median':>17} {'min':>8} {'max':>8}")
        for count in args.messages:
            for stream in modes:
                runs = [
                    peak_per_message(sink.host, sink.port, count, stream)
                    for _ in range(args.repeat)
                ]
                name = "stream" if stream else "list"
                print(
                    f"{name:8} {count:8d} {statistics.median(runs):17.1f} "
                    f"{min(runs):8.1f} {max(runs):8.1f}"
                )


if __name__ == "__main__":
    main()
