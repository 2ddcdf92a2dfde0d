"""A connection pool that never sends a message twice, written once: async here for
the asyncio and trio pools; ``sync_pool`` (the blocking pool's) is generated from this
file by ``scripts/unasync.py`` (docs/design.md §7). docs/pool.md states the guarantee.

Theory of operation
-------------------
``AsyncPoolBase`` keeps connected, logged-in clients per destination (``(host,
port)``) and lends one to each ``sendmail``/``send_message``:

* **Bounded**: at most ``max_connections`` connections in all (idle, busy or being
  opened) and ``max_per_destination`` to one destination; a caller waits for a free
  one. When the pool is full, an idle connection to another destination is closed to
  make room.
* **Recycled**: a connection that carried ``max_messages`` messages, is older than
  ``max_age`` seconds, or whose session the server's ``LIMITS MAILMAX`` allows no more
  transactions (RFC 9422 §4.1) is closed with QUIT instead of being lent again.
* **Checked before use**: a connection idle for ``check_idle_after`` seconds or more is
  probed with NOOP (or RSET) first. If the probe fails (the server closed it while
  idle, answered 421, timed out) it is dropped and another connection is opened. This is
  the only retry the pool makes, and it happens before any command of the message was
  sent (RFC 5321 §4.1.1.9: NOOP has no effect on the transaction state).
* **Never resent**: once ``sendmail`` started on a connection, its outcome is the
  caller's, whatever it is. A lost connection after the final dot (or BDAT LAST) is
  ``SMTPDeliveryStatusUnknown`` (RFC 1047: the server may have the message), raised as
  is and never retried; any other ``SMTPError`` means the message was not accepted
  (for the recipients not in ``TransactionResult.delivered``, nor, for a message
  split over the server's recipient limit, in the error's ``partial_result``), so a
  retry by the caller is safe. A cancellation is no outcome: after the content was written, the
  message may have been delivered. The connection goes back to the pool only when its
  session is still usable.
* **Rate limited** (optional): ``RateLimit(messages, per)`` lets at most ``messages``
  messages start in any ``per`` seconds; the others wait.
* **MAILMAX-aware**: a message that RCPTMAX splits into more transactions than a
  connection's ``LIMITS MAILMAX`` budget has left (RFC 9422 §4.1, §4.2) goes to a new
  connection (the used one is closed, its slot reused) instead of being refused.
* **Batches**: ``send_many`` runs the client's pipelined ``send_many`` over lent
  connections (``pool_support``: rounds of a ``Lease``), moving the rest of the batch
  to a fresh connection when one reaches its MAILMAX budget, its ``max_messages``,
  its age or the rate limit, or ends; a message the client took is never sent again.
  ``connections=N`` runs N rounds at once (``_together``: tasks, or threads), each
  taking the batch's next messages, the outcomes reported in the caller's order.

The connections themselves — the options, the bounds, lending, the idle checks,
recycling, the rate window, closing — are ``async_pool_core.AsyncPoolCore``'s, which
``AsyncPoolBase`` extends with the sending (``sendmail``, ``send_message``,
``send_many``). The event-loop specifics (the condition variable, the clock, sleeping,
the client class) are the concrete pool's: ``AsyncSMTPPool`` (asyncio), ``TrioSMTPPool`` and the
blocking ``SMTPPool`` (threads). This module imports no event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from email.message import Message
from typing import TYPE_CHECKING

from ..client_engine.events import TransactionResult
from ..drivers.batch import DEFAULT_MAX_IN_FLIGHT, BatchItem, Outcome, OutcomeCallback
from ..drivers.envelope import envelope_from_message
from ..drivers.exceptions import SMTPConnectError, SMTPError
from ..drivers.split import transactions_needed
from ..drivers.support import ContentSource, MailOptions
from .async_pool_core import AsyncPoolCore, _Pooled, _usable

# isort: split
# (a block of its own: in the generated sync_pool, sync_pool_core sorts after these)
from .common import usage_error
from .pool_support import (
    MAX_FRUITLESS_ROUNDS,
    REORDER_LIMIT,
    Destination,
    Lease,
    PoolBatch,
    reusable,
    split_over_count,
)

if TYPE_CHECKING:  # the concrete pool names its client class: no runtime import
    from .async_base import AsyncClientBase

__all__ = ["AsyncPoolBase"]


class AsyncPoolBase(AsyncPoolCore):
    """A bounded pool of client connections; see the module doc and docs/pool.md.

    ``host``/``port`` is the default destination (each call may name another with
    ``destination=(host, port)``). ``username`` with ``password`` or ``token`` (a string
    or a token provider, called for every login) logs each new connection in.
    ``client_options`` (``ClientOptions``) go to the client class (``tls``,
    ``ssl_context``, ``timeout``, ``message_timeout``, ``local_hostname``, ...).
    ``clock`` and ``sleep`` replace the event loop's (tests of the rate limit).
    """

    # -- sending --------------------------------------------------------------------------

    async def sendmail(
        self,
        sender: str,
        recipients: str | Iterable[str],
        content: ContentSource,
        *,
        destination: Destination | None = None,
        options: MailOptions | None = None,
        pipelining: bool | None = None,
        chunking: bool | None = None,
    ) -> TransactionResult:
        """Send one message over a pooled connection (see the client's ``sendmail``).
        ``SMTPDeliveryStatusUnknown``: the message may have been delivered, never
        resent; any other ``SMTPError``: not accepted, a retry is safe (a cancelled
        send may have been delivered), except to the recipients its ``partial_result``
        delivered (a message split over the server's recipient limit). A message that
        needs more transactions than a connection's LIMITS MAILMAX has left goes to a
        new connection."""
        recipients = reusable(recipients)

        async def send(client: AsyncClientBase) -> TransactionResult:
            return await client.sendmail(
                sender,
                recipients,
                content,
                options=options,
                pipelining=pipelining,
                chunking=chunking,
            )

        return await self._send(destination, send, lambda: split_over_count(recipients, options))

    async def send_message(
        self,
        msg: Message,
        *,
        destination: Destination | None = None,
        sender: str | None = None,
        recipients: str | Iterable[str] | None = None,
        options: MailOptions | None = None,
        pipelining: bool | None = None,
        chunking: bool | None = None,
    ) -> TransactionResult:
        """Send an ``email.message`` message over a pooled connection (see
        ``sendmail`` for what its exceptions mean)."""
        if recipients is not None:
            recipients = reusable(recipients)

        def split_over() -> int:
            try:
                envelope = envelope_from_message(msg, sender=sender, recipients=recipients)
            except Exception:  # the client refuses it (before MAIL) and says why
                return 1
            return split_over_count(envelope.recipients, options)

        async def send(client: AsyncClientBase) -> TransactionResult:
            return await client.send_message(
                msg,
                sender=sender,
                recipients=recipients,
                options=options,
                pipelining=pipelining,
                chunking=chunking,
            )

        return await self._send(destination, send, split_over)

    async def _send(
        self,
        destination: Destination | None,
        send: Callable[[AsyncClientBase], Awaitable[TransactionResult]],
        split_over: Callable[[], int],
    ) -> TransactionResult:
        """``send`` over a lent connection; ``split_over()``: the recipients its
        message is split over under RCPTMAX (1: no split)."""
        where = self._destination(destination)
        await self._wait_for_rate()
        pooled = await self._acquire(where)
        if self._short_of_budget(pooled, split_over):
            pooled = await self._replace(pooled)
        try:
            return await send(pooled.client)
        finally:
            pooled.messages += 1
            await self._release(pooled)

    def _short_of_budget(self, pooled: _Pooled, split_over: Callable[[], int]) -> bool:
        """Whether the message needs more transactions (LIMITS RCPTMAX, RFC 9422 §4.2)
        than ``pooled``'s session has left under LIMITS MAILMAX (§4.1), which a new
        connection would have (a new connection short of it too is the client's to
        refuse: the pool never loops)."""
        conn = pooled.client.session.conn
        budget, caps = conn.mail_budget, conn.capabilities
        if budget is None or caps is None:
            return False
        limits = caps.limits
        if limits.rcptmax is None or budget == limits.mailmax:  # nothing to split, or new
            return False
        return transactions_needed(split_over(), limits.rcptmax) > budget

    async def _replace(self, pooled: _Pooled) -> _Pooled:
        """Close ``pooled`` (QUIT) and open a new connection in its slot."""
        try:
            await self._dispose(pooled)
        except BaseException:
            await self._free_slot(pooled.destination)
            raise
        return await self._open(pooled.destination)

    async def send_many(
        self,
        messages: Iterable[BatchItem],
        *,
        destination: Destination | None = None,
        options: MailOptions | None = None,
        pipelining: bool | None = None,
        chunking: bool | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        connections: int = 1,
        on_outcome: OutcomeCallback | None = None,
    ) -> list[Outcome]:
        """Send many messages to one destination over pooled connections, with the
        client's ``send_many`` (one round trip per message with PIPELINING): one
        ``TransactionResult`` or ``SMTPError`` per message, in order, or each given to
        ``on_outcome(index, outcome)``, in order, as soon as it and those before it
        are known (the list is then empty and memory flat however long
        ``messages``, which is read lazily).

        ``connections`` (at most ``max_per_destination``) connections work on the
        batch at once (tasks; the blocking pool's threads, which then call
        ``messages`` and ``on_outcome``, one at a time). When a connection reaches
        the server's LIMITS MAILMAX (RFC 9422 §4.1), the pool's ``max_messages`` or
        ``max_age``, or the rate limit asks to wait, the client finishes what it took
        and the rest goes to another connection; so does it when the connection ends
        (a 421, a drop: the messages the client had taken get their outcomes,
        ``SMTPDeliveryStatusUnknown`` for one whose content end was sent; none is ever
        sent twice). When no connection can be opened (and none is at work on the
        batch), the next message gets that error and the rest is not read (a shorter
        list); so after ``MAX_FRUITLESS_ROUNDS`` connections in a row that delivered
        nothing and took no message or ended. An ``Exception`` raised by
        ``messages`` stops the batch once what was taken is finished:
        ``SMTPBatchInterrupted`` (its ``outcomes``).

        ``messages`` and ``on_outcome`` run outside the pool's locks and may use the
        pool (a bounce sent from ``on_outcome``), but while the round that calls them
        keeps its connection: a send they make gets an idle or new connection, or one
        another round of the batch gives back (a round that would wait for them does,
        when someone waits for a connection). When every connection it could get is
        held by a batch whose ``messages``/``on_outcome`` waits like this (its own
        included: ``max_connections=1``), it raises ``SMTPProtocolError`` instead of
        waiting forever. Code they wait for in another thread (a queue it fills)
        cannot be told apart: give the pool a connection more than ``connections``.
        The asyncio and trio pools call them in the event loop: they cannot wait, but
        may start a task that uses the pool."""
        where = self._destination(destination)
        if self._closed:  # as ``_take`` would say, before the iterable is read
            raise usage_error("the pool is closed")
        if type(max_in_flight) is not int or max_in_flight < 1:
            raise usage_error("max_in_flight must be a positive int")
        if type(connections) is not int or connections < 1:
            raise usage_error("connections must be a positive int")
        if on_outcome is not None and not callable(on_outcome):
            raise usage_error("on_outcome must be a callable or None")
        try:
            items = iter(messages)
        except TypeError:
            raise usage_error(
                f"send_many needs an iterable of messages, got {type(messages).__name__}"
            ) from None
        workers = min(connections, self._max_per_destination)
        limit = max(REORDER_LIMIT, 4 * workers * max_in_flight)
        batch = PoolBatch(items, on_outcome, self._new_lock(), limit, self._wanted)

        async def send(client: AsyncClientBase, lease: Lease) -> None:
            await client.send_many(
                lease,
                options=options,
                pipelining=pipelining,
                chunking=chunking,
                max_in_flight=max_in_flight,
                on_outcome=lease.report,
            )

        self._batches.add(batch)
        try:
            if workers == 1:
                await self._rounds(batch, where, send)
            else:
                batch.workers = workers

                async def work() -> None:
                    try:
                        await self._rounds(batch, where, send)
                    except BaseException as error:  # the batch ends with it, once all stopped
                        batch.abandon(error)
                        if not isinstance(error, Exception):  # a cancellation: at once
                            raise

                try:
                    await self._together(workers, work)
                except BaseException as error:
                    # An interrupt while the rounds run (Ctrl-C in the blocking pool's
                    # join): they take no more messages.
                    batch.abandon(error)
                    raise
        finally:
            self._batches.discard(batch)
        return batch.finish()

    def _wanted(self) -> bool:
        """Whether a caller waits for a connection (a batch's round waiting for the
        caller's code to end gives its connection back then: ``PoolBatch``)."""
        return self._waiting > 0

    async def _rounds(
        self,
        batch: PoolBatch,
        where: Destination,
        send: Callable[[AsyncClientBase, Lease], Awaitable[None]],
    ) -> None:
        """Lend a connection and ``send`` the batch's next messages over it, again
        until the batch ends (or, another connection at work on it, this one has
        nothing to do or cannot be opened)."""
        fruitless = 0
        while batch.peek():
            if batch.ahead and batch.leave():  # far ahead of another: leave it the rest
                return
            started = await self._wait_for_rate()
            try:
                pooled = await self._acquire(where)
            except SMTPError as error:  # nothing of the held message was sent
                self._give_back(started)
                if not batch.leave():
                    batch.stop(error)
                return
            lease = Lease(batch, self._room(pooled), pooled)
            try:
                await send(pooled.client, lease)
            except SMTPError as error:
                if batch.failed or lease.taken:  # the caller's on_outcome raised it
                    raise
                if _usable(pooled):  # this call refused by this server: on any connection
                    batch.stop(error)
            finally:
                usable = _usable(pooled)
                pooled.messages += lease.taken
                await self._release(pooled)
            if not lease.taken:  # the start counted for its first message did not happen
                self._give_back(started)
            if lease.delivered or (lease.taken and usable):
                fruitless = 0
            elif not batch.ended and not lease.gave_way:
                fruitless += 1
                if fruitless >= MAX_FRUITLESS_ROUNDS:
                    batch.stop(
                        SMTPConnectError(
                            f"not sent: {fruitless} connections in a row to {where[0]} "
                            "delivered nothing and took no message or ended; the batch "
                            "stopped here"
                        )
                    )

    def _room(self, pooled: _Pooled) -> Callable[[int], bool]:
        """Whether ``pooled`` may take one more message of a batch, having taken
        ``taken`` in this round: its ``max_messages``, its age, the server's LIMITS
        MAILMAX budget (RFC 9422 §4.1), and the rate limit (the round's first message
        already waited for it)."""
        left = self._max_messages - pooled.messages
        conn = pooled.client.session.conn
        born = pooled.created
        rate = self._rate

        def may_take(taken: int) -> bool:
            if taken >= left or conn.mail_budget == 0 or self._now() - born >= self._max_age:
                return False
            if not taken or rate is None:
                return True
            with self._rate_lock:
                return rate.delay(self._now()) <= 0

        return may_take
