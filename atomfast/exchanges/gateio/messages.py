"""Gate.io v4 websocket and REST messages (spot and USDT perpetuals): msgspec Structs, only the
fields used.

Every websocket frame is one envelope (https://www.gate.io/docs/developers/apiv4/ws/en/, "Server
Response"; futures: https://www.gate.io/docs/developers/futures/ws/en/, "Response"):
``{"time": s, "time_ms": ms, "channel": "spot.trades", "event": "update", "error": null,
"result": ...}``. A subscribe answer carries the request's ``event`` and ``error`` (null when
accepted); the order book V2 pushes (``spot.obu``/``futures.obu``) carry no ``event`` at all.
The envelope is decoded first (``result`` left raw), routed by ``channel``, and the route decodes
``result`` with its own Struct.
"""
from __future__ import annotations

from typing import Optional, Union

import msgspec


class Error(msgspec.Struct, gc=False):
    code: Union[int, str, None] = None
    message: str = ""


class Envelope(msgspec.Struct, gc=False):
    channel: str
    event: str = ""
    result: msgspec.Raw = msgspec.Raw(b"null")
    error: Optional[Error] = None
    time: int = 0
    time_ms: int = 0


envelope_decoder = msgspec.json.Decoder(Envelope)


class Obu(msgspec.Struct, gc=False):
    """``spot.obu`` / ``futures.obu`` (order book V2): ``s`` the stream (``ob.BTC_USDT.400``),
    ``full`` a whole book (its id ``u``), else the changes ``U``..``u``; ``[price, amount]`` texts
    (futures: amounts in contracts)."""

    s: str
    u: int
    t: int = 0
    full: bool = False
    U: int = 0
    b: list[tuple[str, str]] = []
    a: list[tuple[str, str]] = []


obu_decoder = msgspec.json.Decoder(Obu)


# --- spot ------------------------------------------------------------------------------------------


class SpotTrade(msgspec.Struct, gc=False):
    """``spot.trades``: ``side`` the taker's; ``create_time_ms`` "1606292218213.4578" (ms, with
    the finer part after the point)."""

    id: int
    currency_pair: str
    side: str
    amount: str
    price: str
    create_time_ms: str = ""
    create_time: int = 0


spot_trade_decoder = msgspec.json.Decoder(SpotTrade)


class SpotBookTicker(msgspec.Struct, gc=False):
    """``spot.book_ticker``: best bid ``b``/``B``, best ask ``a``/``A`` (texts), ``t`` ms."""

    s: str
    b: str
    B: str
    a: str
    A: str
    t: int = 0
    u: int = 0


spot_book_ticker_decoder = msgspec.json.Decoder(SpotBookTicker)


class SpotCandle(msgspec.Struct, gc=False):
    """``spot.candlesticks``: ``t`` start (s, a text), ``n`` ``<interval>_<pair>``, ``a`` the base
    amount (``v`` is the quote volume: crypto-msg-parser's real 2022 push), ``w`` window closed."""

    t: str
    o: str
    h: str
    l: str  # noqa: E741 (Gate's field)
    c: str
    n: str
    a: str
    v: str = ""
    w: bool = False


spot_candle_decoder = msgspec.json.Decoder(SpotCandle)


class CurrencyPair(msgspec.Struct, gc=False):
    """``GET /api/v4/spot/currency_pairs``: one row."""

    id: str
    base: str
    quote: str
    precision: int = 8
    amount_precision: int = 8
    trade_status: str = "tradable"


pairs_decoder = msgspec.json.Decoder(list[CurrencyPair])


# --- futures ---------------------------------------------------------------------------------------

Number = Union[str, int, float]


class FuturesTrade(msgspec.Struct, gc=False):
    """``futures.trades`` (a list): ``size`` in contracts, positive when the taker bought,
    negative when he sold; ``price`` a text (a number in older pushes); ``is_internal`` marks
    insurance-fund / ADL takeovers (not market trades)."""

    id: int
    contract: str
    size: Union[int, float]
    price: Number
    create_time_ms: int = 0
    create_time: int = 0
    is_internal: bool = False


futures_trades_decoder = msgspec.json.Decoder(list[FuturesTrade])


class FuturesBookTicker(msgspec.Struct, gc=False):
    """``futures.book_ticker``: ``b``/``a`` texts ("" for an empty side), ``B``/``A`` contracts."""

    s: str
    b: str
    B: Union[int, float, str]
    a: str
    A: Union[int, float, str]
    t: int = 0
    u: int = 0


futures_book_ticker_decoder = msgspec.json.Decoder(FuturesBookTicker)


class FuturesCandle(msgspec.Struct, gc=False):
    """``futures.candlesticks`` (a list): ``t`` start (s), ``v`` volume in contracts."""

    t: int
    o: str
    h: str
    l: str  # noqa: E741 (Gate's field)
    c: str
    n: str
    v: Union[int, float] = 0
    w: bool = False


futures_candles_decoder = msgspec.json.Decoder(list[FuturesCandle])


class FuturesTicker(msgspec.Struct, gc=False):
    """``futures.tickers`` (a list): ``funding_rate``, ``mark_price``, ``total_size`` (open
    interest, contracts), as texts."""

    contract: str
    funding_rate: str = ""
    mark_price: str = ""
    total_size: str = ""
    funding_rate_indicative: str = ""


futures_tickers_decoder = msgspec.json.Decoder(list[FuturesTicker])


class PublicLiquidation(msgspec.Struct, gc=False):
    """``futures.public_liquidates`` (a list): the liquidation order's ``price``, ``size`` in
    contracts (negative: a sell order, a long liquidated), ``time_ms``."""

    contract: str
    price: Number
    size: Union[int, float]
    time_ms: int = 0


liquidations_decoder = msgspec.json.Decoder(list[PublicLiquidation])


class Contract(msgspec.Struct, gc=False):
    """``GET /api/v4/futures/usdt/contracts``: one row."""

    name: str
    quanto_multiplier: str = ""
    order_price_round: str = ""
    in_delisting: bool = False


contracts_decoder = msgspec.json.Decoder(list[Contract])

encode = msgspec.json.Encoder().encode
