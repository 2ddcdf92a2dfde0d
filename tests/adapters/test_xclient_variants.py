"""XCLIENT options on every adapter (swaks' ``--xclient-no-verify`` and
``--xclient-before-starttls`` as library calls): ``xclient(require_advertised=False)``
sends attributes the server does not list, and ``connect(until="ehlo")``, ``xclient``,
``starttls()`` puts XCLIENT before STARTTLS."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from smtpproto.exceptions import SMTPProtocolError, SMTPTLSError
from smtpproto.testing import run_server

from .facade import SyncClient
from .peer import Peer, listening

MakeClient = Callable[..., SyncClient]
EHLO_NAME_ONLY = b"250-mx.example.org\r\n250 XCLIENT NAME\r\n"


def test_xclient_with_attributes_the_server_does_not_list(make_client: MakeClient) -> None:
    lines: list[bytes] = []

    def script(peer: Peer) -> None:
        peer.greet(EHLO_NAME_ONLY)
        lines.append(peer.expect(b"XCLIENT"))
        peer.send(b"220 mx.example.org ESMTP\r\n")
        peer.expect(b"EHLO")
        peer.send(EHLO_NAME_ONLY)
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with listening(socket.AF_INET, ("127.0.0.1", 0), script) as listener:
        port = listener.getsockname()[1]
        with make_client(host="127.0.0.1", port=port, tls="none", timeout=5) as client:
            with pytest.raises(SMTPProtocolError, match="does not advertise XCLIENT attribute"):
                client.xclient({"NAME": "a.example", "ADDR": "192.0.2.1"})  # nothing sent
            reply = client.xclient(
                {"NAME": "a.example", "ADDR": "192.0.2.1"}, require_advertised=False
            )
            assert reply.code == 220
            client.quit()
    assert lines == [b"XCLIENT NAME=a.example ADDR=192.0.2.1"]


def test_xclient_without_the_extension_is_refused_even_unverified(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        peer.greet()
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with listening(socket.AF_INET, ("127.0.0.1", 0), script) as listener:
        port = listener.getsockname()[1]
        with make_client(host="127.0.0.1", port=port, tls="none", timeout=5) as client:
            with pytest.raises(SMTPProtocolError, match="needs the XCLIENT extension"):
                client.xclient({"NAME": "a.example"}, require_advertised=False)
            client.quit()


def test_starttls_after_connect_until_ehlo(make_client: MakeClient) -> None:
    lines: list[str] = []
    with run_server(transcript=lines.append) as server:
        client = make_client(
            host=server.host,
            port=server.port,
            tls="required",
            ssl_context=server.ssl_context(),
            server_hostname="localhost",
            timeout=10,
        )
        client.connect(until="ehlo")
        assert client.tls_info is None
        reply = client.starttls()
        assert reply.code == 250 and client.tls_info is not None
        assert client.starttls() == reply  # under TLS already: nothing more is sent
        client.sendmail("a@example.org", "b@example.org", b"Subject: t\r\n\r\nx\r\n")
        client.quit()
    verbs = [line[3:].split(" ")[0] for line in lines if line.startswith("C: ") and line[3] != "<"]
    assert verbs[:3] == ["EHLO", "STARTTLS", "EHLO"]


def test_starttls_required_but_not_offered(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        peer.greet()

    with listening(socket.AF_INET, ("127.0.0.1", 0), script) as listener:
        port = listener.getsockname()[1]
        client = make_client(host="127.0.0.1", port=port, tls="required", timeout=5)
        with pytest.raises(SMTPTLSError):
            client.connect(until="ehlo")  # a REQUIRED policy that cannot be met
