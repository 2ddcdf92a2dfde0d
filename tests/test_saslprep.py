"""SASLprep (RFC 4013): the §3 examples, each rule on its own, and bounds of the API."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto.sasl.saslprep import SASLprepError, saslprep


@pytest.mark.parametrize(
    ("given_text", "expected"),
    [
        ("I\u00adX", "IX"),  # RFC 4013 §3 #1: SOFT HYPHEN mapped to nothing
        ("user", "user"),  # #2: no transformation
        ("USER", "USER"),  # #3: case preserved
        ("\u00aa", "a"),  # #4: NFKC
        ("\u2168", "IX"),  # #5: NFKC
    ],
)
def test_rfc4013_examples(given_text: str, expected: str) -> None:
    assert saslprep(given_text) == expected


@pytest.mark.parametrize(
    ("given_text", "rule"),
    [
        ("\u0007", "prohibited"),  # RFC 4013 §3 #6: control character
        ("\u0627\u0031", "right-to-left"),  # #7: bidi check (RandALCat then digit)
    ],
)
def test_rfc4013_error_examples(given_text: str, rule: str) -> None:
    with pytest.raises(SASLprepError, match=rule):
        saslprep(given_text)


def test_non_ascii_space_is_mapped_to_space() -> None:
    # RFC 4013 §2.1: C.1.2 characters map to U+0020.
    assert saslprep("a\u00a0b\u3000c") == "a b c"


def test_zero_width_characters_are_removed() -> None:
    # RFC 3454 B.1 (commonly mapped to nothing): ZERO WIDTH SPACE, ZWNJ, ZWJ.
    assert saslprep("p\u200bw\u200cd\u200d") == "pwd"


@pytest.mark.parametrize(
    "char",
    ["\x00", "\r", "\n", "\x7f", "\u0080", "\ue000", "\ufffd", "\u2ff0", "\u200e", "\U000e0001"],
)
def test_prohibited_characters(char: str) -> None:
    with pytest.raises(SASLprepError, match="prohibited"):
        saslprep(f"a{char}b")


def test_bidi_rules() -> None:
    hebrew = "\u05d0\u05d1"
    assert saslprep(hebrew) == hebrew
    with pytest.raises(SASLprepError, match="mixes"):
        saslprep("\u05d0a\u05d1")  # RandALCat and LCat together
    with pytest.raises(SASLprepError, match="start and end"):
        saslprep("\u05d01")  # ends with a digit, not RandALCat


def test_unassigned_code_points_depend_on_mode() -> None:
    unassigned = "\u0221"  # unassigned in Unicode 3.2 (RFC 3454 table A.1)
    with pytest.raises(SASLprepError, match="unassigned"):
        saslprep(unassigned)
    assert saslprep(unassigned, allow_unassigned=True) == unassigned


def test_empty_string_stays_empty() -> None:
    assert saslprep("") == ""


@given(st.text(max_size=30))
def test_errors_never_echo_the_input(text: str) -> None:
    secret = f"secret-{text}"
    try:
        saslprep(secret, allow_unassigned=True)
    except SASLprepError as exc:
        assert "secret-" not in str(exc)
        assert all(ch not in str(exc) for ch in text if not ch.isascii())


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40))
def test_printable_ascii_is_unchanged(text: str) -> None:
    assert saslprep(text) == text
