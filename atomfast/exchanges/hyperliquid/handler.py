"""Hyperliquid (``--exchange hyperliquid``: perpetuals; ``hyperliquid-spot``: spot pairs).

Where the venue is (hyperliquid.gitbook.io, for-developers/api/websocket and .../subscriptions;
info-endpoint/perpetuals and .../spot): one websocket ``wss://api.hyperliquid.xyz/ws``, one
subscription a message: ``{"method":"subscribe","subscription":{"type":"l2Book","coin":"BTC"}}``
(answered ``{"channel":"subscriptionResponse","data":{...}}``). The server closes a connection
that sent nothing for 60 s: ``{"method":"ping"}`` every 30 s (answered ``{"channel":"pong"}``).
At most 1000 subscriptions (per IP). Instruments: ``POST https://api.hyperliquid.xyz/info`` with
``{"type":"meta"}`` (perpetuals) or ``{"type":"spotMeta"}`` (spot): the two listings share one
URL, so each market type is its own scheme with one listing (``kit.endpoints.Post``).

Channel map (atomfast topic -> subscription ``type``):

==============================  ====================  ==========================================
topic                           type                  published from
==============================  ====================  ==========================================
lob (+spread)                   ``l2Book``            our book: each snapshot turned into level
                                                      changes against the previous one
trades, trades_l3               ``trades``            each trade; trades_l3 with ``users``
                                                      ([buyer, seller]) as maker/taker ids
funding_rate, open_interest     ``activeAssetCtx``    ``funding`` (+ ``markPx``), ``openInterest``
candle                          ``candle`` (``1m``)   the current candle
==============================  ====================  ==========================================

Book verification: every ``l2Book`` message is a self-contained snapshot of the book's top
levels (the docs: "Snapshot feed, pushed on each block that is at least 0.5 [s] since last
push"; 20 levels a side at full precision, no ``nSigFigs``): there is no sequence to check and
nothing to resync from. The first snapshot of a market (and the first after a reconnect or a
refused snapshot) loads the book (status ``snapshot``, every level); each later one is turned
into the level changes (new, changed, gone) that make our book equal to it, so the ``lob``
topic is the exact succession of the venue's snapshots. Refused: a snapshot whose ``time`` is
not newer than the last one of that market (stale: a repeated or reordered message; counted
bad input "stale l2Book", the book keeps the newer one: not affected, no status), and a crossed
snapshot (best bid >= best ask; counted "crossed l2Book"; a book already published is dropped
with status ``resync`` ``crossed snapshot: ...`` and the next snapshot reloads it). A lost
snapshot cannot be detected and does no harm: the next one is whole. What cannot be verified:
the levels' content (no checksum, no sequence), and the book below the published top levels.

Trades (``WsTrade``): ``side`` is the taker's (``B``: bought, ``A``: sold), ``users`` is
[buyer, seller]: the taker is the buyer for ``B``, the seller for ``A``; ``tid`` is the trade
id. On (re)subscribing the venue sends its recent trades first; a trade not newer than the last
one published for the market (``time``, then ``tid`` at equal time) is a repeat and not
published again.

Funding (``activeAssetCtx``, perpetuals): ``funding`` is the current hourly rate, paid on the
hour (the docs, "Funding"): ``next_funding_time`` is the next full hour after receipt; the
message has no time of its own (event time = receive time); ``predicted_rate`` 0.0 (none given).
Open interest: ``openInterest`` in the base asset.
"""
from __future__ import annotations

import re
from typing import Sequence

import msgspec

from ...book import ASK, BID, TOP_CHANGED, parse_ticks
from ...events import BUY, SELL, Candle, FundingRate, Lob, OpenInterest, TradeL3
from ...kit.endpoints import Post
from ...kit.levels import side_changes
from ...scheme import (BOOK_ERRORS, DECODE_ERRORS, LOB, MALFORMED, Connection, Dispatch, Instrument,
                       RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from .._common import MAX_FLOAT, is_plain, ms_ok
from . import messages as m
from .parse import guess_spot, parse_meta, parse_spot_meta, perp_instrument

_new = tuple.__new__
_SIDES = {"B": BUY, "A": SELL}
_HEAD = b'{"channel":"'
_HOUR_MS = 3_600_000
_MAX_ID = 1 << 64
#: a funding rate: a signed plain decimal
_RATE_MAX = 1.0


def _rate(text: str | None) -> float:
    body = text[1:] if text[:1] == "-" else text
    if not is_plain(body):
        raise ValueError(f"rate {text!r}")
    value = float(text)
    if abs(value) >= _RATE_MAX:
        raise ValueError(f"rate {text!r}")
    return value


#: a plain decimal (``is_plain``) above 0: a trade's price and size
_positive = re.compile(r"(?=[0.]*[1-9])[0-9]{1,16}(?:\.[0-9]{1,20})?").fullmatch


def _trade_detail(t: m.Trade) -> str:
    return f"{t.coin!r} {t.side!r} {t.px!r} {t.sz!r} {t.time} {t.tid} {t.users!r}"[:300]


def _amount(text: str | None) -> float:
    if text.__class__ is not str or not is_plain(text):
        raise ValueError(f"value {text!r}")
    value = float(text)
    if not value < MAX_FLOAT:
        raise ValueError(f"value {text!r}")
    return value


class HyperliquidScheme(Scheme):
    exchange = "hyperliquid"
    websocket_endpoints = (WebsocketEndpoint("wss://api.hyperliquid.xyz/ws"),)
    rest_endpoint = RestEndpoint("https://api.hyperliquid.xyz", Routes(instruments=Post("/info", b'{"type":"meta"}')))
    channels = {"lob": "l2Book", "trades": "trades", "trades_l3": "trades", "funding_rate": "activeAssetCtx",
                "open_interest": "activeAssetCtx", "candle": "candle"}
    default_channels = ("lob", "trades", "funding_rate", "open_interest")
    default_symbols = ("BTC-USD-PERP", "ETH-USD-PERP")
    #: the candle interval subscribed
    candle_interval = "1m"
    symbols_per_message = 1  # one subscription a message
    subscriptions_per_connection = 1000  # the documented cap (per IP)
    #: the server closes a connection idle for 60 s; a ping every 30 s keeps it (and the watchdog) fed
    ping_interval = 30.0
    silence_timeout = 45.0

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        names = set(self.channel_names)
        self._want_trades = "trades" in names
        self._want_trades_l3 = "trades_l3" in names
        self._want_funding = "funding_rate" in names
        self._want_oi = "open_interest" in names
        #: market -> the ``time`` of its last snapshot (stale: not newer)
        self.times: dict[str, int] = {}
        #: market -> (time, tids at that time) of the last trade published
        self.last_trades: dict[str, tuple[int, frozenset]] = {}
        self._routes = {b"l2Book": (m.book_frame, self._on_book), b"trades": (m.trades_frame, self._on_trades),
                        b"activeAssetCtx": (m.ctx_frame, self._on_ctx), b"candle": (m.candle_frame, self._on_candle),
                        b"subscriptionResponse": (m.answer_frame, self._on_answer),
                        b"error": (m.error_frame, self._on_error)}

    # --- instruments --------------------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_meta(body)

    def guess_instrument(self, native: str) -> Instrument:
        return perp_instrument(native)

    # --- subscriptions ------------------------------------------------------------------------
    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        out: list[str | bytes] = []
        for native in natives:
            sub: dict = {"type": channel, "coin": native}
            if channel == "candle":
                sub["interval"] = self.candle_interval
            out.append(m.encode({"method": "subscribe", "subscription": sub}).decode())
        return out

    def ping_message(self) -> str:
        return '{"method":"ping"}'

    def resubscribe(self, conn: Connection, native: str, book: str = LOB) -> None:
        """Nothing to ask: the next ``l2Book`` message is a whole snapshot and reloads the book."""

    def on_close(self, conn: Connection, reason: str, recv_ns: int) -> None:
        for _channel, natives in conn.plan.subscriptions:
            for native in natives:
                self.times.pop(native, None)  # a new connection's first snapshot loads the book
        super().on_close(conn, reason, recv_ns)

    # --- frames -------------------------------------------------------------------------------
    dispatch = Dispatch(
        {b"l2Book": "_on_book", b"trades": "_on_trades", b"activeAssetCtx": "_on_ctx", b"candle": "_on_candle",
         b"subscriptionResponse": "_on_answer", b"error": "_on_error", b"pong": None},
        prefilter="_route_key",
        decoders={b"l2Book": m.book_frame, b"trades": m.trades_frame, b"activeAssetCtx": m.ctx_frame,
                  b"candle": m.candle_frame, b"subscriptionResponse": m.answer_frame, b"error": m.error_frame},
        fallback="_slow", refused="_on_refused")

    @staticmethod
    def _route_key(conn: Connection, data: bytes) -> bytes | None:
        """The channel of ``{"channel":"<name>",...`` read on the bytes (None: written otherwise)."""
        if data[:12] != _HEAD:
            return None
        end = data.find(b'"', 12, 48)
        return data[12:end] if end > 0 else None

    def _slow(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """A frame not starting with its channel: the channel read from the decoded frame, then
        routed as the fast path would; anything else is counted."""
        try:
            p = m.probe.decode(data)
        except msgspec.ValidationError as exc:
            self.bad_input("unknown message", str(exc), data)
            return
        except MALFORMED as exc:
            self.bad_input("malformed JSON", str(exc), data)
            return
        channel = p.channel
        if channel.__class__ is not str:
            self.bad_input("unknown message", "no channel", data)
            return
        if channel == "pong":
            return
        route = self._routes.get(channel.encode())
        if route is None:
            self.bad_input("unknown channel", repr(channel)[:100], data)
            return
        decoder, handler = route
        try:
            msg = decoder.decode(data)
        except DECODE_ERRORS as exc:
            self.bad_input(f"malformed {channel} message", str(exc), data)
            return
        handler(conn, msg, data, recv_ns)

    def _on_refused(self, conn: Connection, data: bytes, recv_ns: int, exc: Exception) -> None:
        """A frame its channel's decoder refused: counted (a book is not affected: the next
        snapshot is whole)."""
        key = self._route_key(conn, data) or b"?"
        self.bad_input(f"malformed {key.decode('utf-8', 'replace')[:40]} message", str(exc), data)

    def _on_answer(self, conn: Connection, msg: m.AnswerFrame, data: bytes, recv_ns: int) -> None:
        sub = msg.data.subscription
        coin = sub.coin
        if coin.__class__ is str and (coin in self._symbols or self.known(coin, data)):
            self.status(self._symbols[coin], "subscribed", sub.type[:40], recv_ns)

    def _on_error(self, conn: Connection, msg: m.ErrorFrame, data: bytes, recv_ns: int) -> None:
        self.bad_input("exchange error", repr(msg.data)[:300], data)

    # --- book ---------------------------------------------------------------------------------
    def _on_book(self, conn: Connection, msg: m.BookFrame, data: bytes, recv_ns: int) -> None:
        b = msg.data
        native = b.coin
        if native not in self._symbols and not self.known(native, data):
            return
        ms = b.time
        if len(b.levels) != 2 or not ms_ok(ms):
            self.bad_input("malformed l2Book", f"{native}: {len(b.levels)} sides, time {ms}", data)
            return
        last = self.times.get(native)
        if last is not None and ms <= last:
            self.bad_input("stale l2Book", f"{native}: time {ms} <= previous {last}", data)
            return
        bids, asks = b.levels
        book = self.book(native)
        pd = book.price_decimals
        try:  # every level parsed before anything is decided
            bid_ticks = [parse_ticks(lv.price, pd) for lv in bids]
            ask_ticks = [parse_ticks(lv.price, pd) for lv in asks]
            book.check_sides(bids, asks)
        except BOOK_ERRORS as exc:
            self.bad_input("malformed l2Book", f"{native}: {exc}", data)
            return
        self.times[native] = ms
        if bid_ticks and ask_ticks and max(bid_ticks) >= min(ask_ticks):
            reason = f"crossed snapshot: bid {max(bid_ticks) / 10 ** pd} >= ask {min(ask_ticks) / 10 ** pd}"
            self.bad_input("crossed l2Book", f"{native}: {reason}", data)
            if native not in self.unsynced and book.count(BID) + book.count(ASK):
                self.resync(conn, native, reason, recv_ns)
            else:
                book.clear()
                self.unsynced.add(native)
            return
        atom_us = recv_ns // 1000
        symbol = self._symbols[native]
        if last is None or native in self.unsynced:  # the first snapshot (of this connection)
            book = self.begin_snapshot(native, recv_ns, ms)
            flags = book.apply_sides(BID, bids, asks, self.rows("lob"), Lob, self.exchange, symbol, ms, atom_us)
            flags |= TOP_CHANGED
        else:
            flags = book.apply_sides(BID, side_changes(book, BID, [(lv.price, lv.size) for lv in bids], bid_ticks),
                                     side_changes(book, ASK, [(lv.price, lv.size) for lv in asks], ask_ticks),
                                     self.rows("lob"), Lob, self.exchange, symbol, ms, atom_us)
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, ms, atom_us)

    # --- trades -------------------------------------------------------------------------------
    def _on_trades(self, conn: Connection, msg: m.TradesFrame, data: bytes, recv_ns: int) -> None:
        # the whole message checked before any trade is written: price and size plain decimals
        # above 0 (the writer parses them), the taker's side, the time, the id, the two users
        for t in msg.data:
            users = t.users
            if not (t.side in _SIDES and _positive(t.px) and _positive(t.sz) and ms_ok(t.time)
                    and 0 <= t.tid < _MAX_ID and len(users) == 2 and all(0 < len(u) <= 64 for u in users)):
                self.bad_input("malformed trade", _trade_detail(t), data)
                return
        atom_us = recv_ns // 1000
        before = dict(self.last_trades)
        rows = self.rows("trades")
        for t in msg.data:
            coin = t.coin
            if coin not in self._symbols and not self.known(coin, data):
                continue
            last = before.get(coin)
            if last is not None and (t.time < last[0] or (t.time == last[0] and t.tid in last[1])):
                continue  # published already (the recent trades a subscription starts with)
            now = self.last_trades.get(coin)
            if now is None or t.time > now[0]:
                self.last_trades[coin] = (t.time, frozenset((t.tid,)))
            elif t.time == now[0]:
                self.last_trades[coin] = (t.time, now[1] | {t.tid})
            symbol = self._symbols[coin]
            # a value of 1e15 or more (no market's) is refused by the writer
            if self._want_trades and not rows.trade(self.exchange, symbol, t.px, t.sz, t.side == "B", t.tid, t.time,
                                                    atom_us):
                self.bad_input("malformed trade", _trade_detail(t), data)
                return
            if self._want_trades_l3:
                side = _SIDES[t.side]
                buyer, seller = t.users
                maker, taker = (seller, buyer) if side == BUY else (buyer, seller)
                self.emit("trades_l3", _new(TradeL3, (self.exchange, symbol, float(t.px), float(t.sz), side,
                                                      str(t.tid), maker, taker, t.time, atom_us)))

    # --- funding, open interest ---------------------------------------------------------------
    def _on_ctx(self, conn: Connection, msg: m.CtxFrame, data: bytes, recv_ns: int) -> None:
        d = msg.data
        ctx = d.ctx
        try:
            rate = _rate(ctx.funding) if ctx.funding is not None else None
            mark = _amount(ctx.markPx) if ctx.markPx is not None else 0.0
            oi = _amount(ctx.openInterest) if ctx.openInterest is not None else None
        except (ValueError, TypeError) as exc:
            self.bad_input("malformed activeAssetCtx", f"{d.coin!r}: {exc}"[:300], data)
            return
        if d.coin not in self._symbols and not self.known(d.coin, data):
            return
        symbol = self._symbols[d.coin]
        atom_us = recv_ns // 1000
        ms = atom_us // 1000
        if rate is not None and self._want_funding:
            nxt = (ms // _HOUR_MS + 1) * _HOUR_MS
            self.emit("funding_rate", _new(FundingRate, (self.exchange, symbol, mark, rate, nxt, 0.0, ms, atom_us)))
        if oi is not None and self._want_oi:
            self.emit("open_interest", _new(OpenInterest, (self.exchange, symbol, oi, ms, atom_us)))

    # --- candles ------------------------------------------------------------------------------
    def _on_candle(self, conn: Connection, msg: m.CandleFrame, data: bytes, recv_ns: int) -> None:
        candles = msg.data if msg.data.__class__ is list else [msg.data]
        out = []
        for k in candles:
            try:
                o, h, lo, c, v = _amount(k.o), _amount(k.h), _amount(k.l), _amount(k.c), _amount(k.v)
            except ValueError as exc:
                self.bad_input("malformed candle", f"{k.s!r}: {exc}"[:300], data)
                return
            if not (ms_ok(k.t) and ms_ok(k.T) and k.T >= k.t and 0 <= k.n < 1 << 31 and 0 < len(k.i) <= 8
                    and lo <= min(o, c, h) and h >= max(o, c)):
                self.bad_input("malformed candle", f"{k.s!r} t={k.t} T={k.T} i={k.i!r} n={k.n} {k.o} {k.h} {k.l} {k.c}"
                               [:300], data)
                return
            out.append((k, o, h, lo, c, v))
        atom_us = recv_ns // 1000
        for k, o, h, lo, c, v in out:
            if k.s not in self._symbols and not self.known(k.s, data):
                continue
            # ``T`` is the candle's last ms: ``end`` is exclusive (as on the other venues)
            self.emit("candle", Candle(self.exchange, self._symbols[k.s], k.t, k.T + 1, k.i, k.n, False, o, h, lo, c,
                                       v, atom_us // 1000, atom_us))


class HyperliquidSpotScheme(HyperliquidScheme):
    """Spot pairs (``PURR/USDC``, ``@<index>``): the same websocket, their own listing."""

    exchange = "hyperliquid-spot"
    rest_endpoint = RestEndpoint("https://api.hyperliquid.xyz",
                                 Routes(instruments=Post("/info", b'{"type":"spotMeta"}')))
    channels = {"lob": "l2Book", "trades": "trades", "trades_l3": "trades", "candle": "candle"}
    default_channels = ("lob", "trades")
    default_symbols = ("PURR-USDC",)

    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_spot_meta(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_spot(native)


__all__ = ["HyperliquidScheme", "HyperliquidSpotScheme"]
