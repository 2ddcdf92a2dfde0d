"""``send --protocol smtp|esmtp|lmtp|ssmtp``, ``-4``/``-6``, ``--local-interface`` and
``--unix-socket`` through the real CLI against real servers on 127.0.0.1/::1 (the
built-in server in LMTP mode, aiosmtpd over implicit TLS and on a UNIX socket)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller, UnixSocketController

from interop.peers import (
    _RecordingHandler,
    make_tls_material,
    stop_controller,
    track_connections,
)
from smtpproto.builtin_server.testing import run_server

from .helpers import ScriptedSMTPServer, ServeProcess, assert_clean_failure, free_port, run_cli

ENVELOPE = ("--from", "a@example.org", "--body", "hi")


@contextmanager
def _aiosmtpd(controller: type[Any], **options: Any) -> Iterator[Any]:
    handler = _RecordingHandler()
    server = track_connections(controller(handler, ready_timeout=10.0, **options))
    server.start()
    try:
        yield handler
    finally:
        stop_controller(server)


def test_lmtp_reports_each_recipients_final_reply() -> None:
    with run_server(lmtp=True, starttls=False) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--protocol", "lmtp",
            "--to", "a@example.org,b@example.org", *ENVELOPE,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        (stored,) = server.wait_for_messages(1, timeout=10.0)
    assert "-> LHLO " in result.stdout
    assert "-> EHLO" not in result.stdout
    assert list(stored.recipients) == ["a@example.org", "b@example.org"]
    assert "message accepted for 2 recipient(s)" in result.stdout


def test_lmtp_a_refused_recipient_after_the_content_is_exit_7() -> None:
    replies = {
        "LHLO": b"250-scripted\r\n250 PIPELINING\r\n",
        ".": b"250 2.0.0 a ok\r\n452 4.2.2 b over quota\r\n",
    }
    with ScriptedSMTPServer(replies) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--protocol", "lmtp",
            "--to", "a@example.org,b@example.org", *ENVELOPE,
        )  # fmt: skip
    assert_clean_failure(result, 7, "delivered to 1, but 1 of 2", "over quota")


def test_protocol_smtp_sends_helo_and_no_extension() -> None:
    with ServeProcess("--no-starttls") as serve:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{serve.port}", "--protocol", "smtp",
            "--to", "b@example.org", *ENVELOPE,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        serve.wait_for("* stored")
    assert "-> HELO " in result.stdout
    assert "-> EHLO" not in result.stdout
    mail = next(line for line in result.stdout.splitlines() if "-> MAIL FROM:" in line)
    assert mail.endswith("-> MAIL FROM:<a@example.org>")  # no SIZE=, no BODY=
    assert not any("-> BDAT" in line for line in result.stdout.splitlines())


def test_protocol_smtp_refuses_8bit_content_before_mail() -> None:
    with ServeProcess("--no-starttls") as serve:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{serve.port}", "--protocol", "smtp",
            "--to", "b@example.org", "--from", "a@example.org", "--body", "grüße",
        )  # fmt: skip
    assert_clean_failure(result, 8, "8BITMIME")


def test_protocol_ssmtp_is_implicit_tls(tmp_path: Path) -> None:
    tls = make_tls_material(tmp_path)
    port = free_port()
    with _aiosmtpd(
        Controller, hostname="127.0.0.1", port=port, ssl_context=tls.server_context()
    ) as handler:
        result = run_cli(
            "send", "--server", f"localhost:{port}", "--protocol", "ssmtp",
            "--cafile", str(tls.ca_path), "--to", "b@example.org", *ENVELOPE,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    assert "== TLS established: TLSv1." in result.stdout
    assert "~> EHLO" in result.stdout and "-> EHLO" not in result.stdout
    assert len(handler.messages) == 1


def test_protocol_ssmtp_with_another_tls_mode_is_a_usage_error() -> None:
    result = run_cli("send", "--protocol", "ssmtp", "--tls", "required", "--server", "x:1")
    assert_clean_failure(result, 2, "implicit TLS")


def test_unix_socket() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "smtp.sock")
        with _aiosmtpd(UnixSocketController, unix_socket=path) as handler:
            result = run_cli(
                "send", "--unix-socket", path, "--tls", "none", "--to", "b@example.org",
                *ENVELOPE,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
        missing = run_cli(
            "send", "--unix-socket", str(Path(folder) / "none.sock"), "--to", "b@example.org",
            *ENVELOPE,
        )  # fmt: skip
    assert f"== connecting to {path}" in result.stdout
    assert len(handler.messages) == 1
    assert_clean_failure(missing, 3, "none.sock")


@pytest.mark.parametrize(("flag", "host"), [("-4", "127.0.0.1"), ("-6", "::1")])
def test_ip_version_flags(flag: str, host: str) -> None:
    """The literal of the asked version connects; the other version finds no address
    (``localhost`` is not used: not every /etc/hosts names ::1 so)."""
    port = free_port()
    server = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with _aiosmtpd(Controller, hostname=host, port=port) as handler:
        good = run_cli(
            "send", flag, "--server", server, "--tls", "none", "--to", "b@example.org",
            *ENVELOPE,
        )  # fmt: skip
        other = "-6" if flag == "-4" else "-4"
        bad = run_cli(
            "send", other, "--server", server, "--tls", "none", "--to", "b@example.org",
            *ENVELOPE,
        )  # fmt: skip
        assert good.returncode == 0, good.stderr
        assert len(handler.messages) == 1
    assert f"== connected to {host} port {port}" in good.stdout
    version = "IPv6" if other == "-6" else "IPv4"
    assert_clean_failure(bad, 3, f"over {version}")


def test_ip_version_flags_exclude_each_other() -> None:
    assert_clean_failure(run_cli("send", "-4", "-6", "--server", "x"), 2, "not allowed with")


def test_local_interface() -> None:
    with ServeProcess("--no-starttls") as serve:
        source = free_port()
        result = run_cli(
            "send", "--server", f"127.0.0.1:{serve.port}", "--local-interface",
            f"127.0.0.1:{source}", "--to", "b@example.org", *ENVELOPE,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        line = serve.wait_for("connection from")
    assert f"('127.0.0.1', {source})" in line


def test_local_interface_that_is_not_ours_is_a_usage_error() -> None:
    result = run_cli(
        "send", "--server", "127.0.0.1:9", "--local-interface", "192.0.2.1",
        "--to", "b@example.org", *ENVELOPE,
    )  # fmt: skip
    assert_clean_failure(result, 2, "cannot use local address 192.0.2.1")


@pytest.mark.parametrize(
    ("stage", "seen"),
    [("connect", "== connected to"), ("ehlo", "<- 250"), ("auth", "<~ 235"), ("dot", "<~ 250")],
)
def test_drop_after_closes_without_quit(stage: str, seen: str) -> None:
    env = {"SMTPPROTO_SERVE_AUTH": "alice:secret"}
    with ServeProcess(env=env) as serve:
        cert = serve.wait_for("STARTTLS certificate:").split(": ", 1)[1]
        result = run_cli(
            "send", "--server", f"localhost:{serve.port}", "--cafile", cert, "--user", "alice",
            "--password-env", "PW", "--drop-after", stage, "--to", "b@example.org", *ENVELOPE,
            env={"PW": "secret"},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        serve.wait_for("connection closed")
        server_side = serve.output()
    lines = result.stdout.splitlines()
    note = f"== dropped the connection after {stage}, as asked (no QUIT)"
    assert any(line.endswith(note) for line in lines[-2:]), result.stdout
    assert any(seen in line for line in lines)
    assert not any(line.endswith(("-> QUIT", "~> QUIT")) for line in lines)
    assert "QUIT" not in server_side
    assert ("* stored" in server_side) is (stage == "dot")


def test_drop_after_and_quit_after_exclude_each_other() -> None:
    result = run_cli("send", "--drop-after", "ehlo", "--quit-after", "ehlo", "--server", "x")
    assert_clean_failure(result, 2, "not allowed with")


def test_drop_after_an_unknown_stage_is_a_usage_error() -> None:
    result = run_cli("send", "--drop-after", "lunch", "--server", "x")
    assert_clean_failure(result, 2, "invalid choice")


@pytest.mark.parametrize("answer", [b"", b"421 4.3.2 shutting down\r\n"])
def test_a_failing_quit_after_delivery_is_a_note_not_an_error(answer: bytes) -> None:
    """The message was queued, then QUIT got a close or a 421 instead of 221 (RFC 5321
    §4.1.1.10): exit 0 with the delivery reported, the QUIT's failure a note. An error
    exit (with a 421's "treat the open transaction as failed" hint) read as a failed
    delivery, and a retry sent the message twice."""
    with ScriptedSMTPServer({"QUIT": answer}) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--tls", "none",
            "--to", "b@example.org", *ENVELOPE,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "message accepted for 1 recipient(s)" in result.stdout
    assert "QUIT" in result.stdout + result.stderr
