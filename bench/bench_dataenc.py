"""DATA codec throughput: both encoder and decoder twins vs a ``bytes.replace`` chain.

Body: 10 MB of ASCII text, lines of 1-120 octets ending in CRLF (80 %), LF (15 %) or
CR (5 %), one line in 20 starting with ``.``; fed in 64 KiB chunks. The reference is the
classic non-streaming chain (normalise, stuff, CRLF) on the same chunks: it is not
chunk-invariant and checks nothing, it only sets the bar. Prints MB/s (10**6 octets of
input per second), best of several runs. Run: ``.venv/bin/python bench/bench_dataenc.py``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from smtpproto.wire.datacodec import CDataDecoder, CDataEncoder, PyDataDecoder, PyDataEncoder

BODY_SIZE = 10 * 1000 * 1000
CHUNK = 64 * 1024
RUNS = 5


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


def mb_per_s(run: Callable[[list[bytes]], int], chunks: list[bytes]) -> float:
    size = sum(map(len, chunks))
    best = float("inf")
    for _ in range(RUNS):
        start = time.perf_counter()
        run(chunks)
        best = min(best, time.perf_counter() - start)
    return size / best / 1e6


def main() -> None:
    body = make_body(BODY_SIZE)
    body_chunks = chunks_of(body)
    wire = b"".join(PyDataEncoder().feed(c) for c in body_chunks) + b"\r\n.\r\n"
    wire_chunks = chunks_of(wire)
    reference = mb_per_s(replace_chain, body_chunks)
    rows: list[tuple[str, float]] = [("bytes.replace chain (reference)", reference)]
    rows.append(("DataEncoder, Python twin", mb_per_s(encoder_run(PyDataEncoder), body_chunks)))
    if CDataEncoder is not None:
        rows.append(
            ("DataEncoder, compiled twin", mb_per_s(encoder_run(CDataEncoder), body_chunks))
        )
    rows.append(("DataDecoder, Python twin", mb_per_s(decoder_run(PyDataDecoder), wire_chunks)))
    if CDataDecoder is not None:
        rows.append(
            ("DataDecoder, compiled twin", mb_per_s(decoder_run(CDataDecoder), wire_chunks))
        )
    print(f"10 MB body, mixed line endings, {CHUNK // 1024} KiB chunks, best of {RUNS}")
    for name, speed in rows:
        print(f"  {name:34s} {speed:8.1f} MB/s  ({speed / reference:5.2f}x reference)")
    if CDataEncoder is None:
        print("  (compiled twin not built: run setup.py build_ext --inplace)")


if __name__ == "__main__":
    main()
