"""What one transaction leaves behind never reaches the next one (the built-in server
over a loopback socket, each exchange waiting for its replies).

A message is the content of its own transaction only (RFC 5321 §4.1.1.2: MAIL starts a
new transaction and clears the buffers; §4.1.1.5 RSET discards everything), whatever
answered the MAIL: the ``Session`` hook, or a rule's own 2yz.
"""

from __future__ import annotations

import socket

from smtpproto.builtin_server.rules import Respond, Rule
from smtpproto.testing import RunningServer, run_server

TIMEOUT = 15


def _exchange(server: RunningServer, steps: list[tuple[bytes, int]]) -> list[bytes]:
    """Send each step's octets, then read the number of reply lines it must answer
    with (one per command; a multiline reply is read through its last line)."""
    replies: list[bytes] = []
    with (
        socket.create_connection((server.host, server.port), timeout=TIMEOUT) as raw,
        raw.makefile("rb") as reader,
    ):
        replies.append(reader.readline())  # 220
        for octets, count in steps:
            raw.sendall(octets)
            for _ in range(count):
                line = reader.readline()
                while line[3:4] == b"-":
                    line = reader.readline()
                replies.append(line)
    return replies


def test_a_chunk_of_an_abandoned_bdat_transaction_is_not_in_the_next_message() -> None:
    # A rule answers MAIL with its own 250, so the Session's ``mail`` hook never runs:
    # the chunk of the transaction RSET abandoned was prepended to the next message.
    rules = [Rule(stage="mail", action=Respond(250, "Sender fine"))]
    with run_server(starttls=False, rules=rules) as server:
        replies = _exchange(
            server,
            [
                (b"EHLO client.test\r\n", 1),
                (b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 5\r\nSTALE", 3),
                (b"RSET\r\n", 1),
                (b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 3 LAST\r\nnew", 3),
                (b"QUIT\r\n", 1),
            ],
        )
        (message,) = server.wait_for_messages(1, timeout=TIMEOUT)
    assert [line[:3] for line in replies] == [b"220", b"250"] + [b"250"] * 7 + [b"221"]
    assert message.data == b"new"
