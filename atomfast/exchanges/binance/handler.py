"""What the three Binance schemes share: combined-stream dispatch, subscriptions, the local order
book sync (diff depth + REST snapshot), trades, tickers, candles, funding and open interest.

Dispatch: every market-data frame is ``{"stream":"<symbol>@<channel>...","data":{...}}``; the
byte after the ``@`` names the kind (depth, trade, aggTrade, bookTicker, kline, markPrice), and
the frame is decoded once into that kind's Struct. Anything else (subscription answers, errors,
``serverShutdown``, a wrapper with its keys in another order, garbage) takes the tolerant slow
path, which classifies it and counts bad input.

Book sync (developers.binance.com "How to manage a local order book correctly", spot and
futures pages), per market:

1. Diff-depth events are buffered until the book is live; the first buffered event fetches the
   REST snapshot (``conn.fetch(rest_url + depth_path?symbol=X&limit=1000)``; the answer comes to
   ``on_rest``; replay hands over the capture's recorded answer, or delivers an inline one with
   url ``""``). Events arriving while the request is in flight are buffered.
2. Snapshot: buffered events it covers are dropped (spot: ``u <= lastUpdateId``; futures:
   ``u < lastUpdateId``). If the first remaining event does not reach back to the snapshot
   (spot: ``U > lastUpdateId + 1``; futures: ``U > lastUpdateId`` and ``pu != lastUpdateId``),
   the snapshot is older than the stream we hold: it is discarded and a fresh one fetched (at most
   ``max_snapshot_attempts`` in a row, then the connection is reconnected). A failed request
   (``on_rest_error``) is asked again by the next depth event, ``retry_delay_ns`` (doubling) of
   receive time later. An inline answer (url ``""``) goes to the one market waiting for one.
3. Otherwise status ``snapshot``, the levels (``lob`` events), then the buffered events through
   the live rules below.
4. Live: spot: an event with ``u <= `` the book's id is stale and ignored; ``U > id + 1`` is a gap;
   otherwise applied (``U == id + 1`` in a healthy stream). Futures (USD-M, COIN-M): ``pu`` must
   equal the previous event's ``u``; the first event after the snapshot must straddle it
   (``U <= lastUpdateId <= u``, or continue it exactly: ``pu == lastUpdateId``). A gap:
   ``metrics.gaps += 1``, ``resync`` (status ``resync``, book dropped, nothing published for the
   market), a fresh snapshot fetched at once, the event that revealed the gap buffered for it.

A whole message goes to the book in one call (``L2Book.apply_sides``): every level is parsed
by its C parser (price > 0, size >= 0, no sign) before any is applied, and the ``lob`` events
are built there (floats: the ticks over the scale, the same double as ``float(text)``). A malformed depth message resyncs its market when live; while buffering it
empties the buffer (the lost event can only be covered by a snapshot taken after it).

The levels of a depth update and of a REST snapshot are decoded as their JSON text
(``msgspec.Raw``) and read by the book from the text (``L2Book.check_json_sides``): no list,
tuple or str per level. A text that is not plain ``[price, size]`` strings (escapes, another
shape) is decoded with its levels, as it always was, so what is malformed is counted as before;
a live update is checked, applied and its ``spread`` written in C (``atomfast.kit.booksync``:
``L2Diff`` and the route ``_depth_route``). A snapshot's text is read once, when it comes
(``on_rest``: ``L2Book.check_json_sides_wide``, which also takes the deep levels' sizes of 2**53
ticks or more, e.g. ``"332200000"`` at 8 decimals, their rows' floats from the strings), and
applied by ``_load``.

Open interest has no stream: it is polled (``conn.fetch`` of ``open_interest_path`` for each
market of the connection that carries the ``openInterest`` pseudo channel) when the connection
opens, then every ``open_interest_interval`` s from the feed's timer (``on_timer``, every
``timer_interval`` s). ``ping_message`` (None: the feed sends a websocket PING, whose PONG keeps
quiet connections from the silence watchdog) also looks at the poll's schedule, as it did before
the timer hook existed.
"""
from __future__ import annotations

import logging
import re
import time
from typing import ClassVar, Sequence
from urllib.parse import parse_qs, urlsplit

import msgspec
from msgspec import Raw

from ..._book import json_levels
from ...book import BID
from ...kit.booksync import BookSync, Chained, Contiguous, L2Diff
from ...kit.dispatch import ByteAfter
from ...kit.shapes import Quote, Trade
from ...events import BUY, SELL, Candle, FundingRate, Liquidation, Lob, OpenInterest
from ...scheme import (BOOK_ERRORS, DECODE_ERRORS, MALFORMED, TOP_CHANGED, Connection, ConnectionPlan, Dispatch,
                       Instrument, RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from . import messages as m
from .parse import MAX_MS, MAX_VALUE, guess_futures, guess_spot, ms_ok, native_of_stream, parse_futures_listing, parse_spot_listing

log = logging.getLogger("atomfast.exchanges.binance")


_D, _T, _A, _B, _K, _M, _F = (ord(c) for c in "dtabkmf")
#: the kind of an unwrapped payload, by its event type ``e``
_EVENT_KINDS = {"depthUpdate": "depth", "trade": "trade", "aggTrade": "aggTrade", "bookTicker": "bookTicker",
                "kline": "kline", "markPriceUpdate": "markPrice", "forceOrder": "forceOrder", "serverShutdown": "serverShutdown"}

OPEN_INTEREST = "openInterest"  # pseudo channel: a REST poll, not a stream
#: a market name as Binance writes it (``[A-Z0-9_]``, ASCII), nothing a URL query escapes
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+").fullmatch
_SIDES = {"BUY": BUY, "SELL": SELL}


#: the head of a depth snapshot as Binance writes it (spot: ``lastUpdateId`` only; futures add
#: ``E``, ``T``; COIN-M then ``symbol``, ``pair``), up to its bids' ``[``: JSON integers of at most
#: 18 digits (no sign, no leading zero), names of ``[A-Za-z0-9_]``
_SNAPSHOT_HEAD = re.compile(
    rb'\{"lastUpdateId":(0|[1-9][0-9]{0,17})'
    rb'(?:,"E":(0|[1-9][0-9]{0,17}),"T":(0|[1-9][0-9]{0,17}))?'
    rb'(?:,"symbol":"([A-Za-z0-9_]*)","pair":"[A-Za-z0-9_]*")?'
    rb',"bids":(?=\[)').match
_ASKS = b'],"asks":'


def _snapshot_as_sent(body: bytes) -> m.DepthSnapshotText | None:
    """A depth snapshot written exactly as Binance writes it (``_SNAPSHOT_HEAD``, the bids, then
    ``],"asks":``, the asks, ``}`` last), read without a JSON decoder: its ids, times and symbol,
    and its two sides' texts (views of ``body``; the book reads them, ``check_json_sides_wide``,
    which holds them to be arrays of plain ``[price, size]`` strings: then ``body`` is the JSON
    object ``snapshot_text`` decodes to the same values). None for any other text (decoded)."""
    if body.__class__ is not bytes or body[-2:] != b"]}":
        return None
    head = _SNAPSHOT_HEAD(body)
    if head is None:
        return None
    start = head.end()
    # the bids end at the first ``],"asks":`` (it holds a quote: not inside a plain string, and
    # not between a plain text's levels; where it is something else, the bids' text is no array
    # of levels and the book refuses it)
    end = body.find(_ASKS, start)
    if end < 0:
        return None
    view = memoryview(body)
    uid, e, t, symbol = head.groups()
    return m.DepthSnapshotText(int(uid), Raw(view[start:end + 1]), Raw(view[end + len(_ASKS):-1]),
                               int(e) if e is not None else 0, int(t) if t is not None else 0,
                               symbol.decode() if symbol is not None else "")


class BinanceScheme(Scheme):
    """Base of ``BinanceSpotScheme``, ``BinanceFuturesScheme`` and ``BinanceDeliveryScheme``."""

    snapshot_limit: ClassVar[int] = 1000
    #: futures continuity (``pu`` == previous ``u``); spot: ``U`` == previous ``u`` + 1
    pu_chain: ClassVar[bool] = False
    #: Binance caps a connection at 1024 streams and 5 (spot) / 10 (futures) incoming messages
    #: a second: 200 streams a connection, subscribed in ONE message at connect
    symbols_per_message = 200
    subscriptions_per_connection = 200
    #: the server pings every 20 s (spot) / 3 min (futures); our ping's PONG keeps quiet
    #: connections (a few illiquid markets) clear of the silence watchdog
    ping_interval = 10.0
    silence_timeout = 30.0
    open_interest_interval: ClassVar[float] = 30.0
    #: the feed's timer looks at the open-interest poll's schedule this often
    timer_interval = 1.0
    max_buffer: ClassVar[int] = 10_000
    max_snapshot_attempts: ClassVar[int] = 10
    #: after a failed snapshot request, wait this long (ns of receive time, doubling) before the next
    retry_delay_ns: ClassVar[int] = 1_000_000_000

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        #: the books' sync: REST snapshot + buffered diffs, continuity by ``pu`` (futures) or
        #: ``U``/``u`` (spot); a live diff is checked and applied in C (``L2Diff``: the levels
        #: ``b``/``a``, the time ``T`` (futures), else ``E``; a time not in [0, 10**14) ms or a
        #: level the book refuses: a malformed message, the book resyncs)
        self.book_sync = BookSync(self, Chained("U", "u", "pu") if self.pu_chain else Contiguous("U", "u"),
                                  self._request_snapshot,
                                  L2Diff(self, "b", "a", ("T", "E"), MAX_MS, "malformed depth message",
                                         "malformed book level", m.levels),
                                  self._load, max_buffer=self.max_buffer, max_attempts=self.max_snapshot_attempts,
                                  retry_delay_ns=self.retry_delay_ns)
        #: native -> its sync state (``MarketSync``: live, last, buffer, ...)
        self.sync = self.book_sync.markets
        #: the depth route (``dispatch``): compiled, straight into the sync for a market it holds
        #: (with ``pu`` on futures); ``_on_depth`` for the others
        self._depth_route = self.book_sync.route(self._on_depth, "s", "U", "u", "pu", self.pu_chain,
                                                 self._depth_decoded)
        super().__init__(emit, metrics, instruments, symbols, channels)  # (binds dispatch: after the route)
        #: conn.id -> (conn, natives) polled for open interest
        self._oi: dict[int, tuple[Connection, list[str]]] = {}
        self._oi_next = 0.0
        self._next_id = 0
        #: the text snapshot whose levels ``on_rest`` just had the book read (``_load`` applies them)
        self._checked: m.DepthSnapshotText | None = None

    # --- symbols ---------------------------------------------------------------------------
    def _symbol(self, native: str, data: bytes = b"") -> str | None:
        """The normalised symbol of a native name; None (bad input counted: ``known``) if it is none."""
        return self._symbols.get(native) or (self.symbol_of(native) if self.known(native, data) else None)

    # --- connections and subscriptions ------------------------------------------------------
    def stream_names(self, channel: str, natives: list[str]) -> list[str]:
        return [f"{n.lower()}@{channel}" for n in natives]

    def _subscribe(self, streams: list[str]) -> str:
        self._next_id += 1
        return m.encode({"method": "SUBSCRIBE", "params": streams, "id": self._next_id}).decode()

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        if channel == OPEN_INTEREST:
            return []
        return [self._subscribe(self.stream_names(channel, natives))]

    def subscribe_plan(self, plan: ConnectionPlan) -> list[str | bytes]:
        """ONE ``SUBSCRIBE`` for all the connection's streams (``symbols_per_message`` streams a
        message): Binance disconnects a client sending more than 5 (spot) / 10 (futures)
        messages a second. ``openInterest`` is a poll, not a stream."""
        streams: list[str] = []
        for channel, natives in plan.subscriptions:
            if channel != OPEN_INTEREST:
                streams.extend(self.stream_names(channel, natives))
        step = self.symbols_per_message
        return [self._subscribe(streams[i : i + step]) for i in range(0, len(streams), step)]

    def on_open(self, conn: Connection, recv_ns: int) -> None:
        """Connected: the subscription (``subscribe_plan``), and the first open-interest poll."""
        super().on_open(conn, recv_ns)
        oi = [n for channel, natives in conn.plan.subscriptions if channel == OPEN_INTEREST for n in natives]
        if oi and self.rest_endpoint.routes.open_interest:
            self._oi[conn.id] = (conn, oi)
            self._poll_open_interest(conn, oi)
            self._oi_next = max(self._oi_next, time.monotonic() + self.open_interest_interval)

    def on_close(self, conn: Connection, reason: str, recv_ns: int) -> None:
        super().on_close(conn, reason, recv_ns)
        self._oi.pop(conn.id, None)
        for channel, natives in conn.plan.subscriptions:
            if channel.startswith("depth"):
                for native in natives:
                    # a request still in flight stays pending: its answer is checked against
                    # what the new connection buffers
                    self.book_sync.suspend(native)

    def on_timer(self, conns, now_ns: int) -> None:
        """The open-interest poll: every ``open_interest_interval`` s, each open connection
        carrying ``openInterest`` asks for its markets."""
        if not self._oi:
            return
        now = time.monotonic()
        if now < self._oi_next:
            return
        polled = False
        for conn in conns:
            entry = self._oi.get(conn.id)
            if entry is not None and entry[0] is conn:
                self._poll_open_interest(conn, entry[1])
                polled = True
        if polled:
            self._oi_next = now + self.open_interest_interval

    def ping_message(self) -> str | bytes | None:
        # the open-interest poll is the timer's (on_timer); the ping looks at its schedule too,
        # as before the timer hook existed (test_open_interest_poll_and_answers drives it so)
        self.on_timer([conn for conn, _natives in self._oi.values()], time.time_ns())
        return None  # the feed sends a websocket PING frame

    def _poll_open_interest(self, conn: Connection, natives: list[str]) -> None:
        base = self.rest_url + self.rest_endpoint.routes.open_interest
        for native in natives:
            conn.fetch(f"{base}?symbol={native}")

    # --- frames -------------------------------------------------------------------------------
    # Every market-data frame is ``{"stream":"<symbol>@<channel>...","data":{...}}``: the byte after
    # the ``@`` names the kind (read in C: ``ByteAfter``; diff depth is "depth@..." or "depth",
    # "depth5"/"depth20" (partial) are not ours), and the frame is decoded once into that kind's
    # Struct. Anything else takes the tolerant slow path (``_slow``), which classifies it and
    # counts bad input.
    # Trades and book tickers are declared shapes (atomfast.kit.shapes), executed in C. A trade's
    # ``m``: the buyer is the maker, so the taker sold; a bookTicker's time is ``T`` (futures),
    # else ``E``, else (spot: neither) the time of receipt. A price or size not in [0, 1e15), a
    # trade at price 0, a time not in [0, 10**14) ms: a malformed trade or ticker.
    dispatch = Dispatch(
        {_D: "_depth_route",
         _T: Trade(symbol="s", price="p", size="q", id="t", time="T", buyer_maker="m"),
         _A: Trade(symbol="s", price="p", size="q", id="a", time="T", buyer_maker="m"),
         _B: Quote(symbol="s", bid="b", bid_size="B", ask="a", ask_size="A", time=("T", "E"), or_receipt=True),
         _K: "_on_kline", _M: "_on_mark_price", _F: "_on_force_order"},
        prefilter=ByteAfter(b'{"stream":"', b"@", end=96, only={_D: (b"depth@", b'depth"')}),
        unwrap="data",
        decoders={_D: m.depth_frame, _T: m.trade_frame, _A: m.agg_trade_frame, _B: m.book_ticker_frame,
                  _K: m.kline_frame, _M: m.mark_price_frame, _F: m.force_order_frame},
        fallback="_slow",  # diagnoses a frame that failed to decode too (and resyncs a book message)
    )

    def _slow(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """Not a well-formed market-data frame of a known kind: classify it."""
        try:
            p = m.probe.decode(data)
        except msgspec.ValidationError as exc:
            self.bad_input("unknown message", str(exc), data)
            return
        except MALFORMED as exc:
            self.bad_input("malformed JSON", str(exc), data)
            return
        if p.stream is not None or len(p.data):
            self._payload(conn, p.stream or "", bytes(p.data), data, recv_ns)
        elif p.e is not None:
            self._payload(conn, "", data, data, recv_ns)
        elif isinstance(p.event, dict) and p.event.get("e") == "serverShutdown":
            conn.reconnect("server shutdown")
        elif p.error is not None or p.code is not None:
            detail = p.error if p.error is not None else {"code": p.code, "msg": p.msg}
            self.bad_input("exchange error", repr(detail)[:200], data)
        elif p.id is not None:
            if p.result is None:
                self.status("", "subscribed", f"request {p.id}", recv_ns)
            # other answers (LIST_SUBSCRIPTIONS, GET_PROPERTY): nothing to publish
        else:
            self.bad_input("unknown message", "not a stream message, answer or error", data)

    @staticmethod
    def _kind(stream: str, event: str | None) -> str:
        if stream:
            _, _, channel = stream.partition("@")
            if channel == "depth" or channel.startswith("depth@"):
                return "depth"
            if channel in ("trade", "aggTrade", "bookTicker"):
                return channel
            if channel.startswith("kline_"):
                return "kline"
            if channel.startswith("markPrice"):
                return "markPrice"
            if channel == "forceOrder":
                return "forceOrder"
            return ""
        return _EVENT_KINDS.get(event or "", "")

    #: a payload's kind -> its decoder and its route in ``dispatch``
    _PAYLOADS: ClassVar[dict[str, tuple]] = {
        "depth": (m.depth, _D),
        "trade": (m.trade, _T),
        "aggTrade": (m.agg_trade, _A),
        "bookTicker": (m.book_ticker, _B),
        "kline": (m.kline, _K),
        "markPrice": (m.mark_price, _M),
        "forceOrder": (m.force_order, _F),
    }

    def _payload(self, conn: Connection, stream: str, payload: bytes, data: bytes, recv_ns: int) -> None:
        """A payload whose kind comes from its stream name (or, unwrapped, its ``e``)."""
        event = None
        if not stream:
            try:
                event = m.probe.decode(payload).e
            except DECODE_ERRORS:
                event = None
        kind = self._kind(stream, event)
        if kind == "serverShutdown":
            conn.reconnect("server shutdown")
            return
        entry = self._PAYLOADS.get(kind)
        if entry is None:
            self.bad_input("unknown stream", repr(stream or event)[:100], data)
            return
        try:
            msg = entry[0].decode(payload)
        except DECODE_ERRORS as exc:
            self.bad_input(f"malformed {kind} message", str(exc), data)
            if kind == "depth":
                self._depth_lost(conn, stream, payload, recv_ns)
            return
        self.route(entry[1])(conn, msg, data, recv_ns)

    def _depth_lost(self, conn: Connection, stream: str, payload: bytes, recv_ns: int) -> None:
        """A depth message we could not read: its market's book cannot be trusted."""
        native = native_of_stream(stream) if stream else ""
        if not native:
            try:
                native = m.probe.decode(payload).s or ""
            except DECODE_ERRORS:
                native = ""
        self.book_sync.lost(conn, native, recv_ns)

    # --- book sync (atomfast.kit.booksync) -------------------------------------------------------
    # developers.binance.com "How to manage a local order book correctly" (spot and futures
    # pages): buffer the diffs, fetch the REST snapshot, drop what it covers (spot: u <=
    # lastUpdateId; futures: u < lastUpdateId), the first remaining diff straddles it, then spot
    # U = previous u + 1 (an overlap U <= id < u is applied), futures pu = previous u.
    def snapshot_url(self, native: str) -> str:
        endpoint = self.rest_endpoint
        path = endpoint.routes.snapshot
        if _PLAIN_NAME(native) and "?" not in path:  # (what ``url`` writes: nothing to escape)
            return f"{endpoint.base}{path}?symbol={native}&limit={self.snapshot_limit:d}"
        return endpoint.url(path, symbol=native, limit=self.snapshot_limit)

    def _request_snapshot(self, conn: Connection, native: str) -> None:
        conn.fetch(self.snapshot_url(native))

    def _on_depth(self, conn: Connection, d: m.Depth, data: bytes, recv_ns: int) -> None:
        """A depth message the compiled route (``_depth_route``) did not take: a market without
        sync state yet (its name checked), or a futures update without ``pu``."""
        native = d.s
        if native not in self.sync and self._symbol(native, data) is None:
            return
        if self.pu_chain and d.pu is None:
            self.bad_input("malformed depth message", "futures depth update without pu", data)
            self.book_sync.market(native, conn)
            self.book_sync.lost(conn, native, recv_ns)
            return
        self.book_sync.diff(conn, native, d, d.U, d.u, d.pu, data, recv_ns)

    def _depth_decoded(self, conn: Connection, d: m.DepthText, data: bytes, recv_ns: int) -> None:
        """A depth frame whose levels are not plain ``[price, size]`` strings (escapes, another
        shape): decoded with its levels (``DepthFrame``), as the route's decoder did before the
        levels were read from the text; one that decoder refuses goes to ``_slow``, as the Router
        sends a frame its route's decoder refuses."""
        try:
            frame = m.depth_frame_levels.decode(data)
        except DECODE_ERRORS:
            self._slow(conn, data, recv_ns)
            return
        self._on_depth(conn, frame.data, data, recv_ns)

    #: COIN-M's depth updates name their pair (``ps``), USD-M's do not
    pair_field: ClassVar[bool] = False

    @classmethod
    def foreign(cls, data: bytes) -> str:
        """Spot depth updates have no ``pu``; futures ones do, and COIN-M's carry ``ps``."""
        if b'"depthUpdate"' not in data[:120]:
            return ""
        if (b'"pu":' in data) != cls.pu_chain:
            return "a futures depth update (it has pu)" if cls.pu_chain is False else "a spot depth update (no pu)"
        if (b'"ps":' in data) != cls.pair_field:
            return "a COIN-M depth update (it has ps)" if not cls.pair_field else "a USD-M depth update (no ps)"
        return ""

    def resubscribe(self, conn: Connection, native: str) -> None:
        """Reload one book: a fresh REST snapshot (the stream itself is fine)."""
        self.book_sync.restart(conn, native)

    def on_rest(self, url: str, body: bytes, recv_ns: int) -> None:
        oi_path = self.rest_endpoint.routes.open_interest
        if oi_path and oi_path in url:
            self._on_open_interest(url, body, recv_ns)
            return
        native = self._native_of_url(url)
        st = self.sync.get(native)
        snap = None
        if st is not None and not st.live:
            # the common case: an answer for a market whose book waits for it (the sync holds
            # it: its name is known). Its levels are read by the book here, once (shape and
            # numbers: the reading kept for ``_load``'s apply); where the book does not read
            # them all from the text, the way below (``_decode_snapshot``), without the book
            # made here for the reading (``_load`` makes it)
            snap = _snapshot_as_sent(body)
            if snap is None:
                try:
                    snap = m.snapshot_text.decode(body)
                except DECODE_ERRORS:
                    snap = None
        if snap is not None:
            made = native not in self.books
            if self.book(native).check_json_sides_wide(snap.bids, snap.asks):
                self._checked = snap
                self.book_sync.snapshot(native, snap.lastUpdateId, snap, body, recv_ns)
                if self._checked is not None:  # not loaded (``_load`` takes it): no book made
                    self._checked = None
                    if made:
                        self.books.pop(native, None)
                return
            if made:
                del self.books[native]
        try:  # (decoded as it always was)
            snap = self._decode_snapshot(body)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed snapshot", str(exc), body)
            self.book_sync.unusable(native or self.book_sync.awaiting())
            return
        native = native or snap.symbol or self.book_sync.awaiting()
        if not native:
            self.bad_input("snapshot for an unknown market", f"url {url!r}", body)
            return
        if native not in self.sync and self._symbol(native, body) is None:
            return
        self.book_sync.snapshot(native, snap.lastUpdateId, snap, body, recv_ns)

    def on_rest_error(self, url: str, exc: Exception, recv_ns: int) -> None:
        """A snapshot request failed (counted as "rest error" by the feed): the next depth event
        asks again, after ``retry_delay_ns`` (doubling with the attempts)."""
        if self.rest_endpoint.routes.snapshot in url:
            self.book_sync.request_failed(self._native_of_url(url), recv_ns)

    @staticmethod
    def _native_of_url(url: str) -> str:
        """The ``symbol`` of a snapshot request's query (the first, as ``parse_qs`` gives it)."""
        if not url:
            return ""
        head, sep, tail = url.partition("?symbol=")
        if sep and "?" not in head and "#" not in head:
            name = tail.partition("&")[0]
            if _PLAIN_NAME(name):  # (the query's first field: nothing in it for parse_qs to unquote)
                return name
        values = parse_qs(urlsplit(url).query).get("symbol")
        return values[0] if values else ""

    @staticmethod
    def _decode_snapshot(body: bytes) -> m.DepthSnapshotText | m.DepthSnapshot:
        """A REST snapshot: its levels as the JSON text where they are plain ``[price, size]``
        strings (the book reads the text: ``_load``), else decoded (``DepthSnapshot``: its decode
        error where the answer is malformed, as the one decoder said before the text path)."""
        try:
            snap = m.snapshot_text.decode(body)
        except DECODE_ERRORS:
            return m.snapshot.decode(body)
        if json_levels(snap.bids) and json_levels(snap.asks):
            return snap
        return m.snapshot.decode(body)

    def _load(self, native: str, snap: m.DepthSnapshotText | m.DepthSnapshot, body: bytes, recv_ns: int) -> bool:
        book = self.book(native)
        # the whole snapshot parsed before the book is cleared for it: from the text where the
        # book reads it all, else (a level it refuses says why) from the decoded levels
        text = snap.__class__ is m.DepthSnapshotText
        checked, self._checked = self._checked is snap, None  # (read by the book in on_rest)
        if text and not checked and not book.check_json_sides_wide(snap.bids, snap.asks):
            snap, text = m.snapshot.decode(body), False
        if not text:
            try:
                book.check_sides(snap.bids, snap.asks)
            except BOOK_ERRORS as exc:
                self.bad_input("malformed snapshot", str(exc), body)
                return False
        ms = snap.T or snap.E or recv_ns // 1_000_000
        if not ms_ok(ms):
            self.bad_input("malformed snapshot", f"time {ms}", body)
            return False
        atom_us = recv_ns // 1000
        book = self.begin_snapshot(native, recv_ns, ms)
        symbol = self._symbols.get(native) or self._symbol(native) or native
        apply = book.apply_json_sides if text else book.apply_sides
        flags = apply(BID, snap.bids, snap.asks, self.rows("lob"), Lob, self.exchange, symbol, ms, atom_us)
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, ms, atom_us)
        return True

    # --- trades, tickers, candles, funding, open interest --------------------------------------
    def _on_kline(self, conn: Connection, msg: m.Kline, data: bytes, recv_ns: int) -> None:
        symbol = self._symbols.get(msg.s) or self._symbol(msg.s, data)
        if symbol is None:
            return
        k = msg.k
        try:
            o, h, lo, c, v = float(k.o), float(k.h), float(k.l), float(k.c), float(k.v)
        except ValueError:
            o = -1.0
            h = lo = c = v = 0.0
        # (written out, not a generator over the five: a kline is checked in a few opcodes)
        if not (0.0 <= o < MAX_VALUE and 0.0 <= h < MAX_VALUE and 0.0 <= lo < MAX_VALUE and 0.0 <= c < MAX_VALUE
                and 0.0 <= v < MAX_VALUE and 0 <= k.n < 1 << 31 and 0 <= k.t <= k.T < MAX_MS
                and 0 <= msg.E < MAX_MS and 0 < len(k.i) <= 8):
            self.bad_input("malformed kline", repr(k)[:200], data)
            return
        # Binance's close time is the candle's last ms: ``end`` is exclusive (close time + 1), as
        # on the other venues (end - start == the interval)
        self.emit("candle", Candle(self.exchange, symbol, k.t, k.T + 1, k.i, k.n, k.x, o, h, lo, c, v, msg.E,
                                   recv_ns // 1000))

    def _on_mark_price(self, conn: Connection, msg: m.MarkPrice, data: bytes, recv_ns: int) -> None:
        if not msg.r or not msg.T:
            return  # a delivery contract (COIN-M quarterly): no funding
        symbol = self._symbols.get(msg.s) or self._symbol(msg.s, data)
        if symbol is None:
            return
        try:
            mark = float(msg.p)
            rate = float(msg.r)
        except ValueError:
            mark = -1.0
            rate = 0.0
        if not (0.0 <= mark < MAX_VALUE and -1.0 < rate < 1.0 and ms_ok(msg.T) and ms_ok(msg.E)):
            self.bad_input("malformed markPrice", f"{msg.p!r} {msg.r!r} T={msg.T}", data)
            return
        # ``r`` is the rate of the running period, settled at T: Binance's estimate of the coming
        # payment. The stream carries no other prediction: predicted_rate repeats it
        self.emit("funding_rate", FundingRate(self.exchange, symbol, mark, rate, msg.T, rate, msg.E,
                                              recv_ns // 1000))

    def _on_force_order(self, conn: Connection, msg: m.ForceOrder, data: bytes, recv_ns: int) -> None:
        o = msg.o
        symbol = self._symbols.get(o.s) or self._symbol(o.s, data)
        if symbol is None:
            return
        side = _SIDES.get(o.S)
        try:
            price, size = float(o.p), float(o.q)
            average = float(o.ap) if o.ap else 0.0
            filled = float(o.z) if o.z else 0.0
        except ValueError:
            side = None
        if (side is None or not (0.0 < price < MAX_VALUE and 0.0 < size < MAX_VALUE and 0.0 <= average < MAX_VALUE
                                 and 0.0 <= filled <= size) or not ms_ok(msg.E) or not (o.T == 0 or ms_ok(o.T))
                or len(o.X) > 32):
            self.bad_input("malformed forceOrder", repr(o)[:200], data)
            return
        # ``S`` is the liquidation order's side (SELL closes a long position): our ``side`` as is
        self.emit("liquidations", Liquidation(self.exchange, symbol, side, price, size, o.T or msg.E,
                                              recv_ns // 1000, "", o.X, filled, average))

    def _on_open_interest(self, url: str, body: bytes, recv_ns: int) -> None:
        try:
            ans = m.open_interest.decode(body)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed openInterest", str(exc), body)
            return
        symbol = self._symbols.get(ans.symbol) or self._symbol(ans.symbol, body)
        if symbol is None:
            return
        try:
            oi = float(ans.openInterest)
        except ValueError:
            oi = -1.0
        ms = ans.time or recv_ns // 1_000_000
        if not (0.0 <= oi < MAX_VALUE and ms_ok(ms)):
            self.bad_input("malformed openInterest", f"{ans.openInterest!r} time={ans.time}", body)
            return
        self.emit("open_interest", OpenInterest(self.exchange, symbol, oi, ms, recv_ns // 1000))




# ================================================================================================
# Spot
# Binance spot (exchange name ``binance``): ``wss://stream.binance.com:9443/stream``.
#
# Channel map (atomfast topic -> stream ``<symbol>@<channel>``): lob -> ``depth@100ms`` (diff
# depth, synced with ``/api/v3/depth?symbol=X&limit=1000``; + ``spread`` from our own book),
# trades -> ``trade``, ticker -> ``bookTicker``, candle -> ``kline_1m``. ``aggTrade`` frames (the
# recorded cryptofeed capture subscribed those) are read as trades too (``trade_id`` = the
# aggregate trade id ``a``).
#
# trades_l3: the current spot ``trade`` stream no longer carries the buyer and seller order ids
# (``b``/``a``: gone from the documentation and from the 2024 recordings), so there are no
# trades_l3 / lob_l3: trades only.
#
# Continuity: ``U`` of each event == previous ``u`` + 1 (an overlap, ``U <= id < u``, is applied as
# the current documentation's update procedure says; ``u <= id`` is stale and ignored).
# ``bookTicker`` has no time: its ``event_timestamp`` is the receive time.

class BinanceSpotScheme(BinanceScheme):
    exchange = "binance"
    default_symbols = ("BTC-USDT", "ETH-USDT")
    websocket_endpoints = (WebsocketEndpoint("wss://stream.binance.com:9443/stream"),)
    rest_endpoint = RestEndpoint("https://api.binance.com", Routes(instruments="/api/v3/exchangeInfo",
                                                                   snapshot="/api/v3/depth"))
    channels = {"lob": "depth@100ms", "trades": "trade", "ticker": "bookTicker", "candle": "kline_1m"}
    default_channels = ("lob", "trades", "ticker")
    pu_chain = False

    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_spot_listing(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_spot(native)


# ================================================================================================
# Futures
# Binance futures: USD-M (``binance-futures``) and COIN-M (``binance-delivery``).
#
# Channel map (atomfast topic -> stream ``<symbol>@<channel>``): lob -> ``depth@100ms`` (diff
# depth with ``pu``, synced with ``/fapi/v1/depth`` / ``/dapi/v1/depth?symbol=X&limit=1000``;
# + ``spread`` from our own book), trades -> ``aggTrade`` (``trade`` frames, as the hftbacktest
# recordings hold, are read too: one trade event per message, ``trade_id`` = ``t``; every ``X``
# kind is a print: MARKET, and INSURANCE_FUND / ADL where they occur), ticker -> ``bookTicker``,
# candle -> ``kline_1m``, funding_rate -> ``markPrice@1s``, open_interest -> a REST poll of
# ``/fapi/v1/openInterest`` / ``/dapi/v1/openInterest`` every ``open_interest_interval`` s (no
# stream carries it; a replayed capture has no such answers, so replays publish none),
# liquidations -> ``forceOrder`` (the latest liquidation order of a market each second; USD-M
# serves it on ``/market``).
#
# funding_rate: ``mark_price`` = ``p``, ``funding_rate`` = ``r`` (the running period's rate,
# settled at ``T``), ``next_funding_time`` = ``T``; the stream has no separate prediction, so
# ``predicted_rate`` = ``r`` too (``r`` IS Binance's estimate of the coming payment). COIN-M
# quarterly contracts have no funding (``r`` empty, ``T`` 0): no event.
#
# USD-M routes streams by path since 2026 ("Important WebSocket Change Notice"): high-frequency
# public data (depth, bookTicker, trade) on ``wss://fstream.binance.com/public``, regular market
# data (aggTrade, kline, markPrice) on ``/market``; the legacy unrouted URL no longer delivers the
# latter. ``plan()`` gives each route its own connections (``channel_urls``). COIN-M keeps one URL.
#
# Continuity: ``pu`` == previous ``u``; after a snapshot the first event must straddle it.

_CHANNELS = {
    "lob": "depth@100ms",
    "trades": "aggTrade",
    "ticker": "bookTicker",
    "candle": "kline_1m",
    "funding_rate": "markPrice@1s",
    "open_interest": OPEN_INTEREST,
    "liquidations": "forceOrder",
}


class _BinanceFutures(BinanceScheme):
    channels = dict(_CHANNELS)
    default_channels = ("lob", "trades", "ticker", "funding_rate")
    pu_chain = True

    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_futures_listing(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_futures(native)


class BinanceFuturesScheme(_BinanceFutures):
    """USD-M futures: perpetuals ``BTCUSDT`` -> ``BTC-USDT-PERP``, quarterlies
    ``BTCUSDT_240927`` -> ``BTC-USDT-20240927``."""

    exchange = "binance-futures"
    default_symbols = ("BTC-USDT-PERP", "ETH-USDT-PERP")
    websocket_endpoints = (
        WebsocketEndpoint("wss://fstream.binance.com/public/stream"),
        WebsocketEndpoint("wss://fstream.binance.com/market/stream",
                          channels=("aggTrade", "kline", "markPrice", "forceOrder", OPEN_INTEREST)),
    )
    rest_endpoint = RestEndpoint("https://fapi.binance.com", Routes(
        instruments="/fapi/v1/exchangeInfo", snapshot="/fapi/v1/depth", open_interest="/fapi/v1/openInterest"))


class BinanceDeliveryScheme(_BinanceFutures):
    """COIN-M (inverse) futures: ``BTCUSD_PERP`` -> ``BTC-USD-PERP``, ``BTCUSD_240927`` ->
    ``BTC-USD-20240927``; sizes in contracts."""

    exchange = "binance-delivery"
    pair_field = True
    default_symbols = ("BTC-USD-PERP", "ETH-USD-PERP")
    websocket_endpoints = (WebsocketEndpoint("wss://dstream.binance.com/stream"),)
    rest_endpoint = RestEndpoint("https://dapi.binance.com", Routes(
        instruments="/dapi/v1/exchangeInfo", snapshot="/dapi/v1/depth", open_interest="/dapi/v1/openInterest"))


__all__ = ["BinanceDeliveryScheme", "BinanceFuturesScheme", "BinanceScheme", "BinanceSpotScheme", "OPEN_INTEREST"]
