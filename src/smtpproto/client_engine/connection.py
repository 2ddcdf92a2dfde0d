"""``ClientConnection``: the sans-IO SMTP/ESMTP/LMTP client engine (h11-style).

Theory of operation
-------------------
Four verbs. ``receive_data(bytes)`` only queues the bytes (``b""`` marks EOF).
``next_event()`` feeds queued bytes to the reply parser one chunk at a time, matches
each complete reply with the oldest outstanding command (a FIFO of ``Pending``
entries, RFC 2920 §3.1), updates the state and returns the events that produced; it
returns ``NEED_DATA`` when nothing more can be decided. ``send(command)`` checks the
command against the state tables, the advertised capabilities and the pipelining
rules, and returns the exact bytes to write, queueing the reply it expects.
``send_failed()`` records that the caller's write failed.

The connection is one object: its state is a ``Session`` (``session``), the send
rules are functions in ``sending``, the reply rules functions in ``replies``, and
every state change comes from the tables in ``states``. This module is the boundary
(h11's rule, docs/design.md §2): any exception escaping a public method — a
``ProtocolError`` or anything unexpected — leaves the connection in the sticky ERROR
state before it propagates, except a ``LocalProtocolError`` for misuse found before
anything changed (``send`` refusing a command before any byte of it exists, outside
an exchange already on the wire; ``receive_data`` refusing a chunk past
``max_receive_buffer``): the connection then stays as it was.

STARTTLS is a hard boundary (RFC 3207 §4, docs/design.md §4 rule 4): when the 220 reply
to STARTTLS is handled, any reply after it, any octet the parser holds and any chunk not
yet parsed is a ``RemoteProtocolError``; in TLS_HANDSHAKE ``receive_data`` refuses data
until ``tls_established()``, which forgets the capabilities and requires a new EHLO.
"""

from __future__ import annotations

import functools

from ..wire.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ..wire.twins import ReplyParser
from .capabilities import Capabilities
from .commands import Mail, Rcpt
from .config import ClientConfig, Timeouts
from .events import NEED_DATA, Command, ConnectionClosed, Event, NeedData
from .fastlane import GroupTemplate, make_template, send_bdat_group, send_group
from .replies import handle_eof, handle_replies
from .sending import (
    NOT_COMMANDS,
    SENDERS,
    VERBS,
    check_pipelining,
)
from .session import Session
from .states import AFTER_SEND, ALLOWED, FINAL_VERBS, ClientState, Outcome, Verb

__all__ = ["ClientConnection"]

S = ClientState
V = Verb
# The members the per-message path tests, as module constants: ``S.ERROR`` is an
# attribute look-up on the enum class, about 60 ns on CPython 3.10-3.12 against 20 for
# a global, and a message passes a score of these tests (3.13 made them cheap).
_ERROR = S.ERROR
_TLS_HANDSHAKE = S.TLS_HANDSHAKE
_CONTENT = S.CONTENT
_DISCARD_CONTENT = S.DISCARD_CONTENT
_BDAT = V.BDAT
#: States in which the engine waits on nothing (``timeout`` is None).
_NO_WAIT = frozenset({S.ERROR, S.CLOSED, S.TLS_HANDSHAKE})

# The send tables as one plain dict per state, looked up on every send: each verb
# ``ALLOWED`` in that state maps to the state ``AFTER_SEND`` gives (default: the same
# state). One look-up instead of two, and cheaper than through MappingProxyType.
_SEND_TABLE: dict[ClientState, dict[Verb, ClientState]] = {
    state: {verb: AFTER_SEND.get((state, verb), state) for verb in verbs}
    for state, verbs in ALLOWED.items()
}

#: Verbs that continue an exchange already on the wire (a message's content, an AUTH
#: challenge's answer): a refusal of one leaves ERROR behind, unlike other commands.
_MID_EXCHANGE = frozenset({V.CONTENT, V.RAW_CONTENT, V.END_OF_CONTENT, V.AUTH_CONTINUE})

#: The ``Timeouts`` field bounding the wait for the reply to each verb (None: the
#: greeting) (RFC 5321 §4.5.3.2); any other verb waits ``other``. One table for every
#: connection: the seconds are read from the config's ``Timeouts`` when asked (a dict
#: of seconds per connection cost 1.2 KB each).
_REPLY_TIMEOUTS: dict[Verb | None, str] = {
    None: "greeting",
    **dict.fromkeys(Verb, "other"),
    V.MAIL: "mail",
    V.RCPT: "rcpt",
    V.DATA: "data_initiation",
    **dict.fromkeys(FINAL_VERBS, "data_termination"),
    V.BDAT: "data_block",
}


@functools.lru_cache(maxsize=16)
def _reply_seconds(timeouts: Timeouts) -> dict[Verb | None, float | None]:
    """``_REPLY_TIMEOUTS`` resolved for ``timeouts`` (frozen, hashable): one table per
    distinct ``Timeouts``, shared by every connection using it, so ``timeout`` is a
    dict look-up with no ``getattr`` (asked twice per message)."""
    return {verb: getattr(timeouts, name) for verb, name in _REPLY_TIMEOUTS.items()}


class ClientConnection:
    """One SMTP (or LMTP) client session, without I/O. See ``docs/engine.md``."""

    __slots__ = ("_closed", "_eof", "_error", "_reply_seconds", "_s")

    def __init__(self, config: ClientConfig | None = None) -> None:
        config = config if config is not None else ClientConfig()
        self._s = Session(config, config.parser_factory or ReplyParser)
        self._reply_seconds = _reply_seconds(config.timeouts)
        self._eof = False
        self._closed = False
        self._error: ProtocolError | None = None

    # -- properties ---------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        """The current ``ClientState`` (optimistic while pipelined replies are due)."""
        return self._s.state

    @property
    def capabilities(self) -> Capabilities | None:
        """What the last accepted EHLO/LHLO advertised (masked per the config); None
        before it, after HELO, and after STARTTLS until the new EHLO is answered."""
        return self._s.caps

    @property
    def mail_budget(self) -> int | None:
        """How many more transactions (MAIL commands, accepted or not) the server's
        LIMITS MAILMAX allows in this session (RFC 9422 §4.1); None when it advertised
        none. At 0, ``send(Mail(...))`` raises ``LocalProtocolError`` with nothing
        changed: open a new connection for the next message."""
        return self._s.mail_budget()

    @property
    def peer_closed(self) -> bool:
        """True once ``next_event`` reached the server's EOF, every byte before it
        parsed: a ``RemoteProtocolError`` raised from then on says the connection was
        lost with replies due (or mid-reply), not that a reply was malformed."""
        return self._closed

    @property
    def tls_active(self) -> bool:
        """True after ``tls_established()``, or from the start under IMPLICIT TLS."""
        return self._s.tls_active

    @property
    def authenticated(self) -> bool:
        """True once AUTH succeeded (235)."""
        return self._s.authenticated

    @property
    def outstanding(self) -> tuple[Command, ...]:
        """Commands sent and not yet (fully) answered, oldest first (not the greeting)."""
        return tuple(entry.command for entry in self._s.pending if entry.command is not None)

    @property
    def command_replies(self) -> bool:
        """Whether replies to MAIL, RCPT and BDAT chunks each produce a
        ``CommandReply`` event (the default). Set it to False when only the outcome of
        each transaction matters (``send_many``): those replies are still matched to
        their commands and checked, and the ``TransactionResult`` lists every one of
        them, but no event is made for each; every other reply and event is unchanged."""
        return self._s.command_replies

    @command_replies.setter
    def command_replies(self, value: bool) -> None:
        if type(value) is not bool:
            raise LocalProtocolError(f"command_replies must be a bool, got {type(value).__name__}")
        self._s.command_replies = value

    @property
    def awaiting_reply(self) -> bool:
        """True while a reply (the greeting included) is due: keep reading."""
        return bool(self._s.pending)

    @property
    def final_reply_pending(self) -> bool:
        """True while the reply to the final ``.`` or BDAT LAST is due: if the
        connection dies now the delivery status is unknown (RFC 1047)."""
        return any(entry.verb in FINAL_VERBS for entry in self._s.pending)

    @property
    def timeout(self) -> float | None:
        """Seconds to wait for what the engine waits on now (RFC 5321 §4.5.3.2), from
        ``ClientConfig.timeouts``; None when it waits on nothing (or only on EOF)."""
        # Asked about three times per message: a reply due is one dict look-up, no
        # enum member is read off its class.
        s = self._s
        state = s.state
        pending = s.pending
        if pending:
            return None if state in _NO_WAIT else self._reply_seconds[pending[0].verb]
        if state is _CONTENT or state is _DISCARD_CONTENT:  # no _NO_WAIT state
            return s.config.timeouts.data_block
        return None

    # -- errors -------------------------------------------------------------------------

    def _fail(self, error: BaseException) -> None:
        """The one way into ERROR (sticky): every public method calls it on any
        exception before re-raising (h11's rule, docs/design.md §2). A protocol error's
        message loses every AUTH secret first (docs/design.md §4 rule 11)."""
        redactor = self._s.redactor
        if isinstance(error, ProtocolError):
            redactor.error(error)
        if self._error is None:
            self._error = (
                error
                if isinstance(error, ProtocolError)
                else LocalProtocolError(f"{type(error).__name__} escaped the engine: {error}")
            )
            redactor.error(self._error)
        self._s.enter(Outcome.FAILED)

    def _raise_if_error(self, local: bool) -> None:
        if self._s.state is S.ERROR:
            cls = LocalProtocolError if local else type(self._error or LocalProtocolError(""))
            raise cls(f"connection is in the ERROR state after: {self._error}")

    def send_failed(self) -> None:
        """The caller could not write what ``send`` returned: the connection is unusable."""
        self._fail(LocalProtocolError("the caller reported a failed write"))

    # -- receiving ----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Queue bytes received from the server; ``b""`` means EOF.

        Data after EOF is a ``LocalProtocolError``; data while the TLS handshake is due
        (after the STARTTLS 220) is a ``RemoteProtocolError`` (RFC 3207 §4). A chunk
        that would take the octets held (fed, not yet consumed by ``next_event``) past
        ``config.max_receive_buffer`` is a ``LocalProtocolError`` raised before anything
        is stored: the connection stays as it was; drain it with ``next_event`` first.
        """
        s = self._s
        state = s.state
        if state is _ERROR:
            self._raise_if_error(local=True)
        if type(data) is bytes and data and not self._eof and state is not _TLS_HANDSHAKE:
            size = s.incoming_size + len(data)
            if size > s.config.max_receive_buffer:
                raise _over_the_cap(s.incoming_size, len(data), s.config.max_receive_buffer)
            s.incoming.append(data)
            s.incoming_size = size
            return
        refused = None
        try:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise LocalProtocolError(f"receive_data needs bytes, got {type(data).__name__}")
            if self._eof:
                raise LocalProtocolError("receive_data called after EOF")
            if not data:
                self._eof = True
            elif state is S.TLS_HANDSHAKE:
                raise RemoteProtocolError(
                    "server sent data after the STARTTLS 220 reply, before TLS (RFC 3207 §4)"
                )
            else:
                chunk = bytes(data)
                size = s.incoming_size + len(chunk)
                if size > s.config.max_receive_buffer:
                    refused = _over_the_cap(
                        s.incoming_size, len(chunk), s.config.max_receive_buffer
                    )
                else:
                    s.incoming.append(chunk)
                    s.incoming_size = size
        except BaseException as error:
            self._fail(error)
            raise
        if refused is not None:  # the caller's pacing: nothing stored, nothing changed
            raise refused

    def next_event(self) -> Event | NeedData:
        """The next event, or ``NEED_DATA``. Raises ``RemoteProtocolError`` when the
        server broke the protocol (then the connection is in ERROR). After EOF has
        been reported, ``ConnectionClosed`` is returned again on every call."""
        s = self._s
        if s.state is _ERROR:
            self._raise_if_error(local=False)
        events = s.events
        if events:
            return events.pop(0)
        replies = s.replies
        incoming = s.incoming
        try:
            while True:
                if replies:
                    handle_replies(s, replies)
                    if events:
                        return events.pop(0)
                elif incoming:
                    if s.state is _TLS_HANDSHAKE:
                        raise RemoteProtocolError("data received before the TLS handshake")
                    chunk = incoming.pop(0)
                    s.incoming_size -= len(chunk)
                    parsed = shown = s.parser.feed(chunk)
                    if s.redactor.active:  # after AUTH: no secret reaches an event
                        shown = [s.redactor.reply(reply) for reply in parsed]
                        # A challenge is decoded as sent (redacting its base64 broke
                        # it); replies._auth_reply redacts the event it makes.
                        parsed = [
                            raw if raw.code == 334 and s.mechanism is not None else red
                            for raw, red in zip(parsed, shown, strict=True)
                        ]
                    if s.transcript is not None:
                        for reply in shown:
                            for line in reply.to_bytes().split(b"\r\n")[:-1]:
                                s.transcript.line("S", line)
                    replies.extend(parsed)
                elif s.parser.failed:
                    # The parser returned the replies completed before a grammar error
                    # (so a final "250 queued" is never lost); now the error surfaces.
                    s.parser.feed(b"")
                elif self._eof:
                    if self._closed:
                        return ConnectionClosed()
                    self._closed = True
                    handle_eof(s)
                    return events.pop(0)
                else:
                    return NEED_DATA
        except BaseException as error:
            self._fail(error)
            raise

    # -- sending ------------------------------------------------------------------------

    def send(self, command: Command) -> bytes:
        """Validate ``command`` against the session and return the bytes to write.

        Raises ``LocalProtocolError`` (nothing to write) when the command is not
        allowed now: wrong state, extension not advertised, a second command without
        PIPELINING, a command after a group-ending one (RFC 2920 §3.1), anything but
        MAIL, RSET, NOOP or QUIT right after the end of the content, TLS policy.

        Such a refusal is made before any byte of the command exists, so it changes
        nothing: the connection stays in its state and takes the next command
        (docs/design.md §2, "Errors"). Content, the end of the content and AUTH
        continuations are the exception: they continue an exchange already on the
        wire, so a refusal there, like any other exception, leaves the connection in
        the sticky ERROR state.
        """
        s = self._s
        state = s.state
        if state is _ERROR:
            self._raise_if_error(local=True)
        verb = None
        pending = s.pending
        last = pending[-1] if pending else None  # what was queued last, to see a change
        try:
            try:
                verb = VERBS[type(command)]
            except KeyError:
                raise LocalProtocolError(f"not a command: {command!r}") from None
            if verb is _BDAT and command.last:  # type: ignore[attr-defined]  # Bdat
                verb = V.BDAT_LAST
            table = _SEND_TABLE[state]
            if verb not in table:
                raise LocalProtocolError(
                    f"{type(command).__name__} cannot be sent in state {state.name}"
                )
            if last is not None and verb not in NOT_COMMANDS:
                check_pipelining(s, command)
            wire = SENDERS[verb](s, command, verb, state)
        except LocalProtocolError as error:
            # A sender refuses before it queues anything (``sending``); the check on
            # ``pending`` makes sure that nothing was queued before the refusal.
            if verb not in _MID_EXCHANGE and (pending[-1] if pending else None) is last:
                raise
            self._fail(error)
            raise
        except BaseException as error:
            self._fail(error)
            raise
        # The one transition on sending (optimistic, ``AFTER_SEND``); every other one
        # is ``Session.enter`` (``ON_OUTCOME``).
        s.state = table[verb]
        return wire

    def group_template(
        self, mail: Mail, rcpts: tuple[Rcpt, ...], *, bdat: bool = False
    ) -> GroupTemplate | None:
        """``mail``, ``rcpts`` and DATA checked and serialised once for the current
        capabilities and TLS state, for ``send_group`` (with ``bdat``: ``mail`` and
        ``rcpts`` for ``send_bdat_group``); None when the fast lane cannot carry them
        (no PIPELINING, LMTP, no CHUNKING for BDAT, a command ``send`` would refuse):
        use ``send``, which decides. Changes nothing (``fastlane.make_template``)."""
        self._raise_if_error(local=True)
        try:
            return make_template(self._s, mail, rcpts, bdat)
        except BaseException as error:  # a bug or an interrupt: the one boundary (§2)
            self._fail(error)
            raise

    def send_group(
        self,
        content: bytes | bytearray | memoryview | None,
        template: GroupTemplate,
        mail: Mail | None = None,
    ) -> bytes | None:
        """One pipelined group in one step (RFC 2920 §3.1): the end of the content of
        the message whose 354 came — ``content`` is all of it; None in READY, with no
        reply due, when no content is open — then ``mail`` (the template's own when
        None, else a MAIL that differs from it only in SIZE=, ``Mail.with_size``),
        ``template``'s RCPTs and DATA.
        The same bytes, queued replies and state as ``send(Content(data=content))``,
        ``send(EndOfContent())``, ``send`` of each command and ``send(Data())``.
        Returns None, with nothing changed, when the case is not the plain one
        (``fastlane.send_group``; a SIZE= above the server's limit included): then use
        ``send``. A content the DATA encoder refuses is a sticky error, as with
        ``send(Content(...))``."""
        s = self._s
        if s.state is _ERROR or type(template) is not GroupTemplate:  # per message: inline
            s = self._group_session(template, "send_group")  # which raises
        try:
            return send_group(s, content, template, mail)
        except BaseException as error:
            self._fail(error)
            raise

    def send_bdat_group(
        self, data: bytes, template: GroupTemplate, mail: Mail | None = None, *, reset: bool = False
    ) -> bytes | None:
        """One pipelined group in one step (RFC 2920 §3.1, RFC 3030 §2), in READY: RSET
        when ``reset``, ``mail`` (as in ``send_group``), the template's RCPTs, then
        ``BDAT n LAST`` and ``data``, the whole message as it goes on the wire. The
        same bytes, queued replies and state as ``send(Rset())``, ``send`` of each
        command and ``send(Bdat(data=data, last=True))``. Returns None, with nothing
        changed, when the case is not the plain one (``fastlane.send_bdat_group``):
        then use ``send``."""
        s = self._group_session(template, "send_bdat_group")
        try:
            return send_bdat_group(s, data, template, mail, reset)
        except BaseException as error:
            self._fail(error)
            raise

    def _group_session(self, template: object, what: str) -> Session:
        """The session, for ``what`` with ``template``; refused (nothing changed) after
        an error or when ``template`` is not a ``GroupTemplate``."""
        s = self._s
        if s.state is _ERROR:
            self._raise_if_error(local=True)
        if type(template) is not GroupTemplate:  # misuse: nothing changed
            raise LocalProtocolError(f"{what} needs a GroupTemplate, got {template!r}")
        return s

    # -- TLS ----------------------------------------------------------------------------

    def tls_established(self) -> None:
        """The caller finished the TLS handshake after ``TLSReady``.

        Capabilities are forgotten; send EHLO (or LHLO) again (RFC 3207 §4.2).
        """
        self._raise_if_error(local=True)
        s = self._s
        try:
            if s.state is not S.TLS_HANDSHAKE:
                raise LocalProtocolError("tls_established() without a STARTTLS 220 reply")
            s.tls_active = True
            s.forget_extensions()
            s.mails_sent = 0  # a new SMTP session (RFC 3207 §4.2): MAILMAX counts anew
            s.parser = s.new_parser()
            s.enter(Outcome.TLS_ESTABLISHED)
        except BaseException as error:
            self._fail(error)
            raise


def _over_the_cap(held: int, size: int, cap: int) -> LocalProtocolError:
    """The refusal of a chunk that would take the octets held past ``cap``."""
    return LocalProtocolError(
        f"receive_data: {held} octets held and {size} more would exceed "
        f"max_receive_buffer={cap}; call next_event() until NEED_DATA before feeding more"
    )
