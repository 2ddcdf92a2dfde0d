"""Constructor misuse is refused at once by every client, with the one exception every
caller mistake raises: ``SMTPProtocolError`` wrapping a ``LocalProtocolError``
(``remote`` false; issue 11 item 13). ``test_usage_errors`` covers the methods.

Before these checks a port out of range or a host with a NUL escaped the asyncio
client's ``connect()`` as ``OverflowError``/``ValueError``, a string ``message_timeout``
escaped ``sendmail`` as ``TypeError``, and a NaN one silently meant no limit.
"""

from __future__ import annotations

from typing import Any

import pytest

from smtpproto.asyncio_client import AsyncSMTPClient
from smtpproto.blocking import SMTPClient
from smtpproto.exceptions import SMTPError, SMTPProtocolError
from smtpproto.trio_client import TrioSMTPClient
from smtpproto.wire.errors import LocalProtocolError

CLIENTS: list[Any] = [SMTPClient, AsyncSMTPClient, TrioSMTPClient]


def assert_caller_mistake(error: BaseException) -> None:
    """``error`` is what every caller mistake raises (and nothing else)."""
    assert type(error).__name__ == "SMTPProtocolError"
    assert isinstance(error, SMTPProtocolError)
    assert isinstance(error, SMTPError)
    assert not error.remote
    assert isinstance(error.error, LocalProtocolError)
    assert error.__cause__ is error.error


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
    with pytest.raises(SMTPProtocolError) as caught:
        client_class(**options)
    assert_caller_mistake(caught.value)


@pytest.mark.parametrize("client_class", CLIENTS)
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"port": 25},
        {"host": "127.0.0.1", "unix_socket": "/tmp/x.sock"},
        {"host": "127.0.0.1", "tls": "sometimes"},
        {"host": "127.0.0.1", "timeout": "5"},
    ],
)
def test_a_missing_or_doubled_target_and_bad_policies_raise_the_same(
    client_class: Any, options: dict[str, Any]
) -> None:
    """A missing host used to be a ``ValueError`` and a bad port a bare
    ``LocalProtocolError``: now both are the one caller-mistake exception."""
    with pytest.raises(SMTPProtocolError) as caught:
        client_class(**options)
    assert_caller_mistake(caught.value)


def test_trio_source_port_is_a_caller_mistake() -> None:
    with pytest.raises(SMTPProtocolError, match="port 0") as caught:
        TrioSMTPClient("127.0.0.1", 25, source_address=("127.0.0.1", 2525))
    assert_caller_mistake(caught.value)


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
    with pytest.raises(SMTPProtocolError, match="server_hostname") as caught:
        client_class("127.0.0.1", 25, tls="required", server_hostname=name)
    assert_caller_mistake(caught.value)


@pytest.mark.parametrize("client_class", CLIENTS)
def test_a_long_host_label_is_refused_only_when_tls_may_be_used(client_class: Any) -> None:
    host = "x" * 64 + ".example.org"
    with pytest.raises(SMTPProtocolError, match="server_hostname"):
        client_class(host, 25)  # opportunistic TLS: the host name is verified
    assert client_class(host, 25, tls="none").host == host
