"""Bybit v5 public websocket schemes (``bybit``, ``bybit-linear``, ``bybit-inverse``, ``bybit-options``).

Data, and where each message comes from:

- ``../shared/fixtures/nautilus/bybit/2024-12-01_XRPUSDT_ob500.data``: Bybit's own public archive of
  a v5 linear ``orderbook.500.XRPUSDT`` stream (REAL): one 500x500 snapshot and 49 deltas with
  contiguous ``u`` 20254869 -> 20254918. The sync fault tests drop, repeat and reorder one of them.
- ``tests/data/bybit/BYBIT_LINEAR.ws.1.0`` (+ ``BYBIT_LINEAR.0``): a capture-format file made of
  those 50 archive lines, unchanged (received at their own ``ts``), and, after them, messages of
  Bybit's documentation (bybit-exchange.github.io/docs/v5: ws/connect subscription answer and pong,
  websocket/public/trade, ticker (Linear), kline, all-liquidation; market/instrument (Linear) for
  the listing), and a ticker snapshot + delta from a public test suite that recorded them from
  Bybit's public linear stream on 2026-08-13. The documented messages were never received by us:
  they are stamped 1 ms apart after the archive's last message.
- ``../shared/fixtures/nautilus/bybit/ws_orderbook_snapshot.json`` / ``ws_orderbook_delta.json``:
  nautilus_trader's documentation-style ``orderbook.1.BTCUSDT`` pair (two levels a side in a
  depth-1 snapshot: the truncation test).
- The option ticker: Bybit's documentation example (websocket/public/ticker, Option).

``cryptofeed/BYBIT.ws.25.0`` is Bybit's retired pre-v5 API (``realtime_public``, ``orderBookL2_25``):
no scheme here reads it.
"""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from atomfast.book import ASK, BID
from atomfast.events import BUY, SELL, Candle, FundingRate, Liquidation, Lob, OpenInterest, Status, Ticker, Trade
from atomfast.exchanges import scheme_for, schemes
from atomfast.exchanges.bybit import BybitInverseScheme, BybitLinearScheme, BybitOptionsScheme, BybitSpotScheme
from atomfast.exchanges.bybit.handler import interval_name
from atomfast.exchanges.bybit.parse import name_instrument, option_instrument, parse_listing
from atomfast.scheme import ConnectionPlan, Instrument
from atomfast.testing import (ROOT, Harness, RefBook, SimProcess, capture_instruments, check_events, cli_summary,
                              decimal_levels, faulty, fixture_path, recv_frames, replay_fixture, run_cli)

ARCHIVE = "nautilus/bybit/2024-12-01_XRPUSDT_ob500.data"
CAPTURE = ROOT / "tests" / "data" / "bybit" / "BYBIT_LINEAR.ws.1.0"
XRP = "XRP-USDT-PERP"
#: Bybit's documented listings (docs/v5/market/instrument, response examples)
LINEAR_LISTING = (ROOT / "tests" / "data" / "bybit" / "BYBIT_LINEAR.0").read_text().split(": ", 1)[1].split("\n")[0]
OPTION_LISTING = ('{"retCode":0,"retMsg":"OK","result":{"category":"option","nextPageCursor":"","list":[{"symbol":'
                  '"BTC-27MAR26-70000-P-USDT","status":"Trading","baseCoin":"BTC","quoteCoin":"USDT","settleCoin":"USDT",'
                  '"optionsType":"Put","launchTime":"1743669649256","deliveryTime":"1774598400000","deliveryFeeRate":'
                  '"0.00015","priceFilter":{"minPrice":"5","maxPrice":"1110000","tickSize":"5"},"lotSizeFilter":'
                  '{"maxOrderQty":"500","minOrderQty":"0.01","qtyStep":"0.01"},"displayName":"BTCUSDT-27MAR26-70000-P"}]},'
                  '"retExtInfo":{},"time":1672712537130}')
SPOT_LISTING = ('{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[{"symbolId":9,"symbol":"BTCUSDT",'
                '"baseCoin":"BTC","quoteCoin":"USDT","innovation":"0","status":"Trading","marginTrading":"utaOnly",'
                '"stTag":"0","lotSizeFilter":{"basePrecision":"0.000001","quotePrecision":"0.0000001","minOrderQty":'
                '"0.000011","maxOrderQty":"83","minOrderAmt":"5","maxOrderAmt":"8000000","maxLimitOrderQty":"83",'
                '"maxMarketOrderQty":"41.5","postOnlyMaxLimitOrderSize":"60000"},"priceFilter":{"tickSize":"0.1"},'
                '"riskParameters":{"priceLimitRatioX":"0.005","priceLimitRatioY":"0.01"},"symbolType":""}]},'
                '"retExtInfo":{},"time":1760027412300}')
#: docs/v5/websocket/public/ticker, response example (Option)
DOC_OPTION_TICKER = ('{"id":"tickers.BTC-6JAN23-17500-C-2480334983-1672917511074","topic":"tickers.BTC-6JAN23-17500-C",'
                     '"ts":1672917511074,"data":{"symbol":"BTC-6JAN23-17500-C","bidPrice":"0","bidSize":"0","bidIv":"0",'
                     '"askPrice":"10","askSize":"5.1","askIv":"0.514","lastPrice":"10","highPrice24h":"25","lowPrice24h":'
                     '"5","markPrice":"7.86976724","indexPrice":"16823.73","markPriceIv":"0.4896","underlyingPrice":'
                     '"16815.1","openInterest":"49.85","turnover24h":"446802.8473","volume24h":"26.55","totalVolume":"86",'
                     '"totalTurnover":"1437431","delta":"0.047831","gamma":"0.00021453","vega":"0.81351067","theta":'
                     '"-19.9115368","predictedDeliveryPrice":"0","change24h":"-0.33333334"},"type":"snapshot"}')


def archive() -> list[tuple[int, bytes]]:
    """The real archive's 50 messages, received (as the capture file has them) at their ``ts``."""
    lines = fixture_path(ARCHIVE).read_bytes().splitlines()
    return [(json.loads(line)["ts"] * 1_000_000, line) for line in lines]


def linear() -> Harness:
    return Harness(BybitLinearScheme, capture_instruments(CAPTURE, BybitLinearScheme))


class Reference:
    """An independent model of Bybit's book rule: RefBook of the texts, each message truncated to
    the topic's depth; counts the lob and spread events the scheme must publish."""

    def __init__(self, depth: int = 500) -> None:
        self.depth = depth
        self.book = RefBook()
        self.lob = self.spread = 0
        self.u = None

    def feed(self, line: bytes) -> None:
        msg = json.loads(line)
        d = msg["data"]
        before = self.book.top() if self.u is not None else None
        if msg["type"] == "snapshot":
            self.book = RefBook()
            before = (None, None, None, None)
            for side in ("b", "a"):
                self.lob += sum(self.book.set(side, p, s) for p, s in d[side])
        else:
            assert d["u"] == self.u + 1
            for side in ("b", "a"):
                self.lob += sum(self.book.set(side, p, s) for p, s in d[side])
        self.lob += self.book.truncate(self.depth)
        self.spread += self.book.top() != before
        self.u = d["u"]

    def snapshot(self, ts: int) -> bytes:
        """The snapshot Bybit would send now (the fresh one a resubscription brings)."""
        return json.dumps({"topic": "orderbook.500.XRPUSDT", "type": "snapshot", "ts": ts, "data": {
            "s": "XRPUSDT", "b": [list(x) for x in self.book.ordered("b")], "a": [list(x) for x in self.book.ordered("a")],
            "u": self.u, "seq": 0}}, separators=(",", ":")).encode()

    def equals(self, book) -> bool:
        return (decimal_levels(book.levels(BID)) == self.book.levels("b")
                and decimal_levels(book.levels(ASK)) == self.book.levels("a"))


# --- registry, endpoints, symbols -----------------------------------------------------------------

def test_registry_endpoints_and_limits():
    table = schemes()
    assert table["bybit"] == [BybitSpotScheme] and table["bybit-linear"] == [BybitLinearScheme]
    assert table["bybit-inverse"] == [BybitInverseScheme] and table["bybit-options"] == [BybitOptionsScheme]
    assert scheme_for("bybit-linear", "wss://stream.bybit.com/v5/public/linear") is BybitLinearScheme
    assert [s.ws_url for s in (BybitSpotScheme, BybitLinearScheme, BybitInverseScheme, BybitOptionsScheme)] == [
        f"wss://stream.bybit.com/v5/public/{c}" for c in ("spot", "linear", "inverse", "option")]
    assert BybitLinearScheme.instruments_paths == ("/v5/market/instruments-info?category=linear&limit=1000",)
    assert BybitSpotScheme.instruments_paths == ("/v5/market/instruments-info?category=spot",)
    assert BybitOptionsScheme.instruments_paths[0] == "/v5/market/instruments-info?category=option&baseCoin=BTC&limit=1000"
    for cls in (BybitSpotScheme, BybitLinearScheme, BybitInverseScheme, BybitOptionsScheme):
        assert cls.ping_interval == 20.0 and cls(lambda t, r: None).ping_message() == '{"op":"ping"}'
    assert "ticker" not in BybitSpotScheme.channels and "liquidations" not in BybitOptionsScheme.channels
    assert BybitInverseScheme.channels["liquidations"] == "allLiquidation"


def test_documented_listings_and_names():
    linear_listing = parse_listing("linear", LINEAR_LISTING.encode())
    assert linear_listing == {"BTCUSDT": Instrument("BTCUSDT", "BTC-USDT-PERP", "perp", "BTC", "USDT", 3, 5)}
    assert parse_listing("spot", SPOT_LISTING.encode()) == {
        "BTCUSDT": Instrument("BTCUSDT", "BTC-USDT", "spot", "BTC", "USDT", 3, 8)}
    # the settle coin is the option's quote: BTC-27MAR26-70000-P-USDT is settled in USDT
    assert parse_listing("option", OPTION_LISTING.encode()) == {"BTC-27MAR26-70000-P-USDT": Instrument(
        "BTC-27MAR26-70000-P-USDT", "BTC-USDT-20260327-70000-P", "option", "BTC", "USDT", 2, 4, "20260327")}
    assert parse_listing("inverse", LINEAR_LISTING.encode()) == {}  # a listing of another category
    assert parse_listing("linear", b'{"retCode":10001,"retMsg":"params error","result":{}}') == {}
    # names without a listing
    assert option_instrument("BTC-26DEC26-100000-C").symbol == "BTC-USDC-20261226-100000-C"
    assert option_instrument("BTC-6JAN23-17500-C").symbol == "BTC-USDC-20230106-17500-C"
    assert name_instrument("linear", "XRPUSDT").symbol == XRP
    assert name_instrument("linear", "BTCPERP").symbol == "BTC-USDC-PERP"
    assert name_instrument("linear", "BTCUSDT-26DEC25").symbol == "BTC-USDT-20251226"
    assert name_instrument("linear", "BTC-26DEC25").symbol == "BTC-USDC-20251226"
    assert name_instrument("inverse", "BTCUSD").symbol == "BTC-USD-PERP"
    assert name_instrument("spot", "ETHUSDC").symbol == "ETH-USDC"
    for category, bad in (("inverse", "BTCUSDZ25"), ("linear", "btcusdt"), ("option", "BTC-26DEC26-1-X"),
                          ("spot", "USDT"), ("linear", "BTC-31FEB25")):
        with pytest.raises(KeyError):
            name_instrument(category, bad)
    # a dated future is dated by its deliveryTime (UTC)
    dated = LINEAR_LISTING.replace('"LinearPerpetual"', '"LinearFutures"').replace(
        '"deliveryTime":"0"', '"deliveryTime":"1774598400000"').replace('"BTCUSDT"', '"BTCUSDT-27MAR26"')
    assert parse_listing("linear", dated.encode())["BTCUSDT-27MAR26"].symbol == "BTC-USDT-20260327"


def test_subscriptions_spot_ten_args_options_trades_per_coin():
    natives = [f"C{i}USDT" for i in range(7)]
    insts = {n: name_instrument("spot", n) for n in natives}
    spot = BybitSpotScheme(lambda t, r: None, None, insts, [i.symbol for i in insts.values()])
    plans = spot.plan()
    assert len(plans) == 1
    sent = [json.loads(x) for x in spot.subscribe_plan(plans[0])]
    # 7 markets x 3 topics = 21 args: at most 10 a request (docs/v5/ws/connect, Args limits)
    assert [len(x["args"]) for x in sent] == [10, 10, 1] and all(x["op"] == "subscribe" for x in sent)
    assert sent[0]["args"][:2] == ["orderbook.200.C0USDT", "orderbook.200.C1USDT"]
    assert sent[-1]["args"] == ["kline.1.C6USDT"]
    names = ["BTC-26DEC26-100000-C", "BTC-26DEC26-100000-P", "ETH-26DEC26-5000-C"]
    opts = BybitOptionsScheme(lambda t, r: None, None, {n: option_instrument(n) for n in names},
                              [option_instrument(n).symbol for n in names])
    args = [a for msg in opts.subscribe_plan(opts.plan()[0]) for a in json.loads(msg)["args"]]
    assert [a for a in args if a.startswith("publicTrade")] == ["publicTrade.BTC", "publicTrade.ETH"]
    assert "orderbook.100.ETH-26DEC26-5000-C" in args and "tickers.BTC-26DEC26-100000-P" in args
    # a plan never holds more than 200 topics a connection (the 21,000-character args limit)
    many = {f"C{i}USDT": name_instrument("linear", f"C{i}USDT") for i in range(80)}
    lin = BybitLinearScheme(lambda t, r: None, None, many, [i.symbol for i in many.values()])
    plans = lin.plan()
    # 80 markets x 5 topics: two connections of 200
    assert [sum(len(n) for _, n in p.subscriptions) for p in plans] == [200, 200]
    assert all(len(json.dumps([t for m in lin.subscribe_plan(p) for t in json.loads(m)["args"]])) < 21_000
               for p in plans)


# --- the capture -------------------------------------------------------------------------------------

def test_capture_file_holds_the_archive_unchanged():
    lines = CAPTURE.read_bytes().splitlines()
    payloads = [line.split(b": ", 1)[1] for line in lines[2:]]
    assert payloads[1:51] == fixture_path(ARCHIVE).read_bytes().splitlines()
    assert len(recv_frames(CAPTURE)) == 58


def test_capture_replay_exact():
    ref = Reference()
    for _, line in archive():
        ref.feed(line)
    assert (ref.lob, ref.spread, ref.u) == (3966, 48, 20254918)
    replay, sink = replay_fixture(CAPTURE, exchange="bybit-linear")
    m = replay.metrics
    assert (m.gaps, m.resyncs, m.errors.total) == (0, 0, 0)
    assert sink.counts() == {"status": 2, "lob": ref.lob, "spread": ref.spread, "trades": 1, "ticker": 2,
                             "funding_rate": 2, "open_interest": 2, "candle": 1, "liquidations": 1}
    check_events(sink.records)
    book = replay.scheme.books["XRPUSDT"]
    assert ref.equals(book) and book.count(BID) == 500 and book.count(ASK) == 500
    assert replay.scheme.update_ids["XRPUSDT"] == 20254918
    assert sink.statuses() == [("connected", "wss://stream.bybit.com/v5/public/linear"), ("snapshot", "")]
    assert sink.events("status")[1] == Status("bybit-linear", XRP, "snapshot", "", 1733011200691, 1733011200691000)
    lob = sink.events("lob")
    # the snapshot's best bid and its first delta's first bid, as sent
    assert lob[0] == Lob("bybit-linear", XRP, 1.9531, 6203.0, BUY, 1733011200691, 1733011200691000)
    assert Lob("bybit-linear", XRP, 1.9531, 6198.0, BUY, 1733011200693, 1733011200693000) in lob
    assert Lob("bybit-linear", XRP, 1.9535, 8415.0, SELL, 1733011200693, 1733011200693000) in lob
    assert sink.events("trades") == [Trade("bybit-linear", "BTC-USDT-PERP", 16578.5, 0.001, BUY,
                                           "20f43950-d8dd-5b31-9112-a178eb6023af", 1672304486865,
                                           sink.events("trades")[0].atom_timestamp)]
    tickers = sink.events("ticker")
    assert [t[:7] for t in tickers] == [
        ("bybit-linear", "BTC-USDT-PERP", 17215.5, 84.489, 17216.0, 83.02, 1673272861686),
        ("bybit-linear", "BTC-USDT-PERP", 63561.5, 1.76, 63561.6, 4.69, 1786659827683)]
    assert [f[:7] for f in sink.events("funding_rate")] == [
        ("bybit-linear", "BTC-USDT-PERP", 17217.33, -0.000212, 1673280000000, 0.0, 1673272861686),
        ("bybit-linear", "BTC-USDT-PERP", 63560.8, 0.00005013, 1786665600000, 0.0, 1786659827683)]
    assert [o[:4] for o in sink.events("open_interest")] == [("bybit-linear", "BTC-USDT-PERP", 68744.761, 1673272861686),
                                                           ("bybit-linear", "BTC-USDT-PERP", 59972.256, 1786659827683)]
    candle = sink.events("candle")[0]
    assert candle[:13] == ("bybit-linear", "BTC-USDT-PERP", 1672324800000, 1672325100000, "5m", 0, False, 16649.5,
                           16677.0, 16608.0, 16677.0, 2.081, 1672324988882)
    # Bybit's S "Sell": a SHORT position was liquidated, so the liquidation order bought
    liq = sink.events("liquidations")[0]
    assert liq[:6] == ("bybit-linear", "ROSE-USDT-PERP", BUY, 0.04499, 20000.0, 1739502302929)


# --- the sync rule: drop, repeat, reorder one real delta ----------------------------------------

@pytest.mark.parametrize("fault,seen", [("drop", "u 20254891 != previous u 20254889 + 1"),
                                        ("duplicate", "u 20254890 != previous u 20254890 + 1"),
                                        ("reorder", "u 20254891 != previous u 20254889 + 1")])
def test_fault_detected_resynced_and_rebuilt(fault, seen):
    frames = archive()
    index = 21  # the delta with u 20254890
    assert json.loads(frames[index][1])["data"]["u"] == 20254890
    bad = faulty(frames, index, fault)
    h = linear()
    ref = Reference()
    gap_at = None
    for i, (ts, line) in enumerate(bad):
        produced = h.feed(line, ts)
        check_events(produced)
        statuses = [r for t, r in produced if t == "status" and r.status == "resync"]
        if statuses and gap_at is None:
            gap_at = i
            assert statuses == [Status("bybit-linear", XRP, "resync", f"update id gap: {seen}", ts // 1_000_000,
                                       ts // 1000)]
            assert h.metrics.gaps == 1 and h.metrics.resyncs == 1
            assert h.sent() == [{"op": "unsubscribe", "args": ["orderbook.500.XRPUSDT"]},
                                {"op": "subscribe", "args": ["orderbook.500.XRPUSDT"]}]
            assert h.scheme.books["XRPUSDT"].count(BID) == 0 and "XRPUSDT" in h.scheme.unsynced
        elif gap_at is not None:
            assert not [r for t, r in produced if t in ("lob", "spread")]  # dropped until the snapshot
    assert gap_at is not None
    # the reference followed the real stream up to where the faulty run stopped trusting its book;
    # Bybit answers the resubscription with a fresh snapshot of the book as it is now
    for _, line in frames:
        ref.feed(line)
    snap = ref.snapshot(1733011206000)
    produced = h.feed(snap, 1733011206000_000_000)
    assert [r.status for t, r in produced if t == "status"] == ["snapshot"]
    assert ref.equals(h.scheme.books["XRPUSDT"]) and "XRPUSDT" not in h.scheme.unsynced
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (1, 1, 0)
    # and the next delta (u + 1) applies: the best bid's size changed
    nxt = json.loads(frames[-1][1])
    best = ref.book.ordered("b")[0][0]
    nxt["data"] = {"s": "XRPUSDT", "b": [[best, "7"]], "a": [], "u": ref.u + 1, "seq": 0}
    assert [t for t, _ in h.feed(nxt)] == ["lob", "spread"] and h.scheme.update_ids["XRPUSDT"] == ref.u + 1


def test_a_snapshot_mid_stream_replaces_the_book_u_1_included():
    """Bybit restarts its service: a snapshot with u = 1 (any snapshot mid-stream) replaces the
    book; the deltas then go on from it: no gap."""
    frames = archive()
    h = linear()
    h.feed_all(frames[:30])
    restart = json.loads(frames[0][1])
    restart["data"]["u"] = 1
    produced = h.feed(json.dumps(restart), frames[30][0])
    assert [r.status for t, r in produced if t == "status"] == ["snapshot"]
    ref = Reference()
    ref.feed(frames[0][1])
    assert ref.equals(h.scheme.books["XRPUSDT"]) and h.scheme.update_ids["XRPUSDT"] == 1
    delta = json.loads(frames[1][1])
    delta["data"]["u"] = 2
    assert "lob" in [t for t, _ in h.feed(json.dumps(delta))]
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (0, 0, 0)


def test_delta_before_snapshot_and_malformed_book_resync():
    frames = archive()
    h = linear()
    produced = h.feed(frames[5][1], frames[5][0])
    assert [(r.status, r.reason) for t, r in produced if t == "status"] == [("resync", "book delta before its snapshot")]
    assert h.feed(frames[6][1], frames[6][0]) == []  # waiting for the snapshot
    h.feed(frames[0][1], frames[0][0])
    h.feed(frames[1][1], frames[1][0])
    bad = json.loads(frames[2][1])
    bad["data"]["b"][0][1] = "-5"
    produced = h.feed(json.dumps(bad))
    assert [r.reason for t, r in produced if t == "status"][0].startswith("malformed book delta: ")
    assert not [r for t, r in produced if t == "lob"] and h.metrics.gaps == 0 and h.metrics.resyncs == 2
    assert h.metrics.errors.counts["bybit-linear: malformed book delta"] == 1


def test_depth_one_snapshot_truncated():
    """nautilus' orderbook.1 pair: a depth-1 snapshot holding two levels a side keeps the best."""
    snap = fixture_path("nautilus/bybit/ws_orderbook_snapshot.json").read_bytes()
    delta = fixture_path("nautilus/bybit/ws_orderbook_delta.json").read_bytes()
    h = linear()
    produced = h.feed(json.dumps(json.loads(snap)), 1709891679010_000_000)
    book = h.scheme.books["BTCUSDT"]
    assert book.levels(BID) == [("27450.00", "0.500")] and book.levels(ASK) == [("27451.00", "0.750")]
    lob = [r for t, r in produced if t == "lob"]
    assert [(r.price, r.size, r.side) for r in lob] == [
        (27450.0, 0.5, BUY), (27449.5, 1.0, BUY), (27451.0, 0.75, SELL), (27451.5, 0.9, SELL),
        (27449.5, 0.0, BUY), (27451.5, 0.0, SELL)]
    produced = h.feed(json.dumps(json.loads(delta)), 1709891679510_000_000)
    assert book.levels(BID) == [("27450.00", "0.400")] and book.levels(ASK) == []
    assert [t for t, _ in produced] == ["lob", "lob", "spread"]


# --- tickers, options, liquidations, control frames ----------------------------------------------

def test_ticker_delta_merges_into_the_snapshot():
    frames = recv_frames(CAPTURE)
    snap, delta = frames[53], frames[54]
    assert b'"type":"snapshot"' in snap[1] and b'"type":"delta"' in delta[1]
    h = linear()
    h.feed(snap[1], snap[0])
    state = list(h.scheme.tickers["BTCUSDT"])
    assert h.feed(delta[1], delta[0]) == []  # indexPrice only: nothing we publish changed
    assert h.scheme.tickers["BTCUSDT"] == state
    # a delta with one side only: merged with the other side known from the snapshot
    one = {"topic": "tickers.BTCUSDT", "type": "delta", "data": {"symbol": "BTCUSDT", "bid1Price": "63561.40",
                                                                 "bid1Size": "2"}, "cs": 1, "ts": 1786659828083}
    assert h.feed(one) == [("ticker", Ticker("bybit-linear", "BTC-USDT-PERP", 63561.4, 2.0, 63561.6, 4.69,
                                             1786659828083, h.records[-1][1].atom_timestamp))]
    # the same funding rate again: no second funding_rate; a new one: published with the known time
    assert [t for t, _ in h.feed(dict(one, data={"symbol": "BTCUSDT", "fundingRate": "0.00005013"}))] == []
    produced = h.feed(dict(one, data={"symbol": "BTCUSDT", "fundingRate": "-0.0001", "markPrice": ""}))
    assert [r[:6] for t, r in produced] == [("bybit-linear", "BTC-USDT-PERP", 63560.8, -0.0001, 1786665600000, 0.0)]
    # a ticker of another symbol than its topic, a bad number: refused, the state unchanged
    h.feed(dict(one, data={"symbol": "ETHUSDT", "bid1Price": "1"}))
    h.feed(dict(one, data={"symbol": "BTCUSDT", "bid1Price": "1e400"}))
    assert h.scheme.tickers["BTCUSDT"][0] == 63561.4
    assert h.metrics.errors.counts["bybit-linear: malformed ticker"] == 2


def test_option_ticker_and_open_interest():
    h = Harness(BybitOptionsScheme)
    produced = h.feed(DOC_OPTION_TICKER, 1672917511100_000_000)
    assert produced == [
        ("ticker", Ticker("bybit-options", "BTC-USDC-20230106-17500-C", 0.0, 0.0, 10.0, 5.1, 1672917511074,
                          1672917511100000)),
        ("open_interest", OpenInterest("bybit-options", "BTC-USDC-20230106-17500-C", 49.85, 1672917511074,
                                       1672917511100000))]
    # snapshots only: the same open interest again is not published again
    assert [t for t, _ in h.feed(DOC_OPTION_TICKER)] == ["ticker"]


def test_liquidation_side_is_the_order_side():
    """docs/v5/websocket/public/all-liquidation: "When you receive a Buy update, this means that a
    long position has been liquidated" -> the liquidation order SELLS."""
    h = linear()
    doc = recv_frames(CAPTURE)[56][1]
    assert json.loads(doc)["data"][0]["S"] == "Sell"
    assert [r.side for t, r in h.feed(doc)] == [BUY]
    long_liquidated = doc.replace(b'"S":"Sell"', b'"S":"Buy"')
    assert h.feed(long_liquidated, 1739502303300_000_000) == [("liquidations", Liquidation(
        "bybit-linear", "ROSE-USDT-PERP", SELL, 0.04499, 20000.0, 1739502302929, 1739502303300000))]
    h.feed(doc.replace(b'"S":"Sell"', b'"S":"Long"'))
    assert h.metrics.errors.counts["bybit-linear: malformed liquidation"] == 1


def test_control_frames_and_bad_input():
    h = linear()
    # docs/v5/ws/connect: the answers to subscribe and ping, on every endpoint
    for ok in ('{"success":true,"ret_msg":"pong","conn_id":"0970e817-426e-429a-a679-ff7f55e0b16a","op":"ping"}',
               '{"args":["1672916271846"],"op":"pong"}',
               '{"success":true,"ret_msg":"subscribe","conn_id":"2324d924-aa4d-45b0-a858-7b8be29ab52b",'
               '"req_id":"10001","op":"subscribe"}',
               '{"success":true,"conn_id":"aa01fbfffe80af37-00000001-000b37b9-7147f432704fd28c-00e1c172","data":'
               '{"failTopics":[],"successTopics":["orderbook.100.BTC-6JAN23-18000-C"]},"type":"COMMAND_RESP"}'):
        assert h.feed(ok) == []
    assert h.metrics.errors.total == 0
    produced = h.feed('{"success":false,"ret_msg":"error:handler not found,topic:orderbook.1.NOPEUSDT",'
                      '"conn_id":"x","op":"subscribe"}', 5_000_000_000)
    assert produced == [("status", Status("bybit-linear", "", "stopped",
                                          "subscribe: error:handler not found,topic:orderbook.1.NOPEUSDT", 5000, 5000000))]
    h.feed(b"\x00\x01")
    h.feed(b'{"topic":"orderbook.500.XRPUSDT"')
    h.feed(b'{"topic":"publicTrade.BTCUSDT","data":[{"T":1}]}')
    h.feed(b'{"op":"auth"}')
    h.feed(b'{"topic":"' + b"[" * 50_000 + b"]" * 50_000 + b'"}')
    assert dict(h.metrics.errors.counts) == {
        "bybit-linear: subscription error": 1, "bybit-linear: not a JSON object": 1,
        "bybit-linear: malformed JSON": 1, "bybit-linear: malformed trade": 1, "bybit-linear: unknown message": 2}


def test_kline_interval_names():
    assert [interval_name(x) for x in ("1", "5", "60", "240", "D", "W", "M", "x", "")] == [
        "1m", "5m", "1h", "4h", "1d", "1w", "1M", "", ""]


# --- simulate + run --endpoint -----------------------------------------------------------------

def test_simulate_and_run_publish_what_replay_does():
    replay, sink = replay_fixture(CAPTURE, exchange="bybit-linear")
    with SimProcess(CAPTURE, "--pace", "fast") as sim:
        r = run_cli("run", "--exchange", "bybit-linear", "--endpoint", sim.url, "--sink", "stdout",
                    "--max-frames", 58, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    s = cli_summary(r.stderr)
    assert s["frames"] == 58 and s["gaps"] == 0 and s["errors"] == 0
    counts = sink.counts()
    assert {k: v for k, v in s["events"].items() if k != "status"} == {k: v for k, v in counts.items() if k != "status"}
    lines = [json.loads(ln) for ln in r.stdout.splitlines() if ln]
    trades = [x for x in lines if x["topic"] == "trades"]
    assert [(t["symbol"], t["price"], t["trade_id"]) for t in trades] == [
        ("BTC-USDT-PERP", 16578.5, "20f43950-d8dd-5b31-9112-a178eb6023af")]
    liqs = [x for x in lines if x["topic"] == "liquidations"]
    assert [(x["symbol"], x["side"], x["price"]) for x in liqs] == [("ROSE-USDT-PERP", "buy", 0.04499)]
