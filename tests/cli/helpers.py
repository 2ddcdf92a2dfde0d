"""Run ``python -m smtpproto`` as a user would: a subprocess with a timeout.

Every run is bounded by ``timeout`` seconds (a hung CLI fails the test instead of
hanging the suite). ``assert_clean_failure`` checks the promise of the command line:
a one-line error on stderr, the documented exit code, never a traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping

#: Generous bound for one CLI run (the built-in demo session takes well under a second).
RUN_TIMEOUT = 60.0


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a CLI subprocess: ours, UTF-8 I/O, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONIOENCODING"] = "utf-8"
    env.pop("SMTPPROTO_SERVE_AUTH", None)
    if extra:
        env.update(extra)
    return env


def run_cli(
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = RUN_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m smtpproto *args`` and capture its text output."""
    return subprocess.run(
        [sys.executable, "-m", "smtpproto", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=cli_env(env),
        timeout=timeout,
        check=False,
    )


def assert_clean_failure(
    result: subprocess.CompletedProcess[str], code: int, *fragments: str
) -> None:
    """Exit ``code``, no traceback, one error line on stderr containing ``fragments``."""
    detail = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == code, detail
    assert "Traceback" not in result.stderr, detail
    assert "Traceback" not in result.stdout, detail
    errors = [line for line in result.stderr.splitlines() if line.startswith("smtpproto")]
    assert len(errors) == 1, detail
    for fragment in fragments:
        assert fragment.lower() in errors[0].lower(), detail


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
