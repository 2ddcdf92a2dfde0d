"""``send_many`` on the three pools (docs/pool.md, "Batches"), and LIMITS MAILMAX
(RFC 9422 §4.1) moving the rest of a batch, or a message split under RCPTMAX (§4.2),
to a new connection.

Every test drives ``SMTPPool``, ``AsyncSMTPPool`` and ``TrioSMTPPool`` in turn
(``pool_facade``) against the built-in server on 127.0.0.1 (which advertises LIMITS
and answers 451 past MAILMAX, and whose rules refuse, drop or stall on purpose) and
judges the pool by what the server stored: each message at most once, in order, and
nothing past the limit (no 451 in the transcript).
"""

from __future__ import annotations

import concurrent.futures
import re
import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpproto.client_engine.events import TransactionResult
from smtpproto.exceptions import (
    SMTPBatchInterrupted,
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPDeliveryTimeoutError,
    SMTPError,
    SMTPProtocolError,
    SMTPReplyError,
)
from smtpproto.testing import Accept, Drop, Respond, Rule, Tarpit, run_server

from .pool_facade import FakeClock, PoolFacade, make_pool
from .pool_server import flaky_server

__all__ = ["make_pool"]  # the fixture, used by name

MakePool = Callable[..., PoolFacade]
TIMEOUT = 10.0


def message(index: int) -> bytes:
    return b"Subject: m%d\r\n\r\nbody %d\r\n" % (index, index)


def batch(count: int, *, same: bool = True) -> list[tuple[str, list[str], bytes]]:
    """``count`` messages, each content distinct; one envelope or one per message."""
    return [
        ("s@x.test" if same else f"s{i}@x.test", ["r@x.test"], message(i)) for i in range(count)
    ]


def pool_for(make_pool: MakePool, server: Any, **options: Any) -> PoolFacade:
    return make_pool(host=server.host, port=server.port, **options)


def per_connection(lines: list[str], prefix: str = "C: MAIL") -> list[int]:
    """How many transcript lines start with ``prefix`` on each connection, in order
    (the rounds of one ``send_many`` are sequential, so connections do not overlap)."""
    counts: list[int] = []
    for line in lines:
        if line.startswith("* connection from"):
            counts.append(0)
        elif line.startswith(prefix):
            counts[-1] += 1
    return counts


def stored_once(server: Any, count: int) -> list[bytes]:
    stored = [m.data for m in server.wait_for_messages(count, timeout=TIMEOUT)]
    assert len(stored) == len(set(stored)) == count, "a message was stored twice"
    return stored


# -- the batch: order, outcomes, the iterable ---------------------------------------------------


@pytest.mark.parametrize("chunking", [None, False], ids=["bdat", "data"])
def test_outcomes_in_order_with_refusals(make_pool: MakePool, chunking: bool | None) -> None:
    """Refused messages get their refusal in place; the others are stored once, in
    order, over one connection (nothing forces another)."""
    refused = {2, 5, 6}
    rules = [Rule(stage="mail", sender=f"s{i}@x.test", action=Respond(550, "no")) for i in refused]
    lines: list[str] = []
    with run_server(starttls=False, rules=rules, transcript=lines.append) as server:
        pool = pool_for(make_pool, server)
        outcomes = pool.call("send_many", batch(10, same=False), chunking=chunking)
        stored = stored_once(server, 10 - len(refused))
    assert len(outcomes) == 10
    for index, outcome in enumerate(outcomes):
        if index in refused:
            assert isinstance(outcome, SMTPReplyError) and outcome.code == 550, outcome
        else:
            assert isinstance(outcome, TransactionResult)
            assert outcome.sender == f"s{index}@x.test"
    assert stored == [message(i) for i in range(10) if i not in refused]
    assert len(per_connection(lines)) == 1
    assert pool.pool.idle_connections == 1  # given back, usable


def test_on_outcome_streams_in_order_and_keeps_nothing(make_pool: MakePool) -> None:
    seen: list[tuple[int, bool]] = []
    with run_server(starttls=False, mailmax=3) as server:
        pool = pool_for(make_pool, server)
        result = pool.call(
            "send_many",
            iter(batch(8)),
            on_outcome=lambda index, outcome: seen.append(
                (index, isinstance(outcome, TransactionResult))
            ),
        )
        stored_once(server, 8)
    assert result == []
    assert seen == [(i, True) for i in range(8)]


def test_an_empty_batch_opens_no_connection(make_pool: MakePool) -> None:
    lines: list[str] = []
    with run_server(starttls=False, transcript=lines.append) as server:
        pool = pool_for(make_pool, server)
        assert pool.call("send_many", iter(())) == []
        assert pool.pool.connections == 0
    assert not lines


@pytest.mark.parametrize("connections", [1, 3])
def test_the_iterable_raising_finishes_what_was_taken(
    make_pool: MakePool, connections: int
) -> None:
    """Across MAILMAX boundaries too: the nine messages before the error are each
    delivered once (in order over one connection), none is left lent out, and
    ``SMTPBatchInterrupted`` carries their outcomes, in order."""

    def messages() -> Iterator[tuple[str, list[str], bytes]]:
        yield from batch(9, same=False)
        raise ValueError("no more")

    with run_server(starttls=False, mailmax=2) as server:
        pool = pool_for(make_pool, server)
        with pytest.raises(SMTPBatchInterrupted) as caught:
            pool.call("send_many", messages(), connections=connections)
        stored = stored_once(server, 9)
        assert pool.pool.connections == pool.pool.idle_connections <= connections
    assert isinstance(caught.value.error, ValueError)
    assert isinstance(caught.value.__cause__, ValueError)
    assert isinstance(caught.value, smtplib.SMTPException)  # as the clients' is
    assert [o.sender for o in caught.value.outcomes] == [f"s{i}@x.test" for i in range(9)]
    expected = [message(i) for i in range(9)]
    assert (stored if connections == 1 else sorted(stored)) == expected


def test_an_iterable_raising_at_once(make_pool: MakePool) -> None:
    def messages() -> Iterator[tuple[str, list[str], bytes]]:
        raise KeyError("first")
        yield  # pragma: no cover  # a generator

    lines: list[str] = []
    with run_server(starttls=False, transcript=lines.append) as server:
        pool = pool_for(make_pool, server)
        with pytest.raises(SMTPBatchInterrupted) as caught:
            pool.call("send_many", messages())
    assert caught.value.outcomes == [] and not lines


class Stop(Exception):
    """The caller's ``on_outcome`` raising."""


@pytest.mark.parametrize("connections", [1, 3])
def test_on_outcome_raising_ends_the_batch(make_pool: MakePool, connections: int) -> None:
    """``on_outcome`` is never called again, the rest of the iterable is not read, no
    message is stored twice. One connection: the client closed it (never lent again);
    three: the others finished what they had taken and went back to the pool."""
    calls: list[int] = []

    def on_outcome(index: int, outcome: object) -> None:
        calls.append(index)
        if index == 2:
            raise Stop

    with run_server(starttls=False) as server:
        pool = pool_for(make_pool, server)
        items = iter(batch(200))
        with pytest.raises(Stop):
            pool.call(
                "send_many", items, on_outcome=on_outcome, connections=connections, max_in_flight=2
            )
        if connections == 1:
            assert pool.pool.connections == 0
        assert pool.pool.connections == pool.pool.idle_connections  # none lent out
        rest = list(items)
    assert calls == [0, 1, 2]
    assert rest  # the batch stopped taking messages
    stored = [m.data for m in server.messages]
    assert len(stored) == len(set(stored)) <= 200 - len(rest)


def test_bad_arguments_are_caller_mistakes(make_pool: MakePool) -> None:
    lines: list[str] = []
    with run_server(starttls=False, transcript=lines.append) as server:
        pool = pool_for(make_pool, server)
        for kwargs in ({"max_in_flight": 0}, {"max_in_flight": True}, {"on_outcome": 3}):
            with pytest.raises(SMTPProtocolError):
                pool.call("send_many", batch(1), **kwargs)
        with pytest.raises(SMTPProtocolError, match="iterable"):
            pool.call("send_many", 42)
        with pytest.raises(SMTPProtocolError, match="destination"):
            pool.call("send_many", batch(1), destination="127.0.0.1")
    assert not lines  # refused before connecting


def test_a_closed_pool_refuses_a_batch_before_reading_it(make_pool: MakePool) -> None:
    reads: list[int] = []

    def messages() -> Iterator[tuple[str, list[str], bytes]]:
        reads.append(0)
        yield from batch(1)

    with run_server(starttls=False) as server:
        pool = pool_for(make_pool, server)
        pool.call("close" if pool.adapter == "blocking" else "aclose")
        with pytest.raises(SMTPProtocolError, match="closed"):
            pool.call("send_many", messages())
    assert not reads


def test_a_refusal_of_the_call_by_the_server_is_the_next_outcome(
    make_pool: MakePool, smtp_sink: Any
) -> None:
    """``chunking=True`` and Postfix smtp-sink, which offers no CHUNKING: refused
    before any message is taken, the same on any connection, so the first message
    gets the refusal, the rest is not read, and the connection stays in the pool."""
    pool = make_pool(host=smtp_sink.host, port=smtp_sink.port)
    items = iter(batch(3))
    outcomes = pool.call("send_many", items, chunking=True)
    assert len(outcomes) == 1 and isinstance(outcomes[0], SMTPProtocolError)
    assert "CHUNKING" in str(outcomes[0])
    assert next(items)[2] == message(1)
    assert (pool.pool.connections, pool.pool.idle_connections) == (1, 1)


def test_a_batch_over_smtp_sink(make_pool: MakePool, smtp_sink: Any) -> None:
    pool = make_pool(host=smtp_sink.host, port=smtp_sink.port, max_messages=3)
    outcomes = pool.call("send_many", batch(8, same=False))
    assert [type(o) for o in outcomes] == [TransactionResult] * 8
    received = smtp_sink.wait_for_messages(8, timeout=TIMEOUT)
    assert sorted(m.mail_from for m in received) == sorted(f"s{i}@x.test" for i in range(8))


def test_a_batch_over_aiosmtpd(make_pool: MakePool, aiosmtpd_factory: Any) -> None:
    peer = aiosmtpd_factory()
    pool = make_pool(host=peer.host, port=peer.port, max_messages=2)
    outcomes = pool.call("send_many", batch(5, same=False))
    assert [type(o) for o in outcomes] == [TransactionResult] * 5
    received = peer.wait_for_messages(5, timeout=TIMEOUT)
    assert [m.mail_from for m in received] == [f"s{i}@x.test" for i in range(5)]


# -- MAILMAX: the rest of the batch moves to a new connection ------------------------------------


@pytest.mark.parametrize("mailmax", [1, 2, 3])
@pytest.mark.parametrize("chunking", [None, False], ids=["bdat", "data"])
@pytest.mark.parametrize("same", [True, False], ids=["repeated", "distinct"])
def test_a_batch_crossing_mailmax_moves_on(
    make_pool: MakePool, mailmax: int, chunking: bool | None, same: bool
) -> None:
    count = 7
    lines: list[str] = []
    with run_server(starttls=False, mailmax=mailmax, transcript=lines.append) as server:
        pool = pool_for(make_pool, server)
        outcomes = pool.call("send_many", batch(count, same=same), chunking=chunking)
        stored = stored_once(server, count)
        pool.close()
    assert [type(o) for o in outcomes] == [TransactionResult] * count
    assert stored == [message(i) for i in range(count)]
    full, rest = divmod(count, mailmax)
    assert per_connection(lines) == [mailmax] * full + ([rest] if rest else [])
    assert not [line for line in lines if line.startswith("S: 451")]  # never past it


def test_a_batch_after_single_sends_uses_what_the_connection_has_left(make_pool: MakePool) -> None:
    lines: list[str] = []
    with run_server(starttls=False, mailmax=3, transcript=lines.append) as server:
        pool = pool_for(make_pool, server)
        pool.send()
        outcomes = pool.call("send_many", batch(4))
        stored_once(server, 5)
    assert [type(o) for o in outcomes] == [TransactionResult] * 4
    assert per_connection(lines) == [3, 2]
    assert not [line for line in lines if line.startswith("S: 451")]


def test_max_messages_moves_the_batch_on(make_pool: MakePool) -> None:
    lines: list[str] = []
    with run_server(starttls=False, transcript=lines.append) as server:
        pool = pool_for(make_pool, server, max_messages=4)
        outcomes = pool.call("send_many", batch(10))
        stored_once(server, 10)
    assert [type(o) for o in outcomes] == [TransactionResult] * 10
    assert per_connection(lines) == [4, 4, 2]


def test_a_split_that_needs_more_than_the_connection_has_left_gets_a_new_one(
    make_pool: MakePool,
) -> None:
    """RCPTMAX=2, MAILMAX=3: after one message the connection has two transactions
    left; five recipients need three, so the pool sends them over a new connection
    instead of letting the client refuse them. Seven recipients need four, more than
    any connection has: the client's refusal, after one new connection only."""
    five = [f"r{i}@x.test" for i in range(5)]
    lines: list[str] = []
    with run_server(starttls=False, rcptmax=2, mailmax=3, transcript=lines.append) as server:
        pool = pool_for(make_pool, server)
        pool.send()
        result = pool.call("sendmail", "s@x.test", iter(five), message(1))
        assert result.delivered == tuple(five)
        with pytest.raises(SMTPProtocolError, match="need 4 transactions"):
            pool.call("sendmail", "s@x.test", [*five, "r5@x.test", "r6@x.test"], message(2))
        assert pool.pool.connections == 1  # the refusal left its connection usable
        stored = [m.data for m in server.wait_for_messages(4, timeout=TIMEOUT)]
    assert stored[1:] == [message(1)] * 3  # one transaction per RCPTMAX group
    assert per_connection(lines) == [1, 3, 0]
    assert not [line for line in lines if line.startswith("S: 451")]


def test_send_message_split_gets_a_new_connection(make_pool: MakePool) -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "s@x.test"
    msg["To"] = ", ".join(f"r{i}@x.test" for i in range(4))
    msg.set_content("hi\n")
    lines: list[str] = []
    with run_server(starttls=False, rcptmax=2, mailmax=2, transcript=lines.append) as server:
        pool = pool_for(make_pool, server)
        pool.send()
        result = pool.call("send_message", msg)
        assert len(result.delivered) == 4
        assert len(server.wait_for_messages(3, timeout=TIMEOUT)) == 3
    assert per_connection(lines) == [1, 2]


# -- connections that fail ----------------------------------------------------------------------


@pytest.mark.parametrize("chunking", [None, False], ids=["bdat", "data"])
def test_a_drop_after_the_final_dot_is_unknown_and_the_rest_moves_on(
    make_pool: MakePool, chunking: bool | None
) -> None:
    """The server stores message 3, then drops the connection without a reply: its
    outcome is "delivery status unknown", never resent; what the client had taken
    after it gets its outcome; the rest goes over a new connection."""
    rule = Rule(stage="data_end", sender="s3@x.test", action=Drop(deliver=True), times=1)
    lines: list[str] = []
    with run_server(starttls=False, rules=[rule], transcript=lines.append) as server:
        pool = pool_for(make_pool, server)
        outcomes = pool.call("send_many", batch(12, same=False), chunking=chunking, max_in_flight=2)
        delivered = [i for i, o in enumerate(outcomes) if isinstance(o, TransactionResult)]
        stored = stored_once(server, len(delivered) + 1)
    assert len(outcomes) == 12
    assert isinstance(outcomes[3], SMTPDeliveryStatusUnknown)
    assert outcomes[3].sender == "s3@x.test"
    assert delivered[:3] == [0, 1, 2] and delivered[-1] == 11
    assert message(3) in stored and stored.count(message(3)) == 1
    for index, outcome in enumerate(outcomes):  # the lost connection's messages
        if index not in delivered and index != 3:
            assert isinstance(outcome, SMTPError) and index > 3
            assert message(index) not in stored
    assert len(per_connection(lines)) == 2


def test_connections_that_all_drop_stop_the_batch(make_pool: MakePool) -> None:
    """Every MAIL dropped: each round takes one message and loses its connection;
    after ``MAX_FRUITLESS_ROUNDS`` of them the next message gets the reason and the
    rest is not read."""
    rule = Rule(stage="mail", action=Drop())
    lines: list[str] = []
    with run_server(starttls=False, rules=[rule], transcript=lines.append) as server:
        pool = pool_for(make_pool, server)
        items = iter(batch(10))
        outcomes = pool.call("send_many", items, chunking=False)
        assert not server.messages
    assert len(outcomes) == 4
    assert all(isinstance(o, SMTPError) for o in outcomes)
    assert isinstance(outcomes[3], SMTPConnectError) and "in a row" in str(outcomes[3])
    assert next(items)[2] == message(4)
    assert len(per_connection(lines)) == 3


@pytest.mark.parametrize("connections", [1, 3])
def test_no_connection_gives_the_first_message_the_error(
    make_pool: MakePool, connections: int
) -> None:
    """No server listens: the first message gets the connection's error, the rest is
    not read, on one connection or several (none opens)."""
    with run_server(starttls=False) as server:
        port = server.port
    pool = make_pool(host="127.0.0.1", port=port)
    items = iter(batch(5))
    outcomes = pool.call("send_many", items, connections=connections)
    assert len(outcomes) == 1 and isinstance(outcomes[0], SMTPConnectError)
    assert next(items)[2] == message(1)
    assert pool.pool.connections == 0


def test_a_server_that_stalls_times_out_once(make_pool: MakePool) -> None:
    """The final reply to message 1 never comes in time: it times out ("delivery
    status unknown", not resent), bounded by the client's timeout; the rest of the
    batch goes on over a new connection."""
    rule = Rule(stage="data_end", sender="s1@x.test", action=Tarpit(delay=3.0), times=1)
    with run_server(starttls=False, rules=[rule]) as server:
        pool = pool_for(make_pool, server, timeout=0.5)
        outcomes = pool.call("send_many", batch(4, same=False), chunking=False)
        assert len(outcomes) == 4
        assert isinstance(outcomes[0], TransactionResult)
        assert isinstance(outcomes[1], SMTPDeliveryTimeoutError)
        assert isinstance(outcomes[3], TransactionResult)
        stored = [m.data for m in server.wait_for_messages(3, timeout=TIMEOUT)]
    assert stored.count(message(0)) == stored.count(message(3)) == 1


# -- a property ----------------------------------------------------------------------------------


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    count=st.integers(0, 9),
    refused=st.sets(st.integers(0, 8), max_size=3),
    max_messages=st.integers(1, 5),
    stream=st.booleans(),
    connections=st.integers(1, 3),
)
def test_every_message_once_in_order(
    make_pool: MakePool,
    count: int,
    refused: set[int],
    max_messages: int,
    stream: bool,
    connections: int,
) -> None:
    """Whatever the batch, the refusals and the pool's ``max_messages`` (the server
    advertises MAILMAX=3): one outcome per message in order, each accepted message
    stored exactly once, no connection past MAILMAX."""
    tag = f"t{next(_EXAMPLES)}"
    rules = [
        Rule(stage="rcpt", recipient=f"{tag}-{i}@x.test", action=Respond(550, "no"))
        for i in refused
    ]
    items = [("s@x.test", [f"{tag}-{i}@x.test"], message(i)) for i in range(count)]
    seen: list[tuple[int, object]] = []
    lines: list[str] = []
    with run_server(starttls=False, mailmax=3, rules=rules, transcript=lines.append) as server:
        pool = pool_for(make_pool, server, max_messages=max_messages)
        kwargs: dict[str, Any] = {"on_outcome": lambda i, o: seen.append((i, o))} if stream else {}
        outcomes = pool.call("send_many", iter(items), connections=connections, **kwargs)
        accepted = [i for i in range(count) if i not in refused]
        stored = stored_once(server, len(accepted))
    if stream:
        assert outcomes == [] and [i for i, _ in seen] == list(range(count))
        outcomes = [o for _, o in seen]
    assert len(outcomes) == count
    for index, outcome in enumerate(outcomes):
        assert isinstance(outcome, TransactionResult) == (index not in refused)
    if connections == 1:  # one connection at a time: stored in order, counted per connection
        assert stored == [message(i) for i in accepted]
        assert all(n <= min(3, max_messages) for n in per_connection(lines))
    assert sorted(stored) == sorted(message(i) for i in accepted)
    assert not [line for line in lines if re.match(r"S: 451", line)]


_EXAMPLES = iter(range(10**9))


# -- cancellation ---------------------------------------------------------------------------------


STALL = Rule(stage="data_end", sender="s1@x.test", action=Tarpit(delay=2.0), times=1)


async def cancelled_after(adapter: str, seconds: float, call: Callable[[], Any]) -> None:
    """Await ``call()`` on the ``adapter``'s loop, cancelled after ``seconds``: by
    ``asyncio.wait_for`` or a trio cancel scope; it must not have finished first."""
    if adapter == "asyncio":
        import asyncio

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(call(), seconds)
        return
    import trio

    with trio.move_on_after(seconds) as scope:
        await call()
    assert scope.cancelled_caught


def on_async_pool(adapter: str, server: Any, main: Callable[[Any], Any]) -> None:
    """``await main(pool)`` with a new pool of ``adapter`` (asyncio, trio) for
    ``server``, on a loop of its own; the pool is closed afterwards."""
    facade = PoolFacade(adapter, host=server.host, port=server.port, tls="none", timeout=5)
    try:
        facade.call_async(lambda: main(facade.pool))
    finally:
        facade.close()


@pytest.mark.parametrize("async_adapter", ["asyncio", "trio"])
def test_a_cancelled_batch_gives_its_connection_back(async_adapter: str) -> None:
    """Cancelled while message 1's final reply stalls: the connection is dropped, not
    leaked, and the pool sends the next batch; message 1 at most once, 2 never."""

    async def main(pool: Any) -> None:
        await cancelled_after(
            async_adapter, 0.5, lambda: pool.send_many(batch(4, same=False), chunking=False)
        )
        assert pool.connections == 0  # dropped, not leaked (trio: despite the cancel)
        outcomes = await pool.send_many(batch(1))
        assert isinstance(outcomes[0], TransactionResult)

    with run_server(starttls=False, rules=[STALL]) as server:
        on_async_pool(async_adapter, server, main)
        stored = [m.data for m in server.wait_for_messages(2, timeout=TIMEOUT)]
    assert stored.count(message(0)) == 2  # once in each batch; message 1 maybe once
    assert stored.count(message(1)) <= 1 and message(2) not in stored


@pytest.mark.parametrize("async_adapter", ["asyncio", "trio"])
def test_a_cancelled_batch_on_several_connections_frees_them(async_adapter: str) -> None:
    async def main(pool: Any) -> None:
        await cancelled_after(
            async_adapter,
            0.5,
            lambda: pool.send_many(batch(30, same=False), chunking=False, connections=3),
        )
        assert pool.connections == pool.idle_connections  # none lent, none leaked

    with run_server(starttls=False, rules=[STALL]) as server:
        on_async_pool(async_adapter, server, main)
        stored = [m.data for m in server.messages]
    assert len(stored) == len(set(stored))


# -- several calls at once: one connection each -----------------------------------------------


def run_together(pool: PoolFacade, parts: list[list[Any]]) -> list[list[Any]]:
    """``send_many`` of each part, all started together (threads, or tasks)."""
    target = pool.pool
    if pool.adapter == "blocking":
        with concurrent.futures.ThreadPoolExecutor(len(parts)) as executor:
            return list(executor.map(target.send_many, parts))
    if pool.adapter == "asyncio":
        import asyncio

        async def gather() -> list[list[Any]]:
            return list(await asyncio.gather(*(target.send_many(part) for part in parts)))

        return pool.call_async(gather)
    import trio

    async def nursery() -> list[list[Any]]:
        results: list[list[Any]] = [[] for _ in parts]

        async def one(index: int) -> None:
            results[index] = await target.send_many(parts[index])

        async with trio.open_nursery() as tasks:
            for index in range(len(parts)):
                tasks.start_soon(one, index)
        return results

    return pool.call_async(nursery)


def test_calls_at_once_spread_over_the_pool(make_pool: MakePool) -> None:
    """Three batches at once with ``max_connections=2``: never more than two
    connections open, each message stored once, each list in its order."""
    parts = [
        [(f"s{k}@x.test", ["r@x.test"], message(10 * k + i)) for i in range(4)] for k in range(3)
    ]
    with flaky_server(reply_delay=0.01) as server:
        pool = make_pool(server, max_connections=2)
        results = run_together(pool, parts)
        assert server.most_open <= 2
        assert sorted(server.messages) == sorted(
            message(10 * k + i) + b".\r\n" for k in range(3) for i in range(4)
        )
    for k, outcomes in enumerate(results):
        assert [o.sender for o in outcomes] == [f"s{k}@x.test"] * 4


def test_the_rate_limit_paces_a_batch(make_pool: MakePool, adapter: str) -> None:
    """``RateLimit(2, 10.0)``: a round takes what the window allows, then the rest
    waits for it; the connection, idle meanwhile, is probed (NOOP) before the next
    round, and carries the whole batch."""
    clock = FakeClock()
    with flaky_server() as server:
        pool = make_pool(server, **clock.rate_limited(adapter, 2, 10.0))
        outcomes = pool.call("send_many", batch(5, same=False))
        assert [o.sender for o in outcomes] == [f"s{i}@x.test" for i in range(5)]
        assert clock.slept == [10.0, 10.0]  # messages 3 and 5 waited for the window
        assert server.connections == 1 and server.commands.count("NOOP") == 2
        assert len(server.messages) == 5


def test_the_rate_limit_counts_only_messages_that_start(make_pool: MakePool, adapter: str) -> None:
    """``RateLimit(3, 10.0)``: a batch of two starts two messages, so a third message
    may start at once. Asking the window whether the client may take one more message
    must not count one when there is none left to take (the batch's end, or another
    round's limit): the window counts messages that start (docs/pool.md)."""
    clock = FakeClock()
    with flaky_server() as server:
        pool = make_pool(server, **clock.rate_limited(adapter, 3, 10.0))
        outcomes = pool.call("send_many", batch(2, same=False))
        assert [o.sender for o in outcomes] == ["s0@x.test", "s1@x.test"]
        pool.send()
        assert clock.slept == []  # three messages in the window: none waited
        pool.send()
        assert clock.slept == [10.0]  # the fourth waits for the first to leave it
        assert len(server.messages) == 4


def test_a_round_that_takes_no_message_gives_its_start_back(
    make_pool: MakePool, adapter: str
) -> None:
    """``connections=2`` on a batch of one under ``RateLimit(2, 10.0)``: both rounds
    wait for the window before lending a connection, but one message starts, so one
    more may start at once after it (the round that found nothing to take uncounts its
    start)."""
    clock = FakeClock()
    with flaky_server() as server:
        pool = make_pool(server, **clock.rate_limited(adapter, 2, 10.0))
        outcomes = pool.call("send_many", batch(1), connections=2)
        assert [type(o) for o in outcomes] == [TransactionResult]
        pool.send()
        assert clock.slept == []  # two messages in the window: none waited
        pool.send()
        assert clock.slept == [10.0]
        assert len(server.messages) == 3


# -- several connections on one batch -------------------------------------------------------------


def test_a_batch_on_several_connections_at_once(make_pool: MakePool) -> None:
    """``connections=3``: three connections open at once carry the batch, each message
    once, the outcomes in the caller's order."""
    with flaky_server(reply_delay=0.02) as server:
        pool = make_pool(server, max_connections=5)
        outcomes = pool.call("send_many", batch(30, same=False), connections=3, max_in_flight=2)
        assert server.connections <= 3 and server.most_open <= 3  # the bound: always
        assert server.most_open >= 2  # at once: each connection has ~0.8 s of replies
        assert sorted(server.messages) == sorted(message(i) + b".\r\n" for i in range(30))
    assert [o.sender for o in outcomes] == [f"s{i}@x.test" for i in range(30)]


def test_several_connections_within_max_per_destination(make_pool: MakePool) -> None:
    with flaky_server(reply_delay=0.005) as server:
        pool = make_pool(server, max_per_destination=2)
        outcomes = pool.call("send_many", batch(12, same=False), connections=8)
        assert server.most_open <= 2
        assert len(server.messages) == len(set(server.messages)) == 12
    assert [type(o) for o in outcomes] == [TransactionResult] * 12


@pytest.mark.parametrize("mailmax", [1, 2, 3])
def test_several_connections_cross_mailmax(make_pool: MakePool, mailmax: int) -> None:
    lines: list[str] = []
    with run_server(starttls=False, mailmax=mailmax, transcript=lines.append) as server:
        pool = pool_for(make_pool, server)
        seen: list[int] = []
        result = pool.call(
            "send_many",
            iter(batch(15, same=False)),
            connections=3,
            on_outcome=lambda index, outcome: seen.append(index),
        )
        stored = stored_once(server, 15)
    assert result == [] and seen == list(range(15))
    assert sorted(stored) == sorted(message(i) for i in range(15))
    assert not [line for line in lines if line.startswith("S: 451")]  # never past it


def test_a_connection_that_cannot_open_leaves_the_batch_to_the_others(
    make_pool: MakePool,
) -> None:
    """The server refuses its second connection at the greeting: that one leaves, the
    other two carry every message."""
    rule = Rule(stage="connect", connection=2, action=Respond(554, "not you"))
    with run_server(starttls=False, rules=[rule]) as server:
        pool = pool_for(make_pool, server)
        outcomes = pool.call("send_many", batch(12, same=False), connections=3)
        stored = stored_once(server, 12)
    assert [type(o) for o in outcomes] == [TransactionResult] * 12
    assert sorted(stored) == sorted(message(i) for i in range(12))


def test_no_message_is_sent_after_on_outcome_raised(make_pool: MakePool) -> None:
    """MAILMAX=1: each round sends one message. The round that finishes first reads
    message 2 and opens a new connection for it (the server greets that one late);
    meanwhile ``on_outcome`` raises for message 1 (its final reply is slow). Message 2,
    read but not yet taken, must not be sent once the batch has failed: the caller got
    the exception and cannot know of it (``PoolBatch`` hands out nothing then)."""

    def on_outcome(index: int, outcome: object) -> None:
        if index == 1:
            raise Stop

    rules = [
        Rule(stage="data_end", sender="s1@x.test", action=Accept(), delay=0.3),
        Rule(stage="connect", connection=3, action=Accept(), delay=1.0),
    ]
    with run_server(starttls=False, mailmax=1, rules=rules) as server:
        pool = pool_for(make_pool, server)
        items = iter(batch(6, same=False))
        with pytest.raises(Stop):
            pool.call("send_many", items, on_outcome=on_outcome, connections=2, chunking=False)
        assert pool.pool.connections == pool.pool.idle_connections  # none lent out
        stored = stored_once(server, 2)
        assert sorted(m.sender for m in server.messages) == ["s0@x.test", "s1@x.test"]
    assert sorted(stored) == [message(0), message(1)]
    # Message 2 was read (then never sent), unless the failure came first.
    assert next(items)[0] in ("s2@x.test", "s3@x.test")


def test_a_stalled_message_holds_back_the_batch_boundedly(
    make_pool: MakePool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One message's reply comes late while another connection sends on: that one
    stops taking messages ``limit`` ahead (here 8, made small) and leaves the rest to
    the stalled connection; every message once, the outcomes in order."""
    from smtpproto.adapters import async_pool, sync_pool

    monkeypatch.setattr(async_pool, "REORDER_LIMIT", 1)
    monkeypatch.setattr(sync_pool, "REORDER_LIMIT", 1)
    rule = Rule(stage="data_end", sender="s0@x.test", action=Accept(), delay=0.5, times=1)
    with run_server(starttls=False, rules=[rule]) as server:
        pool = pool_for(make_pool, server)
        outcomes = pool.call(
            "send_many", batch(40, same=False), connections=2, max_in_flight=1, chunking=False
        )
        stored = stored_once(server, 40)
    assert [o.sender for o in outcomes] == [f"s{i}@x.test" for i in range(40)]
    assert sorted(stored) == sorted(message(i) for i in range(40))


def test_several_connections_bad_count_is_a_caller_mistake(make_pool: MakePool) -> None:
    with run_server(starttls=False) as server:
        pool = pool_for(make_pool, server)
        for bad in (0, -1, True, 1.5):
            with pytest.raises(SMTPProtocolError, match="connections"):
                pool.call("send_many", batch(1), connections=bad)
        assert pool.pool.connections == 0


def test_several_connections_call_the_iterable_and_on_outcome_one_at_a_time(
    make_pool: MakePool,
) -> None:
    """The blocking pool's threads share the caller's iterator and ``on_outcome``: a
    call of either never overlaps another (each holds a lock it never waits for)."""
    guard = threading.Lock()
    overlaps: list[str] = []
    threads: set[int] = set()

    def exclusive(what: str) -> None:
        if not guard.acquire(blocking=False):
            overlaps.append(what)
            return
        try:
            threads.add(threading.get_ident())
            time.sleep(0.001)  # widen the window an overlap would need
        finally:
            guard.release()

    def messages() -> Iterator[tuple[str, list[str], bytes]]:
        for item in batch(40, same=False):
            exclusive("next")
            yield item

    seen: list[int] = []

    def on_outcome(index: int, outcome: object) -> None:
        exclusive("on_outcome")
        seen.append(index)

    with flaky_server(reply_delay=0.002) as server:
        pool = make_pool(server)
        result = pool.call(
            "send_many", messages(), connections=3, max_in_flight=2, on_outcome=on_outcome
        )
        assert len(server.messages) == 40
    assert result == [] and seen == list(range(40)) and not overlaps


# -- caller code that uses the pool itself ----------------------------------------------

#: Seconds a test waits for a batch whose caller code uses the pool: one that
#: deadlocks fails the test then (its daemon thread is left behind, stuck).
REENTRY_LIMIT = 20.0


def within(limit: float, work: Callable[[], Any]) -> Any:
    """``work()`` in a daemon thread: its result or exception, or a failure when it
    has not returned after ``limit`` seconds (a deadlock: the test must not hang)."""
    done: list[Any] = []

    def run() -> None:
        try:
            done.append((True, work()))
        except BaseException as error:  # handed to the test's thread
            done.append((False, error))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert done, f"still running after {limit} s: deadlocked"
    ok, value = done[0]
    if not ok:
        raise value
    return value


def bounce(index: int) -> tuple[str, list[str], bytes]:
    return ("postmaster@x.test", ["s@x.test"], b"Subject: bounce %d\r\n\r\nno\r\n" % index)


@pytest.mark.parametrize("connections", [1, 2, 3])
def test_on_outcome_may_send_over_the_same_blocking_pool(connections: int) -> None:
    """``on_outcome`` sends a bounce through the pool whose batch calls it, with the
    batch on every connection the pool may open but one: the bounce gets a connection
    (the batch's other rounds give theirs back rather than wait for the caller's code),
    nothing deadlocks, every message and bounce is stored once."""
    from smtpproto.blocking import SMTPPool

    with flaky_server(reply_delay=0.002) as server:
        pool = SMTPPool(
            "127.0.0.1", server.port, tls="none", timeout=5, max_connections=max(2, connections)
        )
        bounced: list[int] = []

        def on_outcome(index: int, outcome: object) -> None:
            if index % 4 == 1:
                bounced.append(index)
                assert isinstance(pool.sendmail(*bounce(index)), TransactionResult)

        with pool:
            result = within(
                REENTRY_LIMIT,
                lambda: pool.send_many(
                    batch(12, same=False), connections=connections, on_outcome=on_outcome
                ),
            )
            assert pool.connections == pool.idle_connections  # none lent out
        assert result == [] and bounced == [1, 5, 9]
        assert sorted(server.messages) == sorted(
            [message(i) + b".\r\n" for i in range(12)]
            + [bounce(i)[2] + b".\r\n" for i in (1, 5, 9)]
        )


@pytest.mark.parametrize("connections", [2, 3])
def test_the_iterable_may_send_over_the_same_blocking_pool(connections: int) -> None:
    """The iterable sends a notice through the pool before each fourth message, with
    the batch on every connection the pool may open: no deadlock, all stored once."""
    from smtpproto.blocking import SMTPPool

    with flaky_server(reply_delay=0.002) as server:
        pool = SMTPPool(
            "127.0.0.1", server.port, tls="none", timeout=5, max_connections=connections
        )

        def messages() -> Iterator[tuple[str, list[str], bytes]]:
            for index, item in enumerate(batch(12, same=False)):
                if index % 4 == 3:
                    pool.sendmail(*bounce(index))
                yield item

        with pool:
            outcomes = within(
                REENTRY_LIMIT, lambda: pool.send_many(messages(), connections=connections)
            )
        assert [type(o) for o in outcomes] == [TransactionResult] * 12
        assert len(server.messages) == len(set(server.messages)) == 15


def test_the_iterable_may_wait_for_a_thread_that_uses_the_pool() -> None:
    """The iterable hands out two messages, then reads a queue that another thread
    fills, each item after a ``sendmail`` through the same pool, whose two connections
    the batch's two rounds hold by then (one message in flight each): the round that
    waits for its turn at the iterable gives its connection back, so the thread gets
    one and the batch goes on."""
    import queue

    from smtpproto.blocking import SMTPPool

    with flaky_server(reply_delay=0.05) as server:
        pool = SMTPPool("127.0.0.1", server.port, tls="none", timeout=5, max_connections=2)
        items = batch(8, same=False)
        handed: queue.Queue[tuple[str, list[str], bytes] | None] = queue.Queue()
        reading = threading.Event()

        def producer() -> None:
            assert reading.wait(REENTRY_LIMIT)
            for index, item in enumerate(items[2:]):
                pool.sendmail(*bounce(index))
                handed.put(item)
            handed.put(None)

        def messages() -> Iterator[tuple[str, list[str], bytes]]:
            yield from items[:2]
            reading.set()
            for _ in range(7):  # bounded: six items, then the end
                item = handed.get(timeout=REENTRY_LIMIT)
                if item is None:
                    return
                yield item

        with pool:
            feeder = threading.Thread(target=producer, daemon=True)
            feeder.start()
            outcomes = within(
                REENTRY_LIMIT,
                lambda: pool.send_many(messages(), connections=2, max_in_flight=1),
            )
            feeder.join(REENTRY_LIMIT)
            assert not feeder.is_alive()
        assert [type(o) for o in outcomes] == [TransactionResult] * 8
        assert len(server.messages) == len(set(server.messages)) == 14


def test_on_outcome_needing_the_batchs_only_connection_is_refused() -> None:
    """``max_connections=1``: ``on_outcome`` calling ``sendmail`` on the pool would
    wait for the connection its own batch holds until it returns, forever. The pool
    raises ``SMTPProtocolError`` (a caller mistake) instead, which ends the batch
    as ``on_outcome`` raising does; the connection is closed, the pool usable."""
    from smtpproto.blocking import SMTPPool

    with flaky_server() as server:
        pool = SMTPPool("127.0.0.1", server.port, tls="none", timeout=5, max_connections=1)

        def on_outcome(index: int, outcome: object) -> None:
            pool.sendmail(*bounce(index))

        with pool:
            with pytest.raises(SMTPProtocolError, match="on_outcome or the messages") as caught:
                within(REENTRY_LIMIT, lambda: pool.send_many(batch(3), on_outcome=on_outcome))
            assert "max_connections" in str(caught.value)
            assert pool.connections == 0
            assert isinstance(pool.sendmail(*bounce(9)), TransactionResult)  # usable
        assert server.messages[0] == message(0) + b".\r\n"
        assert server.messages[-1] == bounce(9)[2] + b".\r\n"


def test_on_outcome_may_start_a_task_that_uses_the_async_pool(
    make_pool: MakePool, adapter: str
) -> None:
    """The async pools call ``on_outcome`` (a plain function) in the event loop, so it
    cannot wait on the pool, but it may start a task that does: with one connection
    in all, the bounces go out once the batch gave it back (the blocking pool: the
    call itself, over a second connection)."""
    with flaky_server() as server:
        pool = make_pool(server, max_connections=2 if adapter == "blocking" else 1)
        target = pool.pool
        if pool.adapter == "blocking":

            def on_outcome(index: int, outcome: object) -> None:
                target.sendmail(*bounce(index))

            within(REENTRY_LIMIT, lambda: target.send_many(batch(4), on_outcome=on_outcome))
        elif pool.adapter == "asyncio":
            import asyncio

            async def main() -> None:
                tasks: list[asyncio.Future[Any]] = []

                def on_outcome(index: int, outcome: object) -> None:
                    tasks.append(asyncio.ensure_future(target.sendmail(*bounce(index))))

                async def both() -> None:
                    await target.send_many(batch(4), on_outcome=on_outcome)
                    await asyncio.gather(*tasks)

                await asyncio.wait_for(both(), REENTRY_LIMIT)

            pool.call_async(main)
        else:
            import trio

            async def main() -> None:
                with trio.fail_after(REENTRY_LIMIT):
                    async with trio.open_nursery() as nursery:

                        def on_outcome(index: int, outcome: object) -> None:
                            nursery.start_soon(target.sendmail, *bounce(index))

                        await target.send_many(batch(4), on_outcome=on_outcome)

            pool.call_async(main)
        assert len(server.messages) == len(set(server.messages)) == 8


def test_a_batch_starting_while_a_caller_waits_for_a_connection() -> None:
    """A caller starting to wait for a connection wakes every running batch's rounds
    (``PoolBatch.wake``) while other threads may start or end a batch: the pool wakes a
    copy of its set of batches. Here a batch's ``wake`` starts another batch itself
    (the set changes during that loop); the waiter still gets the connection."""
    from smtpproto.blocking import SMTPPool

    class Waking:
        def __init__(self, pool: Any) -> None:
            self.pool, self.calls = pool, 0

        def wake(self) -> None:
            self.calls += 1
            batches: set[Any] = self.pool._batches
            batches.add(Waking(self.pool))  # a send_many starting now

    with flaky_server() as server:
        pool = SMTPPool("127.0.0.1", server.port, tls="none", timeout=5, max_connections=1)
        with pool:
            first = Waking(pool)
            pool._batches.add(first)
            held = threading.Event()
            release = threading.Event()

            def holder() -> None:
                def content() -> Iterator[bytes]:
                    held.set()
                    assert release.wait(REENTRY_LIMIT)
                    yield message(0)

                pool.sendmail("s@x.test", ["r@x.test"], content())

            thread = threading.Thread(target=holder, daemon=True)
            thread.start()
            assert held.wait(REENTRY_LIMIT)  # the only connection is lent out
            timer = threading.Timer(0.2, release.set)
            timer.start()
            try:
                result = within(REENTRY_LIMIT, lambda: pool.sendmail(*bounce(1)))
            finally:
                timer.cancel()
                release.set()
                thread.join(REENTRY_LIMIT)
            assert isinstance(result, TransactionResult) and first.calls >= 1


def test_an_interrupt_while_the_blocking_pool_joins_its_rounds_ends_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``KeyboardInterrupt`` that reaches the caller's thread while it waits for the
    batch's other threads (``thread.join`` in ``_together``, where Ctrl-C lands once its
    own round is done) propagates and ends the batch there: the other rounds finish
    the message they have in flight, give their connections back and take no more of
    the caller's messages. ``_together`` is replaced by one that starts the threads,
    waits until the batch is under way, then raises as that join would."""
    from smtpproto.blocking import SMTPPool

    read: list[int] = []
    under_way = threading.Event()

    def messages() -> Iterator[tuple[str, list[str], bytes]]:
        for index, item in enumerate(batch(200, same=False)):
            read.append(index)
            if index == 4:
                under_way.set()
            yield item

    def together(self: SMTPPool, count: int, work: Callable[[], None]) -> None:
        for _ in range(count):
            threading.Thread(target=work, daemon=True).start()
        assert under_way.wait(REENTRY_LIMIT)
        raise KeyboardInterrupt  # as thread.join() does when Ctrl-C comes

    monkeypatch.setattr(SMTPPool, "_together", together)
    with flaky_server(reply_delay=0.01) as server:
        pool = SMTPPool("127.0.0.1", server.port, tls="none", timeout=5, max_connections=2)
        with pool:
            with pytest.raises(KeyboardInterrupt):
                pool.send_many(messages(), connections=2, max_in_flight=1)
            deadline = time.monotonic() + REENTRY_LIMIT
            while pool.connections != pool.idle_connections and time.monotonic() < deadline:
                time.sleep(0.01)
            assert pool.connections == pool.idle_connections  # the rounds have ended
            taken = len(read)
            time.sleep(0.2)
            assert len(read) == taken < 50  # and read no more: the batch ended
        assert len(server.messages) == len(set(server.messages)) <= taken


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("connections", [1, 2])
def test_an_interrupt_from_the_iterable_leaves_the_trio_pool_as_itself(
    connections: int, interrupt: type[BaseException]
) -> None:
    """A ``KeyboardInterrupt`` or ``SystemExit`` raised by the caller's iterable comes
    out of the trio pool's ``send_many`` as itself, with one connection or several
    (docs/pool.md: it "propagates as itself", as from the other pools), not wrapped
    in the ``BaseExceptionGroup`` of the nursery that runs the rounds. (The asyncio
    pool's is asyncio's: such an exception stops the loop at once.)"""
    import trio

    from smtpproto.trio_client import TrioSMTPPool

    def messages() -> Iterator[tuple[str, list[str], bytes]]:
        yield from batch(3, same=False)
        raise interrupt()

    async def main(host: str, port: int) -> None:
        with trio.fail_after(REENTRY_LIMIT):
            async with TrioSMTPPool(host, port, tls="none", timeout=5) as pool:
                await pool.send_many(messages(), connections=connections)

    caught: BaseException | None = None
    with run_server(starttls=False) as server:
        try:
            trio.run(main, server.host, server.port)
        except BaseException as error:  # whatever it is, judged below
            caught = error
        assert len(server.wait_for_messages(3, timeout=TIMEOUT)) == 3
    assert type(caught) is interrupt, repr(caught)


def test_an_interrupt_in_a_round_thread_of_the_blocking_pool_is_raised_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The blocking pool's rounds on other threads call the caller's iterable too: a
    ``KeyboardInterrupt`` it raises there ends the batch and comes out of
    ``send_many`` in the caller's thread (``PoolBatch.abandon`` keeps it), and the
    round's thread ends quietly: no "Exception in thread" report of it besides."""
    from smtpproto.blocking import SMTPPool

    reported: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: reported.append(repr(args)))
    caller: list[threading.Thread] = []
    raised_in: list[str] = []

    def messages() -> Iterator[tuple[str, list[str], bytes]]:
        for index, item in enumerate(batch(80, same=False)):
            if index >= 10 and threading.current_thread() not in caller:
                raised_in.append(threading.current_thread().name)
                raise KeyboardInterrupt
            yield item

    def send(pool: SMTPPool) -> object:
        caller.append(threading.current_thread())
        return pool.send_many(messages(), connections=3)

    caught: BaseException | None = None
    with (
        flaky_server(reply_delay=0.002) as server,
        SMTPPool("127.0.0.1", server.port, tls="none", timeout=5, max_connections=3) as pool,
    ):
        try:
            within(REENTRY_LIMIT, lambda: send(pool))
        except BaseException as error:  # judged below
            caught = error
    assert raised_in, "no round thread of the pool read the iterable"
    assert type(caught) is KeyboardInterrupt
    assert reported == []
