"""Bybit v5 public websocket: four schemes, one per endpoint (category).

=================  ========================================  ====================================
``--exchange``     endpoint                                  markets
=================  ========================================  ====================================
``bybit``          ``wss://stream.bybit.com/v5/public/spot``     spot
``bybit-linear``   ``wss://stream.bybit.com/v5/public/linear``   USDT/USDC perpetuals, dated futures
``bybit-inverse``  ``wss://stream.bybit.com/v5/public/inverse``  inverse perpetuals, dated futures
``bybit-options``  ``wss://stream.bybit.com/v5/public/option``   options (USDC- and USDT-settled)
=================  ========================================  ====================================

Channel map (atomfast topic -> Bybit topic, ``{s}`` the Bybit symbol):

==============  =============================  ===============================================
topic           Bybit topic                    schemes
==============  =============================  ===============================================
lob (+spread)   ``orderbook.{depth}.{s}``      all (depth: 200; options 100)
trades          ``publicTrade.{s}``            all (options: ``publicTrade.{baseCoin}``, every
                                               option of the coin)
ticker          ``tickers.{s}``                linear, inverse, options (spot tickers carry no
                                               best bid/ask: spot's top of book is ``spread``)
funding_rate    ``tickers.{s}`` (shared)       linear, inverse (perpetuals)
open_interest   ``tickers.{s}`` (shared)       linear, inverse, options
candle          ``kline.1.{s}``                spot, linear, inverse
liquidations    ``allLiquidation.{s}``         linear, inverse
==============  =============================  ===============================================

Books (https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook): after a subscription
Bybit sends a ``snapshot`` (the book to the topic's depth), then ``delta``s (size 0 removes a
level). A ``snapshot`` may come again at any time (Bybit re-sends one when it has a problem; after
a restart of its service with ``u`` = 1; for depth 1 every 3 s without a change, with the same
``u``): it REPLACES the book (status ``snapshot``, the levels). Each ``delta``'s ``u`` must be the
previous message's ``u`` + 1; anything else (a lost, repeated or reordered delta) is a gap:
``metrics.gaps`` + 1, status ``resync`` with the reason ``update id gap: u X != previous u Y + 1``,
the book dropped and its topic unsubscribed and subscribed again (Bybit's answer is a fresh
snapshot); deltas until then are dropped. A delta before any snapshot, or a malformed book
message, resyncs too. After every message the book is truncated to the topic's depth (the levels
that fall out are published as removals). Bybit sends no checksum.

Trades: ``S`` is the taker's side, ``i`` the trade id. Tickers (linear/inverse): a ``snapshot``
then ``delta``s holding only the fields that changed; we keep each market's last known fields and
merge every delta into them (an empty string is "no value"). ``ticker`` (best bid/ask) is
published when a message changes one of the four and all four are known; ``funding_rate``
(``fundingRate``, ``nextFundingTime``, ``markPrice``; Bybit publishes no separate predicted
rate: ``predicted_rate`` is 0.0) when the rate or its time changes; ``open_interest``
(``openInterest``: contracts for inverse, the coin for linear and options) when it changes.
Options' tickers are snapshots (``bidPrice``/``askPrice``...), read alike.

Candles: ``kline.1``; ``trades`` is 0 (Bybit gives no count), ``end`` = Bybit's end + 1 ms (end -
start is the interval, as on the other venues), ``closed`` = ``confirm``.

Liquidations (``allLiquidation``, https://bybit-exchange.github.io/docs/v5/websocket/public/all-liquidation):
Bybit's ``S`` is the side of the liquidated POSITION ("When you receive a Buy update, this means
that a long position has been liquidated"): our ``side`` is the liquidation order's, the opposite
(Buy -> ``sell``, Sell -> ``buy``); ``price`` is the bankruptcy price, ``size`` the executed size.

Keep-alive and limits (https://bybit-exchange.github.io/docs/v5/ws/connect): ``{"op":"ping"}``
every 20 s; a spot subscribe request carries at most 10 args; the ``args`` of one connection must
stay under 21,000 characters (options: at most 2000 args): ``subscriptions_per_connection`` = 200
topics a connection.
"""
from __future__ import annotations

from typing import Sequence

import msgspec

from ...book import ASK, BID
from ...events import BUY, SELL, Candle, FundingRate, Liquidation, Lob, OpenInterest
from ...kit.chain import Chain
from ...scheme import (BOOK_ERRORS, DECODE_ERRORS, TOP_CHANGED, Connection, ConnectionPlan, Dispatch,
                       Instrument, RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from . import messages as m
from .parse import is_plain, ms_ok, ms_text, name_instrument, number, parse_listing, signed

_LISTING = "/v5/market/instruments-info?category="
_TAKER = {"Buy": BUY, "Sell": SELL}
#: allLiquidation's position side -> the side of the liquidation order
_LIQUIDATION_SIDE = {"Buy": SELL, "Sell": BUY}
_TOPIC = b'"topic":"'
_KINDS = {b"orderbook": "orderbook", b"publicTrade": "publicTrade", b"tickers": "tickers", b"kline": "kline",
          b"allLiquidation": "allLiquidation"}
_WHAT = {"orderbook": "malformed book message", "publicTrade": "malformed trade", "tickers": "malformed ticker",
         "kline": "malformed candle", "allLiquidation": "malformed liquidation"}


def interval_name(interval: str) -> str:
    """Bybit's kline interval as ours: ``1`` -> ``1m``, ``60`` -> ``1h``, ``D`` -> ``1d``."""
    if interval.isdigit() and interval.isascii() and 0 < len(interval) <= 5:
        minutes = int(interval)
        if minutes and minutes % 60 == 0:
            return f"{minutes // 60}h"
        return f"{minutes}m"
    return {"D": "1d", "W": "1w", "M": "1M"}.get(interval, "")


class BybitScheme(Scheme):
    """What the four Bybit schemes share (no exchange name of its own: the registry skips it)."""

    category = ""
    #: the book depth subscribed (``orderbook.{depth}.{symbol}``)
    depth = 200
    #: args a subscribe request may carry
    args_per_message = 10
    symbols_per_message = 10
    subscriptions_per_connection = 200
    ping_interval = 20.0
    silence_timeout = 30.0
    unknown_market = "unknown symbol"

    dispatch = Dispatch({b"orderbook": "_on_book", b"publicTrade": "_on_trades", b"tickers": "_on_ticker",
                         b"kline": "_on_kline", b"allLiquidation": "_on_liquidations"},
                        prefilter="_topic_kind",
                        decoders={b"orderbook": m.book_decoder, b"publicTrade": m.trade_decoder,
                                  b"tickers": m.ticker_decoder, b"kline": m.kline_decoder,
                                  b"allLiquidation": m.liquidation_decoder},
                        fallback="_on_other", refused="_on_refused")

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        #: each delta's ``u`` must be the ``u`` of the last book message applied + 1
        self.chain = Chain(self, linked=False, reason="u {first} != previous u {book} + 1", kind="update id gap")
        #: symbol -> ``u`` of the last book message applied
        self.update_ids: dict[str, int] = self.chain.ids
        #: book topic -> (symbol, depth)
        self._book_topics: dict[str, tuple[str, int]] = {}
        #: symbol -> its book topic (the last one seen: the one to subscribe again)
        self._topic_of: dict[str, str] = {}
        #: symbol -> the merged ticker: [bid, bid size, ask, ask size, mark, open interest, funding
        #: rate, next funding time] (None: not known yet)
        self.tickers: dict[str, list] = {}
        self._last_funding: dict[str, tuple[float, int]] = {}
        self._last_oi: dict[str, float] = {}
        wanted = set(self.channel_names)
        self._want_ticker = "ticker" in wanted
        self._want_funding = "funding_rate" in wanted
        self._want_oi = "open_interest" in wanted

    # --- instruments --------------------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_listing(cls.category, body)

    def guess_instrument(self, native: str) -> Instrument:
        return name_instrument(self.category, native)

    # --- subscriptions ------------------------------------------------------------------------
    def topic(self, channel: str, native: str) -> str:
        if channel == "orderbook":
            return f"orderbook.{self.depth}.{native}"
        if channel == "kline":
            return f"kline.1.{native}"
        return f"{channel}.{native}"

    def topics(self, channel: str, natives: list[str]) -> list[str]:
        return [self.topic(channel, n) for n in natives]

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        args = self.topics(channel, natives)
        step = self.args_per_message
        return [m.encode({"op": "subscribe", "args": args[i:i + step]}).decode() for i in range(0, len(args), step)]

    def subscribe_plan(self, plan: ConnectionPlan) -> list[str | bytes]:
        """Every topic of the connection, ``args_per_message`` to a subscribe request."""
        args = [t for channel, natives in plan.subscriptions for t in self.topics(channel, natives)]
        step = self.args_per_message
        return [m.encode({"op": "subscribe", "args": args[i:i + step]}).decode() for i in range(0, len(args), step)]

    def ping_message(self) -> str:
        return '{"op":"ping"}'

    def resubscribe(self, conn: Connection, native: str, book: str = "lob") -> None:
        """A fresh snapshot of one book: its topic unsubscribed and subscribed again."""
        topic = self._topic_of.get(native) or self.topic("orderbook", native)
        conn.send(m.encode({"op": "unsubscribe", "args": [topic]}).decode())
        conn.send(m.encode({"op": "subscribe", "args": [topic]}).decode())

    # --- frames -------------------------------------------------------------------------------
    @staticmethod
    def _topic_kind(conn: Connection, data: bytes) -> bytes | None:
        """The kind of a frame's topic (``orderbook`` of ``"topic":"orderbook.50.BTCUSDT"``), read
        on the bytes; None where there is none (the decoder checks it is the top-level one)."""
        i = data.find(_TOPIC, 0, 200)
        if i < 0:
            i = data.find(b'"topic"', 0, 200)  # not as Bybit writes it (compact): whitespace around ':'
            if i < 0:
                return None
            i += 7
            while data[i:i + 1] in (b" ", b"\t", b"\r", b"\n", b":"):
                i += 1
            if data[i:i + 1] != b'"':
                return None
            i -= 8
        i += 9
        j = data.find(b".", i, i + 20)
        return data[i:j] if j > 0 else None

    def _on_other(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """No market-data topic: an answer to one of our ops, or bad input."""
        msg = self.decode_unrouted(data, m.control_decoder)
        if msg is None:
            return
        if msg.op in ("ping", "pong") and msg.success is not False:
            return  # our heartbeat answered
        if msg.op in ("subscribe", "unsubscribe") or msg.type == "COMMAND_RESP":
            failed = msg.data.failTopics if msg.data is not None else []
            if msg.success is False or failed:
                detail = f"{msg.op or msg.type}: {msg.ret_msg or ', '.join(failed)}"[:500]
                self.bad_input("subscription error", detail, data)
                self.status("", "stopped", detail, recv_ns)
            return
        self.bad_input("unknown message", f"op {msg.op!r} type {msg.type!r}", data)

    def _on_refused(self, conn: Connection, data: bytes, recv_ns: int, exc: Exception) -> None:
        """A frame with a market-data topic that its kind's decoder refused: counted; a book's
        resyncs (the message is lost to its sequence)."""
        try:
            head = m.head_decoder.decode(data)
        except DECODE_ERRORS:
            self.bad_input("malformed JSON" if not isinstance(exc, msgspec.ValidationError) else "unknown message",
                           str(exc), data)
            return
        topic = head.topic if head.topic.__class__ is str else ""
        kind, _, rest = topic.partition(".")
        what = _WHAT.get(kind)
        if what is None:
            self.bad_input("unknown message", str(exc), data)
            return
        if kind == "orderbook":
            native = rest.partition(".")[2]
            if native in self.books:
                self.book_failed(conn, native, what, str(exc), data, recv_ns)
                return
        self.bad_input(what, str(exc), data)

    # --- books --------------------------------------------------------------------------------
    def _book_topic(self, topic: str) -> tuple[str, int] | None:
        known = self._book_topics.get(topic)
        if known is not None:
            return known
        parts = topic.split(".")
        if len(parts) != 3 or not (parts[1].isdigit() and parts[1].isascii() and 0 < len(parts[1]) <= 4):
            return None
        depth = int(parts[1])
        if not depth:
            return None
        if len(self._book_topics) < 100_000:
            self._book_topics[topic] = (parts[2], depth)
        return parts[2], depth

    def _on_book(self, conn: Connection, msg: m.BookMsg, data: bytes, recv_ns: int) -> None:
        d = msg.data
        native = d.s
        topic = self._book_topic(msg.topic)
        if topic is None or topic[0] != native:
            if native.__class__ is str and native in self.books:
                self.book_failed(conn, native, "malformed book message", f"topic {msg.topic!r}", data, recv_ns)
            else:
                self.bad_input("malformed book message", f"topic {msg.topic!r} symbol {native!r}", data)
            return
        if not self.known(native, data):
            return
        depth = topic[1]
        kind = msg.type
        if kind == "delta":
            if native in self.unsynced:
                return  # waiting for the snapshot our resubscription brings
            book = self.books.get(native)
            if book is None:
                self._topic_of.setdefault(native, msg.topic)  # (the topic to subscribe again)
                self.resync(conn, native, "book delta before its snapshot", recv_ns)
                return
            if not self.chain.follows(conn, native, d.u, d.u, 0, recv_ns):
                return
        elif kind != "snapshot":
            self.book_failed(conn, native, "malformed book message", f"type {kind!r}", data, recv_ns)
            return
        if not ms_ok(msg.ts):
            self.book_failed(conn, native, "malformed book message", f"ts {msg.ts!r}", data, recv_ns)
            return
        event_ms = msg.ts
        atom_us = recv_ns // 1000
        symbol = self._symbols[native]
        if kind == "snapshot":
            if not self.check_snapshot(conn, native, d.b, d.a, data, recv_ns):
                return
            self._topic_of[native] = msg.topic
            book = self.begin_snapshot(native, recv_ns, event_ms)
            flags = book.apply_sides(BID, d.b, d.a, self.rows("lob"), Lob, self.exchange, symbol, event_ms, atom_us,
                                     depth)
        else:
            try:
                flags = book.apply_sides(BID, d.b, d.a, self.rows("lob"), Lob, self.exchange, symbol, event_ms,
                                         atom_us, depth)
            except BOOK_ERRORS as exc:
                self.book_failed(conn, native, "malformed book delta", str(exc), data, recv_ns)
                return
        self.chain.set(native, d.u)
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)

    # --- trades -------------------------------------------------------------------------------
    def _on_trades(self, conn: Connection, msg: m.TradeMsg, data: bytes, recv_ns: int) -> None:
        # the whole message checked before any trade is written: plain decimals (the writer
        # parses them), the taker's side, the time, an id
        trades = msg.data
        try:
            for t in trades:
                for x in (t.p, t.v):
                    if x and not is_plain(x):
                        raise ValueError(f"not a plain number {x!r}")
                if t.S not in _TAKER or not t.p or not t.v or not ms_ok(t.T) or not t.i:
                    raise ValueError(f"{t.p!r} {t.v!r} {t.S!r} {t.T!r} {t.i!r}")
        except ValueError as exc:
            self.bad_input("malformed trade", str(exc), data)
            return
        for t in trades:
            if not self.known(t.s, data):
                return
        atom_us = recv_ns // 1000
        rows, exchange, symbols = self.rows("trades"), self.exchange, self._symbols
        for t in trades:
            # a price of 0, or a value of 1e15 or more (no market's), is refused by the writer
            if not rows.trade(exchange, symbols[t.s], t.p, t.v, t.S == "Buy", t.i, t.T, atom_us):
                self.bad_input("malformed trade", f"{t.p!r} {t.v!r}", data)
                return

    # --- tickers ------------------------------------------------------------------------------
    def _on_ticker(self, conn: Connection, msg: m.TickerMsg, data: bytes, recv_ns: int) -> None:
        t = msg.data
        native = t.symbol
        bid_p, bid_s = t.bid1Price if t.bid1Price is not None else t.bidPrice, t.bid1Size if t.bid1Size is not None else t.bidSize
        ask_p, ask_s = t.ask1Price if t.ask1Price is not None else t.askPrice, t.ask1Size if t.ask1Size is not None else t.askSize
        try:
            fields = [number(bid_p), number(bid_s), number(ask_p), number(ask_s), number(t.markPrice),
                      number(t.openInterest), signed(t.fundingRate), None]
        except ValueError as exc:
            self.bad_input("malformed ticker", str(exc), data)
            return
        if t.nextFundingTime:
            nft = ms_text(t.nextFundingTime)
            if nft < 0:
                self.bad_input("malformed ticker", f"nextFundingTime {t.nextFundingTime!r}", data)
                return
            fields[7] = nft
        if not ms_ok(msg.ts) or msg.type not in ("snapshot", "delta", ""):
            self.bad_input("malformed ticker", f"ts {msg.ts!r} type {msg.type!r}", data)
            return
        if msg.topic != f"tickers.{native}":
            self.bad_input("malformed ticker", f"topic {msg.topic!r} symbol {native!r}", data)
            return
        if not self.known(native, data):
            return
        state = self.tickers.get(native)
        if state is None or msg.type != "delta":
            state = self.tickers[native] = [None] * 8
        for i, value in enumerate(fields):
            if value is not None:
                state[i] = value
        event_ms = msg.ts
        atom_us = recv_ns // 1000
        symbol = self._symbols[native]
        if self._want_ticker and (fields[0] is not None or fields[1] is not None or fields[2] is not None
                                  or fields[3] is not None) and None not in state[:4]:
            # a value of 1e15 or more (no market's) is refused by the writer
            if not self.rows("ticker").quote(self.exchange, symbol, state[0], state[1], state[2], state[3], event_ms,
                                             atom_us):
                self.bad_input("malformed ticker", f"{bid_p!r} {bid_s!r} {ask_p!r} {ask_s!r}", data)
                return
        if self._want_funding and (fields[6] is not None or fields[7] is not None) and state[6] is not None \
                and state[7] is not None and self._last_funding.get(native) != (state[6], state[7]):
            self._last_funding[native] = (state[6], state[7])
            mark = state[4] if state[4] is not None else 0.0
            self.emit("funding_rate", FundingRate(self.exchange, symbol, mark, state[6], state[7], 0.0, event_ms,
                                                  atom_us))
        if self._want_oi and fields[5] is not None and self._last_oi.get(native) != fields[5]:
            self._last_oi[native] = fields[5]
            self.emit("open_interest", OpenInterest(self.exchange, symbol, fields[5], event_ms, atom_us))

    # --- candles ------------------------------------------------------------------------------
    def _on_kline(self, conn: Connection, msg: m.KlineMsg, data: bytes, recv_ns: int) -> None:
        parts = msg.topic.split(".")
        native = parts[2] if len(parts) == 3 else ""
        out = []
        try:
            for k in msg.data:
                name = interval_name(k.interval)
                values = [number(k.open), number(k.high), number(k.low), number(k.close), number(k.volume)]
                if (not name or k.interval != parts[1] or None in values or not (ms_ok(k.start) and ms_ok(k.end)
                        and ms_ok(k.timestamp)) or k.end < k.start):
                    raise ValueError(f"{k.interval!r} {k.start!r} {k.end!r} {k.open!r} {k.close!r}")
                out.append((k, name, values))
        except ValueError as exc:
            self.bad_input("malformed candle", str(exc), data)
            return
        if not ms_ok(msg.ts):
            self.bad_input("malformed candle", f"ts {msg.ts!r}", data)
            return
        if not self.known(native, data):
            return
        symbol = self._symbols[native]
        atom_us = recv_ns // 1000
        for k, name, (o, h, lo, c, v) in out:
            self.emit("candle", Candle(self.exchange, symbol, k.start, k.end + 1, name, 0, k.confirm, o, h, lo, c, v,
                                       k.timestamp or msg.ts, atom_us))

    # --- liquidations -------------------------------------------------------------------------
    def _on_liquidations(self, conn: Connection, msg: m.LiquidationMsg, data: bytes, recv_ns: int) -> None:
        out = []
        try:
            for q in msg.data:
                side = _LIQUIDATION_SIDE.get(q.S)
                price, size = number(q.p), number(q.v)
                if side is None or price is None or size is None or not ms_ok(q.T):
                    raise ValueError(f"{q.p!r} {q.v!r} {q.S!r} {q.T!r}")
                out.append((q.s, side, price, size, q.T))
        except ValueError as exc:
            self.bad_input("malformed liquidation", str(exc), data)
            return
        for native, *_ in out:
            if not self.known(native, data):
                return
        atom_us = recv_ns // 1000
        for native, side, price, size, ts in out:
            self.emit("liquidations", Liquidation(self.exchange, self._symbols[native], side, price, size, ts, atom_us))


class BybitSpotScheme(BybitScheme):
    exchange = "bybit"
    category = "spot"
    default_symbols = ("BTC-USDT",)
    websocket_endpoints = (WebsocketEndpoint("wss://stream.bybit.com/v5/public/spot"),)
    rest_endpoint = RestEndpoint("https://api.bybit.com", Routes(instruments=_LISTING + "spot"))
    channels = {"lob": "orderbook", "trades": "publicTrade", "candle": "kline"}
    default_channels = ("lob", "trades", "candle")
    args_per_message = 10  # "Spot can input up to 10 args for each subscription request"
    depth = 200


class BybitLinearScheme(BybitScheme):
    exchange = "bybit-linear"
    category = "linear"
    default_symbols = ("BTC-USDT-PERP",)
    websocket_endpoints = (WebsocketEndpoint("wss://stream.bybit.com/v5/public/linear"),)
    rest_endpoint = RestEndpoint("https://api.bybit.com", Routes(instruments=_LISTING + "linear&limit=1000"))
    channels = {"lob": "orderbook", "trades": "publicTrade", "ticker": "tickers", "funding_rate": "tickers",
                "open_interest": "tickers", "candle": "kline", "liquidations": "allLiquidation"}
    default_channels = ("lob", "trades", "ticker", "funding_rate", "open_interest", "candle", "liquidations")
    args_per_message = 50
    depth = 200


class BybitInverseScheme(BybitLinearScheme):
    exchange = "bybit-inverse"
    category = "inverse"
    default_symbols = ("BTC-USD-PERP",)
    websocket_endpoints = (WebsocketEndpoint("wss://stream.bybit.com/v5/public/inverse"),)
    rest_endpoint = RestEndpoint("https://api.bybit.com", Routes(instruments=_LISTING + "inverse&limit=1000"))


#: the option base coins of Bybit's own list (/v5/market/option-base-coins, crypto)
OPTION_COINS = ("BTC", "ETH", "SOL", "XRP", "DOGE", "MNT")


class BybitOptionsScheme(BybitScheme):
    exchange = "bybit-options"
    category = "option"
    #: options expire: no fixed default market (give --symbols)
    default_symbols = ()
    websocket_endpoints = (WebsocketEndpoint("wss://stream.bybit.com/v5/public/option"),)
    rest_endpoint = RestEndpoint("https://api.bybit.com", Routes(instruments=tuple(
        f"{_LISTING}option&baseCoin={coin}&limit=1000" for coin in OPTION_COINS)))
    channels = {"lob": "orderbook", "trades": "publicTrade", "ticker": "tickers", "open_interest": "tickers"}
    default_channels = ("lob", "trades", "ticker", "open_interest")
    args_per_message = 50
    depth = 100

    def topics(self, channel: str, natives: list[str]) -> list[str]:
        if channel == "publicTrade":  # per base coin: every option of the coin
            coins = dict.fromkeys(self.instrument(n).base for n in natives)
            return [f"publicTrade.{coin}" for coin in coins]
        return super().topics(channel, natives)
