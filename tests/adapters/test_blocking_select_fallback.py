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
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from smtpproto.adapters import blocking
from smtpproto.blocking import SMTPClient
from smtpproto.exceptions import SMTPError
from smtpproto.testing import run_server

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


def test_a_connect_timeout_past_what_settimeout_takes_connects(tmp_path: Path) -> None:
    """A timeout of 10^12 s (past settimeout()'s ~292 years) connects, over TCP and a
    Unix socket, and delivers: no OverflowError, no socket left open (the connect
    wait is capped at a day, as every other wait is)."""

    with (
        run_server(starttls=False) as server,
        SMTPClient(server.host, server.port, tls="none", timeout=1e12) as client,
    ):
        client.sendmail("s@example.test", "a@example.test", MESSAGE)
    path = str(tmp_path / "smtp.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with listener:
        listener.bind(path)
        listener.listen(1)
        listener.settimeout(10)

        def greet_and_close() -> None:
            peer, _ = listener.accept()
            with peer:
                peer.sendall(b"220 unix.example ESMTP\r\n")

        server_side = threading.Thread(target=greet_and_close)
        server_side.start()
        client = SMTPClient(unix_socket=path, tls="none", timeout=1e12)
        try:
            with pytest.raises(SMTPError):  # greeted, then the peer closed: not overflow
                client.connect()
        finally:
            client.close()
            server_side.join(10)
