"""Phemex websocket messages (``wss://phemex.com/ws``) as msgspec Structs.

Phemex's messages carry no type tag: what a message is shows in which key it holds (``book``,
``orderbook_p``, ``trades``, ``trades_p``, ``kline``, ``kline_p``; ``method``
``perp_market24h_pack_p.update``; ``result``/``error`` for an answer). The scheme reads that key
on the raw bytes (``PhemexScheme._route``) and decodes the frame with that kind's Struct, which
declares only the fields used. Unknown fields are ignored.

Scaled messages (spot, "Perpetual" contracts) hold integers (``Ep``/``Ev``, contract counts);
the ``_p`` messages (USDT-M) hold strings. Shapes: Public-Spot-API-en.md,
Public-Contract-API-en.md and Public-Hedged-Perpetual-API.md of github.com/phemex/phemex-api-docs.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import Meta, Raw, Struct


class ScaledSides(Struct, gc=False):
    asks: list[tuple[int, int]]  # [priceEp, size]
    bids: list[tuple[int, int]]


class StringSides(Struct, gc=False):
    asks: list[tuple[str, str]]  # [price, size]
    bids: list[tuple[str, str]]


class Book(Struct, gc=False):
    """``orderbook`` (scaled): ``type`` snapshot (on subscription, then every 60 s) or
    incremental; ``sequence`` only increases; ``timestamp`` in ns."""

    book: ScaledSides
    sequence: int
    symbol: str
    timestamp: int
    type: str


class BookP(Struct, gc=False):
    """``orderbook_p`` (USDT-M): as ``Book`` with string levels."""

    orderbook_p: StringSides
    sequence: int
    symbol: str
    timestamp: int
    type: str


#: what the scheme accepts of a scaled trade's values (``parse.scaled_float``: an int in
#: [0, 2**63); ``parse.ns_ok``; a price above 0; the taker's side), checked as it is decoded
_TIME_NS = Annotated[int, Meta(ge=0, le=2**63 - 1)]
_PRICE_EP = Annotated[int, Meta(ge=1, le=2**63 - 1)]
_SIZE = Annotated[int, Meta(ge=0, le=2**63 - 1)]


class Trades(Struct, gc=False):
    """``trade`` (scaled): rows [timestamp ns, "Buy"|"Sell" (the taker), priceEp, size], their
    values checked in the decoder: a message it refuses is decoded again as ``TradesAny`` to
    say what is wrong (the scheme's checks)."""

    trades: list[tuple[_TIME_NS, Literal["Buy", "Sell"], _PRICE_EP, _SIZE]]
    symbol: str
    type: str
    sequence: int = 0


class TradesAny(Struct, gc=False):
    """``Trades`` without the checks of its values."""

    trades: list[tuple[int, str, int, int]]
    symbol: str
    type: str
    sequence: int = 0


class TradesP(Struct, gc=False):
    """``trade_p`` (USDT-M): rows [timestamp ns, side, price, size] (strings)."""

    trades_p: list[tuple[int, str, str, str]]
    symbol: str
    type: str
    sequence: int = 0


class Kline(Struct, gc=False):
    """``kline`` (scaled): rows [start s, interval s, lastCloseEp, openEp, highEp, lowEp,
    closeEp, volume, turnoverEv]."""

    kline: list[tuple[int, int, int, int, int, int, int, int, int]]
    symbol: str
    type: str


class KlineP(Struct, gc=False):
    """``kline_p`` (USDT-M): rows [start s, interval s, lastClose, open, high, low, close, volume,
    turnover] (prices as strings)."""

    kline_p: list[tuple[int, int, str, str, str, str, str, str, str]]
    symbol: str
    type: str


class Pack(Struct, gc=False):
    """``perp_market24h_pack_p.update``: one row per USDT-M market, its columns named by
    ``fields`` (sent with the snapshot; incremental messages may leave it out)."""

    data: list[list[Union[str, int, float, None]]]
    timestamp: int
    method: str = ""
    type: str = ""
    fields: Union[list[str], None] = None


class ErrorObj(Struct, gc=False):
    code: Any = None
    message: Any = None


class Answer(Struct, gc=False):
    """The answer to a request (``{"error": null, "id": N, "result": {...} | "pong"}``)."""

    error: Union[ErrorObj, None] = None
    id: Any = None
    result: Raw = Raw(b"null")


class Head(Struct, gc=False):
    """Just enough of a message the decoders refused to name its market."""

    symbol: Any = None


book_decoder = msgspec.json.Decoder(Book)
book_p_decoder = msgspec.json.Decoder(BookP)
trades_decoder = msgspec.json.Decoder(Trades)
trades_any_decoder = msgspec.json.Decoder(TradesAny)
trades_p_decoder = msgspec.json.Decoder(TradesP)
kline_decoder = msgspec.json.Decoder(Kline)
kline_p_decoder = msgspec.json.Decoder(KlineP)
pack_decoder = msgspec.json.Decoder(Pack)
answer_decoder = msgspec.json.Decoder(Answer)
head_decoder = msgspec.json.Decoder(Head)
any_decoder = msgspec.json.Decoder()

encode = msgspec.json.Encoder().encode
