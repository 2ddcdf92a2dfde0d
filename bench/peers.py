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
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["HOST", "Sink", "find_postfix_tool", "free_port", "listening", "smtp_sink"]

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 10.0


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
def listening(argv: Sequence[str], port: int, name: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (a server that will listen on ``HOST:port``) until the block ends.

    Returns once a connection to the port succeeds; start-up is bounded by
    ``STARTUP_TIMEOUT`` and an early exit raises ``RuntimeError`` with its stderr. The
    process is always stopped on exit (SIGTERM, then SIGKILL after 5 s).
    """
    process = subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                stderr = process.stderr.read() if process.stderr else b""
                raise RuntimeError(f"{name} exited with {process.returncode}: {stderr!r}")
            try:
                with socket.create_connection((HOST, port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"{name} not listening after {STARTUP_TIMEOUT} s") from None
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
