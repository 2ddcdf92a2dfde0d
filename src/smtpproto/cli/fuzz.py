"""``smtpproto fuzz HOST:PORT``: run a fuzz campaign (``smtpproto.fuzz``) from the shell.

Options map one to one onto ``run_campaign``. A target that is not a loopback address
needs ``--i-own-this-target``: fuzzing a server you do not run is an attack. Output: a
progress line on stderr when it is a terminal, then the summary table (phases with their
time and connections, findings, flaky candidates) on stdout, or with ``--json`` the
report as one JSON object. Exit status: 0 no finding, 1 findings, else the usual codes
(``common.ExitCode``).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket  # noqa: TID251  (CLI layer: name resolution for the loopback check)
import sys
from typing import Any

from ..fuzz.campaign import ALL_FAMILIES, run_campaign
from ..fuzz.findings import finding_lines, headline, prepare_out
from ..fuzz.fingerprint import AuthenticationFailed, Settings
from ..wire.text import escape_text
from .common import CLIError, ExitCode, parse_server
from .output import format_table

__all__ = ["EXIT_FINDINGS", "FUZZ_EPILOG", "add_arguments", "is_loopback", "run_fuzz"]

#: Exit status when the campaign confirmed at least one finding.
EXIT_FINDINGS = 1

FUZZ_EPILOG = (
    """\
examples:
  smtpproto fuzz 127.0.0.1:2525 --budget 60 --out fuzz-out
  smtpproto fuzz [::1]:587 --tls starttls --user me --password-env PW --probes smuggling,starttls
  smtpproto replay fuzz-out/finding-1/transcript.jsonl 127.0.0.1:2525

probe families: """
    + ", ".join(ALL_FAMILIES)
    + """

exit status: 0 no finding, 1 findings (see --out), 2 usage, 3 cannot connect,
5 the --user credentials were refused, 70 bug.
Only targets you own: a non-loopback address needs --i-own-this-target.
"""
)


def _families(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in ALL_FAMILIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown probe families {unknown or text!r}; choose from {', '.join(ALL_FAMILIES)}"
        )
    return names


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``fuzz`` sub-command's options."""
    p.add_argument("server", metavar="HOST:PORT", help="IPv6 as [::1]:25")
    p.add_argument(
        "--tls",
        choices=("none", "starttls", "implicit"),
        default="starttls",
        help="starttls: use STARTTLS when offered (default); implicit: TLS from the first "
        "byte; none: cleartext only (STARTTLS probes still run when it is offered)",
    )
    p.add_argument("--user", metavar="NAME", help="AUTH user (AUTH PLAIN)")
    p.add_argument(
        "--password-env",
        metavar="VAR",
        help="read the AUTH password from $VAR (finding transcripts hold the AUTH PLAIN "
        "line a replay must send: use a test account)",
    )
    p.add_argument("--mail-from", metavar="ADDR", default="fuzz@example.com", help="sender")
    p.add_argument(
        "--rcpt-to", metavar="ADDR", help="a recipient the server accepts (default: tried)"
    )
    p.add_argument("--ehlo", metavar="NAME", default="fuzz.smtpproto.test")
    p.add_argument("--budget", type=_positive, default=300.0, metavar="SECONDS")
    p.add_argument(
        "--rate", type=_positive, default=20.0, metavar="N", help="new connections per second"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--probes", type=_families, metavar="LIST", help="comma-separated families (default all)"
    )
    p.add_argument("--out", metavar="DIR", help="write findings, report.json and the graph")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--i-own-this-target",
        action="store_true",
        dest="own_target",
        help="allow a target that is not a loopback address",
    )


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses
    )


def _progress(text: str, done: float) -> None:
    sys.stderr.write(f"\r[{done * 100:3.0f}%] {escape_text(text)[:70]}\x1b[K")
    sys.stderr.flush()


def run_fuzz(args: argparse.Namespace) -> int:
    """Run the campaign the options describe; print the summary; return the exit code."""
    host, port = parse_server(args.server, default_port=25)
    if not args.own_target and not is_loopback(host):
        raise CLIError(
            f"{escape_text(host)} is not a loopback address: fuzz only servers you own, "
            "and say so with --i-own-this-target",
            ExitCode.USAGE,
        )
    auth = None
    if args.user is not None:
        password = os.environ.get(args.password_env or "", None) if args.password_env else None
        if password is None:
            raise CLIError("--user needs --password-env VAR with the password", ExitCode.USAGE)
        auth = (args.user, password)
    try:  # the baseline's EHLO, MAIL, RCPT and AUTH: checked before anything connects
        Settings(ehlo=args.ehlo, mail_from=args.mail_from, rcpt_to=args.rcpt_to, auth=auth)
    except ValueError as error:
        raise CLIError(f"invalid option: {escape_text(str(error))}", ExitCode.USAGE) from None
    if args.out is not None:
        try:
            prepare_out(args.out)
        except OSError as error:
            raise CLIError(
                f"--out {escape_text(args.out)}: {error.strerror or error}", ExitCode.USAGE
            ) from None
    tty = sys.stderr.isatty() and not args.json
    try:
        report = run_campaign(
            host,
            port,
            tls=args.tls,
            budget=args.budget,
            rate=args.rate,
            seed=args.seed,
            probes=args.probes,
            out=args.out,
            mail_from=args.mail_from,
            rcpt_to=args.rcpt_to,
            auth=auth,
            ehlo=args.ehlo,
            progress=_progress if tty else None,
        )
    except AuthenticationFailed as error:
        raise CLIError(f"cannot fuzz {escape_text(args.server)}: {error}", ExitCode.AUTH) from None
    except ConnectionError as error:
        raise CLIError(
            f"cannot fuzz {escape_text(args.server)}: {error}", ExitCode.CONNECT
        ) from None
    finally:
        if tty:
            sys.stderr.write("\r\x1b[K")
    if args.json:
        data: dict[str, Any] = report.to_json()
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(headline(report))
        rows = [
            (p.name, f"{p.seconds:6.1f} s  {p.connections:5d} connections  {p.runs:4d} runs")
            for p in report.phases
        ]
        print(format_table(rows))
        print("\n".join(finding_lines(report)))
        if args.out:
            print(f"written to {escape_text(args.out)}")
    return EXIT_FINDINGS if report.findings else ExitCode.OK
