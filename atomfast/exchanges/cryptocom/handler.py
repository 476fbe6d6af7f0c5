"""Crypto.com Exchange API v1 market data, exchange name ``cryptocom``: one scheme for spot
pairs, perpetuals and dated futures (the instrument listing says which, ``parse``).

Endpoint ``wss://stream.crypto.com/exchange/v1/market`` (one socket serves every product);
REST ``https://api.crypto.com/exchange/v1`` (``public/get-instruments``). Docs:
https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html and the per-channel pages
https://exchange-developer.crypto.com/exchange/v1/docs/api/websocket/ws-channel-...

Channel map (atomfast topic -> Crypto.com channel):

==============  ===================================  ======================================
topic           channel                              published from
==============  ===================================  ======================================
lob (+spread)   ``book.{instrument}.50``             snapshot + deltas (below)
trades          ``trade.{instrument}``               ``s`` is the taker's side
ticker          ``ticker.{instrument}``              ``b``/``bs``, ``k``/``ks`` (null: 0.0)
candle          ``candlestick.1m.{instrument}``      ``t`` start, ``ut`` update time
funding_rate    ``funding.{instrument}``,            perpetuals: ``funding`` is the hourly
                ``estimatedfunding.{instrument}``,   rate settling at the end of the current
                ``mark.{instrument}``                hour (``next_funding_time``); the last
                                                     ``estimatedfunding`` is ``predicted_rate``,
                                                     the last ``mark`` ``mark_price``; one
                                                     event per ``funding`` push
open_interest   ``ticker.{instrument}`` (``oi``)     perpetuals and futures
==============  ===================================  ======================================

Books (``book.{instrument_name}.{depth}``, ``book_subscription_type`` ``SNAPSHOT_AND_UPDATE``,
``book_update_frequency`` 10 ms; depth 50, the deepest the 10 ms delta subscription serves):
the first push (channel ``book``) is the whole book with its sequence ``u``; then deltas
(channel ``book.update``: ``update.bids``/``update.asks``, ``u``, and ``pu`` = the previous
push's ``u``). Verification: each delta's ``pu`` must equal the ``u`` of the push before it (the
snapshot's ``u`` starts the chain; ``u`` is not a counter: only ``pu`` links pushes); a quiet
book sends an empty delta with ``u`` = ``pu`` (changelog 2024-01-04), which the rule accepts.
Anything else (a lost, repeated or reordered delta) is a gap: ``metrics.gaps`` + 1, status
``resync`` with the reason ``gap: pu X != previous u Y``, the book dropped and its channel
unsubscribed and subscribed again, which brings a new snapshot (deltas until then are ignored).
A delta before any snapshot, a malformed push and a crossed book resync too. A quantity "0"
removes a level; the book keeps the subscribed depth (levels pushed beyond it are removed).
The ``cs`` field is not verified: its algorithm is not documented.

Connection: the server sends ``public/heartbeat`` every 30 s and closes a connection that does
not answer ``public/respond-heartbeat`` with the same ``id`` (answered here, in the frame).
Rate limits are pro-rated to the calendar second of the connect, so the docs recommend a 1 s
sleep after connecting before any request: the runtime sends a connection's subscriptions when
it opens, so this scheme's ``on_open`` only says ``connected`` and marks the connection; its
``on_timer`` (every 0.2 s) sends the subscriptions of a connection open for at least
``subscribe_delay`` (1 s). At most 400 channels a connection (refused beyond, code 40107) and
100 channels a request: ``subscriptions_per_connection`` 100 (channel, market) pairs, a funding
pair being three channels.
"""
from __future__ import annotations

import re
import time
from typing import Sequence

import msgspec

from ...book import BID
from ...events import BUY, SELL, Candle, FundingRate, Lob, OpenInterest
from ...kit.chain import Chain
from ...scheme import (BOOK_ERRORS, CROSSED, DECODE_ERRORS, MALFORMED, TOP_CHANGED, Connection, ConnectionPlan,
                       Dispatch, Instrument, RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from .._common import is_plain, ms_ok, ok_float
from . import messages as m
from .parse import guess, parse_listing

#: the subscribed book depth (10 or 50 with the 10 ms delta subscription)
DEPTH = 50
#: ``book_update_frequency`` (ms) of the delta subscription
BOOK_FREQUENCY = 10
HOUR_MS = 3_600_000
_SIDES = {"BUY": BUY, "SELL": SELL}
_CHANNEL = b'"channel":"'
_ROUTES = frozenset((b"book", b"book.update", b"trade", b"ticker", b"candlestick", b"funding", b"estimatedfunding",
                     b"mark"))
_WHAT = {"book": "malformed book message", "book.update": "malformed book message", "trade": "malformed trade",
         "ticker": "malformed ticker", "candlestick": "malformed candle", "funding": "malformed funding rate",
         "estimatedfunding": "malformed funding rate", "mark": "malformed mark price"}
#: a signed decimal (funding rates)
_signed = re.compile(r"-?[0-9]{1,16}(?:\.[0-9]{1,20})?").fullmatch
_MAX_SEQ = 1 << 63


def _number(text: str) -> float:
    value = float(text) if text.__class__ is str and is_plain(text) else -1.0
    if not ok_float(value):
        raise ValueError(f"bad number {text!r}")
    return value


def _rate(text: str) -> float:
    if text.__class__ is not str or not _signed(text):
        raise ValueError(f"bad rate {text!r}")
    return float(text)


def next_hour(ms: int) -> int:
    """The end of the hour ``ms`` falls in (the funding channel's rate settles then)."""
    return ms - ms % HOUR_MS + HOUR_MS


class CryptocomScheme(Scheme):
    exchange = "cryptocom"
    websocket_endpoints = (WebsocketEndpoint("wss://stream.crypto.com/exchange/v1/market"),)
    rest_endpoint = RestEndpoint("https://api.crypto.com/exchange/v1", Routes(instruments="/public/get-instruments"))
    channels = {"lob": "book", "trades": "trade", "ticker": "ticker", "candle": "candlestick.1m",
                "funding_rate": "funding", "open_interest": "ticker"}
    default_channels = ("lob", "trades", "ticker", "candle", "funding_rate", "open_interest")
    default_symbols = ("BTC-USD", "BTC-USD-PERP")
    subscriptions_per_connection = 100
    #: channels in one subscribe request
    channels_per_message = 100
    #: seconds between a connect and its subscriptions (the docs' recommended sleep)
    subscribe_delay = 1.0
    timer_interval = 0.2
    ping_interval = 0.0  # the server pings (websocket PING, answered by picows) and sends heartbeats
    silence_timeout = 65.0  # two heartbeats
    unknown_market = "unknown instrument"

    dispatch = Dispatch({b"book": "_on_book", b"book.update": "_on_book", b"trade": "_on_trades",
                         b"ticker": "_on_ticker", b"candlestick": "_on_candles", b"funding": "_on_value",
                         b"estimatedfunding": "_on_value", b"mark": "_on_value"},
                        prefilter="_route",
                        decoders={b"book": m.book_decoder, b"book.update": m.book_decoder,
                                  b"trade": m.trade_decoder, b"ticker": m.ticker_decoder,
                                  b"candlestick": m.candle_decoder, b"funding": m.value_decoder,
                                  b"estimatedfunding": m.value_decoder, b"mark": m.value_decoder},
                        fallback="_on_other", refused="_on_refused")

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        #: each delta's ``pu`` must be the ``u`` of the last book push applied
        self.chain = Chain(self, linked=True, reason="pu {prev} != previous u {book}")
        #: native -> ``u`` of the last book push applied
        self.book_u: dict[str, int] = self.chain.ids
        #: native -> the last mark price / estimated funding rate seen
        self.marks: dict[str, float] = {}
        self.estimated: dict[str, float] = {}
        self._want_ticker = "ticker" in self.channel_names
        self._want_oi = "open_interest" in self.channel_names
        self._request_id = 0
        #: channel -> (decoder, handler): the same routes for a frame the byte prefilter missed
        table = self.dispatch.handlers(self)
        self._slow = {key.decode(): (self.dispatch.decoders[key], table[key]) for key in table}

    # --- instruments ----------------------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_listing(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess(native)

    # --- subscriptions --------------------------------------------------------------------------
    def plan_natives(self, channel: str, natives: list[str]) -> list[str]:
        if channel == "funding":
            return [n for n in natives if self.instrument(n).kind == "perp"]
        if channel == "ticker" and not self._want_ticker:
            return [n for n in natives if self.instrument(n).kind != "spot"]
        return natives

    @staticmethod
    def streams(channel: str, native: str) -> list[str]:
        """The exchange channels one (channel, market) pair subscribes."""
        if channel == "book":
            return [f"book.{native}.{DEPTH}"]
        if channel == "funding":
            return [f"funding.{native}", f"estimatedfunding.{native}", f"mark.{native}"]
        return [f"{channel}.{native}"]

    def _request(self, method: str, streams: list[str], book: bool) -> str:
        self._request_id += 1
        params: dict = {"channels": streams}
        if book and method == "subscribe":
            params["book_subscription_type"] = "SNAPSHOT_AND_UPDATE"
            params["book_update_frequency"] = BOOK_FREQUENCY
        return m.encode({"id": self._request_id, "method": method, "params": params,
                         "nonce": int(time.time() * 1000)}).decode()

    def _requests(self, method: str, streams: list[str], book: bool) -> list[str | bytes]:
        step = self.channels_per_message
        return [self._request(method, streams[i:i + step], book) for i in range(0, len(streams), step)]

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        return self._requests("subscribe", [s for n in natives for s in self.streams(channel, n)], channel == "book")

    def subscribe_plan(self, plan: ConnectionPlan) -> list[str | bytes]:
        """The book channels in requests of their own (with the delta subscription's parameters),
        then every other channel, ``channels_per_message`` a request."""
        books, others = [], []
        for channel, natives in plan.subscriptions:
            for n in natives:
                (books if channel == "book" else others).extend(self.streams(channel, n))
        return [*self._requests("subscribe", books, True), *self._requests("subscribe", others, False)]

    def on_open(self, conn: Connection, recv_ns: int) -> None:
        """Connected: say so; the subscriptions follow ``subscribe_delay`` later (``on_timer``)."""
        self.status("", "connected", conn.url, recv_ns)
        conn.state["subscribe_at"] = recv_ns + int(self.subscribe_delay * 1e9)

    def on_timer(self, conns: Sequence[Connection], now_ns: int) -> None:
        for conn in conns:
            at = conn.state.get("subscribe_at")
            if at is not None and now_ns >= at:
                del conn.state["subscribe_at"]
                for msg in self.subscribe_plan(conn.plan):
                    conn.send(msg)

    def resubscribe(self, conn: Connection, native: str, book: str = "lob") -> None:
        """A new snapshot of one book: its channel unsubscribed and subscribed again."""
        stream = self.streams("book", native)
        conn.send(self._request("unsubscribe", stream, True))
        conn.send(self._request("subscribe", stream, True))

    # --- frames ---------------------------------------------------------------------------------
    @staticmethod
    def _route(conn: Connection, data: bytes) -> bytes | None:
        """A push's channel, read on its bytes (``result.channel`` comes before ``data``); None
        for an answer, a heartbeat, or anything else (the fallback reads those)."""
        if data[:1] != b"{":
            return None
        i = data.find(_CHANNEL, 0, 320)
        if i < 0:
            return None
        i += 11
        j = data.find(b'"', i, i + 24)
        if j < 0:
            return None
        key = data[i:j]
        return key if key in _ROUTES else None

    def _on_other(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """Heartbeats (answered), subscription answers, errors, and pushes the prefilter missed."""
        if data[:1] != b"{":
            self.bad_input("not a JSON object", repr(bytes(data[:100])), data)
            return
        try:
            head = m.head_decoder.decode(data)
        except msgspec.ValidationError as exc:
            self.bad_input("unknown message", str(exc)[:200], data)
            return
        except MALFORMED as exc:
            self.bad_input("malformed JSON", str(exc)[:200], data)
            return
        method = head.method
        if method == "public/heartbeat":
            conn.send(m.encode({"id": head.id, "method": "public/respond-heartbeat"}).decode())
            return
        if head.code != 0:
            self.bad_input("exchange error", f"{method} {head.channel} {head.code} {head.message}"[:300], data)
            return
        if m.has_result(head):
            try:
                channel = m.result_head_decoder.decode(head.result).channel
            except DECODE_ERRORS as exc:
                self.bad_input("unknown message", str(exc)[:200], data)
                return
            route = self._slow.get(channel)
            if route is None:
                self.bad_input("unknown channel", repr(channel)[:100], data)
                return
            decoder, handler = route
            try:
                msg = decoder.decode(data)
            except DECODE_ERRORS as exc:
                self._on_refused(conn, data, recv_ns, exc)
                return
            handler(conn, msg, data, recv_ns)
            return
        if method == "subscribe" and head.channel:
            self.status("", "subscribed", head.channel[:200], recv_ns)
            return
        if method in ("subscribe", "unsubscribe"):
            return
        self.bad_input("unknown message", f"method {method!r}"[:200], data)

    def _on_refused(self, conn: Connection, data: bytes, recv_ns: int, exc: Exception) -> None:
        """A push its channel's Struct refused: counted; a book's resyncs (the push is lost to its
        chain)."""
        try:
            head = m.head_decoder.decode(data)
            result = m.result_head_decoder.decode(head.result) if m.has_result(head) else m.ResultHead()
        except DECODE_ERRORS:
            self.bad_input("malformed JSON" if not isinstance(exc, msgspec.ValidationError) else "unknown message",
                           str(exc)[:200], data)
            return
        what = _WHAT.get(result.channel, "unknown message")
        native = result.instrument_name
        if result.channel.startswith("book") and native in self.books:
            self.book_failed(conn, native, what, str(exc)[:200], data, recv_ns)
            return
        self.bad_input(what, str(exc)[:200], data)

    # --- books ----------------------------------------------------------------------------------
    def _on_book(self, conn: Connection, msg: m.BookMsg, data: bytes, recv_ns: int) -> None:
        r = msg.result
        native = r.instrument_name
        if not self.known(native, data):
            return
        depth = DEPTH  # the subscribed depth (the push's ``depth`` is not trusted to cut the book)
        snapshot = r.channel == "book"
        for item in r.data:
            if not 0 <= item.u < _MAX_SEQ or not ms_ok(item.t):
                self.book_failed(conn, native, "malformed book message", f"u {item.u!r} t {item.t!r}", data, recv_ns)
                return
            if snapshot:
                if not self._load(conn, native, item, depth, data, recv_ns):
                    return
            elif not self._delta(conn, native, item, depth, data, recv_ns):
                return

    def _load(self, conn: Connection, native: str, item: m.BookItem, depth: int, data: bytes, recv_ns: int) -> bool:
        """A whole book: checked whole, then it replaces the book."""
        try:
            self.book(native).check_sides(item.bids, item.asks)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "malformed book snapshot", str(exc)[:200], data, recv_ns)
            return False
        event_ms = item.t or recv_ns // 1_000_000
        atom_us = recv_ns // 1000
        book = self.begin_snapshot(native, recv_ns, event_ms)
        book.apply_sides(BID, item.bids, item.asks, self.rows("lob"), Lob, self.exchange, self._symbols[native],
                         event_ms, atom_us, depth)
        self.chain.set(native, item.u)
        if self.resync_crossed(conn, native, book, recv_ns):
            return False
        self.emit_spread(native, book, event_ms, atom_us)
        return True

    def _delta(self, conn: Connection, native: str, item: m.BookItem, depth: int, data: bytes, recv_ns: int) -> bool:
        if native in self.unsynced:
            return False  # waiting for the snapshot the resubscription brings
        last = self.book_u.get(native)
        book = self.books.get(native)
        if last is None or book is None:
            self.resync(conn, native, "book update before its snapshot", recv_ns)
            return False
        pu = item.pu
        if pu is None or not 0 <= pu < _MAX_SEQ or item.update is None:
            self.book_failed(conn, native, "malformed book update", f"pu {pu!r} update {item.update!r}"[:200], data,
                             recv_ns)
            return False
        if not self.chain.follows(conn, native, item.u, item.u, pu, recv_ns):
            return False
        event_ms = item.t or recv_ns // 1_000_000
        atom_us = recv_ns // 1000
        try:
            flags = book.apply_sides(BID, item.update.bids, item.update.asks, self.rows("lob"), Lob, self.exchange,
                                     self._symbols[native], event_ms, atom_us, depth)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "malformed book update", str(exc)[:200], data, recv_ns)
            return False
        self.chain.set(native, item.u)
        if flags & CROSSED and self.resync_crossed(conn, native, book, recv_ns):
            return False
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)
        return True

    # --- trades, tickers, candles ---------------------------------------------------------------
    def _on_trades(self, conn: Connection, msg: m.TradeMsg, data: bytes, recv_ns: int) -> None:
        """Trades oldest first (a push lists the newest first: the subscription's answer brings
        the last 50)."""
        r = msg.result
        native = r.instrument_name
        out = []
        try:
            for t in reversed(r.data):
                side = _SIDES.get(t.s)
                tid = t.d if t.d.__class__ is str else str(t.d)
                if side is None or not ms_ok(t.t) or not tid or len(tid) > 64 or (t.i and t.i != native):
                    raise ValueError(f"{t.i!r} {t.s!r} {t.t!r} {t.d!r}"[:200])
                for x in (t.p, t.q):  # plain decimals (the writer parses them)
                    if not is_plain(x):
                        raise ValueError(f"bad number {x!r}")
                out.append((t, tid))
        except ValueError as exc:
            self.bad_input("malformed trade", str(exc), data)
            return
        if not self.known(native, data):
            return
        atom_us = recv_ns // 1000
        rows, exchange, symbol = self.rows("trades"), self.exchange, self._symbols[native]
        for t, tid in out:
            # a price of 0, or a value of 1e15 or more (no market's), is refused by the writer
            if not rows.trade(exchange, symbol, t.p, t.q, t.s == "BUY", tid, t.t, atom_us):
                self.bad_input("malformed trade", f"{t.p!r} {t.q!r}", data)
                return

    def _on_ticker(self, conn: Connection, msg: m.TickerMsg, data: bytes, recv_ns: int) -> None:
        """``ticker``: best bid/ask (topic ``ticker``) and, for perpetuals and futures, ``oi``
        (topic ``open_interest``)."""
        r = msg.result
        native = r.instrument_name
        out = []
        try:
            for t in r.data:
                if not ms_ok(t.t) or (t.i and t.i != native):
                    raise ValueError(f"{t.i!r} t {t.t!r}")
                oi = _number(t.oi) if t.oi is not None else None
                for x in (t.b, t.bs, t.k, t.ks):  # plain decimals; null or "" (an empty side): 0.0
                    if x and not is_plain(x):
                        raise ValueError(f"bad number {x!r}")
                out.append((t, oi))
        except ValueError as exc:
            self.bad_input("malformed ticker", str(exc)[:200], data)
            return
        if not self.known(native, data):
            return
        atom_us = recv_ns // 1000
        rows, symbol = self.rows("ticker"), self._symbols[native]
        derivative = self.instrument(native).kind != "spot"
        for t, oi in out:
            # a value of 1e15 or more (no market's) is refused by the writer
            if self._want_ticker and not rows.quote(self.exchange, symbol, t.b or 0.0, t.bs or 0.0, t.k or 0.0,
                                                    t.ks or 0.0, t.t, atom_us):
                self.bad_input("malformed ticker", f"{t.b!r} {t.bs!r} {t.k!r} {t.ks!r}", data)
                return
            if self._want_oi and derivative and oi is not None:
                self.emit("open_interest", OpenInterest(self.exchange, symbol, oi, t.t, atom_us))

    def _on_candles(self, conn: Connection, msg: m.CandleMsg, data: bytes, recv_ns: int) -> None:
        """1-minute candles, oldest first; a candle is closed when the push holds a later one (the
        subscription's answer brings the history); ``event_timestamp`` is ``ut`` where sent."""
        r = msg.result
        interval = r.interval
        if not interval:  # (``candlestick.1m.BTC_USD``)
            parts = r.subscription.split(".")
            interval = parts[1] if len(parts) == 3 else ""
        if interval != "1m":
            self.bad_input("unknown candle interval", repr(interval or r.subscription)[:100], data)
            return
        native = r.instrument_name
        out = []
        try:
            for c in sorted(r.data, key=lambda c: c.t):
                if not 0 <= c.t < 10**14 - 60_000 or not ms_ok(c.ut):
                    raise ValueError(f"t {c.t!r} ut {c.ut!r}")
                out.append((c.t, _number(c.o), _number(c.h), _number(c.l), _number(c.c), _number(c.v),
                            c.ut or recv_ns // 1_000_000))
        except ValueError as exc:
            self.bad_input("malformed candle", str(exc)[:200], data)
            return
        if not out or not self.known(native, data):
            return
        newest = out[-1][0]
        atom_us = recv_ns // 1000
        symbol = self._symbols[native]
        for start, o, h, lo, c, v, event_ms in out:
            self.emit("candle", Candle(self.exchange, symbol, start, start + 60_000, "1m", 0, start < newest, o, h, lo,
                                       c, v, event_ms, atom_us))

    # --- funding, mark --------------------------------------------------------------------------
    def _on_value(self, conn: Connection, msg: m.ValueMsg, data: bytes, recv_ns: int) -> None:
        r = msg.result
        channel, native = r.channel, r.instrument_name
        out = []
        try:
            for item in r.data:
                if not ms_ok(item.t):
                    raise ValueError(f"t {item.t!r}")
                out.append((_number(item.v) if channel == "mark" else _rate(item.v), item.t))
        except ValueError as exc:
            self.bad_input(_WHAT.get(channel, "unknown message"), str(exc)[:200], data)
            return
        if not self.known(native, data):
            return
        if channel == "mark":
            for value, _t in out:
                self.marks[native] = value
            return
        if channel == "estimatedfunding":
            for value, _t in out:
                self.estimated[native] = value
            return
        atom_us = recv_ns // 1000
        symbol = self._symbols[native]
        mark, predicted = self.marks.get(native, 0.0), self.estimated.get(native, 0.0)
        for rate, ts in out:
            self.emit("funding_rate", FundingRate(self.exchange, symbol, mark, rate, next_hour(ts), predicted, ts,
                                                  atom_us))
