"""Test helpers: run the built-in SMTP server in a background thread.

Adapter layer (I/O allowed). ``run_server(**options)`` is a context manager that starts
``smtpproto.server.SMTPServer`` (same options) on its own event loop in a daemon thread
and yields a ``RunningServer``; leaving the block stops the server and joins the
thread, with a timeout on every wait.

The pytest fixture ``smtp_server`` yields a ``RunningServer`` with the defaults
(127.0.0.1, free port, STARTTLS with a self-signed certificate). Enable it with
``pytest_plugins = ["smtpproto.testing"]`` in your ``conftest.py`` (or import the
fixture there: ``from smtpproto.testing import smtp_server``). Example::

    def test_my_mailer(smtp_server):
        send_welcome_mail(host=smtp_server.host, port=smtp_server.port)
        (message,) = smtp_server.wait_for_messages(1)
        assert b"Welcome" in message.data
"""

from __future__ import annotations

import asyncio  # noqa: TID251  (adapter layer: I/O allowed)
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .server import SMTPServer, StoredMessage

__all__ = ["RunningServer", "run_server", "smtp_server"]

#: Seconds to wait for the server thread to start (certificate making included) and stop.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


class RunningServer:
    """A built-in server running in a background thread."""

    def __init__(self, server: SMTPServer, condition: threading.Condition) -> None:
        self._server = server
        self._condition = condition

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def cert_path(self) -> Path | None:
        """The certificate to trust for STARTTLS, or ``None`` when TLS is not offered."""
        return self._server.cert_path

    @property
    def cert_tool(self) -> str | None:
        """What made ``cert_path``: ``"given"``, ``"trustme"``, ``"cryptography"`` or
        ``"openssl"`` (``SMTPPROTO_CERT_TOOL`` forces one); ``None`` without TLS."""
        return self._server.cert_tool

    @property
    def messages(self) -> list[StoredMessage]:
        """A snapshot of the messages stored so far."""
        with self._condition:
            return list(self._server.messages)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts exactly this server's certificate."""
        if self.cert_path is None:
            raise RuntimeError("this server does not offer STARTTLS")
        context = ssl.create_default_context(cafile=str(self.cert_path))
        return context

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[StoredMessage]:
        """Block until ``count`` messages were stored; ``TimeoutError`` after ``timeout``."""
        with self._condition:
            if not self._condition.wait_for(
                lambda: len(self._server.messages) >= count, timeout=timeout
            ):
                have = len(self._server.messages)
                raise TimeoutError(f"{have} of {count} messages after {timeout}s")
            return list(self._server.messages)


def _finish(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@contextmanager
def run_server(**options: Any) -> Iterator[RunningServer]:
    """Run ``SMTPServer(**options)`` in a background thread for the ``with`` block."""
    condition = threading.Condition()
    user_callback = options.pop("on_message", None)

    def on_message(message: StoredMessage) -> None:
        with condition:
            condition.notify_all()
        if user_callback is not None:
            user_callback(message)

    server = SMTPServer(on_message=on_message, **options)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []
    stop: asyncio.Future[None] | None = None

    async def main() -> None:
        nonlocal stop
        stop = loop.create_future()
        try:
            await server.start()
        except BaseException as error:  # reported to the caller's thread below
            failure.append(error)
            started.set()
            return
        started.set()
        try:
            await stop
        finally:
            await server.close()

    thread = threading.Thread(
        target=loop.run_until_complete, args=(main(),), name="smtpproto-server", daemon=True
    )
    thread.start()
    try:
        if not started.wait(START_TIMEOUT):
            raise TimeoutError(f"the server did not start within {START_TIMEOUT}s")
        if failure:
            raise failure[0]
        yield RunningServer(server, condition)
    finally:
        if stop is not None:
            loop.call_soon_threadsafe(_finish, stop)
        thread.join(STOP_TIMEOUT)
        if not thread.is_alive():
            loop.close()


try:
    import pytest
except ImportError:  # pytest is optional: only the fixture needs it
    pass
else:

    @pytest.fixture
    def smtp_server() -> Iterator[RunningServer]:
        """A built-in SMTP server on 127.0.0.1 for the test (STARTTLS offered)."""
        with run_server() as running:
            yield running
