"""``PoolBatch`` and ``Lease`` (``adapters/pool_support``), the bookkeeping of a pool's
``send_many``, without a network: several leases take the caller's messages in any
interleaving and their clients report the outcomes in any interleaving (each client
in its own order, as ``send_many``'s ``on_outcome`` does). Whatever the schedule, the
caller gets every outcome once, in the order of the iterable, each for its own
message; no more than ``limit`` messages are ever taken and not reported; the
iterator is read only when a message is about to be taken."""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto.adapters.pool_support import Lease, PoolBatch
from smtpproto.exceptions import SMTPBatchInterrupted, SMTPConnectError


class Outcome(SMTPConnectError):
    """An outcome that says which message it is for."""

    def __init__(self, item: object) -> None:
        super().__init__(f"outcome of {item!r}")
        self.item = item


def counted(count: int, reads: list[int]) -> Any:
    for index in range(count):
        reads.append(index)
        yield ("s@x.test", ["r@x.test"], index)


@given(
    count=st.integers(0, 30),
    leases=st.integers(1, 4),
    limit=st.integers(1, 6),
    schedule=st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=200),
)
def test_outcomes_in_order_whatever_the_schedule(
    count: int, leases: int, limit: int, schedule: list[tuple[int, bool]]
) -> None:
    reads: list[int] = []
    got: list[tuple[int, Any]] = []
    batch = PoolBatch(
        counted(count, reads), lambda i, o: got.append((i, o)), contextlib.nullcontext(), limit
    )
    open_leases = [Lease(batch, lambda taken: True) for _ in range(leases)]
    taken: list[deque[tuple[int, Any]]] = [deque() for _ in range(leases)]

    def complete(which: int) -> None:
        local, item = taken[which].popleft()
        open_leases[which].report(local, Outcome(item))

    def take(which: int) -> None:
        lease = open_leases[which]
        local = lease.taken
        item = next(lease, None)
        if item is not None:
            taken[which].append((local, item))

    for which, taking in schedule:
        which %= leases
        if taking or not taken[which]:
            take(which)
        else:
            complete(which)
        assert batch.taken - batch.reported <= limit
        assert len(reads) <= batch.taken + 1  # read only to take (one held at most)
    for which in range(leases):  # every client finishes what it took, then takes the rest
        while taken[which]:
            complete(which)
    while batch.peek():
        take(0)
        complete(0)
    assert [i for i, _ in got] == list(range(count))
    assert [o.item[2] for _, o in got] == list(range(count))
    assert batch.finish() == []


def test_stop_gives_the_next_message_the_error_and_reads_no_further() -> None:
    reads: list[int] = []
    batch = PoolBatch(counted(5, reads), None, contextlib.nullcontext(), 10)
    lease = Lease(batch, lambda taken: taken < 2)
    assert [item[2] for item in lease] == [0, 1]  # the lease ends at its room
    lease.report(0, Outcome(0))
    lease.report(1, Outcome(1))
    batch.stop(SMTPConnectError("no connection"))
    assert reads == [0, 1, 2] and not batch.peek()
    outcomes = batch.finish()
    assert [str(o) for o in outcomes][2] == "no connection"
    assert len(outcomes) == 3


def test_the_iterator_raising_ends_the_batch_after_what_was_taken() -> None:
    def items() -> Any:
        yield ("s@x.test", ["r@x.test"], b"a")
        raise ValueError("broken")

    batch = PoolBatch(items(), None, contextlib.nullcontext(), 10)
    lease = Lease(batch, lambda taken: True)
    assert len(list(lease)) == 1
    lease.report(0, Outcome(0))
    with pytest.raises(SMTPBatchInterrupted) as caught:
        batch.finish()
    assert isinstance(caught.value.error, ValueError)
    assert isinstance(caught.value.__cause__, ValueError)
    assert len(caught.value.outcomes) == 1


def test_on_outcome_raising_reports_nothing_more() -> None:
    calls: list[int] = []

    def on_outcome(index: int, outcome: object) -> None:
        calls.append(index)
        raise KeyError(index)

    batch = PoolBatch(counted(3, []), on_outcome, contextlib.nullcontext(), 10)
    lease = Lease(batch, lambda taken: True)
    assert len(list(lease)) == 3
    with pytest.raises(KeyError):
        lease.report(0, Outcome(0))
    lease.report(1, Outcome(1))
    assert calls == [0] and batch.failed and not batch.peek()


# -- the caller's code runs without the lock, one call at a time ------------------------------

#: Seconds a thread of these tests may take; none waits longer (a test never hangs).
LIMIT = 10.0


def test_the_callers_code_never_runs_under_the_lock() -> None:
    """The iterator and ``on_outcome`` may use the pool (which would wait for another
    round, which would wait for this lock): neither is called with it held."""
    lock = threading.Lock()
    locked: list[bool] = []

    def items() -> Any:
        for index in range(4):
            locked.append(lock.locked())
            yield ("s@x.test", ["r@x.test"], index)

    batch = PoolBatch(items(), lambda i, o: locked.append(lock.locked()), lock, 10)
    lease = Lease(batch, lambda taken: True)
    for local, item in enumerate(list(lease)):
        lease.report(local, Outcome(item))
    assert batch.peek() is False and batch.finish() == []
    assert locked == [False] * 8


def test_a_round_reports_without_waiting_for_on_outcome_running_elsewhere() -> None:
    """While ``on_outcome`` runs in one thread (here: until told to return), another
    round's report returns at once; its outcome is handed on afterwards, in order,
    by the thread whose turn it is. A round that then needs the iterator waits for the
    turn, or gives its connection back (``GAVE_WAY``) when the pool is wanted."""
    entered, release = threading.Event(), threading.Event()
    got: list[int] = []
    wanted: list[bool] = [False]

    def on_outcome(index: int, outcome: object) -> None:
        got.append(index)
        if index == 0:
            entered.set()
            assert release.wait(LIMIT)

    batch = PoolBatch(counted(4, []), on_outcome, threading.Lock(), 10, lambda: wanted[0])
    first, second = Lease(batch, lambda taken: True), Lease(batch, lambda taken: True)
    item0, item1 = next(first), next(second)
    reporter = threading.Thread(target=first.report, args=(0, Outcome(item0)), daemon=True)
    reporter.start()
    assert entered.wait(LIMIT)
    second.report(0, Outcome(item1))  # returns at once: the turn is the reporter's
    assert got == [0]
    wanted[0] = True
    assert next(second, None) is None and second.gave_way  # gives way, does not wait
    wanted[0] = False
    taker_got: list[object] = []
    taker = threading.Thread(target=lambda: taker_got.append(next(first)), daemon=True)
    taker.start()
    taker.join(0.05)
    assert taker.is_alive() and not taker_got  # waits for the turn
    release.set()
    reporter.join(LIMIT)
    taker.join(LIMIT)
    assert not reporter.is_alive() and not taker.is_alive()
    assert got == [0, 1] and [item[2] for item in taker_got] == [2]  # type: ignore[index]


def test_once_on_outcome_raised_no_round_takes_a_message() -> None:
    """With a real lock too: the batch has failed, the next take ends the lease (not
    as giving way), and the iterable is not blamed (``raised`` stays None)."""

    def on_outcome(index: int, outcome: object) -> None:
        raise KeyError(index)

    batch = PoolBatch(counted(5, []), on_outcome, threading.Lock(), 10)
    lease = Lease(batch, lambda taken: True)
    first = next(lease)
    with pytest.raises(KeyError):
        lease.report(0, Outcome(first))
    assert next(lease, None) is None and not lease.gave_way
    assert batch.failed and batch.raised is None and not batch.peek()
