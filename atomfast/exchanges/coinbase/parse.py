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

import msgspec

from ...book import rfc3339_to_ms  # noqa: F401 (this module's API)
from ...scheme import Instrument
from .._common import MAX_MS, decimals_of, is_plain, valid_level  # noqa: F401 (this module's API)

#: books keep at least this many decimals: a listing's increment may be coarser than what the
#: feed writes (sizes are sent with 8 decimals), and increments change over the years
MIN_DECIMALS = 8
MAX_DECIMALS = 12

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
