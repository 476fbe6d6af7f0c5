"""The common channel shapes a venue declares instead of writing a handler: executed in C.

A route of a venue's ``Dispatch`` names a handler method, or declares the message's shape: where
in the decoded message (the route's Struct, after ``unwrap``) the fields of one event are. The
compiled ``atomfast._dispatch.Router`` executes the declaration for every frame of the route (the
fields read at their Struct offsets, the symbol looked up, the typed writer called on the topic's
rows): no Python runs for a well-formed message. A venue whose messages fit no shape keeps its
handler; the flows that are truly a venue's own (book sync, checksums, L3) stay methods.

What every shape does, as the venue's handlers did:

* the symbol: the scheme's cache (``_symbols``) of the native name; a name not cached yet is
  asked of ``known`` (bad input ``unknown market`` if it names no market: the message is
  dropped) and ``symbol_of``;
* the time: the first of the ``time`` fields that is not 0 (``T`` or ``E``); none: 0, or the
  time of receipt where ``or_receipt`` (Binance spot's bookTicker carries no time);
* the typed writer's checks (a price or size not a number in [0, 1e15), a trade's price 0, a
  time not in [0, 10**14) ms): nothing written, and the message is counted as bad input of kind
  ``malformed`` with its fields in the detail (``'0.1' '2' T=1723161600000``).

Binance's trades and book tickers::

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


__all__ = ["Quote", "Shape", "Trade"]
