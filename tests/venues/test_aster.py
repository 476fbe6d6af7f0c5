"""Aster (``aster`` perpetuals, ``aster-spot``): the Binance schemes on Aster's hosts.

No recording of Aster exists here: the messages below are the examples of Aster's own API docs
(github.com/asterdex/api-docs, ``aster-finance-futures-api.md``: "Aggregate Trade Streams",
"Mark Price Stream", "Kline/Candlestick Streams", "Liquidation Order Streams", "Diff. Book Depth
Streams", "Order Book"), which are Binance's shapes field for field. The book sync is Binance's
(one owner): its fault tests run through the ``aster`` scheme too, on a real USD-M session
(``tests/venues/test_binance_sync.py``, case ``aster``).
"""
from __future__ import annotations

import json

from atomfast.events import Candle, FundingRate, Liquidation, Lob, Spread, Status, Trade
from atomfast.exchanges import scheme_for, schemes
from atomfast.exchanges.aster import AsterScheme, AsterSpotScheme
from atomfast.exchanges.binance import BinanceFuturesScheme, BinanceSpotScheme
from atomfast.exchanges.binance.parse import guess_futures
from atomfast.kit.booksync import Chained, Contiguous
from atomfast.testing import T0, Harness

ATOM_US = T0 // 1000


def harness(**kw) -> Harness:
    return Harness(AsterScheme, instruments={"BTCUSDT": guess_futures("BTCUSDT")}, **kw)


def test_registry_hosts_and_rules():
    assert schemes()["aster"] == [AsterScheme] and schemes()["aster-spot"] == [AsterSpotScheme]
    assert scheme_for("aster") is AsterScheme
    assert issubclass(AsterScheme, BinanceFuturesScheme) and issubclass(AsterSpotScheme, BinanceSpotScheme)
    assert (AsterScheme.ws_url, AsterScheme.rest_url) == ("wss://fstream.asterdex.com/stream",
                                                          "https://fapi.asterdex.com")
    assert AsterScheme.instruments_paths == ("/fapi/v1/exchangeInfo",)
    assert AsterScheme.channel_urls == {}  # no route split: one URL carries every stream
    assert (AsterSpotScheme.ws_url, AsterSpotScheme.rest_url) == ("wss://sstream.asterdex.com/stream",
                                                                  "https://sapi.asterdex.com")
    h = harness()
    assert isinstance(h.scheme.book_sync.rule, Chained)
    assert isinstance(Harness(AsterSpotScheme).scheme.book_sync.rule, Contiguous)
    assert h.scheme.snapshot_url("BTCUSDT") == "https://fapi.asterdex.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
    assert Harness(AsterSpotScheme).scheme.snapshot_url("BTCUSDT") == (
        "https://sapi.asterdex.com/api/v1/depth?symbol=BTCUSDT&limit=1000")


def test_plan_one_connection_for_every_stream():
    h = harness(channels=list(AsterScheme.channels))
    h.scheme.symbols = ["BTC-USDT-PERP"]
    plans = h.scheme.plan(AsterScheme.ws_url)
    assert [(p.url, [c for c, _ in p.subscriptions]) for p in plans] == [
        ("wss://fstream.asterdex.com/stream", ["depth@100ms", "aggTrade", "bookTicker", "kline_1m", "markPrice@1s",
                                               "openInterest", "forceOrder"])]


def test_documented_stream_examples():
    h = harness()
    out = h.feed({"stream": "btcusdt@aggTrade", "data": {
        "e": "aggTrade", "E": 123456789, "s": "BTCUSDT", "a": 5933014, "p": "0.001", "q": "100", "f": 100,
        "l": 105, "T": 123456785, "m": True}})
    # m: the buyer is the maker, so the taker sold
    assert out == [("trades", Trade("aster", "BTC-USDT-PERP", 0.001, 100.0, "sell", "5933014", 123456785, ATOM_US))]
    out = h.feed({"stream": "btcusdt@markPrice@1s", "data": {
        "e": "markPriceUpdate", "E": 1562305380000, "s": "BTCUSDT", "p": "11794.15000000", "i": "11784.62659091",
        "P": "11784.25641265", "r": "0.00038167", "T": 1562306400000}})
    assert out == [("funding_rate", FundingRate("aster", "BTC-USDT-PERP", 11794.15, 0.00038167, 1562306400000,
                                                0.00038167, 1562305380000, ATOM_US))]
    out = h.feed({"stream": "btcusdt@kline_1m", "data": {
        "e": "kline", "E": 123456789, "s": "BTCUSDT", "k": {
            "t": 123400000, "T": 123460000, "s": "BTCUSDT", "i": "1m", "f": 100, "L": 200, "o": "0.0010",
            "c": "0.0020", "h": "0.0025", "l": "0.0015", "v": "1000", "n": 100, "x": False, "q": "1.0000",
            "V": "500", "Q": "0.500", "B": "123456"}}})
    assert out == [("candle", Candle("aster", "BTC-USDT-PERP", 123400000, 123460001, "1m", 100, False, 0.001, 0.0025,
                                     0.0015, 0.002, 1000.0, 123456789, ATOM_US))]
    out = h.feed({"stream": "btcusdt@forceOrder", "data": {
        "e": "forceOrder", "E": 1568014460893, "o": {
            "s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "9910", "ap": "9910",
            "X": "FILLED", "l": "0.014", "z": "0.014", "T": 1568014460893}}})
    assert out == [("liquidations", Liquidation("aster", "BTC-USDT-PERP", "sell", 9910.0, 0.014, 1568014460893,
                                                ATOM_US, "", "FILLED", 0.014, 9910.0))]
    assert h.metrics.errors.total == 0


def test_documented_book_snapshot_and_diff():
    """The docs' "Order Book" answer (lastUpdateId 1027024) and "Diff. Book Depth Streams" event
    (U 157, u 160, pu 149): the event is older than the snapshot, so it is dropped (rule 4 of "How
    to manage a local order book correctly": drop any event where u < lastUpdateId) and the book
    is the snapshot."""
    h = harness(channels=["lob"])
    diff = {"stream": "btcusdt@depth@100ms", "data": {
        "e": "depthUpdate", "E": 123456789, "T": 123456788, "s": "BTCUSDT", "U": 157, "u": 160, "pu": 149,
        "b": [["0.0024", "10"]], "a": [["0.0026", "100"]]}}
    assert h.feed(diff) == []  # buffered until the snapshot
    snapshot = {"lastUpdateId": 1027024, "E": 1589436922972, "T": 1589436922959,
                "bids": [["4.00000000", "431.00000000"]], "asks": [["4.00000200", "12.00000000"]]}
    out = h.rest("https://fapi.asterdex.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000", json.dumps(snapshot))
    assert out == [
        ("status", Status("aster", "BTC-USDT-PERP", "snapshot", "", 1589436922959, ATOM_US)),
        ("lob", Lob("aster", "BTC-USDT-PERP", 4.0, 431.0, "buy", 1589436922959, ATOM_US)),
        ("lob", Lob("aster", "BTC-USDT-PERP", 4.000002, 12.0, "sell", 1589436922959, ATOM_US)),
        ("spread", Spread("aster", "BTC-USDT-PERP", 4.0, 431.0, 4.000002, 12.0, 1589436922959, ATOM_US)),
    ]
    assert h.scheme.sync["BTCUSDT"].live and h.scheme.sync["BTCUSDT"].last == 1027024
    assert h.metrics.gaps == 0 and h.metrics.errors.total == 0
