"""Deribit scheme on the recorded capture ``DERIBIT.ws.1.0`` (``book``, ``trades`` and ``ticker``
``.raw`` channels of ten options, 2021-07-22, with the instrument listings of ``DERIBIT.0``), and
on the examples of Deribit's documentation (docs.deribit.com, subscriptions) for what the
capture does not hold.

The capture has no trade (none happened on those options in its 30 s) and no perpetual ticker:
trades are tested on the documented ``trades.(instrument_name).(interval)`` example
(trade_id "48079269"), funding rate and open interest on the documented BTC-PERPETUAL ticker
(timestamp 1623060194301), candles on the documented ``chart.trades`` example (tick
1573645080000). The capture's book is also run through an independent reference model
(``atomfast.testing.RefBook``), so the counts asserted are not just what the scheme happens to
produce; the capture's summary (frames, events per topic, no gap) is a row of
tests/test_captures.py.
"""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from atomfast.book import ASK, BID
from atomfast.capture import open_capture
from atomfast.events import Candle, FundingRate, Lob, OpenInterest, Status, Ticker, Trade
from atomfast.exchanges import scheme_for, schemes
from atomfast.exchanges.deribit import DeribitScheme
from atomfast.exchanges.deribit.parse import name_instrument, parse_instruments
from atomfast.scheme import Instrument
from atomfast.testing import Harness, RefBook, decimal_levels, faulty, fixture_path, recv_frames, replay_fixture

CAPTURE = "cryptofeed/DERIBIT.ws.1.0"
LISTING = "cryptofeed/DERIBIT.0"

# --- documented examples (docs.deribit.com/subscriptions) ------------------------------------
DOC_TRADES = """{"jsonrpc": "2.0", "method": "subscription", "params": {"channel": "trades.BTC-PERPETUAL.100ms",
 "data": [{"trade_seq": 30289442, "trade_id": "48079269", "timestamp": 1590484512188, "tick_direction": 2,
 "price": 8950, "mark_price": 8948.9, "instrument_name": "BTC-PERPETUAL", "index_price": 8955.88,
 "direction": "sell", "amount": 10}]}}"""
#: the data of the documented incremental_ticker / ticker example (BTC-PERPETUAL)
DOC_TICKER = """{"jsonrpc": "2.0", "method": "subscription", "params": {"channel": "ticker.BTC-PERPETUAL.100ms",
 "data": {"best_ask_amount": 100, "best_ask_price": 36443, "best_bid_amount": 5000, "best_bid_price": 36442.5,
 "current_funding": 0, "estimated_delivery_price": 36441.64, "funding_8h": 0.0000211, "index_price": 36441.64,
 "instrument_name": "BTC-PERPETUAL", "last_price": 36457.5, "mark_price": 36446.51, "max_price": 36991.72,
 "min_price": 35898.37, "open_interest": 502097590, "settlement_price": 36169.49, "state": "open",
 "stats": {"high": 36824.5, "low": 35213.5, "price_change": 0.7229, "volume": 7871.02139035,
 "volume_usd": 284061480}, "timestamp": 1623060194301}}}"""
DOC_CHART = """{"jsonrpc": "2.0", "method": "subscription", "params": {"channel": "chart.trades.BTC-PERPETUAL.1",
 "data": {"volume": 0.05219351, "tick": 1573645080000, "open": 8869.79, "low": 8788.25, "high": 8870.31,
 "cost": 460, "close": 8791.25}}}"""


def listing() -> dict[str, Instrument]:
    """The four recorded listings (BTC, ETH, SOL, USDC) of DERIBIT.0, merged."""
    fixture_path(LISTING)
    cap = open_capture(fixture_path(CAPTURE))  # its REST companion DERIBIT.0 comes with it
    out: dict[str, Instrument] = {}
    for url, answers in cap.rest.items():
        if "get_instruments" in url:
            out.update(parse_instruments(answers[0][1]))
    return out


def harness() -> tuple[Harness, list[tuple[int, bytes]]]:
    return Harness(DeribitScheme, listing()), recv_frames(fixture_path(CAPTURE))


def notification(frame: bytes) -> dict | None:
    msg = json.loads(frame, parse_float=str, parse_int=str)
    return msg["params"] if msg.get("method") == "subscription" else None


# ------------------------------------------------------------------------------------------------


def test_registry_and_symbols():
    assert schemes()["deribit"] == [DeribitScheme]
    assert scheme_for("deribit", "wss://www.deribit.com/ws/api/v2") is DeribitScheme
    inst = listing()
    # BTC, ETH (2021) and SOL, USDC (2022) listings: 980 options, 19 perpetuals, 18 futures, names unique
    assert len(inst) == 1017 and len({i.symbol for i in inst.values()}) == 1017
    assert sum(i.kind == "option" for i in inst.values()) == 980
    assert inst["BTC-24SEP21-8000-P"] == Instrument("BTC-24SEP21-8000-P", "BTC-USD-20210924-8000-P", "option", "BTC",
                                                    "USD", 6, 8, "20210924")
    assert inst["BTC-PERPETUAL"] == Instrument("BTC-PERPETUAL", "BTC-USD-PERP", "perp", "BTC", "USD", 3, 8)
    assert inst["SOL_USDC-PERPETUAL"].symbol == "SOL-USDC-PERP"
    assert inst["BTC-25MAR22"] == Instrument("BTC-25MAR22", "BTC-USD-20220325", "future", "BTC", "USD", 3, 8,
                                             "20220325")
    assert inst["SOL-10JUN22-28-P"].symbol == "SOL-USD-20220610-28-P"
    assert inst["BTC-6AUG21-40000-C"].symbol == "BTC-USD-20210806-40000-C"
    # today's names: linear options with a decimal strike written with "d", spot, combos (skipped)
    assert name_instrument("XRP_USDC-30MAY25-2d4-C").symbol == "XRP-USDC-20250530-2.4-C"
    assert name_instrument("BTC_USDC").symbol == "BTC-USDC" and name_instrument("BTC_USDC").kind == "spot"
    assert name_instrument("BTC_USDT-PERPETUAL").symbol == "BTC-USDT-PERP"
    for bad in ("BTC-FS-27SEP24_PERP", "BTC-32SEP21", "BTC", "", "BTC-24SEP21-0-C", "btc-x"):
        with pytest.raises(KeyError):
            name_instrument(bad)
    body = json.dumps({"result": [
        {"instrument_name": "BTC-FS-27SEP24_PERP", "kind": "future_combo", "base_currency": "BTC",
         "quote_currency": "USD"},
        {"instrument_name": "BTC_USDC-27SEP24-60000-C", "kind": "option", "base_currency": "BTC",
         "quote_currency": "USDC", "counter_currency": "USDC", "strike": 60000.0, "tick_size": 5,
         "min_trade_amount": 0.01}]}).encode()
    assert list(parse_instruments(body).values()) == [Instrument(
        "BTC_USDC-27SEP24-60000-C", "BTC-USDC-20240927-60000-C", "option", "BTC", "USDC", 2, 8, "20240927")]


def test_subscriptions_heartbeat_and_plan():
    h = Harness(DeribitScheme, listing())
    two = Harness(DeribitScheme, h.scheme.instruments, DeribitScheme.default_channels,
                  ["BTC-USD-PERP", "BTC-USD-20210924-8000-P"])
    s = two.scheme
    plan = s.plan()
    natives = ["BTC-PERPETUAL", "BTC-24SEP21-8000-P"]
    # ticker, funding_rate and open_interest share one ticker subscription
    assert plan[0].subscriptions == [("book", natives), ("trades", natives), ("ticker", natives)]
    two.conn.plan = plan[0]
    two.open(1_000_000_000)
    sent = two.sent()
    assert sent[0]["method"] == "public/set_heartbeat" and sent[0]["params"] == {"interval": 10}
    assert [x["params"]["channels"] for x in sent[1:]] == [
        ["book.BTC-PERPETUAL.100ms", "book.BTC-24SEP21-8000-P.100ms"],
        ["trades.BTC-PERPETUAL.100ms", "trades.BTC-24SEP21-8000-P.100ms"],
        ["ticker.BTC-PERPETUAL.100ms", "ticker.BTC-24SEP21-8000-P.100ms"]]
    assert all(x["method"] == "public/subscribe" and x["jsonrpc"] == "2.0" for x in sent[1:])
    assert len({x["id"] for x in sent}) == 4
    candles = DeribitScheme(h.pipeline.emit, h.metrics, h.scheme.instruments, ["BTC-USD-PERP"], ["candle"])
    assert json.loads(candles.subscribe_messages("chart.trades", ["BTC-PERPETUAL"])[0])["params"] == {
        "channels": ["chart.trades.BTC-PERPETUAL.1"]}
    # Deribit's heartbeat: a test_request must be answered with public/test; a plain heartbeat needs nothing
    assert h.feed('{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}') == []
    assert [x["method"] for x in h.sent()] == ["public/test"]
    assert h.feed('{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}') == []
    assert len(h.conn.sent) == 1
    # its answer, and set_heartbeat's "ok", publish nothing and are no error
    rid = json.loads(h.conn.sent[0])["id"]
    assert h.feed('{"jsonrpc":"2.0","id":%d,"result":{"version":"1.2.26"}}' % rid) == []
    assert h.metrics.errors.total == 0 and s.ping_interval == 0.0


def test_capture_replay_records():
    """The whole capture through ``Replay`` (the path of ``atomfast replay``): recorded values."""
    _replay, sink = replay_fixture(CAPTURE, exchange="deribit")
    statuses = [r for t, r in sink.records if t == "status"]
    assert [s.status for s in statuses].count("subscribed") == 30  # the 30 channels of the recorded answer
    assert statuses[0] == Status("deribit", "", "connected", "wss://www.deribit.com/ws/api/v2", 1626993723424,
                                 1626993723424371)
    assert Status("deribit", "ETH-USD-20210730-2800-C", "snapshot", "", 1626993723632, 1626993723844026) in statuses
    lob = [r for t, r in sink.records if t == "lob"]
    # {"type":"change","timestamp":1626993724318,"prev_change_id":33195894164,"instrument_name":"BTC-24SEP21-8000-P",
    #  "change_id":33195894355,"bids":[],"asks":[["new",0.001,2.6]]} received 1626993724.283178, then its delete
    assert Lob("deribit", "BTC-USD-20210924-8000-P", 0.001, 2.6, "sell", 1626993724318, 1626993724283178) in lob
    assert Lob("deribit", "BTC-USD-20210924-8000-P", 0.001, 0.0, "sell", 1626993724337, 1626993724302351) in lob
    tickers = [r for t, r in sink.records if t == "ticker"]
    # the first ticker: ETH-30JUL21-2800-C best bid 0.0015 x 4714, ask 0.0025 x 873
    assert tickers[0] == Ticker("deribit", "ETH-USD-20210730-2800-C", 0.0015, 4714.0, 0.0025, 873.0, 1626993723632,
                                1626993723804855)
    ois = [r for t, r in sink.records if t == "open_interest"]
    assert ois[0] == OpenInterest("deribit", "ETH-USD-20210730-2800-C", 12685.0, 1626993723632, 1626993723804855)
    assert len({o.symbol for o in ois}) == 10  # one per option: none changed in the 30 s
    # replay found no "currency=any" listing in the capture: symbols from the names alone are the same
    assert {r.symbol for t, r in sink.records if t == "lob"} <= {i.symbol for i in listing().values()}


def test_capture_book_against_reference_model():
    h, frames = harness()
    ref: dict[str, RefBook] = {}
    expected_lob = 0
    expected_spread = 0
    for ts, data in frames:
        produced = h.feed(data, ts)
        params = notification(data)
        if params is None or not params["channel"].startswith("book."):
            continue
        d = params["data"]
        name = d["instrument_name"]
        if d["type"] == "snapshot":
            book = ref[name] = RefBook("bids", "asks", empty=Decimal(0))
        else:
            book = ref[name]
        before = book.top()
        for side in ("bids", "asks"):
            for action, price, amount in d[side]:
                expected_lob += book.remove(side, price) if action == "delete" else book.set(side, price, amount)
        if book.top() != before:
            expected_spread += 1
        for topic, rec in produced:
            if topic == "spread":
                assert tuple(Decimal(repr(x)) for x in rec[2:6]) == book.top()
    assert h.metrics.gaps == 0 and h.metrics.resyncs == 0 and h.metrics.errors.total == 0
    assert len(h.events("lob")) == expected_lob == 149
    assert len(h.events("spread")) == expected_spread == 42
    assert len(ref) == 10
    for name, book in ref.items():
        assert decimal_levels(h.scheme.books[name].levels(BID)) == book.levels("bids")
        assert decimal_levels(h.scheme.books[name].levels(ASK)) == book.levels("asks")
        h.scheme.books[name]._validate()
    assert h.scheme.change_ids["BTC-24SEP21-8000-P"] == 33195898166


def _book_changes(frames, name: str) -> list[int]:
    key = b'"channel":"book.' + name.encode()
    return [i for i, (_, d) in enumerate(frames) if key in d and b'"type":"change"' in d]


def _snapshot_from(book, name: str, change_id: int, timestamp: int) -> str:
    """A Deribit snapshot notification holding ``book``'s levels (as Deribit resends after a
    resubscription)."""
    data = {"type": "snapshot", "timestamp": timestamp, "instrument_name": name, "change_id": change_id,
            "bids": [["new", float(p), float(s)] for p, s in book.levels(BID)],
            "asks": [["new", float(p), float(s)] for p, s in book.levels(ASK)]}
    return json.dumps({"jsonrpc": "2.0", "method": "subscription",
                       "params": {"channel": f"book.{name}.100ms", "data": data}})


@pytest.mark.parametrize("fault", ["drop", "reorder"])
def test_change_id_gap_resyncs_and_rebuilds(fault):
    """Drop (or swap with the next) one book change of the real capture: the gap is detected at
    the next change, the instrument is resynced (status, book dropped, unsubscribe + subscribe),
    its changes are ignored until a fresh snapshot, and from that snapshot on the book is the one
    an undisturbed run builds."""
    h, frames = harness()
    clean = Harness(DeribitScheme, h.scheme.instruments)
    name, symbol = "BTC-24SEP21-8000-P", "BTC-USD-20210924-8000-P"
    changes = _book_changes(frames, name)
    assert len(changes) == 30
    victim, detect, inject = changes[5], changes[6], changes[12]
    order = faulty(range(len(frames)), victim, fault, detect)  # (reorder: the later change first: it shows the gap)
    pos_detect = order.index(detect)
    for i, (ts, data) in enumerate(frames):
        clean.feed(data, ts)
        if i == inject:
            # what the resubscription brings: a snapshot of the book as it is now
            book = clean.scheme.books[name]
            snap = _snapshot_from(book, name, clean.scheme.change_ids[name], 1626993740000)
    for k, i in enumerate(order):
        ts, data = frames[i]
        produced = h.feed(data, ts)
        if k == pos_detect:
            msg = json.loads(data)["params"]["data"]
            assert h.metrics.gaps == 1 and h.metrics.resyncs == 1
            status = [r for t, r in produced if t == "status"]
            last = json.loads(frames[changes[4]][1])["params"]["data"]["change_id"]
            assert status == [Status("deribit", symbol, "resync",
                                     f"change_id gap: prev_change_id {msg['prev_change_id']}, last change_id {last}",
                                     ts // 1_000_000, ts // 1000)]
            assert not [r for t, r in produced if t in ("lob", "spread")]
            assert h.scheme.books[name].count(BID) == h.scheme.books[name].count(ASK) == 0
            sent = h.sent()
            assert [(x["method"], x["params"]) for x in sent] == [
                ("public/unsubscribe", {"channels": [f"book.{name}.100ms"]}),
                ("public/subscribe", {"channels": [f"book.{name}.100ms"]})]
        elif k > pos_detect and i <= inject:
            assert not [r for t, r in produced if t in ("lob", "spread") and r.symbol == symbol]
        if i == inject:
            produced = h.feed(snap, ts)
            assert produced[0][1] == Status("deribit", symbol, "snapshot", "", 1626993740000, ts // 1000)
            assert name not in h.scheme.unsynced
    assert h.metrics.gaps == 1 and h.metrics.resyncs == 1 and clean.metrics.gaps == 0
    assert [i for i in changes if i > inject]  # changes applied after the rebuild
    assert h.scheme.change_ids[name] == clean.scheme.change_ids[name]
    assert h.scheme.books[name].levels(BID) == clean.scheme.books[name].levels(BID)
    assert h.scheme.books[name].levels(ASK) == clean.scheme.books[name].levels(ASK)
    # the other nine books never noticed
    for other, book in clean.scheme.books.items():
        assert h.scheme.books[other].levels(BID) == book.levels(BID)
        assert h.scheme.books[other].levels(ASK) == book.levels(ASK)


def test_change_before_snapshot_resyncs_without_gap():
    h, frames = harness()
    change = next(d for _, d in frames if b'"type":"change"' in d and b"BTC-24SEP21-8000-P" in d)
    produced = h.feed(change, 5_000_000_000)
    assert [r.status for t, r in produced if t == "status"] == ["resync"]
    assert h.metrics.gaps == 0 and h.metrics.resyncs == 1 and not h.events("lob")
    assert "BTC-24SEP21-8000-P" in h.scheme.unsynced
    assert h.feed(change, 5_000_000_000) == []  # ignored while waiting for the snapshot
    assert h.metrics.resyncs == 1


def test_documented_trades():
    h = Harness(DeribitScheme, listing())
    produced = h.feed(DOC_TRADES, 1590484512300000000)
    assert produced == [("trades", Trade("deribit", "BTC-USD-PERP", 8950.0, 10.0, "sell", "48079269", 1590484512188,
                                         1590484512300000))]
    # two trades in one notification (the documented user-trade pair: same fields): oldest first, as sent
    two = json.loads(DOC_TRADES)
    t2 = dict(two["params"]["data"][0], trade_id="48079270", trade_seq=30289443, direction="buy", amount=20,
              price=8950.5, timestamp=1590484512190)
    two["params"]["data"].append(t2)
    assert [r for _, r in h.feed(json.dumps(two), 1590484512300000000)] == [
        Trade("deribit", "BTC-USD-PERP", 8950.0, 10.0, "sell", "48079269", 1590484512188, 1590484512300000),
        Trade("deribit", "BTC-USD-PERP", 8950.5, 20.0, "buy", "48079270", 1590484512190, 1590484512300000)]
    # one malformed trade spoils the whole message: nothing published, counted
    bad = json.loads(DOC_TRADES)
    bad["params"]["data"].append(dict(bad["params"]["data"][0], direction="sideways"))
    assert h.feed(json.dumps(bad)) == []
    assert h.metrics.errors.counts["deribit: malformed trade"] == 1


def test_documented_ticker_funding_and_open_interest():
    h = Harness(DeribitScheme, listing())
    produced = h.feed(DOC_TICKER, 1623060194400000000)
    assert produced == [
        ("ticker", Ticker("deribit", "BTC-USD-PERP", 36442.5, 5000.0, 36443.0, 100.0, 1623060194301,
                          1623060194400000)),
        # next settlement: 2021-06-07 16:00 UTC
        ("funding_rate", FundingRate("deribit", "BTC-USD-PERP", 36446.51, 0.0, 1623081600000, 0.0000211,
                                     1623060194301, 1623060194400000)),
        ("open_interest", OpenInterest("deribit", "BTC-USD-PERP", 502097590.0, 1623060194301, 1623060194400000)),
    ]
    # the same rates and open interest again: a ticker only
    assert [t for t, _ in h.feed(DOC_TICKER)] == ["ticker"]
    moved = DOC_TICKER.replace('"funding_8h": 0.0000211', '"funding_8h": 0.0000212')
    assert [t for t, _ in h.feed(moved)] == ["ticker", "funding_rate"]
    # an option's ticker has no funding fields
    opt = DOC_TICKER.replace("BTC-PERPETUAL", "BTC-24SEP21-8000-P").replace('"current_funding": 0,', "")
    opt = opt.replace('"funding_8h": 0.0000211,', "")
    assert [t for t, _ in h.feed(opt)] == ["ticker", "open_interest"]
    only = Harness(DeribitScheme, listing(), channels=["funding_rate"])
    assert [t for t, _ in only.feed(DOC_TICKER)] == ["funding_rate"]
    assert h.metrics.errors.total == 0


def test_documented_candle_and_its_close():
    h = Harness(DeribitScheme, listing())
    first = Candle("deribit", "BTC-USD-PERP", 1573645080000, 1573645140000, "1m", 0, False, 8869.79, 8870.31,
                   8788.25, 8791.25, 0.05219351, 1573645100000, 1573645100000000)
    assert h.feed(DOC_CHART, 1573645100000000000) == [("candle", first)]
    update = DOC_CHART.replace('"close": 8791.25', '"close": 8790.0')
    assert h.feed(update, 1573645110000000000) == [("candle", first._replace(
        c=8790.0, event_timestamp=1573645110000, atom_timestamp=1573645110000000))]
    nxt = DOC_CHART.replace("1573645080000", "1573645140000")
    produced = h.feed(nxt, 1573645141000000000)
    assert [(r.start, r.closed, r.c) for _, r in produced] == [(1573645080000, True, 8790.0),
                                                                (1573645140000, False, 8791.25)]
    assert h.feed(DOC_CHART, 1573645142000000000) == []  # an older candle: stale, dropped


def test_answers_errors_and_bad_input():
    h, frames = harness()
    h.feed('{"jsonrpc":"2.0","id":7,"error":{"message":"Invalid params","code":-32602}}', 2_000_000_000)
    assert h.events("status")[-1] == Status("deribit", "", "stopped", "request 7 failed: -32602 Invalid params", 2000,
                                            2000000)
    h.feed('{"jsonrpc":"2.0","method":"mystery","params":{}}')
    h.feed('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"perpetual.BTC-PERPETUAL.100ms","data":{}}}')
    h.feed(b"\x00\x01")
    h.feed('{"jsonrpc":"2.0","method":"subscription"')
    h.feed('{"jsonrpc":"2.0","id":[1]}')
    h.feed(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    h.feed('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.NOPE.100ms","data":[{"trade_id":"1",'
           '"instrument_name":"NOPE","timestamp":1,"price":1,"amount":1,"direction":"buy"}]}}')
    counts = h.metrics.errors.counts
    assert dict(counts) == {"deribit: exchange error": 1, "deribit: unknown message": 1, "deribit: unknown channel": 1,
                            "deribit: not a JSON object": 1, "deribit: malformed JSON": 2,
                            "deribit: malformed message": 1, "deribit: unknown instrument": 1}
    assert h.metrics.errors.total == 8
    assert not h.events("trades")
    # a synced book, then a change with the right prev_change_id and a negative amount: refused whole
    h.feed_all(frames[:40])
    name = "BTC-24SEP21-8000-P"
    book = h.scheme.books[name]
    before = (book.levels(BID), book.levels(ASK))
    last = h.scheme.change_ids[name]
    bad = {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": f"book.{name}.raw", "data": {
        "type": "change", "timestamp": 1626993724318, "prev_change_id": last, "instrument_name": name,
        "change_id": last + 1, "bids": [["new", 0.0005, 1.0]], "asks": [["new", 0.001, -2.6]]}}}
    produced = h.feed(json.dumps(bad))
    assert not [r for t, r in produced if t == "lob"]
    assert [r.status for t, r in produced if t == "status"] == ["resync"]
    assert name in h.scheme.unsynced and h.metrics.gaps == 0
    assert before[0]  # the book was not empty; it is dropped, never half-applied
    assert h.scheme.books[name].count(BID) == 0
    assert counts["deribit: malformed book change"] == 1
