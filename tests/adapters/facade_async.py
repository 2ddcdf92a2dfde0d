"""The synchronous facade (see ``facade.py``) over the asyncio and trio adapters.

Theory of operation
-------------------
``AsyncFacade`` turns every method of ``AsyncSMTPClient``/``TrioSMTPClient`` into a
blocking call with the blocking client's signature. Each call runs on an event loop the
facade owns: asyncio through ``asyncio.Runner`` (a private loop on Python 3.10); trio
through ``trio.run`` in a background thread, entered with ``trio.from_thread.run``. The
loop starts lazily and is shut down as soon as the adapter has closed its transport
(after QUIT, ``close`` or any failure that broke the session), so a test that never
calls ``close`` leaves no loop, thread or socket behind. Every call is bounded by
``CALL_LIMIT`` seconds, so a bug in an adapter fails the test instead of hanging it. A
``sock`` argument (a connected socket) becomes the adapter's own transport type inside
its loop.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping
from email.message import Message
from types import TracebackType
from typing import Any, TypeVar

import trio

from smtpproto.adapters.tls import TLSInfo
from smtpproto.asyncio_client import AsyncSMTPClient
from smtpproto.client_engine.capabilities import Capabilities
from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers.batch import DEFAULT_MAX_IN_FLIGHT, BatchItem, Outcome, OutcomeCallback
from smtpproto.drivers.session import MailOptions, MailStage, OpenStage, Session
from smtpproto.drivers.support import ContentSource, ProgressCallback
from smtpproto.sasl.base import ClientMechanism
from smtpproto.trio_client import TrioSMTPClient
from smtpproto.wire.reply import Reply

__all__ = ["CALL_LIMIT", "AsyncFacade", "asyncio_client", "trio_client"]

#: Seconds any one facade call may take before the test fails (a safety net only: the
#: tests' own timeouts are much shorter).
CALL_LIMIT = 60.0
R = TypeVar("R")
Call = Callable[[], Coroutine[Any, Any, Any]]


async def _guarded(call: Call) -> tuple[bool, Any]:
    """``(True, await call())`` bounded by ``CALL_LIMIT``, or ``(False, exc)`` for a
    ``KeyboardInterrupt``/``SystemExit`` it raised, which ``run`` raises again outside
    the loop: asyncio lets those two leave the loop from inside a task, which keeps
    them, unretrieved ("Task exception was never retrieved" logged when collected,
    later, in another test). ``call()`` runs in this very task (``wait_for`` gives it
    a task of its own before 3.12), so they arrive here as from any other await."""
    task = asyncio.current_task()
    assert task is not None
    expired: list[bool] = []

    def expire() -> None:
        expired.append(True)
        task.cancel()

    timer = asyncio.get_running_loop().call_later(CALL_LIMIT, expire)
    try:
        return True, await call()
    except (KeyboardInterrupt, SystemExit) as exc:
        return False, exc
    except asyncio.CancelledError:
        if expired:
            raise asyncio.TimeoutError(f"a facade call took more than {CALL_LIMIT} s") from None
        raise
    finally:
        timer.cancel()


class _AsyncioLoop:
    """An ``asyncio.Runner`` that runs one coroutine per call, bounded. Python 3.10 has
    no Runner: a private loop runs each call with ``run_until_complete`` instead."""

    def __init__(self) -> None:
        self._runner: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        if sys.version_info >= (3, 11):
            self._runner = asyncio.Runner()
        else:
            self._loop = asyncio.new_event_loop()

    def run(self, call: Call) -> Any:
        guarded = _guarded(call)
        if self._loop is None:
            returned, value = self._runner.run(guarded)
        else:
            returned, value = self._loop.run_until_complete(guarded)
        if not returned:
            raise value
        return value

    def close(self) -> None:
        if self._loop is None:
            self._runner.close()
            return
        # What Runner.close does: finish what is left, then close the loop.
        loop, self._loop = self._loop, None
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:  # gather() of nothing would look for a current loop
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


class _TrioLoop:
    """``trio.run`` in a daemon thread; calls enter it with ``trio.from_thread.run``."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self._thread.start()
        if not self._ready.wait(CALL_LIMIT):
            raise RuntimeError("the trio thread did not start")

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        self._ready.set()
        await self._stop.wait()

    @staticmethod
    async def _bounded(call: Call) -> Any:
        with trio.fail_after(CALL_LIMIT):
            return await call()

    def run(self, call: Call) -> Any:
        return trio.from_thread.run(self._bounded, call, trio_token=self._token)

    def close(self) -> None:
        assert self._stop is not None
        trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(CALL_LIMIT)


class AsyncFacade:
    """A blocking-style client over an async adapter (``SyncClient`` in ``facade``)."""

    def __init__(
        self,
        make_loop: Callable[[], _AsyncioLoop | _TrioLoop],
        make_client: Callable[[], AsyncSMTPClient | TrioSMTPClient],
    ) -> None:
        self._make_loop = make_loop
        self._loop: _AsyncioLoop | _TrioLoop | None = None
        self._client: AsyncSMTPClient | TrioSMTPClient | None = None
        self._make_client = make_client

    def _call(self, method: Callable[..., Coroutine[Any, Any, R]], *args: Any, **kw: Any) -> R:
        if self._loop is None:
            self._loop = self._make_loop()
        try:
            result: R = self._loop.run(lambda: method(*args, **kw))
            return result
        finally:
            if self._transport_closed():
                self._shutdown()

    def _transport_closed(self) -> bool:
        client = self._client
        if client is None:
            return False
        if isinstance(client, AsyncSMTPClient):
            return client._channel is None  # the facade may look inside: it is test code
        return client._stream is None

    def _shutdown(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.close()

    @property
    def client(self) -> AsyncSMTPClient | TrioSMTPClient:
        """The adapter's client (made inside the loop, since trio streams need one)."""
        if self._client is None:
            if self._loop is None:
                self._loop = self._make_loop()
            self._client = self._loop.run(self._create)
        return self._client

    async def _create(self) -> AsyncSMTPClient | TrioSMTPClient:
        return self._make_client()

    # -- the SyncClient interface ----------------------------------------------------------

    def connect(self, until: OpenStage | None = None) -> Reply:
        return self._call(self.client.connect, until)

    def close(self) -> None:
        if self._client is not None and not self._transport_closed():
            self._call(self._client.aclose)
        self._shutdown()

    def __enter__(self) -> AsyncFacade:
        self._call(self.client.__aenter__)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._client is not None and not self._transport_closed():
                self._call(self._client.__aexit__, exc_type, exc, tb)
        finally:
            self._shutdown()

    def login(
        self,
        username: str,
        password: str | None = None,
        *,
        token: str | None = None,
        mechanism: ClientMechanism | None = None,
    ) -> Reply:
        return self._call(self.client.login, username, password, token=token, mechanism=mechanism)

    def sendmail(
        self,
        sender: str,
        recipients: str | Iterable[str],
        content: ContentSource,
        *,
        options: MailOptions | None = None,
        pipelining: bool | None = None,
        chunking: bool | None = None,
        progress: ProgressCallback | None = None,
        stop_after: MailStage | None = None,
        drop: bool = False,
        raw: bool = False,
    ) -> TransactionResult:
        return self._call(
            self.client.sendmail,
            sender,
            recipients,
            content,
            options=options,
            pipelining=pipelining,
            chunking=chunking,
            progress=progress,
            stop_after=stop_after,
            drop=drop,
            raw=raw,
        )

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
    ) -> TransactionResult:
        return self._call(
            self.client.send_message,
            msg,
            sender=sender,
            recipients=recipients,
            options=options,
            pipelining=pipelining,
            chunking=chunking,
            progress=progress,
        )

    def send_many(
        self,
        messages: Iterable[BatchItem],
        *,
        options: MailOptions | None = None,
        pipelining: bool | None = None,
        chunking: bool | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        on_outcome: OutcomeCallback | None = None,
    ) -> list[Outcome]:
        return self._call(
            self.client.send_many,
            messages,
            options=options,
            pipelining=pipelining,
            chunking=chunking,
            max_in_flight=max_in_flight,
            on_outcome=on_outcome,
        )

    def noop(self) -> Reply:
        return self._call(self.client.noop)

    def rset(self) -> Reply:
        return self._call(self.client.rset)

    def vrfy(self, address: str) -> Reply:
        return self._call(self.client.vrfy, address)

    def xclient(self, attributes: Mapping[str, str], *, require_advertised: bool = True) -> Reply:
        return self._call(self.client.xclient, attributes, require_advertised=require_advertised)

    def starttls(self) -> Reply:
        return self._call(self.client.starttls)

    def xforward(self, attributes: Mapping[str, str]) -> Reply:
        return self._call(self.client.xforward, attributes)

    def quit(self) -> Reply:
        return self._call(self.client.quit)

    @property
    def capabilities(self) -> Capabilities | None:
        return self.client.capabilities

    @property
    def session(self) -> Session:
        return self.client.session

    @property
    def tls_info(self) -> TLSInfo | None:
        return self.client.tls_info

    def __del__(self) -> None:
        self._shutdown()


def asyncio_client(*, sock: socket.socket | None = None, **kwargs: Any) -> AsyncFacade:
    """``AsyncSMTPClient`` behind the facade; ``sock`` is passed through."""
    return AsyncFacade(_AsyncioLoop, lambda: AsyncSMTPClient(sock=sock, **kwargs))


def trio_client(*, sock: socket.socket | None = None, **kwargs: Any) -> AsyncFacade:
    """``TrioSMTPClient`` behind the facade; ``sock`` becomes a ``trio.SocketStream``."""

    def make() -> TrioSMTPClient:
        if sock is None:
            return TrioSMTPClient(**kwargs)
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        return TrioSMTPClient(stream=stream, **kwargs)

    return AsyncFacade(_TrioLoop, make)
