"""The blocking adapter's waits where ``select.poll`` does not exist (Windows):
``blocking._SelectPoll`` over ``select.select``, forced here on every platform.

The fault-injection tests that exercise the adapter's waits run again on the blocking
client with the fallback: a stalled server times out at its deadline, early replies to
a large pipelined group are read ahead while writing (RFC 2920 §3.2), a large body is
streamed, a server closing during it is seen, STARTTLS handshakes (want-read and
want-write waits) and bad certificates fail cleanly. A timeout too long for one
``poll()`` call waits in slices, with either.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import pytest

from smtpproto.adapters import blocking

from .peer import Peer, scripted
from .test_faults import (  # noqa: F401 -- collected again, with the fallback
    MESSAGE,
    deliver_one,
    test_bad_certificate_is_a_tls_error,
    test_delivery_over_a_socket_pair,
    test_early_replies_to_a_large_pipelined_group_do_not_deadlock,
    test_large_body_is_streamed,
    test_server_answers_and_closes_during_a_large_body,
    test_stall_after_the_content_is_delivery_status_unknown,
    test_stalled_server_times_out_quickly,
    test_starttls_verifies_and_gives_channel_binding,
)


@pytest.fixture
def adapter() -> str:
    """Only the blocking adapter waits through ``_new_poll``."""
    return "blocking"


@pytest.fixture(autouse=True)
def select_fallback(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[list[int]]:
    """Every poll object the blocking client makes is a ``_SelectPoll``; the list
    counts them, so a client test cannot pass without the fallback in use."""
    made: list[int] = []

    def new_poll() -> blocking._SelectPoll:
        made.append(1)
        return blocking._SelectPoll()

    monkeypatch.setattr(blocking, "_new_poll", new_poll)
    yield made
    if "make_client" in request.fixturenames:
        assert made, "the blocking client never created its poll object"


def test_the_fallback_reports_what_poll_reports() -> None:
    """Readable, writable, both, and nothing within the timeout (milliseconds)."""
    left, right = socket.socketpair()
    with left, right:
        poll = blocking._SelectPoll()
        poll.register(left.fileno(), select.POLLIN)
        assert poll.poll(0) == []
        right.send(b"x")
        assert poll.poll(1000) == [(left.fileno(), select.POLLIN)]
        poll.modify(left.fileno(), select.POLLIN | select.POLLOUT)
        assert poll.poll(1000) == [(left.fileno(), select.POLLIN | select.POLLOUT)]
        left.recv(1)
        poll.modify(left.fileno(), select.POLLOUT)
        assert poll.poll(None) == [(left.fileno(), select.POLLOUT)]


@pytest.mark.parametrize("poll", ["poll", "select"])
def test_a_timeout_longer_than_poll_takes_still_waits(
    poll: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timeout of 30 years (past poll()'s C int of milliseconds) waits in slices of
    at most a day: the late greeting is read, no OverflowError."""
    if poll == "poll" and hasattr(select, "poll"):
        monkeypatch.setattr(blocking, "_new_poll", select.poll)
    years = 30 * 365 * 86_400.0
    received: list[bytes] = []

    def script(peer: Peer) -> None:
        time.sleep(0.2)  # the client is waiting for the greeting meanwhile
        peer.greet()
        received.append(deliver_one(peer))
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with scripted(script) as sock, blocking.SMTPClient(sock=sock, timeout=years) as client:
        result = client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert result.delivered == ("b@example.org",)
    assert len(received) == 1
