"""A blocking face over the three connection pools, for the pool tests: ``PoolFacade``
drives ``SMTPPool``, ``AsyncSMTPPool`` or ``TrioSMTPPool`` with blocking calls (the
async pools on a loop it owns, as ``facade_async`` does for the clients), and the
``make_pool`` fixture makes one of the adapter under test and closes it afterwards;
``FakeClock`` is an injectable clock whose sleep only moves it forward."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio

from smtpproto.asyncio_client import AsyncSMTPPool
from smtpproto.blocking import RateLimit, SMTPPool
from smtpproto.exceptions import SMTPError
from smtpproto.trio_client import TrioSMTPPool

from .facade_async import _AsyncioLoop, _TrioLoop
from .pool_server import FlakyServer

MESSAGE = b"Subject: pooled\r\n\r\nbody\r\n"
POOLS: dict[str, Any] = {"blocking": SMTPPool, "asyncio": AsyncSMTPPool, "trio": TrioSMTPPool}


class PoolFacade:
    """One pool of the adapter under test, driven with blocking calls (async pools run
    on a loop this facade owns, as ``facade_async`` does for the clients)."""

    def __init__(self, adapter: str, **options: Any) -> None:
        self.adapter = adapter
        self._closed = False
        self._loop: _AsyncioLoop | _TrioLoop | None = None
        cls = POOLS[adapter]
        if adapter == "blocking":
            self.pool = cls(**options)
            return
        self._loop = _AsyncioLoop() if adapter == "asyncio" else _TrioLoop()

        async def make() -> Any:
            return cls(**options)

        try:
            self.pool = self._loop.run(make)
        except BaseException:
            self._loop.close()
            raise

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.pool, name)
        if self._loop is None:
            return method(*args, **kwargs)
        return self._loop.run(lambda: method(*args, **kwargs))

    def call_async(self, make: Callable[[], Any]) -> Any:
        """Run the coroutine ``make()`` on this async pool's loop; its result."""
        assert self._loop is not None, "the blocking pool has no loop"
        return self._loop.run(make)

    def send(self, **kwargs: Any) -> Any:
        return self.call("sendmail", "a@example.org", ["b@example.org"], MESSAGE, **kwargs)

    def send_many_at_once(self, count: int, **kwargs: Any) -> list[Any]:
        """``count`` sends started together; each one's result or exception."""
        args = ("a@example.org", ["b@example.org"], MESSAGE)
        pool = self.pool
        if self._loop is None:
            with concurrent.futures.ThreadPoolExecutor(count) as executor:
                futures = [executor.submit(pool.sendmail, *args, **kwargs) for _ in range(count)]
                return [future.exception() or future.result() for future in futures]
        if self.adapter == "asyncio":

            async def gather() -> list[Any]:
                calls = [pool.sendmail(*args, **kwargs) for _ in range(count)]
                return list(await asyncio.gather(*calls, return_exceptions=True))

            return list(self._loop.run(gather))

        async def nursery() -> list[Any]:
            results: list[Any] = [None] * count

            async def one(index: int) -> None:
                try:
                    results[index] = await pool.sendmail(*args, **kwargs)
                except SMTPError as error:
                    results[index] = error

            async with trio.open_nursery() as tasks:
                for index in range(count):
                    tasks.start_soon(one, index)
            return results

        return list(self._loop.run(nursery))

    def close(self) -> None:
        """Close the pool and stop its loop (again: nothing)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._loop is None:
                self.pool.close()
            else:
                self._loop.run(self.pool.aclose)
        finally:
            if self._loop is not None:
                self._loop.close()


@pytest.fixture
def make_pool(adapter: str) -> Iterator[Callable[..., PoolFacade]]:
    made: list[PoolFacade] = []

    def make(server: FlakyServer | None = None, **options: Any) -> PoolFacade:
        if server is not None:
            options.setdefault("host", "127.0.0.1")
            options.setdefault("port", server.port)
        options.setdefault("tls", "none")
        options.setdefault("timeout", 5)
        facade = PoolFacade(adapter, **options)
        made.append(facade)
        return facade

    yield make
    for facade in made:
        facade.close()


class FakeClock:
    """An injected clock; its ``sleep`` only moves it forward (and records the wait)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def _record(self, seconds: float) -> None:
        assert 0 < seconds < 3600 and len(self.slept) < 100, seconds
        self.slept.append(seconds)
        self.now += seconds

    def rate_limited(self, adapter: str, messages: int, per: float) -> dict[str, Any]:
        """A pool's options for ``RateLimit(messages, per)`` timed by this clock."""
        return {
            "rate_limit": RateLimit(messages, per),
            "clock": self,
            "sleep": self.sleep_for(adapter),
        }

    def sleep_for(self, adapter: str) -> Callable[[float], Any]:
        if adapter == "blocking":
            return self._record

        async def sleep(seconds: float) -> None:
            self._record(seconds)

        return sleep
