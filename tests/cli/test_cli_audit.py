"""Gaps found by an adversarial audit of issue 12 (the command line against swaks), each
through the real CLI in a subprocess: every failure one line with its documented exit
code, ``--json`` one object also for a usage error, ``probe``'s TLS hints, a ``--size``
above the server's SIZE as the content class, secrets in no output, and one terminal
shared by the transcript and the progress bar."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from interop.peers import make_tls_material, start_aiosmtpd
from smtpproto.testing import run_server

from .helpers import RUN_TIMEOUT, assert_clean_failure, cli_env, run_cli


@pytest.mark.parametrize("value", ["foo", "mail.example.org:53", "[::1", "127.0.0.1:0"])
@pytest.mark.parametrize("command", ["send", "probe"])
def test_resolver_that_is_not_an_ip_address_is_a_usage_error(command: str, value: str) -> None:
    """``--resolver NAME`` was an internal error (exit 70, "this is a bug")."""
    args = ("send", "--to", "a@example.org") if command == "send" else ("probe", "example.org")
    result = run_cli(*args, "--resolver", value)
    assert_clean_failure(result, 2)
    assert "--resolver" in result.stderr or "bad" in result.stderr


def test_probe_json_with_a_bad_resolver_is_one_object() -> None:
    result = run_cli("probe", "example.org", "--resolver", "foo", "--json")
    assert_clean_failure(result, 2, "bad --resolver 'foo'")
    assert "bad --resolver 'foo'" in json.loads(result.stdout)["error"]


@pytest.mark.parametrize(
    ("option", "value", "shown"),
    [
        ("--to", "a\r\nRCPT TO:<b@example.org>", r"'a\r\nRCPT TO:<b@example.org>'"),
        ("--from", "a\tb@example.org", r"'a\tb@example.org'"),
        ("--subject", "x\r\nBcc: evil@example.org", r"'x\r\nBcc: evil@example.org'"),
        ("--server", "127.0.0.1\r\n", r"'127.0.0.1\r\n'"),
        ("--body-file", "/nonexistent/a\x1bb", r"'/nonexistent/a\x1bb'"),
    ],
)
def test_control_characters_are_shown_escaped_once(option: str, value: str, shown: str) -> None:
    """The offending value is quoted with its control characters escaped once
    (``'a\\r\\n'``), not twice (``'a\\\\r\\\\n'``) as repr() of an escaped text did."""
    args = ["send", "--to", "b@example.org", "--server", "127.0.0.1:1", option, value]
    result = run_cli(*args)
    assert_clean_failure(result, 2, shown)
    assert "\\\\" not in result.stderr


def test_insecure_with_bad_input_is_still_one_line() -> None:
    """The ``--insecure`` warning comes once the input is checked: a usage error is
    the only line on stderr."""
    result = run_cli("send", "--server", "127.0.0.1:1", "--insecure", "--to", "a\nb@example.org")
    assert_clean_failure(result, 2, "control character")
    assert len(result.stderr.splitlines()) == 1, result.stderr
    refused = run_cli("send", "--server", "127.0.0.1:1", "--insecure", "--to", "a@example.org")
    assert refused.returncode == 3
    assert "WARNING: --insecure" in refused.stderr


def test_a_declared_size_above_the_servers_is_exit_8_before_mail() -> None:
    """``--size`` above the server's SIZE is the content class (8) like an over-size
    message, not a usage error (2); nothing of the transaction is sent."""
    with start_aiosmtpd(data_size_limit=2000) as peer:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{peer.port}", "--tls", "none",
            "--from", "a@example.org", "--to", "b@example.org", "--size", "5000",
        )  # fmt: skip
        assert peer.messages == []
    assert_clean_failure(result, 8, "--size 5000 is above the server's SIZE limit of 2000")
    assert "-> MAIL" not in result.stdout
    assert "-> QUIT" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("--server", "127.0.0.1:1", "--to", "a@example.org", "--dsn-notify", "SOMETIMES"),
        ("--server", "127.0.0.1:1", "--to", "a@example.org", "--insecure", "--cafile", "x"),
        ("--server", "127.0.0.1:1", "--to", "a\rb@example.org"),
        ("--to", "a@example.org", "--resolver", "foo"),
    ],
)
def test_send_json_usage_error_is_one_object(args: tuple[str, ...]) -> None:
    """``send --json`` prints one JSON object also for a usage error found before
    connecting (it printed nothing on stdout)."""
    result = run_cli("send", "--json", *args)
    assert_clean_failure(result, 2)
    record = json.loads(result.stdout)
    assert record["outcome"]["exit_code"] == 2
    assert record["outcome"]["error"] in result.stderr
    assert record["replies"] == []


@pytest.mark.parametrize("server", ["[::1", "127.0.0.1:99999", "127.0.0.1\r\n"])
def test_probe_json_with_a_bad_server_is_one_object(server: str) -> None:
    result = run_cli("probe", server, "--json")
    assert_clean_failure(result, 2, "bad")
    assert json.loads(result.stdout)["error"].startswith("bad ")


def test_probe_hints_after_tls_failures() -> None:
    """A certificate failure suggests --cafile; --implicit-tls against a port that
    greets in cleartext says so instead of OpenSSL's WRONG_VERSION_NUMBER alone."""
    with run_server() as server:
        untrusted = run_cli("probe", f"127.0.0.1:{server.port}", "--json")
        implicit = run_cli("probe", f"127.0.0.1:{server.port}", "--implicit-tls", "--json")
    assert_clean_failure(untrusted, 4, "CERTIFICATE_VERIFY_FAILED", "--cafile PEM")
    assert "--cafile PEM" in json.loads(untrusted.stdout)["error"]
    assert json.loads(untrusted.stdout)["certificate_sha256"]
    assert_clean_failure(implicit, 4, "not a TLS port", "try without --implicit-tls")
    assert "not a TLS port" in json.loads(implicit.stdout)["error"]


PASSWORD = "Pa55-w0rd-of-the-audit"


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"])
@pytest.mark.parametrize("outcome", ["accepted", "refused"])
def test_the_password_is_in_no_output(tmp_path: Path, mechanism: str, outcome: str) -> None:
    """Neither the password nor its base64 forms appear on stdout, stderr, in
    ``--output-file`` or in ``--json``, for a good and a wrong password."""
    users = {"alice": PASSWORD if outcome == "accepted" else "something else"}
    outputs = []
    with run_server(users=users, require_auth=True) as server:
        for extra in ((), ("--json",)):
            path = tmp_path / f"out{len(extra)}.txt"
            result = run_cli(
                "send", "--server", f"127.0.0.1:{server.port}", "--cafile",
                str(server.cert_path), "--auth", mechanism, "--user", "alice",
                "--password-env", "PW", "--to", "b@example.org", "--output-file", str(path),
                *extra, env={"PW": PASSWORD},
            )  # fmt: skip
            assert result.returncode == (0 if outcome == "accepted" else 5), result.stderr
            outputs += [result.stdout, result.stderr, path.read_text(encoding="utf-8")]
    text = "\n".join(outputs)
    assert "AUTH " + mechanism in text
    secrets = [PASSWORD.encode(), b"\0alice\0" + PASSWORD.encode(), b"alice\0" + PASSWORD.encode()]
    for secret in secrets:
        for shown in (secret.decode(), base64.b64encode(secret).decode()):
            assert shown.strip("\0") not in text


def test_the_password_from_stdin_is_in_no_output() -> None:
    """The no-terminal prompt path: the password read from stdin is not echoed."""
    with run_server(users={"alice": PASSWORD}, require_auth=True) as server:
        result = subprocess.run(
            [sys.executable, "-m", "smtpproto", "send", "--server", f"127.0.0.1:{server.port}",
             "--cafile", str(server.cert_path), "--user", "alice", "--to", "b@example.org",
             "--json"],
            input=PASSWORD + "\n", capture_output=True, text=True, env=cli_env(),
            timeout=RUN_TIMEOUT, start_new_session=True, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("Password for alice: ")
    assert PASSWORD not in result.stdout + result.stderr
    assert json.loads(result.stdout)["outcome"]["ok"] is True


# -- one terminal for the transcript and the progress bar --------------------------------

_SGR = re.compile(rb"\x1b\[[0-9;]*m")


def _screen(data: bytes) -> list[str]:
    """The lines a terminal shows for ``data``: CR returns to the line start, ESC[K
    clears to its end, LF starts a new line, other text overwrites (colours dropped)."""
    lines: list[str] = []
    line: list[str] = []
    column = 0
    for token in re.split(rb"(\r|\n|\x1b\[K)", _SGR.sub(b"", data)):
        if token == b"\r":
            column = 0
        elif token == b"\n":
            lines.append("".join(line))
            line, column = [], 0
        elif token == b"\x1b[K":
            del line[column:]
        else:
            for char in token.decode("utf-8", "replace"):
                if column < len(line):
                    line[column] = char
                else:
                    line.append(char)
                column += 1
    if line:
        lines.append("".join(line))
    return lines


def _run_on_one_terminal(args: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """The CLI with stdout and stderr on one pseudo-terminal; its exit code and bytes."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "smtpproto", *args],
        stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=cli_env(env),
    )  # fmt: skip
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + RUN_TIMEOUT
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


_LINE = re.compile(r"\[ *\d+\.\d{3}s\] (==|->|<-|~>|<~) \S")


@pytest.mark.parametrize("no_color", ["", "1"])
def test_transcript_and_progress_bar_share_one_terminal(tmp_path: Path, no_color: str) -> None:
    """On one terminal every transcript line shows whole (the bar is erased before a
    line and redrawn after it); colours on a terminal unless NO_COLOR is set."""
    body = tmp_path / "big.txt"
    body.write_text(("y" * 70 + "\n") * 60_000)  # about 4 MB: the bar is drawn
    code, terminal = _run_on_one_terminal(
        ["send", "--body-file", str(body), "--no-chunking"], {"NO_COLOR": no_color}
    )
    assert code == 0, terminal
    assert b"\r[" in terminal and b"100%" in terminal  # the bar was there
    assert (b"\x1b[32m" in terminal) is (no_color == ""), terminal[:400]
    screen = [line.rstrip("\r") for line in _screen(terminal)]
    transcript = [line for line in screen if line.startswith("[ ")]
    assert len(transcript) > 20, screen
    for line in transcript:
        assert _LINE.match(line), line
        assert "%" not in line and "MiB" not in line, line
    assert any("<content: " in line for line in transcript)
    assert "message accepted for 1 recipient(s)" in transcript[-1]


# -- a session cut short in the content ----------------------------------------------------


class _ContentServer:
    """One SMTP session on 127.0.0.1 that takes MAIL, RCPT and DATA, then, after
    ``cut`` octets of content, closes the connection (``close``) or stops reading
    until ``release`` is set (``stall``: the client's writes block). Bounded."""

    def __init__(self, mode: str, cut: int = 100_000) -> None:
        self.mode, self.cut = mode, cut
        self.release = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(RUN_TIMEOUT)
        self.port: int = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn, conn.makefile("rb") as reader:
            conn.settimeout(RUN_TIMEOUT)
            with contextlib.suppress(OSError):  # the client went away
                self._session(conn, reader)

    def _session(self, conn: socket.socket, reader: Any) -> None:
        conn.sendall(b"220 cut ESMTP\r\n")
        for line in reader:
            verb = line[:4].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-cut\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                reader.read(self.cut)
                if self.mode == "stall":
                    self.release.wait(RUN_TIMEOUT)
                return  # closes the connection mid-content
            else:
                conn.sendall(b"250 ok\r\n")

    def close(self) -> None:
        self.release.set()
        self.sock.close()
        self._thread.join(5.0)

    def __enter__(self) -> _ContentServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _big_body(tmp_path: Path) -> Path:
    body = tmp_path / "big.txt"
    body.write_text(("z" * 70 + "\n") * 150_000)  # about 10 MB, more than socket buffers
    return body


def test_server_closing_mid_content_is_one_line_exit_3(tmp_path: Path) -> None:
    """The connection lost before the content's end: nothing can have been delivered,
    exit 3 ("connection lost"), one line, no traceback."""
    with _ContentServer("close") as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--tls", "none",
            "--from", "a@example.org", "--to", "b@example.org",
            "--body-file", str(_big_body(tmp_path)),
        )  # fmt: skip
    assert_clean_failure(result, 3, "connection lost")
    assert "<- 354" in result.stdout


def test_ctrl_c_mid_content_is_exit_130_one_line(tmp_path: Path) -> None:
    """SIGINT while the content is being written (the server stopped reading):
    "smtpproto: interrupted", exit 130, no traceback."""
    with _ContentServer("stall") as server:
        process = subprocess.Popen(
            [sys.executable, "-m", "smtpproto", "send", "--server",
             f"127.0.0.1:{server.port}", "--tls", "none", "--from", "a@example.org",
             "--to", "b@example.org", "--body-file", str(_big_body(tmp_path))],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=cli_env(),
        )  # fmt: skip
        try:
            assert process.stdout is not None
            seen = []
            for line in process.stdout:  # bounded: the server times out, then EOF
                seen.append(line)
                if "<- 354" in line:
                    break
            assert any("<- 354" in line for line in seen), seen
            time.sleep(0.3)  # into the blocked write of the content
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=RUN_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    assert process.returncode == 130, err
    assert err == "smtpproto: interrupted\n"
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--unix-socket", "/nonexistent.sock", "--port", "25"), "not with --port"),
        (("--unix-socket", "/nonexistent.sock", "-6"), "not with -6"),
        (("--unix-socket", "/nonexistent.sock", "--local-interface", "127.0.0.1"), "not with"),
        (("--unix-socket", "/nonexistent.sock", "--resolver", "127.0.0.1"), "not with"),
        (("--server", "127.0.0.1:1", "--resolver", "127.0.0.1"), "not with --server"),
    ],
)
def test_options_the_destination_would_ignore_are_usage_errors(
    args: tuple[str, ...], fragment: str
) -> None:
    """TCP options with ``--unix-socket`` and ``--resolver`` with ``--server`` were
    silently ignored."""
    assert_clean_failure(run_cli("send", "--to", "a@example.org", *args), 2, fragment)


@pytest.mark.parametrize("protocol", ["esmtp", "smtp"])
def test_chunking_the_server_does_not_offer_is_exit_8_before_mail(protocol: str) -> None:
    """``--chunking`` without CHUNKING (or with HELO only) was exit 2 with the library's
    "chunking=True needs ..." text; now like the other extensions: before MAIL, one
    line, the content class."""
    with start_aiosmtpd() as peer:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{peer.port}", "--tls", "none",
            "--protocol", protocol, "--chunking",
            "--from", "a@example.org", "--to", "b@example.org",
        )  # fmt: skip
        assert peer.messages == []
    assert_clean_failure(result, 8, "does not offer CHUNKING", "nothing was sent")
    assert "-> MAIL" not in result.stdout


@pytest.mark.parametrize(
    ("env", "args", "red"),
    [
        ({"NO_COLOR": ""}, (), True),
        ({"NO_COLOR": "1"}, (), False),
        ({"NO_COLOR": ""}, ("--color", "never"), False),
        ({"NO_COLOR": "1"}, ("--color", "always"), True),
    ],
)
def test_the_error_line_is_red_on_a_terminal(
    env: dict[str, str], args: tuple[str, ...], red: bool
) -> None:
    """The final error line stands out from the transcript on a terminal, as the
    transcript's colours do: NO_COLOR and --color decide."""
    command = ["send", "--server", "127.0.0.1:1", "--to", "a@example.org", *args]
    code, terminal = _run_on_one_terminal(command, env)
    assert code == 3, terminal
    error = b"smtpproto: error: cannot connect to 127.0.0.1 port 1"
    assert (b"\x1b[31m" + error in terminal) is red, terminal
    assert error in terminal
    piped = run_cli(*command[:5], env=env)  # not a terminal: plain text
    assert_clean_failure(piped, 3, "cannot connect")
    assert "\x1b[" not in piped.stderr


@pytest.mark.parametrize("option", ["--data", "--body-file", "--attach"])
def test_output_file_that_is_an_input_is_a_usage_error(tmp_path: Path, option: str) -> None:
    """``--output-file`` naming the message being sent would have emptied it first."""
    message = tmp_path / "message.eml"
    message.write_text("Subject: keep me\n\nbody\n")
    result = run_cli(
        "send", "--server", "127.0.0.1:1", "--to", "a@example.org", option, str(message),
        "--output-file", str(tmp_path / "." / "message.eml"),
    )  # fmt: skip
    assert_clean_failure(result, 2, f"is the {option} file")
    assert message.read_text() == "Subject: keep me\n\nbody\n"


@pytest.mark.parametrize(
    "args",
    [
        ("--to", "a\rb@example.org"),
        ("--to", "b@example.org", "--body-file", "/nonexistent/body.txt"),
        ("--to", "b@example.org", "--auth", "NO-SUCH-MECH"),
        ("--to", "b@example.org", "--cafile", "/nonexistent/ca.pem"),
    ],
)
def test_bad_input_is_reported_before_the_password_prompt(args: tuple[str, ...]) -> None:
    """The password is asked for last, once everything else is checked: a typo in an
    address no longer costs typing the password first."""
    result = subprocess.run(
        [sys.executable, "-m", "smtpproto", "send", "--server", "127.0.0.1:1",
         "--user", "alice", *args],
        input="secret\n", capture_output=True, text=True, env=cli_env(),
        timeout=RUN_TIMEOUT, start_new_session=True, check=False,
    )  # fmt: skip
    assert_clean_failure(result, 2)
    assert "Password for" not in result.stderr


def test_serve_with_a_certificate_that_does_not_load_is_a_usage_error(tmp_path: Path) -> None:
    """A --cert/--key that is not PEM, or a key of another certificate, was exit 3
    "cannot listen on ...: [SSL] PEM lib"; it is the user's input: exit 2, named."""
    one, other = make_tls_material(tmp_path / "one"), make_tls_material(tmp_path / "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a certificate\n")
    for cert, key in ((garbage, one.key_path), (one.cert_path, other.key_path)):
        result = run_cli("serve", "--port", "1", "--cert", str(cert), "--key", str(key))
        assert_clean_failure(result, 2, f"cannot load --cert '{cert}' with --key '{key}'")


@pytest.mark.parametrize(("option", "what"), [("--data", "data"), ("--body", "body")])
def test_stdin_from_a_terminal_says_how_to_end_it(option: str, what: str) -> None:
    """``--data -`` / ``--body -`` typed at a terminal: a note says what the wait is
    for and how to end it (a pipe gets no note)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "smtpproto", "send", "--server", "127.0.0.1:1",
         "--to", "a@example.org", option, "-"],
        stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cli_env(), start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    try:
        assert process.stderr is not None
        note = process.stderr.readline()  # bounded: the process ends after its timeout
        assert note == (
            f"smtpproto: note: reading the {what} from the terminal; "
            "end it with Ctrl-D on a line of its own\n"
        )
        os.write(master, b"Subject: typed\n\nhello\n\x04")
        out, err = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        os.close(master)
    assert process.returncode == 3, err
    assert err.startswith("smtpproto: error: cannot connect"), err
    assert "connecting to 127.0.0.1 port 1" in out  # read to the end, then connected
    piped = run_cli("send", "--server", "127.0.0.1:1", "--to", "a@example.org", option, "-")
    assert_clean_failure(piped, 3, "cannot connect")
