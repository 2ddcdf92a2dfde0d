"""The server rows: Postfix's ``smtp-source`` sends to a server; the server's CPU counts.

Every server runs in a process of its own, started once for the whole run
(``running``) and fed by ``smtp-source -d -s SESSIONS -m COUNT -l LENGTH`` once per
round (``source_session``): ``SESSIONS`` parallel connections, each sending message
after message without disconnecting, ``LENGTH`` octets of body each. The sample's
``cpu`` is the CPU time the server's process tree used over that span
(``measure.tree_cpu``: the server and any worker processes it started), its wall time
is smtp-source's from start to exit, ``extra["client_cpu"]`` is smtp-source's own and
``extra["machine_cpu"]`` the whole machine's (every process, other jobs included).

Rows (``ROWS``):

* ``smtp-sink`` — Postfix's C sink, the in-run reference: what the loopback and
  smtp-source allow;
* ``built-in (drop)`` / ``aiosmtpd (drop)`` — ``servers.py builtin-drop`` /
  ``aiosmtpd-drop``: each message answered 250 and dropped;
* ``asyncio minimal`` — ``servers.py asyncio-minimal``: a tiny asyncio protocol with
  constant replies and no parsing, the in-run reference for the loop's and the system
  calls' share of the built-in server's CPU;
* ``serve --maildir`` / ``aiosmtpd maildir`` — ``python -m smtpproto serve --maildir``
  (``-q --no-starttls``) / ``servers.py aiosmtpd-maildir``: each message written to a
  Maildir of its own under the run's temporary folder;
* ``serve --maildir --workers N`` — the same with ``serve``'s multi-process mode,
  ``N`` = the number of CPUs; only when ``smtpproto serve --help`` lists
  ``--workers`` (``workers_note`` says why it is missing otherwise);
* ``serve --maildir -s 32`` / ``serve --maildir --workers N -s 32`` — one process and N
  workers again, fed by 32 sessions instead of ``SESSIONS`` and ``WIDE_SCALE`` times
  ``COUNT`` messages (so that a run lasts about a second: ``row_load``):
  smtp-source sends a command and waits for its reply, so a few sessions leave the
  workers idle between round trips; 32 are enough to keep the cores busy. Their
  ``cores busy`` (server CPU seconds per wall second, and smtp-source's alongside) show
  how much of the machine each side used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from measure import Sample, machine_cpu, run_program, tree_cpu
from peers import HOST, find_postfix_tool, free_port, listening, smtp_sink

__all__ = [
    "PAIRS",
    "ROWS",
    "SESSIONS",
    "WORKERS_ROWS",
    "Server",
    "SourceLoad",
    "row_load",
    "running",
    "source_session",
    "workers_note",
]

SERVERS_SCRIPT = Path(__file__).resolve().parent / "servers.py"
WORKERS = os.cpu_count() or 2
#: smtp-source's sessions for the rows that show the workers busy (``SESSIONS``).
WIDE = 32
TIMEOUT = 600.0


@dataclasses.dataclass(frozen=True)
class Server:
    """A running server: where it listens and the process id its CPU is read from."""

    host: str
    port: int
    pid: int


@dataclasses.dataclass(frozen=True)
class SourceLoad:
    """What smtp-source sends per measurement: ``count`` messages of ``length`` body
    octets over ``sessions`` parallel connections."""

    count: int
    sessions: int = 4
    length: int = 1024


Start = Callable[[Path], contextlib.AbstractContextManager[Server]]


@contextlib.contextmanager
def _program(
    argv: Sequence[str], port: int, name: str, ready_text: str | None = None
) -> Iterator[Server]:
    with listening(argv, port, name, ready_text) as process:
        yield Server(HOST, port, process.pid)


@contextlib.contextmanager
def _sink(_: Path) -> Iterator[Server]:
    with smtp_sink() as sink:
        yield Server(sink.host, sink.port, sink.pid)


def _python_server(kind: str, *extra: str) -> Start:
    def start(folder: Path) -> contextlib.AbstractContextManager[Server]:
        port = free_port()
        args = [str(folder / arg) for arg in extra]
        return _program([sys.executable, str(SERVERS_SCRIPT), kind, str(port), *args], port, kind)

    return start


def _serve(*options: str) -> Start:
    def start(folder: Path) -> contextlib.AbstractContextManager[Server]:
        port = free_port()
        argv = [sys.executable, "-m", "smtpproto", "serve", "--host", HOST, "--port", str(port)]
        argv += ["-q", "--no-starttls", "--maildir", str(folder / "serve-maildir"), *options]
        return _program(argv, port, "smtpproto serve", "listening on")

    return start


def _serve_help() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "smtpproto", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def workers_note() -> str | None:
    """``None`` when ``serve`` has ``--workers``; else why that row is not measured."""
    if "--workers" in _serve_help():
        return None
    return "serve has no --workers option on this tree: the multi-process row is not measured"


ROWS: dict[str, Start] = {
    "smtp-sink": _sink,
    "built-in (drop)": _python_server("builtin-drop"),
    "aiosmtpd (drop)": _python_server("aiosmtpd-drop"),
    "asyncio minimal": _python_server("asyncio-minimal"),
    "serve --maildir": _serve(),
    "aiosmtpd maildir": _python_server("aiosmtpd-maildir", "aiosmtpd-maildir"),
    f"serve --maildir --workers {WORKERS}": _serve("--workers", str(WORKERS)),
    f"serve --maildir -s {WIDE}": _serve(),
    f"serve --maildir --workers {WORKERS} -s {WIDE}": _serve("--workers", str(WORKERS)),
}
WORKERS_ROW = f"serve --maildir --workers {WORKERS}"
#: The rows measured only when ``serve`` has ``--workers``.
WORKERS_ROWS = (WORKERS_ROW, f"serve --maildir --workers {WORKERS} -s {WIDE}")
#: Rows fed by another number of sessions than the run's ``--source-sessions``.
SESSIONS = {f"serve --maildir -s {WIDE}": WIDE, WORKERS_ROWS[1]: WIDE}
#: Those rows send this many times the run's count: 32 sessions finish 4,000 messages
#: in 0.2-0.35 s on a quiet machine, so a moment of another job's load (or the workers'
#: start-up) weighed on one run as much as the rest of it (one run: 0.55-1.61x).
WIDE_SCALE = 4


def row_load(name: str, load: SourceLoad) -> SourceLoad:
    """What smtp-source sends to the row ``name`` per measurement, given the run's."""
    if name not in SESSIONS:
        return load
    return dataclasses.replace(load, count=load.count * WIDE_SCALE, sessions=SESSIONS[name])


#: Rows compared with another row (besides smtp-sink), round by round.
PAIRS = {
    "built-in (drop)": "aiosmtpd (drop)",
    "asyncio minimal": "built-in (drop)",  # asyncio's share of the built-in server's CPU
    "serve --maildir": "aiosmtpd maildir",
    WORKERS_ROW: "serve --maildir",
    WORKERS_ROWS[1]: f"serve --maildir -s {WIDE}",
}


@contextlib.contextmanager
def running(names: Sequence[str], folder: Path) -> Iterator[dict[str, Server]]:
    """Start the servers ``names`` (rows of ``ROWS``), each with ``folder`` for its
    files, side by side (each waits for its own port); all are stopped when the block
    ends, also when one of them failed to start."""
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(max(1, len(names))) as pool:
        managers = [ROWS[name](folder) for name in names]
        started = list(pool.map(stack.enter_context, managers))
        yield dict(zip(names, started, strict=True))


def source_session(server: Server, load: SourceLoad) -> Sample:
    """One smtp-source run against ``server``: the server's CPU over it, smtp-source's
    wall time and (as ``client_cpu``) its CPU."""
    argv = [
        str(find_postfix_tool("smtp-source")),
        "-d",
        "-s", str(load.sessions),
        "-m", str(load.count),
        "-l", str(load.length),
        "-M", "bench.example",
        "-f", "bench@example.test",
        "-t", "sink@example.test",
        f"{server.host}:{server.port}",
    ]  # fmt: skip
    before, machine = tree_cpu(server.pid), machine_cpu()
    client = run_program(argv, load.count, TIMEOUT)
    used, machine = tree_cpu(server.pid) - before, machine_cpu() - machine
    return Sample(load.count, client.wall, used, {"client_cpu": client.cpu, "machine_cpu": machine})
