"""``smtpproto fuzz`` / ``smtpproto replay`` argument handling (no campaign is run)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from smtpproto.cli.fuzz import is_loopback
from smtpproto.cli.main import main
from smtpproto.fuzz.replay import replay
from smtpproto.fuzz.transcript import Transcript, close, connect, send, sleep
from smtpproto.testing import run_server


def _exits_2_without_connecting(argv: Callable[[int], list[str]]) -> None:
    """``main(argv(port))`` is a usage error (exit 2) before anything connects to a
    listener on ``port``."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        assert main(argv(listener.getsockname()[1])) == 2
        with pytest.raises(BlockingIOError):
            listener.accept()


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


def _closed_port() -> int:
    with socket.socket() as sock:  # a port where nothing listens once closed
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_replay_plays_a_transcript_without_oracle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """FUZZ-TRANSCRIPT.md: the header is optional and `smtpproto replay` must accept
    exactly the format; a header-less file is replayed, and not judged (exit 0)."""
    path = tmp_path / "t.jsonl"
    Transcript([connect(), send(b"NOOP\r\n"), send(b"QUIT\r\n"), close()]).dump(path)
    with run_server(host="127.0.0.1") as server:
        assert main(["replay", str(path), f"127.0.0.1:{server.port}"]) == 0
    assert "not judged" in capsys.readouterr().out
    with run_server(host="127.0.0.1") as server:
        assert main(["replay", "--json", str(path), f"127.0.0.1:{server.port}"]) == 0
    assert json.loads(capsys.readouterr().out)["reproduced"] is None


@pytest.mark.parametrize("oracle", [None, "crash", "smuggling"])
def test_replay_to_a_server_that_is_down_is_exit_3_never_not_reproduced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], oracle: str | None
) -> None:
    """Exit 1 says "fixed": a regression test asserting it must not pass because the
    server did not even start."""
    path = tmp_path / "t.jsonl"
    header = {"oracle": oracle} if oracle else {}
    Transcript([connect(), send(b"NOOP\r\n", 1, trigger=True)], header).dump(path)
    assert main(["replay", str(path), f"127.0.0.1:{_closed_port()}"]) == 3
    assert "cannot replay" in capsys.readouterr().err


@pytest.mark.parametrize(
    "second",
    [
        b"not json",
        b'{"dir": "c2s", "data_b64": "\xff"}',  # not UTF-8
        b'{"dir": "c2s", "data_b64": "QQ"}',  # no padding
        b'{"dir": "tcp", "note": "sleep", "seconds": 30.5}',
        b'{"dir": "tcp", "note": "sleep", "seconds": -1}',
        b'{"dir": "tcp", "note": "connect", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"header": {"oracle": "crash"}}',
    ],
)
def test_replay_refuses_a_broken_file_naming_the_line_and_sending_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], second: bytes
) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"dir": "tcp", "note": "connect"}\n' + second + b"\n")
    # nothing may connect: the file is refused first
    _exits_2_without_connecting(lambda port: ["replay", str(path), f"127.0.0.1:{port}"])
    assert "line 2" in capsys.readouterr().err


def test_replay_refuses_an_oracle_that_is_not_a_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.jsonl"
    Transcript([connect()], {"oracle": ["crash"]}).dump(path)
    assert main(["replay", str(path), f"127.0.0.1:{_closed_port()}"]) == 2
    assert "unknown oracle" in capsys.readouterr().err


def test_replay_to_a_non_loopback_target_needs_the_ownership_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A crash transcript is an attack on someone else's server: the same gate as
    `smtpproto fuzz` (192.0.2.1 is TEST-NET-1; nothing is sent, the gate comes first)."""
    path = tmp_path / "t.jsonl"
    Transcript([connect(), send(b"NOOP\r\n", 1, trigger=True)], {"oracle": "crash"}).dump(path)
    assert main(["replay", str(path), "192.0.2.1:25"]) == 2
    assert "--i-own-this-target" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_fuzz_out_that_cannot_be_a_folder_is_refused_before_fuzzing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """The folder is checked first: the campaign used to spend its whole budget and then
    end in an internal error (exit 70), its findings lost."""
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder\n", encoding="utf-8")
    out = blocker if where == "file" else blocker / "out"
    # nothing may connect: the gate comes first
    _exits_2_without_connecting(
        lambda port: ["fuzz", f"127.0.0.1:{port}", "--budget", "5", "--out", str(out)]
    )
    assert "--out" in capsys.readouterr().err


def test_a_replay_that_runs_too_long_is_cut_and_never_read_as_fixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every sleep is at most 30 s, but a file may hold many: the walk is bounded
    (--max-time), and a cut replay is exit 10, not 1 ("fixed")."""
    path = tmp_path / "t.jsonl"
    events = [connect(), *[sleep(0.2) for _ in range(40)], send(b"NOOP\r\n", 1, trigger=True)]
    Transcript(events, {"oracle": "accepted"}).dump(path)
    with run_server(host="127.0.0.1") as server:
        address = f"127.0.0.1:{server.port}"
        assert main(["replay", "--max-time", "1", str(path), address]) == 10
        assert "--max-time" in capsys.readouterr().err
        result = replay(path, "127.0.0.1", server.port, max_seconds=1.0)
    assert result.stopped.startswith("stopped after 1 s")
    assert len(result.observation.conns[0].steps) < 10  # the NOOP was never sent


@pytest.mark.parametrize(
    "header",
    [
        {"oracle": "accepted", "params": {"codes": 5}},
        {"oracle": "accepted", "params": {"codes": ["2"]}},
        {"oracle": "hang", "params": {"bound": "1.5"}},
        {"oracle": "slow", "params": {"seconds": [1]}},
        {"oracle": "advertises", "params": {"keyword": 5}},
        {"oracle": "accepted", "implicit_tls": "false"},
    ],
)
def test_replay_refuses_a_header_its_oracle_cannot_read_before_sending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], header: dict[str, object]
) -> None:
    """Such headers ended in an internal error (exit 70) after the replay, or judged by a
    wrong value ("false" read as true: a TLS handshake to a cleartext server)."""
    path = tmp_path / "t.jsonl"
    Transcript([connect(), send(b"NOOP\r\n", 1, trigger=True)], header).dump(path)
    # nothing may connect: the header is checked first
    _exits_2_without_connecting(lambda port: ["replay", str(path), f"127.0.0.1:{port}"])
    assert "header" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "env"),
    [
        ("--ehlo", "x\r\nVRFY root", {}),
        ("--ehlo", "x\x00", {}),
        ("--mail-from", "a@b.test>\r\nRSET", {}),
        ("--mail-from", "\xe9@b.test", {}),
        ("--rcpt-to", "b@c.test\nRSET", {}),
        ("--rcpt-to", "\xe9@c.test", {}),
        ("--user", "al\rice", {"FUZZPW": "FuzzS3cretPW"}),
        ("--user", "alice", {"FUZZPW": "FuzzS3cretPW\n"}),
        ("--user", "alice", {"FUZZPW": "FuzzS3cretPW\udcff"}),
    ],
)
def test_a_baseline_option_the_engine_refuses_is_a_usage_error_before_connecting(
    option: str,
    value: str,
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The baseline dialogue was built from these as given: --ehlo 'x CRLF VRFY root'
    sent a command of its own (every reply count after it off by one) and a password
    with a lone surrogate ended in UnicodeEncodeError (exit 70)."""
    for name, secret in env.items():
        monkeypatch.setenv(name, secret)
    auth = ["--password-env", "FUZZPW"] if env else []
    # nothing may connect: the check comes first
    _exits_2_without_connecting(
        lambda port: ["fuzz", f"127.0.0.1:{port}", "--budget", "5", option, value, *auth]
    )
    err = capsys.readouterr().err
    assert "invalid option" in err and "FuzzS3cretPW" not in err


def test_another_tools_header_is_ignored_as_the_format_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """FUZZ-TRANSCRIPT.md: the header is free-form and the replayer ignores it. Another
    tool's "oracle" (not one of ours), "params" or "implicit_tls" made the file a usage
    error; it is replayed, not judged."""
    path = tmp_path / "t.jsonl"
    header = {"tool": "other-fuzzer", "oracle": "smuggling-accepted", "params": 5}
    header["implicit_tls"] = "maybe"
    Transcript([connect(), send(b"NOOP\r\n"), send(b"QUIT\r\n"), close()], header).dump(path)
    with run_server(host="127.0.0.1") as server:
        assert main(["replay", "--json", str(path), f"127.0.0.1:{server.port}"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reproduced"] is None and result["oracle"] is None
