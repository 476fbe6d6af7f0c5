"""Bitget v2 public websocket and REST messages as msgspec Structs (only the fields used).

Every push is ``{"action": "snapshot"|"update", "arg": {"instType": "SPOT"|"USDT-FUTURES",
"channel": .., "instId": ..}, "data": [..], "ts": <ms>}``; answers to our operations are
``{"event": "subscribe"|"unsubscribe"|"error", "arg": .., "code": .., "msg": ..}``; the heartbeat
answer is the bare text ``pong``. The scheme reads the channel on the raw bytes
(``handler._route``) and decodes the frame once with that channel's decoder.

Book levels stay text (``[price, size]``): the exact digits go to the compiled book and to the
checksum, which is computed on the texts as sent.

Sources (v2, "classic" account docs): https://www.bitget.com/api-doc/spot/websocket/public/Depth-Channel,
...spot/websocket/public/Trades-Channel, ...spot/websocket/public/Tickers-Channel,
...spot/websocket/public/Candlesticks-Channel, https://www.bitget.com/api-doc/contract/websocket/public/Order-Book-Channel,
...contract/websocket/public/New-Trades-Channel, ...contract/websocket/public/Tickers-Channel,
...contract/websocket/public/Candlesticks-Channel, https://www.bitget.com/api-doc/common/websocket-intro;
REST https://www.bitget.com/api-doc/spot/market/Get-Symbols and
https://www.bitget.com/api-doc/contract/market/Get-All-Symbols-Contracts.
"""
from __future__ import annotations

from typing import Union

import msgspec
from msgspec import Struct


class Arg(Struct, gc=False):
    channel: str
    instType: str = ""
    instId: str = ""


class BookData(Struct, gc=False):
    """One ``books`` push. ``checksum``: the signed CRC32 of the top 25 levels (Bitget sends 0 in
    a snapshot); ``seq``: increasing per book (a number, or a text in some pushes); ``pseq``: the
    ``seq`` this push follows, where the push gives it."""

    ts: str
    asks: list[list[str]] = []
    bids: list[list[str]] = []
    checksum: Union[int, None] = None
    seq: Union[int, str, None] = None
    pseq: Union[int, str, None] = None


class BookMsg(Struct, gc=False):
    arg: Arg
    data: list[BookData]
    action: str = ""


class TradeItem(Struct, gc=False):
    """``side``: the taker's (the channel carries taker orders)."""

    ts: str
    price: str
    size: str
    side: str
    tradeId: str


class TradeMsg(Struct, gc=False):
    arg: Arg
    data: list[TradeItem]
    action: str = ""


class TickerItem(Struct, gc=False):
    """Spot and futures tickers; the futures ones add funding, mark price and open interest
    (``holdingAmount``, in the base coin)."""

    instId: str
    ts: str
    bidPr: str = ""
    bidSz: str = ""
    askPr: str = ""
    askSz: str = ""
    fundingRate: str = ""
    nextFundingTime: str = ""
    markPrice: str = ""
    holdingAmount: str = ""


class TickerMsg(Struct, gc=False):
    arg: Arg
    data: list[TickerItem]


class CandleMsg(Struct, gc=False):
    """``candle1m``: ``[start, o, h, l, c, base volume, quote volume, USDT volume]``."""

    arg: Arg
    data: list[list[str]]
    ts: int = 0


class Event(Struct, gc=False):
    """An answer to one of our operations (``code`` a number or a text)."""

    event: str
    arg: Union[Arg, None] = None
    code: Union[int, str, None] = None
    msg: str = ""


class Head(Struct, gc=False):
    """What a push that failed its channel's decoder is: its ``arg`` where readable."""

    arg: Union[Arg, None] = None


class _Symbol(Struct, gc=False):
    symbol: str
    baseCoin: str = ""
    quoteCoin: str = ""
    pricePrecision: str = ""
    quantityPrecision: str = ""
    status: str = ""


class SymbolsAnswer(Struct, gc=False):
    """``GET /api/v2/spot/public/symbols``."""

    code: str = ""
    data: list[_Symbol] = []


class _Contract(Struct, gc=False):
    symbol: str
    baseCoin: str = ""
    quoteCoin: str = ""
    pricePlace: str = ""
    volumePlace: str = ""
    symbolType: str = ""
    deliveryTime: str = ""


class ContractsAnswer(Struct, gc=False):
    """``GET /api/v2/mix/market/contracts?productType=USDT-FUTURES``."""

    code: str = ""
    data: list[_Contract] = []


book_decoder = msgspec.json.Decoder(BookMsg)
trade_decoder = msgspec.json.Decoder(TradeMsg)
ticker_decoder = msgspec.json.Decoder(TickerMsg)
candle_decoder = msgspec.json.Decoder(CandleMsg)
event_decoder = msgspec.json.Decoder(Event)
head_decoder = msgspec.json.Decoder(Head)
symbols_decoder = msgspec.json.Decoder(SymbolsAnswer)
contracts_decoder = msgspec.json.Decoder(ContractsAnswer)
encode = msgspec.json.Encoder().encode
