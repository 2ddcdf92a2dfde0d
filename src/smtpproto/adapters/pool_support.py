"""What the pools (``async_pool`` and the generated ``sync_pool``) share that never
waits: their option types and checks, the rate limit, how many recipients a message
is split over (``split_over_count``: whether a connection's LIMITS MAILMAX budget
takes it), and the bookkeeping of a pool's ``send_many`` (``PoolBatch``, ``Lease``).

The rate limit lets at most ``messages`` messages start in any window of ``per``
seconds (a sliding window, so no burst at a window edge exceeds it). ``RateWindow``
only does arithmetic on the times it is given: the pool passes its clock's reading
(injectable for tests) and sleeps the delay it gets back.

A pool's ``send_many`` runs in *rounds*, one after another: each lends a connection
and runs the client's own pipelined ``send_many`` over a ``Lease``, an iterator that
hands the client the caller's messages while that connection may take more (its
``max_messages``, its age, the server's LIMITS MAILMAX budget, RFC 9422 §4.1, the rate
limit) and then ends, so the client finishes what it took and returns; the next round
goes on from the next message on another connection. ``PoolBatch`` holds what the
rounds share: the caller's iterator, read one message at a time (``peek`` holds the
next one before a connection is lent for it, so none is opened for nothing), and the
outcomes, handed on in the caller's order (the rounds' messages are consecutive, so a
round's index plus its first message's is the caller's index).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Final, Literal

from ..client_engine.events import TransactionResult
from ..drivers.batch import BatchItem, Outcome, OutcomeCallback
from ..drivers.exceptions import SMTPBatchInterrupted, SMTPError
from ..drivers.support import MailOptions
from ..wire import fields
from ..wire.fields import check_int
from .common import usage_error
from .smtplib_compat import smtplib_compatible

__all__ = [
    "DEFAULT_CHECK_IDLE_AFTER",
    "MAX_FRUITLESS_ROUNDS",
    "Destination",
    "IdleCheck",
    "Lease",
    "PoolBatch",
    "RateLimit",
    "RateWindow",
    "check_count",
    "check_seconds",
    "reusable",
    "split_over_count",
]

#: Where a pooled connection goes: (host, port); port None means the client's default.
Destination = tuple[str, "int | None"]
#: How a connection idle for a while is checked before it is lent again.
IdleCheck = Literal["noop", "rset"]
#: Seconds an idle connection may wait before it is probed (servers close idle
#: connections after RFC 5321 §4.5.3.2.7's five minutes or, in practice, much less).
DEFAULT_CHECK_IDLE_AFTER = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``messages`` messages may start in any ``per`` seconds."""

    messages: int
    per: float

    def __post_init__(self) -> None:
        check_count("RateLimit.messages", self.messages)
        check_seconds("RateLimit.per", self.per)


class RateWindow:
    """The start times of the last ``limit.messages`` messages."""

    __slots__ = ("_limit", "_starts")

    def __init__(self, limit: RateLimit) -> None:
        self._limit = limit
        self._starts: deque[float] = deque()

    def delay(self, now: float) -> float:
        """0 when a message may start at ``now`` (recorded as started), else the seconds
        to wait before asking again."""
        starts, limit = self._starts, self._limit
        while starts and starts[0] <= now - limit.per:
            starts.popleft()
        if len(starts) < limit.messages:
            starts.append(now)
            return 0.0
        return starts[0] + limit.per - now


def check_count(name: str, value: object) -> None:
    """``usage_error`` unless ``value`` is a positive int (``wire.fields``)."""
    check_int(name, value, minimum=1, error=usage_error)


def check_seconds(
    name: str, value: object, *, allow_zero: bool = False, allow_inf: bool = False
) -> None:
    """``usage_error`` unless ``value`` is a number of seconds: positive (or zero, or
    infinite, when allowed), never NaN (``wire.fields``)."""
    fields.check_seconds(name, value, allow_zero=allow_zero, allow_inf=allow_inf, error=usage_error)


#: Rounds of a pool's ``send_many`` in a row that delivered nothing and took no message
#: or lost their connection, before the batch stops (a server that drops every new
#: connection, or takes no message on it, must not make the pool loop).
MAX_FRUITLESS_ROUNDS = 3


def reusable(recipients: str | Iterable[str]) -> str | Iterable[str]:
    """``recipients`` in a form read more than once (counted, then sent): a tuple of
    an iterable; a str, or what is no iterable (the client refuses it), as it is."""
    if isinstance(recipients, str):
        return recipients
    try:
        return tuple(recipients)
    except TypeError:
        return recipients


def split_over_count(recipients: str | Iterable[str], options: MailOptions | None) -> int:
    """The recipients ``sendmail`` splits over transactions under RCPTMAX (1 when it
    sends one: a single str, ``split_recipients=False``)."""
    if isinstance(recipients, str) or (options is not None and not options.split_recipients):
        return 1
    try:
        return len(recipients)  # type: ignore[arg-type]  # a tuple (``reusable``)
    except TypeError:
        return 1


#: ``PoolBatch``'s empty hold (a message may be any object the client then refuses).
_NOTHING: Final = object()


class PoolBatch:
    """The caller's messages and their outcomes for one pool ``send_many``.

    ``outcomes`` collects them in order unless ``on_outcome`` is given, which gets each
    one (index, outcome) instead, so memory stays flat. An ``Exception`` from the
    caller's iterator ends the batch (``raised``; ``finish`` raises
    ``SMTPBatchInterrupted``); anything else it raises propagates."""

    __slots__ = (
        "_emit",
        "_held",
        "_items",
        "delivered",
        "ended",
        "failed",
        "outcomes",
        "raised",
        "taken",
    )

    def __init__(self, messages: Iterator[BatchItem], on_outcome: OutcomeCallback | None) -> None:
        self._items = messages
        self._held: object = _NOTHING
        self.outcomes: list[Outcome] = []
        self._emit = on_outcome if on_outcome is not None else self._collect
        #: Messages taken from the iterator (the next one's index).
        self.taken = 0
        #: Messages delivered (to at least one recipient) so far.
        self.delivered = 0
        #: No message will be taken any more (the iterator ended or raised, or ``stop``).
        self.ended = False
        #: The caller's ``on_outcome`` raised: the batch ends with that exception.
        self.failed = False
        self.raised: Exception | None = None

    def _collect(self, index: int, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def peek(self) -> bool:
        """Whether a message is left: it is then read and held for the next ``take``."""
        if self._held is not _NOTHING:
            return True
        if self.ended:
            return False
        try:
            self._held = next(self._items)
        except StopIteration:
            self.ended = True
        except Exception as error:  # the caller's: finish what was taken, then raise it
            self.raised = error
            self.ended = True
        return self._held is not _NOTHING

    def take(self) -> BatchItem:
        """The next message (``StopIteration`` when none is left)."""
        if not self.peek():
            raise StopIteration
        item, self._held = self._held, _NOTHING
        self.taken += 1
        return item  # type: ignore[return-value]  # what the caller's iterator gave

    def report(self, index: int, outcome: Outcome) -> None:
        """Hand on the outcome of the message of ``index`` (in order)."""
        if type(outcome) is TransactionResult:
            self.delivered += 1
        try:
            self._emit(index, outcome)
        except BaseException:
            self.failed = True
            raise

    def stop(self, error: SMTPError) -> None:
        """The batch cannot go on: the next message, if any (read from the iterator,
        nothing of it sent), gets ``error`` as its outcome; the rest is not read."""
        if self.peek():
            self._held = _NOTHING
            self.taken += 1
            self.report(self.taken - 1, smtplib_compatible(error))
        self.ended = True

    def finish(self) -> list[Outcome]:
        """The outcomes (empty with ``on_outcome``); ``SMTPBatchInterrupted`` when the
        caller's iterator raised."""
        if self.raised is not None:
            interrupted = SMTPBatchInterrupted(self.raised, self.outcomes)
            raise smtplib_compatible(interrupted) from self.raised
        return self.outcomes


class Lease:
    """The messages of one round, for the client's ``send_many``: ``batch``'s next
    ones while ``may_take(taken)`` (``taken``: how many this round has taken) allows
    one more, then the end. ``report`` is the client's ``on_outcome``: it passes each
    outcome on under the caller's index."""

    __slots__ = ("_batch", "_may_take", "base", "taken")

    def __init__(self, batch: PoolBatch, may_take: Callable[[int], bool]) -> None:
        self._batch = batch
        self._may_take = may_take
        self.base = batch.taken
        #: Messages this round has taken.
        self.taken = 0

    def __iter__(self) -> Lease:
        return self

    def __next__(self) -> BatchItem:
        if not self._may_take(self.taken) or not self._batch.peek():
            raise StopIteration
        item = self._batch.take()
        self.taken += 1
        return item

    def report(self, index: int, outcome: Outcome) -> None:
        self._batch.report(self.base + index, outcome)
