"""What the pools (``async_pool`` and the generated ``sync_pool``) share that never
waits: their option types and checks, the rate limit, how many recipients a message
is split over (``split_over_count``: whether a connection's LIMITS MAILMAX budget
takes it), and the bookkeeping of a pool's ``send_many`` (``PoolBatch``, ``Lease``).

The rate limit lets at most ``messages`` messages start in any window of ``per``
seconds (a sliding window, so no burst at a window edge exceeds it). ``RateWindow``
only does arithmetic on the times it is given: the pool passes its clock's reading
(injectable for tests) and sleeps the delay it gets back.

A pool's ``send_many`` runs in *rounds*: each lends a connection and runs the
client's own pipelined ``send_many`` over a ``Lease``, an iterator that hands the
client the caller's messages while that connection may take more (its
``max_messages``, its age, the server's LIMITS MAILMAX budget, RFC 9422 §4.1, the rate
limit) and then ends, so the client finishes what it took and returns; the next round
goes on from the next message on another connection. With ``connections=N``, N chains
of rounds run at once. ``PoolBatch`` holds what they share: the caller's iterator,
read one message at a time (``peek`` holds the next one before a connection is lent
for it, so none is opened for nothing), and the outcomes, handed on in the caller's
order (each ``Lease`` knows the caller's index of every message it took; one known
early waits in ``PoolBatch`` for those before it, ``REORDER_LIMIT`` bounding how many).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Final, Literal

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
    "REORDER_LIMIT",
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

    def give_back(self, start: float) -> None:
        """Uncount a start ``delay`` recorded at ``start`` for a message that then did
        not start (nothing when it has left the window already)."""
        with contextlib.suppress(ValueError):
            self._starts.remove(start)


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
#: The least ``PoolBatch.limit``: messages a batch on several connections takes
#: beyond the oldest one without an outcome, whose outcomes wait for it.
REORDER_LIMIT = 1024


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
    """The caller's messages and their outcomes for one pool ``send_many``, shared by
    its rounds (one after another, or on several connections at once).

    ``outcomes`` collects them in the caller's order unless ``on_outcome`` is given,
    which gets each one (index, outcome) instead, in that order too: an outcome known
    before an earlier one waits for it (the rounds stop taking messages ``ahead``
    of the oldest unreported one, so few wait). An ``Exception`` from the caller's
    iterator ends the batch (``raised``; ``finish`` raises ``SMTPBatchInterrupted``);
    anything else it raises propagates. ``lock`` guards all of it, the caller's
    iterator and ``on_outcome`` included (the blocking pool's threads: a real lock;
    the tasks of one event loop: none needed)."""

    __slots__ = (
        "_emit",
        "_held",
        "_items",
        "_lock",
        "_pending",
        "ended",
        "error",
        "failed",
        "limit",
        "outcomes",
        "raised",
        "reported",
        "taken",
        "workers",
    )

    def __init__(
        self,
        messages: Iterator[BatchItem],
        on_outcome: OutcomeCallback | None,
        lock: AbstractContextManager[Any],
        limit: int,
    ) -> None:
        self._items = messages
        self._lock = lock
        self._held: object = _NOTHING
        self._pending: dict[int, Outcome] = {}  # known, waiting for an earlier one
        self.outcomes: list[Outcome] = []
        self._emit = on_outcome if on_outcome is not None else self._collect
        #: Messages taken from the iterator (the next one's index).
        self.taken = 0
        #: Outcomes handed on (the next one's index).
        self.reported = 0
        #: Messages taken but not reported beyond which no round takes another.
        self.limit = limit
        #: No message will be taken any more (the iterator ended or raised, ``stop``).
        self.ended = False
        #: The caller's ``on_outcome`` raised: the batch ends with that exception.
        self.failed = False
        self.raised: Exception | None = None
        #: What ended a round on another connection (``abandon``), raised at the end.
        self.error: BaseException | None = None
        #: Rounds at work on the batch (``leave``).
        self.workers = 1

    def _collect(self, index: int, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def peek(self) -> bool:
        """Whether a message is left: it is then read and held for the next ``take``."""
        with self._lock:
            return self._peek()

    def _peek(self) -> bool:
        if self.failed or self.error is not None:
            # The batch has failed (``on_outcome`` raised, or ``abandon``): a message
            # read before that is never sent now, its outcome could not be reported.
            return False
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

    @property
    def ahead(self) -> bool:
        """Whether ``limit`` messages are taken and not reported."""
        return self.taken - self.reported >= self.limit

    def take(self, allowed: Callable[[], bool] | None = None) -> tuple[int, BatchItem] | None:
        """The next message and its index (None when none is left, or ``allowed()``,
        asked only when there is one, says no: it may count the message as started,
        as the rate window does)."""
        with self._lock:
            if self.ahead or not self._peek() or (allowed is not None and not allowed()):
                return None
            item, self._held = self._held, _NOTHING
            self.taken += 1
            return self.taken - 1, item  # type: ignore[return-value]  # the caller's

    def report(self, index: int, outcome: Outcome) -> None:
        """Hand on the outcome of the message of ``index``, and any that waited for it
        (nothing once the batch was abandoned)."""
        with self._lock:
            if self.failed or self.error is not None:
                return
            pending = self._pending
            pending[index] = outcome
            try:
                while self.reported in pending:
                    self._emit(self.reported, pending.pop(self.reported))
                    self.reported += 1
            except BaseException:
                self.failed = True
                self.ended = True
                raise

    def stop(self, error: SMTPError) -> None:
        """The batch cannot go on: the next message, if any (read from the iterator,
        nothing of it sent), gets ``error`` as its outcome; the rest is not read."""
        with self._lock:
            index = None
            if self._peek():
                self._held = _NOTHING
                self.taken += 1
                index = self.taken - 1
            self.ended = True
        if index is not None:
            self.report(index, smtplib_compatible(error))

    def leave(self) -> bool:
        """Stop one round's work on the batch, unless it is the last at work (False:
        the batch needs it)."""
        with self._lock:
            if self.workers == 1:
                return False
            self.workers -= 1
            return True

    def abandon(self, error: BaseException) -> None:
        """A round on another connection failed with ``error`` (kept: the first):
        take no more messages, report no more outcomes."""
        with self._lock:
            self.ended = True
            if self.error is None:
                self.error = error

    def finish(self) -> list[Outcome]:
        """The outcomes (empty with ``on_outcome``); what ``abandon`` kept, or
        ``SMTPBatchInterrupted`` when the caller's iterator raised."""
        if self.error is not None:
            raise self.error
        if self.raised is not None:
            interrupted = SMTPBatchInterrupted(self.raised, self.outcomes)
            raise smtplib_compatible(interrupted) from self.raised
        assert self.failed or self.reported == self.taken, "a message has no outcome"
        return self.outcomes


class Lease:
    """The messages of one round, for the client's ``send_many``: ``batch``'s next
    ones while ``may_take(taken)`` (``taken``: how many this round has taken) allows
    one more, then the end; ``may_take`` is asked only when a message is there to take
    (the rate window counts it as started). ``report`` is the client's ``on_outcome``:
    it passes each outcome on under the caller's index (the client reports in its own
    order)."""

    __slots__ = ("_batch", "_indexes", "_may_take", "delivered", "taken")

    def __init__(self, batch: PoolBatch, may_take: Callable[[int], bool]) -> None:
        self._batch = batch
        self._may_take = may_take
        self._indexes: deque[int] = deque()  # of the messages taken, not reported yet
        #: Messages this round has taken, and delivered (to at least one recipient).
        self.taken = self.delivered = 0

    def __iter__(self) -> Lease:
        return self

    def __next__(self) -> BatchItem:
        # Asked only when there is a message to take: the rate window counts it started.
        taken = self._batch.take(self._allowed)
        if not taken:
            raise StopIteration
        index, item = taken
        self._indexes.append(index)
        self.taken += 1
        return item

    def _allowed(self) -> bool:
        return self._may_take(self.taken)

    def report(self, index: int, outcome: Outcome) -> None:
        if type(outcome) is TransactionResult:
            self.delivered += 1
        self._batch.report(self._indexes.popleft(), outcome)
