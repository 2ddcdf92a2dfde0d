"""Header injection (issue 11, security item 1) against real servers, through every adapter.

``send_message`` with a header value holding a CR/LF that is not a fold is refused with
``LocalProtocolError`` (wrapped in ``SMTPProtocolError`` by the adapters) before any
byte of the transaction is written: the built-in server's transcript shows no MAIL,
RCPT or DATA, and aiosmtpd stores nothing. The unit side is ``tests/test_header_injection.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage, Message

import pytest

from interop.peers import AiosmtpdPeer
from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import run_server
from smtpproto.wire.errors import LocalProtocolError

from .facade import SyncClient

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10.0
INJECTED = "b@example.org\r\nRCPT TO:<x@evil.example>"


def _messages() -> list[Message]:
    legacy = Message()
    legacy["From"] = "a@example.org"
    legacy["To"] = INJECTED  # compat32 stores it as is
    legacy.set_payload("hello\n")
    modern = EmailMessage()
    modern["From"] = "a@example.org"
    modern["To"] = "b@example.org"
    modern.set_content("hello\n")
    modern.set_raw("Bcc", "c@example.org\nRCPT TO:<x@evil.example>")
    header_only = EmailMessage()
    header_only["From"] = "a@example.org"
    header_only["To"] = "b@example.org"
    header_only.set_raw("Subject", "hi\r\n\r\nan injected body")
    return [legacy, modern, header_only]


def _refused(client: SyncClient, msg: Message) -> None:
    with pytest.raises(SMTPProtocolError) as caught:
        client.send_message(msg)
    assert isinstance(caught.value.error, LocalProtocolError)
    assert not caught.value.remote
    assert "not a fold" in str(caught.value)


@pytest.mark.parametrize("index", range(3))
def test_builtin_server_sees_no_transaction(make_client: MakeClient, index: int) -> None:
    lines: list[str] = []
    with run_server(starttls=False, transcript=lines.append) as server:
        with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as c:
            _refused(c, _messages()[index])
        assert server.messages == []
    sent = [line for line in lines if line.startswith("C:")]
    assert sent and not any(
        verb in line for line in sent for verb in ("MAIL", "RCPT", "DATA", "evil")
    ), sent


def test_aiosmtpd_stores_nothing_and_a_good_message_still_goes(
    make_client: MakeClient, aiosmtpd_factory: Callable[..., AiosmtpdPeer]
) -> None:
    peer = aiosmtpd_factory()
    for msg in _messages():
        with make_client(host=peer.host, port=peer.port, tls="none", timeout=TIMEOUT) as client:
            _refused(client, msg)
    good = EmailMessage()
    good["From"] = "a@example.org"
    good.set_raw("To", "b@example.org,\r\n c@example.org")  # a fold is fine
    good.set_content("hello\n")
    with make_client(host=peer.host, port=peer.port, tls="none", timeout=TIMEOUT) as client:
        assert client.send_message(good).delivered == ("b@example.org", "c@example.org")
    [received] = peer.wait_for_messages(1)
    assert received.rcpt_tos == ("b@example.org", "c@example.org")
    assert b"evil" not in received.content


#: CVE-2023-27043: address lists ``email.utils.getaddresses`` read as two recipients
#: before Python 3.13 (bob, in no display) and as none in 3.13's strict mode.
MALFORMED_LISTS = (
    "alice@example.org)<bob@example.org>",
    "alice@example.org<bob@example.org>",
    'alice@example.org"<bob@example.org>"',
    "alice@example.org)<bob@example.org>, carol@example.org",
)


def test_a_malformed_address_list_is_refused_before_mail_on_every_python(
    make_client: MakeClient, aiosmtpd_factory: Callable[..., AiosmtpdPeer]
) -> None:
    """A ``compat32`` message's envelope came from ``getaddresses``: on 3.10-3.12
    aiosmtpd got a RCPT for bob@example.org, and on 3.13 the ``To`` gave no recipient
    (carol dropped without an error). Now the field is refused before MAIL, whatever
    the Python. (An ``EmailPolicy`` message already stores the strict parser's reading.)"""
    peer = aiosmtpd_factory()
    for value in MALFORMED_LISTS:
        msg = Message()
        msg["From"] = "a@example.org"
        msg["To"] = value
        msg.set_payload("hello\n")
        with make_client(host=peer.host, port=peer.port, tls="none", timeout=TIMEOUT) as client:
            with pytest.raises(SMTPProtocolError, match="not a valid address list") as caught:
                client.send_message(msg)
            assert isinstance(caught.value.error, LocalProtocolError)
            assert client.session.usable
            client.noop()
    good = Message()
    good["From"] = "a@example.org"
    good["To"] = 'Alice <alice@example.org>, "Bob, Jr." <bob@example.org>'
    good["Cc"] = "Group: carol@example.org, dave@example.org;"
    good.set_payload("hello\n")
    expected = ("alice@example.org", "bob@example.org", "carol@example.org", "dave@example.org")
    with make_client(host=peer.host, port=peer.port, tls="none", timeout=TIMEOUT) as client:
        assert client.send_message(good).delivered == expected
    [received] = peer.wait_for_messages(1)
    assert received.rcpt_tos == expected
