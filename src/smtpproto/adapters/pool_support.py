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
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Final, Literal

from ..client_engine.events import TransactionResult
from ..drivers.exceptions import SMTPBatchInterrupted, SMTPError
from ..drivers.support import MailOptions
from ..wire import fields
from ..wire.fields import check_int
from .common import usage_error
from .smtplib_compat import smtplib_compatible

if TYPE_CHECKING:  # type aliases only: no runtime import of the batch driver
    from ..drivers.batch import BatchItem, Outcome, OutcomeCallback

__all__ = [
    "DEFAULT_CHECK_IDLE_AFTER",
    "GAVE_WAY",
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
    "held_by_caller_code",
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
#: What ``PoolBatch.take`` returns when its round should give its connection back
#: rather than wait for the caller's code (falsy, as None: the lease ends).
GAVE_WAY: Final = ()
#: The lock of the blocking pool's batches (``threading.Lock`` is a function before 3.13).
_LOCK_TYPE: Final = type(threading.Lock())


class _CallerCode(threading.local):
    """What the caller's code (the iterable, ``on_outcome``) running in this thread
    holds: the pool connection of the round that called it, if any."""

    holding: object = None


_CALLER = _CallerCode()


def held_by_caller_code() -> object:
    """The connection held by the round whose caller's code is running in this thread
    (None outside it, or when that code runs between rounds)."""
    return _CALLER.holding


class PoolBatch:
    """The caller's messages and their outcomes for one pool ``send_many``, shared by
    its rounds (one after another, or on several connections at once).

    ``outcomes`` collects them in the caller's order unless ``on_outcome`` is given,
    which gets each one (index, outcome) instead, in that order too: an outcome known
    before an earlier one waits for it (the rounds stop taking messages ``ahead``
    of the oldest unreported one, so few wait). An ``Exception`` from the caller's
    iterator ends the batch (``raised``; ``finish`` raises ``SMTPBatchInterrupted``);
    anything else it raises propagates.

    ``lock`` guards the bookkeeping (the blocking pool's threads: a real lock; the
    tasks of one event loop: none needed) and is never held while the caller's code
    runs: that code may use the pool itself. It runs one call at a time (the *turn*:
    one round reads the iterator or hands outcomes to ``on_outcome`` while the others
    go on; an outcome reported meanwhile is handed on by the round whose turn it is,
    or the next one to report, or to look for a message). A round that needs the
    iterator while another has the turn waits for it, unless ``wanted()`` says a
    caller of the pool waits for a connection: it then gives its own back (``take``
    returns ``GAVE_WAY``), since the code running may be waiting for one. Only the
    blocking pool's threads can ever find the turn taken: the caller's code is plain
    functions, which an event loop runs to their end before another task."""

    __slots__ = (
        "_busy",
        "_emit",
        "_held",
        "_items",
        "_lock",
        "_mark",
        "_over",
        "_pending",
        "_turn",
        "_wanted",
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
        wanted: Callable[[], bool] | None = None,
    ) -> None:
        self._items = messages
        self._lock = lock
        # Waited on for the turn: only threads can find it taken (see the class doc);
        # only they need ``held_by_caller_code`` marked.
        self._turn = threading.Condition(lock) if isinstance(lock, _LOCK_TYPE) else None
        self._mark = self._turn is not None
        self._wanted = wanted
        self._busy = False  # a round has the turn: the caller's code may be running
        # The batch has failed (``on_outcome`` raised, or ``abandon``): a message read
        # before that is never sent now, its outcome could not be reported.
        self._over = False
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

    # -- the turn at the caller's code -------------------------------------------------------

    def _wait_for_turn(self) -> None:
        """Under the lock, the turn taken: wait until it is given back (or ``wake``)."""
        assert self._turn is not None, "only threads find the turn taken"
        self._turn.wait()

    def wake(self) -> None:
        """A caller of the pool started waiting for a connection: the rounds waiting
        for the turn look again whether to give theirs back."""
        if self._turn is not None:
            with self._lock:
                self._turn.notify_all()

    def _end_turn(self) -> None:
        """Under the lock: give the turn back."""
        self._busy = False
        if self._turn is not None:
            self._turn.notify_all()

    def _read(
        self, holding: object, allowed: Callable[[], bool] | None = None, taking: bool = False
    ) -> tuple[int, BatchItem] | None:
        """With the turn, without the lock: read the next message into the hold (or
        note the iterator's end, or its ``Exception``), then give the turn back;
        ``taking``: and take it, as ``take`` would."""
        if self._mark:
            before, _CALLER.holding = _CALLER.holding, holding
        item: object = _NOTHING
        raised = None
        try:
            item = next(self._items)
        except StopIteration:
            pass
        except Exception as error:  # the caller's: finish what was taken, then raise it
            raised = error
        except BaseException:
            with self._lock:
                self._end_turn()
            raise
        finally:
            if self._mark:
                _CALLER.holding = before
        with self._lock:
            self._end_turn()
            if item is _NOTHING:
                self.ended = True
                self.raised = raised
                return None
            self._held = item
            if not taking or self._over or self.taken - self.reported >= self.limit:
                return None
            return self._hand_out(allowed)

    def _hand_out(self, allowed: Callable[[], bool] | None) -> tuple[int, BatchItem] | None:
        """Under the lock, a message held: take it, unless ``allowed()`` says no."""
        if allowed is not None and not allowed():
            return None
        item, self._held = self._held, _NOTHING
        self.taken += 1
        return self.taken - 1, item  # type: ignore[return-value]  # the caller's

    def _hand_on(self, holding: object, index: int, outcome: Outcome) -> None:
        """With the turn: hand on ``outcome`` (of ``index``, whose turn has come) and
        every one whose turn comes after it, without the lock; then give the turn
        back."""
        if self._mark:
            before, _CALLER.holding = _CALLER.holding, holding
        try:
            while True:
                try:
                    self._emit(index, outcome)
                except BaseException:
                    with self._lock:
                        self.failed = self.ended = self._over = True
                        self._end_turn()
                    raise
                with self._lock:
                    self.reported = index = index + 1
                    if self._over or index not in self._pending:
                        self._end_turn()
                        return
                    outcome = self._pending.pop(index)
        finally:
            if self._mark:
                _CALLER.holding = before

    def _claim_hand_on(self) -> tuple[int, Outcome] | None:
        """Under the lock: when the turn is free and an outcome's turn has come, take
        the turn and that outcome."""
        if self._busy or self._over or self.reported not in self._pending:
            return None
        self._busy = True
        return self.reported, self._pending.pop(self.reported)

    # -- what the rounds ask -------------------------------------------------------------------

    def peek(self) -> bool:
        """Whether a message is left: it is then read and held for the next ``take``;
        the outcomes whose turn has come are handed on first. For a round holding no
        connection: it waits for the turn."""
        while True:
            with self._lock:
                while not self._over and self._busy:
                    self._wait_for_turn()
                if self._over:
                    return False
                first = self._claim_hand_on()
            if first is not None:
                self._hand_on(None, *first)
                continue
            with self._lock:
                if self._over or self._busy:  # another round's turn came meanwhile
                    continue
                if self._held is not _NOTHING:
                    return True
                if self.ended:
                    return False
                self._busy = True
            self._read(None)

    @property
    def ahead(self) -> bool:
        """Whether ``limit`` messages are taken and not reported."""
        return self.taken - self.reported >= self.limit

    def take(
        self, allowed: Callable[[], bool] | None = None, holding: object = None
    ) -> tuple[int, BatchItem] | tuple[()] | None:
        """The next message and its index (None when none is left, or ``allowed()``,
        asked only when there is one, says no: it may count the message as started,
        as the rate window does; ``GAVE_WAY``: the turn is taken and a caller of the
        pool waits for a connection). ``holding``: the round's connection, for the
        caller's code run meanwhile (``held_by_caller_code``). Outcomes reported while
        it reads wait for the next report, peek or finish: ``on_outcome`` raising must
        not look like the iterable raising."""
        with self._lock:
            while True:
                if self._over or self.taken - self.reported >= self.limit:
                    return None
                if self._held is not _NOTHING:
                    return self._hand_out(allowed)
                if self.ended:
                    return None
                if not self._busy:
                    break
                if self._wanted is not None and self._wanted():
                    return GAVE_WAY
                self._wait_for_turn()
            self._busy = True
        return self._read(holding, allowed, taking=True)

    def report(self, index: int, outcome: Outcome, holding: object = None) -> None:
        """Hand on the outcome of the message of ``index``, and any that waited for it
        (nothing once the batch was abandoned); when another round has the turn, that
        round or the next to report does."""
        with self._lock:
            if self._over:
                return
            if self._busy or index != self.reported:
                self._pending[index] = outcome
                return
            self._busy = True
        self._hand_on(holding, index, outcome)

    def stop(self, error: SMTPError) -> None:
        """The batch cannot go on: the next message, if any (read from the iterator,
        nothing of it sent), gets ``error`` as its outcome; the rest is not read."""
        index = None
        if self.peek():
            with self._lock:
                if self._held is not _NOTHING:
                    self._held = _NOTHING
                    self.taken += 1
                    index = self.taken - 1
        with self._lock:
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
            self.ended = self._over = True
            if self.error is None:
                self.error = error
            if self._turn is not None:
                self._turn.notify_all()

    def finish(self) -> list[Outcome]:
        """The outcomes (empty with ``on_outcome``); what ``abandon`` kept, or
        ``SMTPBatchInterrupted`` when the caller's iterator raised."""
        if self.error is not None:
            raise self.error
        with self._lock:  # every round has ended: hand on what is left
            first = self._claim_hand_on()
        if first is not None:
            self._hand_on(None, *first)
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
    order). ``holding``: the round's connection (``PoolBatch.take``); ``gave_way``:
    the lease ended to give it back to a caller of the pool waiting for one."""

    __slots__ = ("_batch", "_holding", "_indexes", "_may_take", "delivered", "gave_way", "taken")

    def __init__(
        self, batch: PoolBatch, may_take: Callable[[int], bool], holding: object = None
    ) -> None:
        self._batch = batch
        self._may_take = may_take
        self._holding = holding
        self._indexes: deque[int] = deque()  # of the messages taken, not reported yet
        #: Messages this round has taken, and delivered (to at least one recipient).
        self.taken = self.delivered = 0
        self.gave_way = False

    def __iter__(self) -> Lease:
        return self

    def __next__(self) -> BatchItem:
        # Asked only when there is a message to take: the rate window counts it started.
        taken = self._batch.take(self._allowed, self._holding)
        if not taken:
            self.gave_way = taken is not None  # GAVE_WAY
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
        self._batch.report(self._indexes.popleft(), outcome, self._holding)
