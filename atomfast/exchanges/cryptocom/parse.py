"""Crypto.com Exchange instruments, symbols and numbers.

Listing ``GET https://api.crypto.com/exchange/v1/public/get-instruments`` (every instrument in
one answer, https://exchange-developer.crypto.com/exchange/v1/docs/api/rest/public-get-instruments):
``symbol`` is the native name, ``inst_type`` says what it is, ``base_ccy``/``quote_ccy`` the
assets. Normalised per DESIGN.md:

==================  =====================  ======================
``inst_type``       native                 symbol
==================  =====================  ======================
``CCY_PAIR``        ``BTC_USD``            ``BTC-USD``
``PERPETUAL_SWAP``  ``BTCUSD-PERP``        ``BTC-USD-PERP``
``FUTURE``          ``BTCUSD-261225``      ``BTC-USD-20261225``
==================  =====================  ======================

Other types (``WARRANT``, prediction ``EVENTS`` contracts) are left out. Older listings named
the stablecoin settlement ``USD_Stable_Coin``: it is USD. Book scales: the listing's decimals
(``quote_decimals``/``price_tick_size``; sizes four more than ``quantity_decimals``), within
8..12 (the books' texts carry trailing zeros: ``"50113.500000"``).
"""
from __future__ import annotations

import datetime as _dt
import re

from ...scheme import Instrument
from .._common import decimals_of
from . import messages as m

MIN_DECIMALS = 8
MAX_DECIMALS = 12
#: asset names the listing writes otherwise
ALIASES = {"USD_STABLE_COIN": "USD"}
#: quote assets a perpetual's or future's native name may end with (``guess``)
QUOTES = ("USDT", "USDC", "USD")
_asset = re.compile(r"[A-Z0-9]{1,20}").fullmatch
_yymmdd = re.compile(r"[0-9]{6}").fullmatch


def _decimals(n: int) -> int:
    return min(MAX_DECIMALS, max(MIN_DECIMALS, n))


def asset(name: str) -> str:
    name = name.upper()
    return ALIASES.get(name, name)


def expiry_of(suffix: str) -> str:
    """``261225`` -> ``20261225``; ValueError if it is no date."""
    if not _yymmdd(suffix):
        raise ValueError(f"bad expiry {suffix!r}")
    day = "20" + suffix
    _dt.date(int(day[:4]), int(day[4:6]), int(day[6:]))
    return day


def make(native: str, kind: str, base: str, quote: str, price_decimals: int = MAX_DECIMALS,
         size_decimals: int = MAX_DECIMALS) -> Instrument:
    """The instrument of ``native`` (KeyError if its assets or expiry are not well formed)."""
    base, quote = asset(base), asset(quote)
    if not (_asset(base) and _asset(quote)):
        raise KeyError(f"cryptocom: unknown market {native!r}")
    if kind == "spot":
        return Instrument(native, f"{base}-{quote}", kind, base, quote, price_decimals, size_decimals)
    if kind == "perp":
        return Instrument(native, f"{base}-{quote}-PERP", kind, base, quote, price_decimals, size_decimals)
    try:
        expiry = expiry_of(native.rpartition("-")[2])
    except ValueError:
        raise KeyError(f"cryptocom: unknown market {native!r}") from None
    return Instrument(native, f"{base}-{quote}-{expiry}", "future", base, quote, price_decimals, size_decimals,
                      expiry)


_KINDS = {"CCY_PAIR": "spot", "PERPETUAL_SWAP": "perp", "FUTURE": "future"}


def parse_listing(body: bytes) -> dict[str, Instrument]:
    """The spot pairs, perpetuals and dated futures of a ``public/get-instruments`` answer, keyed
    by native name (a row of another type, or one that is not well formed, is left out)."""
    out: dict[str, Instrument] = {}
    for row in m.instruments_decoder.decode(body).result.data:
        kind = _KINDS.get(row.inst_type)
        if kind is None:
            continue
        price = max(row.quote_decimals, decimals_of(row.price_tick_size or None, 0))
        size = max(row.quantity_decimals, decimals_of(row.qty_tick_size or None, 0)) + 4
        try:
            out[row.symbol] = make(row.symbol, kind, row.base_ccy, row.quote_ccy, _decimals(price), _decimals(size))
        except KeyError:
            continue
    return out


def guess(native: str) -> Instrument:
    """A market the listing did not name, from its name alone: ``BASE_QUOTE`` (spot),
    ``BASEQUOTE-PERP``, ``BASEQUOTE-YYMMDD``; KeyError otherwise."""
    if native.__class__ is not str or not native.isascii() or native != native.upper():
        raise KeyError(f"cryptocom: unknown market {native!r}")
    if "_" in native:
        base, _, quote = native.partition("_")
        return make(native, "spot", base, quote)
    pair, sep, suffix = native.partition("-")
    if sep and "-" not in suffix:
        for quote in QUOTES:
            if pair.endswith(quote) and len(pair) > len(quote):
                return make(native, "perp" if suffix == "PERP" else "future", pair[:-len(quote)], quote)
    raise KeyError(f"cryptocom: unknown market {native!r}")
