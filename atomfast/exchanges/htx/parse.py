"""HTX: instruments, symbols, book precision and the fitting of float-printed sizes.

Symbols (DESIGN.md): spot markets are named in lower case without separator (``btcusdt``); the
listing gives base and quote: ``BTC-USDT``. Listings read: ``GET /v2/settings/common/symbols``
(``sc``, ``bc``, ``qc``, ``tpp`` price precision, ``tap`` amount precision, ``state``; the
same fields as ``/v1/settings/common/symbols``) and the legacy ``GET /v1/common/symbols``
(``symbol``, ``base-currency``, ``quote-currency``, ``price-precision``, ``amount-precision``:
what the 2021 capture recorded). Swaps: ``GET /linear-swap-api/v1/swap_contract_info`` (USDT-M)
and ``/swap-api/v1/swap_contract_info`` (coin-M): ``contract_code`` ``BTC-USDT`` ->
``BTC-USDT-PERP`` (``business_type`` ``swap``); USDT-M dated futures (``business_type``
``futures``, ``delivery_date`` ``20240628``) -> ``BTC-USDT-20240628``.

Numbers: HTX writes prices and sizes as JSON numbers, sizes often with a float's 16-17
significant digits (``3307.9982700421942``, ``2.516448728473207E7``), which no one fixed scale
of an int64 book holds for every size of a market. A book's scale is chosen from the listing
(prices: the price precision + 2, at most 12 decimals; sizes: the amount precision + 5, at
most 12), and a size written with more decimals than that is rounded to it (half-even; a
non-zero size never rounds to 0: it becomes one tick). Prices are never rounded: a price the
book cannot hold exactly is refused.
"""
from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Union

import msgspec

from ...book import parse_ticks, round_sizes
from ...scheme import Instrument

MAX_DECIMALS = 12
#: decimals added to the listing's amount precision for a book's sizes
SIZE_SLACK = 5
#: decimals added to the listing's price precision for a book's prices
PRICE_SLACK = 2
#: the default when a listing gives no precision
DEFAULT_PRICE_PRECISION = 8
DEFAULT_AMOUNT_PRECISION = 4


def book_decimals(price_precision: int, amount_precision: int) -> tuple[int, int]:
    return (min(MAX_DECIMALS, max(0, price_precision) + PRICE_SLACK),
            min(MAX_DECIMALS, max(0, amount_precision) + SIZE_SLACK))


class _Spot(msgspec.Struct, gc=False):
    # /v2/settings/common/symbols, /v1/settings/common/symbols
    sc: str = ""
    bc: str = ""
    qc: str = ""
    tpp: Union[int, None] = None
    tap: Union[int, None] = None
    state: str = ""
    # /v1/common/symbols (legacy)
    symbol: str = ""
    base_currency: str = msgspec.field(default="", name="base-currency")
    quote_currency: str = msgspec.field(default="", name="quote-currency")
    price_precision: Union[int, None] = msgspec.field(default=None, name="price-precision")
    amount_precision: Union[int, None] = msgspec.field(default=None, name="amount-precision")


class _Contract(msgspec.Struct, gc=False):
    contract_code: str = ""
    symbol: str = ""
    price_tick: Union[float, None] = None
    contract_size: Union[float, None] = None
    business_type: str = ""
    pair: str = ""
    delivery_date: str = ""
    contract_status: Union[int, None] = None
    trade_partition: str = ""


class _Listing(msgspec.Struct, gc=False):
    data: list[Any] = []
    status: str = ""


_listing = msgspec.json.Decoder(_Listing)
_DEFAULT_QUOTES = ("usdt", "usdc", "husd", "usdd", "btc", "eth", "ht", "trx", "eur", "usd")


def spot_instrument(native: str, base: str, quote: str, price_precision: int | None,
                    amount_precision: int | None) -> Instrument:
    pd, sd = book_decimals(DEFAULT_PRICE_PRECISION if price_precision is None else price_precision,
                           DEFAULT_AMOUNT_PRECISION if amount_precision is None else amount_precision)
    base, quote = base.upper(), quote.upper()
    return Instrument(native, f"{base}-{quote}", "spot", base, quote, pd, sd)


def parse_spot(body: bytes) -> dict[str, Instrument]:
    """A spot listing (either shape) -> instruments keyed by the websocket name (``btcusdt``)."""
    out: dict[str, Instrument] = {}
    listing = _listing.decode(body)
    for item in msgspec.convert(listing.data, list[_Spot]):
        if item.sc:
            if not (item.bc and item.qc):
                continue
            out[item.sc] = spot_instrument(item.sc, item.bc, item.qc, item.tpp, item.tap)
        elif item.symbol and item.base_currency and item.quote_currency:
            out[item.symbol] = spot_instrument(item.symbol, item.base_currency, item.quote_currency,
                                               item.price_precision, item.amount_precision)
    return out


def _decimals(x: float | None, default: int) -> int:
    if x is None or not x > 0:
        return default
    d = Decimal(repr(x)).normalize()
    exp = d.as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else default


def contract_instrument(code: str, price_tick: float | None = None, contract_size: float | None = None,
                        expiry: str = "") -> Instrument:
    """``BTC-USDT`` -> BTC-USDT-PERP (``expiry`` ``20240628``: BTC-USDT-20240628); sizes are
    contracts (whole numbers on HTX's swaps)."""
    base, sep, quote = code.upper().partition("-")
    quote = quote.partition("-")[0]
    if not (sep and base and quote):
        raise KeyError(f"htx: not a contract code {code!r}")
    pd = min(MAX_DECIMALS, _decimals(price_tick, DEFAULT_PRICE_PRECISION) + PRICE_SLACK)
    sd = min(MAX_DECIMALS, 0 + SIZE_SLACK)  # contracts
    if expiry:
        return Instrument(code, f"{base}-{quote}-{expiry}", "future", base, quote, pd, sd, expiry)
    return Instrument(code, f"{base}-{quote}-PERP", "perp", base, quote, pd, sd)


def parse_contracts(body: bytes) -> dict[str, Instrument]:
    """``swap_contract_info`` -> instruments keyed by ``contract_code``."""
    out: dict[str, Instrument] = {}
    listing = _listing.decode(body)
    for c in msgspec.convert(listing.data, list[_Contract]):
        if not c.contract_code:
            continue
        expiry = ""
        if c.business_type == "futures":
            d = c.delivery_date
            if not (len(d) == 8 and d.isdigit() and d.isascii()):
                continue
            expiry = d
        try:
            out[c.contract_code] = contract_instrument(c.contract_code, c.price_tick, c.contract_size, expiry)
        except KeyError:
            continue
    return out


def guess_spot(native: str) -> Instrument:
    """A spot market the listing did not name (``btcusdt``); KeyError if it is none."""
    if not (0 < len(native) <= 30 and native.isascii() and native.isalnum() and native.islower()):
        raise KeyError(f"htx: not a market name {native!r}")
    for q in _DEFAULT_QUOTES:
        if native.endswith(q) and len(native) > len(q):
            return spot_instrument(native, native[: -len(q)], q, None, None)
    raise KeyError(f"htx: cannot split market name {native!r}")


def guess_contract(native: str) -> Instrument:
    if not (0 < len(native) <= 40 and native.isascii() and native.replace("-", "").isalnum() and native.isupper()):
        raise KeyError(f"htx: not a contract code {native!r}")
    return contract_instrument(native)


# --- sizes the book cannot hold at its scale -----------------------------------------------------------
def fit_size(size: Any, decimals: int) -> Any:
    """``size`` (the exact JSON number bytes) as the book can hold it: unchanged if it fits its
    scale, else rounded to ``decimals`` (half-even; a non-zero size becomes at least one tick).
    ValueError if it is no non-negative number."""
    try:
        parse_ticks(size, decimals)
        return size
    except (ValueError, OverflowError):
        pass
    text = bytes(size).decode("ascii", "replace") if not isinstance(size, str) else size
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"size {text!r} is not a number") from None
    if not d.is_finite() or d < 0 or text[:1] in "+-":
        raise ValueError(f"size {text!r} is not a non-negative number")
    try:  # (a size too large for the context's precision at this scale cannot be quantized)
        q = d.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)
    except InvalidOperation:
        raise ValueError(f"size {text!r} is out of range at {decimals} decimals") from None
    if q == 0 and d != 0:
        q = Decimal(1).scaleb(-decimals)
    out = format(q, "f").encode()
    parse_ticks(out, decimals)  # (ValueError if it does not fit even so: out of range)
    return out


def fit_levels(levels, decimals: int) -> list:
    """A message's levels with every size the book can hold (``fit_size``; compiled:
    ``round_sizes``, which leaves the rare size it cannot read to ``fit_size``)."""
    fitted = round_sizes(levels, decimals)
    if fitted is not None:
        return fitted
    return [(price, fit_size(size, decimals)) for price, size in levels]
