"""Binance book sync: fault tests on the real hftbacktest sessions, and the sync rules one by one.

Fault tests (USD-M: ``pu`` chain; spot: ``U`` continuity): one depth message of the recorded
session is dropped (or two swapped) after the book is live. The next depth message reveals the
gap: ``metrics.gaps`` == 1, a status ``resync`` with the reason, the book dropped and nothing
published for the market, a fresh snapshot requested (``conn.fetch``).

Which snapshot rebuilds it: the recording holds ONE snapshot (inline, at the start), which is no
longer valid after the gap (its ``lastUpdateId`` is far older than the buffered stream): fed
again, it is refused (the "snapshot older than the first buffered event" rule: nothing is
published, another request is made). Without a snapshot the book stays unsynced and publishes
nothing to the end of the session. The rebuild is tested with a snapshot taken where a REST
answer would be taken: the state of a clean replay of the same session after frame K (its
levels, ``lastUpdateId`` = its book's update id), delivered inline after frame K, as hftbacktest
writes REST answers. After the rebuild the book must equal, at the end of the session, the book
of a clean replay (built from scratch).
"""
from __future__ import annotations

import copy
import gc
import json
from decimal import Decimal

import msgspec
import pytest

from atomfast.book import ASK, BID
from atomfast.capture import REST, RECV, Frame, open_capture
from atomfast.events import Lob, Spread, Status
from atomfast.exchanges.binance import BinanceDeliveryScheme, BinanceFuturesScheme, BinanceSpotScheme
from atomfast.exchanges.binance import handler as binance_handler
from atomfast.exchanges.binance import messages as m
from atomfast.replay import Replay
from atomfast.testing import T0, Harness, MemorySink, book_dict, fixture_path

HB_SPOT = "hftbacktest/spot/btcusdt_20240808.gz"
HB_USDM = "hftbacktest/usdm/btcusdt_20240808.gz"


class EditedCapture:
    """A capture with RECV frames dropped or moved (by their index among RECV frames: ``move=(i,
    j)`` delivers frame i right after frame j), inline REST answers inserted after given RECV
    frames, ``taps`` called once RECV frame i has been processed, and an early end (after RECV
    frame ``stop_after``)."""

    def __init__(self, capture, drop=(), move: tuple[int, int] | None = None,
                 insert: dict[int, list[bytes]] | None = None, taps: dict | None = None, stop_after: int = -1):
        self._capture = capture
        self.paths = capture.paths
        self.exchange = capture.exchange
        self.urls = capture.urls
        self.rest = capture.rest
        self.configuration = capture.configuration
        self.drop = set(drop)
        self.move = move
        self.insert = insert or {}
        self.taps = taps or {}
        self.stop_after = stop_after

    def rest_body(self, url_or_path: str):
        return self._capture.rest_body(url_or_path)

    def frames(self):
        i = -1
        held = None
        for f in self._capture.frames():
            if f.kind != RECV:
                yield f
                continue
            i += 1
            if i in self.drop:
                continue
            if self.move is not None and i == self.move[0]:
                held = f
                continue
            yield f
            if held is not None and i == self.move[1]:
                yield held._replace(ts_ns=f.ts_ns)
                held = None
            if i in self.taps:
                self.taps[i](i)  # the replay has processed frame i (and its REST answers)
            for body in self.insert.get(i, ()):
                yield Frame(f.ts_ns, 0, REST, "", body)
            if i == self.stop_after:
                return


def depth_indices(relative: str) -> tuple[list[int], int]:
    """RECV indices of the depth frames after the inline snapshot."""
    out = []
    snapshot_after = -1
    i = -1
    for f in open_capture(fixture_path(relative)).frames():
        if f.kind == REST:
            snapshot_after = i
        elif f.kind == RECV:
            i += 1
            if b"@depth" in f.data[:40]:
                out.append(i)
    return [i for i in out if i > snapshot_after]


def replay(relative: str, exchange: str, capture) -> tuple[Replay, MemorySink]:
    sink = MemorySink()
    r = Replay(capture, exchange, sink)
    gc.disable()
    try:
        r.run()
    finally:
        gc.enable()
    return r, sink


class Clean:
    """ONE clean replay of the session up to RECV frame ``end``: the snapshot a REST request
    would have returned after each frame of ``at`` (the book's levels; ``lastUpdateId`` = its
    update id), and the final book (built from scratch)."""

    def __init__(self, relative: str, exchange: str, native: str, at: list[int], end: int) -> None:
        self.native = native
        self.snapshots: dict[int, bytes] = {}
        cap = EditedCapture(open_capture(fixture_path(relative)), taps={k: self._grab for k in at}, stop_after=end)
        self.replay = Replay(cap, exchange, MemorySink())
        gc.disable()
        try:
            self.replay.run()
        finally:
            gc.enable()
        assert self.replay.metrics.gaps == 0
        self.book = book_dict(self.replay.scheme.books[native])

    def _grab(self, k: int) -> None:
        scheme = self.replay.scheme
        book = scheme.books[self.native]
        assert scheme.sync[self.native].live
        self.snapshots[k] = json.dumps({"lastUpdateId": scheme.sync[self.native].last,
                                        "bids": [list(lv) for lv in book.levels(BID)],
                                        "asks": [list(lv) for lv in book.levels(ASK)]}).encode()


def recorded_snapshot(relative: str) -> bytes:
    return next(f.data for f in open_capture(fixture_path(relative)).frames() if f.kind == REST)


def after(records, predicate):
    """Records after the first one matching predicate."""
    for i, rec in enumerate(records):
        if predicate(rec):
            return records[i + 1 :]
    raise AssertionError("no such record")


CASES = {
    # case: (recording, exchange, native, symbol, reason fragment of the gap)
    "usdm": (HB_USDM, "binance-futures", "BTCUSDT", "BTC-USDT-PERP", "gap: pu "),
    "spot": (HB_SPOT, "binance", "BTCUSDT", "BTC-USDT", "gap: U "),
    # Aster runs Binance's USD-M engine and API: its scheme is the Binance one on Aster's hosts;
    # no Aster recording exists, so the same real session goes through the ``aster`` scheme
    "aster": (HB_USDM, "aster", "BTCUSDT", "BTC-USDT-PERP", "gap: pu "),
}
#: positions among the live depth frames: the fault, a stale snapshot, the rebuild, the end
DROP, STALE, REBUILD, MOVE, END = 300, 400, 600, 100, 1200

_clean: dict[str, tuple[list[int], Clean]] = {}


def clean(case: str) -> tuple[list[int], Clean]:
    """The live depth frame indices, and the clean replay (cached per session)."""
    if case not in _clean:
        relative, exchange, native, _, _ = CASES[case]
        live = depth_indices(relative)
        _clean[case] = live, Clean(relative, exchange, native, [live[REBUILD], live[MOVE + 100]], live[END])
    return _clean[case]


@pytest.mark.parametrize("case", list(CASES))
def test_dropped_depth_message_resync_and_rebuild(case):
    relative, exchange, native, symbol, reason = CASES[case]
    live, ref = clean(case)
    fresh = ref.snapshots[live[REBUILD]]
    cap = EditedCapture(open_capture(fixture_path(relative)), drop=[live[DROP]],
                        insert={live[STALE]: [recorded_snapshot(relative)], live[REBUILD]: [fresh]},
                        stop_after=live[END])
    r, sink = replay(relative, exchange, cap)
    m = r.metrics
    assert (m.gaps, m.resyncs, m.errors.total) == (1, 1, 0)
    statuses = [rec for t, rec in sink.records if t == "status"]
    assert [(s.symbol, s.status) for s in statuses] == [(symbol, "snapshot"), (symbol, "resync"), (symbol, "snapshot")]
    assert statuses[1].reason.startswith(reason)
    # requests: the first snapshot (answered inline), the gap's, and one more after the stale
    # recorded snapshot was refused (the capture answers none of them: they come inline)
    url = f"{r.scheme.rest_url}{r.scheme.rest_endpoint.routes.snapshot}?symbol={native}&limit=1000"
    assert r.unanswered == [url, url, url]
    # nothing of the market between the resync and the fresh snapshot; trades and tickers go on
    between = after(sink.records, lambda rec: rec[0] == "status" and rec[1].status == "resync")
    between = between[: next(i for i, rec in enumerate(between) if rec[0] == "status")]
    assert {t for t, _ in between} == {"trades", "ticker"}
    # rebuilt: the same book as a clean replay (built from scratch) at the same frame
    assert r.scheme.sync[native].live and not r.scheme.unsynced
    assert book_dict(r.scheme.books[native]) == ref.book
    r.scheme.books[native]._validate()
    # publishing again after the second snapshot: its levels, then the live updates
    second = [i for i, (t, rec) in enumerate(sink.records) if t == "status" and rec.status == "snapshot"][1]
    levels = len(json.loads(fresh)["bids"]) + len(json.loads(fresh)["asks"])
    assert sum(t == "lob" for t, _ in sink.records[second:]) > levels + 1000


@pytest.mark.parametrize("case", list(CASES))
def test_dropped_depth_message_without_snapshot_stays_unsynced(case):
    relative, exchange, native, symbol, _ = CASES[case]
    live, _ = clean(case)
    cap = EditedCapture(open_capture(fixture_path(relative)), drop=[live[DROP]], stop_after=live[END])
    r, sink = replay(relative, exchange, cap)
    assert (r.metrics.gaps, r.metrics.resyncs) == (1, 1)
    assert native in r.scheme.unsynced and not r.scheme.sync[native].live
    assert len(r.scheme.books[native]) == 0  # dropped
    rest = after(sink.records, lambda rec: rec[0] == "status" and rec[1].status == "resync")
    assert {t for t, _ in rest} == {"trades", "ticker"}  # no lob, spread or status of the book
    # everything since the gap waits in the buffer for a snapshot
    assert len(r.scheme.sync[native].buffer) == END - DROP


@pytest.mark.parametrize("case", list(CASES))
def test_swapped_depth_messages(case):
    """Two depth messages in the wrong order: the later one breaks the chain (gap), the earlier one
    is buffered; a later snapshot covers both; the book equals the clean one."""
    relative, exchange, native, symbol, reason = CASES[case]
    live, ref = clean(case)
    cap = EditedCapture(open_capture(fixture_path(relative)), move=(live[MOVE], live[MOVE + 1]),
                        insert={live[MOVE + 100]: [ref.snapshots[live[MOVE + 100]]]}, stop_after=live[END])
    r, sink = replay(relative, exchange, cap)
    assert (r.metrics.gaps, r.metrics.resyncs) == (1, 1)
    statuses = [rec for t, rec in sink.records if t == "status"]
    assert [s.status for s in statuses] == ["snapshot", "resync", "snapshot"]
    assert statuses[1].reason.startswith(reason)
    assert book_dict(r.scheme.books[native]) == ref.book


# ------------------------------------------------------------------------------------------------
# the rules one by one (synthetic messages in the documented shapes)


def spot_depth(U: int, u: int, b=(), a=(), s="BTCUSDT", E=1_700_000_000_000) -> dict:
    return {"stream": f"{s.lower()}@depth@100ms",
            "data": {"e": "depthUpdate", "E": E, "s": s, "U": U, "u": u, "b": [list(x) for x in b],
                     "a": [list(x) for x in a]}}


def fut_depth(U: int, u: int, pu: int, b=(), a=(), s="BTCUSDT", E=1_700_000_000_000) -> dict:
    return {"stream": f"{s.lower()}@depth@100ms",
            "data": {"e": "depthUpdate", "E": E, "T": E - 5, "s": s, "U": U, "u": u, "pu": pu,
                     "b": [list(x) for x in b], "a": [list(x) for x in a]}}


def snap(lid: int, bids=(("100.00", "1.0"),), asks=(("101.00", "2.0"),)) -> dict:
    return {"lastUpdateId": lid, "bids": [list(x) for x in bids], "asks": [list(x) for x in asks]}


SPOT_URL = "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000"
FUT_URL = "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000"


def test_updates_while_snapshot_in_flight_are_buffered_spot():
    h = Harness(BinanceSpotScheme)
    assert h.feed(spot_depth(10, 12, b=[("99.00", "5")])) == []
    assert h.conn.fetches == [SPOT_URL]  # asked once
    assert h.feed(spot_depth(13, 15, a=[("101.00", "0")])) == []
    assert h.feed(spot_depth(16, 16, b=[("100.00", "3")])) == []
    assert h.conn.fetches == [SPOT_URL]  # still in flight: not asked again
    out = h.rest(SPOT_URL, snap(14))  # covers [10, 12]; [13, 15] straddles 15
    assert out[0] == ("status", Status("binance", "BTC-USDT", "snapshot", "", 1_700_000_000_000, T0 // 1000))
    assert h.scheme.sync["BTCUSDT"].last == 16
    book = h.scheme.books["BTCUSDT"]
    assert book.levels(BID) == [("100.00", "3")]  # snapshot, then [16, 16] (as Binance wrote them)
    assert book.levels(ASK) == []  # removed by [13, 15]
    assert [r for t, r in out if t == "lob"] == [
        Lob("binance", "BTC-USDT", 100.0, 1.0, "buy", 1_700_000_000_000, T0 // 1000),
        Lob("binance", "BTC-USDT", 101.0, 2.0, "sell", 1_700_000_000_000, T0 // 1000),
        Lob("binance", "BTC-USDT", 101.0, 0.0, "sell", 1_700_000_000_000, T0 // 1000),
        Lob("binance", "BTC-USDT", 100.0, 3.0, "buy", 1_700_000_000_000, T0 // 1000),
    ]
    assert h.metrics.gaps == 0


def test_snapshot_older_than_buffered_stream_is_fetched_again():
    h = Harness(BinanceSpotScheme)
    h.feed(spot_depth(20, 25, b=[("99.00", "5")]))
    out = h.rest(SPOT_URL, snap(18))  # 18 + 1 < 20: the snapshot misses [19]
    assert out == [] and not h.scheme.sync["BTCUSDT"].live
    assert h.conn.fetches == [SPOT_URL, SPOT_URL]
    assert h.metrics.gaps == 0 and h.metrics.resyncs == 0
    out = h.rest(SPOT_URL, snap(19))  # [20, 25] continues it exactly
    assert [r.status for t, r in out if t == "status"] == ["snapshot"]
    assert h.scheme.sync["BTCUSDT"].last == 25


def test_snapshot_attempts_are_bounded():
    h = Harness(BinanceFuturesScheme)
    h.feed(fut_depth(100, 110, 99))
    for _ in range(BinanceFuturesScheme.max_snapshot_attempts - 1):
        h.rest(FUT_URL, snap(50))
    assert len(h.conn.fetches) == BinanceFuturesScheme.max_snapshot_attempts
    assert h.conn.reconnects == []
    h.rest(FUT_URL, snap(50))
    assert h.conn.reconnects == ["BTCUSDT: no usable depth snapshot"]
    assert h.metrics.errors.counts["binance-futures: snapshot attempts exhausted"] == 1


def test_spot_live_rules():
    h = Harness(BinanceSpotScheme)
    h.feed(spot_depth(5, 5))
    h.rest(SPOT_URL, snap(5))
    assert h.feed(spot_depth(6, 8, b=[("100.00", "2")]))[0][0] == "lob"
    assert h.feed(spot_depth(7, 8, b=[("100.00", "9")])) == []  # stale (u <= id): ignored
    assert h.metrics.gaps == 0
    out = h.feed(spot_depth(10, 12, b=[("100.00", "9")]))  # 9 missing
    assert [r for t, r in out] == [Status("binance", "BTC-USDT", "resync", "gap: U 10 != previous u 8 + 1",
                                          1_700_000_000_000, T0 // 1000)]
    assert h.metrics.gaps == 1 and h.conn.fetches == [SPOT_URL, SPOT_URL]
    assert len(h.scheme.books["BTCUSDT"]) == 0
    assert h.feed(spot_depth(13, 13, b=[("100.00", "4")])) == []  # buffered, not published
    out = h.rest(SPOT_URL, snap(11, bids=[("100.00", "7")]))  # straddled by the buffered [10, 12]
    # snapshot (2 levels, spread), [10, 12] (1 level, spread), [13, 13] (1 level, spread);
    # a frame's events reach the sink topic by topic
    assert [t for t, _ in out] == ["status"] + ["lob"] * 4 + ["spread"] * 3
    assert h.scheme.books["BTCUSDT"].levels(BID) == [("100.00", "4")]


def test_futures_first_event_must_straddle_snapshot():
    h = Harness(BinanceFuturesScheme)
    h.feed(fut_depth(100, 110, 99))
    h.feed(fut_depth(111, 120, 110))
    h.rest(FUT_URL, snap(120))  # drops u < 120; [111, 120] straddles (u == lastUpdateId)
    assert h.scheme.sync["BTCUSDT"].last == 120 and h.metrics.gaps == 0
    # pu chain from here
    assert h.feed(fut_depth(121, 125, 120, b=[("100.00", "2")]))[0][0] == "lob"
    out = h.feed(fut_depth(130, 131, 126))
    assert [r.reason for t, r in out] == ["gap: pu 126 != previous u 125"]
    # after a snapshot with nothing buffered the next event must straddle or continue it
    h2 = Harness(BinanceFuturesScheme)
    h2.feed(fut_depth(1, 2, 0))
    h2.rest(FUT_URL, snap(50))  # covers the buffered event; live with nothing applied yet
    assert h2.feed(fut_depth(40, 49, 39)) == []  # u < lastUpdateId: covered
    assert h2.feed(fut_depth(51, 60, 50, b=[("100.00", "2")]))[0][0] == "lob"  # pu == lastUpdateId: continues it
    h3 = Harness(BinanceFuturesScheme)
    h3.feed(fut_depth(1, 2, 0))
    h3.rest(FUT_URL, snap(50))
    out = h3.feed(fut_depth(55, 60, 53))  # starts after 50: something between is missing
    assert [r.status for t, r in out] == ["resync"] and h3.metrics.gaps == 1


def test_malformed_level_is_refused_before_the_book_is_touched():
    h = Harness(BinanceFuturesScheme)
    h.feed(fut_depth(1, 1, 0))
    h.rest(FUT_URL, snap(1, bids=[("100.00", "1"), ("99.00", "1")]))
    before = book_dict(h.scheme.books["BTCUSDT"])
    # the first level is fine, the second is not (digits beyond the scale): nothing applied
    out = h.feed(fut_depth(2, 3, 1, b=[("100.00", "5"), ("98.123456789", "1")]))
    assert [(t, r.status) for t, r in out] == [("status", "resync")]
    assert h.metrics.errors.counts["binance-futures: malformed book level"] == 1
    # the book was dropped by the resync, never half-updated (nothing of it was published)
    assert [t for t, _ in out if t == "lob"] == []
    assert before[0] == {Decimal("100.00"): 1, Decimal("99.00"): 1}
    for bad in ([["-1", "1"]], [["0", "1"]], [["1", "-2"]], [["nan", "1"]], [["1e400", "1"]], [["1", "1", "1"]],
                [[1, "1"]], [["", "1"]]):
        h = Harness(BinanceFuturesScheme)
        h.feed(fut_depth(1, 1, 0))
        h.rest(FUT_URL, snap(1))
        out = h.feed(fut_depth(2, 3, 1, b=bad))
        assert [r.status for t, r in out if t == "status"] == ["resync"], bad
        assert len(h.scheme.books["BTCUSDT"]) == 0 and h.metrics.errors.total == 1


def test_malformed_depth_while_buffering_empties_the_buffer():
    h = Harness(BinanceSpotScheme)
    h.feed(spot_depth(10, 12, b=[("99.00", "5")]))
    h.feed('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":"x","u":14,'
           '"b":[],"a":[]}}')
    assert h.scheme.sync["BTCUSDT"].buffer == []
    assert h.metrics.errors.counts["binance: malformed depth message"] == 1
    # the snapshot must now reach the next event itself
    h.feed(spot_depth(15, 16))
    h.rest(SPOT_URL, snap(12))  # 12 + 1 < 15: too old (the lost event is in between)
    assert not h.scheme.sync["BTCUSDT"].live
    h.rest(SPOT_URL, snap(14))
    assert h.scheme.sync["BTCUSDT"].last == 16


def test_rest_error_backs_off_then_asks_again():
    h = Harness(BinanceSpotScheme)
    h.feed(spot_depth(10, 12), recv_ns=T0)
    h.rest_error(SPOT_URL, RuntimeError("HTTP 429"), T0)
    h.feed(spot_depth(13, 13), recv_ns=T0 + 500_000_000)
    assert h.conn.fetches == [SPOT_URL]  # within the delay
    h.feed(spot_depth(14, 14), recv_ns=T0 + 3_000_000_000)
    assert h.conn.fetches == [SPOT_URL, SPOT_URL]
    h.rest(SPOT_URL, snap(11))
    assert h.scheme.sync["BTCUSDT"].last == 14


def test_reconnect_restarts_sync():
    h = Harness(BinanceSpotScheme)
    from atomfast.scheme import ConnectionPlan

    plan = ConnectionPlan(BinanceSpotScheme.ws_url, [("depth@100ms", ["BTCUSDT"])])
    h.conn.plan = plan
    h.feed(spot_depth(5, 5))
    h.rest(SPOT_URL, snap(5))
    assert h.scheme.sync["BTCUSDT"].live
    h.close("lost", T0)
    assert not h.scheme.sync["BTCUSDT"].live and "BTCUSDT" in h.scheme.unsynced
    h.feed(spot_depth(40, 41))  # new connection: buffer and ask
    assert h.conn.fetches == [SPOT_URL, SPOT_URL]
    h.rest(SPOT_URL, snap(40))
    assert h.scheme.sync["BTCUSDT"].live and "BTCUSDT" not in h.scheme.unsynced


def test_inline_snapshot_names_its_market():
    """hftbacktest's inline snapshot (url ""): the one market waiting; COIN-M's names itself."""
    h = Harness(BinanceDeliveryScheme)
    h.feed(fut_depth(1, 2, 0, s="BTCUSD_PERP"))
    h.feed(fut_depth(1, 2, 0, s="ETHUSD_PERP"))
    out = h.rest("", snap(1))  # two waiting, no symbol: cannot tell
    assert out == [] and h.metrics.errors.counts["binance-delivery: snapshot for an unknown market"] == 1
    body = dict(snap(1), symbol="ETHUSD_PERP", pair="ETHUSD")
    out = h.rest("", body)
    assert out[0] == ("status", Status("binance-delivery", "ETH-USD-PERP", "snapshot", "", 1_700_000_000_000,
                                       T0 // 1000))
    assert h.scheme.sync["ETHUSD_PERP"].live and not h.scheme.sync["BTCUSD_PERP"].live


def test_spread_from_own_book():
    h = Harness(BinanceSpotScheme)
    h.feed(spot_depth(1, 1))
    h.rest(SPOT_URL, snap(1))
    out = h.feed(spot_depth(2, 2, b=[("100.50", "1")]))
    assert out[-1] == ("spread", Spread("binance", "BTC-USDT", 100.5, 1.0, 101.0, 2.0, 1_700_000_000_000, T0 // 1000))
    out = h.feed(spot_depth(3, 3, b=[("90.00", "1")]))  # below the top: no spread
    assert [t for t, _ in out] == ["lob"]


#: REST snapshot bodies (futures, BTCUSDT, lastUpdateId 1) whose levels the book reads from the
#: JSON text, or which the text path hands to the decoder: each must give what the decoded levels
#: give (records, counted errors, the book)
_SNAPSHOT_LEVELS = [
    '[["100.00","1.0"],["99.50","2"]]',
    ' [ [ "100.00" , "1.0" ] ,\n\t[ "99.50" , "2" ] ] ',
    '[]',
    '[["100.00","0"]]',                          # size 0 in a snapshot: applied as the lists are
    '[["\\u0031\\u0030\\u0030.00","1.0"]]',      # escapes: decoded ("100.00")
    '[["100.00","1.0","x"]]',                    # three items: a malformed snapshot
    '[["100.00"]]',
    '[[100.00,"1.0"]]',                          # a number, not a string
    '[["100.00","1.0"],]',                       # not JSON
    'null',
    '[["-100.00","1.0"]]',                       # refused by the book: it says why
    '[["0","1.0"]]',
    '[["100.001","1.0"]]',                       # beyond the book's decimals
    '[["1e2","1.0"]]',
    '[["100.00","9007199254740993"]]',           # 2**53 ticks and more: rows from the text
    '[["100.00","1.0\u00e9"]]',                  # not ASCII
    '[["100.00","1.0"]] x',
]


class _NoText:
    """A snapshot text decoder that refuses everything (the reference: levels decoded)."""

    @staticmethod
    def decode(body: bytes):
        raise msgspec.ValidationError("text path off")


@pytest.mark.parametrize("bids", _SNAPSHOT_LEVELS)
def test_snapshot_levels_read_from_the_text_as_decoded(bids, monkeypatch):
    def run(text_path: bool):
        if not text_path:  # no text read: every snapshot decoded with its levels
            monkeypatch.setattr(m, "snapshot_text", _NoText())
            monkeypatch.setattr(binance_handler, "_snapshot_as_sent", lambda body: None)
        h = Harness(BinanceFuturesScheme)
        h.feed(fut_depth(1, 1, 0))
        body = '{"lastUpdateId":1,"E":1700000000000,"T":1700000000000,"bids":' + bids + ',"asks":[["101.00","2.0"]]}'
        out = h.rest(FUT_URL, body.encode())
        monkeypatch.undo()
        book = h.scheme.books.get("BTCUSDT")
        return (out, dict(h.metrics.errors.counts), h.reports, h.conn.fetches,
                None if book is None else (book.levels(BID), book.levels(ASK)))

    assert run(True) == run(False)


def test_json_levels_and_check_json_sides():
    from atomfast._book import L2Book, json_levels

    assert json_levels(b'[["1.5","2"]]') and json_levels(b" [ ] ") and json_levels(msgspec.Raw(b'[["1","2"]]'))
    for text in (b"", b"[", b'[["1","2"]', b'[["1",2]]', b'[["1","2","3"]]', b'[["1\\n","2"]]', b"{}"):
        assert not json_levels(text), text
    book = L2Book(2, 3)
    assert book.check_json_sides(b'[["100.5","1"],["99","0.25"]]', b'[["101","2.125"]]')
    rows: list = []
    with pytest.raises(ValueError):  # not the texts it read
        book.apply_json_sides(BID, b'[["100.5","1"]]', b"[]", rows, Lob, "x", "X", 1, 2)
    first, second = b'[["100.5","1"]]', b'[["101","2.125"]]'
    assert book.check_json_sides(first, second)
    book.apply_json_sides(BID, first, second, rows, Lob, "x", "X", 1, 2)
    ref: list = []
    L2Book(2, 3).apply_sides(BID, [("100.5", "1")], [("101", "2.125")], ref, Lob, "x", "X", 1, 2)
    assert rows == ref and book.levels(BID) == [("100.5", "1")] and book.levels(ASK) == [("101", "2.125")]
    assert not book.check_json_sides(b'[["100.555","1"]]', b"[]")  # refused: the caller decodes


@pytest.mark.parametrize("bids", [
    b'[["100.00","9007199254740993"]]',                 # beyond int64 at 8 decimals: refused
    b'[["100.00","332200000"],["99.5","1.5"]]',         # 2**53 ticks and more (Binance's deep levels)
    b'[["90071992.54740993","1"],["90071992.54740992","90071992.54740994"]]',
    b'[["100","92233720368.54775807"]]', b'[["100","92233720368.54775808"]]',
    b'[["1e3","1e10"]]', b'[["100.00","90071992.5474099312"]]', b'[["-1","2"]]', b'[["1",2]]', b"[]",
])
def test_check_json_sides_wide_as_the_decoded_levels(bids):
    """``check_json_sides_wide``: levels of 2**53 ticks or more read from the text, their rows'
    floats from the strings: the same flags, rows and book as ``check_sides``/``apply_sides`` of
    the decoded levels; refused where those refuse."""
    from atomfast._book import SHAPES, AvroRows, L2Book

    asks = b'[["101","2"],["102","123456789"]]'

    for avro in (False, True):
        book, ref = L2Book(8, 8), L2Book(8, 8)
        rows, ref_rows = (AvroRows(b"p", SHAPES["lob"]), AvroRows(b"p", SHAPES["lob"])) if avro else ([], [])
        b, a = msgspec.Raw(bids), msgspec.Raw(asks)
        read = book.check_json_sides_wide(b, a)
        try:
            levels = m.levels.decode(bids), m.levels.decode(asks)
            ref.check_sides(*levels)
        except (ValueError, msgspec.ValidationError):
            levels = None
        assert read == (levels is not None), bids
        if not read:
            continue
        flags = book.apply_json_sides(BID, b, a, rows, Lob, "x", "X", 1, 2)
        assert flags == ref.apply_sides(BID, levels[0], levels[1], ref_rows, Lob, "x", "X", 1, 2)
        assert (rows.take() == ref_rows.take()) if avro else (rows == ref_rows)
        assert book.levels(BID) == ref.levels(BID) and book.levels(ASK) == ref.levels(ASK)


class _LevelsDecoded(BinanceFuturesScheme):
    """USD-M with its depth frames decoded with their levels (``DepthFrame``), as before the
    route read them from the text: the reference of ``test_depth_levels_read_from_the_text_as_decoded``."""

    dispatch = copy.copy(BinanceFuturesScheme.dispatch)
    dispatch.decoders = {**BinanceFuturesScheme.dispatch.decoders, ord("d"): m.depth_frame_levels}


def _depth_text(U: int, u: int, pu: int, bids: str, s: str = "BTCUSDT") -> str:
    return (f'{{"stream":"{s.lower()}@depth@100ms","data":{{"e":"depthUpdate","E":1700000000000,'
            f'"T":1700000000000,"s":"{s}","U":{U},"u":{u},"pu":{pu},"b":{bids},"a":[["101.00","0"]]}}}}')


@pytest.mark.parametrize("bids", _SNAPSHOT_LEVELS + ['[["100.00","1.0"],["99.00","0"]]', '[[]]', '"x"'])
def test_depth_levels_read_from_the_text_as_decoded(bids):
    def run(scheme_cls):
        h = Harness(scheme_cls)
        h.feed(_depth_text(1, 1, 0, '[]'))
        h.rest(FUT_URL, snap(1, bids=[("100.00", "1.0"), ("99.00", "1")]))
        out = [h.feed(_depth_text(2, 3, 1, bids)),            # live: applied (or refused)
               h.feed(_depth_text(4, 5, 3, bids)),            # the next (or, after a refusal, buffered)
               h.feed(_depth_text(1, 1, 0, bids)),            # stale
               h.feed(_depth_text(7, 8, 6, bids, "ETHUSDT"))]  # a market without sync state
        st = h.scheme.sync["BTCUSDT"]
        book = h.scheme.books.get("BTCUSDT")
        return (out, dict(h.metrics.errors.counts), h.reports, h.conn.fetches, h.metrics.gaps, st.live, st.last,
                len(st.buffer), None if book is None else (book.levels(BID), book.levels(ASK)))

    assert run(BinanceFuturesScheme) == run(_LevelsDecoded)


def test_snapshot_url_and_its_symbol_as_urllib_makes_and_reads_them():
    """``snapshot_url`` writes a plain market name itself and ``_native_of_url`` reads it back
    without urllib: both as ``RestEndpoint.url`` (urlencode) and ``parse_qs`` give them."""
    from urllib.parse import parse_qs, urlsplit

    def ref(url: str) -> str:
        return (parse_qs(urlsplit(url).query).get("symbol") or [""])[0] if url else ""

    scheme = BinanceFuturesScheme(lambda *a: None)
    endpoint = scheme.rest_endpoint
    for native in ("BTCUSDT", "BTCUSD_PERP", "btc_usdt", "a b", "X%Y", "A+B", "\u00c4B", ""):
        url = scheme.snapshot_url(native)
        assert url == endpoint.url(endpoint.routes.snapshot, symbol=native, limit=scheme.snapshot_limit)
        assert scheme._native_of_url(url) == ref(url), url
    for url in ("https://x/y?symbol=AB&limit=1", "https://x/y?limit=1&symbol=AB", "https://x/y?symbol=&symbol=CD",
                "https://x/y#?symbol=AB", "https://x?a=1?symbol=AB", "https://x/y?symbol=A+B", "https://x/y?symbol=A%42",
                "", "https://x/y?symbol=AB#frag", "https://x/y?symbol=AB;x=1", "https://x/y?symbol=A\tB"):
        assert scheme._native_of_url(url) == ref(url), url


_AS_SENT = [
    b'{"lastUpdateId":1,"bids":[["1.5","2"]],"asks":[["1.6","3"]]}',
    b'{"lastUpdateId":1,"E":2,"T":3,"bids":[],"asks":[]}',
    b'{"lastUpdateId":0,"E":0,"T":0,"symbol":"BTCUSD_PERP","pair":"BTCUSD","bids":[["1","2"]],"asks":[]}',
    b'{"lastUpdateId":999999999999999999,"E":1,"T":2,"bids":[["1","2"]],"asks":[["3","4"]]}',
    b'{"lastUpdateId":9999999999999999999,"bids":[["1","2"]],"asks":[["3","4"]]}',  # 19 digits: decoded
    b'{"lastUpdateId":01,"bids":[],"asks":[]}',                                        # not JSON
    b'{"lastUpdateId":-1,"bids":[],"asks":[]}',
    b'{"lastUpdateId":1,"E":2,"bids":[],"asks":[]}',                                   # E without T: decoded
    b'{"lastUpdateId":1,"pair":"X","bids":[],"asks":[]}',
    b'{"lastUpdateId":1,"bids":[["1","],\\"asks\\":"]],"asks":[["3","4"]]}',        # escapes
    b'{"lastUpdateId":1,"bids":[["1","2"]],"asks":[["3","4"]],"asks":[["5","6"]]}',    # asks twice
    b'{"lastUpdateId":1,"bids":[["1","2"]],"asks":[["3","4"]],"x":[]}',
    b'{"lastUpdateId":1,"bids":[["1","2"]] ,"asks":[["3","4"]]}',
    b'{"lastUpdateId":1,"bids":[["1","2"]],"asks":[["3","4"]]} ',
    b'{"lastUpdateId":1,"bids":[["1","2"]],"asks":[["3","4"]]}}',
    b'{"lastUpdateId":1,"bids":[["1","2"],"asks":[["3","4"]]}',
    b'{"lastUpdateId":1,"bids":[["1","2"]]],"asks":[["3","4"]]}',
    b'{"lastUpdateId":1,"bids":[["1","2"]],"asks":[["3","4"]],"bids":[]}',
    b'{"lastUpdateId":1,"bids":[["1","2"]],"asks":[["3","332200000"]]}',
]


@pytest.mark.parametrize("body", _AS_SENT)
def test_snapshot_read_as_sent_as_decoded(body):
    """``_snapshot_as_sent`` (no JSON decoder) where the book then reads both sides: the values
    ``snapshot_text`` decodes (which must accept the text) and the same sides' texts; else the
    text goes to the decoder."""
    from atomfast._book import L2Book

    snap = binance_handler._snapshot_as_sent(body)
    if snap is None or not L2Book(8, 8).check_json_sides_wide(snap.bids, snap.asks):
        return
    ref = m.snapshot_text.decode(body)
    assert (snap.lastUpdateId, snap.E, snap.T, snap.symbol) == (ref.lastUpdateId, ref.E, ref.T, ref.symbol)
    assert bytes(snap.bids) == bytes(ref.bids) and bytes(snap.asks) == bytes(ref.asks)

