"""Standard server replies as ``Reply`` values, each citing where its code comes from.

The caller of ``ServerConnection`` chooses every reply; these helpers build the usual
ones with RFC 5321 §4.2.2/§4.2.3 codes and RFC 3463/RFC 5248 enhanced status codes.
Text given to a helper is made safe first (``safe_text``): only printable ASCII stays,
everything else becomes a ``\\xNN`` escape and the text is cut at 200 characters, so
octets from the client can never inject a line break or a control into a reply.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from ..wire.reply import Reply
from .config import MAX_LIMIT_VALUE

__all__ = [
    "auth_cancelled",
    "auth_challenge",
    "auth_failed",
    "auth_mechanism_unsupported",
    "auth_required",
    "auth_succeeded",
    "bad_sequence",
    "cannot_verify",
    "closing",
    "ehlo_reply",
    "greeting",
    "helo_reply",
    "help_reply",
    "limits_keyword",
    "line_too_long",
    "mailbox_unavailable",
    "message_too_large",
    "no_service",
    "not_implemented",
    "not_recognized",
    "ok",
    "ready_to_start_tls",
    "safe_text",
    "service_closing",
    "start_mail_input",
    "synchronization_error",
    "syntax_error",
    "too_many_recipients",
    "too_many_transactions",
    "transaction_failed",
]

_MAX_TEXT = 200


def safe_text(text: str | bytes) -> str:
    """Printable ASCII only: other characters become ``\\xNN``/``\\uNNNN``; at most 200
    characters (longer text ends in ``...``)."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    if text.isascii() and text.isprintable():  # " " to "~" only: nothing to escape
        out = text
    else:
        out = "".join(ch if " " <= ch <= "~" else ascii(ch)[1:-1] for ch in text)
    return out if len(out) <= _MAX_TEXT else out[: _MAX_TEXT - 3] + "..."


def _reply(code: int, text: str) -> Reply:
    return Reply(code, (safe_text(text).encode("ascii"),))


def _domain(domain: str) -> str:
    if not domain or not all("!" <= ch <= "~" for ch in domain):
        raise ValueError(f"server name must be printable ASCII without spaces: {domain!r}")
    return domain


def greeting(domain: str, text: str = "ESMTP ready") -> Reply:
    """220 service ready (RFC 5321 §4.2.2, §3.1); ``domain`` is the server's name."""
    return _reply(220, f"{_domain(domain)} {text}")


def no_service(domain: str, text: str = "no SMTP service here") -> Reply:
    """554 as the greeting (RFC 5321 §3.1): the client may only QUIT afterwards."""
    return _reply(554, f"{_domain(domain)} {text}")


def ehlo_reply(domain: str, extensions: Iterable[str] = (), greeting_text: str = "") -> Reply:
    """250 multiline EHLO reply (RFC 5321 §4.1.1.1): the server name, then one line per
    extension keyword with its parameters, e.g. ``"SIZE 10485760"``, ``"AUTH PLAIN"``."""
    first = _domain(domain) + (f" {safe_text(greeting_text)}" if greeting_text else "")
    lines = [first.encode("ascii")]
    for extension in extensions:
        if not extension or not all(" " <= ch <= "~" for ch in extension):
            raise ValueError(f"extension must be printable ASCII: {extension!r}")
        lines.append(extension.encode("ascii"))
    return Reply(250, tuple(lines))


def helo_reply(domain: str) -> Reply:
    """250 to HELO (RFC 5321 §4.1.1.1): one line, no extensions."""
    return _reply(250, _domain(domain))


def ok(text: str = "2.0.0 OK") -> Reply:
    """250 requested action okay, completed (RFC 5321 §4.2.2)."""
    return _reply(250, text)


def cannot_verify() -> Reply:
    """252 for VRFY: cannot verify the user, will accept the message (RFC 5321 §3.5.3)."""
    return _reply(252, "2.5.0 Cannot VRFY user, but will accept message and attempt delivery")


def help_reply(text: str = "2.0.0 See RFC 5321") -> Reply:
    """214 help message (RFC 5321 §4.2.2)."""
    return _reply(214, text)


def start_mail_input() -> Reply:
    """354 start mail input (RFC 5321 §4.2.2, §4.1.1.4)."""
    return _reply(354, "End data with <CR><LF>.<CR><LF>")


def ready_to_start_tls() -> Reply:
    """220 ready to start TLS (RFC 3207 §4)."""
    return _reply(220, "2.0.0 Ready to start TLS")


def closing(domain: str) -> Reply:
    """221 closing the transmission channel, the reply to QUIT (RFC 5321 §4.1.1.10)."""
    return _reply(221, f"2.0.0 {_domain(domain)} closing connection")


def service_closing(domain: str, text: str = "Service not available, closing channel") -> Reply:
    """421 service not available, closing (RFC 5321 §3.8, §4.2.2): may answer any
    command, or be sent unprompted; the connection is closed afterwards."""
    return _reply(421, f"4.3.2 {_domain(domain)} {text}")


def auth_challenge(challenge: bytes) -> Reply:
    """334 with the base64 challenge (RFC 4954 §4; an empty challenge is ``334 ``)."""
    return Reply(334, (base64.b64encode(challenge),))


def auth_succeeded() -> Reply:
    """235 authentication successful (RFC 4954 §6)."""
    return _reply(235, "2.7.0 Authentication successful")


def auth_failed() -> Reply:
    """535 authentication credentials invalid (RFC 4954 §6)."""
    return _reply(535, "5.7.8 Authentication credentials invalid")


def auth_cancelled() -> Reply:
    """501 after the client cancelled with ``*`` (RFC 4954 §4)."""
    return _reply(501, "5.0.0 Authentication cancelled")


def auth_mechanism_unsupported() -> Reply:
    """504 unrecognized authentication type (RFC 4954 §4)."""
    return _reply(504, "5.5.4 Unrecognized authentication type")


def auth_required() -> Reply:
    """530 authentication required (RFC 4954 §6)."""
    return _reply(530, "5.7.0 Authentication required")


def not_recognized(text: str = "Syntax error, command unrecognized") -> Reply:
    """500 command unrecognized (RFC 5321 §4.2.2)."""
    return _reply(500, f"5.5.1 {text}")


def syntax_error(message: str = "Syntax error") -> Reply:
    """500 syntax error in the command line (RFC 5321 §4.2.2, RFC 3463 5.5.2)."""
    return _reply(500, f"5.5.2 {message}")


def line_too_long(limit: int) -> Reply:
    """500 line too long (RFC 5321 §4.5.3.1.4 and §4.2.2: "500 ... command line too
    long"); enhanced code 5.5.2, syntax error (RFC 3463 §3.6)."""
    return _reply(500, f"5.5.2 Line too long (limit {limit} octets with CRLF)")


def not_implemented() -> Reply:
    """502 command not implemented (RFC 5321 §4.2.2)."""
    return _reply(502, "5.5.1 Command not implemented")


def synchronization_error() -> Reply:
    """554 for a command sent before the reply it had to wait for (RFC 2920 §3.1; the
    text of Postfix's ``smtpd_forbid_unauth_pipelining``); the session then closes."""
    return _reply(554, "5.5.0 Error: SMTP protocol synchronization")


def bad_sequence(message: str = "Bad sequence of commands") -> Reply:
    """503 bad sequence of commands (RFC 5321 §4.2.2, §4.1.4)."""
    return _reply(503, f"5.5.1 {message}")


def too_many_recipients() -> Reply:
    """452 too many recipients (RFC 5321 §4.5.3.1.10, RFC 3463 4.5.3)."""
    return _reply(452, "4.5.3 Too many recipients")


def too_many_transactions() -> Reply:
    """451 to a MAIL past the session's LIMITS MAILMAX (RFC 9422 §4.1; RFC 3463 4.5.3
    "too many recipients" is the closest code, the one Oracle Messaging Server, by the
    RFC's author, answers ``451 4.5.3 No more transactions allowed``): temporary, so the
    client sends the rest on a new connection."""
    return _reply(451, "4.5.3 Too many transactions in this session, try a new connection")


def limits_keyword(*, rcptmax: int | None = None, mailmax: int | None = None) -> str | None:
    """The LIMITS EHLO keyword announcing ``rcptmax`` (most RCPT commands per
    transaction) and ``mailmax`` (most MAIL commands per session), RFC 9422 §3, §4.1,
    §4.2; ``None`` when both are ``None``. ``ServerConnection`` enforces what the EHLO
    reply announces (452 4.5.3 past RCPTMAX, ``too_many_transactions`` past MAILMAX).
    ``ValueError`` for a value that is no int in 1..999999."""
    pairs = []
    for name, value in (("RCPTMAX", rcptmax), ("MAILMAX", mailmax)):
        if value is None:
            continue
        if type(value) is not int or not 0 < value <= MAX_LIMIT_VALUE:
            raise ValueError(
                f"{name.lower()} must be an int in 1..{MAX_LIMIT_VALUE}, got {value!r}"
            )
        pairs.append(f"{name}={value}")
    return "LIMITS " + " ".join(pairs) if pairs else None


def message_too_large() -> Reply:
    """552 message size exceeds the fixed limit (RFC 1870 §6.1, RFC 3463 5.3.4)."""
    return _reply(552, "5.3.4 Message size exceeds fixed maximum message size")


def mailbox_unavailable(message: str = "Mailbox unavailable") -> Reply:
    """550 mailbox unavailable (RFC 5321 §4.2.2, RFC 3463 5.1.1)."""
    return _reply(550, f"5.1.1 {message}")


def transaction_failed(message: str = "Transaction failed") -> Reply:
    """554 transaction failed (RFC 5321 §4.2.2)."""
    return _reply(554, f"5.0.0 {message}")
