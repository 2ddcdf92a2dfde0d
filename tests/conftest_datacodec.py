"""Helpers shared by the DATA codec tests: the twin lists, an oracle, chunkings.

Imported by ``test_dataenc.py``, ``test_datadec.py`` and ``test_line_ends.py`` (not a
pytest conftest: the fixtures live in those files, parametrised over ``ENCODER_TWINS`` /
``DECODER_TWINS`` / ``NORMALIZER_TWINS``), and by ``conftest.py`` for the reply parser
twins. A compiled twin is listed whenever it is expected (CPython without
``SMTPPROTO_NO_EXTENSIONS``); when it was not built it is listed as ``MissingTwin``, so
its tests fail with ``MISSING_TWIN`` instead of disappearing.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import pytest
from hypothesis import strategies as st

from smtpproto.wire.datacodec import (
    CDataDecoder,
    CDataEncoder,
    CLineEndNormalizer,
    PyDataDecoder,
    PyDataEncoder,
    PyLineEndNormalizer,
)
from smtpproto.wire.twins import USE_EXTENSIONS

T = TypeVar("T")

#: Why a test of a compiled twin fails when the build is missing.
MISSING_TWIN = "compiled twin not built; build it or set SMTPPROTO_NO_EXTENSIONS=1"


class MissingTwin:
    """Stands for a compiled twin that should exist but was not built: using it fails
    the test (``conftest._compiled_twins_built`` fails a parametrised test at once)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pytest.fail(MISSING_TWIN, pytrace=False)


def twins(python: type[T], compiled: type[T] | None) -> list[type[T]]:
    """The twins under test: the Python one, then the compiled one when expected
    (``USE_EXTENSIONS``); a missing build is a ``MissingTwin`` that fails when used."""
    if not USE_EXTENSIONS:
        return [python]
    return [python, compiled if compiled is not None else MissingTwin]  # type: ignore[list-item]


def twin_params(python: type[T], compiled: type[T] | None) -> list[Any]:
    """``twins`` as pytest parameters with the ids ``py`` and ``c``."""
    found = twins(python, compiled)
    return [
        pytest.param(cls, id=name)
        for cls, name in zip(found, ["py", "c"][: len(found)], strict=True)
    ]


ENCODER_TWINS = twin_params(PyDataEncoder, CDataEncoder)
DECODER_TWINS = twin_params(PyDataDecoder, CDataDecoder)
NORMALIZER_TWINS = twin_params(PyLineEndNormalizer, CLineEndNormalizer)

ALL_ENCODERS: list[type[PyDataEncoder]] = twins(PyDataEncoder, CDataEncoder)
ALL_DECODERS: list[type[PyDataDecoder]] = twins(PyDataDecoder, CDataDecoder)
ALL_NORMALIZERS: list[type[PyLineEndNormalizer]] = twins(PyLineEndNormalizer, CLineEndNormalizer)

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
