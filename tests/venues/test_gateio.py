"""Gate.io v4 schemes: ``gateio`` (spot) and ``gateio-futures`` (USDT perpetuals).

No recording of Gate.io exists here (cryptofeed's sample data has none). Data, and where each
message comes from (``tests/data/gateio/README.md`` says it frame by frame):

- ``tests/data/gateio/GATEIO.ws.1.0`` + ``GATEIO.0`` and ``GATEIO_FUTURES.ws.1.0`` +
  ``GATEIO_FUTURES.0``: capture-format files of Gate's documentation examples (order book V2
  full and incremental pushes, book tickers, candles, liquidations, answers, pongs) and real
  single messages kept by crypto-crawler/crypto-msg-parser's ``tests/gate.rs`` (trades, futures
  book ticker and tickers, a spot candle), with the REST docs' listing examples.
- The sync rule's fault tests: the documented full book followed by documented change messages
  (the docs' incremental push, the full book's asks put back, the futures docs' bid changes)
  numbered as the docs' rule says (``U`` = previous ``u`` + 1, each spanning the documented 44
  ids), so that a dropped, repeated or reordered message breaks it.
"""
from __future__ import annotations

import json

import pytest

from atomfast.book import ASK, BID
from atomfast.events import BUY, SELL, Candle, FundingRate, Liquidation, Lob, OpenInterest, Spread, Status, Ticker, Trade
from atomfast.exchanges import scheme_for, schemes
from atomfast.exchanges.gateio import GateioFuturesScheme, GateioScheme
from atomfast.exchanges.gateio.parse import guess_perp, guess_spot, ms_of_text, stream_market
from atomfast.scheme import Instrument
from atomfast.testing import (ROOT, T0, Harness, RefBook, SimProcess, capture_instruments, check_events, cli_summary,
                              faulty, recv_frames, replay_fixture, run_cli)

DATA = ROOT / "tests" / "data" / "gateio"
SPOT = DATA / "GATEIO.ws.1.0"
FUTURES = DATA / "GATEIO_FUTURES.ws.1.0"
T = T0  # the harness's receive time (ns)


def spot() -> Harness:
    return Harness(GateioScheme, capture_instruments(SPOT, GateioScheme))


def futures() -> Harness:
    return Harness(GateioFuturesScheme, capture_instruments(FUTURES, GateioFuturesScheme))


def docs_messages(path=SPOT, channel=b"spot.obu") -> list[dict]:
    return [json.loads(d) for _, d in recv_frames(path) if d.startswith(b'{"channel":"' + channel + b'"')]


class Reference:
    """An independent model of one V2 book: levels as sent, the lob rows a change makes (one per
    level it names, a repeated size too; the removal of an absent level makes none) and the
    spreads (a whole book always publishes one)."""

    def __init__(self) -> None:
        self.book = RefBook()
        self.lob = self.spread = 0

    def feed(self, r: dict) -> None:
        before = self.book.top()
        if r.get("full"):
            self.book = RefBook()
        for side in ("b", "a"):
            for p, s in r.get(side, []):
                self.lob += self.book.set(side, p, s)
        self.spread += bool(r.get("full")) or self.book.top() != before


# --- registry, endpoints, symbols --------------------------------------------------------------

def test_registry_endpoints_and_requests():
    assert schemes()["gateio"] == [GateioScheme] and schemes()["gateio-futures"] == [GateioFuturesScheme]
    assert scheme_for("gateio", "wss://api.gateio.ws/ws/v4/") is GateioScheme
    assert GateioScheme.ws_url == "wss://api.gateio.ws/ws/v4/"
    assert GateioFuturesScheme.ws_url == "wss://fx-ws.gateio.ws/v4/ws/usdt"
    assert GateioScheme.rest_url == GateioFuturesScheme.rest_url == "https://api.gateio.ws"
    assert GateioScheme.instruments_paths == ("/api/v4/spot/currency_pairs",)
    assert GateioFuturesScheme.instruments_paths == ("/api/v4/futures/usdt/contracts",)
    assert GateioScheme.channels == {"lob": "spot.obu", "trades": "spot.trades", "ticker": "spot.book_ticker",
                                     "candle": "spot.candlesticks"}
    assert GateioFuturesScheme.channels["funding_rate"] == GateioFuturesScheme.channels["open_interest"] == (
        "futures.tickers")
    assert GateioFuturesScheme.channels["liquidations"] == "futures.public_liquidates"
    ping = json.loads(GateioScheme(lambda t, r: None).ping_message())
    assert set(ping) == {"time", "channel"} and ping["channel"] == "spot.ping" and ping["time"] > 1_700_000_000
    assert json.loads(GateioFuturesScheme(lambda t, r: None).ping_message())["channel"] == "futures.ping"


def test_instruments_from_the_listings():
    assert capture_instruments(SPOT, GateioScheme) == {
        "BTC_USDT": Instrument("BTC_USDT", "BTC-USDT", "spot", "BTC", "USDT", 8, 10),
        "ETH_USDT": Instrument("ETH_USDT", "ETH-USDT", "spot", "ETH", "USDT", 8, 8)}
    assert capture_instruments(FUTURES, GateioFuturesScheme) == {
        "BTC_USDT": Instrument("BTC_USDT", "BTC-USDT-PERP", "perp", "BTC", "USDT", 8, 8)}
    assert guess_spot("1INCH_USDT").symbol == "1INCH-USDT" and guess_perp("BTC_USD").symbol == "BTC-USD-PERP"
    for bad in ("BTCUSDT", "btc_usdt", "BTC_USDT_20220624", "_USDT", "BTC_", "BTC-USDT", "ΒTC_USDT"):
        with pytest.raises(KeyError):
            guess_spot(bad)
    assert GateioFuturesScheme.parse_instruments(b'[{"name":"BTC_USDT_20200814"}]') == {}
    assert stream_market("ob.BTC_USDT.400") == ("BTC_USDT", "400") and stream_market("BTC_USDT") == ("", "")
    assert ms_of_text("1606292218213.4578") == 1606292218213
    for bad in ("", "1.2.3", "-1", "1e5", "12345678901234567"):
        with pytest.raises(ValueError):
            ms_of_text(bad)


def test_subscriptions():
    insts = capture_instruments(SPOT, GateioScheme)
    s = GateioScheme(lambda t, r: None, None, insts, ["BTC-USDT", "ETH-USDT"], list(GateioScheme.channels))
    [plan] = s.plan()
    sent = [json.loads(x) for x in s.subscribe_plan(plan)]
    assert {x["event"] for x in sent} == {"subscribe"}
    assert [(x["channel"], x["payload"]) for x in sent] == [
        ("spot.obu", ["ob.BTC_USDT.400", "ob.ETH_USDT.400"]), ("spot.trades", ["BTC_USDT", "ETH_USDT"]),
        ("spot.book_ticker", ["BTC_USDT", "ETH_USDT"]), ("spot.candlesticks", ["1m", "BTC_USDT"]),
        ("spot.candlesticks", ["1m", "ETH_USDT"])]
    f = GateioFuturesScheme(lambda t, r: None, None, capture_instruments(FUTURES, GateioFuturesScheme),
                            ["BTC-USDT-PERP"], ["lob", "funding_rate", "open_interest", "liquidations"])
    [plan] = f.plan()
    assert [(x["channel"], x["payload"]) for x in map(json.loads, f.subscribe_plan(plan))] == [
        ("futures.obu", ["ob.BTC_USDT.400"]), ("futures.tickers", ["BTC_USDT"]),
        ("futures.public_liquidates", ["BTC_USDT"])]


# --- the documented captures, exactly ----------------------------------------------------------

def test_spot_capture_exact():
    h = spot()
    frames = recv_frames(SPOT)
    records = h.feed_all(frames)
    check_events(records)
    ts = [t for t, _ in frames]
    full_ns, inc_ns = ts[1], ts[2]
    assert [r for t, r in records if t == "status"] == [
        Status("gateio", "BTC-USDT", "snapshot", "", 1747054612673, full_ns // 1000)]
    assert [r for t, r in records if t == "lob"] == [
        Lob("gateio", "BTC-USDT", 104027.1, 509392.0, BUY, 1747054612673, full_ns // 1000),
        Lob("gateio", "BTC-USDT", 104027.0, 477932.0, BUY, 1747054612673, full_ns // 1000),
        Lob("gateio", "BTC-USDT", 104027.2, 44617.0, SELL, 1747054612673, full_ns // 1000),
        Lob("gateio", "BTC-USDT", 104027.4, 39322.0, SELL, 1747054612673, full_ns // 1000),
        Lob("gateio", "BTC-USDT", 104024.5, 10343.0, BUY, 1747054612695, inc_ns // 1000),
        Lob("gateio", "BTC-USDT", 104014.5, 509392.0, BUY, 1747054612695, inc_ns // 1000),
        Lob("gateio", "BTC-USDT", 104027.2, 0.0, SELL, 1747054612695, inc_ns // 1000),
        Lob("gateio", "BTC-USDT", 104027.4, 0.0, SELL, 1747054612695, inc_ns // 1000)]
    assert [r for t, r in records if t == "spread"] == [
        Spread("gateio", "BTC-USDT", 104027.1, 509392.0, 104027.2, 44617.0, 1747054612673, full_ns // 1000),
        Spread("gateio", "BTC-USDT", 104027.1, 509392.0, 0.0, 0.0, 1747054612695, inc_ns // 1000)]
    assert h.scheme.book_ids == {"BTC_USDT": 73777715212}
    ref = Reference()
    for msg in docs_messages():
        ref.feed(msg["result"])
    assert ref.book.equals(h.scheme.books["BTC_USDT"]) and (ref.lob, ref.spread) == (8, 2)
    assert h.events("trades") == [Trade("gateio", "BTC-USDT", 47395.009, 0.00052, BUY, "1638417041", 1631824310261,
                                        ts[3] // 1000)]
    assert h.events("ticker") == [Ticker("gateio", "BTC-USDT", 19177.79, 0.0003341504, 19179.38, 0.09, 1606293275123,
                                         ts[4] // 1000)]
    assert h.events("candle") == [
        Candle("gateio", "BTC-USDT", 1606292580000, 1606292640000, "1m", 0, True, 19128.1, 19128.1, 19128.1, 19128.1,
               3.8283, 1606292600376, ts[5] // 1000),
        Candle("gateio", "BTC-USDT", 1662803040000, 1662803100000, "1m", 0, False, 21352.26, 21352.26, 21342.41,
               21342.41, 0.1533, 1662803082000, ts[6] // 1000)]
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (0, 0, 0)


def test_futures_capture_exact():
    h = futures()
    frames = recv_frames(FUTURES)
    records = h.feed_all(frames)
    check_events(records)
    ts = [t // 1000 for t, _ in frames]
    ref = Reference()
    for msg in docs_messages(FUTURES, b"futures.obu"):
        ref.feed(msg["result"])
    assert ref.book.equals(h.scheme.books["BTC_USDT"]) and (ref.lob, ref.spread) == (5, 1)
    assert len(h.events("lob")) == 5 and h.events("spread") == [
        Spread("gateio-futures", "BTC-USDT-PERP", 83705.9, 30166.0, 83706.0, 4208.0, 1743673026995, ts[1])]
    # the changes of 83702.1 and 83702 remove levels the book does not hold: no rows
    assert [(r.price, r.size) for r in h.events("lob")[2:]] == [(83702.2, 62.0), (83685.6, 120.0), (83685.0, 239.0)]
    assert h.events("trades") == [Trade("gateio-futures", "BTC-USDT-PERP", 56233.3, 50.0, BUY, "15366793",
                                        1616327563918, ts[3])]
    assert h.events("ticker") == [Ticker("gateio-futures", "BTC-USDT-PERP", 31709.2, 119926.0, 31709.3, 56231.0,
                                         1654030293769, ts[4])]
    assert h.events("funding_rate") == [FundingRate("gateio-futures", "BTC-USDT-PERP", 29908.0, -0.00004, 0, 0.000056,
                                                    1654162715000, ts[5])]
    assert h.events("open_interest") == [OpenInterest("gateio-futures", "BTC-USDT-PERP", 754413619.0, 1654162715000,
                                                      ts[5])]
    assert h.events("candle") == [Candle("gateio-futures", "BTC-USD-PERP", 1545129300000, 1545129360000, "1m", 0,
                                         False, 94.3, 96.9, 89.5, 95.4, 27525555.0, 1542162490123, ts[6])] * 2
    # a negative size is a sell order: a long position liquidated
    assert h.events("liquidations") == [Liquidation("gateio-futures", "BTC-USD-PERP", SELL, 215.1, 124.0,
                                                    1541486601123, ts[7])]
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (0, 0, 0)


# --- the V2 sync rule ----------------------------------------------------------------------------

def numbered(n: int = 6) -> list[dict]:
    """The documented full book, then ``n`` documented change sets, numbered as the docs say."""
    full, inc = (m["result"] for m in docs_messages())
    futures_inc = docs_messages(FUTURES, b"futures.obu")[1]["result"]
    sets = [(inc["b"], inc["a"]), ([], full["a"]), (futures_inc["b"], [])]
    out = [full]
    u = full["u"]
    for i in range(n):
        b, a = sets[i % 3]
        out.append({"t": inc["t"] + i, "s": "ob.BTC_USDT.50", "U": u + 1, "u": u + 44, "b": b, "a": a})
        u += 44
    return out


def _frame(result: dict) -> dict:
    return {"channel": "spot.obu", "result": result, "time_ms": result["t"] + 150}


@pytest.mark.parametrize("fault,seen", [("drop", "U 73777715301 != previous u 73777715256 + 1"),
                                        ("duplicate", "U 73777715213 != previous u 73777715256 + 1"),
                                        ("reorder", "U 73777715257 != previous u 73777715212 + 1")])
def test_fault_detected_resynced_and_rebuilt(fault, seen):
    msgs = numbered()
    index = 2  # the change set U 73777715213 .. u 73777715256
    assert (msgs[index]["U"], msgs[index]["u"]) == (73777715213, 73777715256)
    h = spot()
    gap_at = None
    for i, r in enumerate(faulty(msgs, index if fault != "drop" else index + 1, fault)):
        ns = T + i * 1_000_000
        produced = h.feed(_frame(r), ns)
        check_events(produced)
        resyncs = [x for t, x in produced if t == "status" and x.status == "resync"]
        if resyncs and gap_at is None:
            gap_at = i
            assert resyncs == [Status("gateio", "BTC-USDT", "resync", f"gap: {seen}", ns // 1_000_000, ns // 1000)]
            assert [(x["channel"], x["event"], x["payload"]) for x in h.sent()] == [
                ("spot.obu", "unsubscribe", ["ob.BTC_USDT.400"]), ("spot.obu", "subscribe", ["ob.BTC_USDT.400"])]
            assert h.scheme.books["BTC_USDT"].count(BID) == h.scheme.books["BTC_USDT"].count(ASK) == 0
        elif gap_at is not None:
            assert not [x for t, x in produced if t in ("lob", "spread")]  # ignored until the whole book
    assert gap_at is not None and (h.metrics.gaps, h.metrics.resyncs) == (1, 1)
    # the resubscription brings the whole book as it is now (our reference of the clean stream)
    ref = Reference()
    for r in msgs:
        ref.feed(r)
    last = msgs[-1]["u"]
    full = {"t": msgs[-1]["t"] + 100, "full": True, "s": "ob.BTC_USDT.400", "u": last,
            "b": [list(x) for x in ref.book.ordered("b")], "a": [list(x) for x in ref.book.ordered("a")]}
    produced = h.feed(_frame(full), T + 100_000_000)
    assert [x.status for t, x in produced if t == "status"] == ["snapshot"]
    assert ref.book.equals(h.scheme.books["BTC_USDT"]) and "BTC_USDT" not in h.scheme.unsynced
    nxt = {"t": full["t"] + 1, "s": "ob.BTC_USDT.400", "U": last + 1, "u": last + 5, "b": [["104027.1", "1"]], "a": []}
    ref.feed(nxt)
    assert [t for t, _ in h.feed(_frame(nxt), T + 101_000_000)] == ["lob", "spread"]
    assert ref.book.equals(h.scheme.books["BTC_USDT"])
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (1, 1, 0)


def test_clean_numbered_stream_against_the_reference():
    msgs = numbered(9)
    h = spot()
    ref = Reference()
    for i, r in enumerate(msgs):
        check_events(h.feed(_frame(r), T + i))
        ref.feed(r)
        assert ref.book.equals(h.scheme.books["BTC_USDT"])
    assert (len(h.events("lob")), len(h.events("spread"))) == (ref.lob, ref.spread) == (31, 7)
    assert h.scheme.book_ids["BTC_USDT"] == msgs[-1]["u"] and h.metrics.gaps == 0


def test_whole_book_resent_replaces_the_book():
    """The docs: "the server may send full depth snapshots multiple times"; each replaces the book."""
    msgs = numbered(2)
    h = spot()
    for r in msgs:
        h.feed(_frame(r))
    again = dict(msgs[0], u=msgs[-1]["u"] + 10)
    produced = h.feed(_frame(again), T + 5)
    assert [(t, getattr(x, "status", "")) for t, x in produced][:1] == [("status", "snapshot")]
    ref = Reference()
    ref.feed(again)
    assert ref.book.equals(h.scheme.books["BTC_USDT"]) and h.scheme.book_ids["BTC_USDT"] == again["u"]
    assert h.metrics.gaps == h.metrics.resyncs == 0


def test_changes_before_the_whole_book_and_after_a_close():
    msgs = numbered(3)
    h = spot()
    produced = h.feed(_frame(msgs[1]))
    assert [x for t, x in produced if t == "status"] == [
        Status("gateio", "BTC-USDT", "resync", "order book change before its full book", T // 1_000_000, T // 1000)]
    assert h.feed(_frame(msgs[2])) == []  # waiting for the whole book
    h.feed(_frame(msgs[0]))
    assert h.scheme.book_ids["BTC_USDT"] == msgs[0]["u"] and h.metrics.resyncs == 1
    h.conn.plan = GateioScheme(lambda t, r: None, None, capture_instruments(SPOT, GateioScheme), ["BTC-USDT"]).plan()[0]
    h.close()
    assert h.feed(_frame(msgs[1])) == []  # the next connection brings a whole book first
    assert h.metrics.gaps == 0


def test_bad_input_is_counted_never_applied():
    h = spot()
    full, inc = (m["result"] for m in docs_messages())
    h.feed(_frame(full))
    before = h.scheme.books["BTC_USDT"].levels(BID)
    bad = dict(inc, b=[["104024.5", "abc"]])
    produced = h.feed(_frame(bad))
    assert [x.reason for t, x in produced if t == "status"] == ["malformed order book: " + h.reports[-1][1]]
    assert h.reports[-1][0] == "gateio: malformed order book" and before  # nothing applied, then dropped
    h.feed(_frame(full))
    crossed = dict(inc, b=[["104030", "1"]], a=[])
    assert [x.reason for t, x in h.feed(_frame(crossed)) if t == "status"] == [
        "book crossed: bid 104030.0 >= ask 104027.2"]
    h.feed(b"not json")
    h.feed({"channel": "spot.nope", "event": "update", "result": {}})
    h.feed({"time": 1, "channel": "spot.trades", "event": "subscribe", "error": {"code": 2, "message":
                                                                                   "Invalid argument provided"},
            "result": None})
    h.feed({"channel": "spot.trades", "event": "update", "result": {"id": 1, "currency_pair": "BTC_USDT",
                                                                    "side": "both", "amount": "1", "price": "2",
                                                                    "create_time_ms": "1631824310261.896"}})
    h.feed({"channel": "spot.obu", "result": {"t": 1, "s": "BTC_USDT", "u": 1}})
    h.feed({"channel": "spot.candlesticks", "event": "update", "result": {
        "t": "1662803040", "c": "1", "h": "1", "l": "1", "o": "1", "n": "5m_BTC_USDT", "a": "1"}})
    h.feed({"channel": "spot.book_ticker", "event": "update", "result": {"t": 1, "s": "NOPE", "b": "1", "B": "1",
                                                                          "a": "1", "A": "1"}})
    assert dict(h.metrics.errors.counts) == {
        "gateio: malformed order book": 2, "gateio: not a JSON object": 1, "gateio: unknown channel": 1,
        "gateio: exchange error": 1, "gateio: malformed trade": 1, "gateio: unknown candle interval": 1,
        "gateio: unknown market": 1}
    assert h.metrics.resyncs == 2 and h.metrics.gaps == 0


def test_futures_real_messages_of_other_shapes():
    """Real pushes (crypto-msg-parser tests/gate.rs): a trade whose price is a JSON number, a
    5-minute candle (not subscribed: counted), and an internal trade (an insurance-fund takeover:
    not a market trade) built from the documented trade."""
    h = futures()
    h.feed('{"time":1667469835,"channel":"futures.trades","event":"update","result":[{"contract":"MOB_USDT",'
           '"create_time":1667469835,"create_time_ms":1667469835931,"id":927273,"price":0.836,"size":-90}]}')
    assert h.events("trades") == [Trade("gateio-futures", "MOB-USDT-PERP", 0.836, 90.0, SELL, "927273",
                                        1667469835931, T // 1000)]
    h.feed('{"time":1662484495,"channel":"futures.candlesticks","event":"update","result":[{"t":1662484200,'
           '"v":10937513,"c":"19174.6","h":"19377","l":"19088.1","o":"19347.3","n":"5m_BTC_USDT"}]}')
    h.feed({"channel": "futures.trades", "event": "update", "time": 1545136464, "time_ms": 1545136464123, "result": [
        {"size": -108, "id": 27753479, "create_time": 1545136464, "create_time_ms": 1545136464123, "price": "96.4",
         "contract": "BTC_USDT", "is_internal": True}]})
    assert len(h.events("trades")) == 1 and len(h.events("candle")) == 0
    assert dict(h.metrics.errors.counts) == {"gateio-futures: unknown candle interval": 1}


# --- simulate + run --endpoint ----------------------------------------------------------------

@pytest.mark.parametrize("capture,exchange", [(SPOT, "gateio"), (FUTURES, "gateio-futures")])
def test_simulate_and_run_publish_what_replay_does(capture, exchange):
    _replay, sink = replay_fixture(capture, exchange=exchange)
    frames = len(recv_frames(capture))
    with SimProcess(capture, "--pace", "fast") as sim:
        r = run_cli("run", "--exchange", exchange, "--endpoint", sim.url, "--rest-endpoint", sim.rest_url,
                    "--symbols", "BTC-USDT" if exchange == "gateio" else "BTC-USDT-PERP",
                    "--channels", ",".join(sorted(set(GateioFuturesScheme.channels if exchange != "gateio"
                                                      else GateioScheme.channels))),
                    "--sink", "stdout", "--max-frames", frames, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    s = cli_summary(r.stderr)
    assert s["frames"] == frames and s["gaps"] == 0 and s["errors"] == 0
    assert {k: v for k, v in s["events"].items() if k != "status"} == {
        k: v for k, v in sink.counts().items() if k != "status"}
    lines = [json.loads(ln) for ln in r.stdout.splitlines() if ln]
    trades = [(x["symbol"], x["price"], x["trade_id"]) for x in lines if x["topic"] == "trades"]
    assert trades == ([("BTC-USDT", 47395.009, "1638417041")] if exchange == "gateio" else
                      [("BTC-USDT-PERP", 56233.3, "15366793")])
