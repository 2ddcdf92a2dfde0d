"""``send_many(on_outcome=...)`` streams outcomes through every adapter (issue 13
part 3): in order, as soon as each is known, none kept; the same outcomes the list
mode gives. ``bench/bench_send_many_memory.py`` measures the memory it saves."""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator

import pytest

from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers.batch import BatchItem, Outcome
from smtpproto.exceptions import (
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPProtocolError,
    SMTPRecipientsRefused,
)
from smtpproto.testing import Respond, Rule, run_server

from .facade import SyncClient
from .pool_server import flaky_server

MakeClient = Callable[..., SyncClient]
OPTIONS = {"tls": "none", "timeout": 10}


def _items(count: int, taken: list[int], bad: int | None = None) -> Iterator[BatchItem]:
    """``count`` messages; ``taken`` counts how many the client took so far; message
    ``bad`` has an address the engine refuses (CR LF)."""
    for index in range(count):
        taken.append(index)
        recipient = "b@exa\r\nmple.org" if index == bad else "b@example.org"
        yield (f"s{index}@example.org", [recipient], b"Subject: %d\r\n\r\nbody\r\n" % index)


def _collect() -> tuple[list[tuple[int, Outcome]], Callable[[int, Outcome], None]]:
    seen: list[tuple[int, Outcome]] = []
    return seen, lambda index, outcome: seen.append((index, outcome))


@pytest.mark.parametrize("pipelining", [True, False])
def test_outcomes_stream_in_order_and_match_the_list_mode(
    make_client: MakeClient, pipelining: bool
) -> None:
    count = 40
    faults = {"refuse_rcpt_550": frozenset({4}), "pipelining": pipelining}
    seen, on_outcome = _collect()
    with (
        flaky_server(**faults) as server,
        make_client(host="127.0.0.1", port=server.port, **OPTIONS) as client,
    ):
        assert client.send_many(_items(count, [], bad=7), on_outcome=on_outcome) == []
    with (  # the same faults again, for the list mode
        flaky_server(**faults) as server,
        make_client(host="127.0.0.1", port=server.port, **OPTIONS) as client,
    ):
        listed = client.send_many(_items(count, [], bad=7))
    assert [index for index, _ in seen] == list(range(count))
    assert [type(outcome) for _, outcome in seen] == [type(outcome) for outcome in listed]
    assert isinstance(seen[7][1], SMTPProtocolError)  # refused by the engine, batch goes on
    assert isinstance(seen[3][1], SMTPRecipientsRefused)  # the 4th MAIL of the server
    assert isinstance(seen[3][1], smtplib.SMTPRecipientsRefused)
    delivered = [o for _, o in seen if isinstance(o, TransactionResult)]
    assert [o.sender for o in delivered] == [
        f"s{i}@example.org" for i in range(count) if i not in (3, 7)
    ]


def test_an_outcome_comes_before_the_iterable_is_exhausted(make_client: MakeClient) -> None:
    """Streaming, not collecting: message 0's outcome arrives while most messages are
    still in the iterable (the window is two messages with DATA)."""
    count = 30
    taken: list[int] = []
    taken_when: list[int] = []
    with flaky_server() as server:
        with make_client(host="127.0.0.1", port=server.port, **OPTIONS) as client:
            client.send_many(
                _items(count, taken), on_outcome=lambda index, _: taken_when.append(len(taken))
            )
        assert len(server.messages) == count
    assert len(taken_when) == count
    assert taken_when[0] <= 3 and all(n <= i + 3 for i, n in enumerate(taken_when))


def test_the_bdat_window_streams_too(make_client: MakeClient) -> None:
    count = 50
    seen, on_outcome = _collect()
    with run_server(starttls=False) as server:
        with make_client(host=server.host, port=server.port, **OPTIONS) as client:
            caps = client.capabilities
            assert caps is not None and caps.chunking and caps.pipelining
            client.send_many(_items(count, []), on_outcome=on_outcome, max_in_flight=8)
        assert len(server.received.wait(count)) == count
    assert [index for index, _ in seen] == list(range(count))
    assert all(isinstance(outcome, TransactionResult) for _, outcome in seen)


def test_a_session_that_ends_streams_the_rest_as_not_sent(make_client: MakeClient) -> None:
    seen, on_outcome = _collect()
    taken: list[int] = []
    with flaky_server(drop_after_dot=frozenset({3})) as server:
        client = make_client(host="127.0.0.1", port=server.port, **OPTIONS)
        client.connect()
        assert client.send_many(_items(10, taken), on_outcome=on_outcome) == []
        client.close()
    indices = [index for index, _ in seen]
    assert indices == list(range(len(taken))) and len(taken) < 10
    assert all(isinstance(o, TransactionResult) for _, o in seen[:2])
    assert isinstance(seen[2][1], SMTPDeliveryStatusUnknown)
    assert isinstance(seen[2][1], smtplib.SMTPServerDisconnected)
    assert all(isinstance(o, SMTPConnectError) for _, o in seen[3:])


def test_an_exception_in_the_callback_ends_the_batch(make_client: MakeClient) -> None:
    class Stop(Exception):
        pass

    def on_outcome(index: int, outcome: Outcome) -> None:
        if index == 2:
            raise Stop

    taken: list[int] = []
    with flaky_server() as server:
        client = make_client(host="127.0.0.1", port=server.port, **OPTIONS)
        client.connect()
        with pytest.raises(Stop):
            client.send_many(_items(20, taken), on_outcome=on_outcome)
        assert not client.session.usable
        client.close()
    assert len(taken) < 20


def test_a_callback_that_is_not_callable_is_a_caller_mistake(make_client: MakeClient) -> None:
    with (
        flaky_server() as server,
        make_client(host="127.0.0.1", port=server.port, **OPTIONS) as client,
    ):
        with pytest.raises(SMTPProtocolError, match="on_outcome"):
            client.send_many([], on_outcome=42)  # type: ignore[arg-type]  # on purpose
        assert client.noop().code == 250


@pytest.mark.parametrize("chunking", [None, False])
def test_a_callback_raising_an_outcome_ends_the_batch_with_that_error(
    make_client: MakeClient, chunking: bool | None
) -> None:
    """A callback that raises the ``SMTPError`` it is given (an easy way to stop at the
    first failure) ends the batch with exactly that exception, like any other: it was
    taken for the session's own error, so the callback was called a second time for the
    same message with an invented 'not sent, the session ended', and the session stayed
    usable with messages still in flight."""
    seen: list[tuple[int, Outcome]] = []

    def on_outcome(index: int, outcome: Outcome) -> None:
        seen.append((index, outcome))
        if isinstance(outcome, Exception):
            raise outcome

    rule = Rule(stage="rcpt", sender="s1@example.org", action=Respond(550, "no"))
    taken: list[int] = []
    with (
        run_server(starttls=False, rules=[rule]) as server,
        make_client(host=server.host, port=server.port, **OPTIONS) as client,
    ):
        with pytest.raises(SMTPRecipientsRefused) as raised:
            client.send_many(
                _items(6, taken), chunking=chunking, max_in_flight=4, on_outcome=on_outcome
            )
        assert not client.session.usable
    assert [index for index, _ in seen] == [0, 1]
    assert isinstance(seen[0][1], TransactionResult)
    assert raised.value is seen[1][1]
