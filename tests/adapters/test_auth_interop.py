"""AUTH through every adapter against real servers on 127.0.0.1.

aiosmtpd (STARTTLS, then AUTH PLAIN or LOGIN checked by its authenticator), Exim
(PLAIN/LOGIN plaintext authenticators after TLS) and the built-in server (SCRAM-SHA-256
and CRAM-MD5, the verifiers of ``smtpproto.sasl.server``): log in, send a message, and check the
server recorded the authenticated user. Last, SCRAM-SHA-256-PLUS over real TLS against
a scripted peer running the real verifier with the channel binding it computes itself
(RFC 5929 §4.1), so the adapters' binding data is checked against the server's view.
Every client has a timeout; every wait for a delivery is bounded.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import ssl
from collections.abc import Callable

import pytest

from interop.peers import AUTH_PASSWORD, AUTH_USER, AiosmtpdPeer, TLSMaterial
from interop.peers_exim import EximPeer
from smtpproto.exceptions import SMTPReplyError
from smtpproto.sasl import ChannelBinding, ClientMechanism, CramMD5, Login, Plain, ScramSHA256
from smtpproto.sasl.server import Challenge, Failure, ScramSHA256PlusServer, ServerStep
from smtpproto.testing import run_server

from .exim_client import exim_client
from .facade import SyncClient
from .peer import Peer, scripted

pytestmark = pytest.mark.interop

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10.0
CONTENT = b"From: alice@example.test\r\nSubject: auth\r\n\r\nauthenticated mail\r\n"
WRONG = "not-the-password"

MECHANISMS: dict[str, Callable[[str], ClientMechanism]] = {
    "PLAIN": lambda password: Plain(AUTH_USER, password),
    "LOGIN": lambda password: Login(AUTH_USER, password),
}


def transcript(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "smtpproto.transcript"]


def assert_no_password(lines: list[str], *passwords: str) -> None:
    assert lines, "the transcript logger recorded nothing"
    for password in passwords:
        assert not any(password in line for line in lines)


@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_aiosmtpd_starttls_login_and_send(
    make_client: MakeClient,
    aiosmtpd_tls_server: AiosmtpdPeer,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpproto.transcript")
    peer = aiosmtpd_tls_server
    assert peer.tls is not None
    with make_client(
        host=peer.host,
        port=peer.port,
        tls="required",
        ssl_context=peer.tls.client_context(),
        server_hostname="localhost",
        timeout=TIMEOUT,
    ) as client:
        caps = client.capabilities
        assert client.session.conn.tls_active and caps is not None
        assert name in caps.auth_mechanisms
        with pytest.raises(SMTPReplyError) as info:  # a wrong password first: 535
            client.login(AUTH_USER, mechanism=MECHANISMS[name](WRONG))
        assert info.value.code == 535 and client.session.usable
        assert client.login(AUTH_USER, mechanism=MECHANISMS[name](AUTH_PASSWORD)).code == 235
        result = client.sendmail("alice@example.test", ["rcpt@example.test"], CONTENT)
        assert result.delivered == ("rcpt@example.test",)
    (message,) = peer.wait_for_messages(1, timeout=TIMEOUT)
    assert message.tls and message.auth_user == AUTH_USER and message.content == CONTENT
    lines = transcript(caplog)
    assert any(line.startswith(f"C: AUTH {name}") for line in lines)
    assert_no_password(lines, AUTH_PASSWORD, WRONG)


@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_exim_login_and_send(
    make_client: MakeClient,
    exim_server: EximPeer,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpproto.transcript")
    with exim_client(make_client, exim_server, tls="required") as client:
        caps = client.capabilities
        assert client.session.conn.tls_active and caps is not None
        assert {"PLAIN", "LOGIN"} <= caps.auth_mechanisms
        with pytest.raises(SMTPReplyError) as info:
            client.login(AUTH_USER, mechanism=MECHANISMS[name](WRONG))
        assert info.value.code == 535 and client.session.usable
        assert client.login(AUTH_USER, mechanism=MECHANISMS[name](AUTH_PASSWORD)).code == 235
        result = client.sendmail("alice@example.test", ["a@exim.test"], CONTENT)
        assert result.delivered == ("a@exim.test",)
    (delivery,) = exim_server.wait_for_messages(1, timeout=TIMEOUT)
    assert delivery.rcpt_tos == ("a@exim.test",)
    # Exim logs the authenticator and the id it set on the message's arrival line.
    assert f"A={name.lower()}_server:{AUTH_USER}" in exim_server.log()
    lines = transcript(caplog)
    assert any(line.startswith(f"C: AUTH {name}") for line in lines)
    assert_no_password(lines, AUTH_PASSWORD, WRONG)


BUILTIN: dict[str, Callable[[str], ClientMechanism]] = {
    "SCRAM-SHA-256": lambda password: ScramSHA256(AUTH_USER, password),
    "CRAM-MD5": lambda password: CramMD5(AUTH_USER, password),
}


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_server_login_and_send(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpproto.transcript")
    server_log: list[str] = []
    with run_server(
        users={AUTH_USER: AUTH_PASSWORD},
        mechanisms=(name, "PLAIN"),
        require_auth=True,
        transcript=server_log.append,
        timeout=TIMEOUT,
    ) as server:
        with make_client(
            host=server.host,
            port=server.port,
            tls="required",
            ssl_context=server.ssl_context(),
            server_hostname="localhost",
            timeout=TIMEOUT,
        ) as client:
            with pytest.raises(SMTPReplyError) as info:
                client.login(AUTH_USER, mechanism=BUILTIN[name](WRONG))
            assert info.value.code == 535 and client.session.usable
            # no mechanism given: the choice must be ``name``, stronger than PLAIN
            assert client.login(AUTH_USER, AUTH_PASSWORD).code == 235
            result = client.sendmail("alice@example.test", ["rcpt@example.test"], CONTENT)
            assert result.delivered == ("rcpt@example.test",)
        (message,) = server.wait_for_messages(1, timeout=TIMEOUT)
    assert message.sender == "alice@example.test" and message.data == CONTENT
    assert f"* AUTH {AUTH_USER}" in server_log
    assert any(line.startswith("* AUTH failed") for line in server_log)
    lines = transcript(caplog)
    auth = [line.split(" <")[0] for line in lines if line.startswith("C: AUTH ")]
    assert auth == [f"C: AUTH {name}"] * 2
    assert_no_password(lines, AUTH_PASSWORD, WRONG)
    assert_no_password(server_log, AUTH_PASSWORD, WRONG)


# -- SCRAM-SHA-256-PLUS over real TLS: the adapter's channel binding is the server's ------


def server_end_point(material: TLSMaterial) -> ChannelBinding:
    """RFC 5929 §4.1 from the server's side: SHA-256 of the certificate it presents
    (trustme signs with SHA-256), computed here without the library's helpers."""
    pem = material.cert_path.read_text("ascii")
    first = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
    assert first is not None
    der = ssl.PEM_cert_to_DER_cert(first.group(0))
    return ChannelBinding("tls-server-end-point", hashlib.sha256(der).digest())


def scram_plus_peer(
    material: TLSMaterial, server_cb: ChannelBinding, seen: list[str]
) -> Callable[[Peer], None]:
    """STARTTLS, then AUTH answered by the real SCRAM-SHA-256-PLUS verifier, then DATA."""

    def script(peer: Peer) -> None:
        peer.greet(b"250-mx.example.org\r\n250 STARTTLS\r\n")
        peer.expect(b"STARTTLS")
        peer.send(b"220 2.0.0 ready\r\n")
        peer.starttls(material.server_context())
        peer.expect(b"EHLO")
        peer.send(b"250-mx.example.org\r\n250 AUTH PLAIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n")
        words = peer.expect(b"AUTH ").split(b" ")
        seen.append(words[1].decode())
        verifier = ScramSHA256PlusServer({AUTH_USER: AUTH_PASSWORD}.get, channel_binding=server_cb)
        step: ServerStep = verifier.start(base64.b64decode(words[2]) if len(words) > 2 else None)
        while isinstance(step, Challenge):
            peer.send(b"334 " + base64.b64encode(step.data) + b"\r\n")
            step = verifier.step(base64.b64decode(peer.line()))
        if isinstance(step, Failure):
            seen.append(step.reason)
            peer.send(b"535 5.7.8 Authentication credentials invalid\r\n")
            peer.expect(b"QUIT")
            peer.send(b"221 2.0.0 bye\r\n")
            return
        assert step.data is not None and step.identity == AUTH_USER
        peer.send(b"334 " + base64.b64encode(step.data) + b"\r\n")
        assert peer.line() == b""  # RFC 4954 §4: the client acknowledges the v= message
        peer.send(b"235 2.7.0 Authentication successful\r\n")
        for verb, reply in ((b"MAIL", b"250 ok"), (b"RCPT", b"250 ok"), (b"DATA", b"354 go")):
            peer.expect(verb)
            peer.send(reply + b"\r\n")
        seen.append(peer.read_data().decode())
        peer.send(b"250 2.0.0 queued\r\n")
        peer.expect(b"QUIT")
        peer.send(b"221 2.0.0 bye\r\n")

    return script


def test_scram_plus_with_the_adapters_channel_binding(
    make_client: MakeClient, tls_material: TLSMaterial
) -> None:
    binding = server_end_point(tls_material)
    seen: list[str] = []
    with (
        scripted(scram_plus_peer(tls_material, binding, seen)) as sock,
        make_client(
            sock=sock,
            ssl_context=tls_material.client_context(),
            server_hostname="localhost",
            timeout=TIMEOUT,
        ) as client,
    ):
        assert client.session.channel_binding == binding
        assert client.login(AUTH_USER, AUTH_PASSWORD).code == 235  # chooses -PLUS
        client.sendmail("alice@example.test", ["rcpt@example.test"], CONTENT)
    assert seen == ["SCRAM-SHA-256-PLUS", CONTENT.decode()]


def test_scram_plus_fails_when_the_server_sees_another_channel(
    make_client: MakeClient, tls_material: TLSMaterial
) -> None:
    # A man in the middle terminates TLS: the server's view of the channel differs.
    other = ChannelBinding("tls-server-end-point", hashlib.sha256(b"another cert").digest())
    seen: list[str] = []
    with (
        scripted(scram_plus_peer(tls_material, other, seen)) as sock,
        make_client(
            sock=sock,
            ssl_context=tls_material.client_context(),
            server_hostname="localhost",
            timeout=TIMEOUT,
        ) as client,
    ):
        with pytest.raises(SMTPReplyError) as info:
            client.login(AUTH_USER, AUTH_PASSWORD)
        assert info.value.code == 535 and not client.session.conn.authenticated
    assert seen == ["SCRAM-SHA-256-PLUS", "channel binding mismatch"]
