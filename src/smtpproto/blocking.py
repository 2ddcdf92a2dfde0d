"""The blocking-socket client (``SMTPClient``).

The public path of :mod:`smtpproto.adapters.blocking`.
"""

from __future__ import annotations

from .adapters.blocking import (
    SMTPClient,
    TLSInfo,
)

__all__ = [
    "SMTPClient",
    "TLSInfo",
]
