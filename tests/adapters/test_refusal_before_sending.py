"""A refusal made before anything is sent leaves the session usable (issue 11 item 9).

docs/design.md §2 ("Errors"): misuse found before any byte of the command exists is a
clear error and changes nothing, so the same connection carries the next message; an
error after bytes went out breaks the connection. Every adapter, against real servers
on 127.0.0.1 that lack SMTPUTF8 (aiosmtpd) or 8BITMIME (Postfix smtp-sink).
"""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage

import pytest

from interop.peers import AiosmtpdPeer, SinkPeer
from smtpproto.exceptions import SMTPProtocolError

from .facade import SyncClient
from .sources import Unseekable

pytestmark = pytest.mark.interop

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10.0
ASCII = b"From: a@example.test\r\nSubject: plain\r\n\r\nplain text\r\n"
EIGHT_BIT = b"From: a@example.test\r\nSubject: 8-bit\r\n\r\ncaf\xc3\xa9\r\n"


@pytest.mark.parametrize(
    ("sender", "recipient"),
    [("j\u00f6s\u00e9@example.test", "b@example.test"), ("a@example.test", "b\u00fc@example.test")],
)
def test_utf8_address_without_smtputf8_keeps_the_session(
    make_client: MakeClient,
    aiosmtpd_factory: Callable[..., AiosmtpdPeer],
    sender: str,
    recipient: str,
) -> None:
    peer = aiosmtpd_factory(smtputf8=False)
    with make_client(host=peer.host, port=peer.port, timeout=TIMEOUT) as client:
        assert client.capabilities is not None and not client.capabilities.smtputf8
        with pytest.raises(SMTPProtocolError, match="SMTPUTF8") as info:
            client.sendmail(sender, [recipient], ASCII)
        assert not info.value.remote
        assert client.session.usable
        assert client.noop().code == 250
        result = client.sendmail("a@example.test", ["b@example.test"], ASCII)
        assert result.delivered == ("b@example.test",)
    [message] = peer.wait_for_messages(1)  # the refused one never reached the server
    assert message.content == ASCII


def test_utf8_from_header_without_smtputf8_keeps_the_session(
    make_client: MakeClient, aiosmtpd_factory: Callable[..., AiosmtpdPeer]
) -> None:
    peer = aiosmtpd_factory(smtputf8=False)
    message = EmailMessage()
    message["From"] = "j\u00f6s\u00e9@example.test"
    message["To"] = "b@example.test"
    message.set_content("hi\n")
    with make_client(host=peer.host, port=peer.port, timeout=TIMEOUT) as client:
        with pytest.raises(SMTPProtocolError, match="SMTPUTF8"):
            client.send_message(message)
        assert client.session.usable
        del message["From"]
        message["From"] = "a@example.test"
        assert client.send_message(message).delivered == ("b@example.test",)
    assert len(peer.wait_for_messages(1)) == 1


@pytest.mark.parametrize("content", [EIGHT_BIT, EIGHT_BIT.decode("utf-8"), bytearray(EIGHT_BIT)])
def test_8bit_content_without_8bitmime_keeps_the_session(
    make_client: MakeClient,
    smtp_sink_factory: Callable[..., SinkPeer],
    content: bytes | str | bytearray,
) -> None:
    sink = smtp_sink_factory(eightbitmime=False)
    with make_client(host=sink.host, port=sink.port, timeout=TIMEOUT) as client:
        assert client.capabilities is not None and not client.capabilities.eightbitmime
        with pytest.raises(SMTPProtocolError, match="8BITMIME") as info:
            client.sendmail("a@example.test", ["b@example.test"], content)
        assert "allow_8bit" not in str(info.value)  # no internal parameter named
        assert client.session.usable
        result = client.sendmail("a@example.test", ["b@example.test"], ASCII)
        assert result.delivered == ("b@example.test",)
    [message] = sink.wait_for_messages(1)
    assert message.content == ASCII.replace(b"\r\n", b"\n")


def test_8bit_octet_found_after_the_354_breaks_the_session(
    make_client: MakeClient, smtp_sink_factory: Callable[..., SinkPeer]
) -> None:
    """The other side of the rule: a file that cannot seek is read as it is sent, so
    its 8-bit octet is found after DATA went out; only content could follow, so the
    session is broken (a seekable file is checked before MAIL: ``prescan``)."""
    sink = smtp_sink_factory(eightbitmime=False)
    with make_client(host=sink.host, port=sink.port, timeout=TIMEOUT) as client:
        with pytest.raises(SMTPProtocolError, match="8BITMIME") as info:
            client.sendmail("a@example.test", ["b@example.test"], Unseekable(EIGHT_BIT))
        assert "allow_8bit" not in str(info.value)
        assert not client.session.usable
        with pytest.raises(SMTPProtocolError, match="broken"):
            client.noop()
