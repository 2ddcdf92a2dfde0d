"""Client session states and the tables that say what may be sent in each.

Theory of operation
-------------------
This module never sees bytes or replies' text: it is data plus two lookups.

``ClientState`` is the *sending* state: where the session stands once every command
already sent has been answered favourably. ``send`` looks the command's ``Verb`` up in
``ALLOWED`` for the current state and, when allowed, moves to ``AFTER_SEND`` (default:
unchanged). Because a pipelined group (MAIL, RCPT..., DATA) is sent before any reply,
the state runs ahead of the replies; the reply rules correct it (a refused DATA
returns to READY, a 354 moves to CONTENT, ...) by naming an ``Outcome``, and
``ON_OUTCOME`` says which state each outcome leads to. Those two tables hold every
transition: ``send`` reads ``AFTER_SEND``, ``Session.enter`` reads ``ON_OUTCOME``, and
nothing else assigns the state.

Whether a command may go out *now* also depends on what is outstanding: without
PIPELINING nothing may be sent while a reply is awaited; with it, nothing may follow a
group-ending command (``GROUP_ENDERS``, RFC 2920 §3.1) until that is answered. The
end of the content (``.`` or BDAT LAST) does not end a group: RFC 2920 §3.1 allows the
content to be the first "command" of one, so the next transaction's MAIL may follow
it before the final reply; only the verbs in ``AFTER_CONTENT_END`` may, though (a
session-changing command such as STARTTLS or AUTH waits for the result).

ERROR is sticky (h11): after any exception out of a public method nothing is allowed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "AFTER_CONTENT_END",
    "AFTER_SEND",
    "ALLOWED",
    "FINAL_VERBS",
    "GROUP_ENDERS",
    "ON_OUTCOME",
    "ClientState",
    "Outcome",
    "Verb",
]


class ClientState(enum.Enum):
    """Where the client session stands (the optimistic sending state)."""

    #: Waiting for the server's greeting (RFC 5321 §3.1): nothing may be sent but a
    #: PROXY header first (``proxy``) and raw test bytes.
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
    RAW_CONTENT = "RAW_CONTENT"
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
    XCLIENT = "XCLIENT"
    XFORWARD = "XFORWARD"
    PROXY = "PROXY"

    __hash__ = object.__hash__  # see ClientState


S = ClientState
V = Verb

_ANYTIME = frozenset({V.RSET, V.NOOP, V.VRFY, V.EXPN, V.HELP, V.QUIT, V.RAW})
_HELLOS = frozenset({V.EHLO, V.HELO, V.LHLO})

#: Which verbs each state accepts. RFC 5321 §4.1.4: EHLO may be repeated at any
#: time outside content; it resets the transaction like RSET.
ALLOWED: Mapping[ClientState, frozenset[Verb]] = MappingProxyType(
    {
        S.GREETING: frozenset({V.RAW, V.PROXY}),
        S.HELLO: _ANYTIME | _HELLOS,
        S.READY: _ANYTIME | _HELLOS | {V.STARTTLS, V.AUTH, V.MAIL, V.XCLIENT, V.XFORWARD},
        S.AUTH_CHALLENGED: frozenset({V.AUTH_CONTINUE}),
        S.TRANSACTION: _ANYTIME | _HELLOS | {V.RCPT, V.DATA, V.BDAT, V.BDAT_LAST},
        S.CONTENT: frozenset({V.CONTENT, V.RAW_CONTENT, V.END_OF_CONTENT}),
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
        V.XCLIENT,
        V.XFORWARD,
    }
)

#: What may be pipelined right after the end of the content (``.``) or BDAT LAST,
#: before its final reply (RFC 2920 §3.1: "the actual transfer of message content is
#: explicitly allowed to be the first 'command' in a group"): the next transaction's
#: MAIL (its RCPTs and DATA then follow MAIL as usual), RSET, NOOP and QUIT. A refusal
#: of that final reply ends only its own transaction; the commands after it are
#: answered on their own (RFC 2920 §3.1: every reply of a group is checked).
AFTER_CONTENT_END: frozenset[Verb] = frozenset({V.MAIL, V.RSET, V.NOOP, V.QUIT})

#: The commands whose reply tells whether the message was delivered.
FINAL_VERBS: frozenset[Verb] = frozenset({V.END_OF_CONTENT, V.BDAT_LAST})


class Outcome(enum.Enum):
    """What moved the session other than sending a command: a reply, EOF, the TLS
    handshake or an error. ``ON_OUTCOME`` maps each to the state it leads to."""

    #: 220 greeting (RFC 5321 §3.1): a hello is needed.
    GREETED = "GREETED"
    #: Any other greeting (554, RFC 5321 §3.1): only QUIT.
    GREETING_REFUSED = "GREETING_REFUSED"
    #: 250 to EHLO/HELO/LHLO (RFC 5321 §4.1.1.1).
    HELLO_ACCEPTED = "HELLO_ACCEPTED"
    #: EHLO/HELO/LHLO refused: a new hello is needed.
    HELLO_REFUSED = "HELLO_REFUSED"
    #: TLS is required but cannot happen (RFC 3207 §4.1): only QUIT.
    TLS_UNAVAILABLE = "TLS_UNAVAILABLE"
    #: 220 to XCLIENT (Postfix XCLIENT_README): a new greeting, EHLO again.
    XCLIENT_GREETED = "XCLIENT_GREETED"
    #: 220 to STARTTLS (RFC 3207 §4): the caller handshakes.
    TLS_READY = "TLS_READY"
    #: STARTTLS refused: the session goes on in cleartext.
    STARTTLS_REFUSED = "STARTTLS_REFUSED"
    #: ``tls_established()``: everything is forgotten, EHLO again (RFC 3207 §4.2).
    TLS_ESTABLISHED = "TLS_ESTABLISHED"
    #: 334 to AUTH or to a response (RFC 4954 §4): answer it.
    AUTH_CHALLENGED = "AUTH_CHALLENGED"
    #: 235 or a refusal ends the AUTH exchange (RFC 4954 §4, §6).
    AUTH_ENDED = "AUTH_ENDED"
    #: MAIL refused with nothing pipelined behind it: the transaction is over.
    MAIL_REFUSED = "MAIL_REFUSED"
    #: 354 with a recipient accepted (RFC 5321 §4.1.1.4): send the content.
    CONTENT_WANTED = "CONTENT_WANTED"
    #: 354 with no recipient accepted (RFC 2920 §3.1): only the end of the content.
    CONTENT_UNWANTED = "CONTENT_UNWANTED"
    #: DATA refused: the transaction is over.
    DATA_REFUSED = "DATA_REFUSED"
    #: Any reply to QUIT (RFC 5321 §4.1.1.10): the server closes.
    QUIT_ANSWERED = "QUIT_ANSWERED"
    #: 421 (RFC 5321 §3.8): the server closes.
    SERVICE_CLOSING = "SERVICE_CLOSING"
    #: EOF from the server.
    EOF = "EOF"
    #: Any exception out of a public method (h11's rule): sticky.
    FAILED = "FAILED"

    __hash__ = object.__hash__  # see ClientState


#: The state each outcome leads to (every transition that is not ``AFTER_SEND``).
ON_OUTCOME: Mapping[Outcome, ClientState] = MappingProxyType(
    {
        Outcome.GREETED: S.HELLO,
        Outcome.GREETING_REFUSED: S.MUST_QUIT,
        Outcome.HELLO_ACCEPTED: S.READY,
        Outcome.HELLO_REFUSED: S.HELLO,
        Outcome.TLS_UNAVAILABLE: S.MUST_QUIT,
        Outcome.XCLIENT_GREETED: S.HELLO,
        Outcome.TLS_READY: S.TLS_HANDSHAKE,
        Outcome.STARTTLS_REFUSED: S.READY,
        Outcome.TLS_ESTABLISHED: S.HELLO,
        Outcome.AUTH_CHALLENGED: S.AUTH_CHALLENGED,
        Outcome.AUTH_ENDED: S.READY,
        Outcome.MAIL_REFUSED: S.READY,
        Outcome.CONTENT_WANTED: S.CONTENT,
        Outcome.CONTENT_UNWANTED: S.DISCARD_CONTENT,
        Outcome.DATA_REFUSED: S.READY,
        Outcome.QUIT_ANSWERED: S.CLOSING,
        Outcome.SERVICE_CLOSING: S.CLOSING,
        Outcome.EOF: S.CLOSED,
        Outcome.FAILED: S.ERROR,
    }
)
