"""Choose the compiled or pure-Python DATA codec twin (see ``_twins.py`` for the rules).

``DataEncoder`` / ``DataDecoder`` are the compiled twins from ``_dataenc_c`` on CPython
when they were built, unless ``SMTPPROTO_NO_EXTENSIONS`` is set (the flag is read once,
in ``_twins``: ``USE_EXTENSIONS``). Type checkers always see the pure-Python reference
``_dataenc_py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._dataenc_py import DataDecoder as PyDataDecoder
from ._dataenc_py import DataEncoder as PyDataEncoder
from .twins import USE_EXTENSIONS

__all__ = [
    "DATA_CODEC_IMPLEMENTATION",
    "CDataDecoder",
    "CDataEncoder",
    "DataDecoder",
    "DataEncoder",
    "PyDataDecoder",
    "PyDataEncoder",
]

CDataEncoder: type[PyDataEncoder] | None
CDataDecoder: type[PyDataDecoder] | None

if TYPE_CHECKING or not USE_EXTENSIONS:
    CDataEncoder = None
    CDataDecoder = None
    DataEncoder = PyDataEncoder
    DataDecoder = PyDataDecoder
else:
    try:
        from ._dataenc_c import DataDecoder as CDataDecoder
        from ._dataenc_c import DataEncoder as CDataEncoder
    except ImportError:  # not built (pure-Python install); the Python twin serves
        CDataEncoder = None
        CDataDecoder = None
        DataEncoder = PyDataEncoder
        DataDecoder = PyDataDecoder
    else:
        DataEncoder = CDataEncoder
        DataDecoder = CDataDecoder

#: Which twin ``DataEncoder``/``DataDecoder`` are: ``"c"`` (compiled) or ``"python"``.
DATA_CODEC_IMPLEMENTATION = "python" if DataEncoder is PyDataEncoder else "c"
