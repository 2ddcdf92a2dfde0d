"""A 7-bit copy of an ``email.message`` message, for a server without 8BITMIME.

Theory of operation
-------------------
RFC 6152 §3: without the 8BITMIME extension a client must not send 8-bit octets; it
may convert the message to 7-bit first (RFC 6152 §3 and RFC 1652 §3 describe that
downgrade). ``send_message`` does, as smtplib-era clients and aiosmtplib do:
``seven_bit_copy`` re-encodes every leaf part whose content has 8-bit octets and no
7-bit transfer encoding yet — ``text/*`` as quoted-printable (RFC 2045 §6.7; line
breaks stay line breaks), anything else as base64 (RFC 2045 §6.8) — and gives the copy
a policy with ``cte_type="7bit"``, so the generator writes non-ASCII headers as RFC 2047
encoded words. The decoded content of every part is the original one, octet for octet
(a ``str`` payload as its declared charset, UTF-8 when none, encodes it). The caller's
message is never modified. Raw-bytes ``sendmail`` does not downgrade: it refuses.
"""

from __future__ import annotations

import base64
import copy
import quopri
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # email.message loads email.utils, which loads time and socket
    from email.message import Message

__all__ = ["seven_bit_copy"]

_SEVEN_BIT = ("base64", "quoted-printable")


def seven_bit_copy(msg: Message) -> Message:
    """A copy of ``msg`` with every 8-bit leaf part re-encoded and a 7-bit policy."""
    clone = copy.deepcopy(msg)
    for part in clone.walk():
        if part.is_multipart():
            continue
        cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        if cte in _SEVEN_BIT:
            continue
        raw = _payload_octets(part)
        if raw is None or raw.isascii():
            continue
        del part["Content-Transfer-Encoding"]
        if part.get_content_maintype() == "text":
            # RFC 2045 §6.7 rule 4: line breaks in text are CRLF, never encoded.
            text = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            part.set_payload(quopri.encodestring(text).decode("ascii"))
            part["Content-Transfer-Encoding"] = "quoted-printable"
        else:
            part.set_payload(base64.encodebytes(raw).decode("ascii"))
            part["Content-Transfer-Encoding"] = "base64"
    clone.policy = msg.policy.clone(cte_type="7bit")
    for part in clone.walk():
        part.policy = clone.policy
    return clone


def _payload_octets(part: Message) -> bytes | None:
    """The content octets of a leaf part with an identity transfer encoding."""
    # The stored payload, as the stdlib generator reads it: get_payload() would decode
    # surrogate-escaped octets with "replace", and get_payload(decode=True) encodes a
    # str without them as raw-unicode-escape, not in its charset.
    payload = part._payload  # type: ignore[attr-defined]
    if isinstance(payload, bytes):
        return payload
    if not isinstance(payload, str):
        return None
    try:
        payload.encode("utf-8")
    except UnicodeEncodeError:  # parsed 8-bit octets, kept as surrogate escapes
        return payload.encode("ascii", "surrogateescape")
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.encode(charset)
    except (LookupError, UnicodeError):
        return payload.encode("utf-8")
