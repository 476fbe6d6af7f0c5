"""The scheme: what one exchange (and market type) says on its websocket, and how it maps to events.

An exchange module declares a ``Scheme`` subclass: endpoints (``websocket_endpoints``,
``rest_endpoint``: ``atomfast.kit.endpoints``), its route table (``dispatch``:
``atomfast.kit.dispatch``), channel map, symbol rules and limits as class attributes; behaviour
in its handlers and a few small methods (``subscribe_messages``, ``parse_instruments``, optionally
``ping_message``/``resubscribe``/``on_timer``). Everything shared lives here: the connection plan,
the books (level 2 and level 3), the lob/spread/status emission, resync bookkeeping, bad-input
accounting, the decode errors every venue catches, the book flags and errors.
A level-3 book's ``status`` events name it in their reason (``snapshot`` with reason ``lob_l3``,
``resync`` with a reason starting ``lob_l3: ``), so that consumers clear the right copy of a
market's book; a level-2 book's statuses name none.

The hot path is ``on_frame(conn, data, recv_ns)``: called by the frame driver
(``atomfast.driver.FrameDriver``, which counted the frame and checked its size), it is the
venue's ``dispatch`` bound to its handlers; a handler decodes into the scheme's Structs and calls
``self.emit(topic, record)`` (or a book's batch call) for each event; the driver ends the frame.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Callable, ClassVar, Iterable, NamedTuple, Protocol, Sequence

import msgspec

from .book import ASK, BID, CROSSED, TOP_CHANGED, UNKNOWN, AvroRows, L2Book, L3Book, RecordRows
from .events import BUY, SELL, TOPICS, Lob, Spread, Status
from .kit.dispatch import Dispatch
from .kit.endpoints import RestEndpoint, Routes, WebsocketEndpoint
from .kit.levels import crossed
from .metrics import Metrics
from .pipeline import Pipeline

log = logging.getLogger("atomfast.scheme")

SIDE_NAMES = (BUY, SELL)  # indexed by BID (0) / ASK (1)

#: what msgspec raises on input it cannot decode: DecodeError (ValidationError, a subclass, for
#: valid JSON of the wrong shape), RecursionError (JSON nested deeper than it will go) and
#: UnicodeDecodeError (a string, or a key, that is not UTF-8)
DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError)
#: the same without ValidationError: not JSON at all (caught after ``except msgspec.ValidationError``)
MALFORMED = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)
#: what a book's parse of a level raises on bad input (nothing of the message applied)
BOOK_ERRORS = (ValueError, OverflowError, TypeError)

#: id(instruments) -> (that dict, its instruments by normalised symbol): for the listings a
#: process keeps and hands to every scheme it makes (``atomfast.replay``'s parsed listings),
#: so that a scheme copies the map instead of building it (~70 µs for Binance's 1,700 markets)
_BY_SYMBOL: dict[int, tuple[dict, dict]] = {}


def remember_listing(instruments: dict, forget: dict | None = None) -> None:
    """Index ``instruments`` by symbol once for the schemes it will be handed to; the caller
    never changes it afterwards. ``forget``: a listing no longer kept."""
    if forget is not None and _BY_SYMBOL.get(id(forget), (None,))[0] is forget:
        del _BY_SYMBOL[id(forget)]
    _BY_SYMBOL[id(instruments)] = (instruments, {i.symbol: i for i in instruments.values()})
#: the book kinds a ``resync`` may name
LOB, LOB_L3 = "lob", "lob_l3"


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


class _EmitRows:
    """What ``Scheme.rows`` gives where ``emit`` is not a pipeline's (a filter, a test's list):
    ``append`` hands the record to ``emit``."""

    __slots__ = ("emit", "topic")

    def __init__(self, emit: Emit, topic: str) -> None:
        self.emit = emit
        self.topic = topic

    def append(self, record: tuple) -> None:
        self.emit(self.topic, record)

    def quote(self, exchange: str, symbol: str, bid_price: object, bid_size: object, ask_price: object,
              ask_size: object, event_ms: int, atom_us: int) -> bool:
        """``AvroRows.quote``: the event (checked as there) handed to ``emit``."""
        rows = RecordRows(TOPICS[self.topic])
        return rows.quote(exchange, symbol, bid_price, bid_size, ask_price, ask_size, event_ms, atom_us) and self._emitted(rows)

    def trade(self, exchange: str, symbol: str, price: object, size: object, buy: bool, trade_id: str | int,
              event_ms: int, atom_us: int) -> bool:
        """``AvroRows.trade``: the event (checked as there) handed to ``emit``."""
        rows = RecordRows(TOPICS[self.topic])
        return rows.trade(exchange, symbol, price, size, buy, trade_id, event_ms, atom_us) and self._emitted(rows)

    def order(self, exchange: str, symbol: str, price: object, size: object, bid: bool, order_id: str | int,
              event_ms: int, atom_us: int) -> bool:
        """``AvroRows.order``: the event (checked as there) handed to ``emit``."""
        rows = RecordRows(TOPICS[self.topic])
        return rows.order(exchange, symbol, price, size, bid, order_id, event_ms, atom_us) and self._emitted(rows)

    def _emitted(self, rows: RecordRows) -> bool:
        self.emit(self.topic, rows[0])
        return True

    @classmethod
    def factory(cls, emit: Emit) -> Callable[[str], "_EmitRows"]:
        made: dict[str, _EmitRows] = {}

        def rows(topic: str) -> _EmitRows:
            r = made.get(topic)
            if r is None:
                r = made[topic] = cls(emit, topic)
            return r

        return rows


class Scheme:
    # --- declarative part: every exchange module sets these ---------------------------------
    exchange: ClassVar[str] = ""  # lower-case exchange name in events and keys
    #: where the venue is reached (``atomfast.kit.endpoints``): the first endpoint without
    #: ``channels`` is ``ws_url``; the others serve the channels they name (``channel_urls``)
    websocket_endpoints: ClassVar[tuple[WebsocketEndpoint, ...]] = ()
    #: the REST base and its routes (instrument listings, snapshots, open interest)
    rest_endpoint: ClassVar[RestEndpoint] = RestEndpoint("")
    #: the route table (``atomfast.kit.dispatch``): bound to the handlers as ``on_frame``
    dispatch: ClassVar[Dispatch | None] = None
    # derived from the endpoints (read by the runtime: feed, replay, simulator); a venue does not
    # set them
    ws_url: ClassVar[str] = ""
    rest_url: ClassVar[str] = ""  # base of the REST API (instruments, snapshots)
    #: every REST path listing instruments, in order (``Routes.instruments``): their answers are
    #: merged (a later listing wins for a market two of them name), and a listing that cannot be
    #: had is left out as long as one answered
    instruments_paths: ClassVar[tuple[str, ...]] = ()
    #: atomfast channel (topic family) -> the exchange's channel name (several topics may share
    #: one channel: it is subscribed once)
    channels: ClassVar[dict[str, str]] = {}
    #: exchange channel prefix -> websocket url (derived from ``websocket_endpoints``), where the
    #: venue serves channels on different urls: ``plan`` gives each url its own connections
    #: (unless another url is asked for)
    channel_urls: ClassVar[dict[str, str]] = {}
    default_channels: ClassVar[tuple[str, ...]] = ("lob", "trades", "ticker")
    #: the markets ``run`` collects when neither ``--symbols`` nor config.ini names any
    #: (normalised names)
    default_symbols: ClassVar[tuple[str, ...]] = ()
    #: symbol aliases applied when normalising (Kraken: XBT -> BTC)
    aliases: ClassVar[dict[str, str]] = {}
    symbols_per_message: ClassVar[int] = 50  # symbols in one subscribe message
    subscriptions_per_connection: ClassVar[int] = 0  # (channel, symbol) pairs; 0 = no cap
    ping_interval: ClassVar[float] = 0.0  # seconds between application-level pings; 0 = none
    timer_interval: ClassVar[float] = 0.0  # seconds between ``on_timer`` calls by the feed; 0 = none
    silence_timeout: ClassVar[float] = 30.0  # watchdog: reconnect a connection silent this long
    max_frame_bytes: ClassVar[int] = 8 * 1024 * 1024
    is_default: ClassVar[bool] = True  # the scheme `run --exchange NAME` picks among several
    #: on_frame may receive a memoryview of picows' buffer (valid only during the call)
    accepts_memoryview: ClassVar[bool] = False
    #: fields of outgoing JSON messages that carry credentials: never recorded, never logged
    secret_fields: ClassVar[tuple[str, ...]] = ()
    #: the bad-input kind of a name that is no market (``known``): the venue's word for one
    unknown_market: ClassVar[str] = "unknown market"
    #: a REST path POSTed (``rest_url + token_path``, body ``{}``) before EVERY connect to the
    #: scheme's own websocket URL (not to an ``--endpoint``): its answer gives the URL to connect
    #: to (``connect_url``), e.g. KuCoin's ``/api/v1/bullet-public`` token. "" (default): none
    token_path: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if cls.__module__.startswith("atomfast.exchanges."):
            derived = [a for a in ("ws_url", "rest_url", "instruments_path", "instruments_paths", "channel_urls")
                       if a in own]
            if derived:
                raise TypeError(f"{cls.__name__}: declare websocket_endpoints / rest_endpoint, not {', '.join(derived)}")
        if "websocket_endpoints" in own:
            endpoints = cls.websocket_endpoints
            default = next((e for e in endpoints if not e.channels), endpoints[0] if endpoints else None)
            cls.ws_url = default.url if default is not None else ""
            cls.channel_urls = {prefix: e.url for e in endpoints if e is not default for prefix in e.channels}
        if "rest_endpoint" in own:
            cls.rest_url = cls.rest_endpoint.base
            cls.instruments_paths = cls.rest_endpoint.routes.instrument_paths
            cls.instruments_path = cls.instruments_paths[0] if cls.instruments_paths else ""
        elif "instruments_path" in own and "instruments_paths" not in own:
            # (a scheme outside atomfast.exchanges, e.g. a test's, may still name one path)
            cls.instruments_paths = (own["instruments_path"],) if own["instruments_path"] else ()

    def __init__(
        self,
        emit: Emit,
        metrics: Metrics | None = None,
        instruments: dict[str, Instrument] | None = None,
        symbols: Sequence[str] = (),
        channels: Sequence[str] = (),
    ) -> None:
        self.emit = emit
        #: topic -> the list a batch call appends that topic's records to (``Pipeline.rows``
        #: where ``emit`` is a pipeline's; else a list-like that hands each record to ``emit``)
        owner = getattr(emit, "__self__", None)
        self.rows: Callable[[str], list] = (
            owner.rows if isinstance(owner, Pipeline) and emit == owner.emit else _EmitRows.factory(emit))
        self.metrics = metrics if metrics is not None else Metrics()
        self.instruments: dict[str, Instrument] = dict(instruments or {})
        known = _BY_SYMBOL.get(id(instruments))
        self.by_symbol: dict[str, Instrument] = (
            dict(known[1]) if known is not None and known[0] is instruments
            else {i.symbol: i for i in self.instruments.values()})
        #: native -> normalised symbol (hot-path cache of ``symbol_of``)
        self._symbols: dict[str, str] = {}
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
        #: native symbol -> live L3 book (order by order), for the venues that keep one
        self.l3books: dict[str, L3Book] = {}
        #: native symbols whose level-3 book is not trusted (until its next snapshot)
        self.unsynced_l3: set[str] = set()
        if self.dispatch is not None:
            #: the route table bound to this scheme's handlers (what the frame driver calls)
            self.on_frame = self.dispatch.bind(self)

    def route(self, key: Any) -> Callable[[Connection, Any, bytes, int], None] | None:
        """What the route table runs for ``key``'s messages, ``(conn, msg, data, recv_ns)``: the
        handler method, or a declared shape's compiled executor (None: ignored). For a venue's
        slow path that decodes a message itself (Binance's unwrapped payloads)."""
        return self.on_frame.__self__.handler(key)

    # --- per exchange ----------------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        """Instruments from one REST listing (of ``instruments_paths``), keyed by native name."""
        raise NotImplementedError

    @classmethod
    def merge_instruments(cls, bodies: Iterable[bytes]) -> dict[str, Instrument]:
        """The instruments of several listings (``instruments_paths`` order), merged."""
        out: dict[str, Instrument] = {}
        for body in bodies:
            out.update(cls.parse_instruments(body))
        return out

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        """The message(s) subscribing ``natives`` to the exchange channel ``channel``."""
        raise NotImplementedError

    def on_frame(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """One frame's bytes (a memoryview where ``accepts_memoryview``): the frame driver has
        counted it and checked its size. A venue declares ``dispatch`` instead of writing this."""
        raise NotImplementedError(f"{type(self).__name__} declares no dispatch")

    def ping_message(self) -> str | bytes | None:
        return None

    @classmethod
    def connect_url(cls, body: bytes, connect_id: str) -> tuple[str, float]:
        """The websocket URL to connect to and the ping interval in s (0: the scheme's own) from
        the answer to ``token_path``; ``connect_id`` is unique per connect. ValueError if the
        answer names none. The URL may carry a secret (a token): the feed never logs or records
        it. Default: no ``token_path``, nothing to read."""
        raise NotImplementedError(f"{cls.__name__} declares no token_path")

    def needs_token(self, url: str) -> bool:
        """Whether a connect to ``url`` (one of the scheme's own websocket URLs) needs the
        ``token_path`` POST first. Default: every one (KuCoin); Kraken: its level3 URL only."""
        return True

    def token_request(self) -> tuple[bytes, dict[str, str] | None]:
        """The body and headers of the ``token_path`` POST (secrets: the feed never logs them).
        Default: ``{}`` and no headers (KuCoin); Kraken signs it."""
        return b"{}", None

    def on_timer(self, conns: Sequence[Connection], now_ns: int) -> None:
        """Every ``timer_interval`` s (the feed's housekeeping), with the connections that are up:
        periodic work that is not a frame (e.g. a REST poll). What it emits is published at once
        (the feed ends the frame after it). Default: nothing."""

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

    def resubscribe(self, conn: Connection, native: str, book: str = LOB) -> None:
        """Reload one book after a resync (``book``: ``lob``, or ``lob_l3`` for a level-3 book:
        a venue keeping level-3 books overrides this with ``book``). Default: reconnect (every
        book of it is reloaded)."""
        conn.reconnect(f"resync {native}" if book == LOB else f"resync {native} {book}")

    # --- shared behaviour --------------------------------------------------------------------
    def native_symbols(self) -> list[str]:
        """The configured normalised symbols as native names (unknown ones are an error)."""
        out = []
        for sym in self.symbols:
            inst = self.by_symbol.get(sym) or self.instruments.get(sym)
            if inst is None:
                raise ValueError(f"{self.exchange}: unknown symbol {sym!r}{self._did_you_mean(sym)}")
            out.append(inst.native)
        return out

    def _did_you_mean(self, sym: str) -> str:
        """A hint for a symbol the listing lacks: its normalised form (``btc/usd`` -> BTC-USD,
        the exchange's native name -> its symbol), else the closest listed names."""
        import difflib

        guess = sym.strip().upper().replace("/", "-").replace("_", "-")
        if guess in self.by_symbol:
            return f"; did you mean {guess}?"
        native = self.instruments.get(sym.strip()) or self.instruments.get(sym.strip().upper())
        if native is not None:
            return f"; did you mean {native.symbol}? (symbols are normalised: BASE-QUOTE, BASE-QUOTE-PERP, ...)"
        close = difflib.get_close_matches(guess, list(self.by_symbol), n=3, cutoff=0.6)
        return f"; did you mean {' or '.join(close)}?" if close else ""

    def plan_natives(self, channel: str, natives: list[str]) -> list[str]:
        """The markets of ``natives`` that the exchange channel ``channel`` exists for (e.g. a
        funding channel for perpetuals only). Default: all of them."""
        return natives

    def url_for(self, channel: str) -> str:
        """The websocket url serving the exchange channel ``channel`` (``channel_urls``)."""
        for prefix, url in self.channel_urls.items():
            if channel.startswith(prefix):
                return url
        return self.ws_url

    def plan(self, url: str | None = None) -> list[ConnectionPlan]:
        """Split the subscriptions into connections within ``subscriptions_per_connection``.

        Each exchange channel is subscribed once, however many topics it serves. Where the venue
        serves channels on different urls (``channel_urls``), each url gets its own connections;
        an explicit ``url`` other than ``ws_url`` (e.g. a local simulator) takes everything.
        """
        natives = self.native_symbols()
        routed = bool(self.channel_urls) and (url is None or url.rstrip("/") == self.ws_url.rstrip("/"))
        routes: dict[str, list[tuple[str, list[str]]]] = {}
        for channel in dict.fromkeys(self.channels[n] for n in self.channel_names):
            route = self.url_for(channel) if routed else (url or self.ws_url)
            routes.setdefault(route, []).append((channel, self.plan_natives(channel, natives)))
        plans: list[ConnectionPlan] = []
        for route, wanted in routes.items():
            cap = self.subscriptions_per_connection or sum(len(subs) for _, subs in wanted) or 1
            current: list[tuple[str, list[str]]] = []
            used = 0
            for channel, pending in wanted:
                while pending:
                    room = cap - used
                    if room <= 0:
                        plans.append(ConnectionPlan(route, current))
                        current, used = [], 0
                        continue
                    take, pending = pending[:room], pending[room:]
                    current.append((channel, take))
                    used += len(take)
            if current:
                plans.append(ConnectionPlan(route, current))
        return plans

    def subscribe_plan(self, plan: ConnectionPlan) -> list[str | bytes]:
        """Every message subscribing a connection's plan, in order: ``subscribe_messages`` for
        each channel, ``symbols_per_message`` markets at a time. A venue that takes several
        channels in one message overrides this (Binance: one message for the whole plan)."""
        step = self.symbols_per_message
        out: list[str | bytes] = []
        for channel, natives in plan.subscriptions:
            for i in range(0, len(natives), step):
                out.extend(self.subscribe_messages(channel, natives[i : i + step]))
        return out

    def on_open(self, conn: Connection, recv_ns: int) -> None:
        """Connected: say so, and subscribe this connection's plan (``subscribe_plan``)."""
        self.status("", "connected", conn.url, recv_ns)
        for msg in self.subscribe_plan(conn.plan):
            conn.send(msg)

    def on_close(self, conn: Connection, reason: str, recv_ns: int) -> None:
        """Disconnected: every book of the connection is untrusted until its next snapshot; the
        level-3 books it carried (the ``lob_l3`` channel's markets) are dropped at once."""
        l3_channel = self.channels.get(LOB_L3)
        l3books = self.l3books
        for channel, natives in conn.plan.subscriptions:
            self.unsynced.update(n for n in natives if n in self.books)
            if channel == l3_channel and l3books:
                for n in natives:
                    book = l3books.get(n)
                    if book is not None:
                        self.unsynced_l3.add(n)
                        book.clear()
        self.status("", "disconnected", reason, recv_ns)

    def instrument(self, native: str) -> Instrument:
        """The instrument for a native name; unknown names get a best-effort normalisation."""
        inst = self.instruments.get(native)
        if inst is None:
            inst = self.instruments[native] = self.guess_instrument(native)
            self.by_symbol[inst.symbol] = inst
        return inst

    def symbol_of(self, native: str) -> str:
        """The normalised symbol of a native name (cached); KeyError if it names no market."""
        sym = self._symbols.get(native)
        if sym is None:
            sym = self._symbols[native] = self.instrument(native).symbol
        return sym

    @classmethod
    def foreign(cls, data: bytes) -> str:
        """Why a received frame cannot be this venue's ("" when it may be). A replay asks it of a
        capture's first frames when the capture names no URL (hftbacktest's files): venues whose
        messages look alike (Binance spot, USD-M and COIN-M) say what tells them apart."""
        return ""

    def known(self, native: str, data: bytes) -> bool:
        """Whether ``native`` names a market (listed, or a well-formed name); bad input
        (``unknown_market``) if not."""
        if native in self._symbols:
            return True
        if native.__class__ is str:
            try:
                self.symbol_of(native)
                return True
            except KeyError:
                pass
        self.bad_input(self.unknown_market, repr(native)[:100], data)
        return False

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

    def l3book(self, native: str) -> L3Book:
        """The level-3 book of ``native`` (created, empty, on first use)."""
        book = self.l3books.get(native)
        if book is None:
            inst = self.instrument(native)
            book = self.l3books[native] = L3Book(inst.price_decimals, inst.size_decimals)
        return book

    def status(self, symbol: str, status: str, reason: str, recv_ns: int, event_ms: int = 0) -> None:
        ats = recv_ns // 1000
        self.emit("status", Status(self.exchange, symbol, status, reason, event_ms or ats // 1000, ats))

    def check_snapshot(self, conn: Connection, native: str, bids, asks, data: bytes, recv_ns: int,
                       kind: str = "malformed book snapshot") -> bool:
        """A whole snapshot's levels checked by ``native``'s book (every level parsed, nothing
        applied) before the book is cleared for it: False where one is refused, after
        ``book_failed`` (counted as ``kind``, the book resyncs)."""
        try:
            self.book(native).check_sides(bids, asks)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, kind, str(exc), data, recv_ns)
            return False
        return True

    def begin_snapshot(self, native: str, recv_ns: int, event_ms: int = 0) -> L2Book:
        """A (re)loaded book: status `snapshot` first (consumers clear their copy), empty book."""
        book = self.book(native)
        book.clear()
        self.unsynced.discard(native)
        self.status(self.instrument(native).symbol, "snapshot", "", recv_ns, event_ms)
        return book

    def begin_snapshot_l3(self, native: str, recv_ns: int, event_ms: int = 0) -> L3Book:
        """A (re)loaded level-3 book: status ``snapshot`` with reason ``lob_l3`` first (consumers
        clear their copy of the market's level-3 book), then the empty book."""
        book = self.l3book(native)
        book.clear()
        self.unsynced_l3.discard(native)
        self.status(self.instrument(native).symbol, "snapshot", LOB_L3, recv_ns, event_ms)
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
        Raises ValueError (from the book) on a malformed number, with NOTHING applied (every
        level is parsed first): the caller resyncs.
        """
        if levels.__class__ is not list and levels.__class__ is not tuple:
            levels = list(levels)
        symbol = self._symbols.get(native) or self.symbol_of(native)
        return book.apply_sides(side, levels, None, self.rows("lob"), Lob, self.exchange, symbol, event_ms, atom_us)

    def emit_spread(self, native: str, book: L2Book, event_ms: int, atom_us: int) -> None:
        """The top of ``book`` as a ``spread`` event (written by the book: ``L2Book.spread_into``)."""
        book.spread_into(self.rows("spread"), Spread, self.exchange, self.instrument(native).symbol, event_ms, atom_us)

    def truncate(self, native: str, book: L2Book, depth: int, event_ms: int, atom_us: int) -> None:
        """Keep ``depth`` levels a side, publishing the dropped ones as removals (bids first,
        best first)."""
        symbol = self._symbols.get(native) or self.symbol_of(native)
        book.apply_sides(BID, None, None, self.rows("lob"), Lob, self.exchange, symbol, event_ms, atom_us, depth)

    def resync(self, conn: Connection, native: str, reason: str, recv_ns: int, book: str = LOB) -> None:
        """The book of ``native`` (``book``: ``lob``, or ``lob_l3`` for its level-3 book) can no
        longer be trusted: say why (a level-3 reason starts ``lob_l3: ``), drop it, reload it
        (``resubscribe``)."""
        if book == LOB:
            unsynced, books, said = self.unsynced, self.books, reason
        else:
            unsynced, books, said = self.unsynced_l3, self.l3books, f"{book}: {reason}"
        if native in unsynced:
            return  # already reloading
        self.metrics.resyncs += 1
        unsynced.add(native)
        dropped = books.get(native)
        if dropped is not None:
            dropped.clear()
        symbol = self.instrument(native).symbol
        self._withdraw(symbol, (LOB, "spread") if book == LOB else (book,))
        self.status(symbol, "resync", said, recv_ns)
        log.warning("%s %s: resync (%s)", self.exchange, native, said)
        if book == LOB:
            self.resubscribe(conn, native)
        else:
            self.resubscribe(conn, native, book)

    def _withdraw(self, symbol: str, topics: tuple[str, ...]) -> None:
        """Take back what the current frame produced for ``symbol``'s book (levels applied before
        the check that failed, as a checksum compared after its update): no level of a book found
        corrupt is published. Only where records wait for the frame's end (a pipeline's rows)."""
        for topic in topics:
            rows = self.rows(topic)
            if isinstance(rows, list) and rows:  # (a list, or a RecordRows)
                kept = [r for r in rows if r[1] != symbol]
                if len(kept) != len(rows):
                    rows[:] = kept
            elif rows.__class__ is AvroRows:  # the frame's lob events as encoded values
                rows.withdraw(f"{self.exchange}:{symbol}".encode())

    def book_failed(self, conn: Connection, native: str, kind: str, detail: str, data: bytes, recv_ns: int,
                    book: str = LOB) -> None:
        """A book message of ``native`` that cannot be applied (malformed, a bad level): counted
        bad input, and the book resyncs with the reason ``kind: detail``."""
        self.bad_input(kind, detail, data)
        self.resync(conn, native, f"{kind}: {detail}", recv_ns, book)

    def resync_crossed(self, conn: Connection, native: str, book: L2Book, recv_ns: int,
                       snapshot: bytes | None = None) -> bool:
        """A crossed book (best bid >= best ask, ``atomfast.kit.levels.crossed``) cannot be
        trusted: resync with the reason. Where it was just loaded from a snapshot (``snapshot``:
        the snapshot's bytes, ``b""`` where they are not at hand), the snapshot is first counted
        as bad input (``crossed snapshot``, ``<native>: <reason>``) and the resync's reason is
        ``snapshot <reason>``. Whether it was crossed."""
        reason = crossed(book)
        if not reason:
            return False
        if snapshot is not None:
            self.bad_input("crossed snapshot", f"{native}: {reason}", snapshot)
            reason = f"snapshot {reason}"
        self.resync(conn, native, reason, recv_ns)
        return True

    def gap_crossed(self, conn: Connection, native: str, book: L2Book, recv_ns: int) -> bool:
        """A diff that leaves ``book`` crossed (``atomfast.kit.levels.crossed``) shows a lost
        message: a gap (``Scheme.gap``, the crossed reason). Whether it was crossed."""
        reason = crossed(book)
        if reason:
            self.gap(conn, native, reason, recv_ns)
            return True
        return False

    def verify_checksum(self, conn: Connection, native: str, expected, got: int, recv_ns: int,
                        book: str = LOB) -> bool:
        """The exchange's checksum of a book (``expected``) against the book's own (``got``):
        counted in ``metrics.checksum_ok``, or a ``checksum_failed`` (the book resyncs). Whether
        they match."""
        if got == expected:
            self.metrics.checksum_ok += 1
            return True
        self.checksum_failed(conn, native, expected, got, recv_ns, book)
        return False

    def checksum_failed(self, conn: Connection, native: str, expected, got: int, recv_ns: int,
                        book: str = LOB) -> None:
        """The book of ``native`` does not have the exchange's checksum: counted in
        ``metrics.checksum_failed``, and the book resyncs (``checksum mismatch: exchange
        <expected>, book <got>``)."""
        self.metrics.checksum_failed += 1
        self.resync(conn, native, f"checksum mismatch: exchange {expected}, book {got}", recv_ns, book)

    def gap(self, conn: Connection, native: str, reason: str, recv_ns: int, book: str = LOB,
            kind: str = "gap") -> None:
        """A break in the venue's sequence (a lost, repeated or reordered message): counted in
        ``metrics.gaps``, and the book resyncs with the reason ``kind: reason`` (``kind``: the
        venue's word for it, "gap" unless it says otherwise)."""
        self.metrics.gaps += 1
        self.resync(conn, native, f"{kind}: {reason}", recv_ns, book)

    def bad_input(self, kind: str, detail: str, data: bytes) -> None:
        self.metrics.errors.report(f"{self.exchange}: {kind}", detail, data)

    def decode_unrouted(self, data: bytes, decoder, invalid: str = "unknown message"):
        """A frame no route of the venue's ``dispatch`` took (its ``fallback`` reads it), decoded
        with ``decoder`` (the venue's answers, errors, heartbeats). None where it cannot be read,
        counted as bad input: ``not a JSON object`` (it does not start with ``{``), ``malformed
        JSON``, or ``invalid`` (JSON of no shape ``decoder`` takes: "unknown message" unless the
        venue says otherwise)."""
        if data[:1] != b"{":
            self.bad_input("not a JSON object", "frame does not start with {", data)
            return None
        try:
            return decoder.decode(data)
        except msgspec.ValidationError as exc:
            self.bad_input(invalid, str(exc), data)
        except MALFORMED as exc:
            self.bad_input("malformed JSON", str(exc), data)
        return None


__all__ = [
    "ASK",
    "BID",
    "BOOK_ERRORS",
    "CROSSED",
    "DECODE_ERRORS",
    "Dispatch",
    "LOB",
    "LOB_L3",
    "MALFORMED",
    "TOP_CHANGED",
    "Connection",
    "ConnectionPlan",
    "Instrument",
    "RestEndpoint",
    "Routes",
    "Scheme",
    "remember_listing",
    "SIDE_NAMES",
    "UNKNOWN",
    "WebsocketEndpoint",
]
