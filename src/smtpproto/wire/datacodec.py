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
    "content_encoder",
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


def content_encoder(
    body: str | None, *, enforce_line_length: bool, allow_nul: bool
) -> PyDataEncoder:
    """The client's DATA encoder for a message declared ``BODY=body`` (None: no BODY),
    from ``ClientConfig``'s ``enforce_line_length`` and ``allow_nul``: lines over 998
    octets refused unless the first is off (RFC 5321 §4.5.3.1.6), NUL unless the second
    is on (RFC 5321 §4.5.2), 8-bit octets unless ``BODY=8BITMIME`` (RFC 6152). The
    engine encodes the content with it after the 354; the drivers ask its ``refusal``
    about content they hold whole before MAIL (BDAT content too, unless
    ``BODY=BINARYMIME``: RFC 3030 §3), so both refuse alike."""
    return DataEncoder(
        max_line_length=998 if enforce_line_length else None,
        allow_nul=allow_nul,
        allow_8bit=body == "8BITMIME",
    )
