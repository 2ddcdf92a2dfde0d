"""The mail-transaction drivers of ``Session`` (``sendmail``, ``send_message``).

Theory of operation: built on ``DriverCore``'s plumbing (``core``: ``_send`` writes
commands, ``_event`` reads the next engine event). The caller's input is checked before
MAIL (``mail_checks``), each message becomes its MAIL and RCPT commands and content
chunks (``mail_prepare``), and is sent in one transaction (``mail_steps``: the envelope,
DATA or BDAT, RSET, the result) or, when the server takes fewer recipients per
transaction than it has (LIMITS RCPTMAX, RFC 9422 §4.2; 452 4.5.3), in several
(``_sendmail``, ``drivers.split``). ``send_message`` takes the envelope from the
message's headers (``envelope``) and re-encodes 8-bit parts for a server without
8BITMIME (``downgrade``).

Stopping early (``stop_after``, for diagnostics like swaks' ``--quit-after``): after
MAIL or after the RCPTs the transaction is ended with RSET (RFC 5321 §4.1.1.5) and the
session stays usable; with ``drop=True`` nothing more is sent (no RSET, no QUIT) and
the session becomes unusable, so the adapter closes the connection with the
transaction open (swaks' ``--drop-after``; RFC 5321 §3.8: the server discards it).
After DATA's 354 nothing but content may be sent until the final ``CRLF.CRLF`` (RFC 5321
§4.1.1.4; a ``.`` alone would deliver an empty message), so the driver stops there and
the session becomes unusable: the adapter closes the connection, and a transaction whose
end of data never came is not delivered (RFC 5321 §3.8, §4.1.1.4).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..wire.errors import LocalProtocolError
from ..wire.fields import check_flag
from ..wire.rawdata import RawDataGuard
from .core import caller_checked, raise_for
from .downgrade import seven_bit_copy
from .envelope import Envelope, envelope_from_message, flatten_message
from .exceptions import SMTPRecipientsRefused, SMTPReplyError
from .mail_checks import (
    MAIL_STAGES,
    MailStage,
    check_binarymime,
    check_content,
    check_options,
    check_progress,
    check_transfer_flags,
    whole,
)
from .mail_prepare import COMMAND_CACHE, MessagePreparer
from .mail_steps import TransactionSteps
from .split import SplitResults, groups_of, replayer, transactions_needed
from .support import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAIL_OPTIONS,
    ContentSource,
    Driver,
    MailOptions,
    ProgressCallback,
    all_ascii,
    content_chunks,
)

if TYPE_CHECKING:
    from email.message import Message

    from ..client_engine.events import TransactionResult
    from ..wire.reply import Reply

__all__ = [
    "COMMAND_CACHE",
    "MAIL_STAGES",
    "MailDrivers",
    "MailStage",
    "check_binarymime",
    "check_content",
    "check_options",
    "check_transfer_flags",
    "raise_for",
]


class MailDrivers(MessagePreparer, TransactionSteps):
    """``sendmail`` and ``send_message`` over ``DriverCore``'s plumbing: each message
    prepared (``mail_prepare``), then sent in one transaction or, split over the
    server's recipient limit, several (``mail_steps``)."""

    @caller_checked
    def sendmail(
        self,
        sender: str,
        recipients: str | Iterable[str],
        content: ContentSource,
        *,
        options: MailOptions | None = None,
        pipelining: bool | None = None,
        chunking: bool | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        progress: ProgressCallback | None = None,
        stop_after: MailStage | None = None,
        drop: bool = False,
        raw: bool = False,
    ) -> Driver[TransactionResult]:
        """One mail transaction: MAIL, RCPT for each recipient, then DATA or BDAT.

        ``content`` is bytes, str (UTF-8), a binary file or an iterable of bytes,
        streamed ``chunk_size`` octets at a time. PIPELINING (RFC 2920) and CHUNKING
        (RFC 3030, BDAT) are used when advertised unless ``pipelining``/``chunking`` is
        False. Defaults chosen from the content and addresses: ``smtputf8`` when an
        address is non-ASCII (RFC 6531); ``body="8BITMIME"`` when 8BITMIME is offered
        and the content is 8-bit (or unknown: an iterable or a file that cannot seek;
        RFC 6152); ``size`` when SIZE is offered and the length is known (RFC 1870):
        content held whole and a seekable file are counted as sent, with CRLF line ends
        and a final CRLF (§3); an iterable or a file that cannot seek has no SIZE=
        (its length is unknown). ``progress(sent, total)`` is called after each content
        write (``total`` None when unknown).

        Content held whole (bytes, bytearray, memoryview, str) that the DATA encoder
        would refuse after the 354 -- a NUL, a line over 998 octets before its CRLF
        (RFC 5321 §4.5.2, §4.5.3.1.6), 8-bit octets without ``BODY=8BITMIME`` (RFC
        6152); BDAT content too unless ``BODY=BINARYMIME`` (RFC 3030 §3) -- raises that
        encoder's ``LocalProtocolError`` before MAIL (``check_content``): nothing is
        sent and the session stays usable. So does a seekable binary file, read once
        before MAIL in ``chunk_size`` pieces and sought back (``prescan``): if it
        changes before it is sent, the end of the content is not sent (nothing is
        delivered) and ``LocalProtocolError`` says so. An iterable or a file that
        cannot seek is read as it is sent: a refusal after the 354 breaks the session
        (the end of data is never sent, so nothing truncated is delivered) and the
        adapter closes the connection; with BDAT the refused chunk is never sent and
        RSET ends the transaction, the session staying usable (``_stream_refused``).

        Returns the ``TransactionResult``. Raises ``SMTPReplyError`` when MAIL, DATA or
        the end of the content is refused, ``SMTPRecipientsRefused`` when every
        recipient was refused; a partial refusal returns normally (check ``failed``).

        More recipients than the server takes per transaction -- its ``LIMITS
        RCPTMAX`` (RFC 9422 §4.2), or a ``452 4.5.3`` to a RCPT (RFC 5321
        §4.5.3.1.10) -- are sent in follow-up transactions, combined into the one
        result (``drivers.split``; docs/guide/results.md); a follow-up that fails
        (a lost connection, a timeout) raises with the earlier transactions' result in
        the error's ``partial_result``, so their deliveries are not hidden;
        ``MailOptions(split_recipients=False)`` sends one transaction only. No MAIL is
        sent past the server's ``LIMITS MAILMAX`` transactions per session (RFC 9422
        §4.1; ``ClientConnection.mail_budget``): a message that needs more than are
        left is refused with ``LocalProtocolError`` before MAIL, the session usable.

        ``stop_after`` ends the transaction early, delivering nothing (the content is
        never sent; refusals raise as above): ``"mail"`` after MAIL's reply,
        ``"rcpt"`` after the RCPT replies (pipelined together when offered), each
        followed by RSET, the session staying usable; the result then has
        ``data_reply`` None. ``"data"`` stops after DATA's 354 (DATA, not BDAT, is
        used: ``chunking=True`` with it is a ``LocalProtocolError``): the result's
        ``data_reply`` is that 354 and the session is no longer usable, since only
        content may follow a 354; the adapter closes the connection without QUIT.
        ``drop=True`` (with ``stop_after``) sends nothing after the stage's replies,
        not even RSET: the session becomes unusable and the adapter closes the
        connection with the transaction open, whatever the replies were (a refusal
        still raises); the server discards the transaction (RFC 5321 §3.8).

        ``raw=True`` sends ``content`` as DATA content exactly as given, for testing
        servers and filters: no line-end normalisation, no dot-stuffing, any octet
        (bare CR/LF, NUL, lines such as ``\\n.\\n``; 8-bit octets still need
        ``BODY=8BITMIME``, RFC 6152). It never ends the DATA early: content holding the
        end of data (a line ``.``, CRLF . CRLF) is refused with ``LocalProtocolError``
        before MAIL, so nothing is half-sent, and the client writes the end of data
        (``wire.rawdata``). DATA is used, never BDAT (``chunking=True`` is refused);
        the content must be readable twice (bytes, str or a seekable binary file): it
        is checked whole first.
        """
        check_transfer_flags(pipelining, chunking)
        if stop_after is not None and stop_after not in MAIL_STAGES:
            raise LocalProtocolError(
                f"stop_after must be one of {', '.join(MAIL_STAGES)} or None, got {stop_after!r}"
            )
        if stop_after == "data" and chunking:
            raise LocalProtocolError("stop_after='data' stops at DATA's 354: not with chunking")
        check_flag("drop", drop, error=LocalProtocolError)
        if drop and stop_after is None:
            raise LocalProtocolError("drop=True needs stop_after ('mail', 'rcpt' or 'data')")
        check_flag("raw", raw, error=LocalProtocolError)
        if raw and chunking:
            raise LocalProtocolError(
                "raw=True sends DATA content (RFC 5321 §4.1.1.4): not with chunking"
            )
        check_progress(progress)
        return self._guard(
            self._sendmail(
                sender,
                recipients,
                content,
                options or DEFAULT_MAIL_OPTIONS,
                pipelining,
                False if stop_after == "data" or raw else chunking,
                chunk_size,
                progress,
                stop_after,
                drop,
                raw,
            )
        )

    @caller_checked
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
    ) -> Driver[TransactionResult]:
        """Send an ``email.message`` message; the envelope comes from its headers like
        smtplib's ``send_message`` (see ``drivers.envelope``): Sender/From, To/Cc/Bcc, the most
        recent Resent-* block; Bcc and Resent-Bcc are not sent. A non-ASCII address
        selects SMTPUTF8 and a UTF-8 serialisation (RFC 6531, RFC 6532); 8-bit content
        selects BODY=8BITMIME; to a server without 8BITMIME the 8-bit parts are re-encoded
        first (quoted-printable for text, base64 otherwise; RFC 2047 headers; see
        ``drivers.downgrade``) unless ``options.body`` is given. Results and exceptions
        as ``sendmail``."""
        check_transfer_flags(pipelining, chunking)
        check_progress(progress)
        return self._guard(
            self._send_message(
                msg,
                sender,
                recipients,
                options or DEFAULT_MAIL_OPTIONS,
                pipelining,
                chunking,
                progress,
            )
        )

    def _send_message(
        self,
        msg: Message,
        sender: str | None,
        recipients: str | Iterable[str] | None,
        options: MailOptions,
        pipelining: bool | None,
        chunking: bool | None,
        progress: ProgressCallback | None,
    ) -> Driver[TransactionResult]:
        envelope, options, content = self._message_transaction(msg, sender, recipients, options)
        return (
            yield from self._sendmail(
                envelope.sender,
                envelope.recipients,
                content,
                options,
                pipelining,
                chunking,
                DEFAULT_CHUNK_SIZE,
                progress,
            )
        )

    def _message_transaction(
        self,
        msg: Message,
        sender: str | None,
        recipients: str | Iterable[str] | None,
        options: MailOptions,
    ) -> tuple[Envelope, MailOptions, bytes]:
        """The envelope, options and content of an ``email.message`` message, for
        ``send_message`` and ``send_many`` alike: SMTPUTF8 and a UTF-8 serialisation for
        a non-ASCII address (RFC 6531, RFC 6532); without 8BITMIME, the 8-bit parts
        re-encoded (RFC 6152 §3, ``downgrade``) unless ``options.body`` is given."""
        envelope = envelope_from_message(msg, sender=sender, recipients=recipients)
        check_options(options)
        if envelope.international and options.smtputf8 is None:
            options = dataclasses.replace(options, smtputf8=True)
        content = flatten_message(msg, utf8=envelope.international)
        if (
            not envelope.international
            and options.body is None
            and not self._offers_8bit()
            and not all_ascii(content)
        ):
            # RFC 6152 §3: no 8BITMIME, so re-encode the 8-bit parts (``downgrade``).
            content = flatten_message(seven_bit_copy(msg))
        return envelope, options, content

    def _sendmail(
        self,
        sender: str,
        recipients: str | Iterable[str],
        content: ContentSource,
        options: MailOptions,
        pipelining: bool | None,
        chunking: bool | None,
        chunk_size: int,
        progress: ProgressCallback | None,
        stop_after: MailStage | None = None,
        drop: bool = False,
        raw: bool = False,
    ) -> Driver[TransactionResult]:
        """One message in as many transactions as the server's recipient limit needs
        (``drivers.split``: LIMITS RCPTMAX, RFC 9422 §4.2; 452 4.5.3, RFC 5321
        §4.5.3.1.10), unless ``options.split_recipients`` is False or ``stop_after``
        is given. Each follow-up carries the recipients the previous one deferred (and,
        under RCPTMAX, the next group); one that delivers to nobody ends the split, so
        there are at most as many transactions as recipients."""
        args = (pipelining, chunking, chunk_size, progress)
        if raw:
            caps = self.conn.capabilities
            body = options.body if isinstance(options, MailOptions) else None
            offered = caps is not None and caps.eightbitmime
            content = _checked_raw(
                content, chunk_size, body in ("8BITMIME", "BINARYMIME") or (not body and offered)
            )
        if (
            stop_after is not None
            or isinstance(recipients, str)
            or not isinstance(options, MailOptions)
            or not options.split_recipients
        ):
            return (
                yield from self._transaction(
                    sender, recipients, content, options, *args, stop_after, drop, raw
                )
            )
        try:
            order = tuple(recipients)
        except TypeError:  # not iterable: ``_prepare`` refuses it
            return (
                yield from self._transaction(sender, recipients, content, options, *args, raw=raw)
            )
        if len(order) < 2:  # nothing to split; none is ``_prepare``'s error
            return (yield from self._transaction(sender, order, content, options, *args, raw=raw))
        caps = self.conn.capabilities
        limit = caps.limits.rcptmax if caps is not None else None
        again = replayer(content)
        if again is None and limit is not None and len(order) > limit:
            raise LocalProtocolError(
                f"{len(order)} recipients and the server's LIMITS RCPTMAX is {limit} "
                "(RFC 9422 §4.2): the message needs several transactions, so its content "
                "must be readable again: pass bytes, str or a seekable file"
            )
        budget = self.conn.mail_budget
        needed = transactions_needed(len(order), limit)
        if budget is not None and needed > max(budget, 1):  # at 0 the engine refuses MAIL
            raise LocalProtocolError(
                f"{len(order)} recipients need {needed} transactions under the server's "
                f"LIMITS RCPTMAX={limit}, and its LIMITS MAILMAX allows {budget} more in "
                "this session (RFC 9422 §4.1, §4.2): send the message on a new connection"
            )
        results = SplitResults(order)
        pending: tuple[str, ...] = order
        source = content
        deferral: Reply | None = None  # the last 452 that deferred recipients
        for count in range(len(order)):
            group = groups_of(pending, limit)
            rest = pending[len(group) :]
            if count:
                assert again is not None  # no follow-up without it (below)
                source = again()
                # Should this follow-up fail (a lost connection, a timeout), the error
                # carries what the earlier transactions delivered (``_guard``).
                self._partial = results.result(pending)
            try:
                result = yield from self._transaction(
                    sender, group, source, options, *args, raw=raw
                )
            except (SMTPRecipientsRefused, SMTPReplyError) as error:
                if not count:
                    raise  # nothing delivered: as a single transaction would
                # A follow-up that delivered to nobody ends the split (no progress):
                # its recipients and the unsent ones keep the refusal.
                if isinstance(error, SMTPRecipientsRefused):
                    results.refuse(error.results)
                    stop = next(reply for _, reply in error.results)
                else:
                    results.refuse((address, error.reply) for address in group)
                    stop = error.reply
                results.refuse((address, stop) for address in rest)
                break
            deferred = results.add(result)
            pending = (*deferred, *rest)
            if deferred:
                deferral = dict(result.recipients)[deferred[0]]
            if not pending or (deferred and again is None) or self._broken:
                break
            if self.conn.mail_budget == 0:
                # RFC 9422 §4.1: no more transactions in this session. The deferred
                # keep their 452; the unsent (pushed back by deferrals, the check
                # above counted without them) get the last one.
                assert deferral is not None
                results.refuse((address, deferral) for address in rest)
                break
        return results.result()

    def _transaction(
        self,
        sender: str,
        recipients: str | Iterable[str],
        content: ContentSource,
        options: MailOptions,
        pipelining: bool | None,
        chunking: bool | None,
        chunk_size: int,
        progress: ProgressCallback | None,
        stop_after: MailStage | None = None,
        drop: bool = False,
        raw: bool = False,
    ) -> Driver[TransactionResult]:
        """One mail transaction (see ``sendmail``)."""
        rcpts, mail, commands, first, chunks, total = self._prepare(
            sender, recipients, content, options, chunk_size, raw
        )
        caps = self.conn.capabilities
        pipe = caps is not None and caps.pipelining and pipelining is not False
        bdat = caps is not None and caps.chunking and chunking is not False
        if chunking and not bdat:
            raise LocalProtocolError("chunking=True needs the CHUNKING extension, not advertised")
        if stop_after is None or stop_after == "data":
            check_binarymime(mail.body, bdat)
        self._current = (sender, rcpts)
        self._rcpt_accepted = 0
        if stop_after is not None:
            try:
                return (yield from self._send_stage(mail, commands, pipe, stop_after, drop))
            finally:
                if drop:  # whatever happened: the adapter closes, nothing more is sent
                    self._broken = True
        if bdat:
            return (
                yield from self._send_bdat(
                    mail, commands, first, chunks, pipe, total, progress, whole(content)
                )
            )
        return (
            yield from self._send_data(mail, commands, first, chunks, pipe, total, progress, raw)
        )


def _checked_raw(content: ContentSource, chunk_size: int, eight_bit: bool) -> ContentSource:
    """``content`` for ``sendmail(raw=True)`` once read whole through the raw guard
    (``wire.rawdata``), positioned to be read again: a raw message that would end the
    DATA early, or has 8-bit octets when the message cannot be ``BODY=8BITMIME``
    (``eight_bit`` False; RFC 6152), is refused before MAIL: nothing is half-sent."""
    again = replayer(content)
    if again is None:
        raise LocalProtocolError(
            "raw content must be bytes, str or a seekable binary file: it is checked "
            "whole before MAIL, so that nothing is half-sent"
        )
    guard = RawDataGuard()
    chunks, _ = content_chunks(content, chunk_size)
    for chunk in chunks:
        guard.feed(chunk)
    guard.end()
    if guard.eight_bit and not eight_bit:
        raise LocalProtocolError(
            "the raw content has 8-bit octets and the message is not declared "
            "BODY=8BITMIME, which needs the server to advertise 8BITMIME (RFC 6152)"
        )
    return again()
