"""Atheris harness for the reply parser twins.

Theory of operation
-------------------
Each input is ``options byte`` + ``chunking byte`` + the bytes a server might send.
The options byte picks limits and ``allow_bare_lf``; the chunking byte seeds a
deterministic split of the payload into chunks (1 to 64 octets, or whole). Per input:

1. Differential: the Python twin and the compiled twin, fed the same chunks, give the
   same replies, the same error message and offset, the same ``buffered`` and
   ``failed`` after every call, and the same ``feed_eof`` outcome.
2. Chunking invariance: the Python twin fed the payload whole and fed it in chunks
   produces the same replies and the same pass/fail outcome.
3. Nothing but ``RemoteProtocolError`` escapes: any other exception is left to
   propagate, which atheris reports as a crash (with the input saved).

Run with ``fuzz/run.sh SECONDS``; see fuzz/README.md.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Mapping, Sequence

import atheris  # type: ignore[import-untyped]  # atheris ships no type stubs

with atheris.instrument_imports():
    from smtpproto.wire._reply_py import ReplyParser as PyReplyParser
    from smtpproto.wire.errors import RemoteProtocolError
    from smtpproto.wire.reply import Reply

try:
    from smtpproto.wire._speedups import ReplyParser as CReplyParser
except ImportError as exc:  # the differential is the point: refuse to run without it
    raise SystemExit(
        f"fuzz: the compiled twin is not built ({exc}); "
        "run .venv/bin/python setup.py build_ext --inplace"
    ) from exc

_OPTIONS: list[dict[str, object]] = [
    {},
    {"allow_bare_lf": True},
    {"max_line_length": 512, "max_lines": 3, "max_reply_bytes": 600},
    {"max_line_length": 512, "max_lines": 3, "max_reply_bytes": 600, "allow_bare_lf": True},
    {"max_line_length": 600, "max_lines": 1, "max_reply_bytes": 1024},
    {"max_line_length": 512, "max_lines": 1000, "max_reply_bytes": 512},
    {"max_lines": 5},
    {"max_line_length": 1024, "max_reply_bytes": 2048, "allow_bare_lf": True},
]


def chunks_of(payload: bytes, seed: int) -> list[bytes]:
    """Split ``payload`` deterministically: seed 0 is whole, others random sizes."""
    if seed == 0:
        return [payload]
    rng = random.Random(seed)
    biggest = 1 + seed % 64
    chunks = []
    index = 0
    while index < len(payload):
        size = rng.randint(1, biggest)
        chunks.append(payload[index : index + size])
        index += size
    return chunks


def outcomes(
    cls: type[PyReplyParser] | type[CReplyParser],
    chunks: Sequence[bytes],
    options: Mapping[str, object],
) -> list[object]:
    parser = cls(**options)  # type: ignore[arg-type]  # options are the keywords
    seen: list[object] = []
    for chunk in [*chunks, None]:
        try:
            if chunk is None:
                parser.feed_eof()
                seen.append("eof")
            else:
                seen.append(parser.feed(chunk))
        except RemoteProtocolError as error:
            seen.append(("error", str(error), error.offset))
        seen.append((parser.buffered, parser.failed))
    return seen


def replies_and_failure(
    chunks: Sequence[bytes], options: Mapping[str, object]
) -> tuple[list[Reply], bool]:
    parser = PyReplyParser(**options)  # type: ignore[arg-type]  # options are the keywords
    replies: list[Reply] = []
    try:
        for chunk in chunks:
            replies += parser.feed(chunk)
        parser.feed_eof()
    except RemoteProtocolError:
        return replies, True
    return replies, False


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    options = _OPTIONS[data[0] % len(_OPTIONS)]
    payload = data[2:]
    chunks = chunks_of(payload, data[1])
    python = outcomes(PyReplyParser, chunks, options)
    compiled = outcomes(CReplyParser, chunks, options)
    if python != compiled:
        raise AssertionError(f"twins disagree:\n  python   {python!r}\n  compiled {compiled!r}")
    whole = replies_and_failure([payload], options)
    split = replies_and_failure(chunks, options)
    if whole != split:
        raise AssertionError(f"chunking changed the result:\n  whole {whole!r}\n  split {split!r}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
