"""``smtpproto send``: one message through the blocking client, with a live transcript.

CLI adapter layer; no SMTP knowledge of its own. Theory of operation:

1. Everything that can be wrong with the input is checked before any connection: the
   server address, the password source, the SASL mechanism name, the envelope and
   headers (``message``), the body and attachment files. Each is exit 2.
2. ``connect_tcp`` opens the TCP connection itself (so ``--quit-after connect`` and a
   clean "unknown host" / "refused" message are possible) and hands the socket to
   ``blocking.SMTPClient``, which runs the session drivers: greeting, EHLO, STARTTLS per
   ``--tls``, AUTH, then MAIL/RCPT/DATA or BDAT (pipelined and chunked when offered,
   unless ``--no-pipelining`` / ``--no-chunking``).
3. The engine's transcript hook (AUTH lines arrive redacted) prints each line with a
   time stamp; the client's ``tls_info`` (recorded by the adapter right after the
   handshake) marks the lines under TLS and names the version and cipher.
4. With no ``--server`` the built-in server (``testing.run_server``) runs in-process with
   STARTTLS (its self-signed certificate is the only CA trusted for the run) and AUTH
   with a generated password; after the session the message is printed as the server
   stored it.

``--quit-after`` stops at a stage (``common.STAGES``) with the session drivers' own
stops (``connect(until=...)``, ``sendmail(stop_after=...)``): ``connect`` (no SMTP at
all), ``greeting``, ``ehlo`` (before STARTTLS), ``tls`` (after STARTTLS and the second
EHLO), ``xclient`` (after XCLIENT and its EHLO), ``auth``, then QUIT; ``mail`` and
``rcpt`` end the transaction with RSET, then QUIT; ``data`` stops at DATA's 354 and
closes the connection without sending the content (after a 354 every line would be
content; nothing is delivered).
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import json
import os
import secrets
import socket  # noqa: TID251 -- CLI adapter layer: opens the TCP connection
import ssl
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

from ..adapters.blocking import SMTPClient, TLSInfo
from ..adapters.common import Step
from ..adapters.tls import client_ssl_context
from ..client_engine.capabilities import Capabilities
from ..client_engine.config import ClientConfig, TLSPolicy
from ..client_engine.events import Xclient, Xforward
from ..drivers.exceptions import (
    SMTPError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPReplyError,
    SMTPTLSError,
)
from ..drivers.session import Driver, MailStage, OpenStage, Request, Write
from ..drivers.support import MailOptions, default_port, default_tls_policy
from ..sasl.base import ChannelBinding, ClientMechanism
from ..sasl.mechanisms import External, choose_mechanism
from ..wire.errors import LocalProtocolError
from ..wire.text import escape_text
from .common import (
    CLIError,
    ExitCode,
    connect_tcp,
    connect_unix,
    describe_error,
    exit_code_for,
    parse_server,
    quote,
    tls_hint,
)
from .content import Content
from .message import Envelope, build_message
from .mx import (
    MailHost,
    address_literal,
    mail_route,
    make_resolver,
    parse_nameserver,
    recipient_domain,
)
from .output import (
    Console,
    ProgressBar,
    SessionRecord,
    Transcript,
    format_message,
    use_color,
)
from .proxy import proxy_header

__all__ = ["DEFAULT_TIMEOUT", "TLSWatch", "run_send"]

#: Seconds the CLI waits for any reply or write when ``--timeout`` is not given: an
#: interactive tool should not sit five minutes on a dead server (swaks uses 30 s).
DEFAULT_TIMEOUT = 60.0
#: Octets of the received message the demo prints (a whole line more at most); the
#: rest is counted, not shown.
SHOW_LIMIT = 64 * 1024
#: The user name the demo's built-in server accepts (with a password made per run).
DEMO_USER = "demo"


#: ``--drop-after-send``: the command lines whose write ends each stage (as swaks: the
#: first RCPT; "dot" is the write ending in the content's "\r\n.\r\n").
_STAGE_COMMANDS = {
    "ehlo": (b"EHLO ", b"HELO ", b"LHLO "),
    "tls": (b"STARTTLS",),
    "xclient": (b"XCLIENT ",),
    "auth": (b"AUTH ",),
    "mail": (b"MAIL ",),
    "rcpt": (b"RCPT ",),
    "data": (b"DATA",),
}


class _Dropped(Exception):
    """``--drop-after-send``: the stage's command is written and the connection closed."""


class _DropAfterSend(SMTPClient):
    """The blocking client that closes the connection as soon as the write holding the
    command of ``stage`` is on the wire, before its reply and without QUIT (swaks'
    ``--drop-after-send``; RFC 5321 §3.8: the server must cope), then raises
    ``_Dropped``. A pipelined group (RFC 2920 §3.1) is one write: it goes whole."""

    def __init__(self, stage: str, **options: Any) -> None:
        super().__init__(**options)
        self._stage = stage

    def _send(self, request: Write, driver: Driver[Any], step: Step) -> Request | None:
        following = super()._send(request, driver, step)
        if self._ends_stage(bytes(request.data)):
            self.close()
            raise _Dropped
        return following

    def _ends_stage(self, data: bytes) -> bool:
        if self._stage == "dot":
            return data.endswith(b"\r\n.\r\n")  # dot-stuffed content never holds it
        starts = _STAGE_COMMANDS[self._stage]
        return any(line.startswith(starts) for line in data.split(b"\r\n"))


def _pipelining(args: argparse.Namespace) -> bool | None:
    """``--pipelining``; with ``--drop-after-send`` only when asked (as swaks), so the
    drop follows the stage's own command rather than the whole pipelined group."""
    if args.drop_after_send is not None and args.pipelining is None:
        return False
    return cast("bool | None", args.pipelining)


class TLSWatch:
    """Tells the transcript whether TLS is up: ``client.tls_info`` of the client set
    with ``watch`` (the transcript exists before the client it prints for)."""

    def __init__(self) -> None:
        self._client: SMTPClient | None = None

    def watch(self, client: SMTPClient) -> None:
        self._client = client

    @property
    def info(self) -> TLSInfo | None:
        return None if self._client is None else self._client.tls_info

    def describe(self) -> str | None:
        """``"TLSv1.3, TLS_AES_256_GCM_SHA384 (256 bits)"`` once TLS is up, else None."""
        info = self.info
        return None if info is None else info.describe()


@dataclass(frozen=True, slots=True)
class _Target:
    """Where and how to connect; ``user``/``password`` are None without AUTH. The
    password is never in the repr (docs/design.md §4 rule 11)."""

    host: str
    port: int
    policy: TLSPolicy
    context: ssl.SSLContext
    user: str | None
    password: str | None = field(repr=False)
    allow_cleartext_auth: bool = False
    #: The mail hosts found by the MX lookup, tried in order (empty: connect to ``host``).
    route: tuple[MailHost, ...] = ()


def _password(args: argparse.Namespace) -> str:
    if args.password_env is not None:
        value = os.environ.get(args.password_env)
        if value is None:
            raise CLIError(
                f"environment variable {escape_text(args.password_env)} is not set",
                ExitCode.USAGE,
            )
        return value
    prompt = f"Password for {escape_text(args.user)}: "
    if os.name == "posix" and not _has_terminal():
        # getpass would read stdin too, after its "Warning: Password input may be
        # echoed." line; the prompt alone says what is asked.
        if "-" in (args.data, args.body, args.body_file):
            raise CLIError(
                "no terminal for the password and stdin carries the message: "
                "use --password-env NAME",
                ExitCode.USAGE,
            )
        print(prompt, end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        print(file=sys.stderr)  # the answer's newline was not echoed
        if not line:
            raise CLIError("no password given (use --password-env NAME)", ExitCode.USAGE)
        return line.rstrip("\r\n")
    try:
        return getpass.getpass(prompt)
    except EOFError:
        raise CLIError("no password given (use --password-env NAME)", ExitCode.USAGE) from None


def _has_terminal() -> bool:
    """Whether this process has a controlling terminal (where getpass asks)."""
    try:
        with open("/dev/tty", "rb"):
            return True
    except OSError:
        return False


def _auth_names(args: argparse.Namespace) -> list[str]:
    """``--auth A,B``: the mechanisms the user accepts, in preference order."""
    return [name.strip().upper() for name in str(args.auth).split(",") if name.strip()]


def _mechanism(
    args: argparse.Namespace,
    target: _Target,
    binding: ChannelBinding | None,
    offered: frozenset[str] | None = None,
) -> ClientMechanism | None:
    """The first ``--auth`` mechanism (in the user's order) that the server offers and
    the session allows (-PLUS needs channel binding, EXTERNAL a client certificate);
    None without ``--auth`` (the strongest offered). Before connecting (``offered``
    None) every name is checked, a usage error if it cannot be built; after EHLO, none
    possible is exit 5."""
    if args.auth is None:
        return None
    names = _auth_names(args)
    if offered is None:
        for name in names:
            _check_mechanism_name(args, target, name)
        return None
    for name in names:
        if name in offered:
            mechanism = _build_mechanism(args, target, name, binding)
            if mechanism is not None:
                return mechanism
    listed = " ".join(sorted(offered)) or "no mechanism"
    raise CLIError(
        f"authentication not possible: the server offers {escape_text(listed)}, "
        f"none of --auth {escape_text(','.join(names))} can be used here",
        ExitCode.AUTH,
    )


def _build_mechanism(
    args: argparse.Namespace, target: _Target, name: str, binding: ChannelBinding | None
) -> ClientMechanism | None:
    if name == "EXTERNAL":  # RFC 4422 App. A: the identity is the TLS client certificate
        return External(target.user or "") if args.tls_cert is not None else None
    if target.user is None or target.password is None:
        return None
    return choose_mechanism(
        [name], username=target.user, password=target.password, channel_binding=binding
    )


def _check_mechanism_name(args: argparse.Namespace, target: _Target, name: str) -> None:
    """A usage error now for an ``--auth`` name that can never be used."""
    if name == "EXTERNAL":
        if args.tls_cert is None:
            raise CLIError("--auth EXTERNAL needs --tls-cert", ExitCode.USAGE)
        return
    if target.user is None or target.password is None:
        raise CLIError(f"--auth {escape_text(name)} needs --user", ExitCode.USAGE)
    if name.endswith("-PLUS"):
        return  # buildable only with the channel binding of the TLS session
    if choose_mechanism([name], username=target.user, password=target.password) is None:
        raise CLIError(
            f"unsupported AUTH mechanism {quote(name)} "
            "(PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1, SCRAM-SHA-256 and -PLUS variants, "
            "EXTERNAL)",
            ExitCode.USAGE,
        )


def _needs_password(args: argparse.Namespace) -> bool:
    """Whether AUTH will need a password: ``--user`` without ``--auth EXTERNAL`` alone."""
    return args.user is not None and (args.auth is None or _auth_names(args) != ["EXTERNAL"])


def _attributes(values: list[str], flag: str) -> dict[str, str]:
    """``--xclient``/``--xforward`` ``ATTR=VALUE`` options as one mapping, checked by
    building the command (unknown names, CR/LF/NUL/space, over-long values: usage)."""
    attributes: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CLIError(f"{flag} {quote(item)}: expected ATTR=VALUE", ExitCode.USAGE)
        if name.upper() in attributes:
            raise CLIError(f"{flag} {escape_text(name.upper())} given twice", ExitCode.USAGE)
        attributes[name.upper()] = value
    if attributes:
        try:
            (Xclient if flag == "--xclient" else Xforward)(attributes=attributes)
        except LocalProtocolError as exc:
            raise CLIError(f"{flag}: {exc}", ExitCode.USAGE) from None
    return attributes


def _check_args(args: argparse.Namespace) -> None:
    demo = args.server is None and args.unix_socket is None
    demo = demo and (args.demo or not _recipients_given(args))
    if args.demo and args.server is not None:
        raise CLIError("--demo and --server contradict each other", ExitCode.USAGE)
    if (
        args.auth is not None
        and args.user is None
        and not demo
        and _auth_names(args) != ["EXTERNAL"]
    ):
        raise CLIError("--auth needs --user", ExitCode.USAGE)
    if args.password_env is not None and args.user is None:
        raise CLIError("--password-env needs --user", ExitCode.USAGE)
    if args.insecure and args.cafile is not None:
        raise CLIError("--insecure and --cafile contradict each other", ExitCode.USAGE)
    if args.data is not None:
        given = [
            option
            for option, value in (
                ("--subject", args.subject),
                ("--header", args.header),
                ("--attach", args.attach),
            )
            if value
        ]
        if given:
            raise CLIError(
                f"--data sends the file as is: not with {', '.join(given)}", ExitCode.USAGE
            )
    if args.no_data_fixup and args.data is None:
        raise CLIError("--no-data-fixup is for --data FILE|-", ExitCode.USAGE)
    if args.no_data_fixup and args.chunking:
        raise CLIError(
            "--no-data-fixup sends raw DATA content: not with --chunking", ExitCode.USAGE
        )
    if args.tls_key is not None and args.tls_cert is None:
        raise CLIError("--tls-key needs --tls-cert", ExitCode.USAGE)
    if args.ipv4 and args.ipv6:
        raise CLIError("-4 and -6 contradict each other", ExitCode.USAGE)
    if args.unix_socket is not None and args.server is not None:
        raise CLIError("--unix-socket and --server contradict each other", ExitCode.USAGE)
    _check_unused(args)
    _check_output_file(args)
    if args.protocol == "ssmtp" and args.tls not in (None, "implicit"):
        raise CLIError(
            f"--protocol ssmtp is SMTP over implicit TLS: not with --tls {args.tls}",
            ExitCode.USAGE,
        )
    mail_options(args)  # a bad --dsn-*/--size value fails before connecting
    parse_nameserver(args.resolver)
    if proxy_header(args) is not None and demo:  # a bad --proxy* value fails here too
        raise CLIError(
            "--proxy* needs --server or --unix-socket (the demo server reads no PROXY header)",
            ExitCode.USAGE,
        )
    _attributes(args.xclient, "--xclient")
    _attributes(args.xforward, "--xforward")
    variants = (
        ("--xclient-before-starttls", args.xclient_before_starttls),
        ("--xclient-optional", args.xclient_optional),
        ("--xclient-optional-strict", args.xclient_optional_strict),
        ("--xclient-no-verify", args.xclient_no_verify),
    )
    stops = (
        ("--quit-after xclient", args.quit_after == "xclient"),
        ("--drop-after xclient", args.drop_after == "xclient"),
        ("--drop-after-send xclient", args.drop_after_send == "xclient"),
    )
    for option, given in (*variants, *stops):
        if given and not args.xclient:
            raise CLIError(f"{option} needs --xclient ATTR=VALUE", ExitCode.USAGE)
    if (args.quit_after or args.drop_after) == "data" and args.chunking:
        raise CLIError(
            "--quit-after data stops at DATA's 354 reply: not with --chunking", ExitCode.USAGE
        )
    if args.drop_after_send in ("data", "dot") and args.chunking:
        raise CLIError(
            f"--drop-after-send {args.drop_after_send} drops after DATA or its final '.': "
            "not with --chunking",
            ExitCode.USAGE,
        )


def _warn_insecure(args: argparse.Namespace) -> None:
    """The ``--insecure`` warning, once the input is checked (a usage error stays the
    one line on stderr) and before connecting."""
    if args.insecure:
        print(
            "smtpproto: WARNING: --insecure: the server certificate is NOT verified; "
            "anyone on the path can read and change this session",
            file=sys.stderr,
            flush=True,
        )


def _check_unused(args: argparse.Namespace) -> None:
    """Options the chosen destination would silently ignore are usage errors: no TCP
    options for a UNIX-domain socket, no DNS server when there is no MX lookup, no TLS
    option with ``--tls none``."""
    if args.unix_socket is not None:
        tcp = [
            option
            for option, value in (
                ("--port", args.port),
                ("--local-interface", args.local_interface),
                ("-4", args.ipv4),
                ("-6", args.ipv6),
                ("--resolver", args.resolver),
            )
            if value
        ]
        if tcp:
            raise CLIError(
                f"--unix-socket connects to a file: not with {', '.join(tcp)}", ExitCode.USAGE
            )
    if args.server is not None and args.resolver is not None:
        raise CLIError(
            "--resolver is for the MX lookup: not with --server (its name is resolved "
            "by the system)",
            ExitCode.USAGE,
        )
    if args.tls == "none":
        tls_only = [
            option
            for option, value in (
                ("--insecure", args.insecure),
                ("--cafile", args.cafile),
                ("--tls-cert", args.tls_cert),
                ("--tls-key", args.tls_key),
                ("--tls-min-version", args.tls_min_version),
                ("--tls-sni", args.tls_sni),
            )
            if value is not None and value is not False
        ]
        if tls_only:
            raise CLIError(
                f"--tls none makes no TLS connection: not with {', '.join(tls_only)}",
                ExitCode.USAGE,
            )


def _check_output_file(args: argparse.Namespace) -> None:
    """``--output-file`` is emptied before connecting: naming a file that is also read
    (``--data``, ``--body-file``, ``--attach``) would destroy it and send nothing."""
    if args.output_file is None or not os.path.exists(args.output_file):
        return
    for option, path in (
        ("--data", args.data),
        ("--body-file", args.body_file),
        *(("--attach", attached) for attached in args.attach),
    ):
        if path in (None, "-") or not os.path.exists(path):
            continue
        if os.path.samefile(path, args.output_file):
            raise CLIError(
                f"--output-file {quote(args.output_file)} is the {option} file: "
                "writing the transcript would destroy it",
                ExitCode.USAGE,
            )


def _client_context(args: argparse.Namespace) -> ssl.SSLContext:
    try:
        context = client_ssl_context(verify=not args.insecure, cafile=args.cafile)
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise CLIError(
            f"cannot load --cafile {quote(str(args.cafile))}: {reason}", ExitCode.USAGE
        ) from None
    if args.tls_min_version == "1.3":
        context.minimum_version = ssl.TLSVersion.TLSv1_3  # RFC 8446; 1.2 is the floor
    if args.tls_cert is not None:
        try:  # the client certificate (RFC 8446 §4.4.2), for SASL EXTERNAL or relaying
            context.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise CLIError(
                f"cannot load --tls-cert {quote(args.tls_cert)}: {reason}",
                ExitCode.USAGE,
            ) from None
    return context


def _recipients_given(args: argparse.Namespace) -> bool:
    return bool(args.to or args.cc or args.bcc)


def run_send(args: argparse.Namespace) -> int:
    """The ``send`` command; returns the exit code (raises ``CLIError`` / ``SMTPError``).

    The demo runs only when asked for: ``--demo``, or no ``--server`` and no recipient.
    Recipients without ``--server`` go to their domain's mail server (``mx``).
    """
    if not args.json:
        _check_args(args)
        with _output(args) as console:
            return _send(args, console)
    with _output(args) as console:  # --json: one object also for a usage error
        record = SessionRecord()
        console.record = record
        try:
            _check_args(args)
            code = _send(args, console)
        except Exception as error:
            failed = exit_code_for(error)
            if failed is None:
                raise
            _print_record(console, record, failed, describe_error(error))
            raise
        _print_record(console, record, code, None)
        return code


def _print_record(console: Console, record: SessionRecord, code: int, error: str | None) -> None:
    """``send --json``: the whole session as one JSON object on the output."""
    console.line(json.dumps(record.as_dict(exit_code=code, error=error), indent=2))


@contextmanager
def _output(args: argparse.Namespace) -> Iterator[Console]:
    """The console: the transcript on stdout or ``--output-file``, the progress bar on
    stderr. The file is made (or emptied) before connecting; a failure is exit 2."""
    if args.output_file is None:
        yield Console(sys.stdout, sys.stderr)
        return
    try:
        file = open(args.output_file, "w", encoding="utf-8")  # noqa: SIM115 -- closed below
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise CLIError(
            f"cannot write --output-file {quote(args.output_file)}: {reason}",
            ExitCode.USAGE,
        ) from None
    try:
        yield Console(file, sys.stderr, shared=False)
    finally:
        file.close()


def _transcript(
    args: argparse.Namespace, console: Console, tls: TLSWatch
) -> Transcript | SessionRecord | None:
    """The transcript as ``-q``, ``--hide-*``, ``--no-timestamps`` and ``--color`` ask;
    with ``--json`` the console's ``SessionRecord`` instead."""
    if console.record is not None:
        return console.record
    hide = {"send", "receive", "info"} if args.hide_all else set()
    asked = {"send": args.hide_send, "receive": args.hide_receive, "info": args.hide_informational}
    hide |= {kind for kind, hidden in asked.items() if hidden}
    if args.quiet or len(hide) == 3:
        return None
    out = console.out if console.out is not None else sys.stdout
    return Transcript(
        out,
        tls_info=tls.describe,
        hide=hide,
        timestamps=args.timestamps,
        color=use_color(args.color, out),
        console=console,
    )


def _send(args: argparse.Namespace, console: Console) -> int:
    direct = args.unix_socket is None and args.server is None
    if direct and (args.demo or not _recipients_given(args)):
        return _run_demo(args, console)
    tls = TLSPolicy.IMPLICIT if args.protocol == "ssmtp" else args.tls
    policy = default_tls_policy(tls, None) if tls is not None else None
    port = args.port if args.port is not None else None
    if port is None:
        port = default_port(policy) if policy is not None else 25
    if args.server is not None:
        host, port = parse_server(args.server, default_port=port)
    if policy is None:
        policy = default_tls_policy(None, port)
    sender = args.sender or f"{getpass.getuser()}@{socket.gethostname()}"
    hostname = host if args.server is not None else "localhost"
    envelope, content = build_message(args, sender=sender, demo=False, hostname=hostname)
    try:
        context = _client_context(args)
        if args.auth is not None:  # an unknown name fails now, before the password prompt
            early = _Target("", port, policy, context, args.user, "checked before the prompt")
            _mechanism(args, early, None)
        # The password last: bad input above is reported before the user types it.
        password = _password(args) if _needs_password(args) else None
        route: tuple[MailHost, ...] = ()
        if args.unix_socket is not None:
            host = args.unix_socket
        elif args.server is None:
            host = recipient_domain(envelope.recipients)
            route = tuple(_route(args, host))
        target = _Target(host, port, policy, context, args.user, password, route=route)
        _warn_insecure(args)
        return _session(args, console, target, envelope, content)
    finally:
        content.close()


def _route(args: argparse.Namespace, domain: str) -> list[MailHost]:
    """The mail hosts of ``domain``; an address literal needs no DNS (nor dnspython)."""
    literal = address_literal(domain)
    if literal is not None:
        return [MailHost(literal, 0, literal)]
    timeout = args.timeout if args.timeout is not None else DEFAULT_TIMEOUT
    return mail_route(
        domain, make_resolver(domain, timeout=timeout, nameserver=parse_nameserver(args.resolver))
    )


def _family(args: argparse.Namespace) -> socket.AddressFamily:
    if args.ipv4:
        return socket.AF_INET
    return socket.AF_INET6 if args.ipv6 else socket.AF_UNSPEC


def _local_interface(args: argparse.Namespace) -> tuple[str, int] | None:
    """``--local-interface ADDRESS[:PORT]`` as a bind address (port 0: any)."""
    if args.local_interface is None:
        return None
    return parse_server(args.local_interface, default_port=0)


def _connect(
    args: argparse.Namespace, target: _Target, timeout: float, note: Callable[[str], None]
) -> tuple[socket.socket, str]:
    """The connection and the name the server is known by (for TLS): ``--unix-socket``
    (known as ``localhost``), ``host``, or the first mail host of ``route`` that
    answers (RFC 5321 §5.1: try each in order), within ``-4``/``-6``."""
    if args.unix_socket is not None:
        note(f"connecting to {args.unix_socket}")
        return connect_unix(args.unix_socket, timeout), "localhost"
    family, source = _family(args), _local_interface(args)
    if not target.route:
        note(f"connecting to {target.host} port {target.port}")
        sock = connect_tcp(target.host, target.port, timeout, family=family, source=source)
        return sock, target.host
    versions = {socket.AF_INET: {4}, socket.AF_INET6: {6}}.get(family, {4, 6})
    route = [c for c in target.route if ipaddress.ip_address(c.address).version in versions]
    if not route:
        raise CLIError(
            f"no mail server of {escape_text(target.host)} has an address of that IP version",
            ExitCode.CONNECT,
        )
    failure: CLIError | None = None
    for candidate in route:
        note(
            f"connecting to {candidate.name} [{candidate.address}] port {target.port} "
            f"(MX {candidate.preference} for {target.host})"
        )
        try:
            sock = connect_tcp(candidate.address, target.port, timeout, source=source)
        except CLIError as error:
            if error.code != ExitCode.CONNECT:
                raise
            note(str(error))
            failure = error
        else:
            return sock, candidate.name
    assert failure is not None
    raise CLIError(
        f"no mail server of {escape_text(target.host)} answered; last: {failure}",
        ExitCode.CONNECT,
    )


def _session(
    args: argparse.Namespace,
    console: Console,
    target: _Target,
    envelope: Envelope,
    content: Content,
) -> int:
    """Connect, run the stages up to ``--quit-after``, and send; the exit code."""
    timeout = args.timeout if args.timeout is not None else DEFAULT_TIMEOUT
    tls = TLSWatch()
    transcript = _transcript(args, console, tls)
    note = transcript.note if transcript is not None else (lambda text: None)
    sock, server_name = _connect(args, target, timeout, note)
    peer = sock.getpeername()
    note(f"connected to {peer[0]} port {peer[1]}" if isinstance(peer, tuple) else "connected")
    stop = args.quit_after or args.drop_after or args.drop_after_send
    if stop == "connect":
        sock.close()
        note(_stopped(args, "connect"))
        return ExitCode.OK
    policy = target.policy
    if stop in ("greeting", "ehlo") and policy is not TLSPolicy.IMPLICIT:
        policy = TLSPolicy.NONE  # the session ends before STARTTLS either way
    make: Callable[..., SMTPClient] = SMTPClient
    if args.drop_after_send is not None:
        make = partial(_DropAfterSend, args.drop_after_send)
    client = make(
        sock=sock,
        port=target.port,
        tls=policy,
        ssl_context=target.context,
        server_hostname=args.tls_sni or server_name,
        timeout=timeout,
        local_hostname=args.ehlo,
        allow_cleartext_auth=target.allow_cleartext_auth,
        lmtp=args.protocol == "lmtp",
        config=ClientConfig(transcript=transcript, helo_only=args.protocol == "smtp"),
        proxy_header=proxy_header(args),
    )
    tls.watch(client)
    try:
        return _stages(args, console, client, target, envelope, content, note)
    except _Dropped:
        note(_stopped(args, stop))
        return ExitCode.OK
    except SMTPReplyError as error:
        note(f"hint: {error.explain()}")
        _polite_quit(client)
        raise
    except SMTPRecipientsRefused as error:
        _, reply = next(iter(error.refused.items()))
        note(f"hint: {reply.explain('RCPT')}")
        _polite_quit(client)
        raise
    except CLIError:
        _polite_quit(client)
        raise
    except SMTPTLSError as error:
        hint = tls_hint(error, implicit=policy is TLSPolicy.IMPLICIT)
        if hint is None:
            raise
        raise CLIError(f"{describe_error(error)}; {hint}", ExitCode.TLS) from None
    finally:
        if console.record is not None:
            console.record.tls = tls.describe()
        client.close()


def _xclient(args: argparse.Namespace, client: SMTPClient, note: Callable[[str], None]) -> None:
    """XCLIENT (EHLO follows its 220), as swaks: every attribute must be advertised
    unless ``--xclient-no-verify``; ``--xclient-optional`` goes on without it when it
    or its attributes are not advertised or it is refused, ``--xclient-optional-strict``
    likewise except a refusal, which fails (exit 9) as without either."""
    attributes = _attributes(args.xclient, "--xclient")
    optional = args.xclient_optional or args.xclient_optional_strict
    flag = "--xclient-optional" if args.xclient_optional else "--xclient-optional-strict"
    caps = client.capabilities
    if optional and (caps is None or not caps.has("XCLIENT")):
        note(f"XCLIENT is not advertised: going on without it ({flag})")
        return
    if optional and caps is not None and not args.xclient_no_verify:
        offered = {name.upper() for name in caps.params("XCLIENT")}
        missing = sorted(set(attributes) - offered)
        if missing:
            note(
                f"XCLIENT attribute(s) {' '.join(missing)} not advertised: going on "
                f"without XCLIENT ({flag})"
            )
            return
    try:
        client.xclient(attributes, require_advertised=not args.xclient_no_verify)
    except SMTPReplyError as error:
        if not args.xclient_optional:
            raise
        note(f"XCLIENT refused ({error.reply}): going on without it ({flag})")


def _polite_quit(client: SMTPClient) -> None:
    """QUIT after a refusal when the session still allows it (RFC 5321 §4.1.1.10);
    a failing QUIT changes nothing about the error being reported."""
    if client.session.can_quit:
        with suppress(SMTPError):
            client.quit()


def _quit_after_delivery(client: SMTPClient, note: Callable[[str], None]) -> None:
    """QUIT once the message's outcome is known. A failing QUIT (a close, a 421 or a
    refusal instead of 221, RFC 5321 §4.1.1.10) is a note, not the exit code: the
    connection is closed either way, and an error exit would read as a failed
    delivery (a retry would send the message again)."""
    try:
        client.quit()
    except SMTPError as error:
        note(f"QUIT failed ({error}); the outcome below stands")


def _stages(
    args: argparse.Namespace,
    console: Console,
    client: SMTPClient,
    target: _Target,
    envelope: Envelope,
    content: Content,
    note: Callable[[str], None],
) -> int:
    """The session on a connected ``client``, up to ``--quit-after``; the exit code."""
    stop = args.quit_after or args.drop_after or args.drop_after_send
    options = mail_options(args)
    if stop in ("greeting", "ehlo", "tls"):
        client.connect(until=cast("OpenStage", stop))
        _leave(args, client, stop, note)
        return ExitCode.OK
    if args.xclient and args.xclient_before_starttls:
        client.connect(until="ehlo")
        _xclient(args, client, note)
        if stop != "xclient":
            client.starttls()
    else:
        client.connect()
        if args.xclient:  # after STARTTLS, before AUTH (as swaks does)
            _xclient(args, client, note)
    if stop == "xclient":
        _leave(args, client, stop, note)
        return ExitCode.OK
    if target.password is not None or (args.auth is not None and args.tls_cert is not None):
        _login(args, client, target)
    if args.xforward:  # just before MAIL: it describes the next transaction
        client.xforward(_attributes(args.xforward, "--xforward"))
    if stop == "auth":
        _leave(args, client, stop, note)
        return ExitCode.OK
    _check_server_can_take(client, envelope, content, options.size)
    _check_options_offered(client.capabilities, options, args.chunking)
    if stop in ("mail", "rcpt", "data"):
        return _stop_in_transaction(args, client, envelope, content, stop, note, options)
    bar = ProgressBar(content.size, sys.stderr, enabled=sys.stderr.isatty(), console=console)
    try:
        result = client.sendmail(
            envelope.sender,
            envelope.recipients,
            content.source(),
            options=options,
            pipelining=_pipelining(args),
            # --drop-after-send dot drops after DATA's final ".", so no BDAT
            chunking=False if args.drop_after_send == "dot" else args.chunking,
            progress=lambda sent, total: bar.update(sent),
            raw=content.raw,
        )
    finally:
        bar.finish()
    if stop == "dot":
        _leave(args, client, stop, note)
    else:
        _quit_after_delivery(client, note)
    if result.failed:
        # Every recipient with its deciding reply ("1 of 2", not "1 of 1"): the RCPT
        # reply, or its own reply after the content under LMTP (RFC 2033 §4.2).
        failed = dict(result.failed)
        refused = SMTPRecipientsRefused([(a, failed.get(a, r)) for a, r in result.recipients])
        note(f"hint: {result.failed[0][1].explain('RCPT')}")
        delivered = len(result.delivered)
        raise CLIError(f"delivered to {delivered}, but {refused}", ExitCode.RECIPIENTS_REFUSED)
    note(f"message accepted for {len(result.delivered)} recipient(s)")
    return ExitCode.OK


#: ``--drop-after-send`` at a stage whose command the session did not send.
_NOT_SENT = {"tls": ExitCode.TLS, "auth": ExitCode.AUTH}


def _stopped(args: argparse.Namespace, stage: str) -> str:
    if args.drop_after is not None:
        return f"dropped the connection after {stage}, as asked (no QUIT)"
    if args.drop_after_send is not None:
        return f"dropped the connection after sending {stage}, before its reply, as asked"
    return f"quit after {stage}, as asked"


def _leave(
    args: argparse.Namespace, client: SMTPClient, stage: str, note: Callable[[str], None]
) -> None:
    """End the session at ``stage``: QUIT (``--quit-after``), or close the connection
    without a word (``--drop-after``, as a client that crashes or times out would;
    RFC 5321 §3.8: the server must cope). With ``--drop-after-send`` the session got
    here only when it never sent the stage's command (no STARTTLS, no AUTH asked for)."""
    if args.drop_after_send is not None:
        client.close()
        raise CLIError(
            f"--drop-after-send {stage}: the session never sent that command "
            "(connection closed without QUIT)",
            _NOT_SENT.get(stage, ExitCode.PROTOCOL),
        )
    if args.drop_after is None:
        client.quit()
    else:
        client.close()
    note(_stopped(args, stage))


def mail_options(args: argparse.Namespace) -> MailOptions:
    """The MAIL/RCPT parameters of ``--dsn-*``, ``--body-type``, ``--smtputf8``,
    ``--size`` and ``--requiretls``, checked by the engine's own rules now (a bad
    value is a usage error before connecting: ``MailOptions`` validates them as
    ``Mail``/``Rcpt`` do)."""
    notify = None
    if args.dsn_notify is not None:
        notify = tuple(word.strip().upper() for word in args.dsn_notify.split(","))
    try:
        return MailOptions(
            size=args.size,
            body=args.body_type,
            smtputf8=args.smtputf8,
            ret=args.dsn_ret,
            envid=args.dsn_envid,
            requiretls=args.requiretls,
            notify=notify,
            orcpt=args.dsn_orcpt,
        )
    except SMTPProtocolError as error:
        raise CLIError(f"invalid envelope option: {error}", ExitCode.USAGE) from None


def _check_options_offered(
    caps: Capabilities | None, options: MailOptions, chunking: bool | None
) -> None:
    """The extensions the envelope options need, from the EHLO reply (exit 6: MAIL
    cannot be sent as asked; nothing was sent); ``--chunking`` needs CHUNKING (exit 8,
    the content class)."""
    needs = []
    if options.ret or options.envid or options.notify or options.orcpt:
        needs.append(("DSN", "--dsn-* (RFC 3461)"))
    if options.requiretls:
        needs.append(("REQUIRETLS", "--requiretls (RFC 8689)"))
    if options.body in ("8BITMIME", "BINARYMIME"):
        needs.append((options.body, f"--body-type {options.body}"))
    if options.size is not None:
        needs.append(("SIZE", "--size (RFC 1870)"))
    if options.smtputf8:
        needs.append(("SMTPUTF8", "--smtputf8 (RFC 6531)"))
    for keyword, what in needs:
        if caps is None or not caps.has(keyword):
            raise CLIError(
                f"the server does not offer {keyword}, needed for {what}; nothing was sent",
                ExitCode.SENDER_REFUSED,
            )
    if chunking and (caps is None or not caps.has("CHUNKING")):
        raise CLIError(
            "the server does not offer CHUNKING, needed for --chunking (RFC 3030); "
            "nothing was sent",
            ExitCode.DATA_REFUSED,
        )


def _check_server_can_take(
    client: SMTPClient, envelope: Envelope, content: Content, declared: int | None
) -> None:
    """Refuse, before MAIL, what the server's EHLO reply rules out: a non-ASCII address
    without SMTPUTF8 (RFC 6531 §3.4; exit 6 for the sender, 7 for a recipient), 8-bit
    content without 8BITMIME (RFC 6152, RFC 6531 §3.6; exit 8) and a message, or a
    ``--size`` (``declared``), above its SIZE limit (RFC 1870 §6; exit 8, the content
    class). The session then ends with QUIT; nothing of the transaction was sent."""
    caps = client.capabilities
    smtputf8 = caps is not None and caps.smtputf8
    if envelope.international and not smtputf8:
        address = next(a for a in (envelope.sender, *envelope.recipients) if not a.isascii())
        code = ExitCode.SENDER_REFUSED
        if address != envelope.sender:
            code = ExitCode.RECIPIENTS_REFUSED
        raise CLIError(
            f"the server does not offer SMTPUTF8 (RFC 6531), needed for the non-ASCII "
            f"address {quote(address)}; nothing was sent",
            code,
        )
    if content.eight_bit and not (caps is not None and caps.eightbitmime):
        # RFC 6531 §3.6: SMTPUTF8 goes with BODY=8BITMIME, it does not replace it.
        raise CLIError(
            "the content has 8-bit octets and the server does not offer 8BITMIME "
            "(RFC 6152; SMTPUTF8 does not allow 8-bit content without it, RFC 6531 §3.6); "
            "nothing was sent",
            ExitCode.DATA_REFUSED,
        )
    limit = caps.size if caps is not None else None
    if limit is not None and content.size > limit:
        raise CLIError(
            f"the message is {content.size} octets, above the server's SIZE limit of "
            f"{limit} (RFC 1870); nothing was sent",
            ExitCode.DATA_REFUSED,
        )
    if limit is not None and declared is not None and declared > limit:
        raise CLIError(
            f"--size {declared} is above the server's SIZE limit of {limit} (RFC 1870); "
            "nothing was sent",
            ExitCode.DATA_REFUSED,
        )


def _stop_in_transaction(
    args: argparse.Namespace,
    client: SMTPClient,
    envelope: Envelope,
    content: Content,
    stop: str,
    note: Callable[[str], None],
    options: MailOptions,
) -> int:
    """``--quit-after``/``--drop-after mail|rcpt|data``: the envelope up to ``stop``,
    nothing delivered.

    After ``mail``/``rcpt`` the client has sent RSET and QUITs, or with ``--drop-after``
    closed the connection with the transaction open (no RSET, no QUIT); after ``data``
    the client closed the connection at the 354. A refused recipient is exit 7 as usual.
    """
    drop = args.drop_after is not None
    result = client.sendmail(
        envelope.sender,
        envelope.recipients,
        content.source(),
        options=options,
        pipelining=_pipelining(args),
        chunking=args.chunking,
        stop_after=cast("MailStage", stop),
        drop=drop,
    )
    if args.drop_after_send is not None:  # nothing was accepted, so it was not sent
        note(f"--drop-after-send {stop}: the command was not sent (nothing accepted)")
    elif drop:
        note(_stopped(args, stop))
    elif stop == "data":
        note("quit after data (354), as asked: connection closed, the content was not sent")
    else:
        client.quit()
        note(f"quit after {stop}, as asked: transaction reset, nothing sent")
    refused = [(address, reply) for address, reply in result.recipients if reply.is_error]
    if refused:
        note(f"hint: {refused[0][1].explain('RCPT')}")
        raise CLIError(str(SMTPRecipientsRefused(tuple(refused))), ExitCode.RECIPIENTS_REFUSED)
    return ExitCode.OK


def _login(args: argparse.Namespace, client: SMTPClient, target: _Target) -> None:
    """AUTH; a mechanism that is not possible here (not offered, cleartext) is exit 5."""
    try:
        caps = client.capabilities
        offered = caps.auth_mechanisms if caps is not None else frozenset()
        mechanism = _mechanism(args, target, client.session.channel_binding, offered)
        client.login(target.user or "", target.password, mechanism=mechanism)
    except SMTPProtocolError as error:
        if error.remote:
            raise
        raise CLIError(f"authentication not possible: {error}", ExitCode.AUTH) from None
    except LocalProtocolError as error:  # SASLError: the mechanism refused its input
        raise CLIError(f"authentication not possible: {error}", ExitCode.AUTH) from None


@contextmanager
def _demo_server(user: str, password: str) -> Iterator[Any]:
    from ..builtin_server.testing import run_server

    # AUTH is offered in cleartext too, so the demo still works with --tls none or when
    # openssl is missing; with TLS the client authenticates only after STARTTLS.
    with run_server(users={user: password}, require_auth=True, allow_plaintext_auth=True) as server:
        yield server


def _run_demo(args: argparse.Namespace, console: Console) -> int:
    """``send`` with no ``--server``: the whole session against the built-in server."""
    if args.tls == "implicit":
        raise CLIError("the built-in server offers STARTTLS, not implicit TLS", ExitCode.USAGE)
    given = (
        ("--user", args.user),
        ("--cafile", args.cafile),
        ("--insecure", args.insecure),
        ("--tls-sni", args.tls_sni),
        ("--tls-cert", args.tls_cert),
        ("--port", args.port),
        ("--resolver", args.resolver),
        ("--local-interface", args.local_interface),
        ("--protocol", args.protocol != "esmtp"),
        ("-6", args.ipv6),
    )
    for option, value in given:
        if value:
            raise CLIError(
                f"{option} needs --server (the demo trusts its own certificate and "
                "makes its own credentials)",
                ExitCode.USAGE,
            )
    envelope, content = build_message(
        args, sender="newcomer@example.org", demo=True, hostname="localhost"
    )
    try:
        return _demo_session(args, console, envelope, content)
    finally:
        content.close()


def _demo_session(
    args: argparse.Namespace, console: Console, envelope: Envelope, content: Content
) -> int:
    """The demo once the message is built: start the server, send, show it."""
    password = secrets.token_urlsafe(18)
    if args.auth is not None:
        probe = _Target("127.0.0.1", 0, TLSPolicy.NONE, _plain(), DEMO_USER, password)
        _mechanism(args, probe, None)  # an unknown name fails before the server starts
    with _demo_server(DEMO_USER, password) as server:
        cert = server.cert_path
        policy = TLSPolicy(args.tls or "required")
        if cert is None:  # no trustme, cryptography or openssl: no certificate
            print("smtpproto: note: no certificate (see above why): no TLS", file=sys.stderr)
            policy = TLSPolicy.NONE
        if not (args.quiet or args.hide_informational or args.hide_all or args.json):
            console.line(
                f"built-in server on {server.host} port {server.port}: STARTTLS with a "
                "self-signed certificate (trusted for this run only), AUTH as "
                f"{DEMO_USER!r} with a password generated for this run"
            )
        context = client_ssl_context(cafile=str(cert)) if cert is not None else _plain()
        target = _Target(
            server.host,
            server.port,
            policy,
            context,
            DEMO_USER,
            password,
            allow_cleartext_auth=policy is TLSPolicy.NONE,
        )
        code = _session(args, console, target, envelope, content)
        stopped = args.quit_after or args.drop_after_send or args.drop_after not in (None, "dot")
        if code != ExitCode.OK or stopped:
            return code
        (stored,) = server.wait_for_messages(1, timeout=10.0)
        if args.quiet or args.json:
            return ExitCode.OK
        to = ", ".join(f"<{escape_text(r)}>" for r in stored.recipients)
        console.line(f"\n---- the message as the built-in server received it, for {to} ----")
        console.line(format_message(stored.data, limit=SHOW_LIMIT))
        console.line(f"---- end of message ({len(stored.data)} octets) ----")
    return ExitCode.OK


def _plain() -> ssl.SSLContext:
    """A verifying context for a demo without TLS (never used for a handshake)."""
    return client_ssl_context()
