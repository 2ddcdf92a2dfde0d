"""smtpproto: a sans-IO SMTP protocol engine.

The engine consumes bytes the server sent, emits typed values, and turns the caller's
commands into bytes to write. It never does I/O, never reads a clock and has no runtime
dependencies, so it can be vendored by copying this folder.
"""

from __future__ import annotations

from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ._reply import EnhancedStatusCode, Reply, ReplyClass
from ._twins import PARSER_IMPLEMENTATION, CReplyParser, PyReplyParser, ReplyParser

__all__ = [
    "PARSER_IMPLEMENTATION",
    "CReplyParser",
    "EnhancedStatusCode",
    "LocalProtocolError",
    "ProtocolError",
    "PyReplyParser",
    "RemoteProtocolError",
    "Reply",
    "ReplyClass",
    "ReplyParser",
]

__version__ = "0.1.0"
