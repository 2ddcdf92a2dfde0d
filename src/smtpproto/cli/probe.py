"""``smtpproto probe HOST[:PORT]``: what a server offers, as a table or JSON.

CLI adapter layer; no SMTP knowledge of its own. Theory of operation: one session with
the blocking client (greeting, EHLO, STARTTLS when offered, EHLO again, QUIT; no mail
is sent). The session keeps what the report needs: the greeting (``Session.greeting``),
the capabilities of the cleartext EHLO (``Session.capabilities_before_tls``) and of
the last one (``client.capabilities``); the adapter records the TLS version, cipher,
certificate and handshake time (``client.tls_info``). ``_Timer`` — the engine's
transcript hook — only notes when each command went out and when each reply was
complete, for the timings.

When the certificate does not verify, the failure is reported and a second session
without verification shows the TLS version, cipher and the certificate's SHA-256
fingerprint (subject and issuer are only decoded by ``ssl`` for verified certificates);
the exit code is then 4. Other exit codes as for ``send`` (3 connect, 9 protocol, 10
timeout).
"""

from __future__ import annotations

import argparse
import hashlib
import ssl
import sys
import time  # noqa: TID251 -- CLI adapter layer: timings per step
from typing import Literal

from ..adapters.blocking import SMTPClient, TLSInfo
from ..adapters.tls import client_ssl_context
from ..client_engine.capabilities import Capabilities
from ..client_engine.config import ClientConfig, TLSPolicy
from ..drivers.exceptions import SMTPTLSError
from ..drivers.support import default_port, default_tls_policy
from ..wire.text import escape_text
from ..wire.twins import ReplyParser
from .common import CLIError, ExitCode, connect_tcp, parse_server
from .output import Transcript
from .report import ProbeReport, certificate_info, render_json, render_table

__all__ = ["run_probe"]


class _Timer:
    """Transcript hook noting when each command went out and each reply was complete
    (the engine's reply parser finds the last line of a multiline reply)."""

    def __init__(self, echo: Transcript | None) -> None:
        self._echo = echo
        self._parser = ReplyParser()
        #: ``(time, verb)`` for each line we sent.
        self.commands: list[tuple[float, str]] = []
        #: When each complete reply arrived (the greeting first).
        self.replies: list[float] = []

    def __call__(self, direction: Literal["C", "S"], line: bytes) -> None:
        now = time.monotonic()
        if self._echo is not None:
            self._echo(direction, line)
        if direction == "C":
            verb = line.split(b" ", 1)[0].decode("ascii", "replace").upper()
            self.commands.append((now, verb))
        else:
            self.replies += [now for _ in self._parser.feed(line + b"\r\n")]


def _extensions(caps: Capabilities) -> dict[str, list[str]]:
    return {keyword: list(params) for keyword, params in caps.keywords.items()}


def _timings(report: ProbeReport, timer: _Timer, connected: float, tls: TLSInfo | None) -> None:
    """Per-command timings. The session sends one command at a time (no pipelining in
    greeting/EHLO/STARTTLS), so reply ``i + 1`` answers command ``i``; reply 0 is the
    greeting."""
    if not timer.replies:
        return
    report.timings_ms["greeting"] = (timer.replies[0] - connected) * 1000
    seen_ehlo = False
    for (sent, verb), answered in zip(timer.commands, timer.replies[1:], strict=False):
        step = "ehlo after TLS" if verb == "EHLO" and seen_ehlo else verb.lower()
        seen_ehlo = seen_ehlo or verb == "EHLO"
        report.timings_ms[step] = (answered - sent) * 1000
        if verb == "STARTTLS" and tls is not None:
            report.timings_ms["TLS handshake"] = tls.handshake_seconds * 1000


def _learned(report: ProbeReport, client: SMTPClient, policy: TLSPolicy) -> None:
    """Banner and capabilities from the session (also after a failure mid-way)."""
    try:
        session = client.session
    except ValueError:  # the connection failed before the session began
        return
    if session.greeting is not None:
        report.banner = [escape_text(line) for line in session.greeting.lines]
    before = session.capabilities_before_tls
    if before is not None:
        report.server_name = escape_text(before.server_name)
        report.extensions = _extensions(before)
    caps = client.capabilities
    if caps is None:
        return
    report.auth_mechanisms = sorted(caps.auth_mechanisms)
    report.size_limit = caps.size
    if policy is TLSPolicy.IMPLICIT:
        report.server_name = escape_text(caps.server_name)
        report.extensions = _extensions(caps)
    elif client.tls_info is not None:
        report.extensions_after_tls = _extensions(caps)


def _session(
    report: ProbeReport,
    args: argparse.Namespace,
    policy: TLSPolicy,
    context: ssl.SSLContext,
    echo: Transcript | None,
) -> TLSInfo | None:
    """One probing session; fills ``report``; raises the client's exceptions. Returns
    what TLS negotiated (None without TLS)."""
    timer = _Timer(echo)
    start = time.monotonic()
    sock = connect_tcp(report.host, report.port, args.timeout)
    connected = time.monotonic()
    report.timings_ms = {"connect": (connected - start) * 1000}
    report.address = str(sock.getpeername()[0])
    client = SMTPClient(
        sock=sock,
        port=report.port,
        tls=policy,
        ssl_context=context,
        server_hostname=report.host,
        timeout=args.timeout,
        local_hostname=args.ehlo,
        config=ClientConfig(transcript=timer),
    )
    try:
        try:
            client.connect()
        finally:
            _timings(report, timer, connected, client.tls_info)
            _learned(report, client, policy)
        if policy is TLSPolicy.IMPLICIT:
            report.timings_ms["TLS handshake and greeting"] = report.timings_ms.pop("greeting")
        client.quit()
    finally:
        client.close()
        report.timings_ms["total"] = (time.monotonic() - start) * 1000
    return client.tls_info


def _describe_tls(report: ProbeReport, tls: TLSInfo | None, verified: bool) -> None:
    if tls is None:
        return
    report.tls_version = tls.version
    report.tls_cipher = None if tls.cipher is None else f"{tls.cipher} ({tls.cipher_bits} bits)"
    report.certificate_verified = verified
    report.certificate = certificate_info(tls.peer_certificate) if verified else None
    if tls.peer_certificate_der and report.certificate is None:
        fingerprint = hashlib.sha256(tls.peer_certificate_der).hexdigest()
        report.error = (report.error or "") + f" (certificate SHA-256 {fingerprint})"


def run_probe(args: argparse.Namespace) -> int:
    """The ``probe`` command: exit 0 when everything offered worked, 4 on a TLS failure."""
    if args.insecure and args.cafile is not None:
        raise CLIError("--insecure and --cafile contradict each other", ExitCode.USAGE)
    if args.implicit_tls and args.no_starttls:
        raise CLIError("--implicit-tls and --no-starttls contradict each other", ExitCode.USAGE)
    host, port = parse_server(
        args.server, default_port=default_port(TLSPolicy.IMPLICIT) if args.implicit_tls else 25
    )
    if args.implicit_tls:
        policy = TLSPolicy.IMPLICIT
    elif args.no_starttls:
        policy = TLSPolicy.NONE
    else:
        policy = default_tls_policy(None, port)
        if policy is TLSPolicy.REQUIRED:  # port 587: probe it, do not insist
            policy = TLSPolicy.OPPORTUNISTIC
    try:
        context = client_ssl_context(verify=not args.insecure, cafile=args.cafile)
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise CLIError(
            f"cannot load --cafile: {escape_text(str(reason))}", ExitCode.USAGE
        ) from None
    echo = Transcript(sys.stderr) if args.transcript else None
    report = ProbeReport(host=host, port=port)
    code = ExitCode.OK
    try:
        tls = _session(report, args, policy, context, echo)
    except SMTPTLSError as error:
        code = ExitCode.TLS
        report.starttls = "handshake failed (see error)"
        if policy is TLSPolicy.IMPLICIT:
            report.starttls = "not used (implicit TLS failed, see error)"
        report.error = escape_text(str(error))
        second = ProbeReport(host=host, port=port)
        insecure = client_ssl_context(verify=False)
        tls = _session(second, args, policy, insecure, echo)
        if policy is TLSPolicy.IMPLICIT:
            report.banner, report.server_name = second.banner, second.server_name
            report.extensions = second.extensions
        report.auth_mechanisms = second.auth_mechanisms
        report.size_limit = second.size_limit
        report.extensions_after_tls = second.extensions_after_tls
        _describe_tls(report, tls, verified=False)
    else:
        _describe_tls(report, tls, verified=not args.insecure)
        if policy is TLSPolicy.IMPLICIT:
            report.starttls = "not used (implicit TLS)"
        elif policy is TLSPolicy.NONE:
            report.starttls = "not tried (--no-starttls)"
        elif tls is not None:
            report.starttls = "offered, works"
        else:
            report.starttls = "not offered"
    if policy is not TLSPolicy.IMPLICIT:
        report.auth_before_tls = list(report.extensions.get("AUTH", []))
    print(render_json(report) if args.json else render_table(report))
    if code != ExitCode.OK:
        print(f"smtpproto: error: {report.error}", file=sys.stderr)
    return code
