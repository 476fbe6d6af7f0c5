"""Gemini: instruments, symbols and times.

Instruments: ``GET https://api.gemini.com/v1/symbols`` lists every market by name (``btcusd``,
``ethgusd``, ``btcgusdperp``), without base or quote; ``/v1/symbols/details/{symbol}`` (one
request per market: not a listing, so not fetched) gives ``base_currency``/``quote_currency``.
A name is split at the longest known quote currency at its end (``btcgusd`` -> BTC-GUSD, not
BTCG-USD); a name ending in ``perp`` is a perpetual (``btcgusdperp`` -> BTC-GUSD-PERP). A
details answer (one object, or a list of them) is read too: it names base and quote exactly.

Natives: the current API names markets in lower case (``btcusd``; an inbound frame may write
``BTCUSD``: Gemini's conformance exception ``ws-inbound-symbol-case``), market data v2 in upper
case (``BTCUSD``).

Numbers: prices and quantities are decimal strings, handed to the books as sent. Books keep 8
decimals (Gemini's finest ``quote_increment``/``tick_size`` in the listing: 1E-8).

Times: the current API's ``E`` is documented in nanoseconds (AsyncAPI ``NanosecondTimestamp``);
Gemini's own conformance frames write milliseconds (``"E":1700000000000``): the unit is taken
from the magnitude (ns, µs or ms) and converted to ms exactly. v2 ``timestamp`` is ms.
"""
from __future__ import annotations

from typing import Any, Union

import msgspec

from ...scheme import Instrument
from .._common import MAX_MS, is_plain, ms_ok, ok_float  # noqa: F401 (this module's API)

DECIMALS = 8

#: quote currencies, longest first (a name is split at the first that ends it)
QUOTES = ("rlusd", "gusd", "usdt", "usdc", "usd", "dai", "gbp", "eur", "sgd", "aud", "btc", "eth", "bch", "ltc",
          "sol")


class _Details(msgspec.Struct, gc=False):
    symbol: str = ""
    base_currency: str = ""
    quote_currency: str = ""
    product_type: str = ""


_listing = msgspec.json.Decoder(Union[list[Union[str, _Details]], _Details])


def instrument(name: str, base: str, quote: str, perp: bool = False) -> Instrument:
    base, quote = base.upper(), quote.upper()
    symbol = f"{base}-{quote}-PERP" if perp else f"{base}-{quote}"
    return Instrument(name, symbol, "perp" if perp else "spot", base, quote, DECIMALS, DECIMALS)


def split(name: str) -> Instrument:
    """A market name (either case) -> its instrument, keyed by ``name`` as given; KeyError if it
    is not one."""
    low = name.lower()
    perp = low.endswith("perp") and len(low) > 4
    core = low[:-4] if perp else low
    if not (0 < len(core) <= 30 and core.isascii() and core.isalnum()):
        raise KeyError(f"gemini: not a market name {name!r}")
    for q in QUOTES:
        if core.endswith(q) and len(core) > len(q):
            return instrument(name, core[: -len(q)], q, perp)
    raise KeyError(f"gemini: cannot split market name {name!r}")


def parse_listing(body: bytes, upper: bool) -> dict[str, Instrument]:
    """``/v1/symbols`` (names), or details answers, -> instruments keyed by the protocol's native
    name (``upper``: v2's ``BTCUSD``; else ``btcusd``)."""
    decoded = _listing.decode(body)
    out: dict[str, Instrument] = {}
    for item in decoded if isinstance(decoded, list) else [decoded]:
        if isinstance(item, str):
            name = item.upper() if upper else item.lower()
            try:
                out[name] = split(name)
            except KeyError:
                continue
        elif item.symbol and item.base_currency and item.quote_currency:
            name = item.symbol.upper() if upper else item.symbol.lower()
            perp = item.product_type.lower() == "swap" or name.lower().endswith("perp")
            out[name] = instrument(name, item.base_currency, item.quote_currency, perp)
    return out


def to_ms(t: int) -> int:
    """An exchange time in ns, µs or ms (by magnitude) -> ms; ValueError if negative or absurd."""
    if t.__class__ is not int or t < 0:
        raise ValueError(f"bad time {t!r}")
    if t >= 10**17:
        t //= 1_000_000
    elif t >= 10**14:
        t //= 1000
    if not ms_ok(t):
        raise ValueError(f"bad time {t!r}")
    return t


def price_size(p: Any, q: Any) -> tuple[float, float]:
    """A trade's or ticker's price and size (decimal strings) as floats; ValueError if they are
    not plain non-negative decimals."""
    if p.__class__ is not str or q.__class__ is not str or not is_plain(p) or not is_plain(q):
        raise ValueError(f"bad number {p!r} {q!r}")
    return float(p), float(q)
