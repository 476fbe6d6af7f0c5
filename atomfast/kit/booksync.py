"""Snapshot + buffered diffs + a continuity rule: the one book-sync component of every venue whose
book is a snapshot (REST or websocket) followed by numbered diffs.

Per market (``MarketSync``):

1. Not live: diffs are buffered (at most ``max_buffer``: the older half is dropped beyond it) and
   the first one asks for a snapshot (``request(conn, native)``: a REST fetch, or a websocket
   resubscribe where the venue's snapshot comes on the stream). Diffs arriving while it is in
   flight are buffered too.
2. ``snapshot(native, snap_id, snapshot, body, recv_ns)``: buffered diffs the snapshot covers are
   dropped (``rule.covered``); if the first remaining one does not reach back to the snapshot
   (``rule.reaches``), the snapshot is older than the stream held: it is discarded and another
   asked for (at most ``max_attempts`` in a row, then the connection is reconnected; 0: no
   limit, the book waits for a usable snapshot and the connection goes on). Otherwise
   the venue loads it (``load``: status ``snapshot``, the levels) and the buffered diffs go
   through the live rule below.
3. Live: ``rule.check(st, first, last, prev)`` says apply, stale (already in the book:
   ignored) or a gap (its reason). A gap: ``metrics.gaps`` + 1, ``Scheme.resync`` (status
   ``resync`` with the reason, the book dropped, ``resubscribe`` -> ``restart`` here), and the
   diff that revealed the gap is buffered for the next snapshot (not with a ``blind`` rule:
   there it is an old diff, which the snapshot asked for after it holds).
4. A diff that cannot be read (``lost``): a live book resyncs; while buffering, the buffer is
   emptied (only a snapshot taken after the lost diff can cover it). A failed snapshot request
   (``request_failed``, also what a venue calls for an answer it cannot read and wants asked
   again later): the next diff asks again, ``retry_delay_ns`` (doubling) later. ``answered``
   tells a venue whether an answer is wanted before it reads it; ``suspend`` stops a market
   whose connection closed (the next diff, on the next connection, asks for a snapshot).

A venue reads its diffs' ids (``first``, ``last``, ``prev``: e.g. Binance ``U``, ``u``, ``pu``)
and picks a rule; the rules below cover the venues' documented procedures:

- ``Contiguous``: each diff spans ``[first, last]`` and must start at most one past the book
  (``first <= id + 1``); ``last <= id`` is stale. Binance spot, Gate.io, KuCoin spot
  (``sequenceStart``/``sequenceEnd``).
- ``Sequenced``: one number per message (first = last), each the previous + 1; the snapshot fits
  when the lowest buffered number above it is the next one (``aligned``: the whole buffer, not
  its first diff). Coinbase's level 3 (``sequence``).
- ``Chained``: each diff names the id it follows (``prev == id``); the first after the snapshot
  straddles it (``first <= id <= last``, or ``prev == id``). Binance USD-M / COIN-M (``pu``),
  OKX (``prevSeqId``), HTX (``prevSeqNum``).
- ``Increasing``: ids that never go back but are not contiguous (Bitstamp's ``microtimestamp``,
  several events may share one): what is not newer than the snapshot is in it (stale); an id
  older than the book's last one is a reordering (a gap).

``rule.check(st, first, last, prev)`` reads what it needs of the market's state (``st.last``,
``st.snap``, ``st.fresh``); a rule with ``aligned(snap, buffer)`` aligns a snapshot itself
(instead of ``covered``/``reaches`` on the buffer's first diff). A rule's gap reason is its
venue's wording: ``Contiguous``, ``Sequenced`` and ``Increasing`` take a ``reason`` template (fields ``first``, ``last``, ``prev``, ``book`` the
book's id, ``next`` = book + 1). A gap is reported by ``gap(conn, native, reason, recv_ns,
book)``: ``Scheme.gap`` (reason ``gap: <reason>``) unless the venue names its own.

Compiled (native/booksync/_booksync.pyx, ``SyncCore``, this ``BookSync``'s base): the markets'
states (``MarketSync``), a diff's way in, the check of a live diff by the rules above (C twins of
their ``check``, which still words a gap's reason: a change to one goes to the other) and, where
the venue declares its diff as an ``L2Diff`` instead of an ``apply``, the apply with its ``lob``
and ``spread`` rows; ``route`` gives a venue a compiled route handler for its diff message.

A ``blind`` rule (``Increasing``) cannot tell from the ids whether a snapshot reaches the
buffered stream, so the sync keeps track of it: a snapshot asked for before a restart, or before
a diff that was lost, is not used when it comes (another is asked for: ``stale``); a diff dropped
from an overflowing buffer sets a ``floor`` the snapshot must reach (until the next restart); a
lost diff does not empty the buffer (what the next snapshot covers is dropped by its id). With
``overflow`` (a bad-input kind), dropping from a full buffer is counted.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from .._booksync import (RULE_CHAINED, RULE_CONTIGUOUS, RULE_INCREASING, RULE_PYTHON, L2Diff, MarketSync,
                         SyncCore)

if TYPE_CHECKING:
    from ..scheme import Connection, Scheme

log = logging.getLogger("atomfast.kit.booksync")

#: ``rule.check`` result: the diff is in the book already (ignored)
STALE = 0
#: ``rule.check`` result: apply it
APPLY = 1


class Contiguous:
    """``[first, last]`` spans; the next must start at most one past the book's id."""

    __slots__ = ("first_name", "last_name", "reason")
    blind = False

    def __init__(self, first_name: str = "U", last_name: str = "u", reason: str = "") -> None:
        self.first_name = first_name
        self.last_name = last_name
        #: the gap reason (``str.format`` fields: first, last, prev, book, next)
        self.reason = reason or f"{first_name} {{first}} != previous {last_name} {{book}} + 1"

    @staticmethod
    def covered(snap: int, first: int, last: int, prev: int) -> bool:
        return last <= snap

    @staticmethod
    def reaches(snap: int, first: int, last: int, prev: int) -> bool:
        return first <= snap + 1

    def check(self, st: "MarketSync", first: int, last: int, prev: int) -> int | str:
        if last <= st.last:
            return STALE
        if first > st.last + 1:
            return self.reason.format(first=first, last=last, prev=prev, book=st.last, next=st.last + 1)
        return APPLY


class Sequenced(Contiguous):
    """One sequence number per message (``first`` = ``last``): continuity as ``Contiguous``; a
    snapshot fits the buffered stream when the lowest buffered number above it is the next one,
    wherever the buffer holds it."""

    __slots__ = ()

    def __init__(self, name: str = "sequence", reason: str = "") -> None:
        super().__init__(name, name, reason or f"{name} gap: expected {{next}}, got {{first}}")

    @staticmethod
    def aligned(snap: int, buffer: list) -> bool:
        above = [item[2] for item in buffer if item[2] > snap]
        return not above or min(above) == snap + 1


class Chained:
    """Each diff names the id it follows (``prev``); the first after a snapshot straddles it."""

    __slots__ = ("first_name", "last_name", "prev_name")
    blind = False

    def __init__(self, first_name: str = "U", last_name: str = "u", prev_name: str = "pu") -> None:
        self.first_name = first_name
        self.last_name = last_name
        self.prev_name = prev_name

    @staticmethod
    def covered(snap: int, first: int, last: int, prev: int) -> bool:
        return last < snap

    @staticmethod
    def reaches(snap: int, first: int, last: int, prev: int) -> bool:
        return first <= snap or prev == snap

    def check(self, st: "MarketSync", first: int, last: int, prev: int) -> int | str:
        if prev == st.last:
            return APPLY
        book_id = st.last
        if not st.fresh:
            return f"{self.prev_name} {prev} != previous {self.last_name} {book_id}"
        if last < book_id:
            return STALE  # the snapshot covers it
        if first > book_id:
            return f"first update [{first}, {last}] after snapshot {book_id}"
        return APPLY


class Increasing:
    """Ids that never go back (not contiguous, possibly equal): what the snapshot holds is stale,
    an id older than the book's last one a reordering. ``blind``: the ids cannot show that a
    snapshot reaches the stream (the sync keeps track, see the module's doc)."""

    __slots__ = ("name", "reason")
    blind = True

    def __init__(self, name: str = "id", reason: str = "") -> None:
        self.name = name
        #: the gap reason (``str.format`` fields: first, last, prev, book, next)
        self.reason = reason or f"out of order: {name} {{last}} after {{book}}"

    @staticmethod
    def covered(snap: int, first: int, last: int, prev: int) -> bool:
        return last <= snap

    @staticmethod
    def reaches(snap: int, first: int, last: int, prev: int) -> bool:
        return True

    def check(self, st: "MarketSync", first: int, last: int, prev: int) -> int | str:
        if last <= st.snap:
            return STALE  # the snapshot holds it
        book_id = st.last
        if last < book_id:
            return self.reason.format(first=first, last=last, prev=prev, book=book_id, next=book_id + 1)
        return APPLY


#: ``apply(native, diff, data, recv_ns) -> bool``: one diff into the live book (False: it could
#: not be applied and the venue resynced the book); or an ``L2Diff`` (the diff's levels and time
#: declared: applied in C)
Apply = "Callable[[str, Any, bytes | None, int], bool] | L2Diff"
#: ``load(native, snapshot, body, recv_ns) -> bool``: a snapshot into a fresh book (False:
#: malformed, counted by the venue: another is asked for)
Load = Callable[[str, Any, bytes, int], bool]
#: ``request(conn, native)``: ask for a snapshot
Request = Callable[["Connection", str], None]
#: ``gap(conn, native, reason, recv_ns, book)``: report a gap (counted) and resync the book
Gap = Callable[["Connection | None", str, str, int, str], None]


class BookSync(SyncCore):
    """Every market's book sync of one scheme (see the module's doc). A diff's way in (``diff``),
    the rule's check on a live book and the apply of an ``L2Diff`` are compiled (``SyncCore``,
    native/booksync/_booksync.pyx); what is rare is here."""

    def __init__(self, scheme: "Scheme", rule: Any, request: Request, apply: Apply, load: Load, *,
                 book: str = "lob", max_buffer: int = 10_000, max_attempts: int = 10,
                 retry_delay_ns: int = 1_000_000_000, gap: Gap | None = None, overflow: str = "") -> None:
        super().__init__(scheme, rule, apply, _compiled(rule))
        self.request = request
        self.load = load
        self.book = book  # which book a resync names (lob, lob_l3)
        #: how a gap is reported (``Scheme.gap``: ``gaps`` + 1, resync with ``gap: <reason>``)
        self.gap = gap if gap is not None else scheme.gap
        #: the bad-input kind counted when a full buffer drops diffs ("": not counted)
        self.overflow = overflow
        self.blind = rule.blind
        #: ``rule.aligned(snap, buffer)``, where the rule aligns a snapshot with the whole buffer
        self.aligned = getattr(rule, "aligned", None)
        self.max_buffer = max_buffer
        self.max_attempts = max_attempts
        self.retry_delay_ns = retry_delay_ns

    def market(self, native: str, conn: "Connection | None" = None) -> MarketSync:
        st = self.markets.get(native)
        if st is None:
            st = self.markets[native] = MarketSync(conn)
        return st

    # --- diffs --------------------------------------------------------------------------------
    # ``diff(conn, native, diff, first, last, prev, data, recv_ns)`` (SyncCore): a live book's diff
    # is checked and applied there (``_live``), any other goes to ``_buffer``; ``route`` makes a
    # venue's route handler that reads the ids from the decoded message

    def _buffer(self, st: MarketSync, native: str, diff: Any, first: int, last: int, prev: int, recv_ns: int) -> None:
        """A diff while the book is not live: buffered; the first asks for a snapshot."""
        buf = st.buffer
        buf.append((diff, first, last, prev, recv_ns))
        if len(buf) > self.max_buffer:
            self._overflow(st, native)
        if not st.pending and recv_ns >= st.retry_ns:
            self._request(st, native)

    def _gap(self, st: MarketSync, native: str, diff: Any, first: int, last: int, prev: int, reason: str,
             recv_ns: int) -> None:
        self.gap(st.conn, native, reason, recv_ns, self.book)
        if st.live:  # the resync did not restart it (a book already resyncing)
            self.restart(st.conn, native)
        if not self.blind:  # (a blind rule's gap is an old diff: the next snapshot, asked after it, holds it)
            st.buffer.append((diff, first, last, prev, recv_ns))  # the diff after the gap waits for the snapshot

    def lost(self, conn: "Connection | None", native: str, recv_ns: int, reason: str = "malformed book message") -> None:
        """A diff of ``native`` that could not be read: a live book resyncs; while buffering, the
        buffer is emptied (the lost diff can only be covered by a snapshot taken after it)."""
        st = self.markets.get(native)
        if st is None:
            return
        if conn is not None:
            st.conn = conn
        if st.live:
            self.scheme.resync(st.conn, native, reason, recv_ns, self.book)
        elif self.blind:  # the buffer stays (the next snapshot's id drops what it covers)
            if st.pending:
                st.stale = True  # the answer on its way may predate the lost diff
        else:
            st.buffer = []

    def _overflow(self, st: MarketSync, native: str) -> None:
        """The buffer is full (the snapshot is late): its older half is dropped."""
        buf = st.buffer
        half = len(buf) // 2
        if self.blind:
            st.floor = max(st.floor, max(item[2] for item in buf[:half]))
        del buf[:half]
        if self.overflow:
            self.scheme.bad_input(self.overflow, f"{self.book} {native}: snapshot not arrived", b"")

    def suspend(self, native: str) -> None:
        """The stream of ``native`` stopped (its connection closed): not live, nothing buffered;
        the next diff (on the next connection) asks for a snapshot unless one is in flight."""
        st = self.markets.get(native)
        if st is not None:
            st.live = st.fresh = False
            st.buffer = []
            st.attempts = 0

    # --- snapshots ----------------------------------------------------------------------------
    def restart(self, conn: "Connection | None", native: str) -> None:
        """Reload ``native``'s book from a fresh snapshot (the venue's ``resubscribe``)."""
        st = self.market(native, conn)
        if conn is not None:
            st.conn = conn
        st.live = st.fresh = False
        st.buffer = []
        st.floor = -1
        if not st.pending:
            self._request(st, native)
        elif self.blind:
            st.stale = True  # the answer on its way may predate what made us restart

    def _request(self, st: MarketSync, native: str) -> None:
        conn = st.conn
        if conn is None:
            return
        st.attempts += 1
        if st.attempts > self.max_attempts and self.max_attempts:
            self.scheme.bad_input("snapshot attempts exhausted",
                                  f"{native}: {st.attempts - 1} snapshots in a row did not fit the stream", b"")
            st.attempts = 0
            st.buffer = []
            conn.reconnect(f"{native}: no usable depth snapshot")
            return
        st.pending = True
        st.stale = False
        self.request(conn, native)

    def request_failed(self, native: str, recv_ns: int) -> None:
        """A snapshot request failed: the next diff asks again, after ``retry_delay_ns``
        (doubling with the attempts)."""
        st = self.markets.get(native)
        if st is not None:
            st.pending = False
            st.retry_ns = recv_ns + self.retry_delay_ns * (1 << min(st.attempts, 5))

    def unusable(self, native: str) -> None:
        """The snapshot that came for ``native`` cannot be read: ask for another."""
        st = self.markets.get(native)
        if st is not None and not st.live:
            st.pending = False
            self._request(st, native)

    def answered(self, native: str) -> bool:
        """A snapshot answer for ``native`` came: whether the venue should read it and hand it to
        ``snapshot``. False: none was asked for, the book is live already (a late answer), or it
        was asked for before something it must cover (``stale``: another is asked for now)."""
        st = self.markets.get(native)
        if st is None or not st.pending:
            return False
        st.pending = False
        if st.live:
            return False
        if st.stale:
            self._request(st, native)
            return False
        return True

    def snapshot(self, native: str, snap_id: int, snapshot: Any, body: bytes, recv_ns: int,
                 conn: "Connection | None" = None) -> None:
        """A snapshot of ``native`` with id ``snap_id``: aligned with the buffered diffs, loaded,
        and the buffered diffs applied after it."""
        st = self.market(native, conn)
        st.pending = False
        if st.live:
            return  # a late answer to an earlier request: the book is live already
        if self.blind and (st.stale or snap_id < st.floor):  # older than what it must cover
            self._request(st, native)
            return
        rule = self.rule
        buf = st.buffer
        if self.aligned is not None:  # the rule aligns the whole buffer (what it covers is stale below)
            if not self.aligned(snap_id, buf):
                log.debug("%s %s: snapshot %d older than the buffered stream: asking again",
                          self.scheme.exchange, native, snap_id)
                self._request(st, native)
                return
        else:
            i, n = 0, len(buf)
            while i < n and rule.covered(snap_id, buf[i][1], buf[i][2], buf[i][3]):
                i += 1
            if i:
                del buf[:i]
            if buf and not rule.reaches(snap_id, buf[0][1], buf[0][2], buf[0][3]):
                log.debug("%s %s: snapshot %d older than the buffered stream (first %d): asking again",
                          self.scheme.exchange, native, snap_id, buf[0][1])
                self._request(st, native)
                return
        if not self.load(native, snapshot, body, recv_ns):
            if not st.pending:  # (unless the venue already asked again, e.g. by a resync)
                self._request(st, native)
            return
        st.live = st.fresh = True
        st.last = st.snap = snap_id
        st.attempts = 0
        st.retry_ns = 0
        st.buffer = []
        for diff, first, last, prev, ns in buf:
            if st.live:
                self._live(st, native, diff, first, last, prev, None, ns)
            else:  # a gap among the buffered diffs restarted the sync: keep the rest for it
                st.buffer.append((diff, first, last, prev, ns))

    def awaiting(self) -> str:
        """The one market waiting for a snapshot (an answer that names none goes to it), or ""."""
        pending = [n for n, st in self.markets.items() if st.pending and not st.live]
        if len(pending) == 1:
            return pending[0]
        if not pending:
            waiting = [n for n, st in self.markets.items() if not st.live and st.buffer]
            if len(waiting) == 1:
                return waiting[0]
        return ""


def _compiled(rule: Any) -> int:
    """Which rule's check the compiled sync runs for ``rule``: one whose ``check`` is that of a
    class above (its C twin in native/booksync/_booksync.pyx), else its own ``check``."""
    check = type(rule).check
    for cls, code in ((Contiguous, RULE_CONTIGUOUS), (Chained, RULE_CHAINED), (Increasing, RULE_INCREASING)):
        if check is cls.check:
            return code
    return RULE_PYTHON


__all__ = ["APPLY", "STALE", "BookSync", "Chained", "Contiguous", "Increasing", "L2Diff", "MarketSync", "Sequenced"]
