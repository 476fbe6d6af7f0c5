"""BitMEX: instrument symbols -> normalised symbols, the instrument listing, times, numbers.

Symbols come from ``/api/v1/instrument/active`` (``typ`` says what a contract is):

==================  ====================  =====================================================
BitMEX              normalised            rule
==================  ====================  =====================================================
``XBTUSD``          ``BTC-USD-PERP``      ``typ`` FFWC.. (perpetual): underlying-quote-PERP
``ETHUSDT``         ``ETH-USDT-PERP``
``XBTU21``          ``BTC-USD-20210924``  ``typ`` FFCC.. (future): expiry date from ``expiry``
``XRPU21``          ``XRP-BTC-20210924``  (the alt futures of 2021 were quoted in XBT)
``XBT_USDT``        ``BTC-USDT``          ``typ`` IFXXXP (spot)
==================  ====================  =====================================================

``XBT`` is ``BTC`` everywhere (``aliases``). Indices (``.BXBT``, typ MR..) and anything else are
not markets and are skipped. Should two contracts normalise alike, the one with the shortest
BitMEX symbol keeps the name and the others get ``-<BitMEX symbol>`` appended.

Sizes: BitMEX books and trades count contracts (``size``, an integer; ``lotSize`` is the step):
published as the venue gives them, never converted to coins.
"""
from __future__ import annotations

import datetime as _dt
import re

import msgspec

from ...kit.idlevels import iso_ms
from ...scheme import Instrument
from .._common import MAX_MS, decimals_of, ms_ok, valid_level  # noqa: F401 (this module's API)

ALIASES = {"XBT": "BTC"}
QUOTES = ("USDT", "USDC", "USD", "EUR", "XBT", "ETH")
MONTH_CODES = "FGHJKMNQUVXZ"
#: decimals of a guessed instrument (a symbol the listing did not hold)
GUESS_PRICE_DECIMALS = 10
GUESS_SIZE_DECIMALS = 4
_FUTURE = re.compile(r"([A-Z0-9]+?)([FGHJKMNQUVXZ])([0-9]{2})")


def normalise_asset(asset: str) -> str:
    asset = asset.upper()
    return ALIASES.get(asset, asset)


# --- times -------------------------------------------------------------------------------------
_EPOCH = _dt.date(1970, 1, 1)
_day_cache: dict[str, int] = {}


def iso_to_ms(text: str, _strict=iso_ms) -> int:
    """``"2021-07-22T22:36:09.757Z"`` -> 1626993369757 (UTC; fraction truncated to the ms).
    ValueError if malformed. BitMEX's own form (``YYYY-MM-DDTHH:MM:SS.fffZ``) is read in C
    (``atomfast.kit.idlevels.iso_ms``, the same value), any other by the rules below."""
    ms = _strict(text)
    if ms >= 0:
        return ms
    day = text[:10]
    base = _day_cache.get(day)
    if base is None:
        if len(day) != 10 or day[4] != "-" or day[7] != "-" or not (day[:4] + day[5:7] + day[8:]).isdigit() \
                or not day.isascii():
            raise ValueError(f"bad timestamp {text!r}")
        try:
            base = (_dt.date(int(day[:4]), int(day[5:7]), int(day[8:10])) - _EPOCH).days * 86_400_000
        except ValueError:
            raise ValueError(f"bad timestamp {text!r}") from None
        if len(_day_cache) < 4096:
            _day_cache[day] = base
    if len(text) < 20 or text[10] != "T" or text[13] != ":" or text[16] != ":" or text[-1] != "Z":
        raise ValueError(f"bad timestamp {text!r}")
    hh, mm, ss = text[11:13], text[14:16], text[17:19]
    if not (hh + mm + ss).isdigit() or not (hh + mm + ss).isascii():
        raise ValueError(f"bad timestamp {text!r}")
    h, mi, s = int(hh), int(mm), int(ss)
    if h > 23 or mi > 59 or s > 60:
        raise ValueError(f"bad timestamp {text!r}")
    rest = text[19:-1]
    ms = 0
    if rest:
        frac = rest[1:]
        if rest[0] != "." or not frac or len(frac) > 9 or not frac.isdigit() or not frac.isascii():
            raise ValueError(f"bad timestamp {text!r}")
        ms = int((frac + "00")[:3])
    out = base + ((h * 60 + mi) * 60 + s) * 1000 + ms
    if not 0 <= out < MAX_MS:
        raise ValueError(f"timestamp out of range {text!r}")
    return out


def last_friday(year: int, month: int) -> _dt.date:
    nxt = _dt.date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - _dt.timedelta(days=1)
    return last - _dt.timedelta(days=(last.weekday() - 4) % 7)


# --- symbols -----------------------------------------------------------------------------------
def split_pair(pair: str) -> tuple[str, str] | None:
    """``XBTUSD`` -> (BTC, USD); ``ETHUSDT`` -> (ETH, USDT); None if no known quote ends it."""
    for q in QUOTES:
        if pair.endswith(q) and len(pair) > len(q):
            return normalise_asset(pair[: -len(q)]), normalise_asset(q)
    return None


def symbol_instrument(native: str, price_decimals: int = GUESS_PRICE_DECIMALS,
                      size_decimals: int = GUESS_SIZE_DECIMALS) -> Instrument:
    """Best-effort instrument of a BitMEX symbol without the listing: ``A_B`` spot, ``ROOT``+month
    code+year future (expiring the last Friday of that month, BitMEX's rule), else a perpetual.
    KeyError if it is not a market symbol."""
    if not native or not native.isascii() or not native.replace("_", "").isalnum() or native != native.upper():
        raise KeyError(f"bitmex: not a market symbol {native!r}")
    if "_" in native:
        base, _, quote = native.partition("_")
        if not base or not quote or "_" in quote:
            raise KeyError(f"bitmex: not a market symbol {native!r}")
        b, q = normalise_asset(base), normalise_asset(quote)
        return Instrument(native, f"{b}-{q}", "spot", b, q, price_decimals, size_decimals)
    fut = _FUTURE.fullmatch(native)
    if fut is not None and len(fut.group(1)) >= 2:
        root, month, yy = fut.groups()
        pair = split_pair(root)
        if pair is None:
            pair = (normalise_asset(root), "USD" if root == "XBT" else "BTC")
        expiry = last_friday(2000 + int(yy), MONTH_CODES.index(month) + 1).strftime("%Y%m%d")
        b, q = pair
        return Instrument(native, f"{b}-{q}-{expiry}", "future", b, q, price_decimals, size_decimals, expiry)
    pair = split_pair(native)
    if pair is None:
        raise KeyError(f"bitmex: cannot split {native!r}")
    b, q = pair
    return Instrument(native, f"{b}-{q}-PERP", "perp", b, q, price_decimals, size_decimals)


class _Listed(msgspec.Struct, gc=False):
    symbol: str
    typ: str = ""
    underlying: str = ""
    quoteCurrency: str = ""
    expiry: str | None = None
    tickSize: float | None = None
    lotSize: float | None = None


_listing_decoder = msgspec.json.Decoder(list[_Listed])


def listed_instrument(item: _Listed) -> Instrument | None:
    native = item.symbol
    typ = item.typ
    base, quote = normalise_asset(item.underlying), normalise_asset(item.quoteCurrency)
    if not base or not quote:
        return None
    pd = decimals_of(item.tickSize, GUESS_PRICE_DECIMALS - 2) + 2
    sd = max(decimals_of(item.lotSize, 0), GUESS_SIZE_DECIMALS)
    if typ.startswith("FFWC"):
        return Instrument(native, f"{base}-{quote}-PERP", "perp", base, quote, pd, sd)
    if typ.startswith("FFCC"):
        if not item.expiry:
            return None
        try:
            expiry = _dt.datetime.fromtimestamp(iso_to_ms(item.expiry) / 1000, _dt.timezone.utc).strftime("%Y%m%d")
        except ValueError:
            return None
        return Instrument(native, f"{base}-{quote}-{expiry}", "future", base, quote, pd, sd, expiry)
    if typ == "IFXXXP":
        return Instrument(native, f"{base}-{quote}", "spot", base, quote, pd, sd)
    return None  # indices, options, prediction markets, ...


def parse_instruments(body: bytes) -> dict[str, Instrument]:
    """``/api/v1/instrument/active`` -> instruments keyed by BitMEX symbol."""
    found: dict[str, Instrument] = {}
    for item in _listing_decoder.decode(body):
        inst = listed_instrument(item)
        if inst is not None:
            found[inst.native] = inst
    by_symbol: dict[str, list[Instrument]] = {}
    for inst in found.values():
        by_symbol.setdefault(inst.symbol, []).append(inst)
    for symbol, insts in by_symbol.items():
        if len(insts) > 1:
            insts.sort(key=lambda i: (len(i.native), i.native))
            for other in insts[1:]:
                found[other.native] = other._replace(symbol=f"{symbol}-{other.native}")
    return found
