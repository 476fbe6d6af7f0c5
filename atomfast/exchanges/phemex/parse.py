"""Phemex: instruments, symbols, the scaled-integer encoding, numbers and times.

Listings: ``GET /public/products`` (current: ``currencies``, ``products`` with the spot pairs
``type`` "Spot" and the COIN-M / USD-settled contracts ``type`` "Perpetual", ``perpProductsV2``
with the USDT-M perpetuals ``type`` "PerpetualV2") and the older
``GET /exchange/public/cfg/v2/products`` (``currencies`` and ``products``, the listing recorded in
``PHEMEX.0``). Both have the same shape where they overlap and are read by one parser.

Symbols (DESIGN.md): spot ``sBTCUSDT`` -> ``BTC-USDT``; a contract is a perpetual:
``BTCUSDT`` (USDT-M) -> ``BTC-USDT-PERP``, ``BTCUSD`` (settled in BTC) and ``XMRUSD`` (settled
in USD; its asset is ``contractUnderlyingAssets``) -> ``BTC-USD-PERP``, ``XMR-USD-PERP``.

Numbers. Two encodings, by channel (Phemex's docs, "Price/Ratio/Value scales"):

- scaled integers (``orderbook``, ``trade``, ``kline``: spot and the "Perpetual" contracts):
  a price ``Ep`` is ``price * 10**priceScale`` (spot: 8, the product's ``priceScale`` where the
  listing gives it, the docs' "All spot symbols use the same price scale factor 8" where it does
  not; contracts: their ``priceScale``, 4); a spot size ``Ev`` is scaled by the base currency's
  ``valueScale`` (``currencies``); a contract size is a number of contracts (unscaled). An
  ``Instrument`` of such a market carries these scales as its ``price_decimals`` and
  ``size_decimals``: ``format_ticks(ep, price_decimals)`` is the exact decimal text.
- strings (``orderbook_p``, ``trade_p``, ``kline_p``, ``perp_market24h_pack_p``: USDT-M
  "PerpetualV2"): real prices and sizes as text; the book keeps at least 8 decimals (more where
  ``tickSize``/``qtyStepSize`` need them).

Times: nanoseconds since the epoch (``timestamp``; a kline's start is in seconds).
"""
from __future__ import annotations

from typing import Any, Union

import msgspec

from ...book import format_ticks
from ...scheme import Instrument
from .._common import MAX_FLOAT, MAX_MS, decimals_of, is_plain, ok_float, valid_level  # noqa: F401 (this module's API)

#: the largest price or size a trade or ticker carries (the typed writers' bound, ``AvroRows.trade``
#: and ``quote``: no exchange means more)
MAX_VALUE = 1e15
#: decimals a string-priced (USDT-M) book keeps at least, and at most
MIN_DECIMALS = 8
MAX_DECIMALS = 12
#: the docs: every spot pair's price scale (``Ep``) is 8
SPOT_PRICE_SCALE = 8
#: a scaled integer is below this (the books hold int64 ticks)
MAX_SCALED = 2**63 - 1
#: exchange times in ns are below this (MAX_MS ms)
MAX_NS = MAX_MS * 1_000_000
#: quote currencies of the USDT-M ("_p") perpetuals
HEDGED_QUOTES = ("USDT", "USDC")


def ns_ok(ns: int) -> bool:
    return 0 <= ns < MAX_NS


def hedged(inst: Instrument) -> bool:
    """A USDT-M perpetual (``_p`` channels, prices as strings)."""
    return inst.kind == "perp" and inst.quote in HEDGED_QUOTES


def scaled_text(value: int, decimals: int) -> str:
    """A scaled integer as exact decimal text (``329915000``, 4 -> ``"32991.5000"``);
    ValueError unless 0 <= value < 2**63."""
    if value.__class__ is not int or not 0 <= value <= MAX_SCALED:
        raise ValueError(f"scaled number out of range: {value!r}")
    return format_ticks(value, decimals)


def scaled_float(value: int, decimals: int) -> float:
    """A scaled integer as a float (correctly rounded); ValueError unless 0 <= value < 2**63."""
    if value.__class__ is not int or not 0 <= value <= MAX_SCALED:
        raise ValueError(f"scaled number out of range: {value!r}")
    return value / 10**decimals if decimals else float(value)


def book_decimals(decimals: int) -> int:
    return min(MAX_DECIMALS, max(MIN_DECIMALS, decimals))


class _Currency(msgspec.Struct, gc=False):
    currency: str = ""
    valueScale: Union[int, None] = None


class _Product(msgspec.Struct, gc=False):
    symbol: str = ""
    type: str = ""
    status: str = ""
    baseCurrency: Union[str, None] = None
    quoteCurrency: Union[str, None] = None
    settleCurrency: Union[str, None] = None
    contractUnderlyingAssets: Union[str, None] = None
    priceScale: Union[int, None] = None
    tickSize: Any = None
    qtyStepSize: Any = None
    pricePrecision: Union[int, None] = None


class _Data(msgspec.Struct, gc=False):
    currencies: list[_Currency] = []
    products: list[_Product] = []
    perpProductsV2: list[_Product] = []


class _Listing(msgspec.Struct, gc=False):
    data: _Data


_listing_decoder = msgspec.json.Decoder(_Listing)


def spot(native: str, base: str, quote: str, value_scale: int = 8) -> Instrument:
    base, quote = base.upper(), quote.upper()
    return Instrument(native, f"{base}-{quote}", "spot", base, quote, SPOT_PRICE_SCALE, value_scale)


def contract(native: str, base: str, quote: str, price_scale: int = 4) -> Instrument:
    """A "Perpetual" (scaled) contract: sizes in contracts."""
    base, quote = base.upper(), quote.upper()
    return Instrument(native, f"{base}-{quote}-PERP", "perp", base, quote, price_scale, 0)


def perp(native: str, base: str, quote: str, price_decimals: int = MIN_DECIMALS,
         size_decimals: int = MIN_DECIMALS) -> Instrument:
    """A USDT-M ("PerpetualV2") perpetual: prices and sizes as strings."""
    base, quote = base.upper(), quote.upper()
    return Instrument(native, f"{base}-{quote}-PERP", "perp", base, quote, book_decimals(price_decimals),
                      book_decimals(size_decimals))


def _name_ok(name: str) -> bool:
    return 0 < len(name) <= 30 and name.isascii() and name.isalnum()


def guess_instrument(native: str) -> Instrument:
    """A market the listing did not name: ``sBTCUSDT`` (spot), ``BTCUSDT`` (USDT-M perpetual),
    ``BTCUSD`` (a contract); KeyError if it is not one."""
    if native.__class__ is not str or not _name_ok(native):
        raise KeyError(f"phemex: not a market name {native!r}")
    if native[:1] == "s" and native[1:].isupper():
        for q in ("USDT", "USDC", "BTC", "ETH"):
            if native.endswith(q) and len(native) > len(q) + 1:
                return spot(native, native[1:-len(q)], q)
        raise KeyError(f"phemex: cannot split spot name {native!r}")
    if not native.isupper():
        raise KeyError(f"phemex: not a market name {native!r}")
    for q in HEDGED_QUOTES:
        if native.endswith(q) and len(native) > len(q):
            return perp(native, native[: -len(q)], q)
    if native.endswith("USD") and len(native) > 3:
        return contract(native, native[:-3], "USD")
    raise KeyError(f"phemex: cannot split contract name {native!r}")


def parse_products(body: bytes) -> dict[str, Instrument]:
    """A products listing -> instruments keyed by the websocket symbol. Delisted products are
    left out; a second product with a normalised name already taken (the legacy ``uBTCUSD``
    beside ``BTCUSD``) is left out too."""
    data = _listing_decoder.decode(body).data
    scales = {c.currency: c.valueScale for c in data.currencies if c.valueScale is not None}
    out: dict[str, Instrument] = {}
    taken: set[str] = set()
    for p in [*data.products, *data.perpProductsV2]:
        native = p.symbol
        if not native or p.status == "Delisted" or not _name_ok(native):
            continue
        kind = p.type
        quote = p.quoteCurrency or ""
        if kind == "Spot":
            base = p.baseCurrency or ""
            if not (base and quote):
                continue
            vs = scales.get(base.upper(), 8)
            inst = spot(native, base, quote, vs if 0 <= vs <= 18 else 8)
            if p.priceScale is not None and 0 <= p.priceScale <= 18:
                inst = inst._replace(price_decimals=p.priceScale)
        elif kind == "Perpetual":
            base = p.contractUnderlyingAssets if p.settleCurrency == quote else p.settleCurrency
            if base == quote or not base:  # an inverse contract names its quote as the underlying
                base = p.settleCurrency if p.settleCurrency != quote else (p.baseCurrency or "")
            if not (base and quote):
                continue
            ps = p.priceScale if p.priceScale is not None and 0 <= p.priceScale <= 18 else 4
            inst = contract(native, base, quote, ps)
        elif kind in ("PerpetualV2", "PerpetualPilot"):
            base = p.baseCurrency or p.contractUnderlyingAssets or ""
            if not (base and quote):
                continue
            pd = decimals_of(p.tickSize) if p.tickSize is not None else (p.pricePrecision or MIN_DECIMALS)
            inst = perp(native, base, quote, pd, decimals_of(p.qtyStepSize))
        else:
            continue
        if inst.symbol in taken:
            continue
        taken.add(inst.symbol)
        out[native] = inst
    return out
