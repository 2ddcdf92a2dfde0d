"""The built-in server's throw-away TLS certificate, made with whatever tool is there.

Adapter layer (I/O allowed). By default two tools are tried, in this order:

* ``cryptography`` (the ``certs`` extra: ``pip install '.[certs]'`` in a clone; often
  installed anyway);
* the ``openssl`` command line.

Both make the same self-signed certificate: subject ``CN=`` the server's host name,
names ``localhost``, ``127.0.0.1``, ``::1`` and the host name, a P-256 key, valid for two
days, its own trust anchor. A third tool, ``trustme``, is tried only when asked for: it
makes a private CA and a leaf certificate the CA signs, as real servers have
(``cert.pem`` holds the leaf then the CA, so the one file is both the server's chain and
what a client trusts).

``SMTPPROTO_CERT_TOOL`` (a comma-separated list such as ``openssl`` or
``trustme,openssl``) sets which tools are tried and in what order; so does the ``tools``
argument. When none works, ``NoCertificateTool`` says what each one said and how to get
one.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..wire.text import escape_text

__all__ = [
    "CERT_TOOL_ENV",
    "DEFAULT_TOOLS",
    "TOOLS",
    "Certificate",
    "NoCertificateTool",
    "make_certificate",
]

#: Every tool that can make the certificate.
TOOLS = ("cryptography", "openssl", "trustme")
#: The tools tried when neither ``tools`` nor ``SMTPPROTO_CERT_TOOL`` says otherwise.
DEFAULT_TOOLS = ("cryptography", "openssl")
#: Environment variable that sets the tools tried (comma-separated names of ``TOOLS``).
CERT_TOOL_ENV = "SMTPPROTO_CERT_TOOL"
#: Seconds ``openssl`` may take to make the certificate.
OPENSSL_TIMEOUT = 60.0
#: How long the certificate is valid.
VALIDITY = datetime.timedelta(days=2)


class NoCertificateTool(OSError):
    """No tool could make the certificate; the message lists why for each one tried."""


@dataclass(frozen=True)
class Certificate:
    """A certificate made for the built-in server: ``cert`` (PEM chain, also what a
    client should trust), ``key`` (PEM private key) and the ``tool`` that made them."""

    cert: Path
    key: Path
    tool: str


def _names(hostname: str) -> list[str]:
    names = ["localhost", "127.0.0.1", "::1"]
    if hostname not in names:
        names.append(hostname)
    return names


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _with_trustme(cert: Path, key: Path, hostname: str) -> None:
    import trustme

    ca = trustme.CA(organization_name="smtpproto built-in server")
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf = ca.issue_cert(
        *_names(hostname),
        common_name=hostname,
        not_before=now - datetime.timedelta(minutes=5),
        not_after=now + VALIDITY,
    )
    key.write_bytes(leaf.private_key_pem.bytes())
    chain = [blob.bytes() for blob in leaf.cert_chain_pems]
    cert.write_bytes(b"".join([*chain, ca.cert_pem.bytes()]))


def _with_cryptography(cert: Path, key: Path, hostname: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    alt: list[x509.GeneralName] = []
    for name in _names(hostname):
        if _is_ip(name):
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        else:
            alt.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.timezone.utc)
    public = private.public_key()
    # The same extensions as ``openssl req -x509``: the certificate is its own trust anchor.
    built = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(private, hashes.SHA256())
    )
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))


def _with_openssl(cert: Path, key: Path, hostname: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("the openssl command was not found")
    alt = ",".join(f"IP:{name}" if _is_ip(name) else f"DNS:{name}" for name in _names(hostname))
    command = [
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", str(VALIDITY.days),
        "-subj", f"/CN={hostname}", "-addext", f"subjectAltName={alt}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, timeout=OPENSSL_TIMEOUT, check=False)
    if result.returncode != 0:
        detail = escape_text(result.stderr.decode("utf-8", "replace").strip()[-300:])
        raise OSError(f"openssl failed: {detail}")


_MAKERS: dict[str, Callable[[Path, Path, str], None]] = {
    "trustme": _with_trustme,
    "cryptography": _with_cryptography,
    "openssl": _with_openssl,
}


def _chosen(tools: Sequence[str] | None) -> tuple[str, ...]:
    if tools is None:
        forced = os.environ.get(CERT_TOOL_ENV, "").strip()
        tools = [part.strip() for part in forced.split(",")] if forced else DEFAULT_TOOLS
    unknown = [tool for tool in tools if tool not in _MAKERS]
    if unknown or not tools:
        raise ValueError(
            f"unknown certificate tool {escape_text(', '.join(unknown))!r} "
            f"(from {CERT_TOOL_ENV} or tools=); choose from {', '.join(TOOLS)}"
        )
    return tuple(tools)


def make_certificate(
    directory: Path, hostname: str = "localhost", *, tools: Sequence[str] | None = None
) -> Certificate:
    """Make ``cert.pem`` and ``key.pem`` in ``directory`` with the first of ``tools``
    (default: ``SMTPPROTO_CERT_TOOL``, else ``DEFAULT_TOOLS``) that is installed and works.

    Raises ``NoCertificateTool`` (an ``OSError``) when none does, naming what each one
    said; ``ValueError`` for an unknown tool name.
    """
    chosen = _chosen(tools)
    cert, key = directory / "cert.pem", directory / "key.pem"
    failures = []
    for tool in chosen:
        try:
            _MAKERS[tool](cert, key, hostname)
        except ImportError:
            failures.append(f"{tool}: not installed")
        except (OSError, subprocess.SubprocessError, ValueError) as error:
            failures.append(f"{tool}: {escape_text(str(error))}")
        else:
            return Certificate(cert=cert, key=key, tool=tool)
    raise NoCertificateTool(
        "no tool could make a self-signed certificate ("
        + "; ".join(failures)
        + "): install the cryptography package (the certs extra) or the openssl "
        "command, or give a certificate and key"
    )
