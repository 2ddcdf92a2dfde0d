"""``send --drop-after-send STAGE`` (swaks' option) through the real CLI: a recording
peer on 127.0.0.1 sees the stage's command as the last line and then the connection
closed, with no QUIT and no RSET; swaks itself leaves the same commands."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .helpers import (
    RUN_TIMEOUT,
    ScriptedSMTPServer,
    ServeProcess,
    assert_clean_failure,
    run_cli,
)

ENVELOPE = ("--from", "a@example.org", "--to", "b@example.org,c@example.org", "--body", "hi")
PIPELINING = b"250-scripted\r\n250 PIPELINING\r\n"

#: stage -> the verbs the peer receives, in order, the last being the stage's command
EXPECTED = {
    "ehlo": ["EHLO"],
    "mail": ["EHLO", "MAIL"],
    "rcpt": ["EHLO", "MAIL", "RCPT"],
    "data": ["EHLO", "MAIL", "RCPT", "RCPT", "DATA"],
    "dot": ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "<content>", "."],
}
#: with --pipelining: MAIL and the RCPTs (and DATA) are one write, which goes whole
PIPELINED = {**EXPECTED, "rcpt": ["EHLO", "MAIL", "RCPT", "RCPT"]}


def _verbs(received: list[bytes]) -> list[str]:
    """The command verbs of ``received``; the content's lines as one ``<content>``."""
    verbs: list[str] = []
    for line in received:
        if verbs[-1:] == ["DATA"] or verbs[-1:] == ["<content>"]:
            if line == b".\r\n":
                verbs.append(".")
            elif verbs[-1] != "<content>":
                verbs.append("<content>")
        else:
            verbs.append(line[:4].decode())
    return verbs


def _closed(server: ScriptedSMTPServer) -> bool:
    """Whether the peer saw the end of the connection (its one session returned)."""
    server.close()
    return not server._thread.is_alive()


@pytest.mark.parametrize("pipelining", [False, True])
@pytest.mark.parametrize("stage", list(EXPECTED))
def test_drop_after_send_closes_after_the_command(stage: str, pipelining: bool) -> None:
    """The server offers PIPELINING; it is used only with ``--pipelining``."""
    expected = PIPELINED[stage] if pipelining else EXPECTED[stage]
    flag = ("--pipelining",) if pipelining else ()
    with ScriptedSMTPServer({"EHLO": PIPELINING}) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--tls", "none",
            "--drop-after-send", stage, *flag, *ENVELOPE,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert _closed(server)
    lines = result.stdout.splitlines()
    sent = [
        line.split("-> ", 1)[1][:4] for line in lines if "-> " in line and "<content" not in line
    ]
    assert [verb for verb in expected if verb != "<content>"] == sent, result.stdout
    if pipelining:  # one write of MAIL, RCPTs (and DATA): the peer's reset after the
        # client closed may discard what it had not read yet, so check a prefix
        assert expected[: len(server.received)] == _verbs(server.received)
    else:  # each command waited for its reply: the peer read every line
        assert _verbs(server.received) == expected
    note = f"== dropped the connection after sending {stage}, before its reply, as asked"
    assert result.stdout.splitlines()[-1].endswith(note), result.stdout
    assert "QUIT" not in result.stdout


def test_drop_after_send_connect_sends_nothing() -> None:
    with ScriptedSMTPServer({}) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--drop-after-send", "connect",
            *ENVELOPE,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert _closed(server)
    assert server.received == []


def test_drop_after_send_with_helo_only_protocol() -> None:
    with ScriptedSMTPServer({}) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--protocol", "smtp",
            "--drop-after-send", "ehlo", *ENVELOPE,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert _closed(server)
    assert [line[:5] for line in server.received] == [b"HELO "]


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
@pytest.mark.parametrize("stage", ["mail", "rcpt", "data", "dot"])
def test_swaks_leaves_the_same_commands(stage: str) -> None:
    with ScriptedSMTPServer({}) as server:
        subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{server.port}", "--from", "a@example.org",
             "--to", "b@example.org,c@example.org", "--body", "hi",
             "--drop-after-send", stage],
            capture_output=True, timeout=RUN_TIMEOUT, check=False,
        )  # fmt: skip
        assert _closed(server)
    assert _verbs(server.received) == EXPECTED[stage]


@pytest.mark.parametrize(
    ("stage", "options", "code"), [("tls", ("--tls", "none"), 4), ("auth", (), 5)]
)
def test_a_stage_the_session_never_reaches_is_an_error(
    stage: str, options: tuple[str, ...], code: int
) -> None:
    with ScriptedSMTPServer({}) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--drop-after-send", stage,
            *options, *ENVELOPE,
        )  # fmt: skip
        assert _closed(server)
    assert_clean_failure(result, code, f"--drop-after-send {stage}", "never sent")
    assert not any(line.startswith((b"QUIT", b"RSET", b"MAIL")) for line in server.received)


@pytest.mark.parametrize("stage", ["data", "dot"])
def test_drop_after_send_data_or_dot_is_not_with_chunking(stage: str) -> None:
    result = run_cli(
        "send", "--server", "127.0.0.1:9", "--drop-after-send", stage, "--chunking", *ENVELOPE
    )
    assert_clean_failure(result, 2, "not with --chunking")


def test_drop_after_send_excludes_the_other_stops() -> None:
    result = run_cli("send", "--drop-after-send", "mail", "--drop-after", "ehlo", "--server", "x")
    assert_clean_failure(result, 2, "not allowed with")


@pytest.mark.parametrize(("stage", "last"), [("tls", "-> STARTTLS"), ("auth", "~> AUTH ")])
def test_drop_after_send_tls_and_auth_against_the_built_in_server(stage: str, last: str) -> None:
    env = {"SMTPPROTO_SERVE_AUTH": "alice:secret"}
    with ServeProcess(env=env) as serve:
        cert = serve.wait_for("STARTTLS certificate:").split(": ", 1)[1]
        result = run_cli(
            "send", "--server", f"localhost:{serve.port}", "--cafile", cert, "--user", "alice",
            "--password-env", "PW", "--drop-after-send", stage, *ENVELOPE, env={"PW": "secret"},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        serve.wait_for("connection closed")
        server_side = serve.output()
    lines = result.stdout.splitlines()
    assert last in lines[-2], result.stdout
    assert lines[-1].endswith(
        f"dropped the connection after sending {stage}, before its reply, as asked"
    )
    assert "QUIT" not in server_side
    assert "MAIL" not in result.stdout
