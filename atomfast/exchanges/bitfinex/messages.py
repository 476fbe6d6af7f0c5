"""Bitfinex websocket v2 messages as msgspec Structs (``wss://api-pub.bitfinex.com/ws/2``).
Decoders are created once, at import.

Channel data are arrays ``[CHANNEL_ID, payload(, SEQ)]``: with the ``conf`` flag SEQ_ALL
(65536) every one of them ends with the connection's sequence number, which is why each frame
Struct below ends with an optional ``seq``. The payload's shape depends on the channel (known
from the ``subscribed`` event) and on whether it is a snapshot (an array of rows), an update (one
row) or a tagged message (``"hb"``, ``"cs"``, ``"te"``, ``"tu"``); the scheme peeks at the
bytes after the channel id to choose the Struct, so each frame is decoded once.

Book prices and amounts are kept as ``msgspec.Raw`` (the exact JSON number text) and handed to
the book as such, never through a float: Bitfinex's checksums are computed over that text.
Trades, tickers, candles and the derivatives status are floats (they only become events).

Rows may grow: Bitfinex may append fields to any array without a version change, and array-like
Structs ignore trailing elements they do not name.

Events (``{"event": ...}``: info, conf, subscribed, unsubscribed, error, pong) decode into one
loose Struct.
"""
from __future__ import annotations

from typing import Any, Union

import msgspec
from msgspec import Raw, Struct

# --------------------------------------------------------------------------------------------
# book P0 (price aggregated) and R0 (raw: one row per order)


class P0Level(Struct, array_like=True, gc=False):
    """``[PRICE, COUNT, AMOUNT]``: AMOUNT > 0 bid, < 0 ask; COUNT 0 deletes the level
    (AMOUNT 1 = bid, -1 = ask)."""

    price: Raw
    count: int
    amount: Raw


class P0Snapshot(Struct, array_like=True, gc=False):
    chan: int
    levels: list[P0Level]
    seq: Union[int, None] = None


class P0Update(Struct, array_like=True, gc=False):
    chan: int
    level: P0Level
    seq: Union[int, None] = None


class R0Order(Struct, array_like=True, gc=False):
    """``[ORDER_ID, PRICE, AMOUNT]``: PRICE 0 removes the order (AMOUNT 1 = bid, -1 = ask)."""

    order_id: int
    price: Raw
    amount: Raw


class R0Snapshot(Struct, array_like=True, gc=False):
    chan: int
    orders: list[R0Order]
    seq: Union[int, None] = None


class R0Update(Struct, array_like=True, gc=False):
    chan: int
    order: R0Order
    seq: Union[int, None] = None


class Checksum(Struct, array_like=True, gc=False):
    """``[CHANNEL_ID, "cs", CHECKSUM(, SEQ)]``: signed CRC-32 of the top 25 levels (orders)."""

    chan: int
    tag: str
    checksum: int
    seq: Union[int, None] = None


# --------------------------------------------------------------------------------------------
# trades, ticker, candles, derivatives status


class TradeRow(Struct, array_like=True, gc=False):
    """``[ID, MTS, AMOUNT, PRICE]``: AMOUNT > 0 the taker bought, < 0 sold."""

    id: int
    mts: int
    amount: float
    price: float


class TradesSnapshot(Struct, array_like=True, gc=False):
    chan: int
    trades: list[TradeRow]
    seq: Union[int, None] = None


class TradeUpdate(Struct, array_like=True, gc=False):
    """``[CHANNEL_ID, "te"|"tu", [ID, MTS, AMOUNT, PRICE](, SEQ)]``."""

    chan: int
    tag: str
    trade: TradeRow
    seq: Union[int, None] = None


class TickerRow(Struct, array_like=True, gc=False):
    """``[BID, BID_SIZE, ASK, ASK_SIZE, DAILY_CHANGE, DAILY_CHANGE_RELATIVE, LAST_PRICE, VOLUME,
    HIGH, LOW]`` (trading pairs; only the first four are used)."""

    bid: float
    bid_size: float
    ask: float
    ask_size: float


class TickerMsg(Struct, array_like=True, gc=False):
    chan: int
    ticker: TickerRow
    seq: Union[int, None] = None


class CandleRow(Struct, array_like=True, gc=False):
    """``[MTS, OPEN, CLOSE, HIGH, LOW, VOLUME]`` (MTS: the candle's start)."""

    mts: int
    open: float
    close: float
    high: float
    low: float
    volume: float


class CandlesSnapshot(Struct, array_like=True, gc=False):
    chan: int
    candles: list[CandleRow]
    seq: Union[int, None] = None


class CandleUpdate(Struct, array_like=True, gc=False):
    chan: int
    candle: CandleRow
    seq: Union[int, None] = None


class DerivStatus(Struct, array_like=True, gc=False):
    """``deriv:SYMBOL`` status row: ``[TIME_MS, _, DERIV_PRICE, SPOT_PRICE, _,
    INSURANCE_FUND_BALANCE, _, NEXT_FUNDING_EVT_MTS, NEXT_FUNDING_ACCRUED, NEXT_FUNDING_STEP, _,
    CURRENT_FUNDING, _, _, MARK_PRICE, _, _, OPEN_INTEREST, _, _, _, CLAMP_MIN, CLAMP_MAX]``."""

    mts: int
    p1: Any = None
    deriv_price: Union[float, None] = None
    spot_price: Union[float, None] = None
    p4: Any = None
    insurance_fund: Union[float, None] = None
    p6: Any = None
    next_funding_mts: Union[int, None] = None
    next_funding_accrued: Union[float, None] = None
    next_funding_step: Any = None
    p10: Any = None
    current_funding: Union[float, None] = None
    p12: Any = None
    p13: Any = None
    mark_price: Union[float, None] = None
    p15: Any = None
    p16: Any = None
    open_interest: Union[float, None] = None


class StatusMsg(Struct, array_like=True, gc=False):
    chan: int
    status: DerivStatus
    seq: Union[int, None] = None


# --------------------------------------------------------------------------------------------
# events (objects with "event")


class Event(Struct, gc=False):
    """Any ``{"event": ...}`` object: info, conf, subscribed, unsubscribed, error, pong."""

    event: str
    channel: Union[str, None] = None
    chanId: Union[int, None] = None
    symbol: Union[str, None] = None
    key: Union[str, None] = None
    prec: Union[str, None] = None
    len: Any = None
    pair: Union[str, None] = None
    code: Union[int, None] = None
    msg: Union[str, None] = None
    status: Any = None
    flags: Union[int, None] = None
    version: Union[int, None] = None
    platform: Any = None


# --------------------------------------------------------------------------------------------
# decoders (created once)

p0_snapshot_decoder = msgspec.json.Decoder(P0Snapshot)
p0_update_decoder = msgspec.json.Decoder(P0Update)
r0_snapshot_decoder = msgspec.json.Decoder(R0Snapshot)
r0_update_decoder = msgspec.json.Decoder(R0Update)
checksum_decoder = msgspec.json.Decoder(Checksum)
trades_snapshot_decoder = msgspec.json.Decoder(TradesSnapshot)
trade_update_decoder = msgspec.json.Decoder(TradeUpdate)
ticker_decoder = msgspec.json.Decoder(TickerMsg)
candles_snapshot_decoder = msgspec.json.Decoder(CandlesSnapshot)
candle_update_decoder = msgspec.json.Decoder(CandleUpdate)
status_decoder = msgspec.json.Decoder(StatusMsg)
event_decoder = msgspec.json.Decoder(Event)
#: any array frame, element by element (classification of unusually spaced frames, tail seq)
parts_decoder = msgspec.json.Decoder(list[Raw])
listing_decoder = msgspec.json.Decoder(list[Any])

encode = msgspec.json.Encoder().encode
