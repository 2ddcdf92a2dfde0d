"""Server side of the grammar: parse the arguments a client sent (RFC 5321 §4.1).

Theory of operation: the received octets are decoded (ASCII, or UTF-8 under SMTPUTF8,
RFC 6531 §3.3), then checked by the very validators the client side uses
(``wire.grammar``); every failure is a ``SyntaxErrorInCommand`` carrying the reply
(501 for syntax, 553 for a mailbox not allowed). ``parse_path`` takes the bracketed
path as received; ``split_command_path`` finds where it ends. The DSN decoders (xtext,
RFC 3461 §4; utf-8-addr-xtext, RFC 6533 §3) are here too; their encoders are in
``wire.abnf``.
"""

from __future__ import annotations

import re

from .grammar import (
    _ESMTP_KEYWORD,
    _QCHAR,
    MAX_PATH,
    SyntaxErrorInCommand,
    _fail,
    _find_control,
    _validate_esmtp_value,
    _validate_path_content,
    validate_domain,
)

__all__ = [
    "parse_domain",
    "parse_esmtp_params",
    "parse_path",
    "split_command_path",
    "utf8_addr_xtext_decode",
    "xtext_decode",
]

# RFC 3461 §4: xchar = "!" (33) to "~" (126) except "+" and "=";
#   hexchar = "+" followed by two upper case hexadecimal digits
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")

# RFC 6533 §3: EmbeddedUnicodeChar (see ``_QCHAR`` in ``wire.grammar``)
_EMBEDDED_UNICODE = re.compile(r"\\x\{([1-9A-F][0-9A-F]{0,5})\}")


def _decode(raw: bytes, *, utf8: bool, what: str) -> str:
    if raw.isascii():
        return raw.decode("ascii")
    if not utf8:
        raise _fail(f"non-ASCII {what} needs SMTPUTF8 (RFC 6531)", code=553, enhanced="5.6.7")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(f"{what} is not valid UTF-8", code=553, enhanced="5.6.7") from None


def split_command_path(args: bytes) -> tuple[bytes, bytes]:
    """Split ``<path> params`` into the bracketed path and the rest (spaces stripped).

    The path ends at the first ``>`` outside a quoted local part; ``"a b>c"@x`` and
    ``"\\">"@x`` are handled. Leading spaces before ``<`` are tolerated (common client
    behaviour, RFC 5321 §4.1.1.2 shows none). Raises ``SyntaxErrorInCommand`` (501) when
    there is no bracketed path or the path is not followed by a space or the end.
    """
    args = args.lstrip(b" ")
    if not args.startswith(b"<"):
        raise _fail("the path must be enclosed in angle brackets <...>", enhanced="5.5.2")
    quoted = False
    index = 1
    length = len(args)
    while index < length:
        octet = args[index]
        if quoted and octet == 0x5C:  # quoted-pairSMTP: skip the escaped octet
            index += 2
            continue
        if octet == 0x22:
            quoted = not quoted
        elif octet == 0x3E and not quoted:
            rest = args[index + 1 :]
            if rest and not rest.startswith(b" "):
                raise _fail("expected a space after the path", enhanced="5.5.2")
            return args[: index + 1], rest.strip(b" ")
        index += 1
    raise _fail("the path has no closing '>'", enhanced="5.5.2")


def parse_path(
    raw: bytes, *, smtputf8: bool, allow_null: bool, allow_postmaster: bool = False
) -> str:
    """Parse a bracketed path as received; return the mailbox (``""`` for ``<>``).

    Source routes (``<@a,@b:user@d>``) are accepted and the route dropped (RFC 5321
    §4.1.2 A-d-l, Appendix C: "SHOULD ... ignore the route information"). Raises
    ``SyntaxErrorInCommand``: 501 for structure and length, 553 for a bad mailbox.
    """
    if len(raw) > MAX_PATH:
        raise _fail(f"path is longer than {MAX_PATH} octets (RFC 5321 section 4.5.3.1.3)")
    text = _decode(raw, utf8=smtputf8, what="path")
    if len(text) < 2 or text[0] != "<" or text[-1] != ">":
        raise _fail("the path must be enclosed in angle brackets <...>", enhanced="5.5.2")
    mailbox = text[1:-1]
    if mailbox == "":
        if allow_null:
            return ""
        raise _fail("the null path <> is not allowed here", code=553, enhanced="5.1.3")
    if mailbox.startswith("@"):
        # A-d-l = At-domain *( "," At-domain ); At-domain = "@" Domain
        route, colon, mailbox = mailbox.partition(":")
        if not colon:
            raise _fail("source route without ':'", enhanced="5.5.2")
        for at_domain in route.split(","):
            if not at_domain.startswith("@"):
                raise _fail(f"invalid source route {route!a}", enhanced="5.5.2")
            validate_domain(at_domain[1:], utf8=smtputf8)
    _validate_path_content(mailbox, utf8=smtputf8, allow_postmaster=allow_postmaster)
    return mailbox


def parse_domain(raw: bytes) -> str:
    """Parse the EHLO/HELO/LHLO argument: an ASCII domain or address literal.

    RFC 5321 §4.1.1.1. Raises ``SyntaxErrorInCommand`` (501 5.5.4).
    """
    try:
        text = _decode(raw, utf8=False, what="domain")
        validate_domain(text)
    except SyntaxErrorInCommand as error:
        raise _fail(error.message) from None
    return text


def parse_esmtp_params(raw: bytes, *, smtputf8: bool = False) -> dict[str, str | None]:
    """Parse ``KEY[=VALUE] ...`` (RFC 5321 §4.1.2 Mail-parameters / Rcpt-parameters).

    Keywords are upper-cased; a repeated keyword is refused; a keyword without ``=``
    maps to ``None``; ``KEY=`` (empty value) is refused. UTF-8 values are accepted when
    ``smtputf8`` is true or the list itself contains ``SMTPUTF8`` (RFC 6531 §3.3).
    Several spaces between parameters are tolerated. Raises ``SyntaxErrorInCommand``.
    """
    if not raw.isascii():
        smtputf8 = smtputf8 or any(
            part.upper() == b"SMTPUTF8" for part in raw.split(b" ") if b"=" not in part
        )
    text = _decode(raw, utf8=smtputf8, what="parameters")
    params: dict[str, str | None] = {}
    for part in text.split(" "):
        if not part:
            continue
        keyword, equals, value = part.partition("=")
        if not keyword.isascii() or _ESMTP_KEYWORD.fullmatch(keyword) is None:
            raise _fail(f"invalid ESMTP parameter keyword {keyword!a}")
        keyword = keyword.upper()
        if keyword in params:
            raise _fail(f"parameter {keyword} given twice")
        if equals:
            _validate_esmtp_value(value, utf8=smtputf8)
            params[keyword] = value
        else:
            params[keyword] = None
    return params


# -- xtext and utf-8-addr-xtext decoders (encoders: ``wire.abnf``) ------------------


def xtext_decode(text: str) -> str:
    """Decode RFC 3461 §4 xtext. Raises ``SyntaxErrorInCommand`` (501) when ``text`` is
    not xtext (lower-case hex, stray ``+`` or ``=``), decodes to invalid UTF-8, or
    decodes to a control character (``+0D+0A``, ``+00``): every xtext value the server
    reads (ENVID and ORCPT, RFC 3461 §4.2, §4.4: printable characters; the AUTH=
    mailbox, RFC 4954 §5) forbids them, and an event must not carry a line break."""
    if not text.isascii() or _XTEXT.fullmatch(text) is None:
        raise _fail(f"invalid xtext {text!a} (RFC 3461 section 4)")
    raw = _HEXCHAR.sub(lambda match: chr(int(match[1], 16)), text).encode("latin-1")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(f"xtext {text!a} does not decode to UTF-8") from None
    problem = _find_control(decoded)
    if problem is not None:
        raise _fail(f"xtext {text!a} decodes to a {problem} (RFC 3461 section 4)")
    return decoded


def utf8_addr_xtext_decode(text: str, *, allow_utf8: bool = False) -> str:
    """Decode RFC 6533 §3 utf-8-addr-xtext (or utf-8-addr-unitext when ``allow_utf8``).

    ``\\x{HEX}`` must use upper-case hex without leading zeros and name a scalar value
    (no surrogates, at most U+10FFFF), not a control character, and not a character
    that has to appear as is. Raises ``SyntaxErrorInCommand`` (501).
    """
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            match = _EMBEDDED_UNICODE.match(text, index)
            if match is None:
                raise _fail(f"invalid \\x{{...}} escape in {text!a} (RFC 6533 section 3)")
            point = int(match[1], 16)
            if point > 0x10FFFF or 0xD800 <= point <= 0xDFFF:
                raise _fail(f"\\x{{{match[1]}}} is not a Unicode scalar value")
            if _find_control(chr(point)) is not None:
                raise _fail(f"\\x{{{match[1]}}} encodes a control character")
            if _QCHAR.fullmatch(chr(point)):
                raise _fail(f"\\x{{{match[1]}}} encodes a character that must be sent as is")
            out.append(chr(point))
            index = match.end()
            continue
        literal_utf8 = allow_utf8 and char >= "\u00a0" and _find_control(char) is None
        if not (_QCHAR.fullmatch(char) or literal_utf8):
            raise _fail(f"character {char!a} not allowed in utf-8-addr-xtext (RFC 6533 section 3)")
        out.append(char)
        index += 1
    if not out:
        raise _fail("empty utf-8-addr-xtext")
    return "".join(out)
