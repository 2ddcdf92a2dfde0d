"""Send a message with the blocking client, then the same with asyncio.

    python examples/sending.py                        # against the built-in server
    python examples/sending.py mail.example.com 587   # against yours (STARTTLS required)

Without arguments the built-in server runs in a thread of this process, on 127.0.0.1
and a free port, with a self-signed certificate the clients trust for this run only.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from email.message import EmailMessage

from smtpproto.asyncio_client import AsyncSMTPClient
from smtpproto.blocking import SMTPClient
from smtpproto.testing import run_server


def build_message(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "alice@example.com"
    message["To"] = "bob@example.org"
    message["Subject"] = subject
    message.set_content("Hello Bob,\n\nthis went through smtpproto.\n")
    return message


def send_blocking(host: str, port: int, context: ssl.SSLContext | None) -> None:
    # The envelope (MAIL FROM, RCPT TO) comes from the From/To headers.
    with SMTPClient(host, port, ssl_context=context) as client:
        result = client.send_message(build_message("blocking"))
    print("blocking: delivered to", ", ".join(result.delivered))


async def send_async(host: str, port: int, context: ssl.SSLContext | None) -> None:
    async with AsyncSMTPClient(host, port, ssl_context=context) as client:
        result = await client.send_message(build_message("asyncio"))
    print("asyncio: delivered to", ", ".join(result.delivered))


def main(argv: list[str]) -> None:
    if argv:
        host, port = argv[0], int(argv[1])
        send_blocking(host, port, None)  # None: the system's CAs verify the server
        asyncio.run(send_async(host, port, None))
        return
    with run_server() as server:
        context = server.ssl_context()
        send_blocking(server.host, server.port, context)
        asyncio.run(send_async(server.host, server.port, context))
        for stored in server.wait_for_messages(2, timeout=10):
            subject = stored.data.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0]
            print(f"server received {subject.decode()!r} for {', '.join(stored.recipients)}")


if __name__ == "__main__":
    main(sys.argv[1:])
