"""Deribit: instrument names -> normalised symbols, the instrument listing, number checks.

Instrument names (``public/get_instruments``):

=====================  ===========================  =====================================
Deribit                normalised (DESIGN.md)       notes
=====================  ===========================  =====================================
``BTC-PERPETUAL``      ``BTC-USD-PERP``             inverse perpetual (amounts in USD)
``BTC_USDC-PERPETUAL`` ``BTC-USDC-PERP``            linear perpetual
``BTC-24SEP21``        ``BTC-USD-20210924``         inverse dated future
``BTC_USDC-27SEP24``   ``BTC-USDC-20240927``        linear dated future
``BTC-24SEP21-8000-P`` ``BTC-USD-20210924-8000-P``  option: strike in USD, C or P
``XRP_USDC-30MAY25-2d4-C`` ``XRP-USDC-20250530-2.4-C``  Deribit writes a decimal strike with ``d``
``BTC_USDC``           ``BTC-USDC``                 spot
=====================  ===========================  =====================================

Combos (``future_combo``, ``option_combo``: ``BTC-FS-...``, ``BTC-CS-...``) are not markets of
ours and are skipped. The quote of an option is its strike currency: the listing's
``counter_currency`` where given, else ``USD`` for an inverse option (the listing's
``quote_currency`` of an inverse option is the premium currency, BTC or ETH, not the strike's).

Units: ``amount`` (book sizes, trade sizes) is what Deribit sends: USD for inverse perpetuals and
futures, the base coin for options and linear instruments. Published unchanged.
"""
from __future__ import annotations

import datetime as _dt
from decimal import Decimal, InvalidOperation

import msgspec

from ...scheme import Instrument
from .._common import MAX_MS, decimals_of, ms_ok, valid_level  # noqa: F401 (this module's API)

MONTHS = {m: i for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}

#: decimals of a guessed instrument (a name the listing did not hold)
GUESS_PRICE_DECIMALS = 8
GUESS_SIZE_DECIMALS = 8
#: answers of ``expiry_from_code`` / ``strike_text`` (a listing repeats a few expiries and strikes
#: thousands of times); a name that is none is not kept (it raises each time)
_expiries: dict[str, str] = {}
_strikes: dict[tuple[type, str | float], str] = {}
_CACHED = 4096


def expiry_from_code(code: str) -> str:
    """``24SEP21`` -> ``20210924``; ``6AUG21`` -> ``20210806``. KeyError if not a date code."""
    known = _expiries.get(code) if code.__class__ is str else None
    if known is not None:
        return known
    out = _expiry_from_code(code)
    if code.__class__ is str and len(_expiries) < _CACHED:
        _expiries[code] = out
    return out


def _expiry_from_code(code: str) -> str:
    if not (6 <= len(code) <= 7 and code.isascii()):
        raise KeyError(f"deribit: not an expiry code {code!r}")
    day, mon, yy = code[:-5], code[-5:-2], code[-2:]
    month = MONTHS.get(mon)
    if month is None or not day.isdigit() or not yy.isdigit():
        raise KeyError(f"deribit: not an expiry code {code!r}")
    try:
        return _dt.date(2000 + int(yy), month, int(day)).strftime("%Y%m%d")
    except ValueError:
        raise KeyError(f"deribit: not an expiry code {code!r}") from None


def strike_text(strike: str | float) -> str:
    """The strike as written in our symbols: ``8000``, ``2.4`` (Deribit's ``2d4``), ``0.05``."""
    cls = strike.__class__
    key = (cls, strike) if cls is str or cls is float else None
    known = _strikes.get(key) if key is not None else None
    if known is not None:
        return known
    out = _strike_text(strike)
    if key is not None and len(_strikes) < _CACHED:
        _strikes[key] = out
    return out


def _strike_text(strike: str | float) -> str:
    if isinstance(strike, float):
        text = repr(strike)
    else:
        text = strike.replace("d", ".")
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise KeyError(f"deribit: not a strike {strike!r}") from None
    if not d.is_finite() or d <= 0:
        raise KeyError(f"deribit: not a strike {strike!r}")
    out = format(d.normalize(), "f")
    return out


def _currencies(prefix: str) -> tuple[str, str | None]:
    """``BTC`` -> (BTC, None); ``BTC_USDC`` -> (BTC, USDC)."""
    base, sep, quote = prefix.partition("_")
    if not base or not base.isalnum() or not base.isascii() or (sep and not (quote.isalnum() and quote.isascii())):
        raise KeyError(f"deribit: not a currency prefix {prefix!r}")
    return base.upper(), (quote.upper() if sep else None)


def name_instrument(name: str, price_decimals: int = GUESS_PRICE_DECIMALS,
                    size_decimals: int = GUESS_SIZE_DECIMALS) -> Instrument:
    """The instrument of a Deribit instrument name alone (no listing). KeyError if it is not one."""
    parts = name.split("-")
    base, quote = _currencies(parts[0])
    if len(parts) == 1:
        if quote is None:
            raise KeyError(f"deribit: not an instrument name {name!r}")
        return Instrument(name, f"{base}-{quote}", "spot", base, quote, price_decimals, size_decimals)
    q = quote or "USD"
    if len(parts) == 2:
        if parts[1] == "PERPETUAL":
            return Instrument(name, f"{base}-{q}-PERP", "perp", base, q, price_decimals, size_decimals)
        expiry = expiry_from_code(parts[1])
        return Instrument(name, f"{base}-{q}-{expiry}", "future", base, q, price_decimals, size_decimals, expiry)
    if len(parts) == 4 and parts[3] in ("C", "P"):
        expiry = expiry_from_code(parts[1])
        strike = strike_text(parts[2])
        return Instrument(name, f"{base}-{q}-{expiry}-{strike}-{parts[3]}", "option", base, q, price_decimals,
                          size_decimals, expiry)
    raise KeyError(f"deribit: not an instrument name {name!r}")


class _Listed(msgspec.Struct, gc=False):
    instrument_name: str
    kind: str = ""
    base_currency: str = ""
    quote_currency: str = ""
    counter_currency: str | None = None
    settlement_period: str | None = None
    option_type: str | None = None
    strike: float | None = None
    expiration_timestamp: int | None = None
    tick_size: float | None = None
    min_trade_amount: float | None = None
    is_active: bool = True


class _Listing(msgspec.Struct, gc=False):
    result: list[_Listed] = []


_listing_decoder = msgspec.json.Decoder(_Listing)


def listed_instrument(item: _Listed) -> Instrument | None:
    """One listed instrument, normalised; None for combos and anything we cannot name."""
    name = item.instrument_name
    pd = decimals_of(item.tick_size, GUESS_PRICE_DECIMALS - 2) + 2
    sd = max(GUESS_SIZE_DECIMALS, decimals_of(item.min_trade_amount, 0))
    try:
        guessed = name_instrument(name, pd, sd)
    except KeyError:
        return None
    base = (item.base_currency or guessed.base).upper()
    kind = item.kind
    if kind == "future":
        quote = (item.quote_currency or guessed.quote).upper()
    elif kind == "option":
        quote = (item.counter_currency or guessed.quote).upper()
    elif kind == "spot":
        quote = (item.quote_currency or guessed.quote).upper()
    else:
        return None  # future_combo, option_combo, ...
    if guessed.kind == "perp":
        symbol = f"{base}-{quote}-PERP"
    elif guessed.kind == "future":
        symbol = f"{base}-{quote}-{guessed.expiry}"
    elif guessed.kind == "option":
        strike = strike_text(item.strike) if item.strike is not None else guessed.symbol.split("-")[-2]
        symbol = f"{base}-{quote}-{guessed.expiry}-{strike}-{name[-1]}"
    else:
        symbol = f"{base}-{quote}"
    return Instrument(name, symbol, guessed.kind, base, quote, pd, sd, guessed.expiry)


def parse_instruments(body: bytes) -> dict[str, Instrument]:
    """``/api/v2/public/get_instruments`` -> instruments keyed by instrument name."""
    listing = _listing_decoder.decode(body)
    out: dict[str, Instrument] = {}
    for item in listing.result:
        inst = listed_instrument(item)
        if inst is not None:
            out[inst.native] = inst
    return out
