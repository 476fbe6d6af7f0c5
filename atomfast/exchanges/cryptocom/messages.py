"""Crypto.com Exchange API v1 market-data websocket and REST messages: msgspec Structs, only the
fields used.

Every frame is one envelope (https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html,
"Request Format"/"Response Format"; the market-data channel pages
https://exchange-developer.crypto.com/exchange/v1/docs/api/websocket/ws-channel-...):

- a channel push ``{"id": -1, "method": "subscribe", "code": 0, "result": {"instrument_name":
  .., "subscription": .., "channel": .., "data": [..]}}`` (the first push of some channels, and
  the answer to a subscription of ``ticker``/``funding``/``mark``, carries the request's ``id``);
  since 2024-01-04 the fields come in that order (id, method, code, instrument_name,
  subscription, channel, ...): the scheme reads ``channel`` on the raw bytes and decodes the
  frame once with that channel's Struct;
- a bare answer ``{"id": 1, "method": "subscribe", "code": 0, "channel": "book.BTC_USD.50"}``
  (an error: ``code`` != 0 and ``message``), ``{"id": 2, "method": "unsubscribe", "code": 0}``;
- the server's heartbeat ``{"id": <ms>, "method": "public/heartbeat", "code": 0}``.

The documentation's schemas type ``t``, ``u``, ``pu``, ``id`` and ``code`` as int64 written as
text while its examples (and the wire) send JSON numbers: the decoders are not strict, so both
are read (a text that is no integer is refused).

Book levels are ``[price, quantity, number of orders]`` texts; the exact texts go to the
compiled book.
"""
from __future__ import annotations

from typing import Optional, Union

import msgspec
from msgspec import Struct

Level = list[str]


class Head(Struct, gc=False):
    """The envelope with ``result`` left undecoded: answers, heartbeats, errors (``message``)."""

    method: str = ""
    id: int = 0
    code: int = 0
    channel: str = ""
    message: str = ""
    result: msgspec.Raw = msgspec.Raw(b"null")


def has_result(head: Head) -> bool:
    """Whether the envelope carries a ``result`` (absent or null: none)."""
    return bytes(head.result) != b"null"


class ResultHead(Struct, gc=False):
    channel: str = ""
    instrument_name: str = ""


# --- book.{instrument_name}.{depth} ------------------------------------------------------------


class BookUpdate(Struct, gc=False):
    bids: list[Level] = []
    asks: list[Level] = []


class BookItem(Struct, gc=False):
    """A snapshot (channel ``book``: ``bids``, ``asks``, ``u``) or a delta (``book.update``:
    ``update``, ``u``, ``pu``); ``t`` the publish time (ms), ``tt`` the last book change."""

    u: int
    t: int = 0
    tt: int = 0
    pu: Optional[int] = None
    bids: list[Level] = []
    asks: list[Level] = []
    update: Optional[BookUpdate] = None


class BookResult(Struct, gc=False):
    instrument_name: str
    channel: str
    data: list[BookItem]


class BookMsg(Struct, gc=False):
    result: BookResult


# --- trade.{instrument_name} -------------------------------------------------------------------


class TradeItem(Struct, gc=False):
    """``d`` the trade id, ``s`` the TAKER's side (changelog 2024-02-12), ``t`` ms."""

    d: Union[str, int]
    t: int
    p: str
    q: str
    s: str
    i: str = ""


class TradeResult(Struct, gc=False):
    instrument_name: str
    data: list[TradeItem]


class TradeMsg(Struct, gc=False):
    result: TradeResult


# --- ticker.{instrument_name} ------------------------------------------------------------------


class TickerItem(Struct, gc=False):
    """Best bid ``b``/``bs``, best ask ``k``/``ks`` (null where a side is empty), ``oi`` the open
    interest, ``t`` ms."""

    t: int
    b: Optional[str] = None
    bs: Optional[str] = None
    k: Optional[str] = None
    ks: Optional[str] = None
    oi: Optional[str] = None
    i: str = ""


class TickerResult(Struct, gc=False):
    instrument_name: str
    data: list[TickerItem]


class TickerMsg(Struct, gc=False):
    result: TickerResult


# --- candlestick.{time_frame}.{instrument_name} ------------------------------------------------


class CandleItem(Struct, gc=False):
    """``t`` the start (ms), ``ut`` the last update (ms, on the wire, not in the docs)."""

    t: int
    o: str
    h: str
    l: str  # noqa: E741 (the venue's field)
    c: str
    v: str
    ut: int = 0


class CandleResult(Struct, gc=False):
    instrument_name: str
    data: list[CandleItem]
    interval: str = ""
    subscription: str = ""


class CandleMsg(Struct, gc=False):
    result: CandleResult


# --- funding / estimatedfunding / mark.{instrument_name} ---------------------------------------


class ValueItem(Struct, gc=False):
    v: str
    t: int


class ValueResult(Struct, gc=False):
    instrument_name: str
    channel: str
    data: list[ValueItem]


class ValueMsg(Struct, gc=False):
    result: ValueResult


# --- REST: public/get-instruments --------------------------------------------------------------


class InstrumentRow(Struct, gc=False):
    symbol: str
    inst_type: str
    base_ccy: str = ""
    quote_ccy: str = ""
    quote_decimals: int = 0
    quantity_decimals: int = 0
    price_tick_size: str = ""
    qty_tick_size: str = ""
    expiry_timestamp_ms: int = 0
    tradable: bool = True


class InstrumentsResult(Struct, gc=False):
    data: list[InstrumentRow]


class InstrumentsAnswer(Struct, gc=False):
    result: InstrumentsResult
    code: int = 0


head_decoder = msgspec.json.Decoder(Head, strict=False)
result_head_decoder = msgspec.json.Decoder(ResultHead, strict=False)
book_decoder = msgspec.json.Decoder(BookMsg, strict=False)
trade_decoder = msgspec.json.Decoder(TradeMsg, strict=False)
ticker_decoder = msgspec.json.Decoder(TickerMsg, strict=False)
candle_decoder = msgspec.json.Decoder(CandleMsg, strict=False)
value_decoder = msgspec.json.Decoder(ValueMsg, strict=False)
instruments_decoder = msgspec.json.Decoder(InstrumentsAnswer, strict=False)
encode = msgspec.json.Encoder().encode
