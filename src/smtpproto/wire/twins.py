"""Choose the compiled or pure-Python twins of ``_speedups``: the only module naming it.

The compiled twin is used on CPython when it was built, unless the environment
variable ``SMTPPROTO_NO_EXTENSIONS`` is set to a non-empty value (``wire.extensions``
reads it once: ``USE_EXTENSIONS`` says whether to try). Type checkers always see the
pure-Python reference. ``_speedups`` twins two things: the reply parser (``_reply_py``)
and ``slot_filler`` (``_slots_py``). The DATA codec twins follow the same rule in
``wire.datacodec``, the only module naming ``_dataenc_c``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._reply_py import ReplyParser as PyReplyParser
from ._slots_py import slot_filler as py_slot_filler
from .extensions import NO_EXTENSIONS, USE_EXTENSIONS

__all__ = [
    "NO_EXTENSIONS",
    "PARSER_IMPLEMENTATION",
    "USE_EXTENSIONS",
    "CReplyParser",
    "PyReplyParser",
    "ReplyParser",
    "c_slot_filler",
    "py_slot_filler",
    "slot_filler",
]

CReplyParser: type[PyReplyParser] | None
#: The compiled ``slot_filler`` (``_slots_py``'s twin), None when not in use.
c_slot_filler: Callable[[type[Any], Sequence[str]], Callable[..., Any]] | None

if TYPE_CHECKING or not USE_EXTENSIONS:
    CReplyParser = None
    ReplyParser = PyReplyParser
    c_slot_filler = None
    slot_filler = py_slot_filler
else:
    try:
        from ._speedups import ReplyParser as CReplyParser
        from ._speedups import slot_filler as c_slot_filler
    except ImportError:  # not built (pure-Python install); the Python twin serves
        CReplyParser = None
        ReplyParser = PyReplyParser
        c_slot_filler = None
        slot_filler = py_slot_filler
    else:
        ReplyParser = CReplyParser
        slot_filler = c_slot_filler

#: Which twin ``ReplyParser`` is: ``"c"`` (compiled) or ``"python"``.
PARSER_IMPLEMENTATION = "python" if ReplyParser is PyReplyParser else "c"
