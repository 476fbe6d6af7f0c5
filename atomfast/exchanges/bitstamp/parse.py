"""Bitstamp: symbols, instruments, numbers and timestamps.

Symbols (DESIGN.md): Bitstamp names a market in lower case without separator (``btcusd``, its
``url_symbol``); the listing's ``name`` (``BTC/USD``) gives base and quote: ``BTC-USD``.
``GET /api/v2/trading-pairs-info/`` is the listing recorded in the capture; the newer
``GET /api/v2/markets/`` (``market_symbol``, ``base_currency``, ``counter_currency``,
``market_type``) is read too, its perpetuals as ``BASE-QUOTE-PERP``.

Numbers: prices and amounts are decimal strings (``price_str``/``amount_str`` in trades and
orders), handed to the books exactly as sent. Timestamps: ``microtimestamp`` (µs since the
epoch, a string of digits) -> ``event_timestamp`` in ms (truncated).
"""
from __future__ import annotations

from typing import Union

import msgspec

from ...scheme import Instrument
from .._common import is_plain, valid_level  # noqa: F401 (this module's API)

#: books keep at least this many decimals (the listing's ``base_decimals`` of USDT pairs is 5,
#: the feed writes 8 in places)
MIN_DECIMALS = 8
MAX_DECIMALS = 12

#: µs since the epoch: at most 17 digits (year 5138)
MAX_US = 10**17


def micros(text: str) -> int:
    """``"1641343691244908"`` -> 1641343691244908; ValueError unless 1..17 ASCII digits."""
    if text.__class__ is not str or not (0 < len(text) <= 17 and text.isdigit() and text.isascii()):
        raise ValueError(f"bad microtimestamp {text!r}")
    return int(text)


def book_decimals(decimals: int) -> int:
    return min(MAX_DECIMALS, max(MIN_DECIMALS, decimals))


class _Pair(msgspec.Struct, gc=False):
    name: str = ""
    url_symbol: str = ""
    market_symbol: str = ""
    base_currency: str = ""
    counter_currency: str = ""
    base_decimals: Union[int, None] = None
    counter_decimals: Union[int, None] = None
    market_type: str = ""
    trading: str = ""


_pairs_decoder = msgspec.json.Decoder(list[_Pair])

#: quote currencies, longest first: to split a market name the listing did not give
_QUOTES = ("pyusd", "usdt", "usdc", "rlusd", "eurc", "usd", "eur", "gbp", "btc", "eth", "chf", "pax")


def instrument(native: str, base: str, quote: str, kind: str = "spot", price_decimals: int = MIN_DECIMALS,
               size_decimals: int = MIN_DECIMALS) -> Instrument:
    base, quote = base.upper(), quote.upper()
    symbol = f"{base}-{quote}-PERP" if kind == "perp" else f"{base}-{quote}"
    return Instrument(native, symbol, kind, base, quote, price_decimals, size_decimals)


def guess_instrument(native: str) -> Instrument:
    """A market the listing did not name (``btcusd``, ``btcusd-perp``); KeyError if it is not one."""
    name, perp = native, False
    if name.endswith("-perp"):
        name, perp = name[:-5], True
    if not (0 < len(name) <= 30 and name.isascii() and name.isalnum() and name.islower()):
        raise KeyError(f"bitstamp: not a market name {native!r}")
    for q in _QUOTES:
        if name.endswith(q) and len(name) > len(q):
            return instrument(native, name[: -len(q)], q, "perp" if perp else "spot")
    raise KeyError(f"bitstamp: cannot split market name {native!r}")


def parse_pairs(body: bytes) -> dict[str, Instrument]:
    """``/api/v2/trading-pairs-info/`` (or ``/api/v2/markets/``) -> instruments keyed by the
    websocket market name (``btcusd``)."""
    out: dict[str, Instrument] = {}
    for p in _pairs_decoder.decode(body):
        native = p.url_symbol or p.market_symbol
        if not native:
            continue
        kind = "perp" if "PERP" in p.market_type.upper() or native.endswith("-perp") else "spot"
        base, quote = p.base_currency, p.counter_currency
        if not (base and quote):
            name = p.name.split("-", 1)[0] if kind == "perp" else p.name
            base, sep, quote = name.partition("/")
            if not sep:
                try:
                    inst = guess_instrument(native)
                except KeyError:
                    continue
                base, quote = inst.base, inst.quote
        if not base or not quote:
            continue
        pd = book_decimals(p.counter_decimals if p.counter_decimals is not None else MIN_DECIMALS)
        sd = book_decimals(p.base_decimals if p.base_decimals is not None else MIN_DECIMALS)
        out[native] = instrument(native, base, quote, kind, pd, sd)
    return out
