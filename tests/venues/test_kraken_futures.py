"""Kraken Futures scheme on the recorded capture ``KRAKEN_FUTURES.ws.1.0`` (book, trade and
ticker_lite feeds of ten products, with the instrument listing in ``KRAKEN_FUTURES.0``).

The capture has no ``ticker`` feed (only ``ticker_lite``): funding rate and open interest are
tested on the ``ticker`` example of Kraken's Futures websocket documentation
(docs.futures.kraken.com, public feed "ticker": PI_XBTUSD, time 1612270825253).
"""
from __future__ import annotations

import json
from decimal import Decimal

from atomfast.book import ASK, BID
from atomfast.events import FundingRate, Lob, OpenInterest, Status, Ticker, Trade
from atomfast.exchanges import scheme_for, schemes
from atomfast.exchanges.kraken_futures import KrakenFuturesScheme
from atomfast.exchanges.kraken_futures.parse import parse_instruments, product_instrument, resolve_twins
from atomfast.scheme import Instrument
from atomfast.testing import Harness, RefBook, capture_instruments, decimal_levels, fixture_path, recv_frames

CAPTURE = "cryptofeed/KRAKEN_FUTURES.ws.1.0"

DOC_TICKER = """{"time": 1612270825253, "feed": "ticker", "product_id": "PI_XBTUSD", "bid": 34832.5,
 "ask": 34847.5, "bid_size": 42864, "ask_size": 2300, "volume": 262306237, "dtm": 0, "leverage": "50x",
 "index": 34803.45, "premium": 0.1, "last": 34852, "change": 2.995109121267192,
 "funding_rate": 3.891007752e-9, "funding_rate_prediction": 4.2233756e-9, "suspended": false,
 "tag": "perpetual", "pair": "XBT:USD", "openInterest": 107706940, "markPrice": 34844.25,
 "maturityTime": 0, "relative_funding_rate": 0.000135046879166667,
 "relative_funding_rate_prediction": 0.000146960125, "next_funding_rate_time": 1612281600000}"""


def _harness() -> tuple[Harness, list]:
    path = fixture_path(CAPTURE)
    return Harness(KrakenFuturesScheme, capture_instruments(path, KrakenFuturesScheme)), recv_frames(path)


def test_registry_and_symbols():
    assert schemes()["kraken-futures"] == [KrakenFuturesScheme]
    assert scheme_for("kraken-futures", "wss://futures.kraken.com/ws/v1") is KrakenFuturesScheme
    path = fixture_path(CAPTURE)
    inst = capture_instruments(path, KrakenFuturesScheme)
    # 17 tradeable contracts; the 10 indices (in_, rr_) are not markets
    assert len(inst) == 17
    assert inst["PI_XBTUSD"] == Instrument("PI_XBTUSD", "BTC-USD-PERP", "perp", "BTC", "USD", 1, 8)
    assert inst["FI_XBTUSD_210924"] == Instrument("FI_XBTUSD_210924", "BTC-USD-20210924", "future", "BTC", "USD", 1, 8,
                                                  "20210924")
    assert inst["PI_XRPUSD"].symbol == "XRP-USD-PERP" and inst["PI_XRPUSD"].price_decimals == 4
    assert inst["FI_ETHUSD_211231"].symbol == "ETH-USD-20211231" and inst["FI_ETHUSD_211231"].price_decimals == 2
    # today's listing has both PI_XBTUSD (inverse) and PF_XBTUSD (linear): the linear one keeps the name
    both = resolve_twins({p: product_instrument(p) for p in ("PI_XBTUSD", "PF_XBTUSD", "PF_XDGUSD", "FF_XBTUSD_261225")})
    assert both["PF_XBTUSD"].symbol == "BTC-USD-PERP" and both["PI_XBTUSD"].symbol == "BTC-USD-PERP-INV"
    assert both["PF_XDGUSD"].symbol == "DOGE-USD-PERP" and both["FF_XBTUSD_261225"].symbol == "BTC-USD-20261225"
    listing = b'{"result":"success","instruments":[{"symbol":"PF_XBTUSD","type":"flexible_futures","tickSize":1,' \
              b'"contractValueTradePrecision":4,"tradeable":true},{"symbol":"PF_SHIBUSD","tickSize":1e-08,' \
              b'"contractValueTradePrecision":-3,"tradeable":true}]}'
    parsed = parse_instruments(listing)
    assert parsed["PF_XBTUSD"][5:7] == (0, 4) and parsed["PF_SHIBUSD"][5:7] == (8, 0)


def test_subscriptions_plan_and_ping():
    h = Harness(KrakenFuturesScheme)
    s = KrakenFuturesScheme(h.pipeline.emit, h.metrics, {"PI_XBTUSD": product_instrument("PI_XBTUSD")}, ["BTC-USD-PERP"])
    plan = s.plan()
    # ticker, funding_rate and open_interest share one "ticker" subscription
    assert plan[0].subscriptions == [("book", ["PI_XBTUSD"]), ("trade", ["PI_XBTUSD"]), ("ticker", ["PI_XBTUSD"])]
    assert json.loads(s.subscribe_messages("book", ["PI_XBTUSD"])[0]) == {
        "event": "subscribe", "feed": "book", "product_ids": ["PI_XBTUSD"]}
    assert s.ping_interval <= 60 and s.ping_message() is None


def test_capture_trades_exact_and_once():
    h, frames = _harness()
    recorded = 0
    for ts, data in frames:
        h.feed(data, ts)
        msg = json.loads(data)
        if msg.get("feed") == "trade_snapshot":
            recorded += len(msg["trades"])
        elif msg.get("feed") == "trade" and "event" not in msg:
            recorded += 1
    trades = h.events("trades")
    assert recorded == 1003 and len(trades) == recorded
    assert len({t.trade_id for t in trades}) == 1003
    # the newest trade of the FI_BCHUSD_210730 snapshot (received 1626994927.7799182)
    assert Trade("kraken-futures", "BCH-USD-20210730", 439.2, 50.0, "buy", "8b3e7e72-950c-4c4e-8ab8-24aebcab80d2",
                 1626994887094, 1626994927779918) in trades
    # a live trade: {"feed":"trade","product_id":"PI_LTCUSD","uid":"e2429e31-...","side":"buy",...,"seq":5956,
    #   "time":1626994929946,"qty":320.0,"price":119.44} received 1626994929.92945
    assert Trade("kraken-futures", "LTC-USD-PERP", 119.44, 320.0, "buy", "e2429e31-8b9d-4195-900e-fd42be2dec89",
                 1626994929946, 1626994929929450) in trades
    # a snapshot is emitted oldest first
    bch = [t for t in trades if t.symbol == "BCH-USD-20210730"]
    assert [t.event_timestamp for t in bch] == sorted(t.event_timestamp for t in bch)
    # a snapshot repeated (a reconnect) emits nothing twice
    snap = next(d for _, d in frames if b'"trade_snapshot","product_id":"PI_LTCUSD"' in d)
    assert h.feed(snap) == []


def test_capture_book_sequence_and_levels():
    h, frames = _harness()
    ref: dict[str, RefBook] = {}
    expected_lob = 0
    for ts, data in frames:
        produced = h.feed(data, ts)
        msg = json.loads(data, parse_float=str)
        feed = msg.get("feed")
        if "event" in msg:
            continue
        if feed == "book_snapshot":
            book = ref[msg["product_id"]] = RefBook()
            for key, side in (("bids", "b"), ("asks", "a")):
                for lv in msg[key]:
                    expected_lob += book.set(side, lv["price"], lv["qty"])
        elif feed == "book":
            book = ref[msg["product_id"]]
            expected_lob += book.set("b" if msg["side"] == "buy" else "a", msg["price"], msg["qty"])
        for topic, rec in produced:
            if topic == "spread":
                assert tuple(Decimal(repr(x)) for x in rec[2:6]) == book.top()
    assert h.metrics.gaps == 0 and h.metrics.resyncs == 0 and h.metrics.errors.total == 0
    assert len(h.events("lob")) == expected_lob == 8585
    assert len(h.events("spread")) == 361
    for product, book in ref.items():
        assert decimal_levels(h.scheme.books[product].levels(BID)) == book.levels("b")
        assert decimal_levels(h.scheme.books[product].levels(ASK)) == book.levels("a")
    # {"feed":"book","product_id":"PI_XRPUSD","side":"sell","seq":3456140,"price":0.5897,"qty":3929.0,
    #  "timestamp":1626994928175} received 1626994928.148421
    assert Lob("kraken-futures", "XRP-USD-PERP", 0.5897, 3929.0, "sell", 1626994928175, 1626994928148421) in h.events("lob")
    snaps = [s for s in h.events("status") if s.status == "snapshot"]
    assert len(snaps) == 10 and snaps[0] == Status("kraken-futures", "BCH-USD-20210730", "snapshot", "",
                                                   1626994925378, 1626994927690547)


def test_dropped_delta_is_a_gap_and_resyncs():
    h, frames = _harness()
    clean = Harness(KrakenFuturesScheme, h.scheme.instruments)
    product, symbol = "PI_XRPUSD", "XRP-USD-PERP"
    deltas = [i for i, (_, d) in enumerate(frames) if d.startswith(b'{"feed":"book","product_id":"PI_XRPUSD"')]
    drop, inject = deltas[20], deltas[30]
    for i, (ts, data) in enumerate(frames):
        clean.feed(data, ts)
        if i == drop:
            continue
        produced = h.feed(data, ts)
        if i == deltas[21]:
            seq = json.loads(data)["seq"]
            assert h.metrics.gaps == 1 and h.metrics.resyncs == 1
            assert [r for t, r in produced if t == "status"] == [Status(
                "kraken-futures", symbol, "resync", f"sequence gap: expected seq {seq - 1}, got {seq}",
                ts // 1_000_000, ts // 1000)]
            assert [json.loads(s) for s in h.conn.sent] == [
                {"event": "unsubscribe", "feed": "book", "product_ids": [product]},
                {"event": "subscribe", "feed": "book", "product_ids": [product]}]
        elif deltas[21] < i <= inject:
            assert not [r for t, r in produced if t in ("lob", "spread") and r.symbol == symbol]
        if i == inject:
            book = clean.scheme.books[product]
            snap = {"feed": "book_snapshot", "product_id": product, "timestamp": 1626994940000,
                    "seq": clean.scheme.seqs[product], "tickSize": None,
                    "bids": [{"price": float(p), "qty": float(q)} for p, q in book.levels(BID)],
                    "asks": [{"price": float(p), "qty": float(q)} for p, q in book.levels(ASK)]}
            produced = h.feed(json.dumps(snap), ts)
            assert produced[0][1].status == "snapshot"
    assert h.metrics.gaps == 1 and h.metrics.resyncs == 1 and clean.metrics.gaps == 0
    later = [i for i in deltas if i > inject]
    assert later
    # after the fresh snapshot the deltas apply again and the book ends equal to the clean run's
    assert h.scheme.seqs[product] == clean.scheme.seqs[product]
    assert h.scheme.books[product].levels(BID) == clean.scheme.books[product].levels(BID)
    assert h.scheme.books[product].levels(ASK) == clean.scheme.books[product].levels(ASK)


def test_capture_ticker_lite():
    h, frames = _harness()
    h.feed_all(frames)
    tickers = h.events("ticker")
    assert len(tickers) == 107
    # {"feed":"ticker_lite","product_id":"FI_BCHUSD_210730","bid":439.3,"ask":439.6,...} at 1626994927.780419:
    # no sizes, no time in ticker_lite
    assert tickers[0] == Ticker("kraken-futures", "BCH-USD-20210730", 439.3, 0.0, 439.6, 0.0, 1626994927780,
                                1626994927780419)
    assert not h.events("funding_rate") and not h.events("open_interest")


def test_documented_ticker_funding_rate_and_open_interest():
    h = Harness(KrakenFuturesScheme, {"PI_XBTUSD": product_instrument("PI_XBTUSD", 1, 0)})
    produced = h.feed(DOC_TICKER, 1612270825300000000)
    assert produced == [
        ("ticker", Ticker("kraken-futures", "BTC-USD-PERP", 34832.5, 42864.0, 34847.5, 2300.0, 1612270825253,
                          1612270825300000)),
        ("funding_rate", FundingRate("kraken-futures", "BTC-USD-PERP", 34844.25, 0.000135046879166667,
                                     1612281600000, 0.000146960125, 1612270825253, 1612270825300000)),
        ("open_interest", OpenInterest("kraken-futures", "BTC-USD-PERP", 107706940.0, 1612270825253,
                                       1612270825300000)),
    ]
    # a dated future's ticker has no funding fields: ticker and open interest only
    dated = DOC_TICKER.replace("PI_XBTUSD", "FI_XBTUSD_210924")
    for key in ("funding_rate", "funding_rate_prediction", "relative_funding_rate",
                "relative_funding_rate_prediction", "next_funding_rate_time"):
        dated = dated.replace(f'"{key}"', f'"x_{key}"')
    assert [t for t, _ in h.feed(dated)] == ["ticker", "open_interest"]
    # only the topics asked for
    only = Harness(KrakenFuturesScheme, {"PI_XBTUSD": product_instrument("PI_XBTUSD")}, channels=["funding_rate"])
    assert [t for t, _ in only.feed(DOC_TICKER)] == ["funding_rate"]


def test_events_and_bad_input():
    h, frames = _harness()
    assert h.feed('{"event":"info","version":1}') == []
    assert h.feed('{"event":"subscribed","feed":"book","product_ids":["PI_XRPUSD"]}', 5_000_000_000) == [
        ("status", Status("kraken-futures", "XRP-USD-PERP", "subscribed", "book", 5000, 5000000))]
    h.feed('{"event":"error","message":"Invalid product id"}')
    h.feed('{"event":"subscribed_failed","feed":"book","product_ids":["PI_NOPE"],"message":"Invalid product id"}')
    h.feed('{"feed":"mystery"}')
    h.feed(b"\x00\x01")
    h.feed('{"feed":"book","product_id":"PI_XRPUSD"')
    h.feed(b'{"feed":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    counts = h.metrics.errors.counts
    assert dict(counts) == {"kraken-futures: exchange error": 1, "kraken-futures: subscription error": 1,
                            "kraken-futures: unknown message": 1, "kraken-futures: not a JSON object": 1,
                            "kraken-futures: malformed JSON": 2}
    # a synced book and a malformed delta (negative quantity, right seq): refused, product resynced
    h.feed_all(frames[:60])
    book = h.scheme.books["PI_XRPUSD"]
    levels = book.levels(BID)
    seq = h.scheme.seqs["PI_XRPUSD"] + 1
    bad = ('{"feed":"book","product_id":"PI_XRPUSD","side":"buy","seq":%d,"price":0.5,"qty":-1.0,'
           '"timestamp":1626994928175}' % seq)
    produced = h.feed(bad)
    assert levels and not [r for t, r in produced if t == "lob"]
    assert [r.status for t, r in produced if t == "status"] == ["resync"]
    assert "PI_XRPUSD" in h.scheme.unsynced and h.metrics.gaps == 0
    assert counts["kraken-futures: malformed book delta"] == 1
