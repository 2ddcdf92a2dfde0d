"""The trio client (``TrioSMTPClient``; needs the ``trio`` extra).

The public path of :mod:`smtpproto.adapters.trio_client`.
"""

from __future__ import annotations

from .adapters.trio_client import (
    TrioSMTPClient,
)

__all__ = [
    "TrioSMTPClient",
]
