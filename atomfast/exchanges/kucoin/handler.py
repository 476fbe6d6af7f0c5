"""KuCoin: ``KucoinScheme`` (spot, ``--exchange kucoin``) and ``KucoinFuturesScheme``
(``--exchange kucoin-futures``).

Connecting (https://www.kucoin.com/docs-new/websocket-api/base-info/get-public-token-spot-margin):
``POST /api/v1/bullet-public`` answers a token and the servers; the client connects to
``<endpoint>?token=<token>&connectId=<id>``, pings ``{"id":..,"type":"ping"}`` every
``pingInterval`` (18 s) and subscribes ``{"id":..,"type":"subscribe","topic":..,"response":true}``.
The scheme declares the route (``token_path``) and reads the answer (``connect_url``); the feed
POSTs it before every connect to the scheme's own URL (``atomfast.feed``: the REST override
applied, so ``run --rest-endpoint SIM`` takes the simulator's answer); ``--endpoint`` (a
simulator) needs no token. The token never reaches a log, a status or a recording.

Spot channels (atomfast topic -> KuCoin topic, up to 100 markets per subscription):
lob -> ``/market/level2`` (``trade.l2update``), trades and trades_l3 -> ``/market/match``
(``trade.l3match``: ``makerOrderId``/``takerOrderId``, ``side`` the taker's), ticker ->
``/market/ticker`` (best bid/ask), candle -> ``/market/candles:SYM_1min``.

Spot book (https://www.kucoin.com/docs-new/3470068w0, "calibration procedure"): buffer the
increments, fetch a REST snapshot (its ``sequence``), drop what it covers, then each increment must
satisfy ``sequenceStart <= book + 1`` and ``sequenceEnd > book`` (``BookSync`` + ``Contiguous``
on ``sequenceStart``/``sequenceEnd``); an increment that straddles the snapshot applies only its
changes whose own sequence (the third element) is above it; a change with price ``0`` only moves
the sequence. A break: ``gap`` (counted), status ``resync``, the book rebuilt from a new snapshot.

The snapshot: the full book ``GET /api/v3/market/orderbook/level2`` needs an API key now; the
public ``GET /api/v1/market/orderbook/level2_100`` gives 100 levels a side with the same
``sequence``. The scheme asks for the full book first (what a keyed deployment, the recording and
the simulator answer) and, refused once (HTTP 400/401/403 or a non-200000 code), uses the
partial one from then on. A partial side holding 100 levels is exact only down to its last
price: updates beyond that price are not applied (the book is exact within that range, never
holding a level it cannot vouch for), and when such a side empties the book is rebuilt
(``resync``: "partial snapshot exhausted").

Futures (``kucoin-futures``, token from ``https://api-futures.kucoin.com/api/v1/bullet-public``;
sizes in lots, as the venue sends them):
- lob -> ``/contractMarket/level2`` (https://www.kucoin.com/docs-new/3470082w0): one change
  ``"price,side,size"`` per message (size 0 removes the price), each ``sequence`` the previous
  + 1 (``Sequenced``); the book from the public REST snapshot ``GET /api/v1/level2/snapshot``
  (its ``sequence``): buffered updates up to it dropped, the next must be ``sequence`` + 1; a
  jump is a gap (counted, ``resync``, a new snapshot); an update already in the book (a repeat)
  is stale and changes nothing;
- trades -> ``/contractMarket/execution`` (``match``, 3470084w0; ``side`` the taker's, ``ts`` ns),
  trades_l3 from the same message where it names ``makerOrderId``/``takerOrderId``;
- ticker -> ``/contractMarket/tickerV2`` (3470080w0: best bid/ask, ``ts`` ns);
- candle -> ``/contractMarket/limitCandle:SYM_1min`` (3470086w0: ``candles`` = [start s, open,
  close, high, low, "volume" the docs say not to use, then the traded amount]: the volume
  published is the last element, in lots);
- funding_rate -> ``/contract/instrument`` (3470087w0): ``funding.rate`` (``fundingRate``; the
  1-minute ``granularity`` 60000 is the current period's predicted rate, also published as
  ``predicted_rate``), with the last ``mark.index.price`` ``markPrice`` (a mark price alone
  publishes nothing);
- open_interest -> a REST poll (no stream carries it) of ``GET /api/v1/contracts/{symbol}``
  (``openInterest``, lots), on connect and every ``open_interest_interval`` s.
"""
from __future__ import annotations

import itertools
import time
from typing import ClassVar, Sequence
from urllib.parse import parse_qs, urlsplit

from ...book import ASK, BID, L2Book
from ...events import BUY, SELL, Candle, FundingRate, Lob, OpenInterest, TradeL3
from ...kit.booksync import BookSync, Contiguous, Sequenced
from ...scheme import (BOOK_ERRORS, CROSSED, DECODE_ERRORS, TOP_CHANGED, Connection, Dispatch, Instrument,
                       RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from .._common import is_plain, ms_ok, ok_float
from . import messages as m
from .parse import (bullet_endpoint, guess_contract, guess_spot, ns_to_ms, number_text, parse_contracts,
                    parse_spot)

_SIDES = {"buy": BUY, "sell": SELL}
#: the public partial snapshot's depth (levels a side)
PARTIAL_DEPTH = 100
#: answers to the full-book request that mean "not without a key": use the partial one
_REFUSED = (400, 401, 403)


def _seq(text: str) -> int:
    """A change's own sequence (a string of digits); ValueError otherwise."""
    if not (0 < len(text) <= 18 and text.isdigit() and text.isascii()):
        raise ValueError(f"change sequence {text!r}")
    return int(text)


def _plain(*texts) -> bool:
    for t in texts:
        if t.__class__ is not str or not is_plain(t):
            return False
    return True


class _KucoinBase(Scheme):
    """What spot and futures share: the token, the envelope, subscriptions, pings."""

    #: where the websocket token comes from (``POST``, empty body): see ``connect_url``
    token_path = "/api/v1/bullet-public"
    symbols_per_message = 100
    subscriptions_per_connection = 400
    ping_interval = 18.0
    silence_timeout = 40.0
    unknown_market = "unknown market"
    #: topics subscribed one market per message (the candle topics name one market and interval)
    _single = ()

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        names = set(self.channel_names)
        self._want_trades = "trades" in names
        self._want_trades_l3 = "trades_l3" in names
        self._ids = itertools.count(1)
        #: market -> an empty book of its precision: levels are checked on it before buffering
        self._checkers: dict[str, L2Book] = {}

    # --- the token (the runtime's pre-connect hook, see the module's doc) -----------------------
    @classmethod
    def connect_url(cls, bullet_body: bytes, connect_id: str = "") -> tuple[str, float]:
        """The websocket URL and ping interval (s) of a ``token_path`` answer (ValueError)."""
        return bullet_endpoint(bullet_body, connect_id or str(time.time_ns() // 1_000_000))

    # --- subscriptions --------------------------------------------------------------------------
    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        if channel in self._single:
            topics = [f"{channel}:{n}_1min" for n in natives]
        else:
            topics = [f"{channel}:{','.join(natives)}"]
        return [m.encode({"id": str(next(self._ids)), "type": "subscribe", "topic": t, "privateChannel": False,
                          "response": True}).decode() for t in topics]

    def ping_message(self) -> str:
        return '{"id":"%d","type":"ping"}' % next(self._ids)

    # --- frames ---------------------------------------------------------------------------------
    def _on_control(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        kind = msg.type
        if kind in ("welcome", "ack", "pong"):
            return
        if kind == "error":
            self.bad_input("exchange error", f"{msg.code!r}: {bytes(msg.data)[:200].decode('utf-8', 'replace')}", data)
            return
        if kind == "message":
            self.bad_input("unknown subject", repr(msg.subject)[:100], data)
            return
        self.bad_input("unknown message", f"type {kind!r}"[:100], data)

    def _on_other(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """Not routed: a frame that is no JSON object, or a message of a subject not known."""
        if bytes(data[:1]) != b"{":
            self.bad_input("not a JSON object", repr(bytes(data[:100])), data)
        else:
            self.bad_input("unknown subject", repr(bytes(data[:100])), data)

    def _topic_market(self, msg: m.Envelope, data: bytes) -> str:
        """The market a topic names (``/market/ticker:BTC-USDT``), if known; "" otherwise."""
        native = msg.topic.rpartition(":")[2]
        return native if self.known(native, data) else ""

    def _checker(self, native: str) -> L2Book:
        checker = self._checkers.get(native)
        if checker is None:
            inst = self.instrument(native)
            checker = self._checkers[native] = L2Book(inst.price_decimals, inst.size_decimals)
        return checker

    def _trade(self, native: str, price: str, size: str, side: str, trade_id: str, maker: str, taker: str,
               event_ms: int, data: bytes, recv_ns: int) -> None:
        taker_side = _SIDES.get(side)
        if taker_side is None or not _plain(price, size) or not ms_ok(event_ms) or trade_id.__class__ is not str or not (
                0 < len(trade_id) <= 64):
            self.bad_input("malformed trade", f"{price!r} {size!r} {side!r} {trade_id!r}"[:200], data)
            return
        if maker.__class__ is not str or taker.__class__ is not str:
            self.bad_input("malformed trade", f"{price!r} {size!r}", data)
            return
        symbol = self._symbols[native]
        atom_us = recv_ns // 1000
        # a price of 0, or a value of 1e15 or more (no market's), is refused by the writer
        if self._want_trades and not self.rows("trades").trade(self.exchange, symbol, price, size, side == "buy",
                                                               trade_id, event_ms, atom_us):
            self.bad_input("malformed trade", f"{price!r} {size!r}", data)
            return
        if self._want_trades_l3 and (maker or taker):  # (a trade naming no order is no level-3 trade)
            self.emit("trades_l3", TradeL3(self.exchange, symbol, float(price), float(size), taker_side, trade_id,
                                           maker, taker, event_ms, atom_us))

    def _candle(self, native: str, c: list, event_ms: int, data: bytes, recv_ns: int) -> None:
        if len(c) < 6 or not _plain(*c[:6]) or not ms_ok(event_ms):
            self.bad_input("malformed candle", repr(c)[:200], data)
            return
        start_s, o, close, h, lo, v = c[:6]
        if len(start_s) > 11:
            self.bad_input("malformed candle", repr(c)[:200], data)
            return
        start = int(start_s) * 1000
        values = [float(x) for x in (o, h, lo, close, v)]
        if not all(ok_float(x) for x in values):
            self.bad_input("malformed candle", repr(c)[:200], data)
            return
        o, h, lo, close, v = values
        self.emit("candle", Candle(self.exchange, self._symbols[native], start, start + 60_000, "1m", 0, False, o, h,
                                   lo, close, v, event_ms or recv_ns // 1_000_000, recv_ns // 1000))

    def _snapshot_failed(self, native: str, detail: str, body: bytes, recv_ns: int) -> None:
        """A snapshot that cannot be read: counted; asked again on the book's next update."""
        self.bad_input("malformed snapshot", f"{native}: {detail}"[:300], body)
        self.sync.request_failed(native, recv_ns)

    def resubscribe(self, conn: Connection, native: str, book: str = "lob") -> None:
        """Reload one book: the stream goes on; buffer it and fetch a new snapshot."""
        self.sync.restart(conn, native)

    def on_close(self, conn: Connection, reason: str, recv_ns: int) -> None:
        for native, st in self.sync.markets.items():
            if st.conn is conn and st.live:
                self.sync.suspend(native)
                self.unsynced.add(native)
        super().on_close(conn, reason, recv_ns)


class KucoinScheme(_KucoinBase):
    exchange = "kucoin"
    websocket_endpoints = (WebsocketEndpoint("wss://ws-api-spot.kucoin.com/"),)
    rest_endpoint = RestEndpoint("https://api.kucoin.com", Routes(
        instruments=("/api/v1/symbols", "/api/v2/symbols"), snapshot="/api/v3/market/orderbook/level2"))
    #: the public snapshot (100 levels a side), used once the full book is refused
    partial_snapshot = "/api/v1/market/orderbook/level2_100"
    channels = {"lob": "/market/level2", "trades": "/market/match", "trades_l3": "/market/match",
                "ticker": "/market/ticker", "candle": "/market/candles"}
    default_channels = ("lob", "trades", "ticker")
    default_symbols = ("BTC-USDT", "ETH-USDT")
    _single = ("/market/candles",)
    dispatch = Dispatch({"trade.l2update": "_on_l2", "trade.l3match": "_on_match", "trade.ticker": "_on_ticker",
                         "trade.candles.update": "_on_candle", "trade.candles.add": "_on_candle", "": "_on_control"},
                        decoder=m.envelope_decoder, field="subject", lead=b"{", fallback="_on_other")

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        rule = Contiguous("sequenceStart", "sequenceEnd",
                          reason="sequenceStart {first} > previous sequenceEnd {book} + 1")
        self.sync = BookSync(self, rule, self._request, self._apply, self._load, max_buffer=100_000,
                             overflow="snapshot buffer overflow")
        #: the full book was refused (no key): the partial snapshot from now on
        self.partial = False
        #: market -> (lowest bid price, highest ask price) a partial snapshot vouches for (None:
        #: that side was whole)
        self.horizon: dict[str, tuple[float | None, float | None]] = {}

    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_spot(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_spot(native)

    # --- lob ------------------------------------------------------------------------------------
    def _on_l2(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        native = msg.topic.rpartition(":")[2]
        if not self.known(native, data):
            return
        try:
            d = m.l2_decoder.decode(msg.data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed l2update", str(exc)[:200], data)
            self.sync.lost(conn, native, recv_ns, f"malformed l2update: {str(exc)[:100]}")
            return
        first, last = d.sequenceStart, d.sequenceEnd
        bids = [c for c in d.changes.bids if c[0] != "0"]
        asks = [c for c in d.changes.asks if c[0] != "0"]
        try:
            if d.symbol != native or not (0 < first <= last < 1 << 62) or not (0 <= d.time < 10**14):
                raise ValueError(f"{d.symbol!r} [{first}, {last}] time {d.time!r}")
            self._checker(native).check_sides(bids, asks)
        except BOOK_ERRORS as exc:
            self.bad_input("malformed l2update", str(exc)[:200], data)
            self.sync.lost(conn, native, recv_ns, f"malformed l2update: {str(exc)[:100]}")
            return
        self.sync.diff(conn, native, (bids, asks, d.time, first), first, last, 0, data, recv_ns)

    def _request(self, conn: Connection, native: str) -> None:
        conn.fetch(self._snapshot_url(native, self.partial))

    def _snapshot_url(self, native: str, partial: bool) -> str:
        path = self.partial_snapshot if partial else self.rest_endpoint.routes.snapshot
        return self.rest_endpoint.url(path, symbol=native)

    def _apply(self, native: str, diff: tuple, data: bytes | None, recv_ns: int) -> bool:
        bids, asks, event_ms, first = diff
        st = self.sync.markets[native]
        book_id = st.last
        if first <= book_id:  # an update straddling the book: only its changes after it apply
            try:
                bids = [c for c in bids if _seq(c[2]) > book_id]
                asks = [c for c in asks if _seq(c[2]) > book_id]
            except ValueError as exc:
                self.book_failed(st.conn, native, "malformed l2update", str(exc), data or b"", recv_ns)
                return False
        horizon = self.horizon.get(native)
        if horizon is not None:
            floor, ceiling = horizon
            if floor is not None:
                bids = [c for c in bids if float(c[0]) >= floor]
            if ceiling is not None:
                asks = [c for c in asks if float(c[0]) <= ceiling]
        book = self.books[native]
        event_ms = event_ms or recv_ns // 1_000_000
        atom_us = recv_ns // 1000
        flags = book.apply_sides(BID, bids, asks, self.rows("lob"), Lob, self.exchange, self._symbols[native],
                                 event_ms, atom_us)
        if flags & CROSSED and self.gap_crossed(st.conn, native, book, recv_ns):
            return False
        if horizon is not None and ((horizon[0] is not None and not book.count(BID)) or (
                horizon[1] is not None and not book.count(ASK))):
            self.resync(st.conn, native, "partial snapshot exhausted", recv_ns)
            return False
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)
        return True

    def on_rest(self, url: str, body: bytes, recv_ns: int) -> None:
        parts = urlsplit(url)
        native = (parse_qs(parts.query).get("symbol") or [""])[0]
        partial = parts.path.endswith(self.partial_snapshot)
        if not native or url != self._snapshot_url(native, partial) or not self.sync.answered(native):
            return  # not ours, not asked for, or no longer wanted
        try:
            snap = m.rest_book_decoder.decode(body)
        except DECODE_ERRORS as exc:
            self._snapshot_failed(native, str(exc), body, recv_ns)
            return
        if snap.code != "200000" or snap.data is None:
            if not partial and not self.partial:
                self.partial = True  # the full book wants a key: the public partial one from now on
                self.sync.unusable(native)
                return
            self._snapshot_failed(native, f"code {snap.code!r} {snap.msg!r}", body, recv_ns)
            return
        d = snap.data
        seq = d.sequence
        if not (seq.isdigit() and seq.isascii() and 0 < len(seq) <= 18) or not (0 <= d.time < 10**14):
            self._snapshot_failed(native, f"sequence {seq!r} time {d.time!r}", body, recv_ns)
            return
        try:
            self._checker(native).check_sides(d.bids, d.asks)
        except BOOK_ERRORS as exc:
            self._snapshot_failed(native, str(exc), body, recv_ns)
            return
        self.sync.snapshot(native, int(seq), (d, partial), body, recv_ns)

    def on_rest_error(self, url: str, exc: Exception, recv_ns: int) -> None:
        """A failed snapshot GET: a refused full book turns to the partial one at once; anything
        else is asked again (after the retry delay) on the book's next update."""
        parts = urlsplit(url)
        native = (parse_qs(parts.query).get("symbol") or [""])[0]
        st = self.sync.markets.get(native)
        if st is None or not st.pending:
            return
        partial = parts.path.endswith(self.partial_snapshot)
        if url != self._snapshot_url(native, partial):
            return
        if not partial and getattr(exc, "status", 0) in _REFUSED:
            self.partial = True
            self.sync.unusable(native)
            return
        self.sync.request_failed(native, recv_ns)

    def _load(self, native: str, snap: tuple, body: bytes, recv_ns: int) -> bool:
        d, partial = snap
        event_ms = d.time or recv_ns // 1_000_000
        atom_us = recv_ns // 1000
        book = self.begin_snapshot(native, recv_ns, event_ms)
        book.apply_sides(BID, d.bids, d.asks, self.rows("lob"), Lob, self.exchange, self._symbols[native], event_ms,
                         atom_us)
        if partial:
            floor = float(d.bids[-1][0]) if len(d.bids) >= PARTIAL_DEPTH else None
            ceiling = float(d.asks[-1][0]) if len(d.asks) >= PARTIAL_DEPTH else None
            if floor is not None or ceiling is not None:
                self.horizon[native] = (floor, ceiling)
            else:
                self.horizon.pop(native, None)
        else:
            self.horizon.pop(native, None)
        if self.resync_crossed(self.sync.markets[native].conn, native, book, recv_ns, b""):
            return False
        self.emit_spread(native, book, event_ms, atom_us)
        return True

    # --- trades, ticker, candles ----------------------------------------------------------------
    def _on_match(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        native = self._topic_market(msg, data)
        if not native:
            return
        try:
            t = m.match_decoder.decode(msg.data)
            event_ms = ns_to_ms(t.time)
        except (*DECODE_ERRORS, ValueError) as exc:
            self.bad_input("malformed trade", str(exc)[:200], data)
            return
        self._trade(native, t.price, t.size, t.side, t.tradeId, t.makerOrderId, t.takerOrderId, event_ms, data,
                    recv_ns)

    def _on_ticker(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        native = self._topic_market(msg, data)
        if not native:
            return
        try:
            t = m.spot_ticker_decoder.decode(msg.data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed ticker", str(exc)[:200], data)
            return
        if not _plain(t.bestBid, t.bestBidSize, t.bestAsk, t.bestAskSize) or not ms_ok(t.time):
            self.bad_input("malformed ticker", f"{t.bestBid!r} {t.bestBidSize!r} {t.bestAsk!r} {t.bestAskSize!r}", data)
            return
        # a value of 1e15 or more (no market's) is refused by the writer
        if not self.rows("ticker").quote(self.exchange, self._symbols[native], t.bestBid, t.bestBidSize, t.bestAsk,
                                         t.bestAskSize, t.time or recv_ns // 1_000_000, recv_ns // 1000):
            self.bad_input("malformed ticker", repr(tuple(map(float, (t.bestBid, t.bestBidSize, t.bestAsk,
                                                                       t.bestAskSize)))), data)

    def _on_candle(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        topic_market, _, interval = msg.topic.rpartition(":")[2].rpartition("_")
        if interval != "1min":
            self.bad_input("unknown candle interval", repr(msg.topic)[:100], data)
            return
        if not self.known(topic_market, data):
            return
        try:
            c = m.spot_candle_decoder.decode(msg.data)
            event_ms = ns_to_ms(c.time) if c.time else 0
        except (*DECODE_ERRORS, ValueError) as exc:
            self.bad_input("malformed candle", str(exc)[:200], data)
            return
        self._candle(topic_market, c.candles, event_ms, data, recv_ns)


#: the open-interest "channel": a REST poll, not a topic (nothing is subscribed for it)
OPEN_INTEREST = "/api/v1/contracts"
_FUTURES_SIDES = {"buy": BID, "sell": ASK}


class KucoinFuturesScheme(_KucoinBase):
    exchange = "kucoin-futures"
    websocket_endpoints = (WebsocketEndpoint("wss://ws-api-futures.kucoin.com/"),)
    rest_endpoint = RestEndpoint("https://api-futures.kucoin.com", Routes(
        instruments="/api/v1/contracts/active", snapshot="/api/v1/level2/snapshot", open_interest=OPEN_INTEREST))
    channels = {"lob": "/contractMarket/level2", "trades": "/contractMarket/execution",
                "trades_l3": "/contractMarket/execution", "ticker": "/contractMarket/tickerV2",
                "candle": "/contractMarket/limitCandle", "funding_rate": "/contract/instrument",
                "open_interest": OPEN_INTEREST}
    default_channels = ("lob", "trades", "ticker")
    default_symbols = ("BTC-USDT-PERP", "ETH-USDT-PERP")
    _single = ("/contractMarket/limitCandle",)
    open_interest_interval: ClassVar[float] = 30.0
    timer_interval = 1.0
    dispatch = Dispatch({"level2": "_on_l2", "match": "_on_match", "tickerV2": "_on_ticker",
                         "candle.stick": "_on_candle", "funding.rate": "_on_funding",
                         "mark.index.price": "_on_mark", "": "_on_control"},
                        decoder=m.envelope_decoder, field="subject", lead=b"{", fallback="_on_other")

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        self.sync = BookSync(self, Sequenced("sequence", reason="sequence {first} != previous {book} + 1"),
                             self._request, self._apply, self._load, max_buffer=100_000,
                             overflow="snapshot buffer overflow")
        #: native -> the last mark price (``mark.index.price``), published with the funding rate
        self.marks: dict[str, float] = {}
        #: conn.id -> (conn, natives) polled for open interest
        self._oi: dict[int, tuple[Connection, list[str]]] = {}
        self._oi_next = 0.0

    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_contracts(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_contract(native)

    # --- subscriptions, the open-interest poll ----------------------------------------------------
    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        if channel == OPEN_INTEREST:
            return []  # a REST poll (``on_open``, ``on_timer``)
        return super().subscribe_messages(channel, natives)

    def on_open(self, conn: Connection, recv_ns: int) -> None:
        super().on_open(conn, recv_ns)
        oi = [n for channel, natives in conn.plan.subscriptions if channel == OPEN_INTEREST for n in natives]
        if oi:
            self._oi[conn.id] = (conn, oi)
            self._poll_open_interest(conn, oi)
            self._oi_next = max(self._oi_next, time.monotonic() + self.open_interest_interval)

    def on_close(self, conn: Connection, reason: str, recv_ns: int) -> None:
        self._oi.pop(conn.id, None)
        super().on_close(conn, reason, recv_ns)

    def on_timer(self, conns, now_ns: int) -> None:
        """Every ``open_interest_interval`` s, each open connection polls its markets' OI."""
        if not self._oi:
            return
        now = time.monotonic()
        if now < self._oi_next:
            return
        for conn in conns:
            entry = self._oi.get(conn.id)
            if entry is not None and entry[0] is conn:
                self._poll_open_interest(conn, entry[1])
        self._oi_next = now + self.open_interest_interval

    def _poll_open_interest(self, conn: Connection, natives: list[str]) -> None:
        for native in natives:
            conn.fetch(self._oi_url(native))

    def _oi_url(self, native: str) -> str:
        return f"{self.rest_url}{OPEN_INTEREST}/{native}"

    # --- lob --------------------------------------------------------------------------------------
    def _on_l2(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        native = self._topic_market(msg, data)
        if not native:
            return
        try:
            d = m.futures_l2_decoder.decode(msg.data)
            price, side_text, size = d.change.split(",")
            side = _FUTURES_SIDES[side_text]
            if not (0 < d.sequence < 1 << 62) or not ms_ok(d.timestamp) or price == "0":
                raise ValueError(f"sequence {d.sequence!r} timestamp {d.timestamp!r} price {price!r}")
            self._checker(native).check_sides([(price, size)])
        except (*DECODE_ERRORS, *BOOK_ERRORS, KeyError) as exc:
            self.bad_input("malformed level2", str(exc)[:200], data)
            self.sync.lost(conn, native, recv_ns, f"malformed level2: {str(exc)[:100]}")
            return
        seq = d.sequence
        self.sync.diff(conn, native, (side, price, size, d.timestamp), seq, seq, 0, data, recv_ns)

    def _request(self, conn: Connection, native: str) -> None:
        conn.fetch(self._snapshot_url(native))

    def _snapshot_url(self, native: str) -> str:
        return self.rest_endpoint.url(self.rest_endpoint.routes.snapshot, symbol=native)

    def _apply(self, native: str, diff: tuple, data: bytes | None, recv_ns: int) -> bool:
        side, price, size, event_ms = diff
        book = self.books[native]
        event_ms = event_ms or recv_ns // 1_000_000
        atom_us = recv_ns // 1000
        flags = book.apply_sides(side, [(price, size)], None, self.rows("lob"), Lob, self.exchange,
                                 self._symbols[native], event_ms, atom_us)
        if flags & CROSSED and self.gap_crossed(self.sync.markets[native].conn, native, book, recv_ns):
            return False
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)
        return True

    def on_rest(self, url: str, body: bytes, recv_ns: int) -> None:
        parts = urlsplit(url)
        if parts.path.startswith(OPEN_INTEREST + "/") and not parts.query:
            if parts.path != self.instruments_path:  # (a listing a replay hands over: not an answer)
                self._on_open_interest(parts.path[len(OPEN_INTEREST) + 1:], body, recv_ns)
            return
        native = (parse_qs(parts.query).get("symbol") or [""])[0]
        if not native or url != self._snapshot_url(native) or not self.sync.answered(native):
            return  # not ours, not asked for, or no longer wanted
        try:
            snap = m.futures_rest_book_decoder.decode(body)
            d = snap.data
            if snap.code != "200000" or d is None:
                raise ValueError(f"code {snap.code!r} {snap.msg[:100]!r}")
            if not (0 < d.sequence < 1 << 62) or not (0 <= d.ts < 10**19):
                raise ValueError(f"sequence {d.sequence!r} ts {d.ts!r}")
            bids = [(number_text(p), number_text(q)) for p, q in d.bids]
            asks = [(number_text(p), number_text(q)) for p, q in d.asks]
            self._checker(native).check_sides(bids, asks)
        except (*DECODE_ERRORS, *BOOK_ERRORS) as exc:
            self._snapshot_failed(native, str(exc), body, recv_ns)
            return
        self.sync.snapshot(native, d.sequence, (bids, asks, d.ts // 1_000_000), body, recv_ns)

    def on_rest_error(self, url: str, exc: Exception, recv_ns: int) -> None:
        """A failed snapshot GET: asked again (after the retry delay) on the book's next update."""
        native = (parse_qs(urlsplit(url).query).get("symbol") or [""])[0]
        st = self.sync.markets.get(native)
        if st is not None and st.pending and url == self._snapshot_url(native):
            self.sync.request_failed(native, recv_ns)

    def _load(self, native: str, snap: tuple, body: bytes, recv_ns: int) -> bool:
        bids, asks, event_ms = snap
        event_ms = event_ms or recv_ns // 1_000_000
        atom_us = recv_ns // 1000
        book = self.begin_snapshot(native, recv_ns, event_ms)
        book.apply_sides(BID, bids, asks, self.rows("lob"), Lob, self.exchange, self._symbols[native], event_ms,
                         atom_us)
        if self.resync_crossed(self.sync.markets[native].conn, native, book, recv_ns, b""):
            return False
        self.emit_spread(native, book, event_ms, atom_us)
        return True

    # --- trades, ticker, candles, funding, open interest -------------------------------------------
    def _on_match(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        native = self._topic_market(msg, data)
        if not native:
            return
        try:
            t = m.execution_decoder.decode(msg.data)
            event_ms = ns_to_ms(t.ts)
            size = number_text(t.size)
        except (*DECODE_ERRORS, ValueError) as exc:
            self.bad_input("malformed trade", str(exc)[:200], data)
            return
        if t.symbol != native:
            self.bad_input("malformed trade", f"symbol {t.symbol!r} on {msg.topic!r}"[:200], data)
            return
        self._trade(native, t.price, size, t.side, t.tradeId, t.makerOrderId, t.takerOrderId, event_ms, data,
                    recv_ns)

    def _on_ticker(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        native = self._topic_market(msg, data)
        if not native:
            return
        try:
            t = m.ticker_v2_decoder.decode(msg.data)
            event_ms = ns_to_ms(t.ts)
            # the texts as sent (a number as written), for the writer
            values = (number_text(t.bestBidPrice), number_text(t.bestBidSize), number_text(t.bestAskPrice),
                      number_text(t.bestAskSize))
        except (*DECODE_ERRORS, ValueError) as exc:
            self.bad_input("malformed ticker", str(exc)[:200], data)
            return
        # a value of 1e15 or more (no market's) is refused by the writer
        if not self.rows("ticker").quote(self.exchange, self._symbols[native], *values,
                                         event_ms or recv_ns // 1_000_000, recv_ns // 1000):
            self.bad_input("malformed ticker", repr(tuple(map(float, values))), data)

    def _on_candle(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        topic_market, _, interval = msg.topic.rpartition(":")[2].rpartition("_")
        if interval != "1min":
            self.bad_input("unknown candle interval", repr(msg.topic)[:100], data)
            return
        if not self.known(topic_market, data):
            return
        try:
            c = m.futures_candle_decoder.decode(msg.data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed candle", str(exc)[:200], data)
            return
        if len(c.candles) < 7:
            self.bad_input("malformed candle", repr(c.candles)[:200], data)
            return
        # [start, open, close, high, low, volume (wrong, says the venue), amount]: the amount's
        # place holds the volume the candle is published with
        self._candle(topic_market, c.candles[:5] + c.candles[6:7], c.time, data, recv_ns)

    def _on_funding(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        native = self._topic_market(msg, data)
        if not native:
            return
        try:
            f = m.funding_decoder.decode(msg.data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed funding.rate", str(exc)[:200], data)
            return
        rate = f.fundingRate
        if not (-1.0 < rate < 1.0) or not ms_ok(f.timestamp):
            self.bad_input("malformed funding.rate", f"{rate!r} {f.timestamp!r}", data)
            return
        predicted = rate if f.granularity == 60000 else 0.0
        self.emit("funding_rate", FundingRate(self.exchange, self._symbols[native], self.marks.get(native, 0.0), rate,
                                              0, predicted, f.timestamp or recv_ns // 1_000_000, recv_ns // 1000))

    def _on_mark(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        native = self._topic_market(msg, data)
        if not native:
            return
        try:
            mark = m.mark_decoder.decode(msg.data).markPrice
        except DECODE_ERRORS as exc:
            self.bad_input("malformed mark.index.price", str(exc)[:200], data)
            return
        if not (ok_float(mark) and mark > 0.0):
            self.bad_input("malformed mark.index.price", repr(mark), data)
            return
        self.marks[native] = mark

    def _on_open_interest(self, native: str, body: bytes, recv_ns: int) -> None:
        if native not in self._symbols and not self.known(native, body):
            return
        try:
            ans = m.one_contract_decoder.decode(body)
            if ans.code != "200000" or ans.data is None or ans.data.symbol != native:
                raise ValueError(f"code {ans.code!r}")
            oi = float(number_text(ans.data.openInterest))
        except (*DECODE_ERRORS, ValueError) as exc:
            self.bad_input("malformed openInterest", str(exc)[:200], body)
            return
        if not ok_float(oi):
            self.bad_input("malformed openInterest", repr(oi), body)
            return
        self.emit("open_interest", OpenInterest(self.exchange, self._symbols[native], oi, recv_ns // 1_000_000,
                                                recv_ns // 1000))
