"""``Session``: the mutable state of one client session, in one place.

Theory of operation: ``ClientConnection`` owns one ``Session`` and hands it to the send
rules (``sending``: a command's checks and bytes) and the reply rules (``replies``:
what a reply means). Both are plain functions over this state, so every attribute is
declared once, here. The state moves only through the tables in ``states``: ``send``
applies ``AFTER_SEND`` and everything else calls ``enter(outcome)`` (``ON_OUTCOME``).

The bookkeeping of the replies lives here too. ``send(Mail(...))`` opens a
``Transaction``; every RCPT, DATA, end of content and BDAT of it is queued as a
``Pending`` entry that points back at it, so replies find their transaction even when
the next transaction was already pipelined (RFC 2920 §3.1). The record collects the
replies as they arrive; ``result()`` turns it into the ``TransactionResult`` event
exactly once. Recipients still unanswered when the transaction ends early (a 421) get
that reply, so every recipient is always listed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..wire.datacodec import DataEncoder
from ..wire.rawdata import RawDataGuard
from ..wire.reply import Reply
from ..wire.twins import slot_filler
from .capabilities import Capabilities
from .config import ClientConfig, ParserFactory, ReplyParserLike, TLSPolicy
from .events import Command, Event, Mail, TransactionResult, positional
from .redaction import NO_SECRETS, NoSecrets, Redactor
from .states import ON_OUTCOME, ClientState, Outcome, Verb
from .transcript import Transcript

if TYPE_CHECKING:
    from ..sasl.base import ClientMechanism

__all__ = ["Pending", "Session", "Transaction", "fill_pending", "fill_transaction"]

_transaction_result = positional(TransactionResult, slot_filler)


class Transaction:
    """The replies of one MAIL transaction, filled in as they arrive."""

    __slots__ = (
        "_accepted",
        "_unanswered",
        "commands_after_mail",
        "data_reply",
        "finished",
        "group",
        "lmtp_replies",
        "mail",
        "mail_reply",
        "rcpt_replies",
        "recipients",
    )

    def __init__(self, mail: Mail, addresses: tuple[str, ...] = ()) -> None:
        """``addresses``: RCPTs sent with the MAIL at once (the fast lane's template,
        ``fastlane.send_group``), as ``add_recipient`` of each would record them."""
        count = len(addresses)
        self.mail = mail
        self.mail_reply: Reply | None = None
        #: Addresses in the order RCPTs were sent, and their replies (None: unanswered).
        self.recipients: list[str] = list(addresses)
        self.rcpt_replies: list[Reply | None] = [None] * count
        self.data_reply: Reply | None = None
        self.lmtp_replies: list[tuple[str, Reply]] = []
        #: RCPT/DATA/BDAT sent after MAIL: a refused MAIL alone ends the transaction.
        self.commands_after_mail = count
        self.finished = False
        #: Opened by the fast lane (``fastlane.send_group``): its replies take
        #: ``replies.handle_replies``' group step.
        self.group = False
        self._accepted: list[str] = []  # 2xx RCPTs, in order (replies come in order)
        self._unanswered = count

    def add_recipient(self, address: str) -> int:
        """Record a RCPT sent; return its index for ``record_rcpt``."""
        self.recipients.append(address)
        self.rcpt_replies.append(None)
        self.commands_after_mail += 1
        self._unanswered += 1
        return len(self.recipients) - 1

    def record_rcpt(self, index: int, reply: Reply) -> None:
        """Record the reply to the RCPT at ``index``."""
        self.rcpt_replies[index] = reply
        self._unanswered -= 1
        if reply.code // 100 == 2:  # RFC 5321 §4.2.1: 2yz is success
            self._accepted.append(self.recipients[index])

    def accepted(self) -> list[str]:
        """Recipients with a 2xx RCPT reply, if MAIL itself was accepted."""
        mail_reply = self.mail_reply
        if mail_reply is None or mail_reply.code // 100 != 2:
            return []
        return self._accepted

    def not_refused(self) -> list[str]:
        """Recipients the server may have taken the message for when the reply to its
        end never came (RFC 1047): every RCPT accepted or still unanswered (pipelined,
        RFC 2920 §3.1), unless MAIL itself was refused."""
        mail_reply = self.mail_reply
        if mail_reply is not None and mail_reply.code // 100 != 2:
            return []
        if not self._unanswered:
            return self.accepted()
        return [
            address
            for address, reply in zip(self.recipients, self.rcpt_replies, strict=True)
            if reply is None or reply.code // 100 == 2
        ]

    def result(self, *, fill: Reply | None = None) -> TransactionResult:
        """The ``TransactionResult``; marks the transaction finished.

        ``fill`` answers every unanswered step (used when a 421 ends the session).
        """
        self.finished = True
        replies: list[Reply | None]
        if self._unanswered:
            assert fill is not None, "a transaction ended with an unanswered RCPT"
            replies = [fill if reply is None else reply for reply in self.rcpt_replies]
        else:
            replies = self.rcpt_replies
        recipients = self.recipients
        pairs = (
            ((recipients[0], replies[0]),)  # the common case, without zip's machinery
            if len(recipients) == 1 == len(replies)
            else tuple(zip(recipients, replies, strict=True))
        )
        return _transaction_result(  # fields: sender, sender_reply, recipients (no None
            self.mail.sender,  # left after the fill), data_reply, lmtp_replies
            self.mail_reply if self.mail_reply is not None else fill,
            pairs,
            self.data_reply,
            tuple(self.lmtp_replies) if self.lmtp_replies else (),
        )


class Pending:
    """One command awaiting ``remaining`` replies (None: decided at the first reply).

    ``verb`` is None for the greeting. ``index`` is the recipient's position for RCPT.
    """

    __slots__ = ("command", "index", "remaining", "txn", "verb")

    def __init__(
        self,
        verb: Verb | None,
        command: Command | None,
        txn: Transaction | None = None,
        remaining: int | None = 1,
        index: int = -1,
    ) -> None:
        self.verb = verb
        self.command = command
        self.txn = txn
        self.remaining = remaining
        self.index = index


#: The fast lane's constructors (``fastlane``: four entries and a transaction per
#: message): the selected ``slot_filler`` twin fills the slots directly, from the
#: values in these orders, which are what the constructors above set (for a
#: ``Transaction``: ``mail``, None, the addresses as a list, None per address, None,
#: ``[]``, their count, False, ``group``, ``[]``, their count).
fill_pending = slot_filler(Pending, ("verb", "command", "txn", "remaining", "index"))
fill_transaction = slot_filler(
    Transaction,
    (
        "mail",
        "mail_reply",
        "recipients",
        "rcpt_replies",
        "data_reply",
        "lmtp_replies",
        "commands_after_mail",
        "finished",
        "group",
        "_accepted",
        "_unanswered",
    ),
)

# A plain dict: looked up on most replies, cheaper than through the MappingProxyType.
_ON_OUTCOME = dict(ON_OUTCOME)


class Session:
    """Everything a client session knows; ``ClientConnection`` is its only owner."""

    __slots__ = (
        "auth_cancelled",
        "auth_initial",
        "auth_rounds",
        "authenticated",
        "caps",
        "challenge",
        "command_replies",
        "config",
        "encoder",
        "events",
        "incoming",
        "incoming_size",
        "mailmax",
        "mails_sent",
        "mechanism",
        "parser",
        "parser_factory",
        "pending",
        "pipelining",
        "preface_closed",
        "raw",
        "rcptmax",
        "redactor",
        "replies",
        "spare_encoder",
        "state",
        "tls_active",
        "transcript",
        "txn",
    )

    def __init__(self, config: ClientConfig, parser_factory: ParserFactory) -> None:
        self.config = config
        #: Makes the reply parser (``config.parser_factory`` or the selected twin).
        self.parser_factory = parser_factory
        #: The reply parser; a new one after TLS (RFC 3207 §4.2).
        self.parser = self.new_parser()
        #: The sending state (``states``); changed by ``enter`` and ``send`` only.
        self.state = ClientState.GREETING
        #: What the last 250 EHLO/LHLO advertised, with PIPELINING and RCPTMAX.
        self.caps: Capabilities | None = None
        self.pipelining = False
        self.rcptmax: int | None = None
        #: MAIL commands sent in this SMTP session, accepted or not, counted against
        #: the server's LIMITS MAILMAX (RFC 9422 §4.1); 0 again after TLS (RFC 3207
        #: §4.2: a new session), never after a new EHLO.
        self.mails_sent = 0
        #: The last EHLO's LIMITS MAILMAX (None: none), read once (``Capabilities.limits``
        #: parses on every access).
        self.mailmax: int | None = None
        self.tls_active = config.tls_policy is TLSPolicy.IMPLICIT
        self.authenticated = False
        #: Something was sent in GREETING (a PROXY header, raw bytes): no PROXY header
        #: may follow (it must be the first bytes, ``proxy``).
        self.preface_closed = False
        #: Replies due, oldest first (RFC 2920 §3.1); the greeting is due at the start.
        self.pending: deque[Pending] = deque([Pending(None, None)])
        #: False: replies to MAIL, RCPT and BDAT make no ``CommandReply`` (the
        #: transaction's ``TransactionResult`` still reports every one of them).
        self.command_replies = True
        #: Events ready for ``next_event``; replies parsed and not yet handled; chunks
        #: received and not yet parsed. Lists, not deques: they hold a few items, and an
        #: empty deque costs 760 bytes (its first block) against 56 for a list, per
        #: connection.
        self.events: list[Event] = []
        self.replies: list[Reply] = []
        self.incoming: list[bytes] = []
        #: Octets in ``incoming`` (at most ``config.max_receive_buffer``).
        self.incoming_size = 0
        #: The open mail transaction and, in CONTENT, its DATA encoder.
        self.txn: Transaction | None = None
        self.encoder: DataEncoder | None = None
        #: The last DATA encoder made and whether it allows 8-bit (BODY=8BITMIME): the
        #: next 354 of that kind resets it rather than making one (``_data_reply``).
        self.spare_encoder: tuple[bool, DataEncoder] | None = None
        #: In CONTENT, once ``RawContent`` was sent: its end-of-data guard.
        self.raw: RawDataGuard | None = None
        #: The AUTH exchange (RFC 4954 §4): mechanism, last challenge, rounds, the
        #: initial response still to send, and whether it was cancelled with ``*``.
        self.mechanism: ClientMechanism | None = None
        self.challenge: bytes | None = None
        self.auth_rounds = 0
        self.auth_initial: bytes | None = None
        self.auth_cancelled = False
        #: The AUTH secrets, removed from every reply, error and transcript line: the
        #: shared ``NO_SECRETS`` until AUTH is sent (``learn_secrets``).
        self.redactor: Redactor | NoSecrets = NO_SECRETS
        self.transcript = (
            None
            if config.transcript is None
            else Transcript(
                config.transcript, content=config.transcript_content, redactor=NO_SECRETS
            )
        )

    def learn_secrets(self, secrets: Iterable[bytes]) -> None:
        """Remove ``secrets`` (an AUTH mechanism's) from every reply, error and
        transcript line from now on (docs/design.md §4 rule 11); the first call gives
        the connection a ``Redactor`` of its own, for the transcript too."""
        redactor = self.redactor
        if not isinstance(redactor, Redactor):
            redactor = self.redactor = Redactor()
            if self.transcript is not None:
                self.transcript.redactor = redactor
        redactor.add_secrets(secrets)

    def enter(self, outcome: Outcome) -> None:
        """Move to the state ``ON_OUTCOME`` gives for ``outcome``."""
        self.state = _ON_OUTCOME[outcome]

    def new_parser(self) -> ReplyParserLike:
        """A reply parser with the configured limits (RFC 5321 §4.5.3.1.5)."""
        config = self.config
        return self.parser_factory(
            max_line_length=config.max_reply_line_length,
            max_lines=config.max_reply_lines,
            max_reply_bytes=config.max_reply_bytes,
        )

    def mail_budget(self) -> int | None:
        """MAIL commands the server's LIMITS MAILMAX still allows in this session
        (RFC 9422 §4.1); None: no limit advertised."""
        limit = self.mailmax
        return None if limit is None else max(limit - self.mails_sent, 0)

    def forget_extensions(self) -> None:
        """No extension is known any more (a new hello, RFC 5321 §4.1.4; TLS, RFC 3207
        §4.2)."""
        self.caps = None
        self.pipelining = False
        self.rcptmax = None
        self.mailmax = None
