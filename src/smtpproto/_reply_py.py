"""The reference incremental reply parser (pure Python). ``_speedups.pyx`` is its twin.

Theory of operation
-------------------
Bytes arrive in chunks of any size. ``feed`` appends them to one buffer and scans for
line ends starting where the previous scan stopped (``_scan_from``), so feeding one byte
at a time stays linear. Each complete line is checked against the RFC 5321 §4.2 grammar
and appended to the reply being assembled; a final line (``code SP text`` or a bare
``code``) completes the reply, which is returned from ``feed``. Consumed bytes are
dropped from the front of the buffer once per call.

Grammar (strict by default, RFC 5321 §4.2)::

    Reply-line = *( Reply-code "-" [ textstring ] CRLF )
                    Reply-code [ SP textstring ] CRLF
    Reply-code = %x32-35 %x30-35 %x30-39

* The first digit must be 2-5 and the second 0-5, as the ABNF says: a code such as
  ``260`` or ``599``-style codes with a second digit 6-9 are refused, because no RFC
  assigns them and a client cannot know what they mean. The third digit is any digit.
* ``250\\r\\n``, ``250 \\r\\n`` (final) and ``250-\\r\\n`` (continuation) are accepted.
* Every line of a multiline reply carries the first line's code; a mismatch is an
  error at that line.
* Only CRLF ends a line. A CR elsewhere is text. A bare LF is an error unless the
  parser was made with ``allow_bare_lf=True`` (then LF ends a line and a CR right
  before it is dropped).
* NUL and non-UTF-8 octets are text: kept exactly in ``Reply.raw_lines``.

Limits: ``max_line_length`` (octets of one line including its CRLF), ``max_lines``
(lines in one reply) and ``max_reply_bytes`` (octets in one reply including CRLFs).
A line without a line end is refused as soon as it grows past ``max_line_length``, so
memory never exceeds the bound plus the chunk being fed.

Errors: ``RemoteProtocolError`` naming the broken rule and the stream offset of the
line it concerns. After an error the parser stays failed: every later call raises the
same error.
"""

from __future__ import annotations

from typing import NoReturn

from ._config import (
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_MAX_REPLY_LINE_LENGTH,
    DEFAULT_MAX_REPLY_LINES,
)
from ._errors import RemoteProtocolError
from ._reply import Reply, _make_reply

__all__ = ["ReplyParser"]

_MIN_LINE_LENGTH_LIMIT = 512  # RFC 5321 §4.5.3.1.5: a 512-octet reply line always fits


class ReplyParser:
    """Incremental, bounded parser turning server bytes into ``Reply`` values."""

    __slots__ = (
        "_allow_bare_lf",
        "_buffer",
        "_code",
        "_error",
        "_lines",
        "_max_line_length",
        "_max_lines",
        "_max_reply_bytes",
        "_offset",
        "_reply_bytes",
        "_scan_from",
    )

    def __init__(
        self,
        *,
        max_line_length: int = DEFAULT_MAX_REPLY_LINE_LENGTH,
        max_lines: int = DEFAULT_MAX_REPLY_LINES,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        allow_bare_lf: bool = False,
    ) -> None:
        if max_line_length < _MIN_LINE_LENGTH_LIMIT:
            raise ValueError(
                f"max_line_length must be at least {_MIN_LINE_LENGTH_LIMIT} (RFC 5321 §4.5.3.1.5)"
            )
        if max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        if max_reply_bytes < max_line_length:
            raise ValueError("max_reply_bytes must be at least max_line_length")
        self._max_line_length = max_line_length
        self._max_lines = max_lines
        self._max_reply_bytes = max_reply_bytes
        self._allow_bare_lf = allow_bare_lf
        self._buffer = bytearray()
        self._scan_from = 0  # buffer index where the search for LF resumes
        self._offset = 0  # stream offset of buffer[0]
        self._code = 0  # code of the reply being assembled (0: none)
        self._lines: list[bytes] = []
        self._reply_bytes = 0
        self._error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Octets received but not yet part of a complete reply."""
        return len(self._buffer) + self._reply_bytes

    @property
    def failed(self) -> bool:
        """True once a protocol error was raised; the parser then refuses all input."""
        return self._error is not None

    def feed(self, data: bytes) -> list[Reply]:
        """Consume ``data``; return every reply it completes, in order.

        Raises ``RemoteProtocolError`` on a grammar violation or a crossed limit.
        """
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        buffer += data
        replies: list[Reply] = []
        start = 0  # start of the current line within buffer
        pos = self._scan_from
        try:
            while True:
                end = buffer.find(b"\n", pos)
                if end < 0:
                    break
                line_length = end + 1 - start
                if line_length > self._max_line_length:
                    self._fail("reply line longer than the line length limit", start)
                if end > start and buffer[end - 1] == 0x0D:  # CR LF
                    content_end = end - 1
                elif self._allow_bare_lf:
                    content_end = end
                else:
                    self._fail("bare LF in reply; lines must end with CRLF", end)
                reply = self._line(bytes(buffer[start:content_end]), line_length, start)
                if reply is not None:
                    replies.append(reply)
                start = pos = end + 1
            pending = len(buffer) - start
            if pending >= self._max_line_length:
                self._fail("reply line longer than the line length limit", start)
            if pending and self._reply_bytes + pending > self._max_reply_bytes:
                self._fail("reply longer than the reply size limit", start)
        finally:
            if start:
                del buffer[:start]
                self._offset += start
            self._scan_from = len(buffer)
        return replies

    def feed_eof(self) -> None:
        """Signal end of input; raise ``RemoteProtocolError`` if a reply is incomplete."""
        if self._error is not None:
            raise self._error
        if self._buffer or self._lines:
            self._fail("connection closed in the middle of a reply", len(self._buffer))

    def _line(self, line: bytes, line_length: int, start: int) -> Reply | None:
        """Check one line (without its line end); return the reply it completes."""
        size = len(line)
        if (
            size < 3
            or not 0x32 <= line[0] <= 0x35
            or not 0x30 <= line[1] <= 0x35
            or not 0x30 <= line[2] <= 0x39
        ):
            self._fail("reply line does not start with a reply code 2xx-5xx", start)
        code = (line[0] - 0x30) * 100 + (line[1] - 0x30) * 10 + (line[2] - 0x30)
        if size == 3:
            final = True
        elif line[3] == 0x20:
            final = True
        elif line[3] == 0x2D:
            final = False
        else:
            self._fail("reply code not followed by SP, '-' or the line end", start + 3)
        if self._code and code != self._code:
            self._fail(
                f"multiline reply changed its code from {self._code} to {code}", start
            )
        if len(self._lines) >= self._max_lines:
            self._fail("reply has more lines than the line count limit", start)
        self._reply_bytes += line_length
        if self._reply_bytes > self._max_reply_bytes:
            self._fail("reply longer than the reply size limit", start)
        text = line[4:]
        if not final:
            self._code = code
            self._lines.append(text)
            return None
        if self._lines:
            self._lines.append(text)
            raw_lines = tuple(self._lines)
            self._lines = []
        else:
            raw_lines = (text,)
        self._code = 0
        self._reply_bytes = 0
        return _make_reply(code, raw_lines)

    def _fail(self, rule: str, index: int) -> NoReturn:
        self._error = RemoteProtocolError(rule, offset=self._offset + index)
        raise self._error
