"""The blocking client's reads that wait before they ``recv`` (``blocking._WAIT_FIRST``).

A ``Read`` tries ``recv`` first; once one found nothing, the next reads of a plain
socket poll first, with the same deadline (RFC 5321 §4.5.3.2: one per reply awaited).
A real server on 127.0.0.1 answers each pipelined group of a ``send_many`` late, so the
client's reads wait, then stops answering mid-batch: the timeout still fires on the
poll-first path, once, at the reply's deadline, and the message whose content end was
written is "delivery status unknown" (RFC 1047). Read by read over a socket pair, the
count goes back to ``recv`` first after ``_WAIT_FIRST`` reads.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from smtpproto import TransactionResult
from smtpproto.adapters import blocking
from smtpproto.blocking import SMTPClient
from smtpproto.exceptions import SMTPDeliveryStatusUnknown, SMTPTimeoutError

EHLO_REPLY = b"250-mx.example.org\r\n250 PIPELINING\r\n"
FIRST_GROUP = b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n"
NEXT_GROUP = b"250 2.0.0 queued\r\n" + FIRST_GROUP
MESSAGE = b"Subject: wait first\r\n\r\nbody\r\n"


def _serve(listener: socket.socket, done: threading.Event, late: int, answered: int) -> None:
    """Greet and answer EHLO, then answer each pipelined group (it ends with DATA or
    QUIT) — the first ``late`` ones 30 ms late — until ``answered`` groups got
    replies; then answer nothing until ``done`` or 10 s."""
    try:
        conn, _ = listener.accept()
    except OSError:
        return
    with conn:
        conn.settimeout(10)
        try:
            conn.sendall(b"220 mx.example.org ESMTP\r\n")
            buffer = b""
            groups = 0
            while not done.is_set():
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                if buffer.startswith(b"EHLO") and buffer.endswith(b"\r\n"):
                    conn.sendall(EHLO_REPLY)
                    buffer = b""
                elif buffer.endswith(b"QUIT\r\n"):
                    conn.sendall(b"250 2.0.0 queued\r\n221 bye\r\n")
                    return
                elif buffer.endswith(b"DATA\r\n"):
                    if groups == answered:
                        done.wait(10)
                        return
                    if groups < late and done.wait(0.03):
                        return
                    conn.sendall(NEXT_GROUP if groups else FIRST_GROUP)
                    groups += 1
                    buffer = b""
        except OSError:
            return


@pytest.fixture
def late_server() -> Iterator[tuple[socket.socket, threading.Event]]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    done = threading.Event()
    yield listener, done
    done.set()
    listener.close()


def _start(
    listener: socket.socket, done: threading.Event, late: int, answered: int
) -> threading.Thread:
    thread = threading.Thread(target=_serve, args=(listener, done, late, answered), daemon=True)
    thread.start()
    return thread


def test_a_server_that_stops_mid_batch_times_out_on_the_wait_first_path(
    late_server: tuple[socket.socket, threading.Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    listener, done = late_server
    thread = _start(listener, done, late=100, answered=4)
    # Once a recv found nothing (a 30 ms late answer), every later read polls first.
    monkeypatch.setattr(blocking, "_WAIT_FIRST", 1000)
    client = SMTPClient("127.0.0.1", listener.getsockname()[1], tls="none", timeout=0.5)
    messages = iter([("a@example.org", ["b@example.org"], MESSAGE)] * 10)
    start = time.monotonic()
    with client:
        outcomes = client.send_many(messages)
        # The read that timed out polled first (it counted down; a recv-first read that
        # found nothing would have set the count to 1000).
        assert 0 < client._wait_first < 1000
    elapsed = time.monotonic() - start
    done.set()
    thread.join(15)
    # Four groups answered: messages 0-2 delivered; message 3's content end went out
    # with message 4's group, which got no reply.
    assert [type(outcome) for outcome in outcomes[:3]] == [TransactionResult] * 3
    assert isinstance(outcomes[3], SMTPDeliveryStatusUnknown)
    assert "timed out" in str(outcomes[3]) or isinstance(outcomes[3].__cause__, SMTPTimeoutError)
    assert len(outcomes) == 5  # message 4 sent, never answered; the rest not taken
    assert not client.session.usable
    # Bounded, not timed: well under the 10 s the server would otherwise hold us.
    assert elapsed < 9


def test_wait_first_counts_down_to_recv_first_and_keeps_the_deadline() -> None:
    """Driven read by read over a socket pair: a recv that finds nothing sends the next
    ``_WAIT_FIRST`` reads to poll first; bytes already in do not stop the count; the
    read after it tries recv first again. A read polling first still times out."""
    ours, theirs = socket.socketpair()
    with theirs:
        client = SMTPClient(sock=ours, tls="none")
        client._open()
        assert client._wait_first == 0
        with pytest.raises(TimeoutError):  # recv found nothing, then the wait timed out
            client._read(0.05)
        assert client._wait_first == blocking._WAIT_FIRST
        for left in range(blocking._WAIT_FIRST - 1, -1, -1):
            theirs.sendall(b"250 ok\r\n")
            client._wait_deadline = None  # a new reply wait, as ``_drive`` does
            assert client._read(1.0) == b"250 ok\r\n"
            assert client._wait_first == left
        theirs.sendall(b"250 ok\r\n")
        assert client._read(1.0) == b"250 ok\r\n"  # recv first: it was in
        assert client._wait_first == 0
        client._wait_first = 3
        client._wait_deadline = None
        start = time.monotonic()
        with pytest.raises(TimeoutError):  # polled first: nothing came
            client._read(0.05)
        assert client._wait_first == 2
        assert time.monotonic() - start < 9  # bounded, not timed
        client.close()
