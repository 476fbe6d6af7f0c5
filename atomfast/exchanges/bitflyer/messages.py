"""bitFlyer Lightning Realtime API messages (JSON-RPC 2.0 over WebSocket) as msgspec Structs.

Docs: https://bf-lightning-api.readme.io/docs/endpoint-json-rpc (server methods ``subscribe`` /
``unsubscribe``, answered ``true``; the client method ``channelMessage`` carries every message of
every subscribed channel), and the channel pages (realtime-board-snapshot, realtime-board,
realtime-ticker, realtime-executions).

A frame is decoded in two steps: the JSON-RPC envelope (``Envelope``; the channel's ``message``
kept as ``msgspec.Raw``, not parsed), then the message by its channel's decoder. Prices and
sizes of the board are kept as ``Raw`` too: the exact digits bitFlyer sent go to the book (no
float in between). Only the fields used are declared; unknown fields are ignored.
"""
from __future__ import annotations

from typing import Any, Literal, Union

import msgspec
from msgspec import Raw, Struct


class Params(Struct, gc=False):
    channel: str
    message: Raw


class Envelope(Struct, gc=False):
    """A notification (``method`` ``channelMessage``, ``params``) or an answer to one of our
    requests (``id`` with ``result`` or ``error``: no ``method``). ``jsonrpc`` must be "2.0"
    (JSON-RPC 2.0: a frame without it is no message of this protocol)."""

    jsonrpc: Literal["2.0"]
    method: str = ""
    params: Union[Params, None] = None
    id: Any = None
    result: Any = None
    error: Any = None


# --------------------------------------------------------------------------------------------
# lightning_board_snapshot_{product_code} / lightning_board_{product_code}


class Level(Struct, gc=False):
    price: Raw
    size: Raw


class Board(Struct, gc=False):
    """Both board channels: ``mid_price`` and the levels (a snapshot: the book's levels in no
    guaranteed order; a diff: the levels that changed, ``size`` 0 removes one, ``price`` 0 is a
    market order executed in an auction (itayose), not a level)."""

    mid_price: Raw
    bids: list[Level]
    asks: list[Level]


# --------------------------------------------------------------------------------------------
# lightning_executions_{product_code}: a list of executions


class Execution(Struct, gc=False):
    """``side``: the taker's (``BUY``/``SELL``); empty where no taker exists (an auction)."""

    id: int
    side: str
    price: float
    size: float
    exec_date: str
    buy_child_order_acceptance_id: str = ""
    sell_child_order_acceptance_id: str = ""


# --------------------------------------------------------------------------------------------
# lightning_ticker_{product_code}


class Ticker(Struct, gc=False):
    product_code: str
    timestamp: str
    best_bid: float
    best_ask: float
    best_bid_size: float
    best_ask_size: float
    state: str = ""


envelope_decoder = msgspec.json.Decoder(Envelope)
board_decoder = msgspec.json.Decoder(Board)
executions_decoder = msgspec.json.Decoder(list[Execution])
ticker_decoder = msgspec.json.Decoder(Ticker)

encode = msgspec.json.Encoder().encode
