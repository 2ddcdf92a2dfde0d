"""``PoolBatch`` and ``Lease`` (``adapters/pool_support``), the bookkeeping of a pool's
``send_many``, without a network: several leases take the caller's messages in any
interleaving and their clients report the outcomes in any interleaving (each client
in its own order, as ``send_many``'s ``on_outcome`` does). Whatever the schedule, the
caller gets every outcome once, in the order of the iterable, each for its own
message; no more than ``limit`` messages are ever taken and not reported; the
iterator is read only when a message is about to be taken."""

from __future__ import annotations

import contextlib
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
