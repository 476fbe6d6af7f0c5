"""Bitstamp websocket v2 messages (``wss://ws.bitstamp.net``) as msgspec Structs.

Every message is ``{"data": {...}, "channel": "<name>_<market>", "event": "<event>"}``: one
tagged union on ``event`` (msgspec finds the tag wherever it stands), decoded in one pass.
Decoders are created once, at import. Unknown fields are ignored.
"""
from __future__ import annotations

from typing import Any, Union

import msgspec
from msgspec import Raw, Struct

# --------------------------------------------------------------------------------------------
# diff_order_book_<market> (and order_book_<market>: the same shape, top 100): event "data"


class BookData(Struct, gc=False):
    microtimestamp: str
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    timestamp: str = ""


class BookMsg(Struct, tag_field="event", tag="data", gc=False):
    channel: str
    data: BookData


# --------------------------------------------------------------------------------------------
# live_trades_<market>: event "trade"


class TradeData(Struct, gc=False):
    """``type``: 0 the taker bought, 1 the taker sold. ``buy_order_id``/``sell_order_id``: the
    two orders (the taker's is the one on the ``type`` side)."""

    id: int
    type: int
    microtimestamp: str
    price_str: str = ""
    amount_str: str = ""
    price: Raw = Raw(b"")  # the JSON number (older messages; ``*_str`` is used when present)
    amount: Raw = Raw(b"")
    buy_order_id: Union[int, None] = None
    sell_order_id: Union[int, None] = None
    timestamp: str = ""


class TradeMsg(Struct, tag_field="event", tag="trade", gc=False):
    channel: str
    data: TradeData


# --------------------------------------------------------------------------------------------
# live_orders_<market>: events "order_created", "order_changed", "order_deleted"


class OrderData(Struct, gc=False):
    """``order_type``: 0 buy, 1 sell. ``amount`` is the order's remaining amount;
    ``microtimestamp`` the time of this action (``datetime``: the order's creation, seconds)."""

    id: int
    order_type: int
    microtimestamp: str
    price_str: str = ""
    amount_str: str = ""
    price: Raw = Raw(b"")  # the JSON number (older messages; ``*_str`` is used when present)
    amount: Raw = Raw(b"")
    datetime: str = ""


class OrderCreated(Struct, tag_field="event", tag="order_created", gc=False):
    channel: str
    data: OrderData


class OrderChanged(OrderCreated, tag="order_changed", gc=False):
    pass


class OrderDeleted(OrderCreated, tag="order_deleted", gc=False):
    pass


# --------------------------------------------------------------------------------------------
# control


class Subscribed(Struct, tag_field="event", tag="bts:subscription_succeeded", gc=False):
    channel: str = ""


class Unsubscribed(Struct, tag_field="event", tag="bts:unsubscription_succeeded", gc=False):
    channel: str = ""


class RequestReconnect(Struct, tag_field="event", tag="bts:request_reconnect", gc=False):
    pass


class Heartbeat(Struct, tag_field="event", tag="bts:heartbeat", gc=False):
    pass


class ErrorData(Struct, gc=False):
    code: Any = None
    message: str = ""


class BtsError(Struct, tag_field="event", tag="bts:error", gc=False):
    channel: str = ""
    data: Union[ErrorData, None] = None


Message = Union[BookMsg, TradeMsg, OrderCreated, OrderChanged, OrderDeleted, Subscribed, Unsubscribed,
                RequestReconnect, Heartbeat, BtsError]


class AnyMessage(Struct, gc=False):
    """Just enough of a message that failed validation to say what it was."""

    event: Any = None
    channel: Any = None


# --------------------------------------------------------------------------------------------
# REST: GET /api/v2/order_book/{market} (group=1: levels) and ?group=2 (orders with their id)


class RestBook(Struct, gc=False):
    microtimestamp: str
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    timestamp: str = ""


class RestOrders(Struct, gc=False):
    microtimestamp: str
    bids: list[tuple[str, str, Union[int, str]]]  # (price, amount, order id)
    asks: list[tuple[str, str, Union[int, str]]]
    timestamp: str = ""


decoder = msgspec.json.Decoder(Message)
any_decoder = msgspec.json.Decoder(AnyMessage)
rest_book_decoder = msgspec.json.Decoder(RestBook)
rest_orders_decoder = msgspec.json.Decoder(RestOrders)

encode = msgspec.json.Encoder().encode
