"""BitMEX realtime websocket (``wss://ws.bitmex.com/realtime``) messages as msgspec Structs.

Table messages: ``{"table": ..., "action": "partial"|"insert"|"update"|"delete", "data": [...]}``
(a ``partial`` also has ``keys``, ``types``, ``filter``...). The envelope is decoded with
``data`` left as ``msgspec.Raw``, then the rows with the Struct of the table. Control messages:
``{"info": ...}`` (welcome), ``{"success": true, "subscribe": "topic:SYMBOL"}``,
``{"status": 400, "error": "..."}``; the answer to our ``ping`` is the bare text ``pong``.

Book prices and sizes stay ``msgspec.Raw`` (the exact digits go to the book). Rows of
``instrument`` updates carry only the fields that changed: absent fields are ``UNSET``.
"""
from __future__ import annotations

from typing import Union

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

EMPTY = Raw(b"")


class Filter(Struct, gc=False):
    symbol: str = ""


class Request(Struct, gc=False):
    """The request an answer or an error echoes."""

    op: str = ""
    args: Union[list[str], str, None] = None


class Envelope(Struct, gc=False):
    table: str = ""
    action: str = ""
    data: Raw = EMPTY
    filter: Union[Filter, None] = None
    info: str = ""
    success: Union[bool, None] = None
    subscribe: str = ""
    unsubscribe: str = ""
    status: int = 0
    error: str = ""
    request: Union[Request, None] = None


class L2Row(Struct, gc=False):
    """An ``orderBookL2`` row. Since 2023 ``price`` comes with every action and ``timestamp``
    (since 2022) with every row; the recorded 2021 capture has neither on updates/deletes."""

    symbol: str
    id: int
    side: str
    size: Raw = EMPTY
    price: Raw = EMPTY
    timestamp: str = ""


class LiquidationRow(Struct, gc=False):
    """A ``liquidation`` row: a liquidation order in the book. ``side`` is the order's (Sell
    closes a long position); ``leavesQty`` its remaining contracts. No timestamp: BitMEX sends
    none on this table. An ``update`` / ``delete`` may carry only ``orderID``."""

    orderID: str
    symbol: str = ""
    side: str = ""
    price: Union[float, None] = None
    leavesQty: Union[float, None] = None


class QuoteRow(Struct, gc=False):
    symbol: str
    timestamp: str
    bidPrice: Union[float, None] = None
    bidSize: Union[float, None] = None
    askPrice: Union[float, None] = None
    askSize: Union[float, None] = None


class TradeRow(Struct, gc=False):
    """``side`` is the taker's (aggressor's) side; ``size`` in contracts."""

    symbol: str
    timestamp: str
    side: str
    size: float
    price: float
    trdMatchID: str = ""


class InstrumentRow(Struct, gc=False):
    symbol: str
    timestamp: Union[str, UnsetType] = UNSET
    markPrice: Union[float, None, UnsetType] = UNSET
    fundingRate: Union[float, None, UnsetType] = UNSET
    indicativeFundingRate: Union[float, None, UnsetType] = UNSET
    fundingTimestamp: Union[str, None, UnsetType] = UNSET
    openInterest: Union[float, None, UnsetType] = UNSET


class TradeBinRow(Struct, gc=False):
    """``tradeBin1m`` (and 5m, 1h, 1d): ``timestamp`` is the END of the bin."""

    symbol: str
    timestamp: str
    open: Union[float, None] = None
    high: Union[float, None] = None
    low: Union[float, None] = None
    close: Union[float, None] = None
    trades: int = 0
    volume: Union[float, None] = None


envelope_decoder = msgspec.json.Decoder(Envelope)
l2_decoder = msgspec.json.Decoder(list[L2Row])
quote_decoder = msgspec.json.Decoder(list[QuoteRow])
liquidation_decoder = msgspec.json.Decoder(list[LiquidationRow])
trade_decoder = msgspec.json.Decoder(list[TradeRow])
instrument_decoder = msgspec.json.Decoder(list[InstrumentRow])
tradebin_decoder = msgspec.json.Decoder(list[TradeBinRow])
encode = msgspec.json.Encoder().encode
