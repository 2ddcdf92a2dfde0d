"""Events the engine reports, as immutable values (and the commands, re-exported).

Theory of operation
-------------------
Every event is a frozen, slotted, keyword-only dataclass (the h11 convention). Events
carry the ``Reply`` that caused them: a well-formed 4xx/5xx reply is an event, never an
exception. The commands live in ``commands`` and are re-exported here, so this one
module is the whole command/event vocabulary. ``positional`` gives the engine cheap
constructors for the events it builds on every transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from ..wire._slots_py import slot_filler as reference_filler
from ..wire.need_data import NEED_DATA, NeedData
from ..wire.reply import Reply
from .commands import (
    MAX_ENVID,
    MAX_ORCPT,
    Auth,
    AuthContinue,
    Bdat,
    Command,
    Content,
    Data,
    Ehlo,
    EndOfContent,
    Expn,
    Helo,
    Help,
    Lhlo,
    Mail,
    Noop,
    Quit,
    RawContent,
    Rcpt,
    Rset,
    StartTLS,
    UnsafeRawBytes,
    Vrfy,
    Xclient,
    Xforward,
)

if TYPE_CHECKING:  # an annotation only: events load without the EHLO parser
    from .capabilities import Capabilities

__all__ = [
    "MAX_ENVID",
    "MAX_ORCPT",
    "NEED_DATA",
    "Auth",
    "AuthChallenge",
    "AuthContinue",
    "AuthFailed",
    "AuthSucceeded",
    "Bdat",
    "Command",
    "CommandReply",
    "ConnectionClosed",
    "Content",
    "Data",
    "DeliveryStatusUnknown",
    "Ehlo",
    "EhloAccepted",
    "EndOfContent",
    "Event",
    "Expn",
    "Greeting",
    "GreetingRefused",
    "HelloRefused",
    "Helo",
    "HeloAccepted",
    "Help",
    "Lhlo",
    "Mail",
    "NeedData",
    "NoRecipientsAccepted",
    "Noop",
    "Quit",
    "RawContent",
    "Rcpt",
    "ReadyForContent",
    "Rset",
    "ServiceClosing",
    "StartTLS",
    "StartTLSRefused",
    "TLSReady",
    "TLSUnavailable",
    "TransactionResult",
    "UnsafeRawBytes",
    "Vrfy",
    "Xclient",
    "Xforward",
    "positional",
]


class Event:
    """Base class of everything ``ClientConnection.next_event`` returns."""

    __slots__ = ()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Greeting(Event):
    """The server's 220 greeting (RFC 5321 §3.1, §4.2): send EHLO (or LHLO) next."""

    reply: Reply


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GreetingRefused(Event):
    """A greeting other than 220 (554, 421, ...): no session. Only ``Quit`` may be sent
    (after 421 nothing: the server closes)."""

    reply: Reply


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EhloAccepted(Event):
    """EHLO or LHLO got 250; ``capabilities`` now rule what may be sent."""

    command: Ehlo | Lhlo
    reply: Reply
    capabilities: Capabilities


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HeloAccepted(Event):
    """HELO got 250: no extensions are available in this session."""

    reply: Reply


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HelloRefused(Event):
    """EHLO/HELO/LHLO was refused. ``helo_fallback`` is True when sending ``Helo`` is
    allowed now (EHLO got 500/502 and the TLS policy does not require TLS)."""

    command: Ehlo | Helo | Lhlo
    reply: Reply
    helo_fallback: bool


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TLSReady(Event):
    """STARTTLS got 220: run the TLS handshake, then call ``tls_established()``."""

    reply: Reply


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StartTLSRefused(Event):
    """STARTTLS got something other than 220; the session stays in cleartext."""

    reply: Reply


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TLSUnavailable(Event):
    """``TLSPolicy.REQUIRED`` cannot be met (no STARTTLS advertised, STARTTLS or EHLO
    refused): the session must end; only ``Quit`` may be sent."""

    reason: str
    reply: Reply


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AuthChallenge(Event):
    """A 334 challenge; answer with ``AuthContinue()``. ``challenge`` is the decoded
    challenge, or None when it was not valid base64 (the engine will answer ``*``)."""

    reply: Reply
    challenge: bytes | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AuthSucceeded(Event):
    """235: authenticated (RFC 4954 §4); AUTH may not be sent again."""

    reply: Reply


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AuthFailed(Event):
    """AUTH ended with something other than 235 (535, 501 after ``*``, 504, ...)."""

    reply: Reply


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CommandReply(Event):
    """The reply to MAIL, RCPT, RSET, NOOP, VRFY, EXPN, HELP, QUIT, a non-final BDAT or
    raw bytes. MAIL and RCPT replies are also collected in ``TransactionResult``."""

    command: Command
    reply: Reply


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ReadyForContent(Event):
    """DATA got 354 and a recipient was accepted: send ``Content`` then ``EndOfContent``."""

    reply: Reply


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NoRecipientsAccepted(Event):
    """DATA got 354 although no recipient was accepted (only possible when pipelining).

    RFC 2920 §3.1: the client sends a lone ``.``. Send ``EndOfContent()`` now; ``Content``
    is refused. The transaction is then reported failed.
    """

    reply: Reply


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TransactionResult(Event):
    """How a mail transaction ended, with every recipient's reply.

    Emitted after the final reply to the content (LMTP: after the last per-recipient
    reply), after DATA was refused, after RSET ended the transaction, or when MAIL was
    refused before anything else of the transaction was sent. ``data_reply`` is the
    reply to DATA's end or BDAT LAST (or the refusal of DATA / the first failed BDAT);
    None when the transaction ended without it. ``lmtp_replies`` holds, in LMTP mode,
    one final reply per accepted recipient (RFC 2033 §4.2).
    """

    sender: str
    sender_reply: Reply | None
    recipients: tuple[tuple[str, Reply], ...]
    data_reply: Reply | None
    lmtp_replies: tuple[tuple[str, Reply], ...] = ()

    @property
    def delivered(self) -> tuple[str, ...]:
        """Recipients the server took responsibility for (2xx at every step)."""
        if self.sender_reply is None or not self.sender_reply.is_success:
            return ()
        if self.lmtp_replies:
            return tuple(addr for addr, reply in self.lmtp_replies if reply.is_success)
        if self.data_reply is None or not self.data_reply.is_success:
            return ()
        return tuple(addr for addr, reply in self.recipients if reply.is_success)

    @property
    def failed(self) -> tuple[tuple[str, Reply], ...]:
        """Recipients not delivered, with the reply that refused them (RCPT, DATA or
        the LMTP reply); empty when the transaction ended without a refusal reply."""
        delivered = set(self.delivered)
        out: list[tuple[str, Reply]] = []
        lmtp = dict(self.lmtp_replies)
        for address, reply in self.recipients:
            if address in delivered:
                continue
            if not reply.is_success:
                out.append((address, reply))
            elif address in lmtp:
                out.append((address, lmtp[address]))
            elif self.data_reply is not None:
                out.append((address, self.data_reply))
            elif self.sender_reply is not None:
                out.append((address, self.sender_reply))
        return tuple(out)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ServiceClosing(Event):
    """A 421 (RFC 5321 §3.8), solicited or not: the server is closing the connection.

    Commands still outstanding will not be answered; nothing more may be sent.
    """

    reply: Reply


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryStatusUnknown(Event):
    """The connection ended after the final ``.`` or BDAT LAST but before its reply:
    the message may or may not have been delivered (RFC 1047). Not a failure."""

    sender: str
    recipients: tuple[str, ...]
    reason: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(Event):
    """The server closed the connection (EOF) at a point where that is not an error."""


_E = TypeVar("_E", bound=Event)


def positional(
    cls: type[_E],
    fill: Callable[[type[_E], Sequence[str]], Callable[..., _E]] = reference_filler,
) -> Callable[..., _E]:
    """A positional constructor for the engine's hot path, arguments in field order.

    It builds exactly the value ``cls(**fields)`` builds, filling the slots directly
    instead of going through the frozen dataclass's per-field ``object.__setattr__``.
    ``fill`` is a ``slot_filler`` twin: the Python reference by default (half the
    constructor's cost); the engine's per-message events pass the selected twin,
    ``wire.twins.slot_filler`` (compiled: a quarter). Only for events, which have no
    ``__post_init__`` to skip.
    """
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} validates in __post_init__; use its constructor")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # every event is a dataclass
    return fill(cls, [field.name for field in fields])
