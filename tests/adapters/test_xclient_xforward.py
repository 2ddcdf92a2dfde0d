"""``xclient`` and ``xforward`` on every adapter, against a peer on 127.0.0.1 that
advertises both (Postfix XCLIENT_README, XFORWARD_README): the lines on the wire, the
EHLO after XCLIENT's 220, a refusal as ``SMTPReplyError``, and a local refusal that
sends nothing."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from smtpproto.exceptions import SMTPProtocolError, SMTPReplyError

from .facade import SyncClient
from .peer import Peer, listening

MakeClient = Callable[..., SyncClient]
EHLO_X = (
    b"250-mx.example.org\r\n"
    b"250-XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT\r\n"
    b"250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n"
)
EHLO_AFTER = b"250-mx.example.org\r\n250 XFORWARD NAME ADDR\r\n"


def test_xclient_then_ehlo_then_xforward(make_client: MakeClient) -> None:
    lines: list[bytes] = []

    def script(peer: Peer) -> None:
        peer.greet(EHLO_X)
        lines.append(peer.expect(b"XCLIENT"))
        peer.send(b"220 mx.example.org ESMTP as 192.0.2.1\r\n")
        lines.append(peer.expect(b"EHLO"))
        peer.send(EHLO_AFTER)
        lines.append(peer.expect(b"XFORWARD"))
        peer.send(b"250 2.0.0 Ok\r\n")
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with listening(socket.AF_INET, ("127.0.0.1", 0), script) as listener:
        port = listener.getsockname()[1]
        with make_client(host="127.0.0.1", port=port, timeout=5) as client:
            reply = client.xclient({"ADDR": "192.0.2.1", "helo": "a+b.example"})
            assert reply.code == 220
            caps = client.capabilities
            assert caps is not None and not caps.has("XCLIENT") and caps.has("XFORWARD")
            assert client.session.greeting == reply
            assert client.xforward({"NAME": "spike.example", "ADDR": "192.0.2.2"}).code == 250
            client.quit()
    assert lines[0] == b"XCLIENT ADDR=192.0.2.1 HELO=a+2Bb.example"
    assert lines[1].startswith(b"EHLO ")
    assert lines[2] == b"XFORWARD NAME=spike.example ADDR=192.0.2.2"


def test_refusals(make_client: MakeClient) -> None:
    lines: list[bytes] = []

    def script(peer: Peer) -> None:
        peer.greet(EHLO_X)
        lines.append(peer.expect(b"XCLIENT"))
        peer.send(b"550 5.7.0 Error: insufficient authorization\r\n")
        lines.append(peer.expect(b"XFORWARD"))
        peer.send(b"501 5.5.4 Bad attribute\r\n")
        lines.append(peer.expect(b"QUIT"))
        peer.send(b"221 bye\r\n")

    with listening(socket.AF_INET, ("127.0.0.1", 0), script) as listener:
        port = listener.getsockname()[1]
        with make_client(host="127.0.0.1", port=port, timeout=5) as client:
            with pytest.raises(SMTPReplyError) as info:
                client.xclient({"ADDR": "192.0.2.1"})
            assert info.value.reply.code == 550
            with pytest.raises(SMTPProtocolError, match="LOGIN"):
                client.xforward({"LOGIN": "x"})  # not an XFORWARD attribute: nothing sent
            with pytest.raises(SMTPProtocolError):
                client.xforward({"NAME": "a\r\nRCPT TO:<x@example.org>"})
            with pytest.raises(SMTPReplyError) as info:
                client.xforward({"IDENT": "123"})
            assert info.value.reply.code == 501
            client.quit()
    assert [line.split(b" ")[0] for line in lines] == [b"XCLIENT", b"XFORWARD", b"QUIT"]
