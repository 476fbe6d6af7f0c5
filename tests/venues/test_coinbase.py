"""Coinbase Exchange scheme.

The recorded capture ``COINBASE.ws.28.0`` (old ``ws-feed.pro.coinbase.com``, same message
shapes as ``ws-feed.exchange.coinbase.com``) holds the ``level2``, ``ticker`` and ``matches``
channels of 10 products and no ``full`` channel data. It is replayed through
``atomfast.replay.Replay`` with an in-memory sink, and through an independent reference model
written here (dicts of Decimal), so the counts asserted are not just what the scheme produces
(the capture's summary is a row of tests/test_captures.py).

The ``full`` channel (level 3) is tested with the message shapes of Coinbase's documentation
(docs.cloud.coinbase.com/exchange/docs/websocket-channels: received, open, done, match,
change, activate; the changelog's ``modify_order`` change with ``old_price``/``new_price``; the
REST ``/products/{id}/book?level=3`` answer): once with the documented example messages
(sequence numbers renumbered into one stream, order ids and values as documented), and with a
longer stream generated in those shapes from a reference order book
(``atomfast.testing.CoinbaseOrders``), which also answers the scheme's snapshot requests.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from decimal import Decimal
from pathlib import Path

import pytest

from atomfast.book import ASK, BID
from atomfast.capture import OPEN, RECV
from atomfast.events import Lob, LobL3, Spread, Status, Ticker, Trade, TradeL3
from atomfast.exchanges import scheme_for
from atomfast.exchanges.coinbase import CoinbaseScheme
from atomfast.exchanges.coinbase.parse import parse_products, rfc3339_to_ms
from atomfast.testing import (
    T0,
    CoinbaseOrders,
    Harness,
    RefBook,
    capture_instruments,
    coinbase_l3_stream,
    fixture_path,
    of,
    replay_fixture,
)
from atomfast.testing import capture_frames as _capture_frames

CAPTURE = "cryptofeed/COINBASE.ws.28.0"
LISTING = "cryptofeed/COINBASE.0"


@functools.lru_cache(maxsize=1)
def replay():
    """The capture through Replay (once per session: the tests only read the result)."""
    return replay_fixture(CAPTURE, exchange="coinbase")


def capture_frames() -> list:
    return _capture_frames(CAPTURE)


def listing() -> dict:
    return capture_instruments(CAPTURE, CoinbaseScheme)


# ------------------------------------------------------------------------------------------------
# an independent model of the level-2 capture (Decimal dicts)


class RefL2:
    """Coinbase level 2 as the docs describe it: snapshot, then absolute sizes per level."""

    def __init__(self) -> None:
        self.books: dict[str, RefBook] = {}
        self.lob = 0
        self.spread = 0
        self.tops: dict[str, tuple] = {}

    def frame(self, msg: dict) -> None:
        kind = msg.get("type")
        if kind == "snapshot":
            pid = msg["product_id"]
            book = self.books[pid] = RefBook("buy", "sell")
            self.lob += book.load("buy", msg["bids"]) + book.load("sell", msg["asks"])
            self.spread += 1
            self.tops[pid] = book.top()
        elif kind == "l2update":
            pid = msg["product_id"]
            book = self.books[pid]
            before = self.tops[pid]
            near_top = False
            for side, p, q in msg["changes"]:
                best = before[0] if side == "buy" else before[2]
                if best is None or (Decimal(p) >= best if side == "buy" else Decimal(p) <= best):
                    near_top = True  # only a change at or better than the best can move the top
                self.lob += book.set(side, p, q)
            if near_top:
                self.tops[pid] = book.top()
                if self.tops[pid] != before:
                    self.spread += 1

    def levels(self, product, side):
        return self.books[product].levels(side)


def assert_l2_equal(scheme, product, ref: RefL2) -> None:
    book = scheme.books[product]
    for side, name in ((BID, "buy"), (ASK, "sell")):
        got = [(Decimal(p), Decimal(q)) for p, q in book.levels(side)]
        assert got == ref.levels(product, name), (product, name)
    book._validate()


# ------------------------------------------------------------------------------------------------
# registry, instruments, helpers


def test_registry_and_channel_map():
    assert scheme_for("coinbase") is CoinbaseScheme
    assert scheme_for("coinbase", "wss://ws-feed.pro.coinbase.com") is CoinbaseScheme
    assert CoinbaseScheme.channels == {"lob": "level2_batch", "trades": "matches", "ticker": "ticker",
                                       "lob_l3": "full", "trades_l3": "full"}
    assert CoinbaseScheme.default_channels == ("lob", "trades", "ticker")


def test_instruments_from_recorded_listing():
    inst = listing()
    assert len(inst) == 162
    band = inst["BAND-GBP"]
    assert (band.native, band.symbol, band.kind, band.base, band.quote) == ("BAND-GBP", "BAND-GBP", "spot", "BAND", "GBP")
    assert (band.price_decimals, band.size_decimals) == (8, 8)  # increments 0.0001 / 0.01, at least 8
    skl = inst["SKL-BTC"]
    assert (skl.symbol, skl.price_decimals, skl.size_decimals) == ("SKL-BTC", 8, 8)
    assert inst["BTC-USD"].symbol == "BTC-USD"
    assert all(i.kind == "spot" and i.symbol == f"{i.base}-{i.quote}" for i in inst.values())


def test_exact_timestamps():
    assert rfc3339_to_ms("2021-04-17T16:43:37.089723Z") == 1618677817089
    assert rfc3339_to_ms("2021-04-17T16:43:37.089723Z") == 1618677817089  # cached second
    assert rfc3339_to_ms("2014-11-07T08:19:27.028459Z") == 1415348367028
    assert rfc3339_to_ms("2022-06-06T22:55:43.433114Z") == 1654556143433
    assert rfc3339_to_ms("2021-04-17T16:43:37Z") == 1618677817000
    assert rfc3339_to_ms("2021-04-17T16:43:37.9+00:00") == 1618677817900
    for bad in ("", "2021-04-17", "2021-13-17T16:43:37Z", "2021-04-17T16:43:37.Z", "2021-04-17T16:43:37.1X",
                "2021-04-17T25:43:37Z", "x" * 30, "2021-04-17T16:43:3a.1Z"):
        with pytest.raises(ValueError):
            rfc3339_to_ms(bad)


def test_subscribe_messages_plan_and_auth(monkeypatch):
    monkeypatch.delenv("COINBASE_API_KEY", raising=False)
    h = Harness(CoinbaseScheme, channels=("lob", "trades", "ticker", "lob_l3", "trades_l3"),
                instruments=parse_products(b'[{"id":"BTC-USD","base_currency":"BTC","quote_currency":"USD"}]'))
    s = h.scheme
    assert json.loads(s.subscribe_messages("level2_batch", ["BTC-USD", "ETH-USD"])[0]) == {
        "type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channels": ["level2_batch"]}
    # full needs authentication; without credentials the message is plain
    assert json.loads(s.subscribe_messages("full", ["BTC-USD"])[0]) == {
        "type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["full"]}
    s.symbols = ["BTC-USD"]
    plans = s.plan()
    # lob_l3 and trades_l3 share the full channel: subscribed once
    assert plans[0].subscriptions == [("level2_batch", ["BTC-USD"]), ("matches", ["BTC-USD"]), ("ticker", ["BTC-USD"]),
                                      ("full", ["BTC-USD"])]
    secret = base64.b64encode(b"sekrit").decode()
    monkeypatch.setenv("COINBASE_API_KEY", "k1")
    monkeypatch.setenv("COINBASE_API_SECRET", secret)
    monkeypatch.setenv("COINBASE_API_PASSPHRASE", "pp")
    msg = json.loads(s.subscribe_messages("full", ["BTC-USD"])[0])
    want = base64.b64encode(hmac.new(b"sekrit", f"{msg['timestamp']}GET/users/self/verify".encode(),
                                     hashlib.sha256).digest()).decode()
    assert (msg["key"], msg["passphrase"], msg["signature"]) == ("k1", "pp", want)
    assert "signature" not in json.loads(s.subscribe_messages("ticker", ["BTC-USD"])[0])


# ------------------------------------------------------------------------------------------------
# the recorded capture


def test_capture_replay_counts_and_books():
    rp, sink = replay()
    # the independent model agrees on the level-2 counts (the capture's row in
    # tests/test_captures.py) and on every final book
    ref = RefL2()
    frames = [f for f in capture_frames() if f.kind == RECV]
    for f in frames:
        ref.frame(json.loads(f.data))
    assert (ref.lob, ref.spread) == (18081, 1778)
    assert len(ref.books) == 10
    for product in ref.books:
        assert_l2_equal(rp.scheme, product, ref)
    # status: connected, 30 subscriptions (10 products x level2, ticker, matches), 10 snapshots
    status = of(sink.records, "status")
    assert [s.status for s in status].count("subscribed") == 30
    assert [s.status for s in status].count("snapshot") == 10
    assert status[0].status == "connected" and status[0].reason == "wss://ws-feed.pro.coinbase.com"
    # nothing was asked of the network: level 2 needs no REST, no resubscription happened
    assert rp.fetches == [] and rp.unanswered == []
    assert all(c.sent == [] and c.reconnects == [] for c in rp.connections.values())


def test_capture_two_trades_exact():
    _rp, sink = replay()
    trades = of(sink.records, "trades")
    l3 = of(sink.records, "trades_l3")
    # line 56: SKL-BTC match, maker side "sell" -> the taker bought
    assert trades[0] == Trade("coinbase", "SKL-BTC", 0.00001305, 985.0, "buy", "280232", 1618677817089,
                              1618677817129516)
    assert l3[0] == TradeL3("coinbase", "SKL-BTC", 0.00001305, 985.0, "buy", "280232",
                            "2a0da34e-61f7-4c36-88e5-c9dd15927b16", "3c82abaa-c01e-4608-be59-6a1e69742891",
                            1618677817089, 1618677817129516)
    # line 9581, the last: SKL-USD, maker side "buy" -> the taker sold
    assert trades[-1] == Trade("coinbase", "SKL-USD", 0.7902, 18.0, "sell", "1568319", 1618677846669,
                               1618677846656778)
    assert l3[-1].maker_order_id == "37667a34-2257-46d1-8a1e-e43bc30fe763"
    assert l3[-1].taker_order_id == "3d1273d8-9943-49c2-8ef9-d3b1ce455383"
    assert sorted({t.symbol for t in trades}) == ["BAND-BTC", "BAND-GBP", "DASH-BTC", "NMR-EUR", "NU-GBP", "SKL-BTC",
                                                  "SKL-GBP", "SKL-USD"]


def test_capture_ticker_and_first_book_events_exact():
    _rp, sink = replay()
    tickers = of(sink.records, "ticker")
    # line 9: BAND-GBP; the 2021 ticker had no best_bid_size/best_ask_size (0.0)
    assert tickers[0] == Ticker("coinbase", "BAND-GBP", 14.755, 0.0, 14.806, 0.0, 1618677810244, 1618677817079694)
    lob = of(sink.records, "lob")
    # the BAND-GBP snapshot (line 7): bids first, best first; no exchange time: the receive time
    assert lob[0] == Lob("coinbase", "BAND-GBP", 14.7693, 27.51, "buy", 1618677817077, 1618677817077736)
    spread = of(sink.records, "spread")
    assert spread[0] == Spread("coinbase", "BAND-GBP", 14.7693, 27.51, 14.8024, 12.77, 1618677817077, 1618677817077736)
    # the first l2update (line 35): SKL-BTC sell 0.00001306 -> 660.5, exchange time 16:43:37.075687
    first = [e for e in lob if e.atom_timestamp == 1618677817118783]
    assert first == [Lob("coinbase", "SKL-BTC", 0.00001306, 660.5, "sell", 1618677817075, 1618677817118783)]


# ------------------------------------------------------------------------------------------------
# level-2 faults on the real capture


def _msg(frame) -> dict:
    return json.loads(frame.data)


def _snapshot_of(ref: RefL2, product: str) -> bytes:
    return json.dumps({"type": "snapshot", "product_id": product,
                       "bids": [[str(p), str(q)] for p, q in ref.levels(product, "buy")],
                       "asks": [[str(p), str(q)] for p, q in ref.levels(product, "sell")]}).encode()


def _run_with_fault(frames, drop_index: int, product: str):
    """Feed ``frames`` without frame ``drop_index``; when the scheme resubscribes ``product``,
    answer with a fresh snapshot of the exchange's true book (the reference model of ALL
    frames so far). Returns (harness, reference, index of the frame that triggered the resync)."""
    h = Harness(CoinbaseScheme, instruments=listing())
    ref = RefL2()
    triggered = None
    for i, f in enumerate(frames):
        if f.kind == OPEN:
            h.open(f.ts_ns)
            continue
        if f.kind != RECV:
            continue
        ref.frame(_msg(f))
        if i == drop_index:
            continue
        h.feed(f.data, f.ts_ns)
        if h.conn.sent and triggered is None:
            triggered = i
            assert [json.loads(s) for s in h.conn.sent] == [
                {"type": "unsubscribe", "product_ids": [product], "channels": ["level2"]},
                {"type": "subscribe", "product_ids": [product], "channels": ["level2"]}]
            h.feed(_snapshot_of(ref, product), f.ts_ns)  # the exchange answers the subscribe
    return h, ref, triggered


def test_l2_fault_dropped_update_leaves_book_crossed_resync_rebuild():
    """Dropping the update that removed SKL-BTC's best ask at 0.00001305 (filled by the first
    trade) leaves a phantom ask; when the bids reach it the book is crossed: a gap."""
    frames = capture_frames()
    drop = next(i for i, f in enumerate(frames) if f.kind == RECV and _msg(f).get("type") == "l2update"
                and _msg(f)["product_id"] == "SKL-BTC" and _msg(f)["changes"] == [["sell", "0.00001305", "0.0"]])
    h, ref, triggered = _run_with_fault(frames, drop, "SKL-BTC")
    assert triggered is not None and triggered > drop
    m = h.metrics
    assert (m.gaps, m.resyncs) == (1, 1)
    resync = [s for s in h.events("status") if s.status == "resync"]
    assert len(resync) == 1 and resync[0].symbol == "SKL-BTC" and resync[0].reason.startswith("book crossed: bid ")
    # after the resync, status snapshot then the fresh book; the final book equals the model's
    statuses = [(s.symbol, s.status) for s in h.events("status")]
    assert statuses[statuses.index(("SKL-BTC", "resync")) + 1] == ("SKL-BTC", "snapshot")
    for product in ref.books:
        assert_l2_equal(h.scheme, product, ref)


def test_l2_fault_missing_snapshot_resyncs_and_publishes_nothing_until_one_comes():
    frames = capture_frames()
    drop = next(i for i, f in enumerate(frames) if f.kind == RECV and _msg(f).get("type") == "snapshot"
                and _msg(f)["product_id"] == "SKL-USD")
    h, ref, triggered = _run_with_fault(frames, drop, "SKL-USD")
    first_update = next(i for i, f in enumerate(frames) if f.kind == RECV and _msg(f).get("type") == "l2update"
                        and _msg(f)["product_id"] == "SKL-USD")
    assert triggered == first_update
    assert (h.metrics.gaps, h.metrics.resyncs) == (0, 1)
    resync = [s for s in h.events("status") if s.status == "resync"]
    assert [(s.symbol, s.reason) for s in resync] == [("SKL-USD", "book update before its snapshot")]
    for product in ref.books:
        assert_l2_equal(h.scheme, product, ref)


def test_l2_update_before_resnapshot_is_dropped_and_malformed_update_never_half_applied():
    frames = capture_frames()
    h = Harness(CoinbaseScheme, instruments=listing())
    for f in frames[:60]:
        if f.kind == RECV:
            h.feed(f.data, f.ts_ns)
    book = h.scheme.books["SKL-USD"]
    before = (book.levels(BID), book.levels(ASK))
    bad = {"type": "l2update", "product_id": "SKL-USD", "time": "2021-04-17T16:43:37.2Z",
           "changes": [["buy", "0.7000", "5"], ["sell", "0.8000", "-1"]]}
    assert h.feed(bad) == [("status", Status("coinbase", "SKL-USD", "resync",
                                             "malformed book level: 'sell' '0.8000' '-1'", T0 // 10**6, T0 // 1000))]
    assert (book.levels(BID), book.levels(ASK)) == ([], [])  # dropped, not half-applied
    assert h.scheme.books["SKL-USD"] is book and "SKL-USD" in h.scheme.unsynced
    # updates of a reloading book are dropped, the snapshot restores it
    assert h.feed({"type": "l2update", "product_id": "SKL-USD", "time": "2021-04-17T16:43:37.3Z",
                   "changes": [["buy", "0.7000", "5"]]}) == []
    ev = h.feed({"type": "snapshot", "product_id": "SKL-USD", "bids": [before[0][0]], "asks": [before[1][0]]})
    assert [t for t, _ in ev] == ["status", "lob", "lob", "spread"]
    assert h.metrics.errors.counts["coinbase: malformed book level"] == 1


UNREADABLE = "unreadable frame: malformed JSON: Input data was truncated"


def test_l2_unreadable_frames_resync_the_books_they_may_concern():
    """Level 2 has no sequence and no checksum: a frame that cannot be read and may have been a
    level-2 message resyncs the books it may concern (recorded frames cut in half, as the
    simulator's ``truncate`` fault sends them). A ticker, match, subscriptions answer or
    heartbeat cut short: counted, nothing resyncs. An ``l2update`` of SKL-USD cut after its
    ``product_id``: SKL-USD resyncs. One cut before it, and a frame that is no JSON at all: every
    level-2 book of the connection (those already resyncing are subscribed again: the lost
    frame may have been their snapshot). The exchange's snapshots rebuild them and at the end
    every book equals the model's of the whole capture."""
    frames = capture_frames()
    h = Harness(CoinbaseScheme, instruments=listing())
    ref = RefL2()
    products = sorted({p for ch in (_msg(frames[4]), _msg(frames[5])) for c in ch["channels"] if c["name"] == "level2"
                      for p in c["product_ids"]})
    assert len(products) == 10
    first = next(i for i, f in enumerate(frames) if f.kind == RECV and i > 37 and _msg(f).get("type") == "l2update"
                 and _msg(f)["product_id"] == "SKL-USD")
    second = next(i for i, f in enumerate(frames) if f.kind == RECV and i > first + 100
                  and _msg(f).get("type") == "l2update")
    cuts = {first: frames[first].data[: len(frames[first].data) // 2],
            second: frames[second].data[: len(b'{"type":"l2update","pro')]}
    assert b'"product_id":"SKL-USD"' in cuts[first] and b"product_id" not in cuts[second]
    ticker = next(f.data for f in frames[40:] if f.kind == RECV and _msg(f)["type"] == "ticker")
    match = next(f.data for f in frames[40:] if f.kind == RECV and _msg(f)["type"] == "match")
    heartbeat = (b'{"type":"heartbeat","sequence":90,"last_trade_id":20,"product_id":"SKL-USD",'
                 b'"time":"2014-11-07T08:19:28.464459Z"}')
    rebuilt = []
    for i, f in enumerate(frames):
        if f.kind == OPEN:
            h.open(f.ts_ns)
        if f.kind != RECV:
            continue
        ref.frame(_msg(f))
        if i == first:
            assert set(h.scheme.books) == set(products) and not h.scheme.unsynced
            for data in (ticker, match, frames[4].data, heartbeat):
                assert h.feed(data[: len(data) // 2], f.ts_ns) == []
            assert h.metrics.resyncs == 0 and h.conn.sent == []
            assert h.feed(cuts[first], f.ts_ns) == [("status", Status("coinbase", "SKL-USD", "resync", UNREADABLE,
                                                                      f.ts_ns // 10**6, f.ts_ns // 1000))]
            assert [json.loads(x) for x in h.conn.sent] == [
                {"type": "unsubscribe", "product_ids": ["SKL-USD"], "channels": ["level2"]},
                {"type": "subscribe", "product_ids": ["SKL-USD"], "channels": ["level2"]}]
        elif i == second:
            produced = h.feed(cuts[second], f.ts_ns)
            assert [(r.symbol, r.status, r.reason) for _, r in produced] == [
                (p, "resync", UNREADABLE) for p in products]
            h.conn.sent.clear()
            assert h.feed(b"!garbage 7 QwErTy", f.ts_ns) == []  # all are resyncing: subscribed again
            assert [json.loads(x)["product_ids"] for x in h.conn.sent] == [[p] for p in products for _ in (0, 1)]
            assert h.scheme.unsynced == set(products)
        else:
            produced = h.feed(f.data, f.ts_ns)
            assert not [r for t, r in produced if t == "lob" and r.symbol in h.scheme.unsynced]
        if h.conn.sent:  # the exchange answers the subscribe with a snapshot of its book now
            for p in sorted({json.loads(x)["product_ids"][0] for x in h.conn.sent}):
                ev = h.feed(_snapshot_of(ref, p), f.ts_ns)
                assert ev[0] == ("status", Status("coinbase", p, "snapshot", "", f.ts_ns // 10**6, f.ts_ns // 1000))
                rebuilt.append(p)
            h.conn.sent.clear()
    assert rebuilt == ["SKL-USD"] + products
    assert h.metrics.resyncs == 11 and h.metrics.gaps == 0
    assert dict(h.metrics.errors.counts) == {"coinbase: malformed JSON": 7}
    for product in ref.books:
        assert_l2_equal(h.scheme, product, ref)


# ------------------------------------------------------------------------------------------------
# level 3 (full channel): the documented examples


DOC_SNAPSHOT = {  # GET /products/BTC-USD/book?level=3 as documented (price, size, order_id)
    "sequence": 9,
    "bids": [["295.96", "0.05088265", "3b0f1225-7f84-490b-a29f-0faef9de823a"]],
    "asks": [["295.97", "5.72036512", "da863862-25f4-4868-ac41-005d11ab0a5f"]],
}
DOC_T = "2014-11-07T08:19:27.028459Z"
DOC_MS = 1415348367028


def doccoinbase_l3_stream() -> list[dict]:
    """The documented full-channel examples, renumbered 10.. into one product's stream."""
    return [
        {"type": "received", "time": DOC_T, "product_id": "BTC-USD", "sequence": 10,
         "order_id": "d50ec984-77a8-460a-b958-66f114b0de9b", "size": "1.34", "price": "502.1", "side": "buy",
         "order_type": "limit", "client_oid": "d50ec974-76a2-454b-66f135b1ea8c"},
        {"type": "open", "time": DOC_T, "product_id": "BTC-USD", "sequence": 11,
         "order_id": "d50ec984-77a8-460a-b958-66f114b0de9b", "price": "200.2", "remaining_size": "1.00",
         "side": "sell"},
        {"type": "received", "time": "2014-11-09T08:19:27.028459Z", "product_id": "BTC-USD", "sequence": 12,
         "order_id": "dddec984-77a8-460a-b958-66f114b0de9b", "funds": "3000.234", "side": "buy",
         "order_type": "market", "client_oid": "d50ec974-76a2-454b-66f135b1ea8c"},
        {"type": "open", "time": DOC_T, "product_id": "BTC-USD", "sequence": 13,
         "order_id": "ac928c66-ca53-498f-9c13-a110027a60e8", "price": "400.23", "remaining_size": "12.234412",
         "side": "sell"},
        {"type": "change", "reason": "STP", "time": DOC_T, "sequence": 14,
         "order_id": "ac928c66-ca53-498f-9c13-a110027a60e8", "side": "sell", "product_id": "BTC-USD",
         "old_size": "12.234412", "new_size": "5.23512", "price": "400.23"},
        {"type": "match", "trade_id": 10, "sequence": 15, "maker_order_id": "ac928c66-ca53-498f-9c13-a110027a60e8",
         "taker_order_id": "132fb6ae-456b-4654-b4e0-d681ac05cea1", "time": DOC_T, "product_id": "BTC-USD",
         "size": "5.23512", "price": "400.23", "side": "sell"},
        {"type": "done", "time": DOC_T, "product_id": "BTC-USD", "sequence": 16, "price": "400.23",
         "order_id": "ac928c66-ca53-498f-9c13-a110027a60e8", "reason": "filled", "side": "sell",
         "remaining_size": "0"},
        {"type": "done", "time": DOC_T, "product_id": "BTC-USD", "sequence": 17, "price": "200.2",
         "order_id": "d50ec984-77a8-460a-b958-66f114b0de9b", "reason": "canceled", "side": "sell",
         "remaining_size": "1.00"},
        {"type": "open", "time": "2022-06-06T22:55:43.433114Z", "product_id": "ETH-USD", "sequence": 24752,
         "order_id": "c3f16063-77b1-408f-a743-88b7bc20cdcd", "price": "7", "remaining_size": "80", "side": "buy"},
        {"type": "change", "reason": "modify_order", "time": "2022-06-06T22:55:43.433114Z", "sequence": 24753,
         "order_id": "c3f16063-77b1-408f-a743-88b7bc20cdcd", "side": "buy", "product_id": "ETH-USD",
         "old_size": "80", "new_size": "80", "old_price": "7", "new_price": "6"},
        {"type": "activate", "product_id": "test-product", "timestamp": "1483736448.299000", "user_id": "12",
         "profile_id": "30000727-d308-cf50-7b1c-c06deb1934fc", "order_id": "7b52009b-64fd-0a2a-49e6-d8a939753077",
         "stop_type": "entry", "side": "buy", "stop_price": "80", "size": "2", "funds": "50", "private": True},
    ]


def test_l3_documented_examples_exact():
    h = Harness(CoinbaseScheme, channels=("lob_l3", "trades_l3"))
    subs = {"type": "subscriptions", "channels": [{"name": "full", "product_ids": ["BTC-USD", "ETH-USD"]}]}
    ev = h.feed(subs)
    assert [(r.symbol, r.status, r.reason) for _, r in ev] == [("BTC-USD", "subscribed", "full"),
                                                                ("ETH-USD", "subscribed", "full")]
    url = "https://api.exchange.coinbase.com/products/BTC-USD/book?level=3"
    assert h.conn.fetches == [url, "https://api.exchange.coinbase.com/products/ETH-USD/book?level=3"]
    stream = doccoinbase_l3_stream()
    # the first two arrive before the snapshot: buffered, nothing published
    assert h.feed(stream[0]) == [] and h.feed(stream[1]) == []
    ev = h.rest(url, DOC_SNAPSHOT)
    # (the pipeline hands the sink one frame's events grouped by topic, in first-use order)
    assert ev == [
        ("status", Status("coinbase", "BTC-USD", "snapshot", "lob_l3", T0 // 10**6, T0 // 1000)),
        ("lob_l3", LobL3("coinbase", "BTC-USD", 295.96, 0.05088265, "buy", "3b0f1225-7f84-490b-a29f-0faef9de823a",
                         T0 // 10**6, T0 // 1000)),
        ("lob_l3", LobL3("coinbase", "BTC-USD", 295.97, 5.72036512, "sell", "da863862-25f4-4868-ac41-005d11ab0a5f",
                         T0 // 10**6, T0 // 1000)),
        # the buffered open (sequence 11) applied after the snapshot (sequence 9) and received (10)
        ("lob_l3", LobL3("coinbase", "BTC-USD", 200.2, 1.0, "sell", "d50ec984-77a8-460a-b958-66f114b0de9b", DOC_MS,
                         T0 // 1000)),
        ("spread", Spread("coinbase", "BTC-USD", 295.96, 0.05088265, 295.97, 5.72036512, T0 // 10**6, T0 // 1000)),
        ("spread", Spread("coinbase", "BTC-USD", 295.96, 0.05088265, 200.2, 1.0, DOC_MS, T0 // 1000)),
    ]
    book = h.scheme.l3books["BTC-USD"]
    assert h.feed(stream[2]) == []  # a market order received: nothing on the book
    assert of(h.feed(stream[3]), "lob_l3") == [LobL3("coinbase", "BTC-USD", 400.23, 12.234412, "sell",
                                                     "ac928c66-ca53-498f-9c13-a110027a60e8", DOC_MS, T0 // 1000)]
    assert h.feed(stream[4]) == [("lob_l3", LobL3("coinbase", "BTC-USD", 400.23, 5.23512, "sell",
                                                  "ac928c66-ca53-498f-9c13-a110027a60e8", DOC_MS, T0 // 1000))]
    assert book.order("ac928c66-ca53-498f-9c13-a110027a60e8") == (ASK, "400.23", "5.23512")
    ev = h.feed(stream[5])  # the match fills the maker: side "sell" is the maker's, the taker bought
    assert ev == [
        ("trades_l3", TradeL3("coinbase", "BTC-USD", 400.23, 5.23512, "buy", "10",
                              "ac928c66-ca53-498f-9c13-a110027a60e8", "132fb6ae-456b-4654-b4e0-d681ac05cea1",
                              DOC_MS, T0 // 1000)),
        ("lob_l3", LobL3("coinbase", "BTC-USD", 400.23, 0.0, "sell", "ac928c66-ca53-498f-9c13-a110027a60e8", DOC_MS,
                         T0 // 1000)),
    ]
    assert "ac928c66-ca53-498f-9c13-a110027a60e8" not in book
    assert h.feed(stream[6]) == []  # done of an order already gone
    assert of(h.feed(stream[7]), "lob_l3") == [LobL3("coinbase", "BTC-USD", 200.2, 0.0, "sell",
                                                     "d50ec984-77a8-460a-b958-66f114b0de9b", DOC_MS, T0 // 1000)]
    # ETH-USD: its snapshot (sequence 24751), then the modify_order change moves the order to 6
    h.rest("https://api.exchange.coinbase.com/products/ETH-USD/book?level=3",
           {"sequence": 24751, "bids": [], "asks": []})
    h.feed(stream[8])
    ev = h.feed(stream[9])
    assert ev[0] == ("lob_l3", LobL3("coinbase", "ETH-USD", 6.0, 80.0, "buy", "c3f16063-77b1-408f-a743-88b7bc20cdcd",
                                     1654556143433, T0 // 1000))
    assert h.scheme.l3books["ETH-USD"].order("c3f16063-77b1-408f-a743-88b7bc20cdcd") == (BID, "6", "80")
    assert h.feed(stream[10]) == []  # activate: not on the book
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (0, 0, 0)
    assert h.events("lob") == [] and h.events("trades") == []  # not subscribed
    book._validate()


def test_l3_stale_snapshot_is_fetched_again_and_inconsistent_match_resyncs():
    h = Harness(CoinbaseScheme, channels=("lob_l3",))
    h.feed({"type": "subscriptions", "channels": [{"name": "full", "product_ids": ["BTC-USD"]}]})
    url = h.conn.fetches[0]
    stream = doccoinbase_l3_stream()
    h.feed(stream[3])  # sequence 13 is the first the stream gives us
    assert h.rest(url, DOC_SNAPSHOT) == []  # sequence 9: 10..12 are lost to us -> a newer one
    assert h.conn.fetches == [url, url]
    ev = h.rest(url, dict(DOC_SNAPSHOT, sequence=12))
    assert [t for t, _ in ev] == ["status", "lob_l3", "lob_l3", "lob_l3", "spread"]
    # a match whose maker is not on the book: the book is wrong -> resync (not a sequence gap)
    bad = {"type": "match", "trade_id": 11, "sequence": 14, "maker_order_id": "nope", "taker_order_id": "t",
           "time": DOC_T, "product_id": "BTC-USD", "size": "1", "price": "400.23", "side": "sell"}
    ev = h.feed(bad)
    assert ev == [("status", Status("coinbase", "BTC-USD", "resync",
                                    "lob_l3: inconsistent match: maker 'nope' is not on the book",
                                    T0 // 10**6, T0 // 1000))]
    assert (h.metrics.gaps, h.metrics.resyncs) == (0, 1)
    assert len(h.scheme.l3books["BTC-USD"]) == 0 and h.conn.fetches == [url, url, url]


# ------------------------------------------------------------------------------------------------
# level 3: a generated stream (documented shapes) from a reference book


def run_l3(messages, start_snapshot, snapshots_at, answer_delay: int = 3):
    """Feed ``messages`` (each with the exchange's true snapshot after it, ``snapshots_at[i]``);
    a fetch made at message i is answered ``answer_delay`` messages later with the snapshot as
    of message i (before the subscription: ``start_snapshot``)."""
    h = Harness(CoinbaseScheme, channels=("lob_l3", "trades_l3"))
    h.feed({"type": "subscriptions", "channels": [{"name": "full", "product_ids": ["BTC-USD"]}]})
    pending = [(answer_delay - 1, h.conn.fetches.pop(), start_snapshot)]
    for i, (msg, snap) in enumerate(messages):
        if msg is not None:
            h.feed(msg, T0 + i * 1000)
        while h.conn.fetches:
            pending.append((i + answer_delay, h.conn.fetches.pop(0), snapshots_at[i]))
        while pending and pending[0][0] <= i:
            _, url, body = pending.pop(0)
            h.rest(url, body, T0 + i * 1000)
    return h


def assert_l3_equal(h: Harness, ref: CoinbaseOrders) -> None:
    book = h.scheme.l3books["BTC-USD"]
    book._validate()
    assert len(book) == len(ref.orders)
    for oid, (side, price, size) in ref.orders.items():
        got = book.order(oid)
        assert got is not None, oid
        assert (got[0], Decimal(got[1]), Decimal(got[2])) == ({"buy": BID, "sell": ASK}[side], price, size), oid
    for (side, price), q in ref.queue.items():
        assert [o for o, _ in book.orders_at({"buy": BID, "sell": ASK}[side], f"{price:.2f}")] == q


def test_l3_generated_stream_clean():
    ref, start, msgs, snaps = coinbase_l3_stream()
    h = run_l3(list(zip(msgs, snaps)), start, snaps)
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (0, 0, 0)
    assert_l3_equal(h, ref)
    matches = [x for x in msgs if x["type"] == "match"]
    assert len(h.events("trades_l3")) == len(matches) > 50
    assert [t.maker_order_id for t in h.events("trades_l3")] == [x["maker_order_id"] for x in matches]
    assert all(t.taker_side == ("buy" if x["side"] == "sell" else "sell") for t, x in zip(h.events("trades_l3"), matches))
    # one lob_l3 event per order of the snapshot, and per message that changed a resting order
    changing = [x for x in msgs if x["type"] in ("open", "match", "change")
                or (x["type"] == "done" and x.get("remaining_size") not in (None, "0"))]
    assert len(h.events("lob_l3")) == len(start["bids"]) + len(start["asks"]) + len(changing)
    assert h.events("status") == [Status("coinbase", "BTC-USD", "subscribed", "full", T0 // 10**6, T0 // 1000),
                                  Status("coinbase", "BTC-USD", "snapshot", "lob_l3", (T0 + 2000) // 10**6,
                                         (T0 + 2000) // 1000)]


@pytest.mark.parametrize("fault", ["drop", "reorder", "duplicate"])
def test_l3_fault_gap_resync_rebuild(fault):
    ref, start, msgs, snaps = coinbase_l3_stream()
    k = 300
    pairs = list(zip(msgs, snaps))
    if fault == "drop":
        pairs[k] = (None, pairs[k][1])
    elif fault == "reorder":
        pairs[k], pairs[k + 1] = (pairs[k + 1][0], pairs[k][1]), (pairs[k][0], pairs[k + 1][1])
    else:
        pairs.insert(k + 1, (pairs[k][0], pairs[k][1]))
    h = run_l3(pairs, start, [s for _, s in pairs])
    if fault == "duplicate":  # a message at or below the last sequence: ignored, no gap
        assert (h.metrics.gaps, h.metrics.resyncs) == (0, 0)
    else:
        assert (h.metrics.gaps, h.metrics.resyncs) == (1, 1)
        resync = [s for s in h.events("status") if s.status == "resync"]
        want = msgs[k]["sequence"]
        assert [(s.symbol, s.reason) for s in resync] == [
            ("BTC-USD", f"lob_l3: sequence gap: expected {want}, got {want + 1}")]
        statuses = [s.status for s in h.events("status")]
        assert statuses == ["subscribed", "snapshot", "resync", "snapshot"]
    assert_l3_equal(h, ref)
    assert h.metrics.errors.total == 0


def test_l3_snapshot_rest_error_and_malformed_answer_are_retried():
    h = Harness(CoinbaseScheme, channels=("lob_l3",))
    h.feed({"type": "subscriptions", "channels": [{"name": "full", "product_ids": ["BTC-USD"]}]})
    url = h.conn.fetches.pop()
    h.rest_error(url, RuntimeError("503"), T0)
    msg = doccoinbase_l3_stream()[0]
    h.feed(msg, T0 + 10)  # within the backoff: no new request
    assert h.conn.fetches == []
    h.feed(dict(msg, sequence=11), T0 + 2_000_000_000)
    assert h.conn.fetches == [url]
    assert h.rest(h.conn.fetches.pop(), b'{"message":"NotFound"}', T0 + 2_000_000_000) == []
    assert h.metrics.errors.counts["coinbase: malformed level-3 snapshot"] == 1
    h.feed(dict(msg, sequence=12), T0 + 5_000_000_000)
    assert h.conn.fetches == [url]
    ev = h.rest(url, dict(DOC_SNAPSHOT, sequence=11), T0 + 5_000_000_000)
    assert [t for t, _ in ev] == ["status", "lob_l3", "lob_l3", "spread"]
    assert h.scheme.l3["BTC-USD"].last == 12


def test_match_on_both_channels_published_once_and_last_match_not_published():
    h = Harness(CoinbaseScheme)
    match = {"type": "match", "trade_id": 10, "sequence": 50, "maker_order_id": "m", "taker_order_id": "t",
             "time": DOC_T, "product_id": "BTC-USD", "size": "5.23512", "price": "400.23", "side": "sell"}
    assert h.feed(dict(match, type="last_match", sequence=49, trade_id=9)) == []
    ev = h.feed(match)
    assert [t for t, _ in ev] == ["trades", "trades_l3"]
    assert ev[0][1] == Trade("coinbase", "BTC-USD", 400.23, 5.23512, "buy", "10", DOC_MS, T0 // 1000)
    assert h.feed(match) == []  # the same match again (matches + full on one connection)
    assert h.feed(dict(match, type="last_match", sequence=40)) == []


def test_control_messages_and_bad_input():
    h = Harness(CoinbaseScheme)
    assert h.feed({"type": "heartbeat", "sequence": 90, "last_trade_id": 20, "product_id": "BTC-USD",
                   "time": "2014-11-07T08:19:28.464459Z"}) == []
    ev = h.feed({"type": "error", "message": "Failed to subscribe",
                 "reason": "level2, level3, and full channels now require authentication."})
    assert ev == [("status", Status("coinbase", "", "stopped",
                                    "error: Failed to subscribe: level2, level3, and full channels now require "
                                    "authentication.", T0 // 10**6, T0 // 1000))]
    for data in (b"", b"not json", b"[1,2]", b'{"type":"brand_new"}', b'{"type":"match","product_id":"BTC-USD"}',
                 b'{"type":"ticker","product_id":"BTC-USD","best_bid":"1e400","best_ask":"2"}',
                 b'{"type":"ticker","product_id":"nope","best_bid":"1","best_ask":"2"}'):
        assert h.feed(data) == []
    kinds = dict(h.metrics.errors.counts)
    assert kinds == {"coinbase: exchange error": 1, "coinbase: malformed JSON": 2, "coinbase: unknown message": 2,
                     "coinbase: malformed match message": 1, "coinbase: malformed ticker": 1,
                     "coinbase: unknown product": 1}


def test_capture_path_is_the_documented_one():
    assert Path(fixture_path(CAPTURE)).name == "COINBASE.ws.28.0"
    assert Path(fixture_path(LISTING)).exists()


def test_l2_update_declared_shape_gives_what_the_handler_gives():
    """The level-2 update's route (``SidedLevels``: the common case in C, the rest to
    ``_on_l2update``) writes the very events, errors and resyncs the handler alone writes, frame
    for frame: one side, both sides (in the message's order), a removal of a level not held, a
    crossing, an update while the book reloads, and malformed sides, levels and times."""
    from atomfast.exchanges.coinbase import messages as cm
    from atomfast.kit.dispatch import Dispatch
    from atomfast.kit.shapes import SidedLevels

    assert isinstance(CoinbaseScheme.dispatch.routes[cm.L2Update], SidedLevels)
    d = CoinbaseScheme.dispatch
    routes = {**d.routes, cm.L2Update: "_on_l2update"}

    class HandlerOnly(CoinbaseScheme):
        dispatch = Dispatch(routes, decoder=d.decoder, refused=d.refused)

    t = "2021-04-17T16:43:37.2Z"
    updates = [
        [["buy", "0.7000", "5"]],
        [["sell", "0.9000", "1.5"], ["sell", "0.9100", "2"]],
        [["buy", "0.6000", "0"]],  # not held: no event
        [["sell", "0.9100", "0"], ["buy", "0.7100", "1"], ["sell", "0.9200", "3"], ["buy", "0.7000", "0"]],
        [["sell", "99999999.12345678", "1"], ["sell", "0.9500", "90071992.54740993"]],  # 2**53 ticks or more
        [["buy", "0.7200", "1"]],
        [["sell", "0.7200", "1"]],  # crosses the bid: a gap, resync
        [["buy", "0.7300", "1"]],  # reloading: dropped
        [["buy", "0.7300", "x"]],  # reloading: dropped (not counted)
    ]
    bad = [
        {"changes": [["bid", "0.7000", "5"]]},
        {"changes": [["buy", "0.7000", "-5"]]},
        {"changes": [["buy", "+0.7000", "5"]]},
        {"changes": [["buy", "0.70000000001", "5"]]},
        {"changes": [["sell", "0.9000", "1"], ["sell", "x", "2"]]},
        {"changes": [["buy", "0.7000", "5"]], "time": "yesterday"},
        {"changes": [["buy", "0.7000", "5"]], "time": "2021-04-17T16:43:37.2Z\u00e9"},
        {"changes": [["buy", "0.7000", "5"]], "time": ""},
        {"changes": []},
        {"changes": [["buy", "0.7000", "5"]], "product_id": "NOT-LISTED"},
    ]
    snapshot = {"type": "snapshot", "product_id": "SKL-USD", "bids": [["0.7000", "1"]], "asks": [["0.9000", "1"]]}
    outs = []
    for cls in (CoinbaseScheme, HandlerOnly):
        h = Harness(cls, instruments=listing())
        out = [h.feed(snapshot)]
        for i, changes in enumerate(updates):
            out.append(h.feed({"type": "l2update", "product_id": "SKL-USD", "time": t, "changes": changes},
                              T0 + i))
        for i, extra in enumerate(bad):
            out.append(h.feed(snapshot))
            out.append(h.feed({"type": "l2update", "product_id": "SKL-USD", "time": t, **extra}, T0 + 100 + i))
        book = h.scheme.books["SKL-USD"]
        book._validate()
        outs.append((out, book.levels(BID), book.levels(ASK), dict(h.metrics.errors.counts),
                     (h.metrics.gaps, h.metrics.resyncs)))
    assert outs[0] == outs[1]
    out = outs[0][0]
    assert [e for _, e in out[1]] == [Lob("coinbase", "SKL-USD", 0.7, 5.0, "buy", 1618677817200, T0 // 1000),
                                      Spread("coinbase", "SKL-USD", 0.7, 5.0, 0.9, 1.0, 1618677817200, T0 // 1000)]
    assert [e.side for t_, e in out[4] if t_ == "lob"] == ["sell", "buy", "sell", "buy"]  # the message's order
    assert out[3] == []
    assert [(e.price, e.size) for _, e in out[5]] == [(99999999.12345678, 1.0), (0.95, 90071992.54740993)]
    assert [e.reason for t_, e in out[7] if t_ == "status"] == ["book crossed: bid 0.72 >= ask 0.72"]
    assert outs[0][4][0] == 1
    assert out[8] == out[9] == []  # reloading: nothing


def test_dispatch_decoder_refuses_what_is_no_json():
    """The dispatch's decoder (``RefusingDecoder``): the messages as ``messages.decoder`` gives
    them; no JSON: a refusal with the decoder's words (to ``_on_invalid``, with the connection)."""
    import msgspec

    from atomfast.exchanges.coinbase import handler as ch
    from atomfast.exchanges.coinbase import messages as cm
    from atomfast.kit.dispatch import RefusingDecoder

    dec = CoinbaseScheme.dispatch.decoder
    assert isinstance(dec, RefusingDecoder) and dec.decoder is cm.decoder and dec.refusal is ch._Unreadable
    data = b'{"type":"l2update","product_id":"BTC-USD","changes":[["buy","1","2"]],"time":""}'
    assert dec.decode(data) == cm.decoder.decode(data)
    with pytest.raises(ch._Unreadable, match="^Input data was truncated$"):
        dec.decode(data[:20])
    with pytest.raises(msgspec.ValidationError) as err:
        dec.decode(b'{"type":"nothing"}')
    assert err.type is msgspec.ValidationError
    with pytest.raises(TypeError):
        RefusingDecoder(cm.decoder, ValueError)
