"""HitBTC API v3 (and FMFW): the symbol listing, symbol normalisation, number checks.

``GET /api/3/public/symbol`` answers an object keyed by the symbol code (the websocket's names)::

    "EOSUSDT": {"type": "spot", "base_currency": "EOS", "quote_currency": "USDT",
                "quantity_increment": "0.01", "tick_size": "0.00001", ...}
    "BTCUSDT_PERP": {"type": "futures", "expiry": null, "underlying": "BTC", "base_currency": null,
                     "quote_currency": "USDT", "quantity_increment": "0.0001", "tick_size": "0.01", ...}

==================  ====================  ============================================
HitBTC              normalised            rule
==================  ====================  ============================================
``EOSUSDT``         ``EOS-USDT``          spot: ``base_currency``-``quote_currency``
``BTCUSDT_PERP``    ``BTC-USDT-PERP``     futures without ``expiry``: ``underlying``-quote-PERP
(dated futures)     ``BTC-USDT-20261225`` futures with an ``expiry`` (ISO 8601): its UTC date
==================  ====================  ============================================

Numbers: prices and sizes are decimal strings. A book keeps the decimals of the listing's
``tick_size`` (prices) and ``quantity_increment`` (sizes), at most ``MAX_DECIMALS`` (``MIN_DECIMALS`` for a symbol the listing did not give).
Timestamps are integer ms.
"""
from __future__ import annotations

import datetime as _dt
from typing import Union

import msgspec

from ...scheme import Instrument
from .._common import decimals_of, is_plain, ms_ok, rfc3339_to_ms  # noqa: F401 (ms_ok: this module's API)

MIN_DECIMALS = 8
MAX_DECIMALS = 12
#: the largest price or size a trade or ticker carries (the typed writers' bound, ``AvroRows.trade``
#: and ``quote``: no exchange means more)
MAX_VALUE = 1e15
PERP_SUFFIX = "_PERP"

#: quote currencies, longest first: to split a spot name the listing did not give
_QUOTES = ("USDT20", "USDT", "USDC", "USDP", "TUSD", "EURS", "DAI", "USD", "EUR", "BTC", "ETH", "BCH", "TRX", "EOS")


def book_decimals(text: Union[str, None]) -> int:
    """A book's decimals for a tick (or lot) size: its own (every price is a multiple of the tick,
    every size of the lot; trailing zeros are taken), at most ``MAX_DECIMALS``; ``MIN_DECIMALS``
    where the listing gives none. Not more: books hold int64 ticks, and real books carry far
    levels (FMFW's BORUSDT, tick 0.001, had an ask at 99999999999999.000)."""
    if text is None:
        return MIN_DECIMALS
    return min(MAX_DECIMALS, decimals_of(text, MIN_DECIMALS))


class _Listed(msgspec.Struct, gc=False):
    type: str = ""
    base_currency: Union[str, None] = None
    quote_currency: Union[str, None] = None
    underlying: Union[str, None] = None
    expiry: Union[str, None] = None
    tick_size: Union[str, None] = None
    quantity_increment: Union[str, None] = None


_listing_decoder = msgspec.json.Decoder(dict[str, _Listed])


def _asset(name: Union[str, None]) -> str:
    if not name or not (name.isascii() and name.isalnum()):
        return ""
    return name.upper()


def expiry_date(text: str) -> str:
    """``2026-12-25T08:00:00.000Z`` -> ``20261225``; ValueError if it is no ISO 8601 time."""
    ms = rfc3339_to_ms(text)
    return _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc).strftime("%Y%m%d")


def listed_instrument(native: str, item: _Listed) -> Union[Instrument, None]:
    """One listed symbol, normalised; None for what we cannot name (or another type)."""
    pd, sd = book_decimals(item.tick_size), book_decimals(item.quantity_increment)
    quote = _asset(item.quote_currency)
    if item.type == "spot":
        base = _asset(item.base_currency)
        if not (base and quote):
            return None
        return Instrument(native, f"{base}-{quote}", "spot", base, quote, pd, sd)
    if item.type == "futures":
        base = _asset(item.underlying or item.base_currency)
        if not (base and quote):
            return None
        if not item.expiry:
            return Instrument(native, f"{base}-{quote}-PERP", "perp", base, quote, pd, sd)
        try:
            expiry = expiry_date(item.expiry)
        except ValueError:
            return None
        return Instrument(native, f"{base}-{quote}-{expiry}", "future", base, quote, pd, sd, expiry)
    return None


def parse_symbols(body: bytes) -> dict[str, Instrument]:
    """``/api/3/public/symbol`` -> instruments keyed by symbol code."""
    out: dict[str, Instrument] = {}
    for native, item in _listing_decoder.decode(body).items():
        inst = listed_instrument(native, item)
        if inst is not None:
            out[native] = inst
    return out


def guess_instrument(native: str) -> Instrument:
    """A symbol the listing did not name (``BTCUSDT``, ``ETHUSDT_PERP``); KeyError if it is none."""
    name, perp = native, native.endswith(PERP_SUFFIX)
    if perp:
        name = name[: -len(PERP_SUFFIX)]
    if not (0 < len(name) <= 30 and name.isascii() and name.isalnum() and name.isupper()):
        raise KeyError(f"hitbtc: not a symbol {native!r}")
    for q in _QUOTES:
        if name.endswith(q) and len(name) > len(q):
            base = name[: -len(q)]
            if perp:
                return Instrument(native, f"{base}-{q}-PERP", "perp", base, q, MIN_DECIMALS, MIN_DECIMALS)
            return Instrument(native, f"{base}-{q}", "spot", base, q, MIN_DECIMALS, MIN_DECIMALS)
    raise KeyError(f"hitbtc: cannot split symbol {native!r}")


def number(text: Union[str, None]) -> float:
    """A price, size or amount the venue sent as a decimal string, as a float: 0.0 for null or
    ``""`` (an empty side); ValueError unless a plain non-negative decimal within range."""
    if text is None or text == "":
        return 0.0
    if text.__class__ is not str or not is_plain(text):
        raise ValueError(f"bad number {text!r}")
    return float(text)


def rate(text: Union[str, None]) -> float:
    """A signed rate (funding) as a float: 0.0 for null; ValueError unless ``-``? plain decimal."""
    if text is None or text == "":
        return 0.0
    if text.__class__ is not str:
        raise ValueError(f"bad rate {text!r}")
    body = text[1:] if text[:1] == "-" else text
    if not is_plain(body):
        raise ValueError(f"bad rate {text!r}")
    return float(text)
