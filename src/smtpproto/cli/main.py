"""The ``smtpproto`` command line: argument parsing, dispatch and exit codes.

Theory of operation
-------------------
``main`` parses the arguments (argparse, stdlib only), runs one sub-command and turns
whatever went wrong into a one-line message on stderr and an exit code — never a
traceback for bad input. The CLI has no SMTP knowledge of its own: ``send`` and
``probe`` drive the blocking client (``smtpproto.blocking``), ``serve`` and the
demo of ``send`` run the built-in server (``smtpproto.testing``), ``explain`` reads
``smtpproto.codes``. The sub-commands live in ``send`` (with ``message``
building the message), ``probe`` (with ``report`` formatting its findings) and
``serve``; the transcript, progress bar and tables in ``output``; the exit codes and
what the sub-commands share in ``common``.
Output: the transcript and results on stdout, errors (one line, ``smtpproto: error:
...``) and the progress bar on stderr.

Exit codes: one per failing stage, so a script can tell what broke (``common.ExitCode``;
``smtpproto --help`` prints the table, ``common.EXIT_CODE_HELP``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap
import traceback
from collections.abc import Sequence
from typing import NoReturn

from ..wire import codes
from ..wire.text import escape_text
from .common import (
    DROP_SEND_STAGES,
    DROP_STAGES,
    EXIT_CODE_HELP,
    PROG,
    STAGES,
    TLS_CHOICES,
    CLIError,
    ExitCode,
    describe_error,
    exit_code_for,
    quote,
)
from .proxy import add_proxy_options

__all__ = ["build_parser", "main", "run_explain"]


# -- argument parser ---------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit with ``ExitCode.USAGE``."""

    def error(self, message: str) -> NoReturn:
        # One prefix for every error, whatever sub-command's parser found it (its
        # name is in ``prog``: "smtpproto send"), as for every other failure.
        command = self.prog.removeprefix(PROG).strip()
        where = f"{command}: " if command else ""
        self.exit(ExitCode.USAGE, f"{PROG}: error: {where}{escape_text(message)}\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _octets(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        raise argparse.ArgumentTypeError(f"not a size in octets: {text!r}")
    return int(text)


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"not a port number (1-65535): {text!r}")
    return int(text)


def _limit(text: str) -> int:
    """A LIMITS value for ``serve --rcptmax/--mailmax``: 1 to 999999 (RFC 9422 §4)."""
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= 999_999:
        raise argparse.ArgumentTypeError(f"not a limit (1-999999): {text!r}")
    return int(text)


def _size(text: str) -> int:
    from .serve import parse_size  # serve's module loads only when it is used

    return parse_size(text)


def _workers(text: str) -> int:
    from .serve_workers import worker_count  # loads only when it is used

    return worker_count(text)


SEND_EPILOG = (
    """\
With recipients and no --server, send delivers to the recipients' mail server: the MX
records of their domain (RFC 5321 §5.1; needs the 'dns' extra, pip install
'smtpproto[dns]'). With no recipient and no --server, or with --demo, send starts the
built-in server on 127.0.0.1 in-process (STARTTLS with a self-signed certificate
trusted for this run, AUTH with generated credentials), sends a demo message through
it, then prints the message as the server received it.

examples:
  smtpproto send
  smtpproto send --to postmaster@example.org --body hello
  smtpproto send --server mail.example.com:587 --tls required --auth PLAIN \\
      --user me --password-env SMTP_PASSWORD --from me@example.com --to you@example.org
  smtpproto send --server [::1]:2525 --tls none --to a@example.org --quit-after ehlo

"""
    + EXIT_CODE_HELP
)


def _add_send(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    p = sub.add_parser(
        "send",
        parents=[common],
        help="send a message (with no --server: a demo through the built-in server)",
        description="Send one message and show the whole SMTP session.",
        epilog=SEND_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    conn = p.add_argument_group("connection")
    conn.add_argument(
        "--server",
        metavar="HOST[:PORT]",
        help="IPv6 as [::1]:25 (default: the MX of the recipients' domain)",
    )
    conn.add_argument(
        "--port", type=_port, help="port when --server has none, or for the MX (default 25)"
    )
    conn.add_argument(
        "--protocol",
        choices=("esmtp", "smtp", "lmtp", "ssmtp"),
        default="esmtp",
        help="esmtp: EHLO (HELO if refused); smtp: HELO only, no extensions (RFC 5321); "
        "lmtp: LHLO, a reply per recipient (RFC 2033); ssmtp: esmtp over implicit TLS "
        "(RFC 8314); default esmtp",
    )
    family = conn.add_mutually_exclusive_group()
    family.add_argument("-4", dest="ipv4", action="store_true", help="connect over IPv4 only")
    family.add_argument("-6", dest="ipv6", action="store_true", help="connect over IPv6 only")
    conn.add_argument(
        "--local-interface",
        metavar="ADDRESS[:PORT]",
        help="local address (and port) to connect from",
    )
    conn.add_argument(
        "--unix-socket", metavar="PATH", help="connect to this UNIX-domain socket (no --server)"
    )
    conn.add_argument(
        "--demo",
        action="store_true",
        help="send through the in-process built-in server (the default with no recipient)",
    )
    conn.add_argument(
        "--resolver",
        metavar="ADDRESS[:PORT]",
        help="DNS server for the MX lookup (default: the system's)",
    )
    conn.add_argument(
        "--tls",
        choices=TLS_CHOICES,
        help="implicit TLS, STARTTLS required, STARTTLS when offered (opportunistic), or "
        "none; default from the port: implicit on 465, required on 587, else opportunistic",
    )
    conn.add_argument("--ehlo", metavar="NAME", help="name to give in EHLO")
    conn.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="longest wait for the connection, each reply and each write (default 60)",
    )
    conn.add_argument(
        "--insecure", action="store_true", help="do NOT verify the certificate (test servers)"
    )
    conn.add_argument("--cafile", metavar="PEM", help="trust these CA certificates")
    conn.add_argument(
        "--tls-cert", metavar="PEM", help="client certificate (chain) to present; --auth EXTERNAL"
    )
    conn.add_argument("--tls-key", metavar="PEM", help="its private key (default: in --tls-cert)")
    conn.add_argument(
        "--tls-min-version",
        choices=("1.2", "1.3"),
        help="lowest TLS version accepted (default 1.2; older ones are deprecated, RFC 8996)",
    )
    conn.add_argument(
        "--tls-sni",
        metavar="NAME",
        help="server name to send in TLS (SNI) and to verify the certificate for "
        "(default: the --server host or the MX name)",
    )
    conn.add_argument(
        "--auth",
        metavar="MECH[,MECH...]",
        help="SASL mechanisms in preference order, the first the server offers is used: "
        "PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256, ... (default: the strongest offered)",
    )
    conn.add_argument("--user", metavar="NAME", help="user name for AUTH")
    conn.add_argument(
        "--password-env",
        metavar="NAME",
        help="read the password from this environment variable (default: prompt)",
    )
    conn.add_argument(
        "--pipelining",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pipeline MAIL/RCPT/DATA (default: when the server offers PIPELINING)",
    )
    conn.add_argument(
        "--chunking",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send the content with BDAT (default: when the server offers CHUNKING)",
    )
    conn.add_argument(
        "--xclient",
        action="append",
        default=[],
        metavar="ATTR=VALUE",
        help="XCLIENT attribute (NAME, ADDR, PORT, PROTO, HELO, LOGIN, DESTADDR, DESTPORT), "
        "sent after STARTTLS, before AUTH; repeatable",
    )
    conn.add_argument(
        "--xclient-before-starttls",
        action="store_true",
        help="send XCLIENT after the first EHLO, before STARTTLS",
    )
    optional = conn.add_mutually_exclusive_group()
    optional.add_argument(
        "--xclient-optional",
        action="store_true",
        help="go on without XCLIENT when it is not advertised, its attributes are not, or "
        "it is refused",
    )
    optional.add_argument(
        "--xclient-optional-strict",
        action="store_true",
        help="go on without XCLIENT when it or its attributes are not advertised, but "
        "fail when it is refused",
    )
    conn.add_argument(
        "--xclient-no-verify",
        action="store_true",
        help="send XCLIENT attributes the server does not list (XCLIENT itself must be advertised)",
    )
    conn.add_argument(
        "--xforward",
        action="append",
        default=[],
        metavar="ATTR=VALUE",
        help="XFORWARD attribute (NAME, ADDR, PORT, PROTO, HELO, IDENT, SOURCE), "
        "sent before MAIL; repeatable",
    )
    add_proxy_options(p)
    stops = conn.add_mutually_exclusive_group()
    stops.add_argument(
        "--quit-after", choices=STAGES, metavar="STAGE", help="|".join(STAGES) + ": stop there"
    )
    stops.add_argument(
        "--drop-after",
        choices=DROP_STAGES,
        metavar="STAGE",
        help="|".join(DROP_STAGES) + ": close the connection there without QUIT "
        "(dot: after the content's reply)",
    )
    stops.add_argument(
        "--drop-after-send",
        choices=DROP_SEND_STAGES,
        metavar="STAGE",
        help="|".join(DROP_SEND_STAGES) + ": close the connection right after sending "
        "that stage's command, before its reply, without QUIT",
    )
    msg = p.add_argument_group("message")
    msg.add_argument(
        "--from", dest="sender", metavar="ADDRESS", help="sender (default: USER@HOSTNAME)"
    )
    msg.add_argument(
        "--to", action="append", default=[], metavar="ADDRESS", help="repeatable; a,b for two"
    )
    msg.add_argument(
        "--cc", action="append", default=[], metavar="ADDRESS", help="repeatable; a,b for two"
    )
    msg.add_argument(
        "--bcc", action="append", default=[], metavar="ADDRESS", help="envelope only; repeatable"
    )
    msg.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="add or replace a header; repeatable",
    )
    msg.add_argument("--subject")
    body = msg.add_mutually_exclusive_group()
    body.add_argument(
        "--data",
        metavar="FILE",
        help="send this prepared message as is, headers included ('-' reads stdin; "
        "line ends become CRLF and lines starting with '.' are dot-stuffed, unless "
        "--no-data-fixup)",
    )
    body.add_argument("--body", metavar="TEXT", help="body text ('-' reads stdin)")
    body.add_argument("--body-file", metavar="PATH", help="body from a file ('-' is stdin)")
    msg.add_argument(
        "--attach", action="append", default=[], metavar="PATH", help="attach a file; repeatable"
    )
    msg.add_argument(
        "--no-data-fixup",
        action="store_true",
        help="with --data: send the octets exactly as they are (no CRLF fixes, no "
        "dot-stuffing: raw DATA for testing filters); a line '.' in the data is refused "
        "(it would end the DATA early): smtpproto writes the end of data",
    )
    env = p.add_argument_group("envelope (MAIL and RCPT parameters)")
    env.add_argument(
        "--dsn-notify",
        metavar="WHEN",
        help="DSN (RFC 3461): NEVER, or a comma list of SUCCESS, FAILURE, DELAY",
    )
    env.add_argument(
        "--dsn-ret", choices=("FULL", "HDRS"), help="DSN: return the whole message or its headers"
    )
    env.add_argument("--dsn-envid", metavar="ID", help="DSN: envelope identifier")
    env.add_argument(
        "--dsn-orcpt",
        action="store_true",
        help="DSN: send each recipient as its original recipient (ORCPT=rfc822;...)",
    )
    env.add_argument(
        "--body-type",
        choices=("7BIT", "8BITMIME", "BINARYMIME"),
        help="MAIL BODY= (RFC 6152, RFC 3030; default: 8BITMIME when the content is 8-bit)",
    )
    env.add_argument(
        "--smtputf8",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ask SMTPUTF8 in MAIL (RFC 6531; default: when an address is not ASCII)",
    )
    env.add_argument(
        "--size",
        type=_octets,
        metavar="OCTETS",
        help="declare this SIZE= (RFC 1870; default: the message's size when SIZE is offered)",
    )
    env.add_argument(
        "--requiretls",
        action="store_true",
        help="REQUIRETLS (RFC 8689): every hop must use verified TLS; needs TLS here",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "-q", "--quiet", "--silent", action="store_true", help="no transcript, errors only"
    )
    out.add_argument(
        "--json",
        action="store_true",
        help="print the whole session as one JSON object: replies with the command each "
        "answers and its round trip, the transcript with times, the outcome",
    )
    out.add_argument("--hide-send", action="store_true", help="hide the lines sent")
    out.add_argument("--hide-receive", action="store_true", help="hide the lines received")
    out.add_argument(
        "--hide-informational", action="store_true", help="hide notes and hints (== lines)"
    )
    out.add_argument("--hide-all", action="store_true", help="hide the whole transcript")
    out.add_argument(
        "--timestamps",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the elapsed time before each transcript line (default: on)",
    )
    out.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the transcript (auto: on a terminal, unless NO_COLOR is set)",
    )
    out.add_argument(
        "--output-file", metavar="PATH", help="write the transcript to PATH, not stdout"
    )
    p.set_defaults(handler="send")


def _add_probe(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    p = sub.add_parser(
        "probe",
        parents=[common],
        help="show what a server offers: banner, extensions, TLS, AUTH, size, timings",
        description="Connect, read the banner and EHLO, try STARTTLS and report.",
        epilog=EXIT_CODE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "server",
        metavar="HOST[:PORT]",
        help="IPv6 as [::1]:25; a name without port that has MX records: its best mail server",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-mx", action="store_true", help="probe HOST itself, not its MX")
    p.add_argument(
        "--port", type=_port, help="port when HOST has none (default 25; 465 with --implicit-tls)"
    )
    p.add_argument("--resolver", metavar="ADDRESS[:PORT]", help="DNS server for the MX lookup")
    p.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte")
    p.add_argument("--no-starttls", action="store_true", help="do not try STARTTLS")
    p.add_argument("--ehlo", metavar="NAME", help="name to give in EHLO")
    p.add_argument("--timeout", type=_positive_float, metavar="SECONDS", default=30.0)
    p.add_argument("--insecure", action="store_true", help="do NOT verify the certificate")
    p.add_argument("--cafile", metavar="PEM", help="trust these CA certificates")
    p.add_argument("--transcript", action="store_true", help="show the session on stderr")
    add_proxy_options(p)
    p.set_defaults(handler="probe")


def _add_explain(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    p = sub.add_parser(
        "explain",
        parents=[common],
        help="what a reply code (and enhanced status code) means and what to do",
        description="Explain an SMTP reply code, e.g. 'smtpproto explain 550 5.1.1'.",
    )
    p.add_argument(
        "code",
        metavar="CODE",
        help="three-digit reply code, 200-599, or a whole reply line such as "
        "'550 5.1.1 User unknown'",
    )
    p.add_argument("enhanced", metavar="ENHANCED", nargs="?", help="e.g. 5.1.1 (RFC 3463)")
    p.add_argument("--command", metavar="VERB", help="the command it answered: RCPT, MAIL...")
    p.set_defaults(handler="explain")


def _add_serve(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="run the built-in SMTP server (for testing clients)",
        description="Run the built-in server until Ctrl-C; print a transcript.",
        epilog="The password for --auth may come from SMTPPROTO_SERVE_AUTH=USER:PASSWORD.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8025)
    store = p.add_mutually_exclusive_group()
    store.add_argument("--maildir", metavar="PATH", help="store messages in this maildir")
    store.add_argument("--mbox", metavar="PATH", help="append messages to this mbox")
    p.add_argument("--auth", metavar="USER:PASSWORD", help="require AUTH with these")
    p.add_argument("--no-starttls", action="store_true", help="do not offer STARTTLS")
    p.add_argument("--cert", metavar="PEM", help="certificate chain (default: self-signed)")
    p.add_argument("--key", metavar="PEM", help="private key for --cert")
    p.add_argument("-q", "--quiet", action="store_true", help="no transcript")
    p.add_argument(
        "--rules", metavar="FILE", help="fail on purpose by these rules (.toml or .json)"
    )
    p.add_argument(
        "--max-size",
        metavar="OCTETS",
        type=_size,
        help="SIZE limit, advertised and enforced (e.g. 10M; default 32M)",
    )
    p.add_argument(
        "--rcptmax",
        metavar="N",
        type=_limit,
        help="most RCPT per transaction, advertised as LIMITS RCPTMAX and enforced (452)",
    )
    p.add_argument(
        "--mailmax",
        metavar="N",
        type=_limit,
        help="most MAIL per connection, advertised as LIMITS MAILMAX and enforced (451)",
    )
    p.add_argument(
        "--workers",
        metavar="N",
        type=_workers,
        help="serve from N processes on the port (POSIX; 0: one per core; default 1)",
    )
    p.set_defaults(handler="serve")


def _add_fuzz(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    from . import fuzz, replay

    p = sub.add_parser(
        "fuzz",
        parents=[common],
        help="fuzz an SMTP server you own: confirmed, replayable findings",
        description="Fingerprint, probe, explore and fuzz an SMTP server (docs/fuzzing.md).",
        epilog=fuzz.FUZZ_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fuzz.add_arguments(p)
    p.set_defaults(handler="fuzz")
    p = sub.add_parser(
        "replay",
        parents=[common],
        help="replay a fuzz finding; exit 0 if it still reproduces, 1 if not",
        description="Replay a finding transcript (FUZZ-TRANSCRIPT.md) and re-apply its oracle.",
    )
    replay.add_arguments(p)
    p.set_defaults(handler="replay")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, with one sub-parser per command."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="tracebacks for bugs"
    )
    parser = _Parser(
        prog=PROG,
        description="SMTP from the command line: send, probe, explain, serve. "
        "'smtpproto COMMAND --help' lists the options of each command.",
        epilog=EXIT_CODE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .._version import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="tracebacks for bugs")
    sub = parser.add_subparsers(metavar="COMMAND", required=True, parser_class=_Parser)
    _add_send(sub, common)
    _add_probe(sub, common)
    _add_explain(sub, common)
    _add_serve(sub, common)
    _add_fuzz(sub, common)
    return parser


# -- explain -----------------------------------------------------------------------------

# RFC 3463 §2: class "." subject "." detail, as it may lead the text of a reply line.
_ENHANCED_WORD = re.compile(r"[245]\.\d{1,3}\.\d{1,3}", re.ASCII)


def run_explain(args: argparse.Namespace) -> int:
    """Print what a code means; bad codes are usage errors (exit 2).

    CODE may also be a whole reply line as pasted from a bounce or a log, such as
    ``"550-5.1.1 User unknown"``: the code and an enhanced code right after it are
    taken from it (RFC 5321 §4.2, RFC 2034 §4) and the rest is shown as the server text.
    """
    line: str = args.code.strip()
    text, enhanced, server_text = line[:3], args.enhanced, ""
    if len(line) > 3:
        if line[3] not in " -":
            raise CLIError(
                f"not a reply code: {quote(line)} (three digits, 200-599)", ExitCode.USAGE
            )
        words = line[4:].split(None, 1)
        if enhanced is None and words and _ENHANCED_WORD.fullmatch(words[0]):
            enhanced, words = words[0], words[1:]
        server_text = " ".join(words)
    if not (len(text) == 3 and text.isascii() and text.isdigit()):
        raise CLIError(f"not a reply code: {quote(line)} (three digits, 200-599)", ExitCode.USAGE)
    try:
        explanation = codes.explain(int(text), enhanced, command=args.command)
    except ValueError as error:
        raise CLIError(str(error), ExitCode.USAGE) from None
    width = 100
    for sentence in _split_explanation(explanation):
        print(textwrap.fill(sentence, width=width, subsequent_indent="  "))
    if server_text:
        print(textwrap.fill(f'Server said: "{escape_text(server_text)}"', width=width))
    return ExitCode.OK


def _split_explanation(text: str) -> list[str]:
    """Put each part of ``codes.explain``'s text on its own paragraph for reading."""
    markers = ("Enhanced status ", "The enhanced code's class ", "What to do: ", "Servers use ")
    parts = [text]
    for marker in markers:
        head, sep, tail = parts[-1].partition(" " + marker)
        if sep:
            parts[-1:] = [head, marker + tail]
    return parts


# -- main --------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    handler: str = args.handler
    if handler == "explain":
        return run_explain(args)
    if handler == "send":
        from .send import run_send

        return run_send(args)
    if handler == "probe":
        from .probe import run_probe

        return run_probe(args)
    if handler == "fuzz":
        from .fuzz import run_fuzz

        return run_fuzz(args)
    if handler == "replay":
        from .replay import run_replay

        return run_replay(args)
    from .serve import run_serve

    return run_serve(args)


def _error_text(args: argparse.Namespace, text: str) -> str:
    """The final error line, red on a terminal (``--color`` where the command has it,
    ``NO_COLOR``), like the refused replies in the transcript."""
    from .output import error_text

    return error_text(text, sys.stderr, getattr(args, "color", "auto"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version and usage errors exit from argparse
        return stop.code if isinstance(stop.code, int) else ExitCode.USAGE
    debug = bool(getattr(args, "debug", False))
    try:
        return _run(args)
    except KeyboardInterrupt:
        print(_error_text(args, f"{PROG}: interrupted"), file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # stdout closed early (| head): nothing left to say
        # Point stdout at /dev/null so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return ExitCode.OK
    except Exception as error:  # the top level reports every failure as one line
        code = exit_code_for(error)
        if code is None:
            text = (
                f"{PROG}: internal error: {type(error).__name__}: {describe_error(error)} "
                "-- this is a bug, please report it (run with --debug for the traceback)"
            )
            print(_error_text(args, text), file=sys.stderr)
            if debug:
                traceback.print_exc()
            return ExitCode.INTERNAL
        print(_error_text(args, f"{PROG}: error: {describe_error(error)}"), file=sys.stderr)
        if debug:
            traceback.print_exc()
        return code
