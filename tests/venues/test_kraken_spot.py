"""Kraken spot schemes: websocket v1 on the recorded captures, websocket v2 on the documented
examples.

v1 (``KRAKEN.ws.48.0`` trades, ``.49.0`` ticker, ``.50.0`` book-1000) is fed frame by frame
through the test kit's ``Harness`` (the product's frame driver, a real ``Pipeline``, an in-memory
sink). The book capture is also run through an independent reference model (``RefBook``: plain
dicts of the sent strings, zlib CRC32), so the counts asserted are not just what the scheme
happens to produce.

v2 messages are the examples of Kraken's public documentation (docs.kraken.com/api/docs/
websocket-v2/book, /trade, /ticker, /ohlc); the book snapshot (checksum 2439117997) and update
(checksum 2114181697) examples of MATIC/USD form a consistent pair at the pair's precision
(price 4 decimals, quantity 8).
"""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from atomfast.events import Candle, Lob, Spread, Status, Ticker, Trade
from atomfast.exchanges import scheme_for, schemes
from atomfast.exchanges.kraken import KrakenSpotScheme, KrakenSpotV1Scheme
from atomfast.exchanges.kraken.parse import parse_asset_pairs, rfc3339_to_ms, secs_to_ms, secs_to_us
from atomfast.capture import open_capture
from atomfast.scheme import Instrument
from atomfast.testing import Harness, RefBook, capture_instruments, fixture_path, kraken_v2_frames, recv_frames

TRADES = "cryptofeed/KRAKEN.ws.48.0"
TICKER = "cryptofeed/KRAKEN.ws.49.0"
BOOK = "cryptofeed/KRAKEN.ws.50.0"


def v1_book_snapshot_frame(cid: int, pair: str, book, ts: str = "1618678150.000000") -> bytes:
    """What Kraken would send on a resubscribe: a snapshot of the book as it is now."""
    from atomfast.book import ASK, BID

    asks = [[p, s, ts] for p, s in book.levels(ASK)]
    bids = [[p, s, ts] for p, s in book.levels(BID)]
    return json.dumps([cid, {"as": asks, "bs": bids}, "book-1000", pair], separators=(",", ":")).encode()


# ------------------------------------------------------------------------------------------------
# registry, symbols, timestamps


def test_registry_finds_both_spot_schemes_v2_default():
    assert schemes()["kraken"] == [KrakenSpotScheme, KrakenSpotV1Scheme]
    assert scheme_for("kraken") is KrakenSpotScheme
    assert scheme_for("kraken", "wss://ws.kraken.com") is KrakenSpotV1Scheme
    assert scheme_for("kraken", "wss://ws.kraken.com/v2") is KrakenSpotScheme
    assert KrakenSpotV1Scheme.is_default is False and KrakenSpotV1Scheme.ws_url == "wss://ws.kraken.com"


def test_instruments_from_recorded_asset_pairs():
    path = fixture_path(BOOK)
    body = open_capture(path).rest_body("https://api.kraken.com/0/public/AssetPairs")
    v1 = parse_asset_pairs(body, v2=False)
    v2 = parse_asset_pairs(body, v2=True)
    # 304 pairs listed, 11 of them dark-pool ".d" pairs without a wsname
    assert len(v1) == len(v2) == 293
    # REST names the assets XXBT / ZUSD; the wsname XBT/USD is what we normalise
    assert v1["XBT/USD"] == Instrument("XBT/USD", "BTC-USD", "spot", "BTC", "USD", 1, 8)
    assert v2["BTC/USD"] == Instrument("BTC/USD", "BTC-USD", "spot", "BTC", "USD", 1, 8)
    assert v1["XDG/USD"].symbol == "DOGE-USD" and v2["DOGE/USD"].price_decimals == 7
    assert v1["ADA/XBT"] == Instrument("ADA/XBT", "ADA-BTC", "spot", "ADA", "BTC", 8, 8)
    assert v1["XBT/CHF"].symbol == "BTC-CHF" and v1["WAVES/EUR"].symbol == "WAVES-EUR"


def test_exact_timestamps():
    assert secs_to_ms("1618678133.626511") == 1618678133626
    assert secs_to_ms("1618678133.9") == 1618678133900
    assert secs_to_ms("1618678133") == 1618678133000
    assert secs_to_us("1618678142.557535") == 1618678142557535
    assert rfc3339_to_ms("2023-10-06T17:35:55.440295Z") == 1696613755440
    assert rfc3339_to_ms("2023-10-04T16:26:30.524394914Z") == 1696436790524
    assert rfc3339_to_ms("2023-10-04T16:25:00Z") == 1696436700000
    for bad in ("1618678133.6x", "", "abc", "-1.5"):
        with pytest.raises(ValueError):
            secs_to_ms(bad)
    for bad in ("2023-13-06T17:35:55Z", "2023-10-06X17:35:55Z", "2023-10-06T17:35:55.Z", "garbage"):
        with pytest.raises(ValueError):
            rfc3339_to_ms(bad)


def test_subscribe_messages_and_ping():
    v1 = Harness(KrakenSpotV1Scheme).scheme
    assert json.loads(v1.subscribe_messages("book", ["XBT/USD", "ETH/USD"])[0]) == {
        "event": "subscribe", "pair": ["XBT/USD", "ETH/USD"], "subscription": {"name": "book", "depth": 1000}}
    assert json.loads(v1.subscribe_messages("trade", ["XBT/USD"])[0]) == {
        "event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "trade"}}
    assert json.loads(v1.subscribe_messages("ohlc", ["XBT/USD"])[0])["subscription"] == {"name": "ohlc", "interval": 1}
    assert json.loads(v1.ping_message()) == {"event": "ping"} and v1.ping_interval > 0
    v2 = Harness(KrakenSpotScheme).scheme
    assert json.loads(v2.subscribe_messages("book", ["BTC/USD"])[0]) == {
        "method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 1000, "snapshot": True}}
    assert json.loads(v2.subscribe_messages("ticker", ["BTC/USD"])[0]) == {
        "method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD"]}}
    assert json.loads(v2.ping_message()) == {"method": "ping"} and v2.ping_interval > 0
    assert KrakenSpotScheme.channels == {"lob": "book", "trades": "trade", "ticker": "ticker", "candle": "ohlc",
                                        "lob_l3": "level3"}


# ------------------------------------------------------------------------------------------------
# v1 book capture


def test_v1_book_capture_every_checksum_verified():
    path = fixture_path(BOOK)
    h = Harness(KrakenSpotV1Scheme, capture_instruments(path, KrakenSpotV1Scheme))
    ref: dict[str, RefBook] = {}
    updates_with_c = expected_lob = expected_spreads = 0
    for ts, data in recv_frames(path):
        produced = h.feed(data, ts)
        msg = json.loads(data)
        if not (isinstance(msg, list) and msg[-2].startswith("book")):
            continue
        pair, dicts = msg[-1], msg[1:-2]
        if "as" in dicts[0] or "bs" in dicts[0]:
            book = ref[pair] = RefBook()
            for key, side in (("as", "a"), ("bs", "b")):
                for lv in dicts[0].get(key, []):
                    expected_lob += book.set(side, lv[0], lv[1])
            expected_spreads += 1
        else:
            book = ref[pair]
            top = book.top()
            for d in dicts:
                for side in ("a", "b"):
                    for lv in d.get(side, []):
                        expected_lob += book.set(side, lv[0], lv[1])
            expected_lob += book.truncate(1000)
            c = next(d["c"] for d in dicts if "c" in d)
            updates_with_c += 1
            assert book.kraken_checksum() == int(c)  # the capture is self-consistent (independent CRC)
            expected_spreads += book.top() != top
        # every spread is the book's best, and the reference model's best
        for topic, rec in produced:
            if topic == "spread":
                assert (rec.bid_price, rec.bid_size, rec.ask_price, rec.ask_size) == h.scheme.books[pair].best()
                assert tuple(Decimal(repr(x)) for x in (rec.bid_price, rec.bid_size, rec.ask_price, rec.ask_size)) == book.top()

    assert updates_with_c == 2437
    assert h.metrics.checksum_ok == 2437
    assert h.metrics.checksum_failed == 0 and h.metrics.resyncs == 0 and h.metrics.errors.total == 0
    lob = h.events("lob")
    assert len(lob) == expected_lob == 6855
    assert len(h.events("spread")) == expected_spreads == 460
    # the final books equal the reference books, level for level, as sent
    from atomfast.book import ASK, BID

    for pair, book in ref.items():
        assert h.scheme.books[pair].levels(ASK) == book.ordered("a")
        assert h.scheme.books[pair].levels(BID) == book.ordered("b")


def test_v1_book_capture_events_exact():
    path = fixture_path(BOOK)
    h = Harness(KrakenSpotV1Scheme, capture_instruments(path, KrakenSpotV1Scheme))
    h.feed_all(recv_frames(path))
    lob = h.events("lob")
    # first ask of the ADA/XBT snapshot (received 1618678133.626511), newest level 1618678133.2...
    first = lob[0]
    assert first[:5] == ("kraken", "ADA-BTC", 0.0000229, 13355.87450757, "sell")
    assert first.atom_timestamp == 1618678133626511
    # the last recorded update: [1664,{"a":[["13.264500","0.00000000","1618678163.334706"]],...},"WAVES/EUR"]
    assert lob[-1] == Lob("kraken", "WAVES-EUR", 13.2645, 0.0, "sell", 1618678163334, 1618678163372861)
    # an update of XBT/CHF: [464,{"a":[["56274.90000","0.04267101","1618678163.317024"]],"c":"778192996"},...]
    assert Lob("kraken", "BTC-CHF", 56274.9, 0.04267101, "sell", 1618678163317, 1618678163353302) in lob

    # status: connected, 6 subscribed, 6 snapshots; each snapshot precedes its pair's first level
    status = h.events("status")
    assert [s.status for s in status].count("subscribed") == 6
    snaps = [s for s in status if s.status == "snapshot"]
    assert sorted(s.symbol for s in snaps) == ["ADA-BTC", "BTC-CHF", "ETH-CHF", "KSM-BTC", "OMG-USD", "WAVES-EUR"]
    order = [(t, r) for t, r in h.records if t in ("status", "lob")]
    for snap in snaps:
        i_snap = next(i for i, (t, r) in enumerate(order) if t == "status" and r == snap)
        i_lob = next(i for i, (t, r) in enumerate(order) if t == "lob" and r.symbol == snap.symbol)
        assert i_snap < i_lob
    # the ADA/XBT snapshot's exchange time is its newest level time; status carries it too
    ada = next(s for s in snaps if s.symbol == "ADA-BTC")
    assert ada.event_timestamp == first.event_timestamp
    assert all(s.exchange == "kraken" for s in status)


# ------------------------------------------------------------------------------------------------
# v1 trades and ticker captures


def test_v1_trades_capture():
    path = fixture_path(TRADES)
    h = Harness(KrakenSpotV1Scheme, capture_instruments(path, KrakenSpotV1Scheme))
    recorded = 0
    for ts, data in recv_frames(path):
        h.feed(data, ts)
        msg = json.loads(data)
        if isinstance(msg, list) and msg[-2] == "trade":
            recorded += len(msg[1])
    trades = h.events("trades")
    assert recorded == 10 and len(trades) == recorded
    assert len({t.trade_id for t in trades}) == 10  # each trade once
    # [993,[["354.11000000","0.89594024","1618678142.557535","s","l",""]],"trade","XMR/USD"] at 1618678142.592855
    assert trades[0] == Trade("kraken", "XMR-USD", 354.11, 0.89594024, "sell", "1618678142557535-0",
                              1618678142557, 1618678142592855)
    # [1921,[["0.042980","8500.00000000","1618678155.718950","b","m",""],["0.043000","2383.16665529",
    #   "1618678155.720582","b","m",""]],"trade","SC/EUR"] at 1618678155.748181: the second one
    assert Trade("kraken", "SC-EUR", 0.043, 2383.16665529, "buy", "1618678155720582-1", 1618678155720,
                 1618678155748181) in trades
    assert h.metrics.errors.total == 0


def test_v1_ticker_capture():
    path = fixture_path(TICKER)
    h = Harness(KrakenSpotV1Scheme, capture_instruments(path, KrakenSpotV1Scheme))
    h.feed_all(recv_frames(path))
    tickers = h.events("ticker")
    assert len(tickers) == 18
    # [1668,{"a":["13.253900",35,"35.72892241"],"b":["13.232900",185,"185.18432037"],...},"ticker","WAVES/EUR"]
    # received 1618678132.9496498: no exchange time in a v1 ticker -> receive time
    assert tickers[0] == Ticker("kraken", "WAVES-EUR", 13.2329, 185.18432037, 13.2539, 35.72892241,
                                1618678132949, 1618678132949649)
    # [3652,{"a":["0.00758800",1,"1.30832721"],"b":["0.00758000",0,"0.21000000"],..},"ticker","KSM/XBT"]
    assert Ticker("kraken", "KSM-BTC", 0.00758, 0.21, 0.007588, 1.30832721, 1618678132949, 1618678132949710) in tickers
    assert h.metrics.errors.total == 0


# ------------------------------------------------------------------------------------------------
# v1 faults on the real capture


def _pair_frames(frames, cid: int) -> list[int]:
    """Indices of the update frames (with a checksum) of one channel."""
    return [i for i, (_, d) in enumerate(frames) if d.startswith(b"[%d,{\"" % cid) and b'"c":"' in d]


@pytest.mark.parametrize("fault", ["altered checksum", "dropped update"])
def test_v1_fault_resyncs_and_recovers(fault):
    path = fixture_path(BOOK)
    frames = recv_frames(path)
    inst = capture_instruments(path, KrakenSpotV1Scheme)
    cid, pair, symbol = 464, "XBT/CHF", "BTC-CHF"
    updates = _pair_frames(frames, cid)
    if fault == "altered checksum":
        bad = updates[10]
    else:  # drop an update that changed the top ten levels (its checksum differs from the previous)
        bad = next(updates[k] for k in range(10, len(updates))
                   if json.loads(frames[updates[k]][1])[-3]["c"] != json.loads(frames[updates[k - 1]][1])[-3]["c"])
    inject_after = updates[updates.index(bad) + 5]  # the exchange's fresh snapshot arrives later

    faulty = Harness(KrakenSpotV1Scheme, inst)
    clean = Harness(KrakenSpotV1Scheme, inst)
    failed_at = None
    for i, (ts, data) in enumerate(frames):
        clean.feed(data, ts)
        if i == bad and fault == "dropped update":
            continue
        if i == bad:
            msg = json.loads(data)
            msg[-3]["c"] = str((int(msg[-3]["c"]) + 1) % 2**32)
            data = json.dumps(msg, separators=(",", ":")).encode()
        produced = faulty.feed(data, ts)
        if failed_at is None and faulty.metrics.checksum_failed:
            failed_at = i
            resync = [r for t, r in produced if t == "status" and r.status == "resync"]
            assert len(resync) == 1 and resync[0].symbol == symbol
            assert resync[0].reason.startswith("checksum mismatch: exchange ")
            sub = {"name": "book", "depth": 1000}
            assert [json.loads(s) for s in faulty.conn.sent] == [
                {"event": "unsubscribe", "pair": [pair], "subscription": sub},
                {"event": "subscribe", "pair": [pair], "subscription": sub},
            ]
            assert faulty.scheme.books[pair].count(0) == 0 and pair in faulty.scheme.unsynced
        elif failed_at is not None and i <= inject_after:
            assert not [r for t, r in produced if t in ("lob", "spread") and r.symbol == symbol]
        if i == inject_after:
            # the exchange's answer: a fresh snapshot of the book as it is now
            produced = faulty.feed(v1_book_snapshot_frame(cid, pair, clean.scheme.books[pair]), ts)
            assert produced[0][0] == "status" and produced[0][1].status == "snapshot" and produced[0][1].symbol == symbol
            assert any(t == "lob" and r.symbol == symbol for t, r in produced)
            ok_after_snapshot = faulty.metrics.checksum_ok

    # detected on the altered update itself, or on the pair's next update after the dropped one
    assert failed_at == (bad if fault == "altered checksum" else updates[updates.index(bad) + 1])
    assert faulty.metrics.checksum_failed == 1 and faulty.metrics.resyncs == 1
    # the pair's updates between the failure and the fresh snapshot were not applied (nor checked)
    skipped = sum(1 for k in updates if failed_at < k <= inject_after)
    assert skipped == (5 if fault == "altered checksum" else 4)
    # verification resumed: every later update of every pair checked out
    later = sum(1 for k in updates if k > inject_after)
    assert later > 0
    assert faulty.metrics.checksum_ok == 2437 - (fault == "dropped update") - 1 - skipped
    assert faulty.metrics.checksum_ok - ok_after_snapshot == sum(
        1 for k, (_, d) in enumerate(frames) if k > inject_after and b'"c":"' in d)
    assert clean.metrics.checksum_failed == 0 and clean.metrics.checksum_ok == 2437
    from atomfast.book import ASK, BID

    for p in clean.scheme.books:
        assert faulty.scheme.books[p].levels(ASK) == clean.scheme.books[p].levels(ASK)
        assert faulty.scheme.books[p].levels(BID) == clean.scheme.books[p].levels(BID)


# ------------------------------------------------------------------------------------------------
# v1 protocol details (synthetic messages)

V1_STATUS = ('{"channelID":7,"channelName":"book-10","event":"subscriptionStatus","pair":"XBT/USD",'
             '"status":"subscribed","subscription":{"depth":10,"name":"book"}}')


def _v1_synced(levels_per_side: int = 10) -> tuple[Harness, RefBook]:
    h = Harness(KrakenSpotV1Scheme, {"XBT/USD": Instrument("XBT/USD", "BTC-USD", "spot", "BTC", "USD", 1, 8)})
    h.feed(V1_STATUS)
    ref = RefBook()
    asks = [[f"{50010 + i}.00000", "1.00000000", "1600000000.000001"] for i in range(levels_per_side)]
    bids = [[f"{50000 - i}.00000", "2.00000000", "1600000000.000002"] for i in range(levels_per_side)]
    for lv in asks:
        ref.set("a", lv[0], lv[1])
    for lv in bids:
        ref.set("b", lv[0], lv[1])
    h.feed(json.dumps([7, {"as": asks, "bs": bids}, "book-10", "XBT/USD"]))
    return h, ref


def test_v1_two_dict_update_republish_and_truncation():
    h, ref = _v1_synced()
    # a better bid pushes the 11th bid out of a depth-10 book; an "r" republished ask
    upd = [["50005.00000", "3.00000000", "1600000001.100000"]]
    rep = [["50019.00000", "4.00000000", "1600000001.200000", "r"]]
    ref.set("b", *upd[0][:2])
    ref.set("a", *rep[0][:2])
    ref.truncate(10)
    msg = [7, {"a": rep}, {"b": upd, "c": str(ref.kraken_checksum())}, "book-10", "XBT/USD"]
    produced = h.feed(json.dumps(msg), 1_600_000_001_300_000_000)
    assert h.metrics.checksum_ok == 1 and h.metrics.checksum_failed == 0
    lob = [r for t, r in produced if t == "lob"]
    assert lob == [
        Lob("kraken", "BTC-USD", 50019.0, 4.0, "sell", 1600000001200, 1600000001300000),
        Lob("kraken", "BTC-USD", 50005.0, 3.0, "buy", 1600000001200, 1600000001300000),
        Lob("kraken", "BTC-USD", 49991.0, 0.0, "buy", 1600000001200, 1600000001300000),  # truncated
    ]
    assert [r for t, r in produced if t == "spread"] == [
        Spread("kraken", "BTC-USD", 50005.0, 3.0, 50010.0, 1.0, 1600000001200, 1600000001300000)]
    assert h.scheme.books["XBT/USD"].count(0) == 10


def test_v1_malformed_update_resyncs_and_never_corrupts():
    h, ref = _v1_synced()
    book = h.scheme.books["XBT/USD"]
    before = (book.levels(0), book.levels(1))
    # a valid first level, then a negative size: nothing may be applied
    msg = [7, {"b": [["50000.00000", "9.00000000", "1600000001.1"], ["49999.00000", "-1.00000000", "1600000001.1"]],
               "c": "1"}, "book-10", "XBT/USD"]
    produced = h.feed(json.dumps(msg))
    assert not [r for t, r in produced if t == "lob"]
    assert [r.reason for t, r in produced if t == "status"] == ["malformed book level: invalid size '-1.00000000': signed"]
    assert h.metrics.errors.counts["kraken: malformed book level"] == 1
    assert h.metrics.resyncs == 1 and "XBT/USD" in h.scheme.unsynced and book.count(0) == 0
    assert before[0]  # it was a real book
    # later updates of that pair are ignored until its snapshot
    assert h.feed(json.dumps([7, {"a": [["50010.00000", "5.00000000", "1600000002.1"]], "c": "5"}, "book-10", "XBT/USD"])) == []
    assert h.metrics.checksum_ok == h.metrics.checksum_failed == 0


def test_v1_subscription_error_and_events():
    h = Harness(KrakenSpotV1Scheme)
    produced = h.feed('{"errorMessage":"Currency pair not supported XBT/XYZ","event":"subscriptionStatus",'
                      '"pair":"XBT/XYZ","status":"error","subscription":{"name":"ticker"}}', 1_000_000_000)
    assert h.metrics.errors.counts["kraken: subscription error"] == 1
    assert produced == [("status", Status("kraken", "BTC-XYZ", "stopped",
                                          "subscription error: Currency pair not supported XBT/XYZ", 1000, 1000000))]
    assert h.feed('{"event":"heartbeat"}') == []
    assert h.feed('{"connectionID":18239578009413566319,"event":"systemStatus","status":"online","version":"1.8.3"}') == []
    assert h.feed('{"event":"pong","reqid":42}') == []
    h.feed('{"event":"whatever"}')
    h.feed(b"\x1f\x8b\x08\x00binary")
    h.feed("[1,2")
    h.feed(b"{" + b" " * KrakenSpotV1Scheme.max_frame_bytes + b"}")
    h.feed(b'{"event":' + b"[" * 100_000 + b"]" * 100_000 + b"}")  # deeper than msgspec goes
    h.feed(b"[" * 100_000 + b"]" * 100_000)
    assert h.metrics.errors.counts["kraken: malformed JSON"] == 1
    assert h.metrics.errors.counts["kraken: malformed message"] == 2
    assert h.metrics.errors.counts["kraken: unknown message"] == 1
    assert h.metrics.errors.counts["kraken: not a JSON message"] == 1
    assert h.metrics.errors.counts["kraken: frame too large"] == 1


def test_v1_unknown_channel_id_is_learnt_from_the_message():
    h = Harness(KrakenSpotV1Scheme)  # no subscriptionStatus seen (a capture started late)
    produced = h.feed('[993,[["354.11000000","0.89594024","1618678142.557535","s","l",""]],"trade","XMR/USD"]',
                      1618678142592855000)
    assert [r for _, r in produced] == [Trade("kraken", "XMR-USD", 354.11, 0.89594024, "sell", "1618678142557535-0",
                                              1618678142557, 1618678142592855)]
    channel = h.conn.state[b"[993,"]  # learnt, keyed by the frame's bytes up to the channelID's comma
    assert (channel.kind, channel.pair, channel.depth, channel.symbol) == ("trade", "XMR/USD", 0, "XMR-USD")


def test_v1_book_update_on_an_unknown_channel_id_goes_to_the_declared_book_route():
    """A book update on a channelID never subscribed (the book route is a declared ``BookUpdate``,
    not a method name): the channel learnt from the frame, the update handed to the route, which
    says there is no book yet (a resync), no exception."""
    h = Harness(KrakenSpotV1Scheme, capture_instruments(fixture_path(BOOK), KrakenSpotV1Scheme))
    frame = (b'[1664,{"a":[["13.284500","1396.00000000","1618678133.383209"]],"c":"176333288"},"book-1000",'
             b'"WAVES/EUR"]')
    produced = h.feed(frame, 1618678134221057000)
    assert [(t, e.status, e.reason) for t, e in produced] == [("status", "resync", "book update before its snapshot")]
    channel = h.conn.state[b"[1664,"]
    assert (channel.kind, channel.pair, channel.depth, channel.symbol) == ("book", "WAVES/EUR", 1000, "WAVES-EUR")
    assert h.metrics.errors.total == 0 and "WAVES/EUR" in h.scheme.unsynced


def test_v1_ohlc():
    h = Harness(KrakenSpotV1Scheme)
    h.feed('{"channelID":42,"channelName":"ohlc-5","event":"subscriptionStatus","pair":"XBT/USD",'
           '"status":"subscribed","subscription":{"interval":5,"name":"ohlc"}}')
    produced = h.feed('[42,["1542057314.748456","1542057360.435743","3586.70000","3586.70000","3586.60000",'
                      '"3586.60000","3586.68894","0.03373000",2],"ohlc-5","XBT/USD"]', 1542057315000000000)
    assert produced == [("candle", Candle("kraken", "BTC-USD", 1542057060435, 1542057360435, "5m", 2, False, 3586.7,
                                          3586.7, 3586.6, 3586.6, 0.03373, 1542057314748, 1542057315000000))]


# ------------------------------------------------------------------------------------------------
# v2: the documented examples

MATIC = {"MATIC/USD": Instrument("MATIC/USD", "MATIC-USD", "spot", "MATIC", "USD", 4, 8),
         "ALGO/USD": Instrument("ALGO/USD", "ALGO-USD", "spot", "ALGO", "USD", 5, 8)}

DOC_SUBSCRIBE_ACK = ('{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"MATIC/USD"},'
                     '"success":true,"time_in":"2023-10-06T17:35:55.219022Z","time_out":"2023-10-06T17:35:55.219067Z"}')
DOC_BOOK_SNAPSHOT = """{"channel": "book", "type": "snapshot", "data": [{"symbol": "MATIC/USD",
 "bids": [{"price": 0.5666, "qty": 4831.75496356}, {"price": 0.5665, "qty": 6658.22734739},
  {"price": 0.5664, "qty": 18724.91513344}, {"price": 0.5663, "qty": 11563.92544914},
  {"price": 0.5662, "qty": 14006.65365711}, {"price": 0.5661, "qty": 17454.85679807},
  {"price": 0.566, "qty": 18097.1547}, {"price": 0.5659, "qty": 33644.89175666},
  {"price": 0.5658, "qty": 148.3464}, {"price": 0.5657, "qty": 606.70854372}],
 "asks": [{"price": 0.5668, "qty": 4410.79769741}, {"price": 0.5669, "qty": 4655.40412487},
  {"price": 0.567, "qty": 49844.89424998}, {"price": 0.5671, "qty": 24306.41678},
  {"price": 0.5672, "qty": 29783.25223475}, {"price": 0.5673, "qty": 57234.71239278},
  {"price": 0.5674, "qty": 45065.04744}, {"price": 0.5675, "qty": 5912.76380354},
  {"price": 0.5676, "qty": 42514.92434778}, {"price": 0.5677, "qty": 36304.0847022}],
 "checksum": 2439117997, "timestamp": "2023-10-06T17:35:55.440295Z"}]}"""
DOC_BOOK_UPDATE = """{"channel": "book", "type": "update", "data": [{"symbol": "MATIC/USD",
 "bids": [{"price": 0.5657, "qty": 1098.3947558}], "asks": [],
 "checksum": 2114181697, "timestamp": "2023-10-06T17:35:55.440295Z"}]}"""
RECV_NS = 1_696_613_755_500_000_123  # ns; atom_timestamp = 1696613755500000


def test_v2_documented_book_snapshot_and_update():
    h = Harness(KrakenSpotScheme, MATIC)
    assert h.feed(DOC_SUBSCRIBE_ACK, RECV_NS) == [("status", Status("kraken", "MATIC-USD", "subscribed", "book",
                                                                1696613755500, 1696613755500000))]
    produced = h.feed(DOC_BOOK_SNAPSHOT, RECV_NS)
    assert produced[0] == ("status", Status("kraken", "MATIC-USD", "snapshot", "", 1696613755440, 1696613755500000))
    lob = [r for t, r in produced if t == "lob"]
    assert len(lob) == 20
    assert lob[0] == Lob("kraken", "MATIC-USD", 0.5666, 4831.75496356, "buy", 1696613755440, 1696613755500000)
    assert lob[-1] == Lob("kraken", "MATIC-USD", 0.5677, 36304.0847022, "sell", 1696613755440, 1696613755500000)
    assert [r for t, r in produced if t == "spread"] == [
        Spread("kraken", "MATIC-USD", 0.5666, 4831.75496356, 0.5668, 4410.79769741, 1696613755440, 1696613755500000)]
    assert h.metrics.checksum_ok == 1 and h.metrics.checksum_failed == 0

    produced = h.feed(DOC_BOOK_UPDATE, RECV_NS + 1000)
    assert produced == [("lob", Lob("kraken", "MATIC-USD", 0.5657, 1098.3947558, "buy", 1696613755440, 1696613755500001))]
    assert h.metrics.checksum_ok == 2 and h.metrics.checksum_failed == 0 and h.metrics.errors.total == 0
    # the book holds the exact digits sent (JSON numbers never went through a float)
    assert h.scheme.books["MATIC/USD"].levels(0)[-1] == ("0.5657", "1098.3947558")


def test_v2_checksum_mismatch_resyncs_and_truncates_to_depth():
    h = Harness(KrakenSpotScheme, MATIC)
    h.feed(DOC_SUBSCRIBE_ACK, RECV_NS)
    h.feed(DOC_BOOK_SNAPSHOT, RECV_NS)
    # a better bid in a depth-10 book: the worst bid (0.5657) falls out and is published as removed
    ref = RefBook()
    snap = json.loads(DOC_BOOK_SNAPSHOT, parse_float=str)["data"][0]
    for lv in snap["bids"]:
        ref.set("b", lv["price"], lv["qty"])
    for lv in snap["asks"]:
        ref.set("a", lv["price"], lv["qty"])
    ref.set("b", "0.5667", "12.5")
    ref.truncate(10)
    fmt4 = lambda p: format(Decimal(p), ".4f")  # noqa: E731 - v2 checksums use the pair's precision
    good = ref.kraken_checksum(fmt4, lambda q: format(Decimal(q), ".8f"))
    upd = ('{"channel":"book","type":"update","data":[{"symbol":"MATIC/USD","bids":[{"price":0.5667,"qty":12.5}],'
           '"asks":[],"checksum":%d,"timestamp":"2023-10-06T17:35:56.000001Z"}]}')
    produced = h.feed(upd % good, RECV_NS)
    assert [r for t, r in produced if t == "lob"] == [
        Lob("kraken", "MATIC-USD", 0.5667, 12.5, "buy", 1696613756000, 1696613755500000),
        Lob("kraken", "MATIC-USD", 0.5657, 0.0, "buy", 1696613756000, 1696613755500000),
    ]
    assert h.metrics.checksum_ok == 2
    # now a wrong checksum
    produced = h.feed(upd.replace("0.5667", "0.5666").replace("12.5", "1.5") % 12345, RECV_NS)
    assert h.metrics.checksum_failed == 1 and h.metrics.resyncs == 1
    assert [r.reason for t, r in produced if t == "status"][0].startswith("checksum mismatch: exchange 12345, book ")
    assert [json.loads(s) for s in h.conn.sent] == [
        {"method": "unsubscribe", "params": {"channel": "book", "symbol": ["MATIC/USD"], "depth": 10}},
        {"method": "subscribe", "params": {"channel": "book", "symbol": ["MATIC/USD"], "depth": 10, "snapshot": True}},
    ]
    assert h.feed(DOC_BOOK_UPDATE, RECV_NS) == []  # ignored until the snapshot
    produced = h.feed(DOC_BOOK_SNAPSHOT, RECV_NS)
    assert produced[0][1].status == "snapshot" and h.metrics.checksum_ok == 3


@pytest.mark.parametrize("exponent", [False, True])
def test_v2_book_stream_from_the_v1_capture(exponent):
    """The v1 book capture re-written in the v2 wire format (JSON numbers, without trailing
    zeros; small numbers in exponent form in the second run): every v2 checksum, at the pair's
    precision, verifies, and the books hold exactly the v1 books."""
    path = fixture_path(BOOK)
    v1_inst = capture_instruments(path, KrakenSpotV1Scheme)
    frames = kraken_v2_frames(recv_frames(path), v1_inst, exponent)
    assert len(frames) == 2443
    h = Harness(KrakenSpotScheme, capture_instruments(path, KrakenSpotScheme))
    h.feed_all(frames)
    assert h.metrics.checksum_ok == 2443 and h.metrics.checksum_failed == 0 and h.metrics.errors.total == 0
    assert len(h.events("lob")) == 6855 and len(h.events("spread")) == 460
    v1 = Harness(KrakenSpotV1Scheme, v1_inst)
    v1.feed_all(recv_frames(path))
    # the same level changes (v2 applies a message's bids before its asks, v1 in message order)
    assert sorted(r[:5] for r in h.events("lob")) == sorted(r[:5] for r in v1.events("lob"))
    for pair, book in v1.scheme.books.items():
        v2book = h.scheme.books[v1_inst[pair].symbol.replace("-", "/")]
        for side in (0, 1):
            assert [(Decimal(p), Decimal(q)) for p, q in v2book.levels(side)] == \
                   [(Decimal(p), Decimal(q)) for p, q in book.levels(side)]


def test_v2_documented_trades():
    h = Harness(KrakenSpotScheme, MATIC)
    snapshot = """{"channel": "trade", "type": "snapshot", "data": [
      {"symbol": "MATIC/USD", "side": "buy", "price": 0.5147, "qty": 6423.46326, "ord_type": "limit",
       "trade_id": 4665846, "timestamp": "2023-09-25T07:48:36.925533Z"},
      {"symbol": "MATIC/USD", "side": "buy", "price": 0.5147, "qty": 1136.19677815, "ord_type": "limit",
       "trade_id": 4665847, "timestamp": "2023-09-25T07:49:36.925603Z"}]}"""
    update = """{"channel": "trade", "type": "update", "data": [
      {"symbol": "MATIC/USD", "side": "sell", "price": 0.5117, "qty": 40.0, "ord_type": "market",
       "trade_id": 4665906, "timestamp": "2023-09-25T07:49:37.708706Z"}]}"""
    first = h.feed(snapshot, 1695628178000000000)
    assert [r for _, r in first] == [
        Trade("kraken", "MATIC-USD", 0.5147, 6423.46326, "buy", "4665846", 1695628116925, 1695628178000000),
        Trade("kraken", "MATIC-USD", 0.5147, 1136.19677815, "buy", "4665847", 1695628176925, 1695628178000000),
    ]
    assert h.feed(update, 1695628178000000000) == [
        ("trades", Trade("kraken", "MATIC-USD", 0.5117, 40.0, "sell", "4665906", 1695628177708, 1695628178000000))]


def test_v2_documented_ticker():
    h = Harness(KrakenSpotScheme, MATIC)
    snapshot = """{"channel": "ticker", "type": "snapshot", "data": [{"symbol": "ALGO/USD", "bid": 0.10025,
      "bid_qty": 740.0, "ask": 0.10036, "ask_qty": 1361.44813783, "last": 0.10035, "volume": 997038.98383185,
      "vwap": 0.10148, "low": 0.09979, "high": 0.10285, "change": -0.00017, "change_pct": -0.17,
      "timestamp": "2023-09-25T09:04:31.742648Z"}]}"""
    assert h.feed(snapshot, 1695632672000000000) == [
        ("ticker", Ticker("kraken", "ALGO-USD", 0.10025, 740.0, 0.10036, 1361.44813783, 1695632671742, 1695632672000000))]


def test_v2_documented_ohlc():
    h = Harness(KrakenSpotScheme, MATIC)
    update = """{"channel": "ohlc", "type": "update", "timestamp": "2023-10-04T16:26:30.524394914Z", "data": [
      {"symbol": "MATIC/USD", "open": 0.5624, "high": 0.5628, "low": 0.5622, "close": 0.5627, "trades": 12,
       "volume": 30927.68066226, "vwap": 0.5626, "interval_begin": "2023-10-04T16:25:00.000000000Z",
       "interval": 5, "timestamp": "2023-10-04T16:30:00.000000Z"}]}"""
    assert h.feed(update, 1696436791000000000) == [
        ("candle", Candle("kraken", "MATIC-USD", 1696436700000, 1696437000000, "5m", 12, False, 0.5624, 0.5628,
                          0.5622, 0.5627, 30927.68066226, 1696436790524, 1696436791000000))]


def test_v2_control_messages_and_bad_input():
    h = Harness(KrakenSpotScheme, MATIC)
    assert h.feed('{"channel":"heartbeat"}') == []
    assert h.feed('{"channel":"status","data":[{"api_version":"v2","connection_id":12393906104898154338,'
                  '"system":"online","version":"2.0.0"}],"type":"update"}') == []
    assert h.feed('{"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z",'
                  '"time_out":"2023-09-24T14:10:23.799703Z"}') == []
    produced = h.feed('{"error":"Currency pair not supported","method":"subscribe","success":false,'
                      '"symbol":"MATIC/XYZ","time_in":"2023-09-24T14:10:23.799685Z","time_out":"2023-09-24T14:10:23.799703Z"}',
                      2_000_000_000)
    assert produced == [("status", Status("kraken", "MATIC-XYZ", "stopped",
                                          "subscribe failed: Currency pair not supported", 2000, 2000000))]
    assert h.metrics.errors.counts["kraken: subscription error"] == 1
    h.feed('{"channel":"nope","data":[]}')
    h.feed('{"channel":"book","type":"update","data":[{"symbol":"MATIC/USD","bids":"x"}]}')
    h.feed(b"[1]")
    h.feed(b'{"channel":')
    h.feed(b'{"channel":"book","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    h.feed(b'{"channel":"book","type":"update","data":[{"symbol":["MATIC/USD"],"bids":[],"asks":[],"checksum":1}]}')
    assert h.metrics.errors.counts["kraken: unknown message"] == 1
    assert h.metrics.errors.counts["kraken: malformed book message"] == 2
    assert h.metrics.errors.counts["kraken: not a JSON object"] == 1
    assert h.metrics.errors.counts["kraken: malformed JSON"] == 2
    # absurd numbers in a synced book: refused whole, pair resynced, no level applied
    h.feed(DOC_BOOK_SNAPSHOT, RECV_NS)
    bad = DOC_BOOK_UPDATE.replace('"qty": 1098.3947558}]', '"qty": 1098.3947558}, {"price": 0.5, "qty": 1e400}]')
    assert not [r for t, r in h.feed(bad, RECV_NS) if t == "lob"]
    assert h.metrics.resyncs == 1 and h.metrics.errors.counts["kraken: malformed book level"] == 1
