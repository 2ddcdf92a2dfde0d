"""Baseline: CPython ``smtplib`` against every interop peer.

These prove the fixtures work (a message sent is found byte for byte where the peer
stored it, TLS and AUTH work with the test CA and account) and are the reference the
blocking/asyncio/trio adapters are compared with: an adapter test that fails where the
matching test here passes points at the adapter, not at the peer.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable

import pytest

from .peers import AUTH_PASSWORD, AUTH_USER, AiosmtpdPeer, SinkPeer, TLSMaterial
from .peers_exim import EximPeer

pytestmark = pytest.mark.interop

TIMEOUT = 10.0

#: Exercises dot-stuffing (a line starting with "."), 8-bit octets, spaces at line ends
#: and an empty body line.
CONTENT = (
    b"From: sender@example.test\r\n"
    b"To: rcpt@example.test\r\n"
    b"Subject: baseline\r\n"
    b"\r\n"
    b".a line that starts with a dot\r\n"
    b"..two dots\r\n"
    b"caf\xc3\xa9 with 8-bit octets\r\n"
    b"\r\n"
    b"  trailing spaces  \r\n"
)


def lf(content: bytes) -> bytes:
    """The content as smtp-sink and Exim store it: LF line ends."""
    return content.replace(b"\r\n", b"\n")


# -- aiosmtpd -----------------------------------------------------------------------------


def test_aiosmtpd_plain_delivery_is_byte_exact(aiosmtpd_server: AiosmtpdPeer) -> None:
    with smtplib.SMTP(aiosmtpd_server.host, aiosmtpd_server.port, timeout=TIMEOUT) as client:
        refused = client.sendmail(
            "sender@example.test", ["a@example.test", "b@example.test"], CONTENT
        )
    assert refused == {}
    [message] = aiosmtpd_server.wait_for_messages(1)
    assert message.mail_from == "sender@example.test"
    assert message.rcpt_tos == ("a@example.test", "b@example.test")
    assert message.content == CONTENT
    assert not message.tls
    assert message.auth_user is None


def test_aiosmtpd_smtputf8(aiosmtpd_server: AiosmtpdPeer) -> None:
    content = "From: José <josé@exämple.test>\r\nSubject: ünïcode\r\n\r\nbody\r\n".encode()
    with smtplib.SMTP(aiosmtpd_server.host, aiosmtpd_server.port, timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        client.sendmail("josé@exämple.test", ["用户@例子.test"], content, mail_options=["SMTPUTF8"])
    [message] = aiosmtpd_server.wait_for_messages(1)
    assert message.smtp_utf8
    assert message.mail_from == "josé@exämple.test"
    assert message.rcpt_tos == ("用户@例子.test",)
    assert message.content == content


def test_aiosmtpd_starttls_then_auth(
    aiosmtpd_tls_server: AiosmtpdPeer, tls_material: TLSMaterial
) -> None:
    server = aiosmtpd_tls_server
    with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert not client.has_extn("auth"), "AUTH must wait for TLS"
        client.starttls(context=tls_material.client_context())
        client.ehlo()
        assert "PLAIN" in client.esmtp_features["auth"].split()
        client.login(AUTH_USER, AUTH_PASSWORD)
        client.sendmail("sender@example.test", ["rcpt@example.test"], CONTENT)
    [message] = server.wait_for_messages(1)
    assert message.tls
    assert message.auth_user == AUTH_USER
    assert message.content == CONTENT


def test_aiosmtpd_rejects_a_wrong_password(
    aiosmtpd_tls_server: AiosmtpdPeer, tls_material: TLSMaterial
) -> None:
    server = aiosmtpd_tls_server
    with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
        client.starttls(context=tls_material.client_context())
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            client.login(AUTH_USER, AUTH_PASSWORD + "x")
    assert info.value.smtp_code == 535


def test_aiosmtpd_certificate_from_another_ca_is_rejected(
    aiosmtpd_tls_server: AiosmtpdPeer,
) -> None:
    server = aiosmtpd_tls_server
    context = ssl.create_default_context()  # the system store does not know the test CA
    with (
        smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        client.starttls(context=context)


def test_aiosmtpd_auth_without_tls_when_configured(
    aiosmtpd_factory: Callable[..., AiosmtpdPeer],
) -> None:
    server = aiosmtpd_factory(auth=True, auth_require_tls=False)
    with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
        client.ehlo()
        assert not client.has_extn("starttls")
        client.login(AUTH_USER, AUTH_PASSWORD)
        client.sendmail("sender@example.test", ["rcpt@example.test"], CONTENT)
    [message] = server.wait_for_messages(1)
    assert message.auth_user == AUTH_USER
    assert not message.tls


def test_aiosmtpd_without_auth_does_not_offer_it(aiosmtpd_server: AiosmtpdPeer) -> None:
    with smtplib.SMTP(aiosmtpd_server.host, aiosmtpd_server.port, timeout=TIMEOUT) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        assert client.docmd("AUTH", "PLAIN")[0] >= 500  # 538 (needs TLS) or 504 (no such)


# -- Postfix smtp-sink --------------------------------------------------------------------


def test_smtp_sink_two_messages_on_one_connection(smtp_sink: SinkPeer) -> None:
    second = CONTENT.replace(b"Subject: baseline", b"Subject: second")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.has_extn("pipelining")
        assert client.has_extn("8bitmime")
        client.sendmail("one@example.test", ["a@example.test", "b@example.test"], CONTENT)
        client.sendmail(
            "two@example.test", ["c@example.test"], second, mail_options=["BODY=8BITMIME"]
        )
    first_message, second_message = smtp_sink.wait_for_messages(2)
    assert first_message.mail_from == "one@example.test"
    assert first_message.rcpt_tos == ("a@example.test", "b@example.test")
    assert first_message.content == lf(CONTENT)
    assert second_message.mail_from == "two@example.test"
    assert second_message.mail_options == ("BODY=8BITMIME",)
    assert second_message.content == lf(second)


def test_smtp_sink_records_esmtp_parameters(smtp_sink: SinkPeer) -> None:
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=TIMEOUT) as client:
        client.sendmail(
            "one@example.test",
            ["a@example.test"],
            CONTENT,
            mail_options=["RET=HDRS", "ENVID=abc"],
            rcpt_options=["NOTIFY=SUCCESS,FAILURE"],
        )
    [message] = smtp_sink.wait_for_messages(1)
    assert message.mail_options[:2] == ("RET=HDRS", "ENVID=abc")
    assert message.rcpt_options == ("NOTIFY=SUCCESS,FAILURE",)
    assert message.content == lf(CONTENT)


def test_smtp_sink_options_remove_extensions(smtp_sink_factory: Callable[..., SinkPeer]) -> None:
    sink = smtp_sink_factory(pipelining=False, eightbitmime=False, dump=False)
    with smtplib.SMTP(sink.host, sink.port, timeout=TIMEOUT) as client:
        client.ehlo()
        assert not client.has_extn("pipelining")
        assert not client.has_extn("8bitmime")
        assert client.has_extn("dsn")
    with pytest.raises(ValueError, match="without a dump file"):
        sink.messages()


def test_smtp_sink_rejects_commands_on_request(smtp_sink_factory: Callable[..., SinkPeer]) -> None:
    sink = smtp_sink_factory(extra_args=("-f", "RCPT"))
    with (
        smtplib.SMTP(sink.host, sink.port, timeout=TIMEOUT) as client,
        pytest.raises(smtplib.SMTPRecipientsRefused) as info,
    ):
        client.sendmail("one@example.test", ["a@example.test"], CONTENT)
    assert info.value.recipients["a@example.test"][0] == 500
    assert sink.messages() == []


# -- Exim 4 -------------------------------------------------------------------------------


def test_exim_advertises_the_extensions_the_adapters_need(exim_server: EximPeer) -> None:
    with smtplib.SMTP(exim_server.host, exim_server.port, timeout=TIMEOUT) as client:
        client.ehlo()
        for extension in ("pipelining", "chunking", "8bitmime", "dsn", "smtputf8", "prdr"):
            assert client.has_extn(extension), extension
        assert client.has_extn("starttls")
        assert not client.has_extn("auth"), "AUTH must wait for TLS"
        client.starttls(context=exim_server.tls.client_context())
        client.ehlo()
        assert set(client.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        assert not client.has_extn("starttls")


def test_exim_delivers_each_recipient_byte_exact(exim_server: EximPeer) -> None:
    with smtplib.SMTP(exim_server.host, exim_server.port, timeout=TIMEOUT) as client:
        refused = client.sendmail("sender@example.test", ["a@exim.test", "b@exim.test"], CONTENT)
    assert refused == {}
    deliveries = exim_server.wait_for_messages(2)
    assert sorted(d.rcpt_tos for d in deliveries) == [("a@exim.test",), ("b@exim.test",)]
    for delivery in deliveries:
        assert delivery.mail_from == "sender@example.test"
        assert delivery.content == lf(CONTENT)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_exim_starttls_and_auth(exim_server: EximPeer, mechanism: str) -> None:
    with smtplib.SMTP(exim_server.host, exim_server.port, timeout=TIMEOUT) as client:
        client.starttls(context=exim_server.tls.client_context())
        client.ehlo()
        client.user, client.password = AUTH_USER, AUTH_PASSWORD
        method = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        code, _ = client.auth(mechanism, method)
        assert code == 235
        client.sendmail("sender@example.test", ["rcpt@exim.test"], CONTENT)
    [delivery] = exim_server.wait_for_messages(1)
    assert delivery.content == lf(CONTENT)
    assert (
        "A=plain_server:alice" in exim_server.log() or "A=login_server:alice" in exim_server.log()
    )


def test_exim_rejects_a_wrong_password(exim_server: EximPeer) -> None:
    with smtplib.SMTP(exim_server.host, exim_server.port, timeout=TIMEOUT) as client:
        client.starttls(context=exim_server.tls.client_context())
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            client.login(AUTH_USER, "wrong")
    assert info.value.smtp_code == 535


def test_exim_chunking_by_hand(exim_server: EximPeer) -> None:
    """BDAT (RFC 3030 §2): no dot-stuffing, chunk sizes count octets exactly."""
    first, last = CONTENT[:40], CONTENT[40:]
    with smtplib.SMTP(exim_server.host, exim_server.port, timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.mail("sender@example.test")[0] == 250
        assert client.rcpt("rcpt@exim.test")[0] == 250
        client.send(f"BDAT {len(first)}\r\n".encode("ascii") + first)
        assert client.getreply()[0] == 250
        client.send(f"BDAT {len(last)} LAST\r\n".encode("ascii") + last)
        assert client.getreply()[0] == 250
    [delivery] = exim_server.wait_for_messages(1)
    # No dot-stuffing with BDAT: the ".." line arrives as two dots.
    assert delivery.content == lf(CONTENT)


def test_exim_smtputf8(exim_server: EximPeer) -> None:
    content = "From: josé@exämple.test\r\nSubject: ünïcode\r\n\r\nbody\r\n".encode()
    with smtplib.SMTP(exim_server.host, exim_server.port, timeout=TIMEOUT) as client:
        client.sendmail("josé@exämple.test", ["用户@exim.test"], content, mail_options=["SMTPUTF8"])
    [delivery] = exim_server.wait_for_messages(1)
    assert delivery.mail_from == "josé@exämple.test"
    assert delivery.rcpt_tos == ("用户@exim.test",)
    assert delivery.content == lf(content)
