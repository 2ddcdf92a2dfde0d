"""``smtpproto serve --workers N``: N processes accept from one listening socket, a
worker with more open connections leaving a new one to a live worker with fewer; real
clients (smtplib, swaks, Postfix's smtp-source) reach every worker and every message
lands whole in the maildir, once; a stopped worker holds up no connection;
SIGINT/SIGTERM stop every worker and remove the temporary certificate; a worker that dies
is reported and stops the rest."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import pytest

from smtpproto.cli import serve_workers
from smtpproto.cli.serve_workers import worker_count

from .helpers import ServeProcess, assert_clean_failure, run_cli

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork"), reason="--workers needs fork and descriptor passing (POSIX)"
)

MESSAGE = b"Subject: hi\r\n\r\nHello there.\r\n"
#: Bound for processes to disappear (they check their parent every ``_HEARTBEAT``).
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


def test_sessions_open_at_once_are_spread_over_the_workers() -> None:
    """Four sessions opened one after another and kept open: a worker that serves more
    leaves the next one to the other (a shared socket alone, or SO_REUSEPORT's hash,
    can put all of a few sessions on one worker), so both workers serve some."""
    with ServeProcess("--workers", "2", "--no-starttls") as serve:
        pids = _pids(serve)
        workers = []
        with contextlib.ExitStack() as stack:
            for _ in range(4):
                client = stack.enter_context(
                    socket.create_connection(("127.0.0.1", serve.port), timeout=20)
                )
                assert client.recv(512).startswith(b"220 ")
                workers.append(_worker_of(serve, client.getsockname()[1]))
        code = serve.stop()
    assert sorted(set(workers)) == ["w1", "w2"], serve.output()
    assert code == 0, serve.stderr
    assert _all_gone(pids)


def test_a_stopped_worker_holds_up_no_connection(tmp_path: Path) -> None:
    """One worker stopped (SIGSTOP: it runs no code, as if stuck): every connection is
    still served, each message stored once, by the other worker."""
    maildir = tmp_path / "Maildir"
    args = ("--workers", "2", "--no-starttls", "-q", "--maildir", str(maildir))
    with ServeProcess(*args) as serve:
        pids = _pids(serve)
        os.kill(pids[0], signal.SIGSTOP)
        try:
            for number in range(4):
                with smtplib.SMTP("127.0.0.1", serve.port, timeout=20) as client:
                    client.sendmail("a@example.org", [f"b{number}@example.org"], MESSAGE)
        finally:
            os.kill(pids[0], signal.SIGCONT)
        code = serve.stop()
    assert code == 0, serve.stderr
    assert _writers(maildir) == [pids[1]] * 4


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
    assert set(_writers(maildir)) <= set(pids)
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


def _blocked(pid: int, thread: int) -> int:
    """The mask of signals ``thread`` of ``pid`` blocks (``/proc``, Linux)."""
    with open(f"/proc/{pid}/task/{thread}/status") as status:
        for line in status:
            if line.startswith("SigBlk:"):
                return int(line.split()[1], 16)
    raise AssertionError("no SigBlk line")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_only_a_workers_main_thread_takes_the_stop_signals() -> None:
    """A worker's other threads (the heartbeat, the idle sweep, asyncio's executor)
    keep SIGINT, SIGTERM and SIGHUP blocked: a stop signal is taken by the loop's
    thread alone, as when the worker had no thread of its own, and none is left to take
    one repeated once the worker has blocked them to stop (``_until_stopped``)."""
    stops = sum(1 << (sig - 1) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
    with ServeProcess("--workers", "2", "--no-starttls") as serve:
        pids = _pids(serve)
        masks = {
            (pid, int(thread)): _blocked(pid, int(thread))
            for pid in pids
            for thread in os.listdir(f"/proc/{pid}/task")
        }
        code = serve.stop()
    assert code == 0, serve.stderr
    assert all(masks[pid, pid] & stops == 0 for pid in pids), masks
    others = {key: mask for key, mask in masks.items() if key[0] != key[1]}
    assert len(others) >= 2 * len(pids), masks  # the heartbeat and the sweeper, at least
    assert all(mask & stops == stops for mask in others.values()), masks


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


class _Loads:
    """Two workers' shared loads (``serve_workers.Loads``), in ordinary memory."""

    def __init__(self) -> None:
        self.view = memoryview(bytearray(32)).cast("q")

    def set(self, worker: int, load: int, ran: float) -> None:
        """Worker ``worker`` (0 or 1) has ``load`` connections and ran at ``ran``."""
        self.view[2 * worker] = load
        self.view[2 * worker + 1] = int(ran * 1000)


async def _accepted(
    loads: _Loads, mine: int, clients: int, *, others_accept: bool = False, age: float = 0.0
) -> tuple[list[socket.socket], list[socket.socket], list[socket.socket]]:
    """Worker 0 (``mine`` open connections) accepts from a fresh listener while
    ``clients`` connect; with ``others_accept`` worker 1 accepts too (its own
    ``_Acceptor`` on a duplicate of the listener, as a forked worker has), else worker
    1 has no connection, last ran ``age`` seconds ago and accepts nothing. The
    connections each took, and the clients, once all are accepted (bounded: 10 s)."""
    listener = serve_workers._listen("127.0.0.1", 0)
    duplicate = listener.dup()
    taken: list[list[socket.socket]] = [[], []]
    acceptors = [serve_workers._Acceptor(listener, loads.view, 0, lambda: mine, taken[0].append)]
    if others_accept:
        acceptors.append(
            serve_workers._Acceptor(duplicate, loads.view, 1, lambda: 0, taken[1].append)
        )
    else:
        loads.set(1, 0, time.monotonic() - age)
    await asyncio.sleep(0)  # the heartbeats: each acceptor publishes itself
    port = listener.getsockname()[1]
    made = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(clients)]
    try:
        for _ in range(1000):  # 10 s at most
            if sum(map(len, taken)) >= clients:
                break
            await asyncio.sleep(0.01)
    finally:
        for acceptor in acceptors:
            acceptor.close()
        listener.close()
        duplicate.close()
    return taken[0], taken[1], made


def _close(*groups: list[socket.socket]) -> None:
    for group in groups:
        for sock in group:
            sock.close()


def test_a_worker_with_more_connections_leaves_a_new_one_to_a_live_worker_with_fewer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Worker 0 (3 connections) does not take the connection while worker 1 (none, just
    ran) may: when worker 1 starts accepting, the connection is its."""
    monkeypatch.setattr(serve_workers, "_DEFER", 30.0)  # far beyond the test's bound
    loads = _Loads()

    async def run() -> tuple[list[socket.socket], list[socket.socket], list[socket.socket]]:
        listener = serve_workers._listen("127.0.0.1", 0)
        duplicate = listener.dup()
        taken: list[list[socket.socket]] = [[], []]
        loads.set(1, 0, time.monotonic())
        acceptors = [serve_workers._Acceptor(listener, loads.view, 0, lambda: 3, taken[0].append)]
        port = listener.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10)]
        try:
            await asyncio.sleep(0.3)  # worker 0 sees the connection and leaves it
            assert taken == [[], []]
            acceptors.append(
                serve_workers._Acceptor(duplicate, loads.view, 1, lambda: 0, taken[1].append)
            )
            for _ in range(1000):  # 10 s at most
                if taken[1]:
                    break
                await asyncio.sleep(0.01)
        finally:
            for acceptor in acceptors:
                acceptor.close()
            listener.close()
            duplicate.close()
        return taken[0], taken[1], clients

    mine, theirs, clients = asyncio.run(run())
    try:
        assert (len(mine), len(theirs)) == (0, 1)
        assert theirs[0].getpeername() == clients[0].getsockname()
        assert loads.view[2] == 1  # worker 1 counted it at once
    finally:
        _close(mine, theirs, clients)


def test_two_workers_never_wait_for_each_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Worker 1 (5 connections) leaves the first connection to worker 0 (1) and waits;
    worker 0, at 9 connections meanwhile, leaves the next one to worker 1, which looks
    again and takes it (else it would wait for ``_DEFER``, past the test's bound)."""
    monkeypatch.setattr(serve_workers, "_DEFER", 30.0)
    loads = _Loads()
    mine = [1]

    async def run() -> tuple[list[socket.socket], list[socket.socket], list[socket.socket]]:
        listener = serve_workers._listen("127.0.0.1", 0)
        duplicate = listener.dup()
        taken: list[list[socket.socket]] = [[], []]
        first = serve_workers._Acceptor(listener, loads.view, 0, lambda: mine[0], taken[0].append)
        second = serve_workers._Acceptor(duplicate, loads.view, 1, lambda: 5, taken[1].append)
        await asyncio.sleep(0)
        port = listener.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10)]
        try:
            for _ in range(1000):  # 10 s at most
                if taken[0]:
                    break
                await asyncio.sleep(0.01)
            mine[0] = 9
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            for _ in range(1000):
                if len(taken[0]) + len(taken[1]) >= 2:
                    break
                await asyncio.sleep(0.01)
        finally:
            first.close()
            second.close()
            listener.close()
            duplicate.close()
        return taken[0], taken[1], clients

    first, second, clients = asyncio.run(run())
    try:
        assert (len(first), len(second)) == (1, 1)
    finally:
        _close(first, second, clients)


def test_workers_with_equal_loads_accept_at_once_each_connection_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nobody waits (``_DEFER`` is never reached); the kernel gives each connection to
    one ``accept``: every client is served exactly once."""
    monkeypatch.setattr(serve_workers, "_DEFER", 30.0)
    loads = _Loads()
    mine, theirs, clients = asyncio.run(_accepted(loads, 0, 8, others_accept=True))
    try:
        peers = sorted(sock.getpeername() for sock in (*mine, *theirs))
        assert peers == sorted(client.getsockname() for client in clients)
    finally:
        _close(mine, theirs, clients)


def test_a_live_worker_that_does_not_take_the_connection_delays_it_by_defer_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Worker 1 has fewer connections and ran just now, but does not accept (stuck
    since): worker 0 leaves each new connection to it for ``_DEFER``, then takes it."""
    monkeypatch.setattr(serve_workers, "_DEFER", 0.05)
    loads = _Loads()
    mine, theirs, clients = asyncio.run(_accepted(loads, 2, 3))
    try:
        assert theirs == [] and len(mine) == 3
        assert sorted(s.getpeername() for s in mine) == sorted(c.getsockname() for c in clients)
    finally:
        _close(mine, clients)


def test_a_worker_that_has_not_run_for_stale_seconds_is_not_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(serve_workers, "_DEFER", 30.0)
    loads = _Loads()
    mine, _, clients = asyncio.run(_accepted(loads, 5, 2, age=serve_workers._STALE + 1.0))
    try:
        assert len(mine) == 2
    finally:
        _close(mine, clients)


def test_a_worker_that_let_a_connection_wait_is_not_waited_for_again_until_it_ran(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Worker 1 has fewer connections and looks live but never accepts (not scheduled,
    as on a busy machine): worker 0 leaves it the first connection for ``_DEFER``, then
    takes the next ones at once; once worker 1 has published again (it ran), worker 0
    leaves it the next connection again."""
    monkeypatch.setattr(serve_workers, "_DEFER", 0.05)
    loads = _Loads()

    async def run() -> tuple[list[int], list[socket.socket], list[socket.socket]]:
        listener = serve_workers._listen("127.0.0.1", 0)
        taken: list[socket.socket] = []
        loads.set(1, 0, time.monotonic())
        acceptor = serve_workers._Acceptor(listener, loads.view, 0, lambda: 2, taken.append)
        port = listener.getsockname()[1]
        clients: list[socket.socket] = []
        deferred = []
        try:
            for number in range(4):
                if number == 3:
                    loads.set(1, 0, time.monotonic())  # worker 1 ran meanwhile
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=10))
                for _ in range(1000):  # 10 s at most
                    if len(taken) > number:
                        break
                    await asyncio.sleep(0.01)
                deferred.append(acceptor.deferred)
        finally:
            acceptor.close()
            listener.close()
        return deferred, taken, clients

    deferred, taken, clients = asyncio.run(run())
    try:
        assert len(taken) == 4
        assert deferred == [1, 1, 1, 2]
    finally:
        _close(taken, clients)


def test_a_small_difference_in_load_is_not_worth_a_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Worker 0 serves 9 connections, worker 1 (live, accepting nothing) 8: a quarter
    of 9 or less, so worker 0 takes each new connection at once (with a connection per
    message the loads move all the time; waiting on every small difference cost
    throughput); at 2 against 1 it leaves one (a few long sessions spread evenly)."""
    monkeypatch.setattr(serve_workers, "_DEFER", 30.0)  # a wait would outlast the bound
    loads = _Loads()

    async def run(mine: int, theirs: int) -> tuple[int, list[socket.socket], socket.socket]:
        listener = serve_workers._listen("127.0.0.1", 0)
        taken: list[socket.socket] = []
        loads.set(1, theirs, time.monotonic())
        acceptor = serve_workers._Acceptor(listener, loads.view, 0, lambda: mine, taken.append)
        client = socket.create_connection(("127.0.0.1", listener.getsockname()[1]), timeout=10)
        try:
            for _ in range(50):  # 0.5 s: far below _DEFER
                if taken or acceptor.deferred:
                    break
                await asyncio.sleep(0.01)
        finally:
            acceptor.close()
            listener.close()
        return acceptor.deferred, taken, client

    for mine, theirs, expected in ((9, 8, 0), (12, 9, 0), (2, 1, 1), (9, 6, 1)):
        deferred, taken, client = asyncio.run(run(mine, theirs))
        try:
            assert (deferred, len(taken)) == (expected, 1 - expected), (mine, theirs)
        finally:
            _close(taken, [client])


def test_a_worker_keeps_no_timer_pending_and_its_heartbeat_still_publishes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The heartbeat comes from a thread through the loop (no ``TimerHandle`` pending:
    with one, asyncio reads the clock twice per pass of the loop): the load and the time
    it ran are published again every ``_HEARTBEAT`` while the loop runs, and ``beat``
    (the worker's check of its parent) runs on the loop's thread each time; ``close``
    stops the thread."""
    monkeypatch.setattr(serve_workers, "_HEARTBEAT", 0.02)
    loads = _Loads()

    async def run() -> tuple[list[object], list[int], list[bool], bool]:
        loop = asyncio.get_running_loop()
        listener = serve_workers._listen("127.0.0.1", 0)
        load = [3]
        beats: list[bool] = []
        acceptor = serve_workers._Acceptor(
            listener,
            loads.view,
            0,
            lambda: load[0],
            lambda sock: sock.close(),
            beat=lambda: beats.append(asyncio.get_running_loop() is loop),
        )
        published = [loads.view[0]]
        ran = loads.view[1]
        try:
            # asyncio's own list of timers (private), cancelled ones aside
            pending = [handle for handle in loop._scheduled if not handle.cancelled()]  # type: ignore[attr-defined]
            load[0] = 5
            for _ in range(500):  # 10 s at most
                if loads.view[0] == 5 and loads.view[1] > ran and len(beats) >= 2:
                    break
                await asyncio.sleep(0.02)
            published.append(loads.view[0])
        finally:
            acceptor.close()
            listener.close()
        return pending, published, beats, acceptor._heartbeat.running

    pending, published, beats, running = asyncio.run(run())
    assert pending == []
    assert published == [3, 5]
    assert len(beats) >= 2 and all(beats)
    assert not running
