"""Type stub of the compiled twin; it mirrors ``_reply_py.ReplyParser`` exactly."""

from __future__ import annotations

from .reply import Reply

__all__ = ["ReplyParser"]

#: True when replies are built by filling Reply's slots directly (the fast path).
_FAST_REPLY: bool

class ReplyParser:
    """Incremental, bounded parser turning server bytes into ``Reply`` values."""

    def __init__(
        self,
        *,
        max_line_length: int = ...,
        max_lines: int = ...,
        max_reply_bytes: int = ...,
        allow_bare_lf: bool = ...,
    ) -> None: ...
    @property
    def buffered(self) -> int: ...
    @property
    def failed(self) -> bool: ...
    def feed(self, data: bytes | bytearray | memoryview) -> list[Reply]: ...
    def feed_eof(self) -> None: ...
