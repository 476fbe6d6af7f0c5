"""Gemini websocket messages as msgspec Structs (only the fields used; unknown fields ignored).

Two protocols:

* ``wss://ws.gemini.com`` (the current WebSocket API; AsyncAPI spec ``specs/asyncapi/websocket.yaml``
  of github.com/gemini/developer-platform, version 0.10.7, and developer.gemini.com/websocket/streams):
  Binance-shaped frames without an envelope. A depth frame carries ``"e":"depthUpdate"``; a
  book ticker ``u``/``b``/``B``/``a``/``A``; a trade ``t``/``p``/``q``/``m``; an answer to a
  request ``id``/``status`` (and ``error``). They are told apart by their keys: one decode into
  ``Frame`` (every field optional), the handler reads the kind off what is present.
* ``wss://api.gemini.com/v2/marketdata`` (market data v2, archived): ``{"type": ...}`` tagged:
  ``l2_updates`` (``changes`` = ``[side, price, quantity]``; the first one of a subscription
  also carries ``trades`` and ``auction_events``: the full book), ``trade``, ``heartbeat``.
"""
from __future__ import annotations

from typing import Any, Union

import msgspec
from msgspec import Struct

# --------------------------------------------------------------------------------------------
# wss://ws.gemini.com


class Frame(Struct, gc=False):
    """Any frame of the current API: the fields of every kind, all optional.

    depthUpdate: ``e`` "depthUpdate", ``E`` time, ``s`` symbol, ``U``/``u`` the update range,
    ``b``/``a`` ``[price, quantity]`` levels (quantity 0 removes). bookTicker: ``u``, ``E``,
    ``s``, ``b``/``B`` best bid price/size, ``a``/``A`` best ask price/size. trade: ``E``, ``s``,
    ``t`` trade id, ``p``, ``q``, ``m`` (the buyer is the maker). Answer: ``id``, ``status``,
    ``error``."""

    e: Union[str, None] = None
    E: Union[int, None] = None
    s: Union[str, None] = None
    U: Union[int, None] = None
    u: Union[int, None] = None
    b: Union[str, list[tuple[str, str]], None] = None
    a: Union[str, list[tuple[str, str]], None] = None
    B: Union[str, None] = None
    A: Union[str, None] = None
    t: Union[int, None] = None
    p: Union[str, None] = None
    q: Union[str, None] = None
    m: Union[bool, None] = None
    id: Any = None
    status: Union[int, None] = None
    error: Any = None


frame = msgspec.json.Decoder(Frame)

# --------------------------------------------------------------------------------------------
# wss://api.gemini.com/v2/marketdata


class L2Updates(Struct, tag_field="type", tag="l2_updates", gc=False):
    symbol: str
    #: ``[[side, price, quantity], ...]`` as raw JSON: read by the book in C
    #: (``apply_json_sided_levels``), else decoded by ``changes``
    changes: msgspec.Raw
    #: present (a list, maybe empty) only in the first message of a subscription: the full book.
    #: Its trades are not published: kept as the raw JSON, not decoded (None: absent); the handler
    #: takes ``null`` as absent and refuses what is not an array as ``L2UpdatesChecked`` does
    trades: msgspec.Raw = None  # type: ignore[assignment]


class L2UpdatesChecked(Struct, tag_field="type", tag="l2_updates", gc=False):
    """``L2Updates`` with its ``changes`` and ``trades`` validated: the error of a message whose
    changes are not three strings each, or whose ``trades`` is no list or null."""

    symbol: str
    changes: list[tuple[str, str, str]]
    trades: Union[list[Any], None] = None


class V2Trade(Struct, tag_field="type", tag="trade", gc=False):
    symbol: str
    event_id: int
    timestamp: int
    price: str
    quantity: str
    side: str


class Heartbeat(Struct, tag_field="type", tag="heartbeat", gc=False):
    timestamp: Union[int, None] = None


V2Message = Union[L2Updates, V2Trade, Heartbeat]

v2_decoder = msgspec.json.Decoder(V2Message)
#: the v2 messages with ``changes`` and ``trades`` validated (``L2UpdatesChecked``)
v2_checked = msgspec.json.Decoder(Union[L2UpdatesChecked, V2Trade, Heartbeat])
#: an ``l2_updates``' ``changes`` (its raw JSON) decoded
changes = msgspec.json.Decoder(list[tuple[str, str, str]])


class AnyType(Struct, gc=False):
    """Just enough of a v2 message that failed validation to say what it was."""

    type: Any = None
    symbol: Any = None


any_type = msgspec.json.Decoder(AnyType)

encode = msgspec.json.Encoder().encode
