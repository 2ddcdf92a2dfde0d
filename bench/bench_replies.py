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

Every reader's result count is checked against the corpus before timing. Every row
(reader x mode, the scaling sizes and the linearity replies) runs once per round, the
rounds interleaved and each round's order shuffled (``micro.run_interleaved``); a row's
rate is its work over the total time of its repetitions in that round. Printed: the
median over the rounds with the min-max, and ratios paired within each round (vs
aiosmtplib, vs smtplib), then the median of those ratios: never a best-of. Then a
scaling table (64 to 16,384 replies in one buffer) and a one-byte linearity table (one
reply of 100 vs 1,000 lines, fed a byte at a time, in ns per byte). The load average
around each round is printed. Numbers are for comparison on one machine, never
assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import smtplib
import sys
from collections.abc import Callable, Sequence

from micro import paired_ratio, rate_for, run_interleaved, spread_of

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


# -- the rows ---------------------------------------------------------------------------


def human(rate: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if rate >= size:
            return f"{rate / size:.2f}{unit}"
    return f"{rate:.1f}"


def _checked(name: str, run: Runner, chunks: Sequence[bytes], count: int, what: str) -> None:
    got = run(chunks)
    if got != count:
        raise SystemExit(f"{name} read {got} replies ({what}), expected {count}")


def _row(run: Runner, chunks: Sequence[bytes], work: float, budget: float) -> Callable[[], float]:
    return lambda: rate_for(lambda: run(chunks), work, budget)


def _ratio(rounds: Sequence[dict[str, float]], row: str, reference: str) -> str:
    spread = paired_ratio(rounds, row, reference)
    return "-" if spread is None else spread.format(".2f", "x")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller corpus, shorter runs")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (7)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-round order")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    budget = 0.02 if args.quick else 0.1
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
    byte_data = b"".join(corpus(byte_replies))
    modes: dict[str, tuple[list[bytes], int, int]] = {
        "buffer": ([whole], replies, len(whole)),
        "reply": (replies_list, replies, len(whole)),
        "byte": (
            [byte_data[i : i + 1] for i in range(len(byte_data))],
            byte_replies,
            len(byte_data),
        ),
    }
    sizes = [64, 256, 1024, 4096, 16384]
    lengths = (100, 1000)
    rows: dict[str, Callable[[], float]] = {}
    octets: dict[str, int] = {}
    for name, run in readers.items():
        for mode, (chunks, count, size) in modes.items():
            _checked(name, run, chunks, count, f"{mode} mode")
            rows[f"{name}|{mode}"] = _row(run, chunks, count, budget)
            octets[f"{name}|{mode}"] = size
        for size in sizes:
            chunks = [b"".join(corpus(size))]
            _checked(name, run, chunks, size, f"{size} in one buffer")
            rows[f"{name}|scale{size}"] = _row(run, chunks, size, budget)
        for lines in lengths:
            reply = b"250-PIPELINING\r\n" * (lines - 1) + b"250 CHUNKING\r\n"
            chunks = [reply[i : i + 1] for i in range(len(reply))]
            _checked(name, run, chunks, 1, f"a {lines}-line reply a byte at a time")
            rows[f"{name}|lines{lines}"] = _row(run, chunks, len(reply), budget)  # octets/s

    print(f"Python {sys.version.split()[0]}; corpus {replies} replies ({len(whole)} octets)")
    print(f"byte mode: {byte_replies} replies ({len(byte_data)} octets)")
    print(f"{args.rounds} interleaved rounds of {len(rows)} rows, seed {args.seed}\n")
    rounds = run_interleaved(rows, args.rounds, args.seed)

    print("\nmedian over the rounds (min-max); ratios paired within each round")
    print("| reader | mode | replies/s | MB/s | vs aiosmtplib | vs smtplib |")
    print("|---|---|---|---|---|---|")
    for mode in modes:
        for name in readers:
            row = f"{name}|{mode}"
            rate = spread_of(rounds, row)
            megabytes = rate.median * octets[row] / modes[mode][1] / 1e6
            vs_aio = _ratio(rounds, row, f"aiosmtplib|{mode}")
            vs_std = _ratio(rounds, row, f"smtplib|{mode}")
            print(
                f"| {name} | {mode} | {human(rate.median)} ({human(rate.low)}-"
                f"{human(rate.high)}) | {megabytes:.2f} | {vs_aio} | {vs_std} |"
            )

    print("\nscaling: replies/s with N replies in one buffer (median); 16384/64 paired")
    print("| reader | " + " | ".join(str(n) for n in sizes) + " | 16384/64 |")
    print("|---|" + "---|" * (len(sizes) + 1))
    for name in readers:
        cells = [human(spread_of(rounds, f"{name}|scale{n}").median) for n in sizes]
        ratio = _ratio(rounds, f"{name}|scale{sizes[-1]}", f"{name}|scale{sizes[0]}")
        print(f"| {name} | " + " | ".join(cells) + f" | {ratio} |")

    print("\none-byte linearity: one multiline reply fed a byte at a time, ns per byte (median)")
    print("| reader | 100 lines | 1000 lines | 1000/100 per byte (paired) |")
    print("|---|---|---|---|")
    for name in readers:
        short, long = (spread_of(rounds, f"{name}|lines{n}") for n in lengths)
        # ns per byte is 1e9 / (octets/s): the per-byte ratio is the inverse rate ratio
        inverse = paired_ratio(rounds, f"{name}|lines{lengths[0]}", f"{name}|lines{lengths[1]}")
        assert inverse is not None
        print(
            f"| {name} | {1e9 / short.median:.1f} | {1e9 / long.median:.1f} | "
            f"{inverse.format('.2f', 'x')} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
