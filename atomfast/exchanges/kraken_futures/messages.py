"""Kraken Futures websocket (``wss://futures.kraken.com/ws/v1``) messages as msgspec Structs.

Data messages are objects tagged by ``feed`` (one tagged union, one decode per frame); control
messages are tagged by ``event`` (``info``, ``subscribed``, ``error``, ``alert``, ...). Book
prices and quantities are JSON numbers kept as ``msgspec.Raw``: the exact digits go to the book.
"""
from __future__ import annotations

from typing import Any, Union

import msgspec
from msgspec import Raw, Struct


class FLevel(Struct, gc=False, rename={"size": "qty"}):
    """``{"price": 55400.5, "qty": 1200.0}``: the raw digits (``size``: the book's
    ``apply_sides`` reads a level's ``price`` and ``size``)."""

    price: Raw
    size: Raw


class FBookSnapshot(Struct, tag_field="feed", tag="book_snapshot", gc=False):
    product_id: str
    seq: int
    timestamp: int
    bids: list[FLevel] = []
    asks: list[FLevel] = []


class FBook(Struct, tag_field="feed", tag="book", gc=False):
    """A book delta: ``qty`` is the new total at ``price`` (0 removes it)."""

    product_id: str
    side: str
    seq: int
    price: Raw
    qty: Raw
    timestamp: int


class FTradeItem(Struct, gc=False):
    side: str
    seq: int
    time: int
    qty: float
    price: float
    uid: str = ""
    type: str = ""


class FTrade(Struct, tag_field="feed", tag="trade", gc=False):
    product_id: str
    side: str
    seq: int
    time: int
    qty: float
    price: float
    uid: str = ""
    type: str = ""


class FTradeSnapshot(Struct, tag_field="feed", tag="trade_snapshot", gc=False):
    product_id: str
    trades: list[FTradeItem]


class FTickerLite(Struct, tag_field="feed", tag="ticker_lite", gc=False):
    """Best bid/ask prices only (no sizes, no time)."""

    product_id: str
    bid: Union[float, None] = None
    ask: Union[float, None] = None


class FTicker(Struct, tag_field="feed", tag="ticker", gc=False):
    product_id: str
    time: int
    bid: Union[float, None] = None
    ask: Union[float, None] = None
    bid_size: Union[float, None] = None
    ask_size: Union[float, None] = None
    markPrice: Union[float, None] = None
    openInterest: Union[float, None] = None
    funding_rate: Union[float, None] = None
    funding_rate_prediction: Union[float, None] = None
    relative_funding_rate: Union[float, None] = None
    relative_funding_rate_prediction: Union[float, None] = None
    next_funding_rate_time: Union[int, None] = None


class FHeartbeat(Struct, tag_field="feed", tag="heartbeat", gc=False):
    time: Union[int, None] = None


FMessage = Union[FBook, FBookSnapshot, FTrade, FTradeSnapshot, FTicker, FTickerLite, FHeartbeat]


class FEvent(Struct, gc=False):
    """``{"event": "info"|"subscribed"|"subscribed_failed"|"unsubscribed"|"error"|"alert", ..}``."""

    event: str
    feed: str = ""
    product_ids: Union[list[str], None] = None
    message: str = ""
    version: Any = None


data_decoder = msgspec.json.Decoder(FMessage)
event_decoder = msgspec.json.Decoder(FEvent)
any_decoder = msgspec.json.Decoder()
encode = msgspec.json.Encoder().encode
