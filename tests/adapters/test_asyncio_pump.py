"""The asyncio client runs its driver from the transport's callbacks (``asyncio_client``
``_Pump``, issue 14): a whole ``send_many`` batch with a handful of task wake-ups instead
of one per reply, with the task's context variables, the same per-reply deadlines, and
the task taking over for everything else (a cancellation, EOF, a write the transport
cannot take now). Every other asyncio test runs through the pump as well.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from typing import Any

import pytest

from smtpproto.adapters import asyncio_client
from smtpproto.adapters.asyncio_channel import Channel
from smtpproto.asyncio_client import AsyncSMTPClient
from smtpproto.client_engine.config import ClientConfig
from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers.batch import BatchItem, Outcome
from smtpproto.exceptions import SMTPDeliveryStatusUnknown, SMTPTimeoutError
from smtpproto.testing import RunningServer, run_server

BOUND = 20.0
COUNT = 40

#: What a test's task sets; hooks run by the pump must see it.
_REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def _items(count: int) -> Iterator[BatchItem]:
    for index in range(count):
        yield (f"s{index}@example.org", ["b@example.org"], b"Subject: %d\r\n\r\nbody\r\n" % index)


def _run(main: Any) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(main(), BOUND)

    asyncio.run(bounded())


def test_a_batch_takes_a_few_task_wakeups_not_one_per_reply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    wait = Channel.wait

    async def counted(self: Channel, deadline: float) -> None:
        waits.append(deadline)
        await wait(self, deadline)

    monkeypatch.setattr(Channel, "wait", counted)

    async def main() -> None:
        with run_server(starttls=False) as server:
            async with AsyncSMTPClient("127.0.0.1", server.port, tls="none", timeout=10) as client:
                waits.clear()
                outcomes = await client.send_many(_items(COUNT), chunking=False)
                assert client._channel is not None and client._channel.consumer is None
            assert len(server.messages) == COUNT
        assert all(isinstance(outcome, TransactionResult) for outcome in outcomes)
        assert [outcome.sender for outcome in outcomes] == [  # type: ignore[union-attr]
            f"s{index}@example.org" for index in range(COUNT)
        ]

    _run(main)
    # DATA, not BDAT: a 354 to wait for per message, then the final reply with the next
    # group's; the task waited about once per message without the pump (42 here).
    assert len(waits) < COUNT // 4


@pytest.mark.parametrize("operation", ["send_many", "sendmail"])
def test_hooks_run_by_the_pump_see_the_tasks_context(operation: str) -> None:
    seen: list[tuple[str, str]] = []

    def transcript(direction: str, line: bytes) -> None:
        seen.append(("transcript", _REQUEST_ID.get()))

    def on_outcome(index: int, outcome: Outcome) -> None:
        seen.append(("outcome", _REQUEST_ID.get()))

    async def main() -> None:
        config = ClientConfig(transcript=transcript)
        with run_server(starttls=False) as server:
            async with AsyncSMTPClient(
                "127.0.0.1", server.port, tls="none", timeout=10, config=config
            ) as client:
                _REQUEST_ID.set("request-42")
                if operation == "send_many":
                    assert await client.send_many(_items(5), on_outcome=on_outcome) == []
                else:
                    for sender, recipients, content in _items(3):
                        await client.sendmail(sender, recipients, content)
                _REQUEST_ID.set("after")

    _run(main)
    during = seen[seen.index(("transcript", "request-42")) :]
    during = [entry for entry in during if entry[1] != "after"]  # QUIT, after the set
    assert during and all(value == "request-42" for _, value in during)
    if operation == "send_many":
        assert [kind for kind, _ in during].count("outcome") == 5


async def _stalling_server(answered: int) -> tuple[asyncio.Server, int]:
    """A server that answers ``answered`` pipelined transactions, then goes silent."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"220 mx ESMTP\r\n")
            await reader.readuntil(b"\r\n")
            writer.write(b"250-mx\r\n250 PIPELINING\r\n")
            for _ in range(answered):
                for _ in range(3):
                    await reader.readuntil(b"\r\n")
                writer.write(b"250 ok\r\n250 ok\r\n354 go\r\n")
                await reader.readuntil(b"\r\n.\r\n")
                writer.write(b"250 queued\r\n")
            await asyncio.sleep(BOUND)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_a_reply_that_never_comes_times_out_while_the_pump_waits() -> None:
    async def main() -> None:
        server, port = await _stalling_server(answered=3)
        try:
            client = AsyncSMTPClient("127.0.0.1", port, tls="none", timeout=0.3)
            await client.connect()
            outcomes = await client.send_many(_items(6))
            assert all(isinstance(outcome, TransactionResult) for outcome in outcomes[:3])
            assert isinstance(outcomes[3], SMTPTimeoutError)
            assert not client.session.usable and client._channel is None
        finally:
            server.close()

    _run(main)


def test_a_cancellation_while_the_pump_waits_breaks_the_client() -> None:
    async def main() -> None:
        server, port = await _stalling_server(answered=2)
        try:
            client = AsyncSMTPClient("127.0.0.1", port, tls="none", timeout=10)
            await client.connect()
            channel = client._channel
            assert channel is not None
            task = asyncio.create_task(client.send_many(_items(5)))
            for _ in range(200):  # until the batch waits on the silent server
                await asyncio.sleep(0.01)
                if channel.consumer is not None and len(client.session.conn.outstanding) > 0:
                    break
            assert channel.consumer is not None
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert channel.consumer is None and channel.transport is not None
            assert channel.transport.is_closing()
            assert not client.session.usable and client._channel is None
        finally:
            server.close()

    _run(main)


def test_a_connection_lost_while_the_pump_waits_reports_the_messages_in_flight() -> None:
    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"220 mx ESMTP\r\n")
            await reader.readuntil(b"\r\n")
            writer.write(b"250-mx\r\n250 PIPELINING\r\n")
            for _ in range(3):
                await reader.readuntil(b"\r\n")
            writer.write(b"250 ok\r\n250 ok\r\n354 go\r\n")
            await reader.readuntil(b"\r\n.\r\n")
            writer.close()  # the final reply never comes: EOF

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        try:
            port = server.sockets[0].getsockname()[1]
            client = AsyncSMTPClient("127.0.0.1", port, tls="none", timeout=10)
            await client.connect()
            outcomes = await client.send_many(_items(3))
            assert isinstance(outcomes[0], SMTPDeliveryStatusUnknown)
            assert not client.session.usable and client._channel is None
        finally:
            server.close()

    _run(main)


def test_a_write_the_transport_refuses_is_handed_back_to_the_task() -> None:
    """The content is written by the pump (after the 354: DATA, not BDAT); a transport
    that raises on it (misuse, not a connection failure) makes the operation raise that
    error from the task, and the client is dropped, never reused."""

    async def main() -> None:
        with run_server(starttls=False) as server:
            client = AsyncSMTPClient("127.0.0.1", server.port, tls="none", timeout=10)
            await client.connect()
            channel = client._channel
            assert channel is not None and channel.transport is not None
            write = channel.transport.write
            writes: list[bytes] = []

            def refusing(data: bytes | bytearray | memoryview) -> None:
                writes.append(bytes(data))
                if b"Subject:" in data:
                    raise RuntimeError("the transport refuses this write")
                write(data)

            channel.transport.write = refusing  # type: ignore[method-assign]
            with pytest.raises(RuntimeError, match="refuses"):
                await client.sendmail(
                    "a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nhi\r\n", chunking=False
                )
            # Tried by the pump, then once more by the task, which raised it.
            assert [b"Subject:" in data for data in writes] == [False, True, True]
            assert not client.session.usable and client._channel is None
            assert channel.consumer is None

    _run(main)


def test_a_failure_of_the_pump_itself_reaches_the_awaiting_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not the driver's (``tests/adapters/test_hook_exceptions.py`` covers the hooks): the
    pump's own step fails in the transport's callback. The awaiting operation raises
    that error, the client is dropped, and nothing reaches the loop's exception handler
    (asyncio would report a fatal error of the transport)."""
    failure = RuntimeError("the pump failed")
    retime = Channel.retime

    def failing(self: Channel, deadline: float) -> None:
        if asyncio.current_task() is None:  # from the transport's callback
            raise failure
        retime(self, deadline)

    reported: list[dict[str, Any]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: reported.append(context))
        with run_server(starttls=False) as server:
            client = AsyncSMTPClient("127.0.0.1", server.port, tls="none", timeout=10)
            await client.connect()
            channel = client._channel
            assert channel is not None and channel.transport is not None
            monkeypatch.setattr(Channel, "retime", failing)
            with pytest.raises(RuntimeError) as info:
                await client.send_many(_items(COUNT), chunking=False)
            assert info.value is failure
            assert not client.session.usable and client._channel is None
            assert channel.consumer is None and channel.transport.is_closing()

    _run(main)
    assert reported == []


def _tls_client(server: RunningServer) -> AsyncSMTPClient:
    return AsyncSMTPClient(
        server.host,
        server.port,
        tls="required",
        ssl_context=server.ssl_context(),
        server_hostname="localhost",
        timeout=10,
    )


def test_a_batch_over_tls_takes_a_few_task_wakeups(monkeypatch: pytest.MonkeyPatch) -> None:
    """After STARTTLS the TLS transport calls the same channel, and the pump runs the
    batch from its callback as on a plaintext connection."""
    waits: list[float] = []
    wait = Channel.wait

    async def counted(self: Channel, deadline: float) -> None:
        waits.append(deadline)
        await wait(self, deadline)

    monkeypatch.setattr(Channel, "wait", counted)

    async def main() -> None:
        with run_server() as server:
            async with _tls_client(server) as client:
                assert client._channel is not None and client._channel.tls
                waits.clear()
                outcomes = await client.send_many(_items(COUNT), chunking=False)
            received = server.wait_for_messages(COUNT, BOUND)
        assert [type(outcome) for outcome in outcomes] == [TransactionResult] * COUNT
        assert [message.sender for message in received] == [
            f"s{index}@example.org" for index in range(COUNT)
        ]

    _run(main)
    assert len(waits) < COUNT // 4


def test_over_tls_the_pump_writes_only_within_the_unread_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under TLS the server's last words cannot be salvaged after a failed write, so
    past ``_UNREAD_WINDOW`` octets written since the last read a write lets the loop
    read first (``_send``). The pump hands such a write to the task: every write it
    makes from the transport's callback stays within the window."""
    window = 4096
    monkeypatch.setattr(asyncio_client, "_UNREAD_WINDOW", window)
    body = b"Subject: big\r\n\r\n" + (b"b" * 78 + b"\r\n") * 800  # 64 KiB: past it
    writes: list[tuple[bool, int, int]] = []  # (from the callback, unread before, size)

    async def main() -> None:
        with run_server() as server:
            async with _tls_client(server) as client:
                channel = client._channel
                assert channel is not None and channel.tls and channel.transport is not None
                write = channel.transport.write

                def recording(data: bytes | bytearray | memoryview) -> None:
                    writes.append((asyncio.current_task() is None, client._unread, len(data)))
                    write(data)

                channel.transport.write = recording  # type: ignore[method-assign]
                outcomes = await client.send_many(_items(COUNT), chunking=False)
                result = await client.sendmail(
                    "big@example.org", ["b@example.org"], body, chunking=False
                )
            assert [type(outcome) for outcome in outcomes] == [TransactionResult] * COUNT
            assert result.data_reply is not None and result.data_reply.code == 250
            received = server.wait_for_messages(COUNT + 1, BOUND)
            assert received[-1].data.endswith(body)

    _run(main)
    from_callback = [(unread, size) for called_back, unread, size in writes if called_back]
    assert len(from_callback) > COUNT // 2  # the pump wrote most of the batch
    assert all(unread + size <= window for unread, size in from_callback)
    assert any(size > window for called_back, _, size in writes if not called_back)
