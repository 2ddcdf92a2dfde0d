"""The PROXY header against the reference receiver: HAProxy's ``accept-proxy``
(``interop/peers_haproxy.py``) in front of the built-in server, from every client.
HAProxy logs the addresses and TLVs it read from each header; it checks the CRC32C
(a flipped checksum octet is refused), and it closes the connection of a proxied
client its ``tcp-request session`` rule rejects."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable

import pytest

from interop.peers import poll
from interop.peers_haproxy import REFUSED, HaproxyPeer
from smtpproto import ProxyHeader, ProxyTLV
from smtpproto.exceptions import SMTPError

from .facade import SyncClient

MakeClient = Callable[..., SyncClient]
MESSAGE = b"Subject: proxied\r\n\r\nbody\r\n"


def _send(make_client: MakeClient, haproxy: HaproxyPeer, header: ProxyHeader) -> None:
    with make_client(
        host=haproxy.host, port=haproxy.port, tls="none", timeout=20, proxy_header=header
    ) as client:
        result = client.sendmail("a@example.net", ["b@example.org"], MESSAGE)
    assert result.delivered == ("b@example.org",)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(
    ("source", "destination"), [("192.0.2.9", "198.51.100.1"), ("2001:db8::9", "2001:db8::1")]
)
def test_haproxy_reads_the_addresses(
    make_client: MakeClient,
    haproxy_proxy: HaproxyPeer,
    adapter: str,
    version: int,
    source: str,
    destination: str,
) -> None:
    port = 41000 + 10 * version + len(adapter) + (5 if ":" in source else 0)
    header = ProxyHeader(
        version=version,  # type: ignore[arg-type]
        source=source,
        source_port=port,
        destination=destination,
        destination_port=25,
    )
    _send(make_client, haproxy_proxy, header)
    haproxy_proxy.wait_for_log(f"proxied src={source}:{port} dst={destination}:25 ")


def test_haproxy_reads_the_tlvs_and_checks_the_crc32c(
    make_client: MakeClient, haproxy_proxy: HaproxyPeer, adapter: str
) -> None:
    unique = f"conn-{adapter}".encode()
    header = ProxyHeader(
        version=2,
        source="192.0.2.10",
        source_port=41100,
        destination="198.51.100.1",
        destination_port=25,
        tlvs=(
            ProxyTLV(type=0x02, value=b"mx.example.org"),
            ProxyTLV(type=0x04, value=b"\x00" * 3),  # NOOP: padding, ignored
            ProxyTLV(type=0x05, value=unique),
        ),
        crc32c=True,
    )
    _send(make_client, haproxy_proxy, header)
    haproxy_proxy.wait_for_log(
        f"src=192.0.2.10:41100 dst=198.51.100.1:25 authority=mx.example.org uid={unique.decode()}"
    )


def test_a_wrong_checksum_is_refused_by_haproxy(haproxy_proxy: HaproxyPeer) -> None:
    """The same header with one octet of the checksum flipped: HAProxy verifies it, so
    the checksums the other tests send are right."""
    wire = bytearray(
        ProxyHeader(
            version=2,
            source="192.0.2.11",
            source_port=41200,
            destination="198.51.100.1",
            destination_port=25,
            crc32c=True,
        ).to_bytes()
    )
    wire[-1] ^= 0x01
    with socket.create_connection((haproxy_proxy.host, haproxy_proxy.port), 10) as sock:
        sock.sendall(bytes(wire))
        sock.settimeout(10)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(100) == b""  # closed without a greeting
    log = haproxy_proxy.wait_for_log("192.0.2.11:41200")
    (line,) = [line for line in log.splitlines() if "192.0.2.11:41200" in line]
    assert "Received an invalid PROXY protocol header" in line


@pytest.mark.parametrize(
    "header",
    [ProxyHeader(family="UNKNOWN"), ProxyHeader(version=2, command="LOCAL")],
    ids=["v1-UNKNOWN", "v2-LOCAL"],
)
def test_unknown_and_local_keep_the_real_address(
    make_client: MakeClient, haproxy_proxy: HaproxyPeer, header: ProxyHeader
) -> None:
    def real() -> int:
        return haproxy_proxy.log().count("proxied src=127.0.0.1:")

    before = real()
    _send(make_client, haproxy_proxy, header)
    poll(lambda: real() > before, 10, "a log line with the real address")


@pytest.mark.parametrize("refused", REFUSED)
def test_haproxy_rejects_the_proxied_client_it_was_told_to(
    make_client: MakeClient, haproxy_proxy: HaproxyPeer, refused: str
) -> None:
    destination = "198.51.100.1" if "." in refused else "2001:db8::1"
    header = ProxyHeader(
        source=refused, source_port=41300, destination=destination, destination_port=25
    )
    client = make_client(
        host=haproxy_proxy.host,
        port=haproxy_proxy.port,
        tls="none",
        timeout=20,
        proxy_header=header,
    )
    with pytest.raises(SMTPError, match="closed while waiting for a reply to the greeting"):
        client.connect()
    client.close()


@pytest.mark.parametrize(
    "header",
    [
        ProxyHeader(version=2, family="UNKNOWN"),
        ProxyHeader(version=2, family="UNIX", source="", destination="/run/smtpd"),
    ],
    ids=["v2-UNKNOWN", "v2-UNIX"],
)
def test_haproxy_refuses_v2_unknown_and_unix(
    make_client: MakeClient, haproxy_proxy: HaproxyPeer, header: ProxyHeader
) -> None:
    """HAProxy 2.6 takes TLVs from the start of the header for a PROXY command of a
    family it does not handle, so these well-formed headers (our decoder reads them)
    are refused: documented in docs/proxy-protocol.md."""

    def invalid() -> int:
        return haproxy_proxy.log().count("Received an invalid PROXY protocol header")

    before = invalid()
    client = make_client(
        host=haproxy_proxy.host,
        port=haproxy_proxy.port,
        tls="none",
        timeout=20,
        proxy_header=header,
    )
    with pytest.raises(SMTPError):  # reset or closed, before any greeting
        client.connect()
    client.close()
    poll(lambda: invalid() > before, 10, "HAProxy's refusal in its log")
