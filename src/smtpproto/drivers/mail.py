"""The mail-transaction drivers of ``Session`` (``sendmail``, ``send_message``).

Theory of operation: built on ``DriverCore``'s plumbing (``core``: ``_send`` writes
commands, ``_event`` reads the next engine event). The envelope goes first:
with PIPELINING, MAIL, every RCPT and DATA in one write (RFC 2920 §3.1); without it,
one command per reply. The content then streams in chunks: DATA content through the
engine's encoder (dot-stuffing, CRLF), or BDAT chunks (RFC 3030 §2) made CRLF by the
DATA codec's ``LineEndNormalizer`` (the same normalisation, RFC 5321 §2.3.8); a small
message with CHUNKING and PIPELINING goes out as MAIL+RCPT+BDAT LAST in one write. Up
to ``BDAT_WINDOW`` BDAT chunks are in flight when pipelining; a refused chunk stops the
stream (RFC 3030 §2) and RSET ends the transaction. The engine's
``TransactionResult`` is then turned into the result or an exception by ``raise_for``;
a transaction refused before its content (every RCPT, or DATA itself) is first ended
with RSET (``_settle``), so that the session is ready for the next MAIL.

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
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..client_engine.config import ClientConfig
from ..client_engine.events import (
    NEED_DATA,
    Bdat,
    Command,
    CommandReply,
    ConnectionClosed,
    Content,
    Data,
    EndOfContent,
    Mail,
    NoRecipientsAccepted,
    RawContent,
    Rcpt,
    ReadyForContent,
    Rset,
    TransactionResult,
)
from ..client_engine.states import ClientState
from ..client_engine.writers import write_rcpt
from ..wire.datacodec import DataEncoder, LineEndNormalizer, content_encoder
from ..wire.errors import LocalProtocolError, ProtocolError
from ..wire.fields import check_flag
from ..wire.rawdata import RawDataGuard
from .core import DriverCore, caller_checked, left_open, raise_for
from .downgrade import seven_bit_copy
from .envelope import envelope_from_message, flatten_message
from .exceptions import (
    SMTPConnectError,
    SMTPError,
    SMTPRecipientsRefused,
    SMTPReplyError,
)
from .prescan import ScannedFile, scan_file, seekable_start
from .split import SplitResults, groups_of, replayer, transactions_needed
from .support import (
    BDAT_WINDOW,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAIL_OPTIONS,
    ContentSource,
    Driver,
    MailOptions,
    ProgressCallback,
    Write,
    all_ascii,
    canonical_size,
    content_chunks,
    utf8,
)

if TYPE_CHECKING:
    from email.message import Message

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

#: Most MAIL/RCPT commands ``_command`` keeps for reuse (cleared when full).
COMMAND_CACHE = 1024
C = TypeVar("C", Mail, Rcpt)
#: Where ``sendmail`` may stop, in session order (see ``MailDrivers.sendmail``).
MailStage = Literal["mail", "rcpt", "data"]
MAIL_STAGES: tuple[MailStage, ...] = ("mail", "rcpt", "data")


def check_options(options: object) -> None:
    """Refuse ``options`` that are no ``MailOptions`` (None is replaced by the defaults
    before this check)."""
    if not isinstance(options, MailOptions):
        raise LocalProtocolError(
            f"options must be a MailOptions or None, got {type(options).__name__}"
        )


def check_transfer_flags(pipelining: object, chunking: object) -> None:
    """Refuse a ``pipelining``/``chunking`` that is neither a bool nor None (the
    default: use the extension when advertised) before anything is sent: ``"no"`` or
    ``0`` must not quietly mean "use it" or "do not" (``wire.fields.check_flag``)."""
    check_flag("pipelining", pipelining, allow_none=True, error=LocalProtocolError)
    check_flag("chunking", chunking, allow_none=True, error=LocalProtocolError)


def check_binarymime(body: str | None, bdat: bool) -> None:
    """Refuse ``BODY=BINARYMIME`` without BDAT (the server does not advertise
    CHUNKING, or ``chunking=False``) before anything is sent: such content goes only
    in BDAT chunks (RFC 3030 §3), and the engine refuses the DATA command only once
    MAIL and RCPT are queued, which breaks the session."""
    if body == "BINARYMIME" and not bdat:
        raise LocalProtocolError(
            "BODY=BINARYMIME content must be sent with BDAT (RFC 3030 §3): the server "
            "must advertise CHUNKING and chunking must not be False"
        )


def _check_progress(progress: object) -> None:
    """Refuse a ``progress`` that is not a callable before anything is sent (it would
    fail only after the first chunk went out, leaving the content half-sent)."""
    if progress is not None and not callable(progress):
        raise LocalProtocolError(
            f"progress must be a callable or None, got {type(progress).__name__}"
        )


class MailDrivers(DriverCore):
    """``sendmail`` and ``send_message`` over ``DriverCore``'s plumbing."""

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
        result (``drivers.split``; docs/guide/results.md);
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
        _check_progress(progress)
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
        _check_progress(progress)
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

    def _prepare(
        self,
        sender: str,
        recipients: str | Iterable[str],
        content: ContentSource,
        options: MailOptions,
        chunk_size: int,
        raw: bool = False,
    ) -> tuple[tuple[str, ...], Mail, list[Rcpt], bytes, Iterator[bytes], int | None]:
        """The recipients, MAIL and RCPT commands, the first content chunk, the rest
        and the total size (None: unknown) of one message; MAIL parameters defaulted
        from the content and the capabilities (see ``sendmail``). Nothing is sent;
        bad input raises ``LocalProtocolError``: so does content held whole (bytes,
        bytearray, memoryview, str) that the DATA encoder would refuse after the 354
        (``check_content``; ``raw`` content has its own check, ``_checked_raw``)."""
        if isinstance(recipients, str):
            rcpts: tuple[str, ...] = (recipients,)
        else:
            try:
                rcpts = tuple(recipients)
            except TypeError:  # not iterable (None, an int): caller misuse
                rcpts = (recipients,)  # type: ignore[assignment]  # refused just below
        if not isinstance(sender, str):
            raise LocalProtocolError(f"sender must be a str, got {type(sender).__name__}")
        if not all(isinstance(r, str) for r in rcpts):
            wrong = next(r for r in rcpts if not isinstance(r, str))
            raise LocalProtocolError(
                f"recipients must be a str or an iterable of str, got a {type(wrong).__name__}"
            )
        check_options(options)
        if not rcpts:
            raise LocalProtocolError("sendmail needs at least one recipient")
        if type(chunk_size) is not int or chunk_size < 1:
            raise LocalProtocolError("chunk_size must be a positive int")
        caps = self.conn.capabilities
        if len(rcpts) > 1 and caps is not None:
            limit = caps.limits.rcptmax
            if limit is not None and len(rcpts) > limit:
                # The engine would refuse the RCPT past it with MAIL already written.
                raise LocalProtocolError(
                    f"{len(rcpts)} recipients and the server's LIMITS RCPTMAX is {limit} "
                    "(RFC 9422 §4.2): one transaction cannot take them; sendmail and "
                    "send_message split them unless MailOptions(split_recipients=False)"
                )
        if isinstance(content, str):
            content = utf8(content)  # once: checked below, then chunked
        body = options.body
        # A seekable file is read once now (``prescan``): its SIZE=, BODY= and the
        # DATA rules' refusal as for content held whole; it is then sent as read.
        scan = None if raw or body == "BINARYMIME" else self._scan(content, chunk_size)
        eight_bit = not scan.ascii if scan is not None else not all_ascii(content)
        if body is None and caps is not None and caps.eightbitmime and eight_bit:
            body = "8BITMIME"
        if scan is not None:
            self._check_scanned(scan, body, chunk_size)
            chunks: Iterator[bytes] = scan.chunks(chunk_size)
            total: int | None = scan.length
        else:
            chunks, total = content_chunks(content, chunk_size)  # refuses what it cannot read
            if not raw and body != "BINARYMIME" and isinstance(content, _WHOLE):
                # Content held whole is checked now, by the encoder the engine uses
                # after the 354 (a refusal there breaks the session): nothing is sent.
                check_content(self.config, body, content)
        first = next(chunks, b"")
        smtputf8 = options.smtputf8
        if smtputf8 is None:
            smtputf8 = not sender.isascii() or not (
                rcpts[0].isascii() if len(rcpts) == 1 else all(r.isascii() for r in rcpts)
            )
        size = options.size
        if size is None and total is not None and caps is not None and caps.size is not None:
            # Content held whole and a scanned file are counted with CRLF line ends
            # (RFC 1870 §3); raw and BINARYMIME content is sent as is.
            if scan is not None:
                size = scan.size
            elif not raw and body != "BINARYMIME" and isinstance(content, _WHOLE):
                size = canonical_size(content)
            else:
                size = total
        # The same envelope as the last message (the common batch): its commands are
        # immutable values made from exactly these inputs, so they are reused as is.
        key = (sender, rcpts, size, body, smtputf8, options, caps)
        last = self._last_envelope
        if last is not None and last[0] == key:
            return rcpts, last[1], list(last[2]), first, chunks, total
        mail = self._command(
            Mail,
            sender=sender,
            size=size,
            body=body,
            smtputf8=smtputf8,
            ret=options.ret,
            envid=options.envid,
            requiretls=options.requiretls,
            mt_priority=options.mt_priority,
            by=options.by,
            auth=options.auth,
        )
        commands = [
            self._command(
                Rcpt, recipient=r, notify=options.notify, orcpt=r if options.orcpt else None
            )
            for r in rcpts
        ]
        for rcpt in commands:  # what the engine would refuse only with MAIL already out:
            # NOTIFY=/ORCPT= without DSN (RFC 3461 §4.1-4.2), a non-ASCII address without
            # SMTPUTF8 (RFC 6531 §3.4); RCPTMAX is checked above.
            write_rcpt(rcpt, caps, smtputf8=smtputf8, count=0, rcptmax=None)
        if options.notify is None or type(options.notify) is tuple:  # never a list: mutable
            self._last_envelope = (key, mail, tuple(commands))
        return rcpts, mail, commands, first, chunks, total

    def _scan(self, content: ContentSource, chunk_size: int) -> ScannedFile | None:
        """``content`` read once before MAIL when it is a seekable binary file
        (``prescan``), under the DATA rules but 8-bit allowed (BODY= is decided from
        what the scan finds); None for anything else."""
        if isinstance(content, _WHOLE):
            return None
        start = seekable_start(content)
        if start is None:
            return None
        config = self.config
        return scan_file(
            content,  # type: ignore[arg-type]  # seekable_start: has read()
            start,
            chunk_size,
            lambda: _encoder_for(config, "8BITMIME"),
        )

    def _check_scanned(self, scan: ScannedFile, body: str | None, chunk_size: int) -> None:
        """Refuse before MAIL, as ``check_content`` does for content held whole, a
        scanned file the DATA encoder for ``BODY=body`` would refuse after the 354. An
        8-bit file without BODY=8BITMIME is read again under that body's rules, for the
        refusal that comes first in the file (a NUL before the first 8-bit octet)."""
        refusal = scan.refusal
        if body != "8BITMIME" and not scan.ascii:
            config = self.config
            again = scan_file(scan.file, scan.start, chunk_size, lambda: _encoder_for(config, body))
            refusal = again.refusal
        if refusal is not None:
            raise _refused(refusal, "Refused before MAIL: nothing was sent, the session is usable")

    def _command(self, cls: type[C], **fields: Any) -> C:
        """``cls(**fields)``, reusing an identical command made recently: commands are
        immutable values, and validating addresses is a large part of a small message's
        cost. The cache holds at most ``COMMAND_CACHE`` entries."""
        key = (cls, *fields.items())
        cache = self._commands
        try:
            found = cache.get(key)
        except TypeError:  # an unhashable field (a notify list): no caching
            return cls(**fields)
        if found is None:
            if len(cache) >= COMMAND_CACHE:
                cache.clear()
            found = cache[key] = cls(**fields)
        assert isinstance(found, cls)
        return found

    def _envelope(self, mail: Mail, rcpts: list[Rcpt], pipe: bool, *then: Command) -> Driver[None]:
        """MAIL and RCPTs (and ``then``): one write when pipelining, else one by one."""
        if pipe:
            yield from self._send(mail, *rcpts, *then)
            return
        for command in (mail, *rcpts):
            yield from self._send(command)
            while True:
                event = yield from self._event()
                if isinstance(event, TransactionResult):  # MAIL refused
                    raise_for(event, "MAIL")
                if isinstance(event, CommandReply) and event.command is command:
                    if command is mail and event.reply.is_error:
                        yield from self._result("MAIL")  # the engine ends it: raises
                    break
        if then:
            yield from self._send(*then)

    def _send_data(
        self,
        mail: Mail,
        rcpts: list[Rcpt],
        first: bytes,
        chunks: Iterator[bytes],
        pipe: bool,
        total: int | None,
        progress: ProgressCallback | None,
        raw: bool = False,
    ) -> Driver[TransactionResult]:
        if not pipe:
            yield from self._envelope(mail, rcpts, False)
            if not self._any_accepted():
                return (yield from self._abort("DATA"))
        if pipe:
            yield from self._envelope(mail, rcpts, True, Data())
        else:
            yield from self._send(Data())
        while True:
            event = yield from self._event()
            if isinstance(event, TransactionResult):  # DATA refused: no content
                yield from self._settle(event, "DATA", content_sent=False)
            if isinstance(event, ReadyForContent):
                break
            if isinstance(event, NoRecipientsAccepted):
                yield from self._send(EndOfContent())
                return (yield from self._result("DATA"))
        conn = self.conn
        make = RawContent if raw else Content
        sent = 0
        chunk: bytes | None = first
        while chunk is not None:
            following = next(chunks, None)
            wire = conn.send(make(data=chunk)) if chunk else b""
            if following is None:
                wire += conn.send(EndOfContent())
            if wire:
                yield Write(wire, self._write_timeout())
            sent += len(chunk)
            if progress is not None and chunk:
                progress(sent, total)
            chunk = following
        return (yield from self._result("DATA"))

    def _send_stage(
        self, mail: Mail, rcpts: list[Rcpt], pipe: bool, stop_after: MailStage, drop: bool
    ) -> Driver[TransactionResult]:
        """The envelope up to ``stop_after`` (see ``sendmail``); nothing is delivered.

        With PIPELINING the commands go in one write (MAIL, RCPTs, DATA for the
        ``"data"`` stage; RFC 2920 §3.1), else one per reply. Then RSET, unless
        ``drop`` (the caller marks the session broken: the adapter closes)."""
        if stop_after == "mail":
            rcpts = []
        envelope: list[Command] = [mail, *rcpts]
        if stop_after == "data":
            envelope.append(Data())
        groups = [envelope] if pipe else [[command] for command in envelope]
        replies: list[Reply] = []  # MAIL's, then each RCPT's, in order (RFC 2920 §3.1)
        for group in groups:
            if not pipe and isinstance(group[0], Data) and not self._any_accepted():
                return (yield from self._abort("DATA"))  # RFC 5321 §3.3: no DATA without one
            yield from self._send(*group)
            while self.conn.outstanding:
                event = yield from self._event()
                if isinstance(event, TransactionResult):  # DATA refused: no content
                    yield from self._settle(event, "DATA", content_sent=False)
                elif isinstance(event, CommandReply):
                    replies.append(event.reply)
                    if event.command is mail and event.reply.is_error and not pipe:
                        yield from self._result("MAIL")  # the engine ends it: raises
                elif isinstance(event, NoRecipientsAccepted):
                    yield from self._send(EndOfContent())  # RFC 2920 §3.1: a lone "."
                    return (yield from self._result("DATA"))
                elif isinstance(event, ReadyForContent):
                    # Only content may follow a 354: stop; the adapter closes.
                    self._broken = True
                    return _stage_result(mail, rcpts, replies, event.reply)
        if drop:  # no RSET: the transaction stays open until the connection closes
            result = _stage_result(mail, rcpts, replies, None)
            raise_for(result, "RCPT")
            return result
        yield from self._rset_unless_closing()
        return (yield from self._result("RCPT"))

    def _send_bdat(
        self,
        mail: Mail,
        rcpts: list[Rcpt],
        first: bytes,
        chunks: Iterator[bytes],
        pipe: bool,
        total: int | None,
        progress: ProgressCallback | None,
        checked: bool = False,
    ) -> Driver[TransactionResult]:
        conn = self.conn
        ends = LineEndNormalizer() if mail.body != "BINARYMIME" else None
        # Content not checked whole before MAIL (a file, an iterable) is checked chunk
        # by chunk against the DATA rules (RFC 3030 §3: unless BINARYMIME); unlike
        # DATA, a refusal after chunks went out is recoverable: RSET (``_stream_refused``).
        checker = _encoder_for(self.config, mail.body) if ends and not checked else None
        if checker is not None:
            try:
                checker.feed(first)
            except LocalProtocolError as error:  # before MAIL: nothing sent
                raise _refused(str(error), "Refused before MAIL: nothing was sent") from None
        following = next(chunks, None)

        def encode(chunk: bytes, last: bool) -> bytes:
            if ends is None:
                return chunk
            return ends.feed(chunk) + (ends.finish() if last else b"")

        if pipe and following is None:
            # Small message: MAIL, RCPTs and BDAT LAST in one write (RFC 3030 §4.2).
            yield from self._envelope(mail, rcpts, True, Bdat(data=encode(first, True), last=True))
            if progress is not None and first:
                progress(len(first), total)
            return (yield from self._result("BDAT", settle=True))
        yield from self._envelope(mail, rcpts, pipe)
        if pipe:
            yield from self._drain_until_outstanding(0)
        if not self._any_accepted():
            return (yield from self._abort("BDAT"))
        sent = 0
        chunk: bytes | None = first
        window = BDAT_WINDOW if pipe else 0
        while chunk is not None:
            last = following is None
            yield Write(conn.send(Bdat(data=encode(chunk, last), last=last)), self._write_timeout())
            sent += len(chunk)
            if progress is not None and chunk:
                progress(sent, total)
            if last:
                break
            failed = yield from self._drain_until_outstanding(window)
            if failed:
                return (yield from self._abort("BDAT"))
            try:
                chunk, following = following, next(chunks, None)
            except LocalProtocolError as error:  # reading failed, or the file changed
                yield from self._stream_refused(error, sent)
            if checker is not None and chunk is not None:
                try:
                    checker.feed(chunk)
                except LocalProtocolError as error:
                    yield from self._stream_refused(error, sent)
        return (yield from self._result("BDAT"))

    def _stream_refused(self, error: LocalProtocolError, sent: int) -> Driver[None]:
        """A BDAT chunk the DATA rules refuse, read after ``sent`` octets went out in
        earlier chunks: it is never sent; RSET ends the transaction, so nothing of the
        message is delivered (RFC 3030 §2, RFC 5321 §4.1.1.5), every reply due is
        read, then the refusal is raised with the session usable (unless a 421 or a
        lost connection ended it meanwhile)."""
        conn = self.conn
        yield from self._rset_unless_closing()
        while conn.outstanding:
            yield from self._event()
        # The RSET's reply queued the reset transaction's ``TransactionResult`` behind
        # its ``CommandReply`` (``replies._other_reply``): taken here (nothing more to
        # read), or the next transaction would take it for its own result.
        while (event := conn.next_event()) is not NEED_DATA:
            self._screen(event)
            if type(event) is TransactionResult or type(event) is ConnectionClosed:
                break
        raise _refused(
            str(error),
            f"The transaction was ended with RSET after {sent} octets in BDAT chunks: "
            "nothing was delivered, the session is usable",
        ) from None

    def _drain_until_outstanding(self, limit: int) -> Driver[bool]:
        """Handle replies until at most ``limit`` commands are outstanding; True when
        a BDAT chunk was refused (RFC 3030 §2: send no more chunks)."""
        failed = False
        while len(self.conn.outstanding) > limit:
            event = yield from self._event()
            if isinstance(event, CommandReply) and isinstance(event.command, Bdat):
                failed = failed or event.reply.is_error
            if isinstance(event, TransactionResult):
                raise_for(event, "MAIL")
        return failed

    def _offers_8bit(self) -> bool:
        """Whether the server advertises 8BITMIME (RFC 6152), which ``_prepare`` uses."""
        caps = self.conn.capabilities
        return caps is not None and caps.eightbitmime

    def _any_accepted(self) -> bool:
        return self._rcpt_accepted > 0

    def _abort(self, verb: Literal["DATA", "BDAT"]) -> Driver[TransactionResult]:
        """End a transaction that cannot deliver (no recipient accepted, a BDAT
        refused) with RSET (RFC 5321 §4.1.1.5), then raise for its result, labelled
        with the verb the transaction uses (``verb``: DATA or BDAT, RFC 3030 §2)."""
        yield from self._rset_unless_closing()
        return (yield from self._result(verb))

    def _rset_unless_closing(self) -> Driver[None]:
        """RSET, unless a 421 closed the session (RFC 5321 §3.8: nothing more may be
        sent; the result then raises ``SMTPReplyError`` with that 421)."""
        if self.conn.state is not ClientState.CLOSING:
            yield from self._send(Rset())

    def _result(self, verb: str, *, settle: bool = False) -> Driver[TransactionResult]:
        """The transaction's result, or the exception for it; ``settle``: after the
        content with the envelope in one write, where a refusal may leave the
        transaction open (``_settle``)."""
        while True:
            event = yield from self._event()
            if isinstance(event, TransactionResult):
                if settle:
                    return (yield from self._settle(event, verb, content_sent=True))
                raise_for(event, verb)
                return event
            if isinstance(event, ConnectionClosed):
                raise SMTPConnectError("the server closed the connection during the transaction")

    def _settle(
        self, result: TransactionResult, verb: str, *, content_sent: bool
    ) -> Driver[TransactionResult]:
        """``raise_for(result, verb)``, after ending with RSET a refused transaction the
        server may still hold open (``left_open``; smtplib sends RSET there too)."""
        try:
            raise_for(result, verb)
        except (SMTPReplyError, SMTPRecipientsRefused):
            if left_open(result, content_ended=content_sent):
                try:
                    yield from self._rset_unless_closing()
                    while self.conn.outstanding:  # the RSET's reply
                        yield from self._event()
                except (OSError, ProtocolError, SMTPError):
                    # The refusal stays the message's outcome; a session whose RSET
                    # failed is not reused.
                    self._broken = True
            raise
        return result


def check_content(
    config: ClientConfig, body: str | None, content: bytes | bytearray | memoryview
) -> None:
    """Refuse, with the DATA encoder's ``LocalProtocolError`` message, whole content
    the engine's encoder for ``BODY=body`` (``wire.datacodec.content_encoder``)
    would refuse after the 354: a NUL (RFC 5321 §4.5.2), a line over 1000 octets with
    its CRLF (§4.5.3.1.6), an 8-bit octet without ``BODY=8BITMIME`` (RFC 6152). BDAT
    content other than ``BODY=BINARYMIME`` (RFC 3030 §3) is held to the same rules.
    One pass in the codec twin (``DataEncoder.refusal``)."""
    refusal = _encoder_for(config, body).refusal(content)
    if refusal is not None:
        raise _refused(refusal, "Refused before MAIL: nothing was sent, the session is usable")


#: Content held whole (after ``str`` became bytes).
_WHOLE = (bytes, bytearray, memoryview)


def whole(content: ContentSource) -> bool:
    """Whether ``_prepare`` checks ``content`` whole before MAIL (``check_content``)."""
    return isinstance(content, (*_WHOLE, str))


def _encoder_for(config: ClientConfig, body: str | None) -> DataEncoder:
    return content_encoder(
        body, enforce_line_length=config.enforce_line_length, allow_nul=config.allow_nul
    )


def _refused(refusal: str, outcome: str) -> LocalProtocolError:
    """The encoder's ``refusal`` (which names the ``ClientConfig`` field or MAIL
    parameter that allows the content), then ``outcome`` (what was sent)."""
    return LocalProtocolError(f"{refusal}. {outcome}")


def _stage_result(
    mail: Mail, rcpts: list[Rcpt], replies: list[Reply], data_reply: Reply | None
) -> TransactionResult:
    """The result of a transaction stopped early (``_send_stage``): ``replies`` holds
    MAIL's reply, then each RCPT's, in order."""
    return TransactionResult(
        sender=mail.sender,
        sender_reply=replies[0],
        recipients=tuple(
            (rcpt.recipient, reply) for rcpt, reply in zip(rcpts, replies[1:], strict=True)
        ),
        data_reply=data_reply,
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
