"""The three pools against the built-in server's rules that fail on purpose
(``smtpproto.testing.run_server(rules=...)``): the cases docs/pool.md promises —
a connection the server closed while idle, 421 mid-transaction, a drop after the
final dot — judged by the messages the server stored."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from smtpproto.exceptions import SMTPDeliveryStatusUnknown, SMTPRecipientsRefused, SMTPReplyError
from smtpproto.testing import Disconnect, Drop, Respond, Rule, run_server

from .pool_facade import MESSAGE, PoolFacade, make_pool

__all__ = ["make_pool"]  # the fixture, used by name

MakePool = Callable[..., PoolFacade]


def _send(pool: PoolFacade, sender: str = "a@example.org") -> object:
    return pool.call("sendmail", sender, ["b@example.org"], MESSAGE)


def test_an_idle_connection_the_server_timed_out_is_replaced(make_pool: MakePool) -> None:
    with run_server(starttls=False, timeout=0.2) as server:
        pool = make_pool(host=server.host, port=server.port, check_idle_after=0.1)
        _send(pool)
        time.sleep(0.6)  # the server's idle timer closes the connection (with a 421)
        _send(pool, "second@example.org")
        stored = server.received.wait(2)
        assert [message.sender for message in stored] == ["a@example.org", "second@example.org"]


def test_421_mid_transaction_is_not_retried(make_pool: MakePool) -> None:
    rule = Rule(stage="rcpt", message=1, action=Disconnect())
    with run_server(starttls=False, rules=[rule]) as server:
        pool = make_pool(host=server.host, port=server.port)
        with pytest.raises(SMTPReplyError) as caught:
            _send(pool)
        assert caught.value.code == 421
        assert len(server.received) == 0
        _send(pool, "next@example.org")
        assert [message.sender for message in server.received.wait(1)] == ["next@example.org"]


def test_a_drop_after_the_final_dot_is_reported_and_never_resent(make_pool: MakePool) -> None:
    rule = Rule(stage="data_end", message=1, action=Drop())
    with run_server(starttls=False, rules=[rule]) as server:
        pool = make_pool(host=server.host, port=server.port)
        with pytest.raises(SMTPDeliveryStatusUnknown):
            _send(pool)
        _send(pool, "next@example.org")
        stored = server.received.wait(2)
        assert [message.sender for message in stored] == ["a@example.org", "next@example.org"]
        time.sleep(0.1)
        assert len(server.received) == 2  # the first one exactly once


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_refused_transaction_does_not_spoil_the_pooled_connection(
    make_pool: MakePool, stage: str
) -> None:
    """Every recipient (or DATA) refused: the connection goes back to the pool with the
    transaction ended (RSET), so the next message over it is delivered (it got 503
    "nested MAIL" before)."""
    rule = Rule(stage=stage, message=1, action=Respond(550, "no"))  # type: ignore[arg-type]
    with run_server(starttls=False, rules=[rule]) as server:
        pool = make_pool(host=server.host, port=server.port)
        with pytest.raises((SMTPRecipientsRefused, SMTPReplyError)):  # DATA meets "data"
            pool.call("sendmail", "a@example.org", ["b@example.org"], MESSAGE, chunking=False)
        assert pool.pool.idle_connections == 1  # kept: the session is healthy
        _send(pool, "next@example.org")
        assert [message.sender for message in server.received.wait(1)] == ["next@example.org"]
        assert pool.pool.connections == 1
