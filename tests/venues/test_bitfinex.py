"""Bitfinex scheme (websocket v2): the recorded capture, fault injection on it, and the
documented message shapes the capture does not hold.

``cryptofeed/BITFINEX.ws.11.0`` (2021-04-17, ``wss://api.bitfinex.com/ws/2``, the same protocol
as today's ``wss://api-pub.bitfinex.com/ws/2``) was recorded with conf flags 65536 (SEQ_ALL):
every channel message ends with a sequence number, and there are no checksum messages. It holds
7 pairs: ticker, trades (snapshots only: no trade happened in the 30 s) and P0 books of len 100.
It is replayed through ``atomfast.replay.Replay`` with an in-memory sink, and run through an
independent reference model (``atomfast.testing.BitfinexReference``: dicts of the wire's number
texts) so that the counts asserted are not just what the scheme happens to produce.

The checksum rule (OB_CHECKSUM 131072) is tested on the capture's own book stream with the
``["cs", CHECKSUM]`` messages Bitfinex would have sent inserted after every book message: each
checksum is computed here from the documented string (``docs.bitfinex.com/docs/ws-websocket-
checksum``: top 25 bids and asks interleaved, ``price:amount`` as the wire wrote them, ask
amounts negative) with zlib, never by the book under test. R0 (raw books), candles, the
derivatives ``status`` channel and ``te``/``tu`` trades use the examples of Bitfinex's
documentation (docs.bitfinex.com/reference/ws-public-raw-books, -candles, -status, -trades).
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest

from atomfast.book import ASK, BID
from atomfast.capture import open_capture
from atomfast.events import Candle, FundingRate, Lob, LobL3, OpenInterest, Spread, Status, Ticker, Trade
from atomfast.exchanges import scheme_for, schemes
from atomfast.exchanges.bitfinex import BitfinexScheme
from atomfast.exchanges.bitfinex.parse import candle_end, native_of, pair_instrument, parse_pair_lists
from atomfast.kit.dispatch import Dispatch, Lookup
from atomfast.scheme import ConnectionPlan
from atomfast.testing import T0, BitfinexReference, bitfinex_dumps, bitfinex_with_checksums, decimal_levels, fixture_path
from atomfast.testing import Harness, recv_frames, replay_fixture, signed32
from atomfast.testing import capture_instruments as _instruments

CAPTURE = "cryptofeed/BITFINEX.ws.11.0"
LISTING = "cryptofeed/BITFINEX.0"


def bitfinex(instruments=None, channels=None, symbols=()) -> Harness:
    """The test kit's harness on the Bitfinex scheme."""
    return Harness(BitfinexScheme, instruments, channels, symbols)


def capture_frames() -> list[tuple[int, bytes]]:
    return recv_frames(CAPTURE)


def capture_instruments() -> dict:
    return _instruments(CAPTURE, BitfinexScheme)


def replay_capture():
    return replay_fixture(CAPTURE, exchange="bitfinex")


# ------------------------------------------------------------------------------------------------
# independent reference model of Bitfinex P0 books (dicts of the wire's number texts)


def reference() -> BitfinexReference:
    ref = BitfinexReference()
    for _ts, data in capture_frames():
        ref.feed(data)
    return ref


# ------------------------------------------------------------------------------------------------
# registry, symbols, instruments


def test_registered_and_default():
    assert schemes()["bitfinex"] == [BitfinexScheme]
    assert scheme_for("bitfinex", "wss://api.bitfinex.com/ws/2") is BitfinexScheme
    assert BitfinexScheme.ws_url == "wss://api-pub.bitfinex.com/ws/2"


def test_instruments_from_the_recorded_listing():
    instruments = capture_instruments()
    assert len(instruments) == 293  # every name of pub:list:pair:exchange in BITFINEX.0
    assert instruments["tBTCUSD"].symbol == "BTC-USD"
    assert instruments["tAAVE:USD"].symbol == "AAVE-USD"
    assert instruments["tBTCUST"].symbol == "BTC-USDT"
    assert instruments["tIOTETH"].symbol == "IOTA-ETH"
    assert instruments["tDOGUSD"].symbol == "MDOGE-USD"  # Bitfinex's DOG: a million DOGE
    assert instruments["tTESTBTC:TESTUSD"].symbol == "TESTBTC-TESTUSD"
    assert instruments["tBCHN:USD"].symbol == "BCH-USD"
    assert all(i.kind == "spot" for i in instruments.values())
    # the futures listing of the same capture (its 2021 key "pub:list:pair:future")
    futures = parse_pair_lists(open_capture(fixture_path(CAPTURE)).rest_body("/v2/conf/pub:list:pair:future"))
    assert len(futures) == 35
    btc = futures["tBTCF0:USTF0"]
    assert (btc.symbol, btc.kind, btc.base, btc.quote) == ("BTC-USDT-PERP", "perp", "BTC", "USDT")
    assert futures["tETHF0:BTCF0"].symbol == "ETH-BTC-PERP"
    assert futures["tTESTBTCF0:TESTUSDTF0"].symbol == "TESTBTC-TESTUSDT-PERP"
    # several lists at once (/v2/conf/pub:list:pair:exchange,pub:list:pair:futures)
    both = parse_pair_lists(b'[["BTCUSD","AAVE:USD"],["BTCF0:USTF0"]]')
    assert sorted(i.symbol for i in both.values()) == ["AAVE-USD", "BTC-USD", "BTC-USDT-PERP"]


def test_symbol_round_trip_and_unknown_names():
    for native in ("tBTCUSD", "tAAVE:USD", "tBTCF0:USTF0", "tIOTETH", "tTESTBTCF0:TESTUSDTF0"):
        assert native_of(pair_instrument(native).symbol) == native
    for bad in ("fUSD", "tBTC", "BTCUSD", "tBTC-USD", "", "t"):
        with pytest.raises(KeyError):
            pair_instrument(bad)


def test_plan_status_for_perpetuals_only_and_25_channels_a_connection():
    instruments = capture_instruments()
    h = bitfinex(instruments, ("lob", "trades", "funding_rate", "open_interest"), ("BTC-USD", "BTC-USDT-PERP"))
    plans = h.scheme.plan()
    assert plans == [ConnectionPlan(BitfinexScheme.ws_url, [
        ("book", ["tBTCUSD", "tBTCF0:USTF0"]), ("trades", ["tBTCUSD", "tBTCF0:USTF0"]), ("status", ["tBTCF0:USTF0"])])]
    h.conn.plan = plans[0]
    h.open(T0)
    assert h.sent() == [
        {"event": "conf", "flags": 196608},
        {"event": "subscribe", "channel": "book", "symbol": "tBTCUSD", "prec": "P0", "freq": "F0", "len": "250"},
        {"event": "subscribe", "channel": "book", "symbol": "tBTCF0:USTF0", "prec": "P0", "freq": "F0", "len": "250"},
        {"event": "subscribe", "channel": "trades", "symbol": "tBTCUSD"},
        {"event": "subscribe", "channel": "trades", "symbol": "tBTCF0:USTF0"},
        {"event": "subscribe", "channel": "status", "key": "deriv:tBTCF0:USTF0"},
    ]
    spot = [i.symbol for i in list(instruments.values())[:13]]
    big = bitfinex(instruments, ("lob", "lob_l3", "candle"), spot).scheme.plan()
    assert [sum(len(n) for _c, n in p.subscriptions) for p in big] == [25, 14]
    with pytest.raises(ValueError):
        bitfinex(instruments, ("lob",), ("NOPE-USD",)).scheme.plan()


# ------------------------------------------------------------------------------------------------
# the capture


def test_replay_capture_counts():
    replay, sink = replay_capture()
    ref = reference()
    m = replay.metrics
    assert m.frames == 1693
    assert dict(m.events) == {"lob": 2926, "spread": 471, "status": 29, "ticker": 21, "trades": 210}
    # the same counts from the reference model
    assert ref.lob == 2926 and ref.spread == 471 and ref.tickers == 21 and ref.snapshots == 7
    assert sum(len(rows) for _s, rows in ref.trade_rows) == 210
    assert (m.gaps, m.resyncs, m.checksum_ok, m.checksum_failed, m.errors.total) == (0, 0, 0, 0, 0)
    # status: connected, 21 subscribed, 7 snapshots
    statuses = [r for t, r in sink.records if t == "status"]
    assert [s.status for s in statuses].count("subscribed") == 21
    assert [s.symbol for s in statuses if s.status == "snapshot"] == [
        "TESTBTC-TESTUSD", "MDOGE-USD", "ODE-USD", "IOTA-ETH", "MANA-BTC", "BFT-USD", "SNGLS-USD"]
    # conf asks for sequence numbers and checksums
    conn = replay.connections[0]
    assert json.loads(conn.sent[0]) == {"event": "conf", "flags": 196608}
    # the final books equal the reference model's
    books = replay.scheme.books
    assert len(books) == 7
    for native, book in books.items():
        assert decimal_levels(book.levels(BID)) == ref.levels(native, "b"), native
        assert decimal_levels(book.levels(ASK)) == ref.levels(native, "a"), native
        assert book.checksum_bitfinex() == ref.checksum(native)


def test_replay_capture_trades_and_ticker_values():
    _replay, sink = replay_capture()
    trades = [r for t, r in sink.records if t == "trades"]
    bft = [t for t in trades if t.symbol == "BFT-USD"]
    # recorded 1618677543.960532: [232959,[[669899159,1618665870435,166.391496,0.076989],...
    # [669898213,1618661110078,-2272.50116833,0.068961],...]]: published oldest first
    assert Trade("bitfinex", "BFT-USD", 0.076989, 166.391496, "buy", "669899159", 1618665870435,
                 1618677543960532) == bft[-1]
    assert Trade("bitfinex", "BFT-USD", 0.068961, 2272.50116833, "sell", "669898213", 1618661110078,
                 1618677543960532) in bft
    assert [int(t.trade_id) for t in bft] == sorted(int(t.trade_id) for t in bft)
    assert len({(t.symbol, t.trade_id) for t in trades}) == 210
    tickers = [r for t, r in sink.records if t == "ticker"]
    # 1618677543.9512289: [232949,[0.068965,60157.36709703,0.0774,48578.50804052,...],1]
    assert tickers[0] == Ticker("bitfinex", "BFT-USD", 0.068965, 60157.36709703, 0.0774, 48578.50804052,
                                1618677543951, 1618677543951228)
    lob = [r for t, r in sink.records if t == "lob"]
    # 1618677545.5719209: [225206,[215350,0,1],18]: a delete of the MDOGE-USD bid at 215350
    assert Lob("bitfinex", "MDOGE-USD", 215350.0, 0.0, "buy", 1618677545571, 1618677545571920) in lob
    # 1618677545.8368142: [232955,[0.0010272,1,-8],29]: an IOTA-ETH ask
    assert Lob("bitfinex", "IOTA-ETH", 0.0010272, 8.0, "sell", 1618677545836, 1618677545836814) in lob


def test_replay_capture_spread_is_the_book_top():
    replay, sink = replay_capture()
    last: dict[str, Spread] = {}
    for t, r in sink.records:
        if t == "spread":
            last[r.symbol] = r
    for native, book in replay.scheme.books.items():
        s = last[replay.scheme.instrument(native).symbol]
        assert (s.bid_price, s.bid_size, s.ask_price, s.ask_size) == book.best()
        assert s.bid_price < s.ask_price


# ------------------------------------------------------------------------------------------------
# faults on the capture: sequence numbers


def _seq_of(data: bytes) -> int:
    return json.loads(data)[-1]


def _snapshot_frame(ref: BitfinexReference, symbol: str, chan: int, seq: int) -> bytes:
    book = ref.books[symbol]
    rows = [f"[{p},1,{a}]" for p, a in (book["b"][k] for k in sorted(book["b"], reverse=True))]
    rows += [f"[{p},1,{a}]" for p, a in (book["a"][k] for k in sorted(book["a"]))]
    return f"[{chan},[{','.join(rows)}],{seq}]".encode()


def _resubscribed_stream(drop: int | None = None, swap: int | None = None, resnap_at: int = 0):
    """The capture's frames with one frame dropped (or two neighbours swapped). After frame
    ``resnap_at`` the exchange's answer to our resubscriptions is injected for every book then
    subscribed: unsubscribed, subscribed with a new chanId, a snapshot of the true book at that
    point (from the complete stream); later frames of the old chanIds move to the new ones, and
    later sequence numbers make room for the injected snapshots."""
    frames = capture_frames()
    truth = BitfinexReference()
    for _ts, data in frames[:resnap_at + 1]:
        truth.feed(data)
    modified = list(frames)
    if swap is not None:
        modified[swap], modified[swap + 1] = modified[swap + 1], modified[swap]
    out: list[tuple[int, bytes]] = []
    moved: dict[int, int] = {}
    last_seq = 0
    for i, (ts, data) in enumerate(modified):
        if i == drop:
            continue
        if data[:1] == b"[" and moved:
            msg = json.loads(data, parse_float=str, parse_int=str)
            msg[0] = str(moved.get(int(msg[0]), int(msg[0])))
            msg[-1] = str(int(msg[-1]) + len(moved))
            data = bitfinex_dumps(msg)
        if data[:1] == b"[":
            last_seq = max(last_seq, _seq_of(data))
        out.append((ts, data))
        if i == resnap_at:
            for chan, (channel, symbol) in list(truth.channels.items()):
                if channel != "book" or symbol not in truth.books:
                    continue
                new = chan + 1_000_000
                moved[chan] = new
                last_seq += 1
                out.append((ts, f'{{"event":"unsubscribed","status":"OK","chanId":{chan}}}'.encode()))
                out.append((ts, f'{{"event":"subscribed","channel":"book","chanId":{new},"symbol":"{symbol}",'
                                f'"prec":"P0","freq":"F0","len":"100","pair":"{symbol[1:]}"}}'.encode()))
                out.append((ts, _snapshot_frame(truth, symbol, new, last_seq)))
    return out, truth


def _run(frames) -> Harness:
    h = bitfinex(capture_instruments())
    h.open(frames[0][0])
    h.feed_all(frames)
    return h


def test_fault_dropped_book_message_resyncs_and_rebuilds():
    frames = capture_frames()
    # an IOTA-ETH update after all seven snapshots (the last one is frame 648)
    drop = next(i for i, (_t, d) in enumerate(frames) if i >= 700 and d.startswith(b"[232955,[0."))
    resnap_at = drop + 40
    stream, truth = _resubscribed_stream(drop=drop, resnap_at=resnap_at)
    h = _run(stream)
    m = h.metrics
    assert m.gaps == 1
    assert m.resyncs == 7  # every book of the connection
    assert m.checksum_failed == 0
    resyncs = [s for s in h.events("status") if s.status == "resync"]
    assert len(resyncs) == 7 and all(s.reason.startswith("sequence gap: expected ") for s in resyncs)
    gap_seq = _seq_of(frames[drop][1])
    assert resyncs[0].reason == f"sequence gap: expected {gap_seq}, got {gap_seq + 1}"
    # each book reloaded by unsubscribing and subscribing its channel on the connection
    sent = [json.loads(s) for s in h.conn.sent[1:]]
    assert len(sent) == 14
    assert sent[0] == {"event": "unsubscribe", "chanId": 232957}
    assert sent[1] == {"event": "subscribe", "channel": "book", "symbol": "tTESTBTC:TESTUSD", "prec": "P0",
                       "freq": "F0", "len": "250"}
    # nothing published for a resynced market between its resync and its new snapshot
    seen_resync: set[str] = set()
    for topic, r in h.records:
        if topic == "status" and r.status == "resync":
            seen_resync.add(r.symbol)
        elif topic == "status" and r.status == "snapshot":
            seen_resync.discard(r.symbol)
        elif topic in ("lob", "spread"):
            assert r.symbol not in seen_resync, r
    # rebuilt: the books equal the books of the complete stream, built from scratch
    clean = _run(frames)
    full = reference()
    assert h.scheme.unsynced == set()
    assert len(clean.scheme.books) == len(h.scheme.books) == 7
    for native, book in clean.scheme.books.items():
        assert h.scheme.books[native].levels(BID) == book.levels(BID)
        assert h.scheme.books[native].levels(ASK) == book.levels(ASK)
        assert decimal_levels(h.scheme.books[native].levels(BID)) == full.levels(native, "b")
        assert decimal_levels(h.scheme.books[native].levels(ASK)) == full.levels(native, "a")
        h.scheme.books[native]._validate()
    # the fresh snapshots were published: one status snapshot per book, twice in all
    assert [s.status for s in h.events("status")].count("snapshot") == 14


def test_fault_reordered_messages_are_a_gap():
    frames = capture_frames()
    swap = next(i for i, (_t, d) in enumerate(frames) if i >= 700 and d.startswith(b"[225206,[") and
                frames[i + 1][1].startswith(b"[225206,["))
    stream, _truth = _resubscribed_stream(swap=swap, resnap_at=swap + 30)
    h = _run(stream)
    # the later message first (expected n, got n+1), then the earlier one (out of order)
    assert h.metrics.gaps == 2
    assert h.metrics.resyncs == 7
    assert h.scheme.unsynced == set()
    clean = _run(frames)
    for native, book in clean.scheme.books.items():
        assert h.scheme.books[native].levels(BID) == book.levels(BID)
        assert h.scheme.books[native].levels(ASK) == book.levels(ASK)


def test_fault_dropped_heartbeat_is_a_gap_too():
    frames = capture_frames()
    drop = next(i for i, (_t, d) in enumerate(frames) if b'"hb"' in d and i > 700)
    kept = frames[:drop] + frames[drop + 1:]
    h = _run(kept)
    assert h.metrics.gaps == 1
    assert h.metrics.resyncs == sum(1 for s in h.events("status") if s.status == "resync") == 7
    # no resubscription answered: the books stay unsynced and publish nothing more
    assert h.scheme.unsynced == set(h.scheme.books)


# ------------------------------------------------------------------------------------------------
# checksums (the capture's stream with the checksums Bitfinex would have sent)


def test_checksums_verified_on_every_book_message():
    h = _run(bitfinex_with_checksums(capture_frames()))
    m = h.metrics
    assert (m.checksum_ok, m.checksum_failed, m.gaps, m.resyncs, m.errors.total) == (1600, 0, 0, 0, 0)
    assert len(h.events("lob")) == 2926


def test_checksum_mismatch_resyncs_that_book():
    frames = capture_frames()
    bad = next(i for i, (_t, d) in enumerate(frames) if i >= 700 and d.startswith(b"[232956,[0."))
    h = _run(bitfinex_with_checksums(capture_frames(), corrupt_at=bad))
    m = h.metrics
    assert (m.checksum_failed, m.gaps, m.resyncs) == (1, 0, 1)
    resync = [s for s in h.events("status") if s.status == "resync"]
    assert len(resync) == 1 and resync[0].symbol == "MANA-BTC"
    assert resync[0].reason.startswith("checksum mismatch: exchange ")
    assert [json.loads(s) for s in h.conn.sent[1:]] == [
        {"event": "unsubscribe", "chanId": 232956},
        {"event": "subscribe", "channel": "book", "symbol": "tMNABTC", "prec": "P0", "freq": "F0", "len": "250"}]
    # its later updates and checksums are ignored; the other books go on being verified
    after = h.records[h.records.index(("status", resync[0])):]
    assert not [r for t, r in after if t in ("lob", "spread") and r.symbol == "MANA-BTC"]
    # every book message of the other markets, and MANA-BTC's up to the corrupted one, verified
    book_msgs = [d for _t, d in frames if d[:1] == b"[" and b'"hb"' not in d and
                 int(d[1:d.index(b",")]) in (232957, 225206, 204928, 232955, 232956, 232954, 232958)]
    assert len(book_msgs) == 1600
    mana_after = [d for _t, d in frames[bad:] if d.startswith(b"[232956,") and b'"hb"' not in d]
    assert m.checksum_ok == 1600 - len(mana_after) == 1415
    assert "tMNABTC" in h.scheme.unsynced and len(h.scheme.books["tMNABTC"]) == 0


def test_checksum_before_snapshot_and_malformed_checksum():
    h = bitfinex({})
    h.open()
    h.feed('{"event":"conf","status":"OK","flags":196608}')
    h.feed('{"event":"subscribed","channel":"book","chanId":17082,"symbol":"tBTCUSD","prec":"P0","freq":"F0",'
           '"len":"25","pair":"BTCUSD"}')
    h.feed('[17082,"cs",123,1]')  # no book yet: nothing to compare
    assert (h.metrics.checksum_ok, h.metrics.checksum_failed, h.metrics.errors.total) == (0, 0, 0)
    h.feed("[17082,[[7254.7,3,3.3],[7254.8,1,-1.25]],2]")
    cs = signed32(zlib.crc32(b"7254.7:3.3:7254.8:-1.25"))
    h.feed(f'[17082,"cs",{cs},3]')
    assert h.metrics.checksum_ok == 1
    h.feed(f'[17082,"cs",{1 << 40},4]')
    assert h.metrics.errors.counts["bitfinex: malformed checksum"] == 1
    assert h.metrics.resyncs == 1 and "tBTCUSD" in h.scheme.unsynced


# ------------------------------------------------------------------------------------------------
# documented shapes: R0 raw books, trades te/tu, candles, derivatives status


def test_raw_book_l3():
    h = bitfinex({}, ("lob_l3", "trades"))
    h.open()
    h.feed('{"event":"conf","status":"OK","flags":196608}')
    h.feed('{"event":"subscribed","channel":"book","chanId":10092,"symbol":"tETHUSD","prec":"R0","freq":"F0",'
           '"len":"25","subId":123,"pair":"ETHUSD"}')
    snap = h.feed("[10092,[[34753002978,7294.7,1.54340371],[34753002980,7294.7,0.5],[34753002979,7295,-2],"
                  "[34753002981,7296.1,-1e-8]],1]", T0 + 1000)
    ms, us = (T0 + 1000) // 1_000_000, (T0 + 1000) // 1000
    assert snap[0] == ("status", Status("bitfinex", "ETH-USD", "snapshot", "", ms, us))
    assert [r for t, r in snap if t == "lob_l3"] == [
        LobL3("bitfinex", "ETH-USD", 7294.7, 1.54340371, "buy", "34753002978", ms, us),
        LobL3("bitfinex", "ETH-USD", 7294.7, 0.5, "buy", "34753002980", ms, us),
        LobL3("bitfinex", "ETH-USD", 7295.0, 2.0, "sell", "34753002979", ms, us),
        LobL3("bitfinex", "ETH-USD", 7296.1, 1e-8, "sell", "34753002981", ms, us),
    ]
    # spread from the raw book (no P0 subscription): level totals
    assert [r for t, r in snap if t == "spread"] == [Spread("bitfinex", "ETH-USD", 7294.7, 2.04340371, 7295.0, 2.0, ms, us)]
    # documented checksum string: bids[0].id:bids[0].amount:asks[0].id:asks[0].amount:...
    text = "34753002978:1.54340371:34753002979:-2:34753002980:0.5:34753002981:-1e-8"
    h.feed(f'[10092,"cs",{signed32(zlib.crc32(text.encode()))},2]')
    assert (h.metrics.checksum_ok, h.metrics.checksum_failed) == (1, 0)
    # partial fill (same price: queue place kept), move, removal (PRICE 0), removal of an unknown
    assert h.feed("[10092,[34753002978,7294.7,1.2],3]")[0] == (
        "lob_l3", LobL3("bitfinex", "ETH-USD", 7294.7, 1.2, "buy", "34753002978", T0 // 1_000_000, T0 // 1000))
    h.feed("[10092,[34753002979,7295.5,-2],4]")
    removed = h.feed("[10092,[34753002981,0,-1],5]")
    assert removed[0] == ("lob_l3", LobL3("bitfinex", "ETH-USD", 7296.1, 0.0, "sell", "34753002981",
                                          T0 // 1_000_000, T0 // 1000))
    assert h.feed("[10092,[99,0,1],6]") == []
    book = h.scheme.books["tETHUSD|R0"]
    assert book.orders_at(BID, "7294.7") == [(34753002978, "1.2"), (34753002980, "0.5")]
    assert book.order(34753002979) == (ASK, "7295.5", "2")
    text = "34753002978:1.2:34753002979:-2:34753002980:0.5"
    h.feed(f'[10092,"cs",{signed32(zlib.crc32(text.encode()))},7]')
    assert (h.metrics.checksum_ok, h.metrics.checksum_failed, h.metrics.gaps, h.metrics.errors.total) == (2, 0, 0, 0)
    # a gap resyncs the raw book through its own channel (prec R0)
    h.feed("[10092,[34753002990,7290,1],9]")
    assert h.metrics.gaps == 1 and "tETHUSD|R0" in h.scheme.unsynced
    assert [json.loads(s) for s in h.conn.sent[1:]] == [
        {"event": "unsubscribe", "chanId": 10092},
        {"event": "subscribe", "channel": "book", "symbol": "tETHUSD", "prec": "R0", "freq": "F0", "len": "250"}]
    h.feed('{"event":"unsubscribed","status":"OK","chanId":10092}')
    h.feed('{"event":"subscribed","channel":"book","chanId":10093,"symbol":"tETHUSD","prec":"R0","freq":"F0",'
           '"len":"250","pair":"ETHUSD"}')
    h.feed("[10093,[[5,7000,1]],10]")
    assert "tETHUSD|R0" not in h.scheme.unsynced and len(book) == 1


def test_trades_te_tu_documented():
    h = bitfinex({})
    h.open()
    h.feed('{"event":"subscribed","channel":"trades","chanId":17470,"symbol":"tBTCUSD","pair":"BTCUSD"}')
    snap = h.feed("[17470,[[401597393,1574694475039,0.005,7244.9],[401597392,1574694470503,-0.01,7245.3]]]")
    us = T0 // 1000
    assert [r for _t, r in snap] == [
        Trade("bitfinex", "BTC-USD", 7245.3, 0.01, "sell", "401597392", 1574694470503, us),
        Trade("bitfinex", "BTC-USD", 7244.9, 0.005, "buy", "401597393", 1574694475039, us)]
    te = h.feed('[17470,"te",[401597395,1574694478808,0.005,7245.3]]')
    assert te == [("trades", Trade("bitfinex", "BTC-USD", 7245.3, 0.005, "buy", "401597395", 1574694478808, us))]
    assert h.feed('[17470,"tu",[401597395,1574694478808,0.005,7245.3]]') == []  # the same trade again
    # a tu whose te was not seen is published; a snapshot after a resubscription repeats nothing
    assert len(h.feed('[17470,"tu",[401597396,1574694479000,-0.2,7245.1]]')) == 1
    assert h.feed("[17470,[[401597396,1574694479000,-0.2,7245.1],[401597395,1574694478808,0.005,7245.3]]]") == []
    assert h.metrics.errors.total == 0


def test_candles_documented():
    h = bitfinex({}, ("candle",))
    h.open()
    h.feed('{"event":"subscribed","channel":"candles","chanId":343351,"key":"trade:1m:tBTCUSD"}')
    us = T0 // 1000
    snap = h.feed("[343351,[[1574698260000,7379.785503,7383.8,7388.3,7379.785503,1.68829482]]]")
    assert snap == [("candle", Candle("bitfinex", "BTC-USD", 1574698260000, 1574698320000, "1m", 0, False,
                                      7379.785503, 7388.3, 7379.785503, 7383.8, 1.68829482, us // 1000, us))]
    upd = h.feed("[343351,[1574698200000,7399.9,7379.7,7399.9,7371.8,41.63633658]]")  # an older candle: closed
    assert upd == [("candle", Candle("bitfinex", "BTC-USD", 1574698200000, 1574698260000, "1m", 0, True,
                                     7399.9, 7399.9, 7371.8, 7379.7, 41.63633658, us // 1000, us))]
    assert candle_end(1577836800000, "1M") == 1580515200000  # 2020-01-01 -> 2020-02-01
    assert candle_end(1574698200000, "1D") == 1574698200000 + 86_400_000


def test_derivatives_status_documented():
    h = bitfinex({})
    h.open()
    h.feed('{"event":"subscribed","channel":"status","chanId":335856,"key":"deriv:tBTCF0:USTF0"}')
    out = h.feed("[335856,[1596124822000,null,0.896,0.771995,null,1396531.67460709,null,1596153600000,0.0001056,6,"
                 "null,-0.01381344,null,null,0.7664,null,null,246502.09001551,null,null,null,null,0.3]]")
    us = T0 // 1000
    assert out == [
        ("funding_rate", FundingRate("bitfinex", "BTC-USDT-PERP", 0.7664, -0.01381344, 1596153600000, 0.0001056,
                                     1596124822000, us)),
        ("open_interest", OpenInterest("bitfinex", "BTC-USDT-PERP", 246502.09001551, 1596124822000, us)),
    ]
    assert h.metrics.errors.total == 0


# ------------------------------------------------------------------------------------------------
# events: info, error, conf


def _subscribed_books(h: Harness) -> None:
    h.open()
    h.feed('{"event":"conf","status":"OK","flags":196608}')
    h.feed('{"event":"subscribed","channel":"book","chanId":1,"symbol":"tBTCUSD","prec":"P0","freq":"F0",'
           '"len":"25","pair":"BTCUSD"}')
    h.feed('{"event":"subscribed","channel":"trades","chanId":2,"symbol":"tBTCUSD","pair":"BTCUSD"}')
    h.feed("[1,[[100,1,1],[101,1,-1]],1]")
    h.conn.sent.clear()


def test_info_reconnect_and_maintenance():
    h = bitfinex({})
    _subscribed_books(h)
    h.feed('{"event":"info","code":20051,"msg":"Stopping. Please try to reconnect"}')
    assert h.conn.reconnects == ["bitfinex info 20051: Stopping. Please try to reconnect"]
    h.feed('{"event":"info","code":20060,"msg":"Entering in Maintenance mode."}')
    assert [s.reason for s in h.events("status") if s.status == "resync"] == ["exchange maintenance (20060)"]
    assert h.conn.sent == [] and "tBTCUSD" in h.scheme.unsynced and h.metrics.gaps == 0
    assert h.feed("[1,[100,2,3],2]") == []  # paused: the book publishes nothing
    h.feed('{"event":"info","code":20061,"msg":"Maintenance ended."}')
    assert [json.loads(s) for s in h.conn.sent] == [
        {"event": "unsubscribe", "chanId": 1},
        {"event": "subscribe", "channel": "book", "symbol": "tBTCUSD", "prec": "P0", "freq": "F0", "len": "250"},
        {"event": "unsubscribe", "chanId": 2},
        {"event": "subscribe", "channel": "trades", "symbol": "tBTCUSD"}]
    h.feed('{"event":"subscribed","channel":"book","chanId":3,"symbol":"tBTCUSD","prec":"P0","freq":"F0",'
           '"len":"250","pair":"BTCUSD"}')
    h.feed("[3,[[99,1,2]],3]")
    assert "tBTCUSD" not in h.scheme.unsynced and h.scheme.books["tBTCUSD"].best() == (99.0, 2.0, 0.0, 0.0)


def test_error_events_and_failed_conf():
    h = bitfinex({})
    h.open()
    out = h.feed('{"event":"error","msg":"symbol: invalid","code":10300,"channel":"book","symbol":"tBTCUSD"}')
    assert out[0][1].status == "stopped" and out[0][1].symbol == "BTC-USD"
    assert out[0][1].reason == "book error 10300: symbol: invalid"
    h.feed('{"event":"conf","status":"FAILED","flags":196608}')
    h.feed('{"event":"pong","ts":1511545528111,"cid":1234}')
    h.feed('{"event":"info","version":2,"serverId":"x","platform":{"status":1}}')
    assert dict(h.metrics.errors.counts) == {"bitfinex: exchange error": 1, "bitfinex: conf failed": 1}


def test_malformed_book_messages_resync_and_do_not_corrupt():
    h = bitfinex({})
    _subscribed_books(h)
    before = h.scheme.books["tBTCUSD"].levels(BID)
    for frame in [
        "[1,[0,1,5]]",  # no sequence number (with SEQ_ALL on)
        "[1,[0,1,5],2]",  # price 0
        '[1,["100",1,5],2]',  # a string
        "[1,[100,1,0],2]",  # count > 0 with amount 0
        "[1,[100,-1,1],2]",  # negative count
        "[1,[1e400,1,1],2]",  # absurd
        "[1,[100,1,1e-9],2]",  # beyond the amount decimals
        "[1,[100,1],2]",  # a field missing
        "[1,[-0,1,1],2]",  # a signed price, zero included (snapshots refuse it too)
        "[1,[-100,1,1],2]",  # a negative price
    ]:
        h2 = bitfinex({})
        _subscribed_books(h2)
        h2.feed(frame)
        assert "tBTCUSD" in h2.scheme.unsynced, frame
        assert h2.metrics.errors.total >= 1, frame
        assert h2.metrics.resyncs == 1, frame
        assert len(h2.scheme.books["tBTCUSD"]) == 0  # dropped, not half-applied
    assert before == [("100", "1")]
    # a snapshot with one bad row is refused whole: status resync, no level published
    h3 = bitfinex({})
    _subscribed_books(h3)
    out = h3.feed('[1,[[100,1,1],[101,1,"x"]],2]')
    assert [t for t, _r in out] == ["status"] and out[0][1].status == "resync"


def test_on_close_marks_books_unsynced():
    h = bitfinex({})
    _subscribed_books(h)
    h.feed('{"event":"subscribed","channel":"book","chanId":5,"symbol":"tETHUSD","prec":"R0","freq":"F0",'
           '"len":"25","pair":"ETHUSD"}')
    h.feed("[5,[[7,10,1]],2]")
    h.scheme.on_close(h.conn, "closed", T0)
    assert h.scheme.unsynced == {"tBTCUSD", "tETHUSD|R0"}


def test_listing_fixture_present():
    assert Path(fixture_path(LISTING)).is_file()


def test_lost_or_malformed_snapshot_after_a_resync_is_asked_for_again():
    h = bitfinex({})
    _subscribed_books(h)
    h.feed("[1,[100,2,1],3]")  # seq 2 lost: gap
    assert h.metrics.gaps == 1 and [json.loads(x)["event"] for x in h.conn.sent] == ["unsubscribe", "subscribe"]
    h.feed('{"event":"unsubscribed","status":"OK","chanId":1}')
    h.feed('{"event":"subscribed","channel":"book","chanId":7,"symbol":"tBTCUSD","prec":"P0","freq":"F0",'
           '"len":"250","pair":"BTCUSD"}')
    # the new snapshot (seq 4) is lost: the next message shows the gap, the book is asked for again
    h.feed("[2,[[1,1574694475039,0.005,7244.9]],5]")
    assert h.metrics.gaps == 2 and h.metrics.resyncs == 1
    assert [json.loads(x) for x in h.conn.sent[2:]] == [
        {"event": "unsubscribe", "chanId": 7},
        {"event": "subscribe", "channel": "book", "symbol": "tBTCUSD", "prec": "P0", "freq": "F0", "len": "250"}]
    h.feed('{"event":"subscribed","channel":"book","chanId":8,"symbol":"tBTCUSD","prec":"P0","freq":"F0",'
           '"len":"250","pair":"BTCUSD"}')
    h.feed('[8,[[100,1,"bad"]],6]')  # a malformed snapshot: asked for again as well
    assert [json.loads(x)["event"] for x in h.conn.sent[4:]] == ["unsubscribe", "subscribe"]
    h.feed('{"event":"subscribed","channel":"book","chanId":9,"symbol":"tBTCUSD","prec":"P0","freq":"F0",'
           '"len":"250","pair":"BTCUSD"}')
    h.feed("[9,[[100,1,1],[101,1,-2]],7]")
    assert "tBTCUSD" not in h.scheme.unsynced
    assert h.scheme.books["tBTCUSD"].best() == (100.0, 1.0, 101.0, 2.0)
    assert h.metrics.resyncs == 1  # one resync (status), reloaded three times


# ------------------------------------------------------------------------------------------------
# the one-row P0 update in C (the kit's SignedLevel) against the venue's Python handler


class _PythonRowScheme(BitfinexScheme):
    """The scheme with its one-row P0 route handled by ``_on_p0_row`` (Python) instead of the
    declared ``SignedLevel`` shape (C)."""

    dispatch = Dispatch({key: handler for key, (_, handler) in BitfinexScheme.ROUTES.items()},
                        prefilter=Lookup(b",", attr="route", keep="_chan"),
                        decoders={key: dec for key, (dec, _) in BitfinexScheme.ROUTES.items() if dec is not None},
                        fallback="_slow", refused="_refused")


_ROWS = ["[100,1,1]", "[100,2,0.5]", "[101,1,-0.25]", "[99,3,0.10]", "[100,0,1]", "[101,0,-1]", "[102,1,0.0]",
         "[102,1,-0e5]", "[102,1,0.000]", "[102,1,00.5]", "[103,1,0e0]", "[102,0,0]", "[100,0,-0.0]", "[102,-1,1]",
         "[0,1,1]", "[-0,1,1]", "[-100,1,1]", '["100",1,5]', "[1e400,1,1]", "[100,1,1e-9]", "[100,1]", "[100,1,1,7]",
         '[100,1,"1"]', "[98,1,2]", "[97,2,-3]", "[100.5,1,1.5]", "[100.5,0,1]", "[99.99,1,-2]", "[101,5,0.01e2]",
         "[101,1,-1E-2]", "[105,0,1]", "[1,1,-]", "[100,true,1]", "[100,1.0,1]", "[100,1,-1]", "[99,1,-1]"]


def _row_cases() -> list[list[str]]:
    """Each row alone on a fresh book (after the snapshot's number 1), the good rows in one
    sequence, and sequence faults (a gap, a duplicate, no number, a channel not learnt, a dead
    channel's row)."""
    cases = [[f"[1,{row},2]"] for row in _ROWS]
    good = [r for r in _ROWS if r not in ("[102,1,0.0]",)][:6] + ["[98,1,2]", "[97,2,-3]", "[100.5,1,1.5]",
                                                                   "[99.99,1,-2]", "[100,1,-1]"]
    cases.append([f"[1,{row},{i + 2}]" for i, row in enumerate(good)])
    cases.append(["[1,[100,1,1],2]", "[1,[100,1,2],4]", "[1,[100,1,3],5]"])  # a gap
    cases.append(["[1,[100,1,1],2]", "[1,[100,1,2],2]", "[1,[100,1,3],3]"])  # a duplicate
    cases.append(["[1,[100,1,1]]", "[1,[100,1,3],2]"])  # no number
    cases.append(["[7,[100,1,1],2]"])  # a channel not learnt
    cases.append(['{"event":"info","code":20060}', "[1,[100,1,1],2]"])  # maintenance: dead until 20061
    cases.append(['{"event":"subscribed","channel":"book","chanId":1,"symbol":"tBTCUSD","prec":"P0","freq":"F0",'
                  '"len":"25","pair":"BTCUSD"}', "[1,[100,1,1],2]"])  # a row before the snapshot
    return cases


@pytest.mark.parametrize("case", _row_cases(), ids=lambda c: c[-1])
def test_p0_row_compiled_equals_the_handler(case):
    want = _row_run(_PythonRowScheme, case)
    assert _row_run(BitfinexScheme, case) == want


def test_p0_row_compiled_is_the_route():
    calls = []

    class Counted(BitfinexScheme):
        def _on_p0_row(self, *args):
            calls.append(args[2])
            super()._on_p0_row(*args)

    h = Harness(Counted, {}, None, ())
    _subscribed_books(h)
    assert [t for t, _r in h.feed("[1,[102,1,2],2]")] == ["lob", "spread"]  # the common case: in C
    assert calls == [] and h.scheme._state(h.conn).seq == 2
    out = h.feed("[1,[102,1,0],3]")  # a zero amount: the handler's (malformed: the book resyncs)
    assert [(t, r.status) for t, r in out] == [("status", "resync")] and calls == [b"[1,[102,1,0],3]"]
    assert "tBTCUSD" in h.scheme.unsynced


def _row_run(scheme_cls, frames):
    h = Harness(scheme_cls, {}, None, ())
    _subscribed_books(h)
    out = []
    for f in frames:
        out.extend(h.feed(f))
    book = h.scheme.books["tBTCUSD"]
    return (out, h.reports, h.metrics.gaps, h.metrics.resyncs, sorted(h.scheme.unsynced),
            h.scheme._state(h.conn).seq, book.levels(BID), book.levels(ASK), [json.loads(s) for s in h.conn.sent])


@pytest.mark.parametrize("bad", ["[0,1,5]", "[-0,1,5]", "[-100,1,5]", "[100,0,5]", "[100,-1,5]", "[100,1,0]",
                                 "[100,1,-0.0]", "[100,1,0e3]", "[100,1,1e-9]", "[1e400,1,1]", '["100",1,5]',
                                 '[100,1,"5"]', "[1e-20,1,1]", "[100,1,--1]"])
def test_p0_snapshot_bad_level_reported_whole(bad):
    """A snapshot with one bad level (before it good levels of both sides): nothing applied,
    the first bad level reported as it was sent, the book reloaded."""
    h = bitfinex({})
    _subscribed_books(h)
    h.reports.clear()
    frame = f"[1,[[99,1,1],[101,2,-1],{bad},[102,1,-3]],2]"
    out = h.feed(frame)
    if bad == "[100,1,--1]":  # not JSON
        assert [k for k, _d, _s in h.reports] == ["bitfinex: malformed JSON"]
        return
    assert [(t, r.status) for t, r in out] == [("status", "resync")]
    assert [k for k, _d, _s in h.reports] == ["bitfinex: malformed book level"]
    price, count, amount = bad[1:-1].split(",")
    assert h.reports[0][1] == f"{price.encode()!r} {int(count)!r} {amount.encode()!r}"
    assert len(h.scheme.books["tBTCUSD"]) == 0 and "tBTCUSD" in h.scheme.unsynced  # dropped, reloading


@pytest.mark.parametrize("levels,order", [
    ("[[99,1,1],[100,2,3],[101,1,-1],[102,4,-0.5]]", [(99, "buy"), (100, "buy"), (101, "sell"), (102, "sell")]),
    ("[[101,1,-1],[102,4,-0.5],[99,1,1]]", [(101, "sell"), (102, "sell"), (99, "buy")]),  # asks first
    ("[[99,1,1],[101,1,-1],[98,1,2],[102,4,-0.5]]", [(99, "buy"), (101, "sell"), (98, "buy"), (102, "sell")]),
    ("[[101,1,-1]]", [(101, "sell")]),
    ("[[99,1,1]]", [(99, "buy")]),
    ("[]", []),
])
def test_p0_snapshot_levels_in_any_order(levels, order):
    """Bitfinex sends bids then asks; any order is taken all the same, the rows in the sent order."""
    h = bitfinex({})
    _subscribed_books(h)
    out = h.feed(f"[1,{levels},2]")
    assert out[0][0] == "status" and out[0][1].status == "snapshot"
    assert [(r.price, r.side) for t, r in out if t == "lob"] == order
    book = h.scheme.books["tBTCUSD"]
    assert sorted(float(p) for p, _s in book.levels(BID)) == sorted(p for p, s in order if s == "buy")
    assert sorted(float(p) for p, _s in book.levels(ASK)) == sorted(p for p, s in order if s == "sell")
    assert h.reports == [] and "tBTCUSD" not in h.scheme.unsynced
