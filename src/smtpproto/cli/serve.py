"""``smtpproto serve``: the built-in server (``smtpproto.server.SMTPServer``) until Ctrl-C.

CLI adapter layer. Prints ``listening on HOST:PORT`` first (flushed, so a script or a
test can wait for it), then the server's transcript with elapsed-time stamps, and each
message as received when neither ``--maildir`` nor ``--mbox`` is given. Ctrl-C (SIGINT)
stops the server cleanly: open sessions are closed, the temporary certificate removed,
and the exit code is 0. Credentials for AUTH come from ``--auth USER:PASSWORD`` or, so
that the password stays out of the process list, ``SMTPPROTO_SERVE_AUTH``.
"""

from __future__ import annotations

import argparse
import asyncio  # noqa: TID251 -- CLI adapter layer: the built-in server runs on asyncio
import os
import sys
import time  # noqa: TID251 -- CLI adapter layer: transcript time stamps

from ..builtin_server.server import SMTPServer, StoredMessage
from ..wire.text import escape_text
from .common import CLIError, ExitCode
from .output import format_message

__all__ = ["AUTH_ENV", "parse_credentials", "run_serve"]

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


def _print_message(message: StoredMessage) -> None:
    to = ", ".join(f"<{escape_text(r)}>" for r in message.recipients)
    print(f"---- message from <{escape_text(message.sender)}> to {to}", flush=False)
    print(format_message(message.data))
    print(f"---- end of message ({len(message.data)} octets)", flush=True)


def run_serve(args: argparse.Namespace) -> int:
    """Run the server until SIGINT; exit 0 then, 3 when the address cannot be used."""
    users: dict[str, str] = {}
    credentials = args.auth if args.auth is not None else os.environ.get(AUTH_ENV)
    if credentials:
        user, password = parse_credentials(credentials)
        users[user] = password
    if (args.cert is None) != (args.key is None):
        raise CLIError("give both --cert and --key, or neither", ExitCode.USAGE)
    for path in (args.cert, args.key):
        if path is not None and not os.access(path, os.R_OK):
            raise CLIError(f"cannot read {escape_text(path)!r}", ExitCode.USAGE)
    start = time.monotonic()

    def transcript(line: str) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - start:8.3f}s] {line}", flush=True)

    store_in_file = args.maildir is not None or args.mbox is not None

    async def serve() -> None:
        server = SMTPServer(
            host=args.host,
            port=args.port,
            starttls=not args.no_starttls,
            certfile=args.cert,
            keyfile=args.key,
            users=users,
            require_auth=bool(users),
            maildir=args.maildir,
            mbox=args.mbox,
            transcript=transcript,
            on_message=None if store_in_file else _print_message,
        )
        try:
            await server.start()
        except OSError as error:
            await server.close()
            raise CLIError(
                f"cannot listen on {escape_text(args.host)}:{args.port}: "
                f"{escape_text(error.strerror or str(error))}",
                ExitCode.CONNECT,
            ) from None
        try:
            print(f"listening on {server.host}:{server.port}", flush=True)
            if server.cert_path is not None:
                print(f"STARTTLS certificate: {server.cert_path}", flush=True)
                print(f"certificate source: {server.cert_tool}", flush=True)
            else:
                print("STARTTLS not offered", flush=True)
            if users:
                names = ", ".join(escape_text(name) for name in users)
                print(f"AUTH required (after STARTTLS) for: {names}", flush=True)
            where = args.maildir or args.mbox
            print(f"messages: {escape_text(where) if where else 'printed here'}", flush=True)
            print("press Ctrl-C to stop", flush=True)
            await server.serve_forever()
        finally:
            await server.close()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr, flush=True)
    return ExitCode.OK
