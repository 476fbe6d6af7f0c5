"""What every venue's scheme shares (atomfast.scheme): what a frame with bytes that are not UTF-8
becomes; the connection plan, level-3 books and several instrument listings (on a toy scheme).

A JSON string (or object key) holding bytes that are not UTF-8 is bad input: whichever exception
the decoder raises for it (msgspec < 0.23 a UnicodeDecodeError, 0.23 a DecodeError), such a frame
of a venue's main message types is counted and logged as bad input (its kind and the decoder's
message), nothing of it is published, the scheme does not raise (the driver would count an
"internal error") and the frames after it are handled as usual.
"""
from __future__ import annotations

import msgspec
import pytest

from atomfast.events import Status, Trade, TradeL3
from atomfast.exchanges import schemes
from atomfast.exchanges.coinbase import CoinbaseScheme
from atomfast.exchanges.kraken import KrakenSpotV1Scheme
from atomfast.metrics import Metrics
from atomfast.replay import ReplayConnection
from atomfast.scheme import LOB_L3, ConnectionPlan, Instrument, Scheme
from atomfast.testing import T0, Harness, fixture_path

BAD = b"\xff"

#: scheme class -> frames of its main message types, each with a byte that is not UTF-8 inside
#: a string (``BAD`` marks where)
FRAMES: dict[str, list[bytes]] = {
    "KrakenSpotScheme": [
        b'{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy' + BAD + b'","price":1.0,'
        b'"qty":1.0,"ord_type":"market","trade_id":1,"timestamp":"2023-09-25T07:49:37.708706Z"}]}',
        b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD' + BAD + b'","bids":[],"asks":[],'
        b'"checksum":1,"timestamp":"2023-09-25T07:49:37.708706Z"}]}',
    ],
    "KrakenSpotV1Scheme": [
        b'[3648,{"a":[["0.00757600","2.27388316","1618678133.890455"]],"c":"978792387"},"book-1000","KSM/XBT'
        + BAD + b'"]',
        b'{"event":"subscriptionStatus","status":"subscribed","pair":"XBT/USD' + BAD + b'","channelID":1,'
        b'"channelName":"trade","subscription":{"name":"trade"}}',
    ],
    "KrakenFuturesScheme": [
        b'{"feed":"trade","product_id":"PI_XBTUSD' + BAD + b'","uid":"x","side":"buy","type":"fill","seq":1,'
        b'"time":1612269825817,"qty":1.0,"price":34893.0}',
        b'{"feed":"book","product_id":"PI_XBTUSD","side":"buy' + BAD + b'","seq":2,"price":1.0,"qty":1.0,'
        b'"timestamp":1612269825817}',
    ],
    "BinanceSpotScheme": [
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT' + BAD + b'","t":1,"p":"1.0","q":"1.0",'
        b'"T":1,"m":true}}',
        b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,'
        b'"b":[["1.0' + BAD + b'","1.0"]],"a":[]}}',
    ],
    "CoinbaseScheme": [
        b'{"type":"match","trade_id":1,"maker_order_id":"a","taker_order_id":"b","side":"sell","size":"0.1",'
        b'"price":"1.0","product_id":"BTC-USD' + BAD + b'","sequence":1,"time":"2021-04-17T16:43:35.964718Z"}',
        b'{"type":"l2update","product_id":"BTC-USD","changes":[["buy","1.0' + BAD + b'","1.0"]],'
        b'"time":"2021-04-17T16:43:35.964718Z"}',
    ],
    "BitstampScheme": [
        b'{"data":{"timestamp":"1","microtimestamp":"1641343691580748","bids":[],"asks":[["0.88680' + BAD
        + b'","0.00000"]]},"channel":"diff_order_book_usdteur","event":"data"}',
        b'{"data":{"id":1,"amount":1.0,"amount_str":"1.0","price":1.0,"price_str":"1.0","type":0,'
        b'"microtimestamp":"1641343691580748"},"channel":"live_trades_btcusd' + BAD + b'","event":"trade"}',
    ],
    "BitfinexScheme": [
        b'[232961,"te' + BAD + b'",[1,1618675147631,0.5,1.0],5]',
        b'{"event":"info' + BAD + b'","version":2}',
    ],
    "DeribitScheme": [
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms' + BAD
        + b'","data":[]}}',
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms","data":'
        b'{"type":"change' + BAD + b'","timestamp":1,"instrument_name":"BTC-PERPETUAL","change_id":2,'
        b'"prev_change_id":1,"bids":[],"asks":[]}}}',
    ],
    "BitmexScheme": [
        b'{"table":"trade","action":"insert","data":[{"timestamp":"2021-07-22T22:36:09.757Z","symbol":"XBTUSD'
        + BAD + b'","side":"Buy","size":1,"price":1.0,"trdMatchID":"x"}]}',
        b'{"table":"orderBookL2","action":"update' + BAD + b'","data":[{"symbol":"XBTUSD","id":1,"side":"Buy",'
        b'"size":1}]}',
    ],
}
FRAMES["BinanceFuturesScheme"] = FRAMES["BinanceDeliveryScheme"] = FRAMES["BinanceSpotScheme"]
# the second and third waves: a book and a trade message each, in the venue's recorded or
# documented shape, with the bad byte in the market's name
FRAMES.update({
    "AsterScheme": FRAMES["BinanceSpotScheme"],
    "AsterSpotScheme": FRAMES["BinanceSpotScheme"],
    "BinanceOptionsScheme": [
        b'{"stream":"btc-251123-126000-c@depth@100ms","data":{"e":"depthUpdate","E":1762866729459,"T":1762866729358,'
        b'"s":"BTC-251123-126000-C' + BAD + b'","U":466,"u":466,"pu":465,"b":[],"a":[["1100","0"]]}}',
    ],
    "BitflyerScheme": [
        b'{"jsonrpc":"2.0","method":"channelMessage","params":{"channel":"lightning_board_XRP_JPY' + BAD
        + b'","message":{"mid_price":96.05,"bids":[],"asks":[{"price":96.2,"size":0.0}]}}}',
    ],
    "DydxScheme": [
        b'{"type":"channel_data","connection_id":"7ad53844-1f2c-4d86-83d1-42f6562844f3","message_id":1,'
        b'"id":"ETH-USD' + BAD + b'","channel":"v4_trades","version":"2.1.0","contents":{"trades":[]}}',
    ],
    "FmfwScheme": [
        b'{"ch":"orderbook/full","update":{"EOSUSDT' + BAD + b'":{"t":1633806859666,"s":1876061,"a":[],'
        b'"b":[["3.64761","0"]]}}}',
    ],
    "GeminiScheme": [
        b'{"e":"depthUpdate","E":1700000000000,"s":"btcusd' + BAD + b'","U":2,"u":2,"b":[["100.0","1"]],"a":[]}',
    ],
    "GeminiV2Scheme": [b'{"type":"l2_updates","symbol":"GRTUSD' + BAD + b'","changes":[["buy","0.609","0"]]}'],
    "KucoinScheme": [
        b'{"data":{"sequenceStart":1613277183875,"symbol":"BCHSV-USDT' + BAD + b'","changes":{"asks":[["244.351",'
        b'"150","1613277183875"]],"bids":[]},"sequenceEnd":1613277183875},"subject":"trade.l2update",'
        b'"topic":"/market/level2:BCHSV-USDT' + BAD + b'","type":"message"}',
    ],
    "OkxScheme": [
        b'{"arg":{"channel":"trades","instId":"BTC-USD' + BAD + b'"},"data":[{"instId":"BTC-USD' + BAD + b'",'
        b'"tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3"}]}',
    ],
    "PhemexScheme": [
        b'{"sequence":4899656369,"symbol":"XTZUSD' + BAD + b'","trades":[[1625342248626993976,"Sell",30070,38]],'
        b'"type":"incremental"}',
    ],
    "PhemexFuturesScheme": [
        b'{"sequence":77702250,"symbol":"BTCUSDT' + BAD + b'","trades_p":[[1666856076819029800,"Sell","20700.3",'
        b'"0.649"]],"type":"incremental"}',
    ],
    "PoloniexScheme": [
        b'{"channel":"book_lv2","data":[{"symbol":"BCH_USDT' + BAD + b'","createTime":1661123525446,"asks":[],'
        b'"bids":[["119.62","1"]],"lastId":1090009,"id":1090010,"ts":1661123525457}],"action":"update"}',
    ],
    "PoloniexFuturesScheme": [
        b'{"channel":"book_lv2","data":[{"asks":[],"bids":[["86581.72","545"]],"lid":6284171742,"id":6284171757,'
        b'"ts":1790134293834,"s":"BTC_USDT_PERP' + BAD + b'","cT":1790134293821}],"action":"update"}',
    ],
})
FRAMES.update({
    "HtxScheme": [b'{"ch":"market.btcusdt' + BAD + b'.trade.detail","ts":1630994963175,"tick":{"id":137005445109,'
                  b'"ts":1630994963173,"data":[]}}'],
    "HtxFuturesScheme": [b'{"ch":"market.BTC-USDT' + BAD + b'.trade.detail","ts":1630994963175,"tick":{"id":1,'
                         b'"ts":1630994963173,"data":[]}}'],
    "GateioScheme": [b'{"time":1606292218,"time_ms":1606292218231,"channel":"spot.trades","event":"update",'
                     b'"result":{"id":309143071,"create_time":1606292218,"create_time_ms":"1606292218213.4578",'
                     b'"side":"sell","currency_pair":"GT_USDT' + BAD + b'","amount":"16.4700000000",'
                     b'"price":"0.4705000000"}}'],
    "GateioFuturesScheme": [b'{"channel":"futures.trades","event":"update","time":1541503698,"time_ms":1541503698123,'
                            b'"result":[{"size":-108,"id":27753479,"create_time":1545136464,'
                            b'"create_time_ms":1545136464123,"price":"96.4","contract":"BTC_USDT' + BAD + b'"}]}'],
    "KucoinFuturesScheme": [b'{"type":"message","topic":"/contractMarket/level2:XBTUSDTM' + BAD + b'",'
                            b'"subject":"level2","data":{"sequence":18,"change":"5000.0,sell,83",'
                            b'"timestamp":1551770400000}}'],
})
FRAMES.update({
    "BitgetScheme": [b'{"action":"update","arg":{"instType":"SPOT","channel":"books","instId":"BTCUSDT' + BAD + b'"},'
                     b'"data":[{"asks":[["26274.9","0"]],"bids":[],"checksum":-479681376,"seq":124,'
                     b'"ts":"1695710946294"}],"ts":1695710946294}'],
    "BitgetFuturesScheme": [b'{"action":"update","arg":{"instType":"USDT-FUTURES","channel":"books","instId":"BTCUSDT'
                            + BAD + b'"},"data":[{"asks":[["26274.9","0"]],"bids":[],"checksum":-479681376,"seq":124,'
                            b'"ts":"1695710946294"}],"ts":1695710946294}'],
    "CryptocomScheme": [b'{"id":-1,"method":"subscribe","code":0,"result":{"instrument_name":"BTCUSD-PERP' + BAD
                        + b'","subscription":"trade.BTCUSD-PERP","channel":"trade","data":[{"d":"2030407068",'
                        b'"t":1613581138462,"p":"51327.500000","q":"0.000100","s":"SELL","i":"BTCUSD-PERP"}]}}'],
    "HyperliquidScheme": [b'{"channel":"trades","data":[{"coin":"BTC' + BAD + b'","side":"B","px":"90058.0",'
                          b'"sz":"0.00012","hash":"0x0a","time":1767878803102,"tid":907188554740561,'
                          b'"users":["0xb0","0x13"]}]}'],
})
FRAMES["HyperliquidSpotScheme"] = FRAMES["HyperliquidScheme"]
FRAMES["HtxCoinSwapScheme"] = FRAMES["HtxFuturesScheme"]
FRAMES["HitbtcScheme"] = FRAMES["FmfwScheme"]
FRAMES["BybitSpotScheme"] = FRAMES["BybitLinearScheme"] = FRAMES["BybitInverseScheme"] = [
    b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1687940967466,"data":{"s":"BTCUSDT' + BAD + b'","b":[],'
    b'"a":[["30248.70","0"]],"u":177400507,"seq":66544703342},"cts":1687940967464}',
]
FRAMES["BybitOptionsScheme"] = [
    b'{"topic":"orderbook.25.BTC-26DEC26-100000-C","type":"delta","ts":1687940967466,"data":{'
    b'"s":"BTC-26DEC26-100000-C' + BAD + b'","b":[],"a":[["1000","0"]],"u":2,"seq":3},"cts":1687940967464}',
]
#: well-formed frames fed first (a subscription the bad frames then belong to)
SETUP: dict[str, list[bytes]] = {
    "BitfinexScheme": [b'{"event":"subscribed","channel":"trades","chanId":232961,"symbol":"tBTCUSD","pair":"BTCUSD"}'],
}


def all_schemes() -> list:
    return [cls for lst in schemes().values() for cls in lst]


def decoder_message(frame: bytes) -> str:
    """What the JSON decoder says of ``frame`` (the detail a scheme reports for it)."""
    with pytest.raises(Exception) as err:
        msgspec.json.decode(frame)
    return str(err.value)


COINBASE_MATCH = (b'{"type":"match","trade_id":1,"maker_order_id":"a","taker_order_id":"b","side":"sell","size":"0.1",'
                  b'"price":"1.0","product_id":"BTC-USD","sequence":1,"time":"2021-04-17T16:43:35.964718Z"}')
KRAKEN_TRADE = b'[7,[["5541.20000","0.15850568","1534614057.321597","s","l",""]],"trade","XBT/USD"]'
KRAKEN_SUBSCRIBED = (b'{"event":"subscriptionStatus","status":"subscribed","pair":"XBT/USD","channelID":7,'
                     b'"channelName":"trade","subscription":{"name":"trade"}}')


def test_invalid_utf8_is_one_counted_logged_bad_input_and_the_feed_goes_on(caplog):
    """Coinbase: a match whose product id holds the byte 0xff, then the same match intact. The
    first is one bad input ("coinbase: malformed JSON", the decoder's message, the frame as its
    sample), logged once, nothing published; the second is the trade, as if nothing happened."""
    caplog.set_level("WARNING", logger="atomfast")
    bad = COINBASE_MATCH.replace(b'"BTC-USD"', b'"BTC-USD' + BAD + b'"')
    h = Harness(CoinbaseScheme)
    assert h.feed(bad) == []
    assert h.reports == [("coinbase: malformed JSON", decoder_message(bad), bad)]
    assert dict(h.metrics.errors.counts) == {"coinbase: malformed JSON": 1}
    assert [r.getMessage() for r in caplog.records] == [
        f"coinbase: malformed JSON (1 so far): {decoder_message(bad)}; sample: {bad.decode('utf-8', 'replace')}"]
    assert h.feed(COINBASE_MATCH) == [
        ("trades", Trade("coinbase", "BTC-USD", 1.0, 0.1, "buy", "1", 1618677815964, T0 // 1000)),
        ("trades_l3", TradeL3("coinbase", "BTC-USD", 1.0, 0.1, "buy", "1", "a", "b", 1618677815964, T0 // 1000))]
    m = h.metrics
    assert (m.frames, m.errors.total, m.gaps, m.resyncs, dict(m.events)) == (2, 1, 0, 0, {"trades": 1, "trades_l3": 1})


def test_invalid_utf8_in_a_kraken_v1_trade_is_bad_input_and_the_channel_goes_on():
    bad = KRAKEN_TRADE.replace(b'"s","l"', b'"s' + BAD + b'","l"')
    h = Harness(KrakenSpotV1Scheme)
    assert [r.status for t, r in h.feed(KRAKEN_SUBSCRIBED)] == ["subscribed"]
    assert h.feed(bad) == []
    assert h.reports == [("kraken: malformed trade message", decoder_message(bad), bad)]
    assert h.feed(KRAKEN_TRADE) == [("trades", Trade("kraken", "BTC-USD", 5541.2, 0.15850568, "sell",
                                                     "1534614057321597-0", 1534614057321, T0 // 1000))]
    assert (h.metrics.frames, h.metrics.errors.total, dict(h.metrics.events)) == (3, 1, {"status": 1, "trades": 1})


def test_every_scheme_has_frames_here():
    assert sorted(cls.__name__ for cls in all_schemes()) == sorted(FRAMES)


@pytest.mark.parametrize("scheme_cls", all_schemes(), ids=lambda c: c.__name__)
def test_invalid_utf8_inside_a_string_is_bad_input(scheme_cls):
    """Every scheme, its main message types: one bad input per frame, nothing published, no
    "internal error" (the harness fails the test if the scheme raises)."""
    h = Harness(scheme_cls)
    h.open()
    for frame in SETUP.get(scheme_cls.__name__, ()):
        h.feed(frame)
    assert h.metrics.errors.total == 0
    for i, frame in enumerate(FRAMES[scheme_cls.__name__]):
        assert BAD in frame
        before = h.metrics.errors.total
        h.feed(frame, T0 + i)
        assert h.metrics.errors.total == before + 1, frame
        assert h.reports[-1][2] == frame  # the frame is the sample logged
    assert "internal error" not in h.metrics.errors.counts
    assert not any(t in ("lob", "trades", "ticker", "lob_l3", "trades_l3") for t, _ in h.records)


# ------------------------------------------------------------------------------------------------
# the connection plan, level-3 books, several instrument listings: on a toy scheme


class Toy(Scheme):
    exchange = "toy"
    ws_url = "wss://toy.example/ws"
    rest_url = "https://toy.example"
    instruments_path = "/spot"
    channels = {"lob": "book", "lob_l3": "orders", "trades": "deals", "trades_l3": "deals",
                "funding_rate": "status", "open_interest": "status"}
    default_channels = ("lob", "trades")
    symbols_per_message = 2

    def subscribe_messages(self, channel, natives):
        return [f"{channel}:{','.join(natives)}"]

    def plan_natives(self, channel, natives):
        return [n for n in natives if n.endswith("-PERP")] if channel == "status" else natives


TOY = {n: Instrument(n, n, "perp" if n.endswith("-PERP") else "spot", n[:3], "USD")
       for n in ("BTC-USD", "ETH-USD", "SOL-USD", "BTC-PERP")}


def toy(channels=(), symbols=tuple(TOY), cls=Toy):
    events: list = []
    scheme = cls(lambda t, r: events.append((t, r)), Metrics(), TOY, symbols, channels)
    return scheme, events


def test_plan_subscribes_a_shared_channel_once_and_only_where_it_exists():
    scheme, _ = toy(("lob", "trades", "trades_l3", "funding_rate", "open_interest"))
    (plan,) = scheme.plan()
    assert plan == ConnectionPlan(Toy.ws_url, [("book", list(TOY)), ("deals", list(TOY)), ("status", ["BTC-PERP"])])
    assert scheme.subscribe_plan(plan) == ["book:BTC-USD,ETH-USD", "book:SOL-USD,BTC-PERP", "deals:BTC-USD,ETH-USD",
                                           "deals:SOL-USD,BTC-PERP", "status:BTC-PERP"]


def test_plan_caps_connections_and_routes_channels_by_url():
    class Capped(Toy):
        subscriptions_per_connection = 3
        channel_urls = {"deal": "wss://toy.example/deals"}

    scheme, _ = toy(("lob", "trades", "trades_l3"), cls=Capped)
    assert scheme.plan() == [
        ConnectionPlan(Toy.ws_url, [("book", ["BTC-USD", "ETH-USD", "SOL-USD"])]),
        ConnectionPlan(Toy.ws_url, [("book", ["BTC-PERP"])]),
        ConnectionPlan("wss://toy.example/deals", [("deals", ["BTC-USD", "ETH-USD", "SOL-USD"])]),
        ConnectionPlan("wss://toy.example/deals", [("deals", ["BTC-PERP"])]),
    ]
    assert scheme.plan(Toy.ws_url + "/") == scheme.plan()
    local = "ws://127.0.0.1:9"  # a simulator: everything on it, within the cap
    assert scheme.plan(local) == [
        ConnectionPlan(local, [("book", ["BTC-USD", "ETH-USD", "SOL-USD"])]),
        ConnectionPlan(local, [("book", ["BTC-PERP"]), ("deals", ["BTC-USD", "ETH-USD"])]),
        ConnectionPlan(local, [("deals", ["SOL-USD", "BTC-PERP"])]),
    ]


def test_level3_books_snapshot_resync_and_close():
    scheme, events = toy(("lob_l3",))
    conn = ReplayConnection(1, Toy.ws_url)
    conn.plan = ConnectionPlan(Toy.ws_url, [("orders", ["BTC-USD"])])
    book = scheme.begin_snapshot_l3("BTC-USD", 2_000_000_000, 1500)
    assert book is scheme.l3books["BTC-USD"] and "BTC-USD" not in scheme.unsynced_l3
    assert events.pop() == ("status", Status("toy", "BTC-USD", "snapshot", "lob_l3", 1500, 2_000_000))
    book.add("a", 0, "1.5", "2")
    scheme.resync(conn, "BTC-USD", "gap", 3_000_000_000, LOB_L3)
    scheme.resync(conn, "BTC-USD", "gap again", 3_000_000_000, LOB_L3)  # already reloading: once
    assert scheme.metrics.resyncs == 1 and len(book) == 0 and "BTC-USD" in scheme.unsynced_l3
    assert scheme.unsynced == set()  # the level-2 book is another matter
    assert events == [("status", Status("toy", "BTC-USD", "resync", "lob_l3: gap", 3000, 3_000_000))]
    assert conn.reconnects == ["resync BTC-USD lob_l3"]  # the default resubscribe
    scheme.begin_snapshot_l3("BTC-USD", 4_000_000_000).add("b", 1, "2", "1")
    scheme.on_close(conn, "bye", 5_000_000_000)
    assert "BTC-USD" in scheme.unsynced_l3 and len(scheme.l3books["BTC-USD"]) == 0


def test_instruments_paths():
    class Two(Toy):
        instruments_paths = ("/spot", "/perp")

    class Later(Two):
        instruments_path = "/other"  # its own single listing

    assert Toy.instruments_paths == ("/spot",) and Scheme.instruments_paths == ()
    assert Two.instruments_paths == ("/spot", "/perp") and Later.instruments_paths == ("/other",)
    from atomfast.exchanges.bitfinex import BitfinexScheme
    from atomfast.exchanges.deribit import DeribitScheme

    assert DeribitScheme.instruments_paths[0] == DeribitScheme.instruments_path
    assert len(DeribitScheme.instruments_paths) > 1
    assert BitfinexScheme.instruments_paths == ("/v2/conf/pub:list:pair:exchange", "/v2/conf/pub:list:pair:futures")


def test_replay_merges_the_listings_a_capture_holds():
    from atomfast.capture import open_capture
    from atomfast.exchanges.deribit import DeribitScheme
    from atomfast.replay import instruments_from_capture

    cap = open_capture(fixture_path("cryptofeed/DERIBIT.ws.1.0"))
    # no "currency=any" listing in the capture, but the per-currency ones
    assert cap.rest_body(DeribitScheme.rest_url + DeribitScheme.instruments_path) is None
    merged = instruments_from_capture(DeribitScheme, cap)
    parts: dict = {}
    for path in DeribitScheme.instruments_paths[1:]:
        body = cap.rest_body(DeribitScheme.rest_url + path)
        if body is not None:
            parts.update(DeribitScheme.parse_instruments(body))
    assert merged == parts and {i.base for i in merged.values()} >= {"BTC", "ETH"}


def test_run_resolve_merges_listings_and_leaves_out_missing_ones(monkeypatch):
    import asyncio

    from atomfast import rest
    from atomfast.commands import run

    class Listed(Toy):
        instruments_paths = ("/spot", "/perp", "/gone")

        @classmethod
        def parse_instruments(cls, body):
            return {n: TOY[n] for n in body.decode().split(",")}

    answers = {"https://toy.example/spot": b"BTC-USD,ETH-USD", "https://toy.example/perp": b"BTC-PERP"}

    async def fetch(url, *a, **kw):
        if url in answers:
            return answers[url]
        raise rest.RestError(url, "HTTP 404")

    monkeypatch.setattr(rest, "fetch", fetch)
    setup = run.Setup("run", "toy", None, ["BTC-USD"], [], None, None, scheme_cls=Listed)
    asyncio.run(run.resolve(setup))
    assert setup.instruments == {n: TOY[n] for n in ("BTC-USD", "ETH-USD", "BTC-PERP")}
    assert setup.listings == list(answers.items())  # what record saves
    assert (setup.instruments_url, setup.instruments_body) == setup.listings[0]
    answers.clear()
    with pytest.raises(run.StartError, match="cannot fetch the instrument listing"):
        asyncio.run(run.resolve(run.Setup("run", "toy", None, ["BTC-USD"], [], None, None, scheme_cls=Listed)))
