"""The ``NEED_DATA`` marker both engines return from ``next_event`` (h11's convention)."""

from __future__ import annotations

import enum

__all__ = ["NEED_DATA", "NeedData"]


class NeedData(enum.Enum):
    """The type of the ``NEED_DATA`` marker."""

    NEED_DATA = "NEED_DATA"


#: Returned by ``next_event`` when it needs more bytes (``receive_data``).
NEED_DATA = NeedData.NEED_DATA
