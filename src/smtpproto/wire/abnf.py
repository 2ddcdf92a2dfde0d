"""RFC 5321 / RFC 6531 grammar, client side: validate what the caller sends.

Theory of operation: every grammar rule is implemented once, as a validator over
``str`` that raises ``SyntaxErrorInCommand`` (``wire.grammar``, re-exported here). The
``format_*`` / ``check_*`` functions here call those validators on the caller's input
and turn a failure into ``LocalProtocolError`` naming the argument; they return wire
bytes only when everything passed, so no byte exists for bad input. The server side,
``wire.parsing`` (``parse_*``, the xtext decoders), decodes the received octets
(ASCII, or UTF-8 under SMTPUTF8), then calls the very same validators and lets
``SyntaxErrorInCommand`` through.

Length limits (RFC 5321 §4.5.3.1) are counted in octets of the UTF-8 wire form.

Decision on angle brackets: client-side functions take the bare address
(``user@example.com``) and refuse ``<`` / ``>`` outside a quoted local part, so an
address can never close its own path early; server-side ``parse_path`` takes the
bracketed path as received.
"""

from __future__ import annotations

from .errors import LocalProtocolError
from .grammar import (
    _ESMTP_KEYWORD,
    _QCHAR,
    _SIMPLE_DOMAIN,
    _SIMPLE_MAILBOX,
    MAX_COMMAND_LINE,
    MAX_DOMAIN,
    MAX_LOCAL_PART,
    MAX_PATH,
    MAX_TEXT_LINE,
    SyntaxErrorInCommand,
    _find_control,
    _validate_esmtp_value,
    _validate_path_content,
    validate_domain,
    validate_mailbox,
)

__all__ = [
    "MAX_COMMAND_LINE",
    "MAX_DOMAIN",
    "MAX_LOCAL_PART",
    "MAX_PATH",
    "MAX_TEXT_LINE",
    "SyntaxErrorInCommand",
    "check_command_line",
    "check_esmtp_keyword",
    "check_esmtp_value",
    "check_no_controls",
    "format_domain",
    "format_path",
    "format_text_argument",
    "utf8_addr_xtext",
    "validate_domain",
    "validate_mailbox",
    "xtext_encode",
]


# -- client side: validate the caller's input, produce bytes ----------------------------


def _local(error: SyntaxErrorInCommand, what: str) -> LocalProtocolError:
    return LocalProtocolError(f"{what}: {error.message}")


def check_no_controls(value: str, what: str) -> None:
    """Refuse C0 controls, DEL, C1 controls (U+0085), U+2028, U+2029, lone surrogates.

    These must never reach the wire: CR and LF would end the command early, and the
    others are line breaks for some software. Raises ``LocalProtocolError`` naming
    ``what``.
    """
    if not isinstance(value, str):
        raise LocalProtocolError(f"{what} must be a str, got {type(value).__name__}")
    problem = _find_control(value)
    if problem is not None:
        raise LocalProtocolError(f"{what} contains a {problem}")


def format_path(
    address: str,
    *,
    smtputf8: bool = False,
    allow_null: bool = False,
    allow_postmaster: bool = False,
    what: str = "address",
) -> bytes:
    """The wire path ``b"<local@domain>"`` for a bare address (RFC 5321 §4.1.2).

    ``""`` gives the null reverse-path ``b"<>"`` only when ``allow_null`` (MAIL FROM);
    ``"Postmaster"`` without a domain only when ``allow_postmaster`` (RCPT TO, §4.1.1.3).
    Angle brackets are refused outside a quoted local part: pass the bare address.
    Non-ASCII needs ``smtputf8`` and is sent as UTF-8 (RFC 6531 §3.3). Raises
    ``LocalProtocolError`` naming ``what``.
    """
    if type(address) is str and address.isascii():
        match = _SIMPLE_MAILBOX.fullmatch(address)
        if (
            match is not None
            and match.end(1) <= MAX_LOCAL_PART
            and len(address) - match.end(1) - 1 <= MAX_DOMAIN
            and len(address) + 2 <= MAX_PATH
        ):
            return b"<" + address.encode("ascii") + b">"
    check_no_controls(address, what)
    if address == "":
        if allow_null:
            return b"<>"
        raise LocalProtocolError(f"{what} is empty (the null path <> is only valid in MAIL)")
    if address.startswith("<") or address.endswith(">"):
        raise LocalProtocolError(f"{what}: pass the bare address, without angle brackets")
    try:
        _validate_path_content(address, utf8=smtputf8, allow_postmaster=allow_postmaster)
    except SyntaxErrorInCommand as error:
        raise _local(error, what) from None
    return b"<" + address.encode("utf-8") + b">"


def format_domain(name: str, *, what: str = "EHLO name") -> bytes:
    """The argument of EHLO/HELO/LHLO: a domain or an address literal, in ASCII.

    RFC 5321 §4.1.1.1 (``"EHLO" SP ( Domain / address-literal )``). The client cannot
    know yet whether the server supports SMTPUTF8, so an internationalised name must be
    given in its A-label (``xn--``) form. Raises ``LocalProtocolError``.
    """
    if (
        type(name) is str
        and name.isascii()
        and len(name) <= MAX_DOMAIN
        and _SIMPLE_DOMAIN.fullmatch(name) is not None
    ):
        return name.encode("ascii")
    check_no_controls(name, what)
    if not name.isascii():
        raise LocalProtocolError(f"{what} {name!a} is not ASCII: use its A-label (xn--) form")
    try:
        validate_domain(name)
    except SyntaxErrorInCommand as error:
        raise _local(error, what) from None
    return name.encode("ascii")


def check_esmtp_keyword(keyword: str) -> bytes:
    """An ESMTP parameter keyword as bytes (RFC 5321 §4.1.2 esmtp-keyword)."""
    check_no_controls(keyword, "ESMTP parameter keyword")
    if not keyword.isascii() or _ESMTP_KEYWORD.fullmatch(keyword) is None:
        raise LocalProtocolError(
            f"invalid ESMTP parameter keyword {keyword!a} (RFC 5321 section 4.1.2 esmtp-keyword)"
        )
    return keyword.encode("ascii")


def check_esmtp_value(value: str, *, smtputf8: bool = False) -> bytes:
    """An ESMTP parameter value as bytes (RFC 5321 §4.1.2 esmtp-value).

    Printable ASCII except ``=`` and space, at least one character; with ``smtputf8``
    also non-ASCII characters (RFC 6531 §3.3), sent as UTF-8.
    """
    check_no_controls(value, "ESMTP parameter value")
    try:
        _validate_esmtp_value(value, utf8=smtputf8)
    except SyntaxErrorInCommand as error:
        raise LocalProtocolError(error.message) from None
    return value.encode("utf-8")


def format_text_argument(value: str, what: str, *, allow_empty: bool = True) -> bytes:
    """A free-text argument (VRFY, EXPN, HELP; RFC 5321 §4.1.1.6-8): printable ASCII and SP.

    Leading or trailing spaces are refused (they would be lost or misparsed); the whole
    command line is checked separately with ``check_command_line``.
    """
    check_no_controls(value, what)
    if not value:
        if allow_empty:
            return b""
        raise LocalProtocolError(f"{what} must not be empty")
    if not value.isascii():
        raise LocalProtocolError(f"{what} must be ASCII, got {value!a}")
    if value != value.strip(" "):
        raise LocalProtocolError(f"{what} must not start or end with a space")
    return value.encode("ascii")


def check_command_line(line: bytes) -> None:
    """Refuse a command line (with its CRLF) longer than 512 octets (RFC 5321 §4.5.3.1.4).

    Extensions may raise the limit (RFC 1870 section 3 adds room for SIZE and friends); the
    caller decides which limit applies and calls this only for the base limit.
    """
    if len(line) > MAX_COMMAND_LINE:
        raise LocalProtocolError(
            f"command line is {len(line)} octets, more than {MAX_COMMAND_LINE} "
            "(RFC 5321 section 4.5.3.1.4)"
        )


# -- xtext and utf-8-addr-xtext encoders (decoders: ``wire.parsing``) ------------------


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


def utf8_addr_xtext(address: str) -> str:
    """RFC 6533 §3 utf-8-addr-xtext: QCHARs as is, every other character as ``\\x{HEX}``.

    The result is printable ASCII without ``+``, ``=`` or space, so it fits an ORCPT
    value (``ORCPT=utf-8;<result>``) even without SMTPUTF8. Raises
    ``LocalProtocolError`` for what ``check_no_controls`` refuses: an address never
    contains those, so none is encoded.
    """
    check_no_controls(address, "address")
    return "".join(char if _QCHAR.fullmatch(char) else f"\\x{{{ord(char):X}}}" for char in address)
