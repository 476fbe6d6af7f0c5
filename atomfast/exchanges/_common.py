"""Helpers several venues' ``parse`` modules share: number and level checks, tick decimals,
exact timestamps. (The leading underscore keeps the venue registry from taking this for a venue.)

Numbers: prices and sizes go to the books as the exact text the exchange sent (strings, or the
raw bytes of JSON numbers, never through a float). ``valid_level`` checks a level with the
book's own parser before any level of a message is applied; ``is_plain`` checks the strings
that only become floats (trades, tickers).

Floats: a non-negative number a venue only publishes as a float (a trade's price and size, a
ticker's, open interest) is checked with ``ok_float``: finite, not negative, below ``MAX_FLOAT``.
Sent as text: ``plain_number`` (a plain decimal, ValueError otherwise), ``optional_number`` ("" is
0.0), ``signed_number`` (a rate, may be negative): OKX, Bitget.

Timestamps: exchange time in ms, converted exactly (no float) and bounded (``MAX_MS``: they go
into Avro longs).
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# rfc3339_to_ms: ``"2021-04-17T16:43:37.075687Z"`` -> 1618677817075 (UTC, truncated to the ms),
# compiled (native/book/_book.pyx states its rules)
from ..book import parse_ticks, rfc3339_to_ms

#: exchange times in ms must be below this (year 5138): they go into Avro longs
MAX_MS = 10**14

#: floats a venue publishes (prices, sizes, open interest) must be below this
MAX_FLOAT = 1e18

#: a plain non-negative decimal: at most 16 integer digits and 20 decimals
is_plain = re.compile(r"[0-9]{1,16}(?:\.[0-9]{1,20})?").fullmatch


def ms_ok(ms: int) -> bool:
    """An exchange time in ms that is not absurd (0 <= ms < MAX_MS)."""
    return 0 <= ms < MAX_MS


def ok_float(x: float) -> bool:
    """A float a venue publishes that is not absurd: 0 <= x < MAX_FLOAT (False for NaN and inf)."""
    return 0.0 <= x < MAX_FLOAT


def plain_number(text: str) -> float:
    """A plain non-negative decimal text as a float; ValueError if malformed or absurd."""
    if text.__class__ is not str or not is_plain(text):
        raise ValueError(f"not a plain number {text!r}")
    x = float(text)
    if not ok_float(x):
        raise ValueError(f"absurd number {text!r}")
    return x


def optional_number(text: str) -> float:
    """As ``plain_number``, with an empty string ("no value") as 0.0."""
    return 0.0 if text == "" else plain_number(text)


def signed_number(text: str) -> float:
    """A rate that may be negative (``"-0.000212"``); ValueError if malformed."""
    if text.__class__ is str and text[:1] == "-":
        return -plain_number(text[1:])
    return plain_number(text)


def valid_level(price: str | bytes, size: str | bytes, price_decimals: int, size_decimals: int) -> bool:
    """Whether the book takes this level exactly as the exchange wrote it: price > 0, size >= 0,
    no sign, a decimal number (exponent allowed) within the book's scale and int64 range; both
    strings or both bytes (anything else is refused).

    The same C parser as ``L2Book.apply``: checking a whole message first means a malformed
    message is refused before the book is touched.
    """
    cls = price.__class__
    if cls is str:
        signs = "+-"
    elif cls is bytes:
        signs = b"+-"
    else:
        return False
    if size.__class__ is not cls or price[:1] in signs or size[:1] in signs:  # also true for "" (refused)
        return False
    try:
        return parse_ticks(price, price_decimals) > 0 and parse_ticks(size, size_decimals) >= 0
    except (ValueError, TypeError, OverflowError):
        return False


#: ``decimals_of``'s answers for a str / a float (-1: not a number), by value: a listing repeats a
#: few tick and lot sizes thousands of times
_decimals_str: dict[str, int] = {}
_decimals_float: dict[float, int] = {}
_DECIMALS_CACHED = 4096


def decimals_of(value: float | int | str | None, default: int = 8) -> int:
    """Decimals of a tick or lot size: 0.5 -> 1, "0.0001" -> 4, 1e-05 -> 5, 10 -> 0; ``default``
    for None or what is not a number."""
    cls = value.__class__
    cache = _decimals_str if cls is str else _decimals_float if cls is float else None
    if cache is not None:
        known = cache.get(value)
        if known is not None:
            return default if known < 0 else known
    elif value is None:
        return default
    try:
        d = Decimal(repr(value) if isinstance(value, float) else str(value)).normalize()
    except (InvalidOperation, ValueError):
        out = -1
    else:
        exp = d.as_tuple().exponent
        out = max(0, -exp) if isinstance(exp, int) else -1
    if cache is not None and len(cache) < _DECIMALS_CACHED:
        cache[value] = out
    return default if out < 0 else out


__all__ = ["MAX_FLOAT", "MAX_MS", "decimals_of", "is_plain", "ms_ok", "ok_float", "optional_number", "plain_number",
           "rfc3339_to_ms", "signed_number", "valid_level"]
