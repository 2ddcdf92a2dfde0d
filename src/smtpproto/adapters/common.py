"""What every client adapter shares that is not I/O: settings, session bookkeeping,
deadlines, TLS-context defaulting, the mapping of TLS and connect failures, and ``Step``.

Theory of operation
-------------------
``ClientCore`` turns the constructor options common to the blocking, asyncio and trio
clients into a ``ClientConfig`` (TLS policy from the port, RFC 5321 §4.5.3.2 timeouts),
keeps ``tls_info`` once TLS is up (the ``Session`` is the bases'), and computes
deadlines as absolute times on the adapter's clock (``_clock``; ``math.inf`` means no
limit): a request's timeout, capped by the per-message deadline that
``_start_message``/``_end_message`` set around each ``sendmail``/``send_message``. The
operations and the driver loop are written once, async, in ``async_base``;
``sync_base`` is generated from it (``scripts/unasync.py``). What they share that
never waits lives here: ``Step`` and the loop's hooks (``_transport_error``,
``_thrown``, ``_cut_by_deadline``, ``_tls_up``). The adapters add the transport only.

This module imports ``ssl`` only for types and ``isinstance`` checks; ``import
smtpproto`` never loads it (only the adapters do).
"""

from __future__ import annotations

import abc
import math
import ssl
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

from ..client_engine.config import ClientConfig, Timeouts, TLSPolicy
from ..client_engine.proxy import ProxyHeader
from ..drivers.exceptions import SMTPConnectError, SMTPProtocolError, SMTPTLSError
from ..drivers.support import (
    MessageDeadlinePassed,
    check_connect_options,
    check_server_hostname,
    default_port,
    session_config,
)
from ..sasl.base import ChannelBinding
from ..wire.errors import LocalProtocolError
from .smtplib_compat import smtplib_compatible
from .tls import SSLConnection, TLSInfo, channel_binding, client_ssl_context

__all__ = [
    "RECV_SIZE",
    "ClientCore",
    "ClientOptions",
    "Step",
    "TLSName",
    "check_client_options",
    "connect_error",
    "require_one_target",
    "tls_failure",
    "usage_error",
]

TLSName = Literal["none", "opportunistic", "required", "implicit"]

#: The most octets one ``recv`` of the blocking and trio clients (and one direct read of
#: the asyncio client's, ``asyncio_channel``) asks for. Below glibc's
#: 128 KiB mmap threshold: ``recv`` allocates its whole buffer, and one of 256 KiB was
#: mapped and unmapped on every call (about 8 µs of a reply that takes 1).
RECV_SIZE = 64 * 1024

#: Seconds before the message deadline within which a timeout counts as that deadline's
#: (an event loop may wake a little early: asyncio by its clock resolution).
_DEADLINE_SLACK = 0.05


class ClientOptions(TypedDict, total=False):
    """The client options every adapter takes that a pool and the one-call ``send``
    pass on to the clients they make (``**options: Unpack[ClientOptions]``: mypy
    reports a misspelt or mistyped option)."""

    tls: TLSPolicy | TLSName | None
    ssl_context: ssl.SSLContext | None
    server_hostname: str | None
    timeout: Timeouts | float | None
    message_timeout: float | None
    source_address: tuple[str, int] | None
    local_hostname: str | None
    lmtp: bool
    allow_cleartext_auth: bool
    config: ClientConfig | None
    proxy_header: ProxyHeader | None


def check_client_options(options: Mapping[str, object]) -> None:
    """``usage_error`` for a name that is no ``ClientOptions`` key (at run time too,
    before anything is connected)."""
    unknown = sorted(set(options) - ClientOptions.__optional_keys__)
    if unknown:
        raise usage_error(f"unknown client option(s): {', '.join(unknown)}")


def usage_error(problem: str | LocalProtocolError) -> SMTPProtocolError:
    """What every adapter raises for a caller mistake (a bad argument, an operation
    out of turn): ``SMTPProtocolError`` wrapping a ``LocalProtocolError`` (so
    ``remote`` is false), as its smtplib-compatible twin. One rule for constructors
    and methods alike (docs/migrating-from-smtplib.md, "Caller mistakes")."""
    error = problem if isinstance(problem, LocalProtocolError) else LocalProtocolError(problem)
    return smtplib_compatible(SMTPProtocolError(error))


def require_one_target(**targets: object) -> None:
    """Raise ``usage_error`` unless exactly one of ``targets`` (in the order given) is
    set, e.g. ``give exactly one of host, sock or unix_socket``."""
    if sum(value is not None for value in targets.values()) != 1:
        *names, last = targets
        raise usage_error(f"give exactly one of {', '.join(names)} or {last}")


def tls_failure(exc: ssl.SSLError) -> SMTPTLSError:
    """What the driver gets for a TLS failure on an established connection."""
    error = SMTPTLSError(f"TLS failed: {exc}")
    error.__cause__ = exc
    return error


def connect_error(error: BaseException, host: str | None, port: int) -> SMTPConnectError:
    """The ``SMTPConnectError`` for a failed connect (timeouts have no message text)."""
    message = f"cannot connect: {error or 'timed out'}"
    connect_failed = SMTPConnectError(message, host=host, port=port)
    connect_failed.__cause__ = error
    return connect_failed


class Step:
    """What ``_drive`` hands its driver when it starts (an answer, an error to throw in,
    or how the driver already ended, re-raised) or after a ``_send`` that went on with
    the driver (the asyncio pump, trio's burst of writes); kept across ``_drive`` calls
    so that an adapter can leave the loop (trio: its deadline fired) and resume it."""

    __slots__ = ("answer", "cut_short", "ended", "error")

    def __init__(self) -> None:
        #: A request was interrupted by the adapter's own deadline (``_cut_by_deadline``).
        self.cut_short = False
        self.answer: Any = None
        self.error: BaseException | None = None
        self.ended: BaseException | None = None


class ClientCore(abc.ABC):
    """Settings, session and deadlines of one client connection; see the module doc.

    ``host``/``unix_socket`` and the other options are those of the adapters' public
    constructors; which connection target was given is checked by the adapter. A bad
    option raises ``usage_error``.
    """

    def __init__(
        self,
        host: str | None,
        port: int | None,
        *,
        tls: TLSPolicy | TLSName | None,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
        timeout: Timeouts | float | None,
        message_timeout: float | None,
        source_address: tuple[str, int] | None,
        local_hostname: str | None,
        unix_socket: str | None,
        lmtp: bool,
        allow_cleartext_auth: bool,
        config: ClientConfig | None,
        proxy_header: ProxyHeader | None = None,
    ) -> None:
        try:
            check_connect_options(host, port, message_timeout)
            if proxy_header is not None and not isinstance(proxy_header, ProxyHeader):
                raise LocalProtocolError(
                    f"proxy_header must be a ProxyHeader, got {type(proxy_header).__name__}"
                )
            self._config = session_config(
                tls=tls,
                port=port,
                timeout=timeout,
                lmtp=lmtp,
                allow_cleartext_auth=allow_cleartext_auth,
                config=config,
            )
            self._server_hostname = server_hostname if server_hostname is not None else host
            if self._server_hostname is not None and self._config.tls_policy is not TLSPolicy.NONE:
                check_server_hostname(self._server_hostname)
        except LocalProtocolError as error:
            raise usage_error(error) from error
        self.host = host
        self.port = port if port is not None else default_port(self._config.tls_policy, lmtp)
        self._ssl_context = ssl_context
        self._message_timeout = message_timeout
        self._source_address = source_address
        self._local_hostname = local_hostname
        self._unix_socket = unix_socket
        #: The PROXY protocol header written first on the connection (``Session.open``).
        self._proxy_header = proxy_header
        self._deadline = math.inf
        #: The deadline of the reply wait in progress (``_read_deadline``); None until
        #: a read of it has to wait (``_drive`` resets it for each ``Read`` that does
        #: not resume the previous one's wait).
        self._wait_deadline: float | None = None
        #: What the TLS handshake negotiated; None until TLS is up (see ``TLSInfo``).
        self.tls_info: TLSInfo | None = None

    # -- hooks of the driver loop (``_drive`` in async_base / sync_base) -----------------

    @abc.abstractmethod
    def _transport_error(self, exc: BaseException) -> BaseException | None:
        """What to throw into the driver for a transport failure ``exc``, or None when
        ``exc`` is no transport failure (the exchange is then cut short)."""

    def _thrown(self, exc: BaseException) -> BaseException | None:
        """What to throw into the driver for ``exc``, raised by a transport primitive:
        ``_transport_error``'s, a timeout as ``_timed_out`` names it; None when ``exc``
        is no transport failure (a cancellation: the exchange is cut short)."""
        error = self._transport_error(exc)
        return self._timed_out(error) if isinstance(error, TimeoutError) else error

    def _cut_by_deadline(self) -> bool:
        """Whether an exception that is no transport failure is the adapter's own
        deadline firing (``_run`` resumes the driver with a timeout)."""
        return False

    def _tls_up(self, tls: SSLConnection, started: float) -> ChannelBinding | None:
        """Record ``tls_info`` for a handshake begun at ``started`` (on ``_clock``) and
        return the channel binding."""
        self.tls_info = TLSInfo.from_socket(tls, self._clock() - started)
        return channel_binding(tls)

    def _connect_error(self, error: BaseException) -> SMTPConnectError:
        return connect_error(error, self.host or self._unix_socket, self.port)

    def _tls_context(self, server_hostname: str | None) -> ssl.SSLContext:
        """The context for STARTTLS or implicit TLS (default ``client_ssl_context()``);
        ``SMTPTLSError`` when it verifies host names and there is no name to verify."""
        context = self._ssl_context or client_ssl_context()
        if server_hostname is None and context.check_hostname:
            raise SMTPTLSError(
                "no host name to verify the certificate against: pass server_hostname= "
                "(or an ssl_context with check_hostname=False)"
            )
        return context

    # -- deadlines ----------------------------------------------------------------------

    @abc.abstractmethod
    def _clock(self) -> float:
        """The adapter's clock, in seconds; deadlines are absolute on it."""

    def _deadline_for(self, timeout: float | None) -> float:
        """When a wait must end: the request's timeout, capped by the message deadline
        (``math.inf``: no limit)."""
        deadline = math.inf if timeout is None else self._clock() + timeout
        return min(deadline, self._deadline)

    def _read_deadline(self, timeout: float | None) -> float:
        """The deadline of a ``Read`` that has to wait: fixed when the first read of a
        reply wait has to wait, and kept for the reads that resume it, so partial bytes
        never extend the RFC 5321 §4.5.3.2 per-command timer."""
        deadline = self._wait_deadline
        if deadline is None:
            deadline = self._wait_deadline = self._deadline_for(timeout)
        return deadline

    def _timed_out(self, error: TimeoutError) -> TimeoutError:
        """What to throw into the driver for a wait that timed out: when the message
        deadline (``message_timeout``) had passed, ``MessageDeadlinePassed`` (the error
        then names that deadline, not the step's timeout). ``_DEADLINE_SLACK`` absorbs
        an event loop waking a little before a deadline (asyncio's clock resolution)."""
        seconds = self._message_timeout
        if seconds is not None and self._clock() + _DEADLINE_SLACK >= self._deadline:
            passed = MessageDeadlinePassed(seconds)
            passed.__cause__ = error
            return passed
        return error

    def _start_message(self) -> None:
        """Start the ``message_timeout`` deadline (if any) of one message."""
        if self._message_timeout is not None:
            self._deadline = self._clock() + self._message_timeout

    def _end_message(self) -> None:
        self._deadline = math.inf
