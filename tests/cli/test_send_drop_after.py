"""``send --drop-after mail|rcpt|data`` (swaks' ``--drop-after``) through the real CLI:
the connection is closed after the stage's reply with the transaction open, no RSET and
no QUIT (``sendmail(stop_after=..., drop=True)``); swaks leaves the same commands, and
the built-in server, aiosmtpd and smtp-sink deliver nothing."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from interop.peers import start_aiosmtpd, start_smtp_sink

from .helpers import RUN_TIMEOUT, ScriptedSMTPServer, ServeProcess, run_cli

ENVELOPE = ("--from", "a@example.org", "--to", "b@example.org,c@example.org", "--body", "hi")
PIPELINING = b"250-scripted\r\n250 PIPELINING\r\n"
#: stage -> the verbs the peer receives, in order; nothing after them
EXPECTED = {
    "mail": ["EHLO", "MAIL"],
    "rcpt": ["EHLO", "MAIL", "RCPT", "RCPT"],
    "data": ["EHLO", "MAIL", "RCPT", "RCPT", "DATA"],
}


def _verbs(received: list[bytes]) -> list[str]:
    return [line[:4].decode().upper().rstrip() for line in received]


def _closed(server: ScriptedSMTPServer) -> bool:
    server.close()
    return not server._thread.is_alive()


def _note(stage: str) -> str:
    return f"== dropped the connection after {stage}, as asked (no QUIT)"


@pytest.mark.parametrize("pipelining", [False, True])
@pytest.mark.parametrize("stage", list(EXPECTED))
def test_drop_after_a_transaction_stage_sends_no_rset_or_quit(stage: str, pipelining: bool) -> None:
    flag = "--pipelining" if pipelining else "--no-pipelining"
    with ScriptedSMTPServer({"EHLO": PIPELINING}) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--tls", "none",
            "--drop-after", stage, flag, *ENVELOPE,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert _closed(server)  # the client closed: the peer's one session ended
    assert _verbs(server.received) == EXPECTED[stage]  # every reply was read first
    assert result.stdout.splitlines()[-1].endswith(_note(stage)), result.stdout
    assert not any(verb in result.stdout for verb in ("> RSET", "> QUIT"))


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
@pytest.mark.parametrize("stage", list(EXPECTED))
def test_swaks_drop_after_leaves_the_same_commands(stage: str) -> None:
    with ScriptedSMTPServer({}) as server:
        subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{server.port}", "--from", "a@example.org",
             "--to", "b@example.org,c@example.org", "--body", "hi", "--drop-after", stage],
            capture_output=True, timeout=RUN_TIMEOUT, check=False,
        )  # fmt: skip
        assert _closed(server)
    theirs = _verbs(server.received)
    with ScriptedSMTPServer({}) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--drop-after", stage, *ENVELOPE
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert _closed(server)
    assert _verbs(server.received) == theirs == EXPECTED[stage]


@pytest.mark.parametrize("stage", ["mail", "rcpt"])
def test_drop_after_against_the_built_in_server_delivers_nothing(stage: str) -> None:
    with ServeProcess() as serve:
        cert = serve.wait_for("STARTTLS certificate:").split(": ", 1)[1]
        result = run_cli(
            "send", "--server", f"localhost:{serve.port}", "--cafile", cert,
            "--drop-after", stage, *ENVELOPE,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        serve.wait_for("connection closed")
        server_side = serve.output()
    assert "MAIL FROM" in server_side and ("RCPT TO" in server_side) is (stage == "rcpt")
    assert "RSET" not in server_side and "QUIT" not in server_side
    assert "* stored" not in server_side
    assert result.stdout.splitlines()[-1].endswith(_note(stage))


@pytest.mark.parametrize("stage", ["mail", "rcpt"])
def test_drop_after_against_aiosmtpd_and_smtp_sink(stage: str) -> None:
    with start_aiosmtpd() as peer:
        result = run_cli(
            "send", "--server", f"{peer.host}:{peer.port}", "--tls", "none",
            "--drop-after", stage, *ENVELOPE,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert peer.messages == []
    assert result.stdout.splitlines()[-1].endswith(_note(stage))
    with start_smtp_sink() as sink:
        result = run_cli(
            "send", "--server", f"{sink.host}:{sink.port}", "--tls", "none",
            "--drop-after", stage, *ENVELOPE,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        # a whole message afterwards is the only one the sink stores
        again = run_cli("send", "--server", f"{sink.host}:{sink.port}", "--tls", "none", *ENVELOPE)
        assert again.returncode == 0, again.stdout + again.stderr
        assert len(sink.wait_for_messages(1)) == 1
    assert result.stdout.splitlines()[-1].endswith(_note(stage))
    assert not any(verb in result.stdout for verb in ("> RSET", "> QUIT"))
