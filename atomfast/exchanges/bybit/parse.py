"""Bybit v5: the instrument listings -> normalised symbols, and the number rules.

Listings: ``GET /v5/market/instruments-info?category=spot|linear|inverse|option``
(https://bybit-exchange.github.io/docs/v5/market/instrument). ``linear`` and ``inverse`` are
asked with ``limit=1000`` (the default page is 500 and there are more than 500 linear symbols);
options per base coin (``baseCoin``: without it the option listing holds BTC only), also with
``limit=1000``. Further cursor pages (``nextPageCursor``) are NOT followed: the kit fetches each
listing path once (a market beyond the first 1000 of its listing is named by ``name_instrument``).

==========================  ===========================  =========================================
Bybit (category, name)      normalised (DESIGN.md)       from
==========================  ===========================  =========================================
spot ``BTCUSDT``            ``BTC-USDT``                 baseCoin, quoteCoin
linear ``BTCUSDT``          ``BTC-USDT-PERP``            contractType LinearPerpetual, quoteCoin
linear ``BTCPERP``          ``BTC-USDC-PERP``            (USDC perpetual: quoteCoin USDC)
linear ``BTCUSDT-26DEC25``  ``BTC-USDT-20251226``        contractType LinearFutures, deliveryTime
linear ``BTC-26DEC25``      ``BTC-USDC-20251226``        (USDC futures)
inverse ``BTCUSD``          ``BTC-USD-PERP``             InversePerpetual
inverse ``BTCUSDZ25``       ``BTC-USD-20251226``         InverseFutures, deliveryTime
option ``BTC-26DEC26-100000-C``       ``BTC-USDC-20261225-100000-C``  settleCoin (USDC), the name's
option ``BTC-27MAR26-70000-P-USDT``   ``BTC-USDT-20260327-70000-P``   date, strike and C/P
==========================  ===========================  =========================================

An option's quote in our symbol is its SETTLE coin (the listing's ``settleCoin``): Bybit lists the
same strike and expiry settled in USDC (``BTC-26DEC26-100000-C``) and in USDT
(``BTC-26DEC26-100000-C-USDT``); the settle coin keeps the two apart (the listing's ``quoteCoin``
does not: USD or USDT). A dated future's date is its ``deliveryTime`` (UTC), which the name's
date code agrees with.

Decimals: a book keeps prices at the tick size's decimals + 2 and sizes at the lot step's + 2
(spot: ``basePrecision``), so a level Bybit writes with a trailing zero or two is still taken.
"""
from __future__ import annotations

import datetime as _dt
from decimal import Decimal, InvalidOperation

import msgspec

from ...scheme import Instrument
from .._common import decimals_of, is_plain, ms_ok, ok_float  # noqa: F401 (this module's API)

MONTHS = {m: i for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}
#: quote coins a spot or linear name may end with (longest first), for names no listing gave
QUOTES = ("USDT", "USDC", "USDE", "USD1", "EUR", "BRL", "PLN", "TRY", "BTC", "ETH", "DAI", "MNT")
#: decimals of a market no listing gave
GUESS_DECIMALS = 8


class _Filter(msgspec.Struct, frozen=True, gc=False):
    tickSize: str = ""
    qtyStep: str = ""
    basePrecision: str = ""


class _Listed(msgspec.Struct, gc=False):
    symbol: str
    baseCoin: str = ""
    quoteCoin: str = ""
    settleCoin: str = ""
    contractType: str = ""
    status: str = ""
    deliveryTime: str = "0"
    optionsType: str = ""
    priceFilter: _Filter = _Filter()
    lotSizeFilter: _Filter = _Filter()


class _Result(msgspec.Struct, frozen=True, gc=False):
    category: str = ""
    list: tuple[_Listed, ...] = ()


class _Listing(msgspec.Struct, gc=False):
    retCode: int = 0
    result: _Result = _Result()


_listing_decoder = msgspec.json.Decoder(_Listing)


def _coin(text: str) -> str:
    if not (text and text.isalnum() and text.isascii() and len(text) <= 20):
        raise KeyError(f"bybit: not a coin {text!r}")
    return text.upper()


def date_code(code: str) -> str:
    """``26DEC26`` -> ``20261226``; ``6JAN23`` -> ``20230106``. KeyError if not a date code."""
    if not (6 <= len(code) <= 7 and code.isascii()):
        raise KeyError(f"bybit: not a date code {code!r}")
    day, mon, yy = code[:-5], code[-5:-2], code[-2:]
    month = MONTHS.get(mon)
    if month is None or not day.isdigit() or not yy.isdigit():
        raise KeyError(f"bybit: not a date code {code!r}")
    try:
        return _dt.date(2000 + int(yy), month, int(day)).strftime("%Y%m%d")
    except ValueError:
        raise KeyError(f"bybit: not a date code {code!r}") from None


def delivery_date(ms_text: str) -> str:
    """A ``deliveryTime`` (ms, text) as its UTC date ``YYYYMMDD``; KeyError if it is none."""
    if not (ms_text.isdigit() and ms_text.isascii() and 0 < len(ms_text) <= 14):
        raise KeyError(f"bybit: not a delivery time {ms_text!r}")
    ms = int(ms_text)
    if not ms or not ms_ok(ms):
        raise KeyError(f"bybit: not a delivery time {ms_text!r}")
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc).strftime("%Y%m%d")


def strike_text(text: str) -> str:
    """A strike as written in our symbols: ``100000``, ``2.4``."""
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError):
        raise KeyError(f"bybit: not a strike {text!r}") from None
    if not d.is_finite() or d <= 0 or not is_plain(text):
        raise KeyError(f"bybit: not a strike {text!r}")
    return format(d.normalize(), "f")


def option_instrument(name: str, settle: str = "", pd: int = GUESS_DECIMALS, sd: int = GUESS_DECIMALS) -> Instrument:
    """``BTC-26DEC26-100000-C`` (USDC-settled) or ``BTC-27MAR26-70000-P-USDT`` -> its instrument
    (``settle``: the listing's settle coin, else the name's suffix, else USDC)."""
    parts = name.split("-")
    if len(parts) == 5:
        suffix = _coin(parts[4])
    elif len(parts) == 4:
        suffix = "USDC"
    else:
        raise KeyError(f"bybit: not an option name {name!r}")
    if parts[3] not in ("C", "P"):
        raise KeyError(f"bybit: not an option name {name!r}")
    base = _coin(parts[0])
    expiry = date_code(parts[1])
    strike = strike_text(parts[2])
    quote = _coin(settle) if settle else suffix
    return Instrument(name, f"{base}-{quote}-{expiry}-{strike}-{parts[3]}", "option", base, quote, pd, sd, expiry)


def _split(name: str) -> tuple[str, str]:
    for quote in QUOTES:
        if name.endswith(quote) and len(name) > len(quote):
            return _coin(name[: -len(quote)]), quote
    raise KeyError(f"bybit: cannot split {name!r} into base and quote")


def name_instrument(category: str, name: str) -> Instrument:
    """The instrument of a Bybit name alone (no listing); KeyError if the name is not one of
    ``category``'s. Inverse dated futures (``BTCUSDZ25``) cannot be dated from the name alone."""
    d = GUESS_DECIMALS
    if category == "option":
        return option_instrument(name)
    if not (name and name.isascii() and name.replace("-", "").isalnum() and name == name.upper()):
        raise KeyError(f"bybit: not a {category} name {name!r}")
    if category == "spot":
        base, quote = _split(name)
        return Instrument(name, f"{base}-{quote}", "spot", base, quote, d, d)
    if category == "linear":
        head, _, code = name.partition("-")
        if code:  # BTCUSDT-26DEC25 (USDT futures) or BTC-26DEC25 (USDC futures)
            expiry = date_code(code)
            base, quote = (_coin(head[:-4]), "USDT") if head.endswith("USDT") and len(head) > 4 else (_coin(head), "USDC")
            return Instrument(name, f"{base}-{quote}-{expiry}", "future", base, quote, d, d, expiry)
        if name.endswith("PERP") and len(name) > 4:
            base = _coin(name[:-4])
            return Instrument(name, f"{base}-USDC-PERP", "perp", base, "USDC", d, d)
        base, quote = _split(name)
        return Instrument(name, f"{base}-{quote}-PERP", "perp", base, quote, d, d)
    if category == "inverse" and name.endswith("USD") and len(name) > 3:
        base = _coin(name[:-3])
        return Instrument(name, f"{base}-USD-PERP", "perp", base, "USD", d, d)
    raise KeyError(f"bybit: not a {category} name {name!r}")


def listed_instrument(category: str, item: _Listed) -> Instrument | None:
    """One listed market, normalised; None for what we cannot name."""
    name = item.symbol
    pd = min(16, decimals_of(item.priceFilter.tickSize or None, GUESS_DECIMALS - 2) + 2)
    step = item.lotSizeFilter.basePrecision if category == "spot" else item.lotSizeFilter.qtyStep
    sd = min(16, decimals_of(step or None, GUESS_DECIMALS - 2) + 2)
    try:
        base = _coin(item.baseCoin)
        if category == "spot":
            quote = _coin(item.quoteCoin)
            return Instrument(name, f"{base}-{quote}", "spot", base, quote, pd, sd)
        if category == "option":
            return option_instrument(name, item.settleCoin, pd, sd)
        quote = _coin(item.quoteCoin)
        kind = item.contractType
        if kind in ("LinearPerpetual", "InversePerpetual"):
            return Instrument(name, f"{base}-{quote}-PERP", "perp", base, quote, pd, sd)
        if kind in ("LinearFutures", "InverseFutures"):
            expiry = delivery_date(item.deliveryTime)
            return Instrument(name, f"{base}-{quote}-{expiry}", "future", base, quote, pd, sd, expiry)
    except KeyError:
        return None
    return None


def parse_listing(category: str, body: bytes) -> dict[str, Instrument]:
    """One ``instruments-info`` answer -> instruments keyed by Bybit's name ({} for an error
    answer, ``retCode`` != 0, or a listing of another category)."""
    listing = _listing_decoder.decode(body)
    if listing.retCode != 0 or (listing.result.category and listing.result.category != category):
        return {}
    out: dict[str, Instrument] = {}
    for item in listing.result.list:
        inst = listed_instrument(category, item)
        if inst is not None:
            out[inst.native] = inst
    return out


def ms_text(text: str | None) -> int:
    """A time in ms written as text (``nextFundingTime``); -1 if absent or malformed."""
    if text and text.isdigit() and text.isascii() and len(text) <= 14:
        ms = int(text)
        return ms if ms_ok(ms) else -1
    return -1


def number(text: str | None) -> float | None:
    """A plain non-negative decimal text as a float; None if absent or empty; ValueError if
    malformed or absurd."""
    if not text:
        return None
    if not is_plain(text):
        raise ValueError(f"not a plain number {text!r}")
    x = float(text)
    if not ok_float(x):
        raise ValueError(f"absurd number {text!r}")
    return x


def signed(text: str | None) -> float | None:
    """A rate (may be negative: ``-0.000212``); None if absent or empty; ValueError if malformed."""
    if not text:
        return None
    if text[:1] == "-":
        x = number(text[1:])
        return -x if x is not None else None
    return number(text)
