# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, nonecheck=False
"""The capture line reader, compiled (``atomfast.capture`` owns the formats; this is its hot loop).

``FrameReader`` reads a capture file a block at a time (``read1(chunk)`` of the opened file: the
decompressing reader for ``.gz``), finds the lines in the block with ``memchr`` and parses each in
place: a received line costs its payload's bytes, its time as an int and its ``Frame`` (built
directly, as ``tuple.__new__(Frame, ...)`` would), and no other Python object. The rare lines (a
cryptofeed connect or send, a bytes literal, base64, a bad line, a time that is not plain digits)
go to the same Python helpers of ``atomfast.capture`` as before, so what comes out is what the
Python reader gave, report for report.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_FromLongLong
from cpython.object cimport PyTypeObject
from cpython.ref cimport Py_INCREF
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.tuple cimport PyTuple_SET_ITEM
from libc.string cimport memchr, memcmp

cdef extern from "string.h":
    # a GNU extension (Python.h defines _GNU_SOURCE)
    const void* memmem(const void* haystack, size_t haystacklen, const void* needle, size_t needlelen) nogil


cdef extern from "Python.h":
    object PyType_GenericAlloc(PyTypeObject* t, Py_ssize_t nitems)


#: the formats (``atomfast.capture.detect_format``'s names)
cdef enum:
    RECORD = 0
    CRYPTOFEED = 1
    HFTBACKTEST = 2

FORMATS = {"record": RECORD, "cryptofeed": CRYPTOFEED, "hftbacktest": HFTBACKTEST}

# atomfast.capture's names, bound once it has imported this module (``bind``)
cdef object _Frame = None
cdef object _OPEN, _SENT, _RECV, _REST
cdef object _TRUNCATED, _BAD_LINE, _TRUNCATED_KIND
cdef object _bytes_literal, _cut_short, _cryptofeed_other, _b64decode, _time_ns
cdef object _EMPTY = b""


def bind(module) -> None:
    """Take the Frame type, kinds and helpers from ``atomfast.capture`` (called by it once)."""
    global _Frame, _OPEN, _SENT, _RECV, _REST, _TRUNCATED, _BAD_LINE, _TRUNCATED_KIND
    global _bytes_literal, _cut_short, _cryptofeed_other, _b64decode, _time_ns
    _Frame = module.Frame
    _OPEN, _SENT, _RECV, _REST = module.OPEN, module.SENT, module.RECV, module.REST
    _TRUNCATED, _BAD_LINE, _TRUNCATED_KIND = module._TRUNCATED, module.BAD_LINE, module.TRUNCATED
    _bytes_literal, _cut_short, _cryptofeed_other = module._bytes_literal, module._cut_short, module._cryptofeed_other
    _b64decode, _time_ns = module._b64decode, module._cryptofeed_time_ns


cdef inline object _frame(object ts, object conn, object kind, object url, object data, bint binary):
    """``tuple.__new__(Frame, (ts, conn, kind, url, data, binary))`` without the argument tuple."""
    cdef object f = PyType_GenericAlloc(<PyTypeObject*>_Frame, 6)
    cdef object b = True if binary else False
    Py_INCREF(ts); PyTuple_SET_ITEM(f, 0, ts)
    Py_INCREF(conn); PyTuple_SET_ITEM(f, 1, conn)
    Py_INCREF(kind); PyTuple_SET_ITEM(f, 2, kind)
    Py_INCREF(url); PyTuple_SET_ITEM(f, 3, url)
    Py_INCREF(data); PyTuple_SET_ITEM(f, 4, data)
    Py_INCREF(b); PyTuple_SET_ITEM(f, 5, b)
    return f


cdef inline bint _digits(const char* s, Py_ssize_t n):
    """``bytes.isdigit``: not empty, ASCII digits only."""
    cdef Py_ssize_t i
    if n <= 0:
        return False
    for i in range(n):
        if s[i] < 48 or s[i] > 57:
            return False
    return True


cdef inline long long _number(const char* s, Py_ssize_t n):
    """The value of ``n`` (<= 18) ASCII digits."""
    cdef long long v = 0
    cdef Py_ssize_t i
    for i in range(n):
        v = v * 10 + (s[i] - 48)
    return v


cdef inline object _int_of_digits(const char* s, Py_ssize_t n):
    """``int(digits)`` of ASCII digits (a long run through Python's own int)."""
    if n <= 18:
        return PyLong_FromLongLong(_number(s, n))
    return int(PyBytes_FromStringAndSize(s, n))


cdef inline Py_ssize_t _find2(const char* s, Py_ssize_t n, char a, char b):
    """Index of the first ``a`` followed by ``b`` in ``s[:n]``, or -1."""
    cdef Py_ssize_t i
    cdef const char* hit
    i = 0
    while i + 1 < n:
        hit = <const char*>memchr(s + i, a, n - 1 - i)
        if hit == NULL:
            return -1
        i = hit - s
        if s[i + 1] == b:
            return i
        i += 1
    return -1


cdef inline Py_ssize_t _find(const char* s, Py_ssize_t n, char c):
    cdef const char* hit = <const char*>memchr(s, c, n)
    return -1 if hit == NULL else hit - s


cdef class FrameReader:
    """A capture file's ``Frame``s (an iterator), parsed as ``fmt`` (``record``, ``cryptofeed``,
    ``hftbacktest``). ``fh``: the file opened binary (its ``read1`` is called with ``chunk``; it is
    closed at the end). ``report(kind, detail)`` is told of every line that is no frame and of an
    early end (``atomfast.capture``'s wording). ``listing=True`` (record only): only the ``open``
    and ``rest`` lines, the others skipped unparsed (``open_capture``'s pre-pass)."""

    cdef object fh, read, path, report, conn, url, urls
    cdef bytes buf
    cdef Py_ssize_t pos, end, chunk
    cdef readonly Py_ssize_t n  # the lines read whole so far
    cdef int fmt
    cdef bint header, listing, eof, done
    cdef object last  # the unterminated last line (bytes) once the file is read, or None
    # the cryptofeed times: the whole seconds of the previous frame and their ns
    cdef long long last_whole_ns
    cdef Py_ssize_t last_whole_len
    cdef char last_whole[20]

    def __cinit__(self, fh, path, str fmt, conn, report, Py_ssize_t chunk, bint listing=False):
        self.fh = fh
        self.read = fh.read1
        self.path = path
        self.fmt = FORMATS[fmt]
        self.conn = conn
        self.report = report
        self.chunk = chunk
        self.listing = listing
        self.url = ""
        self.urls = {}
        self.buf = _EMPTY
        self.pos = self.end = 0
        self.n = 0
        self.header = self.fmt == RECORD
        self.eof = self.done = False
        self.last = None
        self.last_whole_len = 0
        self.last_whole_ns = 0

    def __dealloc__(self):
        # a reader left before its end (a venue probe, max_frames) closes its file, as a
        # generator's ``with`` did
        if self.fh is not None:
            try:
                self.fh.close()
            except Exception:
                pass

    def __iter__(self):
        return self

    def __next__(self):
        cdef const char* s
        cdef const char* nl
        cdef Py_ssize_t start, length
        cdef object f
        while not self.done:
            if not self.eof:
                s = PyBytes_AS_STRING(self.buf)
                nl = <const char*>memchr(s + self.pos, 10, self.end - self.pos) if self.pos < self.end else NULL
                if nl == NULL:
                    self._fill()
                    continue
                start = self.pos
                length = (nl - s) - start
                self.pos = start + length + 1
                self.n += 1
                if length == 0:
                    continue
                f = self._line(s + start, length)
            else:  # the last line, without its line end (see _fill)
                self.done = True
                self._close()
                if self.last is None:
                    break
                f = self._line(PyBytes_AS_STRING(self.last), PyBytes_GET_SIZE(self.last))
            if f is not None:
                return f
        raise StopIteration

    cdef _close(self):
        fh, self.fh = self.fh, None
        if fh is not None:
            fh.close()

    cdef _fill(self):
        """The next block: what is left of the buffer (the start of a line) and as many reads as
        it takes to end a line; at the end of the file, the last unterminated line (or an early
        end reported)."""
        pending = [self.buf[self.pos:self.end]] if self.pos < self.end else []
        while True:
            try:
                data = self.read(self.chunk)
            except _TRUNCATED as exc:
                self.report(_TRUNCATED_KIND, f"{self.path} ends early after line {self.n} ({exc}): replayed up to it")
                self.done = True
                self._close()
                return
            if not data:
                break
            if (<bytes>data).rfind(b"\n") < 0:
                pending.append(data)
                continue
            if pending:
                pending.append(data)
                data = b"".join(pending)
            self.buf = data
            self.pos = 0
            self.end = PyBytes_GET_SIZE(data)
            return
        self.eof = True
        self.buf = _EMPTY
        self.pos = self.end = 0
        rest = b"".join(pending)
        if rest:
            self.n += 1
            if _cut_short(rest):
                self.report(_TRUNCATED_KIND, f"{self.path} ends in the middle of line {self.n} (no line end, payload "
                                             f"incomplete): replayed up to it")
                return
            self.last = rest

    cdef _bad(self, const char* s, Py_ssize_t length, str why):
        line = PyBytes_FromStringAndSize(s, length)
        self.report(_BAD_LINE, f"{self.path}:{self.n}: {why}: {line[:80]!r}")

    cdef object _line(self, const char* s, Py_ssize_t length):
        if self.fmt == CRYPTOFEED:
            return self._cryptofeed(s, length)
        if self.fmt == HFTBACKTEST:
            return self._hftbacktest(s, length)
        return self._record(s, length)

    cdef object _cryptofeed(self, const char* s, Py_ssize_t length):
        """``<secs>.<frac>: <payload>`` (received; the payload not decoded), else a connect or a
        send (``atomfast.capture._cryptofeed_other``)."""
        cdef Py_ssize_t colon, dot, whole_len, frac_len, i, k
        cdef const char* frac
        cdef long long ts, part
        cdef bint plain
        if 48 <= s[0] <= 57:
            colon = _find2(s, length, 58, 32)  # ": "
            if colon >= 0:
                dot = _find(s, colon, 46)  # "."
                whole_len = colon if dot < 0 else dot
                frac = s + whole_len + 1
                frac_len = 0 if dot < 0 else colon - dot - 1
                k = frac_len if frac_len < 9 else 9
                plain = whole_len <= 18 and _digits(s, whole_len) and (k == 0 or _digits(frac, k))
                if plain:
                    if whole_len == self.last_whole_len and memcmp(s, self.last_whole, whole_len) == 0:
                        ts = self.last_whole_ns
                    else:
                        ts = _number(s, whole_len) * 1_000_000_000
                        self.last_whole_ns = ts
                        self.last_whole_len = whole_len
                        for i in range(whole_len):
                            self.last_whole[i] = s[i]
                    part = _number(frac, k)
                    for i in range(k, 9):
                        part *= 10
                    ts_obj = PyLong_FromLongLong(ts + part)
                else:  # not plain digits: as int() reads them (whitespace, "_", a sign...)
                    ts_obj = _time_ns(PyBytes_FromStringAndSize(s, colon))
                    if ts_obj is None:
                        self._bad(s, length, "not a frame (bad time)")
                        return None
                payload = PyBytes_FromStringAndSize(s + colon + 2, length - colon - 2)
                if length - colon - 2 >= 2 and s[colon + 2] == 98 and (s[colon + 3] == 39 or s[colon + 3] == 34):
                    # b'...' / b"...": a binary frame (repr's common form in C, else the Python way)
                    data = _literal(s + colon + 2, length - colon - 2)
                    if data is None:
                        data = _bytes_literal(payload)
                    if data is None:
                        self._bad(s, length, "not a frame (bad bytes literal)")
                        return None
                    return _frame(ts_obj, self.conn, _RECV, self.url, data, True)
                return _frame(ts_obj, self.conn, _RECV, self.url, payload, False)
        f = _cryptofeed_other(PyBytes_FromStringAndSize(s, length), self.conn)
        if f is None:
            self._bad(s, length, "not a frame")
        elif f[2] is _OPEN:
            self.url = f[3]
        return f

    cdef object _hftbacktest(self, const char* s, Py_ssize_t length):
        """``<ns> <json>``; the REST depth snapshot (``{"lastUpdateId"...``) sits inline."""
        cdef Py_ssize_t sp = _find(s, length, 32)
        if sp < 0 or sp + 1 >= length or sp > 20 or not _digits(s, sp):
            self._bad(s, length, "not a frame ('<ns> <json>')")
            return None
        payload = PyBytes_FromStringAndSize(s + sp + 1, length - sp - 1)
        rest = length - sp - 1 >= 15 and memcmp(s + sp + 1, b'{"lastUpdateId"', 15) == 0
        return _frame(_int_of_digits(s, sp), self.conn, _REST if rest else _RECV, "", payload, False)

    cdef object _record(self, const char* s, Py_ssize_t length):
        """``<ns> <conn> <kind> <payload>`` after the header line."""
        cdef Py_ssize_t a, b, c, kind_len, start
        cdef const char* kind
        cdef int k
        if self.header:
            self.header = False
            return None
        a = _find(s, length, 32)
        b = -1 if a < 0 else _find(s + a + 1, length - a - 1, 32)
        if b >= 0:
            b += a + 1
            c = _find(s + b + 1, length - b - 1, 32)
            if c >= 0:
                c += b + 1
        kind = s + b + 1
        kind_len = (length if c < 0 else c) - b - 1 if b >= 0 else 0
        # the kinds: 1 open, 2 recv, 3 sent, 4 bin, 5 text64, 6 rest
        k = 0
        if kind_len == 4:
            if memcmp(kind, b"recv", 4) == 0:
                k = 2
            elif memcmp(kind, b"open", 4) == 0:
                k = 1
            elif memcmp(kind, b"sent", 4) == 0:
                k = 3
            elif memcmp(kind, b"rest", 4) == 0:
                k = 6
        elif kind_len == 3 and memcmp(kind, b"bin", 3) == 0:
            k = 4
        elif kind_len == 6 and memcmp(kind, b"text64", 6) == 0:
            k = 5
        if b < 0 or k == 0 or not _digits(s, a) or not _digits(s + a + 1, b - a - 1):
            if not self.listing:
                self._bad(s, length, "not a frame ('<ns> <conn> <kind> <payload>')")
            return None
        if self.listing and k != 1 and k != 6:
            return None
        ts = _int_of_digits(s, a)
        conn_id = _int_of_digits(s + a + 1, b - a - 1)
        start = length if c < 0 else c + 1
        payload = PyBytes_FromStringAndSize(s + start, length - start)
        if k == 2:
            return _frame(ts, conn_id, _RECV, self.urls.get(conn_id, ""), payload, False)
        if k == 1:
            url = payload.decode("utf-8", "surrogateescape")
            self.urls[conn_id] = url
            return _frame(ts, conn_id, _OPEN, url, _EMPTY, False)
        if k == 4 or k == 5:
            try:
                raw = _b64decode(payload)
            except ValueError:
                self._bad(s, length, "not a frame (bad base64)")
                return None
            return _frame(ts, conn_id, _RECV, self.urls.get(conn_id, ""), raw, k == 4)
        if k == 3:
            return _frame(ts, conn_id, _SENT, self.urls.get(conn_id, ""), payload, False)
        url, _, body = payload.partition(b" ")
        return _frame(ts, conn_id, _REST, url.decode("utf-8", "surrogateescape"), body, False)


def last_header(const unsigned char[::1] data, Py_ssize_t start, Py_ssize_t end) -> int:
    """``data.rfind(b" header: ", start, end)`` (0 <= start): where a cryptofeed REST line's recorded headers
    begin (the last such text of the line), or -1. A forward search for the whole text
    (glibc's ``memmem``, which skips ahead rather than comparing at every byte), keeping the last
    hit: ``rfind`` compares at every byte of a body of megabytes and finds nothing, and a scan
    from space to space stops at every space of a pretty-printed listing."""
    cdef const char* s
    cdef const char* hit
    cdef Py_ssize_t i, found = -1
    if end > data.shape[0]:
        end = data.shape[0]
    if start < 0 or end - start < 9:
        return -1
    s = <const char*>&data[0]
    i = start
    while end - i >= 9:
        hit = <const char*>memmem(s + i, end - i, b" header: ", 9)
        if hit == NULL:
            break
        found = hit - s
        i = found + 1
    return found


# --- REST answers: one bytes object per distinct large body in the process --------------------

#: a body shorter than this is always a new bytes object
cdef Py_ssize_t INTERN_MIN = 1 << 16
#: the large bodies kept at most (bytes, all of them together)
cdef Py_ssize_t INTERN_BUDGET = 32 << 20
#: the large bodies handed out so far, oldest first, and their total size
cdef list _interned = []
cdef Py_ssize_t _interned_size = 0


def rest_body(const unsigned char[::1] data, Py_ssize_t start, Py_ssize_t end) -> bytes:
    """``bytes(data[start:end])``; for a body of 64 KiB or more that equals one this process
    handed out before (compared whole: its length, then ``memcmp``), that very bytes object.
    An instrument listing recorded beside every capture of a venue (megabytes) is then one
    object however many captures are opened: no new allocation to fault in, and the parsed
    listings (``atomfast.replay``) recognise it by identity instead of comparing it again. The
    bodies kept total at most 32 MiB (the oldest forgotten first)."""
    global _interned_size
    cdef Py_ssize_t n, i
    cdef bytes b
    if end > data.shape[0]:
        end = data.shape[0]
    if start < 0 or start > end:
        start = end
    n = end - start
    if n == 0:
        return _EMPTY
    cdef const char* s = <const char*>&data[start]
    if n < INTERN_MIN or n > INTERN_BUDGET:
        return PyBytes_FromStringAndSize(s, n)
    for i in range(len(_interned)):
        b = <bytes>_interned[i]
        if PyBytes_GET_SIZE(b) == n and memcmp(PyBytes_AS_STRING(b), s, n) == 0:
            del _interned[i]
            _interned.append(b)  # the newest again
            return b
    b = PyBytes_FromStringAndSize(s, n)
    _interned.append(b)
    _interned_size += n
    while _interned_size > INTERN_BUDGET:
        _interned_size -= PyBytes_GET_SIZE(<bytes>_interned.pop(0))
    return b


# --- a binary frame as cryptofeed writes it: repr(bytes) ---------------------------------------

#: a hex digit's value by its byte, -1 for any other byte
cdef signed char _HEX[256]
for _i in range(256):
    _HEX[_i] = -1
for _i, _c in enumerate(bytearray(b"0123456789abcdef")):
    _HEX[_c] = _i
for _i, _c in enumerate(bytearray(b"ABCDEF")):
    _HEX[_c] = 10 + _i
#: the byte a one-letter escape stands for (\\ \' \" \n \r \t \a \b \f \v), 0 for none
cdef char _ESCAPED[256]
for _i in range(256):
    _ESCAPED[_i] = 0
for _c, _v in zip(bytearray(b"\\'\"nrtabfv"), bytearray(b"\\'\"\n\r\t\a\b\f\v")):
    _ESCAPED[_c] = _v


cdef object _literal(const char* s, Py_ssize_t n):
    r"""The value of the bytes literal ``s[:n]`` (``b'...'`` or ``b"..."``) in the form
    ``repr(bytes)`` writes: printable ASCII between the quotes, the quote escaped, the escapes
    ``\\ \' \" \t \n \r \xhh`` (and ``\a \b \f \v``, octal up to ``\377``). None for
    anything else (``atomfast.capture._bytes_literal`` then decides, as before): what it returns
    is what that function returns for the same text."""
    cdef char quote
    cdef unsigned char c
    cdef char* out
    cdef Py_ssize_t i, k = 0, end
    cdef int h, l, v, d
    if n < 3 or s[0] != 98:
        return None
    quote = s[1]
    end = n - 1
    if (quote != 39 and quote != 34) or s[end] != quote:
        return None
    out = <char*>PyMem_Malloc(n if n > 1 else 1)
    if out == NULL:
        raise MemoryError()
    try:
        i = 2
        while i < end:
            c = <unsigned char>s[i]
            if c != 92:
                if c < 32 or c > 126 or c == <unsigned char>quote:
                    return None         # not printable, or a quote not escaped: not repr's form
                out[k] = <char>c
                k += 1
                i += 1
                continue
            if i + 1 >= end:
                return None             # a lone backslash at the end
            c = <unsigned char>s[i + 1]
            i += 2
            if c == 120:                # \xhh (repr's escape of every other byte): two hex digits
                if i + 1 >= end:
                    return None
                h = _HEX[<unsigned char>s[i]]
                l = _HEX[<unsigned char>s[i + 1]]
                if h < 0 or l < 0:
                    return None
                out[k] = <char>(h * 16 + l)
                i += 2
            elif _ESCAPED[c]:
                out[k] = _ESCAPED[c]
            elif 48 <= c <= 55:         # \o, \oo, \ooo
                v = c - 48
                for d in range(2):
                    if i < end and 48 <= s[i] <= 55:
                        v = v * 8 + (s[i] - 48)
                        i += 1
                    else:
                        break
                if v > 255:
                    return None
                out[k] = <char>v
            else:
                return None             # an escape repr does not write
            k += 1
        return PyBytes_FromStringAndSize(out, k)
    finally:
        PyMem_Free(out)


def bytes_literal(payload: bytes):
    """``_literal`` of ``payload`` (tests): its value, or None where it is not repr's form."""
    return _literal(PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload))
