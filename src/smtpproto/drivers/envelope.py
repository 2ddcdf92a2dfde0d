"""The SMTP envelope of an ``email.message`` message, and the bytes to send.

Theory of operation
-------------------
``envelope_from_message`` does what ``smtplib.SMTP.send_message`` does, with two
differences noted below:

* The sender is ``Sender`` if present, else ``From`` (RFC 5322 §3.6.2); the recipients
  are every address in ``To``, ``Cc`` and ``Bcc`` (every occurrence of each field, not
  only the first as smtplib does), duplicates dropped, in header order.
* When the message was resent (RFC 5322 §3.6.6), the ``Resent-*`` fields of the most
  recent block are used instead. Resent blocks are prepended, so the most recent is the
  first run of ``Resent-*`` fields in header order; smtplib refuses a message with more
  than one block, we take the topmost.
* An address is international when it is not ASCII; then the message needs SMTPUTF8
  (RFC 6531) and is serialised with a ``utf8=True`` policy so header addresses are not
  RFC 2047-encoded (which would make them invalid). Otherwise non-ASCII header text is
  written as RFC 2047 encoded words, even under the message's own ``utf8=True`` policy:
  without SMTPUTF8 no UTF-8 header may be sent (RFC 6532 §3).

Before either, every header of the message and of every sub-part is checked
(``check_headers``): a field name is RFC 5322 §3.6.8 ``ftext`` (printable ASCII but
``:``), and a CR or LF in a value must be part of a fold — a line break (CRLF, or a
bare CR or LF, which DATA turns into CRLF, docs/design.md §4 rule 7) followed by SP or
HTAB and by something that is not white space (a line of white space alone may end the
header section for a lenient parser). Anything else would inject a header line into the
content, or an extra address into the envelope (``b@x\r\nRCPT TO:<evil@y>`` in ``To``
is parsed as two recipients), so it is refused with ``LocalProtocolError`` before a
byte is sent. NUL is refused too (RFC 5322 §4: obsolete syntax is never generated),
and so is every other line boundary of ``str.splitlines`` (VT, FF, FS, GS, RS, NEL,
U+2028, U+2029): the generator of a ``utf8=True`` policy (used for an SMTPUTF8
envelope) writes each out as a CRLF, and ``getaddresses`` splits an address there.
The value is checked as stored and as the policy reads it back (an ``EmailPolicy``
decodes RFC 2047 encoded words, and refolding writes a decoded CR LF out raw).
The check does not rely on the ``email`` policy (``compat32`` stores any value, and
only CPython 3.13 verifies generated headers).

``flatten_message`` serialises with CRLF line ends (RFC 5321 §2.3.8) after removing
every ``Bcc`` and ``Resent-Bcc`` field (RFC 5322 §3.6.3: blind recipients must not be
disclosed); the caller's message is not modified. 8BITMIME is chosen by the session
driver from the resulting bytes.

The ``email`` package imports ``socket``, so it is imported inside the functions: the
engine never loads it at import time (docs/design.md §1).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ..wire.errors import LocalProtocolError
from ..wire.text import escape_text

if TYPE_CHECKING:
    from email.message import Message

__all__ = ["Envelope", "check_headers", "envelope_from_message", "flatten_message"]

#: RFC 5322 §3.6.8: field-name = 1*ftext, ftext = %d33-57 / %d59-126.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
#: A line break inside a header value: CRLF, or a bare CR or LF (DATA makes each CRLF).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: The other line boundaries of ``str.splitlines`` (VT, FF, FS, GS, RS, NEL, LINE and
#: PARAGRAPH SEPARATOR): a ``utf8=True`` policy writes each as a raw line break.
_OTHER_LINE_BREAK = re.compile("[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


@dataclasses.dataclass(frozen=True, slots=True)
class Envelope:
    """The reverse path, the forward paths and whether SMTPUTF8 is needed."""

    sender: str
    recipients: tuple[str, ...]
    international: bool


def _check_message(msg: object) -> None:
    from email.message import Message  # here: email imports socket (module docstring)

    if not isinstance(msg, Message):
        raise LocalProtocolError(
            f"send_message needs an email.message.Message, got {type(msg).__name__}"
        )
    check_headers(msg)


def _refuse(where: str, name: object, why: str) -> LocalProtocolError:
    return LocalProtocolError(f"header {name!r}{where} {why}")


def _parts(msg: Message) -> Iterator[Message]:
    """``msg`` and its sub-parts, depth first like ``Message.walk``, without recursion
    and skipping a payload item that is no ``Message`` (``flatten_message`` refuses it)."""
    from email.message import Message  # here: email imports socket (module docstring)

    stack = [msg]
    while stack:
        part = stack.pop()
        yield part
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            stack.extend(item for item in reversed(payload) if isinstance(item, Message))


def _value_problem(text: str) -> str | None:
    """Why a header value cannot be sent as is, or None (see the module docstring)."""
    if "\0" in text:
        return "has a NUL in its value"
    other_break = _OTHER_LINE_BREAK.search(text)
    if other_break is not None:
        return (
            f"has U+{ord(other_break.group()):04X} in its value, a line boundary to the "
            "email generator (str.splitlines): an embedded header line or an injected address"
        )
    for line in _LINE_BREAK.split(text)[1:]:
        if line[:1] not in (" ", "\t") or not line.strip(" \t"):
            return (
                "has a CR or LF in its value that is not a fold (a line break followed "
                "by SP or HTAB and text): an embedded header line or an injected address"
            )
    return None


def check_headers(msg: Message) -> None:
    """Refuse a header of ``msg`` or of any sub-part whose name is not RFC 5322
    ``ftext`` or whose value has NUL, or a CR or LF that is not a fold (see the module
    docstring): ``LocalProtocolError``, before anything is derived from the headers.

    The value is checked as stored and as the policy reads it back: an ``EmailPolicy``
    decodes RFC 2047 encoded words, so ``=?utf-8?q?hi=0D=0ABcc:_x?=`` is a CR LF that
    the generator would write out raw when it refolds the header (CPython before 3.13
    does not check). A value the policy cannot read back is refused too.
    """
    import email.errors  # here: email imports socket (module docstring)

    for index, part in enumerate(_parts(msg)):
        where = "" if index == 0 else f" (in MIME part {index})"
        for name, value in part.raw_items():
            if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
                raise _refuse(where, name, "has a name that is not printable ASCII without ':'")
            problem = _value_problem(str(value))
            if problem is None:
                try:
                    problem = _value_problem(str(part.policy.header_fetch_parse(name, value)))
                except (ValueError, TypeError, email.errors.MessageError) as error:
                    problem = f"cannot be read back ({type(error).__name__}: {error})"
            if problem is not None:
                raise _refuse(where, name, problem)


def _resent_prefix(msg: Message) -> tuple[str, list[tuple[str, str]]]:
    """``"Resent-"`` and the fields of the most recent resent block, or ``""`` and
    every field when the message was not resent."""
    fields = [(name, str(value)) for name, value in msg.items()]
    block: list[tuple[str, str]] = []
    for name, value in fields:
        if name.lower().startswith("resent-"):
            block.append((name, value))
        elif block:
            break
    if not block:
        return "", fields
    return "Resent-", block


_BREAKS = re.compile(r"\r\n|\r|\n")


def _addresses(fields: Iterable[tuple[str, str]]) -> list[str]:
    """The addresses of the address ``fields`` (name, value), read by the ``email``
    package's RFC 5322 parser (``email.headerregistry``), the same on every Python.
    ``email.utils.getaddresses`` read a malformed list differently by version
    (CVE-2023-27043): ``alice@example.org)<bob@example.org>`` was two recipients
    before 3.13 (bob added, unseen in any display) and, in 3.13's strict mode, a whole
    ``To`` of nothing (every recipient of the field dropped without an error). A field
    the parser finds invalid (an ``InvalidHeaderDefect``) is refused instead."""
    import email.errors  # here: email imports socket
    import email.policy

    found: list[str] = []
    for name, value in fields:
        # Unfold (RFC 5322 §2.2.3): check_headers left only folds, a break before WSP.
        header = email.policy.default.header_factory(name, _BREAKS.sub("", value))
        invalid = [d for d in header.defects if isinstance(d, email.errors.InvalidHeaderDefect)]
        if invalid:
            raise LocalProtocolError(
                f"the {name} field is not a valid address list ({invalid[0]}): "
                f"{escape_text(value)!r}; pass recipients= (or sender=) to choose the envelope"
            )
        found += [address.addr_spec for address in header.addresses if address.username]
    return found


def envelope_from_message(
    msg: Message,
    *,
    sender: str | None = None,
    recipients: str | Iterable[str] | None = None,
) -> Envelope:
    """The envelope for ``msg``; ``sender``/``recipients`` override the headers.

    Raises ``LocalProtocolError`` when no sender field exists (and none was given),
    when no recipient is found, or when ``sender``/``recipients`` are not str.
    """
    _check_message(msg)
    if sender is not None and not isinstance(sender, str):
        raise LocalProtocolError(f"sender must be a str or None, got {type(sender).__name__}")
    prefix, fields = _resent_prefix(msg)
    lowered = [(name.lower(), value) for name, value in fields]
    if sender is None:
        for wanted in (prefix + "sender", prefix + "from"):
            found = _addresses(
                (n, v)
                for (n, v), (low, _) in zip(fields, lowered, strict=True)
                if low == wanted.lower()
            )
            if found:
                sender = found[0]
                break
        else:
            raise LocalProtocolError(
                f"the message has no {prefix}Sender or {prefix}From address; pass sender="
            )
    if recipients is None:
        wanted_fields = {(prefix + name).lower() for name in ("to", "cc", "bcc")}
        found = _addresses(
            (n, v) for (n, v), (low, _) in zip(fields, lowered, strict=True) if low in wanted_fields
        )
        rcpts = tuple(dict.fromkeys(found))
    elif isinstance(recipients, str):
        rcpts = (recipients,)
    else:
        try:
            rcpts = tuple(recipients)
        except TypeError:  # not iterable (an int, say): caller misuse
            rcpts = (recipients,)  # type: ignore[assignment]  # refused just below
        wrong = [r for r in rcpts if not isinstance(r, str)]
        if wrong:
            raise LocalProtocolError(
                "recipients must be a str, an iterable of str or None, got a "
                + type(wrong[0]).__name__
            )
    if not rcpts:
        raise LocalProtocolError(
            f"the message has no {prefix}To, {prefix}Cc or {prefix}Bcc address; pass recipients="
        )
    international = not sender.isascii() or not all(r.isascii() for r in rcpts)
    return Envelope(sender=sender, recipients=rcpts, international=international)


def flatten_message(msg: Message, *, utf8: bool = False) -> bytes:
    """``msg`` as bytes with CRLF line ends, without ``Bcc``/``Resent-Bcc``.

    ``utf8=True`` serialises non-ASCII headers as UTF-8 (RFC 6532) instead of RFC 2047
    encoded words; a ``compat32`` message then uses ``email.policy.SMTPUTF8``.
    ``utf8=False`` writes RFC 2047 encoded words even for a message whose own policy
    says ``utf8=True`` (``email.policy.SMTPUTF8``): UTF-8 header fields may only go
    with the SMTPUTF8 parameter (RFC 6531 §3.4, RFC 6532 §3), which the caller asks
    for only with ``utf8=True``.
    A message the ``email`` generator cannot serialise is a ``LocalProtocolError``.
    """
    import copy
    import email.errors
    import email.policy
    from email.generator import BytesGenerator
    from io import BytesIO

    _check_message(msg)
    clone = copy.copy(msg)  # Message.__delitem__ builds a new header list: msg is untouched
    del clone["Bcc"]
    del clone["Resent-Bcc"]
    policy = msg.policy
    if isinstance(policy, email.policy.EmailPolicy):
        if policy.utf8 != utf8:
            policy = policy.clone(utf8=utf8)
    elif utf8:
        policy = email.policy.SMTPUTF8
    out = BytesIO()
    try:
        BytesGenerator(out, policy=policy).flatten(clone, linesep="\r\n")
    except (
        AttributeError,
        LookupError,
        TypeError,
        UnicodeError,
        ValueError,
        email.errors.MessageError,
    ) as error:
        # A malformed message fails deep in ``email``: compat32 lets a caller set a
        # non-ASCII str payload without a charset, a payload that is no str, or a
        # header value with an embedded header line (``HeaderParseError``).
        raise LocalProtocolError(
            f"the message cannot be serialised: {type(error).__name__}: {error}"
        ) from error
    return out.getvalue()
