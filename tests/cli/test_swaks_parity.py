"""swaks 20201014 and ``smtpproto send`` side by side: the same options (as mapped in
docs/cli.md) against the same scripted server on 127.0.0.1 give the same commands on
the wire, and the same message content where both build it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import RUN_TIMEOUT, ScriptedSMTPServer, run_cli

SWAKS = shutil.which("swaks")


def _commands(received: list[bytes]) -> list[bytes]:
    """The command lines (content and the final dot left out), in order."""
    out: list[bytes] = []
    in_data = False
    for line in received:
        if in_data:
            in_data = line != b".\r\n"
            continue
        out.append(line.rstrip(b"\r\n"))
        in_data = line.upper().startswith(b"DATA")
    return out


def _run_swaks(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    assert SWAKS is not None, "swaks is not installed (.ci/install-peers installs it)"
    return subprocess.run(
        [SWAKS, "--server", "127.0.0.1", "--port", str(port), "--timeout", "20", *args],
        capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
    )  # fmt: skip


def _both(swaks_args: list[str], ours: list[str]) -> tuple[list[bytes], list[bytes]]:
    with ScriptedSMTPServer({}) as server:
        theirs = _run_swaks(server.port, *swaks_args)
        assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    swaks_lines = _commands(server.received)
    with ScriptedSMTPServer({}) as server:
        result = run_cli("send", "--server", f"127.0.0.1:{server.port}", "--tls", "none", *ours)
        assert result.returncode == 0, result.stdout + result.stderr
    return swaks_lines, _commands(server.received)


SENDER = ["--from", "a@example.org"]


@pytest.mark.parametrize(
    ("swaks_args", "ours"),
    [
        (["--to", "c@example.org,d@example.org", "--ehlo", "client.test"],
         ["--to", "c@example.org,d@example.org", "--ehlo", "client.test"]),
        (["--to", "b@example.org", "--protocol", "SMTP", "--helo", "h.test"],
         ["--to", "b@example.org", "--protocol", "smtp", "--ehlo", "h.test"]),
        (["--to", "b@example.org", "--protocol", "LMTP", "--lhlo", "l.test"],
         ["--to", "b@example.org", "--protocol", "lmtp", "--ehlo", "l.test"]),
    ],
)  # fmt: skip
def test_same_commands_as_swaks(swaks_args: list[str], ours: list[str]) -> None:
    theirs, mine = _both([*SENDER, *swaks_args], [*SENDER, *ours])
    assert mine == theirs


def test_data_file_arrives_as_swaks_sends_it(tmp_path: Path) -> None:
    message = tmp_path / "m.eml"
    message.write_bytes(b"Subject: same\r\nX-A: b\r\n\r\nbody line\r\n.dot\r\n")
    envelope = ["--from", "a@example.org", "--to", "b@example.org"]
    with ScriptedSMTPServer({}) as server:
        theirs = _run_swaks(server.port, *envelope, "--data", str(message))
        assert theirs.returncode == 0, theirs.stdout
    swaks_data = b"".join(server.received).split(b"DATA\r\n", 1)[1]
    with ScriptedSMTPServer({}) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--tls", "none", *envelope,
            "--data", str(message),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    ours = b"".join(server.received).split(b"DATA\r\n", 1)[1].split(b"QUIT")[0]
    # Both dot-stuff; swaks adds an empty line before the final dot, smtpproto sends
    # the file's octets and nothing more.
    assert swaks_data.split(b"QUIT")[0] == ours.replace(b"\r\n.\r\n", b"\r\n\r\n.\r\n")
    assert ours == b"Subject: same\r\nX-A: b\r\n\r\nbody line\r\n..dot\r\n.\r\n"
