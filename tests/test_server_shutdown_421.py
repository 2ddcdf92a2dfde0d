"""A server that stops says so: ``421`` before it closes each open session (RFC 5321
§3.8: a server closes the connection only after a 221 to QUIT, a 421 when the service
shuts down, or a timeout). It closed them silently, so a client mid-session saw the
connection drop with no reply. CPython's smtplib reads the 421; a raw socket checks
a session in the middle of DATA."""

from __future__ import annotations

import smtplib
import socket

from smtpproto.testing import run_server

TIMEOUT = 15


def test_smtplib_reads_a_421_when_the_server_stops() -> None:
    with run_server(starttls=False, hostname="mx.test") as server:
        client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)
        client.ehlo("client.test")
        assert client.mail("a@x.test")[0] == 250
    try:
        code, text = client.getreply()  # what the server wrote when it stopped
    finally:
        client.close()
    assert code == 421 and text.startswith(b"4.3.2 mx.test "), (code, text)


def test_a_session_in_the_middle_of_data_gets_a_421_then_eof() -> None:
    with run_server(starttls=False) as server:
        raw = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
        reader = raw.makefile("rb")
        assert reader.readline().startswith(b"220 ")
        raw.sendall(b"EHLO client.test\r\n")
        while reader.readline()[3:4] == b"-":
            pass
        raw.sendall(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n")
        assert [reader.readline()[:4] for _ in range(3)] == [b"250 ", b"250 ", b"354 "]
        raw.sendall(b"Subject: unfinished\r\n")
    try:
        assert reader.readline().startswith(b"421 4.3.2 ")
        assert reader.readline() == b""  # then closed
        assert server.messages == []
    finally:
        reader.close()
        raw.close()
