"""``smtpproto serve --workers N``: N processes serve one port, the parent handing them
the connections in turn; real clients (smtplib, swaks, Postfix's smtp-source) reach every
worker and every message lands whole in the maildir; SIGINT/SIGTERM stop every worker
and remove the temporary certificate; a worker that dies is reported and stops the rest."""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import smtplib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from smtpproto.cli import serve_workers
from smtpproto.cli.serve_workers import worker_count

from .helpers import ServeProcess, assert_clean_failure, run_cli

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork"), reason="--workers needs fork and descriptor passing (POSIX)"
)

MESSAGE = b"Subject: hi\r\n\r\nHello there.\r\n"
#: Bound for processes to disappear (they check their parent once a second).
GONE_TIMEOUT = 15.0


def _pids(serve: ServeProcess) -> list[int]:
    line = serve.wait_for("workers: ")
    match = re.fullmatch(r"workers: ([0-9]+) \(pids ([0-9, ]+)\)", line)
    assert match is not None, line
    pids = [int(pid) for pid in match[2].split(", ")]
    assert len(pids) == int(match[1])
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not reaped yet) does not count
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _all_gone(pids: list[int], timeout: float = GONE_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def _worker_of(serve: ServeProcess, client_port: int) -> str:
    """The worker (``w1``, ``w2`` ...) whose transcript shows this client's connection."""
    line = serve.wait_for(f"connection from ('127.0.0.1', {client_port})")
    match = re.search(r"\] (w[0-9]+) \* connection from", line)
    assert match is not None, line
    return match[1]


def test_connections_are_handed_to_the_workers_in_turn() -> None:
    """Round robin, not a hash of the addresses (SO_REUSEPORT put all of a few sessions
    on one worker one time in eight): consecutive connections go to w1, w2, w1, w2."""
    with ServeProcess("--workers", "2", "--no-starttls") as serve:
        pids = _pids(serve)
        workers = []
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", serve.port), timeout=20) as client:
                assert client.recv(512).startswith(b"220 ")
                client.sendall(b"QUIT\r\n")
                assert client.recv(512).startswith(b"221 ")
                workers.append(_worker_of(serve, client.getsockname()[1]))
        code = serve.stop()
    assert workers == ["w1", "w2", "w1", "w2"], serve.output()
    assert code == 0, serve.stderr
    assert _all_gone(pids)


def _writers(maildir: Path) -> list[int]:
    """The pid in each stored message's name (``SECONDS.MusecPpidQn.HOST``)."""
    names = [path.name for path in (maildir / "new").iterdir()]
    return [int(re.search(r"P([0-9]+)Q", name)[1]) for name in names]  # type: ignore[index]


def test_smtp_source_sessions_reach_every_worker_and_every_message_is_whole(
    tmp_path: Path,
) -> None:
    """Postfix's smtp-source, 4 sessions of 50 messages each into 2 workers: both
    workers' pids are in the maildir names, nothing is left in tmp/, and every file is
    a whole message: smtp-source's headers, then the same 1024-octet body."""
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    maildir = tmp_path / "Maildir"
    args = ("--workers", "2", "--no-starttls", "-q", "--maildir", str(maildir))
    with ServeProcess(*args) as serve:
        pids = _pids(serve)
        sent = subprocess.run(
            [source, "-d", "-s", "4", "-m", "200", "-l", "1024", "-f", "a@example.test",
             "-t", "b@example.test", f"127.0.0.1:{serve.port}"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        code = serve.stop()
    assert sent.returncode == 0, sent.stderr
    assert code == 0, serve.stderr
    assert sorted(set(_writers(maildir))) == sorted(pids)
    assert list((maildir / "tmp").iterdir()) == []
    stored = [path.read_bytes() for path in (maildir / "new").iterdir()]
    assert len(stored) == 200
    bodies = {data.split(b"\r\n\r\n", 1)[1] for data in stored}
    assert len(bodies) == 1
    (body,) = bodies
    assert body.endswith(b"\r\n") and 1024 <= len(body) <= 1200
    assert all(data.startswith(b"From: <a@example.test>\r\n") for data in stored)


def test_swaks_and_smtplib_messages_are_stored_byte_exact_by_the_workers(
    tmp_path: Path,
) -> None:
    """Content with a leading dot (dot-stuffed on the wire) and a 990-octet line: each
    file is exactly what the client meant, whichever worker stored it."""
    content = b"Subject: exact\r\n\r\n.leading dot\r\n" + b"x" * 990 + b"\r\nend\r\n"
    maildir = tmp_path / "Maildir"
    args = ("--workers", "2", "--no-starttls", "-q", "--maildir", str(maildir))
    with ServeProcess(*args) as serve:
        pids = _pids(serve)
        for number in range(2):
            swaks = subprocess.run(
                ["swaks", "--silent", "2", "--server", "127.0.0.1", "--port", str(serve.port),
                 "--from", "a@example.org", "--to", f"s{number}@example.org",
                 "--data", "-"],  # swaks ends the data with CRLF itself
                input=content[:-2], capture_output=True, timeout=60, check=False,
            )  # fmt: skip
            assert swaks.returncode == 0, swaks.stderr
        for number in range(2):
            with smtplib.SMTP("127.0.0.1", serve.port, timeout=20) as client:
                client.sendmail("a@example.org", [f"p{number}@example.org"], content)
        code = serve.stop()
    assert code == 0, serve.stderr
    assert sorted(_writers(maildir)) == sorted(pids * 2)  # in turn: two each
    stored = [path.read_bytes() for path in (maildir / "new").iterdir()]
    assert len(stored) == 4
    assert all(data == content for data in stored), stored


def test_a_worker_that_dies_is_reported_and_stops_the_others() -> None:
    with ServeProcess("--workers", "2", "--no-starttls") as serve:
        pids = _pids(serve)
        os.kill(pids[0], signal.SIGKILL)
        try:
            code = serve.process.wait(GONE_TIMEOUT)
        finally:
            code = serve.stop()
    assert code == 70, serve.stderr  # ExitCode.INTERNAL
    assert re.search(r"worker [12] exited \(-9\)", serve.stderr), serve.stderr
    assert "Traceback" not in serve.stderr
    assert _all_gone(pids)


def test_every_worker_stores_in_the_maildir(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    with ServeProcess("--workers", "2", "--no-starttls", "-q", "--maildir", str(maildir)) as serve:
        pids = _pids(serve)
        for number in range(8):
            with smtplib.SMTP("127.0.0.1", serve.port, timeout=20) as client:
                client.sendmail("a@example.org", [f"b{number}@example.org"], MESSAGE)
        code = serve.stop()
    assert code == 0, serve.stderr
    stored = list((maildir / "new").iterdir())
    assert len(stored) == 8 and all(path.read_bytes() == MESSAGE for path in stored)
    writers = {int(re.search(r"P([0-9]+)Q", path.name)[1]) for path in stored}  # type: ignore[index]
    assert writers <= set(pids)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_stops_every_worker_and_removes_the_certificate(sig: int) -> None:
    with ServeProcess("--workers", "2") as serve:
        cert = Path(serve.wait_for("STARTTLS certificate:").split(": ", 1)[1])
        pids = _pids(serve)
        assert cert.is_file() and all(_alive(pid) for pid in pids)
        with socket.create_connection(("127.0.0.1", serve.port), timeout=20) as idle:
            assert idle.recv(512).startswith(b"220 ")  # a session stays open meanwhile
            code = serve.stop(sig=sig)
    assert code == 0, serve.stderr
    assert "Traceback" not in serve.stderr and "Traceback" not in serve.output()
    assert _all_gone(pids, timeout=1.0)  # reaped by the parent before it exited
    assert not cert.exists() and not cert.parent.exists()


def test_workers_leave_when_their_parent_is_killed() -> None:
    serve = ServeProcess("--workers", "2")
    try:
        with serve:
            cert = Path(serve.wait_for("STARTTLS certificate:").split(": ", 1)[1])
            pids = _pids(serve)
            serve.stop(sig=signal.SIGKILL)
        assert _all_gone(pids), "a worker outlived its killed parent"
    finally:
        shutil.rmtree(cert.parent, ignore_errors=True)  # a killed parent cannot remove it


def test_an_address_in_use_is_exit_3_before_any_worker_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), "--workers", "2", "--no-starttls")
    assert_clean_failure(result, 3, "cannot listen")


@pytest.mark.parametrize("value", ["-1", "x", "1025"])
def test_a_bad_worker_count_is_a_usage_error(value: str) -> None:
    result = run_cli("serve", "--workers", value)
    assert result.returncode == 2 and "--workers" in result.stderr


def test_zero_workers_means_one_per_core() -> None:
    assert worker_count("0") == (os.cpu_count() or 1)
    assert worker_count("3") == 3


def _play_workers(
    ends: list[socket.socket], count: int, timeout: float = 20.0
) -> list[list[socket.socket]]:
    """Play live workers on the worker ends ``ends`` of the channels: answer every
    offer with a take, collect the connections handed over, until ``count`` arrived (or
    ``timeout`` passed); the connections per end."""
    got: list[list[socket.socket]] = [[] for _ in ends]
    deadline = time.monotonic() + timeout
    while sum(map(len, got)) < count and time.monotonic() < deadline:
        ready, _, _ = select.select(ends, [], [], 0.05)
        for end in ready:
            message, fds, _, _ = socket.recv_fds(end, 1, 1)
            if message == b"O":
                end.send(b"T")
            got[ends.index(end)].extend(socket.socket(fileno=fd) for fd in fds)
    return got


def _drain(end: socket.socket) -> tuple[list[bytes], int]:
    """What waits on a worker end that never read: the messages and the descriptors."""
    end.setblocking(False)
    messages, descriptors = [], 0
    with contextlib.suppress(BlockingIOError):
        while True:
            message, fds, _, _ = socket.recv_fds(end, 1, 1)
            messages.append(message)
            descriptors += len(fds)
            for fd in fds:
                os.close(fd)
    return messages, descriptors


@contextlib.contextmanager
def _dispatching(
    workers: int,
) -> Iterator[tuple[serve_workers._Dispatcher, int, list[socket.socket]]]:
    """A ``_Dispatcher`` on a fresh port with ``workers`` channels: it, the port and
    the worker ends (nothing reads them unless the test does)."""
    listener = serve_workers._listen("127.0.0.1", 0)
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(workers)]
    dispatcher = serve_workers._Dispatcher(listener, [ours for ours, _ in pairs])
    try:
        yield dispatcher, listener.getsockname()[1], [theirs for _, theirs in pairs]
    finally:
        dispatcher.stop()
        for sock in (listener, *(end for pair in pairs for end in pair)):
            sock.close()


def _peers(connections: list[socket.socket]) -> list[tuple[str, int]]:
    return sorted(connection.getpeername() for connection in connections)


def test_a_stuck_worker_gets_no_connection_and_holds_up_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker that stops reading its channel (stopped, busy for long) is only ever
    offered connections: every connection goes to the worker that takes it, exactly
    once, and the stuck one's queue holds one offer and no descriptor (the connection
    it was offered went to the other worker after ``_OFFER_TIMEOUT``)."""
    monkeypatch.setattr(serve_workers, "_OFFER_TIMEOUT", 0.2)
    with _dispatching(2) as (_, port, (stuck_end, live_end)):
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
        handed: list[socket.socket] = []
        try:
            handed = _play_workers([live_end], 20)[0]
            assert _peers(handed) == sorted(client.getsockname() for client in clients)
            assert _drain(stuck_end) == ([b"O"], 0)
        finally:
            for sock in (*clients, *handed):
                sock.close()


def test_a_worker_that_takes_again_gets_connections_again_and_a_late_take_gets_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stuck worker answers its old offer after its connection went elsewhere: it
    is handed nothing then (no connection is ever served twice); from then on it is
    offered connections in turn again."""
    monkeypatch.setattr(serve_workers, "_OFFER_TIMEOUT", 0.2)
    with _dispatching(2) as (_, port, ends):
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10)]
        handed: list[socket.socket] = []
        try:
            handed += _play_workers(ends[1:], 1)[0]  # w1 is stuck: w2 takes it
            assert _peers(handed) == [clients[0].getsockname()]
            assert socket.recv_fds(ends[0], 1, 1)[:2] == (b"O", [])  # w1 wakes up: its offer
            ends[0].send(b"T")  # ... answered late: nothing waits, nothing is handed
            taken = [0, 0]
            for _ in range(4):  # one at a time: each goes to the next worker in turn
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=10))
                for number, got in enumerate(_play_workers(ends, 1)):
                    taken[number] += len(got)
                    handed += got
            assert taken == [2, 2]
            assert _play_workers(ends, 1, timeout=0.3) == [[], []]  # nothing more
            assert _peers(handed) == sorted(client.getsockname() for client in clients)
        finally:
            for sock in (*clients, *handed):
                sock.close()


def test_connections_still_waiting_when_the_server_stops_are_closed() -> None:
    """Every worker stuck: the accepted connections wait in the parent (none is lost
    in a worker's queue); stopping closes them, so each client sees the end."""
    with _dispatching(2) as (dispatcher, port, ends):
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
        try:
            time.sleep(0.3)  # accepted and offered, never taken
            dispatcher.stop()
            for client in clients:
                assert client.recv(1) == b""
            for end in ends:
                assert _drain(end) == ([b"O"], 0)
        finally:
            for client in clients:
                client.close()
