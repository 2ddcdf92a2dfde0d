"""``ClientConfig``: everything a ``ClientConnection`` can be told, as one frozen value.

Each default cites where it comes from. The engine reads the config once at
construction; to change policy, make a new connection.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable
from typing import Protocol

from ..wire.errors import LocalProtocolError
from ..wire.fields import check_flag, check_int, check_seconds
from ..wire.limits import (
    DEFAULT_MAX_RECEIVE_BUFFER,
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_MAX_REPLY_LINE_LENGTH,
    DEFAULT_MAX_REPLY_LINES,
)
from ..wire.reply import Reply
from .transcript import TranscriptHook

# RFC 5321 §4.1.1.1: ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
_EHLO_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")

__all__ = [
    "DEFAULT_MAX_AUTH_ROUNDS",
    "MIN_REPLY_LINE_LENGTH",
    "ClientConfig",
    "ParserFactory",
    "ReplyParserLike",
    "TLSPolicy",
    "Timeouts",
    "TranscriptHook",
    "require_tls_if_policy",
]

#: The smallest reply line limit accepted: RFC 5321 §4.5.3.1.5 allows 512 octets.
MIN_REPLY_LINE_LENGTH = 512

#: Most 334 challenges one AUTH exchange may have before the engine cancels it with
#: ``*``. SCRAM needs 2, GSSAPI about 3-4; 10 stops a server that challenges forever.
DEFAULT_MAX_AUTH_ROUNDS = 10


class TLSPolicy(enum.Enum):
    """How the session uses TLS (RFC 3207, RFC 8314)."""

    #: Never use TLS; ``StartTLS`` is refused.
    NONE = "none"
    #: Use STARTTLS when advertised, continue in cleartext otherwise (the adapter
    #: decides; the engine allows both).
    OPPORTUNISTIC = "opportunistic"
    #: STARTTLS must succeed before AUTH or MAIL (RFC 3207 §4.1 / RFC 8314 §3.3):
    #: EHLO without STARTTLS, or STARTTLS refused, ends the session (``TLSUnavailable``).
    REQUIRED = "required"
    #: TLS from the first byte (port 465, RFC 8314 §3.3): the adapter handshakes before
    #: feeding any data; the engine treats the session as protected.
    IMPLICIT = "implicit"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Seconds to wait for each reply (RFC 5321 §4.5.3.2); the engine publishes them,
    adapters enforce them. ``None`` disables one."""

    #: §4.5.3.2.1 Initial 220 Message: 5 minutes.
    greeting: float | None = 300.0
    #: §4.5.3.2.2 MAIL Command: 5 minutes.
    mail: float | None = 300.0
    #: §4.5.3.2.3 RCPT Command: 5 minutes.
    rcpt: float | None = 300.0
    #: §4.5.3.2.4 DATA Initiation (the 354): 2 minutes.
    data_initiation: float | None = 120.0
    #: §4.5.3.2.5 Data Block: 3 minutes for each write of content (and each BDAT chunk
    #: reply that is not the last).
    data_block: float | None = 180.0
    #: §4.5.3.2.6 DATA Termination (reply to ``.`` or BDAT LAST): 10 minutes.
    data_termination: float | None = 600.0
    #: §4.5.3.2.7 Server Timeout is the server's; other commands get 5 minutes as
    #: §4.5.3.2 suggests for commands without a specific value.
    other: float | None = 300.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            check_seconds(
                f"timeout {field.name}",
                getattr(self, field.name),
                allow_none=True,
                error=LocalProtocolError,
            )


class ReplyParserLike(Protocol):
    """What the engine needs from a reply parser (both twins in ``wire.twins`` fit)."""

    @property
    def buffered(self) -> int: ...

    @property
    def failed(self) -> bool: ...

    def feed(self, data: bytes) -> list[Reply]: ...

    def feed_eof(self) -> None: ...


#: Builds a parser from the three limits (``max_line_length``, ``max_lines``,
#: ``max_reply_bytes``) as keywords; the parser twins' classes are such factories.
ParserFactory = Callable[..., ReplyParserLike]


#: The ``ClientConfig`` fields that are flags (``True`` or ``False``, nothing else).
_FLAGS = (
    "lmtp",
    "helo_only",
    "allow_cleartext_auth",
    "enforce_line_length",
    "allow_nul",
    "transcript_content",
    "allow_unsafe_raw",
)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """Policy and limits of one client connection.

    ``lmtp`` selects LMTP (RFC 2033): ``Lhlo`` instead of ``Ehlo``/``Helo``, one final
    reply per accepted recipient. ``helo_only`` makes the session drivers open with
    ``Helo`` (plain SMTP, RFC 5321 §4.1.1.1: no extension is used).
    ``allow_cleartext_auth`` permits AUTH without TLS (RFC 4954 §4 warns against it;
    off by default). ``enforce_line_length`` refuses
    content lines over 998 octets (RFC 5321 §4.5.3.1.6); ``allow_nul`` lets NUL through
    DATA (RFC 5321 §4.5.2 forbids it in practice; off). ``transcript`` receives every
    line sent and received; AUTH lines are redacted and content lines are summarised
    unless ``transcript_content``. ``parser_factory`` picks the reply parser twin (the
    default is the compiled one when built). ``allow_unsafe_raw`` enables
    ``UnsafeRawBytes`` for testing servers. ``mask_extensions`` lists EHLO keywords
    to treat as never advertised ("do not use CHUNKING with this server").
    ``max_receive_buffer`` caps the octets ``receive_data`` holds before ``next_event``
    consumes them (``DEFAULT_MAX_RECEIVE_BUFFER``; at least ``max_reply_bytes``; the
    bundled adapters feed up to 1.25 MiB at once).
    """

    tls_policy: TLSPolicy = TLSPolicy.OPPORTUNISTIC
    lmtp: bool = False
    helo_only: bool = False
    allow_cleartext_auth: bool = False
    max_auth_rounds: int = DEFAULT_MAX_AUTH_ROUNDS
    enforce_line_length: bool = True
    allow_nul: bool = False
    timeouts: Timeouts = dataclasses.field(default_factory=Timeouts)
    max_reply_line_length: int = DEFAULT_MAX_REPLY_LINE_LENGTH
    max_reply_lines: int = DEFAULT_MAX_REPLY_LINES
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    max_receive_buffer: int = DEFAULT_MAX_RECEIVE_BUFFER
    parser_factory: ParserFactory | None = None
    transcript: TranscriptHook | None = None
    transcript_content: bool = False
    allow_unsafe_raw: bool = False
    mask_extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.tls_policy, TLSPolicy):
            raise LocalProtocolError("tls_policy must be a TLSPolicy")
        for name in _FLAGS:
            check_flag(name, getattr(self, name), error=LocalProtocolError)
        check_int("max_auth_rounds", self.max_auth_rounds, minimum=1, error=LocalProtocolError)
        if isinstance(self.mask_extensions, str):
            raise LocalProtocolError("mask_extensions must be a tuple of keywords, not a str")
        masks = tuple(self.mask_extensions)
        for keyword in masks:
            # Checked here, not when the EHLO reply arrives: a non-str would escape
            # next_event as an AttributeError, and a keyword no server can advertise
            # (a stray space, a CR) would silently mask nothing.
            if not isinstance(keyword, str) or _EHLO_KEYWORD.fullmatch(keyword) is None:
                raise LocalProtocolError(
                    f"mask_extensions holds {keyword!a}, not an EHLO keyword (RFC 5321 §4.1.1.1)"
                )
        object.__setattr__(self, "mask_extensions", masks)
        if not isinstance(self.timeouts, Timeouts):
            raise LocalProtocolError("timeouts must be a Timeouts value")
        names = (
            "max_reply_line_length",
            "max_reply_lines",
            "max_reply_bytes",
            "max_receive_buffer",
        )
        for name in names:
            check_int(name, getattr(self, name), minimum=1, error=LocalProtocolError)
        if self.max_reply_line_length < MIN_REPLY_LINE_LENGTH:
            raise LocalProtocolError(
                f"max_reply_line_length must be at least {MIN_REPLY_LINE_LENGTH} "
                "(RFC 5321 §4.5.3.1.5: a 512-octet reply line is always legal)"
            )
        if self.max_reply_lines < 1:
            raise LocalProtocolError("max_reply_lines must be at least 1")
        if self.max_reply_bytes < self.max_reply_line_length:
            raise LocalProtocolError("max_reply_bytes must be at least max_reply_line_length")
        if self.max_receive_buffer < self.max_reply_bytes:
            raise LocalProtocolError("max_receive_buffer must be at least max_reply_bytes")
        for name in ("parser_factory", "transcript"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise LocalProtocolError(f"{name} must be callable or None")


def require_tls_if_policy(config: ClientConfig, tls_active: bool, what: str) -> None:
    """Refuse ``what`` (MAIL, AUTH) in clear text when the policy requires STARTTLS
    first (``TLSPolicy.REQUIRED``, RFC 3207 §4)."""
    if config.tls_policy is TLSPolicy.REQUIRED and not tls_active:
        raise LocalProtocolError(f"{what} refused: the TLS policy requires STARTTLS first")
