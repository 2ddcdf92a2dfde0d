"""``send_many``'s fast lane (one engine step per message, ``ClientConnection.send_group``)
through every adapter against real peers on 127.0.0.1: Postfix's smtp-sink, aiosmtpd
and a private Postfix smtpd. One envelope for every message (the fast lane's case),
content with leading dots (dot-stuffing, RFC 5321 §4.5.2); every message is checked
as accepted, and where the peer keeps it, as delivered byte for byte, in order.
aiosmtpd offers no PIPELINING: there the general path sends one message at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any
from unittest import mock

import pytest

from interop.conftest import _enter
from interop.peers import AiosmtpdPeer, SinkPeer
from interop.peers_exim import EximPeer
from interop.peers_postfix import PostfixPeer, start_postfix_xclient
from smtpproto.client_engine.connection import ClientConnection
from smtpproto.client_engine.events import TransactionResult
from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import run_server

from .exim_client import exim_client
from .facade import SyncClient

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10.0
SENDER = "sender@example.org"
RECIPIENTS = ["a@example.org", "b@example.org"]


def message(index: int) -> bytes:
    return b"Subject: %d\r\n\r\n.leading dot\r\n..two\r\nbody %d\r\n" % (index, index)


@pytest.fixture(scope="module")
def postfix() -> Iterator[PostfixPeer]:
    """One private Postfix for the module (its start takes seconds); it relays for
    example.org and discards."""
    with ExitStack() as stack:
        yield _enter(stack, start_postfix_xclient())


def send(client: SyncClient, count: int | list[Any], **options: Any) -> tuple[list[Any], int]:
    """``send_many`` of ``count`` messages with one envelope (or of the items given);
    the outcomes and how many groups the engine's fast lane sent."""
    taken: list[bool] = []
    original = ClientConnection.send_group

    def counted(
        conn: ClientConnection, content: Any, template: Any, mail: Any = None
    ) -> bytes | None:
        wire = original(conn, content, template, mail)
        taken.append(wire is not None)
        return wire

    def counted_bdat(conn: ClientConnection, *args: Any, **kwargs: Any) -> bytes | None:
        wire = original_bdat(conn, *args, **kwargs)
        taken.append(wire is not None)
        return wire

    original_bdat = ClientConnection.send_bdat_group
    with (
        mock.patch.object(ClientConnection, "send_group", counted),
        mock.patch.object(ClientConnection, "send_bdat_group", counted_bdat),
    ):
        if isinstance(count, list):
            items: Any = iter(count)
        else:
            items = ((SENDER, RECIPIENTS, message(i)) for i in range(count))
        outcomes = client.send_many(items, **options)
    return outcomes, sum(taken)


def accepted(outcomes: list[Any], count: int) -> None:
    assert len(outcomes) == count
    assert all(isinstance(o, TransactionResult) for o in outcomes)
    assert all(o.delivered == tuple(RECIPIENTS) for o in outcomes)


def test_smtp_sink(make_client: MakeClient, smtp_sink: SinkPeer) -> None:
    count = 200
    with make_client(host=smtp_sink.host, port=smtp_sink.port, timeout=TIMEOUT) as client:
        outcomes, fast = send(client, count)
        assert client.noop().code == 250  # still in step
    accepted(outcomes, count)
    assert fast == count - 1  # every message after the first: its group in one step
    delivered = smtp_sink.wait_for_messages(count)
    assert [m.content for m in delivered] == [
        message(i).replace(b"\r\n", b"\n") for i in range(count)
    ]


def test_aiosmtpd(make_client: MakeClient, aiosmtpd_factory: Callable[..., AiosmtpdPeer]) -> None:
    count = 60
    aiosmtpd_server = aiosmtpd_factory()
    with make_client(
        host=aiosmtpd_server.host, port=aiosmtpd_server.port, tls="none", timeout=TIMEOUT
    ) as client:
        assert client.capabilities is not None and not client.capabilities.pipelining
        outcomes, fast = send(client, count)
    accepted(outcomes, count)
    assert fast == 0  # no PIPELINING: one message at a time, the general path
    delivered = aiosmtpd_server.wait_for_messages(count)
    assert [m.content for m in delivered] == [message(i) for i in range(count)]
    assert all(m.rcpt_tos == tuple(RECIPIENTS) for m in delivered)


def test_postfix(make_client: MakeClient, postfix: PostfixPeer) -> None:
    count = 40
    with make_client(host=postfix.host, port=postfix.port, tls="none", timeout=TIMEOUT) as client:
        caps = client.capabilities
        assert caps is not None and caps.pipelining and caps.chunking and caps.size
        outcomes, fast = send(client, count, chunking=False)  # DATA, not BDAT windows
        assert client.noop().code == 250
    accepted(outcomes, count)
    # SIZE= is each message's own (RFC 1870 §6): message(0..9) and message(10..39)
    # differ in length, and the template's SIZE slot keeps both in the lane.
    assert fast == count - 1


#: The forms ``send_many`` takes one content in, each sent as its bytes.
FORMS: list[Callable[[bytes], Any]] = [bytes, bytearray, lambda data: data.decode("ascii")]


def sized(index: int) -> bytes:
    """Message ``index``: its length varies (0 to 64 lines of 72 octets)."""
    return message(index) + (b"y" * 70 + b"\r\n") * (index * 37 % 65)


def test_builtin_server_sizes_and_forms(make_client: MakeClient) -> None:
    # The built-in server advertises SIZE: each MAIL carries its message's own SIZE=
    # (RFC 1870 §6), the contents come as bytes, bytearray and str, and the messages
    # above the server's limit are refused before MAIL (§6.1), the batch going on.
    count, limit = 60, 4300
    items = [(SENDER, RECIPIENTS, FORMS[i % 3](sized(i))) for i in range(count)]
    over = {i for i in range(count) if len(sized(i)) > limit}
    assert 2 <= len(over) <= 10
    with (
        run_server(starttls=False, max_message_size=limit) as server,
        make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client,
    ):
        assert client.capabilities is not None and client.capabilities.size == limit
        outcomes, fast = send(client, items, chunking=False)  # DATA, not BDAT windows
        assert client.noop().code == 250  # still in step
        stored = server.wait_for_messages(count - len(over), timeout=TIMEOUT)
    assert len(outcomes) == count
    for index, outcome in enumerate(outcomes):
        if index in over:
            assert isinstance(outcome, SMTPProtocolError) and "SIZE" in str(outcome)
        else:
            assert isinstance(outcome, TransactionResult)
            assert outcome.delivered == tuple(RECIPIENTS)
    assert [m.data for m in stored] == [sized(i) for i in range(count) if i not in over]
    # Each message sent after a 354 took the lane, whatever its length or form: all
    # but the first and those the general path refused (and the one after each).
    assert fast >= count - 1 - 2 * len(over)


def test_postfix_memoryview_sizes(make_client: MakeClient, postfix: PostfixPeer) -> None:
    # A memoryview is read by its octets (``support.all_ascii``): ASCII content goes
    # without BODY= though Postfix offers 8BITMIME, with its own SIZE= each time.
    count = 30
    items = [(SENDER, RECIPIENTS, memoryview(sized(i))) for i in range(count)]
    with make_client(host=postfix.host, port=postfix.port, tls="none", timeout=TIMEOUT) as client:
        outcomes, fast = send(client, items, chunking=False)
        assert client.noop().code == 250
    accepted(outcomes, count)
    assert fast == count - 1


def test_builtin_server_bdat_windows(make_client: MakeClient) -> None:
    # CHUNKING offered and chosen: each message goes as RSET (a BDAT LAST unanswered
    # before it), MAIL with its own SIZE=, RCPTs and BDAT n LAST with its content in
    # one engine step (RFC 3030 §2); bare line ends become CRLF as on the general path.
    count = 60
    contents = [sized(i).replace(b"\r\n", b"\n" if i % 2 else b"\r\n") for i in range(count)]
    items = [(SENDER, RECIPIENTS, FORMS[i % 3](contents[i])) for i in range(count)]
    with (
        run_server(starttls=False) as server,
        make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client,
    ):
        assert client.capabilities is not None and client.capabilities.chunking
        outcomes, fast = send(client, items, chunking=True)
        assert client.noop().code == 250
        stored = server.wait_for_messages(count, timeout=TIMEOUT)
    accepted(outcomes, count)
    assert fast == count - 1
    assert [m.data for m in stored] == [sized(i) for i in range(count)]


def test_postfix_bdat_windows(make_client: MakeClient, postfix: PostfixPeer) -> None:
    count = 40
    items = [(SENDER, RECIPIENTS, sized(i)) for i in range(count)]
    with make_client(host=postfix.host, port=postfix.port, tls="none", timeout=TIMEOUT) as client:
        outcomes, fast = send(client, items)  # CHUNKING offered: BDAT windows
        assert client.noop().code == 250
    accepted(outcomes, count)
    assert fast == count - 1


def test_exim_bdat_windows(make_client: MakeClient, exim_server: EximPeer) -> None:
    # Exim offers CHUNKING and SIZE: one envelope, messages of varied lengths, BDAT LAST
    # windows from the fast lane; each delivered in full.
    count = 10  # Exim queues (does not deliver) past 10 messages per connection
    recipient = "r0@exim.test"
    items = [(SENDER, [recipient], sized(i)) for i in range(count)]
    with exim_client(make_client, exim_server) as client:
        caps = client.capabilities
        assert caps is not None and caps.chunking and caps.pipelining and caps.has("SIZE")
        outcomes, fast = send(client, items, max_in_flight=4)
    assert [o.delivered for o in outcomes if isinstance(o, TransactionResult)] == [
        (recipient,)
    ] * count
    assert fast == count - 1
    delivered = sorted(m.content for m in exim_server.wait_for_messages(count))
    assert len(delivered) == count
    for i in range(count):
        assert any(d.endswith(sized(i).replace(b"\r\n", b"\n")) for d in delivered)
