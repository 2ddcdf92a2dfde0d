"""Make the adapters' exceptions catchable by code written for ``smtplib``.

Why here and not in ``drivers.exceptions``
------------------------------------------
``except smtplib.SMTPException`` matches only real subclasses (``except`` never asks
``__subclasscheck__``), so an error must *inherit* from smtplib's classes to be caught by
code migrating from it. ``smtplib`` imports ``socket``, ``ssl`` and ``email.utils``
(which imports ``time``), and the engine layers, ``drivers`` included, must never load
those (docs/design.md §1, ``tests/test_no_io_imports.py``). So the drivers raise the
plain hierarchy of ``drivers.exceptions`` and the adapters, which do I/O anyway, hand
the caller a *compatible twin* of each error: a subclass of the same smtpproto class
and of the matching smtplib classes, with the same message, attributes, cause and
traceback (``smtplib_compatible``). ``smtplib`` is imported, and the twin classes are
made, on the first error only, so importing an adapter costs nothing more.

The mapping (docs/migrating-from-smtplib.md has the table and the reasoning):

* every ``SMTPError`` → ``smtplib.SMTPException`` (hence also ``OSError``, as smtplib's);
* ``SMTPReplyError`` → ``SMTPResponseException`` (``smtp_code``, ``smtp_error``), by
  the command refused: greeting ``SMTPConnectError``, EHLO/HELO/LHLO
  ``SMTPHeloError``, MAIL ``SMTPSenderRefused`` (``sender``), DATA/BDAT
  ``SMTPDataError``, AUTH ``SMTPAuthenticationError``; a 421 (RFC 5321 §3.8, the
  server is closing) is also ``SMTPServerDisconnected``;
* ``SMTPRecipientsRefused`` → ``smtplib.SMTPRecipientsRefused`` (``recipients``: each
  refused address → ``(code, text)``);
* ``SMTPConnectError`` (no connection, or it was lost), ``SMTPDeliveryStatusUnknown``
  and a server's ``SMTPProtocolError`` (``remote``: an EOF mid-reply, a malformed
  reply; the connection is closed after it) → ``SMTPServerDisconnected``, which
  smtplib raises whenever the connection cannot be used any more;
* ``SMTPTimeoutError`` → ``TimeoutError`` too (smtplib lets ``socket.timeout`` out);
* ``SMTPTLSError`` and a caller's ``SMTPProtocolError`` → ``SMTPException`` only:
  smtplib has no class with their meaning (it lets ``ssl.SSLError`` and
  ``ValueError`` out).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from ..drivers.exceptions import (
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPReplyError,
    SMTPTimeoutError,
)

if TYPE_CHECKING:
    from ..wire.reply import Reply

__all__ = ["is_compatible", "smtplib_compatible"]

E = TypeVar("E", bound=BaseException)
V = TypeVar("V")

#: smtplib's class for an ``SMTPReplyError`` by the verb it answered (None: greeting).
_REPLY_CLASSES = {
    None: "SMTPConnectError",
    "EHLO": "SMTPHeloError",
    "HELO": "SMTPHeloError",
    "LHLO": "SMTPHeloError",
    "MAIL": "SMTPSenderRefused",
    "DATA": "SMTPDataError",
    "BDAT": "SMTPDataError",
    "AUTH": "SMTPAuthenticationError",
}


def _smtplib_bases(error: SMTPError) -> tuple[str, ...]:
    """The names of the smtplib classes (or builtins) ``error``'s twin inherits."""
    names: list[str] = []
    if isinstance(error, SMTPReplyError):
        names.append(_REPLY_CLASSES.get(error.command, "SMTPResponseException"))
        if error.code == 421:
            names.append("SMTPServerDisconnected")
    elif isinstance(error, SMTPRecipientsRefused):
        names.append("SMTPRecipientsRefused")
    elif isinstance(error, (SMTPConnectError, SMTPDeliveryStatusUnknown)) or (
        isinstance(error, SMTPProtocolError) and error.remote
    ):
        names.append("SMTPServerDisconnected")
    if not names:
        names.append("SMTPException")
    if isinstance(error, SMTPTimeoutError):
        names.append("TimeoutError")
    return tuple(names)


#: The twin classes made so far, by (smtpproto class, smtplib base names).
_TWINS: dict[tuple[type[SMTPError], tuple[str, ...]], type[SMTPError]] = {}


def _twin(cls: type[SMTPError], bases: tuple[str, ...]) -> type[SMTPError]:
    """The subclass of ``cls`` and of the named smtplib classes (made once)."""
    made = _TWINS.get((cls, bases))
    if made is not None:
        return made
    import smtplib  # here: it loads socket and ssl; only an error pays for it

    extra = tuple(
        TimeoutError if name == "TimeoutError" else getattr(smtplib, name) for name in bases
    )
    namespace = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "__reduce__": _reduce,
        "_smtpproto_plain": cls,
    }
    return _TWINS.setdefault((cls, bases), type(cls.__name__, (cls, *extra), namespace))


def _retype(error: SMTPError, cls: type[E]) -> E:
    """A copy of ``error`` as an instance of ``cls`` (same args, attributes, cause,
    context and traceback); no constructor runs, so nothing is checked or re-escaped."""
    copy = cls.__new__(cls, *error.args)
    copy.args = error.args
    copy.__dict__.update(error.__dict__)
    copy.__cause__ = error.__cause__
    copy.__context__ = error.__context__
    copy.__suppress_context__ = error.__suppress_context__
    copy.__traceback__ = error.__traceback__
    return copy


def _reduce(self: SMTPError) -> tuple[Any, ...]:
    """Pickle a twin as its plain class and make it a twin again when loaded."""
    plain = _retype(self, type(self)._smtpproto_plain)  # type: ignore[attr-defined]  # set by _twin
    return (smtplib_compatible, (plain,))


def is_compatible(error: BaseException) -> bool:
    """Whether ``error`` is already a twin made by ``smtplib_compatible``."""
    return "_smtpproto_plain" in type(error).__dict__


def smtplib_compatible(error: V, *, sender: str | None = None) -> V:
    """``error`` as its smtplib-compatible twin (see the module docstring); anything
    that is no ``SMTPError``, or already a twin, is returned as is. ``sender`` is the
    envelope sender when the caller knows it (``SMTPSenderRefused.sender``; else the
    error's own ``sender``, which a transaction's refused MAIL carries)."""
    if not isinstance(error, SMTPError) or is_compatible(error):
        return error
    plain: type[SMTPError] = type(error)
    twin = _retype(error, _twin(plain, _smtplib_bases(error)))
    if isinstance(error, SMTPReplyError):
        twin.smtp_code = error.code  # type: ignore[attr-defined]  # smtplib's attributes
        twin.smtp_error = _text_of(error.reply)  # type: ignore[attr-defined]
        if error.command == "MAIL":
            twin.sender = error.sender if sender is None else sender  # type: ignore[attr-defined]
    elif isinstance(error, SMTPRecipientsRefused):
        twin.recipients = {  # type: ignore[attr-defined]
            address: (reply.code, _text_of(reply)) for address, reply in error.refused.items()
        }
    return twin  # type: ignore[return-value]  # a subclass of type(error)


def _text_of(reply: Reply) -> bytes:
    """A reply's lines without the code, joined with LF, escaped, as UTF-8 bytes (what
    smtplib puts in ``smtp_error``, minus the control characters)."""
    prefix = f"{reply.code} "
    lines = [line.removeprefix(prefix) for line in str(reply).split("\n")]
    return "\n".join(lines).encode("utf-8")
