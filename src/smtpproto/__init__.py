"""smtpproto: a sans-IO SMTP protocol engine.

The engine consumes bytes the server sent, emits typed values, and turns the caller's
commands into bytes to write. It never does I/O, never reads a clock and has no runtime
dependencies, so it can be vendored by copying this folder.

* Client role: ``ClientConnection`` with the commands and events of ``client_engine.events``.
* Server role: ``ServerConnection`` with the events of ``server_engine.events``.
* Replies: ``Reply``, ``ReplyParser`` (compiled or pure-Python twin), ``codes``.
* Session drivers (``Session``: login, sendmail, send_many, …) yield ``Write``,
  ``Read`` and ``UpgradeTLS`` requests: a custom adapter runs them in its own loop.
* SASL mechanisms: ``smtpproto.sasl``. Adapters (they do I/O, import them explicitly):
  ``smtpproto.blocking``, ``smtpproto.asyncio_client``, ``smtpproto.trio_client``,
  the built-in server ``smtpproto.server`` and ``smtpproto.testing``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import codes, sasl
from ._version import __version__ as __version__
from .client_engine.capabilities import Capabilities, ServerLimits
from .client_engine.config import ClientConfig, Timeouts, TLSPolicy
from .client_engine.connection import ClientConnection
from .client_engine.events import (
    NEED_DATA,
    Auth,
    AuthChallenge,
    AuthContinue,
    AuthFailed,
    AuthSucceeded,
    Bdat,
    Command,
    CommandReply,
    ConnectionClosed,
    Content,
    Data,
    DeliveryStatusUnknown,
    Ehlo,
    EhloAccepted,
    EndOfContent,
    Event,
    Expn,
    Greeting,
    GreetingRefused,
    HelloRefused,
    Helo,
    HeloAccepted,
    Help,
    Lhlo,
    Mail,
    NeedData,
    Noop,
    NoRecipientsAccepted,
    Quit,
    Rcpt,
    ReadyForContent,
    Rset,
    ServiceClosing,
    StartTLS,
    StartTLSRefused,
    TLSReady,
    TLSUnavailable,
    TransactionResult,
    UnsafeRawBytes,
    Vrfy,
)
from .client_engine.states import ClientState
from .drivers.batch import BatchItem, Outcome
from .drivers.session import Session
from .drivers.support import MailOptions, Read, UpgradeTLS, Write
from .server_engine.auth import AuthExchange
from .server_engine.config import ServerConfig
from .server_engine.connection import ServerConnection
from .server_engine.events import (
    PAUSED,
    AuthCancelled,
    AuthRequested,
    AuthResponse,
    BdatStarted,
    ChunkComplete,
    ClientDisconnected,
    CommandRejected,
    ContentReceived,
    DataRequested,
    EhloReceived,
    ExpnReceived,
    HeloReceived,
    HelpReceived,
    MailReceived,
    MessageComplete,
    NoopReceived,
    PlaintextDiscarded,
    QuitReceived,
    RcptReceived,
    ResetReceived,
    ServerEvent,
    StartTLSRequested,
    UnknownCommand,
    VrfyReceived,
)
from .server_engine.states import ServerState
from .wire.datacodec import DATA_CODEC_IMPLEMENTATION, DataDecoder, DataEncoder
from .wire.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .wire.reply import EnhancedStatusCode, Reply, ReplyClass
from .wire.twins import PARSER_IMPLEMENTATION, CReplyParser, PyReplyParser, ReplyParser

if TYPE_CHECKING:
    from .adapters.asyncio_client import send as send_async
    from .adapters.blocking import send as send


def __getattr__(name: str) -> object:
    """``send`` (blocking) and ``send_async`` (asyncio), the one-call sends, load their
    adapter on first use, so ``import smtpproto`` loads no I/O module."""
    if name == "send":
        from .adapters.blocking import send

        return send
    if name == "send_async":
        from .adapters.asyncio_client import send as send_async

        return send_async
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DATA_CODEC_IMPLEMENTATION",
    "NEED_DATA",
    "PARSER_IMPLEMENTATION",
    "PAUSED",
    "Auth",
    "AuthCancelled",
    "AuthChallenge",
    "AuthContinue",
    "AuthExchange",
    "AuthFailed",
    "AuthRequested",
    "AuthResponse",
    "AuthSucceeded",
    "BatchItem",
    "Bdat",
    "BdatStarted",
    "CReplyParser",
    "Capabilities",
    "ChunkComplete",
    "ClientConfig",
    "ClientConnection",
    "ClientDisconnected",
    "ClientState",
    "Command",
    "CommandRejected",
    "CommandReply",
    "ConnectionClosed",
    "Content",
    "ContentReceived",
    "Data",
    "DataDecoder",
    "DataEncoder",
    "DataRequested",
    "DeliveryStatusUnknown",
    "Ehlo",
    "EhloAccepted",
    "EhloReceived",
    "EndOfContent",
    "EnhancedStatusCode",
    "Event",
    "Expn",
    "ExpnReceived",
    "Greeting",
    "GreetingRefused",
    "HelloRefused",
    "Helo",
    "HeloAccepted",
    "HeloReceived",
    "Help",
    "HelpReceived",
    "Lhlo",
    "LocalProtocolError",
    "Mail",
    "MailOptions",
    "MailReceived",
    "MessageComplete",
    "NeedData",
    "NoRecipientsAccepted",
    "Noop",
    "NoopReceived",
    "Outcome",
    "PlaintextDiscarded",
    "ProtocolError",
    "PyReplyParser",
    "Quit",
    "QuitReceived",
    "Rcpt",
    "RcptReceived",
    "Read",
    "ReadyForContent",
    "RemoteProtocolError",
    "Reply",
    "ReplyClass",
    "ReplyParser",
    "ResetReceived",
    "Rset",
    "ServerConfig",
    "ServerConnection",
    "ServerEvent",
    "ServerLimits",
    "ServerState",
    "ServiceClosing",
    "Session",
    "StartTLS",
    "StartTLSRefused",
    "StartTLSRequested",
    "TLSPolicy",
    "TLSReady",
    "TLSUnavailable",
    "Timeouts",
    "TransactionResult",
    "UnknownCommand",
    "UnsafeRawBytes",
    "UpgradeTLS",
    "Vrfy",
    "VrfyReceived",
    "Write",
    "codes",
    "sasl",
    "send",
    "send_async",
]
