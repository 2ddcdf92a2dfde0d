"""Real SMTP peers on 127.0.0.1 for the interop tests: aiosmtpd and Postfix smtp-sink.

Theory of operation
-------------------
Each peer is started on a free loopback port by a context manager that yields a small
handle (host, port, and a way to read what the peer received) and always stops the peer
on exit, whatever happened inside. Start-up is bounded: the port is polled until it
accepts a connection or ``STARTUP_TIMEOUT`` passes, and a peer process that exits early
is reported with its stderr/log. Reading received messages is bounded the same way.

A peer binary that is not installed raises ``PeerMissing``; ``conftest.py`` turns it into
a test failure that names ``.ci/install-peers`` (or a skip when
``SMTPPROTO_ALLOW_MISSING_PEERS=1``). This module does not import pytest so that other
tools can reuse it.

What each peer records, and how exact it is:

* aiosmtpd: the content bytes after dot-unstuffing, CRLF line ends kept, exactly as the
  client sent them (aiosmtpd does not add headers).
* smtp-sink (``-D`` dump file): every line of the content with its CRLF turned into LF,
  after dot-unstuffing; envelope from its ``X-Mail-Args``/``X-Rcpt-Args`` lines.
* Exim: see ``peers_exim.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

C = TypeVar("C", bound=Controller)

__all__ = [
    "AUTH_PASSWORD",
    "AUTH_USER",
    "HOST",
    "INSTALL_HINT",
    "STARTUP_TIMEOUT",
    "AiosmtpdPeer",
    "PeerFailed",
    "PeerMissing",
    "ReceivedMessage",
    "SinkPeer",
    "TLSMaterial",
    "find_postfix_tool",
    "free_port",
    "make_tls_material",
    "poll",
    "start_aiosmtpd",
    "start_smtp_sink",
    "stop_controller",
    "stop_process",
    "track_connections",
    "wait_for_port",
]

#: Seconds a peer may take to accept connections, and a reader to see a message.
STARTUP_TIMEOUT = 10.0
#: The one account every AUTH-enabled peer accepts.
AUTH_USER = "alice"
AUTH_PASSWORD = "s3cret-password"
HOST = "127.0.0.1"
INSTALL_HINT = (
    "run `sudo .ci/install-peers` (it installs postfix, swaks, haproxy and a private Exim)"
)


class PeerMissing(RuntimeError):
    """A peer program is not installed on this machine."""


class PeerFailed(RuntimeError):
    """A peer was installed but did not start (its output is in the message)."""


# -- ports -------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, *, timeout: float = STARTUP_TIMEOUT, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll until 127.0.0.1:``port`` accepts a connection; raise ``PeerFailed`` on timeout.

    When ``process`` is given and exits first, fail at once instead of waiting.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise PeerFailed(f"peer exited with status {process.returncode} before listening")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise PeerFailed(f"nothing listens on {HOST}:{port} after {timeout} s") from None
            time.sleep(0.05)


def poll(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Call ``predicate`` every 20 ms until it is true; ``TimeoutError`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 5 s; returns once the process is reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


# -- TLS material -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TLSMaterial:
    """A trustme CA and a server certificate for ``localhost`` and ``127.0.0.1``.

    ``ca_path`` is the CA certificate (PEM) clients should trust; ``cert_path`` the server
    certificate chain and ``key_path`` its private key, as PEM files.
    """

    ca: trustme.CA
    server_cert: trustme.LeafCert
    ca_path: Path
    cert_path: Path
    key_path: Path

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this CA."""
        context = ssl.create_default_context(cafile=str(self.ca_path))
        return context

    def server_context(self) -> ssl.SSLContext:
        """A server context presenting the server certificate; no client certificates."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        return context


def make_tls_material(directory: Path) -> TLSMaterial:
    """Create a fresh CA and server certificate, written as PEM files into ``directory``."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1", "::1")
    directory.mkdir(parents=True, exist_ok=True)
    ca_path = directory / "ca.pem"
    cert_path = directory / "server-cert.pem"
    key_path = directory / "server-key.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    return TLSMaterial(ca, cert, ca_path, cert_path, key_path)


# -- what peers received ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReceivedMessage:
    """One message as a peer stored it.

    ``mail_from`` and ``rcpt_tos`` are the envelope addresses without angle brackets;
    ``content`` is the message (see the module comment for how exact each peer is);
    ``mail_options``/``rcpt_options`` the ESMTP parameters where the peer reports them.
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    mail_options: tuple[str, ...] = ()
    rcpt_options: tuple[str, ...] = ()
    smtp_utf8: bool = False
    auth_user: str | None = None
    tls: bool = False


# -- aiosmtpd -----------------------------------------------------------------------------


class _RecordingHandler:
    """aiosmtpd handler that keeps every accepted envelope (thread-safe)."""

    def __init__(self) -> None:
        self.messages: list[ReceivedMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        auth_data = session.auth_data
        auth_user = None
        if isinstance(auth_data, LoginPassword):
            auth_user = auth_data.login.decode("utf-8", "replace")
        message = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            content=bytes(envelope.original_content or b""),
            mail_options=tuple(envelope.mail_options),
            rcpt_options=tuple(envelope.rcpt_options),
            smtp_utf8=envelope.smtp_utf8,
            auth_user=auth_user,
            tls=session.ssl is not None,
        )
        with self.lock:
            self.messages.append(message)
        return "250 2.0.0 OK stored"


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == AUTH_USER.encode("utf-8")
        and auth_data.password == AUTH_PASSWORD.encode("utf-8")
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


@dataclasses.dataclass
class AiosmtpdPeer:
    """A running aiosmtpd server; ``messages`` grows as it accepts mail."""

    host: str
    port: int
    tls: TLSMaterial | None
    handler: _RecordingHandler

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A snapshot of what was accepted so far."""
        with self.handler.lock:
            return list(self.handler.messages)

    def wait_for_messages(
        self, count: int, timeout: float = STARTUP_TIMEOUT
    ) -> list[ReceivedMessage]:
        """Wait until at least ``count`` messages arrived; raise ``TimeoutError`` if not."""
        poll(lambda: len(self.messages) >= count, timeout, f"{count} message(s) at aiosmtpd")
        return self.messages


@contextlib.contextmanager
def start_aiosmtpd(
    *,
    tls: TLSMaterial | None = None,
    require_starttls: bool = False,
    auth: bool = False,
    auth_require_tls: bool = True,
    smtputf8: bool = True,
    data_size_limit: int = 32 * 1024 * 1024,
) -> Iterator[AiosmtpdPeer]:
    """Run aiosmtpd on a free port for the duration of the ``with`` block.

    ``tls`` enables STARTTLS with that certificate; ``auth`` enables AUTH PLAIN/LOGIN for
    ``AUTH_USER``/``AUTH_PASSWORD`` (offered only after STARTTLS when
    ``auth_require_tls``); ``smtputf8`` advertises SMTPUTF8 (RFC 6531).
    """
    handler = _RecordingHandler()
    port = free_port()
    kwargs: dict[str, Any] = {
        "enable_SMTPUTF8": smtputf8,
        "data_size_limit": data_size_limit,
        "require_starttls": require_starttls,
        "auth_require_tls": auth_require_tls,
        "timeout": 30,
    }
    if tls is not None:
        kwargs["tls_context"] = tls.server_context()
    if auth:
        kwargs["authenticator"] = _authenticate
    else:
        kwargs["auth_exclude_mechanism"] = ["LOGIN", "PLAIN"]
    controller = track_connections(
        Controller(handler, hostname=HOST, port=port, ready_timeout=STARTUP_TIMEOUT, **kwargs)
    )
    controller.start()
    try:
        wait_for_port(port)
        yield AiosmtpdPeer(HOST, port, tls, handler)
    finally:
        stop_controller(controller)


#: Seconds a stopping aiosmtpd gives the connections it is accepting to attach.
_ACCEPT_SETTLE = 0.02
#: Longest wait for aiosmtpd's connections to report ``connection_lost`` at stop.
_CLOSE_TIMEOUT = 5.0


def track_connections(controller: C) -> C:
    """Make ``controller`` remember every ``SMTP`` protocol it makes (weakly), so that
    ``stop_controller`` can close their connections. Call it before ``start()``."""
    made: weakref.WeakSet[SMTP] = weakref.WeakSet()
    factory = controller.factory

    def tracked() -> SMTP:
        protocol = factory()
        made.add(protocol)
        return protocol

    controller.factory = tracked  # type: ignore[method-assign]  # aiosmtpd calls self.factory()
    _TRACKED[id(controller)] = made
    return controller


#: The protocols ``track_connections`` saw, by controller.
_TRACKED: dict[int, weakref.WeakSet[SMTP]] = {}


async def _close_connections(server: asyncio.AbstractServer, made: Iterable[SMTP]) -> None:
    """On aiosmtpd's loop: stop listening once the connections being accepted have
    attached (as ``SMTPServer.close`` does), abort every connection, and wait until
    each reported ``connection_lost`` (aiosmtpd then sets ``transport`` to None)."""
    await asyncio.sleep(_ACCEPT_SETTLE)
    server.close()
    protocols = list(made)
    for protocol in protocols:
        for transport in (protocol.transport, getattr(protocol, "_original_transport", None)):
            if transport is not None:
                transport.abort()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _CLOSE_TIMEOUT
    while any(p.transport is not None for p in protocols) and loop.time() < deadline:
        await asyncio.sleep(0.005)


def stop_controller(controller: Controller) -> None:
    """Stop an aiosmtpd ``Controller`` without leaking a socket.

    ``Controller.stop`` stops its loop, cancels its tasks and closes the loop within
    an iteration or two: a connection accepted in that last iteration fails to attach
    to the closed server, and one still open may not see its close through. Either
    leaves an unclosed socket and ``_SelectorSocketTransport`` that the garbage
    collector reports later, in whatever test runs then (``ResourceWarning``, an error
    under ``filterwarnings = error``: the failure seen about once in ten full runs).
    So the listener is closed and every connection aborted and seen lost first, on
    aiosmtpd's own loop (``track_connections`` lists them)."""
    made = _TRACKED.pop(id(controller), weakref.WeakSet())
    server = controller.server
    if server is not None and controller.loop.is_running():
        closing = asyncio.run_coroutine_threadsafe(
            _close_connections(server, made), controller.loop
        )
        closing.result(_CLOSE_TIMEOUT + 5.0)
    controller.stop()


# -- Postfix smtp-sink --------------------------------------------------------------------

_SINK_MARKER = b"@@smtpproto-sink-message@@"


def find_postfix_tool(name: str) -> Path:
    """The path of Postfix's ``smtp-sink`` or ``smtp-source``; ``PeerMissing`` if absent."""
    for folder in ("/usr/sbin", "/usr/lib/postfix/sbin", "/usr/libexec/postfix"):
        candidate = Path(folder) / name
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found is None:
        raise PeerMissing(f"Postfix's {name} is not installed; {INSTALL_HINT}")
    return Path(found)


@dataclasses.dataclass
class SinkPeer:
    """A running ``smtp-sink``; ``dump_path`` is its ``-D`` file (``None``: not dumping)."""

    host: str
    port: int
    dump_path: Path | None
    process: subprocess.Popen[bytes]

    def messages(self) -> list[ReceivedMessage]:
        """Parse the dump file: messages in the order the sink finished them."""
        if self.dump_path is None:
            raise ValueError("this smtp-sink was started without a dump file")
        try:
            data = self.dump_path.read_bytes()
        except FileNotFoundError:
            return []
        parts = data.split(_SINK_MARKER + b"\n")
        return [_parse_sink_dump(part) for part in parts[1:] if part.endswith(b"\n\n")]

    def wait_for_messages(
        self, count: int, timeout: float = STARTUP_TIMEOUT
    ) -> list[ReceivedMessage]:
        """Wait until the dump holds at least ``count`` messages."""
        poll(lambda: len(self.messages()) >= count, timeout, f"{count} message(s) at smtp-sink")
        return self.messages()


def _parse_sink_dump(part: bytes) -> ReceivedMessage:
    """Split one dumped message into smtp-sink's own header block and the content.

    smtp-sink writes ``X-Client-Addr``, ``X-Client-Proto``, ``X-Helo-Args``,
    ``X-Mail-Args``, ``X-Rcpt-Args``... then a three-line ``Received:`` header, then the
    content, then one empty line (smtp-sink(1), "DUMP FILE FORMAT").
    """
    lines = part.split(b"\n")
    mail_args = b""
    rcpt_args: list[bytes] = []
    index = 0
    while not lines[index].startswith(b"Received: "):
        name, _, value = lines[index].partition(b": ")
        if name == b"X-Mail-Args":
            mail_args = value
        elif name == b"X-Rcpt-Args":
            rcpt_args.append(value)
        index += 1
    index += 3  # Received: line and its two continuation lines
    content = b"\n".join(lines[index:])[:-1]  # drop the empty line smtp-sink appends
    mail_from, *mail_options = mail_args.decode("utf-8", "surrogateescape").split(" ")
    recipients = [arg.decode("utf-8", "surrogateescape").split(" ") for arg in rcpt_args]
    return ReceivedMessage(
        mail_from=mail_from.strip("<>"),
        rcpt_tos=tuple(words[0].strip("<>") for words in recipients),
        content=content,
        mail_options=tuple(mail_options),
        rcpt_options=tuple(option for words in recipients for option in words[1:]),
        smtp_utf8="SMTPUTF8" in (option.upper() for option in mail_options),
    )


@contextlib.contextmanager
def start_smtp_sink(
    *,
    dump: bool = True,
    pipelining: bool = True,
    eightbitmime: bool = True,
    extra_args: tuple[str, ...] = (),
) -> Iterator[SinkPeer]:
    """Run Postfix's ``smtp-sink`` on a free port for the duration of the ``with`` block.

    ``dump`` captures every transaction to a file (slow: keep it off for benchmarks);
    ``pipelining``/``eightbitmime`` False stop it advertising PIPELINING/8BITMIME.
    ``extra_args`` go to smtp-sink as they are (see smtp-sink(1): ``-f``/``-r`` reject
    commands, ``-q``/``-Q`` disconnect, ``-w`` delay). Postfix's smtp-sink does not
    implement CHUNKING (BDAT).
    """
    sink = find_postfix_tool("smtp-sink")
    workdir = Path(tempfile.mkdtemp(prefix="smtpproto-sink-"))
    args = [str(sink), "-c"]
    if os.geteuid() == 0:
        # smtp-sink must drop root (-u); the dump file is written as that user.
        nobody = pwd.getpwnam("nobody")
        os.chown(workdir, nobody.pw_uid, nobody.pw_gid)
        args += ["-u", "nobody"]
    dump_path = workdir / "dump" if dump else None
    if dump_path is not None:
        args += ["-D", str(dump_path), "-S", _SINK_MARKER.decode("ascii") + r"\n"]
    if not pipelining:
        args.append("-p")
    if not eightbitmime:
        args.append("-8")
    port = free_port()
    args += [*extra_args, f"{HOST}:{port}", "100"]
    process = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        try:
            wait_for_port(port, process=process)
        except PeerFailed as exc:
            stop_process(process)
            stderr = process.stderr.read() if process.stderr else b""
            raise PeerFailed(f"smtp-sink did not start: {exc}; stderr: {stderr!r}") from None
        yield SinkPeer(HOST, port, dump_path, process)
    finally:
        stop_process(process)
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(workdir, ignore_errors=True)
