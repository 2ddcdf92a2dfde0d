# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of ``_reply_py.ReplyParser`` (read that module's header first).

Theory of operation
-------------------
Same algorithm, same checks in the same order, same messages and offsets; only the
mechanics differ. Pending bytes live in a C buffer (``_buf``/``_len``/``_cap``); line
ends are found with ``memchr`` starting where the last scan stopped. When nothing is
pending, a chunk is scanned in place through the buffer protocol and only its
incomplete tail is copied, so the common "one or more whole replies per chunk" case
copies each line's text exactly once: into the ``bytes`` object the reply keeps.

Replies are built without calling Python code: ``Reply`` is a slotted class, so at
import time the offsets of its two slots are read from their member descriptors and
each reply is allocated with the type's ``tp_alloc`` and its slots filled directly —
what ``wire.reply._make_reply`` does, minus three Python calls. If ``Reply`` ever stops
being a plain two-slot class, the module falls back to calling ``_make_reply``.

Copies and pickles go through the same state as the Python twin's (``__getstate__``,
``__setstate__``, checked by the reference module's ``_checked_state``): Cython's own
pickling cannot copy the C buffer, and the state's checks keep a restored parser's
buffer, lines and limits consistent, so no scan reads past the buffer.
"""

import copyreg

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_Append
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.string cimport memchr, memcpy, memmove

from .limits import (
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_MAX_REPLY_LINE_LENGTH,
    DEFAULT_MAX_REPLY_LINES,
)
from .errors import RemoteProtocolError
from ._reply_py import _STATE_KEYS, _checked_limits, _checked_state
from .reply import Reply, _make_reply

__all__ = ["ReplyParser", "SlotFiller", "slot_filler"]


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        const char* name
        int type
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    ctypedef struct _AllocType "PyTypeObject"
    ctypedef PyObject* (*allocfunc)(_AllocType*, Py_ssize_t)
    ctypedef struct _AllocType "PyTypeObject":
        allocfunc tp_alloc
    int T_OBJECT_EX
    bint PyType_IS_GC(_AllocType*)
    void PyObject_GC_UnTrack(void*)


cdef Py_ssize_t _SMALL_BUFFER = 4096  # capacity kept after a large chunk was drained

cdef tuple _CODES = tuple(range(600))  # shared int objects for every reply code
cdef bytes _EMPTY = b""

cdef _AllocType* _reply_type = <_AllocType*>Reply
cdef Py_ssize_t _code_offset = -1
cdef Py_ssize_t _lines_offset = -1


cdef int _find_slots() except -1:
    """Locate Reply's slots; leave the offsets at -1 (slow path) if it is not plain."""
    global _code_offset, _lines_offset
    code_descr = Reply.__dict__.get("code")
    lines_descr = Reply.__dict__.get("raw_lines")
    member_type = type(Reply.__dict__.get("code"))
    if (
        member_type.__name__ != "member_descriptor"
        or type(lines_descr) is not member_type
        or Reply.__slots__ != ("code", "raw_lines")
        or Reply.__new__ is not object.__new__
        or not PyType_IS_GC(_reply_type)
        or (<PyMemberDescrObject*>code_descr).d_member.type != T_OBJECT_EX
        or (<PyMemberDescrObject*>lines_descr).d_member.type != T_OBJECT_EX
    ):
        return 0
    _code_offset = (<PyMemberDescrObject*>code_descr).d_member.offset
    _lines_offset = (<PyMemberDescrObject*>lines_descr).d_member.offset
    return 0


_find_slots()

#: True when replies are built by filling Reply's slots directly (the fast path).
_FAST_REPLY = _code_offset >= 0


cdef inline object _new_reply(int code, tuple raw_lines):
    """``_make_reply(code, raw_lines)`` without Python-level calls."""
    cdef object code_obj = _CODES[code]
    if _code_offset < 0:
        return _make_reply(code_obj, raw_lines)
    cdef PyObject* obj = _reply_type.tp_alloc(_reply_type, 0)
    if obj == NULL:
        raise MemoryError()
    Py_INCREF(code_obj)
    Py_INCREF(raw_lines)
    (<PyObject**>((<char*>obj) + _code_offset))[0] = <PyObject*>code_obj
    (<PyObject**>((<char*>obj) + _lines_offset))[0] = <PyObject*>raw_lines
    cdef object reply = <object>obj  # the cast takes a second reference ...
    Py_DECREF(reply)  # ... so give back the one tp_alloc returned
    # Neither object can be part of a reference cycle (an int, and a tuple of bytes),
    # so the cycle collector need not track them — as CPython itself untracks tuples
    # of atomic objects. Without this, a feed returning thousands of replies pays for
    # repeated collections that traverse them all.
    PyObject_GC_UnTrack(<void*>raw_lines)
    PyObject_GC_UnTrack(<void*>reply)
    return reply


cdef class ReplyParser:
    """Incremental, bounded parser turning server bytes into ``Reply`` values."""

    cdef char* _buf
    cdef Py_ssize_t _len
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _scan_from
    cdef Py_ssize_t _offset
    cdef Py_ssize_t _max_line_length
    cdef Py_ssize_t _max_lines
    cdef Py_ssize_t _max_reply_bytes
    cdef Py_ssize_t _reply_bytes
    cdef int _code
    cdef bint _allow_bare_lf
    cdef list _lines
    cdef object _error

    def __cinit__(self):
        # A usable default state even if __init__ is skipped (ReplyParser.__new__).
        self._buf = NULL
        self._len = 0
        self._cap = 0
        self._max_line_length = DEFAULT_MAX_REPLY_LINE_LENGTH
        self._max_lines = DEFAULT_MAX_REPLY_LINES
        self._max_reply_bytes = DEFAULT_MAX_REPLY_BYTES
        self._lines = []

    def __dealloc__(self):
        PyMem_Free(self._buf)

    def __init__(
        self,
        *,
        max_line_length=DEFAULT_MAX_REPLY_LINE_LENGTH,
        max_lines=DEFAULT_MAX_REPLY_LINES,
        max_reply_bytes=DEFAULT_MAX_REPLY_BYTES,
        allow_bare_lf=False,
    ):
        max_line_length, max_lines, max_reply_bytes = _checked_limits(
            max_line_length, max_lines, max_reply_bytes
        )
        self._max_line_length = max_line_length
        self._max_lines = max_lines
        self._max_reply_bytes = max_reply_bytes
        self._allow_bare_lf = bool(allow_bare_lf)
        self._len = 0
        self._scan_from = 0
        self._offset = 0
        self._code = 0
        self._lines = []
        self._reply_bytes = 0
        self._error = None

    def __getstate__(self):
        """The parser's state, of immutable values, as in the Python twin."""
        values = (
            self._max_line_length,
            self._max_lines,
            self._max_reply_bytes,
            self._allow_bare_lf,
            PyBytes_FromStringAndSize(self._buf, self._len),
            self._offset,
            self._code,
            tuple(self._lines),
            self._reply_bytes,
            self._error,
        )
        return dict(zip(_STATE_KEYS, values, strict=True))

    def __setstate__(self, state):
        """Become the parser ``state`` describes (checked by ``_checked_state``)."""
        cdef bytes buffer
        (
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
        ) = _checked_state(state)
        self._max_line_length = max_line_length
        self._max_lines = max_lines
        self._max_reply_bytes = max_reply_bytes
        self._allow_bare_lf = allow_bare_lf
        self._len = 0
        if PyBytes_GET_SIZE(buffer):
            self._append(PyBytes_AS_STRING(buffer), PyBytes_GET_SIZE(buffer))
        self._scan_from = self._len  # every line end before it was consumed
        self._offset = offset
        self._code = code
        self._lines = list(lines)
        self._reply_bytes = reply_bytes
        self._error = error

    def __reduce__(self):
        """Copy and pickle through the state, for every protocol (as the twin does)."""
        return copyreg.__newobj__, (type(self),), self.__getstate__()

    @property
    def buffered(self):
        """Octets received but not yet part of a complete reply; 0 once failed."""
        return self._len + self._reply_bytes

    @property
    def failed(self):
        """True once a protocol error was raised; the parser then refuses all input."""
        return self._error is not None

    def feed(self, data):
        """Consume ``data`` (any bytes-like object); return every reply it completes.

        Raises ``RemoteProtocolError`` on a grammar violation or a crossed limit, and
        again on every later call. If replies were completed earlier in the same
        ``data``, they are returned first and the error is raised by the next call
        (``failed`` is already true): a valid reply is never lost to later garbage.
        ``b""`` is not end of input: use ``feed_eof``.
        """
        cdef Py_buffer view
        cdef list replies
        if self._error is not None:
            raise self._error
        if type(data) is bytes:  # no buffer protocol round trip for the common type
            return self._feed(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except BufferError:  # not contiguous (a strided view): copy, as the twin does
            data = bytes(memoryview(data))
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            replies = self._feed(<const char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        return replies

    def feed_eof(self):
        """Signal end of input; raise ``RemoteProtocolError`` if a reply is incomplete.

        The offset in the error is the end of the stream. Input may follow a clean EOF
        (the parser keeps no EOF state; the connection layer refuses it).
        """
        if self._error is not None:
            raise self._error
        if self._len or self._lines:
            self._fail("connection closed in the middle of a reply", self._len)

    # -- internals ------------------------------------------------------------------

    cdef list _feed(self, const char* data, Py_ssize_t n):
        """``feed`` on a C view of the caller's octets."""
        cdef list replies = []
        cdef Py_ssize_t start
        try:
            if self._len == 0:  # fast path: scan the caller's octets in place
                start = self._scan(data, n, 0, replies)
                self._tail(data, n, start)
                if start < n:
                    self._append(data + start, n - start)
            else:
                self._append(data, n)
                start = self._scan(self._buf, self._len, self._scan_from, replies)
                self._tail(self._buf, self._len, start)
                if start:
                    memmove(self._buf, self._buf + start, self._len - start)
                    self._len -= start
                self._shrink()
        except RemoteProtocolError:
            if replies:
                return replies  # the error is stored: the next call raises it
            raise
        self._offset += start
        self._scan_from = self._len
        return replies

    cdef Py_ssize_t _scan(
        self, const char* buf, Py_ssize_t n, Py_ssize_t pos, list replies
    ) except -1:
        """Parse every complete line of ``buf[:n]``; return where the rest starts."""
        cdef Py_ssize_t start = 0
        cdef Py_ssize_t end, size, line_length
        cdef Py_ssize_t content_end = 0
        cdef const char* lf
        cdef const unsigned char* line
        cdef int code
        cdef bint final = False
        cdef bytes text
        cdef tuple raw_lines
        while pos < n:
            lf = <const char*>memchr(buf + pos, b"\n", n - pos)
            if lf == NULL:
                break
            end = lf - buf
            line_length = end + 1 - start
            if line_length > self._max_line_length:
                self._fail("reply line longer than the line length limit", start)
            if end > start and buf[end - 1] == b"\r":
                content_end = end - 1
            elif self._allow_bare_lf:
                content_end = end
            else:
                self._fail("bare LF in reply; lines must end with CRLF", end)
            size = content_end - start
            line = <const unsigned char*>buf + start
            if (
                size < 3
                or not 0x32 <= line[0] <= 0x35
                or not 0x30 <= line[1] <= 0x35
                or not 0x30 <= line[2] <= 0x39
            ):
                self._fail("reply line does not start with a reply code 2xx-5xx", start)
            code = line[0] * 100 + line[1] * 10 + line[2] - 5328  # minus "000"
            if size == 3 or line[3] == 0x20:
                final = True
            elif line[3] == 0x2D:
                final = False
            else:
                self._fail("reply code not followed by SP, '-' or the line end", start + 3)
            if size > 4:
                text = PyBytes_FromStringAndSize(<const char*>line + 4, size - 4)
            else:
                text = _EMPTY
            if self._code:
                self._continue(code, text, line_length, start)
                if final:
                    raw_lines = tuple(self._lines)
                    self._lines = []
                    self._code = 0
                    self._reply_bytes = 0
                    PyList_Append(replies, _new_reply(code, raw_lines))
            elif final:  # a one-line reply: no line or byte count can be exceeded
                raw_lines = PyTuple_New(1)
                Py_INCREF(text)
                PyTuple_SET_ITEM(raw_lines, 0, text)
                PyList_Append(replies, _new_reply(code, raw_lines))
            else:
                self._code = code
                PyList_Append(self._lines, text)
                self._reply_bytes = line_length
            start = pos = end + 1
        return start

    cdef int _tail(self, const char* buf, Py_ssize_t n, Py_ssize_t start) except -1:
        """Refuse an incomplete line that can no longer fit a limit."""
        cdef Py_ssize_t pending = n - start
        if pending >= self._max_line_length:
            self._fail("reply line longer than the line length limit", start)
        if pending and self._reply_bytes + pending >= self._max_reply_bytes:
            self._fail("reply longer than the reply size limit", start)
        return 0

    cdef int _continue(
        self, int code, bytes text, Py_ssize_t line_length, Py_ssize_t start
    ) except -1:
        """Add a second or later line to the multiline reply being assembled."""
        if code != self._code:
            self._fail(f"multiline reply changed its code from {self._code} to {code}", start)
        if len(self._lines) >= self._max_lines:
            self._fail("reply has more lines than the line count limit", start)
        self._reply_bytes += line_length
        if self._reply_bytes > self._max_reply_bytes:
            self._fail("reply longer than the reply size limit", start)
        PyList_Append(self._lines, text)
        return 0

    cdef int _append(self, const char* data, Py_ssize_t n) except -1:
        """Append ``n`` octets to the pending buffer, growing it geometrically."""
        cdef Py_ssize_t need = self._len + n
        cdef Py_ssize_t cap
        cdef char* grown
        if need > self._cap:
            cap = max(need, 2 * self._cap, 256)
            grown = <char*>PyMem_Realloc(self._buf, cap)
            if grown == NULL:
                raise MemoryError()
            self._buf = grown
            self._cap = cap
        memcpy(self._buf + self._len, data, n)
        self._len = need
        return 0

    cdef int _shrink(self) except -1:
        """Give back the room a large chunk needed once it has been consumed."""
        cdef char* smaller
        if self._cap > _SMALL_BUFFER and self._len * 4 < self._cap:
            smaller = <char*>PyMem_Realloc(self._buf, max(self._len, _SMALL_BUFFER))
            if smaller != NULL:
                self._buf = smaller
                self._cap = max(self._len, _SMALL_BUFFER)
        return 0

    cdef int _fail(self, str rule, Py_ssize_t index) except -1:
        """Record and raise the sticky error; drop everything buffered."""
        self._error = RemoteProtocolError(rule, offset=self._offset + index)
        self._len = 0
        self._scan_from = 0
        self._lines = []
        self._code = 0
        self._reply_bytes = 0
        raise self._error


cdef class SlotFiller:
    """What the compiled twin of ``_slots_py.slot_filler`` returns (read that module's
    header first).

    Checks ``cls`` as the Python twin does, then builds each instance the way
    ``_new_reply`` builds a ``Reply``: ``tp_alloc`` and the slots filled at the offsets
    of their member descriptors, without calling Python code.
    """

    cdef _AllocType* _type
    cdef object _cls
    cdef Py_ssize_t _count
    cdef Py_ssize_t* _offsets

    def __cinit__(self):
        self._offsets = NULL
        self._count = 0

    def __dealloc__(self):
        PyMem_Free(self._offsets)

    def __init__(self, cls, names):
        descriptors = _plain_slots(cls, names)
        cdef Py_ssize_t count = len(descriptors)
        cdef Py_ssize_t* offsets = <Py_ssize_t*>PyMem_Malloc(max(count, 1) * sizeof(Py_ssize_t))
        if offsets == NULL:
            raise MemoryError()
        cdef Py_ssize_t index
        for index in range(count):
            offsets[index] = (<PyMemberDescrObject*>descriptors[index]).d_member.offset
        PyMem_Free(self._offsets)
        self._offsets = offsets
        self._count = count
        self._cls = cls
        self._type = <_AllocType*>cls

    def __copy__(self):
        """Itself, as ``copy.copy`` returns the Python twin's function: a filler is
        immutable. (Pickling is refused by both: the Python twin's is a local function.)"""
        return self

    def __deepcopy__(self, memo):
        return self

    def __call__(self, *values):
        cdef Py_ssize_t count = self._count
        cdef Py_ssize_t index
        cdef PyObject* item
        if self._type == NULL:
            raise TypeError("SlotFiller was not initialised")
        if len(values) != count:
            raise TypeError(f"{self._cls.__name__} takes {count} values, got {len(values)}")
        cdef PyObject* obj = self._type.tp_alloc(self._type, 0)
        if obj == NULL:
            raise MemoryError()
        for index in range(count):
            item = <PyObject*>values[index]
            Py_INCREF(<object>item)
            (<PyObject**>((<char*>obj) + self._offsets[index]))[0] = item
        cdef object made = <object>obj  # the cast takes a second reference ...
        Py_DECREF(made)  # ... so give back the one tp_alloc returned
        return made


def _plain_slots(cls, names):
    """The member descriptors of ``names`` in ``cls`` (``_slots_py._plain_slots``)."""
    from ._slots_py import _plain_slots as check

    descriptors = check(cls, names)
    for descriptor in descriptors:
        if (<PyMemberDescrObject*>descriptor).d_member.type != T_OBJECT_EX:
            raise TypeError(f"{cls.__name__}: slot {descriptor.__name__!r} is not a plain slot")
    return descriptors


def slot_filler(cls, names):
    """Compiled twin of ``_slots_py.slot_filler``: a ``SlotFiller`` for ``cls``."""
    return SlotFiller(cls, names)
