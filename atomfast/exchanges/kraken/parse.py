"""Kraken: symbols, instruments, numbers and timestamps (shared by spot v1/v2 and futures).

Symbols (DESIGN.md): ``XBT`` -> ``BTC``, ``XDG`` -> ``DOGE``; spot ``BTC-USD``. The REST
``AssetPairs`` listing names assets the old way (``XXBT``, ``ZUSD``); its ``wsname``
(``XBT/USD``) is the websocket v1 name and the one we normalise from. Websocket v2 names a pair
with the normalised assets (``BTC/USD``).

Numbers: prices and sizes go to the book as the exact digits the exchange sent (v1 strings;
v2 and futures JSON numbers as their raw bytes, never through a float). ``valid_level`` checks
a level with the book's own parser before any level of a message is applied; it refuses signs,
NaN/inf, absurd magnitudes (``1e400``) and digits beyond the book's scale.

Timestamps: ``event_timestamp`` is exchange time in ms, converted exactly (no float):
v1 ``"1618678133.626511"`` (seconds) -> 1618678133626; v2 RFC 3339
``"2023-10-06T17:35:55.440295Z"`` -> 1696613755440 (truncated to the ms).
"""
from __future__ import annotations

import datetime as _dt
import re
from decimal import Decimal, InvalidOperation

import msgspec

from ...book import parse_ticks
from ...scheme import Instrument

ALIASES = {"XBT": "BTC", "XDG": "DOGE"}

#: a plain non-negative decimal, at most 16 integer digits and 20 decimals (trade and ticker
#: strings; book levels are checked by ``valid_level`` at the book's scale)
_PLAIN = r"[0-9]{1,16}(?:\.[0-9]{1,20})?"
is_plain_str = re.compile(_PLAIN).fullmatch
_SIGNS_STR = "+-"
_SIGNS_BYTES = b"+-"


def valid_level(price: str | bytes, size: str | bytes, price_decimals: int, size_decimals: int) -> bool:
    """Whether the book will take this level exactly as the exchange wrote it: price > 0,
    size >= 0, no sign, a decimal number (exponent allowed) within the book's scale and range.

    The same C parser as ``L2Book.apply``: checking a whole message first means a malformed
    message is refused before the book is touched.
    """
    signs = _SIGNS_STR if price.__class__ is str else _SIGNS_BYTES
    if price[:1] in signs or size[:1] in signs:  # also true for "" (refused)
        return False
    try:
        return parse_ticks(price, price_decimals) > 0 and parse_ticks(size, size_decimals) >= 0
    except (ValueError, TypeError):
        return False


def normalise_asset(asset: str) -> str:
    asset = asset.upper()
    return ALIASES.get(asset, asset)


#: exchange times in ms must be below this (year 5138): they go into Avro longs
MAX_MS = 10**14


def ms_ok(ms: int) -> bool:
    """An exchange time in ms that is not absurd (0 <= ms < MAX_MS)."""
    return 0 <= ms < MAX_MS


def _secs_parts(text: str) -> tuple[str, str]:
    whole, _, frac = text.partition(".")
    if not (0 < len(whole) <= 11 and whole.isdigit() and whole.isascii()) or (
        frac and not (len(frac) <= 12 and frac.isdigit() and frac.isascii())
    ):
        raise ValueError(f"bad timestamp {text!r}")
    return whole, frac


def secs_to_ms(text: str) -> int:
    """``"1618678133.626511"`` -> 1618678133626 exactly (truncated). ValueError if malformed
    (or beyond the year 5138)."""
    whole, frac = _secs_parts(text)
    return int(whole) * 1000 + int((frac + "000")[:3])


def secs_to_us(text: str) -> int:
    """``"1618678142.557535"`` -> 1618678142557535 exactly. ValueError if malformed."""
    whole, frac = _secs_parts(text)
    return int(whole) * 1_000_000 + int((frac + "000000")[:6])


_EPOCH = _dt.date(1970, 1, 1)
_day_ms_cache: dict[str, int] = {}


_second_cache: dict[str, int] = {}


def rfc3339_to_ms(text: str) -> int:
    """``"2023-10-06T17:35:55.440295Z"`` -> 1696613755440 (UTC, truncated to the ms).

    Accepts ``Z`` or ``+00:00``, any number of fraction digits (v2 ohlc sends nine), or none.
    ValueError if malformed. The whole seconds are cached (messages of one second share them).
    """
    head = text[:19]
    base = _second_cache.get(head)
    if base is not None:
        rest = text[19:]
        if rest == "Z":
            return base
        if rest[:1] == "." and rest[-1:] == "Z":
            frac = rest[1:-1]
            if 0 < len(frac) <= 12 and frac.isdigit() and frac.isascii():
                return base + int((frac + "00")[:3])
    ms = _rfc3339_to_ms(text)
    if base is None:
        if len(_second_cache) >= 65536:
            _second_cache.clear()
        _second_cache[head] = ms - ms % 1000
    return ms


def _rfc3339_to_ms(text: str) -> int:
    day = text[:10]
    base = _day_ms_cache.get(day)
    if base is None:
        try:
            d = _dt.date(int(day[0:4]), int(day[5:7]), int(day[8:10]))
        except (ValueError, IndexError):
            raise ValueError(f"bad timestamp {text!r}") from None
        if day[4] != "-" or day[7] != "-":
            raise ValueError(f"bad timestamp {text!r}")
        base = (d - _EPOCH).days * 86_400_000
        if len(_day_ms_cache) < 4096:
            _day_ms_cache[day] = base
    if len(text) < 19 or text[10] not in "Tt " or text[13] != ":" or text[16] != ":":
        raise ValueError(f"bad timestamp {text!r}")
    hh, mm, ss = text[11:13], text[14:16], text[17:19]
    if not (hh.isdigit() and mm.isdigit() and ss.isdigit() and hh.isascii() and mm.isascii() and ss.isascii()):
        raise ValueError(f"bad timestamp {text!r}")
    ms = 0
    rest = text[19:]
    if rest[:1] == ".":
        i = 1
        while i < len(rest) and "0" <= rest[i] <= "9":
            i += 1
        frac = rest[1:i]
        if not frac:
            raise ValueError(f"bad timestamp {text!r}")
        ms = int((frac + "000")[:3])
        rest = rest[i:]
    if rest not in ("Z", "z", "+00:00", ""):
        raise ValueError(f"bad timestamp {text!r}")
    h, m, s = int(hh), int(mm), int(ss)
    if h > 23 or m > 59 or s > 60:
        raise ValueError(f"bad timestamp {text!r}")
    ms += base + ((h * 60 + m) * 60 + s) * 1000
    if not 0 <= ms < MAX_MS:
        raise ValueError(f"timestamp out of range {text!r}")
    return ms


def decimals_of(value: float | str | int) -> int:
    """Number of decimals of a tick size: 0.5 -> 1, 0.0001 -> 4, 1e-05 -> 5, 1 -> 0."""
    try:
        d = Decimal(repr(value) if isinstance(value, float) else str(value)).normalize()
    except InvalidOperation:
        return 8
    exp = d.as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 8


def spot_instrument(ws_pair: str, price_decimals: int = 8, size_decimals: int = 8, v2: bool = False) -> Instrument:
    """A spot instrument from a websocket pair name (``XBT/USD`` in v1, ``BTC/USD`` in v2)."""
    base, sep, quote = ws_pair.partition("/")
    if not sep or not base or not quote:
        raise KeyError(f"kraken: not a pair name {ws_pair!r}")
    nb, nq = normalise_asset(base), normalise_asset(quote)
    native = f"{nb}/{nq}" if v2 else ws_pair
    return Instrument(native, f"{nb}-{nq}", "spot", nb, nq, price_decimals, size_decimals)


class _AssetPair(msgspec.Struct, gc=False):
    wsname: str = ""
    pair_decimals: int = 8
    lot_decimals: int = 8
    status: str = "online"


class _AssetPairs(msgspec.Struct, gc=False):
    result: dict[str, _AssetPair] = {}
    error: list[str] = []


def parse_asset_pairs(body: bytes, v2: bool) -> dict[str, Instrument]:
    """``/0/public/AssetPairs`` -> instruments keyed by websocket name (v1 ``XBT/USD``, v2
    ``BTC/USD``). Pairs without a ``wsname`` (the ``.d`` dark-pool pairs) are not on the websocket."""
    listing = msgspec.json.decode(body, type=_AssetPairs)
    out: dict[str, Instrument] = {}
    for pair in listing.result.values():
        if not pair.wsname:
            continue
        try:
            inst = spot_instrument(pair.wsname, pair.pair_decimals, pair.lot_decimals, v2)
        except KeyError:
            continue
        out[inst.native] = inst
    return out
