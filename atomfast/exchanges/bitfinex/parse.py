"""Bitfinex: symbols, instruments, numbers and candle time frames.

Symbols (DESIGN.md). A trading pair is ``t`` + the pair of the REST listing
``/v2/conf/pub:list:pair:exchange``: ``BTCUSD`` (two three-letter codes) or ``AAVE:USD`` (codes
of other lengths, colon separated). Perpetual futures (``/v2/conf/pub:list:pair:futures``) put
``F0`` after both codes: ``tBTCF0:USTF0`` -> ``BTC-USDT-PERP``. Bitfinex's own short codes are
mapped to the common names (``ALIASES``: ``UST`` -> ``USDT``, ``IOT`` -> ``IOTA``, ``DSH`` ->
``DASH``, ``DOG`` -> ``MDOGE``, ...; the mapping Bitfinex publishes as ``pub:map:currency:sym``).
Funding symbols (``fUSD``) are not markets here.

Numbers: book prices and amounts go to the book as the JSON number text Bitfinex sent (the
checksum is computed over it). Prices have at most 5 significant digits and 8 decimals; the
books keep 10 price decimals (sub-satoshi prices of future listings still fit, up to ~9.2e8)
and 8 amount decimals (amounts up to ~9.2e10).
"""
from __future__ import annotations

import calendar
import datetime as _dt

from ...book import parse_ticks
from ...scheme import Instrument
from .._common import MAX_MS, ms_ok  # noqa: F401 (this module's API)
from . import messages as m

PRICE_DECIMALS = 10
SIZE_DECIMALS = 8

#: Bitfinex currency codes -> common names (a conservative part of ``pub:map:currency:sym``)
ALIASES = {
    "UST": "USDT",
    "BCHN": "BCH",
    "BCHABC": "XEC",
    "DSH": "DASH",
    "IOT": "IOTA",
    "QTM": "QTUM",
    "MNA": "MANA",
    "DAT": "DATA",
    "ALG": "ALGO",
    "ATO": "ATOM",
    "AMP": "AMPL",
    "TSD": "TUSD",
    "UDC": "USDC",
    "EUT": "EURT",
    "EUS": "EURS",
    "STJ": "STORJ",
    "SNG": "SNGLS",
    "QSH": "QASH",
    "DOG": "MDOGE",
    "RBT": "RBTC",
    "WBT": "WBTC",
    "VSY": "VSYS",
    "XCH": "XCHF",
    "PAS": "PASS",
    "OMN": "OMNI",
    "IQX": "IQ",
    "YYW": "YOYOW",
}
#: common name -> Bitfinex code (building a native name from a normalised symbol)
NATIVE_CODES = {v: k for k, v in ALIASES.items()}

PERP_SUFFIX = "F0"


def normalise_asset(code: str) -> str:
    code = code.upper()
    return ALIASES.get(code, code)


def pair_instrument(native: str) -> Instrument:
    """The instrument of a websocket symbol (``tBTCUSD``, ``tAAVE:USD``, ``tBTCF0:USTF0``);
    KeyError if it is not a trading pair name."""
    if len(native) < 3 or native[0] != "t" or not native.isascii():
        raise KeyError(f"bitfinex: not a trading pair {native!r}")
    pair = native[1:]
    if ":" in pair:
        base, _, quote = pair.partition(":")
    elif len(pair) == 6:
        base, quote = pair[:3], pair[3:]
    else:
        raise KeyError(f"bitfinex: not a trading pair {native!r}")
    if not (base.isalnum() and quote.isalnum()):
        raise KeyError(f"bitfinex: not a trading pair {native!r}")
    kind = "spot"
    if len(base) > 2 and len(quote) > 2 and base.endswith(PERP_SUFFIX) and quote.endswith(PERP_SUFFIX):
        base, quote, kind = base[:-2], quote[:-2], "perp"
    nb, nq = normalise_asset(base), normalise_asset(quote)
    symbol = f"{nb}-{nq}-PERP" if kind == "perp" else f"{nb}-{nq}"
    return Instrument(native, symbol, kind, nb, nq, PRICE_DECIMALS, SIZE_DECIMALS)


def native_of(symbol: str) -> str | None:
    """The websocket symbol of a normalised one (``BTC-USDT-PERP`` -> ``tBTCF0:USTF0``,
    ``ETH-USD`` -> ``tETHUSD``); None if it is not of our forms. Used for symbols the instrument
    listing does not name (the perpetuals when only the exchange pairs were fetched)."""
    parts = symbol.split("-")
    if len(parts) == 3 and parts[2] == "PERP":
        base, quote = (NATIVE_CODES.get(p, p) for p in parts[:2])
        return f"t{base}{PERP_SUFFIX}:{quote}{PERP_SUFFIX}" if base and quote else None
    if len(parts) == 2 and all(parts):
        base, quote = (NATIVE_CODES.get(p, p) for p in parts)
        return f"t{base}{quote}" if len(base) == 3 and len(quote) == 3 else f"t{base}:{quote}"
    return None


def parse_pair_lists(body: bytes) -> dict[str, Instrument]:
    """``/v2/conf/pub:list:pair:exchange`` (``[["BTCUSD", "AAVE:USD", ...]]``), the futures
    listing, or several lists at once (``/v2/conf/KEY1,KEY2``) -> instruments keyed by websocket
    symbol. Names that are not trading pairs are left out."""
    listing = m.listing_decoder.decode(body)
    out: dict[str, Instrument] = {}
    for group in listing:
        if not isinstance(group, list):
            continue
        for name in group:
            if not isinstance(name, str) or not name:
                continue
            try:
                inst = pair_instrument("t" + name)
            except KeyError:
                continue
            out[inst.native] = inst
    return out


# --------------------------------------------------------------------------------------------
# numbers


def positive(text: bytes, decimals: int) -> bool:
    """Whether a JSON number text is a valid value > 0 at ``decimals`` (no sign)."""
    if text[:1] == b"-":
        return False
    try:
        return parse_ticks(text, decimals) > 0
    except (ValueError, TypeError):
        return False


# --------------------------------------------------------------------------------------------
# candle time frames

_UNIT_MS = {"m": 60_000, "h": 3_600_000, "D": 86_400_000, "W": 7 * 86_400_000}
TIMEFRAMES = ("1m", "5m", "15m", "30m", "1h", "3h", "6h", "12h", "1D", "1W", "14D", "1M")


def timeframe_name(tf: str) -> str:
    """Bitfinex time frame -> our interval name: ``1m``, ``1h``, ``1D`` -> ``1d``, ``1W`` -> ``1w``,
    ``14D`` -> ``14d``, ``1M`` (month) stays ``1M``."""
    if tf.endswith("D") or tf.endswith("W"):
        return tf[:-1] + tf[-1].lower()
    return tf


def timeframe_ok(tf: str) -> bool:
    return len(tf) >= 2 and tf[:-1].isdigit() and tf[:-1].isascii() and tf[-1] in "mhDWM" and 0 < int(tf[:-1]) <= 1000


def candle_end(start_ms: int, tf: str) -> int:
    """End of a candle starting at ``start_ms`` (months by the calendar)."""
    n, unit = int(tf[:-1]), tf[-1]
    if unit != "M":
        return start_ms + n * _UNIT_MS[unit]
    d = _dt.datetime.fromtimestamp(start_ms // 1000, tz=_dt.timezone.utc)
    month = d.month - 1 + n
    year = d.year + month // 12
    month = month % 12 + 1
    day = min(d.day, calendar.monthrange(year, month)[1])
    end = d.replace(year=year, month=month, day=day)
    return int(end.timestamp()) * 1000 + start_ms % 1000
