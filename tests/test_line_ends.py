"""LineEndNormalizer (BDAT content, RFC 3030 §2): CRLF line ends, both twins agree.

The DATA encoder without dot-stuffing and ``.CRLF``: every bare CR and bare LF becomes
CRLF (RFC 5321 §2.3.8), non-empty content ends with CRLF, nothing is refused, and the
output is the same for any chunking and from either twin.
"""

from __future__ import annotations

import platform

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest_datacodec import (
    ALL_NORMALIZERS,
    NORMALIZER_TWINS,
    chunked,
    normalise,
    some_bytes,
)
from smtpproto import LocalProtocolError
from smtpproto.wire.datacodec import (
    CLineEndNormalizer,
    DataEncoder,
    LineEndNormalizer,
    PyDataEncoder,
    PyLineEndNormalizer,
)
from smtpproto.wire.twins import NO_EXTENSIONS

Normalizer = type[PyLineEndNormalizer]


@pytest.fixture(params=NORMALIZER_TWINS)
def norm_cls(request: pytest.FixtureRequest) -> Normalizer:
    """The normaliser class under test: the Python twin, then the compiled twin."""
    return request.param  # type: ignore[no-any-return]


def run(cls: Normalizer, chunks: list[bytes]) -> tuple[bytes, int, int]:
    """The whole output, ``octets_in`` and ``octets_out``."""
    normalizer = cls()
    out = b"".join(normalizer.feed(chunk) for chunk in chunks) + normalizer.finish()
    return out, normalizer.octets_in, normalizer.octets_out


def test_compiled_twin_selected_when_expected() -> None:
    if NO_EXTENSIONS or platform.python_implementation() != "CPython":
        assert LineEndNormalizer is PyLineEndNormalizer
    else:
        assert LineEndNormalizer is CLineEndNormalizer is not None


@pytest.mark.parametrize(
    ("content", "wire"),
    [
        (b"", b""),  # empty content: nothing at all (BDAT 0 LAST)
        (b"a", b"a\r\n"),
        (b"a\r\n", b"a\r\n"),
        (b"a\n", b"a\r\n"),
        (b"a\r", b"a\r\n"),
        (b"\r\r\n", b"\r\n\r\n"),
        (b"\n\r", b"\r\n\r\n"),
        (b".\r\n..x\n.", b".\r\n..x\r\n.\r\n"),  # no dot-stuffing, no ".CRLF"
        (b"\0\xff" + b"x" * 2000, b"\0\xff" + b"x" * 2000 + b"\r\n"),  # nothing refused
    ],
)
def test_line_ends_become_crlf(norm_cls: Normalizer, content: bytes, wire: bytes) -> None:
    assert run(norm_cls, [content]) == (wire, len(content), len(wire))


def test_crlf_split_across_chunks_is_one_line_end(norm_cls: Normalizer) -> None:
    assert run(norm_cls, [b"a\r", b"\nb\r", b"", b"\n"]) == (b"a\r\nb\r\n", 6, 6)
    assert run(norm_cls, [b"a\r", b"\r", b"\n"]) == (b"a\r\n\r\n", 4, 5)


def test_bytes_like_input(norm_cls: Normalizer) -> None:
    chunks = [bytearray(b"a\rb"), memoryview(b"xc\nd")[1:], memoryview(b"e\r\nf")[::1]]
    normalizer = norm_cls()
    out = b"".join(normalizer.feed(chunk) for chunk in chunks) + normalizer.finish()  # type: ignore[arg-type]  # bytes-like on purpose
    assert out == b"a\r\nbc\r\nde\r\nf\r\n"


def test_finish_closes(norm_cls: Normalizer) -> None:
    normalizer = norm_cls()
    assert normalizer.feed(b"a") == b"a" and normalizer.finish() == b"\r\n"
    with pytest.raises(LocalProtocolError, match="closed"):
        normalizer.feed(b"b")
    with pytest.raises(LocalProtocolError, match="closed"):
        normalizer.finish()


def test_is_the_data_encoder_without_stuffing(norm_cls: Normalizer) -> None:
    """One implementation: the DATA encoder's rules 1 and 3, minus stuffing and ``.CRLF``."""
    assert issubclass(PyLineEndNormalizer, PyDataEncoder)
    assert CLineEndNormalizer is None or issubclass(CLineEndNormalizer, DataEncoder)
    content = b"a\rb\n\r\nc"
    encoder = PyDataEncoder()
    assert run(norm_cls, [content])[0] + b".\r\n" == encoder.feed(content) + encoder.finish()


@given(some_bytes, st.data())
def test_matches_the_oracle_for_any_chunking(content: bytes, data: st.DataObject) -> None:
    chunks = data.draw(chunked(content))
    expected = normalise(content)
    for cls in ALL_NORMALIZERS:
        assert run(cls, chunks) == (expected, len(content), len(expected)), cls


@given(st.lists(some_bytes, max_size=8))
def test_twins_agree_chunk_by_chunk(chunks: list[bytes]) -> None:
    """Differential: the same output for every ``feed`` and ``finish`` call."""
    outputs = []
    for cls in ALL_NORMALIZERS:
        normalizer = cls()
        steps = [normalizer.feed(chunk) for chunk in chunks]
        steps.append(normalizer.finish())
        outputs.append((steps, normalizer.octets_in, normalizer.octets_out))
    assert all(output == outputs[0] for output in outputs)
