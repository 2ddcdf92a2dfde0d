"""The asyncio client's protocol (``asyncio_channel.Channel``) over socket pairs: the
server's last words kept across a failed write, the lazily armed deadline timer, the
read-ahead bound and the take-over of a stream pair.

Each test runs one ``asyncio.run`` bounded by ``asyncio.wait_for(..., BOUND)``; every
loop that waits for the peer is bounded in count.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from collections.abc import Awaitable, Callable, Iterator

import pytest

from smtpproto.adapters.asyncio_channel import Channel, take_over
from smtpproto.adapters.common import Step
from smtpproto.asyncio_client import AsyncSMTPClient
from smtpproto.drivers.session import MAX_READAHEAD, Write
from smtpproto.drivers.support import Request

BOUND = 10.0
SHORT = 0.2


def run(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(main(), BOUND)

    asyncio.run(bounded())


def _no_driver() -> Iterator[Request]:
    yield from ()


@pytest.mark.parametrize("family", ["unix", "tcp"])
def test_a_reply_sent_before_a_reset_survives_the_failed_write(family: str) -> None:
    """The server answers (552), then resets the connection with our bytes unread,
    before the loop ever read the reply: the next write fails at once, asyncio stops
    reading and closes the socket, and still the reply is handed out before the error.
    Nothing here lets the loop run between the reset and the failing write, so the
    salvage in ``connection_lost`` is the only way to get the reply."""

    async def main() -> None:
        if family == "unix":
            mine, theirs = socket.socketpair()
        else:
            with socket.create_server(("127.0.0.1", 0)) as listener:
                mine = socket.create_connection(listener.getsockname()[:2])
                theirs, _ = listener.accept()
        client = AsyncSMTPClient(sock=mine, timeout=5)
        try:
            await client._open()
            await client._send(Write(b"x" * 1000, 5.0), _no_driver(), Step())
            theirs.sendall(b"552 5.3.4 giving up\r\n")
            theirs.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            theirs.close()  # unread bytes (and SO_LINGER 0 for TCP): a reset
            with pytest.raises(OSError):
                for _ in range(100):  # TCP may take a write or two to see the reset
                    await client._send(Write(b"y" * 1000, 5.0), _no_driver(), Step())
            assert await client._read(5.0) == b"552 5.3.4 giving up\r\n"
            with pytest.raises(OSError):
                await client._read(5.0)
        finally:
            await client.aclose()
            theirs.close()

    run(main)


def test_a_later_deadline_outlives_the_timer_armed_for_an_earlier_one() -> None:
    """The timer armed for the first wait stays armed after it ends early; when it
    fires during a later wait with a later deadline it re-arms instead of timing out."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        mine, theirs = socket.socketpair()
        _, channel = await loop.create_connection(Channel, sock=mine)
        try:
            first = loop.time() + SHORT
            loop.call_later(SHORT / 4, theirs.send, b"250 ok\r\n")
            await channel.wait(first)  # ends when the reply arrives
            assert channel.take() == b"250 ok\r\n"
            second = loop.time() + 2 * SHORT
            with pytest.raises(TimeoutError):
                await channel.wait(second)
            assert loop.time() >= second - 0.01  # not the first wait's deadline
            with pytest.raises(TimeoutError):
                await channel.wait(loop.time())  # a deadline already passed
        finally:
            channel.abort()
            theirs.close()

    run(main)


def test_an_earlier_deadline_rearms_the_timer() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        mine, theirs = socket.socketpair()
        _, channel = await loop.create_connection(Channel, sock=mine)
        try:
            loop.call_later(SHORT / 4, theirs.send, b"250 ok\r\n")
            await channel.wait(loop.time() + 300)
            started = loop.time()
            with pytest.raises(TimeoutError):
                await channel.wait(started + SHORT)
            assert loop.time() - started < 300
            await channel.drain(math.inf)  # writing is not paused: no wait
        finally:
            channel.abort()
            theirs.close()

    run(main)


def test_reading_pauses_past_the_read_ahead_bound_until_taken() -> None:
    """RFC 2920 §3.2 bounded: past ``MAX_READAHEAD`` octets nobody took, the channel
    stops reading; ``take`` resumes it."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        mine, theirs = socket.socketpair()
        theirs.setblocking(False)
        transport, channel = await loop.create_connection(Channel, sock=mine)
        try:
            chunk = b"250 ok\r\n" * 8192
            for _ in range(1000):
                if not transport.is_reading():
                    break
                with contextlib.suppress(BlockingIOError):
                    theirs.send(chunk)
                await asyncio.sleep(0.001)
            assert not transport.is_reading()
            assert MAX_READAHEAD <= len(channel.inbox) < MAX_READAHEAD + 256 * 1024
            taken = channel.take()
            assert len(taken) >= MAX_READAHEAD and not channel.inbox
            assert transport.is_reading()
        finally:
            channel.abort()
            theirs.close()

    run(main)


def test_a_stream_pair_is_taken_over_with_what_it_buffered() -> None:
    """``streams=``: the bytes the StreamReader already holds, then the rest, reach the
    client; the given writer's transport is the one closed."""

    async def main() -> None:
        mine, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=mine)
        reader.feed_data(b"220 mx.example.org\r\n")  # as if it had arrived already
        channel = take_over(reader, writer)
        assert channel.transport is writer.transport
        assert channel.take() == b"220 mx.example.org\r\n"
        theirs.sendall(b"250 ok\r\n")
        await channel.wait(asyncio.get_running_loop().time() + 5)
        assert channel.take() == b"250 ok\r\n"
        theirs.close()
        for _ in range(100):
            if channel.eof:
                break
            await channel.wait(asyncio.get_running_loop().time() + 5)
        assert channel.eof and not channel.lost  # half-open, as streams keep it
        channel.abort()

    run(main)
