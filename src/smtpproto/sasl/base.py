"""The SASL client interface every mechanism implements, and its shared checks.

Public names are re-exported from :mod:`smtpproto.sasl`; see its docstring for the
theory of operation and how to write a mechanism.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ..wire.errors import LocalProtocolError
from ..wire.text import escape_text

__all__ = [
    "ChannelBinding",
    "ClientMechanism",
    "SASLError",
    "check_field",
    "show_text",
    "validate_mechanism_name",
]

#: RFC 4422 §3.1: sasl-mech = 1*20mech-char; mech-char = UPPER-ALPHA / DIGIT / "-" / "_".
MECH_NAME = re.compile(r"[A-Z0-9_-]{1,20}")
FORBIDDEN_CHARS = ("\x00", "\r", "\n")


class SASLError(LocalProtocolError):
    """A SASL mechanism refused its input or the server's challenge.

    Raised by constructors (bad credentials shape) and by ``respond``/``finish`` (the
    engine then cancels the exchange with ``*``). The message never contains a secret.
    """


def validate_mechanism_name(name: str) -> str:
    """Return ``name`` if it is a valid SASL mechanism name (RFC 4422 §3.1), else raise.

    The grammar is 1 to 20 characters from upper-case ASCII letters, digits, ``-`` and
    ``_``; lower case is refused (callers comparing EHLO keywords upper-case first).
    """
    if not isinstance(name, str) or MECH_NAME.fullmatch(name) is None:
        raise SASLError(f"invalid SASL mechanism name {show_text(str(name))}")
    return name


def show_text(text: str, limit: int = 80) -> str:
    """Quoted, escaped, bounded form of peer text for messages (docs/design.md §4 rule 12)."""
    shown = escape_text(text[:limit])
    return f"'{shown}'" + ("..." if len(text) > limit else "")


def check_field(
    value: str, what: str, *, forbid: tuple[str, ...] = FORBIDDEN_CHARS, nonempty: bool = False
) -> str:
    """Return ``value`` if it is a str free of ``forbid`` characters with a UTF-8 form;
    else SASLError. A lone surrogate (what ``surrogateescape`` leaves for undecodable
    octets: an environment variable, a file name) has no UTF-8 form: refused here, the
    value never shown, rather than as a ``UnicodeEncodeError`` carrying it whole
    (``.object``) out of a later ``encode``. (Any UTF-8 str without a surrogate encodes.)"""
    if not isinstance(value, str):
        raise SASLError(f"{what} must be a str")
    if nonempty and not value:
        raise SASLError(f"{what} must not be empty")
    if any(ch in value for ch in forbid):
        raise SASLError(f"{what} contains a forbidden control character (NUL, CR or LF)")
    if not value.isascii():
        surrogate = next((i for i, ch in enumerate(value) if "\ud800" <= ch <= "\udfff"), -1)
        if surrogate >= 0:  # raised outside any handler: no __context__ holds the value
            raise SASLError(
                f"{what} has no UTF-8 form (a lone surrogate at index {surrogate}: "
                "undecodable octets?)"
            )
    return value


class ClientMechanism(abc.ABC):
    """One SASL exchange, client side. Instances are single-use."""

    name: ClassVar[str]
    #: False for challenge-response mechanisms (CRAM-MD5, SCRAM) whose password never
    #: crosses the wire: a challenge holding it is chance (a password "host" inside
    #: CRAM-MD5's "<...@localhost>") or a server that stores it, never an echo, so the
    #: client answers it (the ``AuthChallenge`` event still hides it).
    sends_secrets: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            validate_mechanism_name(cls.name)

    @abc.abstractmethod
    def initial_response(self) -> bytes | None:
        """Raw client-first data (``b""`` for an empty one), or ``None`` to wait for 334."""

    @abc.abstractmethod
    def respond(self, challenge: bytes) -> bytes:
        """Answer one decoded 334 challenge; raise :class:`SASLError` to abort."""

    def finish(self) -> None:  # noqa: B027 -- deliberately a no-op default, not abstract
        """The server said 235; raise :class:`SASLError` if the exchange is incomplete."""

    @property
    def secrets(self) -> tuple[bytes, ...]:
        """Raw values that must be redacted from transcripts (never empty values)."""
        return ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


@dataclass(frozen=True, slots=True)
class ChannelBinding:
    """Channel binding data the adapter took from the TLS layer, for ``SCRAM-*-PLUS``.

    ``tls-exporter`` (RFC 9266: 32 octets exported with label "EXPORTER-Channel-Binding"
    and no context; the one to use with TLS 1.3) or ``tls-server-end-point`` (RFC 5929
    §4: the hash of the server certificate).
    """

    type: Literal["tls-exporter", "tls-server-end-point"]
    data: bytes

    def __post_init__(self) -> None:
        if self.type not in ("tls-exporter", "tls-server-end-point"):
            raise SASLError(f"unsupported channel binding type {show_text(str(self.type))}")
        if not isinstance(self.data, bytes) or not self.data:
            raise SASLError("channel binding data must be non-empty bytes")
