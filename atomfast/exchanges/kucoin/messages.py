"""KuCoin's websocket and REST messages (spot and futures): msgspec Structs, only the fields used.

Every websocket frame is one envelope (https://www.kucoin.com/docs-new/3470068w0 and its
siblings): ``{"type": "message", "topic": ..., "subject": ..., "data": {...}}`` for data, and
``{"id": ..., "type": "welcome" | "ack" | "pong" | "error", ...}`` for the session. The envelope
is decoded first (``data`` kept raw), routed by ``subject``, and the route decodes ``data`` with
its own Struct.
"""
from __future__ import annotations

from typing import Union

import msgspec


class Envelope(msgspec.Struct, gc=False):
    type: str = ""
    topic: str = ""
    subject: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")
    code: Union[int, str, None] = None


envelope_decoder = msgspec.json.Decoder(Envelope)

# --- spot -----------------------------------------------------------------------------------------


class Changes(msgspec.Struct, gc=False):
    asks: list[tuple[str, str, str]] = []
    bids: list[tuple[str, str, str]] = []


class L2Update(msgspec.Struct, gc=False):
    """``trade.l2update`` (``/market/level2:SYM``): ``[price, size, sequence]`` changes; ``time``
    (ms) is in the current docs, absent from the 2021 recording."""

    symbol: str
    sequenceStart: int
    sequenceEnd: int
    changes: Changes
    time: int = 0


l2_decoder = msgspec.json.Decoder(L2Update)


class Match(msgspec.Struct, gc=False):
    """``trade.l3match`` (``/market/match:SYM``): ``time`` in ns (a string), ``side`` the taker's."""

    symbol: str
    side: str
    size: str
    price: str
    tradeId: str
    time: str
    makerOrderId: str = ""
    takerOrderId: str = ""


match_decoder = msgspec.json.Decoder(Match)


class SpotTicker(msgspec.Struct, gc=False):
    """``trade.ticker`` (``/market/ticker:SYM``): the best bid and ask; ``time`` in ms."""

    bestBid: str
    bestBidSize: str
    bestAsk: str
    bestAskSize: str
    time: int = 0


spot_ticker_decoder = msgspec.json.Decoder(SpotTicker)


class SpotCandle(msgspec.Struct, gc=False):
    """``trade.candles.add`` / ``trade.candles.update`` (``/market/candles:SYM_1min``):
    ``candles`` = [start (s), open, close, high, low, volume, turnover]; ``time`` in ns."""

    symbol: str
    candles: list[str]
    time: int = 0


spot_candle_decoder = msgspec.json.Decoder(SpotCandle)


class RestBookData(msgspec.Struct, gc=False):
    sequence: str
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    time: int = 0


class RestBook(msgspec.Struct, gc=False):
    """``GET /api/v3/market/orderbook/level2`` (full, authenticated) or
    ``/api/v1/market/orderbook/level2_100`` (public, 100 levels a side): ``code`` "200000"."""

    code: str
    data: Union[RestBookData, None] = None
    msg: str = ""


rest_book_decoder = msgspec.json.Decoder(RestBook)


class SpotSymbol(msgspec.Struct, gc=False):
    symbol: str
    baseCurrency: str
    quoteCurrency: str
    priceIncrement: str = ""
    baseIncrement: str = ""
    enableTrading: bool = True


class SpotSymbols(msgspec.Struct, gc=False):
    code: str
    data: list[SpotSymbol] = []


spot_symbols_decoder = msgspec.json.Decoder(SpotSymbols)

# --- futures --------------------------------------------------------------------------------------


class FuturesL2(msgspec.Struct, gc=False):
    """``level2`` (``/contractMarket/level2:SYM``): one change ``"price,side,size"`` per message,
    ``sequence`` + 1 each; ``timestamp`` in ms."""

    sequence: int
    change: str
    timestamp: int = 0


futures_l2_decoder = msgspec.json.Decoder(FuturesL2)


class Execution(msgspec.Struct, gc=False):
    """``match`` (``/contractMarket/execution:SYM``): ``size`` in lots (a JSON number), ``ts`` ns."""

    symbol: str
    side: str
    size: Union[int, float, str]
    price: str
    tradeId: str
    ts: int
    makerOrderId: str = ""
    takerOrderId: str = ""


execution_decoder = msgspec.json.Decoder(Execution)


class TickerV2(msgspec.Struct, gc=False):
    """``tickerV2`` (``/contractMarket/tickerV2:SYM``): best bid/ask; sizes in lots; ``ts`` ns."""

    symbol: str
    bestBidPrice: str
    bestBidSize: Union[int, float, str]
    bestAskPrice: str
    bestAskSize: Union[int, float, str]
    ts: int


ticker_v2_decoder = msgspec.json.Decoder(TickerV2)


class FuturesCandle(msgspec.Struct, gc=False):
    """``candle.stick`` (``/contractMarket/limitCandle:SYM_1min``): ``candles`` = [start (s),
    open, close, high, low, volume, turnover] as strings; ``time`` in ms."""

    symbol: str
    candles: list[str]
    time: int = 0


futures_candle_decoder = msgspec.json.Decoder(FuturesCandle)


class Funding(msgspec.Struct, gc=False):
    """``funding.rate`` (``/contract/instrument:SYM``): ``fundingRate``, ``timestamp`` ms."""

    fundingRate: float
    timestamp: int
    granularity: int = 0


funding_decoder = msgspec.json.Decoder(Funding)


class MarkIndex(msgspec.Struct, gc=False):
    """``mark.index.price`` (``/contract/instrument:SYM``): ``markPrice``, ``timestamp`` ms."""

    markPrice: float
    timestamp: int


mark_decoder = msgspec.json.Decoder(MarkIndex)


class FuturesRestBookData(msgspec.Struct, gc=False):
    sequence: int
    bids: list[tuple[Union[str, float, int], Union[str, float, int]]]
    asks: list[tuple[Union[str, float, int], Union[str, float, int]]]
    ts: int = 0


class FuturesRestBook(msgspec.Struct, gc=False):
    """``GET /api/v1/level2/snapshot?symbol=`` (futures, full book, public)."""

    code: str
    data: Union[FuturesRestBookData, None] = None
    msg: str = ""


futures_rest_book_decoder = msgspec.json.Decoder(FuturesRestBook)


class Contract(msgspec.Struct, gc=False):
    symbol: str
    baseCurrency: str
    quoteCurrency: str
    settleCurrency: str = ""
    type: str = ""
    isInverse: bool = False
    expireDate: Union[int, None] = None
    tickSize: Union[float, int, str, None] = None
    lotSize: Union[float, int, str, None] = None
    multiplier: Union[float, int, None] = None
    status: str = "Open"
    openInterest: Union[str, float, int, None] = None


class Contracts(msgspec.Struct, gc=False):
    code: str
    data: list[Contract] = []


class OneContract(msgspec.Struct, gc=False):
    code: str
    data: Union[Contract, None] = None


contracts_decoder = msgspec.json.Decoder(Contracts)
one_contract_decoder = msgspec.json.Decoder(OneContract)

# --- the websocket token --------------------------------------------------------------------------


class InstanceServer(msgspec.Struct, gc=False):
    endpoint: str
    pingInterval: int = 18000
    pingTimeout: int = 10000
    protocol: str = "websocket"


class BulletData(msgspec.Struct, gc=False):
    token: str
    instanceServers: list[InstanceServer]


class Bullet(msgspec.Struct, gc=False):
    """``POST /api/v1/bullet-public``: the token and the servers to connect to."""

    code: str
    data: Union[BulletData, None] = None


bullet_decoder = msgspec.json.Decoder(Bullet)

encode = msgspec.json.Encoder().encode
