"""The exceptions the session drivers and the client adapters raise.

The public path of :mod:`smtpproto.drivers.exceptions`.
"""

from __future__ import annotations

from .drivers.exceptions import (
    SMTPBatchInterrupted,
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPDeliveryTimeoutError,
    SMTPError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPReplyError,
    SMTPTimeoutError,
    SMTPTLSError,
)

__all__ = [
    "SMTPBatchInterrupted",
    "SMTPConnectError",
    "SMTPDeliveryStatusUnknown",
    "SMTPDeliveryTimeoutError",
    "SMTPError",
    "SMTPProtocolError",
    "SMTPRecipientsRefused",
    "SMTPReplyError",
    "SMTPTLSError",
    "SMTPTimeoutError",
]
