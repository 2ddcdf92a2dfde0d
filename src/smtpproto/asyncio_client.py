"""The asyncio client (``AsyncSMTPClient``), its pool (``AsyncSMTPPool``) and the
one-call ``send`` (``smtpproto.send_async``).

The public path of :mod:`smtpproto.adapters.asyncio_client`.
"""

from __future__ import annotations

from .adapters.asyncio_client import (
    AsyncSMTPClient,
    AsyncSMTPPool,
    RateLimit,
    send,
)

__all__ = [
    "AsyncSMTPClient",
    "AsyncSMTPPool",
    "RateLimit",
    "send",
]
