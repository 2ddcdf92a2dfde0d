"""The connections of the pool, written once (async here; ``sync_pool_core`` is
generated from this file by ``scripts/unasync.py``, docs/design.md §7): what
``async_pool.AsyncPoolBase`` sends over (read that module's header first).

``AsyncPoolCore`` checks the pool's options, keeps the connections per destination and
lends them: at most ``max_connections`` in all and ``max_per_destination`` to one
destination (a caller waits for a free one; an idle connection to another destination
is closed to make room); a connection is recycled (QUIT) after ``max_messages``
messages, at ``max_age`` or when its ``LIMITS MAILMAX`` budget is spent (RFC 9422
§4.1), probed with NOOP or RSET after ``check_idle_after`` seconds idle (RFC 5321
§4.1.1.9) and replaced when the probe fails; the rate limit's window is counted here.
The event-loop primitives (condition variable, clock, sleeping, running rounds at
once) are the concrete pool's. This module imports no event loop.
"""

from __future__ import annotations

import abc
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ..drivers.exceptions import SMTPError
from ..sasl.base import ClientMechanism
from .common import ClientOptions, check_client_options, usage_error
from .pool_support import (
    DEFAULT_CHECK_IDLE_AFTER,
    Destination,
    IdleCheck,
    PoolBatch,
    RateLimit,
    RateWindow,
    check_count,
    check_seconds,
    held_by_caller_code,
)
from .tokens import AsyncTokenSource

if TYPE_CHECKING:  # the concrete pool names its client class: no runtime import
    from typing_extensions import Unpack

    from .async_base import AsyncClientBase

__all__ = ["AsyncPoolCore"]

P = TypeVar("P", bound="AsyncPoolCore")


class _Pooled:
    """One connection of the pool and what the pool knows about it (a plain slotted
    class: a dataclass would cost the adapter's import a millisecond)."""

    __slots__ = ("client", "created", "destination", "last_used", "messages", "owner")

    def __init__(
        self, owner: AsyncPoolCore, client: AsyncClientBase, destination: Destination, now: float
    ) -> None:
        self.owner = owner
        self.client = client
        self.destination = destination
        self.created = now
        self.last_used = now
        self.messages = 0


class AsyncPoolCore(abc.ABC):
    """The connections of a pool: its options, bounds, lending, checks, recycling
    and closing (see the module doc); ``AsyncPoolBase`` adds the sending."""

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
