"""Binance websocket and REST messages as msgspec Structs (spot, USD-M and COIN-M futures share
the shapes). Decoders are created once, at import.

Market data arrives on the combined-stream endpoints (``/stream``), each message wrapped as
``{"stream": "<name>", "data": <payload>}``. The stream name says what the payload is, so a frame
is decoded in ONE pass into the wrapper Struct of its kind (``DepthFrame``, ``TradeFrame``, ...);
the kind is read from the bytes of the stream name before decoding (see ``base.py``).
Anything else (subscription answers, errors, raw ``/ws`` payloads, a wrapper with its keys in
another order) goes through the tolerant ``Probe``.

Prices and quantities are JSON strings (exact decimals): they stay strings until the book parses
them (``parse_ticks``), never through a float on the way to the book. A depth update's and a
snapshot's levels stay their JSON text (``DepthText``, ``DepthSnapshotText``: ``msgspec.Raw``),
which the book reads; the Structs with decoded levels (``Depth``, ``DepthSnapshot``) take what
is not plain text.
"""
from __future__ import annotations

from typing import Any, Union

import msgspec
from msgspec import Raw, Struct

Level = tuple[str, str]


# --------------------------------------------------------------------------------------------
# payloads


class Depth(Struct, gc=False):
    """``depthUpdate`` (diff depth): spot has ``U``/``u``; futures add ``T`` and ``pu``."""

    E: int
    s: str
    U: int
    u: int
    b: list[Level]
    a: list[Level]
    e: str = "depthUpdate"
    T: int = 0
    pu: Union[int, None] = None


class Trade(Struct, gc=False):
    """``trade``: spot (current API: no buyer/seller order ids) and futures (``X``: MARKET, ...)."""

    E: int
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool
    e: str = "trade"
    X: str = ""


class AggTrade(Struct, gc=False):
    """``aggTrade``: ``a`` is the aggregate trade id (``f``..``l`` the trades it covers)."""

    E: int
    s: str
    a: int
    p: str
    q: str
    T: int
    m: bool
    e: str = "aggTrade"
    f: int = 0
    l: int = 0  # noqa: E741 (Binance's field name)


class BookTicker(Struct, gc=False):
    """``bookTicker``: spot has no event type and no times; futures add ``e``, ``E``, ``T``."""

    u: int
    s: str
    b: str
    B: str
    a: str
    A: str
    e: str = "bookTicker"
    E: int = 0
    T: int = 0


class KlineData(Struct, gc=False):
    t: int  # start (ms)
    T: int  # close time: the last ms of the candle
    i: str  # interval: 1s, 1m, ..., 1M
    o: str
    c: str
    h: str
    l: str  # noqa: E741 (Binance's field name)
    v: str  # base asset volume (contracts on COIN-M)
    n: int  # number of trades
    x: bool  # closed


class Kline(Struct, gc=False):
    E: int
    s: str
    k: KlineData
    e: str = "kline"


class MarkPrice(Struct, gc=False):
    """``markPriceUpdate``: ``r`` (funding rate) and ``T`` (next funding time) are empty / 0 for
    COIN-M delivery contracts, which have no funding."""

    E: int
    s: str
    p: str  # mark price
    r: str = ""  # funding rate of the current period, paid at T
    T: int = 0  # next funding time (ms)
    i: str = ""  # index price
    P: str = ""  # estimated settle price (last hour before settlement)
    e: str = "markPriceUpdate"


class ForceOrderOrder(Struct, gc=False):
    s: str
    S: str  # the liquidation order's side: SELL liquidates a long position
    q: str  # original quantity
    p: str  # price
    ap: str = ""  # average price
    X: str = ""  # order status
    z: str = ""  # filled quantity, accumulated
    T: int = 0  # order trade time (ms)


class ForceOrder(Struct, gc=False):
    """``forceOrder`` (futures only): the latest liquidation order of a symbol within 1000 ms.
    https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Liquidation-Order-Streams"""

    E: int
    o: ForceOrderOrder
    e: str = "forceOrder"


# --------------------------------------------------------------------------------------------
# combined-stream wrappers: one decode per frame


class DepthText(Struct, gc=False):
    """``Depth`` with its levels kept as the JSON text sent (``msgspec.Raw``): the book reads them
    from the text (``atomfast.kit.booksync.L2Diff``), no list, tuple or str made per level."""

    E: int
    s: str
    U: int
    u: int
    b: Raw
    a: Raw
    e: str = "depthUpdate"
    T: int = 0
    pu: Union[int, None] = None


class DepthFrame(Struct, gc=False):
    stream: str
    data: Depth


class DepthTextFrame(Struct, gc=False):
    """What the depth route decodes: a frame whose levels are not plain ``[price, size]``
    strings (``atomfast._book.json_levels``) is decoded again as ``DepthFrame``."""

    stream: str
    data: DepthText


class TradeFrame(Struct, gc=False):
    stream: str
    data: Trade


class AggTradeFrame(Struct, gc=False):
    stream: str
    data: AggTrade


class BookTickerFrame(Struct, gc=False):
    stream: str
    data: BookTicker


class KlineFrame(Struct, gc=False):
    stream: str
    data: Kline


class MarkPriceFrame(Struct, gc=False):
    stream: str
    data: MarkPrice


class Probe(Struct, gc=False):
    """Anything: a wrapper (any key order), a raw payload (``e``), an answer (``id``/``result``),
    an error (``error`` or ``code``/``msg``). Unknown keys are ignored."""

    stream: Union[str, None] = None
    data: Raw = Raw()  # empty when absent
    e: Union[str, None] = None
    s: Union[str, None] = None
    id: Any = None
    result: Any = None
    error: Any = None
    code: Any = None
    msg: Any = None
    event: Any = None  # {"event": {"e": "serverShutdown", "E": ...}}


# --------------------------------------------------------------------------------------------
# REST


class DepthSnapshot(Struct, gc=False):
    """``/api/v3/depth`` (spot), ``/fapi/v1/depth``, ``/dapi/v1/depth`` (COIN-M adds ``symbol``)."""

    lastUpdateId: int
    bids: list[Level]
    asks: list[Level]
    E: int = 0
    T: int = 0
    symbol: str = ""


class DepthSnapshotText(Struct, gc=False):
    """``DepthSnapshot`` with its levels kept as the JSON text sent (``msgspec.Raw``): the book
    reads them from the text (``L2Book.check_json_sides``), no list, tuple or str made per level.
    Levels that are not plain ``[price, size]`` strings (``atomfast._book.json_levels``): the snapshot is
    decoded as ``DepthSnapshot`` (which says what is wrong)."""

    lastUpdateId: int
    bids: Raw
    asks: Raw
    E: int = 0
    T: int = 0
    symbol: str = ""


class OpenInterestAnswer(Struct, gc=False):
    """``/fapi/v1/openInterest``, ``/dapi/v1/openInterest`` (in contracts on COIN-M)."""

    symbol: str
    openInterest: str
    time: int = 0


# exchangeInfo (only what the instrument listing needs)


class Filter(Struct, gc=False):
    filterType: str = ""
    tickSize: str = ""
    stepSize: str = ""


class SymbolInfo(Struct, gc=False):
    symbol: str
    baseAsset: str = ""
    quoteAsset: str = ""
    status: str = ""
    contractStatus: str = ""
    contractType: str = ""
    deliveryDate: int = 0
    filters: list[Filter] = []


class ForceOrderFrame(Struct, gc=False):
    stream: str
    data: ForceOrder


class ExchangeInfo(Struct, gc=False):
    symbols: list[SymbolInfo] = []


# --------------------------------------------------------------------------------------------
# decoders (created once)

depth_frame = msgspec.json.Decoder(DepthTextFrame)
#: a depth frame with its levels decoded (``DepthFrame``): where they are not plain text
depth_frame_levels = msgspec.json.Decoder(DepthFrame)
#: one side's levels, from their JSON text (a text the book does not read itself)
levels = msgspec.json.Decoder(list[Level])
trade_frame = msgspec.json.Decoder(TradeFrame)
agg_trade_frame = msgspec.json.Decoder(AggTradeFrame)
book_ticker_frame = msgspec.json.Decoder(BookTickerFrame)
kline_frame = msgspec.json.Decoder(KlineFrame)
mark_price_frame = msgspec.json.Decoder(MarkPriceFrame)
force_order_frame = msgspec.json.Decoder(ForceOrderFrame)

depth = msgspec.json.Decoder(Depth)
trade = msgspec.json.Decoder(Trade)
agg_trade = msgspec.json.Decoder(AggTrade)
book_ticker = msgspec.json.Decoder(BookTicker)
kline = msgspec.json.Decoder(Kline)
mark_price = msgspec.json.Decoder(MarkPrice)
force_order = msgspec.json.Decoder(ForceOrder)

probe = msgspec.json.Decoder(Probe)
snapshot = msgspec.json.Decoder(DepthSnapshot)
snapshot_text = msgspec.json.Decoder(DepthSnapshotText)
open_interest = msgspec.json.Decoder(OpenInterestAnswer)
exchange_info = msgspec.json.Decoder(ExchangeInfo)
any_json = msgspec.json.Decoder()

encode = msgspec.json.Encoder().encode
