"""The declared shape ``atomfast.kit.shapes.ChainedSides`` (executed by the compiled Router,
native/dispatch/_dispatch.pyx ``_ChainedSidesExec``): an L2 update of both sides whose id is
chained, applied in C as a handler applies it (``L2Book.apply_sides`` with the cut to the depth,
the chain set, a spread row where the top changed), on a toy venue with the two level forms
(lists; raw JSON text read by the book) and the two chain rules (linked, consecutive); what is
not the common case goes to the venue's ``otherwise`` with nothing applied. Poloniex's
``book_lv2`` route is its venue use (tests/venues/test_poloniex.py compares it with the
envelope's handler on the capture and faulty messages)."""
from __future__ import annotations

from typing import Any

import msgspec
import pytest

from atomfast.book import BID, TOP_CHANGED, L2Book
from atomfast.events import Lob, Spread
from atomfast.kit.chain import Chain
from atomfast.kit.dispatch import Dispatch
from atomfast.kit.shapes import ChainedSides
from atomfast.scheme import Instrument, Scheme
from atomfast.testing import T0, Harness


class Item(msgspec.Struct):
    m: str
    id: int
    prev: int = 0
    t: int = 0
    a: Any = []
    b: Any = []


class RawItem(msgspec.Struct):
    m: str
    id: int
    prev: int = 0
    t: int = 0
    a: msgspec.Raw = msgspec.Raw(b"[]")
    b: msgspec.Raw = msgspec.Raw(b"[]")


class Msg(msgspec.Struct):
    kind: str = ""
    data: list[Item] = []


class RawMsg(msgspec.Struct):
    kind: str = ""
    data: list[RawItem] = []


DEPTH = 3


def _toy(decoder, *, linked: bool, depth: int = DEPTH):
    decl = ChainedSides(at="data", market="m", bids="b", asks="a", seq="id", prev="prev" if linked else None,
                        time="t", chain="chain", depth=depth, where={"kind": "update"}, otherwise="_other")

    class Toy(Scheme):
        exchange = "toy"
        ws_url = "ws://toy.example"
        channels = {"lob": "book"}
        dispatch = Dispatch({"book": decl}, decoder=decoder, field="route_key")

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.chain = Chain(self, linked=linked, reason="gap {prev} {book}")
            self.handed: list[bytes] = []

        def subscribe_messages(self, channel, natives):
            return []

        def _other(self, conn, msg, data, recv_ns):
            self.handed.append(data)

    return Toy


class _Keyed:
    """A decoder whose messages all route to "book" (the decoded message, ``route_key`` added)."""

    def __init__(self, cls) -> None:
        self.inner = msgspec.json.Decoder(cls)

    def decode(self, data):
        msg = self.inner.decode(data)
        return _Routed(msg)


class _Routed:
    __slots__ = ("kind", "data", "route_key")

    def __init__(self, msg) -> None:
        self.kind, self.data, self.route_key = msg.kind, msg.data, "book"


def _harness(raw: bool, linked: bool) -> Harness:
    cls = _toy(_Keyed(RawMsg if raw else Msg), linked=linked)
    h = Harness(cls, {"X": Instrument("X", "X-Y", "spot", "X", "Y", 8, 8)})
    h.scheme.symbol_of("X")  # (cached, as a venue's snapshot caches it)
    book = h.scheme.book("X")
    rows: list = []
    book.apply_sides(BID, [("10", "1"), ("9", "1"), ("8", "1")], [("11", "1"), ("12", "1")], rows, Lob, "toy", "X-Y",
                     1, 1)
    h.scheme.chain.set("X", 5)
    return h


def _update(i: int, prev: int, bids, asks, t: int = 1_700_000_000_000, kind: str = "update", m: str = "X") -> bytes:
    import json

    return json.dumps({"kind": kind, "data": [{"m": m, "id": i, "prev": prev, "t": t, "b": bids, "a": asks}]}).encode()


def _expected(bids, asks, t: int) -> list:
    """What a handler writes for the update on the same book: apply_sides with the cut, the spread."""
    book = L2Book(8, 8)
    book.apply_sides(BID, [("10", "1"), ("9", "1"), ("8", "1")], [("11", "1"), ("12", "1")], [], Lob, "toy", "X-Y", 1,
                     1)
    rows: list = []
    flags = book.apply_sides(BID, [tuple(x) for x in bids], [tuple(x) for x in asks], rows, Lob, "toy", "X-Y", t,
                             T0 // 1000, DEPTH)
    out = [("lob", r) for r in rows]
    if flags & TOP_CHANGED:
        spread: list = []
        book.spread_into(spread, Spread, "toy", "X-Y", t, T0 // 1000)
        out += [("spread", r) for r in spread]
    return out


@pytest.mark.parametrize("raw", [False, True], ids=["lists", "raw-json"])
@pytest.mark.parametrize("linked", [True, False], ids=["linked", "consecutive"])
def test_an_update_is_applied_cut_and_chained(raw, linked):
    h = _harness(raw, linked)
    bids, asks = [["10.5", "2"], ["9.5", "1"]], [["11", "0"], ["13", "1"]]
    prev = 5 if linked else 0
    got = h.feed(_update(6, prev, bids, asks, 1_700_000_000_123), T0)
    assert got == _expected(bids, asks, 1_700_000_000_123)
    cut = [("lob", Lob("toy", "X-Y", p, 0.0, "buy", 1_700_000_000_123, T0 // 1000)) for p in (9.0, 8.0)]
    assert got[4:6] == cut  # 5 bids: the 2 worst cut
    assert h.scheme.handed == [] and h.scheme.chain.ids["X"] == 6 and h.reports == []
    assert h.scheme.books["X"].count(BID) == DEPTH


@pytest.mark.parametrize("raw", [False, True], ids=["lists", "raw-json"])
@pytest.mark.parametrize("linked", [True, False], ids=["linked", "consecutive"])
def test_what_is_not_the_common_case_goes_to_the_venue_with_nothing_applied(raw, linked):
    prev = 5 if linked else 0
    good = ([["10.5", "2"]], [])
    cases = [
        _update(7, 6, *good) if linked else _update(7, 0, *good),   # a gap
        _update(6, prev, *good, kind="snapshot"),                    # not an update (where)
        _update(6, prev, *good, m="Z"),                              # a market not cached
        _update(-1, prev, *good),                                    # an id out of range
        _update(6, prev, *good, t=-1),                               # a time out of range
        _update(6, prev, [["10.5", "-2"]], []),                      # a level the book refuses
    ]
    if raw:  # (a list level of three is what apply_sides makes of it: its first two)
        cases.append(_update(6, prev, [["10.5", "2", "x"]], []))     # not [price, size] text
    for bad in cases:
        h = _harness(raw, linked)
        before = h.scheme.books["X"].levels(BID)
        assert h.feed(bad, T0) == [], bad
        assert h.scheme.handed == [bad], bad
        assert h.scheme.books["X"].levels(BID) == before and h.scheme.chain.ids["X"] == 5, bad
    # two items: the venue's
    h = _harness(raw, linked)
    one = _update(6, prev, *good)
    two = one.replace(b"}]}", b"}," + one[len(b'{"kind": "update", "data": ['):])
    h.feed(two, T0)
    assert h.scheme.handed == [two]
    # reloading: dropped, not handed
    h = _harness(raw, linked)
    h.scheme.unsynced.add("X")
    assert h.feed(_update(6, prev, *good), T0) == [] and h.scheme.handed == []
    # no book: the venue's
    h = _harness(raw, linked)
    del h.scheme.books["X"]
    h.feed(_update(6, prev, *good), T0)
    assert len(h.scheme.handed) == 1


def test_a_chained_sides_declaration_is_checked():
    args = dict(market="m", bids="b", asks="a", seq="n", time="T", chain="chain", otherwise="_x")
    with pytest.raises(ValueError, match="first"):
        ChainedSides(**args, first="both")
    with pytest.raises(ValueError, match="otherwise"):
        ChainedSides(**{**args, "otherwise": ""})
    with pytest.raises(ValueError, match="depth"):
        ChainedSides(**args, depth=-1)
    decl = ChainedSides(**args, prev="p", at="data", where={"action": "update"})
    assert decl.fields() == ("m", "b", "a", "n", "p", "T") and decl.outer() == ("data", "action")
    assert ChainedSides(**args, first="asks").fields() == ("m", "a", "b", "n", "T")
