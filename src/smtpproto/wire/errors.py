"""The engine's exception hierarchy (docs/design.md §2).

``ProtocolError`` is the base. ``LocalProtocolError`` means the caller misused the API or
asked for something the server did not offer; ``RemoteProtocolError`` means the server
broke the protocol. A well-formed 4xx/5xx reply is never an exception inside the engine:
it is an event. Any other exception type escaping the engine is a bug.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base class of every error the sans-IO engine raises on purpose."""


class LocalProtocolError(ProtocolError):
    """The caller asked for something the protocol (or this server) does not allow.

    Raised before any byte is produced: nothing was queued, the connection state is
    unchanged unless the docstring of the raising method says otherwise.
    """


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that break the protocol.

    ``offset`` is the position in the received byte stream (counted from the first byte
    ever fed) where the broken rule was detected, or ``None`` when it does not apply.
    """

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} (at stream offset {offset})")
        self.offset = offset
