"""Events of the server role: what ``ServerConnection.next_event()`` returns.

Every event is a frozen, slotted, keyword-only value. ``expects_reply`` says whether
the caller must now ``send()`` a reply (the connection is PAUSED until it does):

- one command, one reply: ``EhloReceived``, ``HeloReceived``, ``MailReceived``,
  ``RcptReceived``, ``DataRequested``, ``StartTLSRequested``, ``AuthRequested``,
  ``AuthResponse``, ``AuthCancelled``, ``ResetReceived``, ``NoopReceived``,
  ``VrfyReceived``, ``ExpnReceived``, ``HelpReceived``, ``QuitReceived``,
  ``UnknownCommand``, ``CommandRejected``;
- the end of content: ``ChunkComplete`` (one BDAT chunk that is not LAST) and
  ``MessageComplete`` (after ``CRLF.CRLF`` or BDAT LAST: one reply, or in LMTP mode one
  per accepted recipient, RFC 2033 §4.2);
- no reply: ``BdatStarted``, ``ContentReceived``, ``PlaintextDiscarded``,
  ``ClientDisconnected``.

``CommandRejected`` is the engine refusing a command on its own (bad syntax, bad
sequence, a limit, a parameter that was not advertised): it carries the reply to send,
whose text never contains raw client octets.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from ..wire.need_data import NEED_DATA
from ..wire.reply import Reply
from ..wire.twins import slot_filler

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "AuthCancelled",
    "AuthRequested",
    "AuthResponse",
    "BdatStarted",
    "ChunkComplete",
    "ClientDisconnected",
    "CommandRejected",
    "ContentReceived",
    "DataRequested",
    "EhloReceived",
    "ExpnReceived",
    "HeloReceived",
    "HelpReceived",
    "MailReceived",
    "MessageComplete",
    "NoopReceived",
    "Paused",
    "PlaintextDiscarded",
    "QuitReceived",
    "RcptReceived",
    "ResetReceived",
    "ServerEvent",
    "StartTLSRequested",
    "UnknownCommand",
    "VrfyReceived",
    "positional",
]


class Paused(enum.Enum):
    """The type of the ``PAUSED`` marker."""

    PAUSED = "PAUSED"


#: ``next_event()``: the caller must act first (send a reply, or report the TLS
#: handshake done); no input is parsed meanwhile. (``NEED_DATA`` is the client's marker,
#: shared: nothing complete is buffered, feed more with ``receive_data``.)
PAUSED = Paused.PAUSED


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerEvent:
    """Base class of every server-role event.

    ``unauthorized_pipelining`` is true on a command event (or ``MessageComplete``)
    whose command line (or DATA content) arrived before the reply it had to wait for:
    any reply when PIPELINING is not in force, else the reply to a command that must
    end a pipelined group (RFC 2920 §3.1). With ``ServerConfig(unauthorized_pipelining=
    "reject")`` such input is refused instead (docs/design.md §4 rule 10). It is not
    part of an event's equality.
    """

    #: True when the caller must ``send()`` a reply before the next event.
    expects_reply: ClassVar[bool] = True

    unauthorized_pipelining: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class EhloReceived(ServerEvent):
    """EHLO (RFC 5321 §4.1.1.1) or, with ``lmtp``, LHLO (RFC 2033 §4.1).

    Reply with ``ehlo_reply(domain, extensions)``: the keywords in a 250 reply are what
    the connection later accepts (SIZE, 8BITMIME, SMTPUTF8, DSN, CHUNKING, STARTTLS,
    AUTH ...). A 250 reply resets any transaction.
    """

    domain: str
    lmtp: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class HeloReceived(ServerEvent):
    """HELO (RFC 5321 §4.1.1.1): no extensions are in force after it."""

    domain: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MailReceived(ServerEvent):
    """MAIL FROM (RFC 5321 §4.1.1.2); ``sender`` is ``""`` for the null path ``<>``.

    ``params`` holds every parameter (keywords upper-cased); the typed fields are the
    ones the connection checked against what was advertised: ``size`` (RFC 1870),
    ``body`` (``7BIT``/``8BITMIME``/``BINARYMIME``, RFC 6152 / RFC 3030), ``smtputf8``
    (RFC 6531), ``ret`` and ``envid`` (RFC 3461, xtext decoded), ``auth`` (RFC 4954 §5,
    xtext decoded, ``"<>"`` kept as is).
    """

    sender: str
    params: Mapping[str, str | None]
    size: int | None = None
    body: str | None = None
    smtputf8: bool = False
    ret: str | None = None
    envid: str | None = None
    auth: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RcptReceived(ServerEvent):
    """RCPT TO (RFC 5321 §4.1.1.3).

    ``notify`` is the RFC 3461 §4.1 list (``("NEVER",)`` or some of ``SUCCESS``,
    ``FAILURE``, ``DELAY``); ``orcpt`` is ``(addr_type, address)`` decoded from xtext
    (or RFC 6533 utf-8-addr-xtext when the type is ``utf-8``).
    """

    recipient: str
    params: Mapping[str, str | None]
    notify: tuple[str, ...] | None = None
    orcpt: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DataRequested(ServerEvent):
    """DATA (RFC 5321 §4.1.1.4): reply ``start_mail_input()`` (354) to receive content."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BdatStarted(ServerEvent):
    """A BDAT chunk (RFC 3030 §2) of ``size`` octets begins; its octets follow as
    ``ContentReceived`` events, never parsed as commands. No reply yet."""

    expects_reply: ClassVar[bool] = False

    size: int
    last: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentReceived(ServerEvent):
    """Message content: dot-unstuffed DATA octets, or BDAT octets as sent. Never empty."""

    expects_reply: ClassVar[bool] = False

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkComplete(ServerEvent):
    """A BDAT chunk that is not LAST was received whole; reply 250 (or an error, which
    ends the transaction, RFC 3030 §3)."""

    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageComplete(ServerEvent):
    """The message ended (``CRLF.CRLF`` after DATA, or BDAT LAST).

    ``size`` counts content octets as delivered in ``ContentReceived``. Reply once — or,
    in LMTP mode, once per entry of ``recipients``, in that order (RFC 2033 §4.2).
    ``bare_line_endings`` counts bare CR and bare LF octets in DATA content (kept as
    content, RFC 5321 §2.3.8 forbids them): a server may refuse such a message, as
    Postfix's ``smtpd_forbid_bare_newline`` does against SMTP smuggling. 0 for BDAT.
    """

    sender: str
    recipients: tuple[str, ...]
    size: int
    bdat: bool
    bare_line_endings: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTLSRequested(ServerEvent):
    """STARTTLS (RFC 3207 §4). After a 220 reply every octet still buffered is
    discarded (CVE-2011-0411) and nothing is parsed until ``tls_established()``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthRequested(ServerEvent):
    """AUTH (RFC 4954 §4) with an advertised mechanism (upper-cased).

    ``initial_response`` is ``None`` when absent, ``b""`` for ``=``, else the decoded
    base64. Reply 334 (``auth_challenge``), 235 or an error.
    """

    mechanism: str
    initial_response: bytes | None

    def __repr__(self) -> str:  # secrets never appear in reprs (docs/design.md §4 rule 11)
        shown = (
            "None" if self.initial_response is None else f"<{len(self.initial_response)} octets>"
        )
        return f"AuthRequested(mechanism={self.mechanism!r}, initial_response={shown})"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthResponse(ServerEvent):
    """A base64-decoded SASL response line (RFC 4954 §4) after a 334 challenge."""

    data: bytes

    def __repr__(self) -> str:  # secrets never appear in reprs (docs/design.md §4 rule 11)
        return f"AuthResponse(<{len(self.data)} octets>)"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthCancelled(ServerEvent):
    """The client answered a challenge with ``*``: reply ``auth_cancelled()`` (501)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResetReceived(ServerEvent):
    """RSET (RFC 5321 §4.1.1.5): a 250 reply clears the transaction."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NoopReceived(ServerEvent):
    """NOOP (RFC 5321 §4.1.1.9); its optional argument is ignored."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VrfyReceived(ServerEvent):
    """VRFY (RFC 5321 §4.1.1.6); ``252 cannot verify`` is the usual answer (§3.5.3)."""

    argument: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpnReceived(ServerEvent):
    """EXPN (RFC 5321 §4.1.1.7)."""

    argument: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HelpReceived(ServerEvent):
    """HELP (RFC 5321 §4.1.1.8); ``topic`` may be empty."""

    topic: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QuitReceived(ServerEvent):
    """QUIT (RFC 5321 §4.1.1.10): reply ``closing()`` (221), then close."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownCommand(ServerEvent):
    """A well-formed line with a verb this engine does not know.

    ``verb`` is upper-cased and printable; ``line`` is the raw line (without CRLF), for
    callers that implement extra verbs. Usual reply: ``not_recognized()`` (500). In the
    credentials window after an AUTH line (docs/design.md §4 rule 11) both are
    ``<REDACTED>``/``<redacted>``: the "verb" may be a base64 password.
    """

    verb: str
    line: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandRejected(ServerEvent):
    """The engine refused a command; send ``reply`` (or another error reply).

    ``reason`` is for logs (escaped); ``line`` the raw line when there was one (empty for
    an over-long line, which is dropped as it arrives). Never a secret (docs/design.md
    §4 rule 11): an AUTH line, in any case and with any separator, keeps its verb and an
    advertised mechanism, the rest becomes ``<redacted>``; a line in the credentials
    window after an AUTH line is ``<redacted>`` whole.
    """

    reply: Reply
    reason: str
    line: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaintextDiscarded(ServerEvent):
    """``size`` octets that arrived after STARTTLS and before the TLS handshake were
    dropped unparsed (RFC 3207 §4, CVE-2011-0411). No reply."""

    expects_reply: ClassVar[bool] = False

    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientDisconnected(ServerEvent):
    """The client closed its side (EOF). ``clean`` is true after QUIT was answered, or
    between commands; false in the middle of a line, content or an AUTH exchange."""

    expects_reply: ClassVar[bool] = False

    clean: bool


_E = TypeVar("_E", bound=ServerEvent)


def positional(cls: type[_E]) -> Callable[..., _E]:
    """A positional constructor of ``cls`` for the per-message path (every field, in
    field order: ``unauthorized_pipelining`` first): the value ``cls(**fields)`` makes,
    with its slots filled directly by the selected ``wire.twins.slot_filler`` twin
    rather than one ``object.__setattr__`` per field (a ``MessageComplete`` in a
    quarter of the time, compiled). Events have no ``__post_init__`` to skip."""
    return slot_filler(cls, [item.name for item in dataclasses.fields(cls)])
