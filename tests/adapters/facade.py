"""The synchronous face every adapter shows the shared tests.

Tests never touch an adapter directly: they call ``open_client(name, **kwargs)``, which
returns an object with the blocking client's interface (``SyncClient``). The blocking
adapter is its own facade. An async adapter registers a factory here that wraps its
client and runs each coroutine to completion on an event loop it owns for the life of
the facade (for asyncio ``asyncio.Runner``; for trio a guest/threaded run), so the
same test body drives all three. Keyword arguments are the blocking ``SMTPClient``'s
(``host``, ``port``, ``sock``, ``unix_socket``, ``tls``, ``ssl_context``,
``server_hostname``, ``timeout``, ``message_timeout``, ``local_hostname``, ``lmtp``,
``allow_cleartext_auth``, ``config``); ``sock`` is a connected ``socket.socket`` that
the adapter takes over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from email.message import Message
from types import TracebackType
from typing import Any, Protocol

from smtpproto.adapters.tls import TLSInfo
from smtpproto.blocking import SMTPClient
from smtpproto.client_engine.capabilities import Capabilities
from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers.batch import DEFAULT_MAX_IN_FLIGHT, BatchItem, Outcome, OutcomeCallback
from smtpproto.drivers.session import MailOptions, MailStage, OpenStage, Session
from smtpproto.drivers.support import ContentSource, ProgressCallback
from smtpproto.sasl.base import ClientMechanism
from smtpproto.wire.reply import Reply

from .facade_async import asyncio_client, trio_client


class SyncClient(Protocol):
    """What the shared tests call; mirrors ``smtpproto.blocking.SMTPClient``."""

    def connect(self, until: OpenStage | None = None) -> Reply: ...
    def close(self) -> None: ...
    def __enter__(self) -> SyncClient: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def login(
        self,
        username: str,
        password: str | None = None,
        *,
        token: str | None = None,
        mechanism: ClientMechanism | None = None,
    ) -> Reply: ...
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
    ) -> TransactionResult: ...
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
    ) -> TransactionResult: ...
    def send_many(
        self,
        messages: Iterable[BatchItem],
        *,
        options: MailOptions | None = None,
        pipelining: bool | None = None,
        chunking: bool | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        on_outcome: OutcomeCallback | None = None,
    ) -> list[Outcome]: ...
    def noop(self) -> Reply: ...
    def rset(self) -> Reply: ...
    def vrfy(self, address: str) -> Reply: ...
    def xclient(
        self, attributes: Mapping[str, str], *, require_advertised: bool = True
    ) -> Reply: ...
    def starttls(self) -> Reply: ...
    def xforward(self, attributes: Mapping[str, str]) -> Reply: ...
    def quit(self) -> Reply: ...
    @property
    def capabilities(self) -> Capabilities | None: ...
    @property
    def session(self) -> Session: ...
    @property
    def tls_info(self) -> TLSInfo | None: ...


#: Adapter name -> factory taking the blocking client's keyword arguments.
ADAPTERS: dict[str, Callable[..., SyncClient]] = {
    "blocking": SMTPClient,
    "asyncio": asyncio_client,
    "trio": trio_client,
}


def open_client(adapter: str, **kwargs: Any) -> SyncClient:
    """A not-yet-connected client of ``adapter`` behind the synchronous facade."""
    return ADAPTERS[adapter](**kwargs)
