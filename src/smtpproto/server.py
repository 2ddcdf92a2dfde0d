"""The built-in asyncio SMTP server (``SMTPServer``).

The public path of :mod:`smtpproto.builtin_server.server`.
"""

from __future__ import annotations

from .builtin_server.server import (
    DEFAULT_MECHANISMS,
    SMTPServer,
    StoredMessage,
    make_self_signed,
)

__all__ = [
    "DEFAULT_MECHANISMS",
    "SMTPServer",
    "StoredMessage",
    "make_self_signed",
]
