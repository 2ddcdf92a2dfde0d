"""Python SMTP servers for the server-role rows, each run as its own process.

Usage: ``python bench/servers.py KIND PORT [MAILDIR]`` serves on ``127.0.0.1:PORT``
until SIGTERM. Kinds:

* ``builtin-drop`` — smtpproto's ``SMTPServer`` (no STARTTLS, no transcript) whose
  policy answers each complete message ``250`` without keeping it (``DropSession``);
* ``aiosmtpd-drop`` — aiosmtpd's ``SMTP`` whose handler answers ``250`` in
  ``handle_DATA`` without keeping the message;
* ``asyncio-minimal`` — the reference for what asyncio itself costs: a tiny
  ``asyncio.BufferedProtocol`` (``MinimalSMTP``) that answers every command line with a
  constant reply (220 on connect, 354 to DATA, 221 to QUIT, 250 to anything else) and
  skips content up to ``CRLF.CRLF``, with no parsing, no state checks, no policy and no
  limits. It is not a usable server; its CPU per message is the loop and system-call
  share of the built-in server's, so the table shows how much of the rest is ours;
* ``asyncio-minimal-timer`` — ``asyncio-minimal`` with the built-in server's idle
  timer (``MinimalTimedSMTP``: one ``call_at`` per connection, the loop's clock read per
  read): how much an idle timeout costs a loop that has a timer pending (``_run_once``
  then reads the clock and computes a timeout for ``epoll_wait`` on every iteration);
* ``aiosmtpd-maildir`` — aiosmtpd whose handler stores each message's content, as
  received, into ``MAILDIR`` with the very code ``smtpproto serve --maildir`` uses
  (``builtin_server/storage.py``'s ``MessageStore``, keeping nothing in memory): the
  same file format and names, the same system calls (tmp/ with ``O_EXCL``, one write,
  a rename into new/), no fsync, no header added by either. The rows then differ only
  in the server, not in how carefully each stores. aiosmtpd's own ``Mailbox``
  handler is not used: it parses every message into an ``email`` object and
  ``mailbox.Maildir`` fsyncs each file, which would measure the ``email`` package and
  the disk rather than the server.

Each runs in a fresh process, so the parent can read exactly this server's CPU time.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as AiosmtpdSession

from smtpproto import MessageComplete, Reply
from smtpproto.builtin_server.storage import MessageStore, StoredMessage
from smtpproto.server import Session, SMTPServer

__all__ = ["KINDS", "DropSession", "MinimalSMTP", "MinimalTimedSMTP", "main"]

HOST = "127.0.0.1"


class DropSession(Session):
    """The built-in server's policy, except that a complete message is not kept."""

    def message(self, event: MessageComplete, data: bytes) -> Reply:
        return Reply(250, (b"2.0.0 Ok: dropped",))


class _AiosmtpdDrop:
    async def handle_DATA(self, server: SMTP, session: AiosmtpdSession, envelope: Envelope) -> str:
        return "250 2.0.0 Ok: dropped"


class _AiosmtpdMaildir:
    def __init__(self, path: str) -> None:
        self.store = MessageStore(maildir=path, keep=False)
        self.store.prepare()

    async def handle_DATA(self, server: SMTP, session: AiosmtpdSession, envelope: Envelope) -> str:
        content = envelope.original_content
        if not isinstance(content, bytes):
            return "451 4.3.0 no content"
        sender = envelope.mail_from or ""
        message = StoredMessage(sender, tuple(envelope.rcpt_tos), content)
        try:
            queue_id = self.store.store(message)
        except OSError:
            return "451 4.3.0 Could not store the message"
        return f"250 2.0.0 Ok: queued as {queue_id}"


class MinimalSMTP(asyncio.BufferedProtocol):
    """Constant replies, one write per read, content skipped to ``CRLF.CRLF`` (see the
    module docstring: a cost reference, not a server). Reads into one buffer per server
    like the built-in server's ``_Connection``."""

    BUFFER = memoryview(bytearray(256 * 1024))

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.in_data = False
        self.tail = b""  # the last octets of content, where CRLF.CRLF may straddle reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 bench.example ESMTP\r\n")

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.BUFFER

    def buffer_updated(self, nbytes: int) -> None:
        data = self.BUFFER[:nbytes].tobytes()
        replies = []
        while data:
            if self.in_data:
                joined = self.tail + data
                end = joined.find(b"\r\n.\r\n")
                if end < 0:
                    self.tail, data = joined[-4:], b""
                    break
                self.in_data, self.tail = False, b""
                data = joined[end + 5 :]
                replies.append(b"250 2.0.0 Ok: dropped\r\n")
                continue
            end = data.find(b"\r\n")
            if end < 0:
                break  # smtp-source writes whole lines: nothing is kept over
            verb, data = data[:4].upper(), data[end + 2 :]
            if verb == b"DATA":
                self.in_data, self.tail = True, b"\r\n"
                replies.append(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                replies.append(b"221 bye\r\n")
            else:
                replies.append(b"250 ok\r\n")
        if replies and self.transport is not None:
            self.transport.write(b"".join(replies))
            if replies[-1].startswith(b"221"):
                self.transport.close()

    def eof_received(self) -> bool:
        return False


class MinimalTimedSMTP(MinimalSMTP):
    """``MinimalSMTP`` with an idle timer kept the way the built-in server keeps it:
    armed once per connection (300 s), each read only noting the time."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        loop = asyncio.get_running_loop()
        self.last_input = loop.time()
        self.timer = loop.call_at(self.last_input + 300.0, transport.close)

    def buffer_updated(self, nbytes: int) -> None:
        self.last_input = time.monotonic()
        super().buffer_updated(nbytes)

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()


async def _asyncio_minimal(
    port: int, _: list[str], protocol: type[MinimalSMTP] = MinimalSMTP
) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol, HOST, port)
    async with server:
        await server.serve_forever()


async def _asyncio_minimal_timer(port: int, rest: list[str]) -> None:
    await _asyncio_minimal(port, rest, MinimalTimedSMTP)


async def _builtin_drop(port: int, _: list[str]) -> None:
    server = SMTPServer(host=HOST, port=port, starttls=False, session_class=DropSession)
    async with server:
        await server.serve_forever()


async def _aiosmtpd(handler: object, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="bench.example"), HOST, port)
    async with server:
        await server.serve_forever()


async def _aiosmtpd_drop(port: int, _: list[str]) -> None:
    await _aiosmtpd(_AiosmtpdDrop(), port)


async def _aiosmtpd_maildir(port: int, rest: list[str]) -> None:
    await _aiosmtpd(_AiosmtpdMaildir(rest[0]), port)


KINDS: dict[str, Callable[[int, list[str]], Coroutine[Any, Any, None]]] = {
    "builtin-drop": _builtin_drop,
    "asyncio-minimal": _asyncio_minimal,
    "asyncio-minimal-timer": _asyncio_minimal_timer,
    "aiosmtpd-drop": _aiosmtpd_drop,
    "aiosmtpd-maildir": _aiosmtpd_maildir,
}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in KINDS or not argv[1].isdigit():
        print(f"usage: servers.py {{{','.join(KINDS)}}} PORT [MAILDIR]", file=sys.stderr)
        return 2
    if argv[0] == "aiosmtpd-maildir" and len(argv) != 3:
        print("aiosmtpd-maildir needs MAILDIR", file=sys.stderr)
        return 2
    asyncio.run(KINDS[argv[0]](int(argv[1]), argv[2:]))  # until SIGTERM
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
