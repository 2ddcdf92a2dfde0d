"""DATA content codec, pure-Python reference. ``_dataenc_c.pyx`` is its compiled twin.

Theory of operation
-------------------
``DataEncoder`` (client) turns message content, fed in chunks of any size, into the
bytes that follow a 354 reply (RFC 5321 §4.5.2, §3.3)::

    1. every bare CR and every bare LF becomes CRLF (CRLF stays; ``\\r\\r\\n`` is
       ``\\r\\n\\r\\n``) - RFC 5321 §2.3.8 forbids bare line ends in SMTP;
    2. a line starting with ``.`` gets one more ``.`` (dot-stuffing, §4.5.2);
    3. the content is made to end with CRLF;
    4. ``.\\r\\n`` is appended by ``finish()``.

The output is identical for any chunking. Nothing is held back: a chunk ending in CR
is emitted as CRLF at once and the encoder remembers to swallow an LF that starts the
next chunk. Empty content encodes to ``.\\r\\n`` alone, the empty message (zero lines,
so there is no line to end with CRLF; §4.1.1.4 ends the data with a line holding only
a period, which is then the first line); ``DataDecoder`` decodes it back to ``b""``.

Refusals, checked on the *input* octets before any byte of the offending chunk is
returned, the first violation in stream order wins (an octet rule before the line
rule at the same offset): NUL unless ``allow_nul`` (RFC 2045 §2.7-2.8); an octet >=
0x80 unless ``allow_8bit`` (the message is declared BODY=8BITMIME, RFC 6152; SMTPUTF8
alone does not allow 8-bit content, RFC 6531 §3.6); a line longer than
``max_line_length`` octets excluding its line end (998 by default, RFC 5321
§4.5.3.1.6; the stuffing dot is not counted) unless it is ``None``. The messages
(both twins share them) are written for the client's users, who set these through the
engine (``wire.datacodec.content_encoder``): they name ``ClientConfig(allow_nul=True)``
for ``allow_nul``, ``ClientConfig(enforce_line_length=False)`` for
``max_line_length=None`` and ``BODY=8BITMIME`` (``MailOptions``/``Mail``) for
``allow_8bit``.

``DataDecoder`` (server) reverses it, and is strict about what ends the data: only
``CRLF . CRLF`` (or ``. CRLF`` as the very first line, the empty message). A line is
ended by CRLF and nothing else, so ``LF.LF``, ``CR.CR``, ``LF.CRLF``, ``CRLF.LF``,
``CRLF.CR`` + non-LF and every other "SMTP smuggling" variant (CVE-2023-51764,
CVE-2023-51765, CVE-2023-51766) are content. Bare CR and bare LF are passed through
unchanged and counted in ``bare_line_endings`` so the caller can refuse the message
(RFC 5321 §2.3.8 forbids them); they never end a line. A line starting with ``.``
loses that dot (§4.5.2). The decoder is a byte-level state machine; runs of ordinary
octets are copied in bulk, and this twin also decodes every complete line of a chunk at
once (``_bulk_lines``, a few ``bytes`` scans) when they hold no bare CR/LF, no
terminator and cross no limit - otherwise the state machine alone decides. It holds
back at most ``.``, ``.\\r`` or ``\\r`` between calls, so memory is one chunk plus two
octets whatever the line length.

Decoder limits: a line longer than ``max_line_length`` octets (excluding CRLF and the
removed dot; bare CR/LF count as octets of the line) and decoded content larger than
``max_message_size`` octets (counting CRLFs, not the stuffing dots nor the final
``.\\r\\n``, as RFC 1870 §3 counts SIZE) raise ``RemoteProtocolError`` with the
stream offset of the octet being processed when the bound was crossed.

Every error is sticky: later calls raise the same error again.

``LineEndNormalizer`` is the same encoder for BDAT content (RFC 3030 §2: chunks carry
the canonical form, CRLF line ends, RFC 5321 §2.3.8, but no dot-stuffing and no
``.CRLF``): rule 1 only, rule 3 by ``finish()`` (``b"\\r\\n"`` or ``b""``), no refusals.
It is the one streaming CRLF normaliser of the package; the drivers use it for BDAT.
"""

from __future__ import annotations

import operator
import re
import sys
from typing import Any, SupportsIndex

from .errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "DEFAULT_DATA_MAX_LINE_LENGTH",
    "DEFAULT_SERVER_DATA_MAX_LINE_LENGTH",
    "DataDecoder",
    "DataEncoder",
    "LineEndNormalizer",
]

#: Longest content line a client sends, excluding CRLF: RFC 5321 §4.5.3.1.6 (1000
#: octets including CRLF).
DEFAULT_DATA_MAX_LINE_LENGTH = 998

#: Longest content line a server accepts, excluding CRLF. RFC 5321 §4.5.3.1 asks
#: receivers to be liberal; real mail (HTML generators) exceeds 998. The decoder
#: streams, so this bound is policy, not memory. Exim refuses lines over 2048 by
#: default (``message_linelength_limit``); we allow 4x that before calling it abuse.
DEFAULT_SERVER_DATA_MAX_LINE_LENGTH = 8192

#: The largest limit either twin takes (the compiled one counts in a C ``Py_ssize_t``).
MAX_LIMIT = sys.maxsize
_CR = 13
_LF = 10
_DOT = 46

# Decoder states.
_LINE_START = 0  # at the start of a line (after CRLF, or at the very beginning)
_DOT_SEEN = 1  # a line started with "." (held back)
_DOT_CR = 2  # a line started with ".\r" (both held back)
_TEXT = 3  # inside a line
_CR_SEEN = 4  # inside a line, after a CR (held back)
_DONE = 5

_LINE_END = re.compile(rb"[\r\n]")


def _check_limit(name: str, value: int | None, *, allow_none: bool) -> None:
    if value is None:
        if not allow_none:
            raise ValueError(f"{name} must be an int")
        return
    if type(value) is not int or value < 1:
        raise ValueError(f"{name} must be a positive int or None")
    if value > MAX_LIMIT:  # the compiled twin counts in a C Py_ssize_t
        raise ValueError(f"{name} must be at most {MAX_LIMIT}, got {value}")


def _encoder_violation(
    data: bytes,
    base: int,
    line_len: int,
    max_line_length: int | None,
    allow_nul: bool,
    allow_8bit: bool,
) -> str | None:
    """Return the message for the first refused octet of ``data`` (slow path)."""
    limit = -1 if max_line_length is None else max_line_length
    for i, c in enumerate(data):
        if c in (_CR, _LF):
            line_len = 0
            continue
        if c == 0 and not allow_nul:
            return _nul_message(base + i)
        if c >= 0x80 and not allow_8bit:
            return _8bit_message(c, base + i)
        line_len += 1
        if line_len == limit + 1:
            return _line_message(limit, base + i)
    return None


def _nul_message(offset: int) -> str:
    return (
        f"NUL octet at content offset {offset}: message content must not contain NUL "
        "(RFC 2045 §2.7-2.8, RFC 5321 §4.5.2); ClientConfig(allow_nul=True) sends it anyway"
    )


def _8bit_message(octet: int, offset: int) -> str:
    return (
        f"8-bit octet 0x{octet:02x} at content offset {offset}: 8-bit content must be "
        "declared BODY=8BITMIME in MAIL FROM (RFC 6152; SMTPUTF8 does not declare it, "
        "RFC 6531 §3.6), which the server must advertise: MailOptions(body='8BITMIME'), "
        "sendmail's default then, or Mail(body='8BITMIME'); otherwise encode it as 7-bit "
        "(quoted-printable or base64)"
    )


def _line_message(limit: int, offset: int) -> str:
    return (
        f"content line longer than {limit} octets at content offset {offset} "
        "(RFC 5321 §4.5.3.1.6: 1000 octets including CRLF); "
        "ClientConfig(enforce_line_length=False) sends it anyway"
    )


class DataEncoder:
    """Streaming DATA content encoder (client side), RFC 5321 §4.5.2.

    ``feed(chunk)`` returns the encoded bytes to write now; ``finish()`` returns the
    end (CRLF if the content did not end with one, then ``.\\r\\n``) and closes the
    encoder. A refused octet or line raises ``LocalProtocolError`` naming the content
    offset; no byte of that chunk is returned, but earlier chunks may already be on
    the wire, so the encoder stays failed (every later call raises) and the caller
    must close the connection: the server cannot be told where the message ends.
    Calling ``feed`` or ``finish`` after ``finish`` raises ``LocalProtocolError``.
    """

    __slots__ = (
        "_after_cr",
        "_allow_8bit",
        "_allow_nul",
        "_closed",
        "_error",
        "_line_len",
        "_max_line_length",
        "_stuff",
        "octets_in",
        "octets_out",
    )

    def __init__(
        self,
        *,
        max_line_length: int | None = DEFAULT_DATA_MAX_LINE_LENGTH,
        allow_nul: bool = False,
        allow_8bit: bool = False,
    ) -> None:
        _check_limit("max_line_length", max_line_length, allow_none=True)
        self._max_line_length = max_line_length
        self._allow_nul = bool(allow_nul)
        self._allow_8bit = bool(allow_8bit)
        self._after_cr = False  # the last octet was a CR, already emitted as CRLF
        self._line_len = 0  # octets of the current line so far (0: at a line start)
        self._closed = False
        self._error: str | None = None
        self._stuff = True  # dot-stuffing and the final ".CRLF" (False: BDAT)
        #: Content octets consumed so far.
        self.octets_in = 0
        #: Encoded octets returned so far (stuffing dots, CRLFs and ``.\\r\\n`` included).
        self.octets_out = 0

    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        """Copy and pickle by the slots' values with every pickle protocol, as the
        compiled twin does (``object`` refuses protocols 0 and 1 for a slotted class)."""
        return object.__reduce_ex__(self, max(operator.index(protocol), 2))

    @property
    def failed(self) -> bool:
        """True once a ``LocalProtocolError`` was raised for the content."""
        return self._error is not None

    def _check_usable(self) -> None:
        if self._error is not None:
            raise LocalProtocolError(self._error)
        if self._closed:
            raise LocalProtocolError("DataEncoder is closed: finish() was already called")

    def feed(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Encode the next piece of content (any bytes-like object, any size)."""
        self._check_usable()
        data = chunk if type(chunk) is bytes else bytes(memoryview(chunk))
        base = self.octets_in
        if not data:
            return b""
        if self._after_cr and data[0] == _LF:
            data = data[1:]  # the LF of a CRLF split across chunks
            base += 1
            self._after_cr = False
            if not data:
                self.octets_in = base
                return b""
        text = data.replace(b"\r\n", b"\n")
        crlfs = len(data) - len(text)
        if crlfs and b"\r" not in text and text.count(b"\n") == crlfs:
            text, sep = data, b"\r\n"  # CRLF only (the common case): stuff in place
        else:
            text, sep = text.replace(b"\r", b"\n"), b"\n"
        max_len = self._max_line_length
        line_len = self._line_len
        bad = (
            (not self._allow_nul and b"\0" in data)
            or (not self._allow_8bit and not data.isascii())
            or (
                max_len is not None
                and line_len + len(text) > max_len
                and self._too_long(text, sep, max_len)
            )
        )
        if bad:
            message = _encoder_violation(
                data, base, line_len, max_len, self._allow_nul, self._allow_8bit
            )
            if message is not None:
                self._error = message
                raise LocalProtocolError(message)
        last_sep = text.rfind(sep)
        if last_sep < 0:
            self._line_len = line_len + len(text)
        else:
            self._line_len = len(text) - last_sep - len(sep)
        if self._stuff:
            out = text.replace(sep + b".", sep + b"..")
            if line_len == 0 and text[0] == _DOT:
                out = b"." + out
        else:
            out = text
        if sep == b"\n":
            out = out.replace(b"\n", b"\r\n")
        self._after_cr = data[-1] == _CR
        self.octets_in = base + len(data)
        self.octets_out += len(out)
        return out

    def refusal(self, content: bytes | bytearray | memoryview) -> str | None:
        """The message ``feed`` would raise for ``content`` as a whole message given to
        a fresh encoder with these settings (same rule, offset and text), else None.
        Changes nothing: a driver checks content it holds whole before MAIL with it,
        so that nothing is half-sent (RFC 5321 §4.5.3.1.6, §4.5.2; RFC 6152)."""
        data = content if type(content) is bytes else bytes(memoryview(content))
        max_len = self._max_line_length
        if (
            (not self._allow_nul and b"\0" in data)
            or (not self._allow_8bit and not data.isascii())
            or (
                max_len is not None
                and len(data) > max_len
                and max(map(len, data.splitlines())) > max_len
            )
        ):
            return _encoder_violation(data, 0, 0, max_len, self._allow_nul, self._allow_8bit)
        return None

    def reset(self) -> None:
        """Make this encoder what a new one with the same settings is: no content fed,
        not closed, not failed, counters at 0. The engine reuses one encoder for the
        messages of a connection (a reset costs less than a new encoder per 354); the
        caller must be done with the content it was encoding."""
        self._after_cr = False
        self._line_len = 0
        self._closed = False
        self._error = None
        self.octets_in = 0
        self.octets_out = 0

    def _too_long(self, text: bytes, sep: bytes, max_len: int) -> bool:
        lines = text.split(sep)
        if self._line_len + len(lines[0]) > max_len:
            return True
        return max(map(len, lines)) > max_len

    def finish(self) -> bytes:
        """Return the end of the data (``[CRLF] .CRLF``) and close the encoder.

        Empty content gives ``.\\r\\n``: the empty message.
        """
        self._check_usable()
        self._closed = True
        if self._stuff:
            out = b".\r\n" if self._line_len == 0 else b"\r\n.\r\n"
        else:
            out = b"" if self._line_len == 0 else b"\r\n"
        self.octets_out += len(out)
        return out


class LineEndNormalizer(DataEncoder):
    """Streaming CRLF normalisation for BDAT content, RFC 3030 §2 / RFC 5321 §2.3.8.

    ``feed(chunk)`` returns the chunk with every bare CR and bare LF made CRLF (CRLF
    stays), identically for any chunking; ``finish()`` returns the CRLF that ends
    non-empty content not ending in a line end (else ``b""``) and closes it. No
    dot-stuffing, no ``.CRLF``, no refusals: ``DataEncoder``'s rules 1 and 3 only.
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(max_line_length=None, allow_nul=True, allow_8bit=True)
        self._stuff = False


class DataDecoder:
    """Streaming DATA content decoder (server side), RFC 5321 §4.5.2, anti-smuggling.

    ``feed(data)`` returns ``(content, done)``: the decoded content this call made
    certain, and whether the terminating ``CRLF.CRLF`` was seen. Once done, the bytes
    after the terminator (pipelined commands) are in ``leftover`` and ``feed`` raises
    ``LocalProtocolError``. A crossed limit raises ``RemoteProtocolError`` (sticky:
    the end of the data is unknown, so the connection must be closed).
    """

    __slots__ = (
        "_error",
        "_line_len",
        "_max_line_length",
        "_max_message_size",
        "_state",
        "bare_line_endings",
        "leftover",
        "octets_in",
        "octets_out",
    )

    def __init__(
        self,
        *,
        max_line_length: int | None = DEFAULT_SERVER_DATA_MAX_LINE_LENGTH,
        max_message_size: int | None = None,
    ) -> None:
        _check_limit("max_line_length", max_line_length, allow_none=True)
        _check_limit("max_message_size", max_message_size, allow_none=True)
        self._max_line_length = max_line_length
        self._max_message_size = max_message_size
        self._state = _LINE_START
        self._line_len = 0
        self._error: tuple[str, int] | None = None  # (message, stream offset)
        #: Wire octets consumed (up to and including the final ``.\\r\\n``).
        self.octets_in = 0
        #: Decoded content octets returned so far.
        self.octets_out = 0
        #: Bare CR and bare LF octets seen in the content (passed through as content).
        self.bare_line_endings = 0
        #: Bytes fed after the terminating ``.\\r\\n``; ``b""`` until done.
        self.leftover = b""

    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        """Copy and pickle by the slots' values with every pickle protocol, as the
        compiled twin does (``object`` refuses protocols 0 and 1 for a slotted class)."""
        return object.__reduce_ex__(self, max(operator.index(protocol), 2))

    @property
    def failed(self) -> bool:
        """True once a ``RemoteProtocolError`` was raised; every later call raises it."""
        return self._error is not None

    @property
    def done(self) -> bool:
        """True once the terminating ``CRLF.CRLF`` was consumed."""
        return self._state == _DONE

    def _fail(self, message: str, offset: int) -> RemoteProtocolError:
        self._error = (message, offset)
        return RemoteProtocolError(message, offset=offset)

    def _bump(self, octets: int, offset: int, line_octets: int) -> None:
        """Account for ``octets`` content octets emitted while processing ``offset``."""
        max_len = self._max_line_length
        if line_octets:
            self._line_len += line_octets
            if max_len is not None and self._line_len > max_len:
                raise self._fail(f"DATA line longer than {max_len} octets", offset)
        self.octets_out += octets
        max_size = self._max_message_size
        if max_size is not None and self.octets_out > max_size:
            raise self._fail(f"message content larger than {max_size} octets", offset)

    def feed(self, data: bytes | bytearray | memoryview) -> tuple[bytes, bool]:
        """Consume wire bytes after the 354 reply; return ``(content, done)``."""
        if self._error is not None:
            raise RemoteProtocolError(self._error[0], offset=self._error[1])
        if self._state == _DONE:
            raise LocalProtocolError("DataDecoder is done: the data already ended")
        buf = data if type(data) is bytes else bytes(memoryview(data))
        n = len(buf)
        base = self.octets_in
        out = bytearray()
        state = self._state
        i = 0
        tried_bulk = False
        while i < n:
            if state == _LINE_START and not tried_bulk:
                tried_bulk = True  # once per call: a failed attempt must not repeat per line
                i = self._bulk_lines(buf, i, out)
                if i == n:
                    break
            c = buf[i]
            if state == _LINE_START:
                if c == _DOT:
                    state = _DOT_SEEN
                    i += 1
                    continue
                state = _TEXT  # c is handled as text below
            elif state == _DOT_SEEN:
                if c == _CR:
                    state = _DOT_CR
                    i += 1
                    continue
                state = _TEXT  # the dot is removed; c is text
            elif state == _DOT_CR:
                if c == _LF:
                    state = _DONE
                    i += 1
                    break
                # ".\r" + other: the dot is removed, the CR is a bare CR of the line
                self.bare_line_endings += 1
                out.append(_CR)
                self._bump(1, base + i, 1)
                state = _CR_SEEN if c == _CR else _TEXT
                if c == _CR:
                    i += 1
                    continue
            elif state == _CR_SEEN:
                if c == _LF:
                    out += b"\r\n"
                    self._bump(2, base + i, 0)
                    self._line_len = 0
                    state = _LINE_START
                    i += 1
                    continue
                self.bare_line_endings += 1
                out.append(_CR)
                self._bump(1, base + i, 1)
                if c == _CR:
                    i += 1
                    continue
                state = _TEXT
            # _TEXT
            if c == _CR:
                state = _CR_SEEN
                i += 1
                continue
            if c == _LF:
                self.bare_line_endings += 1
                out.append(_LF)
                self._bump(1, base + i, 1)
                i += 1
                continue
            m = _LINE_END.search(buf, i)
            j = n if m is None else m.start()
            self._bump_run(i, j, base)
            out += buf[i:j]
            i = j
        self._state = state
        if state == _DONE:
            self.leftover = buf[i:]
        self.octets_in = base + i
        return bytes(out), state == _DONE

    def _bulk_lines(self, buf: bytes, i: int, out: bytearray) -> int:
        """Decode the whole lines of ``buf[i:]`` at once when nothing special is in them.

        Used at a line start only. Takes the complete lines before the terminator (a
        whole message in one chunk is the common case), when they hold no bare CR or
        LF and cross no limit; then the result is exactly what the state machine would
        produce, and the state machine reads the terminator itself. Returns the index
        where the state machine resumes.
        """
        end = buf.rfind(b"\r\n", i)
        if end < 0 or buf.startswith(b".\r\n", i):
            return i
        stop = buf.find(b"\r\n.\r\n", i, end + 2)
        if stop >= 0:  # the lines before the terminator, its CRLF included
            end = stop
        seg = buf[i : end + 2]
        crlfs = seg.count(b"\r\n")
        if seg.count(b"\r") != crlfs or seg.count(b"\n") != crlfs:
            return i  # a bare CR or LF
        text = seg.replace(b"\r\n.", b"\r\n")
        if text[0] == _DOT:
            text = text[1:]
        max_size = self._max_message_size
        if max_size is not None and self.octets_out + len(text) > max_size:
            return i
        max_len = self._max_line_length
        if (
            max_len is not None
            and len(text) > max_len
            and max(map(len, text.split(b"\r\n"))) > max_len
        ):
            return i
        out += text
        self.octets_out += len(text)
        return end + 2

    def _bump_run(self, i: int, j: int, base: int) -> None:
        """Account for the ordinary octets ``buf[i:j]`` (one line, no CR or LF)."""
        run = j - i
        max_len = self._max_line_length
        max_size = self._max_message_size
        line_at = -1
        size_at = -1
        if max_len is not None and self._line_len + run > max_len:
            line_at = i + (max_len - self._line_len)
        if max_size is not None and self.octets_out + run > max_size:
            size_at = i + (max_size - self.octets_out)
        if line_at >= 0 and (size_at < 0 or line_at <= size_at):
            raise self._fail(f"DATA line longer than {max_len} octets", base + line_at)
        if size_at >= 0:
            raise self._fail(f"message content larger than {max_size} octets", base + size_at)
        self._line_len += run
        self.octets_out += run
