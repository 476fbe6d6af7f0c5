"""A websocket book's sequence chain: the one owner of "the snapshot comes on the stream, every
diff must follow the book's id exactly, and a break resubscribes".

Where a venue's snapshot and diffs come on the same subscription (Deribit, OKX, Gate.io V2,
Bybit, HitBTC, Crypto.com, Poloniex, Kraken Futures, HTX futures), there is nothing to buffer or align (that is
``atomfast.kit.booksync``): the snapshot sets the market's id, each diff is checked against it,
and any break (a lost, repeated or reordered diff: none is stale here) is a gap, reported by
``Scheme.gap`` (``metrics.gaps`` + 1, status ``resync``, the book dropped, the venue's
``resubscribe`` brings a fresh snapshot on the stream).

One rule of two, as the venue documents its ids:

- linked (``linked=True``): a diff names the id it follows (``prev``: OKX ``prevSeqId``,
  Deribit ``prev_change_id``, Crypto.com ``pu``, Poloniex ``lastId``); it follows when ``prev``
  is the book's id;
- consecutive (``linked=False``): a diff spans ``[first, last]`` (one number: first = last) and
  follows when ``first`` is the book's id + 1 and ``last >= first`` (Gate.io ``U``/``u``, Bybit
  ``u``, HitBTC ``s``, Kraken Futures ``seq``, HTX futures ``version``).

The gap reason is the venue's wording, a ``str.format`` template with the fields of the
booksync rules' reasons: ``first``, ``last``, ``prev``, ``book`` (the book's id; ``missing``,
None unless the venue says, where the market has none), ``next`` (book + 1; linked rules: None).
``kind`` is the venue's word for the break (``Scheme.gap``'s ``kind``: "gap" unless it says
otherwise).

A venue calls ``set(native, id)`` after a snapshot is loaded and after each diff is applied, and
``follows(conn, native, first, last, prev, recv_ns)`` before it applies a diff (False: the gap is
reported, skip the diff). ``check`` is the same test without the report. ``ids`` is the
market -> id map (a venue may name it after its own ids: ``self.seq_ids = self.chain.ids``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..scheme import Connection, Scheme

#: ``Chain.check`` result: the diff follows the book
OK = ""


class Chain:
    """The per-market ids of one scheme's books and the rule a diff must follow (module doc)."""

    __slots__ = ("scheme", "ids", "linked", "reason", "kind", "book", "missing")

    def __init__(self, scheme: "Scheme", *, linked: bool, reason: str, kind: str = "gap", book: str = "lob",
                 missing=None) -> None:
        self.scheme = scheme
        #: native -> the book's id (the snapshot's, then each applied diff's)
        self.ids: dict = {}
        self.linked = linked
        #: the gap reason (``str.format`` fields: first, last, prev, book, next)
        self.reason = reason
        self.kind = kind
        self.book = book
        #: the book's id of a market that has none (no snapshot yet): None unless the venue says
        self.missing = missing

    def set(self, native: str, book_id) -> None:
        """The book of ``native`` now holds ``book_id`` (a snapshot loaded, a diff applied)."""
        self.ids[native] = book_id

    def get(self, native: str):
        """The book's id of ``native`` (None: no snapshot yet)."""
        return self.ids.get(native, self.missing)

    def check(self, native: str, first, last, prev) -> str:
        """``OK`` ("") when the diff follows the book of ``native``, else the gap reason."""
        book = self.ids.get(native, self.missing)
        if self.linked:
            if prev == book:
                return OK
            nxt = None
        else:
            nxt = book + 1
            if first == nxt and last >= first:
                return OK
        return self.reason.format(first=first, last=last, prev=prev, book=book, next=nxt)

    def follows(self, conn: "Connection", native: str, first, last, prev, recv_ns: int) -> bool:
        """Whether the diff follows the book; if not, the gap is reported (``Scheme.gap``: counted,
        resync, resubscribe) and the caller drops the diff."""
        reason = self.check(native, first, last, prev)
        if not reason:
            return True
        self.scheme.gap(conn, native, reason, recv_ns, self.book, kind=self.kind)
        return False


__all__ = ["OK", "Chain"]
