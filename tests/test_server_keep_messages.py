"""``SMTPServer(keep_messages=False)`` / ``run_server(keep_messages=False)``: no message is
kept in memory (what ``smtpproto serve`` uses, so a long run does not grow with every
message), ``on_message`` still sees each one, and waiting for messages is refused."""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from smtpproto.builtin_server.server import SMTPServer
from smtpproto.builtin_server.storage import StoredMessage
from smtpproto.testing import run_server

MESSAGE = b"Subject: hi\r\n\r\nHello there.\r\n"


def test_a_server_that_keeps_nothing_still_reports_each_message() -> None:
    seen: list[StoredMessage] = []
    with run_server(starttls=False, keep_messages=False, on_message=seen.append) as server:
        with smtplib.SMTP(server.host, server.port, timeout=20) as client:
            for number in range(3):
                client.sendmail("a@example.org", [f"b{number}@example.org"], MESSAGE)
        assert len(server.messages) == 0
        with pytest.raises(ValueError, match="keeps no messages"):
            server.wait_for_messages(1, timeout=1)
    assert [message.recipients for message in seen] == [(f"b{n}@example.org",) for n in range(3)]
    assert all(message.data == MESSAGE for message in seen)


def test_the_async_wait_is_refused_too() -> None:
    async def main() -> None:
        async with SMTPServer(starttls=False, keep_messages=False) as server:
            with pytest.raises(ValueError, match="keeps no messages"):
                await server.wait_for_messages(1, timeout=1)

    asyncio.run(main())


def test_keep_messages_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="keep_messages must be True or False"):
        SMTPServer(keep_messages="no")  # type: ignore[arg-type]
