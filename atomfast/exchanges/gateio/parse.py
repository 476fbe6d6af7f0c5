"""Gate.io instruments, symbols and numbers.

Spot listing ``GET /api/v4/spot/currency_pairs``: ``id`` is the native name (``BTC_USDT``),
``base``/``quote`` the assets: the normalised symbol is ``BASE-QUOTE`` (``BTC-USDT``), per
DESIGN.md. ``precision``/``amount_precision`` are the price and amount decimals.

USDT perpetuals ``GET /api/v4/futures/usdt/contracts``: ``name`` is the native name
(``BTC_USDT``) -> ``BTC-USDT-PERP``. Sizes stay in Gate's contracts (one contract is
``quanto_multiplier`` of the base asset, 0.0001 BTC for BTC_USDT): the books, trades, tickers,
candles, open interest and liquidations of ``gateio-futures`` are all in contracts, as the
exchange sends them (the multiplier is the instrument listing's, for a consumer to convert).
"""
from __future__ import annotations

from ...scheme import Instrument
from .._common import decimals_of
from . import messages as m

#: book scale: at least this many decimals, at most MAX_DECIMALS (a level with more is refused)
MIN_DECIMALS = 8
MAX_DECIMALS = 12


def _decimals(n: int) -> int:
    return min(MAX_DECIMALS, max(MIN_DECIMALS, n))


def _split(native: str) -> tuple[str, str]:
    """``BTC_USDT`` -> (BTC, USDT); KeyError for what is no ``BASE_QUOTE``."""
    base, sep, quote = native.partition("_")
    if (not sep or not base or not quote or "_" in quote or not native.isascii()
            or not (base + quote).isalnum() or not native.isupper() and not native.isdigit()):
        raise KeyError(f"gateio: unknown market {native!r}")
    return base, quote


def spot_instrument(native: str, base: str, quote: str, price_decimals: int = MAX_DECIMALS,
                    size_decimals: int = MAX_DECIMALS) -> Instrument:
    base, quote = base.upper(), quote.upper()
    return Instrument(native, f"{base}-{quote}", "spot", base, quote, price_decimals, size_decimals)


def parse_spot(body: bytes) -> dict[str, Instrument]:
    """Instruments from the spot listing, keyed by native name. Sizes in the books are sums of
    orders: 4 decimals more than the amount precision (within 8..12)."""
    out: dict[str, Instrument] = {}
    for p in m.pairs_decoder.decode(body):
        out[p.id] = spot_instrument(p.id, p.base, p.quote, _decimals(p.precision), _decimals(p.amount_precision + 4))
    return out


def guess_spot(native: str) -> Instrument:
    base, quote = _split(native)
    return spot_instrument(native, base, quote)


def perp_instrument(native: str, price_decimals: int = MAX_DECIMALS, size_decimals: int = MIN_DECIMALS) -> Instrument:
    base, quote = _split(native)
    return Instrument(native, f"{base}-{quote}-PERP", "perp", base, quote, price_decimals, size_decimals)


def parse_contracts(body: bytes) -> dict[str, Instrument]:
    """Instruments from the USDT perpetuals listing, keyed by native name; a name that is no
    ``BASE_QUOTE`` is left out."""
    out: dict[str, Instrument] = {}
    for c in m.contracts_decoder.decode(body):
        try:
            out[c.name] = perp_instrument(c.name, _decimals(decimals_of(c.order_price_round, MIN_DECIMALS)))
        except KeyError:
            continue
    return out


def guess_perp(native: str) -> Instrument:
    return perp_instrument(native)


def stream_market(stream: str) -> tuple[str, str]:
    """``ob.BTC_USDT.400`` -> (BTC_USDT, 400); ("", "") for another shape."""
    head, _, rest = stream.partition(".")
    native, _, level = rest.rpartition(".")
    if head != "ob" or not native or not level.isdigit():
        return "", ""
    return native, level


def ms_of_text(text: str) -> int:
    """``"1606292218213.4578"`` (ms with a fraction) -> 1606292218213; ValueError if absurd."""
    whole, _, frac = text.partition(".")
    if not (0 < len(whole) <= 14 and whole.isdigit() and whole.isascii()) or (frac and not (
            frac.isdigit() and frac.isascii() and len(frac) <= 12)):
        raise ValueError(f"bad time {text!r}")
    return int(whole)


def number_text(value) -> str:
    """A price or size as text: a string as sent, an int or float as written (ValueError for
    anything else: a bool, an exponent, nan, inf)."""
    cls = value.__class__
    if cls is str:
        return value
    if cls is int:
        return str(value)
    if cls is float:
        text = repr(value)
        if "e" not in text and "n" not in text:
            return text
    raise ValueError(f"bad number {value!r}")
