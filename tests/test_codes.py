"""Tests for ``smtpproto.codes``: reply-code and enhanced-status-code knowledge."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto import EnhancedStatusCode, Reply, ReplyClass, codes
from smtpproto.codes import (
    EnhancedCodeInfo,
    ReplyCodeInfo,
    describe_code,
    describe_enhanced,
    explain,
    explain_reply,
    known_codes,
    known_enhanced,
)

REQUIRED = [220, 221, 250, 354, 421, 450, 451, 452, 455, 500, 501, 502, 503, 504, 521, 541]
REQUIRED += [550, 551, 552, 553, 554]
EXTENSIONS = [235, 334, 432, 454, 530, 534, 535, 538, 555, 556]


@pytest.mark.parametrize("code", REQUIRED + EXTENSIONS)
def test_required_codes_have_specific_advice(code: int) -> None:
    info = describe_code(code)
    assert info.code == code
    assert info.reply_class == code // 100
    assert not info.generic
    assert info.source and ("RFC" in info.source or code == 541)
    assert len(info.advice) > 20
    # Specific advice, not just the class's generic sentence.
    assert info.advice != describe_code(code // 100 * 100 + 99).advice


def test_module_states_advice_is_a_hint() -> None:
    assert codes.__doc__ is not None
    assert "use codes differently" in codes.__doc__
    assert "hint" in explain(550)


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (421, "reconnect later"),
        (450, "back-off"),
        (451, "back-off"),
        (535, "username and password"),
        (541, "spam"),
        (554, "spam"),
        (550, "reputation"),
        (553, "reputation"),
        (552, "too big"),
        (452, "too many recipients"),
    ],
)
def test_advice_says_the_practical_thing(code: int, words: str) -> None:
    assert words in describe_code(code).advice.lower()


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (200, "syntax"),
        (212, "information"),
        (323, "connections"),
        (433, "unspecified"),
        (541 - 100, "unspecified"),
        (559, "mail system"),
        (599, "unassigned category"),
        (260, "unassigned category"),
    ],
)
def test_generic_fallback_from_second_digit(code: int, meaning: str) -> None:
    info = describe_code(code)
    assert info.generic
    assert info.code == code
    assert meaning in info.meaning
    assert info.source == "RFC 5321 §4.2.1"


@pytest.mark.parametrize(
    ("code", "klass", "words"),
    [(299, 2, "succeeded"), (399, 3, "send the next"), (499, 4, "retry"), (599, 5, "not retry")],
)
def test_generic_fallback_advice_per_class(code: int, klass: int, words: str) -> None:
    info = describe_code(code)
    assert ReplyClass(info.reply_class) is ReplyClass(klass)
    assert words in info.advice.lower()


@pytest.mark.parametrize("bad", [199, 600, 0, -250, 1000, True, "250", 250.0, None])
def test_describe_code_rejects_out_of_range(bad: object) -> None:
    with pytest.raises(ValueError, match="200 to 599"):
        describe_code(bad)  # type: ignore[arg-type]  # deliberately wrong types


def test_known_codes_and_entries_are_consistent() -> None:
    listed = known_codes()
    assert list(listed) == sorted(set(listed))
    assert set(REQUIRED + EXTENSIONS) <= set(listed)
    for code in listed:
        info = describe_code(code)
        assert info.code == code and info.reply_class == code // 100


def test_infos_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        describe_code(250).advice = "x"  # type: ignore[misc]  # testing immutability
    with pytest.raises(dataclasses.FrozenInstanceError):
        describe_enhanced("5.1.1").detail = 2  # type: ignore[misc]  # testing immutability


# -- enhanced status codes ----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "subject_text", "detail_text", "source"),
    [
        ("5.1.1", "Addressing status", "Bad destination mailbox address", "RFC 3463"),
        ("4.2.2", "Mailbox status", "Mailbox full", "RFC 3463"),
        ("5.7.8", "Security or policy status", "Authentication credentials invalid", "4954"),
        ("5.5.6", "Mail delivery protocol", "Authentication exchange line is too long", "4954"),
        ("5.6.7", "content or media", "Non-ASCII addresses not permitted", "RFC 6531"),
        ("5.7.23", "Security", "SPF validation failed", "RFC 7372"),
        ("5.1.10", "Addressing", "null MX", "RFC 7505"),
        ("5.7.30", "Security", "REQUIRETLS", "RFC 8689"),
        ("4.7.13", "Security", "User account disabled", "RFC 5248"),
        ("2.0.0", "Other or undefined", "Other undefined status", "RFC 3463"),
    ],
)
def test_enhanced_lookup(status: str, subject_text: str, detail_text: str, source: str) -> None:
    info = describe_enhanced(status)
    assert info.code == status
    assert not info.fallback
    assert subject_text in info.subject_text
    assert detail_text in info.detail_text
    assert source in info.source


def test_every_rfc3463_code_is_registered() -> None:
    # RFC 3463 §3.1-3.8: the number of details each subject defines (X.Y.0 included).
    rfc3463 = {0: 1, 1: 9, 2: 5, 3: 6, 4: 8, 5: 6, 6: 6, 7: 8}
    registered = set(known_enhanced())
    for subject, count in rfc3463.items():
        for detail in range(count):
            assert (subject, detail) in registered, (subject, detail)


def test_enhanced_accepts_the_named_tuple() -> None:
    assert describe_enhanced(EnhancedStatusCode(4, 4, 1)) == describe_enhanced("4.4.1")
    assert describe_enhanced(EnhancedStatusCode(4, 4, 1)).detail_text == "No answer from host"


def test_enhanced_unknown_detail_falls_back_to_subject() -> None:
    info = describe_enhanced("5.1.999")
    assert info.fallback
    assert info.detail == 999
    assert info.detail_text == describe_enhanced("5.1.0").detail_text
    assert info.class_text == "permanent failure"


def test_enhanced_unknown_subject_is_generic() -> None:
    info = describe_enhanced("4.42.1")
    assert info.fallback
    assert "Unregistered subject 42" in info.subject_text


@pytest.mark.parametrize(
    "bad",
    [
        *("", "5.1", "3.1.1", "5.1.1 ", "5.1.1.1", "5.1234.1", "5.a.1", "x", "5.1.1\n"),
        *("\uff15.1.1", "5.\u0661.1"),  # fullwidth and Arabic-Indic digits are not ASCII
    ],
)
def test_enhanced_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="enhanced status code"):
        describe_enhanced(bad)


@pytest.mark.parametrize("bad", [(3, 1, 1), (5, 1000, 0), (5, -1, 0), (5, 1), None, ("a", 1, 1)])
def test_enhanced_rejects_malformed_tuples(bad: object) -> None:
    with pytest.raises(ValueError, match="enhanced status code"):
        describe_enhanced(bad)  # type: ignore[arg-type]  # deliberately wrong types


def test_enhanced_table_is_consistent() -> None:
    keys = known_enhanced()
    assert len(keys) == len(set(keys))
    for subject, detail in keys:
        # Every subject with a registered detail has an X.Y.0 entry to fall back to.
        assert (subject, 0) in keys
        for klass in (2, 4, 5):
            info = describe_enhanced(f"{klass}.{subject}.{detail}")
            assert info.class_ == klass and info.class_ in (2, 4, 5)
            assert not info.fallback
            assert re.fullmatch(r"RFC \d{4}.*", info.source)
            assert info.detail_text and info.subject_text


# -- explanations ---------------------------------------------------------------------


def test_explain_550_on_rcpt_says_drop_the_address() -> None:
    text = explain(550, "5.1.1", command="RCPT TO:<nobody@example.com>")
    assert text.startswith("550 (permanent failure)")
    assert "Bad destination mailbox address" in text
    assert "drop it or fix it" in text
    assert "reputation" in text
    assert "hint" in text


def test_explain_command_refines_advice() -> None:
    assert explain(550, command="MAIL") != explain(550, command="RCPT")
    assert "policy" in explain(550, command="DATA")
    assert "sender address" in explain(553, command="mail from:<a@b>")
    assert "Too many recipients" in explain(452, command="RCPT")
    assert "storage" in explain(452, command="DATA")
    assert "another transaction" in explain(552, command="rcpt")
    assert "too big" in explain(552, command="BDAT")
    # An unrelated command keeps the code's own advice.
    assert explain(550, command="VRFY") == explain(550)
    assert explain(250, command="   ") == explain(250)


def test_explain_flags_class_mismatch_and_fallback() -> None:
    text = explain(250, "5.1.1")
    assert "does not match" in text
    assert "not registered" in explain(550, "5.7.250")
    assert "not registered" not in explain(550, "5.7.1")


def test_explain_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        explain(600)
    with pytest.raises(ValueError):
        explain(550, "5.1")
    with pytest.raises(TypeError, match="command must be a str"):
        explain(550, command=b"RCPT")  # type: ignore[arg-type]  # deliberately wrong type


def test_explain_reply_quotes_escaped_server_text() -> None:
    reply = Reply(550, (b"5.1.1 <x@y>: no such user\x1b[2J\x00", b"5.1.1 see\xff https://e"))
    text = explain_reply(reply, "RCPT")
    assert text == reply.explain("RCPT")
    assert "Bad destination mailbox address" in text
    assert 'Server said: "<x@y>: no such user\\x1b[2J\\x00 / see\ufffd https://e"' in text
    assert text.isprintable()


def test_explain_reply_without_text_or_enhanced_code() -> None:
    text = Reply(354).explain()
    assert "Server said" not in text
    assert "Enhanced" not in text
    assert "dot-stuffed" in text


@given(
    code=st.integers(200, 599),
    enhanced=st.none()
    | st.builds(
        EnhancedStatusCode,
        st.sampled_from([2, 4, 5]),
        st.integers(0, 999),
        st.integers(0, 999),
    ),
    command=st.none() | st.text(max_size=20),
)
def test_every_code_is_explained(
    code: int, enhanced: EnhancedStatusCode | None, command: str | None
) -> None:
    text = explain(code, enhanced, command=command)
    assert text.startswith(f"{code} (")
    assert "What to do:" in text
    if enhanced is not None:
        assert str(enhanced) in text
        info = describe_enhanced(str(enhanced))
        assert isinstance(info, EnhancedCodeInfo)
        assert (info.class_, info.subject, info.detail) == tuple(enhanced)
    assert isinstance(describe_code(code), ReplyCodeInfo)


@given(st.integers().filter(lambda n: not 200 <= n <= 599))
def test_every_code_outside_range_raises_value_error(code: int) -> None:
    with pytest.raises(ValueError):
        describe_code(code)


def test_code_tables_import_nothing_from_the_package() -> None:
    # reply imports the tables (Reply.explain); an import back, even for types, would be
    # the cycle the layout test forbids. The tables need only the standard library.
    tables = Path(codes.__file__).parent / "wire" / "codes.py"
    tree = ast.parse(tables.read_text(encoding="utf-8"))
    imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    for node in imports:
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, node.lineno
            assert node.module in ("__future__", "re", "collections.abc", "dataclasses", "typing")
        else:
            assert [alias.name for alias in node.names] == ["re"], node.lineno
