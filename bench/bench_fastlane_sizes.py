"""``send_many``'s fast lane against the general path, for messages of varied sizes.

A server that advertises SIZE makes every MAIL carry its message's own SIZE= (RFC 1870
§6), so messages of different lengths differ in their MAIL: the fast lane keeps the
value as a slot of its template (docs/design.md §2). This compares, with the blocking
client against the built-in server (``bench/servers.py builtin-drop``, its own
process; DATA, ``chunking=False``, since the server also offers CHUNKING):

* ``lane, varied`` — as shipped: messages of 200-2000 octets (a fixed pseudo-random
  sequence), given as ``bytes``;
* ``general, varied`` — the same messages with the fast lane and ``batch_plan.repeated`` turned
  off (every message made by ``_prepare`` and sent by ``send`` per command: what a
  varied-size batch took before the SIZE slot);
* ``lane, bytearray`` — the varied messages given as ``bytearray``;
* ``lane, 1 KB`` and ``general, 1 KB`` — every message the same 1 KB, for scale;
* ``lane, BDAT varied`` and ``general, BDAT varied`` — the varied messages in BDAT
  windows (``chunking=True``: RSET, MAIL, RCPT and ``BDAT n LAST`` per message, up to
  32 unanswered, RFC 3030 §2), the lane's ``send_bdat_group`` against ``send``.

Every row runs once per round, in a shuffled order; client CPU per message
(``time.process_time``) and messages/s; the median with the min-max over the rounds,
and the per-round paired ratio general/lane of CPU per message.

Run: ``.venv/bin/python bench/bench_fastlane_sizes.py --rounds 7 [--messages 2000]``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from measure import Sample, timed
from peers import free_port, listening
from stats import Spread, paired, per_row

from smtpproto.blocking import SMTPClient
from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers import batch

SENDER = "sender@example.org"
RECIPIENTS = ("rcpt@example.org",)
TIMEOUT = 30.0


def _message(length: int, index: int) -> bytes:
    head = b"Subject: message %d\r\n\r\n" % index
    line = b"The quick brown fox jumps over the lazy dog, again and again, in SMTP.\r\n"
    body = (line * (length // len(line) + 1))[: max(0, length - len(head) - 2)]
    return head + body + b"\r\n"


def _messages(count: int, varied: bool) -> list[bytes]:
    rng = random.Random(1870)
    return [_message(rng.randint(200, 2000) if varied else 1024, i) for i in range(count)]


@contextlib.contextmanager
def _general() -> Iterator[None]:
    """The fast lane and the repeated-envelope shortcut off: the general path."""
    with (
        mock.patch.object(batch.BatchDrivers, "_fast_group", lambda *args: None),
        mock.patch.object(batch.BatchDrivers, "_fast_bdat", lambda *args: None),
        mock.patch.object(batch, "repeated", lambda *args: None),
    ):
        yield


def _row(
    port: int, contents: list[Any], general: bool, chunking: bool = False
) -> Callable[[], Sample]:
    def session() -> None:
        with SMTPClient("127.0.0.1", port, tls="none", timeout=TIMEOUT) as client:
            items = ((SENDER, RECIPIENTS, content) for content in contents)
            outcomes = client.send_many(items, chunking=chunking)
        good = sum(isinstance(o, TransactionResult) and bool(o.delivered) for o in outcomes)
        if good != len(contents):
            raise RuntimeError(f"{good} of {len(contents)} accepted: {outcomes[:3]!r}")

    def run() -> Sample:
        with _general() if general else contextlib.nullcontext():
            return timed(session, len(contents))

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args(argv)
    varied = _messages(args.messages, varied=True)
    fixed = _messages(args.messages, varied=False)
    port = free_port()
    here = Path(__file__).resolve().parent
    server = [sys.executable, str(here / "servers.py"), "builtin-drop", str(port)]
    rows = {
        "lane, varied": _row(port, varied, general=False),
        "general, varied": _row(port, varied, general=True),
        "lane, bytearray": _row(port, [bytearray(m) for m in varied], general=False),
        "lane, 1 KB": _row(port, fixed, general=False),
        "general, 1 KB": _row(port, fixed, general=True),
        "lane, BDAT varied": _row(port, varied, general=False, chunking=True),
        "general, BDAT varied": _row(port, varied, general=True, chunking=True),
    }
    rng = random.Random(args.seed)
    rounds: list[dict[str, Sample]] = []
    with listening(server, port, "builtin-drop"):
        _row(port, varied[:50], general=False)()  # warm-up: imports, first connection
        for number in range(args.rounds):
            order = list(rows)
            rng.shuffle(order)
            rounds.append({name: rows[name]() for name in order})
            print(f"round {number + 1}/{args.rounds}: {', '.join(order)}", file=sys.stderr)

    def cpu(sample: Sample) -> float:
        return sample.cpu_per_message * 1e6

    def rate(sample: Sample) -> float:
        return sample.rate

    print(f"{args.messages} messages per session, {args.rounds} rounds; median (min-max)")
    print("| row | client CPU µs/message | messages/s |")
    print("| --- | ---: | ---: |")
    for name in rows:
        cpu_spread, rate_spread = per_row(rounds, name, cpu), per_row(rounds, name, rate)
        assert cpu_spread is not None and rate_spread is not None
        print(f"| {name} | {cpu_spread.format('.1f')} | {rate_spread.format(',.0f')} |")
    for general, lane in (
        ("general, varied", "lane, varied"),
        ("general, varied", "lane, bytearray"),
        ("general, 1 KB", "lane, 1 KB"),
        ("general, BDAT varied", "lane, BDAT varied"),
    ):
        ratio: Spread | None = paired(rounds, general, lane, cpu)
        assert ratio is not None
        print(f"CPU per message, {general} / {lane}: {ratio.format('.2f', 'x')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
