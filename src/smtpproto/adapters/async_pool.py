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
  (for the recipients not in ``TransactionResult.delivered``), so a retry by the
  caller is safe. A cancellation is no outcome: after the content was written, the
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

The event-loop specifics (the condition variable, the clock, sleeping, the client
class) are the concrete pool's: ``AsyncSMTPPool`` (asyncio), ``TrioSMTPPool`` and the
blocking ``SMTPPool`` (threads). This module imports no event loop.
"""

from __future__ import annotations

import abc
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager
from email.message import Message
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ..client_engine.events import TransactionResult
from ..drivers.batch import DEFAULT_MAX_IN_FLIGHT, BatchItem, Outcome, OutcomeCallback
from ..drivers.envelope import envelope_from_message
from ..drivers.exceptions import SMTPConnectError, SMTPError
from ..drivers.split import transactions_needed
from ..drivers.support import ContentSource, MailOptions
from ..sasl.base import ClientMechanism
from .common import ClientOptions, check_client_options, usage_error
from .pool_support import (
    DEFAULT_CHECK_IDLE_AFTER,
    MAX_FRUITLESS_ROUNDS,
    REORDER_LIMIT,
    Destination,
    IdleCheck,
    Lease,
    PoolBatch,
    RateLimit,
    RateWindow,
    check_count,
    check_seconds,
    held_by_caller_code,
    reusable,
    split_over_count,
)
from .tokens import AsyncTokenSource

if TYPE_CHECKING:  # the concrete pool names its client class: no runtime import
    from typing_extensions import Unpack

    from .async_base import AsyncClientBase

__all__ = ["AsyncPoolBase"]

P = TypeVar("P", bound="AsyncPoolBase")


class _Pooled:
    """One connection of the pool and what the pool knows about it (a plain slotted
    class: a dataclass would cost the adapter's import a millisecond)."""

    __slots__ = ("client", "created", "destination", "last_used", "messages", "owner")

    def __init__(
        self, owner: AsyncPoolBase, client: AsyncClientBase, destination: Destination, now: float
    ) -> None:
        self.owner = owner
        self.client = client
        self.destination = destination
        self.created = now
        self.last_used = now
        self.messages = 0


class AsyncPoolBase(abc.ABC):
    """A bounded pool of client connections; see the module doc and docs/pool.md.

    ``host``/``port`` is the default destination (each call may name another with
    ``destination=(host, port)``). ``username`` with ``password`` or ``token`` (a string
    or a token provider, called for every login) logs each new connection in.
    ``client_options`` (``ClientOptions``) go to the client class (``tls``,
    ``ssl_context``, ``timeout``, ``message_timeout``, ``local_hostname``, ...).
    ``clock`` and ``sleep`` replace the event loop's (tests of the rate limit).
    """

    #: Makes an unconnected client for ``(host, port, **options)`` (the concrete pool's).
    _client_class: Callable[..., AsyncClientBase]

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        max_connections: int = 10,
        max_per_destination: int | None = None,
        max_messages: int = 100,
        max_age: float = 300.0,
        idle_check: IdleCheck | None = "noop",
        check_idle_after: float = DEFAULT_CHECK_IDLE_AFTER,
        rate_limit: RateLimit | None = None,
        username: str | None = None,
        password: str | None = None,
        token: AsyncTokenSource | None = None,
        mechanism: ClientMechanism | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        **client_options: Unpack[ClientOptions],
    ) -> None:
        check_count("max_connections", max_connections)
        if max_per_destination is not None:
            check_count("max_per_destination", max_per_destination)
        check_count("max_messages", max_messages)
        check_seconds("max_age", max_age, allow_inf=True)
        check_seconds("check_idle_after", check_idle_after, allow_zero=True)
        if idle_check not in ("noop", "rset", None):
            raise usage_error(f"idle_check must be 'noop', 'rset' or None, got {idle_check!r}")
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            raise usage_error(f"rate_limit must be a RateLimit, got {rate_limit!r}")
        if (password is not None or token is not None) and username is None:
            raise usage_error("a password or token needs a username")
        if username is not None and password is None and token is None:
            raise usage_error("a username needs a password or token")
        check_client_options(client_options)
        if host is not None:
            self._client_class(host, port, **client_options)  # refuse bad options now
        self._default = None if host is None else (host, port)
        self._max = max_connections
        self._max_per_destination = max_per_destination or max_connections
        self._max_messages = max_messages
        self._max_age = max_age
        self._idle_check = idle_check
        self._check_idle_after = check_idle_after
        self._rate = RateWindow(rate_limit) if rate_limit is not None else None
        self._rate_lock = self._new_lock()
        self._credentials = (username, password, token, mechanism)
        self._options = client_options
        self._now = clock if clock is not None else self._clock
        self._pause = sleep if sleep is not None else self._sleep
        self._cond = self._new_condition()
        self._idle: dict[Destination, deque[_Pooled]] = {}
        self._count: dict[Destination, int] = {}
        self._total = 0
        self._closed = False
        self._waiting = 0  # callers waiting for a connection (``_take``)
        self._batches: set[PoolBatch] = set()  # of the ``send_many`` calls running
        # Connections held by rounds whose caller's code waits for another (``_take``).
        self._stuck: list[_Pooled] = []

    # -- event-loop primitives (the concrete pool) ---------------------------------------

    @abc.abstractmethod
    def _new_condition(self) -> Any:
        """A condition variable of the event loop (``async with``, ``wait``,
        ``notify_all``). Entering it must work in a cancelled task, so that a cancelled
        send still gives its connection back (asyncio's and threading's do; the trio
        pool shields the acquire)."""

    @abc.abstractmethod
    async def _together(self, count: int, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``count`` calls of ``work`` at once and return when all returned
        (``work`` raises nothing but a cancellation): tasks, or threads."""

    def _new_lock(self) -> AbstractContextManager[Any]:
        """A lock taken without waiting on the event loop, around the rate window
        (which ``send_many`` consults from inside the client's driver): the tasks of
        one event loop need none; the blocking pool's threads take a real one."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def _clock(self) -> float:
        """The event loop's clock, in seconds."""

    @abc.abstractmethod
    async def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` on the event loop."""

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
        send may have been delivered). A message that needs more transactions than a
        connection's LIMITS MAILMAX has left goes to a new connection."""
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

    def _destination(self, destination: Destination | None) -> Destination:
        if destination is None:
            if self._default is None:
                raise usage_error("no destination: give the pool a host or pass destination=")
            return self._default
        if (
            not isinstance(destination, tuple)
            or len(destination) != 2
            or not isinstance(destination[0], str)
        ):
            raise usage_error(f"destination must be a (host, port) pair, got {destination!r}")
        return destination

    async def _wait_for_rate(self) -> float | None:
        """Wait until the rate limit lets one more message start (none: at once); the
        start it counted (``_give_back`` uncounts it), None without a rate limit."""
        rate = self._rate
        while rate is not None:
            with self._rate_lock:
                now = self._now()
                delay = rate.delay(now)
            if delay <= 0:
                return now
            await self._pause(delay)
        return None

    def _give_back(self, started: float | None) -> None:
        """Uncount the start ``_wait_for_rate`` counted for a message that then did not
        start (a batch's round that took none: another connection took it, or none
        was left)."""
        if started is not None and self._rate is not None:
            with self._rate_lock:
                self._rate.give_back(started)

    # -- lending connections ----------------------------------------------------------------

    async def _acquire(self, where: Destination) -> _Pooled:
        """A connected, logged-in connection to ``where`` that passed its idle check."""
        while True:
            pooled, stale = await self._take(where)
            await self._dispose_all(stale)
            if pooled is None:
                return await self._open(where)
            try:
                healthy = await self._healthy(pooled)
            except BaseException:  # cancelled mid-probe: the slot must come back
                await self._forget(pooled)
                raise
            if healthy:
                return pooled
            await self._forget(pooled)  # no command of the message was sent: reconnect

    async def _take(self, where: Destination) -> tuple[_Pooled | None, list[_Pooled]]:
        """An idle connection to ``where``, or None with a slot reserved for a new one
        (waiting while neither is possible); and the expired or evicted connections,
        already uncounted, for the caller to close."""
        stale: list[_Pooled] = []
        held = held_by_caller_code()  # a batch's connection, when its caller's code calls
        mine = held if isinstance(held, _Pooled) and held.owner is self else None
        registered = False
        async with self._cond:
            try:
                while True:
                    if self._closed:
                        raise usage_error("the pool is closed")
                    idle = self._idle.get(where)
                    while idle:
                        pooled = idle.pop()  # the most recently used: the warmest
                        if not self._expired(pooled):
                            return pooled, stale
                        self._uncount(pooled.destination)
                        stale.append(pooled)
                    if self._count.get(where, 0) < self._max_per_destination:
                        if self._total >= self._max:
                            victim = self._oldest_idle()
                            if victim is not None:
                                self._uncount(victim.destination)
                                stale.append(victim)
                        if self._total < self._max:
                            self._count[where] = self._count.get(where, 0) + 1
                            self._total += 1
                            return None, stale
                    assert not stale, "a freed slot is always taken"  # none closed late
                    if mine is not None and not registered:
                        self._stuck.append(mine)
                        registered = True
                        self._cond.notify_all()  # the others stuck look again
                    if mine is not None and self._never_freed(where):
                        raise usage_error(_STUCK.format(host=where[0]))
                    self._waiting += 1
                    # Their rounds give way (``PoolBatch``). A copy: another thread's
                    # ``send_many`` may add or remove its batch meanwhile.
                    for batch in tuple(self._batches):
                        batch.wake()
                    try:
                        await self._cond.wait()
                    finally:
                        self._waiting -= 1
            finally:
                if registered:
                    self._stuck.remove(mine)  # type: ignore[arg-type]  # registered: a _Pooled

    def _never_freed(self, where: Destination) -> bool:
        """Whether every connection whose slot could come free for ``where`` (those to
        ``where`` when it has its ``max_per_destination``, else all: the pool is full,
        none idle) is held by a batch's round whose caller's code waits for a
        connection: none is ever given back."""
        stuck = set(self._stuck)
        count = self._count.get(where, 0)
        if count >= self._max_per_destination:
            return sum(pooled.destination == where for pooled in stuck) >= count
        return len(stuck) >= self._total

    def _oldest_idle(self) -> _Pooled | None:
        """Remove and return the idle connection unused the longest, if any."""
        oldest: deque[_Pooled] | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].last_used < oldest[0].last_used):
                oldest = idle
        return oldest.popleft() if oldest is not None else None

    def _uncount(self, where: Destination) -> None:
        self._count[where] -= 1
        self._total -= 1

    def _expired(self, pooled: _Pooled) -> bool:
        return (
            pooled.messages >= self._max_messages
            or self._now() - pooled.created >= self._max_age
            or not _usable(pooled)
            # LIMITS MAILMAX (RFC 9422 §4.1): the session takes no more transactions.
            or pooled.client.session.conn.mail_budget == 0
        )

    async def _open(self, where: Destination) -> _Pooled:
        """Connect and log in a new connection in the slot ``_take`` reserved; the slot
        is given back when that fails."""
        try:
            client = self._client_class(where[0], where[1], **self._options)
        except BaseException:
            await self._free_slot(where)
            raise
        try:
            await client.connect()
            username, password, token, mechanism = self._credentials
            if username is not None:
                await client.login(username, password, token=token, mechanism=mechanism)
        except BaseException:
            await client.aclose()
            await self._free_slot(where)
            raise
        return _Pooled(self, client, where, self._now())

    async def _free_slot(self, where: Destination) -> None:
        async with self._cond:
            self._uncount(where)
            self._cond.notify_all()

    async def _healthy(self, pooled: _Pooled) -> bool:
        """Probe a connection idle for ``check_idle_after`` seconds or more."""
        if self._idle_check is None or self._now() - pooled.last_used < self._check_idle_after:
            return True
        try:
            if self._idle_check == "noop":
                await pooled.client.noop()
            else:
                await pooled.client.rset()
        except SMTPError:
            return False
        return True

    async def _release(self, pooled: _Pooled) -> None:
        """Back to the idle connections when still usable and not expired; else close."""
        pooled.last_used = self._now()
        keep = not self._closed and not self._expired(pooled)
        async with self._cond:
            if keep:
                self._idle.setdefault(pooled.destination, deque()).append(pooled)
            else:
                self._uncount(pooled.destination)
            self._cond.notify_all()
        if not keep:
            await self._dispose(pooled)

    async def _forget(self, pooled: _Pooled) -> None:
        """Drop a connection that failed its check (its slot is free again)."""
        await self._free_slot(pooled.destination)
        await self._dispose(pooled)

    async def _dispose_all(self, stale: list[_Pooled]) -> None:
        """Close connections the pool no longer counts; every one of them, even when
        closing one is cancelled."""
        for index, pooled in enumerate(stale):
            try:
                await self._dispose(pooled)
            except BaseException:
                for rest in stale[index + 1 :]:
                    await rest.client.aclose()
                raise

    async def _dispose(self, pooled: _Pooled) -> None:
        """Close a connection the pool no longer counts: QUIT when the session can take
        it (an error then changes nothing), then close (which works while cancelled: a
        cancelled send leaves a broken session, closed without QUIT)."""
        client = pooled.client
        try:
            if client._session is not None and client.session.can_quit:
                with contextlib.suppress(SMTPError):  # going away: nothing to report
                    await client.quit()
        finally:
            await client.aclose()

    # -- the pool itself ----------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """Connections the pool counts now: idle, lent out or being opened."""
        return self._total

    @property
    def idle_connections(self) -> int:
        """Connections waiting in the pool to be lent."""
        return sum(len(idle) for idle in self._idle.values())

    async def aclose(self) -> None:
        """Close the idle connections (QUIT) and refuse new sends; a connection lent
        out is closed when its send returns."""
        async with self._cond:
            self._closed = True
            stale = [pooled for idle in self._idle.values() for pooled in idle]
            self._idle.clear()
            for pooled in stale:
                self._uncount(pooled.destination)
            self._cond.notify_all()
        await self._dispose_all(stale)

    async def __aenter__(self: P) -> P:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


#: Raised rather than waiting for a connection that is never given back.
_STUCK = (
    "a send to {host} called from send_many's on_outcome or the messages iterable "
    "needs a connection, and every one the pool may use is held by such a call's "
    "batch (its own included) until that code returns: raise max_connections (and "
    "max_per_destination) above send_many's connections, or send after send_many"
)


def _usable(pooled: _Pooled) -> bool:
    """Whether ``pooled``'s session can take another command."""
    return pooled.client._session is not None and pooled.client.session.usable
