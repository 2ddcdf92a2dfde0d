"""What one ``send_many`` applies to every message, and the common batch's shortcut.

``Plan`` holds a batch's options and what the capabilities (fixed for the batch: no
EHLO comes in it) say about BODY=8BITMIME and SIZE=; ``Prepared`` is one message made
ready to send. ``remember`` keeps the envelope ``MailDrivers._prepare`` last made and
validated; ``repeated`` then makes the next message with the same envelope values and a
small content (one chunk) from it, reusing its immutable RCPT commands and, but for
SIZE= (RFC 1870 §6: each message declares its own), its MAIL, without validating the
same values again. Anything else is ``None``: the full path decides, and refuses what it
refuses (``drivers.batch``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from ..client_engine.config import ClientConfig
from ..client_engine.events import Mail, Rcpt
from ..wire.datacodec import content_encoder
from ..wire.twins import slot_filler
from .support import MailOptions, canonical_size

if TYPE_CHECKING:
    from ..client_engine.capabilities import Capabilities
    from ..client_engine.fastlane import GroupTemplate

__all__ = ["NO_CHUNKS", "Plan", "Prepared", "fill_prepared", "remember", "repeated"]

#: The chunks after the only one of a small message: shared by every batch (an
#: exhausted iterator stays exhausted).
NO_CHUNKS: Iterator[bytes] = iter(())
#: No value a caller can give (``Plan.recipients_given`` when there is none).
_NOTHING = object()


@dataclasses.dataclass(slots=True)
class Prepared:
    """One message made ready to send (commands built; content not read yet)."""

    index: int
    rcpts: tuple[str, ...]
    mail: Mail
    commands: list[Rcpt]  # never changed: shared by messages of the same envelope
    first: bytes
    chunks: Iterator[bytes]
    total: int | None
    single: bool  # the whole content is ``first``
    current: tuple[str, tuple[str, ...]]  # (sender, recipients), for ``Session._current``
    ended: bool = False  # the content's end ('.' or BDAT LAST) was written
    verb: Literal["DATA", "BDAT"] = "DATA"  # how the content went: names a refusal


#: ``Prepared(*values)`` (every field, in order), its slots filled directly (the
#: selected ``slot_filler`` twin): made once per message.
fill_prepared = slot_filler(Prepared, [field.name for field in dataclasses.fields(Prepared)])


class Plan:
    """What one ``send_many`` applies to every tuple message: its options and chunk
    size, what the capabilities (fixed for the batch: no EHLO comes in it) say about
    BODY=8BITMIME and SIZE=, and the last small message's envelope values with the
    message ``_prepare`` made from them (``repeated``)."""

    __slots__ = (
        "chunk_size",
        "eightbitmime",
        "mailmax",
        "options",
        "prepared",
        "raised",
        "recipients",
        "recipients_given",
        "refusal_7bit",
        "refusal_8bit",
        "sender",
        "size_advertised",
        "sized",
        "sized_from",
        "template",
        "template_for",
    )

    def __init__(
        self,
        options: MailOptions,
        chunk_size: int,
        caps: Capabilities | None,
        config: ClientConfig,
    ) -> None:
        self.options = options
        self.chunk_size = chunk_size
        self.eightbitmime = caps is not None and caps.eightbitmime
        #: LIMITS MAILMAX (RFC 9422 §4.1; None: none): ``_next`` asks the engine's
        #: ``mail_budget`` only when there is one.
        self.mailmax = caps.limits.mailmax if caps is not None else None
        #: What the engine's DATA encoder would refuse in a whole content, without and
        #: with BODY=8BITMIME (``mail.check_content``; made once per batch).
        rules = {
            "enforce_line_length": config.enforce_line_length,
            "allow_nul": config.allow_nul,
        }
        self.refusal_7bit = content_encoder(None, **rules).refusal
        self.refusal_8bit = content_encoder("8BITMIME", **rules).refusal
        self.size_advertised = caps is not None and caps.size is not None
        self.sender: str | None = None  # None: nothing remembered
        self.recipients: str | tuple[str, ...] = ()
        #: The caller's tuple ``recipients`` was taken from, when it holds exactly
        #: those strs (``remember``); else ``_NOTHING``.
        self.recipients_given: object = _NOTHING
        self.prepared: Prepared | None = None
        #: The engine's ``GroupTemplate`` for the RCPT commands ``template_for`` (of
        #: ``prepared``, shared by the messages ``repeated`` makes from it; None: that
        #: envelope is not the fast lane's, ``ClientConnection.group_template``).
        self.template: GroupTemplate | None = None
        self.template_for: list[Rcpt] | None = None
        #: The last MAIL ``repeated`` made for another SIZE= from ``sized_from``
        #: (``prepared``'s MAIL then): reused while messages keep that length.
        self.sized: Mail | None = None
        self.sized_from: Mail | None = None
        #: What the caller's iterable raised, if it did (``_next``): the batch stops
        #: taking messages and ``send_many`` raises ``SMTPBatchInterrupted``.
        self.raised: list[Exception] = []


def remember(plan: Plan, sender: str, recipients: str | Iterable[str], prepared: Prepared) -> None:
    """Keep the envelope ``_prepare`` just made and validated for ``repeated``: only
    for exact ``str`` values (compared by value, which decides validity) and options
    whose DSN NOTIFY is no (mutable) list."""
    notify = plan.options.notify
    if type(sender) is not str or not (notify is None or type(notify) is tuple):
        return
    if type(recipients) is str:
        shape: str | tuple[str, ...] = recipients
    elif type(recipients) in (list, tuple) and all(type(r) is str for r in prepared.rcpts):
        shape = prepared.rcpts
    else:
        return  # an iterator or a custom iterable: taken anew every time
    plan.sender, plan.recipients, plan.prepared = sender, shape, prepared
    # The caller's own tuple, when it holds exactly these values: immutable, so the
    # same object again holds them still (``repeated`` compares nothing then).
    same = type(recipients) is tuple and all(type(r) is str for r in recipients)
    plan.recipients_given = recipients if same and recipients == shape else _NOTHING


def repeated(plan: Plan, index: int, item: tuple[Any, ...]) -> Prepared | None:
    """The common batch: a small message (one chunk: ``bytes``, ``bytearray``,
    ``memoryview`` or ``str``) with the same envelope values as the last one
    ``_prepare`` validated, so its (immutable) RCPT commands and, but for SIZE=, its
    MAIL are reused without validating the same values again: a message of another
    length gets the same MAIL with its own SIZE= (RFC 1870 §6, ``Mail.with_size``).
    The content and the MAIL parameters it decides are ``_prepare``'s
    (``support.content_chunks``, ``support.all_ascii``). None: not that case, and the
    full path decides (and refuses what it refuses)."""
    was = plan.prepared
    if was is None:
        return None
    sender, recipients, content = item
    kind = type(content)
    if kind is bytes:
        data = content
        ascii_only = data.isascii()
    elif kind is bytearray:
        data = bytes(content)
        ascii_only = data.isascii()
    elif kind is str:
        try:
            data = content.encode("utf-8")
        except UnicodeEncodeError:
            return None  # no UTF-8 form: ``_prepare`` refuses it (``support.utf8``)
        ascii_only = content.isascii()
    elif kind is memoryview:
        try:  # in logical order, as ``content_chunks`` copies it (``support._octets``)
            data = content.tobytes()
        except ValueError:  # released: ``_prepare`` refuses it
            return None
        ascii_only = data.isascii()  # its octets, as ``all_ascii`` looks at them
    else:
        return None
    if len(data) > plan.chunk_size:
        return None
    if type(sender) is not str or sender != plan.sender:
        return None
    known = plan.recipients
    if recipients is plan.recipients_given:  # the same tuple (``remember``)
        pass
    elif type(recipients) is str:
        if recipients != known:
            return None
    elif type(recipients) is list or type(recipients) is tuple:
        if type(known) is str or len(recipients) != len(known):
            return None
        for given, same in zip(recipients, known, strict=True):
            if type(given) is not str or given != same:
                return None
    else:
        return None
    options = plan.options
    body = options.body
    if body is None and not ascii_only and plan.eightbitmime:
        body = "8BITMIME"
    if not ascii_only and body not in ("8BITMIME", "BINARYMIME"):
        return None  # the full path refuses it
    if body != "BINARYMIME":  # a NUL, a line over 998 octets: the full path refuses it
        refusal = plan.refusal_8bit if body == "8BITMIME" else plan.refusal_7bit
        if refusal(data) is not None:
            return None
    size = options.size
    if size is None and plan.size_advertised:
        size = len(data) if body == "BINARYMIME" else canonical_size(data)  # as _prepare
    mail = was.mail
    if body != mail.body:
        return None
    if size != mail.size:
        if size is None or mail.size is None:
            return None
        sized = plan.sized
        if sized is not None and sized.size == size and plan.sized_from is mail:
            mail = sized
        else:
            plan.sized_from = mail
            plan.sized = mail = mail.with_size(size)
    return fill_prepared(
        index,
        was.rcpts,
        mail,
        was.commands,
        data,
        NO_CHUNKS,
        len(data),
        True,
        was.current,
        False,
        "DATA",
    )
