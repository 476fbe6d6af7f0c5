"""Kraken Futures (``wss://futures.kraken.com/ws/v1``), exchange name ``kraken-futures``.

Channel map (atomfast topic -> Kraken feed): lob -> ``book`` (``book_snapshot`` + deltas, + our
``spread``), trades -> ``trade`` (``trade_snapshot`` + trades), ticker -> ``ticker``;
funding_rate and open_interest also come from ``ticker`` (one subscription serves the three).
``ticker_lite`` messages (the recorded capture's) become tickers too.

Books: no checksum; every message carries ``seq``, consecutive per product. A snapshot sets
the sequence; a delta whose ``seq`` is not the last + 1 is a gap: ``metrics.gaps`` += 1 and the
product is resynced (status ``resync``, book dropped, deltas ignored until a fresh snapshot,
requested by unsubscribe + subscribe of that product's book). A malformed book message resyncs
its product too. Messages are validated before the book is touched.

Trades: ``trade_id`` is Kraken's ``uid``; ``taker_side`` its ``side`` (the taker's). Trades are
emitted once: a ``trade_snapshot`` (sent on every (re)subscription, repeating recent trades)
skips the trades whose per-product ``seq`` is not above the last one emitted, and is emitted
oldest first; live trades are always emitted.

Ticker: ``ticker`` gives best bid/ask with sizes; ``ticker_lite`` has no sizes (0.0) and no time
(receive time). funding_rate: ``funding_rate`` = Kraken's ``relative_funding_rate`` (the rate as
a fraction, comparable across exchanges; Kraken's own ``funding_rate`` is an absolute amount
per contract), ``predicted_rate`` = ``relative_funding_rate_prediction``, ``next_funding_time``
= ``next_funding_rate_time`` (ms), ``mark_price`` = ``markPrice``; only where the message has
them (perpetuals). open_interest = ``openInterest`` (in contracts).

Keep-alive: Kraken closes a connection that does not ping within 60 s. Its protocol has no
application-level ping message: ``ping_message()`` is None and the feed sends a websocket ping
control frame every ``ping_interval`` (30 s).
"""
from __future__ import annotations

import math
from typing import Sequence

from ...book import ASK, BID
from ...events import FundingRate, Lob, OpenInterest
from ...kit.chain import Chain
from ...kit.shapes import LevelDelta
from ...scheme import (BOOK_ERRORS, DECODE_ERRORS, MALFORMED, TOP_CHANGED, Connection, Dispatch, Instrument,
                       RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from .._common import ms_ok, ok_float
from ..kraken.parse import ALIASES, MAX_VALUE
from . import messages as m
from .parse import parse_instruments, product_instrument

_SIDES = {"buy": BID, "sell": ASK}


class KrakenFuturesScheme(Scheme):
    exchange = "kraken-futures"
    default_symbols = ("BTC-USD-PERP", "ETH-USD-PERP")
    unknown_market = "unknown product"
    websocket_endpoints = (WebsocketEndpoint("wss://futures.kraken.com/ws/v1"),)
    rest_endpoint = RestEndpoint("https://futures.kraken.com", Routes(instruments="/derivatives/api/v3/instruments"))
    channels = {"lob": "book", "trades": "trade", "ticker": "ticker", "funding_rate": "ticker", "open_interest": "ticker"}
    default_channels = ("lob", "trades", "ticker", "funding_rate", "open_interest")
    aliases = ALIASES
    symbols_per_message = 50
    ping_interval = 30.0
    silence_timeout = 30.0

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (), channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        #: each delta's ``seq`` must be the ``seq`` of the last book message applied + 1
        self.chain = Chain(self, linked=False, reason="expected seq {next}, got {first}", kind="sequence gap",
                           missing=-2)
        #: product -> seq of the last book message applied
        self.seqs: dict[str, int] = self.chain.ids
        #: product -> seq of the last trade emitted
        self.trade_seqs: dict[str, int] = {}
        wanted = set(self.channel_names)
        self._want_ticker = "ticker" in wanted
        self._want_funding = "funding_rate" in wanted
        self._want_oi = "open_interest" in wanted

    # --- instruments and symbols --------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_instruments(body)

    def guess_instrument(self, native: str) -> Instrument:
        inst = product_instrument(native)
        if inst.native != native:
            raise KeyError(f"kraken-futures: product ids are upper case, not {native!r}")
        return inst

    # --- subscriptions ------------------------------------------------------------------------
    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        return [m.encode({"event": "subscribe", "feed": channel, "product_ids": natives}).decode()]

    def resubscribe(self, conn: Connection, native: str) -> None:
        conn.send(m.encode({"event": "unsubscribe", "feed": "book", "product_ids": [native]}).decode())
        conn.send(m.encode({"event": "subscribe", "feed": "book", "product_ids": [native]}).decode())

    def ping_message(self) -> None:
        return None  # no application-level ping in this protocol: the feed pings at websocket level

    # --- frames -------------------------------------------------------------------------------
    # Data messages are decoded as one tagged union (by ``feed``) and routed by their type; what
    # does not decode as one (events, garbage), or is no JSON object, goes to ``_on_other``.
    # a book delta (one level, ``seq`` consecutive) runs in C; what is not the common case goes to
    # ``_on_delta``, which says what is amiss
    dispatch = Dispatch({m.FBook: LevelDelta(market="product_id", side="side", price="price", size="qty", seq="seq",
                                             time="timestamp", sides=_SIDES, chain="chain", otherwise="_on_delta"),
                         m.FBookSnapshot: "_on_snapshot", m.FTrade: "_on_trade",
                         m.FTradeSnapshot: "_on_trade_snapshot", m.FTicker: "_on_ticker",
                         m.FTickerLite: "_on_ticker_lite", m.FHeartbeat: None},
                        decoder=m.data_decoder, lead=b"{", fallback="_on_other")

    def _on_other(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """An event message, a data message that failed validation, or no JSON object."""
        if data[:1] != b"{":
            self.bad_input("not a JSON object", "frame does not start with {", data)
            return
        try:
            ev = m.event_decoder.decode(data)
        except DECODE_ERRORS:
            ev = None
        if ev is not None:
            self._on_event(ev, data, recv_ns)
            return
        try:
            obj = m.any_decoder.decode(data)
        except MALFORMED as exc:
            self.bad_input("malformed JSON", str(exc), data)
            return
        feed = obj.get("feed") if isinstance(obj, dict) else None
        product = obj.get("product_id") if isinstance(obj, dict) else None
        if feed in ("book", "book_snapshot"):
            self.bad_input("malformed book message", f"{feed} message failed validation", data)
            if isinstance(product, str) and product in self.books:
                self.resync(conn, product, f"malformed {feed} message", recv_ns)
            return
        if feed in ("trade", "trade_snapshot", "ticker", "ticker_lite", "heartbeat"):
            self.bad_input(f"malformed {feed} message", "failed validation", data)
            return
        self.bad_input("unknown message", f"feed {feed!r}", data)

    def _on_event(self, ev: m.FEvent, data: bytes, recv_ns: int) -> None:
        kind = ev.event
        if kind in ("info", "unsubscribed"):
            return
        products = [p for p in (ev.product_ids or ()) if isinstance(p, str)]
        if kind == "subscribed":
            for p in products:
                if self.known(p.upper(), data):
                    self.status(self.symbol_of(p.upper()), "subscribed", ev.feed, recv_ns)
            return
        if kind in ("subscribed_failed", "unsubscribed_failed", "error", "alert"):
            self.bad_input("subscription error" if "subscribed" in kind else "exchange error",
                           f"{kind}: {ev.message or ev.feed}", data)
            if kind == "subscribed_failed":
                for p in products or [""]:
                    sym = self.symbol_of(p.upper()) if p and self.known(p.upper(), data) else ""
                    self.status(sym, "stopped", f"subscribe {ev.feed} failed: {ev.message}", recv_ns)
            return
        self.bad_input("unknown message", f"event {kind!r}", data)

    # --- book ---------------------------------------------------------------------------------
    def _on_delta(self, conn: Connection, msg: m.FBook, data: bytes, recv_ns: int) -> None:
        native = msg.product_id
        if native in self.unsynced:
            return
        book = self.books.get(native)
        if book is None:
            if self.known(native, data):
                self.resync(conn, native, "book delta before its snapshot", recv_ns)
            return
        if not self.chain.follows(conn, native, msg.seq, msg.seq, 0, recv_ns):
            return
        side = _SIDES.get(msg.side)
        if side is None or not ms_ok(msg.timestamp):
            self.book_failed(conn, native, "malformed book delta", f"{msg.side!r} timestamp {msg.timestamp!r}", data,
                             recv_ns)
            return
        event_ms = msg.timestamp
        atom_us = recv_ns // 1000
        try:  # the raw digits as sent; a lob event unless it removes a level the book lacks
            f = book.apply_sides(side, ((msg.price, msg.qty),), None, self.rows("lob"), Lob, self.exchange,
                                 self._symbols.get(native) or self.symbol_of(native), event_ms, atom_us)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "malformed book delta", str(exc), data, recv_ns)
            return
        self.chain.set(native, msg.seq)
        if f & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)

    def _on_snapshot(self, conn: Connection, msg: m.FBookSnapshot, data: bytes, recv_ns: int) -> None:
        native = msg.product_id
        if not self.known(native, data):
            return
        if not self.check_snapshot(conn, native, msg.bids, msg.asks, data, recv_ns):
            return
        if not ms_ok(msg.timestamp):
            self.book_failed(conn, native, "malformed book snapshot", f"timestamp {msg.timestamp!r}", data, recv_ns)
            return
        event_ms = msg.timestamp
        atom_us = recv_ns // 1000
        book = self.begin_snapshot(native, recv_ns, event_ms)
        flags = book.apply_sides(BID, msg.bids, msg.asks, self.rows("lob"), Lob, self.exchange, self.symbol_of(native),
                                 event_ms, atom_us)
        self.chain.set(native, msg.seq)
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)

    # --- trades and tickers -------------------------------------------------------------------
    def _on_trade(self, conn: Connection, msg: m.FTrade, data: bytes, recv_ns: int) -> None:
        self._trades(msg.product_id, (msg,), data, recv_ns, False)

    def _on_trade_snapshot(self, conn: Connection, msg: m.FTradeSnapshot, data: bytes, recv_ns: int) -> None:
        self._trades(msg.product_id, sorted(msg.trades, key=lambda t: t.seq), data, recv_ns, True)

    def _trades(self, native: str, trades, data: bytes, recv_ns: int, snapshot: bool) -> None:
        for t in trades:
            # the trades writer's bounds, on every trade first (a snapshot is written whole or not at all)
            if (not (0.0 < t.price < MAX_VALUE and 0.0 <= t.qty < MAX_VALUE) or t.side not in ("buy", "sell")
                    or not ms_ok(t.time)):
                self.bad_input("malformed trade", f"{t.price!r} {t.qty!r} {t.side!r}", data)
                return
        if not self.known(native, data):
            return
        symbol = self.symbol_of(native)
        last = self.trade_seqs.get(native, -1)
        atom_us = recv_ns // 1000
        trade, exchange = self.rows("trades").trade, self.exchange
        for t in trades:
            if t.seq <= last:
                if snapshot:
                    continue  # already emitted: a snapshot after a reconnect repeats recent trades
            else:
                last = t.seq
            trade(exchange, symbol, t.price, t.qty, t.side == "buy", t.uid or t.seq, t.time, atom_us)
        self.trade_seqs[native] = last

    def _on_ticker(self, conn: Connection, msg: m.FTicker, data: bytes, recv_ns: int) -> None:
        native = msg.product_id
        if not ms_ok(msg.time):
            self.bad_input("malformed ticker", f"time {msg.time!r}", data)
            return
        if not self.known(native, data):
            return
        atom_us = recv_ns // 1000
        event_ms = msg.time
        symbol = self.symbol_of(native)
        if self._want_ticker and msg.bid is not None and msg.ask is not None:
            bs = msg.bid_size if msg.bid_size is not None else 0.0
            asz = msg.ask_size if msg.ask_size is not None else 0.0
            # values in [0, 1e15) (the writer's checks), or a malformed ticker
            if not self.rows("ticker").quote(self.exchange, symbol, msg.bid, bs, msg.ask, asz, event_ms, atom_us):
                self.bad_input("malformed ticker", f"{msg.bid!r} {bs!r} {msg.ask!r} {asz!r}", data)
        if self._want_funding and msg.relative_funding_rate is not None and msg.next_funding_rate_time is not None:
            rate = msg.relative_funding_rate
            predicted = msg.relative_funding_rate_prediction if msg.relative_funding_rate_prediction is not None else 0.0
            mark = msg.markPrice if msg.markPrice is not None else 0.0
            if (math.isfinite(rate) and math.isfinite(predicted) and ok_float(mark)
                    and ms_ok(msg.next_funding_rate_time)):
                self.emit("funding_rate", FundingRate(self.exchange, symbol, mark, rate, msg.next_funding_rate_time,
                                                      predicted, event_ms, atom_us))
            else:
                self.bad_input("malformed funding rate", f"{rate!r} {predicted!r} {mark!r}", data)
        if self._want_oi and msg.openInterest is not None:
            if ok_float(msg.openInterest):
                self.emit("open_interest", OpenInterest(self.exchange, symbol, msg.openInterest, event_ms, atom_us))
            else:
                self.bad_input("malformed open interest", repr(msg.openInterest), data)

    def _on_ticker_lite(self, conn: Connection, msg: m.FTickerLite, data: bytes, recv_ns: int) -> None:
        if not self._want_ticker or msg.bid is None or msg.ask is None:
            return
        native = msg.product_id
        if not self.known(native, data):
            return
        atom_us = recv_ns // 1000
        # prices in [0, 1e15) (the writer's checks), or a malformed ticker
        if not self.rows("ticker").quote(self.exchange, self.symbol_of(native), msg.bid, 0.0, msg.ask, 0.0,
                                         atom_us // 1000, atom_us):
            self.bad_input("malformed ticker", f"{msg.bid!r} {msg.ask!r}", data)
