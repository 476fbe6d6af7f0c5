"""bitFlyer: instruments, symbols, numbers, the mid-price rule.

Instruments: ``GET /v1/getmarkets`` (Japan), ``/v1/getmarkets/usa`` and ``/v1/getmarkets/eu``
(https://bf-lightning-api.readme.io/docs/http-public-api: ``product_code``, ``market_type``, an
optional ``alias``; the websocket takes the ``product_code``, never the alias). Symbols
(DESIGN.md):

- ``market_type`` ``Spot``: ``BTC_JPY`` -> ``BTC-JPY``, ``ETH_BTC`` -> ``ETH-BTC``.
- ``market_type`` ``FX``: ``FX_BTC_JPY`` -> ``BTC-JPY-PERP``. It is bitFlyer Crypto CFD since
  2024-03-28 (formerly Lightning FX; the API kept the product code and the market type): a
  margin contract on BTC/JPY with no expiry, settled in JPY, held open with a funding rate,
  i.e. a perpetual in all but name, so DESIGN's perpetual form ``BASE-QUOTE-PERP`` applies. The
  venue's own ``FX`` marker (cryptofeed's ``BTC-JPY-FX``) would be a fifth symbol form no
  consumer knows; ``kind`` is ``perp``.
- ``market_type`` ``Futures`` (Lightning Futures, listed in the 2021 recording):
  ``BTCJPY17DEC2021`` -> ``BTC-JPY-20211217``.

Numbers: board prices and sizes go to the book as the exact text sent (JSON numbers kept as
``msgspec.Raw``); the listing gives no tick size, so every book keeps ``PRICE_DECIMALS`` /
``SIZE_DECIMALS`` (the 2021 recording has at most 5 price and 8 size decimals).

Mid price (``mid_ok``): bitFlyer's ``mid_price`` is the mean of the best bid and the best ask
truncated to the price tick (every message of the recording: 472415.5 is sent as 472415.0,
0.009205 as 0.0092). The listing gives no tick, so the rule is read on the exact mean ``m``
itself: ``mid_price`` must be ``m``, or, where ``m``'s last decimal digit is a 5 (the half tick
of a mean of two tick prices), ``m`` with that digit dropped.
"""
from __future__ import annotations

import re

import msgspec

from ...scheme import Instrument
from .._common import ok_float, rfc3339_to_ms  # noqa: F401 (this module's API)

PRICE_DECIMALS = 8
#: the largest price or size a trade or ticker carries (the typed writers' bound, ``AvroRows.trade``
#: and ``quote``: no exchange means more)
MAX_VALUE = 1e15
SIZE_DECIMALS = 10

_MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
                                        "NOV", "DEC"), 1)}
#: quote currencies bitFlyer lists, to split a futures code (``BTCJPY17DEC2021``)
_QUOTES = ("JPY", "USD", "EUR", "BTC")
_SPOT = re.compile(r"([A-Z0-9]{2,10})_([A-Z]{2,6})").fullmatch  # (an alias, BTCJPY_MAT1WK, is none)
_FX = re.compile(r"FX_([A-Z0-9]{2,10})_([A-Z0-9]{2,10})").fullmatch
_FUTURE = re.compile(r"([A-Z0-9]{4,20})([0-9]{2})([A-Z]{3})([0-9]{4})").fullmatch


class _Market(msgspec.Struct, gc=False):
    product_code: str = ""
    market_type: str = ""
    alias: str = ""


_markets_decoder = msgspec.json.Decoder(list[_Market])


def _instrument(native: str, base: str, quote: str, kind: str, expiry: str = "") -> Instrument:
    if kind == "perp":
        symbol = f"{base}-{quote}-PERP"
    elif kind == "future":
        symbol = f"{base}-{quote}-{expiry}"
    else:
        symbol = f"{base}-{quote}"
    return Instrument(native, symbol, kind, base, quote, PRICE_DECIMALS, SIZE_DECIMALS, expiry)


def guess_instrument(native: str, market_type: str = "") -> Instrument:
    """The instrument of a product code (``market_type`` from the listing where known); KeyError
    if it is not one."""
    if native.__class__ is not str or not native.isascii():
        raise KeyError(f"bitflyer: not a product code {native!r}")
    fx = _FX(native)
    if fx is not None and market_type in ("", "FX"):
        return _instrument(native, fx[1], fx[2], "perp")
    fut = _FUTURE(native)
    if fut is not None and market_type in ("", "Futures"):
        pair, day, month, year = fut[1], fut[2], fut[3], fut[4]
        if month in _MONTHS and 1 <= int(day) <= 31:
            for q in _QUOTES:
                if pair.endswith(q) and len(pair) > len(q):
                    return _instrument(native, pair[: -len(q)], q, "future", f"{year}{_MONTHS[month]:02d}{day}")
    spot = _SPOT(native)
    if spot is not None and market_type in ("", "Spot"):
        return _instrument(native, spot[1], spot[2], "spot")
    raise KeyError(f"bitflyer: not a product code {native!r} ({market_type or 'no market type'})")


def parse_markets(body: bytes) -> dict[str, Instrument]:
    """A ``getmarkets`` listing -> instruments keyed by ``product_code``; products of a kind this
    scheme does not know are left out."""
    out: dict[str, Instrument] = {}
    for mk in _markets_decoder.decode(body):
        try:
            out[mk.product_code] = guess_instrument(mk.product_code, mk.market_type)
        except KeyError:
            continue
    return out


def mid_ok(mid: int, bid: int, ask: int) -> bool:
    """Whether ``mid`` (ticks) is bitFlyer's mid price of a book whose best bid and ask are
    ``bid`` and ``ask`` (ticks, the same scale): the exact mean, or the mean with its last
    digit, a 5, dropped (truncated to the tick the prices are written in)."""
    twice = bid + ask
    if mid * 2 == twice:
        return True
    if twice <= 0:
        return False
    # the mean in tenths of a tick: always an integer
    m = twice * 5
    z = 1
    while m % 10 == 0:
        m //= 10
        z *= 10
    return m % 10 == 5 and mid * 10 == (m - 5) * z
