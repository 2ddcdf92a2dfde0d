"""smtpproto: a sans-IO SMTP protocol engine.

The engine consumes bytes the server sent, emits typed values, and turns the caller's
commands into bytes to write. It never does I/O, never reads a clock and has no runtime
dependencies, so it can be vendored by copying this folder.

* Client role: ``ClientConnection`` with the commands and events of ``_events``.
* Server role: ``ServerConnection`` with the events of ``_server_events``.
* Replies: ``Reply``, ``ReplyParser`` (compiled or pure-Python twin), ``codes``.
* Session drivers (``Session``: login, sendmail, send_many, …) yield ``Write``,
  ``Read`` and ``UpgradeTLS`` requests: a custom adapter runs them in its own loop.
* SASL mechanisms: ``smtpproto.sasl``. Adapters (they do I/O, import them explicitly):
  ``smtpproto.blocking``, ``smtpproto.asyncio_client``, ``smtpproto.trio_client``,
  the built-in server ``smtpproto.server`` and ``smtpproto.testing``.
"""

from __future__ import annotations

from . import codes, sasl
from ._capabilities import Capabilities, ServerLimits
from ._client_config import ClientConfig, Timeouts, TLSPolicy
from ._connection import ClientConnection
from ._datacodec import DATA_CODEC_IMPLEMENTATION, DataDecoder, DataEncoder
from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ._events import (
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
from ._reply import EnhancedStatusCode, Reply, ReplyClass
from ._server import ServerConnection
from ._server_auth import AuthExchange
from ._server_config import ServerConfig
from ._server_events import (
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
from ._server_state import ServerState
from ._session import Session
from ._session_batch import BatchItem, Outcome
from ._session_support import MailOptions, Read, UpgradeTLS, Write
from ._state import ClientState
from ._twins import PARSER_IMPLEMENTATION, CReplyParser, PyReplyParser, ReplyParser

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
]

__version__ = "0.1.0"
