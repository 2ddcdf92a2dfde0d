"""``smtpproto.adapters.tls``: the client context policy and channel binding, over real handshakes.

Handshakes run over ``socket.socketpair()`` with the server side in a thread; every
socket has a timeout and every thread join is bounded, so a broken handshake fails
instead of hanging.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from smtpproto.adapters.tls import (
    EXPORTER_LABEL,
    certificate_signature_hash,
    channel_binding,
    client_ssl_context,
    server_end_point_hash,
    tls_exporter,
    tls_server_end_point,
)
from smtpproto.sasl.base import ChannelBinding

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("localhost", "127.0.0.1")


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def handshake(
    client_context: ssl.SSLContext,
    server_context: ssl.SSLContext,
    server_hostname: str = "localhost",
    inspect: Callable[[ssl.SSLSocket], Any] = tls_server_end_point,
) -> tuple[Any, bytes | None, BaseException | None]:
    """Handshake over a socketpair; return (inspect(client), client cert the server saw,
    server error).

    The client side's exception propagates; the server side's is returned.
    """
    client_raw, server_raw = socket.socketpair()
    client_raw.settimeout(TIMEOUT)
    server_raw.settimeout(TIMEOUT)
    outcome: dict[str, Any] = {}

    def serve() -> None:
        try:
            tls = server_context.wrap_socket(server_raw, server_side=True)
            outcome["server"] = tls
            outcome["peer"] = tls.getpeercert(binary_form=True)
            tls.recv(1)  # wait for the client's byte: the handshake is complete both ways
        except BaseException as exc:  # reported to the test, not swallowed
            outcome["error"] = exc
            server_raw.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client = client_context.wrap_socket(client_raw, server_hostname=server_hostname)
        try:
            result = inspect(client)
            client.sendall(b"x")
        finally:
            client.close()
    finally:
        client_raw.close()
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "server handshake thread did not finish"
        if "server" in outcome:
            outcome["server"].close()
    return result, outcome.get("peer"), outcome.get("error")


def server_context_for(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


# -- client_ssl_context ----------------------------------------------------------------------


def test_defaults_verify_certificate_and_host_name() -> None:
    context = client_ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_verify_false_is_an_explicit_opt_out() -> None:
    context = client_ssl_context(verify=False)
    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_protocol_versions_are_refused(version: ssl.TLSVersion) -> None:
    with pytest.raises(ValueError, match="RFC 8996"):
        client_ssl_context(minimum_version=version)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="TLSVersion"):
        client_ssl_context(minimum_version="TLSv1_2")  # type: ignore[arg-type]  # on purpose
    with pytest.raises(ValueError, match="keyfile needs certfile"):
        client_ssl_context(keyfile="key.pem")


def test_tls13_minimum_is_applied(ca_file: str, server_cert: trustme.LeafCert) -> None:
    context = client_ssl_context(cafile=ca_file, minimum_version=ssl.TLSVersion.TLSv1_3)
    version, _, error = handshake(
        context, server_context_for(server_cert), inspect=lambda s: s.version()
    )
    assert error is None
    assert version == "TLSv1.3"


def test_trusted_certificate_verifies(ca_file: str, server_cert: trustme.LeafCert) -> None:
    binding, server, error = handshake(
        client_ssl_context(cafile=ca_file), server_context_for(server_cert)
    )
    assert error is None
    assert server is None  # no client certificate asked for or sent
    assert binding is not None


def test_certificate_from_an_unknown_ca_fails(
    server_cert: trustme.LeafCert, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(client_ssl_context(cafile=str(other)), server_context_for(server_cert))


def test_wrong_host_name_fails(ca_file: str, server_cert: trustme.LeafCert) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match=r"[Hh]ostname"):
        handshake(
            client_ssl_context(cafile=ca_file),
            server_context_for(server_cert),
            server_hostname="mail.example.test",
        )


def test_verify_false_accepts_any_certificate(
    server_cert: trustme.LeafCert, tmp_path: Path
) -> None:
    binding, _, error = handshake(
        client_ssl_context(verify=False), server_context_for(server_cert), server_hostname="other"
    )
    assert error is None
    assert binding is not None


def test_client_certificate_is_presented(
    ca: trustme.CA, ca_file: str, server_cert: trustme.LeafCert, tmp_path: Path
) -> None:
    client_cert = ca.issue_cert("client@example.test")
    cert_path, key_path = tmp_path / "client.pem", tmp_path / "client.key"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in client_cert.cert_chain_pems))
    client_cert.private_key_pem.write_to_path(str(key_path))
    server_context = server_context_for(server_cert)
    server_context.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(server_context)
    context = client_ssl_context(cafile=ca_file, certfile=str(cert_path), keyfile=str(key_path))
    _, server, error = handshake(context, server_context, inspect=lambda s: s.version())
    assert error is None
    assert server == ssl.PEM_cert_to_DER_cert(client_cert.cert_chain_pems[0].bytes().decode())


# -- channel binding ---------------------------------------------------------------------------


def test_server_end_point_matches_the_servers_own_certificate(
    ca_file: str, server_cert: trustme.LeafCert
) -> None:
    binding, _, error = handshake(
        client_ssl_context(cafile=ca_file), server_context_for(server_cert)
    )
    assert error is None
    der = ssl.PEM_cert_to_DER_cert(server_cert.cert_chain_pems[0].bytes().decode())
    assert binding == hashlib.sha256(der).digest()  # trustme signs with SHA-256


def test_channel_binding_falls_back_to_server_end_point(
    ca_file: str, server_cert: trustme.LeafCert
) -> None:
    binding, _, _ = handshake(
        client_ssl_context(cafile=ca_file), server_context_for(server_cert), inspect=channel_binding
    )
    assert isinstance(binding, ChannelBinding)
    if hasattr(ssl.SSLSocket, "export_keying_material"):
        assert binding.type == "tls-exporter"
        assert len(binding.data) == 32
    else:
        assert binding.type == "tls-server-end-point"
        assert len(binding.data) == 32
    exporter, _, _ = handshake(
        client_ssl_context(cafile=ca_file), server_context_for(server_cert), inspect=tls_exporter
    )
    assert (exporter is None) == (not hasattr(ssl.SSLSocket, "export_keying_material"))


def test_channel_binding_preference_order_and_unknown_type(
    ca_file: str, server_cert: trustme.LeafCert
) -> None:
    def only_end_point(connection: ssl.SSLSocket) -> ChannelBinding | None:
        return channel_binding(connection, prefer=("tls-server-end-point",))

    binding, _, _ = handshake(
        client_ssl_context(cafile=ca_file), server_context_for(server_cert), inspect=only_end_point
    )
    assert binding is not None and binding.type == "tls-server-end-point"

    def unknown(connection: ssl.SSLSocket) -> ChannelBinding | None:
        return channel_binding(connection, prefer=("tls-unique",))  # type: ignore[arg-type]  # on purpose

    with pytest.raises(ValueError, match="tls-unique"):
        handshake(
            client_ssl_context(cafile=ca_file), server_context_for(server_cert), inspect=unknown
        )


class _ExportingConnection:
    """A stand-in for a future ``SSLObject`` that has ``export_keying_material``."""

    def __init__(self, version: str) -> None:
        self._version = version
        self.calls: list[tuple[str, int, bytes | None]] = []

    def version(self) -> str:
        return self._version

    def export_keying_material(self, label: str, length: int, context: bytes | None) -> bytes:
        self.calls.append((label, length, context))
        return bytes(range(length))


def test_tls_exporter_uses_rfc9266_label_only_on_tls13() -> None:
    connection = _ExportingConnection("TLSv1.3")
    assert tls_exporter(connection) == bytes(range(32))  # type: ignore[arg-type]  # stand-in
    assert connection.calls == [(EXPORTER_LABEL, 32, None)]
    assert EXPORTER_LABEL == "EXPORTER-Channel-Binding"
    older = _ExportingConnection("TLSv1.2")
    assert tls_exporter(older) is None  # type: ignore[arg-type]  # stand-in
    assert older.calls == []


# -- the signature hash, compared with the cryptography package --------------------------------


def _self_signed(key: Any, algorithm: Any, rsa_padding: Any = None) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cb.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    kwargs = {"rsa_padding": rsa_padding} if rsa_padding is not None else {}
    cert = builder.sign(key, algorithm, **kwargs)
    return cert.public_bytes(serialization.Encoding.DER)


_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_EC = ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(
    ("key", "algorithm", "rsa_padding", "expected_hash"),
    [
        (_RSA, hashes.SHA224(), None, "sha224"),
        (_RSA, hashes.SHA256(), None, "sha256"),
        (_RSA, hashes.SHA384(), None, "sha384"),
        (_RSA, hashes.SHA512(), None, "sha512"),
        (_EC, hashes.SHA256(), None, "sha256"),
        (_EC, hashes.SHA384(), None, "sha384"),
        (_EC, hashes.SHA512(), None, "sha512"),
        (
            _RSA,
            hashes.SHA384(),
            padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
            "sha384",
        ),
        (
            _RSA,
            hashes.SHA256(),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            "sha256",
        ),
    ],
    ids=["rsa-sha224", "rsa-sha256", "rsa-sha384", "rsa-sha512", "ec-sha256",
         "ec-sha384", "ec-sha512", "pss-sha384", "pss-sha256"],
)  # fmt: skip
def test_server_end_point_hash_follows_the_signature(
    key: Any, algorithm: Any, rsa_padding: Any, expected_hash: str
) -> None:
    der = _self_signed(key, algorithm, rsa_padding)
    parsed = x509.load_der_x509_certificate(der)
    assert parsed.signature_hash_algorithm is not None
    assert certificate_signature_hash(der) == parsed.signature_hash_algorithm.name
    assert server_end_point_hash(der) == hashlib.new(expected_hash, der).digest()


_SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")


@pytest.mark.parametrize(("last_arc", "name"), [(5, "sha1"), (4, "md5")])
def test_weak_signature_hashes_become_sha256(last_arc: int, name: str) -> None:
    """RFC 5929 §4.1: MD5 and SHA-1 are replaced by SHA-256.

    cryptography will not sign with them any more, so the OID of an RSA/SHA-256
    certificate is rewritten (same length, still DER; the signature no longer verifies,
    which does not matter for hashing).
    """
    der = _self_signed(_RSA, hashes.SHA256()).replace(
        _SHA256_WITH_RSA, _SHA256_WITH_RSA[:-1] + bytes([last_arc])
    )
    parsed = x509.load_der_x509_certificate(der)
    assert parsed.signature_algorithm_oid.dotted_string == f"1.2.840.113549.1.1.{last_arc}"
    assert certificate_signature_hash(der) == name
    assert server_end_point_hash(der) == hashlib.sha256(der).digest()


def test_ed25519_has_no_server_end_point_binding() -> None:
    der = _self_signed(ed25519.Ed25519PrivateKey.generate(), None)
    assert certificate_signature_hash(der) is None
    assert server_end_point_hash(der) is None


_TRUSTME_DER = ssl.PEM_cert_to_DER_cert(
    trustme.CA().issue_cert("localhost").cert_chain_pems[0].bytes().decode()
)


@pytest.mark.parametrize("cut", [0, 1, 2, 10, len(_TRUSTME_DER) // 2, len(_TRUSTME_DER) - 1])
def test_truncated_certificate_is_a_value_error(cut: int) -> None:
    with pytest.raises(ValueError):
        certificate_signature_hash(_TRUSTME_DER[:cut])


def test_trailing_bytes_are_a_value_error() -> None:
    with pytest.raises(ValueError, match="one DER SEQUENCE"):
        certificate_signature_hash(_TRUSTME_DER + b"\x00")


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_a_name_none_or_value_error(data: bytes) -> None:
    try:
        result = certificate_signature_hash(data)
    except ValueError:
        return
    assert result is None or result in hashlib.algorithms_available


@given(st.integers(min_value=0, max_value=len(_TRUSTME_DER) - 1), st.integers(0, 255))
def test_any_single_byte_change_never_raises_another_type(index: int, value: int) -> None:
    mutated = bytearray(_TRUSTME_DER)
    mutated[index] = value
    with contextlib.suppress(ValueError):
        certificate_signature_hash(bytes(mutated))
