"""Poloniex websocket v3 messages as msgspec Structs (spot ``wss://ws.poloniex.com/ws/public``,
perpetual futures ``wss://ws.poloniex.com/ws/v3/public``).

Every message is an object: data ``{"channel": C, "data": [...], "action": A}`` (``action`` only on
``book_lv2``: ``snapshot`` or ``update``) or an event ``{"event": "subscribe"|"unsubscribe"|"pong"|
"error", "channel": .., "symbols": [..], "message": ..}``. A subscription answer names its channel
too, so the envelope is decoded first (``data`` kept raw) and routed by ``Envelope.route``: the
event where there is one, else the channel; the route's handler decodes ``data`` with its own
decoder. Only the fields used are declared; unknown fields are ignored.
"""
from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Raw, Struct


class Envelope(Struct, gc=False):
    channel: Any = ""
    event: Any = ""
    action: Any = ""
    data: Raw = Raw(b"")
    symbols: Any = None
    message: Any = ""

    @property
    def route(self) -> Any:
        """The route key: ``event:<event>`` for an event, else the channel (None where either is
        not a string: a list would not even be a dict key)."""
        event = self.event
        if event:
            return f"event:{event}" if event.__class__ is str else None  # (None: no route names it)
        channel = self.channel
        return channel if channel.__class__ is str else None


# --- spot -----------------------------------------------------------------------------------
class BookItem(Struct, gc=False):
    """``book_lv2`` (spot): ``lastId`` is the previous message's ``id``; levels [price, size]."""

    symbol: str
    id: int
    lastId: int
    ts: int
    asks: list[tuple[str, str]] = []
    bids: list[tuple[str, str]] = []
    createTime: int = 0


class TradeItem(Struct, gc=False):
    symbol: str
    price: str
    quantity: str
    takerSide: str
    id: str
    createTime: int
    ts: int = 0


class CandleItem(Struct, gc=False):
    symbol: str
    open: str
    high: str
    low: str
    close: str
    quantity: str
    startTime: int
    closeTime: int
    ts: int
    tradeCount: int = 0
    amount: str = ""


# --- futures v3 -----------------------------------------------------------------------------
class FBookItem(Struct, gc=False):
    """``book_lv2`` (futures v3): ``lid`` is the previous message's ``id``; ``s`` the contract."""

    s: str
    id: int
    lid: int
    ts: int
    asks: list[tuple[str, str]] = []
    bids: list[tuple[str, str]] = []
    cT: int = 0


class FundingItem(Struct, gc=False):
    """``funding_rate``: ``fR`` the rate, ``fT`` its settlement time, ``nFR`` the predicted next
    rate, ``nFT`` the next funding time (ms)."""

    s: str
    ts: int
    fR: str
    nFR: str = "0"
    fT: int = 0
    nFT: int = 0


class OpenInterestItem(Struct, gc=False):
    s: str
    oInterest: str
    ts: int


# --- a book message decoded whole, its levels kept as JSON text (read by the book) -------------
class RawBookItem(Struct, gc=False):
    """A ``book_lv2`` item (spot names; ``RawFBookItem``: futures') whose levels are kept as raw
    JSON text (``L2Book.check_json_sides`` reads them: no list, tuple or str made per level)."""

    symbol: str
    id: int
    lastId: int
    ts: int
    asks: Raw = Raw(b"[]")
    bids: Raw = Raw(b"[]")


class RawFBookItem(Struct, gc=False):
    """``RawBookItem`` of futures v3: ``s`` the contract, ``lid`` the previous message's id."""

    symbol: str = msgspec.field(name="s")
    id: int
    lastId: int = msgspec.field(name="lid")
    ts: int
    asks: Raw = Raw(b"[]")
    bids: Raw = Raw(b"[]")


class BookMsg(Struct, gc=False):
    """A ``book_lv2`` frame whole (the route of a frame that starts ``{"channel":"book_lv2"``):
    ``event`` read so that a frame naming one goes the envelope's way."""

    channel: Any = ""
    event: Any = ""
    action: Any = ""
    data: list[RawBookItem] = []


class FBookMsg(Struct, gc=False):
    channel: Any = ""
    event: Any = ""
    action: Any = ""
    data: list[RawFBookItem] = []


envelope_decoder = msgspec.json.Decoder(Envelope)
book_msg_decoder = msgspec.json.Decoder(BookMsg)
fbook_msg_decoder = msgspec.json.Decoder(FBookMsg)
book_decoder = msgspec.json.Decoder(list[BookItem])
trades_decoder = msgspec.json.Decoder(list[TradeItem])
candles_decoder = msgspec.json.Decoder(list[CandleItem])
fbook_decoder = msgspec.json.Decoder(list[FBookItem])
funding_decoder = msgspec.json.Decoder(list[FundingItem])
oi_decoder = msgspec.json.Decoder(list[OpenInterestItem])

encode = msgspec.json.Encoder().encode
