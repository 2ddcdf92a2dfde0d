"""ReplyParser: one test per grammar rule and per limit, each run on both twins.

The ``parser_cls`` fixture (conftest.py) runs every test against the Python reference
and, when built, the compiled twin. Rules come from RFC 5321 §4.2 and the decisions
documented in ``wire/_reply_py.py``'s header.
"""

from __future__ import annotations

import pytest

from smtpproto import PyReplyParser, RemoteProtocolError, Reply
from smtpproto.wire.limits import (
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_MAX_REPLY_LINE_LENGTH,
    DEFAULT_MAX_REPLY_LINES,
)

ParserClass = type[PyReplyParser]


def parse(parser_cls: ParserClass, data: bytes, **options: object) -> list[Reply]:
    """Feed ``data`` whole, then EOF; return the replies."""
    parser = parser_cls(**options)  # type: ignore[arg-type]  # options are the keywords
    replies = parser.feed(data)
    parser.feed_eof()
    return replies


def error_of(parser_cls: ParserClass, data: bytes, **options: object) -> RemoteProtocolError:
    """The error ``data`` causes: raised by ``feed``, or by the next call when ``feed``
    first returned the replies completed before it."""
    parser = parser_cls(**options)  # type: ignore[arg-type]  # options are the keywords
    try:
        parser.feed(data)
    except RemoteProtocolError as error:
        assert parser.failed
        return error
    assert parser.failed
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(b"")
    return info.value


# -- reply code -------------------------------------------------------------------------


def test_single_line_reply(parser_cls: ParserClass) -> None:
    (reply,) = parse(parser_cls, b"220 mx.example.com ESMTP\r\n")
    assert reply == Reply(220, (b"mx.example.com ESMTP",))
    assert type(reply) is Reply


def test_multiline_reply_in_order(parser_cls: ParserClass) -> None:
    data = b"250-mx.example.com\r\n250-PIPELINING\r\n250 SIZE 100\r\n221 bye\r\n"
    assert parse(parser_cls, data) == [
        Reply(250, (b"mx.example.com", b"PIPELINING", b"SIZE 100")),
        Reply(221, (b"bye",)),
    ]


@pytest.mark.parametrize("line", [b"2x0 ok", b"25 ok", b"25", b"abc", b"", b" 250 ok"])
def test_code_must_be_three_digits(parser_cls: ParserClass, line: bytes) -> None:
    error = error_of(parser_cls, b"220 hi\r\n" + line + b"\r\n")
    assert "does not start with a reply code" in str(error)
    assert error.offset == 8


@pytest.mark.parametrize("first", [b"0", b"1", b"6", b"9"])
def test_first_digit_must_be_2_to_5(parser_cls: ParserClass, first: bytes) -> None:
    error = error_of(parser_cls, first + b"50 ok\r\n")
    assert "reply code 2xx-5xx" in str(error)
    assert error.offset == 0


@pytest.mark.parametrize("code", [200, 259, 354, 421, 505, 550, 559])
def test_accepted_codes(parser_cls: ParserClass, code: int) -> None:
    assert parse(parser_cls, b"%d text\r\n" % code) == [Reply(code, (b"text",))]


@pytest.mark.parametrize("code", [b"260", b"279", b"590", b"299"])
def test_second_digit_6_to_9_refused(parser_cls: ParserClass, code: bytes) -> None:
    """RFC 5321 §4.2 ABNF: the second digit is 0-5; we refuse 6-9 (documented choice)."""
    error = error_of(parser_cls, code + b" text\r\n")
    assert "does not start with a reply code" in str(error)


def test_third_digit_any(parser_cls: ParserClass) -> None:
    assert [r.code for r in parse(parser_cls, b"250 a\r\n259 b\r\n")] == [250, 259]


@pytest.mark.parametrize("separator", [b"x", b"\t", b"0", b"\r", b"\x00"])
def test_code_followed_by_sp_dash_or_eol(parser_cls: ParserClass, separator: bytes) -> None:
    error = error_of(parser_cls, b"250" + separator + b"text\r\n")
    assert "not followed by SP, '-' or the line end" in str(error)
    assert error.offset == 3


def test_code_only_lines(parser_cls: ParserClass) -> None:
    assert parse(parser_cls, b"250\r\n") == [Reply(250, (b"",))]
    assert parse(parser_cls, b"250 \r\n") == [Reply(250, (b"",))]
    assert parse(parser_cls, b"250-\r\n250\r\n") == [Reply(250, (b"", b""))]
    assert parse(parser_cls, b"250-\r\n250-x\r\n250 \r\n") == [Reply(250, (b"", b"x", b""))]


def test_text_keeps_leading_spaces_after_separator(parser_cls: ParserClass) -> None:
    assert parse(parser_cls, b"250  two\r\n") == [Reply(250, (b" two",))]


def test_code_change_in_multiline_fails_at_that_line(parser_cls: ParserClass) -> None:
    parser = parser_cls()
    assert parser.feed(b"220 hi\r\n250-a\r\n250-b\r\n") == [Reply(220, (b"hi",))]
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(b"251 c\r\n")
    assert "changed its code from 250 to 251" in str(info.value)
    assert info.value.offset == 22


# -- line ends and octets -----------------------------------------------------------------


def test_bare_lf_refused_by_default(parser_cls: ParserClass) -> None:
    error = error_of(parser_cls, b"220 hi\r\n250 ok\n")
    assert "bare LF" in str(error)
    assert error.offset == 14  # the LF itself


def test_bare_lf_accepted_when_allowed(parser_cls: ParserClass) -> None:
    data = b"250-a\n250-b\r\n250 c\n"
    assert parse(parser_cls, data, allow_bare_lf=True) == [Reply(250, (b"a", b"b", b"c"))]


def test_lone_lf_line_is_not_a_reply(parser_cls: ParserClass) -> None:
    assert "bare LF" in str(error_of(parser_cls, b"\n"))
    assert "reply code" in str(error_of(parser_cls, b"\n", allow_bare_lf=True))
    assert "reply code" in str(error_of(parser_cls, b"\r\n"))


def test_cr_inside_text_is_text(parser_cls: ParserClass) -> None:
    assert parse(parser_cls, b"250 a\rb\r\r\n") == [Reply(250, (b"a\rb\r",))]


def test_cr_alone_never_ends_a_line(parser_cls: ParserClass) -> None:
    parser = parser_cls()
    assert parser.feed(b"250 a\r250 b\r") == []
    assert parser.feed(b"\n") == [Reply(250, (b"a\r250 b",))]


def test_nul_and_non_utf8_kept_exactly(parser_cls: ParserClass) -> None:
    text = b"\x00\xff\xfe caf\xc3\xa9 \x80\x00"
    (reply,) = parse(parser_cls, b"250-" + text + b"\r\n250 " + text + b"\r\n")
    assert reply.raw_lines == (text, text)
    assert "\ufffd" in reply.lines[0]


def test_bytes_like_input(parser_cls: ParserClass) -> None:
    parser = parser_cls()
    assert parser.feed(bytearray(b"250-a\r\n")) == []
    assert parser.feed(memoryview(b"250 b\r\n")) == [Reply(250, (b"a", b"b"))]


def test_strided_memoryview_input(parser_cls: ParserClass) -> None:
    # A non-contiguous view is bytes-like too: the Python twin raised TypeError and the
    # compiled twin BufferError; both now parse the octets the view shows.
    parser = parser_cls()
    assert parser.feed(memoryview(b"2-5-0- -o-k-\r-\n-")[::2]) == [Reply(250, (b"ok",))]
    assert parser.feed(b"250-a\r\n") == []  # with a buffered tail, too
    assert parser.feed(memoryview(b"2x5x0x xbx\rx\nx")[::2]) == [Reply(250, (b"a", b"b"))]


def test_non_bytes_input_is_a_type_error(parser_cls: ParserClass) -> None:
    parser = parser_cls()
    with pytest.raises(TypeError):
        parser.feed("250 ok\r\n")  # type: ignore[arg-type]  # the point of the test
    assert not parser.failed
    assert parser.feed(b"250 ok\r\n") == [Reply(250, (b"ok",))]


# -- EOF, stickiness, offsets ---------------------------------------------------------------


def test_feed_eof_clean(parser_cls: ParserClass) -> None:
    parser = parser_cls()
    parser.feed(b"220 hi\r\n")
    parser.feed_eof()
    assert not parser.failed


@pytest.mark.parametrize("partial", [b"2", b"250 no line end", b"250-a\r\n", b"250-a\r\n25"])
def test_feed_eof_on_partial_reply(parser_cls: ParserClass, partial: bytes) -> None:
    parser = parser_cls()
    parser.feed(b"220 hi\r\n" + partial)
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed_eof()
    assert "closed in the middle of a reply" in str(info.value)
    assert info.value.offset == 8 + len(partial)
    assert parser.failed


def test_failure_is_sticky(parser_cls: ParserClass) -> None:
    parser = parser_cls()
    with pytest.raises(RemoteProtocolError) as first:
        parser.feed(b"250-a\r\n999 x\r\n")
    assert parser.failed
    assert parser.buffered == 0
    with pytest.raises(RemoteProtocolError) as again:
        parser.feed(b"250 fine\r\n")
    assert again.value is first.value
    with pytest.raises(RemoteProtocolError) as at_eof:
        parser.feed_eof()
    assert at_eof.value is first.value


def test_offsets_count_the_whole_stream(parser_cls: ParserClass) -> None:
    parser = parser_cls()
    for _ in range(100):
        parser.feed(b"250 ok\r\n")
    assert parser.feed(b"250 a\r\n2") == [Reply(250, (b"a",))]
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(b"60 b\r\n")  # "260": the line starts at 807, before this chunk
    assert info.value.offset == 800 + 7
    assert "stream offset 807" in str(info.value)


def test_replies_before_an_error_are_returned_then_error_raised(parser_cls: ParserClass) -> None:
    """A valid reply is never lost because garbage followed it in the same chunk."""
    parser = parser_cls()
    assert parser.feed(b"250 2.0.0 queued\r\n221 bye\r\nxyz\r\n") == [
        Reply(250, (b"2.0.0 queued",)),
        Reply(221, (b"bye",)),
    ]
    assert parser.failed
    assert parser.buffered == 0
    with pytest.raises(RemoteProtocolError, match="reply code") as info:
        parser.feed(b"250 fine\r\n")
    assert info.value.offset == 27  # 18 + 9
    with pytest.raises(RemoteProtocolError) as at_eof:
        parser.feed_eof()
    assert at_eof.value is info.value


def test_error_raised_at_once_without_earlier_replies(parser_cls: ParserClass) -> None:
    parser = parser_cls()
    assert parser.feed(b"250-a\r\n") == []
    with pytest.raises(RemoteProtocolError, match="changed its code"):
        parser.feed(b"251 b\r\n250 c\r\n")


def test_replies_split_across_feeds(parser_cls: ParserClass) -> None:
    parser = parser_cls()
    assert parser.feed(b"250-mx\r") == []
    assert parser.buffered == 7
    assert parser.feed(b"\n250") == []
    assert parser.feed(b" ok\r\n220") == [Reply(250, (b"mx", b"ok"))]
    assert parser.buffered == 3
    assert parser.feed(b" x\r\n") == [Reply(220, (b"x",))]
    assert parser.buffered == 0


# -- limits -------------------------------------------------------------------------------


def test_constructor_validates_limits(parser_cls: ParserClass) -> None:
    with pytest.raises(ValueError, match="512"):
        parser_cls(max_line_length=511)
    with pytest.raises(ValueError, match="max_lines"):
        parser_cls(max_lines=0)
    with pytest.raises(ValueError, match="max_reply_bytes"):
        parser_cls(max_line_length=1000, max_reply_bytes=999)
    with pytest.raises(TypeError):
        parser_cls(max_lines=2.5)  # type: ignore[arg-type]  # the point of the test


def test_defaults_fit_rfc_line(parser_cls: ParserClass) -> None:
    """RFC 5321 §4.5.3.1.5: a 512-octet reply line (CRLF included) always fits."""
    assert DEFAULT_MAX_REPLY_LINE_LENGTH >= 512
    line = b"250 " + b"x" * 506 + b"\r\n"
    assert len(line) == 512
    assert parse(parser_cls, line, max_line_length=512) == [Reply(250, (b"x" * 506,))]


def test_line_length_at_and_past_bound(parser_cls: ParserClass) -> None:
    limit = DEFAULT_MAX_REPLY_LINE_LENGTH
    at = b"250 " + b"x" * (limit - 6) + b"\r\n"
    assert len(at) == limit
    assert len(parse(parser_cls, at)) == 1
    past = b"250 " + b"x" * (limit - 5) + b"\r\n"
    error = error_of(parser_cls, b"220 hi\r\n" + past)
    assert "line length limit" in str(error)
    assert error.offset == 8


def test_endless_line_raises_as_soon_as_it_cannot_fit(parser_cls: ParserClass) -> None:
    limit = 600
    parser = parser_cls(max_line_length=limit)
    parser.feed(b"250 ")
    for _ in range(limit - 5):
        assert parser.feed(b"x") == []
    assert parser.buffered == limit - 1  # a LF could still end a line of exactly limit
    with pytest.raises(RemoteProtocolError, match="line length limit"):
        parser.feed(b"x")  # now limit octets without a line end: the LF can never fit
    assert parser.buffered == 0


def test_endless_line_in_big_chunks_bounded(parser_cls: ParserClass) -> None:
    """Memory never exceeds the bound plus one chunk, and the error comes at once."""
    chunk = b"y" * 4096
    parser = parser_cls()
    parser.feed(b"250 ")
    fed = 4
    with pytest.raises(RemoteProtocolError, match="line length limit"):
        for _ in range(1000):
            assert parser.buffered <= DEFAULT_MAX_REPLY_LINE_LENGTH + len(chunk)
            parser.feed(chunk)
            fed += len(chunk)
    assert fed < DEFAULT_MAX_REPLY_LINE_LENGTH + len(chunk)


def test_lines_per_reply_at_and_past_bound(parser_cls: ParserClass) -> None:
    at = b"250-x\r\n" * (DEFAULT_MAX_REPLY_LINES - 1) + b"250 x\r\n"
    (reply,) = parse(parser_cls, at)
    assert len(reply.raw_lines) == DEFAULT_MAX_REPLY_LINES
    past = b"250-x\r\n" * DEFAULT_MAX_REPLY_LINES + b"250 x\r\n"
    error = error_of(parser_cls, past)
    assert "line count limit" in str(error)
    assert error.offset == 7 * DEFAULT_MAX_REPLY_LINES


def test_million_continuation_lines_stop_at_line_limit(parser_cls: ParserClass) -> None:
    parser = parser_cls(max_lines=50)
    chunk = b"250-x\r\n" * 1000
    with pytest.raises(RemoteProtocolError, match="line count limit") as info:
        for _ in range(1000):  # a million lines, if the parser never stopped
            parser.feed(chunk)
    assert info.value.offset == 7 * 50


def test_reply_bytes_at_and_past_bound(parser_cls: ParserClass) -> None:
    options = {"max_line_length": 1000, "max_reply_bytes": 2000}
    line = b"250-" + b"z" * 94 + b"\r\n"  # 100 octets
    at = line * 19 + b"250 " + b"z" * 94 + b"\r\n"  # exactly 2000
    (reply,) = parse(parser_cls, at, **options)
    assert len(reply.raw_lines) == 20
    past = line * 19 + b"250 " + b"z" * 95 + b"\r\n"  # 2001
    error = error_of(parser_cls, past, **options)
    assert "reply size limit" in str(error)
    assert error.offset == 1900


def test_reply_bytes_pending_tail_refused_early(parser_cls: ParserClass) -> None:
    """A partial line that cannot fit the reply size limit is refused without its LF."""
    parser = parser_cls(max_line_length=1000, max_reply_bytes=1500)
    parser.feed(b"250-" + b"z" * 994 + b"\r\n")  # 1000 octets
    parser.feed(b"250-" + b"z" * 495)  # 499 pending
    assert parser.buffered == 1499  # a LF could still make the reply exactly 1500
    with pytest.raises(RemoteProtocolError, match="reply size limit") as info:
        parser.feed(b"z")
    assert info.value.offset == 1000


def test_buffered_never_exceeds_bound_plus_chunk(parser_cls: ParserClass) -> None:
    parser = parser_cls(max_line_length=512, max_reply_bytes=4096, max_lines=1000)
    chunk = b"250-" + b"q" * 100 + b"\r\n" + b"250-" + b"q" * 50
    with pytest.raises(RemoteProtocolError, match="reply size limit"):
        for _ in range(1000):
            parser.feed(chunk)
            assert parser.buffered <= 4096 + len(chunk)


def test_default_limits_are_consistent() -> None:
    assert DEFAULT_MAX_REPLY_BYTES >= DEFAULT_MAX_REPLY_LINE_LENGTH
    assert DEFAULT_MAX_REPLY_LINES >= 100
