"""The built-in server's idle timeout (RFC 5321 §4.5.3.2.7) without a loop timer:
connections note the time of their last input, and the server's ``IdleSweeper`` thread
has the loop sweep them about every ``interval_for(timeout)`` seconds (``idle.py``).

The sweep's decisions are tested on a clock the test sets (no timing asserted): a
connection idle for less than the timeout stays, one idle for the timeout gets the
policy's 421 and is closed, any input starts the idle time again, a delayed response
stops it until the reply is sent. With real time: an idle client gets its 421, no loop
timer is pending while a session is open, and the thread ends with the server (or with
its loop when the server was never closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest

from smtpproto.builtin_server import server as server_module
from smtpproto.builtin_server.idle import MAX_INTERVAL, MIN_INTERVAL, IdleSweeper, interval_for
from smtpproto.builtin_server.rules import Rule
from smtpproto.server import SMTPServer
from test_server_front_end_paths import MemoryTransport

TIMEOUT = 20.0


@pytest.mark.parametrize(
    ("timeout", "interval"),
    [
        (300.0, MAX_INTERVAL),
        (8.0, MAX_INTERVAL),
        (4.0, 0.5),
        (0.4, 0.05),
        (0.08, MIN_INTERVAL),
        (1e-4, MIN_INTERVAL),
        (1e-9, MIN_INTERVAL),
    ],
)
def test_the_sweep_interval_is_at_most_a_second_and_an_eighth_of_the_timeout(
    timeout: float, interval: float
) -> None:
    assert interval_for(timeout) == interval


def test_the_sweeper_refuses_a_useless_interval() -> None:
    async def make() -> None:
        IdleSweeper(asyncio.get_running_loop(), lambda: None, 0.0)

    with pytest.raises(ValueError, match="interval"):
        asyncio.run(make())


def test_a_loop_that_does_not_run_for_a_while_finds_one_sweep_not_one_per_interval() -> None:
    loop = asyncio.new_event_loop()
    sweeps: list[None] = []
    try:
        paused = IdleSweeper(loop, lambda: sweeps.append(None), MIN_INTERVAL)
        paused.start()
        time.sleep(30 * MIN_INTERVAL)  # the loop is not running meanwhile
        loop.run_until_complete(asyncio.sleep(0))
        paused.stop()  # (a sweep queued before it would not run after it)
        # One sweep for the 30 intervals (a second only if the thread queued one in
        # the instant the loop ran), not one per interval.
        assert 1 <= len(sweeps) <= 2
        running = IdleSweeper(loop, lambda: sweeps.append(None), MIN_INTERVAL)
        running.start()  # once a sweep ran, the next one is queued again
        deadline = time.monotonic() + TIMEOUT
        while len(sweeps) < 4 and time.monotonic() < deadline:
            loop.run_until_complete(asyncio.sleep(MIN_INTERVAL))
        running.stop()
        assert len(sweeps) >= 4
    finally:
        loop.close()


class Clock:
    """The server's clock, set by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _connected(
    server: SMTPServer, clock: Clock
) -> tuple[server_module._Connection, MemoryTransport]:
    await server.start(listen=False)
    server._clock = clock
    transport = MemoryTransport()
    protocol = server_module._Connection(server)
    protocol.connection_made(transport)
    return protocol, transport


def _read(protocol: server_module._Connection, server: SMTPServer, data: bytes) -> None:
    server._receive_buffer[: len(data)] = data
    protocol.buffer_updated(len(data))


def test_a_connection_times_out_once_idle_for_the_timeout() -> None:
    async def run() -> list[tuple[bool, bytes]]:
        clock = Clock()
        server = SMTPServer(starttls=False, timeout=10.0)
        protocol, transport = await _connected(server, clock)
        seen = []
        for now in (1009.9, 1005.0):  # idle for less than the timeout: stays
            clock.now = now
            server._sweep_idle()
            seen.append((transport.closed, b"".join(transport.written)[-30:]))
        clock.now = 1009.0
        _read(protocol, server, b"EHLO client.test\r\n")  # input: the idle time restarts
        clock.now = 1018.9
        server._sweep_idle()
        seen.append((transport.closed, b""))
        clock.now = 1019.0  # idle for the timeout since the EHLO
        server._sweep_idle()
        seen.append((transport.closed, b"".join(transport.written).rsplit(b"\r\n", 2)[-2]))
        server._sweep_idle()  # timed out once only
        seen.append((transport.closed, b"".join(transport.written).rsplit(b"\r\n", 2)[-2]))
        protocol.connection_lost(None)
        await server.close()
        return seen

    seen = asyncio.run(run())
    assert [closed for closed, _ in seen] == [False, False, False, True, True]
    assert seen[3][1].startswith(b"421 4.3.2 ") and b"Idle timeout" in seen[3][1]
    assert seen[4] == seen[3]


def test_every_read_restarts_the_idle_time() -> None:
    async def run() -> bool:
        clock = Clock()
        server = SMTPServer(starttls=False, timeout=10.0)
        protocol, transport = await _connected(server, clock)
        _read(protocol, server, b"EHLO client.test\r\n")
        for _ in range(10):  # 50 s of a client that writes a part of a line every 5 s
            clock.now += 5.0
            _read(protocol, server, b"NO")
            server._sweep_idle()
        closed = transport.closed
        protocol.connection_lost(None)
        await server.close()
        return closed

    assert asyncio.run(run()) is False


def test_a_delayed_response_stops_the_idle_time_until_its_reply() -> None:
    """A rule's delay (reading paused) is not idle time of the client's: the idle time
    starts again when the delayed reply is sent."""

    async def run() -> list[bool]:
        clock = Clock()
        rule = Rule(stage="mail", delay=0.05)
        server = SMTPServer(starttls=False, timeout=10.0, rules=[rule])
        protocol, transport = await _connected(server, clock)
        _read(protocol, server, b"EHLO client.test\r\n")
        _read(protocol, server, b"MAIL FROM:<a@x.test>\r\n")
        seen = []
        clock.now += 60.0  # the delay lasts (on this clock) far past the timeout
        server._sweep_idle()
        seen.append(transport.closed)
        for _ in range(200):  # the real delay: bounded wait for the delayed 250
            if b"250 2.1.0" in b"".join(transport.written):
                break
            await asyncio.sleep(0.01)
        clock.now += 9.0  # idle for less than the timeout since the reply
        server._sweep_idle()
        seen.append(transport.closed)
        clock.now += 1.0
        server._sweep_idle()
        seen.append(transport.closed)
        protocol.connection_lost(None)
        await server.close()
        return seen

    assert asyncio.run(run()) == [False, False, True]


async def _past_ehlo(
    server: SMTPServer,
) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to ``server``, read its greeting, send EHLO and read the whole reply
    (bounded: a reply of at most 100 lines, each within ``TIMEOUT``)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    greeting = await asyncio.wait_for(reader.readline(), TIMEOUT)
    writer.write(b"EHLO client.test\r\n")
    for _ in range(100):
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        if line[3:4] != b"-":  # the last line (or EOF: the caller's assertions fail)
            break
    return greeting, reader, writer


def test_an_idle_client_gets_421_and_no_loop_timer_is_pending_meanwhile() -> None:
    """With real time: no ``TimerHandle`` is left in the loop while the session waits
    (the cost the sweeper avoids), and the idle client is answered 421 and closed."""

    async def run() -> tuple[list[object], bytes, bytes]:
        loop = asyncio.get_running_loop()
        async with SMTPServer(starttls=False, timeout=0.4) as server:
            greeting, reader, writer = await _past_ehlo(server)
            # asyncio's own list of timers (private): what is still due, cancelled ones
            # aside (wait_for's timers are cancelled, not yet removed)
            pending = [handle for handle in loop._scheduled if not handle.cancelled()]  # type: ignore[attr-defined]
            rest = await asyncio.wait_for(reader.read(), TIMEOUT)  # the 421, then EOF
            writer.close()
        return pending, greeting, rest

    pending, greeting, rest = asyncio.run(run())
    assert pending == []
    assert greeting.startswith(b"220 ")
    assert rest.startswith(b"421 4.3.2 ") and rest.endswith(b"\r\n")


def _sweeper_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "smtpproto-idle-sweeper"]


def test_the_sweeper_thread_ends_with_the_server() -> None:
    async def run() -> tuple[IdleSweeper | None, IdleSweeper | None]:
        server = SMTPServer(starttls=False)
        await server.start()
        sweeper = server._sweeper
        assert sweeper is not None and sweeper.running
        await server.close()
        return sweeper, server._sweeper

    sweeper, after = asyncio.run(run())
    assert sweeper is not None and not sweeper.running
    assert after is None


def test_the_sweeper_thread_ends_with_its_loop_when_the_server_is_not_closed() -> None:
    async def run() -> IdleSweeper | None:
        server = SMTPServer(starttls=False, timeout=0.08)  # sweeps every 10 ms
        await server.start(listen=False)
        return server._sweeper

    sweeper = asyncio.run(run())
    assert sweeper is not None
    for _ in range(500):  # bounded: it notices the closed loop at its next sweep
        if not sweeper.running:
            break
        threading.Event().wait(0.01)
    assert not sweeper.running


def test_a_server_started_again_on_another_loop_sweeps_on_that_loop() -> None:
    """A server whose loop ended without ``close()`` (its sweeper ended with that loop),
    or whose earlier loop stays open but no longer runs, gets a sweeper on the loop it
    is started on again: else its connections there never timed out."""

    async def start(server: SMTPServer) -> IdleSweeper | None:
        await server.start(listen=False)
        return server._sweeper

    async def started_again(server: SMTPServer) -> tuple[bool, bool]:
        await server.start(listen=False)
        sweeper = server._sweeper
        here = sweeper is not None and sweeper.running
        ran = asyncio.Event()
        swept = server._sweep_idle

        def sweep() -> None:
            swept()
            ran.set()

        server._sweep_idle = sweep  # type: ignore[method-assign]
        if sweeper is not None:
            sweeper._sweep = sweep
        # bounded: a sweep on this loop comes within the interval (10 ms)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ran.wait(), TIMEOUT)
        await server.close()
        return here, ran.is_set()

    closed = SMTPServer(starttls=False, timeout=0.08)  # its first loop closed unclosed
    first = asyncio.run(start(closed))
    for _ in range(500):  # bounded: the first sweeper notices its closed loop
        if first is None or not first.running:
            break
        threading.Event().wait(0.01)
    assert asyncio.run(started_again(closed)) == (True, True)

    idle_loop = asyncio.new_event_loop()  # the first loop stays open, not running
    try:
        left = SMTPServer(starttls=False, timeout=0.08)
        earlier = idle_loop.run_until_complete(start(left))
        assert asyncio.run(started_again(left)) == (True, True)
        assert earlier is not None and not earlier.running  # replaced, not left behind
    finally:
        idle_loop.close()


def test_a_closed_connection_whose_peer_reads_nothing_is_dropped_a_timeout_later() -> None:
    """The 421 of the idle timeout (or the reply to QUIT) cannot be written to a peer
    that reads nothing: ``close()`` waits for it to drain, forever. One more timeout
    later the sweep aborts the connection (before, it stayed open for good: a client
    that never reads held a connection and its buffers for the server's life)."""

    async def run() -> list[tuple[bool, bool]]:
        clock = Clock()
        server = SMTPServer(starttls=False, timeout=10.0)
        idle, idle_transport = await _connected(server, clock)
        quit_, quit_transport = await _connected(server, clock)
        _read(idle, server, b"EHLO client.test\r\n")
        _read(quit_, server, b"EHLO client.test\r\n")
        _read(quit_, server, b"QUIT\r\n")  # closed: the 221 is still to be read
        seen = []
        for now in (1010.0, 1019.9, 1020.0):  # the 421 at 1010, dropped at 1020
            clock.now = now
            server._sweep_idle()
            seen.append((idle_transport.closed, idle_transport.aborted))
        seen.append((quit_transport.closed, quit_transport.aborted))
        idle.connection_lost(None)
        quit_.connection_lost(None)
        await server.close()
        return seen

    assert asyncio.run(run()) == [(True, False), (True, False), (True, True), (True, True)]


def test_a_client_that_never_reads_its_replies_is_dropped() -> None:
    """With real sockets: a client writes pipelined RSETs and never reads until the
    server stops reading it (its replies fill the socket); the idle timeout's 421
    cannot go out, and the connection is dropped a timeout later."""

    async def run() -> int:
        async with SMTPServer(starttls=False, timeout=0.2) as server:
            _, _reader, writer = await _past_ehlo(server)
            writer.transport.pause_reading()  # reads nothing from here on
            for _ in range(2000):  # bounded: until the server stops reading us
                writer.write(b"RSET\r\n" * 1000)
                await asyncio.sleep(0)
                if writer.transport.get_write_buffer_size() > 4 << 20:
                    break
            for _ in range(2000):  # bounded (20 s): until the server dropped it
                if not server._sessions:
                    break
                await asyncio.sleep(0.01)
            left = len(server._sessions)
            writer.transport.abort()
        return left

    assert asyncio.run(run()) == 0


def test_an_idle_timeout_during_the_tls_handshake_writes_no_plaintext() -> None:
    """After the 220 to STARTTLS only TLS may follow (RFC 3207 §4): a client that does
    not complete the handshake within the idle timeout (shorter than the handshake's
    own) is dropped without a reply; the plaintext 421 written into the handshake was
    garbage to a client whose TLS layer had started."""

    async def run() -> tuple[bytes, bytes]:
        async with SMTPServer(timeout=0.2, hostname="localhost") as server:
            _, reader, writer = await _past_ehlo(server)
            writer.write(b"STARTTLS\r\n")
            ready = await asyncio.wait_for(reader.readline(), TIMEOUT)
            rest = await asyncio.wait_for(reader.read(), TIMEOUT)  # no handshake: EOF
            writer.close()
        return ready, rest

    ready, rest = asyncio.run(run())
    assert ready.startswith(b"220 ")
    assert rest == b""


def test_a_sweeper_starts_once() -> None:
    """A second ``start()``, while it runs or after ``stop()``, is refused with a
    ``RuntimeError`` that says so, the sweeper left as it was."""
    loop = asyncio.new_event_loop()
    try:
        sweeper = IdleSweeper(loop, lambda: None, MIN_INTERVAL)
        sweeper.start()
        with pytest.raises(RuntimeError, match="starts once"):
            sweeper.start()
        assert sweeper.running and sweeper.serves(loop)
        sweeper.stop()
        with pytest.raises(RuntimeError, match="starts once"):
            sweeper.start()
        assert not sweeper.running
        never = IdleSweeper(loop, lambda: None, MIN_INTERVAL)
        never.stop()  # stopped before it started: it never will
        with pytest.raises(RuntimeError, match="starts once"):
            never.start()
        assert not never.running
    finally:
        loop.close()


def test_a_sweep_queued_before_stop_does_not_run_after_it() -> None:
    """The loop does not run while the thread queues a sweep; ``stop()`` comes first:
    when the loop runs again, that late sweep does nothing (the server that stopped
    its sweeper has closed its connections, or serves them from a new sweeper)."""
    loop = asyncio.new_event_loop()
    sweeps: list[None] = []
    try:
        sweeper = IdleSweeper(loop, lambda: sweeps.append(None), MIN_INTERVAL)
        sweeper.start()
        for _ in range(2000):  # bounded (20 s): until the thread queued a sweep
            if sweeper._queued:
                break
            threading.Event().wait(0.01)
        assert sweeper._queued
        sweeper.stop()
        loop.run_until_complete(asyncio.sleep(0))
        assert sweeps == []
    finally:
        loop.close()


def test_a_transport_closing_when_a_late_sweep_comes_gets_a_timeout_to_drain() -> None:
    """The server closes a connection (``SMTPServer.close`` does, for each session)
    just under a timeout after its last input; what is left to write drains. A sweep
    that comes then -- late: the loop was busy, or the interval ended just after the
    close -- must not abort it at once as a peer that reads nothing (its idle time
    since the input is over the timeout): a closing transport is dropped a timeout
    after its close, as after the idle timeout's own 421."""

    async def run() -> list[bool]:
        clock = Clock()
        server = SMTPServer(starttls=False, timeout=10.0)
        protocol, transport = await _connected(server, clock)
        _read(protocol, server, b"EHLO client.test\r\n")  # input at 1000
        clock.now = 1009.9
        protocol.close()
        seen = []
        for now in (1010.0, 1019.8, 1019.9):
            clock.now = now
            server._sweep_idle()
            seen.append(transport.aborted)
        protocol.connection_lost(None)
        await server.close()
        return seen

    assert asyncio.run(run()) == [False, False, True]


@pytest.mark.parametrize("starttls", [False, True])
def test_a_failed_second_start_leaves_the_running_server_as_it_was(starttls: bool) -> None:
    """``start()`` again on a listening server fails (its own port is taken). Before,
    the failure path stopped the sweeper of the first ``start()`` -- idle connections
    were never timed out again -- and removed the certificate it had made. Now only
    what the failed call made is undone: the server still times out an idle client."""

    async def run() -> tuple[bool, bool, bytes]:
        async with SMTPServer(starttls=starttls, timeout=0.2, hostname="localhost") as server:
            sweeper, cert = server._sweeper, server.cert_path
            with pytest.raises(OSError):
                await server.start()
            kept_sweeper = server._sweeper is sweeper and sweeper is not None and sweeper.running
            kept_cert = server.cert_path == cert and (cert is None or cert.exists())
            _, reader, writer = await _past_ehlo(server)
            rest = await asyncio.wait_for(reader.read(), TIMEOUT)  # the 421, then EOF
            writer.close()
        return kept_sweeper, kept_cert, rest

    kept_sweeper, kept_cert, rest = asyncio.run(run())
    assert kept_sweeper and kept_cert
    assert rest.startswith(b"421 4.3.2 ")
