"""Kraken spot websocket messages as msgspec Structs (v1: ``wss://ws.kraken.com``; v2:
``wss://ws.kraken.com/v2``). Decoders are created once, at import.

v1 data messages are arrays ``[channelID, payload(, payload), channelName, pair]``; the frame
is decoded in one pass into the Struct of its channel (chosen from the channelID).
v1 events (``{"event": ...}``) and v2 messages (``{"channel": ...}`` / ``{"method": ...}``)
are tagged unions.

v2 book prices and quantities are JSON numbers: they are kept as ``msgspec.Raw`` (the exact
digits on the wire) and handed to the book as such, never through a float.
"""
from __future__ import annotations

from typing import Any, Union

import msgspec
from msgspec import Raw, Struct

# --------------------------------------------------------------------------------------------
# v1 data (arrays)


class V1Level(Struct, array_like=True, gc=False):
    """``["price", "volume", "timestamp"(, "r")]``: "r" marks a republished level. (``size``:
    the book's ``apply_sides`` reads a level's ``price`` and ``size``.)"""

    price: str
    size: str
    timestamp: str
    flag: str = ""


class V1BookPayload(Struct, gc=False, rename={"snap_asks": "as", "snap_bids": "bs"}):
    """One dict of a v1 book message: snapshot (``as``/``bs``) or update (``a``/``b``, ``c``)."""

    snap_asks: Union[list[V1Level], None] = None
    snap_bids: Union[list[V1Level], None] = None
    a: Union[list[V1Level], None] = None
    b: Union[list[V1Level], None] = None
    c: Union[str, None] = None


class V1Update(Struct, forbid_unknown_fields=True, gc=False):
    """The payload of a one-payload v1 book update with its checksum: ``{"a": [..], "c": ".."}``,
    ``{"b": [..], "c": ".."}`` or both sides (an absent side: no levels). Anything else (a
    snapshot's ``as``/``bs``, another key, no ``c``, a side that is null) does not decode."""

    c: str
    a: list[V1Level] = []
    b: list[V1Level] = []


class V1UpdateFrame(Struct, array_like=True, gc=False):
    """The common v1 book frame, ``[cid, {V1Update}, "book-N", "PAIR"]``. A book frame that does
    not decode as one is not an error: it is another shape (a snapshot, two payloads), or
    malformed, for ``V1BookFrame`` to say which. (As there, a fifth element is a string.)"""

    channel_id: int
    update: V1Update
    channel_name: str
    pair: str
    fifth: str = ""


class V1BookFrame(Struct, array_like=True, gc=False):
    """``[cid, {..}, "book-N", "PAIR"]`` or ``[cid, {"a":..}, {"b":.., "c":..}, "book-N", "PAIR"]``."""

    channel_id: int
    first: V1BookPayload
    second: Union[V1BookPayload, str]
    third: str
    fourth: str = ""


class V1Trade(Struct, array_like=True, gc=False):
    """``["price", "volume", "time", "b"|"s", "l"|"m", "misc"]``."""

    price: str
    volume: str
    time: str
    side: str
    order_type: str = ""
    misc: str = ""


class V1TradeFrame(Struct, array_like=True, gc=False):
    channel_id: int
    trades: list[V1Trade]
    channel_name: str
    pair: str


class V1Ticker(Struct, gc=False):
    """``a``/``b``: [price, wholeLotVolume, lotVolume]; ``c``: [price, lotVolume]."""

    a: tuple[str, Any, str]
    b: tuple[str, Any, str]
    c: Union[tuple[str, str], None] = None


class V1TickerFrame(Struct, array_like=True, gc=False):
    channel_id: int
    ticker: V1Ticker
    channel_name: str
    pair: str


class V1Ohlc(Struct, array_like=True, gc=False):
    """``[time, etime, open, high, low, close, vwap, volume, count]`` (times in seconds)."""

    time: str
    etime: str
    open: str
    high: str
    low: str
    close: str
    vwap: str
    volume: str
    count: int


class V1OhlcFrame(Struct, array_like=True, gc=False):
    channel_id: int
    ohlc: V1Ohlc
    channel_name: str
    pair: str


# --------------------------------------------------------------------------------------------
# v1 events (objects tagged by "event")


class V1Subscription(Struct, gc=False):
    name: str = ""
    depth: Union[int, None] = None
    interval: Union[int, None] = None


class V1SubscriptionStatus(Struct, tag_field="event", tag="subscriptionStatus", gc=False):
    channelID: Union[int, None] = None
    channelName: str = ""
    pair: str = ""
    status: str = ""
    subscription: Union[V1Subscription, None] = None
    errorMessage: str = ""


class V1SystemStatus(Struct, tag_field="event", tag="systemStatus", gc=False):
    connectionID: Union[int, None] = None
    status: str = ""
    version: str = ""


class V1Heartbeat(Struct, tag_field="event", tag="heartbeat", gc=False):
    pass


class V1Pong(Struct, tag_field="event", tag="pong", gc=False):
    reqid: Union[int, None] = None


class V1Error(Struct, tag_field="event", tag="error", gc=False):
    errorMessage: str = ""


V1Event = Union[V1SubscriptionStatus, V1SystemStatus, V1Heartbeat, V1Pong, V1Error]


# --------------------------------------------------------------------------------------------
# v2 (objects tagged by "channel"; method responses tagged by "method")


class V2Level(Struct, gc=False, rename={"size": "qty"}):
    """``{"price": 0.5666, "qty": 4831.75496356}``: the raw digits (``size``: the book's
    ``apply_sides`` reads a level's ``price`` and ``size``)."""

    price: Raw
    size: Raw


class V2Book(Struct, gc=False):
    symbol: str
    checksum: int
    bids: list[V2Level] = []
    asks: list[V2Level] = []
    timestamp: str = ""


class V2BookMsg(Struct, tag_field="channel", tag="book", gc=False):
    type: str
    data: list[V2Book]


class V2L3Order(Struct, gc=False):
    """One order of a ``level3`` message: ``{"order_id": "OTCFZG-YOE2Q-LQKNM3", "limit_price":
    44939.4, "order_qty": 0.88968699, "timestamp": ".."}``, the numbers as raw digits; an
    update's carries ``event`` (``add``, ``modify`` or ``delete``)."""

    order_id: str
    limit_price: Raw
    order_qty: Raw
    event: str = ""


class V2L3Book(Struct, gc=False):
    symbol: str
    checksum: int
    bids: list[V2L3Order] = []
    asks: list[V2L3Order] = []
    timestamp: str = ""


class V2Level3Msg(Struct, tag_field="channel", tag="level3", gc=False):
    """``{"channel": "level3", "type": "snapshot"|"update", "data": [V2L3Book]}``
    (https://docs.kraken.com/api/docs/websocket-v2/level3)."""

    type: str
    data: list[V2L3Book]


class V2TokenResult(Struct, gc=False):
    token: str = ""


class V2TokenAnswer(Struct, gc=False):
    """``POST /0/private/GetWebSocketsToken``: ``{"error": [], "result": {"token": .., "expires": 900}}``."""

    error: list[str] = []
    result: Union[V2TokenResult, None] = None


class V2Trade(Struct, gc=False):
    symbol: str
    side: str
    price: float
    qty: float
    trade_id: int
    timestamp: str
    ord_type: str = ""


class V2TradeMsg(Struct, tag_field="channel", tag="trade", gc=False):
    type: str
    data: list[V2Trade]


class V2Ticker(Struct, gc=False):
    symbol: str
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    timestamp: str = ""


class V2TickerMsg(Struct, tag_field="channel", tag="ticker", gc=False):
    type: str
    data: list[V2Ticker]


class V2Ohlc(Struct, gc=False):
    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int
    interval_begin: str
    interval: int
    vwap: float = 0.0
    timestamp: str = ""


class V2OhlcMsg(Struct, tag_field="channel", tag="ohlc", gc=False):
    type: str
    data: list[V2Ohlc]
    timestamp: str = ""


class V2Heartbeat(Struct, tag_field="channel", tag="heartbeat", gc=False):
    pass


class V2Status(Struct, tag_field="channel", tag="status", gc=False):
    type: str = ""
    data: Any = None


V2Message = Union[V2BookMsg, V2Level3Msg, V2TradeMsg, V2TickerMsg, V2OhlcMsg, V2Heartbeat, V2Status]


class V2SubscribeResult(Struct, gc=False):
    channel: str = ""
    symbol: str = ""
    depth: Union[int, None] = None
    interval: Union[int, None] = None


class V2Response(Struct, gc=False):
    """``{"method": "subscribe"|"unsubscribe"|"pong", "success": .., "result": {..}, "error": ..}``."""

    method: str
    success: Union[bool, None] = None
    result: Union[V2SubscribeResult, None] = None
    error: str = ""
    symbol: Union[str, None] = None  # some failures name the symbol at the top level
    req_id: Union[int, None] = None


class V2AnyBook(Struct, gc=False):
    """Just enough of a malformed v2 book message to know which book to reload."""

    channel: str = ""
    data: list[Any] = []


# --------------------------------------------------------------------------------------------
# decoders (created once)

v1_update_decoder = msgspec.json.Decoder(V1UpdateFrame)
v1_book_decoder = msgspec.json.Decoder(V1BookFrame)
v1_trade_decoder = msgspec.json.Decoder(V1TradeFrame)
v1_ticker_decoder = msgspec.json.Decoder(V1TickerFrame)
v1_ohlc_decoder = msgspec.json.Decoder(V1OhlcFrame)
v1_event_decoder = msgspec.json.Decoder(V1Event)
v1_tail_decoder = msgspec.json.Decoder(list[Raw])
any_decoder = msgspec.json.Decoder()
str_decoder = msgspec.json.Decoder(str)
int_decoder = msgspec.json.Decoder(int)

v2_decoder = msgspec.json.Decoder(V2Message)
v2_response_decoder = msgspec.json.Decoder(V2Response)
v2_any_book_decoder = msgspec.json.Decoder(V2AnyBook)
v2_token_decoder = msgspec.json.Decoder(V2TokenAnswer)

encode = msgspec.json.Encoder().encode
