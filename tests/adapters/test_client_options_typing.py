"""The pools' and the one-call ``send``'s client options are typed
(``ClientOptions``): mypy reports a misspelt or mistyped option, and at run time a
misspelt one is a caller mistake (``SMTPProtocolError``, remote false) before anything
is connected. Before, ``**client_options: Any`` hid typos from mypy, ``send`` let a
bare ``TypeError`` out, and a pool made without a host accepted any name silently.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import trio
from mypy import api

import smtpproto
from smtpproto.asyncio_client import AsyncSMTPPool
from smtpproto.blocking import SMTPPool
from smtpproto.trio_client import TrioSMTPPool
from smtpproto.trio_client import send as trio_send

from .test_constructor_checks import assert_caller_mistake

SNIPPET = """\
import ssl
import smtpproto
from smtpproto.asyncio_client import AsyncSMTPPool
from smtpproto.blocking import SMTPPool
from smtpproto.trio_client import TrioSMTPPool, send

smtpproto.send(b"x", host="h", sender="a@b.c", recipients="d@e.f", tls="none", timeout=5)
SMTPPool("h", 25, tls="required", ssl_context=ssl.create_default_context(), lmtp=False)
smtpproto.send(b"x", host="h", usernme="u")  # line 9
smtpproto.send_async(b"x", host="h", timout=5)  # line 10
send(b"x", host="h", lmtp="yes")  # line 11
SMTPPool("h", 25, max_conections=3)  # line 12
AsyncSMTPPool("h", 25, tls="sometimes")  # line 13
TrioSMTPPool("h", 25, local_hostnam="x")  # line 14
"""

EXPECTED = {
    9: 'Unexpected keyword argument "usernme"',
    10: 'Unexpected keyword argument "timout"',
    11: 'Argument "lmtp" has incompatible type "str"; expected "bool"',
    12: 'Unexpected keyword argument "max_conections"',
    13: 'Argument "tls" to "AsyncSMTPPool" has incompatible type',
    14: 'Unexpected keyword argument "local_hostnam"',
}


def test_mypy_catches_misspelt_and_mistyped_client_options(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(SNIPPET, encoding="utf-8")
    stdout, stderr, _ = api.run(
        ["--strict", "--no-incremental", "--follow-imports=silent", str(snippet)]
    )
    errors: dict[int, list[str]] = {}
    for match in re.finditer(r"snippet\.py:(\d+): error: (.*)", stdout):
        errors.setdefault(int(match[1]), []).append(match[2])
    assert set(errors) == set(EXPECTED), stdout + stderr
    for line, words in EXPECTED.items():
        assert any(words in error for error in errors[line]), (line, errors[line])


BAD: dict[str, Any] = {"usernme": "u"}


def test_a_misspelt_option_of_send_is_a_caller_mistake_before_connecting() -> None:
    # Port 9 on 127.0.0.1: nothing listens; an attempt to connect would fail differently.
    args: dict[str, Any] = {"host": "127.0.0.1", "port": 9, "sender": "a@b.c"}
    args["recipients"] = "d@e.f"
    with pytest.raises(smtpproto.exceptions.SMTPProtocolError) as caught:
        smtpproto.send(b"x", **args, **BAD)
    assert_caller_mistake(caught.value)
    with pytest.raises(smtpproto.exceptions.SMTPProtocolError) as caught:
        asyncio.run(smtpproto.send_async(b"x", **args, **BAD))
    assert_caller_mistake(caught.value)
    with pytest.raises(smtpproto.exceptions.SMTPProtocolError) as caught:
        trio.run(lambda: trio_send(b"x", **args, **BAD))
    assert_caller_mistake(caught.value)


@pytest.mark.parametrize("host", ["127.0.0.1", None])
def test_a_misspelt_pool_option_is_a_caller_mistake(host: str | None) -> None:
    with pytest.raises(smtpproto.exceptions.SMTPProtocolError) as caught:
        SMTPPool(host, 25, **BAD)
    assert_caller_mistake(caught.value)

    async def make_asyncio() -> None:
        AsyncSMTPPool(host, 25, **BAD)

    with pytest.raises(smtpproto.exceptions.SMTPProtocolError) as caught:
        asyncio.run(make_asyncio())
    assert_caller_mistake(caught.value)

    async def make_trio() -> None:
        TrioSMTPPool(host, 25, **BAD)

    with pytest.raises(smtpproto.exceptions.SMTPProtocolError) as caught:
        trio.run(make_trio)
    assert_caller_mistake(caught.value)
