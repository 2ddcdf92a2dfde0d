"""RFC 5321 / RFC 6531 grammar: validate what the caller sends, parse what a client sent.

Theory of operation: every grammar rule is implemented once, as a validator over
``str`` that raises ``SyntaxErrorInCommand`` (a ``ValueError`` carrying the reply a server
should give). The client-side ``format_*`` / ``check_*`` functions call those validators
on the caller's input and turn a failure into ``LocalProtocolError`` naming the argument;
they return wire bytes only when everything passed, so no byte exists for bad input. The
server-side ``parse_*`` functions decode the received octets (ASCII, or UTF-8 under
SMTPUTF8), then call the very same validators and let ``SyntaxErrorInCommand`` through.

Length limits (RFC 5321 §4.5.3.1) are counted in octets of the UTF-8 wire form.

Decision on angle brackets: client-side functions take the bare address
(``user@example.com``) and refuse ``<`` / ``>`` outside a quoted local part, so an
address can never close its own path early; server-side ``parse_path`` takes the
bracketed path as received.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

from .errors import LocalProtocolError

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
    "parse_domain",
    "parse_esmtp_params",
    "parse_path",
    "split_command_path",
    "utf8_addr_xtext",
    "utf8_addr_xtext_decode",
    "validate_domain",
    "validate_mailbox",
    "xtext_decode",
    "xtext_encode",
]

#: RFC 5321 §4.5.3.1.1: "The maximum total length of a user name or other local-part
#: is 64 octets."
MAX_LOCAL_PART = 64
#: RFC 5321 §4.5.3.1.2: "The maximum total length of a domain name or number is 255
#: octets."
MAX_DOMAIN = 255
#: RFC 5321 §4.5.3.1.3: "The maximum total length of a reverse-path or forward-path is
#: 256 octets (including the punctuation and element separators)."
MAX_PATH = 256
#: RFC 5321 §4.5.3.1.4: "The maximum total length of a command line including the
#: command word and the <CRLF> is 512 octets."
MAX_COMMAND_LINE = 512
#: RFC 5321 §4.5.3.1.6: "The maximum total length of a text line including the <CRLF>
#: is 1000 octets (not counting the leading dot duplicated for transparency)."
MAX_TEXT_LINE = 1000


class SyntaxErrorInCommand(ValueError):
    """A command argument broke the grammar; carries the reply a server should send.

    ``code`` is 501 (syntax error in parameters or arguments, RFC 5321 §4.2.3) or 553
    (mailbox name not allowed); ``enhanced`` the RFC 3463 code (e.g. ``"5.1.3"``);
    ``message`` a human-readable reason, safe to put in a reply (ASCII, no controls).
    """

    def __init__(self, message: str, *, code: int = 501, enhanced: str = "5.5.4") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.enhanced = enhanced


# -- character classes ------------------------------------------------------------------

# Characters that must never reach the wire inside an argument: C0 controls (CR, LF,
# NUL, TAB...), DEL, the C1 controls (U+0085 NEL among them) and the Unicode line and
# paragraph separators, which some software turns into line breaks.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

# RFC 5322 §3.2.3: atext = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" /
#   "+" / "-" / "/" / "=" / "?" / "^" / "_" / "`" / "{" / "|" / "}" / "~"
# RFC 5321 §4.1.2: Dot-string = Atom *("." Atom); Atom = 1*atext
# RFC 6531 §3.3: atext =/ UTF8-non-ascii
_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~"
_DOT_STRING_ASCII = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
_DOT_STRING_UTF8 = re.compile(rf"[{_ATEXT}\u00a0-\U0010ffff]+(?:\.[{_ATEXT}\u00a0-\U0010ffff]+)*")

# RFC 5321 §4.1.2: Quoted-string = DQUOTE *QcontentSMTP DQUOTE
#   QcontentSMTP = qtextSMTP / quoted-pairSMTP
#   quoted-pairSMTP = %d92 %d32-126
#   qtextSMTP = %d32-33 / %d35-91 / %d93-126
# RFC 6531 §3.3: qtextSMTP =/ UTF8-non-ascii
_QUOTED_ASCII = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"')
_QUOTED_UTF8 = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u00a0-\U0010ffff]|\\[\x20-\x7e])*"')

# RFC 5321 §4.1.2: sub-domain = Let-dig [Ldh-str]; Let-dig = ALPHA / DIGIT;
#   Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig
# plus RFC 1035 §2.3.4: a label is at most 63 octets.
_SUB_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

# The common case, in one match: an ASCII Dot-string local part and a Domain of
# sub-domains (no quoting, no address literal, no U-label). Every string these accept
# the full rules accept too, with the same wire form (checked by a differential test),
# so ``format_path``/``format_domain`` skip the step-by-step checks for them; the
# length limits are still checked. Anything else takes the full path.
_SIMPLE_DOMAIN = re.compile(rf"{_SUB_DOMAIN.pattern}(?:\.{_SUB_DOMAIN.pattern})*")
_SIMPLE_MAILBOX = re.compile(rf"({_DOT_STRING_ASCII.pattern})@{_SIMPLE_DOMAIN.pattern}")

# RFC 5321 §4.1.3: IPv4-address-literal = Snum 3("." Snum); Snum = 1*3DIGIT
_IPV4_LITERAL = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
# RFC 5321 §4.1.3: General-address-literal = Standardized-tag ":" 1*dcontent
#   Standardized-tag = Ldh-str; dcontent = %d33-90 / %d94-126
_GENERAL_LITERAL = re.compile(r"([A-Za-z0-9-]*[A-Za-z0-9]):([\x21-\x5a\x5e-\x7e]+)")

# RFC 5321 §4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
_ESMTP_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
# RFC 5321 §4.1.2: esmtp-value = 1*(%d33-60 / %d62-126)
# RFC 6531 §3.3: esmtp-value =/ UTF8-non-ascii
_ESMTP_VALUE_ASCII = re.compile(r"[\x21-\x3c\x3e-\x7e]+")
_ESMTP_VALUE_UTF8 = re.compile(r"[\x21-\x3c\x3e-\x7e\u00a0-\U0010ffff]+")

# RFC 3461 §4: xchar = "!" (33) to "~" (126) except "+" and "=";
#   hexchar = "+" followed by two upper case hexadecimal digits
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")

# RFC 6533 §3: QCHAR = %x21-2a / %x2c-3c / %x3e-5b / %x5d-7e (printable ASCII except
#   "+", "=", "\"); EmbeddedUnicodeChar = "\x{" HEXPOINT "}" (upper-case hex, no
#   leading zeros); utf-8-addr-unitext also allows UTF8-2/3/4 (QUCHAR).
_QCHAR = re.compile(r"[\x21-\x2a\x2c-\x3c\x3e-\x5b\x5d-\x7e]")
_EMBEDDED_UNICODE = re.compile(r"\\x\{([1-9A-F][0-9A-F]{0,5})\}")


def _fail(message: str, *, code: int = 501, enhanced: str = "5.5.4") -> SyntaxErrorInCommand:
    return SyntaxErrorInCommand(message, code=code, enhanced=enhanced)


def _octets(text: str) -> int:
    """Length of ``text`` in UTF-8 octets (the wire form)."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _find_control(value: str) -> str | None:
    """A description of the first forbidden character in ``value``, or ``None``."""
    match = _CONTROLS.search(value)
    if match is not None:
        return f"control character U+{ord(match[0]):04X} at index {match.start()}"
    if not value.isascii():
        for index, char in enumerate(value):
            if "\ud800" <= char <= "\udfff":
                return f"lone surrogate U+{ord(char):04X} at index {index}"
    return None


# -- the rules, once, over str ----------------------------------------------------------


def _validate_u_label(label: str) -> None:
    """RFC 6531 §3.3 ``sub-domain =/ U-label``: a plausible IDNA2008 U-label.

    Checked without an IDNA table (no runtime dependencies): NFC, letters, digits, marks
    and hyphens only, no hyphen at either end, and its A-label form fits 63 octets.
    """
    if not unicodedata.is_normalized("NFC", label):
        raise _fail(f"domain label {label!a} is not in Unicode NFC form", code=553)
    if label.startswith("-") or label.endswith("-"):
        raise _fail(f"domain label {label!a} starts or ends with a hyphen", code=553)
    for char in label:
        if char != "-" and not char.isalnum() and unicodedata.category(char)[0] != "M":
            raise _fail(f"domain label {label!a} contains {char!a}", code=553)
    if len(label.encode("punycode")) + 4 > 63:
        raise _fail(f"domain label {label!a} is longer than 63 octets as an A-label", code=553)


def _validate_address_literal(literal: str) -> None:
    """RFC 5321 §4.1.3 address-literal, ``literal`` including the square brackets.

    IPv4 and IPv6 are checked with ``ipaddress`` (leading zeros, zone ids refused); any
    other tag is a General-address-literal checked against its grammar only.
    """
    inner = literal[1:-1]
    if _IPV4_LITERAL.fullmatch(inner):
        try:
            ipaddress.IPv4Address(inner)
        except ValueError:
            raise _fail(f"invalid IPv4 address literal {literal!a}", code=553) from None
        return
    # IPv6-address-literal = "IPv6:" IPv6-addr (ABNF strings are case-insensitive)
    if inner[:5].lower() == "ipv6:":
        address = inner[5:]
        try:
            if "%" in address:
                raise ValueError("zone ids are not part of RFC 5321 IPv6-addr")
            ipaddress.IPv6Address(address)
        except ValueError:
            raise _fail(f"invalid IPv6 address literal {literal!a}", code=553) from None
        return
    if _GENERAL_LITERAL.fullmatch(inner) is None:
        raise _fail(f"invalid address literal {literal!a}", code=553)


def validate_domain(domain: str, *, utf8: bool = False) -> None:
    """RFC 5321 §4.1.2 ``Domain`` or §4.1.3 ``address-literal``.

    ``Domain = sub-domain *("." sub-domain)``, at most 255 octets; with ``utf8`` a
    sub-domain may be a U-label (RFC 6531 §3.3). A trailing dot is refused. Raises
    ``SyntaxErrorInCommand``.
    """
    if not domain:
        raise _fail("empty domain", code=553)
    if _octets(domain) > MAX_DOMAIN:
        raise _fail(f"domain is longer than {MAX_DOMAIN} octets (RFC 5321 section 4.5.3.1.2)")
    if domain.startswith("["):
        if not domain.endswith("]"):
            raise _fail(f"invalid domain {domain!a}", code=553)
        _validate_address_literal(domain)
        return
    if not domain.isascii():
        if not utf8:
            raise _fail(
                f"non-ASCII domain {domain!a} needs SMTPUTF8 (RFC 6531)",
                code=553,
                enhanced="5.6.7",
            )
        problem = _find_control(domain)
        if problem is not None:
            raise _fail(f"domain contains a {problem}", code=553)
    for label in domain.split("."):
        if label.isascii():
            if _SUB_DOMAIN.fullmatch(label) is None:
                raise _fail(f"invalid domain {domain!a}: bad label {label!a}", code=553)
        else:
            _validate_u_label(label)


def _split_mailbox(mailbox: str) -> tuple[str, str]:
    """Split at the ``@`` that ends the local part (a quoted one may contain ``@``)."""
    if mailbox.startswith('"'):
        match = _QUOTED_UTF8.match(mailbox)
        end = match.end() if match is not None else -1
        if end <= 0 or mailbox[end : end + 1] != "@":
            raise _fail(f"invalid quoted local part in {mailbox!a}", code=553, enhanced="5.1.3")
        return mailbox[:end], mailbox[end + 1 :]
    local, at, domain = mailbox.rpartition("@")
    if not at:
        raise _fail(f"address {mailbox!a} has no '@domain'", code=553, enhanced="5.1.3")
    return local, domain


def validate_mailbox(mailbox: str, *, utf8: bool = False) -> None:
    """RFC 5321 §4.1.2 ``Mailbox = Local-part "@" ( Domain / address-literal )``.

    ``Local-part = Dot-string / Quoted-string``, at most 64 octets (§4.5.3.1.1); the
    whole path with its brackets at most 256 octets (§4.5.3.1.3). With ``utf8``
    (SMTPUTF8, RFC 6531 §3.3) UTF-8 is allowed in the local part and U-labels in the
    domain; without it any non-ASCII is refused with the 553 5.6.7 reply RFC 6531 §3.6.1
    names. Raises ``SyntaxErrorInCommand``.
    """
    problem = _find_control(mailbox)
    if problem is not None:
        raise _fail(f"address contains a {problem}", code=553, enhanced="5.1.3")
    if not utf8 and not mailbox.isascii():
        raise _fail(
            f"non-ASCII address {mailbox!a} needs SMTPUTF8 (RFC 6531)",
            code=553,
            enhanced="5.6.7",
        )
    if _octets(mailbox) + 2 > MAX_PATH:
        raise _fail(f"path is longer than {MAX_PATH} octets (RFC 5321 section 4.5.3.1.3)")
    local, domain = _split_mailbox(mailbox)
    if _octets(local) > MAX_LOCAL_PART:
        raise _fail(
            f"local part is longer than {MAX_LOCAL_PART} octets (RFC 5321 section 4.5.3.1.1)"
        )
    if local.startswith('"'):
        quoted = _QUOTED_UTF8 if utf8 else _QUOTED_ASCII
        if quoted.fullmatch(local) is None:
            raise _fail(f"invalid quoted local part {local!a}", code=553, enhanced="5.1.3")
    else:
        dot_string = _DOT_STRING_UTF8 if utf8 else _DOT_STRING_ASCII
        if dot_string.fullmatch(local) is None:
            raise _fail(
                f"invalid local part {local!a} (quote it if it needs special characters)",
                code=553,
                enhanced="5.1.3",
            )
    validate_domain(domain, utf8=utf8)


def _validate_path_content(mailbox: str, *, utf8: bool, allow_postmaster: bool) -> None:
    # RFC 5321 §4.1.1.3: "<Postmaster>" without a domain is a valid forward-path.
    if allow_postmaster and mailbox.lower() == "postmaster":
        return
    validate_mailbox(mailbox, utf8=utf8)


def _validate_esmtp_value(value: str, *, utf8: bool) -> None:
    """RFC 5321 §4.1.2 esmtp-value, extended by RFC 6531 §3.3 under SMTPUTF8."""
    if not utf8 and not value.isascii():
        raise _fail(f"non-ASCII parameter value {value!a} needs SMTPUTF8 (RFC 6531 section 3.3)")
    pattern = _ESMTP_VALUE_UTF8 if utf8 else _ESMTP_VALUE_ASCII
    if pattern.fullmatch(value) is None or _find_control(value) is not None:
        raise _fail(f"invalid ESMTP parameter value {value!a} (RFC 5321 section 4.1.2 esmtp-value)")


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


# -- xtext and utf-8-addr-xtext --------------------------------------------------------


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


# -- server side: parse what a client sent ---------------------------------------------


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
