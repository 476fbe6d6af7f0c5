"""Coinbase Exchange: symbols, instruments, numbers and timestamps.

Symbols (DESIGN.md): Coinbase product ids are already ``BASE-QUOTE`` (``BTC-USD``); the
normalised symbol is built from the listing's ``base_currency``/``quote_currency``, upper case.
All Coinbase Exchange products are spot.

Numbers: prices and sizes are decimal strings, handed to the books exactly as sent.
``valid_level`` checks one with the book's own parser (at the book's scale) before any level of
a message is applied; ``is_plain`` checks the strings that only become floats (trades, ticker).

Timestamps: ``time`` is RFC 3339 with microseconds, ``"2021-04-17T16:43:37.075687Z"`` ->
1618677817075 ms, exact (no float), truncated to the ms.
"""
from __future__ import annotations

import datetime as _dt
import re
from decimal import Decimal, InvalidOperation

import msgspec

from ...book import parse_ticks
from ...scheme import Instrument

#: books keep at least this many decimals: a listing's increment may be coarser than what the
#: feed writes (sizes are sent with 8 decimals), and increments change over the years
MIN_DECIMALS = 8
MAX_DECIMALS = 12

#: a plain non-negative decimal (trade and ticker strings; book levels go through the book's parser)
is_plain = re.compile(r"[0-9]{1,16}(?:\.[0-9]{1,20})?").fullmatch

_SIGNS = "+-"


def valid_level(price: str, size: str, price_decimals: int, size_decimals: int) -> bool:
    """Whether the book takes this level exactly: price > 0, size >= 0, no sign, a decimal
    within the book's scale and range (the same C parser as the book)."""
    if price[:1] in _SIGNS or size[:1] in _SIGNS:  # also true for "" (refused)
        return False
    try:
        return parse_ticks(price, price_decimals) > 0 and parse_ticks(size, size_decimals) >= 0
    except (ValueError, TypeError):
        return False


#: exchange times in ms must be below this (year 5138): they go into Avro longs
MAX_MS = 10**14
_EPOCH = _dt.date(1970, 1, 1)
_day_cache: dict[str, int] = {}
_second_cache: dict[str, int] = {}


def rfc3339_to_ms(text: str) -> int:
    """``"2021-04-17T16:43:37.075687Z"`` -> 1618677817075 (UTC, truncated to the ms).

    Accepts ``Z`` or ``+00:00`` and any number of fraction digits (or none). ValueError if
    malformed. The whole seconds are cached: the messages of one second share them.
    """
    head = text[:19]
    base = _second_cache.get(head)
    if base is not None:
        rest = text[19:]
        if rest[:1] == "." and rest[-1:] == "Z":
            frac = rest[1:-1]
            if 0 < len(frac) <= 12 and frac.isdigit() and frac.isascii():
                return base + int((frac + "00")[:3])
        elif rest == "Z":
            return base
    ms = _rfc3339_to_ms(text)
    if base is None:
        if len(_second_cache) >= 65536:
            _second_cache.clear()
        _second_cache[head] = ms - ms % 1000
    return ms


def _bad(text: str) -> ValueError:
    return ValueError(f"bad timestamp {text!r}")


def _rfc3339_to_ms(text: str) -> int:
    if len(text) < 19 or text[4] != "-" or text[7] != "-" or text[10] not in "Tt " or text[13] != ":" or text[16] != ":":
        raise _bad(text)
    day = text[:10]
    base = _day_cache.get(day)
    if base is None:
        y, mo, d = day[0:4], day[5:7], day[8:10]
        if not all(p.isdigit() and p.isascii() for p in (y, mo, d)):
            raise _bad(text)
        try:
            base = (_dt.date(int(y), int(mo), int(d)) - _EPOCH).days * 86_400_000
        except ValueError:
            raise _bad(text) from None
        if len(_day_cache) < 4096:
            _day_cache[day] = base
    hh, mm, ss = text[11:13], text[14:16], text[17:19]
    if not all(p.isdigit() and p.isascii() for p in (hh, mm, ss)):
        raise _bad(text)
    h, m, s = int(hh), int(mm), int(ss)
    if h > 23 or m > 59 or s > 60:
        raise _bad(text)
    ms = 0
    rest = text[19:]
    if rest[:1] == ".":
        i = 1
        while i < len(rest) and "0" <= rest[i] <= "9":
            i += 1
        frac = rest[1:i]
        if not frac or len(frac) > 12:
            raise _bad(text)
        ms = int((frac + "000")[:3])
        rest = rest[i:]
    if rest not in ("Z", "z", "+00:00", ""):
        raise _bad(text)
    ms += base + ((h * 60 + m) * 60 + s) * 1000
    if not 0 <= ms < MAX_MS:
        raise _bad(text)
    return ms


def decimals_of(value: str) -> int:
    """Decimals of an increment: "0.01" -> 2, "0.00000001" -> 8, "1" -> 0, "1e-05" -> 5."""
    try:
        d = Decimal(value).normalize()
    except (InvalidOperation, TypeError, ValueError):
        return MIN_DECIMALS
    exp = d.as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else MIN_DECIMALS


def book_decimals(increment: str) -> int:
    return min(MAX_DECIMALS, max(MIN_DECIMALS, decimals_of(increment)))


class _Product(msgspec.Struct, gc=False):
    id: str
    base_currency: str = ""
    quote_currency: str = ""
    quote_increment: str = ""
    base_increment: str = ""
    status: str = "online"


_products_decoder = msgspec.json.Decoder(list[_Product])


def spot_instrument(native: str, base: str, quote: str, price_decimals: int = MIN_DECIMALS,
                    size_decimals: int = MIN_DECIMALS) -> Instrument:
    base, quote = base.upper(), quote.upper()
    return Instrument(native, f"{base}-{quote}", "spot", base, quote, price_decimals, size_decimals)


def guess_instrument(native: str) -> Instrument:
    """A product id the listing did not name: ``BASE-QUOTE`` (KeyError if it is not one)."""
    base, sep, quote = native.partition("-")
    if (not sep or not base or not quote or "-" in quote or len(native) > 40
            or not (base.isalnum() and quote.isalnum() and native.isascii())):
        raise KeyError(f"coinbase: not a product id {native!r}")
    return spot_instrument(native, base, quote)


def parse_products(body: bytes) -> dict[str, Instrument]:
    """``GET /products`` -> instruments keyed by product id (delisted products included: a
    capture may name them)."""
    out: dict[str, Instrument] = {}
    for p in _products_decoder.decode(body):
        if not p.id:
            continue
        if p.base_currency and p.quote_currency:
            inst = spot_instrument(p.id, p.base_currency, p.quote_currency, book_decimals(p.quote_increment),
                                   book_decimals(p.base_increment))
        else:
            try:
                inst = guess_instrument(p.id)
            except KeyError:
                continue
        out[p.id] = inst
    return out
