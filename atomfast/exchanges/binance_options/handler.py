"""Binance European options (``--exchange binance-options``): the current eapi market streams.

Where the venue is (developers.binance.com, Derivatives > Options Trading > WebSocket Market
Streams; the official connectors since 13.0.0, 2026-01): the options streams moved from
``wss://nbstream.binance.com/eoptions`` (retired) to fstream's ROUTED endpoints, as USD-M did:
``wss://fstream.binance.com/public`` (high-frequency: depth, book ticker, trades) and
``wss://fstream.binance.com/market`` (klines, mark price, open interest, index). Combined
streams (``/stream``), subscribed with ``{"method":"SUBSCRIBE","params":[...],"id":N}``; at
most 200 streams a connection and 10 incoming messages a second. REST: ``https://eapi.binance.com``.

Channel map (atomfast topic -> stream):

==============  =============================================  ========  =====================
topic           stream                                         endpoint  published from
==============  =============================================  ========  =====================
lob (+spread)   ``<symbol>@depth@100ms`` (diff, U/u/pu)         /public   our own book
trades          ``<symbol>@optionTrade``                       /public   each trade
ticker          ``<symbol>@bookTicker``                        /public   best bid/ask (real time)
candle          ``<symbol>@kline_1m``                          /market   the current candle
open_interest   ``<underlying>@openInterest@<YYMMDD>``         /market   ``o`` (contracts), 60 s
==============  =============================================  ========  =====================

The issue's table named the nbstream protocol (``@depth10`` snapshots, ``@trade``, ``@ticker``,
``@markPrice``). The current documentation wins: the 24-hour ``@optionTicker`` no longer carries
the best bid/ask (``@bookTicker`` does, in real time), and ``<underlying>@optionMarkPrice`` (mark
price, IV, greeks) has no topic of ours (no funding for options; ``funding_rate`` would misname
it): it is not subscribed.

Book verification (the documented diff stream, the USD-M procedure: the fields are USD-M's,
``pu`` = "Final update Id in last stream (ie ``u`` in last stream)"): diffs are buffered and the
first one fetches ``/eapi/v1/depth?symbol=X&limit=1000`` (its ``u`` is the book's update id);
buffered diffs with ``u`` < the snapshot's are dropped, the first applied must straddle it
(``U <= u_snap <= u`` or ``pu == u_snap``), then each diff's ``pu`` must equal the previous
``u``. A break (a lost, repeated or reordered message) is a gap: counted, status ``resync``
``gap: pu X != previous u Y``, the book dropped and a fresh snapshot fetched
(``atomfast.kit.booksync.Chained``). Not verifiable: the book's content itself (no checksum), and
that the REST snapshot's ``u`` counts in the stream's ids (the documentation implies it, as on
USD-M; no recording shows it).

Partial-depth streams (``@depth10@100ms`` ...) are not subscribed: the diff stream gives the
whole book, verified.
"""
from __future__ import annotations

import logging
import time
from typing import ClassVar, Sequence
from urllib.parse import parse_qs, urlsplit

import msgspec

from ...book import BID
from ...events import Candle, Lob, OpenInterest
from ...kit.booksync import BookSync, Chained
from ...scheme import (BOOK_ERRORS, DECODE_ERRORS, MALFORMED, TOP_CHANGED, Connection, ConnectionPlan, Dispatch,
                       Instrument, RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from .._common import MAX_FLOAT, ms_ok
from . import messages as m
from .parse import date_to_yymmdd, guess_instrument, parse_listing, underlying_of

log = logging.getLogger("atomfast.exchanges.binance_options")

_new = tuple.__new__

#: route keys (read from the bytes of the stream name, after its ``@``)
DEPTH, TRADE, BOOK_TICKER, KLINE, OPEN_INTEREST = range(5)
_PREFIX = b'{"stream":"'
_KINDS = {
    b"depth@": DEPTH, b'depth"': DEPTH,
    b"option": None,  # optionTrade / optionOpenInterest: looked at further
    b"bookTi": BOOK_TICKER, b"kline_": KLINE, b"openIn": OPEN_INTEREST, b'trade"': TRADE,
}
_NAMES = {DEPTH: "depth", TRADE: "trade", BOOK_TICKER: "bookTicker", KLINE: "kline", OPEN_INTEREST: "openInterest"}


class BinanceOptionsScheme(Scheme):
    exchange = "binance-options"
    #: the documented exchangeInfo example's option (options expire: a live run names its own
    #: markets with --symbols or config.ini)
    default_symbols = ("BTC-USDT-20220815-50000-C",)
    websocket_endpoints = (
        WebsocketEndpoint("wss://fstream.binance.com/public/stream"),
        WebsocketEndpoint("wss://fstream.binance.com/market/stream", channels=("kline", "openInterest")),
    )
    rest_endpoint = RestEndpoint("https://eapi.binance.com", Routes(instruments="/eapi/v1/exchangeInfo",
                                                                    snapshot="/eapi/v1/depth"))
    channels = {"lob": "depth@100ms", "trades": "optionTrade", "ticker": "bookTicker", "candle": "kline_1m",
                "open_interest": "openInterest"}
    default_channels = ("lob", "trades", "ticker", "open_interest")
    unknown_market = "unknown option"
    #: 200 streams a connection; one SUBSCRIBE message carries them (10 messages/s at most)
    symbols_per_message = 200
    subscriptions_per_connection = 200
    #: the server pings every 3 min; our pings' PONGs keep quiet options clear of the watchdog
    ping_interval = 10.0
    silence_timeout = 30.0
    snapshot_limit: ClassVar[int] = 1000
    max_buffer: ClassVar[int] = 10_000
    max_snapshot_attempts: ClassVar[int] = 10
    retry_delay_ns: ClassVar[int] = 1_000_000_000

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        self.book_sync = BookSync(self, Chained("U", "u", "pu"), self._request_snapshot, self._apply, self._load,
                                  max_buffer=self.max_buffer, max_attempts=self.max_snapshot_attempts,
                                  retry_delay_ns=self.retry_delay_ns)
        self.sync = self.book_sync.markets
        self._next_id = 0

    # --- instruments --------------------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_listing(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_instrument(native)

    def _symbol(self, native: str, data: bytes) -> str | None:
        return self._symbols.get(native) or (self.symbol_of(native) if self.known(native, data) else None)

    # --- subscriptions ------------------------------------------------------------------------
    def stream_names(self, channel: str, natives: list[str]) -> list[str]:
        if channel == "openInterest":
            names: dict[str, None] = {}
            for n in natives:
                inst = self.instrument(n)
                names[f"{underlying_of(inst)}@openInterest@{date_to_yymmdd(inst.expiry)}"] = None
            return list(names)
        return [f"{n.lower()}@{channel}" for n in natives]

    def _subscribe(self, streams: list[str]) -> str:
        self._next_id += 1
        return m.encode({"method": "SUBSCRIBE", "params": streams, "id": self._next_id}).decode()

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        return [self._subscribe(self.stream_names(channel, natives))]

    def subscribe_plan(self, plan: ConnectionPlan) -> list[str | bytes]:
        """ONE ``SUBSCRIBE`` for the connection's streams (``symbols_per_message`` a message)."""
        streams: list[str] = []
        for channel, natives in plan.subscriptions:
            streams.extend(self.stream_names(channel, natives))
        step = self.symbols_per_message
        return [self._subscribe(streams[i : i + step]) for i in range(0, len(streams), step)]

    def on_close(self, conn: Connection, reason: str, recv_ns: int) -> None:
        super().on_close(conn, reason, recv_ns)
        for channel, natives in conn.plan.subscriptions:
            if channel.startswith("depth"):
                for native in natives:
                    self.book_sync.suspend(native)

    # --- frames -------------------------------------------------------------------------------
    dispatch = Dispatch(
        {DEPTH: "_on_depth", TRADE: "_on_trade", BOOK_TICKER: "_on_book_ticker", KLINE: "_on_kline",
         OPEN_INTEREST: "_on_open_interest"},
        prefilter="_route_key",
        unwrap="data",
        decoders={DEPTH: m.depth_frame, TRADE: m.trade_frame, BOOK_TICKER: m.book_ticker_frame, KLINE: m.kline_frame,
                  OPEN_INTEREST: m.open_interest_frame},
        fallback="_slow",
    )

    @staticmethod
    def _route_key(conn: Connection, data: bytes) -> int | None:
        """The kind of a combined-stream frame, from the bytes of its stream name (None: not a
        market-data frame written as Binance writes one)."""
        if data[:11] != _PREFIX:
            return None
        at = data.find(b"@", 11, 80)
        if at < 0:
            return None
        head = data[at + 1 : at + 7]
        kind = _KINDS.get(head, -1)
        if kind is None:  # option...: optionTrade or optionOpenInterest
            nxt = data[at + 7 : at + 8]
            return TRADE if nxt == b"T" else OPEN_INTEREST if nxt == b"O" else None
        return None if kind == -1 else kind

    def _slow(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """Not a well-formed market-data frame of a known kind: classify it (an answer, an
        error, a market-data frame its decoder refused, garbage)."""
        try:
            p = m.probe.decode(data)
        except msgspec.ValidationError as exc:
            self.bad_input("unknown message", str(exc), data)
            return
        except MALFORMED as exc:
            self.bad_input("malformed JSON", str(exc), data)
            return
        if p.stream is not None:
            kind = self._route_key(conn, data)
            if kind is None:
                self.bad_input("unknown stream", repr(p.stream)[:100], data)
                return
            self.bad_input(f"malformed {_NAMES[kind]} message", "the frame does not decode", data)
            if kind == DEPTH:  # a lost diff: its market (if it can be told) resyncs or drops its buffer
                native = p.stream.partition("@")[0].upper()
                if native in self.sync:
                    self.book_sync.lost(conn, native, recv_ns)
            return
        if p.error is not None or p.code is not None:
            detail = p.error if p.error is not None else {"code": p.code, "msg": p.msg}
            self.bad_input("exchange error", repr(detail)[:200], data)
        elif p.id is not None:
            if p.result is None:
                self.status("", "subscribed", f"request {p.id}", recv_ns)
        else:
            self.bad_input("unknown message", "not a stream message, answer or error", data)

    # --- book ---------------------------------------------------------------------------------
    def snapshot_url(self, native: str) -> str:
        return self.rest_endpoint.url(self.rest_endpoint.routes.snapshot, symbol=native, limit=self.snapshot_limit)

    def _request_snapshot(self, conn: Connection, native: str) -> None:
        conn.fetch(self.snapshot_url(native))

    def _on_depth(self, conn: Connection, d: m.Depth, data: bytes, recv_ns: int) -> None:
        native = d.s
        if native not in self.sync and self._symbol(native, data) is None:
            return
        self.book_sync.diff(conn, native, d, d.U, d.u, d.pu, data, recv_ns)

    def resubscribe(self, conn: Connection, native: str) -> None:
        """Reload one book: a fresh REST snapshot (the stream itself goes on)."""
        self.book_sync.restart(conn, native)

    def _apply(self, native: str, d: m.Depth, data: bytes | None, recv_ns: int) -> bool:
        st = self.sync[native]
        book = self.books[native]
        ms = d.T or d.E
        if not ms_ok(ms):
            self.book_failed(st.conn, native, "malformed depth message", f"time {ms}", data or b"", recv_ns)
            return False
        atom_us = recv_ns // 1000
        try:  # every level parsed before any is applied
            flags = book.apply_sides(BID, d.b, d.a, self.rows("lob"), Lob, self.exchange, self._symbols[native], ms,
                                     atom_us)
        except BOOK_ERRORS as exc:
            self.book_failed(st.conn, native, "malformed book level", str(exc), data or b"", recv_ns)
            return False
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, ms, atom_us)
        return True

    def on_rest(self, url: str, body: bytes, recv_ns: int) -> None:
        native = self._native_of_url(url) or self.book_sync.awaiting()
        if not native:
            self.bad_input("snapshot for an unknown market", f"url {url!r}", body)
            return
        try:
            snap = m.snapshot.decode(body)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed snapshot", str(exc), body)
            self.book_sync.unusable(native)
            return
        if native not in self.sync and self._symbol(native, body) is None:
            return
        self.book_sync.snapshot(native, snap.u, snap, body, recv_ns)

    def on_rest_error(self, url: str, exc: Exception, recv_ns: int) -> None:
        if self.rest_endpoint.routes.snapshot in url:
            self.book_sync.request_failed(self._native_of_url(url), recv_ns)

    @staticmethod
    def _native_of_url(url: str) -> str:
        if not url:
            return ""
        values = parse_qs(urlsplit(url).query).get("symbol")
        return values[0] if values else ""

    def _load(self, native: str, snap: m.DepthSnapshot, body: bytes, recv_ns: int) -> bool:
        book = self.book(native)
        try:  # the whole snapshot parsed before the book is cleared for it
            book.check_sides(snap.bids, snap.asks)
        except BOOK_ERRORS as exc:
            self.bad_input("malformed snapshot", str(exc), body)
            return False
        ms = snap.T or recv_ns // 1_000_000
        if not ms_ok(ms):
            self.bad_input("malformed snapshot", f"time {ms}", body)
            return False
        atom_us = recv_ns // 1000
        book = self.begin_snapshot(native, recv_ns, ms)
        flags = book.apply_sides(BID, snap.bids, snap.asks, self.rows("lob"), Lob, self.exchange,
                                 self._symbols.get(native) or self.symbol_of(native), ms, atom_us)
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, ms, atom_us)
        return True

    # --- trades, ticker, candles, open interest -----------------------------------------------
    def _on_trade(self, conn: Connection, t: m.Trade, data: bytes, recv_ns: int) -> None:
        symbol = self._symbols.get(t.s) or self._symbol(t.s, data)
        if symbol is None:
            return
        try:
            price, size = float(t.p), float(t.q)
        except ValueError:
            price = size = -1.0
        if t.m is not None:
            buy = not t.m  # the buyer is the maker: the taker sold
        else:
            buy = True if t.S == "BUY" else False if t.S == "SELL" else None
        tid = t.t if t.t.__class__ is str else str(t.t)
        # a size > 0, a side, an id, T in [0, 10**14) ms; then the writer's ranges (the price in
        # (0, 1e15), the size below 1e15), or a malformed trade
        if not (0.0 < size and ms_ok(t.T) and buy is not None and tid and len(tid) <= 64) \
                or not self.rows("trades").trade(self.exchange, symbol, price, size, buy, tid, t.T, recv_ns // 1000):
            self.bad_input("malformed trade", f"{t.p!r} {t.q!r} m={t.m!r} S={t.S!r} T={t.T}", data)

    def _on_book_ticker(self, conn: Connection, t: m.BookTicker, data: bytes, recv_ns: int) -> None:
        symbol = self._symbols.get(t.s) or self._symbol(t.s, data)
        if symbol is None:
            return
        try:
            bp, bs, ap, asz = float(t.b), float(t.B), float(t.a), float(t.A)
        except ValueError:
            bp = -1.0
            bs = ap = asz = 0.0
        ms = t.T or t.E
        atom_us = recv_ns // 1000
        # T (or E) in [0, 10**14) ms (no time: the time of receipt); each value in [0, 1e15) (the
        # writer's checks), or a malformed ticker
        if not ms_ok(ms) or not self.rows("ticker").quote(self.exchange, symbol, bp, bs, ap, asz, ms or atom_us // 1000,
                                                          atom_us):
            self.bad_input("malformed ticker", f"{t.b!r} {t.B!r} {t.a!r} {t.A!r} T={ms}", data)

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
        if not (all(0.0 <= x < MAX_FLOAT for x in (o, h, lo, c, v)) and 0 <= k.n < 1 << 31
                and ms_ok(k.t) and ms_ok(k.T) and k.T >= k.t and ms_ok(msg.E) and 0 < len(k.i) <= 8):
            self.bad_input("malformed kline", repr(k)[:200], data)
            return
        # the close time is the candle's last ms: ``end`` is exclusive (as on the other venues)
        self.emit("candle", Candle(self.exchange, symbol, k.t, k.T + 1, k.i, k.n, k.x, o, h, lo, c, v, msg.E,
                                   recv_ns // 1000))

    def _on_open_interest(self, conn: Connection, items: list[m.OpenInterest], data: bytes, recv_ns: int) -> None:
        """One expiry's open interest, option by option (the stream covers every option of the
        expiry: each is published, under its own symbol). Checked whole before any is emitted."""
        out = []
        atom_us = recv_ns // 1000
        for it in items:
            try:
                oi = float(it.o)
            except ValueError:
                oi = -1.0
            if not (0.0 <= oi < MAX_FLOAT and ms_ok(it.E)):
                self.bad_input("malformed openInterest", f"{it.s!r} {it.o!r} E={it.E}", data)
                return
            symbol = self._symbols.get(it.s) or self._symbol(it.s, data)
            if symbol is None:
                return
            out.append(_new(OpenInterest, (self.exchange, symbol, oi, it.E, atom_us)))
        for event in out:
            self.emit("open_interest", event)


__all__ = ["BinanceOptionsScheme"]
