"""Gemini spot: ``GeminiScheme`` (the WebSocket API ``wss://ws.gemini.com``, the default) and
``GeminiV2Scheme`` (market data v2, ``wss://api.gemini.com/v2/marketdata``: the recorded capture's
protocol; Gemini's docs now list it under "archived"). Both are ``--exchange gemini``; a replay
picks the one whose url the capture recorded.

``GeminiScheme`` (AsyncAPI spec ``specs/asyncapi/websocket.yaml`` of github.com/gemini/developer-platform,
v0.10.7; developer.gemini.com/websocket/streams). Channel map (atomfast topic -> stream, per market
``<symbol>@<stream>``, all of a connection's streams in one ``subscribe`` request
``{"id": N, "method": "subscribe", "params": [...]}``, answered ``{"id": N, "status": 200}``):

- lob -> ``depth@100ms`` (L2 differential depth, the 100 ms stream; ``spread`` from our book);
- trades -> ``trade`` (``m``: the buyer is the maker, so the taker sold);
- ticker -> ``bookTicker`` (best bid/ask with sizes).
- candle: the API has no candle stream (REST ``/v2/candles`` only): not collected.

Book sync (the spec's ``DepthUpdate``): the connection is opened with ``?snapshot=-1``, so the
FIRST depth frame after a subscription is answered is the full book (``b``/``a`` absolute,
``U``..``u`` the updates it covers); every later frame is a diff. "Apply frames in order, using u
as the last applied update ID; if a frame's U skips ahead of the last applied u, discard the
book and resubscribe to resync." That is ``atomfast.kit.booksync.Contiguous``: a frame with
``u <=`` the book's id is stale (a duplicate: ignored), ``U > id + 1`` is a gap (``gaps`` + 1,
status ``resync`` "gap: U .. != previous u .. + 1", the book dropped), otherwise it is applied.
A resync unsubscribes and resubscribes the market's depth stream; its frames are dropped until
the new subscription is answered, and the first one after that answer is the new snapshot
(Gemini's SDKs do the same: the first frame after a (re)subscribe ack is the snapshot; the first
depth frame of a market never subscribed by this scheme, as in a replayed capture, is one too). A book
an update leaves crossed (best bid >= best ask) is a gap too; a malformed depth frame resyncs
(bad input).

``GeminiV2Scheme``: see its class.
"""
from __future__ import annotations

from typing import Sequence

import msgspec

from ...book import ASK, BID
from ..._book import apply_json_sided_levels, apply_sided_levels, check_json_sided_levels, check_sided_levels
from ...events import Lob, Spread
from ...kit.booksync import BookSync, Contiguous
from ...kit.shapes import SidedLevels
from ...scheme import (BOOK_ERRORS, CROSSED, DECODE_ERRORS, TOP_CHANGED, Connection, ConnectionPlan, Dispatch,
                       Instrument, RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from . import messages as m
from .parse import parse_listing, price_size, split, to_ms

REST = RestEndpoint("https://api.gemini.com", Routes(instruments="/v1/symbols"))
DEPTH = "depth@100ms"
#: market data v2's sides of a change (and of a trade's taker)
BUY, SELL = "buy", "sell"
#: update ids are int64 (the spec's ``format: int64``): a larger one is absurd
MAX_ID = 2**63


class _Probe(msgspec.Struct, gc=False):
    e: object = None
    s: object = None


_probe = msgspec.json.Decoder(_Probe)


class GeminiScheme(Scheme):
    exchange = "gemini"
    websocket_endpoints = (WebsocketEndpoint("wss://ws.gemini.com/?snapshot=-1"),)
    rest_endpoint = REST
    channels = {"lob": DEPTH, "trades": "trade", "ticker": "bookTicker"}
    default_channels = ("lob", "trades", "ticker")
    default_symbols = ("BTC-USD", "ETH-USD")
    #: streams in one subscribe request
    symbols_per_message = 100
    #: a websocket PING (ping_message None): its PONG keeps quiet markets clear of the watchdog
    ping_interval = 15.0
    silence_timeout = 45.0
    max_snapshot_attempts = 10
    dispatch = Dispatch({m.Frame: "_on_any"}, decoder=m.frame, lead=b"{", refused="_on_invalid")

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        self.book_sync = BookSync(self, Contiguous("U", "u"), self._request, self._apply, self._load,
                                  max_attempts=self.max_snapshot_attempts)
        self._next_id = 0
        #: subscribe request id -> the depth markets it (re)subscribes
        self._subs: dict[int, list[str]] = {}
        #: unsubscribe request ids not answered yet
        self._unsubs: set[int] = set()
        #: market -> the subscribe request whose answer it waits for (its depth frames dropped)
        self._awaiting: dict[str, int] = {}
        #: markets whose next depth frame is the snapshot
        self._expect: set[str] = set()

    # --- instruments --------------------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_listing(body, upper=False)

    def guess_instrument(self, native: str) -> Instrument:
        return split(native.lower())

    def _native(self, s, data: bytes) -> str | None:
        """The market of a frame's ``s`` (either case); None (bad input counted) if none."""
        if s.__class__ is not str:
            self.bad_input(self.unknown_market, repr(s)[:100], data)
            return None
        if s in self._symbols:
            return s
        low = s.lower()
        return low if self.known(low, data) else None

    # --- subscriptions ------------------------------------------------------------------------
    def _request_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _message(self, method: str, streams: list[str], rid: int) -> str:
        return m.encode({"id": rid, "method": method, "params": streams}).decode()

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        rid = self._request_id()
        if channel == DEPTH:
            self._register(rid, natives)
        return [self._message("subscribe", [f"{n}@{channel}" for n in natives], rid)]

    def subscribe_plan(self, plan: ConnectionPlan) -> list[str | bytes]:
        """One ``subscribe`` request for up to ``symbols_per_message`` streams of the plan; the
        depth markets wait for its answer (their next frame is then the snapshot)."""
        pairs = [(n, channel) for channel, natives in plan.subscriptions for n in natives]
        out: list[str | bytes] = []
        step = self.symbols_per_message
        for i in range(0, len(pairs), step):
            chunk = pairs[i : i + step]
            rid = self._request_id()
            self._register(rid, [n for n, channel in chunk if channel == DEPTH])
            out.append(self._message("subscribe", [f"{n}@{channel}" for n, channel in chunk], rid))
        return out

    def _register(self, rid: int, depth_natives: list[str]) -> None:
        if depth_natives:
            self._subs[rid] = depth_natives
            for n in depth_natives:
                self._awaiting[n] = rid
                self._expect.discard(n)

    def on_close(self, conn: Connection, reason: str, recv_ns: int) -> None:
        for channel, natives in conn.plan.subscriptions:
            if channel == DEPTH:
                for n in natives:
                    self.book_sync.suspend(n)
                    self._expect.discard(n)
                    self._awaiting.pop(n, None)
        super().on_close(conn, reason, recv_ns)

    def resubscribe(self, conn: Connection, native: str, book: str = "lob") -> None:
        """Reload one book: its depth stream unsubscribed and subscribed again (the snapshot is
        the first frame after the new subscription's answer)."""
        self.book_sync.restart(conn, native)

    def _request(self, conn: Connection, native: str) -> None:
        """The book sync asks for a snapshot: resubscribe the market's depth stream (unless a
        subscription of it is waiting for its answer: its snapshot is on the way)."""
        if native in self._awaiting:
            return
        self._expect.discard(native)
        stream = [f"{native}@{DEPTH}"]
        uid = self._request_id()
        self._unsubs.add(uid)
        conn.send(self._message("unsubscribe", stream, uid))
        rid = self._request_id()
        self._register(rid, [native])
        conn.send(self._message("subscribe", stream, rid))

    # --- frames -------------------------------------------------------------------------------
    def _on_any(self, conn: Connection, f: m.Frame, data: bytes, recv_ns: int) -> None:
        if f.e == "depthUpdate":
            self._on_depth(conn, f, data, recv_ns)
        elif f.t is not None:
            self._on_trade(conn, f, data, recv_ns)
        elif f.B is not None or f.A is not None:
            self._on_book_ticker(conn, f, data, recv_ns)
        elif f.status is not None and f.id is not None:
            self._on_answer(conn, f, data, recv_ns)
        else:
            self.bad_input("unknown message", "no known kind", data)

    def _on_invalid(self, conn: Connection, data: bytes, recv_ns: int, exc: Exception) -> None:
        """Valid JSON that failed validation: a depth frame's market resyncs."""
        try:
            p = _probe.decode(data)
        except DECODE_ERRORS:
            self.bad_input("unknown message", str(exc), data)
            return
        if p.e != "depthUpdate":
            self.bad_input("unknown message", str(exc), data)
            return
        native = self._native(p.s, data)
        if native is not None:
            self._depth_lost(conn, native, "malformed depthUpdate", str(exc), data, recv_ns)
        else:
            self.bad_input("malformed depthUpdate", str(exc), data)

    def _depth_lost(self, conn: Connection, native: str, kind: str, detail: str, data: bytes, recv_ns: int) -> None:
        """A depth frame of ``native`` that cannot be read: counted; the book cannot be trusted
        without it (the snapshot it may have been is asked for again)."""
        self.bad_input(kind, detail, data)
        if native in self._expect:
            self._expect.discard(native)
            self.book_sync.restart(conn, native)
        elif native not in self._awaiting:
            self.book_sync.lost(conn, native, recv_ns, f"{kind}: {detail}")

    def _on_answer(self, conn: Connection, f: m.Frame, data: bytes, recv_ns: int) -> None:
        rid = f.id if f.id.__class__ is int else None  # (our ids are integers)
        if rid in self._unsubs:
            self._unsubs.discard(rid)
            if f.status != 200:
                self.bad_input("exchange error", repr(f.error)[:200], data)
            return
        natives = self._subs.pop(rid, None)
        if f.status != 200:
            self.bad_input("exchange error", f"request {rid!r}: status {f.status} {f.error!r}"[:300], data)
            for n in natives or ():
                if self._awaiting.get(n) == rid:
                    del self._awaiting[n]
                    self.book_sync.request_failed(n, recv_ns)
            return
        self.status("", "subscribed", f"request {rid}", recv_ns)
        for n in natives or ():
            if self._awaiting.get(n) == rid:
                del self._awaiting[n]
                self._expect.add(n)

    # --- book ---------------------------------------------------------------------------------
    def _on_depth(self, conn: Connection, f: m.Frame, data: bytes, recv_ns: int) -> None:
        native = self._native(f.s, data)
        if native is None:
            return
        first, last, b, a = f.U, f.u, f.b, f.a
        if (first is None or last is None or f.E is None or b.__class__ is not list or a.__class__ is not list
                or not 0 <= first <= last < MAX_ID):
            self._depth_lost(conn, native, "malformed depthUpdate", f"U {first!r} u {last!r} E {f.E!r}", data, recv_ns)
            return
        if native in self._expect or (native not in self.book_sync.markets and native not in self._awaiting):
            # the first frame after the subscription's answer (or the first of the market at all:
            # a replayed capture, whose subscription this scheme did not send)
            self._expect.discard(native)
            self.book_sync.snapshot(native, last, f, data, recv_ns, conn)
            return
        if native in self._awaiting:
            return  # the stream before its (re)subscription's answer: the snapshot after it holds it
        self.book_sync.diff(conn, native, f, first, last, 0, data, recv_ns)

    def _load(self, native: str, f: m.Frame, data: bytes, recv_ns: int) -> bool:
        """The snapshot frame into a fresh book (every level checked first); a crossed one
        resyncs."""
        try:
            ms = to_ms(f.E)
            self.book(native).check_sides(f.b, f.a)
        except (*BOOK_ERRORS, ValueError) as exc:
            self.bad_input("malformed snapshot", f"{native}: {exc}", data)
            return False
        atom_us = recv_ns // 1000
        book = self.begin_snapshot(native, recv_ns, ms)
        flags = book.apply_sides(BID, f.b, f.a, self.rows("lob"), Lob, self.exchange, self._symbols[native], ms,
                                 atom_us)
        if flags & CROSSED and self.resync_crossed(self.book_sync.markets[native].conn, native, book, recv_ns, b""):
            return False
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, ms, atom_us)
        return True

    def _apply(self, native: str, f: m.Frame, data: bytes | None, recv_ns: int) -> bool:
        conn = self.book_sync.markets[native].conn
        try:
            ms = to_ms(f.E)
        except ValueError as exc:
            self.book_failed(conn, native, "malformed depthUpdate", str(exc), data or b"", recv_ns)
            return False
        book = self.books[native]
        atom_us = recv_ns // 1000
        try:  # every level parsed before any is applied
            flags = book.apply_sides(BID, f.b, f.a, self.rows("lob"), Lob, self.exchange, self._symbols[native], ms,
                                     atom_us)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "malformed book level", str(exc), data or b"", recv_ns)
            return False
        if flags & CROSSED and self.gap_crossed(conn, native, book, recv_ns):
            return False
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, ms, atom_us)
        return True

    # --- trades, ticker -----------------------------------------------------------------------
    def _on_trade(self, conn: Connection, f: m.Frame, data: bytes, recv_ns: int) -> None:
        try:
            price, size = price_size(f.p, f.q)
            ms = to_ms(f.E)
        except ValueError as exc:
            self.bad_input("malformed trade", str(exc), data)
            return
        if f.m.__class__ is not bool or f.t < 0:
            self.bad_input("malformed trade", f"m {f.m!r} t {f.t!r}", data)
            return
        native = self._native(f.s, data)
        if native is None:
            return
        # m: the buyer is the maker, so the taker sold; the price in (0, 1e15), the size below
        # 1e15 (the writer's checks), or a malformed trade
        if not self.rows("trades").trade(self.exchange, self._symbols[native], price, size, not f.m, f.t, ms,
                                         recv_ns // 1000):
            self.bad_input("malformed trade", f"price {f.p!r} size {f.q!r}", data)

    def _on_book_ticker(self, conn: Connection, f: m.Frame, data: bytes, recv_ns: int) -> None:
        try:
            bid, bid_size = price_size(f.b, f.B)
            ask, ask_size = price_size(f.a, f.A)
            ms = to_ms(f.E)
        except ValueError as exc:
            self.bad_input("malformed bookTicker", str(exc), data)
            return
        native = self._native(f.s, data)
        if native is None:
            return
        # each below 1e15 too (the writer's checks), or a malformed bookTicker
        if not self.rows("ticker").quote(self.exchange, self._symbols[native], bid, bid_size, ask, ask_size, ms,
                                         recv_ns // 1000):
            self.bad_input("malformed bookTicker", f"{f.b!r} {f.B!r} {f.a!r} {f.A!r}", data)


class GeminiV2Scheme(Scheme):
    """Market data v2 (``wss://api.gemini.com/v2/marketdata``; developer.gemini.com/websocket/archived/v2).

    Subscription ``{"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": [...]}]}``.
    The ``l2`` subscription carries the book (``l2_updates``: ``changes`` = ``[side, price,
    quantity]``, quantity the new total, 0 removes) and the market's trades (``trade``: ``side``
    the taker's). lob -> ``l2`` (``spread`` from our book), trades -> ``l2``. Candles
    (``candles_1m``) are not collected by this scheme.

    Book: the first ``l2_updates`` of a subscription holds the whole book and the market's recent
    trades (``trades``, ``auction_events``): it is the snapshot (those past trades are not
    published). Later ones are changes.

    Verification: v2 carries NO sequence number (v1's ``socket_sequence`` has no v2
    counterpart) and no checksum, and ``l2_updates`` carry no time (``event_timestamp`` is the
    receive time). What is checked: a book an update leaves crossed (best bid >= best ask: a
    lost update, e.g. a removal at the top) is a gap (``gaps`` + 1, status ``resync``, the book
    dropped, the market's ``l2`` unsubscribed and subscribed again: its next snapshot rebuilds
    it); a malformed message (bad input) resyncs the same way. What cannot be seen: a lost,
    repeated or reordered update that leaves the book uncrossed (a level deeper in the book,
    or a repeated absolute size, which changes nothing).
    """

    exchange = "gemini"
    is_default = False
    websocket_endpoints = (WebsocketEndpoint("wss://api.gemini.com/v2/marketdata"),)
    rest_endpoint = REST
    channels = {"lob": "l2", "trades": "l2"}
    default_channels = ("lob", "trades")
    default_symbols = ("BTC-USD", "ETH-USD")
    symbols_per_message = 100
    silence_timeout = 30.0  # the server sends a heartbeat every 5 s
    #: an update's changes applied in C (``SidedLevels``, from their JSON text); a
    #: subscription's first message (it carries ``trades``: the whole book) and whatever is not
    #: the common case (no book yet, a reloading book, a malformed side or level, a market not
    #: cached yet) by ``_on_l2``
    dispatch = Dispatch({m.L2Updates: SidedLevels(market="symbol", levels="changes", snapshot="trades",
                                                  sides={BUY: BID, SELL: ASK}, crossed="gap_crossed",
                                                  otherwise="_on_l2"),
                         m.V2Trade: "_on_trade", m.Heartbeat: None},
                        decoder=m.v2_decoder, lead=b"{", refused="_on_invalid")

    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_listing(body, upper=True)

    def guess_instrument(self, native: str) -> Instrument:
        if not native.isupper():
            raise KeyError(f"gemini: v2 names markets in upper case, not {native!r}")
        return split(native)

    def _message(self, kind: str, channel: str, natives: list[str]) -> str:
        return m.encode({"type": kind, "subscriptions": [{"name": channel, "symbols": natives}]}).decode()

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        return [self._message("subscribe", channel, natives)]

    def resubscribe(self, conn: Connection, native: str, book: str = "lob") -> None:
        """Reload one book: its ``l2`` unsubscribed and subscribed again (the first message of
        the new subscription is the whole book)."""
        conn.send(self._message("unsubscribe", "l2", [native]))
        conn.send(self._message("subscribe", "l2", [native]))

    def _on_invalid(self, conn: Connection, data: bytes, recv_ns: int, exc: Exception) -> None:
        try:
            p = m.any_type.decode(data)
        except DECODE_ERRORS:
            self.bad_input("unknown message", str(exc), data)
            return
        if p.type not in ("l2_updates", "trade", "heartbeat"):
            self.bad_input("unknown message", str(exc), data)
            return
        kind = f"malformed {p.type} message"
        native = p.symbol
        if p.type == "l2_updates" and native.__class__ is str and native in self.books:
            self.book_failed(conn, native, kind, str(exc), data, recv_ns)
        else:
            self.bad_input(kind, str(exc), data)

    def _on_l2(self, conn: Connection, msg: m.L2Updates, data: bytes, recv_ns: int) -> None:
        """An ``l2_updates`` the route's ``SidedLevels`` did not apply (nothing of it applied): a
        subscription's first (the whole book), no book yet, a reloading book (dropped), a
        malformed side or level, a market not cached yet. An update's changes are applied as the route does (``apply_sided_levels``:
        the ``buy`` changes as bids, then the ``sell`` ones as asks, each side in the message's
        order; every side, then every level, checked before any is applied)."""
        # the changes and trades are raw JSON: refused as when they were decoded with the message
        # (L2UpdatesChecked: the changes three strings each, the trades a list or null)
        trades = msg.trades  # (an array in a subscription's first message)
        lead = None if trades is None else memoryview(trades)[:1]
        # a snapshot of a market of ours whose JSON text is plain (three plain strings a change,
        # the sides buy or sell, every number one the book takes) is read by the book in C; any
        # other message's changes are decoded here
        if lead == b"[" and self._on_l2_json_snapshot(conn, msg.symbol, msg.changes, recv_ns):
            return
        try:
            changes = m.changes.decode(msg.changes)
            refused = lead is not None and lead != b"[" and lead != b"n"
        except msgspec.ValidationError:
            refused = True
        if refused:
            try:
                m.v2_checked.decode(data)
            except msgspec.ValidationError as exc:  # (its error names the field, as before)
                self._on_invalid(conn, data, recv_ns, exc)
            else:  # (not reached: what is refused here, the checked decoder refuses)
                self.bad_input("malformed l2_updates message", "changes or trades", data)
            return
        native = msg.symbol
        symbol = self._symbols.get(native)
        if symbol is None:
            if not self.known(native, data):
                return
            symbol = self._symbols[native]
        if lead == b"[":
            self._on_l2_snapshot(conn, changes, native, symbol, data, recv_ns)
            return
        book = self.books.get(native)
        if book is None or native in self.unsynced:
            # no book until the subscription's first message: dropped (a bad side counted)
            if check_sided_levels(None, changes, BUY, SELL) < 0:
                self.bad_input("malformed l2_updates", "side not buy or sell", data)
            return
        atom_us = recv_ns // 1000
        ms = atom_us // 1000
        try:
            flags = apply_sided_levels(book, changes, BUY, SELL, self.rows("lob"), Lob, self.exchange, symbol, ms,
                                       atom_us)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "malformed book level", str(exc), data, recv_ns)
            return
        if flags < 0:
            self.book_failed(conn, native, "malformed l2_updates", "side not buy or sell", data, recv_ns)
            return
        if flags & CROSSED and self.gap_crossed(conn, native, book, recv_ns):
            return
        if flags & TOP_CHANGED:
            book.spread_into(self.rows("spread"), Spread, self.exchange, symbol, ms, atom_us)

    def _on_l2_json_snapshot(self, conn: Connection, native, text: msgspec.Raw, recv_ns: int) -> bool:
        """``_on_l2_snapshot`` of a market of ours (named well: its symbol known, or made as
        ``known`` makes it) whose changes' JSON text the book reads whole (every change plain,
        every number one it takes), from the text: whether it was; if not, nothing is done (no
        book made) and the decoded changes say what is amiss."""
        symbol = self._symbols.get(native)
        if symbol is None:
            try:
                symbol = self.symbol_of(native)
            except KeyError:  # (no market: counted on the decoded path, after the message's checks)
                return False
        made = native not in self.books
        book = self.book(native)
        if check_json_sided_levels(book, text, BUY, SELL) < 0:
            if made:
                del self.books[native]  # (made where the decoded path checks the levels, as before)
            return False
        atom_us = recv_ns // 1000
        ms = atom_us // 1000
        book = self.begin_snapshot(native, recv_ns, ms)
        flags = apply_json_sided_levels(book, text, BUY, SELL, self.rows("lob"), Lob, self.exchange, symbol, ms,
                                        atom_us)
        if flags < 0:  # (not reached: the same text and book were just read whole)
            raise AssertionError(f"gemini {native}: snapshot text checked, then refused")
        if flags & CROSSED and self.resync_crossed(conn, native, book, recv_ns, b""):
            return True
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, ms, atom_us)
        return True

    def _on_l2_snapshot(self, conn: Connection, changes: list[tuple[str, str, str]], native: str, symbol: str,
                        data: bytes, recv_ns: int) -> None:
        """The first ``l2_updates`` of a subscription: the whole book (every side and level checked
        before the book is cleared for it)."""
        live = native in self.books and native not in self.unsynced
        if check_sided_levels(None, changes, BUY, SELL) < 0:  # (the sides first)
            if live:
                self.book_failed(conn, native, "malformed l2_updates", "side not buy or sell", data, recv_ns)
            else:
                self.bad_input("malformed l2_updates", "side not buy or sell", data)
            return
        try:
            check_sided_levels(self.book(native), changes, BUY, SELL)
        except BOOK_ERRORS as exc:
            self.bad_input("malformed snapshot", f"{native}: {exc}", data)
            if live:
                self.resync(conn, native, f"malformed snapshot: {exc}", recv_ns)
            return
        atom_us = recv_ns // 1000
        ms = atom_us // 1000
        book = self.begin_snapshot(native, recv_ns, ms)
        flags = apply_sided_levels(book, changes, BUY, SELL, self.rows("lob"), Lob, self.exchange, symbol, ms, atom_us)
        if flags & CROSSED and self.resync_crossed(conn, native, book, recv_ns, b""):
            return
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, ms, atom_us)

    def _on_trade(self, conn: Connection, t: m.V2Trade, data: bytes, recv_ns: int) -> None:
        try:
            price, size = price_size(t.price, t.quantity)
            ms = to_ms(t.timestamp)
        except ValueError as exc:
            self.bad_input("malformed trade", str(exc), data)
            return
        if t.side != "buy" and t.side != "sell" or t.event_id < 0:
            self.bad_input("malformed trade", f"side {t.side!r} id {t.event_id!r}", data)
            return
        native = t.symbol
        if native not in self._symbols and not self.known(native, data):
            return
        # the price in (0, 1e15), the quantity below 1e15 (the writer's checks), or a malformed trade
        if not self.rows("trades").trade(self.exchange, self._symbols[native], price, size, t.side == "buy",
                                         t.event_id, ms, recv_ns // 1000):
            self.bad_input("malformed trade", f"price {t.price!r} quantity {t.quantity!r}", data)
