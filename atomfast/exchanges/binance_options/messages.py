"""Binance European options (``eapi``): websocket and REST messages as msgspec Structs (only the
fields used). Decoders are created once, at import.

Shapes from the current documentation (developers.binance.com "Options Trading", WebSocket
Market Streams, the routed ``wss://fstream.binance.com/public`` and ``/market`` endpoints; the
official connectors' generated types agree):

* diff depth ``<symbol>@depth@100ms``: ``depthUpdate`` with ``U``/``u``/``pu`` (as USD-M);
* trades ``<symbol>@optionTrade``: ``t`` (a number, or a string in the connectors since 2025-11),
  ``p``, ``q`` (always positive), ``T``, ``m`` (buyer is maker), ``S`` (BUY/SELL), ``X``;
* ``<symbol>@bookTicker``: ``u``, ``b``/``B``, ``a``/``A``, ``T``, ``E``;
* ``<symbol>@kline_<interval>``: Binance's kline (``k``: ``t``, ``T``, ``i``, ``o``, ``h``,
  ``l``, ``c``, ``v`` in contracts, ``n``, ``x``);
* ``<underlying>@openInterest@<YYMMDD>``: a LIST of ``{"e":"openInterest","E","s","o","h"}``,
  one per option of that expiry (``o`` in contracts, ``h`` in USDT);
* REST ``/eapi/v1/depth``: ``{"T", "u", "bids", "asks"}`` (``u``: the update id);
* REST ``/eapi/v1/exchangeInfo``: ``optionContracts`` (base/quote of each underlying) and
  ``optionSymbols``.

Market-data frames come wrapped: ``{"stream": "<name>", "data": <payload>}`` (combined streams);
the stream name says what the payload is, so a frame is decoded ONCE into its kind's wrapper.
Prices and quantities stay strings until the book parses them.
"""
from __future__ import annotations

from typing import Any, Union

import msgspec
from msgspec import Raw, Struct

Level = tuple[str, str]


class Depth(Struct, gc=False):
    E: int
    s: str
    U: int
    u: int
    pu: int
    b: list[Level]
    a: list[Level]
    T: int = 0
    e: str = "depthUpdate"


class Trade(Struct, gc=False):
    s: str
    t: Union[int, str]
    p: str
    q: str
    T: int
    E: int = 0
    m: Union[bool, None] = None  # is the buyer the maker
    S: str = ""  # BUY / SELL (the taker's direction)
    X: str = ""  # MARKET (order book) or BLOCK (block trade)
    e: str = "trade"


class BookTicker(Struct, gc=False):
    s: str
    b: str
    B: str
    a: str
    A: str
    u: int = 0
    T: int = 0
    E: int = 0
    e: str = "bookTicker"


class KlineData(Struct, gc=False):
    t: int
    T: int
    i: str
    o: str
    c: str
    h: str
    l: str  # noqa: E741 (Binance's field name)
    v: str
    n: int
    x: bool


class Kline(Struct, gc=False):
    E: int
    s: str
    k: KlineData
    e: str = "kline"


class OpenInterest(Struct, gc=False):
    E: int
    s: str
    o: str  # open interest in contracts
    h: str = ""  # in USDT
    e: str = "openInterest"


class DepthFrame(Struct, gc=False):
    stream: str
    data: Depth


class TradeFrame(Struct, gc=False):
    stream: str
    data: Trade


class BookTickerFrame(Struct, gc=False):
    stream: str
    data: BookTicker


class KlineFrame(Struct, gc=False):
    stream: str
    data: Kline


class OpenInterestFrame(Struct, gc=False):
    stream: str
    data: list[OpenInterest]


class Probe(Struct, gc=False):
    """Anything else: an answer (``id``/``result``), an error (``error``, or ``code``/``msg``), a
    wrapper with its keys in another order. Unknown keys are ignored."""

    stream: Union[str, None] = None
    data: Raw = Raw()
    id: Any = None
    result: Any = None
    error: Any = None
    code: Any = None
    msg: Any = None


class DepthSnapshot(Struct, gc=False):
    u: int
    bids: list[Level]
    asks: list[Level]
    T: int = 0


# exchangeInfo (only what the listing needs)


class Filter(Struct, gc=False):
    filterType: str = ""
    tickSize: str = ""
    stepSize: str = ""


class OptionContract(Struct, gc=False):
    underlying: str = ""
    baseAsset: str = ""
    quoteAsset: str = ""


class OptionSymbol(Struct, gc=False):
    symbol: str
    underlying: str = ""
    quoteAsset: str = ""
    strikePrice: Union[str, float, None] = None
    side: str = ""
    expiryDate: int = 0
    priceScale: int = 0
    quantityScale: int = 0
    filters: list[Filter] = []


class ExchangeInfo(Struct, gc=False):
    optionContracts: list[OptionContract] = []
    optionSymbols: list[OptionSymbol] = []


depth_frame = msgspec.json.Decoder(DepthFrame)
trade_frame = msgspec.json.Decoder(TradeFrame)
book_ticker_frame = msgspec.json.Decoder(BookTickerFrame)
kline_frame = msgspec.json.Decoder(KlineFrame)
open_interest_frame = msgspec.json.Decoder(OpenInterestFrame)
probe = msgspec.json.Decoder(Probe)
snapshot = msgspec.json.Decoder(DepthSnapshot)
exchange_info = msgspec.json.Decoder(ExchangeInfo)

encode = msgspec.json.Encoder().encode
