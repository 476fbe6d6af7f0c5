"""Poloniex v3 on real and documented messages.

Spot (``poloniex``): the recorded capture ``cryptofeed/POLONIEX.ws.1.0`` (2022-08-22, v3
``wss://ws.poloniex.com/ws/public``: ``book_lv2`` and ``trades`` of eleven markets) with its
listing ``POLONIEX.0`` (``GET /markets``).

Futures v3 (``poloniex-futures``): no recording exists; ``tests/data/poloniex/POLONIEX_FUTURES.ws.1.0``
holds the documentation's push examples (``book_lv2`` snapshot, ``funding_rate``) and one
published real snapshot + update pair; its README names each message's source.

The book rule under test (both): a snapshot sets the last id; an update's previous id (spot
``lastId``, futures ``lid``) must equal it, else a gap: status ``resync``, ``book_lv2``
unsubscribed and subscribed again, the book rebuilt from the next snapshot.
"""
from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from atomfast.book import ASK, BID
from atomfast.capture import open_capture
from atomfast.events import Candle, FundingRate, Lob, OpenInterest, Status, Trade
from atomfast.exchanges.poloniex import PoloniexFuturesScheme, PoloniexScheme
from atomfast.exchanges.poloniex.parse import guess_instrument, parse_products
from atomfast.replay import Replay
from atomfast.scheme import Instrument
from atomfast.testing import (ROOT, Harness, MemorySink, RefBook, SimProcess, capture_instruments, cli_summary,
                              decimal_levels, faulty, fixture_path, recv_frames, run_cli)

CAPTURE = "cryptofeed/POLONIEX.ws.1.0"
FUTURES = ROOT / "tests" / "data" / "poloniex" / "POLONIEX_FUTURES.ws.1.0"
DEPTH = 20


def _spot() -> tuple[Harness, list]:
    path = fixture_path(CAPTURE)
    return Harness(PoloniexScheme, capture_instruments(path, PoloniexScheme)), recv_frames(path)


def _futures() -> tuple[Harness, list]:
    return Harness(PoloniexFuturesScheme, capture_instruments(FUTURES, PoloniexFuturesScheme)), recv_frames(FUTURES)


class Reference:
    """An independent model of the spot feed: RefBooks per market, the ``lastId`` chain, the lob
    events (a level set, a level removed, a level pushed beyond the depth) and top changes."""

    def __init__(self, prev: str = "lastId", name: str = "symbol") -> None:
        self.books: dict[str, RefBook] = {}
        self.ids: dict[str, int] = {}
        self.lob = self.spread = 0
        self.prev, self.name = prev, name

    def feed(self, data: bytes) -> None:
        msg = json.loads(data)
        if msg.get("channel") != "book_lv2" or "event" in msg:
            return
        for item in msg["data"]:
            native = item[self.name]
            if msg["action"] == "snapshot":
                book = self.books[native] = RefBook()
                before = (None, None, None, None)
            else:
                book = self.books[native]
                assert item[self.prev] == self.ids[native]
                before = book.top()
            for key, side in (("bids", "b"), ("asks", "a")):
                for price, size in item[key]:
                    self.lob += book.set(side, price, size)
            self.lob += book.truncate(DEPTH)
            self.ids[native] = item["id"]
            if book.top() != before:
                self.spread += 1


# --- instruments, subscriptions -------------------------------------------------------------------
def test_instruments_and_symbols():
    inst = capture_instruments(fixture_path(CAPTURE), PoloniexScheme)
    assert len(inst) == 524
    # {"symbol": "MDT_BTC", ..., "symbolTradeLimit": {"priceScale": 9, "quantityScale": 0, ...}}: 9 price decimals
    assert inst["MDT_BTC"] == Instrument("MDT_BTC", "MDT-BTC", "spot", "MDT", "BTC", 9, 8)
    assert inst["BTC_USDT"].symbol == "BTC-USDT"
    assert guess_instrument("ETH_USDT_PERP", True).symbol == "ETH-USDT-PERP"
    with pytest.raises(KeyError):
        guess_instrument("ETH_USDT", True)
    with pytest.raises(KeyError):
        guess_instrument("ETHUSDT", False)
    futures = capture_instruments(FUTURES, PoloniexFuturesScheme)
    assert futures == {"BTC_USDT_PERP": Instrument("BTC_USDT_PERP", "BTC-USDT-PERP", "perp", "BTC", "USDT", 8, 8)}
    body = b'{"code":200,"data":[{"symbol":"ETH_USDT_PERP","bCcy":"ETH","qCcy":"USDT","tSz":"0.01","lotSz":1}]}'
    assert parse_products(body)["ETH_USDT_PERP"][5:7] == (8, 8)


def test_subscriptions_plan_and_ping():
    inst = capture_instruments(fixture_path(CAPTURE), PoloniexScheme)
    h = Harness(PoloniexScheme, inst, channels=["lob", "trades", "candle"], symbols=["BTC-USDT", "ETH-USDT"])
    plan = h.scheme.plan()
    assert plan[0].url == "wss://ws.poloniex.com/ws/public"
    assert plan[0].subscriptions == [("book_lv2", ["BTC_USDT", "ETH_USDT"]), ("trades", ["BTC_USDT", "ETH_USDT"]),
                                     ("candles_minute_1", ["BTC_USDT", "ETH_USDT"])]
    assert [json.loads(x) for x in h.scheme.subscribe_plan(plan[0])][0] == {
        "event": "subscribe", "channel": ["book_lv2"], "symbols": ["BTC_USDT", "ETH_USDT"]}
    assert h.scheme.ping_message() == '{"event":"ping"}' and h.scheme.ping_interval < 30
    assert "ticker" not in PoloniexScheme.channels  # the spot ticker has no best bid/ask (module doc)
    f = Harness(PoloniexFuturesScheme, capture_instruments(FUTURES, PoloniexFuturesScheme), symbols=["BTC-USDT-PERP"])
    assert f.scheme.plan()[0].url == "wss://ws.poloniex.com/ws/v3/public"
    assert [c for c, _ in f.scheme.plan()[0].subscriptions] == ["book_lv2", "funding_rate", "open_interest"]


# --- the spot capture -----------------------------------------------------------------------------
def test_capture_book_against_reference():
    h, frames = _spot()
    ref = Reference()
    for ts, data in frames:
        produced = h.feed(data, ts)
        ref.feed(data)
        for topic, rec in produced:
            if topic == "spread":
                book = ref.books[h.scheme.instruments[rec.symbol.replace("-", "_")].native]
                assert tuple(Decimal(repr(x)) for x in rec[2:6]) == book.top()
    assert h.metrics.gaps == 0 and h.metrics.resyncs == 0 and h.metrics.errors.total == 0
    assert len(h.events("lob")) == ref.lob == 948
    assert len(h.events("spread")) == ref.spread == 125
    assert len(ref.books) == 11
    for native, book in ref.books.items():
        assert decimal_levels(h.scheme.books[native].levels(BID)) == book.levels("b")
        assert decimal_levels(h.scheme.books[native].levels(ASK)) == book.levels("a")
        assert h.scheme.ids[native] == ref.ids[native]
    # {"symbol":"BTC_USDT","createTime":1661123517832,"asks":[["21617.15","0.34"]],"bids":[],"lastId":4485675,
    #  "id":4485676,"ts":1661123517837} received 1661123517.945039
    assert Lob("poloniex", "BTC-USDT", 21617.15, 0.34, "sell", 1661123517837, 1661123517945039) in h.events("lob")
    assert h.scheme.ids["SOL_USDT"] == 1838434  # the capture's last SOL_USDT update
    snaps = [s for s in h.events("status") if s.status == "snapshot"]
    assert len(snaps) == 11 and snaps[0] == Status("poloniex", "USDJ-USDT", "snapshot", "", 1661123517823,
                                                   1661123517853324)
    subscribed = [s for s in h.events("status") if s.status == "subscribed"]
    assert Counter(s.reason for s in subscribed) == {"trades": 11, "book_lv2": 11}


def test_capture_trades_exact():
    h, frames = _spot()
    h.feed_all(frames)
    trades = h.events("trades")
    assert len(trades) == 6
    # {"symbol":"BTC_USDT","amount":"248.3516391","quantity":"0.01149","takerSide":"sell","createTime":1661123520381,
    #  "price":"21614.59","id":"60184114","ts":1661123520386} received 1661123520.424012
    assert Trade("poloniex", "BTC-USDT", 21614.59, 0.01149, "sell", "60184114", 1661123520381,
                 1661123520424012) in trades


def test_replay_summary():
    """The whole capture through the product's Replay (the row for tests/test_captures.py)."""
    sink = MemorySink()
    replay = Replay(open_capture(fixture_path(CAPTURE)), "poloniex", sink, scheme_cls=PoloniexScheme)
    replay.run(0)
    s = replay.metrics.summary()
    # 302 frames: 2 subscription answers, 11 snapshots, 283 updates, 6 trade messages; status: connected,
    # 22 subscribed (11 markets x 2 channels), 11 snapshots
    assert (s["frames"], s["events"], s["gaps"], s["resyncs"], s["errors"]) == (
        302, {"lob": 948, "spread": 125, "status": 34, "trades": 6}, 0, 0, 0)


# --- the sync rule: drop, duplicate, reorder one real update --------------------------------------
def _btc_updates(frames) -> list[int]:
    return [i for i, (_, d) in enumerate(frames)
            if b'"symbol":"BTC_USDT"' in d and b'"action":"update"' in d]


def _snapshot_from(clean: Harness, native: str) -> bytes:
    """A fresh snapshot as the exchange would send it after the resubscription: the clean run's
    book and last id (the exchange's view at that moment)."""
    book = clean.scheme.books[native]
    last = clean.scheme.ids[native]
    return json.dumps({"channel": "book_lv2", "action": "snapshot", "data": [{
        "symbol": native, "createTime": 1661123540000, "asks": [list(x) for x in book.levels(ASK)],
        "bids": [list(x) for x in book.levels(BID)], "lastId": last - 1, "id": last, "ts": 1661123540000}]}).encode()


@pytest.mark.parametrize("fault", ["drop", "duplicate", "reorder"])
def test_fault_is_a_gap_and_the_book_is_rebuilt(fault):
    h, frames = _spot()
    clean = Harness(PoloniexScheme, h.scheme.instruments)
    ref = Reference()
    native, symbol = "BTC_USDT", "BTC-USDT"
    ups = _btc_updates(frames)
    assert len(ups) > 40
    k, inject = ups[10], ups[30]
    stream = faulty(frames, k, fault, ups[11])  # (reorder: with the market's next update)
    broken_at = None
    for ts, data in frames:
        clean.feed(data, ts)
        if (ts, data) == frames[inject]:
            break
    for j, (ts, data) in enumerate(stream):
        produced = h.feed(data, ts)
        if broken_at is None and h.metrics.gaps:
            broken_at = j
            item = json.loads(data)["data"][0]
            assert [r for t, r in produced if t == "status"] == [Status(
                "poloniex", symbol, "resync", f"gap: lastId {item['lastId']} is not the last id "
                f"{json.loads(stream[j - 1][1])['data'][0]['id'] if fault != 'drop' else item['lastId'] - 1}",
                ts // 1_000_000, ts // 1000)]
            assert [json.loads(x) for x in h.conn.sent] == [
                {"event": "unsubscribe", "channel": ["book_lv2"], "symbols": [native]},
                {"event": "subscribe", "channel": ["book_lv2"], "symbols": [native]}]
            assert native in h.scheme.unsynced and h.scheme.books[native].count(0) == 0
        elif broken_at is not None and native in h.scheme.unsynced:
            assert not [r for t, r in produced if t in ("lob", "spread") and r.symbol == symbol]
        if (ts, data) == frames[inject]:
            break
    assert broken_at is not None and h.metrics.gaps == 1 and h.metrics.resyncs == 1
    # the fresh snapshot after the resubscription rebuilds the book; later updates chain on it
    snap = _snapshot_from(clean, native)
    produced = h.feed(snap, frames[inject][0])
    assert produced[0][1] == Status("poloniex", symbol, "snapshot", "", 1661123540000, frames[inject][0] // 1000)
    ref.feed(snap)
    for ts, data in frames[inject + 1:]:
        h.feed(data, ts)
        clean.feed(data, ts)
        if b'"symbol":"BTC_USDT"' in data and b'"book_lv2"' in data:
            ref.feed(data)
    assert h.metrics.gaps == 1 and native not in h.scheme.unsynced
    assert h.scheme.books[native].levels(BID) == clean.scheme.books[native].levels(BID)
    assert h.scheme.books[native].levels(ASK) == clean.scheme.books[native].levels(ASK)
    assert decimal_levels(h.scheme.books[native].levels(BID)) == ref.books[native].levels("b")
    assert decimal_levels(h.scheme.books[native].levels(ASK)) == ref.books[native].levels("a")


def test_depth_is_kept_to_twenty():
    """An update that adds a level beyond the 20th pushes the worst out, published as a removal."""
    h, frames = _spot()
    h.feed_all(frames[:14])
    book = h.scheme.books["BCH_USDT"]
    assert book.count(ASK) == 20 and book.count(BID) == 20
    worst_ask = book.levels(ASK)[-1]
    last = h.scheme.ids["BCH_USDT"]
    upd = {"channel": "book_lv2", "action": "update", "data": [{"symbol": "BCH_USDT", "createTime": 1, "asks": [
        ["120.25", "1"]], "bids": [], "lastId": last, "id": last + 1, "ts": 1661123518000}]}
    produced = h.feed(upd)
    lobs = [r for t, r in produced if t == "lob"]
    assert lobs[0][2:5] == (120.25, 1.0, "sell") and lobs[1][2:5] == (float(worst_ask[0]), 0.0, "sell")
    assert book.count(ASK) == 20


# --- futures v3 (documented messages) -------------------------------------------------------------
def test_futures_documented_messages():
    h, frames = _futures()
    out = h.feed_all(frames)
    assert h.metrics.errors.total == 0 and h.metrics.gaps == 0
    # the documented snapshot: asks [["46100","9284"]], bids [["34400.089","1"]], ts 1718870001418
    assert out[:3] == [
        ("status", Status("poloniex-futures", "BTC-USDT-PERP", "snapshot", "", 1718870001418, 1718870001500000)),
        ("lob", Lob("poloniex-futures", "BTC-USDT-PERP", 34400.089, 1.0, "buy", 1718870001418, 1718870001500000)),
        ("lob", Lob("poloniex-futures", "BTC-USDT-PERP", 46100.0, 9284.0, "sell", 1718870001418, 1718870001500000))]
    # the documented funding_rate: fR "0.000619", nFR "0.000003", nFT 1718874900000, ts 1718874420000
    assert h.events("funding_rate") == [FundingRate("poloniex-futures", "BTC-USDT-PERP", 0.0, 0.000619,
                                                    1718874900000, 0.000003, 1718874420000, 1718874420100000)]
    # the published pair: update lid 6284171742 = the snapshot's id; ["86571.74","0"] deletes a level not held
    assert h.scheme.ids["BTC_USDT_PERP"] == 6284171757
    assert h.events("lob")[-1] == Lob("poloniex-futures", "BTC-USDT-PERP", 86581.72, 545.0, "buy", 1790134293834,
                                      1790134293900000)
    assert h.scheme.books["BTC_USDT_PERP"].levels(BID) == [("86651.86", "1"), ("86620.61", "1636"),
                                                           ("86614.11", "1642"), ("86581.72", "545")]


def test_futures_duplicate_update_is_a_gap():
    h, frames = _futures()
    h.feed_all(frames)
    produced = h.feed(frames[-1][1], frames[-1][0])  # the update again: lid 6284171742, last id 6284171757
    assert [r for t, r in produced if t == "status"] == [Status(
        "poloniex-futures", "BTC-USDT-PERP", "resync", "gap: lid 6284171742 is not the last id 6284171757",
        1790134293900, 1790134293900000)]
    assert [json.loads(x)["event"] for x in h.conn.sent] == ["unsubscribe", "subscribe"]
    # the next snapshot rebuilds it
    h.feed(frames[-2][1], frames[-2][0])
    assert "BTC_USDT_PERP" not in h.scheme.unsynced and h.scheme.books["BTC_USDT_PERP"].count(BID) == 3


def test_futures_open_interest_fields():
    """``open_interest`` as the documentation's field table gives it (s, oInterest, ts); the stored
    page has no push example, so these values are this test's own."""
    h, _ = _futures()
    msg = '{"channel":"open_interest","data":[{"s":"BTC_USDT_PERP","oInterest":"1234","ts":1718870002000}]}'
    assert h.feed(msg, 1718870002100000000) == [("open_interest", OpenInterest(
        "poloniex-futures", "BTC-USDT-PERP", 1234.0, 1718870002000, 1718870002100000))]
    h.feed('{"channel":"open_interest","data":[{"s":"BTC_USDT_PERP","oInterest":"-1","ts":1}]}')
    h.feed('{"channel":"funding_rate","data":[{"s":"BTC_USDT_PERP","fR":"x","nFR":"0","ts":1,"nFT":1}]}')
    assert dict(h.metrics.errors.counts) == {"poloniex-futures: malformed open interest": 1,
                                             "poloniex-futures: malformed funding rate": 1}


def test_spot_candle_fields():
    """``candles_minute_1`` as Poloniex's spot docs list its fields; the values are this test's own."""
    h, _ = _spot()
    msg = ('{"channel":"candles_minute_1","data":[{"symbol":"BTC_USDT","amount":"10","high":"2","quantity":"5",'
           '"tradeCount":3,"low":"1","closeTime":1661123579999,"startTime":1661123520000,"close":"1.5","open":"1.2",'
           '"ts":1661123521000}]}')
    assert h.feed(msg, 1661123521100000000) == [("candle", Candle(
        "poloniex", "BTC-USDT", 1661123520000, 1661123579999, "1m", 3, False, 1.2, 2.0, 1.0, 1.5, 5.0, 1661123521000,
        1661123521100000))]


# --- events and bad input -------------------------------------------------------------------------
def test_events_and_bad_input():
    h, frames = _spot()
    assert h.feed('{"event":"pong"}') == []
    h.feed('{"event":"error","message":"Invalid channel values [\\"nope\\"]"}')
    h.feed('{"channel":"mystery","data":[]}')
    h.feed('{"channel":[],"data":[]}')  # (a list is no route key: found by the fuzz test)
    h.feed(b"\x00\x01")
    h.feed('{"channel":"book_lv2"')
    h.feed(b'{"channel":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    h.feed('{"channel":"trades","data":[{"symbol":"BTC_USDT","price":"-1","quantity":"1","takerSide":"buy",'
           '"id":"1","createTime":1}]}')
    assert dict(h.metrics.errors.counts) == {"poloniex: exchange error": 1, "poloniex: unknown channel": 2,
                                             "poloniex: not a JSON object": 1, "poloniex: malformed JSON": 2,
                                             "poloniex: malformed trade": 1}
    assert h.events("status")[-1].status == "stopped"
    # a synced book and a malformed update (a negative size, the right lastId): refused, resynced, not a gap
    h.feed_all(frames[:20])
    last = h.scheme.ids["BTC_USDT"]
    levels = h.scheme.books["BTC_USDT"].levels(BID)
    bad = {"channel": "book_lv2", "action": "update", "data": [{"symbol": "BTC_USDT", "createTime": 1, "asks": [],
                                                                "bids": [["1", "-1"]], "lastId": last, "id": last + 1,
                                                                "ts": 1661123518000}]}
    produced = h.feed(bad)
    assert levels and not [r for t, r in produced if t == "lob"]
    assert [r.status for t, r in produced if t == "status"] == ["resync"]
    assert "BTC_USDT" in h.scheme.unsynced and h.metrics.gaps == 0
    assert h.metrics.errors.counts["poloniex: malformed book update"] == 1
    # a book message of the wrong shape names its market: that book resyncs too
    h2, frames2 = _spot()
    h2.feed_all(frames2[:20])
    h2.feed('{"channel":"book_lv2","action":"update","data":[{"symbol":"ZEC_USDT","id":"x"}]}')
    assert "ZEC_USDT" in h2.scheme.unsynced and h2.metrics.errors.counts["poloniex: malformed book message"] == 1


# --- simulate + run --endpoint ---------------------------------------------------------------------
@pytest.mark.parametrize("capture,exchange,symbols", [
    (CAPTURE, "poloniex", "BCH-USDT,EFI-USDT,USDJ-USDT,DYP-USDT,SOL-USDT,MDT-BTC,GRT-USDT,GF-USDT,BCH-BTC,ZEC-USDT,"
                          "BTC-USDT"),
    (FUTURES, "poloniex-futures", "BTC-USDT-PERP"),
], ids=["spot", "futures"])
def test_simulator_and_run_endpoint(capture, exchange, symbols):
    """``atomfast simulate CAPTURE`` + ``atomfast run --exchange X --endpoint ws://...`` publishes what
    the replay does (the real network path)."""
    path = capture if isinstance(capture, Path) else fixture_path(capture)
    cls = PoloniexScheme if exchange == "poloniex" else PoloniexFuturesScheme
    replay = Replay(open_capture(path), exchange, MemorySink(), scheme_cls=cls)
    replay.run(0)
    offline = replay.metrics.summary()
    with SimProcess(path, "--pace", "fast") as sim:
        r = run_cli("run", "--exchange", exchange, "--endpoint", sim.url, "--sink", "stdout", "--symbols", symbols,
                    "--max-frames", offline["frames"], timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    s = cli_summary(r.stderr)
    assert s["frames"] == offline["frames"] and s["gaps"] == 0 and s["errors"] == 0
    for topic in ("lob", "spread", "trades", "funding_rate"):
        assert s["events"].get(topic, 0) == offline["events"].get(topic, 0), topic
    topics = Counter(json.loads(ln)["topic"] for ln in r.stdout.splitlines() if ln)
    assert topics["lob"] == offline["events"]["lob"]


# --- the book route (a book frame decoded whole, its levels read from the JSON text) ------------
def _pair(cls, path):
    """The scheme as it runs (a ``{"channel":"book_lv2"`` frame routed to ``_on_book_frame``) and
    the same scheme taking every frame by its envelope (``_on_book``): what both must do alike."""
    inst = capture_instruments(path, cls)
    fast, whole = Harness(cls, inst), Harness(cls, inst)
    whole.scheme.on_frame = whole.driver.on_frame = whole.scheme._envelope
    return fast, whole


def _same(fast: Harness, whole: Harness) -> None:
    assert fast.records == whole.records
    assert fast.reports == whole.reports
    assert dict(fast.metrics.errors.counts) == dict(whole.metrics.errors.counts)
    assert fast.metrics.gaps == whole.metrics.gaps
    assert fast.conn.sent == whole.conn.sent
    assert fast.scheme.ids == whole.scheme.ids and fast.scheme.unsynced == whole.scheme.unsynced
    assert sorted(fast.scheme.books) == sorted(whole.scheme.books)
    for native, book in fast.scheme.books.items():
        other = whole.scheme.books[native]
        assert book.levels(BID) == other.levels(BID) and book.levels(ASK) == other.levels(ASK)


def _variants(frame: bytes, prev: str, name: str) -> list[bytes]:
    """Faulty and unusual versions of one book update: each must be read as ``_on_book`` reads it."""
    msg = json.loads(frame)
    item = msg["data"][0]
    out = []

    def put(**changes):
        m2 = json.loads(frame)
        for k, v in changes.items():
            if k in ("action", "event", "channel", "data"):
                m2[k] = v
            elif v is None:
                m2["data"][0].pop(k, None)
            else:
                m2["data"][0][k] = v
        out.append(json.dumps(m2, separators=(",", ":")).encode())

    side = "bids" if item["bids"] else "asks"
    price = (item[side] or [["1", "1"]])[0][0]
    for levels in ([[price, "-1"]], [[price, 1]], [["0", "1"]], [[price, "1.1234567890123"]], [[price, "1e5"]],
                   [["123456789012.5", "1"]], [["12345678901234567", "1"]], [[price, "0.5", "x"]], [[price]], [],
                   "x", [[price, " 1"]], [[price, "01"]], [[price + "0", "0"]], [[price, "0"], [price, "2"]]):
        put(**{side: levels})
    put(bids=None, asks=None)
    out.append(frame.replace(b'"' + side.encode() + b'":[', b'"' + side.encode() + b'":[ ', 1))
    put(**{prev: item[prev] + 1})
    put(**{prev: "x"})
    put(id=-1)
    put(id=2**63)
    put(ts=-1)
    put(ts=10**14)
    put(ts=1.5)
    put(**{name: "NOPE_USDT"})
    put(**{name: "nope"})
    put(**{name: 5})
    put(action="delete")
    put(action=None)
    put(event="subscribe")
    put(data=[])
    put(data=[item, item])
    put(data={})
    out.append(frame.replace(b'"action":"update"', b'"action":"update","channel":"trades"'))
    out.append(frame[:-5])
    out.append(frame.replace(b'{"channel":"book_lv2"', b'{"channel": "book_lv2"'))
    out.append(frame.replace(b'{"channel":"book_lv2"', b'{"channel":"book_lv2x"'))
    return out


@pytest.mark.parametrize("market", ["spot", "futures"])
def test_book_route_reads_as_the_envelope_does(market):
    """Every frame of the capture, then each faulty version of an update (levels that are no
    strings, signed, too precise, a gap, an id, time, market or action out of the rules, two
    items, an event): the book route (levels read from the raw JSON text) gives the same records,
    bad input, gaps, resubscriptions and books as the envelope's ``_on_book``; each fault after a
    fresh start, and the capture's own frames after it again."""
    cls, path = (PoloniexScheme, fixture_path(CAPTURE)) if market == "spot" else (PoloniexFuturesScheme, FUTURES)
    prev, name = ("lastId", "symbol") if market == "spot" else ("lid", "s")
    frames = recv_frames(path)
    fast, whole = _pair(cls, path)
    fast.feed_all(frames)
    whole.feed_all(frames)
    _same(fast, whole)
    assert fast.records and not [r for r in fast.reports]
    updates = [i for i, (_, d) in enumerate(frames)
               if b'"action":"update"' in d and d.startswith(b'{"channel":"book_lv2"')]
    snapshots = [i for i, (_, d) in enumerate(frames) if b'"action":"snapshot"' in d]
    assert updates and snapshots
    cases = [(i, v) for i in (updates[0], updates[-1], snapshots[0]) for v in _variants(frames[i][1], prev, name)]
    if market == "spot":  # (a snapshot's faults before the market's first book, too)
        cases += [(snapshots[0], v.replace(b'"action":"update"', b'"action":"snapshot"'))
                  for v in _variants(frames[updates[0]][1], prev, name)]
    for i, variant in cases:
        fast, whole = _pair(cls, path)
        for h in (fast, whole):
            h.feed_all(frames[:i])
            h.feed(variant, frames[i][0])
            h.feed_all(frames[i:])
        _same(fast, whole)
