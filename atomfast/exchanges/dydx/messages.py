"""dYdX v4 indexer websocket (``wss://indexer.dydx.trade/v4/ws``) messages as msgspec Structs.

Every message is an object tagged by ``type``: ``connected``, ``subscribed`` (the channel's
initial state in ``contents``), ``channel_data`` (one update), ``channel_batch_data`` (a
``batched: true`` subscription: ``contents`` is a list of updates), ``unsubscribed``, ``error``.
All but ``error`` carry ``message_id``: the connection's message counter (0 for ``connected``).
The envelope is decoded first with ``contents`` kept raw (``msgspec.Raw``, not parsed), then
``contents`` by the decoder of its channel. Only the fields used are declared; unknown fields
are ignored. Prices and sizes are strings: the exact digits go to the book.

Shapes (dYdX indexer websocket docs, docs.dydx.exchange/api_integration-indexer/indexer_websocket,
and the real messages kept by nautilus_trader under ../shared/fixtures/nautilus/dydx/):

- ``v4_orderbook`` subscribed: ``{"bids": [{"price": "3393.2", "size": "7.795"}, ..], "asks": [..]}``;
  channel_data: ``{"bids": [["65920", "0"]]}`` (either side may be absent; size 0 removes).
- ``v4_trades`` subscribed and channel_data: ``{"trades": [{"id", "side", "size", "price",
  "type", "createdAt"}, ..]}`` (subscribed: the recent trades, newest first).
- ``v4_markets`` subscribed: ``{"markets": {ticker: {..}}}``; channel_data: ``{"trading":
  {ticker: {..}}}`` and/or ``{"oraclePrices": {ticker: {"oraclePrice", "effectiveAt", ..}}}``.
- ``v4_candles`` subscribed: ``{"candles": [{..}, ..]}`` (newest first); channel_data: one candle.
"""
from __future__ import annotations

from typing import Union

import msgspec
from msgspec import Raw, Struct

NULL = Raw(b"null")

# --------------------------------------------------------------------------------------------
# the envelope (tagged by ``type``)


class Connected(Struct, tag_field="type", tag="connected", gc=False):
    message_id: int


class Subscribed(Struct, tag_field="type", tag="subscribed", gc=False):
    message_id: int
    channel: str
    id: str = ""  # the market (``ETH-USD``), ``ETH-USD/1MIN`` for candles; none for v4_markets
    contents: Raw = NULL


class ChannelData(Struct, tag_field="type", tag="channel_data", gc=False):
    message_id: int
    channel: str
    contents: Raw
    id: str = ""
    version: str = ""


class ChannelBatchData(Struct, tag_field="type", tag="channel_batch_data", gc=False):
    message_id: int
    channel: str
    contents: Raw
    id: str = ""
    version: str = ""


class Unsubscribed(Struct, tag_field="type", tag="unsubscribed", gc=False):
    message_id: int
    channel: str = ""
    id: str = ""


class Error(Struct, tag_field="type", tag="error", gc=False):
    """``message_id``: the id the failed subscribe reserved, or the connection's current one."""

    message: str = ""
    message_id: Union[int, None] = None


Message = Union[Connected, Subscribed, ChannelData, ChannelBatchData, Unsubscribed, Error]

# --------------------------------------------------------------------------------------------
# v4_orderbook


class Level(Struct, gc=False, array_like=False):
    """A snapshot level ``{"price": "3393.2", "size": "7.795"}`` (the book reads ``price`` and
    ``size``)."""

    price: str
    size: str


class BookSnapshot(Struct, gc=False):
    bids: list[Level] = []
    asks: list[Level] = []


class BookUpdate(Struct, gc=False):
    """An update: ``[price, size]`` pairs, the new total at that price (``"0"`` removes it)."""

    bids: list[tuple[str, str]] = []
    asks: list[tuple[str, str]] = []


# --------------------------------------------------------------------------------------------
# v4_trades


class TradeItem(Struct, gc=False):
    id: str
    side: str  # BUY | SELL: the taker's side
    size: str
    price: str
    createdAt: str
    type: str = ""  # LIMIT | LIQUIDATED | DELEVERAGED


class Trades(Struct, gc=False):
    trades: list[TradeItem]


# --------------------------------------------------------------------------------------------
# v4_markets


class MarketFields(Struct, gc=False):
    """One market's fields in ``markets`` (subscribed) or ``trading`` (an update carries only
    those that changed)."""

    nextFundingRate: Union[str, None] = None
    openInterest: Union[str, None] = None
    oraclePrice: Union[str, None] = None


class OraclePrice(Struct, gc=False):
    oraclePrice: str
    effectiveAt: str = ""


class MarketsSnapshot(Struct, gc=False):
    markets: dict[str, MarketFields]


class MarketsUpdate(Struct, gc=False):
    trading: dict[str, MarketFields] = {}
    oraclePrices: dict[str, OraclePrice] = {}


# --------------------------------------------------------------------------------------------
# v4_candles


class CandleItem(Struct, gc=False):
    startedAt: str
    ticker: str
    resolution: str
    open: str
    high: str
    low: str
    close: str
    baseTokenVolume: str
    trades: int


class Candles(Struct, gc=False):
    candles: list[CandleItem]


decoder = msgspec.json.Decoder(Message)
book_snapshot_decoder = msgspec.json.Decoder(BookSnapshot)
book_update_decoder = msgspec.json.Decoder(BookUpdate)
book_batch_decoder = msgspec.json.Decoder(list[BookUpdate])
trades_decoder = msgspec.json.Decoder(Trades)
trades_batch_decoder = msgspec.json.Decoder(list[Trades])
markets_snapshot_decoder = msgspec.json.Decoder(MarketsSnapshot)
markets_update_decoder = msgspec.json.Decoder(MarketsUpdate)
markets_batch_decoder = msgspec.json.Decoder(list[MarketsUpdate])
candles_decoder = msgspec.json.Decoder(Candles)
candle_decoder = msgspec.json.Decoder(CandleItem)
candle_batch_decoder = msgspec.json.Decoder(list[CandleItem])
encode = msgspec.json.Encoder().encode
