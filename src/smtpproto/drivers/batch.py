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
of up to ``max_in_flight`` messages go out before any reply is read. A larger BDAT
message, or any message without PIPELINING, is sent lock-step by ``sendmail``'s own
drivers once everything before it is answered.

Each message's content is streamed (never held whole) and taken from the caller's
iterable only when it is about to be sent, so memory stays bounded by the window.

Outcomes, one per message in order: the ``TransactionResult`` when at least one
recipient got the message, else the exception ``sendmail`` would raise for it
(``SMTPReplyError``, ``SMTPRecipientsRefused``; ``SMTPProtocolError`` for a message
the engine refused to send, such as a bad address: the batch goes on). When the
session ends (421, EOF, timeout, lost connection), the messages in flight get that
error (``SMTPDeliveryStatusUnknown`` for one whose content end was sent, RFC 1047)
and the rest of the iterable is not consumed: the list is then shorter than the input.

Outcomes are collected by ``_Outcomes``: each is handed on in message order as soon as
it and every one before it are known, to the list returned at the end or, with
``on_outcome``, to the caller's callback and then dropped. So a streamed batch of any
length holds only the messages of its window, never one result per message sent.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Literal, TypeAlias, TypeVar

from ..client_engine.events import (
    NEED_DATA,
    Bdat,
    Command,
    ConnectionClosed,
    Content,
    Data,
    EndOfContent,
    Mail,
    NoRecipientsAccepted,
    Rcpt,
    ReadyForContent,
    Rset,
    TransactionResult,
)
from ..client_engine.states import ClientState
from ..wire.datacodec import LineEndNormalizer
from ..wire.errors import LocalProtocolError
from .core import caller_checked, left_open, raise_for
from .envelope import envelope_from_message, flatten_message
from .exceptions import (
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPReplyError,
)
from .mail import MailDrivers
from .support import (
    DEFAULT_CHUNK_SIZE,
    ContentSource,
    Driver,
    MailOptions,
    Read,
    Write,
)

if TYPE_CHECKING:
    from email.message import Message

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "BatchDrivers", "BatchItem", "Outcome", "OutcomeCallback"]

#: One message for ``send_many``: (sender, recipients, content) or an email message.
BatchItem: TypeAlias = "tuple[str, str | Iterable[str], ContentSource] | Message"
#: What ``send_many`` reports per message.
Outcome = TransactionResult | SMTPError
#: ``send_many(on_outcome=...)``: called with each message's index (from 0, in the
#: order of the iterable) and outcome, in that order, as soon as it is known.
OutcomeCallback = Callable[[int, Outcome], None]
#: Messages whose final reply may be outstanding at once (BDAT LAST windows; with DATA
#: at most two are: one awaiting its final reply, one its 354).
DEFAULT_MAX_IN_FLIGHT = 32
T = TypeVar("T")


@dataclasses.dataclass(slots=True)
class _Prepared:
    """One message made ready to send (commands built; content not read yet)."""

    index: int
    rcpts: tuple[str, ...]
    mail: Mail
    commands: list[Rcpt]
    first: bytes
    chunks: Iterator[bytes]
    total: int | None
    single: bool  # the whole content is ``first``
    current: tuple[str, tuple[str, ...]]  # (sender, recipients), for ``Session._current``
    ended: bool = False  # the content's end ('.' or BDAT LAST) was written
    verb: Literal["DATA", "BDAT"] = "DATA"  # how the content went: names a refusal


class _Outcomes:
    """The outcome of each message by index, handed to ``emit`` in index order as soon
    as it and all before it are known, then forgotten (see the module docstring)."""

    __slots__ = ("_emit", "_next", "_pending", "count")

    def __init__(self, emit: OutcomeCallback) -> None:
        self._emit = emit
        self._pending: dict[int, Outcome] = {}  # settled, waiting for an earlier one
        self._next = 0  # the first index not emitted yet
        #: Messages taken from the iterable so far.
        self.count = 0

    def reserve(self) -> int:
        """The index of the next message taken from the iterable."""
        self.count += 1
        return self.count - 1

    def __setitem__(self, index: int, outcome: Outcome) -> None:
        pending = self._pending
        pending[index] = outcome
        while self._next in pending:
            self._emit(self._next, pending.pop(self._next))
            self._next += 1

    def settled(self, index: int) -> bool:
        return index < self._next or index in self._pending

    def settle_rest(self, outcome: Callable[[], Outcome]) -> None:
        """Give every message not settled yet the outcome ``outcome()`` makes."""
        for index in range(self._next, self.count):
            if index not in self._pending:
                self[index] = outcome()

    def finish(self) -> None:
        assert self._next == self.count, "a message was left without an outcome"


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
        propagates (the session is then closed).

        With PIPELINING (unless ``pipelining`` is False) each message costs one round
        trip (RFC 2920 §3.1); with CHUNKING too (unless ``chunking`` is False) small
        messages are windowed, at most ``max_in_flight`` (≥ 1) awaiting replies.
        Without PIPELINING, messages go one at a time like ``sendmail``. ``options``
        apply to every tuple message (email messages add SMTPUTF8 when needed).
        Each message is one transaction: one with more recipients than the server's
        LIMITS RCPTMAX (RFC 9422 §4.2) gets an ``SMTPProtocolError`` outcome before
        anything of it is sent (``sendmail`` splits such a message).
        """
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
        return self._send_many(
            items,
            options or MailOptions(),
            pipe,
            bdat,
            max_in_flight,
            chunk_size,
            on_outcome,
        )

    def _send_many(
        self,
        messages: Iterator[BatchItem],
        options: MailOptions,
        pipe: bool,
        bdat: bool,
        window: int,
        chunk_size: int,
        on_outcome: OutcomeCallback | None,
    ) -> Driver[list[Outcome]]:
        done: list[Outcome] = []
        outcomes = _Outcomes(
            on_outcome if on_outcome is not None else lambda _, outcome: done.append(outcome)
        )
        inflight: deque[_Prepared] = deque()
        self._reset_pending = False
        try:
            yield from self._guard(
                self._batch(messages, options, pipe, bdat, window, chunk_size, outcomes, inflight)
            )
        except SMTPError as error:
            if not outcomes.count:
                raise
            _session_ended(error, inflight, outcomes)
        outcomes.finish()
        return done

    def _next(
        self,
        messages: Iterator[BatchItem],
        options: MailOptions,
        chunk_size: int,
        outcomes: _Outcomes,
    ) -> _Prepared | None:
        """The next message that can be sent; a message the engine refuses (bad
        address, bad content type) gets ``SMTPProtocolError`` and is skipped."""
        for item in messages:
            index = outcomes.reserve()
            recipients: str | Iterable[str]
            content: ContentSource
            try:
                if isinstance(item, tuple) and len(item) == 3:  # the common case first
                    sender, recipients, content = item
                    mail_options = options
                elif isinstance(item, _message_class()):
                    envelope = envelope_from_message(item)
                    mail_options = options
                    if envelope.international and options.smtputf8 is None:
                        mail_options = dataclasses.replace(options, smtputf8=True)
                    sender, recipients = envelope.sender, envelope.recipients
                    content = flatten_message(item, utf8=envelope.international)
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
            return _Prepared(index, rcpts, mail, commands, first, chunks, total, single, current)
        return None

    def _batch(
        self,
        messages: Iterator[BatchItem],
        options: MailOptions,
        pipe: bool,
        bdat: bool,
        window: int,
        chunk_size: int,
        outcomes: _Outcomes,
        inflight: deque[_Prepared],
    ) -> Driver[None]:
        conn = self.conn
        tail = b""  # the end of the last content, written with the next group
        waiting: _Prepared | None = None  # sent DATA, its 354 not handled yet
        item: _Prepared | None = None  # taken from the iterable, not sent yet
        exhausted = False
        while True:
            can_start = waiting is None and len(inflight) < window
            if can_start and item is None and not exhausted:
                if conn.state is not ClientState.READY:
                    if inflight:  # their results (a 421's) come first
                        can_start = False
                    else:
                        yield from self._cannot_continue()
                if can_start:
                    item = self._next(messages, options, chunk_size, outcomes)
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
                    yield from self._lockstep(item, pipe, bdat, outcomes)
                    inflight.clear()
                else:
                    group: list[Command] = [item.mail, *item.commands]
                    if bdat:
                        group.append(Bdat(data=_crlf(item), last=True))
                        item.ended = True
                        item.verb = "BDAT"
                    else:
                        group.append(Data())
                        waiting = item
                    wire = tail + self._reset() + b"".join([conn.send(c) for c in group])
                    tail = b""
                    inflight.append(item)
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
            event = yield from self._batch_read(inflight, outcomes)
            if isinstance(event, ReadyForContent):
                assert waiting is not None
                tail = yield from self._content(waiting)
                waiting = None
            elif isinstance(event, NoRecipientsAccepted):  # RFC 2920 §3.1: a lone "."
                assert waiting is not None
                tail = conn.send(EndOfContent())
                waiting.ended = True
                waiting = None
            elif waiting is not None and outcomes.settled(waiting.index):
                waiting = None  # its DATA was refused (a result came): no content

    def _cannot_continue(self) -> Driver[None]:
        """Nothing in flight but the session cannot take a MAIL: report why (a 421
        raises ``SMTPReplyError`` from its ``ServiceClosing``)."""
        event = yield from self._event()
        raise SMTPProtocolError(
            LocalProtocolError(
                f"the session cannot continue in state {self.conn.state.name} (after {event!r})"
            )
        )

    def _batch_read(self, inflight: deque[_Prepared], outcomes: _Outcomes) -> Driver[object]:
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
            item = inflight.popleft()
            assert event.sender == item.mail.sender, "results arrive in message order"
            outcome = outcomes[item.index] = _outcome(event, item.verb)
            if isinstance(outcome, SMTPError) and left_open(event, content_ended=item.ended):
                self._reset_pending = True
        elif isinstance(event, ConnectionClosed):
            raise SMTPConnectError("the server closed the connection during the batch")
        return event

    def _reset(self) -> bytes:
        """RSET, when a refused transaction may be open at the server (``left_open``),
        to go out before the next MAIL (RFC 2920 §3.1: anywhere in a group)."""
        if not self._reset_pending or self.conn.state is not ClientState.READY:
            return b""
        self._reset_pending = False
        return self.conn.send(Rset())

    def _reset_now(self) -> Driver[None]:
        """``_reset``'s RSET on its own, its reply awaited (nothing else in flight)."""
        wire = self._reset()
        if wire:
            yield Write(wire, self._write_timeout())
            while self.conn.outstanding:
                yield from self._event()

    def _content(self, item: _Prepared) -> Driver[bytes]:
        """Write the content after the 354 but its end, which is returned (to go out
        with the next group)."""
        conn = self.conn
        chunk: bytes | None = item.first
        while chunk is not None:
            following = next(item.chunks, None)
            wire = conn.send(Content(data=chunk)) if chunk else b""
            if following is None:
                item.ended = True
                return wire + conn.send(EndOfContent())
            if wire:
                yield Write(wire, self._write_timeout())
            chunk = following
        raise AssertionError("unreachable: the loop returns at the last chunk")

    def _lockstep(
        self, item: _Prepared, pipe: bool, bdat: bool, outcomes: _Outcomes
    ) -> Driver[None]:
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
        outcomes[item.index] = result


def _session_ended(error: SMTPError, inflight: deque[_Prepared], outcomes: _Outcomes) -> None:
    """The session ended with ``error``: the oldest message in flight gets it; one
    after it whose content end was written is ``SMTPDeliveryStatusUnknown`` (unless a
    421 refused it), one that got no content ``SMTPConnectError``; so does a message
    taken from the iterable but not sent."""
    first = True
    for item in inflight:
        outcome: SMTPError = error
        if not first and not isinstance(error, SMTPReplyError):
            if item.ended:
                outcome = SMTPDeliveryStatusUnknown(
                    f"the session ended before the final reply: {error}",
                    sender=item.mail.sender,
                    recipients=item.rcpts,
                )
            else:
                outcome = SMTPConnectError(f"not delivered, the session ended: {error}")
        outcomes[item.index] = outcome
        first = False
    inflight.clear()
    outcomes.settle_rest(lambda: SMTPConnectError(f"not sent, the session ended: {error}"))


def _message_class() -> type[Message]:
    """``email.message.Message``, imported on first use: ``email`` imports ``time``,
    which the engine layer never does at import time."""
    from email.message import Message

    return Message


def _crlf(item: _Prepared) -> bytes:
    """The whole (single-chunk) content for BDAT, line ends made CRLF unless
    BINARYMIME (RFC 3030 §3)."""
    if item.mail.body == "BINARYMIME":
        return item.first
    ends = LineEndNormalizer()
    return ends.feed(item.first) + ends.finish()


def _outcome(result: TransactionResult, verb: Literal["DATA", "BDAT"]) -> Outcome:
    """The result, or the exception ``sendmail`` would raise for it (``verb``: the
    command that carried the content, DATA or BDAT, RFC 3030 §2)."""
    try:
        raise_for(result, verb)
    except (SMTPReplyError, SMTPRecipientsRefused, SMTPProtocolError) as error:
        return error
    return result
