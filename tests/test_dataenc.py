"""DataEncoder (client DATA content): RFC 5321 §4.5.2 rules, limits, chunking, twins."""

from __future__ import annotations

import contextlib
import copy
import gc
import pickle
import platform
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest_datacodec import (
    ALL_ENCODERS,
    ENCODER_TWINS,
    chunked,
    interesting_bytes,
    oracle_encode,
    some_bytes,
)
from smtpproto import LocalProtocolError
from smtpproto.wire.datacodec import (
    DATA_CODEC_IMPLEMENTATION,
    CDataEncoder,
    DataEncoder,
    PyDataEncoder,
)
from smtpproto.wire.twins import NO_EXTENSIONS

Encoder = type[PyDataEncoder]


@pytest.fixture(params=ENCODER_TWINS)
def enc_cls(request: pytest.FixtureRequest) -> Encoder:
    """The encoder class under test: the Python twin, then the compiled twin."""
    return request.param  # type: ignore[no-any-return]


def encode(cls: Encoder, chunks: list[bytes], **options: object) -> bytes:
    encoder = cls(**options)  # type: ignore[arg-type]  # options are test parameters
    return b"".join(encoder.feed(chunk) for chunk in chunks) + encoder.finish()


def test_compiled_twin_loaded_when_expected() -> None:
    if NO_EXTENSIONS or platform.python_implementation() != "CPython":
        assert DataEncoder is PyDataEncoder
        assert DATA_CODEC_IMPLEMENTATION == "python"
    else:
        assert CDataEncoder is not None, "the compiled DATA codec should be built"
        assert DataEncoder is CDataEncoder
        assert DATA_CODEC_IMPLEMENTATION == "c"


@pytest.mark.parametrize(
    ("content", "wire"),
    [
        (b"", b".\r\n"),  # the empty message
        (b"a", b"a\r\n.\r\n"),
        (b"a\r\n", b"a\r\n.\r\n"),
        (b"a\n", b"a\r\n.\r\n"),
        (b"a\r", b"a\r\n.\r\n"),
        (b"\r\r\n", b"\r\n\r\n.\r\n"),
        (b"\n\r", b"\r\n\r\n.\r\n"),
        (b"\r\n\r\n", b"\r\n\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        (b"x.\r\n.y", b"x.\r\n..y\r\n.\r\n"),
        (b"a\n.b\r.c\r\n..", b"a\r\n..b\r\n..c\r\n...\r\n.\r\n"),
        # smuggling attempts in the caller's content become harmless stuffed lines
        (b"a\n.\nMAIL FROM:<x>\n", b"a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n"),
        (b"a\r.\rRSET\r", b"a\r\n..\r\nRSET\r\n.\r\n"),
        (b"a\r\n.\nQUIT", b"a\r\n..\r\nQUIT\r\n.\r\n"),
    ],
)
def test_encoding(enc_cls: Encoder, content: bytes, wire: bytes) -> None:
    assert encode(enc_cls, [content]) == wire
    assert oracle_encode(content) == wire
    # one octet at a time gives the same bytes
    assert encode(enc_cls, [content[i : i + 1] for i in range(len(content))]) == wire


def test_crlf_split_across_chunks_stays_one_line_end(enc_cls: Encoder) -> None:
    encoder = enc_cls()
    assert encoder.feed(b"a\r") == b"a\r\n"  # nothing held back
    assert encoder.feed(b"\n") == b""
    assert encoder.feed(b"\n") == b"\r\n"  # a second LF is a new (bare) line end
    assert encoder.feed(b".") == b".."
    assert encoder.finish() == b"\r\n.\r\n"


def test_counters(enc_cls: Encoder) -> None:
    encoder = enc_cls()
    out = encoder.feed(b".a\nb") + encoder.feed(b"\r") + encoder.finish()
    assert out == b"..a\r\nb\r\n.\r\n"
    assert encoder.octets_in == 5
    assert encoder.octets_out == len(out)


def test_bytes_like_input(enc_cls: Encoder) -> None:
    encoder = enc_cls()
    assert encoder.feed(bytearray(b"a\n")) == b"a\r\n"
    assert encoder.feed(memoryview(b".b")) == b"..b"
    with pytest.raises(TypeError):
        encoder.feed(5)  # type: ignore[arg-type]  # deliberately wrong type


def test_non_contiguous_memoryview_input(enc_cls: Encoder) -> None:
    # A strided view is bytes-like too: the compiled twin raised BufferError here while
    # the Python twin copied it; both now encode the octets the view shows.
    encoder = enc_cls()
    assert encoder.feed(memoryview(b"a.\nb.c")[::2]) == b"a\r\n.."  # "a\n." stuffed
    assert encoder.finish() == b"\r\n.\r\n"


@given(content=some_bytes, data=st.data())
def test_any_chunking_matches_the_oracle(content: bytes, data: st.DataObject) -> None:
    chunks = data.draw(chunked(content))
    for cls in ALL_ENCODERS:
        wire = encode(cls, chunks, max_line_length=None, allow_nul=True, allow_8bit=True)
        assert wire == oracle_encode(content)


def test_nul_refused_with_offset(enc_cls: Encoder) -> None:
    encoder = enc_cls()
    assert encoder.feed(b"abc\n") == b"abc\r\n"
    with pytest.raises(LocalProtocolError, match=r"NUL octet at content offset 6"):
        encoder.feed(b"de\0f")
    assert encode(enc_cls, [b"a\0b"], allow_nul=True) == b"a\0b\r\n.\r\n"


def test_8bit_refused_unless_allowed(enc_cls: Encoder) -> None:
    with pytest.raises(LocalProtocolError, match=r"0xc3 at content offset 2.*BODY=8BITMIME"):
        encode(enc_cls, [b"h\n\xc3\xa9"])
    assert encode(enc_cls, [b"h\n\xc3\xa9"], allow_8bit=True) == b"h\r\n\xc3\xa9\r\n.\r\n"


#: (content, what the refusal must say, what it must not): each names what the client's
#: user sets (ClientConfig's fields, BODY=8BITMIME) and the right RFCs, never the
#: encoder's own keywords, and never offers SMTPUTF8 for 8-bit content (RFC 6531 §3.6:
#: SMTPUTF8 goes with BODY=8BITMIME, it does not replace it).
REFUSAL_TEXTS = [
    (b"a\0b", ["NUL octet at content offset 1", "ClientConfig(allow_nul=True)", "RFC 2045"]),
    (
        b"y" * 999,
        ["longer than 998 octets at content offset 998", "ClientConfig(enforce_line_length=False)"],
    ),
    (
        b"h\n\xc3\xa9",
        [
            "0xc3 at content offset 2",
            "BODY=8BITMIME",
            "RFC 6152",
            "SMTPUTF8 does not declare it, RFC 6531 §3.6",
            "MailOptions(body='8BITMIME')",
        ],
    ),
]


@pytest.mark.parametrize(("content", "words"), REFUSAL_TEXTS)
def test_refusal_texts_name_what_the_user_sets(
    enc_cls: Encoder, content: bytes, words: list[str]
) -> None:
    with pytest.raises(LocalProtocolError) as info:
        enc_cls().feed(content)
    text = str(info.value)
    assert enc_cls().refusal(content) == text
    for word in words:
        assert word in text, (word, text)
    for wrong in ("pass ", "max_line_length", "allow_8bit", "or SMTPUTF8"):
        assert wrong not in text, (wrong, text)


def test_line_length_at_and_past_the_bound(enc_cls: Encoder) -> None:
    line = b"x" * 998
    assert encode(enc_cls, [line]) == line + b"\r\n.\r\n"
    # the stuffing dot does not count (RFC 5321 §4.5.3.1.6)
    assert encode(enc_cls, [b"." + line[1:]]) == b".." + line[1:] + b"\r\n.\r\n"
    with pytest.raises(LocalProtocolError, match=r"longer than 998 octets at content offset 1001"):
        encode(enc_cls, [b"ab\n", line + b"y"])
    # split across chunks and line-end kinds
    with pytest.raises(LocalProtocolError, match=r"longer than 998 octets at content offset 1001"):
        encode(enc_cls, [b"a\r", b"\n" + b"x" * 500, b"x" * 499])
    assert encode(enc_cls, [line + b"y"], max_line_length=None) == line + b"y\r\n.\r\n"
    assert encode(enc_cls, [b"abc\rabc"], max_line_length=3) == b"abc\r\nabc\r\n.\r\n"


def test_first_violation_in_stream_order_wins(enc_cls: Encoder) -> None:
    with pytest.raises(LocalProtocolError, match=r"0x80 at content offset 1"):
        encode(enc_cls, [b"a\x80\0"])
    with pytest.raises(LocalProtocolError, match=r"NUL octet at content offset 3"):
        encode(enc_cls, [b"abc\0\x80"], max_line_length=3)  # octet rule before line rule
    with pytest.raises(LocalProtocolError, match=r"longer than 2 octets at content offset 2"):
        encode(enc_cls, [b"abc\0"], max_line_length=2)


def test_error_is_sticky_and_returns_nothing_of_the_chunk(enc_cls: Encoder) -> None:
    encoder = enc_cls()
    with pytest.raises(LocalProtocolError) as first:
        encoder.feed(b"good\nbad\0")
    assert encoder.failed
    assert encoder.octets_out == 0  # "good\r\n" was not returned either
    with pytest.raises(LocalProtocolError) as again:
        encoder.feed(b"fine")
    assert str(again.value) == str(first.value)
    with pytest.raises(LocalProtocolError) as again:
        encoder.finish()
    assert str(again.value) == str(first.value)


def test_closed_after_finish(enc_cls: Encoder) -> None:
    encoder = enc_cls()
    assert encoder.finish() == b".\r\n"
    with pytest.raises(LocalProtocolError, match="closed"):
        encoder.feed(b"a")
    with pytest.raises(LocalProtocolError, match="closed"):
        encoder.finish()
    assert not encoder.failed


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "998"])
def test_bad_limit_rejected(enc_cls: Encoder, bad: object) -> None:
    with pytest.raises(ValueError, match="max_line_length"):
        enc_cls(max_line_length=bad)  # type: ignore[arg-type]  # deliberately wrong


def _outcome(cls: Encoder, chunks: list[bytes], options: dict[str, object]) -> object:
    """Per-call outputs then the end, or the error message where it stopped."""
    encoder = cls(**options)  # type: ignore[arg-type]  # options are test parameters
    return _run(encoder, chunks)


def _run(encoder: PyDataEncoder, chunks: list[bytes]) -> list[object]:
    """``_outcome`` for an encoder already made."""
    results: list[object] = []
    try:
        for chunk in chunks:
            results.append(encoder.feed(chunk))
        results.append(encoder.finish())
    except LocalProtocolError as exc:
        results.append(("error", str(exc)))
    results.append((encoder.octets_in, encoder.octets_out, encoder.failed))
    return results


encoder_options = st.fixed_dictionaries(
    {
        "max_line_length": st.one_of(st.none(), st.integers(1, 12)),
        "allow_nul": st.booleans(),
        "allow_8bit": st.booleans(),
    }
)


@given(content=some_bytes, options=encoder_options, data=st.data())
def test_twins_agree_call_by_call(
    content: bytes, options: dict[str, object], data: st.DataObject
) -> None:
    chunks = data.draw(chunked(content))
    outcomes = [_outcome(cls, chunks, options) for cls in ALL_ENCODERS]
    assert all(outcome == outcomes[0] for outcome in outcomes)


@given(content=interesting_bytes, options=encoder_options, data=st.data())
def test_result_does_not_depend_on_chunking(
    content: bytes, options: dict[str, object], data: st.DataObject
) -> None:
    chunks = data.draw(chunked(content))
    for cls in ALL_ENCODERS:
        whole = _outcome(cls, [content], options)
        split = _outcome(cls, chunks, options)
        assert isinstance(whole, list) and isinstance(split, list)
        if isinstance(whole[-2], tuple):  # an error: the same error, wherever the cuts
            assert split[-2] == whole[-2]
        else:
            assert b"".join(split[:-1]) == b"".join(whole[:-1])
            assert split[-1] == whole[-1]


@given(
    before=some_bytes,
    content=some_bytes,
    options=encoder_options,
    finish=st.booleans(),
    data=st.data(),
)
def test_a_reset_encoder_behaves_like_a_new_one(
    before: bytes, content: bytes, options: dict[str, object], finish: bool, data: st.DataObject
) -> None:
    """After any prefix of input (cut anywhere, mid-CRLF included; finished or not;
    refused or not), ``reset`` gives what a new encoder with the same settings gives,
    call by call: outputs, refusals, counters, ``failed`` (the engine reuses one
    encoder per connection, ``replies._data_reply``)."""
    prefix = data.draw(chunked(before))
    prefix = prefix[: data.draw(st.integers(0, len(prefix)))]
    chunks = data.draw(chunked(content))
    for cls in ALL_ENCODERS:
        encoder = cls(**options)  # type: ignore[arg-type]  # options are test parameters
        try:
            for chunk in prefix:
                encoder.feed(chunk)
            if finish:
                encoder.finish()
        except LocalProtocolError:
            assert encoder.failed
        encoder.reset()
        assert _run(encoder, chunks) == _outcome(cls, chunks, options)


def test_reset_clears_a_refusal_and_a_finish(enc_cls: Encoder) -> None:
    encoder = enc_cls()
    with pytest.raises(LocalProtocolError, match="NUL"):
        encoder.feed(b"a\0")
    encoder.reset()
    assert not encoder.failed
    assert (encoder.octets_in, encoder.octets_out) == (0, 0)
    assert encoder.feed(b".a\r") + encoder.finish() == b"..a\r\n.\r\n"
    encoder.reset()
    # The swallowed LF of a CRLF split across chunks does not survive a reset.
    assert encoder.feed(b"\n.b") + encoder.finish() == b"\r\n..b\r\n.\r\n"
    assert (encoder.octets_in, encoder.octets_out) == (3, 10)


def test_a_line_limit_above_sys_maxsize_is_refused_alike_by_both_twins(enc_cls: Encoder) -> None:
    assert encode(enc_cls, [b"a\r\n"], max_line_length=sys.maxsize) == b"a\r\n.\r\n"
    with pytest.raises(ValueError, match=f"max_line_length must be at most {sys.maxsize}"):
        enc_cls(max_line_length=sys.maxsize + 1)


@given(content=some_bytes, options=encoder_options, data=st.data())
def test_refusal_is_what_feed_would_raise_for_the_whole_content(
    content: bytes, options: dict[str, object], data: st.DataObject
) -> None:
    """``refusal`` (the drivers' check before MAIL) names exactly the error a fresh
    encoder raises for the content, whatever the chunking, in both twins; it changes
    nothing, not even an encoder that already took content."""
    chunks = data.draw(chunked(content))
    for cls in ALL_ENCODERS:
        streamed = _outcome(cls, chunks, options)
        error = next((r[1] for r in streamed if isinstance(r, tuple) and r[0] == "error"), None)
        fresh = cls(**options)  # type: ignore[arg-type]  # options are test parameters
        assert fresh.refusal(content) == error
        for form in (bytearray(content), memoryview(content), memoryview(content * 2)[::2]):
            assert fresh.refusal(form) == fresh.refusal(bytes(form))
        used = cls(**options)  # type: ignore[arg-type]  # as above
        assert used.feed(b"\n") == b"\r\n"
        assert used.refusal(content) == error
        assert (used.octets_in, used.failed) == (1, False)
        assert used.finish() == b".\r\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"x" * 998, None),
        (b"x" * 998 + b"\r\n" + b"y" * 998, None),
        (b"x" * 999, "line longer than 998 octets at content offset 998"),
        (b"a\n" + b"x" * 999, "at content offset 1000"),
        (b"a\r" + b"x" * 999, "at content offset 1000"),
        (b"x" * 998 + b"\0", "NUL octet at content offset 998"),  # octet rule first
        (b"ok\xe9", "8-bit octet 0xe9 at content offset 2"),
    ],
)
def test_refusal_at_and_past_the_bounds(
    enc_cls: Encoder, content: bytes, message: str | None
) -> None:
    found = enc_cls().refusal(content)
    if message is None:
        assert found is None
    else:
        assert found is not None and message in found


COPIERS = {
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
    "pickle": lambda encoder: pickle.loads(pickle.dumps(encoder)),
    "pickle protocol 0": lambda encoder: pickle.loads(pickle.dumps(encoder, protocol=0)),
}


@given(
    before=some_bytes,
    content=some_bytes,
    options=encoder_options,
    data=st.data(),
)
def test_a_copied_encoder_goes_on_as_the_original(
    before: bytes, content: bytes, options: dict[str, object], data: st.DataObject
) -> None:
    """A copy (``copy.copy``, ``deepcopy``, a pickle round trip) of an encoder at any
    point of its content, refused or not, goes on call by call as the original does,
    in both twins: the settings (NUL, 8-bit, the line limit) and the line state come
    along, and the compiled twin's copy shares no memory with a dead object."""
    prefix = data.draw(chunked(before))
    prefix = prefix[: data.draw(st.integers(0, len(prefix)))]
    chunks = data.draw(chunked(content))
    how = data.draw(st.sampled_from(sorted(COPIERS)))
    for cls in ALL_ENCODERS:
        encoder = cls(**options)  # type: ignore[arg-type]  # options are test parameters
        with contextlib.suppress(LocalProtocolError):
            for chunk in prefix:
                encoder.feed(chunk)
        copied = COPIERS[how](encoder)
        assert type(copied) is cls
        assert _run(copied, chunks) == _run(encoder, chunks)


@pytest.mark.parametrize("how", sorted(COPIERS))
def test_a_copied_encoder_keeps_its_octet_rules(enc_cls: Encoder, how: str) -> None:
    for allow_nul, allow_8bit in [(False, False), (True, False), (False, True), (True, True)]:
        encoder = COPIERS[how](enc_cls(allow_nul=allow_nul, allow_8bit=allow_8bit))
        gc.collect()  # whatever the copy was made from is gone
        assert encoder.feed(b"plain ascii\r\n") == b"plain ascii\r\n"
        for octet, allowed in [(b"\x00", allow_nul), (b"\xe9", allow_8bit)]:
            if allowed:
                assert encoder.feed(octet) == octet
            else:
                with pytest.raises(LocalProtocolError):
                    COPIERS[how](encoder).feed(octet)
