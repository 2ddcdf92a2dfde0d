"""``Reply``: one server reply as an immutable value, and RFC 3463 enhanced status codes.

A reply is its three-digit code plus the text of each line exactly as received
(``raw_lines``). Everything else — decoded text, the enhanced status code, the reply
class — is derived from those two fields on demand, so a parser only has to store two
references per reply (see ``_make_reply``), which keeps the hot path cheap.

Text that came from the server is data: ``repr()`` and ``str()`` escape control
characters so a hostile reply cannot inject into a terminal or a log (docs/design.md §4
rule 12).
"""

from __future__ import annotations

import enum
import re
from typing import Any, NamedTuple

from .codes import explain
from .text import escape_text

__all__ = ["EnhancedStatusCode", "Reply", "ReplyClass", "escape_text"]


class ReplyClass(enum.IntEnum):
    """The first digit of a reply code (RFC 5321 §4.2.1) and what it tells the sender."""

    #: 2yz: the command was accepted.
    SUCCESS = 2
    #: 3yz: accepted so far; send the next piece (DATA content, AUTH response).
    INTERMEDIATE = 3
    #: 4yz: not done now; the same command may succeed later — retry with back-off.
    TRANSIENT_FAILURE = 4
    #: 5yz: will not succeed as is — fix the command or drop the address, do not retry.
    PERMANENT_FAILURE = 5


class EnhancedStatusCode(NamedTuple):
    """An RFC 3463 enhanced status code ``class.subject.detail``, e.g. ``5.1.1``.

    ``class_`` is 2, 4 or 5; ``subject`` and ``detail`` are 0-999 (one to three digits,
    RFC 3463 §2, without leading zeros beyond the digit count the wire used).
    """

    class_: int
    subject: int
    detail: int

    def __str__(self) -> str:
        return f"{self.class_}.{self.subject}.{self.detail}"

    @classmethod
    def parse(cls, text: str) -> EnhancedStatusCode:
        """Parse ``"5.1.1"``; raise ``ValueError`` on anything else."""
        match = _ENHANCED_ONLY.fullmatch(text)
        if match is None:
            raise ValueError(f"not an RFC 3463 enhanced status code: {text!r}")
        return cls(int(match[1]), int(match[2]), int(match[3]))


# RFC 3463 §2: status-code = class "." subject "." detail; class = "2"/"4"/"5";
# subject = 1*3digit; detail = 1*3digit. RFC 2034 §4: it precedes the text, followed by
# a space (or ends the line).
_ENHANCED_PREFIX = re.compile(rb"([245])\.(\d{1,3})\.(\d{1,3})(?: |$)")
_ENHANCED_ONLY = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})", re.ASCII)


class Reply:
    """One complete server reply (RFC 5321 §4.2).

    ``code`` is the three-digit reply code; ``raw_lines`` holds, for every line, the
    octets after the code and its separator, without the CRLF, exactly as received
    (NUL, bare CR and non-UTF-8 bytes included). Decoding for display never raises:
    invalid UTF-8 becomes U+FFFD in ``lines`` and ``text`` while ``raw_lines`` keeps the
    original octets.
    """

    __slots__ = ("code", "raw_lines")

    code: int
    raw_lines: tuple[bytes, ...]

    def __init__(self, code: int, raw_lines: tuple[bytes, ...] | list[bytes] = (b"",)) -> None:
        if not isinstance(code, int) or not 200 <= code <= 599:
            raise ValueError(f"reply code must be an int from 200 to 599, got {code!r}")
        if not isinstance(raw_lines, (tuple, list)):
            raise ValueError(f"raw_lines must be a tuple or list of bytes, got {raw_lines!r}")
        lines = tuple(raw_lines)
        if not lines:
            raise ValueError("a reply has at least one line")
        for line in lines:
            if not isinstance(line, bytes) or b"\n" in line:
                raise ValueError("each reply line is bytes without a line feed")
        _set_code(self, code)
        _set_lines(self, lines)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Reply is immutable (tried to set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Reply is immutable (tried to delete {name!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Reply):
            return NotImplemented
        return self.code == other.code and self.raw_lines == other.raw_lines

    def __hash__(self) -> int:
        return hash((self.code, self.raw_lines))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Reply, (self.code, self.raw_lines))

    # -- derived views ---------------------------------------------------------------

    @property
    def lines(self) -> tuple[str, ...]:
        """Each line's text decoded as UTF-8 (invalid octets become U+FFFD)."""
        return tuple(line.decode("utf-8", "replace") for line in self.raw_lines)

    @property
    def reply_class(self) -> ReplyClass:
        """The reply's class from its first digit (RFC 5321 §4.2.1)."""
        return ReplyClass(self.code // 100)

    @property
    def is_success(self) -> bool:
        """2yz: positive completion."""
        return 200 <= self.code < 300

    @property
    def is_intermediate(self) -> bool:
        """3yz: positive intermediate — the server waits for more (DATA, AUTH)."""
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """4yz: transient negative completion — retry later, with back-off."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """5yz: permanent negative completion — do not retry the same command as is."""
        return 500 <= self.code < 600

    @property
    def is_error(self) -> bool:
        """4yz or 5yz."""
        return self.code >= 400

    @property
    def enhanced(self) -> EnhancedStatusCode | None:
        """The RFC 3463 enhanced status code at the start of the first line, if any.

        Only a code whose class digit matches the reply's first digit counts (RFC 3463
        §2: "the class sub-code ... MUST match the first digit of the basic reply
        code"); 3yz replies carry none (RFC 2034 §3). Anything else is left as text.
        """
        first_digit = self.code // 100
        if first_digit == 3:
            return None
        match = _ENHANCED_PREFIX.match(self.raw_lines[0])
        if match is None or int(match[1]) != first_digit:
            return None
        return EnhancedStatusCode(int(match[1]), int(match[2]), int(match[3]))

    @property
    def text(self) -> str:
        """The reply text, lines joined with ``\\n``, without the enhanced code prefix.

        RFC 2034 §4 repeats the enhanced code on every line of a multiline reply; it is
        removed from each line that starts with that same code and kept where a line
        carries something else.
        """
        enhanced = self.enhanced
        lines = self.raw_lines
        if enhanced is not None:
            prefix = str(enhanced).encode("ascii")
            stripped = []
            for line in lines:
                if line.startswith(prefix) and (
                    len(line) == len(prefix) or line[len(prefix)] == 0x20
                ):
                    line = line[len(prefix) + 1 :]
                stripped.append(line)
            lines = tuple(stripped)
        return "\n".join(line.decode("utf-8", "replace") for line in lines)

    def explain(self, command: str | None = None) -> str:
        """Explain the reply in plain words: meaning, and what the sender should do.

        ``command`` (``"RCPT"``, ``"MAIL FROM:<a@b>"``, ...) is the command this reply
        answers; it refines the advice for codes whose meaning depends on it (550, 553,
        552, 452). The advice is a hint: servers use codes differently (see
        ``smtpproto.codes``). The server's text follows, quoted, every control character
        escaped (docs/design.md §4 rule 12), continuation lines joined with ``" / "``.
        """
        explanation = explain(self.code, self.enhanced, command=command)
        server_text = " / ".join(escape_text(line) for line in self.text.split("\n"))
        if server_text.strip():
            explanation += f' Server said: "{server_text}"'
        return explanation

    # -- wire form and display --------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The reply in wire form: ``code-text`` lines then ``code text``, with CRLFs."""
        code = str(self.code).encode("ascii")
        last = len(self.raw_lines) - 1
        return b"".join(
            code + (b" " if index == last else b"-") + line + b"\r\n"
            for index, line in enumerate(self.raw_lines)
        )

    def __repr__(self) -> str:
        lines = self.lines
        shown = repr(lines[0]) if len(lines) == 1 else repr(lines)
        return f"Reply({self.code}, {escape_text(shown)})"

    def __str__(self) -> str:
        return "\n".join(f"{self.code} {escape_text(line)}" for line in self.lines)


# The slot descriptors write past the immutability guard in __setattr__. mypy sees the
# annotated names as plain instance attributes, hence the ignores.
_set_code = Reply.code.__set__  # type: ignore[attr-defined,misc]  # slot descriptor
_set_lines = Reply.raw_lines.__set__  # type: ignore[attr-defined,misc]  # slot descriptor
_new_reply = object.__new__


def _make_reply(code: int, raw_lines: tuple[bytes, ...]) -> Reply:
    """Build a Reply without validation; for parsers that already checked the grammar."""
    reply: Reply = _new_reply(Reply)
    _set_code(reply, code)
    _set_lines(reply, raw_lines)
    return reply
