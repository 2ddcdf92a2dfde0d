"""What ``smtpproto probe`` prints: a readable table or one JSON object.

CLI layer. ``ProbeReport`` is plain data filled by ``probe`` from what the blocking
client learned; ``render_table`` and ``render_json`` only format it. Every string came
from the server, so the table escapes it (``format_table``) and JSON keeps it as data
(``json.dumps`` escapes control characters itself).

Certificate fields come from ``ssl.SSLSocket.getpeercert()``: subject and issuer as
RDN tuples (flattened to ``CN=..., O=...``), ``notAfter`` in OpenSSL's text form
(converted with ``ssl.cert_time_to_seconds`` to ISO 8601 UTC and days left).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import ssl
from collections.abc import Mapping
from typing import Any

from .output import format_table

__all__ = ["CertificateInfo", "ProbeReport", "certificate_info", "render_json", "render_table"]


@dataclasses.dataclass(slots=True)
class CertificateInfo:
    """The server certificate as the CLI shows it (``None`` fields were absent)."""

    subject: str | None = None
    issuer: str | None = None
    not_after: str | None = None
    days_left: int | None = None
    subject_alt_names: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(slots=True)
class ProbeReport:
    """Everything ``probe`` found out; ``None`` means "not learned"."""

    host: str
    port: int
    #: The domain asked for when ``host`` is its mail server (``probe DOMAIN``).
    domain: str | None = None
    #: The domain's MX records as ``"PREFERENCE HOST"``, best first (RFC 5321 §5.1).
    mx: list[str] = dataclasses.field(default_factory=list)
    address: str | None = None
    banner: list[str] = dataclasses.field(default_factory=list)
    server_name: str | None = None
    extensions: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    starttls: str = "not tried"
    tls_version: str | None = None
    tls_cipher: str | None = None
    certificate_verified: bool | None = None
    certificate: CertificateInfo | None = None
    #: SHA-256 of the server certificate (DER), hex; verified or not.
    certificate_sha256: str | None = None
    extensions_after_tls: dict[str, list[str]] | None = None
    auth_mechanisms: list[str] = dataclasses.field(default_factory=list)
    #: AUTH mechanisms offered before TLS: passwords could cross the network in clear.
    auth_before_tls: list[str] = dataclasses.field(default_factory=list)
    size_limit: int | None = None
    timings_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    error: str | None = None


def _rdn(value: Any) -> str | None:
    """``((('commonName', 'x'),), ...)`` -> ``"commonName=x, ..."``; None if absent."""
    if not value:
        return None
    parts = [f"{key}={val}" for rdn in value for key, val in rdn]
    return ", ".join(parts) or None


def certificate_info(
    peer: Mapping[str, Any] | None, *, now: datetime.datetime | None = None
) -> CertificateInfo | None:
    """Summarise ``getpeercert()``'s dict; ``None`` for an empty one (not verified)."""
    if not peer:
        return None
    info = CertificateInfo(subject=_rdn(peer.get("subject")), issuer=_rdn(peer.get("issuer")))
    not_after = peer.get("notAfter")
    if isinstance(not_after, str):
        try:
            expires = datetime.datetime.fromtimestamp(
                ssl.cert_time_to_seconds(not_after), tz=datetime.timezone.utc
            )
        except ValueError:
            info.not_after = not_after
        else:
            info.not_after = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
            current = now or datetime.datetime.now(tz=datetime.timezone.utc)
            info.days_left = (expires - current).days
    for kind, value in peer.get("subjectAltName", ()):
        info.subject_alt_names.append(f"{kind}:{value}")
    return info


def _extension_lines(extensions: Mapping[str, list[str]] | None) -> list[str]:
    if not extensions:
        return []
    return [" ".join([keyword, *params]) for keyword, params in extensions.items()]


def render_table(report: ProbeReport) -> str:
    """The report as labelled rows, grouped: connection, TLS, extensions, timings."""
    rows: list[tuple[str, object]] = []
    if report.domain is not None:
        rows += [("domain", report.domain), ("MX", report.mx or "none (the domain itself)")]
    rows += [
        ("server", f"{report.host} port {report.port}"),
        ("address", report.address),
        ("banner", report.banner),
        ("EHLO name", report.server_name),
        ("extensions", _extension_lines(report.extensions)),
        ("STARTTLS", report.starttls),
    ]
    if report.tls_version is not None:
        rows += [("TLS version", report.tls_version), ("TLS cipher", report.tls_cipher)]
        verified = report.certificate_verified
        rows.append(("certificate", "verified" if verified else "NOT verified"))
        if report.certificate_sha256 is not None:
            rows.append(("  SHA-256", report.certificate_sha256))
    cert = report.certificate
    if cert is not None:
        expiry = cert.not_after
        if expiry is not None and cert.days_left is not None:
            expiry += f" ({cert.days_left} days left)"
        rows += [
            ("  subject", cert.subject),
            ("  issuer", cert.issuer),
            ("  expires", expiry),
            ("  names", cert.subject_alt_names),
        ]
    if report.extensions_after_tls is not None:
        rows.append(("after TLS", _extension_lines(report.extensions_after_tls)))
    if report.auth_before_tls:
        rows.append(("AUTH before TLS", " ".join(report.auth_before_tls) + " (in cleartext!)"))
    rows += [
        ("AUTH", " ".join(report.auth_mechanisms) or "not offered"),
        ("SIZE limit", "not announced" if report.size_limit is None else report.size_limit),
    ]
    rows += [(f"time: {step}", f"{ms:.1f} ms") for step, ms in report.timings_ms.items()]
    if report.error is not None:
        rows.append(("error", report.error))
    return format_table(rows)


def render_json(report: ProbeReport) -> str:
    """The report as one JSON object (keys as the dataclass fields; timings rounded to
    0.1 ms, finer digits are noise)."""
    data = dataclasses.asdict(report)
    data["timings_ms"] = {step: round(ms, 1) for step, ms in report.timings_ms.items()}
    return json.dumps(data, indent=2, ensure_ascii=True)
