"""Blocking ``send_many``'s own Python per message, in memory, against the floor's.

The loopback rows (``bench_speed.py``) add system calls and the scheduler's noise to
what the client computes; this takes them away, to measure a change to the per-message
path (issue 14). Rows, every one once per round in a shuffled order:

* ``send_many`` — the blocking client's driver loop (``SMTPClient.send_many``, fast
  lane included) over a fake transport answering as Postfix's ``smtp-sink`` does (its
  EHLO; per write, the reply to the end of the content and the next group's replies in
  one read): the engine, the driver and the adapter's ``_drive``, no socket;
* ``engine`` — the ``ClientConnection`` alone: ``send_group``, the replies fed, the two
  events read, per message (no driver, no adapter);
* ``floor`` — ``bench/floor.py``'s loop per message (dot-stuffing, the write's
  concatenation, its reply reader over the same replies), a stand-in for its socket.

Each sample is client CPU (``time.process_time``) per message over ``--messages``;
the table gives the median and min-max over the rounds and, per round, the paired
ratio to the floor. Compare two trees by running this once with each on
``PYTHONPATH`` (``bench_revisions.py`` for the public API on loopback).

Run: ``.venv/bin/python bench/bench_send_many_cpu.py --rounds 7 [--messages 20000]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from floor import _Replies
from micro import paired_ratio, run_interleaved, spread_of
from workload import RECIPIENT, SENDER, make_message

from smtpproto.blocking import SMTPClient
from smtpproto.client_engine.config import ClientConfig
from smtpproto.client_engine.connection import ClientConnection
from smtpproto.client_engine.events import NEED_DATA, Ehlo, Mail, Rcpt, ReadyForContent

EHLO = (
    b"250-smtp-sink.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n250 DSN\r\n"
)
GROUP = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
QUEUED = b"250 2.0.0 Ok: queued\r\n"


class _SinkTransport(SMTPClient):
    """The blocking client with its socket replaced by ``smtp-sink``'s answers."""

    _replies: list[bytes]

    def _open(self) -> str | None:
        self._replies = [b"220 smtp-sink.example ESMTP\r\n"]
        return "127.0.0.1"

    def _close(self) -> None:
        self._replies = []

    def _send(self, request: Any, driver: Any, step: Any) -> None:
        data: bytes = request.data
        replies = self._replies
        if data.startswith(b"EHLO"):
            replies.append(EHLO)
        elif data.endswith(b"QUIT\r\n"):
            replies.append((QUEUED if data != b"QUIT\r\n" else b"") + b"221 Bye\r\n")
        elif data.endswith(b"DATA\r\n"):
            replies.append(GROUP if data.startswith(b"MAIL") else QUEUED + GROUP)
        elif data.endswith(b"\r\n.\r\n"):  # the last content's end, alone
            replies.append(QUEUED)
        elif data.startswith(b"RSET"):
            replies.append(b"250 2.0.0 Ok\r\n")
        else:
            raise AssertionError(f"unexpected write {data[:40]!r}")

    def _read(self, timeout: float | None) -> bytes:
        return self._replies.pop(0)


def _per_message(run: Callable[[int], object], messages: int) -> float:
    began = time.process_time()
    run(messages)
    return (time.process_time() - began) / messages * 1e6


def _send_many(message: bytes) -> Callable[[int], object]:
    def run(count: int) -> None:
        with _SinkTransport("127.0.0.1", 25, tls="none") as client:
            outcomes = client.send_many((SENDER, (RECIPIENT,), message) for _ in range(count))
        if len(outcomes) != count or not all(
            type(o).__name__ == "TransactionResult" for o in outcomes
        ):
            raise AssertionError("a message was not delivered")

    return run


def _engine(message: bytes) -> Callable[[int], object]:
    def run(count: int) -> None:
        conn = ClientConnection(ClientConfig())
        conn.receive_data(b"220 smtp-sink.example ESMTP\r\n")
        conn.next_event()
        conn.send(Ehlo(hostname="client.example"))
        conn.receive_data(EHLO)
        conn.next_event()
        conn.command_replies = False
        template = conn.group_template(Mail(sender=SENDER), (Rcpt(recipient=RECIPIENT),))
        if template is None:
            raise AssertionError("no fast-lane template")
        conn.send_group(None, template)
        conn.receive_data(GROUP)
        event = conn.next_event()
        for _ in range(count):
            conn.send_group(message, template)
            if conn.next_event() is not NEED_DATA:
                raise AssertionError("a reply came before it was read")
            conn.receive_data(QUEUED + GROUP)
            conn.next_event()
            event = conn.next_event()
        if type(event) is not ReadyForContent:
            raise AssertionError(f"unexpected {event!r}")

    return run


class _AnsweringSocket:
    """What ``floor.py``'s reply reader and write need of a socket: every ``recv``
    returns the replies to one write (the end of the content and the next group)."""

    def sendall(self, data: bytes) -> None:
        if not data:
            raise AssertionError("nothing to write")

    def recv(self, size: int) -> bytes:
        return QUEUED + GROUP


def _floor(message: bytes) -> Callable[[int], object]:
    envelope = f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RECIPIENT}>\r\nDATA\r\n".encode()
    sock = _AnsweringSocket()

    def run(count: int) -> None:
        replies = _Replies(sock)  # type: ignore[arg-type]
        for _ in range(count):  # ``floor.deliver``'s loop, its socket replaced
            content = message.replace(b"\r\n.", b"\r\n..")
            if content.startswith(b"."):
                content = b"." + content
            if not content.endswith(b"\r\n"):
                content += b"\r\n"
            sock.sendall(content + b".\r\n" + envelope)
            replies.expect(b"250", b"250", b"250", b"354")

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    message = make_message(args.size)
    work = {"send_many": _send_many, "engine": _engine, "floor": _floor}
    rows = {}
    for name, make in work.items():
        run = make(message)
        run(min(args.messages, 200))  # warm-up: imports, caches
        rows[name] = lambda run=run: _per_message(run, args.messages)
    rounds = run_interleaved(rows, args.rounds, args.seed)
    print(f"\n{args.messages} x {len(message)} octets, {args.rounds} rounds, in memory\n")
    print("| row | client CPU µs/msg | ÷ the floor's (paired) |")
    print("|---|---|---|")
    for name in rows:
        ratio = paired_ratio(rounds, name, "floor")
        shown = "-" if ratio is None else ratio.format(".2f", "x")
        print(f"| {name} | {spread_of(rounds, name).format('.2f')} | {shown} |")


if __name__ == "__main__":
    main()
