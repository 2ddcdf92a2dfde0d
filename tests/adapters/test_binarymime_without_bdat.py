"""``BODY=BINARYMIME`` without BDAT is refused before MAIL, the session usable.

RFC 3030 §3: BINARYMIME content goes only in BDAT chunks. With ``chunking=False`` the
engine refuses the DATA command, but only once MAIL and RCPT were queued, which used
to break the session (sendmail, send_message) and end a batch (send_many) although
nothing had been written. The drivers refuse it before MAIL; every adapter, against the
built-in server on 127.0.0.1 (CHUNKING, BINARYMIME, PIPELINING).
"""

from __future__ import annotations

from collections.abc import Callable
from email.message import Message

import pytest

from smtpproto import MailOptions
from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import run_server

from .facade import SyncClient

pytestmark = pytest.mark.interop

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10.0
GOOD = b"Subject: fine\r\n\r\nbody\r\n"
BINARY = MailOptions(body="BINARYMIME")


def test_binarymime_with_chunking_off_is_refused_before_mail(make_client: MakeClient) -> None:
    lines: list[str] = []
    message = Message()
    message["From"] = "bad@x.test"
    message["To"] = "r@x.test"
    message.set_payload("body\n")
    with run_server(starttls=False, transcript=lines.append) as server:
        with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
            caps = client.capabilities
            assert caps is not None and caps.chunking and caps.has("BINARYMIME")
            attempts: list[Callable[[], object]] = [
                lambda: client.sendmail(
                    "bad@x.test", ["r@x.test"], GOOD, options=BINARY, chunking=False
                ),
                lambda: client.sendmail(
                    "bad@x.test",
                    ["r@x.test"],
                    GOOD,
                    options=BINARY,
                    chunking=False,
                    stop_after="data",
                ),
                lambda: client.send_message(message, options=BINARY, chunking=False),
                lambda: client.send_many(
                    [("bad@x.test", ["r@x.test"], GOOD)] * 2, options=BINARY, chunking=False
                ),
            ]
            for attempt in attempts:
                with pytest.raises(SMTPProtocolError, match="must be sent with BDAT"):
                    attempt()
                assert client.session.usable
            result = client.sendmail("good@x.test", ["r@x.test"], GOOD, options=BINARY)
            assert result.delivered == ("r@x.test",)
        stored = server.wait_for_messages(1, timeout=TIMEOUT)
    assert [m.sender for m in stored] == ["good@x.test"]
    assert not [line for line in lines if "bad@x.test" in line]
