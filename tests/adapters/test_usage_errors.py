"""Caller mistakes in methods raise the same exception as in constructors (issue 11
item 13): ``SMTPProtocolError`` wrapping a ``LocalProtocolError``, through every
adapter, with nothing sent for the call. Whether the session stays usable after a
mistake the engine finds mid-operation (a CR/LF in an address) is issue 11 item 9's
rule, not checked here; a mistake found before the operation starts leaves it usable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from smtpproto.exceptions import SMTPProtocolError

from .facade import SyncClient
from .peer import Peer, scripted
from .test_constructor_checks import assert_caller_mistake

MakeClient = Callable[..., SyncClient]


def test_an_operation_before_connect_is_a_caller_mistake(make_client: MakeClient) -> None:
    client = make_client(host="127.0.0.1", port=9, tls="none")
    with pytest.raises(SMTPProtocolError, match="not connected") as caught:
        client.noop()
    assert_caller_mistake(caught.value)
    with pytest.raises(SMTPProtocolError, match="not connected"):
        _ = client.session


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.send_many([], max_in_flight=0), id="max_in_flight"),
        pytest.param(lambda c: c.connect(), id="connect-twice"),
    ],
)
def test_a_bad_call_is_a_caller_mistake_and_the_session_goes_on(
    make_client: MakeClient, call: Callable[[Any], object]
) -> None:
    def script(peer: Peer) -> None:
        peer.greet()
        peer.expect(b"NOOP")
        peer.send(b"250 still here\r\n")
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with scripted(script) as sock, make_client(sock=sock, timeout=5) as client:
        with pytest.raises(SMTPProtocolError) as caught:
            call(client)
        assert_caller_mistake(caught.value)
        assert client.noop().code == 250  # nothing was sent for the mistake


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.sendmail("a@example.org", "b@exa\r\nmple", b"x"), id="crlf"),
        pytest.param(lambda c: c.vrfy("a\x00b"), id="nul"),
        pytest.param(lambda c: c.sendmail("a@example.org", [], b"x"), id="no-recipients"),
        pytest.param(lambda c: c.login("user", None), id="no-auth"),
    ],
)
def test_a_bad_argument_found_by_the_engine_is_a_caller_mistake(
    make_client: MakeClient, call: Callable[[Any], object]
) -> None:
    lines: list[bytes] = []

    def script(peer: Peer) -> None:
        peer.greet()
        for _ in range(5):
            lines.append(peer.line())

    with scripted(script) as sock:
        client = make_client(sock=sock, timeout=5)
        client.connect()
        with pytest.raises(SMTPProtocolError) as caught:
            call(client)
        assert_caller_mistake(caught.value)
        client.close()
    assert lines == []  # nothing was sent for it
