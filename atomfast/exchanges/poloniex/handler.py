"""Poloniex websocket API v3: spot (``poloniex``) and perpetual futures v3 (``poloniex-futures``).

Spot, ``wss://ws.poloniex.com/ws/public`` (api-docs.poloniex.com/spot/websocket/market-data):

- lob -> ``book_lv2`` (a 20-level snapshot, then updates of the first 20 levels: ``[price,
  size]``, size 0 removes the level), + our ``spread``;
- trades -> ``trades`` (``takerSide``, ``id``, ``createTime``);
- candle -> ``candles_minute_1``.
- The spot ``ticker`` channel is NOT collected: it carries 24-hour statistics (open, high, low,
  close, quantity, markPrice), no best bid or ask, and the ``ticker`` topic is a best bid/ask
  record; the spot top of book is published as ``spread`` from our own book.

Perpetual futures v3, ``wss://ws.poloniex.com/ws/v3/public``
(api-docs.poloniex.com/v3/futures/websocket/public/...):

- lob -> ``book_lv2`` (the same 20-level snapshot + updates, fields ``s``, ``lid``, ``id``,
  ``cT``, ``ts``), + ``spread``;
- funding_rate -> ``funding_rate`` (``fR``, ``nFR``, ``nFT``; every minute; no mark price in it:
  published as 0.0);
- open_interest -> ``open_interest`` (``oInterest``, in contracts).

Book verification (both): a snapshot replaces the book and sets its last id; an update must name
that id as its previous one (spot ``lastId``, futures ``lid``: "if the id of the last message
does not match the lid of the current message the client has lost connection with the server
and must re-subscribe", futures book_lv2 page; the spot page says the same of ``lastId``). Any
other value is a gap (a lost, repeated or reordered message): ``metrics.gaps`` + 1, status
``resync`` with the reason, the book dropped, ``book_lv2`` unsubscribed and subscribed again for
that market (its fresh snapshot rebuilds the book). A malformed book message is bad input and
resyncs too; every level is parsed before any is applied. The book is kept to the channel's depth
(20 a side): levels pushed out are published as removals. There is no checksum.

Keep-alive: the server closes a connection that sends nothing for 30 s; ``{"event": "ping"}`` is
sent every 20 s (answered with ``{"event": "pong"}``).
"""
from __future__ import annotations

import math
from typing import Sequence

from ..._book import json_levels
from ...book import BID
from ...events import Candle, FundingRate, Lob, OpenInterest, Spread
from ...kit.chain import Chain
from ...kit.dispatch import ByteAfter
from ...kit.shapes import ChainedSides
from ...scheme import (BOOK_ERRORS, DECODE_ERRORS, TOP_CHANGED, Connection, Dispatch, Instrument, RestEndpoint,
                       Routes, Scheme, WebsocketEndpoint)
from . import messages as m
from .._common import MAX_MS
from .parse import guess_instrument, is_plain, is_rate, ms_ok, ok_float, parse_markets, parse_products

#: levels a side that ``book_lv2`` keeps (both markets)
DEPTH = 20
#: every non-event message is ``{"channel": C, "data": [...], ...}``, written with ``channel``
#: first and without spaces: a frame that starts ``{"channel":"book_lv2"`` is routed in C (the
#: key: the channel's first byte) and decoded whole, its levels kept as raw JSON (``BookMsg``,
#: ``FBookMsg``) for the book to read; every other frame (events, trades, candles, funding, or a
#: book message written otherwise) goes the envelope's way (``_on_envelope``: the route table
#: ``envelope_dispatch``, the previous one, whose ``_on_book`` also words every book fault)
_BOOK_KEY = ord("b")
_PREFIX = b'{"channel":'
BOOK_FRAME = ByteAfter(_PREFIX, b'"', end=len(_PREFIX) + 1, only={_BOOK_KEY: (b'book_lv2"',)})
#: the book frame's common case, an update that follows the book's id, applied in C (the kit's
#: shape); what it does not take (a snapshot, a gap, a fault, a market not cached yet) goes to
#: ``_on_book_frame``. (``RawFBookItem`` names the futures fields ``s`` and ``lid`` as these.)
BOOK_UPDATE = ChainedSides(at="data", market="symbol", bids="bids", asks="asks", seq="id", prev="lastId",
                           time="ts", chain="chain", depth=DEPTH, otherwise="_on_book_frame",
                           where={"action": "update", "event": "", "channel": "book_lv2"})


class _PoloniexScheme(Scheme):
    """What spot and futures share: the envelope, events, subscriptions and the book rule."""

    unknown_market = "unknown market"
    symbols_per_message = 50
    ping_interval = 20.0
    silence_timeout = 30.0
    book_channel = "book_lv2"
    #: the book message's previous-id field (spot ``lastId``, futures ``lid``)
    prev_field = "lastId"
    perp = False
    book_items = m.book_decoder
    #: the route table of a frame taken whole (``{"channel": .., "data": <raw>, ..}`` or an event)
    envelope_dispatch: Dispatch

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (), channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        #: a frame the book route does not take, through the envelope's route table
        self._envelope = self.envelope_dispatch.bind(self)
        #: each update's ``prev_field`` must be the id of the last book message applied
        self.chain = Chain(self, linked=True, reason=f"{self.prev_field} {{prev}} is not the last id {{book}}")
        #: market -> id of the last book message applied
        self.ids: dict[str, int] = self.chain.ids

    def guess_instrument(self, native: str) -> Instrument:
        return guess_instrument(native, self.perp)

    # --- subscriptions ------------------------------------------------------------------------
    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        return [m.encode({"event": "subscribe", "channel": [channel], "symbols": natives}).decode()]

    def ping_message(self) -> str:
        return '{"event":"ping"}'

    def resubscribe(self, conn: Connection, native: str, book: str = "lob") -> None:
        """Reload one book: unsubscribe and subscribe its ``book_lv2`` (a fresh snapshot follows)."""
        conn.send(m.encode({"event": "unsubscribe", "channel": [self.book_channel], "symbols": [native]}).decode())
        conn.send(m.encode({"event": "subscribe", "channel": [self.book_channel], "symbols": [native]}).decode())

    def on_close(self, conn: Connection, reason: str, recv_ns: int) -> None:
        for channel, natives in conn.plan.subscriptions:
            if channel == self.book_channel:
                for n in natives:
                    self.ids.pop(n, None)
        super().on_close(conn, reason, recv_ns)

    # --- events -------------------------------------------------------------------------------
    def _on_subscribed(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        channel, symbols = msg.channel, msg.symbols
        if channel.__class__ is not str or symbols.__class__ is not list:
            self.bad_input("malformed subscription answer", repr(channel)[:100], data)
            return
        for native in symbols:
            if self.known(native, data):
                self.status(self._symbols[native], "subscribed", channel, recv_ns)

    def _on_error(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        text = str(msg.message)[:300]
        self.bad_input("exchange error", text, data)
        self.status("", "stopped", f"error: {text}", recv_ns)

    def _on_other(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        self.bad_input("unknown message", bytes(data[:100]).decode("utf-8", "replace"), data)

    # --- routing: a book frame whole, the rest by its envelope -------------------------------
    def _on_envelope(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """A frame the book route does not take: routed by its envelope (``envelope_dispatch``)."""
        self._envelope(conn, data, recv_ns)

    def _on_refused(self, conn: Connection, data: bytes, recv_ns: int, exc: Exception) -> None:
        """A ``{"channel":"book_lv2"`` frame its whole decoder refuses: read by its envelope,
        which says what is amiss (as it words a malformed book message or JSON)."""
        self._envelope(conn, data, recv_ns)

    def _on_book_frame(self, conn: Connection, msg, data: bytes, recv_ns: int) -> None:
        """A ``book_lv2`` frame decoded whole, its levels raw JSON, that ``BOOK_UPDATE`` (the
        update that follows, in C) did not take: a snapshot, or an update it handed over. The
        common case (one item, a cached market, a sound id and time, levels the book reads from
        the text) is applied here, as ``_on_book`` applies it; anything else, with nothing done,
        goes the envelope's way (``_on_book`` then words the fault)."""
        items = msg.data
        action = msg.action
        if msg.event or len(items) != 1 or msg.channel != "book_lv2":
            self._envelope(conn, data, recv_ns)
            return
        item = items[0]
        native = item.symbol
        symbol = self._symbols.get(native)
        ts, book_id = item.ts, item.id
        if not symbol or not (0 <= ts < MAX_MS and 0 <= book_id < 2**63):
            self._envelope(conn, data, recv_ns)
            return
        asks, bids = item.asks, item.bids
        book = self.books.get(native)
        if action == "update":
            if native in self.unsynced:
                return  # resyncing: its fresh snapshot is on its way
            last = self.ids.get(native)
            if last is None:
                return  # an update before the market's first snapshot (which follows the subscription)
            if item.lastId != last or book is None or not book.check_json_sides(bids, asks):
                self._envelope(conn, data, recv_ns)  # a gap, or levels the book does not read from the text
                return
        elif action == "snapshot":
            if book is None:  # (made as check_snapshot makes it, where the levels decode as it decodes them)
                if not (json_levels(bids) and json_levels(asks)):
                    self._envelope(conn, data, recv_ns)
                    return
                book = self.book(native)
            if not book.check_json_sides(bids, asks):
                self._envelope(conn, data, recv_ns)
                return
            self.begin_snapshot(native, recv_ns, ts)
        else:
            self._envelope(conn, data, recv_ns)
            return
        atom_us = recv_ns // 1000
        rows = self.rows("lob")
        exchange = self.exchange
        flags = book.apply_json_sides(BID, bids, asks, rows, Lob, exchange, symbol, ts, atom_us)
        flags |= book.apply_sides(BID, None, None, rows, Lob, exchange, symbol, ts, atom_us, DEPTH)  # the cut
        self.ids[native] = book_id
        if flags & TOP_CHANGED:
            book.spread_into(self.rows("spread"), Spread, exchange, symbol, ts, atom_us)

    # --- book ---------------------------------------------------------------------------------
    def _on_book(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        action = msg.action
        try:
            items = self.book_items.decode(msg.data)
        except DECODE_ERRORS as exc:
            self._book_unreadable(conn, data, str(exc), recv_ns)
            return
        if action != "snapshot" and action != "update":
            self._book_unreadable(conn, data, f"action {action!r}", recv_ns)
            return
        prev_field, snapshot = self.prev_field, action == "snapshot"
        for item in items:
            native = item.s if self.perp else item.symbol
            if not self.known(native, data):
                continue
            if not (ms_ok(item.ts) and 0 <= item.id < 2**63):
                self.book_failed(conn, native, "malformed book message", f"ts {item.ts!r} id {item.id!r}", data,
                                 recv_ns)
                continue
            if snapshot:
                self._snapshot(conn, native, item, data, recv_ns)
                continue
            if native in self.unsynced:
                continue  # resyncing: its fresh snapshot is on its way
            last = self.ids.get(native)
            if last is None:
                continue  # an update before the market's first snapshot (which follows the subscription)
            if not self.chain.follows(conn, native, item.id, item.id, getattr(item, prev_field), recv_ns):
                continue
            self._apply(conn, native, item, data, recv_ns)

    def _book_unreadable(self, conn: Connection, data: bytes, detail: str, recv_ns: int) -> None:
        """A book message that cannot be read: counted; the market it names (if it names one we
        hold) cannot be trusted without it."""
        self.bad_input("malformed book message", detail[:200], data)
        try:
            import json
            obj = json.loads(bytes(data))
            names = [d.get("s" if self.perp else "symbol") for d in obj.get("data", []) if isinstance(d, dict)]
        except (ValueError, AttributeError, TypeError, RecursionError):
            return
        for native in names:
            if native.__class__ is str and native in self.books:
                self.resync(conn, native, f"malformed book message: {detail[:200]}", recv_ns)

    def _snapshot(self, conn: Connection, native: str, item, data: bytes, recv_ns: int) -> None:
        if not self.check_snapshot(conn, native, item.bids, item.asks, data, recv_ns):
            return
        event_ms = item.ts
        atom_us = recv_ns // 1000
        book = self.begin_snapshot(native, recv_ns, event_ms)
        flags = book.apply_sides(BID, item.bids, item.asks, self.rows("lob"), Lob, self.exchange,
                                 self._symbols[native], event_ms, atom_us, DEPTH)
        self.chain.set(native, item.id)
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)

    def _apply(self, conn: Connection, native: str, item, data: bytes, recv_ns: int) -> None:
        book = self.books[native]
        event_ms = item.ts
        atom_us = recv_ns // 1000
        try:  # every level parsed before any is applied; then kept to the channel's depth
            flags = book.apply_sides(BID, item.bids, item.asks, self.rows("lob"), Lob, self.exchange,
                                     self._symbols[native], event_ms, atom_us, DEPTH)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "malformed book update", str(exc), data, recv_ns)
            return
        self.chain.set(native, item.id)
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)


class PoloniexScheme(_PoloniexScheme):
    exchange = "poloniex"
    websocket_endpoints = (WebsocketEndpoint("wss://ws.poloniex.com/ws/public"),)
    rest_endpoint = RestEndpoint("https://api.poloniex.com", Routes(instruments="/markets"))
    dispatch = Dispatch({_BOOK_KEY: BOOK_UPDATE}, decoders={_BOOK_KEY: m.book_msg_decoder}, prefilter=BOOK_FRAME,
                        fallback="_on_envelope", refused="_on_refused")
    channels = {"lob": "book_lv2", "trades": "trades", "candle": "candles_minute_1"}
    default_channels = ("lob", "trades")
    default_symbols = ("BTC-USDT", "ETH-USDT")
    envelope_dispatch = Dispatch({"book_lv2": "_on_book", "trades": "_on_trades", "candles_minute_1": "_on_candles",
                                  "event:subscribe": "_on_subscribed", "event:unsubscribe": None, "event:pong": None,
                                  "event:error": "_on_error"},
                                 decoder=m.envelope_decoder, field="route", lead=b"{", unrouted="unknown channel")

    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_markets(body)

    def _on_trades(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        try:
            items = m.trades_decoder.decode(msg.data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed trade", str(exc), data)
            return
        atom_us = recv_ns // 1000
        write = self.rows("trades").trade
        for t in items:
            side = t.takerSide
            # plain decimals, a taker side, a time, an id; then the writer's ranges (the price in
            # (0, 1e15), the quantity below 1e15): each trade on its own
            if not (is_plain(t.price) and is_plain(t.quantity)) or (side != "buy" and side != "sell") \
                    or not ms_ok(t.createTime) or not (0 < len(t.id) <= 40):
                self.bad_input("malformed trade", f"{t.price!r} {t.quantity!r} {t.takerSide!r} {t.id[:40]!r}", data)
                continue
            if not self.known(t.symbol, data):
                continue
            if not write(self.exchange, self._symbols[t.symbol], t.price, t.quantity, side == "buy", t.id,
                         t.createTime, atom_us):
                self.bad_input("malformed trade", f"{t.price!r} {t.quantity!r} {t.takerSide!r} {t.id[:40]!r}", data)

    def _on_candles(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        try:
            items = m.candles_decoder.decode(msg.data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed candle", str(exc), data)
            return
        atom_us = recv_ns // 1000
        for c in items:
            if not all(is_plain(x) for x in (c.open, c.high, c.low, c.close, c.quantity)) \
                    or not (ms_ok(c.startTime) and ms_ok(c.closeTime) and ms_ok(c.ts)) or not 0 <= c.tradeCount < 2**31:
                self.bad_input("malformed candle", f"{c.open!r} {c.close!r} {c.startTime!r}", data)
                continue
            if not self.known(c.symbol, data):
                continue
            self.emit("candle", Candle(self.exchange, self._symbols[c.symbol], c.startTime, c.closeTime, "1m",
                                       c.tradeCount, c.ts > c.closeTime, float(c.open), float(c.high), float(c.low),
                                       float(c.close), float(c.quantity), c.ts, atom_us))


class PoloniexFuturesScheme(_PoloniexScheme):
    exchange = "poloniex-futures"
    websocket_endpoints = (WebsocketEndpoint("wss://ws.poloniex.com/ws/v3/public"),)
    rest_endpoint = RestEndpoint("https://api.poloniex.com", Routes(instruments="/v3/market/allInstruments"))
    dispatch = Dispatch({_BOOK_KEY: BOOK_UPDATE}, decoders={_BOOK_KEY: m.fbook_msg_decoder}, prefilter=BOOK_FRAME,
                        fallback="_on_envelope", refused="_on_refused")
    channels = {"lob": "book_lv2", "funding_rate": "funding_rate", "open_interest": "open_interest"}
    default_channels = ("lob", "funding_rate", "open_interest")
    #: the one contract the documented listing (tests/data/poloniex/POLONIEX_FUTURES.0) names
    default_symbols = ("BTC-USDT-PERP",)
    unknown_market = "unknown contract"
    prev_field = "lid"
    perp = True
    book_items = m.fbook_decoder
    envelope_dispatch = Dispatch({"book_lv2": "_on_book", "funding_rate": "_on_funding",
                                  "open_interest": "_on_open_interest", "event:subscribe": "_on_subscribed",
                                  "event:unsubscribe": None, "event:pong": None, "event:error": "_on_error"},
                                 decoder=m.envelope_decoder, field="route", lead=b"{", unrouted="unknown channel")

    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_products(body)

    def _on_funding(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        try:
            items = m.funding_decoder.decode(msg.data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed funding rate", str(exc), data)
            return
        atom_us = recv_ns // 1000
        for f in items:
            if not (is_rate(f.fR) and is_rate(f.nFR) and ms_ok(f.ts) and ms_ok(f.nFT)):
                self.bad_input("malformed funding rate", f"{f.fR!r} {f.nFR!r} {f.nFT!r}", data)
                continue
            rate, predicted = float(f.fR), float(f.nFR)
            if not (math.isfinite(rate) and math.isfinite(predicted)):
                self.bad_input("malformed funding rate", f"{f.fR!r} {f.nFR!r}", data)
                continue
            if not self.known(f.s, data):
                continue
            self.emit("funding_rate", FundingRate(self.exchange, self._symbols[f.s], 0.0, rate, f.nFT, predicted, f.ts,
                                                  atom_us))

    def _on_open_interest(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        try:
            items = m.oi_decoder.decode(msg.data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed open interest", str(exc), data)
            return
        atom_us = recv_ns // 1000
        for o in items:
            if not (is_plain(o.oInterest) and ms_ok(o.ts)) or not ok_float(float(o.oInterest)):
                self.bad_input("malformed open interest", f"{o.oInterest!r} {o.ts!r}", data)
                continue
            if not self.known(o.s, data):
                continue
            self.emit("open_interest", OpenInterest(self.exchange, self._symbols[o.s], float(o.oInterest), o.ts, atom_us))
