"""The test kit (``atomfast.testing``) itself: what the other tests rely on must be able to fail.

- the harness drives the product's ``FrameDriver``: size limit, counters, and a scheme that
  raises fails the test (an "internal error" is never silently counted);
- ``MemorySink`` keeps records, and the Avro keys/values when it is given a framing;
- ``check_event`` refuses what the Avro schema refuses;
- ``RefBook`` keeps the venue's texts, deletes on a zero size, and gives the top and levels;
- a missing capture skips the test, or fails it under CI.
"""
from __future__ import annotations

from decimal import Decimal

import pytest

from atomfast import testing
from atomfast.avro import decode
from atomfast.events import Trade
from atomfast.scheme import Instrument, Scheme
from atomfast.testing import T0, Harness, MemorySink, RefBook, check_event

TRADE = Trade("toy", "BTC-USD", 1.5, 2.0, "buy", "7", 1, 2)


class Toy(Scheme):
    """One trade per frame; b"boom" raises (a scheme must not)."""

    exchange = "toy"
    ws_url = "ws://toy.example"
    channels = {"trades": "trades"}

    def subscribe_messages(self, channel, natives):
        return [f"subscribe {channel}"]

    def on_frame(self, conn, data, recv_ns):
        if bytes(data) == b"boom":
            raise ZeroDivisionError("boom")
        self.emit("trades", TRADE._replace(atom_timestamp=recv_ns // 1000))


def test_harness_drives_the_frame_driver():
    h = Harness(Toy, {"BTC/USD": Instrument("BTC/USD", "BTC-USD", "spot", "BTC", "USD")})
    assert h.feed(b"{}") == [("trades", TRADE._replace(atom_timestamp=T0 // 1000))]
    assert h.feed({"a": 1}, 3000) == [("trades", TRADE._replace(atom_timestamp=3))]
    assert (h.metrics.frames, h.metrics.bytes, dict(h.metrics.events)) == (2, 9, {"trades": 2})
    h.max_frame_bytes = 4
    assert h.feed(b"12345") == []  # over the limit: refused by the driver, the connection reconnected
    assert h.reports == [("toy: frame too large", "5 bytes > 4 (max_frame_bytes)", b"12345")]
    assert h.conn.reconnects == ["frame too large"] and h.metrics.frames == 3
    h.open()
    assert h.sent() == [] and h.records[-1][1].status == "connected"


def test_a_scheme_that_raises_fails_the_test_unless_allowed():
    h = Harness(Toy)
    with pytest.raises(AssertionError, match="the scheme raised: ZeroDivisionError: boom") as err:
        h.feed(b"boom")
    assert isinstance(err.value.__context__, ZeroDivisionError)  # its traceback is shown
    lenient = Harness(Toy, strict=False)
    assert lenient.feed(b"boom") == []
    assert lenient.reports == [("internal error", "ZeroDivisionError: boom", b"boom")]
    assert lenient.feed(b"{}") != []  # and the driver goes on


def test_memory_sink_records_and_encoded_values():
    plain = Harness(Toy)
    plain.feed(b"{}")
    assert plain.sink.out == {} and plain.sink.counts() == {"trades": 1}
    framed = Harness(Toy, sink=MemorySink("single_object", writes=True))
    framed.feed(b"{}")
    ((key, value),) = framed.sink.out["trades"]
    assert key == b"toy:BTC-USD" and decode(value) == ("trades", TRADE._replace(atom_timestamp=T0 // 1000)._asdict())
    assert framed.sink.writes == [("trades", [framed.records[0][1]], [key], [value])]
    assert framed.sink.as_dicts()["trades"][0]["trade_id"] == "7"


@pytest.mark.parametrize("bad", [
    TRADE._replace(price=float("nan")),
    TRADE._replace(size=1),  # an int where a double is
    TRADE._replace(event_timestamp=2**63),
    TRADE._replace(event_timestamp=True),
    TRADE._replace(symbol=None),
    TRADE[:-1],
])
def test_check_event_refuses_what_the_schema_refuses(bad):
    check_event("trades", TRADE)
    with pytest.raises(AssertionError):
        check_event("trades", bad)


def test_check_event_refuses_a_lone_surrogate():
    with pytest.raises(UnicodeEncodeError):
        check_event("trades", TRADE._replace(symbol="\ud800"))


def test_ref_book():
    book = RefBook()
    assert book.top() == (None, None, None, None)
    assert [book.set("b", "100.10", "1.50"), book.set("b", "100.20", "2"), book.set("a", "101.0", "3")] == [1, 1, 1]
    assert book.top() == (Decimal("100.20"), Decimal(2), Decimal("101.0"), Decimal(3))
    assert book.set("b", "100.30", "0") == 0  # the delete of an absent level: no event
    assert book.set("b", "100.20", "0") == 1 and book.top()[:2] == (Decimal("100.10"), Decimal("1.50"))
    assert book.ordered("b") == [("100.10", "1.50")] and book.levels("a") == [(Decimal("101.0"), Decimal(3))]
    assert book.load("a", [["102.0", "1"], ["103.0", "0"]]) == 2 and len(book.sides["a"]) == 2
    assert book.truncate(1) == 1 and book.ordered("a") == [("101.0", "3")]
    rows = RefBook("Buy", "Sell", empty=Decimal(0))
    rows.apply_row("partial", {"id": 1, "side": "Buy", "price": "5", "size": "10"})
    rows.apply_row("update", {"id": 1, "size": "4"})
    assert rows.top() == (Decimal(5), Decimal(4), Decimal(0), Decimal(0))
    assert rows.apply_row("delete", {"id": 1}) == 1 and rows.rows == {} and rows.levels("Buy") == []


def test_a_missing_capture_fails_under_ci_and_skips_elsewhere(monkeypatch, tmp_path):
    """Under CI (CI=true) a capture or ../shared/fixtures that is absent fails the test that needs
    it, with the path it looked for; elsewhere the test skips."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cryptofeed/NOPE.ws.1.0 is absent.*under CI"):
        testing.fixture_path("cryptofeed/NOPE.ws.1.0")
    monkeypatch.setattr(testing, "FIXTURES", tmp_path / "absent")
    with pytest.raises(pytest.fail.Exception, match=f"{tmp_path / 'absent'} is absent.*under CI"):
        testing.fixtures_dir()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="absent"):
        testing.fixtures_dir()
    with pytest.raises(pytest.skip.Exception, match="NOPE.ws.1.0 is absent"):
        testing.fixture_path("cryptofeed/NOPE.ws.1.0")


def test_every_exchange_names_default_symbols_its_recorded_listing_has():
    """``atomfast run --exchange X`` works with no --symbols and no config.ini: every exchange's
    default scheme names default markets, and the capture's own instrument listing lists them."""
    from atomfast.exchanges import schemes
    from atomfast.testing import capture_instruments

    listings = {"kraken": "cryptofeed/KRAKEN.ws.50.0", "kraken-futures": "cryptofeed/KRAKEN_FUTURES.ws.1.0",
                "binance": "cryptofeed/BINANCE.ws.1.0", "binance-futures": "cryptofeed/BINANCE_FUTURES.ws.1.0",
                "binance-delivery": "cryptofeed/BINANCE_DELIVERY.ws.1.0", "bitfinex": "cryptofeed/BITFINEX.ws.11.0",
                "bitstamp": "cryptofeed/BITSTAMP.ws.1.0", "bitmex": "cryptofeed/BITMEX.ws.1.0",
                "coinbase": "cryptofeed/COINBASE.ws.28.0", "deribit": "cryptofeed/DERIBIT.ws.1.0",
                "poloniex": "cryptofeed/POLONIEX.ws.1.0",
                "poloniex-futures": "repo:tests/data/poloniex/POLONIEX_FUTURES.ws.1.0",
                "binance-options": "repo:tests/data/binance_options/BINANCE_OPTIONS.ws.1.0",
                "fmfw": "cryptofeed/FMFW.ws.1.0", "hitbtc": "repo:tests/data/hitbtc/HITBTC_V3.ws.1.0",
                "bybit-linear": "repo:tests/data/bybit/BYBIT_LINEAR.ws.1.0", "dydx": "repo:tests/data/dydx/DYDX.ws.1.0",
                "phemex": "cryptofeed/PHEMEX.ws.1.0", "bitflyer": "cryptofeed/BITFLYER.ws.1.0",
                "kucoin": "cryptofeed/KUCOIN.ws.1.0", "gemini": "cryptofeed/GEMINI.ws.1.0", "okx": "cryptofeed/OKX.ws.1.0", "htx": "cryptofeed/HUOBI.ws.44.0",
                "gateio": "repo:tests/data/gateio/GATEIO.ws.1.0",
                "gateio-futures": "repo:tests/data/gateio/GATEIO_FUTURES.ws.1.0",
                "bitget": "repo:tests/data/bitget/BITGET.ws.1.0",
                "bitget-futures": "repo:tests/data/bitget/BITGET_FUTURES.ws.1.0",
                "cryptocom": "repo:tests/data/cryptocom/CRYPTOCOM.ws.1.0",
                "hyperliquid": "repo:tests/data/hyperliquid/HYPERLIQUID.ws.1.0", "phemex-futures": "repo:tests/data/phemex/PHEMEX_FUTURES.ws.1.0"}
    #: no recorded listing: the defaults are the names the venue's own rules give its markets
    guessed = {"aster": ("BTCUSDT", "ETHUSDT"), "aster-spot": ("BTCUSDT", "ETHUSDT"), "bybit": ("BTCUSDT",),
               "bybit-inverse": ("BTCUSD",), "bybit-options": (), "htx-futures": ("BTC-USDT", "ETH-USDT"),
               "htx-coin-swaps": ("BTC-USD", "ETH-USD"), "kucoin-futures": ("XBTUSDTM", "ETHUSDTM"),
               "hyperliquid-spot": ("PURR/USDC",)}
    table = schemes()
    assert set(table) == set(listings) | set(guessed)
    for exchange, natives in guessed.items():
        scheme_cls = table[exchange][0]
        harness = testing.Harness(scheme_cls)
        assert scheme_cls.default_symbols == tuple(harness.scheme.guess_instrument(n).symbol for n in natives)
    for exchange, capture in listings.items():
        scheme_cls = table[exchange][0]
        listed = {i.symbol for i in capture_instruments(capture, scheme_cls).values()}
        assert scheme_cls.default_symbols, exchange
        assert set(scheme_cls.default_symbols) <= listed, (exchange, scheme_cls.default_symbols)
