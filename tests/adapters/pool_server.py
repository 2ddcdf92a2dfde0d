"""A small SMTP server that fails on purpose, for the pool tests: asyncio, on
127.0.0.1, in a thread of its own so that blocking, asyncio and trio pools can all use it.

It counts what a pool must be judged by: connections opened and open at once, every
message whose final dot arrived (delivered or not answered), and the commands seen.
Faults, by message number (1-based, over the server's life) or per connection:

* ``close_after_reply``: close the connection right after answering a message (the
  server "closed it while idle": the pool finds out at its next use);
* ``refuse_rcpt_421``: answer that message's RCPT with 421 and close (mid-transaction);
* ``refuse_rcpt_550``: answer that message's RCPT with 550 (the session goes on);
* ``drop_after_dot``: take that message's content, then close without a reply (the
  "delivery status unknown" case);
* ``reply_delay``: seconds to wait before each reply (to see concurrency).

``pipelining`` (default on) says whether EHLO advertises PIPELINING; ``auth`` adds
``AUTH PLAIN XOAUTH2`` (any credentials are accepted; ``auth_lines`` keeps them).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

#: Seconds any read of the server may wait; a test never hangs on it.
READ_LIMIT = 10.0


@dataclass
class FlakyServer:
    close_after_reply: bool = False
    refuse_rcpt_421: frozenset[int] = frozenset()
    refuse_rcpt_550: frozenset[int] = frozenset()
    drop_after_dot: frozenset[int] = frozenset()
    reply_delay: float = 0.0
    auth: bool = False
    pipelining: bool = True
    port: int = 0
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    messages: list[bytes] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    mail_commands: int = 0
    auth_lines: list[bytes] = field(default_factory=list)

    def all_closed(self, limit: float = READ_LIMIT) -> bool:
        """Whether every connection has ended on the server's side, waiting up to ``limit``
        seconds: a client's close reaches the server's handler a moment after the client
        returns, so a test asks this instead of reading ``open_now`` at once."""
        deadline = time.monotonic() + limit
        while self.open_now and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.open_now == 0

    async def _reply(self, writer: asyncio.StreamWriter, text: bytes) -> None:
        if self.reply_delay:
            await asyncio.sleep(self.reply_delay)
        writer.write(text)
        await writer.drain()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:  # the client going away ends the session: nothing to answer
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, TimeoutError):
                await self._session(reader, writer)
        finally:
            self.open_now -= 1
            writer.transport.abort()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._reply(writer, b"220 flaky.test ESMTP\r\n")
        number = 0
        while True:
            line = await asyncio.wait_for(reader.readline(), READ_LIMIT)
            if not line:
                return
            verb = line[:4].upper().decode("ascii", "replace")
            self.commands.append(verb)
            if verb == "EHLO":
                extensions = b"250-PIPELINING\r\n" if self.pipelining else b""
                extensions += b"250-AUTH PLAIN XOAUTH2\r\n" if self.auth else b""
                await self._reply(writer, b"250-flaky.test\r\n" + extensions + b"250 8BITMIME\r\n")
            elif verb == "AUTH":
                self.auth_lines.append(line)
                await self._reply(writer, b"235 2.7.0 ok\r\n")
            elif verb == "MAIL":
                self.mail_commands += 1
                number = self.mail_commands
                await self._reply(writer, b"250 2.1.0 ok\r\n")
            elif verb == "RCPT":
                if number in self.refuse_rcpt_421:
                    await self._reply(writer, b"421 4.3.2 going down\r\n")
                    return
                if number in self.refuse_rcpt_550:
                    await self._reply(writer, b"550 5.1.1 no such user\r\n")
                    continue
                await self._reply(writer, b"250 2.1.5 ok\r\n")
            elif verb == "DATA" and number in self.refuse_rcpt_550:
                await self._reply(writer, b"554 5.5.1 no valid recipients\r\n")
            elif verb == "DATA":
                await self._reply(writer, b"354 go on\r\n")
                content = await asyncio.wait_for(reader.readuntil(b"\r\n.\r\n"), READ_LIMIT)
                self.messages.append(content)
                if number in self.drop_after_dot:
                    return
                await self._reply(writer, b"250 2.0.0 queued\r\n")
                if self.close_after_reply:
                    return
            elif verb == "QUIT":
                await self._reply(writer, b"221 2.0.0 bye\r\n")
                return
            else:  # NOOP, RSET
                await self._reply(writer, b"250 2.0.0 ok\r\n")


@contextlib.contextmanager
def flaky_server(**faults: object) -> Iterator[FlakyServer]:
    """Run a ``FlakyServer`` with ``faults`` on 127.0.0.1 until the block ends."""
    server = FlakyServer(**faults)  # type: ignore[arg-type]  # the dataclass checks names
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()

    async def main() -> None:
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        server.port = listener.sockets[0].getsockname()[1]
        started.set()
        await stop.wait()
        listener.close()  # not wait_closed(): since 3.12 it waits for every handler

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert started.wait(READ_LIMIT), "the flaky server did not start"
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(READ_LIMIT)
        assert not thread.is_alive(), "the flaky server did not stop"
        handlers = asyncio.all_tasks(loop)
        for task in handlers:
            task.cancel()
        if handlers:
            loop.run_until_complete(asyncio.gather(*handlers, return_exceptions=True))
        loop.close()
