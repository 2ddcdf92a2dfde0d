"""A blocking SMTP/LMTP client: the session drivers (``_session``) over a socket.

Theory of operation
-------------------
This adapter knows nothing about SMTP. ``_run`` takes a driver generator from
``Session`` and performs its requests: ``Write`` (send all bytes), ``Read`` (receive
some bytes), ``UpgradeTLS`` (wrap the socket, handshake, return the channel binding).
Timeouts (``TimeoutError``) and transport errors (``OSError``) are thrown back into
the driver, which maps them to ``SMTPTimeoutError``, ``SMTPDeliveryStatusUnknown`` and
so on; TLS errors are mapped here (``SMTPTLSError``), since only this layer knows ssl.

The socket is non-blocking and every wait goes through one selector, so a write that
would block also watches for readable data and buffers it (up to ``MAX_READAHEAD``
octets): a server answering a long pipelined group early never deadlocks us (RFC 2920
§3.2). The next ``Read`` returns the buffered bytes at once.

After any exception that leaves the session unusable (everything except a refused
command on a healthy session), and after a driver that ends the session on purpose
(``sendmail(stop_after="data")``), the socket is closed; the client is never reused.

Right after a TLS handshake the adapter records ``tls_info`` (version, cipher,
certificate): transport facts the engine never sees.
"""

from __future__ import annotations

import contextlib
import selectors
import socket  # noqa: TID251  (adapter layer: I/O allowed)
import ssl
import time  # noqa: TID251  (adapter layer: I/O allowed)
from collections.abc import Iterable
from email.message import Message
from types import TracebackType
from typing import Any, Literal

from ..client_engine.capabilities import Capabilities
from ..client_engine.config import ClientConfig, Timeouts, TLSPolicy
from ..client_engine.events import TransactionResult
from ..drivers.batch import DEFAULT_MAX_IN_FLIGHT, BatchItem, Outcome
from ..drivers.exceptions import SMTPConnectError, SMTPError, SMTPTLSError
from ..drivers.session import (
    MAX_READAHEAD,
    Driver,
    MailOptions,
    MailStage,
    OpenStage,
    Read,
    Session,
    T,
    UpgradeTLS,
    Write,
    default_port,
    hello_name,
    session_config,
)
from ..drivers.support import (
    ContentSource,
    ProgressCallback,
    check_connect_options,
    check_server_hostname,
)
from ..sasl.base import ChannelBinding, ClientMechanism
from ..wire.reply import Reply
from .tls import TLSInfo, channel_binding, client_ssl_context

__all__ = ["SMTPClient", "TLSInfo"]

_RECV_SIZE = 256 * 1024
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
TLSName = Literal["none", "opportunistic", "required", "implicit"]


class SMTPClient:
    """A blocking SMTP client; use it as a context manager::

        with SMTPClient("mail.example.org", 587) as client:
            client.login("user", "password")
            client.send_message(message)

    ``tls``: ``"none"``, ``"opportunistic"`` (STARTTLS when offered), ``"required"`` or
    ``"implicit"``; by default implicit on port 465, required on 587, opportunistic
    otherwise. ``ssl_context`` defaults to ``client_ssl_context()`` (certificate and
    host-name verification on, SNI). ``server_hostname`` is the name verified
    (default: ``host``). ``timeout`` overrides the RFC 5321 §4.5.3.2 timeouts (a number
    for all, or ``Timeouts``); ``message_timeout`` bounds each ``sendmail`` /
    ``send_message`` as a whole. Connect with ``host``/``port`` (IPv4 or IPv6, optional
    ``source_address``), a ``unix_socket`` path, or ``sock``, an already-connected
    socket (proxies, socket pairs). ``config`` passes further ``ClientConfig`` options.
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        tls: TLSPolicy | TLSName | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: Timeouts | float | None = None,
        message_timeout: float | None = None,
        source_address: tuple[str, int] | None = None,
        local_hostname: str | None = None,
        sock: socket.socket | None = None,
        unix_socket: str | None = None,
        lmtp: bool = False,
        allow_cleartext_auth: bool = False,
        config: ClientConfig | None = None,
    ) -> None:
        if sum(x is not None for x in (host, sock, unix_socket)) != 1:
            raise ValueError("give exactly one of host, sock or unix_socket")
        check_connect_options(host, port, message_timeout)
        self._config = session_config(
            tls=tls,
            port=port,
            timeout=timeout,
            lmtp=lmtp,
            allow_cleartext_auth=allow_cleartext_auth,
            config=config,
        )
        self.host = host
        self.port = port if port is not None else default_port(self._config.tls_policy, lmtp)
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname if server_hostname is not None else host
        if self._server_hostname is not None and self._config.tls_policy is not TLSPolicy.NONE:
            check_server_hostname(self._server_hostname)
        self._message_timeout = message_timeout
        self._source_address = source_address
        self._local_hostname = local_hostname
        self._unix_socket = unix_socket
        self._sock: socket.socket | None = sock
        self._selector: selectors.BaseSelector | None = None
        self._events = 0
        self._rbuf = bytearray()
        self._eof = False
        self._deadline: float | None = None
        self._session: Session | None = None
        #: What the TLS handshake negotiated; None until TLS is up (see ``TLSInfo``).
        self.tls_info: TLSInfo | None = None

    # -- connection ---------------------------------------------------------------------

    def connect(self, until: OpenStage | None = None) -> Reply:
        """Connect and open the session (greeting, EHLO, STARTTLS per the policy);
        ``until`` (``"greeting"``, ``"ehlo"``, ``"tls"``) stops early, see
        ``Session.open``. Returns the last reply received."""
        if self._session is not None:
            raise ValueError("this client is already connected; make a new one")
        timeout = self._config.timeouts.greeting
        try:
            if self._sock is None and self._unix_socket is not None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.settimeout(timeout)
                self._sock.connect(self._unix_socket)
            elif self._sock is None:
                assert self.host is not None
                self._sock = socket.create_connection(
                    (self.host, self.port), timeout, source_address=self._source_address
                )
        except OSError as error:
            self._close()
            raise SMTPConnectError(
                f"cannot connect: {error}", host=self.host or self._unix_socket, port=self.port
            ) from error
        sock = self._sock
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            local: str | None = sock.getsockname()[0]
        else:
            local = None
        sock.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, _READ)
        self._events = _READ
        self._session = Session(
            self._config,
            server_hostname=self._server_hostname,
            local_hostname=hello_name(self._local_hostname, local),
        )
        try:
            driver = self._session.open(until)
        except BaseException:  # a bad ``until``: nothing was sent, nothing stays open
            self.close()
            raise
        return self._run(driver)

    def close(self) -> None:
        """Close the socket without QUIT; the client cannot be used again."""
        if self._session is not None:
            self._session.mark_broken()
        self._close()

    def _close(self) -> None:
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SMTPClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """QUIT when the session is still healthy (also after a refused command), then
        close. A failing QUIT after an exception in the block is not reported over it."""
        try:
            if self._session is not None and self._session.quit_on_exit(exc_type):
                if exc_type is None:
                    self.quit()
                else:
                    with contextlib.suppress(SMTPError):
                        self.quit()
        finally:
            self.close()

    @property
    def capabilities(self) -> Capabilities | None:
        """What the server's last EHLO advertised (None before it, or after HELO)."""
        return self._session.conn.capabilities if self._session is not None else None

    @property
    def session(self) -> Session:
        """The sans-IO session (engine state, TLS status, channel binding)."""
        if self._session is None:
            raise ValueError("not connected: call connect() or use the client in a with block")
        return self._session

    # -- operations ---------------------------------------------------------------------

    def login(
        self,
        username: str,
        password: str | None = None,
        *,
        token: str | None = None,
        mechanism: ClientMechanism | None = None,
    ) -> Reply:
        """AUTH with the strongest offered mechanism (see ``Session.login``)."""
        return self._run(self.session.login(username, password, token=token, mechanism=mechanism))

    def sendmail(
        self,
        sender: str,
        recipients: str | Iterable[str],
        content: ContentSource,
        *,
        options: MailOptions | None = None,
        pipelining: bool | None = None,
        chunking: bool | None = None,
        progress: ProgressCallback | None = None,
        stop_after: MailStage | None = None,
    ) -> TransactionResult:
        """Send one message (see ``Session.sendmail``); per-recipient results.
        ``stop_after`` (``"mail"``, ``"rcpt"``, ``"data"``) ends the transaction early
        without delivering; after ``"data"`` the connection is closed (no QUIT)."""
        driver = self.session.sendmail(
            sender,
            recipients,
            content,
            options=options,
            pipelining=pipelining,
            chunking=chunking,
            progress=progress,
            stop_after=stop_after,
        )
        return self._run_message(driver)

    def send_message(
        self,
        msg: Message,
        *,
        sender: str | None = None,
        recipients: str | Iterable[str] | None = None,
        options: MailOptions | None = None,
        pipelining: bool | None = None,
        chunking: bool | None = None,
        progress: ProgressCallback | None = None,
    ) -> TransactionResult:
        """Send an ``email.message`` message (see ``Session.send_message``)."""
        driver = self.session.send_message(
            msg,
            sender=sender,
            recipients=recipients,
            options=options,
            pipelining=pipelining,
            chunking=chunking,
            progress=progress,
        )
        return self._run_message(driver)

    def send_many(
        self,
        messages: Iterable[BatchItem],
        *,
        options: MailOptions | None = None,
        pipelining: bool | None = None,
        chunking: bool | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> list[Outcome]:
        """Send many messages, one round trip each with PIPELINING (see
        ``Session.send_many``): one ``TransactionResult`` or ``SMTPError`` per message,
        in order; a shorter list means the session ended. The per-message deadline does
        not apply; every wait has its RFC 5321 timeout."""
        driver = self.session.send_many(
            messages,
            options=options,
            pipelining=pipelining,
            chunking=chunking,
            max_in_flight=max_in_flight,
        )
        return self._run(driver)

    def noop(self) -> Reply:
        """NOOP."""
        return self._run(self.session.noop())

    def rset(self) -> Reply:
        """RSET."""
        return self._run(self.session.rset())

    def vrfy(self, address: str) -> Reply:
        """VRFY ``address``."""
        return self._run(self.session.vrfy(address))

    def quit(self) -> Reply:
        """QUIT, then close the connection."""
        try:
            return self._run(self.session.quit())
        finally:
            self.close()

    # -- the driver loop ----------------------------------------------------------------

    def _run_message(self, driver: Driver[TransactionResult]) -> TransactionResult:
        if self._message_timeout is not None:
            self._deadline = time.monotonic() + self._message_timeout
        try:
            return self._run(driver)
        finally:
            self._deadline = None

    def _run(self, driver: Driver[T]) -> T:
        """Perform ``driver``'s requests; close the socket when the session breaks."""
        session = self.session
        answer: Any = None
        error: BaseException | None = None
        while True:
            try:
                request = driver.send(answer) if error is None else driver.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                if not session.usable:  # the driver ended the session on purpose
                    self.close()
                return result
            except BaseException:
                if not session.usable:
                    self.close()
                raise
            answer = error = None
            try:
                if type(request) is Write:
                    self._write(request.data, request.timeout)
                elif type(request) is Read:
                    answer = self._read(request.timeout)
                else:
                    assert type(request) is UpgradeTLS
                    answer = self._start_tls(request.server_hostname, request.timeout)
            except ssl.SSLError as exc:
                error = SMTPTLSError(f"TLS failed: {exc}")
                error.__cause__ = exc
            except (OSError, SMTPTLSError) as exc:  # TimeoutError is an OSError
                error = exc
            except BaseException:  # KeyboardInterrupt, ...: the exchange is cut short
                driver.close()
                self.close()
                raise

    # -- I/O ----------------------------------------------------------------------------

    def _deadline_for(self, timeout: float | None) -> float | None:
        """The absolute time a wait must end: the request's timeout, capped by the
        message deadline."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._deadline is not None and (deadline is None or self._deadline < deadline):
            deadline = self._deadline
        return deadline

    def _wait(self, events: int, deadline: float | None) -> int:
        """Block until the socket is ready for ``events``; ``TimeoutError`` at the
        deadline. Returns the ready events."""
        selector = self._selector
        assert selector is not None and self._sock is not None
        if events != self._events:
            selector.modify(self._sock, events)
            self._events = events
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError("timed out")
            ready = selector.select(remaining)
            if ready:
                return ready[0][1]

    def _write(self, data: bytes, timeout: float | None) -> None:
        sock = self._sock
        assert sock is not None
        view = memoryview(data)
        deadline: float | None = None
        while view:
            try:
                sent = sock.send(view)
            except (BlockingIOError, ssl.SSLWantWriteError):
                want = _WRITE
            except ssl.SSLWantReadError:
                want = _READ
            else:
                view = view[sent:]
                continue
            if deadline is None:
                deadline = self._deadline_for(timeout)
            # RFC 2920 §3.2: keep reading while the server cannot take more.
            if not self._eof and len(self._rbuf) < MAX_READAHEAD:
                want |= _READ
            if self._wait(want, deadline) & _READ:
                self._read_ahead()

    def _read_ahead(self) -> None:
        assert self._sock is not None
        try:
            data = self._sock.recv(_RECV_SIZE)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        if data:
            self._rbuf += data
        else:
            self._eof = True

    def _read(self, timeout: float | None) -> bytes:
        if self._rbuf:
            data = bytes(self._rbuf)
            self._rbuf.clear()
            return data
        if self._eof:
            return b""
        sock = self._sock
        assert sock is not None
        # Receive before waiting: a pipelined group's replies are often there already
        # (a loopback server answers during our send; TLS may hold decrypted bytes),
        # which saves a select; when they are not, the failed recv costs ~1 µs.
        deadline: float | None = None
        want = 0
        while True:
            if want:
                if deadline is None:
                    deadline = self._deadline_for(timeout)
                self._wait(want, deadline)
            try:
                return sock.recv(_RECV_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError):
                want = _READ
            except ssl.SSLWantWriteError:
                want = _WRITE

    def _start_tls(
        self, server_hostname: str | None, timeout: float | None
    ) -> ChannelBinding | None:
        context = self._ssl_context or client_ssl_context()
        if server_hostname is None and context.check_hostname:
            raise SMTPTLSError(
                "no host name to verify the certificate against: pass server_hostname= "
                "(or an ssl_context with check_hostname=False)"
            )
        sock = self._sock
        selector = self._selector
        assert sock is not None and selector is not None
        selector.unregister(sock)
        tls = context.wrap_socket(
            sock, server_hostname=server_hostname, do_handshake_on_connect=False
        )
        self._sock = tls
        selector.register(tls, _READ)
        self._events = _READ
        deadline = self._deadline_for(timeout)
        started = time.monotonic()
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._wait(_READ, deadline)
            except ssl.SSLWantWriteError:
                self._wait(_WRITE, deadline)
        self.tls_info = TLSInfo.from_socket(tls, time.monotonic() - started)
        return channel_binding(tls)
