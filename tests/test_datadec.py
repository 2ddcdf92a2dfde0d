"""DataDecoder (server DATA content): termination, un-stuffing, smuggling, limits, twins."""

from __future__ import annotations

import platform
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest_datacodec import (
    ALL_DECODERS,
    ALL_ENCODERS,
    DECODER_TWINS,
    chunked,
    interesting_bytes,
    normalise,
    some_bytes,
)
from smtpproto import LocalProtocolError, RemoteProtocolError
from smtpproto.wire.datacodec import CDataDecoder, DataDecoder, PyDataDecoder
from smtpproto.wire.twins import NO_EXTENSIONS

Decoder = type[PyDataDecoder]


@pytest.fixture(params=DECODER_TWINS)
def dec_cls(request: pytest.FixtureRequest) -> Decoder:
    """The decoder class under test: the Python twin, then the compiled twin."""
    return request.param  # type: ignore[no-any-return]


def decode(cls: Decoder, chunks: list[bytes], **options: object) -> tuple[bytes, bool, bytes]:
    """Feed until done; return (content, done, leftover including unfed chunks)."""
    decoder = cls(**options)  # type: ignore[arg-type]  # options are test parameters
    content = b""
    for index, chunk in enumerate(chunks):
        out, done = decoder.feed(chunk)
        content += out
        if done:
            return content, True, decoder.leftover + b"".join(chunks[index + 1 :])
    return content, False, b""


def test_compiled_twin_loaded_when_expected() -> None:
    if NO_EXTENSIONS or platform.python_implementation() != "CPython":
        assert DataDecoder is PyDataDecoder
    else:
        assert CDataDecoder is not None, "the compiled DATA codec should be built"
        assert DataDecoder is CDataDecoder


@pytest.mark.parametrize(
    ("wire", "content", "leftover"),
    [
        (b".\r\n", b"", b""),  # the empty message
        (b".\r\nQUIT\r\n", b"", b"QUIT\r\n"),
        (b"a\r\n.\r\n", b"a\r\n", b""),
        (b"..a\r\n.\r\nMAIL FROM:<x>\r\n", b".a\r\n", b"MAIL FROM:<x>\r\n"),
        (b"...\r\n..\r\n.\r\n", b"..\r\n.\r\n", b""),
        (b"\r\n.\r\n", b"\r\n", b""),
        (b"x.\r\n.x\r\n.\r\n", b"x.\r\nx\r\n", b""),
        (b"a\r\n.\r\n.\r\n", b"a\r\n", b".\r\n"),
    ],
)
def test_decoding(dec_cls: Decoder, wire: bytes, content: bytes, leftover: bytes) -> None:
    assert decode(dec_cls, [wire]) == (content, True, leftover)
    assert decode(dec_cls, [wire[i : i + 1] for i in range(len(wire))]) == (
        content,
        True,
        leftover,
    )


@pytest.mark.parametrize(
    "separator",
    [
        b"\n.\n",  # LF.LF
        b"\r.\r",  # CR.CR
        b"\n.\r\n",  # LF.CRLF
        b"\r\n.\n",  # CRLF.LF
        b"\r.\r\n",  # CR.CRLF
        b"\r\n.\r",  # CRLF.CR + non-LF
        b"\r\n.\r\r\n",  # CRLF.CR CRLF
        b"\n.\r",
        b"\r\n\x00.\r\n",
        b"\r\n .\r\n",
    ],
)
def test_smuggling_variants_never_end_the_data(dec_cls: Decoder, separator: bytes) -> None:
    smuggled = b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.com>\r\n"
    wire = b"hello" + separator + smuggled
    decoder = dec_cls()
    out, done = decoder.feed(wire)
    assert not done
    assert decoder.leftover == b""
    tail, done = decoder.feed(b".\r\nQUIT\r\n")
    assert done
    assert decoder.leftover == b"QUIT\r\n"
    content = out + tail
    assert content.endswith(smuggled)  # the "commands" are content of this message
    assert content.startswith(b"hello")


def test_bare_line_endings_pass_through_and_are_counted(dec_cls: Decoder) -> None:
    decoder = dec_cls()
    out, done = decoder.feed(b"a\nb\rc\r\r\n.\nX\r\n.\rY\r\n.\r\n")
    assert done
    # ".\n" and ".\rY" lines lose their dot (RFC 5321 §4.5.2): the line is not just "."
    assert out == b"a\nb\rc\r\r\n\nX\r\n\rY\r\n"
    assert decoder.bare_line_endings == 5
    assert decoder.octets_out == len(out)


def test_nothing_is_held_back_but_a_possible_terminator(dec_cls: Decoder) -> None:
    decoder = dec_cls(max_line_length=None)
    assert decoder.feed(b"x" * 100_000) == (b"x" * 100_000, False)
    assert decoder.feed(b"\r") == (b"", False)  # might be CRLF
    assert decoder.feed(b"\n.") == (b"\r\n", False)  # might be the end
    assert decoder.feed(b"\r") == (b"", False)
    assert decoder.feed(b"z") == (b"\rz", False)  # ".\rz": dot removed, bare CR kept
    assert decoder.bare_line_endings == 1


def test_done_then_feed_raises(dec_cls: Decoder) -> None:
    decoder = dec_cls()
    assert decoder.feed(b"a\r\n.\r") == (b"a\r\n", False)
    assert decoder.feed(b"\nRSET\r\n") == (b"", True)
    assert decoder.done
    assert decoder.leftover == b"RSET\r\n"
    assert decoder.octets_in == 6
    with pytest.raises(LocalProtocolError, match="done"):
        decoder.feed(b"more")


def test_line_length_at_and_past_the_bound(dec_cls: Decoder) -> None:
    ok = b"." + b"x" * 10 + b"\r\n.\r\n"  # the removed dot is not counted
    assert decode(dec_cls, [ok], max_line_length=10)[0] == b"x" * 10 + b"\r\n"
    decoder = dec_cls(max_line_length=10)
    with pytest.raises(RemoteProtocolError, match="longer than 10 octets") as info:
        decoder.feed(b"ab\r\n" + b"x" * 11)
    assert info.value.offset == 14
    # a bare CR counts as an octet of the line; it is found to be bare at the next octet
    decoder = dec_cls(max_line_length=3)
    with pytest.raises(RemoteProtocolError, match="longer than 3 octets") as info:
        decoder.feed(b"abc\rd")
    assert info.value.offset == 4
    assert decode(dec_cls, [b"abc\r\n.\r\n"], max_line_length=3) == (b"abc\r\n", True, b"")


def test_message_size_at_and_past_the_bound(dec_cls: Decoder) -> None:
    wire = b"..ab\r\ncd\r\n.\r\n"  # decodes to 9 octets
    assert decode(dec_cls, [wire], max_message_size=9) == (b".ab\r\ncd\r\n", True, b"")
    decoder = dec_cls(max_message_size=8)
    with pytest.raises(RemoteProtocolError, match="larger than 8 octets") as info:
        decoder.feed(wire)
    assert info.value.offset == 9  # the LF completing the last CRLF
    assert decoder.failed
    with pytest.raises(RemoteProtocolError, match="larger than 8 octets") as again:
        decoder.feed(b".\r\n")  # sticky: the end can no longer be trusted
    assert again.value.offset == 9


def test_limit_tie_reports_the_line(dec_cls: Decoder) -> None:
    decoder = dec_cls(max_line_length=2, max_message_size=2)
    with pytest.raises(RemoteProtocolError, match="line longer than 2") as info:
        decoder.feed(b"abc")
    assert info.value.offset == 2


@pytest.mark.parametrize("bad", [0, -5, True, "1"])
def test_bad_limits_rejected(dec_cls: Decoder, bad: object) -> None:
    with pytest.raises(ValueError, match="max_line_length"):
        dec_cls(max_line_length=bad)  # type: ignore[arg-type]  # deliberately wrong
    with pytest.raises(ValueError, match="max_message_size"):
        dec_cls(max_message_size=bad)  # type: ignore[arg-type]  # deliberately wrong


@given(content=some_bytes, data=st.data())
def test_encode_then_decode_round_trips(content: bytes, data: st.DataObject) -> None:
    for enc_cls in ALL_ENCODERS:
        encoder = enc_cls(max_line_length=None, allow_nul=True, allow_8bit=True)
        wire = b"".join(encoder.feed(c) for c in data.draw(chunked(content))) + encoder.finish()
        for dec_cls in ALL_DECODERS:
            decoder = dec_cls(max_line_length=None)
            pieces = data.draw(chunked(wire + b"NOOP\r\n"))
            assert decode(dec_cls, pieces) == (normalise(content), True, b"NOOP\r\n")
            decoder = dec_cls(max_line_length=None)
            decoder.feed(wire)
            assert decoder.bare_line_endings == 0
            assert decoder.octets_in == len(wire)


def _outcome(cls: Decoder, chunks: list[bytes], options: dict[str, object]) -> list[object]:
    """Per-call results and counters, or the error (message, offset) where it stopped."""
    decoder = cls(**options)  # type: ignore[arg-type]  # options are test parameters
    results: list[object] = []
    try:
        for chunk in chunks:
            results.append(decoder.feed(chunk))
            if decoder.done:
                break
    except RemoteProtocolError as exc:
        results.append(("error", str(exc), exc.offset))
    results.append((decoder.leftover, decoder.octets_in, decoder.bare_line_endings, decoder.failed))
    return results


decoder_options = st.fixed_dictionaries(
    {
        "max_line_length": st.one_of(st.none(), st.integers(1, 12)),
        "max_message_size": st.one_of(st.none(), st.integers(1, 40)),
    }
)
wire_bytes = st.one_of(interesting_bytes, some_bytes).map(lambda b: b + b"\r\n.\r\nX")
# CRLF-only lines: the Python twin's bulk path, which must agree octet for octet
crlf_wire = st.lists(
    st.sampled_from([b"\r\n", b".", b"..", b"abc", b"\r\n.\r\n", b"x" * 9]), max_size=30
).map(b"".join)


@given(wire=st.one_of(some_bytes, wire_bytes, crlf_wire), options=decoder_options, data=st.data())
def test_twins_agree_call_by_call(
    wire: bytes, options: dict[str, object], data: st.DataObject
) -> None:
    chunks = data.draw(chunked(wire))
    outcomes = [_outcome(cls, chunks, options) for cls in ALL_DECODERS]
    assert all(outcome == outcomes[0] for outcome in outcomes)


@given(wire=st.one_of(some_bytes, wire_bytes, crlf_wire), options=decoder_options, data=st.data())
def test_result_does_not_depend_on_chunking(
    wire: bytes, options: dict[str, object], data: st.DataObject
) -> None:
    chunks = data.draw(chunked(wire))
    for cls in ALL_DECODERS:
        whole = _outcome(cls, [wire], options)
        split = _outcome(cls, chunks, options)
        whole_error = [r for r in whole if isinstance(r, tuple) and r[0] == "error"]
        split_error = [r for r in split if isinstance(r, tuple) and r[0] == "error"]
        assert split_error == whole_error
        if not whole_error:
            assert decode(cls, chunks, **options) == decode(cls, [wire], **options)


def test_non_contiguous_memoryview_input(dec_cls: Decoder) -> None:
    # The compiled twin raised BufferError on a strided view; the Python twin copied it.
    decoder = dec_cls()
    assert decoder.feed(memoryview(b"axbx\rx\nx.x\rx\nx")[::2]) == (b"ab\r\n", True)


def test_the_python_twin_decodes_a_whole_message_in_one_chunk_in_bulk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The lines before the terminator go in one step (_bulk_lines), not octet by octet:
    # the common case of a message that arrives with its final dot in one read.
    runs: list[int] = []
    original = PyDataDecoder._bump_run

    def counted(self: PyDataDecoder, i: int, j: int, base: int) -> None:
        runs.append(j - i)
        original(self, i, j, base)

    monkeypatch.setattr(PyDataDecoder, "_bump_run", counted)
    wire = b"Subject: s\r\n\r\n" + b"..dotted\r\n" + b"x" * 78 * 100 + b"\r\n.\r\nQUIT\r\n"
    decoder = PyDataDecoder()
    assert decoder.feed(wire) == (b"Subject: s\r\n\r\n.dotted\r\n" + b"x" * 7800 + b"\r\n", True)
    assert decoder.leftover == b"QUIT\r\n" and runs == []


class _Int(int):
    """An int subclass: refused as a limit by both twins (an exact int is required)."""


@pytest.mark.parametrize("limit", [1, 998, None])
def test_good_limits_need_no_second_look(dec_cls: Decoder, limit: int | None) -> None:
    # The compiled twin accepts None and positive ints without calling the shared check.
    decoder = dec_cls(max_line_length=limit, max_message_size=limit)
    assert decoder.feed(b".\r\n") == (b"", True)


def test_an_int_subclass_limit_is_refused_by_both_twins(dec_cls: Decoder) -> None:
    with pytest.raises(ValueError, match="max_line_length"):
        dec_cls(max_line_length=_Int(5))
    with pytest.raises(ValueError, match="max_message_size"):
        dec_cls(max_line_length=5, max_message_size=_Int(5))


@pytest.mark.parametrize("name", ["max_line_length", "max_message_size"])
def test_a_limit_above_sys_maxsize_is_refused_alike_by_both_twins(
    dec_cls: Decoder, name: str
) -> None:
    # The compiled twin holds a limit in a C Py_ssize_t: both twins take sys.maxsize
    # and refuse one more with the same ValueError (the Python twin took 2**70).
    assert dec_cls(**{name: sys.maxsize}).feed(b".\r\n") == (b"", True)
    for too_big in (sys.maxsize + 1, 2**70):
        with pytest.raises(ValueError, match=f"{name} must be at most {sys.maxsize}, got"):
            dec_cls(**{name: too_big})
