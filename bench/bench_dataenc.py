"""DATA codec throughput: both encoder and decoder twins vs a ``bytes.replace`` chain.

Body: 10 MB of ASCII text, lines of 1-120 octets ending in CRLF (80 %), LF (15 %) or
CR (5 %), one line in 20 starting with ``.``; fed in 64 KiB chunks. The reference is the
classic non-streaming chain (normalise, stuff, CRLF) on the same chunks: it is not
chunk-invariant and checks nothing, it only sets the bar. Every row runs once per round,
rounds interleaved, each round in a shuffled order (``micro.run_interleaved``); prints
MB/s (10**6 octets of input per second) as the median over the rounds with the min-max,
and each row's ratio to the reference paired within each round (median, min-max), with
the load average around each round. Never a best-of.
Run: ``.venv/bin/python bench/bench_dataenc.py [--rounds 7] [--quick]``.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable

from micro import paired_ratio, rate_for, run_interleaved, spread_of

from smtpproto.wire.datacodec import CDataDecoder, CDataEncoder, PyDataDecoder, PyDataEncoder

BODY_SIZE = 10 * 1000 * 1000
CHUNK = 64 * 1024
RUNS = 3  # repetitions per row per round
REFERENCE = "bytes.replace chain (reference)"


def make_body(size: int, seed: int = 5321) -> bytes:
    rnd = random.Random(seed)
    words = [b"lorem", b"ipsum", b"dolor", b"sit", b"amet", b"smtp", b"=3D", b"<a>", b"x"]
    parts: list[bytes] = []
    total = 0
    while total < size:
        line = b" ".join(rnd.choice(words) for _ in range(rnd.randint(0, 20)))[:120]
        if rnd.random() < 0.05:
            line = b"." + line
        end = rnd.choices([b"\r\n", b"\n", b"\r"], weights=[80, 15, 5])[0]
        parts.append(line + end)
        total += len(line) + len(end)
    return b"".join(parts)[:size]


def chunks_of(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def replace_chain(chunks: list[bytes]) -> int:
    out = 0
    for chunk in chunks:
        text = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        out += len(text.replace(b"\n.", b"\n..").replace(b"\n", b"\r\n"))
    return out


def encoder_run(cls: type[PyDataEncoder]) -> Callable[[list[bytes]], int]:
    def run(chunks: list[bytes]) -> int:
        encoder = cls()
        out = 0
        for chunk in chunks:
            out += len(encoder.feed(chunk))
        return out + len(encoder.finish())

    return run


def decoder_run(cls: type[PyDataDecoder]) -> Callable[[list[bytes]], int]:
    def run(chunks: list[bytes]) -> int:
        decoder = cls(max_line_length=None)
        out = 0
        for chunk in chunks:
            content, done = decoder.feed(chunk)
            out += len(content)
        assert done, "the benchmark wire must end with the terminator"
        return out

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (7)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-round order")
    parser.add_argument("--quick", action="store_true", help="a 1 MB body: a smoke run")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    body = make_body(BODY_SIZE // 10 if args.quick else BODY_SIZE)
    body_chunks = chunks_of(body)
    wire = b"".join(PyDataEncoder().feed(c) for c in body_chunks) + b"\r\n.\r\n"
    wire_chunks = chunks_of(wire)
    runs: dict[str, tuple[Callable[[list[bytes]], int], list[bytes]]] = {
        REFERENCE: (replace_chain, body_chunks),
        "DataEncoder, Python twin": (encoder_run(PyDataEncoder), body_chunks),
        "DataDecoder, Python twin": (decoder_run(PyDataDecoder), wire_chunks),
    }
    if CDataEncoder is not None and CDataDecoder is not None:
        runs["DataEncoder, compiled twin"] = (encoder_run(CDataEncoder), body_chunks)
        runs["DataDecoder, compiled twin"] = (decoder_run(CDataDecoder), wire_chunks)
    rows = {
        name: (lambda run=run, chunks=chunks: _mb_per_s(run, chunks))
        for name, (run, chunks) in runs.items()
    }
    print(f"{len(body) / 1e6:.0f} MB body, mixed line endings, {CHUNK // 1024} KiB chunks")
    rounds = run_interleaved(rows, args.rounds, args.seed)
    print("\nMB/s: median over the rounds (min-max); ratio to the reference paired per round")
    for name in runs:
        ratio = paired_ratio(rounds, name, REFERENCE)
        assert ratio is not None
        print(
            f"  {name:34s} {spread_of(rounds, name).format('.1f')} MB/s  "
            f"({ratio.format('.2f', 'x')} reference)"
        )
    if CDataEncoder is None:
        print("  (compiled twin not built: run setup.py build_ext --inplace)")


def _mb_per_s(run: Callable[[list[bytes]], int], chunks: list[bytes]) -> float:
    size = sum(map(len, chunks))
    return rate_for(lambda: run(chunks), size / 1e6, budget=0.0, minimum=RUNS)


if __name__ == "__main__":
    main()
