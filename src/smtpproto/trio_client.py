"""The trio client (``TrioSMTPClient``; needs the ``trio`` extra), its pool
(``TrioSMTPPool``) and the one-call ``send``.

The public path of :mod:`smtpproto.adapters.trio_client`.
"""

from __future__ import annotations

from .adapters.trio_client import (
    RateLimit,
    TrioSMTPClient,
    TrioSMTPPool,
    send,
)

__all__ = [
    "RateLimit",
    "TrioSMTPClient",
    "TrioSMTPPool",
    "send",
]
