"""Phemex schemes: ``phemex`` (spot and the scaled "Perpetual" contracts) and ``phemex-futures``
(USDT-M perpetuals on the ``_p`` channels, and the 24-hour pack).

Data:

- ``cryptofeed/PHEMEX.ws.1.0`` (recorded 2021-07-03 on ``wss://phemex.com/ws``): ``orderbook``
  and ``trade`` of 5 spot pairs (``sGRTUSDT``, ...) and 5 USD-settled contracts (``YFIUSD``,
  ...), scaled integers; every book's snapshot, 1324 incremental messages and, for three spot
  pairs, the 60-second periodic snapshot. ``PHEMEX.0`` holds the products listing (scales).
  It is checked against an independent model below: the raw JSON, scaled with the scales read
  from the raw listing (``Decimal.scaleb``), into ``atomfast.testing.RefBook``.
- ``tests/data/phemex/PHEMEX_FUTURES.ws.1.0`` (+ ``PHEMEX_FUTURES.0``): the documented USDT-M
  messages of Public-Hedged-Perpetual-API.md (github.com/phemex/phemex-api-docs:
  ``orderbook_p`` incremental samples, the ``/md/v2/orderbook`` snapshot result, ``trades_p``,
  ``kline_p``, ``perp_market24h_pack_p`` samples) in the capture format, and the
  ``/public/products`` answer documented in ccxt's phemex.ts (fetchMarkets). The receive times
  in that file are the messages' own times (the docs give none).
"""
from __future__ import annotations

import functools
import json
from decimal import Decimal

import pytest

from atomfast.book import ASK, BID
from atomfast.capture import open_capture
from atomfast.events import Candle, FundingRate, Lob, OpenInterest, Spread, Status, Trade
from atomfast.exchanges.phemex import PhemexFuturesScheme, PhemexScheme
from atomfast.exchanges.phemex.parse import guess_instrument, parse_products, scaled_float, scaled_text
from atomfast.metrics import Metrics
from atomfast.replay import Replay
from atomfast.testing import (ROOT, T0, Harness, MemorySink, RefBook, capture_instruments, decimal_levels,
                              fixture_path, recv_frames)

CAPTURE = "cryptofeed/PHEMEX.ws.1.0"
FUTURES = ROOT / "tests" / "data" / "phemex" / "PHEMEX_FUTURES.ws.1.0"
EX = "phemex"


@functools.lru_cache(maxsize=1)
def frames() -> tuple:
    return tuple(recv_frames(CAPTURE))


def listing() -> dict:
    return capture_instruments(CAPTURE, PhemexScheme)


@functools.lru_cache(maxsize=1)
def raw_scales() -> dict[str, tuple[int, int]]:
    """(price scale, size scale) per market, read from the raw recorded listing (the model's own
    reading of Phemex's docs: spot prices scale 8, sizes the base currency's valueScale;
    contracts their priceScale, sizes in contracts)."""
    line = fixture_path("cryptofeed/PHEMEX.0").read_text().splitlines()[0]
    data = json.loads(line.split(": ", 1)[1])["data"]
    value = {c["currency"]: c["valueScale"] for c in data["currencies"]}
    out = {}
    for p in data["products"]:
        if p["type"] == "Spot":
            out[p["symbol"]] = (8, value[p["baseCurrency"]])
        else:
            out[p["symbol"]] = (p["priceScale"], 0)
    return out


def text(n: int, scale: int) -> str:
    return str(Decimal(n).scaleb(-scale))


class Model:
    """The capture's books, trades and counts, from the raw JSON (nothing of the scheme)."""

    def __init__(self, msgs) -> None:
        scales = raw_scales()
        self.books: dict[str, RefBook] = {}
        self.seq: dict[str, int] = {}
        self.lob = self.spread = self.snapshots = self.verified = self.trades = 0
        for msg in msgs:
            sym = msg.get("symbol")
            if "trades" in msg:
                if msg["type"] == "incremental":
                    self.trades += len(msg["trades"])
                continue
            if "book" not in msg:
                continue
            ps, ss = scales[sym]
            bids = [(text(p, ps), text(s, ss)) for p, s in msg["book"]["bids"]]
            asks = [(text(p, ps), text(s, ss)) for p, s in msg["book"]["asks"]]
            if msg["type"] == "snapshot" and sym in self.books:
                ref = self.books[sym]
                assert ref.levels("b") == sorted(decimal_levels(bids), reverse=True)
                assert ref.levels("a") == sorted(decimal_levels(asks))
                self.verified += 1
                continue
            if msg["type"] == "snapshot":
                ref = self.books[sym] = RefBook()
                self.snapshots += 1
                self.lob += sum(ref.set("b", p, s) for p, s in bids) + sum(ref.set("a", p, s) for p, s in asks)
                self.spread += 1
            else:
                ref = self.books[sym]
                assert msg["sequence"] > self.seq[sym]
                top = ref.top()
                self.lob += sum(ref.set("b", p, s) for p, s in bids) + sum(ref.set("a", p, s) for p, s in asks)
                self.spread += ref.top() != top
            self.seq[sym] = msg["sequence"]


def model_of(frame_list) -> Model:
    return Model(json.loads(d) for _, d in frame_list)


@functools.lru_cache(maxsize=1)
def clean_model() -> Model:
    return model_of(frames())


def feed(frame_list, scheme=PhemexScheme) -> Harness:
    h = Harness(scheme, listing())
    h.feed_all(frame_list)
    return h


def assert_books_equal(h: Harness, model: Model, natives=None) -> None:
    for native in natives or model.books:
        book = h.scheme.books[native]
        book._validate()
        ref = model.books[native]
        assert decimal_levels(book.levels(BID)) == ref.levels("b"), native
        assert decimal_levels(book.levels(ASK)) == ref.levels("a"), native


# --------------------------------------------------------------------------------------------
# instruments, symbols, subscriptions


def test_registry_and_declarations():
    assert PhemexScheme.exchange == "phemex" and PhemexFuturesScheme.exchange == "phemex-futures"
    assert PhemexScheme.ws_url == "wss://phemex.com/ws"
    assert PhemexScheme.instruments_paths == ("/exchange/public/cfg/v2/products", "/public/products")
    assert set(PhemexScheme.channels) == {"lob", "trades", "candle"}
    assert PhemexFuturesScheme.channels["funding_rate"] == "perp_market24h_pack"


def test_instruments_from_the_recorded_listing():
    inst = listing()
    assert len(inst) == 67
    assert inst["sGRTUSDT"] == ("sGRTUSDT", "GRT-USDT", "spot", "GRT", "USDT", 8, 8, "")
    assert inst["XMRUSD"] == ("XMRUSD", "XMR-USD-PERP", "perp", "XMR", "USD", 4, 0, "")
    assert inst["BTCUSD"].symbol == "BTC-USD-PERP"  # settled in BTC: its underlying names "USD"
    assert {i.symbol for i in inst.values()} >= set(PhemexScheme.default_symbols)


def test_instruments_from_the_documented_current_listing():
    body = FUTURES.with_name("PHEMEX_FUTURES.0").read_text().splitlines()[0].split(": ", 1)[1]
    inst = parse_products(body.encode())
    assert inst["BTCUSDT"] == ("BTCUSDT", "BTC-USDT-PERP", "perp", "BTC", "USDT", 8, 8, "")
    assert inst["sBTCUSDT"] == ("sBTCUSDT", "BTC-USDT", "spot", "BTC", "USDT", 8, 8, "")
    assert inst["BTCUSD"] == ("BTCUSD", "BTC-USD-PERP", "perp", "BTC", "USD", 4, 0, "")
    assert {i.symbol for i in inst.values()} >= set(PhemexFuturesScheme.default_symbols)


def test_guessed_names_and_scaled_numbers():
    assert guess_instrument("sETHUSDT").symbol == "ETH-USDT"
    assert guess_instrument("ETHUSDT").symbol == "ETH-USDT-PERP"
    assert guess_instrument("ETHUSD")[5:7] == (4, 0)
    for bad in ("", "s", "eth usd", "x" * 31, "ETH"):
        with pytest.raises(KeyError):
            guess_instrument(bad)
    assert scaled_text(329915000, 4) == "32991.5000" and scaled_float(539639000000, 8) == 5396.39
    for bad in (-1, 2**63, 1.5, "1"):
        with pytest.raises(ValueError):
            scaled_text(bad, 4)


def test_subscriptions_by_market_kind():
    h = Harness(PhemexFuturesScheme, {**listing(), **parse_products(
        FUTURES.with_name("PHEMEX_FUTURES.0").read_text().splitlines()[0].split(": ", 1)[1].encode())},
        symbols=("BTC-USDT-PERP", "XMR-USD-PERP"), channels=("lob", "trades", "candle", "funding_rate"))
    plans = h.scheme.plan()
    h.conn.plan = plans[0]
    h.open()
    sent = [(s["method"], s["params"]) for s in h.sent()]
    assert sent == [("orderbook_p.subscribe", ["BTCUSDT"]), ("orderbook.subscribe", ["XMRUSD"]),
                    ("trade_p.subscribe", ["BTCUSDT"]), ("trade.subscribe", ["XMRUSD"]),
                    ("kline_p.subscribe", ["BTCUSDT", 60]), ("kline.subscribe", ["XMRUSD", 60]),
                    ("perp_market24h_pack_p.subscribe", [])]
    assert len({s["id"] for s in h.sent()}) == 7
    assert json.loads(h.scheme.ping_message())["method"] == "server.ping"


# --------------------------------------------------------------------------------------------
# the recorded capture


def test_capture_replay_against_the_model():
    sink = MemorySink()
    replay = Replay(open_capture(fixture_path(CAPTURE)), EX, sink, Metrics(), scheme_cls=PhemexScheme)
    replay.run()
    model = clean_model()
    s = replay.metrics.summary()
    assert (model.lob, model.spread, model.trades, model.snapshots, model.verified) == (2543, 293, 25, 10, 3)
    assert s["frames"] == 1392 == len(frames())
    assert s["events"] == {"lob": model.lob, "spread": model.spread, "status": 1 + model.snapshots,
                           "trades": model.trades}
    assert (s["checksum_ok"], s["checksum_failed"], s["gaps"], s["resyncs"], s["errors"]) == (model.verified, 0, 0, 0, 0)
    h = feed(frames())
    assert_books_equal(h, model)
    assert h.scheme.sequences["sGRTUSDT"] == model.seq["sGRTUSDT"] == 175933275  # the last line of the capture


def test_capture_exact_values():
    h = feed(frames())
    lob = h.events("lob")
    # YFIUSD's snapshot (priceScale 4, contracts): the best bid first, then the asks
    yfi = [r for r in lob if r.symbol == "YFI-USD-PERP"]
    assert yfi[30] == Lob(EX, "YFI-USD-PERP", 32991.5, 1559.0, "sell", 1625342241094406504 // 10**6, 1625342241988539)
    snaps = [r for r in h.events("status") if r.status == "snapshot"]
    assert [r.symbol for r in snaps][:3] == ["YFI-USD-PERP", "XMR-USD-PERP", "ENJ-USD-PERP"]
    trades = h.events("trades")
    assert trades[0] == Trade(EX, "SUSHI-USDT", 7.691, 1.682, "buy", "", 1625342244127, 1625342244237847)
    assert trades[1] == Trade(EX, "GRT-USDT", 0.67522, 640.0, "buy", "", 1625342244579, 1625342244827247)
    assert trades[2] == Trade(EX, "YFI-USD-PERP", 33000.5, 10.0, "buy", "", 1625342246173, 1625342246346803)
    first_spread = h.events("spread")[0]
    assert first_spread[:6] == (EX, "YFI-USD-PERP", yfi[0].price, yfi[0].size, 32991.5, 1559.0)
    # the trade snapshots (history from before the subscription) publish nothing
    assert len(trades) == 25


def test_trade_snapshot_on_a_later_subscription_publishes_only_newer_trades():
    snap = next(d for _, d in frames() if b'"trades"' in d and b'"snapshot"' in d and b"sGRTUSDT" in d)
    h = Harness(PhemexScheme, listing())
    assert h.feed(snap) == [] and h.feed(snap) == []  # again (a reconnect): nothing newer
    assert h.metrics.errors.total == 0


def test_trades_values_refused_by_the_decoder_are_said_by_the_schemes_checks():
    """The trades decoder checks the values (``m.Trades``); what it refuses is decoded again
    and the scheme's own checks say what is wrong, in the same words, first fault first. A
    value its bounds leave out but the scheme takes (a time of 2**64 ns) is still published."""
    h = Harness(PhemexScheme, listing(), strict=False)
    ts = 1625342244127000000
    for sym, rows in [("XMRUSD", [[ts, "Buy", 12345678, 1], [ts, "Buy", -5, 1], [ts, "Hold", 1, 1]]),
                      ("XMRUSD", [[ts, "Hold", 1, 1], [ts, "Buy", 1, -1]]),
                      ("XMRUSD", [[ts, "Buy", 1, 10**15]]),  # contracts: below 1e15 once scaled
                      ("sGRTUSDT", [[ts, "Buy", 2**63, 1]]),
                      ("sGRTUSDT", [[-1, "Buy", 1, 1]]),
                      ("sGRTUSDT", [[ts, "Buy", "12", 1]]),
                      ("no market", [[ts, "Buy", -1, 1]])]:
        h.feed({"sequence": 1, "symbol": sym, "trades": rows, "type": "incremental"})
    assert [(k, d) for k, d, _ in h.reports] == [
        ("phemex: malformed trades", "scaled number out of range: -5"),
        ("phemex: malformed trades", "scaled number out of range: -1"),
        ("phemex: malformed trades", f"{ts} 'Buy' 0.0001 1000000000000000.0"),
        ("phemex: malformed trades", "scaled number out of range: 9223372036854775808"),
        ("phemex: malformed trades", "-1 'Buy' 1e-08 1e-08"),
        ("phemex: malformed trades", "Expected `int`, got `str` - at `$.trades[0][2]`"),
        ("phemex: unknown market", "'no market'")]
    assert h.records == []
    h.feed({"sequence": 1, "symbol": "XMRUSD", "trades": [[2**64, "Sell", 1, 10**15 - 1]], "type": "incremental"})
    assert h.events("trades") == [Trade(EX, "XMR-USD-PERP", 0.0001, 1e15 - 1, "sell", "", 2**64 // 10**6, T0 // 1000)]


# --------------------------------------------------------------------------------------------
# the sync rule on real messages: duplicate, reorder, drop, malformed


def grt_incrementals() -> tuple[list[int], int]:
    """Indexes of sGRTUSDT's incremental book messages before its periodic snapshot, and that
    snapshot's index."""
    f = frames()
    snaps = [i for i, (_, d) in enumerate(f) if b'"sGRTUSDT"' in d and b'"book"' in d and b'"snapshot"' in d]
    assert len(snaps) == 2
    inc = [i for i, (_, d) in enumerate(f[:snaps[1]]) if b'"sGRTUSDT"' in d and b'"book"' in d
           and b'"incremental"' in d]
    return inc, snaps[1]


def seq_of(i: int) -> int:
    return json.loads(frames()[i][1])["sequence"]


def resyncs(h: Harness) -> list[Status]:
    return [r for r in h.events("status") if r.status == "resync"]


def test_fault_duplicate_is_a_gap_then_rebuilt():
    inc, snap = grt_incrementals()
    k = inc[len(inc) // 2]
    f = list(frames())
    h = feed(f[: k + 1])
    before = list(h.scheme.books["sGRTUSDT"].levels(BID))
    produced = h.feed(f[k][1], f[k][0])
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (1, 1, 0)
    assert [r for t, r in produced if t == "status"] == [Status(
        EX, "GRT-USDT", "resync", f"sequence: sequence {seq_of(k)} not above the book's {seq_of(k)}",
        f[k][0] // 10**6, f[k][0] // 1000)]
    assert [t for t, _ in produced] == ["status"] and before  # nothing published for the book
    assert h.sent()[-1]["method"] == "orderbook.subscribe" and h.sent()[-1]["params"] == ["sGRTUSDT"]
    assert h.scheme.books["sGRTUSDT"].count(BID) == 0 and "sGRTUSDT" in h.scheme.unsynced
    h.feed_all(f[k + 1:snap])  # ignored until a snapshot
    assert h.scheme.books["sGRTUSDT"].count(BID) == 0
    h.feed_all(f[snap:])
    assert "sGRTUSDT" not in h.scheme.unsynced and h.metrics.checksum_ok == 2  # (the other two)
    assert [r.symbol for r in h.events("status") if r.status == "snapshot"].count("GRT-USDT") == 2
    assert_books_equal(h, clean_model())


def test_fault_reorder_is_a_gap_then_rebuilt():
    inc, snap = grt_incrementals()
    a, b = inc[3], inc[4]
    f = list(frames())
    f[a], f[b] = f[b], f[a]
    h = feed(f)
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.checksum_failed) == (1, 1, 0)
    assert [r.reason for r in resyncs(h)] == [f"sequence: sequence {seq_of(a)} not above the book's {seq_of(b)}"]
    assert_books_equal(h, clean_model())  # rebuilt from the periodic snapshot


def test_fault_dropped_message_found_by_the_periodic_snapshot():
    inc, snap = grt_incrementals()
    f = list(frames())
    clean_final = clean_model().books["sGRTUSDT"]
    # the model picks a message whose loss the snapshot shows (later messages did not overwrite it)
    k = next(i for i in reversed(inc) if model_of(f[:i] + f[i + 1:snap]).books["sGRTUSDT"].levels("b")
             != model_of(f[:snap]).books["sGRTUSDT"].levels("b"))
    h = feed(f[:k] + f[k + 1:])
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.checksum_failed, h.metrics.checksum_ok) == (0, 1, 1, 2)
    [resync] = resyncs(h)
    assert resync.symbol == "GRT-USDT" and resync.reason.startswith("snapshot differs: bids differ from level ")
    statuses = [(r.symbol, r.status) for r in h.events("status")]
    i = statuses.index(("GRT-USDT", "resync"))
    assert statuses[i + 1] == ("GRT-USDT", "snapshot")  # rebuilt from that snapshot at once
    assert h.sent() == []  # (no resubscription: the snapshot at hand rebuilt it)
    assert_books_equal(h, clean_model())
    assert clean_final.levels("b")


def test_fault_malformed_book_message_resyncs():
    inc, snap = grt_incrementals()
    k = inc[2]
    f = list(frames())
    msg = json.loads(f[k][1])
    side = "bids" if msg["book"]["bids"] else "asks"
    msg["book"][side][0][0] = str(msg["book"][side][0][0])
    h = feed(f[:k])
    h.feed(json.dumps(msg), f[k][0])
    assert (h.metrics.resyncs, h.metrics.gaps, h.errors.reports[0][0]) == (1, 0, "phemex: malformed book message")
    assert resyncs(h)[0].reason.startswith("malformed book message: ")
    h.feed_all(f[k + 1:])
    assert_books_equal(h, clean_model())


def test_control_messages_and_bad_input():
    h = Harness(PhemexScheme, listing(), strict=False)
    assert h.feed({"error": None, "id": 1, "result": {"status": "success"}}) == []
    assert h.feed({"error": None, "id": 7, "result": "pong"}) == []
    h.feed({"error": {"code": 6001, "message": "invalid argument"}, "id": 3, "result": None})
    h.feed(b"not json")
    h.feed({"tick": {"last": 1}})
    h.feed(frames()[40][1])  # an incremental before any snapshot: waits, nothing published
    assert h.records == []
    assert [k for k, _, _ in h.reports] == ["phemex: exchange error", "phemex: malformed JSON",
                                           "phemex: unknown message"]
    h.feed({"book": {"asks": [], "bids": []}, "depth": 30, "sequence": 1, "symbol": "no market",
            "timestamp": T0, "type": "snapshot"})
    assert h.reports[-1][0] == "phemex: unknown market"


# --------------------------------------------------------------------------------------------
# USDT-M: the documented messages


def futures_frames() -> list:
    return recv_frames(FUTURES)


def futures_listing() -> dict:
    return capture_instruments(FUTURES, PhemexFuturesScheme)


def test_futures_documented_messages_exact():
    h = Harness(PhemexFuturesScheme, futures_listing())
    h.feed_all(futures_frames())
    fx, sym = "phemex-futures", "BTC-USDT-PERP"
    assert h.metrics.errors.total == 0
    # the two incremental samples come before any snapshot: held back; the trade snapshot is history
    assert h.events("trades") == [Trade(fx, sym, 20700.3, 0.649, "sell", "", 1666856076819, 1666856076900000)]
    assert h.events("candle") == [
        Candle(fx, sym, 1666856340000, 1666856400000, "1m", 0, False, 20686.2, 20695.4, 20686.2, 20691.6, 2.742,
               1666856340500, 1666856340500000),
        Candle(fx, sym, 1666856340000, 1666856400000, "1m", 0, True, 20686.2, 20695.4, 20686.2, 20691.6, 2.742,
               1666856520500, 1666856520500000),
        Candle(fx, sym, 1666856520000, 1666856580000, "1m", 0, False, 20684.8, 20684.8, 20675.2, 20675.2, 3.547,
               1666856520500, 1666856520500000)]
    t = (1666860123727, 1666860123800000)
    assert h.events("lob") == [Lob(fx, sym, 20672.4, 0.818, "buy", *t), Lob(fx, sym, 20672.2, 0.614, "buy", *t),
                               Lob(fx, sym, 20675.7, 0.736, "sell", *t), Lob(fx, sym, 20676.2, 0.613, "sell", *t)]
    assert h.events("spread") == [Spread(fx, sym, 20672.4, 0.818, 20675.7, 0.736, *t)]
    t = (1666862556850, 1666862556900000)
    # the pack's rows for the listed market (ETHUSDT is not in the listing)
    assert h.events("funding_rate") == [FundingRate(fx, sym, 20643.52572781, 0.0001, 0, 0.0001, *t)]
    assert h.events("open_interest") == [OpenInterest(fx, sym, 0.0, *t)]
    assert h.events("ticker") == []  # the documented pack names no bidRp/askRp
    assert h.scheme.sequences["BTCUSDT"] == 77770771


def test_futures_replay_counts():
    sink = MemorySink()
    replay = Replay(open_capture(FUTURES), "phemex-futures", sink, Metrics(), scheme_cls=PhemexFuturesScheme)
    replay.run()
    s = replay.metrics.summary()
    assert s["frames"] == 9
    assert s["events"] == {"candle": 3, "funding_rate": 1, "lob": 4, "open_interest": 1, "spread": 1, "status": 2,
                           "trades": 1}
    assert (s["checksum_ok"], s["checksum_failed"], s["gaps"], s["resyncs"], s["errors"]) == (0, 0, 0, 0, 0)


def test_futures_older_documented_incremental_after_the_snapshot_is_a_gap():
    f = futures_frames()
    h = Harness(PhemexFuturesScheme, futures_listing())
    h.feed_all(f)
    h.feed(f[1][1], f[-1][0])  # the sample incremental of sequence 77668172, after snapshot 77770771
    assert (h.metrics.gaps, h.metrics.resyncs) == (1, 1)
    assert resyncs(h)[0].reason == "sequence: sequence 77668172 not above the book's 77770771"
    assert h.sent()[-1]["method"] == "orderbook_p.subscribe" and h.sent()[-1]["params"] == ["BTCUSDT"]
    assert h.scheme.books["BTCUSDT"].count(BID) == 0
    h.feed(f[7][1], f[-1][0])  # the snapshot again (as the resubscription brings it): rebuilt
    assert h.scheme.books["BTCUSDT"].levels(BID) == [("20672.4", "0.818"), ("20672.2", "0.614")]


def test_futures_pack_legend_is_kept_per_connection():
    f = futures_frames()
    pack = json.loads(f[-1][1])
    bare = {k: v for k, v in pack.items() if k != "fields"}
    h = Harness(PhemexFuturesScheme, futures_listing(), strict=False)
    h.feed(bare)
    assert [k for k, _, _ in h.reports] == ["phemex-futures: malformed market24h pack"] and h.records == []
    h.feed(pack)
    assert len(h.events("funding_rate")) == 1
    bare["data"][1][10] = "0.0002"  # BTCUSDT's fundingRateRr changes: read with the kept legend
    produced = h.feed(bare)
    assert [r.funding_rate for t, r in produced if t == "funding_rate"] == [0.0002]
