"""Kraken spot: websocket v2 (``KrakenSpotScheme``, the default) and v1 (``KrakenSpotV1Scheme``,
the protocol of the recorded captures).

Channel map (atomfast topic -> Kraken channel): lob -> ``book`` (+ ``spread`` from our own book
whenever its top changes), trades -> ``trade``, ticker -> ``ticker``, candle -> ``ohlc``.

Books: a snapshot (status ``snapshot`` first, then every level as a ``lob`` event), then updates;
after each update the book is truncated to the subscribed depth (the dropped levels are
published as removals) and Kraken's CRC32 of the top ten levels is verified, on every update
(v1) or every message (v2: snapshots carry one too). A mismatch, or a malformed book message,
resyncs the pair: status ``resync`` with the reason, book dropped, its updates ignored until a
fresh snapshot, which ``resubscribe`` asks for (unsubscribe + subscribe of that pair's book on
that connection). A whole message is validated before the book is touched.

v1 has no trade id: ``trade_id`` is ``"<exchange time in µs>-<index of the trade in its
message>"`` (e.g. ``"1618678142557535-0"``), deterministic across replays.
v1 ticker sizes are the ``lotVolume`` (exact decimal) of ``a``/``b``, not the rounded-down
``wholeLotVolume``. Tickers without an exchange time use the receive time.
"""
from __future__ import annotations

from typing import Sequence

import msgspec

from ...book import ASK, BID, L2Book, parse_checksum
from ...events import Candle, Lob, Ticker, Trade
from ...scheme import DECODE_ERRORS, MALFORMED, Connection, Instrument, Scheme, RestEndpoint, Routes, WebsocketEndpoint
from . import messages as m
from .parse import (
    ALIASES,
    is_plain,
    parse_asset_pairs,
    rfc3339_to_ms,
    secs_to_ms,
    secs_to_us,
    spot_instrument,
)

_BOOK_ERRORS = (ValueError, OverflowError, TypeError)
_TOP_CHANGED = 1
_UNKNOWN = 4
_MAX_FLOAT = 1e18

INTERVALS = {1: "1m", 5: "5m", 15: "15m", 30: "30m", 60: "1h", 240: "4h", 1440: "1d", 10080: "1w", 21600: "15d"}


def interval_name(minutes: int) -> str:
    return INTERVALS.get(minutes) or f"{minutes}m"


def _newest(*sides) -> str:
    """The newest timestamp of a v1 message's levels ("" for none)."""
    newest = ""
    for levels in sides:
        if levels:
            for lv in levels:
                if lv.timestamp > newest:
                    newest = lv.timestamp
    return newest


def _ok_float(x: float) -> bool:
    return 0.0 <= x < _MAX_FLOAT  # False for NaN and inf


class _KrakenSpot(Scheme):
    """What v1 and v2 share: endpoints, channel map, instruments, book bookkeeping."""

    rest_endpoint = RestEndpoint("https://api.kraken.com", Routes(instruments="/0/public/AssetPairs"))
    channels = {"lob": "book", "trades": "trade", "ticker": "ticker", "candle": "ohlc"}
    aliases = ALIASES
    unknown_market = "unknown pair"
    symbols_per_message = 50
    #: Kraken sends a heartbeat about every second when a connection is otherwise quiet; our
    #: application ping keeps the connection (and any proxy on the way) from idling out
    ping_interval = 30.0
    silence_timeout = 30.0
    #: book depth we subscribe to (Kraken: 10, 25, 100, 500, 1000)
    book_depth = 1000
    #: ohlc interval in minutes (Kraken: 1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
    ohlc_interval = 1
    _v2 = False

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (), channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        #: native -> depth of its book subscription (truncation depth)
        self.depths: dict[str, int] = {}

    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_asset_pairs(body, cls._v2)

    def guess_instrument(self, native: str) -> Instrument:
        return spot_instrument(native, v2=self._v2)

    def _book_failed(self, conn: Connection, native: str, kind: str, detail: str, data: bytes, recv_ns: int) -> None:
        self.bad_input(kind, detail, data)
        self.resync(conn, native, f"{kind}: {detail}", recv_ns)

    def _verify(self, conn: Connection, native: str, book: L2Book, expected: int, book_scale: bool, flags: int,
                event_ms: int, atom_us: int, recv_ns: int) -> None:
        got = book.checksum_kraken(book_scale)
        if got == expected:
            self.metrics.checksum_ok += 1
            if flags & _TOP_CHANGED:
                self.emit_spread(native, book, event_ms, atom_us)
        else:
            self.metrics.checksum_failed += 1
            self.resync(conn, native, f"checksum mismatch: exchange {expected}, book {got}", recv_ns)

    def on_frame(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        raise NotImplementedError


# ================================================================================================
# v1: wss://ws.kraken.com


class KrakenSpotV1Scheme(_KrakenSpot):
    """Kraken spot websocket v1: arrays ``[channelID, payload, channelName, pair]``.

    channelID -> (channel, pair, depth|interval) is learnt per connection from
    ``subscriptionStatus`` and kept in ``conn.state["kraken_v1"]`` (a message on an unknown
    channelID is understood from its trailing channelName and pair, and learnt).
    """

    exchange = "kraken"
    websocket_endpoints = (WebsocketEndpoint("wss://ws.kraken.com"),)
    is_default = False

    # --- subscriptions ------------------------------------------------------------------------
    def _subscription(self, channel: str, depth: int | None = None) -> dict:
        if channel == "book":
            return {"name": "book", "depth": depth or self.book_depth}
        if channel == "ohlc":
            return {"name": "ohlc", "interval": self.ohlc_interval}
        return {"name": channel}

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        return [m.encode({"event": "subscribe", "pair": natives, "subscription": self._subscription(channel)}).decode()]

    def resubscribe(self, conn: Connection, native: str) -> None:
        sub = self._subscription("book", self.depths.get(native))
        conn.send(m.encode({"event": "unsubscribe", "pair": [native], "subscription": sub}).decode())
        conn.send(m.encode({"event": "subscribe", "pair": [native], "subscription": sub}).decode())

    def ping_message(self) -> str:
        return '{"event":"ping"}'

    # --- frames -------------------------------------------------------------------------------
    def on_frame(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        if data.__class__ is not bytes:
            data = bytes(data)
        if len(data) > self.max_frame_bytes:
            self.bad_input("frame too large", f"{len(data)} bytes > {self.max_frame_bytes}", data[:200])
            return
        first = data[:1]
        if first == b"[":
            # [channelID, ...]: the channel's entry, keyed by the channelID's digits as sent
            channels = conn.state.get("kraken_v1")
            comma = data.find(b",", 1, 24)
            entry = channels.get(data[1:comma]) if channels is not None and comma > 0 else None
            if entry is None:
                entry = self._learn(self._channels(conn), data)
                if entry is None:
                    return
            kind = entry[0]
            if kind == "book":
                self._on_book(conn, data, entry[1], entry[2], recv_ns)
            elif kind == "trade":
                self._on_trades(data, recv_ns)
            elif kind == "ticker":
                self._on_ticker(data, recv_ns)
            elif kind == "ohlc":
                self._on_ohlc(data, entry[2], recv_ns)
            # other channels (spread, ...) are not ours: ignored
        elif first == b"{":
            self._on_event(conn, data, recv_ns)
        else:
            self.bad_input("not a JSON message", "frame starts with neither [ nor {", data)

    def _channels(self, conn: Connection) -> dict[bytes, tuple[str, str, int]]:
        """This connection's channels: the channelID as JSON digits (b"3648") -> (kind, pair,
        depth or interval)."""
        channels = conn.state.get("kraken_v1")
        if channels is None:
            channels = conn.state["kraken_v1"] = {}
        return channels

    def _channel_entry(self, name: str, pair: str, sub: m.V1Subscription | None = None) -> tuple[str, str, int] | None:
        kind, _, suffix = name.partition("-")
        number = int(suffix) if suffix.isdigit() and suffix.isascii() and len(suffix) <= 7 else 0
        if kind == "book":
            depth = sub.depth if sub is not None and sub.depth else (number or 10)  # 10: v1's default depth
            return ("book", pair, depth if 0 < depth <= 100_000 else self.book_depth)
        if kind == "ohlc":
            interval = sub.interval if sub is not None and sub.interval else (number or 1)
            return ("ohlc", pair, interval if 0 < interval <= 1_000_000 else self.ohlc_interval)
        if kind in ("trade", "ticker", "spread"):
            return (kind, pair, 0)
        return None

    def _learn(self, channels: dict, data: bytes) -> tuple[str, str, int] | None:
        """A data message on a channelID we were not told about: read its channelName and pair."""
        try:
            parts = m.v1_tail_decoder.decode(data)
            if len(parts) < 4:
                raise ValueError(f"array of {len(parts)} elements")
            cid = m.int_decoder.decode(parts[0])
            name = m.str_decoder.decode(parts[-2])
            pair = m.str_decoder.decode(parts[-1])
        except (*DECODE_ERRORS, ValueError) as exc:
            self.bad_input("malformed message", str(exc), data)
            return None
        entry = self._channel_entry(name, pair)
        if entry is None:
            self.bad_input("unknown channel", f"channel {name!r} of {pair!r}", data)
            return None
        if not self.known(pair, data):
            return None
        channels[str(cid).encode()] = entry
        return entry

    # --- book ---------------------------------------------------------------------------------
    def _on_book(self, conn: Connection, data: bytes, native: str, depth: int, recv_ns: int) -> None:
        try:
            msg = m.v1_book_decoder.decode(data)
        except DECODE_ERRORS as exc:
            self._book_failed(conn, native, "malformed book message", str(exc), data, recv_ns)
            return
        first, second = msg.first, msg.second
        pair = msg.third if second.__class__ is str else msg.fourth
        if pair != native:
            if not self.known(pair, data):
                return
            # the channelID moved to another pair (resubscribed): the message says which
            self.bad_input("channel mismatch", f"channelID {msg.channel_id}: {native!r} in state, {pair!r} in message", data)
            self._channels(conn)[str(msg.channel_id).encode()] = ("book", pair, depth)
            native = pair
        if first.snap_asks is not None or first.snap_bids is not None:
            self._book_snapshot(conn, native, depth, first, data, recv_ns)
            return
        if native in self.unsynced:
            return  # reloading: nothing of this pair until its snapshot
        book = self.books.get(native)
        if book is None:
            self.resync(conn, native, "book update before its snapshot", recv_ns)
            return
        if second.__class__ is str:
            asks, bids, checksum = first.a, first.b, first.c
        else:  # [cid, {"a": [..]}, {"b": [..], "c": ".."}, "book-N", "PAIR"]
            asks = first.a if second.a is None else (first.a or []) + second.a
            bids = second.b if first.b is None else first.b + (second.b or [])
            checksum = second.c if second.c is not None else first.c
        # the event time: the newest level's timestamp
        if asks is not None and bids is None and len(asks) == 1:
            newest = asks[0].timestamp
        elif bids is not None and asks is None and len(bids) == 1:
            newest = bids[0].timestamp
        else:
            newest = _newest(asks, bids)
        if checksum is not None:
            try:
                expected = parse_checksum(checksum)
            except ValueError:
                self._book_failed(conn, native, "malformed checksum", repr(checksum), data, recv_ns)
                return
        atom_us = recv_ns // 1000
        try:
            event_ms = secs_to_ms(newest) if newest else atom_us // 1000
        except ValueError as exc:
            self._book_failed(conn, native, "malformed book timestamp", str(exc), data, recv_ns)
            return
        # every level is parsed before any is applied; then the levels beyond the subscribed
        # depth are dropped: "after each update, truncate your book to the subscribed depth"
        # (https://docs.kraken.com/api/docs/guides/spot-ws-book-v1)
        try:
            flags = book.apply_sides(ASK, asks, bids, self.rows("lob"), Lob, self.exchange,
                                     self._symbols.get(native) or self.symbol_of(native), event_ms, atom_us,
                                     self.depths.get(native, depth))
        except _BOOK_ERRORS as exc:
            self._book_failed(conn, native, "malformed book level", str(exc), data, recv_ns)
            return
        if checksum is None:
            if flags & _TOP_CHANGED:
                self.emit_spread(native, book, event_ms, atom_us)
            return
        got = book.checksum_kraken()  # v1: the strings as sent
        if got == expected:
            self.metrics.checksum_ok += 1
            if flags & _TOP_CHANGED:
                self.emit_spread(native, book, event_ms, atom_us)
        else:
            self.metrics.checksum_failed += 1
            self.resync(conn, native, f"checksum mismatch: exchange {checksum}, book {got}", recv_ns)

    def _book_snapshot(self, conn: Connection, native: str, depth: int, payload: m.V1BookPayload, data: bytes,
                       recv_ns: int) -> None:
        asks = payload.snap_asks or []
        bids = payload.snap_bids or []
        pd, sd = self._precision_for(native, asks, bids)
        atom_us = recv_ns // 1000
        newest = _newest(asks, bids)
        try:
            event_ms = secs_to_ms(newest) if newest else atom_us // 1000
        except ValueError as exc:
            self._book_failed(conn, native, "malformed book timestamp", str(exc), data, recv_ns)
            return
        book = self.books.get(native)
        if book is None or book.price_decimals != pd or book.size_decimals != sd:
            book = self.books[native] = L2Book(pd, sd)
        try:  # every level parsed before the book is cleared for them
            book.check_sides(asks, bids)
        except _BOOK_ERRORS as exc:
            self._book_failed(conn, native, "malformed book level", str(exc), data, recv_ns)
            return
        book = self.begin_snapshot(native, recv_ns, event_ms)
        self.depths[native] = depth
        flags = book.apply_sides(ASK, asks, bids, self.rows("lob"), Lob, self.exchange, self.symbol_of(native),
                                 event_ms, atom_us, depth)
        if flags & _TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)

    def _precision_for(self, native: str, asks, bids) -> tuple[int, int]:
        """The (price, size) decimals of the book of ``native``: the REST ``pair_decimals`` /
        ``lot_decimals``, or more where v1 writes more (``"56274.90000"`` for XBT/CHF,
        pair_decimals 1), so a level with digits the listing does not foresee still fits."""
        inst = self.instrument(native)
        pd, sd = inst.price_decimals, inst.size_decimals
        for side in (asks, bids):
            if side:
                lv = side[0]
                dot = lv.price.find(".")
                if dot >= 0:
                    pd = max(pd, len(lv.price) - dot - 1)
                dot = lv.size.find(".")
                if dot >= 0:
                    sd = max(sd, len(lv.size) - dot - 1)
        return min(pd, 18), min(sd, 18)

    # --- trades, ticker, ohlc -----------------------------------------------------------------
    def _on_trades(self, data: bytes, recv_ns: int) -> None:
        try:
            msg = m.v1_trade_decoder.decode(data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed trade message", str(exc), data)
            return
        valid = is_plain
        out = []
        for i, t in enumerate(msg.trades):
            if not (valid(t.price) and valid(t.volume)) or t.side not in ("b", "s"):
                self.bad_input("malformed trade", f"{t.price!r} {t.volume!r} {t.side!r}", data)
                return
            try:
                us = secs_to_us(t.time)
            except ValueError as exc:
                self.bad_input("malformed trade", str(exc), data)
                return
            out.append((t, us, i))
        if not self.known(msg.pair, data):
            return
        atom_us = recv_ns // 1000
        symbol = self.symbol_of(msg.pair)
        emit, exchange = self.emit, self.exchange
        for t, us, i in out:
            emit("trades", Trade(exchange, symbol, float(t.price), float(t.volume), "buy" if t.side == "b" else "sell",
                                 f"{us}-{i}", us // 1000, atom_us))

    def _on_ticker(self, data: bytes, recv_ns: int) -> None:
        try:
            msg = m.v1_ticker_decoder.decode(data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed ticker message", str(exc), data)
            return
        a, b = msg.ticker.a, msg.ticker.b
        valid = is_plain
        if not (valid(a[0]) and valid(a[2]) and valid(b[0]) and valid(b[2])):
            self.bad_input("malformed ticker", f"a={a!r} b={b!r}", data)
            return
        if not self.known(msg.pair, data):
            return
        atom_us = recv_ns // 1000
        self.emit("ticker", Ticker(self.exchange, self.symbol_of(msg.pair), float(b[0]), float(b[2]), float(a[0]),
                                   float(a[2]), atom_us // 1000, atom_us))

    def _on_ohlc(self, data: bytes, interval: int, recv_ns: int) -> None:
        try:
            msg = m.v1_ohlc_decoder.decode(data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed ohlc message", str(exc), data)
            return
        c = msg.ohlc
        valid = is_plain
        if not all(valid(x) for x in (c.open, c.high, c.low, c.close, c.volume)) or not 0 <= c.count < 1 << 31:
            self.bad_input("malformed ohlc", repr(c), data)
            return
        try:
            end = secs_to_ms(c.etime)
            event_ms = secs_to_ms(c.time)
        except ValueError as exc:
            self.bad_input("malformed ohlc", str(exc), data)
            return
        if not self.known(msg.pair, data):
            return
        _, _, suffix = msg.channel_name.partition("-")
        if suffix.isdigit():
            interval = int(suffix)
        if not 0 < interval <= 1_000_000:
            self.bad_input("malformed ohlc", f"interval {interval!r}", data)
            return
        self.emit("candle", Candle(self.exchange, self.symbol_of(msg.pair), end - interval * 60_000, end,
                                   interval_name(interval), c.count, False, float(c.open), float(c.high), float(c.low),
                                   float(c.close), float(c.volume), event_ms, recv_ns // 1000))

    # --- events -------------------------------------------------------------------------------
    def _on_event(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        try:
            ev = m.v1_event_decoder.decode(data)
        except msgspec.ValidationError as exc:
            self.bad_input("unknown message", str(exc), data)
            return
        except MALFORMED as exc:
            self.bad_input("malformed JSON", str(exc), data)
            return
        cls = ev.__class__
        if cls is m.V1Heartbeat or cls is m.V1Pong or cls is m.V1SystemStatus:
            return
        if cls is m.V1SubscriptionStatus:
            self._on_subscription(conn, ev, data, recv_ns)
        elif cls is m.V1Error:
            self.bad_input("exchange error", ev.errorMessage, data)

    def _on_subscription(self, conn: Connection, ev: m.V1SubscriptionStatus, data: bytes, recv_ns: int) -> None:
        pair = ev.pair
        if ev.status == "subscribed":
            name = ev.channelName or (ev.subscription.name if ev.subscription is not None else "")
            entry = self._channel_entry(name, pair, ev.subscription)
            if ev.channelID is None or entry is None or not pair:
                self.bad_input("malformed subscriptionStatus", f"channel {name!r} pair {pair!r}", data)
                return
            if not self.known(pair, data):
                return
            self._channels(conn)[str(ev.channelID).encode()] = entry
            if entry[0] == "book":
                self.depths[pair] = entry[2]
            self.status(self.symbol_of(pair), "subscribed", name, recv_ns)
        elif ev.status == "unsubscribed":
            if ev.channelID is not None:
                self._channels(conn).pop(str(ev.channelID).encode(), None)
        elif ev.status == "error":
            self.bad_input("subscription error", ev.errorMessage or "(no message)", data)
            symbol = self.symbol_of(pair) if pair and self.known(pair, data) else ""
            self.status(symbol, "stopped", f"subscription error: {ev.errorMessage}", recv_ns)
        else:
            self.bad_input("malformed subscriptionStatus", f"status {ev.status!r}", data)


# ================================================================================================
# v2: wss://ws.kraken.com/v2


class KrakenSpotScheme(_KrakenSpot):
    """Kraken spot websocket v2: JSON objects ``{"channel": .., "type": .., "data": [..]}``.

    Book prices and quantities are JSON numbers, decoded as raw digits (``msgspec.Raw``) and
    given to the book exactly; the checksum is computed at the pair's precision (REST
    ``pair_decimals``/``lot_decimals``), on snapshots and updates.
    """

    exchange = "kraken"
    websocket_endpoints = (WebsocketEndpoint("wss://ws.kraken.com/v2"),)
    is_default = True
    _v2 = True

    def _params(self, channel: str, natives: list[str], depth: int | None = None) -> dict:
        params: dict = {"channel": channel, "symbol": natives}
        if channel == "book":
            params["depth"] = depth or self.book_depth
            params["snapshot"] = True
        elif channel == "ohlc":
            params["interval"] = self.ohlc_interval
        elif channel == "trade":
            params["snapshot"] = False
        return params

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        return [m.encode({"method": "subscribe", "params": self._params(channel, natives)}).decode()]

    def resubscribe(self, conn: Connection, native: str) -> None:
        depth = self.depths.get(native) or self.book_depth
        unsub = {"channel": "book", "symbol": [native], "depth": depth}
        conn.send(m.encode({"method": "unsubscribe", "params": unsub}).decode())
        conn.send(m.encode({"method": "subscribe", "params": self._params("book", [native], depth)}).decode())

    def ping_message(self) -> str:
        return '{"method":"ping"}'

    # --- frames -------------------------------------------------------------------------------
    def on_frame(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        if data.__class__ is not bytes:
            data = bytes(data)
        if len(data) > self.max_frame_bytes:
            self.bad_input("frame too large", f"{len(data)} bytes > {self.max_frame_bytes}", data[:200])
            return
        if data[:1] != b"{":
            self.bad_input("not a JSON object", "frame does not start with {", data)
            return
        try:
            msg = m.v2_decoder.decode(data)
        except msgspec.ValidationError:
            self._on_other(conn, data, recv_ns)
            return
        except MALFORMED as exc:
            self.bad_input("malformed JSON", str(exc), data)
            return
        cls = msg.__class__
        if cls is m.V2BookMsg:
            self._on_book(conn, msg, data, recv_ns)
        elif cls is m.V2TradeMsg:
            self._on_trades(msg, data, recv_ns)
        elif cls is m.V2TickerMsg:
            self._on_ticker(msg, data, recv_ns)
        elif cls is m.V2OhlcMsg:
            self._on_ohlc(msg, data, recv_ns)
        # heartbeat, status: nothing to publish

    def _on_other(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """Not a well-formed channel message: a method response, or a malformed message."""
        try:
            resp = m.v2_response_decoder.decode(data)
        except DECODE_ERRORS:
            resp = None
        if resp is not None:
            self._on_response(conn, resp, data, recv_ns)
            return
        try:
            anybook = m.v2_any_book_decoder.decode(data)
        except DECODE_ERRORS:
            anybook = None
        if anybook is not None and anybook.channel == "book":
            symbols = [d.get("symbol") for d in anybook.data if isinstance(d, dict)]
            natives = {n for n in symbols if isinstance(n, str) and n}
            self.bad_input("malformed book message", "book message failed validation", data)
            for native in natives:
                if native in self.books:
                    self.resync(conn, native, "malformed book message", recv_ns)
            return
        try:
            m.any_decoder.decode(data)
        except MALFORMED as exc:
            self.bad_input("malformed JSON", str(exc), data)
            return
        self.bad_input("unknown message", "not a known channel message or method response", data)

    def _on_response(self, conn: Connection, resp: m.V2Response, data: bytes, recv_ns: int) -> None:
        if resp.method not in ("subscribe", "unsubscribe"):
            return  # pong and others
        result = resp.result
        if resp.success:
            if resp.method == "subscribe" and result is not None and result.symbol and self.known(result.symbol, data):
                if result.channel == "book" and result.depth and 0 < result.depth <= 100_000:
                    self.depths[result.symbol] = result.depth
                self.status(self.symbol_of(result.symbol), "subscribed", result.channel, recv_ns)
            return
        self.bad_input("subscription error", resp.error or "(no message)", data)
        native = (result.symbol if result is not None else "") or resp.symbol or ""
        symbol = self.symbol_of(native) if native and self.known(native, data) else ""
        self.status(symbol, "stopped", f"{resp.method} failed: {resp.error}", recv_ns)

    # --- book ---------------------------------------------------------------------------------
    def _on_book(self, conn: Connection, msg: m.V2BookMsg, data: bytes, recv_ns: int) -> None:
        kind = msg.type
        if kind != "snapshot" and kind != "update":
            self.bad_input("malformed book message", f"type {kind!r}", data)
            for d in msg.data:
                if d.symbol in self.books:
                    self.resync(conn, d.symbol, f"malformed book message: type {kind!r}", recv_ns)
            return
        snapshot = kind == "snapshot"
        atom_us = recv_ns // 1000
        for d in msg.data:
            native = d.symbol
            if not self.known(native, data):
                continue
            if snapshot:
                book = self.book(native)
                try:  # the whole snapshot parsed before the book is cleared for it
                    book.check_sides(d.bids, d.asks)
                except _BOOK_ERRORS as exc:
                    self._book_failed(conn, native, "malformed book level", str(exc), data, recv_ns)
                    continue
            else:
                if native in self.unsynced:
                    continue
                book = self.books.get(native)
                if book is None:
                    self.resync(conn, native, "book update before its snapshot", recv_ns)
                    continue
            if not 0 <= d.checksum < 1 << 32:
                self._book_failed(conn, native, "malformed checksum", repr(d.checksum), data, recv_ns)
                continue
            try:
                event_ms = rfc3339_to_ms(d.timestamp) if d.timestamp else atom_us // 1000
            except ValueError as exc:
                self._book_failed(conn, native, "malformed book timestamp", str(exc), data, recv_ns)
                continue
            if snapshot:
                book = self.begin_snapshot(native, recv_ns, event_ms)
            # every level parsed before any is applied (the raw digits as sent), then the book
            # is cut to the subscribed depth: "you will not receive qty 0 for levels that fall
            # out of scope" (https://docs.kraken.com/api/docs/guides/spot-ws-book-v2)
            try:
                flags = book.apply_sides(BID, d.bids, d.asks, self.rows("lob"), Lob, self.exchange,
                                         self._symbols.get(native) or self.symbol_of(native), event_ms, atom_us,
                                         self.depths.get(native) or self.book_depth)
            except _BOOK_ERRORS as exc:
                self._book_failed(conn, native, "malformed book level", str(exc), data, recv_ns)
                continue
            self._verify(conn, native, book, d.checksum, True, flags, event_ms, atom_us, recv_ns)

    # --- trades, ticker, ohlc -----------------------------------------------------------------
    def _on_trades(self, msg: m.V2TradeMsg, data: bytes, recv_ns: int) -> None:
        out = []
        for t in msg.data:
            if not (_ok_float(t.price) and _ok_float(t.qty)) or t.side not in ("buy", "sell"):
                self.bad_input("malformed trade", f"{t.price!r} {t.qty!r} {t.side!r}", data)
                return
            try:
                ms = rfc3339_to_ms(t.timestamp)
            except ValueError as exc:
                self.bad_input("malformed trade", str(exc), data)
                return
            if not self.known(t.symbol, data):
                return
            out.append((t, ms))
        atom_us = recv_ns // 1000
        emit, exchange = self.emit, self.exchange
        for t, ms in out:
            emit("trades", Trade(exchange, self.symbol_of(t.symbol), t.price, t.qty, t.side, str(t.trade_id), ms, atom_us))

    def _on_ticker(self, msg: m.V2TickerMsg, data: bytes, recv_ns: int) -> None:
        atom_us = recv_ns // 1000
        for t in msg.data:
            if not all(_ok_float(x) for x in (t.bid, t.bid_qty, t.ask, t.ask_qty)):
                self.bad_input("malformed ticker", repr(t), data)
                continue
            if not self.known(t.symbol, data):
                continue
            try:
                ms = rfc3339_to_ms(t.timestamp) if t.timestamp else atom_us // 1000
            except ValueError as exc:
                self.bad_input("malformed ticker", str(exc), data)
                continue
            self.emit("ticker", Ticker(self.exchange, self.symbol_of(t.symbol), t.bid, t.bid_qty, t.ask, t.ask_qty, ms, atom_us))

    def _on_ohlc(self, msg: m.V2OhlcMsg, data: bytes, recv_ns: int) -> None:
        atom_us = recv_ns // 1000
        try:
            event_ms = rfc3339_to_ms(msg.timestamp) if msg.timestamp else atom_us // 1000
        except ValueError as exc:
            self.bad_input("malformed ohlc", str(exc), data)
            return
        for c in msg.data:
            if (not all(_ok_float(x) for x in (c.open, c.high, c.low, c.close, c.volume))
                    or not 0 <= c.trades < 1 << 31 or not 0 < c.interval <= 1_000_000):
                self.bad_input("malformed ohlc", repr(c), data)
                continue
            if not self.known(c.symbol, data):
                continue
            try:
                start = rfc3339_to_ms(c.interval_begin)
            except ValueError as exc:
                self.bad_input("malformed ohlc", str(exc), data)
                continue
            self.emit("candle", Candle(self.exchange, self.symbol_of(c.symbol), start, start + c.interval * 60_000,
                                       interval_name(c.interval), c.trades, False, c.open, c.high, c.low, c.close,
                                       c.volume, event_ms, atom_us))
