"""The exceptions the blocking, asyncio and trio adapters raise.

The engine reports everything as events and raises only ``ProtocolError`` (see
``wire.errors``). The adapters turn I/O failures, timeouts, engine errors and error replies
into this small hierarchy, so a caller catches one family whatever the I/O library::

    SMTPError
    ├── SMTPConnectError          could not open the connection (cause: the OSError)
    ├── SMTPTLSError              TLS handshake or certificate verification failed
    ├── SMTPTimeoutError          a per-state or overall deadline passed
    │   └── SMTPDeliveryTimeoutError   ... while waiting for the reply to the content
    ├── SMTPProtocolError         the engine raised ProtocolError (wrapped, not copied)
    ├── SMTPReplyError            the server answered 4yz/5yz; carries the Reply
    ├── SMTPRecipientsRefused     no recipient accepted; carries every (address, Reply)
    ├── SMTPDeliveryStatusUnknown the content was sent, its reply never came
    │   └── SMTPDeliveryTimeoutError
    └── SMTPBatchInterrupted      send_many's iterable raised; carries the outcomes so far

Text from the server is escaped before it reaches a message (docs/design.md §4 rule 12) and
no message includes a command's arguments beyond addresses, so AUTH secrets never appear
(rule 11). This module does no I/O and imports nothing outside the engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..wire.errors import LocalProtocolError, ProtocolError
from ..wire.reply import EnhancedStatusCode, Reply
from ..wire.text import escape_text

if TYPE_CHECKING:
    from ..client_engine.events import TransactionResult

__all__ = [
    "SMTPBatchInterrupted",
    "SMTPConnectError",
    "SMTPDeliveryStatusUnknown",
    "SMTPDeliveryTimeoutError",
    "SMTPError",
    "SMTPProtocolError",
    "SMTPRecipientsRefused",
    "SMTPReplyError",
    "SMTPTLSError",
    "SMTPTimeoutError",
]

#: How many refused recipients ``SMTPRecipientsRefused``'s message lists by name; the
#: ``results`` attribute always holds all of them.
_LISTED_RECIPIENTS = 5


class SMTPError(Exception):
    """Base class of every exception an adapter raises on purpose.

    After any ``SMTPError`` other than ``SMTPReplyError``, ``SMTPRecipientsRefused``,
    ``SMTPBatchInterrupted`` and a caller's ``SMTPProtocolError`` (``remote`` false:
    refused before anything was sent) the connection is closed and must not be reused
    (after those, ``session.usable`` says whether it is).

    ``partial_result`` is None, except when ``sendmail``/``send_message`` split a
    message over several transactions (the server's recipient limit, RFC 5321
    §4.5.3.1.10, RFC 9422 §4.2) and a follow-up failed: then it is the
    ``TransactionResult`` of the transactions before it, whose ``delivered``
    recipients got the message (do not send it to them again). It lists only the
    recipients those transactions settled; the failed follow-up's and those not sent
    yet are not in it (this exception is about them).
    """

    partial_result: TransactionResult | None = None

    def _state(self) -> dict[str, Any] | None:
        """What pickling keeps beyond the constructor's arguments."""
        if self.partial_result is None:
            return None
        return {"partial_result": self.partial_result}


class SMTPConnectError(SMTPError):
    """The TCP (or unix socket) connection could not be opened, or it was lost before
    the content's end: a read or write failed, or the server closed it with replies
    still due (the greeting's, EHLO's, ... — after the content's end it is
    ``SMTPDeliveryStatusUnknown``).

    ``host`` and ``port`` say what was tried (``None`` when not applicable); the
    ``OSError`` is the ``__cause__``.
    """

    def __init__(self, message: str, *, host: str | None = None, port: int | None = None) -> None:
        super().__init__(escape_text(message))
        self.host = host
        self.port = port

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (type(self), (str(self),), {"host": self.host, "port": self.port}),
            self._state(),
        )


class SMTPTLSError(SMTPError):
    """The TLS handshake failed, or the certificate or host name did not verify.

    The ``ssl.SSLError`` (or ``SSLCertVerificationError``) is the ``__cause__``. A server
    that refuses STARTTLS under a *required* policy is reported by the engine
    (``TLSUnavailable``); adapters raise this class for it too.
    """


class SMTPTimeoutError(SMTPError):
    """A deadline passed while waiting for the server (RFC 5321 §4.5.3.2 timeouts).

    ``waiting_for`` names what was awaited (``"greeting"``, ``"RCPT reply"``, ...) and
    ``timeout`` the limit in seconds. ``delivery_status_unknown`` is true only for
    ``SMTPDeliveryTimeoutError``: the content was sent and its reply never came, so the
    message may have been delivered.
    """

    delivery_status_unknown: bool = False

    def __init__(
        self, message: str, *, waiting_for: str | None = None, timeout: float | None = None
    ) -> None:
        super().__init__(escape_text(message))
        self.waiting_for = waiting_for
        self.timeout = timeout

    def __reduce__(self) -> tuple[Any, ...]:
        state = {"waiting_for": self.waiting_for, "timeout": self.timeout}
        return (_rebuild, (type(self), (str(self),), state), self._state())


class SMTPProtocolError(SMTPError):
    """The engine raised ``ProtocolError``; ``error`` is that exception (also the cause).

    ``remote`` tells who broke the protocol: true for ``RemoteProtocolError`` (the
    server), false for ``LocalProtocolError`` (the caller asked for something not allowed
    or not offered).

    Caller mistakes, one rule: every mistake an adapter (``SMTPClient``,
    ``AsyncSMTPClient``, ``TrioSMTPClient``, their pools and ``smtpproto.send``) detects
    — a bad constructor option, no or two connection targets, an operation before
    ``connect()`` or a second ``connect()``, a bad argument to a method — raises this
    class with ``remote`` false, before anything is sent for that call.
    """

    def __init__(self, error: ProtocolError) -> None:
        if not isinstance(error, ProtocolError):
            raise TypeError(f"SMTPProtocolError wraps a ProtocolError, got {type(error).__name__}")
        super().__init__(escape_text(str(error)))
        self.error = error
        self.__cause__ = error

    @property
    def remote(self) -> bool:
        """True when the server broke the protocol, false for caller misuse."""
        return not isinstance(self.error, LocalProtocolError)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.error,), self._state())


def _verb(command: str | None) -> str | None:
    """The command's verb only (``"RCPT"`` from ``"RCPT TO:<a@b>"``), upper-cased.

    Arguments are dropped so that an AUTH initial response can never reach a message.
    """
    if command is None:
        return None
    if not isinstance(command, str):
        raise TypeError(f"command must be a str or None, got {type(command).__name__}")
    words = command.split(None, 1)
    if not words or not words[0].isascii() or not words[0].isalpha():
        raise ValueError(f"command must start with an SMTP verb, got {escape_text(command)!r}")
    return words[0].upper()


class SMTPReplyError(SMTPError):
    """The server answered a command with a 4yz or 5yz reply.

    ``reply`` is the ``Reply``; ``command`` the verb it answered (``"MAIL"``, ``"DATA"``,
    ...; only the verb is kept, never arguments). ``sender`` is the envelope sender when
    the refused command was MAIL and the driver knew it (a transaction's result), else
    None; the smtplib twin's ``SMTPSenderRefused.sender`` falls back to it. The
    connection stays usable unless the reply was 421 (RFC 5321 §3.8), which adapters
    report as closing.
    """

    def __init__(
        self, reply: Reply, *, command: str | None = None, sender: str | None = None
    ) -> None:
        if not isinstance(reply, Reply):
            raise TypeError(f"reply must be a Reply, got {type(reply).__name__}")
        if sender is not None and not isinstance(sender, str):
            raise TypeError(f"sender must be a str or None, got {type(sender).__name__}")
        verb = _verb(command)
        prefix = f"{verb} refused: " if verb else "server refused: "
        super().__init__(prefix + str(reply))
        self.reply = reply
        self.command = verb
        self.sender = sender

    @property
    def code(self) -> int:
        """The three-digit reply code."""
        return self.reply.code

    @property
    def enhanced(self) -> EnhancedStatusCode | None:
        """The RFC 3463 enhanced status code, if the reply carried one."""
        return self.reply.enhanced

    @property
    def is_transient(self) -> bool:
        """4yz: the same command may succeed later (RFC 5321 §4.2.1)."""
        return self.reply.is_transient

    def explain(self) -> str:
        """What the reply means and what to do, for this command (see ``Reply.explain``)."""
        return self.reply.explain(self.command)

    def __reduce__(self) -> tuple[Any, ...]:
        keywords = {"command": self.command, "sender": self.sender}
        return (_rebuild, (type(self), (self.reply,), keywords), self._state())


class SMTPRecipientsRefused(SMTPError):
    """No recipient was accepted, so no content was sent (RFC 5321 §3.3).

    ``results`` holds every recipient with the reply to its RCPT, in the order sent;
    ``refused`` maps the refused ones to their replies. Addresses are escaped in the
    message, which names the first five refusals and counts the rest.
    """

    def __init__(self, results: Iterable[tuple[str, Reply]] | Mapping[str, Reply]) -> None:
        items = tuple(results.items() if isinstance(results, Mapping) else results)
        if not items:
            raise ValueError("SMTPRecipientsRefused needs at least one recipient result")
        for item in items:
            if (
                not isinstance(item, tuple)
                or len(item) != 2
                or not isinstance(item[0], str)
                or not isinstance(item[1], Reply)
            ):
                raise TypeError(f"each result is an (address, Reply) pair, got {item!r}")
        self.results: tuple[tuple[str, Reply], ...] = items
        refused = [(address, reply) for address, reply in items if reply.is_error]
        listed = "; ".join(
            f"<{escape_text(address)}>: {str(reply).replace(chr(10), ' / ')}"
            for address, reply in refused[:_LISTED_RECIPIENTS]
        )
        more = len(refused) - _LISTED_RECIPIENTS
        if more > 0:
            listed += f"; and {more} more"
        super().__init__(f"{len(refused)} of {len(items)} recipient(s) refused: {listed}")

    @property
    def refused(self) -> dict[str, Reply]:
        """The refused recipients and their 4yz/5yz replies."""
        return {address: reply for address, reply in self.results if reply.is_error}

    @property
    def accepted(self) -> tuple[str, ...]:
        """The recipients the server accepted (empty when every one was refused)."""
        return tuple(address for address, reply in self.results if not reply.is_error)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.results,), self._state())


class SMTPDeliveryStatusUnknown(SMTPError):
    """The content was sent but its final reply never arrived (connection lost).

    The server may have taken responsibility for the message before the connection
    broke (RFC 5321 §4.1.1.4 and §6.1; RFC 1047 on duplicates), so resending may deliver
    it twice. ``sender`` and ``recipients`` identify the transaction; ``reason`` says
    what happened.
    """

    def __init__(
        self, reason: str, *, sender: str | None = None, recipients: Iterable[str] = ()
    ) -> None:
        super().__init__(
            "delivery status unknown (the message may have been delivered): " + escape_text(reason)
        )
        self.reason = reason
        self.sender = sender
        self.recipients = tuple(recipients)

    def __reduce__(self) -> tuple[Any, ...]:
        state = {"sender": self.sender, "recipients": self.recipients}
        return (_rebuild, (type(self), (self.reason,), state), self._state())


class SMTPDeliveryTimeoutError(SMTPTimeoutError, SMTPDeliveryStatusUnknown):
    """Timed out waiting for the reply to the end of content (RFC 5321 §4.5.3.2.6).

    Caught by ``except SMTPTimeoutError`` and by ``except SMTPDeliveryStatusUnknown``;
    ``delivery_status_unknown`` is true. docs/design.md §4 rule 8.
    """

    delivery_status_unknown = True

    def __init__(
        self,
        reason: str,
        *,
        timeout: float | None = None,
        sender: str | None = None,
        recipients: Iterable[str] = (),
    ) -> None:
        SMTPDeliveryStatusUnknown.__init__(self, reason, sender=sender, recipients=recipients)
        self.waiting_for = "reply to the end of content"
        self.timeout = timeout

    def __reduce__(self) -> tuple[Any, ...]:
        state = {"timeout": self.timeout, "sender": self.sender, "recipients": self.recipients}
        return (_rebuild, (type(self), (self.reason,), state), self._state())


class SMTPBatchInterrupted(SMTPError):
    """``send_many``'s iterable of messages raised ``error`` (also the ``__cause__``):
    the batch stopped taking messages there, but every message taken before it was
    finished first -- its content ended, its final reply read -- so ``outcomes`` holds
    what ``send_many`` would have returned for them (one ``TransactionResult`` or
    ``SMTPError`` per message, in order; empty with ``on_outcome``, which received each
    of them before this was raised). The session is then usable unless it ended during
    the batch (``session.usable``). ``KeyboardInterrupt``, cancellation and other
    ``BaseException`` from the iterable are not caught: they propagate as themselves
    and the connection is closed.
    """

    def __init__(
        self, error: Exception, outcomes: Iterable[TransactionResult | SMTPError] = ()
    ) -> None:
        self.error = error
        self.outcomes: list[TransactionResult | SMTPError] = list(outcomes)
        super().__init__(
            escape_text(
                f"the messages iterable raised {type(error).__name__}: {error}; every "
                "message taken before it was finished and has its outcome (in .outcomes, "
                "or given to on_outcome)"
            )
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.error, self.outcomes), {}), self._state())


def _rebuild(cls: type[SMTPError], args: tuple[Any, ...], kwargs: dict[str, Any]) -> SMTPError:
    """Unpickle an exception whose constructor takes keyword-only arguments."""
    return cls(*args, **kwargs)
