"""``send_many``: many messages over one session, one round trip per message.

Theory of operation
-------------------
RFC 2920 §3.1 lets the content be the first "command" of a pipelined group, so with
PIPELINING the end of message *k* (its last content chunk and ``.``) goes out in the
same write as message *k+1*'s MAIL, RCPTs and DATA::

    C: MAIL RCPT DATA                       S: 250 250 354
    C: <content 1> . MAIL RCPT DATA         S: 250 (message 1) 250 250 354
    C: <content 2> .                        S: 250 (message 2)

Replies come in command order (the engine's FIFO), so ``TransactionResult`` events
arrive in message order and are matched to the oldest message still in flight. With
CHUNKING a message that fits one chunk needs no 354 at all: MAIL, RCPTs and BDAT LAST
of up to ``max_in_flight`` messages go out before any reply is read; each group written
while an earlier BDAT LAST is unanswered starts with RSET, since that transaction may
be left open (``left_open``: every RCPT refused) and a MAIL behind it would be refused
as nested, or its RCPTs join it (RFC 3030 §2, RFC 5321 §4.1.1.5). A larger BDAT
message, or any message without PIPELINING, is sent lock-step by ``sendmail``'s own
drivers once everything before it is answered.

The common batch — one envelope repeated, each content one chunk (``bytes``,
``bytearray``, ``memoryview``, ``str``), DATA or BDAT — takes the engine's fast lane
(docs/design.md §2): at each 354 the next message is taken and, when it repeats the
envelope of the engine's ``GroupTemplate`` (its SIZE= may differ: each message
declares its own length, RFC 1870 §6), this content, its end and that message's MAIL,
RCPTs and DATA come from one ``send_group`` call; in a BDAT window, a small message's
RSET (when due), MAIL, RCPTs and BDAT LAST come from one ``send_bdat_group`` call
(``_fast_bdat``); the engine matches their replies in its group step
(``replies.handle_replies``). The bytes, events and outcomes are the general path's;
anything else takes it.

Each message's content is streamed (never held whole) and taken from the caller's
iterable only when it is about to be sent, so memory stays bounded by the window.

Outcomes, one per message in order: the ``TransactionResult`` when at least one
recipient got the message, else the exception ``sendmail`` would raise for it
(``SMTPReplyError``, ``SMTPRecipientsRefused``; ``SMTPProtocolError`` for a message
the engine refused to send, such as a bad address: the batch goes on). When the
session ends (421, EOF, timeout, lost connection), the messages in flight get that
error (``SMTPDeliveryStatusUnknown`` for one whose content end was sent, RFC 1047)
and the rest of the iterable is not consumed: the list is then shorter than the input.

Outcomes are collected by ``Outcomes``: each is handed on in message order as soon as
it and every one before it are known, to the list returned at the end or, with
``on_outcome``, to the caller's callback and then dropped. So a streamed batch of any
length holds only the messages of its window, never one result per message sent.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from ..client_engine.events import (
    NEED_DATA,
    Bdat,
    ConnectionClosed,
    Content,
    Data,
    EndOfContent,
    NoRecipientsAccepted,
    ReadyForContent,
    Rset,
    TransactionResult,
)
from ..client_engine.fastlane import GroupTemplate
from ..client_engine.states import ClientState
from ..wire.datacodec import LineEndNormalizer
from ..wire.errors import LocalProtocolError, RemoteProtocolError
from ..wire.twins import slot_filler
from .batch_outcomes import Outcome, OutcomeCallback, Outcomes, session_ended
from .batch_plan import Plan, Prepared, remember, repeated
from .core import caller_checked, left_open, raise_for
from .exceptions import (
    SMTPBatchInterrupted,
    SMTPConnectError,
    SMTPError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPReplyError,
)
from .mail import MailDrivers, check_binarymime, check_options, check_transfer_flags
from .support import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAIL_OPTIONS,
    ContentSource,
    Driver,
    MailOptions,
    Read,
    Write,
)

if TYPE_CHECKING:
    from email.message import Message

    from ..client_engine.connection import ClientConnection

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "BatchDrivers", "BatchItem", "Outcome", "OutcomeCallback"]

#: One message for ``send_many``: (sender, recipients, content) or an email message.
BatchItem: TypeAlias = "tuple[str, str | Iterable[str], ContentSource] | Message"
#: Messages whose final reply may be outstanding at once (BDAT LAST windows; with DATA
#: at most two are: one awaiting its final reply, one its 354).
DEFAULT_MAX_IN_FLIGHT = 32
T = TypeVar("T")
#: An immutable value shared by every batch: the end of the content.
_END = EndOfContent()


#: ``Write(data, timeout)``, its slots filled directly (the selected ``slot_filler``
#: twin): made once per message.
_write = slot_filler(Write, [field.name for field in dataclasses.fields(Write)])


class BatchDrivers(MailDrivers):
    """``send_many`` over ``MailDrivers`` and ``DriverCore``'s plumbing."""

    @caller_checked
    def send_many(
        self,
        messages: Iterable[BatchItem],
        *,
        options: MailOptions | None = None,
        pipelining: bool | None = None,
        chunking: bool | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        on_outcome: OutcomeCallback | None = None,
    ) -> Driver[list[Outcome]]:
        """Send every message of ``messages`` (an iterable of ``(sender, recipients,
        content)`` tuples or ``email.message`` messages, consumed lazily); return one
        outcome per message, in order (see the module docstring). With ``on_outcome``,
        each outcome goes to that callback (index, outcome) as soon as it is known and
        is not kept: the list returned is empty, and memory stays bounded however many
        messages are sent. An exception from the callback ends the batch and
        propagates (the session is then closed). An ``Exception`` raised by the
        iterable ``messages`` stops the batch there: every message already taken is
        finished (content ended, final reply read: a delivered message is reported as
        delivered), then ``SMTPBatchInterrupted`` is raised from it, carrying their
        outcomes (``outcomes``, the list this would have returned; empty with
        ``on_outcome``, which got each of them); the session stays usable.

        With PIPELINING (unless ``pipelining`` is False) each message costs one round
        trip (RFC 2920 §3.1); with CHUNKING too (unless ``chunking`` is False) small
        messages are windowed, at most ``max_in_flight`` (≥ 1) awaiting replies.
        Without PIPELINING, messages go one at a time like ``sendmail``. ``options``
        apply to every message; an email message is prepared as by ``send_message``
        (SMTPUTF8 when needed; without 8BITMIME its 8-bit parts re-encoded).
        Each message is one transaction: one with more recipients than the server's
        LIMITS RCPTMAX (RFC 9422 §4.2) gets an ``SMTPProtocolError`` outcome before
        anything of it is sent (``sendmail`` splits such a message); so does a message
        whose content is held whole and would be refused by the DATA encoder (a NUL, a
        line over 998 octets, 8-bit without BODY=8BITMIME: ``mail.check_content``),
        on every path, the fast lane included. Streamed content refused after its 354
        ends the session (see ``sendmail``). The batch stops at the server's ``LIMITS
        MAILMAX`` transactions per session (RFC 9422 §4.1): the next message, if any,
        gets an ``SMTPProtocolError`` outcome ("not sent") and the rest of the iterable
        is not read; send them on a new connection.
        """
        check_transfer_flags(pipelining, chunking)
        if type(max_in_flight) is not int or max_in_flight < 1:
            raise LocalProtocolError("max_in_flight must be a positive int")
        if type(chunk_size) is not int or chunk_size < 1:
            raise LocalProtocolError("chunk_size must be a positive int")
        caps = self.conn.capabilities
        pipe = caps is not None and caps.pipelining and pipelining is not False
        bdat = caps is not None and caps.chunking and chunking is not False
        if chunking and not bdat:
            raise LocalProtocolError("chunking=True needs the CHUNKING extension, not advertised")
        if on_outcome is not None and not callable(on_outcome):
            raise LocalProtocolError("on_outcome must be a callable or None")
        try:
            items = iter(messages)
        except TypeError:
            raise LocalProtocolError(
                f"send_many needs an iterable of messages, got {type(messages).__name__}"
            ) from None
        if options is not None:
            check_options(options)  # refused for the batch, not once per message
            check_binarymime(options.body, bdat)
        plan = Plan(options or DEFAULT_MAIL_OPTIONS, chunk_size, caps, self.config)
        return self._send_many(items, plan, pipe, bdat, max_in_flight, on_outcome)

    def _send_many(
        self,
        messages: Iterator[BatchItem],
        plan: Plan,
        pipe: bool,
        bdat: bool,
        window: int,
        on_outcome: OutcomeCallback | None,
    ) -> Driver[list[Outcome]]:
        """The batch, under ``_guard``'s rule applied in this frame (``_guard_start``,
        ``_guard_failure``: no frame around ``_batch`` to resume twice per message)."""
        done: list[Outcome] = []
        outcomes = Outcomes(on_outcome) if on_outcome is not None else Outcomes(collect=done)
        inflight: deque[Prepared] = deque()
        self._reset_pending = False
        # Replies read after a failed write (``_last_words``) settle their messages too.
        self._settle_result = lambda result: self._settle_oldest(result, inflight, outcomes)
        try:
            start = self._guard_start()
            try:
                yield from self._batch(messages, plan, pipe, bdat, window, outcomes, inflight)
            except BaseException as error:
                yield from self._guard_failure(error, start)
                raise AssertionError("unreachable: _guard_failure raises") from error
            finally:
                self._current = None
        except SMTPError as error:
            if outcomes.failed:  # raised by ``on_outcome`` (re-raising an outcome, say):
                self._broken = True  # not the session's error; the batch ends, unfinished
                raise
            if not outcomes.count:
                raise
            session_ended(error, inflight, outcomes)
        finally:
            self._settle_result = None
        outcomes.finish()
        if plan.raised:
            raise SMTPBatchInterrupted(plan.raised[0], done) from plan.raised[0]
        return done

    def _next(
        self, messages: Iterator[BatchItem], plan: Plan, outcomes: Outcomes
    ) -> Prepared | None:
        """The next message that can be sent; a message the engine refuses (bad
        address, bad content type) gets ``SMTPProtocolError`` and is skipped. None
        when there is none, or when the server's LIMITS MAILMAX allows no more
        transactions in this session (RFC 9422 §4.1): then the next message, if there
        is one, gets ``SMTPProtocolError`` saying so, and the rest of the iterable is
        not consumed (``_past_mailmax``)."""
        if plan.raised:  # the iterable raised: never asked again
            return None
        if plan.mailmax is not None and self.conn.mail_budget == 0:
            _past_mailmax(self.conn, messages, plan, outcomes)
            return None
        options, chunk_size = plan.options, plan.chunk_size
        while True:
            # ``messages``' next item, ending where it raises an ``Exception`` (kept in
            # ``plan.raised``): the batch then finishes every message already taken, as
            # at the iterable's end, and ``send_many`` raises ``SMTPBatchInterrupted``
            # with their outcomes. ``messages`` is never closed (the caller may go on
            # with it); a ``BaseException`` (an interrupt, cancellation) propagates.
            try:
                item = next(messages)
            except StopIteration:
                return None
            except Exception as error:
                plan.raised.append(error)
                return None
            index = outcomes.reserve()
            recipients: str | Iterable[str]
            content: ContentSource
            if type(item) is tuple and len(item) == 3:
                prepared = repeated(plan, index, item)
                if prepared is not None:
                    return prepared
            try:
                if isinstance(item, tuple) and len(item) == 3:  # the common case first
                    sender, recipients, content = item
                    mail_options = options
                elif isinstance(item, _message_class()):
                    envelope, mail_options, content = self._message_transaction(
                        item, None, None, options
                    )
                    sender, recipients = envelope.sender, envelope.recipients
                else:
                    raise LocalProtocolError(
                        "send_many needs (sender, recipients, content) tuples or "
                        f"email messages, got {type(item).__name__}"
                    )
                single = isinstance(content, (bytes, bytearray, memoryview, str))
                rcpts, mail, commands, first, chunks, total = self._prepare(
                    sender, recipients, content, mail_options, chunk_size
                )
            except LocalProtocolError as error:
                outcomes[index] = SMTPProtocolError(error)
                continue
            single = single and total is not None and total <= chunk_size
            current = (mail.sender, rcpts)
            prepared = Prepared(index, rcpts, mail, commands, first, chunks, total, single, current)
            if single and mail_options is options:
                remember(plan, sender, recipients, prepared)
            return prepared

    def _batch(
        self,
        messages: Iterator[BatchItem],
        plan: Plan,
        pipe: bool,
        bdat: bool,
        window: int,
        outcomes: Outcomes,
        inflight: deque[Prepared],
    ) -> Driver[None]:
        conn = self.conn
        tail = b""  # the end of the last content, written with the next group
        waiting: Prepared | None = None  # sent DATA, its 354 not handled yet
        item: Prepared | None = None  # taken from the iterable, not sent yet
        exhausted = False
        # The fast lane (``_fast_group``): DATA groups, pipelined, no RSET due.
        fast = pipe and not bdat
        ready = ClientState.READY
        data_command = Data()  # one immutable value for every message
        # The reads of the batch, one immutable value per (timeout, resume): a frozen
        # dataclass costs more to make than to find (two reads per message).
        reads: dict[tuple[float | None, bool], Read] = {}
        # Only transaction outcomes matter here: no CommandReply per MAIL/RCPT/BDAT
        # (``_lockstep`` turns them back on for ``sendmail``'s drivers).
        conn.command_replies = False
        try:
            while True:
                can_start = waiting is None and len(inflight) < window
                if self._broken and waiting is None:  # an RSET refused or failed
                    if not inflight:
                        raise _state_unknown()
                    can_start = False  # the results in flight first
                if can_start and item is None and not exhausted:
                    if conn.state is not ready:
                        if inflight:  # their results (a 421's) come first
                            can_start = False
                        else:
                            yield from self._cannot_continue()
                    if can_start:
                        item = self._next(messages, plan, outcomes)
                        exhausted = item is None
                if can_start and item is not None:
                    if not pipe or (bdat and not item.single):
                        # lock-step: everything before it answered first
                        if tail:
                            yield Write(tail, self._write_timeout())
                            tail = b""
                        if inflight:
                            yield from self._batch_read(inflight, outcomes)
                            continue
                        yield from self._reset_now()
                        inflight.append(item)
                        conn.command_replies = True
                        yield from self._lockstep(item, pipe, bdat, outcomes)
                        conn.command_replies = False
                        inflight.clear()
                    elif bdat and (group := self._fast_bdat(item, plan, bool(inflight))):
                        inflight.append(item)  # as below, from one engine step
                        if len(inflight) == 1:
                            self._current = item.current
                        yield _write(tail + group, self._write_timeout())
                        tail = b""
                    else:
                        if bdat and inflight:
                            # A BDAT LAST still unanswered may leave its transaction
                            # open (MAIL accepted, every RCPT refused: ``left_open``):
                            # RSET first, so this MAIL is never refused as nested and
                            # its RCPTs never join that transaction (RFC 3030 §2,
                            # RFC 5321 §4.1.1.5).
                            self._reset_pending = True
                        if self._reset_pending:
                            tail += self._reset()
                        try:
                            wire = conn.send(item.mail)
                        except LocalProtocolError as error:
                            # Refused before anything of it was queued (a SIZE above
                            # the server's, a parameter it does not offer): that is
                            # this message's outcome, and the batch goes on.
                            outcomes[item.index] = SMTPProtocolError(error)
                            item = None
                            continue
                        wire = tail + wire
                        for rcpt in item.commands:
                            wire += conn.send(rcpt)
                        if bdat:
                            wire += conn.send(Bdat(data=_crlf(item), last=True))
                            item.ended = True
                            item.verb = "BDAT"
                        else:
                            wire += conn.send(data_command)
                            waiting = item
                        tail = b""
                        inflight.append(item)
                        if len(inflight) == 1:  # whom a failure of this write concerns
                            self._current = item.current
                        yield Write(wire, self._write_timeout())
                    item = None
                    continue
                if tail:
                    yield Write(tail, self._write_timeout())
                    tail = b""
                if not inflight:
                    if exhausted:
                        yield from self._reset_now()  # ready for the next transaction
                        return
                    continue
                # The next event, read here rather than in a generator per event.
                self._current = inflight[0].current
                event = conn.next_event()
                if event is NEED_DATA:
                    resume = False  # one deadline per reply awaited, as in ``_event``
                    while event is NEED_DATA:
                        key = (conn.timeout, resume)
                        read = reads.get(key)
                        if read is None:
                            read = reads[key] = Read(*key)
                        data = yield read
                        if type(data) is not bytes:
                            raise TypeError(f"the adapter answered Read with {type(data).__name__}")
                        conn.receive_data(data)
                        resume = True
                        event = conn.next_event()
                if type(event) is TransactionResult:  # event classes are never subclassed
                    self._settle_oldest(event, inflight, outcomes)
                    if waiting is not None and (not inflight or inflight[-1] is not waiting):
                        waiting = None  # its DATA was refused (a result came): no content
                elif type(event) is ReadyForContent:
                    assert waiting is not None
                    if (
                        waiting.single
                        and fast
                        and len(inflight) < window
                        and not exhausted
                        and not self._broken  # no next message after a refused RSET
                    ):
                        # The fast lane: this content, its end and the next message's
                        # MAIL, RCPTs and DATA in one engine step (``send_group``).
                        # The general path ends this content before it takes the next
                        # message: whatever fails here fails as it would there.
                        taken = outcomes.count
                        try:
                            item = self._next(messages, plan, outcomes)
                        except BaseException:  # the caller's iterable raised
                            self._end_or_rewind(waiting, outcomes, taken)
                            raise
                        exhausted = item is None
                        try:
                            group = self._fast_group(waiting, item, plan)
                            if group is None:
                                tail = self._whole_content(waiting)
                        except BaseException:  # the content refused: nothing taken
                            outcomes.rewind(taken)
                            raise
                        if group is not None:
                            assert item is not None
                            inflight.append(item)
                            waiting, item = item, None
                            yield _write(group, self._write_timeout())
                        else:
                            waiting = None
                        continue
                    if waiting.single:  # all of it at once: no generator
                        tail = self._whole_content(waiting)
                    else:
                        tail = yield from self._content(waiting)
                    waiting = None
                elif type(event) is NoRecipientsAccepted:  # RFC 2920 §3.1: a lone "."
                    assert waiting is not None
                    tail = conn.send(_END)
                    # Its transaction may stay open (``left_open``) and the next MAIL
                    # goes out before the reply to the ".": RSET first.
                    self._reset_pending = True
                    waiting.ended = True
                    waiting = None
                else:
                    self._screen(event)  # a 421, a lost final reply: raises
                    if type(event) is ConnectionClosed:
                        raise SMTPConnectError("the server closed the connection during the batch")
        finally:
            conn.command_replies = True

    def _cannot_continue(self) -> Driver[None]:
        """Nothing in flight but the session cannot take a MAIL: report why (a 421
        raises ``SMTPReplyError`` from its ``ServiceClosing``)."""
        event = yield from self._event()
        raise SMTPProtocolError(
            LocalProtocolError(
                f"the session cannot continue in state {self.conn.state.name} (after {event!r})"
            )
        )

    def _batch_read(self, inflight: deque[Prepared], outcomes: Outcomes) -> Driver[object]:
        """The next engine event (screened like ``_event``'s, without its generator:
        this runs five times per message); a ``TransactionResult`` settles the oldest
        message."""
        self._current = inflight[0].current
        conn = self.conn
        event = conn.next_event()
        resume = False  # one deadline per reply awaited, as in ``_event``
        while event is NEED_DATA:
            data = yield Read(conn.timeout, resume)
            if not isinstance(data, bytes):
                raise TypeError(f"the adapter answered Read with {type(data).__name__}")
            conn.receive_data(data)
            resume = True
            event = conn.next_event()
        self._screen(event)
        if isinstance(event, TransactionResult):
            self._settle_oldest(event, inflight, outcomes)
        elif isinstance(event, ConnectionClosed):
            raise SMTPConnectError("the server closed the connection during the batch")
        return event

    def _settle_oldest(
        self, result: TransactionResult, inflight: deque[Prepared], outcomes: Outcomes
    ) -> None:
        """A ``TransactionResult`` settles the oldest message in flight (replies come in
        command order, RFC 2920 §3.1)."""
        item = inflight.popleft()
        assert result.sender == item.mail.sender, "results arrive in message order"
        # The oldest message in flight is the one a failure from now on concerns (a
        # write that fails names it in ``SMTPDeliveryStatusUnknown``), never this one.
        self._current = inflight[0].current if inflight else None
        try:
            raise_for(result, item.verb)  # ``verb``: what carried the content (RFC 3030 §2)
        except (SMTPReplyError, SMTPRecipientsRefused, SMTPProtocolError) as error:
            outcomes[item.index] = error  # what ``sendmail`` would raise for it
            if left_open(result, content_ended=item.ended):
                self._reset_pending = True
        else:
            outcomes[item.index] = result

    def _reset(self) -> bytes:
        """RSET, when a refused transaction may be open at the server (``left_open``),
        to go out before the next MAIL (RFC 2920 §3.1: anywhere in a group)."""
        if not self._reset_pending or self.conn.state is not ClientState.READY:
            return b""
        self._reset_pending = False
        return self.conn.send(Rset())

    def _reset_now(self) -> Driver[None]:
        """``_reset``'s RSET on its own, its reply awaited, and the reply to any RSET
        written before a MAIL the engine then refused (nothing else is in flight)."""
        wire = self._reset()
        if wire:
            yield Write(wire, self._write_timeout())
        while self.conn.outstanding:  # also an RSET written before a refused MAIL
            yield from self._event()

    def _template(self, item: Prepared, plan: Plan, bdat: bool) -> GroupTemplate | None:
        """The engine's template for ``item``'s envelope when ``item`` repeats the
        plan's (``repeated``: the same RCPT commands, a MAIL that may differ in
        SIZE=), made once per envelope (``ClientConnection.group_template``); None:
        not the fast lane's case."""
        commands = item.commands
        if plan.template_for is not commands:
            was = plan.prepared  # ``item`` repeats it (``repeated``): a template pays
            if was is None or was is item or was.commands is not commands:
                return None
            plan.template_for = commands
            plan.template = self.conn.group_template(item.mail, tuple(commands), bdat=bdat)
        return plan.template

    def _fast_group(self, waiting: Prepared, item: Prepared | None, plan: Plan) -> bytes | None:
        """The fast lane's one engine step, when ``item`` repeats the envelope of the
        plan's template: ``waiting``'s whole content and end, then ``item``'s MAIL, RCPTs
        and DATA (``ClientConnection.send_group``); None, nothing sent: the general
        path sends them."""
        if item is None or not item.single or self._reset_pending:
            return None
        # The plan's template when it was made for these RCPTs (the common case), else
        # ``_template`` decides.
        template = (
            plan.template
            if plan.template_for is item.commands
            else self._template(item, plan, bdat=False)
        )
        if template is None:
            return None
        wire = self.conn.send_group(waiting.first, template, item.mail)
        if wire is not None:
            waiting.ended = True
        return wire

    def _fast_bdat(self, item: Prepared, plan: Plan, inflight: bool) -> bytes | None:
        """The fast lane of a BDAT window, when ``item`` (a single chunk) repeats the
        envelope of the plan's template: the RSET the general path would send first
        (an earlier BDAT LAST unanswered, or ``_reset_pending``), ``item``'s MAIL, RCPTs
        and ``BDAT n LAST`` with its whole content (RFC 3030 §2) in one engine step
        (``ClientConnection.send_bdat_group``); None, nothing sent: the general path
        sends them."""
        template = self._template(item, plan, bdat=True)
        if template is None:
            return None
        reset = self._reset_pending or inflight
        wire = self.conn.send_bdat_group(_crlf(item), template, item.mail, reset=reset)
        if wire is not None:
            self._reset_pending = False
            item.ended = True
            item.verb = "BDAT"
        return wire

    def _end_or_rewind(self, waiting: Prepared, outcomes: Outcomes, taken: int) -> None:
        """The fast lane's next message could not be taken: end ``waiting``'s content
        as the general path had before (the engine's state is then its), or, if that
        fails, forget what was taken (the general path took nothing) and raise."""
        try:
            self._whole_content(waiting)
        except BaseException:
            outcomes.rewind(taken)
            raise

    def _whole_content(self, item: Prepared) -> bytes:
        """``_content`` for a message whose whole content is ``first``: all of it and
        its end, to go out with the next group."""
        first = item.first
        conn = self.conn
        wire = (conn.send(Content(data=first)) if first else b"") + conn.send(_END)
        item.ended = True  # not before: content the encoder refused never ended
        return wire

    def _content(self, item: Prepared) -> Driver[bytes]:
        """Write the content after the 354 but its end, which is returned (to go out
        with the next group)."""
        conn = self.conn
        chunk: bytes | None = item.first
        while chunk is not None:
            following = next(item.chunks, None)
            wire = conn.send(Content(data=chunk)) if chunk else b""
            if following is None:
                wire += conn.send(_END)
                item.ended = True  # not before: content the encoder refused never ended
                return wire
            if wire:
                yield Write(wire, self._write_timeout())
            chunk = following
        raise AssertionError("unreachable: the loop returns at the last chunk")

    def _lockstep(self, item: Prepared, pipe: bool, bdat: bool, outcomes: Outcomes) -> Driver[None]:
        """One message the way ``sendmail`` sends it; a refusal is its outcome when
        the session stays usable (else the batch ends with it)."""
        self._current = (item.mail.sender, item.rcpts)
        self._rcpt_accepted = 0
        args = (item.mail, item.commands, item.first, item.chunks, pipe, item.total, None)
        try:
            if bdat:
                result = yield from self._send_bdat(*args)
            else:
                result = yield from self._send_data(*args)
        except (SMTPReplyError, SMTPRecipientsRefused, SMTPProtocolError) as error:
            if self.conn.state is not ClientState.READY:
                raise
            outcomes[item.index] = error
            return
        except LocalProtocolError as error:  # the engine refused its MAIL: nothing sent
            if self.conn.state is not ClientState.READY or self.conn.outstanding:
                raise
            outcomes[item.index] = SMTPProtocolError(error)
            return
        outcomes[item.index] = result


def _past_mailmax(
    conn: ClientConnection, messages: Iterator[BatchItem], plan: Plan, outcomes: Outcomes
) -> None:
    """The session has sent as many transactions as the server's LIMITS MAILMAX takes
    (RFC 9422 §4.1): the next message, if any, is taken and gets ``SMTPProtocolError``
    saying so (nothing of it is sent); the batch ends there, the rest of the iterable
    unread, as when the session ends (the caller sends that message and the rest on a
    new connection)."""
    caps = conn.capabilities
    assert caps is not None  # a budget needs the LIMITS of an EHLO reply
    try:
        next(messages)
    except StopIteration:
        return
    except Exception as error:  # as ``_next`` takes it: the batch is interrupted
        plan.raised.append(error)
        return
    outcomes[outcomes.reserve()] = SMTPProtocolError(
        LocalProtocolError(
            f"not sent: the server's LIMITS MAILMAX is {caps.limits.mailmax} and this "
            "session has sent that many transactions (RFC 9422 §4.1); send this "
            "message and the rest on a new connection"
        )
    )


def _message_class() -> type[Message]:
    """``email.message.Message``, imported on first use: ``email`` imports ``time``,
    which the engine layer never does at import time."""
    from email.message import Message

    return Message


def _crlf(item: Prepared) -> bytes:
    """The whole (single-chunk) content for BDAT, line ends made CRLF unless
    BINARYMIME (RFC 3030 §3)."""
    if item.mail.body == "BINARYMIME":
        return item.first
    ends = LineEndNormalizer()
    return ends.feed(item.first) + ends.finish()


def _state_unknown() -> SMTPProtocolError:
    """Why a batch stops after an RSET was refused (``DriverCore._screen``) or failed:
    RFC 5321 §4.1.1.5 says RSET gets 250, so the server's state is unknown and no
    other transaction goes on this session; the messages not sent get this error."""
    return SMTPProtocolError(
        RemoteProtocolError(
            "RSET was refused or failed (RFC 5321 §4.1.1.5: it must get 250): the "
            "session's state is unknown, no more messages are sent on it"
        )
    )
