"""The top level: unexpected exceptions are bugs (exit 70, "please report", traceback
only with --debug); Ctrl-C is exit 130; a large body draws a progress bar only on a
terminal."""

from __future__ import annotations

import argparse
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smtpproto.__main__ import main
from smtpproto.cli import main as _cli

from .helpers import cli_env


def _boom(args: argparse.Namespace) -> int:
    raise ValueError("unexpected state")


def _interrupt(args: argparse.Namespace) -> int:
    raise KeyboardInterrupt


def test_internal_error_is_exit_70_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_cli, "run_explain", _boom)
    assert main(["explain", "250"]) == 70
    err = capsys.readouterr().err
    assert "internal error: ValueError: unexpected state" in err
    assert "please report" in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_cli, "run_explain", _boom)
    assert main(["--debug", "explain", "250"]) == 70
    assert "Traceback" in capsys.readouterr().err
    assert main(["explain", "--debug", "250"]) == 70
    assert "Traceback" in capsys.readouterr().err


def test_ctrl_c_is_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_cli, "run_explain", _interrupt)
    assert main(["explain", "250"]) == 130
    assert capsys.readouterr().err == "smtpproto: interrupted\n"


def test_version_and_help_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("smtpproto 0.")
    assert main(["explain", "--help"]) == 0


def _run_with_terminal_stderr(args: list[str], timeout: float = 60.0) -> tuple[int, bytes]:
    """Run the CLI with stderr on a pseudo-terminal; return (exit code, terminal bytes)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "smtpproto", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=cli_env(),
    )
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            elif process.poll() is not None:
                break
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        os.close(master)
    return code, bytes(seen)


def test_progress_bar_on_a_terminal_for_a_large_body(tmp_path: Path) -> None:
    body = tmp_path / "big.txt"
    body.write_text(("x" * 70 + "\n") * 40_000)  # about 2.8 MB
    code, terminal = _run_with_terminal_stderr(["send", "-q", "--body-file", str(body)])
    assert code == 0, terminal
    assert b"\r[" in terminal
    assert b"100%" in terminal
    assert b"MiB" in terminal


def test_no_progress_bar_for_a_small_body_or_a_pipe(tmp_path: Path) -> None:
    code, terminal = _run_with_terminal_stderr(["send", "-q"])
    assert code == 0, terminal
    assert b"\r" not in terminal
    body = tmp_path / "big.txt"
    body.write_text(("x" * 70 + "\n") * 40_000)
    result = subprocess.run(
        [sys.executable, "-m", "smtpproto", "send", "-q", "--body-file", str(body)],
        capture_output=True,
        env=cli_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert b"\r" not in result.stderr
    assert b"%" not in result.stderr
