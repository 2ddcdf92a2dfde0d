"""Type and range checks for the fields of the configuration values.

Every config (``ServerConfig``, ``ClientConfig``, ``Timeouts``, ``MailOptions``, the
built-in server's and the fuzzer's options) checks each field at construction, so a
mistake is one clear error naming the field, never a surprise later (a ``True`` taken
as the size 1, a NaN timeout that never fires, ``lmtp="no"`` taken as true). The
rules, one place for all:

* a bool is never a number, though Python's ``bool`` is an ``int`` (``max_message_size
  =True`` is a mistake, not one octet);
* a count or size is an ``int`` within its bounds;
* seconds are an ``int`` or ``float``, never NaN, positive (zero or infinity only
  where the field says so);
* a flag is a ``bool`` (``None`` only where the field allows it).

Each check raises ``error(message)`` (the config's usual exception: ``ValueError``,
the engine's ``LocalProtocolError``, or a caller mistake of the drivers) with a message
of the form ``NAME must be ..., got VALUE``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

__all__ = ["check_flag", "check_int", "check_seconds"]


def check_int(
    name: str,
    value: object,
    *,
    minimum: int,
    maximum: int | None = None,
    allow_none: bool = False,
    error: Callable[[str], Exception] = ValueError,
) -> None:
    """``error`` unless ``value`` is an int (not a bool) in ``minimum..maximum`` (or
    ``None`` when allowed). Without ``maximum`` the bound is ``sys.maxsize``: every
    such value is a size or a count, and the compiled twins hold them in a C
    ``Py_ssize_t`` (a larger one would be refused only when first used)."""
    if value is None and allow_none:
        return
    top = sys.maxsize if maximum is None else maximum
    if type(value) is not int or value < minimum or value > top:
        bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        if maximum is None and type(value) is int and value > top:
            bound += f" and at most {top}"
        none = " or None" if allow_none else ""
        raise error(f"{name} must be an int {bound}{none}, got {value!r}")


def check_seconds(
    name: str,
    value: object,
    *,
    allow_none: bool = False,
    allow_zero: bool = False,
    allow_inf: bool = False,
    error: Callable[[str], Exception] = ValueError,
) -> None:
    """``error`` unless ``value`` is a number of seconds (an int or float, not a bool,
    not NaN): positive, or zero / infinite when allowed (or ``None`` when allowed)."""
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or math.isnan(value)
        or value < 0
        or (value == 0 and not allow_zero)
        or (math.isinf(value) and not allow_inf)
    ):
        kind = "a non-negative" if allow_zero else "a positive"
        finite = "" if allow_inf else " finite"
        none = " or None" if allow_none else ""
        raise error(f"{name} must be {kind}{finite} number of seconds{none}, got {value!r}")


def check_flag(
    name: str,
    value: object,
    *,
    allow_none: bool = False,
    error: Callable[[str], Exception] = ValueError,
) -> None:
    """``error`` unless ``value`` is a bool (or ``None`` when allowed)."""
    if type(value) is bool or (value is None and allow_none):
        return
    none = " or None" if allow_none else ""
    raise error(f"{name} must be True or False{none}, got {value!r}")
