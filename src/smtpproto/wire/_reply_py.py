"""The reference incremental reply parser (pure Python). ``_speedups.pyx`` is its twin.

Theory of operation
-------------------
Bytes arrive in chunks of any size. ``feed`` appends them to one buffer and scans for
line ends starting where the previous scan stopped (``_scan_from``), so feeding one byte
at a time stays linear. Each complete line is checked against the RFC 5321 §4.2 grammar
and appended to the reply being assembled; a final line (``code SP text`` or a bare
``code``) completes the reply, which is returned from ``feed``. Consumed bytes are
dropped from the front of the buffer once per call. When nothing is buffered and the
chunk is ``bytes``, it is scanned in place and only its incomplete tail is copied.

Grammar (strict by default, RFC 5321 §4.2)::

    Reply-line = *( Reply-code "-" [ textstring ] CRLF )
                    Reply-code [ SP textstring ] CRLF
    Reply-code = %x32-35 %x30-35 %x30-39

* The first digit must be 2-5 and the second 0-5, as the ABNF says: codes such as
  ``260`` or ``590`` (second digit 6-9) are refused, because no RFC
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
A line still waiting for its line end is refused as soon as it can no longer fit:
when it holds ``max_line_length`` octets, or when it would take the reply to
``max_reply_bytes``. So memory never exceeds the bound plus the chunk being fed.

Checks run in this order for each line, and both twins keep it: line length, line end,
reply code, separator, code change, line count, reply size. The offset is where the
line starts, except for a bare LF (the LF itself) and a bad separator (the fourth octet).

Errors: ``RemoteProtocolError`` naming the broken rule and the stream offset of the
line it concerns. After an error the parser stays failed: every later call raises the
same error, and what was buffered is dropped (``buffered`` is 0). Replies completed
before the error in the same chunk are returned, and the error is raised by the next
call: a reply such as ``250 queued`` must not be lost because garbage followed it in
the same packet.

Copies: ``copy.copy``, ``copy.deepcopy`` and pickle (any protocol) work on both twins,
at any point of a stream, and the copy goes on exactly as the original would: the state
(``__getstate__``: the settings, the pending octets, the reply being assembled, the
stream offset, the sticky error) is made of immutable values, so a copy shares no buffer
with the original. Both twins check the settings (``_checked_limits``) and a state
given to ``__setstate__`` (``_checked_state``) with the same functions, so they refuse
the same values with the same exceptions; a state the parser could not have reached
(an LF in the pending octets, a line over the limits, a reply code outside 200-559) is
a ``ValueError``, so the compiled twin never reads past its buffer.
"""

from __future__ import annotations

import copyreg
import operator
import sys
from typing import Any, NoReturn

from .errors import RemoteProtocolError
from .limits import (
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_MAX_REPLY_LINE_LENGTH,
    DEFAULT_MAX_REPLY_LINES,
)
from .reply import Reply, _make_reply

__all__ = ["ReplyParser"]

_MIN_LINE_LENGTH_LIMIT = 512  # RFC 5321 §4.5.3.1.5: a 512-octet reply line always fits
_MAX_LIMIT = sys.maxsize  # the compiled twin counts in a C Py_ssize_t

#: The keys of a parser's state (``ReplyParser.__getstate__``), the same in both twins.
_STATE_KEYS = (
    "max_line_length",
    "max_lines",
    "max_reply_bytes",
    "allow_bare_lf",
    "buffer",
    "offset",
    "code",
    "lines",
    "reply_bytes",
    "error",
)
_State = tuple[int, int, int, bool, bytes, int, int, tuple[bytes, ...], int, Any]


def _checked_limits(
    max_line_length: int, max_lines: int, max_reply_bytes: int
) -> tuple[int, int, int]:
    """The three limits as ``int``; ``TypeError`` for a non-integer, ``ValueError`` for a
    value out of range. Both twins' constructors and ``__setstate__`` call it."""
    max_line_length = operator.index(max_line_length)
    max_lines = operator.index(max_lines)
    max_reply_bytes = operator.index(max_reply_bytes)
    if max_line_length < _MIN_LINE_LENGTH_LIMIT:
        raise ValueError(
            f"max_line_length must be at least {_MIN_LINE_LENGTH_LIMIT} (RFC 5321 §4.5.3.1.5)"
        )
    if max_lines < 1:
        raise ValueError("max_lines must be at least 1")
    if max_reply_bytes < max_line_length:
        raise ValueError("max_reply_bytes must be at least max_line_length")
    if max_lines > _MAX_LIMIT or max_reply_bytes > _MAX_LIMIT:
        raise ValueError(f"max_lines and max_reply_bytes must be at most {_MAX_LIMIT}")
    return max_line_length, max_lines, max_reply_bytes


def _checked_state(state: object) -> _State:
    """The values of a state made by ``__getstate__``, in ``_STATE_KEYS`` order;
    ``TypeError`` for a value of the wrong type, ``ValueError`` for a state no parser
    reaches (what the compiled twin relies on is checked here, for both twins)."""
    if type(state) is not dict or set(state) != set(_STATE_KEYS):
        raise TypeError(f"ReplyParser state must be a dict with the keys {_STATE_KEYS}")
    max_line_length, max_lines, max_reply_bytes = _checked_limits(
        state["max_line_length"], state["max_lines"], state["max_reply_bytes"]
    )
    allow_bare_lf, buffer, offset = state["allow_bare_lf"], state["buffer"], state["offset"]
    code, lines, reply_bytes, error = (
        state["code"],
        state["lines"],
        state["reply_bytes"],
        state["error"],
    )
    if (
        type(allow_bare_lf) is not bool
        or type(buffer) is not bytes
        or type(offset) is not int
        or type(code) is not int
        or type(lines) is not tuple
        or any(type(line) is not bytes for line in lines)
        or type(reply_bytes) is not int
        or not (error is None or type(error) is RemoteProtocolError)
    ):
        raise TypeError("ReplyParser state has a value of the wrong type")
    pending = len(buffer)
    if (
        b"\n" in buffer
        or pending >= max_line_length
        or not 0 <= offset <= _MAX_LIMIT
        or not (code == 0 or 200 <= code <= 559)
        or (code == 0) != (not lines)
        or len(lines) > max_lines
        or any(b"\n" in line for line in lines)
        or (code == 0) != (reply_bytes == 0)
        or not 0 <= reply_bytes <= max_reply_bytes
        or (pending and reply_bytes + pending >= max_reply_bytes)
        or (error is not None and (pending or code))
    ):
        raise ValueError("ReplyParser state is not one a parser can be in")
    return (
        max_line_length,
        max_lines,
        max_reply_bytes,
        allow_bare_lf,
        buffer,
        offset,
        code,
        lines,
        reply_bytes,
        error,
    )


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
        max_line_length, max_lines, max_reply_bytes = _checked_limits(
            max_line_length, max_lines, max_reply_bytes
        )
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

    def __getstate__(self) -> dict[str, object]:
        """The parser's state, of immutable values (``_STATE_KEYS``): a copy made from
        it shares nothing with this parser."""
        values = (
            self._max_line_length,
            self._max_lines,
            self._max_reply_bytes,
            self._allow_bare_lf,
            bytes(self._buffer),
            self._offset,
            self._code,
            tuple(self._lines),
            self._reply_bytes,
            self._error,
        )
        return dict(zip(_STATE_KEYS, values, strict=True))

    def __setstate__(self, state: object) -> None:
        """Become the parser ``state`` describes (checked by ``_checked_state``)."""
        (
            self._max_line_length,
            self._max_lines,
            self._max_reply_bytes,
            self._allow_bare_lf,
            buffer,
            self._offset,
            self._code,
            lines,
            self._reply_bytes,
            self._error,
        ) = _checked_state(state)
        self._buffer = bytearray(buffer)
        self._scan_from = len(buffer)  # every line end before it was consumed
        self._lines = list(lines)

    def __reduce__(self) -> tuple[Any, ...]:
        """Copy and pickle through the state, for every protocol (as the twin does)."""
        return copyreg.__newobj__, (type(self),), self.__getstate__()  # type: ignore[attr-defined]

    @property
    def buffered(self) -> int:
        """Octets received but not yet part of a complete reply; 0 once failed."""
        return len(self._buffer) + self._reply_bytes

    @property
    def failed(self) -> bool:
        """True once a protocol error was raised; the parser then refuses all input."""
        return self._error is not None

    def feed(self, data: bytes | bytearray | memoryview) -> list[Reply]:
        """Consume ``data`` (any bytes-like object); return every reply it completes.

        Raises ``RemoteProtocolError`` on a grammar violation or a crossed limit, and
        again on every later call. If replies were completed earlier in the same
        ``data``, they are returned first and the error is raised by the next call
        (``failed`` is already true): a valid reply is never lost to later garbage.
        ``b""`` is not end of input: use ``feed_eof``.
        """
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        buf: bytes | bytearray
        if type(data) is not bytes and type(data) is not bytearray:
            view = memoryview(data)  # TypeError for a non-bytes-like, as in the twin
            if not view.c_contiguous:  # a strided view: bytearray += would refuse it
                data = view.tobytes()
        if buffer or type(data) is not bytes:
            buffer += data
            buf = buffer
            pos = self._scan_from
        else:  # fast path: scan the caller's bytes, keep only an incomplete tail
            buf = data
            pos = 0
        max_line_length = self._max_line_length
        replies: list[Reply] = []
        start = 0  # start of the current line within buf
        try:
            while True:
                end = buf.find(b"\n", pos)
                if end < 0:
                    break
                line_length = end + 1 - start
                if line_length > max_line_length:
                    self._fail("reply line longer than the line length limit", start)
                if end > start and buf[end - 1] == 0x0D:  # CR LF
                    content_end = end - 1
                elif self._allow_bare_lf:
                    content_end = end
                else:
                    self._fail("bare LF in reply; lines must end with CRLF", end)
                size = content_end - start
                if (
                    size < 3
                    or not 0x32 <= buf[start] <= 0x35
                    or not 0x30 <= buf[start + 1] <= 0x35
                    or not 0x30 <= buf[start + 2] <= 0x39
                ):
                    self._fail("reply line does not start with a reply code 2xx-5xx", start)
                code = buf[start] * 100 + buf[start + 1] * 10 + buf[start + 2] - 5328  # "000"
                if size == 3 or buf[start + 3] == 0x20:
                    final = True
                elif buf[start + 3] == 0x2D:
                    final = False
                else:
                    self._fail("reply code not followed by SP, '-' or the line end", start + 3)
                text = bytes(buf[start + 4 : content_end]) if size > 4 else b""
                if self._code:
                    self._continue(code, text, line_length, start)
                    if final:
                        replies.append(_make_reply(code, tuple(self._lines)))
                        self._lines = []
                        self._code = 0
                        self._reply_bytes = 0
                elif final:  # a one-line reply: no line or byte count can be exceeded
                    replies.append(_make_reply(code, (text,)))
                else:
                    self._code = code
                    self._lines.append(text)
                    self._reply_bytes = line_length
                start = pos = end + 1
            pending = len(buf) - start
            if pending >= max_line_length:
                self._fail("reply line longer than the line length limit", start)
            if pending and self._reply_bytes + pending >= self._max_reply_bytes:
                self._fail("reply longer than the reply size limit", start)
            if buf is buffer:
                if start:
                    del buffer[:start]
            elif pending:
                buffer += memoryview(buf)[start:]
            self._offset += start
            self._scan_from = len(buffer)
        except RemoteProtocolError:
            if replies:
                return replies  # the error is stored: the next call raises it
            raise
        return replies

    def feed_eof(self) -> None:
        """Signal end of input; raise ``RemoteProtocolError`` if a reply is incomplete.

        The offset in the error is the end of the stream. Input may follow a clean EOF
        (the parser keeps no EOF state; the connection layer refuses it).
        """
        if self._error is not None:
            raise self._error
        if self._buffer or self._lines:
            self._fail("connection closed in the middle of a reply", len(self._buffer))

    def _continue(self, code: int, text: bytes, line_length: int, start: int) -> None:
        """Add a second or later line to the multiline reply being assembled."""
        if code != self._code:
            self._fail(f"multiline reply changed its code from {self._code} to {code}", start)
        if len(self._lines) >= self._max_lines:
            self._fail("reply has more lines than the line count limit", start)
        self._reply_bytes += line_length
        if self._reply_bytes > self._max_reply_bytes:
            self._fail("reply longer than the reply size limit", start)
        self._lines.append(text)

    def _fail(self, rule: str, index: int) -> NoReturn:
        """Record and raise the sticky error; drop everything buffered."""
        self._error = RemoteProtocolError(rule, offset=self._offset + index)
        self._buffer.clear()
        self._lines = []
        self._code = 0
        self._reply_bytes = 0
        raise self._error
