"""OKX v5 public websocket messages as msgspec Structs (only the fields used).

Every push is ``{"arg": {"channel": .., "instId": ..}, "data": [..]}`` (books add ``"action":
"snapshot"|"update"``; ``liquidation-orders`` is subscribed by ``instType``, its ``arg`` names
no instrument). Answers to our operations are ``{"event": "subscribe"|"unsubscribe"|"error"|
"notice", "arg": .., "code": .., "msg": .., "connId": ..}``; the heartbeat answer is the bare
text ``pong``. The scheme reads the channel on the raw bytes (``handler.OkxScheme._route``) and
decodes the frame once with that channel's decoder.

Book levels stay JSON text (``[price, size, "0", orders]``, ``msgspec.Raw``): the compiled book
reads the exact digits from it (and the checksum is computed on the texts as sent).

Sources: https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel,
...-ws-trades-channel, ...-ws-tickers-channel, ...-ws-candlesticks-channel (business endpoint),
#public-data-websocket-funding-rate-channel, ...-open-interest-channel,
...-liquidation-orders-channel, #overview-websocket (ping/pong, events).
"""
from __future__ import annotations

from typing import Union

import msgspec
from msgspec import Struct


class Arg(Struct, gc=False):
    channel: str
    instId: str = ""
    instType: str = ""


class BookData(Struct, gc=False):
    """One book push: ``checksum`` (CRC32 of the top 25 levels; 0 where OKX no longer sends
    one), ``seqId``/``prevSeqId`` (absent in pushes before 2022-06). The levels
    (``[price, size, "0", orders]``) are kept as their JSON text: the book reads them
    (``L2Book.check_json_lists``), no list or str is made per level; the handler checks their
    shape (``json_level_lists``: what ``BookDataLists`` takes) first."""

    ts: str
    asks: msgspec.Raw = msgspec.Raw(b"[]")
    bids: msgspec.Raw = msgspec.Raw(b"[]")
    checksum: int = 0
    seqId: Union[int, None] = None
    prevSeqId: Union[int, None] = None


class BookMsg(Struct, gc=False):
    arg: Arg
    data: list[BookData]
    action: str = ""


class BookDataLists(Struct, gc=False):
    """``BookData`` with its levels decoded (a push whose levels the book does not read as
    text: decoded whole, as the venue's decoder did; its error says what is wrong)."""

    ts: str
    asks: list[list[str]] = []
    bids: list[list[str]] = []
    checksum: int = 0
    seqId: Union[int, None] = None
    prevSeqId: Union[int, None] = None


class BookMsgLists(Struct, gc=False):
    arg: Arg
    data: list[BookDataLists]
    action: str = ""


class TradeItem(Struct, gc=False):
    """``side``: the taker's."""

    instId: str
    tradeId: str
    px: str
    sz: str
    side: str
    ts: str


class TradeMsg(Struct, gc=False):
    arg: Arg
    data: list[TradeItem]


class TickerItem(Struct, gc=False):
    """Best bid/ask (``""`` where a side is empty)."""

    instId: str
    ts: str
    bidPx: str = ""
    bidSz: str = ""
    askPx: str = ""
    askSz: str = ""


class TickerMsg(Struct, gc=False):
    arg: Arg
    data: list[TickerItem]


class CandleMsg(Struct, gc=False):
    """``candle{bar}``: ``[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]`` (pushes before
    2022-09 end at ``volCcy``)."""

    arg: Arg
    data: list[list[str]]


class FundingItem(Struct, gc=False):
    """``fundingRate`` settles at ``fundingTime``; ``nextFundingRate`` is "" (method
    ``current_period``); ``ts`` absent in pushes before 2023."""

    instId: str
    fundingRate: str
    fundingTime: str
    nextFundingRate: str = ""
    ts: str = ""


class FundingMsg(Struct, gc=False):
    arg: Arg
    data: list[FundingItem]


class OpenInterestItem(Struct, gc=False):
    """``oi``: open interest in contracts."""

    instId: str
    oi: str
    ts: str


class OpenInterestMsg(Struct, gc=False):
    arg: Arg
    data: list[OpenInterestItem]


class LiquidationDetail(Struct, gc=False):
    """``side``: the liquidation ORDER's (``buy`` closes a short); ``bkPx`` the price, ``sz``
    contracts (``FUTURES``/``SWAP``)."""

    side: str
    bkPx: str
    sz: str
    ts: str
    posSide: str = ""


class LiquidationItem(Struct, gc=False):
    instId: str
    details: list[LiquidationDetail]
    instType: str = ""


class LiquidationMsg(Struct, gc=False):
    arg: Arg
    data: list[LiquidationItem]


class Event(Struct, gc=False):
    """An answer to one of our operations, or a notice."""

    event: str
    arg: Union[Arg, None] = None
    code: str = ""
    msg: str = ""


class Head(Struct, gc=False):
    """What a push that failed its channel's decoder is: its ``arg`` where readable."""

    arg: Union[Arg, None] = None


book_decoder = msgspec.json.Decoder(BookMsg)
#: a book push with its levels decoded (the slow way: levels the book does not read as text)
book_lists_decoder = msgspec.json.Decoder(BookMsgLists)
#: one side's levels, decoded (a level the book refused as text: ``apply_sides`` says why)
levels_decoder = msgspec.json.Decoder(list[list[str]])
trade_decoder = msgspec.json.Decoder(TradeMsg)
ticker_decoder = msgspec.json.Decoder(TickerMsg)
candle_decoder = msgspec.json.Decoder(CandleMsg)
funding_decoder = msgspec.json.Decoder(FundingMsg)
open_interest_decoder = msgspec.json.Decoder(OpenInterestMsg)
liquidation_decoder = msgspec.json.Decoder(LiquidationMsg)
event_decoder = msgspec.json.Decoder(Event)
head_decoder = msgspec.json.Decoder(Head)
encode = msgspec.json.Encoder().encode
