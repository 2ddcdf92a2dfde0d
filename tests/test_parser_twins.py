"""The parser twins: selection, chunking invariance, differential agreement, linearity.

* The compiled twin must be active whenever it should be (CPython without
  ``SMTPPROTO_NO_EXTENSIONS``): a silently slow install is a failure.
* Any split of a valid stream gives the same replies (hypothesis).
* The Python twin and the compiled module give the same replies, the same error
  message and offset, and the same ``buffered`` after every chunk, on arbitrary bytes
  and chunkings. The compiled module is imported directly, so this also runs in the
  ``SMTPPROTO_NO_EXTENSIONS=1`` pass, where only the selection changes.
* Feeding one byte at a time stays linear (octets examined, counted: never a timing).
* A copy (``copy.copy``, ``copy.deepcopy``, a pickle round trip) of a parser cut
  anywhere in a stream goes on exactly as the original, shares nothing with it, and is
  the same in both twins (``_reply_py``'s state functions, design.md §3).
"""

from __future__ import annotations

import copy
import importlib
import itertools
import os
import pickle
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import smtpproto
from conftest_datacodec import twins
from smtpproto import PyReplyParser, RemoteProtocolError, Reply
from smtpproto.wire.twins import CReplyParser

ParserClass = type[PyReplyParser]

SHOULD_BE_COMPILED = (
    not os.environ.get("SMTPPROTO_NO_EXTENSIONS") and platform.python_implementation() == "CPython"
)


def compiled_twin() -> ParserClass:
    """The compiled ReplyParser, imported directly (not through the selector)."""
    module = importlib.import_module("smtpproto.wire._speedups")
    return module.ReplyParser  # type: ignore[no-any-return]


# -- selection ----------------------------------------------------------------------------


def test_compiled_twin_active_when_it_should_be() -> None:
    if SHOULD_BE_COMPILED:
        assert smtpproto.PARSER_IMPLEMENTATION == "c", "the compiled twin did not load"
        assert smtpproto.ReplyParser is smtpproto.CReplyParser
        assert smtpproto.ReplyParser is not PyReplyParser
        speedups = importlib.import_module("smtpproto.wire._speedups")
        assert speedups._FAST_REPLY, "Reply changed shape: the C twin lost its fast path"
    else:
        assert smtpproto.PARSER_IMPLEMENTATION == "python"
        assert smtpproto.ReplyParser is PyReplyParser
        assert smtpproto.CReplyParser is None


def test_environment_variable_selects_python_twin() -> None:
    code = "import smtpproto; print(smtpproto.PARSER_IMPLEMENTATION)"
    env = dict(os.environ, SMTPPROTO_NO_EXTENSIONS="1")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "python"


def test_compiled_twin_builds_plain_replies() -> None:
    parser = compiled_twin()()
    (reply,) = parser.feed(b"250-a\r\n250 2.0.0 b\r\n")
    assert type(reply) is Reply
    assert reply == Reply(250, (b"a", b"2.0.0 b"))
    assert hash(reply) == hash(Reply(250, (b"a", b"2.0.0 b")))
    assert reply.raw_lines == (b"a", b"2.0.0 b")
    assert sys.getrefcount(reply) == 2  # the name and the call's argument: no leak
    with pytest.raises(AttributeError):
        reply.code = 1


def test_compiled_twin_same_public_api() -> None:
    compiled = compiled_twin()
    public = {name for name in dir(PyReplyParser) if not name.startswith("_")}
    assert public == {"buffered", "failed", "feed", "feed_eof"}
    assert public <= set(dir(compiled))


# -- strategies -----------------------------------------------------------------------------

_TEXT = st.binary(max_size=40).map(lambda raw: raw.replace(b"\n", b"").replace(b"\r", b""))
_CODE = st.sampled_from([220, 221, 250, 251, 354, 421, 450, 500, 535, 550, 554])


@st.composite
def valid_reply_and_value(draw: st.DrawFn) -> tuple[bytes, Reply]:
    """A well-formed reply on the wire (code-only lines included) and its value."""
    code = draw(_CODE)
    texts = draw(st.lists(_TEXT, min_size=1, max_size=6))
    lines = []
    for index, text in enumerate(texts):
        last = index == len(texts) - 1
        if not text and draw(st.booleans()):
            lines.append(b"%d%s\r\n" % (code, b"" if last else b"-"))
        else:
            lines.append(b"%d%s%s\r\n" % (code, b" " if last else b"-", text))
    return b"".join(lines), Reply(code, tuple(texts))


def valid_reply() -> st.SearchStrategy[bytes]:
    return valid_reply_and_value().map(lambda pair: pair[0])


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


_FRAGMENTS = st.one_of(
    valid_reply(),
    st.sampled_from(
        [b"\r", b"\n", b"\r\n", b"250", b"250-", b"250 ", b"251-", b"260 x\r\n", b"\x00", b"\xff"]
    ),
    st.binary(max_size=12),
    st.builds(lambda n: b"x" * n, st.integers(0, 700)),
)
_OPTIONS = st.fixed_dictionaries(
    {
        "max_line_length": st.sampled_from([512, 600, 8192]),
        "max_lines": st.sampled_from([1, 3, 1000]),
        "max_reply_bytes": st.sampled_from([600, 1024, 65536]),
        "allow_bare_lf": st.booleans(),
    }
).filter(lambda o: o["max_reply_bytes"] >= o["max_line_length"])


def run(cls: ParserClass, chunks: Sequence[bytes], options: Mapping[str, object]) -> list[object]:
    """Feed every chunk then EOF; record each call's outcome (replies or the error)."""
    parser = cls(**options)  # type: ignore[arg-type]  # options are the keywords
    outcomes: list[object] = []
    for chunk in [*chunks, None]:
        try:
            if chunk is None:
                parser.feed_eof()
                outcomes.append("eof")
            else:
                outcomes.append(parser.feed(chunk))
        except RemoteProtocolError as error:
            outcomes.append(("error", str(error), error.offset))
        outcomes.append((parser.buffered, parser.failed))
    return outcomes


def replies_and_failure(
    cls: ParserClass, chunks: Sequence[bytes], options: Mapping[str, object]
) -> tuple[list[Reply], bool]:
    """Every reply produced, and whether the stream failed (at any point or at EOF)."""
    parser = cls(**options)  # type: ignore[arg-type]  # options are the keywords
    replies: list[Reply] = []
    try:
        for chunk in chunks:
            replies += parser.feed(chunk)
        parser.feed_eof()
    except RemoteProtocolError:
        return replies, True
    return replies, False


# -- chunking invariance ---------------------------------------------------------------------


# parser_cls is a class, not state: sharing it across generated inputs is safe.
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    replies=st.lists(valid_reply_and_value(), min_size=1, max_size=8),
    cuts=st.lists(st.integers(0)),
)
def test_any_chunking_of_valid_stream_gives_same_replies(
    parser_cls: ParserClass, replies: list[tuple[bytes, Reply]], cuts: list[int]
) -> None:
    data = b"".join(wire for wire, _ in replies)
    whole, whole_failed = replies_and_failure(parser_cls, [data], {})
    assert not whole_failed
    assert whole == [value for _, value in replies]
    chunked, chunked_failed = replies_and_failure(parser_cls, split(data, cuts), {})
    assert chunked == whole
    assert not chunked_failed
    one_byte, _ = replies_and_failure(parser_cls, [data[i : i + 1] for i in range(len(data))], {})
    assert one_byte == whole


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(fragments=st.lists(_FRAGMENTS, max_size=12), cuts=st.lists(st.integers(0)), options=_OPTIONS)
def test_chunking_never_changes_replies_or_failure(
    parser_cls: ParserClass, fragments: list[bytes], cuts: list[int], options: dict[str, object]
) -> None:
    """On arbitrary bytes: the same replies and the same pass/fail for any split.

    (Which rule is reported may differ when a line breaks several: a partial line is
    refused by a size limit before its bad code is seen.)
    """
    data = b"".join(fragments)
    assert replies_and_failure(parser_cls, split(data, cuts), options) == replies_and_failure(
        parser_cls, [data], options
    )


# -- differential ----------------------------------------------------------------------------


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fragments=st.lists(_FRAGMENTS, max_size=12), cuts=st.lists(st.integers(0)), options=_OPTIONS)
def test_twins_agree_on_arbitrary_bytes(
    fragments: list[bytes], cuts: list[int], options: dict[str, object]
) -> None:
    chunks = split(b"".join(fragments), cuts)
    assert run(compiled_twin(), chunks, options) == run(PyReplyParser, chunks, options)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0)))
def test_twins_agree_on_raw_binary(data: bytes, cuts: list[int]) -> None:
    chunks = split(b"250-" + data, cuts)
    for options in ({}, {"allow_bare_lf": True}):
        assert run(compiled_twin(), chunks, options) == run(PyReplyParser, chunks, options)


def test_twins_agree_on_feed_after_clean_eof() -> None:
    outcomes = []
    for cls in (PyReplyParser, compiled_twin()):
        parser = cls()
        parser.feed(b"220 hi\r\n")
        parser.feed_eof()
        outcomes.append(parser.feed(b"250 more\r\n"))
    assert outcomes[0] == outcomes[1] == [Reply(250, (b"more",))]


# -- copies -----------------------------------------------------------------------------------

#: Both twins through the selector (the Python one alone under SMTPPROTO_NO_EXTENSIONS=1).
ALL_PARSERS: list[ParserClass] = twins(PyReplyParser, CReplyParser)

COPIERS = {
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
    "pickle": lambda parser: pickle.loads(pickle.dumps(parser)),
    "pickle protocol 0": lambda parser: pickle.loads(pickle.dumps(parser, protocol=0)),
}


def step(parser: PyReplyParser, chunk: bytes | None) -> object:
    """One call's outcome: the replies, ``"eof"`` or the error; then the counters."""
    try:
        if chunk is None:
            parser.feed_eof()
            outcome: object = "eof"
        else:
            outcome = parser.feed(chunk)
    except RemoteProtocolError as error:
        outcome = ("error", str(error), error.offset)
    return outcome, parser.buffered, parser.failed


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fragments=st.lists(_FRAGMENTS, max_size=12),
    cuts=st.lists(st.integers(0)),
    options=_OPTIONS,
    at=st.integers(0),
    how=st.sampled_from(sorted(COPIERS)),
)
def test_a_copied_parser_goes_on_as_the_original(
    fragments: list[bytes], cuts: list[int], options: dict[str, object], at: int, how: str
) -> None:
    """Copied anywhere — mid-line, mid-reply, failed —, the copy and the original are fed
    the rest in turns, call by call (a shared buffer or line list would show), and give
    the same outcomes; both twins give the same ones."""
    chunks: list[bytes | None] = [*split(b"".join(fragments), cuts), None]
    cut = at % len(chunks)
    traces = []
    for cls in ALL_PARSERS:
        original = cls(**options)  # type: ignore[arg-type]  # options are the keywords
        trace = [step(original, chunk) for chunk in chunks[:cut]]
        copied = COPIERS[how](original)
        assert type(copied) is cls
        for chunk in chunks[cut:]:
            ahead = step(copied, chunk)
            assert step(original, chunk) == ahead
            trace.append(ahead)
        traces.append(trace)
    assert all(trace == traces[0] for trace in traces)


@pytest.mark.parametrize("how", sorted(COPIERS))
def test_a_copied_parser_keeps_its_limits_and_options(parser_cls: ParserClass, how: str) -> None:
    parser = COPIERS[how](
        parser_cls(max_line_length=600, max_lines=2, max_reply_bytes=700, allow_bare_lf=True)
    )
    assert parser.feed(b"250-a\n250 b\r\n") == [Reply(250, (b"a", b"b"))]  # bare LF
    with pytest.raises(RemoteProtocolError, match="line count"):
        COPIERS[how](parser).feed(b"250-a\r\n250-b\r\n250 c\r\n")
    with pytest.raises(RemoteProtocolError, match="line length"):
        COPIERS[how](parser).feed(b"250 " + b"x" * 600)
    assert parser.feed(b"250 still fine\r\n") == [Reply(250, (b"still fine",))]


# -- linearity ------------------------------------------------------------------------------


class CountingBuffer(bytearray):
    """The pure twin's reply buffer, counting the octets its line-end search examines."""

    scanned = 0

    def find(self, sub: Any, start: Any = 0, end: Any = None) -> int:
        found = super().find(sub, start) if end is None else super().find(sub, start, end)
        self.scanned += (found + 1 if found >= 0 else len(self)) - start
        return found


@pytest.mark.parametrize("shape", ["one long line", "many lines"])
@pytest.mark.parametrize("size", [10_000, 160_000])
def test_one_byte_feeding_is_linear(shape: str, size: int) -> None:
    """Fed one octet at a time, the search for LF resumes where it stopped: every octet
    is examined about once (a rescan from the reply start examines ~size**2/2).

    Counted, not timed (a timing ratio flaked under load): the pure twin's buffer is
    swapped for one that counts what ``find`` examines; octets fed straight from the
    caller's one-octet ``bytes`` (empty buffer: the fast path) count one each. The
    compiled twin has the same loop (``_speedups.pyx``: ``memchr`` from ``_scan_from``)
    and gives the same replies on every chunking (the hypothesis twin tests above).
    """
    if shape == "one long line":
        data = b"250 " + b"x" * size + b"\r\n"
    else:
        data = b"250-abcdefghijklm\r\n" * (size // 19) + b"250 end\r\n"
    parser = PyReplyParser(max_line_length=1 << 20, max_reply_bytes=1 << 22, max_lines=100_000)
    buffer = parser._buffer = CountingBuffer()
    fast_path = 0
    replies = []
    for i in range(len(data)):
        fast_path += not buffer
        replies += parser.feed(data[i : i + 1])
    assert len(replies) == 1 and parser.buffered == 0
    assert buffer.scanned + fast_path <= 2 * len(data), (buffer.scanned, len(data))
