"""``send_many`` when the caller's iterable raises mid-batch: nothing delivered goes
unreported.

The batch stops taking messages where the iterable raised, finishes every message it
already took (with PIPELINING some are in flight: content written, final reply due),
then raises ``SMTPBatchInterrupted`` from the caller's exception, carrying the outcome
of each (or having given each to ``on_outcome``); the session stays usable. Every
adapter, against real servers on 127.0.0.1: smtp-sink (PIPELINING, DATA: the fast
lane and the general path), the built-in server (PIPELINING + CHUNKING: BDAT LAST
windows) and aiosmtpd (no PIPELINING: lock-step).
"""

from __future__ import annotations

import pickle
import smtplib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from interop.peers import AiosmtpdPeer, SinkPeer
from smtpproto.client_engine.events import TransactionResult
from smtpproto.exceptions import SMTPBatchInterrupted, SMTPError, SMTPRecipientsRefused
from smtpproto.testing import Respond, Rule, run_server

from .facade import SyncClient

pytestmark = pytest.mark.interop

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10.0


class Broken(Exception):
    """What the caller's iterable raises."""


def message(index: int) -> bytes:
    return b"Subject: message %d\r\n\r\nbody %d\r\n" % (index, index)


def failing(count: int, same_envelope: bool = True) -> Iterator[tuple[str, list[str], bytes]]:
    """``count`` messages, then ``Broken``."""
    for index in range(count):
        yield ("s@x.test" if same_envelope else f"s{index}@x.test", ["r@x.test"], message(index))
    raise Broken(f"no message after {count}")


def check_interrupted(info: pytest.ExceptionInfo[SMTPBatchInterrupted], count: int) -> None:
    error = info.value
    assert isinstance(error.error, Broken) and error.__cause__ is error.error
    assert "Broken" in str(error)
    assert len(error.outcomes) == count
    assert all(isinstance(outcome, TransactionResult) for outcome in error.outcomes)


@pytest.mark.parametrize("count", [0, 1, 2, 7, 40])
@pytest.mark.parametrize("same_envelope", [True, False], ids=["fast-lane", "general"])
def test_smtp_sink_reports_every_message_before_the_failure(
    make_client: MakeClient,
    smtp_sink_factory: Callable[..., SinkPeer],
    count: int,
    same_envelope: bool,
) -> None:
    sink = smtp_sink_factory()
    with make_client(host=sink.host, port=sink.port, timeout=TIMEOUT) as client:
        with pytest.raises(SMTPBatchInterrupted) as info:
            client.send_many(failing(count, same_envelope))
        check_interrupted(info, count)
        assert client.session.usable
        assert client.noop().code == 250  # in step: every reply was read
        after = client.sendmail("after@x.test", ["r@x.test"], message(999))
        assert after.delivered == ("r@x.test",)
    delivered = sink.wait_for_messages(count + 1)
    assert [m.content for m in delivered] == [
        m.replace(b"\r\n", b"\n") for m in [*(message(i) for i in range(count)), message(999)]
    ]


@pytest.mark.parametrize("chunking", [None, False], ids=["bdat", "data"])
def test_builtin_server_bdat_windows_and_data(
    make_client: MakeClient, chunking: bool | None
) -> None:
    """BDAT LAST windows put up to ``max_in_flight`` messages in flight at once."""
    count = 9
    with run_server(starttls=False) as server:
        with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
            with pytest.raises(SMTPBatchInterrupted) as info:
                client.send_many(failing(count), chunking=chunking, max_in_flight=5)
            check_interrupted(info, count)
            assert client.noop().code == 250
        stored = server.wait_for_messages(count, timeout=TIMEOUT)
    assert [m.data for m in stored] == [message(i) for i in range(count)]


def test_aiosmtpd_lock_step(
    make_client: MakeClient, aiosmtpd_factory: Callable[..., AiosmtpdPeer]
) -> None:
    peer = aiosmtpd_factory()
    with make_client(host=peer.host, port=peer.port, timeout=TIMEOUT) as client:
        assert client.capabilities is not None and not client.capabilities.pipelining
        with pytest.raises(SMTPBatchInterrupted) as info:
            client.send_many(failing(3))
        check_interrupted(info, 3)
        assert client.noop().code == 250
    assert len(peer.wait_for_messages(3)) == 3


def test_on_outcome_gets_every_outcome_before_the_exception(
    make_client: MakeClient, smtp_sink: SinkPeer
) -> None:
    seen: list[tuple[int, Any]] = []
    with make_client(host=smtp_sink.host, port=smtp_sink.port, timeout=TIMEOUT) as client:
        with pytest.raises(SMTPBatchInterrupted) as info:
            client.send_many(failing(5), on_outcome=lambda i, o: seen.append((i, o)))
        assert info.value.outcomes == []  # as the list send_many returns with on_outcome
        assert client.session.usable
    assert [index for index, _ in seen] == list(range(5))
    assert all(isinstance(outcome, TransactionResult) for _, outcome in seen)


def test_refusals_keep_their_smtplib_compatible_outcomes(make_client: MakeClient) -> None:
    """A message refused before the failure keeps its error outcome, as the adapter's
    list has it (smtplib-compatible); the exception itself is an ``SMTPError`` and an
    ``smtplib.SMTPException``, and pickles with its outcomes."""
    rule = Rule(stage="rcpt", recipient="no@x.test", action=Respond(550, "no"))

    def items() -> Iterator[tuple[str, list[str], bytes]]:
        yield ("s@x.test", ["r@x.test"], message(0))
        yield ("s@x.test", ["no@x.test"], message(1))
        yield ("s@x.test", ["r@x.test"], message(2))
        raise Broken("stop")

    with (
        run_server(starttls=False, rules=[rule]) as server,
        make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client,
    ):
        with pytest.raises(SMTPBatchInterrupted) as info:
            client.send_many(items(), chunking=False)
        assert client.noop().code == 250
    error = info.value
    assert isinstance(error, SMTPError) and isinstance(error, smtplib.SMTPException)
    first, refused, last = error.outcomes
    assert isinstance(first, TransactionResult) and isinstance(last, TransactionResult)
    assert isinstance(refused, SMTPRecipientsRefused)
    assert isinstance(refused, smtplib.SMTPRecipientsRefused)
    copy = pickle.loads(pickle.dumps(SMTPBatchInterrupted(Broken("x"), [first])))
    assert isinstance(copy.error, Broken) and copy.outcomes == [first]


def test_an_interrupt_from_the_iterable_is_not_caught(
    make_client: MakeClient, smtp_sink: SinkPeer
) -> None:
    """A ``BaseException`` (KeyboardInterrupt, SystemExit, cancellation) propagates as
    itself, as before: the connection is closed."""

    def items() -> Iterator[tuple[str, list[str], bytes]]:
        yield ("s@x.test", ["r@x.test"], message(0))
        raise KeyboardInterrupt

    with make_client(host=smtp_sink.host, port=smtp_sink.port, timeout=TIMEOUT) as client:
        with pytest.raises(KeyboardInterrupt):
            client.send_many(items())
        assert not client.session.usable


def test_the_iterable_is_not_closed(make_client: MakeClient, smtp_sink: SinkPeer) -> None:
    """The batch never closes the caller's iterator: an iterator that raised once may be
    used again (here: one that raises between two runs of messages)."""

    class Flaky:
        def __init__(self) -> None:
            self.index = 0

        def __iter__(self) -> Flaky:
            return self

        def __next__(self) -> tuple[str, list[str], bytes]:
            self.index += 1
            if self.index == 3:
                raise Broken("once")
            if self.index > 5:
                raise StopIteration
            return ("s@x.test", ["r@x.test"], message(self.index))

    flaky = Flaky()
    with make_client(host=smtp_sink.host, port=smtp_sink.port, timeout=TIMEOUT) as client:
        with pytest.raises(SMTPBatchInterrupted) as info:
            client.send_many(flaky)
        assert len(info.value.outcomes) == 2
        rest = client.send_many(flaky)
    assert len(rest) == 2 and all(isinstance(o, TransactionResult) for o in rest)
    assert len(smtp_sink.wait_for_messages(4)) == 4
