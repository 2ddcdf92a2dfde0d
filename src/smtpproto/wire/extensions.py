"""Whether to load the compiled twins: read once, for both selectors (docs/design.md §3).

``wire.twins`` (the reply parser) and ``wire.datacodec`` (the DATA codec) each try their
compiled twin only when ``USE_EXTENSIONS`` is true: on CPython, unless the environment
variable ``SMTPPROTO_NO_EXTENSIONS`` is set to a non-empty value (``setup.py`` reads the
same variable to skip the build).
"""

from __future__ import annotations

import os
import sys

__all__ = ["NO_EXTENSIONS", "USE_EXTENSIONS"]

#: True when the environment asks for the pure-Python twins.
NO_EXTENSIONS = bool(os.environ.get("SMTPPROTO_NO_EXTENSIONS"))
#: Whether to try the compiled twins at all: CPython, and not ``NO_EXTENSIONS``.
USE_EXTENSIONS = not NO_EXTENSIONS and sys.implementation.name == "cpython"
