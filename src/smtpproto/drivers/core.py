"""``DriverCore``: the plumbing every session driver runs on.

Theory of operation: one ``ClientConnection`` and the state the drivers keep about it
(broken or not, the transaction in flight, accepted recipients, reusable commands).
``_send`` writes commands, ``_event`` reads the next engine event (screening 421 and a
lost final reply; its reads after the first are ``Read(resume=True)``: one deadline
per reply awaited, RFC 5321 §4.5.3.2), ``_guard`` maps every failure to the exception
hierarchy and marks the session broken, ``raise_for`` turns a ``TransactionResult``
into the result or an exception. ``MailDrivers`` (``mail``), ``BatchDrivers``
(``batch``) and ``Session`` (``session``) build on it, each adding operations, none
re-declaring its state.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ..client_engine.events import (
    NEED_DATA,
    Bdat,
    Command,
    CommandReply,
    ConnectionClosed,
    DeliveryStatusUnknown,
    Event,
    Mail,
    NeedData,
    Rcpt,
    Rset,
    ServiceClosing,
    TransactionResult,
)
from ..client_engine.states import ClientState
from ..wire.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .exceptions import (
    SMTPBatchInterrupted,
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPDeliveryTimeoutError,
    SMTPError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPReplyError,
    SMTPTimeoutError,
)
from .support import Driver, MessageDeadlinePassed, Read, Write

if TYPE_CHECKING:
    from ..client_engine.config import ClientConfig
    from ..client_engine.connection import ClientConnection
    from ..wire.reply import Reply

__all__ = [
    "LAST_WORDS_TIMEOUT",
    "DriverCore",
    "caller_checked",
    "left_open",
    "raise_for",
    "reply_error",
]

T = TypeVar("T")
P = ParamSpec("P")

#: Seconds to wait for the server's last words after a failed write.
LAST_WORDS_TIMEOUT = 1.0
#: The exceptions after which a context manager's exit still says QUIT, when the
#: session can take it (``DriverCore.quit_on_exit``).
_QUIT_AFTER = (SMTPReplyError, SMTPRecipientsRefused, SMTPProtocolError, SMTPBatchInterrupted)


def caller_checked(operation: Callable[P, Driver[T]]) -> Callable[P, Driver[T]]:
    """Decorate a public operation so that a caller mistake it finds when called (a
    bad option, an argument a command's constructor refuses: ``vrfy("a\\r\\nb")``)
    raises ``SMTPProtocolError`` (``remote`` false), the type a mistake found while the
    driver runs (``_guard``) raises: one rule for every operation (docs/design.md §2,
    "Errors"). Nothing was sent and the session is as it was."""

    @functools.wraps(operation)
    def checked(*args: P.args, **kwargs: P.kwargs) -> Driver[T]:
        try:
            return operation(*args, **kwargs)
        except LocalProtocolError as error:
            raise SMTPProtocolError(error) from error

    return checked


class DriverCore:
    """One ``ClientConnection`` and what the drivers know about it (see the module
    docstring); ``Session`` makes the connection."""

    def __init__(self, config: ClientConfig, conn: ClientConnection) -> None:
        self.config = config
        self.conn = conn
        self._broken = False
        #: (sender, recipients) of the transaction in flight, for "status unknown"
        self._current: tuple[str, tuple[str, ...]] | None = None
        #: RCPTs of the transaction in flight answered 2yz; -1 once its MAIL was refused
        #: (RFC 5321 §3.3: then no recipient of it is accepted, whatever its RCPT got)
        self._rcpt_accepted = 0
        #: ``send_many``: a refused transaction may be open at the server (``left_open``)
        self._reset_pending = False
        #: ``send_many`` in progress: settles a ``TransactionResult`` found among the
        #: last words (``_last_words``) as the outcome of its message in flight
        self._settle_result: Callable[[TransactionResult], None] | None = None
        #: A split ``sendmail``'s deliveries before its follow-up in flight: set on
        #: the error should that follow-up fail (``SMTPError.partial_result``)
        self._partial: TransactionResult | None = None
        #: MAIL/RCPT commands kept for reuse by ``MailDrivers._command``
        self._commands: dict[tuple[Any, ...], Command] = {}
        #: (inputs, MAIL, RCPTs) of the last envelope ``_prepare`` made
        self._last_envelope: tuple[tuple[Any, ...], Mail, tuple[Rcpt, ...]] | None = None

    # -- state --------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """False once the session cannot carry another command: the adapter closes."""
        return not self._broken and self.conn.state not in (
            ClientState.ERROR,
            ClientState.CLOSED,
            ClientState.CLOSING,
            ClientState.MUST_QUIT,
            ClientState.TLS_HANDSHAKE,
        )

    @property
    def can_quit(self) -> bool:
        """True when a polite QUIT may still be sent (used by context-manager exits)."""
        return not self._broken and self.conn.state in (
            ClientState.HELLO,
            ClientState.READY,
            ClientState.MUST_QUIT,
        )

    def quit_on_exit(self, exc_type: type[BaseException] | None) -> bool:
        """Whether a context manager's exit should send QUIT before closing: when the
        session can still take it and the block ended normally, with a refused
        command (``SMTPReplyError``/``SMTPRecipientsRefused``), with an
        ``SMTPProtocolError`` that left the session usable (a message refused before
        MAIL, a caller mistake; one that broke it leaves ``can_quit`` false) or with
        ``SMTPBatchInterrupted``; after an exception the adapter suppresses
        ``SMTPError`` from that QUIT so it does not hide the first."""
        if not self.can_quit:
            return False
        return exc_type is None or issubclass(exc_type, _QUIT_AFTER)

    def mark_broken(self) -> None:
        """The adapter gave up on the transport (a cancellation, a failed close)."""
        self._broken = True

    # -- running a driver ---------------------------------------------------------------

    def _guard(self, driver: Driver[T]) -> Driver[T]:
        """Map failures to the exception hierarchy; mark the session broken on any
        exception except a reply error that left the session usable, and a refusal
        made before anything went out (``_refused_before_sending``). A driver may
        apply the same rule without this frame around it (``send_many``: it is
        resumed twice per message): ``_guard_start``, then ``_guard_failure``."""
        start = self._guard_start()
        try:
            return (yield from driver)
        except BaseException as error:
            try:
                yield from self._guard_failure(error, start)
            except SMTPError as failure:
                if self._partial is not None:  # never hide an earlier delivery
                    failure.partial_result = self._partial
                raise
            raise AssertionError("unreachable: _guard_failure raises") from error
        finally:
            self._current = None
            self._partial = None

    def _guard_start(self) -> ClientState:
        """The state an operation starts in (for ``_guard_failure``); refused when the
        session is broken."""
        if self._broken:
            raise SMTPProtocolError(LocalProtocolError("the connection is broken; open a new one"))
        return self.conn.state

    def _guard_failure(self, error: BaseException, start: ClientState) -> Driver[None]:
        """Raise what ``error``, escaping an operation begun in state ``start``, means
        (``_guard``'s rule); after a transport error, first read the server's last
        words. Always raises; never returns."""
        try:
            raise error
        except (SMTPReplyError, SMTPRecipientsRefused):
            if not self.usable:
                self._broken = True
            raise
        except SMTPError:
            self._broken = True
            raise
        except ProtocolError as error:
            if isinstance(error, LocalProtocolError) and self._refused_before_sending(start):
                raise SMTPProtocolError(error) from error  # the session stays usable
            self._broken = True
            if self.conn.final_reply_pending and self._current is not None:
                # Broken reply or EOF mid-reply after the end of the content: the server
                # may have taken the message (RFC 1047).
                sender, recipients = self._current
                raise SMTPDeliveryStatusUnknown(
                    f"the reply to the end of the content was lost: {error}",
                    sender=sender,
                    recipients=recipients,
                ) from error
            if self.conn.peer_closed and not isinstance(error, LocalProtocolError):
                # The server closed the connection with replies due (or mid-reply): the
                # connection was lost, as when a read fails (below) or a reply is
                # awaited (``_reply_to``); not a malformed reply.
                raise SMTPConnectError(f"connection lost: {error}") from error
            raise SMTPProtocolError(error) from error
        except TimeoutError as error:
            self._broken = True
            raise self._timeout_error(error) from error
        except OSError as error:
            self._broken = True
            current = self._current if self.conn.final_reply_pending else None
            last_words = yield from self._last_words()
            if last_words is not None:
                raise last_words from error
            if current is not None:
                sender, recipients = current
                raise SMTPDeliveryStatusUnknown(
                    f"connection lost: {error}", sender=sender, recipients=recipients
                ) from error
            raise SMTPConnectError(f"connection lost: {error}") from error
        except BaseException:  # cancellation, KeyboardInterrupt: never reuse
            self._broken = True
            raise

    def _refused_before_sending(self, start: ClientState) -> bool:
        """Whether a ``LocalProtocolError`` left the session as the operation found it
        (docs/design.md §2, "Errors"): the engine refused the command before any byte
        of it existed, or the driver refused the caller's input before sending
        anything, so the engine is out of ERROR, in the state the operation started
        in, with no reply due. Any other refusal (a pipelined group cut after its
        first command, content after the 354) breaks the session."""
        conn = self.conn
        return conn.state is start and start is not ClientState.ERROR and not conn.outstanding

    def _last_words(self) -> Driver[SMTPError | None]:
        """After a transport error, what the server said before it went away (a 421
        while we were still writing, RFC 5321 §3.8; a refusal of the content), read
        from what the adapter kept; None when it said nothing that settles the outcome
        (an accepted message included: then the status stays unknown)."""
        conn = self.conn
        # The verb that carried the content, to name a refusal of it (RFC 3030 §2).
        verb = "BDAT" if any(isinstance(sent, Bdat) for sent in conn.outstanding) else "DATA"
        try:
            data = yield Read(LAST_WORDS_TIMEOUT)
            if not data:  # EOF: nothing said (feeding it would only report the loss)
                return None
            conn.receive_data(data)
            while True:
                event = conn.next_event()
                if isinstance(event, ServiceClosing):
                    return SMTPReplyError(event.reply)
                if isinstance(event, TransactionResult):
                    if self._settle_result is not None:  # a batch: that message's outcome
                        self._settle_result(event)
                    else:
                        raise_for(event, verb)
                if event is NEED_DATA or isinstance(event, ConnectionClosed):
                    return None
        except ProtocolError as error:  # e.g. an early 552 during the content
            return SMTPProtocolError(error)
        except (SMTPReplyError, SMTPRecipientsRefused) as refused:
            return refused
        except (OSError, SMTPError):
            return None

    def _timeout_error(self, error: TimeoutError) -> SMTPTimeoutError:
        """The ``SMTPTimeoutError`` for a wait that timed out; its message and
        ``timeout`` name the limit that fired: the message deadline when the adapter
        says so (``MessageDeadlinePassed``), else the engine's timeout for the step."""
        conn = self.conn
        if isinstance(error, MessageDeadlinePassed):
            timeout: float | None = error.seconds
            limit = f" (message_timeout of {timeout:g} s passed)"
        else:
            timeout = conn.timeout
            limit = "" if timeout is None else f" ({timeout:g} s)"
        if conn.final_reply_pending and self._current is not None:
            sender, recipients = self._current
            return SMTPDeliveryTimeoutError(
                "timed out waiting for the reply to the end of the content" + limit,
                timeout=timeout,
                sender=sender,
                recipients=recipients,
            )
        outstanding = conn.outstanding
        if conn.state is ClientState.GREETING:
            what = "greeting"
        elif outstanding:
            what = f"{type(outstanding[0]).__name__.upper()} reply"
        else:
            what = "the server"
        return SMTPTimeoutError(
            f"timed out waiting for {what}{limit}", waiting_for=what, timeout=timeout
        )

    # -- engine plumbing ----------------------------------------------------------------

    def _send(self, *commands: Command) -> Driver[None]:
        """Serialise ``commands`` and write them in one write."""
        conn = self.conn
        wire = b"".join([conn.send(command) for command in commands])
        yield Write(wire, self._write_timeout())

    def _write_timeout(self) -> float | None:
        timeout = self.conn.timeout
        return timeout if timeout is not None else self.config.timeouts.data_block

    def _event(self) -> Driver[Event]:
        """The next engine event, reading as needed. A 421 raises ``SMTPReplyError``."""
        conn = self.conn
        resume = False  # the first read of a wait starts its deadline; the rest go on
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                data = yield Read(conn.timeout, resume)
                if not isinstance(data, bytes):
                    raise TypeError(f"the adapter answered Read with {type(data).__name__}")
                conn.receive_data(data)
                resume = True
                continue
            self._screen(event)
            return event

    def _screen(self, event: Event | NeedData) -> None:
        """What every event read by a driver goes through: count accepted RCPTs (none
        after a refused MAIL, though a pipelined RCPT may still get 250); a refused
        RSET breaks the session (RFC 5321 §4.1.1.5: its state is unknown); a 421 raises
        ``SMTPReplyError``, a lost final reply ``SMTPDeliveryStatusUnknown`` (RFC
        1047)."""
        assert isinstance(event, Event)
        if type(event) is CommandReply:  # event classes are never subclassed
            command = event.command
            if type(command) is Rcpt:
                if event.reply.is_success and self._rcpt_accepted >= 0:
                    self._rcpt_accepted += 1
            elif type(command) is Mail and not event.reply.is_success:
                self._rcpt_accepted = -1
            elif type(command) is Rset and not event.reply.is_success:
                # RFC 5321 §4.1.1.5: RSET "MUST" get 250. Anything else leaves the
                # server's state unknown: no other transaction on this session.
                self._broken = True
        elif type(event) is ServiceClosing:
            raise SMTPReplyError(event.reply)
        elif type(event) is DeliveryStatusUnknown:
            raise SMTPDeliveryStatusUnknown(
                event.reason, sender=event.sender, recipients=event.recipients
            )

    def _reply_to(self, command: Command, verb: str) -> Driver[Reply]:
        """Wait for the ``CommandReply`` to ``command``; raise on any other than 2yz
        (``reply_error``: a 3yz asks for more than these one-step commands ever send)."""
        while True:
            event = yield from self._event()
            if isinstance(event, CommandReply) and event.command is command:
                if not event.reply.is_success:
                    raise reply_error(event.reply, verb)
                return event.reply
            if isinstance(event, ConnectionClosed):
                raise SMTPConnectError(f"the server closed the connection before {verb}'s reply")


def reply_error(reply: Reply, verb: str | None) -> SMTPReplyError | RemoteProtocolError:
    """The exception for ``reply`` where the success of ``verb`` (None: the greeting)
    was due: ``SMTPReplyError`` for a 4yz or 5yz refusal; any other reply (a 3yz, or
    a 2yz that is not the step's success: a 250 to AUTH, a 251 to EHLO; RFC 5321
    §4.2.1, §4.3.2) is no refusal but a server out of step, a ``RemoteProtocolError``
    (as in ``raise_for``), after which the session is not reused."""
    if reply.is_error:
        return SMTPReplyError(reply, command=verb)
    return RemoteProtocolError(f"unexpected {reply.code} reply to {verb or 'the greeting'}")


def raise_for(result: TransactionResult, verb: str) -> None:
    """Raise for a transaction that delivered to nobody; return on (partial) success.

    A 421 anywhere (RFC 5321 §3.8: the server is closing) raises ``SMTPReplyError``
    with that reply, whatever step it answered, and a 1yz/3yz reply (RFC 5321 §4.3.2)
    ``SMTPProtocolError`` -- unless the message was delivered to someone anyway (an
    LMTP reply of 250 before a 421, RFC 2033 §4.2; a RCPT answered 354): the result
    is returned, the recipient that reply answered in ``failed`` with it. An error
    over a delivery would read as "not sent", and a retry would send it twice.
    """
    sender, data = result.sender_reply, result.data_reply
    if (
        data is not None
        and data.code // 100 == 2  # RFC 5321 §4.2.1: 2yz, as ``Reply.is_success``
        and sender is not None
        and sender.code // 100 == 2
        and not result.lmtp_replies
    ):
        for _, rcpt_reply in result.recipients:
            if rcpt_reply.code // 100 != 2:
                break
        else:
            return  # the common case: everything accepted
    steps = [("MAIL", result.sender_reply)]
    steps += [("RCPT", reply) for _, reply in result.recipients]
    steps += [(verb, result.data_reply)]
    steps += [(verb, reply) for _, reply in result.lmtp_replies]
    if not result.delivered:
        for step, reply in steps:
            if reply is not None and reply.code == 421:
                address = result.sender if step == "MAIL" else None
                raise SMTPReplyError(reply, command=step, sender=address)
        for step, reply in steps:
            if reply is not None and not (reply.is_success or reply.is_error):
                error = RemoteProtocolError(f"unexpected {reply.code} reply to {step}")
                raise SMTPProtocolError(error)
    if result.sender_reply is not None and result.sender_reply.is_error:
        raise SMTPReplyError(result.sender_reply, command="MAIL", sender=result.sender)
    if result.recipients and all(reply.is_error for _, reply in result.recipients):
        raise SMTPRecipientsRefused(result.recipients)
    if result.lmtp_replies:
        if not result.delivered:
            raise SMTPRecipientsRefused(result.failed)
        return
    if result.data_reply is not None and result.data_reply.is_error:
        raise SMTPReplyError(result.data_reply, command=verb)


def left_open(result: TransactionResult, *, content_ended: bool) -> bool:
    """Whether a refused transaction may still be open at the server, to be ended with
    RSET (RFC 5321 §4.1.1.5) before the next MAIL: MAIL was accepted, and either no
    content was sent (DATA refused, RFC 5321 §3.3 does not end the transaction) or
    its end reached a transaction with no recipient (a pipelined BDAT LAST whose
    RCPTs were all refused, RFC 3030 §2). Without it the next MAIL is refused as
    nested (503), and its pipelined RCPTs could join the old transaction."""
    sender = result.sender_reply
    if sender is None or not sender.is_success or result.data_reply is None:
        return False
    accepted = any(reply.is_success for _, reply in result.recipients)
    return not (content_ended and accepted)
