"""``send`` TLS and AUTH options through the real CLI: ``--tls-sni``, the hints after a
TLS failure, several ``--auth`` mechanisms in preference order (against ``serve`` and
aiosmtpd)."""

from __future__ import annotations

from pathlib import Path

from interop.peers import AUTH_PASSWORD, AUTH_USER, make_tls_material, start_aiosmtpd

from .helpers import ServeProcess, assert_clean_failure, run_cli

SERVE_ENV = {"SMTPPROTO_SERVE_AUTH": "alice:secret"}
ENVELOPE = ("--from", "a@example.org", "--to", "b@example.org", "--body", "hi")


def _cert(serve: ServeProcess) -> str:
    return serve.wait_for("STARTTLS certificate:").split(": ", 1)[1]


def test_tls_sni_names_the_host_to_verify() -> None:
    with ServeProcess() as serve:
        cert = _cert(serve)
        # the built-in server's certificate is for "localhost": connecting by address
        # verifies only when the name to check is given
        by_address = ("send", "--server", f"127.0.0.1:{serve.port}", "--tls", "required")
        good = run_cli(*by_address, "--cafile", cert, "--tls-sni", "localhost", *ENVELOPE)
        wrong = run_cli(*by_address, "--cafile", cert, "--tls-sni", "other.test", *ENVELOPE)
    assert good.returncode == 0, good.stderr
    assert "== TLS established" in good.stdout
    assert_clean_failure(wrong, 4, "other.test")


def test_certificate_failure_hints_at_cafile() -> None:
    with ServeProcess() as serve:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{serve.port}", "--tls", "required", *ENVELOPE
        )
    assert_clean_failure(result, 4, "certificate verify failed", "--cafile", "--tls-sni")


def test_implicit_tls_against_a_starttls_port_hints_at_required() -> None:
    with ServeProcess() as serve:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{serve.port}", "--tls", "implicit",
            "--timeout", "10", *ENVELOPE,
        )  # fmt: skip
    assert_clean_failure(result, 4, "not a TLS port", "--tls required")


def test_auth_mechanisms_in_preference_order() -> None:
    with ServeProcess(env=SERVE_ENV) as serve:
        cert = _cert(serve)
        base = (
            "send", "--server", f"localhost:{serve.port}", "--cafile", cert,
            "--user", "alice", "--password-env", "PW", *ENVELOPE,
        )  # fmt: skip
        first = run_cli(*base, "--auth", "XOAUTH9,LOGIN,PLAIN", env={"PW": "secret"})
        second = run_cli(*base, "--auth", "plain,login", env={"PW": "secret"})
    assert_clean_failure(first, 2, "unsupported AUTH mechanism 'XOAUTH9'")
    assert second.returncode == 0, second.stderr
    assert "~> AUTH PLAIN <redacted>" in second.stdout


def test_auth_first_offered_of_the_list_is_used(tmp_path: Path) -> None:
    tls = make_tls_material(tmp_path)
    with start_aiosmtpd(tls=tls, auth=True) as peer:  # offers LOGIN and PLAIN after TLS
        base = (
            "send", "--server", f"localhost:{peer.port}", "--cafile", str(tls.ca_path),
            "--user", AUTH_USER, "--password-env", "PW", *ENVELOPE,
        )  # fmt: skip
        used = run_cli(*base, "--auth", "CRAM-MD5,LOGIN,PLAIN", env={"PW": AUTH_PASSWORD})
        none = run_cli(*base, "--auth", "CRAM-MD5,SCRAM-SHA-256", env={"PW": AUTH_PASSWORD})
    assert used.returncode == 0, used.stderr
    assert "~> AUTH LOGIN" in used.stdout
    assert_clean_failure(none, 5, "authentication not possible", "LOGIN PLAIN")
