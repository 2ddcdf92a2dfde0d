"""The blocking-socket client (``SMTPClient``), its pool (``SMTPPool``) and the
one-call ``send``.

The public path of :mod:`smtpproto.adapters.blocking`.
"""

from __future__ import annotations

from .adapters.blocking import (
    RateLimit,
    SMTPClient,
    SMTPPool,
    TLSInfo,
    send,
)

__all__ = [
    "RateLimit",
    "SMTPClient",
    "SMTPPool",
    "TLSInfo",
    "send",
]
