"""The PROXY header against a real receiver: a private Postfix smtpd with
``smtpd_upstream_proxy_protocol = haproxy`` (``interop/peers_postfix.py``), from every
client. Postfix must *use* the address in the header: its client restriction refuses
the proxied 192.0.2.66 / 2001:db8::66 (the 554 names the address) and accepts any
other, and its log names the proxied client; v2 LOCAL makes it use the real connection's
address (127.0.0.1); v1 UNKNOWN, v2 UNKNOWN and v2 UNIX it refuses with 421."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from interop.peers import poll
from interop.peers_postfix import REFUSAL_TEXT, REFUSED, PostfixPeer
from smtpproto import ProxyHeader
from smtpproto.exceptions import SMTPRecipientsRefused, SMTPReplyError

from .facade import SyncClient

MakeClient = Callable[..., SyncClient]
MESSAGE = b"Subject: proxied\r\n\r\nbody\r\n"
ADDRESSES = {"TCP4": ("192.0.2.7", "198.51.100.25"), "TCP6": ("2001:db8::7", "2001:db8::25")}


def _header(version: int, source: str, destination: str, port: int) -> ProxyHeader:
    return ProxyHeader(
        version=version,  # type: ignore[arg-type]
        source=source,
        source_port=port,
        destination=destination,
        destination_port=25,
    )


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("family", ["TCP4", "TCP6"])
def test_postfix_accepts_and_logs_the_proxied_client(
    make_client: MakeClient, postfix_proxy: PostfixPeer, version: int, family: str, adapter: str
) -> None:
    source, destination = ADDRESSES[family]
    port = 40000 + 10 * version + len(adapter)  # one per case, to find its log line
    header = _header(version, source, destination, port)
    with make_client(
        host=postfix_proxy.host,
        port=postfix_proxy.port,
        tls="none",
        timeout=20,
        proxy_header=header,
    ) as client:
        result = client.sendmail("a@example.net", ["b@example.org"], MESSAGE)
    assert [reply.code for _, reply in result.recipients] == [250]
    postfix_proxy.wait_for_log(f"connect from unknown[{source}]:{port}")
    postfix_proxy.wait_for_log(f"client=unknown[{source}]:{port}")  # the queued message


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("refused", REFUSED)
def test_postfix_refuses_the_proxied_address_it_was_told_to(
    make_client: MakeClient, postfix_proxy: PostfixPeer, version: int, refused: str
) -> None:
    destination = "198.51.100.25" if "." in refused else "2001:db8::25"
    header = _header(version, refused, destination, 40100)
    with (
        make_client(
            host=postfix_proxy.host,
            port=postfix_proxy.port,
            tls="none",
            timeout=20,
            proxy_header=header,
        ) as client,
        pytest.raises(SMTPRecipientsRefused) as info,
    ):
        client.sendmail("a@example.net", ["b@example.org"], MESSAGE)
    (reply,) = info.value.refused.values()
    assert reply.code == 554
    assert f"unknown[{refused}]" in reply.text and REFUSAL_TEXT in reply.text


def test_v2_local_uses_the_real_address(
    make_client: MakeClient, postfix_proxy: PostfixPeer
) -> None:
    with make_client(
        host=postfix_proxy.host,
        port=postfix_proxy.port,
        tls="none",
        timeout=20,
        proxy_header=ProxyHeader(version=2, command="LOCAL"),
    ) as client:
        result = client.sendmail("a@example.net", ["b@example.org"], MESSAGE)
        assert [reply.code for _, reply in result.recipients] == [250]
    postfix_proxy.wait_for_log("connect from unknown[127.0.0.1]")


@pytest.mark.parametrize(
    ("header", "logged"),
    [
        (ProxyHeader(family="UNKNOWN"), "bad or missing protocol type: PROXY UNKNOWN"),
        (ProxyHeader(version=2, family="UNKNOWN"), "unsupported network protocol"),
        (
            ProxyHeader(version=2, family="UNIX", source="", destination="/run/smtpd"),
            "unsupported network protocol",
        ),
    ],
    ids=["v1-UNKNOWN", "v2-UNKNOWN", "v2-UNIX"],
)
def test_postfix_refuses_what_it_does_not_support(
    make_client: MakeClient, postfix_proxy: PostfixPeer, header: ProxyHeader, logged: str
) -> None:
    """Postfix 3.7 answers these with 421 (the spec lets a receiver reject them, and
    warns senders not to use UNKNOWN): the greeting is refused."""
    before = postfix_proxy.log().count(logged)
    client = make_client(
        host=postfix_proxy.host,
        port=postfix_proxy.port,
        tls="none",
        timeout=20,
        proxy_header=header,
    )
    with pytest.raises(SMTPReplyError) as info:
        client.connect()
    assert info.value.reply.code == 421
    client.close()
    poll(lambda: postfix_proxy.log().count(logged) > before, 10, repr(logged))


def test_implicit_tls_header_before_the_handshake(
    make_client: MakeClient, postfix_proxy: PostfixPeer, adapter: str
) -> None:
    """Postfix's implicit-TLS port (smtpd_tls_wrappermode) reads the header in
    cleartext, then handshakes: the client wrote the header before the ClientHello."""
    port = 40500 + len(adapter)
    header = _header(2, "192.0.2.12", "198.51.100.25", port)
    with make_client(
        host=postfix_proxy.host,
        port=postfix_proxy.tls_port,
        tls="implicit",
        ssl_context=postfix_proxy.tls.client_context(),
        server_hostname="localhost",
        timeout=20,
        proxy_header=header,
    ) as client:
        assert client.tls_info is not None
        result = client.sendmail("a@example.net", ["b@example.org"], MESSAGE)
    assert [reply.code for _, reply in result.recipients] == [250]
    postfix_proxy.wait_for_log(f"TLS connection established from unknown[192.0.2.12]:{port}")
    postfix_proxy.wait_for_log(f"client=unknown[192.0.2.12]:{port}")
