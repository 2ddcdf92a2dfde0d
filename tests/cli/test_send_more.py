"""More of ``send``: the password prompt, a given certificate, implicit TLS against a
STARTTLS server, and a reader that closes the pipe early."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trustme

from .helpers import ServeProcess, assert_clean_failure, cli_env, run_cli


def test_password_from_the_prompt() -> None:
    env = {"SMTPPROTO_SERVE_AUTH": "alice:typed secret"}
    with ServeProcess(env=env) as serve:
        cert = serve.wait_for("STARTTLS certificate:").split(": ", 1)[1]
        # No controlling terminal (new session): getpass reads the answer from stdin.
        result = subprocess.run(
            [
                sys.executable, "-m", "smtpproto", "send",
                "--server", f"127.0.0.1:{serve.port}", "--cafile", cert,
                "--user", "alice", "--to", "bob@example.com",
            ],
            input="typed secret\n",
            capture_output=True,
            text=True,
            env=cli_env(),
            timeout=60,
            start_new_session=True,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        serve.wait_for("---- end of message")
    assert "Password for alice:" in result.stderr
    assert "Warning" not in result.stderr  # no GetPassWarning text
    assert len(result.stderr.splitlines()) == 1
    assert "typed secret" not in result.stdout + result.stderr + serve.output()
    assert "<~ 235 2.7.0 Authentication successful" in result.stdout


def test_serve_with_a_given_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    with ServeProcess("--cert", str(cert), "--key", str(key)) as serve:
        assert serve.wait_for("STARTTLS certificate:").endswith(str(cert))
        result = run_cli(
            "send", "--server", f"127.0.0.1:{serve.port}", "--tls", "required",
            "--cafile", str(ca_file), "--to", "bob@example.com",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        serve.wait_for("---- end of message")
        other = run_cli(
            "send", "--server", f"127.0.0.1:{serve.port}", "--tls", "required",
            "--to", "bob@example.com",
        )  # fmt: skip
    assert_clean_failure(other, 4, "certificate verify failed")
    assert cert.exists()  # a given certificate is not deleted on exit


def test_implicit_tls_to_a_starttls_server_is_exit_4() -> None:
    with ServeProcess() as serve:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{serve.port}", "--tls", "implicit",
            "--to", "bob@example.com", "--timeout", "10",
        )  # fmt: skip
        probe = run_cli("probe", f"127.0.0.1:{serve.port}", "--implicit-tls", "--timeout", "10")
    assert_clean_failure(result, 4, "TLS")
    assert probe.returncode == 4, probe.stderr
    assert "Traceback" not in probe.stderr


def test_a_reader_that_stops_early(tmp_path: Path) -> None:
    body = tmp_path / "body.txt"
    body.write_text("some text\n" * 30_000)  # the printed message overflows the pipe
    process = subprocess.Popen(
        [sys.executable, "-m", "smtpproto", "send", "--body-file", str(body)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()  # like `| head -1`
        code = process.wait(60)
        errors = process.stderr.read()
        process.stderr.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert first.startswith(b"built-in server on 127.0.0.1")
    assert code == 0, errors
    assert errors == b""


def test_quit_after_data_delivers_nothing_and_serve_shows_the_commands() -> None:
    with ServeProcess() as serve:
        cert = serve.wait_for("STARTTLS certificate:").split(": ", 1)[1]
        base = ["send", "--server", f"127.0.0.1:{serve.port}", "--cafile", cert]
        base += ["--from", "a@example.org", "--to", "b@example.org"]
        stopped = run_cli(*base, "--quit-after", "data", "--subject", "never sent")
        assert stopped.returncode == 0, stopped.stderr
        whole = run_cli(*base, "--chunking", "--subject", "sent with BDAT")
        assert whole.returncode == 0, whole.stderr
        serve.wait_for("---- end of message")
        assert serve.stop() == 0
    output = serve.output()
    assert output.count("---- end of message") == 1
    assert "sent with BDAT" in output and "never sent" not in output
    for command in ("C: STARTTLS", "C: DATA", "C: BDAT ", "C: QUIT", "C: RCPT TO:<b@example.org>"):
        assert command in output, command
    assert "Requested" not in output and "Received" not in output.replace("Received:", "")


def test_no_password_on_stdin_is_one_line() -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "smtpproto", "send", "--server", "127.0.0.1:9",
            "--user", "alice", "--to", "bob@example.com",
        ],
        input="", capture_output=True, text=True, env=cli_env(), timeout=60,
        start_new_session=True, check=False,
    )  # fmt: skip
    assert_clean_failure(result, 2, "no password given", "--password-env")
    assert "Warning" not in result.stderr
