"""Type stub of the compiled twin; it mirrors ``_reply_py.ReplyParser`` exactly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .reply import Reply

__all__ = ["ReplyParser", "SlotFiller", "slot_filler"]

T = TypeVar("T")

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
    def __getstate__(self) -> dict[str, object]: ...
    def __setstate__(self, state: object) -> None: ...
    def __reduce__(self) -> tuple[Any, ...]: ...
    @property
    def buffered(self) -> int: ...
    @property
    def failed(self) -> bool: ...
    def feed(self, data: bytes | bytearray | memoryview) -> list[Reply]: ...
    def feed_eof(self) -> None: ...

class SlotFiller:
    """What ``slot_filler`` returns; it mirrors ``_slots_py.slot_filler``'s callables."""

    def __init__(self, cls: type[Any], names: Sequence[str]) -> None: ...
    def __copy__(self) -> SlotFiller: ...
    def __deepcopy__(self, memo: object) -> SlotFiller: ...
    def __call__(self, *values: object) -> Any: ...

def slot_filler(cls: type[T], names: Sequence[str]) -> Callable[..., T]: ...
