"""The checks of ``sendmail``'s input made before MAIL (``drivers.mail``): the
options and transfer flags, ``stop_after``'s stages, and content the DATA encoder
would refuse after the 354 (docs/design.md §2: refused before any byte, the session
usable): content held whole in one pass of the codec twin (``check_content``). Raw
content has its own check (``mail._checked_raw``, ``wire.rawdata``).
"""

from __future__ import annotations

from typing import Literal

from ..client_engine.config import ClientConfig
from ..wire.datacodec import DataEncoder, content_encoder
from ..wire.errors import LocalProtocolError
from ..wire.fields import check_flag
from .support import ContentSource, MailOptions

__all__ = [
    "MAIL_STAGES",
    "WHOLE",
    "MailStage",
    "check_binarymime",
    "check_content",
    "check_options",
    "check_progress",
    "check_transfer_flags",
    "encoder_for",
    "refused",
    "whole",
]

#: Where ``sendmail`` may stop, in session order (see ``MailDrivers.sendmail``).
MailStage = Literal["mail", "rcpt", "data"]
MAIL_STAGES: tuple[MailStage, ...] = ("mail", "rcpt", "data")


def check_options(options: object) -> None:
    """Refuse ``options`` that are no ``MailOptions`` (None is replaced by the defaults
    before this check)."""
    if not isinstance(options, MailOptions):
        raise LocalProtocolError(
            f"options must be a MailOptions or None, got {type(options).__name__}"
        )


def check_transfer_flags(pipelining: object, chunking: object) -> None:
    """Refuse a ``pipelining``/``chunking`` that is neither a bool nor None (the
    default: use the extension when advertised) before anything is sent: ``"no"`` or
    ``0`` must not quietly mean "use it" or "do not" (``wire.fields.check_flag``)."""
    check_flag("pipelining", pipelining, allow_none=True, error=LocalProtocolError)
    check_flag("chunking", chunking, allow_none=True, error=LocalProtocolError)


def check_binarymime(body: str | None, bdat: bool) -> None:
    """Refuse ``BODY=BINARYMIME`` without BDAT (the server does not advertise
    CHUNKING, or ``chunking=False``) before anything is sent: such content goes only
    in BDAT chunks (RFC 3030 §3), and the engine refuses the DATA command only once
    MAIL and RCPT are queued, which breaks the session."""
    if body == "BINARYMIME" and not bdat:
        raise LocalProtocolError(
            "BODY=BINARYMIME content must be sent with BDAT (RFC 3030 §3): the server "
            "must advertise CHUNKING and chunking must not be False"
        )


def check_progress(progress: object) -> None:
    """Refuse a ``progress`` that is not a callable before anything is sent (it would
    fail only after the first chunk went out, leaving the content half-sent)."""
    if progress is not None and not callable(progress):
        raise LocalProtocolError(
            f"progress must be a callable or None, got {type(progress).__name__}"
        )


def check_content(
    config: ClientConfig, body: str | None, content: bytes | bytearray | memoryview
) -> None:
    """Refuse, with the DATA encoder's ``LocalProtocolError`` message, whole content
    the engine's encoder for ``BODY=body`` (``wire.datacodec.content_encoder``)
    would refuse after the 354: a NUL (RFC 5321 §4.5.2), a line over 1000 octets with
    its CRLF (§4.5.3.1.6), an 8-bit octet without ``BODY=8BITMIME`` (RFC 6152). BDAT
    content other than ``BODY=BINARYMIME`` (RFC 3030 §3) is held to the same rules.
    One pass in the codec twin (``DataEncoder.refusal``)."""
    refusal = encoder_for(config, body).refusal(content)
    if refusal is not None:
        raise refused(refusal, "Refused before MAIL: nothing was sent, the session is usable")


#: Content held whole (after ``str`` became bytes).
WHOLE = (bytes, bytearray, memoryview)


def whole(content: ContentSource) -> bool:
    """Whether ``_prepare`` checks ``content`` whole before MAIL (``check_content``)."""
    return isinstance(content, (*WHOLE, str))


def encoder_for(config: ClientConfig, body: str | None) -> DataEncoder:
    return content_encoder(
        body, enforce_line_length=config.enforce_line_length, allow_nul=config.allow_nul
    )


def refused(refusal: str, outcome: str) -> LocalProtocolError:
    """The encoder's ``refusal`` (which names the ``ClientConfig`` field or MAIL
    parameter that allows the content), then ``outcome`` (what was sent)."""
    return LocalProtocolError(f"{refusal}. {outcome}")
