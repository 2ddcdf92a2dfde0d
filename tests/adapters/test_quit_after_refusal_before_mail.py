"""Leaving a client's ``with`` block by an ``SMTPProtocolError`` that left the session
usable still says QUIT (RFC 5321 §4.1.1.10), as ``smtpproto.send`` documents ("a bad
address or option before any command of the transaction (then QUIT)"); one that broke
the session does not. Every adapter, against the built-in server on 127.0.0.1, whose
transcript shows what the client sent.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import run_server

from .facade import SyncClient

pytestmark = pytest.mark.interop

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10.0


def test_a_refusal_before_mail_in_the_block_still_quits(make_client: MakeClient) -> None:
    lines: list[str] = []
    with (
        run_server(starttls=False, transcript=lines.append) as server,
        pytest.raises(SMTPProtocolError, match="Refused before MAIL"),
        make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client,
    ):
        client.sendmail("a@x.test", ["b@x.test"], b"Subject: t\r\n\r\nNUL \0 here\r\n")
    commands = [line.upper() for line in lines]
    assert not any("MAIL FROM" in line for line in commands), lines
    assert any("QUIT" in line for line in commands), lines
