"""KuCoin futures (``kucoin-futures``) on the venue's documented messages.

No recording of KuCoin futures exists here; ``tests/data/kucoin/KUCOIN_FUTURES.*`` (see its
README) is a capture-format file of the docs' examples: the level-2 worked example of
https://www.kucoin.com/docs-new/3470082w0 (REST snapshot ``sequence`` 16, updates 17
``3988.50,buy,44`` and 18 ``3988.61,sell,0``), the execution (3470084w0), tickerV2 (3470080w0),
klines (3470086w0) and instrument (3470087w0) push examples, and the contract listing example
(``GET /api/v1/contracts/active``, XBTUSDTM). The fault tests continue the worked example with
updates in the documented format over the example's own prices and sizes.
"""
from __future__ import annotations

import json
import socket
from decimal import Decimal

import pytest

from atomfast.book import ASK, BID
from atomfast.capture import RecordWriter
from atomfast.exchanges.kucoin import KucoinFuturesScheme
from atomfast.exchanges.kucoin.handler import OPEN_INTEREST
from atomfast.exchanges.kucoin.parse import guess_contract, parse_contracts
from atomfast.scheme import ConnectionPlan
from atomfast.testing import (Harness, RefBook, SimProcess, check_events, cli_summary, fixture_path, replay_fixture,
                              run_cli)

CAPTURE = "repo:tests/data/kucoin/KUCOIN_FUTURES.ws.1.0"
SNAP = "https://api-futures.kucoin.com/api/v1/level2/snapshot?symbol=XBTUSDTM"
OI = "https://api-futures.kucoin.com/api/v1/contracts/XBTUSDTM"
T0 = 1_731_898_600_000_000_000


def listing_body() -> bytes:
    path = fixture_path("repo:tests/data/kucoin/KUCOIN_FUTURES.0")
    return path.read_text().splitlines()[0].split(": ", 1)[1].encode()


def xbt_row() -> dict:
    """The docs' XBTUSDTM row of ``GET /api/v1/contracts/active``."""
    return json.loads(listing_body())["data"][0]


def instruments() -> dict:
    return parse_contracts(listing_body())


#: the docs' worked example (3470082w0): the REST snapshot of sequence 16
DOC_SNAPSHOT = {"sequence": 16, "asks": [["3988.59", 3], ["3988.60", 47], ["3988.61", 32], ["3988.62", 8]],
                "bids": [["3988.51", 56], ["3988.50", 15], ["3988.49", 100], ["3988.48", 10]]}


def l2(seq: int, change: str, ts: int = 1731897467182) -> dict:
    """A ``/contractMarket/level2`` push in the documented shape (3470082w0)."""
    return {"topic": "/contractMarket/level2:XBTUSDTM", "type": "message", "subject": "level2", "sn": seq,
            "data": {"sequence": seq, "change": change, "timestamp": ts}}


#: the worked example's two updates, then the documented format over the example's prices/sizes
STREAM = [(17, "3988.50,buy,44"), (18, "3988.61,sell,0"), (19, "3988.59,sell,0"), (20, "3988.61,sell,32"),
          (21, "3988.48,buy,0"), (22, "3988.51,buy,3"), (23, "3988.62,sell,47"), (24, "3988.49,buy,15")]


class Reference:
    """An independent model of the book: the snapshot, then each change by its sequence."""

    def __init__(self, snap: dict) -> None:
        self.book = RefBook("buy", "sell")
        self.book.load("buy", [(p, str(s)) for p, s in snap["bids"]])
        self.book.load("sell", [(p, str(s)) for p, s in snap["asks"]])
        self.last = snap["sequence"]

    def update(self, seq: int, change: str) -> None:
        price, side, size = change.split(",")
        if seq == self.last + 1:
            self.book.set(side, price, size)
            self.last = seq

    def snapshot(self) -> dict:
        return {"code": "200000", "data": {"sequence": self.last,
                                           "bids": [[p, int(s)] for p, s in self.book.ordered("buy")],
                                           "asks": [[p, int(s)] for p, s in self.book.ordered("sell")]}}


def same(h: Harness, ref: Reference) -> bool:
    book = h.scheme.books["XBTUSDTM"]
    return ([(Decimal(p), Decimal(s)) for p, s in book.levels(BID)] == ref.book.levels("buy")
            and [(Decimal(p), Decimal(s)) for p, s in book.levels(ASK)] == ref.book.levels("sell"))


def synced(n: int):
    """The book live on the documented snapshot and the first ``n`` updates of STREAM."""
    h = Harness(KucoinFuturesScheme, instruments(), ["lob"])
    ref = Reference(DOC_SNAPSHOT)
    h.feed(l2(*STREAM[0]), T0)
    assert h.conn.fetches == [SNAP]
    h.rest(SNAP, {"code": "200000", "data": DOC_SNAPSHOT}, T0 + 1)
    ref.update(*STREAM[0])
    for i, (seq, change) in enumerate(STREAM[1:n]):
        h.feed(l2(seq, change), T0 + 2 + i)
        ref.update(seq, change)
    assert same(h, ref) and h.scheme.sync.markets["XBTUSDTM"].last == STREAM[n - 1][0]
    return h, ref


# --- instruments, symbols, subscriptions --------------------------------------------------------------
def test_listing_symbols_and_guesses():
    """XBTUSDTM (the docs' row) is BTC-USDT-PERP; the inverse XBTUSDM and the dated XBTMH26 (rows
    made from it: type, quote and expireDate 2026-03-27 08:00 UTC changed) are BTC-USD-PERP and
    BTC-USD-20260327."""
    row = xbt_row()
    inverse = dict(row, symbol="XBTUSDM", quoteCurrency="USD", settleCurrency="XBT", isInverse=True)
    dated = dict(row, symbol="XBTMH26", type="FFICSX", quoteCurrency="USD", settleCurrency="XBT", isInverse=True,
                 expireDate=1774598400000)
    got = parse_contracts(json.dumps({"code": "200000", "data": [row, inverse, dated]}).encode())
    assert {n: (i.symbol, i.kind, i.base, i.quote, i.expiry) for n, i in got.items()} == {
        "XBTUSDTM": ("BTC-USDT-PERP", "perp", "BTC", "USDT", ""),
        "XBTUSDM": ("BTC-USD-PERP", "perp", "BTC", "USD", ""),
        "XBTMH26": ("BTC-USD-20260327", "future", "BTC", "USD", "20260327")}
    assert guess_contract("ETHUSDTM").symbol == "ETH-USDT-PERP"
    assert guess_contract("XBTUSDM").symbol == "BTC-USD-PERP"
    for bad in ("XBTMH26", "xbtusdtm", "USDTM", "BTC-USDT"):
        with pytest.raises(KeyError):
            guess_contract(bad)


def test_subscriptions_token_and_open_interest_poll(monkeypatch):
    plan = ConnectionPlan(KucoinFuturesScheme.ws_url, [(c, ["XBTUSDTM"]) for c in dict.fromkeys(
        KucoinFuturesScheme.channels.values())])
    h = Harness(KucoinFuturesScheme, instruments(), plan=plan)
    h.open()
    assert [m["topic"] for m in h.sent()] == [
        "/contractMarket/level2:XBTUSDTM", "/contractMarket/execution:XBTUSDTM", "/contractMarket/tickerV2:XBTUSDTM",
        "/contractMarket/limitCandle:XBTUSDTM_1min", "/contract/instrument:XBTUSDTM"]
    assert all(m["type"] == "subscribe" and m["response"] is True for m in h.sent())
    assert h.conn.fetches == [OI]  # open interest: a poll on connect, nothing subscribed
    h.timer()
    assert h.conn.fetches == [OI]  # not before open_interest_interval
    h.scheme._oi_next = 0.0
    h.timer()
    assert h.conn.fetches == [OI, OI]
    # the token: POST https://api-futures.kucoin.com/api/v1/bullet-public before each connect
    assert KucoinFuturesScheme.rest_url + KucoinFuturesScheme.token_path == (
        "https://api-futures.kucoin.com/api/v1/bullet-public")


def test_open_interest_answer():
    """``GET /api/v1/contracts/XBTUSDTM``: the docs' row, ``openInterest`` "5191275" (lots)."""
    h = Harness(KucoinFuturesScheme, instruments(), strict=False)
    out = h.rest(OI, {"code": "200000", "data": xbt_row()}, T0)
    assert [(t, r.symbol, r.open_interest, r.event_timestamp) for t, r in out] == [
        ("open_interest", "BTC-USDT-PERP", 5191275.0, T0 // 1_000_000)]
    for bad in ({"code": "200000", "data": dict(xbt_row(), openInterest="-5")},
                {"code": "200000", "data": dict(xbt_row(), openInterest="1e400")},
                {"code": "400100", "msg": "x"}, b"not json"):
        assert h.rest(OI, bad, T0) == []
    assert [k for k, _d, _s in h.reports] == ["kucoin-futures: malformed openInterest"] * 4


# --- the documented capture -------------------------------------------------------------------------
def test_replay_of_the_documented_capture_exactly():
    replay, sink = replay_fixture(CAPTURE, exchange="kucoin-futures")
    m = replay.metrics
    assert (m.frames, m.gaps, m.resyncs, m.errors.total) == (14, 0, 0, 0)
    check_events(sink.records)
    ref = Reference(DOC_SNAPSHOT)
    ref.update(17, "3988.50,buy,44")
    ref.update(18, "3988.61,sell,0")
    book = replay.scheme.books["XBTUSDTM"]
    # the docs' final table
    assert book.levels(ASK) == [("3988.59", "3"), ("3988.60", "47"), ("3988.62", "8")]
    assert book.levels(BID) == [("3988.51", "56"), ("3988.50", "44"), ("3988.49", "100"), ("3988.48", "10")]
    assert [(Decimal(p), Decimal(s)) for p, s in book.levels(BID)] == ref.book.levels("buy")
    lob = [(r.price, r.size, r.side) for r in sink.events("lob")]
    assert lob[8:] == [(3988.50, 44.0, "buy"), (3988.61, 0.0, "sell")]
    assert sorted(lob[:8]) == sorted([(3988.59, 3.0, "sell"), (3988.60, 47.0, "sell"), (3988.61, 32.0, "sell"),
                                      (3988.62, 8.0, "sell"), (3988.51, 56.0, "buy"), (3988.50, 15.0, "buy"),
                                      (3988.49, 100.0, "buy"), (3988.48, 10.0, "buy")])
    assert [(r.bid_price, r.bid_size, r.ask_price, r.ask_size) for r in sink.events("spread")] == [
        (3988.51, 56.0, 3988.59, 3.0)]
    assert [(r.status, r.symbol) for r in sink.events("status")] == [
        ("connected", ""), ("snapshot", "BTC-USDT-PERP")]
    (t,) = sink.events("trades")
    assert (t.symbol, t.price, t.size, t.taker_side, t.trade_id, t.event_timestamp) == (
        "BTC-USDT-PERP", 90503.9, 2.0, "buy", "1794100537695", 1731898619520)
    (t3,) = sink.events("trades_l3")
    assert (t3.maker_order_id, t3.taker_order_id) == ("247822167163555840", "247822202957807616")
    (tk,) = sink.events("ticker")
    assert (tk.bid_price, tk.bid_size, tk.ask_price, tk.ask_size, tk.event_timestamp) == (
        86454.5, 5044.0, 86454.6, 73.0, 1740641976241)
    (c,) = sink.events("candle")
    assert (c.start, c.end, c.interval, c.o, c.h, c.l, c.c, c.v, c.event_timestamp) == (
        1731898200000, 1731898260000, "1m", 90638.6, 90638.6, 90638.6, 90638.6, 21.0, 1731898208357)
    (f,) = sink.events("funding_rate")
    assert (f.symbol, f.mark_price, f.funding_rate, f.predicted_rate, f.event_timestamp) == (
        "BTC-USDT-PERP", 90445.02, -0.002966, -0.002966, 1551770400000)


def test_a_snapshot_older_than_the_stream_is_asked_again():
    """Buffered 17 and 18, a snapshot of 15: the next buffered number above it is not 16, so it
    is not used; the snapshot of 16 then is."""
    h = Harness(KucoinFuturesScheme, instruments(), ["lob"])
    h.feed(l2(17, "3988.50,buy,44"), T0)
    h.feed(l2(18, "3988.61,sell,0"), T0 + 1)
    assert h.rest(SNAP, {"code": "200000", "data": dict(DOC_SNAPSHOT, sequence=15)}, T0 + 2) == []
    assert h.conn.fetches == [SNAP, SNAP] and "XBTUSDTM" not in h.scheme.books
    out = h.rest(SNAP, {"code": "200000", "data": DOC_SNAPSHOT}, T0 + 3)
    assert sum(1 for t, _r in out if t == "lob") == 10 and h.scheme.sync.markets["XBTUSDTM"].last == 18


# --- faults -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["drop", "reorder"])
def test_a_lost_or_reordered_update_is_a_gap_and_the_book_is_rebuilt(fault):
    h, ref = synced(4)  # live at 20
    (s21, c21), (s22, c22) = STREAM[4], STREAM[5]
    h.conn.fetches.clear()
    produced = h.feed(l2(s22, c22), T0 + 100)  # (drop: 21 never comes; reorder: it comes after)
    assert h.metrics.gaps == 1 and h.metrics.resyncs == 1
    assert [(r.symbol, r.status, r.reason) for t, r in produced if t == "status"] == [
        ("BTC-USDT-PERP", "resync", "gap: sequence 22 != previous 20 + 1")]
    assert not [t for t, _r in produced if t in ("lob", "spread")]  # nothing of the bad update published
    assert h.scheme.books["XBTUSDTM"].count(BID) == 0 and h.conn.fetches == [SNAP]
    if fault == "reorder":
        assert h.feed(l2(s21, c21), T0 + 101) == []  # the late one: buffered, covered by the snapshot
    ref.update(s21, c21)
    ref.update(s22, c22)
    h.rest(SNAP, ref.snapshot(), T0 + 102)
    assert same(h, ref) and "XBTUSDTM" not in h.scheme.unsynced
    for i, (seq, change) in enumerate(STREAM[6:]):
        h.feed(l2(seq, change), T0 + 103 + i)
        ref.update(seq, change)
    assert same(h, ref) and h.metrics.gaps == 1 and h.metrics.errors.total == 0
    assert h.scheme.sync.markets["XBTUSDTM"].last == 24


def test_a_duplicated_update_is_stale_and_changes_nothing():
    """A repeat's ``sequence`` is already in the book: the documented rule discards it (no gap)."""
    h, ref = synced(4)
    assert h.feed(l2(*STREAM[3]), T0 + 100) == []
    assert same(h, ref) and h.metrics.gaps == 0 and h.metrics.resyncs == 0
    h.feed(l2(*STREAM[4]), T0 + 101)
    ref.update(*STREAM[4])
    assert same(h, ref) and h.metrics.gaps == 0


@pytest.mark.parametrize("change", ["3988.50,up,44", "3988.50,buy", "x,buy,1", "3988.50,buy,-1", "0,buy,1",
                                    "3988.5000000000001,buy,1"])
def test_a_malformed_update_resyncs_the_book(change):
    h, ref = synced(3)
    out = h.feed(l2(20, change), T0 + 100)
    assert [k for k, _d, _s in h.reports] == ["kucoin-futures: malformed level2"]
    assert [(r.status, r.reason.split(":")[0]) for t, r in out if t == "status"] == [("resync", "malformed level2")]
    assert h.metrics.resyncs == 1 and h.conn.fetches[-1] == SNAP and not [t for t, _r in out if t == "lob"]


def test_a_trade_naming_no_orders_is_no_level3_trade():
    h = Harness(KucoinFuturesScheme, instruments(), ["trades", "trades_l3"])
    msg = {"topic": "/contractMarket/execution:XBTUSDTM", "type": "message", "subject": "match",
           "data": {"symbol": "XBTUSDTM", "sequence": 1743169228057, "side": "buy", "size": 5, "price": "72137.3",
                    "tradeId": "1743169228057", "ts": 1712570590399000000}}
    assert [(t, r.price, r.size, r.trade_id) for t, r in h.feed(msg)] == [
        ("trades", 72137.3, 5.0, "1743169228057")]


def test_session_messages_and_bad_input():
    h = Harness(KucoinFuturesScheme, instruments(), strict=False)
    assert h.feed({"id": "hQvf8jkno", "type": "welcome"}) == [] and h.feed({"id": "1", "type": "pong"}) == []
    h.feed({"topic": "/contractMarket/tickerV2:NOPE", "type": "message", "subject": "tickerV2",
            "data": {"symbol": "NOPE", "bestBidSize": 1, "bestBidPrice": "1", "bestAskPrice": "2", "bestAskSize": 1,
                     "ts": 1}})
    h.feed({"topic": "/contract/instrument:XBTUSDTM", "subject": "funding.rate",
            "data": {"granularity": 60000, "fundingRate": 7.5, "timestamp": 1551770400000}})
    h.feed({"topic": "/contractMarket/limitCandle:XBTUSDTM_5min", "type": "message", "subject": "candle.stick",
            "data": {"symbol": "XBTUSDTM", "candles": ["1", "1", "1", "1", "1", "1", "1"], "time": 1}})
    h.feed(b"[1,2]")
    assert [k for k, _d, _s in h.reports] == [
        "kucoin-futures: unknown market", "kucoin-futures: malformed funding.rate",
        "kucoin-futures: unknown candle interval", "kucoin-futures: not a JSON object"]
    assert h.records == []


# --- simulate + run, the token from the simulator -------------------------------------------------------
def test_simulate_and_run_without_endpoint_take_the_token_and_publish_the_capture(tmp_path):
    """``atomfast simulate`` (the capture + a bullet-public answer naming its websocket) and
    ``atomfast run --exchange kucoin-futures --rest-endpoint SIM`` with no ``--endpoint``: the
    run obtains its token, connects, and publishes what the replay does."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "2neAiuYvAU61ZDXANAGAsiL4-iAExhsBXZxftpOeh_55i3Ysy2q2LEsEWU64mdzUOPusi34M_wGoSf7iNyEWJ_cpz4VOPFmQFib6P8hY"
    bullet = tmp_path / "BULLET.rec"
    w = RecordWriter(bullet, "kucoin-futures")
    w.rest(1_000, "https://api-futures.kucoin.com/api/v1/bullet-public", json.dumps({"code": "200000", "data": {
        "token": token, "instanceServers": [{"endpoint": f"ws://127.0.0.1:{port}/", "encrypt": False,
                                             "protocol": "websocket", "pingInterval": 18000,
                                             "pingTimeout": 10000}]}}).encode())
    w.close()
    with SimProcess(fixture_path(CAPTURE), bullet, "--port", port, "--rest-port", 0, "--rate", 30) as sim:
        r = run_cli("run", "--exchange", "kucoin-futures", "--rest-endpoint", sim.rest_url, "--sink", "null",
                    "--symbols", "BTC-USDT-PERP", "--channels", "candle,funding_rate,lob,ticker,trades,trades_l3",
                    "--max-frames", 14, "--backoff", "0.01", timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    s = cli_summary(r.stderr)
    assert s["frames"] == 14
    assert {t: n for t, n in s["events"].items() if t != "status"} == {
        "candle": 1, "funding_rate": 1, "lob": 10, "spread": 1, "ticker": 1, "trades": 1, "trades_l3": 1}
    assert (s["gaps"], s["resyncs"], s["errors"]) == (0, 0, 0)
    assert token not in r.stdout and token not in r.stderr
