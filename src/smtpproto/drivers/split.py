"""Sending one message's recipients in several transactions (``sendmail``'s split).

A server may take fewer recipients per transaction than a message has: it says so in
advance with ``LIMITS RCPTMAX=n`` (RFC 9422 §4.2), or answers the RCPT past its limit
with ``452 4.5.3`` (RFC 5321 §4.5.3.1.10: "the correct reply code for this condition
is 452"; the client sends the rest "in a later transaction"; RFC 3463 X.5.3 "Too many
recipients"). ``MailDrivers._sendmail`` then sends the message again to the remaining
recipients; this module holds the rules it applies:

* ``too_many`` -- which RCPT refusals mean "too many recipients" (a split), and which
  are an ordinary per-recipient temporary failure (``452 4.2.2`` mailbox full, ``452
  4.3.1`` storage, a 452 without enhanced code to the first RCPT);
* ``replayer`` -- how the content is sent again (bytes as they are, a seekable file
  from where it started; a one-shot iterable cannot be, so it is never split);
* ``SplitResults`` -- the one ``TransactionResult`` the caller gets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from ..client_engine.events import TransactionResult
from ..wire.reply import Reply
from .support import ContentSource

__all__ = ["SplitResults", "groups_of", "replayer", "too_many", "transactions_needed"]


def too_many(reply: Reply, accepted_before: bool) -> bool:
    """Whether the refusal ``reply`` of a RCPT means the server's recipient limit
    (RFC 5321 §4.5.3.1.10), so that recipient goes in a follow-up transaction.

    True for a 452 with enhanced code ``4.5.3`` (RFC 3463: "Too many recipients"), for
    a 552 with ``5.5.3`` (§4.5.3.1.10: RFC 821's wrong code for the condition, to be
    treated as temporary), and for a 452 without enhanced code when an earlier RCPT of
    the same transaction was accepted (a limit is reached only after a recipient was
    taken; a 452 to the first RCPT is "insufficient system storage", §4.2.3). Any other
    refusal -- ``452 4.2.2`` mailbox full included -- is that recipient's own failure.
    """
    enhanced = reply.enhanced
    if enhanced is None:
        return reply.code == 452 and accepted_before
    if (enhanced.subject, enhanced.detail) != (5, 3):
        return False
    return (reply.code, enhanced.class_) in ((452, 4), (552, 5))


def groups_of(recipients: Sequence[str], limit: int | None) -> Sequence[str]:
    """The first at most ``limit`` recipients (all when ``limit`` is None): the next
    transaction's, under the server's LIMITS RCPTMAX (RFC 9422 §4.2)."""
    return recipients if limit is None else recipients[:limit]


def transactions_needed(recipients: int, limit: int | None) -> int:
    """How many transactions a message to ``recipients`` recipients takes under the
    server's LIMITS RCPTMAX ``limit`` (RFC 9422 §4.2; None: no limit, one)."""
    return 1 if limit is None else max(1, -(-recipients // limit))


def replayer(content: ContentSource) -> Callable[[], ContentSource] | None:
    """A function giving ``content`` again for a follow-up transaction, or None when it
    can be read only once (an iterator, a pipe): bytes and str are reused; a seekable
    file is sought back to where the first transaction started reading it."""
    if isinstance(content, (bytes, bytearray, memoryview, str)):
        return lambda: content
    seekable = getattr(content, "seekable", None)
    if callable(seekable) and seekable():
        start = content.tell()  # type: ignore[union-attr]

        def again() -> ContentSource:
            content.seek(start)  # type: ignore[union-attr]
            return content

        return again
    return None


class SplitResults:
    """The replies of a split's transactions, combined into the one ``TransactionResult``
    the caller gets (``result``), recipients in ``order`` (the caller's).

    Each recipient keeps its final reply: its RCPT acceptance when a transaction
    delivered to it, else the reply that refused it (RCPT, DATA/BDAT or LMTP; a refused
    MAIL for a follow-up's recipients). ``sender_reply`` and ``data_reply`` are those of
    the last transaction that delivered, so ``delivered`` lists every recipient some
    transaction delivered to and ``failed`` every other one. LMTP replies are joined.
    """

    def __init__(self, order: Sequence[str]) -> None:
        self.order = order
        self.final: dict[str, Reply] = {}
        self.base: TransactionResult | None = None
        self.lmtp: list[tuple[str, Reply]] = []

    def add(self, result: TransactionResult) -> list[str]:
        """Record one transaction that delivered; return the recipients it deferred
        (``too_many``), in order, for the next transaction."""
        self.base = result
        self.lmtp += result.lmtp_replies
        delivered = set(result.delivered)
        failed = dict(result.failed)
        deferred: list[str] = []
        accepted_before = False
        for address, reply in result.recipients:
            if address in delivered:
                self.final[address] = reply
            elif reply.is_error and too_many(reply, accepted_before):
                deferred.append(address)
                self.final[address] = reply  # its reply if no follow-up takes it
            else:
                self.final[address] = failed.get(address, reply)
            accepted_before = accepted_before or reply.is_success
        return deferred

    def refuse(self, replies: Iterable[tuple[str, Reply]]) -> None:
        """Record a follow-up that delivered to nobody: each recipient's refusal."""
        self.final.update(replies)

    def result(self, pending: Sequence[str] = ()) -> TransactionResult:
        """The combined result; without the ``pending`` recipients (those of a
        follow-up that failed, and the ones not sent yet: ``partial_result``)."""
        base = self.base
        assert base is not None  # the first transaction delivered, or it raised
        final = self.final
        if pending:
            left = set(pending)
            order: Iterable[str] = (address for address in self.order if address not in left)
        else:
            order = self.order
        return TransactionResult(
            sender=base.sender,
            sender_reply=base.sender_reply,
            recipients=tuple((address, final[address]) for address in order),
            data_reply=base.data_reply,
            lmtp_replies=tuple(self.lmtp),
        )
