"""Tests for the ``Reply`` value, ``EnhancedStatusCode`` and ``ReplyClass``."""

from __future__ import annotations

import copy
import pickle
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpproto import EnhancedStatusCode, PyReplyParser, Reply, ReplyClass
from smtpproto.wire.reply import _make_reply

# -- strategies -------------------------------------------------------------------------

# Codes the strict parser accepts: second digit 0-5 (RFC 5321 §4.2 ABNF).
wire_codes = st.builds(
    lambda a, b, c: a * 100 + b * 10 + c,
    st.integers(2, 5),
    st.integers(0, 5),
    st.integers(0, 9),
)
any_codes = st.integers(200, 599)
raw_line = st.binary(max_size=60).filter(lambda b: b"\n" not in b)
raw_lines = st.lists(raw_line, min_size=1, max_size=6).map(tuple)
# Lines built from characters a hostile server may send: controls, separators, text.
hostile_text = st.text(
    st.characters(codec="utf-8", exclude_characters="\n")
    | st.sampled_from("\x1b\r\x00\x7f\u2028\u2029\x85\x9b\t\u200e"),
    max_size=40,
)


# -- construction and immutability ---------------------------------------------------


def test_defaults_and_fields() -> None:
    reply = Reply(250)
    assert reply.code == 250
    assert reply.raw_lines == (b"",)
    assert reply.lines == ("",)
    assert Reply(250, [b"a", b"b"]).raw_lines == (b"a", b"b")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((199,), "200 to 599"),
        ((600,), "200 to 599"),
        (("250",), "200 to 599"),
        ((250.0,), "200 to 599"),
        ((None,), "200 to 599"),
        ((250, ()), "at least one line"),
        ((250, []), "at least one line"),
        ((250, (b"a\nb",)), "without a line feed"),
        ((250, ("text",)), "without a line feed"),
        ((250, (b"ok", None)), "without a line feed"),
        ((250, b"ok"), "tuple or list"),
        ((250, "ok"), "tuple or list"),
        ((250, None), "tuple or list"),
        ((250, iter([b"ok"])), "tuple or list"),
    ],
)
def test_validation_errors(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Reply(*args)  # type: ignore[arg-type]  # deliberately wrong types


def test_immutable() -> None:
    reply = Reply(250, (b"ok",))
    with pytest.raises(AttributeError, match="immutable"):
        reply.code = 550
    with pytest.raises(AttributeError, match="immutable"):
        reply.raw_lines = (b"x",)
    with pytest.raises(AttributeError, match="immutable"):
        reply.other = 1
    with pytest.raises(AttributeError, match="immutable"):
        del reply.code
    with pytest.raises(AttributeError, match="immutable"):
        del reply.raw_lines
    assert reply.code == 250 and reply.raw_lines == (b"ok",)
    assert not hasattr(reply, "__dict__")


def test_equality_and_hash() -> None:
    a = Reply(250, (b"ok",))
    assert a == Reply(250, [b"ok"])
    assert hash(a) == hash(Reply(250, (b"ok",)))
    assert a == _make_reply(250, (b"ok",))
    assert a != Reply(251, (b"ok",))
    assert a != Reply(250, (b"OK",))
    assert a != Reply(250, (b"ok", b""))
    assert a != (250, (b"ok",))
    assert len({a, Reply(250, (b"ok",)), Reply(550)}) == 2


@given(any_codes, raw_lines)
def test_pickle_and_copy_round_trip(code: int, lines: tuple[bytes, ...]) -> None:
    reply = Reply(code, lines)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        clone = pickle.loads(pickle.dumps(reply, protocol))
        assert type(clone) is Reply
        assert clone == reply and clone.raw_lines == lines
    assert copy.copy(reply) == reply
    assert copy.deepcopy(reply) == reply


# -- classes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "klass", "flags"),
    [
        (200, ReplyClass.SUCCESS, (True, False, False, False)),
        (299, ReplyClass.SUCCESS, (True, False, False, False)),
        (354, ReplyClass.INTERMEDIATE, (False, True, False, False)),
        (334, ReplyClass.INTERMEDIATE, (False, True, False, False)),
        (421, ReplyClass.TRANSIENT_FAILURE, (False, False, True, False)),
        (499, ReplyClass.TRANSIENT_FAILURE, (False, False, True, False)),
        (500, ReplyClass.PERMANENT_FAILURE, (False, False, False, True)),
        (599, ReplyClass.PERMANENT_FAILURE, (False, False, False, True)),
    ],
)
def test_class_predicates(code: int, klass: ReplyClass, flags: tuple[bool, ...]) -> None:
    reply = Reply(code)
    assert reply.reply_class is klass
    assert int(reply.reply_class) == code // 100
    got = (reply.is_success, reply.is_intermediate, reply.is_transient, reply.is_permanent)
    assert got == flags
    assert reply.is_error is (code >= 400)


# -- enhanced status codes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "first_line", "expected"),
    [
        (550, b"5.1.1 no such user", EnhancedStatusCode(5, 1, 1)),
        (250, b"2.0.0 Ok: queued", EnhancedStatusCode(2, 0, 0)),
        (451, b"4.7.1 greylisted", EnhancedStatusCode(4, 7, 1)),
        (550, b"5.123.456 x", EnhancedStatusCode(5, 123, 456)),
        (550, b"5.12.3 x", EnhancedStatusCode(5, 12, 3)),
        (550, b"5.1.1", EnhancedStatusCode(5, 1, 1)),  # prefix then end of line
        (550, b"5.7.1 ", EnhancedStatusCode(5, 7, 1)),
        (550, b"no such user", None),  # absent
        (550, b"", None),
        (550, b"4.1.1 class mismatch", None),
        (250, b"5.0.0 class mismatch", None),
        (354, b"3.0.0 go ahead", None),  # 3yz replies carry none (RFC 2034 §3)
        (354, b"2.0.0 go ahead", None),
        (550, b"5.1234.1 too many digits", None),
        (550, b"5.1.1234 too many digits", None),
        (550, b"5.1.1x glued to text", None),
        (550, b"5.1. missing detail", None),
        (550, b" 5.1.1 leading space", None),
        (550, b"5.1.1\tTAB is not SP", None),
        (550, b"5.1.1\r", None),
        (550, b"\xef\xbc\x95.1.1 fullwidth", None),
    ],
)
def test_enhanced_parsing(
    code: int, first_line: bytes, expected: EnhancedStatusCode | None
) -> None:
    assert Reply(code, (first_line,)).enhanced == expected


def test_enhanced_only_from_first_line() -> None:
    assert Reply(550, (b"no code", b"5.1.1 later")).enhanced is None


def test_enhanced_status_code_value() -> None:
    status = EnhancedStatusCode.parse("5.7.26")
    assert status == (5, 7, 26) and status.class_ == 5 and status.detail == 26
    assert str(status) == "5.7.26"
    for bad in ("5.7", "6.0.0", "5.7.26 ", "x.1.1", "5.1.\u0661"):
        with pytest.raises(ValueError, match="enhanced status code"):
            EnhancedStatusCode.parse(bad)


# -- text -------------------------------------------------------------------------------


def test_text_strips_repeated_prefix() -> None:
    reply = Reply(550, (b"5.1.1 first", b"5.1.1 second", b"5.1.1", b"5.1.1 third"))
    assert reply.text == "first\nsecond\n\nthird"
    assert reply.lines[1] == "5.1.1 second"  # lines keep the raw text


def test_text_keeps_lines_that_differ() -> None:
    reply = Reply(550, (b"5.1.1 first", b"5.7.1 other code", b"5.1.10 longer", b"plain"))
    assert reply.text == "first\n5.7.1 other code\n5.1.10 longer\nplain"


def test_text_without_enhanced_code_is_unchanged() -> None:
    reply = Reply(250, (b"mail.example.com", b"4.1.1 not ours: class mismatch"))
    assert reply.text == "mail.example.com\n4.1.1 not ours: class mismatch"
    assert Reply(354, (b"3.0.0 x",)).text == "3.0.0 x"


def test_non_utf8_and_nul_never_raise() -> None:
    raw = (b"5.1.1 caf\xe9 \x00 \xff\xfe", b"5.1.1 \xc3\x28", b"\x00")
    reply = Reply(550, raw)
    assert reply.raw_lines == raw
    assert reply.lines[0] == "5.1.1 caf\ufffd \x00 \ufffd\ufffd"
    assert reply.text.split("\n")[0] == "caf\ufffd \x00 \ufffd\ufffd"
    assert reply.enhanced == EnhancedStatusCode(5, 1, 1)
    assert "\\x00" in repr(reply) and "\\x00" in str(reply)
    assert reply.to_bytes().startswith(b"550-5.1.1 caf\xe9 \x00 \xff\xfe\r\n")


@given(any_codes, raw_lines)
def test_decoding_never_raises(code: int, lines: tuple[bytes, ...]) -> None:
    reply = Reply(code, lines)
    assert len(reply.lines) == len(lines)
    assert len(reply.text.split("\n")) == len(lines)
    reply.explain()
    assert reply.raw_lines == lines


# -- display escaping --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        (b"\x1b[31mred", "\\x1b[31mred"),
        (b"a\rb", "a\\rb"),
        (b"nul\x00", "nul\\x00"),
        (b"del\x7f", "del\\x7f"),
        ("sep\u2028x".encode(), "sep\\u2028x"),
        ("c1\x9b2J".encode(), "c1\\x9b2J"),
        ("nel\x85".encode(), "nel\\x85"),
    ],
)
def test_repr_and_str_escape_controls(raw: bytes, escaped: str) -> None:
    reply = Reply(550, (raw,))
    assert escaped in repr(reply)
    assert str(reply) == f"550 {escaped}"
    assert repr(reply).isprintable() and str(reply).isprintable()


def test_repr_and_str_shape() -> None:
    assert repr(Reply(250, (b"ok",))) == "Reply(250, 'ok')"
    assert repr(Reply(250, (b"a", b"b"))) == "Reply(250, ('a', 'b'))"
    assert str(Reply(250, (b"a", b"b"))) == "250 a\n250 b"


@given(any_codes, st.lists(hostile_text, min_size=1, max_size=5))
def test_repr_and_str_never_contain_unprintables(code: int, texts: list[str]) -> None:
    reply = Reply(code, tuple(text.encode() for text in texts))
    assert repr(reply).isprintable()
    shown = str(reply).split("\n")  # str() itself separates lines with LF
    assert len(shown) == len(texts)
    for line in shown:
        assert line.isprintable(), line
        assert not any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in line)


# -- wire form ---------------------------------------------------------------------------


def test_to_bytes() -> None:
    assert Reply(250).to_bytes() == b"250 \r\n"
    assert Reply(250, (b"a", b"b", b"c")).to_bytes() == b"250-a\r\n250-b\r\n250 c\r\n"


# parser_cls only selects a class; a fresh parser is made per example.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(code=wire_codes, lines=raw_lines)
def test_to_bytes_round_trips_through_the_parser(
    parser_cls: type[PyReplyParser], code: int, lines: tuple[bytes, ...]
) -> None:
    reply = Reply(code, lines)
    parser = parser_cls()
    assert parser.feed(reply.to_bytes()) == [reply]
    parser.feed_eof()


def test_to_bytes_round_trip_of_hostile_bytes(parser_cls: type[PyReplyParser]) -> None:
    reply = Reply(550, (b"5.1.1 \x00\xff\r", b"\r", b"", b"5.1.1 end"))
    parser = parser_cls()
    (parsed,) = parser.feed(reply.to_bytes())
    assert parsed == reply and parsed.raw_lines == reply.raw_lines
    assert parsed.text == reply.text


# -- explain -------------------------------------------------------------------------------


def test_explain() -> None:
    reply = Reply(550, (b"5.1.1 <nobody@example.com>: user unknown",))
    text = reply.explain()
    assert text.startswith("550 (permanent failure)")
    assert "Bad destination mailbox address" in text
    assert "hint" in text
    assert 'Server said: "<nobody@example.com>: user unknown"' in text
    assert "drop it or fix it" in reply.explain("RCPT TO:<nobody@example.com>")
    assert "drop it or fix it" not in reply.explain("MAIL")


def test_explain_escapes_server_text() -> None:
    text = Reply(421, (b"bye\x1b]0;pwned\x07", b"\xe2\x80\xa8x")).explain()
    assert "\x1b" not in text and "\x07" not in text and "\u2028" not in text
    assert "bye\\x1b]0;pwned\\x07 / \\u2028x" in text
    assert "reconnect later" in text
