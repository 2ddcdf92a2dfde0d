"""Client session states and the tables that say what may be sent in each.

Theory of operation
-------------------
This module never sees bytes or replies' text: it is data plus two lookups.

``ClientState`` is the *sending* state: where the session stands once every command
already sent has been answered favourably. ``send`` looks the command's ``Verb`` up in
``ALLOWED`` for the current state and, when allowed, moves to ``AFTER_SEND`` (default:
unchanged). Because a pipelined group (MAIL, RCPT..., DATA) is sent before any reply,
the state runs ahead of the replies; the connection corrects it from replies (a
refused DATA returns to READY, a 354 moves to CONTENT, ...), using ``ON_FAILURE``
for the common cases and code for the few that depend on more than the
reply class (TLS policy, accepted recipients).

Whether a command may go out *now* also depends on what is outstanding: without
PIPELINING nothing may be sent while a reply is awaited; with it, nothing may follow a
group-ending command (``GROUP_ENDERS``, RFC 2920 §3.1) until that is answered. The
end of the content (``.`` or BDAT LAST) does not end a group: RFC 2920 §3.1 allows the
content to be the first "command" of one, so the next transaction's MAIL may follow
it before the final reply; only the verbs in ``AFTER_CONTENT_END`` may, though (a
session-changing command such as STARTTLS or AUTH waits for the result).

ERROR is sticky (h11): after any ``ProtocolError`` nothing is allowed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "AFTER_CONTENT_END",
    "AFTER_SEND",
    "ALLOWED",
    "GROUP_ENDERS",
    "ON_FAILURE",
    "ClientState",
    "Verb",
]


class ClientState(enum.Enum):
    """Where the client session stands (the optimistic sending state)."""

    #: Waiting for the server's greeting (RFC 5321 §3.1): nothing may be sent.
    GREETING = "GREETING"
    #: Greeted (or TLS just established): EHLO/HELO/LHLO needed (RFC 5321 §4.1.4).
    HELLO = "HELLO"
    #: Session open, no transaction: MAIL, AUTH, STARTTLS, RSET, NOOP, ...
    READY = "READY"
    #: AUTH got a 334: only ``AuthContinue`` may be sent.
    AUTH_CHALLENGED = "AUTH_CHALLENGED"
    #: MAIL sent: RCPT, DATA, BDAT, RSET, ...
    TRANSACTION = "TRANSACTION"
    #: DATA got 354: ``Content`` and ``EndOfContent``.
    CONTENT = "CONTENT"
    #: DATA got 354 with no accepted recipient: only ``EndOfContent`` (RFC 2920 §3.1).
    DISCARD_CONTENT = "DISCARD_CONTENT"
    #: A BDAT chunk that is not LAST was sent: more BDAT, or RSET.
    BDAT = "BDAT"
    #: STARTTLS got 220: the caller handshakes, then calls ``tls_established()``.
    TLS_HANDSHAKE = "TLS_HANDSHAKE"
    #: The session cannot continue (greeting refused, TLS required but unavailable):
    #: only QUIT.
    MUST_QUIT = "MUST_QUIT"
    #: QUIT sent or 421 received: the server is closing; nothing may be sent.
    CLOSING = "CLOSING"
    #: EOF received: nothing may be sent.
    CLOSED = "CLOSED"
    #: A protocol error happened; sticky.
    ERROR = "ERROR"

    # Members are singletons: identity hashing is correct and, unlike Enum's
    # name-based ``__hash__``, runs in C (the tables are looked up on every command).
    __hash__ = object.__hash__


class Verb(enum.Enum):
    """What a command is, for the tables (one per command class)."""

    EHLO = "EHLO"
    HELO = "HELO"
    LHLO = "LHLO"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"
    AUTH_CONTINUE = "AUTH_CONTINUE"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    CONTENT = "CONTENT"
    END_OF_CONTENT = "END_OF_CONTENT"
    BDAT = "BDAT"
    BDAT_LAST = "BDAT_LAST"
    RSET = "RSET"
    NOOP = "NOOP"
    VRFY = "VRFY"
    EXPN = "EXPN"
    HELP = "HELP"
    QUIT = "QUIT"
    RAW = "RAW"

    __hash__ = object.__hash__  # see ClientState


S = ClientState
V = Verb

_ANYTIME = frozenset({V.RSET, V.NOOP, V.VRFY, V.EXPN, V.HELP, V.QUIT, V.RAW})
_HELLOS = frozenset({V.EHLO, V.HELO, V.LHLO})

#: Which verbs each state accepts. RFC 5321 §4.1.4: EHLO may be repeated at any
#: time outside content; it resets the transaction like RSET.
ALLOWED: Mapping[ClientState, frozenset[Verb]] = MappingProxyType(
    {
        S.GREETING: frozenset({V.RAW}),
        S.HELLO: _ANYTIME | _HELLOS,
        S.READY: _ANYTIME | _HELLOS | {V.STARTTLS, V.AUTH, V.MAIL},
        S.AUTH_CHALLENGED: frozenset({V.AUTH_CONTINUE}),
        S.TRANSACTION: _ANYTIME | _HELLOS | {V.RCPT, V.DATA, V.BDAT, V.BDAT_LAST},
        S.CONTENT: frozenset({V.CONTENT, V.END_OF_CONTENT}),
        S.DISCARD_CONTENT: frozenset({V.END_OF_CONTENT}),
        S.BDAT: frozenset({V.BDAT, V.BDAT_LAST, V.RSET, V.QUIT, V.RAW}),
        S.TLS_HANDSHAKE: frozenset(),
        S.MUST_QUIT: frozenset({V.QUIT, V.RAW}),
        S.CLOSING: frozenset(),
        S.CLOSED: frozenset(),
        S.ERROR: frozenset(),
    }
)

#: The state right after sending (optimistic: as if the reply will be favourable).
#: Pairs not listed leave the state unchanged.
AFTER_SEND: Mapping[tuple[ClientState, Verb], ClientState] = MappingProxyType(
    {
        **{(state, V.QUIT): S.CLOSING for state in ClientState},
        **{(state, hello): S.READY for state in ClientState for hello in _HELLOS},
        (S.READY, V.MAIL): S.TRANSACTION,
        (S.TRANSACTION, V.RSET): S.READY,
        (S.BDAT, V.RSET): S.READY,
        (S.TRANSACTION, V.BDAT): S.BDAT,
        (S.TRANSACTION, V.BDAT_LAST): S.READY,
        (S.BDAT, V.BDAT_LAST): S.READY,
        (S.CONTENT, V.END_OF_CONTENT): S.READY,
        (S.DISCARD_CONTENT, V.END_OF_CONTENT): S.READY,
        (S.AUTH_CHALLENGED, V.AUTH_CONTINUE): S.READY,
    }
)

#: Commands after which nothing may be pipelined until their reply (RFC 2920 §3.1:
#: EHLO, DATA, VRFY, EXPN, TURN, QUIT, NOOP; RFC 3207 STARTTLS; RFC 4954 AUTH); HELO
#: and LHLO like EHLO. The end of the content and BDAT LAST are not here: see
#: ``AFTER_CONTENT_END``.
GROUP_ENDERS: frozenset[Verb] = frozenset(
    {
        V.EHLO,
        V.HELO,
        V.LHLO,
        V.STARTTLS,
        V.AUTH,
        V.AUTH_CONTINUE,
        V.DATA,
        V.VRFY,
        V.EXPN,
        V.HELP,
        V.NOOP,
        V.QUIT,
    }
)

#: What may be pipelined right after the end of the content (``.``) or BDAT LAST,
#: before its final reply (RFC 2920 §3.1: "the actual transfer of message content is
#: explicitly allowed to be the first 'command' in a group"): the next transaction's
#: MAIL (its RCPTs and DATA then follow MAIL as usual), RSET, NOOP and QUIT. A refusal
#: of that final reply ends only its own transaction; the commands after it are
#: answered on their own (RFC 2920 §3.1: every reply of a group is checked).
AFTER_CONTENT_END: frozenset[Verb] = frozenset({V.MAIL, V.RSET, V.NOOP, V.QUIT})

#: The state a refusal (4xx/5xx) of a verb leads to (None: keep the current state).
#: A refused hello needs a new hello; a refused DATA or end of content ends the
#: transaction; a refused AUTH leaves the session as it was.
ON_FAILURE: Mapping[Verb, ClientState | None] = MappingProxyType(
    {
        V.EHLO: S.HELLO,
        V.HELO: S.HELLO,
        V.LHLO: S.HELLO,
        V.DATA: S.READY,
        V.STARTTLS: S.READY,
        V.AUTH: S.READY,
        V.AUTH_CONTINUE: S.READY,
        V.QUIT: S.CLOSING,
    }
)
