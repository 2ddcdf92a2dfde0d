"""``smtpproto serve``: receives mail, prints it or stores it, stops on Ctrl-C with 0."""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from pathlib import Path

import pytest

from .helpers import ServeProcess, assert_clean_failure, free_port, run_cli

MESSAGE = b"Subject: hi\r\nFrom: a@example.org\r\nTo: b@example.org\r\n\r\nHello there.\r\n"


def _smtplib_send(port: int, cert: str, login: tuple[str, str] | None = None) -> None:
    context = ssl.create_default_context(cafile=cert)
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.starttls(context=context)
        if login is not None:
            client.login(*login)
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE)


def test_serve_prints_messages_and_stops_on_sigint() -> None:
    with ServeProcess() as serve:
        cert = serve.wait_for("STARTTLS certificate:").split(": ", 1)[1]
        assert Path(cert).is_file()
        _smtplib_send(serve.port, cert)
        serve.wait_for("---- end of message")
        code = serve.stop()
    output = serve.output()
    assert code == 0, serve.stderr
    assert "Traceback" not in serve.stderr
    assert "Hello there." in output
    assert "TLS established" in output
    assert "MAIL FROM:<a@example.org>" in output
    assert not Path(cert).exists()  # the temporary certificate is removed on exit


def test_serve_stores_in_maildir_and_requires_auth(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    env = {"SMTPPROTO_SERVE_AUTH": "alice:s3cret:with:colons"}
    with ServeProcess("--maildir", str(maildir), env=env) as serve:
        cert = serve.wait_for("STARTTLS certificate:").split(": ", 1)[1]
        serve.wait_for("AUTH required")
        try:
            _smtplib_send(serve.port, cert, ("alice", "wrong"))
        except smtplib.SMTPAuthenticationError as error:
            assert error.smtp_code == 535
        else:
            raise AssertionError("a wrong password was accepted")
        _smtplib_send(serve.port, cert, ("alice", "s3cret:with:colons"))
        serve.wait_for("stored")
        assert serve.stop() == 0
    (stored,) = (maildir / "new").iterdir()
    assert stored.read_bytes() == MESSAGE
    assert "s3cret" not in serve.output()


def test_serve_mbox_without_starttls(tmp_path: Path) -> None:
    mbox = tmp_path / "mail.mbox"
    with ServeProcess("--mbox", str(mbox), "--no-starttls", "--quiet") as serve:
        serve.wait_for("STARTTLS not offered")
        with smtplib.SMTP("127.0.0.1", serve.port, timeout=20) as client:
            client.ehlo()
            assert not client.has_extn("starttls")
            client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
        assert serve.stop() == 0
    content = mbox.read_bytes()
    assert content.startswith(b"From a@example.org ")
    assert b"\nHello there.\n" in content


def test_serve_port_in_use_is_a_clean_error() -> None:
    with ServeProcess("--no-starttls") as first:
        result = run_cli("serve", "--port", str(first.port), "--no-starttls", timeout=30)
        assert first.stop() == 0
    assert_clean_failure(result, 3, "cannot listen")


def test_serve_bad_credentials_are_usage_errors() -> None:
    result = run_cli("serve", "--auth", "nopassword", "--no-starttls")
    assert_clean_failure(result, 2, "USER:PASSWORD")
    result = run_cli("serve", "--cert", "/nonexistent/cert.pem", "--key", "/nonexistent/k.pem")
    assert_clean_failure(result, 2, "cannot read")


@pytest.mark.parametrize("env", [False, True])
def test_serve_auth_without_starttls_is_a_usage_error(env: bool) -> None:
    """AUTH is offered only after STARTTLS: with --no-starttls the server used to start,
    print "AUTH required (after STARTTLS)" and answer every MAIL with 530, AUTH never
    being offered."""
    if env:
        result = run_cli("serve", "--no-starttls", env={"SMTPPROTO_SERVE_AUTH": "u:p"}, timeout=20)
    else:
        result = run_cli("serve", "--auth", "u:p", "--no-starttls", timeout=20)
    assert_clean_failure(result, 2, "--no-starttls", "STARTTLS")


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+([0-9]+) kB", status)[1])  # type: ignore[index]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
def test_serve_keeps_no_message_in_memory(tmp_path: Path) -> None:
    """A long-running serve must not grow with every message it stored: 16 MiB of
    messages into the maildir leave its RSS within a few MiB of where it was after the
    first ones (it grew by the whole 16 MiB when every message was also kept)."""
    maildir = tmp_path / "Maildir"
    body = b"Subject: big\r\n\r\n" + (b"x" * 1000 + b"\r\n") * 100  # about 100 KB
    with ServeProcess("--maildir", str(maildir), "--no-starttls", "--quiet") as serve:
        serve.wait_for("STARTTLS not offered")
        with smtplib.SMTP("127.0.0.1", serve.port, timeout=30) as client:
            for _ in range(8):  # warm up: buffers, allocator arenas
                client.sendmail("a@example.org", ["b@example.org"], body)
            before = _rss_kib(serve.process.pid)
            for _ in range(160):
                client.sendmail("a@example.org", ["b@example.org"], body)
            after = _rss_kib(serve.process.pid)
        assert serve.stop() == 0, serve.stderr
    assert len(list((maildir / "new").iterdir())) == 168
    assert after - before < 6 * 1024, (before, after)


@pytest.mark.parametrize("workers", [(), ("--workers", "2")])
@pytest.mark.parametrize(
    ("layout", "option", "path", "fragment"),
    [
        ("file", "--maildir", "Maildir", "not a folder"),
        ("", "--maildir", "missing/Maildir", "parent folder does not exist"),
        ("tmp-file", "--maildir", "Maildir", "not a folder"),
        ("new-file", "--maildir", "Maildir", "not a folder"),
        ("dir", "--mbox", "mbox", "is a folder"),
        ("", "--mbox", "missing/mbox", "parent folder does not exist"),
    ],
)
def test_serve_refuses_a_destination_that_cannot_take_a_message(
    tmp_path: Path,
    layout: str,
    option: str,
    path: str,
    fragment: str,
    workers: tuple[str, ...],
) -> None:
    """It used to start, then answer 451 to every message: now it exits 2 at once with
    one line naming the path (before any worker is started)."""
    if layout == "file":
        (tmp_path / path).write_bytes(b"")
    elif layout == "dir":
        (tmp_path / path).mkdir()
    elif layout:
        (tmp_path / path).mkdir()
        (tmp_path / path / layout.split("-")[0]).write_bytes(b"")
    where = tmp_path / path
    with socket.socket() as taken:  # were the path not checked first: exit 3, at once
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_cli("serve", "--port", port, "--no-starttls", option, str(where), *workers)
    assert_clean_failure(result, 2, "cannot store messages", str(where), fragment)
    assert "listening" not in result.stdout


@pytest.mark.parametrize("workers", [(), ("--workers", "2")])
def test_serve_auth_without_a_certificate_is_an_error(workers: tuple[str, ...]) -> None:
    """No tool could make the certificate (``SMTPPROTO_CERT_TOOL=openssl`` with no
    ``openssl`` on the PATH): STARTTLS is not offered, so --auth could never be used;
    serve started anyway and answered every MAIL with 530."""
    result = run_cli(
        "serve",
        "--port",
        str(free_port()),
        "--auth",
        "u:p",
        *workers,
        env={"SMTPPROTO_CERT_TOOL": "openssl", "PATH": "/nonexistent"},
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "STARTTLS not offered" in result.stderr  # why: the certificate tool's words
    assert "smtpproto: error: --auth needs STARTTLS, and no certificate" in result.stderr
    assert "press Ctrl-C" not in result.stdout  # never served
