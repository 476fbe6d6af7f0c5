"""HitBTC API v3 public websocket (``wss://api.hitbtc.com/api/3/ws/public``; FMFW's
``wss://api.fmfw.io/api/3/ws/public`` is the same engine) as msgspec Structs.

A notification is ``{"ch": <channel>, "snapshot"|"update"|"data": {<symbol>: <payload>}}``
(the docs, "Socket Market Data"): one tagged union on ``ch``, decoded once per frame. The
payloads (only the fields used):

- ``orderbook/full``: ``{"t": ms, "s": sequence, "a": [[price, size], ...], "b": [...]}``;
  prices and sizes are decimal strings, handed to the book exactly as sent (the levels as their
  JSON text, ``msgspec.Raw``: the book parses them);
- ``trades``: a list of ``{"t": ms, "i": trade id, "p": price, "q": quantity, "s": "buy"|"sell"}``;
- ``ticker/1s``: ``{"t": ms, "a": best ask, "A": its size, "b": best bid, "B": its size, ...}``;
- ``candles/M1``: a list of ``{"t": start ms, "o", "c", "h", "l", "v": base volume, "q"}``;
- ``futures/info``: ``{"t": ms, "m": mark, "i": index, "o": open interest, "r": funding rate,
  "R": indicative (predicted) rate, "T": next funding ms, ...}``.

Answers to our requests carry ``id`` with ``result`` (``{"ch": .., "subscriptions": [..]}``) or
``error`` (``{"code", "message", "description"}``): ``Answer``, decoded where the union refuses.
"""
from __future__ import annotations

from typing import Any, Union

import msgspec
from msgspec import Raw, Struct

#: the channels of the union (the tag values): one per topic family we subscribe
BOOK = "orderbook/full"
TRADES = "trades"
TICKER = "ticker/1s"
CANDLES = "candles/M1"
FUTURES_INFO = "futures/info"

Level = tuple[str, str]
_EMPTY = Raw(b"[]")


class BookData(Struct, gc=False):
    """One symbol's book notification. The levels are kept as their JSON text: the book reads
    them (``L2Book.check_json_sides``), no list, tuple or str is made per level; the handler
    checks their shape (``json_levels``: what ``BookDataLists`` takes) where the book has not."""

    t: int
    s: int
    a: Raw = _EMPTY
    b: Raw = _EMPTY


class BookMsg(Struct, tag_field="ch", tag=BOOK, gc=False):
    snapshot: Union[dict[str, BookData], None] = None
    update: Union[dict[str, BookData], None] = None


class BookDataLists(Struct, gc=False):
    """``BookData`` with its levels decoded (a message whose levels are not plain ``[price, size]``
    strings: decoded whole, as the union did before its levels were kept as text)."""

    t: int
    s: int
    a: list[Level] = []
    b: list[Level] = []


class BookMsgLists(Struct, tag_field="ch", tag=BOOK, gc=False):
    snapshot: Union[dict[str, BookDataLists], None] = None
    update: Union[dict[str, BookDataLists], None] = None


class TradeData(Struct, gc=False):
    t: int
    i: int
    p: str
    q: str
    s: str


class TradesMsg(Struct, tag_field="ch", tag=TRADES, gc=False):
    snapshot: Union[dict[str, list[TradeData]], None] = None
    update: Union[dict[str, list[TradeData]], None] = None


class TickerData(Struct, gc=False):
    t: int
    a: Union[str, None] = None
    A: Union[str, None] = None
    b: Union[str, None] = None
    B: Union[str, None] = None


class TickerMsg(Struct, tag_field="ch", tag=TICKER, gc=False):
    data: dict[str, TickerData]


class CandleData(Struct, gc=False):
    t: int
    o: str
    c: str
    h: str
    l: str  # noqa: E741 (the venue's name)
    v: str


class CandlesMsg(Struct, tag_field="ch", tag=CANDLES, gc=False):
    snapshot: Union[dict[str, list[CandleData]], None] = None
    update: Union[dict[str, list[CandleData]], None] = None


class FuturesInfoData(Struct, gc=False):
    t: int
    m: Union[str, None] = None
    o: Union[str, None] = None
    r: Union[str, None] = None
    R: Union[str, None] = None
    T: Union[int, None] = None


class FuturesInfoMsg(Struct, tag_field="ch", tag=FUTURES_INFO, gc=False):
    data: dict[str, FuturesInfoData]


Notification = Union[BookMsg, TradesMsg, TickerMsg, CandlesMsg, FuturesInfoMsg]


class Error(Struct, gc=False):
    code: int = 0
    message: str = ""
    description: str = ""


class Answer(Struct, gc=False):
    """An answer to one of our requests (or an error without one: ``id`` absent)."""

    id: Any = None
    result: Any = None
    error: Union[Error, None] = None
    ch: Union[str, None] = None


decoder = msgspec.json.Decoder(Notification)
answer_decoder = msgspec.json.Decoder(Answer)
#: a book message whose levels are not plain strings (``json_levels``), decoded whole
book_lists_decoder = msgspec.json.Decoder(BookMsgLists)
#: one side's levels of a ``BookData`` whose numbers the book does not read as text
levels_decoder = msgspec.json.Decoder(list[Level])
any_decoder = msgspec.json.Decoder()
encode = msgspec.json.Encoder().encode
