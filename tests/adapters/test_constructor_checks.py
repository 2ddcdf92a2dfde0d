"""Constructor misuse is refused at once, with ``LocalProtocolError``, by every client.

Before these checks a port out of range or a host with a NUL escaped the asyncio
client's ``connect()`` as ``OverflowError``/``ValueError``, a string ``message_timeout``
escaped ``sendmail`` as ``TypeError``, and a NaN one silently meant no limit.
"""

from __future__ import annotations

from typing import Any

import pytest

from smtpproto.asyncio_client import AsyncSMTPClient
from smtpproto.blocking import SMTPClient
from smtpproto.trio_client import TrioSMTPClient
from smtpproto.wire.errors import LocalProtocolError

CLIENTS: list[Any] = [SMTPClient, AsyncSMTPClient, TrioSMTPClient]


@pytest.mark.parametrize("client_class", CLIENTS)
@pytest.mark.parametrize(
    "options",
    [
        {"host": "127.0.0.1", "port": 70000},
        {"host": "127.0.0.1", "port": -1},
        {"host": "127.0.0.1", "port": True},
        {"host": "127.0.0.1", "port": "25"},
        {"host": "a\x00b", "port": 25},
        {"host": "mail.example\r\n", "port": 25},
        {"host": "127.0.0.1", "port": 25, "message_timeout": float("nan")},
        {"host": "127.0.0.1", "port": 25, "message_timeout": float("inf")},
        {"host": "127.0.0.1", "port": 25, "message_timeout": 0},
        {"host": "127.0.0.1", "port": 25, "message_timeout": -1.0},
        {"host": "127.0.0.1", "port": 25, "message_timeout": "5"},
    ],
)
def test_bad_options_are_refused_by_the_constructor(
    client_class: Any, options: dict[str, Any]
) -> None:
    with pytest.raises(LocalProtocolError):
        client_class(**options)


@pytest.mark.parametrize("client_class", CLIENTS)
def test_good_options_are_accepted(client_class: Any) -> None:
    client = client_class("mail.example.org", 0, message_timeout=0.5)
    assert client.port == 0
    client = client_class("::1", 65535, message_timeout=30)
    assert client.port == 65535


@pytest.mark.parametrize("client_class", CLIENTS)
@pytest.mark.parametrize("name", ["", ".example.org", "a\x00b", "x" * 64 + ".example.org"])
def test_a_server_hostname_ssl_would_refuse_is_refused_by_the_constructor(
    client_class: Any, name: str
) -> None:
    """Before, ``ssl`` raised ``ValueError``/``TypeError``/``UnicodeError`` out of
    ``connect()`` at the STARTTLS handshake."""
    with pytest.raises(LocalProtocolError, match="server_hostname"):
        client_class("127.0.0.1", 25, tls="required", server_hostname=name)


@pytest.mark.parametrize("client_class", CLIENTS)
def test_a_long_host_label_is_refused_only_when_tls_may_be_used(client_class: Any) -> None:
    host = "x" * 64 + ".example.org"
    with pytest.raises(LocalProtocolError, match="server_hostname"):
        client_class(host, 25)  # opportunistic TLS: the host name is verified
    assert client_class(host, 25, tls="none").host == host
