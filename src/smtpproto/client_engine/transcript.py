"""``Transcript``: the caller's transcript hook, behind redaction.

Every line sent and received goes through ``line``, which removes every known secret
first (docs/design.md §4 rule 11): the AUTH mechanisms' ``secrets`` and their base64
forms. One pass over the line, longest secret first, so a replacement is never
rescanned. AUTH lines are already replaced whole by the sender; secrets shorter than
``MIN_REDACTED_SECRET`` octets are not hunted for elsewhere, because every "e" of a
one-letter password would otherwise shred the whole transcript. Content lines are
summarised unless ``ClientConfig.transcript_content``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from typing import Literal

__all__ = ["MIN_REDACTED_SECRET", "Transcript", "TranscriptHook"]

#: Called with ``"C"`` (sent) or ``"S"`` (received) and one line without its CRLF.
TranscriptHook = Callable[[Literal["C", "S"], bytes], None]

#: Secrets shorter than this are redacted only where the engine replaces whole lines.
MIN_REDACTED_SECRET = 4


def _secret_pattern(secrets: tuple[bytes, ...]) -> re.Pattern[bytes] | None:
    """One alternation of the secrets worth hunting for, longest first."""
    hunted = sorted((s for s in secrets if len(s) >= MIN_REDACTED_SECRET), key=len, reverse=True)
    if not hunted:
        return None
    return re.compile(b"|".join(re.escape(secret) for secret in hunted))


class Transcript:
    """Lines to the caller's hook, secrets removed."""

    __slots__ = ("_content", "_hook", "_pattern", "_secrets")

    def __init__(self, hook: TranscriptHook, *, content: bool) -> None:
        """``hook`` gets every line; ``content`` (``ClientConfig.transcript_content``)
        shows message content verbatim instead of a summary."""
        self._hook = hook
        self._content = content
        self._secrets: tuple[bytes, ...] = ()
        self._pattern: re.Pattern[bytes] | None = None

    def add_secrets(self, secrets: Iterable[bytes]) -> None:
        """Redact ``secrets`` (and their base64 forms) from now on."""
        found = [secret for secret in secrets if secret]
        found += [base64.b64encode(secret) for secret in found]
        self._secrets = tuple(dict.fromkeys(self._secrets + tuple(found)))
        self._pattern = _secret_pattern(self._secrets)

    def line(self, direction: Literal["C", "S"], line: bytes) -> None:
        """One line, without its CRLF, sent ("C") or received ("S")."""
        pattern = self._pattern
        if pattern is not None:
            line = pattern.sub(b"<redacted>", line)
        self._hook(direction, line)

    def wire(self, wire: bytes) -> None:
        """Every line of a command the client sends."""
        for line in wire.split(b"\r\n")[:-1]:
            self.line("C", line)

    def content(self, wire: bytes, *, verbatim_ok: bool = True) -> None:
        """Message content: verbatim if the config asks for it, else a summary."""
        if verbatim_ok and self._content:
            for line in wire.split(b"\r\n")[:-1]:
                self.line("C", line)
        elif wire:
            lines = wire.count(b"\r\n")
            self.line("C", b"<content: %d octets, %d line ends>" % (len(wire), lines))
