"""The scheme: what one exchange (and market type) says on its websocket, and how it maps to events.

An exchange module declares a ``Scheme`` subclass: endpoints, channel map, symbol rules and limits
as class attributes; behaviour in a few small methods (``subscribe_messages``, ``on_frame``,
``parse_instruments``, optionally ``ping_message``/``resubscribe``). Everything shared lives here:
the books, the lob/spread/status emission, resync bookkeeping, bad-input accounting.

The hot path is ``on_frame(conn, data, recv_ns)``: called by the feed straight from picows'
``on_ws_frame`` (or by replay), it decodes ``data`` with msgspec into the scheme's Structs and
calls ``self.emit(topic, record)`` for each event; the caller ends the frame.
"""
from __future__ import annotations

import json
import logging
from typing import Callable, ClassVar, Iterable, NamedTuple, Protocol, Sequence

from .book import ASK, BID, CROSSED, TOP_CHANGED, L2Book
from .events import BUY, SELL, Lob, Spread, Status
from .metrics import Metrics

log = logging.getLogger("atomfast.scheme")

SIDE_NAMES = (BUY, SELL)  # indexed by BID (0) / ASK (1)


class Instrument(NamedTuple):
    """One market as the exchange lists it, with its normalised name (see DESIGN.md: Symbols)."""

    native: str  # the exchange's own name: "XBT/USD", "PI_XBTUSD", "btcusdt"
    symbol: str  # normalised: BTC-USD, BTC-USDT-PERP, BTC-USD-20261225, BTC-USD-20261225-100000-C
    kind: str  # spot | perp | future | option
    base: str
    quote: str
    price_decimals: int = 8
    size_decimals: int = 8
    expiry: str = ""  # YYYYMMDD for futures and options


class Connection(Protocol):
    """What a scheme may do with the websocket connection a frame came from."""

    id: int
    url: str
    #: the subscriptions this connection carries: (exchange channel, native symbols)
    plan: "ConnectionPlan"
    #: per-connection scheme state (e.g. Kraken v1 channelID -> pair)
    state: dict

    def send(self, message: str | bytes) -> None: ...

    def reconnect(self, reason: str) -> None: ...

    def fetch(self, url: str) -> None:
        """GET ``url`` in the background; the answer arrives at ``Scheme.on_rest``."""


class ConnectionPlan(NamedTuple):
    url: str
    subscriptions: list[tuple[str, list[str]]]  # (exchange channel, native symbols)


Emit = Callable[[str, tuple], None]


class Scheme:
    # --- declarative part: every exchange module sets these ---------------------------------
    exchange: ClassVar[str] = ""  # lower-case exchange name in events and keys
    ws_url: ClassVar[str] = ""
    rest_url: ClassVar[str] = ""  # base of the REST API (instruments, snapshots)
    instruments_path: ClassVar[str] = ""  # REST path listing the instruments ("" = none)
    #: atomfast channel (topic family) -> the exchange's channel name
    channels: ClassVar[dict[str, str]] = {}
    default_channels: ClassVar[tuple[str, ...]] = ("lob", "trades", "ticker")
    #: symbol aliases applied when normalising (Kraken: XBT -> BTC)
    aliases: ClassVar[dict[str, str]] = {}
    symbols_per_message: ClassVar[int] = 50  # symbols in one subscribe message
    subscriptions_per_connection: ClassVar[int] = 0  # (channel, symbol) pairs; 0 = no cap
    ping_interval: ClassVar[float] = 0.0  # seconds between application-level pings; 0 = none
    silence_timeout: ClassVar[float] = 30.0  # watchdog: reconnect a connection silent this long
    max_frame_bytes: ClassVar[int] = 8 * 1024 * 1024
    is_default: ClassVar[bool] = True  # the scheme `run --exchange NAME` picks among several
    #: on_frame may receive a memoryview of picows' buffer (valid only during the call)
    accepts_memoryview: ClassVar[bool] = False
    #: fields of outgoing JSON messages that carry credentials: never recorded, never logged
    secret_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        emit: Emit,
        metrics: Metrics | None = None,
        instruments: dict[str, Instrument] | None = None,
        symbols: Sequence[str] = (),
        channels: Sequence[str] = (),
    ) -> None:
        self.emit = emit
        self.metrics = metrics if metrics is not None else Metrics()
        self.instruments: dict[str, Instrument] = dict(instruments or {})
        self.by_symbol: dict[str, Instrument] = {i.symbol: i for i in self.instruments.values()}
        self.symbols = list(symbols)
        self.channel_names = list(channels) or list(self.default_channels)
        unknown = [c for c in self.channel_names if c not in self.channels]
        if unknown:
            raise ValueError(
                f"{self.exchange}: unsupported channel(s) {', '.join(unknown)}; "
                f"supported: {', '.join(self.channels)}"
            )
        #: native symbol -> live L2 book
        self.books: dict[str, L2Book] = {}
        #: native symbols whose book is not trusted: updates are dropped until a snapshot
        self.unsynced: set[str] = set()

    # --- per exchange ----------------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        """Instruments from the REST listing at ``instruments_path``, keyed by native name."""
        raise NotImplementedError

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        """The message(s) subscribing ``natives`` to the exchange channel ``channel``."""
        raise NotImplementedError

    def on_frame(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        raise NotImplementedError

    def ping_message(self) -> str | bytes | None:
        return None

    @classmethod
    def redact(cls, message: str | bytes) -> str | bytes:
        """An outgoing message fit for a log or a recording: ``secret_fields`` masked."""
        if not cls.secret_fields:
            return message
        try:
            obj = json.loads(message)
        except ValueError:
            return "<unparseable message withheld: it may carry credentials>"
        if isinstance(obj, dict) and any(f in obj for f in cls.secret_fields):
            obj = {k: ("***" if k in cls.secret_fields else v) for k, v in obj.items()}
            return json.dumps(obj, separators=(",", ":"))
        return message

    def on_rest(self, url: str, body: bytes, recv_ns: int) -> None:
        """A REST answer (e.g. a book snapshot): fetched by the feed, or recorded inline in a
        capture and delivered by replay at the time it arrived. Default: ignored."""

    def resubscribe(self, conn: Connection, native: str) -> None:
        """Reload one book after a resync. Default: reconnect (every book of it is reloaded)."""
        conn.reconnect(f"resync {native}")

    # --- shared behaviour --------------------------------------------------------------------
    def native_symbols(self) -> list[str]:
        """The configured normalised symbols as native names (unknown ones are an error)."""
        out = []
        for sym in self.symbols:
            inst = self.by_symbol.get(sym) or self.instruments.get(sym)
            if inst is None:
                raise ValueError(f"{self.exchange}: unknown symbol {sym!r}")
            out.append(inst.native)
        return out

    def plan(self, url: str | None = None) -> list[ConnectionPlan]:
        """Split the subscriptions into connections within ``subscriptions_per_connection``."""
        natives = self.native_symbols()
        cap = self.subscriptions_per_connection or (len(natives) * len(self.channel_names)) or 1
        plans: list[ConnectionPlan] = []
        current: list[tuple[str, list[str]]] = []
        used = 0
        for name in self.channel_names:
            channel = self.channels[name]
            pending = list(natives)
            while pending:
                room = cap - used
                if room <= 0:
                    plans.append(ConnectionPlan(url or self.ws_url, current))
                    current, used = [], 0
                    continue
                take, pending = pending[:room], pending[room:]
                current.append((channel, take))
                used += len(take)
        if current:
            plans.append(ConnectionPlan(url or self.ws_url, current))
        return plans

    def on_open(self, conn: Connection, recv_ns: int) -> None:
        """Connected: say so, and subscribe this connection's plan in batches."""
        self.status("", "connected", conn.url, recv_ns)
        for channel, natives in conn.plan.subscriptions:
            for i in range(0, len(natives), self.symbols_per_message):
                for msg in self.subscribe_messages(channel, natives[i : i + self.symbols_per_message]):
                    conn.send(msg)

    def on_close(self, conn: Connection, reason: str, recv_ns: int) -> None:
        """Disconnected: every book of the connection is untrusted until its next snapshot."""
        for _channel, natives in conn.plan.subscriptions:
            self.unsynced.update(n for n in natives if n in self.books)
        self.status("", "disconnected", reason, recv_ns)

    def instrument(self, native: str) -> Instrument:
        """The instrument for a native name; unknown names get a best-effort normalisation."""
        inst = self.instruments.get(native)
        if inst is None:
            inst = self.instruments[native] = self.guess_instrument(native)
            self.by_symbol[inst.symbol] = inst
        return inst

    def guess_instrument(self, native: str) -> Instrument:
        """Fallback for a market the instrument listing did not name (e.g. a replayed capture)."""
        raise KeyError(f"{self.exchange}: unknown market {native!r}")

    def normalise_asset(self, asset: str) -> str:
        asset = asset.upper()
        return self.aliases.get(asset, asset)

    def book(self, native: str) -> L2Book:
        book = self.books.get(native)
        if book is None:
            inst = self.instrument(native)
            book = self.books[native] = L2Book(inst.price_decimals, inst.size_decimals)
        return book

    def status(self, symbol: str, status: str, reason: str, recv_ns: int, event_ms: int = 0) -> None:
        ats = recv_ns // 1000
        self.emit("status", Status(self.exchange, symbol, status, reason, event_ms or ats // 1000, ats))

    def begin_snapshot(self, native: str, recv_ns: int, event_ms: int = 0) -> L2Book:
        """A (re)loaded book: status `snapshot` first (consumers clear their copy), empty book."""
        book = self.book(native)
        book.clear()
        self.unsynced.discard(native)
        self.status(self.instrument(native).symbol, "snapshot", "", recv_ns, event_ms)
        return book

    def apply_levels(
        self,
        native: str,
        book: L2Book,
        side: int,
        levels: Iterable[tuple[str, str]],
        event_ms: int,
        atom_us: int,
    ) -> int:
        """Apply (price, size) strings to one side; a `lob` event for each change. Returns flags.

        A delete of a level the book does not hold changes nothing and is not published.
        Raises ValueError (from the book) on a malformed number: the caller resyncs.
        """
        emit = self.emit
        exchange = self.exchange
        symbol = self.instrument(native).symbol
        side_name = SIDE_NAMES[side]
        flags = 0
        for price, size in levels:
            f = book.apply(side, price, size)
            if f & 4:  # UNKNOWN: nothing changed
                continue
            flags |= f
            emit("lob", Lob(exchange, symbol, float(price), float(size), side_name, event_ms, atom_us))
        return flags

    def emit_spread(self, native: str, book: L2Book, event_ms: int, atom_us: int) -> None:
        bp, bs, ap, asz = book.best()
        self.emit("spread", Spread(self.exchange, self.instrument(native).symbol, bp, bs, ap, asz, event_ms, atom_us))

    def truncate(self, native: str, book: L2Book, depth: int, event_ms: int, atom_us: int) -> None:
        """Keep ``depth`` levels a side, publishing the dropped ones as removals."""
        symbol = self.instrument(native).symbol
        for side in (BID, ASK):
            if book.count(side) > depth:
                for price, _size in book.levels(side, start=depth):
                    self.emit("lob", Lob(self.exchange, symbol, float(price), 0.0, SIDE_NAMES[side], event_ms, atom_us))
        book.truncate(depth)

    def resync(self, conn: Connection, native: str, reason: str, recv_ns: int) -> None:
        """The book of ``native`` can no longer be trusted: say why, drop it, reload it."""
        if native in self.unsynced:
            return  # already reloading
        self.metrics.resyncs += 1
        self.unsynced.add(native)
        book = self.books.get(native)
        if book is not None:
            book.clear()
        self.status(self.instrument(native).symbol, "resync", reason, recv_ns)
        log.warning("%s %s: resync (%s)", self.exchange, native, reason)
        self.resubscribe(conn, native)

    def bad_input(self, kind: str, detail: str, data: bytes) -> None:
        self.metrics.errors.report(f"{self.exchange}: {kind}", detail, data)


__all__ = [
    "ASK",
    "BID",
    "CROSSED",
    "TOP_CHANGED",
    "Connection",
    "ConnectionPlan",
    "Instrument",
    "Scheme",
    "SIDE_NAMES",
]
