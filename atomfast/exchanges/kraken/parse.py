"""Kraken: symbols, instruments, numbers and timestamps (shared by spot v1/v2 and futures).

Symbols (DESIGN.md): ``XBT`` -> ``BTC``, ``XDG`` -> ``DOGE``; spot ``BTC-USD``. The REST
``AssetPairs`` listing names assets the old way (``XXBT``, ``ZUSD``); its ``wsname``
(``XBT/USD``) is the websocket v1 name and the one we normalise from. Websocket v2 names a pair
with the normalised assets (``BTC/USD``).

Numbers: prices and sizes go to the book as the exact digits the exchange sent (v1 strings;
v2 and futures JSON numbers as their raw bytes, never through a float). ``valid_level`` checks
a level with the book's own parser before any level of a message is applied; it refuses signs,
NaN/inf, absurd magnitudes (``1e400``) and digits beyond the book's scale.

Timestamps: ``event_timestamp`` is exchange time in ms, converted exactly (no float):
v1 ``"1618678133.626511"`` (seconds) -> 1618678133626; v2 RFC 3339
``"2023-10-06T17:35:55.440295Z"`` -> 1696613755440 (truncated to the ms).
"""
from __future__ import annotations

import msgspec

from ...book import rfc3339_to_ms, seconds_to_ms, seconds_to_us  # noqa: F401 (this module's API)
from ...scheme import Instrument
from .._common import MAX_MS, decimals_of, is_plain, ms_ok, valid_level  # noqa: F401 (this module's API)

ALIASES = {"XBT": "BTC", "XDG": "DOGE"}

#: the typed writers' bound (``AvroRows.trade``/``quote``/``order``): prices and sizes below
#: 1e15 (no market's are larger). A message written whole or not at all (a v2 trade message, a
#: futures trade snapshot) checks its floats against it before the first event is written.
MAX_VALUE = 1e15


def normalise_asset(asset: str) -> str:
    asset = asset.upper()
    return ALIASES.get(asset, asset)


#: ``"1618678133.626511"`` -> 1618678133626 exactly (truncated); ValueError if malformed (1..11
#: integer digits, at most 12 decimals). In C, with the book's number parsing.
secs_to_ms = seconds_to_ms
#: ``"1618678142.557535"`` -> 1618678142557535 exactly; ValueError if malformed.
secs_to_us = seconds_to_us


def spot_instrument(ws_pair: str, price_decimals: int = 8, size_decimals: int = 8, v2: bool = False) -> Instrument:
    """A spot instrument from a websocket pair name (``XBT/USD`` in v1, ``BTC/USD`` in v2)."""
    base, sep, quote = ws_pair.partition("/")
    if not sep or not base or not quote:
        raise KeyError(f"kraken: not a pair name {ws_pair!r}")
    nb, nq = normalise_asset(base), normalise_asset(quote)
    native = f"{nb}/{nq}" if v2 else ws_pair
    return Instrument(native, f"{nb}-{nq}", "spot", nb, nq, price_decimals, size_decimals)


class _AssetPair(msgspec.Struct, gc=False):
    wsname: str = ""
    pair_decimals: int = 8
    lot_decimals: int = 8
    status: str = "online"


class _AssetPairs(msgspec.Struct, gc=False):
    result: dict[str, _AssetPair] = {}
    error: list[str] = []


def parse_asset_pairs(body: bytes, v2: bool) -> dict[str, Instrument]:
    """``/0/public/AssetPairs`` -> instruments keyed by websocket name (v1 ``XBT/USD``, v2
    ``BTC/USD``). Pairs without a ``wsname`` (the ``.d`` dark-pool pairs) are not on the websocket."""
    listing = msgspec.json.decode(body, type=_AssetPairs)
    out: dict[str, Instrument] = {}
    for pair in listing.result.values():
        if not pair.wsname:
            continue
        try:
            inst = spot_instrument(pair.wsname, pair.pair_decimals, pair.lot_decimals, v2)
        except KeyError:
            continue
        out[inst.native] = inst
    return out
