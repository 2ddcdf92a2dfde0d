"""RFC 5321 / RFC 6531 grammar rules over ``str``, each written once (the wire layer).

Theory of operation: every rule is a validator over ``str`` that raises
``SyntaxErrorInCommand`` (a ``ValueError`` carrying the reply a server should give,
RFC 5321 §4.2.3). The client side (``wire.abnf``: ``format_*`` / ``check_*``) and the
server side (``wire.parsing``: ``parse_*``) both call these validators, so the two sides
cannot disagree about what an address, a domain or an ESMTP parameter value is.

Length limits (RFC 5321 §4.5.3.1) are counted in octets of the UTF-8 wire form. This
module imports nothing from the package.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

__all__ = [
    "MAX_COMMAND_LINE",
    "MAX_DOMAIN",
    "MAX_LOCAL_PART",
    "MAX_PATH",
    "MAX_TEXT_LINE",
    "SyntaxErrorInCommand",
    "validate_domain",
    "validate_mailbox",
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

# RFC 6533 §3: QCHAR = %x21-2a / %x2c-3c / %x3e-5b / %x5d-7e (printable ASCII except
#   "+", "=", "\"); EmbeddedUnicodeChar = "\x{" HEXPOINT "}" (upper-case hex, no
#   leading zeros); utf-8-addr-unitext also allows UTF8-2/3/4 (QUCHAR).
_QCHAR = re.compile(r"[\x21-\x2a\x2c-\x3c\x3e-\x5b\x5d-\x7e]")


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
