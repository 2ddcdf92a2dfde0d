"""``SMTPServer(max_message_size=0)`` advertises ``SIZE 0``, which RFC 1870 §4 defines
as "no fixed maximum message size": the server must then take a message of any size,
not refuse every one. smtplib, the real client, declares ``SIZE=`` when SIZE is
advertised (RFC 1870 §6)."""

from __future__ import annotations

import smtplib

from smtpproto.testing import run_server

BODY = b"Subject: any size\r\n\r\n" + b"x" * 5000 + b"\r\n"


def test_size_0_is_no_fixed_limit_for_smtplib() -> None:
    with run_server(starttls=False, max_message_size=0) as server:
        with smtplib.SMTP(server.host, server.port, timeout=15) as client:
            client.ehlo("client.test")
            assert client.esmtp_features["size"] == "0"
            client.sendmail("a@x.test", ["b@y.test"], BODY)  # SIZE=5023: was 552
            code, _ = client.docmd("MAIL", "FROM:<a@x.test>")  # and undeclared content
            assert code == 250
            assert client.rcpt("b@y.test")[0] == 250
            assert client.data(BODY)[0] == 250  # was 552 at the end of the data
        messages = server.wait_for_messages(2, timeout=15)
    assert [message.data for message in messages] == [BODY, BODY]
