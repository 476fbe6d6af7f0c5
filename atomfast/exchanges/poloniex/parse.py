"""Poloniex: market names -> normalised symbols, the instrument listings, number checks.

Native names (v3): spot ``BTC_USDT`` -> ``BTC-USDT``; perpetual ``BTC_USDT_PERP`` ->
``BTC-USDT-PERP`` (DESIGN.md: Symbols). Listings:

- spot ``GET https://api.poloniex.com/markets``: ``[{"symbol": "BTC_USDT", "baseCurrencyName":
  "BTC", "quoteCurrencyName": "USDT", "state": "NORMAL", "symbolTradeLimit": {"priceScale": 2,
  "quantityScale": 6, ...}}, ...]`` (the listing recorded in cryptofeed's ``POLONIEX.0``);
- futures ``GET https://api.poloniex.com/v3/market/allInstruments``: ``{"code": 200, "data":
  [{"symbol": "BTC_USDT_PERP", "bCcy": "BTC", "qCcy": "USDT", "tSz": "0.01", "lotSz": 1,
  "ctType": "LINEAR", "status": "OPEN", ...}]}`` (api-docs.poloniex.com, v3 futures, "Get all
  product info").

Books keep at least ``MIN_DECIMALS`` (the book_lv2 levels are written with up to the market's
scale; a listing that says less is not trusted to bound them), at most ``MAX_DECIMALS``.
"""
from __future__ import annotations

import re
from typing import Any, Union

import msgspec

from ...scheme import Instrument
from .._common import decimals_of, is_plain, ms_ok, ok_float, valid_level  # noqa: F401 (this module's API)

MIN_DECIMALS = 8
MAX_DECIMALS = 12

#: a funding rate: a plain decimal, signed
is_rate = re.compile(r"-?[0-9]{1,16}(?:\.[0-9]{1,20})?").fullmatch
_ASSET = re.compile(r"[A-Z0-9]{1,20}").fullmatch


def book_decimals(decimals: int | None) -> int:
    if decimals is None or decimals.__class__ is not int:
        return MIN_DECIMALS
    return min(MAX_DECIMALS, max(MIN_DECIMALS, decimals))


def instrument(native: str, base: str, quote: str, perp: bool, pd: int = MIN_DECIMALS,
               sd: int = MIN_DECIMALS) -> Instrument:
    base, quote = base.upper(), quote.upper()
    if perp:
        return Instrument(native, f"{base}-{quote}-PERP", "perp", base, quote, pd, sd)
    return Instrument(native, f"{base}-{quote}", "spot", base, quote, pd, sd)


def guess_instrument(native: str, perp: bool) -> Instrument:
    """A market the listing did not name: ``BASE_QUOTE`` (spot) or ``BASE_QUOTE_PERP``; KeyError
    if ``native`` is no such name."""
    if native.__class__ is not str:
        raise KeyError(f"poloniex: not a market name {native!r}")
    parts = native.split("_")
    if perp:
        if len(parts) != 3 or parts[2] != "PERP":
            raise KeyError(f"poloniex-futures: not a contract name {native!r}")
    elif len(parts) != 2:
        raise KeyError(f"poloniex: not a market name {native!r}")
    if not (_ASSET(parts[0]) and _ASSET(parts[1])):
        raise KeyError(f"poloniex: not a market name {native!r}")
    return instrument(native, parts[0], parts[1], perp)


class _Limit(msgspec.Struct, gc=False):
    priceScale: Union[int, None] = None
    quantityScale: Union[int, None] = None


class _Market(msgspec.Struct, gc=False):
    symbol: str = ""
    baseCurrencyName: str = ""
    quoteCurrencyName: str = ""
    state: str = ""
    symbolTradeLimit: Union[_Limit, None] = None


_markets_decoder = msgspec.json.Decoder(list[_Market])


def parse_markets(body: bytes) -> dict[str, Instrument]:
    """``/markets`` (spot) -> instruments keyed by the websocket name (``BTC_USDT``)."""
    out: dict[str, Instrument] = {}
    for mk in _markets_decoder.decode(body):
        if not mk.symbol:
            continue
        base, quote = mk.baseCurrencyName, mk.quoteCurrencyName
        if not (base and quote):
            try:
                inst = guess_instrument(mk.symbol, False)
            except KeyError:
                continue
            base, quote = inst.base, inst.quote
        lim = mk.symbolTradeLimit
        pd = book_decimals(lim.priceScale if lim else None)
        sd = book_decimals(lim.quantityScale if lim else None)
        out[mk.symbol] = instrument(mk.symbol, base, quote, False, pd, sd)
    return out


class _Product(msgspec.Struct, gc=False):
    symbol: str = ""
    bCcy: str = ""
    qCcy: str = ""
    tSz: Any = None
    lotSz: Any = None
    status: Any = ""


class _Products(msgspec.Struct, gc=False):
    data: list[_Product] = []
    code: Any = None


_products_decoder = msgspec.json.Decoder(_Products)


def parse_products(body: bytes) -> dict[str, Instrument]:
    """``/v3/market/allInstruments`` (futures) -> instruments keyed by contract (``BTC_USDT_PERP``)."""
    out: dict[str, Instrument] = {}
    for p in _products_decoder.decode(body).data:
        if not p.symbol.endswith("_PERP"):
            continue  # only perpetuals are listed today; a dated contract has no rule here yet
        base, quote = p.bCcy, p.qCcy
        if not (base and quote):
            try:
                inst = guess_instrument(p.symbol, True)
            except KeyError:
                continue
            base, quote = inst.base, inst.quote
        pd = book_decimals(decimals_of(p.tSz, MIN_DECIMALS) if p.tSz is not None else None)
        sd = book_decimals(decimals_of(p.lotSz, MIN_DECIMALS) if p.lotSz is not None else None)
        out[p.symbol] = instrument(p.symbol, base, quote, True, pd, sd)
    return out
