"""Kraken Futures: product ids -> normalised symbols, and the instrument listing.

Product ids (upper case on the websocket): ``PI_XBTUSD`` (inverse perpetual), ``PF_XBTUSD``
(linear perpetual), ``FI_XBTUSD_210924`` (inverse future expiring 2021-09-24), ``FF_XBTUSD_210924``
(linear future). Normalised (DESIGN.md): perpetual ``BTC-USD-PERP``, dated future
``BTC-USD-20210924`` (XBT -> BTC, XDG -> DOGE).

Kraken lists an inverse and a linear contract on the same pair (``PI_XBTUSD`` and
``PF_XBTUSD``): both would be ``BTC-USD-PERP``. The linear one (PF_/FF_) keeps the plain name
and the inverse twin gets ``-INV`` (``BTC-USD-PERP-INV``); an inverse contract without a
linear twin (all of them in 2021) keeps the plain name.
"""
from __future__ import annotations

import msgspec

from ...scheme import Instrument
from .._common import decimals_of
from ..kraken.parse import normalise_asset

QUOTES = ("USDT", "USDC", "USD", "EUR", "GBP", "CHF", "JPY", "AUD", "CAD", "XBT", "BTC", "ETH")
LINEAR = ("PF", "FF", "PV", "FV")
INVERSE = ("PI", "FI")
PERPETUAL = ("PI", "PF", "PV")
DATED = ("FI", "FF", "FV")


def split_pair(pair: str) -> tuple[str, str]:
    """``XBTUSD`` -> (``BTC``, ``USD``); ``1INCHUSD`` -> (``1INCH``, ``USD``)."""
    for q in QUOTES:
        if pair.endswith(q) and len(pair) > len(q):
            return normalise_asset(pair[: -len(q)]), normalise_asset(q)
    if len(pair) > 3:
        return normalise_asset(pair[:-3]), normalise_asset(pair[-3:])
    raise KeyError(f"kraken-futures: cannot split pair {pair!r}")


def product_instrument(product_id: str, price_decimals: int = 10, size_decimals: int = 8) -> Instrument:
    """The instrument of a product id, with the plain normalised name (no twin resolution)."""
    native = product_id.upper()
    parts = native.split("_")
    prefix = parts[0]
    if len(parts) == 2 and prefix in PERPETUAL:
        base, quote = split_pair(parts[1])
        return Instrument(native, f"{base}-{quote}-PERP", "perp", base, quote, price_decimals, size_decimals)
    if len(parts) == 3 and prefix in DATED and len(parts[2]) == 6 and parts[2].isdigit() and parts[2].isascii():
        base, quote = split_pair(parts[1])
        expiry = "20" + parts[2]
        return Instrument(native, f"{base}-{quote}-{expiry}", "future", base, quote, price_decimals, size_decimals, expiry)
    raise KeyError(f"kraken-futures: not a tradeable product id {product_id!r}")


class _ListedInstrument(msgspec.Struct, gc=False):
    symbol: str
    type: str = ""
    tradeable: bool = True
    tickSize: float | None = None
    contractValueTradePrecision: int | None = None


class _Instruments(msgspec.Struct, gc=False):
    instruments: list[_ListedInstrument] = []
    result: str = ""


def parse_instruments(body: bytes) -> dict[str, Instrument]:
    """``/derivatives/api/v3/instruments`` -> instruments keyed by upper-case product id."""
    listing = msgspec.json.decode(body, type=_Instruments)
    found: dict[str, Instrument] = {}
    for item in listing.instruments:
        if not item.tradeable:
            continue
        pd = decimals_of(item.tickSize) if item.tickSize else 10
        prec = item.contractValueTradePrecision
        sd = max(0, prec) if prec is not None else 8
        try:
            inst = product_instrument(item.symbol, pd, sd)
        except KeyError:
            continue  # indices (in_, rr_) and anything we cannot name
        found[inst.native] = inst
    return resolve_twins(found)


def resolve_twins(found: dict[str, Instrument]) -> dict[str, Instrument]:
    """Where an inverse and a linear contract normalise alike, the inverse one gets ``-INV``."""
    by_symbol: dict[str, list[Instrument]] = {}
    for inst in found.values():
        by_symbol.setdefault(inst.symbol, []).append(inst)
    out = dict(found)
    for symbol, insts in by_symbol.items():
        if len(insts) < 2:
            continue
        if any(i.native.split("_")[0] in LINEAR for i in insts):
            for i in insts:
                if i.native.split("_")[0] in INVERSE:
                    out[i.native] = i._replace(symbol=f"{symbol}-INV")
    return out
