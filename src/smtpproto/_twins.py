"""Choose the compiled or pure-Python twins: the only module that names compiled modules.

The compiled twin is used on CPython when it was built, unless the environment
variable ``SMTPPROTO_NO_EXTENSIONS`` is set to a non-empty value. Type checkers always
see the pure-Python reference.
"""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING

from ._reply_py import ReplyParser as PyReplyParser

__all__ = ["PARSER_IMPLEMENTATION", "CReplyParser", "PyReplyParser", "ReplyParser"]

#: True when the environment asks for the pure-Python twins.
NO_EXTENSIONS = bool(os.environ.get("SMTPPROTO_NO_EXTENSIONS"))

CReplyParser: type[PyReplyParser] | None

if TYPE_CHECKING or NO_EXTENSIONS or platform.python_implementation() != "CPython":
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
