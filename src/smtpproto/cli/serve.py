"""``smtpproto serve``: the built-in server (``smtpproto.server.SMTPServer``) until Ctrl-C.

CLI adapter layer. Prints ``listening on HOST:PORT`` first (flushed, so a script or a
test can wait for it), then the server's transcript with elapsed-time stamps, and each
message as received when neither ``--maildir`` nor ``--mbox`` is given. Ctrl-C (SIGINT),
SIGTERM (``kill``, a container stopping) or SIGHUP (the terminal closed) stops the
server cleanly: open sessions are closed, the temporary certificate removed, and the
exit code is 0, also when one comes while the certificate is made (``_StopSignals``). A
``--maildir`` or ``--mbox`` that cannot take a message (a file where a folder should be,
a missing parent folder, no permission) is refused before the server starts: one line
naming the path, exit code 2. ``-q`` gives the server no transcript at all (no line is
formatted). Credentials for AUTH come from ``--auth USER:PASSWORD`` or, so that the
password stays out of the process list, ``SMTPPROTO_SERVE_AUTH``. ``--rules FILE`` makes
the server fail on purpose (the TOML or JSON form of ``builtin_server/rulefile.py``; a
bad file is one line on stderr and exit code 2); ``--max-size`` sets the SIZE limit it
advertises and enforces (RFC 1870), ``--rcptmax`` and ``--mailmax`` the LIMITS (RFC
9422). ``--workers N`` serves from N processes on the same port (``serve_workers``: each
accepts from the one listening socket, the less busy ones first; ``0`` is one per core).
"""

from __future__ import annotations

import argparse
import asyncio  # noqa: TID251 -- CLI adapter layer: the built-in server runs on asyncio
import contextlib
import os
import re
import signal
import ssl
import sys
import time  # noqa: TID251 -- CLI adapter layer: transcript time stamps

from ..builtin_server.rulefile import RuleFileError, load_rules
from ..builtin_server.rules import Rule
from ..builtin_server.server import DEFAULT_MAX_MESSAGE_SIZE, SMTPServer, StoredMessage
from ..builtin_server.storage import MessageStore, StorageError
from ..server_engine.replies import limits_keyword
from ..wire.text import escape_text
from .common import CLIError, ExitCode, quote
from .output import format_message
from .serve_reaping import taken
from .serve_workers import run_workers

__all__ = ["AUTH_ENV", "parse_credentials", "parse_size", "run_serve"]

#: Environment variable holding ``USER:PASSWORD`` when ``--auth`` is not given.
AUTH_ENV = "SMTPPROTO_SERVE_AUTH"


def parse_credentials(text: str) -> tuple[str, str]:
    """Split ``USER:PASSWORD`` (the password may contain ``:``); both must be non-empty.

    The error never repeats the text, which holds a password.
    """
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise CLIError("--auth needs USER:PASSWORD, both non-empty", ExitCode.USAGE)
    if not (user + password).isprintable():
        raise CLIError("--auth USER:PASSWORD must be printable text", ExitCode.USAGE)
    return user, password


_SIZE = re.compile(r"([0-9]{1,15})([KMG]?)", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(text: str) -> int:
    """``--max-size``: octets, or with a K, M or G suffix (powers of 1024); at least 1."""
    match = _SIZE.fullmatch(text.strip())
    size = 0 if match is None else int(match[1]) * _UNITS[match[2].upper()]
    if not 1 <= size <= 2**62:
        raise argparse.ArgumentTypeError(f"not a size such as 10485760, 512K or 10M: {text!r}")
    return size


def _rules(path: str | None) -> list[Rule]:
    if path is None:
        return []
    try:
        return load_rules(path)
    except RuleFileError as error:
        raise CLIError(escape_text(str(error)), ExitCode.USAGE) from None


def _check_storage(maildir: str | None, mbox: str | None) -> None:
    """Refuse to start (exit 2, one line naming the path) when ``--maildir`` or
    ``--mbox`` cannot take a message, rather than answer 451 to every one."""
    try:
        MessageStore(maildir, mbox, keep=False).prepare()
    except StorageError as error:
        reason = error.strerror or str(error)
        raise CLIError(f"cannot store messages: {escape_text(reason)}", ExitCode.USAGE) from None


def _print_message(message: StoredMessage) -> None:
    to = ", ".join(f"<{escape_text(r)}>" for r in message.recipients)
    print(f"---- message from <{escape_text(message.sender)}> to {to}", flush=False)
    print(format_message(message.data))
    print(f"---- end of message ({len(message.data)} octets)", flush=True)


def run_serve(args: argparse.Namespace) -> int:
    """Run the server until SIGINT or SIGTERM; exit 0 then, 3 when the address cannot
    be used, 2 for a bad option or rule file. ``--workers N`` runs N processes
    (``serve_workers``)."""
    users: dict[str, str] = {}
    credentials = args.auth if args.auth is not None else os.environ.get(AUTH_ENV)
    if credentials:
        user, password = parse_credentials(credentials)
        users[user] = password
        if args.no_starttls:  # AUTH is offered after STARTTLS only: no mail could come in
            raise CLIError(
                f"--auth (or {AUTH_ENV}) needs STARTTLS, which --no-starttls turns off: "
                "AUTH would never be offered and every MAIL would get 530",
                ExitCode.USAGE,
            )
    if (args.cert is None) != (args.key is None):
        raise CLIError("give both --cert and --key, or neither", ExitCode.USAGE)
    for path in (args.cert, args.key):
        if path is not None and not os.access(path, os.R_OK):
            raise CLIError(f"cannot read {quote(path)}", ExitCode.USAGE)
    if args.cert is not None:  # a bad PEM is the user's input, not "cannot listen"
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(args.cert, args.key)
        except (OSError, ssl.SSLError) as error:
            raise CLIError(
                f"cannot load --cert {quote(args.cert)} with --key {quote(args.key)}: "
                f"{escape_text(str(error))}",
                ExitCode.USAGE,
            ) from None
    rules = _rules(args.rules)
    _check_storage(args.maildir, args.mbox)
    max_size = DEFAULT_MAX_MESSAGE_SIZE if args.max_size is None else args.max_size
    start = time.monotonic()
    store_in_file = args.maildir is not None or args.mbox is not None

    def make_server(
        port: int, certfile: str | None, keyfile: str | None, prefix: str = ""
    ) -> SMTPServer:
        def transcript(line: str) -> None:
            print(f"[{time.monotonic() - start:8.3f}s] {prefix}{line}", flush=True)

        return SMTPServer(
            host=args.host,
            port=port,
            starttls=not args.no_starttls,
            certfile=certfile,
            keyfile=keyfile,
            users=users,
            require_auth=bool(users),
            maildir=args.maildir,
            mbox=args.mbox,
            transcript=None if args.quiet else transcript,  # -q: no line is even formatted
            on_message=None if store_in_file else _print_message,
            max_message_size=max_size,
            rules=rules,
            rcptmax=args.rcptmax,
            mailmax=args.mailmax,
            keep_messages=False,  # printed or written to a file: memory stays bounded
        )

    def banner(port: int, cert_path: str | None, cert_tool: str | None) -> None:
        if users and cert_path is None:  # no certificate could be made: no STARTTLS
            raise CLIError(
                "--auth needs STARTTLS, and no certificate could be made for it (see "
                "above; or give --cert and --key): AUTH would never be offered and "
                "every MAIL would get 530",
                ExitCode.USAGE,
            )
        print(f"listening on {args.host}:{port}", flush=True)
        if cert_path is not None and not args.no_starttls:
            print(f"STARTTLS certificate: {cert_path}", flush=True)
            print(f"certificate source: {cert_tool}", flush=True)
        else:
            print("STARTTLS not offered", flush=True)
        if users:
            names = ", ".join(escape_text(name) for name in users)
            print(f"AUTH required (after STARTTLS) for: {names}", flush=True)
        where = args.maildir or args.mbox
        print(f"messages: {escape_text(where) if where else 'printed here'}", flush=True)
        print(f"SIZE limit: {max_size} octets", flush=True)
        limits = limits_keyword(rcptmax=args.rcptmax, mailmax=args.mailmax)
        if limits is not None:  # what the servers' Backend advertises
            print(f"advertised: {limits}", flush=True)
        if rules:
            print(f"rules: {len(rules)} from {escape_text(args.rules)}", flush=True)
        print("press Ctrl-C to stop", flush=True)

    if args.workers is not None and args.workers > 1:
        return run_workers(
            args,
            args.workers,
            lambda port, cert, key, prefix: make_server(port, cert, key, f"{prefix} "),
            banner,
        )

    async def serve() -> None:
        stops = _StopSignals()  # before the certificate is made: see _StopSignals
        server = make_server(args.port, args.cert, args.key)
        try:
            await server.start()
            stops.started()
        except OSError as error:
            await server.close()
            raise CLIError(
                f"cannot listen on {escape_text(args.host)}:{args.port}: "
                f"{escape_text(error.strerror or str(error))}",
                ExitCode.CONNECT,
            ) from None
        try:
            if not stops.by:  # else stopped while starting: no banner
                cert = None if server.cert_path is None else str(server.cert_path)
                banner(server.port, cert, server.cert_tool)
            await _until_stopped(server, stops)
        finally:
            await server.close()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr, flush=True)
    return ExitCode.OK


#: Signals that stop ``serve`` as cleanly as Ctrl-C: ``kill``, and the terminal closing
#: (SIGHUP; its default action would leave the temporary certificate folder behind).
_STOP_SIGNALS = tuple(
    sig for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if sig is not None
)


class _StopSignals:
    """SIGTERM, SIGHUP and (until ``started``) SIGINT, taken by the running loop from
    now on: ``serve`` catches them before ``SMTPServer.start`` makes the temporary
    certificate, and stops once started. While it was made, the default action of
    SIGTERM and SIGHUP killed ``serve`` and left the certificate's folder behind, and
    Ctrl-C cancelled the start, whose cleanup removed the folder under the thread
    writing the certificate ("STARTTLS not offered: ... No such file"). One ignored
    when serve starts stays ignored (``nohup serve`` survives the terminal's SIGHUP,
    ``serve &`` from a script Ctrl-C). ``by`` lists those received; ``received`` is set
    at the first."""

    def __init__(self) -> None:
        self.by: list[signal.Signals] = []
        self.received = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._interrupt = signal.getsignal(signal.SIGINT)
        # Ctrl-C only where Python handles it (not where it is ignored: ``serve &``)
        interrupt = (signal.SIGINT,) if callable(self._interrupt) else ()
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            for sig in (*taken(_STOP_SIGNALS), *interrupt):  # not one ignored (``nohup``)
                self._loop.add_signal_handler(sig, self._stop, sig)

    def started(self) -> None:
        """Ctrl-C as before from now on: it interrupts ``serve`` (``stopped``)."""
        with contextlib.suppress(NotImplementedError):
            if callable(self._interrupt) and self._loop.remove_signal_handler(signal.SIGINT):
                signal.signal(signal.SIGINT, self._interrupt)

    def _stop(self, sig: signal.Signals) -> None:
        self.by.append(sig)
        self.received.set()


async def _until_stopped(server: SMTPServer, stops: _StopSignals) -> None:
    """Serve until cancelled (SIGINT), SIGTERM or SIGHUP (``stops``; at once if one came
    while the server started); the caller's ``finally`` cleans up."""
    stopped_by = stops.by
    serving = asyncio.ensure_future(server.serve_forever())
    waiting = asyncio.ensure_future(stops.received.wait())
    try:
        await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (serving, waiting):
            task.cancel()
        await asyncio.gather(serving, waiting, return_exceptions=True)
        # The handlers stay until the loop closes (``asyncio.run`` removes them): a
        # SIGTERM repeated while the caller closes the sessions is taken by them, not
        # by the default action, which would kill the process before it removed the
        # temporary certificate.
    if stopped_by:
        print(f"stopped ({stopped_by[0].name})", file=sys.stderr, flush=True)
    else:
        serving.result()  # serve_forever ended on its own: its error
