"""``SMTPServer.start(listen=False)`` and ``adopt``: a server that serves connections
accepted elsewhere (what ``smtpproto serve --workers`` builds on), and whose ``close``
still ends them although it never listened."""

from __future__ import annotations

import asyncio
import socket

from smtpproto.server import SMTPServer

TIMEOUT = 20.0


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> list[bytes]:
    replies = [await reader.readline()]
    writer.write(b"EHLO client.test\r\n")
    while (line := await reader.readline())[3:4] != b" ":
        assert line, "connection closed during EHLO"
    replies.append(line)
    for command in (b"MAIL FROM:<a@x.test>", b"RCPT TO:<b@y.test>", b"DATA"):
        writer.write(command + b"\r\n")
        replies.append(await reader.readline())
    writer.write(b"Subject: adopted\r\n\r\n..dot\r\n.\r\n")
    replies.append(await reader.readline())
    return replies


def test_a_server_that_does_not_listen_serves_an_adopted_connection_and_closes_it() -> None:
    async def main() -> tuple[list[bytes], bytes, list[bytes], list[int]]:
        loop = asyncio.get_running_loop()
        server = SMTPServer(starttls=False)
        await server.start(listen=False)
        counts = [server.open_connections]
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.setblocking(False)
            connecting = asyncio.ensure_future(asyncio.open_connection(*listener.getsockname()[:2]))
            accepted, _ = await asyncio.wait_for(loop.sock_accept(listener), TIMEOUT)
            reader, writer = await asyncio.wait_for(connecting, TIMEOUT)
        await server.adopt(accepted)
        counts.append(server.open_connections)
        replies = await asyncio.wait_for(_exchange(reader, writer), TIMEOUT)
        data = [message.data for message in server.messages]
        await server.close()  # never listened: still ends the session
        counts.append(server.open_connections)
        last = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
        return replies, last, data, counts

    replies, last, data, counts = asyncio.run(main())
    assert counts == [0, 1, 0]  # open_connections: what serve --workers compares
    assert [reply[:3] for reply in replies] == [b"220", b"250", b"250", b"250", b"354", b"250"]
    assert data == [b"Subject: adopted\r\n\r\n.dot\r\n"]
    # the end of the connection: the server's close() says 421 (RFC 5321 §3.8), closes
    assert last.startswith(b"421 4.3.2 ") and last.endswith(b"\r\n") and last.count(b"\n") == 1
