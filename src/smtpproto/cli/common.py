"""What every ``smtpproto`` sub-command shares: the exit codes, ``CLIError``, the mapping
from the project's exceptions to exit codes, one-line error text, parsing ``HOST[:PORT]``
and opening the TCP connection to it.

The sub-command modules (``send``, ``probe``, ``serve``) and ``main`` import from here;
nothing here imports them, so the CLI package has no import circle.
"""

from __future__ import annotations

import enum
import errno
import socket  # noqa: TID251 -- CLI layer: send and probe open the TCP connection

from ..drivers.exceptions import (
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPReplyError,
    SMTPTimeoutError,
    SMTPTLSError,
)
from ..wire.errors import LocalProtocolError, RemoteProtocolError
from ..wire.text import escape_text

__all__ = [
    "DROP_SEND_STAGES",
    "DROP_STAGES",
    "EXIT_CODE_HELP",
    "PROG",
    "STAGES",
    "TLS_CHOICES",
    "CLIError",
    "ExitCode",
    "connect_tcp",
    "connect_unix",
    "describe_error",
    "exit_code_for",
    "parse_server",
    "quote",
    "tls_hint",
]

PROG = "smtpproto"

#: ``send --tls`` choices (``ClientConfig``'s ``TLSPolicy`` values, RFC 3207 / RFC 8314).
TLS_CHOICES = ("implicit", "required", "opportunistic", "none")
#: ``send --quit-after`` stages, in session order: after the TCP connect, after the
#: greeting, after the first EHLO (before STARTTLS), after STARTTLS and the second
#: EHLO, after XCLIENT and its EHLO (``--xclient``; before STARTTLS with
#: ``--xclient-before-starttls``), after AUTH, after MAIL (then RSET), after the RCPTs
#: (then RSET), after DATA's 354 (then the connection is closed: only content may
#: follow a 354).
STAGES = ("connect", "greeting", "ehlo", "tls", "xclient", "auth", "mail", "rcpt", "data")
#: ``send --drop-after`` stages: those of ``--quit-after`` (after MAIL/RCPT the
#: transaction is left open: ``sendmail(stop_after=..., drop=True)`` sends no RSET),
#: plus ``dot``: after the content's reply.
DROP_STAGES = (*STAGES, "dot")
#: ``send --drop-after-send`` stages (swaks' ``--drop-after-send``): close the connection
#: as soon as the stage's command is written, before its reply: EHLO (or HELO/LHLO),
#: STARTTLS, XCLIENT, AUTH, MAIL, the last RCPT, DATA, the content's final "." line (or
#: BDAT ... LAST); ``connect``: before the greeting is read.
DROP_SEND_STAGES = ("connect", "ehlo", "tls", "xclient", "auth", "mail", "rcpt", "data", "dot")


class ExitCode(enum.IntEnum):
    """The documented exit codes (``EXIT_CODE_HELP`` says what each means)."""

    OK = 0
    USAGE = 2
    CONNECT = 3
    TLS = 4
    AUTH = 5
    SENDER_REFUSED = 6
    RECIPIENTS_REFUSED = 7
    DATA_REFUSED = 8
    PROTOCOL = 9
    TIMEOUT = 10
    DELIVERY_UNKNOWN = 11
    INTERNAL = 70
    INTERRUPTED = 130


EXIT_CODE_HELP = """\
exit codes:
  0   success (also --quit-after reached; serve stopped by Ctrl-C)
  2   usage: bad arguments, invalid address or header, unreadable file
  3   connect: unknown host, refused connection, greeting refused, connection lost
      before the content's end (serve: cannot listen)
  4   TLS: STARTTLS unavailable or refused, handshake or certificate failed
  5   authentication failed or not possible
  6   sender refused (MAIL FROM)
  7   recipients refused (any of them)
  8   content refused (DATA / BDAT)
  9   protocol error: the peer is not speaking SMTP, or EHLO/other refused
  10  timeout
  11  delivery status unknown: content sent, its reply never came
  70  internal error (a bug: please report it; --debug shows the traceback)
  130 interrupted (Ctrl-C)
"""


class CLIError(Exception):
    """A failure the CLI reports as one line with a chosen exit code."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


# The command a refused reply answered -> the stage that failed.
_REPLY_STAGE: dict[str | None, ExitCode] = {
    None: ExitCode.CONNECT,  # the greeting (RFC 5321 §3.1: 554 instead of 220)
    "STARTTLS": ExitCode.TLS,
    "AUTH": ExitCode.AUTH,
    "MAIL": ExitCode.SENDER_REFUSED,
    "RCPT": ExitCode.RECIPIENTS_REFUSED,
    "DATA": ExitCode.DATA_REFUSED,
    "BDAT": ExitCode.DATA_REFUSED,
}


def exit_code_for(error: BaseException) -> ExitCode | None:
    """The exit code for one of the project's exceptions; ``None`` for anything else.

    Order matters: ``SMTPDeliveryTimeoutError`` is both a timeout and a delivery status
    unknown, and the latter is what the user must know (the message may be delivered).
    """
    if isinstance(error, CLIError):
        return error.code
    if isinstance(error, SMTPDeliveryStatusUnknown):
        return ExitCode.DELIVERY_UNKNOWN
    if isinstance(error, SMTPTimeoutError):
        return ExitCode.TIMEOUT
    if isinstance(error, SMTPConnectError):
        return ExitCode.CONNECT
    if isinstance(error, SMTPTLSError):
        return ExitCode.TLS
    if isinstance(error, SMTPRecipientsRefused):
        return ExitCode.RECIPIENTS_REFUSED
    if isinstance(error, SMTPReplyError):
        return _REPLY_STAGE.get(error.command, ExitCode.PROTOCOL)
    if isinstance(error, SMTPProtocolError):
        return ExitCode.PROTOCOL if error.remote else ExitCode.USAGE
    if isinstance(error, SMTPError):
        return ExitCode.PROTOCOL
    if isinstance(error, LocalProtocolError):
        return ExitCode.USAGE
    if isinstance(error, RemoteProtocolError):
        return ExitCode.PROTOCOL
    return None


def quote(text: str) -> str:
    """``text`` in single quotes for a message, control characters escaped once
    (``'a\\r\\nb'``; ``repr`` of ``escape_text`` would double the backslashes)."""
    return f"'{escape_text(text)}'"


def describe_error(error: BaseException) -> str:
    """One line for ``error``: its message, escaped, continuation lines joined."""
    text = escape_text(str(error).replace("\r\n", " / ").replace("\n", " / "))
    if isinstance(error, SMTPProtocolError) and error.remote:
        text = f"protocol error from the server: {text}"
    elif isinstance(error, (SMTPProtocolError, LocalProtocolError)):
        text = f"invalid input: {text}"
    elif isinstance(error, RemoteProtocolError):
        text = f"protocol error from the server: {text}"
    return text or type(error).__name__


def tls_hint(error: SMTPTLSError, *, implicit: bool, probe: bool = False) -> str | None:
    """What to try after a TLS failure, from the OpenSSL reason in ``error``'s text:
    an unverifiable certificate, or implicit TLS against a port that speaks SMTP in
    cleartext first (its "220" greeting is no TLS record: WRONG_VERSION_NUMBER).
    ``probe`` names ``probe``'s options instead of ``send``'s."""
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        if probe:
            return "hint: trust the server's CA with --cafile PEM (--insecure skips the check)"
        return (
            "hint: trust the server's CA with --cafile PEM, or name the host the "
            "certificate is for with --tls-sni NAME (--insecure skips the check: tests only)"
        )
    if implicit and "WRONG_VERSION_NUMBER" in text:
        instead = "without --implicit-tls" if probe else "--tls required"
        return f"hint: not a TLS port (it greets in cleartext); try {instead} (STARTTLS)"
    return None


def parse_server(text: str, *, default_port: int) -> tuple[str, int]:
    """Split ``HOST[:PORT]``; IPv6 literals as ``[::1]`` or ``[::1]:25`` (or bare ``::1``).

    Raises ``CLIError`` (usage) for an empty host, a bad port or unbalanced brackets.
    """
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise CLIError(f"bad server {text!r}: missing ']'", ExitCode.USAGE)
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise CLIError(f"bad server {text!r}: expected ':PORT' after ']'", ExitCode.USAGE)
        port_text = rest[1:]
        if rest and not port_text:
            raise CLIError(f"bad server {text!r}: empty port", ExitCode.USAGE)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        if not port_text:
            raise CLIError(f"bad server {text!r}: empty port", ExitCode.USAGE)
    if not host or any(ch.isspace() or not ch.isprintable() for ch in host):
        raise CLIError(f"bad server {quote(text)}: no valid host", ExitCode.USAGE)
    if not port_text:
        return host, default_port
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise CLIError(f"bad port {quote(port_text)}: a number from 1 to 65535", ExitCode.USAGE)
    return host, int(port_text)


def connect_tcp(
    host: str,
    port: int,
    timeout: float,
    *,
    family: socket.AddressFamily = socket.AF_UNSPEC,
    source: tuple[str, int] | None = None,
) -> socket.socket:
    """A TCP connection to ``host``:``port``; ``CLIError`` (exit 3) with the reason on
    failure: unknown host, refused, unreachable, timed out. ``family`` limits it to
    IPv4 or IPv6 (``-4``/``-6``); ``source`` binds the local end (``--local-interface``).
    Every address of ``host`` is tried in turn, as ``socket.create_connection`` does."""
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except socket.gaierror as error:
        only = {socket.AF_INET: " over IPv4", socket.AF_INET6: " over IPv6"}.get(family, "")
        raise CLIError(
            f"unknown host {quote(host)}{only} ({error.strerror})", ExitCode.CONNECT
        ) from None
    reason = ""
    for af, kind, proto, _, address in infos:
        sock = socket.socket(af, kind, proto)
        try:
            sock.settimeout(timeout)
            if source is not None:
                sock.bind(source)
            sock.connect(address)
        except TimeoutError:
            sock.close()
            reason = f"connecting to {escape_text(host)} port {port} timed out after {timeout:g}s"
        except OSError as error:
            sock.close()
            if source is not None and error.errno in (errno.EADDRNOTAVAIL, errno.EINVAL):
                raise CLIError(
                    f"cannot use local address {escape_text(source[0])} port {source[1]}: "
                    f"{error.strerror or error}",
                    ExitCode.USAGE,
                ) from None
            reason = f"cannot connect to {escape_text(host)} port {port}: {error.strerror or error}"
        else:
            return sock
    raise CLIError(reason or f"no address for {escape_text(host)}", ExitCode.CONNECT)


def connect_unix(path: str, timeout: float) -> socket.socket:
    """A connection to the UNIX-domain socket ``path`` (``--unix-socket``); exit 3."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
    except OSError as error:
        sock.close()
        raise CLIError(
            f"cannot connect to {quote(path)}: {error.strerror or error}",
            ExitCode.CONNECT,
        ) from None
    return sock
