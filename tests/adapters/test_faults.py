"""Fault injection for every adapter, against scripted servers over socket pairs.

Every test is bounded: the peer's sockets time out, the clients get short timeouts,
and elapsed time is checked where a timeout is the point.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from interop.peers import TLSMaterial
from smtpproto.exceptions import (
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPDeliveryTimeoutError,
    SMTPError,
    SMTPProtocolError,
    SMTPReplyError,
    SMTPTimeoutError,
    SMTPTLSError,
)

from .facade import SyncClient
from .peer import EHLO, Peer, listening, scripted

MakeClient = Callable[..., SyncClient]
MESSAGE = b"Subject: test\r\n\r\n.leading dot\r\nbody\r\n"
SHORT = 0.3


def deliver_one(peer: Peer) -> bytes:
    """Answer one pipelined MAIL/RCPT/DATA transaction; return the content."""
    peer.expect(b"MAIL FROM:")
    peer.expect(b"RCPT TO:")
    peer.expect(b"DATA")
    peer.send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go on\r\n")
    content = peer.read_data()
    peer.send(b"250 2.0.0 queued\r\n")
    return content


def test_delivery_over_a_socket_pair(make_client: MakeClient) -> None:
    received: list[bytes] = []

    def script(peer: Peer) -> None:
        peer.greet()
        received.append(deliver_one(peer))
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with scripted(script) as sock, make_client(sock=sock, timeout=5) as client:
        result = client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert result.delivered == ("b@example.org",)
    assert received == [MESSAGE.replace(b"\r\n.leading", b"\r\n..leading")]


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("greeting", SMTPConnectError),  # a lost connection, not a bad reply
        ("ehlo", SMTPConnectError),  # a lost connection, not a bad reply
        ("mail", SMTPConnectError),  # a lost connection, not a bad reply
        ("final", SMTPDeliveryStatusUnknown),
    ],
)
def test_server_closes_mid_reply(
    make_client: MakeClient, stage: str, expected: type[SMTPError]
) -> None:
    def script(peer: Peer) -> None:
        if stage == "greeting":
            peer.send(b"220 mx.exa")
            return
        peer.send(b"220 mx\r\n")
        peer.expect(b"EHLO")
        if stage == "ehlo":
            peer.send(b"250-mx.example.org\r\n250-PIPEL")
            return
        peer.send(EHLO)
        peer.expect(b"MAIL")
        peer.expect(b"RCPT")
        peer.expect(b"DATA")
        if stage == "mail":
            peer.send(b"250 2.1.0 o")
            return
        peer.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        peer.read_data()
        peer.send(b"25")

    with scripted(script) as sock:
        client = make_client(sock=sock, timeout=5)
        with pytest.raises(expected) as info:
            client.connect()
            client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        if isinstance(info.value, SMTPProtocolError):
            assert info.value.remote
        assert not client.session.usable
        client.close()


def test_stalled_server_times_out_quickly(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        peer.send(b"220 mx\r\n")
        peer.expect(b"EHLO")
        peer.line()  # wait for the client to give up (EOF raises)

    with scripted(script) as sock:
        client = make_client(sock=sock, timeout=SHORT)
        with pytest.raises(SMTPTimeoutError) as info:
            client.connect()
        assert info.value.waiting_for == "EHLO reply" and info.value.timeout == SHORT
        assert not info.value.delivery_status_unknown
        assert not client.session.usable


def test_stall_after_the_content_is_delivery_status_unknown(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        peer.greet()
        peer.expect(b"MAIL")
        peer.expect(b"RCPT")
        peer.expect(b"DATA")
        peer.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        peer.read_data()
        peer.line()

    with scripted(script) as sock:
        client = make_client(sock=sock, timeout=SHORT)
        client.connect()
        with pytest.raises(SMTPDeliveryTimeoutError) as info:
            client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert info.value.delivery_status_unknown and info.value.recipients == ("b@example.org",)
        client.close()


def test_message_deadline_caps_the_per_state_timeouts(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        peer.greet()
        while True:  # read, never answer, until the client gives up (EOF)
            peer.line()

    with scripted(script) as sock:
        client = make_client(sock=sock, timeout=30, message_timeout=SHORT)
        client.connect()
        start = time.monotonic()
        with pytest.raises(SMTPTimeoutError):
            client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert time.monotonic() - start < SHORT + 2
        client.close()


@pytest.mark.parametrize("stage", ["greeting", "ehlo", "mail", "rcpt", "data", "final"])
def test_421_at_every_stage(make_client: MakeClient, stage: str) -> None:
    closing = b"421 4.3.2 shutting down\r\n"

    def script(peer: Peer) -> None:
        if stage == "greeting":
            peer.send(closing)
            return
        peer.send(b"220 mx\r\n")
        peer.expect(b"EHLO")
        if stage == "ehlo":
            peer.send(closing)
            return
        peer.send(EHLO)
        peer.expect(b"MAIL")
        peer.expect(b"RCPT")
        peer.expect(b"DATA")
        replies = {"mail": closing, "rcpt": b"250 ok\r\n" + closing, "data": b"250 ok\r\n" * 2}
        if stage in replies:
            peer.send(replies[stage] + (closing if stage == "data" else b""))
            return
        peer.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        peer.read_data()
        peer.send(closing)

    with scripted(script) as sock:
        client = make_client(sock=sock, timeout=5)
        with pytest.raises(SMTPReplyError) as info:
            client.connect()
            client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert info.value.code == 421
        assert not client.session.usable
        client.close()


def _tls_script(material: TLSMaterial, after_220: bytes = b"") -> Callable[[Peer], None]:
    def script(peer: Peer) -> None:
        peer.greet(b"250-mx.example.org\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
        peer.expect(b"STARTTLS")
        peer.send(b"220 2.0.0 ready\r\n" + after_220)
        peer.starttls(material.server_context())
        peer.expect(b"EHLO")
        peer.send(b"250-mx.example.org\r\n250 AUTH PLAIN\r\n")
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    return script


def test_starttls_verifies_and_gives_channel_binding(
    make_client: MakeClient, tls_material: TLSMaterial
) -> None:
    context = ssl.create_default_context(cafile=str(tls_material.ca_path))
    with scripted(_tls_script(tls_material)) as sock:
        client = make_client(sock=sock, ssl_context=context, server_hostname="localhost", timeout=5)
        with client:
            assert client.session.conn.tls_active
            assert client.session.channel_binding is not None
            assert client.capabilities is not None and "PLAIN" in (
                client.capabilities.auth_mechanisms
            )


def test_bytes_injected_after_the_starttls_220_are_refused(
    make_client: MakeClient, tls_material: TLSMaterial
) -> None:
    context = ssl.create_default_context(cafile=str(tls_material.ca_path))
    script = _tls_script(tls_material, after_220=b"250-mx\r\n250 AUTH PLAIN\r\n")
    with scripted(script) as sock:
        client = make_client(sock=sock, ssl_context=context, server_hostname="localhost", timeout=5)
        with pytest.raises((SMTPProtocolError, SMTPTLSError)):
            client.connect()
        assert not client.session.usable
        assert not client.session.conn.tls_active


@pytest.mark.parametrize("problem", ["untrusted", "wrong-name"])
def test_bad_certificate_is_a_tls_error(
    make_client: MakeClient, tls_material: TLSMaterial, tmp_path: Path, problem: str
) -> None:
    if problem == "untrusted":
        other = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other))
        context = ssl.create_default_context(cafile=str(other))
        name = "localhost"
    else:
        context = ssl.create_default_context(cafile=str(tls_material.ca_path))
        name = "mx.elsewhere.example"
    with scripted(_tls_script(tls_material)) as sock:
        client = make_client(sock=sock, ssl_context=context, server_hostname=name, timeout=5)
        with pytest.raises(SMTPTLSError) as info:
            client.connect()
        assert isinstance(info.value.__cause__, ssl.SSLError)
        assert not client.session.usable


def test_tls_required_without_a_host_name_is_refused(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        peer.greet(b"250-mx.example.org\r\n250 STARTTLS\r\n")
        peer.expect(b"STARTTLS")
        peer.send(b"220 go\r\n")
        peer.line()

    with scripted(script) as sock:
        client = make_client(sock=sock, tls="required", timeout=5)
        with pytest.raises(SMTPTLSError, match="server_hostname"):
            client.connect()


def test_early_replies_to_a_large_pipelined_group_do_not_deadlock(
    make_client: MakeClient,
) -> None:
    """RFC 2920 §3.2: the server answers each RCPT as it reads it while the client is
    still writing the group; neither side may stop reading."""
    count = 4000
    padding = b"x" * 150
    domain = "d" * 60 + ".example"
    recipients = [f"{'r' * 50}{i}@{domain}" for i in range(count)]

    def script(peer: Peer) -> None:
        peer.greet()
        peer.expect(b"MAIL")
        peer.send(b"250 ok\r\n")
        for _ in range(count):
            peer.expect(b"RCPT")
            peer.send(b"250 2.1.5 ok " + padding + b"\r\n")
        peer.expect(b"DATA")
        peer.send(b"354 go\r\n")
        peer.read_data()
        peer.send(b"250 queued\r\n")

    with scripted(script) as sock:
        client = make_client(sock=sock, timeout=10)
        client.connect()
        result = client.sendmail("a@example.org", recipients, MESSAGE)
        assert len(result.delivered) == count
        client.close()


def test_large_body_is_streamed(make_client: MakeClient) -> None:
    size = 8 * 1024 * 1024
    seen: list[int] = []

    def script(peer: Peer) -> None:
        peer.greet()
        deliver = deliver_one(peer)
        seen.append(len(deliver))

    def body() -> Iterator[bytes]:
        line = b"y" * 98 + b"\r\n"
        for _ in range(size // len(line)):
            yield line

    with scripted(script) as sock:
        client = make_client(sock=sock, timeout=10)
        client.connect()
        progress: list[int] = []
        client.sendmail(
            "a@example.org",
            ["b@example.org"],
            body(),
            progress=lambda sent, total: progress.append(sent),
        )
        client.close()
    assert seen == [size // 100 * 100]
    assert progress[-1] == size // 100 * 100


@pytest.mark.parametrize(
    ("early", "expected"),
    [(b"421", SMTPReplyError), (b"552", (SMTPProtocolError, SMTPReplyError))],
)
def test_server_answers_and_closes_during_a_large_body(
    make_client: MakeClient,
    early: bytes,
    expected: type[SMTPError] | tuple[type[SMTPError], ...],
) -> None:
    """The server gives up mid-content: its last words are reported, not just the
    broken pipe. A 421 is allowed at any time (RFC 5321 §3.8); a 552 before the end of
    the content is a protocol error, unless the adapter had already queued the final
    dot (asyncio buffers writes), which makes it the reply to the content."""

    def script(peer: Peer) -> None:
        peer.greet()
        peer.expect(b"MAIL")
        peer.expect(b"RCPT")
        peer.expect(b"DATA")
        peer.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        peer._fill()  # some content arrived
        peer.send(early + b" 4.3.0 giving up\r\n")

    with scripted(script) as sock:
        client = make_client(sock=sock, timeout=10)
        client.connect()
        with pytest.raises(expected) as info:
            client.sendmail("a@example.org", ["b@example.org"], b"x" * 70 + b"\r\n" * 400_000)
        assert "giving up" in str(info.value)
        assert not client.session.usable
        client.close()


def test_unix_socket(make_client: MakeClient, tmp_path: Path) -> None:
    path = str(tmp_path / "smtp.sock")

    def script(peer: Peer) -> None:
        peer.greet()
        peer.expect(b"NOOP")
        peer.send(b"250 ok\r\n")
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with listening(socket.AF_UNIX, path, script), make_client(unix_socket=path) as client:
        assert client.noop().code == 250


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
def test_tcp_over_ipv4_and_ipv6(
    make_client: MakeClient, family: socket.AddressFamily, host: str
) -> None:
    helo: list[bytes] = []

    def script(peer: Peer) -> None:
        peer.send(b"220 mx\r\n")
        helo.append(peer.expect(b"EHLO"))
        peer.send(EHLO)
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with listening(family, (host, 0), script) as listener:
        port = listener.getsockname()[1]
        with make_client(host=host, port=port, timeout=5) as client:
            assert client.capabilities is not None and client.capabilities.pipelining
    literal = b"[IPv6:::1]" if family == socket.AF_INET6 else b"[127.0.0.1]"
    assert helo == [b"EHLO " + literal]


def test_connection_refused_is_a_connect_error(make_client: MakeClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(host="127.0.0.1", port=port, timeout=5)
    with pytest.raises(SMTPConnectError) as info:
        client.connect()
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.port == port


def test_lmtp_per_recipient_replies(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        peer.send(b"220 lmtp ready\r\n")
        peer.expect(b"LHLO")
        peer.send(b"250-lmtp.example.org\r\n250 PIPELINING\r\n")
        peer.expect(b"MAIL")
        peer.expect(b"RCPT")
        peer.expect(b"RCPT")
        peer.expect(b"DATA")
        peer.send(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
        peer.read_data()
        peer.send(b"250 2.0.0 delivered\r\n452 4.2.2 mailbox full\r\n")
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with scripted(script) as sock, make_client(sock=sock, lmtp=True, timeout=5) as client:
        result = client.sendmail("a@example.org", ["b@example.org", "c@example.org"], MESSAGE)
        assert result.delivered == ("b@example.org",)
        assert [(a, r.code) for a, r in result.failed] == [("c@example.org", 452)]


def test_source_address_is_used(make_client: MakeClient) -> None:
    """The connection comes from the given local address (127.0.0.2: any 127/8 address
    is local on Linux; the target stays 127.0.0.1). Port 0 lets the kernel choose."""
    seen: list[str] = []

    def script(peer: Peer) -> None:
        seen.append(peer.sock.getpeername()[0])
        peer.greet()
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with listening(socket.AF_INET, ("127.0.0.1", 0), script) as listener:
        port = listener.getsockname()[1]
        with make_client(host="127.0.0.1", port=port, source_address=("127.0.0.2", 0), timeout=5):
            pass
    assert seen == ["127.0.0.2"]


def test_oauth_token_login(make_client: MakeClient) -> None:
    lines: list[bytes] = []

    def script(peer: Peer) -> None:
        peer.greet(b"250-mx.example.org\r\n250 AUTH PLAIN XOAUTH2\r\n")
        lines.append(peer.expect(b"AUTH XOAUTH2 "))
        peer.send(b"235 2.7.0 accepted\r\n")
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with (
        scripted(script) as sock,
        make_client(sock=sock, tls="none", allow_cleartext_auth=True, timeout=5) as client,
    ):
        assert client.login("user@example.org", token="ya29.token").code == 235
        assert client.session.conn.authenticated
    assert len(lines) == 1


def test_context_exit_quits_after_a_refused_command(make_client: MakeClient) -> None:
    quit_seen: list[bool] = []

    def script(peer: Peer) -> None:
        peer.greet()
        peer.expect(b"VRFY")
        peer.send(b"550 5.1.1 no such user\r\n")
        quit_seen.append(peer.line() == b"QUIT")
        peer.send(b"221 bye\r\n")

    with scripted(script) as sock:
        with pytest.raises(SMTPReplyError), make_client(sock=sock, timeout=5) as client:
            client.vrfy("nobody")
        assert not client.session.usable
    assert quit_seen == [True]


@pytest.mark.parametrize("answer", [b"", b"421 4.3.2 shutting down\r\n", b"500 5.5.1 what?\r\n"])
def test_a_delivered_message_is_not_undone_by_a_failing_quit_at_context_exit(
    make_client: MakeClient, answer: bytes
) -> None:
    """The server queued the message, then answers QUIT with a close, a 421 or a
    refusal instead of 221 (RFC 5321 §4.1.1.10): the session is over either way (the
    connection is closed), so leaving the ``with`` block does not raise over the
    delivered result (``smtpproto.send`` leaves one too): a caller that took the
    error for a failed delivery would send the message again."""
    received: list[bytes] = []

    def script(peer: Peer) -> None:
        peer.greet()
        received.append(deliver_one(peer))
        peer.expect(b"QUIT")
        if answer:
            peer.send(answer)

    with scripted(script) as sock:
        with make_client(sock=sock, timeout=5) as client:
            result = client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert result.delivered == ("b@example.org",)
        assert not client.session.usable
    assert len(received) == 1
