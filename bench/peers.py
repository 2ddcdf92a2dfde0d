"""Peers for the benchmarks: Postfix's ``smtp-sink`` (server) and ``smtp-source`` (client).

Kept separate from ``tests/interop/peers.py`` so the benchmarks depend on nothing under
``tests/``. Both programs come with the Debian ``postfix`` package; ``.ci/install-peers``
installs it (and keeps the Postfix daemon stopped). The sink runs without a dump file:
capturing messages to disk would measure the disk, not the client.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

__all__ = ["HOST", "Sink", "find_postfix_tool", "free_port", "listening", "smtp_sink"]

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0  # generous: a loaded 2-core CI machine starts peers slowly


def find_postfix_tool(name: str) -> Path:
    """The path of ``smtp-sink``/``smtp-source``; ``FileNotFoundError`` naming the fix."""
    for folder in ("/usr/sbin", "/usr/lib/postfix/sbin", "/usr/libexec/postfix"):
        candidate = Path(folder) / name
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"Postfix's {name} is not installed; run .ci/install-peers")
    return Path(found)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Sink:
    """Where a running ``smtp-sink`` listens, and its process id (for its CPU time)."""

    def __init__(self, host: str, port: int, pid: int = 0) -> None:
        self.host = host
        self.port = port
        self.pid = pid


@contextlib.contextmanager
def listening(
    argv: Sequence[str], port: int, name: str, ready_text: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (a server that will listen on ``HOST:port``) until the block ends.

    Returns once a connection to the port succeeds and, when ``ready_text`` is given,
    the program's standard output (kept in a temporary file, so it can never block the
    program) contains that text — for a server whose first listening process is not
    the last to get ready (``smtpproto serve --workers`` prints ``listening on`` when
    every worker listens). Start-up is bounded by ``STARTUP_TIMEOUT``; an early exit
    raises ``RuntimeError`` with its stderr. The process is always stopped on exit
    (SIGTERM, then SIGKILL after 5 s).
    """
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not _ready(port, output, ready_text):
                if process.poll() is not None:
                    stderr = process.stderr.read() if process.stderr else b""
                    raise RuntimeError(f"{name} exited with {process.returncode}: {stderr!r}")
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"{name} not ready after {STARTUP_TIMEOUT} s")
                time.sleep(0.05)
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            if process.stderr is not None:
                process.stderr.close()


def _ready(port: int, output: IO[bytes], ready_text: str | None) -> bool:
    """The port takes a connection, and the output so far has ``ready_text`` (if any)."""
    if ready_text is not None:
        # pread, not seek + read: the program writes through the same open file, so
        # its offset is shared; seeking back to 0 made its next lines overwrite the
        # first ones ("listening on" lost: "not ready after 30 s").
        fd = output.fileno()
        if ready_text.encode() not in os.pread(fd, os.fstat(fd).st_size, 0):
            return False
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def smtp_sink(*extra_args: str) -> Iterator[Sink]:
    """Run ``smtp-sink`` (PIPELINING, 8BITMIME; no CHUNKING) on a free loopback port.

    Start-up is bounded by ``STARTUP_TIMEOUT``; the process is always stopped on exit.
    """
    args = [str(find_postfix_tool("smtp-sink"))]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]  # smtp-sink refuses to keep root privileges
    port = free_port()
    args += [*extra_args, f"{HOST}:{port}", "100"]
    with listening(args, port, "smtp-sink") as process:
        yield Sink(HOST, port, process.pid)
