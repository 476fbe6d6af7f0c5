"""Binance European options: instruments and symbols.

Symbols (DESIGN.md: option ``BTC-USD-20261225-100000-C``): Binance's ``BTC-261225-100000-C`` ->
``BTC-USDT-20261225-100000-C``. The quote is the listing's: ``optionSymbols[].quoteAsset`` (else
the ``quoteAsset`` of its underlying in ``optionContracts``); every Binance option is quoted
(and settled) in USDT, so a name the listing does not hold (a replayed capture, a new listing)
is read as USDT-quoted. The expiry is the date written in the name (``YYMMDD``; the listing's
``expiryDate`` where the name has none), the strike the listing's ``strikePrice`` written
without trailing zeros (``100000.00000000`` -> ``100000``), the kind its ``side`` (CALL/PUT) or
the name's last letter.

The native name is Binance's upper-case symbol (as in the payloads' ``s`` and REST queries);
stream names use it lower-cased.

Numbers: the books are built at 8 decimals (more where the listing's scale or tick asks for
more), as Binance's engines keep prices and quantities: every value the venue sends fits exactly.
"""
from __future__ import annotations

import datetime as _dt
import re
from decimal import Decimal, InvalidOperation

from ...scheme import Instrument
from .._common import MAX_MS, decimals_of, ms_ok  # noqa: F401 (this module's API)
from . import messages as m

DEFAULT_DECIMALS = 8
MAX_DECIMALS = 18
#: the quote (and settlement) asset of every Binance option
DEFAULT_QUOTE = "USDT"

_NAME = re.compile(r"([A-Z0-9]{1,20})-([0-9]{6})-([0-9]{1,12}(?:\.[0-9]{1,8})?)-([CP])")


def yymmdd_to_date(text: str) -> str:
    """``"261225"`` -> ``"20261225"``; KeyError if it is not a date."""
    try:
        return _dt.datetime.strptime(text, "%y%m%d").strftime("%Y%m%d")
    except ValueError:
        raise KeyError(f"binance-options: not an expiry {text!r}") from None


def date_to_yymmdd(date: str) -> str:
    """``"20261225"`` -> ``"261225"`` (the expiry in open-interest stream names)."""
    return date[2:]


def ms_to_date(ms: int) -> str:
    return _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc).strftime("%Y%m%d")


def strike_text(value: str | float | int) -> str:
    """A strike as written in our symbols: ``"100000.00000000"`` -> ``100000``, ``2.5`` -> ``2.5``."""
    try:
        d = Decimal(repr(value) if isinstance(value, float) else str(value))
    except (InvalidOperation, ValueError):
        raise KeyError(f"binance-options: not a strike {value!r}") from None
    if not d.is_finite() or d <= 0:
        raise KeyError(f"binance-options: not a strike {value!r}")
    return format(d.normalize(), "f")


def split_name(native: str) -> tuple[str, str, str, str]:
    """``BTC-261225-100000-C`` -> (``BTC``, ``20261225``, ``100000``, ``C``); KeyError if it is
    not an option name."""
    if native.__class__ is not str:
        raise KeyError(f"binance-options: not an option name {native!r}")
    match = _NAME.fullmatch(native)
    if match is None:
        raise KeyError(f"binance-options: not an option name {native!r}")
    base, yymmdd, strike, kind = match.groups()
    return base, yymmdd_to_date(yymmdd), strike_text(strike), kind


def guess_instrument(native: str) -> Instrument:
    """An option the listing did not name, from its name alone (USDT-quoted)."""
    base, expiry, strike, kind = split_name(native)
    return Instrument(native, f"{base}-{DEFAULT_QUOTE}-{expiry}-{strike}-{kind}", "option", base, DEFAULT_QUOTE,
                      DEFAULT_DECIMALS, DEFAULT_DECIMALS, expiry)


def _decimals(scale: int, filters: list[m.Filter], kind: str) -> int:
    out = max(DEFAULT_DECIMALS, scale if 0 <= scale <= MAX_DECIMALS else 0)
    for f in filters:
        if f.filterType == "PRICE_FILTER" and kind == "price" and f.tickSize:
            out = max(out, decimals_of(f.tickSize))
        elif f.filterType == "LOT_SIZE" and kind == "size" and f.stepSize:
            out = max(out, decimals_of(f.stepSize))
    return min(out, MAX_DECIMALS)


def listed_instrument(row: m.OptionSymbol, contracts: dict[str, m.OptionContract]) -> Instrument | None:
    """One ``optionSymbols`` row, normalised; None where it cannot be named."""
    native = row.symbol
    try:
        base, expiry, strike, kind = split_name(native)
    except KeyError:
        if not (native and row.expiryDate and row.side in ("CALL", "PUT") and row.strikePrice is not None):
            return None
        base, kind = native.split("-")[0], row.side[0]
        try:
            expiry, strike = ms_to_date(row.expiryDate), strike_text(row.strikePrice)
        except (KeyError, ValueError, OverflowError, OSError):
            return None
    contract = contracts.get(row.underlying)
    if contract is not None and contract.baseAsset:
        base = contract.baseAsset.upper()
    quote = (row.quoteAsset or (contract.quoteAsset if contract is not None else "") or DEFAULT_QUOTE).upper()
    if row.strikePrice is not None:
        try:
            strike = strike_text(row.strikePrice)
        except KeyError:
            pass
    if row.side in ("CALL", "PUT"):
        kind = row.side[0]
    pd = _decimals(row.priceScale, row.filters, "price")
    sd = _decimals(row.quantityScale, row.filters, "size")
    return Instrument(native, f"{base}-{quote}-{expiry}-{strike}-{kind}", "option", base, quote, pd, sd, expiry)


def parse_listing(body: bytes) -> dict[str, Instrument]:
    """``/eapi/v1/exchangeInfo`` -> instruments keyed by symbol."""
    info = m.exchange_info.decode(body)
    contracts = {c.underlying: c for c in info.optionContracts if c.underlying}
    out: dict[str, Instrument] = {}
    for row in info.optionSymbols:
        inst = listed_instrument(row, contracts)
        if inst is not None:
            out[inst.native] = inst
    return out


def underlying_of(inst: Instrument) -> str:
    """The underlying as stream names write it: ``btcusdt``."""
    return f"{inst.base}{inst.quote}".lower()


__all__ = ["DEFAULT_QUOTE", "date_to_yymmdd", "guess_instrument", "listed_instrument", "parse_listing",
           "split_name", "strike_text", "underlying_of", "yymmdd_to_date"]
