"""The one-match fast path of ``format_path``/``format_domain`` (the common ASCII
address) against the step-by-step rules: same wire form, same refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto.wire.abnf import (
    MAX_DOMAIN,
    MAX_LOCAL_PART,
    MAX_PATH,
    SyntaxErrorInCommand,
    check_no_controls,
    format_domain,
    format_path,
    validate_domain,
)
from smtpproto.wire.errors import LocalProtocolError
from smtpproto.wire.grammar import _validate_path_content

# atext, the separators, and characters each rule refuses somewhere.
ALPHABET = st.sampled_from(list('aZ09-._+=!#~@"[]<> \\\r\n\x00\x7f\u00e9\u2028:'))
ADDRESSES = st.text(ALPHABET, max_size=40) | st.builds(
    lambda local, labels: local + "@" + ".".join(labels),
    st.text(st.sampled_from(list("ab.-+")), min_size=0, max_size=70),
    st.lists(st.text(st.sampled_from(list("ab0-")), min_size=0, max_size=70), max_size=5),
)


def reference_path(address: str, smtputf8: bool, allow_null: bool, allow_postmaster: bool) -> bytes:
    """``format_path`` spelled out with the full rules only."""
    check_no_controls(address, "address")
    if address == "":
        if allow_null:
            return b"<>"
        raise LocalProtocolError("empty")
    if address.startswith("<") or address.endswith(">"):
        raise LocalProtocolError("brackets")
    try:
        _validate_path_content(address, utf8=smtputf8, allow_postmaster=allow_postmaster)
    except SyntaxErrorInCommand as error:
        raise LocalProtocolError(str(error)) from None
    return b"<" + address.encode("utf-8") + b">"


def outcome(call: object) -> bytes | type[Exception]:
    assert callable(call)
    try:
        result = call()
    except LocalProtocolError:
        return LocalProtocolError
    assert isinstance(result, bytes)
    return result


@given(address=ADDRESSES, smtputf8=st.booleans(), null=st.booleans(), postmaster=st.booleans())
def test_format_path_matches_the_full_rules(
    address: str, smtputf8: bool, null: bool, postmaster: bool
) -> None:
    fast = outcome(
        lambda: format_path(
            address, smtputf8=smtputf8, allow_null=null, allow_postmaster=postmaster
        )
    )
    slow = outcome(lambda: reference_path(address, smtputf8, null, postmaster))
    assert fast == slow


@given(name=st.text(st.sampled_from(list("ab0-.[]:\u00e9 \r")), max_size=300))
def test_format_domain_matches_the_full_rules(name: str) -> None:
    def reference() -> bytes:
        check_no_controls(name, "EHLO name")
        if not name.isascii():
            raise LocalProtocolError("not ascii")
        try:
            validate_domain(name)
        except SyntaxErrorInCommand as error:
            raise LocalProtocolError(str(error)) from None
        return name.encode("ascii")

    assert outcome(lambda: format_domain(name)) == outcome(reference)


@pytest.mark.parametrize(
    ("local", "domain", "ok"),
    [
        ("a" * MAX_LOCAL_PART, "example.org", True),
        ("a" * (MAX_LOCAL_PART + 1), "example.org", False),
        ("a", ".".join(["b" * 63] * 3) + "." + "c" * 60, True),  # path of 256 octets
        ("ab", ".".join(["b" * 63] * 3) + "." + "c" * 60, False),  # path of 257
        ("a", ".".join(["b" * 63] * 4), False),  # domain 255 + "@a" + <> = 259 > 256
        ("a", "b" * 64 + ".org", False),  # a label over 63 octets
    ],
)
def test_fast_path_limits(local: str, domain: str, ok: bool) -> None:
    address = f"{local}@{domain}"
    assert (len(address) + 2 <= MAX_PATH and len(domain) <= MAX_DOMAIN) or not ok
    if ok:
        assert format_path(address) == b"<" + address.encode() + b">"
    else:
        with pytest.raises(LocalProtocolError):
            format_path(address)
