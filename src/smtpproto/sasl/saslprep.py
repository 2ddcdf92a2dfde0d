"""SASLprep (RFC 4013): the stringprep profile for user names and passwords.

Theory of operation: RFC 4013 §2 applies, in order, the mapping (non-ASCII spaces
become U+0020, "commonly mapped to nothing" characters disappear), NFKC normalisation,
the prohibited-output check, the bidirectional check (RFC 3454 §6) and, for stored
strings, the unassigned-code-point check. Every table is the Unicode 3.2 one that
RFC 3454 fixes, taken from the standard library's ``stringprep`` module, and NFKC uses
``unicodedata.ucd_3_2_0`` for the same reason, so results do not drift with Python's
Unicode version.

Failures raise :class:`SASLprepError` (a ``ValueError``) whose message names the rule,
never the character or its position: the input is usually a password.
"""

from __future__ import annotations

import stringprep
import unicodedata

__all__ = ["SASLprepError", "saslprep"]


class SASLprepError(ValueError):
    """The string is not allowed by RFC 4013; the message never contains the string."""


# RFC 4013 §2.3: C.1.2, C.2.1, C.2.2, C.3, C.4, C.5, C.6, C.7, C.8, C.9.
_PROHIBITED = (
    stringprep.in_table_c12,
    stringprep.in_table_c21_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(value: str, *, allow_unassigned: bool = False) -> str:
    """Return ``value`` prepared by SASLprep (RFC 4013).

    ``allow_unassigned`` selects the "query" rules of RFC 3454 §7 (unassigned code
    points pass through), which RFC 5802 §5.1 names for SCRAM user names; the default
    applies the "stored string" rules (RFC 5802 §2.2 names them for SCRAM passwords).
    The empty string stays empty (callers decide whether an empty user name is allowed).
    Raises :class:`SASLprepError` on a prohibited character, a bidirectional-rule
    violation or (stored strings only) an unassigned code point.
    """
    # RFC 4013 §2.1: mapping.
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch for ch in value if not stringprep.in_table_b1(ch)
    )
    # RFC 4013 §2.2: normalisation form KC (Unicode 3.2, as RFC 3454 fixes it).
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for ch in prepared:
        # RFC 4013 §2.3: prohibited output.
        if any(check(ch) for check in _PROHIBITED):
            raise SASLprepError("prohibited character (RFC 4013 section 2.3)")
        # RFC 4013 §2.5 / RFC 3454 §7: unassigned code points, stored strings only.
        if not allow_unassigned and stringprep.in_table_a1(ch):
            raise SASLprepError("unassigned code point (RFC 4013 section 2.5)")
    # RFC 4013 §2.4 / RFC 3454 §6: bidirectional characters.
    if any(stringprep.in_table_d1(ch) for ch in prepared):
        if any(stringprep.in_table_d2(ch) for ch in prepared):
            raise SASLprepError("string mixes right-to-left and left-to-right characters")
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            raise SASLprepError("right-to-left string must start and end with such a character")
    return prepared
