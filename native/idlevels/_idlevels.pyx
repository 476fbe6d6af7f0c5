# cython: language_level=3
"""The common case of a book message whose levels the exchange names by id, in C (atomfast.kit.idlevels).

BitMEX's ``orderBookL2``: a ``partial`` gives every level with its ``id``, ``side`` and ``price``;
then ``insert`` adds an id at a price, ``update`` sets the total size of a held id, ``delete``
removes one, the rows of ``update``/``delete`` carrying their price or not. The venue keeps its
market's ids as a dict ``id -> (side, price as sent)``; ``IdRows.apply`` applies one message's rows
of one market when nothing about them is out of the ordinary, and otherwise applies nothing and
says so (``NOT_APPLIED``), for the venue's own step-by-step path to say what is amiss.

The common case, every condition checked before anything is applied:

- every row names the market (``symbol`` equal to the one given) and a side by one of the two
  names given (``bid_name``, ``ask_name``);
- every row's time is the strict ``YYYY-MM-DDTHH:MM:SS.fffZ`` (a real date and time, second 60
  allowed, the result in [0, 10**14) ms) or empty (then the receive time, in ms);
- an ``insert``'s id is not held, its price and size are plain decimals (digits and at most one
  ``.``, no sign, no exponent), the price not zero; an ``update``'s or ``delete``'s id is held on
  that side, its row's price empty or the very bytes held; an ``update``'s size a plain decimal;
- no id twice in the message;
- the book takes the levels (``apply_sides`` parses them all before applying any: its
  ``ValueError``/``TypeError``/``OverflowError`` is a ``NOT_APPLIED``).

Then the levels, in runs of consecutive rows of one side and one time, one ``apply_sides`` call
a run (several runs: every level parsed by ``check_sides`` before any run is applied), the
``lob`` rows into ``rows_of("lob")``, each row at its own time; the ids updated (an insert held as
``(side, bytes(price))``, a delete dropped); where the top changed, the spread (``spread_into``
into ``rows_of("spread")``, at the last row's time). Returns the book's flags.
"""
cimport cython
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem, PyDict_DelItem, PyDict_Contains
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_Check
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int64_t

from atomfast._fields cimport FieldSlots, Py_TYPE, field_slot, fields_init, fields_resolve

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL
    int PyObject_GetBuffer(object obj, Py_buffer* view, int flags) except -1
    void PyBuffer_Release(Py_buffer* view)
    dict _PyDict_NewPresized(Py_ssize_t minused)
    void PyObject_GC_UnTrack(void* op)
    ctypedef struct Py_buffer:
        void* buf
        Py_ssize_t len

cdef extern from *:
    """
    /* equality of two exact str objects (ready, as every str of CPython 3.11 made by its API) */
    static inline int af_str_eq(PyObject* a, PyObject* b) {
        Py_ssize_t n;
        if (a == b) return 1;
        n = PyUnicode_GET_LENGTH(a);
        if (n != PyUnicode_GET_LENGTH(b) || PyUnicode_KIND(a) != PyUnicode_KIND(b)) return 0;
        return memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)n * PyUnicode_KIND(a)) == 0;
    }
    """
    bint af_str_eq(object a, object b) noexcept


INSERT = 0
UPDATE = 1
DELETE = 2
NOT_APPLIED = -1

cdef int C_INSERT = 0, C_UPDATE = 1, C_DELETE = 2, C_NOT_APPLIED = -1
cdef int F_TOP_CHANGED = 1
cdef tuple _BOOK_ERRORS = (ValueError, TypeError, OverflowError)
cdef tuple _FIELDS = ("symbol", "id", "side", "size", "price", "timestamp")
cdef enum:
    RUN_BUF = 32                # rows of a message whose sides and times fit on the stack
cdef enum:
    F_SYMBOL = 0
    F_ID = 1
    F_SIDE = 2
    F_SIZE = 3
    F_PRICE = 4
    F_TIME = 5
cdef int[16] _MONTH_DAYS  # (16: room gcc can see; months are 1..12)
_MONTH_DAYS[:] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 0, 0, 0]
cdef bytes _ZERO = b"0"


cdef inline int _two(const char* s) noexcept:
    if 48 <= s[0] <= 57 and 48 <= s[1] <= 57:
        return (s[0] - 48) * 10 + (s[1] - 48)
    return -1


cdef inline int64_t _days_from_civil(int64_t y, int m, int d) noexcept:
    # Howard Hinnant's days_from_civil: days since 1970-01-01
    cdef int64_t era, yoe, doy, doe
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef int64_t strict_iso_ms(object text) except -2:
    """``YYYY-MM-DDTHH:MM:SS.fffZ`` (exactly; a real date, second 60 allowed) -> ms since the
    epoch; -1 for anything else (also a result outside [0, 10**14))."""
    cdef Py_ssize_t n
    cdef const char* s
    cdef int c1, c2, mo, d, h, mi, sec, f1, dim
    cdef int64_t y, ms
    if not PyUnicode_Check(text):
        return -1
    s = PyUnicode_AsUTF8AndSize(text, &n)
    if n != 24 or s[4] != 45 or s[7] != 45 or s[10] != 84 or s[13] != 58 or s[16] != 58 or s[19] != 46 \
            or s[23] != 90:
        return -1
    c1, c2, mo, d = _two(s), _two(s + 2), _two(s + 5), _two(s + 8)
    h, mi, sec = _two(s + 11), _two(s + 14), _two(s + 17)
    f1 = _two(s + 20)
    if c1 < 0 or c2 < 0 or mo < 1 or mo > 12 or d < 1 or h < 0 or h > 23 or mi < 0 or mi > 59 \
            or sec < 0 or sec > 60 or f1 < 0 or not 48 <= s[22] <= 57:
        return -1
    y = c1 * 100 + c2
    dim = _MONTH_DAYS[mo]
    if mo == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0):
        dim = 29
    if y < 1 or d > dim:
        return -1
    ms = _days_from_civil(y, mo, d) * 86400000 + ((h * 60 + mi) * 60 + sec) * 1000 + f1 * 10 + (s[22] - 48)
    if not 0 <= ms < 100000000000000:
        return -1
    return ms


cdef bytes _bytes(object value):
    """``bytes(value)`` for a buffer (a ``msgspec.Raw``): its bytes copied, without the type call."""
    cdef Py_buffer view
    cdef bytes out
    if type(value) is bytes:
        return <bytes>value
    PyObject_GetBuffer(value, &view, 0)
    try:
        out = PyBytes_FromStringAndSize(<const char*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    return out


def iso_ms(text):
    """``"2021-07-22T22:36:09.757Z"`` -> 1626993369757: the strict ``YYYY-MM-DDTHH:MM:SS.fffZ``
    (a real date and time, second 60 allowed, the result in [0, 10**14) ms); -1 for anything
    else (another form, or not a str), for the caller's own rules to read."""
    return strict_iso_ms(text)


cdef inline tuple _held(object side, bytes price):
    """``(side, price)``, untracked by the garbage collector as CPython's own collection would
    leave it (a tuple of an int and a bytes can be in no cycle): a book's id map of such tuples
    then stays out of every collection."""
    cdef tuple t = (side, price)
    PyObject_GC_UnTrack(<void*>t)
    return t


cdef bint _plain(object value, bint nonzero) except -1:
    """Digits with at most one '.', at least one digit (and a non-zero one where ``nonzero``)."""
    cdef Py_buffer view
    cdef const unsigned char* s
    cdef Py_ssize_t i
    cdef int dots = 0, digits = 0, nz = 0
    cdef unsigned char c
    if value is None:
        return False
    try:
        PyObject_GetBuffer(value, &view, 0)
    except (TypeError, BufferError):
        return False
    s = <const unsigned char*>view.buf
    for i in range(view.len):
        c = s[i]
        if 48 <= c <= 57:
            digits += 1
            if c != 48:
                nz = 1
        elif c == 46:
            dots += 1
        else:
            PyBuffer_Release(&view)
            return False
    PyBuffer_Release(&view)
    return digits > 0 and dots <= 1 and (nz or not nonzero)


@cython.final
cdef class IdRows:
    """Applies a message's rows of one market in the common case (see the module): the field
    names of the row Struct (``symbol``, ``id``, ``side``, ``size``, ``price``, ``timestamp``), the
    two side names, the event types of ``lob`` and ``spread`` rows and the exchange."""

    cdef FieldSlots f
    cdef str bid_name, ask_name
    cdef object lob_type, spread_type, exchange
    cdef object bid, ask

    def __init__(self, bid_name, ask_name, lob_type, spread_type, exchange, bid=0, ask=1):
        fields_init(&self.f, _FIELDS)
        self.bid_name = bid_name
        self.ask_name = ask_name
        self.lob_type = lob_type
        self.spread_type = spread_type
        self.exchange = exchange
        self.bid = bid
        self.ask = ask

    def message(self, owner, action, list rows, int64_t recv_ns):
        """A message of ``action`` (its name: ``insert``, ``update``, ``delete``) as ``apply`` onto
        the live book of the market its first row names, all read from ``owner`` (the scheme:
        ``books``, ``unsynced``, ``_symbols``, ``rows`` and the venue's ``ids``, native -> its
        ids dict) at the call; ``NOT_APPLIED`` also for another action, no row, or no live book
        (none, or resyncing)."""
        cdef int code
        cdef object native, book, ids, symbol
        if type(action) is not str or not rows:
            return NOT_APPLIED
        if af_str_eq(action, "update"):
            code = C_UPDATE
        elif af_str_eq(action, "insert"):
            code = C_INSERT
        elif af_str_eq(action, "delete"):
            code = C_DELETE
        else:
            return NOT_APPLIED
        native = self._field(rows[0], F_SYMBOL)
        book = (<dict?>owner.books).get(native)
        if book is None or native in owner.unsynced:
            return NOT_APPLIED
        ids = (<dict?>owner.ids).get(native)
        symbol = (<dict?>owner._symbols).get(native)
        if type(ids) is not dict or type(symbol) is not str:
            return NOT_APPLIED
        return self._apply(book, <dict>ids, rows, code, owner.rows, native, <str>symbol, recv_ns)

    cdef inline object _side(self, object name):
        """The side a row's side name says; None for any other name (or what is no str)."""
        if type(name) is not str:
            return None
        if af_str_eq(name, self.bid_name):
            return self.bid
        if af_str_eq(name, self.ask_name):
            return self.ask
        return None

    cdef inline object _field(self, object row, Py_ssize_t i):
        cdef PyObject* p
        if Py_TYPE(row) != self.f.tp:
            fields_resolve(&self.f, _FIELDS, row)
        p = field_slot(&self.f, row, i)
        if p != NULL:
            return <object>p
        return getattr(row, _FIELDS[i])

    def apply(self, book, dict ids, list rows, int action, rows_of, str native, str symbol, int64_t recv_ns):
        """One message's ``rows`` (``action``: ``INSERT``, ``UPDATE``, ``DELETE``) of market
        ``native`` (published as ``symbol``) onto ``book`` and ``ids``: the book's flags, or
        ``NOT_APPLIED`` with nothing changed."""
        return self._apply(book, ids, rows, action, rows_of, native, symbol, recv_ns)

    cdef int _apply(self, object book, dict ids, list rows, int action, object rows_of, str native, str symbol,
                    int64_t recv_ns) except -2:
        cdef Py_ssize_t n = len(rows), i, start
        cdef object row, side, rid, ts, price, size, known, seen = None, lob, sym
        cdef int64_t ms, recv_ms = recv_ns // 1000000, atom_us = recv_ns // 1000
        cdef int flags = 0
        cdef bint one_run = True
        cdef PyObject* hit
        cdef list levels, prices = None
        cdef char side_buf[RUN_BUF]
        cdef int64_t time_buf[RUN_BUF]
        cdef char* sides = side_buf
        cdef int64_t* times = time_buf
        if n == 0 or action < C_INSERT or action > C_DELETE:
            return C_NOT_APPLIED
        if n > RUN_BUF:
            sides = <char*>PyMem_Malloc(n * (sizeof(char) + sizeof(int64_t)) + sizeof(int64_t))
            if sides == NULL:
                raise MemoryError()
            times = <int64_t*>(sides + n + (sizeof(int64_t) - n % sizeof(int64_t)))
        try:
            levels = [None] * n
            if action == C_INSERT:
                prices = [None] * n
            if n > 1:
                seen = set()
            for i in range(n):
                row = rows[i]
                sym = self._field(row, F_SYMBOL)
                if type(sym) is not str or not af_str_eq(sym, native):
                    return C_NOT_APPLIED
                side = self._side(self._field(row, F_SIDE))
                if side is None:
                    return C_NOT_APPLIED
                ts = self._field(row, F_TIME)
                if not ts:
                    ms = recv_ms
                else:
                    ms = strict_iso_ms(ts)
                    if ms < 0:
                        return C_NOT_APPLIED
                sides[i] = 0 if side is self.bid else 1
                times[i] = ms
                if i and (sides[i] != sides[i - 1] or ms != times[i - 1]):
                    one_run = False
                rid = self._field(row, F_ID)
                if seen is not None:
                    if rid in seen:
                        return C_NOT_APPLIED
                    seen.add(rid)
                hit = PyDict_GetItem(ids, rid)
                price = self._field(row, F_PRICE)
                if action == C_INSERT:
                    if hit != NULL:
                        return C_NOT_APPLIED
                    size = self._field(row, F_SIZE)
                    if not _plain(price, True) or not _plain(size, False):
                        return C_NOT_APPLIED
                    price = _bytes(price)
                    prices[i] = price
                else:
                    if hit == NULL:
                        return C_NOT_APPLIED
                    known = <object>hit
                    if type(known) is not tuple or len(<tuple>known) != 2:
                        return C_NOT_APPLIED
                    if (<tuple>known)[0] is not side and (<tuple>known)[0] != side:
                        return C_NOT_APPLIED
                    if price:
                        if _bytes(price) != (<tuple>known)[1]:
                            return C_NOT_APPLIED
                    price = (<tuple>known)[1]
                    if action == C_UPDATE:
                        size = self._field(row, F_SIZE)
                        if not _plain(size, False):
                            return C_NOT_APPLIED
                    else:
                        size = _ZERO
                levels[i] = (price, size)
            lob = rows_of("lob")
            if one_run:
                try:
                    flags = book.apply_sides(self._side_of(sides[0]), levels, None, lob, self.lob_type, self.exchange,
                                             symbol, times[0], atom_us)
                except _BOOK_ERRORS:
                    return C_NOT_APPLIED  # nothing applied
            else:
                try:  # every level parsed before any run is applied
                    book.check_sides(levels)
                except _BOOK_ERRORS:
                    return C_NOT_APPLIED
                start = 0
                for i in range(1, n + 1):
                    if i == n or sides[i] != sides[start] or times[i] != times[start]:
                        flags |= book.apply_sides(self._side_of(sides[start]), levels[start:i], None, lob,
                                                  self.lob_type, self.exchange, symbol, times[start], atom_us)
                        start = i
            if action == C_INSERT:
                for i in range(n):
                    PyDict_SetItem(ids, self._field(rows[i], F_ID), _held(self._side_of(sides[i]), prices[i]))
            elif action == C_DELETE:
                for i in range(n):
                    PyDict_DelItem(ids, self._field(rows[i], F_ID))
            if flags & F_TOP_CHANGED:
                book.spread_into(rows_of("spread"), self.spread_type, self.exchange, symbol, times[n - 1], atom_us)
            return flags
        finally:
            if sides != side_buf:
                PyMem_Free(sides)

    cdef inline object _side_of(self, char side):
        return self.bid if side == 0 else self.ask

    def market(self, list rows):
        """The market every row names (its ``symbol``), or None (no row, or rows of several)."""
        cdef Py_ssize_t n = len(rows), i
        cdef object first, other
        if n == 0:
            return None
        first = self._field(rows[0], F_SYMBOL)
        if type(first) is not str:
            return None
        for i in range(1, n):
            other = self._field(rows[i], F_SYMBOL)
            if type(other) is not str or not af_str_eq(other, first):
                return None
        return first

    def partial(self, list rows, int64_t recv_ms):
        """A snapshot's ``rows`` of one market, read in the common case: ``(runs, ids)``, the runs
        of consecutive rows of one side and one time as ``(side, [rows], event ms)`` (a row
        without a time: ``recv_ms``) and the ids ``{id: (side, bytes(price))}``; None where a
        row's side is neither name or its time not the strict form (the venue reads it itself).
        Nothing about the levels is checked here (the book's ``check_sides`` is)."""
        cdef Py_ssize_t n = len(rows), i, start = 0
        cdef object row, side, prev_side = None, ts, prev_ts = None, price
        cdef int64_t ms = 0, prev_ms = 0
        cdef list runs = []
        cdef dict ids = _PyDict_NewPresized(n)
        for i in range(n):
            row = rows[i]
            side = self._side(self._field(row, F_SIDE))
            if side is None:
                return None
            ts = self._field(row, F_TIME)
            if i == 0 or ts is not prev_ts:
                if i and type(ts) is str and type(prev_ts) is str and af_str_eq(ts, prev_ts):
                    pass  # the same time (an equal string)
                elif not ts:
                    ms = recv_ms
                else:
                    ms = strict_iso_ms(ts)
                    if ms < 0:
                        return None
                prev_ts = ts
            if i and (side is not prev_side or ms != prev_ms):  # (side: self.bid or self.ask)
                runs.append((prev_side, rows[start:i], prev_ms))
                start = i
            prev_side, prev_ms = side, ms
            price = self._field(row, F_PRICE)
            PyDict_SetItem(ids, self._field(row, F_ID), _held(side, _bytes(price)))
        if n:
            runs.append((prev_side, rows[start:n], prev_ms))
        return runs, ids
