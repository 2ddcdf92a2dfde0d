"""The built-in SMTP server: ``ServerConnection`` on asyncio, for tests and the CLI.

Adapter layer (I/O allowed). Theory of operation: one ``asyncio.Protocol`` per client.
``data_received`` feeds the engine and answers every event at once (the policy below
lives in ``_Session._reply``), so the engine is never PAUSED for long and pipelined
input is handled in order. Using a Protocol rather than streams keeps the STARTTLS
boundary exact: octets that arrive before ``loop.start_tls`` takes over reach the
engine, which drops them (a StreamReader would have kept them and handed them over
after the handshake as if they were encrypted). Writes are flow-controlled (reading
pauses while the peer does not read our replies), each session has an idle timeout
(RFC 5321 §4.5.3.2.7) and a TLS handshake timeout, and a message is held in memory only
up to the size limit the engine enforces.

Policy: STARTTLS is offered when a certificate is available (given, or self-signed at
start with the ``openssl`` command; if ``openssl`` is missing a warning is printed and
STARTTLS is not offered). AUTH (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1, SCRAM-SHA-256) is
offered when ``users`` is given — only after TLS unless ``allow_plaintext_auth``. Each
message is kept in ``messages`` as ``(sender, recipients, data)`` with ``data`` exactly
as received, and optionally written to a maildir (as received) or appended to an mbox
(mboxrd: LF line ends, ``>From`` quoting).
"""

from __future__ import annotations

import asyncio  # noqa: TID251  (adapter layer: I/O allowed)
import contextlib
import os
import shutil
import socket  # noqa: TID251  (adapter layer: I/O allowed)
import ssl
import subprocess
import sys
import tempfile
import time  # noqa: TID251  (adapter layer: I/O allowed)
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from ..client_engine.events import NEED_DATA
from ..sasl.server import (
    CramMD5Server,
    LoginServer,
    PlainServer,
    ScramSHA1Server,
    ScramSHA256Server,
    ServerMechanism,
)
from ..server_engine.auth import AuthExchange
from ..server_engine.config import ServerConfig
from ..server_engine.connection import ServerConnection
from ..server_engine.events import (
    PAUSED,
    AuthCancelled,
    AuthRequested,
    AuthResponse,
    BdatStarted,
    ChunkComplete,
    ClientDisconnected,
    CommandRejected,
    ContentReceived,
    DataRequested,
    EhloReceived,
    ExpnReceived,
    HeloReceived,
    HelpReceived,
    MailReceived,
    MessageComplete,
    NoopReceived,
    PlaintextDiscarded,
    QuitReceived,
    RcptReceived,
    ResetReceived,
    ServerEvent,
    StartTLSRequested,
    UnknownCommand,
    VrfyReceived,
)
from ..server_engine.replies import (
    auth_mechanism_unsupported,
    auth_required,
    bad_sequence,
    cannot_verify,
    closing,
    ehlo_reply,
    greeting,
    helo_reply,
    help_reply,
    not_implemented,
    not_recognized,
    ok,
    ready_to_start_tls,
    service_closing,
    start_mail_input,
    syntax_error,
)
from ..wire.errors import ProtocolError
from ..wire.reply import Reply
from ..wire.text import escape_text

__all__ = ["DEFAULT_MECHANISMS", "SMTPServer", "StoredMessage", "make_self_signed"]

#: Seconds a session gets to close cleanly when the server stops, before it is aborted.
_GRACEFUL_CLOSE = 1.0

#: Seconds for connections accepted right before ``close()`` to reach the protocol.
_ACCEPT_SETTLE = 0.02

#: Mechanisms offered when ``users`` is given, strongest first.
DEFAULT_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN")
_MECHANISMS: dict[str, Callable[[Callable[[str], str | None]], ServerMechanism]] = {
    "SCRAM-SHA-256": ScramSHA256Server,
    "SCRAM-SHA-1": ScramSHA1Server,
    "CRAM-MD5": CramMD5Server,
    "PLAIN": PlainServer,
    "LOGIN": LoginServer,
}
#: Largest message accepted by default (advertised as SIZE): 32 MiB.
DEFAULT_MAX_MESSAGE_SIZE = 32 * 1024 * 1024
#: Seconds a TLS handshake may take after the 220 to STARTTLS.
TLS_HANDSHAKE_TIMEOUT = 30.0
#: Seconds ``openssl`` may take to make the self-signed certificate.
OPENSSL_TIMEOUT = 60.0


class StoredMessage(NamedTuple):
    """One received message: envelope sender (``""`` for ``<>``), recipients, content."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes


def make_self_signed(directory: Path, hostname: str = "localhost") -> tuple[Path, Path]:
    """Make ``cert.pem`` and ``key.pem`` (P-256, valid 2 days, SAN localhost, 127.0.0.1,
    ::1 and ``hostname``) in ``directory`` with the ``openssl`` command. Raises
    ``OSError`` when openssl is missing or fails, ``subprocess.TimeoutExpired`` on hang."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("the openssl command was not found")
    cert, key = directory / "cert.pem", directory / "key.pem"
    names = ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    if hostname != "localhost":
        names.append(f"DNS:{hostname}")
    command = [
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
        "-subj", f"/CN={hostname}", "-addext", "subjectAltName=" + ",".join(names),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, timeout=OPENSSL_TIMEOUT, check=False)
    if result.returncode != 0:
        detail = escape_text(result.stderr.decode("utf-8", "replace").strip()[-300:])
        raise OSError(f"openssl failed: {detail}")
    return cert, key


def _params(params: Mapping[str, str | None]) -> str:
    return "".join(f" {k}" + ("" if v is None else f"={v}") for k, v in params.items())


#: Commands without an argument, by the event that reports them.
_FIXED: dict[type[ServerEvent], str] = {
    StartTLSRequested: "STARTTLS",
    DataRequested: "DATA",
    QuitReceived: "QUIT",
    ResetReceived: "RSET",
    NoopReceived: "NOOP",
    AuthCancelled: "*",  # RFC 4954 §4: the client cancels the exchange with "*"
}


def _describe(event: ServerEvent) -> str:
    """One transcript line for a client event: the command line as the client sent it
    (rebuilt from the parsed event; parameters keep the client's order), or a note in
    ``<...>`` for what is not a command line (content, EOF). Secrets never appear:
    AUTH responses and initial responses are hidden (docs/design.md §4 rule 11)."""
    fixed = _FIXED.get(type(event))
    if fixed is not None:
        return fixed
    if isinstance(event, (EhloReceived, HeloReceived)):
        verb = "HELO" if isinstance(event, HeloReceived) else "LHLO" if event.lmtp else "EHLO"
        return f"{verb} {event.domain}"
    if isinstance(event, MailReceived):
        return f"MAIL FROM:<{event.sender}>{_params(event.params)}"
    if isinstance(event, RcptReceived):
        return f"RCPT TO:<{event.recipient}>{_params(event.params)}"
    if isinstance(event, BdatStarted):
        return f"BDAT {event.size}{' LAST' if event.last else ''}"
    if isinstance(event, (VrfyReceived, ExpnReceived)):
        verb = "VRFY" if isinstance(event, VrfyReceived) else "EXPN"
        return f"{verb} {event.argument}"
    if isinstance(event, HelpReceived):
        return f"HELP {event.topic}" if event.topic else "HELP"
    if isinstance(event, AuthRequested):
        hidden = "" if event.initial_response is None else " <initial response hidden>"
        return f"AUTH {event.mechanism}{hidden}"
    if isinstance(event, AuthResponse):
        return "<AUTH response hidden>"
    if isinstance(event, ChunkComplete):
        return f"<BDAT chunk: {event.size} octets>"
    if isinstance(event, MessageComplete):
        return f"<message: {event.size} octets{' via BDAT' if event.bdat else ''}>"
    if isinstance(event, (CommandRejected, UnknownCommand)):
        return repr(event.line)[2:-1]
    if isinstance(event, PlaintextDiscarded):
        return f"<{event.size} plaintext octets after STARTTLS discarded>"
    if isinstance(event, ClientDisconnected):
        return "<EOF>"
    return f"<{type(event).__name__}>"


class _Session(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: SMTPServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._conn = ServerConnection(lmtp=server.lmtp, config=server.config)
        self._timer: asyncio.TimerHandle | None = None
        self._auth: AuthExchange | None = None
        self._content: list[bytes] = []
        self._tls_starting = False
        self._early: list[bytes] = []
        self._tls_task: asyncio.Task[None] | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server._sessions.add(self)
        self._log("*", f"connection from {transport.get_extra_info('peername')}")
        self._write(greeting(self._server.hostname, "ESMTP smtpproto"))
        self._rearm()

    def data_received(self, data: bytes) -> None:
        self._rearm()
        if self._tls_starting:
            # Decrypted data can arrive before ``start_tls`` returns; plaintext cannot
            # (reading was paused when the 220 was written), so this is kept for later.
            self._early.append(data)
            if sum(map(len, self._early)) > self._conn.config.max_pipelined_input:
                self._abort()
            return
        self._conn.receive_data(data)
        self._pump()

    def eof_received(self) -> bool:
        self._conn.receive_data(b"")
        self._pump()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._server._sessions.discard(self)
        self._log("*", "connection closed")

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()  # the peer does not read our replies

    def resume_writing(self) -> None:
        if self._tls_starting:
            return
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    # -- plumbing -------------------------------------------------------------------------

    def _log(self, direction: str, text: str) -> None:
        if self._server.transcript is not None:
            self._server.transcript(f"{direction} {escape_text(text)}")

    def _rearm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(self._conn.timeout, self._timed_out)

    def _timed_out(self) -> None:
        self._log("*", "idle timeout")
        if self._conn.state.name not in ("CLOSED", "ERROR"):
            self._write(service_closing(self._server.hostname, "Idle timeout"))
        self.close()

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def _write(self, reply: Reply) -> None:
        data = self._conn.send(reply)
        for line in data.decode("utf-8", "replace").splitlines():
            self._log("S:", line)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _pump(self) -> None:
        try:
            while True:
                event = self._conn.next_event()
                if event is NEED_DATA:
                    return
                if event is PAUSED:
                    if self._conn.state.name == "CLOSED":
                        self.close()
                    return
                assert isinstance(event, ServerEvent)
                if not isinstance(event, ContentReceived):
                    self._log("C:", _describe(event))
                if isinstance(event, ClientDisconnected):
                    self.close()
                    return
                self._handle(event)
        except ProtocolError as error:
            self._log("*", f"protocol error: {error}")
            self._write(syntax_error("Protocol error, closing"))
            self.close()

    # -- policy ---------------------------------------------------------------------------

    def _extensions(self) -> list[str]:
        server = self._server
        extensions = ["PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "DSN"]
        extensions += ["CHUNKING", "BINARYMIME", f"SIZE {server.config.max_message_size or 0}"]
        if server.tls_context is not None and not self._conn.tls_active:
            extensions.append("STARTTLS")
        if server.users and (self._conn.tls_active or server.allow_plaintext_auth):
            extensions.append("AUTH " + " ".join(server.mechanisms))
        return extensions

    def _handle(self, event: ServerEvent) -> None:
        hostname = self._server.hostname
        if isinstance(event, ContentReceived):
            self._content.append(event.data)
        elif isinstance(event, StartTLSRequested):
            self._write(ready_to_start_tls())
            # From here nothing more is read in plaintext: what the engine already holds
            # it drops; what is still in the socket reaches the TLS layer as garbage.
            assert self._transport is not None
            self._transport.pause_reading()
            self._tls_starting = True
            self._tls_task = self._loop.create_task(self._start_tls())
        elif isinstance(event, MessageComplete):
            self._deliver(event)
        elif isinstance(event, (AuthRequested, AuthResponse, AuthCancelled)):
            self._write(self._auth_reply(event))
        elif isinstance(event, QuitReceived):
            self._write(closing(hostname))
            self.close()
        elif event.expects_reply:
            reply = self._reply(event)
            for _ in range(self._conn.replies_due):  # LMTP: a refused message, per recipient
                self._write(reply)

    def _reply(self, event: ServerEvent) -> Reply:
        hostname = self._server.hostname
        if isinstance(event, EhloReceived):
            return ehlo_reply(hostname, self._extensions(), "greets you")
        if isinstance(event, HeloReceived):
            return helo_reply(hostname)
        if isinstance(event, MailReceived):
            self._content = []
            if self._server.require_auth and not self._conn.authenticated:
                return auth_required()
            return ok("2.1.0 Sender OK")
        if isinstance(event, RcptReceived):
            return ok("2.1.5 Recipient OK")
        if isinstance(event, DataRequested):
            self._content = []
            return start_mail_input()
        if isinstance(event, ChunkComplete):
            return ok(f"2.0.0 {event.size} octets received")
        if isinstance(event, CommandRejected):
            return event.reply
        if isinstance(event, UnknownCommand):
            return not_recognized()
        if isinstance(event, (VrfyReceived, ExpnReceived)):
            return cannot_verify() if isinstance(event, VrfyReceived) else not_implemented()
        if isinstance(event, HelpReceived):
            return help_reply("2.0.0 smtpproto built-in server; see RFC 5321")
        return ok()

    def _auth_reply(self, event: AuthRequested | AuthResponse | AuthCancelled) -> Reply:
        if isinstance(event, AuthRequested):
            factory = _MECHANISMS.get(event.mechanism)
            if factory is None:
                return auth_mechanism_unsupported()
            self._auth = AuthExchange(factory(self._server.users.get))
        if self._auth is None:
            return bad_sequence()
        reply = self._auth.reply(event)
        if self._auth.done:
            outcome = self._auth.identity or f"failed ({self._auth.failure_reason})"
            self._log("*", f"AUTH {outcome}")
        return reply

    def _deliver(self, event: MessageComplete) -> None:
        data = b"".join(self._content)
        self._content = []
        message = StoredMessage(event.sender, event.recipients, data)
        try:
            queue_id = self._server._store(message)
        except OSError as error:
            self._log("*", f"storing the message failed: {error}")
            failure = Reply(451, (b"4.3.0 Could not store the message",))
            for _ in range(self._conn.replies_due):
                self._write(failure)
            return
        for _ in range(self._conn.replies_due):  # LMTP: one per recipient (RFC 2033 §4.2)
            self._write(ok(f"2.0.0 Ok: queued as {queue_id}"))

    async def _start_tls(self) -> None:
        transport, context = self._transport, self._server.tls_context
        assert transport is not None and context is not None
        try:
            new = await self._loop.start_tls(
                transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
            )
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError) as error:
            self._log("*", f"TLS handshake failed: {error}")
            transport.abort()
            return
        finally:
            self._tls_starting = False
        if new is None:  # the peer went away during the handshake
            transport.abort()
            return
        self._transport = new
        self._log("*", f"TLS established ({new.get_extra_info('ssl_object').version()})")
        self._conn.tls_established()
        self._rearm()
        early, self._early = self._early, []
        for data in early:
            self._conn.receive_data(data)
        self._pump()


class SMTPServer:
    """An SMTP (or LMTP) server on asyncio for tests and demos.

    Use ``async with SMTPServer(...) as server:`` (or ``await start()`` / ``await
    close()``); ``host`` and ``port`` are known after start (``port=0`` picks a free
    port). ``cert_path`` is the certificate clients should trust for STARTTLS.
    ``transcript`` receives one line per command, reply and connection event.
    ``on_message`` is called (in the event loop's thread) after each message is stored.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        hostname: str = "localhost",
        starttls: bool = True,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        users: Mapping[str, str] | None = None,
        mechanisms: Sequence[str] = DEFAULT_MECHANISMS,
        allow_plaintext_auth: bool = False,
        require_auth: bool = False,
        maildir: str | os.PathLike[str] | None = None,
        mbox: str | os.PathLike[str] | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        timeout: float = 300.0,
        lmtp: bool = False,
        transcript: Callable[[str], None] | None = None,
        on_message: Callable[[StoredMessage], None] | None = None,
    ) -> None:
        unknown = [name for name in mechanisms if name not in _MECHANISMS]
        if unknown:
            raise ValueError(f"unsupported AUTH mechanisms: {unknown}")
        if (certfile is None) != (keyfile is None):
            raise ValueError("give both certfile and keyfile, or neither")
        self.host = host
        self.port = port
        self.hostname = hostname
        self.users: dict[str, str] = dict(users or {})
        self.mechanisms = tuple(mechanisms)
        self.allow_plaintext_auth = allow_plaintext_auth
        self.require_auth = require_auth
        self.maildir = None if maildir is None else Path(maildir)
        self.mbox = None if mbox is None else Path(mbox)
        self.lmtp = lmtp
        self.transcript = transcript
        self.on_message = on_message
        self.config = ServerConfig(max_message_size=max_message_size, timeout=timeout)
        self.messages: list[StoredMessage] = []
        self.tls_context: ssl.SSLContext | None = None
        self.cert_path: Path | None = None if certfile is None else Path(certfile)
        self._starttls = starttls
        self._keyfile = None if keyfile is None else Path(keyfile)
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._counter = 0

    async def __aenter__(self) -> SMTPServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _make_tls_context(self) -> None:
        if not self._starttls:
            return
        if self.cert_path is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="smtpproto-server-")
            try:
                self.cert_path, self._keyfile = make_self_signed(
                    Path(self._tempdir.name), self.hostname
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                print(
                    f"smtpproto server: STARTTLS not offered: {escape_text(str(error))}",
                    file=sys.stderr,
                )
                self.cert_path = None
                return
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert_path), str(self._keyfile))
        self.tls_context = context

    async def start(self) -> None:
        """Make the certificate if needed, then listen. Raises ``OSError`` if the address
        is in use (a certificate made here is removed again)."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._make_tls_context)
            self._server = await loop.create_server(
                lambda: _Session(self), self.host, self.port, family=socket.AF_UNSPEC
            )
        except BaseException:  # nothing listens: remove the certificate made for it
            if self._tempdir is not None:
                self._tempdir.cleanup()
                self._tempdir = None
                self.cert_path = self._keyfile = None
            raise
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        """Serve until cancelled (Ctrl-C in ``main``)."""
        assert self._server is not None, "call start() first"
        await self._server.serve_forever()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop listening, close every session, remove the temporary certificate.

        Sessions get ``_GRACEFUL_CLOSE`` seconds to close (a TLS session waits for the
        peer's close_notify); what is still open then is aborted. Either way this
        returns only after every connection's transport reported ``connection_lost``, so
        no socket outlives the server (Python 3.11's ``Server.wait_closed`` does not
        wait for connections).
        """
        if self._server is not None:
            # A connection accepted just now reaches connection_made a loop iteration
            # later; closing the listener in between leaks its transport (asyncio on
            # 3.11 fails the attach to a closed server), so let pending accepts land.
            await asyncio.sleep(_ACCEPT_SETTLE)
            self._server.close()
            for session in list(self._sessions):
                session.close()
            if not await self._sessions_gone(min(timeout, _GRACEFUL_CLOSE)):
                for session in list(self._sessions):
                    session._abort()
                await self._sessions_gone(timeout)
            with contextlib.suppress(asyncio.TimeoutError):  # only waiters remain
                await asyncio.wait_for(self._server.wait_closed(), timeout)
            self._server = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    async def _sessions_gone(self, timeout: float) -> bool:
        """Wait (bounded) until every session's transport was lost; True if they were."""
        deadline = time.monotonic() + timeout
        while self._sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return not self._sessions

    async def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[StoredMessage]:
        """Wait until ``count`` messages were stored; ``TimeoutError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.messages)} of {count} messages after {timeout}s")
            await asyncio.sleep(0.01)
        return list(self.messages)

    # -- storage ------------------------------------------------------------------------

    def _store(self, message: StoredMessage) -> str:
        self._counter += 1
        queue_id = f"{int(time.time())}.{os.getpid()}.{self._counter}"
        if self.maildir is not None:
            for sub in ("tmp", "new", "cur"):
                (self.maildir / sub).mkdir(parents=True, exist_ok=True)
            name = f"{queue_id}.{socket.gethostname().replace('/', '_')}"
            temporary = self.maildir / "tmp" / name
            temporary.write_bytes(message.data)
            temporary.rename(self.maildir / "new" / name)
        if self.mbox is not None:
            with self.mbox.open("ab") as mbox:
                mbox.write(_mbox_entry(message))
        self.messages.append(message)
        self._log_message(message, queue_id)
        if self.on_message is not None:
            self.on_message(message)
        return queue_id

    def _log_message(self, message: StoredMessage, queue_id: str) -> None:
        if self.transcript is not None:
            to = ", ".join(message.recipients)
            self.transcript(
                escape_text(f"* stored {queue_id}: <{message.sender}> -> {to}, "
                            f"{len(message.data)} octets")
            )  # fmt: skip


def _mbox_entry(message: StoredMessage) -> bytes:
    """mboxrd: a ``From `` line, LF line ends, ``>`` added before ``>*From `` lines."""
    sender = (message.sender or "MAILER-DAEMON").encode("utf-8", "replace")
    stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime()).encode()
    lines = message.data.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    quoted = [b">" + line if line.lstrip(b">").startswith(b"From ") else line for line in lines]
    return b"From " + sender + b" " + stamp + b"\n" + b"\n".join(quoted) + b"\n\n"
