"""Bitget v2 public websocket schemes: ``bitget`` (spot) and ``bitget-futures`` (USDT-M futures).

No recording of Bitget exists here (cryptofeed's sample data has none). Data, and where each
message comes from (``tests/data/bitget/README.md`` says it frame by frame):

- ``tests/data/bitget/BITGET.ws.1.0`` + ``BITGET.0`` and ``BITGET_FUTURES.ws.1.0`` +
  ``BITGET_FUTURES.0``: Bitget's documentation examples (depth snapshot, trade, ticker, candle
  pushes, a subscribe answer, the REST listings) and 3 book updates per market DERIVED from the
  documented snapshot's own levels (best ask out, best bid out, both back), numbered ``seq`` + 1
  and carrying the checksum of the documented algorithm; ``Reference`` recomputes every checksum
  independently (RefBook + zlib).
- The checksum algorithm: the docs' two worked examples (``"43231.1:4:43232.8:9:43231:6:43232.9:8"``,
  ``"3366.1:7:3366.8:9:3368:8:3372:8"``) and their rule 3 ("0.5000" is not "0.5"). No public real
  Bitget book message whose checksum matches its book was found: ccxt's ``pro/bitget`` comment
  example (``books5``, checksum -1367582038) is not its own CRC32 (-1422319675): shown below.
- Real 2022 v1 messages (crypto-crawler/crypto-msg-parser ``tests/bitget.rs``): ``instType``
  ``sp``/``mc`` and array trades, a retired protocol: refused, counted.
"""
from __future__ import annotations

import json
import zlib

import pytest

from atomfast.book import ASK, BID
from atomfast.events import BUY, SELL, Candle, FundingRate, Lob, OpenInterest, Status, Ticker, Trade
from atomfast.exchanges import schemes
from atomfast.exchanges.bitget import BitgetFuturesScheme, BitgetScheme
from atomfast.exchanges.bitget.parse import guess_perp, guess_spot, parse_contracts, parse_spot, seq_of, split_native
from atomfast.scheme import Instrument
from atomfast.testing import (ROOT, T0, Harness, RefBook, SimProcess, capture_instruments, check_events, cli_summary,
                              recv_frames, replay_fixture, run_cli, signed32)

DATA = ROOT / "tests" / "data" / "bitget"
SPOT = DATA / "BITGET.ws.1.0"
FUTURES = DATA / "BITGET_FUTURES.ws.1.0"
URL = "wss://ws.bitget.com/v2/ws/public"
T = T0


class Reference:
    """An independent model of one ``books`` stream: a RefBook, the lob rows (one per level a
    message names, the removal of an absent level none), spreads, and the checksums verified."""

    def __init__(self) -> None:
        self.book = RefBook()
        self.lob = self.spread = self.checksum_ok = 0

    def feed(self, msg: dict) -> None:
        d = msg["data"][0]
        if msg["action"] == "snapshot":
            self.book = RefBook()
            before = (None, None, None, None)
        else:
            before = self.book.top()
        for side, key in (("b", "bids"), ("a", "asks")):
            self.lob += sum(self.book.set(side, p, s) for p, s in d[key])
        self.spread += self.book.top() != before
        if msg["action"] == "update" or d["checksum"]:
            assert self.book.okx_checksum() == d["checksum"]
            self.checksum_ok += 1


def compact(msg: dict) -> str:
    return json.dumps(msg, separators=(",", ":"))


def book_messages(path=SPOT) -> list[dict]:
    return [json.loads(d) for _, d in recv_frames(path) if b'"channel":"books"' in d]


def spot() -> Harness:
    return Harness(BitgetScheme, capture_instruments(SPOT, BitgetScheme))


def futures() -> Harness:
    return Harness(BitgetFuturesScheme, capture_instruments(FUTURES, BitgetFuturesScheme))


# --- registry, endpoints, symbols, subscriptions ---------------------------------------------

def test_registry_endpoints_and_limits():
    assert schemes()["bitget"] == [BitgetScheme] and schemes()["bitget-futures"] == [BitgetFuturesScheme]
    assert BitgetScheme.ws_url == BitgetFuturesScheme.ws_url == URL
    assert BitgetScheme.rest_url == "https://api.bitget.com"
    assert BitgetScheme.instruments_paths == ("/api/v2/spot/public/symbols",)
    assert BitgetFuturesScheme.instruments_paths == ("/api/v2/mix/market/contracts?productType=USDT-FUTURES",)
    assert BitgetScheme(lambda t, r: None).ping_message() == "ping" and BitgetScheme.ping_interval == 30.0
    assert BitgetFuturesScheme.channels == {"lob": "books", "trades": "trade", "ticker": "ticker",
                                            "candle": "candle1m", "funding_rate": "ticker",
                                            "open_interest": "ticker"}
    assert "funding_rate" not in BitgetScheme.channels


def test_instruments_from_the_documented_listings():
    assert capture_instruments(SPOT, BitgetScheme) == {
        "BTCUSDT": Instrument("BTCUSDT", "BTC-USDT", "spot", "BTC", "USDT", 4, 8)}
    assert capture_instruments(FUTURES, BitgetFuturesScheme) == {
        "BTCUSDT": Instrument("BTCUSDT", "BTC-USDT-PERP", "perp", "BTC", "USDT", 3, 4)}
    # a delivery contract of the same listing shape (symbolType "delivery", deliveryTime in ms)
    body = (b'{"code":"00000","data":[{"symbol":"BTCUSDT0627","baseCoin":"BTC","quoteCoin":"USDT",'
            b'"pricePlace":"1","volumePlace":"3","symbolType":"delivery","deliveryTime":"1782547200000"}]}')
    assert parse_contracts(body) == {"BTCUSDT0627": Instrument("BTCUSDT0627", "BTC-USDT-20260627", "future", "BTC",
                                                               "USDT", 3, 5, "20260627")}
    assert parse_spot(b'{"code":"40034","msg":"Parameter does not exist","data":[]}') == {}
    assert parse_contracts(b'{"code":"40034","data":[]}') == {}
    assert guess_spot("ETHBTC").symbol == "ETH-BTC" and guess_perp("SOLUSDT").symbol == "SOL-USDT-PERP"
    assert split_native("PEPEUSDC") == ("PEPE", "USDC")
    for bad in ("btcusdt", "USDT", "BTC-USDT", "BTCXYZ", ""):
        with pytest.raises(KeyError):
            split_native(bad)
    assert (seq_of(None), seq_of(7), seq_of("1343064377779269632")) == (None, 7, 1343064377779269632)
    for bad in ("-1", "1e3", 2**63, True, 1.5, "99999999999999999999"):
        with pytest.raises(ValueError):
            seq_of(bad)


def test_subscriptions_one_request_per_connection_and_resubscribe():
    h = Harness(BitgetFuturesScheme, capture_instruments(FUTURES, BitgetFuturesScheme), symbols=["BTC-USDT-PERP"])
    plans = h.scheme.plan()
    assert [p.subscriptions for p in plans] == [[("books", ["BTCUSDT"]), ("trade", ["BTCUSDT"]),
                                                 ("ticker", ["BTCUSDT"]), ("candle1m", ["BTCUSDT"])]]
    h.conn.plan = plans[0]
    h.open()
    args = [{"instType": "USDT-FUTURES", "channel": c, "instId": "BTCUSDT"} for c in ("books", "trade", "ticker",
                                                                                     "candle1m")]
    assert h.sent() == [{"op": "subscribe", "args": args}]
    # the recorded subscription is what the spot scheme sends
    sent = [ln for ln in SPOT.read_text().splitlines() if " <- " in ln][0].split(": ", 1)[1]
    s = Harness(BitgetScheme, capture_instruments(SPOT, BitgetScheme), symbols=["BTC-USDT"])
    s.conn.plan = s.scheme.plan()[0]
    s.open()
    assert s.sent() == [json.loads(sent)]
    # 120 markets: 3 connections of at most 50 (channel, market) pairs
    many = Harness(BitgetScheme, {f"C{i}USDT": guess_spot(f"C{i}USDT") for i in range(120)},
                   symbols=[f"C{i}-USDT" for i in range(120)], channels=["lob"])
    assert [sum(len(n) for _, n in p.subscriptions) for p in many.scheme.plan()] == [50, 50, 20]


# --- the checksum ------------------------------------------------------------------------------

@pytest.mark.parametrize("bids,asks,documented", [
    ([["43231.1", "4"], ["43231", "6"]], [["43232.8", "9"], ["43232.9", "8"]],
     "43231.1:4:43232.8:9:43231:6:43232.9:8"),
    ([["3366.1", "7"]], [["3366.8", "9"], ["3368", "8"], ["3372", "8"]], "3366.1:7:3366.8:9:3368:8:3372:8"),
])
def test_checksum_is_the_documented_string(bids, asks, documented):
    """The docs' worked examples: the compiled book's checksum (``checksum_okx``) is the CRC32
    of exactly the documented string; the scheme verifies it on a snapshot that carries it."""
    expected = signed32(zlib.crc32(documented.encode()))
    h = spot()
    h.feed({"action": "snapshot", "arg": {"instType": "SPOT", "channel": "books", "instId": "BTCUSDT"},
            "data": [{"asks": asks, "bids": bids, "checksum": expected, "seq": 1, "ts": "1695710946294"}]})
    assert h.scheme.books["BTCUSDT"].checksum_okx() == expected and h.metrics.checksum_ok == 1


def test_checksum_keeps_the_digits_as_sent():
    """Rule 3 of the docs: "0.5000" is not "0.5"."""
    h = spot()
    h.feed({"action": "snapshot", "arg": {"instType": "SPOT", "channel": "books", "instId": "BTCUSDT"},
            "data": [{"asks": [["0.5100", "9.00"]], "bids": [["0.5000", "7"]], "checksum": 0, "seq": 1, "ts": "1"}]})
    book = h.scheme.books["BTCUSDT"]
    assert book.checksum_okx() == signed32(zlib.crc32(b"0.5000:7:0.5100:9.00")) != signed32(zlib.crc32(b"0.5:7:0.51:9"))


def test_ccxt_example_is_not_its_own_checksum():
    """ccxt ``pro/bitget`` handleOrderBook's comment: a books5 snapshot (2022-06-28) with checksum
    -1367582038; the CRC32 of its 5x5 levels is -1422319675, so a book carrying it resyncs."""
    msg = {"action": "snapshot", "arg": {"instType": "SPOT", "channel": "books", "instId": "BTCUSDT"},
           "data": [{"asks": [["21041.11", "0.0445"], ["21041.16", "0.0411"], ["21041.21", "0.0421"],
                              ["21041.26", "0.0811"], ["21041.65", "1.9465"]],
                     "bids": [["21040.76", "0.0417"], ["21040.71", "0.0434"], ["21040.66", "0.1141"],
                              ["21040.61", "0.3004"], ["21040.60", "1.3357"]],
                     "checksum": -1367582038, "ts": "1656413855484"}]}
    ref = RefBook()
    for side, key in (("b", "bids"), ("a", "asks")):
        ref.load(side, msg["data"][0][key])
    assert ref.okx_checksum() == -1422319675
    h = spot()
    out = h.feed(msg)
    assert h.metrics.checksum_failed == 1 and h.metrics.resyncs == 1
    assert [r.reason for t, r in out if t == "status"][-1] == "checksum mismatch: exchange -1367582038, book -1422319675"
    assert h.events("lob") == [] and h.events("spread") == []  # a book found corrupt publishes nothing


# --- the documented captures -----------------------------------------------------------------

def test_spot_capture_exact():
    ref = Reference()
    for msg in book_messages(SPOT):
        ref.feed(msg)
    replay, sink = replay_fixture(SPOT, exchange="bitget")
    m = replay.metrics
    assert (m.checksum_ok, m.checksum_failed, m.gaps, m.resyncs, m.errors.total) == (ref.checksum_ok, 0, 0, 0, 0) == (
        3, 0, 0, 0, 0)
    assert sink.counts() == {"lob": ref.lob, "spread": ref.spread, "status": 3, "trades": 1, "ticker": 1, "candle": 1}
    assert (ref.lob, ref.spread) == (8, 4)
    check_events(sink.records)
    lob = sink.events("lob")
    assert lob[4:6] == [Lob("bitget", "BTC-USDT", 26274.9, 0.0, "sell", 1695710946294, lob[4].atom_timestamp),
                        Lob("bitget", "BTC-USDT", 26274.8, 0.0, "buy", 1695710946294, lob[5].atom_timestamp)]
    trade = sink.events("trades")[0]
    assert trade[:7] == Trade("bitget", "BTC-USDT", 26293.4, 0.0013, BUY, "1000000000", 1695709835822, 0)[:7]
    ticker = sink.events("ticker")[0]
    assert ticker[:7] == Ticker("bitget", "ETH-USDT", 1792.0, 0.0084, 2200.1, 19740.8811, 1695702438018, 0)[:7]
    candle = sink.events("candle")[0]
    assert candle[:13] == Candle("bitget", "ETH-USDT", 1695672780000, 1695672840000, "1m", 0, False, 2200.1, 2200.1,
                                 2200.1, 2200.1, 0.0, 1695702747821, 0)[:13]
    assert [(s.status, s.reason) for s in sink.events("status")] == [
        ("connected", URL), ("snapshot", ""), ("subscribed", "trade")]
    book = replay.scheme.books["BTCUSDT"]
    assert ref.book.equals(book) and book.best() == (26274.8, 0.0009, 26274.9, 0.0009)


def test_futures_capture_exact():
    ref = Reference()
    for msg in book_messages(FUTURES):
        ref.feed(msg)
    replay, sink = replay_fixture(FUTURES, exchange="bitget-futures")
    m = replay.metrics
    assert (m.checksum_ok, m.checksum_failed, m.gaps, m.resyncs, m.errors.total) == (3, 0, 0, 0, 0)
    assert sink.counts() == {"lob": 8, "spread": 4, "status": 3, "trades": 2, "ticker": 1, "candle": 1,
                             "funding_rate": 1, "open_interest": 1}
    assert [t[:7] for t in sink.events("trades")] == [  # the snapshot's trades, oldest first
        ("bitget-futures", "BTC-USDT-PERP", 27000.0, 0.001, SELL, "1111111111", 1695716759514),
        ("bitget-futures", "BTC-USDT-PERP", 27000.5, 0.001, BUY, "1111111111", 1695716760565)]
    assert sink.events("ticker")[0][:7] == ("bitget-futures", "BTC-USDT-PERP", 27000.0, 2.71, 27000.5, 8.76,
                                            1695715383021)
    assert sink.events("funding_rate")[0][:7] == FundingRate("bitget-futures", "BTC-USDT-PERP", 27000.0, 0.00001,
                                                            1695722400000, 0.0, 1695715383021, 0)[:7]
    assert sink.events("open_interest")[0][:4] == OpenInterest("bitget-futures", "BTC-USDT-PERP", 929.502,
                                                               1695715383021, 0)[:4]
    assert sink.events("candle")[0][7:12] == (27000.0, 27000.5, 27000.0, 27000.5, 0.057)
    assert ref.book.equals(replay.scheme.books["BTCUSDT"])
    check_events(sink.records)


def test_funding_and_open_interest_only_when_asked():
    h = Harness(BitgetFuturesScheme, capture_instruments(FUTURES, BitgetFuturesScheme), channels=["ticker"])
    ticker = [d for _, d in recv_frames(FUTURES) if b'"channel":"ticker"' in d][0]
    h.feed(ticker)
    assert h.sink.counts() == {"ticker": 1}
    h = Harness(BitgetFuturesScheme, capture_instruments(FUTURES, BitgetFuturesScheme), channels=["open_interest"])
    h.feed(ticker)
    assert h.sink.counts() == {"open_interest": 1}


# --- the sync rules: faults on the documented stream --------------------------------------------

def _stream(pseq: bool = False) -> list[dict]:
    msgs = book_messages(SPOT)
    if pseq:
        for prev, msg in zip(msgs, msgs[1:]):
            msg["data"][0]["pseq"] = prev["data"][0]["seq"]
    return msgs


#: the checksum of the documented snapshot with the second update only (the first one lost)
_WITHOUT_FIRST = "checksum mismatch: exchange -526763304, book {book}"


@pytest.mark.parametrize("fault,pseq,reason,gaps,failed", [
    ("drop", False, _WITHOUT_FIRST, 0, 1),
    ("duplicate", False, "sequence gap: seq 125 not above previous seq 125", 1, 0),
    ("reorder", False, _WITHOUT_FIRST, 0, 1),
    ("drop", True, "sequence gap: pseq 124 != previous seq 123", 1, 0),
    ("duplicate", True, "sequence gap: pseq 124 != previous seq 125", 1, 0),
    ("reorder", True, "sequence gap: pseq 124 != previous seq 123", 1, 0),
])
def test_fault_detected_resynced_and_rebuilt(fault, pseq, reason, gaps, failed):
    """One documented update dropped, repeated or swapped with the next: detected (the checksum
    where only ``seq`` is given, ``pseq`` where it is), status ``resync`` with the reason, the
    ``books`` subscription renewed, the book rebuilt by the snapshot that answers it and equal
    to an independent reference; what came between is dropped."""
    msgs = _stream(pseq)
    snap, u1, u2, u3 = msgs
    lost = Reference()
    lost.feed(snap)
    lost.book.remove("b", u2["data"][0]["bids"][0][0])  # u2 alone on the snapshot (an independent model)
    assert u2["data"][0]["checksum"] == -526763304
    reason = reason.format(book=lost.book.okx_checksum())
    faulty = {"drop": [snap, u2, u3], "duplicate": [snap, u1, u2, u2, u3], "reorder": [snap, u2, u1, u3]}[fault]
    h = spot()
    for msg in faulty:
        h.feed(msg)
    assert (h.metrics.gaps, h.metrics.checksum_failed, h.metrics.resyncs) == (gaps, failed, 1)
    assert [s.reason for s in h.events("status") if s.status == "resync"] == [reason]
    arg = [{"instType": "SPOT", "channel": "books", "instId": "BTCUSDT"}]
    assert h.sent() == [{"op": "unsubscribe", "args": arg}, {"op": "subscribe", "args": arg}]
    assert "BTCUSDT" in h.scheme.unsynced and h.scheme.books["BTCUSDT"].count(BID) == 0
    # the answer to the resubscription: a snapshot; then the stream goes on from it
    h.feed(snap)
    h.feed(u1)
    ref = Reference()
    ref.feed(snap)
    ref.feed(u1)
    assert not h.scheme.unsynced and ref.book.equals(h.scheme.books["BTCUSDT"])
    assert h.metrics.resyncs == 1 and h.metrics.errors.total == 0


def test_clean_stream_with_pseq_and_text_seq():
    """``pseq`` = previous ``seq`` and ``seq`` as text (as some pushes send it): verified, no gap."""
    msgs = _stream(pseq=True)
    for msg in msgs[1:]:
        d = msg["data"][0]
        d["seq"], d["pseq"] = str(d["seq"]), str(d["pseq"])
    h = spot()
    for msg in msgs:
        h.feed(msg)
    assert (h.metrics.checksum_ok, h.metrics.gaps, h.metrics.resyncs) == (3, 0, 0)


def test_updates_before_the_snapshot_and_after_a_close():
    msgs = book_messages(SPOT)
    h = spot()
    out = h.feed(msgs[1])
    assert [r.reason for t, r in out if t == "status"] == ["book update before its snapshot"]
    h.feed(msgs[2])  # dropped: waiting for the snapshot
    assert h.metrics.resyncs == 1 and h.events("lob") == []
    h.feed(msgs[0])
    h.feed(msgs[1])
    assert h.metrics.checksum_ok == 1


def test_book_messages_that_cannot_be_verified_or_read():
    msgs = book_messages(SPOT)
    for damage, kind in [(lambda d: d.pop("checksum"), "bitget: malformed book update"),
                         (lambda d: d.update(asks=[["x", "1"]]), "bitget: malformed book update"),
                         (lambda d: d.update(seq="1e9"), "bitget: malformed book update"),
                         (lambda d: d.update(ts="soon"), "bitget: malformed book update")]:
        h = spot()
        h.feed(msgs[0])
        bad = json.loads(json.dumps(msgs[1]))
        damage(bad["data"][0])
        h.feed(bad)
        assert dict(h.errors.counts) == {kind: 1} and h.metrics.resyncs == 1, kind
        assert h.scheme.books["BTCUSDT"].count(ASK) == 0
    h = spot()
    h.feed(msgs[0])
    h.feed(compact(msgs[1]).replace('"data":[', '"data":"x","d":['))  # refused by the decoder
    h.feed({**msgs[0], "arg": {"instType": "USDT-FUTURES", "channel": "books", "instId": "BTCUSDT"}})
    h.feed({**msgs[0], "action": "partial"})
    assert dict(h.errors.counts) == {"bitget: malformed book message": 3} and h.metrics.resyncs == 1  # (once)


def test_trade_snapshot_after_a_resubscription_is_not_published_twice():
    trade = [json.loads(d) for _, d in recv_frames(FUTURES) if d.startswith(b'{"action"') and b'"trade"' in d][0]
    h = futures()
    h.feed(trade)
    h.feed(trade)  # the snapshot a new subscription brings: nothing newer
    newer = {**trade, "action": "update", "data": [{**trade["data"][0], "ts": "1695716760566"}]}
    h.feed(newer)
    assert [t.event_timestamp for t in h.events("trades")] == [1695716759514, 1695716760565, 1695716760566]


def test_events_pong_and_bad_input():
    h = spot()
    h.feed("pong")
    h.feed({"event": "subscribe", "arg": {"instType": "SPOT", "channel": "books", "instId": "BTCUSDT"}})
    h.feed({"event": "error", "code": 30001, "msg": "instType:SPOT,channel:books,instId:NOPE doesn't exist",
            "op": "subscribe"})
    h.feed("not json")
    h.feed({"foo": 1})
    h.feed({"event": "login", "code": 0})
    # real 2022 v1 pushes (crypto-msg-parser tests/bitget.rs): a retired protocol, refused
    h.feed('{"action":"update","arg":{"instType":"sp","channel":"trade","instId":"BTCUSDT"},'
           '"data":[["1653873778747","29443.24","0.4134","buy"]]}')
    h.feed('{"action":"snapshot","arg":{"instType":"sp","channel":"books5","instId":"BTCUSDT"},"data":[{"asks":'
           '[["30682.29","0.0119"]],"bids":[["30682.15","0.0122"]],"ts":"1653936946292"}]}')
    h.feed({"action": "snapshot", "arg": {"instType": "SPOT", "channel": "ticker", "instId": "BTCUSDT"},
            "data": [{"instId": "ETHUSDT", "ts": "1", "bidPr": "1"}]})
    h.feed({"action": "snapshot", "arg": {"instType": "SPOT", "channel": "candle1m", "instId": "BTCUSDT"},
            "data": [["1695672780000", "1", "1"]]})
    assert [(s.status, s.reason) for s in h.events("status")] == [
        ("subscribed", "books"), ("stopped", "30001 instType:SPOT,channel:books,instId:NOPE doesn't exist")]
    assert dict(h.errors.counts) == {
        "bitget: subscription error": 1, "bitget: not a JSON object": 1, "bitget: unknown message": 3,
        "bitget: malformed trade": 1, "bitget: malformed ticker": 1, "bitget: malformed candle": 1}
    assert h.metrics.resyncs == 0 and h.events("trades") == []


# --- simulate + run --endpoint ------------------------------------------------------------------

@pytest.mark.parametrize("capture,exchange,symbol", [(SPOT, "bitget", "BTC-USDT"),
                                                     (FUTURES, "bitget-futures", "BTC-USDT-PERP")])
def test_simulate_and_run_publish_what_replay_does(capture, exchange, symbol):
    _replay, sink = replay_fixture(capture, exchange=exchange)
    frames = len(recv_frames(capture))
    scheme = BitgetScheme if exchange == "bitget" else BitgetFuturesScheme
    with SimProcess(capture, "--pace", "fast") as sim:
        r = run_cli("run", "--exchange", exchange, "--endpoint", sim.url, "--rest-endpoint", sim.rest_url,
                    "--symbols", symbol, "--channels", ",".join(scheme.channels), "--sink", "stdout",
                    "--max-frames", frames, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    s = cli_summary(r.stderr)
    assert (s["frames"], s["checksum_ok"], s["gaps"], s["errors"]) == (frames, 3, 0, 0)
    assert {k: v for k, v in s["events"].items() if k != "status"} == {
        k: v for k, v in sink.counts().items() if k != "status"}
    lines = [json.loads(ln) for ln in r.stdout.splitlines() if ln]
    assert [(x["symbol"], x["price"], x["trade_id"]) for x in lines if x["topic"] == "trades"] == [
        (t.symbol, t.price, t.trade_id) for t in sink.events("trades")]
    assert Status  # (statuses differ by the live connection's url: not compared)
