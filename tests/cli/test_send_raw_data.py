"""``send --data FILE|- --no-data-fixup`` (swaks' ``--no-data-fixup``) through the real
CLI: the file's octets go out as they are, no CRLF fixes and no dot-stuffing
(``sendmail(raw=True)``), the same octets swaks sends; data that would end the DATA
early is refused before connecting (exit 2), never half-sent."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from interop.peers import start_aiosmtpd

from .helpers import RUN_TIMEOUT, ScriptedSMTPServer, assert_clean_failure, run_cli

#: Bare LF and CR, smuggling-style "\n.\n" and "\r.\r", an unstuffed "..", a NUL, a
#: line over 998 octets, no final CRLF: all of it kept by --no-data-fixup.
RAW = (
    b"Subject: raw\r\n\r\nbare LF\n.\nbare CR\r.\r\n..not stuffed\r\nNUL \0 here\r\n"
    + b"x" * 1200
    + b"\r\nlast line"
)
ENVELOPE = ("--from", "a@example.org", "--to", "b@example.org")


def _data(received: list[bytes]) -> bytes:
    """The octets the peer received after DATA, its final '.' line left out."""
    start = [line.upper() for line in received].index(b"DATA\r\n") + 1
    end = len(received) - 1 - received[::-1].index(b".\r\n")
    wire = b"".join(received[start : end + 1])
    assert wire.endswith(b"\r\n.\r\n")
    return wire[: -len(b".\r\n")]


def test_no_data_fixup_sends_the_octets_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "raw.eml"
    path.write_bytes(RAW)
    with ScriptedSMTPServer({}) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--tls", "none",
            "--data", str(path), "--no-data-fixup", *ENVELOPE,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
    assert _data(server.received) == RAW + b"\r\n"  # the last line's CRLF: the end of data


def test_without_no_data_fixup_the_same_file_is_refused() -> None:
    """The default --data checks what SMTP cannot carry (NUL, long lines)."""
    result = run_cli("send", "--server", "127.0.0.1:9", "--data", "-", *ENVELOPE, stdin="a\0b")
    assert_clean_failure(result, 2, "NUL")


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks_no_data_fixup_sends_the_same_octets(tmp_path: Path) -> None:
    """swaks sends the file and then CRLF, so its file carries the final '.' line;
    smtpproto writes the end of data itself (a '.' line in the file is refused)."""
    theirs_file = tmp_path / "swaks.eml"
    theirs_file.write_bytes(RAW + b"\r\n.")
    ours_file = tmp_path / "ours.eml"
    ours_file.write_bytes(RAW)
    with ScriptedSMTPServer({}) as server:
        swaks = subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{server.port}", *ENVELOPE,
             "--data", f"@{theirs_file}", "--no-data-fixup"],
            capture_output=True, timeout=RUN_TIMEOUT, check=False,
        )  # fmt: skip
        assert swaks.returncode == 0, swaks.stdout + swaks.stderr
    theirs = _data(server.received)
    with ScriptedSMTPServer({}) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--data", str(ours_file),
            "--no-data-fixup", *ENVELOPE,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
    assert _data(server.received) == theirs == RAW + b"\r\n"


def test_no_data_fixup_from_stdin_to_aiosmtpd() -> None:
    content = "Subject: stdin\r\n\r\n..two dots\r\nbare\rCR\r\n"
    with start_aiosmtpd() as peer:
        result = run_cli(
            "send", "--server", f"{peer.host}:{peer.port}", "--tls", "none",
            "--data", "-", "--no-data-fixup", *ENVELOPE, stdin=content,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        (message,) = peer.wait_for_messages(1)
    # aiosmtpd removes one leading dot (RFC 5321 §4.5.2): none was added
    assert message.content == content.replace("..two", ".two").encode()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"Subject: x\r\n\r\nhi\r\n.\r\nMAIL FROM:<evil@example.org>\r\n", "at content octet 18"),
        (b".\r\nRSET\r\n", "at content octet 0"),
        (b"Subject: x\r\n\r\nhi\r\n.\r\n", "at content octet 18"),  # a swaks-style file
        (b"Subject: x\r\n\r\nhi\r\n.", "one line early"),
    ],
)
@pytest.mark.parametrize("source", ["file", "stdin"])
def test_data_that_would_end_the_data_early_is_refused_before_connecting(
    tmp_path: Path, data: bytes, fragment: str, source: str
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        if source == "file":
            path = tmp_path / "smuggle.eml"
            path.write_bytes(data)
            given, stdin = str(path), None
        else:
            given, stdin = "-", data.decode("ascii")
        result = run_cli(
            "send", "--server", f"127.0.0.1:{port}", "--data", given,
            "--no-data-fixup", *ENVELOPE, stdin=stdin,
        )  # fmt: skip
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # refused before connecting: nothing half-sent
    assert_clean_failure(result, 2, fragment, "end the DATA")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (("--no-data-fixup", "--body", "hi"), "--no-data-fixup is for --data"),
        (("--no-data-fixup", "--data", "-", "--chunking"), "not with --chunking"),
    ],
)
def test_no_data_fixup_usage_errors(options: tuple[str, ...], fragment: str) -> None:
    result = run_cli("send", "--server", "127.0.0.1:9", *options, *ENVELOPE)
    assert_clean_failure(result, 2, fragment)
