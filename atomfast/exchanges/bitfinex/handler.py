"""Bitfinex websocket v2 (``wss://api-pub.bitfinex.com/ws/2``): spot pairs and perpetual futures.

Channel map (atomfast topic -> Bitfinex channel; the plan's channel names in brackets):

=============  ===================================================  =============
topic          Bitfinex subscription                                plan channel
=============  ===================================================  =============
lob            ``book`` prec ``P0`` (price levels), len 250         ``book``
lob_l3         ``book`` prec ``R0`` (raw book: one row per order)   ``book-R0``
trades         ``trades`` (snapshot, ``te``/``tu``)                 ``trades``
ticker         ``ticker``                                           ``ticker``
candle         ``candles`` key ``trade:1m:SYMBOL``                  ``candles``
funding_rate   ``status`` key ``deriv:SYMBOL`` (perpetuals only)    ``status``
open_interest  ``status`` key ``deriv:SYMBOL`` (perpetuals only)    ``status``
=============  ===================================================  =============

plus ``spread`` from our own book whenever its top changes (from the R0 book only when ``lob``
is not subscribed).

Connection protocol. On open: ``{"event":"conf","flags":196608}`` (SEQ_ALL 65536 + OB_CHECKSUM
131072), then one subscribe message per (channel, symbol), at most 25 channels a connection.
Each ``subscribed`` event maps its ``chanId`` to (channel, symbol) in ``conn.state``. Info
events: 20051 (server restart) reconnects; 20060 (maintenance starts) pauses: every book of the
connection is untrusted (status ``resync``) and nothing is resubscribed; 20061 (maintenance
ended) resumes: every channel of the connection is unsubscribed and subscribed again, as
Bitfinex advises. Error events are counted as bad input (a subscription error also says
``stopped`` for its market).

Book sync. With SEQ_ALL every channel message (heartbeats too) ends with the connection's
sequence number, which must be the previous one + 1: a lost message (a jump), or a duplicated
or late one (a number not above the last: counted too, the last stays) counts in
``metrics.gaps`` and resyncs every book of the connection (any of them may have lost an update).
A checksum message ``[CHANNEL_ID, "cs", CHECKSUM, SEQ]`` is compared with our book's
``checksum_bitfinex()`` (top 25 levels, or orders for R0): ``checksum_ok``/``checksum_failed``;
a mismatch resyncs that book. A resync (status ``resync`` with the reason, book dropped, its
updates ignored) reloads the book by unsubscribing and subscribing its channel on the
connection: the new subscription starts with a snapshot (status ``snapshot``, then its levels);
if that snapshot is lost in a later gap, or malformed, the book is asked for again. A whole
message is validated before the book is touched; a book message that cannot be read resyncs
that book, and a channel message that cannot be attributed to a subscription (unreadable
channel id, unknown channel) resyncs every book of the connection.

Dispatch (``dispatch``, the kit's route table). A route key is (channel kind, shape or tag of
element 1: ``[`` one row, ``[[``/``[]`` a snapshot, ``"TAG"`` a tagged message; ``hb`` on any
channel), or ``{`` for an event; it names the message's decoder and handler. Each channel's
common message (``_Chan.route``: a one-row P0/R0 update, nearly every frame; a ``te``/``tu``
trade; a ticker, candle or status row) is routed in C: the kit's ``Lookup`` finds the channel by
its id as written (``[232955,``, kept in ``conn.state``) and keeps it as ``_chan``. Frames that
decoder refuses (snapshots, checksums, heartbeats: one refused decode each) go to ``_refused``,
frames of no channel learnt to ``_slow``: classified by ``_examine`` and routed. What no route
takes, or its decoder refuses, goes to ``_unrouted``: counted, and the books it may concern
reloaded. A one-row P0 update goes to the book with ``L2Book.apply_sides``, as snapshots do: in C
(the kit's ``SignedLevel`` shape) in the common case, else by ``_on_p0_row``, which says what is
amiss. A snapshot's bids-then-asks are split and checked whole (the book's ``check_sides``).

P0 rows ``[PRICE, COUNT, AMOUNT]``: AMOUNT > 0 bid, < 0 ask, COUNT 0 deletes the level (AMOUNT
1/-1 names the side). R0 rows ``[ORDER_ID, PRICE, AMOUNT]``: PRICE 0 removes the order; an
order seen again is moved (same price: its queue place is kept, as for a partial fill).

Trades: the snapshot (oldest first) and ``te`` are published; ``tu`` repeats a ``te`` about a
second later with the same trade id and is published only if its id was not (trade ids already
published are remembered per market, so a resubscription's snapshot does not repeat them).
The sign of AMOUNT is the taker's side. Candles: the newest candle of a snapshot, then every
update (``closed`` when it updates a candle older than the newest seen). Books, tickers and
candles carry no exchange time: their ``event_timestamp`` is the receive time.

Recorded capture (``BITFINEX.ws.11.0``): ``wss://api.bitfinex.com/ws/2`` (the same protocol,
the authenticated host), conf flags 65536 (sequence numbers, no checksums), P0 books of len 100.
"""
from __future__ import annotations

import math
from itertools import repeat
from operator import attrgetter
from typing import Sequence

import msgspec

from ...book import ASK, BID, L3Book, parse_ticks
from ...events import Candle, FundingRate, Lob, LobL3, OpenInterest, Spread
from ...scheme import (BOOK_ERRORS, DECODE_ERRORS, MALFORMED, SIDE_NAMES, TOP_CHANGED, UNKNOWN, Connection, Dispatch,
                       Instrument, RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from ...kit.dispatch import Lookup
from ...kit.shapes import SignedLevel
from . import messages as m
from .._common import MAX_FLOAT, MAX_MS, ok_float
from .parse import (
    ALIASES,
    candle_end,
    ms_ok,
    native_of,
    pair_instrument,
    parse_pair_lists,
    positive,
    timeframe_name,
    timeframe_ok,
)

SEQ_ALL = 65536
OB_CHECKSUM = 131072
CONF_FLAGS = SEQ_ALL | OB_CHECKSUM

INFO_RECONNECT = 20051
INFO_MAINTENANCE_START = 20060
INFO_MAINTENANCE_END = 20061

#: channel kinds (per subscription)
BOOK, RAW, TRADES, TICKER, CANDLES, STATUS = range(1, 7)
#: plan channel name -> kind
KINDS = {"book": BOOK, "book-R0": RAW, "trades": TRADES, "ticker": TICKER, "candles": CANDLES, "status": STATUS}
KIND_CHANNELS = {v: k for k, v in KINDS.items()}
RAW_SUFFIX = "|R0"  # key of a raw (L3) book in ``books``/``unsynced``: native + "|R0"

#: the shape of a channel message's element 1 (in route keys: a tagged message's key holds its tag)
ROW, SNAPSHOT, TAG = 0, 1, 2
SHAPE_NAMES = ("row", "snapshot", "tag")
#: route keys of the frames that are not a channel's: events and heartbeats
#: (an event's key is the ``Lookup``'s for a frame starting with ``{``: its first byte)
EVENT, HEARTBEAT = b"{", "hb"
#: a channel kind's name in "unknown message" details
_KIND_MESSAGES = {BOOK: "book message", RAW: "raw book message", TRADES: "trades message",
                  TICKER: "ticker message", CANDLES: "candles message", STATUS: "status message"}

_STATE = "bitfinex"
_INT32 = 1 << 31
_SEEN_TRADES = 4096  # trade ids remembered per market (te/tu and snapshot repeats)
#: events are built with tuple.__new__ (the NamedTuple's own __new__ is a Python function)
_new = tuple.__new__


def _zero(text: bytes) -> bool:
    """Whether a JSON number's text is zero: it starts with 0 and has no other digit before its
    exponent (exactly: the book would read it as 0)."""
    return text[:1] == b"0" and text.strip(b"0.")[:1] in b"eE"  # b"" is in b"eE" too


_amount_of, _count_of, _price_of = attrgetter("amount"), attrgetter("count"), attrgetter("price")


def _ok_pos(x: float) -> bool:
    return 0.0 < x < MAX_FLOAT


class _Chan:
    """One subscription of a connection (a ``chanId``)."""

    __slots__ = ("kind", "is_book", "book", "native", "key", "symbol", "timeframe", "last_mts", "dead", "route",
                 "stream")

    #: the route key of a channel's common message, the one ``dispatch``'s ``Lookup`` tries first
    #: (its decoder refuses the channel's others: ``_refused`` classifies them)
    ROUTE = {BOOK: (BOOK, ROW), RAW: (RAW, ROW), TRADES: (TRADES, "te"), TICKER: (TICKER, ROW),
             CANDLES: (CANDLES, ROW), STATUS: (STATUS, ROW)}

    def __init__(self, kind: int, native: str, key: str, symbol: str, timeframe: str = "",
                 stream: "_ConnState | None" = None) -> None:
        self.kind = kind
        self.is_book = kind == BOOK or kind == RAW
        self.book = None  # the book, once this subscription's snapshot arrived
        self.native = native
        self.key = key  # book key (native, or native + "|R0"); native for other kinds
        self.symbol = symbol
        self.timeframe = timeframe
        self.last_mts = 0  # candles: start of the newest candle seen
        self.dead = False  # unsubscribed by us (resync): its remaining messages are ignored
        self.route = _Chan.ROUTE[kind]
        self.stream = stream  # the connection's state: its sequence number (``SignedLevel``'s stream)


class _ConnState:
    """Per connection: channel ids, the last sequence number, the confirmed conf flags."""

    __slots__ = ("channels", "prefix", "seq", "flags", "seq_on", "paused")

    def __init__(self, table: dict) -> None:
        self.channels: dict[int, _Chan] = {}
        #: a frame's start up to its first comma, the channel id as written (b"[232955,") -> channel:
        #: the connection's ``state`` itself, where ``dispatch``'s ``Lookup`` reads it (in C)
        self.prefix: dict = table
        self.seq: int | None = None
        self.flags = 0
        self.seq_on = False
        self.paused = False

    def bind(self, chan_id: int, ch: _Chan | None) -> None:
        """The channel ``chan_id`` is now ``ch`` (None: unsubscribed)."""
        prefix = b"[%d," % chan_id
        if ch is None:
            self.channels.pop(chan_id, None)
            self.prefix.pop(prefix, None)
            return
        self.channels[chan_id] = self.prefix[prefix] = ch


class BitfinexScheme(Scheme):
    """Bitfinex websocket v2, public channels (see the module docstring)."""

    exchange = "bitfinex"
    default_symbols = ("BTC-USD", "ETH-USD")
    unknown_market = "unknown pair"
    websocket_endpoints = (WebsocketEndpoint("wss://api-pub.bitfinex.com/ws/2"),)
    #: instruments: the exchange pairs and the perpetuals, merged; a perpetual no listing names
    #: (the recorded capture holds the futures list under its 2021 key) is named by rule (``F0``:
    #: native_symbols)
    rest_endpoint = RestEndpoint("https://api-pub.bitfinex.com", Routes(
        instruments=("/v2/conf/pub:list:pair:exchange", "/v2/conf/pub:list:pair:futures")))
    channels = {
        "lob": "book",
        "lob_l3": "book-R0",
        "trades": "trades",
        "ticker": "ticker",
        "candle": "candles",
        "funding_rate": "status",
        "open_interest": "status",
    }
    default_channels = ("lob", "trades", "ticker", "funding_rate", "open_interest")
    aliases = ALIASES
    symbols_per_message = 1  # Bitfinex subscribes one symbol per message
    subscriptions_per_connection = 25  # "You can subscribe to 25 channels ... on the same connection"
    ping_interval = 20.0  # {"event":"ping"}; Bitfinex also sends "hb" every 15 s per quiet channel
    silence_timeout = 40.0
    #: book subscriptions: number of price points (P0) / orders (R0): 1, 25, 100 or 250
    book_len = "250"
    raw_book_len = "250"
    #: candle time frame (1m, 5m, 15m, 30m, 1h, 3h, 6h, 12h, 1D, 1W, 14D, 1M)
    candle_timeframe = "1m"

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (), channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        names = self.channel_names
        self._want_funding = "funding_rate" in names
        self._want_oi = "open_interest" in names
        self._raw_spread = "lob" not in names  # spread from the R0 book only without P0
        #: native -> trade ids published (insertion-ordered, bounded)
        self._seen: dict[str, dict[int, None]] = {}
        self._ping_id = 0
        #: the channel of the frame being routed (kept by the dispatch's ``Lookup``, or ``_slow``)
        self._chan: _Chan | None = None

    # --- instruments --------------------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_pair_lists(body)

    def guess_instrument(self, native: str) -> Instrument:
        return pair_instrument(native)

    def native_symbols(self) -> list[str]:
        """The configured symbols as websocket symbols. Symbols the listing does not name (the
        perpetuals, when only the exchange pairs were listed) are named by Bitfinex's rule."""
        out = []
        for sym in self.symbols:
            inst = self.by_symbol.get(sym) or self.instruments.get(sym)
            if inst is None:
                native = native_of(sym)
                try:
                    inst = pair_instrument(native) if native else None
                except KeyError:
                    inst = None
                if inst is None or inst.symbol != sym or inst.kind != "perp":
                    raise ValueError(f"{self.exchange}: unknown symbol {sym!r}")
                inst = self.instrument(native)
            out.append(inst.native)
        return out

    # --- subscriptions ------------------------------------------------------------------------
    def _subscription(self, channel: str, native: str) -> dict:
        if channel == "book":
            return {"event": "subscribe", "channel": "book", "symbol": native, "prec": "P0", "freq": "F0",
                    "len": self.book_len}
        if channel == "book-R0":
            return {"event": "subscribe", "channel": "book", "symbol": native, "prec": "R0", "freq": "F0",
                    "len": self.raw_book_len}
        if channel == "candles":
            return {"event": "subscribe", "channel": "candles", "key": f"trade:{self.candle_timeframe}:{native}"}
        if channel == "status":
            return {"event": "subscribe", "channel": "status", "key": f"deriv:{native}"}
        return {"event": "subscribe", "channel": channel, "symbol": native}

    def _applies(self, channel: str, native: str) -> bool:
        """Whether ``channel`` exists for ``native`` (``status`` only for perpetuals)."""
        if channel != "status":
            return True
        try:
            return self.instrument(native).kind == "perp"
        except KeyError:
            return False

    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        return [m.encode(self._subscription(channel, n)).decode() for n in natives if self._applies(channel, n)]

    def plan_natives(self, channel: str, natives: list[str]) -> list[str]:
        """``status`` (funding_rate and open_interest share it) exists for perpetuals only."""
        return [n for n in natives if self._applies(channel, n)]

    def ping_message(self) -> str:
        self._ping_id += 1
        return f'{{"event":"ping","cid":{self._ping_id}}}'

    def on_open(self, conn: Connection, recv_ns: int) -> None:
        """Connected: fresh per-connection state, conf (sequence numbers + checksums), subscribe."""
        for k in [k for k in conn.state if type(k) is bytes]:  # (a state kept over a reconnect)
            del conn.state[k]
        conn.state[_STATE] = _ConnState(conn.state)
        self.status("", "connected", conn.url, recv_ns)
        conn.send(m.encode({"event": "conf", "flags": CONF_FLAGS}).decode())
        for msg in self.subscribe_plan(conn.plan):
            conn.send(msg)

    def on_close(self, conn: Connection, reason: str, recv_ns: int) -> None:
        """Disconnected: every book of the connection (P0 and R0) is untrusted until its snapshot."""
        for channel, natives in conn.plan.subscriptions:
            suffix = RAW_SUFFIX if channel == "book-R0" else ""
            if channel in ("book", "book-R0"):
                self.unsynced.update(n + suffix for n in natives if n + suffix in self.books)
        st = conn.state.get(_STATE)
        if st is not None:
            self.unsynced.update(c.key for c in st.channels.values() if c.kind in (BOOK, RAW) and c.key in self.books)
        self.status("", "disconnected", reason, recv_ns)

    def resubscribe(self, conn: Connection, native: str) -> None:
        """Reload one book: unsubscribe its channel on this connection and subscribe it again
        (the new subscription starts with a snapshot). ``native`` is the book key."""
        st = self._state(conn)
        if st.paused:
            return  # maintenance: everything is resubscribed when it ends (20061)
        if native.endswith(RAW_SUFFIX):
            kind, sym = RAW, native[: -len(RAW_SUFFIX)]
        else:
            kind, sym = BOOK, native
        for chan_id, ch in st.channels.items():
            if ch.kind == kind and ch.native == sym and not ch.dead:
                ch.dead = True
                conn.send(m.encode({"event": "unsubscribe", "chanId": chan_id}).decode())
        conn.send(m.encode(self._subscription(KIND_CHANNELS[kind], sym)).decode())

    def _resubscribe_all(self, conn: Connection, st: _ConnState) -> None:
        for chan_id, ch in list(st.channels.items()):
            if ch.dead:
                continue
            ch.dead = True
            conn.send(m.encode({"event": "unsubscribe", "chanId": chan_id}).decode())
            conn.send(m.encode(self._subscription(KIND_CHANNELS[ch.kind], ch.native)).decode())

    # --- helpers ------------------------------------------------------------------------------
    def _state(self, conn: Connection) -> _ConnState:
        st = conn.state.get(_STATE)
        if st is None:
            st = conn.state[_STATE] = _ConnState(conn.state)
        return st

    def _raw_book(self, native: str) -> tuple[str, L3Book]:
        """The R0 book of ``native`` (created on first use) under its key ``native|R0``."""
        key = native + RAW_SUFFIX
        book = self.books.get(key)
        if book is None:
            inst = self.instrument(native)
            self.instruments[key] = inst  # so that status/resync name the market of the key
            book = self.books[key] = L3Book(inst.price_decimals, inst.size_decimals)
        return key, book

    # Not Scheme.gap: the sequence is the connection's, not a book's: one gap is counted, every
    # book of the connection is reloaded, and the reason is said as it is (no "gap: " prefix).
    def _gap(self, conn: Connection, st: _ConnState, reason: str, recv_ns: int, count: bool = True) -> None:
        """The stream of this connection lost its order: every book on it is reloaded."""
        if count:
            self.metrics.gaps += 1
        for ch in list(st.channels.values()):
            if ch.is_book and not ch.dead:
                self._reload(conn, ch, reason, recv_ns)

    def _check_seq(self, conn: Connection, st: _ConnState, seq: int | None, data: bytes, recv_ns: int) -> None:
        if seq is None:
            if st.seq_on:
                self.bad_input("missing sequence number", "SEQ_ALL is on", data)
                self._gap(conn, st, "message without sequence number", recv_ns, count=False)
            return
        last = st.seq
        if last is None:
            st.seq = seq
            return
        if seq == last + 1:
            st.seq = seq
            return
        if seq > last:
            st.seq = seq
            self._gap(conn, st, f"sequence gap: expected {last + 1}, got {seq}", recv_ns)
        else:  # duplicate or late (reordered): the baseline stays
            self._gap(conn, st, f"sequence out of order: expected {last + 1}, got {seq}", recv_ns)

    def _tail_seq(self, data: bytes) -> int | None:
        """The trailing sequence number of a well-formed JSON array frame the typed decoders
        refused (so the count goes on); None if the frame is not JSON at all."""
        try:
            parts = m.parts_decoder.decode(data)
            if len(parts) < 3:
                return None
            seq = msgspec.json.decode(parts[-1], type=int)
        except (*DECODE_ERRORS, TypeError):
            return None
        return seq

    # Not Scheme.book_failed: a book is a subscription's (``_reload``: a book already reloading
    # whose new subscription has no snapshot yet is asked for again).
    def _book_failed(self, conn: Connection, ch: _Chan, kind: str, detail: str, data: bytes, recv_ns: int) -> None:
        self.bad_input(kind, detail, data)
        self._reload(conn, ch, f"{kind}: {detail}", recv_ns)

    def _reload(self, conn: Connection, ch: _Chan, reason: str, recv_ns: int) -> None:
        """Resync the book of subscription ``ch``. A book already being reloaded whose new
        subscription has not delivered a usable snapshot (the snapshot was lost in a gap, or
        malformed) is asked for again: otherwise it would wait for ever."""
        if ch.key not in self.unsynced:
            self.resync(conn, ch.key, reason, recv_ns)
        elif not ch.dead and ch.book is None:
            self.resubscribe(conn, ch.key)

    # --- frames -------------------------------------------------------------------------------
    #: route key -> (decoder, handler): a heartbeat is read element by element by its handler
    ROUTES = {
        EVENT: (m.event_decoder, "_on_event"),
        HEARTBEAT: (None, "_on_heartbeat"),
        (BOOK, ROW): (m.p0_update_decoder, "_on_p0_row"),
        (BOOK, SNAPSHOT): (m.p0_snapshot_decoder, "_on_p0_snapshot"),
        (BOOK, "cs"): (m.checksum_decoder, "_on_checksum"),
        (RAW, ROW): (m.r0_update_decoder, "_on_r0_row"),
        (RAW, SNAPSHOT): (m.r0_snapshot_decoder, "_on_r0_snapshot"),
        (RAW, "cs"): (m.checksum_decoder, "_on_checksum"),
        (TRADES, "te"): (m.trade_update_decoder, "_on_trade"),
        (TRADES, "tu"): (m.trade_update_decoder, "_on_trade"),
        (TRADES, SNAPSHOT): (m.trades_snapshot_decoder, "_on_trades"),
        (TICKER, ROW): (m.ticker_decoder, "_on_ticker"),
        (CANDLES, ROW): (m.candle_update_decoder, "_on_candle"),
        (CANDLES, SNAPSHOT): (m.candles_snapshot_decoder, "_on_candles"),
        (STATUS, ROW): (m.status_decoder, "_on_status"),
    }
    #: the frames of a channel are first tried as its common message (``_Chan.route``: a one-row
    #: book update, a ``te``/``tu`` trade, a ticker, candle or status row), found (in C) by the
    #: channel id as written (``Lookup``: ``[232955,`` in ``conn.state``, the channel kept as
    #: ``_chan``); what that decoder refuses (snapshots, checksums, heartbeats, malformed frames)
    #: goes to ``_refused``, frames of no channel learnt (and not ``{``) to ``_slow``
    #: a one-row P0 update (nearly every frame) is applied in C (the kit's ``SignedLevel``: the
    #: common case, as ``_on_p0_row`` does it; anything else goes to ``_on_p0_row``)
    dispatch = Dispatch({**{key: handler for key, (_, handler) in ROUTES.items()},
                         (BOOK, ROW): SignedLevel(at="level", price="price", count="count", amount="amount",
                                                  seq="seq", otherwise="_on_p0_row")},
                        prefilter=Lookup(b",", attr="route", keep="_chan"),
                        decoders={key: dec for key, (dec, _) in ROUTES.items() if dec is not None},
                        fallback="_slow", refused="_refused")

    def _refused(self, conn: Connection, data: bytes, recv_ns: int, exc: Exception) -> None:
        """The route's decoder refused the frame: an event's refusal is reported (``_unrouted``),
        a channel's frame is classified and routed (``_slow``) unless it is of the very route
        whose decoder refused it."""
        if data[:1] == b"{":
            self._unrouted(conn, data, recv_ns)
            return
        self._slow(conn, data, recv_ns, True)

    def _slow(self, conn: Connection, data: bytes, recv_ns: int, tried: bool = False) -> None:
        """A frame's route key from ``_examine``, its decoder and handler; what no route takes, or
        its decoder refuses, to ``_unrouted``."""
        key, st, chan_id, ch, shape, tag = self._examine(conn, data)
        route = self.ROUTES.get(key)
        if route is None or (tried and ch is not None and key == ch.route):
            self._unrouted(conn, data, recv_ns)
            return
        decoder, name = route
        msg = None
        if decoder is not None:
            try:
                msg = decoder.decode(data)
            except DECODE_ERRORS:
                self._unrouted(conn, data, recv_ns)
                return
        self._chan = ch
        getattr(self, name)(conn, msg, data, recv_ns)

    def _examine(self, conn: Connection, data: bytes) -> tuple:
        """A frame's route key (None: no route) and what ``_unrouted`` reports from:
        ``(key, st, chan_id, ch, shape, tag)``. ``{`` is an event; an array is
        ``[CHANNEL_ID, element 1(, SEQ)]``, its key the channel's kind and element 1's shape
        (``[`` one row, ``[[``/``[]`` a snapshot) or tag (``"cs"``, ``"te"``; ``"hb"`` on any
        channel); a one-row book update is known from the channel id as written."""
        head = data[:1]
        if head != b"[":
            return (EVENT if head == b"{" else None), None, -1, None, None, ""
        st = self._state(conn)
        comma = data.find(b",", 1, 24)
        ch = st.prefix.get(data[:comma + 1])
        # a one-row book update "[chanId,[...],seq]" (element 1 "[", not "[[" or "[]")
        if ch is not None and ch.is_book and len(data) > comma + 2 and data[comma + 1] == 91 and (
                data[comma + 2] != 91 and data[comma + 2] != 93):
            return (ch.kind, ROW), st, None, ch, ROW, ""
        chan_id = -1
        if comma > 0:
            try:
                chan_id = int(data[1:comma])
            except ValueError:
                chan_id = -1
        if chan_id < 0:
            return None, st, chan_id, None, None, ""
        c1 = data[comma + 1:comma + 2]
        if c1 == b"[":
            c2 = data[comma + 2:comma + 3]
            shape = SNAPSHOT if c2 == b"[" or c2 == b"]" else ROW
            tag = ""
        elif c1 == b'"':
            end = data.find(b'"', comma + 2, comma + 12)
            tag = data[comma + 2:end].decode("ascii", "replace") if end > 0 else "?"
            shape = TAG
        else:
            shape, tag = self._classify(data)
            if shape is None:
                return None, st, chan_id, None, None, ""
        if shape == TAG and tag == "hb":
            return HEARTBEAT, st, chan_id, None, shape, tag
        ch = st.channels.get(chan_id)
        if ch is None:
            return None, st, chan_id, None, shape, tag
        return (ch.kind, tag if shape == TAG else shape), st, chan_id, ch, shape, tag

    def _classify(self, data: bytes) -> tuple[int | None, str]:
        """Shape and tag of a frame whose element 1 does not follow the comma directly
        (shape None: unreadable)."""
        try:
            parts = m.parts_decoder.decode(data)
        except DECODE_ERRORS:
            return None, ""
        if len(parts) < 2:
            return None, ""
        p1 = bytes(parts[1])
        if p1[:1] == b"[":
            inner = p1[1:].lstrip()
            return (SNAPSHOT if inner[:1] in (b"[", b"]") else ROW), ""
        if p1[:1] == b'"':
            try:
                return TAG, msgspec.json.decode(p1, type=str)
            except DECODE_ERRORS:
                return None, ""
        return None, ""

    def _unrouted(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        """A frame no route takes, or whose decoder refused it: counted; a channel message also
        keeps the sequence count going and reloads the book(s) it may have been for (``_malformed``)."""
        head = data[:1]
        if head == b"{":  # an event the decoder refused
            try:
                m.event_decoder.decode(data)
            except msgspec.ValidationError as exc:
                self.bad_input("unknown message", str(exc), data)
            except MALFORMED as exc:
                self.bad_input("malformed JSON", str(exc), data)
            return
        if head != b"[":
            self.bad_input("not a JSON message", "frame starts with neither [ nor {", data)
            return
        key, st, chan_id, ch, shape, tag = self._examine(conn, data)
        if key in self.ROUTES:  # its decoder refused it: say why
            try:
                self.ROUTES[key][0].decode(data)
            except DECODE_ERRORS as exc:
                self._decode_failed(conn, st, ch, exc, data, recv_ns)
        elif chan_id < 0:
            self._malformed(conn, st, None, "malformed message", "no channel id", data, recv_ns)
        elif shape is None:
            self._malformed(conn, st, st.channels.get(chan_id), "malformed message", "unreadable element 1", data,
                            recv_ns)
        elif ch is None:
            self._malformed(conn, st, None, "unknown channel", f"chanId {chan_id}", data, recv_ns)
        else:
            what = tag if ch.is_book else (tag or SHAPE_NAMES[shape])
            self._malformed(conn, st, ch, "unknown message", f"{_KIND_MESSAGES[ch.kind]} {what!r}", data, recv_ns)

    def _decode_failed(self, conn: Connection, st: _ConnState, ch: _Chan | None, exc: Exception, data: bytes,
                       recv_ns: int) -> None:
        malformed_json = not isinstance(exc, msgspec.ValidationError)  # one of DECODE_ERRORS
        self._malformed(conn, st, ch, "malformed JSON" if malformed_json else "malformed message", str(exc), data,
                        recv_ns)

    def _malformed(self, conn: Connection, st: _ConnState, ch: _Chan | None, kind: str, detail: str, data: bytes,
                   recv_ns: int) -> None:
        """A channel message that cannot be used: keep the sequence count going where its number
        can be read, count it, and reload the book it was for; when it cannot be told which
        channel it was for, every book of the connection (it may have been an update of any)."""
        seq = self._tail_seq(data)
        if seq is not None:
            self._check_seq(conn, st, seq, data, recv_ns)
        self.bad_input(kind, detail, data)
        if ch is None:
            self._gap(conn, st, f"{kind}: {detail}", recv_ns, count=False)
        elif ch.is_book and not ch.dead:
            self._reload(conn, ch, f"{kind}: {detail}", recv_ns)

    def _channel(self, conn: Connection, msg, data: bytes, recv_ns: int) -> _Chan:
        """The subscription a decoded channel message is for; its sequence number checked (the
        next one: taken at once)."""
        st = conn.state[_STATE]
        ch = st.channels[msg.chan]
        seq = msg.seq
        last = st.seq
        if seq is None or last is None or seq != last + 1:
            self._check_seq(conn, st, seq, data, recv_ns)
        else:
            st.seq = seq
        return ch

    def _on_heartbeat(self, conn: Connection, _msg: None, data: bytes, recv_ns: int) -> None:
        """``[CHANNEL_ID, "hb"(, SEQ)]``: nothing to publish, but it takes a sequence number
        (also on a channel whose ``subscribed`` event has not arrived yet)."""
        try:
            parts = m.parts_decoder.decode(data)
            if not 2 <= len(parts) <= 3:
                raise ValueError(f"heartbeat of {len(parts)} elements")
            seq = msgspec.json.decode(parts[2], type=int) if len(parts) == 3 else None
        except (*DECODE_ERRORS, ValueError) as exc:
            self.bad_input("malformed heartbeat", str(exc), data)
            return
        self._check_seq(conn, conn.state[_STATE], seq, data, recv_ns)

    # --- P0 book ------------------------------------------------------------------------------
    def _on_p0_snapshot(self, conn: Connection, msg: m.P0Snapshot, data: bytes, recv_ns: int) -> None:
        ch = self._channel(conn, msg, data, recv_ns)
        if ch.dead:
            return
        native = ch.native
        levels = msg.levels
        book = self.book(native)
        # Bitfinex's order, bids then asks, taken whole in C (map/zip: no bytecode per level):
        # COUNT > 0, each size > 0 at the decimals (parse_ticks), the prices (and the sizes' text)
        # by the book's parse below; any other order level by level
        # (the amounts' texts joined by NUL, which no JSON number holds: "\0-" starts an ask)
        joined = b"\0".join(map(_amount_of, levels))
        amounts = joined.split(b"\0")
        k = len(amounts) - (b"\0" + joined).count(b"\0-")  # the first ask, if the asks are last
        asks = b"\0".join(amounts[k:])
        if levels and (b"\0" + asks).count(b"\0-") == len(amounts) - k:
            try:
                sizes = amounts[:k] + asks[1:].split(b"\0-") if asks else amounts
                sd = book.size_decimals
                if min(map(_count_of, levels)) <= 0 or min(map(parse_ticks, sizes, repeat(sd))) <= 0:
                    raise ValueError
            except (ValueError, TypeError):
                self._bad_level(conn, ch, msg, data, recv_ns)
                return
            prices = list(map(_price_of, levels))
            runs = [(BID, list(zip(prices[:k], sizes[:k])))] if k else []
            if k < len(levels):
                runs.append((ASK, list(zip(prices[k:], sizes[k:]))))
            levels = ()  # (done)
        else:
            runs = []  # the levels in order, in runs of one side
        run_side = -1
        # every level as ``positive`` would take it (a value > 0 at the decimals): COUNT > 0 and
        # the size not zero here, the rest (numbers, signs, zero prices, decimals) by the book's
        # parse (``check_sides``, kept for ``apply_sides``); the first bad level is reported by
        # ``_bad_level``
        for lv in levels:
            amount = bytes(lv.amount)
            if amount[:1] == b"-":
                side, size = ASK, amount[1:]
            else:
                side, size = BID, amount
            if lv.count <= 0 or size[:1] == b"0" and size.strip(b"0.")[:1] in b"eE":  # (``_zero``, inline)
                self._bad_level(conn, ch, msg, data, recv_ns)
                return
            if side != run_side:
                run_side, run = side, []
                runs.append((side, run))
            run.append((lv.price, size))
        try:
            if len(runs) > 2:  # (not Bitfinex's: bids, then asks)
                for _side, levels in runs:
                    book.check_sides(levels)
            elif runs:
                book.check_sides(runs[0][1], runs[1][1] if len(runs) == 2 else None)
        except BOOK_ERRORS:
            self._bad_level(conn, ch, msg, data, recv_ns)
            return
        atom_us = recv_ns // 1000
        ms = atom_us // 1000
        book = ch.book = self.begin_snapshot(native, recv_ns, ms)
        rows, exchange, symbol = self.rows("lob"), self.exchange, ch.symbol
        flags = 0
        try:
            if len(runs) > 2:
                for side, levels in runs:
                    flags |= book.apply_sides(side, levels, None, rows, Lob, exchange, symbol, ms, atom_us)
            elif runs:  # the levels parsed by check_sides above: not again
                flags = book.apply_sides(runs[0][0], runs[0][1], runs[1][1] if len(runs) == 2 else None, rows, Lob,
                                         exchange, symbol, ms, atom_us)
        except BOOK_ERRORS as exc:  # validated above: not expected
            self._book_failed(conn, ch, "malformed book level", str(exc), data, recv_ns)
            return
        if flags & TOP_CHANGED:
            book.spread_into(self.rows("spread"), Spread, exchange, symbol, ms, atom_us)

    def _bad_level(self, conn: Connection, ch: _Chan, msg: m.P0Snapshot, data: bytes, recv_ns: int) -> None:
        """A snapshot's first malformed level, reported (the book reloaded)."""
        inst = self.instrument(ch.native)
        pd, sd = inst.price_decimals, inst.size_decimals
        for lv in msg.levels:
            price = bytes(lv.price)
            amount = bytes(lv.amount)
            size = amount[1:] if amount[:1] == b"-" else amount
            if lv.count <= 0 or not positive(price, pd) or not positive(size, sd):
                self._book_failed(conn, ch, "malformed book level", f"{price!r} {lv.count!r} {amount!r}", data,
                                  recv_ns)
                return
        self._book_failed(conn, ch, "malformed book level", "unreadable level", data, recv_ns)  # (not expected)

    def _on_p0_row(self, conn: Connection, msg: m.P0Update, data: bytes, recv_ns: int) -> None:
        """``[CHANNEL_ID, [PRICE, COUNT, AMOUNT], SEQ]``: nearly every frame (``_channel`` is inline).
        COUNT 0 deletes the level; a negative COUNT, or a zero PRICE or AMOUNT, is malformed (the
        size's zero is seen here, the price's where the book refuses it: ``_p0_refused``)."""
        ch = self._chan
        st = conn.state[_STATE]
        seq = msg.seq
        last = st.seq
        if seq is None or last is None or seq != last + 1:
            self._check_seq(conn, st, seq, data, recv_ns)
        else:
            st.seq = seq
        if ch.dead or ch.book is None or ch.native in self.unsynced:
            if not ch.dead and ch.native not in self.unsynced:
                self._reload(conn, ch, "book update before its snapshot", recv_ns)
            return  # reloading: nothing of this book until its snapshot
        lv = msg.level
        amount = bytes(lv.amount)
        count = lv.count
        if amount[:1] == b"-":
            side, size = ASK, amount[1:]
        else:
            side, size = BID, amount
        if count < 0 or size[:1] == b"0" and size.strip(b"0.")[:1] in b"eE":  # (``_zero``, inline)
            self._book_failed(conn, ch, "malformed book level", f"{bytes(lv.price)!r} {count!r} {amount!r}", data,
                              recv_ns)
            return
        if count == 0:
            size = b"0"  # COUNT 0: the level goes
        atom_us = recv_ns // 1000
        ms = atom_us // 1000
        book = ch.book
        try:
            f = book.apply_sides(side, ((lv.price, size),), None, self.rows("lob"), Lob, self.exchange, ch.symbol, ms,
                                 atom_us)
        except BOOK_ERRORS:
            f = self._p0_refused(conn, ch, lv, side, size, amount, data, recv_ns, ms, atom_us)
        if f & TOP_CHANGED:
            book.spread_into(self.rows("spread"), Spread, self.exchange, ch.symbol, ms, atom_us)

    def _p0_refused(self, conn: Connection, ch: _Chan, lv: m.P0Level, side: int, size: bytes, amount: bytes,
                    data: bytes, recv_ns: int, ms: int, atom_us: int) -> int:
        """A level ``apply_sides`` refused (nothing applied): malformed, in the book's words (a
        zero PRICE in the venue's). A signed price, ``-0`` included, is refused as the snapshots
        refuse it. Returns 0 (the flags of nothing applied)."""
        price = bytes(lv.price)
        if _zero(price):
            self._book_failed(conn, ch, "malformed book level", f"{price!r} {lv.count!r} {amount!r}", data, recv_ns)
            return 0
        try:
            ch.book.check_sides([(price, size)], None)
            detail = f"{price!r} {lv.count!r} {amount!r}"
        except BOOK_ERRORS as exc:
            detail = str(exc)
        self._book_failed(conn, ch, "malformed book level", detail, data, recv_ns)
        return 0

    # --- R0 book ------------------------------------------------------------------------------
    def _on_r0_snapshot(self, conn: Connection, msg: m.R0Snapshot, data: bytes, recv_ns: int) -> None:
        ch = self._channel(conn, msg, data, recv_ns)
        if ch.dead:
            return
        key, book = self._raw_book(ch.native)
        pd, sd = book.price_decimals, book.size_decimals
        rows = []
        for o in msg.orders:
            price = bytes(o.price)
            amount = bytes(o.amount)
            if amount[:1] == b"-":
                side, size = ASK, amount[1:]
            else:
                side, size = BID, amount
            if o.order_id < 0 or not positive(price, pd) or not positive(size, sd):
                self._book_failed(conn, ch, "malformed book order", f"{o.order_id!r} {price!r} {amount!r}", data,
                                  recv_ns)
                return
            rows.append((o.order_id, side, price, size))
        atom_us = recv_ns // 1000
        ms = atom_us // 1000
        self.begin_snapshot(key, recv_ns, ms)
        ch.book = book
        emit, exchange, symbol = self.emit, self.exchange, ch.symbol
        add = book.add
        flags = 0
        try:
            for oid, side, price, size in rows:
                flags |= add(oid, side, price, size)
                emit("lob_l3", _new(LobL3, (exchange, symbol, float(price), float(size), SIDE_NAMES[side], str(oid), ms,
                                            atom_us)))
        except BOOK_ERRORS as exc:  # validated above: not expected
            self._book_failed(conn, ch, "malformed book order", str(exc), data, recv_ns)
            return
        if flags & TOP_CHANGED and self._raw_spread:
            emit("spread", _new(Spread, (exchange, symbol, *book.best(), ms, atom_us)))

    def _on_r0_row(self, conn: Connection, msg: m.R0Update, data: bytes, recv_ns: int) -> None:
        """``[CHANNEL_ID, [ORDER_ID, PRICE, AMOUNT], SEQ]``: PRICE 0 removes the order."""
        ch = self._channel(conn, msg, data, recv_ns)
        if ch.dead or ch.key in self.unsynced:
            return
        book = ch.book
        if book is None:
            self._reload(conn, ch, "book update before its snapshot", recv_ns)
            return
        o = msg.order
        oid = o.order_id
        price = bytes(o.price)
        amount = bytes(o.amount)
        if amount[:1] == b"-":
            side, size = ASK, amount[1:]
        else:
            side, size = BID, amount
        # PRICE 0 removes the order; a JSON number not starting with 0 is not zero
        removal = False
        if price[:1] == b"0":
            try:
                removal = parse_ticks(price, book.price_decimals) == 0
            except BOOK_ERRORS:
                removal = None
        if removal is None or oid < 0 or not positive(size, book.size_decimals) or price[:1] == b"-":
            self._book_failed(conn, ch, "malformed book order", f"{oid!r} {price!r} {amount!r}", data, recv_ns)
            return
        atom_us = recv_ns // 1000
        ms = atom_us // 1000
        try:
            if removal:
                known = book.order(oid)
                if known is None:
                    return  # not in the book (e.g. beyond its length): nothing changes
                f = book.remove(oid)
                self.emit("lob_l3", _new(LobL3, (self.exchange, ch.symbol, float(known[1]), 0.0, SIDE_NAMES[known[0]],
                                                str(oid), ms, atom_us)))
            else:
                known = book.order(oid)
                if known is not None and known[0] == side:
                    f = book.change(oid, price, size)
                else:
                    f = book.add(oid, side, price, size)
                self.emit("lob_l3", _new(LobL3, (self.exchange, ch.symbol, float(price), float(size), SIDE_NAMES[side],
                                                str(oid), ms, atom_us)))
        except BOOK_ERRORS as exc:
            self._book_failed(conn, ch, "malformed book order", str(exc), data, recv_ns)
            return
        if f & TOP_CHANGED and self._raw_spread:
            self.emit("spread", _new(Spread, (self.exchange, ch.symbol, *book.best(), ms, atom_us)))

    # --- checksums ----------------------------------------------------------------------------
    def _on_checksum(self, conn: Connection, msg: m.Checksum, data: bytes, recv_ns: int) -> None:
        """``[CHANNEL_ID, "cs", CHECKSUM, SEQ]`` of a P0 or R0 book."""
        ch = self._channel(conn, msg, data, recv_ns)
        key = ch.key
        if ch.dead or key in self.unsynced:
            return
        book = ch.book
        if book is None:
            return  # no snapshot on this subscription yet: nothing to compare
        expected = msg.checksum
        if not -_INT32 <= expected < _INT32:
            self._book_failed(conn, ch, "malformed checksum", repr(expected), data, recv_ns)
            return
        self.verify_checksum(conn, key, expected, book.checksum_bitfinex(), recv_ns)

    # --- trades, ticker, candles, status ------------------------------------------------------
    def _on_trade(self, conn: Connection, msg: m.TradeUpdate, data: bytes, recv_ns: int) -> None:
        """``te`` (published) and ``tu`` (published if its ``te`` was not)."""
        if msg.tag != "te" and msg.tag != "tu":  # (routed as the channel's common message)
            self._unrouted(conn, data, recv_ns)
            return
        self._trades(self._channel(conn, msg, data, recv_ns), (msg.trade,), data, recv_ns)

    def _on_trades(self, conn: Connection, msg: m.TradesSnapshot, data: bytes, recv_ns: int) -> None:
        """A trades snapshot (newest first): published oldest first."""
        self._trades(self._channel(conn, msg, data, recv_ns), msg.trades[::-1], data, recv_ns)

    def _trades(self, ch: _Chan, rows, data: bytes, recv_ns: int) -> None:
        for t in rows:
            a = t.amount
            # (``_ok_pos(t.price)`` and ``ms_ok(t.mts)``, inline)
            if not (0.0 < t.price < MAX_FLOAT and a == a and a != 0.0 and -MAX_FLOAT < a < MAX_FLOAT
                    and 0 <= t.mts < MAX_MS and 0 <= t.id < 1 << 63):
                self.bad_input("malformed trade", f"{t.id!r} {t.mts!r} {a!r} {t.price!r}", data)
                return
        seen = self._seen.get(ch.native)
        if seen is None:
            seen = self._seen[ch.native] = {}
        atom_us = recv_ns // 1000
        out, exchange, symbol = self.rows("trades"), self.exchange, ch.symbol
        for t in rows:
            tid = t.id
            if tid in seen:
                continue
            seen[tid] = None
            if len(seen) > _SEEN_TRADES:
                del seen[next(iter(seen))]
            a = t.amount
            buy = a > 0
            # the typed writer checks what the checks above leave: a price or amount of 1e15 or more
            # (no market's) is a malformed trade, as on every venue
            if not out.trade(exchange, symbol, t.price, a if buy else -a, buy, tid, t.mts, atom_us):
                self.bad_input("malformed trade", f"{t.id!r} {t.mts!r} {a!r} {t.price!r}", data)

    def _on_ticker(self, conn: Connection, msg: m.TickerMsg, data: bytes, recv_ns: int) -> None:
        ch = self._channel(conn, msg, data, recv_ns)
        t = msg.ticker
        if not (ok_float(t.bid) and ok_float(t.bid_size) and ok_float(t.ask) and ok_float(t.ask_size)):
            self.bad_input("malformed ticker", f"{t.bid!r} {t.bid_size!r} {t.ask!r} {t.ask_size!r}", data)
            return
        atom_us = recv_ns // 1000
        # (a value of 1e15 or more, which ok_float takes, the writer refuses: malformed, as on every venue)
        if not self.rows("ticker").quote(self.exchange, ch.symbol, t.bid, t.bid_size, t.ask, t.ask_size, atom_us // 1000,
                                         atom_us):
            self.bad_input("malformed ticker", f"{t.bid!r} {t.bid_size!r} {t.ask!r} {t.ask_size!r}", data)

    def _on_candle(self, conn: Connection, msg: m.CandleUpdate, data: bytes, recv_ns: int) -> None:
        self._candles(self._channel(conn, msg, data, recv_ns), (msg.candle,), data, recv_ns)

    def _on_candles(self, conn: Connection, msg: m.CandlesSnapshot, data: bytes, recv_ns: int) -> None:
        """A candles snapshot: its newest candle only."""
        ch = self._channel(conn, msg, data, recv_ns)
        if msg.candles:
            self._candles(ch, (max(msg.candles, key=lambda c: c.mts),), data, recv_ns)

    def _candles(self, ch: _Chan, rows, data: bytes, recv_ns: int) -> None:
        tf = ch.timeframe
        interval = timeframe_name(tf)
        atom_us = recv_ns // 1000
        for c in rows:
            if not (ms_ok(c.mts) and ok_float(c.open) and ok_float(c.close) and ok_float(c.high) and ok_float(c.low) and ok_float(c.volume)):
                self.bad_input("malformed candle", repr(c), data)
                continue
            closed = c.mts < ch.last_mts
            if c.mts > ch.last_mts:
                ch.last_mts = c.mts
            self.emit("candle", Candle(self.exchange, ch.symbol, c.mts, candle_end(c.mts, tf), interval, 0, closed,
                                       c.open, c.high, c.low, c.close, c.volume, atom_us // 1000, atom_us))

    def _on_status(self, conn: Connection, msg: m.StatusMsg, data: bytes, recv_ns: int) -> None:
        """A ``deriv:SYMBOL`` status row: funding rate and open interest."""
        ch = self._channel(conn, msg, data, recv_ns)
        s = msg.status
        if not ms_ok(s.mts):
            self.bad_input("malformed status", f"time {s.mts!r}", data)
            return
        atom_us = recv_ns // 1000
        if self._want_funding and s.current_funding is not None:
            rate = s.current_funding
            predicted = s.next_funding_accrued if s.next_funding_accrued is not None else 0.0
            mark = s.mark_price if s.mark_price is not None else 0.0
            nxt = s.next_funding_mts if s.next_funding_mts is not None else 0
            if math.isfinite(rate) and math.isfinite(predicted) and abs(rate) < MAX_FLOAT and abs(
                    predicted) < MAX_FLOAT and ok_float(mark) and ms_ok(nxt):
                self.emit("funding_rate", FundingRate(self.exchange, ch.symbol, mark, rate, nxt, predicted, s.mts,
                                                      atom_us))
            else:
                self.bad_input("malformed funding rate", f"{rate!r} {predicted!r} {mark!r} {nxt!r}", data)
        if self._want_oi and s.open_interest is not None:
            if ok_float(s.open_interest):
                self.emit("open_interest", OpenInterest(self.exchange, ch.symbol, s.open_interest, s.mts, atom_us))
            else:
                self.bad_input("malformed open interest", repr(s.open_interest), data)

    # --- events -------------------------------------------------------------------------------
    def _on_event(self, conn: Connection, ev: m.Event, data: bytes, recv_ns: int) -> None:
        name = ev.event
        if name == "subscribed":
            self._on_subscribed(conn, ev, data, recv_ns)
        elif name == "unsubscribed":
            if ev.chanId is not None:
                self._state(conn).bind(ev.chanId, None)
        elif name == "info":
            self._on_info(conn, ev, data, recv_ns)
        elif name == "conf":
            st = self._state(conn)
            if ev.status == "OK" and ev.flags is not None:
                st.flags = ev.flags
                st.seq_on = bool(ev.flags & SEQ_ALL)
            else:
                self.bad_input("conf failed", f"status {ev.status!r} flags {ev.flags!r}", data)
        elif name == "error":
            self._on_error(conn, ev, data, recv_ns)
        elif name == "pong":
            return
        else:
            self.bad_input("unknown event", repr(name), data)

    def _on_subscribed(self, conn: Connection, ev: m.Event, data: bytes, recv_ns: int) -> None:
        channel, chan_id = ev.channel, ev.chanId
        timeframe = ""
        native = ev.symbol or ""
        if channel == "book":
            kind = RAW if ev.prec == "R0" else BOOK
            if ev.prec not in ("P0", "R0"):
                self.bad_input("unsupported book precision", repr(ev.prec), data)
                return
        elif channel == "trades":
            kind = TRADES
        elif channel == "ticker":
            kind = TICKER
        elif channel == "candles":
            kind = CANDLES
            prefix, _, rest = (ev.key or "").partition(":")
            timeframe, _, native = rest.partition(":")
            if prefix != "trade" or not timeframe_ok(timeframe):
                self.bad_input("unsupported candles key", repr(ev.key), data)
                return
        elif channel == "status":
            kind = STATUS
            prefix, _, native = (ev.key or "").partition(":")
            if prefix != "deriv":
                self.bad_input("unsupported status key", repr(ev.key), data)
                return
        else:
            self.bad_input("unknown channel", f"subscribed to {channel!r}", data)
            return
        if chan_id is None or not native:
            self.bad_input("malformed subscribed event", f"chanId {chan_id!r} symbol {native!r}", data)
            return
        if not self.known(native, data):
            return
        key = native + RAW_SUFFIX if kind == RAW else native
        if kind == RAW:
            self._raw_book(native)
        st = self._state(conn)
        ch = _Chan(kind, native, key, self.symbol_of(native), timeframe, st)
        st.bind(chan_id, ch)
        self.status(self.symbol_of(native), "subscribed", KIND_CHANNELS[kind], recv_ns)

    def _on_info(self, conn: Connection, ev: m.Event, data: bytes, recv_ns: int) -> None:
        code = ev.code
        if code is None:
            return  # the greeting: {"event":"info","version":2,"platform":{"status":1}}
        st = self._state(conn)
        if code == INFO_RECONNECT:
            conn.reconnect(f"bitfinex info {code}: {ev.msg or 'server restart'}")
        elif code == INFO_MAINTENANCE_START:
            st.paused = True
            self._gap(conn, st, f"exchange maintenance ({code})", recv_ns, count=False)
        elif code == INFO_MAINTENANCE_END:
            st.paused = False
            self._resubscribe_all(conn, st)

    def _on_error(self, conn: Connection, ev: m.Event, data: bytes, recv_ns: int) -> None:
        detail = f"{ev.code}: {ev.msg or '(no message)'}"
        self.bad_input("exchange error", detail, data)
        native = ev.symbol or ""
        if not native and ev.key:  # "deriv:tBTCF0:USTF0", "trade:1m:tBTCUSD"
            native = ev.key[6:] if ev.key.startswith("deriv:") else ev.key.split(":", 2)[-1]
        symbol = ""
        if native:
            try:
                symbol = self.symbol_of(native)
            except KeyError:
                symbol = ""
        if ev.channel or symbol:
            self.status(symbol, "stopped", f"{ev.channel or ''} error {detail}", recv_ns)
