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

Book sync (both books, per market; ``atomfast.kit.booksync.BookSync`` with the ``Increasing``
rule on ``microtimestamp``): when ``bts:subscription_succeeded`` arrives, buffer the channel's
events and GET the REST snapshot; apply it (status ``snapshot``, reason ``lob_l3`` for the order
book; every level/order as an event); drop the buffered and later events whose
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

from ...book import ASK, BID, L2Book
from ...events import BUY, SELL, Lob, TradeL3
from ...kit.booksync import BookSync, Increasing
from ...kit.levels import crossed
from ...scheme import (BOOK_ERRORS, CROSSED, DECODE_ERRORS, LOB, LOB_L3, TOP_CHANGED, Connection,
                       Dispatch, Instrument, RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from . import messages as m
from .parse import guess_instrument, is_plain, micros, parse_pairs, valid_level

_ORDER_EVENTS = {"order_created", "order_changed", "order_deleted"}
_KNOWN_EVENTS = _ORDER_EVENTS | {"data", "trade", "bts:subscription_succeeded", "bts:unsubscription_succeeded",
                                 "bts:request_reconnect", "bts:heartbeat", "bts:error"}


def _text(s: str, raw) -> str:
    """A price/amount as sent: the ``*_str`` field, else the JSON number's own digits."""
    if s:
        return s
    return bytes(raw).decode("ascii", "replace")


class BitstampScheme(Scheme):
    exchange = "bitstamp"
    websocket_endpoints = (WebsocketEndpoint("wss://ws.bitstamp.net"),)
    rest_endpoint = RestEndpoint("https://www.bitstamp.net", Routes(instruments="/api/v2/trading-pairs-info/",
                                                                    snapshot="/api/v2/order_book/"))
    channels = {"lob": "diff_order_book", "trades": "live_trades", "trades_l3": "live_trades", "lob_l3": "live_orders"}
    default_channels = ("lob", "trades")
    default_symbols = ("BTC-USD", "ETH-USD")
    #: one channel per subscribe message (Bitstamp's format)
    symbols_per_message = 100
    ping_interval = 10.0
    silence_timeout = 30.0
    #: events held per book while its REST snapshot is on its way
    buffer_limit = 200_000
    #: after a failed snapshot request, the next one waits 2x this (doubling with the attempts)
    retry_delay_ns = 500_000_000
    #: no limit to the snapshots asked for in a row: while REST fails, the book waits (the
    #: connection and its other channels go on)
    max_snapshot_attempts = 0
    dispatch = Dispatch({m.BookMsg: "_on_diff", m.TradeMsg: "_on_trade", m.OrderCreated: "_on_order",
                         m.OrderChanged: "_on_order", m.OrderDeleted: "_on_order", m.Subscribed: "_on_subscribed",
                         m.RequestReconnect: "_on_request_reconnect", m.BtsError: "_on_error", m.Heartbeat: None,
                         m.Unsubscribed: None},
                        decoder=m.decoder, refused="_on_invalid")

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (), channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        names = set(self.channel_names)
        self._want_trades = "trades" in names
        self._want_trades_l3 = "trades_l3" in names
        rule = Increasing("microtimestamp")
        kw = dict(max_buffer=self.buffer_limit, max_attempts=self.max_snapshot_attempts,
                  retry_delay_ns=self.retry_delay_ns, gap=self._gap, overflow="snapshot buffer overflow")
        #: the level-2 / level-3 books' sync (REST snapshot + buffered events), and its markets
        self.l2_sync = BookSync(self, rule, self._request, self._apply_diff, self._load_book, book=LOB, **kw)
        self.l3_sync = BookSync(self, rule, self._request_l3, self._apply_order, self._load_orders, book=LOB_L3, **kw)
        self.l2 = self.l2_sync.markets
        self.l3 = self.l3_sync.markets
        #: market -> an empty book of its precision: checks a diff's levels before it is buffered
        self._checkers: dict[str, L2Book] = {}

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
        (self.l3_sync if book == LOB_L3 else self.l2_sync).restart(conn, native)

    def on_close(self, conn: Connection, reason: str, recv_ns: int) -> None:
        """As the base (every book of the connection is untrusted until the next connection's
        snapshot; its level-3 books dropped); each live book's sync waits for that snapshot."""
        for sync, unsynced in ((self.l2_sync, self.unsynced), (self.l3_sync, self.unsynced_l3)):
            for pair, st in sync.markets.items():
                if st.conn is conn and st.live:
                    sync.suspend(pair)
                    unsynced.add(pair)
                    if sync is self.l3_sync:
                        self.l3books[pair].clear()
        super().on_close(conn, reason, recv_ns)

    def _start(self, conn: Connection, pair: str, book: str) -> None:
        """A book's sync (re)starts: untrusted until its snapshot, which is asked for."""
        if book == LOB:
            if pair in self.books:
                self.unsynced.add(pair)
            self.l2_sync.restart(conn, pair)
        else:
            self.unsynced_l3.add(pair)  # until the snapshot
            self.l3book(pair).clear()
            self.l3_sync.restart(conn, pair)

    def _snapshot_url(self, pair: str, l3: bool) -> str:
        url = f"{self.rest_url}{self.rest_endpoint.routes.snapshot}{pair}"
        return url + "?group=2" if l3 else url

    def _request(self, conn: Connection, pair: str) -> None:
        conn.fetch(self._snapshot_url(pair, False))

    def _request_l3(self, conn: Connection, pair: str) -> None:
        conn.fetch(self._snapshot_url(pair, True))

    def _lost(self, sync: BookSync, pair: str, kind: str, detail: str, data: bytes, recv_ns: int) -> None:
        """A book event that cannot be read: the book cannot be trusted without it."""
        self.bad_input(kind, detail, data)
        sync.lost(None, pair, recv_ns, f"{kind}: {detail}")

    # Bitstamp's gap reasons carry no "gap: " prefix (Scheme.gap adds one)
    def _gap(self, conn: Connection, native: str, reason: str, recv_ns: int, book: str = LOB) -> None:
        self.metrics.gaps += 1
        self.resync(conn, native, reason, recv_ns, book)

    # --- frames -------------------------------------------------------------------------------
    def _on_invalid(self, conn: Connection, data: bytes, recv_ns: int, exc: Exception) -> None:
        """Valid JSON that failed validation: say what it was; a book event resyncs its book."""
        detail = str(exc)
        try:
            head = m.any_decoder.decode(data)
        except DECODE_ERRORS:
            self.bad_input("unknown message", detail, data)
            return
        event, channel = head.event, head.channel
        if event.__class__ is not str or event not in _KNOWN_EVENTS:
            self.bad_input("unknown message", detail, data)
            return
        kind = f"malformed {event} message"
        self.bad_input(kind, detail, data)
        if channel.__class__ is str:
            prefix, _, pair = channel.rpartition("_")
            if event == "data" and prefix == "diff_order_book":
                self.l2_sync.lost(None, pair, recv_ns, f"{kind}: {detail}")
            elif event in _ORDER_EVENTS:
                self.l3_sync.lost(None, pair, recv_ns, f"{kind}: {detail}")

    def _on_request_reconnect(self, conn: Connection, msg: m.RequestReconnect, data: bytes, recv_ns: int) -> None:
        conn.reconnect("bts:request_reconnect")

    def _on_error(self, conn: Connection, msg: m.BtsError, data: bytes, recv_ns: int) -> None:
        text = msg.data.message if msg.data is not None else ""
        self.bad_input("exchange error", f"{msg.channel}: {text}", data)
        self.status("", "stopped", f"bts:error {msg.channel}: {text}"[:500], recv_ns)

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
        if pair not in self.l2:
            if not self.known(pair, data):
                return
            self._start(conn, pair, LOB)  # data without the subscription answer
        d = msg.data
        try:
            mts = micros(d.microtimestamp)
        except ValueError as exc:
            self._lost(self.l2_sync, pair, "malformed diff", str(exc), data, recv_ns)
            return
        checker = self._checkers.get(pair)
        if checker is None:  # (an empty book is falsy)
            checker = self._checker(pair)
        try:  # every level checked before the diff is held or applied
            checker.check_sides(d.bids, d.asks)
        except BOOK_ERRORS:
            price, size = self._refused(pair, d.bids, d.asks)
            self._lost(self.l2_sync, pair, "malformed diff", f"{price!r} {size!r}", data, recv_ns)
            return
        self.l2_sync.diff(conn, pair, d, mts, mts, 0, data, recv_ns)

    def _checker(self, pair: str) -> L2Book:
        """An empty book of ``pair``'s precision (levels are checked on it, nothing applied)."""
        checker = self._checkers.get(pair)
        if checker is None:
            inst = self.instrument(pair)
            checker = self._checkers[pair] = L2Book(inst.price_decimals, inst.size_decimals)
        return checker

    def _refused(self, pair: str, *sides) -> tuple:
        """The first level of ``sides`` the book of ``pair`` refuses (``check_sides`` raised)."""
        inst = self.instrument(pair)
        pd, sd = inst.price_decimals, inst.size_decimals
        for levels in sides:
            for level in levels:
                if not valid_level(level[0], level[1], pd, sd):
                    return level
        return ("?", "?")  # (check_sides and valid_level refuse the same levels)

    def _apply_diff(self, pair: str, d: m.BookData, data: bytes | None, recv_ns: int) -> bool:
        """One diff (checked when it came) into the live book; a book it leaves crossed resyncs."""
        book = self.books[pair]
        event_ms = int(d.microtimestamp) // 1000
        atom_us = recv_ns // 1000
        flags = book.apply_sides(BID, d.bids, d.asks, self.rows("lob"), Lob, self.exchange, self._symbols[pair],
                                 event_ms, atom_us)
        if flags & CROSSED:
            reason = crossed(book)
            if reason:
                self._gap(self.l2[pair].conn, pair, reason, recv_ns)
                return False
        if flags & TOP_CHANGED:
            self.emit_spread(pair, book, event_ms, atom_us)
        return True

    # --- level 3 ------------------------------------------------------------------------------
    def _on_order(self, conn: Connection, msg, data: bytes, recv_ns: int) -> None:
        prefix, _, pair = msg.channel.rpartition("_")
        if prefix != "live_orders":
            self.bad_input("unknown channel", repr(msg.channel)[:100], data)
            return
        if pair not in self.l3:
            if not self.known(pair, data):
                return
            self._start(conn, pair, LOB_L3)
        d = msg.data
        price, amount = _text(d.price_str, d.price), _text(d.amount_str, d.amount)
        try:
            mts = micros(d.microtimestamp)
        except ValueError as exc:
            self._lost(self.l3_sync, pair, "malformed order event", str(exc), data, recv_ns)
            return
        book = self.l3books[pair]
        if (d.order_type != 0 and d.order_type != 1) or (
                msg.__class__ is not m.OrderDeleted and not valid_level(price, amount, book.price_decimals,
                                                                       book.size_decimals)):
            self._lost(self.l3_sync, pair, "malformed order event", f"{d.order_type!r} {price!r} {amount!r}", data,
                       recv_ns)
            return
        self.l3_sync.diff(conn, pair, (mts, msg.__class__, d.id, d.order_type, price, amount), mts, mts, 0, data,
                          recv_ns)

    def _apply_order(self, pair: str, item: tuple, data: bytes | None, recv_ns: int) -> bool:
        mts, cls, oid, side, price, amount = item
        book = self.l3books[pair]
        event_ms = mts // 1000
        atom_us = recv_ns // 1000
        if cls is m.OrderDeleted:
            order = book.order(oid)
            if order is None:
                return True  # not on our book: nothing changes
            flags = book.remove(oid)
            side, price, amount = order[0], order[1], "0"
        elif cls is m.OrderChanged and oid in book:
            flags = book.change(oid, price, amount)  # keeps its place unless the price moved
        else:
            flags = book.add(oid, side, price, amount)
        # (checked: valid_level at the book's scale, 8 decimals or more: below 1e15, as the writer wants)
        self.rows("lob_l3").order(self.exchange, self._symbols[pair], price, amount, side == BID, oid, event_ms,
                                  atom_us)
        if flags & TOP_CHANGED and pair not in self.books:
            self.emit_spread(pair, book, event_ms, atom_us)
        return True

    # --- trades -------------------------------------------------------------------------------
    def _on_trade(self, conn: Connection, msg: m.TradeMsg, data: bytes, recv_ns: int) -> None:
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
        # type 0: the taker bought; a price of 0 or a value of 1e15 or more (refused by the
        # writer) is a malformed trade
        if self._want_trades and not self.rows("trades").trade(self.exchange, symbol, price, amount, d.type == 0,
                                                               d.id, event_ms, atom_us):
            self.bad_input("malformed trade", f"{price!r} {amount!r} type {d.type!r}", data)
            return
        if self._want_trades_l3:
            taker, tid = BUY if d.type == 0 else SELL, str(d.id)
            buy = "" if d.buy_order_id is None else str(d.buy_order_id)
            sell = "" if d.sell_order_id is None else str(d.sell_order_id)
            maker_id, taker_id = (sell, buy) if d.type == 0 else (buy, sell)
            self.emit("trades_l3", TradeL3(self.exchange, symbol, float(price), float(amount), taker, tid, maker_id,
                                           taker_id, event_ms, atom_us))

    # --- REST snapshots -----------------------------------------------------------------------
    def on_rest(self, url: str, body: bytes, recv_ns: int) -> None:
        path, _, query = url.partition("?")
        pair = path.rpartition("/")[2]
        l3 = bool(query)
        sync = self.l3_sync if l3 else self.l2_sync
        if url != self._snapshot_url(pair, l3) or not sync.answered(pair):
            return  # not ours, not asked for, or no longer wanted (asked again if stale)
        try:
            snap = (m.rest_orders_decoder if l3 else m.rest_book_decoder).decode(body)
            snap_mts = micros(snap.microtimestamp)
        except (*DECODE_ERRORS, ValueError) as exc:
            self._snapshot_failed(sync, pair, str(exc), body, recv_ns)
            return
        if not l3:
            try:
                self._checker(pair).check_sides(snap.bids, snap.asks)
            except BOOK_ERRORS:
                self._snapshot_failed(sync, pair, f"{self._refused(pair, snap.bids, snap.asks)!r}", body, recv_ns)
                return
            sync.snapshot(pair, snap_mts, snap, body, recv_ns)
            return
        book = self.l3books[pair]
        pd, sd = book.price_decimals, book.size_decimals
        orders = []
        for levels in (snap.bids, snap.asks):
            for level in levels:
                if not valid_level(level[0], level[1], pd, sd):
                    self._snapshot_failed(sync, pair, f"{level!r}", body, recv_ns)
                    return
                oid = level[2]
                if oid.__class__ is str:
                    if not (0 < len(oid) <= 20 and oid.isdigit() and oid.isascii()):
                        self._snapshot_failed(sync, pair, f"order id {oid!r}", body, recv_ns)
                        return
                    oid = int(oid)
                orders.append(oid)
        sync.snapshot(pair, snap_mts, (snap, orders), body, recv_ns)

    def _snapshot_failed(self, sync: BookSync, pair: str, detail: str, body: bytes, recv_ns: int) -> None:
        """A snapshot that cannot be read: counted; asked again on the book's next event, after
        the retry delay."""
        self.bad_input("malformed snapshot", f"{sync.book} {pair}: {detail}", body)
        sync.request_failed(pair, recv_ns)

    def _load_book(self, pair: str, snap: m.RestBook, body: bytes, recv_ns: int) -> bool:
        """The level-2 snapshot (checked) into a fresh book; a crossed one resyncs."""
        event_ms = int(snap.microtimestamp) // 1000
        atom_us = recv_ns // 1000
        book = self.begin_snapshot(pair, recv_ns, event_ms)
        book.apply_sides(BID, snap.bids, snap.asks, self.rows("lob"), Lob, self.exchange, self._symbols[pair], event_ms,
                         atom_us)
        if self.resync_crossed(self.l2[pair].conn, pair, book, recv_ns, b""):
            return False
        self.emit_spread(pair, book, event_ms, atom_us)
        return True

    def _load_orders(self, pair: str, snap_orders: tuple, body: bytes, recv_ns: int) -> bool:
        """The level-3 snapshot (checked; ``orders``: its order ids) into a fresh book."""
        snap, orders = snap_orders
        event_ms = int(snap.microtimestamp) // 1000
        atom_us = recv_ns // 1000
        book = self.begin_snapshot_l3(pair, recv_ns, event_ms)
        order, exchange, symbol, add = self.rows("lob_l3").order, self.exchange, self._symbols[pair], book.add
        i = 0
        for side, levels in ((BID, snap.bids), (ASK, snap.asks)):
            bid = side == BID
            for price, size, _oid in levels:
                oid = orders[i]
                i += 1
                add(oid, side, price, size)
                order(exchange, symbol, price, size, bid, oid, event_ms, atom_us)  # (checked: valid_level)
        if pair not in self.books:
            self.emit_spread(pair, book, event_ms, atom_us)
        return True

    def on_rest_error(self, url: str, exc: Exception, recv_ns: int) -> None:
        """A failed snapshot GET: asked again (after the retry delay) on the book's next event."""
        path, _, query = url.partition("?")
        pair = path.rpartition("/")[2]
        sync = self.l3_sync if query else self.l2_sync
        st = sync.markets.get(pair)
        if st is not None and st.pending and url == self._snapshot_url(pair, bool(query)):
            sync.request_failed(pair, recv_ns)
