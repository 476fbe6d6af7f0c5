"""HitBTC API v3 (``wss://api.hitbtc.com/api/3/ws/public``), exchange name ``hitbtc``, and its
white label FMFW (``wss://api.fmfw.io/api/3/ws/public``, the same engine), exchange name ``fmfw``.

One public socket serves every market, spot and futures alike, and one listing
(``/api/3/public/symbol``) names them all (``type`` ``spot`` or ``futures``): the docs do not
split the markets, so one scheme per exchange name serves both (``BTC-USDT``, ``BTC-USDT-PERP``).

Channel map (atomfast topic -> HitBTC channel; docs "Socket Market Data"):

==============  =================  ====================================================
topic           channel            published from
==============  =================  ====================================================
lob (+spread)   ``orderbook/full`` ``snapshot`` then ``update``s, sequenced by ``s``
trades          ``trades``         each trade; ``s`` (buy/sell) is the taker's side
ticker          ``ticker/1s``      best bid ``b``/``B``, best ask ``a``/``A``
candle          ``candles/M1``     the current 1-minute candle
funding_rate    ``futures/info``   futures only: ``r`` rate, ``R`` indicative rate, ``m`` mark,
                                   ``T`` next funding time
open_interest   ``futures/info``   futures only: ``o``
==============  =================  ====================================================

Books: the first notification of a symbol is its ``snapshot`` (every level, and the symbol's
sequence ``s``); each ``update`` carries the changed levels (size ``"0"`` removes one) and must
carry ``s`` = the previous ``s`` + 1 (per symbol; an update with no levels still advances it).
Anything else (a lost, repeated or reordered update) is a gap: ``metrics.gaps`` += 1, status
``resync`` with the reason, the book dropped and its updates ignored until a fresh snapshot,
which unsubscribe + subscribe of that symbol's ``orderbook/full`` brings (a second subscribe
alone brings none). An update before any snapshot, or a malformed book message, resyncs too.
Every level of a message is parsed before the book is touched: the book reads them from the
message's JSON text (``msgspec.Raw``, ``L2Book.check_json_sides_wide``: a far level of 2**53 ticks or
more at the market's scale, as USDTUSDP's ``9999999999.000000``, read from its text too); a message whose levels are
not plain ``[price, size]`` strings is decoded whole with them, and refused as such a decoder
refuses it. HitBTC sends no checksum. The common update (one market's, that follows, of a book
not reloading, its levels read as text) runs in C: the kit's ``KeyedTextLevels`` shape; the rest is
``_on_book``'s.

Trades: ``trade_id`` is ``i``; a ``snapshot`` (sent on subscription only when a ``limit`` is
asked for; we ask for none) repeats recent trades: those not above the last id published are
skipped. Candles: the venue sends the current candle of the period again as it changes (``closed``
False); when a candle of a later start arrives, the previous one is published once more with
``closed`` True; ``trades`` is 0 (not given); ``v`` is the base volume; the candle carries no
event time, so ``event_timestamp`` is the receive time.

Keep-alive: the server pings every 30 s (answered by the websocket layer); we ping too
(a websocket PING frame every ``ping_interval``: no application ping is documented).
"""
from __future__ import annotations

from typing import Sequence

from ...book import BID, L2Book
from ..._book import json_levels
from ...events import Candle, FundingRate, Lob, OpenInterest, Spread
from ...kit.chain import Chain
from ...kit.shapes import KeyedTextLevels
from ...scheme import (BOOK_ERRORS, DECODE_ERRORS, MALFORMED, TOP_CHANGED, Connection, Dispatch, Instrument,
                       RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from . import messages as m
from .parse import MAX_VALUE, guess_instrument, ms_ok, number, parse_symbols, rate

#: sequence numbers are JSON integers below this (int64)
MAX_SEQ = 2**63
_SUBS_KEY = "hitbtc_subscriptions"  # conn.state: channel -> the symbols the venue said it serves
_SIDES = ("buy", "sell")
_CANDLE_MS = 60_000


class HitbtcScheme(Scheme):
    exchange = "hitbtc"
    websocket_endpoints = (WebsocketEndpoint("wss://api.hitbtc.com/api/3/ws/public"),)
    rest_endpoint = RestEndpoint("https://api.hitbtc.com", Routes(instruments="/api/3/public/symbol"))
    channels = {"lob": m.BOOK, "trades": m.TRADES, "ticker": m.TICKER, "candle": m.CANDLES,
                "funding_rate": m.FUTURES_INFO, "open_interest": m.FUTURES_INFO}
    default_channels = ("lob", "trades", "ticker", "funding_rate", "open_interest")
    default_symbols = ("BTC-USDT", "ETH-USDT", "BTC-USDT-PERP")
    unknown_market = "unknown symbol"
    #: the docs cap requests (10 a second per IP, a burst of 10), not symbols per request
    symbols_per_message = 100
    ping_interval = 20.0  # a websocket PING frame; the server's own come every 30 s
    silence_timeout = 45.0

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        #: each update's ``s`` must be the ``s`` of the last book message applied + 1
        self.chain = Chain(self, linked=False, reason="expected s {next}, got {first}", kind="sequence gap")
        #: symbol -> ``s`` of the last book message applied
        self.seqs: dict[str, int] = self.chain.ids
        #: symbol -> id of the last trade published
        self.trade_ids: dict[str, int] = {}
        #: symbol -> the last candle published (not yet closed)
        self.candles: dict[str, Candle] = {}
        self._next_id = 1
        wanted = set(self.channel_names)
        self._want_funding = "funding_rate" in wanted
        self._want_oi = "open_interest" in wanted

    # --- instruments and symbols --------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_symbols(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_instrument(native)

    def plan_natives(self, channel: str, natives: list[str]) -> list[str]:
        """``futures/info`` exists for futures only."""
        if channel != m.FUTURES_INFO:
            return natives
        return [n for n in natives if self.instrument(n).kind in ("perp", "future")]

    # --- requests -----------------------------------------------------------------------------
    def _request(self, method: str, channel: str, natives: list[str]) -> str:
        rid = self._next_id
        self._next_id += 1
        return m.encode({"method": method, "ch": channel, "params": {"symbols": natives}, "id": rid}).decode()

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        return [self._request("subscribe", channel, natives)]

    def resubscribe(self, conn: Connection, native: str) -> None:
        """A fresh snapshot of one book: unsubscribe, then subscribe again (a subscription the
        socket already has brings no snapshot)."""
        conn.send(self._request("unsubscribe", m.BOOK, [native]))
        conn.send(self._request("subscribe", m.BOOK, [native]))

    def ping_message(self) -> None:
        return None  # no application-level ping in this protocol: the feed pings at websocket level

    # --- frames -------------------------------------------------------------------------------
    #: notifications are one tagged union (on ``ch``), decoded once; answers, errors and what
    #: the union refuses go to ``_on_other``. A book update of one market that follows runs in C
    #: (the kit's ``KeyedTextLevels``: what ``_on_book``'s common update does); anything else of
    #: the book channel (a snapshot, a gap, levels not read as text, ...) goes to ``_on_book``
    dispatch = Dispatch({m.BookMsg: KeyedTextLevels(at="update", unless="snapshot", seq="s", time="t", asks="a",
                                                    bids="b", first="bids", chain="chain", otherwise="_on_book"),
                         m.TradesMsg: "_on_trades", m.TickerMsg: "_on_ticker",
                         m.CandlesMsg: "_on_candles", m.FuturesInfoMsg: "_on_futures_info"},
                        decoder=m.decoder, lead=b"{", fallback="_on_other")

    def _on_other(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """An answer to a request, an error, or a notification the union refused."""
        if data[:1] != b"{":
            self.bad_input("not a JSON object", "frame does not start with {", data)
            return
        try:
            obj = m.any_decoder.decode(data)
        except MALFORMED as exc:
            self.bad_input("malformed JSON", str(exc), data)
            return
        if not isinstance(obj, dict):
            self.bad_input("unknown message", "not a JSON object", data)
            return
        ch = obj.get("ch")
        if ch is not None:
            self._on_refused(conn, ch, obj, data, recv_ns)
            return
        try:
            answer = m.answer_decoder.decode(data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed answer", str(exc), data)
            return
        if answer.error is not None:
            e = answer.error
            self.bad_input("exchange error", f"{e.code} {e.message}: {e.description}"[:300], data)
            self.status("", "stopped", f"request {answer.id!r} failed: {e.code} {e.message}"[:300], recv_ns)
            return
        result = answer.result
        if isinstance(result, dict) and isinstance(result.get("ch"), str):
            self._on_subscriptions(conn, result["ch"], result.get("subscriptions"), data, recv_ns)
        elif result is None:
            self.bad_input("unknown message", "no ch, result or error", data)
        # other results (``true``, ``"pong"``) answer nothing we publish

    def _on_refused(self, conn: Connection, ch, obj: dict, data: bytes, recv_ns: int) -> None:
        """A notification of a known shape that failed validation, or of a channel we do not
        read: counted; a malformed book message resyncs the books it names."""
        if ch == m.BOOK:
            self.bad_input("malformed book message", "failed validation", data)
            for part in (obj.get("snapshot"), obj.get("update")):
                if isinstance(part, dict):
                    for native in part:
                        if native in self.books:
                            self.resync(conn, native, "malformed book message", recv_ns)
            return
        if ch in (m.TRADES, m.TICKER, m.CANDLES, m.FUTURES_INFO):
            self.bad_input(f"malformed {ch} message", "failed validation", data)
            return
        self.bad_input("unknown channel", repr(ch)[:100], data)

    def _on_subscriptions(self, conn: Connection, ch: str, subs, data: bytes, recv_ns: int) -> None:
        """``{"result": {"ch": .., "subscriptions": [..]}}``: the channel's whole set on this
        socket (after a subscribe or an unsubscribe): a status ``subscribed`` for each symbol new
        in it."""
        if not isinstance(subs, list) or not all(isinstance(s, str) for s in subs):
            self.bad_input("malformed answer", "subscriptions is not a list of symbols", data)
            return
        state = conn.state.get(_SUBS_KEY)
        if state is None:
            state = conn.state[_SUBS_KEY] = {}
        before = state.get(ch, set())
        now = set(subs)
        state[ch] = now
        for native in subs:
            if native not in before and self.known(native, data):
                self.status(self.symbol_of(native), "subscribed", ch, recv_ns)

    # --- book ---------------------------------------------------------------------------------
    def _on_book(self, conn: Connection, msg: m.BookMsg, data: bytes, recv_ns: int) -> None:
        # What the route's KeyedTextLevels does not apply in C (``dispatch``): a snapshot, an update
        # that does not follow or whose market has no book or is reloading, one of several markets,
        # levels the book does not read as text. The levels are JSON text (``msgspec.Raw``). A
        # snapshot of one market whose symbol is cached has them read by a book first (the
        # market's, or one made for it, which becomes the market's once the snapshot is taken).
        # Else the shape of every level is checked first: a message whose levels are not
        # ``[price, size]`` strings is decoded whole with its levels (``book_lists_decoder``: the
        # union's decoder before the levels were text), refused as that decoder refused it, before
        # anything else; the rest, market by market (``_snapshot``, ``_update``).
        snap, upd = msg.snapshot, msg.update
        if snap is None:
            if upd is None:
                self.bad_input("malformed book message", "neither snapshot nor update", data)
                return
        elif upd is None and len(snap) == 1:
            for native, d in snap.items():
                book = self.books.get(native)
                if book is None and native in self._symbols:
                    inst = self.instrument(native)
                    book = L2Book(inst.price_decimals, inst.size_decimals)
                if book is not None and book.check_json_sides_wide(d.b, d.a):
                    self._snapshot(conn, native, d, data, recv_ns, book)
                    return
        for part in (snap, upd):
            if part is not None and not all(json_levels(d.a) and json_levels(d.b) for d in part.values()):
                try:
                    msg = m.book_lists_decoder.decode(data)
                except DECODE_ERRORS:
                    self._on_other(conn, data, recv_ns)  # counted as the union's refusal was
                    return
                snap, upd = msg.snapshot, msg.update
                break
        if snap is not None:
            for native, d in snap.items():
                self._snapshot(conn, native, d, data, recv_ns, None)
        if upd is not None:
            for native, d in upd.items():
                self._update(conn, native, d, data, recv_ns, False)

    def _snapshot(self, conn: Connection, native: str, d: m.BookData, data: bytes, recv_ns: int,
                  read: L2Book | None) -> None:
        """``read``: a book that has read the levels (``check_json_sides_wide``): the market's, or one
        made for it, which becomes the market's here (where ``Scheme.book`` would make it)."""
        if not self.known(native, data):
            return
        if not (ms_ok(d.t) and 0 <= d.s < MAX_SEQ):
            self.book_failed(conn, native, "malformed book snapshot", f"t {d.t!r} s {d.s!r}", data, recv_ns)
            return
        bids, asks = d.b, d.a
        if read is not None:
            text = self.books.setdefault(native, read) is read
        else:
            text = bids.__class__ is not list and self.book(native).check_json_sides_wide(bids, asks)
        if not text:
            if bids.__class__ is not list:  # numbers the book does not read as text: check_sides says why
                bids, asks = m.levels_decoder.decode(bids), m.levels_decoder.decode(asks)
            if not self.check_snapshot(conn, native, bids, asks, data, recv_ns):
                return
        event_ms = d.t
        atom_us = recv_ns // 1000
        book = self.begin_snapshot(native, recv_ns, event_ms)
        apply = book.apply_json_sides if text else book.apply_sides
        flags = apply(BID, bids, asks, self.rows("lob"), Lob, self.exchange, self._symbols[native], event_ms, atom_us)
        self.chain.set(native, d.s)
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)

    def _update(self, conn: Connection, native: str, d: m.BookData, data: bytes, recv_ns: int, text: bool) -> None:
        """``text``: the market's book has read the levels (``check_json_sides_wide``)."""
        if native in self.unsynced:
            return  # waiting for the snapshot our resubscription brings
        book = self.books.get(native)
        if book is None:
            if self.known(native, data):
                self.resync(conn, native, "book update before its snapshot", recv_ns)
            return
        seq = d.s
        if seq != self.seqs.get(native) + 1 and not self.chain.follows(conn, native, seq, seq, 0, recv_ns):
            return
        event_ms = d.t
        if not ms_ok(event_ms):
            self.book_failed(conn, native, "malformed book update", f"t {event_ms!r}", data, recv_ns)
            return
        bids, asks = d.b, d.a
        if text or bids.__class__ is not list and book.check_json_sides_wide(bids, asks):
            # every level parsed already: applied, its rows and the spread where the top changed
            # written in one call (no checksum: the venue sends none)
            book.apply_json_update(BID, bids, asks, self.rows, Lob, Spread, self.exchange, self._symbols[native],
                                   recv_ns, event_ms)
            self.seqs[native] = seq  # (self.chain.set)
            return
        if bids.__class__ is not list:  # numbers the book does not read as text: apply_sides says why
            bids, asks = m.levels_decoder.decode(bids), m.levels_decoder.decode(asks)
        atom_us = recv_ns // 1000
        try:  # every level parsed before any is applied
            flags = book.apply_sides(BID, bids, asks, self.rows("lob"), Lob, self.exchange, self._symbols[native],
                                     event_ms, atom_us)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "malformed book update", str(exc), data, recv_ns)
            return
        self.chain.set(native, seq)
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)

    # --- trades, ticker, candles, futures -----------------------------------------------------
    def _on_trades(self, conn: Connection, msg: m.TradesMsg, data: bytes, recv_ns: int) -> None:
        if msg.snapshot is None and msg.update is None:
            self.bad_input("malformed trades message", "neither snapshot nor update", data)
            return
        if msg.snapshot is not None:
            for native, trades in msg.snapshot.items():
                self._trades(native, sorted(trades, key=lambda t: t.i), True, data, recv_ns)
        if msg.update is not None:
            for native, trades in msg.update.items():
                self._trades(native, trades, False, data, recv_ns)

    def _trades(self, native: str, trades: list, snapshot: bool, data: bytes, recv_ns: int) -> None:
        rows = []
        try:  # every trade of the symbol checked before any is written: the writer's ranges too
            for t in trades:
                price, size = number(t.p), number(t.q)
                if not (0.0 < price < MAX_VALUE and size < MAX_VALUE) or t.s not in _SIDES or not ms_ok(t.t) \
                        or not 0 <= t.i < MAX_SEQ:
                    raise ValueError(f"{t.p!r} {t.q!r} {t.s!r} {t.t!r} {t.i!r}")
                rows.append((t, price, size))
        except ValueError as exc:
            self.bad_input("malformed trade", str(exc)[:200], data)
            return
        if not self.known(native, data):
            return
        symbol = self._symbols[native]
        last = self.trade_ids.get(native, -1)
        atom_us = recv_ns // 1000
        write, exchange = self.rows("trades").trade, self.exchange
        for t, price, size in rows:
            if t.i <= last:
                if snapshot:
                    continue  # published already: a snapshot repeats recent trades
            else:
                last = t.i
            write(exchange, symbol, price, size, t.s == "buy", t.i, t.t, atom_us)
        self.trade_ids[native] = last

    def _on_ticker(self, conn: Connection, msg: m.TickerMsg, data: bytes, recv_ns: int) -> None:
        atom_us = recv_ns // 1000
        for native, d in msg.data.items():
            try:
                bp, bs, ap, asz = number(d.b), number(d.B), number(d.a), number(d.A)
                if not ms_ok(d.t):
                    raise ValueError(f"t {d.t!r}")
            except ValueError as exc:
                self.bad_input("malformed ticker", str(exc)[:200], data)
                continue
            # each below 1e15 too (the writer's checks), or a malformed ticker
            if self.known(native, data) and not self.rows("ticker").quote(self.exchange, self._symbols[native], bp, bs,
                                                                          ap, asz, d.t, atom_us):
                self.bad_input("malformed ticker", f"{d.b!r} {d.B!r} {d.a!r} {d.A!r}", data)

    def _on_candles(self, conn: Connection, msg: m.CandlesMsg, data: bytes, recv_ns: int) -> None:
        if msg.snapshot is None and msg.update is None:
            self.bad_input("malformed candles message", "neither snapshot nor update", data)
            return
        for part in (msg.snapshot, msg.update):
            if part is not None:
                for native, candles in part.items():
                    self._candles(native, sorted(candles, key=lambda c: c.t), data, recv_ns)

    def _candles(self, native: str, candles: list, data: bytes, recv_ns: int) -> None:
        rows = []
        try:
            for c in candles:
                if not ms_ok(c.t):
                    raise ValueError(f"t {c.t!r}")
                rows.append((c.t, number(c.o), number(c.h), number(c.l), number(c.c), number(c.v)))
        except ValueError as exc:
            self.bad_input("malformed candle", str(exc)[:200], data)
            return
        if not self.known(native, data):
            return
        atom_us = recv_ns // 1000
        event_ms = atom_us // 1000
        symbol = self._symbols[native]
        for start, o, h, low, c, v in rows:
            last = self.candles.get(native)
            if last is not None:
                if start < last.start:
                    continue  # older than the candle published: stale
                if start > last.start:
                    self.emit("candle", last._replace(closed=True, event_timestamp=event_ms, atom_timestamp=atom_us))
            candle = Candle(self.exchange, symbol, start, start + _CANDLE_MS, "1m", 0, False, o, h, low, c, v,
                            event_ms, atom_us)
            self.candles[native] = candle
            self.emit("candle", candle)

    def _on_futures_info(self, conn: Connection, msg: m.FuturesInfoMsg, data: bytes, recv_ns: int) -> None:
        atom_us = recv_ns // 1000
        for native, d in msg.data.items():
            try:
                mark, funding, predicted, oi = number(d.m), rate(d.r), rate(d.R), number(d.o)
                next_ms = d.T if d.T is not None else 0
                if not (ms_ok(d.t) and ms_ok(next_ms)):
                    raise ValueError(f"t {d.t!r} T {d.T!r}")
            except ValueError as exc:
                self.bad_input("malformed futures info", str(exc)[:200], data)
                continue
            if not self.known(native, data):
                continue
            symbol = self._symbols[native]
            if self._want_funding and d.r is not None:
                self.emit("funding_rate", FundingRate(self.exchange, symbol, mark, funding, next_ms, predicted, d.t,
                                                      atom_us))
            if self._want_oi and d.o is not None:
                self.emit("open_interest", OpenInterest(self.exchange, symbol, oi, d.t, atom_us))


class FmfwScheme(HitbtcScheme):
    """FMFW.io: HitBTC's engine and API v3 on its own host."""

    exchange = "fmfw"
    websocket_endpoints = (WebsocketEndpoint("wss://api.fmfw.io/api/3/ws/public"),)
    rest_endpoint = RestEndpoint("https://api.fmfw.io", Routes(instruments="/api/3/public/symbol"))
