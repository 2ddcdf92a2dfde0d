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
import ipaddress
import socket  # noqa: TID251 -- CLI adapter layer: the connection it hands the client
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
from .common import (
    CLIError,
    ExitCode,
    connect_tcp,
    describe_error,
    exit_code_for,
    parse_server,
    tls_hint,
)
from .mx import (
    LookupFailed,
    MailHost,
    NoSuchDomain,
    mail_route,
    make_resolver,
    parse_nameserver,
)
from .output import Transcript, error_text
from .proxy import proxy_header
from .report import ProbeReport, certificate_info, render_json, render_table

__all__ = ["run_probe"]

#: The note when ``probe DOMAIN`` cannot look up MX records (no dnspython).
MX_NOT_LOOKED_UP = (
    "MX records not looked up (pip install 'smtpproto[dns]'); probing the host itself"
)


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
    route: list[MailHost],
) -> TLSInfo | None:
    """One probing session; fills ``report``; raises the client's exceptions. Returns
    what TLS negotiated (None without TLS). With a ``route`` (the domain's mail hosts),
    its first address that accepts the connection is probed."""
    timer = _Timer(echo)
    start = time.monotonic()
    sock = _connect(report, route, args.timeout)
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
        proxy_header=proxy_header(args),
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


def _connect(report: ProbeReport, route: list[MailHost], timeout: float) -> socket.socket:
    """The TCP connection: to ``report.host``, or the first mail host that answers
    (``report.host`` becomes its name, for TLS)."""
    if not route:
        return connect_tcp(report.host, report.port, timeout)
    failure: CLIError | None = None
    for candidate in route:
        try:
            sock = connect_tcp(candidate.address, report.port, timeout)
        except CLIError as error:
            failure = error
            continue
        report.host = candidate.name
        return sock
    assert failure is not None
    raise failure


def _describe_tls(report: ProbeReport, tls: TLSInfo | None, verified: bool) -> None:
    if tls is None:
        return
    report.tls_version = tls.version
    report.tls_cipher = None if tls.cipher is None else f"{tls.cipher} ({tls.cipher_bits} bits)"
    report.certificate_verified = verified
    report.certificate = certificate_info(tls.peer_certificate) if verified else None
    if tls.peer_certificate_der:
        fingerprint = hashlib.sha256(tls.peer_certificate_der).hexdigest()
        report.certificate_sha256 = fingerprint
        if report.error is not None:  # the failure names the certificate it refused
            report.error += f" (certificate SHA-256 {fingerprint})"


def run_probe(args: argparse.Namespace) -> int:
    """The ``probe`` command: exit 0 when everything offered worked, 4 on a TLS failure.

    With ``--json`` stdout gets exactly one JSON object whatever happens; a failure
    fills its ``error`` (and the one-line error on stderr and the exit code stay).
    """
    default = default_port(TLSPolicy.IMPLICIT) if args.implicit_tls else 25
    default = args.port if args.port is not None else default
    report = ProbeReport(host=escape_text(args.server), port=default)
    try:
        _check_args(args)
        report.host, report.port = parse_server(args.server, default_port=default)
        port_given = parse_server(args.server, default_port=0)[1] != 0
        return _probe(report, args, port_given=port_given)
    except Exception as error:
        if not args.json or exit_code_for(error) is None:
            raise
        report.error = describe_error(error)
        print(render_json(report))
        raise


def _check_args(args: argparse.Namespace) -> None:
    """Option conflicts and a bad ``--resolver``: usage errors before connecting."""
    if args.insecure and args.cafile is not None:
        raise CLIError("--insecure and --cafile contradict each other", ExitCode.USAGE)
    if args.implicit_tls and args.no_starttls:
        raise CLIError("--implicit-tls and --no-starttls contradict each other", ExitCode.USAGE)
    tls_only = [
        option
        for option, given in (("--insecure", args.insecure), ("--cafile", args.cafile))
        if given
    ]
    if args.no_starttls and tls_only:
        raise CLIError(
            f"--no-starttls makes no TLS connection: not with {', '.join(tls_only)}",
            ExitCode.USAGE,
        )
    parse_nameserver(args.resolver)
    proxy_header(args)  # a bad --proxy* value is a usage error before connecting


def _mail_server(report: ProbeReport, args: argparse.Namespace) -> list[MailHost]:
    """``probe DOMAIN`` (no port): the domain's mail servers when it has MX records
    (RFC 5321 §5.1), else the name itself; an empty list means "connect to the name"."""
    if args.no_mx or _is_ip(report.host):
        return []
    try:
        resolver = make_resolver(
            report.host, timeout=args.timeout, nameserver=parse_nameserver(args.resolver)
        )
    except CLIError:  # no dnspython: probe the name itself, and say so
        print(f"smtpproto: note: {MX_NOT_LOOKED_UP}", file=sys.stderr)
        return []
    try:
        records = resolver.mx(report.host.encode("idna").decode("ascii"))
    except (NoSuchDomain, LookupFailed, UnicodeError):
        return []  # not a mail domain (or not in DNS, like localhost): the host itself
    if not records:
        return []
    route = mail_route(report.host, resolver)
    report.domain = report.host
    report.mx = [f"{host.preference} {host.name}" for host in route]
    report.mx = list(dict.fromkeys(report.mx))
    return route


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _probe(report: ProbeReport, args: argparse.Namespace, *, port_given: bool) -> int:
    """Fill ``report``, print it; the exit code."""
    port = report.port
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
    route = [] if port_given else _mail_server(report, args)
    if route:
        report.host = route[0].name
    echo = Transcript(sys.stderr) if args.transcript else None
    host, code = report.host, ExitCode.OK
    try:
        tls = _session(report, args, policy, context, echo, route)
    except SMTPTLSError as error:
        code = ExitCode.TLS
        report.starttls = "handshake failed (see error)"
        if policy is TLSPolicy.IMPLICIT:
            report.starttls = "not used (implicit TLS failed, see error)"
        report.error = escape_text(str(error))
        hint = tls_hint(error, implicit=policy is TLSPolicy.IMPLICIT, probe=True)
        second = ProbeReport(host=host, port=port)
        insecure = client_ssl_context(verify=False)
        try:
            tls = _session(second, args, policy, insecure, echo, route)
        except SMTPTLSError:  # not the certificate: TLS fails without verification too
            if hint is None:
                raise
            raise CLIError(f"{report.error}; {hint}", ExitCode.TLS) from None
        if policy is TLSPolicy.IMPLICIT:
            report.banner, report.server_name = second.banner, second.server_name
            report.extensions = second.extensions
        report.auth_mechanisms = second.auth_mechanisms
        report.size_limit = second.size_limit
        report.extensions_after_tls = second.extensions_after_tls
        _describe_tls(report, tls, verified=False)
        if hint is not None:
            report.error += f"; {hint}"
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
        print(error_text(f"smtpproto: error: {report.error}", sys.stderr, "auto"), file=sys.stderr)
    return code
