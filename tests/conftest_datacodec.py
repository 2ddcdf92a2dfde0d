"""Helpers shared by the DATA codec tests: the twin lists, an oracle, chunkings.

Imported by ``test_dataenc.py`` and ``test_datadec.py`` (not a pytest conftest: the
fixtures live in those files, parametrised over ``ENCODER_TWINS`` / ``DECODER_TWINS``).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import strategies as st

from smtpproto.wire.datacodec import CDataDecoder, CDataEncoder, PyDataDecoder, PyDataEncoder

ENCODER_TWINS = [pytest.param(PyDataEncoder, id="py")]
if CDataEncoder is not None:
    ENCODER_TWINS.append(pytest.param(CDataEncoder, id="c"))

DECODER_TWINS = [pytest.param(PyDataDecoder, id="py")]
if CDataDecoder is not None:
    DECODER_TWINS.append(pytest.param(CDataDecoder, id="c"))

ALL_ENCODERS: list[type[PyDataEncoder]] = [PyDataEncoder]
if CDataEncoder is not None:
    ALL_ENCODERS.append(CDataEncoder)
ALL_DECODERS: list[type[PyDataDecoder]] = [PyDataDecoder]
if CDataDecoder is not None:
    ALL_DECODERS.append(CDataDecoder)

_ANY_LINE_END = re.compile(rb"\r\n|\r|\n")


def normalise(content: bytes) -> bytes:
    """What the data should decode to: bare CR/LF -> CRLF, non-empty ends with CRLF."""
    text = _ANY_LINE_END.sub(b"\r\n", content)
    if text and not text.endswith(b"\r\n"):
        text += b"\r\n"
    return text


def oracle_encode(content: bytes) -> bytes:
    """An independent, line-by-line statement of RFC 5321 §4.5.2 for whole content."""
    text = normalise(content)
    lines = text.split(b"\r\n")[:-1] if text else []
    stuffed = [b"." + line if line.startswith(b".") else line for line in lines]
    return b"".join(line + b"\r\n" for line in stuffed) + b".\r\n"


# Octets that matter to the codec, weighted so line ends and dots show up often.
interesting_bytes = st.lists(
    st.sampled_from([b"\r", b"\n", b".", b"a", b"\r\n", b"\0", b"\xe9", b" "]),
    max_size=60,
).map(b"".join)
some_bytes = st.one_of(interesting_bytes, st.binary(max_size=80))


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """Split ``data`` at random points (empty chunks included)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    pieces = []
    start = 0
    for cut in [*cuts, len(data)]:
        pieces.append(data[start:cut])
        start = cut
    return pieces
