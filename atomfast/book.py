"""Live order books: the compiled core (``atomfast._book``) under its public names.

``L2Book`` keeps price levels (total size per price), ``L3Book`` keeps individual orders in
queue order per price level. Both are red-black trees of C structs keyed on exact prices (each
side with a price index beside it, so that a level the book holds is found in one or two probes):
prices and sizes are given as the exchange's decimal strings (``str`` or ``bytes``, or a read-only
bytes-like such as ``msgspec.Raw``: a JSON number's digits as sent), parsed in C
into ``int64`` ticks at the book's fixed scale (``price_decimals`` / ``size_decimals``), never
compared as floats. The decimals each value was sent with are remembered, so ``levels()`` and
the exchange checksums rebuild the exchange's strings exactly ("0.1000" stays "0.1000").

Mutating calls return flags::

    TOP_CHANGED  best bid or best ask price or size changed by this call
    CROSSED      after this call best bid >= best ask (both sides non-empty)
    UNKNOWN      delete/update of a level or order that is not in the book (book unchanged)

Malformed, negative, out-of-range or too precise values raise ``ValueError`` and leave the book
unchanged. Example::

    from atomfast.book import ASK, BID, TOP_CHANGED, L2Book

    book = L2Book(price_decimals=5, size_decimals=8)
    if book.apply(BID, "0.05000", "0.00000500") & TOP_CHANGED:
        bid_price, bid_size, ask_price, ask_size = book.best()
    book.truncate(1000)                      # Kraken: keep the subscribed depth
    assert book.checksum_kraken() == int(message_checksum)

Checksums: ``checksum_kraken`` (websocket v1/v2 book on ``L2Book``, v2 level3 on ``L3Book``;
unsigned), ``checksum_okx`` (signed), ``checksum_bitfinex`` (P0 on ``L2Book``, R0 on ``L3Book``;
signed).
"""
from __future__ import annotations

from atomfast._book import (
    ASK,
    BID,
    CHECKSUM_BITFINEX,
    CHECKSUM_KRAKEN,
    CHECKSUM_KRAKEN_SCALED,
    CHECKSUM_NONE,
    CHECKSUM_OKX,
    CROSSED,
    L3_LEVEL_BYTES,
    LEVEL_BYTES,
    ORDER_BYTES,
    TOP_CHANGED,
    UNKNOWN,
    UPDATE_MISMATCH,
    UPDATE_NOT_APPLIED,
    UPDATE_OK,
    SHAPES,
    AvroRows,
    L2Book,
    L3Book,
    RecordRows,
    format_js,
    format_ticks,
    newest_time,
    parse_decimal,
    parse_checksum,
    parse_ticks,
    rfc3339_to_ms,
    round_sizes,
    seconds_to_ms,
    seconds_to_us,
)

__all__ = [
    "ASK",
    "BID",
    "CHECKSUM_BITFINEX",
    "CHECKSUM_KRAKEN",
    "CHECKSUM_KRAKEN_SCALED",
    "CHECKSUM_NONE",
    "CHECKSUM_OKX",
    "CROSSED",
    "L3_LEVEL_BYTES",
    "LEVEL_BYTES",
    "ORDER_BYTES",
    "TOP_CHANGED",
    "UNKNOWN",
    "UPDATE_MISMATCH",
    "UPDATE_NOT_APPLIED",
    "UPDATE_OK",
    "SHAPES",
    "AvroRows",
    "L2Book",
    "L3Book",
    "RecordRows",
    "format_js",
    "format_ticks",
    "newest_time",
    "parse_decimal",
    "parse_checksum",
    "parse_ticks",
    "rfc3339_to_ms",
    "round_sizes",
    "seconds_to_ms",
    "seconds_to_us",
]
