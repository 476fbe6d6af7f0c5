"""Coinbase Exchange websocket messages (``wss://ws-feed.exchange.coinbase.com``) as msgspec
Structs: one tagged union on ``type``, decoded in one pass. Decoders are created once, at import.

Prices and sizes are decimal strings (kept as ``str``, handed to the books exactly).
Unknown fields are ignored (Coinbase adds fields over time); a message whose ``type`` is not in
the union, or whose fields have the wrong types, fails validation and is looked at again by
``any_decoder`` to say what it was.
"""
from __future__ import annotations

from typing import Any, Union

import msgspec
from msgspec import Struct

# --------------------------------------------------------------------------------------------
# level2 / level2_batch


class Snapshot(Struct, tag_field="type", tag="snapshot", gc=False):
    product_id: str
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    time: str = ""


class L2Update(Struct, tag_field="type", tag="l2update", gc=False):
    product_id: str
    changes: list[tuple[str, str, str]]  # (side, price, new size at that price)
    time: str = ""


# --------------------------------------------------------------------------------------------
# ticker, matches (and the match of the full channel)


class Ticker(Struct, tag_field="type", tag="ticker", gc=False):
    product_id: str
    best_bid: Union[str, None] = None
    best_ask: Union[str, None] = None
    best_bid_size: Union[str, None] = None
    best_ask_size: Union[str, None] = None
    time: str = ""
    sequence: int = 0


class Match(Struct, tag_field="type", tag="match", gc=False):
    """A trade. ``side`` is the MAKER's side: the taker is on the other side."""

    product_id: str
    trade_id: int
    maker_order_id: str
    taker_order_id: str
    side: str
    size: str
    price: str
    sequence: int
    time: str


class LastMatch(Match, tag="last_match", gc=False):
    """Sent once when subscribing to ``matches``: the product's last trade before that."""


# --------------------------------------------------------------------------------------------
# full channel (level 3): sequenced per product


class Received(Struct, tag_field="type", tag="received", gc=False):
    """An order reached the matching engine (not on the book yet)."""

    product_id: str
    sequence: int
    order_id: str = ""
    side: str = ""
    time: str = ""


class Open(Struct, tag_field="type", tag="open", gc=False):
    """The order now rests on the book with ``remaining_size``."""

    product_id: str
    sequence: int
    order_id: str
    side: str
    price: str
    remaining_size: str
    time: str = ""


class Done(Struct, tag_field="type", tag="done", gc=False):
    """The order left the book (or never got there): filled or canceled."""

    product_id: str
    sequence: int
    order_id: str
    side: str = ""
    reason: str = ""
    price: Union[str, None] = None
    remaining_size: Union[str, None] = None
    time: str = ""


class Change(Struct, tag_field="type", tag="change", gc=False):
    """Size (self-trade prevention, ``reason: "STP"``) or price and size (``reason:
    "modify_order"``, with ``old_price``/``new_price``) of an order changed."""

    product_id: str
    sequence: int
    order_id: str
    side: str = ""
    new_size: Union[str, None] = None
    old_size: Union[str, None] = None
    price: Union[str, None] = None
    new_price: Union[str, None] = None
    old_price: Union[str, None] = None
    reason: str = ""
    time: str = ""


class Activate(Struct, tag_field="type", tag="activate", gc=False):
    """A stop order was activated (not on the book; not sequenced)."""

    product_id: str = ""


# --------------------------------------------------------------------------------------------
# control


class SubscribedChannel(Struct, gc=False):
    name: str
    product_ids: list[str] = []


class Subscriptions(Struct, tag_field="type", tag="subscriptions", gc=False):
    channels: list[Union[SubscribedChannel, str]] = []


class Heartbeat(Struct, tag_field="type", tag="heartbeat", gc=False):
    product_id: str = ""
    sequence: int = 0


class Error(Struct, tag_field="type", tag="error", gc=False):
    message: str = ""
    reason: str = ""


class StatusMsg(Struct, tag_field="type", tag="status", gc=False):
    pass


Message = Union[L2Update, Snapshot, Match, Ticker, Received, Open, Done, Change, LastMatch, Activate,
                Subscriptions, Heartbeat, Error, StatusMsg]

#: the full channel's sequenced order messages
FULL_TYPES = (Received, Open, Done, Match, Change)


class AnyMessage(Struct, gc=False):
    """Just enough of a message that failed validation to say what it was."""

    type: Any = None
    product_id: Any = None


# --------------------------------------------------------------------------------------------
# REST: GET /products/{product_id}/book?level=3


class Level3Book(Struct, gc=False):
    sequence: int
    bids: list[tuple[str, str, str]]  # (price, size, order_id), best first, queue order
    asks: list[tuple[str, str, str]]
    time: str = ""


# --------------------------------------------------------------------------------------------
# decoders (created once)

decoder = msgspec.json.Decoder(Message)
any_decoder = msgspec.json.Decoder(AnyMessage)
raw_decoder = msgspec.json.Decoder()
level3_decoder = msgspec.json.Decoder(Level3Book)

encode = msgspec.json.Encoder().encode
