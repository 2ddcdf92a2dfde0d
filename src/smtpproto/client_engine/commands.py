"""Commands the caller sends, as immutable values validated at construction.

Theory of operation
-------------------
Every command is a frozen, slotted, keyword-only dataclass (the h11 convention:
``Mail(sender="a@example.org")``). Commands validate their arguments in
``__post_init__`` and keep the validated wire form of their arguments in a private
field, so a command that exists can always be serialised: CR, LF, NUL and every other
control character are refused here, before any byte exists (docs/design.md §4 rule 6).
Whether the *server* allows a command (an extension was advertised, the session is in
the right state) is decided later by ``ClientConnection.send``, which knows the session.
``events`` re-exports every name here, so ``from .events import Mail`` works.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal

from ..sasl.base import MECH_NAME
from ..wire.abnf import (
    check_command_line,
    check_no_controls,
    format_domain,
    format_path,
    format_text_argument,
    utf8_addr_xtext,
    xtext_encode,
)
from ..wire.errors import LocalProtocolError
from ..wire.fields import check_flag
from ..wire.limits import MAX_ENVID, MAX_ORCPT

if TYPE_CHECKING:
    from ..sasl.base import ClientMechanism

__all__ = [
    "MAX_ENVID",
    "MAX_ORCPT",
    "XCLIENT_ATTRIBUTES",
    "XFORWARD_ATTRIBUTES",
    "Auth",
    "AuthContinue",
    "Bdat",
    "Command",
    "Content",
    "Data",
    "Ehlo",
    "EndOfContent",
    "Expn",
    "Helo",
    "Help",
    "Lhlo",
    "Mail",
    "Noop",
    "Quit",
    "RawContent",
    "Rcpt",
    "Rset",
    "StartTLS",
    "UnsafeRawBytes",
    "Vrfy",
    "Xclient",
    "Xforward",
]

# Derived fields (``_wire``, ``_path``, ``_params``) are set in ``__post_init__`` and
# hidden from init, repr and equality.


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _check_bytes(data: object, what: str) -> None:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise LocalProtocolError(f"{what} must be bytes, got {type(data).__name__}")


class Command:
    """Base class of everything ``ClientConnection.send`` accepts."""

    __slots__ = ()


def _line(command: bytes) -> bytes:
    """``command`` CRLF, refused past 512 octets (RFC 5321 §4.5.3.1.4: the limit of
    every command line; MAIL and RCPT parameters and AUTH responses have their own)."""
    line = command + b"\r\n"
    check_command_line(line)
    return line


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Ehlo(Command):
    """``EHLO hostname`` (RFC 5321 §4.1.1.1): a domain or an address literal, ASCII.

    An internationalised name must be given as A-labels (``xn--``).
    """

    hostname: str
    _wire: bytes = dataclasses.field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        _set(self, "_wire", _line(b"EHLO " + format_domain(self.hostname)))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Helo(Command):
    """``HELO hostname`` (RFC 5321 §4.1.1.1): no extensions for the rest of the session.

    Only allowed when the TLS policy does not require TLS, or TLS is already active.
    """

    hostname: str
    _wire: bytes = dataclasses.field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        _set(self, "_wire", _line(b"HELO " + format_domain(self.hostname, what="HELO name")))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Lhlo(Command):
    """``LHLO hostname`` (RFC 2033 §4.1); only in LMTP mode (``ClientConfig(lmtp=True)``)."""

    hostname: str
    _wire: bytes = dataclasses.field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        _set(self, "_wire", _line(b"LHLO " + format_domain(self.hostname, what="LHLO name")))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StartTLS(Command):
    """``STARTTLS`` (RFC 3207). After its 220 the caller runs the TLS handshake and
    calls ``ClientConnection.tls_established()``; nothing can be sent in between."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Auth(Command):
    """``AUTH mechanism [initial-response]`` (RFC 4954 §4) driven by a SASL mechanism.

    The initial response goes on the AUTH line only if the line stays within 512
    octets; otherwise it is sent after the server's empty 334 challenge. The mechanism
    object is single-use and never shown in reprs beyond its name.
    """

    mechanism: ClientMechanism

    def __post_init__(self) -> None:
        name = getattr(self.mechanism, "name", None)
        if not isinstance(name, str) or MECH_NAME.fullmatch(name) is None:
            raise LocalProtocolError(
                "Auth needs a SASL mechanism object with a valid name (RFC 4422 §3.1)"
            )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AuthContinue(Command):
    """Answer the pending ``AuthChallenge``: the engine asks the mechanism for the
    response. An undecodable challenge, a mechanism error, or more than
    ``ClientConfig.max_auth_rounds`` challenges make the engine answer ``*`` (cancel,
    RFC 4954 §4) instead, so no credential is sent."""


_BODY_VALUES = ("7BIT", "8BITMIME", "BINARYMIME")
_RET_VALUES = ("FULL", "HDRS")
_NOTIFY_VALUES = ("SUCCESS", "FAILURE", "DELAY")
_BY_VALUE = re.compile(r"-?[0-9]{1,9};[RNrn][Tt]?")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Mail(Command):
    """``MAIL FROM:<sender> [params]`` (RFC 5321 §4.1.1.2); ``sender=""`` is ``<>``.

    Parameters, each needing its extension to be advertised (checked by ``send``):
    ``size`` (SIZE, RFC 1870; above the server's limit fails before MAIL), ``body``
    (``"7BIT"``/``"8BITMIME"``, RFC 6152; ``"BINARYMIME"``, RFC 3030, BDAT only),
    ``smtputf8`` (RFC 6531; needed for a non-ASCII address), ``ret``/``envid`` (DSN, RFC
    3461 §4.3-4.4; envid is xtext-encoded here), ``requiretls`` (RFC 8689; needs TLS),
    ``mt_priority`` (-9..9, RFC 6710), ``by`` (DELIVERBY, RFC 2852, e.g. ``"120;R"``),
    ``auth`` (the AUTH= mailbox, RFC 4954 §5; ``""`` is ``<>``).
    """

    sender: str
    size: int | None = None
    body: Literal["7BIT", "8BITMIME", "BINARYMIME"] | None = None
    smtputf8: bool = False
    ret: Literal["FULL", "HDRS"] | None = None
    envid: str | None = None
    requiretls: bool = False
    mt_priority: int | None = None
    by: str | None = None
    auth: str | None = None
    _path: bytes = dataclasses.field(init=False, repr=False, compare=False, default=b"")
    #: The whole line when no parameter is given (the common case), else b"".
    _plain: bytes = dataclasses.field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        check_flag("smtputf8", self.smtputf8, error=LocalProtocolError)
        check_flag("requiretls", self.requiretls, error=LocalProtocolError)
        _set(
            self,
            "_path",
            format_path(self.sender, smtputf8=self.smtputf8, allow_null=True, what="sender"),
        )
        if self.size is not None and (type(self.size) is not int or not 0 <= self.size < 2**63):
            raise LocalProtocolError(f"size must be a non-negative int, got {self.size!r}")
        if self.body is not None and self.body not in _BODY_VALUES:
            raise LocalProtocolError(f"body must be one of {_BODY_VALUES}, got {self.body!r}")
        if self.ret is not None and self.ret not in _RET_VALUES:
            raise LocalProtocolError(f"ret must be one of {_RET_VALUES}, got {self.ret!r}")
        if self.envid is not None:
            check_no_controls(self.envid, "envid")
            if not self.envid.isascii() or not self.envid:
                raise LocalProtocolError("envid must be non-empty printable ASCII (RFC 3461)")
            if len(xtext_encode(self.envid)) > MAX_ENVID:
                raise LocalProtocolError(
                    f"envid is longer than {MAX_ENVID} characters as xtext (RFC 3461 §4.4)"
                )
        if self.mt_priority is not None and (
            type(self.mt_priority) is not int or not -9 <= self.mt_priority <= 9
        ):
            raise LocalProtocolError("mt_priority must be an int from -9 to 9 (RFC 6710 §3)")
        if self.by is not None:
            check_no_controls(self.by, "by")
            if _BY_VALUE.fullmatch(self.by) is None:
                raise LocalProtocolError(
                    f"by must be '<seconds>;R' or ';N', optionally with T (RFC 2852), "
                    f"got {self.by!a}"
                )
        if self.auth is not None and self.auth != "":
            format_path(self.auth, smtputf8=True, what="AUTH= mailbox")
        if (
            self.size is None
            and self.body is None
            and not self.smtputf8
            and self.ret is None
            and self.envid is None
            and not self.requiretls
            and self.mt_priority is None
            and self.by is None
            and self.auth is None
        ):
            _set(self, "_plain", b"MAIL FROM:" + self._path + b"\r\n")

    def with_size(self, size: int) -> Mail:
        """This MAIL with ``SIZE=size`` (RFC 1870 §3) instead of its own SIZE: ``size``
        is checked as the constructor checks it; the other fields, checked when this
        command was made, are kept as they are rather than checked again (the sender's
        path is not formatted twice). ``send_many`` makes one per message length."""
        if type(size) is not int or not 0 <= size < 2**63:
            raise LocalProtocolError(f"size must be a non-negative int, got {size!r}")
        if type(self) is not Mail:  # a subclass may add fields: the full constructor
            return dataclasses.replace(self, size=size)
        new = object.__new__(Mail)
        for name in _MAIL_FIELDS:
            _set(new, name, getattr(self, name))
        _set(new, "size", size)
        _set(new, "_plain", b"")  # a SIZE parameter: never the plain line
        return new


#: Every field of ``Mail``, the derived ``_path`` and ``_plain`` included (``with_size``).
_MAIL_FIELDS = tuple(field.name for field in dataclasses.fields(Mail))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Rcpt(Command):
    """``RCPT TO:<recipient> [NOTIFY=...] [ORCPT=...]`` (RFC 5321 §4.1.1.3, RFC 3461 §4).

    ``notify`` is an iterable of ``"SUCCESS"``, ``"FAILURE"``, ``"DELAY"``, or
    ``("NEVER",)`` alone; ``orcpt`` the original recipient address (sent as
    ``rfc822;xtext``, or ``utf-8;utf-8-addr-xtext`` when non-ASCII, RFC 6533 §3). Both
    need DSN. A non-ASCII recipient needs ``Mail(smtputf8=True)``. ``"Postmaster"``
    without a domain is accepted (RFC 5321 §4.1.1.3).
    """

    recipient: str
    notify: Iterable[str] | None = None
    orcpt: str | None = None
    _path: bytes = dataclasses.field(init=False, repr=False, compare=False, default=b"")
    _params: bytes = dataclasses.field(init=False, repr=False, compare=False, default=b"")
    _wire: bytes = dataclasses.field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        _set(
            self,
            "_path",
            format_path(
                self.recipient,
                smtputf8=not self.recipient.isascii() if isinstance(self.recipient, str) else False,
                allow_postmaster=True,
                what="recipient",
            ),
        )
        params = b""
        if self.notify is not None:
            if isinstance(self.notify, str):
                raise LocalProtocolError("notify must be an iterable of keywords, not a str")
            try:
                values = tuple(self.notify)
            except TypeError:  # not iterable (an int): the caller's mistake, not a crash
                raise LocalProtocolError(
                    f"notify must be an iterable of keywords, got {type(self.notify).__name__}"
                ) from None
            for value in values:
                if not isinstance(value, str):
                    raise LocalProtocolError(f"notify values must be str, got {value!r}")
            upper = tuple(dict.fromkeys(value.upper() for value in values))
            if upper == ("NEVER",):
                pass
            elif not upper or "NEVER" in upper or any(v not in _NOTIFY_VALUES for v in upper):
                raise LocalProtocolError(
                    "notify must be NEVER alone, or a non-empty mix of SUCCESS, FAILURE, "
                    f"DELAY (RFC 3461 §4.1), got {values!r}"
                )
            _set(self, "notify", upper)
            params += b" NOTIFY=" + ",".join(upper).encode("ascii")
        if self.orcpt is not None:
            check_no_controls(self.orcpt, "orcpt")
            if not self.orcpt:
                raise LocalProtocolError("orcpt must not be empty")
            if self.orcpt.isascii():
                value = "rfc822;" + xtext_encode(self.orcpt)
            else:
                value = "utf-8;" + utf8_addr_xtext(self.orcpt)
            if len(value) > MAX_ORCPT:
                raise LocalProtocolError(
                    f"orcpt is longer than {MAX_ORCPT} characters encoded (RFC 3461 §4.2)"
                )
            params += b" ORCPT=" + value.encode("ascii")
        _set(self, "_params", params)
        _set(self, "_wire", b"RCPT TO:" + self._path + params + b"\r\n")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Data(Command):
    """``DATA`` (RFC 5321 §4.1.1.4). After ``ReadyForContent`` send ``Content`` chunks
    then ``EndOfContent``; after ``NoRecipientsAccepted`` send only ``EndOfContent``."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Content(Command):
    """A chunk of message content, any size: normalised to CRLF and dot-stuffed.

    NUL, lines over 998 octets and 8-bit octets without BODY=8BITMIME are refused
    (RFC 5321 §4.5.3.1.6, RFC 6152); such a refusal mid-message leaves the connection in
    ERROR, since earlier chunks may be on the wire.
    """

    data: bytes

    def __post_init__(self) -> None:
        _check_bytes(self.data, "content")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RawContent(Command):
    """A chunk of DATA content sent exactly as given, for testing servers and filters:
    no line-end normalisation, no dot-stuffing, any octet (bare CR/LF, NUL, 8-bit).

    The one rule kept (``wire.rawdata``): the content can never end the DATA early.
    A chunk that would put ``CRLF . CRLF`` on the wire (a line ``.``, the first line
    included; found across chunks) is refused, and ``EndOfContent`` writes the end of
    data. Raw and normal ``Content`` do not mix in one message. A refusal leaves the
    connection in ERROR (earlier chunks may be on the wire); ``sendmail(raw=True)``
    checks the whole content before MAIL instead.
    """

    data: bytes

    def __post_init__(self) -> None:
        _check_bytes(self.data, "raw content")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EndOfContent(Command):
    """The end of the DATA content: the engine adds CRLF if needed, then ``.\\r\\n``."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Bdat(Command):
    """``BDAT size [LAST]`` followed by ``data`` verbatim (RFC 3030 §2); needs CHUNKING.

    The content is never dot-stuffed or normalised. 8-bit octets need BODY=8BITMIME or
    BINARYMIME. ``Bdat(data=b"", last=True)`` ends a message whose last chunk was sent.
    """

    data: bytes
    last: bool = False

    def __post_init__(self) -> None:
        _check_bytes(self.data, "BDAT data")
        check_flag("last", self.last, error=LocalProtocolError)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Rset(Command):
    """``RSET`` (RFC 5321 §4.1.1.5): abort the transaction; pipelinable."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Noop(Command):
    """``NOOP`` (RFC 5321 §4.1.1.9)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Vrfy(Command):
    """``VRFY argument`` (RFC 5321 §4.1.1.6): printable ASCII; the line is at most 512
    octets with its CRLF (§4.5.3.1.4)."""

    argument: str
    _wire: bytes = dataclasses.field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        arg = format_text_argument(self.argument, "VRFY argument", allow_empty=False)
        _set(self, "_wire", _line(b"VRFY " + arg))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Expn(Command):
    """``EXPN argument`` (RFC 5321 §4.1.1.7): printable ASCII; the line is at most 512
    octets with its CRLF (§4.5.3.1.4)."""

    argument: str
    _wire: bytes = dataclasses.field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        arg = format_text_argument(self.argument, "EXPN argument", allow_empty=False)
        _set(self, "_wire", _line(b"EXPN " + arg))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Help(Command):
    """``HELP [topic]`` (RFC 5321 §4.1.1.8); the line is at most 512 octets with its
    CRLF (§4.5.3.1.4)."""

    topic: str | None = None
    _wire: bytes = dataclasses.field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        if self.topic is None:
            _set(self, "_wire", b"HELP\r\n")
        else:
            arg = format_text_argument(self.topic, "HELP topic", allow_empty=False)
            _set(self, "_wire", _line(b"HELP " + arg))


#: The attributes ``XCLIENT`` may set (Postfix XCLIENT_README).
XCLIENT_ATTRIBUTES = frozenset(
    {"NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN", "DESTADDR", "DESTPORT"}
)
#: The attributes ``XFORWARD`` may set (Postfix XFORWARD_README).
XFORWARD_ATTRIBUTES = frozenset({"NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"})
#: The longest attribute value accepted, before xtext encoding (Postfix keeps host
#: names and addresses within 255 octets).
MAX_ATTRIBUTE_VALUE = 255


def _attribute_line(verb: str, attributes: Mapping[str, str], allowed: frozenset[str]) -> bytes:
    """``VERB name=xtext ...`` CRLF: known names once each, printable ASCII values
    without space (the values are xtext, RFC 3461 §4), the line at most 512 octets."""
    if not isinstance(attributes, Mapping) or not attributes:
        raise LocalProtocolError(f"{verb} needs a non-empty mapping of attributes")
    parts = [verb]
    seen: set[str] = set()
    for name, value in attributes.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise LocalProtocolError(f"{verb} attribute names and values must be str")
        upper = name.upper()
        if upper not in allowed:
            raise LocalProtocolError(
                f"unknown {verb} attribute {name!a}; known: {' '.join(sorted(allowed))}"
            )
        if upper in seen:
            raise LocalProtocolError(f"{verb} attribute {upper} given twice")
        seen.add(upper)
        if not value or len(value) > MAX_ATTRIBUTE_VALUE:
            raise LocalProtocolError(
                f"{verb} {upper} value must be 1 to {MAX_ATTRIBUTE_VALUE} characters"
            )
        if not all("!" <= char <= "~" for char in value):
            raise LocalProtocolError(
                f"{verb} {upper} value {value!a}: only printable ASCII without space "
                "(no CR, LF, NUL or other controls)"
            )
        parts.append(f"{upper}={xtext_encode(value)}")
    return _line(" ".join(parts).encode("ascii"))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Xclient(Command):
    """``XCLIENT name=value ...`` (Postfix XCLIENT_README): override the client's
    NAME, ADDR, PORT, PROTO, HELO, LOGIN, DESTADDR, DESTPORT as the server sees them.

    Values are printable ASCII without space, at most 255 characters, sent as xtext
    (RFC 3461 §4); the server must advertise XCLIENT with each name, unless
    ``require_advertised`` is False: then only XCLIENT itself must be advertised (for
    servers that implement attributes without listing them; swaks'
    ``--xclient-no-verify``). A 220 reply is a new greeting: the extensions are
    forgotten and a new EHLO is needed.
    """

    attributes: Mapping[str, str]
    require_advertised: bool = True
    _wire: bytes = dataclasses.field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        if type(self.require_advertised) is not bool:
            raise LocalProtocolError("require_advertised must be a bool")
        _set(self, "_wire", _attribute_line("XCLIENT", self.attributes, XCLIENT_ATTRIBUTES))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Xforward(Command):
    """``XFORWARD name=value ...`` (Postfix XFORWARD_README): the original client's
    NAME, ADDR, PORT, PROTO, HELO, IDENT, SOURCE for the next transaction; 250 on
    success. Values as for ``Xclient``; the server must advertise XFORWARD with each
    name."""

    attributes: Mapping[str, str]
    _wire: bytes = dataclasses.field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        _set(self, "_wire", _attribute_line("XFORWARD", self.attributes, XFORWARD_ATTRIBUTES))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Quit(Command):
    """``QUIT`` (RFC 5321 §4.1.1.10): after its reply the server closes the connection."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class UnsafeRawBytes(Command):
    """Arbitrary bytes for testing *servers*; needs ``ClientConfig(allow_unsafe_raw=True)``.

    ``data`` goes to the wire unchecked (bare CR/LF, unstuffed dots, wrong BDAT sizes);
    ``expected_replies`` replies are then parsed strictly and reported as
    ``CommandReply(command=self, ...)``. The session state is not changed.
    """

    data: bytes
    expected_replies: int

    def __post_init__(self) -> None:
        _check_bytes(self.data, "raw data")
        if type(self.expected_replies) is not int or self.expected_replies < 0:
            raise LocalProtocolError("expected_replies must be a non-negative int")
