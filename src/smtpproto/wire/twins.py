"""Choose the compiled or pure-Python reply parser twin: the only module naming ``_speedups``.

The compiled twin is used on CPython when it was built, unless the environment
variable ``SMTPPROTO_NO_EXTENSIONS`` is set to a non-empty value (``wire.extensions``
reads it once: ``USE_EXTENSIONS`` says whether to try). Type checkers always see the
pure-Python reference. The DATA
codec twins follow the same rule in ``wire.datacodec``, the only module naming
``_dataenc_c``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._reply_py import ReplyParser as PyReplyParser
from .extensions import NO_EXTENSIONS, USE_EXTENSIONS

__all__ = [
    "NO_EXTENSIONS",
    "PARSER_IMPLEMENTATION",
    "USE_EXTENSIONS",
    "CReplyParser",
    "PyReplyParser",
    "ReplyParser",
]

CReplyParser: type[PyReplyParser] | None

if TYPE_CHECKING or not USE_EXTENSIONS:
    CReplyParser = None
    ReplyParser = PyReplyParser
else:
    try:
        from ._speedups import ReplyParser as CReplyParser
    except ImportError:  # not built (pure-Python install); the Python twin serves
        CReplyParser = None
        ReplyParser = PyReplyParser
    else:
        ReplyParser = CReplyParser

#: Which twin ``ReplyParser`` is: ``"c"`` (compiled) or ``"python"``.
PARSER_IMPLEMENTATION = "python" if ReplyParser is PyReplyParser else "c"
