"""The built-in SMTP server: ``ServerConnection`` on asyncio, for tests and the CLI.

Adapter layer (I/O allowed). Theory of operation: one ``asyncio.BufferedProtocol`` per
client (``_Connection``) moves octets between the transport and its ``ServerConnection``;
what to answer it asks the connection's policy, a ``Session`` made by the server's
``Backend`` (``backend.py``: no I/O, so other front ends reuse it). ``buffer_updated``
feeds the engine and answers every event at once, so the engine is never PAUSED for
long and pipelined input is handled in order. Using a Protocol rather than streams
keeps the STARTTLS boundary exact: octets that arrive before ``loop.start_tls`` takes
over reach the engine, which drops them (a StreamReader would have kept them and handed
them over after the handshake as if they were encrypted). Writes are flow-controlled
(reading pauses while the peer does not read our replies), each session has an idle
timeout (RFC 5321 §4.5.3.2.7, swept by one thread per server: ``idle.py``) and a TLS
handshake timeout, and a message is held in
memory only up to the size limit the engine enforces.

Policy (``Session``, replaceable with ``session_class``): STARTTLS is offered when a
certificate is available (given, or self-signed at start by ``certificates.py`` with
the cryptography package or the ``openssl`` command, whichever works first, named in
``cert_tool``; with neither a warning says how to get one and STARTTLS is not offered).
AUTH
(PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1, SCRAM-SHA-256) is offered when ``users`` is given
— only after TLS unless ``allow_plaintext_auth``. Storage (``storage.py``): each
message is kept in ``messages`` as ``(sender, recipients, data)`` with ``data`` exactly
as received, and optionally written to a maildir (as received) or appended to an mbox
(mboxrd: LF line ends, ``>From`` quoting).
"""

from __future__ import annotations

import asyncio  # noqa: TID251  (adapter layer: I/O allowed)
import contextlib
import inspect
import os
import socket  # noqa: TID251  (adapter layer: I/O allowed)
import ssl
import sys
import tempfile
import time  # noqa: TID251  (adapter layer: I/O allowed)
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from ..server_engine.config import DEFAULT_MAX_RECIPIENTS, ServerConfig
from ..server_engine.connection import ServerConnection
from ..server_engine.events import (
    PAUSED,
    ClientDisconnected,
    ContentReceived,
    Paused,
    QuitReceived,
    ServerEvent,
    StartTLSRequested,
)
from ..server_engine.replies import service_closing
from ..server_engine.states import ServerState
from ..wire.errors import LocalProtocolError, ProtocolError
from ..wire.fields import check_flag, check_int
from ..wire.need_data import NEED_DATA
from ..wire.reply import Reply
from ..wire.text import escape_text
from .backend import DEFAULT_MECHANISMS, Backend, Response, Session
from .certificates import make_certificate
from .idle import IdleSweeper, interval_for
from .rules import Hook, Rule, RuleSet
from .storage import MessageStore, StoredMessage
from .transcript import describe

__all__ = ["DEFAULT_MECHANISMS", "SMTPServer", "StoredMessage", "make_self_signed"]

#: Seconds a session gets to close cleanly when the server stops, before it is aborted.
_GRACEFUL_CLOSE = 1.0

#: Seconds for connections accepted right before ``close()`` to reach the protocol.
_ACCEPT_SETTLE = 0.02

#: Largest message accepted by default (advertised as SIZE): 32 MiB.
DEFAULT_MAX_MESSAGE_SIZE = 32 * 1024 * 1024
#: Seconds a TLS handshake may take after the 220 to STARTTLS.
TLS_HANDSHAKE_TIMEOUT = 30.0
#: The most octets one read takes (what asyncio's own transports ask for per read).
RECEIVE_BUFFER = 256 * 1024


def make_self_signed(directory: Path, hostname: str = "localhost") -> tuple[Path, Path]:
    """Make ``cert.pem`` and ``key.pem`` (P-256, valid 2 days, for localhost, 127.0.0.1,
    ::1 and ``hostname``) in ``directory`` with the cryptography package or the
    ``openssl`` command, the first that works (``certificates.make_certificate`` says
    which and lets you choose).
    Raises ``OSError`` (``NoCertificateTool``) when none does."""
    made = make_certificate(directory, hostname)
    return made.cert, made.key


class _BadReply(Exception):
    """A reply the policy made that the engine cannot send (a code the command cannot
    have, not a ``Reply`` at all): the policy's fault, so a policy error, not a 500."""


def _policy_fault(reply: object, error: LocalProtocolError) -> _BadReply:
    """The error for a reply of the policy's that the engine refused (a code the command
    cannot have, not a ``Reply`` at all): the policy's fault, not the client's."""
    if inspect.iscoroutine(reply):  # an ``async def`` hook of a Session subclass
        reply.close()
    return _BadReply(f"the policy answered with {reply!r}: {error}")


#: Events whose replies the transport acts on (``_finish``: close, or start TLS).
_TRANSPORT_EVENTS = (StartTLSRequested, QuitReceived)


class _Connection(asyncio.BufferedProtocol):
    """One client connection: moves octets between the transport and the engine and
    sends what the connection's ``Session`` answers.

    The transport reads into the server's receive buffer (``get_buffer``), shared by
    every connection of the server: they all run on its loop, one callback at a time,
    and ``buffer_updated`` copies the octets out before it returns. A plain
    ``Protocol`` has the transport allocate a 256 KiB ``recv`` buffer per read, which
    glibc maps and unmaps every time (above its 128 KiB mmap threshold): most of the
    CPU a short command cost.

    The replies to one batch of input go out in one write (``_out``, flushed when the
    batch is answered). No timer is kept for the idle timeout: reads only note the
    time, and the server's sweeper (``idle.py``) times out a connection idle too long.
    """

    __slots__ = (
        "_conn",
        "_delayed",
        "_early",
        "_last_input",
        "_loop",
        "_lost",
        "_out",
        "_server",
        "_session",
        "_stock_respond",
        "_timed",
        "_tls_starting",
        "_tls_task",
        "_transport",
        "_writing_paused",
    )

    def __init__(self, server: SMTPServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._conn = ServerConnection(lmtp=server.lmtp, config=server.config)
        self._session: Session  # made in connection_made, when the peer is known
        #: The idle time runs (not while a delayed response waits, nor once timed out).
        self._timed = False
        #: Loop time of the last input (or of the last restart of the idle time).
        self._last_input = 0.0
        #: A reply held back by a rule's delay (reading is paused meanwhile).
        self._delayed: asyncio.TimerHandle | None = None
        self._tls_starting = False
        #: The transport's write buffer is full (the peer does not read our replies):
        #: reading stays paused until ``resume_writing``, whatever else would resume it.
        self._writing_paused = False
        self._early: list[bytes] = []
        self._tls_task: asyncio.Task[None] | None = None
        self._lost = False
        #: Replies not written yet (flushed at the end of each step).
        self._out: list[bytes] = []

    # -- asyncio.BufferedProtocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server._sessions.add(self)
        peername = transport.get_extra_info("peername")
        self._log("*", f"connection from {peername}")
        self._session = self._server.backend.new_session(
            self._conn,
            starttls=self._server.tls_context is not None,
            note=self._note,
            peer=str(peername[0]) if peername else "",
        )
        #: ``Session.respond`` itself, which answers content with nothing (``_content``).
        self._stock_respond = type(self._session).respond is Session.respond
        self._rearm()
        self._guarded(lambda: self._carry_out(self._session.opening(), None))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._server._receive_buffer

    def buffer_updated(self, nbytes: int) -> None:
        """The transport read ``nbytes`` octets into the receive buffer: feed them to
        the engine and answer every event it makes of them, in one write."""
        server = self._server
        data = server._receive_buffer[:nbytes].tobytes()
        self._last_input = server._clock()
        if self._tls_starting:
            # Decrypted data can arrive before ``start_tls`` returns; plaintext cannot
            # (reading was paused when the 220 was written), so this is kept for later.
            self._early.append(data)
            if sum(map(len, self._early)) > self._conn.config.max_pipelined_input:
                self._abort()
            return
        conn = self._conn
        try:  # ``_guarded(self._events)``, without a bound method and a frame per read
            first = conn.receive_line(data)  # a plain command line alone: its event at once
            if first is None:
                if server.transcript is not None or not self._content(data):
                    conn.receive_data(data)  # may refuse the read: handled below, like the rest
                    self._events()
            elif server.transcript is not None or first.__class__ is QuitReceived:
                self._events(first)
            else:
                self._plain_line(first)
        except Exception as error:
            self._failed(error)
        finally:
            self._flush()

    def _content(self, data: bytes) -> bool:
        """A read of DATA content in one engine step (``receive_content``) with no
        transcript: its ``ContentReceived`` given to the policy, the end of the content
        answered as ``_plain_line`` answers a line. False, nothing done, when the engine
        leaves the read to ``receive_data`` or the policy has a ``respond`` of its own
        (it may act on content, which the general loop carries out)."""
        if not self._stock_respond:
            return False
        got = self._conn.receive_content(data)
        if got is None:
            return False
        content, end = got
        if content is not None:
            self._session.respond(content)  # collected; ``Session.respond`` answers nothing
        if end is not None:
            self._plain_line(end)
        return True

    def _plain_line(self, event: ServerEvent) -> None:
        """``_events(event)`` for the event of a plain command line (``receive_line``)
        or of the end of the content (``_content``) with no transcript: what ``_events``
        does for it, in its order, without its loop. The engine then usually needs
        data; what else it has (the commands pipelined behind the content, a close by
        a reply, a rule that acts) goes to the general loop."""
        conn = self._conn
        response = self._session.respond(event)
        if response.delay > 0:
            self._carry_out(response, event)
            return
        if response.close:
            self._finish(response, event)  # closes
            return
        out = self._out
        for reply in response.replies:
            try:
                out.append(conn.send(reply))
            except LocalProtocolError as error:
                raise _policy_fault(reply, error) from error
        after = conn.next_event()
        if after is not NEED_DATA:
            self._events(after)

    def eof_received(self) -> bool:
        self._conn.receive_data(b"")
        self._guarded(self._events)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:  # reported already (``_start_tls``'s failure path)
            return
        self._lost = True
        transport = self._transport
        if transport is not None and not transport.is_closing():
            # Python 3.10's TLS transport is not marked closed when the peer goes away
            # (a ResourceWarning when it is collected); aborting it only marks it.
            transport.abort()
        self._timed = False
        if self._delayed is not None:
            self._delayed.cancel()
        self._server._sessions.discard(self)
        self._log("*", "connection closed")

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self._transport is not None:
            self._transport.pause_reading()  # the peer does not read our replies

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._tls_starting or self._delayed is not None:
            return
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    # -- plumbing -------------------------------------------------------------------------

    def _log(self, direction: str, text: str) -> None:
        if self._server.transcript is not None:
            self._server.transcript(f"{direction} {escape_text(text)}")

    def _note(self, text: str) -> None:
        """The session's transcript notes (``Session.note``)."""
        self._log("*", text)

    def _rearm(self) -> None:
        """Start the idle time (RFC 5321 §4.5.3.2.7) again from now."""
        self._last_input = self._server._clock()
        self._timed = True

    def _check_idle(self, now: float) -> None:
        """Time out when idle for the timeout or longer at ``now`` (the server's sweep,
        ``SMTPServer._sweep_idle``): 421 and close; a connection closed that long ago
        and still open (its peer does not read the rest) is aborted."""
        if not self._timed or now - self._last_input < self._conn.timeout:
            return
        transport = self._transport
        if self._tls_starting:  # after the 220 only TLS may follow (RFC 3207 §4)
            self._timed = False
            self._log("*", "idle timeout during the TLS handshake, dropped")
            self._abort()
            return
        if transport is not None and transport.is_closing():
            # closed (a QUIT, a rule, the 421 below) a timeout ago and still not gone:
            # the peer reads nothing, so what is left to write never drains
            self._timed = False
            self._log("*", "idle timeout: the peer reads nothing, dropped")
            self._abort()
            return
        self._last_input = now  # the 421 gets one more timeout to be read
        self._log("*", "idle timeout")
        if self._conn.state.name not in ("CLOSED", "ERROR"):
            self._guarded(lambda: self._write(self._session.idle_timeout()))
        self.close()

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def shut_down(self) -> None:
        """The server stops: 421, then close (RFC 5321 §3.8: a server closes only after a
        221 to QUIT, a 421 as the service shuts down, or a timeout). Nothing is said
        during a TLS handshake (only TLS may follow the 220, RFC 3207 §4) or once the
        session is over."""
        transport = self._transport
        if (
            transport is not None
            and not transport.is_closing()
            and not self._tls_starting
            and self._conn.state not in (ServerState.CLOSED, ServerState.ERROR)
        ):
            reply = service_closing(self._server.hostname, "Service shutting down")
            self._guarded(lambda: self._write(reply))
        self.close()

    def close(self) -> None:
        self._flush()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
            # What is left to write gets a timeout to drain from now, not from the last
            # input: a sweep that comes just after drops it only then (``_check_idle``).
            self._rearm()

    def _write(self, reply: Reply) -> None:
        """Queue ``reply`` (sent by ``_flush``), checked by the engine first."""
        self._finish(Response((reply,)), None)

    def _flush(self) -> None:
        """Write the queued replies at once, in one write."""
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _guarded(self, step: Callable[[], object]) -> None:
        """Run ``step``; a protocol error or a failing policy ends the session. What
        the step answered is written at the end."""
        try:
            step()
        except Exception as error:
            self._failed(error)
        finally:
            self._flush()

    def _failed(self, error: Exception) -> None:
        """A step failed: a protocol error (the client's input: the engine is in ERROR)
        or a failing policy (a rule hook, a ``Session`` subclass) ends the session; so
        does any other fault (the engine refusing a read: the engine is unchanged)."""
        if isinstance(error, ProtocolError) and self._conn.state is ServerState.ERROR:
            self._log("*", f"protocol error: {error}")
            self._write(self._session.protocol_error(error))
        else:
            self._log("*", f"policy error: {error!r}")
            self._server.policy_errors.append(error)
            if self._conn.state not in (ServerState.CLOSED, ServerState.ERROR):
                self._write(service_closing(self._server.hostname, "Policy error, closing"))
        self.close()

    def _events(self, first: ServerEvent | Paused | None = None) -> None:
        """Answer ``first`` (an event the engine made already: ``receive_line``), then
        every event the engine has, until it needs data or a reply waits."""
        conn = self._conn
        next_event, send, out = conn.next_event, conn.send, self._out
        respond = self._session.respond
        logged = self._server.transcript is not None
        while True:
            event = next_event() if first is None else first
            first = None
            if event is NEED_DATA:
                return
            if event is PAUSED:
                if conn.state is ServerState.CLOSED:
                    self.close()
                return
            if logged and not isinstance(event, ContentReceived):
                self._log("C:", describe(event))
            if event.unauthorized_pipelining:  # flagged, or refused with 554 below
                self._log("*", "sent before the reply it had to wait for (RFC 2920 §3.1)")
            if not event.expects_reply and isinstance(event, ClientDisconnected):
                self.close()
                return
            response = respond(event)
            if response.delay > 0:
                self._carry_out(response, event)
                return
            if not (response.replies or response.close or event.expects_reply):
                continue  # content: nothing to write, nothing to do
            if logged or response.close or isinstance(event, _TRANSPORT_EVENTS):
                if not self._finish(response, event):
                    return
                continue
            for reply in response.replies:  # what ``_finish`` does here, in line
                try:
                    out.append(send(reply))
                except LocalProtocolError as error:
                    raise _policy_fault(reply, error) from error

    def _carry_out(self, response: Response, event: ServerEvent | None) -> bool:
        """Do what the policy said for ``event`` (``None``: the greeting): now, or after
        the response's delay with reading paused. True when the next event may follow
        (``_events`` does the same, the delay aside, in line)."""
        if response.delay <= 0:
            return self._finish(response, event)
        assert self._transport is not None
        self._transport.pause_reading()
        self._timed = False  # the idle time starts again after the delay
        self._delayed = self._loop.call_later(response.delay, self._resume, response, event)
        return False

    def _resume(self, response: Response, event: ServerEvent | None) -> None:
        """A delayed response is due: send it, then read and answer again."""
        self._delayed = None
        if self._transport is None or self._transport.is_closing():
            return
        self._rearm()

        def step() -> None:
            if self._finish(response, event):
                if not self._tls_starting and not self._writing_paused:
                    assert self._transport is not None
                    self._transport.resume_reading()
                self._events()

        self._guarded(step)

    def _finish(self, response: Response, event: ServerEvent | None) -> bool:
        """Queue the replies (sent by ``_flush``), each checked by the engine first,
        then do what they mean for the transport; True when the session goes on."""
        out = self._out
        for reply in response.replies:
            try:
                data = self._conn.send(reply)
            except LocalProtocolError as error:
                raise _policy_fault(reply, error) from error
            if self._server.transcript is not None:
                for line in data.decode("utf-8", "replace").splitlines():
                    self._log("S:", line)
            out.append(data)
        if response.close:
            self._log("*", "closing (a rule said so)" if response.replies else "dropped")
            self.close()
            return False
        if not isinstance(event, _TRANSPORT_EVENTS):
            return True
        if isinstance(event, QuitReceived):
            self.close()
        elif self._conn.state is ServerState.TLS_HANDSHAKE:
            self._begin_tls()
        else:  # STARTTLS refused: the session goes on
            return True
        return False

    def _begin_tls(self) -> None:
        if self._server.tls_context is None:  # a policy said 220 with no certificate
            self._log("*", "TLS not available, closing")
            self._abort()
            return
        # From here nothing more is read in plaintext: what the engine already holds
        # it drops; what is still in the socket reaches the TLS layer as garbage.
        assert self._transport is not None
        self._flush()  # the 220 goes out in plaintext, before the handshake
        self._transport.pause_reading()
        self._tls_starting = True
        self._tls_task = self._loop.create_task(self._start_tls())

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
            self.connection_lost(error)  # 3.10's SSLProtocol never reports it
            return
        finally:
            self._tls_starting = False
        if new is None:  # the peer went away during the handshake
            transport.abort()
            self.connection_lost(None)
            return
        self._transport = new
        self._writing_paused = False  # the TLS transport's own flow control starts now
        self._log("*", f"TLS established ({new.get_extra_info('ssl_object').version()})")
        self._conn.tls_established()
        self._rearm()
        early, self._early = self._early, []
        for data in early:
            self._conn.receive_data(data)
        self._guarded(self._events)


class SMTPServer:
    """An SMTP (or LMTP) server on asyncio for tests and demos.

    Use ``async with SMTPServer(...) as server:`` (or ``await start()`` / ``await
    close()``); ``host`` and ``port`` are known after start (``port=0`` picks a free
    port). ``cert_path`` is the certificate clients should trust for STARTTLS.
    ``transcript`` receives one line per command, reply and connection event.
    ``on_message`` is called (in the event loop's thread) after each message is stored.
    ``session_class`` replaces the reply policy (a ``Session`` subclass, see
    ``backend.py``); the policy settings live in ``backend`` (``hostname``, ``users``,
    ``mechanisms``, ``allow_plaintext_auth`` and ``require_auth`` read and write it).
    ``timeout`` closes a connection idle for that many seconds with 421 (RFC 5321
    §4.5.3.2.7), checked by one thread per server about every second (every eighth of
    the timeout when that is shorter, at most every 10 ms), so up to that much later
    (``idle.py``: no loop timer per connection); a peer that does not read the 421 is
    dropped one timeout later.
    ``rules`` make it fail on purpose (``rules.py``: tried in order at every stage,
    first match wins), ``hook`` decides what no rule matched, ``clock`` times
    greylisting. ``max_message_size`` is advertised as SIZE and enforced (RFC 1870; 0
    is SIZE 0, no fixed limit: messages of any size are taken);
    ``rcptmax`` (RCPT commands per transaction) and ``mailmax`` (transactions per
    connection) are advertised as LIMITS and enforced (RFC 9422: 452 4.5.3 past
    RCPTMAX, 451 4.5.3 past MAILMAX); ``None`` advertises none (RCPT then stops at
    ``DEFAULT_MAX_RECIPIENTS``, 1000).
    ``forbid_unauth_pipelining`` (on by default, like Postfix 3.9's
    ``smtpd_forbid_unauth_pipelining``) answers a command sent before the reply it had
    to wait for (RFC 2920 §3.1) with ``554 5.5.0`` and closes; off, such commands are
    served and only flagged on their events (docs/design.md §4 rule 10).
    ``reuse_port`` listens with ``SO_REUSEPORT``, so that several servers started
    separately share one port (``smtpproto serve --workers`` shares one listening
    socket instead: ``start(listen=False)`` and ``adopt``). ``keep_messages=False`` keeps no
    message in ``messages`` (a long-running server then does not grow with every
    message; ``maildir``, ``mbox`` and ``on_message`` still get each one), and
    ``wait_for_messages`` is refused.
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
        session_class: type[Session] = Session,
        rules: Iterable[Rule] = (),
        hook: Hook | None = None,
        clock: Callable[[], float] | None = None,
        forbid_unauth_pipelining: bool = True,
        rcptmax: int | None = None,
        mailmax: int | None = None,
        reuse_port: bool = False,
        keep_messages: bool = True,
    ) -> None:
        #: The reply policy's settings and the ``Session`` factory (``ValueError`` for an
        #: unknown mechanism).
        self.backend = Backend(
            hostname=hostname,
            users=users,
            mechanisms=mechanisms,
            allow_plaintext_auth=allow_plaintext_auth,
            require_auth=require_auth,
            deliver=self._store,
            session_class=session_class,
            rules=rules,
            hook=hook,
            clock=clock,
            rcptmax=rcptmax,
            mailmax=mailmax,
        )
        if (certfile is None) != (keyfile is None):
            raise ValueError("give both certfile and keyfile, or neither")
        for name, flag in (
            ("starttls", starttls),
            ("lmtp", lmtp),
            ("forbid_unauth_pipelining", forbid_unauth_pipelining),
            ("reuse_port", reuse_port),
            ("keep_messages", keep_messages),
        ):
            check_flag(name, flag)
        check_int("port", port, minimum=0, maximum=65535)
        if not isinstance(host, str):
            raise ValueError(f"host must be a str, got {host!r}")
        self.host = host
        self.port = port
        #: Listen with ``SO_REUSEPORT`` (several servers, one port: ``serve --workers``).
        self.reuse_port = reuse_port
        self.storage = MessageStore(maildir, mbox, keep=keep_messages)
        self.lmtp = lmtp
        self.transcript = transcript
        self.on_message = on_message
        self.config = ServerConfig(
            max_recipients=DEFAULT_MAX_RECIPIENTS if rcptmax is None else rcptmax,
            # 0 is advertised as SIZE 0: "no fixed maximum" (RFC 1870 §4), so no bound
            max_message_size=max_message_size or None,
            timeout=timeout,
            unauthorized_pipelining="reject" if forbid_unauth_pipelining else "flag",
        )
        self.messages: list[StoredMessage] = self.storage.messages
        self.tls_context: ssl.SSLContext | None = None
        self.cert_path: Path | None = None if certfile is None else Path(certfile)
        #: What made ``cert_path``: ``"given"``, ``"trustme"``, ``"cryptography"`` or
        #: ``"openssl"``; ``None`` while there is none.
        self.cert_tool: str | None = None if certfile is None else "given"
        self._starttls = starttls
        self._keyfile = None if keyfile is None else Path(keyfile)
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._server: asyncio.Server | None = None
        self._sessions: set[_Connection] = set()
        #: What every connection's transport reads into (``_Connection.get_buffer``).
        self._receive_buffer = memoryview(bytearray(RECEIVE_BUFFER))
        self._clock: Callable[[], float] = time.monotonic  # set by ``start``
        #: Times out idle connections from ``start`` to ``close`` (``idle.py``).
        self._sweeper: IdleSweeper | None = None
        #: Exceptions the policy raised (a ``hook``, a ``Session`` subclass); each ended
        #: its session with a 421.
        self.policy_errors: list[Exception] = []

    @property
    def open_connections(self) -> int:
        """How many connections this server serves now (accepted or adopted, not yet
        closed): ``smtpproto serve --workers`` compares its workers' loads with it."""
        return len(self._sessions)

    # -- settings kept by the backend and the storage -------------------------------------

    @property
    def rules(self) -> RuleSet:
        """The rules (``rules.py``) and their counters; ``rules.replace([...])`` changes
        them while the server runs."""
        return self.backend.rules

    @property
    def hostname(self) -> str:
        return self.backend.hostname

    @hostname.setter
    def hostname(self, value: str) -> None:
        self.backend.hostname = value

    @property
    def users(self) -> dict[str, str]:
        return self.backend.users

    @users.setter
    def users(self, value: dict[str, str]) -> None:
        self.backend.users = value

    @property
    def mechanisms(self) -> tuple[str, ...]:
        return self.backend.mechanisms

    @mechanisms.setter
    def mechanisms(self, value: tuple[str, ...]) -> None:
        self.backend.mechanisms = value

    @property
    def allow_plaintext_auth(self) -> bool:
        return self.backend.allow_plaintext_auth

    @allow_plaintext_auth.setter
    def allow_plaintext_auth(self, value: bool) -> None:
        self.backend.allow_plaintext_auth = value

    @property
    def require_auth(self) -> bool:
        return self.backend.require_auth

    @require_auth.setter
    def require_auth(self, value: bool) -> None:
        self.backend.require_auth = value

    @property
    def maildir(self) -> Path | None:
        return self.storage.maildir

    @maildir.setter
    def maildir(self, value: Path | None) -> None:
        self.storage.maildir = value

    @property
    def mbox(self) -> Path | None:
        return self.storage.mbox

    @mbox.setter
    def mbox(self, value: Path | None) -> None:
        self.storage.mbox = value

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
                made = make_certificate(Path(self._tempdir.name), self.hostname)
            except OSError as error:
                print(
                    f"smtpproto server: STARTTLS not offered: {escape_text(str(error))}",
                    file=sys.stderr,
                )
                self.cert_path = None
                return
            self.cert_path, self._keyfile, self.cert_tool = made.cert, made.key, made.tool
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert_path), str(self._keyfile))
        self.tls_context = context

    async def start(self, *, listen: bool = True) -> None:
        """Make the certificate if needed, then listen. Raises ``OSError`` if the address
        is in use (a certificate and an idle sweeper made here are removed again; those
        of an earlier ``start`` stay). ``listen=False`` opens no socket: the server then
        serves only what ``adopt`` hands it."""
        loop = asyncio.get_running_loop()
        sweeper, tempdir = self._sweeper, self._tempdir  # an earlier start's: kept
        try:
            await loop.run_in_executor(None, self._make_tls_context)
            if self.transcript is not None and self.cert_path is not None:
                self.transcript(f"* certificate made by {self.cert_tool}: {self.cert_path}")
            # The loop's clock (the idle timeout's time base); asyncio's own loops read
            # ``time.monotonic``, called directly then (a read per input, no frame).
            standard = type(loop).time is asyncio.BaseEventLoop.time
            self._clock = time.monotonic if standard else loop.time
            if self._sweeper is None or not self._sweeper.serves(loop):
                self._stop_sweeper()  # one on an earlier loop (ended, or not running)
                interval = interval_for(self.config.timeout)
                self._sweeper = IdleSweeper(loop, self._sweep_idle, interval)
                self._sweeper.start()
            if not listen:
                return
            self._server = await loop.create_server(
                lambda: _Connection(self),
                self.host,
                self.port,
                family=socket.AF_UNSPEC,
                reuse_port=self.reuse_port or None,
            )
        except BaseException:  # undo what this call made (not an earlier start's)
            if self._sweeper is not sweeper:
                self._stop_sweeper()
            if self._tempdir is not None and self._tempdir is not tempdir:
                self._tempdir.cleanup()
                self._tempdir = None
                self.cert_path = self._keyfile = None
            raise
        self.port = self._server.sockets[0].getsockname()[1]

    async def adopt(self, sock: socket.socket) -> None:
        """Serve a connection accepted elsewhere (``smtpproto serve --workers``: the
        supervisor accepts and hands each connection to a worker). ``start()`` first."""
        loop = asyncio.get_running_loop()
        await loop.connect_accepted_socket(lambda: _Connection(self), sock)

    async def serve_forever(self) -> None:
        """Serve until cancelled (Ctrl-C, SIGTERM); then call ``close()``.

        The listener already serves since ``start()``; this only waits. Cancelling it
        returns at once, whatever sessions are open: asyncio's own
        ``Server.serve_forever`` waits for every connection to end when cancelled
        (``wait_closed`` since Python 3.12.1), so an idle client would hold the server
        up until ``close()``, which is what ends the sessions, could run.
        """
        assert self._server is not None, "call start() first"
        await asyncio.get_running_loop().create_future()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop listening, close every session (with a 421, RFC 5321 §3.8), remove the
        temporary certificate.

        Sessions get ``_GRACEFUL_CLOSE`` seconds to close (a TLS session waits for the
        peer's close_notify); what is still open then is aborted. Either way this
        returns only after every connection's transport reported ``connection_lost``, so
        no socket outlives the server (Python 3.11's ``Server.wait_closed`` does not
        wait for connections).
        """
        if self._server is not None or self._sessions:  # listening, or adopted ones
            # A connection accepted just now reaches connection_made a loop iteration
            # later; closing the listener in between leaks its transport (asyncio on
            # 3.11 fails the attach to a closed server), so let pending accepts land.
            await asyncio.sleep(_ACCEPT_SETTLE)
            if self._server is not None:
                self._server.close()
            for session in list(self._sessions):
                session.shut_down()
            if not await self._sessions_gone(min(timeout, _GRACEFUL_CLOSE)):
                for session in list(self._sessions):
                    session._abort()
                await self._sessions_gone(timeout)
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):  # only waiters remain
                await asyncio.wait_for(self._server.wait_closed(), timeout)
            self._server = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None
        self._stop_sweeper()

    def _sweep_idle(self) -> None:
        """Time out every connection idle for the timeout (``IdleSweeper``, about every
        ``interval_for(timeout)`` seconds: at most 1 s, at most an eighth of it)."""
        now = self._clock()
        for session in list(self._sessions):
            session._check_idle(now)

    def _stop_sweeper(self) -> None:
        if self._sweeper is not None:
            self._sweeper.stop()
            self._sweeper = None

    async def _sessions_gone(self, timeout: float) -> bool:
        """Wait (bounded) until every session's transport was lost; True if they were."""
        deadline = time.monotonic() + timeout
        while self._sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return not self._sessions

    async def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[StoredMessage]:
        """Wait until ``count`` messages were stored; ``TimeoutError`` after ``timeout``
        (``ValueError`` when the server keeps no messages: ``keep_messages=False``)."""
        self.storage.require_kept()
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.messages)} of {count} messages after {timeout}s")
            await asyncio.sleep(0.01)
        return list(self.messages)

    # -- storage ------------------------------------------------------------------------

    def _store(self, message: StoredMessage) -> str:
        """The backend's ``deliver``: store, log, then tell ``on_message``."""
        queue_id = self.storage.store(message)
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
