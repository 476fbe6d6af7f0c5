"""Deribit (``wss://www.deribit.com/ws/api/v2``, JSON-RPC 2.0), exchange name ``deribit``:
perpetuals, dated futures, options and spot, inverse and linear.

Channel map (atomfast topic -> Deribit channel, ``{i}`` the instrument name):

==============  =====================================  ===========================================
topic           channel                                published from
==============  =====================================  ===========================================
lob (+spread)   ``book.{i}.100ms``                     snapshot + changes (``change_id`` chain)
trades          ``trades.{i}.100ms``                   each trade; ``direction`` = taker side
ticker          ``ticker.{i}.100ms``                   best bid/ask price and amount
funding_rate    ``ticker.{i}.100ms`` (shared)          perpetuals: ``current_funding``, ``funding_8h``
open_interest   ``ticker.{i}.100ms`` (shared)          ``open_interest``, when it changes
candle          ``chart.trades.{i}.1``                 the current 1-minute candle
==============  =====================================  ===========================================

``raw`` intervals are only served to authorised connections (Deribit's docs), so the public
collector subscribes ``100ms`` (``interval``). Frames of any interval are parsed alike (the
recorded capture ``DERIBIT.ws.1.0`` is of the older ``.raw`` channels).

Books: every message carries ``change_id``; every change also ``prev_change_id``, which must equal
the ``change_id`` of the previous message of that instrument. Anything else is a gap:
``metrics.gaps`` += 1, the instrument is resynced (status ``resync``, book dropped, changes
ignored) and its book channel unsubscribed and subscribed again, which brings a fresh snapshot.
A change before any snapshot, or a malformed book message, resyncs too. A message is checked whole
before the book is touched. Deribit has no book checksum.

Trades: ``trade_id`` is Deribit's (a string, unique per currency), ``taker_side`` its
``direction``, ``size`` its ``amount`` (USD for inverse perpetuals/futures, the coin for options
and linear instruments: the venue's units, unchanged).

Ticker: ``best_bid_*``/``best_ask_*`` (0.0 for a missing side). funding_rate (perpetuals only,
emitted when the rates change): ``funding_rate`` = ``current_funding``, ``predicted_rate`` =
``funding_8h`` (Deribit publishes no predicted rate; its 8-hour funding is carried there),
``mark_price`` = ``mark_price``, ``next_funding_time`` = the next 8-hour settlement (00:00, 08:00,
16:00 UTC: Deribit accrues funding continuously and settles it then). open_interest: Deribit's
``open_interest`` (USD for inverse contracts, coins otherwise), emitted when it changes.

Candles: Deribit sends the current candle of the resolution many times while it is open
(``closed`` False); when a candle of a later ``tick`` arrives, the previous one is published once
more with ``closed`` True. ``trades`` is 0 (Deribit does not count them); ``v`` is ``volume``;
the candle carries no event time, so ``event_timestamp`` is the receive time.

Keep-alive: on connect we send ``public/set_heartbeat`` (``heartbeat_interval`` s); Deribit then
sends ``heartbeat`` notifications and, now and then, a ``test_request`` that must be answered
with ``public/test`` or the connection is closed. No other ping is needed.
"""
from __future__ import annotations

import math
from typing import Sequence

from ...book import ASK, BID
from ...events import Candle, FundingRate, Lob, OpenInterest, Spread
from ...kit.chain import Chain
from ...scheme import (BOOK_ERRORS, DECODE_ERRORS, TOP_CHANGED, Connection, Dispatch, Instrument,
                       RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from .._common import MAX_FLOAT, ok_float
from . import messages as m
from .parse import MAX_MS, ms_ok, name_instrument, parse_instruments

_ZERO = b"0"
#: the largest price or size a trade may carry (the typed writers' bound: no exchange means more)
_MAX_VALUE = 1e15
_ACTIONS = ("new", "change", "delete")
_FUNDING_PERIOD_MS = 8 * 3600 * 1000
_RPC_KEY = "deribit_rpc"  # conn.state: request id -> method
#: how Deribit writes a notification, up to its channel name, whose first four bytes are the route
#: key (``book``, ``trad``, ``tick``, ``char``: the decoder of that key checks the whole kind)
_NOTIFICATION = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"'
_KEY = slice(len(_NOTIFICATION), len(_NOTIFICATION) + 4)
#: the slow way (``_on_raw_notification``), per channel kind: its data's decoder, the bad-input
#: kind of data it refuses, the handler
_RAW_ROUTES = {"book": (m.book_decoder, "malformed book message", "_on_book"),
               "trades": (m.trades_decoder, "malformed trades message", "_on_trades"),
               "ticker": (m.ticker_decoder, "malformed ticker", "_on_ticker"),
               "chart": (m.chart_decoder, "malformed candle", "_on_chart")}
_INTERVAL_NAMES = {1: "1m", 3: "3m", 5: "5m", 10: "10m", 15: "15m", 30: "30m", 60: "1h", 120: "2h", 180: "3h",
                   360: "6h", 720: "12h", 1440: "1d"}


def _resolution_minutes(res: str) -> int:
    if res == "1D":
        return 1440
    if res.isdigit() and res.isascii() and 0 < len(res) <= 5:
        return int(res)
    return 0


def _candle_channel(channel: str) -> tuple[str, str, int] | None:
    """(instrument, resolution, minutes) of ``chart.trades.{instrument}.{resolution}``, or None."""
    parts = channel.split(".")
    minutes = _resolution_minutes(parts[3]) if len(parts) == 4 and parts[1] == "trades" else 0
    if not minutes:
        return None
    return parts[2], parts[3], minutes


class DeribitScheme(Scheme):
    exchange = "deribit"
    default_symbols = ("BTC-USD-PERP", "ETH-USD-PERP")
    unknown_market = "unknown instrument"
    websocket_endpoints = (WebsocketEndpoint("wss://www.deribit.com/ws/api/v2"),)
    #: instruments: every currency at once (``any``), then one listing per currency, merged: the
    #: recorded capture (and the simulator serving it) holds the per-currency listings only; a
    #: listing not answered is left out
    rest_endpoint = RestEndpoint("https://www.deribit.com", Routes(instruments=tuple(
        f"/api/v2/public/get_instruments?currency={c}&expired=false" for c in ("any", "BTC", "ETH", "SOL", "USDC", "USDT"))))
    channels = {"lob": "book", "trades": "trades", "ticker": "ticker", "funding_rate": "ticker",
                "open_interest": "ticker", "candle": "chart.trades"}
    default_channels = ("lob", "trades", "ticker", "funding_rate", "open_interest")
    symbols_per_message = 100
    ping_interval = 0.0  # Deribit's own heartbeat (set_heartbeat / test_request) keeps us alive
    silence_timeout = 30.0
    #: notification interval of book/trades/ticker: "100ms" or "agg2" ("raw" needs authorisation)
    interval = "100ms"
    #: candle resolution in minutes, or "1D"
    candle_resolution = "1"
    #: seconds between Deribit's heartbeats (at least 10)
    heartbeat_interval = 10

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        #: each change's ``prev_change_id`` must be the ``change_id`` of the last book message applied
        self.chain = Chain(self, linked=True, reason="prev_change_id {prev}, last change_id {book}",
                           kind="change_id gap")
        #: instrument -> change_id of the last book message applied
        self.change_ids: dict[str, int] = self.chain.ids
        self._last_funding: dict[str, tuple[float, float]] = {}
        self._last_oi: dict[str, float] = {}
        #: (instrument, resolution) -> the last candle published (not yet closed)
        self._candles: dict[tuple[str, str], Candle] = {}
        self._next_id = 1
        wanted = set(self.channel_names)
        self._want_ticker = "ticker" in wanted
        self._want_funding = "funding_rate" in wanted
        self._want_oi = "open_interest" in wanted

    # --- instruments and symbols --------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_instruments(body)

    def guess_instrument(self, native: str) -> Instrument:
        return name_instrument(native)

    # --- requests -----------------------------------------------------------------------------
    def request(self, conn: Connection, method: str, params: dict) -> str:
        """A JSON-RPC request (its id remembered on the connection, to read the answer)."""
        rid = self._next_id
        self._next_id += 1
        pending = conn.state.get(_RPC_KEY)
        if pending is None:
            pending = conn.state[_RPC_KEY] = {}
        if len(pending) > 10_000:  # answers that never came: forget them
            pending.clear()
        pending[rid] = method
        return m.encode({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).decode()

    def channel_name(self, channel: str, native: str) -> str:
        if channel == "chart.trades":
            return f"chart.trades.{native}.{self.candle_resolution}"
        return f"{channel}.{native}.{self.interval}"

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        chans = [self.channel_name(channel, n) for n in natives]
        return [m.encode({"jsonrpc": "2.0", "id": self._take_id(), "method": "public/subscribe",
                          "params": {"channels": chans}}).decode()]

    def _take_id(self) -> int:
        rid = self._next_id
        self._next_id += 1
        return rid

    def on_open(self, conn: Connection, recv_ns: int) -> None:
        conn.send(self.request(conn, "public/set_heartbeat", {"interval": self.heartbeat_interval}))
        super().on_open(conn, recv_ns)

    def resubscribe(self, conn: Connection, native: str) -> None:
        chans = [self.channel_name("book", native)]
        conn.send(self.request(conn, "public/unsubscribe", {"channels": chans}))
        conn.send(self.request(conn, "public/subscribe", {"channels": chans}))

    # --- frames -------------------------------------------------------------------------------
    #: a notification is decoded once, with the decoder of its channel's kind (read on the raw
    #: bytes); anything else (heartbeats, answers, a frame the fast way refuses) is ``_on_other``
    dispatch = Dispatch({b"book": "_on_book", b"trad": "_on_trades", b"tick": "_on_ticker", b"char": "_on_chart"},
                        prefilter="_channel_kind", unwrap="params",
                        decoders={b"book": m.book_notification, b"trad": m.trades_notification,
                                  b"tick": m.ticker_notification, b"char": m.chart_notification},
                        fallback="_on_other")

    def _channel_kind(self, conn: Connection, data: bytes) -> bytes | None:
        """The kind of a notification's channel (``book`` of ``book.BTC-PERPETUAL.100ms``, its
        first four bytes), read from the bytes of a frame written as Deribit writes one (None for
        any other frame)."""
        if data.startswith(_NOTIFICATION):
            return data[_KEY]
        return None

    def _on_other(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """Heartbeats, answers, and whatever the notification decoders refused: the envelope with
        ``data`` left raw, then the channel's data, so that an error names the part at fault."""
        env = self.decode_unrouted(data, m.envelope_decoder, "malformed message")
        if env is None:
            return
        params = env.params
        if env.method == "subscription" and params is not None:
            self._on_raw_notification(conn, params, data, recv_ns)
        elif env.method == "heartbeat":
            if params is not None and params.type == "test_request":
                conn.send(self.request(conn, "public/test", {}))
        elif env.id is not None and not env.method:
            self._on_answer(conn, env, data, recv_ns)
        else:
            self.bad_input("unknown message", f"method {env.method!r}", data)

    def _on_raw_notification(self, conn: Connection, params: m.Params, data: bytes, recv_ns: int) -> None:
        """A notification whose data is still raw: decoded with its channel's decoder (the errors
        of each channel), then handled as a decoded one."""
        channel = params.channel
        kind = channel.partition(".")[0]
        route = _RAW_ROUTES.get(kind)
        if route is None or (kind == "chart" and _candle_channel(channel) is None):
            self.bad_input("unknown channel", repr(channel), data)
            return
        decoder, what, handler = route
        try:
            payload = decoder.decode(params.data)
        except DECODE_ERRORS as exc:
            self.bad_input(what, str(exc), data)
            if kind == "book":
                parts = channel.split(".")
                native = parts[1] if len(parts) > 2 else ""
                if native in self.books:
                    self.resync(conn, native, "malformed book message", recv_ns)
            return
        getattr(self, handler)(conn, m.Subscription(channel, payload, params.type), data, recv_ns)

    def _on_answer(self, conn: Connection, env: m.Envelope, data: bytes, recv_ns: int) -> None:
        pending = conn.state.get(_RPC_KEY)
        method = pending.pop(env.id, None) if pending else None
        if env.error is not None:
            self.bad_input("exchange error", f"{method or env.id}: {env.error.code} {env.error.message}", data)
            if method in (None, "public/subscribe"):
                self.status("", "stopped", f"request {env.id} failed: {env.error.code} {env.error.message}", recv_ns)
            return
        if method is not None and method != "public/subscribe":
            return  # set_heartbeat "ok", test, unsubscribe
        raw = bytes(env.result)
        if raw[:1] != b"[":
            if method is None:
                return  # an answer to a request of someone else's (not a subscription list)
            self.bad_input("malformed subscribe answer", "result is not a list", data)
            return
        try:
            chans = m.channels_decoder.decode(raw)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed subscribe answer", str(exc), data)
            return
        for chan in chans:
            parts = chan.split(".")
            native = parts[2] if parts[0] == "chart" and len(parts) > 2 else (parts[1] if len(parts) > 1 else "")
            if native and self.known(native, data):
                self.status(self.symbol_of(native), "subscribed", chan, recv_ns)

    # --- book ---------------------------------------------------------------------------------
    @staticmethod
    def _levels(levels: list) -> list | None:
        """The levels as the book reads them: the notification decoder's (``m.New``,
        ``m.Change``, ``m.Delete``: ``price`` and ``size``, 0 for a delete) as they are; the slow
        way's ``[action, price, amount]`` as (price, amount) pairs, (price, 0) for a delete;
        None if an action is none of the three. The numbers are checked by the book
        (``L2Book.check_sides``)."""
        if not levels or levels[0].__class__ is not tuple:
            return levels
        out = []
        for action, price, amount in levels:
            if action == "delete":
                amount = _ZERO
            elif action not in _ACTIONS:
                return None
            out.append((price, amount))
        return out

    def _on_book(self, conn: Connection, params: m.Subscription, data: bytes, recv_ns: int) -> None:
        msg: m.Book = params.data
        native = msg.instrument_name
        symbol = self._symbols.get(native)
        if symbol is None:
            if not self.known(native, data):
                return
            symbol = self._symbols[native]
        typ = msg.type
        snapshot = typ == "snapshot" or (typ == "" and msg.prev_change_id is None)
        if not snapshot and native in self.unsynced:
            return  # waiting for the snapshot our resubscription brings
        event_ms = msg.timestamp
        if not 0 <= event_ms < MAX_MS:
            self.book_failed(conn, native, "malformed book message", f"timestamp {msg.timestamp!r}", data, recv_ns)
            return
        if snapshot:
            self._on_snapshot(conn, native, symbol, msg, data, recv_ns)
            return
        book = self.books.get(native)
        if book is None:
            self.resync(conn, native, "book change before its snapshot", recv_ns)
            return
        if typ != "change":
            self.book_failed(conn, native, "malformed book message", f"type {typ!r}", data, recv_ns)
            return
        change_id = msg.change_id
        if (msg.prev_change_id != self.change_ids.get(native)
                and not self.chain.follows(conn, native, change_id, change_id, msg.prev_change_id, recv_ns)):
            return
        bids = msg.bids
        asks = msg.asks
        if (bids and bids[0].__class__ is tuple) or (asks and asks[0].__class__ is tuple):
            bids = self._levels(bids)
            asks = self._levels(asks)
        try:
            if bids is None or asks is None:
                raise ValueError
            book.check_sides(bids, asks)
        except (ValueError, TypeError):
            self.book_failed(conn, native, "malformed book change", "level not [action, price, amount]", data, recv_ns)
            return
        atom_us = recv_ns // 1000
        try:
            flags = book.apply_sides(BID, bids, asks, self.rows("lob"), Lob, self.exchange, symbol, event_ms, atom_us)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "book refused a level", str(exc), data, recv_ns)
            return
        self.change_ids[native] = change_id
        if flags & TOP_CHANGED:
            book.spread_into(self.rows("spread"), Spread, self.exchange, symbol, event_ms, atom_us)

    def _on_snapshot(self, conn: Connection, native: str, symbol: str, msg: m.Book, data: bytes,
                     recv_ns: int) -> None:
        bids = self._levels(msg.bids)
        asks = self._levels(msg.asks)
        # checked whole before the book is cleared for it (the book keeps the parse for the load)
        book = self.book(native)
        try:
            if bids is None or asks is None:
                raise ValueError
            book.check_sides(bids, asks)
        except (ValueError, TypeError):
            self.book_failed(conn, native, "malformed book snapshot", "level not [action, price, amount]", data,
                             recv_ns)
            return
        event_ms = msg.timestamp
        atom_us = recv_ns // 1000
        book = self.begin_snapshot(native, recv_ns, event_ms)
        try:
            flags = book.apply_sides(BID, bids, asks, self.rows("lob"), Lob, self.exchange, symbol, event_ms, atom_us)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "book refused a level", str(exc), data, recv_ns)
            return
        self.change_ids[native] = msg.change_id
        if flags & TOP_CHANGED:
            book.spread_into(self.rows("spread"), Spread, self.exchange, symbol, event_ms, atom_us)

    # --- trades, ticker, candles --------------------------------------------------------------
    def _on_trades(self, conn: Connection, params: m.Subscription, data: bytes, recv_ns: int) -> None:
        trades: list[m.Trade] = params.data
        # the whole message checked before any trade is written (one bad trade spoils it): the
        # price in (0, 1e15), the amount in [0, 1e15) (the writer's ranges: no trade is refused
        # half way), a direction, the time in [0, 10**14) ms
        for t in trades:
            if (not (0.0 < t.price < _MAX_VALUE and 0.0 <= t.amount < _MAX_VALUE)
                    or t.direction not in ("buy", "sell") or not ms_ok(t.timestamp)):
                self.bad_input("malformed trade", f"{t.price!r} {t.amount!r} {t.direction!r} {t.timestamp!r}", data)
                return
            if not self.known(t.instrument_name, data):
                return
        atom_us = recv_ns // 1000
        write, exchange, symbols = self.rows("trades").trade, self.exchange, self._symbols
        for t in trades:
            write(exchange, symbols[t.instrument_name], t.price, t.amount, t.direction == "buy", t.trade_id,
                  t.timestamp, atom_us)

    def _on_ticker(self, conn: Connection, params: m.Subscription, data: bytes, recv_ns: int) -> None:
        t: m.Ticker = params.data
        native = t.instrument_name
        event_ms = t.timestamp
        if not 0 <= event_ms < MAX_MS:
            self.bad_input("malformed ticker", f"timestamp {event_ms!r}", data)
            return
        symbol = self._symbols.get(native)
        if symbol is None:
            if not self.known(native, data):
                return
            symbol = self._symbols[native]
        atom_us = recv_ns // 1000
        if self._want_ticker:
            bp = t.best_bid_price
            bs = t.best_bid_amount
            ap = t.best_ask_price
            asz = t.best_ask_amount
            # each in [0, 1e15), or a malformed ticker (the writer's checks); a missing one is 0.0
            if not self.rows("ticker").quote(self.exchange, symbol, 0.0 if bp is None else bp,
                                             0.0 if bs is None else bs, 0.0 if ap is None else ap,
                                             0.0 if asz is None else asz, event_ms, atom_us):
                bp, bs, ap, asz = (0.0 if x is None else x for x in (bp, bs, ap, asz))
                self.bad_input("malformed ticker", f"{bp!r} {bs!r} {ap!r} {asz!r}", data)
        if self._want_funding and (t.current_funding is not None or t.funding_8h is not None):
            self._on_funding(t, native, symbol, event_ms, atom_us, data)
        oi = t.open_interest
        # only a valid amount is kept as the last one: an amount equal to it is valid (and not new)
        if oi is not None and oi != self._last_oi.get(native) and self._want_oi:
            if not 0.0 <= oi < MAX_FLOAT:
                self.bad_input("malformed open interest", repr(oi), data)
            else:
                self._last_oi[native] = oi
                self.emit("open_interest", OpenInterest(self.exchange, symbol, oi, event_ms, atom_us))

    def _on_funding(self, t: m.Ticker, native: str, symbol: str, event_ms: int, atom_us: int, data: bytes) -> None:
        """A perpetual's ticker: its funding rates, published when they change."""
        rate = t.current_funding if t.current_funding is not None else 0.0
        rate8 = t.funding_8h if t.funding_8h is not None else 0.0
        mark = t.mark_price if t.mark_price is not None else 0.0
        if not (math.isfinite(rate) and math.isfinite(rate8) and ok_float(mark)):
            self.bad_input("malformed funding rate", f"{rate!r} {rate8!r} {mark!r}", data)
        elif self._last_funding.get(native) != (rate, rate8):
            self._last_funding[native] = (rate, rate8)
            next_ms = (event_ms // _FUNDING_PERIOD_MS + 1) * _FUNDING_PERIOD_MS
            self.emit("funding_rate", FundingRate(self.exchange, symbol, mark, rate, next_ms, rate8, event_ms,
                                                  atom_us))

    def _on_chart(self, conn: Connection, params: m.Subscription, data: bytes, recv_ns: int) -> None:
        candle_channel = _candle_channel(params.channel)
        if candle_channel is None:
            self.bad_input("unknown channel", repr(params.channel), data)
            return
        native, res, minutes = candle_channel
        c: m.Chart = params.data
        if not (ms_ok(c.tick) and ok_float(c.open) and ok_float(c.high) and ok_float(c.low) and ok_float(c.close)
                and ok_float(c.volume)):
            self.bad_input("malformed candle", f"{c.tick!r} {c.open!r} {c.high!r} {c.low!r} {c.close!r}", data)
            return
        if not self.known(native, data):
            return
        atom_us = recv_ns // 1000
        event_ms = atom_us // 1000
        key = (native, res)
        last = self._candles.get(key)
        if last is not None:
            if c.tick < last.start:
                return  # an older candle than the one published: stale
            if c.tick > last.start:
                self.emit("candle", last._replace(closed=True, event_timestamp=event_ms, atom_timestamp=atom_us))
        candle = Candle(self.exchange, self.symbol_of(native), c.tick, c.tick + minutes * 60_000,
                        _INTERVAL_NAMES.get(minutes) or f"{minutes}m", 0, False, c.open, c.high, c.low, c.close,
                        c.volume, event_ms, atom_us)
        self._candles[key] = candle
        self.emit("candle", candle)
