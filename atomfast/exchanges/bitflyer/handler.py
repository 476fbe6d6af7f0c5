"""bitFlyer Lightning (``wss://ws.lightstream.bitflyer.com/json-rpc``, JSON-RPC 2.0), exchange
name ``bitflyer``: spot markets and the Crypto CFD ``FX_BTC_JPY`` (``BTC-JPY-PERP``, see
``parse``), and Lightning Futures where the listing still names any.

Docs: https://bf-lightning-api.readme.io/docs/endpoint-json-rpc and its "Realtime API" channel
pages. Each channel is subscribed per product: ``{"jsonrpc":"2.0","id":N,"method":"subscribe",
"params":{"channel":"<channel>_<product_code>"}}`` (answered ``"result":true``: status
``subscribed``; an ``error`` answer is bad input and status ``stopped``); every message comes
as ``{"jsonrpc":"2.0","method":"channelMessage","params":{"channel":..,"message":..}}``.

Channel map (atomfast topic -> bitFlyer channel):

==============  ===============================================  ==================================
topic           channel                                          published from
==============  ===============================================  ==================================
lob (+spread)   ``lightning_board_snapshot_{p}`` + ``lightning_  the book: snapshot, then diffs
                board_{p}`` (both subscribed for ``lob``)
trades          ``lightning_executions_{p}``                     each execution; ``side`` = taker
trades_l3       ``lightning_executions_{p}`` (shared)            with the two child order
                                                                 acceptance ids
ticker          ``lightning_ticker_{p}``                         ``best_bid``/``best_ask`` (+sizes)
==============  ===============================================  ==================================

Book. bitFlyer sends no sequence number and no checksum. The snapshot channel sends the book
(part of it: at most about 300 levels a side in the recording) now and then ("配信頻度が制限
されています": every ~5 s, all products at once, whether subscribed just now or not); the diff
channel sends each change: ``size`` is the level's new total, ``0`` removes it; a level with
``price`` 0 is a market order executed in an auction (itayose), not a level: left out. Diffs
before a market's first snapshot cannot be placed and are dropped; the first snapshot loads the
book (status ``snapshot``, every level an event).

Verification, exactly:

1. Every diff carries ``mid_price``: after applying it, it must be bitFlyer's mid of our book:
   (best bid + best ask) / 2, truncated to the price tick (``parse.mid_ok``). Not checked
   while a side is empty or the book is crossed (an auction's book; the docs define no mid for
   it). A mismatch is a gap (``gaps`` + 1, status ``resync`` "mid_price mismatch: ...", book
   dropped) and the book is reloaded from the next snapshot.
2. Every later snapshot is compared with our book, level by level (prices and sizes), on the
   prices both can vouch for: the snapshot is cut at its deepest level, and our book only knows
   the levels beyond the deepest level of the snapshot it was loaded from as far as diffs told
   it, so the comparison covers, per side, the prices at or better than the shallower of the
   two. The snapshot is not synchronised with the diff stream (the recording's snapshots are
   ahead of it: a level they show arrives in the next diff, tens of ms later), so a level that
   differs is only a fault if NO diff sets that level before the next snapshot (a diff carries
   the level's whole total, so one that sets it makes it right whatever was before). A
   difference left unexplained when the next snapshot comes is a gap (status ``resync``
   "snapshot mismatch: ...", the reason naming the level), and that next snapshot reloads the
   book at once.
3. A board message that cannot be read (malformed JSON, a bad level) is bad input and a resync
   (reloaded from the next snapshot); an unreadable or self-contradicting snapshot is bad input
   and ignored (the book, if loaded, goes on).

What cannot be verified: the sizes of a lost diff's levels until the next snapshot (the mid
only covers the top's prices); a level the snapshot does not show (deeper than it, or beyond
the depth of the snapshot the book was loaded from); the order of two diffs touching different
levels below the top; a duplicated diff (a total set twice is the same book: harmless and
invisible); a lost diff whose levels a later diff sets again before the next snapshot (also
harmless); anything during an auction's crossed book except the snapshot comparison.

Trades: ``trade_id`` is the execution ``id``; ``taker_side`` its ``side`` (the taker's); in an
auction bitFlyer sends an empty ``side`` (no taker): ``taker_side`` is then ``""``. trades_l3:
the taker's order is ``{side}_child_order_acceptance_id``, the maker's the other; with no taker
the buy order's id is ``maker_order_id`` and the sell order's ``taker_order_id`` (in that
order, as neither is a maker). ``event_timestamp`` is ``exec_date``.

Ticker: ``best_bid``/``best_bid_size``/``best_ask``/``best_ask_size``, ``event_timestamp`` its
``timestamp``. Board messages carry no time: their events take the receive time.

Not collected: bitFlyer publishes its Crypto CFD funding rate over REST only
(``GET /v1/getfundingrate``), open interest not at all.
"""
from __future__ import annotations

from typing import Sequence

from ...book import ASK, BID, L2Book, parse_ticks
from ...events import BUY, SELL, Lob, Trade, TradeL3
from ...scheme import (BOOK_ERRORS, DECODE_ERRORS, TOP_CHANGED, Connection, Dispatch, Instrument, RestEndpoint,
                       Routes, Scheme, WebsocketEndpoint)
from . import messages as m
from .parse import MAX_VALUE, PRICE_DECIMALS, SIZE_DECIMALS, guess_instrument, mid_ok, parse_markets, rfc3339_to_ms

SNAPSHOT_CHANNEL = "lightning_board_snapshot_"
BOARD_CHANNEL = "lightning_board_"
EXECUTIONS_CHANNEL = "lightning_executions_"
TICKER_CHANNEL = "lightning_ticker_"
#: route kinds of a channel
_SNAPSHOT, _BOARD, _EXECUTIONS, _TICKER = range(4)
_PREFIXES = ((SNAPSHOT_CHANNEL, _SNAPSHOT), (BOARD_CHANNEL, _BOARD), (EXECUTIONS_CHANNEL, _EXECUTIONS),
             (TICKER_CHANNEL, _TICKER))
_TAKER = {"BUY": BUY, "SELL": SELL, "": ""}
_SIDE_NAMES = ("bid", "ask")


class _Sync:
    """One market's book verification state (see the module's doc)."""

    __slots__ = ("floor", "ceiling", "pending", "top")

    def __init__(self) -> None:
        #: the deepest bid / ask (ticks) of the snapshot the book was loaded from: our book
        #: vouches for the prices at or better than these
        self.floor = 0
        self.ceiling = 0
        #: (side, price ticks) -> (our size, the snapshot's size; None: no level) where the last
        #: snapshot differed from our book and no diff has set the level since (None: nothing
        #: pending)
        self.pending: dict | None = None
        #: (best bid ticks, best ask ticks) of our book, None when it must be read again
        self.top: tuple[int, int] | None = None


def _ticks(value, decimals: int) -> int:
    return parse_ticks(value, decimals)


def _text(raw) -> str:
    return bytes(raw).decode("ascii", "replace")[:40]


class BitflyerScheme(Scheme):
    exchange = "bitflyer"
    websocket_endpoints = (WebsocketEndpoint("wss://ws.lightstream.bitflyer.com/json-rpc"),)
    rest_endpoint = RestEndpoint("https://api.bitflyer.com", Routes(
        instruments=("/v1/getmarkets", "/v1/getmarkets/usa", "/v1/getmarkets/eu")))
    channels = {"lob": "lightning_board", "trades": "lightning_executions", "trades_l3": "lightning_executions",
                "ticker": "lightning_ticker"}
    default_channels = ("lob", "trades", "ticker")
    default_symbols = ("BTC-JPY", "BTC-JPY-PERP")
    #: one channel per subscribe request (bitFlyer's ``params`` name one channel)
    symbols_per_message = 100
    silence_timeout = 30.0  # (snapshots come every ~5 s to every board subscription)
    dispatch = Dispatch({"channelMessage": "_on_channel", "": "_on_answer"}, decoder=m.envelope_decoder,
                        field="method", lead=b"{")

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        names = set(self.channel_names)
        self._want_trades = "trades" in names
        self._want_trades_l3 = "trades_l3" in names
        #: channel name -> (route kind, product code)
        self._routes: dict[str, tuple[int, str]] = {}
        #: product code -> its book's verification state
        self.sync: dict[str, _Sync] = {}
        #: request id -> the channel it subscribed
        self._requests: dict[int, str] = {}
        self._next_id = 1
        #: a book of the scale every book has, never applied: checks a snapshot's levels
        self._checker = L2Book(PRICE_DECIMALS, SIZE_DECIMALS)

    # --- instruments --------------------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_markets(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_instrument(native)

    # --- subscriptions ------------------------------------------------------------------------
    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        out: list[str | bytes] = []
        for native in natives:
            names = ((f"{SNAPSHOT_CHANNEL}{native}", f"{BOARD_CHANNEL}{native}") if channel == "lightning_board"
                     else (f"{channel}_{native}",))
            for name in names:
                rid = self._next_id
                self._next_id += 1
                self._requests[rid] = name
                out.append(m.encode({"jsonrpc": "2.0", "id": rid, "method": "subscribe",
                                     "params": {"channel": name}}).decode())
        return out

    def resubscribe(self, conn: Connection, native: str, book: str = "lob") -> None:
        """A resynced book is reloaded from the next periodic snapshot (subscribing again would
        not bring one sooner: bitFlyer sends them on its own clock): nothing to ask for."""

    def on_close(self, conn: Connection, reason: str, recv_ns: int) -> None:
        """As the base (the connection's books wait for a snapshot on the next connection); the
        comparisons they had pending are dropped."""
        for channel, natives in conn.plan.subscriptions:
            if channel == "lightning_board":
                for native in natives:
                    st = self.sync.get(native)
                    if st is not None:
                        st.pending = None
                        st.top = None
        super().on_close(conn, reason, recv_ns)

    # --- frames -------------------------------------------------------------------------------
    def _route(self, channel, data: bytes) -> tuple[int, str] | None:
        """The route of a channel name seen for the first time (cached); None (bad input) if it
        is none of the four or names no market."""
        if channel.__class__ is str:
            for prefix, kind in _PREFIXES:
                if channel.startswith(prefix):
                    native = channel[len(prefix):]
                    if not self.known(native, data):
                        return None
                    route = self._routes[channel] = (kind, native)
                    return route
        self.bad_input("unknown channel", repr(channel)[:100], data)
        return None

    def _on_channel(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        params = msg.params
        if params is None:
            self.bad_input("malformed channelMessage", "no params", data)
            return
        route = self._routes.get(params.channel) or self._route(params.channel, data)
        if route is None:
            return
        kind, native = route
        if kind == _BOARD:
            self._on_board(conn, native, params.message, data, recv_ns)
        elif kind == _SNAPSHOT:
            self._on_snapshot(conn, native, params.message, data, recv_ns)
        elif kind == _EXECUTIONS:
            self._on_executions(native, params.message, data, recv_ns)
        else:
            self._on_ticker(native, params.message, data, recv_ns)

    def _on_answer(self, conn: Connection, msg: m.Envelope, data: bytes, recv_ns: int) -> None:
        """An answer to one of our requests (``subscribe``)."""
        channel = self._requests.get(msg.id) if msg.id.__class__ is int else None
        if channel is None:
            self.bad_input("unknown message", "an answer to no request of ours", data)
            return
        native = channel
        for prefix, _kind in _PREFIXES:
            if channel.startswith(prefix):
                native = channel[len(prefix):]
                break
        try:
            symbol = self.symbol_of(native)
        except KeyError:
            symbol = ""
        if msg.error is not None:
            text = repr(msg.error)[:300]
            self.bad_input("exchange error", f"{channel}: {text}", data)
            self.status(symbol, "stopped", f"subscribe {channel}: {text}"[:500], recv_ns)
        elif msg.result is True:
            self.status(symbol, "subscribed", channel, recv_ns)
        else:
            self.bad_input("unknown message", f"{channel}: answer {msg.result!r}"[:200], data)

    # --- the book -----------------------------------------------------------------------------
    def _levels(self, levels: list) -> list:
        """The levels that are levels: a ``price`` 0 entry (a market order executed in an
        auction) is left out. A malformed price is kept (the book refuses it)."""
        out = []
        for lv in levels:
            try:
                if _ticks(lv.price, PRICE_DECIMALS) == 0:
                    continue
            except BOOK_ERRORS:
                pass
            out.append(lv)
        return out

    def _top(self, book: L2Book) -> tuple[int, int] | None:
        """(best bid, best ask) of ``book`` in ticks; None while a side is empty."""
        bid, ask = book.levels(BID, 1), book.levels(ASK, 1)
        if not bid or not ask:
            return None
        return _ticks(bid[0][0], PRICE_DECIMALS), _ticks(ask[0][0], PRICE_DECIMALS)

    def _on_board(self, conn: Connection, native: str, raw, data: bytes, recv_ns: int) -> None:
        try:
            board = m.board_decoder.decode(raw)
            mid = _ticks(board.mid_price, PRICE_DECIMALS)
            if mid < 0:
                raise ValueError(f"negative {_text(board.mid_price)}")
        except DECODE_ERRORS as exc:
            self.book_failed(conn, native, "malformed board message", str(exc), data, recv_ns)
            return
        except BOOK_ERRORS as exc:
            self.book_failed(conn, native, "malformed board message", f"mid_price: {exc}", data, recv_ns)
            return
        if native in self.unsynced or native not in self.books:
            return  # before the first snapshot (or since a resync): the next snapshot loads the book
        book = self.books[native]
        st = self.sync[native]
        bids, asks = board.bids, board.asks
        event_ms = recv_ns // 1_000_000
        atom_us = recv_ns // 1000
        symbol = self._symbols[native]
        rows = self.rows("lob")
        try:
            flags = book.apply_sides(BID, bids, asks, rows, Lob, self.exchange, symbol, event_ms, atom_us)
        except BOOK_ERRORS:
            bids, asks = self._levels(bids), self._levels(asks)
            try:
                flags = book.apply_sides(BID, bids, asks, rows, Lob, self.exchange, symbol, event_ms, atom_us)
            except BOOK_ERRORS as exc:
                self.book_failed(conn, native, "malformed board message", str(exc), data, recv_ns)
                return
        if st.pending is not None:
            self._explained(native, st, bids, asks)
        if flags & TOP_CHANGED:
            st.top = None
            self.emit_spread(native, book, event_ms, atom_us)
        top = st.top
        if top is None:
            top = st.top = self._top(book)
            if top is None:
                return  # a side is empty: no mid to check
        if top[0] < top[1] and not mid_ok(mid, top[0], top[1]):
            b, a = book.levels(BID, 1)[0][0], book.levels(ASK, 1)[0][0]
            self.gap(conn, native, f"mid_price {_text(board.mid_price)}, book's best bid {b} ask {a}", recv_ns,
                     kind="mid_price mismatch")

    def _explained(self, native: str, st: _Sync, bids: list, asks: list) -> None:
        """The levels a diff set are no longer differences from the last snapshot."""
        pending = st.pending
        for side, levels in ((BID, bids), (ASK, asks)):
            for lv in levels:
                pending.pop((side, _ticks(lv.price, PRICE_DECIMALS)), None)
        if not pending:
            st.pending = None

    def _parse_snapshot(self, raw, data: bytes):
        """(board, bids {price: size}, asks {price: size}) in ticks, or None (bad input)."""
        try:
            board = m.board_decoder.decode(raw)
            mid = _ticks(board.mid_price, PRICE_DECIMALS)
            bids, asks = self._levels(board.bids), self._levels(board.asks)
            self._checker.check_sides(bids, asks)
        except (*DECODE_ERRORS, *BOOK_ERRORS) as exc:
            self.bad_input("malformed board snapshot", str(exc)[:300], data)
            return None
        sides = []
        for levels in (bids, asks):
            side = {}
            for lv in levels:
                size = _ticks(lv.size, SIZE_DECIMALS)
                if size:
                    side[_ticks(lv.price, PRICE_DECIMALS)] = size
            sides.append(side)
        b, a = sides
        if b and a and max(b) < min(a) and not mid_ok(mid, max(b), min(a)):
            self.bad_input("inconsistent board snapshot",
                           f"mid_price {_text(board.mid_price)} is not the mid of its own best bid and ask", data)
            return None
        board.bids, board.asks = bids, asks
        return board, b, a

    def _on_snapshot(self, conn: Connection, native: str, raw, data: bytes, recv_ns: int) -> None:
        parsed = self._parse_snapshot(raw, data)
        if parsed is None:
            return
        board, bids, asks = parsed
        st = self.sync.get(native)
        if st is not None and native in self.books and native not in self.unsynced:
            if st.pending is not None:
                self.gap(conn, native, _unexplained(st.pending), recv_ns, kind="snapshot mismatch")
            else:
                self._compare(native, st, bids, asks)
                return
        self._load(native, board, bids, asks, recv_ns)

    def _load(self, native: str, board: m.Board, bids: dict, asks: dict, recv_ns: int) -> None:
        event_ms = recv_ns // 1_000_000
        atom_us = recv_ns // 1000
        book = self.begin_snapshot(native, recv_ns)
        book.apply_sides(BID, board.bids, board.asks, self.rows("lob"), Lob, self.exchange, self._symbols[native],
                         event_ms, atom_us)
        st = self.sync.get(native)
        if st is None:
            st = self.sync[native] = _Sync()
        st.floor = min(bids) if bids else 0
        st.ceiling = max(asks) if asks else 0
        st.pending = None
        st.top = None
        self.emit_spread(native, book, event_ms, atom_us)

    def _compare(self, native: str, st: _Sync, bids: dict, asks: dict) -> None:
        """Our book against a snapshot, on the prices both vouch for; differences pending."""
        book = self.books[native]
        floor = max(st.floor, min(bids)) if bids else st.floor
        ceiling = (min(st.ceiling, max(asks)) if st.ceiling else max(asks)) if asks else st.ceiling
        differ: dict[tuple[int, int], tuple[int | None, int | None]] = {}
        for side, snap, inside in ((BID, bids, lambda p: p >= floor),
                                   (ASK, asks, lambda p: not ceiling or p <= ceiling)):
            ours = {}
            for price, size in book.levels(side):
                p = _ticks(price, PRICE_DECIMALS)
                if not inside(p):
                    break
                ours[p] = _ticks(size, SIZE_DECIMALS)
            for p, size in snap.items():
                if inside(p) and ours.get(p) != size:
                    differ[(side, p)] = (ours.get(p), size)
            for p, size in ours.items():
                if p not in snap:
                    differ[(side, p)] = (size, None)
        if differ:
            st.pending = differ

    # --- trades and ticker --------------------------------------------------------------------
    def _on_executions(self, native: str, raw, data: bytes, recv_ns: int) -> None:
        try:
            executions = m.executions_decoder.decode(raw)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed executions message", str(exc), data)
            return
        symbol = self._symbols[native]
        atom_us = recv_ns // 1000
        for e in executions:
            taker = _TAKER.get(e.side)
            # the price and size in (0, 1e15) (within the writer's ranges: trades and trades_l3 alike)
            if taker is None or not (0.0 < e.price < MAX_VALUE and 0.0 < e.size < MAX_VALUE):
                self.bad_input("malformed execution", f"side {e.side!r} price {e.price!r} size {e.size!r}"[:200], data)
                continue
            try:
                event_ms = rfc3339_to_ms(e.exec_date)
            except ValueError as exc:
                self.bad_input("malformed execution", str(exc)[:200], data)
                continue
            if self._want_trades:
                if taker:  # (checked above as the writer checks: it writes every one)
                    self.rows("trades").trade(self.exchange, symbol, e.price, e.size, taker is BUY, e.id, event_ms,
                                              atom_us)
                else:  # an auction's: no taker side (``""``), which the writer does not write
                    self.emit("trades", Trade(self.exchange, symbol, e.price, e.size, "", str(e.id), event_ms, atom_us))
            if self._want_trades_l3:
                tid = str(e.id)
                buy, sell = e.buy_child_order_acceptance_id, e.sell_child_order_acceptance_id
                maker_id, taker_id = (sell, buy) if taker is BUY else (buy, sell)
                self.emit("trades_l3", TradeL3(self.exchange, symbol, e.price, e.size, taker, tid, maker_id, taker_id,
                                               event_ms, atom_us))

    def _on_ticker(self, native: str, raw, data: bytes, recv_ns: int) -> None:
        try:
            t = m.ticker_decoder.decode(raw)
            event_ms = rfc3339_to_ms(t.timestamp)
        except (*DECODE_ERRORS, ValueError) as exc:
            self.bad_input("malformed ticker", str(exc)[:300], data)
            return
        # each in [0, 1e15), or a malformed ticker (the writer's checks)
        if not self.rows("ticker").quote(self.exchange, self._symbols[native], t.best_bid, t.best_bid_size, t.best_ask,
                                         t.best_ask_size, event_ms, recv_ns // 1000):
            self.bad_input("malformed ticker", f"{t.best_bid!r} {t.best_bid_size!r} {t.best_ask!r} "
                                               f"{t.best_ask_size!r}"[:200], data)


def _unexplained(pending: dict) -> str:
    """The resync's reason: how many levels of the last snapshot no diff explained, the best."""
    side, p = min(pending, key=lambda k: (k[0], -k[1] if k[0] == BID else k[1]))
    ours, theirs = pending[(side, p)]
    return (f"{len(pending)} level(s) differ from the last snapshot and no diff set them, first "
            f"{_SIDE_NAMES[side]} {_fmt(p, PRICE_DECIMALS)}: book {_fmt(ours, SIZE_DECIMALS)}, "
            f"snapshot {_fmt(theirs, SIZE_DECIMALS)}")


def _fmt(ticks: int | None, decimals: int) -> str:
    """Ticks as a decimal text (``none`` for an absent level)."""
    if ticks is None:
        return "none"
    whole, frac = divmod(ticks, 10 ** decimals)
    frac_text = f"{frac:0{decimals}d}".rstrip("0")
    return f"{whole}.{frac_text}" if frac_text else str(whole)
