"""VRFY lines at and past 512 octets through every adapter (issue 11, robustness item 7).

A VRFY line of 512 octets with its CRLF reaches the built-in server and is answered;
one of 513 is refused by the client before anything is written (the server's
transcript shows no such line). The engine side is ``tests/test_command_line_limits.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import run_server
from smtpproto.wire.errors import LocalProtocolError

from .facade import SyncClient

MakeClient = Callable[..., SyncClient]


@pytest.mark.parametrize("total", [511, 512, 513])
def test_vrfy_line_limit(make_client: MakeClient, total: int) -> None:
    argument = "a" * (total - len("VRFY ") - 2)
    lines: list[str] = []
    with (
        run_server(starttls=False, transcript=lines.append) as server,
        make_client(host=server.host, port=server.port, tls="none", timeout=10) as client,
    ):
        if total <= 512:
            assert client.vrfy(argument).code == 252
        else:
            with pytest.raises((LocalProtocolError, SMTPProtocolError), match="512"):
                client.vrfy(argument)
    sent = [line for line in lines if line.startswith("C: VRFY")]
    assert sent == ([f"C: VRFY {argument}"] if total <= 512 else [])
