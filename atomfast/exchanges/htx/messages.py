"""HTX (formerly Huobi) websocket messages as msgspec Structs (only the fields used).

Every frame HTX sends is gzip-compressed binary (``HtxScheme`` inflates it before these decoders
see it). Market data: ``{"ch": "market.<symbol>.<kind>...", "ts": ms, "tick": {...}}``; the
heartbeat ``{"ping": ts}`` (answered ``{"pong": ts}``); answers to ``sub``
(``{"id", "status", "subbed", "ts"}``) and to ``req`` (``{"id", "rep", "status", "data"}``);
errors ``{"status": "error", "err-code", "err-msg"}``. The futures notification endpoint speaks
``{"op": "notify" | "ping" | "sub" | "error" | "close", "topic", "ts", "data", "err-code"}``.

Book prices and sizes are kept as ``msgspec.Raw`` (the exact JSON number text goes to the book,
exponent forms such as ``9.121E-7`` included); trade, ticker and candle numbers are floats.
Sources of the shapes: huobiapi.github.io/docs/spot/v1/en (Market By Price, Trade Detail, Best
Bid/Offer, Candlestick), huobiapi.github.io/docs/usdt_swap/v1/en (incremental depth
``depth.size_150.high_freq`` with ``data_type=incremental``, ``public.$contract_code.
funding_rate``, ``public.$contract_code.liquidation_orders``), and the real messages in
crypto-msg-parser's tests (tests/huobi.rs).
"""
from __future__ import annotations

from typing import Any, Union

import msgspec
from msgspec import Raw, Struct

Levels = list[tuple[Raw, Raw]]


# --- order books -------------------------------------------------------------------------------
class MbpTick(Struct, gc=False):
    """``market.$symbol.mbp.$levels`` (spot): a change of the book; a side may be absent."""

    seqNum: int
    prevSeqNum: int
    bids: Levels = []
    asks: Levels = []


class MbpMsg(Struct, gc=False):
    ch: str
    tick: MbpTick
    ts: int = 0


class MbpSnapshot(Struct, gc=False):
    """The ``data`` of the answer to ``{"req": "market.$symbol.mbp.$levels"}``."""

    seqNum: int
    bids: Levels = []
    asks: Levels = []


class Rep(Struct, gc=False):
    """The answer to a ``req`` (the book snapshot of the mbp channel), or its refusal."""

    rep: Any = None
    status: Any = None
    data: Union[MbpSnapshot, None] = None
    id: Any = None
    ts: int = 0
    err_code: Any = msgspec.field(default=None, name="err-code")
    err_msg: Any = msgspec.field(default=None, name="err-msg")


class DepthTick(Struct, gc=False):
    """Spot ``market.$symbol.depth.step0`` (the whole top 150, once a second; ``version``), and
    futures ``market.$contract_code.depth.size_150.high_freq`` (``event`` ``snapshot`` or
    ``update``, ``version`` + 1 per message). A side may be null or absent."""

    bids: Union[Levels, None] = None
    asks: Union[Levels, None] = None
    event: str = ""
    version: int = 0
    ts: int = 0


class DepthMsg(Struct, gc=False):
    ch: str
    tick: DepthTick
    ts: int = 0


class DepthRawTick(Struct, gc=False):
    """``DepthTick`` with each side kept as its raw JSON (spot ``depth.step0``: read by the book
    itself, ``L2Book.check_json_numbers``; absent: empty). What the book does not read is decoded
    as ``DepthMsg``, whose decoder also words a refusal."""

    bids: Raw = Raw(b"")
    asks: Raw = Raw(b"")
    event: str = ""
    version: int = 0
    ts: int = 0


class DepthRawMsg(Struct, gc=False):
    ch: str
    tick: DepthRawTick
    ts: int = 0


# --- trades -----------------------------------------------------------------------------------
class TradeItem(Struct, gc=False):
    """``direction``: the taker's side. ``tradeId`` (spot): the trade's id; ``id`` (spot: a
    deprecated 27-digit id, kept raw; futures: the trade's id)."""

    ts: int
    price: float
    amount: float
    direction: str
    id: Raw = Raw(b"")
    tradeId: Union[int, None] = None


class TradeTick(Struct, gc=False):
    data: list[TradeItem]


class TradeMsg(Struct, gc=False):
    ch: str
    tick: TradeTick
    ts: int = 0


# --- best bid / offer ---------------------------------------------------------------------------
class SpotBboTick(Struct, gc=False):
    bid: float
    bidSize: float
    ask: float
    askSize: float
    quoteTime: int = 0


class SpotBboMsg(Struct, gc=False):
    ch: str
    tick: SpotBboTick
    ts: int = 0


class SwapBboTick(Struct, gc=False):
    """``bid``/``ask``: ``[price, contracts]`` (null for an empty side)."""

    bid: Union[tuple[float, float], None] = None
    ask: Union[tuple[float, float], None] = None
    ts: int = 0


class SwapBboMsg(Struct, gc=False):
    ch: str
    tick: SwapBboTick
    ts: int = 0


# --- candles --------------------------------------------------------------------------------------
class KlineTick(Struct, gc=False):
    """``id``: the candle's open time (s). ``amount``: base volume (spot and swaps); ``vol``:
    quote turnover (spot) or contracts (swaps); ``count``: trades."""

    id: int
    open: float
    close: float
    high: float
    low: float
    amount: float = 0.0
    vol: float = 0.0
    count: int = 0


class KlineMsg(Struct, gc=False):
    ch: str
    tick: KlineTick
    ts: int = 0


# --- control ------------------------------------------------------------------------------------
class Ping(Struct, gc=False):
    ping: Any


class Control(Struct, gc=False):
    """``sub``/``unsub`` answers and errors of the market endpoints."""

    status: Any = None
    subbed: Any = None
    unsubbed: Any = None
    id: Any = None
    ts: Any = None
    err_code: Any = msgspec.field(default=None, name="err-code")
    err_msg: Any = msgspec.field(default=None, name="err-msg")


# --- the futures notification endpoint --------------------------------------------------------------
class Op(Struct, gc=False):
    op: str
    topic: Any = ""
    ts: Any = None
    data: Raw = Raw(b"")
    err_code: Any = msgspec.field(default=0, name="err-code")
    err_msg: Any = msgspec.field(default="", name="err-msg")


class Funding(Struct, gc=False):
    """``public.$contract_code.funding_rate``: rates as decimal strings; ``settlement_time``: the
    next funding time (ms, a string); ``estimated_rate`` may be null."""

    contract_code: str
    funding_rate: str
    settlement_time: str = ""
    estimated_rate: Union[str, None] = None
    funding_time: str = ""


class LiquidationItem(Struct, gc=False):
    """``public.$contract_code.liquidation_orders``: ``direction`` is the liquidation ORDER's side
    (``sell``: a long position was closed), ``volume`` contracts, ``amount`` base coin."""

    contract_code: str
    direction: str
    volume: float
    price: float
    created_at: int
    amount: float = 0.0


mbp_decoder = msgspec.json.Decoder(MbpMsg)
rep_decoder = msgspec.json.Decoder(Rep)
depth_decoder = msgspec.json.Decoder(DepthMsg)
depth_raw_decoder = msgspec.json.Decoder(DepthRawMsg)
trade_decoder = msgspec.json.Decoder(TradeMsg)
spot_bbo_decoder = msgspec.json.Decoder(SpotBboMsg)
swap_bbo_decoder = msgspec.json.Decoder(SwapBboMsg)
kline_decoder = msgspec.json.Decoder(KlineMsg)
ping_decoder = msgspec.json.Decoder(Ping)
control_decoder = msgspec.json.Decoder(Control)
op_decoder = msgspec.json.Decoder(Op)
funding_decoder = msgspec.json.Decoder(list[Funding])
liquidations_decoder = msgspec.json.Decoder(list[LiquidationItem])
levels_decoder = msgspec.json.Decoder(Levels)

encode = msgspec.json.Encoder().encode
