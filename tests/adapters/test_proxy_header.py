"""``proxy_header=`` on every client and pool: the HAProxy PROXY header is the very
first bytes of the connection, written before the server says anything (the peer
below does not greet until it has decoded the header with the tests' own decoder),
before the TLS handshake under implicit TLS, once per connection of a pool; anything
but a ``ProxyHeader`` is a caller mistake at construction."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from interop.peers import TLSMaterial
from proxy_decoder import Decoded, DecodeError, decode
from smtpproto import ProxyHeader
from smtpproto.exceptions import SMTPProtocolError

from .facade import SyncClient
from .peer import Peer, listening
from .pool_facade import PoolFacade, make_pool
from .test_constructor_checks import CLIENTS, assert_caller_mistake

__all__ = ["make_pool"]  # the fixture, used by name

MakeClient = Callable[..., SyncClient]
HEADERS = [
    ProxyHeader(
        source="192.0.2.7", source_port=50123, destination="198.51.100.25", destination_port=25
    ),
    ProxyHeader(
        version=2,
        source="2001:db8::7",
        source_port=50123,
        destination="2001:db8::25",
        destination_port=465,
    ),
]


def read_header(peer: Peer) -> Decoded:
    """Read the PROXY header one octet at a time, so that nothing after it (a TLS
    ClientHello) is taken from the socket; consume it."""
    assert not peer.buffer
    data = b""
    for _ in range(300):  # a v2 header with these values is at most 52 octets
        octet = peer.sock.recv(1)
        if not octet:
            break
        data += octet
        try:
            decoded = decode(data)
        except DecodeError:
            continue
        assert decoded.length == len(data)
        return decoded
    raise AssertionError(f"no PROXY header in {data!r}")


@pytest.mark.parametrize("header", HEADERS, ids=["v1", "v2"])
def test_header_comes_first_then_the_session(make_client: MakeClient, header: ProxyHeader) -> None:
    seen: list[Decoded] = []

    def script(peer: Peer) -> None:
        seen.append(read_header(peer))  # before the greeting: the client did not wait
        assert not peer.buffer  # and nothing else was sent with it
        peer.greet()
        peer.expect(b"NOOP")
        peer.send(b"250 ok\r\n")
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with listening(socket.AF_INET, ("127.0.0.1", 0), script) as listener:
        port = listener.getsockname()[1]
        with make_client(
            host="127.0.0.1", port=port, tls="none", timeout=5, proxy_header=header
        ) as client:
            assert client.noop().code == 250
    assert seen[0].source_port == 50123 and seen[0].version == header.version


def test_header_goes_before_implicit_tls(
    make_client: MakeClient, tls_material: TLSMaterial
) -> None:
    header = HEADERS[1]
    seen: list[Decoded] = []

    def script(peer: Peer) -> None:
        seen.append(read_header(peer))  # in cleartext
        peer.starttls(tls_material.server_context())
        peer.greet()
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with listening(socket.AF_INET, ("127.0.0.1", 0), script) as listener:
        port = listener.getsockname()[1]
        with make_client(
            host="127.0.0.1",
            port=port,
            tls="implicit",
            ssl_context=tls_material.client_context(),
            server_hostname="localhost",
            timeout=5,
            proxy_header=header,
        ) as client:
            assert client.session.conn.tls_active
    assert seen[0].destination_port == 465


def test_pool_connections_start_with_the_header(make_pool: Callable[..., PoolFacade]) -> None:
    seen: list[Decoded] = []

    def script(peer: Peer) -> None:
        seen.append(read_header(peer))
        peer.greet()
        for verb in (b"MAIL", b"RCPT", b"DATA"):
            peer.expect(verb)
            peer.send(b"354 go\r\n" if verb == b"DATA" else b"250 ok\r\n")
        peer.read_data()
        peer.send(b"250 queued\r\n")
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with listening(socket.AF_INET, ("127.0.0.1", 0), script) as listener:
        pool = make_pool(host="127.0.0.1", port=listener.getsockname()[1], proxy_header=HEADERS[0])
        pool.send(pipelining=False)
        pool.close()
    assert seen[0].source == "192.0.2.7"


@pytest.mark.parametrize("client_class", CLIENTS)
@pytest.mark.parametrize("value", [b"PROXY UNKNOWN\r\n", "PROXY UNKNOWN", {"version": 2}])
def test_anything_but_a_proxy_header_is_a_caller_mistake(client_class: Any, value: Any) -> None:
    with pytest.raises(SMTPProtocolError) as info:
        client_class("127.0.0.1", 25, proxy_header=value)
    assert_caller_mistake(info.value)
    assert "ProxyHeader" in str(info.value)
