"""Binance European options (``binance-options``) on the current documentation's messages.

No recording of the current options protocol exists (fstream's routed ``/public`` and ``/market``
endpoints; the public test suites hold only the retired nbstream shapes), so the tests read
``tests/data/binance_options/``: the documentation's example messages in cryptofeed's capture
format (its README names the source of every line: the Diff Book Depth, Trade, Kline, Open
Interest and Order Book examples of developers.binance.com "Options Trading", the book ticker of
Binance's own Go connector tests; the three diffs after the documented one are DERIVED: their ids
chain from it, their levels and times are documented values).

Verification under test: the USD-M diff procedure the documented fields carry (``pu`` = previous
``u``; the first diff after the REST snapshot straddles its ``u``). Fault tests drop, repeat and
swap one diff of the capture: the gap is counted, a status ``resync`` names it, a snapshot is
fetched, and the book rebuilt from it equals an independent reference (``RefBook``) fed the
messages in their true order. The rebuild's snapshot is what the REST answer would hold at that
point: the reference's levels, ``u`` = the last diff's.
"""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from atomfast.capture import RECV, open_capture
from atomfast.events import Candle, Lob, OpenInterest, Spread, Ticker, Trade
from atomfast.exchanges import scheme_for
from atomfast.exchanges.binance_options import BinanceOptionsScheme
from atomfast.exchanges.binance_options.parse import guess_instrument, parse_listing, split_name, strike_text
from atomfast.replay import Replay
from atomfast.scheme import ConnectionPlan
from atomfast.testing import (ROOT, Harness, MemorySink, RefBook, SimProcess, book_dict, capture_frames,
                              capture_instruments, check_events, cli_summary, run_cli)

DATA = ROOT / "tests" / "data" / "binance_options"
CAPTURE = DATA / "BINANCE_OPTIONS.ws.1.0"
NATIVE = "BTC-251123-126000-C"
SYMBOL = "BTC-USDT-20251123-126000-C"
SNAP_URL = f"https://eapi.binance.com/eapi/v1/depth?symbol={NATIVE}&limit=1000"
X = "binance-options"


def received() -> list[tuple[int, bytes]]:
    return [(f.ts_ns, f.data) for f in capture_frames(CAPTURE) if f.kind == RECV]


def recorded_snapshot() -> bytes:
    return open_capture(CAPTURE).rest_body(SNAP_URL)


def depth_frames() -> list[tuple[int, bytes]]:
    return [(ts, d) for ts, d in received() if b"@depth@" in d[:60]]


def harness() -> Harness:
    return Harness(BinanceOptionsScheme, capture_instruments(CAPTURE, BinanceOptionsScheme))


# --- symbols and the listing ---------------------------------------------------------------------
def test_listing_and_symbols():
    listed = capture_instruments(CAPTURE, BinanceOptionsScheme)
    inst = listed["BTC-220815-50000-C"]
    assert inst.symbol == "BTC-USDT-20220815-50000-C"  # quote: the listing's quoteAsset
    assert (inst.kind, inst.base, inst.quote, inst.expiry) == ("option", "BTC", "USDT", "20220815")
    assert (inst.price_decimals, inst.size_decimals) == (8, 8)  # scale 2, tick 0.01: the 8-decimal floor
    assert set(BinanceOptionsScheme.default_symbols) <= {i.symbol for i in listed.values()}
    # DESIGN.md's example; a name the listing lacks is read as USDT-quoted (every Binance option is)
    assert guess_instrument("BTC-261225-100000-C").symbol == "BTC-USDT-20261225-100000-C"
    assert guess_instrument("ETH-221125-2700-P").symbol == "ETH-USDT-20221125-2700-P"
    assert split_name("DOGE-260327-0.25-C") == ("DOGE", "20260327", "0.25", "C")
    assert strike_text("100000.00000000") == "100000"
    for bad in ("BTC-261325-100000-C", "BTC-261225-100000-X", "BTCUSDT", "BTC-261225--C", "", 7):
        with pytest.raises(KeyError):
            split_name(bad)
    # a listed row whose strike the listing writes with decimals
    body = json.dumps({"optionContracts": [{"underlying": "ETHUSDT", "baseAsset": "ETH", "quoteAsset": "USDT"}],
                       "optionSymbols": [{"symbol": "ETH-260925-2500-P", "underlying": "ETHUSDT",
                                          "strikePrice": "2500.00000000", "side": "PUT", "expiryDate": 1790323200000,
                                          "priceScale": 1, "quantityScale": 2}]}).encode()
    assert parse_listing(body)["ETH-260925-2500-P"].symbol == "ETH-USDT-20260925-2500-P"


def test_scheme_is_registered_for_both_endpoints():
    assert scheme_for(X) is BinanceOptionsScheme
    assert scheme_for(X, "wss://fstream.binance.com/public/stream") is BinanceOptionsScheme


def test_plan_routes_public_and_market_streams():
    h = Harness(BinanceOptionsScheme, capture_instruments(CAPTURE, BinanceOptionsScheme),
                symbols=["BTC-USDT-20220815-50000-C"])
    plans = h.scheme.plan()
    assert [(p.url, [c for c, _ in p.subscriptions]) for p in plans] == [
        ("wss://fstream.binance.com/public/stream", ["depth@100ms", "optionTrade", "bookTicker"]),
        ("wss://fstream.binance.com/market/stream", ["kline_1m", "openInterest"]),
    ]
    assert [json.loads(m) for m in h.scheme.subscribe_plan(plans[0])] == [
        {"method": "SUBSCRIBE", "id": 1, "params": ["btc-220815-50000-c@depth@100ms", "btc-220815-50000-c@optionTrade",
                                                    "btc-220815-50000-c@bookTicker"]}]
    assert json.loads(h.scheme.subscribe_plan(plans[1])[0])["params"] == [
        "btc-220815-50000-c@kline_1m", "btcusdt@openInterest@220815"]
    # a local endpoint takes every stream on one connection
    (one,) = h.scheme.plan("ws://127.0.0.1:9/")
    assert len(one.subscriptions) == 5


# --- the capture: exact values ---------------------------------------------------------------
class Reference:
    """An independent model of the capture: the book (``RefBook``) fed the snapshot then the
    diffs, counting the level changes (lob events) and the top-of-book changes (spread events)."""

    def __init__(self) -> None:
        self.book = RefBook()
        self.lob = self.spread = 0
        self.tops: list[tuple] = []

    def _top(self) -> None:
        top = self.book.top()
        if not self.tops or self.tops[-1] != top:
            self.tops.append(top)
            self.spread += 1

    def snapshot(self, body: dict) -> None:
        self.lob += self.book.load("b", body["bids"]) + self.book.load("a", body["asks"])
        self._top()

    def diff(self, data: dict) -> None:
        for side in ("b", "a"):
            for price, size in data[side]:
                self.lob += self.book.set(side, price, size)
        self._top()


def reference(frames: list[tuple[int, bytes]]) -> Reference:
    ref = Reference()
    ref.snapshot(json.loads(recorded_snapshot()))
    for _ts, d in frames:
        ref.diff(json.loads(d)["data"])
    return ref


def test_replay_exact_values():
    sink = MemorySink()
    r = Replay(open_capture(CAPTURE), X, sink, scheme_cls=BinanceOptionsScheme)
    r.run()
    check_events(sink.records)
    ref = reference(depth_frames())
    s = r.metrics.summary()
    assert s["frames"] == 9 == len(received())
    assert s["events"] == {"status": 3, "lob": ref.lob, "spread": ref.spread, "trades": 1, "ticker": 1, "candle": 1,
                           "open_interest": 1}
    assert (ref.lob, ref.spread) == (7, 4)
    assert (s["gaps"], s["resyncs"], s["errors"]) == (0, 0, 0)
    assert r.unanswered == []
    assert [(x.status, x.reason) for x in sink.events("status")] == [
        ("connected", "wss://fstream.binance.com/public/stream"), ("subscribed", "request 1"), ("snapshot", "")]
    us = 1762866729_200000  # the first depth frame's receive time: the snapshot is answered after it
    assert sink.events("lob") == [
        Lob(X, SYMBOL, 1000.0, 0.9, "buy", 1589436922972, us),  # the REST snapshot (T)
        Lob(X, SYMBOL, 1100.0, 0.1, "sell", 1589436922972, us),
        Lob(X, SYMBOL, 1100.0, 0.6, "buy", 1762866729358, us),  # the documented diff (T), buffered
        Lob(X, SYMBOL, 1300.0, 0.6, "sell", 1762866729358, us),
        Lob(X, SYMBOL, 1100.0, 0.0, "sell", 1762866729358, 1762866729_300000),
        Lob(X, SYMBOL, 1000.0, 0.0, "buy", 1762866729358, 1762866729_400000),
        Lob(X, SYMBOL, 1200.0, 0.3, "buy", 1762867543321, 1762866729_500000),
    ]
    spreads = sink.events("spread")
    assert [sp[2:6] for sp in spreads] == [(1000.0, 0.9, 1100.0, 0.1), (1100.0, 0.6, 1100.0, 0.1),
                                           (1100.0, 0.6, 1300.0, 0.6), (1200.0, 0.3, 1300.0, 0.6)]
    assert [tuple(map(float, t)) for t in ref.tops] == [sp[2:6] for sp in spreads]
    # the final top is the Mark Price example's best bid/ask of this option (bo/bq, ao/aq)
    assert spreads[-1] == Spread(X, SYMBOL, 1200.0, 0.3, 1300.0, 0.6, 1762867543321, 1762866729_500000)
    assert book_dict(r.scheme.books[NATIVE]) == ({Decimal("1200"): Decimal("0.3"), Decimal("1100"): Decimal("0.6")},
                                                  {Decimal("1300"): Decimal("0.6")})
    assert sink.events("trades") == [Trade(X, SYMBOL, 1300.0, 0.1, "buy", "4", 1762856064203, 1762866729_600000)]
    assert sink.events("ticker") == [Ticker(X, "BTC-USDT-20251226-110000-C", 5000.0, 0.2, 5100.0, 0.1, 1763041762942,
                                            1762866729_700000)]
    assert sink.events("candle") == [Candle(X, "BTC-USDT-20200630-9000-P", 1638747660000, 1638747720000, "1m", 0,
                                            False, 1000.0, 1000.0, 1000.0, 1000.0, 0.0, 1638747660000,
                                            1762866729_800000)]
    assert sink.events("open_interest") == [OpenInterest(X, "ETH-USDT-20221125-2700-C", 1580.87, 1668759300045,
                                                         1762866729_900000)]


def test_trade_side_from_maker_flag_or_direction():
    h = harness()
    base = {"e": "trade", "E": 1762856064204, "T": 1762856064203, "s": NATIVE, "t": "4", "p": "1300.000",
            "q": "0.1000", "X": "MARKET"}
    for extra, side in (({"m": True}, "sell"), ({"m": False, "S": "SELL"}, "buy"), ({"S": "SELL"}, "sell"),
                        ({"S": "BUY"}, "buy")):
        out = h.feed({"stream": "btc-251123-126000-c@optionTrade", "data": {**base, **extra}})
        assert [(r.taker_side, r.trade_id) for _, r in out] == [(side, "4")]
    assert h.feed({"stream": "btc-251123-126000-c@optionTrade", "data": base}) == []  # no side: refused
    assert h.reports[-1][0] == "binance-options: malformed trade"


# --- the sync rule: faults on the capture's messages -----------------------------------------
def rebuild_snapshot(frames: list[tuple[int, bytes]]) -> bytes:
    """What ``/eapi/v1/depth`` would answer after ``frames``: the reference book's levels, ``u`` =
    the last diff's."""
    ref = reference(frames)
    last = json.loads(frames[-1][1])["data"]
    return json.dumps({"T": last["T"], "u": last["u"], "bids": [list(x) for x in ref.book.ordered("b")],
                       "asks": [list(x) for x in ref.book.ordered("a")]}).encode()


def live_harness() -> tuple[Harness, list[tuple[int, bytes]]]:
    """A harness whose book is live after the first documented diff (snapshot u=464)."""
    h = harness()
    h.open()
    d = depth_frames()
    h.feed_all(d[:1])
    assert h.conn.fetches == [SNAP_URL]
    h.rest(SNAP_URL, recorded_snapshot())
    assert h.scheme.sync[NATIVE].live and h.scheme.sync[NATIVE].last == 465
    return h, d


@pytest.mark.parametrize("fault,fed,reason,rebuilt_after", [
    ("drop", [2, 3], "gap: pu 466 != previous u 465", 2),  # d2 lost: d3 does not follow d1
    ("duplicate", [1, 1, 2, 3], "gap: pu 465 != previous u 466", 2),  # d2 twice: the copy breaks the chain
    ("reorder", [2, 1, 3], "gap: pu 466 != previous u 465", 3),  # d3 before d2
])
def test_sync_faults(fault, fed, reason, rebuilt_after):
    h, d = live_harness()
    before = len(h.records)
    h.feed_all([d[i] for i in fed])
    m = h.metrics
    assert (m.gaps, m.resyncs, m.errors.total) == (1, 1, 0), fault
    statuses = [r for t, r in h.records[before:] if t == "status"]
    assert [(s.symbol, s.status, s.reason) for s in statuses] == [(SYMBOL, "resync", reason)]
    assert h.conn.fetches == [SNAP_URL, SNAP_URL]  # a fresh snapshot asked for
    assert NATIVE in h.scheme.unsynced and len(h.scheme.books[NATIVE]) == 0  # dropped, nothing published
    after_resync = h.records[before:]
    assert [t for t, _ in after_resync[after_resync.index(("status", statuses[0])) + 1:]] == []
    # the snapshot the REST answer holds at that point rebuilds it (the buffered diffs it covers
    # are dropped, the rest applied), equal to the reference fed the true order
    h.rest(SNAP_URL, rebuild_snapshot(d[:rebuilt_after + 1]))
    assert h.scheme.sync[NATIVE].live and not h.scheme.unsynced
    ref = reference(d)
    assert book_dict(h.scheme.books[NATIVE]) == ({p: s for p, s in ref.book.levels("b")},
                                                 {p: s for p, s in ref.book.levels("a")})
    assert h.scheme.sync[NATIVE].last == 468
    assert [r.status for t, r in h.records if t == "status"][-1] == "snapshot"
    assert (m.gaps, m.resyncs, m.errors.total) == (1, 1, 0)


def test_first_diff_must_reach_the_snapshot():
    """A snapshot older than the buffered stream (its u before the first diff's pu) is not used:
    another is fetched; one newer than every buffered diff drops them all."""
    h = harness()
    h.feed_all(depth_frames()[:2])  # d1, d2 buffered
    old = json.loads(recorded_snapshot())
    old["u"] = 463
    assert h.rest(SNAP_URL, json.dumps(old)) == []
    assert h.conn.fetches == [SNAP_URL, SNAP_URL] and not h.scheme.sync[NATIVE].live
    h.rest(SNAP_URL, rebuild_snapshot(depth_frames()[:2]))  # u=466: covers d1 and d2
    assert h.scheme.sync[NATIVE].live and h.scheme.sync[NATIVE].last == 466
    h.feed_all(depth_frames()[2:])
    assert h.scheme.sync[NATIVE].last == 468 and h.metrics.gaps == 0


def test_malformed_level_resyncs_without_touching_the_book():
    h, d = live_harness()
    levels = book_dict(h.scheme.books[NATIVE])
    bad = json.loads(d[1][1])
    bad["data"]["a"] = [["1300.000", "0.5"], ["-5", "1"]]
    out = h.feed(bad)
    assert [t for t, _ in out] == ["status"] and out[0][1].status == "resync"
    assert out[0][1].reason.startswith("malformed book level")
    assert h.metrics.gaps == 0 and h.metrics.resyncs == 1
    assert levels != ({}, {}) and len(h.scheme.books[NATIVE]) == 0  # dropped whole, not half applied
    assert h.conn.fetches == [SNAP_URL, SNAP_URL]


def test_bad_input_is_counted():
    h, _ = live_harness()
    cases = [
        (b"not json", "malformed JSON"),
        (b'{"stream":"btc-251123-126000-c@optionMarkPrice","data":[]}', "unknown stream"),
        (b'{"error":{"code":2,"msg":"Invalid request"},"id":3}', "exchange error"),
        (b'{"stream":"btc-251123-126000-c@optionTrade","data":{"s":1}}', "malformed trade message"),
        (b'{"stream":"btc-251226-110000-c@bookTicker","data":{"s":"BTC-251226-110000-C","b":"x","B":"1","a":"2",'
         b'"A":"1"}}', "malformed ticker"),
        (b'{"stream":"nope@optionTrade","data":{"s":"NOPE","t":1,"p":"1","q":"1","T":1,"m":true}}', "unknown option"),
        (b'{"stream":"ethusdt@openInterest@221125","data":[{"E":1,"s":"ETH-221125-2700-C","o":"NaN"}]}',
         "malformed openInterest"),
        (b'[1,2]', "unknown message"),
    ]
    for data, kind in cases:
        assert h.feed(data) == [], kind
        assert h.reports[-1][0] == f"binance-options: {kind}", (kind, h.reports[-1])
    # a depth frame its decoder refuses is a lost diff: the live book resyncs
    out = h.feed(b'{"stream":"btc-251123-126000-c@depth@100ms","data":{"s":"BTC-251123-126000-C"}}')
    assert [(r.status, r.reason) for _, r in out] == [("resync", "malformed book message")]
    assert h.reports[-1][0] == "binance-options: malformed depth message"


def test_reconnect_suspends_the_book():
    h, d = live_harness()
    h.conn.plan = ConnectionPlan(h.conn.url, [("depth@100ms", [NATIVE]), ("optionTrade", [NATIVE])])
    h.close()
    assert not h.scheme.sync[NATIVE].live
    h.feed_all(d[1:2])  # the next connection's first diff asks for a snapshot
    assert h.conn.fetches == [SNAP_URL, SNAP_URL]


# --- simulate + run --endpoint ---------------------------------------------------------------
def test_simulator_and_run_endpoint():
    """``atomfast simulate`` serving the capture (websocket and the recorded REST answers) +
    ``atomfast run --exchange binance-options --endpoint ws://...`` publishes what the replay does."""
    replay = Replay(open_capture(CAPTURE), X, MemorySink(), scheme_cls=BinanceOptionsScheme)
    replay.run()
    offline = replay.metrics.summary()
    # recorded pace (0.1 s between frames): the depth snapshot (a REST request to the simulator)
    # comes back before the next diff, as it would live; no --symbols: the default symbol (the
    # listing's) is subscribed, and the capture's frames are read whatever their option
    with SimProcess(CAPTURE, "--pace", "recorded") as sim:
        r = run_cli("run", "--exchange", X, "--endpoint", sim.url, "--sink", "stdout", "--max-frames",
                    offline["frames"], timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    s = cli_summary(r.stderr)
    assert (s["frames"], s["gaps"], s["resyncs"], s["errors"]) == (9, 0, 0, 0)
    for topic in ("lob", "spread", "trades", "ticker", "candle", "open_interest"):
        assert s["events"].get(topic, 0) == offline["events"][topic], topic
    lobs = [json.loads(ln) for ln in r.stdout.splitlines() if ln and json.loads(ln)["topic"] == "lob"]
    assert [(x["price"], x["size"], x["side"]) for x in lobs] == [
        (1000.0, 0.9, "buy"), (1100.0, 0.1, "sell"), (1100.0, 0.6, "buy"), (1300.0, 0.6, "sell"),
        (1100.0, 0.0, "sell"), (1000.0, 0.0, "buy"), (1200.0, 0.3, "buy")]
