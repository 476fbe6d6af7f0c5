"""Deribit websocket (JSON-RPC 2.0 over ``wss://www.deribit.com/ws/api/v2``) as msgspec Structs.

Every frame is one JSON-RPC object: a notification ``{"method": "subscription", "params":
{"channel": ..., "data": ...}}``, a heartbeat ``{"method": "heartbeat", "params": {"type":
"test_request"|"heartbeat"}}``, or the answer to one of our requests (``result`` or ``error``,
with our ``id``).

A notification is decoded once, whole: ``Notification[channel, data]`` with the Struct of its
channel (``book``, ``trades``, ``ticker``, ``chart.trades``), chosen from the channel name read on
the raw bytes (``handler.DeribitScheme._channel_kind``). It accepts exactly the frames that
``Envelope`` accepts and that the channel's own decoder accepts in ``params.data``, and checks that
the channel decoded is of that kind (a frame it refuses goes the slow way: ``Envelope`` with
``data`` left as ``msgspec.Raw``, then the channel's decoder, so an error names the part at fault).
The one exception is the book's: its notification decoder (``ActionBook``) also refuses a level
whose action is not ``new``, ``change`` or ``delete``; such a frame goes the slow way too, where
``Book`` takes it and the handler refuses the level (the same bad-input kind as before).
Book prices and amounts stay ``msgspec.Raw``: the exact digits go to the book.
"""
from __future__ import annotations

import re
from typing import Annotated, Generic, Literal, TypeVar, Union

import msgspec
from msgspec import Meta, Raw, Struct

EMPTY = Raw(b"")


class RpcError(Struct, gc=False):
    code: int = 0
    message: str = ""


class Params(Struct, gc=False):
    channel: str = ""
    data: Raw = EMPTY
    type: str = ""  # heartbeat: "test_request" | "heartbeat"


class Envelope(Struct, gc=False):
    jsonrpc: str = ""
    method: str = ""
    params: Union[Params, None] = None
    id: Union[int, str, None] = None
    result: Raw = EMPTY
    error: Union[RpcError, None] = None


#: one book level: [action, price, amount]; action "new" | "change" | "delete"
Level = tuple[str, Raw, Raw]

_NO_SIZE = b"0"


class New(Struct, array_like=True, tag="new", forbid_unknown_fields=True, gc=False):
    """A book level ``["new", price, amount]`` (the notification's decoder: the book reads
    ``price`` and ``size`` from it as they were sent)."""

    price: Raw
    size: Raw


class Change(Struct, array_like=True, tag="change", forbid_unknown_fields=True, gc=False):
    """A book level ``["change", price, amount]``: the level's new amount."""

    price: Raw
    size: Raw


class Delete(Struct, array_like=True, tag="delete", forbid_unknown_fields=True, gc=False):
    """A book level ``["delete", price, amount]``: the level removed (``size`` 0, whatever the
    amount sent)."""

    price: Raw
    amount: Raw

    @property
    def size(self) -> bytes:
        return _NO_SIZE


#: a level of the notification's decoder: exactly the 3-item arrays ``Level`` takes whose action
#: is one of the three (any other goes the slow way, whose ``Level`` lets the handler refuse it)
Action = Union[New, Change, Delete]


class Book(Struct, gc=False):
    """``book.{instrument}.{interval}``: ``type`` "snapshot" (with ``change_id``) or "change"
    (with ``prev_change_id`` too)."""

    instrument_name: str
    change_id: int
    timestamp: int
    type: str = ""
    prev_change_id: Union[int, None] = None
    bids: list[Level] = []
    asks: list[Level] = []


class ActionBook(Struct, gc=False):
    """``Book`` as the notification's decoder reads it: each level a ``New``, ``Change`` or
    ``Delete`` (read by the book as it is); a frame with any other level goes the slow way."""

    instrument_name: str
    change_id: int
    timestamp: int
    type: str = ""
    prev_change_id: Union[int, None] = None
    bids: list[Action] = []
    asks: list[Action] = []


class Trade(Struct, gc=False):
    """One trade of ``trades.{instrument}.{interval}``; ``direction`` is the taker's side."""

    instrument_name: str
    trade_id: Union[str, int]
    timestamp: int
    price: float
    amount: float
    direction: str
    trade_seq: int = 0


class Ticker(Struct, gc=False):
    """``ticker.{instrument}.{interval}`` (the fields we publish; the rest is skipped)."""

    instrument_name: str
    timestamp: int
    best_bid_price: Union[float, None] = None
    best_bid_amount: Union[float, None] = None
    best_ask_price: Union[float, None] = None
    best_ask_amount: Union[float, None] = None
    mark_price: Union[float, None] = None
    open_interest: Union[float, None] = None
    current_funding: Union[float, None] = None
    funding_8h: Union[float, None] = None


class Chart(Struct, gc=False):
    """``chart.trades.{instrument}.{resolution}``: the current candle of that resolution."""

    tick: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    cost: Union[float, None] = None


C = TypeVar("C")
T = TypeVar("T")


def channel_of(kind: str):
    """A channel name of ``kind`` (``book`` of ``book.BTC-PERPETUAL.100ms``): the part before its
    first dot is ``kind``, exactly as ``channel.partition(".")[0] == kind`` (checked in msgspec)."""
    return Annotated[str, Meta(pattern=rf"\A{re.escape(kind)}(?:\.|\Z)")]


class Subscription(Struct, Generic[C, T], gc=False):
    """``params`` of a notification, its ``data`` decoded with the Struct of its channel."""

    channel: C
    data: T
    type: str = ""


class Notification(Struct, Generic[C, T], kw_only=True, gc=False):
    """A whole subscription notification; the other JSON-RPC fields are checked as ``Envelope``
    checks them."""

    method: Literal["subscription"]
    params: Subscription[C, T]
    jsonrpc: str = ""
    id: Union[int, str, None] = None
    result: Raw = EMPTY
    error: Union[RpcError, None] = None


envelope_decoder = msgspec.json.Decoder(Envelope)
book_decoder = msgspec.json.Decoder(Book)
trades_decoder = msgspec.json.Decoder(list[Trade])
ticker_decoder = msgspec.json.Decoder(Ticker)
chart_decoder = msgspec.json.Decoder(Chart)
channels_decoder = msgspec.json.Decoder(list[str])
#: a notification of each channel kind, decoded once
book_notification = msgspec.json.Decoder(Notification[channel_of("book"), ActionBook])
trades_notification = msgspec.json.Decoder(Notification[channel_of("trades"), list[Trade]])
ticker_notification = msgspec.json.Decoder(Notification[channel_of("ticker"), Ticker])
chart_notification = msgspec.json.Decoder(Notification[channel_of("chart"), Chart])
encode = msgspec.json.Encoder().encode
