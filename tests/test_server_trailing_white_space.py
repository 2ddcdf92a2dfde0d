"""Trailing white space on a command line (RFC 5321 §4.1.1: "SMTP receivers SHOULD
tolerate trailing white space before the terminating <CRLF>"), against the built-in
server: CPython's smtplib (which writes ``EHLO name`` with the name as given) and a raw
loopback socket for the lines smtplib cannot write.

A BDAT line refused for its trailing space would leave its chunk to be read as command
lines (RFC 3030 §2: the size cannot be trusted from a line that did not parse).
"""

from __future__ import annotations

import smtplib
import socket

import pytest

from smtpproto.testing import run_server

TIMEOUT = 15


@pytest.mark.parametrize("verb", ["ehlo", "helo"])
def test_smtplib_greeting_with_trailing_white_space_is_accepted(verb: str) -> None:
    with (
        run_server(starttls=False) as server,
        smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client,
    ):
        code, _ = getattr(client, verb)("client.test \t ")
        assert code == 250
        client.sendmail("a@x.test", ["b@y.test"], b"Subject: t\r\n\r\nbody\r\n")
        (message,) = server.wait_for_messages(1, timeout=TIMEOUT)
    assert message.data == b"Subject: t\r\n\r\nbody\r\n"


def test_commands_with_trailing_white_space_over_a_socket() -> None:
    steps = [
        (b"EHLO client.test  \r\n", b"250 "),
        (b"MAIL FROM:<a@x.test> \t\r\n", b"250 "),
        (b"RCPT TO:<b@y.test>  \r\n", b"250 "),
        (b"BDAT 6 \r\nRSET\r\n", b"250 "),  # the chunk is "RSET\r\n", not a command
        (b"BDAT 4 LAST \t\r\nQUIT", b"250 "),
        (b"NOOP  \r\n", b"250 "),
        (b"RSET \t \r\n", b"250 "),
        (b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA  \r\n", b"354 "),
        (b"x\r\n.\r\n", b"250 "),
        (b"QUIT  \r\n", b"221 "),
    ]
    replies: list[bytes] = []
    with (
        run_server(starttls=False) as server,
        socket.create_connection((server.host, server.port), timeout=TIMEOUT) as raw,
        raw.makefile("rb") as reader,
    ):
        assert reader.readline().startswith(b"220 ")
        for octets, final in steps:
            raw.sendall(octets)
            for _ in range(40):  # every reply line up to the one this step ends with
                line = reader.readline()
                replies.append(line)
                if not line or line.startswith(final) or line[:1] in (b"4", b"5"):
                    break
        messages = server.wait_for_messages(2, timeout=TIMEOUT)
    assert not [line for line in replies if line[:1] in (b"4", b"5", b"")]
    assert [message.data for message in messages] == [b"RSET\r\nQUIT", b"x\r\n"]
