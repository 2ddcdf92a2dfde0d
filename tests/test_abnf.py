"""Tests for the RFC 5321 / RFC 6531 grammar module: client-side and server-side."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto.wire.abnf import (
    MAX_COMMAND_LINE,
    MAX_DOMAIN,
    MAX_LOCAL_PART,
    MAX_PATH,
    MAX_TEXT_LINE,
    SyntaxErrorInCommand,
    check_command_line,
    check_esmtp_keyword,
    check_esmtp_value,
    check_no_controls,
    format_domain,
    format_path,
    format_text_argument,
    utf8_addr_xtext,
    validate_domain,
    validate_mailbox,
    xtext_encode,
)
from smtpproto.wire.errors import LocalProtocolError
from smtpproto.wire.parsing import (
    parse_domain,
    parse_esmtp_params,
    parse_path,
    split_command_path,
    utf8_addr_xtext_decode,
    xtext_decode,
)

FORBIDDEN = [chr(c) for c in range(0x20)] + ["\x7f", "\x85", "\u2028", "\u2029"]


def test_limits_are_the_rfc_numbers() -> None:
    assert (MAX_LOCAL_PART, MAX_DOMAIN, MAX_PATH) == (64, 255, 256)
    assert (MAX_COMMAND_LINE, MAX_TEXT_LINE) == (512, 1000)


# -- controls in every client-side function ---------------------------------------------

CLIENT_FUNCTIONS: list[tuple[str, Callable[[str], object]]] = [
    ("check_no_controls", lambda v: check_no_controls(v, "arg")),
    ("format_path local", lambda v: format_path(f"a{v}b@example.com")),
    ("format_path domain", lambda v: format_path(f"ab@exa{v}mple.com")),
    ("format_path quoted", lambda v: format_path(f'"a{v}b"@example.com')),
    ("format_path utf8", lambda v: format_path(f"ä{v}@example.com", smtputf8=True)),
    ("format_domain", lambda v: format_domain(f"exa{v}mple.com")),
    ("format_domain literal", lambda v: format_domain(f"[tag:a{v}b]")),
    ("check_esmtp_keyword", lambda v: check_esmtp_keyword(f"X{v}Y")),
    ("check_esmtp_value", lambda v: check_esmtp_value(f"a{v}b")),
    ("check_esmtp_value utf8", lambda v: check_esmtp_value(f"ä{v}b", smtputf8=True)),
    ("format_text_argument", lambda v: format_text_argument(f"a{v}b", "VRFY argument")),
]


@pytest.mark.parametrize("char", FORBIDDEN, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize(("name", "function"), CLIENT_FUNCTIONS, ids=lambda x: str(x)[:30])
def test_controls_refused_everywhere(
    name: str, function: Callable[[str], object], char: str
) -> None:
    with pytest.raises(LocalProtocolError):
        function(char)


@pytest.mark.parametrize(("name", "function"), CLIENT_FUNCTIONS, ids=lambda x: str(x)[:30])
def test_client_functions_accept_the_clean_value(
    name: str, function: Callable[[str], object]
) -> None:
    function("")  # proves the refusals above come from the control character


def test_check_no_controls_names_the_argument_and_refuses_non_str() -> None:
    with pytest.raises(LocalProtocolError, match=r"^sender contains a control character U\+000A"):
        check_no_controls("a\nb", "sender")
    with pytest.raises(LocalProtocolError, match="lone surrogate"):
        check_no_controls("a\ud800", "x")
    with pytest.raises(LocalProtocolError, match="must be a str"):
        check_no_controls(b"abc", "x")  # type: ignore[arg-type]  # misuse on purpose
    check_no_controls("plain text with spaces ü", "x")


ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
FORMATTERS: list[Callable[[str], bytes]] = [
    lambda v: format_path(v, smtputf8=True, allow_null=True),
    lambda v: format_path(v + "@example.com", smtputf8=True),
    lambda v: format_path(f'"{v}"@example.com', smtputf8=True),
    format_domain,
    check_esmtp_keyword,
    lambda v: check_esmtp_value(v, smtputf8=True),
    lambda v: format_text_argument(v, "arg"),
]


@given(value=ANY_TEXT, index=st.integers(0, len(FORMATTERS) - 1))
def test_no_formatter_output_contains_cr_lf_nul(value: str, index: int) -> None:
    try:
        out = FORMATTERS[index](value)
    except LocalProtocolError:
        return
    assert b"\r" not in out and b"\n" not in out and b"\x00" not in out
    assert b"\xc2\x85" not in out and b"\xe2\x80\xa8" not in out


# -- format_path: local parts --------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "user@example.com",
        "first.last@example.com",
        "a!#$%&'*+-/=?^_`{|}~@example.com",
        '"john doe"@example.com',
        '"a\\"b"@example.com',
        '"a\\\\b"@example.com',
        '"a@b"@example.com',
        '"<x>"@example.com',
        '""@example.com',
        "user@sub-domain.example.co.uk",
        "user@a",
        "user@123.example",
    ],
)
def test_format_path_valid(address: str) -> None:
    assert format_path(address) == b"<" + address.encode() + b">"


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("user", "no '@domain'"),
        ("@example.com", "invalid local part"),
        ("a..b@example.com", "invalid local part"),
        (".a@example.com", "invalid local part"),
        ("a.@example.com", "invalid local part"),
        ("a b@example.com", "invalid local part"),
        ("a,b@example.com", "invalid local part"),
        ("a@b@example.com", "invalid local part"),
        ('"unclosed@example.com', "quoted local part"),
        ('"a"b"@example.com', "quoted local part"),
        ('"a\\"@example.com', "quoted local part"),
        ("<user@example.com>", "angle brackets"),
        ("user@example.com>", "angle brackets"),
        ("user@", "empty domain"),
        ("user@-example.com", "bad label"),
        ("user@example-.com", "bad label"),
        ("user@exa_mple.com", "bad label"),
        ("user@example..com", "bad label"),
        ("user@example.com.", "bad label"),
        ("user@" + "a" * 64 + ".com", "bad label"),
    ],
)
def test_format_path_invalid(address: str, message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        format_path(address)


def test_validate_mailbox_server_reply_codes() -> None:
    validate_mailbox("user@example.com")
    with pytest.raises(SyntaxErrorInCommand) as info:
        validate_mailbox("a..b@example.com")
    assert (info.value.code, info.value.enhanced) == (553, "5.1.3")
    with pytest.raises(SyntaxErrorInCommand) as info:
        validate_mailbox("a" * 65 + "@example.com")
    assert info.value.code == 501


def test_format_path_names_the_argument() -> None:
    with pytest.raises(LocalProtocolError, match=r"^recipient: "):
        format_path("nope", what="recipient")


def test_null_path_only_when_allowed() -> None:
    assert format_path("", allow_null=True) == b"<>"
    with pytest.raises(LocalProtocolError, match="null path"):
        format_path("")


def test_postmaster_without_domain_only_when_allowed() -> None:
    assert format_path("Postmaster", allow_postmaster=True) == b"<Postmaster>"
    with pytest.raises(LocalProtocolError):
        format_path("Postmaster")


# -- lengths, at and past each bound ---------------------------------------------------------


def test_local_part_64_ok_65_refused() -> None:
    assert format_path("a" * 64 + "@example.com")
    with pytest.raises(LocalProtocolError, match="local part is longer than 64"):
        format_path("a" * 65 + "@example.com")


def test_local_part_counted_in_octets() -> None:
    assert format_path("ä" * 32 + "@example.com", smtputf8=True)  # 64 octets
    with pytest.raises(LocalProtocolError, match="longer than 64 octets"):
        format_path("ä" * 32 + "a@example.com", smtputf8=True)  # 65 octets, 33 chars


def _domain(octets: int) -> str:
    labels = []
    remaining = octets
    while remaining > 0:
        size = min(63, remaining)
        if remaining - size == 1:  # never leave a trailing dot-only remainder
            size -= 1
        labels.append("d" * size)
        remaining -= size + 1
    domain = ".".join(labels)
    assert len(domain) == octets
    return domain


def test_domain_255_ok_256_refused() -> None:
    assert format_domain(_domain(255))
    with pytest.raises(LocalProtocolError, match="longer than 255"):
        format_domain(_domain(256))


def test_path_256_ok_257_refused() -> None:
    # "<" + 64 local + "@" + 189 domain + ">" = 256 octets
    assert len(format_path("l" * 64 + "@" + _domain(189))) == 256
    with pytest.raises(LocalProtocolError, match="path is longer than 256"):
        format_path("l" * 64 + "@" + _domain(190))


def test_path_counted_in_octets() -> None:
    path = format_path("ü" * 32 + "@" + _domain(189), smtputf8=True)
    assert len(path) == 256
    with pytest.raises(LocalProtocolError, match="path is longer than 256"):
        format_path("ü" * 32 + "@ü" + _domain(188), smtputf8=True)


def test_utf8_domain_counted_in_octets() -> None:
    validate_domain("ü." * 84 + "com", utf8=True)  # 84*3 + 3 = 255 octets, 171 chars
    with pytest.raises(SyntaxErrorInCommand, match="longer than 255"):
        validate_domain("ü." * 84 + "comx", utf8=True)  # 256 octets


def test_command_line_512_ok_513_refused() -> None:
    check_command_line(b"x" * 510 + b"\r\n")
    with pytest.raises(LocalProtocolError, match="513 octets"):
        check_command_line(b"x" * 511 + b"\r\n")


# -- address literals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "literal",
    [
        "[127.0.0.1]",
        "[255.255.255.255]",
        "[0.0.0.0]",
        "[IPv6:::1]",
        "[IPv6:2001:db8::1]",
        "[ipv6:2001:DB8:0:0:0:0:0:1]",
        "[IPv6:::ffff:192.0.2.1]",
        "[x-tag:some-content]",
    ],
)
def test_address_literal_valid(literal: str) -> None:
    assert format_path("u@" + literal) == f"<u@{literal}>".encode()
    assert format_domain(literal) == literal.encode()
    assert parse_domain(literal.encode()) == literal


@pytest.mark.parametrize(
    "literal",
    [
        "[256.0.0.1]",
        "[1.2.3]",
        "[01.2.3.4]",
        "[1.2.3.4.5]",
        "[IPv6:2001:db8::g]",
        "[IPv6:1:2:3:4:5:6:7:8:9]",
        "[IPv6:fe80::1%eth0]",
        "[IPv6:]",
        "[::1]",
        "[tag:]",
        "[tag:a[b]",
        "[:content]",
        "[1.2.3.4",
        "1.2.3.4]",
        "[]",
    ],
)
def test_address_literal_invalid(literal: str) -> None:
    with pytest.raises(LocalProtocolError):
        format_path("u@" + literal)
    with pytest.raises(LocalProtocolError):
        format_domain(literal)
    with pytest.raises(SyntaxErrorInCommand):
        parse_domain(literal.encode())


# -- SMTPUTF8 ------------------------------------------------------------------------------


def test_non_ascii_needs_smtputf8() -> None:
    with pytest.raises(LocalProtocolError, match="needs SMTPUTF8"):
        format_path("jörg@example.com")
    with pytest.raises(LocalProtocolError, match="needs SMTPUTF8"):
        format_path("joerg@bücher.example")
    assert format_path("jörg@bücher.example", smtputf8=True) == ("<jörg@bücher.example>".encode())
    assert format_path('"jö rg"@example.com', smtputf8=True) == '<"jö rg"@example.com>'.encode()


@pytest.mark.parametrize(
    "domain",
    ["-ü.example", "ü-.example", "ü!.example", "u\u0308.example", "ü" * 60 + ".example"],
)
def test_bad_u_labels_refused(domain: str) -> None:
    with pytest.raises(LocalProtocolError):
        format_path("a@" + domain, smtputf8=True)


def test_format_domain_is_ascii_only() -> None:
    with pytest.raises(LocalProtocolError, match="A-label"):
        format_domain("bücher.example")
    assert format_domain("xn--bcher-kva.example") == b"xn--bcher-kva.example"


@pytest.mark.parametrize("name", ["", "a b", "host_name", "-a", "a.", "user@host", "[x]"])
def test_format_domain_refuses(name: str) -> None:
    with pytest.raises(LocalProtocolError):
        format_domain(name)


# -- ESMTP keyword and value -----------------------------------------------------------------


def test_esmtp_keyword() -> None:
    assert check_esmtp_keyword("X-FOO1") == b"X-FOO1"
    assert check_esmtp_keyword("1") == b"1"
    for bad in ["", "-X", "X_Y", "X=Y", "X Y", "É"]:
        with pytest.raises(LocalProtocolError, match="esmtp-keyword"):
            check_esmtp_keyword(bad)


def test_esmtp_value() -> None:
    assert check_esmtp_value("!<>~") == b"!<>~"
    for bad in ["", "a=b", "a b"]:
        with pytest.raises(LocalProtocolError, match="esmtp-value"):
            check_esmtp_value(bad)
    with pytest.raises(LocalProtocolError, match="SMTPUTF8"):
        check_esmtp_value("ä")
    assert check_esmtp_value("ä", smtputf8=True) == "ä".encode()


# -- free text -------------------------------------------------------------------------------


def test_format_text_argument() -> None:
    assert format_text_argument("John Smith", "VRFY argument") == b"John Smith"
    assert format_text_argument("", "HELP topic") == b""
    with pytest.raises(LocalProtocolError, match="VRFY argument must not be empty"):
        format_text_argument("", "VRFY argument", allow_empty=False)
    with pytest.raises(LocalProtocolError, match="ASCII"):
        format_text_argument("Jörg", "VRFY argument")
    with pytest.raises(LocalProtocolError, match="space"):
        format_text_argument(" x", "VRFY argument")


# -- xtext and utf-8-addr-xtext --------------------------------------------------------------


def test_xtext_known_values() -> None:
    assert xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d"
    assert xtext_encode("\r\n") == "+0D+0A"
    assert xtext_encode("é") == "+C3+A9"
    assert xtext_decode("a+2Bb+3Dc+20d") == "a+b=c d"
    for bad in ["+2b", "+", "+2", "a=b", "a b", "é", "+C3", "a+0D+0Ab", "+00", "+7F", "+C2+85"]:
        with pytest.raises(SyntaxErrorInCommand):
            xtext_decode(bad)


def test_xtext_encode_refuses_surrogates() -> None:
    with pytest.raises(LocalProtocolError):
        xtext_encode("\ud800")


def test_utf8_addr_xtext_known_values() -> None:
    assert utf8_addr_xtext("jö+x@ä.de") == "j\\x{F6}\\x{2B}x@\\x{E4}.de"
    assert utf8_addr_xtext("a\\b=c d") == "a\\x{5C}b\\x{3D}c\\x{20}d"
    assert utf8_addr_xtext_decode("j\\x{F6}x@\\x{1F600}.de") == "jöx@\U0001f600.de"
    assert utf8_addr_xtext_decode("jö@x", allow_utf8=True) == "jö@x"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "a\\x{f6}",
        "a\\x{00F6}",
        "a\\x{1}",
        "a\\x{85}",
        "a\\x{2028}",
        "a\\x{D800}",
        "a\\x{110000}",
        "a\\x{41}",
        "a\\b",
        "a+b",
        "jö",
    ],
)
def test_utf8_addr_xtext_decode_refuses(bad: str) -> None:
    with pytest.raises(SyntaxErrorInCommand):
        utf8_addr_xtext_decode(bad)


def test_utf8_addr_unitext_refuses_controls() -> None:
    with pytest.raises(LocalProtocolError):
        utf8_addr_xtext("a\x00b@x")
    with pytest.raises(SyntaxErrorInCommand):
        utf8_addr_xtext_decode("a\u2028b", allow_utf8=True)


NO_CONTROLS = st.characters(codec="utf-8").filter(
    lambda c: not (c < " " or "\x7f" <= c <= "\x9f" or c in "\u2028\u2029")
)
NO_CONTROLS_RE = re.compile("[^\x00-\x1f\x7f-\x9f\u2028\u2029]")


@given(st.text(NO_CONTROLS))
def test_xtext_round_trip(value: str) -> None:
    encoded = xtext_encode(value)
    assert all(0x21 <= ord(c) <= 0x7E and c != "=" for c in encoded)
    assert xtext_decode(encoded) == value


@given(st.text(st.characters(codec="utf-8")))
def test_xtext_decoding_to_a_control_character_is_refused(value: str) -> None:
    """RFC 3461 §4.2, §4.4: ENVID and ORCPT are printable; no decoded control."""
    encoded = xtext_encode(value)
    if all(NO_CONTROLS_RE.fullmatch(c) for c in value):
        assert xtext_decode(encoded) == value
    else:
        with pytest.raises(SyntaxErrorInCommand, match="control character"):
            xtext_decode(encoded)


@given(st.text(NO_CONTROLS, min_size=1))
def test_utf8_addr_xtext_round_trip(value: str) -> None:
    encoded = utf8_addr_xtext(value)
    assert encoded.isascii() and " " not in encoded and "=" not in encoded and "+" not in encoded
    assert utf8_addr_xtext_decode(encoded) == value


# -- server side -----------------------------------------------------------------------------


def test_parse_path_basic_and_null() -> None:
    assert parse_path(b"<user@example.com>", smtputf8=False, allow_null=False) == (
        "user@example.com"
    )
    assert parse_path(b"<>", smtputf8=False, allow_null=True) == ""
    with pytest.raises(SyntaxErrorInCommand) as info:
        parse_path(b"<>", smtputf8=False, allow_null=False)
    assert info.value.code == 553


def test_parse_path_drops_source_route() -> None:
    raw = b"<@relay.one,@relay.two:user@example.com>"
    assert parse_path(raw, smtputf8=False, allow_null=False) == "user@example.com"
    for bad in [b"<@relay.one user@example.com>", b"<@bad_domain:u@example.com>", b"<@a,b:u@x>"]:
        with pytest.raises(SyntaxErrorInCommand):
            parse_path(bad, smtputf8=False, allow_null=False)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"user@example.com", 501),
        (b"<user@example.com", 501),
        (b"<user>", 553),
        (b"<a..b@example.com>", 553),
        (b"<j\xc3\xb6rg@example.com>", 553),
        (b"<" + b"a" * 65 + b"@example.com>", 501),
        (b"<a@" + b"b" * 260 + b">", 501),
    ],
)
def test_parse_path_refuses_with_reply_code(raw: bytes, code: int) -> None:
    with pytest.raises(SyntaxErrorInCommand) as info:
        parse_path(raw, smtputf8=False, allow_null=True)
    assert info.value.code == code
    assert info.value.message.isascii()


def test_parse_path_utf8() -> None:
    raw = "<jörg@bücher.example>".encode()
    assert parse_path(raw, smtputf8=True, allow_null=False) == "jörg@bücher.example"
    with pytest.raises(SyntaxErrorInCommand) as info:
        parse_path(raw, smtputf8=False, allow_null=False)
    assert (info.value.code, info.value.enhanced) == (553, "5.6.7")
    with pytest.raises(SyntaxErrorInCommand):
        parse_path(b"<j\xff@x>", smtputf8=True, allow_null=False)


MAILBOXES = st.one_of(
    st.from_regex(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,10}(\.[a-z0-9-]{1,10}){0,3}", fullmatch=True),
    st.from_regex(r'"([ !#-\[\]-~]|\\[ -~]){0,20}"', fullmatch=True),
).flatmap(
    lambda local: st.one_of(
        st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\.[a-z0-9]{1,8}){0,3}", fullmatch=True),
        st.ip_addresses(v=4).map(lambda ip: f"[{ip}]"),
        st.ip_addresses(v=6).map(lambda ip: f"[IPv6:{ip}]"),
    ).map(lambda domain: f"{local}@{domain}")
)


@given(mailbox=MAILBOXES, params=st.sampled_from([b"", b" SIZE=10", b"  BODY=8BITMIME X"]))
def test_format_split_parse_round_trip(mailbox: str, params: bytes) -> None:
    wire = format_path(mailbox)
    path, rest = split_command_path(wire + params)
    assert path == wire
    assert rest == params.strip(b" ")
    assert parse_path(path, smtputf8=False, allow_null=False) == mailbox


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (b"<a@b>", (b"<a@b>", b"")),
        (b"<a@b> SIZE=10 BODY=8BITMIME", (b"<a@b>", b"SIZE=10 BODY=8BITMIME")),
        (b' <"a b> c"@x> SIZE=1', (b'<"a b> c"@x>', b"SIZE=1")),
        (b'<"a\\">"@x>', (b'<"a\\">"@x>', b"")),
        (b"<> RET=HDRS", (b"<>", b"RET=HDRS")),
    ],
)
def test_split_command_path(args: bytes, expected: tuple[bytes, bytes]) -> None:
    assert split_command_path(args) == expected


@pytest.mark.parametrize("args", [b"a@b", b"<a@b", b'<"a>@b', b"<a@b>SIZE=1", b""])
def test_split_command_path_refuses(args: bytes) -> None:
    with pytest.raises(SyntaxErrorInCommand) as info:
        split_command_path(args)
    assert info.value.code == 501


def test_parse_domain() -> None:
    assert parse_domain(b"client.example.com") == "client.example.com"
    for bad in [b"", b"client example", b"b\xc3\xbccher.example", b"a_b", b"[1.2.3.4"]:
        with pytest.raises(SyntaxErrorInCommand) as info:
            parse_domain(bad)
        assert info.value.code == 501


def test_parse_esmtp_params() -> None:
    assert parse_esmtp_params(b"size=100 BODY=8BITMIME  SMTPUTF8") == {
        "SIZE": "100",
        "BODY": "8BITMIME",
        "SMTPUTF8": None,
    }
    assert parse_esmtp_params(b"") == {}
    for bad in [b"SIZE=1 size=2", b"SIZE=", b"-X", b"A=b=c", b"X=\x01", b"X=\xc3\xa4"]:
        with pytest.raises(SyntaxErrorInCommand):
            parse_esmtp_params(bad)


def test_parse_esmtp_params_utf8_values_under_smtputf8() -> None:
    raw = "ORCPT=utf-8;jörg@x".encode()
    assert parse_esmtp_params(raw, smtputf8=True) == {"ORCPT": "utf-8;jörg@x"}
    assert parse_esmtp_params(raw + b" SMTPUTF8")["ORCPT"] == "utf-8;jörg@x"
    with pytest.raises(SyntaxErrorInCommand):
        parse_esmtp_params(raw)


@given(
    st.dictionaries(
        st.from_regex(r"[A-Z0-9][A-Z0-9-]{0,10}", fullmatch=True),
        st.one_of(st.none(), st.from_regex(r"[!-<>-~]{1,10}", fullmatch=True)),
        max_size=5,
    )
)
def test_esmtp_params_round_trip(params: dict[str, str | None]) -> None:
    wire = b" ".join(
        check_esmtp_keyword(key) + (b"" if value is None else b"=" + check_esmtp_value(value))
        for key, value in params.items()
    )
    assert parse_esmtp_params(wire) == params


@given(raw=st.binary(max_size=300), utf8=st.booleans())
def test_server_parsers_raise_only_syntax_errors(raw: bytes, utf8: bool) -> None:
    for parse in (
        lambda: parse_path(raw, smtputf8=utf8, allow_null=True, allow_postmaster=utf8),
        lambda: parse_domain(raw),
        lambda: parse_esmtp_params(raw, smtputf8=utf8),
        lambda: split_command_path(raw),
        lambda: xtext_decode(raw.decode("latin-1")),
        lambda: utf8_addr_xtext_decode(raw.decode("latin-1"), allow_utf8=utf8),
    ):
        try:
            parse()
        except SyntaxErrorInCommand as error:
            assert error.code in (501, 553)
            assert error.message.isascii() and error.message.isprintable()
