"""dYdX v4 indexer (``wss://indexer.dydx.trade/v4/ws``), exchange name ``dydx``: perpetuals.

Channel map (atomfast topic -> indexer channel): lob -> ``v4_orderbook`` (subscribed with
``batched: true``: updates come as ``channel_batch_data`` lists; plain ``channel_data`` is read
too; + our ``spread``), trades -> ``v4_trades``, funding_rate and open_interest ->
``v4_markets`` (one subscription for every market), candle -> ``v4_candles`` (``1MIN``). The
indexer has no best bid/offer channel: no ticker.

Sequence (how the indexer numbers messages: dydxprotocol/v4-chain ``indexer/services/socks``,
``websocket/index.ts``, ``lib/message-forwarder.ts``, ``lib/subscription.ts``): ``message_id``
is ONE counter per connection, 0 on ``connected``, +1 for every ``channel_data``,
``channel_batch_data`` and ``unsubscribed`` as it is sent. A subscribe takes its id when the
request arrives, but its ``subscribed`` answer is sent after the initial state is fetched: it
may come after higher ids. An ``error`` repeats the id of its failed subscribe, or the current
id. ``version`` is the message schema's version (``1.0.0``, ``2.1.0``), not a sequence. So the
rule checked here: in arrival order, each id is the last + 1, except that ids may be skipped
for subscribes still unanswered (at most as many as are outstanding), and those skipped ids are
later filled by their ``subscribed``/``error``. Anything else (a lost message: a jump no
pending subscribe explains; a repeated or reordered one: an id at or below the last that is no
reserved hole) is a gap: counted once in ``metrics.gaps``, and every book of the connection
resyncs (status ``resync`` with the reason; unsubscribe + subscribe of that book, whose
``subscribed`` brings a fresh snapshot). A connection whose subscriptions this scheme did not
send (a replayed capture: its sent messages are not replayed) cannot know the outstanding
subscribes: there a forward jump (at most ``MAX_HOLES`` ids) is taken as reserved ids, and only
repeated or reordered ids are gaps.

Uncrossing (docs.dydx.exchange/api_integration-guides/how_to_uncross_orderbook and
docs.dydx.xyz/interaction/data/watch-orderbook, "Uncrossing the orderbook"): the indexer's book
may cross (no global order between validators' updates). dYdX's documented client rule: each
level remembers the message that last set it (its ``message_id``, the "offset"); while best bid
>= best ask, the level from the OLDER message is removed; where both come from the same message,
the smaller size is removed and the larger level keeps the difference (equal sizes: both
removed). Here each message (each entry of a batch, in order) is applied, then the book is
uncrossed, so the book is never left crossed: a crossing then always involves a level this
message set, and "older" is "not set by this message" (no per-level store is needed). A
snapshot's levels share one message. Every removal and reduction is published as ``lob``
changes, and a ``status`` ``uncrossed`` (reason: what was removed) says it happened. Books
carry no exchange time: lob and spread events are stamped with the receive time.

Trades: ``id`` (block height + transaction + event index, hex: sortable) is the trade id;
``side`` the taker's. A ``subscribed`` (the recent trades, newest first) is emitted oldest first,
skipping ids not above the last emitted for the market (a resubscription repeats them).

v4_markets: ``nextFundingRate`` -> funding_rate (rate and predicted rate both: the indexer's
estimate of the next hourly payment; ``next_funding_time`` the next whole hour, as dYdX pays
funding every hour; ``mark_price`` the last ``oraclePrice`` seen, 0.0 before one), and
``openInterest`` -> open_interest (base units). Stamped with the receive time (the messages
carry none). Without configured symbols (a replay), every market is published.

Candles: the ``subscribed`` history (newest first) publishes only its newest candle (the
running one); each update publishes the candle as it now stands, ``closed`` false (the indexer
does not say when a candle closes). ``end`` = start + the resolution.
"""
from __future__ import annotations

import logging
import math
from typing import Sequence

from ...book import ASK, BID, CROSSED, TOP_CHANGED, format_ticks, parse_decimal, parse_ticks
from ...events import Candle, FundingRate, Lob, OpenInterest
from ...scheme import (BOOK_ERRORS, DECODE_ERRORS, Connection, Dispatch, Instrument, RestEndpoint, Routes, Scheme,
                       WebsocketEndpoint)
from .._common import MAX_FLOAT, is_plain, rfc3339_to_ms
from . import messages as m
from .parse import MAX_VALUE, RESOLUTIONS, parse_instruments, ticker_instrument

log = logging.getLogger("atomfast.exchanges.dydx")

ORDERBOOK, TRADES, MARKETS, CANDLES = "v4_orderbook", "v4_trades", "v4_markets", "v4_candles"
_SIDES = ("BUY", "SELL")  # the taker's
#: a forward jump taken as reserved subscribe ids where the outstanding subscribes are unknown
MAX_HOLES = 256
HOUR_MS = 3_600_000


class _Seq:
    """One connection's ``message_id`` state."""

    __slots__ = ("last", "pending", "holes", "counted", "books")

    def __init__(self, pending: int = 0, counted: bool = False) -> None:
        self.last = 0
        self.pending = pending  # subscribes sent and not yet answered (subscribed / error)
        self.holes: set[int] = set()  # ids skipped for those subscribes
        self.counted = counted  # whether ``pending`` is known (this scheme sent the subscribes)
        self.books: set[str] = set()  # the markets whose book this connection carries


def _signed(text) -> float | None:
    """A decimal string (sign allowed) as a float, None if it is no plain number."""
    if text.__class__ is not str:
        return None
    body = text[1:] if text[:1] == "-" else text
    return float(text) if is_plain(body) else None


def _plain(text) -> float | None:
    """A non-negative decimal string as a float below MAX_FLOAT, None if not."""
    if text.__class__ is not str or not is_plain(text):
        return None
    x = float(text)
    return x if x < MAX_FLOAT else None


class DydxScheme(Scheme):
    exchange = "dydx"
    default_symbols = ("BTC-USD-PERP", "ETH-USD-PERP")
    websocket_endpoints = (WebsocketEndpoint("wss://indexer.dydx.trade/v4/ws"),)
    rest_endpoint = RestEndpoint("https://indexer.dydx.trade", Routes(instruments="/v4/perpetualMarkets"))
    channels = {"lob": ORDERBOOK, "trades": TRADES, "funding_rate": MARKETS, "open_interest": MARKETS,
                "candle": CANDLES}
    default_channels = ("lob", "trades", "funding_rate", "open_interest", "candle")
    symbols_per_message = 1  # one market per subscribe message
    #: the indexer allows 32 subscriptions per channel on a connection
    subscriptions_per_connection = 32
    ping_interval = 0.0  # the indexer pings every 30 s; picows answers (no application ping)
    silence_timeout = 60.0
    #: the candle resolution subscribed (``ETH-USD/1MIN``)
    resolution = "1MIN"

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        #: market -> the id of the last trade emitted
        self.trade_ids: dict[str, tuple[int, str]] = {}
        #: market -> the last oracle price seen (funding_rate's mark price)
        self.oracle: dict[str, float] = {}
        #: the markets v4_markets publishes (None: every market)
        self.wanted: set[str] | None = None
        if self.symbols:
            self.wanted = {i.native for s in self.symbols if (i := self.by_symbol.get(s) or self.instruments.get(s))}
        wanted = set(self.channel_names)
        self._want_funding = "funding_rate" in wanted
        self._want_oi = "open_interest" in wanted

    # --- instruments and symbols --------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_instruments(body)

    def guess_instrument(self, native: str) -> Instrument:
        return ticker_instrument(native)

    # --- subscriptions ------------------------------------------------------------------------
    def plan_natives(self, channel: str, natives: list[str]) -> list[str]:
        """v4_markets is one subscription serving every market (it counts once)."""
        return natives[:1] if channel == MARKETS else natives

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        if channel == MARKETS:
            return [m.encode({"type": "subscribe", "channel": MARKETS}).decode()]
        if channel == ORDERBOOK:
            return [m.encode({"type": "subscribe", "channel": ORDERBOOK, "id": n, "batched": True}).decode()
                    for n in natives]
        if channel == CANDLES:
            return [m.encode({"type": "subscribe", "channel": CANDLES, "id": f"{n}/{self.resolution}"}).decode()
                    for n in natives]
        return [m.encode({"type": "subscribe", "channel": channel, "id": n}).decode() for n in natives]

    def on_open(self, conn: Connection, recv_ns: int) -> None:
        """Connected: subscribe the plan, counting the subscribes the indexer will answer."""
        msgs = self.subscribe_plan(conn.plan)
        conn.state["seq"] = _Seq(len(msgs), bool(msgs))
        self.status("", "connected", conn.url, recv_ns)
        for msg in msgs:
            conn.send(msg)

    def resubscribe(self, conn: Connection, native: str, book: str = "lob") -> None:
        """Reload one book: unsubscribe, then subscribe (its ``subscribed`` is the snapshot)."""
        conn.send(m.encode({"type": "unsubscribe", "channel": ORDERBOOK, "id": native}).decode())
        for msg in self.subscribe_messages(ORDERBOOK, [native]):
            conn.send(msg)
        seq = self._seq(conn)
        seq.pending += 1

    # --- frames -------------------------------------------------------------------------------
    dispatch = Dispatch({m.ChannelBatchData: "_on_batch", m.ChannelData: "_on_data", m.Subscribed: "_on_subscribed",
                         m.Connected: "_on_connected", m.Unsubscribed: "_on_unsubscribed", m.Error: "_on_error"},
                        decoder=m.decoder, lead=b"{")

    # --- message_id ---------------------------------------------------------------------------
    @staticmethod
    def _seq(conn: Connection) -> _Seq:
        seq = conn.state.get("seq")
        if seq is None:
            seq = conn.state["seq"] = _Seq()
        return seq

    def _advance(self, conn: Connection, n: int, reply: bool, recv_ns: int) -> None:
        """The rule of the module's doc for a message with ``message_id`` ``n`` (``reply``: a
        ``subscribed``/``error``, which may fill an id its subscribe reserved)."""
        seq = self._seq(conn)
        last = seq.last
        if reply and seq.pending > 0:
            seq.pending -= 1
        if n == last + 1:
            seq.last = n
            return
        if n > last + 1:
            skipped = n - last - 1
            room = (seq.pending - len(seq.holes)) if seq.counted else MAX_HOLES - len(seq.holes)
            if skipped <= room:
                seq.holes.update(range(last + 1, n))
                seq.last = n
                return
            seq.last = n
            seq.holes.clear()
            self._gap(conn, seq, f"message_id {n} after {last}: {skipped} missing", recv_ns)
            return
        if reply and n in seq.holes:
            seq.holes.discard(n)
            return
        self._gap(conn, seq, f"message_id {n} after {last} (repeated or reordered)", recv_ns)

    def _gap(self, conn: Connection, seq: _Seq, reason: str, recv_ns: int) -> None:
        """A break in the connection's numbering: counted once; every book it carries resyncs."""
        books = [n for n in sorted(seq.books) if n not in self.unsynced]
        if not books:
            self.metrics.gaps += 1
            if seq.books:  # every book of the connection is reloading already: nothing more to drop
                log.warning("dydx: message_id gap (%s) while its books reload", reason)
                return
            log.warning("dydx: message_id gap (%s) on a connection without a book", reason)
            self.status("", "resync", f"message_id gap: {reason}", recv_ns)
            return
        self.gap(conn, books[0], reason, recv_ns, kind="message_id gap")
        for native in books[1:]:
            self.resync(conn, native, f"message_id gap: {reason}", recv_ns)

    # --- control messages ---------------------------------------------------------------------
    def _on_connected(self, conn: Connection, msg: m.Connected, data: bytes, recv_ns: int) -> None:
        seq = self._seq(conn)
        if msg.message_id != 0:
            self.bad_input("malformed connected message", f"message_id {msg.message_id}", data)
        seq.last = 0
        seq.holes.clear()

    def _on_unsubscribed(self, conn: Connection, msg: m.Unsubscribed, data: bytes, recv_ns: int) -> None:
        self._advance(conn, msg.message_id, False, recv_ns)

    def _on_error(self, conn: Connection, msg: m.Error, data: bytes, recv_ns: int) -> None:
        self.bad_input("exchange error", msg.message[:200], data)
        seq = self._seq(conn)
        n = msg.message_id
        if seq.pending > 0:
            seq.pending -= 1
        if n is not None and n in seq.holes:
            seq.holes.discard(n)
        elif n is not None and n == seq.last + 1:
            seq.last = n

    def _on_subscribed(self, conn: Connection, msg: m.Subscribed, data: bytes, recv_ns: int) -> None:
        self._advance(conn, msg.message_id, True, recv_ns)
        channel = msg.channel
        if channel == ORDERBOOK:
            self._book_snapshot(conn, msg, data, recv_ns)
        elif channel == TRADES:
            try:
                trades = m.trades_decoder.decode(msg.contents)
            except DECODE_ERRORS as exc:
                self.bad_input("malformed trades", str(exc), data)
                return
            if self._trades(msg.id, trades.trades, data, recv_ns, True):
                self.status(self.symbol_of(msg.id), "subscribed", channel, recv_ns)
        elif channel == MARKETS:
            try:
                snap = m.markets_snapshot_decoder.decode(msg.contents)
            except DECODE_ERRORS as exc:
                self.bad_input("malformed markets", str(exc), data)
                return
            self.status("", "subscribed", channel, recv_ns)
            self._markets(snap.markets, {}, data, recv_ns)
        elif channel == CANDLES:
            try:
                candles = m.candles_decoder.decode(msg.contents).candles
            except DECODE_ERRORS as exc:
                self.bad_input("malformed candles", str(exc), data)
                return
            native = msg.id.partition("/")[0]
            if self.known(native, data):
                self.status(self.symbol_of(native), "subscribed", channel, recv_ns)
                if candles:
                    self._candles(candles[:1], data, recv_ns)
        else:
            self.bad_input("unknown channel", repr(channel)[:100], data)

    # --- updates ------------------------------------------------------------------------------
    def _on_data(self, conn: Connection, msg: m.ChannelData, data: bytes, recv_ns: int) -> None:
        self._advance(conn, msg.message_id, False, recv_ns)
        channel = msg.channel
        try:
            if channel == ORDERBOOK:
                update = m.book_update_decoder.decode(msg.contents)
                self._book_updates(conn, msg, (update,), data, recv_ns)
            elif channel == TRADES:
                self._trades(msg.id, m.trades_decoder.decode(msg.contents).trades, data, recv_ns, False)
            elif channel == MARKETS:
                update = m.markets_update_decoder.decode(msg.contents)
                self._markets(update.trading, update.oraclePrices, data, recv_ns)
            elif channel == CANDLES:
                self._candles((m.candle_decoder.decode(msg.contents),), data, recv_ns)
            else:
                self.bad_input("unknown channel", repr(channel)[:100], data)
        except DECODE_ERRORS as exc:
            self._malformed(conn, msg, str(exc), data, recv_ns)

    def _on_batch(self, conn: Connection, msg: m.ChannelBatchData, data: bytes, recv_ns: int) -> None:
        self._advance(conn, msg.message_id, False, recv_ns)
        channel = msg.channel
        try:
            if channel == ORDERBOOK:
                self._book_updates(conn, msg, m.book_batch_decoder.decode(msg.contents), data, recv_ns)
            elif channel == TRADES:
                batch = m.trades_batch_decoder.decode(msg.contents)
                items = [t for trades in batch for t in trades.trades]
                self._trades(msg.id, items, data, recv_ns, False)
            elif channel == MARKETS:
                for update in m.markets_batch_decoder.decode(msg.contents):
                    self._markets(update.trading, update.oraclePrices, data, recv_ns)
            elif channel == CANDLES:
                self._candles(m.candle_batch_decoder.decode(msg.contents), data, recv_ns)
            else:
                self.bad_input("unknown channel", repr(channel)[:100], data)
        except DECODE_ERRORS as exc:
            self._malformed(conn, msg, str(exc), data, recv_ns)

    def _malformed(self, conn: Connection, msg, detail: str, data: bytes, recv_ns: int) -> None:
        """Contents its channel's decoder refuses: counted; a book's resyncs."""
        native = msg.id
        if msg.channel == ORDERBOOK and native in self.books and native not in self.unsynced:
            self.book_failed(conn, native, "malformed book update", detail, data, recv_ns)
        else:
            self.bad_input(f"malformed {msg.channel[:40]}", detail, data)

    # --- book ---------------------------------------------------------------------------------
    def _book_snapshot(self, conn: Connection, msg: m.Subscribed, data: bytes, recv_ns: int) -> None:
        native = msg.id
        if not self.known(native, data):
            return
        try:
            snap = m.book_snapshot_decoder.decode(msg.contents)
        except DECODE_ERRORS as exc:
            self.book_failed(conn, native, "malformed book snapshot", str(exc), data, recv_ns)
            return
        if not self.check_snapshot(conn, native, snap.bids, snap.asks, data, recv_ns):
            return
        self._seq(conn).books.add(native)
        atom_us = recv_ns // 1000
        event_ms = atom_us // 1000
        book = self.begin_snapshot(native, recv_ns, event_ms)
        symbol = self.symbol_of(native)
        flags = book.apply_sides(BID, snap.bids, snap.asks, self.rows("lob"), Lob, self.exchange, symbol, event_ms,
                                 atom_us)
        if flags & CROSSED:
            flags |= self._uncross(native, book, None, None, f"snapshot message_id {msg.message_id}", event_ms, atom_us)
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)

    def _book_updates(self, conn: Connection, msg, updates: Sequence[m.BookUpdate], data: bytes,
                      recv_ns: int) -> None:
        native = msg.id
        if native in self.unsynced:
            return  # reloading: its subscribed brings the book
        book = self.books.get(native)
        if book is None:
            if self.known(native, data):
                self.resync(conn, native, "book update before its snapshot", recv_ns)
            return
        try:  # every entry parsed before any is applied
            for u in updates:
                book.check_sides(u.bids, u.asks)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "malformed book update", str(exc), data, recv_ns)
            return
        atom_us = recv_ns // 1000
        event_ms = atom_us // 1000
        rows, exchange = self.rows("lob"), self.exchange
        symbol = self._symbols.get(native) or self.symbol_of(native)
        batched = len(updates) > 1
        changed = 0
        for i, u in enumerate(updates):
            flags = book.apply_sides(BID, u.bids, u.asks, rows, Lob, exchange, symbol, event_ms, atom_us)
            if flags & CROSSED:
                where = f"message_id {msg.message_id} entry {i}" if batched else f"message_id {msg.message_id}"
                flags |= self._uncross(native, book, u.bids, u.asks, where, event_ms, atom_us)
            changed |= flags
        if changed & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)

    def _uncross(self, native: str, book, bids, asks, where: str, event_ms: int, atom_us: int) -> int:
        """dYdX's uncrossing rule (module doc) after one message set ``bids``/``asks`` (None: a
        snapshot, every level from the same message). Returns the flags of what it changed."""
        pd, sd = book.price_decimals, book.size_decimals
        new_bids = None if bids is None else {parse_ticks(lv[0], pd) for lv in bids}
        new_asks = None if asks is None else {parse_ticks(lv[0], pd) for lv in asks}
        rows, exchange, symbol = self.rows("lob"), self.exchange, self.symbol_of(native)
        done: list[str] = []
        flags = 0
        while True:
            top_bid, top_ask = book.levels(BID, 1), book.levels(ASK, 1)
            if not top_bid or not top_ask:
                break
            (bp, bs), (ap, asz) = top_bid[0], top_ask[0]
            if parse_ticks(bp, pd) < parse_ticks(ap, pd):
                break
            bid_new = new_bids is None or parse_ticks(bp, pd) in new_bids
            ask_new = new_asks is None or parse_ticks(ap, pd) in new_asks
            if bid_new and not ask_new:  # the ask is older: removed
                flags |= book.apply_sides(ASK, ((ap, "0"),), None, rows, Lob, exchange, symbol, event_ms, atom_us)
                done.append(f"ask {ap} removed (older)")
            elif ask_new and not bid_new:  # the bid is older: removed
                flags |= book.apply_sides(BID, ((bp, "0"),), None, rows, Lob, exchange, symbol, event_ms, atom_us)
                done.append(f"bid {bp} removed (older)")
            else:  # the same message (both older cannot be: the book was uncrossed before it)
                bt, bsent = parse_decimal(bs, sd)
                at, asent = parse_decimal(asz, sd)
                keep = max(bsent, asent)
                if bt > at:
                    rest = format_ticks(bt - at, sd, keep)
                    flags |= book.apply_sides(ASK, ((ap, "0"),), None, rows, Lob, exchange, symbol, event_ms, atom_us)
                    flags |= book.apply_sides(BID, ((bp, rest),), None, rows, Lob, exchange, symbol, event_ms, atom_us)
                    done.append(f"ask {ap} removed, bid {bp} reduced to {rest} (same message)")
                elif bt < at:
                    rest = format_ticks(at - bt, sd, keep)
                    flags |= book.apply_sides(BID, ((bp, "0"),), None, rows, Lob, exchange, symbol, event_ms, atom_us)
                    flags |= book.apply_sides(ASK, ((ap, rest),), None, rows, Lob, exchange, symbol, event_ms, atom_us)
                    done.append(f"bid {bp} removed, ask {ap} reduced to {rest} (same message)")
                else:
                    flags |= book.apply_sides(BID, ((bp, "0"),), ((ap, "0"),), rows, Lob, exchange, symbol, event_ms,
                                              atom_us)
                    done.append(f"bid {bp} and ask {ap} removed (same message, same size)")
        if done:
            shown = "; ".join(done[:8]) + (f"; and {len(done) - 8} more" if len(done) > 8 else "")
            self.status(symbol, "uncrossed", f"{where}: {shown}", atom_us * 1000, event_ms)
        return flags & ~CROSSED

    # --- trades -------------------------------------------------------------------------------
    def _trades(self, native: str, items: Sequence[m.TradeItem], data: bytes, recv_ns: int, snapshot: bool) -> bool:
        out = []
        for t in items:  # every trade checked before any is written: the writer's ranges too
            price, size, side = _plain(t.price), _plain(t.size), t.side
            try:
                ms = rfc3339_to_ms(t.createdAt)
            except ValueError:
                ms = -1
            if (price is None or size is None or not (0.0 < price < MAX_VALUE and size < MAX_VALUE)
                    or side not in _SIDES or ms < 0 or not t.id or len(t.id) > 64):
                self.bad_input("malformed trade", f"{t.price!r} {t.size!r} {t.side!r} {t.createdAt!r}", data)
                return False
            out.append(((len(t.id), t.id), price, size, side == "BUY", ms))
        if not self.known(native, data):
            return False
        symbol = self.symbol_of(native)
        atom_us = recv_ns // 1000
        last = self.trade_ids.get(native, (0, ""))
        write, exchange = self.rows("trades").trade, self.exchange
        if snapshot:
            out.sort(key=lambda x: x[0])
        for key, price, size, buy, ms in out:
            if key <= last:
                if snapshot:
                    continue  # already emitted: a resubscription repeats the recent trades
            else:
                last = key
            write(exchange, symbol, price, size, buy, key[1], ms, atom_us)
        self.trade_ids[native] = last
        return True

    # --- markets: funding rate, open interest -------------------------------------------------
    def _markets(self, trading: dict, oracles: dict, data: bytes, recv_ns: int) -> None:
        wanted = self.wanted
        for ticker, o in oracles.items():
            price = _plain(o.oraclePrice)
            if price is None:
                self.bad_input("malformed oracle price", f"{ticker!r}: {o.oraclePrice!r}"[:200], data)
                continue
            self.oracle[ticker] = price
        atom_us = recv_ns // 1000
        event_ms = atom_us // 1000
        next_hour = (event_ms // HOUR_MS + 1) * HOUR_MS
        for ticker, f in trading.items():
            if wanted is not None and ticker not in wanted:
                continue
            if f.oraclePrice is not None:
                price = _plain(f.oraclePrice)
                if price is None:
                    self.bad_input("malformed oracle price", f"{ticker!r}: {f.oraclePrice!r}"[:200], data)
                else:
                    self.oracle[ticker] = price
            rate = oi = None
            if self._want_funding and f.nextFundingRate is not None:
                rate = _signed(f.nextFundingRate)
                if rate is None or not math.isfinite(rate) or abs(rate) >= MAX_FLOAT:
                    self.bad_input("malformed funding rate", f"{ticker!r}: {f.nextFundingRate!r}"[:200], data)
                    rate = None
            if self._want_oi and f.openInterest is not None:
                oi = _plain(f.openInterest)
                if oi is None:
                    self.bad_input("malformed open interest", f"{ticker!r}: {f.openInterest!r}"[:200], data)
            if rate is None and oi is None:
                continue
            try:
                symbol = self.symbol_of(ticker)
            except KeyError:
                self.bad_input(self.unknown_market, repr(ticker)[:100], data)
                continue
            if rate is not None:
                self.emit("funding_rate", FundingRate(self.exchange, symbol, self.oracle.get(ticker, 0.0), rate,
                                                      next_hour, rate, event_ms, atom_us))
            if oi is not None:
                self.emit("open_interest", OpenInterest(self.exchange, symbol, oi, event_ms, atom_us))

    # --- candles ------------------------------------------------------------------------------
    def _candles(self, candles: Sequence[m.CandleItem], data: bytes, recv_ns: int) -> None:
        atom_us = recv_ns // 1000
        event_ms = atom_us // 1000
        for c in candles:
            res = RESOLUTIONS.get(c.resolution)
            nums = [_plain(x) for x in (c.open, c.high, c.low, c.close, c.baseTokenVolume)]
            try:
                start = rfc3339_to_ms(c.startedAt)
            except ValueError:
                start = -1
            if res is None or None in nums or start < 0 or not 0 <= c.trades < 2**31:
                self.bad_input("malformed candle", f"{c.resolution!r} {c.startedAt!r} {c.trades!r}"[:200], data)
                continue
            if not self.known(c.ticker, data):
                continue
            o, h, lo, cl, v = nums
            self.emit("candle", Candle(self.exchange, self.symbol_of(c.ticker), start, start + res[1], res[0], c.trades,
                                       False, o, h, lo, cl, v, event_ms, atom_us))
