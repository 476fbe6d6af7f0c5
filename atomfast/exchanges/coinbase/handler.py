"""Coinbase Exchange (``wss://ws-feed.exchange.coinbase.com``): ``CoinbaseScheme``.

Channel map (atomfast topic -> Coinbase channel):

- lob -> ``level2_batch`` (``snapshot`` then ``l2update``; the public, unauthenticated variant
  of ``level2``, same messages in 50 ms batches; ``level2`` itself needs authentication since
  2023-08-01). Both are parsed (the recorded capture holds ``level2``). ``spread`` is emitted
  from our own book whenever its top changes.
- trades -> ``matches`` (``match``; ``side`` is the MAKER's side, so ``taker_side`` is the other).
- ticker -> ``ticker`` (best bid/ask; sizes where sent, else 0).
- lob_l3 and trades_l3 -> ``full`` (``received``/``open``/``done``/``match``/``change``;
  authenticated since 2023-08-01: set COINBASE_API_KEY, COINBASE_API_SECRET and
  COINBASE_API_PASSPHRASE and the subscribe message is signed).

Every ``match`` message (``matches`` or ``full``) gives a ``trades`` and a ``trades_l3`` event
(where the topic is subscribed): it names the maker and the taker order. A match delivered
twice (both channels on one connection) is published once: per product, a match whose
``sequence`` is not above the last published one is dropped. ``last_match`` (the trade before
the subscription) is not published.

Level 2 sync: the ``snapshot`` message starts the book (status ``snapshot``, every level as a
``lob`` event); ``l2update``s follow. There are no sequence numbers or checksums in level 2:
an update before the snapshot, a malformed book message, or a book left crossed (best bid >=
best ask: something was lost) resyncs the product (unsubscribe + subscribe: a new snapshot).
An ``l2update`` whose changes are all of one side (nearly all) is applied in C by its route
(``atomfast.kit.shapes.SidedLevels``, declared ``mixed=False``: the levels parsed and applied by
the book, the rows written by it); any other goes to ``_on_l2update``, which does the same in
Python (changes of both sides in the message's order).

Frames that cannot be read: level 2 has nothing that tells a lost message (a crossed book only
sometimes shows it), so a frame that is no JSON, or JSON that is no well-formed message, is
counted (``malformed JSON``, ``malformed <type> message``, ``unknown message``) and, where it may
have been a level-2 message, its level-2 books resync with the reason ``unreadable frame: <what>``
(unsubscribe + subscribe): a ``snapshot`` or ``l2update`` whose ``product_id`` can be read, that
product; one whose product cannot be read, or a frame whose ``type`` cannot be read at all, every
level-2 book of the connection (those subscribed on it, and those whose snapshot came on it).
Books already resyncing are subscribed again where the lost frame may have been their snapshot.
A frame whose ``type`` says it is no level-2 message (``ticker``, ``heartbeat``, a ``full``
message: level 3 finds its own losses by ``sequence``) resyncs nothing; a ``subscriptions``
answer that cannot be read starts the level-3 sync of the connection's ``full`` products where
``lob_l3`` is collected (the answer would have).

Level 3 sync (``full``; ``atomfast.kit.booksync.BookSync`` with the ``Sequenced`` rule on
``sequence``), per product, once the ``subscriptions`` answer lists it: buffer the
sequenced messages, GET ``/products/{id}/book?level=3`` (the REST level-3 snapshot), apply it
(status ``snapshot`` with reason ``lob_l3``, every order as a ``lob_l3`` event), drop the
buffered messages with ``sequence`` <= the snapshot's, then every message must be the previous
+ 1: a message at or below it is a duplicate (ignored), one above it is a gap (``gaps`` + 1,
status ``resync``, book dropped, buffer again and fetch a new snapshot). A snapshot older than
the buffered stream (its sequence + 1 is not the first buffered one above it) is fetched
again. ``open`` adds the order, ``done`` removes it (ignored for orders not on the book),
``match`` reduces the maker's remaining size (removes it at 0; a maker not on the book, on the
other side or smaller than the match is an inconsistency: resync), ``change`` sets the new size
(and, for ``modify_order``, the new price; queue position kept only when the size goes down at
the same price), ``received`` only advances the sequence. ``lob_l3`` events carry the order's
remaining size (0: removed). ``spread`` comes from the level-3 book only for products without
a level-2 book.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from typing import Sequence

import msgspec

from ...book import ASK, BID, L2Book, format_ticks, parse_decimal
from ...events import BUY, SELL, Lob, Spread, TradeL3
from ...kit.booksync import BookSync, Sequenced
from ...kit.dispatch import RefusingDecoder
from ...kit.shapes import SidedLevels
from ...scheme import (BOOK_ERRORS, CROSSED, DECODE_ERRORS, LOB, LOB_L3, SIDE_NAMES, TOP_CHANGED,
                       Connection, Dispatch, Instrument, RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from . import messages as m
from .parse import guess_instrument, is_plain, parse_products, rfc3339_to_ms, valid_level

_SIDES = {BUY: BID, SELL: ASK}
_OTHER = {BUY: SELL, SELL: BUY}
_FULL_TYPES = {"received", "open", "done", "match", "change"}
_L2_TYPES = {"snapshot", "l2update"}
#: channels Coinbase only serves to authenticated subscribers
AUTH_CHANNELS = frozenset({"full", "level2", "level3"})
_L2_CHANNELS = ("level2", "level2_batch")
#: what an unreadable frame is, read from its bytes (Coinbase sends ``type`` first)
_TYPE = re.compile(rb'"type"\s*:\s*"([^"\\]*)"')
_PRODUCT = re.compile(rb'"product_id"\s*:\s*"([^"\\]*)"')
#: ``conn.state`` key: the products whose level-2 snapshot came on the connection
_L2_BOOKS = "coinbase_l2_books"


def _runs(changes: list[tuple[str, str, str]]) -> list[tuple[int, list[tuple[str, str]]]]:
    """An ``l2update``'s checked changes as runs of one side, in the message's order: (side,
    its ``(price, size)`` levels)."""
    out: list[tuple[int, list[tuple[str, str]]]] = []
    last = None
    levels: list[tuple[str, str]] = []
    for side, price, size in changes:
        if side != last:
            levels = []
            out.append((BID if side == BUY else ASK, levels))
            last = side
        levels.append((price, size))
    return out


def _bad_level(book: L2Book, msg: m.Snapshot) -> str:
    """The first level of a snapshot the book refuses, as ``'price' 'size'`` ("" if none)."""
    pd, sd = book.price_decimals, book.size_decimals
    for levels in (msg.bids, msg.asks):
        for price, size in levels:
            if not valid_level(price, size, pd, sd):
                return f"{price!r} {size!r}"
    return ""


class _Unreadable(msgspec.ValidationError):
    """A frame that is no JSON at all, raised by the dispatch's decoder (``RefusingDecoder``) as a
    refusal (a ``ValidationError``) so that it reaches ``_on_invalid`` with its connection."""


class CoinbaseScheme(Scheme):
    exchange = "coinbase"
    unknown_market = "unknown product"
    secret_fields = ("signature", "key", "passphrase")  # of the authenticated subscribe
    websocket_endpoints = (WebsocketEndpoint("wss://ws-feed.exchange.coinbase.com"),)
    rest_endpoint = RestEndpoint("https://api.exchange.coinbase.com",
                                 Routes(instruments="/products", l3_snapshot="/products/{product}/book?level=3"))
    channels = {
        "lob": "level2_batch",
        "trades": "matches",
        "ticker": "ticker",
        "lob_l3": "full",
        "trades_l3": "full",
    }
    default_channels = ("lob", "trades", "ticker")
    default_symbols = ("BTC-USD", "ETH-USD")
    symbols_per_message = 100
    #: no application ping on Coinbase: a websocket ping (answered by a pong) keeps quiet
    #: connections alive for the silence watchdog
    ping_interval = 10.0
    silence_timeout = 30.0
    #: full-channel messages held per product while its level-3 snapshot is on its way
    l3_buffer_limit = 200_000
    #: after a failed level-3 snapshot request, the next one waits 2x this (doubling with the attempts)
    retry_delay_ns = 500_000_000
    #: no limit to the snapshots asked for in a row: while REST fails, the book waits (the
    #: connection and its other channels go on)
    max_snapshot_attempts = 0
    #: the level-2 update: a message of one side (nearly all) applied in C (``SidedLevels``); the
    #: others (both sides: ``mixed=False``, applied in the message's order; no book yet, a
    #: reloading book, anything malformed) by ``_on_l2update``
    dispatch = Dispatch({m.L2Update: SidedLevels(market="product_id", levels="changes", time="time",
                                                 sides={BUY: BID, SELL: ASK}, mixed=False, crossed="_crossed",
                                                 otherwise="_on_l2update"), m.Match: "_on_match", m.Received: "_on_full", m.Open: "_on_full",
                         m.Done: "_on_full", m.Change: "_on_full", m.Ticker: "_on_ticker", m.Snapshot: "_on_snapshot",
                         m.Subscriptions: "_on_subscriptions", m.LastMatch: "_on_last_match", m.Error: "_on_error",
                         m.Heartbeat: None, m.StatusMsg: None, m.Activate: None},
                        decoder=RefusingDecoder(m.decoder, _Unreadable), refused="_on_invalid")

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (), channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        names = set(self.channel_names)
        self._want_trades = "trades" in names
        self._want_trades_l3 = "trades_l3" in names
        #: native -> sequence of the last published match (duplicates dropped)
        self._last_trade_seq: dict[str, int] = {}
        #: the level-3 books' sync (REST snapshot + buffered full-channel messages), and its
        #: products (those the ``subscriptions`` answer listed on ``full``)
        self.l3_sync = BookSync(
            self, Sequenced("sequence"),
            self._l3_request, self._apply_full, self._l3_load, book=LOB_L3, max_buffer=self.l3_buffer_limit,
            max_attempts=self.max_snapshot_attempts, retry_delay_ns=self.retry_delay_ns, gap=self._gap,
            overflow="level-3 buffer overflow")
        self.l3 = self.l3_sync.markets

    # --- instruments --------------------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_products(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_instrument(native)

    # --- subscriptions ------------------------------------------------------------------------
    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        msg: dict = {"type": "subscribe", "product_ids": natives, "channels": [channel]}
        if channel in AUTH_CHANNELS:
            msg.update(self.auth_fields())
        return [m.encode(msg).decode()]

    @staticmethod
    def auth_fields() -> dict:
        """The signature fields of an authenticated subscribe (``{}`` without credentials):
        HMAC-SHA256 of ``timestamp + "GET" + "/users/self/verify"`` with the base64-decoded
        secret, base64-encoded (Coinbase Exchange websocket authentication)."""
        key = os.environ.get("COINBASE_API_KEY", "")
        secret = os.environ.get("COINBASE_API_SECRET", "")
        passphrase = os.environ.get("COINBASE_API_PASSPHRASE", "")
        if not (key and secret and passphrase):
            return {}
        ts = f"{time.time():.3f}"
        try:
            digest = hmac.new(base64.b64decode(secret), f"{ts}GET/users/self/verify".encode(), hashlib.sha256).digest()
        except (ValueError, TypeError):
            return {}
        return {"signature": base64.b64encode(digest).decode(), "key": key, "passphrase": passphrase, "timestamp": ts}

    def resubscribe(self, conn: Connection, native: str, book: str = LOB) -> None:
        """Reload one book. Level 2: unsubscribe and subscribe its channel (a new snapshot).
        Level 3: buffer the product's messages again and fetch a new REST snapshot."""
        if book == LOB_L3:
            if native in self.l3:
                self.l3_sync.restart(conn, native)
            return
        channel = conn.state.get("coinbase_l2", {}).get(native) or self.channels["lob"]
        conn.send(m.encode({"type": "unsubscribe", "product_ids": [native], "channels": [channel]}).decode())
        for msg in self.subscribe_messages(channel, [native]):
            conn.send(msg)

    def on_close(self, conn: Connection, reason: str, recv_ns: int) -> None:
        """As the base (which drops the connection's level-3 books); their sync state goes too:
        the next connection's ``subscriptions`` answer starts it again."""
        for native in [n for n, st in self.l3.items() if st.conn is conn]:
            del self.l3[native]
        conn.state.pop("coinbase_subs", None)
        super().on_close(conn, reason, recv_ns)

    # --- frames -------------------------------------------------------------------------------
    def _on_full(self, conn: Connection, msg, data: bytes, recv_ns: int) -> None:
        """A sequenced full-channel message (received, open, done, change) of a product whose
        level-3 book is kept."""
        native = msg.product_id
        if native in self.l3:
            self.l3_sync.diff(conn, native, msg, msg.sequence, msg.sequence, 0, data, recv_ns)

    def _on_last_match(self, conn: Connection, msg: m.LastMatch, data: bytes, recv_ns: int) -> None:
        if msg.sequence > self._last_trade_seq.get(msg.product_id, -1):
            self._last_trade_seq[msg.product_id] = msg.sequence

    def _on_error(self, conn: Connection, msg: m.Error, data: bytes, recv_ns: int) -> None:
        self.bad_input("exchange error", f"{msg.message}: {msg.reason}", data)
        self.status("", "stopped", f"error: {msg.message}: {msg.reason}"[:500], recv_ns)

    def _on_invalid(self, conn: Connection, data: bytes, recv_ns: int, exc: Exception) -> None:
        """A frame that is no JSON (``_Unreadable``: counted, ``_unreadable``), or valid JSON
        that is not a well-formed known message: say what it was; a book message (level 2 or a
        sequenced level-3 one) that cannot be read resyncs that book."""
        detail = str(exc)
        if exc.__class__ is _Unreadable:
            self.bad_input("malformed JSON", detail, data)
            self._unreadable(conn, data, f"malformed JSON: {detail}"[:120], recv_ns)
            return
        try:
            head = m.any_decoder.decode(data)
        except DECODE_ERRORS:
            self.bad_input("unknown message", detail, data)
            return
        kind = head.type
        if kind.__class__ is not str or not (kind in _L2_TYPES or kind in _FULL_TYPES or kind in (
                "ticker", "last_match", "subscriptions", "heartbeat", "error", "activate", "status")):
            self.bad_input("unknown message", detail, data)
            return
        self.bad_input(f"malformed {kind} message", detail, data)
        native = head.product_id
        if native.__class__ is not str:
            if kind in _L2_TYPES:  # whose book it was cannot be told: every level-2 book of the connection
                self._l2_lost(conn, None, kind == "snapshot", f"unreadable frame: malformed {kind} message", recv_ns)
            return
        if kind in _L2_TYPES and (native in self.books or kind == "snapshot") and self.known(native, data):
            self.resync(conn, native, f"malformed {kind} message", recv_ns)
        if kind in _FULL_TYPES:
            st = self.l3.get(native)
            if st is not None and st.live:
                self.resync(st.conn, native, f"malformed {kind} message", recv_ns, LOB_L3)

    def _unreadable(self, conn: Connection, data: bytes, what: str, recv_ns: int) -> None:
        """A frame that is no JSON: unless its ``type`` says it is no level-2 message, the
        level-2 books it may have concerned resync (see the module's doc)."""
        found = _TYPE.search(data)
        reason = f"unreadable frame: {what}"
        if found is None:  # cannot be classified: it may have been any book message
            self._l2_lost(conn, None, True, reason, recv_ns)
            return
        kind = found.group(1)
        if kind == b"snapshot" or kind == b"l2update":
            product = _PRODUCT.search(data)
            native = product.group(1).decode("utf-8", "replace") if product is not None else None
            self._l2_lost(conn, native, kind == b"snapshot", reason, recv_ns)
        elif kind == b"subscriptions" and LOB_L3 in self.channel_names:
            l3_channel = self.channels[LOB_L3]
            for channel, natives in conn.plan.subscriptions:
                if channel == l3_channel:
                    for native in natives:
                        if native not in self.l3 and native in self.instruments:
                            self._l3_start(conn, native, recv_ns)

    def _l2_lost(self, conn: Connection, native: str | None, snapshot: bool, reason: str, recv_ns: int) -> None:
        """A level-2 message of ``native`` (None: of any product of ``conn``) was lost: a live
        book resyncs; a book resyncing already is subscribed again where the message lost may be
        its ``snapshot``."""
        if native is None:
            natives = set(conn.state.get("coinbase_l2", ()))
            natives.update(conn.state.get(_L2_BOOKS, ()))
            for channel, subscribed in conn.plan.subscriptions:
                if channel in _L2_CHANNELS:
                    natives.update(subscribed)
        else:
            natives = (native,)
        for n in sorted(natives):
            if n in self.unsynced:
                if snapshot:
                    self.resubscribe(conn, n)
            elif n in self.books:
                self.resync(conn, n, reason, recv_ns)

    # --- level 2 ------------------------------------------------------------------------------
    # Coinbase's gap reasons carry no "gap: " prefix (Scheme.gap adds one)
    def _gap(self, conn: Connection, native: str, reason: str, recv_ns: int, book: str = LOB) -> None:
        self.metrics.gaps += 1
        self.resync(conn, native, reason, recv_ns, book)

    def _crossed(self, conn: Connection, native: str, book: L2Book, recv_ns: int) -> bool:
        bp, _bs, ap, _as = book.best()
        if 0.0 < ap <= bp:
            self._gap(conn, native, f"book crossed: bid {bp!r} >= ask {ap!r}", recv_ns)
            return True
        return False

    def _on_snapshot(self, conn: Connection, msg: m.Snapshot, data: bytes, recv_ns: int) -> None:
        native = msg.product_id
        if not self.known(native, data):
            return
        # every level checked (parsed by the book, nothing applied) before the book is cleared
        book = self.books.get(native)
        if book is None:
            inst = self.instrument(native)
            book = L2Book(inst.price_decimals, inst.size_decimals)
        try:
            book.check_sides(msg.bids, msg.asks)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "malformed snapshot level", _bad_level(book, msg) or str(exc), data, recv_ns)
            return
        atom_us = recv_ns // 1000
        try:
            event_ms = rfc3339_to_ms(msg.time) if msg.time else atom_us // 1000
        except ValueError as exc:
            self.book_failed(conn, native, "malformed snapshot", str(exc), data, recv_ns)
            return
        self.books.setdefault(native, book)
        book = self.begin_snapshot(native, recv_ns, event_ms)
        carried = conn.state.get(_L2_BOOKS)
        if carried is None:
            carried = conn.state[_L2_BOOKS] = set()
        carried.add(native)
        # (the levels the book just read: bids, then asks, a lob row each)
        book.apply_sides(BID, msg.bids, msg.asks, self.rows("lob"), Lob, self.exchange, self._symbols[native], event_ms,
                         atom_us)
        if self._crossed(conn, native, book, recv_ns):
            return
        self.emit_spread(native, book, event_ms, atom_us)

    def _on_l2update(self, conn: Connection, msg: m.L2Update, data: bytes, recv_ns: int) -> None:
        """An ``l2update`` the route's ``SidedLevels`` did not apply (nothing of it applied): changes
        of both sides (applied in the message's order), no book yet, a reloading book (dropped), a
        malformed side, level or time, a product not cached yet. The same events as the route's for what it applies."""
        native = msg.product_id
        book = self.books.get(native)
        if book is None or native in self.unsynced:
            if book is None and native not in self.unsynced and self.known(native, data):
                self.resync(conn, native, "book update before its snapshot", recv_ns)
            return  # (a reloading book: nothing until its snapshot)
        changes = msg.changes
        # validate the whole message before touching the book: the sides here, the numbers by
        # the book (every level parsed before any is applied; a bad one: nothing applied)
        if len(changes) == 1:
            side, price, size = changes[0]
            if side == BUY:
                first = BID
            elif side == SELL:
                first = ASK
            else:
                self.book_failed(conn, native, "malformed book level", f"side {side!r}", data, recv_ns)
                return
            runs = ((first, ((price, size),)),)
        else:
            pd, sd = book.price_decimals, book.size_decimals
            for side, price, size in changes:
                if (side != BUY and side != SELL) or not valid_level(price, size, pd, sd):
                    self.book_failed(conn, native, "malformed book level", f"{side!r} {price!r} {size!r}", data, recv_ns)
                    return
            runs = _runs(changes)
        atom_us = recv_ns // 1000
        t = msg.time
        try:
            event_ms = rfc3339_to_ms(t) if t else atom_us // 1000
        except ValueError as exc:
            self.book_failed(conn, native, "malformed book timestamp", str(exc), data, recv_ns)
            return
        exchange = self.exchange
        symbol = self._symbols[native]
        rows = self.rows("lob")
        flags = 0
        try:
            for first, levels in runs:  # in the message's order: a lob row per change of the book
                flags |= book.apply_sides(first, levels, None, rows, Lob, exchange, symbol, event_ms, atom_us)
        except BOOK_ERRORS as exc:  # the single level of the message was refused (nothing applied)
            self.book_failed(conn, native, "malformed book level", str(exc), data, recv_ns)
            return
        if flags & CROSSED and self._crossed(conn, native, book, recv_ns):
            return
        if flags & TOP_CHANGED:
            book.spread_into(self.rows("spread"), Spread, exchange, symbol, event_ms, atom_us)

    # --- ticker, trades -----------------------------------------------------------------------
    def _on_ticker(self, conn: Connection, msg: m.Ticker, data: bytes, recv_ns: int) -> None:
        values = (msg.best_bid, msg.best_bid_size, msg.best_ask, msg.best_ask_size)
        if msg.best_bid is None and msg.best_ask is None:
            return  # no quote in it (nothing for the ticker topic)
        for v in values:
            if v is not None and not is_plain(v):
                self.bad_input("malformed ticker", repr(values), data)
                return
        atom_us = recv_ns // 1000
        try:
            event_ms = rfc3339_to_ms(msg.time) if msg.time else atom_us // 1000
        except ValueError as exc:
            self.bad_input("malformed ticker", str(exc), data)
            return
        if not self.known(msg.product_id, data):
            return
        # (a value not sent: 0; a value of 1e15 or more: refused by the writer, a malformed ticker)
        if not self.rows("ticker").quote(self.exchange, self._symbols[msg.product_id], msg.best_bid or 0.0,
                                         msg.best_bid_size or 0.0, msg.best_ask or 0.0, msg.best_ask_size or 0.0,
                                         event_ms, atom_us):
            self.bad_input("malformed ticker", repr(values), data)

    def _on_match(self, conn: Connection, msg: m.Match, data: bytes, recv_ns: int) -> None:
        native = msg.product_id
        side = msg.side
        if (side != BUY and side != SELL) or not is_plain(msg.price) or not is_plain(msg.size):
            self._bad_match(native, f"{side!r} {msg.price!r} {msg.size!r}", data, recv_ns)
            return
        atom_us = recv_ns // 1000
        try:
            event_ms = rfc3339_to_ms(msg.time)
        except ValueError as exc:
            self._bad_match(native, str(exc), data, recv_ns)
            return
        if native not in self._symbols and not self.known(native, data):
            return
        seq = msg.sequence
        if seq > self._last_trade_seq.get(native, -1):
            symbol = self._symbols[native]
            # side: the maker's, so the taker bought when the maker sold; a price of 0 or a value
            # of 1e15 or more (refused by the writer) is a malformed match
            if self._want_trades and not self.rows("trades").trade(self.exchange, symbol, msg.price, msg.size,
                                                                   side == SELL, msg.trade_id, event_ms, atom_us):
                self._bad_match(native, f"{side!r} {msg.price!r} {msg.size!r}", data, recv_ns)
                return
            self._last_trade_seq[native] = seq
            if self._want_trades_l3:
                self.emit("trades_l3", TradeL3(self.exchange, symbol, float(msg.price), float(msg.size), _OTHER[side],
                                               str(msg.trade_id), msg.maker_order_id, msg.taker_order_id, event_ms,
                                               atom_us))
        if native in self.l3:
            self.l3_sync.diff(conn, native, msg, seq, seq, 0, data, recv_ns)

    def _bad_match(self, native: str, detail: str, data: bytes, recv_ns: int) -> None:
        """A malformed match: counted, and the product's level-3 book (a live one) resynced."""
        self.bad_input("malformed match", detail, data)
        st = self.l3.get(native)
        if st is not None and st.live:
            self.resync(st.conn, native, "malformed match message", recv_ns, LOB_L3)

    # --- subscriptions, errors ----------------------------------------------------------------
    def _on_subscriptions(self, conn: Connection, msg: m.Subscriptions, data: bytes, recv_ns: int) -> None:
        """The answer to every (un)subscribe: ALL this connection's subscriptions. New ones are
        announced (status ``subscribed``); a new ``full`` product starts its level-3 sync."""
        current: set[tuple[str, str]] = set()
        l2 = conn.state.setdefault("coinbase_l2", {})
        for ch in msg.channels:
            if ch.__class__ is str:
                continue
            for pid in ch.product_ids:
                current.add((ch.name, pid))
        before = conn.state.get("coinbase_subs") or set()
        conn.state["coinbase_subs"] = current
        for name, pid in sorted(current - before):
            if not self.known(pid, data):
                continue
            self.status(self._symbols[pid], "subscribed", name, recv_ns)
            if name == "level2" or name == "level2_batch":
                l2[pid] = name
            elif name == "full":
                self._l3_start(conn, pid, recv_ns)

    # --- level 3 ------------------------------------------------------------------------------
    def _l3_start(self, conn: Connection, native: str, recv_ns: int) -> None:
        """A product's level-3 sync starts afresh: its book empty and untrusted until the snapshot,
        which is asked for."""
        self.l3book(native).clear()
        self.unsynced_l3.add(native)  # until the snapshot
        self.l3.pop(native, None)
        self.l3_sync.restart(conn, native)

    def _l3_url(self, native: str) -> str:
        return self.rest_url + self.rest_endpoint.routes.l3_snapshot.format(product=native)

    def _l3_native(self, url: str) -> str:
        """The product of a level-3 snapshot url ("" if it is none)."""
        head, _, tail = self.rest_endpoint.routes.l3_snapshot.partition("{product}")
        head = self.rest_url + head
        if not (url.startswith(head) and url.endswith(tail)) or len(url) <= len(head) + len(tail):
            return ""
        native = url[len(head):len(url) - len(tail)]
        return native if url == self._l3_url(native) else ""

    def _l3_request(self, conn: Connection, native: str) -> None:
        conn.fetch(self._l3_url(native))

    def _l3_fail(self, native: str, kind: str, detail: str, recv_ns: int) -> bool:
        self.bad_input(kind, f"{native}: {detail}", b"")
        self.resync(self.l3[native].conn, native, f"{kind}: {detail}", recv_ns, LOB_L3)
        return False

    def _apply_full(self, native: str, msg, data: bytes | None, recv_ns: int) -> bool:
        """Apply one in-sequence message to the level-3 book; False (and resynced) if it cannot
        be applied consistently."""
        cls = msg.__class__
        if cls is m.Received:
            return True
        try:
            event_ms = rfc3339_to_ms(msg.time) if msg.time else recv_ns // 1_000_000
        except ValueError as exc:
            return self._l3_fail(native, "malformed level-3 message", str(exc), recv_ns)
        atom_us = recv_ns // 1000
        book = self.l3books[native]
        symbol = self._symbols[native]
        oid = msg.maker_order_id if cls is m.Match else msg.order_id
        if cls is m.Open:
            side = msg.side
            if (side != BUY and side != SELL) or not oid or not valid_level(
                    msg.price, msg.remaining_size, book.price_decimals, book.size_decimals):
                return self._l3_fail(native, "malformed open", f"{side!r} {msg.price!r} {msg.remaining_size!r}", recv_ns)
            flags = book.add(oid, _SIDES[side], msg.price, msg.remaining_size)
            # (valid_level at the book's scale, 8 decimals or more: below 1e15, as the writer wants)
            self.rows("lob_l3").order(self.exchange, symbol, msg.price, msg.remaining_size, side == BUY, oid, event_ms,
                                      atom_us)
        else:
            order = book.order(oid)
            if order is None:
                if cls is m.Match:  # every maker rests on the book
                    return self._l3_fail(native, "inconsistent match", f"maker {oid!r} is not on the book", recv_ns)
                return True  # done/change of an order that never rested (received, market): ignored
            side_i, price, size = order
            if cls is m.Done:
                flags = book.remove(oid)
                new_price, new_size = price, "0"
            elif cls is m.Match:
                if msg.side != SIDE_NAMES[side_i]:
                    return self._l3_fail(native, "inconsistent match", f"maker {oid!r} is on the other side", recv_ns)
                sd = book.size_decimals
                try:
                    have, d1 = parse_decimal(size, sd)
                    fill, d2 = parse_decimal(msg.size, sd)
                except (ValueError, TypeError) as exc:
                    return self._l3_fail(native, "malformed match", str(exc), recv_ns)
                left = have - fill
                if fill <= 0 or left < 0:
                    return self._l3_fail(native, "inconsistent match", f"maker {oid!r} has {size}, match {msg.size}",
                                         recv_ns)
                new_price, new_size = price, format_ticks(left, sd, min(sd, max(d1, d2))) if left else "0"
                flags = book.update(oid, new_size)
            else:  # Change
                new_size = msg.new_size if msg.new_size is not None else size
                new_price = msg.new_price if msg.new_price is not None else price
                pd, sd = book.price_decimals, book.size_decimals
                if not valid_level(new_price, new_size, pd, sd):
                    return self._l3_fail(native, "malformed change", f"{new_price!r} {new_size!r}", recv_ns)
                try:
                    same_price = parse_decimal(new_price, pd)[0] == parse_decimal(price, pd)[0]
                    smaller = parse_decimal(new_size, sd)[0] <= parse_decimal(size, sd)[0]
                except (ValueError, TypeError) as exc:
                    return self._l3_fail(native, "malformed change", str(exc), recv_ns)
                if same_price and smaller:
                    flags = book.update(oid, new_size)  # keeps its place in the queue
                elif same_price:
                    flags = book.remove(oid) | book.add(oid, side_i, price, new_size)  # to the back
                else:
                    flags = book.change(oid, new_price, new_size)
            self.rows("lob_l3").order(self.exchange, symbol, new_price, new_size, side_i == BID, oid, event_ms, atom_us)
        if flags & TOP_CHANGED and native not in self.books:
            self.emit_spread(native, book, event_ms, atom_us)
        return True

    # --- REST: the level-3 snapshot -----------------------------------------------------------
    def on_rest(self, url: str, body: bytes, recv_ns: int) -> None:
        native = self._l3_native(url)
        if not native or not self.l3_sync.answered(native):
            return  # not ours, not asked for (or the state it was asked for is gone), or synced meanwhile
        try:
            snap = m.level3_decoder.decode(body)
        except DECODE_ERRORS as exc:
            self._snapshot_failed(native, str(exc), body, recv_ns)
            return
        book = self.l3books[native]
        pd, sd = book.price_decimals, book.size_decimals
        for levels in (snap.bids, snap.asks):
            for price, size, oid in levels:
                if not oid or not valid_level(price, size, pd, sd):
                    self._snapshot_failed(native, f"{price!r} {size!r} {oid!r}", body, recv_ns)
                    return
        # aligned by the kit: a snapshot older than the buffered stream is asked for again
        self.l3_sync.snapshot(native, snap.sequence, snap, body, recv_ns)

    def _l3_load(self, native: str, snap: m.Level3Book, body: bytes, recv_ns: int) -> bool:
        """The level-3 snapshot (checked) into the emptied book."""
        atom_us = recv_ns // 1000
        try:
            event_ms = rfc3339_to_ms(snap.time) if snap.time else atom_us // 1000
        except ValueError:
            event_ms = atom_us // 1000
        book = self.begin_snapshot_l3(native, recv_ns, event_ms)
        order, exchange, symbol = self.rows("lob_l3").order, self.exchange, self._symbols[native]
        add = book.add
        for side, levels in ((BID, snap.bids), (ASK, snap.asks)):
            bid = side == BID
            for price, size, oid in levels:
                add(oid, side, price, size)
                order(exchange, symbol, price, size, bid, oid, event_ms, atom_us)  # (checked: valid_level)
        if native not in self.books:
            self.emit_spread(native, book, event_ms, atom_us)
        return True

    def _snapshot_failed(self, native: str, detail: str, body: bytes, recv_ns: int) -> None:
        """A level-3 snapshot that cannot be read: counted; asked again on the product's next
        message, after the retry delay."""
        self.bad_input("malformed level-3 snapshot", detail, body)
        self.l3_sync.request_failed(native, recv_ns)

    def on_rest_error(self, url: str, exc: Exception, recv_ns: int) -> None:
        """A failed snapshot GET: asked again (after the retry delay) on the product's next message."""
        native = self._l3_native(url)
        st = self.l3.get(native) if native else None
        if st is not None and st.pending:
            self.l3_sync.request_failed(native, recv_ns)
