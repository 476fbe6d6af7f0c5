"""Hyperliquid: websocket and ``/info`` messages as msgspec Structs (only the fields used).
Decoders are created once, at import.

Shapes from the current documentation (hyperliquid.gitbook.io, for-developers/api/websocket/
subscriptions, the TypeScript definitions there) and real messages (see tests/data/hyperliquid):

* every market-data frame is ``{"channel": <type>, "data": <payload>}``;
* ``l2Book``: ``WsBook {coin, levels: [bids, asks], time}``, each level ``WsLevel {px, sz, n}``
  (``n``: the number of orders, not used); every message is a whole snapshot of the top levels;
* ``trades``: ``WsTrade[] {coin, side, px, sz, hash, time, tid, users: [buyer, seller]}``
  (``side`` ``B``: the taker bought, ``A``: the taker sold);
* ``activeAssetCtx``: ``{coin, ctx: {funding, openInterest, markPx, oraclePx, ...}}`` (perps);
* ``candle``: ``Candle {t, T, s, i, o, c, h, l, v, n}`` (one object; a list is read too);
* ``subscriptionResponse`` (the subscription echoed), ``pong``, ``error`` (a string).
* ``POST /info`` ``{"type":"meta"}``: ``{universe: [{name, szDecimals, isDelisted?}, ...]}``;
  ``{"type":"spotMeta"}``: ``{tokens: [{name, index, szDecimals}], universe: [{name, tokens:
  [base, quote], index}]}``.

Prices and sizes stay strings until the book parses them; a level decodes into a Struct whose
``price``/``size`` attributes the compiled book reads directly.
"""
from __future__ import annotations

from typing import Any, Union

import msgspec
from msgspec import Raw, Struct, field


class Level(Struct, gc=False):
    price: str = field(name="px")
    size: str = field(name="sz")


class Book(Struct, gc=False):
    coin: str
    levels: list[list[Level]]
    time: int


class Trade(Struct, gc=False):
    coin: str
    side: str
    px: str
    sz: str
    time: int
    tid: int
    users: list[str] = []


class AssetCtx(Struct, gc=False):
    funding: Union[str, None] = None
    openInterest: Union[str, None] = None
    markPx: Union[str, None] = None


class ActiveAssetCtx(Struct, gc=False):
    coin: str
    ctx: AssetCtx


class Candle(Struct, gc=False):
    t: int
    T: int
    s: str
    i: str
    o: str
    c: str
    h: str
    l: str  # noqa: E741 (Hyperliquid's field name)
    v: str
    n: int


class BookFrame(Struct, gc=False):
    channel: str
    data: Book


class TradesFrame(Struct, gc=False):
    channel: str
    data: list[Trade]


class CtxFrame(Struct, gc=False):
    channel: str
    data: ActiveAssetCtx


class CandleFrame(Struct, gc=False):
    channel: str
    data: Union[Candle, list[Candle]]


class Subscription(Struct, gc=False):
    type: str = ""
    coin: Any = None


class SubscriptionAnswer(Struct, gc=False):
    method: str = ""
    subscription: Subscription = field(default_factory=Subscription)


class AnswerFrame(Struct, gc=False):
    channel: str
    data: SubscriptionAnswer = field(default_factory=SubscriptionAnswer)


class Probe(Struct, gc=False):
    """Any frame: its channel (None where it names none) and its data, undecoded."""

    channel: Any = None
    data: Raw = Raw()


# /info listings (only what the instruments need)


class PerpAsset(Struct, gc=False):
    name: str
    szDecimals: int
    isDelisted: Union[bool, None] = None


class Meta(Struct, gc=False):
    universe: list[PerpAsset]


class SpotToken(Struct, gc=False):
    name: str
    index: int
    szDecimals: int


class SpotPair(Struct, gc=False):
    name: str
    tokens: list[int]
    index: int = -1


class SpotMeta(Struct, gc=False):
    tokens: list[SpotToken]
    universe: list[SpotPair]


book_frame = msgspec.json.Decoder(BookFrame)
trades_frame = msgspec.json.Decoder(TradesFrame)
ctx_frame = msgspec.json.Decoder(CtxFrame)
candle_frame = msgspec.json.Decoder(CandleFrame)
answer_frame = msgspec.json.Decoder(AnswerFrame)
probe = msgspec.json.Decoder(Probe)
meta = msgspec.json.Decoder(Meta)
spot_meta = msgspec.json.Decoder(SpotMeta)

encode = msgspec.json.Encoder().encode


class ErrorFrame(Struct, gc=False):
    channel: str
    data: Any = None


error_frame = msgspec.json.Decoder(ErrorFrame)
