"""Bitget v2 public websocket: ``BitgetScheme`` (spot, ``--exchange bitget``) and
``BitgetFuturesScheme`` (USDT-M futures, ``--exchange bitget-futures``).

Endpoint (https://www.bitget.com/api-doc/common/websocket-intro): ``wss://ws.bitget.com/v2/ws/public``
for both; a subscription names ``instType`` (``SPOT`` / ``USDT-FUTURES``), ``channel`` and
``instId``: ``{"op": "subscribe", "args": [{"instType": "SPOT", "channel": "books", "instId":
"BTCUSDT"}]}``. Keep-alive: the client sends the text ``ping`` every 30 s and gets ``pong``; the
server closes a connection that sent no ``ping`` for 2 minutes. At most 10 messages a second are
accepted from the client and the docs advise fewer than 50 channels a connection
(``subscriptions_per_connection`` = 50; one subscribe request per connection, 50 args).

Channel map (atomfast topic -> Bitget channel):

==============  ================  ============================================================
topic           channel           published from
==============  ================  ============================================================
lob (+spread)   ``books``         the whole book (``snapshot``), then changes (``update``)
trades          ``trade``         ``side`` is the taker's; the ``snapshot`` on subscription
                                  (recent trades) only where newer than the last one published
ticker          ``ticker``        ``bidPr``/``bidSz``/``askPr``/``askSz``
funding_rate    ``ticker``        futures: ``fundingRate``, ``nextFundingTime``, ``markPrice``
open_interest   ``ticker``        futures: ``holdingAmount`` (base coin)
candle          ``candle1m``      ``[start, o, h, l, c, base vol, ...]``; Bitget says no bar is
                                  final (``closed`` False) and gives no trade count (0)
==============  ================  ============================================================

Books (spot ".../spot/websocket/public/Depth-Channel", futures
".../contract/websocket/public/Order-Book-Channel"): after a subscription ``books`` sends the
whole book (``action: snapshot``), then changes (``update``; size 0 removes a level). A snapshot
always replaces the book (status ``snapshot``, its levels). Verification, per message:

* ``checksum``: the signed CRC32 of the top 25 levels, bids and asks interleaved
  ``bid1price:bid1size:ask1price:ask1size:...``, a side that runs out left out, prices and sizes
  as sent ("0.5000" is not "0.5"). This is exactly OKX's string: the compiled
  ``L2Book.checksum_okx`` computes it (the docs' two worked examples are in the tests). Checked
  after every ``update`` (Bitget sends one on every change, on a level-free one too); a
  ``snapshot`` carries 0 (real pushes and the docs' examples), checked where it is not 0. An
  update without a ``checksum`` is refused (resync). A mismatch: ``metrics.checksum_failed`` + 1,
  status ``resync`` with ``checksum mismatch: exchange X, book Y``.
* ``seq``/``pseq`` where given: the docs (v2) give ``seq`` "increasing when the order book is
  updated" ("incrementing except during symbol maintenance"), not contiguous: an update's ``seq``
  must be above the previous message's; where a push also gives ``pseq`` (the seq it follows),
  ``pseq`` must equal the previous message's ``seq``. A repeated or reordered message (and, with
  ``pseq``, a lost one) is a gap: ``metrics.gaps`` + 1, status ``resync`` with ``sequence gap:
  ...``. A lost message without ``pseq`` is caught by the checksum.

On either failure the book is dropped, its ``books`` subscription unsubscribed and subscribed
again (the answer is a fresh snapshot); updates until then are dropped. An update before any
snapshot, or a malformed book message, resyncs too.
"""
from __future__ import annotations

from typing import Sequence

import msgspec

from ...book import BID
from ...events import BUY, SELL, Candle, FundingRate, Lob, OpenInterest
from ...scheme import (BOOK_ERRORS, DECODE_ERRORS, TOP_CHANGED, Connection, ConnectionPlan, Dispatch,
                       Instrument, RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from .._common import is_plain
from . import messages as m
from .parse import guess_perp, guess_spot, ms_of, number, optional, parse_contracts, parse_spot, seq_of, signed

_CHANNEL = b'"channel":"'
_EVENT = b'"event":"'
_ROUTES = {b"books": b"books", b"trade": b"trade", b"ticker": b"ticker", b"candle1m": b"candle1m"}
_WHAT = {"books": "malformed book message", "trade": "malformed trade", "ticker": "malformed ticker",
         "candle1m": "malformed candle"}
_SIDES = {"buy": BUY, "sell": SELL}
_MINUTE = 60_000


def _snapshot_order(trade: tuple) -> tuple:
    """A snapshot's trades in the order they are published: by time, then price, size, side, id
    (as the values; ``trade``: ``(ts, tradeId, item)``)."""
    ts, tid, t = trade
    return ts, float(t.price), float(t.size), t.side, tid


class _BitgetBase(Scheme):
    """What spot and futures share: requests, pings, events, the books, trades, tickers, candles."""

    #: the ``instType`` of the scheme's markets
    inst_type = "SPOT"
    websocket_endpoints = (WebsocketEndpoint("wss://ws.bitget.com/v2/ws/public"),)
    channels = {"lob": "books", "trades": "trade", "ticker": "ticker", "candle": "candle1m"}
    default_channels = ("lob", "trades", "ticker", "candle")
    #: args in one subscribe request (the docs advise fewer than 50 channels a connection)
    args_per_message = 50
    symbols_per_message = 50
    subscriptions_per_connection = 50
    ping_interval = 30.0
    silence_timeout = 65.0
    unknown_market = "unknown symbol"

    dispatch = Dispatch({b"books": "_on_book", b"trade": "_on_trades", b"ticker": "_on_tickers",
                         b"candle1m": "_on_candles", b"event": "_on_event"},
                        prefilter="_route",
                        decoders={b"books": m.book_decoder, b"trade": m.trade_decoder, b"ticker": m.ticker_decoder,
                                  b"candle1m": m.candle_decoder, b"event": m.event_decoder},
                        fallback="_on_other", refused="_on_refused")

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        #: instId -> ``seq`` of the last book message applied (None: the push gave none)
        self.seqs: dict[str, int | None] = {}
        #: instId -> (ts, tradeId) of the newest trade published (a resent snapshot's older ones
        #: are not published again)
        self.last_trade: dict[str, tuple[int, str]] = {}
        names = set(self.channel_names)
        self._want_ticker = "ticker" in names
        self._want_funding = "funding_rate" in names
        self._want_oi = "open_interest" in names

    # --- subscriptions ------------------------------------------------------------------------
    def args(self, channel: str, natives: list[str]) -> list[dict]:
        return [{"instType": self.inst_type, "channel": channel, "instId": n} for n in natives]

    def _requests(self, op: str, args: list[dict]) -> list[str | bytes]:
        unique = list({(a["channel"], a["instId"]): a for a in args}.values())
        step = self.args_per_message
        return [m.encode({"op": op, "args": unique[i:i + step]}).decode() for i in range(0, len(unique), step)]

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        return self._requests("subscribe", self.args(channel, natives))

    def subscribe_plan(self, plan: ConnectionPlan) -> list[str | bytes]:
        """Every channel of the connection in requests of ``args_per_message`` args."""
        return self._requests("subscribe", [a for channel, natives in plan.subscriptions
                                            for a in self.args(channel, natives)])

    def ping_message(self) -> str:
        return "ping"

    def resubscribe(self, conn: Connection, native: str, book: str = "lob") -> None:
        """A fresh snapshot of one book: its ``books`` channel unsubscribed and subscribed again."""
        arg = self.args("books", [native])
        conn.send(m.encode({"op": "unsubscribe", "args": arg}).decode())
        conn.send(m.encode({"op": "subscribe", "args": arg}).decode())

    # --- frames -------------------------------------------------------------------------------
    @staticmethod
    def _route(conn: Connection, data: bytes) -> bytes | None:
        """The route of a frame, read on its bytes: ``event`` for an answer to an operation, else
        its channel; None where there is none (``pong``, garbage)."""
        if data[:1] != b"{":
            return None
        i = data.find(_CHANNEL, 0, 200)
        e = data.find(_EVENT, 0, i if i > 0 else 200)
        if e >= 0:
            return b"event"
        if i < 0:
            return None
        i += 11
        j = data.find(b'"', i, i + 40)
        if j < 0:
            return None
        return _ROUTES.get(data[i:j])

    def _on_other(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """No route: the heartbeat answer, or bad input."""
        if data == b"pong":
            return
        if self.decode_unrouted(data, m.head_decoder) is not None:
            self.bad_input("unknown message", "no channel this scheme reads", data)

    def _on_refused(self, conn: Connection, data: bytes, recv_ns: int, exc: Exception) -> None:
        """A push its channel's decoder refused: counted; a book's resyncs (the message is lost to
        its sequence)."""
        try:
            head = m.head_decoder.decode(data)
        except DECODE_ERRORS:
            self.bad_input("malformed JSON" if not isinstance(exc, msgspec.ValidationError) else "unknown message",
                           str(exc), data)
            return
        arg = head.arg
        if arg is None:
            self.bad_input("unknown message", str(exc), data)
            return
        what = _WHAT.get(arg.channel, "unknown message")
        if arg.channel == "books" and arg.instId in self.books:
            self.book_failed(conn, arg.instId, what, str(exc), data, recv_ns)
            return
        self.bad_input(what, str(exc), data)

    def _on_event(self, conn: Connection, ev: m.Event, data: bytes, recv_ns: int) -> None:
        kind = ev.event
        if kind in ("subscribe", "unsubscribe"):
            arg = ev.arg
            if kind == "subscribe" and arg is not None and arg.instId and self.known(arg.instId, data):
                self.status(self._symbols[arg.instId], "subscribed", arg.channel, recv_ns)
            return
        if kind == "error":
            detail = f"{ev.code} {ev.msg}"[:500]
            self.bad_input("subscription error", detail, data)
            self.status("", "stopped", detail, recv_ns)
            return
        self.bad_input("unknown message", f"event {kind!r}", data)

    def _mine(self, arg: m.Arg, what: str, data: bytes) -> bool:
        """Whether a push is of this scheme's product line and names a market."""
        if arg.instType.upper() != self.inst_type:
            self.bad_input(what, f"instType {arg.instType!r}", data)
            return False
        return self.known(arg.instId, data)

    # --- books --------------------------------------------------------------------------------
    def _on_book(self, conn: Connection, msg: m.BookMsg, data: bytes, recv_ns: int) -> None:
        native = msg.arg.instId
        if not self._mine(msg.arg, "malformed book message", data):
            return
        action = msg.action
        if action not in ("snapshot", "update") or len(msg.data) != 1:
            detail = f"action {action!r} with {len(msg.data)} data"
            if native in self.books:
                self.book_failed(conn, native, "malformed book message", detail, data, recv_ns)
            else:
                self.bad_input("malformed book message", detail, data)
            return
        d = msg.data[0]
        event_ms = ms_of(d.ts)
        try:
            seq, pseq = seq_of(d.seq), seq_of(d.pseq)
        except ValueError as exc:
            self.book_failed(conn, native, f"malformed book {action}", str(exc), data, recv_ns)
            return
        if action == "snapshot":
            self._snapshot(conn, native, d, seq, event_ms, data, recv_ns)
            return
        if native in self.unsynced:
            return  # waiting for the snapshot our resubscription brings
        book = self.books.get(native)
        if book is None:
            self.resync(conn, native, "book update before its snapshot", recv_ns)
            return
        if event_ms < 0 or d.checksum is None:
            self.book_failed(conn, native, "malformed book update",
                             f"ts {d.ts!r}" if event_ms < 0 else "no checksum", data, recv_ns)
            return
        last = self.seqs.get(native)
        if pseq is not None and last is not None and pseq != last:
            self.gap(conn, native, f"pseq {pseq} != previous seq {last}", recv_ns, kind="sequence gap")
            return
        if seq is not None and last is not None and seq <= last:
            self.gap(conn, native, f"seq {seq} not above previous seq {last}", recv_ns, kind="sequence gap")
            return
        atom_us = recv_ns // 1000
        try:
            flags = book.apply_sides(BID, d.bids, d.asks, self.rows("lob"), Lob, self.exchange, self._symbols[native],
                                     event_ms, atom_us)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "malformed book update", str(exc), data, recv_ns)
            return
        self.seqs[native] = seq
        if not self.verify_checksum(conn, native, d.checksum, book.checksum_okx(), recv_ns):
            return
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)

    def _snapshot(self, conn: Connection, native: str, d: m.BookData, seq: int | None, event_ms: int, data: bytes,
                  recv_ns: int) -> None:
        if event_ms < 0:
            self.book_failed(conn, native, "malformed book snapshot", f"ts {d.ts!r}", data, recv_ns)
            return
        if not self.check_snapshot(conn, native, d.bids, d.asks, data, recv_ns):
            return
        atom_us = recv_ns // 1000
        book = self.begin_snapshot(native, recv_ns, event_ms)
        flags = book.apply_sides(BID, d.bids, d.asks, self.rows("lob"), Lob, self.exchange, self._symbols[native],
                                 event_ms, atom_us)
        self.seqs[native] = seq
        if d.checksum and not self.verify_checksum(conn, native, d.checksum, book.checksum_okx(), recv_ns):
            return
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)

    # --- trades, tickers, candles -------------------------------------------------------------
    def _on_trades(self, conn: Connection, msg: m.TradeMsg, data: bytes, recv_ns: int) -> None:
        # the whole message checked before any trade is written: the taker's side, the time, an
        # id, plain decimals (the writer parses them)
        out = []
        try:
            for t in msg.data:
                ts = ms_of(t.ts)
                if t.side not in _SIDES or ts < 0 or not t.tradeId or t.tradeId.__class__ is not str:
                    raise ValueError(f"{t.side!r} {t.ts!r} {t.tradeId!r}")
                for x in (t.price, t.size):
                    if not is_plain(x):
                        raise ValueError(f"not a plain number {x!r}")
                out.append((ts, t.tradeId, t))
        except ValueError as exc:
            self.bad_input("malformed trade", str(exc), data)
            return
        native = msg.arg.instId
        if not self._mine(msg.arg, "malformed trade", data):
            return
        symbol = self._symbols[native]
        atom_us = recv_ns // 1000
        last = self.last_trade.get(native)
        if msg.action == "snapshot":
            if last is not None:
                out = [x for x in out if x[:2] > last]
            out.sort(key=_snapshot_order)
        rows, exchange = self.rows("trades"), self.exchange
        for ts, tid, t in out:
            # a price of 0, or a value of 1e15 or more (no market's), is refused by the writer
            if not rows.trade(exchange, symbol, t.price, t.size, t.side == "buy", tid, ts, atom_us):
                self.bad_input("malformed trade", f"{t.price!r} {t.size!r}", data)
                break
            if last is None or (ts, tid) > last:
                last = (ts, tid)
        if last is not None:
            self.last_trade[native] = last

    def _on_tickers(self, conn: Connection, msg: m.TickerMsg, data: bytes, recv_ns: int) -> None:
        # checked whole first (plain decimals, "" for an empty side: 0.0), then written
        out = []
        try:
            for t in msg.data:
                ts = ms_of(t.ts)
                if ts < 0 or t.instId != msg.arg.instId:
                    raise ValueError(f"{t.instId!r} ts {t.ts!r}")
                for x in (t.bidPr, t.bidSz, t.askPr, t.askSz):
                    if x and not is_plain(x):
                        raise ValueError(f"not a plain number {x!r}")
                out.append((t, ts, self._derivatives(t)))
        except ValueError as exc:
            self.bad_input("malformed ticker", str(exc), data)
            return
        if not self._mine(msg.arg, "malformed ticker", data):
            return
        symbol = self._symbols[msg.arg.instId]
        atom_us = recv_ns // 1000
        rows = self.rows("ticker")
        for t, ts, extra in out:
            # a value of 1e15 or more (no market's) is refused by the writer
            if self._want_ticker and not rows.quote(self.exchange, symbol, t.bidPr or 0.0, t.bidSz or 0.0,
                                                    t.askPr or 0.0, t.askSz or 0.0, ts, atom_us):
                self.bad_input("malformed ticker", f"{t.bidPr!r} {t.bidSz!r} {t.askPr!r} {t.askSz!r}", data)
                return
            if extra is not None:
                self._emit_derivatives(symbol, extra, ts, atom_us)

    def _derivatives(self, t: m.TickerItem):
        """What a futures ticker adds (None on spot)."""
        return None

    def _emit_derivatives(self, symbol: str, extra, ts: int, atom_us: int) -> None:
        pass

    def _on_candles(self, conn: Connection, msg: m.CandleMsg, data: bytes, recv_ns: int) -> None:
        out = []
        try:
            for k in msg.data:
                start = ms_of(k[0]) if len(k) >= 6 else -1
                if start < 0 or start + _MINUTE >= 10**14:
                    raise ValueError(f"candle {k[:1]!r} of {len(k)} fields")
                out.append((start, number(k[1]), number(k[2]), number(k[3]), number(k[4]), number(k[5])))
        except ValueError as exc:
            self.bad_input("malformed candle", str(exc), data)
            return
        if not self._mine(msg.arg, "malformed candle", data):
            return
        symbol = self._symbols[msg.arg.instId]
        atom_us = recv_ns // 1000
        event_ms = msg.ts if 0 < msg.ts < 10**14 else atom_us // 1000
        for start, o, h, lo, c, v in out:
            self.emit("candle", Candle(self.exchange, symbol, start, start + _MINUTE, "1m", 0, False, o, h, lo, c, v,
                                       event_ms, atom_us))


class BitgetScheme(_BitgetBase):
    exchange = "bitget"
    inst_type = "SPOT"
    default_symbols = ("BTC-USDT",)
    rest_endpoint = RestEndpoint("https://api.bitget.com", Routes(instruments=("/api/v2/spot/public/symbols",)))

    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_spot(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_spot(native)


class BitgetFuturesScheme(_BitgetBase):
    exchange = "bitget-futures"
    inst_type = "USDT-FUTURES"
    default_symbols = ("BTC-USDT-PERP",)
    rest_endpoint = RestEndpoint("https://api.bitget.com", Routes(
        instruments=("/api/v2/mix/market/contracts?productType=USDT-FUTURES",)))
    channels = {"lob": "books", "trades": "trade", "ticker": "ticker", "candle": "candle1m",
                "funding_rate": "ticker", "open_interest": "ticker"}
    default_channels = ("lob", "trades", "ticker", "candle", "funding_rate", "open_interest")

    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_contracts(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_perp(native)

    def _derivatives(self, t: m.TickerItem):
        """(funding rate, next funding time, mark price) or None, open interest or None."""
        funding = None
        if self._want_funding and t.fundingRate:
            settles = ms_of(t.nextFundingTime)
            if settles < 0:
                raise ValueError(f"nextFundingTime {t.nextFundingTime!r}")
            funding = (signed(t.fundingRate), settles, optional(t.markPrice))
        oi = number(t.holdingAmount) if self._want_oi and t.holdingAmount else None
        return funding, oi

    def _emit_derivatives(self, symbol: str, extra, ts: int, atom_us: int) -> None:
        funding, oi = extra
        if funding is not None:
            rate, settles, mark = funding
            self.emit("funding_rate", FundingRate(self.exchange, symbol, mark, rate, settles, 0.0, ts, atom_us))
        if oi is not None:
            self.emit("open_interest", OpenInterest(self.exchange, symbol, oi, ts, atom_us))
