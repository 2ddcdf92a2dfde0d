# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of ``_dataenc_py`` (read that module's header first).

Theory of operation
-------------------
Same rules, same checks in the same order, same messages, offsets and counters; only
the mechanics differ. Both classes make one pass over the caller's buffer (taken
through the buffer protocol, copied only when it is not contiguous) into a C scratch
buffer sized for the worst case (2n for the encoder: every octet a bare line end; n + 2
for the decoder),
then build one ``bytes`` from it. Runs of ordinary octets are found with a 256-entry
table (encoder; four shared tables, one per allow_nul/allow_8bit, so an encoder is a
small object) or two comparisons (decoder) and copied with ``memcpy``. Error
messages come from the reference module's helpers so they cannot drift apart.
``LineEndNormalizer`` (BDAT, RFC 3030 §2) is the encoder with ``_stuff`` off, as there.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcpy, memset

from ._dataenc_py import (
    DEFAULT_DATA_MAX_LINE_LENGTH,
    DEFAULT_SERVER_DATA_MAX_LINE_LENGTH,
    MAX_LIMIT,
    _8bit_message,
    _check_limit,
    _line_message,
    _nul_message,
)
from .errors import LocalProtocolError, RemoteProtocolError

__all__ = ["DataDecoder", "DataEncoder", "LineEndNormalizer"]


cdef object _get_simple_buffer(object data, Py_buffer* view):
    """Take ``data``'s buffer; a non-contiguous one (a strided ``memoryview``) is copied
    to ``bytes`` first, as the Python twin's ``bytes(memoryview(data))`` does. Returns
    the object that owns the buffer, to keep it alive until ``PyBuffer_Release``."""
    try:
        PyObject_GetBuffer(data, view, PyBUF_SIMPLE)
    except BufferError:
        data = bytes(memoryview(data))
        PyObject_GetBuffer(data, view, PyBUF_SIMPLE)
    return data

cdef enum:
    CR = 13
    LF = 10
    DOT = 46

cdef enum:  # decoder states, as in _dataenc_py
    S_LINE_START = 0
    S_DOT_SEEN = 1
    S_DOT_CR = 2
    S_TEXT = 3
    S_CR_SEEN = 4
    S_DONE = 5


# The encoder's "look at this octet" tables, one per (allow_nul, allow_8bit), shared by
# every encoder (index: 1 for allow_nul, + 2 for allow_8bit): CR and LF always, NUL
# unless allowed, 0x80-0xFF unless allowed. Filled once at import.
cdef unsigned char _SPECIAL[4][256]


cdef void _fill_special_tables():
    cdef int kind
    for kind in range(4):
        memset(_SPECIAL[kind], 0, 256)
        _SPECIAL[kind][CR] = 1
        _SPECIAL[kind][LF] = 1
        if not kind & 1:
            _SPECIAL[kind][0] = 1
        if not kind & 2:
            memset(&_SPECIAL[kind][0x80], 1, 0x80)


_fill_special_tables()


cdef inline bint _plain_limit(object value):
    """Whether ``_check_limit`` accepts ``value`` (``None`` or a positive ``int``) at
    once: the shared check, in Python, then runs only for a value it may refuse (a
    decoder per message, made without a Python call)."""
    return value is None or (type(value) is int and 1 <= value <= MAX_LIMIT)


cdef class DataEncoder:
    """Streaming DATA content encoder (client side), RFC 5321 §4.5.2.

    ``feed(chunk)`` returns the encoded bytes to write now; ``finish()`` returns the
    end (CRLF if the content did not end with one, then ``.\\r\\n``) and closes the
    encoder. A refused octet or line raises ``LocalProtocolError`` naming the content
    offset; no byte of that chunk is returned, but earlier chunks may already be on
    the wire, so the encoder stays failed (every later call raises) and the caller
    must close the connection: the server cannot be told where the message ends.
    Calling ``feed`` or ``finish`` after ``finish`` raises ``LocalProtocolError``.
    """

    cdef Py_ssize_t _limit  # -1: no line length limit
    cdef Py_ssize_t _line_len
    cdef bint _after_cr
    cdef bint _closed
    cdef bint _stuff  # dot-stuffing and the final ".CRLF" (False: BDAT)
    cdef object _error
    # Which of _SPECIAL applies (allow_nul + 2 * allow_8bit), an int rather than a
    # pointer to it: Cython's pickling (copy, deepcopy too) keeps a cdef field's value,
    # and a pointer's would come back pointing into a dead object.
    cdef int _kind
    cdef readonly long long octets_in
    cdef readonly long long octets_out

    def __init__(
        self,
        *,
        max_line_length=DEFAULT_DATA_MAX_LINE_LENGTH,
        allow_nul=False,
        allow_8bit=False,
    ):
        if not _plain_limit(max_line_length):
            _check_limit("max_line_length", max_line_length, allow_none=True)
        self._limit = -1 if max_line_length is None else max_line_length
        self._kind = (1 if allow_nul else 0) + (2 if allow_8bit else 0)
        self._line_len = 0
        self._after_cr = False
        self._closed = False
        self._stuff = True
        self._error = None
        self.octets_in = 0
        self.octets_out = 0

    @property
    def failed(self):
        """True once a ``LocalProtocolError`` was raised for the content."""
        return self._error is not None

    cdef int _check_usable(self) except -1:
        if self._error is not None:
            raise LocalProtocolError(self._error)
        if self._closed:
            raise LocalProtocolError("DataEncoder is closed: finish() was already called")
        return 0

    def feed(self, chunk):
        """Encode the next piece of content (any bytes-like object, any size)."""
        cdef Py_buffer view
        self._check_usable()
        chunk = _get_simple_buffer(chunk, &view)
        try:
            return self._encode(<const unsigned char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def refusal(self, content):
        """The message ``feed`` would raise for ``content`` as a whole message given to
        a fresh encoder with these settings (same rule, offset and text), else None.
        Changes nothing (see the Python twin)."""
        cdef Py_buffer view
        content = _get_simple_buffer(content, &view)
        try:
            if self._clean(<const unsigned char*>view.buf, view.len):
                return None
            return self._refusal(<const unsigned char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    cdef bint _clean(self, const unsigned char* p, Py_ssize_t n):
        """Whether nothing in ``p[:n]`` is refused, decided in bulk: ``memchr`` for NUL
        and line ends, eight octets at a time for 8-bit; ``_refusal`` then finds the
        first violation octet by octet only for content that has one."""
        cdef Py_ssize_t i = 0
        cdef Py_ssize_t start = 0
        cdef Py_ssize_t end
        cdef Py_ssize_t piece
        cdef Py_ssize_t limit = self._limit
        cdef uint64_t word
        cdef uint64_t seen = 0
        cdef const unsigned char* found
        cdef const unsigned char* special = _SPECIAL[self._kind & 3]
        if special[0] and memchr(p, 0, n) != NULL:
            return False
        if special[0x80]:
            while i + 8 <= n:
                memcpy(&word, p + i, 8)
                seen |= word
                i += 8
            while i < n:
                seen |= p[i]
                i += 1
            if seen & 0x8080808080808080ULL:
                return False
        if limit < 0 or n <= limit:
            return True
        while start < n:  # each LF-ended segment; one over the limit is cut at CRs
            found = <const unsigned char*>memchr(p + start, LF, n - start)
            end = n if found == NULL else found - p
            piece = start
            while end - piece > limit:
                found = <const unsigned char*>memchr(p + piece, CR, end - piece)
                if found == NULL or found - p - piece > limit:
                    return False
                piece = found - p + 1
            start = end + 1
        return True

    cdef object _refusal(self, const unsigned char* p, Py_ssize_t n):
        cdef Py_ssize_t i = 0
        cdef Py_ssize_t j
        cdef Py_ssize_t line_len = 0
        cdef Py_ssize_t limit = self._limit
        cdef const unsigned char* special = _SPECIAL[self._kind & 3]
        cdef unsigned char c
        while i < n:
            c = p[i]
            if c == LF or c == CR:
                line_len = 0
                i += 1
                continue
            j = i
            while j < n and not special[p[j]]:
                j += 1
            if j == i:
                if c == 0:
                    return _nul_message(i)
                return _8bit_message(c, i)
            if limit >= 0 and line_len + (j - i) > limit:
                return _line_message(limit, i + (limit - line_len))
            line_len += j - i
            i = j
        return None

    cdef bytes _encode(self, const unsigned char* p, Py_ssize_t n):
        cdef Py_ssize_t i = 0
        cdef Py_ssize_t j
        cdef Py_ssize_t k = 0
        cdef Py_ssize_t run
        cdef long long base = self.octets_in
        cdef Py_ssize_t limit = self._limit
        cdef Py_ssize_t line_len = self._line_len
        cdef bint after_cr = self._after_cr
        cdef bint stuff = self._stuff
        cdef const unsigned char* special = _SPECIAL[self._kind & 3]
        cdef unsigned char c
        cdef char* out
        cdef str message
        if n == 0:
            return b""
        out = <char*>PyMem_Malloc(2 * n)
        if out == NULL:
            raise MemoryError()
        try:
            while i < n:
                c = p[i]
                if c == LF:
                    if not after_cr:
                        out[k] = CR
                        out[k + 1] = LF
                        k += 2
                    after_cr = False
                    line_len = 0
                    i += 1
                    continue
                if c == CR:
                    out[k] = CR
                    out[k + 1] = LF
                    k += 2
                    after_cr = True
                    line_len = 0
                    i += 1
                    continue
                after_cr = False
                j = i
                while j < n and not special[p[j]]:
                    j += 1
                if j == i:
                    if c == 0:
                        message = _nul_message(base + i)
                    else:
                        message = _8bit_message(c, base + i)
                    self._error = message
                    raise LocalProtocolError(message)
                run = j - i
                if limit >= 0 and line_len + run > limit:
                    message = _line_message(limit, base + i + (limit - line_len))
                    self._error = message
                    raise LocalProtocolError(message)
                if stuff and line_len == 0 and c == DOT:
                    out[k] = DOT
                    k += 1
                memcpy(out + k, p + i, run)
                k += run
                line_len += run
                i = j
            self._line_len = line_len
            self._after_cr = after_cr
            self.octets_in = base + n
            self.octets_out += k
            return PyBytes_FromStringAndSize(out, k)
        finally:
            PyMem_Free(out)

    def reset(self):
        """Make this encoder what a new one with the same settings is (see the Python
        twin): no content fed, not closed, not failed, counters at 0."""
        self._after_cr = False
        self._line_len = 0
        self._closed = False
        self._error = None
        self.octets_in = 0
        self.octets_out = 0

    def finish(self):
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


cdef class LineEndNormalizer(DataEncoder):
    """Streaming CRLF normalisation for BDAT content, RFC 3030 §2 / RFC 5321 §2.3.8.

    ``feed(chunk)`` returns the chunk with every bare CR and bare LF made CRLF (CRLF
    stays), identically for any chunking; ``finish()`` returns the CRLF that ends
    non-empty content not ending in a line end (else ``b""``) and closes it. No
    dot-stuffing, no ``.CRLF``, no refusals: ``DataEncoder``'s rules 1 and 3 only.
    """

    def __init__(self):
        DataEncoder.__init__(self, max_line_length=None, allow_nul=True, allow_8bit=True)
        self._stuff = False


cdef class DataDecoder:
    """Streaming DATA content decoder (server side), RFC 5321 §4.5.2, anti-smuggling.

    ``feed(data)`` returns ``(content, done)``: the decoded content this call made
    certain, and whether the terminating ``CRLF.CRLF`` was seen. Once done, the bytes
    after the terminator (pipelined commands) are in ``leftover`` and ``feed`` raises
    ``LocalProtocolError``. A crossed limit raises ``RemoteProtocolError`` (sticky:
    the end of the data is unknown, so the connection must be closed).
    """

    cdef long long _max_len  # -1: none
    cdef long long _max_size  # -1: none
    cdef int _state
    cdef long long _line_len
    cdef object _error  # (message, offset) or None
    cdef readonly long long octets_in
    cdef readonly long long octets_out
    cdef readonly long long bare_line_endings
    cdef readonly bytes leftover

    def __init__(
        self,
        *,
        max_line_length=DEFAULT_SERVER_DATA_MAX_LINE_LENGTH,
        max_message_size=None,
    ):
        if not (_plain_limit(max_line_length) and _plain_limit(max_message_size)):
            _check_limit("max_line_length", max_line_length, allow_none=True)
            _check_limit("max_message_size", max_message_size, allow_none=True)
        self._max_len = -1 if max_line_length is None else max_line_length
        self._max_size = -1 if max_message_size is None else max_message_size
        self._state = S_LINE_START
        self._line_len = 0
        self._error = None
        self.octets_in = 0
        self.octets_out = 0
        self.bare_line_endings = 0
        self.leftover = b""

    @property
    def failed(self):
        """True once a ``RemoteProtocolError`` was raised; every later call raises it."""
        return self._error is not None

    @property
    def done(self):
        """True once the terminating ``CRLF.CRLF`` was consumed."""
        return self._state == S_DONE

    cdef int _fail_line(self, long long offset) except -1:
        message = f"DATA line longer than {self._max_len} octets"
        self._error = (message, offset)
        raise RemoteProtocolError(message, offset=offset)

    cdef int _fail_size(self, long long offset) except -1:
        message = f"message content larger than {self._max_size} octets"
        self._error = (message, offset)
        raise RemoteProtocolError(message, offset=offset)

    cdef inline int _bump(self, long long octets, long long offset, long long line_octets) except -1:
        if line_octets:
            self._line_len += line_octets
            if self._max_len >= 0 and self._line_len > self._max_len:
                self._fail_line(offset)
        self.octets_out += octets
        if self._max_size >= 0 and self.octets_out > self._max_size:
            self._fail_size(offset)
        return 0

    def feed(self, data):
        """Consume wire bytes after the 354 reply; return ``(content, done)``."""
        cdef Py_buffer view
        if self._error is not None:
            raise RemoteProtocolError(self._error[0], offset=self._error[1])
        if self._state == S_DONE:
            raise LocalProtocolError("DataDecoder is done: the data already ended")
        data = _get_simple_buffer(data, &view)
        try:
            return self._decode(<const unsigned char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    cdef tuple _decode(self, const unsigned char* p, Py_ssize_t n):
        cdef Py_ssize_t i = 0
        cdef Py_ssize_t j
        cdef Py_ssize_t k = 0
        cdef long long run
        cdef long long line_at
        cdef long long size_at
        cdef long long base = self.octets_in
        cdef int state = self._state
        cdef unsigned char c
        cdef const unsigned char* found
        cdef char* out = <char*>PyMem_Malloc(n + 2)
        if out == NULL:
            raise MemoryError()
        try:
            while i < n:
                c = p[i]
                if state == S_LINE_START:
                    if c == DOT:
                        state = S_DOT_SEEN
                        i += 1
                        continue
                    state = S_TEXT
                elif state == S_DOT_SEEN:
                    if c == CR:
                        state = S_DOT_CR
                        i += 1
                        continue
                    state = S_TEXT
                elif state == S_DOT_CR:
                    if c == LF:
                        state = S_DONE
                        i += 1
                        break
                    self.bare_line_endings += 1
                    out[k] = CR
                    k += 1
                    self._bump(1, base + i, 1)
                    if c == CR:
                        state = S_CR_SEEN
                        i += 1
                        continue
                    state = S_TEXT
                elif state == S_CR_SEEN:
                    if c == LF:
                        out[k] = CR
                        out[k + 1] = LF
                        k += 2
                        self._bump(2, base + i, 0)
                        self._line_len = 0
                        state = S_LINE_START
                        i += 1
                        continue
                    self.bare_line_endings += 1
                    out[k] = CR
                    k += 1
                    self._bump(1, base + i, 1)
                    if c == CR:
                        i += 1
                        continue
                    state = S_TEXT
                # S_TEXT
                if c == CR:
                    state = S_CR_SEEN
                    i += 1
                    continue
                if c == LF:
                    self.bare_line_endings += 1
                    out[k] = LF
                    k += 1
                    self._bump(1, base + i, 1)
                    i += 1
                    continue
                # the run of ordinary octets up to the next CR or LF: two ``memchr``
                # scans (the first CR, then any LF before it), not an octet loop
                found = <const unsigned char*>memchr(p + i + 1, CR, n - i - 1)
                j = n if found == NULL else found - p
                found = <const unsigned char*>memchr(p + i + 1, LF, j - i - 1)
                if found != NULL:
                    j = found - p
                run = j - i
                line_at = -1
                size_at = -1
                if self._max_len >= 0 and self._line_len + run > self._max_len:
                    line_at = i + (self._max_len - self._line_len)
                if self._max_size >= 0 and self.octets_out + run > self._max_size:
                    size_at = i + (self._max_size - self.octets_out)
                if line_at >= 0 and (size_at < 0 or line_at <= size_at):
                    self._fail_line(base + line_at)
                if size_at >= 0:
                    self._fail_size(base + size_at)
                self._line_len += run
                self.octets_out += run
                memcpy(out + k, p + i, run)
                k += run
                i = j
            self._state = state
            if state == S_DONE:
                self.leftover = PyBytes_FromStringAndSize(<const char*>p + i, n - i)
            self.octets_in = base + i
            return (PyBytes_FromStringAndSize(out, k), state == S_DONE)
        finally:
            PyMem_Free(out)
