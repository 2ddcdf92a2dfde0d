"""``send`` TLS and AUTH options through the real CLI: ``--tls-sni``, the hints after a
TLS failure, several ``--auth`` mechanisms in preference order (against ``serve`` and
aiosmtpd)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller

from interop.peers import (
    AUTH_PASSWORD,
    AUTH_USER,
    _RecordingHandler,
    make_tls_material,
    start_aiosmtpd,
    stop_controller,
    track_connections,
)

from .helpers import ServeProcess, assert_clean_failure, free_port, run_cli

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


def _client_cert_server(tmp_path: Path) -> tuple[ssl.SSLContext, Path, Path, Path]:
    """An implicit-TLS server context that requires a client certificate from ``ca``,
    and that certificate's chain, key and the server CA as files."""
    ca = trustme.CA()
    server_cert = ca.issue_cert("localhost", "127.0.0.1")
    client_cert = ca.issue_cert("client.example.org")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    chain, key, ca_file = tmp_path / "client.pem", tmp_path / "client.key", tmp_path / "ca.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in client_cert.cert_chain_pems))
    key.write_bytes(client_cert.private_key_pem.bytes())
    ca.cert_pem.write_to_path(str(ca_file))
    return context, chain, key, ca_file


def test_client_certificate_is_presented(tmp_path: Path) -> None:
    context, chain, key, ca_file = _client_cert_server(tmp_path)
    port = free_port()
    handler = _RecordingHandler()
    server = track_connections(
        Controller(handler, hostname="127.0.0.1", port=port, ssl_context=context)
    )
    server.start()
    try:
        base = (
            "send", "--server", f"localhost:{port}", "--protocol", "ssmtp", "--cafile",
            str(ca_file), "--timeout", "10", *ENVELOPE,
        )  # fmt: skip
        good = run_cli(*base, "--tls-cert", str(chain), "--tls-key", str(key))
        without = run_cli(*base)
    finally:
        stop_controller(server)
    assert good.returncode == 0, good.stderr
    assert len(handler.messages) == 1
    assert without.returncode != 0 and "Traceback" not in without.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--auth", "EXTERNAL"), "--auth EXTERNAL needs --tls-cert"),
        (("--tls-key", "/nonexistent.key"), "--tls-key needs --tls-cert"),
        (("--tls-cert", "/nonexistent.pem"), "cannot load --tls-cert"),
        (("--tls-min-version", "1.1"), "invalid choice"),
    ],
)
def test_client_certificate_usage_errors(args: tuple[str, ...], fragment: str) -> None:
    result = run_cli("send", "--server", "127.0.0.1:9", *args, *ENVELOPE)
    assert_clean_failure(result, 2, fragment)


def test_minimum_tls_version_above_the_servers_is_exit_4(tmp_path: Path) -> None:
    tls = make_tls_material(tmp_path)
    context = tls.server_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    port = free_port()
    server = track_connections(
        Controller(_RecordingHandler(), hostname="127.0.0.1", port=port, ssl_context=context)
    )
    server.start()
    try:
        base = (
            "send", "--server", f"localhost:{port}", "--protocol", "ssmtp", "--cafile",
            str(tls.ca_path), "--timeout", "10", *ENVELOPE,
        )  # fmt: skip
        old = run_cli(*base)
        strict = run_cli(*base, "--tls-min-version", "1.3")
    finally:
        stop_controller(server)
    assert old.returncode == 0, old.stderr
    assert "TLSv1.2" in old.stdout
    assert_clean_failure(strict, 4)


def test_opportunistic_tls_that_fails_is_an_error_not_a_fallback() -> None:
    """swaks --tls-optional-strict: STARTTLS offered but the handshake fails -> stop
    (exit 4); never go on in cleartext after a failed upgrade (a downgrade)."""
    with ServeProcess() as serve:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{serve.port}", "--tls", "opportunistic", *ENVELOPE
        )
        server_side = serve.output()
    assert_clean_failure(result, 4, "certificate verify failed")
    assert "-> MAIL" not in result.stdout and "MAIL FROM" not in server_side
