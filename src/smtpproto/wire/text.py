"""Display helpers for text that came from the peer (docs/design.md §4 rule 12).

Server text is data. Before it reaches a terminal or a log every character that
``str.isprintable()`` rejects — C0 controls (ESC, CR, LF, NUL), DEL, C1 controls,
U+2028/U+2029 and other separators or unassigned code points — is replaced by its
Python escape (``\\x1b``, ``\\r``, ``\\u2028`` ...), so a hostile reply cannot move the
cursor, forge a log line or change a terminal's state. This module imports nothing, so any
layer can use it.
"""

from __future__ import annotations

__all__ = ["escape_text"]


def escape_text(text: str) -> str:
    """Return ``text`` with every non-printable character as a Python escape.

    The result is printable (``result.isprintable()`` is true). Printable characters,
    backslashes included, are kept as they are, so the escaping is for display, not a
    reversible encoding.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
