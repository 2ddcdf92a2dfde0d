"""Start the fuzzer's targets on 127.0.0.1 as subprocesses, and stop them.

- ``start_flawed(flaws)``: ``flawed_server.py`` with the given planted flaws (none: the
  clean server). Its log holds one ``FLAW-TRIGGERED <name>`` line per trigger.
- ``start_aiosmtpd(python)``: ``aiosmtpd_server.py`` under the interpreter ``python``:
  the test venv's current aiosmtpd (``sys.executable``) or ``aiosmtpd_144_python()``, a
  cached venv with aiosmtpd 1.4.4 from PyPI (CVE-2024-27305, CVE-2024-34083), made on
  first use with ``python -m venv`` and ``pip install aiosmtpd==1.4.4``.

Every wait is bounded; leaving a context kills the process (a crashed one is reaped).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
AIOSMTPD_OLD = "1.4.4"
CACHE = Path(
    os.environ.get("SMTPPROTO_FUZZ_CACHE", Path.home() / ".cache" / "smtpproto" / "fuzz-peers")
)


class TargetFailed(RuntimeError):
    """A target did not start."""


@dataclasses.dataclass
class Target:
    """A server subprocess listening on ``host:port``; ``log`` holds the flawed server's log."""

    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path | None = None
    info: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def triggered(self) -> list[str]:
        """The names in the log's ``FLAW-TRIGGERED`` lines, in order."""
        if self.log is None or not self.log.exists():
            return []
        text = self.log.read_text(encoding="utf-8")
        return re.findall(r"^FLAW-TRIGGERED (\S+)$", text, flags=re.MULTILINE)

    def alive(self) -> bool:
        return self.process.poll() is None


def _read_banner(process: subprocess.Popen[bytes], name: str) -> dict[str, str]:
    """Read ``KEY value`` lines from stdout until ``LISTENING``; bounded in time."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    text = b""
    deadline = time.monotonic() + START_TIMEOUT
    while b"LISTENING " not in text or not text.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(remaining, 0))
        if not ready:
            raise TargetFailed(f"{name} did not start within {START_TIMEOUT} s")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise TargetFailed(f"{name} exited with {process.wait(5)} before listening")
        text += chunk
    lines = text.decode("utf-8", "replace").splitlines()
    return dict(line.partition(" ")[::2] for line in lines)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)
    if process.stdout is not None:
        process.stdout.close()


@contextlib.contextmanager
def _serve(
    name: str, command: list[str], log: Path | None = None, host: str = HOST
) -> Iterator[Target]:
    stderr = log.with_suffix(".stderr") if log is not None else None
    with contextlib.ExitStack() as stack:
        err = stack.enter_context(stderr.open("w")) if stderr else subprocess.DEVNULL
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, cwd=HERE)
        try:
            info = _read_banner(process, name)
            yield Target(name, host, int(info["LISTENING"]), process, log, info)
        finally:
            _stop(process)


@contextlib.contextmanager
def start_flawed(
    folder: Path,
    flaws: Iterable[str] = (),
    *,
    seed: int | None = None,
    require_auth: bool = False,
) -> Iterator[Target]:
    """Run ``flawed_server.py`` with ``flaws`` on a free port; its log goes into ``folder``."""
    flaws = sorted(flaws)
    name = "flawed[" + (",".join(flaws) or "clean") + "]"
    folder.mkdir(parents=True, exist_ok=True)
    label = flaws[0] if len(flaws) == 1 else f"{len(flaws)}-flaws" if flaws else "clean"
    log = folder / f"server-{label}-{time.monotonic_ns()}.log"
    command = [sys.executable, str(HERE / "flawed_server.py"), "--host", HOST, "--port", "0"]
    command += ["--log", str(log)]
    command += [arg for flaw in flaws for arg in ("--flaw", flaw)]
    if seed is not None:
        command += ["--seed", str(seed)]
    if require_auth:
        command.append("--require-auth")
    with _serve(name, command, log) as target:
        yield target


def aiosmtpd_144_python() -> Path:
    """The interpreter of a cached venv holding aiosmtpd 1.4.4, created on first use."""
    venv = CACHE / f"aiosmtpd-{AIOSMTPD_OLD}"
    python = venv / "bin" / "python"
    stamp = venv / "ready"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", f"aiosmtpd=={AIOSMTPD_OLD}"],
                check=True,
                timeout=600,
            )
            stamp.write_text(AIOSMTPD_OLD)
    return python


@contextlib.contextmanager
def start_aiosmtpd(
    python: Path | str, cert: Path, key: Path, *, host: str = HOST
) -> Iterator[Target]:
    """Run aiosmtpd (the version installed for ``python``) with STARTTLS on a free port
    of ``host`` (127.0.0.1, or ``::1``)."""
    command = [str(python), str(HERE / "aiosmtpd_server.py"), "--host", host, "--port", "0"]
    command += ["--cert", str(cert), "--key", str(key)]
    with _serve(f"aiosmtpd({python})", command, host=host) as target:
        target.name = f"aiosmtpd-{target.info.get('VERSION', '?')}"
        yield target
