"""Send a batch through a connection pool: the blocking pool's ``send_many`` with a
server that takes three transactions per connection (LIMITS MAILMAX=3, RFC 9422
§4.1), then two asyncio batches at once, each over its own pooled connection.

    python examples/pool_batch.py

The built-in server runs in a thread of this process on 127.0.0.1 (no TLS) and
refuses one recipient, so one outcome is a refusal; each message is stored once. The
blocking batch of 8 goes over two connections at once, and more as they reach
MAILMAX; each asyncio batch of 5 takes two (3 + 2 transactions), one after another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from smtpproto import Outcome, TransactionResult
from smtpproto.asyncio_client import AsyncSMTPPool
from smtpproto.blocking import SMTPPool
from smtpproto.exceptions import SMTPDeliveryStatusUnknown
from smtpproto.testing import Respond, Rule, run_server

Message = tuple[str, list[str], bytes]


def newsletter(count: int, first: int = 0) -> Iterator[Message]:
    """``count`` messages, made one at a time as the pool asks for them."""
    for number in range(first, first + count):
        recipient = "nobody@example.org" if number == 4 else f"reader{number}@example.org"
        content = f"Subject: issue {number}\r\n\r\nHello reader {number}.\r\n".encode()
        yield ("news@example.com", [recipient], content)


def report(index: int, outcome: Outcome) -> None:
    """Called once per message, in order, as soon as its outcome is known."""
    if isinstance(outcome, TransactionResult):
        return
    if isinstance(outcome, SMTPDeliveryStatusUnknown):
        print(f"message {index}: may have been delivered, do not resend")
    else:
        print(f"message {index} refused: {outcome}")


def send_blocking(host: str, port: int) -> None:
    with SMTPPool(host, port, tls="none", max_connections=2) as pool:
        outcomes = pool.send_many(newsletter(8), connections=2)  # two threads
        pool.send_many(newsletter(1, first=100), on_outcome=report)  # streamed: returns []
    delivered = sum(isinstance(outcome, TransactionResult) for outcome in outcomes)
    print(f"blocking: {len(outcomes)} outcomes, {delivered} delivered")
    for index, outcome in enumerate(outcomes):
        report(index, outcome)


async def send_async(host: str, port: int) -> None:
    async with AsyncSMTPPool(host, port, tls="none", max_connections=2) as pool:
        first, second = await asyncio.gather(
            pool.send_many(newsletter(5, first=10)), pool.send_many(newsletter(5, first=20))
        )
    delivered = sum(isinstance(o, TransactionResult) for o in [*first, *second])
    print(f"asyncio: 2 batches at once, {delivered} delivered")


def main() -> None:
    refuse = Rule(stage="rcpt", recipient="nobody@example.org", action=Respond(550, "No such user"))
    lines: list[str] = []
    with run_server(starttls=False, mailmax=3, rules=[refuse], transcript=lines.append) as server:
        send_blocking(server.host, server.port)
        asyncio.run(send_async(server.host, server.port))
        stored = server.wait_for_messages(18, timeout=10)
    print(f"the server stored {len(stored)} messages, {len({m.data for m in stored})} distinct")
    connections = sum(line.startswith("* connection from") for line in lines)
    past = sum(line.startswith("S: 451") for line in lines)
    print(f"MAIL refused past MAILMAX: {past}; connections opened: {connections}")


if __name__ == "__main__":
    main()
