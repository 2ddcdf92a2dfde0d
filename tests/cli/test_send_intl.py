"""``send`` with non-ASCII addresses (RFC 6531 SMTPUTF8; issue 11 item 8): decided after
EHLO like the library, against real servers with SMTPUTF8 (the built-in server,
aiosmtpd, Exim) and without it (aiosmtpd with ``enable_SMTPUTF8=False``, smtp-sink)."""

from __future__ import annotations

import re

from interop.peers import start_aiosmtpd, start_smtp_sink
from interop.peers_exim import start_exim

from .helpers import ServeProcess, assert_clean_failure, run_cli

SENDER = "jösé@example.org"
RECIPIENT = "bö@exämple.org"


def _send(port: int, *extra: str) -> list[str]:
    return [
        "send", "--server", f"127.0.0.1:{port}", "--tls", "none", "--body", "grüße",
        *extra,
    ]  # fmt: skip


def test_utf8_addresses_to_the_built_in_server() -> None:
    with ServeProcess("--no-starttls") as serve:
        result = run_cli(*_send(serve.port, "--from", SENDER, "--to", RECIPIENT))
        assert result.returncode == 0, result.stderr
        assert f"-> MAIL FROM:<{SENDER}>" in result.stdout
        assert " SMTPUTF8" in next(
            line for line in result.stdout.splitlines() if "-> MAIL FROM:" in line
        )
        assert f"-> RCPT TO:<{RECIPIENT}>" in result.stdout
        serve.wait_for("* stored")


def test_utf8_addresses_to_aiosmtpd_with_smtputf8() -> None:
    with start_aiosmtpd(smtputf8=True) as peer:
        result = run_cli(
            *_send(peer.port, "--from", SENDER, "--to", RECIPIENT, "--subject", "Grüße")
        )
        assert result.returncode == 0, result.stderr
        (message,) = peer.wait_for_messages(1)
    assert message.mail_from == SENDER
    assert list(message.rcpt_tos) == [RECIPIENT]
    # email.policy.SMTPUTF8: the headers carry UTF-8 as is, no encoded words
    assert f"From: {SENDER}".encode() in message.content
    assert "Subject: Grüße".encode() in message.content
    assert b"=?utf-8?" not in message.content.split(b"\r\n\r\n", 1)[0]


def test_utf8_addresses_to_exim() -> None:
    with start_exim() as peer:
        result = run_cli(
            "send", "--server", f"localhost:{peer.port}", "--cafile", str(peer.tls.ca_path),
            "--from", SENDER, "--to", "bob@example.org", "--body", "hi",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr + peer.log()
        (message,) = peer.wait_for_messages(1)
    assert f"~> MAIL FROM:<{SENDER}>" in result.stdout
    assert f"From: {SENDER}".encode() in message.content


def test_a_utf8_sender_to_a_server_without_smtputf8_is_one_line_exit_6() -> None:
    with start_aiosmtpd(smtputf8=False) as peer:
        result = run_cli(*_send(peer.port, "--from", SENDER, "--to", "bob@example.org"))
        assert_clean_failure(result, 6, "SMTPUTF8", SENDER)
        assert peer.messages == []
    assert "-> EHLO" in result.stdout  # decided after EHLO, not before connecting
    assert "-> MAIL" not in result.stdout
    assert "-> QUIT" in result.stdout


def test_a_utf8_recipient_to_smtp_sink_without_smtputf8_is_one_line_exit_7() -> None:
    with start_smtp_sink() as sink:
        result = run_cli(*_send(sink.port, "--from", "a@example.org", "--to", RECIPIENT))
    assert_clean_failure(result, 7, "SMTPUTF8", RECIPIENT)
    assert "-> MAIL" not in result.stdout


def test_ascii_addresses_still_use_the_plain_policy() -> None:
    with start_aiosmtpd(smtputf8=False) as peer:
        result = run_cli(
            *_send(
                peer.port, "--from", "a@example.org", "--to", "b@example.org", "--subject", "Grüße"
            )
        )
        assert result.returncode == 0, result.stderr
        (message,) = peer.wait_for_messages(1)
    assert re.search(rb"Subject: =\?utf-8\?", message.content)
    assert " SMTPUTF8" not in result.stdout


def test_default_subject_and_body_like_swaks() -> None:
    with start_aiosmtpd() as peer:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{peer.port}", "--tls", "none",
            "--from", "a@example.org", "--to", "b@example.org",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        (message,) = peer.wait_for_messages(1)
    head, _, body = message.content.partition(b"\r\n\r\n")
    date = re.search(rb"^Date: (.+)$", head, re.MULTILINE)
    assert date is not None
    assert b"Subject: test " + date.group(1).rstrip(b"\r") in head
    assert body == b"This is a test mailing from smtpproto.\r\n"
