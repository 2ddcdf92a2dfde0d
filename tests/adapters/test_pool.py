"""The connection pools of the three adapters (issue 13 part 2, docs/pool.md).

Each test drives ``SMTPPool``, ``AsyncSMTPPool`` and ``TrioSMTPPool`` in turn through
``PoolFacade`` (``pool_facade``) against ``FlakyServer`` (a real server on 127.0.0.1 that fails on
purpose) and judges the pool by what the server saw: connections, messages whose final
dot arrived, MAIL commands. The guarantee under test: no message is ever sent twice,
a lost connection is replaced only before a command of the message was sent, and a
message whose status is unknown is reported as such.
"""

from __future__ import annotations

import asyncio
import base64
import smtplib
from collections.abc import Callable
from typing import Any

import pytest
import trio

from smtpproto.asyncio_client import AsyncSMTPPool
from smtpproto.blocking import RateLimit
from smtpproto.exceptions import (
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPReplyError,
)
from smtpproto.trio_client import TrioSMTPPool

from .pool_facade import MESSAGE, FakeClock, PoolFacade, make_pool
from .pool_server import flaky_server
from .test_constructor_checks import assert_caller_mistake

__all__ = ["make_pool"]  # the fixture, used by name


# -- reuse, recycling ---------------------------------------------------------------------


def test_one_connection_carries_many_messages(make_pool: Callable[..., PoolFacade]) -> None:
    with flaky_server() as server:
        pool = make_pool(server)
        results = [pool.send() for _ in range(5)]
        assert [result.delivered for result in results] == [("b@example.org",)] * 5
        assert server.connections == 1 and len(server.messages) == 5
        assert (pool.pool.connections, pool.pool.idle_connections) == (1, 1)
        pool.close()
        assert server.commands[-1] == "QUIT"
        assert pool.pool.connections == 0


def test_max_messages_recycles_the_connection(make_pool: Callable[..., PoolFacade]) -> None:
    with flaky_server() as server:
        pool = make_pool(server, max_messages=2)
        for _ in range(5):
            pool.send()
        assert server.connections == 3 and len(server.messages) == 5
        assert server.commands.count("QUIT") == 2  # the two full ones, politely


def test_max_age_recycles_the_connection(
    make_pool: Callable[..., PoolFacade], adapter: str
) -> None:
    clock = FakeClock()
    with flaky_server() as server:
        pool = make_pool(server, max_age=60.0, clock=clock)
        pool.send()
        clock.now += 59.0
        pool.send()
        assert server.connections == 1
        clock.now += 1.0  # 60 s old: too old to lend
        pool.send()
        assert server.connections == 2 and len(server.messages) == 3


# -- the guarantee ----------------------------------------------------------------------------


def test_a_connection_closed_while_idle_is_replaced_before_any_command(
    make_pool: Callable[..., PoolFacade],
) -> None:
    with flaky_server(close_after_reply=True) as server:
        pool = make_pool(server, check_idle_after=0.0)
        for _ in range(3):
            assert pool.send().delivered == ("b@example.org",)
        assert server.connections == 3
        assert len(server.messages) == 3 and server.mail_commands == 3  # nothing twice
        assert server.commands.count("NOOP") == 0  # the probe hit a closed connection


def test_the_idle_check_is_skipped_for_a_fresh_connection(
    make_pool: Callable[..., PoolFacade],
) -> None:
    clock = FakeClock()
    with flaky_server() as server:
        pool = make_pool(server, clock=clock, check_idle_after=5.0, idle_check="rset")
        pool.send()
        pool.send()  # idle 0 s: lent as is
        assert server.commands.count("RSET") == 0
        clock.now += 5.0
        pool.send()  # idle 5 s: probed first
        assert server.commands.count("RSET") == 1 and server.connections == 1


def test_without_an_idle_check_a_dead_connection_fails_once_and_is_not_retried(
    make_pool: Callable[..., PoolFacade],
) -> None:
    with flaky_server(close_after_reply=True) as server:
        pool = make_pool(server, idle_check=None)
        pool.send()
        with pytest.raises(SMTPError) as caught:
            pool.send()
        assert not isinstance(caught.value, SMTPDeliveryStatusUnknown)
        assert len(server.messages) == 1 and server.connections == 1  # no second try
        assert pool.pool.connections == 0  # the broken one was dropped
        pool.send()
        assert len(server.messages) == 2


@pytest.mark.parametrize("pipelining", [True, False])
def test_421_mid_transaction_is_reported_not_retried(
    make_pool: Callable[..., PoolFacade], pipelining: bool
) -> None:
    """Without PIPELINING the client used to answer the 421 with an RSET the engine
    refused (a confusing ``SMTPProtocolError``); now the 421 is what is raised."""
    with flaky_server(refuse_rcpt_421=frozenset({1}), pipelining=pipelining) as server:
        pool = make_pool(server)
        with pytest.raises(SMTPReplyError) as caught:
            pool.send()
        assert caught.value.code == 421
        assert server.mail_commands == 1 and server.messages == []
        assert pool.pool.connections == 0
        assert pool.send().delivered == ("b@example.org",)
        assert server.connections == 2 and server.mail_commands == 2


def test_a_drop_after_the_final_dot_is_status_unknown_and_never_resent(
    make_pool: Callable[..., PoolFacade],
) -> None:
    with flaky_server(drop_after_dot=frozenset({1})) as server:
        pool = make_pool(server)
        with pytest.raises(SMTPDeliveryStatusUnknown) as caught:
            pool.send()
        assert caught.value.recipients == ("b@example.org",)
        assert len(server.messages) == 1 and server.mail_commands == 1  # sent once
        assert pool.pool.connections == 0
        pool.send()  # the next message goes over a new connection
        assert len(server.messages) == 2 and server.connections == 2


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_refusal_keeps_the_connection(
    make_pool: Callable[..., PoolFacade], pipelining: bool
) -> None:
    with flaky_server(refuse_rcpt_550=frozenset({1}), pipelining=pipelining) as server:
        pool = make_pool(server)
        with pytest.raises(SMTPRecipientsRefused):
            pool.send()
        assert pool.pool.idle_connections == 1
        assert pool.send().delivered == ("b@example.org",)
        assert server.connections == 1 and len(server.messages) == 1


# -- bounds, caps, rate ---------------------------------------------------------------------


def test_the_pool_never_opens_more_than_max_connections(
    make_pool: Callable[..., PoolFacade],
) -> None:
    with flaky_server(reply_delay=0.02) as server:
        pool = make_pool(server, max_connections=2)
        results = pool.send_many_at_once(6)
        assert all(not isinstance(result, BaseException) for result in results), results
        assert server.most_open <= 2 and len(server.messages) == 6
        assert pool.pool.connections <= 2


def test_the_cap_per_destination(make_pool: Callable[..., PoolFacade]) -> None:
    with flaky_server(reply_delay=0.02) as first, flaky_server(reply_delay=0.02) as second:
        pool = make_pool(host="127.0.0.1", port=first.port, max_per_destination=1)
        results = pool.send_many_at_once(4)
        results += pool.send_many_at_once(4, destination=("127.0.0.1", second.port))
        assert all(not isinstance(result, BaseException) for result in results), results
        assert first.most_open == 1 and second.most_open == 1
        assert len(first.messages) == 4 and len(second.messages) == 4


def test_a_full_pool_closes_an_idle_connection_to_another_destination(
    make_pool: Callable[..., PoolFacade],
) -> None:
    with flaky_server() as first, flaky_server() as second:
        pool = make_pool(first, max_connections=1)
        pool.send()
        pool.send(destination=("127.0.0.1", second.port))
        assert first.commands[-1] == "QUIT" and pool.pool.connections == 1
        assert len(first.messages) == 1 and len(second.messages) == 1


def test_the_rate_limit_spaces_messages(make_pool: Callable[..., PoolFacade], adapter: str) -> None:
    clock = FakeClock()
    with flaky_server() as server:
        pool = make_pool(server, **clock.rate_limited(adapter, 2, 10.0))
        for _ in range(5):
            pool.send()
        assert clock.slept == [10.0, 10.0]  # messages 3 and 5 waited for the window
        assert len(server.messages) == 5


# -- login, mistakes --------------------------------------------------------------------------


def test_every_new_connection_logs_in_with_a_fresh_token(
    make_pool: Callable[..., PoolFacade], adapter: str
) -> None:
    calls: list[int] = []

    def provider() -> str:
        calls.append(1)
        return f"token-{len(calls)}"

    with flaky_server(auth=True) as server:
        pool = make_pool(
            server, max_messages=1, username="u", token=provider, allow_cleartext_auth=True
        )
        for _ in range(3):
            pool.send()
        assert len(calls) == 3 and server.commands.count("AUTH") == 3
        sent = [base64.b64decode(line.split()[2]) for line in server.auth_lines]
        assert sent == [b"user=u\x01auth=Bearer token-%d\x01\x01" % n for n in (1, 2, 3)]


@pytest.mark.parametrize(
    "options",
    [
        {"max_connections": 0},
        {"max_per_destination": -1},
        {"max_messages": True},
        {"max_age": float("nan")},
        {"check_idle_after": -1},
        {"idle_check": "ping"},
        {"rate_limit": (1, 2)},
        {"password": "p"},
        {"username": "u"},
        {"port": "25"},
    ],
)
def test_bad_pool_options_are_caller_mistakes(
    make_pool: Callable[..., PoolFacade], options: dict[str, Any]
) -> None:
    with pytest.raises(SMTPProtocolError) as caught:
        make_pool(host="127.0.0.1", **options)
    assert_caller_mistake(caught.value)


def test_a_closed_pool_or_no_destination_is_a_caller_mistake(
    make_pool: Callable[..., PoolFacade],
) -> None:
    pool = make_pool()
    with pytest.raises(SMTPProtocolError, match="no destination") as caught:
        pool.send()
    assert_caller_mistake(caught.value)
    with pytest.raises(SMTPProtocolError, match="destination must be"):
        pool.send(destination="127.0.0.1")
    pool.call("aclose" if pool.adapter != "blocking" else "close")
    with pytest.raises(SMTPProtocolError, match="closed") as caught:
        pool.send(destination=("127.0.0.1", 9))
    assert_caller_mistake(caught.value)


@pytest.mark.parametrize(("messages", "per"), [(0, 1.0), (1, 0), (1, float("inf")), (1.5, 1.0)])
def test_bad_rate_limits_are_caller_mistakes(messages: Any, per: Any) -> None:
    with pytest.raises(SMTPProtocolError):
        RateLimit(messages, per)


# -- cancellation (the async pools) ---------------------------------------------------------


def test_a_cancelled_asyncio_send_gives_its_connection_back() -> None:
    with flaky_server(reply_delay=0.5) as server:

        async def main() -> None:
            async with AsyncSMTPPool("127.0.0.1", server.port, tls="none", timeout=5) as pool:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(pool.sendmail("a@x.org", "b@x.org", MESSAGE), 0.1)
                assert pool.connections == 0  # dropped, not leaked
                server.reply_delay = 0.0
                await pool.sendmail("a@x.org", "b@x.org", MESSAGE)
                assert pool.connections == 1

        asyncio.run(main())
        assert len(server.messages) == 1


def test_a_cancelled_trio_send_gives_its_connection_back() -> None:
    with flaky_server(reply_delay=0.5) as server:

        async def main() -> None:
            async with TrioSMTPPool("127.0.0.1", server.port, tls="none", timeout=5) as pool:
                with trio.move_on_after(0.1) as scope:
                    await pool.sendmail("a@x.org", "b@x.org", MESSAGE)
                assert scope.cancelled_caught
                assert pool.connections == 0  # the slot came back despite the cancel
                server.reply_delay = 0.0
                await pool.sendmail("a@x.org", "b@x.org", MESSAGE)
                assert pool.connections == 1

        trio.run(main)
        assert len(server.messages) == 1


def test_a_failed_connect_frees_its_slot(make_pool: Callable[..., PoolFacade]) -> None:
    with flaky_server() as server:
        closed_port = server.port
    with flaky_server() as server:
        pool = make_pool(host="127.0.0.1", port=closed_port, max_connections=1)
        for _ in range(2):  # a leaked slot would make the second attempt wait forever
            with pytest.raises(SMTPConnectError) as caught:
                pool.send()
            assert isinstance(caught.value, smtplib.SMTPServerDisconnected)
        assert pool.pool.connections == 0
        pool.send(destination=("127.0.0.1", server.port))
        assert len(server.messages) == 1


def test_a_send_cancelled_during_the_idle_check_frees_its_slot() -> None:
    """A cancellation while the idle probe (NOOP) waits must give the connection's slot
    back: a leaked slot made every later send of a full pool wait forever."""
    with flaky_server() as server:

        async def main() -> None:
            async with AsyncSMTPPool(
                "127.0.0.1",
                server.port,
                tls="none",
                timeout=5,
                max_connections=1,
                check_idle_after=0,
            ) as pool:
                await pool.sendmail("a@x.org", "b@x.org", MESSAGE)
                server.reply_delay = 0.5  # the NOOP's reply comes late
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(pool.sendmail("a@x.org", "b@x.org", MESSAGE), 0.1)
                assert pool.connections == 0
                server.reply_delay = 0.0
                await asyncio.wait_for(pool.sendmail("c@x.org", "b@x.org", MESSAGE), 5)

        asyncio.run(main())
        assert len(server.messages) == 2


def test_a_trio_send_cancelled_during_the_idle_check_frees_its_slot() -> None:
    with flaky_server() as server:

        async def main() -> None:
            async with TrioSMTPPool(
                "127.0.0.1",
                server.port,
                tls="none",
                timeout=5,
                max_connections=1,
                check_idle_after=0,
            ) as pool:
                await pool.sendmail("a@x.org", "b@x.org", MESSAGE)
                server.reply_delay = 0.5  # the NOOP's reply comes late
                with trio.move_on_after(0.1) as scope:
                    await pool.sendmail("a@x.org", "b@x.org", MESSAGE)
                assert scope.cancelled_caught
                assert pool.connections == 0
                server.reply_delay = 0.0
                with trio.fail_after(5):
                    await pool.sendmail("c@x.org", "b@x.org", MESSAGE)

        trio.run(main)
        assert len(server.messages) == 2
