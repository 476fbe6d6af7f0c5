"""OKX v5 public websocket, exchange name ``okx``: one scheme for spot, perpetual swaps, dated
futures and options (the instrument id says which: ``parse``).

Endpoints (https://www.okx.com/docs-v5/en/#overview-production-trading-services):
``wss://ws.okx.com:8443/ws/v5/public`` for every channel but the candles, which OKX serves on
``wss://ws.okx.com:8443/ws/v5/business``.

Channel map (atomfast topic -> OKX channel):

==============  ========================  ================================================
topic           OKX channel               markets
==============  ========================  ================================================
lob (+spread)   ``books`` (400 levels)    all
trades          ``trades``                all (``side``: the taker's)
ticker          ``tickers``               all (an empty side: 0.0)
candle          ``candle1m`` (business)   all
funding_rate    ``funding-rate``          perpetuals
open_interest   ``open-interest``         perpetuals, futures, options (``oi``, contracts)
liquidations    ``liquidation-orders``    perpetuals, futures (subscribed per ``instType``:
                                          published for the configured markets)
==============  ========================  ================================================

Books (https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel):
after a subscription OKX sends ``action: snapshot`` (400 levels a side, ``prevSeqId`` -1), then
``update``s every 100 ms (size 0 removes a level). The websocket brings the snapshot: no REST
snapshot is needed. Verification, per message:

* ``seqId``/``prevSeqId``: each update's ``prevSeqId`` must be the previous message's ``seqId``.
  The docs' exceptions hold by that rule: a message with no change (``asks``/``bids`` empty,
  ``seqId`` = ``prevSeqId`` = the last ``seqId``: sent after about 60 s without change) and a
  sequence reset for maintenance (``seqId`` < ``prevSeqId``; the next one goes on from the new
  ``seqId``). Anything else (a lost, repeated or reordered update) is a gap: ``metrics.gaps`` + 1,
  status ``resync`` with the reason ``sequence gap: prevSeqId X != previous seqId Y``, the book
  dropped, its ``books`` subscription unsubscribed and subscribed again (OKX's answer is a fresh
  snapshot); updates until then are dropped.
* ``checksum``: the CRC32 (signed) of the top 25 levels, ``bid:size:ask:size:...`` as sent
  (``L2Book.checksum_okx``), verified after each message where it is not 0. OKX deprecated it: since
  2026-06-23 it is always 0 (notice "OKX Order Book Channels Checksum Field Deprecation",
  2026-05-21) and seqId/prevSeqId is the check; pushes before 2022 carry the checksum alone (no
  ``seqId``). A mismatch: ``metrics.checksum_failed`` + 1, status ``resync`` with the reason
  ``checksum mismatch: exchange X, book Y``, the book reloaded. An update with neither a
  ``seqId`` nor a checksum cannot be verified and is refused.

The levels are decoded as JSON text (``msgspec.Raw``) and read by the market's book
(``L2Book.check_json_lists``, then ``apply_json_sides``): no list or str per level. A push whose
levels are not of the shape a ``list[list[str]]`` decoder takes is decoded whole with its levels
(``m.book_lists_decoder``) and refused as that decoder refuses it; numbers the book does not take
as text go through ``apply_sides``, which says why.

A snapshot always replaces the book (status ``snapshot``, the levels). An update before any
snapshot, or a malformed book message, resyncs too. OKX says the best ask may be below the best
bid during a pre-open auction: a crossed book is not an error.

Funding (``funding-rate``): ``funding_rate`` = ``fundingRate``, ``next_funding_time`` =
``fundingTime`` (when that rate settles), ``predicted_rate`` = ``nextFundingRate`` (0.0 where
"", as OKX sends it now), ``mark_price`` 0.0 (not in the channel). Liquidations
(``liquidation-orders``): ``side`` is the liquidation order's side as OKX gives it (``buy``
closes a short), ``price`` = ``bkPx``, ``size`` = ``sz`` (contracts). Candles: ``trades`` 0 (OKX
gives no count), ``end`` = start + the bar, ``closed`` = ``confirm`` "1", ``v`` = ``vol``;
no exchange time: ``event_timestamp`` is the receive time.

Keep-alive and limits (https://www.okx.com/docs-v5/en/#overview-websocket-overview): OKX closes a
connection silent for 30 s; the client sends the text ``ping`` (answer ``pong``) every 20 s.
The docs recommend fewer than 30 400-level book channels a connection:
``subscriptions_per_connection`` = 30 (channel, market) pairs; at most 100 args a request
(a request must stay under 64 KB).
"""
from __future__ import annotations

from typing import Sequence

import msgspec

from ..._book import json_level_lists
from ...book import BID, CHECKSUM_NONE, CHECKSUM_OKX, UPDATE_NOT_APPLIED, UPDATE_OK
from ...events import Candle, FundingRate, Liquidation, Lob, OpenInterest, Spread
from ...kit.chain import Chain
from ...scheme import (BOOK_ERRORS, DECODE_ERRORS, TOP_CHANGED, Connection, ConnectionPlan, Dispatch,
                       Instrument, RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from .._common import is_plain
from . import messages as m
from .parse import inst_type, ms_text, name_instrument, number, parse_listing, signed

_LISTING = "/api/v5/public/instruments?instType="
_CHANNEL = b'"channel":"'
_EVENT = b'"event":"'
#: how a push starts (its channel's name at byte 19): ``{"arg":{"channel":"books",...``
_PUSH = b'{"arg":{"channel":"'
_ROUTES = {b"books": b"books", b"trades": b"trades", b"tickers": b"tickers", b"funding-rate": b"funding-rate",
           b"open-interest": b"open-interest", b"liquidation-orders": b"liquidation-orders"}
_WHAT = {"books": "malformed book message", "trades": "malformed trade", "tickers": "malformed ticker",
         "funding-rate": "malformed funding rate", "open-interest": "malformed open interest",
         "liquidation-orders": "malformed liquidation"}
_SIDES = ("buy", "sell")
#: a candle bar's unit -> (our unit, ms)
_BAR_UNITS = {"s": ("s", 1000), "m": ("m", 60_000), "H": ("h", 3_600_000), "D": ("d", 86_400_000),
              "W": ("w", 604_800_000)}
#: the instrument types whose liquidations OKX publishes with a side, price and size
_LIQUIDATED = ("SWAP", "FUTURES")


def bar_of(channel: str) -> tuple[str, int] | None:
    """``candle1m`` -> (``1m``, 60000); ``candle4H`` -> (``4h``, ...); ``candle1Dutc`` -> (``1d``,
    ...); None for what is not a fixed-length bar (``candle1M``, a month)."""
    bar = channel[6:] if channel.startswith("candle") else ""
    if bar.endswith("utc"):
        bar = bar[:-3]
    unit = _BAR_UNITS.get(bar[-1:])
    count = bar[:-1]
    if unit is None or not (count.isdigit() and count.isascii() and 0 < len(count) <= 3) or not int(count):
        return None
    return f"{int(count)}{unit[0]}", int(count) * unit[1]


class OkxScheme(Scheme):
    exchange = "okx"
    default_symbols = ("BTC-USDT", "BTC-USDT-PERP")
    websocket_endpoints = (WebsocketEndpoint("wss://ws.okx.com:8443/ws/v5/public"),
                           WebsocketEndpoint("wss://ws.okx.com:8443/ws/v5/business", channels=("candle",)))
    rest_endpoint = RestEndpoint("https://www.okx.com", Routes(instruments=(
        _LISTING + "SPOT", _LISTING + "SWAP", _LISTING + "FUTURES", _LISTING + "OPTION&uly=BTC-USD",
        _LISTING + "OPTION&uly=ETH-USD")))
    channels = {"lob": "books", "trades": "trades", "ticker": "tickers", "candle": "candle1m",
                "funding_rate": "funding-rate", "open_interest": "open-interest", "liquidations": "liquidation-orders"}
    default_channels = ("lob", "trades", "ticker", "candle", "funding_rate", "open_interest", "liquidations")
    #: args in one subscribe request
    args_per_message = 100
    symbols_per_message = 100
    subscriptions_per_connection = 30
    ping_interval = 20.0
    silence_timeout = 30.0
    unknown_market = "unknown instrument"

    dispatch = Dispatch({b"books": "_on_book", b"trades": "_on_trades", b"tickers": "_on_tickers",
                         b"candle": "_on_candles", b"funding-rate": "_on_funding",
                         b"open-interest": "_on_open_interest",
                         b"liquidation-orders": "_on_liquidations", b"event": "_on_event"},
                        prefilter="_route",
                        decoders={b"books": m.book_decoder, b"trades": m.trade_decoder, b"tickers": m.ticker_decoder,
                                  b"candle": m.candle_decoder, b"funding-rate": m.funding_decoder,
                                  b"open-interest": m.open_interest_decoder,
                                  b"liquidation-orders": m.liquidation_decoder, b"event": m.event_decoder},
                        fallback="_on_other", refused="_on_refused")

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        #: each update's ``prevSeqId`` must be the ``seqId`` of the last book message applied
        self.chain = Chain(self, linked=True, reason="prevSeqId {prev} != previous seqId {book}", kind="sequence gap")
        #: instId -> ``seqId`` of the last book message applied (None: the push had none)
        self.seq_ids: dict[str, int | None] = self.chain.ids
        #: the configured markets (natives) liquidations are published for; None: every one
        self._liquidated: set[str] | None = None

    # --- instruments --------------------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_listing(body)

    def guess_instrument(self, native: str) -> Instrument:
        return name_instrument(native)

    # --- subscriptions ------------------------------------------------------------------------
    def plan_natives(self, channel: str, natives: list[str]) -> list[str]:
        if channel == "funding-rate":
            return [n for n in natives if self.instrument(n).kind == "perp"]
        if channel == "open-interest":
            return [n for n in natives if self.instrument(n).kind != "spot"]
        if channel == "liquidation-orders":
            return [n for n in natives if self.instrument(n).kind in ("perp", "future")]
        return natives

    @staticmethod
    def args(channel: str, natives: list[str]) -> list[dict]:
        """The subscription args of ``natives`` on ``channel`` (``liquidation-orders``: one per
        instrument type)."""
        if channel == "liquidation-orders":
            return [{"channel": channel, "instType": t} for t in dict.fromkeys(inst_type(n) for n in natives)]
        return [{"channel": channel, "instId": n} for n in natives]

    def _requests(self, op: str, args: list[dict]) -> list[str | bytes]:
        unique = list({(a["channel"], a.get("instId"), a.get("instType")): a for a in args}.values())
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
        arg = [{"channel": "books", "instId": native}]
        conn.send(m.encode({"op": "unsubscribe", "args": arg}).decode())
        conn.send(m.encode({"op": "subscribe", "args": arg}).decode())

    # --- frames -------------------------------------------------------------------------------
    @staticmethod
    def _route(conn: Connection, data: bytes) -> bytes | None:
        """The route of a frame, read on its bytes: ``event`` for an answer to an operation, else
        its channel (``candle`` for every bar); None where there is none (``pong``, garbage)."""
        if data.startswith(_PUSH):  # a push as OKX writes it: its channel first (no event before it)
            j = data.find(b'"', 19, 59)
            if j < 0:
                return None
            name = data[19:j]
            route = _ROUTES.get(name)
            if route is None and name.startswith(b"candle"):
                return b"candle"
            return route
        if data[:1] != b"{":
            return None
        i = data.find(_CHANNEL, 0, 160)
        e = data.find(_EVENT, 0, i if i > 0 else 160)
        if e >= 0:
            return b"event"
        if i < 0:
            return None
        i += 11
        j = data.find(b'"', i, i + 40)
        if j < 0:
            return None
        name = data[i:j]
        route = _ROUTES.get(name)
        if route is None and name.startswith(b"candle"):
            return b"candle"
        return route

    def _on_other(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """No route: the heartbeat answer, or bad input."""
        if data == b"pong":
            return
        if self.decode_unrouted(data, m.head_decoder) is not None:
            self.bad_input("unknown message", "no channel this scheme reads", data)

    def _on_refused(self, conn: Connection, data: bytes, recv_ns: int, exc: Exception) -> None:
        """A push its channel's decoder refused: counted; a book's resyncs (the message is lost to
        its sequence)."""
        if self._route(conn, data) == b"books":
            exc = self._book_error(data, exc)
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
        channel = arg.channel
        what = _WHAT.get(channel) or ("malformed candle" if channel.startswith("candle") else "unknown message")
        if channel == "books" and arg.instId in self.books:
            self.book_failed(conn, arg.instId, what, str(exc), data, recv_ns)
            return
        self.bad_input(what, str(exc), data)

    def _on_event(self, conn: Connection, ev: m.Event, data: bytes, recv_ns: int) -> None:
        kind = ev.event
        arg = ev.arg
        if kind in ("subscribe", "unsubscribe"):
            if kind == "subscribe" and arg is not None:
                native = arg.instId
                if native:
                    if self.known(native, data):
                        self.status(self._symbols[native], "subscribed", arg.channel, recv_ns)
                else:
                    self.status("", "subscribed", f"{arg.channel} {arg.instType}".strip(), recv_ns)
            return
        if kind == "error":
            detail = f"{ev.code} {ev.msg}"[:500]
            self.bad_input("subscription error", detail, data)
            self.status("", "stopped", detail, recv_ns)
            return
        if kind in ("notice", "channel-conn-count"):
            return  # a service upgrade is announced (the connection will be closed); the count of channels
        self.bad_input("unknown message", f"event {kind!r}", data)

    # --- books --------------------------------------------------------------------------------
    @staticmethod
    def _book_error(data: bytes, exc: Exception) -> Exception:
        """What the decoder of a book push with its levels decoded (``m.book_lists_decoder``) says
        is wrong with it: the levels are decoded as text (``msgspec.Raw``), so the error of the
        first decoder may name a later field than the first one amiss."""
        try:
            m.book_lists_decoder.decode(data)
        except DECODE_ERRORS as lists_exc:
            return lists_exc
        return exc

    def _on_book(self, conn: Connection, msg: m.BookMsg, data: bytes, recv_ns: int) -> None:
        # The levels are JSON text. Where the market's book is at hand it reads them now (their
        # shape and numbers, in one pass: kept for its apply_json_sides below); else, or where it
        # does not take them, their shape is checked: what a decoder does not take as
        # list[list[str]] makes the push decoded whole with its levels, as the venue's decoder
        # did (what that decoder refuses is refused here first, before anything else; what it
        # takes goes on with the levels decoded: the book says what is wrong with them).
        native = msg.arg.instId
        book = self.books.get(native)
        text = False
        if book is not None and len(msg.data) == 1:
            d = msg.data[0]
            text = book.check_json_lists(d.bids, d.asks)
        if not text:
            for d in msg.data:
                if not (json_level_lists(d.asks) and json_level_lists(d.bids)):
                    try:
                        msg = m.book_lists_decoder.decode(data)
                    except DECODE_ERRORS as exc:
                        self._on_refused(conn, data, recv_ns, exc)
                        return
                    break
        if msg.arg.channel != "books" or not native:
            self.bad_input("malformed book message", f"arg {msg.arg.channel!r} {native!r}", data)
            return
        if native not in self._symbols and not self.known(native, data):
            return
        action = msg.action
        if action not in ("snapshot", "update") or len(msg.data) != 1:
            if native in self.books:
                self.book_failed(conn, native, "malformed book message",
                                 f"action {action!r} with {len(msg.data)} data", data, recv_ns)
            else:
                self.bad_input("malformed book message", f"action {action!r} with {len(msg.data)} data", data)
            return
        d = msg.data[0]
        event_ms = ms_text(d.ts)
        if action == "snapshot":
            self._snapshot(conn, native, d, event_ms, data, recv_ns, text)
            return
        if native in self.unsynced:
            return  # waiting for the snapshot our resubscription brings
        if book is None:
            self.resync(conn, native, "book update before its snapshot", recv_ns)
            return
        if event_ms < 0:
            self.book_failed(conn, native, "malformed book update", f"ts {d.ts!r}", data, recv_ns)
            return
        seq, prev = d.seqId, d.prevSeqId
        if seq is not None or prev is not None:
            if seq is None or prev is None:
                self.book_failed(conn, native, "malformed book update", f"seqId {seq!r} prevSeqId {prev!r}", data,
                                 recv_ns)
                return
            if not self.chain.follows(conn, native, seq, seq, prev, recv_ns):
                return
        elif not d.checksum:
            self.book_failed(conn, native, "malformed book update", "neither seqId nor checksum", data, recv_ns)
            return
        bids, asks = d.bids, d.asks
        symbol = self._symbols[native]
        if text:
            # applied, checked and its spread written in one call (an int beyond a signed 32-bit
            # checksum: not applied, the way below says it does not match)
            ck = d.checksum
            done = book.apply_json_update(BID, bids, asks, self.rows, Lob, Spread, self.exchange, symbol, recv_ns,
                                          event_ms, CHECKSUM_OKX if ck else CHECKSUM_NONE, ck)
            if done != UPDATE_NOT_APPLIED:
                self.seq_ids[native] = seq  # (self.chain.set)
                if ck:
                    self.verify_checksum(conn, native, ck, ck if done == UPDATE_OK else book.checksum_okx(), recv_ns)
                return
        atom_us = recv_ns // 1000
        if text:
            apply = book.apply_json_sides
        else:
            if bids.__class__ is not list:  # numbers the book does not take as text: apply_sides says why
                bids, asks = m.levels_decoder.decode(bids), m.levels_decoder.decode(asks)
            apply = book.apply_sides
        try:
            flags = apply(BID, bids, asks, self.rows("lob"), Lob, self.exchange, symbol, event_ms, atom_us)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "malformed book update", str(exc), data, recv_ns)
            return
        self.seq_ids[native] = seq  # (self.chain.set)
        if d.checksum and not self.verify_checksum(conn, native, d.checksum, book.checksum_okx(), recv_ns):
            return
        if flags & TOP_CHANGED:
            book.spread_into(self.rows("spread"), Spread, self.exchange, symbol, event_ms, atom_us)  # (emit_spread)

    def _snapshot(self, conn: Connection, native: str, d: m.BookData, event_ms: int, data: bytes,
                  recv_ns: int, text: bool) -> None:
        """``text``: the market's book read the levels (``check_json_lists``) for ``apply_json_sides``."""
        if event_ms < 0:
            self.book_failed(conn, native, "malformed book snapshot", f"ts {d.ts!r}", data, recv_ns)
            return
        bids, asks = d.bids, d.asks
        if not text:
            if bids.__class__ is not list and self.book(native).check_json_lists(bids, asks):
                text = True
            else:
                if bids.__class__ is not list:  # numbers the book does not take as text: check_sides says why
                    bids, asks = m.levels_decoder.decode(bids), m.levels_decoder.decode(asks)
                if not self.check_snapshot(conn, native, bids, asks, data, recv_ns):
                    return
        atom_us = recv_ns // 1000
        book = self.begin_snapshot(native, recv_ns, event_ms)
        apply = book.apply_json_sides if text else book.apply_sides
        flags = apply(BID, bids, asks, self.rows("lob"), Lob, self.exchange, self._symbols[native], event_ms,
                      atom_us)
        self.chain.set(native, d.seqId)
        if d.checksum and not self.verify_checksum(conn, native, d.checksum, book.checksum_okx(), recv_ns):
            return
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)

    # --- trades, tickers, candles -------------------------------------------------------------
    def _on_trades(self, conn: Connection, msg: m.TradeMsg, data: bytes, recv_ns: int) -> None:
        # the whole message checked before any trade is written: plain decimals (the writer
        # parses them), the taker's side, the time, an id, the instrument of the push
        times = []
        try:
            for t in msg.data:
                ts = ms_text(t.ts)
                if t.side not in _SIDES or ts < 0 or not t.tradeId or t.instId != msg.arg.instId:
                    raise ValueError(f"{t.instId!r} {t.side!r} {t.ts!r} {t.tradeId!r}")
                if not (is_plain(t.px) and is_plain(t.sz)):
                    raise ValueError(f"not a plain number {t.sz if is_plain(t.px) else t.px!r}")
                times.append(ts)
        except ValueError as exc:
            self.bad_input("malformed trade", str(exc), data)
            return
        if not self.known(msg.arg.instId, data):
            return
        atom_us = recv_ns // 1000
        rows, exchange, symbol = self.rows("trades"), self.exchange, self._symbols[msg.arg.instId]
        for t, ts in zip(msg.data, times):
            # a price of 0, or a value of 1e15 or more (no market's), is refused by the writer
            if not rows.trade(exchange, symbol, t.px, t.sz, t.side == "buy", t.tradeId, ts, atom_us):
                self.bad_input("malformed trade", f"{t.px!r} {t.sz!r}", data)
                return

    def _on_tickers(self, conn: Connection, msg: m.TickerMsg, data: bytes, recv_ns: int) -> None:
        # checked whole first (plain decimals, "" for an empty side: 0.0), then written
        times = []
        try:
            for t in msg.data:
                ts = ms_text(t.ts)
                if ts < 0 or t.instId != msg.arg.instId:
                    raise ValueError(f"{t.instId!r} ts {t.ts!r}")
                for x in (t.bidPx, t.bidSz, t.askPx, t.askSz):
                    if x and not is_plain(x):
                        raise ValueError(f"not a plain number {x!r}")
                times.append(ts)
        except ValueError as exc:
            self.bad_input("malformed ticker", str(exc), data)
            return
        if not self.known(msg.arg.instId, data):
            return
        atom_us = recv_ns // 1000
        rows, exchange, symbol = self.rows("ticker"), self.exchange, self._symbols[msg.arg.instId]
        for t, ts in zip(msg.data, times):
            # a value of 1e15 or more (no market's) is refused by the writer
            if not rows.quote(exchange, symbol, t.bidPx or 0.0, t.bidSz or 0.0, t.askPx or 0.0, t.askSz or 0.0, ts,
                              atom_us):
                self.bad_input("malformed ticker", f"{t.bidPx!r} {t.bidSz!r} {t.askPx!r} {t.askSz!r}", data)
                return

    def _on_candles(self, conn: Connection, msg: m.CandleMsg, data: bytes, recv_ns: int) -> None:
        bar = bar_of(msg.arg.channel)
        out = []
        try:
            if bar is None:
                raise ValueError(f"channel {msg.arg.channel!r}")
            for k in msg.data:
                start = ms_text(k[0]) if len(k) >= 6 else -1
                if start < 0 or start + bar[1] >= 10**14:
                    raise ValueError(f"candle {k[:1]!r} of {len(k)} fields")
                closed = len(k) >= 9 and k[8] == "1"
                if len(k) >= 9 and k[8] not in ("0", "1"):
                    raise ValueError(f"confirm {k[8]!r}")
                out.append((start, closed, number(k[1]), number(k[2]), number(k[3]), number(k[4]), number(k[5])))
        except ValueError as exc:
            self.bad_input("malformed candle", str(exc), data)
            return
        native = msg.arg.instId
        if not self.known(native, data):
            return
        symbol = self._symbols[native]
        atom_us = recv_ns // 1000
        interval, length = bar
        for start, closed, o, h, lo, c, v in out:
            self.emit("candle", Candle(self.exchange, symbol, start, start + length, interval, 0, closed, o, h, lo, c,
                                       v, atom_us // 1000, atom_us))

    # --- funding, open interest, liquidations -------------------------------------------------
    def _on_funding(self, conn: Connection, msg: m.FundingMsg, data: bytes, recv_ns: int) -> None:
        atom_us = recv_ns // 1000
        out = []
        try:
            for f in msg.data:
                settles = ms_text(f.fundingTime)
                ts = ms_text(f.ts) if f.ts else atom_us // 1000
                if settles < 0 or ts < 0 or f.instId != msg.arg.instId:
                    raise ValueError(f"{f.instId!r} fundingTime {f.fundingTime!r} ts {f.ts!r}")
                predicted = signed(f.nextFundingRate) if f.nextFundingRate else 0.0
                out.append((f.instId, signed(f.fundingRate), settles, predicted, ts))
        except ValueError as exc:
            self.bad_input("malformed funding rate", str(exc), data)
            return
        if not self.known(msg.arg.instId, data):
            return
        for native, rate, settles, predicted, ts in out:
            self.emit("funding_rate", FundingRate(self.exchange, self._symbols[native], 0.0, rate, settles, predicted,
                                                  ts, atom_us))

    def _on_open_interest(self, conn: Connection, msg: m.OpenInterestMsg, data: bytes, recv_ns: int) -> None:
        out = []
        try:
            for o in msg.data:
                ts = ms_text(o.ts)
                if ts < 0 or o.instId != msg.arg.instId:
                    raise ValueError(f"{o.instId!r} ts {o.ts!r}")
                out.append((o.instId, number(o.oi), ts))
        except ValueError as exc:
            self.bad_input("malformed open interest", str(exc), data)
            return
        if not self.known(msg.arg.instId, data):
            return
        atom_us = recv_ns // 1000
        for native, oi, ts in out:
            self.emit("open_interest", OpenInterest(self.exchange, self._symbols[native], oi, ts, atom_us))

    def _wanted(self) -> set[str] | None:
        if self._liquidated is None and self.symbols:
            self._liquidated = {self.by_symbol[s].native for s in self.symbols if s in self.by_symbol}
        return self._liquidated

    def _on_liquidations(self, conn: Connection, msg: m.LiquidationMsg, data: bytes, recv_ns: int) -> None:
        if msg.arg.instType not in _LIQUIDATED:
            self.bad_input("malformed liquidation", f"instType {msg.arg.instType!r}", data)
            return
        out = []
        try:
            for item in msg.data:
                for q in item.details:
                    ts = ms_text(q.ts)
                    price = number(q.bkPx)
                    if q.side not in _SIDES or ts < 0 or not price:
                        raise ValueError(f"{item.instId!r} {q.side!r} {q.bkPx!r} {q.ts!r}")
                    out.append((item.instId, q.side, price, number(q.sz), ts))
        except ValueError as exc:
            self.bad_input("malformed liquidation", str(exc), data)
            return
        wanted = self._wanted()
        atom_us = recv_ns // 1000
        for native, side, price, size, ts in out:
            if wanted is not None and native not in wanted:
                continue
            if not self.known(native, data):
                continue
            self.emit("liquidations", Liquidation(self.exchange, self._symbols[native], side, price, size, ts, atom_us))
