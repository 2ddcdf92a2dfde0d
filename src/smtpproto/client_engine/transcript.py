"""``Transcript``: the caller's transcript hook, behind redaction.

Every line sent and received goes through ``line``, which removes every known secret
first (docs/design.md §4 rule 11) with the connection's ``Redactor`` (``redaction``;
``NO_SECRETS`` until AUTH is sent, when ``Session.learn_secrets`` sets ``redactor``).
AUTH lines are already replaced whole by the sender. Content lines are summarised
unless ``ClientConfig.transcript_content``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # an annotation only: the config loads without the reply module
    from .redaction import NoSecrets, Redactor

__all__ = ["Transcript", "TranscriptHook"]

#: Called with ``"C"`` (sent) or ``"S"`` (received) and one line without its CRLF.
TranscriptHook = Callable[[Literal["C", "S"], bytes], None]


class Transcript:
    """Lines to the caller's hook, secrets removed."""

    __slots__ = ("_content", "_hook", "redactor")

    def __init__(
        self, hook: TranscriptHook, *, content: bool, redactor: Redactor | NoSecrets
    ) -> None:
        """``hook`` gets every line; ``content`` (``ClientConfig.transcript_content``)
        shows message content verbatim instead of a summary; ``redactor`` holds the
        connection's secrets."""
        self._hook = hook
        self._content = content
        self.redactor = redactor

    def line(self, direction: Literal["C", "S"], line: bytes) -> None:
        """One line, without its CRLF, sent ("C") or received ("S")."""
        self._hook(direction, self.redactor.redact(line))

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
