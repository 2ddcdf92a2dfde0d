"""What every reply code and RFC 3463 enhanced status code means, and what to do.

The public path of :mod:`smtpproto.wire.codes`, where the tables live.
"""

from __future__ import annotations

from .wire import codes as _tables
from .wire.codes import (
    EnhancedCodeInfo,
    ReplyCodeInfo,
    describe_code,
    describe_enhanced,
    explain,
    explain_reply,
    known_codes,
    known_enhanced,
)

__all__ = [
    "EnhancedCodeInfo",
    "ReplyCodeInfo",
    "describe_code",
    "describe_enhanced",
    "explain",
    "explain_reply",
    "known_codes",
    "known_enhanced",
]

__doc__ = _tables.__doc__
