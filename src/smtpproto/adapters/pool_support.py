"""What the pools (``async_pool`` and the generated ``sync_pool``) share that never
waits: their option types and checks, and the rate limit.

The rate limit lets at most ``messages`` messages start in any window of ``per``
seconds (a sliding window, so no burst at a window edge exceeds it). ``RateWindow``
only does arithmetic on the times it is given: the pool passes its clock's reading
(injectable for tests) and sleeps the delay it gets back.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Literal

from ..wire import fields
from ..wire.fields import check_int
from .common import usage_error

__all__ = [
    "DEFAULT_CHECK_IDLE_AFTER",
    "Destination",
    "IdleCheck",
    "RateLimit",
    "RateWindow",
    "check_count",
    "check_seconds",
]

#: Where a pooled connection goes: (host, port); port None means the client's default.
Destination = tuple[str, "int | None"]
#: How a connection idle for a while is checked before it is lent again.
IdleCheck = Literal["noop", "rset"]
#: Seconds an idle connection may wait before it is probed (servers close idle
#: connections after RFC 5321 §4.5.3.2.7's five minutes or, in practice, much less).
DEFAULT_CHECK_IDLE_AFTER = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``messages`` messages may start in any ``per`` seconds."""

    messages: int
    per: float

    def __post_init__(self) -> None:
        check_count("RateLimit.messages", self.messages)
        check_seconds("RateLimit.per", self.per)


class RateWindow:
    """The start times of the last ``limit.messages`` messages."""

    __slots__ = ("_limit", "_starts")

    def __init__(self, limit: RateLimit) -> None:
        self._limit = limit
        self._starts: deque[float] = deque()

    def delay(self, now: float) -> float:
        """0 when a message may start at ``now`` (recorded as started), else the seconds
        to wait before asking again."""
        starts, limit = self._starts, self._limit
        while starts and starts[0] <= now - limit.per:
            starts.popleft()
        if len(starts) < limit.messages:
            starts.append(now)
            return 0.0
        return starts[0] + limit.per - now


def check_count(name: str, value: object) -> None:
    """``usage_error`` unless ``value`` is a positive int (``wire.fields``)."""
    check_int(name, value, minimum=1, error=usage_error)


def check_seconds(
    name: str, value: object, *, allow_zero: bool = False, allow_inf: bool = False
) -> None:
    """``usage_error`` unless ``value`` is a number of seconds: positive (or zero, or
    infinite, when allowed), never NaN (``wire.fields``)."""
    fields.check_seconds(name, value, allow_zero=allow_zero, allow_inf=allow_inf, error=usage_error)
