"""Normalised event types, one per schema in ``schemas/`` (field names and order identical).

Every event is a ``NamedTuple``: a plain tuple to the encoder (fields in schema order), named
fields to a person. ``TOPICS`` maps a topic name to its event type; ``tests/test_events.py``
checks that each type mirrors its ``.avsc`` exactly.

Semantics (see DESIGN.md): ``side`` is ``buy`` (bid) or ``sell`` (ask); ``taker_side`` is the
aggressor; L2 ``size`` is the new total at ``price`` (0 removes the level); L3 ``size`` is the
order's remaining size (0 removes the order). ``event_timestamp`` is exchange time in ms since
epoch; ``atom_timestamp`` is local receive time in µs since epoch.
"""
from __future__ import annotations

from typing import NamedTuple

BUY = "buy"
SELL = "sell"


class Lob(NamedTuple):
    exchange: str
    symbol: str
    price: float
    size: float
    side: str
    event_timestamp: int
    atom_timestamp: int


class LobL3(NamedTuple):
    exchange: str
    symbol: str
    price: float
    size: float
    side: str
    order_id: str
    event_timestamp: int
    atom_timestamp: int


class Trade(NamedTuple):
    exchange: str
    symbol: str
    price: float
    size: float
    taker_side: str
    trade_id: str
    event_timestamp: int
    atom_timestamp: int


class TradeL3(NamedTuple):
    exchange: str
    symbol: str
    price: float
    size: float
    taker_side: str
    trade_id: str
    maker_order_id: str
    taker_order_id: str
    event_timestamp: int
    atom_timestamp: int


class Ticker(NamedTuple):
    exchange: str
    symbol: str
    bid_price: float
    bid_size: float
    ask_price: float
    ask_size: float
    event_timestamp: int
    atom_timestamp: int


class Spread(NamedTuple):
    """Best bid/ask of atomfast's own book; emitted when best price or size changes."""

    exchange: str
    symbol: str
    bid_price: float
    bid_size: float
    ask_price: float
    ask_size: float
    event_timestamp: int
    atom_timestamp: int


class Candle(NamedTuple):
    exchange: str
    symbol: str
    start: int
    end: int
    interval: str
    trades: int
    closed: bool
    o: float
    h: float
    l: float  # noqa: E741 (schema field name)
    c: float
    v: float
    event_timestamp: int
    atom_timestamp: int


class FundingRate(NamedTuple):
    exchange: str
    symbol: str
    mark_price: float
    funding_rate: float
    next_funding_time: int
    predicted_rate: float
    event_timestamp: int
    atom_timestamp: int


class OpenInterest(NamedTuple):
    exchange: str
    symbol: str
    open_interest: float
    event_timestamp: int
    atom_timestamp: int


class Status(NamedTuple):
    """Feed life. ``status`` is one of STATUS_VALUES; ``symbol`` is "" for a whole connection."""

    exchange: str
    symbol: str
    status: str
    reason: str
    event_timestamp: int
    atom_timestamp: int


STATUS_VALUES = ("connected", "subscribed", "snapshot", "resync", "disconnected", "stopped")

TOPICS: dict[str, type] = {
    "lob": Lob,
    "lob_l3": LobL3,
    "trades": Trade,
    "trades_l3": TradeL3,
    "ticker": Ticker,
    "spread": Spread,
    "candle": Candle,
    "funding_rate": FundingRate,
    "open_interest": OpenInterest,
    "status": Status,
}
