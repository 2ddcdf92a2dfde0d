"""``smtpproto fuzz`` / ``smtpproto replay`` argument handling (no campaign is run)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from smtpproto.cli.fuzz import is_loopback
from smtpproto.cli.main import main
from smtpproto.fuzz.transcript import Transcript, connect, send


def test_a_non_loopback_target_needs_the_ownership_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fuzz", "192.0.2.1:25", "--budget", "1"]) == 2
    assert "--i-own-this-target" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("192.0.2.1", False)]
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_unknown_probe_family_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fuzz", "127.0.0.1:25", "--probes", "smuggling,astrology"]) == 2
    assert "astrology" in capsys.readouterr().err


def test_replay_refuses_a_transcript_without_oracle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.jsonl"
    Transcript([connect(), send(b"QUIT\r\n")]).dump(path)
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["replay", str(path), f"127.0.0.1:{port}"]) == 2
    assert "names no oracle" in capsys.readouterr().err


def test_replay_refuses_a_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"dir": "tcp", "note": "connect"}\nnot json\n', encoding="utf-8")
    assert main(["replay", str(path), "127.0.0.1:25"]) == 2
    assert "line 2" in capsys.readouterr().err
