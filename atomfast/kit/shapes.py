"""The common channel shapes a venue declares instead of writing a handler: executed in C.

A route of a venue's ``Dispatch`` names a handler method, or declares the message's shape: where
in the decoded message (the route's Struct, after ``unwrap``) the fields of one event are. The
compiled ``atomfast._dispatch.Router`` executes the declaration for every frame of the route (the
fields read at their Struct offsets, the symbol looked up, the typed writer called on the topic's
rows): no Python runs for a well-formed message. A venue whose messages fit no shape keeps its
handler; the flows that are truly a venue's own (snapshots, book sync, L3) stay methods.

The shapes: ``Quote`` (a top of book: ``ticker``), ``Trade`` (one trade: ``trades``),
``BookUpdate`` (an L2 update carrying the book's checksum, applied and checked by the market's
book), ``LevelDelta`` (one level's new size with a sequence number the book's chain checks),
``SignedLevel`` (one level whose amount's sign is its side, on a ``Lookup``'s channel: Bitfinex),
``SidedLevels`` (levels that each name their side, of one side or both, no checksum, no sequence,
an optional time and snapshot field: Coinbase's ``l2update`` and Gemini's ``l2_updates``),
``ChainedSides`` (both sides' levels with an id chained in the scheme's ``Chain``, no checksum:
Poloniex's) and ``KeyedTextLevels`` (an update keyed by its market, levels as JSON text, a sequence:
HitBTC's); for the book shapes, what is not the common case goes to the venue's method: see their text.

What ``Quote`` and ``Trade`` do, as the venue's handlers did:

* the symbol: the scheme's cache (``_symbols``) of the native name; a name not cached yet is
  asked of ``known`` (bad input ``unknown market`` if it names no market: the message is
  dropped) and ``symbol_of``;
* the time: the first of the ``time`` fields that is not 0 (``T`` or ``E``); none: 0, or the
  time of receipt where ``or_receipt`` (Binance spot's bookTicker carries no time);
* the typed writer's checks (a price or size not a number in [0, 1e15), a trade's price 0, a
  time not in [0, 10**14) ms): nothing written, and the message is counted as bad input of kind
  ``malformed`` with its fields in the detail (``'0.1' '2' T=1723161600000``).

Binance's trades and book tickers (Kraken v1's book updates: ``BookUpdate``'s text)::

    dispatch = Dispatch({_T: Trade(symbol="s", price="p", size="q", id="t", time="T", buyer_maker="m"),
                         _B: Quote(symbol="s", bid="b", bid_size="B", ask="a", ask_size="A",
                                   time=("T", "E"), or_receipt=True), ...}, ...)
"""
from __future__ import annotations


def _names(time: str | tuple[str, ...]) -> tuple[str, ...]:
    names = (time,) if isinstance(time, str) else tuple(time)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"shape: time {time!r} names no field")
    return names


class Shape:
    """A declared channel shape (the Router compiles it for one scheme)."""

    __slots__ = ("topic", "malformed", "symbol", "time", "or_receipt")

    def __init__(self, topic: str, malformed: str, symbol: str, time: str | tuple[str, ...], or_receipt: bool):
        self.topic = topic
        self.malformed = malformed
        self.symbol = symbol
        self.time = _names(time)
        self.or_receipt = or_receipt

    def fields(self) -> tuple[str, ...]:
        """The message's fields the shape reads, in the executor's order."""
        raise NotImplementedError

    def __repr__(self) -> str:
        own = ", ".join(f"{k}={getattr(self, k)!r}" for k in type(self).__slots__)
        return f"{type(self).__name__}({self.topic!r}, symbol={self.symbol!r}, {own}, time={self.time!r})"


class Quote(Shape):
    """A top-of-book message: one row of ``topic`` (``ticker``) from its best bid and ask, price
    and size each (decimal strings or numbers, as sent)."""

    __slots__ = ("bid", "bid_size", "ask", "ask_size")

    def __init__(self, topic: str = "ticker", *, symbol: str, bid: str, bid_size: str, ask: str, ask_size: str,
                 time: str | tuple[str, ...], or_receipt: bool = False, malformed: str = "malformed ticker"):
        super().__init__(topic, malformed, symbol, time, or_receipt)
        self.bid, self.bid_size, self.ask, self.ask_size = bid, bid_size, ask, ask_size

    def fields(self) -> tuple[str, ...]:
        return (self.symbol, self.bid, self.bid_size, self.ask, self.ask_size, *self.time)


class Trade(Shape):
    """A trade message: one row of ``topic`` (``trades``). The taker's side is declared one of two
    ways: ``buyer_maker`` (a bool field, true when the buyer was the maker, so the taker sold:
    Binance's ``m``) or ``side`` with the value that means the taker bought (``buy="Buy"``)."""

    __slots__ = ("price", "size", "id", "buyer_maker", "side", "buy")

    def __init__(self, topic: str = "trades", *, symbol: str, price: str, size: str, id: str,  # noqa: A002
                 time: str | tuple[str, ...], buyer_maker: str | None = None, side: str | None = None,
                 buy: str | None = None, or_receipt: bool = False, malformed: str = "malformed trade"):
        super().__init__(topic, malformed, symbol, time, or_receipt)
        if (buyer_maker is None) == (side is None) or (side is not None) != (buy is not None):
            raise ValueError("Trade: declare the taker's side as buyer_maker=, or as side= with buy=")
        self.price, self.size, self.id = price, size, id
        self.buyer_maker, self.side, self.buy = buyer_maker, side, buy

    def fields(self) -> tuple[str, ...]:
        return (self.symbol, self.price, self.size, self.id, self.buyer_maker or self.side, *self.time)


class Channel:
    """Where a route's channel (the object the dispatch's ``Lookup`` found for the frame: Kraken
    v1's ``_Channel``) holds the market it carries (``market``), its normalised symbol
    (``symbol``) and the depth its book is cut to (``depth``): attribute names."""

    __slots__ = ("market", "symbol", "depth")

    def __init__(self, *, market: str, symbol: str, depth: str):
        self.market, self.symbol, self.depth = market, symbol, depth

    def __repr__(self) -> str:
        return f"Channel(market={self.market!r}, symbol={self.symbol!r}, depth={self.depth!r})"


class BookUpdate(Shape):
    """An L2 book update that carries the book's checksum: both sides' levels and the checksum
    the exchange computed after it, applied and checked by the market's book in one call
    (``L2Book.apply_update``: every level parsed before any is applied, a ``lob`` row per change,
    ``first``'s levels first, the book cut to its depth, the checksum of kind ``kind`` (a
    ``CHECKSUM_`` constant) compared, a ``spread`` row where the top changed). The events' time
    is the newest level's (the levels' third field, Kraken v1's ``timestamp``).

    ``market`` names the field with the market's native name; ``at``, where the levels and the
    checksum are in a payload Struct of the message, that field. The symbol and the depth come
    from the route's ``channel`` where one is declared (the message must name the channel's
    market), else the symbol from the scheme's cache (as ``Quote``'s) and the depth ``depth``
    (0: not cut).

    Only the common case runs in C: a market with a book, not reloading (``scheme.unsynced``:
    the message is dropped, as the venues do until the snapshot), the update sound and its
    checksum equal (counted in ``metrics.checksum_ok``). A checksum that differs (the update
    applied, no spread row) goes to the scheme's ``checksum_failed`` (the book resyncs); anything
    else, with nothing applied, to the venue's ``otherwise`` method, called as a handler
    ``(conn, msg, data, recv_ns)``, which says what is amiss: no book yet, a malformed level or
    checksum, a message on another market than its channel's, a market not known.

    Kraken v1's common book message::

        BookUpdate(market="pair", at="update", asks="a", bids="b", checksum="c",
                   kind=CHECKSUM_KRAKEN, channel=Channel(market="pair", symbol="symbol", depth="trunc"),
                   otherwise="_on_book")
    """

    __slots__ = ("asks", "bids", "checksum", "kind", "at", "first", "channel", "depth", "otherwise")

    def __init__(self, *, market: str, asks: str, bids: str, checksum: str, kind: int, otherwise: str,
                 at: str | None = None, first: str = "asks", channel: Channel | None = None, depth: int = 0):
        from ..book import CHECKSUM_BITFINEX, CHECKSUM_KRAKEN

        if not CHECKSUM_KRAKEN <= kind <= CHECKSUM_BITFINEX:
            raise ValueError(f"BookUpdate: kind {kind!r} is no checksum kind (CHECKSUM_KRAKEN..CHECKSUM_BITFINEX)")
        if first not in ("asks", "bids"):
            raise ValueError(f"BookUpdate: first={first!r}, asks or bids")
        if not isinstance(otherwise, str) or not otherwise:
            raise ValueError("BookUpdate: otherwise names the venue's method for what is not the common case")
        if depth < 0:
            raise ValueError(f"BookUpdate: depth {depth} < 0")
        self.topic, self.malformed, self.symbol, self.time, self.or_receipt = "lob", "", market, (), False
        self.asks, self.bids, self.checksum, self.kind = asks, bids, checksum, kind
        self.at, self.first, self.channel, self.depth, self.otherwise = at, first, channel, depth, otherwise

    def fields(self) -> tuple[str, ...]:
        """The payload's fields (the message's where there is no ``at``): the first side's
        levels, the second's, the checksum."""
        sides = (self.asks, self.bids) if self.first == "asks" else (self.bids, self.asks)
        return (*sides, self.checksum)


class LevelDelta(Shape):
    """An L2 update of one level that carries the book's sequence number: the level's side, price
    and new total size (0 removes it), and the message's number, which must follow the market's
    in the scheme's ``Chain`` (``atomfast.kit.chain``) named ``chain``: consecutive chains, ``seq``
    is the book's + 1; linked ones (``prev`` declared), ``prev`` is the book's. Applied as the
    venue's handler did: ``L2Book.apply_sides`` (a ``lob`` row where the level changes), the chain
    set to ``seq``, a ``spread`` row where the top changed (``Scheme.emit_spread``); the events'
    time is the message's (ms, the first of ``time`` that is not 0).

    Only the common case runs in C: a market whose symbol is cached, with a book, not reloading
    (``scheme.unsynced``: the message is dropped, as the venues do until the snapshot), the number
    following, the side one of ``sides`` (the venue's word -> ``BID``/``ASK``), the time an int
    in [0, 10**14) ms and the level sound. Anything else, with nothing applied, goes to the venue's
    ``otherwise`` method, called as a handler ``(conn, msg, data, recv_ns)``, which says what is
    amiss (a gap, no book yet, a malformed side, time or level, a market not cached yet).

    Kraken Futures' book delta::

        LevelDelta(market="product_id", side="side", price="price", size="qty", seq="seq",
                   time="timestamp", sides={"buy": BID, "sell": ASK}, chain="chain", otherwise="_on_delta")
    """

    __slots__ = ("side", "price", "size", "seq", "prev", "sides", "chain", "otherwise")

    def __init__(self, *, market: str, side: str, price: str, size: str, seq: str, time: str | tuple[str, ...],
                 sides: dict[str, int], chain: str, otherwise: str, prev: str | None = None):
        from ..book import ASK, BID

        if not sides or not all(isinstance(k, str) and v in (BID, ASK) for k, v in sides.items()):
            raise ValueError(f"LevelDelta: sides {sides!r} maps the venue's words to BID or ASK")
        for what, name in (("chain", chain), ("otherwise", otherwise)):
            if not isinstance(name, str) or not name:
                raise ValueError(f"LevelDelta: {what} names the scheme's attribute")
        super().__init__("lob", "", market, time, False)
        self.side, self.price, self.size, self.seq, self.prev = side, price, size, seq, prev
        self.sides, self.chain, self.otherwise = dict(sides), chain, otherwise

    def fields(self) -> tuple[str, ...]:
        return (self.symbol, self.side, self.price, self.size, self.seq, *((self.prev,) if self.prev else ()),
                *self.time)


class SignedLevel(Shape):
    """An L2 update of one level whose amount's sign names its side, on the channel the dispatch's
    ``Lookup`` found (kept): Bitfinex's P0 row ``[PRICE, COUNT, AMOUNT]`` (AMOUNT > 0 a bid, < 0 an
    ask, its magnitude the level's new total size; COUNT 0 removes the level), the row in the
    message's field ``at``, with the message's sequence number ``seq``, which must be the stream's
    + 1 (the stream: an object the channel names, holding the last number as ``seq``; Bitfinex's is
    the connection's). Applied as the venue's handler did: ``L2Book.apply_sides`` (a ``lob`` row
    where the level changes), the stream's number set, a ``spread`` row where the top changed
    (``L2Book.spread_into``); the events' time is the receipt's.

    The channel object names (attribute names, declared here) its book (``book``: None before its
    snapshot), its normalised symbol, its book's key in ``scheme.unsynced`` (``key``), whether its
    messages are ignored (``dead``) and its stream.

    Only the common case runs in C: a channel kept, the number following, not ignored, with a
    book, not reloading, COUNT an int >= 0, AMOUNT not zero and the level sound. Anything else,
    with nothing applied and the number not taken, goes to the venue's ``otherwise`` method,
    called as a handler ``(conn, msg, data, recv_ns)`` (the channel kept on the scheme first),
    which says what is amiss.

    Bitfinex's P0 row::

        SignedLevel(at="level", price="price", count="count", amount="amount", seq="seq",
                    otherwise="_on_p0_row")
    """

    __slots__ = ("at", "price", "count", "amount", "seq", "otherwise", "book", "key", "dead", "stream")

    def __init__(self, *, at: str, price: str, count: str, amount: str, seq: str, otherwise: str,
                 book: str = "book", symbol: str = "symbol", key: str = "key", dead: str = "dead",
                 stream: str = "stream"):
        if not isinstance(otherwise, str) or not otherwise:
            raise ValueError("SignedLevel: otherwise names the venue's method for what is not the common case")
        self.topic, self.malformed, self.symbol, self.time, self.or_receipt = "lob", "", symbol, (), False
        self.at, self.price, self.count, self.amount, self.seq = at, price, count, amount, seq
        self.otherwise, self.book, self.key, self.dead, self.stream = otherwise, book, key, dead, stream

    def fields(self) -> tuple[str, ...]:
        """The row's fields (in the message's ``at``): price, count, amount."""
        return (self.price, self.count, self.amount)


class SidedLevels(Shape):
    """An L2 update whose levels each lead with their side, ``[side, price, size]`` (``levels``:
    Coinbase's ``l2update`` and Gemini's market data v2 ``l2_updates``, both ``changes``), with
    no checksum and no sequence number. Applied by the market's book in one call, every level
    parsed before any is applied (a bad one: nothing applied), a ``lob`` row per change of the
    book: the levels of one side as ``L2Book.apply_sides(side, levels, None, ...)``, in the
    message's order; levels of both sides as ``apply_sides(BID, bids, asks, ...)`` of them split by
    side (``atomfast._book.apply_sided_levels``: the bids first, each side in the message's order;
    every side read before any level). Then, where the book may have crossed (the ``CROSSED``
    flag), the venue's ``crossed`` method ``(conn, market, book, recv_ns) -> bool`` (True: the
    book resynced, nothing more is written), then a ``spread`` row where the top changed
    (``L2Book.spread_into``).

    ``sides`` maps the venue's two words to ``BID`` and ``ASK`` (one each). ``levels`` is a list
    of three-item levels, or their JSON text (a ``msgspec.Raw``, read in C by
    ``atomfast._book.apply_json_sided_levels``: plain strings only, bids first as above).
    ``time`` (optional) names the events' time, RFC 3339 text (``rfc3339_to_ms``; "", not sent:
    the time of receipt); none declared: the time of receipt, in ms. ``snapshot`` (optional)
    names a field that is None in an update and set in the message that carries the whole book
    (Gemini: ``trades``, sent only in a subscription's first ``l2_updates``): such a message is
    the venue's (``otherwise``), whatever the state of the market's book. ``mixed`` False: a
    message with levels of both sides is the venue's (``otherwise``), which applies them in the
    message's order, side runs as they come (Coinbase), and text levels are not read in C.

    Only the common case runs in C: no ``snapshot``, a market whose symbol is cached, with a
    book, not reloading (``scheme.unsynced``), the levels' sides the two words (of one side
    where not ``mixed``), the time readable and every level sound. Anything else, with nothing
    applied, goes to the venue's ``otherwise`` method, called as a handler ``(conn, msg, data,
    recv_ns)``, which says what is amiss (no book yet, a malformed side, level or time, a market
    not cached yet), drops a reloading book's update until its snapshot (Gemini counting a
    malformed one), loads the snapshot, or applies what the shape does not (where not ``mixed``:
    levels of both sides, in their order).

    Coinbase's level-2 update and Gemini's market data v2 update::

        SidedLevels(market="product_id", levels="changes", time="time", sides={"buy": BID, "sell": ASK},
                    mixed=False, crossed="_crossed", otherwise="_on_l2update")
        SidedLevels(market="symbol", levels="changes", snapshot="trades", sides={"buy": BID, "sell": ASK},
                    crossed="gap_crossed", otherwise="_on_l2")
    """

    __slots__ = ("levels", "sides", "snapshot", "mixed", "crossed", "otherwise")

    def __init__(self, *, market: str, levels: str, sides: dict[str, int], crossed: str, otherwise: str,
                 time: str | None = None, snapshot: str | None = None, mixed: bool = True):
        from ..book import ASK, BID

        if (not isinstance(sides, dict) or sorted(sides.values()) != sorted((BID, ASK))
                or not all(isinstance(k, str) and k for k in sides)):
            raise ValueError(f"SidedLevels: sides {sides!r} maps one word to BID and one to ASK")
        for what, name in (("crossed", crossed), ("otherwise", otherwise)):
            if not isinstance(name, str) or not name:
                raise ValueError(f"SidedLevels: {what} names the scheme's method")
        for what, name in (("time", time), ("snapshot", snapshot)):
            if name is not None and (not isinstance(name, str) or not name):
                raise ValueError(f"SidedLevels: {what} {name!r}: one field, or None")
        self.topic, self.malformed, self.symbol, self.or_receipt = "lob", "", market, False
        self.time = () if time is None else (time,)
        self.levels, self.sides, self.snapshot, self.mixed = levels, dict(sides), snapshot, bool(mixed)
        self.crossed, self.otherwise = crossed, otherwise

    def fields(self) -> tuple[str, ...]:
        """The update's fields: market, levels, (snapshot), (time)."""
        return (self.symbol, self.levels, *((self.snapshot,) if self.snapshot else ()), *self.time)


__all__ = ["BookUpdate", "Channel", "LevelDelta", "Quote", "Shape", "SidedLevels", "SignedLevel", "Trade"]


class ChainedSides(Shape):
    """An L2 update of both sides' levels (``[price, size]``, size 0 removes; each side a list, or
    its raw JSON text: ``msgspec.Raw``, read by the book, ``L2Book.check_json_sides``) that
    carries the message's id, chained in the scheme's ``Chain`` named ``chain`` (linked,
    ``prev`` declared: ``prev`` is the book's id; consecutive: ``seq`` is the book's + 1), with no
    checksum: Poloniex's ``book_lv2`` update. Applied as the venue's handler did:
    ``L2Book.apply_sides`` (every level parsed before any is applied, ``first``'s levels first, a
    ``lob`` row per change, the cut to ``depth`` levels a side with a removal row per level cut),
    the chain set to ``seq``, a ``spread`` row where the top changed (``L2Book.spread_into``); the
    events' time is the message's (ms, the first of ``time`` that is not 0).

    ``at`` names the message's field holding the update (a Struct, or a list of exactly one:
    Poloniex's ``data``; None: the message itself); ``where``, fields of the message and the value
    each must have for the message to be an update (Poloniex: ``action`` "update", no ``event``).

    Only the common case runs in C: the message of ``where``, one update, a market whose symbol is
    cached, ``seq`` an int in [0, 2**63), the time an int in [0, 10**14) ms, not reloading
    (``scheme.unsynced``: the message is dropped, as the venues do until the snapshot), the id
    following, with a book, every level sound. Anything else, with nothing applied, goes to the
    venue's ``otherwise`` method, called as a handler ``(conn, msg, data, recv_ns)``, which says
    what is amiss or applies what the shape does not (a snapshot, a market not cached yet).

    Poloniex's book message (spot)::

        ChainedSides(at="data", market="symbol", bids="bids", asks="asks", seq="id", prev="lastId",
                     time="ts", chain="chain", depth=20, where={"action": "update", "event": ""},
                     otherwise="_on_book_frame")
    """

    __slots__ = ("at", "asks", "bids", "seq", "prev", "first", "depth", "chain", "where", "otherwise")

    def __init__(self, *, market: str, asks: str, bids: str, seq: str, time: str | tuple[str, ...], chain: str,
                 otherwise: str, prev: str | None = None, at: str | None = None, first: str = "bids",
                 depth: int = 0, where: dict[str, object] | None = None):
        if first not in ("asks", "bids"):
            raise ValueError(f"ChainedSides: first={first!r}, asks or bids")
        for what, name in (("chain", chain), ("otherwise", otherwise)):
            if not isinstance(name, str) or not name:
                raise ValueError(f"ChainedSides: {what} names the scheme's attribute")
        if depth < 0:
            raise ValueError(f"ChainedSides: depth {depth} < 0")
        super().__init__("lob", "", market, time, False)
        self.at, self.asks, self.bids, self.seq, self.prev = at, asks, bids, seq, prev
        self.first, self.depth, self.chain, self.otherwise = first, depth, chain, otherwise
        self.where = dict(where or {})
        if not all(isinstance(k, str) and k for k in self.where):
            raise ValueError(f"ChainedSides: where {where!r} maps field names to values")

    def fields(self) -> tuple[str, ...]:
        """The update's fields: market, the first side's levels, the second's, seq, (prev), time..."""
        sides = (self.bids, self.asks) if self.first == "bids" else (self.asks, self.bids)
        return (self.symbol, *sides, self.seq, *((self.prev,) if self.prev else ()), *self.time)

    def outer(self) -> tuple[str, ...]:
        """The message's fields read first: ``at`` (where declared), then ``where``'s."""
        return (*((self.at,) if self.at else ()), *self.where)


__all__ += ["ChainedSides"]


class KeyedTextLevels(Shape):
    """An L2 update keyed by its market, its levels JSON text, a consecutive sequence number, no
    checksum (HitBTC's and FMFW's ``orderbook/full`` update): the message's field ``at`` is a
    dict of the market's native name -> the payload (a Struct) that holds the sequence number
    ``seq``, the time ``time`` (ms) and both sides' levels as their JSON text (``msgspec.Raw``:
    ``[[price, size], ...]`` strings, read by the book: ``L2Book.json_update_wide``). The number
    must follow the market's in the scheme's consecutive ``Chain`` named ``chain`` (``seq`` = the
    book's + 1). Applied as the venue's handler did: ``L2Book.json_update_wide`` (every level read
    from the text before any is applied, ``first``'s levels first, a ``lob`` row per change, a
    ``spread`` row where the top changed), then the chain set to ``seq``.

    Only the common case runs in C: ``at`` a dict of ONE market, the message's ``unless`` field
    None (e.g. a snapshot it may carry instead), the market's symbol cached, a book, not reloading,
    the number following, the time an int in [0, 10**14) ms and every level read from the text.
    Anything else, with nothing applied, goes to the venue's ``otherwise`` method, called as a
    handler ``(conn, msg, data, recv_ns)``, which does what the venue does with it (a snapshot,
    a gap, no book yet, a market reloading or not cached yet, levels the book does not read as
    text, a malformed time).

    HitBTC's book update::

        KeyedTextLevels(at="update", unless="snapshot", seq="s", time="t", asks="a", bids="b",
                        first="bids", chain="chain", otherwise="_on_book")
    """

    __slots__ = ("at", "unless", "seq", "asks", "bids", "first", "chain", "otherwise")

    def __init__(self, *, at: str, unless: str, seq: str, time: str, asks: str, bids: str, chain: str,
                 otherwise: str, first: str = "bids"):
        if first not in ("asks", "bids"):
            raise ValueError(f"KeyedTextLevels: first={first!r}, asks or bids")
        for what, name in (("chain", chain), ("otherwise", otherwise)):
            if not isinstance(name, str) or not name:
                raise ValueError(f"KeyedTextLevels: {what} names the scheme's attribute")
        super().__init__("lob", "", at, time, False)
        if len(self.time) != 1:
            raise ValueError(f"KeyedTextLevels: time {time!r}: one field")
        self.at, self.unless, self.seq, self.asks, self.bids = at, unless, seq, asks, bids
        self.first, self.chain, self.otherwise = first, chain, otherwise

    def fields(self) -> tuple[str, ...]:
        """The payload's fields: the sequence number, the time, the first side's levels, the
        second's."""
        sides = (self.asks, self.bids) if self.first == "asks" else (self.bids, self.asks)
        return (self.seq, *self.time, *sides)


__all__ += ["KeyedTextLevels"]
