"""Phemex (``wss://phemex.com/ws``): ``PhemexScheme`` (``phemex``: spot, and the scaled
"Perpetual" contracts the same channels serve) and ``PhemexFuturesScheme`` (``phemex-futures``:
USDT-M perpetuals on the ``_p`` channels, and the scaled contracts).

Channel map (atomfast topic -> Phemex channel; a USDT-M market takes the channel's ``_p`` form,
``orderbook_p``, ``trade_p``, ``kline_p``, with prices and sizes as strings; spot and the
"Perpetual" contracts the plain one, with scaled integers: see ``parse``):

==================  ==========================  ==================================================
topic               channel                     published from
==================  ==========================  ==================================================
lob (+spread)       ``orderbook`` / ``_p``      snapshot, then incremental levels (30 a side)
trades              ``trade`` / ``_p``          incremental trades (taker side as sent)
candle              ``kline`` / ``_p`` (60 s)   the current 1-minute kline
ticker              ``perp_market24h_pack_p``   USDT-M, where its legend names ``bidRp``/``askRp``
funding_rate        ``perp_market24h_pack_p``   ``fundingRateRr``, ``predFundingRateRr``, ``markRp``
open_interest       ``perp_market24h_pack_p``   ``openInterestRv``
==================  ==========================  ==================================================

Book verification (Phemex's docs, "OrderBook Message": "Incremental messages are published with
20ms interval. And snapshot messages are published with 60-second interval for client
self-verification"; ``sequence`` is the "Latest message sequence"):

- ``sequence`` only increases, with gaps (it is not contiguous: a lost message cannot be seen
  from it). An incremental whose ``sequence`` is not above the book's is a repeated or reordered
  message: a gap (``gaps`` + 1, status ``resync`` "sequence: ..."), the book is dropped and its
  channel subscribed again for that market, whose answer is a fresh snapshot (the next
  periodic snapshot reloads it too).
- Every periodic snapshot of a live book is compared with our book, level by level (exact
  ticks, both sides whole: Phemex's incremental messages keep the 30 levels, removing the ones
  that fall out): equal, ``checksum_ok`` + 1; different (a message lost, or one applied wrong),
  ``checksum_failed`` + 1, status ``resync`` "snapshot differs ...", and the book is rebuilt
  from that snapshot at once. A snapshot older than the book (``sequence`` below it) is a
  reordering: a gap.
- A malformed book message resyncs the book (bad input). What cannot be verified: a lost
  message between two periodic snapshots until the next one (at most 60 s), and one whose
  changes later messages overwrote before it.

Trades: Phemex gives no trade id (``trade_id`` is ""); the ``snapshot`` sent on subscription
holds the last trades ("for client recovery"): on the first subscription of a market none is
published (they happened before the collector came), on a later one (a reconnect) those newer
than the last trade published are. Sizes are the venue's units: base currency for spot and
USDT-M, contracts for the "Perpetual" contracts.

Candles: the ``kline`` snapshot (history) gives the current candle only (its newest row);
incremental rows update it; when a later start arrives the previous candle is published once
more with ``closed`` True. Phemex counts no trades (``trades`` 0); the candle carries no event
time (``event_timestamp`` is the receive time).

``perp_market24h_pack_p`` (USDT-M, every market in each message): its columns are named by
``fields``, sent with the snapshot; later messages may leave it out and use the last one
received on that connection. funding_rate: ``funding_rate`` = ``fundingRateRr``,
``predicted_rate`` = ``predFundingRateRr``, ``mark_price`` = ``markRp``, published when a rate
changes; the pack carries no funding time (``next_funding_time`` 0). open_interest:
``openInterestRv`` when it changes. The pack's rows are read for the markets collected (with no
``--symbols``, a replay: the markets the listing names). ticker: the docs' pack has no best bid/ask; where the legend
names ``bidRp`` and ``askRp`` they are published (sizes 0.0: the pack has none).

Keep-alive: ``server.ping`` every 5 s (the docs: less than 30 s, 5 s recommended).
"""
from __future__ import annotations

import math
from operator import itemgetter
from typing import Sequence

from ...book import ASK, BID, parse_ticks
from ...events import Candle, FundingRate, Lob, OpenInterest
from ...kit.dispatch import ByteAfter
from ...scheme import (BOOK_ERRORS, DECODE_ERRORS, LOB, TOP_CHANGED, Connection, Dispatch, Instrument,
                       RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from . import messages as m
from .parse import (MAX_FLOAT, MAX_NS, MAX_SCALED, MAX_VALUE, guess_instrument, hedged, is_plain, ns_ok, ok_float,
                    parse_products, scaled_float, scaled_text)

# route keys (read on the raw bytes by ``_route``)
BOOK, BOOK_P, TRADES, TRADES_P, KLINE, KLINE_P, PACK, ANSWER = (b"book", b"book_p", b"trades", b"trades_p",
                                                                b"kline", b"kline_p", b"pack", b"answer")
_MARKERS = ((b'"book":', BOOK), (b'"orderbook_p":', BOOK_P), (b'"trades":', TRADES), (b'"trades_p":', TRADES_P),
            (b'"kline":', KLINE), (b'"kline_p":', KLINE_P), (b'"perp_market24h_pack_p.update"', PACK),
            (b'"result":', ANSWER), (b'"error":', ANSWER))
#: the byte after ``{"`` of a frame that starts ``{"book":`` (``dispatch``)
_LEAD_BOOK = ord("b")
_NO_BOOK_MARKERS = _MARKERS[2:]  # the markers after the two that hold "book"
_WHAT = {BOOK: "book message", BOOK_P: "book message", TRADES: "trades", TRADES_P: "trades", KLINE: "kline",
         KLINE_P: "kline", PACK: "market24h pack", ANSWER: "answer"}
_SIDES = ("Buy", "Sell")  # the taker's
_TIME, _PRICE, _SIZE = itemgetter(0), itemgetter(2), itemgetter(3)  # a scaled trade's
#: 10**scale (a scaled integer's divisor: ``p / _TEN[scale]`` is ``scaled_float(p, scale)``)
_TEN = tuple(10**k for k in range(19))
_LEVEL_PRICE = itemgetter(0)
#: ticks below this are applied as they are (``L2Book.apply_scaled_sides``), from it as text
_EXACT = 2**53
#: from this scale on a scaled integer below 2**63 is below 1e15 (``MAX_VALUE``) once scaled
_BOUNDED = next(k for k in range(19) if MAX_SCALED / 10**k < MAX_VALUE)
_INTERVALS = {60: "1m", 300: "5m", 900: "15m", 1800: "30m", 3600: "1h", 14400: "4h", 86400: "1d", 604800: "1w",
              2592000: "1M", 7776000: "3M", 31104000: "1y"}
_PACK = "perp_market24h_pack"
_FIELDS_KEY = "phemex_pack_fields"  # conn.state: the pack's last legend on this connection
#: pack columns read (``fields`` names them)
_COLUMNS = ("symbol", "markRp", "fundingRateRr", "predFundingRateRr", "openInterestRv", "bidRp", "askRp")


def _text_float(v, signed: bool = False) -> float | None:
    """A pack value (a decimal string, or a JSON number) as a float; None if malformed or absurd."""
    cls = v.__class__
    if cls is str:
        t = v[1:] if signed and v[:1] == "-" else v
        if not is_plain(t):
            return None
        x = float(v)
    elif cls is float or cls is int:
        x = float(v)
    else:
        return None
    if signed:
        return x if math.isfinite(x) and abs(x) < MAX_FLOAT else None
    return x if ok_float(x) else None


def _ticks(levels: list) -> bool:
    """Whether a scaled book message's levels (msgspec's ``(int, int)`` pairs) are all what
    ``L2Book.apply_scaled_sides`` takes and ``scaled_text`` + ``check_sides`` would: values in
    [0, 2**53), prices above 0."""
    return not levels or (min(map(min, levels)) >= 0 and max(map(max, levels)) < _EXACT
                          and min(map(_LEVEL_PRICE, levels)) > 0)


def kind_of(data: bytes) -> bytes | None:
    """The kind of a message: the first of ``_MARKERS`` it holds (None: none of ours). One scan
    for ``book`` tells whether the two book markers need looking for (a trade snapshot is long)."""
    for marker, key in (_MARKERS if b"book" in data else _NO_BOOK_MARKERS):
        if marker in data:
            return key
    return None


class PhemexScheme(Scheme):
    exchange = "phemex"
    websocket_endpoints = (WebsocketEndpoint("wss://phemex.com/ws"),)
    #: the current listing (spot, contracts, USDT-M perpetuals), and the older one the capture
    #: recorded (merged; a later one wins for a market both name)
    rest_endpoint = RestEndpoint("https://api.phemex.com", Routes(
        instruments=("/exchange/public/cfg/v2/products", "/public/products")))
    channels = {"lob": "orderbook", "trades": "trade", "candle": "kline"}
    default_channels = ("lob", "trades")
    default_symbols = ("BTC-USDT", "ETH-USDT")
    #: the docs: 20 subscriptions a connection, 20 requests a second
    subscriptions_per_connection = 20
    symbols_per_message = 1
    ping_interval = 5.0
    silence_timeout = 20.0
    #: kline interval subscribed (seconds)
    kline_interval = 60
    #: the common frame, a scaled book message (``{"book":..``), routed in C (what ``_route``
    #: says of it: ``BOOK``); every other frame goes to ``_on_unrouted``, which routes it by
    #: ``_route`` through the same table
    dispatch = Dispatch({_LEAD_BOOK: "_on_book", BOOK: "_on_book", BOOK_P: "_on_book_p", TRADES: "_on_trades",
                         TRADES_P: "_on_trades_p", KLINE: "_on_kline", KLINE_P: "_on_kline_p", PACK: "_on_pack",
                         ANSWER: "_on_answer"},
                        prefilter=ByteAfter(b"{", b'"', end=2, only={_LEAD_BOOK: (b'book":',)}),
                        decoders={_LEAD_BOOK: m.book_decoder, BOOK: m.book_decoder, BOOK_P: m.book_p_decoder,
                                  TRADES: m.trades_decoder, TRADES_P: m.trades_p_decoder, KLINE: m.kline_decoder,
                                  KLINE_P: m.kline_p_decoder, PACK: m.pack_decoder, ANSWER: m.answer_decoder},
                        fallback="_on_unrouted", refused="_on_invalid")

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        #: native -> the sequence of the last book message applied
        self.sequences: dict[str, int] = {}
        #: native -> the time (ns) of the newest trade seen (published or in a first snapshot)
        self._last_trade: dict[str, int] = {}
        #: native -> the current candle
        self._candles: dict[str, Candle] = {}
        self._last_funding: dict[str, tuple[float, float]] = {}
        self._last_oi: dict[str, float] = {}
        self._last_ticker: dict[str, tuple[float, float]] = {}
        self._next_id = 1
        #: a resync whose snapshot is at hand (no resubscription)
        self._reloading = False
        wanted = set(self.channel_names)
        self._want_ticker = "ticker" in wanted
        self._want_funding = "funding_rate" in wanted
        self._want_oi = "open_interest" in wanted
        #: the markets the pack is read for: the configured ones (``plan``), else the listed ones
        #: (None: no listing, every market it names)
        self._pack_markets: set[str] | None = set(self.instruments) or None

    # --- instruments --------------------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_products(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_instrument(native)

    # --- subscriptions ------------------------------------------------------------------------
    def _request(self, method: str, params: list) -> str:
        rid = self._next_id
        self._next_id += 1
        return m.encode({"id": rid, "method": method, "params": params}).decode()

    def _method(self, channel: str, native: str) -> str:
        return f"{channel}_p.subscribe" if hedged(self.instrument(native)) else f"{channel}.subscribe"

    def plan_natives(self, channel: str, natives: list[str]) -> list[str]:
        if channel == _PACK:  # one subscription serves every USDT-M market
            return [n for n in natives if hedged(self.instrument(n))][:1]
        return natives

    def plan(self, url: str | None = None):
        if self.symbols:
            self._pack_markets = set(self.native_symbols())
        return super().plan(url)

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        if channel == _PACK:
            return [self._request("perp_market24h_pack_p.subscribe", [])] if natives else []
        if channel == "kline":
            return [self._request(self._method(channel, n), [n, self.kline_interval]) for n in natives]
        return [self._request(self._method(channel, n), [n]) for n in natives]

    def ping_message(self) -> str:
        return self._request("server.ping", [])

    def resubscribe(self, conn: Connection, native: str, book: str = LOB) -> None:
        """Reload one book: its channel subscribed again (the answer is a snapshot); the periodic
        snapshot reloads it too."""
        if not self._reloading:
            conn.send(self._request(self._method("orderbook", native), [native]))

    # --- frames -------------------------------------------------------------------------------
    def _route(self, conn: Connection, data: bytes) -> bytes | None:
        """The kind of a message, from the key only that kind holds (None: none of ours)."""
        return kind_of(data)

    def _on_unrouted(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """A frame that does not start as a book message: its kind by ``_route``, then that
        route's decoder and handler (as the dispatch runs a route: a refusal to ``_on_invalid``)."""
        key = self._route(conn, data)
        if key is None:
            self._on_other(conn, data, recv_ns)
            return
        try:
            msg = self.dispatch.decoders[key].decode(data)
        except DECODE_ERRORS as exc:
            self._on_invalid(conn, data, recv_ns, exc)
            return
        self.route(key)(conn, msg, data, recv_ns)

    def _on_other(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        try:
            m.any_decoder.decode(data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed JSON", str(exc), data)
            return
        self.bad_input("unknown message", "no book, trades, kline, pack or answer", data)

    def _on_invalid(self, conn: Connection, data: bytes, recv_ns: int, exc: Exception) -> None:
        """A frame its kind's decoder refused: counted; a book message resyncs its book."""
        key = self._route(conn, data)
        if key is TRADES:  # the values its decoder refused: the scheme's own checks say what is wrong
            try:
                msg = m.trades_any_decoder.decode(data)
            except DECODE_ERRORS as any_exc:
                exc = any_exc  # (not a trades message: as that decoder words it)
            else:
                self._on_trades_any(conn, msg, data, recv_ns)
                return
        what = f"malformed {_WHAT.get(key, 'message')}"
        try:
            native = m.head_decoder.decode(data).symbol
        except DECODE_ERRORS:
            native = None
        if (key is BOOK or key is BOOK_P) and native.__class__ is str and native in self.books:
            self.book_failed(conn, native, what, str(exc), data, recv_ns)
        else:
            self.bad_input(what, str(exc), data)

    def _on_answer(self, conn: Connection, msg: m.Answer, data: bytes, recv_ns: int) -> None:
        if msg.error is not None:
            self.bad_input("exchange error", f"request {msg.id!r}: {msg.error.code!r} {msg.error.message!r}"[:300], data)

    # --- books --------------------------------------------------------------------------------
    def _on_book(self, conn: Connection, msg: m.Book, data: bytes, recv_ns: int) -> None:
        """A scaled book message. Its values are the book's ticks (the book has the instrument's
        scales): an in-order incremental on a live book, and a snapshot of ticks in [0, 2**53),
        are applied as they are (``L2Book.apply_scaled_sides``); anything else goes the way of
        decimal text (``scaled_text``, ``_book``), which says what is wrong with it."""
        native = msg.symbol
        seq, ts, kind = msg.sequence, msg.timestamp, msg.type
        symbol = self._symbols.get(native)
        book = self.books.get(native)
        if (book is not None and symbol is not None and kind == "incremental" and native not in self.unsynced
                and 0 <= ts < MAX_NS and seq > self.sequences[native]):
            # the common case: an incremental message on a live book, in order (what ``_book``
            # checks first, checked); its scaled integers are the book's ticks (the book has the
            # instrument's scales): applied as they are
            sides = msg.book
            event_ms = ts // 1_000_000
            atom_us = recv_ns // 1000
            try:
                flags = book.apply_scaled_sides(BID, sides.bids, sides.asks, self.rows("lob"), Lob, self.exchange,
                                                symbol, event_ms, atom_us)
            except BOOK_ERRORS:
                pass  # (nothing applied) a value out of range, or 2**53 ticks or more: the steps below
            else:
                self.sequences[native] = seq
                if flags & TOP_CHANGED:
                    self.emit_spread(native, book, event_ms, atom_us)
                return
        elif kind == "snapshot" and 0 <= ts < MAX_NS and seq >= 0:
            # a snapshot whose values are all ticks the book takes as they are (what the text
            # below would be, checked by ``check_sides``): no text made
            if not self.known(native, data):
                return
            sides = msg.book
            if _ticks(sides.bids) and _ticks(sides.asks):
                self._snapshot(conn, native, sides.bids, sides.asks, seq, ts, data, recv_ns, scaled=True)
                return
        if not self.known(native, data):
            return
        inst = self.instrument(native)
        pd, sd = inst.price_decimals, inst.size_decimals
        try:
            bids = [(scaled_text(p, pd), scaled_text(s, sd)) for p, s in msg.book.bids]
            asks = [(scaled_text(p, pd), scaled_text(s, sd)) for p, s in msg.book.asks]
        except (ValueError, OverflowError) as exc:
            self._malformed(conn, native, str(exc), data, recv_ns)
            return
        self._book(conn, native, bids, asks, msg.sequence, msg.timestamp, msg.type, data, recv_ns)

    def _on_book_p(self, conn: Connection, msg: m.BookP, data: bytes, recv_ns: int) -> None:
        native = msg.symbol
        if not self.known(native, data):
            return
        self._book(conn, native, msg.orderbook_p.bids, msg.orderbook_p.asks, msg.sequence, msg.timestamp, msg.type,
                   data, recv_ns)

    def _malformed(self, conn: Connection, native: str, detail: str, data: bytes, recv_ns: int) -> None:
        """A book message that cannot be applied: a live book resyncs; otherwise counted."""
        if native in self.books and native not in self.unsynced:
            self.book_failed(conn, native, "malformed book message", detail, data, recv_ns)
        else:
            self.bad_input("malformed book message", detail, data)

    def _book(self, conn: Connection, native: str, bids, asks, seq: int, ts: int, kind: str, data: bytes,
              recv_ns: int) -> None:
        if not ns_ok(ts) or seq.__class__ is not int or seq < 0:
            self._malformed(conn, native, f"timestamp {ts!r} sequence {seq!r}", data, recv_ns)
            return
        if kind == "snapshot":
            self._snapshot(conn, native, bids, asks, seq, ts, data, recv_ns)
            return
        if kind != "incremental":
            self._malformed(conn, native, f"type {kind!r}", data, recv_ns)
            return
        book = self.books.get(native)
        if book is None or native in self.unsynced:
            return  # waiting for the snapshot of the subscription
        last = self.sequences[native]
        if seq <= last:
            self.gap(conn, native, f"sequence {seq} not above the book's {last}", recv_ns, kind="sequence")
            return
        event_ms = ts // 1_000_000
        atom_us = recv_ns // 1000
        try:
            flags = book.apply_sides(BID, bids, asks, self.rows("lob"), Lob, self.exchange, self._symbols[native],
                                     event_ms, atom_us)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "malformed book message", str(exc), data, recv_ns)
            return
        self.sequences[native] = seq
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)

    def _differs(self, book, bids, asks, scaled: bool = False) -> str:
        """"" if the snapshot's levels are the book's (exact ticks), else where they differ
        (``scaled``: the levels are ticks already, ``_ticks``)."""
        pd, sd = book.price_decimals, book.size_decimals
        for side, name, levels in ((BID, "bids", bids), (ASK, "asks", asks)):
            want = levels if scaled else [(parse_ticks(p, pd), parse_ticks(s, sd)) for p, s in levels]
            want = sorted((lv for lv in want if lv[1]), reverse=side == BID)
            have = [(parse_ticks(p, pd), parse_ticks(s, sd)) for p, s in book.levels(side)]
            if want != have:
                i = next((i for i, (a, b) in enumerate(zip(want, have)) if a != b), min(len(want), len(have)))
                return f"{name} differ from level {i} ({len(have)} levels held, {len(want)} sent)"
        return ""

    def _snapshot(self, conn: Connection, native: str, bids, asks, seq: int, ts: int, data: bytes,
                  recv_ns: int, scaled: bool = False) -> None:
        """A snapshot's levels: decimal text, or (``scaled``) ticks that ``_ticks`` checked."""
        book = self.book(native)
        if not scaled:
            try:
                book.check_sides(bids, asks)
            except BOOK_ERRORS as exc:
                self._malformed(conn, native, str(exc), data, recv_ns)
                return
        if native in self.sequences and native not in self.unsynced:  # a live book: verify it
            last = self.sequences[native]
            if seq < last:
                self.gap(conn, native, f"snapshot sequence {seq} below the book's {last}", recv_ns, kind="sequence")
                return
            differs = self._differs(book, bids, asks, scaled)
            if not differs:
                self.metrics.checksum_ok += 1
                self.sequences[native] = seq
                return
            self.metrics.checksum_failed += 1
            self._reloading = True  # the snapshot at hand rebuilds it
            try:
                self.resync(conn, native, f"snapshot differs: {differs}", recv_ns)
            finally:
                self._reloading = False
        event_ms = ts // 1_000_000
        atom_us = recv_ns // 1000
        book = self.begin_snapshot(native, recv_ns, event_ms)
        apply = book.apply_scaled_sides if scaled else book.apply_sides
        apply(BID, bids, asks, self.rows("lob"), Lob, self.exchange, self._symbols[native], event_ms, atom_us)
        self.sequences[native] = seq
        self.emit_spread(native, book, event_ms, atom_us)

    # --- trades -------------------------------------------------------------------------------
    def _on_trades(self, conn: Connection, msg: m.Trades, data: bytes, recv_ns: int) -> None:
        """A scaled trades message whose values its decoder checked (``m.Trades``)."""
        native = msg.symbol
        if not self.known(native, data):
            return
        trades, kind = msg.trades, msg.type
        if trades and (kind == "snapshot" or kind == "incremental"):
            inst = self.instrument(native)
            pd, sd = inst.price_decimals, inst.size_decimals
            pdiv, sdiv = _TEN[pd], _TEN[sd]
            # below 1e15 once scaled: sure from 4 decimals on (the decoder's bound, 2**63)
            if ((pd >= _BOUNDED or max(map(_PRICE, trades)) / pdiv < MAX_VALUE)
                    and (sd >= _BOUNDED or max(map(_SIZE, trades)) / sdiv < MAX_VALUE)):
                self._scaled_trades(native, trades, max(map(_TIME, trades)), kind, pdiv, sdiv, recv_ns)
                return
        self._on_trades_any(conn, msg, data, recv_ns)

    def _on_trades_any(self, conn: Connection, msg: m.Trades | m.TradesAny, data: bytes, recv_ns: int) -> None:
        """A scaled trades message, every value checked here (what is wrong with it said)."""
        native = msg.symbol
        if not self.known(native, data):
            return
        inst = self.instrument(native)
        pd, sd = inst.price_decimals, inst.size_decimals
        try:
            rows = [(ts, side, scaled_float(p, pd), scaled_float(q, sd)) for ts, side, p, q in msg.trades]
        except (ValueError, OverflowError) as exc:
            self.bad_input("malformed trades", str(exc), data)
            return
        self._trades(native, rows, msg.type, data, recv_ns)

    def _scaled_trades(self, native: str, trades: list, newest: int, kind: str, pdiv: int, sdiv: int,
                       recv_ns: int) -> None:
        """``_trades`` of a scaled message whose every row is valid (``newest``: its newest time);
        a price or size is ``scaled_float``'s float (``p / 10**scale``, correctly rounded)."""
        last = self._last_trade.get(native)
        self._last_trade[native] = newest if last is None or newest > last else last
        if kind == "snapshot":
            if last is None:
                return  # history from before the first subscription
            rows = [r for r in reversed(trades) if r[0] > last]
        else:
            rows = trades[::-1]
        rows.sort(key=_TIME)  # newest first as sent: oldest first (stable for trades of one time)
        atom_us = recv_ns // 1000
        write, exchange, symbol = self.rows("trades").trade, self.exchange, self._symbols[native]
        for ts, side, p, q in rows:
            write(exchange, symbol, p / pdiv, q / sdiv, side == "Buy", "", ts // 1_000_000, atom_us)

    def _on_trades_p(self, conn: Connection, msg: m.TradesP, data: bytes, recv_ns: int) -> None:
        native = msg.symbol
        if not self.known(native, data):
            return
        rows = []
        for ts, side, p, q in msg.trades_p:
            if not (is_plain(p) and is_plain(q)):
                self.bad_input("malformed trades", f"{p!r} {q!r}", data)
                return
            rows.append((ts, side, float(p), float(q)))
        self._trades(native, rows, msg.type, data, recv_ns)

    def _trades(self, native: str, rows: list, kind: str, data: bytes, recv_ns: int) -> None:
        # the whole message checked before any trade is written: the price in (0, 1e15), the
        # size in [0, 1e15) (the writer's ranges: no trade is refused half way)
        for ts, side, price, size in rows:
            if not (ns_ok(ts) and side in _SIDES and 0.0 < price < MAX_VALUE and 0.0 <= size < MAX_VALUE):
                self.bad_input("malformed trades", f"{ts!r} {side!r} {price!r} {size!r}", data)
                return
        if kind != "snapshot" and kind != "incremental":
            self.bad_input("malformed trades", f"type {kind!r}", data)
            return
        if not rows:
            return
        rows.reverse()  # newest first as sent: oldest first (stable for trades of one time)
        rows.sort(key=lambda r: r[0])
        last = self._last_trade.get(native)
        newest = rows[-1][0]
        self._last_trade[native] = newest if last is None else max(last, newest)
        if kind == "snapshot":
            if last is None:
                return  # history from before the first subscription
            rows = [r for r in rows if r[0] > last]
        atom_us = recv_ns // 1000
        write, exchange, symbol = self.rows("trades").trade, self.exchange, self._symbols[native]
        for ts, side, price, size in rows:
            write(exchange, symbol, price, size, side == "Buy", "", ts // 1_000_000, atom_us)

    # --- candles ------------------------------------------------------------------------------
    def _on_kline(self, conn: Connection, msg: m.Kline, data: bytes, recv_ns: int) -> None:
        native = msg.symbol
        if not self.known(native, data):
            return
        inst = self.instrument(native)
        pd, sd = inst.price_decimals, inst.size_decimals
        try:
            rows = [(start, interval, scaled_float(o, pd), scaled_float(h, pd), scaled_float(lo, pd),
                     scaled_float(c, pd), scaled_float(v, sd))
                    for start, interval, _lc, o, h, lo, c, v, _t in msg.kline]
        except (ValueError, OverflowError) as exc:
            self.bad_input("malformed kline", str(exc), data)
            return
        self._klines(native, rows, msg.type, data, recv_ns)

    def _on_kline_p(self, conn: Connection, msg: m.KlineP, data: bytes, recv_ns: int) -> None:
        native = msg.symbol
        if not self.known(native, data):
            return
        rows = []
        for start, interval, _lc, o, h, lo, c, v, _t in msg.kline_p:
            if not (is_plain(o) and is_plain(h) and is_plain(lo) and is_plain(c) and is_plain(v)):
                self.bad_input("malformed kline", f"{o!r} {h!r} {lo!r} {c!r} {v!r}", data)
                return
            rows.append((start, interval, float(o), float(h), float(lo), float(c), float(v)))
        self._klines(native, rows, msg.type, data, recv_ns)

    def _klines(self, native: str, rows: list, kind: str, data: bytes, recv_ns: int) -> None:
        for start, interval, *values in rows:
            if not (0 <= start < 10**11 and interval in _INTERVALS and all(ok_float(x) for x in values)):
                self.bad_input("malformed kline", f"{start!r} {interval!r} {values!r}", data)
                return
        if kind != "snapshot" and kind != "incremental":
            self.bad_input("malformed kline", f"type {kind!r}", data)
            return
        if not rows:
            return
        rows.sort(key=lambda r: r[0])
        if kind == "snapshot":
            rows = rows[-1:]  # the current candle (the rest is history)
        atom_us = recv_ns // 1000
        event_ms = atom_us // 1000
        symbol = self._symbols[native]
        for start, interval, o, h, lo, c, v in rows:
            last = self._candles.get(native)
            start_ms = start * 1000
            if last is not None:
                if start_ms < last.start:
                    continue  # older than the candle published
                if start_ms > last.start:
                    self.emit("candle", last._replace(closed=True, event_timestamp=event_ms, atom_timestamp=atom_us))
            candle = Candle(self.exchange, symbol, start_ms, start_ms + interval * 1000, _INTERVALS[interval], 0,
                            False, o, h, lo, c, v, event_ms, atom_us)
            self._candles[native] = candle
            self.emit("candle", candle)

    # --- the 24-hour pack: ticker, funding rate, open interest --------------------------------
    def _on_pack(self, conn: Connection, msg: m.Pack, data: bytes, recv_ns: int) -> None:
        fields = msg.fields
        if fields is not None:
            conn.state[_FIELDS_KEY] = fields
        else:
            fields = conn.state.get(_FIELDS_KEY)
            if fields is None:
                self.bad_input("malformed market24h pack", "no fields legend received yet", data)
                return
        if msg.method != "perp_market24h_pack_p.update" or not ns_ok(msg.timestamp):
            self.bad_input("malformed market24h pack", f"method {msg.method!r} timestamp {msg.timestamp!r}", data)
            return
        col = {name: fields.index(name) for name in _COLUMNS if name in fields}
        if "symbol" not in col:
            self.bad_input("malformed market24h pack", "fields name no symbol", data)
            return
        width = len(fields)
        event_ms = msg.timestamp // 1_000_000
        atom_us = recv_ns // 1000
        wanted = self._pack_markets
        i_sym = col["symbol"]
        i_mark, i_rate, i_pred = col.get("markRp"), col.get("fundingRateRr"), col.get("predFundingRateRr")
        i_oi, i_bid, i_ask = col.get("openInterestRv"), col.get("bidRp"), col.get("askRp")
        for row in msg.data:
            if len(row) != width:
                self.bad_input("malformed market24h pack", f"a row of {len(row)} values, {width} fields", data)
                continue
            native = row[i_sym]
            if wanted is not None and native not in wanted:
                continue
            if native.__class__ is not str or not self.known(native, data):
                continue
            symbol = self._symbols[native]
            if self._want_funding and i_rate is not None:
                rate = _text_float(row[i_rate], signed=True)
                pred = _text_float(row[i_pred], signed=True) if i_pred is not None else 0.0
                mark = _text_float(row[i_mark]) if i_mark is not None else 0.0
                if rate is None or pred is None or mark is None:
                    self.bad_input("malformed funding rate", f"{native}: {row!r}"[:300], data)
                elif self._last_funding.get(native) != (rate, pred):
                    self._last_funding[native] = (rate, pred)
                    self.emit("funding_rate", FundingRate(self.exchange, symbol, mark, rate, 0, pred, event_ms, atom_us))
            if self._want_oi and i_oi is not None:
                oi = _text_float(row[i_oi])
                if oi is None:
                    self.bad_input("malformed open interest", f"{native}: {row[i_oi]!r}"[:300], data)
                elif self._last_oi.get(native) != oi:
                    self._last_oi[native] = oi
                    self.emit("open_interest", OpenInterest(self.exchange, symbol, oi, event_ms, atom_us))
            if self._want_ticker and i_bid is not None and i_ask is not None:
                bid, ask = _text_float(row[i_bid]), _text_float(row[i_ask])
                if bid is None or ask is None:
                    self.bad_input("malformed ticker", f"{native}: {row[i_bid]!r} {row[i_ask]!r}"[:300], data)
                elif self._last_ticker.get(native) != (bid, ask):
                    # each below 1e15 too (the writer's checks), or a malformed ticker
                    if self.rows("ticker").quote(self.exchange, symbol, bid, 0.0, ask, 0.0, event_ms, atom_us):
                        self._last_ticker[native] = (bid, ask)
                    else:
                        self.bad_input("malformed ticker", f"{native}: {row[i_bid]!r} {row[i_ask]!r}"[:300], data)


class PhemexFuturesScheme(PhemexScheme):
    """USDT-M perpetuals (``_p`` channels) and the scaled contracts, with the 24-hour pack."""

    exchange = "phemex-futures"
    channels = {"lob": "orderbook", "trades": "trade", "candle": "kline", "ticker": _PACK, "funding_rate": _PACK,
                "open_interest": _PACK}
    default_channels = ("lob", "trades", "funding_rate", "open_interest")
    default_symbols = ("BTC-USDT-PERP",)
