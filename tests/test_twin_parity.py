"""Every twin pair behaves the same outside the happy path too (docs/design.md §3).

The feature tests of each twin (``test_reply_parser.py``, ``test_dataenc.py``,
``test_datadec.py``, ``test_line_ends.py``) hold the twins to the same output; this
module holds them to the same behaviour as Python objects:

* a constructor refuses the same arguments with the same exception and message (a
  float, a bool, a limit past ``sys.maxsize`` — which a C ``Py_ssize_t`` cannot hold);
* ``feed`` refuses the same non-bytes arguments with the same exception type;
* ``copy.copy``, ``copy.deepcopy`` and pickle work on every stateful twin, and a copy
  made anywhere in the input goes on as the original (the parser's and the encoder's
  own tests do this for them; the decoder and the BDAT normaliser here);
* a parser's state (``__getstate__``) is the same in both twins at any point of any
  input, and ``__setstate__`` refuses the same impossible states the same way.
"""

from __future__ import annotations

import array
import contextlib
import copy
import pickle
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest_datacodec import (
    ALL_DECODERS,
    ALL_ENCODERS,
    ALL_NORMALIZERS,
    chunked,
    some_bytes,
    twins,
)
from smtpproto.wire.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from smtpproto.wire.twins import CReplyParser, PyReplyParser

ALL_PARSERS: list[type[PyReplyParser]] = twins(PyReplyParser, CReplyParser)

#: Each pair, and the keyword arguments its constructor takes.
PAIRS: dict[str, tuple[list[Any], list[str]]] = {
    "ReplyParser": (ALL_PARSERS, ["max_line_length", "max_lines", "max_reply_bytes"]),
    "DataEncoder": (ALL_ENCODERS, ["max_line_length", "allow_nul", "allow_8bit"]),
    "DataDecoder": (ALL_DECODERS, ["max_line_length", "max_message_size"]),
    "LineEndNormalizer": (ALL_NORMALIZERS, []),  # takes no argument
}

#: Constructor values of every kind: in range, at the bounds, past them, wrong types.
VALUES: list[object] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    511,
    512,
    600,
    600.0,
    600.5,
    "600",
    b"600",
    10**6,
    sys.maxsize,
    sys.maxsize + 1,
    2**80,
]

COPIERS: dict[str, Callable[[Any], Any]] = {
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
    "pickle": lambda value: pickle.loads(pickle.dumps(value)),
    "pickle protocol 0": lambda value: pickle.loads(pickle.dumps(value, protocol=0)),
}


def outcome(call: Callable[[], object]) -> object:
    """What ``call`` did: ``"ok"``, or the exception's type name and message."""
    try:
        call()
    except Exception as error:  # the point is to compare whatever is raised
        return type(error).__name__, str(error)
    return "ok"


@pytest.mark.parametrize("pair", sorted(pair for pair in PAIRS if PAIRS[pair][1]))
def test_constructors_refuse_the_same_values_the_same_way(pair: str) -> None:
    classes, keywords = PAIRS[pair]
    for keyword in keywords:
        for value in VALUES:
            # the parser's max_line_length with a max_reply_bytes that lets it through
            both = pair == "ReplyParser" and keyword == "max_line_length"
            for extra in ({}, {"max_reply_bytes": value}) if both else ({},):
                options = {keyword: value, **extra}
                results = [outcome(lambda cls=cls, o=options: cls(**o)) for cls in classes]
                assert all(result == results[0] for result in results), (options, results)


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_feed_refuses_the_same_arguments(pair: str) -> None:
    classes, _ = PAIRS[pair]
    arguments: list[object] = ["250 ok\r\n", None, 5, [1, 2], array.array("I", [1]), b"x"[::-1]]
    for argument in arguments:
        results = []
        for cls in classes:
            try:
                cls().feed(argument)
            except ProtocolError:
                results.append("protocol error")
            except Exception as error:  # the point is to compare whatever is raised
                results.append(type(error).__name__)
            else:
                results.append("ok")
        assert all(result == results[0] for result in results), (argument, results)


def _decode_steps(decoder: Any, chunks: list[bytes]) -> list[object]:
    steps: list[object] = []
    for chunk in chunks:
        try:
            steps.append(decoder.feed(chunk))
        except (LocalProtocolError, RemoteProtocolError) as error:
            steps.append((type(error).__name__, str(error)))
        steps.append(
            (decoder.failed, decoder.done, decoder.leftover, decoder.octets_in, decoder.octets_out)
        )
        steps.append(decoder.bare_line_endings)
    return steps


wire_data = st.one_of(
    some_bytes,
    st.lists(st.sampled_from([b"a", b"\r\n", b".", b"\r", b"\n", b"\r\n.\r\n", b"x" * 40])).map(
        b"".join
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=wire_data,
    after=wire_data,
    limits=st.sampled_from([{}, {"max_line_length": 20}, {"max_message_size": 30}]),
    how=st.sampled_from(sorted(COPIERS)),
    data=st.data(),
)
def test_a_copied_decoder_goes_on_as_the_original(
    before: bytes, after: bytes, limits: dict[str, int], how: str, data: st.DataObject
) -> None:
    prefix = data.draw(chunked(before))
    rest = data.draw(chunked(after))
    traces = []
    for cls in ALL_DECODERS:
        original = cls(**limits)
        trace = _decode_steps(original, prefix)
        copied = COPIERS[how](original)
        assert type(copied) is cls
        for chunk in rest:  # in turns: shared state would show
            ahead = _decode_steps(copied, [chunk])
            assert _decode_steps(original, [chunk]) == ahead
            trace += ahead
        traces.append(trace)
    assert all(trace == traces[0] for trace in traces)


def _normalize_steps(normalizer: Any, chunks: list[bytes | None]) -> list[object]:
    steps: list[object] = []
    for chunk in chunks:
        try:
            steps.append(normalizer.finish() if chunk is None else normalizer.feed(chunk))
        except LocalProtocolError as error:
            steps.append(str(error))
        steps.append((normalizer.failed, normalizer.octets_in, normalizer.octets_out))
    return steps


@settings(max_examples=200, deadline=None)
@given(
    before=some_bytes,
    after=some_bytes,
    how=st.sampled_from(sorted(COPIERS)),
    finished=st.booleans(),
    data=st.data(),
)
def test_a_copied_normalizer_goes_on_as_the_original(
    before: bytes, after: bytes, how: str, finished: bool, data: st.DataObject
) -> None:
    prefix: list[bytes | None] = list(data.draw(chunked(before)))
    if finished:
        prefix.append(None)
    rest: list[bytes | None] = [*data.draw(chunked(after)), None]
    traces = []
    for cls in ALL_NORMALIZERS:
        original = cls()
        trace = _normalize_steps(original, prefix)
        copied = COPIERS[how](original)
        assert type(copied) is cls
        for chunk in rest:
            ahead = _normalize_steps(copied, [chunk])
            assert _normalize_steps(original, [chunk]) == ahead
            trace += ahead
        traces.append(trace)
    assert all(trace == traces[0] for trace in traces)


# -- the parser's state ---------------------------------------------------------------------

parser_input = st.lists(
    st.sampled_from(
        [b"250", b"-", b" ", b"ok", b"\r", b"\n", b"\r\n", b"251", b"x" * 300, b"\xff", b"99"]
    ),
    max_size=20,
).map(b"".join)


def _comparable(state: dict[str, object]) -> dict[str, object]:
    """The state with its error as text: exceptions do not compare equal."""
    error = state["error"]
    return {**state, "error": None if error is None else str(error)}


@settings(max_examples=300, deadline=None)
@given(data=parser_input, cuts=st.data(), bare_lf=st.booleans())
def test_the_parser_twins_have_the_same_state_everywhere(
    data: bytes, cuts: st.DataObject, bare_lf: bool
) -> None:
    chunks = cuts.draw(chunked(data))
    parsers = [
        cls(max_line_length=512, max_reply_bytes=1024, allow_bare_lf=bare_lf) for cls in ALL_PARSERS
    ]
    for chunk in chunks:
        states = []
        for parser in parsers:
            with contextlib.suppress(RemoteProtocolError):
                parser.feed(chunk)
            state = parser.__getstate__()
            fresh = type(parser).__new__(type(parser))
            fresh.__setstate__(state)  # every reachable state is accepted back
            assert _comparable(fresh.__getstate__()) == _comparable(state)
            states.append(_comparable(state))
        assert all(state == states[0] for state in states)


GOOD_STATE: dict[str, object] = {
    "max_line_length": 512,
    "max_lines": 3,
    "max_reply_bytes": 1024,
    "allow_bare_lf": False,
    "buffer": b"250 par",
    "offset": 7,
    "code": 250,
    "lines": (b"first",),
    "reply_bytes": 11,
    "error": None,
}

BAD_STATES: list[tuple[dict[str, object], type[Exception]]] = [
    ({"buffer": b"250 a\r\n250 b"}, ValueError),  # a line end the parser skipped
    ({"buffer": b"x" * 512}, ValueError),  # a line that cannot fit any more
    ({"buffer": bytearray(b"250")}, TypeError),
    ({"code": 199}, ValueError),
    ({"code": 560}, ValueError),
    ({"code": 0}, ValueError),  # lines without a reply being assembled
    ({"lines": ()}, ValueError),  # a reply being assembled without its first line
    ({"lines": (b"a",) * 4}, ValueError),  # past max_lines
    ({"lines": (b"a\nb",)}, ValueError),
    ({"lines": [b"first"]}, TypeError),
    ({"lines": ("first",)}, TypeError),
    ({"reply_bytes": 0}, ValueError),
    ({"reply_bytes": 1025}, ValueError),
    ({"reply_bytes": 1020}, ValueError),  # with the pending octets, past max_reply_bytes
    ({"offset": -1}, ValueError),
    ({"offset": 7.0}, TypeError),
    ({"allow_bare_lf": 1}, TypeError),
    ({"max_line_length": 511}, ValueError),
    ({"max_lines": sys.maxsize + 1}, ValueError),
    ({"max_reply_bytes": 1024.0}, TypeError),
    ({"error": RemoteProtocolError("bad")}, ValueError),  # failed, yet holding a reply
    ({"error": ValueError("bad")}, TypeError),
]


@pytest.mark.parametrize(("change", "error"), BAD_STATES)
def test_impossible_parser_states_are_refused_alike(
    change: dict[str, object], error: type[Exception]
) -> None:
    for cls in ALL_PARSERS:
        parser = cls()
        parser.__setstate__(GOOD_STATE)
        assert parser.buffered == 7 + 11
        before = parser.__getstate__()
        with pytest.raises(error, match=r"ReplyParser state|max_|must be|integer"):
            parser.__setstate__({**GOOD_STATE, **change})
        assert parser.__getstate__() == before  # nothing changed
    for cls in ALL_PARSERS:
        for missing in ("buffer", "error"):
            partial = {key: value for key, value in GOOD_STATE.items() if key != missing}
            with pytest.raises(TypeError, match="ReplyParser state"):
                cls().__setstate__(partial)
        with pytest.raises(TypeError, match="ReplyParser state"):
            cls().__setstate__(tuple(GOOD_STATE.values()))


def test_a_restored_parser_finishes_the_reply() -> None:
    for cls in ALL_PARSERS:
        parser = cls()
        parser.__setstate__(GOOD_STATE)
        (reply,) = parser.feed(b"t\r\n")
        assert (reply.code, reply.raw_lines) == (250, (b"first", b"part"))
        failed = cls()
        failed.__setstate__(
            {
                **GOOD_STATE,
                "buffer": b"",
                "code": 0,
                "lines": (),
                "reply_bytes": 0,
                "error": RemoteProtocolError("bad", offset=3),
            }
        )
        assert failed.failed and failed.buffered == 0
        with pytest.raises(RemoteProtocolError, match="bad"):
            failed.feed(b"250 ok\r\n")
