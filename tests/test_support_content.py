"""``drivers.support``'s look at content held whole: ``all_ascii`` (BODY=8BITMIME,
RFC 6152) and ``canonical_size`` / ``SizeCounter`` (SIZE=, RFC 1870 §3) read a
memoryview of any format, shape or strides by its octets in logical order, in pieces
(no whole copy of a contiguous view), and give what the same octets as bytes give."""

from __future__ import annotations

import itertools
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto.drivers import support
from smtpproto.drivers.support import SizeCounter, all_ascii, canonical_size

OCTETS = st.binary(max_size=64) | st.lists(
    st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b"\x80", b"\xff", b"\0"])
).map(b"".join)


def shapes(data: bytes) -> list[Any]:
    """Memoryviews whose octets in logical order are ``data``."""
    doubled = bytes(b for pair in zip(data, data, strict=True) for b in pair)
    found: list[Any] = [
        memoryview(data),
        memoryview(bytearray(data)),
        memoryview(b"~" + data + b"~")[1:-1],
        memoryview(doubled)[::2],
        memoryview(bytearray(doubled))[1::2],
        memoryview(data).cast("c"),
    ]
    if data and len(data) % 4 == 0:
        found += [
            memoryview(data).cast("I"),
            memoryview(data).cast("B", shape=[len(data) // 4, 4]),
        ]
    return found


@given(data=OCTETS, piece=st.integers(1, 7))
def test_every_form_reads_as_its_octets(data: bytes, piece: int) -> None:
    """Small pieces put every CRLF pair and 8-bit octet across piece boundaries too."""
    with mock.patch.object(support, "_PIECE", piece):
        for form in [data, bytearray(data), *shapes(data)]:
            assert all_ascii(form) is data.isascii()
            assert canonical_size(form) == canonical_size(bytes(data))
    if data.isascii():
        assert all_ascii(data.decode("ascii"))


@given(data=OCTETS, cuts=st.lists(st.integers(0, 64), max_size=6))
def test_size_counter_is_the_same_for_any_cutting(data: bytes, cuts: list[int]) -> None:
    counter = SizeCounter()
    edges = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    for start, end in itertools.pairwise(edges):
        counter.feed(data[start:end])
    assert counter.size() == canonical_size(data)


@pytest.mark.parametrize(
    ("data", "size"),
    [(b"", 0), (b"a", 3), (b"\r", 2), (b"\n", 2), (b"\r\n", 2), (b"a\nb", 6), (b"\r\r\n", 4)],
)
def test_canonical_size_of_known_contents(data: bytes, size: int) -> None:
    assert canonical_size(data) == size
    counter = SizeCounter()
    for octet in data:
        counter.feed(bytes([octet]))
    assert counter.size() == size


def test_what_is_not_held_whole_is_not_looked_into() -> None:
    released = memoryview(b"abc")
    released.release()
    assert not all_ascii(released)  # content_chunks refuses it before MAIL
    assert not all_ascii(iter([b"abc"]))
    assert not all_ascii(object())
