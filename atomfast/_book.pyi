"""Type stubs for the compiled order books (native/book/_book.pyx).

Prices and sizes are exchange decimal strings (``str`` or ``bytes``): ``[+-]digits[.digits]``
with an optional exponent (``1.5e-7``). They are parsed exactly into int64 ticks at the book's
scale; the books reject negative values. Every parse failure raises ``ValueError`` (empty,
not a number, negative, non-zero digits beyond the scale, out of int64 range, more than 255
decimals written) and leaves the book unchanged; a value of another type raises ``TypeError``.
Strings returned by the books are rebuilt in plain notation with the decimals the value was
sent with (identical to the sent text unless it used an exponent, a '+' or leading zeros).
"""
from typing import Any, Callable, Final, Hashable, Protocol, Sequence

_Decimal = str | bytes
#: a message's levels: (price, size) pairs, or objects with ``price`` and ``size`` attributes
_Levels = list[Any] | tuple[Any, ...]


class _Rows(Protocol):
    def append(self, row: tuple, /) -> None: ...


BID: Final[int]  # 0
ASK: Final[int]  # 1
TOP_CHANGED: Final[int]  # 1: best bid or best ask price or size changed by this call
CROSSED: Final[int]  # 2: after this call best bid >= best ask, both sides non-empty
UNKNOWN: Final[int]  # 4: delete/update of a level or order not in the book (book unchanged)

# L2Book.apply_update: the checksum an update is checked against (the book's method computing it)
CHECKSUM_NONE: Final[int]  # 0: no check
CHECKSUM_KRAKEN: Final[int]  # 1: checksum_kraken() (values as sent: Kraken v1)
CHECKSUM_KRAKEN_SCALED: Final[int]  # 2: checksum_kraken(True) (at the book's scale: Kraken v2)
CHECKSUM_OKX: Final[int]  # 3: checksum_okx()
CHECKSUM_BITFINEX: Final[int]  # 4: checksum_bitfinex()
# ... and what came of the update
UPDATE_OK: Final[int]  # 0: applied, rows written, checksum equal (or none asked)
UPDATE_MISMATCH: Final[int]  # 1: applied, lob rows written, checksum different, no spread
UPDATE_NOT_APPLIED: Final[int]  # -1: malformed level, time or expected checksum: nothing done

LEVEL_BYTES: Final[int]  # bytes per L2 price level node (32)
L3_LEVEL_BYTES: Final[int]  # bytes per L3 price level (44: node + order queue head/tail/count)
ORDER_BYTES: Final[int]  # bytes per L3 order (24)

#: topic -> the field codes after exchange and symbol (d double, l long, s string)
SHAPES: Final[dict[str, bytes]]

class AvroRows:
    """A frame's events of one topic as framed Avro values in one buffer, with their
    ``exchange:symbol`` keys (see native/book/_book.pyx)."""
    prefix: bytes
    shape: bytes
    def __init__(self, prefix: bytes = ..., shape: bytes = ...) -> None: ...
    def __len__(self) -> int: ...
    @property
    def nbytes(self) -> int:
        """Bytes of the values written so far (framing included)."""
    def quote(self, exchange: str, symbol: str, bid_price: str | float, bid_size: str | float,
              ask_price: str | float, ask_size: str | float, event_ms: int, atom_us: int) -> bool:
        """A ticker/spread event from decimal strings or floats; False (nothing written) where a
        value is not in [0, 1e15) or the time not in [0, 10**14) ms."""
    def trade(self, exchange: str, symbol: str, price: str | float, size: str | float, buy: bool,
              trade_id: str | int, event_ms: int, atom_us: int) -> bool:
        """A trades event (``buy``: the taker bought); False (nothing written) where the price is
        not in (0, 1e15), the size not in [0, 1e15) or the time not in [0, 10**14) ms."""
    def order(self, exchange: str, symbol: str, price: str | float, size: str | float, bid: bool,
              order_id: str | int, event_ms: int, atom_us: int) -> bool:
        """A lob_l3 event (size 0: the order is gone), checked as ``trade``."""
    def append(self, row: tuple, /) -> None: ...
    def take(self) -> tuple[list[bytes], list[bytes]]: ...
    def take_block(self) -> tuple[list[bytes], bytes]:
        """The keys, and the values concatenated in one bytes object; the rows emptied."""
    def withdraw(self, key: bytes) -> int: ...
    def clear(self) -> None: ...

class RecordRows(list[tuple]):
    """A frame's events of one topic as event tuples, with AvroRows' typed writers."""
    def __init__(self, row_type: type[tuple]) -> None: ...
    def quote(self, exchange: str, symbol: str, bid_price: str | float, bid_size: str | float,
              ask_price: str | float, ask_size: str | float, event_ms: int, atom_us: int) -> bool: ...
    def trade(self, exchange: str, symbol: str, price: str | float, size: str | float, buy: bool,
              trade_id: str | int, event_ms: int, atom_us: int) -> bool: ...
    def order(self, exchange: str, symbol: str, price: str | float, size: str | float, bid: bool,
              order_id: str | int, event_ms: int, atom_us: int) -> bool: ...

class L2Book:
    """Level-2 book: total size per exact price, per side (red-black tree of C structs).

    ``capacity`` is the initial number of level nodes for both sides together; the pool
    doubles as needed. ``price_decimals`` and ``size_decimals`` are within 0..18.
    """

    def __init__(self, price_decimals: int = 8, size_decimals: int = 8, capacity: int = 1024) -> None: ...
    @property
    def price_decimals(self) -> int: ...
    @property
    def size_decimals(self) -> int: ...
    @property
    def nbytes(self) -> int:
        """Bytes of C memory held by the level pool (allocated nodes, used or free)."""
    def apply(self, side: int, price: _Decimal, size: _Decimal) -> int:
        """Set the total size at ``price``; size 0 removes the level (UNKNOWN if absent).
        Returns TOP_CHANGED | CROSSED | UNKNOWN flags."""
    def check_sides(self, first_levels: _Levels | None, second_levels: _Levels | None = None) -> None:
        """Parse the levels as ``apply_sides`` would, applying nothing (ValueError if bad). The
        parse is kept for an ``apply_sides`` of the same lists next: the levels must not change
        in between."""
    def apply_sides(self, first: int, first_levels: _Levels | None, second_levels: _Levels | None,
                    rows: _Rows, row_type: type[tuple], exchange: str, symbol: str, event_ms: int,
                    atom_us: int, depth: int = 0) -> int:
        """One message's levels, all parsed before any is applied: ``first_levels`` on side
        ``first``, then ``second_levels`` on the other; a ``row_type(exchange, symbol, price,
        size, side, event_ms, atom_us)`` appended to ``rows`` per change (side "buy"/"sell",
        floats equal to float() of the strings); then, with ``depth`` > 0, truncation to
        ``depth`` levels a side with a size-0.0 row per dropped level. Returns the flags.
        ValueError (book unchanged) on any bad level."""
    def apply_scaled_sides(self, first: int, first_levels: _Levels | None, second_levels: _Levels | None,
                           rows: _Rows, row_type: type[tuple], exchange: str, symbol: str, event_ms: int,
                           atom_us: int) -> int:
        """``apply_sides`` (no ``depth``) of levels whose prices and sizes are ints already at the
        book's scale (scaled integers: Phemex's ``[priceEp, size]``), each set as ``apply_ticks``
        sets it; the rows' floats ticks / 10**scale. Every level read before any is applied:
        TypeError for a value not an int, ValueError for a negative one, one of 2**53 ticks or
        more (apply that level as text with ``apply_sides``) or a zero price; book unchanged."""
    def apply_update(self, first: int, first_levels: _Levels | None, second_levels: _Levels | None,
                     rows_of: Callable[[str], _Rows], row_type: type[tuple], spread_type: type[tuple],
                     exchange: str, symbol: str, recv_ns: int, depth: int = 0, checksum: int = ...,
                     expected: int | str | bytes | None = None, event_ms: int | None = None) -> int:
        """One L2 update with its checksum in one call: ``apply_sides`` (every level parsed before
        any is applied; a ``row_type`` row per change into ``rows_of("lob")``; the cut to
        ``depth``), then the book's checksum of kind ``checksum`` (a ``CHECKSUM_`` constant)
        compared with ``expected`` (an int, or its decimal digits as text, a '-' first for the
        signed kinds), then, where it matched and the top changed, the top as a ``spread_type``
        row into ``rows_of("spread")`` (``spread_into``). The rows' ``atom_timestamp``:
        ``recv_ns // 1000`` (µs). ``event_ms`` None: the time of the newest level (its third
        field, ``timestamp``: decimal seconds as text, the greatest text), ``recv_ns`` in ms for
        no level or an empty one.

        Returns ``UPDATE_OK``, ``UPDATE_MISMATCH`` (applied, lob rows written, no spread), or
        ``UPDATE_NOT_APPLIED``: a malformed level (what ``apply_sides`` raises ValueError for),
        level time or expected checksum; the book untouched, ``rows_of`` not called."""
    def replace_sides(self, first: int, first_levels: _Levels | None, second_levels: _Levels | None, rows: _Rows,
                      row_type: type[tuple], exchange: str, symbol: str, event_ms: int, atom_us: int,
                      round_sizes: bool = False) -> int:
        """Each side replaced whole by a message's levels, a row only per change: what
        ``apply_sides(first, side_changes(book, first, first_levels), side_changes(book, other,
        second_levels), ...)`` (``atomfast.kit.levels``) does, in one call (new or resized levels
        in their order, then the levels no longer there, best first, size 0). Every level parsed
        before anything changes (ValueError, book unchanged). ``round_sizes``: a size with more
        decimals than the scale is rounded to it half-even (a non-zero one to at least one tick),
        as ``round_sizes`` rounds it; ValueError where it is no JSON number without sign."""
    def apply_ticks(self, side: int, price: int, size: int) -> int:
        """As ``apply`` with already-scaled integers (sent decimals = the book's scale)."""
    def truncate(self, depth: int) -> int:
        """Keep the best ``depth`` levels per side; returns the number of levels removed."""
    def clear(self) -> None: ...
    def best_bid(self) -> tuple[float, float] | None:
        """(price, size) of the best bid, or None when there is no bid."""
    def best_ask(self) -> tuple[float, float] | None: ...
    def best(self) -> tuple[float, float, float, float]:
        """(bid_price, bid_size, ask_price, ask_size); 0.0 for an empty side."""
    def spread_into(self, rows: _Rows, row_type: type[tuple], exchange: str, symbol: str, event_ms: int,
                    atom_us: int) -> None:
        """Append the top of the book as a spread event (``row_type``: events.Spread) to
        ``rows``; into an AvroRows as its Avro value."""
    def levels(self, side: int, n: int = -1, start: int = 0) -> list[tuple[str, str]]:
        """Best ``n`` levels (all when n < 0), best first, as (price, size) strings as sent,
        after skipping the best ``start`` (``levels(side, start=depth)``: what
        ``truncate(depth)`` would drop)."""
    def get(self, side: int, price: _Decimal) -> str | None:
        """The size string at ``price``, or None."""
    def count(self, side: int) -> int:
        """Number of levels on ``side``."""
    def __len__(self) -> int:
        """Number of levels on both sides."""
    def checksum_kraken(self, book_scale: bool = False) -> int:
        """Kraken websocket v1/v2 CRC-32 (unsigned) of the top 10 asks then top 10 bids.
        ``book_scale=False``: values written with their sent decimals (v1 strings);
        ``True``: with the book's scale (v2 numbers; build the book at the pair's precision).

        The first checksum call gives the book a fixed 6.4 KB cache (not in ``nbytes``) of
        the level texts it wrote; later calls only rewrite the levels that changed. Use one
        kind of checksum per book: mixing kinds is correct but rewrites every level."""
    def checksum_okx(self) -> int:
        """OKX CRC-32 (signed) of the top 25 levels, "bidPx:bidSz:askPx:askSz:..." as sent."""
    def checksum_bitfinex(self) -> int:
        """Bitfinex P0 CRC-32 (signed): top 25 "bidPx:bidAmt:askPx:-askAmt:..." as JavaScript
        prints numbers (exponent form below 1e-6)."""
    def _validate(self) -> None:
        """Internal (tests): raise AssertionError if a tree or cache invariant is broken."""
    def check_json_sides(self, first_text: bytes | Any, second_text: bytes | Any) -> bool:
        """``check_sides`` of levels as JSON text (``json_levels``): True where all parsed (kept
        for ``apply_json_sides``); False where the caller must decode them and ``check_sides``."""
    def check_json_sides_wide(self, first_text: bytes | Any, second_text: bytes | Any) -> bool:
        """``check_json_sides`` that reads levels of 2**53 ticks or more from the text too (their
        rows' floats: ``float()`` of the level's strings, as ``apply_sides`` makes them): False
        only where a text is not of the shape or holds a number the book refuses."""
    def apply_json_sides(self, first: int, first_text: bytes | Any, second_text: bytes | Any, rows: Any,
                         row_type: type, exchange: str, symbol: str, event_ms: int, atom_us: int) -> int:
        """``apply_sides`` of the levels ``check_json_sides`` just read from these texts."""
    def apply_json_update(self, first: int, first_text: bytes | Any, second_text: bytes | Any,
                          rows_of: Callable[[str], _Rows], row_type: type[tuple], spread_type: type[tuple],
                          exchange: str, symbol: str, recv_ns: int, event_ms: int, checksum: int = ...,
                          expected: int | str | bytes | None = None) -> int:
        """``apply_update`` of the levels ``check_json_sides``/``check_json_lists`` just read from
        these texts (``event_ms`` given): ``UPDATE_OK``, ``UPDATE_MISMATCH`` (applied, lob rows
        written, no spread) or ``UPDATE_NOT_APPLIED`` (``expected`` no checksum of the kind:
        nothing done, the reading kept for ``apply_json_sides``)."""
    def json_update_wide(self, first: int, first_text: bytes | Any, second_text: bytes | Any,
                         rows_of: Callable[[str], _Rows], row_type: type[tuple], spread_type: type[tuple],
                         exchange: str, symbol: str, recv_ns: int, event_ms: int) -> int:
        """``check_json_sides_wide`` then ``apply_json_update`` (no checksum) in one call:
        ``UPDATE_OK``, or ``UPDATE_NOT_APPLIED`` where a text is not read (nothing applied, nothing
        kept, ``rows_of`` not called)."""
    def check_json_lists(self, first_text: bytes | Any, second_text: bytes | Any) -> bool:
        """``check_json_sides`` of levels of two or more strings (``json_level_lists``: price,
        size, then strings not read, e.g. OKX's ``[price, size, "0", orders]``); kept for
        ``apply_json_sides``."""
    def check_json_numbers(self, first_text: bytes | Any, second_text: bytes | Any, round_sizes: bool = False) -> bool:
        """``check_json_sides`` of levels written as JSON numbers (``[[0.1,2.5],...]``; empty text or
        ``null``: no levels; ``round_sizes`` as ``replace_sides``): True where all parsed (kept for
        ``replace_json_sides`` of the same texts, also into the cleared book: a load); False where
        the caller must decode them (another shape, a signed number, a value the book refuses).
        The book keeps the texts it read last (a reference) and their levels' parse: a level
        written as it was then is not parsed again."""
    def replace_json_sides(self, first: int, first_text: bytes | Any, second_text: bytes | Any, rows: Any,
                           row_type: type, exchange: str, symbol: str, event_ms: int, atom_us: int) -> int:
        """``replace_sides`` of the levels ``check_json_numbers`` (or ``check_json_sides``) just read
        from these texts (the book may be cleared in between: a load)."""

class L3Book:
    """Level-3 book: orders by id, queued in arrival order at each exact price.

    Order ids are any hashable object as given (str or int); ``1`` and ``"1"`` are different
    orders. ``count(side)`` and ``len()`` count orders; ``level_count(side)`` counts levels.
    """

    def __init__(self, price_decimals: int = 8, size_decimals: int = 8, capacity: int = 1024) -> None: ...
    @property
    def price_decimals(self) -> int: ...
    @property
    def size_decimals(self) -> int: ...
    @property
    def nbytes(self) -> int:
        """Bytes of C memory held by the level and order pools."""
    def add(self, order_id: Hashable, side: int, price: _Decimal, size: _Decimal) -> int:
        """New order at the back of its level. An id already in the book is replaced (removed,
        then added at the back of its new level). Size 0 behaves like ``remove``."""
    def update(self, order_id: Hashable, size: _Decimal) -> int:
        """New remaining size, queue position kept; 0 removes; unknown id -> UNKNOWN."""
    def change(self, order_id: Hashable, price: _Decimal, size: _Decimal) -> int:
        """New price and size: moves to the back of the level at the new price (keeps its
        position if the price is unchanged); size 0 removes; unknown id -> UNKNOWN."""
    def remove(self, order_id: Hashable) -> int:
        """Remove an order; unknown id -> UNKNOWN."""
    def order(self, order_id: Hashable) -> tuple[int, str, str] | None:
        """(side, price, size) with strings as sent, or None."""
    def __contains__(self, order_id: object) -> bool: ...
    def clear(self) -> None: ...
    def best_bid(self) -> tuple[float, float] | None:
        """(price, level total size) of the best bid, or None."""
    def best_ask(self) -> tuple[float, float] | None: ...
    def best(self) -> tuple[float, float, float, float]:
        """(bid_price, bid_total, ask_price, ask_total); 0.0 for an empty side."""
    def levels(self, side: int, n: int = -1, start: int = 0) -> list[tuple[str, str, int]]:
        """Best ``n`` levels after the best ``start``, best first: (price, total size, order
        count). The price is written
        as the order that opened the level sent it; the total with the most decimals any order
        at that level was sent with."""
    def orders_at(self, side: int, price: _Decimal) -> list[tuple[Hashable, str]]:
        """(order_id, size) at ``price`` in arrival order; [] when there is no such level."""
    def count(self, side: int) -> int:
        """Number of orders on ``side``."""
    def level_count(self, side: int) -> int:
        """Number of price levels on ``side``."""
    def __len__(self) -> int:
        """Number of orders on both sides."""
    def checksum_kraken(self, book_scale: bool = False) -> int:
        """Kraken websocket v2 level3 CRC-32 (unsigned): top 10 ask levels (low to high) then
        top 10 bid levels (high to low), every order of a level in queue order, its price then
        its size ('.' and leading zeros removed). ``book_scale``: values at the book's scale
        (the pair's precision: v2 JSON numbers); False: with the decimals each was sent with."""
    def checksum_bitfinex(self) -> int:
        """Bitfinex R0 (raw book) CRC-32 (signed): top 25 orders per side (price priority, then
        arrival order), "bidId:bidAmt:askId:-askAmt:..." with JavaScript number text."""
    def _validate(self) -> None:
        """Internal (tests): raise AssertionError if a tree, queue or total is inconsistent."""

def parse_decimal(value: _Decimal, decimals: int = 8) -> tuple[int, int]:
    """(ticks, decimals as sent): ``parse_decimal("0.1000", 8) == (10000000, 4)``. Negative
    values are accepted here (not by the books)."""

def round_sizes(levels: Sequence[tuple[Any, Any]] | Any, decimals: int = 8) -> list[tuple[Any, Any]] | None:
    """``levels`` with each size ``parse_ticks(size, decimals)`` refuses rounded to ``decimals``
    half-even (a non-zero size to at least one tick) as ASCII bytes with exactly ``decimals``
    decimals (``format(Decimal(size).quantize(...), "f").encode()``); the others kept. None where a
    level is no (price, size) pair or a size to round no JSON number without sign within int64
    ticks: the caller rounds those itself."""

def parse_checksum(text: str | bytes) -> int:
    """``"974947235"`` -> 974947235: 1..10 ASCII digits below 2**32, else ValueError."""

def newest_time(first_levels: _Levels | None, second_levels: _Levels | None = None) -> str | bytes:
    """The time of a message's newest level: the greatest of the levels' times (their third
    field: a Struct's ``timestamp``, item 2 of a tuple or list) by its text, as ``max()`` of the
    strings; "" for no level; TypeError for a level without one."""

def rfc3339_to_ms(text: str) -> int:
    """RFC 3339 UTC time -> ms since the epoch, truncated; ValueError ``bad timestamp ...``."""
def seconds_to_ms(text: str | bytes) -> int:
    """``"1618678133.626511"`` -> 1618678133626 (exact, truncated); ValueError if malformed."""

def seconds_to_us(text: str | bytes) -> int:
    """``"1618678142.557535"`` -> 1618678142557535 (exact, truncated); ValueError if malformed."""

def parse_ticks(value: _Decimal, decimals: int = 8) -> int:
    """Ticks of a decimal string: ``parse_ticks("1.5", 2) == 150``."""

def format_ticks(ticks: int, decimals: int = 8, sent_decimals: int = -1) -> str:
    """``ticks * 10**-decimals`` written with ``sent_decimals`` decimals (default: ``decimals``);
    ValueError if that would drop non-zero digits."""

def format_js(ticks: int, decimals: int = 8) -> str:
    """JavaScript Number toString text of ``ticks * 10**-decimals`` ("1.5e-7", "0.5", "100")."""

# Internal (tests): the CRC-32 the checksums use, as zlib.crc32(data, value); clmul=False forces
# the table implementation. _CRC_CLMUL: whether the CPU's carry-less multiply is used.
_CRC_CLMUL: Final[bool]

def _crc32(data: bytes, value: int = 0, clmul: bool = True) -> int: ...
def _writer_number(value: object, plain: bool = True) -> float | None:
    """What a typed writer makes of a price or size (None: refused); ``plain=False`` without the fast path."""
def json_levels(text: bytes | Any) -> bool:
    """Whether raw JSON ``text`` is an array of ``[price, size]`` strings (printable ASCII, no
    escapes) that ``L2Book.check_json_sides`` reads."""
def json_level_lists(text: bytes | Any) -> bool:
    """Whether raw JSON ``text`` is an array of arrays of two or more strings (price, size, then
    any; printable ASCII, no escapes) that ``L2Book.check_json_lists`` reads."""
def check_sided_levels(book: L2Book | None, changes: list[Sequence[Any]], bid_word: str, ask_word: str) -> int:
    """Check changes ``[side, price, size]`` of either side (Gemini's ``l2_updates``) as
    ``apply_sided_levels`` reads them, applying nothing: -1 where a side is neither word, else
    the number of bid changes; ValueError on a bad level (the bids' first). ``book`` None: the
    sides only."""
def apply_sided_levels(book: L2Book, changes: list[Sequence[Any]], bid_word: str, ask_word: str, rows: _Rows | AvroRows,
                       row_type: type[tuple], exchange: str, symbol: str, event_ms: int, atom_us: int) -> int:
    """``book.apply_sides(BID, bids, asks, ...)`` of changes ``[side, price, size]`` of either side
    (``bids``: the ``bid_word`` changes' (price, size) in order; ``asks``: ``ask_word``'s), no pair
    made per change: the flags; -1 (book unchanged) where a side is neither word; ValueError
    (book unchanged) on a bad level."""
def apply_json_sided_levels(book: L2Book, text: bytes | Any, bid_word: str, ask_word: str, rows: _Rows | AvroRows,
                            row_type: type[tuple], exchange: str, symbol: str, event_ms: int, atom_us: int) -> int:
    """``apply_sided_levels`` of the changes' JSON text (bytes or a msgspec.Raw), read in C: the
    flags; -2 (nothing applied) where the text is not an array of ``[side, price, size]`` plain
    strings (printable ASCII, no escapes) with the two words as sides, a number is refused, or
    ``book`` is no L2Book: decode the changes and take ``apply_sided_levels``, which says why."""
def check_json_sided_levels(book: L2Book | None, text: bytes | Any, bid_word: str, ask_word: str) -> int:
    """``apply_json_sided_levels``' reading, nothing applied: the number of changes, or -2 where
    it would return -2 (``book`` None: the shape and sides only)."""
