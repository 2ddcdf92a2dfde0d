"""The asyncio client reads replies already in the kernel past the loop
(``asyncio_channel.Channel.receive_now``, issue 14): on a connection it opened itself,
before TLS, within ``READS_PER_PASS`` reads between two passes of the loop. The bytes
are the transport's next bytes, the end of the stream and a reset are reported as the
transport reports them, and a batch to a server that always answers at once still lets
other tasks run and a cancellation end it within a bounded number of messages.

Socket pairs make the kernel's state exact (the peer's bytes are there before the
read); every wait is bounded in count and by ``BOUND`` real seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator

import pytest

from interop.peers import SinkPeer
from smtpproto.adapters import asyncio_channel
from smtpproto.adapters.asyncio_channel import READS_PER_PASS, Channel, take_over
from smtpproto.asyncio_client import AsyncSMTPClient
from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers.batch import BatchItem
from smtpproto.exceptions import SMTPProtocolError

from .ticker import asyncio_ticker

BOUND = 20.0
MESSAGE = b"Subject: direct\r\n\r\n" + b"d" * 76 + b"\r\n.leading dot\r\n"
#: Messages a batch may take between two turns of another task, or after its cancel:
#: a loop pass may run the reads past the loop of two passes' worth, a message each.
SLACK = 2 * READS_PER_PASS + 2
SinkFactory = Callable[..., SinkPeer]


def run(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(main(), BOUND)

    asyncio.run(bounded())


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        mine = socket.create_connection(listener.getsockname()[:2])
        theirs, _ = listener.accept()
    return mine, theirs


async def _opened(mine: socket.socket) -> tuple[AsyncSMTPClient, Channel]:
    client = AsyncSMTPClient(sock=mine, timeout=5)
    await client._open()
    channel = client._channel
    assert channel is not None
    return client, channel


async def _until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds (bounded in passes)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the loop never got there")


def test_what_the_kernel_holds_is_read_at_once_within_the_bound() -> None:
    """Loopback bytes are in our receive queue when ``sendall`` returns. After
    ``READS_PER_PASS`` reads without a pass of the loop the channel leaves the bytes to
    the transport, which delivers them in order; then it reads past the loop again."""

    async def main() -> None:
        mine, theirs = _tcp_pair()
        client, channel = await _opened(mine)
        try:
            assert channel.receive_now() == b""  # nothing there: no wait, no data
            for index in range(READS_PER_PASS - 1):
                theirs.sendall(b"250 %d\r\n" % index)
                assert channel.receive_now() == b"250 %d\r\n" % index
            theirs.sendall(b"250 left to the loop\r\n")
            assert channel.receive_now() == b""  # the bound: the loop runs first
            assert channel.inbox == b""
            await _until(lambda: bool(channel.inbox))
            assert channel.take() == b"250 left to the loop\r\n"
            theirs.sendall(b"250 again\r\n")
            assert channel.receive_now() == b"250 again\r\n"
        finally:
            await client.aclose()
            theirs.close()

    run(main)


def test_the_bound_is_shared_by_a_threads_channels_not_by_threads() -> None:
    """Reads on one channel use up the bound for every channel of the thread's loop; a
    loop in another thread keeps its own count (a count shared by the process would
    stop it here). Each loop blocks while the other reads, so nothing runs between."""
    opened, exhausted = threading.Event(), threading.Event()
    elsewhere: list[bytes] = []

    def other_thread() -> None:
        async def main() -> None:
            mine, theirs = _tcp_pair()
            client, channel = await _opened(mine)
            try:
                opened.set()
                assert exhausted.wait(BOUND)  # this loop blocks: none of its callbacks run
                theirs.sendall(b"250 other thread\r\n")
                elsewhere.append(channel.receive_now())
            finally:
                await client.aclose()
                theirs.close()

        run(main)

    thread = threading.Thread(target=other_thread)
    thread.start()

    async def main() -> None:
        first_mine, first_theirs = _tcp_pair()
        second_mine, second_theirs = _tcp_pair()
        first_client, first = await _opened(first_mine)
        second_client, second = await _opened(second_mine)
        try:
            assert opened.wait(BOUND)
            for index in range(READS_PER_PASS):
                first_theirs.sendall(b"250 %d\r\n" % index)
                assert first.receive_now() == b"250 %d\r\n" % index
            second_theirs.sendall(b"250 second\r\n")
            assert second.receive_now() == b""  # the thread's bound, used up by ``first``
        finally:
            exhausted.set()
            thread.join(BOUND)
            await first_client.aclose()
            await second_client.aclose()
            first_theirs.close()
            second_theirs.close()
        assert not thread.is_alive()
        assert elsewhere == [b"250 other thread\r\n"]

    run(main)


def test_the_end_of_the_stream_is_left_to_the_transport() -> None:
    async def main() -> None:
        mine, theirs = _tcp_pair()
        client, channel = await _opened(mine)
        try:
            theirs.sendall(b"221 bye\r\n")
            theirs.shutdown(socket.SHUT_WR)
            assert channel.receive_now() == b"221 bye\r\n"
            assert channel.receive_now() == b""  # the end: reads past the loop stop
            assert not channel.eof  # the transport reports it, on its own read
            await _until(lambda: channel.eof)
            assert channel.receive_now() == b"" and not channel.lost
            assert await client._read(5.0) == b""
        finally:
            await client.aclose()
            theirs.close()

    run(main)


def test_a_reset_is_reported_as_the_transport_reports_a_failed_read() -> None:
    """The reset is consumed by the read past the loop (the transport's next read would
    see only an end of stream): the channel is lost with that error, the transport
    dropped, and its own later ``connection_lost`` changes nothing."""

    async def main() -> None:
        mine, theirs = _tcp_pair()
        client, channel = await _opened(mine)
        transport = channel.transport
        assert transport is not None
        try:
            theirs.sendall(b"250 ok\r\n")
            assert channel.receive_now() == b"250 ok\r\n"
            mine.send(b"unread by the peer\r\n")
            theirs.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            theirs.close()  # unread bytes and SO_LINGER 0: a reset
            select.select([mine], [], [], BOUND)  # the reset arrived; the loop has not run
            assert channel.receive_now() == b""
            assert channel.lost and isinstance(channel.failure, ConnectionResetError)
            assert transport.is_closing()
            failure = channel.failure
            await _until(lambda: transport.get_extra_info("socket").fileno() == -1)
            assert channel.failure is failure  # the transport's report was ignored
            with pytest.raises(ConnectionResetError):
                await client._read(5.0)
        finally:
            await client.aclose()

    run(main)


def test_streams_taken_over_are_never_read_past_their_transport() -> None:
    """A given stream pair may carry anything under its transport (TLS, a proxy):
    only a connection the client opened itself is read past the loop."""

    async def main() -> None:
        mine, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=mine)
        channel = take_over(reader, writer)
        try:
            theirs.sendall(b"250 ok\r\n")
            assert channel.receive_now() == b""
            await _until(lambda: bool(channel.inbox))
            assert channel.take() == b"250 ok\r\n"
        finally:
            channel.abort()
            await asyncio.sleep(0)
            theirs.close()

    run(main)


def _items(taken: list[int], count: int) -> Iterator[BatchItem]:
    for index in range(count):
        taken.append(index)
        yield f"s{index}@example.test", ["a@example.test"], MESSAGE


def test_other_tasks_run_during_a_batch_read_past_the_loop(
    smtp_sink_factory: SinkFactory,
) -> None:
    """smtp-sink answers each pipelined group at once: most replies are read past the
    loop, and still a task that only yields gets a turn every few messages."""
    sink = smtp_sink_factory(dump=False)
    count = 1500

    async def main() -> None:
        async with asyncio_ticker() as turns:

            def items() -> Iterator[BatchItem]:
                for item in _items([], count):
                    turns.note()
                    yield item

            async with AsyncSMTPClient(sink.host, sink.port, tls="none") as client:
                assert client._channel is not None and client._channel._fd >= 0
                outcomes = await client.send_many(items())
        assert [type(outcome) for outcome in outcomes] == [TransactionResult] * count
        assert len(turns.seen) == count and not turns.stalled(SLACK)

    run(main)


def test_other_tasks_run_during_a_loop_of_sendmail_calls(smtp_sink_factory: SinkFactory) -> None:
    """The bound on reads past the loop runs across operations (it is the thread's):
    calls that each find their replies at once still let the loop run every few."""
    sink = smtp_sink_factory(dump=False)
    count = 300

    async def main() -> None:
        async with (
            asyncio_ticker() as turns,
            AsyncSMTPClient(sink.host, sink.port, tls="none") as client,
        ):
            for index in range(count):
                turns.note()
                await client.sendmail(f"s{index}@example.test", "a@example.test", MESSAGE)
        assert not turns.stalled(SLACK)

    run(main)


def test_one_task_going_round_many_connections_still_lets_others_run(
    smtp_sink_factory: SinkFactory,
) -> None:
    """The bound on reads past the loop is the thread's, not each connection's: one task
    sending on eight connections in turn (every reply already in) lets the loop run
    every few calls, not every few calls per connection (a count per channel allowed
    eight times as many: this test failed with it)."""
    sink = smtp_sink_factory(dump=False)
    rounds, width = 60, 8

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(AsyncSMTPClient(sink.host, sink.port, tls="none"))
                for _ in range(width)
            ]
            for client in clients:  # every one reads past the loop
                assert client._channel is not None and client._channel._fd >= 0
            turns = await stack.enter_async_context(asyncio_ticker())
            for index in range(rounds):
                for client in clients:
                    turns.note()
                    await client.sendmail(f"s{index}@example.test", "a@example.test", MESSAGE)
        assert len(turns.seen) == rounds * width and not turns.stalled(SLACK)

    run(main)


def test_a_cancellation_ends_a_batch_read_past_the_loop(smtp_sink_factory: SinkFactory) -> None:
    sink = smtp_sink_factory(dump=False)
    taken: list[int] = []
    cancel_at = 300

    async def main() -> None:
        client = AsyncSMTPClient(sink.host, sink.port, tls="none")
        await client.connect()
        batch = asyncio.create_task(client.send_many(_items(taken, 100_000)))
        await _until(lambda: len(taken) >= cancel_at or batch.done())
        batch.cancel()
        cancelled_at = len(taken)
        with pytest.raises(asyncio.CancelledError):
            await batch
        assert cancel_at <= cancelled_at <= len(taken) <= cancelled_at + SLACK
        assert not client.session.usable and client._channel is None
        with pytest.raises(SMTPProtocolError, match="broken"):
            await client.noop()

    run(main)


def test_hooks_raising_during_reads_past_the_loop_reach_the_caller(
    smtp_sink_factory: SinkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no bound on the reads past the loop, the pump runs long stretches of the
    batch inline (from the task's step or one transport callback): a hook's
    ``BaseException`` raised there reaches the caller as itself, and the client is
    closed (``test_hook_exceptions`` covers replies delivered by the loop)."""
    sink = smtp_sink_factory(dump=False)
    monkeypatch.setattr(asyncio_channel, "READS_PER_PASS", 1_000_000)  # never the loop
    raised = KeyboardInterrupt("from the hook")

    def on_outcome(index: int, outcome: object) -> None:
        if index == 5:
            raise raised

    async def main() -> None:
        client = AsyncSMTPClient(sink.host, sink.port, tls="none")
        await client.connect()
        with pytest.raises(KeyboardInterrupt) as info:
            await client.send_many(_items([], 50), on_outcome=on_outcome)
        assert info.value is raised
        assert not client.session.usable and client._channel is None

    run(main)
