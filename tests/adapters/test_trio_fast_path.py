"""The trio client's socket fast path (``adapters/trio_client.py``: a connection it
opened itself, before TLS) keeps trio's guarantees against real peers on 127.0.0.1.

Postfix's smtp-sink answers a pipelined group before the client asks for the replies,
so on this path most reads find their bytes waiting and never block: the batch must
still be cut short by a cancellation or a deadline, let other tasks run, and never
trip over a deadline left behind by an earlier wait. Virtual time comes from
``MockClock`` (rate 0: it moves only when a test jumps it, never during real I/O),
so the deadline tests are exact; every test is bounded by real seconds (``LIMIT``)
and message counts, never timed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator

import pytest
import trio
import trio.testing

from interop.peers import SinkPeer, TLSMaterial
from smtpproto.adapters.trio_client import _READS_PER_PASS
from smtpproto.client_engine.config import Timeouts
from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers.batch import BatchItem, Outcome
from smtpproto.drivers.session import Driver, Read, Write
from smtpproto.exceptions import (
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPProtocolError,
    SMTPReplyError,
    SMTPTimeoutError,
)
from smtpproto.testing import Disconnect, Drop, Rule, run_server
from smtpproto.trio_client import TrioSMTPClient

from .peer import PEER_TIMEOUT, Peer, listening
from .ticker import trio_ticker

#: Real seconds any test may take before it counts as hung.
LIMIT = 60.0
#: Messages a batch that should have been cut short may take before the test fails.
RUNAWAY = 20_000
#: Steps (messages, calls) that may pass between two turns of another task: trio runs
#: the ready tasks of each pass in a random order, so the batch's stretches of two
#: passes may come between two of its turns, never three.
SPAN = 2 * _READS_PER_PASS + 2
MESSAGE = b"Subject: fast path\r\n\r\n" + b"y" * 76 + b"\r\n.leading dot\r\n"

SinkFactory = Callable[..., SinkPeer]


def run(main: Callable[[], Awaitable[None]], clock: trio.abc.Clock | None = None) -> None:
    """``trio.run(main)``, cancelled after ``LIMIT`` real seconds (a thread's timer:
    under a ``MockClock`` no virtual deadline would ever come) and failed then."""

    async def bounded() -> None:
        token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:

            def expire() -> None:
                with contextlib.suppress(trio.RunFinishedError):
                    trio.from_thread.run_sync(scope.cancel, trio_token=token)

            timer = threading.Timer(LIMIT, expire)
            timer.start()
            try:
                await main()
            finally:
                timer.cancel()
        if scope.cancelled_caught:
            pytest.fail(f"hung: still running after {LIMIT} s")

    trio.run(bounded, clock=clock)


def _endless(taken: list[int], each: Callable[[int], None] | None = None) -> Iterator[BatchItem]:
    """Messages until ``RUNAWAY``; ``taken`` counts them, ``each(n)`` runs before the n-th."""
    for index in range(RUNAWAY):
        if each is not None:
            each(index)
        taken.append(index)
        yield f"s{index}@example.test", ["a@example.test"], MESSAGE
    raise AssertionError(f"the batch was not cut short after {RUNAWAY} messages")


def _assert_broken(client: TrioSMTPClient) -> None:
    assert not client.session.usable
    assert client._stream is None and client._sock is None  # closed, never reused


def test_the_fast_path_is_taken_on_a_connection_the_client_opened(
    smtp_sink_factory: SinkFactory,
) -> None:
    sink = smtp_sink_factory(dump=False)

    async def main() -> None:
        async with TrioSMTPClient(sink.host, sink.port, tls="none") as client:
            assert client._sock is not None
            outcomes = await client.send_many(
                (f"s{i}@example.test", "a@example.test", MESSAGE) for i in range(200)
            )
            assert all(isinstance(outcome, TransactionResult) for outcome in outcomes)
            assert len(outcomes) == 200
            assert (await client.noop()).code == 250

    run(main)


def test_a_cancel_mid_batch_stops_it_at_the_next_message(smtp_sink_factory: SinkFactory) -> None:
    """The scope is cancelled from inside the batch (the iterable): the next request's
    cancellation check ends it, whether or not the socket ever made us wait."""
    sink = smtp_sink_factory(dump=False)
    taken: list[int] = []
    cancel_at = 300

    async def main() -> None:
        client = TrioSMTPClient(sink.host, sink.port, tls="none")
        await client.connect()
        with trio.CancelScope() as scope:

            def each(index: int) -> None:
                if index == cancel_at:
                    scope.cancel()

            await client.send_many(_endless(taken, each))
        assert scope.cancelled_caught
        assert len(taken) <= cancel_at + 2  # at most the message in hand, and one more
        _assert_broken(client)
        with pytest.raises(SMTPProtocolError, match="broken"):
            await client.noop()

    run(main)


class _Recording:
    """The client's socket, counting the octets it sent (the socket path calls only
    ``send``, ``recv`` and ``fileno``: trio waits on the descriptor)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.sent = 0

    def send(self, data: bytes | memoryview) -> int:
        sent = self._sock.send(data)
        self.sent += sent
        return sent

    def recv(self, size: int) -> bytes:
        return self._sock.recv(size)

    def fileno(self) -> int:
        return self._sock.fileno()


@pytest.mark.parametrize("hook", ["messages", "on_outcome"])
@pytest.mark.parametrize("cancel_at", [0, 1, 2, 15, 16, 17, 33, 120])
def test_nothing_goes_out_after_the_batch_s_own_code_cancels(
    smtp_sink_factory: SinkFactory, hook: str, cancel_at: int
) -> None:
    """A scope cancelled by the batch's own code (the iterable, or ``on_outcome``) at
    message ``cancel_at`` (either side of a scheduler pass, every ``_READS_PER_PASS``
    reads): not one more octet is written, though the replies keep finding their bytes
    (a ``Read`` right after a ``Write`` does not check again; the next ``Write``
    does), and the client is closed."""
    sink = smtp_sink_factory(dump=False)
    taken: list[int] = []
    at_cancel: list[int] = []

    async def main() -> None:
        client = TrioSMTPClient(sink.host, sink.port, tls="none")
        await client.connect()
        assert client._sock is not None
        recording = _Recording(client._sock)
        client._sock = recording  # type: ignore[assignment]
        with trio.CancelScope() as scope:

            def cancel(index: int, *_: object) -> None:
                if index == cancel_at and not at_cancel:
                    at_cancel.append(recording.sent)
                    scope.cancel()

            if hook == "messages":
                await client.send_many(_endless(taken, cancel))
            else:
                await client.send_many(_endless(taken), on_outcome=cancel)
        assert scope.cancelled_caught
        assert at_cancel == [recording.sent]
        assert len(taken) <= cancel_at + 3
        _assert_broken(client)

    run(main)


def test_a_cancel_between_operations_is_seen_by_the_next_one_s_first_read(
    smtp_sink_factory: SinkFactory,
) -> None:
    """A ``Write``'s cancellation check covers only the ``Read`` right after it in the
    same operation: an operation that ended on a ``Write``, then a scope cancelled by
    the caller, then an operation that starts with a ``Read`` whose bytes are already
    in (waited for outside the scope): that ``Read`` raises ``Cancelled``."""
    sink = smtp_sink_factory(dump=False)

    def write_only() -> Driver[None]:
        yield Write(b"NOOP\r\n", 10.0)

    def read_only() -> Driver[bytes]:
        data = yield Read(10.0)
        assert isinstance(data, bytes)
        return data

    async def main() -> None:
        client = TrioSMTPClient(sink.host, sink.port, tls="none")
        await client.connect()
        assert client._sock is not None
        await client._operation(lambda _: write_only())
        await trio.lowlevel.wait_readable(client._sock)  # the 250 is in: no wait below
        with trio.CancelScope() as scope:
            scope.cancel()
            await client._operation(lambda _: read_only())
        assert scope.cancelled_caught
        _assert_broken(client)

    run(main)


def test_a_read_after_a_read_from_the_inbox_checks_for_cancellation(
    smtp_sink_factory: SinkFactory,
) -> None:
    """The ``Read`` right after a ``Write`` is the only one that skips the check: one
    served from the read-ahead inbox (after a burst of writes) does not pass the skip on
    to the ``Read`` after it. Here the driver cancels its scope between the two (as an
    ``on_outcome`` may while the replies of a burst are handled) and the second Read's
    bytes are already in: that Read raises ``Cancelled``, no hook runs after it."""
    sink = smtp_sink_factory(dump=False)
    after_cancel: list[bytes] = []

    async def main() -> None:
        client = TrioSMTPClient(sink.host, sink.port, tls="none")
        await client.connect()
        assert client._sock is not None
        with trio.CancelScope() as scope:

            def driver() -> Driver[None]:
                yield Write(b"NOOP\r\n", 10.0)
                first = yield Read(10.0)  # the inbox: what a read-ahead buffered
                assert first == b"250 2.0.0 read ahead\r\n"
                scope.cancel()
                second = yield Read(10.0)  # bytes in: no wait to raise at
                assert isinstance(second, bytes)
                after_cancel.append(second)

            await client._operation(lambda _: write_noop())
            await trio.lowlevel.wait_readable(client._sock)  # its 250 is in
            client._inbox += b"250 2.0.0 read ahead\r\n"
            await client._operation(lambda _: driver())
        assert scope.cancelled_caught
        assert after_cancel == []
        _assert_broken(client)

    def write_noop() -> Driver[None]:
        yield Write(b"NOOP\r\n", 10.0)

    run(main)


def test_a_batch_checks_for_cancellation_once_per_message(
    smtp_sink_factory: SinkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the socket path a message of ``send_many`` is one ``Write`` and one ``Read``
    that finds its bytes; only the ``Write`` checks for cancellation (counted: the
    adapter calls ``trio.lowlevel.checkpoint_if_cancelled`` by that name)."""
    sink = smtp_sink_factory(dump=False)
    count = 500
    checks = [0]
    check = trio.lowlevel.checkpoint_if_cancelled

    async def counted() -> None:
        checks[0] += 1
        await check()

    async def main() -> None:
        async with TrioSMTPClient(sink.host, sink.port, tls="none") as client:
            monkeypatch.setattr(trio.lowlevel, "checkpoint_if_cancelled", counted)
            outcomes = await client.send_many(
                (f"s{i}@example.test", "a@example.test", MESSAGE) for i in range(count)
            )
            monkeypatch.undo()
        assert [type(outcome) for outcome in outcomes] == [TransactionResult] * count

    run(main)
    # One per message's group (the last RSET too), and one per further Read of a reply
    # that came in pieces (rare with smtp-sink; each Read before the change checked).
    assert count <= checks[0] <= count + count // 4


def test_a_batch_passes_no_more_often_than_its_bound(
    smtp_sink_factory: SinkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's task is stepped by the scheduler once per read that waited and once
    per ``_READS_PER_PASS`` reads that did not (a pass costs some 20 µs in place,
    bench/README.md): counted with an instrument (the task's steps) and the adapter's
    ``trio.lowlevel.wait_readable`` calls (looked up by that name)."""
    sink = smtp_sink_factory(dump=False)
    count = 8 * _READS_PER_PASS
    steps, waits = [0], [0]
    wait_readable = trio.lowlevel.wait_readable

    async def counted(sock: socket.socket) -> None:
        waits[0] += 1
        await wait_readable(sock)

    class Steps(trio.abc.Instrument):
        def __init__(self, task: trio.lowlevel.Task) -> None:
            self.task = task

        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            steps[0] += task is self.task

    async def main() -> None:
        async with TrioSMTPClient(sink.host, sink.port, tls="none") as client:
            instrument = Steps(trio.lowlevel.current_task())
            trio.lowlevel.add_instrument(instrument)
            monkeypatch.setattr(trio.lowlevel, "wait_readable", counted)
            try:
                outcomes = await client.send_many(
                    (f"s{i}@example.test", "a@example.test", MESSAGE) for i in range(count)
                )
            finally:
                monkeypatch.undo()
                trio.lowlevel.remove_instrument(instrument)
        assert [type(outcome) for outcome in outcomes] == [TransactionResult] * count

    run(main)
    # Each wait and each pass is one step; the bound restarts at every wait, so the
    # passes are at most the reads over the bound (plus the last group's RSET reply).
    assert waits[0] <= steps[0] <= waits[0] + count // _READS_PER_PASS + 1


def test_a_deadline_cuts_a_batch_short(smtp_sink_factory: SinkFactory) -> None:
    """``move_on_at`` a virtual deadline, the clock jumped 10 s per message: the batch
    ends within a message or two of the deadline, with the session marked unusable."""
    sink = smtp_sink_factory(dump=False)
    clock = trio.testing.MockClock()
    taken: list[int] = []

    async def main() -> None:
        client = TrioSMTPClient(sink.host, sink.port, tls="none")
        await client.connect()
        with trio.move_on_at(trio.current_time() + 1000) as scope:
            await client.send_many(_endless(taken, lambda _: clock.jump(10)))
        assert scope.cancelled_caught
        assert 100 <= len(taken) <= 102
        _assert_broken(client)

    run(main, clock)


def test_a_deadline_left_by_an_earlier_wait_never_fires_later(
    smtp_sink_factory: SinkFactory,
) -> None:
    """Every read gets the RFC 5321 timeout (minutes), the clock jumps 100 s per
    message: 3,000 messages take 300,000 virtual seconds, each wait none. A deadline
    set by a read that waited, still on the scope while later reads found their
    replies waiting, would time out a healthy batch."""
    sink = smtp_sink_factory(dump=False)
    clock = trio.testing.MockClock()
    count = 3000

    async def main() -> None:
        async with TrioSMTPClient(sink.host, sink.port, tls="none") as client:
            items = (
                (clock.jump(100), (f"s{i}@example.test", "a@example.test", MESSAGE))[1]
                for i in range(count)
            )
            outcomes = await client.send_many(items)
            assert [type(outcome) for outcome in outcomes] == [TransactionResult] * count

    run(main, clock)


def test_other_tasks_run_during_a_long_batch(smtp_sink_factory: SinkFactory) -> None:
    """A task that only yields counts its turns: the batch lets it run every
    ``_READS_PER_PASS`` messages at least, also when no read had to wait. trio runs the
    ready tasks of each pass in a random order, so the batch's stretches of two passes
    may come between two of its turns, never three."""
    sink = smtp_sink_factory(dump=False)
    count = 2000

    async def main() -> None:
        async with trio_ticker() as turns:

            def items() -> Iterator[BatchItem]:
                for index in range(count):
                    turns.note()
                    yield f"s{index}@example.test", "a@example.test", MESSAGE

            async with TrioSMTPClient(sink.host, sink.port, tls="none") as client:
                outcomes = await client.send_many(items())
        assert len(outcomes) == count
        assert len(turns.seen) == count and not turns.stalled(SPAN)

    run(main)


def test_a_deadline_entered_between_operations_is_seen_at_once(
    smtp_sink_factory: SinkFactory,
) -> None:
    """The deadline is read once per scheduler pass and operation: a scope entered
    after an earlier batch bounds the next batch as tightly as in
    ``test_a_deadline_cuts_a_batch_short``, whatever the earlier batch's reads left."""
    sink = smtp_sink_factory(dump=False)
    clock = trio.testing.MockClock()
    taken: list[int] = []

    async def main() -> None:
        client = TrioSMTPClient(sink.host, sink.port, tls="none")
        await client.connect()
        first = await client.send_many(
            (f"s{i}@example.test", "a@example.test", MESSAGE) for i in range(3)
        )
        assert [type(outcome) for outcome in first] == [TransactionResult] * 3
        with trio.move_on_at(trio.current_time() + 1000) as scope:
            await client.send_many(_endless(taken, lambda _: clock.jump(10)))
        assert scope.cancelled_caught
        assert 100 <= len(taken) <= 102
        _assert_broken(client)

    run(main, clock)


def test_other_tasks_run_during_a_loop_of_sendmail_calls(smtp_sink_factory: SinkFactory) -> None:
    """The count of reads that did not wait runs across operations: calls that each
    read a few replies at once still give other tasks a turn every few calls."""
    sink = smtp_sink_factory(dump=False)
    count = 300

    async def main() -> None:
        async with (
            trio_ticker() as turns,
            TrioSMTPClient(sink.host, sink.port, tls="none") as client,
        ):
            for index in range(count):
                turns.note()
                await client.sendmail(f"s{index}@example.test", "a@example.test", MESSAGE)
        assert not turns.stalled(SPAN)  # calls: each reads at least one reply

    run(main)


def test_one_task_going_round_many_connections_still_lets_others_run(
    smtp_sink_factory: SinkFactory,
) -> None:
    """The count of reads that did not wait is the thread's, not each client's: one
    task sending on eight connections in turn (every reply already in) gives other
    tasks a turn every few calls, not every few calls per connection (a count per
    client allowed eight times as many: this test failed with it)."""
    sink = smtp_sink_factory(dump=False)
    rounds, width = 60, 8

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(TrioSMTPClient(sink.host, sink.port, tls="none"))
                for _ in range(width)
            ]
            assert all(client._sock is not None for client in clients)  # the socket path
            turns = await stack.enter_async_context(trio_ticker())
            for index in range(rounds):
                for client in clients:
                    turns.note()
                    await client.sendmail(f"s{index}@example.test", "a@example.test", MESSAGE)
        assert len(turns.seen) == rounds * width and not turns.stalled(SPAN)

    run(main)


def _session_ended(outcome: Outcome) -> bool:
    """Whether ``outcome`` is one the end of the session gives a message (as in
    ``test_send_many_reference``): the 421, or the connection gone with replies due."""
    if isinstance(outcome, SMTPReplyError):
        return outcome.code == 421
    return isinstance(outcome, (SMTPDeliveryStatusUnknown, SMTPConnectError, SMTPProtocolError))


@pytest.mark.parametrize(
    ("stage", "action", "chunking"),
    [
        ("data_end", Drop(), None),
        ("data_end", Drop(deliver=False), False),
        ("data_end", Disconnect(), False),
        ("mail", Drop(), None),
        ("rcpt", Disconnect(), None),
        ("data", Drop(), False),
    ],
)
def test_a_peer_closing_mid_batch_ends_it_with_outcomes(
    stage: str, action: Drop | Disconnect, chunking: bool | None
) -> None:
    """The built-in server closes at message 20 of 200 (BDAT windows, or DATA): the
    messages before the first failure are delivered, every later outcome says how the
    session ended, the list is shorter and the client closed. On the socket path the
    close shows as an end of stream or a failed ``send`` or ``recv`` (EPIPE,
    ECONNRESET: the server closing with commands unread resets the connection, and a
    421 still unread may be lost with it, as for the blocking client), each thrown
    into the driver."""
    count, closing = 200, 20
    rule = Rule(stage=stage, message=closing, action=action)  # type: ignore[arg-type]

    with run_server(starttls=False, rules=[rule]) as server:

        async def main() -> None:
            client = TrioSMTPClient(server.host, server.port, tls="none", timeout=10)
            await client.connect()
            items = ((f"s{i}@example.test", "a@example.test", MESSAGE) for i in range(count))
            outcomes = await client.send_many(items, chunking=chunking)
            assert len(outcomes) < count
            first = next(i for i, o in enumerate(outcomes) if not isinstance(o, TransactionResult))
            assert first < closing
            assert all(_session_ended(outcome) for outcome in outcomes[first:])
            if stage == "data_end" and isinstance(action, Drop):
                assert isinstance(outcomes[first], SMTPDeliveryStatusUnknown)
            _assert_broken(client)

        run(main)


def test_starttls_then_send_many(tls_material: TLSMaterial) -> None:
    """STARTTLS leaves the socket path: every later byte goes through ``SSLStream``."""
    count = 300
    with run_server(certfile=tls_material.cert_path, keyfile=tls_material.key_path) as server:

        async def main() -> None:
            async with TrioSMTPClient(
                server.host,
                server.port,
                tls="required",
                ssl_context=tls_material.client_context(),
                server_hostname="localhost",
                timeout=10,
            ) as client:
                assert client.session.conn.tls_active and client.tls_info is not None
                assert client._sock is None and isinstance(client._stream, trio.SSLStream)
                outcomes = await client.send_many(
                    (f"s{i}@example.test", "a@example.test", MESSAGE) for i in range(count)
                )
                assert [type(o) for o in outcomes] == [TransactionResult] * count

        run(main)
        received = server.wait_for_messages(count, 10)
        assert [m.sender for m in received] == [f"s{i}@example.test" for i in range(count)]


def test_large_messages_stream_over_the_socket_path(smtp_sink: SinkPeer) -> None:
    """Bodies of several MB: many writes past the unread window, with the read-ahead
    task beside them (RFC 2920 §3.2), then replies read from its inbox."""
    line = b"z" * 998 + b"\r\n"
    bodies = [b"Subject: big %d\r\n\r\n" % i + line * (2000 + 1000 * i) for i in range(3)]

    async def main() -> None:
        async with TrioSMTPClient(smtp_sink.host, smtp_sink.port, tls="none") as client:
            outcomes = await client.send_many(
                ("big@example.test", "a@example.test", body) for body in bodies
            )
            assert [type(o) for o in outcomes] == [TransactionResult] * 3

    run(main)
    delivered = smtp_sink.wait_for_messages(3)
    assert [m.content for m in delivered] == [b.replace(b"\r\n", b"\n") for b in bodies]


def test_a_write_that_blocks_for_good_times_out() -> None:
    """The server answers the 354, then never reads again (the socket buffers fill):
    the body write waits for a writable socket (``wait_writable``) under the RFC 5321
    §4.5.3.2.5 data-block timeout, here 0.5 s of real time, with the read-ahead task
    beside it."""
    done = threading.Event()
    body = (b"x" * 998 + b"\r\n") * 32 * 1024  # 32 MiB: far more than the buffers hold

    def deaf(peer: Peer) -> None:
        peer.greet()
        for verb in (b"MAIL", b"RCPT", b"DATA"):
            peer.expect(verb)
        peer.send(b"250 ok\r\n250 ok\r\n354 go ahead\r\n")
        done.wait(PEER_TIMEOUT)

    with listening(socket.AF_INET, ("127.0.0.1", 0), deaf) as listener:

        async def main() -> None:
            port = listener.getsockname()[1]
            client = TrioSMTPClient("127.0.0.1", port, tls="none", timeout=Timeouts(data_block=0.5))
            await client.connect()
            with pytest.raises(SMTPTimeoutError) as info:
                await client.sendmail("a@example.test", ["b@example.test"], body)
            done.set()
            assert info.value.timeout == 0.5 and not info.value.delivery_status_unknown
            _assert_broken(client)

        try:
            run(main)
        finally:
            done.set()
