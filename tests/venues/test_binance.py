"""Binance schemes (spot ``binance``, USD-M ``binance-futures``, COIN-M ``binance-delivery``) on the
recorded captures, through ``atomfast.replay.Replay`` and an in-memory sink.

Captures: cryptofeed ``BINANCE*.ws.1.0`` (2021: depth@100ms, bookTicker, aggTrade, kline_1m;
snapshots from ``*.http.0.0``, listings from ``*.0``) and the hftbacktest sessions of 2024-08-08
(depth@100ms spot / depth@0ms futures, bookTicker, trade; ONE inline REST snapshot each, arriving
after the first depth updates; no listing, so instruments are guessed).

The lob counts and the final books are also checked against an independent reference written
here: the documented sync procedure on plain dicts of ``Decimal`` (``RefSync``). On the USD-M
session, every bookTicker whose update id ``u`` equals the book's must show the book's exact top.

Shapes the captures do not hold (current spot ``trade`` without order ids, ``markPrice``, the
``openInterest`` REST answers, subscription answers) are tested on the examples of Binance's
documentation (developers.binance.com: spot web-socket-streams, USD-M / COIN-M "Mark Price
Stream", "Open Interest").
"""
from __future__ import annotations

import gc
import json
from decimal import Decimal
from pathlib import Path

import pytest

from atomfast.capture import REST, RECV, open_capture
from atomfast.events import Candle, FundingRate, Liquidation, OpenInterest, Status, Ticker, Trade
from atomfast.exchanges import scheme_for, schemes
from atomfast.exchanges.binance import BinanceDeliveryScheme, BinanceFuturesScheme, BinanceSpotScheme
from atomfast.exchanges.binance.parse import guess_futures, guess_spot
from atomfast.replay import Replay
from atomfast.scheme import ConnectionPlan, Instrument
from atomfast.testing import Harness, MemorySink, book_dict, capture_instruments, fixture_path

CF_SPOT = "cryptofeed/BINANCE.ws.1.0"
CF_USDM = "cryptofeed/BINANCE_FUTURES.ws.1.0"
CF_COINM = "cryptofeed/BINANCE_DELIVERY.ws.1.0"
HB_SPOT = "hftbacktest/spot/btcusdt_20240808.gz"
HB_USDM = "hftbacktest/usdm/btcusdt_20240808.gz"
HB_COINM = "hftbacktest/cm/btcusd_perp_20240808.gz"

SESSIONS = {
    CF_SPOT: ("binance", False),
    CF_USDM: ("binance-futures", True),
    CF_COINM: ("binance-delivery", True),
    HB_SPOT: ("binance", False),
    HB_USDM: ("binance-futures", True),
    HB_COINM: ("binance-delivery", True),
}


# ------------------------------------------------------------------------------------------------
# whole captures through Replay, with a check of the book's top against bookTicker


class TopCheck:
    """bookTicker ``u`` is an update id of the same book as the depth stream: whenever it equals
    our book's id, the exchange's top and our book's top must be identical. A frame hook of the
    replay's driver: it sees each frame before the scheme, the book as the frames before left it."""

    def __init__(self, scheme) -> None:
        self.scheme = scheme
        self.equal_id = 0
        self.match = 0

    def __call__(self, conn, data, recv_ns, binary) -> None:
        if b"@bookTicker" not in data[:64]:
            return
        t = json.loads(data)["data"]
        st = self.scheme.sync.get(t["s"])
        if st is not None and st.live and st.last == t["u"]:
            self.equal_id += 1
            if self.scheme.books[t["s"]].best() == (float(t["b"]), float(t["B"]), float(t["a"]), float(t["A"])):
                self.match += 1


def run_replay(relative: str) -> tuple[Replay, MemorySink]:
    exchange, _ = SESSIONS[relative]
    sink = MemorySink()
    replay = Replay(open_capture(fixture_path(relative)), exchange, sink)
    replay.top_check = replay.driver.frame_hook = TopCheck(replay.scheme)
    gc.disable()  # the sink keeps every record: no collector passes over them meanwhile
    try:
        replay.run()
    finally:
        gc.enable()
    return replay, sink


_replays: dict[str, tuple[Replay, MemorySink]] = {}


@pytest.fixture
def replayed():
    """Each capture replayed once per session (a whole capture is a few seconds at most)."""

    def get(relative: str) -> tuple[Replay, MemorySink]:
        if relative not in _replays:
            _replays[relative] = run_replay(relative)
        return _replays[relative]

    return get


# ------------------------------------------------------------------------------------------------
# independent reference: the documented procedure on dicts of Decimal


class RefSync:
    """Binance's "How to manage a local order book correctly" on plain dicts; asserts continuity."""

    def __init__(self, futures: bool) -> None:
        self.futures = futures
        self.books: dict[str, tuple[dict, dict]] = {}
        self.state: dict[str, list] = {}  # native -> [last u, fresh, lastUpdateId]
        self.buffers: dict[str, list[dict]] = {}
        self.lob = 0
        self.applied = 0

    def _apply(self, native: str, d: dict) -> None:
        book = self.books[native]
        for side, key in ((0, "b"), (1, "a")):
            for p, s in d[key]:
                price, size = Decimal(p), Decimal(s)
                if size == 0:
                    if price in book[side]:
                        del book[side][price]
                        self.lob += 1
                else:
                    book[side][price] = size
                    self.lob += 1
        self.applied += 1

    def snapshot(self, native: str, body: bytes) -> None:
        snap = json.loads(body)
        lid = snap["lastUpdateId"]
        self.books[native] = ({}, {})
        for side, key in ((0, "bids"), (1, "asks")):
            for p, s in snap[key]:
                self.books[native][side][Decimal(p)] = Decimal(s)
                self.lob += 1
        self.state[native] = [lid, True, lid]
        for d in self.buffers.pop(native, []):
            self.event(native, d)

    def event(self, native: str, d: dict) -> None:
        if native not in self.state:
            self.buffers.setdefault(native, []).append(d)
            return
        last, fresh, lid = self.state[native]
        if self.futures:
            if fresh and d["u"] < lid:
                return
            assert d["pu"] == last or (fresh and d["U"] <= lid <= d["u"]), (native, d["U"], d["u"], last)
        else:
            if d["u"] <= last:
                return
            assert d["U"] == last + 1 or (fresh and d["U"] <= last + 1 <= d["u"]), (native, d["U"], last)
        self._apply(native, d)
        self.state[native] = [d["u"], False, lid]

    def run(self, path: Path) -> "RefSync":
        cap = open_capture(path)
        answers = {url: [body for _, body in a] for url, a in cap.rest.items()}
        for f in cap.frames():
            if f.kind == REST:  # inline (hftbacktest): one market
                (native,) = self.buffers
                self.snapshot(native, f.data)
            elif f.kind == RECV:
                msg = json.loads(f.data)
                if "@depth" not in msg.get("stream", ""):
                    continue
                d = msg["data"]
                native = d["s"]
                first = native not in self.state and native not in self.buffers
                self.event(native, d)
                if first:  # cryptofeed asked for the snapshot at the first update
                    for url, bodies in answers.items():
                        if f"symbol={native}&" in url and bodies:
                            self.snapshot(native, bodies.pop(0))
        return self


# ------------------------------------------------------------------------------------------------
# registry, instruments, symbols


def test_registry_and_names():
    table = schemes()
    assert table["binance"] == [BinanceSpotScheme]
    assert table["binance-futures"] == [BinanceFuturesScheme]
    assert table["binance-delivery"] == [BinanceDeliveryScheme]
    # the recorded url (streams in the query) picks the one scheme of the name
    assert scheme_for("binance-futures", "wss://fstream.binance.com/stream?streams=x@depth") is BinanceFuturesScheme


def test_spot_listing():
    inst = capture_instruments(CF_SPOT, BinanceSpotScheme)
    assert len(inst) == 1695
    assert inst["NKNUSDT"] == Instrument("NKNUSDT", "NKN-USDT", "spot", "NKN", "USDT", 8, 8)
    assert inst["ETHBTC"].symbol == "ETH-BTC"
    assert inst["RUNEEUR"].symbol == "RUNE-EUR"
    assert len({i.symbol for i in inst.values()}) == 1695


def test_usdm_listing():
    inst = capture_instruments(CF_USDM, BinanceFuturesScheme)
    assert len(inst) == 122
    assert inst["BTCUSDT"] == Instrument("BTCUSDT", "BTC-USDT-PERP", "perp", "BTC", "USDT", 8, 8)
    assert inst["BTCUSDT_210924"] == Instrument("BTCUSDT_210924", "BTC-USDT-20210924", "future", "BTC", "USDT", 8, 8,
                                                "20210924")
    # contractType "" (a perpetual being settled): still the perpetual
    assert inst["BTCSTUSDT"].symbol == "BTCST-USDT-PERP"
    kinds = {}
    for i in inst.values():
        kinds[i.kind] = kinds.get(i.kind, 0) + 1
    assert kinds == {"perp": 120, "future": 2}


def test_coinm_listing():
    inst = capture_instruments(CF_COINM, BinanceDeliveryScheme)
    assert len(inst) == 36
    assert inst["BTCUSD_PERP"].symbol == "BTC-USD-PERP"
    assert inst["BTCUSD_210924"] == Instrument("BTCUSD_210924", "BTC-USD-20210924", "future", "BTC", "USD", 8, 8,
                                               "20210924")
    assert inst["LINKUSD_211231"].symbol == "LINK-USD-20211231"
    assert sum(i.kind == "future" for i in inst.values()) == 18


def test_guessed_instruments():
    assert guess_spot("BTCUSDT") == Instrument("BTCUSDT", "BTC-USDT", "spot", "BTC", "USDT", 8, 8)
    assert guess_spot("ETHBTC").symbol == "ETH-BTC"
    assert guess_spot("BTCFDUSD").symbol == "BTC-FDUSD"
    assert guess_futures("BTCUSDT").symbol == "BTC-USDT-PERP"
    assert guess_futures("BTCUSDT_240927") == Instrument("BTCUSDT_240927", "BTC-USDT-20240927", "future", "BTC",
                                                         "USDT", 8, 8, "20240927")
    assert guess_futures("BTCUSD_PERP").symbol == "BTC-USD-PERP"
    assert guess_futures("ETHUSD_241227").symbol == "ETH-USD-20241227"
    for bad in ("", "btcusdt", "BTC-USDT", "BTCUSDT_991399", "XYZ", "A" * 60, "BTCUSDT_PERP_X"):
        with pytest.raises(KeyError):
            guess_futures(bad)
    with pytest.raises(KeyError):
        guess_spot("BTCUSD_PERP")


# ------------------------------------------------------------------------------------------------
# whole captures


# (each capture's summary -- frames, events per topic, no gap, no resync, no error -- is its row
# of tests/test_captures.py)


@pytest.mark.parametrize("relative", list(SESSIONS))
def test_capture_sync(replayed, relative):
    replay, sink = replayed(relative)
    assert not replay.scheme.unsynced
    assert all(st.live for st in replay.scheme.sync.values())
    # one status per book: the snapshot, never a resync
    statuses = [r for t, r in sink.records if t == "status"]
    assert sorted(s.status for s in statuses if s.symbol) == ["snapshot"] * len(replay.scheme.books)


#: depth events the reference applies: every depth frame but those the snapshot covers
#: (spot 3451 frames - 2 covered, usdm 6551 - 4, cm 26847 - 23)
EXPECTED_APPLIED = {CF_SPOT: 172, CF_USDM: 752, CF_COINM: 1788, HB_SPOT: 3449, HB_USDM: 6547, HB_COINM: 26824}


@pytest.mark.parametrize("relative", list(SESSIONS))
def test_capture_matches_reference(replayed, relative):
    """Same lob count and the same final books as the independent reference; depth updates
    before the (inline) snapshot were buffered, not lost."""
    replay, sink = replayed(relative)
    _, futures = SESSIONS[relative]
    ref = RefSync(futures).run(fixture_path(relative))
    assert ref.applied == EXPECTED_APPLIED[relative]
    assert sink.counts()["lob"] == ref.lob
    assert set(replay.scheme.books) == set(ref.books)
    for native, (bids, asks) in ref.books.items():
        assert book_dict(replay.scheme.books[native]) == (bids, asks), native


#: (bookTicker at the book's exact update id, of which the tops were identical)
EXPECTED_TOP_CHECKS = {CF_SPOT: (0, 0), CF_USDM: (0, 0), CF_COINM: (5, 5), HB_SPOT: (0, 0), HB_USDM: (126, 126),
                       HB_COINM: (0, 0)}


@pytest.mark.parametrize("relative", list(EXPECTED_TOP_CHECKS))
def test_book_top_equals_book_ticker_at_same_update_id(replayed, relative):
    """Where a bookTicker carries our book's update id, both tops are the same (the spot streams
    batch 100 ms of updates, so ids rarely meet there)."""
    replay, _ = replayed(relative)
    assert (replay.top_check.equal_id, replay.top_check.match) == EXPECTED_TOP_CHECKS[relative]


# --- exact records --------------------------------------------------------------------------------

TRADES = {
    CF_SPOT: (
        Trade("binance", "NKN-USDT", 0.3528, 58.0, "buy", "15683430", 1633998523963, 1633998523957215),
        Trade("binance", "LRC-BTC", 6.38e-06, 177.0, "buy", "9213679", 1633998534486, 1633998534481201),
    ),
    CF_USDM: (
        Trade("binance-futures", "CTK-USDT-PERP", 1.011, 10.0, "buy", "16599292", 1626992741421, 1626992742289739),
        Trade("binance-futures", "CTK-USDT-PERP", 1.012, 10.0, "buy", "16599329", 1626992770366, 1626992770566407),
    ),
    CF_COINM: (
        Trade("binance-delivery", "BCH-USD-PERP", 427.91, 3.0, "sell", "11285749", 1626916403852, 1626916408607320),
        Trade("binance-delivery", "ETC-USD-PERP", 42.265, 45.0, "sell", "12400577", 1626916431258, 1626916431388014),
    ),
    HB_SPOT: (
        Trade("binance", "BTC-USDT", 61837.63, 0.02, "sell", "3735683259", 1723161255342, 1723161254087896),
        Trade("binance", "BTC-USDT", 61685.99, 0.0014, "sell", "3735693015", 1723161601271, 1723161599997948),
    ),
    HB_USDM: (
        Trade("binance-futures", "BTC-USDT-PERP", 61800.3, 0.006, "buy", "5266583935", 1723161256322, 1723161255088176),
        Trade("binance-futures", "BTC-USDT-PERP", 61659.8, 0.076, "buy", "5266605247", 1723161599643, 1723161598372181),
    ),
    HB_COINM: (
        Trade("binance-delivery", "BTC-USD-PERP", 61804.8, 4.0, "buy", "849714402", 1723161257679, 1723161256419684),
        Trade("binance-delivery", "BTC-USD-PERP", 61668.7, 2.0, "buy", "849716687", 1723161600719, 1723161599457809),
    ),
}


@pytest.mark.parametrize("relative", list(TRADES))
def test_first_and_last_trade(replayed, relative):
    _, sink = replayed(relative)
    trades = [r for t, r in sink.records if t == "trades"]
    assert (trades[0], trades[-1]) == TRADES[relative]


@pytest.mark.parametrize("relative", [HB_SPOT, HB_USDM, HB_COINM])
def test_trades_one_for_one(replayed, relative):
    """Every recorded trade message is one trade event, with the recorded id, in order."""
    _, sink = replayed(relative)
    ids = [r.trade_id for t, r in sink.records if t == "trades"]
    recorded = []
    for f in open_capture(fixture_path(relative)).frames():
        if f.kind == RECV and b"@trade" in f.data[:40]:
            recorded.append(str(json.loads(f.data)["data"]["t"]))
    assert ids == recorded
    assert len(set(ids)) == len(ids)


def test_cryptofeed_other_records(replayed):
    _, sink = replayed(CF_SPOT)
    assert [r for t, r in sink.records if t == "ticker"][0] == Ticker(
        "binance", "NKN-USDT", 0.3521, 672.0, 0.3526, 3199.0, 1633998513377, 1633998513377805)  # no exchange time
    assert [r for t, r in sink.records if t == "candle"][0] == Candle(
        "binance", "NKN-USDT", 1633998480000, 1633998540000, "1m", 30, False, 0.3527, 0.3528, 0.3522, 0.3528, 25877.0,
        1633998523963, 1633998523957297)
    statuses = [r for t, r in sink.records if t == "status"]
    assert statuses[1] == Status("binance", "NKN-USDT", "snapshot", "", 1633998512063, 1633998512063356)
    _, sink = replayed(CF_USDM)
    assert [r for t, r in sink.records if t == "ticker"][0] == Ticker(
        "binance-futures", "SUSHI-USDT-PERP", 7.611, 2.0, 7.612, 297.0, 1626992741012, 1626992741062170)
    # snapshot status: the snapshot's own transaction time T
    assert [r for t, r in sink.records if t == "status"][1] == Status(
        "binance-futures", "SUSHI-USDT-PERP", "snapshot", "", 1626992741261, 1626992741081672)
    _, sink = replayed(CF_COINM)
    assert [r for t, r in sink.records if t == "candle"][0] == Candle(
        "binance-delivery", "ETH-USD-20210924", 1626916380000, 1626916440000, "1m", 41, False, 1992.7, 1993.71, 1992.17,
        1992.17, 1893.0, 1626916405054, 1626916409221490)


def test_hftbacktest_snapshot_and_tops(replayed):
    replay, sink = replayed(HB_SPOT)
    assert [r for t, r in sink.records if t == "status"] == [
        Status("binance", "BTC-USDT", "snapshot", "", 1723161254206, 1723161254206652)]
    assert replay.scheme.books["BTCUSDT"].best() == (61685.99, 1.0087, 61686.0, 2.29327)
    assert replay.scheme.sync["BTCUSDT"].last == 50093421584
    replay, _ = replayed(HB_USDM)
    assert replay.scheme.books["BTCUSDT"].best() == (61659.7, 1.486, 61659.8, 0.981)
    assert replay.scheme.sync["BTCUSDT"].last == 5123135475514
    replay, _ = replayed(HB_COINM)
    assert replay.scheme.books["BTCUSD_PERP"].best() == (61668.6, 1380.0, 61668.7, 871.0)
    assert replay.scheme.sync["BTCUSD_PERP"].last == 1007202248021
    # the inline snapshot was asked for (the replay could not answer it: it came inline)
    assert replay.unanswered == ["https://dapi.binance.com/dapi/v1/depth?symbol=BTCUSD_PERP&limit=1000"]


def test_cryptofeed_snapshots_requested_by_url(replayed):
    replay, _ = replayed(CF_SPOT)
    assert replay.unanswered == []
    assert sorted(replay.capture.rest) == sorted(
        [BinanceSpotScheme.rest_url + BinanceSpotScheme.instruments_path]
        + [f"https://api.binance.com/api/v3/depth?symbol={n}&limit=1000"
           for n in ("NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR")])
    assert {n: st.attempts for n, st in replay.scheme.sync.items()} == {"NKNUSDT": 0, "BLZETH": 0, "LRCBTC": 0,
                                                                        "RUNEEUR": 0}


# ------------------------------------------------------------------------------------------------
# current shapes (documentation examples)


def test_spot_trade_current_shape_has_no_order_ids():
    """Spot ``trade`` as documented now: no ``b``/``a`` (buyer/seller order ids): trades only."""
    h = Harness(BinanceSpotScheme)
    out = h.feed({"stream": "bnbbtc@trade", "data": {"e": "trade", "E": 1672515782136, "s": "BNBBTC", "t": 12345,
                                                     "p": "0.001", "q": "100", "T": 1672515782136, "m": True,
                                                     "M": True}})
    assert out == [("trades", Trade("binance", "BNB-BTC", 0.001, 100.0, "sell", "12345", 1672515782136,
                                     1_700_000_000_000_000))]
    # the old shape (with order ids) reads the same
    out = h.feed({"stream": "bnbbtc@trade", "data": {"e": "trade", "E": 1, "s": "BNBBTC", "t": 7, "p": "0.002",
                                                     "q": "1", "b": 88, "a": 50, "T": 2, "m": False, "M": True}})
    assert out[0][1][2:6] == (0.002, 1.0, "buy", "7")
    assert not h.events("trades_l3")


def test_spot_agg_trade_and_kline_doc_examples():
    h = Harness(BinanceSpotScheme)
    out = h.feed({"stream": "bnbbtc@aggTrade", "data": {
        "e": "aggTrade", "E": 1672515782136, "s": "BNBBTC", "a": 12345, "p": "0.001", "q": "100", "f": 100, "l": 105,
        "T": 1672515782136, "m": True, "M": True}})
    assert out == [("trades", Trade("binance", "BNB-BTC", 0.001, 100.0, "sell", "12345", 1672515782136,
                                     1_700_000_000_000_000))]
    out = h.feed({"stream": "bnbbtc@kline_1m", "data": {"e": "kline", "E": 1672515782136, "s": "BNBBTC", "k": {
        "t": 1672515780000, "T": 1672515839999, "s": "BNBBTC", "i": "1m", "f": 100, "L": 200, "o": "0.0010",
        "c": "0.0020", "h": "0.0025", "l": "0.0015", "v": "1000", "n": 100, "x": False, "q": "1.0000", "V": "500",
        "Q": "0.500", "B": "123456"}}})
    assert out == [("candle", Candle("binance", "BNB-BTC", 1672515780000, 1672515840000, "1m", 100, False, 0.001,
                                     0.0025, 0.0015, 0.002, 1000.0, 1672515782136, 1_700_000_000_000_000))]
    out = h.feed({"stream": "bnbusdt@bookTicker", "data": {"u": 400900217, "s": "BNBUSDT", "b": "25.35190000",
                                                           "B": "31.21000000", "a": "25.36520000", "A": "40.66000000"}})
    assert out == [("ticker", Ticker("binance", "BNB-USDT", 25.3519, 31.21, 25.3652, 40.66, 1_700_000_000_000,
                                     1_700_000_000_000_000))]


def test_kline_bounds_each_refused():
    """Each bound of a kline (values in [0, 1e15), n < 2**31, times in [0, 10**14) ms with the close
    not before the start, an interval of 1 to 8 characters) refused alone: a malformed kline."""
    k = {"t": 1672515780000, "T": 1672515839999, "s": "BNBBTC", "i": "1m", "o": "0.0010", "c": "0.0020",
         "h": "0.0025", "l": "0.0015", "v": "1000", "n": 100, "x": False}
    bad = [{"o": "-1"}, {"h": "1e15"}, {"l": "nan"}, {"c": "x"}, {"v": "-0.1"}, {"n": 2**31}, {"n": -1},
           {"t": -1}, {"T": 10**14}, {"t": 1672515839999, "T": 1672515780000}, {"i": ""}, {"i": "123456789"},
           {"E": 10**14}, {"E": -1}]
    for change in bad:
        h = Harness(BinanceSpotScheme)
        data = {"e": "kline", "E": 1672515782136, "s": "BNBBTC", "k": {**k, **change}}
        if "E" in change:
            data["E"] = change["E"]
            del data["k"]["E"]
        assert h.feed({"stream": "bnbbtc@kline_1m", "data": data}) == [], change
        assert h.metrics.errors.counts == {"binance: malformed kline": 1}, change
    h = Harness(BinanceSpotScheme)
    edge = {**k, "t": 0, "T": 0, "o": "0", "n": 2**31 - 1, "i": "12345678"}
    assert [t for t, _ in h.feed({"stream": "bnbbtc@kline_1m", "data": {"e": "kline", "E": 0, "s": "BNBBTC",
                                                                          "k": edge}})] == ["candle"]


def test_mark_price_doc_examples():
    h = Harness(BinanceFuturesScheme)
    out = h.feed({"stream": "btcusdt@markPrice@1s", "data": {
        "e": "markPriceUpdate", "E": 1562305380000, "s": "BTCUSDT", "p": "11794.15000000", "i": "11784.62659091",
        "P": "11784.25641265", "r": "0.00038167", "T": 1562306400000}})
    assert out == [("funding_rate", FundingRate("binance-futures", "BTC-USDT-PERP", 11794.15, 0.00038167,
                                                1562306400000, 0.00038167, 1562305380000, 1_700_000_000_000_000))]
    # COIN-M delivery contract: no funding ("r" empty, "T" 0): nothing, and no error
    h = Harness(BinanceDeliveryScheme)
    out = h.feed({"stream": "btcusd_201225@markPrice", "data": {
        "e": "markPriceUpdate", "E": 1596095725000, "s": "BTCUSD_201225", "p": "10934.62615417",
        "P": "10962.17178236", "i": "10933.62615417", "r": "", "T": 0}})
    assert out == [] and h.metrics.errors.total == 0
    out = h.feed({"stream": "btcusd_perp@markPrice", "data": {
        "e": "markPriceUpdate", "E": 1596095725000, "s": "BTCUSD_PERP", "p": "10934.62615417", "P": "1",
        "i": "10933.62615417", "r": "0.00010000", "T": 1596096000000}})
    assert out[0][1] == FundingRate("binance-delivery", "BTC-USD-PERP", 10934.62615417, 0.0001, 1596096000000, 0.0001,
                                    1596095725000, 1_700_000_000_000_000)


def test_force_order_is_a_liquidation():
    """``<symbol>@forceOrder``: the documented examples (USD-M and COIN-M "Liquidation Order
    Streams"). ``S`` is the liquidation order's side, which is ours; ``q`` its size, ``p`` its
    price, ``X``/``z``/``ap`` the optional fields; ``T`` the event time."""
    h = Harness(BinanceFuturesScheme, channels=["liquidations"])
    assert h.scheme.subscribe_messages("forceOrder", ["BTCUSDT"])[0].startswith(
        '{"method":"SUBSCRIBE","params":["btcusdt@forceOrder"]')
    out = h.feed({"stream": "btcusdt@forceOrder", "data": {
        "e": "forceOrder", "E": 1568014460893, "o": {
            "s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "9910", "ap": "9910",
            "X": "FILLED", "l": "0.014", "z": "0.014", "T": 1568014460893}}})
    assert out == [("liquidations", Liquidation("binance-futures", "BTC-USDT-PERP", "sell", 9910.0, 0.014,
                                                1568014460893, 1_700_000_000_000_000, "", "FILLED", 0.014, 9910.0))]
    h = Harness(BinanceDeliveryScheme)
    out = h.feed({"stream": "btcusd_200925@forceOrder", "data": {
        "e": "forceOrder", "E": 1591154240950, "o": {
            "s": "BTCUSD_200925", "ps": "BTCUSD", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "1", "p": "9425.5",
            "ap": "9496.5", "X": "FILLED", "l": "1", "z": "1", "T": 1591154240949}}})
    assert out == [("liquidations", Liquidation("binance-delivery", "BTC-USD-20200925", "sell", 9425.5, 1.0,
                                                1591154240949, 1_700_000_000_000_000, "", "FILLED", 1.0, 9496.5))]
    # unwrapped (``/ws`` connections) it is routed by its ``e``
    out = h.feed({"e": "forceOrder", "E": 1591154240950, "o": {
        "s": "BTCUSD_PERP", "S": "BUY", "q": "3", "p": "9500", "T": 1591154240949}})
    assert out == [("liquidations", Liquidation("binance-delivery", "BTC-USD-PERP", "buy", 9500.0, 3.0,
                                                1591154240949, 1_700_000_000_000_000))]
    assert h.metrics.errors.total == 0
    # refused, counted: a side that is neither, a negative size, more filled than ordered
    for bad in ({"S": "LONG"}, {"q": "-1"}, {"z": "2", "q": "1"}, {"p": "NaN"}):
        o = {"s": "BTCUSD_PERP", "S": "SELL", "q": "1", "p": "9425.5", "T": 1591154240949, **bad}
        assert h.feed({"stream": "btcusd_perp@forceOrder", "data": {"e": "forceOrder", "E": 1591154240950, "o": o}}) == []
    assert h.metrics.errors.counts == {"binance-delivery: malformed forceOrder": 4}


def test_book_ticker_and_trade_fields_checked_by_the_writers():
    """A recorded USD-M bookTicker and aggTrade (cryptofeed/BINANCE_FUTURES.ws.1.0) publish their
    exact values; the same with a field no exchange means (a time past int64, as the decoder
    takes it; a negative time; a price that is not a number, or NaN; a trade at price 0) is
    counted bad input, with nothing published and no internal error."""
    h = Harness(BinanceFuturesScheme)
    ticker = {"e": "bookTicker", "u": 600859600576, "s": "SUSHIUSDT", "b": "7.6110", "B": "2", "a": "7.6120",
              "A": "297", "T": 1626992741012, "E": 1626992741017}
    trade = {"e": "aggTrade", "E": 1626992741575, "a": 16599292, "s": "CTKUSDT", "p": "1.01100", "q": "10",
             "f": 23961322, "l": 23961322, "T": 1626992741421, "m": False}
    assert h.feed({"stream": "sushiusdt@bookTicker", "data": ticker}) == [("ticker", Ticker(
        "binance-futures", "SUSHI-USDT-PERP", 7.611, 2.0, 7.612, 297.0, 1626992741012, 1_700_000_000_000_000))]
    assert h.feed({"stream": "ctkusdt@aggTrade", "data": trade}) == [("trades", Trade(
        "binance-futures", "CTK-USDT-PERP", 1.011, 10.0, "buy", "16599292", 1626992741421, 1_700_000_000_000_000))]
    for bad in ({"T": 2**64 - 1}, {"T": -5}, {"b": "x"}, {"A": "NaN"}):
        assert h.feed({"stream": "sushiusdt@bookTicker", "data": {**ticker, **bad}}) == []
    for bad in ({"T": 2**64 - 1}, {"p": "0"}, {"q": "1e16"}):
        assert h.feed({"stream": "ctkusdt@aggTrade", "data": {**trade, **bad}}) == []
    assert h.metrics.errors.counts == {"binance-futures: malformed ticker": 4, "binance-futures: malformed trade": 3}


def test_open_interest_poll_and_answers(monkeypatch):
    """open_interest: polled over REST (no stream); the doc examples of both answers."""
    h = Harness(BinanceFuturesScheme, channels=["open_interest"])
    plan = ConnectionPlan(BinanceFuturesScheme.channel_urls["aggTrade"], [("openInterest", ["BTCUSDT", "ETHUSDT"])])
    h.conn.plan = plan
    conn = h.conn
    clock = [1000.0]
    monkeypatch.setattr("atomfast.exchanges.binance.handler.time.monotonic", lambda: clock[0])
    h.open()
    assert conn.sent == []  # nothing to subscribe: a poll
    assert conn.fetches == ["https://fapi.binance.com/fapi/v1/openInterest?symbol=BTCUSDT",
                            "https://fapi.binance.com/fapi/v1/openInterest?symbol=ETHUSDT"]
    # the timer: the next poll rides on the ping (every ping_interval), once per
    # open_interest_interval; the ping itself stays a websocket PING frame (None)
    for _ in range(2):
        clock[0] += BinanceFuturesScheme.ping_interval
        assert h.scheme.ping_message() is None
    assert len(conn.fetches) == 2
    clock[0] += BinanceFuturesScheme.open_interest_interval
    h.scheme.ping_message()
    assert len(conn.fetches) == 4
    h.scheme.ping_message()
    assert len(conn.fetches) == 4
    out = h.rest("https://fapi.binance.com/fapi/v1/openInterest?symbol=BTCUSDT",
                 {"openInterest": "10659.509", "symbol": "BTCUSDT", "time": 1589437530011})
    assert out == [("open_interest", OpenInterest("binance-futures", "BTC-USDT-PERP", 10659.509, 1589437530011,
                                                  1_700_000_000_000_000))]
    h.close("bye", 1)
    clock[0] += 1000.0
    h.scheme.ping_message()
    assert len(conn.fetches) == 4  # closed: no more polls
    h = Harness(BinanceDeliveryScheme)
    out = h.rest("https://dapi.binance.com/dapi/v1/openInterest?symbol=BTCUSD_200626",
                 {"symbol": "BTCUSD_200626", "pair": "BTCUSD", "openInterest": "15004",
                  "contractType": "CURRENT_QUARTER", "time": 1591261042378})
    assert out == [("open_interest", OpenInterest("binance-delivery", "BTC-USD-20200626", 15004.0, 1591261042378,
                                                  1_700_000_000_000_000))]


# ------------------------------------------------------------------------------------------------
# connections: plan, subscribe, answers


def test_subscribe_one_message_per_connection():
    h = Harness(BinanceSpotScheme, channels=["lob", "trades", "ticker", "candle"])
    plan = ConnectionPlan(BinanceSpotScheme.ws_url, [("depth@100ms", ["BTCUSDT", "ETHBTC"]),
                                                     ("trade", ["BTCUSDT", "ETHBTC"]),
                                                     ("bookTicker", ["BTCUSDT"]), ("kline_1m", ["BTCUSDT"])])
    h.conn.plan = plan
    out = h.open()
    assert h.sent() == [{"method": "SUBSCRIBE", "params": [
        "btcusdt@depth@100ms", "ethbtc@depth@100ms", "btcusdt@trade", "ethbtc@trade", "btcusdt@bookTicker",
        "btcusdt@kline_1m"], "id": 1}]
    assert out[0][1].status == "connected"
    assert json.loads(h.scheme.subscribe_messages("trade", ["BTCUSDT"])[0])["params"] == ["btcusdt@trade"]


def test_plan_routes_usdm_streams_by_path():
    inst = {n: guess_futures(n) for n in ("BTCUSDT", "ETHUSDT")}
    h = Harness(BinanceFuturesScheme, instruments=inst, channels=list(BinanceFuturesScheme.channels))
    h.scheme.symbols = ["BTC-USDT-PERP", "ETH-USDT-PERP"]
    plans = h.scheme.plan(BinanceFuturesScheme.ws_url)
    assert [(p.url, p.subscriptions) for p in plans] == [
        ("wss://fstream.binance.com/public/stream", [("depth@100ms", ["BTCUSDT", "ETHUSDT"]),
                                                     ("bookTicker", ["BTCUSDT", "ETHUSDT"])]),
        ("wss://fstream.binance.com/market/stream", [("aggTrade", ["BTCUSDT", "ETHUSDT"]),
                                                     ("kline_1m", ["BTCUSDT", "ETHUSDT"]),
                                                     ("markPrice@1s", ["BTCUSDT", "ETHUSDT"]),
                                                     ("openInterest", ["BTCUSDT", "ETHUSDT"]),
                                                     ("forceOrder", ["BTCUSDT", "ETHUSDT"])]),
    ]
    # an explicit endpoint (a local simulator) takes everything
    plans = h.scheme.plan("ws://127.0.0.1:9000")
    assert len(plans) == 1 and plans[0].url == "ws://127.0.0.1:9000" and len(plans[0].subscriptions) == 7
    # the cap: 200 streams a connection
    many = {f"X{i:03d}USDT": guess_futures(f"X{i:03d}USDT") for i in range(150)}
    h = Harness(BinanceFuturesScheme, instruments=many, channels=["lob", "ticker"])
    h.scheme.symbols = [i.symbol for i in many.values()]
    plans = h.scheme.plan(BinanceFuturesScheme.ws_url)
    assert [sum(len(n) for _, n in p.subscriptions) for p in plans] == [200, 100]
    # COIN-M: one url
    h = Harness(BinanceDeliveryScheme, instruments={"BTCUSD_PERP": guess_futures("BTCUSD_PERP")})
    h.scheme.symbols = ["BTC-USD-PERP"]
    assert {p.url for p in h.scheme.plan(BinanceDeliveryScheme.ws_url)} == {"wss://dstream.binance.com/stream"}


def test_answers_errors_and_shutdown():
    h = Harness(BinanceSpotScheme)
    out = h.feed('{"result":null,"id":1}')
    assert out == [("status", Status("binance", "", "subscribed", "request 1", 1_700_000_000_000,
                                     1_700_000_000_000_000))]
    assert h.feed('{"result":["btcusdt@trade"],"id":3}') == []
    assert h.feed('{"code": 2, "msg": "Invalid request: unknown variant"}') == []
    assert h.feed('{"error":{"code":2,"msg":"Invalid request"},"id":4}') == []
    assert h.metrics.errors.counts["binance: exchange error"] == 2
    h.feed('{"event":{"e":"serverShutdown","E":1770123456789}}')
    h.feed('{"e":"serverShutdown","E":1770123456789}')
    assert h.conn.reconnects == ["server shutdown", "server shutdown"]
    # a wrapper with its keys the other way round still reads
    out = h.feed('{"data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":5,"p":"1.5","q":"2","T":3,"m":false},'
                 '"stream":"btcusdt@aggTrade"}')
    assert out[0][1][2:6] == (1.5, 2.0, "buy", "5")
    # a raw (/ws) payload
    out = h.feed('{"e":"trade","E":1,"s":"BTCUSDT","t":6,"p":"1.5","q":"2","T":3,"m":true}')
    assert out[0][1][2:6] == (1.5, 2.0, "sell", "6")
    assert h.metrics.errors.total == 2


def test_partial_depth_stream_is_not_a_diff():
    """``<symbol>@depth5`` (futures partial book: same fields as a diff) must not reach the book."""
    h = Harness(BinanceFuturesScheme)
    out = h.feed('{"stream":"btcusdt@depth5@100ms","data":{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT","U":1,'
                 '"u":2,"pu":0,"b":[["1.0","1"]],"a":[]}}')
    assert out == [] and "BTCUSDT" not in h.scheme.sync
    assert h.metrics.errors.counts["binance-futures: unknown stream"] == 1


def test_fast_and_slow_paths_agree():
    """The same message compact (fast path: kind from the stream name's bytes) and spaced or
    reordered (tolerant path) gives the same events."""
    msg = {"stream": "btcusdt@bookTicker", "data": {"e": "bookTicker", "u": 1, "s": "BTCUSDT", "b": "61800.20",
                                                    "B": "2.507", "a": "61800.30", "A": "2.510", "T": 5, "E": 6}}
    h = Harness(BinanceFuturesScheme)
    fast = h.feed(json.dumps(msg, separators=(",", ":")))
    slow = h.feed(json.dumps(msg))
    reordered = h.feed(json.dumps({"data": msg["data"], "stream": msg["stream"]}))
    assert fast == slow == reordered == [("ticker", Ticker("binance-futures", "BTC-USDT-PERP", 61800.2, 2.507, 61800.3,
                                                           2.51, 5, 1_700_000_000_000_000))]
    assert h.metrics.errors.total == 0


# --- the book reads a depth message's level text as the decoded levels ----------------------------
# (the diff-depth and snapshot levels stay JSON text, ``msgspec.Raw``; ``L2Book.check_json_sides_wide``
# reads their numbers in the pass that finds each string's end: the same ticks, refusals and rows as
# ``check_sides`` / ``apply_sides`` on the decoded levels)

_LEVEL_NUMBERS = ["0", "00", "1", "7.6110", "0.00000001", "1563", "0.000", "0001.5", "0.10", "1.", ".5", "5.5.5",
                  "1e5", "-1", "+1", " 1", "", "123456789012345678", "1234567890123456789", "12345678901234567890",
                  "9223372036854775807", "9223372036854775808", "9007199254740991", "9007199254740992",
                  "90071992.54740992", "332200000", "12345678.12345678", "1.2345678912345678"]


def _level_texts(rng):
    for _ in range(1500):
        k = rng.randint(0, 4)
        yield "[" + ",".join('["%s","%s"]' % (rng.choice(_LEVEL_NUMBERS), rng.choice(_LEVEL_NUMBERS))
                             for _ in range(k)) + "]"


def test_level_text_read_as_the_decoded_levels():
    import random

    import msgspec

    from atomfast._book import BID, L2Book, json_levels
    from atomfast.events import Lob

    rng = random.Random(15)
    taken = 0
    for text in _level_texts(rng):
        raw = text.encode()
        for ps, ss in ((0, 0), (2, 3), (4, 0), (8, 8), (18, 18)):
            levels = msgspec.json.decode(raw, type=list[tuple[str, str]])
            ref = L2Book(ps, ss)
            try:
                ref.check_sides(levels, [])
                ok = json_levels(raw)
            except ValueError:
                ok = False
            book = L2Book(ps, ss)
            assert book.check_json_sides_wide(raw, b"[]") is ok, (text, ps, ss)
            if ok:
                taken += 1
                rows, ref_rows = [], []
                flags = book.apply_json_sides(BID, raw, b"[]", rows, Lob, "x", "y", 1, 2)
                assert flags == ref.apply_sides(BID, levels, [], ref_rows, Lob, "x", "y", 1, 2)
                assert rows == ref_rows and book.levels(BID) == ref.levels(BID)
    assert taken > 1000
