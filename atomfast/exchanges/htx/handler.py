"""HTX, formerly Huobi: ``HtxScheme`` (spot, ``--exchange htx``), ``HtxFuturesScheme`` (USDT-margined
swaps and futures, ``htx-futures``), ``HtxCoinSwapScheme`` (coin-margined swaps, ``htx-coin-swaps``).

Frames. Every frame HTX sends is gzip-compressed binary: the scheme inflates it (bounded by
``max_inflated_bytes``: a frame inflating beyond it is bad input; with zlib-ng where it is
installed, zlib's drop-in, else zlib) and hands the JSON to its route table (``Dispatch`` with a
prefilter on the inflated bytes: spot's market data read in C, the kind of
``"ch":"market.<s>.<kind>"``; the rest by ``_route``: ``ping``, ``rep``, ``op``). A text frame (plain JSON) is read as it is. Heartbeat: the server
sends ``{"ping": ts}`` (futures notification endpoint: ``{"op": "ping", "ts": ts}``) and is
answered ``{"pong": ts}`` (``{"op": "pong", "ts": ts}``); HTX closes a connection that does not
answer.

Spot (``wss://api.huobi.pro/ws``; the incremental book on ``wss://api.huobi.pro/feed``, as the
docs say): lob -> ``market.$symbol.mbp.150`` (changes of the top 150, ``seqNum``/``prevSeqNum``),
trades -> ``market.$symbol.trade.detail`` (``tradeId``, the taker's ``direction``), ticker ->
``market.$symbol.bbo``, candle -> ``market.$symbol.kline.1min``.

Spot book verification (https://huobiapi.github.io/docs/spot/v1/en/#market-by-price-incremental-update,
"suggested downstream data processing"): subscribe, buffer the updates, ``req`` the book on the
SAME connection (``{"req": "market.$symbol.mbp.150"}``, answered on the websocket with
``data.seqNum``); the snapshot fits where a buffered update's ``prevSeqNum`` equals its
``seqNum`` (updates with ``seqNum`` <= the snapshot's are in it); from then on each update's
``prevSeqNum`` must equal the previous update's ``seqNum``. ``atomfast.kit.booksync.BookSync``
with the rule ``PrevSeqNum`` below (``Chained`` with the snapshot's own number counted as covered
and an exact alignment). A break (lost, repeated or reordered update) is a gap: status ``resync``
(``gap: prevSeqNum X != previous seqNum Y``), the book dropped, a new ``req`` on the stream that
goes on. A book left crossed by an update is a gap too. seqNums are not contiguous: only the
chain can be checked, not the content of the levels.

Spot ``market.$symbol.depth.step0`` (the top 150 as a whole, once a second: the channel of
cryptofeed's 2021 recording) is read whenever it comes: each message is self-contained, turned
into level changes against the book it replaces (the first loads the book: status
``snapshot``). Its levels are read by the book itself from the message's raw JSON
(``DepthRawMsg``; ``L2Book.check_json_numbers``, then ``replace_json_sides``: the changes in one
call); a message it does not read is decoded whole (``DepthMsg``) and handled as level lists,
which words what is wrong with it. A message whose ``version`` is not newer than the last one is
stale (bad input, ignored); a crossed one is refused (resync; the next message reloads). Nothing else can be
verified on it. (The aggregated ``step1``..``step5`` are no exact levels: refused.)

Futures (``wss://api.hbdm.com/linear-swap-ws``; coin-margined ``/swap-ws``): lob ->
``market.$contract_code.depth.size_150.high_freq`` with ``data_type`` ``incremental``: an
``event`` ``snapshot`` then ``update``s, each ``version`` = the previous + 1
(https://huobiapi.github.io/docs/usdt_swap/v1/en/#subscribe-incremental-market-depth-data);
a break is a gap (``version gap: ...``) and the book is reloaded by unsubscribing and
subscribing again (a new snapshot). trades, ticker (``bbo``), candle as spot. On the
notification endpoint (``/linear-swap-notification``; ``/swap-notification``): funding_rate ->
``public.$contract_code.funding_rate`` (no mark price: 0.0; ``settlement_time`` is the next
funding time, ``estimated_rate`` the predicted rate where given), liquidations ->
``public.$contract_code.liquidation_orders`` (``direction`` is the liquidation order's side:
``sell`` when a long was liquidated). Swap sizes are contracts everywhere (lob, trades'
``amount``, bbo, candle volume ``vol``, liquidations' ``volume``), as HTX sends them; spot
sizes are base units (candle volume: ``amount``).
"""
from __future__ import annotations

from typing import Any, Sequence

try:  # zlib-ng (PyPI ``zlib-ng``): zlib's API, output and error words, inflating ~3x faster
    from zlib_ng import zlib_ng as _zlib
except ImportError:
    import zlib as _zlib

from ...book import ASK, BID, CROSSED, TOP_CHANGED, L2Book
from ...events import BUY, SELL, Candle, FundingRate, Liquidation, Lob, Spread
from ...kit.booksync import APPLY, STALE, BookSync
from ...kit.chain import Chain
from ...kit.dispatch import ByteAfter
from ...kit.levels import crossed, side_changes
from ...scheme import (BOOK_ERRORS, DECODE_ERRORS, LOB, Connection, Dispatch, Instrument,
                       RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from .._common import MAX_FLOAT, MAX_MS, ms_ok, ok_float
from . import messages as m
from .parse import fit_levels, guess_contract, guess_spot, parse_contracts, parse_spot

GZIP_MAGIC = b"\x1f\x8b"
_SIDES = {"buy": BUY, "sell": SELL}
_CH = b'{"ch":"market.'
_MINUTE_MS = 60_000


class PrevSeqNum:
    """HTX's MBP rule: each update names the ``seqNum`` it follows (``prevSeqNum``); a snapshot
    (``seqNum`` S) fits the buffered stream where the first update it does not hold (``seqNum`` >
    S) has ``prevSeqNum`` == S exactly; an update with ``seqNum`` <= S is in the snapshot. Ids
    given to the sync: ``first`` = ``last`` = ``seqNum``, ``prev`` = ``prevSeqNum``."""

    __slots__ = ()
    blind = False

    @staticmethod
    def covered(snap: int, first: int, last: int, prev: int) -> bool:
        return last <= snap

    @staticmethod
    def reaches(snap: int, first: int, last: int, prev: int) -> bool:
        return prev == snap

    @staticmethod
    def check(st, first: int, last: int, prev: int) -> int | str:
        if prev == st.last:
            return APPLY
        if last <= st.snap:
            return STALE  # (in the snapshot)
        return f"prevSeqNum {prev} != previous seqNum {st.last}"


def _native(data: bytes) -> str:
    """The market of a ``{"ch":"market.<native>...`` frame ("" where it names none)."""
    if data[:14] != _CH:
        return ""
    j = data.find(b".", 14, 100)
    if j < 0:
        return ""
    try:
        return data[14:j].decode("ascii")
    except UnicodeDecodeError:
        return ""


class _HtxBase(Scheme):
    """What HTX's endpoints share: gzip frames, the ping, the ``ch`` routing, trades, candles."""

    #: a frame is refused when it inflates beyond this
    max_inflated_bytes = 16 * 1024 * 1024
    silence_timeout = 30.0  # (the server pings every 5 s)
    symbols_per_message = 1  # one topic a ``sub`` message
    #: the candle field that is the volume in the market's size unit
    candle_volume = "amount"

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        #: the route table (bound by the base) runs on the inflated bytes
        self._route_frame = self.on_frame
        self.on_frame = self._inflate
        #: market -> an empty book of its precision: levels are checked on it before use
        self._checkers: dict[str, L2Book] = {}
        #: ``market.<native>.trade.detail`` of a known market -> (native, symbol)
        self._trade_channels: dict[str, tuple[str, str]] = {}

    # --- frames -------------------------------------------------------------------------------
    def _inflate(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        if data[:2] == GZIP_MAGIC:
            z = _zlib.decompressobj(31)
            try:
                out = z.decompress(data, self.max_inflated_bytes)
            except _zlib.error as exc:
                self.bad_input("malformed gzip", str(exc), data[:200])
                return
            if z.eof:  # (the whole stream within the bound: no unconsumed_tail then)
                self._route_frame(conn, out, recv_ns)
                return
            if z.unconsumed_tail:
                self.bad_input("frame too large", f"inflates beyond {self.max_inflated_bytes} bytes", data[:200])
            else:
                self.bad_input("malformed gzip", "truncated gzip stream", data[:200])
            return
        self._route_frame(conn, data, recv_ns)

    @staticmethod
    def _route(conn: Connection, data: bytes) -> bytes | None:
        """The route key read on the bytes: the first three letters of the channel kind
        (``mbp``, ``dep``, ``tra``, ``bbo``, ``kli``), or ``ping``, ``rep``, ``op``."""
        if data[:14] == _CH:
            j = data.find(b".", 14, 100)
            return data[j + 1:j + 4] if j > 0 else None
        if data[:8] == b'{"ping":':
            return b"ping"
        if data[:6] == b'{"op":':
            return b"op"
        if b'"rep":' in data[:120]:
            return b"rep"
        return None

    def _on_ping(self, conn: Connection, msg: m.Ping, data: bytes, recv_ns: int) -> None:
        conn.send(m.encode({"pong": msg.ping}).decode())

    def _on_other(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """No market data: an answer to ``sub``/``unsub``, an error, or bad input."""
        msg = self.decode_unrouted(data, m.control_decoder)
        if msg is None:
            return
        if msg.status == "ok" and msg.subbed.__class__ is str:
            parts = msg.subbed.split(".")
            if len(parts) >= 3 and parts[0] == "market":
                native = parts[1]
                if self.known(native, data):
                    self.status(self._symbols[native], "subscribed", ".".join(parts[2:]), recv_ns)
                return
        if msg.status == "ok" and msg.unsubbed is not None:
            return
        if msg.status == "error":
            detail = f"{msg.err_code}: {msg.err_msg}"[:500]
            self.bad_input("exchange error", detail, data)
            return
        self.bad_input("unknown message", f"status {msg.status!r}", data)

    def _on_refused(self, conn: Connection, data: bytes, recv_ns: int, exc: Exception) -> None:
        """A market-data frame its kind's decoder refused: counted; a book's message is lost to
        its sequence (the book resyncs)."""
        kind = self._route(conn, data)
        native = _native(data)
        if kind in (b"mbp", b"dep") and native:
            self._book_lost(conn, native, f"malformed book message: {exc}"[:300], data, recv_ns)
            return
        what = {b"tra": "malformed trade", b"bbo": "malformed ticker", b"kli": "malformed candle",
                b"ping": "malformed ping", b"rep": "malformed snapshot", b"op": "malformed notification"}
        self.bad_input(what.get(kind, "unknown message"), str(exc), data)

    def _book_lost(self, conn: Connection, native: str, reason: str, data: bytes, recv_ns: int) -> None:
        raise NotImplementedError

    def _market(self, ch: str, kind: str, data: bytes) -> str | None:
        """The market of ``market.<native>.<kind>...`` if it is one; else counted bad input."""
        parts = ch.split(".")
        if len(parts) < 3 or parts[0] != "market" or parts[2] != kind:
            self.bad_input("unknown channel", repr(ch)[:100], data)
            return None
        native = parts[1]
        return native if self.known(native, data) else None

    def _checker(self, native: str) -> L2Book:
        checker = self._checkers.get(native)
        if checker is None:
            inst = self.instrument(native)
            checker = self._checkers[native] = L2Book(inst.price_decimals, inst.size_decimals)
        return checker

    def _fit(self, native: str, bids, asks) -> tuple:
        """Both sides as the book takes them (sizes with more decimals than the book's scale
        rounded, see ``parse``); ValueError (nothing applied) if a level is malformed."""
        checker = self._checkers.get(native)
        if checker is None:
            checker = self._checker(native)
        try:
            checker.check_sides(bids, asks)
            return bids, asks
        except BOOK_ERRORS:
            pass
        sd = checker.size_decimals
        try:
            bids, asks = fit_levels(bids, sd), fit_levels(asks, sd)
            checker.check_sides(bids, asks)
        except BOOK_ERRORS as exc:
            raise ValueError(str(exc)) from None
        return bids, asks

    # --- trades -------------------------------------------------------------------------------
    def _on_trades(self, conn: Connection, msg: m.TradeMsg, data: bytes, recv_ns: int) -> None:
        market = self._trade_channels.get(msg.ch)
        if market is None:
            native = self._market(msg.ch, "trade", data)
            if native is None:
                return
            market = (native, self._symbols[native])
            if msg.ch == f"market.{native}.trade.detail":  # (the cache holds the subscribed channels only)
                self._trade_channels[msg.ch] = market
        # the whole message checked before any trade is written (ok_float, ms_ok inline)
        tids = []
        for t in msg.tick.data:
            if t.tradeId is not None:
                tid = str(t.tradeId) if t.tradeId >= 0 else ""
            else:
                raw = bytes(t.id)
                tid = raw.decode("ascii") if 0 < len(raw) <= 40 and raw.isdigit() else ""
            if t.direction not in _SIDES or not tid or not 0.0 < t.price < MAX_FLOAT or not 0.0 <= t.amount < MAX_FLOAT \
                    or not 0 <= t.ts < MAX_MS:
                self.bad_input("malformed trade", f"{t.price!r} {t.amount!r} {t.direction!r} {t.ts!r} {tid!r}", data)
                return
            tids.append(tid)
        trade, exchange, symbol = self.rows("trades").trade, self.exchange, market[1]
        atom_us = recv_ns // 1000
        for t, tid in zip(msg.tick.data, tids):
            # a value of 1e15 or more (no market's) is refused by the writer
            if not trade(exchange, symbol, t.price, t.amount, t.direction == "buy", tid, t.ts, atom_us):
                self.bad_input("malformed trade", f"{t.price!r} {t.amount!r} {t.direction!r} {t.ts!r} {tid!r}", data)
                return

    # --- candles ------------------------------------------------------------------------------
    def _on_kline(self, conn: Connection, msg: m.KlineMsg, data: bytes, recv_ns: int) -> None:
        native = self._market(msg.ch, "kline", data)
        if native is None:
            return
        k = msg.tick
        v = k.amount if self.candle_volume == "amount" else k.vol
        start = k.id * 1000
        if not (all(ok_float(x) for x in (k.open, k.high, k.low, k.close, v)) and ms_ok(start) and ms_ok(msg.ts)
                and k.count >= 0 and k.count < 2**31):
            self.bad_input("malformed candle", f"{k.id!r} {k.open!r} {k.close!r} {v!r} {k.count!r}", data)
            return
        parts = msg.ch.split(".")
        interval = parts[3] if len(parts) > 3 else ""
        if interval != "1min":
            self.bad_input("unknown channel", repr(msg.ch)[:100], data)
            return
        self.emit("candle", Candle(self.exchange, self._symbols[native], start, start + _MINUTE_MS, "1m", k.count,
                                   False, k.open, k.high, k.low, k.close, v, msg.ts or start, recv_ns // 1000))


# ==================================================================================================
# spot


class HtxScheme(_HtxBase):
    exchange = "htx"
    websocket_endpoints = (WebsocketEndpoint("wss://api.huobi.pro/ws"),
                           WebsocketEndpoint("wss://api.huobi.pro/feed", channels=("mbp.",)))
    rest_endpoint = RestEndpoint("https://api.huobi.pro", Routes(
        instruments=("/v1/common/symbols", "/v2/settings/common/symbols")))
    #: the MBP depth subscribed (the docs: 5, 20, 150, 400; 150 for every market)
    mbp_levels = 150
    channels = {"lob": f"mbp.{mbp_levels}", "trades": "trade.detail", "ticker": "bbo", "candle": "kline.1min"}
    default_channels = ("lob", "trades", "ticker")
    default_symbols = ("BTC-USDT", "ETH-USDT")
    #: updates held per book while its snapshot is on its way
    buffer_limit = 20_000
    # The market data (``{"ch":"market.<s>.<kind>``) is routed in C by the first letter of its
    # kind, which must go on as ``_route`` reads it (``mbp``, ``dep``, ``tra``, ``bbo``, ``kli``);
    # the rest (the ping, ``req`` answers, ``sub`` answers, errors) by ``_on_unrouted``, which
    # reads ``_route``'s key: the same routes as the table ``_route`` would prefilter.
    dispatch = Dispatch(
        {ord("m"): "_on_mbp", ord("d"): "_on_step0", ord("t"): "_on_trades", ord("b"): "_on_bbo",
         ord("k"): "_on_kline"},
        prefilter=ByteAfter(_CH, b".", end=100, only={k[0]: (k,) for k in (b"mbp", b"dep", b"tra", b"bbo", b"kli")}),
        decoders={ord("m"): m.mbp_decoder, ord("d"): m.depth_raw_decoder, ord("t"): m.trade_decoder,
                  ord("b"): m.spot_bbo_decoder, ord("k"): m.kline_decoder},
        fallback="_on_unrouted", refused="_on_refused")

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        self.mbp_sync = BookSync(self, PrevSeqNum(), self._request, self._apply, self._load,
                                 max_buffer=self.buffer_limit, overflow="snapshot buffer overflow")
        self._mbp_topic = f"mbp.{self.mbp_levels}"
        #: markets whose book comes from ``depth.step0`` -> the last snapshot's version
        self._step_versions: dict[str, int] = {}
        #: ``market.<native>.depth.step0`` of a listed market -> (native, symbol)
        self._step0_channels: dict[str, tuple[str, str]] = {}

    def _on_unrouted(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """A frame the C prefilter did not route: the ping and the ``req`` answers (by
        ``_route``'s key), decoded and handled as a route would (a refusal to ``_on_refused``);
        anything else is ``_on_other``'s."""
        key = self._route(conn, data)
        if key == b"ping":
            decoder, handler = m.ping_decoder, self._on_ping
        elif key == b"rep":
            decoder, handler = m.rep_decoder, self._on_rep
        else:
            self._on_other(conn, data, recv_ns)
            return
        try:
            msg = decoder.decode(data)
        except DECODE_ERRORS as exc:
            self._on_refused(conn, data, recv_ns, exc)
            return
        handler(conn, msg, data, recv_ns)

    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_spot(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_spot(native)

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        return [m.encode({"sub": f"market.{n}.{channel}", "id": f"{n}.{channel}"}).decode() for n in natives]

    # --- the MBP book -------------------------------------------------------------------------
    def _request(self, conn: Connection, native: str) -> None:
        conn.send(m.encode({"req": f"market.{native}.{self._mbp_topic}", "id": native}).decode())

    def resubscribe(self, conn: Connection, native: str, book: str = LOB) -> None:
        """Reload one book: the MBP stream goes on (buffered) and a new snapshot is asked for; a
        ``depth.step0`` book is reloaded by its next message."""
        if native in self._step_versions:
            return
        self.mbp_sync.restart(conn, native)

    def on_close(self, conn: Connection, reason: str, recv_ns: int) -> None:
        for native, st in self.mbp_sync.markets.items():
            if st.conn is conn:
                self.mbp_sync.suspend(native)
                if native in self.books:
                    self.unsynced.add(native)
        super().on_close(conn, reason, recv_ns)

    def _book_lost(self, conn: Connection, native: str, reason: str, data: bytes, recv_ns: int) -> None:
        self.bad_input("malformed book message", reason, data)
        if native in self._step_versions:
            self.resync(conn, native, reason, recv_ns)
        elif native in self.mbp_sync.markets:
            self.mbp_sync.lost(conn, native, recv_ns, reason)

    def _on_mbp(self, conn: Connection, msg: m.MbpMsg, data: bytes, recv_ns: int) -> None:
        parts = msg.ch.split(".")
        if len(parts) != 4 or parts[0] != "market" or parts[2] != "mbp" or parts[3] != str(self.mbp_levels):
            self.bad_input("unknown channel", repr(msg.ch)[:100], data)
            return
        native = parts[1]
        if not self.known(native, data):
            return
        t = msg.tick
        try:
            if not (0 <= t.prevSeqNum < t.seqNum < 2**63) or not ms_ok(msg.ts):
                raise ValueError(f"seqNum {t.seqNum!r} prevSeqNum {t.prevSeqNum!r} ts {msg.ts!r}")
            bids, asks = self._fit(native, t.bids, t.asks)
        except ValueError as exc:
            self._book_lost(conn, native, f"malformed book update: {exc}"[:300], data, recv_ns)
            return
        self.mbp_sync.diff(conn, native, (bids, asks, msg.ts), t.seqNum, t.seqNum, t.prevSeqNum, data, recv_ns)

    def _on_rep(self, conn: Connection, msg: m.Rep, data: bytes, recv_ns: int) -> None:
        rep = msg.rep if msg.rep.__class__ is str else ""
        parts = rep.split(".")
        native = parts[1] if len(parts) == 4 and parts[0] == "market" else (msg.id if msg.id.__class__ is str else "")
        if msg.status != "ok" or msg.data is None:
            self.bad_input("exchange error", f"req {rep or msg.id!r}: {msg.err_code}: {msg.err_msg}"[:500], data)
            if native in self.mbp_sync.markets:
                self.mbp_sync.request_failed(native, recv_ns)
            return
        if len(parts) != 4 or parts[2] != "mbp" or parts[3] != str(self.mbp_levels):
            self.bad_input("unknown channel", repr(rep)[:100], data)
            return
        if not self.mbp_sync.answered(native):
            return  # not asked for, or no longer wanted
        snap = msg.data
        try:
            if not 0 <= snap.seqNum < 2**63:
                raise ValueError(f"seqNum {snap.seqNum!r}")
            bids, asks = self._fit(native, snap.bids, snap.asks)
        except ValueError as exc:
            self.bad_input("malformed snapshot", f"{native}: {exc}"[:300], data)
            self.mbp_sync.request_failed(native, recv_ns)
            return
        self.mbp_sync.snapshot(native, snap.seqNum, (bids, asks, msg.ts), data, recv_ns, conn)

    def _load(self, native: str, snap: tuple, body: bytes, recv_ns: int) -> bool:
        bids, asks, ts = snap
        event_ms = ts if ms_ok(ts) and ts else recv_ns // 1_000_000
        atom_us = recv_ns // 1000
        book = self.begin_snapshot(native, recv_ns, event_ms)
        book.apply_sides(BID, bids, asks, self.rows("lob"), Lob, self.exchange, self._symbols[native], event_ms,
                         atom_us)
        if self.resync_crossed(self.mbp_sync.markets[native].conn, native, book, recv_ns, b""):
            return False
        self.emit_spread(native, book, event_ms, atom_us)
        return True

    def _apply(self, native: str, diff: tuple, data: bytes | None, recv_ns: int) -> bool:
        bids, asks, ts = diff
        book = self.books[native]
        atom_us = recv_ns // 1000
        flags = book.apply_sides(BID, bids, asks, self.rows("lob"), Lob, self.exchange, self._symbols[native], ts,
                                 atom_us)
        # (the flag may be a crossing within the call)
        if flags & CROSSED and self.gap_crossed(self.mbp_sync.markets[native].conn, native, book, recv_ns):
            return False
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, ts, atom_us)
        return True

    # --- depth.step0: a whole book a message ------------------------------------------------------
    def _on_step0(self, conn: Connection, msg: m.DepthRawMsg, data: bytes, recv_ns: int) -> None:
        """A ``depth.step0`` message with its levels as raw JSON: where it is sound (a listed
        market's channel, time and a newer version) and the book reads every level from the
        text (``check_json_numbers``, sizes fitted as ``_fit`` fits them), applied here: the live
        book turned into it (a row per change), or the first loaded. Anything else (a message
        to count or refuse, a level the book does not read) is decoded whole and takes
        ``_on_depth``, which says why or applies it."""
        t = msg.tick
        market = self._step0_channels.get(msg.ch)
        if market is None:
            parts = msg.ch.split(".")
            if len(parts) == 4 and parts[0] == "market" and parts[2] == "depth" and parts[3] == "step0" \
                    and parts[1] in self._symbols:
                market = self._step0_channels[msg.ch] = (parts[1], self._symbols[parts[1]])
        if market is not None:
            native, symbol = market
            event_ms = msg.ts
            versions = self._step_versions
            # (ms_ok, inline)
            if 0 <= event_ms < MAX_MS and versions.get(native, -1) < t.version < 2**63:
                books = self.books
                book = books.get(native)
                live = book is not None and native not in self.unsynced
                if book is None:
                    inst = self.instrument(native)
                    book = L2Book(inst.price_decimals, inst.size_decimals)
                bids, asks = t.bids, t.asks
                if book.check_json_numbers(bids, asks, True):
                    versions[native] = t.version
                    atom_us = recv_ns // 1000
                    if live:
                        flags = book.replace_json_sides(BID, bids, asks, self.rows("lob"), Lob, self.exchange,
                                                        symbol, event_ms, atom_us)
                    else:
                        # a load: the levels into the cleared book (every one a change)
                        books.setdefault(native, book)
                        book = self.begin_snapshot(native, recv_ns, event_ms)
                        flags = book.replace_json_sides(BID, bids, asks, self.rows("lob"), Lob, self.exchange,
                                                        symbol, event_ms, atom_us) | TOP_CHANGED
                    # (the flag may be a crossing within the call)
                    if flags & CROSSED and self.resync_crossed(conn, native, book, recv_ns, data):
                        return
                    if flags & TOP_CHANGED:  # (emit_spread, the symbol known)
                        book.spread_into(self.rows("spread"), Spread, self.exchange, symbol, event_ms, atom_us)
                    return
        try:
            whole = m.depth_decoder.decode(data)
        except DECODE_ERRORS as exc:
            self._on_refused(conn, data, recv_ns, exc)
            return
        self._on_depth(conn, whole, data, recv_ns)

    def _on_refused(self, conn: Connection, data: bytes, recv_ns: int, exc: Exception) -> None:
        if self._route(conn, data) == b"dep":
            # refused by the raw decoder: in the words of the whole message's decoder
            try:
                whole = m.depth_decoder.decode(data)
            except DECODE_ERRORS as whole_exc:
                exc = whole_exc
            else:
                self._on_depth(conn, whole, data, recv_ns)
                return
        super()._on_refused(conn, data, recv_ns, exc)

    def _on_depth(self, conn: Connection, msg: m.DepthMsg, data: bytes, recv_ns: int) -> None:
        parts = msg.ch.split(".")
        if len(parts) != 4 or parts[0] != "market" or parts[2] != "depth" or parts[3] != "step0":
            self.bad_input("unknown channel", repr(msg.ch)[:100], data)
            return
        native = parts[1]
        if not self.known(native, data):
            return
        t = msg.tick
        last = self._step_versions.get(native, -1)
        if not ms_ok(msg.ts) or not 0 <= t.version < 2**63:
            self._book_lost(conn, native, f"malformed depth snapshot: ts {msg.ts!r} version {t.version!r}", data,
                            recv_ns)
            return
        if t.version <= last:
            self.bad_input("stale depth snapshot", f"{native}: version {t.version} after {last}", data)
            return
        event_ms = msg.ts
        atom_us = recv_ns // 1000
        symbol = self._symbols[native]
        book = self.books.get(native)
        bids, asks = t.bids or [], t.asks or []
        if book is not None and native not in self.unsynced:
            # the live book turned into this one in one call: a row per change (sizes fitted as
            # ``_fit`` fits them); a message it refuses (nothing changed) takes the path below,
            # which says why (or, for a size only ``fit_size`` reads, applies it)
            try:
                flags = book.replace_sides(BID, bids, asks, self.rows("lob"), Lob, self.exchange, symbol, event_ms,
                                           atom_us, round_sizes=True)
            except BOOK_ERRORS:
                flags = -1
            if flags >= 0:
                self._step_versions[native] = t.version
                # (the flag may be a crossing within the call)
                if flags & CROSSED and self.resync_crossed(conn, native, book, recv_ns, data):
                    return
                if flags & TOP_CHANGED:
                    self.emit_spread(native, book, event_ms, atom_us)
                return
        try:
            bids, asks = self._fit(native, bids, asks)
        except ValueError as exc:
            self._book_lost(conn, native, f"malformed depth snapshot: {exc}"[:300], data, recv_ns)
            return
        self._step_versions[native] = t.version
        if book is None or native in self.unsynced:
            book = self.begin_snapshot(native, recv_ns, event_ms)
            flags = book.apply_sides(BID, bids, asks, self.rows("lob"), Lob, self.exchange, symbol, event_ms, atom_us)
            flags |= TOP_CHANGED
        else:
            flags = book.apply_sides(BID, side_changes(book, BID, bids), side_changes(book, ASK, asks),
                                     self.rows("lob"), Lob, self.exchange, symbol, event_ms, atom_us)
        # (the flag may be a crossing within the call)
        if flags & CROSSED and self.resync_crossed(conn, native, book, recv_ns, data):
            return
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)

    # --- ticker -------------------------------------------------------------------------------
    def _on_bbo(self, conn: Connection, msg: m.SpotBboMsg, data: bytes, recv_ns: int) -> None:
        native = self._market(msg.ch, "bbo", data)
        if native is None:
            return
        t = msg.tick
        ts = t.quoteTime or msg.ts
        # values in [0, 1e15) (the writer's check), the time in [0, 10**14) ms
        if not ms_ok(ts) or not self.rows("ticker").quote(self.exchange, self._symbols[native], t.bid, t.bidSize, t.ask,
                                                          t.askSize, ts, recv_ns // 1000):
            self.bad_input("malformed ticker", f"{t.bid!r} {t.bidSize!r} {t.ask!r} {t.askSize!r} {ts!r}", data)


# ==================================================================================================
# swaps and futures


class HtxFuturesScheme(_HtxBase):
    exchange = "htx-futures"
    websocket_endpoints = (WebsocketEndpoint("wss://api.hbdm.com/linear-swap-ws"),
                           WebsocketEndpoint("wss://api.hbdm.com/linear-swap-notification",
                                             channels=("funding_rate", "liquidation_orders")))
    rest_endpoint = RestEndpoint("https://api.hbdm.com", Routes(instruments="/linear-swap-api/v1/swap_contract_info"))
    channels = {"lob": "depth.size_150.high_freq", "trades": "trade.detail", "ticker": "bbo", "candle": "kline.1min",
                "funding_rate": "funding_rate", "liquidations": "liquidation_orders"}
    default_channels = ("lob", "trades", "ticker", "funding_rate")
    default_symbols = ("BTC-USDT-PERP", "ETH-USDT-PERP")
    candle_volume = "vol"  # contracts
    #: the depth the incremental book is subscribed at (``size_150``): the book is kept to it
    depth = 150
    dispatch = Dispatch(
        {b"dep": "_on_depth", b"tra": "_on_trades", b"bbo": "_on_bbo", b"kli": "_on_kline", b"ping": "_on_ping",
         b"op": "_on_op"},
        prefilter="_route",
        decoders={b"dep": m.depth_decoder, b"tra": m.trade_decoder, b"bbo": m.swap_bbo_decoder,
                  b"kli": m.kline_decoder, b"ping": m.ping_decoder, b"op": m.op_decoder},
        fallback="_on_other", refused="_on_refused")

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        #: each update's ``version`` must be the version of the last message applied + 1
        self.chain = Chain(self, linked=False, reason="version {first} != previous version {book} + 1",
                           kind="version gap")
        #: market -> the version of the last message applied to its book
        self.versions: dict[str, int] = self.chain.ids

    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_contracts(body)

    def guess_instrument(self, native: str) -> Instrument:
        return guess_contract(native)

    def plan_natives(self, channel: str, natives: list[str]) -> list[str]:
        if channel == "funding_rate":
            return [n for n in natives if self.instrument(n).kind == "perp"]
        return natives

    def _sub(self, channel: str, native: str) -> dict:
        if channel in ("funding_rate", "liquidation_orders"):
            return {"op": "sub", "cid": f"{native}.{channel}", "topic": f"public.{native}.{channel}"}
        msg: dict[str, Any] = {"sub": f"market.{native}.{channel}", "id": f"{native}.{channel}"}
        if channel.startswith("depth."):
            msg["data_type"] = "incremental"
        return msg

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        return [m.encode(self._sub(channel, n)).decode() for n in natives]

    def resubscribe(self, conn: Connection, native: str, book: str = LOB) -> None:
        """A fresh snapshot of one book: its depth topic unsubscribed and subscribed again."""
        self.versions.pop(native, None)
        topic = f"market.{native}.{self.channels['lob']}"
        conn.send(m.encode({"unsub": topic, "id": f"{native}.unsub", "data_type": "incremental"}).decode())
        conn.send(m.encode(self._sub(self.channels["lob"], native)).decode())

    def on_close(self, conn: Connection, reason: str, recv_ns: int) -> None:
        for _channel, natives in conn.plan.subscriptions:
            for n in natives:
                self.versions.pop(n, None)
        super().on_close(conn, reason, recv_ns)

    def _book_lost(self, conn: Connection, native: str, reason: str, data: bytes, recv_ns: int) -> None:
        if native in self.books or native in self.versions:
            self.book_failed(conn, native, "malformed book message", reason, data, recv_ns)
        else:
            self.bad_input("malformed book message", reason, data)

    def _on_depth(self, conn: Connection, msg: m.DepthMsg, data: bytes, recv_ns: int) -> None:
        parts = msg.ch.split(".")
        if len(parts) != 5 or parts[0] != "market" or ".".join(parts[2:]) != self.channels["lob"]:
            self.bad_input("unknown channel", repr(msg.ch)[:100], data)
            return
        native = parts[1]
        if not self.known(native, data):
            return
        t = msg.tick
        event_ms = msg.ts or t.ts
        if not ms_ok(event_ms) or not 0 <= t.version < 2**63 or t.event not in ("snapshot", "update"):
            self._book_lost(conn, native, f"event {t.event!r} version {t.version!r} ts {event_ms!r}", data, recv_ns)
            return
        if t.event == "update":
            if native in self.unsynced:
                return  # waiting for the snapshot our resubscription brings
            last = self.versions.get(native)
            if last is None:
                self.books.setdefault(native, self.book(native))
                self.resync(conn, native, "book update before its snapshot", recv_ns)
                return
            if not self.chain.follows(conn, native, t.version, t.version, 0, recv_ns):
                return
        try:
            bids, asks = self._fit(native, t.bids or [], t.asks or [])
        except ValueError as exc:
            self._book_lost(conn, native, str(exc)[:300], data, recv_ns)
            return
        atom_us = recv_ns // 1000
        symbol = self._symbols[native]
        if t.event == "snapshot":
            book = self.begin_snapshot(native, recv_ns, event_ms)
            flags = book.apply_sides(BID, bids, asks, self.rows("lob"), Lob, self.exchange, symbol, event_ms, atom_us,
                                     self.depth) | TOP_CHANGED
        else:
            book = self.books[native]
            flags = book.apply_sides(BID, bids, asks, self.rows("lob"), Lob, self.exchange, symbol, event_ms, atom_us,
                                     self.depth)
        self.chain.set(native, t.version)
        reason = crossed(book) if flags & CROSSED else ""  # (the flag may be a crossing within the call)
        if reason:
            if t.event == "snapshot":
                self.bad_input("crossed snapshot", f"{native}: {reason}", data)
                self.resync(conn, native, f"snapshot {reason}", recv_ns)
            else:
                self.gap(conn, native, reason, recv_ns)
            return
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)

    def _on_bbo(self, conn: Connection, msg: m.SwapBboMsg, data: bytes, recv_ns: int) -> None:
        native = self._market(msg.ch, "bbo", data)
        if native is None:
            return
        t = msg.tick
        bid = t.bid or (0.0, 0.0)
        ask = t.ask or (0.0, 0.0)
        ts = t.ts or msg.ts
        # values in [0, 1e15) (the writer's check), the time in [0, 10**14) ms
        if not ms_ok(ts) or not self.rows("ticker").quote(self.exchange, self._symbols[native], bid[0], bid[1], ask[0],
                                                          ask[1], ts, recv_ns // 1000):
            self.bad_input("malformed ticker", f"{t.bid!r} {t.ask!r} {ts!r}", data)

    # --- the notification endpoint ------------------------------------------------------------------
    def _on_op(self, conn: Connection, msg: m.Op, data: bytes, recv_ns: int) -> None:
        op = msg.op
        if op == "ping":
            conn.send(m.encode({"op": "pong", "ts": msg.ts}).decode())
            return
        topic = msg.topic if msg.topic.__class__ is str else ""
        if op == "notify":
            parts = topic.split(".")
            if len(parts) != 3 or parts[0] != "public":
                self.bad_input("unknown channel", repr(topic)[:100], data)
            elif parts[2] == "funding_rate":
                self._on_funding(msg, data, recv_ns)
            elif parts[2] == "liquidation_orders":
                self._on_liquidations(msg, data, recv_ns)
            else:
                self.bad_input("unknown channel", repr(topic)[:100], data)
            return
        if op in ("sub", "unsub"):
            if msg.err_code not in (0, None):
                self.bad_input("subscription error", f"{topic}: {msg.err_code}: {msg.err_msg}"[:500], data)
                return
            parts = topic.split(".")
            if op == "sub" and len(parts) == 3 and self.known(parts[1], data):
                self.status(self._symbols[parts[1]], "subscribed", parts[2], recv_ns)
            return
        if op in ("error", "close"):
            self.bad_input("exchange error", f"{op}: {msg.err_code}: {msg.err_msg}"[:500], data)
            return
        self.bad_input("unknown message", f"op {op!r}", data)

    def _ts(self, msg: m.Op) -> int:
        ts = msg.ts
        if ts.__class__ is int and ms_ok(ts):
            return ts
        raise ValueError(f"ts {ts!r}")

    def _on_funding(self, msg: m.Op, data: bytes, recv_ns: int) -> None:
        try:
            ts = self._ts(msg)
            items = m.funding_decoder.decode(msg.data)
            out = []
            for f in items:
                rate = _rate(f.funding_rate)
                predicted = _rate(f.estimated_rate) if f.estimated_rate else 0.0
                nxt = int(f.settlement_time) if f.settlement_time.isdigit() and f.settlement_time.isascii() else -1
                if not ms_ok(nxt):
                    raise ValueError(f"settlement_time {f.settlement_time!r}")
                out.append((f.contract_code, rate, nxt, predicted))
        except (*DECODE_ERRORS, ValueError) as exc:
            self.bad_input("malformed funding rate", str(exc), data)
            return
        atom_us = recv_ns // 1000
        for code, rate, nxt, predicted in out:
            if self.known(code, data):
                self.emit("funding_rate", FundingRate(self.exchange, self._symbols[code], 0.0, rate, nxt, predicted, ts,
                                                      atom_us))

    def _on_liquidations(self, msg: m.Op, data: bytes, recv_ns: int) -> None:
        try:
            items = m.liquidations_decoder.decode(msg.data)
            for q in items:
                if q.direction not in _SIDES or not (ok_float(q.price) and q.price > 0) or not ok_float(q.volume) \
                        or not ms_ok(q.created_at):
                    raise ValueError(f"{q.direction!r} {q.price!r} {q.volume!r} {q.created_at!r}")
        except (*DECODE_ERRORS, ValueError) as exc:
            self.bad_input("malformed liquidation", str(exc), data)
            return
        atom_us = recv_ns // 1000
        for q in items:
            if self.known(q.contract_code, data):
                self.emit("liquidations", Liquidation(self.exchange, self._symbols[q.contract_code], _SIDES[q.direction],
                                                      q.price, q.volume, q.created_at, atom_us))


def _rate(text: str) -> float:
    """A funding rate (a signed decimal string) as a float; ValueError if malformed or absurd."""
    body = text[1:] if text[:1] == "-" else text
    head, _, tail = body.partition(".")
    if not (0 < len(head) <= 4 and head.isdigit() and head.isascii() and (not tail or (tail.isdigit()
            and tail.isascii() and len(tail) <= 30))):
        raise ValueError(f"rate {text!r}")
    return float(text)


class HtxCoinSwapScheme(HtxFuturesScheme):
    """Coin-margined swaps (``BTC-USD`` -> BTC-USD-PERP): the same protocol on its own endpoints."""

    exchange = "htx-coin-swaps"
    websocket_endpoints = (WebsocketEndpoint("wss://api.hbdm.com/swap-ws"),
                           WebsocketEndpoint("wss://api.hbdm.com/swap-notification",
                                             channels=("funding_rate", "liquidation_orders")))
    rest_endpoint = RestEndpoint("https://api.hbdm.com", Routes(instruments="/swap-api/v1/swap_contract_info"))
    default_symbols = ("BTC-USD-PERP", "ETH-USD-PERP")


__all__ = ["HtxCoinSwapScheme", "HtxFuturesScheme", "HtxScheme", "PrevSeqNum"]
