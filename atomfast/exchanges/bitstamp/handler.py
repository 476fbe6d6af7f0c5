"""Bitstamp (``wss://ws.bitstamp.net``, websocket API v2): ``BitstampScheme``.

Channel map (atomfast topic -> Bitstamp channel, subscribed per market as ``<channel>_<market>``):

- lob -> ``diff_order_book`` (changes to the full book: ``[price, amount]``, amount 0 removes
  the level), synced with the REST book ``GET /api/v2/order_book/{market}``; ``spread`` from
  our own book whenever its top changes.
- trades -> ``live_trades`` (``type`` 0: the taker bought, 1: the taker sold).
- trades_l3 -> ``live_trades`` too (``buy_order_id``/``sell_order_id``: the taker's order is
  the one on the ``type`` side, the maker's the other). One subscription serves both topics.
- lob_l3 -> ``live_orders`` (``order_created``/``order_changed``/``order_deleted``, ``amount``
  = the order's remaining amount), synced with ``GET /api/v2/order_book/{market}?group=2`` (every
  order with its id).
- ``order_book`` (top 100, a whole snapshot each message) and ``detail_order_book`` are not
  used: the diff channel with a REST snapshot gives the full book.

Book sync (both books, per market): when ``bts:subscription_succeeded`` arrives, buffer the
channel's events and GET the REST snapshot; apply it (status ``snapshot``, reason ``lob_l3``
for the order book; every level/order as an event); drop the buffered and later events whose
``microtimestamp`` is older than or equal to the snapshot's; apply the rest in order.

Gaps: Bitstamp sends no sequence numbers and no checksums, so a lost message cannot be seen
in general. What is detected: an event older than the last applied one (``microtimestamp``
going back: reordered delivery), a level-2 book left crossed by an update (best bid >= best
ask: an update that removed a level was lost), a malformed book event; each is a gap
(``gaps`` + 1, except the malformed one, which is bad input) and resyncs that book: status
``resync``, book dropped, nothing published for it until a fresh REST snapshot (the stream
itself goes on: no resubscribe). What cannot be detected: a lost diff or order event that
leaves the book uncrossed (a changed level, a new order, a deleted order deeper in the book),
and a lost event older than the snapshot's time.

The level-3 book is self-healing for one kind of loss: ``order_changed`` carries the order's
whole state (side, price, remaining amount), so a change of an order the book does not hold
adds it; an ``order_deleted`` of an order it does not hold changes nothing.

``bts:request_reconnect`` (the server is going away) reconnects the connection
(``conn.reconnect``): its books are reloaded on the new connection's subscription answers.
"""
from __future__ import annotations

from typing import Sequence

import msgspec

from ...book import ASK, BID, L3Book
from ...events import BUY, SELL, LobL3, Trade, TradeL3
from ...scheme import DECODE_ERRORS, LOB, LOB_L3, MALFORMED, SIDE_NAMES, Connection, Instrument, Scheme, RestEndpoint, Routes, WebsocketEndpoint
from . import messages as m
from .parse import guess_instrument, is_plain, micros, parse_pairs, valid_level

_BOOK_ERRORS = (ValueError, OverflowError, TypeError)
_TOP_CHANGED = 1
_CROSSED = 2
_ORDER_EVENTS = {"order_created", "order_changed", "order_deleted"}
_KNOWN_EVENTS = _ORDER_EVENTS | {"data", "trade", "bts:subscription_succeeded", "bts:unsubscription_succeeded",
                                 "bts:request_reconnect", "bts:heartbeat", "bts:error"}
_RETRY_NS = 1_000_000_000
_RETRY_CAP_NS = 30_000_000_000


def _text(s: str, raw) -> str:
    """A price/amount as sent: the ``*_str`` field, else the JSON number's own digits."""
    if s:
        return s
    return bytes(raw).decode("ascii", "replace")


class BookSync:
    """The sync state of one book (level 2 or level 3) of one market."""

    __slots__ = ("conn", "pair", "symbol", "kind", "book", "buffer", "snap_mts", "last_mts", "lost_mts", "fetching",
                 "refetch", "retry_at", "backoff")

    def __init__(self, conn: Connection, pair: str, symbol: str, kind: str, book: L3Book | None = None) -> None:
        self.conn = conn
        self.pair = pair
        self.symbol = symbol
        self.kind = kind
        self.book = book  # level 3: the scheme's ``l3books`` entry (level 2: its L2Book in ``books``)
        #: events held while the snapshot is on its way (None: synced)
        self.buffer: list | None = []
        self.snap_mts = 0  # the snapshot's microtimestamp
        self.last_mts = 0  # the last applied event's
        self.lost_mts = 0  # the newest event dropped from an overflowing buffer
        self.fetching = False
        self.refetch = False  # the answer on its way is too old: ask again when it comes
        self.retry_at = 0
        self.backoff = _RETRY_NS


class BitstampScheme(Scheme):
    exchange = "bitstamp"
    websocket_endpoints = (WebsocketEndpoint("wss://ws.bitstamp.net"),)
    rest_endpoint = RestEndpoint("https://www.bitstamp.net", Routes(instruments="/api/v2/trading-pairs-info/",
                                                                    snapshot="/api/v2/order_book/"))
    channels = {"lob": "diff_order_book", "trades": "live_trades", "trades_l3": "live_trades", "lob_l3": "live_orders"}
    default_channels = ("lob", "trades")
    #: one channel per subscribe message (Bitstamp's format)
    symbols_per_message = 100
    ping_interval = 10.0
    silence_timeout = 30.0
    #: events held per book while its REST snapshot is on its way
    buffer_limit = 200_000

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (), channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        names = set(self.channel_names)
        self._want_trades = "trades" in names
        self._want_trades_l3 = "trades_l3" in names
        #: market -> level-2 / level-3 book sync
        self.l2: dict[str, BookSync] = {}
        self.l3: dict[str, BookSync] = {}
        #: snapshot url -> the sync that asked for it
        self._rest_pending: dict[str, BookSync] = {}

    # --- instruments --------------------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_pairs(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_instrument(native)

    # --- subscriptions ------------------------------------------------------------------------
    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        return [m.encode({"event": "bts:subscribe", "data": {"channel": f"{channel}_{n}"}}).decode() for n in natives]

    def ping_message(self) -> str:
        return '{"event":"bts:heartbeat"}'

    def resubscribe(self, conn: Connection, native: str, book: str = LOB) -> None:
        """Reload one book (level 2 or 3): the stream goes on; buffer it and fetch a new snapshot."""
        if book == LOB_L3:
            st = self.l3.get(native)
            if st is None:
                self._start(conn, native, LOB_L3)
                return
        else:
            st = self.l2.get(native)
            if st is None:
                st = self.l2[native] = BookSync(conn, native, self.symbol_of(native), LOB)
        st.conn = conn
        self._restart(st)

    def on_close(self, conn: Connection, reason: str, recv_ns: int) -> None:
        """As the base (every book of the connection is untrusted until the next connection's
        snapshot; its level-3 books dropped); each book's sync waits for that snapshot."""
        for st in (*self.l2.values(), *self.l3.values()):
            if st.conn is conn and st.buffer is None:
                st.buffer = []
                if st.kind == LOB:
                    self.unsynced.add(st.pair)
                else:
                    self.unsynced_l3.add(st.pair)
                    st.book.clear()
        super().on_close(conn, reason, recv_ns)

    # --- sync machinery -----------------------------------------------------------------------
    def _start(self, conn: Connection, pair: str, kind: str) -> BookSync:
        table = self.l2 if kind == LOB else self.l3
        st = table.get(pair)
        if st is None:
            book = self.l3book(pair) if kind == LOB_L3 else None
            st = table[pair] = BookSync(conn, pair, self.symbol_of(pair), kind, book)
        st.conn = conn
        if kind == LOB and pair in self.books:
            self.unsynced.add(pair)
        elif kind == LOB_L3:
            self.unsynced_l3.add(pair)  # until the snapshot
            st.book.clear()
        self._restart(st)
        return st

    def _restart(self, st: BookSync) -> None:
        st.buffer = []
        st.snap_mts = st.last_mts = st.lost_mts = 0
        if st.fetching:
            st.refetch = True  # the answer on its way may predate what made us restart
        else:
            self._fetch(st)

    def _url(self, st: BookSync) -> str:
        url = f"{self.rest_url}{self.rest_endpoint.routes.snapshot}{st.pair}"
        return url if st.kind == LOB else url + "?group=2"

    def _fetch(self, st: BookSync) -> None:
        url = self._url(st)
        self._rest_pending[url] = st
        st.fetching = True
        st.refetch = False
        st.conn.fetch(url)

    def _hold(self, st: BookSync, item: tuple, recv_ns: int) -> None:
        """Buffer one parsed event (``item[0]`` is its microtimestamp) until the snapshot."""
        buffer = st.buffer
        buffer.append(item)
        if len(buffer) > self.buffer_limit:
            half = len(buffer) // 2
            st.lost_mts = max(st.lost_mts, max(it[0] for it in buffer[:half]))
            del buffer[:half]
            self.bad_input("snapshot buffer overflow", f"{st.kind} {st.pair}: snapshot not arrived", b"")
        if not st.fetching and recv_ns >= st.retry_at:
            self._fetch(st)

    def _lost(self, st: BookSync | None, kind: str, detail: str, data: bytes, recv_ns: int) -> None:
        """A book event that cannot be read: the book cannot be trusted without it."""
        self.bad_input(kind, detail, data)
        if st is None:
            return
        if st.buffer is None:
            self.resync(st.conn, st.pair, f"{kind}: {detail}", recv_ns, st.kind)
        elif st.fetching:
            st.refetch = True  # the snapshot must be newer than the event we lost

    def _gap(self, st: BookSync, reason: str, recv_ns: int) -> None:
        self.metrics.gaps += 1
        self.resync(st.conn, st.pair, reason, recv_ns, st.kind)

    # --- frames -------------------------------------------------------------------------------
    def on_frame(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        if data.__class__ is not bytes:
            data = bytes(data)
        try:
            msg = m.decoder.decode(data)
        except msgspec.ValidationError as exc:
            self._on_invalid(data, str(exc), recv_ns)
            return
        except MALFORMED as exc:
            self.bad_input("malformed JSON", str(exc), data)
            return
        cls = msg.__class__
        if cls is m.BookMsg:
            self._on_diff(conn, msg, data, recv_ns)
        elif cls is m.TradeMsg:
            self._on_trade(msg, data, recv_ns)
        elif cls is m.OrderCreated or cls is m.OrderChanged or cls is m.OrderDeleted:
            self._on_order(conn, msg, data, recv_ns)
        elif cls is m.Subscribed:
            self._on_subscribed(conn, msg, data, recv_ns)
        elif cls is m.RequestReconnect:
            conn.reconnect("bts:request_reconnect")
        elif cls is m.BtsError:
            text = msg.data.message if msg.data is not None else ""
            self.bad_input("exchange error", f"{msg.channel}: {text}", data)
            self.status("", "stopped", f"bts:error {msg.channel}: {text}"[:500], recv_ns)
        # heartbeat, unsubscription_succeeded: nothing to publish

    def _on_invalid(self, data: bytes, detail: str, recv_ns: int) -> None:
        try:
            head = m.any_decoder.decode(data)
        except DECODE_ERRORS:
            self.bad_input("unknown message", detail, data)
            return
        event, channel = head.event, head.channel
        if event.__class__ is not str or event not in _KNOWN_EVENTS:
            self.bad_input("unknown message", detail, data)
            return
        st = None
        if channel.__class__ is str:
            prefix, _, pair = channel.rpartition("_")
            if event == "data" and prefix == "diff_order_book":
                st = self.l2.get(pair)
            elif event in _ORDER_EVENTS:
                st = self.l3.get(pair)
        self._lost(st, f"malformed {event} message", detail, data, recv_ns)

    def _on_subscribed(self, conn: Connection, msg: m.Subscribed, data: bytes, recv_ns: int) -> None:
        prefix, _, pair = msg.channel.rpartition("_")
        if prefix not in ("diff_order_book", "live_trades", "live_orders", "order_book", "detail_order_book"):
            self.bad_input("unknown channel", repr(msg.channel)[:100], data)
            return
        if not self.known(pair, data):
            return
        self.status(self._symbols[pair], "subscribed", prefix, recv_ns)
        if prefix == "diff_order_book":
            self._start(conn, pair, LOB)
        elif prefix == "live_orders":
            self._start(conn, pair, LOB_L3)

    # --- level 2 ------------------------------------------------------------------------------
    def _on_diff(self, conn: Connection, msg: m.BookMsg, data: bytes, recv_ns: int) -> None:
        prefix, _, pair = msg.channel.rpartition("_")
        if prefix != "diff_order_book":
            if prefix not in ("order_book", "detail_order_book"):  # not subscribed by us: ignored
                self.bad_input("unknown channel", repr(msg.channel)[:100], data)
            return
        st = self.l2.get(pair)
        if st is None:
            if not self.known(pair, data):
                return
            st = self._start(conn, pair, LOB)  # data without the subscription answer
        d = msg.data
        try:
            mts = micros(d.microtimestamp)
        except ValueError as exc:
            self._lost(st, "malformed diff", str(exc), data, recv_ns)
            return
        inst = self.instrument(pair)
        pd, sd = inst.price_decimals, inst.size_decimals
        for levels in (d.bids, d.asks):
            for price, size in levels:
                if not valid_level(price, size, pd, sd):
                    self._lost(st, "malformed diff", f"{price!r} {size!r}", data, recv_ns)
                    return
        if st.buffer is not None:
            self._hold(st, (mts, d.bids, d.asks, recv_ns), recv_ns)
            return
        self._apply_diff(st, mts, d.bids, d.asks, recv_ns)

    def _crossed(self, book) -> str:
        bp, _bs, ap, _as = book.best()
        return f"book crossed: bid {bp!r} >= ask {ap!r}" if 0.0 < ap <= bp else ""

    def _apply_diff(self, st: BookSync, mts: int, bids, asks, recv_ns: int) -> None:
        if mts <= st.snap_mts:
            return  # the snapshot holds it already
        if mts < st.last_mts:
            self._gap(st, f"out of order: microtimestamp {mts} after {st.last_mts}", recv_ns)
            return
        st.last_mts = mts
        pair = st.pair
        book = self.books[pair]
        event_ms = mts // 1000
        atom_us = recv_ns // 1000
        flags = self.apply_levels(st.pair, book, BID, bids, event_ms, atom_us)
        flags |= self.apply_levels(st.pair, book, ASK, asks, event_ms, atom_us)
        if flags & _CROSSED:
            reason = self._crossed(book)
            if reason:
                self._gap(st, reason, recv_ns)
                return
        if flags & _TOP_CHANGED:
            self.emit_spread(pair, book, event_ms, atom_us)

    # --- level 3 ------------------------------------------------------------------------------
    def _on_order(self, conn: Connection, msg, data: bytes, recv_ns: int) -> None:
        prefix, _, pair = msg.channel.rpartition("_")
        if prefix != "live_orders":
            self.bad_input("unknown channel", repr(msg.channel)[:100], data)
            return
        st = self.l3.get(pair)
        if st is None:
            if not self.known(pair, data):
                return
            st = self._start(conn, pair, LOB_L3)
        d = msg.data
        price, amount = _text(d.price_str, d.price), _text(d.amount_str, d.amount)
        try:
            mts = micros(d.microtimestamp)
        except ValueError as exc:
            self._lost(st, "malformed order event", str(exc), data, recv_ns)
            return
        book = st.book
        if (d.order_type != 0 and d.order_type != 1) or (
                msg.__class__ is not m.OrderDeleted and not valid_level(price, amount, book.price_decimals,
                                                                       book.size_decimals)):
            self._lost(st, "malformed order event", f"{d.order_type!r} {price!r} {amount!r}", data, recv_ns)
            return
        item = (mts, msg.__class__, d.id, d.order_type, price, amount, recv_ns)
        if st.buffer is not None:
            self._hold(st, item, recv_ns)
            return
        self._apply_order(st, item)

    def _apply_order(self, st: BookSync, item: tuple) -> None:
        mts, cls, oid, side, price, amount, recv_ns = item
        if mts <= st.snap_mts:
            return
        if mts < st.last_mts:
            self._gap(st, f"out of order: microtimestamp {mts} after {st.last_mts}", recv_ns)
            return
        st.last_mts = mts
        book = st.book
        event_ms = mts // 1000
        atom_us = recv_ns // 1000
        if cls is m.OrderDeleted:
            order = book.order(oid)
            if order is None:
                return  # not on our book: nothing changes
            flags = book.remove(oid)
            side_name, price, amount = SIDE_NAMES[order[0]], order[1], "0"
        else:
            side_name = SIDE_NAMES[side]
            if cls is m.OrderChanged and oid in book:
                flags = book.change(oid, price, amount)  # keeps its place unless the price moved
            else:
                flags = book.add(oid, side, price, amount)
        self.emit("lob_l3", LobL3(self.exchange, st.symbol, float(price), float(amount), side_name, str(oid),
                                  event_ms, atom_us))
        if flags & _TOP_CHANGED and st.pair not in self.books:
            self.emit_spread(st.pair, book, event_ms, atom_us)

    # --- trades -------------------------------------------------------------------------------
    def _on_trade(self, msg: m.TradeMsg, data: bytes, recv_ns: int) -> None:
        prefix, _, pair = msg.channel.rpartition("_")
        if prefix != "live_trades":
            self.bad_input("unknown channel", repr(msg.channel)[:100], data)
            return
        d = msg.data
        price, amount = _text(d.price_str, d.price), _text(d.amount_str, d.amount)
        if not is_plain(price) or not is_plain(amount) or (d.type != 0 and d.type != 1):
            self.bad_input("malformed trade", f"{price!r} {amount!r} type {d.type!r}", data)
            return
        try:
            event_ms = micros(d.microtimestamp) // 1000
        except ValueError as exc:
            self.bad_input("malformed trade", str(exc), data)
            return
        if not self.known(pair, data):
            return
        symbol = self._symbols[pair]
        atom_us = recv_ns // 1000
        taker = BUY if d.type == 0 else SELL
        tid = str(d.id)
        if self._want_trades:
            self.emit("trades", Trade(self.exchange, symbol, float(price), float(amount), taker, tid, event_ms, atom_us))
        if self._want_trades_l3:
            buy = "" if d.buy_order_id is None else str(d.buy_order_id)
            sell = "" if d.sell_order_id is None else str(d.sell_order_id)
            maker_id, taker_id = (sell, buy) if d.type == 0 else (buy, sell)
            self.emit("trades_l3", TradeL3(self.exchange, symbol, float(price), float(amount), taker, tid, maker_id,
                                           taker_id, event_ms, atom_us))

    # --- REST snapshots -----------------------------------------------------------------------
    def on_rest(self, url: str, body: bytes, recv_ns: int) -> None:
        st = self._rest_pending.pop(url, None)
        if st is None:
            return
        st.fetching = False
        if st.buffer is None:
            return  # synced meanwhile
        if st.refetch:
            self._fetch(st)
            return
        try:
            snap = (m.rest_book_decoder if st.kind == LOB else m.rest_orders_decoder).decode(body)
            snap_mts = micros(snap.microtimestamp)
        except (*DECODE_ERRORS, ValueError) as exc:
            self._snapshot_failed(st, "malformed snapshot", str(exc), body, recv_ns)
            return
        if st.kind == LOB:
            inst = self.instrument(st.pair)
            pd, sd = inst.price_decimals, inst.size_decimals
        else:
            pd, sd = st.book.price_decimals, st.book.size_decimals
        orders = []
        for levels in (snap.bids, snap.asks):
            for level in levels:
                if not valid_level(level[0], level[1], pd, sd):
                    self._snapshot_failed(st, "malformed snapshot", f"{level!r}", body, recv_ns)
                    return
                if st.kind == LOB_L3:
                    oid = level[2]
                    if oid.__class__ is str:
                        if not (0 < len(oid) <= 20 and oid.isdigit() and oid.isascii()):
                            self._snapshot_failed(st, "malformed snapshot", f"order id {oid!r}", body, recv_ns)
                            return
                        oid = int(oid)
                    orders.append(oid)
        if st.lost_mts > snap_mts:
            self._fetch(st)  # the buffer dropped events newer than this snapshot: a newer one
            return
        event_ms = snap_mts // 1000
        atom_us = recv_ns // 1000
        if st.kind == LOB:
            book = self.begin_snapshot(st.pair, recv_ns, event_ms)
            self.apply_levels(st.pair, book, BID, snap.bids, event_ms, atom_us)
            self.apply_levels(st.pair, book, ASK, snap.asks, event_ms, atom_us)
            reason = self._crossed(book)
            if reason:
                self.bad_input("crossed snapshot", f"{st.pair}: {reason}", b"")
                st.buffer = None
                self.resync(st.conn, st.pair, f"snapshot {reason}", recv_ns)
                return
            self.emit_spread(st.pair, book, event_ms, atom_us)
        else:
            book = self.begin_snapshot_l3(st.pair, recv_ns, event_ms)  # ``st.book``, emptied
            emit, exchange, symbol, add = self.emit, self.exchange, st.symbol, book.add
            i = 0
            for side, side_name, levels in ((BID, BUY, snap.bids), (ASK, SELL, snap.asks)):
                for price, size, _oid in levels:
                    oid = orders[i]
                    i += 1
                    add(oid, side, price, size)
                    emit("lob_l3", LobL3(exchange, symbol, float(price), float(size), side_name, str(oid), event_ms, atom_us))
            if st.pair not in self.books:
                self.emit_spread(st.pair, book, event_ms, atom_us)
        buffer = st.buffer
        st.buffer = None
        st.snap_mts = st.last_mts = snap_mts
        st.backoff = _RETRY_NS
        for item in buffer:
            if st.buffer is not None:  # resynced while draining: the rest waits for the next snapshot
                st.buffer.append(item)
            elif st.kind == LOB:
                self._apply_diff(st, item[0], item[1], item[2], item[3])
            else:
                self._apply_order(st, item)

    def _snapshot_failed(self, st: BookSync, kind: str, detail: str, body: bytes, recv_ns: int) -> None:
        self.bad_input(kind, f"{st.kind} {st.pair}: {detail}", body)
        st.retry_at = recv_ns + st.backoff
        st.backoff = min(st.backoff * 2, _RETRY_CAP_NS)

    def on_rest_error(self, url: str, exc: Exception, recv_ns: int) -> None:
        """A failed snapshot GET: asked again (with backoff) on the book's next event."""
        st = self._rest_pending.pop(url, None)
        if st is not None:
            st.fetching = False
            st.retry_at = recv_ns + st.backoff
            st.backoff = min(st.backoff * 2, _RETRY_CAP_NS)
