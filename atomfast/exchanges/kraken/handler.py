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

v1 frames are routed by their channelID's digits as sent (no decoding to route); the common book
update (one payload with its checksum) is applied by the book in one call
(``L2Book.apply_update``), and every other shape, or anything amiss, takes the step-by-step path:
the events and errors are the same either way.

v1 has no trade id: ``trade_id`` is ``"<exchange time in µs>-<index of the trade in its
message>"`` (e.g. ``"1618678142557535-0"``), deterministic across replays.
v1 ticker sizes are the ``lotVolume`` (exact decimal) of ``a``/``b``, not the rounded-down
``wholeLotVolume``. Tickers without an exchange time use the receive time.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from typing import Sequence
from weakref import WeakSet

import msgspec

from ...book import (ASK, BID, CHECKSUM_KRAKEN, UPDATE_MISMATCH, L2Book, L3Book, newest_time,
                     parse_checksum, parse_decimal)
from ...events import Candle, Lob, Spread
from ...kit.dispatch import Lookup
from ...kit.shapes import BookUpdate, Channel
from ...scheme import (BOOK_ERRORS, DECODE_ERRORS, LOB, LOB_L3, MALFORMED, TOP_CHANGED, UNKNOWN,
                       Connection, ConnectionPlan, Dispatch, Instrument, RestEndpoint, Routes, Scheme,
                       WebsocketEndpoint)
from . import messages as m
from .._common import ok_float
from .parse import (
    ALIASES,
    MAX_VALUE,
    is_plain,
    parse_asset_pairs,
    rfc3339_to_ms,
    secs_to_ms,
    secs_to_us,
    spot_instrument,
)

_HEARTBEAT, _SUBSCRIPTION_STATUS, _ERROR = m.V1Heartbeat, m.V1SubscriptionStatus, m.V1Error
#: v1 data channel kind -> the decoder of its messages (a book's: of its common update)
_DATA_DECODERS = {"book": m.v1_update_decoder, "trade": m.v1_trade_decoder, "ticker": m.v1_ticker_decoder,
                  "ohlc": m.v1_ohlc_decoder}

INTERVALS = {1: "1m", 5: "5m", 15: "15m", 30: "30m", 60: "1h", 240: "4h", 1440: "1d", 10080: "1w", 21600: "15d"}


def interval_name(minutes: int) -> str:
    return INTERVALS.get(minutes) or f"{minutes}m"


#: the newest timestamp of a v1 message's levels, greatest text first ("" for none; a side may
#: be None): ``max()`` of the strings, compiled
_newest = newest_time


class _KrakenSpot(Scheme):
    """What v1 and v2 share: endpoints, channel map, instruments, book bookkeeping."""

    rest_endpoint = RestEndpoint("https://api.kraken.com", Routes(instruments="/0/public/AssetPairs"))
    channels = {"lob": "book", "trades": "trade", "ticker": "ticker", "candle": "ohlc"}
    default_symbols = ("BTC-USD", "ETH-USD")
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


# ================================================================================================
# v1: wss://ws.kraken.com


class _Channel(msgspec.Struct, eq=False, weakref=True):
    """One v1 data channel of a connection (learnt from ``subscriptionStatus``, or from a message
    on a channelID we were not told about): what the route table needs (``kind``) and what its
    handlers use: the pair, its normalised symbol, the book depth or ohlc interval (``depth``);
    for a book, the depth it is cut to after an update (``trunc``: the pair's ``depths`` entry,
    else the channel's own depth)."""

    kind: str
    pair: str
    depth: int
    symbol: str
    trunc: int = 0


def _channel_key(channel_id: int) -> bytes:
    """A channel's key in ``conn.state``: the frame's bytes up to its first comma, b"[3648,"."""
    return b"[%d," % channel_id


class KrakenSpotV1Scheme(_KrakenSpot):
    """Kraken spot websocket v1: arrays ``[channelID, payload, channelName, pair]``.

    channelID -> channel (``_Channel``: kind, pair, depth|interval) is learnt per connection from
    ``subscriptionStatus`` and kept in ``conn.state``, keyed by the frame's bytes up to the
    channelID's comma (``b"[3648,"``; a message on an unknown channelID is understood from its
    trailing channelName and pair, and learnt). Routing reads those bytes, without decoding
    (``dispatch``'s ``Lookup``); ``{`` frames are events.

    A book frame is decoded as the common update (one payload with its checksum), which the
    route table's declared ``BookUpdate`` applies and checks in C on a synced pair's book; what
    it does not take (no book yet, a malformed level or checksum, another pair than the
    channel's) goes to ``_on_book``, and one of another shape (a snapshot, two payloads) is
    decoded again as any book message (``_on_book_message``), so the common one is decoded once
    and every other one is taken exactly as before.
    """

    exchange = "kraken"
    websocket_endpoints = (WebsocketEndpoint("wss://ws.kraken.com"),)
    is_default = False

    #: data frames by their channel's kind (``Lookup``: the channelID's digits), decoded as its
    #: messages are (a book's as its common update), a frame on a channelID not learnt yet (b"["),
    #: an event (b"{"); what does not decode so, and what is neither, goes to ``_on_other``
    dispatch = Dispatch({"book": BookUpdate(market="pair", at="update", asks="a", bids="b", checksum="c",
                                            kind=CHECKSUM_KRAKEN, otherwise="_on_book",
                                            channel=Channel(market="pair", symbol="symbol", depth="trunc")),
                         "trade": "_on_trades", "ticker": "_on_ticker", "ohlc": "_on_ohlc",
                         "spread": None, b"[": "_on_new_channel", b"{": "_on_event"},
                        prefilter=Lookup(b",", attr="kind", keep="_channel"),
                        decoders={**_DATA_DECODERS, b"{": m.v1_event_decoder},
                        fallback="_on_other")

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        #: the channel of the frame being routed (kept by the dispatch's ``Lookup`` for the handler)
        self._channel: _Channel | None = None
        #: pair -> its book channels (on every connection), whose ``trunc`` follows ``depths``
        self._book_channels: dict[str, WeakSet[_Channel]] = {}
        #: ``exchange`` on the instance, for the book's hot path (an instance attribute is read
        #: without the class lookup)
        self._exchange = self.exchange

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

    # --- routing ------------------------------------------------------------------------------
    # The route key of a frame is the kind of its channel, read (in C: ``Lookup``) from the
    # channelID's digits as sent (``[3648,``) in ``conn.state``, the channel kept as ``_channel``
    # for the handler; b"[" for a channelID not learnt yet, b"{" for an event.

    def _on_other(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """A data frame that did not decode as its channel's (the dispatch's ``Lookup`` found the channel: a book
        message of another shape, or a malformed one), an event that did not decode (decoded
        again, to say why), or no JSON message."""
        first = data[:1]
        if first == b"[":  # (only a routed channel's frame gets here: the ``Lookup`` set ``_channel``)
            channel = self._channel
            if channel.kind == "book":
                self._on_book_message(conn, channel, data, recv_ns)
                return
            try:
                _DATA_DECODERS[channel.kind].decode(data)
            except DECODE_ERRORS as exc:
                self.bad_input(f"malformed {channel.kind} message", str(exc), data)
        elif first == b"{":
            try:
                m.v1_event_decoder.decode(data)
            except msgspec.ValidationError as exc:
                self.bad_input("unknown message", str(exc), data)
            except MALFORMED as exc:
                self.bad_input("malformed JSON", str(exc), data)
        else:
            self.bad_input("not a JSON message", "frame starts with neither [ nor {", data)

    def _learnt(self, conn: Connection, channel_id: int, kind: str, pair: str, depth: int) -> _Channel:
        """The channel ``channel_id`` of ``conn`` is now ``kind`` of ``pair`` (``known``: its
        symbol is cached)."""
        if kind != "book":
            channel = _Channel(kind, pair, depth, self._symbols[pair])
        else:
            channel = _Channel(kind, pair, depth, self._symbols[pair], self.depths.get(pair, depth))
            channels = self._book_channels.get(pair)
            if channels is None:
                channels = self._book_channels[pair] = WeakSet()
            channels.add(channel)
        key = b"[%d," % channel_id  # _channel_key(channel_id)
        if len(key) <= 24:  # (a channelID of more digits was never routed: not kept)
            conn.state[key] = channel
        return channel

    def _set_depth(self, native: str, depth: int) -> None:
        """The depth the book of ``native`` is cut to (``depths``), on every channel of it."""
        self.depths[native] = depth
        for channel in self._book_channels.get(native, ()):
            channel.trunc = depth

    def _channel_spec(self, name: str, sub: m.V1Subscription | None = None) -> tuple[str, int] | None:
        """(kind, book depth or ohlc interval) of a channelName (``book-1000``), None if no
        channel of ours; the subscription's own depth or interval first, where it says one."""
        kind, _, suffix = name.partition("-")
        number = int(suffix) if suffix.isdigit() and suffix.isascii() and len(suffix) <= 7 else 0
        if kind == "book":
            depth = sub.depth if sub is not None and sub.depth else (number or 10)  # 10: v1's default depth
            return "book", depth if 0 < depth <= 100_000 else self.book_depth
        if kind == "ohlc":
            interval = sub.interval if sub is not None and sub.interval else (number or 1)
            return "ohlc", interval if 0 < interval <= 1_000_000 else self.ohlc_interval
        if kind in ("trade", "ticker", "spread"):
            return kind, 0
        return None

    def _on_new_channel(self, conn: Connection, msg: None, data: bytes, recv_ns: int) -> None:
        """A data message on a channelID we were not told about: read its channelName and pair,
        learn the channel, and route the message by its kind."""
        try:
            parts = m.v1_tail_decoder.decode(data)
            if len(parts) < 4:
                raise ValueError(f"array of {len(parts)} elements")
            cid = m.int_decoder.decode(parts[0])
            name = m.str_decoder.decode(parts[-2])
            pair = m.str_decoder.decode(parts[-1])
        except (*DECODE_ERRORS, ValueError) as exc:
            self.bad_input("malformed message", str(exc), data)
            return
        spec = self._channel_spec(name)
        if spec is None:
            self.bad_input("unknown channel", f"channel {name!r} of {pair!r}", data)
            return
        if not self.known(pair, data):
            return
        channel = self._channel = self._learnt(conn, cid, spec[0], pair, spec[1])
        run = self.route(channel.kind)  # (a method, or a declared shape's executor: the book's)
        if run is None:
            return
        try:
            msg = _DATA_DECODERS[channel.kind].decode(data)
        except DECODE_ERRORS:
            self._on_other(conn, data, recv_ns)
            return
        run(conn, msg, data, recv_ns)

    # --- book ---------------------------------------------------------------------------------
    def _on_book(self, conn: Connection, msg: m.V1UpdateFrame, data: bytes, recv_ns: int) -> None:
        """The common book message (``[cid, {"b": [..], "c": ".."}, "book-1000", "PAIR"]``; another
        shape is ``_on_book_message``'s) that the route's ``BookUpdate`` did not take, nothing of
        it applied (also a venue's own call, ``route("book")`` without the channel): the same
        steps in Python, the book's one call (``L2Book.apply_update``) where there is a book, and
        one with anything amiss to ``_on_update``, step by step, to say what."""
        channel = self._channel
        native = channel.pair
        if msg.pair != native:
            self._on_book_message(conn, channel, data, recv_ns)
            return
        if self.unsynced and native in self.unsynced:
            return  # reloading: nothing of this pair until its snapshot
        update = msg.update
        book = self.books.get(native)
        if book is not None:
            # in one call (the book's): every level parsed, the time of the newest and the
            # checksum read, before any is applied; then the book cut to the subscribed depth
            # ("after each update, truncate your book to the subscribed depth",
            # https://docs.kraken.com/api/docs/guides/spot-ws-book-v1), its checksum compared
            # (v1: the strings as sent), the spread where the top changed
            status = book.apply_update(ASK, update.a, update.b, self.rows, Lob, Spread, self._exchange, channel.symbol,
                                       recv_ns, channel.trunc, CHECKSUM_KRAKEN, update.c)
            if not status:  # UPDATE_OK
                self.metrics.checksum_ok += 1
                return
            if status == UPDATE_MISMATCH:
                self.checksum_failed(conn, native, update.c, book.checksum_kraken(), recv_ns)
                return
        # no book, or something amiss (nothing applied): step by step, to say what
        self._on_update(conn, channel, update.a, update.b, update.c, data, recv_ns)

    def _on_book_message(self, conn: Connection, channel: _Channel, data: bytes, recv_ns: int) -> None:
        """Any book message: a snapshot, an update (one payload or two, with or without a
        checksum), on its channel's pair or on another (the channelID was reused), or malformed."""
        native, depth = channel.pair, channel.depth
        try:
            msg = m.v1_book_decoder.decode(data)
        except DECODE_ERRORS as exc:
            self.book_failed(conn, native, "malformed book message", str(exc), data, recv_ns)
            return
        first, second = msg.first, msg.second
        pair = msg.third if second.__class__ is str else msg.fourth
        if pair != native:
            if not self.known(pair, data):
                return
            # the channelID moved to another pair (resubscribed): the message says which
            self.bad_input("channel mismatch", f"channelID {msg.channel_id}: {native!r} in state, {pair!r} in message", data)
            channel = self._learnt(conn, msg.channel_id, "book", pair, depth)
            native = pair
        if first.snap_asks is not None or first.snap_bids is not None:
            self._book_snapshot(conn, native, depth, first, data, recv_ns)
            return
        if native in self.unsynced:
            return  # reloading: nothing of this pair until its snapshot
        if second.__class__ is str:
            self._on_update(conn, channel, first.a, first.b, first.c, data, recv_ns)
        else:  # [cid, {"a": [..]}, {"b": [..], "c": ".."}, "book-N", "PAIR"]
            self._on_update(conn, channel, first.a if second.a is None else (first.a or []) + second.a,
                            second.b if first.b is None else first.b + (second.b or []),
                            second.c if second.c is not None else first.c, data, recv_ns)

    def _on_update(self, conn: Connection, channel: _Channel, asks, bids, checksum: str | None, data: bytes,
                   recv_ns: int) -> None:
        """A book update of a synced pair (``channel``'s), step by step: each check says what
        failed, and resyncs the pair, before anything is applied."""
        native = channel.pair
        book = self.books.get(native)
        if book is None:
            self.resync(conn, native, "book update before its snapshot", recv_ns)
            return
        newest = _newest(asks, bids)  # the event time: the newest level's (levels are in price order)
        if checksum is not None:
            try:
                expected = parse_checksum(checksum)
            except ValueError:
                self.book_failed(conn, native, "malformed checksum", repr(checksum), data, recv_ns)
                return
        atom_us = recv_ns // 1000
        try:
            event_ms = secs_to_ms(newest) if newest else atom_us // 1000
        except ValueError as exc:
            self.book_failed(conn, native, "malformed book timestamp", str(exc), data, recv_ns)
            return
        try:  # every level parsed before any is applied; then the book is cut to the subscribed depth
            flags = book.apply_sides(ASK, asks, bids, self.rows("lob"), Lob, self.exchange, channel.symbol, event_ms,
                                     atom_us, channel.trunc)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "malformed book level", str(exc), data, recv_ns)
            return
        if checksum is not None:
            got = book.checksum_kraken()
            if got != expected:
                self.checksum_failed(conn, native, checksum, got, recv_ns)
                return
            self.metrics.checksum_ok += 1
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)

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
            self.book_failed(conn, native, "malformed book timestamp", str(exc), data, recv_ns)
            return
        book = self.books.get(native)
        if book is None or book.price_decimals != pd or book.size_decimals != sd:
            book = self.books[native] = L2Book(pd, sd)
        try:  # every level parsed before the book is cleared for them
            book.check_sides(asks, bids)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "malformed book level", str(exc), data, recv_ns)
            return
        book = self.begin_snapshot(native, recv_ns, event_ms)
        self._set_depth(native, depth)
        flags = book.apply_sides(ASK, asks, bids, self.rows("lob"), Lob, self.exchange, self.symbol_of(native),
                                 event_ms, atom_us, depth)
        if flags & TOP_CHANGED:
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
    def _other_symbol(self, pair: str, data: bytes) -> str | None:
        """The symbol of a market a message names that is not its channel's; None (bad input) if
        it names none."""
        return self.symbol_of(pair) if self.known(pair, data) else None

    def _on_trades(self, conn: Connection, msg: m.V1TradeFrame, data: bytes, recv_ns: int) -> None:
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
        channel = self._channel
        if msg.pair == channel.pair:
            symbol = channel.symbol
        else:
            symbol = self._other_symbol(msg.pair, data)
            if symbol is None:
                return
        atom_us = recv_ns // 1000
        trade, exchange = self.rows("trades").trade, self.exchange
        for t, us, i in out:
            # the writer's own checks (a price > 0, values below 1e15) refuse what no market sends
            if not trade(exchange, symbol, t.price, t.volume, t.side == "b", f"{us}-{i}", us // 1000, atom_us):
                self.bad_input("malformed trade", f"{t.price!r} {t.volume!r} {t.side!r}", data)
                return

    def _on_ticker(self, conn: Connection, msg: m.V1TickerFrame, data: bytes, recv_ns: int) -> None:
        a, b = msg.ticker.a, msg.ticker.b
        valid = is_plain
        if not (valid(a[0]) and valid(a[2]) and valid(b[0]) and valid(b[2])):
            self.bad_input("malformed ticker", f"a={a!r} b={b!r}", data)
            return
        channel = self._channel
        if msg.pair == channel.pair:
            symbol = channel.symbol
        else:
            symbol = self._other_symbol(msg.pair, data)
            if symbol is None:
                return
        atom_us = recv_ns // 1000
        if not self.rows("ticker").quote(self.exchange, symbol, b[0], b[2], a[0], a[2], atom_us // 1000, atom_us):
            self.bad_input("malformed ticker", f"a={a!r} b={b!r}", data)  # a value of 1e15 or more

    def _on_ohlc(self, conn: Connection, msg: m.V1OhlcFrame, data: bytes, recv_ns: int) -> None:
        interval = self._channel.depth
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
        channel = self._channel
        if msg.pair == channel.pair:
            symbol = channel.symbol
        else:
            symbol = self._other_symbol(msg.pair, data)
            if symbol is None:
                return
        _, _, suffix = msg.channel_name.partition("-")
        if suffix.isdigit():
            interval = int(suffix)
        if not 0 < interval <= 1_000_000:
            self.bad_input("malformed ohlc", f"interval {interval!r}", data)
            return
        self.emit("candle", Candle(self.exchange, symbol, end - interval * 60_000, end,
                                   interval_name(interval), c.count, False, float(c.open), float(c.high), float(c.low),
                                   float(c.close), float(c.volume), event_ms, recv_ns // 1000))

    # --- events -------------------------------------------------------------------------------
    def _on_event(self, conn: Connection, ev: m.V1Event, data: bytes, recv_ns: int) -> None:
        cls = ev.__class__
        if cls is _HEARTBEAT:
            return
        if cls is _SUBSCRIPTION_STATUS:
            self._on_subscription(conn, ev, data, recv_ns)
        elif cls is _ERROR:
            self.bad_input("exchange error", ev.errorMessage, data)
        # pong, systemStatus: nothing to publish

    def _on_subscription(self, conn: Connection, ev: m.V1SubscriptionStatus, data: bytes, recv_ns: int) -> None:
        pair = ev.pair
        if ev.status == "subscribed":
            name = ev.channelName or (ev.subscription.name if ev.subscription is not None else "")
            spec = self._channel_spec(name, ev.subscription)
            if ev.channelID is None or spec is None or not pair:
                self.bad_input("malformed subscriptionStatus", f"channel {name!r} pair {pair!r}", data)
                return
            if not self.known(pair, data):
                return
            kind, depth = spec
            channel = self._learnt(conn, ev.channelID, kind, pair, depth)
            if kind == "book":
                self._set_depth(pair, depth)
            self.status(channel.symbol, "subscribed", name, recv_ns)
        elif ev.status == "unsubscribed":
            if ev.channelID is not None:
                conn.state.pop(_channel_key(ev.channelID), None)
        elif ev.status == "error":
            self.bad_input("subscription error", ev.errorMessage or "(no message)", data)
            symbol = self.symbol_of(pair) if pair and self.known(pair, data) else ""
            self.status(symbol, "stopped", f"subscription error: {ev.errorMessage}", recv_ns)
        else:
            self.bad_input("malformed subscriptionStatus", f"status {ev.status!r}", data)


# ================================================================================================
# v2: wss://ws.kraken.com/v2


#: the environment variables the level3 channel's token request is signed with
API_KEY_ENV, API_SECRET_ENV = "KRAKEN_API_KEY", "KRAKEN_API_SECRET"
#: the REST route of the websocket token (signed POST)
TOKEN_PATH = "/0/private/GetWebSocketsToken"
#: the level3 websocket (since 2025-12-02; before: wss://ws-auth.kraken.com/v2): the docs'
#: change log, https://docs.kraken.com/api/docs/change-log
L3_URL = "wss://ws-l3.kraken.com/v2"
_L3_EVENTS = ("add", "modify", "delete")


def missing_credentials() -> list[str]:
    """The environment variables of the API key that are not set (in order)."""
    return [name for name in (API_KEY_ENV, API_SECRET_ENV) if not os.environ.get(name)]


def api_sign(path: str, nonce: str, postdata: str, secret: str) -> str:
    """Kraken REST ``API-Sign``: base64 HMAC-SHA512 of ``path + SHA256(nonce + postdata)`` keyed
    with the base64-decoded secret (https://docs.kraken.com/api/docs/guides/spot-rest-auth).
    ValueError if the secret is not base64 (the message names the variable, never the value)."""
    try:
        key = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{API_SECRET_ENV} is not base64") from None
    digest = hashlib.sha256((nonce + postdata).encode()).digest()
    return base64.b64encode(hmac.new(key, path.encode() + digest, hashlib.sha512).digest()).decode()


class KrakenSpotScheme(_KrakenSpot):
    """Kraken spot websocket v2: JSON objects ``{"channel": .., "type": .., "data": [..]}``.

    Book prices and quantities are JSON numbers, decoded as raw digits (``msgspec.Raw``) and
    given to the book exactly; the checksum is computed at the pair's precision (REST
    ``pair_decimals``/``lot_decimals``), on snapshots and updates.

    ``lob_l3`` (only when asked for) -> ``level3`` on its own websocket (``L3_URL``), an
    authenticated channel: before each connect to it, a token is asked for with a signed POST
    of ``TOKEN_PATH`` (``KRAKEN_API_KEY`` / ``KRAKEN_API_SECRET`` from the environment: without
    them ``plan`` refuses, naming the missing variables); the token goes in the ``level3``
    subscribe message and is never logged or recorded (``redact``). Replays and ``--endpoint``
    runs (a simulator) ask for no token and subscribe without one.
    Level 3 book (``L3Book``, per pair): a snapshot (status ``snapshot`` with reason ``lob_l3``,
    every order a ``lob_l3`` event), then updates whose orders say ``add`` (to the back of its
    level), ``modify`` (new quantity, and price: at the same price a quantity not above the old
    one keeps the order's queue position, otherwise it goes to the back of its level) or
    ``delete``; after each message the book is cut to the subscribed depth (the dropped orders
    published with size 0: Kraken sends no delete for orders that leave the scope) and Kraken's
    level-3 CRC32 (top 10 levels, order by order, at the pair's precision) is verified, on the
    snapshot and on every update (https://docs.kraken.com/api/docs/guides/spot-ws-l3-v2). A
    mismatch, a ``modify`` of an order the book lacks or a malformed message resyncs the pair's
    level-3 book (reason ``lob_l3: ...``; unsubscribe + subscribe: a fresh snapshot). A
    ``delete`` of an order the book lacks changes nothing (a repeated delete). ``lob_l3`` events
    carry the order's remaining size (0: gone).
    """

    exchange = "kraken"
    websocket_endpoints = (WebsocketEndpoint("wss://ws.kraken.com/v2"), WebsocketEndpoint(L3_URL, ("level3",)))
    channels = {**_KrakenSpot.channels, "lob_l3": "level3"}
    is_default = True
    _v2 = True
    #: level3 depth we subscribe to (Kraken: 10, 100, 1000; the checksum covers the top 10)
    l3_depth = 10
    #: where the level3 connection's token comes from: set per scheme when ``lob_l3`` is collected
    token_path = ""

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (), channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        #: native -> depth of its level3 subscription (truncation depth)
        self.l3_depths: dict[str, int] = {}
        #: the websocket token of the latest connect to ``L3_URL`` ("" when none was fetched)
        self._token = ""
        if "lob_l3" in self.channel_names:
            self.token_path = TOKEN_PATH
        #: ``spread`` comes from the level-3 book where the level-2 book is not collected
        self._spread_from_l3 = "lob" not in self.channel_names

    # --- authentication (the feed's pre-connect token hook) -----------------------------------
    def plan(self, url: str | None = None) -> list[ConnectionPlan]:
        """As the base; ``lob_l3`` on Kraken's own URL needs the API key: ValueError naming the
        variables that are not set (an ``--endpoint`` of one's own needs none)."""
        if self.token_path and (url is None or url.rstrip("/") == self.ws_url.rstrip("/")):
            missing = missing_credentials()
            if missing:
                raise ValueError(f"kraken: channel lob_l3 (level3) is authenticated: set {' and '.join(missing)} "
                                 f"in the environment (a Kraken API key; any permission)")
        return super().plan(url)

    def needs_token(self, url: str) -> bool:
        """Whether a connect to ``url`` (one of the scheme's own) needs a token first: the
        level3 websocket only."""
        return url.rstrip("/") == self.channel_urls.get("level3", L3_URL).rstrip("/")

    def token_request(self) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the signed ``TOKEN_PATH`` POST (both secret: never logged).
        ValueError when the key is not set or the secret is not base64."""
        missing = missing_credentials()
        if missing:
            raise ValueError(f"set {' and '.join(missing)} in the environment")
        nonce = str(time.time_ns() // 1000)
        postdata = f"nonce={nonce}"
        sign = api_sign(TOKEN_PATH, nonce, postdata, os.environ[API_SECRET_ENV])
        return postdata.encode(), {"API-Key": os.environ[API_KEY_ENV], "API-Sign": sign,
                                   "Content-Type": "application/x-www-form-urlencoded"}

    def connect_url(self, body: bytes, connect_id: str = "") -> tuple[str, float]:
        """The token of a ``TOKEN_PATH`` answer (``{"error": [], "result": {"token": ..}}``),
        kept for the level3 subscribe messages; the URL to connect to is the level3 one.
        ValueError (never naming the token) if the answer holds none."""
        try:
            answer = m.v2_token_decoder.decode(body)
        except DECODE_ERRORS:
            raise ValueError("GetWebSocketsToken: not a token answer") from None
        if answer.error:
            raise ValueError(f"GetWebSocketsToken: {', '.join(answer.error)[:200]}")
        token = answer.result.token if answer.result is not None else ""
        if not token:
            raise ValueError("GetWebSocketsToken: no token in the answer")
        self._token = token
        return self.channel_urls.get("level3", L3_URL), 0.0

    @classmethod
    def redact(cls, message: str | bytes) -> str | bytes:
        """An outgoing message fit for a log or a recording: a ``token`` in its ``params``
        masked."""
        if b"token" not in (message if isinstance(message, bytes) else message.encode()):
            return message
        try:
            obj = json.loads(message)
        except ValueError:
            return "<unparseable message withheld: it may carry credentials>"
        params = obj.get("params") if isinstance(obj, dict) else None
        if isinstance(params, dict) and "token" in params:
            obj = {**obj, "params": {**params, "token": "***"}}
            return json.dumps(obj, separators=(",", ":"))
        return message

    # --- subscriptions ------------------------------------------------------------------------
    def _params(self, channel: str, natives: list[str], depth: int | None = None) -> dict:
        params: dict = {"channel": channel, "symbol": natives}
        if channel == "book":
            params["depth"] = depth or self.book_depth
            params["snapshot"] = True
        elif channel == "level3":
            params["depth"] = depth or self.l3_depth
            params["snapshot"] = True
            if self._token:
                params["token"] = self._token
        elif channel == "ohlc":
            params["interval"] = self.ohlc_interval
        elif channel == "trade":
            params["snapshot"] = False
        return params

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        return [m.encode({"method": "subscribe", "params": self._params(channel, natives)}).decode()]

    def resubscribe(self, conn: Connection, native: str, book: str = LOB) -> None:
        if book == LOB_L3:
            depth = self.l3_depths.get(native) or self.l3_depth
            unsub = {"channel": "level3", "symbol": [native], "depth": depth}
            if self._token:
                unsub["token"] = self._token
            conn.send(m.encode({"method": "unsubscribe", "params": unsub}).decode())
            conn.send(m.encode({"method": "subscribe", "params": self._params("level3", [native], depth)}).decode())
            return
        depth = self.depths.get(native) or self.book_depth
        unsub = {"channel": "book", "symbol": [native], "depth": depth}
        conn.send(m.encode({"method": "unsubscribe", "params": unsub}).decode())
        conn.send(m.encode({"method": "subscribe", "params": self._params("book", [native], depth)}).decode())

    def ping_message(self) -> str:
        return '{"method":"ping"}'

    # --- frames -------------------------------------------------------------------------------
    #: channel messages by their type; what does not decode as one (a method response, a
    #: malformed message) or is no JSON object goes to ``_on_other``
    dispatch = Dispatch({m.V2BookMsg: "_on_book", m.V2Level3Msg: "_on_level3", m.V2TradeMsg: "_on_trades", m.V2TickerMsg: "_on_ticker",
                         m.V2OhlcMsg: "_on_ohlc", m.V2Heartbeat: None, m.V2Status: None},
                        decoder=m.v2_decoder, lead=b"{", fallback="_on_other")

    def _on_other(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """Not a well-formed channel message: a method response, a malformed message, or no JSON
        object at all."""
        if data[:1] != b"{":
            self.bad_input("not a JSON object", "frame does not start with {", data)
            return
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
        if anybook is not None and anybook.channel == "level3":
            symbols = [d.get("symbol") for d in anybook.data if isinstance(d, dict)]
            natives = {n for n in symbols if isinstance(n, str) and n}
            self.bad_input("malformed level3 message", "level3 message failed validation", data)
            for native in natives:
                if native in self.l3books:
                    self.resync(conn, native, "malformed level3 message", recv_ns, LOB_L3)
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
                elif result.channel == "level3" and result.depth and 0 < result.depth <= 100_000:
                    self.l3_depths[result.symbol] = result.depth
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
                except BOOK_ERRORS as exc:
                    self.book_failed(conn, native, "malformed book level", str(exc), data, recv_ns)
                    continue
            else:
                if native in self.unsynced:
                    continue
                book = self.books.get(native)
                if book is None:
                    self.resync(conn, native, "book update before its snapshot", recv_ns)
                    continue
            if not 0 <= d.checksum < 1 << 32:
                self.book_failed(conn, native, "malformed checksum", repr(d.checksum), data, recv_ns)
                continue
            try:
                event_ms = rfc3339_to_ms(d.timestamp) if d.timestamp else atom_us // 1000
            except ValueError as exc:
                self.book_failed(conn, native, "malformed book timestamp", str(exc), data, recv_ns)
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
            except BOOK_ERRORS as exc:
                self.book_failed(conn, native, "malformed book level", str(exc), data, recv_ns)
                continue
            got = book.checksum_kraken(True)  # v2: at the pair's precision
            if got != d.checksum:
                self.checksum_failed(conn, native, d.checksum, got, recv_ns)
                continue
            self.metrics.checksum_ok += 1
            if flags & TOP_CHANGED:
                self.emit_spread(native, book, event_ms, atom_us)

    # --- level 3 ------------------------------------------------------------------------------
    def _on_level3(self, conn: Connection, msg: m.V2Level3Msg, data: bytes, recv_ns: int) -> None:
        kind = msg.type
        if kind != "snapshot" and kind != "update":
            self.bad_input("malformed level3 message", f"type {kind!r}", data)
            for d in msg.data:
                if d.symbol in self.l3books:
                    self.resync(conn, d.symbol, f"malformed level3 message: type {kind!r}", recv_ns, LOB_L3)
            return
        snapshot = kind == "snapshot"
        atom_us = recv_ns // 1000
        for d in msg.data:
            native = d.symbol
            if not self.known(native, data):
                continue
            if snapshot:
                book = self.l3book(native)
            else:
                if native in self.unsynced_l3:
                    continue
                book = self.l3books.get(native)
                if book is None:
                    self.resync(conn, native, "book update before its snapshot", recv_ns, LOB_L3)
                    continue
            # the whole payload checked before the book is touched
            problem = self._l3_problem(book, d, snapshot)
            if not problem:
                try:
                    event_ms = rfc3339_to_ms(d.timestamp) if d.timestamp else atom_us // 1000
                except ValueError as exc:
                    problem = f"timestamp: {exc}"
            if problem:
                self.book_failed(conn, native, "malformed level3 message", problem, data, recv_ns, LOB_L3)
                continue
            if snapshot:
                book = self.begin_snapshot_l3(native, recv_ns, event_ms)
            flags = self._l3_apply(conn, native, book, d, snapshot, event_ms, atom_us, data, recv_ns)
            if flags < 0:
                continue  # resynced
            got = book.checksum_kraken(True)  # at the pair's precision
            if got != d.checksum:
                self.checksum_failed(conn, native, d.checksum, got, recv_ns, LOB_L3)
                continue
            self.metrics.checksum_ok += 1
            if (snapshot or flags & TOP_CHANGED) and self._spread_from_l3:
                self.emit_spread(native, book, event_ms, atom_us)

    @staticmethod
    def _l3_problem(book: L3Book, d: m.V2L3Book, snapshot: bool) -> str:
        """What is malformed in one pair's level3 payload ("" if nothing): an order id, event,
        price or quantity (prices > 0, quantities >= 0, within the book's scale)."""
        if not 0 <= d.checksum < 1 << 32:
            return f"checksum {d.checksum!r}"
        pd, sd = book.price_decimals, book.size_decimals
        for orders in (d.bids, d.asks):
            for o in orders:
                if not o.order_id or len(o.order_id) > 100:
                    return f"order id {o.order_id!r}"
                if snapshot:
                    if o.event:
                        return f"event {o.event!r} in a snapshot"
                elif o.event not in _L3_EVENTS:
                    return f"event {o.event!r} of {o.order_id!r}"
                try:
                    price = parse_decimal(o.limit_price, pd)[0]
                    qty = parse_decimal(o.order_qty, sd)[0]
                except BOOK_ERRORS as exc:
                    return f"{o.order_id!r}: {exc}"
                if price <= 0 or qty < 0 or (qty == 0 and (snapshot or o.event == "add")):
                    return f"{o.order_id!r}: price {bytes(o.limit_price)!r} qty {bytes(o.order_qty)!r}"
        return ""

    def _l3_apply(self, conn: Connection, native: str, book: L3Book, d: m.V2L3Book, snapshot: bool, event_ms: int,
                  atom_us: int, data: bytes, recv_ns: int) -> int:
        """One checked payload into the book (a ``lob_l3`` event per change), then the book cut to
        the subscribed depth. The flags, or -1 when the book was resynced (a ``modify`` of an
        order it lacks)."""
        order, exchange = self.rows("lob_l3").order, self.exchange
        symbol = self._symbols.get(native) or self.symbol_of(native)
        flags = 0
        for side, orders in ((BID, d.bids), (ASK, d.asks)):
            bid = side == BID
            for o in orders:
                oid = o.order_id
                event = o.event
                if snapshot or event == "add":
                    flags |= book.add(oid, side, o.limit_price, o.order_qty)
                    if not order(exchange, symbol, float(bytes(o.limit_price)), float(bytes(o.order_qty)), bid, oid,
                                 event_ms, atom_us):
                        return self._l3_refused(conn, native, o, data, recv_ns)
                    continue
                held = book.order(oid)
                if event == "delete":
                    if held is None:
                        continue  # gone already (a repeated delete): nothing changes
                    flags |= book.remove(oid)
                    order(exchange, symbol, held[1], 0.0, held[0] == BID, oid, event_ms, atom_us)  # (the book's: fits)
                    continue
                # modify
                if held is None or held[0] != side:
                    why = "not on the book" if held is None else "on the other side"
                    self.gap(conn, native, f"modify of order {oid!r}, {why}", recv_ns, LOB_L3, kind="unknown order")
                    return -1
                pd, sd = book.price_decimals, book.size_decimals
                same_price = parse_decimal(o.limit_price, pd)[0] == parse_decimal(held[1], pd)[0]
                if same_price and parse_decimal(o.order_qty, sd)[0] <= parse_decimal(held[2], sd)[0]:
                    flags |= book.update(oid, o.order_qty)  # keeps its place in the queue
                elif same_price:
                    flags |= book.remove(oid) | book.add(oid, side, held[1], o.order_qty)  # to the back
                else:
                    flags |= book.change(oid, o.limit_price, o.order_qty)  # to the back of its new level
                if not order(exchange, symbol, float(bytes(o.limit_price)), float(bytes(o.order_qty)), bid, oid,
                             event_ms, atom_us):
                    return self._l3_refused(conn, native, o, data, recv_ns)
        depth = self.l3_depths.get(native) or self.l3_depth
        for side in (BID, ASK):
            if book.level_count(side) > depth:
                for price, _total, _count in book.levels(side, start=depth):
                    for oid, _size in book.orders_at(side, price):
                        flags |= book.remove(oid)
                        order(exchange, symbol, price, 0.0, side == BID, oid, event_ms, atom_us)
        return flags & ~UNKNOWN

    def _l3_refused(self, conn: Connection, native: str, o: m.V2L3Order, data: bytes, recv_ns: int) -> int:
        """An order the ``lob_l3`` writer refused after the payload's checks (a price or quantity
        of 1e15 or more: no market's, though within the book's scale): the message is malformed,
        the book (changed already) resynced; -1."""
        self.book_failed(conn, native, "malformed level3 message",
                         f"{o.order_id!r}: price {bytes(o.limit_price)!r} qty {bytes(o.order_qty)!r}", data, recv_ns,
                         LOB_L3)
        return -1

    # --- trades, ticker, ohlc -----------------------------------------------------------------
    def _on_trades(self, conn: Connection, msg: m.V2TradeMsg, data: bytes, recv_ns: int) -> None:
        out = []
        for t in msg.data:
            # the trades writer's bounds (a price in (0, 1e15), a qty in [0, 1e15)), checked on
            # every trade first: the message is written whole or not at all
            if not (0.0 < t.price < MAX_VALUE and 0.0 <= t.qty < MAX_VALUE) or t.side not in ("buy", "sell"):
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
        trade, exchange = self.rows("trades").trade, self.exchange
        for t, ms in out:
            trade(exchange, self.symbol_of(t.symbol), t.price, t.qty, t.side == "buy", t.trade_id, ms, atom_us)

    def _on_ticker(self, conn: Connection, msg: m.V2TickerMsg, data: bytes, recv_ns: int) -> None:
        atom_us = recv_ns // 1000
        quote = self.rows("ticker").quote
        for t in msg.data:
            # the ticker writer's bounds: values in [0, 1e15)
            if not (0.0 <= t.bid < MAX_VALUE and 0.0 <= t.bid_qty < MAX_VALUE and 0.0 <= t.ask < MAX_VALUE
                    and 0.0 <= t.ask_qty < MAX_VALUE):
                self.bad_input("malformed ticker", repr(t), data)
                continue
            if not self.known(t.symbol, data):
                continue
            try:
                ms = rfc3339_to_ms(t.timestamp) if t.timestamp else atom_us // 1000
            except ValueError as exc:
                self.bad_input("malformed ticker", str(exc), data)
                continue
            quote(self.exchange, self.symbol_of(t.symbol), t.bid, t.bid_qty, t.ask, t.ask_qty, ms, atom_us)

    def _on_ohlc(self, conn: Connection, msg: m.V2OhlcMsg, data: bytes, recv_ns: int) -> None:
        atom_us = recv_ns // 1000
        try:
            event_ms = rfc3339_to_ms(msg.timestamp) if msg.timestamp else atom_us // 1000
        except ValueError as exc:
            self.bad_input("malformed ohlc", str(exc), data)
            return
        for c in msg.data:
            if (not all(ok_float(x) for x in (c.open, c.high, c.low, c.close, c.volume))
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
