"""One transcript line per client event, for the built-in server's ``transcript``.

Sans-IO (no asyncio, no sockets): any front end can use it. ``describe(event)`` rebuilds
the command line the client sent from the parsed ``ServerConnection`` event, or gives a
note in ``<...>`` for what is not a command line. AUTH data never appears (docs/design.md
§4 rule 11).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..server_engine.events import (
    AuthCancelled,
    AuthRequested,
    AuthResponse,
    BdatStarted,
    ChunkComplete,
    ClientDisconnected,
    CommandRejected,
    DataRequested,
    EhloReceived,
    ExpnReceived,
    HeloReceived,
    HelpReceived,
    MailReceived,
    MessageComplete,
    NoopReceived,
    PlaintextDiscarded,
    QuitReceived,
    RcptReceived,
    ResetReceived,
    ServerEvent,
    StartTLSRequested,
    UnknownCommand,
    VrfyReceived,
)

__all__ = ["describe"]


def _params(params: Mapping[str, str | None]) -> str:
    return "".join(f" {k}" + ("" if v is None else f"={v}") for k, v in params.items())


#: Commands without an argument, by the event that reports them.
_FIXED: dict[type[ServerEvent], str] = {
    StartTLSRequested: "STARTTLS",
    DataRequested: "DATA",
    QuitReceived: "QUIT",
    ResetReceived: "RSET",
    NoopReceived: "NOOP",
    AuthCancelled: "*",  # RFC 4954 §4: the client cancels the exchange with "*"
}


def describe(event: ServerEvent) -> str:
    """One transcript line for a client event: the command line as the client sent it
    (rebuilt from the parsed event; parameters keep the client's order), or a note in
    ``<...>`` for what is not a command line (content, EOF). Secrets never appear:
    AUTH responses and initial responses are hidden (docs/design.md §4 rule 11)."""
    fixed = _FIXED.get(type(event))
    if fixed is not None:
        return fixed
    if isinstance(event, (EhloReceived, HeloReceived)):
        verb = "HELO" if isinstance(event, HeloReceived) else "LHLO" if event.lmtp else "EHLO"
        return f"{verb} {event.domain}"
    if isinstance(event, MailReceived):
        return f"MAIL FROM:<{event.sender}>{_params(event.params)}"
    if isinstance(event, RcptReceived):
        return f"RCPT TO:<{event.recipient}>{_params(event.params)}"
    if isinstance(event, BdatStarted):
        return f"BDAT {event.size}{' LAST' if event.last else ''}"
    if isinstance(event, (VrfyReceived, ExpnReceived)):
        verb = "VRFY" if isinstance(event, VrfyReceived) else "EXPN"
        return f"{verb} {event.argument}"
    if isinstance(event, HelpReceived):
        return f"HELP {event.topic}" if event.topic else "HELP"
    if isinstance(event, AuthRequested):
        hidden = "" if event.initial_response is None else " <initial response hidden>"
        return f"AUTH {event.mechanism}{hidden}"
    if isinstance(event, AuthResponse):
        return "<AUTH response hidden>"
    if isinstance(event, ChunkComplete):
        return f"<BDAT chunk: {event.size} octets>"
    if isinstance(event, MessageComplete):
        return f"<message: {event.size} octets{' via BDAT' if event.bdat else ''}>"
    if isinstance(event, (CommandRejected, UnknownCommand)):
        return repr(event.line)[2:-1]
    if isinstance(event, PlaintextDiscarded):
        return f"<{event.size} plaintext octets after STARTTLS discarded>"
    if isinstance(event, ClientDisconnected):
        return "<EOF>"
    return f"<{type(event).__name__}>"
