"""``send_many``'s outcomes: one per message, handed on in message order.

``Outcomes`` collects them: each is handed on as soon as it and every one before it
are known, to the list ``send_many`` returns or, with ``on_outcome``, to the caller's
callback and then dropped, so a streamed batch of any length holds only the messages
of its window. ``session_ended`` gives the messages in flight, and those taken but not
sent, the outcome the end of the session means for each (RFC 1047: a message whose
content end was written is "delivery status unknown").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..client_engine.events import TransactionResult
from .exceptions import SMTPConnectError, SMTPDeliveryStatusUnknown, SMTPError, SMTPReplyError

if TYPE_CHECKING:
    from .batch_plan import Prepared

__all__ = ["Outcome", "OutcomeCallback", "Outcomes", "session_ended", "unknown_for"]

#: What ``send_many`` reports per message.
Outcome = TransactionResult | SMTPError
#: ``send_many(on_outcome=...)``: called with each message's index (from 0, in the
#: order of the iterable) and outcome, in that order, as soon as it is known.
OutcomeCallback = Callable[[int, Outcome], None]


class Outcomes:
    """The outcome of each message by index, handed in index order as soon as it and
    all before it are known to ``emit`` — or, without one, appended to ``collect``
    (``send_many``'s list: no call per message) — then forgotten (see the module
    docstring)."""

    __slots__ = ("_collect", "_emit", "_next", "_pending", "count", "failed")

    def __init__(
        self, emit: OutcomeCallback | None = None, collect: list[Outcome] | None = None
    ) -> None:
        if (emit is None) == (collect is None):
            raise ValueError("Outcomes takes an emit callback or a list to collect into")
        self._emit = emit
        self._collect = collect
        self._pending: dict[int, Outcome] = {}  # settled, waiting for an earlier one
        self._next = 0  # the first index not emitted yet
        #: Messages taken from the iterable so far.
        self.count = 0
        #: ``emit`` (the caller's ``on_outcome``) raised: whatever it raised, even an
        #: ``SMTPError``, is the caller's and ends the batch, never a session error.
        self.failed = False

    def rewind(self, count: int) -> None:
        """Forget the messages taken from ``count`` on (none of them emitted): the
        fast lane took the next message before ending the content, and that failed."""
        self.count = count
        for index in [index for index in self._pending if index >= count]:
            del self._pending[index]

    def reserve(self) -> int:
        """The index of the next message taken from the iterable."""
        self.count += 1
        return self.count - 1

    def __setitem__(self, index: int, outcome: Outcome) -> None:
        pending = self._pending
        try:
            if index == self._next and not pending:  # the common case: in order
                collect = self._collect
                if collect is not None:
                    collect.append(outcome)
                else:
                    self._hand_on(index, outcome)
                self._next = index + 1
                return
            pending[index] = outcome
            while self._next in pending:
                self._hand_on(self._next, pending.pop(self._next))
                self._next += 1
        except BaseException:
            self.failed = True
            raise

    def _hand_on(self, index: int, outcome: Outcome) -> None:
        collect = self._collect
        if collect is not None:
            collect.append(outcome)
        else:
            assert self._emit is not None
            self._emit(index, outcome)

    def settle_rest(self, outcome: Callable[[], Outcome]) -> None:
        """Give every message not settled yet the outcome ``outcome()`` makes."""
        for index in range(self._next, self.count):
            if index not in self._pending:
                self[index] = outcome()

    def finish(self) -> None:
        assert self._next == self.count, "a message was left without an outcome"


def session_ended(error: SMTPError, inflight: deque[Prepared], outcomes: Outcomes) -> None:
    """The session ended with ``error``: the oldest message in flight gets it; one
    after it whose content end was written is ``SMTPDeliveryStatusUnknown`` (unless a
    421 refused it), one that got no content ``SMTPConnectError``; so does a message
    taken from the iterable but not sent."""
    first = True
    for item in inflight:
        outcome: SMTPError = error
        if isinstance(error, SMTPReplyError):
            pass  # a 421: the server refused every one of them
        elif item.ended:
            # Unless ``error`` already says so of this message (``_guard`` names the
            # transaction it saw last: a write's failure may concern a later one).
            if not (first and unknown_for(error, item)):
                outcome = SMTPDeliveryStatusUnknown(
                    f"the session ended before the final reply: {error}",
                    sender=item.mail.sender,
                    recipients=item.rcpts,
                )
        elif not first:
            outcome = SMTPConnectError(f"not delivered, the session ended: {error}")
        outcomes[item.index] = outcome
        first = False
    inflight.clear()
    outcomes.settle_rest(lambda: SMTPConnectError(f"not sent, the session ended: {error}"))


def unknown_for(error: SMTPError, item: Prepared) -> bool:
    """Whether ``error`` is "delivery status unknown" for ``item``'s envelope."""
    return (
        isinstance(error, SMTPDeliveryStatusUnknown)
        and error.sender == item.mail.sender
        and tuple(error.recipients) == item.rcpts
    )
