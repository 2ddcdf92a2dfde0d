"""One deadline per reply awaited, not per read (RFC 5321 §4.5.3.2; issue 11 item 5).

A server that trickles a reply one octet at a time, each octet well inside the
timeout, used to hold a client for as long as it liked: every ``Read`` started a new
timer. The drivers now mark the reads that continue a reply wait
(``Read(resume=True)``) and the adapters keep the deadline the wait started with.
trio runs under its ``MockClock`` (virtual time, exact); every adapter also meets a
real trickling server on 127.0.0.1 with small timeouts.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import trio
import trio.testing

from smtpproto.client_engine.config import Timeouts
from smtpproto.drivers.session import Read, Session
from smtpproto.exceptions import SMTPTimeoutError
from smtpproto.trio_client import TrioSMTPClient

from .facade import SyncClient

MakeClient = Callable[..., SyncClient]
GREETING = b"220 mx.example.org ESMTP trickling along\r\n"


# -- the driver's side: which reads resume a wait ----------------------------------------


def test_reads_after_the_first_of_a_reply_resume_its_wait() -> None:
    session = Session()
    driver = session.open(until="greeting")
    requests = [next(driver)]
    for octet in GREETING[:-1]:
        requests.append(driver.send(bytes([octet])))
    assert all(isinstance(r, Read) for r in requests)
    assert [r.resume for r in requests] == [False] + [True] * (len(GREETING) - 1)
    with pytest.raises(StopIteration):
        driver.send(GREETING[-1:])
    # The next reply awaited (NOOP's) starts a deadline of its own.
    noop = session.noop()
    assert next(noop).data == b"NOOP\r\n"  # type: ignore[union-attr]
    assert noop.send(None) == Read(session.conn.timeout, False)
    assert noop.send(b"25") == Read(session.conn.timeout, True)


# -- trio under a mock clock -------------------------------------------------------------


class _TricklingStream(trio.abc.Stream):
    """Hands out ``data`` one octet per ``gap`` seconds; swallows what is written."""

    def __init__(self, data: bytes, gap: float) -> None:
        self.data = data
        self.gap = gap

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.sleep(self.gap)
        octet, self.data = self.data[:1], self.data[1:]
        return octet

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@pytest.mark.parametrize("timeout", [30.0, 300.0])
def test_trio_trickled_greeting_times_out_once(timeout: float) -> None:
    """1 octet per 10 virtual seconds: the greeting would take 430 s; the greeting
    timeout ends the wait at exactly ``timeout`` (virtual time) however long it is."""
    clock = trio.testing.MockClock(autojump_threshold=0)
    data = GREETING * 20

    async def main() -> float:
        client = TrioSMTPClient(stream=_TricklingStream(data, 10.0), timeout=timeout)
        start = trio.current_time()
        with pytest.raises(SMTPTimeoutError) as info:
            await client.connect()
        assert info.value.timeout == timeout
        return trio.current_time() - start

    elapsed = trio.run(main, clock=clock)
    assert elapsed == pytest.approx(timeout)


def test_trio_reply_inside_the_timeout_is_read() -> None:
    """The other side: the whole greeting trickled within the timeout is a greeting."""
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main() -> None:
        gap = 1.0
        stream = _TricklingStream(GREETING, gap)
        client = TrioSMTPClient(stream=stream, timeout=len(GREETING) * gap + 0.5)
        reply = await client.connect(until="greeting")
        assert reply.code == 220
        await client.aclose()

    trio.run(main, clock=clock)


# -- every adapter against a real trickling server on loopback ---------------------------


@pytest.fixture
def trickling_server() -> Iterator[tuple[int, threading.Event]]:
    """127.0.0.1: sends the greeting one octet per 20 ms (about 0.9 s in all), then
    waits until the client goes or 10 s pass."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    done = threading.Event()

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            try:
                for octet in GREETING:
                    if done.wait(0.02):
                        return
                    conn.sendall(bytes([octet]))
                done.wait(10)
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], done
    finally:
        done.set()
        listener.close()
        thread.join(15)


def test_trickling_server_times_out_every_adapter(
    make_client: MakeClient, trickling_server: tuple[int, threading.Event]
) -> None:
    port, done = trickling_server
    client = make_client(host="127.0.0.1", port=port, timeout=Timeouts(greeting=0.3))
    start = time.monotonic()
    with pytest.raises(SMTPTimeoutError) as info:
        client.connect()
    done.set()
    assert info.value.timeout == 0.3 and info.value.waiting_for == "greeting"
    # Bounded, not timed: well under the 10 s the server would otherwise hold us.
    assert time.monotonic() - start < 9
    assert not client.session.usable
    client.close()
