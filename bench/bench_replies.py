"""Reply-parsing throughput: smtpproto's twins against smtplib and aiosmtplib.

Theory of operation
-------------------
A realistic corpus of server replies (greeting, an 11-line Postfix-like EHLO reply,
single-line 250/354/550/221 replies with RFC 3463 enhanced codes) is parsed entirely in
memory by four readers, in three feeding modes:

* ``buffer``  — the whole corpus in one chunk;
* ``reply``   — one chunk per reply (what a client sees without pipelining);
* ``byte``    — one byte per chunk (worst case; a smaller corpus).

Readers: ``smtpproto`` C twin and Python twin (``feed``); CPython ``smtplib``'s
``SMTP.getreply()`` reading from a ``BytesIO`` placed in ``SMTP.file`` (``byte`` mode
uses a buffered reader over a raw stream that returns one byte per read);
``aiosmtplib``'s ``SMTPProtocol.data_received`` → ``_read_response_from_buffer`` path,
driven by hand with a fresh response future per reply, as ``read_response`` does (no
event loop iteration is timed; ``buffer`` mode calls ``_read_response_from_buffer``
until it returns ``None``, because aiosmtplib parses only one reply per
``data_received``, and hands it a large buffer in 16 KiB pieces because it refuses
more than 32 KiB buffered).

Every reader's result count is checked against the corpus before timing. The best of
several runs is reported; ratios come from the same run. Then a scaling table (64 to
16,384 replies in one buffer) and a one-byte linearity table (one reply of 100 vs
1,000 lines, fed a byte at a time, in ns per byte). Numbers are for comparison on one
machine, never assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import smtplib
import sys
import time
from collections.abc import Callable, Sequence

from smtpproto import CReplyParser, PyReplyParser

GREETING = b"220 mx.example.com ESMTP Postfix (Debian/GNU)\r\n"
EHLO = (
    b"250-mx.example.com\r\n"
    b"250-PIPELINING\r\n"
    b"250-SIZE 10240000\r\n"
    b"250-VRFY\r\n"
    b"250-ETRN\r\n"
    b"250-STARTTLS\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-8BITMIME\r\n"
    b"250-DSN\r\n"
    b"250-SMTPUTF8\r\n"
    b"250 CHUNKING\r\n"
)
SESSION = [
    GREETING,
    EHLO,
    b"250 2.1.0 Ok\r\n",
    b"250 2.1.5 Ok\r\n",
    b"550 5.1.1 <nobody@example.com>: Recipient address rejected: "
    b"User unknown in virtual mailbox table\r\n",
    b"354 End data with <CR><LF>.<CR><LF>\r\n",
    b"250 2.0.0 Ok: queued as 4Xyz12AbCd\r\n",
    b"221 2.0.0 Bye\r\n",
]

Runner = Callable[[Sequence[bytes]], int]

AIOSMTPLIB_PIECE = 16 * 1024


def corpus(replies: int) -> list[bytes]:
    """``replies`` replies cycling through one realistic session."""
    return [SESSION[index % len(SESSION)] for index in range(replies)]


# -- readers: each takes the chunks and returns how many replies it read ----------------


def twin_runner(cls: type[PyReplyParser] | None) -> Runner | None:
    if cls is None:
        return None

    def run(chunks: Sequence[bytes]) -> int:
        parser = cls()
        feed = parser.feed
        count = 0
        for chunk in chunks:
            count += len(feed(chunk))
        return count

    return run


class _OneByteRaw(io.RawIOBase):
    """A raw stream that returns one byte per read, like a trickling socket."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]  # RawIOBase stub
        if self._pos >= len(self._data) or not len(buffer):
            return 0
        buffer[0] = self._data[self._pos]
        self._pos += 1
        return 1


def smtplib_runner(chunks: Sequence[bytes]) -> int:
    client = smtplib.SMTP()
    getreply = client.getreply
    count = 0
    if len(chunks) > 1 and all(len(chunk) == 1 for chunk in chunks):  # byte mode
        client.file = io.BufferedReader(_OneByteRaw(b"".join(chunks)), buffer_size=1)
        while client.file.peek(1):
            getreply()
            count += 1
        return count
    for chunk in chunks:
        client.file = io.BytesIO(chunk)
        end = len(chunk)
        while client.file.tell() < end:
            getreply()
            count += 1
    return count


def aiosmtplib_runner_factory() -> Runner | None:
    try:
        from aiosmtplib.protocol import SMTPProtocol
    except ImportError:
        return None
    loop = asyncio.new_event_loop()

    def run(chunks: Sequence[bytes]) -> int:
        protocol = SMTPProtocol(loop=loop)
        create_future = loop.create_future
        read_more = protocol._read_response_from_buffer
        count = 0
        protocol._response_waiter = create_future()
        protocol._response_pending = True
        for whole in chunks:
            # aiosmtplib refuses more than 32 KiB buffered, so a large buffer is
            # handed over in pieces of at most 16 KiB (its only concession).
            for piece in range(0, len(whole), AIOSMTPLIB_PIECE):
                protocol.data_received(whole[piece : piece + AIOSMTPLIB_PIECE])
                while protocol._response_waiter.done():
                    protocol._response_waiter.result()
                    count += 1
                    protocol._response_waiter = create_future()
                    response = read_more()
                    if response is not None:
                        protocol._response_waiter.set_result(response)
        return count

    return run


# -- timing -------------------------------------------------------------------------------


def best_seconds(run: Runner, chunks: Sequence[bytes], budget: float) -> float:
    """Best wall time of one run, repeated for about ``budget`` seconds (at least 3x)."""
    best = float("inf")
    spent = 0.0
    repeats = 0
    while repeats < 3 or spent < budget:
        began = time.perf_counter()
        run(chunks)
        took = time.perf_counter() - began
        best = min(best, took)
        spent += took
        repeats += 1
    return best


def human(rate: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if rate >= size:
            return f"{rate / size:7.2f}{unit}"
    return f"{rate:8.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller corpus, shorter runs")
    args = parser.parse_args(argv)
    budget = 0.05 if args.quick else 0.3
    replies = 512 if args.quick else 2048
    byte_replies = 32 if args.quick else 128

    readers: dict[str, Runner] = {}
    c_runner = twin_runner(CReplyParser)
    if c_runner is not None:
        readers["smtpproto C"] = c_runner
    py_runner = twin_runner(PyReplyParser)
    assert py_runner is not None
    readers["smtpproto Py"] = py_runner
    readers["smtplib"] = smtplib_runner
    aio_runner = aiosmtplib_runner_factory()
    if aio_runner is not None:
        readers["aiosmtplib"] = aio_runner

    replies_list = corpus(replies)
    whole = b"".join(replies_list)
    byte_list = corpus(byte_replies)
    byte_data = b"".join(byte_list)
    modes: dict[str, tuple[list[bytes], int, int]] = {
        "buffer": ([whole], replies, len(whole)),
        "reply": (replies_list, replies, len(whole)),
        "byte": (
            [byte_data[i : i + 1] for i in range(len(byte_data))],
            byte_replies,
            len(byte_data),
        ),
    }
    print(f"Python {sys.version.split()[0]}; corpus {replies} replies ({len(whole)} octets)")
    print(f"byte mode: {byte_replies} replies ({len(byte_data)} octets)\n")

    rates: dict[tuple[str, str], float] = {}
    header = f"{'reader':<14} {'mode':<7} {'replies/s':>10} {'MB/s':>8}"
    print(f"{header} {'vs aiosmtplib':>14} {'vs smtplib':>11}")
    for mode, (chunks, count, octets) in modes.items():
        for name, run in readers.items():
            got = run(chunks)
            if got != count:
                raise SystemExit(f"{name} read {got} replies in {mode} mode, expected {count}")
            seconds = best_seconds(run, chunks, budget)
            rates[name, mode] = count / seconds
            rates[name, mode + "/bytes"] = octets / seconds
        for name in readers:
            rate = rates[name, mode]
            aio = rates.get(("aiosmtplib", mode))
            std = rates[("smtplib", mode)]
            vs_aio = f"{rate / aio:13.2f}x" if aio else f"{'-':>14}"
            print(
                f"{name:<14} {mode:<7} {human(rate):>10} "
                f"{rates[name, mode + '/bytes'] / 1e6:8.2f} {vs_aio} {rate / std:10.2f}x"
            )
        print()

    sizes = [64, 256, 1024, 4096, 16384]
    print("scaling: replies/s with N replies in one buffer")
    print(f"{'reader':<14} " + " ".join(f"{n:>9}" for n in sizes) + f" {'16384/64':>9}")
    for name, run in readers.items():
        row = []
        for size in sizes:
            chunks = [b"".join(corpus(size))]
            if run(chunks) != size:
                raise SystemExit(f"{name} miscounted at {size}")
            row.append(size / best_seconds(run, chunks, budget))
        print(
            f"{name:<14} "
            + " ".join(f"{human(rate):>9}" for rate in row)
            + f" {row[-1] / row[0]:8.2f}x"
        )

    print("\none-byte linearity: one multiline reply fed a byte at a time, ns per byte")
    print(f"{'reader':<14} {'100 lines':>10} {'1000 lines':>11} {'ratio':>7}")
    for name, run in readers.items():
        per_byte = []
        for lines in (100, 1000):
            reply = b"250-PIPELINING\r\n" * (lines - 1) + b"250 CHUNKING\r\n"
            chunks = [reply[i : i + 1] for i in range(len(reply))]
            if run(chunks) != 1:
                raise SystemExit(f"{name} miscounted the {lines}-line reply")
            per_byte.append(best_seconds(run, chunks, budget) / len(reply) * 1e9)
        print(
            f"{name:<14} {per_byte[0]:10.1f} {per_byte[1]:11.1f} {per_byte[1] / per_byte[0]:6.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
