"""``smtpproto send`` end to end: the built-in demo, a ``serve`` subprocess, and every
failing stage with its documented exit code (one line on stderr, never a traceback)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .helpers import (
    OneLineServer,
    ScriptedSMTPServer,
    ServeProcess,
    assert_clean_failure,
    free_port,
    run_cli,
)

RECEIVED = "---- the message as the built-in server received it"


def _lines(text: str) -> list[str]:
    """Transcript lines without their time stamps."""
    return [re.sub(r"^\[\s*\d+\.\d{3}s\] ", "", line) for line in text.splitlines()]


def test_demo_shows_a_whole_session_and_the_received_message() -> None:
    result = run_cli("send")
    assert result.returncode == 0, result.stderr
    lines = _lines(result.stdout)
    assert "<- 220 localhost ESMTP smtpproto" in lines
    assert "-> STARTTLS" in lines
    tls_note = next(line for line in lines if line.startswith("== TLS established: TLSv1."))
    after_tls = lines[lines.index(tls_note) + 1 :]
    assert after_tls[0].startswith("~> EHLO ")
    assert any(line.startswith("~> AUTH SCRAM-SHA-256") for line in after_tls)
    assert "<~ 235 2.7.0 Authentication successful" in after_tls
    assert "~> MAIL FROM:<newcomer@example.org> SIZE=" in "\n".join(after_tls)
    assert "~> RCPT TO:<friend@example.com>" in after_tls
    assert any(line.startswith("~> BDAT ") and line.endswith(" LAST") for line in after_tls)
    # pipelined: RCPT is written before the reply to MAIL arrives
    assert after_tls.index("~> RCPT TO:<friend@example.com>") < next(
        i for i, line in enumerate(after_tls) if line.startswith("<~ 250 2.1.0")
    )
    assert not any(line.startswith("-> MAIL") for line in lines)  # nothing in cleartext
    received = result.stdout.split(RECEIVED, 1)[1]
    assert "Subject: Hello from smtpproto" in received
    assert "From: newcomer@example.org" in received
    assert "---- end of message" in received
    assert "Traceback" not in result.stderr


def test_demo_secrets_are_redacted() -> None:
    result = run_cli("send", "--auth", "PLAIN")
    assert result.returncode == 0, result.stderr
    lines = _lines(result.stdout)
    assert "~> AUTH PLAIN <redacted>" in lines
    assert "<~ 235 2.7.0 Authentication successful" in lines


def test_demo_without_chunking_or_pipelining_uses_data() -> None:
    result = run_cli("send", "--no-chunking", "--no-pipelining", "--subject", "plain DATA")
    assert result.returncode == 0, result.stderr
    lines = _lines(result.stdout)
    assert "~> DATA" in lines
    assert any(line.startswith("<~ 354") for line in lines)
    assert not any(line.startswith("~> BDAT") for line in lines)
    mail = lines.index(next(line for line in lines if line.startswith("~> MAIL FROM")))
    assert lines[mail + 1].startswith("<~ 250 2.1.0")  # one by one: reply before RCPT
    assert "Subject: plain DATA" in result.stdout.split(RECEIVED, 1)[1]


def test_demo_message_options(tmp_path: Path) -> None:
    attachment = tmp_path / "report.csv"
    attachment.write_text("a,b\n1,2\n")
    result = run_cli(
        "send", "--demo", "--from", "Ann <ann@example.org>", "--to", "bob@example.com",
        "--cc", "carol@example.com", "--bcc", "dave@example.com",
        "--header", "X-Test: yes", "--subject", "Grüße", "--body", "-",
        "--attach", str(attachment),
        stdin="Body from stdin.\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = _lines(result.stdout)
    for rcpt in ("bob@example.com", "carol@example.com", "dave@example.com"):
        assert f"~> RCPT TO:<{rcpt}>" in lines
    assert "~> MAIL FROM:<ann@example.org> SIZE=" in "\n".join(lines)
    received = result.stdout.split(RECEIVED, 1)[1]
    assert "for <bob@example.com>, <carol@example.com>, <dave@example.com>" in received
    headers = received.split("\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert not any(line.lower().startswith("bcc:") or "dave@" in line for line in headers)
    assert "X-Test: yes" in received
    assert "Subject: =?utf-8?" in received
    assert "Body from stdin." in received
    assert 'filename="report.csv"' in received


@pytest.mark.parametrize(
    ("stage", "last", "absent", "seen"),
    [
        ("connect", "== quit after connect, as asked", "<- 220", "== connected to"),
        ("greeting", "== quit after greeting, as asked", "-> EHLO", "<- 220 "),
        ("ehlo", "== quit after ehlo, as asked", "-> STARTTLS", "<- 250 AUTH"),
        ("tls", "== quit after tls, as asked", "~> AUTH", "== TLS established: TLSv1."),
        ("auth", "== quit after auth, as asked", "~> MAIL", "<~ 235 "),
        (
            "mail",
            "== quit after mail, as asked: transaction reset, nothing sent",
            "~> RCPT",
            "~> RSET",
        ),
        (
            "rcpt",
            "== quit after rcpt, as asked: transaction reset, nothing sent",
            "~> DATA",
            "~> RSET",
        ),
        (
            "data",
            "== quit after data (354), as asked: connection closed, the content was not sent",
            "~> QUIT",
            "<~ 354 ",
        ),
    ],
)
def test_demo_quit_after(stage: str, last: str, absent: str, seen: str) -> None:
    result = run_cli("send", "--quit-after", stage)
    assert result.returncode == 0, result.stderr
    lines = _lines(result.stdout)
    assert lines[-1] == last
    assert not any(line.startswith(absent) for line in lines)
    assert any(line.startswith(seen) for line in lines)
    assert not any(line.startswith(("~> BDAT", "~> Subject", "-> Subject")) for line in lines)
    assert RECEIVED not in result.stdout
    if stage == "data":
        assert lines[-2].startswith("<~ 354 ")
    elif stage != "connect":
        assert lines[-3].endswith("QUIT")


def test_send_to_a_serve_subprocess(tmp_path: Path) -> None:
    env = {"SMTPPROTO_SERVE_AUTH": "alice:correct horse", "PW": "correct horse"}
    with ServeProcess(env=env) as serve:
        cert = serve.wait_for("STARTTLS certificate:").split(": ", 1)[1]
        result = run_cli(
            "send", "--server", f"127.0.0.1:{serve.port}", "--tls", "required",
            "--cafile", cert, "--user", "alice", "--password-env", "PW",
            "--from", "alice@example.org", "--to", "bob@example.com",
            "--subject", "via serve", "--body", "Hello through serve.",
            env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        serve.wait_for("---- end of message")
        assert serve.stop() == 0
    output = serve.output()
    assert "Subject: via serve" in output
    assert "Hello through serve." in output
    assert "correct horse" not in result.stdout + output


def test_wrong_password_is_exit_5() -> None:
    env = {"SMTPPROTO_SERVE_AUTH": "alice:right", "PW": "wrong"}
    with ServeProcess(env=env) as serve:
        cert = serve.wait_for("STARTTLS certificate:").split(": ", 1)[1]
        result = run_cli(
            "send", "--server", f"127.0.0.1:{serve.port}", "--cafile", cert,
            "--user", "alice", "--password-env", "PW", "--auth", "PLAIN",
            "--to", "bob@example.com",
            env=env,
        )  # fmt: skip
    assert_clean_failure(result, 5, "AUTH refused", "535")
    assert "wrong" not in result.stdout + result.stderr


def test_a_password_env_with_undecodable_octets_is_exit_5_never_shown() -> None:
    """The variable's octet 0xFF reaches Python as a lone surrogate (surrogateescape):
    PLAIN, LOGIN and CRAM-MD5 raised UnicodeEncodeError, exit 70 'this is a bug' (its
    ``.object`` the password); now exit 5 before AUTH is sent, as SCRAM already did."""
    password = "S3cretUndecodable"
    env = {"SMTPPROTO_SERVE_AUTH": "alice:right", "PW": password + "\udcff"}
    with ServeProcess(env=env) as serve:
        cert = serve.wait_for("STARTTLS certificate:").split(": ", 1)[1]
        for auth in ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"):
            for extra in ((), ("--debug",)):
                result = run_cli(
                    "send", "--server", f"127.0.0.1:{serve.port}", "--cafile", cert,
                    "--user", "alice", "--password-env", "PW", "--auth", auth,
                    "--to", "bob@example.com", *extra,
                    env=env,
                )  # fmt: skip
                assert result.returncode == 5, (auth, extra, result.stderr)
                assert "this is a bug" not in result.stderr
                assert "UnicodeEncodeError" not in result.stderr
                assert extra or "Traceback" not in result.stderr
                assert password not in result.stdout + result.stderr
        assert serve.stop() == 0
    assert "C: AUTH" not in serve.output() and "-> AUTH" not in serve.output()


def test_untrusted_certificate_is_exit_4() -> None:
    with ServeProcess() as serve:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{serve.port}", "--tls", "required",
            "--to", "bob@example.com",
        )  # fmt: skip
    assert_clean_failure(result, 4, "certificate verify failed")


def test_insecure_skips_verification_loudly() -> None:
    with ServeProcess() as serve:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{serve.port}", "--tls", "required",
            "--insecure", "--to", "bob@example.com",
        )  # fmt: skip
        serve.wait_for("---- end of message")
    assert result.returncode == 0, result.stderr
    assert "WARNING" in result.stderr and "NOT verified" in result.stderr


def test_starttls_required_but_not_offered_is_exit_4() -> None:
    with ServeProcess("--no-starttls") as serve:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{serve.port}", "--tls", "required",
            "--to", "bob@example.com",
        )  # fmt: skip
    assert_clean_failure(result, 4)


def test_refused_connection_is_exit_3() -> None:
    port = free_port()
    result = run_cli("send", "--server", f"127.0.0.1:{port}", "--to", "a@example.org")
    assert_clean_failure(result, 3, "cannot connect", str(port))


def test_unknown_host_is_exit_3() -> None:
    result = run_cli("send", "--server", "no-such-host.invalid", "--to", "a@example.org")
    assert_clean_failure(result, 3, "unknown host")


def test_a_peer_that_is_not_smtp_is_exit_9() -> None:
    with OneLineServer(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") as http:
        result = run_cli("send", "--server", f"127.0.0.1:{http.port}", "--to", "a@example.org")
    assert_clean_failure(result, 9, "protocol error")


def test_a_silent_server_is_exit_10() -> None:
    with OneLineServer(b"", linger=15.0) as silent:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{silent.port}", "--to", "a@example.org",
            "--timeout", "1",
        )  # fmt: skip
    assert_clean_failure(result, 10, "timed out", "greeting")


@pytest.mark.parametrize(
    ("replies", "code", "fragment"),
    [
        ({"MAIL": b"550 5.7.1 sender rejected\r\n"}, 6, "MAIL refused"),
        ({"RCPT": b"550 5.1.1 no such user\r\n"}, 7, "recipient(s) refused"),
        ({"DATA": b"554 5.7.0 no thanks\r\n"}, 8, "DATA refused"),
        ({".": b"552 5.3.4 too big\r\n"}, 8, "DATA refused"),
        ({".": b""}, 11, "delivery status unknown"),
        ({"EHLO": b"554 go away\r\n", "HELO": b"554 go away\r\n"}, 9, "refused"),
    ],
)
def test_refusal_per_stage(replies: dict[str, bytes], code: int, fragment: str) -> None:
    with ScriptedSMTPServer(replies) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--tls", "none",
            "--to", "a@example.org",
        )  # fmt: skip
        received = b"".join(server.received)
    assert_clean_failure(result, code, fragment)
    if code in (6, 7, 8):  # a refusal: explained, and the session ends politely
        assert "== hint: 5" in result.stdout
        assert "What to do:" in result.stdout
        assert received.endswith(b"QUIT\r\n")


def test_some_recipients_refused_is_exit_7_after_delivery() -> None:
    replies: dict[str, bytes | list[bytes]] = {
        "RCPT": [b"250 ok\r\n", b"550 5.1.1 no such user\r\n"]
    }
    with ScriptedSMTPServer(replies) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--tls", "none",
            "--to", "a@example.org", "--to", "b@example.org",
        )  # fmt: skip
        received = b"".join(server.received)
    assert_clean_failure(result, 7, "delivered to 1", "b@example.org")
    assert b"\r\n.\r\n" in received  # the content was sent for the accepted one


def test_the_connection_target_never_shows_the_password() -> None:
    """``_Target`` (where ``send`` connects, with the AUTH credentials) is a dataclass:
    its repr, as a debugger, a log of locals or an error report shows it, had the
    password."""
    import ssl

    from smtpproto.cli.send import _Target
    from smtpproto.client_engine.config import TLSPolicy

    target = _Target("h", 25, TLSPolicy.NONE, ssl.create_default_context(), "u", "S3cretCliPW")
    assert "S3cretCliPW" not in repr(target) and target.password == "S3cretCliPW"
