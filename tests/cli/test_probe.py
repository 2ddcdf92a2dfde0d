"""``smtpproto probe``: the table and ``--json`` against the built-in server, and failures."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .helpers import (
    FakeDNSServer,
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


def test_probe_json_on_a_refused_connection_is_one_object_with_the_error() -> None:
    result = run_cli("probe", f"127.0.0.1:{free_port()}", "--json")
    assert_clean_failure(result, 3, "cannot connect")
    report = json.loads(result.stdout)  # exactly one object: json.loads refuses extra data
    assert "cannot connect" in report["error"]
    assert report["banner"] == []


def test_probe_json_on_a_non_smtp_peer_is_one_object() -> None:
    with OneLineServer(b"HTTP/1.1 400 Bad Request\r\n\r\n") as http:
        result = run_cli("probe", f"127.0.0.1:{http.port}", "--json")
    assert_clean_failure(result, 9, "protocol error")
    assert "protocol error" in json.loads(result.stdout)["error"]


def test_probe_insecure_success_has_no_error_and_a_fingerprint_field() -> None:
    with ServeProcess() as serve:
        result = run_cli("probe", f"127.0.0.1:{serve.port}", "--json", "--insecure")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["error"] is None
    assert re.fullmatch(r"[0-9a-f]{64}", report["certificate_sha256"])
    for ms in report["timings_ms"].values():
        assert round(ms, 1) == ms


def test_probe_a_domain_probes_its_mx() -> None:
    with ServeProcess("--no-starttls") as serve:
        records = {
            ("example.test", "MX"): ["10 mx.example.test."],
            ("example.test", "A"): ["192.0.2.1"],  # not the mail server: never tried
            ("mx.example.test", "A"): ["127.0.0.1"],
        }
        with FakeDNSServer(records) as dns:
            args = ("probe", "example.test", "--resolver", dns.address, "--port", str(serve.port))
            result = run_cli(*args, "--json")
            table = run_cli(*args)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["domain"] == "example.test"
    assert report["mx"] == ["10 mx.example.test"]
    assert report["host"] == "mx.example.test"
    assert report["address"] == "127.0.0.1"
    assert table.returncode == 0, table.stderr
    assert "MX" in table.stdout and "10 mx.example.test" in table.stdout


def test_probe_a_name_without_mx_or_with_a_port_is_the_host_itself() -> None:
    with ServeProcess("--no-starttls") as serve:
        records = {("example.test", "MX"): ["10 mx.example.test."]}
        with FakeDNSServer(records) as dns:
            no_mx = run_cli(
                "probe", "localhost", "--resolver", dns.address, "--port", str(serve.port),
                "--json",
            )  # fmt: skip
            with_port = run_cli(
                "probe", f"localhost:{serve.port}", "--resolver", dns.address, "--json"
            )
            refused = run_cli(
                "probe", "example.test", "--no-mx", "--resolver", dns.address, "--json",
                "--timeout", "5",
            )  # fmt: skip
            asked = list(dns.questions)
    for result in (no_mx, with_port):
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["domain"] is None and report["host"] == "localhost"
    assert asked.count(("localhost", "MX")) == 1  # with a port: no lookup
    assert refused.returncode == 3  # example.test itself has no address
    assert ("example.test", "MX") not in asked


def test_probe_without_the_dns_extra_notes_it_and_probes_the_host(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "dns"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named dns')\n")
    with ServeProcess("--no-starttls") as serve:
        result = run_cli(
            "probe", "localhost", "--port", str(serve.port),
            env={"PYTHONPATH": str(shadow.parent)},
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "pip install 'smtpproto[dns]'" in result.stderr
    assert len(result.stderr.splitlines()) == 1
