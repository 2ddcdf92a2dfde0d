"""Bookkeeping for one mail transaction and for the commands awaiting replies.

Theory of operation: ``send(Mail(...))`` opens a ``Transaction``; every RCPT, DATA,
end of content and BDAT of it is queued as a ``Pending`` entry that points back at
it, so replies find their transaction even when the next transaction was already
pipelined. The record collects the replies as they arrive; ``result()`` turns it into
the ``TransactionResult`` event exactly once. Recipients still unanswered when the
transaction ends early (a 421) get that reply, so every recipient is always listed.
"""

from __future__ import annotations

from ..wire.reply import Reply
from .events import Command, Mail, TransactionResult, positional
from .states import Verb

__all__ = ["Pending", "Transaction"]

_transaction_result = positional(TransactionResult)


class Transaction:
    """The replies of one MAIL transaction, filled in as they arrive."""

    __slots__ = (
        "_accepted",
        "_unanswered",
        "commands_after_mail",
        "data_reply",
        "finished",
        "lmtp_replies",
        "mail",
        "mail_reply",
        "rcpt_replies",
        "recipients",
    )

    def __init__(self, mail: Mail) -> None:
        self.mail = mail
        self.mail_reply: Reply | None = None
        #: Addresses in the order RCPTs were sent, and their replies (None: unanswered).
        self.recipients: list[str] = []
        self.rcpt_replies: list[Reply | None] = []
        self.data_reply: Reply | None = None
        self.lmtp_replies: list[tuple[str, Reply]] = []
        #: RCPT/DATA/BDAT sent after MAIL: a refused MAIL alone ends the transaction.
        self.commands_after_mail = 0
        self.finished = False
        self._accepted: list[str] = []  # 2xx RCPTs, in order (replies come in order)
        self._unanswered = 0

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
        return _transaction_result(  # fields: sender, sender_reply, recipients (no None
            self.mail.sender,  # left after the fill), data_reply, lmtp_replies
            self.mail_reply if self.mail_reply is not None else fill,
            tuple(zip(self.recipients, replies, strict=True)),
            self.data_reply,
            tuple(self.lmtp_replies),
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
        *,
        remaining: int | None = 1,
        index: int = -1,
    ) -> None:
        self.verb = verb
        self.command = command
        self.txn = txn
        self.remaining = remaining
        self.index = index
