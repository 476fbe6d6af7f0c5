"""Bybit v5 public websocket messages as msgspec Structs (only the fields used).

Every market-data frame is an object ``{"topic": "<kind>.<...>", "type": "snapshot"|"delta",
"ts": <ms>, "data": ...}`` (options add an ``id``; books and trades a ``cts``). The scheme reads
the topic's kind on the raw bytes (``handler.BybitScheme._topic_kind``) and decodes the frame
once with that kind's decoder; each decoder checks that ``topic`` really is of its kind
(``topic_of``), so a frame whose ``"topic"`` was found somewhere else is refused, never misread.

Book levels stay text (``[price, size]`` strings): the exact digits go to the compiled book.
Ticker fields are text too, every one optional: a ``delta`` carries only what changed, and an
empty string means "no value" (Bybit sends ``""`` for fields that do not apply).

Control frames (``op`` answers: subscribe acks, pongs; the option endpoint's ``COMMAND_RESP``)
are ``Control``.

Sources (docs: https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook, .../trade,
.../ticker, .../kline, .../all-liquidation; https://bybit-exchange.github.io/docs/v5/ws/connect).
"""
from __future__ import annotations

import re
from typing import Annotated, Union

import msgspec
from msgspec import Meta, Struct

#: one book level: [price, size] as text
Level = tuple[str, str]


def topic_of(kind: str):
    """A topic of ``kind`` (``orderbook`` of ``orderbook.50.BTCUSDT``), checked in msgspec."""
    return Annotated[str, Meta(pattern=rf"\A{re.escape(kind)}\.")]


class BookData(Struct, gc=False):
    s: str
    u: int
    b: list[Level] = []
    a: list[Level] = []
    seq: int = 0


class BookMsg(Struct, gc=False):
    """``orderbook.{depth}.{symbol}``: ``snapshot`` (the whole book to ``depth``) or ``delta``
    (levels changed: size 0 removes); ``u`` the update id, one more per message."""

    topic: topic_of("orderbook")
    type: str
    ts: int
    data: BookData


class TradeItem(Struct, gc=False):
    """One trade: ``S`` is the taker's side (Buy/Sell), ``i`` the trade id."""

    T: int
    s: str
    S: str
    v: str
    p: str
    i: str


class TradeMsg(Struct, gc=False):
    """``publicTrade.{symbol}`` (options: ``publicTrade.{baseCoin}``)."""

    topic: topic_of("publicTrade")
    ts: int
    data: list[TradeItem]
    type: str = ""


class TickerData(Struct, gc=False):
    """The ticker fields we publish (linear/inverse names, and the option names), all optional."""

    symbol: str
    bid1Price: Union[str, None] = None
    bid1Size: Union[str, None] = None
    ask1Price: Union[str, None] = None
    ask1Size: Union[str, None] = None
    bidPrice: Union[str, None] = None  # options
    bidSize: Union[str, None] = None
    askPrice: Union[str, None] = None
    askSize: Union[str, None] = None
    markPrice: Union[str, None] = None
    openInterest: Union[str, None] = None
    fundingRate: Union[str, None] = None
    nextFundingTime: Union[str, None] = None


class TickerMsg(Struct, gc=False):
    """``tickers.{symbol}``: linear/inverse ``snapshot`` then ``delta``s (only the fields that
    changed); spot and options send snapshots only."""

    topic: topic_of("tickers")
    ts: int
    data: TickerData
    type: str = ""


class Kline(Struct, gc=False):
    start: int
    end: int
    interval: str
    open: str
    close: str
    high: str
    low: str
    volume: str
    confirm: bool
    timestamp: int = 0


class KlineMsg(Struct, gc=False):
    """``kline.{interval}.{symbol}``: the current candle(s); ``confirm`` true once closed."""

    topic: topic_of("kline")
    ts: int
    data: list[Kline]
    type: str = ""


class Liquidation(Struct, gc=False):
    """One liquidation: ``S`` is the POSITION side (Buy: a long was liquidated), ``p`` the
    bankruptcy price, ``v`` the executed size."""

    T: int
    s: str
    S: str
    v: str
    p: str


class LiquidationMsg(Struct, gc=False):
    """``allLiquidation.{symbol}``."""

    topic: topic_of("allLiquidation")
    ts: int
    data: list[Liquidation]
    type: str = ""


class CommandData(Struct, gc=False):
    failTopics: list[str] = []
    successTopics: list[str] = []


class Control(Struct, gc=False):
    """An answer to one of our ``op``s: ``{"success": .., "ret_msg": .., "op": "subscribe"|"ping"}``,
    ``{"op": "pong", "args": [..]}``, or the option endpoint's ``{"type": "COMMAND_RESP",
    "success": .., "data": {"failTopics": [..], "successTopics": [..]}}``."""

    op: str = ""
    success: Union[bool, None] = None
    ret_msg: str = ""
    type: str = ""
    data: Union[CommandData, None] = None


class Head(Struct, gc=False):
    """What a frame that failed its kind's decoder is: its topic, its symbol where readable."""

    topic: Union[str, None] = None


book_decoder = msgspec.json.Decoder(BookMsg)
trade_decoder = msgspec.json.Decoder(TradeMsg)
ticker_decoder = msgspec.json.Decoder(TickerMsg)
kline_decoder = msgspec.json.Decoder(KlineMsg)
liquidation_decoder = msgspec.json.Decoder(LiquidationMsg)
control_decoder = msgspec.json.Decoder(Control)
head_decoder = msgspec.json.Decoder(Head)
encode = msgspec.json.Encoder().encode
