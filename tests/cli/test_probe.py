"""``smtpproto probe``: the table and ``--json`` against the built-in server, and failures."""

from __future__ import annotations

import json

from .helpers import (
    OneLineServer,
    ScriptedSMTPServer,
    ServeProcess,
    assert_clean_failure,
    free_port,
    run_cli,
)

SERVE_ENV = {"SMTPPROTO_SERVE_AUTH": "alice:secret"}


def test_probe_table_with_trusted_certificate() -> None:
    with ServeProcess(env=SERVE_ENV) as serve:
        cert = serve.wait_for("STARTTLS certificate:").split(": ", 1)[1]
        result = run_cli("probe", f"127.0.0.1:{serve.port}", "--cafile", cert)
    assert result.returncode == 0, result.stderr
    rows = {}
    for line in result.stdout.splitlines():
        label, _, value = line.strip().partition("  ")
        if label:
            rows[label] = value.strip()
    assert rows["banner"] == "localhost ESMTP smtpproto"
    assert rows["STARTTLS"] == "offered, works"
    assert rows["TLS version"].startswith("TLSv1.")
    assert rows["certificate"] == "verified"
    assert rows["subject"] == "commonName=localhost"
    assert "days left" in rows["expires"]
    assert rows["AUTH"].split() == sorted(
        ["CRAM-MD5", "LOGIN", "PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"]
    )
    assert rows["SIZE limit"] == "33554432"
    for step in ("connect", "greeting", "ehlo", "starttls", "TLS handshake", "ehlo after TLS"):
        assert rows[f"time: {step}"].endswith(" ms")
    assert result.stderr == ""


def test_probe_json_parses() -> None:
    with ServeProcess(env=SERVE_ENV) as serve:
        cert = serve.wait_for("STARTTLS certificate:").split(": ", 1)[1]
        result = run_cli("probe", f"127.0.0.1:{serve.port}", "--cafile", cert, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["port"] == serve.port
    assert "STARTTLS" in report["extensions"]
    assert "AUTH" not in report["extensions"]  # only offered after TLS
    assert "STARTTLS" not in report["extensions_after_tls"]
    assert "PLAIN" in report["auth_mechanisms"]
    assert report["extensions"]["SIZE"] == ["33554432"]
    assert report["certificate_verified"] is True
    assert report["certificate"]["issuer"] == "commonName=localhost"
    assert report["error"] is None
    assert report["timings_ms"]["total"] > 0


def test_probe_untrusted_certificate_reports_and_exits_4() -> None:
    with ServeProcess() as serve:
        result = run_cli("probe", f"127.0.0.1:{serve.port}", "--json")
    assert result.returncode == 4, result.stderr
    report = json.loads(result.stdout)
    assert report["certificate_verified"] is False
    assert report["tls_version"].startswith("TLSv1.")
    assert "certificate verify failed" in report["error"]
    assert "SHA-256" in report["error"]
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_probe_without_starttls() -> None:
    with ServeProcess("--no-starttls") as serve:
        result = run_cli("probe", f"127.0.0.1:{serve.port}")
    assert result.returncode == 0, result.stderr
    assert "not offered" in result.stdout
    assert "TLS version" not in result.stdout


def test_probe_transcript_goes_to_stderr() -> None:
    with ServeProcess("--no-starttls") as serve:
        result = run_cli("probe", f"127.0.0.1:{serve.port}", "--json", "--transcript")
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)
    assert "-> EHLO" in result.stderr and "-> QUIT" in result.stderr


def test_probe_refused_connection_is_exit_3() -> None:
    result = run_cli("probe", f"127.0.0.1:{free_port()}")
    assert_clean_failure(result, 3, "cannot connect")
    assert result.stdout == ""


def test_probe_non_smtp_peer_is_exit_9() -> None:
    with OneLineServer(b"HTTP/1.1 400 Bad Request\r\n\r\n") as http:
        result = run_cli("probe", f"127.0.0.1:{http.port}", "--json")
    assert_clean_failure(result, 9, "protocol error")


def test_probe_flags_auth_offered_before_tls() -> None:
    ehlo = b"250-scripted\r\n250 AUTH PLAIN LOGIN\r\n"
    with ScriptedSMTPServer({"EHLO": ehlo}) as server:
        result = run_cli("probe", f"127.0.0.1:{server.port}")
    assert result.returncode == 0, result.stderr
    assert "AUTH before TLS  PLAIN LOGIN (in cleartext!)" in result.stdout
    assert "STARTTLS         not offered" in result.stdout


def test_probe_json_lists_auth_before_tls_as_empty_when_safe() -> None:
    with ServeProcess(env=SERVE_ENV) as serve:
        cert = serve.wait_for("STARTTLS certificate:").split(": ", 1)[1]
        result = run_cli("probe", f"127.0.0.1:{serve.port}", "--cafile", cert, "--json")
    assert json.loads(result.stdout)["auth_before_tls"] == []


def test_probe_reports_greeting_capabilities_before_and_after_tls_and_tls_details() -> None:
    with ServeProcess(env=SERVE_ENV) as serve:
        cert = serve.wait_for("STARTTLS certificate:").split(": ", 1)[1]
        table = run_cli("probe", f"127.0.0.1:{serve.port}", "--cafile", cert)
        result = run_cli("probe", f"127.0.0.1:{serve.port}", "--cafile", cert, "--json")
    assert result.returncode == 0 and table.returncode == 0, result.stderr + table.stderr
    report = json.loads(result.stdout)
    assert report["banner"] == ["localhost ESMTP smtpproto"]
    assert report["server_name"] == "localhost"
    assert "STARTTLS" in report["extensions"] and "PIPELINING" in report["extensions"]
    after = report["extensions_after_tls"]
    assert "STARTTLS" not in after and "PLAIN" in after["AUTH"]
    assert report["tls_version"].startswith("TLSv1.")
    assert report["tls_cipher"].endswith(" bits)")
    assert report["certificate"]["subject"] == "commonName=localhost"
    assert report["timings_ms"]["TLS handshake"] >= 0
    assert "after TLS" in table.stdout and "TLS cipher" in table.stdout
    assert "AUTH SCRAM-SHA-256" in table.stdout  # listed under "after TLS"
