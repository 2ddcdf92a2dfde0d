"""xtext (RFC 3461 §4) and utf-8-addr-xtext / utf-8-addr-unitext (RFC 6533 §3).

The encodings of DSN parameters: ``ENVID`` and ``ORCPT`` values travel as xtext, and an
internationalised ``ORCPT`` address as utf-8-addr-xtext. Encoders serve the client side
and raise ``LocalProtocolError``; decoders serve the server side and raise
``SyntaxErrorInCommand`` (501), like the rest of the grammar (``wire.grammar``).
"""

from __future__ import annotations

import re

from .errors import LocalProtocolError
from .grammar import _fail, _find_control, check_no_controls

__all__ = ["utf8_addr_xtext", "utf8_addr_xtext_decode", "xtext_decode", "xtext_encode"]

# RFC 3461 §4: xchar = "!" (33) to "~" (126) except "+" and "=";
#   hexchar = "+" followed by two upper case hexadecimal digits
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")

# RFC 6533 §3: QCHAR = %x21-2a / %x2c-3c / %x3e-5b / %x5d-7e (printable ASCII except
#   "+", "=", "\"); EmbeddedUnicodeChar = "\x{" HEXPOINT "}" (upper-case hex, no
#   leading zeros); utf-8-addr-unitext also allows UTF8-2/3/4 (QUCHAR).
_QCHAR = re.compile(r"[\x21-\x2a\x2c-\x3c\x3e-\x5b\x5d-\x7e]")
_EMBEDDED_UNICODE = re.compile(r"\\x\{([1-9A-F][0-9A-F]{0,5})\}")


def xtext_encode(value: str) -> str:
    """RFC 3461 §4 xtext: each octet of ``value`` (UTF-8) outside "!".."~", and "+"
    and "=", becomes ``+XX`` (upper-case hex). Raises ``LocalProtocolError`` for lone
    surrogates (not encodable)."""
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"{value!a} is not encodable as UTF-8") from None
    return "".join(
        chr(octet) if 0x21 <= octet <= 0x7E and octet not in (0x2B, 0x3D) else f"+{octet:02X}"
        for octet in raw
    )


def xtext_decode(text: str) -> str:
    """Decode RFC 3461 §4 xtext. Raises ``SyntaxErrorInCommand`` (501) when ``text`` is
    not xtext (lower-case hex, stray ``+`` or ``=``) or decodes to invalid UTF-8."""
    if not text.isascii() or _XTEXT.fullmatch(text) is None:
        raise _fail(f"invalid xtext {text!a} (RFC 3461 section 4)")
    raw = _HEXCHAR.sub(lambda match: chr(int(match[1], 16)), text).encode("latin-1")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(f"xtext {text!a} does not decode to UTF-8") from None


def utf8_addr_xtext(address: str) -> str:
    """RFC 6533 §3 utf-8-addr-xtext: QCHARs as is, every other character as ``\\x{HEX}``.

    The result is printable ASCII without ``+``, ``=`` or space, so it fits an ORCPT
    value (``ORCPT=utf-8;<result>``) even without SMTPUTF8. Raises
    ``LocalProtocolError`` for what ``check_no_controls`` refuses: an address never
    contains those, so none is encoded.
    """
    check_no_controls(address, "address")
    return "".join(char if _QCHAR.fullmatch(char) else f"\\x{{{ord(char):X}}}" for char in address)


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
