"""Choose the compiled or pure-Python DATA codec twin (see ``wire.twins`` for the rules).

``DataEncoder`` / ``DataDecoder`` / ``LineEndNormalizer`` (BDAT line ends, RFC 3030 §2)
are the compiled twins from ``_dataenc_c`` on CPython when they were built, unless
``SMTPPROTO_NO_EXTENSIONS`` is set (the flag is read once, in ``wire.extensions``:
``USE_EXTENSIONS``). Type checkers always see the pure-Python reference ``_dataenc_py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._dataenc_py import DataDecoder as PyDataDecoder
from ._dataenc_py import DataEncoder as PyDataEncoder
from ._dataenc_py import LineEndNormalizer as PyLineEndNormalizer
from .extensions import USE_EXTENSIONS

__all__ = [
    "DATA_CODEC_IMPLEMENTATION",
    "CDataDecoder",
    "CDataEncoder",
    "CLineEndNormalizer",
    "DataDecoder",
    "DataEncoder",
    "LineEndNormalizer",
    "PyDataDecoder",
    "PyDataEncoder",
    "PyLineEndNormalizer",
]

CDataEncoder: type[PyDataEncoder] | None
CDataDecoder: type[PyDataDecoder] | None
CLineEndNormalizer: type[PyLineEndNormalizer] | None

if TYPE_CHECKING or not USE_EXTENSIONS:
    CDataEncoder = None
    CDataDecoder = None
    CLineEndNormalizer = None
    DataEncoder = PyDataEncoder
    DataDecoder = PyDataDecoder
    LineEndNormalizer = PyLineEndNormalizer
else:
    try:
        from ._dataenc_c import DataDecoder as CDataDecoder
        from ._dataenc_c import DataEncoder as CDataEncoder
        from ._dataenc_c import LineEndNormalizer as CLineEndNormalizer
    except ImportError:  # not built (pure-Python install); the Python twin serves
        CDataEncoder = None
        CDataDecoder = None
        CLineEndNormalizer = None
        DataEncoder = PyDataEncoder
        DataDecoder = PyDataDecoder
        LineEndNormalizer = PyLineEndNormalizer
    else:
        DataEncoder = CDataEncoder
        DataDecoder = CDataDecoder
        LineEndNormalizer = CLineEndNormalizer

#: Which twin ``DataEncoder``/``DataDecoder``/``LineEndNormalizer`` are: ``"c"`` (compiled)
#: or ``"python"``.
DATA_CODEC_IMPLEMENTATION = "python" if DataEncoder is PyDataEncoder else "c"
