"""The server side of the asyncio and trio adapter tests, written once over the
transport: a ``ScriptedPeer`` subclass supplies ``send``, ``expect`` and
``read_data``; the dialogue steps every script repeats are here."""

from __future__ import annotations

import abc

from .peer import EHLO

MESSAGE = b"Subject: test\r\n\r\n.leading dot\r\nbody\r\n"
#: ``MESSAGE`` as it crosses the wire inside DATA (RFC 5321 §4.5.2 dot-stuffing).
STUFFED = MESSAGE.replace(b"\r\n.leading", b"\r\n..leading")


class ScriptedPeer(abc.ABC):
    """The server end of one connection, as a scripted test drives it."""

    @abc.abstractmethod
    async def send(self, data: bytes) -> None:
        """Write ``data`` to the client."""

    @abc.abstractmethod
    async def expect(self, prefix: bytes) -> bytes:
        """The next command line; fails the test unless it starts with ``prefix``."""

    @abc.abstractmethod
    async def read_data(self) -> bytes:
        """DATA content up to the final ``CRLF.CRLF``, still dot-stuffed, with its
        last CRLF."""

    async def greet(self, ehlo: bytes = EHLO) -> None:
        await self.send(b"220 mx.example.org ESMTP\r\n")
        await self.expect(b"EHLO")
        await self.send(ehlo)

    async def expect_transaction(self) -> None:
        """The pipelined MAIL, RCPT and DATA of a one-recipient transaction."""
        await self.expect(b"MAIL")
        await self.expect(b"RCPT")
        await self.expect(b"DATA")

    async def go_ahead(self) -> bytes:
        """Accept MAIL and RCPT, answer DATA with 354 and return the content."""
        await self.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        return await self.read_data()

    async def deliver_one(self) -> bytes:
        """A whole one-recipient transaction, queued; returns the content."""
        await self.expect(b"MAIL FROM:")
        await self.expect(b"RCPT TO:")
        await self.expect(b"DATA")
        await self.send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go on\r\n")
        content = await self.read_data()
        await self.send(b"250 2.0.0 queued\r\n")
        return content
