# The C interface of atomfast._book that other compiled modules use (native/frame/_frame.pyx:
# sinks read a frame's AvroRows buffer without a bytes object per event; native/dispatch: a
# declared book shape applies an update without a Python call). Implemented in
# native/book/_book.pyx.
from libc.stdint cimport int64_t


cdef class AvroRows:
    cdef char* buf
    cdef Py_ssize_t size
    cdef Py_ssize_t cap
    cdef Py_ssize_t* ends       # where each row's value ends in buf
    cdef Py_ssize_t n
    cdef Py_ssize_t ncap
    cdef list keys
    cdef readonly bytes prefix  # the framing, written before every body
    cdef readonly bytes shape   # the field codes after exchange and symbol (SHAPES)
    cdef dict _heads            # (exchange, symbol) -> (key, Avro exchange + symbol); symbol -> (exchange, key, body)
    cdef object _hx, _hs        # the last head's exchange and symbol objects
    cdef bytes _hkey, _hbody

    cdef int _head(self, object exchange, object symbol) except -1
    cdef char* _begin(self, object exchange, object symbol, Py_ssize_t body) except NULL
    cdef int _end(self, char* out) except -1
    cdef int add(self, object exchange, object symbol, double price, double size, bint buy,
                 int64_t event_ms, int64_t atom_us) except -1
    cdef int add_quote(self, object exchange, object symbol, double bp, double bs, double ap,
                       double asz, int64_t event_ms, int64_t atom_us) except -1
    cpdef bint quote(self, object exchange, object symbol, object bid_price, object bid_size,
                     object ask_price, object ask_size, object event_ms, int64_t atom_us) except -1
    cpdef bint trade(self, object exchange, object symbol, object price, object size, bint buy,
                     object trade_id, object event_ms, int64_t atom_us) except -1
    cpdef bint order(self, object exchange, object symbol, object price, object size, bint bid,
                     object order_id, object event_ms, int64_t atom_us) except -1
    cpdef clear(self)


# ``L2Book.apply_update`` (the event time the newest level's), called from C: the status
# (UPDATE_OK, UPDATE_MISMATCH, UPDATE_NOT_APPLIED); -2 with an exception set
cdef int book_update(object book, int first, object first_levels, object second_levels, object rows_of,
                     type row_type, type spread_type, object exchange, object symbol, int64_t recv_ns,
                     Py_ssize_t depth, int checksum, object expected) except -2

# ``rfc3339_to_ms(text)`` for compiled callers: 0 and the ms in ``out``; -1 where it raises
# ``bad timestamp`` (no exception set); -2 with an exception set
cdef int rfc3339_ms(object text, int64_t* out) except -2

# ``L2Book.spread_into(rows, row_type, exchange, symbol, event_ms, atom_us)``, called from C
cdef int book_spread(object book, object rows, type row_type, object exchange, object symbol, int64_t event_ms,
                     int64_t atom_us) except -1

# ``L2Book.apply_sides(first, [(price, size) of each change], None, rows, ...)`` of changes written
# ``[side, price, size]``, all of side ``first`` (read by the caller), called from C without a pair
# made per change: the flags; -1 with an exception set (ValueError: a bad level, book unchanged)
cdef int book_sided(object book, int first, list changes, object rows, type row_type, object exchange,
                    object symbol, int64_t event_ms, int64_t atom_us) except -1

# ``apply_json_sided_levels(book, text, bid_word, ask_word, rows, ...)`` (changes ``[side, price,
# size]`` of either side as JSON text, the bids applied first), called from C: the flags; -2,
# nothing applied, where the text is not of the shape, a number is refused or the book is no
# L2Book; -3 with an exception set
cdef int book_json_sided(object book, object text, str bid_word, str ask_word, object rows, type row_type,
                         object exchange, object symbol, int64_t event_ms, int64_t atom_us) except -3
