"""``send_many`` through every adapter against real peers on 127.0.0.1: smtp-sink
(PIPELINING, DATA: one round trip per message) and Exim (PIPELINING + CHUNKING: BDAT
LAST windows), every message checked as delivered, in order."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from interop.peers import SinkPeer
from interop.peers_exim import EximPeer
from smtpproto.client_engine.events import TransactionResult
from smtpproto.exceptions import SMTPRecipientsRefused
from smtpproto.testing import Respond, Rule, run_server

from .exim_client import exim_client
from .facade import SyncClient

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10.0


def message(index: int) -> bytes:
    return b"Subject: message %d\r\n\r\nbody of message %d\r\n.leading dot\r\n" % (index, index)


def lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def test_smtp_sink_one_round_trip_per_message(make_client: MakeClient, smtp_sink: SinkPeer) -> None:
    count = 300
    items = ((f"s{i}@example.test", ["a@example.test"], message(i)) for i in range(count))
    with make_client(host=smtp_sink.host, port=smtp_sink.port, timeout=TIMEOUT) as client:
        caps = client.capabilities
        assert caps is not None and caps.pipelining and not caps.chunking
        outcomes = client.send_many(items)
        assert client.noop().code == 250  # the session is still in step
    assert len(outcomes) == count
    assert all(isinstance(o, TransactionResult) for o in outcomes)
    assert [o.sender for o in outcomes if isinstance(o, TransactionResult)] == [
        f"s{i}@example.test" for i in range(count)
    ]
    delivered = smtp_sink.wait_for_messages(count)
    assert [m.mail_from for m in delivered] == [f"s{i}@example.test" for i in range(count)]
    assert [m.content for m in delivered] == [lf(message(i)) for i in range(count)]


def test_smtp_sink_refused_recipients_are_per_message(
    make_client: MakeClient, smtp_sink_factory: Callable[..., SinkPeer]
) -> None:
    sink = smtp_sink_factory(extra_args=("-f", "RCPT"))
    items = [(f"s{i}@example.test", ["a@example.test"], message(i)) for i in range(5)]
    with make_client(host=sink.host, port=sink.port, timeout=TIMEOUT) as client:
        outcomes = client.send_many(items)
        assert client.noop().code == 250
    assert len(outcomes) == 5
    assert all(isinstance(o, SMTPRecipientsRefused) for o in outcomes)


def test_exim_bdat_windows(make_client: MakeClient, exim_server: EximPeer) -> None:
    count = 10  # Exim queues (does not deliver) past 10 messages per connection
    items = [(f"s{i}@example.test", [f"r{i}@exim.test"], message(i)) for i in range(count)]
    with exim_client(make_client, exim_server) as client:
        caps = client.capabilities
        assert caps is not None and caps.chunking and caps.pipelining
        outcomes = client.send_many(items, max_in_flight=4)
    assert [o.delivered for o in outcomes if isinstance(o, TransactionResult)] == [
        (f"r{i}@exim.test",) for i in range(count)
    ]
    by_rcpt = {d.rcpt_tos: d for d in exim_server.wait_for_messages(count)}
    for i in range(count):
        assert by_rcpt[(f"r{i}@exim.test",)].content.endswith(lf(message(i)))


@pytest.mark.parametrize("chunking", [None, False])
def test_builtin_server_bdat_windows_and_data(
    make_client: MakeClient, chunking: bool | None
) -> None:
    """The built-in server takes both shapes: BDAT LAST windows (CHUNKING) and the
    content end followed by the next MAIL/RCPT/DATA in one write."""
    count = 30
    items = [(f"s{i}@example.test", ["r@example.test"], message(i)) for i in range(count)]
    with run_server() as server:
        with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
            caps = client.capabilities
            assert caps is not None and caps.chunking and caps.pipelining
            outcomes = client.send_many(items, chunking=chunking, max_in_flight=5)
        assert all(isinstance(o, TransactionResult) for o in outcomes) and len(outcomes) == count
        stored = server.wait_for_messages(count, timeout=TIMEOUT)
    assert [m.data for m in stored] == [message(i) for i in range(count)]


@pytest.mark.parametrize("max_in_flight", [1, 4])
@pytest.mark.parametrize("chunking", [True, False])
@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_refused_transaction_is_ended_before_the_next_message(
    make_client: MakeClient, chunking: bool, stage: str, max_in_flight: int
) -> None:
    """A message refused before its content (every RCPT, or DATA) leaves its
    transaction open at the server: the batch sends RSET before the next MAIL, so
    the messages after it (and a sendmail after the batch) are delivered; they got
    503 "nested MAIL" before. With BDAT LAST windows (``max_in_flight`` > 1) the
    messages behind it were written before its refusal came back: each group written
    behind an unanswered BDAT LAST starts with RSET, so none nests in (or joins) the
    refused transaction."""
    rule = Rule(stage=stage, sender="s1@x.test", action=Respond(554, "no"))  # type: ignore[arg-type]
    items = [(f"s{index}@x.test", ["r@y.test"], message(index)) for index in range(4)]
    with (
        run_server(starttls=False, rules=[rule]) as server,
        make_client(host=server.host, port=server.port, tls="none", timeout=10) as client,
    ):
        outcomes = client.send_many(
            items, chunking=chunking and stage != "data", max_in_flight=max_in_flight
        )
        assert [type(outcome).__name__ for outcome in outcomes] == [
            "TransactionResult",
            "SMTPRecipientsRefused" if stage == "rcpt" else "SMTPReplyError",
            "TransactionResult",
            "TransactionResult",
        ]
        client.sendmail("after@x.test", ["r@y.test"], message(9))
        stored = server.wait_for_messages(4, 10)
        assert [m.sender for m in stored] == ["s0@x.test", "s2@x.test", "s3@x.test", "after@x.test"]


@pytest.mark.parametrize("pipelining", [None, False])
@pytest.mark.parametrize("chunking", [None, False])
@pytest.mark.parametrize("where", [0, 2, 4])
@pytest.mark.parametrize("max_in_flight", [1, 4])
def test_a_message_the_engine_refuses_to_send_is_its_own_outcome(
    make_client: MakeClient,
    pipelining: bool | None,
    chunking: bool | None,
    where: int,
    max_in_flight: int,
) -> None:
    """A message above the server's SIZE (the engine refuses its MAIL, RFC 1870 §6) gets
    an ``SMTPProtocolError`` outcome, nothing of it sent, and the batch goes on. It
    broke the session: the messages before it in flight became "status unknown", the
    rest "not sent"."""
    items = [(f"s{index}@x.test", ["r@y.test"], message(index)) for index in range(5)]
    big = b"Subject: big\r\n\r\n" + b"x" * 70 * 40 + b"\r\n"
    items[where] = (f"s{where}@x.test", ["r@y.test"], big.replace(b"x" * 70, b"x" * 68 + b"\r\n"))
    with (
        run_server(starttls=False, max_message_size=1000) as server,
        make_client(host=server.host, port=server.port, tls="none", timeout=10) as client,
    ):
        outcomes = client.send_many(
            items, pipelining=pipelining, chunking=chunking, max_in_flight=max_in_flight
        )
        assert [type(outcome).__name__ for outcome in outcomes] == [
            "SMTPProtocolError" if index == where else "TransactionResult" for index in range(5)
        ]
        assert "SIZE" in str(outcomes[where])
        assert client.noop().code == 250  # in step: no reply left unread
        stored = server.wait_for_messages(4, TIMEOUT)
        assert [m.sender for m in stored] == [f"s{i}@x.test" for i in range(5) if i != where]
