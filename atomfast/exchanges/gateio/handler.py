"""Gate.io API v4: ``GateioScheme`` (spot, ``--exchange gateio``) and ``GateioFuturesScheme``
(USDT-settled perpetuals, ``--exchange gateio-futures``).

Endpoints: spot ``wss://api.gateio.ws/ws/v4/`` (https://www.gate.io/docs/developers/apiv4/ws/en/),
USDT perpetuals ``wss://fx-ws.gateio.ws/v4/ws/usdt``
(https://www.gate.io/docs/developers/futures/ws/en/). A request is
``{"time": <s>, "channel": ..., "event": "subscribe", "payload": [...]}``; the application ping
is ``{"time": <s>, "channel": "spot.ping"}`` (``futures.ping``), answered by ``*.pong``.

Channels (atomfast topic -> Gate channel; ``spot.`` or ``futures.``):

==============  ===========================  ==================================================
topic           channel                      published from
==============  ===========================  ==================================================
lob (+spread)   ``obu`` (``ob.PAIR.400``)    order book V2: full book, then changes ``U``..``u``
trades          ``trades``                   spot ``side`` = taker; futures ``size`` sign
ticker          ``book_ticker``              best bid/ask ``b``/``B``, ``a``/``A``
candle          ``candlesticks`` (``1m``)    1-minute candles (``w``: window closed)
funding_rate    ``futures.tickers``          ``funding_rate``, ``mark_price`` (futures)
open_interest   ``futures.tickers``          ``total_size`` (contracts) (futures)
liquidations    ``futures.public_liquidates``  liquidation orders (futures)
==============  ===========================  ==================================================

Books: Gate's "Order Book V2 API" (``spot.obu``, ``futures.obu``; docs: "Provide a faster method
for retrieving depth information", section "Maintain local depth"). The first push after a
subscription is the whole book (``full: true``, its id ``u``) and the server may send a whole book
again at any time: it replaces the local book (status ``snapshot``, its levels). A change message
is continuous when ``U`` = the book's id + 1 (the book's id becomes its ``u``); anything else
(a lost, repeated or reordered message) is a gap: ``metrics.gaps`` + 1, status ``resync`` with
``gap: U <U> != previous u <id> + 1``, the book dropped and the stream unsubscribed and subscribed
again, which brings a new whole book (changes before it are ignored). Amount ``"0"`` removes a
level. The book keeps the subscribed 400 levels a side (what the stream covers). A message is
checked whole before the book is touched; a crossed book resyncs.

This replaces the issue's ``order_book_update`` + REST ``with_id`` procedure: the current docs
describe both, V2 being the faster one, with the snapshot in-band (no REST race), 400 levels
(``order_book_update`` serves at most 100) and a strict continuity rule; ``order_book_update``
itself now sends whole books (``full``) at irregular times too.

Futures sizes are in contracts throughout (see ``parse``).
"""
from __future__ import annotations

import re
import time
from typing import Sequence

from ...book import BID
from ...events import BUY, SELL, Candle, FundingRate, Liquidation, Lob, OpenInterest
from ...kit.chain import Chain
from ...scheme import (BOOK_ERRORS, CROSSED, DECODE_ERRORS, TOP_CHANGED, Connection, Dispatch, Instrument,
                       RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from .._common import MAX_MS, is_plain, ms_ok, ok_float
from . import messages as m
from .parse import (guess_perp, guess_spot, ms_of_text, number_text, parse_contracts, parse_spot,
                    stream_market)

_SIDES = {"buy": BUY, "sell": SELL}
#: a signed decimal (funding rates)
_signed = re.compile(r"-?[0-9]{1,16}(?:\.[0-9]{1,20})?").fullmatch
#: the order book V2 depth subscribed (400 levels every 100 ms; the other choice is 50 every 20 ms)
DEPTH = 400


def _price(text: str) -> str | float:
    """A best bid/ask price or size text as sent, for the typed writer ("" for an empty side:
    0.0); ValueError otherwise."""
    if text == "":
        return 0.0
    if text.__class__ is not str or not is_plain(text):
        raise ValueError(f"bad number {text!r}")
    return text


def _size(value) -> float:
    """A size in contracts (a JSON number, or a text); ValueError otherwise."""
    text = number_text(value)
    if not is_plain(text):
        raise ValueError(f"bad size {value!r}")
    return float(text)


def _size_text(value) -> str:
    """As ``_size``, the text (for the typed writers, which parse it as float() does)."""
    text = number_text(value)
    if not is_plain(text):
        raise ValueError(f"bad size {value!r}")
    return text


class _GateBase(Scheme):
    """What spot and futures share: requests, pings, the envelope, the V2 books."""

    #: the channel prefix: "spot" or "futures"
    prefix = "spot"
    symbols_per_message = 50
    ping_interval = 10.0
    silence_timeout = 30.0
    depth = DEPTH

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        #: each change's ``[U, u]`` must start one past the ``u`` of the last change applied
        self.chain = Chain(self, linked=False, reason="U {first} != previous u {book} + 1")
        #: market -> the id (``u``) of the last change applied to its book
        self.book_ids: dict[str, int] = self.chain.ids
        self._obu = f"{self.prefix}.obu"
        self._candles = f"{self.prefix}.candlesticks"

    # --- requests -------------------------------------------------------------------------------
    def _request(self, channel: str, event: str, payload: list) -> str:
        return m.encode({"time": int(time.time()), "channel": channel, "event": event,
                         "payload": payload}).decode()

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        if channel == self._obu:
            return [self._request(channel, "subscribe", [f"ob.{n}.{self.depth}" for n in natives])]
        if channel == self._candles:
            return [self._request(channel, "subscribe", ["1m", n]) for n in natives]
        return [self._request(channel, "subscribe", list(natives))]

    def ping_message(self) -> str:
        return '{"time":%d,"channel":"%s.ping"}' % (int(time.time()), self.prefix)

    def resubscribe(self, conn: Connection, native: str, book: str = "lob") -> None:
        """Reload one book (the docs: unsubscribe the stream and subscribe again; the first push
        is then a whole book)."""
        stream = [f"ob.{native}.{self.depth}"]
        conn.send(self._request(self._obu, "unsubscribe", stream))
        conn.send(self._request(self._obu, "subscribe", stream))

    # --- frames ---------------------------------------------------------------------------------
    @staticmethod
    def _event_ms(msg: m.Envelope, recv_ns: int) -> int:
        ms = msg.time_ms or msg.time * 1000
        return ms if 0 < ms < MAX_MS else recv_ns // 1_000_000

    def _answer(self, conn: Connection, msg: m.Envelope, data: bytes) -> None:
        """A request's answer (``subscribe``/``unsubscribe``): an error is counted."""
        if msg.error is not None:
            self.bad_input("exchange error", f"{msg.channel} {msg.event}: {msg.error.code!r} {msg.error.message}"[:300],
                           data)
        elif msg.event not in ("subscribe", "unsubscribe"):
            self.bad_input("unknown event", f"{msg.channel} {msg.event!r}"[:200], data)

    def _on_other(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """Not routed: no JSON object, an error with no channel, or a channel not known."""
        if bytes(data[:1]) != b"{":
            self.bad_input("not a JSON object", repr(bytes(data[:100])), data)
            return
        try:
            msg = m.envelope_decoder.decode(data)
        except DECODE_ERRORS as exc:
            self.bad_input("unknown message", str(exc)[:200], data)
            return
        if msg.error is not None:
            self.bad_input("exchange error", f"{msg.error.code!r} {msg.error.message}"[:300], data)
        else:
            self.bad_input("unknown channel", repr(msg.channel)[:100], data)

    def _update(self, conn: Connection, msg: m.Envelope, data: bytes) -> bool:
        """Whether ``msg`` is a data push (else an answer, handled here)."""
        if msg.event == "update" or msg.event == "all" or (msg.event == "" and msg.error is None):
            return True
        self._answer(conn, msg, data)
        return False

    # --- books (order book V2) ------------------------------------------------------------------
    def _on_obu(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        if not self._update(conn, msg, data):
            return
        try:
            r = m.obu_decoder.decode(msg.result)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed order book", str(exc)[:200], data)
            return
        native, _level = stream_market(r.s)
        if not native:
            self.bad_input("malformed order book", f"stream {r.s!r}"[:200], data)
            return
        if not self.known(native, data):
            return
        if not ms_ok(r.t) or not 0 < r.u < 1 << 62:
            self.book_failed(conn, native, "malformed order book", f"t {r.t!r} u {r.u!r}", data, recv_ns)
            return
        if r.full:
            self._load(conn, native, r, data, recv_ns)
            return
        if native in self.unsynced:
            return  # waiting for the whole book the resubscription brings
        last = self.book_ids.get(native)
        book = self.books.get(native)
        if last is None or book is None:
            self.resync(conn, native, "order book change before its full book", recv_ns)
            return
        if not self.chain.follows(conn, native, r.U, r.u, 0, recv_ns):
            return
        event_ms = r.t or recv_ns // 1_000_000
        atom_us = recv_ns // 1000
        try:
            flags = book.apply_sides(BID, r.b, r.a, self.rows("lob"), Lob, self.exchange, self._symbols[native],
                                     event_ms, atom_us, self.depth)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "malformed order book", str(exc)[:200], data, recv_ns)
            return
        self.chain.set(native, r.u)
        if flags & CROSSED and self.resync_crossed(conn, native, book, recv_ns):
            return
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)

    def _load(self, conn: Connection, native: str, r: m.Obu, data: bytes, recv_ns: int) -> None:
        """A whole book: checked whole, then it replaces the book."""
        try:
            self.book(native).check_sides(r.b, r.a)
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "malformed order book", str(exc)[:200], data, recv_ns)
            return
        event_ms = r.t or recv_ns // 1_000_000
        atom_us = recv_ns // 1000
        book = self.begin_snapshot(native, recv_ns, event_ms)
        book.apply_sides(BID, r.b, r.a, self.rows("lob"), Lob, self.exchange, self._symbols[native], event_ms, atom_us,
                         self.depth)
        self.chain.set(native, r.u)
        if self.resync_crossed(conn, native, book, recv_ns):
            return
        self.emit_spread(native, book, event_ms, atom_us)

    def _on_book_ticker(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        if not self._update(conn, msg, data):
            return
        try:
            t = self.book_ticker_decoder.decode(msg.result)
            size = self.ticker_size
            values = (_price(t.b), size(t.B), _price(t.a), size(t.A))
        except (*DECODE_ERRORS, ValueError) as exc:
            self.bad_input("malformed ticker", str(exc)[:200], data)
            return
        if not self.known(t.s, data):
            return
        # a value of 1e15 or more (no market's) is refused by the writer
        if not ms_ok(t.t) or not self.rows("ticker").quote(self.exchange, self._symbols[t.s], *values,
                                                           t.t or self._event_ms(msg, recv_ns), recv_ns // 1000):
            self.bad_input("malformed ticker", f"{tuple(map(float, values))!r} t {t.t!r}"[:200], data)

    def _candle(self, native: str, start_s: int, o: str, h: str, lo: str, c: str, v: float, closed: bool,
                event_ms: int, recv_ns: int) -> None:
        start = start_s * 1000
        self.emit("candle", Candle(self.exchange, self._symbols[native], start, start + 60_000, "1m", 0, closed,
                                   float(o), float(h), float(lo), float(c), v, event_ms, recv_ns // 1000))

    @staticmethod
    def _candle_ok(start_s: int, o: str, h: str, lo: str, c: str) -> bool:
        return 0 <= start_s < MAX_MS // 1000 - 60 and all(x.__class__ is str and is_plain(x) for x in (o, h, lo, c))


class GateioScheme(_GateBase):
    exchange = "gateio"
    prefix = "spot"
    websocket_endpoints = (WebsocketEndpoint("wss://api.gateio.ws/ws/v4/"),)
    rest_endpoint = RestEndpoint("https://api.gateio.ws", Routes(instruments="/api/v4/spot/currency_pairs"))
    channels = {"lob": "spot.obu", "trades": "spot.trades", "ticker": "spot.book_ticker",
                "candle": "spot.candlesticks"}
    default_channels = ("lob", "trades", "ticker")
    default_symbols = ("BTC-USDT", "ETH-USDT")
    #: the book ticker's decoder, and how its sizes are read (texts here)
    book_ticker_decoder = m.spot_book_ticker_decoder
    ticker_size = staticmethod(_price)
    dispatch = Dispatch({"spot.obu": "_on_obu", "spot.trades": "_on_trades", "spot.book_ticker": "_on_book_ticker",
                         "spot.candlesticks": "_on_candle", "spot.pong": None},
                        decoder=m.envelope_decoder, field="channel", lead=b"{", fallback="_on_other")

    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_spot(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_spot(native)

    def _on_trades(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        if not self._update(conn, msg, data):
            return
        try:
            t = m.spot_trade_decoder.decode(msg.result)
            event_ms = ms_of_text(t.create_time_ms) if t.create_time_ms else t.create_time * 1000
        except (*DECODE_ERRORS, ValueError) as exc:
            self.bad_input("malformed trade", str(exc)[:200], data)
            return
        if not self.known(t.currency_pair, data):
            return
        if t.side not in _SIDES or not is_plain(t.price) or not is_plain(t.amount) or not ms_ok(event_ms):
            self.bad_input("malformed trade", f"{t.side!r} {t.price!r} {t.amount!r} {event_ms!r}"[:200], data)
            return
        # a price of 0, or a value of 1e15 or more (no market's), is refused by the writer
        if not self.rows("trades").trade(self.exchange, self._symbols[t.currency_pair], t.price, t.amount,
                                         t.side == "buy", t.id, event_ms or self._event_ms(msg, recv_ns),
                                         recv_ns // 1000):
            self.bad_input("malformed trade", f"{t.price!r} {t.amount!r}", data)

    def _on_candle(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        if not self._update(conn, msg, data):
            return
        try:
            c = m.spot_candle_decoder.decode(msg.result)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed candle", str(exc)[:200], data)
            return
        interval, _, native = c.n.partition("_")
        if interval != "1m":
            self.bad_input("unknown candle interval", repr(c.n)[:100], data)
            return
        if not self.known(native, data):
            return
        start_s = int(c.t) if c.t.isdigit() and c.t.isascii() and len(c.t) <= 11 else -1
        if not self._candle_ok(start_s, c.o, c.h, c.l, c.c) or not is_plain(c.a):
            self.bad_input("malformed candle", repr(bytes(msg.result))[:200], data)
            return
        self._candle(native, start_s, c.o, c.h, c.l, c.c, float(c.a), c.w, self._event_ms(msg, recv_ns), recv_ns)


class GateioFuturesScheme(_GateBase):
    exchange = "gateio-futures"
    prefix = "futures"
    websocket_endpoints = (WebsocketEndpoint("wss://fx-ws.gateio.ws/v4/ws/usdt"),)
    rest_endpoint = RestEndpoint("https://api.gateio.ws", Routes(instruments="/api/v4/futures/usdt/contracts"))
    channels = {"lob": "futures.obu", "trades": "futures.trades", "ticker": "futures.book_ticker",
                "candle": "futures.candlesticks", "funding_rate": "futures.tickers",
                "open_interest": "futures.tickers", "liquidations": "futures.public_liquidates"}
    default_channels = ("lob", "trades", "ticker", "funding_rate", "open_interest")
    default_symbols = ("BTC-USDT-PERP",)  # (the documented listing of tests/data/gateio names this one)
    #: the book ticker's decoder, and how its sizes are read (contracts: a number or a text)
    book_ticker_decoder = m.futures_book_ticker_decoder
    ticker_size = staticmethod(_size_text)
    dispatch = Dispatch({"futures.obu": "_on_obu", "futures.trades": "_on_trades",
                         "futures.book_ticker": "_on_book_ticker", "futures.candlesticks": "_on_candles",
                         "futures.tickers": "_on_tickers", "futures.public_liquidates": "_on_liquidations",
                         "futures.pong": None},
                        decoder=m.envelope_decoder, field="channel", lead=b"{", fallback="_on_other")

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        names = set(self.channel_names)
        self._want_funding = "funding_rate" in names
        self._want_oi = "open_interest" in names

    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_contracts(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_perp(native)

    def _on_trades(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        if not self._update(conn, msg, data):
            return
        try:
            trades = m.futures_trades_decoder.decode(msg.result)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed trade", str(exc)[:200], data)
            return
        atom_us = recv_ns // 1000
        rows = self.rows("trades")
        for t in trades:
            if not self.known(t.contract, data):
                continue
            try:  # texts as sent (a number as written), for the writer
                price, size = number_text(t.price), _size_text(abs(t.size))
            except ValueError:
                price = size = ""
            event_ms = t.create_time_ms or t.create_time * 1000
            if not (is_plain(price) and size) or t.size == 0 or not ms_ok(event_ms):
                self.bad_input("malformed trade", f"{t.price!r} {t.size!r} {event_ms!r}"[:200], data)
                continue
            if t.is_internal:
                continue  # an insurance-fund / ADL takeover, not a market trade (Gate keeps it out of candles)
            # a price of 0, or a value of 1e15 or more (no market's), is refused by the writer
            if not rows.trade(self.exchange, self._symbols[t.contract], price, size, t.size > 0, t.id,
                              event_ms or self._event_ms(msg, recv_ns), atom_us):
                self.bad_input("malformed trade", f"{t.price!r} {t.size!r} {event_ms!r}"[:200], data)

    def _on_candles(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        if not self._update(conn, msg, data):
            return
        try:
            candles = m.futures_candles_decoder.decode(msg.result)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed candle", str(exc)[:200], data)
            return
        event_ms = self._event_ms(msg, recv_ns)
        for c in candles:
            interval, _, native = c.n.partition("_")
            if interval != "1m":
                self.bad_input("unknown candle interval", repr(c.n)[:100], data)
                continue
            if not self.known(native, data):
                continue
            try:
                volume = _size(c.v) if c.v.__class__ is not bool else -1.0
            except ValueError:
                volume = -1.0
            if not self._candle_ok(c.t, c.o, c.h, c.l, c.c) or not ok_float(volume):
                self.bad_input("malformed candle", f"{c.t!r} {c.o!r} {c.v!r}"[:200], data)
                continue
            self._candle(native, c.t, c.o, c.h, c.l, c.c, volume, c.w, event_ms, recv_ns)

    def _on_tickers(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        """``futures.tickers``: funding_rate (``funding_rate``; ``predicted_rate`` the deprecated
        ``funding_rate_indicative`` where still sent, else the same rate; ``next_funding_time``
        0: the ticker does not say) and open_interest (``total_size``, contracts)."""
        if not self._update(conn, msg, data):
            return
        try:
            tickers = m.futures_tickers_decoder.decode(msg.result)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed ticker", str(exc)[:200], data)
            return
        event_ms = self._event_ms(msg, recv_ns)
        atom_us = recv_ns // 1000
        for t in tickers:
            if not self.known(t.contract, data):
                continue
            symbol = self._symbols[t.contract]
            if self._want_funding and t.funding_rate:
                predicted = t.funding_rate_indicative or t.funding_rate
                if not (_signed(t.funding_rate) and _signed(predicted) and is_plain(t.mark_price)):
                    self.bad_input("malformed funding", f"{t.funding_rate!r} {predicted!r} {t.mark_price!r}"[:200],
                                   data)
                else:
                    mark = float(t.mark_price)
                    if ok_float(mark):
                        self.emit("funding_rate", FundingRate(self.exchange, symbol, mark, float(t.funding_rate), 0,
                                                              float(predicted), event_ms, atom_us))
                    else:
                        self.bad_input("malformed funding", repr(t.mark_price)[:100], data)
            if self._want_oi and t.total_size:
                oi = float(t.total_size) if is_plain(t.total_size) else -1.0
                if ok_float(oi):
                    self.emit("open_interest", OpenInterest(self.exchange, symbol, oi, event_ms, atom_us))
                else:
                    self.bad_input("malformed open interest", repr(t.total_size)[:100], data)

    def _on_liquidations(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        """``futures.public_liquidates``: the liquidation order; ``size`` < 0 is a sell order (a
        long position liquidated), > 0 a buy (a short one)."""
        if not self._update(conn, msg, data):
            return
        try:
            orders = m.liquidations_decoder.decode(msg.result)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed liquidation", str(exc)[:200], data)
            return
        atom_us = recv_ns // 1000
        for o in orders:
            if not self.known(o.contract, data):
                continue
            try:
                text = number_text(o.price)
                price = float(text) if is_plain(text) else -1.0
                size = _size(abs(o.size)) if o.size.__class__ is not bool else 0.0
            except ValueError:
                price = size = -1.0
            if not (ok_float(price) and ok_float(size)) or size == 0.0 or not ms_ok(o.time_ms):
                self.bad_input("malformed liquidation", f"{o.price!r} {o.size!r} {o.time_ms!r}"[:200], data)
                continue
            self.emit("liquidations", Liquidation(self.exchange, self._symbols[o.contract], SELL if o.size < 0 else BUY,
                                                  price, size, o.time_ms or self._event_ms(msg, recv_ns), atom_us))
