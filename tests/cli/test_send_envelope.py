"""``send`` envelope options (MAIL/RCPT parameters) through the real CLI: DSN (RFC 3461)
to Exim, which offers it, and to aiosmtpd, which does not; ``--body-type``,
``--smtputf8``, ``--size``, ``--requiretls``; bad values before connecting."""

from __future__ import annotations

import pytest

from interop.peers import start_aiosmtpd
from interop.peers_exim import start_exim

from .helpers import ScriptedSMTPServer, assert_clean_failure, run_cli

ENVELOPE = ("--from", "a@example.org", "--to", "b@example.org", "--body", "hi")


def _line(stdout: str, start: str) -> str:
    return next(line for line in stdout.splitlines() if start in line)


def test_dsn_options_to_exim() -> None:
    with start_exim() as peer:
        result = run_cli(
            "send", "--server", f"localhost:{peer.port}", "--cafile", str(peer.tls.ca_path),
            "--dsn-notify", "success,failure", "--dsn-ret", "HDRS", "--dsn-envid", "id+1 x",
            "--size", "5000", "--dsn-orcpt", *ENVELOPE,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr + peer.log()
        peer.wait_for_messages(1)
    mail = _line(result.stdout, "~> MAIL FROM:")
    assert " RET=HDRS" in mail and " ENVID=id+2B1+20x" in mail and " SIZE=5000" in mail
    assert _line(result.stdout, "~> RCPT TO:").endswith(
        "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.org"
    )


def test_smtputf8_and_body_type_switches_to_exim() -> None:
    with start_exim() as peer:
        result = run_cli(
            "send", "--server", f"localhost:{peer.port}", "--cafile", str(peer.tls.ca_path),
            "--smtputf8", "--body-type", "8BITMIME", *ENVELOPE,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr + peer.log()
    mail = _line(result.stdout, "~> MAIL FROM:")
    assert " BODY=8BITMIME" in mail and " SMTPUTF8" in mail


@pytest.mark.parametrize(
    "dsn",
    [
        ("--dsn-ret", "FULL"),
        ("--dsn-envid", "id-1"),
        ("--dsn-notify", "success,failure"),
        ("--dsn-notify", "never"),
        ("--dsn-orcpt",),
    ],
)
def test_dsn_to_a_server_without_dsn_is_exit_6_before_mail(dsn: tuple[str, ...]) -> None:
    with start_aiosmtpd() as peer:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{peer.port}", "--tls", "none", *dsn, *ENVELOPE,
        )  # fmt: skip
        assert peer.messages == []
    assert_clean_failure(result, 6, "does not offer DSN", "--dsn-*")
    assert "-> MAIL" not in result.stdout


def test_requiretls_without_the_extension_is_exit_6() -> None:
    with ScriptedSMTPServer({}) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--tls", "none", "--requiretls",
            *ENVELOPE,
        )  # fmt: skip
    assert_clean_failure(result, 6, "REQUIRETLS")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--dsn-notify", "never,success"), "NEVER alone"),
        (("--dsn-notify", "sometimes"), "notify"),
        (("--dsn-envid", "bad\x01id"), "envid"),
        (("--dsn-ret", "ALL"), "invalid choice"),
        (("--size=-5",), "not a size"),
        (("--body-type", "9BIT"), "invalid choice"),
    ],
)
def test_bad_envelope_options_are_usage_errors_before_connecting(
    args: tuple[str, ...], fragment: str
) -> None:
    with ScriptedSMTPServer({}) as server:
        result = run_cli("send", "--server", f"127.0.0.1:{server.port}", *args, *ENVELOPE)
        assert server.received == []
    assert_clean_failure(result, 2, fragment)
