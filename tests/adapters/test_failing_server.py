"""The built-in server failing on purpose, against each of this project's three clients
over 127.0.0.1: per-recipient refusals, refused MAIL and end of data, 421 mid
transaction, a drop after the final dot (delivery status unknown), greylisting with an
injected clock, slow replies, LMTP per-recipient failures, the SIZE limit, refused AUTH
and refused sessions. smtplib and aiosmtplib as clients: ``tests/test_failing_server_peers.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from smtpproto.exceptions import (
    SMTPDeliveryStatusUnknown,
    SMTPError,
    SMTPRecipientsRefused,
    SMTPReplyError,
    SMTPTLSError,
)
from smtpproto.testing import (
    Disconnect,
    Drop,
    Greylist,
    Respond,
    Rule,
    RunningServer,
    Tarpit,
    run_server,
)

from .facade import SyncClient

Make = Callable[..., SyncClient]

MESSAGE = b"Subject: failing\r\n\r\nhello\r\n"
TIMEOUT = 10.0


def _client(make_client: Make, server: RunningServer, **kwargs: Any) -> SyncClient:
    kwargs.setdefault("tls", "none")
    return make_client(host=server.host, port=server.port, timeout=TIMEOUT, **kwargs)


def test_one_refused_recipient_is_reported_and_the_others_get_the_message(
    make_client: Make,
) -> None:
    refuse = Rule(
        stage="rcpt", recipient="bob@y.test", action=Respond(550, "No such user", "5.1.1")
    )
    with run_server(starttls=False, rules=[refuse]) as server, _client(make_client, server) as c:
        result = c.sendmail("a@x.test", ["bob@y.test", "ann@y.test"], MESSAGE)
        assert result.delivered == ("ann@y.test",)
        ((address, reply),) = result.failed
        assert address == "bob@y.test" and reply.code == 550 and str(reply.enhanced) == "5.1.1"
        with pytest.raises(SMTPRecipientsRefused) as info:
            c.sendmail("a@x.test", ["bob@y.test"], MESSAGE)
        assert list(info.value.refused) == ["bob@y.test"]
        assert [m.recipients for m in server.wait_for_messages(1, TIMEOUT)] == [("ann@y.test",)]
        assert server.rules.fired(refuse) == 2


def test_refused_mail_and_end_of_data_raise_reply_errors(make_client: Make) -> None:
    rules = [
        Rule(stage="mail", sender="later@x.test", action=Respond(451, "Try later", "4.3.0")),
        Rule(
            stage="data_end", sender="spam@x.test", action=Respond(554, "Looks like spam", "5.7.1")
        ),
    ]
    with run_server(starttls=False, rules=rules) as server, _client(make_client, server) as c:
        with pytest.raises(SMTPReplyError) as info:
            c.sendmail("later@x.test", ["b@y.test"], MESSAGE)
        assert info.value.code == 451 and info.value.is_transient
        with pytest.raises(SMTPReplyError) as info:
            c.sendmail("spam@x.test", ["b@y.test"], MESSAGE)
        assert info.value.code == 554 and str(info.value.enhanced) == "5.7.1"
        c.sendmail("fine@x.test", ["b@y.test"], MESSAGE)  # the connection is still usable
        assert [m.sender for m in server.wait_for_messages(1, TIMEOUT)] == ["fine@x.test"]


@pytest.mark.parametrize("stage", ["rcpt", "data", "data_end"])
def test_421_mid_transaction_closes_and_nothing_is_kept(make_client: Make, stage: Any) -> None:
    rule = Rule(stage=stage, action=Disconnect("Going down"))
    with run_server(starttls=False, rules=[rule]) as server, _client(make_client, server) as c:
        with pytest.raises(SMTPError) as info:  # DATA, not BDAT, so the stage is met
            c.sendmail("a@x.test", ["b@y.test"], MESSAGE, chunking=False)
        assert not isinstance(info.value, SMTPDeliveryStatusUnknown)
        assert "421" in str(info.value)
    assert server.messages == []


def test_a_drop_after_the_final_dot_is_delivery_status_unknown(make_client: Make) -> None:
    rule = Rule(stage="data_end", message=2, action=Drop())
    with run_server(starttls=False, rules=[rule]) as server, _client(make_client, server) as c:
        c.sendmail("a@x.test", ["b@y.test"], MESSAGE)
        with pytest.raises(SMTPDeliveryStatusUnknown) as info:
            c.sendmail("second@x.test", ["b@y.test"], MESSAGE)
        assert info.value.sender == "second@x.test"
        # The server did keep it: resending would deliver it twice (RFC 1047).
        assert [m.sender for m in server.wait_for_messages(2, TIMEOUT)] == [
            "a@x.test",
            "second@x.test",
        ]


def test_greylisting_refuses_until_the_clock_moved(make_client: Make) -> None:
    now = [100.0]
    grey = Rule(stage="rcpt", action=Greylist(retry_after=60))
    with run_server(starttls=False, rules=[grey], clock=lambda: now[0]) as server:
        with _client(make_client, server) as c, pytest.raises(SMTPRecipientsRefused) as info:
            c.sendmail("a@x.test", ["b@y.test"], MESSAGE)
        assert info.value.refused["b@y.test"].code == 451
        now[0] += 61
        with _client(make_client, server) as c:
            assert c.sendmail("a@x.test", ["b@y.test"], MESSAGE).delivered == ("b@y.test",)
        assert len(server.wait_for_messages(1, TIMEOUT)) == 1


def test_slow_replies_and_a_tarpit_still_deliver(make_client: Make) -> None:
    rules = [
        Rule(stage="connect", delay=0.05),
        Rule(stage="mail", delay=0.05),
        Rule(stage="rcpt", times=1, action=Tarpit(delay=0.02, step=0.01)),
    ]
    with run_server(starttls=False, rules=rules) as server, _client(make_client, server) as c:
        assert c.sendmail("a@x.test", ["b@y.test", "c@y.test"], MESSAGE).delivered == (
            "b@y.test",
            "c@y.test",
        )
        assert len(server.wait_for_messages(1, TIMEOUT)) == 1


def test_lmtp_per_recipient_failures(make_client: Make) -> None:
    rules = [Rule(stage="data_end", recipient="full@y.test", action=Respond(452, "Full", "4.2.2"))]
    with (
        run_server(starttls=False, lmtp=True, rules=rules) as server,
        _client(make_client, server, lmtp=True) as c,
    ):
        result = c.sendmail("a@x.test", ["ok@y.test", "full@y.test"], MESSAGE)
        assert result.delivered == ("ok@y.test",)
        assert [(a, r.code) for a, r in result.lmtp_replies] == [
            ("ok@y.test", 250),
            ("full@y.test", 452),
        ]
        assert [m.recipients for m in server.wait_for_messages(1, TIMEOUT)] == [("ok@y.test",)]


def test_the_size_limit_is_advertised_and_enforced(make_client: Make) -> None:
    with run_server(starttls=False, max_message_size=100) as server:
        with _client(make_client, server) as c:
            assert c.capabilities.size == 100
            # Content of unknown size: the client cannot check, the server refuses it.
            with pytest.raises(SMTPReplyError) as info:
                c.sendmail("a@x.test", ["b@y.test"], iter([MESSAGE, b"x" * 200]))
            assert info.value.code == 552 and str(info.value.enhanced) == "5.3.4"
            c.sendmail("a@x.test", ["b@y.test"], MESSAGE)
        assert len(server.wait_for_messages(1, TIMEOUT)) == 1


def test_auth_can_be_refused(make_client: Make) -> None:
    rules = [Rule(stage="auth", action=Respond(454, "Temporary authentication failure", "4.7.0"))]
    with (
        run_server(
            starttls=False, users={"u": "p"}, allow_plaintext_auth=True, rules=rules
        ) as server,
        _client(make_client, server, allow_cleartext_auth=True) as c,
        pytest.raises(SMTPError) as info,
    ):
        c.login("u", "p")
    assert "454" in str(info.value)


@pytest.mark.parametrize("action", [Respond(554, "No service", "5.7.1"), Disconnect("Busy")])
def test_a_refused_session_fails_connect(make_client: Make, action: Any) -> None:
    with run_server(starttls=False, rules=[Rule(stage="connect", action=action)]) as server:
        client = _client(make_client, server)
        with pytest.raises(SMTPError) as info:
            client.connect()
        client.close()
        assert str(action.reply().code) in str(info.value)


def test_a_refused_starttls_fails_required_tls_and_opportunistic_goes_on(make_client: Make) -> None:
    rules = [Rule(stage="starttls", action=Respond(454, "TLS not available now", "4.7.0"))]
    with run_server(rules=rules) as server:
        required = _client(make_client, server, tls="required", ssl_context=server.ssl_context())
        with pytest.raises(SMTPTLSError) as info:
            required.connect()
        required.close()
        assert "454" in str(info.value)
        with _client(
            make_client, server, tls="opportunistic", ssl_context=server.ssl_context()
        ) as c:
            assert c.sendmail("a@x.test", ["b@y.test"], MESSAGE).delivered == ("b@y.test",)


def test_a_refused_ehlo_fails_connect(make_client: Make) -> None:
    rules = [Rule(stage="helo", action=Respond(550, "Go away", "5.7.1"))]
    with run_server(starttls=False, rules=rules) as server:
        client = _client(make_client, server)
        with pytest.raises(SMTPError) as info:
            client.connect()
        client.close()
        assert "550" in str(info.value)


def test_a_connection_dropped_before_the_greeting(make_client: Make) -> None:
    with run_server(starttls=False, rules=[Rule(stage="connect", action=Drop())]) as server:
        client = _client(make_client, server)
        with pytest.raises(SMTPError):
            client.connect()
        client.close()


def test_a_delay_longer_than_the_idle_timeout_is_not_an_idle_timeout(make_client: Make) -> None:
    rules = [Rule(stage="mail", delay=0.6)]
    with (
        run_server(starttls=False, timeout=0.3, rules=rules) as server,
        _client(make_client, server) as c,
    ):
        assert c.sendmail("a@x.test", ["b@y.test"], MESSAGE).delivered == ("b@y.test",)


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("chunking", [True, False])
@pytest.mark.parametrize(
    "rule",
    [
        Rule(stage="rcpt", sender="first@x.test", action=Respond(550, "No such user", "5.1.1")),
        Rule(stage="data", sender="first@x.test", action=Respond(554, "No thanks", "5.7.1")),
        Rule(stage="mail", sender="first@x.test", action=Respond(451, "Later", "4.3.0")),
    ],
    ids=["all-rcpt-refused", "data-refused", "mail-refused"],
)
def test_a_refused_transaction_leaves_the_session_ready_for_the_next(
    make_client: Make, rule: Rule, chunking: bool, pipelining: bool
) -> None:
    """A transaction refused before its content (every RCPT, or DATA itself) stays
    open at the server (RFC 5321 §3.3 does not end it; smtplib sends RSET): the client
    ends it with RSET, else the next MAIL got 503 "nested MAIL" — in a pool, every
    later message over that connection failed."""
    with run_server(starttls=False, rules=[rule]) as server, _client(make_client, server) as c:
        with pytest.raises((SMTPReplyError, SMTPRecipientsRefused)):
            c.sendmail(
                "first@x.test",
                ["b@y.test"],
                MESSAGE,
                chunking=chunking and rule.stage != "data",  # DATA meets the data stage
                pipelining=pipelining,
            )
        c.sendmail("next@x.test", ["b@y.test"], MESSAGE, chunking=chunking, pipelining=pipelining)
        assert [m.sender for m in server.wait_for_messages(1, TIMEOUT)] == ["next@x.test"]
        c.noop()
