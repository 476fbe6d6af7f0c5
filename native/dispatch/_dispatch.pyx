# cython: language_level=3
# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# cython: nonecheck=False, overflowcheck=False, infer_types=True, embedsignature=True
# cython: binding=False
"""The venue kit's route table, executed: ``Router`` runs one ``atomfast.kit.dispatch.Dispatch``
for one scheme, frame by frame (``Dispatch.bind`` hands the frame core ``Router(...).on_frame``).

The table is the specification (what each branch does is documented in
``atomfast/kit/dispatch.py``); this is its only executor. Every frame of every venue passes
here, so the branches are C: the lead byte, the decode and its two kinds of failure, the route
lookup, unwrap, the fallback, ``refused``, the bad-input accounting; and the two declarative
prefilters, ``ByteAfter`` (Binance's stream kind) and ``Lookup`` (Kraken v1's channelID in the
connection's state), read the raw bytes in C. A prefilter named as a method stays a Python call.
Stubs in ``atomfast/_dispatch.pyi``.

``binding=False``: ``on_frame`` is a METH_FASTCALL method of the type, so ``router.on_frame`` is a
builtin bound method (not a Python method object wrapping a cyfunction) and the frame core's
call of it is one vectorcall.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_CheckExact, PyBytes_FromStringAndSize
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.dict cimport PyDict_CheckExact, PyDict_GetItem, PyDict_Next, PyDict_Size
from cpython.set cimport PySet_Contains, PySet_GET_SIZE
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport memchr, memcmp, memcpy

from atomfast._book cimport AvroRows, book_json_sided, book_sided, book_spread, book_update, rfc3339_ms
from atomfast._fields cimport MAX_FIELDS, FieldSlots, Py_TYPE, field_slot, fields_init, fields_resolve
from atomfast._frame cimport Counters

import msgspec

from atomfast._book import L2Book as _L2Book


cdef extern from "Python.h":
    ctypedef struct PyThreadState:
        void* c_profilefunc
    PyThreadState* PyThreadState_Get()

#: a decoder's refusal of a frame of valid JSON (a subclass of DecodeError: tried first)
cdef object _VALIDATION = msgspec.ValidationError
#: what msgspec raises on input it cannot decode (``atomfast.scheme.DECODE_ERRORS``)
cdef tuple _MALFORMED = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)
#: ``atomfast.kit.dispatch._called``: a decode made through Python while a profiler is on
cdef object _called = None


cdef inline object _decode(object decode, object data):
    """``decode(data)``; under a profile hook (``sys.setprofile``: cProfile, the bench's count of
    decode calls by decoder) through a Python function, so that the hook sees the call of the
    decoder (a C call made from C is invisible to it). One pointer read per frame otherwise."""
    if PyThreadState_Get().c_profilefunc != NULL:
        return _called(decode, data)
    return decode(data)

# how a frame's route key is read
cdef enum:
    K_DECODED = 0   # decode first: the decoded message's type, or its ``field``
    K_METHOD = 1    # the scheme's prefilter method (conn, data) -> key
    K_BYTE_AFTER = 2
    K_LOOKUP = 3


# ---------------------------------------------------------------------------------------------
# Declared shapes (atomfast.kit.shapes), executed: a route's message read at its Struct's slot
# offsets, its symbol looked up, its event written by the topic's typed writer; Python is called
# only for a market not cached yet and for a refused message.

cdef class _Fields:
    """A shape's fields of a message: read at the message type's slot offsets (atomfast/_fields.pxd,
    found once per type), else by ``getattr``."""
    cdef tuple names
    cdef Py_ssize_t n
    cdef FieldSlots f
    cdef object tp_ref          # (keeps the type the offsets were found on alive)
    cdef list held              # getattr's values, alive until the next message

    def __cinit__(self, tuple names):
        if len(names) > MAX_FIELDS:
            raise ValueError(f"shape: {len(names)} fields, at most {MAX_FIELDS}")
        fields_init(&self.f, names)
        self.names = names
        self.n = len(names)

    cdef inline int load(self, msg, PyObject** out) except -1:
        """``out[i]``: field i of ``msg`` (borrowed: valid while ``msg`` and the next ``load``)."""
        cdef PyObject* v
        cdef Py_ssize_t i
        if Py_TYPE(msg) != self.f.tp:
            self.tp_ref = type(msg)
            fields_resolve(&self.f, self.names, msg)
        if self.f.slots:
            for i in range(self.n):
                v = field_slot(&self.f, msg, i)
                if v == NULL:  # (an unset slot: getattr says what it is)
                    return self._getattrs(msg, out)
                out[i] = v
            return 0
        return self._getattrs(msg, out)

    cdef int _getattrs(self, msg, PyObject** out) except -1:
        cdef Py_ssize_t i
        self.held = [getattr(msg, name) for name in self.names]
        for i in range(self.n):
            out[i] = <PyObject*>self.held[i]
        return 0


cdef class _ShapeExec:
    """A declared shape bound to one scheme: ``on(conn, msg, data, recv_ns, kept)`` per message."""
    cdef object scheme
    cdef object keep            # where the Router keeps the route's channel for a handler (None: none)
    cdef _Fields fields
    cdef object rows_of         # the scheme's ``rows(topic)``
    cdef str topic
    cdef object exchange
    cdef dict symbols           # the scheme's native -> symbol cache
    cdef object known
    cdef object symbol_of
    cdef object bad_input
    cdef str malformed
    cdef Py_ssize_t t0, nt      # the time fields: fields[t0:t0 + nt]
    cdef bint or_receipt
    cdef object otherwise       # a book shape's venue method for what is not the common case

    def __init__(self, decl, scheme):
        self.scheme = scheme
        name = getattr(decl, "otherwise", None)
        self.otherwise = getattr(scheme, name) if name else None
        self.fields = _Fields(tuple(decl.fields()))
        self.rows_of = scheme.rows
        self.topic = decl.topic
        self.exchange = scheme.exchange
        self.symbols = scheme._symbols
        self.known = scheme.known
        self.symbol_of = scheme.symbol_of
        self.bad_input = scheme.bad_input
        self.malformed = decl.malformed
        self.nt = len(decl.time)
        self.t0 = self.fields.n - self.nt
        self.or_receipt = decl.or_receipt

    cdef int on(self, conn, msg, data, long long recv_ns, kept) except -1:
        """One message of the route (``kept``: the route's channel, the ``Lookup`` hit, or None)."""
        return 0

    def __call__(self, conn, msg, data, recv_ns):
        """As a handler method is called (a venue's slow path, ``Scheme.route``): no channel."""
        self.on(conn, msg, data, recv_ns, None)

    cdef inline object _symbol(self, native, data):
        """The symbol of the message's native name; None (counted by ``known``) for no market."""
        cdef PyObject* hit
        if type(native) is str:
            hit = PyDict_GetItem(self.symbols, native)
            if hit != NULL and <object>hit:
                return <object>hit
        if self.known(native, data):
            return self.symbol_of(native)
        return None

    cdef inline object _market(self, msg, data, PyObject** v):
        """The message's fields into ``v``, and its symbol (None: no market, counted)."""
        self.fields.load(msg, v)
        return self._symbol(<object>v[0], data)

    cdef inline object _time(self, PyObject** v):
        """The first time field that is not 0; none: 0."""
        cdef Py_ssize_t i
        for i in range(self.t0, self.t0 + self.nt):
            if <object>v[i]:
                return <object>v[i]
        return 0

    cdef inline object _when(self, ms, int64_t atom_us):
        """The time the writer is given: ``ms``, or the receipt's where declared and none was sent."""
        return (atom_us // 1000) if self.or_receipt and not ms else ms

    cdef int _otherwise(self, conn, msg, data, long long recv_ns, kept) except -1:
        """The venue's method, handed the message as a handler is (the route's channel kept on
        the scheme first, as the Router keeps it for a handler)."""
        if self.keep is not None and kept is not None:
            setattr(self.scheme, self.keep, kept)
        self.otherwise(conn, msg, data, recv_ns)
        return 0


cdef class _QuoteExec(_ShapeExec):
    """``atomfast.kit.shapes.Quote``: fields symbol, bid, bid_size, ask, ask_size, time..."""

    cdef int on(self, conn, msg, data, long long recv_ns, kept) except -1:
        cdef PyObject* v[MAX_FIELDS]
        cdef int64_t atom_us = recv_ns // 1000
        cdef bint ok
        symbol = self._market(msg, data, v)
        if symbol is None:
            return 0
        ms = self._time(v)
        when = self._when(ms, atom_us)
        rows = self.rows_of(self.topic)
        if type(rows) is AvroRows:
            ok = (<AvroRows>rows).quote(self.exchange, symbol, <object>v[1], <object>v[2], <object>v[3],
                                        <object>v[4], when, atom_us)
        else:
            ok = rows.quote(self.exchange, symbol, <object>v[1], <object>v[2], <object>v[3], <object>v[4], when,
                            atom_us)
        if not ok:
            self.bad_input(self.malformed, f"{<object>v[1]!r} {<object>v[2]!r} {<object>v[3]!r} {<object>v[4]!r} "
                                           f"T={ms}", data)
        return 0


cdef class _TradeExec(_ShapeExec):
    """``atomfast.kit.shapes.Trade``: fields symbol, price, size, id, side (or buyer_maker), time..."""
    cdef bint by_maker
    cdef object buy

    def __init__(self, decl, scheme):
        super().__init__(decl, scheme)
        self.by_maker = decl.buyer_maker is not None
        self.buy = decl.buy

    cdef int on(self, conn, msg, data, long long recv_ns, kept) except -1:
        cdef PyObject* v[MAX_FIELDS]
        cdef int64_t atom_us = recv_ns // 1000
        cdef bint ok, buy
        symbol = self._market(msg, data, v)
        if symbol is None:
            return 0
        ms = self._time(v)
        when = self._when(ms, atom_us)
        # the taker bought: the buyer was not the maker, or the side says so
        buy = not <object>v[4] if self.by_maker else <object>v[4] == self.buy
        rows = self.rows_of(self.topic)
        if type(rows) is AvroRows:
            ok = (<AvroRows>rows).trade(self.exchange, symbol, <object>v[1], <object>v[2], buy, <object>v[3], when,
                                        atom_us)
        else:
            ok = rows.trade(self.exchange, symbol, <object>v[1], <object>v[2], buy, <object>v[3], when, atom_us)
        if not ok:
            self.bad_input(self.malformed, f"{<object>v[1]!r} {<object>v[2]!r} T={ms}", data)
        return 0


cdef class _BookUpdateExec(_ShapeExec):
    """``atomfast.kit.shapes.BookUpdate``: the payload's fields first levels, second levels,
    checksum; the message's market (and payload, ``at``); the channel's market, symbol, depth."""
    cdef _Fields outer          # (market,) or (market, at)
    cdef bint has_at
    cdef _Fields chan           # (market, symbol, depth) of the route's channel; None: none declared
    cdef Py_ssize_t depth       # without a channel: the depth books are cut to (0: not cut)
    cdef int first, kind
    cdef dict books
    cdef set unsynced
    cdef object metrics
    cdef Counters counters      # metrics, where it is one (else None)
    cdef object row_type, spread_type
    cdef object checksum_failed
    cdef str got_method         # the book's method computing the checksum of ``kind``
    cdef tuple got_args

    def __init__(self, decl, scheme):
        from atomfast.book import ASK, BID, CHECKSUM_BITFINEX, CHECKSUM_KRAKEN_SCALED, CHECKSUM_OKX
        from atomfast.events import Lob, Spread

        super().__init__(decl, scheme)
        self.has_at = decl.at is not None
        self.outer = _Fields((decl.symbol, decl.at) if self.has_at else (decl.symbol,))
        if decl.channel is not None:
            self.chan = _Fields((decl.channel.market, decl.channel.symbol, decl.channel.depth))
        self.depth = decl.depth
        self.first = ASK if decl.first == "asks" else BID
        self.kind = decl.kind
        self.books = scheme.books
        self.unsynced = scheme.unsynced
        self.metrics = scheme.metrics
        if isinstance(self.metrics, Counters):
            self.counters = <Counters>self.metrics
        self.row_type, self.spread_type = Lob, Spread
        self.checksum_failed = scheme.checksum_failed
        self.got_method, self.got_args = (
            ("checksum_okx", ()) if self.kind == CHECKSUM_OKX else
            ("checksum_bitfinex", ()) if self.kind == CHECKSUM_BITFINEX else
            ("checksum_kraken", (self.kind == CHECKSUM_KRAKEN_SCALED,)))

    cdef int on(self, conn, msg, data, long long recv_ns, kept) except -1:
        cdef PyObject* o[2]
        cdef PyObject* c[3]
        cdef PyObject* v[3]
        cdef PyObject* hit
        cdef Py_ssize_t depth
        self.outer.load(msg, o)
        market = <object>o[0]
        payload = <object>o[1] if self.has_at else msg
        if self.chan is not None:
            if kept is None:
                return self._otherwise(conn, msg, data, recv_ns, kept)
            self.chan.load(kept, c)
            if c[0] != o[0] and not (type(market) is str and <object>c[0] == market):
                return self._otherwise(conn, msg, data, recv_ns, kept)  # another market than its channel's
            market = <object>c[0]  # (the same text, whose hash is known: the lookups below)
            symbol = <object>c[1]
            depth = <object>c[2]
        else:
            hit = PyDict_GetItem(self.symbols, market) if type(market) is str else NULL
            if hit == NULL or not <object>hit:
                return self._otherwise(conn, msg, data, recv_ns, kept)  # not cached yet: the venue asks
            symbol = <object>hit
            depth = self.depth
        if PySet_GET_SIZE(self.unsynced) and PySet_Contains(self.unsynced, market):
            return 0  # reloading: nothing of this market until its snapshot
        hit = PyDict_GetItem(self.books, market)
        if hit == NULL:
            return self._otherwise(conn, msg, data, recv_ns, kept)
        book = <object>hit
        self.fields.load(payload, v)
        if type(book) is _L2Book:
            status = book_update(book, self.first, <object>v[0], <object>v[1], self.rows_of, self.row_type,
                                 self.spread_type, self.exchange, symbol, recv_ns, depth, self.kind, <object>v[2])
        else:  # (a stand-in for the book: the benchmark's recording proxy)
            status = book.apply_update(self.first, <object>v[0], <object>v[1], self.rows_of, self.row_type,
                                       self.spread_type, self.exchange, symbol, recv_ns, depth, self.kind,
                                       <object>v[2])
        if status == 0:  # UPDATE_OK
            if self.counters is not None:
                self.counters.checksum_ok += 1
            else:
                self.metrics.checksum_ok += 1
        elif status == 1:  # UPDATE_MISMATCH: applied, the book resyncs
            self.checksum_failed(conn, market, <object>v[2], getattr(book, self.got_method)(*self.got_args), recv_ns)
        else:  # UPDATE_NOT_APPLIED: nothing applied, the venue says what is amiss
            return self._otherwise(conn, msg, data, recv_ns, kept)
        return 0


cdef class _MarketBookExec(_ShapeExec):
    """A book shape whose message names its market: the market's cached symbol and live book."""
    cdef dict books
    cdef set unsynced

    def __init__(self, decl, scheme):
        super().__init__(decl, scheme)
        self.books = scheme.books
        self.unsynced = scheme.unsynced

    cdef inline int _market_book(self, market, PyObject** symbol, PyObject** book) except -2:
        """1: ``symbol`` and ``book`` (borrowed) of ``market``; 0: it is reloading (the message is
        dropped, as the venues do until the snapshot); -1: the venue's method says what is
        amiss (no market name, a symbol not cached yet, no book)."""
        if type(market) is not str:
            return -1
        if PySet_GET_SIZE(self.unsynced) and PySet_Contains(self.unsynced, market):
            return 0
        symbol[0] = PyDict_GetItem(self.symbols, market)
        if symbol[0] == NULL or not <object>symbol[0]:
            return -1
        book[0] = PyDict_GetItem(self.books, market)
        return 1 if book[0] != NULL else -1


cdef class _LevelDeltaExec(_MarketBookExec):
    """``atomfast.kit.shapes.LevelDelta``: fields market, side, price, size, seq, (prev), time..."""
    cdef dict ids               # the chain's market -> the book's number
    cdef object missing         # the chain's number of a market without one
    cdef bint linked
    cdef dict sides
    cdef object row_type
    cdef object emit_spread
    cdef long top_changed
    cdef str chain_name

    def __init__(self, decl, scheme):
        from atomfast.book import TOP_CHANGED
        from atomfast.events import Lob

        super().__init__(decl, scheme)
        self.chain_name, self.linked = decl.chain, decl.prev is not None
        self.sides = dict(decl.sides)
        self.row_type = Lob
        self.emit_spread = scheme.emit_spread
        self.top_changed = TOP_CHANGED

    cdef int on(self, conn, msg, data, long long recv_ns, kept) except -1:
        cdef PyObject* v[MAX_FIELDS]
        cdef PyObject* hit
        cdef PyObject* sym
        cdef PyObject* bk
        cdef int found
        cdef long long ms
        cdef long flags
        self.fields.load(msg, v)
        market = <object>v[0]
        found = self._market_book(market, &sym, &bk)
        if found <= 0:
            return 0 if found == 0 else self._otherwise(conn, msg, data, recv_ns, kept)
        symbol, book = <object>sym, <object>bk
        seq = <object>v[4]
        if self.ids is None:
            self._bind_chain()
        hit = PyDict_GetItem(self.ids, market)
        have = <object>hit if hit != NULL else self.missing
        if self.linked:
            if not (<object>v[5] == have):
                return self._otherwise(conn, msg, data, recv_ns, kept)  # a gap: the venue reports it
        elif type(seq) is not int or type(have) is not int or seq != have + 1:
            return self._otherwise(conn, msg, data, recv_ns, kept)
        hit = PyDict_GetItem(self.sides, <object>v[1]) if type(<object>v[1]) is str else NULL
        when = self._time(v)
        if hit == NULL or type(when) is not int or not (0 <= when < 100_000_000_000_000):
            return self._otherwise(conn, msg, data, recv_ns, kept)
        ms = when
        try:
            flags = book.apply_sides(<object>hit, ((<object>v[2], <object>v[3]),), None, self.rows_of("lob"),
                                     self.row_type, self.exchange, symbol, ms, recv_ns // 1000)
        except (ValueError, OverflowError, TypeError):  # (the scheme's BOOK_ERRORS) nothing applied
            return self._otherwise(conn, msg, data, recv_ns, kept)
        self.ids[market] = seq
        if flags & self.top_changed:
            self.emit_spread(market, book, ms, recv_ns // 1000)
        return 0

    cdef int _bind_chain(self) except -1:
        """The scheme's chain (made in its ``__init__``, after the routes are bound): at the
        first message."""
        chain = _declared_chain(self.scheme, self.chain_name, self.linked, "LevelDelta")
        self.ids, self.missing = chain.ids, chain.missing
        return 0


cdef object _declared_chain(object scheme, str chain_name, bint linked, str shape):
    """The scheme's ``atomfast.kit.chain.Chain`` named ``chain_name``, refused (ValueError) where its
    linking is not the one the shape declares (``prev`` given: linked ids)."""
    chain = getattr(scheme, chain_name)
    if chain.linked != linked:
        raise ValueError(f"{shape}: the scheme's {chain_name} is {'' if chain.linked else 'not '}"
                         f"linked: declare {'prev' if chain.linked else 'no prev'}")
    return chain


cdef class _SignedLevelExec(_ShapeExec):
    """``atomfast.kit.shapes.SignedLevel``: fields price, count, amount of the message's ``at``;
    the kept channel's book, symbol, key, dead, stream; the stream's ``seq``."""
    cdef _Fields outer          # (at, seq) of the message
    cdef _Fields chan           # (book, symbol, key, dead, stream) of the kept channel
    cdef _Fields last           # (seq,) of the stream
    cdef str seq_name
    cdef set unsynced
    cdef object row_type, spread_type
    cdef long top_changed
    cdef object bid, ask
    cdef bytes zero

    def __init__(self, decl, scheme):
        from atomfast.book import ASK, BID, TOP_CHANGED
        from atomfast.events import Lob, Spread

        super().__init__(decl, scheme)
        self.outer = _Fields((decl.at, decl.seq))
        self.chan = _Fields((decl.book, decl.symbol, decl.key, decl.dead, decl.stream))
        self.last = _Fields(("seq",))
        self.seq_name = "seq"
        self.unsynced = scheme.unsynced
        self.row_type, self.spread_type = Lob, Spread
        self.top_changed = TOP_CHANGED
        self.bid, self.ask = BID, ASK
        self.zero = b"0"

    cdef int on(self, conn, msg, data, long long recv_ns, kept) except -1:
        cdef PyObject* o[2]
        cdef PyObject* c[5]
        cdef PyObject* v[3]
        cdef PyObject* l[1]
        cdef Py_buffer view
        cdef const unsigned char* p
        cdef Py_ssize_t n, i
        cdef bint ask
        cdef long flags
        cdef long long atom_us, ms
        if kept is None:
            return self._otherwise(conn, msg, data, recv_ns, kept)
        self.outer.load(msg, o)
        seq = <object>o[1]
        self.chan.load(kept, c)
        stream = <object>c[4]
        self.last.load(stream, l)
        have = <object>l[0]
        if type(seq) is not int or type(have) is not int or seq != have + 1:
            return self._otherwise(conn, msg, data, recv_ns, kept)  # a gap, or no number: the venue's
        book = <object>c[0]
        if <object>c[3] is not False or book is None:
            return self._otherwise(conn, msg, data, recv_ns, kept)  # ignored, or no snapshot yet
        if PySet_GET_SIZE(self.unsynced) and PySet_Contains(self.unsynced, <object>c[2]):
            return self._otherwise(conn, msg, data, recv_ns, kept)  # reloading
        self.fields.load(<object>o[0], v)
        count = <object>v[1]
        if type(count) is not int or count < 0:
            return self._otherwise(conn, msg, data, recv_ns, kept)
        amount = <object>v[2]
        PyObject_GetBuffer(amount, &view, PyBUF_SIMPLE)
        try:
            p = <const unsigned char*>view.buf
            n = view.len
            ask = n > 0 and p[0] == 45  # "-"
            i = 1 if ask else 0
            size = PyBytes_FromStringAndSize(<const char*>p + i, n - i)
            if i < n and p[i] == 48:  # "0": a zero (no other digit before the exponent) is malformed
                while i < n and (p[i] == 48 or p[i] == 46):
                    i += 1
                if i == n or p[i] == 101 or p[i] == 69:
                    return self._otherwise(conn, msg, data, recv_ns, kept)
        finally:
            PyBuffer_Release(&view)
        if count == 0:
            size = self.zero  # COUNT 0: the level goes
        atom_us = recv_ns // 1000
        ms = atom_us // 1000
        symbol = <object>c[1]
        try:
            flags = book.apply_sides(self.ask if ask else self.bid, ((<object>v[0], size),), None, self.rows_of("lob"),
                                     self.row_type, self.exchange, symbol, ms, atom_us)
        except (ValueError, OverflowError, TypeError):  # (the scheme's BOOK_ERRORS) nothing applied
            return self._otherwise(conn, msg, data, recv_ns, kept)
        setattr(stream, self.seq_name, seq)
        if flags & self.top_changed:
            book.spread_into(self.rows_of("spread"), self.spread_type, self.exchange, symbol, ms, atom_us)
        return 0


cdef class _SidedLevelsExec(_MarketBookExec):
    """``atomfast.kit.shapes.SidedLevels``: fields market, levels, (snapshot), (time)."""
    cdef Py_ssize_t snap_at     # the snapshot field's index (-1: none declared)
    cdef Py_ssize_t time_at     # the time field's index (-1: none declared: the time of receipt)
    cdef bint mixed             # levels of both sides applied here (bids first), text levels read here
    cdef str bid_word, ask_word
    cdef int bid, ask
    cdef object apply           # atomfast._book.apply_sided_levels (decoded levels of both sides)
    cdef object row_type, spread_type
    cdef object crossed
    cdef long top_changed, crossed_flag

    def __init__(self, decl, scheme):
        from atomfast._book import apply_sided_levels
        from atomfast.book import ASK, BID, CROSSED, TOP_CHANGED
        from atomfast.events import Lob, Spread

        super().__init__(decl, scheme)
        self.snap_at = 2 if decl.snapshot else -1
        self.time_at = self.fields.n - 1 if decl.time else -1
        self.mixed = decl.mixed
        for word, side in decl.sides.items():
            if side == BID:
                self.bid_word = word
            else:
                self.ask_word = word
        self.bid, self.ask = BID, ASK
        self.apply = apply_sided_levels
        self.row_type, self.spread_type = Lob, Spread
        self.crossed = getattr(scheme, decl.crossed)
        self.top_changed, self.crossed_flag = TOP_CHANGED, CROSSED

    cdef int on(self, conn, msg, data, long long recv_ns, kept) except -1:
        cdef PyObject* v[MAX_FIELDS]
        cdef PyObject* sym
        cdef PyObject* bk
        cdef int found
        cdef Py_ssize_t i, n
        cdef int first = -1, side
        cdef bint both = False
        cdef int64_t atom_us = recv_ns // 1000
        cdef int64_t ms = atom_us // 1000
        cdef long flags
        cdef list changes
        cdef bint bad
        self.fields.load(msg, v)
        if self.snap_at >= 0 and <object>v[self.snap_at] is not None:
            return self._otherwise(conn, msg, data, recv_ns, kept)  # the whole book: the venue's
        market = <object>v[0]
        found = self._market_book(market, &sym, &bk)
        if found <= 0:  # (a reloading book too: the venue drops its updates, Gemini counting malformed ones)
            return self._otherwise(conn, msg, data, recv_ns, kept)
        symbol, book = <object>sym, <object>bk
        if self.time_at >= 0:
            t = <object>v[self.time_at]
            if type(t) is not str:
                return self._otherwise(conn, msg, data, recv_ns, kept)
            if t:
                try:
                    bad = rfc3339_ms(t, &ms) != 0
                except ValueError:  # (text that is no UTF-8: the venue says what it is)
                    bad = True
                if bad:
                    return self._otherwise(conn, msg, data, recv_ns, kept)
        levels = <object>v[1]
        is_book = type(book) is _L2Book
        try:
            if type(levels) is list:
                changes = <list>levels
                n = len(changes)
                for i in range(n):  # the sides read (every level three items) before any is parsed
                    item = changes[i]
                    if not ((type(item) is tuple or type(item) is list) and len(item) == 3):
                        return self._otherwise(conn, msg, data, recv_ns, kept)
                    word = item[0]
                    if type(word) is not str:
                        return self._otherwise(conn, msg, data, recv_ns, kept)
                    if word is self.bid_word or word == self.bid_word:
                        side = self.bid
                    elif word is self.ask_word or word == self.ask_word:
                        side = self.ask
                    else:
                        return self._otherwise(conn, msg, data, recv_ns, kept)  # a side neither word
                    if i == 0:
                        first = side
                    elif side != first:
                        both = True
                if both:
                    if not self.mixed:
                        return self._otherwise(conn, msg, data, recv_ns, kept)  # both sides: the venue, in order
                    flags = self.apply(book, changes, self.bid_word, self.ask_word, self.rows_of("lob"),
                                       self.row_type, self.exchange, symbol, ms, atom_us)
                elif n == 0:
                    flags = 0
                elif is_book:  # the changes read as they are (no (price, size) pair made)
                    flags = book_sided(book, first, changes, self.rows_of("lob"), self.row_type, self.exchange,
                                       symbol, ms, atom_us)
                else:  # (a stand-in for the book: the benchmark's recording proxy)
                    flags = book.apply_sides(first, [(c[1], c[2]) for c in changes], None, self.rows_of("lob"),
                                             self.row_type, self.exchange, symbol, ms, atom_us)
            elif self.mixed and levels is not None:  # the JSON text (a msgspec.Raw): apply_json_sided_levels
                flags = book_json_sided(book, levels, self.bid_word, self.ask_word, self.rows_of("lob"),
                                        self.row_type, self.exchange, symbol, ms, atom_us)
            else:
                flags = -1
        except (ValueError, OverflowError, TypeError):  # (the scheme's BOOK_ERRORS) nothing applied
            return self._otherwise(conn, msg, data, recv_ns, kept)
        if flags < 0:  # a side neither word, a text not of the shape: nothing applied
            return self._otherwise(conn, msg, data, recv_ns, kept)
        if flags & self.crossed_flag and self.crossed(conn, market, book, recv_ns):
            return 0
        if flags & self.top_changed:
            if is_book:
                book_spread(book, self.rows_of("spread"), self.spread_type, self.exchange, symbol, ms, atom_us)
            else:
                book.spread_into(self.rows_of("spread"), self.spread_type, self.exchange, symbol, ms, atom_us)
        return 0


cdef object _compiled(handler, scheme):
    """A route's handler as the Router calls it: a declared shape's executor, else the method."""
    from atomfast.kit.shapes import BookUpdate, LevelDelta, Quote, SidedLevels, SignedLevel, Trade

    if isinstance(handler, Quote):
        return _QuoteExec(handler, scheme)
    if isinstance(handler, Trade):
        return _TradeExec(handler, scheme)
    if isinstance(handler, BookUpdate):
        return _BookUpdateExec(handler, scheme)
    if isinstance(handler, LevelDelta):
        return _LevelDeltaExec(handler, scheme)
    if isinstance(handler, SignedLevel):
        return _SignedLevelExec(handler, scheme)
    if isinstance(handler, SidedLevels):
        return _SidedLevelsExec(handler, scheme)
    from atomfast.kit.shapes import ChainedSides
    if isinstance(handler, ChainedSides):
        return _ChainedSidesExec(handler, scheme)
    from atomfast.kit.shapes import KeyedTextLevels
    if isinstance(handler, KeyedTextLevels):
        return _KeyedTextLevelsExec(handler, scheme)
    return handler


cdef class _Route:
    """One route: the scheme's bound handler (None: known and ignored), or its declared shape's
    executor (``shape``), and the decoder's bound ``decode`` (None: the handler is handed
    ``msg=None`` and decodes for itself)."""
    cdef object handler
    cdef object decode
    cdef _ShapeExec shape

    def __cinit__(self, handler, decode):
        self.handler = handler
        self.decode = decode
        if isinstance(handler, _ShapeExec):
            self.shape = <_ShapeExec>handler

    cdef inline int call(self, conn, msg, data, recv_ns, kept) except -1:
        if self.shape is not None:
            return self.shape.on(conn, msg, data, recv_ns, kept)
        self.handler(conn, msg, data, recv_ns)
        return 0


# ---------------------------------------------------------------------------------------------
# Lookup's cache: a frame's prefix -> the state's entry, without a bytes object, a hash and a dict
# lookup per frame. An entry holds until the state dict changes (its version tag, PEP 509: any
# insertion, replacement or removal gives it a new one).

cdef extern from "Python.h":
    ctypedef struct _VersionedDict "PyDictObject":
        uint64_t ma_version_tag

cdef enum:
    LC_SIZE = 64                # entries (direct mapped by the prefix's bytes)
    LC_KEY = 24                 # the longest prefix kept (Kraken's b"[3648,": 6)

cdef struct _LookupEntry:
    PyObject* state             # the state dict the entry was found in (a reference held)
    uint64_t version            # its version tag then
    Py_ssize_t n
    unsigned char key[LC_KEY]
    PyObject* found             # the state's entry (a reference held)
    PyObject* attr              # its ``attr`` then (a reference held) ...
    PyObject* route             # ... and that key's route (a reference held; Py_None: none)


cdef inline uint32_t _prefix_slot(const unsigned char* p, Py_ssize_t n) noexcept:
    cdef uint32_t h = 2166136261u    # FNV-1a
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ p[i]) * 16777619u
    return (h ^ (h >> 16)) & (LC_SIZE - 1)


cdef inline void _set_ref(PyObject** slot, object value) noexcept:
    Py_INCREF(value)
    Py_XDECREF(slot[0])
    slot[0] = <PyObject*>value


cdef class Router:
    """A ``Dispatch`` bound to one scheme's handlers: ``on_frame(conn, data, recv_ns)``."""

    cdef readonly object scheme
    cdef readonly object dispatch
    cdef int how
    cdef object bad_input
    cdef object fallback
    cdef object refused
    cdef str unrouted
    cdef object unwrap
    cdef _Fields unwrapped      # (unwrap,): read at its slot offset
    # K_DECODED
    cdef object decode
    cdef object field
    cdef int lead          # -1: none
    cdef str not_lead
    # the routes: key -> _Route
    cdef dict routes
    # K_METHOD
    cdef object prefilter
    # K_BYTE_AFTER: the frame starts with ``prefix``; the key is the byte after the first
    # ``marker`` within [len(prefix), end); per key byte, the bytes the frame must continue with
    cdef bytes prefix
    cdef int marker
    cdef Py_ssize_t end
    cdef list by_byte       # 256: the byte's _Route, or None
    cdef list only          # 256: a tuple of bytes the frame continues with, or None
    # K_LOOKUP: the frame's bytes up to ``delimiter`` (included) in ``conn.state``
    cdef int delimiter
    cdef object attr
    cdef _Fields attr_field     # (attr,): read at its slot offset
    cdef object keep
    cdef object kept            # the current frame's hit (None: none), handed to a declared shape
    cdef object lc_conn, lc_state   # the last frame's connection and its ``state`` (made with it, never replaced)
    cdef _LookupEntry lc[LC_SIZE]

    def __dealloc__(self):
        cdef int i
        for i in range(LC_SIZE):
            Py_XDECREF(self.lc[i].state)
            Py_XDECREF(self.lc[i].found)
            Py_XDECREF(self.lc[i].attr)
            Py_XDECREF(self.lc[i].route)

    def __init__(self, dispatch, scheme):
        global _called
        from atomfast.kit.dispatch import ByteAfter, Lookup, _called

        self.dispatch = dispatch
        self.scheme = scheme
        self.bad_input = scheme.bad_input
        self.fallback = getattr(scheme, dispatch.fallback) if dispatch.fallback else None
        self.refused = getattr(scheme, dispatch.refused) if dispatch.refused else None
        self.unrouted = dispatch.unrouted
        self.unwrap = dispatch.unwrap
        if self.unwrap is not None:
            self.unwrapped = _Fields((self.unwrap,))
        self.lead = -1
        table = {key: _compiled(h, scheme) for key, h in dispatch.handlers(scheme).items()}
        pre = dispatch.prefilter
        default = dispatch.decoder.decode if dispatch.decoder is not None else None
        if pre is None:
            self.how = K_DECODED
            self.decode = default
            self.field = dispatch.field
            if dispatch.lead is not None:
                self.lead = dispatch.lead[0]
                self.not_lead = f"frame does not start with {dispatch.lead.decode()}"
            self.routes = {key: _Route(handler, None) for key, handler in table.items()}
            return
        decoders = {key: dec.decode for key, dec in dispatch.decoders.items()}
        self.routes = {key: _Route(handler, decoders.get(key, default) if handler is not None else None)
                       for key, handler in table.items()}
        if isinstance(pre, str):
            self.how = K_METHOD
            self.prefilter = getattr(scheme, pre)
        elif isinstance(pre, ByteAfter):
            self.how = K_BYTE_AFTER
            self.prefix = pre.prefix
            self.marker = pre.marker[0]
            self.end = pre.end
            self.by_byte = [self.routes.get(b) for b in range(256)]
            self.only = [None] * 256
            for key, tails in pre.only.items():
                self.only[key] = tuple(tails)
        elif isinstance(pre, Lookup):
            self.how = K_LOOKUP
            self.delimiter = pre.delimiter[0]
            self.attr = pre.attr
            self.attr_field = _Fields((pre.attr,))
            self.keep = pre.keep
            for entry in self.routes.values():
                if (<_Route>entry).shape is not None:
                    (<_Route>entry).shape.keep = self.keep
        else:
            raise TypeError(f"Dispatch: prefilter {pre!r} is neither a method name, ByteAfter nor Lookup")

    def handler(self, key):
        """The route of ``key``'s handler as it runs (a declared shape's executor, or the method;
        None: ignored); KeyError: no route."""
        return (<_Route>self.routes[key]).handler

    def on_frame(self, conn, data, recv_ns):
        """One frame (bytes; a memoryview for a scheme with ``accepts_memoryview``) to its route."""
        cdef Py_buffer view
        cdef object entry
        if self.how == K_DECODED:
            if self.lead >= 0 and not self._leads(data):
                self._other(conn, data, recv_ns, "not a JSON object", self.not_lead)
                return
            self._decoded(conn, data, recv_ns)
            return
        if self.how == K_METHOD:
            entry = self.routes.get(self.prefilter(conn, data))
        elif PyBytes_CheckExact(data):
            entry = self._raw(conn, <const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        else:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            try:
                entry = self._raw(conn, <const unsigned char*>view.buf, view.len)
            finally:
                PyBuffer_Release(&view)
        if entry is None:
            self._keep()
            self._other(conn, data, recv_ns, self.unrouted, "no route for the frame")
            return
        self._routed(<_Route>entry, conn, data, recv_ns)

    cdef inline bint _leads(self, data):
        """Whether the frame starts with the ``lead`` byte."""
        if PyBytes_CheckExact(data):
            return PyBytes_GET_SIZE(data) > 0 and <unsigned char>PyBytes_AS_STRING(data)[0] == self.lead
        return data[:1] == bytes((self.lead,))

    cdef inline object _raw(self, conn, const unsigned char* p, Py_ssize_t n):
        """The route a declarative prefilter reads on the frame's bytes, or None."""
        if self.how == K_BYTE_AFTER:
            return self._byte_after(p, n)
        return self._lookup(conn, p, n)

    cdef inline object _byte_after(self, const unsigned char* p, Py_ssize_t n):
        """The route of the byte after the marker, or None (``ByteAfter``)."""
        cdef Py_ssize_t start = PyBytes_GET_SIZE(self.prefix)
        cdef Py_ssize_t stop = self.end if self.end < n else n
        cdef const unsigned char* at
        cdef Py_ssize_t i, k
        cdef bytes tail
        if n < start or memcmp(p, PyBytes_AS_STRING(self.prefix), start) != 0 or stop <= start:
            return None
        at = <const unsigned char*>memchr(p + start, self.marker, stop - start)
        if at == NULL:
            return None
        i = at - p + 1
        if i >= n:
            return None
        k = p[i]
        tails = self.only[k]
        if tails is not None:
            for tail in <tuple>tails:
                if n - i >= PyBytes_GET_SIZE(tail) and memcmp(p + i, PyBytes_AS_STRING(tail), PyBytes_GET_SIZE(tail)) == 0:
                    break
            else:
                return None
        return self.by_byte[k]

    cdef inline object _lookup(self, conn, const unsigned char* p, Py_ssize_t n):
        """The route of the frame's prefix in ``conn.state`` (its ``attr``; the hit kept on the
        scheme as ``keep``), else of its first byte (``Lookup``)."""
        cdef const unsigned char* at = <const unsigned char*>memchr(p, self.delimiter, n)
        cdef Py_ssize_t upto = (at - p + 1) if at != NULL else 0
        cdef PyObject* hit
        cdef PyObject* kind[1]
        cdef _LookupEntry* e = NULL
        self.kept = None
        if conn is self.lc_conn:
            state = self.lc_state
        else:
            state = conn.state
            self.lc_conn, self.lc_state = conn, state
        if PyDict_CheckExact(state) and upto <= LC_KEY:
            e = &self.lc[_prefix_slot(p, upto)]
            if (e.state == <PyObject*>state and e.version == (<_VersionedDict*><PyObject*>state).ma_version_tag
                    and e.n == upto and memcmp(e.key, p, upto) == 0):
                found = <object>e.found
                self.kept = found
                self.attr_field.load(found, kind)
                if kind[0] == e.attr:
                    return <object>e.route
                return self.routes.get(<object>kind[0])
        prefix = PyBytes_FromStringAndSize(<const char*>p, upto)
        if PyDict_CheckExact(state):
            hit = PyDict_GetItem(state, prefix)
            found = <object>hit if hit != NULL else None
            if hit == NULL:
                return self.routes.get(PyBytes_FromStringAndSize(<const char*>p, 1 if n else 0))
        else:
            try:
                found = state[prefix]
            except KeyError:
                return self.routes.get(PyBytes_FromStringAndSize(<const char*>p, 1 if n else 0))
        self.kept = found
        self.attr_field.load(found, kind)
        route = self.routes.get(<object>kind[0])
        if e != NULL:  # kept for the next frames with this prefix
            _set_ref(&e.state, state)
            e.version = (<_VersionedDict*><PyObject*>state).ma_version_tag
            e.n = upto
            memcpy(e.key, p, upto)
            _set_ref(&e.found, found)
            _set_ref(&e.attr, <object>kind[0])
            _set_ref(&e.route, route)
        return route

    cdef inline int _keep(self) except -1:
        """The ``Lookup`` hit kept on the scheme as ``keep``, for a handler or the fallback (a
        declared shape is handed it instead: no attribute set on its frames)."""
        if self.kept is not None and self.keep is not None:
            setattr(self.scheme, self.keep, self.kept)
        return 0

    cdef inline _decoded(self, conn, data, recv_ns):
        """Decode first, route by the message's type or ``field``."""
        try:
            msg = _decode(self.decode, data)
        except _VALIDATION as exc:
            self._declined(conn, data, recv_ns, "unknown message", exc)
            return
        except _MALFORMED as exc:
            self.bad_input("malformed JSON", str(exc), data)
            return
        key = type(msg) if self.field is None else getattr(msg, self.field)
        entry = self.routes.get(key)
        if entry is None:
            if self.fallback is not None:
                self.fallback(conn, data, recv_ns)
            else:
                self.bad_input(self.unrouted, repr(getattr(key, "__name__", key))[:100], data)
            return
        if (<_Route>entry).handler is not None:
            (<_Route>entry).call(conn, msg, data, recv_ns, None)

    cdef inline _routed(self, _Route entry, conn, data, recv_ns):
        """A prefiltered frame's route: its decoder (the refusals to ``_declined``), then its
        handler, handed the message (or its ``unwrap`` attribute)."""
        cdef PyObject* inner[1]
        if entry.handler is None:
            self._keep()  # (ignored; the channel kept all the same)
            return
        msg = None
        if entry.decode is not None:
            try:
                msg = _decode(entry.decode, data)
            except _VALIDATION as exc:
                self._keep()
                self._declined(conn, data, recv_ns, "unknown message", exc)
                return
            except _MALFORMED as exc:
                self._keep()
                self._declined(conn, data, recv_ns, "malformed JSON", exc)
                return
            if self.unwrapped is not None:
                self.unwrapped.load(msg, inner)
                msg = <object>inner[0]
        if entry.shape is None:
            self._keep()
        entry.call(conn, msg, data, recv_ns, self.kept)

    cdef _other(self, conn, data, recv_ns, str kind, str detail):
        """Not routed: the venue's fallback, or counted bad input of ``kind``."""
        if self.fallback is not None:
            self.fallback(conn, data, recv_ns)
        else:
            self.bad_input(kind, detail, data)

    cdef _declined(self, conn, data, recv_ns, str kind, exc):
        """A route's decoder refused the frame: the venue's ``refused(conn, data, recv_ns, exc)``,
        else as ``_other``."""
        if self.refused is not None:
            self.refused(conn, data, recv_ns, exc)
        else:
            self._other(conn, data, recv_ns, kind, str(exc))


# ---------------------------------------------------------------------------------------------
# A decoder whose frames that are no JSON at all are refusals (to the venue's ``refused``)

cdef class RefusingDecoder:
    """``decoder`` (a msgspec decoder) as a ``Dispatch``'s ``decoder``, a frame it cannot read at
    all (no JSON: ``msgspec.DecodeError``, ``RecursionError``, ``UnicodeDecodeError``) raised as
    ``refusal(<the decoder's words>)``, a ``msgspec.ValidationError`` subclass: the Router then
    hands it, with its connection, to the venue's ``refused`` (as a frame of the wrong shape),
    instead of counting it ``malformed JSON`` itself (Coinbase resyncs the books such a frame may
    have concerned). What a Python ``decode`` doing the same costs a frame, without the Python
    call; under a profile hook the decoder is called from Python (``kit.dispatch._called``), so
    that the hook sees its calls."""
    cdef readonly object decoder
    cdef readonly object refusal
    cdef object _inner

    def __init__(self, decoder, refusal):
        if not (isinstance(refusal, type) and issubclass(refusal, msgspec.ValidationError)):
            raise TypeError(f"RefusingDecoder: refusal {refusal!r} is no msgspec.ValidationError subclass")
        self.decoder = decoder
        self.refusal = refusal
        self._inner = decoder.decode

    def decode(self, data):
        try:
            if _called is not None:
                return _decode(self._inner, data)
            return self._inner(data)
        except _VALIDATION:
            raise
        except _MALFORMED as exc:
            raise self.refusal(str(exc)) from None


# ---------------------------------------------------------------------------------------------
# ChainedSides (atomfast.kit.shapes): an L2 update of both sides, its id chained, no checksum

#: a ``ChainedSides`` id is below this (an int64)
cdef object _SEQ_END = 2 ** 63


cdef class _ChainedSidesExec(_ShapeExec):
    """``atomfast.kit.shapes.ChainedSides``: the message's fields ``at`` (where declared) and
    ``where``'s; the update's market, first levels, second levels, seq, (prev), time..."""
    cdef _Fields outer          # (at, *where) of the message; None: neither declared
    cdef bint has_at
    cdef tuple wanted           # where's values, in ``outer``'s order after ``at``
    cdef int first
    cdef Py_ssize_t depth
    cdef dict ids               # the chain's market -> the book's id
    cdef object missing         # the chain's id of a market without one
    cdef bint linked
    cdef str chain_name
    cdef dict books
    cdef set unsynced
    cdef object row_type, spread_type
    cdef long top_changed

    def __init__(self, decl, scheme):
        from atomfast.book import ASK, BID, TOP_CHANGED
        from atomfast.events import Lob, Spread

        super().__init__(decl, scheme)
        names = tuple(decl.outer())
        if names:
            self.outer = _Fields(names)
        self.has_at = decl.at is not None
        self.wanted = tuple(decl.where.values())
        self.first = BID if decl.first == "bids" else ASK
        self.depth = decl.depth
        self.chain_name, self.linked = decl.chain, decl.prev is not None
        self.books = scheme.books
        self.unsynced = scheme.unsynced
        self.row_type, self.spread_type = Lob, Spread
        self.top_changed = TOP_CHANGED

    cdef int on(self, conn, msg, data, long long recv_ns, kept) except -1:
        cdef PyObject* o[MAX_FIELDS]
        cdef PyObject* v[MAX_FIELDS]
        cdef PyObject* hit
        cdef Py_ssize_t i, k
        cdef long long ms
        cdef int64_t atom_us
        cdef long flags
        payload = msg
        if self.outer is not None:
            self.outer.load(msg, o)
            k = 1 if self.has_at else 0
            for i in range(PyTuple_GET_SIZE(self.wanted)):
                if not (<object>o[k + i] == <object>PyTuple_GET_ITEM(self.wanted, i)):
                    return self._otherwise(conn, msg, data, recv_ns, kept)  # not an update
            if self.has_at:
                payload = <object>o[0]
                if type(payload) is list:
                    if len(<list>payload) != 1:
                        return self._otherwise(conn, msg, data, recv_ns, kept)
                    payload = (<list>payload)[0]
        self.fields.load(payload, v)
        market = <object>v[0]
        if type(market) is not str:
            return self._otherwise(conn, msg, data, recv_ns, kept)
        hit = PyDict_GetItem(self.symbols, market)
        if hit == NULL or not <object>hit:
            return self._otherwise(conn, msg, data, recv_ns, kept)  # not cached yet: the venue asks
        symbol = <object>hit
        seq = <object>v[3]
        when = self._time(v)
        if (type(seq) is not int or not (0 <= seq < _SEQ_END) or type(when) is not int
                or not (0 <= when < 100_000_000_000_000)):
            return self._otherwise(conn, msg, data, recv_ns, kept)
        if PySet_GET_SIZE(self.unsynced) and PySet_Contains(self.unsynced, market):
            return 0  # reloading: nothing of this market until its snapshot
        if self.ids is None:
            self._bind_chain()
        hit = PyDict_GetItem(self.ids, market)
        have = <object>hit if hit != NULL else self.missing
        if self.linked:
            if not (<object>v[4] == have):
                return self._otherwise(conn, msg, data, recv_ns, kept)  # a gap (or no book yet): the venue's
        elif type(have) is not int or seq != have + 1:
            return self._otherwise(conn, msg, data, recv_ns, kept)
        hit = PyDict_GetItem(self.books, market)
        if hit == NULL:
            return self._otherwise(conn, msg, data, recv_ns, kept)
        book = <object>hit
        ms = when
        atom_us = recv_ns // 1000
        lob = self.rows_of("lob")
        levels1, levels2 = <object>v[1], <object>v[2]
        try:
            if type(levels1) is list and type(levels2) is list:
                flags = book.apply_sides(self.first, levels1, levels2, lob, self.row_type, self.exchange, symbol,
                                         ms, atom_us, self.depth)
            else:
                if not book.check_json_sides(levels1, levels2):
                    return self._otherwise(conn, msg, data, recv_ns, kept)  # the venue decodes them
                flags = book.apply_json_sides(self.first, levels1, levels2, lob, self.row_type, self.exchange,
                                              symbol, ms, atom_us)
                if self.depth > 0:  # the cut: the rows the one call with ``depth`` makes
                    flags |= book.apply_sides(self.first, None, None, lob, self.row_type, self.exchange, symbol,
                                              ms, atom_us, self.depth)
        except (ValueError, OverflowError, TypeError):  # (the scheme's BOOK_ERRORS) nothing applied
            return self._otherwise(conn, msg, data, recv_ns, kept)
        self.ids[market] = seq
        if flags & self.top_changed:
            book.spread_into(self.rows_of("spread"), self.spread_type, self.exchange, symbol, ms, atom_us)
        return 0

    cdef int _bind_chain(self) except -1:
        """The scheme's chain (made in its ``__init__``, after the routes are bound): at the
        first message."""
        chain = _declared_chain(self.scheme, self.chain_name, self.linked, "ChainedSides")
        self.ids, self.missing = chain.ids, chain.missing
        return 0


# ---------------------------------------------------------------------------------------------
# KeyedTextLevels (atomfast.kit.shapes): an update keyed by its market, levels as JSON text


cdef class _KeyedTextLevelsExec(_MarketBookExec):
    """``atomfast.kit.shapes.KeyedTextLevels``: the message's fields at (a dict of one market ->
    its payload) and unless; the payload's seq, time, first levels, second levels."""
    cdef _Fields outer          # (at, unless) of the message
    cdef dict ids               # the chain's market -> the book's number
    cdef int first
    cdef object row_type, spread_type
    cdef str chain_name

    def __init__(self, decl, scheme):
        from atomfast.book import ASK, BID
        from atomfast.events import Lob, Spread

        super().__init__(decl, scheme)
        self.outer = _Fields((decl.at, decl.unless))
        self.first = ASK if decl.first == "asks" else BID
        self.row_type, self.spread_type = Lob, Spread
        self.chain_name = decl.chain

    cdef int on(self, conn, msg, data, long long recv_ns, kept) except -1:
        cdef PyObject* o[2]
        cdef PyObject* v[4]
        cdef PyObject* hit
        cdef PyObject* sym
        cdef PyObject* bk
        cdef PyObject* key
        cdef PyObject* val
        cdef Py_ssize_t pos = 0
        self.outer.load(msg, o)
        keyed = <object>o[0]
        if <object>o[1] is not None or type(keyed) is not dict or PyDict_Size(keyed) != 1:
            return self._otherwise(conn, msg, data, recv_ns, kept)
        PyDict_Next(keyed, &pos, &key, &val)
        market = <object>key
        if self._market_book(market, &sym, &bk) != 1:  # (reloading too: the venue drops it, or says why not)
            return self._otherwise(conn, msg, data, recv_ns, kept)
        self.fields.load(<object>val, v)
        seq, when = <object>v[0], <object>v[1]
        if self.ids is None:
            self._bind_chain()
        hit = PyDict_GetItem(self.ids, market)
        if hit == NULL or type(seq) is not int or type(<object>hit) is not int or not seq == <object>hit + 1:
            return self._otherwise(conn, msg, data, recv_ns, kept)  # a gap, or no number yet: the venue's
        if type(when) is not int or not (0 <= when < 100_000_000_000_000):
            return self._otherwise(conn, msg, data, recv_ns, kept)
        # (a method call, as the benchmark's recording proxy of the book takes it too)
        if (<object>bk).json_update_wide(self.first, <object>v[2], <object>v[3], self.rows_of, self.row_type,
                                         self.spread_type, self.exchange, <object>sym, recv_ns, when) != 0:
            return self._otherwise(conn, msg, data, recv_ns, kept)  # UPDATE_NOT_APPLIED: a level not read
        self.ids[market] = seq
        return 0

    cdef int _bind_chain(self) except -1:
        """The scheme's chain (made in its ``__init__``, after the routes are bound): at the
        first message."""
        chain = getattr(self.scheme, self.chain_name)
        if chain.linked:
            raise ValueError(f"KeyedTextLevels: the scheme's {self.chain_name} is linked: a consecutive one is "
                             "needed")
        self.ids = chain.ids
        return 0
