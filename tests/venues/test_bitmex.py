"""BitMEX scheme on the recorded capture ``BITMEX.ws.1.0`` (``orderBookL2``, ``quote`` and
``trade`` of ten contracts, 2021-07-22, with the instrument listing of ``BITMEX.0``).

The capture is of BitMEX's 2021 protocol: book updates and deletes carry no price (only the
``id``) and book rows no timestamp. Today's shapes (price on every action since 2023, a
timestamp on every book row since 2022) are tested on the example messages of BitMEX's
announcement "Potentially-Breaking API Update to ID Generation on WebSocket Orderbook Feeds"
(blog.bitmex.com, May 2023: XBTUSD id 8798309800 at 26902). The capture has no ``instrument``
table: funding rate and open interest are tested on an ``instrument`` partial made of the
recorded REST row of XBTUSD (``/api/v1/instrument/active`` rows are the table's rows). The
book of the capture is also run through an independent reference model
(``atomfast.testing.RefBook``, its rows by id).
"""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from atomfast.book import ASK, BID
from atomfast.capture import open_capture
from atomfast.events import Candle, FundingRate, Liquidation, Lob, OpenInterest, Spread, Status, Ticker, Trade
from atomfast.exchanges import scheme_for, schemes
from atomfast.exchanges.bitmex import BitmexScheme
from atomfast.exchanges.bitmex.parse import iso_to_ms, last_friday, parse_instruments, symbol_instrument
from atomfast.scheme import ConnectionPlan, Instrument
from atomfast.testing import Harness, RefBook, decimal_levels, fixture_path, recv_frames, replay_fixture

CAPTURE = "cryptofeed/BITMEX.ws.1.0"

# the example messages of BitMEX's May 2023 announcement (new implementation)
DOC_PARTIAL = ('{"table":"orderBookL2","action":"partial","keys":["symbol","id","side"],'
               '"filter":{"symbol":"XBTUSD"},"data":[]}')
DOC_INSERT = ('{"table":"orderBookL2","action":"insert","data":[{"symbol":"XBTUSD","id":8798309800,"side":"Buy",'
              '"size":32800,"price":26902,"timestamp":"2023-05-19T08:51:43.911Z"}]}')
DOC_UPDATE = ('{"table":"orderBookL2","action":"update","data":[{"symbol":"XBTUSD","id":8798309800,"side":"Buy",'
              '"size":42800,"price":26902,"timestamp":"2023-05-19T08:51:44.911Z"}]}')
DOC_DELETE = ('{"table":"orderBookL2","action":"delete","data":[{"symbol":"XBTUSD","id":8798309800,"side":"Buy",'
              '"price":26902,"timestamp":"2023-05-19T08:51:45.911Z"}]}')


def listing() -> dict[str, Instrument]:
    cap = open_capture(fixture_path(CAPTURE))
    return parse_instruments(cap.rest_body("https://www.bitmex.com/api/v1/instrument/active"))


def harness() -> tuple[Harness, list[tuple[int, bytes]]]:
    return Harness(BitmexScheme, listing()), recv_frames(fixture_path(CAPTURE))


def listed_row(symbol: str) -> dict:
    cap = open_capture(fixture_path(CAPTURE))
    rows = json.loads(cap.rest_body("https://www.bitmex.com/api/v1/instrument/active"))
    return next(r for r in rows if r["symbol"] == symbol)


# ------------------------------------------------------------------------------------------------


def test_registry_and_symbols():
    assert schemes()["bitmex"] == [BitmexScheme]
    assert scheme_for("bitmex", "wss://www.bitmex.com/realtime") is BitmexScheme  # the capture's old host
    inst = listing()
    assert len(inst) == 34 and len({i.symbol for i in inst.values()}) == 34
    assert inst["XBTUSD"] == Instrument("XBTUSD", "BTC-USD-PERP", "perp", "BTC", "USD", 3, 4)
    assert inst["ETHUSD"].symbol == "ETH-USD-PERP" and inst["UNIUSDT"].symbol == "UNI-USDT-PERP"
    assert inst["XBTU21"] == Instrument("XBTU21", "BTC-USD-20210924", "future", "BTC", "USD", 3, 4, "20210924")
    assert inst["XRPU21"] == Instrument("XRPU21", "XRP-BTC-20210924", "future", "XRP", "BTC", 10, 4, "20210924")
    assert inst["TRXU21"].price_decimals == 12  # tickSize 1e-10
    assert inst["XBTZ21"].symbol == "BTC-USD-20211231" and inst["ETHUSDU21"].symbol == "ETH-USD-20210924"
    assert inst["XBTEURU21"].symbol == "BTC-EUR-20210924"
    # without the listing: BitMEX's own rules (futures expire the last Friday of their month)
    assert last_friday(2021, 9).isoformat() == "2021-09-24" and last_friday(2021, 12).isoformat() == "2021-12-31"
    for native in ("XBTUSD", "XBTU21", "XRPU21", "ETHUSDU21", "XBTZ21", "ETHUSDT"):
        assert symbol_instrument(native).symbol == inst.get(native, symbol_instrument(native)).symbol
    assert symbol_instrument("XBT_USDT") == Instrument("XBT_USDT", "BTC-USDT", "spot", "BTC", "USDT", 10, 4)
    assert symbol_instrument("XBTUSDTZ25").symbol == "BTC-USDT-20251226"
    for bad in ("", ".BXBT", "xbtusd", "FOO", "A_B_C"):
        with pytest.raises(KeyError):
            symbol_instrument(bad)
    # spot, indices skipped, and two contracts that normalise alike
    body = json.dumps([
        {"symbol": "XBT_USDT", "typ": "IFXXXP", "underlying": "XBT", "quoteCurrency": "USDT", "tickSize": 0.5,
         "lotSize": 1000},
        {"symbol": ".BXBT", "typ": "MRCXXX", "underlying": "XBT", "quoteCurrency": "USD"},
        {"symbol": "XBTUSD", "typ": "FFWCSX", "underlying": "XBT", "quoteCurrency": "USD", "tickSize": 0.5},
        {"symbol": "XBTUSDX", "typ": "FFWCSX", "underlying": "XBT", "quoteCurrency": "USD", "tickSize": 0.5}]).encode()
    parsed = parse_instruments(body)
    assert {k: v.symbol for k, v in parsed.items()} == {
        "XBT_USDT": "BTC-USDT", "XBTUSD": "BTC-USD-PERP", "XBTUSDX": "BTC-USD-PERP-XBTUSDX"}


def test_subscriptions_ping_and_plan():
    h = Harness(BitmexScheme, listing())
    s = BitmexScheme(h.pipeline.emit, h.metrics, h.scheme.instruments, ["BTC-USD-PERP", "ETH-USD-PERP"])
    natives = ["XBTUSD", "ETHUSD"]
    # funding_rate and open_interest share one instrument subscription
    assert s.plan()[0].subscriptions == [("orderBookL2", natives), ("trade", natives), ("quote", natives),
                                         ("instrument", natives)]
    assert json.loads(s.subscribe_messages("orderBookL2", natives)[0]) == {
        "op": "subscribe", "args": ["orderBookL2:XBTUSD", "orderBookL2:ETHUSD"]}
    assert s.ping_message() == "ping" and 0 < s.ping_interval <= 5
    assert h.feed("pong") == [] and h.metrics.errors.total == 0
    assert h.feed('{"info":"Welcome to the BitMEX Realtime API.","version":"2.0.0"}') == []
    assert h.feed('{"success":true,"subscribe":"trade:XBTUSD","request":{"op":"subscribe","args":["trade:XBTUSD"]}}',
                  3_000_000_000) == [("status", Status("bitmex", "BTC-USD-PERP", "subscribed", "trade", 3000, 3000000))]
    assert h.feed('{"success":true,"unsubscribe":"orderBookL2:XBTUSD"}') == []


def test_capture_replay_records():
    """The whole capture through ``Replay``: recorded values (its summary is a row of
    tests/test_captures.py)."""
    _replay, sink = replay_fixture(CAPTURE, exchange="bitmex")
    trades = [r for t, r in sink.records if t == "trades"]
    # 10 from the partials (the last trade of each contract) and 17 live ones, all different
    assert len({t.trade_id for t in trades}) == 27
    # the partial of XBTUSD: {"timestamp":"2021-07-22T22:35:59.790Z","symbol":"XBTUSD","side":"Buy","size":1000,
    #   "price":32175,...,"trdMatchID":"a36d1fb8-ff0c-d428-cde7-d166a181c1d2"} received 1626993370.145895
    assert Trade("bitmex", "BTC-USD-PERP", 32175.0, 1000.0, "buy", "a36d1fb8-ff0c-d428-cde7-d166a181c1d2",
                 1626993359790, 1626993370145895) in trades
    # a live one: UNIUSDT Buy 52 @ 17.297 at 22:36:10.014, received 1626993370.146107
    assert Trade("bitmex", "UNI-USDT-PERP", 17.297, 52.0, "buy", "39744121-c20e-44ba-8cc8-a6b8cdf72885",
                 1626993370014, 1626993370146107) in trades
    assert Trade("bitmex", "TRX-BTC-20210924", 0.0000016425, 1300.0, "sell", "6f375362-a3de-a37e-2934-52d8f6bf1121",
                 1626992660333, 1626993370145980) in trades
    tickers = [r for t, r in sink.records if t == "ticker"]
    assert tickers[0] == Ticker("bitmex", "XRP-BTC-20210924", 0.00001814, 15.0, 0.00001819, 1703.0, 1626993353978,
                                1626993370032770)
    lob = [r for t, r in sink.records if t == "lob"]
    # {"table":"orderBookL2","action":"update","data":[{"symbol":"UNIUSDT","id":51999982703,"side":"Sell",
    #   "size":123}]} received 1626993370.4317188: the price comes from the id's insert; the receive time
    #   is the event time (no timestamp on 2021 book rows)
    upd = [x for x in lob if x.atom_timestamp == 1626993370431718]
    assert len(upd) == 1 and upd[0].symbol == "UNI-USDT-PERP" and upd[0].size == 123.0 and upd[0].side == "sell"
    assert upd[0].event_timestamp == 1626993370431
    statuses = [r for t, r in sink.records if t == "status"]
    assert sum(s.status == "snapshot" for s in statuses) == 10 and sum(s.status == "subscribed" for s in statuses) == 30


def test_capture_book_against_reference_model():
    h, frames = harness()
    ref: dict[str, RefBook] = {}
    expected_lob = expected_spread = 0
    for ts, data in frames:
        produced = h.feed(data, ts)
        msg = json.loads(data, parse_float=str, parse_int=str)
        if msg.get("table") != "orderBookL2":
            continue
        action = msg["action"]
        touched: dict[str, bool] = {}
        if action == "partial":
            ref[msg["filter"]["symbol"]] = RefBook("Buy", "Sell", empty=Decimal(0))
        for row in msg["data"]:
            book = ref[row["symbol"]]
            before = book.top()
            expected_lob += book.apply_row(action, dict(row, id=int(row["id"])))
            touched[row["symbol"]] = touched.get(row["symbol"], False) or book.top() != before
        expected_spread += sum(touched.values())
        for topic, rec in produced:
            if topic == "spread":
                assert tuple(Decimal(repr(x)) for x in rec[2:6]) == ref[h.scheme.by_symbol[rec.symbol].native].top()
    assert h.metrics.gaps == 0 and h.metrics.resyncs == 0 and h.metrics.errors.total == 0
    assert len(h.events("lob")) == expected_lob == 14333
    assert len(h.events("spread")) == expected_spread == 460
    for native, book in ref.items():
        assert decimal_levels(h.scheme.books[native].levels(BID)) == book.levels("Buy")
        assert decimal_levels(h.scheme.books[native].levels(ASK)) == book.levels("Sell")
        assert set(h.scheme.ids[native]) == set(book.rows)
        h.scheme.books[native]._validate()
    assert len(h.scheme.ids["XBTUSD"]) == 9352


def _partial_from(scheme: BitmexScheme, native: str) -> str:
    """The ``partial`` a resubscription brings: the book as it is now, rows keyed by id."""
    book = scheme.books[native]
    rows = [{"symbol": native, "id": rid, "side": "Buy" if side == BID else "Sell",
             "size": int(Decimal(book.get(side, price))), "price": float(price)}
            for rid, (side, price) in scheme.ids[native].items()]
    return json.dumps({"table": "orderBookL2", "action": "partial", "keys": ["symbol", "id", "side"],
                       "filter": {"symbol": native}, "data": rows})


@pytest.mark.parametrize("fault", ["drop", "reorder"])
def test_lost_insert_is_a_gap_resyncs_and_rebuilds(fault):
    """Drop (or move after its delete) the insert of XBTUSD id 8796783400 (recorded frame 133,
    deleted in frame 143): the delete of an id we do not hold is the gap. The symbol is resynced
    (status, book dropped, unsubscribe + subscribe orderBookL2:XBTUSD), its rows ignored until a
    fresh partial, and from there the book equals the undisturbed run's."""
    h, frames = harness()
    clean = Harness(BitmexScheme, h.scheme.instruments)
    victim, detect, inject = 133, 143, 600
    assert b'"id":8796783400' in frames[victim][1] and b'"action":"insert"' in frames[victim][1]
    assert b'"id":8796783400' in frames[detect][1] and b'"action":"delete"' in frames[detect][1]
    order = list(range(len(frames)))
    if fault == "drop":
        order.remove(victim)
    else:
        order[victim], order[detect] = order[detect], order[victim]
    snap = None
    for i, (ts, data) in enumerate(frames):
        clean.feed(data, ts)
        if i == inject:
            snap = _partial_from(clean.scheme, "XBTUSD")
    xbt_after = 0
    for k, i in enumerate(order):
        ts, data = frames[i]
        produced = h.feed(data, ts)
        if i == detect:
            assert h.metrics.gaps == 1 and h.metrics.resyncs == 1
            assert [r for t, r in produced if t == "status"] == [Status(
                "bitmex", "BTC-USD-PERP", "resync", "book gap: delete of unknown id 8796783400", ts // 1_000_000,
                ts // 1000)]
            assert h.scheme.books["XBTUSD"].count(BID) == 0 and h.scheme.books["XBTUSD"].count(ASK) == 0
            assert [json.loads(x) for x in h.conn.sent] == [{"op": "unsubscribe", "args": ["orderBookL2:XBTUSD"]},
                                                            {"op": "subscribe", "args": ["orderBookL2:XBTUSD"]}]
        elif h.metrics.gaps and i <= inject:
            assert not [r for t, r in produced if t in ("lob", "spread") and r.symbol == "BTC-USD-PERP"]
        if i == inject:
            produced = h.feed(snap, ts)
            assert produced[0][1] == Status("bitmex", "BTC-USD-PERP", "snapshot", "", ts // 1_000_000, ts // 1000)
            assert "XBTUSD" not in h.scheme.unsynced
        elif i > inject:
            xbt_after += sum(1 for t, r in produced if t == "lob" and r.symbol == "BTC-USD-PERP")
    assert xbt_after > 1000  # the later updates apply again
    assert h.metrics.gaps == 1 and h.metrics.resyncs == 1 and clean.metrics.gaps == 0
    for native, book in clean.scheme.books.items():
        # (the partial we made wrote prices as floats: "32182.0" for "32182"; the values are equal)
        assert decimal_levels(h.scheme.books[native].levels(BID)) == decimal_levels(book.levels(BID)), native
        assert decimal_levels(h.scheme.books[native].levels(ASK)) == decimal_levels(book.levels(ASK)), native
        assert set(h.scheme.ids[native]) == set(clean.scheme.ids[native])


NATIVES = ["XRPU21", "UNIUSDT", "XBTUSD", "ADAUSDT", "SOLUSDT", "TRXU21", "EOSUSDT", "TRXUSDT", "BCHUSD", "MATICUSDT"]
PLAN = ConnectionPlan("wss://ws.bitmex.com/realtime", [("orderBookL2", NATIVES), ("quote", NATIVES),
                                                        ("trade", NATIVES)])
UNREADABLE = "unreadable frame: malformed JSON: Input data was truncated"
OPS = ("unsubscribe", "subscribe")


def _cut(data: bytes) -> bytes:
    """What the simulator's ``truncate`` fault sends: the first half."""
    return data[: len(data) // 2]


def test_unreadable_frames_that_are_no_book_message_resync_nothing():
    """A frame cut short or no JSON, that is clearly no book message: counted, nothing resyncs
    (recorded frames: the welcome, a subscription answer, a quote, a trade partial; ``pong``)."""
    h, frames = harness()
    h.conn.plan = PLAN
    h.feed_all(frames[:62])  # the 10 partials are frames 52..61
    assert sorted(h.scheme.books) == sorted(NATIVES) and not h.scheme.unsynced
    assert frames[0][1].startswith(b'{"info":"Welcome') and frames[1][1].startswith(b'{"success":true')
    assert frames[250][1].startswith(b'{"table":"quote","action":"insert"')
    assert frames[41][1].startswith(b'{"table":"trade","action":"partial"')
    for data in (_cut(frames[0][1]), _cut(frames[1][1]), _cut(frames[250][1]), _cut(frames[41][1]), b"po", b"pong",
                 b'{"table":"quote","action":5}'):
        assert h.feed(data) == [], data
    assert h.metrics.resyncs == 0 and h.conn.sent == [] and not h.scheme.unsynced
    assert dict(h.metrics.errors.counts) == {"bitmex: malformed JSON": 4, "bitmex: not a JSON object": 1,
                                             "bitmex: malformed message": 1}


def test_book_message_cut_short_resyncs_the_connections_books_and_they_rebuild():
    """BitMEX's book has no checksum and no sequence: the recorded update of frame 63 (UNIUSDT)
    cut in half would leave a book silently wrong. It names ``orderBookL2``: every book of the
    connection resyncs (status ``resync`` "unreadable frame: ...", book dropped, unsubscribe +
    subscribe), nothing of them is published until their new partials, and from there the books
    equal the undisturbed run's. A partial cut short while they wait subscribes them again (the
    new partial may be the one lost)."""
    h, frames = harness()
    h.conn.plan = PLAN
    clean = Harness(BitmexScheme, h.scheme.instruments)
    victim, inject = 63, 400
    assert frames[victim][1].startswith(b'{"table":"orderBookL2","action":"update","data":[{"symbol":"UNIUSDT"')
    partials = {}
    for i, (ts, data) in enumerate(frames):
        clean.feed(data, ts)
        if i == inject:
            partials = {n: _partial_from(clean.scheme, n) for n in NATIVES}
    for i, (ts, data) in enumerate(frames):
        if i == victim:
            produced = h.feed(_cut(data), ts)
            assert produced == [("status", Status("bitmex", h.scheme.symbol_of(n), "resync", UNREADABLE,
                                                  ts // 1_000_000, ts // 1000)) for n in sorted(NATIVES)]
            assert [json.loads(x) for x in h.conn.sent] == [
                {"op": op, "args": [f"orderBookL2:{n}"]} for n in sorted(NATIVES) for op in OPS]
            assert all(h.scheme.books[n].count(BID) == h.scheme.books[n].count(ASK) == 0 for n in NATIVES)
            assert h.scheme.unsynced == set(NATIVES) and h.metrics.resyncs == 10 and h.metrics.gaps == 0
            # a partial cut short now: they are subscribed again, no new status
            h.conn.sent.clear()
            assert h.feed(_cut(frames[52][1]), ts) == []
            assert [json.loads(x) for x in h.conn.sent] == [
                {"op": op, "args": [f"orderBookL2:{n}"]} for n in sorted(NATIVES) for op in OPS]
            assert h.metrics.resyncs == 10
            continue
        produced = h.feed(data, ts)
        if victim < i < inject:
            assert not [r for t, r in produced if t in ("lob", "spread")]
        if i == inject:
            for n in NATIVES:
                assert h.feed(partials[n], ts)[0] == ("status", Status("bitmex", h.scheme.symbol_of(n), "snapshot", "",
                                                                       ts // 1_000_000, ts // 1000))
            assert not h.scheme.unsynced
    assert h.metrics.resyncs == 10 and dict(h.metrics.errors.counts) == {"bitmex: malformed JSON": 2}
    for native, book in clean.scheme.books.items():
        assert decimal_levels(h.scheme.books[native].levels(BID)) == decimal_levels(book.levels(BID)), native
        assert decimal_levels(h.scheme.books[native].levels(ASK)) == decimal_levels(book.levels(ASK)), native
    # what cannot be classified at all (no JSON object, a book message naming no symbol) may have
    # been a book message: the same
    for data, why in ((b"!garbage 1 xyz", "not a JSON object"),
                      (b'{"table":"orderBookL2","action":"update","data":{}}',
                       "malformed book message: Expected `array`, got `object`")):
        produced = h.feed(data)
        assert [(r.symbol, r.status, r.reason) for _, r in produced] == [
            (h.scheme.symbol_of(n), "resync", f"unreadable frame: {why}") for n in sorted(NATIVES)]
        for n in NATIVES:
            h.feed(partials[n])


def test_first_partial_cut_short_is_asked_for_again():
    """The first partial of XRPU21 (frame 52) cut short: without a book yet, XRPU21 would drop
    every update forever; the books of the connection still waiting for their partial are
    subscribed again (status ``resync``), and the partials that come start them."""
    h, frames = harness()
    h.conn.plan = PLAN
    h.feed_all(frames[:52])
    produced = h.feed(_cut(frames[52][1]))
    assert [(r.symbol, r.status, r.reason) for _, r in produced] == [
        (h.scheme.symbol_of(n), "resync", UNREADABLE) for n in NATIVES]
    assert [json.loads(x)["args"] for x in h.conn.sent][::2] == [[f"orderBookL2:{n}"] for n in NATIVES]
    h.feed_all(frames[53:62])
    assert h.scheme.unsynced == {"XRPU21"}
    h.feed(frames[52][1])  # the partial the new subscription brings
    assert not h.scheme.unsynced and h.metrics.resyncs == 10


def test_rows_before_the_partial_are_dropped():
    """BitMEX: "drop any messages received until you have received the partial"."""
    h, frames = harness()
    update = next(d for _, d in frames if d.startswith(b'{"table":"orderBookL2","action":"update"'))
    assert h.feed(update) == []
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (0, 0, 0)
    h.feed_all(frames)
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (0, 0, 0)


def test_documented_current_book_messages():
    """Today's shapes: price on update and delete, a timestamp on every row."""
    h = Harness(BitmexScheme, listing())
    produced = h.feed(DOC_PARTIAL, 1684486303000000000)
    assert produced == [("status", Status("bitmex", "BTC-USD-PERP", "snapshot", "", 1684486303000,
                                          1684486303000000))]
    recv = 1684486304000000000
    assert h.feed(DOC_INSERT, recv) == [
        ("lob", Lob("bitmex", "BTC-USD-PERP", 26902.0, 32800.0, "buy", 1684486303911, 1684486304000000)),
        ("spread", Spread("bitmex", "BTC-USD-PERP", 26902.0, 32800.0, 0.0, 0.0, 1684486303911, 1684486304000000))]
    assert h.feed(DOC_UPDATE, recv)[0] == ("lob", Lob("bitmex", "BTC-USD-PERP", 26902.0, 42800.0, "buy",
                                                      1684486304911, 1684486304000000))
    assert h.feed(DOC_DELETE, recv) == [
        ("lob", Lob("bitmex", "BTC-USD-PERP", 26902.0, 0.0, "buy", 1684486305911, 1684486304000000)),
        ("spread", Spread("bitmex", "BTC-USD-PERP", 0.0, 0.0, 0.0, 0.0, 1684486305911, 1684486304000000))]
    assert h.scheme.ids["XBTUSD"] == {} and h.metrics.gaps == 0
    # an update whose price disagrees with the one its id was inserted at: a lost message, resync
    h.feed(DOC_INSERT, recv)
    produced = h.feed(DOC_UPDATE.replace('"price":26902', '"price":26903'), recv)
    assert [r.reason for t, r in produced if t == "status"] == [
        "book gap: update of id 8798309800 at price 26903, held at 26902"]
    assert h.metrics.gaps == 1 and not [r for t, r in produced if t == "lob"]


def test_instrument_funding_rate_and_open_interest():
    h = Harness(BitmexScheme, listing())
    rows = [listed_row("XBTUSD"), listed_row("XBTU21")]
    partial = json.dumps({"table": "instrument", "action": "partial", "keys": ["symbol"], "data": rows})
    recv = 1626993367500000000
    # XBTUSD: fundingRate 0.0001, indicative 0.0001, fundingTimestamp 2021-07-23T04:00:00.000Z, markPrice 32184.89,
    # openInterest 574264600 at 2021-07-22T22:36:05.000Z; XBTU21 (a future): no funding, open interest 164864000
    assert h.feed(partial, recv) == [
        ("funding_rate", FundingRate("bitmex", "BTC-USD-PERP", 32184.89, 0.0001, 1627012800000, 0.0001,
                                     1626993365000, 1626993367500000)),
        ("open_interest", OpenInterest("bitmex", "BTC-USD-PERP", 574264600.0, 1626993365000, 1626993367500000)),
        ("open_interest", OpenInterest("bitmex", "BTC-USD-20210924", 164864000.0, 1626993365000, 1626993367500000)),
    ]
    # updates carry only what changed: a mark price alone publishes nothing; a new indicative rate does
    mark = '{"table":"instrument","action":"update","data":[{"symbol":"XBTUSD","markPrice":32190.5,' \
           '"timestamp":"2021-07-22T22:36:10.000Z"}]}'
    assert h.feed(mark, recv) == []
    ind = '{"table":"instrument","action":"update","data":[{"symbol":"XBTUSD","indicativeFundingRate":0.000087,' \
          '"openInterest":574270000,"timestamp":"2021-07-22T22:36:15.000Z"}]}'
    assert h.feed(ind, recv) == [
        ("funding_rate", FundingRate("bitmex", "BTC-USD-PERP", 32190.5, 0.0001, 1627012800000, 0.000087,
                                     1626993375000, 1626993367500000)),
        ("open_interest", OpenInterest("bitmex", "BTC-USD-PERP", 574270000.0, 1626993375000, 1626993367500000))]
    index = '{"table":"instrument","action":"update","data":[{"symbol":".BXBT","markPrice":32180.1}]}'
    assert h.feed(index, recv) == [] and h.metrics.errors.total == 0


def test_liquidation_orders_published_once():
    """The ``liquidation`` table, with rows recorded from BitMEX (public projects' logs of the
    live feed): a ``partial`` of what is in the book, ``insert`` when a liquidation order is
    entered, ``delete`` when it is gone. One event per order, when first seen; the side is the
    order's (``Sell``: a long position was liquidated); no timestamp is sent: receive time."""
    h = Harness(BitmexScheme, listing(), channels=["liquidations"])
    assert json.loads(h.scheme.subscribe_messages("liquidation", ["XBTUSD"])[0]) == {
        "op": "subscribe", "args": ["liquidation:XBTUSD"]}
    recv = 1626993367500000000
    empty = ('{"table":"liquidation","action":"partial","keys":["orderID"],"types":{"orderID":"guid",'
             '"symbol":"symbol","side":"symbol","price":"float","leavesQty":"long"},"filter":{},"data":[]}')
    assert h.feed(empty, recv) == []
    insert = ('{"table":"liquidation","action":"insert","data":[{"orderID":"03f4bca6-1da5-4cd6-b905-cf98269417d4",'
              '"symbol":"XBTUSD","side":"Sell","price":90927.1,"leavesQty":876800}]}')
    expected = ("liquidations", Liquidation("bitmex", "BTC-USD-PERP", "sell", 90927.1, 876800.0, 1626993367500,
                                            1626993367500000, "03f4bca6-1da5-4cd6-b905-cf98269417d4"))
    assert h.feed(insert, recv) == [expected]
    update = ('{"table":"liquidation","action":"update","data":[{"orderID":"03f4bca6-1da5-4cd6-b905-cf98269417d4",'
              '"leavesQty":400000,"symbol":"XBTUSD"}]}')
    assert h.feed(update, recv) == []  # it fills: published when it came
    # a re-subscription's partial that still lists it: not published again
    partial = ('{"table":"liquidation","action":"partial","keys":["orderID"],"filter":{"symbol":"XBTUSD"},"data":'
               '[{"orderID":"03f4bca6-1da5-4cd6-b905-cf98269417d4","symbol":"XBTUSD","side":"Sell","price":90927.1,'
               '"leavesQty":400000}]}')
    assert h.feed(partial, recv) == []
    delete = ('{"table":"liquidation","action":"delete","data":[{"orderID":"03f4bca6-1da5-4cd6-b905-cf98269417d4",'
              '"symbol":"XBTUSD"}]}')
    assert h.feed(delete, recv) == [] and h.scheme._liquidations == {}
    buy = ('{"table":"liquidation","action":"insert","data":[{"orderID":"77e987c5-03c2-814e-0fb3-5632f9438f31",'
           '"symbol":"XBTUSD","side":"Buy","price":9938,"leavesQty":32618}]}')
    assert h.feed(buy, recv) == [("liquidations", Liquidation(
        "bitmex", "BTC-USD-PERP", "buy", 9938.0, 32618.0, 1626993367500, 1626993367500000,
        "77e987c5-03c2-814e-0fb3-5632f9438f31"))]
    # a partial without it: it is gone, and a later insert of that id would be new
    assert h.feed(empty.replace('"filter":{}', '"filter":{"symbol":"XBTUSD"}'), recv) == []
    assert h.scheme._liquidations == {}
    assert h.metrics.errors.total == 0
    bad = buy.replace('"side":"Buy"', '"side":"Long"')
    assert h.feed(bad, recv) == [] and h.metrics.errors.counts == {"bitmex: malformed liquidation": 1}


def test_trade_partial_after_resubscription_is_not_repeated():
    h, frames = harness()
    h.feed_all(frames)
    partial = next(d for _, d in frames if d.startswith(b'{"table":"trade","action":"partial"') and b"XBTUSD" in d)
    assert h.feed(partial) == []
    assert len(h.events("trades")) == 27


def test_trade_bins_are_candles():
    """``tradeBin1m`` rows (the fields of BitMEX's ``/trade/bucketed``): ``timestamp`` ends the bin."""
    h = Harness(BitmexScheme, listing())
    msg = ('{"table":"tradeBin1m","action":"insert","data":[{"timestamp":"2021-07-22T22:37:00.000Z",'
           '"symbol":"XBTUSD","open":32180,"high":32187,"low":32175,"close":32187,"trades":25,"volume":40200,'
           '"vwap":32182.1,"lastSize":3000,"turnover":124911200,"homeNotional":1.249112,"foreignNotional":40200}]}')
    assert h.feed(msg, 1626993420100000000) == [("candle", Candle(
        "bitmex", "BTC-USD-PERP", 1626993360000, 1626993420000, "1m", 25, True, 32180.0, 32187.0, 32175.0, 32187.0,
        40200.0, 1626993420000, 1626993420100000))]


def test_errors_and_bad_input():
    h, frames = harness()
    h.feed('{"status":400,"error":"Unknown or expired symbol.","meta":{},"request":{"op":"subscribe",'
           '"args":["trade:NOPE"]}}', 2_000_000_000)
    assert h.events("status")[-1] == Status("bitmex", "", "stopped",
                                            "subscribe trade failed: 400 Unknown or expired symbol.", 2000, 2000000)
    h.feed('{"status":400,"error":"Invalid rate","request":{"op":"subscribe","args":["quote:XBTUSD"]}}', 2_000_000_000)
    h.feed('{"status":401,"error":"Not authenticated","request":{"op":"authKeyExpires"}}', 2_000_000_000)
    assert h.events("status")[-2:] == [
        Status("bitmex", "", "stopped", "subscribe trade failed: 400 Unknown or expired symbol.", 2000, 2000000),
        Status("bitmex", "BTC-USD-PERP", "stopped", "subscribe quote failed: 400 Invalid rate", 2000, 2000000)]
    h.feed('{"table":"mystery","action":"insert","data":[]}')
    h.feed('{"nothing":1}')
    h.feed(b"\x00\x01")
    h.feed('{"table":"trade"')
    h.feed('{"table":"trade","action":"insert","data":[{"symbol":"XBTUSD","side":"Sideways","size":1,"price":1,'
           '"timestamp":"2021-07-22T22:37:00.000Z","trdMatchID":"x"}]}')
    h.feed('{"table":"quote","action":"insert","data":[{"symbol":"NOPE","bidPrice":1,"askPrice":2,"bidSize":1,'
           '"askSize":1,"timestamp":"2021-07-22T22:37:00.000Z"}]}')
    # a trade at price 0, a quote of 1e15 contracts: no market's (the typed writers' ranges)
    h.feed('{"table":"trade","action":"insert","data":[{"symbol":"XBTUSD","side":"Buy","size":1,"price":0,'
           '"timestamp":"2021-07-22T22:37:00.000Z","trdMatchID":"y"}]}')
    h.feed('{"table":"quote","action":"insert","data":[{"symbol":"XBTUSD","bidPrice":1,"askPrice":2,"bidSize":1e15,'
           '"askSize":1,"timestamp":"2021-07-22T22:37:00.000Z"}]}')
    counts = h.metrics.errors.counts
    assert dict(counts) == {"bitmex: exchange error": 3, "bitmex: unknown table": 1, "bitmex: unknown message": 1,
                            "bitmex: not a JSON object": 1, "bitmex: malformed JSON": 1, "bitmex: malformed trade": 2,
                            "bitmex: unknown symbol": 1, "bitmex: malformed quote": 1}
    assert not h.events("trades") and not h.events("ticker")
    # a synced book, then an update message whose second row has a negative size: refused whole
    h.feed_all(frames[:200])
    book = h.scheme.books["XBTUSD"]
    rid, (side, price) = next(iter(h.scheme.ids["XBTUSD"].items()))
    before = book.get(side, price)
    bad = {"table": "orderBookL2", "action": "update", "data": [
        {"symbol": "XBTUSD", "id": rid, "side": "Buy" if side == BID else "Sell", "size": 1},
        {"symbol": "XBTUSD", "id": rid, "side": "Buy" if side == BID else "Sell", "size": -5}]}
    produced = h.feed(json.dumps(bad))
    assert before is not None and not [r for t, r in produced if t == "lob"]
    assert [r.status for t, r in produced if t == "status"] == ["resync"]
    assert "XBTUSD" in h.scheme.unsynced and h.metrics.gaps == 0 and book.count(BID) == 0
    assert counts["bitmex: malformed book row"] == 1
    # the other books are untouched by it
    assert h.scheme.books["BCHUSD"].count(BID) > 0 and "BCHUSD" not in h.scheme.unsynced
    # a message with a row that names no market (found by the fuzz test): the rows of the other
    # symbols in it are lost with it, so those symbols are resynced, nothing is half-applied
    bch_id, (bch_side, _) = next(iter(h.scheme.ids["BCHUSD"].items()))
    corrupt = {"table": "orderBookL2", "action": "delete", "data": [
        {"symbol": "", "id": 1, "side": "Sell"},
        {"symbol": "BCHUSD", "id": bch_id, "side": "Buy" if bch_side == BID else "Sell"}]}
    produced = h.feed(json.dumps(corrupt))
    assert [(r.symbol, r.status) for t, r in produced] == [("BCH-USD-PERP", "resync")]
    assert counts["bitmex: unknown symbol"] == 2 and "BCHUSD" in h.scheme.unsynced


def test_iso_times():
    assert iso_to_ms("2021-07-22T22:36:09.757Z") == 1626993369757
    assert iso_to_ms("2021-07-23T04:00:00Z") == 1627012800000
    assert iso_to_ms("2023-05-19T08:51:43.911123Z") == 1684486303911
    for bad in ("", "2021-07-22", "2021-07-22T22:36:09.757", "2021-13-22T22:36:09Z", "2021-07-22T25:00:00Z",
                "2021-07-22T22:36:09.Z", "9999999-07-22T22:36:09Z", "２０２１-07-22T22:36:09Z"):
        with pytest.raises(ValueError):
            iso_to_ms(bad)

