"""Hyperliquid: the instrument listings (``POST /info``) and symbol normalisation.

Perpetuals (``{"type":"meta"}``, ``universe[].name``): ``BTC`` -> ``BTC-USD-PERP``. Hyperliquid's
perpetuals are margined and settled in USDC, but quoted in US dollars: the venue names them
``BTC-USD`` (its order book and oracle prices are USD prices) and so do we, as the dYdX scheme
does for its USDC-collateral perpetuals. The native name is the ``coin`` the websocket uses
(``BTC``, ``kPEPE``); the normalised base is upper-cased (``kPEPE`` -> ``KPEPE-USD-PERP``).

Spot (``{"type":"spotMeta"}``): a pair is named ``PURR/USDC`` (the first, canonical one) or
``@<index>`` (every other: the websocket's ``coin`` for it), its ``tokens`` the indexes of base
and quote in ``tokens[]``: ``@1`` with tokens [2, 0] -> ``HFUN-USDC``. A pair whose name the
listing does not hold cannot be named (``@N`` says nothing of its tokens): it is an unknown
market; ``BASE/QUOTE`` is read from the name itself.

Numbers (the docs, "Tick and lot size"): sizes are rounded to the asset's ``szDecimals``; prices
have at most 5 significant figures and at most 6 - szDecimals (perps) or 8 - szDecimals (spot)
decimals. Books are built at 8 price decimals (every valid price fits exactly) and the asset's
``szDecimals`` for sizes (8 for a market the listing did not name).
"""
from __future__ import annotations

import re

from ...scheme import Instrument
from . import messages as m

PRICE_DECIMALS = 8
DEFAULT_SIZE_DECIMALS = 8
MAX_SIZE_DECIMALS = 18
#: the quote of every perpetual (USD prices, USDC collateral: see the module doc)
PERP_QUOTE = "USD"

#: a coin name as listings write it
_PERP_NAME = re.compile(r"[A-Za-z0-9]{1,30}").fullmatch
#: a coin name the listing did not hold, as Hyperliquid names coins: capitals and digits, with the
#: ``k`` prefix of its thousand-unit coins (``kPEPE``); nothing else is taken for a market
_GUESSED_PERP = re.compile(r"k?[A-Z0-9]{1,29}").fullmatch
_SPOT_NAME = re.compile(r"([A-Z0-9]{1,30})/([A-Z0-9]{1,30})").fullmatch


def _size_decimals(sz: int) -> int:
    return sz if 0 <= sz <= MAX_SIZE_DECIMALS else DEFAULT_SIZE_DECIMALS


def perp_instrument(name: str, sz_decimals: int = DEFAULT_SIZE_DECIMALS, listed: bool = False) -> Instrument:
    """A perpetual by its coin name (``listed``: as a listing names it; else it must read as a
    Hyperliquid coin name); KeyError if it is none."""
    if name.__class__ is not str or not (_PERP_NAME if listed else _GUESSED_PERP)(name):
        raise KeyError(f"hyperliquid: not a perpetual's name {name!r}")
    base = name.upper()
    return Instrument(name, f"{base}-{PERP_QUOTE}-PERP", "perp", base, PERP_QUOTE, PRICE_DECIMALS,
                      _size_decimals(sz_decimals))


def parse_meta(body: bytes) -> dict[str, Instrument]:
    """``{"type":"meta"}`` -> the perpetuals keyed by coin (delisted ones too: a replay names them)."""
    out: dict[str, Instrument] = {}
    for asset in m.meta.decode(body).universe:
        try:
            out[asset.name] = perp_instrument(asset.name, asset.szDecimals, listed=True)
        except KeyError:
            continue
    return out


def spot_instrument(name: str, base: str, quote: str, sz_decimals: int = DEFAULT_SIZE_DECIMALS) -> Instrument:
    base, quote = base.upper(), quote.upper()
    return Instrument(name, f"{base}-{quote}", "spot", base, quote, PRICE_DECIMALS, _size_decimals(sz_decimals))


def parse_spot_meta(body: bytes) -> dict[str, Instrument]:
    """``{"type":"spotMeta"}`` -> the spot pairs keyed by their websocket name (``PURR/USDC``,
    ``@1``); a pair naming a token the listing lacks is left out."""
    meta = m.spot_meta.decode(body)
    tokens = {t.index: t for t in meta.tokens}
    out: dict[str, Instrument] = {}
    for pair in meta.universe:
        if len(pair.tokens) != 2:
            continue
        base, quote = tokens.get(pair.tokens[0]), tokens.get(pair.tokens[1])
        if base is None or quote is None or not (_PERP_NAME(base.name) and _PERP_NAME(quote.name)):
            continue
        out[pair.name] = spot_instrument(pair.name, base.name, quote.name, base.szDecimals)
    return out


def guess_spot(name: str) -> Instrument:
    """A spot pair the listing did not name: ``BASE/QUOTE`` only (KeyError for ``@N``)."""
    match = _SPOT_NAME(name) if name.__class__ is str else None
    if match is None:
        raise KeyError(f"hyperliquid: unknown spot pair {name!r}")
    return spot_instrument(name, match.group(1), match.group(2))


__all__ = ["PERP_QUOTE", "PRICE_DECIMALS", "guess_spot", "parse_meta", "parse_spot_meta", "perp_instrument",
           "spot_instrument"]
