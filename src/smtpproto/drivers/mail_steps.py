"""The steps of one mail transaction on the wire (the ``MailDrivers`` of
``drivers.mail`` inherit them), over ``DriverCore``'s plumbing (``_send``, ``_event``).

The envelope goes first: with PIPELINING, MAIL, every RCPT and DATA in one write (RFC
2920 §3.1); without it, one command per reply; ``_open_transaction`` sends it and
reads its replies, up to DATA's 354, for a whole message (``_send_data``) and for one
stopped early (``_send_stage``), ``_envelope`` for BDAT. The content then
streams in chunks: DATA content through the engine's encoder (``_send_data``), or BDAT
chunks (RFC 3030 §2) made CRLF by the DATA codec's ``LineEndNormalizer`` (the same
normalisation, RFC 5321 §2.3.8; ``_send_bdat``); a small message with CHUNKING and
PIPELINING goes out as MAIL+RCPT+BDAT LAST in one write. Up to ``BDAT_WINDOW`` BDAT
chunks are in flight when pipelining; a refused chunk stops the stream (RFC 3030 §2) and
RSET ends the transaction. The engine's ``TransactionResult`` is then turned into the
result or an exception by ``raise_for`` (``_result``); a transaction refused before its
content (every RCPT, or DATA itself) is first ended with RSET (``_settle``), so that
the session is ready for the next MAIL. ``_send_stage`` stops early (``stop_after``,
see ``drivers.mail``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

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
from ..wire.datacodec import LineEndNormalizer
from ..wire.errors import LocalProtocolError, ProtocolError
from .core import DriverCore, left_open, raise_for
from .exceptions import SMTPConnectError, SMTPError, SMTPRecipientsRefused, SMTPReplyError
from .mail_checks import MailStage, encoder_for, refused
from .support import BDAT_WINDOW, Driver, ProgressCallback, Write

if TYPE_CHECKING:
    from ..wire.reply import Reply

__all__ = ["TransactionSteps"]


class TransactionSteps(DriverCore):
    """The envelope, the content (DATA or BDAT), stopping early, RSET and the result
    of one transaction, for ``MailDrivers``."""

    def _envelope(self, mail: Mail, rcpts: list[Rcpt], pipe: bool, *then: Command) -> Driver[None]:
        """MAIL and RCPTs (and ``then``): one write when pipelining, else one by one,
        each answered before the next (``_open_transaction``)."""
        if pipe:
            yield from self._send(mail, *rcpts, *then)
            return
        yield from self._open_transaction(mail, rcpts, False)
        if then:
            yield from self._send(*then)

    def _open_transaction(
        self,
        mail: Mail,
        rcpts: list[Rcpt],
        pipe: bool,
        data: bool = False,
        replies: list[Reply] | None = None,
    ) -> Driver[TransactionResult | Reply | None]:
        """MAIL, ``rcpts`` and, with ``data``, DATA, and their replies: with PIPELINING
        in one write (RFC 2920 §3.1), else one command per reply, with no DATA when no
        RCPT was accepted (RFC 5321 §3.3: ``_abort``). ``replies`` gets MAIL's reply,
        then each RCPT's, in order. Returns DATA's 354 (only content may follow); the
        result of a transaction that ended without content (no RCPT accepted: the
        lone "." after the 354, RFC 2920 §3.1); or None once every command was
        answered, or once a 421 ended the transaction (nothing more is sent: RFC 5321
        §3.8). A refused MAIL, or DATA refused, raises (``_result``, ``_settle``)."""
        envelope: list[Command] = [mail, *rcpts]
        if data:
            envelope.append(Data())
        groups = [envelope] if pipe else [[command] for command in envelope]
        for group in groups:
            if self.conn.state is ClientState.CLOSING:  # a 421 (RFC 5321 §3.8) ended it
                return None
            if not pipe and isinstance(group[0], Data) and not self._any_accepted():
                return (yield from self._abort("DATA"))  # RFC 5321 §3.3: no DATA without one
            yield from self._send(*group)
            while self.conn.outstanding:
                event = yield from self._event()
                if isinstance(event, TransactionResult):  # DATA refused: no content
                    yield from self._settle(event, "DATA", content_sent=False)
                elif isinstance(event, CommandReply):
                    if replies is not None:
                        replies.append(event.reply)
                    if event.command is mail and not event.reply.is_success and not pipe:
                        # Any reply but 2yz ends it (a 3yz too, RFC 5321 §4.3.2): raises
                        yield from self._result("MAIL")
                elif isinstance(event, NoRecipientsAccepted):
                    yield from self._send(EndOfContent())  # RFC 2920 §3.1: a lone "."
                    return (yield from self._result("DATA"))
                elif isinstance(event, ReadyForContent):
                    return event.reply
        return None

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
        ended = yield from self._open_transaction(mail, rcpts, pipe, data=True)
        if isinstance(ended, TransactionResult):
            return ended
        if ended is None:  # every command answered, no 354: a 421 ended the transaction
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
        ``"data"`` stage; RFC 2920 §3.1), else one per reply (``_open_transaction``).
        Then RSET, unless ``drop`` (the caller marks the session broken: the adapter
        closes)."""
        if stop_after == "mail":
            rcpts = []
        replies: list[Reply] = []  # MAIL's, then each RCPT's, in order (RFC 2920 §3.1)
        ended = yield from self._open_transaction(mail, rcpts, pipe, stop_after == "data", replies)
        if isinstance(ended, TransactionResult):
            return ended
        if ended is not None:  # the 354: only content may follow; stop, the adapter closes
            self._broken = True
            return _stage_result(mail, rcpts, replies, ended)
        if drop and self.conn.state is not ClientState.CLOSING:
            # No RSET: the transaction stays open until the connection closes. (After a
            # 421, RFC 5321 §3.8, the commands it left unanswered have no reply to pair:
            # the engine's result below carries it.)
            result = _stage_result(mail, rcpts, replies, None)
            raise_for(result, "RCPT")
            return result
        yield from self._rset_unless_closing()
        try:
            result = yield from self._result("RCPT")
        except (SMTPReplyError, SMTPRecipientsRefused):
            try:
                yield from self._rset_reply()
            except (OSError, ProtocolError, SMTPError):
                self._broken = True  # the refusal stays the outcome (as in ``_settle``)
            raise
        yield from self._rset_reply()
        return result

    def _rset_reply(self) -> Driver[None]:
        """Read every reply still due: the RSET's that ended a transaction. Left
        unread, the next operation would take it for its own: a MAIL refused with
        PIPELINING and nothing behind it (``stop_after="mail"``) ended the transaction
        at its own reply, so its result comes before the RSET's reply (a next stopped
        ``sendmail`` took that reply for its MAIL's)."""
        while self.conn.outstanding:
            yield from self._event()

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
        checker = encoder_for(self.config, mail.body) if ends and not checked else None
        if checker is not None:
            try:
                checker.feed(first)
            except LocalProtocolError as error:  # before MAIL: nothing sent
                raise refused(str(error), "Refused before MAIL: nothing was sent") from None
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
        if self.conn.state is ClientState.CLOSING:  # a 421 (RFC 5321 §3.8) ended it
            return (yield from self._result("BDAT"))
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
        return (yield from self._result("BDAT", chunked=True))

    def _stream_refused(self, error: LocalProtocolError, sent: int) -> Driver[None]:
        """A BDAT chunk the DATA rules refuse, read after ``sent`` octets went out in
        earlier chunks: it is never sent; RSET ends the transaction, so nothing of the
        message is delivered (RFC 3030 §2, RFC 5321 §4.1.1.5), every reply due is
        read, then the refusal is raised with the session usable (unless a 421 or a
        lost connection ended it meanwhile)."""
        conn = self.conn
        yield from self._rset_unless_closing()
        yield from self._rset_reply()
        # The RSET's reply queued the reset transaction's ``TransactionResult`` behind
        # its ``CommandReply`` (``replies._other_reply``): taken here (nothing more to
        # read), or the next transaction would take it for its own result.
        while (event := conn.next_event()) is not NEED_DATA:
            self._screen(event)
            if type(event) is TransactionResult or type(event) is ConnectionClosed:
                break
        usable = "usable" if self.usable else "not reused (RSET refused, RFC 5321 §4.1.1.5)"
        raise refused(
            str(error),
            f"The transaction was ended with RSET after {sent} octets in BDAT chunks: "
            f"nothing was delivered, the session is {usable}",
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

    def _result(
        self, verb: str, *, settle: bool = False, chunked: bool = False
    ) -> Driver[TransactionResult]:
        """The transaction's result, or the exception for it; ``settle``: after the
        content with the envelope in one write, where a refusal may leave the
        transaction open (``_settle``); ``chunked``: after BDAT LAST went out behind
        chunks still unanswered, one of which may be refused (``_chunk_refused``)."""
        chunk_refused = False
        while True:
            event = yield from self._event()
            if isinstance(event, TransactionResult):
                if settle:
                    return (yield from self._settle(event, verb, content_sent=True))
                if chunk_refused:
                    return (yield from self._chunk_refused(event))
                raise_for(event, verb)
                return event
            if isinstance(event, ConnectionClosed):
                raise SMTPConnectError("the server closed the connection during the transaction")
            if chunked and isinstance(event, CommandReply) and isinstance(event.command, Bdat):
                chunk_refused = chunk_refused or event.reply.is_error

    def _chunk_refused(self, result: TransactionResult) -> Driver[TransactionResult]:
        """A BDAT chunk was refused with later chunks, LAST included, already sent
        (pipelining): RFC 3030 §2, the transaction failed, the server discarded those
        chunks and "the resulting state is indeterminate": RSET ends it before the
        next MAIL. In LMTP the discarded LAST may get one reply (RFC 3030 §2, what the
        engine reads) or one per recipient (RFC 2033 §4.2), so later replies can no
        longer be matched to their commands: the session is not reused. The chunk's
        refusal is raised either way."""
        try:
            raise_for(result, "BDAT")
        except (SMTPReplyError, SMTPRecipientsRefused):
            if self.config.lmtp:
                self._broken = True
            else:
                yield from self._reset_after_refusal()
            raise
        return result

    def _settle(
        self, result: TransactionResult, verb: str, *, content_sent: bool
    ) -> Driver[TransactionResult]:
        """``raise_for(result, verb)``, after ending with RSET a refused transaction the
        server may still hold open (``left_open``; smtplib sends RSET there too)."""
        try:
            raise_for(result, verb)
        except (SMTPReplyError, SMTPRecipientsRefused):
            if left_open(result, content_ended=content_sent):
                yield from self._reset_after_refusal()
            raise
        return result

    def _reset_after_refusal(self) -> Driver[None]:
        """RSET a refused transaction (RFC 5321 §4.1.1.5) and read its reply. The
        refusal stays the message's outcome: a session whose RSET failed, or was
        refused (``_screen``), is not reused."""
        try:
            yield from self._rset_unless_closing()
            yield from self._rset_reply()
        except (OSError, ProtocolError, SMTPError):
            self._broken = True


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
