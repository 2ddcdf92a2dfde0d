"""Whatever a caller's hook raises reaches the caller's call, as itself, and leaves the
client closed — wherever the adapter happens to run the hook.

The hooks (``on_outcome``, the config's ``transcript``, ``progress``) run inside the
session driver, and the adapters run the driver in places other than the caller's own
stack frame: the asyncio client from the transport's data callback (``_Pump``; its reads
past the loop are turned off here, so that the replies come through that callback), the trio
client in a nursery beside a read-ahead task (a burst of writes past the unread
window). An exception raised there — ``KeyboardInterrupt``, ``SystemExit``, any
``BaseException``, or an ordinary error — must not escape into the event loop (where
asyncio logs it as a fatal transport error and lets ``KeyboardInterrupt`` out of the
loop, and trio wraps it in an ``ExceptionGroup``): the awaiting call raises exactly that
object, the transport is dropped and the client refuses to be used again. Each hook
raises the first time it is called in the place under test (``_IN_PLACE``), so a test
fails if that place is never reached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio

from smtpproto.adapters import asyncio_channel
from smtpproto.asyncio_client import AsyncSMTPClient
from smtpproto.blocking import SMTPClient
from smtpproto.client_engine.config import ClientConfig
from smtpproto.drivers.batch import BatchItem
from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import RunningServer, run_server
from smtpproto.trio_client import TrioSMTPClient

#: Real seconds an operation may take before the test fails.
BOUND = 30.0
#: Past the adapters' unread window (16 KiB): trio writes it beside its read-ahead task.
BODY = b"Subject: hooks\r\n\r\n" + (b"h" * 78 + b"\r\n") * 1024
COUNT = 8


class HookStop(BaseException):
    """Neither ``Exception`` nor one of the interpreter's own (``KeyboardInterrupt``)."""


KINDS: list[type[BaseException]] = [RuntimeError, HookStop, KeyboardInterrupt, SystemExit]
HOOKS = ["on_outcome", "transcript", "progress"]


def _from_a_transport_callback() -> bool:
    return asyncio.current_task() is None


def _beside_the_read_ahead_task() -> bool:
    return bool(trio.lowlevel.current_task().child_nurseries)


#: Where a hook must be raising for the test to exercise what it is about, per adapter
#: and hook; elsewhere, the first call raises.
_IN_PLACE: dict[tuple[str, str], Callable[[], bool]] = {
    ("asyncio", "on_outcome"): _from_a_transport_callback,
    ("asyncio", "transcript"): _from_a_transport_callback,
    ("asyncio", "progress"): _from_a_transport_callback,
    ("trio", "progress"): _beside_the_read_ahead_task,
}


class Hook:
    """Once ``armed``, raises ``kind`` the first time it is called where ``in_place``
    says, once."""

    def __init__(self, kind: type[BaseException], in_place: Callable[[], bool]) -> None:
        self.kind = kind
        self.in_place = in_place
        self.armed = False
        self.raised: BaseException | None = None

    def __call__(self, *args: object) -> None:
        if self.armed and self.raised is None and self.in_place():
            self.raised = self.kind("raised by the caller's hook")
            raise self.raised


def _items() -> Iterator[BatchItem]:
    for index in range(COUNT):
        yield f"s{index}@example.org", ["r@example.org"], BODY


Client = SMTPClient | AsyncSMTPClient | TrioSMTPClient


def _client(adapter: str, server: RunningServer, hook_name: str, hook: Hook) -> Client:
    config = ClientConfig(transcript=hook) if hook_name == "transcript" else None
    kinds: dict[str, type[Client]] = {
        "blocking": SMTPClient,
        "asyncio": AsyncSMTPClient,
        "trio": TrioSMTPClient,
    }
    return kinds[adapter](server.host, server.port, tls="none", timeout=10, config=config)


def _operation(client: Any, hook_name: str, hook: Hook) -> Any:
    """The call that runs ``hook`` (a coroutine for the async clients), armed."""
    hook.armed = True
    if hook_name == "progress":
        return client.sendmail("a@example.org", ["r@example.org"], BODY, progress=hook)
    if hook_name == "on_outcome":
        return client.send_many(_items(), chunking=False, on_outcome=hook)
    return client.send_many(_items(), chunking=False)


def _closed(adapter: str, client: Any) -> bool:
    if adapter == "asyncio":
        return client._channel is None
    if adapter == "trio":
        return client._stream is None and client._sock is None
    return client._sock is None


def _run_asyncio(main: Callable[[], Any]) -> list[dict[str, Any]]:
    """Run ``main`` on a fresh loop; return what reached the loop's exception handler."""
    reported: list[dict[str, Any]] = []

    async def bounded() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: reported.append(context))
        await asyncio.wait_for(main(), BOUND)

    asyncio.run(bounded())
    return reported


def _run_trio(main: Callable[[], Any]) -> None:
    async def bounded() -> None:
        with trio.fail_after(BOUND):
            await main()

    trio.run(bounded)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_server(starttls=False, keep_messages=False) as running:
        yield running


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.__name__)
@pytest.mark.parametrize("hook_name", HOOKS)
@pytest.mark.parametrize("adapter", ["blocking", "asyncio", "trio"])
def test_what_a_hook_raises_reaches_the_caller_and_closes_the_client(
    adapter: str,
    hook_name: str,
    kind: type[BaseException],
    server: RunningServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(asyncio_channel, "READS_PER_PASS", 0)  # every reply from the loop
    hook = Hook(kind, _IN_PLACE.get((adapter, hook_name), lambda: True))
    client = _client(adapter, server, hook_name, hook)
    caught: list[BaseException] = []
    broken: list[SMTPProtocolError] = []

    async def main() -> None:
        assert not isinstance(client, SMTPClient)
        await client.connect()
        try:
            await _operation(client, hook_name, hook)
        except BaseException as exc:  # what the caller gets, checked below
            caught.append(exc)
        try:
            await client.noop()
        except SMTPProtocolError as exc:
            broken.append(exc)
        await client.aclose()

    reported: list[dict[str, Any]] = []
    try:
        if adapter == "asyncio":
            reported = _run_asyncio(main)
        elif adapter == "trio":
            _run_trio(main)
        else:
            assert isinstance(client, SMTPClient)
            client.connect()
            try:
                _operation(client, hook_name, hook)
            except BaseException as exc:
                caught.append(exc)
            try:
                client.noop()
            except SMTPProtocolError as exc:
                broken.append(exc)
            client.close()
    except BaseException as escaped:  # a KeyboardInterrupt must not end pytest's run
        pytest.fail(f"escaped the event loop instead of reaching the call: {escaped!r}")
    assert hook.raised is not None, "the hook never ran where the test needs it"
    assert caught == [hook.raised]  # the very object, not wrapped, not replaced
    assert not client.session.usable and _closed(adapter, client)
    assert len(broken) == 1 and "broken" in str(broken[0])
    assert reported == []  # nothing went to asyncio's exception handler
