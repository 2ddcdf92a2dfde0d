"""TLS helpers the adapters share: the client ``SSLContext`` and SCRAM-PLUS channel binding.

This is an adapter module (it imports ``ssl``); the engine never imports it and
``import smtpproto`` does not load it.

Theory of operation
-------------------
``client_ssl_context`` builds the one context policy all adapters use: certificate and
host-name verification on unless the caller opts out explicitly, TLS 1.2 or newer,
optional client certificate (for SASL EXTERNAL).

``channel_binding`` picks the data for SCRAM-*-PLUS (RFC 5802 §6) from a finished
handshake:

* ``tls-exporter`` (RFC 9266) is what TLS 1.3 wants, but it needs the exporter
  (``SSL_export_keying_material``, RFC 5705), which Python's ``ssl`` module does not
  expose (CPython issue 82133; nothing up to 3.13 has it). It is used when the
  ``SSLObject``/``SSLSocket`` has an ``export_keying_material`` method, so a future
  Python gets it without a change here, and only on TLS 1.3 (RFC 9266 §2 requires TLS 1.3
  or the extended master secret, which Python cannot report for TLS 1.2).
* ``tls-server-end-point`` (RFC 5929 §4.1) works with any TLS version: a hash of the
  server certificate's DER, with the hash function of the certificate's signature
  algorithm, except that MD5 and SHA-1 are replaced by SHA-256. The signature algorithm
  is read from the certificate with the small DER reader below (no dependency). For a
  signature with no single hash (Ed25519, Ed448, unknown algorithms) the binding is
  undefined (§4.1) and ``None`` is returned.

``tls-unique`` is deliberately not offered: it is undefined for TLS 1.3 (RFC 8446 §C.5)
and unsafe for TLS 1.2 without the extended master secret (RFC 7627).

``TLSInfo`` is what every adapter records right after a handshake (``client.tls_info``):
version, cipher and certificate, read from the same ``SSLSocket``/``SSLObject`` the
channel binding comes from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ssl
from typing import Any, Literal, TypeAlias

from ..sasl.base import ChannelBinding
from ..wire.fields import check_flag

__all__ = [
    "ChannelBinding",
    "SSLConnection",
    "TLSInfo",
    "certificate_signature_hash",
    "channel_binding",
    "client_ssl_context",
    "server_end_point_hash",
    "tls_exporter",
    "tls_server_end_point",
]

#: RFC 9266 §2: label and length of the tls-exporter channel binding; empty context.
EXPORTER_LABEL = "EXPORTER-Channel-Binding"
EXPORTER_LENGTH = 32

#: What the helpers accept: the TLS object of any adapter (asyncio and trio use SSLObject).
SSLConnection: TypeAlias = "ssl.SSLObject | ssl.SSLSocket"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TLSInfo:
    """What a finished TLS handshake negotiated (read from the connection at once).

    ``peer_certificate`` is ``getpeercert()``: empty when the certificate was not
    verified (``ssl`` decodes only verified certificates); ``peer_certificate_der`` is
    the certificate as sent (None without one). ``handshake_seconds`` is how long the
    handshake took.
    """

    version: str | None
    cipher: str | None
    cipher_bits: int | None
    peer_certificate: dict[str, Any]
    peer_certificate_der: bytes | None
    handshake_seconds: float

    def describe(self) -> str:
        """``"TLSv1.3, TLS_AES_256_GCM_SHA384 (256 bits)"``."""
        version = self.version or "TLS"
        if self.cipher is None:
            return version
        return f"{version}, {self.cipher} ({self.cipher_bits} bits)"

    @classmethod
    def from_socket(cls, sock: SSLConnection, handshake_seconds: float) -> TLSInfo:
        """Read the negotiated parameters of ``sock`` after its handshake: an
        ``SSLSocket`` (blocking), an ``SSLObject`` (asyncio's
        ``get_extra_info("ssl_object")``), or anything with the same four methods
        (trio's ``SSLStream`` forwards them to its ``SSLObject``)."""
        cipher = sock.cipher()
        return cls(
            version=sock.version(),
            cipher=None if cipher is None else cipher[0],
            cipher_bits=None if cipher is None else cipher[2],
            peer_certificate=dict(sock.getpeercert() or {}),
            peer_certificate_der=sock.getpeercert(binary_form=True),
            handshake_seconds=handshake_seconds,
        )


def client_ssl_context(
    *,
    verify: bool = True,
    cafile: str | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
) -> ssl.SSLContext:
    """A client context: CA and host-name verification on, TLS 1.2 or newer.

    ``cafile`` replaces the system trust store with that PEM bundle (``None``: the system
    store). ``verify=False`` turns off both certificate and host-name checks — an explicit
    opt-out for test servers; never the default. ``certfile``/``keyfile`` present a client
    certificate (for SASL EXTERNAL, RFC 4422 App. A); ``keyfile`` without ``certfile`` is a
    ``ValueError``. A ``minimum_version`` below TLS 1.2 is refused (RFC 8996 deprecates
    TLS 1.0 and 1.1).
    """
    check_flag("verify", verify, error=TypeError)  # verify=None must not mean "off"
    if not isinstance(minimum_version, ssl.TLSVersion):
        raise TypeError(f"minimum_version must be an ssl.TLSVersion, got {minimum_version!r}")
    if minimum_version not in (
        ssl.TLSVersion.TLSv1_2,
        ssl.TLSVersion.TLSv1_3,
        ssl.TLSVersion.MAXIMUM_SUPPORTED,
    ):
        raise ValueError(
            f"minimum_version must be TLS 1.2 or newer (RFC 8996), got {minimum_version!r}"
        )
    if keyfile is not None and certfile is None:
        raise ValueError("keyfile needs certfile")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.minimum_version = minimum_version
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if certfile is not None:
        context.load_cert_chain(certfile, keyfile)
    return context


def tls_exporter(connection: SSLConnection) -> bytes | None:
    """RFC 9266 tls-exporter data, or ``None`` when it cannot be had.

    ``None`` when the Python ``ssl`` module has no ``export_keying_material`` (true of
    every CPython release so far), when the handshake is not done, or when the protocol
    is not TLS 1.3 (RFC 9266 §2).
    """
    export = getattr(connection, "export_keying_material", None)
    if export is None or connection.version() != "TLSv1.3":
        return None
    data = export(EXPORTER_LABEL, EXPORTER_LENGTH, None)
    return bytes(data) if data else None


def tls_server_end_point(connection: SSLConnection) -> bytes | None:
    """RFC 5929 §4.1 tls-server-end-point data for the server's certificate.

    Must be called on the client side after the handshake. ``None`` when there is no
    peer certificate (handshake not done, or an anonymous suite), when the
    certificate's signature algorithm has no single hash (§4.1: undefined), or when
    this module's DER reader cannot find that algorithm: OpenSSL accepts certificates
    it does not (RSASSA-PSS without parameters, say), and with verification off any
    server can send one, which must not fail the connection with a ``ValueError``.
    """
    der = connection.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        return server_end_point_hash(der)
    except ValueError:
        return None


def server_end_point_hash(certificate_der: bytes) -> bytes | None:
    """Hash ``certificate_der`` as RFC 5929 §4.1 says; ``None`` when undefined.

    Raises ``ValueError`` when the bytes are not a DER X.509 certificate.
    """
    name = certificate_signature_hash(certificate_der)
    if name is None:
        return None
    if name in ("md5", "sha1"):
        name = "sha256"
    return hashlib.new(name, certificate_der).digest()


def channel_binding(
    connection: SSLConnection,
    *,
    prefer: tuple[Literal["tls-exporter", "tls-server-end-point"], ...] = (
        "tls-exporter",
        "tls-server-end-point",
    ),
) -> ChannelBinding | None:
    """The first channel binding in ``prefer`` this connection can give, or ``None``.

    With the default order a TLS 1.3 connection gets ``tls-exporter`` where Python can
    export keying material (RFC 9266 §3 makes it SCRAM's default for TLS 1.3) and
    ``tls-server-end-point`` otherwise. The server must support the chosen type; SCRAM
    reports a mismatch as an authentication failure (RFC 5802 §6).
    """
    for kind in prefer:
        if kind == "tls-exporter":
            data = tls_exporter(connection)
        elif kind == "tls-server-end-point":
            data = tls_server_end_point(connection)
        else:
            raise ValueError(f"unknown channel binding type {kind!r}")
        if data is not None:
            return ChannelBinding(kind, data)
    return None


# -- a minimal DER reader: just enough to find the certificate's signature algorithm -------

# OID → hash name. RFC 3279 §2.2, RFC 4055 §5, RFC 5758 §3.
_SIGNATURE_HASHES = {
    "1.2.840.113549.1.1.4": "md5",  # md5WithRSAEncryption
    "1.2.840.113549.1.1.5": "sha1",  # sha1WithRSAEncryption
    "1.2.840.113549.1.1.14": "sha224",
    "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384",
    "1.2.840.113549.1.1.13": "sha512",
    "1.2.840.10045.4.1": "sha1",  # ecdsa-with-SHA1
    "1.2.840.10045.4.3.1": "sha224",
    "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384",
    "1.2.840.10045.4.3.4": "sha512",
    "1.2.840.10040.4.3": "sha1",  # id-dsa-with-sha1
    "2.16.840.1.101.3.4.3.1": "sha224",  # id-dsa-with-sha224
    "2.16.840.1.101.3.4.3.2": "sha256",  # id-dsa-with-sha256
}
_RSASSA_PSS = "1.2.840.113549.1.1.10"
# Hash algorithm OIDs (RFC 4055 §2.1) for RSASSA-PSS parameters.
_HASH_OIDS = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_SEQUENCE, _OID, _CONTEXT_0 = 0x30, 0x06, 0xA0


def _read_tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    """Read a DER TLV at ``offset``: (tag, start of value, end of value).

    Only single-byte tags and definite lengths (X.690 §8.1.3; DER forbids the indefinite
    form) are accepted; anything running past ``data`` is a ``ValueError``.
    """
    if offset + 2 > len(data):
        raise ValueError("truncated DER")
    tag, first = data[offset], data[offset + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte DER tags are not used in certificates")
    start = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise ValueError("DER value runs past the end of the data")
    return tag, start, end


def _decode_oid(value: bytes) -> str:
    """Decode an OBJECT IDENTIFIER's contents (X.690 §8.19) to dotted form."""
    if not value or value[-1] & 0x80:
        raise ValueError("bad DER object identifier")
    arcs: list[int] = []
    current = 0
    for byte in value:
        current = (current << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(current)
            current = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in (first, arcs[0] - 40 * first, *arcs[1:]))


def _algorithm_oid(data: bytes, offset: int) -> tuple[str, int, int]:
    """Read an AlgorithmIdentifier at ``offset``: (OID, parameters start, end)."""
    tag, start, end = _read_tlv(data, offset)
    if tag != _SEQUENCE:
        raise ValueError("AlgorithmIdentifier is not a SEQUENCE")
    tag, oid_start, oid_end = _read_tlv(data, start)
    if tag != _OID:
        raise ValueError("AlgorithmIdentifier does not start with an OID")
    return _decode_oid(data[oid_start:oid_end]), oid_end, end


def certificate_signature_hash(certificate_der: bytes) -> str | None:
    """The hashlib name of the hash in the certificate's ``signatureAlgorithm``.

    RFC 5280 §4.1: Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
    signatureValue }. RSASSA-PSS takes the hash from its parameters (RFC 4055 §3.1;
    absent means SHA-1). ``None`` for algorithms without a single hash (Ed25519, Ed448)
    or that this table does not know. ``ValueError`` for bytes that are not DER.
    """
    tag, start, end = _read_tlv(certificate_der, 0)
    if tag != _SEQUENCE or end != len(certificate_der):
        raise ValueError("a certificate is one DER SEQUENCE")
    tag, _, tbs_end = _read_tlv(certificate_der, start)
    if tag != _SEQUENCE:
        raise ValueError("tbsCertificate is not a SEQUENCE")
    oid, params_start, params_end = _algorithm_oid(certificate_der, tbs_end)
    if oid != _RSASSA_PSS:
        return _SIGNATURE_HASHES.get(oid)
    if params_start == params_end:
        raise ValueError("RSASSA-PSS signature without parameters")
    tag, inner, inner_end = _read_tlv(certificate_der, params_start)
    if tag != _SEQUENCE:
        raise ValueError("RSASSA-PSS parameters are not a SEQUENCE")
    if inner == inner_end:
        return "sha1"  # every field at its DEFAULT (RFC 4055 §3.1)
    tag, hash_start, _ = _read_tlv(certificate_der, inner)
    if tag != _CONTEXT_0:
        return "sha1"  # hashAlgorithm [0] absent: DEFAULT sha1
    hash_oid, _, _ = _algorithm_oid(certificate_der, hash_start)
    return _HASH_OIDS.get(hash_oid)
