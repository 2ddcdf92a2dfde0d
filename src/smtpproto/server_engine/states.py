"""States of the server role and the command-sequence table, kept as data.

This module never sees bytes. ``ServerConnection`` looks a verb up in ``ALLOWED`` for
its current state; a verb that is known but not allowed gets ``503 bad sequence`` with
the reason from ``sequence_reason`` (RFC 5321 §4.1.4, §4.3.2). A verb missing from
``ALLOWED`` altogether is unknown (500).

RFC 5321 §4.1.4: EHLO/HELO may come at any time and reset the transaction; MAIL needs a
greeting exchange and no transaction in progress; RCPT needs MAIL; DATA needs at least
one accepted RCPT; RSET, NOOP, HELP, VRFY, EXPN and QUIT may come at any time.
RFC 3030 §2: BDAT needs an accepted RCPT like DATA. RFC 3207 §4 and RFC 4954 §4:
STARTTLS and AUTH need EHLO first and are not allowed during a mail transaction.
RFC 2033 §4.1: in LMTP mode LHLO replaces HELO and EHLO. RFC 5321 §3.1: after a 554
greeting only QUIT is answered normally (REJECTING).
"""

from __future__ import annotations

import enum

__all__ = [
    "ALLOWED",
    "COMMAND_STATES",
    "INTERMEDIATE",
    "ServerState",
    "code_allowed",
    "sequence_reason",
]


class ServerState(enum.Enum):
    """Where the server side of the session is."""

    #: The greeting has not been sent yet: send ``greeting()`` (or ``no_service()``).
    GREETING = "GREETING"
    #: A 554 greeting was sent: every command but QUIT gets 503 (RFC 5321 §3.1).
    REJECTING = "REJECTING"
    #: Greeted; the client must say EHLO/HELO (LHLO).
    CONNECTED = "CONNECTED"
    #: EHLO/HELO done, no mail transaction.
    READY = "READY"
    #: MAIL accepted, no recipient accepted yet.
    MAIL = "MAIL"
    #: At least one recipient accepted: DATA or BDAT may come.
    RCPT = "RCPT"
    #: Receiving DATA content until ``CRLF.CRLF``.
    DATA = "DATA"
    #: Receiving the octets of a BDAT chunk.
    BDAT = "BDAT"
    #: A 334 was sent: the next line is a SASL response.
    AUTH = "AUTH"
    #: A 220 to STARTTLS was sent: nothing is parsed until ``tls_established()``.
    TLS_HANDSHAKE = "TLS_HANDSHAKE"
    #: 221 or 421 was sent: the session is over; close the connection.
    CLOSED = "CLOSED"
    #: A protocol error or a failed write; sticky.
    ERROR = "ERROR"

    # Members are singletons compared by identity: hash them by identity too, in C
    # (``Enum.__hash__`` is a Python function, called for every ``state in {...}``).
    __hash__ = object.__hash__


_S = ServerState
_ANY = frozenset({_S.CONNECTED, _S.READY, _S.MAIL, _S.RCPT})

#: States in which input is read as command lines.
COMMAND_STATES = frozenset({*_ANY, _S.REJECTING})

#: Verb -> states in which it is in sequence. Unknown verbs are not in the table.
ALLOWED: dict[str, frozenset[ServerState]] = {
    "EHLO": _ANY,
    "HELO": _ANY,
    "LHLO": _ANY,
    "MAIL": frozenset({_S.READY}),
    "RCPT": frozenset({_S.MAIL, _S.RCPT}),
    "DATA": frozenset({_S.RCPT}),
    "BDAT": frozenset({_S.RCPT}),
    "STARTTLS": frozenset({_S.READY}),
    "AUTH": frozenset({_S.READY}),
    "RSET": _ANY,
    "NOOP": _ANY,
    "HELP": _ANY,
    "VRFY": _ANY,
    "EXPN": _ANY,
    "QUIT": COMMAND_STATES,
}


def sequence_reason(verb: str, state: ServerState) -> str:
    """Why ``verb`` is out of sequence in ``state``: the text of the 503 reply."""
    if state is _S.REJECTING:
        return "No SMTP service here, only QUIT is accepted"
    if state is _S.CONNECTED:
        return "Send EHLO or HELO first"
    if verb == "MAIL":
        return "Nested MAIL command"
    if verb == "RCPT":
        return "Need MAIL command"
    if verb in ("DATA", "BDAT"):
        return "Need RCPT command" if state is _S.MAIL else "Need MAIL and RCPT commands"
    if verb in ("STARTTLS", "AUTH"):
        return f"{verb} is not allowed during a mail transaction"
    return "Bad sequence of commands"


#: The one 3yz code each pending kind may get: 354 answers DATA, 334 answers AUTH.
INTERMEDIATE = {"data": 354, "auth": 334}


def code_allowed(kind: str, code: int) -> bool:
    """Whether a reply ``code`` may answer the pending ``kind`` (421 is checked apart:
    it may answer anything). RFC 5321 §4.3.2 lists the codes per command; we refuse
    only what would desynchronise the client: 354 outside DATA, 334 outside AUTH, a
    greeting other than 220/554 (§3.1), a QUIT reply other than 221 (§4.1.1.10), a
    positive STARTTLS reply other than 220 (RFC 3207 §4)."""
    if kind == "greeting":
        return code in (220, 554)
    if kind == "quit":
        return code == 221
    if kind == "sync":  # a synchronization error: refused, then closed
        return code >= 400
    if kind == "starttls":
        return code == 220 or code >= 400
    if kind in INTERMEDIATE:
        return code >= 400 or code == INTERMEDIATE[kind] or (kind == "auth" and code == 235)
    return code < 300 or code >= 400
