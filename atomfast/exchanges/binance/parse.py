"""Binance: instruments, symbols, numbers.

Symbols (DESIGN.md), from ``exchangeInfo``'s ``baseAsset`` / ``quoteAsset``:

* spot ``BTCUSDT`` -> ``BTC-USDT``
* USD-M perpetual ``BTCUSDT`` (``contractType`` PERPETUAL, TRADIFI_PERPETUAL, ...) -> ``BTC-USDT-PERP``
* USD-M quarterly ``BTCUSDT_240927`` -> ``BTC-USDT-20240927`` (the UTC date of ``deliveryDate``)
* COIN-M perpetual ``BTCUSD_PERP`` -> ``BTC-USD-PERP``, quarterly ``BTCUSD_240927`` -> ``BTC-USD-20240927``

The native name is Binance's upper-case ``symbol`` (as in the payloads' ``s`` and the REST
queries); stream names use it lower-cased.

A market missing from the listing (a replayed capture without ``exchangeInfo``, e.g. the
hftbacktest sessions, or a new listing) is guessed from its name: the quote is the longest known
quote asset the name ends with; ``_PERP`` / ``_YYMMDD`` suffixes make a perpetual / dated future.

Numbers: Binance's engine keeps prices and quantities as int64 with 8 decimals (spot's largest
``maxQty`` is 92233720368.54775807 = 2**63-1 / 1e8), and every decimal it sends has at most 8
decimals: books are built at 8/8 (more only if a listing's tick or step asks for more), so every
value the venue can send fits exactly, and nothing it sends can overflow the book's int64.
"""
from __future__ import annotations

import datetime as _dt
import re

from ...scheme import Instrument
from .._common import MAX_MS, ms_ok  # noqa: F401 (this module's API)
from . import messages as m

#: quote assets, longest first within equal suffixes (for names the listing does not give)
QUOTES = tuple(sorted((
    "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "USDS", "DAI", "UST", "PAX", "VAI", "USD",
    "BTC", "ETH", "BNB", "XRP", "TRX", "DOGE", "DOT", "SOL",
    "EUR", "GBP", "AUD", "TRY", "BRL", "RUB", "UAH", "ZAR", "NGN", "PLN", "RON", "ARS", "MXN",
    "COP", "JPY", "CZK", "IDRT", "BIDR", "BVND", "AEUR", "EURI",
), key=len, reverse=True))

DEFAULT_DECIMALS = 8
MAX_DECIMALS = 18

_NATIVE = re.compile(r"[A-Z0-9]{2,40}(?:_(?:PERP|[0-9]{6}))?")


#: ``decimals_of``'s answers (a listing repeats a few tick and step sizes thousands of times)
_decimals: dict[str, int] = {}


def decimals_of(step: str) -> int:
    """Decimals a tick/step size needs: "0.01000000" -> 2, "1.00000000" -> 0, "" -> 0."""
    known = _decimals.get(step)
    if known is not None:
        return known
    whole, _, frac = step.partition(".")
    frac = frac.rstrip("0")
    out = len(frac) if frac.isdigit() or not frac else 0
    if len(_decimals) < 4096:
        _decimals[step] = out
    return out


def _book_decimals(info: m.SymbolInfo) -> tuple[int, int]:
    pd = sd = DEFAULT_DECIMALS
    for f in info.filters:
        kind = f.filterType
        if kind == "PRICE_FILTER":
            if f.tickSize:
                pd = max(pd, decimals_of(f.tickSize))
        elif kind == "LOT_SIZE" and f.stepSize:
            sd = max(sd, decimals_of(f.stepSize))
    return min(pd, MAX_DECIMALS), min(sd, MAX_DECIMALS)


def ms_to_date(ms: int) -> str:
    """Epoch ms -> ``YYYYMMDD`` (UTC)."""
    return _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc).strftime("%Y%m%d")


def yymmdd_to_date(text: str) -> str:
    """``"240927"`` -> ``"20240927"`` (ValueError if it is not a date)."""
    d = _dt.datetime.strptime(text, "%y%m%d")
    return d.strftime("%Y%m%d")


def split_pair(pair: str) -> tuple[str, str]:
    """``BTCUSDT`` -> (``BTC``, ``USDT``) by the longest known quote; KeyError if none fits."""
    for q in QUOTES:
        if pair.endswith(q) and len(pair) > len(q):
            return pair[: -len(q)], q
    raise KeyError(f"binance: cannot tell base and quote of {pair!r}")


# --------------------------------------------------------------------------------------------
# listings


def parse_spot_listing(body: bytes) -> dict[str, Instrument]:
    """``/api/v3/exchangeInfo`` -> instruments keyed by symbol (every listed status)."""
    info = m.exchange_info.decode(body)
    out: dict[str, Instrument] = {}
    for s in info.symbols:
        if not s.symbol or not s.baseAsset or not s.quoteAsset:
            continue
        base, quote = s.baseAsset.upper(), s.quoteAsset.upper()
        pd, sd = _book_decimals(s)
        out[s.symbol] = Instrument(s.symbol, f"{base}-{quote}", "spot", base, quote, pd, sd)
    return out


def futures_instrument(info: m.SymbolInfo) -> Instrument | None:
    """One ``/fapi/v1/exchangeInfo`` or ``/dapi/v1/exchangeInfo`` symbol, or None if unusable."""
    native = info.symbol
    if not native or not info.baseAsset or not info.quoteAsset:
        return None
    base, quote = info.baseAsset.upper(), info.quoteAsset.upper()
    pd, sd = _book_decimals(info)
    ctype = info.contractType
    _, sep, suffix = native.partition("_")
    if "PERPETUAL" in ctype or (not ctype and (not sep or suffix == "PERP")):
        return Instrument(native, f"{base}-{quote}-PERP", "perp", base, quote, pd, sd)
    if info.deliveryDate > 0:
        expiry = ms_to_date(info.deliveryDate)
    else:
        try:
            expiry = yymmdd_to_date(suffix)
        except ValueError:
            return None
    return Instrument(native, f"{base}-{quote}-{expiry}", "future", base, quote, pd, sd, expiry)


def parse_futures_listing(body: bytes) -> dict[str, Instrument]:
    info = m.exchange_info.decode(body)
    out: dict[str, Instrument] = {}
    for s in info.symbols:
        inst = futures_instrument(s)
        if inst is not None:
            out[inst.native] = inst
    return out


# --------------------------------------------------------------------------------------------
# guesses (markets the listing did not name)


def _check_native(native: str) -> None:
    if not _NATIVE.fullmatch(native):
        raise KeyError(f"binance: not a market name {native!r}")


def guess_spot(native: str) -> Instrument:
    _check_native(native)
    if "_" in native:
        raise KeyError(f"binance: not a spot market name {native!r}")
    base, quote = split_pair(native)
    return Instrument(native, f"{base}-{quote}", "spot", base, quote, DEFAULT_DECIMALS, DEFAULT_DECIMALS)


def guess_futures(native: str) -> Instrument:
    """USD-M ``BTCUSDT`` / ``BTCUSDT_240927``; COIN-M ``BTCUSD_PERP`` / ``BTCUSD_240927``."""
    _check_native(native)
    pair, _, suffix = native.partition("_")
    base, quote = split_pair(pair)
    if not suffix or suffix == "PERP":
        return Instrument(native, f"{base}-{quote}-PERP", "perp", base, quote, DEFAULT_DECIMALS, DEFAULT_DECIMALS)
    try:
        expiry = yymmdd_to_date(suffix)
    except ValueError:
        raise KeyError(f"binance: not a market name {native!r}") from None
    return Instrument(native, f"{base}-{quote}-{expiry}", "future", base, quote, DEFAULT_DECIMALS,
                      DEFAULT_DECIMALS, expiry)


# --------------------------------------------------------------------------------------------
# small checks

#: prices and sizes beyond this are absurd (and NaN / inf fail the comparison)
MAX_VALUE = 1e15


def value_ok(x: float) -> bool:
    return 0.0 <= x < MAX_VALUE


def native_of_stream(stream: str) -> str:
    """``"btcusdt@depth@100ms"`` -> ``"BTCUSDT"``."""
    return stream.partition("@")[0].upper()
