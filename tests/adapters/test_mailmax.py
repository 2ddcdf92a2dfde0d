"""LIMITS MAILMAX (RFC 9422 §4.1): the client never sends more transactions in one
session than the server advertises. Every adapter, against the built-in server
(``run_server(mailmax=...)``, which advertises it and answers 451 4.5.3 past it).

``sendmail``/``send_message`` past the limit: ``SMTPProtocolError`` before MAIL, the
session usable. ``send_many``: the batch stops at the limit; the next message (if any)
gets ``SMTPProtocolError`` as its outcome and the rest of the iterable is not read,
so the caller sends from there on a new connection. A message that RCPTMAX splits
into more transactions than MAILMAX leaves is refused whole before MAIL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from smtpproto.client_engine.events import TransactionResult
from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import Respond, Rule, run_server

from .facade import SyncClient
from .pool_facade import PoolFacade, make_pool

__all__ = ["make_pool"]  # the fixture, used by name

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10.0


def message(index: int) -> bytes:
    return b"Subject: m%d\r\n\r\nbody %d\r\n" % (index, index)


def connect(make_client: MakeClient, server: Any) -> SyncClient:
    return make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT)


def test_sendmail_past_mailmax_is_refused_before_mail(make_client: MakeClient) -> None:
    lines: list[str] = []
    with run_server(starttls=False, mailmax=3, transcript=lines.append) as server:
        with connect(make_client, server) as client:
            assert client.capabilities is not None
            assert client.capabilities.limits.mailmax == 3
            for index in range(3):
                client.sendmail(f"s{index}@x.test", ["r@x.test"], message(index))
            with pytest.raises(SMTPProtocolError, match="MAILMAX") as info:
                client.sendmail("over@x.test", ["r@x.test"], message(3))
            assert not info.value.remote
            assert client.session.usable and client.noop().code == 250
            with pytest.raises(SMTPProtocolError, match="MAILMAX"):
                client.send_message(_email("over@x.test"))
        assert len(server.wait_for_messages(3, timeout=TIMEOUT)) == 3
    assert not [line for line in lines if "over@x.test" in line or line.startswith("S: 451")]


def _email(sender: str) -> Any:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "r@x.test"
    msg.set_content("hi\n")
    return msg


@pytest.mark.parametrize("chunking", [None, False], ids=["bdat", "data"])
@pytest.mark.parametrize("same_envelope", [True, False], ids=["repeated", "distinct"])
@pytest.mark.parametrize("used", [0, 2])
def test_send_many_stops_at_mailmax(
    make_client: MakeClient, chunking: bool | None, same_envelope: bool, used: int
) -> None:
    """``used`` transactions before the batch (sendmail) count too."""
    mailmax = 5
    fit = mailmax - used
    items: Iterator[tuple[str, list[str], bytes]] = iter(
        [
            ("s@x.test" if same_envelope else f"s{i}@x.test", ["r@x.test"], message(i))
            for i in range(12)
        ]
    )
    lines: list[str] = []
    with run_server(starttls=False, mailmax=mailmax, transcript=lines.append) as server:
        with connect(make_client, server) as client:
            for index in range(used):
                client.sendmail("before@x.test", ["r@x.test"], message(100 + index))
            outcomes = client.send_many(items, chunking=chunking, max_in_flight=4)
            assert client.session.usable and client.noop().code == 250
        stored = server.wait_for_messages(mailmax, timeout=TIMEOUT)
    assert len(outcomes) == fit + 1
    assert all(isinstance(o, TransactionResult) for o in outcomes[:fit])
    last = outcomes[fit]
    assert isinstance(last, SMTPProtocolError) and "MAILMAX" in str(last)
    assert next(items)[2] == message(fit + 1)  # the rest of the iterable was not read
    assert [m.data for m in stored[used:]] == [message(i) for i in range(fit)]
    assert not [line for line in lines if line.startswith("S: 451")]  # never past it


def test_send_many_of_exactly_mailmax_messages(make_client: MakeClient) -> None:
    with run_server(starttls=False, mailmax=4) as server, connect(make_client, server) as client:
        outcomes = client.send_many(
            [("s@x.test", ["r@x.test"], message(i)) for i in range(4)], chunking=False
        )
    assert len(outcomes) == 4 and all(isinstance(o, TransactionResult) for o in outcomes)


def test_a_split_that_needs_more_than_mailmax_is_refused_whole(make_client: MakeClient) -> None:
    """RCPTMAX=2 and MAILMAX=2: 4 recipients take 2 transactions; 5 would need 3."""
    with run_server(starttls=False, rcptmax=2, mailmax=2) as server:
        with connect(make_client, server) as client:
            five = [f"r{i}@x.test" for i in range(5)]
            with pytest.raises(SMTPProtocolError, match=r"need 3 transactions.*MAILMAX"):
                client.sendmail("s@x.test", five, message(0))
            assert client.session.usable
            result = client.sendmail("s@x.test", five[:4], message(1))
            assert result.delivered == tuple(five[:4])
        stored = server.wait_for_messages(2, timeout=TIMEOUT)
    assert [m.data for m in stored] == [message(1), message(1)]


def test_a_pool_recycles_a_connection_at_mailmax(
    make_pool: Callable[..., PoolFacade],
) -> None:
    """The pools own their connections: one whose session reached MAILMAX is closed
    (QUIT) and the next message gets a new one, as ``max_messages`` recycles."""
    lines: list[str] = []
    with run_server(starttls=False, mailmax=2, transcript=lines.append) as server:
        pool = make_pool(host=server.host, port=server.port)
        results = [pool.send() for _ in range(5)]
        assert [r.delivered for r in results] == [("b@example.org",)] * 5
        pool.close()
        assert len(server.wait_for_messages(5, timeout=TIMEOUT)) == 5
    assert not [line for line in lines if line.startswith("S: 451")]
    assert len([line for line in lines if line.startswith("C: QUIT")]) == 3


def test_a_deferral_follow_up_never_goes_past_mailmax(make_client: MakeClient) -> None:
    """RCPTMAX=2, MAILMAX=2, four recipients: two transactions fit. A 452 4.5.3 to r1
    in the first pushes r3 out of the second; no third MAIL is sent: r3 keeps that 452
    (``failed``), the others are delivered, and the session stays usable."""
    rule = Rule(
        stage="rcpt",
        recipient="r1@x.test",
        action=Respond(452, "Too many recipients", enhanced="4.5.3"),
        times=1,
    )
    four = [f"r{i}@x.test" for i in range(4)]
    lines: list[str] = []
    with run_server(
        starttls=False, rcptmax=2, mailmax=2, rules=[rule], transcript=lines.append
    ) as server:
        with connect(make_client, server) as client:
            result = client.sendmail("s@x.test", four, message(0))
            assert client.session.usable and client.noop().code == 250
        assert len(server.wait_for_messages(2, timeout=TIMEOUT)) == 2
    assert result.delivered == ("r0@x.test", "r1@x.test", "r2@x.test")
    [(address, reply)] = result.failed
    assert address == "r3@x.test" and reply.code == 452 and str(reply.enhanced) == "4.5.3"
    assert len([line for line in lines if line.startswith("C: MAIL")]) == 2
    assert not [line for line in lines if line.startswith("S: 451")]
