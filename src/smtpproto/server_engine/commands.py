"""Parse one received command line (without its CRLF) into a server event.

Theory of operation: ``ServerConnection`` cuts lines and keeps the state; this module
only turns the octets of one line into a value, using the grammar shared with the client
side (the rules in ``wire.grammar``, the parsers in ``wire.parsing``). Every failure is
a ``SyntaxErrorInCommand`` carrying the reply code, enhanced code and an ASCII message;
the connection turns it into a ``CommandRejected`` event. Parameters are checked against
the extensions the caller advertised in its last 250 EHLO reply (``parse_extensions``):
a parameter whose extension was not advertised is refused with 555 (RFC 5321 §4.1.1.11).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from types import MappingProxyType

from ..wire.grammar import (
    _DOT_STRING_ASCII,
    _SIMPLE_DOMAIN,
    MAX_LOCAL_PART,
    MAX_PATH,
    SyntaxErrorInCommand,
)
from ..wire.limits import MAX_ENVID, MAX_ORCPT
from ..wire.parsing import (
    parse_esmtp_params,
    parse_path,
    split_command_path,
    utf8_addr_xtext_decode,
    xtext_decode,
)
from ..wire.reply import Reply
from .config import MAX_LIMIT_VALUE
from .events import (
    AuthCancelled,
    AuthRequested,
    AuthResponse,
    DataRequested,
    MailReceived,
    NoopReceived,
    QuitReceived,
    RcptReceived,
    ResetReceived,
    ServerEvent,
)

__all__ = [
    "PLAIN_MEMO",
    "REDACTED",
    "advertised_limits",
    "claims_auth",
    "decode_auth_response",
    "fast_command",
    "line_verb",
    "parse_auth",
    "parse_bdat",
    "parse_extensions",
    "parse_mail",
    "parse_rcpt",
    "plain_event",
    "redact_auth_line",
    "size_limit",
    "split_verb",
]

_VERB = re.compile(rb"[A-Za-z][A-Za-z0-9-]{0,19}")
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_DIGITS = re.compile(r"[0-9]{1,20}")
_BDAT_ARGS = re.compile(rb"([0-9]{1,20})(?: +(LAST))?", re.IGNORECASE)
_NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY"})
_MECHANISM = re.compile(r"[A-Z0-9_-]{1,20}")
_VERB_RUN = re.compile(rb"[A-Za-z0-9-]*")
#: A mechanism name after the AUTH verb: separators, then a word ending the line or
#: followed by a separator.
_MECHANISM_WORD = re.compile(rb"[ \t]+([A-Za-z0-9_-]{1,20})(?=[ \t]|\Z)")
#: What a line that may hold credentials becomes (docs/design.md §4 rule 11).
REDACTED = b"<redacted>"
#: The parameters of a MAIL or RCPT line without any (shared: a read-only view).
_NO_PARAMS: Mapping[str, str | None] = MappingProxyType({})


def _fail(message: str, code: int = 501, enhanced: str = "5.5.4") -> SyntaxErrorInCommand:
    return SyntaxErrorInCommand(message, code=code, enhanced=enhanced)


def parse_extensions(reply: Reply) -> dict[str, str]:
    """Keyword (upper-cased) -> parameters of every extension line of an EHLO reply.

    The first line is the server's name, never an extension (RFC 5321 §4.1.1.1).
    """
    extensions: dict[str, str] = {}
    for raw in reply.raw_lines[1:]:
        keyword, _, params = raw.decode("ascii", "replace").strip().partition(" ")
        if keyword:
            extensions[keyword.upper()] = params.strip()
    return extensions


def advertised_limits(extensions: dict[str, str]) -> tuple[int | None, int | None]:
    """The (RCPTMAX, MAILMAX) of the LIMITS keyword the caller advertised (RFC 9422
    §4.1, §4.2: ``name=value``, names case-insensitive, a value of 1 to 6 digits);
    ``None`` where it advertised none or a malformed one."""
    found: dict[str, int] = {}
    for param in extensions.get("LIMITS", "").split():
        name, equals, value = param.partition("=")
        if equals and _DIGITS.fullmatch(value) and 0 < int(value) <= MAX_LIMIT_VALUE:
            found.setdefault(name.upper(), int(value))
    return found.get("RCPTMAX"), found.get("MAILMAX")


def split_verb(line: bytes) -> tuple[str, bytes]:
    """Return the upper-cased verb and the argument octets after one space.

    The line must be ASCII without controls except in MAIL/RCPT/VRFY/EXPN arguments,
    which may carry UTF-8 (checked there). Raises ``SyntaxErrorInCommand`` (500).
    """
    if _CONTROL.search(line) is not None:
        raise _fail("control character in command line", code=500, enhanced="5.5.2")
    verb, space, args = line.partition(b" ")
    if _VERB.fullmatch(verb) is None:
        raise _fail("syntax error, command unrecognized", code=500, enhanced="5.5.2")
    if space and not args:
        args = b""
    return verb.decode("ascii").upper(), args


def _need(extensions: dict[str, str], keyword: str, param: str) -> None:
    if keyword not in extensions:
        raise _fail(f"{param} parameter needs {keyword}, which was not advertised", code=555)


def _prefix(args: bytes, prefix: bytes) -> bytes:
    if args[: len(prefix)].upper() != prefix:
        raise _fail(f"expected {prefix.decode()}<path>", enhanced="5.5.2")
    return args[len(prefix) :]


def size_limit(extensions: dict[str, str], fallback: int | None) -> int | None:
    """The advertised SIZE (RFC 1870 §4: 0 means no fixed limit), else ``fallback``."""
    value = extensions.get("SIZE", "")
    if _DIGITS.fullmatch(value) and int(value) > 0:
        return int(value)
    return fallback


def parse_mail(args: bytes, extensions: dict[str, str], size_fallback: int | None) -> MailReceived:
    """``MAIL FROM:<path> [params]`` (RFC 5321 §4.1.1.2) with SIZE (RFC 1870), BODY
    (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), RET/ENVID (RFC 3461 §4.3, §4.4) and
    AUTH= (RFC 4954 §5). A declared SIZE above the limit is 552 5.3.4 (RFC 1870 §6.1)."""
    path, raw_params = split_command_path(_prefix(args, b"FROM:"))
    params = parse_esmtp_params(raw_params, smtputf8="SMTPUTF8" in extensions)
    size = body = ret = envid = auth = None
    smtputf8 = False
    for keyword, value in params.items():
        if keyword == "SIZE":
            _need(extensions, "SIZE", keyword)
            if value is None or _DIGITS.fullmatch(value) is None:
                raise _fail("SIZE needs a decimal number (RFC 1870 section 3)")
            size = int(value)
        elif keyword == "BODY":
            body = (value or "").upper()
            if body not in ("7BIT", "8BITMIME", "BINARYMIME"):
                raise _fail("BODY must be 7BIT, 8BITMIME or BINARYMIME")
            _need(extensions, "BINARYMIME" if body == "BINARYMIME" else "8BITMIME", keyword)
        elif keyword == "SMTPUTF8":
            _need(extensions, "SMTPUTF8", keyword)
            if value is not None:
                raise _fail("SMTPUTF8 takes no value (RFC 6531 section 3.4)")
            smtputf8 = True
        elif keyword == "RET":
            _need(extensions, "DSN", keyword)
            ret = (value or "").upper()
            if ret not in ("FULL", "HDRS"):
                raise _fail("RET must be FULL or HDRS (RFC 3461 section 4.3)")
        elif keyword == "ENVID":
            _need(extensions, "DSN", keyword)
            if not value or len(value) > MAX_ENVID:
                raise _fail(f"ENVID must be 1 to {MAX_ENVID} characters (RFC 3461 section 4.4)")
            envid = xtext_decode(value)
        elif keyword == "AUTH":
            _need(extensions, "AUTH", keyword)
            auth = "<>" if value == "<>" else xtext_decode(value or "")
        else:
            raise _fail(f"parameter {keyword} not recognized", code=555)
    sender = parse_path(path, smtputf8=smtputf8, allow_null=True)
    limit = size_limit(extensions, size_fallback)
    if size is not None and limit is not None and size > limit:
        raise _fail("message size exceeds fixed maximum message size", code=552, enhanced="5.3.4")
    return MailReceived(
        sender=sender,
        params=MappingProxyType(params),
        size=size,
        body=body,
        smtputf8=smtputf8,
        ret=ret,
        envid=envid,
        auth=auth,
    )


def _parse_orcpt(value: str, smtputf8: bool) -> tuple[str, str]:
    if len(value) > MAX_ORCPT:
        raise _fail(f"ORCPT longer than {MAX_ORCPT} characters (RFC 3461 section 4.2)")
    addr_type, semicolon, encoded = value.partition(";")
    if not semicolon or not addr_type or not encoded:
        raise _fail("ORCPT must be addr-type;xtext (RFC 3461 section 4.2)")
    if addr_type.lower() == "utf-8":  # RFC 6533 §3: utf-8-addr-xtext / -unitext
        return addr_type, utf8_addr_xtext_decode(encoded, allow_utf8=smtputf8)
    return addr_type, xtext_decode(encoded)


def parse_rcpt(args: bytes, extensions: dict[str, str], smtputf8: bool) -> RcptReceived:
    """``RCPT TO:<path> [params]`` (RFC 5321 §4.1.1.3) with NOTIFY and ORCPT
    (RFC 3461 §4.1, §4.2). ``<postmaster>`` without a domain is accepted (§4.1.1.3)."""
    path, raw_params = split_command_path(_prefix(args, b"TO:"))
    params = parse_esmtp_params(raw_params, smtputf8=smtputf8)
    notify: tuple[str, ...] | None = None
    orcpt: tuple[str, str] | None = None
    for keyword, value in params.items():
        if keyword == "NOTIFY":
            _need(extensions, "DSN", keyword)
            items = tuple(item.upper() for item in (value or "").split(","))
            if items != ("NEVER",) and (
                not set(items) <= _NOTIFY_VALUES or len(set(items)) != len(items)
            ):
                raise _fail("NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY (RFC 3461 4.1)")
            notify = items
        elif keyword == "ORCPT":
            _need(extensions, "DSN", keyword)
            orcpt = _parse_orcpt(value or "", smtputf8)
        else:
            raise _fail(f"parameter {keyword} not recognized", code=555)
    recipient = parse_path(path, smtputf8=smtputf8, allow_null=False, allow_postmaster=True)
    return RcptReceived(
        recipient=recipient, params=MappingProxyType(params), notify=notify, orcpt=orcpt
    )


def parse_bdat(args: bytes) -> tuple[int, bool]:
    """``BDAT chunk-size [LAST]`` (RFC 3030 §2): the size and whether it is LAST."""
    match = _BDAT_ARGS.fullmatch(args)
    if match is None:
        raise _fail("expected BDAT <size> [LAST] (RFC 3030 section 2)")
    return int(match[1]), match[2] is not None


def _b64(raw: bytes) -> bytes:
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise _fail("invalid base64 (RFC 4954 section 4)", enhanced="5.5.2") from None


def parse_auth(args: bytes, extensions: dict[str, str]) -> AuthRequested:
    """``AUTH mechanism [initial-response]`` (RFC 4954 §4); ``=`` is an empty initial
    response. A mechanism that was not advertised is 504 5.5.4."""
    name, _, initial = args.partition(b" ")
    mechanism = name.decode("ascii", "replace").upper()  # non-ASCII: no name, a 501
    if _MECHANISM.fullmatch(mechanism) is None:
        raise _fail("expected AUTH <mechanism> [initial-response]")
    if mechanism not in extensions.get("AUTH", "").upper().split():
        raise _fail("Unrecognized authentication type", code=504, enhanced="5.5.4")
    if b" " in initial:
        raise _fail("AUTH takes at most two arguments")
    response = None if not initial else b"" if initial == b"=" else _b64(initial)
    return AuthRequested(mechanism=mechanism, initial_response=response)


def decode_auth_response(line: bytes) -> AuthResponse | AuthCancelled:
    """One SASL response line (RFC 4954 §4): ``*`` cancels, else base64."""
    if line == b"*":
        return AuthCancelled()
    return AuthResponse(data=_b64(line))


def line_verb(line: bytes) -> bytes:
    """The leading run of verb characters, upper-cased (``b"AUTH"`` from
    ``b"auth\tPLAIN x"``): what the line claims to be, even when it is malformed."""
    match = _VERB_RUN.match(line)
    assert match is not None  # the pattern matches the empty string
    return match[0].upper()


#: What a broken client may put before a verb: white space, NUL, other controls.
_LEADING_JUNK = re.compile(rb"[\x00-\x20\x7f]*")


def claims_auth(line: bytes) -> bool:
    """Whether ``line`` is an AUTH line, however malformed: its first word starts with
    ``AUTH`` in any case, after any white space or control octets (``" AUTH PLAIN x"``,
    ``"AUTHPLAIN x"``): its words may be credentials (docs/design.md §4 rule 11)."""
    start = _LEADING_JUNK.match(line)
    assert start is not None  # the pattern matches the empty string
    return line[start.end() : start.end() + 4].upper() == b"AUTH"


def redact_auth_line(line: bytes) -> bytes:
    """An AUTH line (any case, any separator, ``claims_auth``) without its initial
    response, which would otherwise reach logs through ``CommandRejected.line``
    (docs/design.md §4 rule 11). What precedes the verb, the verb and the mechanism are
    kept as sent when the mechanism fits the RFC 4422 §3.1 name grammar in one letter
    case; a mixed-case word in its place may be a base64 credential from a broken
    client, and is redacted with the rest."""
    start = _LEADING_JUNK.match(line)
    assert start is not None  # the pattern matches the empty string
    prefix, line = line[: start.end()], line[start.end() :]
    return prefix + _redact_auth_words(line)


def _redact_auth_words(line: bytes) -> bytes:
    head = line[:4]
    match = _MECHANISM_WORD.match(line, 4)
    if match is not None and match[1] in (match[1].upper(), match[1].lower()):
        head = line[: match.end()]
    return head + (b" " + REDACTED if line[len(head) :].strip(b" \t") else b"")


# The command lines of a normal transaction in their plain form, in one match: a verb
# without argument, or MAIL/RCPT with one space, no parameters and a path of an ASCII
# Dot-string local part and sub-domains (the client side's ``_SIMPLE_MAILBOX`` rules,
# from ``wire.grammar``). Verbs and ``FROM:``/``TO:`` in any case, as the general path
# takes them (RFC 5321 §2.4).
_LOCAL = _DOT_STRING_ASCII.pattern.encode("ascii")
_DOMAIN = _SIMPLE_DOMAIN.pattern.encode("ascii")
_FAST_LINE = re.compile(
    rb"(DATA|RSET|NOOP|QUIT)"
    rb"|MAIL FROM:<(?:(" + _LOCAL + rb")@" + _DOMAIN + rb")?>"
    rb"|RCPT TO:<(" + _LOCAL + rb")@" + _DOMAIN + rb">",
    re.IGNORECASE,
)


def fast_command(line: bytes) -> tuple[bytes, str] | None:
    """``(VERB, mailbox)`` for the common lines of a mail transaction, or ``None``.

    ``VERB`` is ``b"MAIL"``, ``b"RCPT"``, ``b"DATA"``, ``b"RSET"``, ``b"NOOP"`` or
    ``b"QUIT"``; ``mailbox`` is the path's mailbox (``""`` for ``<>`` and the verbs
    without argument). Only lines that ``split_verb`` then ``parse_mail`` /
    ``parse_rcpt`` accept with no parameter and the same mailbox, whatever the
    extensions, are recognised (the length limits of RFC 5321 §4.5.3.1.1 and
    §4.5.3.1.3 included); for any other line, ``None``: the general path decides. A
    differential test holds the two paths to that.
    """
    match = _FAST_LINE.fullmatch(line)
    if match is None:
        return None
    bare = match[1]
    if bare is not None:
        return bare.upper(), ""
    if match.start(2) >= 0:  # MAIL FROM:<local@domain>
        local = match.end(2) - match.start(2)
        verb, start = b"MAIL", 11
    elif match.start(3) >= 0:  # RCPT TO:<local@domain>
        local = match.end(3) - match.start(3)
        verb, start = b"RCPT", 9
    else:  # MAIL FROM:<>
        return b"MAIL", ""
    if local > MAX_LOCAL_PART or len(line) - start + 1 > MAX_PATH:  # path with <>
        return None
    return verb, line[start:-1].decode("ascii")


#: The event of each plain verb without argument: one shared value (events are frozen).
_BARE_EVENTS: dict[bytes, ServerEvent] = {
    b"DATA": DataRequested(),
    b"RSET": ResetReceived(),
    b"NOOP": NoopReceived(),
    b"QUIT": QuitReceived(),
}
#: ``plain_event``'s memo: recognised lines only, each at most ``_MEMO_LINE`` octets,
#: at most ``_MEMO_SIZE`` of them (emptied when full), shared by every connection: a
#: client sends the same MAIL and RCPT lines message after message.
_MEMO: dict[bytes, tuple[bytes, ServerEvent]] = {}
#: The memo, for a caller that reads it in line (``ServerConnection._plain_line``);
#: only ``plain_event`` writes it.
PLAIN_MEMO: Mapping[bytes, tuple[bytes, ServerEvent]] = _MEMO
_MEMO_SIZE = 256
_MEMO_LINE = 128


def plain_event(line: bytes) -> tuple[bytes, ServerEvent] | None:
    """``(VERB, event)`` for a line ``fast_command`` recognises, else ``None``: a
    ``MailReceived``/``RcptReceived`` without parameters, or the event of DATA, RSET,
    NOOP or QUIT. The event depends on the line alone (the connection checks the state),
    so it is made once per distinct line and shared: events are immutable."""
    known = _MEMO.get(line)
    if known is not None:
        return known
    fast = fast_command(line)
    if fast is None:
        return None
    verb, mailbox = fast
    event: ServerEvent
    if verb == b"MAIL":
        event = MailReceived(sender=mailbox, params=_NO_PARAMS)
    elif verb == b"RCPT":
        event = RcptReceived(recipient=mailbox, params=_NO_PARAMS)
    else:
        event = _BARE_EVENTS[verb]
    made = (verb, event)
    if len(line) <= _MEMO_LINE:
        if len(_MEMO) >= _MEMO_SIZE:
            _MEMO.clear()
        _MEMO[line] = made
    return made
