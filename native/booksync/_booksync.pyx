# The live path of the kit's book sync (atomfast.kit.booksync), compiled: a market's sync state,
# the diff's way in (``SyncCore.diff``), the continuity rule's check on a live book, and, for an L2
# diff whose levels and time are fields of the decoded message (``L2Diff``), the apply with its
# ``lob`` rows and the ``spread`` row where the top changed. What is rare stays in Python
# (atomfast/kit/booksync.py: ``BookSync``, a subclass of ``SyncCore``): buffering before the
# snapshot, its alignment, gaps (the rule's Python ``check`` words the reason), resyncs and
# malformed input.
from cpython.dict cimport PyDict_GetItem
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject, PyTypeObject
from libc.stdint cimport int64_t, INT64_MAX

from atomfast._fields cimport FieldSlots, Py_TYPE, field_slot, fields_init, fields_resolve

from msgspec import Raw

from atomfast._book import BID, TOP_CHANGED, json_levels
from atomfast.events import Lob, Spread

# ``rule.check``'s results (atomfast.kit.booksync.STALE, APPLY): small ints, compared by identity
# as the Python sync does
cdef object _STALE = 0
cdef object _APPLY = 1
cdef int _TOP_CHANGED = TOP_CHANGED
cdef object _BID = BID
#: atomfast.scheme.BOOK_ERRORS: what the book raises for a level it refuses (nothing applied)
cdef tuple _BOOK_ERRORS = (ValueError, OverflowError, TypeError)

# the rules checked here (``compiled`` of SyncCore): the check of kit/booksync.py's class of that
# name, which stays the reference (and words a gap's reason)
RULE_PYTHON = 0       # the rule's own ``check`` (a venue's rule)
RULE_CONTIGUOUS = 1   # Contiguous, Sequenced
RULE_CHAINED = 2      # Chained
RULE_INCREASING = 3   # Increasing

cdef enum Verdict:
    V_STALE = 0
    V_APPLY = 1
    V_GAP = 2
    V_ASK = 3         # ids the C check cannot read (not ints, or beyond int64): ask the rule


cdef inline bint _id(object x, int64_t* out) noexcept:
    """``x`` as an int64 id; False where it is none (not an int, or out of range)."""
    cdef int overflow = 0
    if type(x) is not int:
        return False
    out[0] = PyLong_AsLongLongAndOverflow(x, &overflow)
    return overflow == 0


cdef class _Fields:
    """Fields of a decoded message (atomfast/_fields.pxd: read at its type's slot offsets, found
    once per type), else by ``getattr``."""
    cdef tuple names
    cdef FieldSlots f
    cdef object tp_ref          # (keeps the type the offsets were found on alive)

    def __cinit__(self, tuple names):
        fields_init(&self.f, names)
        self.names = names

    cdef inline object get(self, msg, Py_ssize_t i):
        """Field ``i`` of ``msg``."""
        cdef PyObject* v
        if Py_TYPE(msg) != self.f.tp:
            self.tp_ref = type(msg)
            fields_resolve(&self.f, self.names, msg)
        v = field_slot(&self.f, msg, i)
        if v != NULL:
            return <object>v
        return getattr(msg, self.names[i])  # (not in slots, or an unset slot: getattr says what it is)


cdef class MarketSync:
    """Sync state of one market's book."""

    #: the book is trusted and published
    cdef public bint live
    #: live, and no diff applied since the snapshot
    cdef public bint fresh
    #: the book's id (the snapshot's, then each applied diff's last)
    cdef public object last
    #: the id of the snapshot the book was loaded from
    cdef public object snap
    #: (diff, first, last, prev, recv_ns) while not live
    cdef public object buffer
    #: a snapshot request is in flight
    cdef public bint pending
    #: where the market's last diff came from (requests go through it)
    cdef public object conn
    #: snapshot requests since the book was last live
    cdef public object attempts
    #: after a failed request: none before this receive time
    cdef public object retry_ns
    #: (blind rules) the request in flight was made before something its answer must cover: the
    #: answer is not used, another is asked for
    cdef public bint stale
    #: (blind rules) the newest id dropped from an overflowing buffer since the last restart: a
    #: snapshot must reach it
    cdef public object floor

    def __init__(self, conn=None):
        self.live = False
        self.fresh = False
        self.last = -1
        self.snap = -1
        self.buffer = []
        self.pending = False
        self.conn = conn
        self.attempts = 0
        self.retry_ns = 0
        self.stale = False
        self.floor = -1


cdef class L2Diff:
    """How a venue's L2 diff goes into its book, declared (instead of a Python ``apply``): the
    decoded message's fields holding the bid and ask levels (``(price, size)`` strings, as
    ``L2Book.apply_sides`` takes them) and its time in ms (the first of ``times`` that is not 0),
    applied in C by the book sync: the levels with a ``lob`` row per change, and the top as a
    ``spread`` row where it changed (as ``Scheme.emit_spread``). A time not in [0, ``max_ms``):
    ``Scheme.book_failed`` with ``bad_time`` (detail ``time <ms>``); a level the book refuses
    (nothing applied): ``book_failed`` with ``bad_level`` (the book's message).

    Levels may come as their JSON text (``msgspec.Raw``, where the venue's decoder keeps them
    so: no list, tuple or str per level): read by the book from the text
    (``L2Book.check_json_sides``). Such a message must be ``plain`` (the route checks it before
    the diff enters the sync; one that is not is the venue's to decode); a text whose numbers
    the book does not take from the text is decoded with ``levels`` (one side's text -> its
    ``(price, size)`` list) and applied as such, so a refused level says why as it always has."""

    cdef object scheme
    cdef _Fields fields         # bids, asks, then the times
    cdef Py_ssize_t ntimes
    cdef object max_ms
    cdef int64_t max_ms_c       # (max_ms where it is an int64, else -1)
    cdef str bad_time, bad_level
    cdef object levels          # one side's JSON text -> its levels (``decode``), or None
    # the scheme's, read at the first diff (the scheme builds them after its book sync)
    cdef dict books, symbols, instruments
    cdef object exchange
    # the diff whose levels its live book read whole (``read``: shape and numbers, kept by the
    # book for the apply that follows in the same call), else None
    cdef object _read

    def __init__(self, scheme, str bids, str asks, tuple times, max_ms, str bad_time, str bad_level, levels=None):
        if not times:
            raise ValueError("L2Diff: no time field")
        self.scheme = scheme
        self.fields = _Fields((bids, asks) + times)
        self.ntimes = len(times)
        self.max_ms = max_ms
        if not _id(max_ms, &self.max_ms_c):
            self.max_ms_c = -1
        self.bad_time = bad_time
        self.bad_level = bad_level
        self.levels = levels.decode if levels is not None else None

    cdef bint plain(self, msg) except -1:
        """Whether ``msg``'s levels are lists, or JSON text a decoder takes as ``[price, size]``
        strings (``atomfast._book.json_levels``)."""
        cdef object v
        cdef Py_ssize_t i
        for i in range(2):
            v = self.fields.get(msg, i)
            if type(v) is Raw and not json_levels(v):
                return False
        return True

    cdef bint read(self, MarketSync st, native, msg) except -1:
        """Where ``native``'s book is live and ``msg``'s levels are JSON text: the book reads them
        whole (``check_json_sides``: a plain text whose numbers it takes), kept for ``apply`` of
        ``msg`` in the same call (the route's); whether it did (then ``msg`` is ``plain``)."""
        cdef object bids, asks, book
        self._read = None
        if not st.live:
            return False
        bids = self.fields.get(msg, 0)
        if type(bids) is not Raw:
            return False
        asks = self.fields.get(msg, 1)
        if type(asks) is not Raw:
            return False
        book = self.scheme.books.get(native)
        if book is None or not book.check_json_sides(bids, asks):
            return False
        self._read = msg
        return True

    cdef bint apply(self, MarketSync st, native, diff, data, recv_ns) except -1:
        """``diff`` into ``native``'s live book; False where it could not be (counted, resynced)."""
        cdef object scheme = self.scheme
        cdef object ms = 0, book, flags, atom_us, inst, bids, asks
        cdef _Fields fields = self.fields
        cdef Py_ssize_t i
        cdef int64_t ms_c = 0
        cdef bint bad
        if self.books is None:
            self.books, self.symbols, self.instruments = scheme.books, scheme._symbols, scheme.instruments
            self.exchange = scheme.exchange
        book = self.books[native]
        for i in range(2, 2 + self.ntimes):
            ms = fields.get(diff, i)
            if ms:
                break
        if self.max_ms_c >= 0 and _id(ms, &ms_c):
            bad = not (0 <= ms_c < self.max_ms_c)
        else:
            bad = not (0 <= ms < self.max_ms)
        if bad:
            scheme.book_failed(st.conn, native, self.bad_time, f"time {ms}", data or b"", recv_ns)
            return False
        atom_us = recv_ns // 1000
        rows = scheme.rows  # (read each time: a benchmark's split wraps it)
        bids, asks = fields.get(diff, 0), fields.get(diff, 1)
        if type(bids) is Raw and self.levels is None:  # (the venue's declaration, not its input)
            raise TypeError("L2Diff: levels as JSON text need a levels decoder")
        try:  # every level parsed before any is applied (a bad one: nothing applied)
            if type(bids) is Raw:
                if self._read is diff:  # (read by the route: ``read``)
                    self._read = None
                    flags = book.apply_json_sides(_BID, bids, asks, rows("lob"), Lob, self.exchange,
                                                  self.symbols[native], ms, atom_us)
                elif book.check_json_sides(bids, asks):
                    flags = book.apply_json_sides(_BID, bids, asks, rows("lob"), Lob, self.exchange,
                                                  self.symbols[native], ms, atom_us)
                else:  # (decoded: the book says why it refuses one, or takes one of 2**53 ticks or more)
                    flags = book.apply_sides(_BID, self.levels(bids), self.levels(asks), rows("lob"), Lob,
                                             self.exchange, self.symbols[native], ms, atom_us)
            else:
                flags = book.apply_sides(_BID, bids, asks, rows("lob"), Lob, self.exchange, self.symbols[native], ms,
                                         atom_us)
        except _BOOK_ERRORS as exc:
            scheme.book_failed(st.conn, native, self.bad_level, str(exc), data or b"", recv_ns)
            return False
        if flags & _TOP_CHANGED:
            inst = self.instruments.get(native)
            if inst is None:
                inst = scheme.instrument(native)
            book.spread_into(rows("spread"), Spread, self.exchange, inst.symbol, ms, atom_us)
        return True


cdef class SyncCore:
    """The compiled part of ``atomfast.kit.booksync.BookSync`` (its base): the markets' states, a
    diff's way in, and a live book's check and apply. ``compiled``: which rule's check runs here
    (``RULE_*``; ``RULE_PYTHON``: the rule's own ``check``). ``apply``: the venue's Python
    ``apply(native, diff, data, recv_ns) -> bool``, or an ``L2Diff`` (applied here). The subclass
    defines what is rare: ``_buffer`` (a diff while not live) and ``_gap``."""

    cdef readonly object scheme
    cdef readonly object rule
    cdef readonly object apply
    #: native -> its sync state (``MarketSync``)
    cdef readonly dict markets
    cdef int compiled
    cdef L2Diff l2

    def __init__(self, scheme, rule, apply, int compiled=RULE_PYTHON):
        self.scheme = scheme
        self.rule = rule
        self.apply = apply
        self.markets = {}
        self.compiled = compiled
        self.l2 = apply if type(apply) is L2Diff else None

    def diff(self, conn, native, diff, first, last, prev, data, recv_ns):
        """A diff of ``native`` (its ids ``first``, ``last``, ``prev``) arrived on ``conn``."""
        cdef PyObject* p = PyDict_GetItem(self.markets, native)
        cdef MarketSync st
        if p == NULL:
            st = self.markets[native] = MarketSync(conn)
        else:
            st = <MarketSync?>p
        self._diff(st, conn, native, diff, first, last, prev, data, recv_ns)

    def route(self, slow, str native, str first, str last, str prev=None, bint need_prev=False, retype=None):
        """A route handler ``(conn, msg, data, recv_ns)`` for a venue's diff message (a decoded
        Struct): its market's name and ids read from the fields ``native``, ``first``, ``last``,
        ``prev`` (None: 0), straight into ``diff``. ``slow(conn, msg, data, recv_ns)`` takes the
        message instead where its market has no sync state yet (the venue checks the name) or,
        with ``need_prev``, where ``prev`` is None; ``retype(conn, msg, data, recv_ns)`` (with an
        ``L2Diff``) where its levels are JSON text that is not ``plain``, before anything else."""
        return DiffRoute(self, slow, native, first, last, prev, need_prev, retype).on_diff

    cdef int _diff(self, MarketSync st, conn, native, diff, first, last, prev, data, recv_ns) except -1:
        st.conn = conn
        if st.live:
            return self._live_diff(st, native, diff, first, last, prev, data, recv_ns)
        self._buffer(st, native, diff, first, last, prev, recv_ns)
        return 0

    def _live(self, st, native, diff, first, last, prev, data, recv_ns):
        """A diff of a live book: checked by the rule; applied, ignored (stale) or a gap."""
        self._live_diff(<MarketSync?>st, native, diff, first, last, prev, data, recv_ns)

    cdef int _live_diff(self, MarketSync st, native, diff, first, last, prev, data, recv_ns) except -1:
        cdef Verdict v = self._check(st, first, last, prev)
        cdef object verdict = None
        if v == V_ASK or v == V_GAP:  # (a gap: the rule words the reason)
            verdict = self.rule.check(st, first, last, prev)
            if v == V_ASK:
                v = V_APPLY if verdict is _APPLY else V_STALE if verdict is _STALE else V_GAP
        if v == V_APPLY:
            if self.l2 is not None:
                applied = self.l2.apply(st, native, diff, data, recv_ns)
            else:
                applied = self.apply(native, diff, data, recv_ns)
            if applied:
                st.last = last
                st.fresh = False
        elif v == V_GAP:
            self._gap(st, native, diff, first, last, prev, verdict, recv_ns)
        return 0

    cdef Verdict _check(self, MarketSync st, first, last, prev) noexcept:
        """The rule's check in C (kit/booksync.py's ``check`` of the class ``compiled`` names)."""
        cdef int64_t f, l, p, book, snap
        if self.compiled == RULE_PYTHON or not _id(last, &l) or not _id(st.last, &book):
            return V_ASK
        if self.compiled == RULE_CONTIGUOUS:
            if not _id(first, &f):
                return V_ASK
            if l <= book:
                return V_STALE
            if book != INT64_MAX and f > book + 1:
                return V_GAP
            return V_APPLY
        if self.compiled == RULE_CHAINED:
            if not _id(first, &f) or not _id(prev, &p):
                return V_ASK
            if p == book:
                return V_APPLY
            if not st.fresh:
                return V_GAP
            if l < book:
                return V_STALE  # the snapshot covers it
            if f > book:
                return V_GAP
            return V_APPLY
        if self.compiled == RULE_INCREASING:
            if not _id(st.snap, &snap):
                return V_ASK
            if l <= snap:
                return V_STALE  # the snapshot holds it
            if l < book:
                return V_GAP
            return V_APPLY
        return V_ASK


cdef class DiffRoute:
    """``SyncCore.route``'s handler (see there): its bound ``on_diff``."""

    cdef SyncCore sync
    cdef object slow, retype
    cdef _Fields fields         # native, first, last[, prev]
    cdef bint has_prev, need_prev

    def __init__(self, SyncCore sync, slow, str native, str first, str last, str prev=None, bint need_prev=False,
                 retype=None):
        if retype is not None and sync.l2 is None:
            raise ValueError("DiffRoute: retype goes with an L2Diff")
        self.sync = sync
        self.slow = slow
        self.retype = retype
        self.fields = _Fields((native, first, last) if prev is None else (native, first, last, prev))
        self.has_prev = prev is not None
        self.need_prev = need_prev and prev is not None

    def on_diff(self, conn, msg, data, recv_ns):
        """One diff message (the route's handler)."""
        cdef _Fields fields = self.fields
        cdef object native, prev
        cdef PyObject* p
        cdef L2Diff l2 = self.sync.l2
        cdef bint read = False
        if self.retype is not None:
            # a live book reads the levels here, once (for the apply below), which tells that
            # they are plain too; else the shape alone is looked at, as before
            native = fields.get(msg, 0)
            p = PyDict_GetItem(self.sync.markets, native)
            read = p != NULL and l2.read(<MarketSync?>p, native, msg)
            if not read and not l2.plain(msg):
                self.retype(conn, msg, data, recv_ns)
                return
        native = fields.get(msg, 0)
        prev = fields.get(msg, 3) if self.has_prev else 0
        p = PyDict_GetItem(self.sync.markets, native)
        if p == NULL or (self.need_prev and prev is None):
            if read:
                l2._read = None
            self.slow(conn, msg, data, recv_ns)
            return
        if read:
            try:
                self.sync._diff(<MarketSync?>p, conn, native, msg, fields.get(msg, 1), fields.get(msg, 2), prev,
                                data, recv_ns)
            finally:
                l2._read = None  # (not applied: a stale or gapped diff)
            return
        self.sync._diff(<MarketSync?>p, conn, native, msg, fields.get(msg, 1), fields.get(msg, 2), prev, data, recv_ns)
