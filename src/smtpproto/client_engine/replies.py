"""Reply handling for ``ClientConnection``: what each reply means for the session.

Theory of operation: ``ClientConnection.next_event`` hands every parsed reply to
``_handle_reply``, which matches it with the oldest ``Pending`` entry (RFC 2920 §3.1:
replies come in command order), records it in the entry's transaction, moves the
state and appends events. A reply with nothing outstanding is an error unless it is a
421 (RFC 5321 §3.8). Every 421 also ends the session: unanswered commands never will
be, so their transactions are reported with the 421 filled in, then ``ServiceClosing``.
The attributes used here belong to ``ClientConnection`` (declared below for mypy).
"""

from __future__ import annotations

import binascii
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..wire.datacodec import DataEncoder
from ..wire.errors import LocalProtocolError, RemoteProtocolError
from ..wire.reply import Reply
from .capabilities import Capabilities
from .config import ClientConfig, ReplyParserLike, TLSPolicy
from .events import (
    AuthChallenge,
    AuthFailed,
    AuthSucceeded,
    CommandReply,
    ConnectionClosed,
    DeliveryStatusUnknown,
    Ehlo,
    EhloAccepted,
    Event,
    Greeting,
    GreetingRefused,
    HelloRefused,
    Helo,
    HeloAccepted,
    Lhlo,
    NoRecipientsAccepted,
    ReadyForContent,
    ServiceClosing,
    StartTLSRefused,
    TLSReady,
    TLSUnavailable,
    positional,
)
from .states import ON_FAILURE, ClientState, Verb
from .transaction import Pending, Transaction

if TYPE_CHECKING:
    from ..sasl.mechanisms import ClientMechanism

__all__ = ["CAPABILITIES_CACHE_SIZE", "FINAL_VERBS", "ReplyHandling", "capabilities_for"]

S = ClientState
V = Verb

#: Parsed EHLO replies by (raw lines, mask), with the two properties the engine reads
#: on every command (PIPELINING, LIMITS RCPTMAX). A client that reconnects to the same
#: server gets the same reply every time, and ``Capabilities`` values are immutable, so
#: they can be shared; this saves a fifth of a short session's CPU time. Bounded to
#: ``CAPABILITIES_CACHE_SIZE`` entries, the oldest dropped first.
_CachedCaps = tuple[Capabilities, bool, "int | None"]
_CAPS_CACHE: dict[tuple[tuple[bytes, ...], tuple[str, ...]], _CachedCaps] = {}
CAPABILITIES_CACHE_SIZE = 64


def capabilities_for(reply: Reply, mask: tuple[str, ...]) -> _CachedCaps:
    """``Capabilities.from_ehlo(reply)`` with ``mask`` applied, its PIPELINING flag
    and its RCPTMAX, through the cache."""
    key = (reply.raw_lines, mask)
    cached = _CAPS_CACHE.get(key)
    if cached is None:
        caps = Capabilities.from_ehlo(reply)
        if mask:
            caps = caps.masked(*mask)
        cached = (caps, caps.pipelining, caps.limits.rcptmax)
        while len(_CAPS_CACHE) >= CAPABILITIES_CACHE_SIZE:
            try:
                del _CAPS_CACHE[next(iter(_CAPS_CACHE))]
            except (KeyError, RuntimeError, StopIteration):  # another thread evicted it
                break
        _CAPS_CACHE[key] = cached
    return cached


# Hot-path constructors (positional, field order); same values as the keyword forms.
_greeting = positional(Greeting)
_command_reply = positional(CommandReply)
_ehlo_accepted = positional(EhloAccepted)
_ready_for_content = positional(ReadyForContent)

#: The commands whose reply tells whether the message was delivered.
FINAL_VERBS = frozenset({V.END_OF_CONTENT, V.BDAT_LAST})


class ReplyHandling:
    """The receiving half of ``ClientConnection``."""

    __slots__ = (
        "_auth_cancelled",
        "_auth_initial",
        "_auth_rounds",
        "_authenticated",
        "_caps",
        "_challenge",
        "_config",
        "_encoder",
        "_events",
        "_incoming",
        "_mechanism",
        "_parser",
        "_pending",
        "_pipelining",
        "_rcptmax",
        "_replies",
        "_state",
        "_tls_active",
        "_txn",
    )

    _config: ClientConfig
    _parser: ReplyParserLike
    _state: ClientState
    _caps: Capabilities | None
    _pipelining: bool
    _rcptmax: int | None
    _tls_active: bool
    _pending: deque[Pending]
    _events: deque[Event]
    _replies: deque[Reply]
    _incoming: deque[bytes]
    _txn: Transaction | None
    _encoder: DataEncoder | None
    _mechanism: ClientMechanism | None
    _challenge: bytes | None
    _auth_rounds: int
    _auth_initial: bytes | None
    _auth_cancelled: bool
    _authenticated: bool

    def _handle_eof(self) -> None:
        self._parser.feed_eof()
        pending = self._pending
        final = [entry for entry in pending if entry.verb in FINAL_VERBS]
        if final and final[0].txn is not None:
            txn = final[0].txn
            answered = {address for address, _ in txn.lmtp_replies}
            self._events.append(
                DeliveryStatusUnknown(
                    sender=txn.mail.sender,
                    recipients=tuple(a for a in txn.accepted() if a not in answered),
                    reason="the connection closed before the reply to the end of the content",
                )
            )
        elif pending and pending[0].verb is not V.QUIT:
            what = "the greeting" if pending[0].verb is None else f"{len(pending)} command(s)"
            raise RemoteProtocolError(f"connection closed while waiting for a reply to {what}")
        pending.clear()
        self._state = S.CLOSED
        self._events.append(ConnectionClosed())

    # -- replies ------------------------------------------------------------------------

    def _handle_reply(self, reply: Reply) -> None:
        pending = self._pending
        if not pending:
            if reply.code == 421:
                self._service_closing(reply)
                return
            raise RemoteProtocolError(f"unsolicited reply with no command outstanding: {reply!r}")
        entry = pending[0]
        verb = entry.verb
        if verb in FINAL_VERBS:
            self._final_reply(entry, reply)
        else:
            if entry.remaining is not None and entry.remaining > 1:
                entry.remaining -= 1
            else:
                pending.popleft()
            _REPLY_HANDLERS[verb](self, entry, reply)
        if reply.code == 421 and self._state is not S.ERROR:
            self._service_closing(reply)

    def _service_closing(self, reply: Reply) -> None:
        """421 (RFC 5321 §3.8): unanswered commands never will be; finish transactions."""
        for entry in self._pending:
            txn = entry.txn
            if txn is not None and not txn.finished:
                self._events.append(txn.result(fill=reply))
        if self._txn is not None and not self._txn.finished:
            self._events.append(self._txn.result(fill=reply))
        self._txn = None
        self._pending.clear()
        self._events.append(ServiceClosing(reply=reply))
        self._state = S.CLOSING

    def _greeting_reply(self, entry: Pending, reply: Reply) -> None:
        if reply.code == 220:
            self._state = S.HELLO
            self._events.append(_greeting(reply))
        else:
            self._state = S.MUST_QUIT
            self._events.append(GreetingRefused(reply=reply))

    def _mail_reply(self, entry: Pending, reply: Reply) -> None:
        txn = entry.txn
        assert txn is not None
        txn.mail_reply = reply
        self._events.append(_command_reply(txn.mail, reply))
        if reply.code // 100 != 2 and txn is self._txn and txn.commands_after_mail == 0:
            self._txn = None
            self._state = S.READY
            self._events.append(txn.result())

    def _rcpt_reply(self, entry: Pending, reply: Reply) -> None:
        txn = entry.txn
        assert txn is not None and entry.command is not None
        txn.record_rcpt(entry.index, reply)
        self._events.append(_command_reply(entry.command, reply))

    def _bdat_reply(self, entry: Pending, reply: Reply) -> None:
        txn = entry.txn
        assert txn is not None and entry.command is not None
        if reply.code // 100 != 2 and txn.data_reply is None:
            txn.data_reply = reply
        self._events.append(_command_reply(entry.command, reply))

    def _other_reply(self, entry: Pending, reply: Reply) -> None:
        """RSET, NOOP, VRFY, EXPN, HELP, QUIT and raw bytes."""
        assert entry.command is not None
        self._events.append(_command_reply(entry.command, reply))
        txn = entry.txn
        verb = entry.verb
        if verb is V.RSET and txn is not None and not txn.finished:
            self._events.append(txn.result())
        elif verb is V.QUIT:
            self._state = S.CLOSING

    def _hello_reply(self, entry: Pending, reply: Reply) -> None:
        command = entry.command
        verb = entry.verb
        assert verb is not None
        assert isinstance(command, (Ehlo, Helo, Lhlo))
        required = self._config.tls_policy is TLSPolicy.REQUIRED and not self._tls_active
        if reply.code == 250 and isinstance(command, Helo):
            self._state = S.READY
            self._events.append(HeloAccepted(reply=reply))
            return
        if reply.code == 250:
            assert isinstance(command, (Ehlo, Lhlo))
            caps, self._pipelining, self._rcptmax = capabilities_for(
                reply, self._config.mask_extensions
            )
            self._caps = caps
            self._state = S.READY
            self._events.append(_ehlo_accepted(command, reply, caps))
            if required and not caps.starttls:
                self._tls_unavailable("the server does not advertise STARTTLS", reply)
            return
        not_supported = verb is V.EHLO and reply.code in (500, 502)
        self._state = ON_FAILURE[verb] or S.HELLO
        self._events.append(
            HelloRefused(command=command, reply=reply, helo_fallback=not_supported and not required)
        )
        if not_supported and required:
            self._tls_unavailable("EHLO is not supported, so STARTTLS is not either", reply)

    def _tls_unavailable(self, reason: str, reply: Reply) -> None:
        self._state = S.MUST_QUIT
        self._events.append(TLSUnavailable(reason=f"TLS is required but {reason}", reply=reply))

    def _starttls_reply(self, entry: Pending, reply: Reply) -> None:
        if reply.code == 220:
            parser = self._parser
            if self._replies or parser.buffered or parser.failed or self._incoming:
                raise RemoteProtocolError(
                    "server sent data after the STARTTLS 220 reply (RFC 3207 §4: possible "
                    "command injection); it is never parsed"
                )
            self._state = S.TLS_HANDSHAKE
            self._events.append(TLSReady(reply=reply))
            return
        self._state = ON_FAILURE[Verb.STARTTLS] or S.READY
        self._events.append(StartTLSRefused(reply=reply))
        if self._config.tls_policy is TLSPolicy.REQUIRED:
            self._tls_unavailable("STARTTLS was refused", reply)

    def _auth_reply(self, entry: Pending, reply: Reply) -> None:
        mechanism = self._mechanism
        if reply.code == 334:
            if self._auth_cancelled:
                # RFC 4954 §4: the server MUST reject a "*" with 501. Answering another
                # challenge could hand over credentials the client meant to withhold.
                raise RemoteProtocolError(
                    "server keeps challenging after AUTH was cancelled with '*' "
                    "(RFC 4954 §4 requires a 501 reply)"
                )
            self._auth_rounds += 1
            text = reply.raw_lines[0].strip()
            try:
                challenge: bytes | None = binascii.a2b_base64(text) if text else b""
                if challenge and binascii.b2a_base64(challenge, newline=False) != text:
                    challenge = None  # not canonical base64 (stray characters)
            except (binascii.Error, ValueError):
                challenge = None
            self._challenge = challenge
            self._state = S.AUTH_CHALLENGED
            self._events.append(AuthChallenge(reply=reply, challenge=challenge))
            return
        self._mechanism = None
        self._auth_initial = None
        self._state = ON_FAILURE[Verb.AUTH] or S.READY
        if reply.code == 235:
            assert mechanism is not None
            try:
                mechanism.finish()
            except LocalProtocolError as error:  # SASLError: the server failed to prove itself
                raise RemoteProtocolError(
                    f"server accepted AUTH but failed the mechanism's check: {error}"
                ) from None
            self._authenticated = True
            self._events.append(AuthSucceeded(reply=reply))
        else:
            self._events.append(AuthFailed(reply=reply))

    def _data_reply(self, entry: Pending, reply: Reply) -> None:
        txn = entry.txn
        assert txn is not None
        if reply.code // 100 == 2:
            raise RemoteProtocolError(
                f"server answered DATA with {reply.code}, not 354: no content was sent, so "
                "the message cannot have been accepted (RFC 5321 §4.1.1.4)"
            )
        if reply.code // 100 == 3:  # 354; the class digit decides (RFC 5321 §4.2.1)
            if txn.accepted():
                body = txn.mail.body
                self._encoder = DataEncoder(
                    max_line_length=998 if self._config.enforce_line_length else None,
                    allow_nul=self._config.allow_nul,
                    allow_8bit=body == "8BITMIME",
                )
                self._state = S.CONTENT
                self._events.append(_ready_for_content(reply))
            else:
                self._state = S.DISCARD_CONTENT
                self._events.append(NoRecipientsAccepted(reply=reply))
            return
        txn.data_reply = reply
        self._txn = None
        self._state = ON_FAILURE[Verb.DATA] or S.READY
        self._events.append(txn.result())

    def _final_reply(self, entry: Pending, reply: Reply) -> None:
        """A reply to the end of the content or BDAT LAST; LMTP expects one per
        accepted recipient (RFC 2033 §4.2), counted at the first reply (all RCPT
        replies precede it in the FIFO)."""
        txn = entry.txn
        assert txn is not None
        # After a failed BDAT chunk the server has dropped the message and answers the
        # LAST chunk once (RFC 3030 §2), not once per recipient.
        lmtp = self._config.lmtp and not (entry.verb is V.BDAT_LAST and txn.data_reply is not None)
        accepted = txn.accepted() if lmtp else []
        if entry.remaining is None:
            entry.remaining = max(1, len(accepted))
        if accepted:
            index = len(txn.lmtp_replies)
            if reply.code == 421:  # the rest will never come
                txn.lmtp_replies.extend((address, reply) for address in accepted[index:])
                entry.remaining = 1
            else:
                txn.lmtp_replies.append((accepted[index], reply))
        elif txn.data_reply is None or entry.verb is V.END_OF_CONTENT:
            txn.data_reply = reply
        entry.remaining -= 1
        if entry.remaining == 0:
            self._pending.popleft()
            if self._txn is txn:
                self._txn = None
            self._events.append(txn.result())


_Handler = Callable[[ReplyHandling, Pending, Reply], None]
#: What handles the reply to each verb (None: the greeting). The end of the content
#: and BDAT LAST go to ``_final_reply``, which may expect several replies (LMTP).
_REPLY_HANDLERS: dict[Verb | None, _Handler] = {
    None: ReplyHandling._greeting_reply,
    V.MAIL: ReplyHandling._mail_reply,
    V.RCPT: ReplyHandling._rcpt_reply,
    V.DATA: ReplyHandling._data_reply,
    V.BDAT: ReplyHandling._bdat_reply,
    V.EHLO: ReplyHandling._hello_reply,
    V.HELO: ReplyHandling._hello_reply,
    V.LHLO: ReplyHandling._hello_reply,
    V.STARTTLS: ReplyHandling._starttls_reply,
    V.AUTH: ReplyHandling._auth_reply,
    V.AUTH_CONTINUE: ReplyHandling._auth_reply,
    **{
        verb: ReplyHandling._other_reply
        for verb in (V.RSET, V.NOOP, V.VRFY, V.EXPN, V.HELP, V.QUIT, V.RAW)
    },
}
