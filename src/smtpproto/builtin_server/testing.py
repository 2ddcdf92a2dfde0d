"""Test helpers: run the built-in SMTP server in a background thread.

Adapter layer (I/O allowed). ``run_server(...)`` is a context manager that starts
``smtpproto.server.SMTPServer`` (the same keyword options, typed, so that mypy catches a
misspelt one) on its own event loop in a daemon thread and yields a ``RunningServer``;
leaving the block stops the server and joins the thread, with a timeout on every wait.
``rules=[Rule(...)]`` makes the server fail on purpose (``rules.py``)::

    from smtpproto.testing import Respond, Rule, run_server

    with run_server(rules=[Rule(stage="rcpt", recipient="bob@example.org",
                                action=Respond(550, "No such user", "5.1.1"))]) as server:
        ...  # a RCPT TO:<bob@example.org> now gets 550 5.1.1

The pytest fixtures (``pytest_plugin.py``, registered by the ``pytest11`` entry point)
build on it: ``smtp_server`` yields a ``RunningServer`` with the defaults (127.0.0.1,
free port, STARTTLS with a self-signed certificate). Example::

    def test_my_mailer(smtp_server):
        send_welcome_mail(host=smtp_server.host, port=smtp_server.port)
        (message,) = smtp_server.wait_for_messages(1)
        assert b"Welcome" in message.data
"""

from __future__ import annotations

import asyncio  # noqa: TID251  (adapter layer: I/O allowed)
import os
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import overload

from .backend import DEFAULT_MECHANISMS, Session
from .rules import Hook, Rule, RuleSet
from .server import DEFAULT_MAX_MESSAGE_SIZE, SMTPServer, StoredMessage

__all__ = ["ReceivedMessages", "RunningServer", "run_server"]

#: Seconds to wait for the server thread to start (certificate making included) and stop.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


class ReceivedMessages(Sequence[StoredMessage]):
    """The messages a running server stored, read live (the ``smtp_messages`` fixture)."""

    def __init__(self, server: SMTPServer, condition: threading.Condition) -> None:
        self._server = server
        self._condition = condition

    def __len__(self) -> int:
        with self._condition:
            return len(self._server.messages)

    @overload
    def __getitem__(self, index: int) -> StoredMessage: ...
    @overload
    def __getitem__(self, index: slice) -> list[StoredMessage]: ...
    def __getitem__(self, index: int | slice) -> StoredMessage | list[StoredMessage]:
        with self._condition:
            return self._server.messages[index]

    def __repr__(self) -> str:
        return f"<ReceivedMessages: {len(self)}>"

    def wait(self, count: int, timeout: float = 10.0) -> list[StoredMessage]:
        """Block until ``count`` messages were stored; ``TimeoutError`` after ``timeout``
        (``ValueError`` when the server keeps no messages: ``keep_messages=False``)."""
        self._server.storage.require_kept()
        with self._condition:
            if not self._condition.wait_for(
                lambda: len(self._server.messages) >= count, timeout=timeout
            ):
                have = len(self._server.messages)
                raise TimeoutError(f"{have} of {count} messages after {timeout}s")
            return list(self._server.messages)


class RunningServer:
    """A built-in server running in a background thread."""

    def __init__(self, server: SMTPServer, condition: threading.Condition) -> None:
        self._server = server
        #: The messages stored so far, read live.
        self.received = ReceivedMessages(server, condition)

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
    def rules(self) -> RuleSet:
        """The server's rules: ``rules.replace([...])`` changes them while it runs."""
        return self._server.rules

    @property
    def policy_errors(self) -> list[Exception]:
        """Exceptions a ``hook`` or ``Session`` subclass raised (each ended a session)."""
        return list(self._server.policy_errors)

    @property
    def messages(self) -> list[StoredMessage]:
        """A snapshot of the messages stored so far."""
        return list(self.received)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts exactly this server's certificate."""
        if self.cert_path is None:
            raise RuntimeError("this server does not offer STARTTLS")
        context = ssl.create_default_context(cafile=str(self.cert_path))
        return context

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[StoredMessage]:
        """Block until ``count`` messages were stored; ``TimeoutError`` after ``timeout``."""
        return self.received.wait(count, timeout)


def _finish(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@contextmanager
def run_server(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    hostname: str = "localhost",
    starttls: bool = True,
    certfile: str | os.PathLike[str] | None = None,
    keyfile: str | os.PathLike[str] | None = None,
    users: Mapping[str, str] | None = None,
    mechanisms: Sequence[str] = DEFAULT_MECHANISMS,
    allow_plaintext_auth: bool = False,
    require_auth: bool = False,
    maildir: str | os.PathLike[str] | None = None,
    mbox: str | os.PathLike[str] | None = None,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    timeout: float = 300.0,
    lmtp: bool = False,
    transcript: Callable[[str], None] | None = None,
    on_message: Callable[[StoredMessage], None] | None = None,
    session_class: type[Session] = Session,
    rules: Iterable[Rule] = (),
    hook: Hook | None = None,
    clock: Callable[[], float] | None = None,
    forbid_unauth_pipelining: bool = True,
    rcptmax: int | None = None,
    mailmax: int | None = None,
    reuse_port: bool = False,
    keep_messages: bool = True,
) -> Iterator[RunningServer]:
    """Run ``SMTPServer(...)`` with these options in a background thread for the
    ``with`` block (see ``SMTPServer`` for each option)."""
    condition = threading.Condition()

    def notify(message: StoredMessage) -> None:
        with condition:
            condition.notify_all()
        if on_message is not None:
            on_message(message)

    server = SMTPServer(
        host=host,
        port=port,
        hostname=hostname,
        starttls=starttls,
        certfile=certfile,
        keyfile=keyfile,
        users=users,
        mechanisms=mechanisms,
        allow_plaintext_auth=allow_plaintext_auth,
        require_auth=require_auth,
        maildir=maildir,
        mbox=mbox,
        max_message_size=max_message_size,
        timeout=timeout,
        lmtp=lmtp,
        transcript=transcript,
        on_message=notify,
        session_class=session_class,
        rules=rules,
        hook=hook,
        clock=clock,
        forbid_unauth_pipelining=forbid_unauth_pipelining,
        rcptmax=rcptmax,
        mailmax=mailmax,
        reuse_port=reuse_port,
        keep_messages=keep_messages,
    )
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
