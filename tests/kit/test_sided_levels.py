"""The declared shape ``atomfast.kit.shapes.SidedLevels`` (executed by the compiled Router,
native/dispatch/_dispatch.pyx ``_SidedLevelsExec``): an L2 update whose levels each lead with
their side, applied in C as a handler applies it (one side: ``L2Book.apply_sides(side, ...)`` in
the message's order; both sides: ``apply_sides(BID, bids, asks)``, bids first, unless declared
``mixed=False``; a spread row where the top changed), on a toy venue with the two level forms
(lists; raw JSON text read by the book), the optional time and snapshot fields; what is not the
common case goes to the venue's ``otherwise`` with nothing applied. Its venue uses, Coinbase's
``l2update`` and Gemini's ``l2_updates``, are compared with their handlers in
tests/venues/test_coinbase.py and tests/venues/test_gemini.py."""
from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from atomfast.book import ASK, BID, CROSSED, TOP_CHANGED, L2Book
from atomfast.events import Lob, Spread
from atomfast.kit.dispatch import Dispatch
from atomfast.kit.shapes import SidedLevels
from atomfast.scheme import Instrument, Scheme
from atomfast.testing import T0, Harness


class Msg(msgspec.Struct):
    m: str
    c: Any = None
    t: str = ""
    s: msgspec.Raw = None  # type: ignore[assignment]


class RawMsg(msgspec.Struct):
    m: str
    c: msgspec.Raw = None  # type: ignore[assignment]
    t: str = ""
    s: msgspec.Raw = None  # type: ignore[assignment]


class _Keyed:
    """A decoder whose messages all route to "book" (the decoded message's fields, ``route_key``
    added)."""

    def __init__(self, cls) -> None:
        self.inner = msgspec.json.Decoder(cls)

    def decode(self, data):
        return _Routed(self.inner.decode(data))


class _Routed:
    __slots__ = ("m", "c", "t", "s", "route_key")

    def __init__(self, msg) -> None:
        self.m, self.c, self.t, self.s, self.route_key = msg.m, msg.c, msg.t, msg.s, "book"


def _harness(raw: bool = False, *, time: str | None = None, snapshot: str | None = None, mixed: bool = True,
             resync_on_cross: bool = False) -> Harness:
    decl = SidedLevels(market="m", levels="c", time=time, snapshot=snapshot, sides={"b": BID, "s": ASK},
                       mixed=mixed, crossed="_crossed", otherwise="_other")

    class Toy(Scheme):
        exchange = "toy"
        ws_url = "ws://toy.example"
        channels = {"lob": "book"}
        dispatch = Dispatch({"book": decl}, decoder=_Keyed(RawMsg if raw else Msg), field="route_key")

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.handed: list[bytes] = []
            self.crossings: list[str] = []

        def subscribe_messages(self, channel, natives):
            return []

        def _other(self, conn, msg, data, recv_ns):
            self.handed.append(data)

        def _crossed(self, conn, market, book, recv_ns):
            self.crossings.append(market)
            return resync_on_cross

    h = Harness(Toy, {"X": Instrument("X", "X-Y", "spot", "X", "Y", 8, 8)})
    h.scheme.symbol_of("X")  # (cached, as a venue's snapshot caches it)
    h.scheme.book("X").apply_sides(BID, [("10", "1"), ("9", "1")], [("11", "1"), ("12", "1")], [], Lob, "toy", "X-Y",
                                   1, 1)
    return h


def _msg(changes, m: str = "X", **extra) -> bytes:
    return json.dumps({"m": m, "c": changes, **extra}).encode()


def _expected(changes, ms: int, in_order: bool = False) -> list:
    """What a handler writes for the changes on the same book: apply_sides of one side, or of
    the bids then the asks (``in_order``: of each run of one side in turn), the spread."""
    book = L2Book(8, 8)
    book.apply_sides(BID, [("10", "1"), ("9", "1")], [("11", "1"), ("12", "1")], [], Lob, "toy", "X-Y", 1, 1)
    rows: list = []
    flags = 0
    if in_order:
        for side, p, z in changes:
            flags |= book.apply_sides(BID if side == "b" else ASK, [(p, z)], None, rows, Lob, "toy", "X-Y", ms,
                                      T0 // 1000)
    else:
        bids = [(p, z) for side, p, z in changes if side == "b"]
        asks = [(p, z) for side, p, z in changes if side == "s"]
        flags = book.apply_sides(BID, bids, asks, rows, Lob, "toy", "X-Y", ms, T0 // 1000)
    out = [("lob", r) for r in rows]
    if flags & TOP_CHANGED:
        spread: list = []
        book.spread_into(spread, Spread, "toy", "X-Y", ms, T0 // 1000)
        out += [("spread", r) for r in spread]
    return out


RECEIPT_MS = T0 // 1_000_000
ONE_SIDE = [[["b", "10.5", "2"], ["b", "9", "0"]], [["s", "11", "0"], ["s", "10.9", "3"]]]
BOTH = [["s", "12", "0"], ["b", "10.5", "2"], ["s", "11.5", "1"], ["b", "9", "0"]]


@pytest.mark.parametrize("raw", [False, True], ids=["lists", "raw-json"])
def test_an_update_of_one_side_or_both_is_applied_bids_first(raw):
    for changes in [*ONE_SIDE, BOTH, []]:
        h = _harness(raw)
        assert h.feed(_msg(changes), T0) == _expected(changes, RECEIPT_MS), changes
        assert h.scheme.handed == [] and h.reports == []


def test_not_mixed_one_side_is_applied_and_both_sides_go_to_the_venue():
    for changes in ONE_SIDE:
        h = _harness(mixed=False)
        assert h.feed(_msg(changes), T0) == _expected(changes, RECEIPT_MS, in_order=True)
        assert h.scheme.handed == []
    h = _harness(mixed=False)
    before = (h.scheme.books["X"].levels(BID), h.scheme.books["X"].levels(ASK))
    assert h.feed(_msg(BOTH), T0) == [] and h.scheme.handed == [_msg(BOTH)]
    assert (h.scheme.books["X"].levels(BID), h.scheme.books["X"].levels(ASK)) == before
    h = _harness(True, mixed=False)  # text levels: not read in C where not mixed
    assert h.feed(_msg(ONE_SIDE[0]), T0) == [] and h.scheme.handed == [_msg(ONE_SIDE[0])]


def test_the_time_is_the_declared_field_or_the_receipt():
    h = _harness(time="t")
    got = h.feed(_msg(ONE_SIDE[0], t="2021-04-17T16:43:37.2Z"), T0)
    assert got == _expected(ONE_SIDE[0], 1618677817200)
    h = _harness(time="t")
    assert h.feed(_msg(ONE_SIDE[0], t=""), T0) == _expected(ONE_SIDE[0], RECEIPT_MS)
    h = _harness()  # none declared: the field is not read
    assert h.feed(_msg(ONE_SIDE[0], t="yesterday"), T0) == _expected(ONE_SIDE[0], RECEIPT_MS)
    h = _harness(time="t")
    bad = _msg(ONE_SIDE[0], t="yesterday")
    assert h.feed(bad, T0) == [] and h.scheme.handed == [bad]


@pytest.mark.parametrize("raw", [False, True], ids=["lists", "raw-json"])
def test_what_is_not_the_common_case_goes_to_the_venue_with_nothing_applied(raw):
    cases = [
        _msg([["x", "10.5", "2"]]),                          # a side neither word
        _msg([["b", "10.5", "-2"]]),                         # a level the book refuses
        _msg([["b", "10.5", "2"], ["s", "0", "1"]]),         # a price 0 (nothing applied: every level first)
        _msg([["b", "10.5"]]),                               # not three items
        _msg([["b", "10.5", "2"]], m="Z"),                   # a market not cached
        _msg([["b", "10.5", "2"]], s=[]),                    # the snapshot field set
    ]
    if not raw:
        cases.append(_msg(None))                             # no levels
    for bad in cases:
        h = _harness(raw, snapshot="s")
        before = (h.scheme.books["X"].levels(BID), h.scheme.books["X"].levels(ASK))
        assert h.feed(bad, T0) == [], bad
        assert h.scheme.handed == [bad], bad
        assert (h.scheme.books["X"].levels(BID), h.scheme.books["X"].levels(ASK)) == before, bad
    h = _harness(raw, snapshot="s")  # the snapshot field absent: an update
    assert h.feed(_msg(ONE_SIDE[0]), T0) == _expected(ONE_SIDE[0], RECEIPT_MS)
    h = _harness(raw, snapshot="s")  # (null, a msgspec.Raw of it, is not None: the venue's, as Gemini's takes it)
    assert h.feed(_msg(ONE_SIDE[0], s=None), T0) == [] and h.scheme.handed == [_msg(ONE_SIDE[0], s=None)]
    for mixed in (True, False):
        h = _harness(raw and mixed, mixed=mixed)  # reloading: the venue's (which drops it, or counts it)
        h.scheme.unsynced.add("X")
        assert h.feed(_msg(ONE_SIDE[0]), T0) == [] and h.scheme.handed == [_msg(ONE_SIDE[0])]
        h = _harness(raw and mixed, mixed=mixed)  # no book: the venue's
        del h.scheme.books["X"]
        assert h.feed(_msg(ONE_SIDE[0]), T0) == [] and h.scheme.handed == [_msg(ONE_SIDE[0])]


@pytest.mark.parametrize("resync", [False, True])
def test_a_crossing_asks_the_venue(resync):
    h = _harness(resync_on_cross=resync)
    changes = [["b", "11.5", "1"]]
    got = h.feed(_msg(changes), T0)
    assert h.scheme.crossings == ["X"]
    want = _expected(changes, RECEIPT_MS)
    assert got == ([r for r in want if r[0] == "lob"] if resync else want)
    book = L2Book(8, 8)
    book.apply_sides(BID, [("10", "1")], [("11", "1")], [], Lob, "toy", "X-Y", 1, 1)
    assert book.apply_sides(BID, [("11.5", "1")], None, [], Lob, "toy", "X-Y", 1, 1) & CROSSED


def test_a_sided_levels_declaration_is_checked():
    args = dict(market="m", levels="c", crossed="_c", otherwise="_x")
    for sides in ({"b": BID}, {"b": BID, "s": BID}, {"b": BID, "s": ASK, "x": ASK}, {"": BID, "s": ASK}, {}):
        with pytest.raises(ValueError, match="sides"):
            SidedLevels(**args, sides=sides)
    with pytest.raises(ValueError, match="otherwise"):
        SidedLevels(**{**args, "otherwise": ""}, sides={"b": BID, "s": ASK})
    with pytest.raises(ValueError, match="time"):
        SidedLevels(**args, sides={"b": BID, "s": ASK}, time="")
    decl = SidedLevels(**args, sides={"b": BID, "s": ASK})
    assert decl.fields() == ("m", "c") and decl.time == () and decl.snapshot is None and decl.mixed
    decl = SidedLevels(**args, sides={"b": BID, "s": ASK}, time="T", snapshot="S", mixed=False)
    assert decl.fields() == ("m", "c", "S", "T") and decl.time == ("T",) and not decl.mixed
