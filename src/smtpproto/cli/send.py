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
EHLO), ``auth``, then QUIT; ``mail`` and ``rcpt`` end the transaction with RSET, then
QUIT; ``data`` stops at DATA's 354 and closes the connection without sending the
content (after a 354 every line would be content; nothing is delivered).
"""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import socket  # noqa: TID251 -- CLI adapter layer: opens the TCP connection
import ssl
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, cast

from ..adapters.blocking import SMTPClient, TLSInfo
from ..adapters.tls import client_ssl_context
from ..client_engine.config import ClientConfig, TLSPolicy
from ..drivers.exceptions import SMTPError, SMTPProtocolError, SMTPRecipientsRefused, SMTPReplyError
from ..drivers.session import MailStage, OpenStage
from ..drivers.support import default_port, default_tls_policy
from ..sasl.base import ChannelBinding, ClientMechanism
from ..sasl.mechanisms import choose_mechanism
from ..wire.errors import LocalProtocolError
from ..wire.text import escape_text
from .common import CLIError, ExitCode, connect_tcp, parse_server
from .message import Envelope, build_message
from .output import ProgressBar, Transcript, format_message

__all__ = ["DEFAULT_TIMEOUT", "TLSWatch", "run_send"]

#: Seconds the CLI waits for any reply or write when ``--timeout`` is not given: an
#: interactive tool should not sit five minutes on a dead server (swaks uses 30 s).
DEFAULT_TIMEOUT = 60.0
#: Octets of the received message the demo prints (a whole line more at most); the
#: rest is counted, not shown.
SHOW_LIMIT = 64 * 1024
#: The user name the demo's built-in server accepts (with a password made per run).
DEMO_USER = "demo"


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
    """Where and how to connect; ``user``/``password`` are None without AUTH."""

    host: str
    port: int
    policy: TLSPolicy
    context: ssl.SSLContext
    user: str | None
    password: str | None
    allow_cleartext_auth: bool = False


def _password(args: argparse.Namespace) -> str:
    if args.password_env is not None:
        value = os.environ.get(args.password_env)
        if value is None:
            raise CLIError(
                f"environment variable {escape_text(args.password_env)} is not set",
                ExitCode.USAGE,
            )
        return value
    try:
        return getpass.getpass(f"Password for {escape_text(args.user)}: ")
    except EOFError:
        raise CLIError("no password given (use --password-env NAME)", ExitCode.USAGE) from None


def _mechanism(
    args: argparse.Namespace, target: _Target, binding: ChannelBinding | None
) -> ClientMechanism | None:
    """The ``--auth`` mechanism (None: the strongest offered); usage error if unknown."""
    if args.auth is None:
        return None
    assert target.user is not None and target.password is not None
    mechanism = choose_mechanism(
        [args.auth], username=target.user, password=target.password, channel_binding=binding
    )
    if mechanism is None:
        raise CLIError(
            f"unsupported AUTH mechanism {escape_text(args.auth)!r} "
            "(PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1, SCRAM-SHA-256 and -PLUS variants)",
            ExitCode.USAGE,
        )
    return mechanism


def _check_args(args: argparse.Namespace) -> None:
    if args.auth is not None and args.user is None and args.server is not None:
        raise CLIError("--auth needs --user", ExitCode.USAGE)
    if args.password_env is not None and args.user is None:
        raise CLIError("--password-env needs --user", ExitCode.USAGE)
    if args.insecure and args.cafile is not None:
        raise CLIError("--insecure and --cafile contradict each other", ExitCode.USAGE)
    if args.quit_after == "data" and args.chunking:
        raise CLIError(
            "--quit-after data stops at DATA's 354 reply: not with --chunking", ExitCode.USAGE
        )


def _client_context(args: argparse.Namespace) -> ssl.SSLContext:
    if args.insecure:
        print(
            "smtpproto: WARNING: --insecure: the server certificate is NOT verified; "
            "anyone on the path can read and change this session",
            file=sys.stderr,
            flush=True,
        )
    try:
        return client_ssl_context(verify=not args.insecure, cafile=args.cafile)
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise CLIError(
            f"cannot load --cafile {escape_text(str(args.cafile))!r}: {reason}", ExitCode.USAGE
        ) from None


def run_send(args: argparse.Namespace) -> int:
    """The ``send`` command; returns the exit code (raises ``CLIError`` / ``SMTPError``)."""
    _check_args(args)
    if args.server is None:
        return _run_demo(args)
    policy = default_tls_policy(args.tls, None) if args.tls is not None else None
    host, port = parse_server(
        args.server, default_port=default_port(policy) if policy is not None else 25
    )
    if policy is None:
        policy = default_tls_policy(None, port)
    user = args.user
    password = _password(args) if user is not None else None
    target = _Target(host, port, policy, _client_context(args), user, password)
    if args.auth is not None and not args.auth.upper().endswith("-PLUS"):
        _mechanism(args, target, None)  # an unknown name fails now, before connecting
    sender = args.sender or f"{getpass.getuser()}@{socket.gethostname()}"
    envelope, message = build_message(args, sender=sender, demo=False, hostname=host)
    return _session(args, target, envelope, message.as_bytes())


def _session(args: argparse.Namespace, target: _Target, envelope: Envelope, content: bytes) -> int:
    """Connect, run the stages up to ``--quit-after``, and send; the exit code."""
    timeout = args.timeout if args.timeout is not None else DEFAULT_TIMEOUT
    tls = TLSWatch()
    transcript = None if args.quiet else Transcript(sys.stdout, tls_info=tls.describe)
    note = transcript.note if transcript is not None else (lambda text: None)
    note(f"connecting to {target.host} port {target.port}")
    sock = connect_tcp(target.host, target.port, timeout)
    peer = sock.getpeername()
    note(f"connected to {peer[0]} port {peer[1]}")
    stop = args.quit_after
    if stop == "connect":
        sock.close()
        note("quit after connect, as asked")
        return ExitCode.OK
    policy = target.policy
    if stop in ("greeting", "ehlo") and policy is not TLSPolicy.IMPLICIT:
        policy = TLSPolicy.NONE  # the session ends before STARTTLS either way
    client = SMTPClient(
        sock=sock,
        port=target.port,
        tls=policy,
        ssl_context=target.context,
        server_hostname=target.host,
        timeout=timeout,
        local_hostname=args.ehlo,
        allow_cleartext_auth=target.allow_cleartext_auth,
        config=ClientConfig(transcript=transcript),
    )
    tls.watch(client)
    try:
        return _stages(args, client, target, envelope, content, note)
    except SMTPReplyError as error:
        note(f"hint: {error.explain()}")
        _polite_quit(client)
        raise
    except SMTPRecipientsRefused as error:
        _, reply = next(iter(error.refused.items()))
        note(f"hint: {reply.explain('RCPT')}")
        _polite_quit(client)
        raise
    finally:
        client.close()


def _polite_quit(client: SMTPClient) -> None:
    """QUIT after a refusal when the session still allows it (RFC 5321 §4.1.1.10);
    a failing QUIT changes nothing about the error being reported."""
    if client.session.can_quit:
        with suppress(SMTPError):
            client.quit()


def _stages(
    args: argparse.Namespace,
    client: SMTPClient,
    target: _Target,
    envelope: Envelope,
    content: bytes,
    note: Callable[[str], None],
) -> int:
    """The session on a connected ``client``, up to ``--quit-after``; the exit code."""
    stop = args.quit_after
    if stop in ("greeting", "ehlo", "tls"):
        client.connect(until=cast("OpenStage", stop))
        client.quit()
        note(f"quit after {stop}, as asked")
        return ExitCode.OK
    client.connect()
    if target.user is not None and target.password is not None:
        _login(args, client, target)
    if stop == "auth":
        client.quit()
        note("quit after auth, as asked")
        return ExitCode.OK
    if stop in ("mail", "rcpt", "data"):
        return _stop_in_transaction(args, client, envelope, content, stop, note)
    bar = ProgressBar(len(content), sys.stderr, enabled=sys.stderr.isatty())
    try:
        result = client.sendmail(
            envelope.sender,
            envelope.recipients,
            content,
            pipelining=args.pipelining,
            chunking=args.chunking,
            progress=lambda sent, total: bar.update(sent),
        )
    finally:
        bar.finish()
    client.quit()
    if result.failed:
        refused = SMTPRecipientsRefused(result.failed)
        note(f"hint: {result.failed[0][1].explain('RCPT')}")
        delivered = len(result.delivered)
        raise CLIError(f"delivered to {delivered}, but {refused}", ExitCode.RECIPIENTS_REFUSED)
    note(f"message accepted for {len(result.delivered)} recipient(s)")
    return ExitCode.OK


def _stop_in_transaction(
    args: argparse.Namespace,
    client: SMTPClient,
    envelope: Envelope,
    content: bytes,
    stop: str,
    note: Callable[[str], None],
) -> int:
    """``--quit-after mail|rcpt|data``: the envelope up to ``stop``, nothing delivered.

    After ``mail``/``rcpt`` the client has sent RSET and QUITs; after ``data`` the
    client closed the connection at the 354. A refused recipient is exit 7 as usual.
    """
    result = client.sendmail(
        envelope.sender,
        envelope.recipients,
        content,
        pipelining=args.pipelining,
        chunking=args.chunking,
        stop_after=cast("MailStage", stop),
    )
    if stop == "data":
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
    assert target.user is not None
    try:
        mechanism = _mechanism(args, target, client.session.channel_binding)
        client.login(target.user, target.password, mechanism=mechanism)
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


def _run_demo(args: argparse.Namespace) -> int:
    """``send`` with no ``--server``: the whole session against the built-in server."""
    if args.tls == "implicit":
        raise CLIError("the built-in server offers STARTTLS, not implicit TLS", ExitCode.USAGE)
    given = (("--user", args.user), ("--cafile", args.cafile), ("--insecure", args.insecure))
    for option, value in given:
        if value:
            raise CLIError(
                f"{option} needs --server (the demo trusts its own certificate and "
                "makes its own credentials)",
                ExitCode.USAGE,
            )
    envelope, message = build_message(
        args, sender="newcomer@example.org", demo=True, hostname="localhost"
    )
    password = secrets.token_urlsafe(18)
    if args.auth is not None and not args.auth.upper().endswith("-PLUS"):
        probe = _Target("127.0.0.1", 0, TLSPolicy.NONE, _plain(), DEMO_USER, password)
        _mechanism(args, probe, None)  # an unknown name fails before the server starts
    with _demo_server(DEMO_USER, password) as server:
        cert = server.cert_path
        policy = TLSPolicy(args.tls or "required")
        if cert is None:  # no trustme, cryptography or openssl: no certificate
            print("smtpproto: note: no certificate (see above why): no TLS", file=sys.stderr)
            policy = TLSPolicy.NONE
        if not args.quiet:
            print(
                f"built-in server on {server.host} port {server.port}: STARTTLS with a "
                "self-signed certificate (trusted for this run only), AUTH as "
                f"{DEMO_USER!r} with a password generated for this run",
                flush=True,
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
        code = _session(args, target, envelope, message.as_bytes())
        if code != ExitCode.OK or args.quit_after is not None:
            return code
        (stored,) = server.wait_for_messages(1, timeout=10.0)
        to = ", ".join(f"<{escape_text(r)}>" for r in stored.recipients)
        print(f"\n---- the message as the built-in server received it, for {to} ----")
        print(format_message(stored.data, limit=SHOW_LIMIT))
        print(f"---- end of message ({len(stored.data)} octets) ----")
    return ExitCode.OK


def _plain() -> ssl.SSLContext:
    """A verifying context for a demo without TLS (never used for a handshake)."""
    return client_ssl_context()
