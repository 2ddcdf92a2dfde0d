"""The built-in asyncio SMTP server (``SMTPServer``) and its reply policy seam.

The public path of :mod:`smtpproto.builtin_server.server`, plus the transport-free
policy of :mod:`smtpproto.builtin_server.backend` (``Backend``, ``Session``: subclass
``Session`` and pass ``session_class=`` to change a reply) and the storage of
:mod:`smtpproto.builtin_server.storage` (``MessageStore``).
"""

from __future__ import annotations

from .builtin_server.backend import Backend, Response, Session
from .builtin_server.server import (
    DEFAULT_MECHANISMS,
    SMTPServer,
    StoredMessage,
    make_self_signed,
)
from .builtin_server.storage import MessageStore

__all__ = [
    "DEFAULT_MECHANISMS",
    "Backend",
    "MessageStore",
    "Response",
    "SMTPServer",
    "Session",
    "StoredMessage",
    "make_self_signed",
]
