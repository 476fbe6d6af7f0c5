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


class Liquidation(NamedTuple):
    """A forced (liquidation) order. ``side`` is the side of the liquidation ORDER: ``sell`` when a
    long position was liquidated, ``buy`` when a short one was (venues that send the position's
    side, as Bybit does, are turned around). The optional fields come after the timestamps, as
    fields added to a schema do, with the defaults the schema declares."""

    exchange: str
    symbol: str
    side: str
    price: float
    size: float
    event_timestamp: int
    atom_timestamp: int
    order_id: str = ""
    order_status: str = ""
    filled_size: float = 0.0
    average_price: float = 0.0


class Status(NamedTuple):
    """Feed life. ``status`` is one of STATUS_VALUES; ``symbol`` is "" for a whole connection."""

    exchange: str
    symbol: str
    status: str
    reason: str
    event_timestamp: int
    atom_timestamp: int


class Raw(NamedTuple):
    """An untouched websocket frame, or a connection event, as the collector received it
    (``run --raw``; the input of ``atomfast process``). ``kind`` is one of RAW_KINDS; ``data``
    is the payload as text: UTF-8 as received, or, with ``binary``, one code point
    U+0000..U+00FF per byte (latin-1). See ``atomfast.processor``."""

    exchange: str
    symbol: str  # "": a frame belongs to a connection, not to a market
    session: str  # the collector process run (host-pid-random)
    connection: int  # connection number within the session
    kind: str
    url: str
    binary: bool
    data: str
    receive_ns: int  # receive time, ns since epoch
    event_timestamp: int  # receive time, ms
    atom_timestamp: int  # receive time, µs


RAW_KINDS = ("frame", "open", "attach", "close", "rest", "rest_error", "stop", "end")

STATUS_VALUES = ("connected", "subscribed", "snapshot", "resync", "disconnected", "stopped", "uncrossed")
#: ``uncrossed``: a book the venue lets cross (dYdX's indexer) was uncrossed by its documented
#: rule; the reason names the levels removed
#: said by the Kafka sink (symbol ""): the local queue is full and the feed waits
#: (``backpressure``), events go to local files (``spilling``), Kafka takes events again
#: (``recovered``); the reason tells how long and how many. Said by the files sink: the disk
#: refuses data (``disk_full``, ``disk_readonly``, ``disk_error``: events held in memory), more
#: than FILES_BUFFER_BYTES held and the feed waits (``backpressure``) or new events are dropped
#: and counted (``dropping``), the disk takes data again (``recovered``)
SINK_STATUS_VALUES = ("backpressure", "spilling", "recovered", "disk_full", "disk_readonly", "disk_error",
                      "dropping")
#: said by `atomfast serve` about a market of the cluster: started on a node, moved to another
#: (reason: from, to, why), handed over before a rebalance, failed to start, or unplaced (no
#: node has room under MAX_DATA_FEEDS; it stays in the desired set)
CONTROL_STATUS_VALUES = ("started", "moved", "handover", "failed", "unplaced")
#: said by `atomfast run` at start (symbol ""), when the previous run of the same exchange to the
#: same sink target ended without its orderly stop (SIGKILL, a crash, a power cut): the reason
#: names when that run started and last persisted its progress, what the sink had confirmed by
#: then (per topic: delivered count, per partition the last delivered offset and its time; or
#: the files written) and that events after those may be missing (``atomfast.runstate``)
RUN_STATUS_VALUES = ("unclean_end",)

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
    "liquidations": Liquidation,
    "status": Status,
    "raw": Raw,
}
