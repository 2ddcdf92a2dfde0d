"""SASL client mechanisms for SMTP AUTH (RFC 4954), sans-IO.

Theory of operation: a mechanism is a small state machine that turns decoded server
challenges into raw responses. The connection engine owns everything about the wire:
base64, the ``=`` empty initial response, RFC 4954's 512-octet rule for the AUTH line,
the endless-challenge guard, answering ``*`` when a mechanism raises, and redacting
:attr:`ClientMechanism.secrets` from transcripts. A mechanism sees raw bytes only:

1. ``initial_response()`` once: raw client-first data, or ``None`` to wait for a 334.
2. ``respond(challenge)`` for every 334: raw answer; :class:`SASLError` aborts.
3. ``finish()`` when the server said 235: raises :class:`SASLError` if the exchange is
   not complete (SCRAM: the server never proved it knows the password).

Writing your own mechanism::

    class Token(ClientMechanism):
        name = "X-TOKEN"  # RFC 4422 §3.1 syntax, checked when the class is defined

        def __init__(self, token: str) -> None:
            self._token = token.encode()

        def initial_response(self) -> bytes | None:
            return self._token

        def respond(self, challenge: bytes) -> bytes:
            raise SASLError("X-TOKEN takes no challenge")

        @property
        def secrets(self) -> tuple[bytes, ...]:
            return (self._token,)

Error messages and reprs never contain passwords, tokens or responses (docs/design.md §4
rule 11); text that came from the server is escaped before it appears in a message.

The names below are imported on first use (PEP 562, ``wire/lazy.py``), so the engine's
``sasl.base`` does not bring in SCRAM and SASLprep until a mechanism is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..wire.lazy import lazy_exports

if TYPE_CHECKING:
    from .mechanisms import (
        DEFAULT_SCRAM_MAX_ITERATIONS,
        DEFAULT_SCRAM_MIN_ITERATIONS,
        MECHANISM_PREFERENCE,
        Anonymous,
        ChannelBinding,
        ClientMechanism,
        CramMD5,
        External,
        Login,
        OAuthBearer,
        Plain,
        SASLError,
        Scram,
        ScramSHA1,
        ScramSHA1Plus,
        ScramSHA256,
        ScramSHA256Plus,
        XOAuth2,
        choose_mechanism,
        validate_mechanism_name,
    )

#: Where each public name lives; the imports above say the same for type checkers.
_HOMES = {
    ".mechanisms": (
        "DEFAULT_SCRAM_MAX_ITERATIONS",
        "DEFAULT_SCRAM_MIN_ITERATIONS",
        "MECHANISM_PREFERENCE",
        "Anonymous",
        "ChannelBinding",
        "ClientMechanism",
        "CramMD5",
        "External",
        "Login",
        "OAuthBearer",
        "Plain",
        "SASLError",
        "Scram",
        "ScramSHA1",
        "ScramSHA1Plus",
        "ScramSHA256",
        "ScramSHA256Plus",
        "XOAuth2",
        "choose_mechanism",
        "validate_mechanism_name",
    )
}
if not TYPE_CHECKING:  # type checkers see the imports, so a typo stays an error
    __getattr__, __dir__ = lazy_exports(__name__, _HOMES)

__all__ = [
    "DEFAULT_SCRAM_MAX_ITERATIONS",
    "DEFAULT_SCRAM_MIN_ITERATIONS",
    "MECHANISM_PREFERENCE",
    "Anonymous",
    "ChannelBinding",
    "ClientMechanism",
    "CramMD5",
    "External",
    "Login",
    "OAuthBearer",
    "Plain",
    "SASLError",
    "Scram",
    "ScramSHA1",
    "ScramSHA1Plus",
    "ScramSHA256",
    "ScramSHA256Plus",
    "XOAuth2",
    "choose_mechanism",
    "validate_mechanism_name",
]
