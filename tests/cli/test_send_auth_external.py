"""``send --auth EXTERNAL --tls-cert PEM --tls-key PEM`` (RFC 4422 App. A, RFC 4954)
through the real CLI against Exim's ``external`` authenticator: the client certificate
presented in the TLS handshake is the identity (its CN); ``--user`` sends an
authorisation identity, which Exim accepts only when it is that CN."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import trustme

from interop.conftest import _enter
from interop.peers_exim import EximPeer, start_exim

from .helpers import assert_clean_failure, run_cli

pytestmark = pytest.mark.interop

CN = "client.example.test"
ENVELOPE = ("--from", "a@example.org", "--to", "b@example.org", "--body", "external")


@pytest.fixture(scope="module")
def exim() -> Iterator[EximPeer]:
    """One Exim that asks for client certificates and offers EXTERNAL to verified ones."""
    with ExitStack() as stack:
        yield _enter(stack, start_exim(external=True))


def _client_certificate(ca: trustme.CA, directory: Path) -> tuple[str, str]:
    """A client certificate for ``CN`` from ``ca``: (certificate PEM, key PEM) paths."""
    leaf = ca.issue_cert(CN, common_name=CN)
    cert, key = directory / "client-cert.pem", directory / "client-key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    return str(cert), str(key)


@pytest.mark.parametrize("authzid", [(), ("--user", CN)])
def test_auth_external_with_a_client_certificate(
    exim: EximPeer, tmp_path: Path, authzid: tuple[str, ...]
) -> None:
    before = len(exim.messages())
    cert, key = _client_certificate(exim.tls.ca, tmp_path)
    result = run_cli(
        "send", "--server", f"localhost:{exim.port}", "--cafile", str(exim.tls.ca_path),
        "--tls-cert", cert, "--tls-key", key, "--auth", "EXTERNAL", *authzid, *ENVELOPE,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "~> AUTH EXTERNAL" in result.stdout and "<~ 235" in result.stdout
    exim.wait_for_messages(before + 1)
    assert f"A=external_server:{CN}" in exim.log()  # Exim's identity: the certificate


def test_an_authorisation_identity_other_than_the_certificate_is_refused(
    exim: EximPeer, tmp_path: Path
) -> None:
    cert, key = _client_certificate(exim.tls.ca, tmp_path)
    result = run_cli(
        "send", "--server", f"localhost:{exim.port}", "--cafile", str(exim.tls.ca_path),
        "--tls-cert", cert, "--tls-key", key, "--auth", "EXTERNAL", "--user", "mallory",
        *ENVELOPE,
    )  # fmt: skip
    assert_clean_failure(result, 5, "535")


def test_a_certificate_the_server_does_not_trust_gets_no_external(
    exim: EximPeer, tmp_path: Path
) -> None:
    """Exim offers EXTERNAL only after verifying the certificate: exit 5, one line."""
    cert, key = _client_certificate(trustme.CA(), tmp_path)
    result = run_cli(
        "send", "--server", f"localhost:{exim.port}", "--cafile", str(exim.tls.ca_path),
        "--tls-cert", cert, "--tls-key", key, "--auth", "EXTERNAL", *ENVELOPE,
    )  # fmt: skip
    assert_clean_failure(result, 5, "authentication not possible", "EXTERNAL")
    assert "~> AUTH" not in result.stdout


def test_external_first_then_plain_in_preference_order(exim: EximPeer, tmp_path: Path) -> None:
    """``--auth EXTERNAL,PLAIN``: EXTERNAL when the certificate got it offered."""
    cert, key = _client_certificate(exim.tls.ca, tmp_path)
    result = run_cli(
        "send", "--server", f"localhost:{exim.port}", "--cafile", str(exim.tls.ca_path),
        "--tls-cert", cert, "--tls-key", key, "--auth", "EXTERNAL,PLAIN", "--user", CN,
        "--password-env", "PW", *ENVELOPE, env={"PW": "unused"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "~> AUTH EXTERNAL" in result.stdout
