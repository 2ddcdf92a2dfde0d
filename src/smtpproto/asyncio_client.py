"""The asyncio client (``AsyncSMTPClient``).

The public path of :mod:`smtpproto.adapters.asyncio_client`.
"""

from __future__ import annotations

from .adapters.asyncio_client import (
    AsyncSMTPClient,
)

__all__ = [
    "AsyncSMTPClient",
]
