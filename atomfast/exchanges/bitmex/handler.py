"""BitMEX (``wss://ws.bitmex.com/realtime``), exchange name ``bitmex``: perpetuals, dated
futures (and spot pairs where listed).

Channel map (atomfast topic -> BitMEX table, subscribed as ``table:SYMBOL``):

==============  ================  ==========================================================
topic           table             published from
==============  ================  ==========================================================
lob (+spread)   ``orderBookL2``   partial + insert/update/delete keyed by ``id`` (full depth)
trades          ``trade``         each trade; ``side`` = taker side, ``trdMatchID`` = id
ticker          ``quote``         best bid/ask price and size
funding_rate    ``instrument``    ``fundingRate``, ``indicativeFundingRate``,
                                  ``fundingTimestamp``, ``markPrice`` (perpetuals)
open_interest   ``instrument``    ``openInterest`` (contracts)
candle          ``tradeBin1m``    one closed 1-minute bin
liquidations    ``liquidation``   each liquidation order once (``insert``, or a ``partial``
                                  row not yet published); ``side`` the order's
==============  ================  ==========================================================

Books: a ``partial`` is the whole book (status ``snapshot`` first); ``insert`` adds levels,
``update`` sets a level's new total ``size``, ``delete`` removes it, each row keyed by ``id``.
We keep ``id -> (side, price)`` per symbol: the recorded 2021 capture sends no price on updates
and deletes (BitMEX sends it on every action since 2023; where it comes it must agree with the
price known for that id). BitMEX's rule for the start: messages that come before the ``partial``
are dropped ("drop any messages received until you have received the partial"). BitMEX has no
sequence numbers and no checksum: an update or delete of an ``id`` we do not hold, or an
``id`` whose side or price disagrees with what we hold, means a message was lost: that is a gap
(``metrics.gaps`` += 1) and the symbol is resynced (status ``resync``, book dropped, its rows
ignored) by unsubscribing and subscribing its ``orderBookL2`` again, which brings a fresh
``partial``. A message is checked whole, per symbol, before that symbol's book is touched; a
malformed one resyncs the symbol. The common case (a live book's rows of one market, ids in the
state the action expects, strict times, plain decimals) is one C call
(``atomfast.kit.idlevels.IdRows``: the book, the ids, the spread); anything else is read here step
by step, which says what is amiss. ``event_timestamp`` of a level is its row's ``timestamp``
(BitMEX has sent one on every book row since 2022) or, in older streams, the receive time.

Trades: every ``trade`` row (``side`` Buy/Sell is the taker's); the ``partial`` that a
(re)subscription brings repeats recent trades: those already published are skipped.
Sizes everywhere are BitMEX contracts, as the venue gives them (``XBTUSD``: 1 USD each).

funding_rate (when a funding field changes, or with the partial): ``funding_rate`` =
``fundingRate`` (the rate of the coming funding), ``predicted_rate`` = ``indicativeFundingRate``,
``next_funding_time`` = ``fundingTimestamp``, ``mark_price`` = the last ``markPrice``. Instrument
updates carry only the fields that changed, so the last value of each is kept per symbol. The
``funding`` table (one row per settlement, every 8 h) adds nothing the ``instrument`` table does
not already say, and is not subscribed.

Liquidations: the ``liquidation`` table lists the liquidation orders resting in the book
(``partial`` on subscribe, ``insert`` when one is entered, ``update`` as it fills, ``delete`` when
it is gone): one event per order, when it is first seen, with ``order_id`` = ``orderID``, ``size``
= ``leavesQty``, ``price``; its ``side`` is the order's (Sell closes a long position), as our
schema wants. The table has no timestamp: ``event_timestamp`` is the receive time. The ids of
orders still in the book are kept so a re-subscription's ``partial`` publishes no order twice.

Frames that cannot be read (nothing in BitMEX's book tells a lost message, so a book message
cut short or garbled would leave its book silently wrong): a frame that is no JSON, or JSON that
is no well-formed envelope, is counted (``malformed JSON``, ``malformed message``, ``not a JSON
object``) and, unless it is clearly no book message (it names another table: ``"table":"quote"``;
it is a control message: ``{"info"``, ``{"success"``, ``{"status"``, ``{"error"``...; it is
``pong`` or a part of it), every ``orderBookL2`` book of its connection (those whose partial came
on it) resyncs with the reason ``unreadable frame: <what>``. Where the frame may have been a
``partial`` (its action is ``partial`` or cannot be read), the connection's books still waiting
for a partial (subscribed, or already resyncing) are subscribed again too: their partial may be
the message lost. A book message whose envelope reads but whose rows do not resyncs the symbols
its rows name, or, where it names none, every book of the connection.

Keep-alive: BitMEX answers the text ``ping`` with ``pong``; we send it every ``ping_interval``
(its docs: ping when nothing came for 5 s); a silent connection is reconnected by the watchdog.
"""
from __future__ import annotations

import math
import re
from itertools import groupby, repeat
from operator import attrgetter, itemgetter
from typing import Sequence

import msgspec
from msgspec import UNSET

from ...book import parse_ticks
from ...events import Candle, FundingRate, Liquidation, Lob, OpenInterest, Spread
from ...kit.idlevels import IdRows, iso_ms
from ...scheme import (ASK, BID, BOOK_ERRORS, DECODE_ERRORS, MALFORMED, TOP_CHANGED, Connection, Dispatch, Instrument,
                       RestEndpoint, Routes, Scheme, WebsocketEndpoint)
from .._common import MAX_FLOAT, ok_float
from . import messages as m
from .parse import ALIASES, iso_to_ms, parse_instruments, symbol_instrument, valid_level

_ZERO = b"0"
_SIDES = {"Buy": BID, "Sell": ASK}
_row_symbol = attrgetter("symbol")
_row_id = attrgetter("id")
_row_price = attrgetter("price")
#: a run of a partial: rows of one side and one timestamp
_row_run = attrgetter("side", "timestamp")
#: ``_check_rows``' ops: a run (side, event ms) and its level
_op_run = itemgetter(0, 2)
_op_level = itemgetter(1)
_TAKER = {"Buy": "buy", "Sell": "sell"}
_BIN_MINUTES = {"tradeBin1m": 1, "tradeBin5m": 5, "tradeBin1h": 60, "tradeBin1d": 1440}
_BIN_NAMES = {1: "1m", 5: "5m", 60: "1h", 1440: "1d"}
_any_decoder = msgspec.json.Decoder()
#: what an unreadable frame is, read from its bytes: the table it names, its action, a control
#: message's first key (BitMEX sends compact JSON, the table first)
_TABLE = re.compile(rb'"table"\s*:\s*"([^"\\]*)"')
_ACTION = re.compile(rb'"action"\s*:\s*"([^"\\]*)"')
_CONTROL = re.compile(rb'\s*\{\s*"(?:info|success|error|status|subscribe|unsubscribe|request)"')
_BOOK_ACTIONS = (b"insert", b"update", b"delete")
#: ``conn.state`` key: the natives whose orderBookL2 partial came on the connection
_BOOKS = "bitmex_books"


class _Unreadable(msgspec.ValidationError):
    """A frame that is no JSON at all, raised by the dispatch's decoder as a refusal (a
    ``ValidationError``) so that it reaches ``_on_refused`` with its connection."""


def _envelope_decode(data: bytes, _decode=m.envelope_decoder.decode) -> m.Envelope:
    try:
        return _decode(data)
    except msgspec.ValidationError:
        raise
    except MALFORMED as exc:
        raise _Unreadable(str(exc)) from None


class _EnvelopeDecoder:
    """The dispatch's decoder: ``m.envelope_decoder``, a frame that is no JSON refused as
    ``_Unreadable``."""

    __slots__ = ()
    decode = staticmethod(_envelope_decode)


def _valid_size(size: bytes, decimals: int) -> bool:
    if size[:1] in (b"-", b"+", b""):
        return False
    try:
        return parse_ticks(size, decimals) >= 0
    except (ValueError, TypeError, OverflowError):
        return False


def _same_price(a: bytes, b: bytes, decimals: int) -> bool:
    if a == b:
        return True
    try:
        return parse_ticks(a, decimals) == parse_ticks(b, decimals)
    except (ValueError, TypeError, OverflowError):
        return False


class _Malformed(Exception):
    pass


class _Gap(Exception):
    pass


class BitmexScheme(Scheme):
    exchange = "bitmex"
    default_symbols = ("BTC-USD-PERP", "ETH-USD-PERP")
    unknown_market = "unknown symbol"
    websocket_endpoints = (WebsocketEndpoint("wss://ws.bitmex.com/realtime"),)
    rest_endpoint = RestEndpoint("https://www.bitmex.com", Routes(instruments="/api/v1/instrument/active"))
    channels = {"lob": "orderBookL2", "trades": "trade", "ticker": "quote", "funding_rate": "instrument",
                "open_interest": "instrument", "candle": "tradeBin1m", "liquidations": "liquidation"}
    default_channels = ("lob", "trades", "ticker", "funding_rate", "open_interest")
    aliases = ALIASES
    symbols_per_message = 20
    ping_interval = 5.0
    silence_timeout = 15.0

    def __init__(self, emit, metrics=None, instruments=None, symbols: Sequence[str] = (),
                 channels: Sequence[str] = ()) -> None:
        super().__init__(emit, metrics, instruments, symbols, channels)
        #: symbol -> {row id: (side, price as sent)} of its live book
        self.ids: dict[str, dict[int, tuple[int, bytes]]] = {}
        #: symbol -> (time of the newest trade published, trdMatchIDs published at that time)
        self._trades_seen: dict[str, tuple[int, set[str]]] = {}
        #: symbol -> [markPrice, fundingRate, indicativeFundingRate, fundingTimestamp ms]
        self._instrument_state: dict[str, list] = {}
        #: orderID of each liquidation order published and still in the book -> its symbol
        self._liquidations: dict[str, str] = {}
        #: a book message's rows applied in C in the common case (atomfast.kit.idlevels)
        id_rows = IdRows("Buy", "Sell", Lob, Spread, self.exchange, BID, ASK)
        self._id_message, self._id_partial, self._id_market = id_rows.message, id_rows.partial, id_rows.market
        wanted = set(self.channel_names)
        self._want_funding = "funding_rate" in wanted
        self._want_oi = "open_interest" in wanted

    # --- instruments and symbols --------------------------------------------------------------
    @classmethod
    def parse_instruments(cls, body: bytes) -> dict[str, Instrument]:
        return parse_instruments(body)

    def guess_instrument(self, native: str) -> Instrument:
        return symbol_instrument(native)

    # --- subscriptions ------------------------------------------------------------------------
    def subscribe_messages(self, channel: str, natives: list[str]) -> list[str | bytes]:
        return [m.encode({"op": "subscribe", "args": [f"{channel}:{n}" for n in natives]}).decode()]

    def resubscribe(self, conn: Connection, native: str) -> None:
        topic = f"{self.channels['lob']}:{native}"
        conn.send(m.encode({"op": "unsubscribe", "args": [topic]}).decode())
        conn.send(m.encode({"op": "subscribe", "args": [topic]}).decode())

    def ping_message(self) -> str:
        return "ping"

    # --- frames -------------------------------------------------------------------------------
    # The envelope is decoded (its rows stay raw) and routed by its ``table``; control messages
    # (no table) go to ``_on_control``. What is no JSON object (BitMEX's ``pong``) or names a
    # table we do not take goes to ``_on_other``; what is no JSON, or no envelope, to
    # ``_on_refused``.
    dispatch = Dispatch({"orderBookL2": "_on_book", "trade": "_on_trades", "quote": "_on_quotes",
                         "instrument": "_on_instruments", "liquidation": "_on_liquidations",
                         **{t: "_on_bins" for t in _BIN_MINUTES}, "": "_on_control"},
                        decoder=_EnvelopeDecoder(), field="table", lead=b"{", fallback="_on_other",
                        refused="_on_refused")

    def _on_other(self, conn: Connection, data: bytes, recv_ns: int) -> None:
        if data[:1] != b"{":
            if data != b"pong":
                self.bad_input("not a JSON object", "frame does not start with {", data)
                if not (data and b"pong".startswith(data)):  # (a pong cut short is no book message)
                    self._unreadable(conn, data, "not a JSON object", recv_ns)
            return
        try:
            table = m.envelope_decoder.decode(data).table
        except DECODE_ERRORS:  # (not expected: the dispatch decoded it)
            table = None
        self.bad_input("unknown table", repr(table), data)

    def _on_refused(self, conn: Connection, data: bytes, recv_ns: int, exc: Exception) -> None:
        """A frame that is no JSON (``_Unreadable``), or JSON that is no envelope: counted, and
        the connection's books resync unless it is clearly no book message."""
        kind = "malformed JSON" if exc.__class__ is _Unreadable else "malformed message"
        self.bad_input(kind, str(exc), data)
        self._unreadable(conn, data, f"{kind}: {exc}"[:120], recv_ns)

    def _unreadable(self, conn: Connection, data: bytes, what: str, recv_ns: int) -> None:
        """A frame that could not be read: unless it is clearly no book message (another table,
        a control message), the books of ``conn`` resync (reason ``unreadable frame: <what>``);
        where it may have been a ``partial``, the books waiting for one are subscribed again."""
        found = _TABLE.search(data)
        if found is not None:
            if found.group(1) != b"orderBookL2":
                return  # another table's message: no book in it
            action = _ACTION.search(data)
            partial = action is None or action.group(1) not in _BOOK_ACTIONS
        elif _CONTROL.match(data) is not None:
            return  # a welcome, a subscription's answer or an error
        else:
            partial = True  # cannot be classified: it may have been any book message
        reason = f"unreadable frame: {what}"
        carried = conn.state.get(_BOOKS, ())
        waiting = [n for channel, natives in conn.plan.subscriptions if channel == "orderBookL2"
                   for n in natives if n not in carried] if partial else []
        for native in sorted(carried):
            if native in self.unsynced:
                if partial:
                    self.resubscribe(conn, native)  # its new partial may be the message lost
            else:
                self.resync(conn, native, reason, recv_ns)
        for native in waiting:
            if native in self.unsynced:
                self.resubscribe(conn, native)
            elif native in self.instruments:
                self.resync(conn, native, reason, recv_ns)

    def _on_control(self, conn: Connection, env: m.Envelope, data: bytes, recv_ns: int) -> None:
        if env.success is not None or env.subscribe or env.unsubscribe:
            self._on_subscribed(env, data, recv_ns)
        elif env.error or env.status:
            self._on_error(env, data, recv_ns)
        elif env.info:
            return  # welcome
        else:
            self.bad_input("unknown message", "no table, info, success or error", data)

    def _on_error(self, env: m.Envelope, data: bytes, recv_ns: int) -> None:
        """``{"status": 400, "error": "...", "request": {"op": "subscribe", "args": [...]}}``: counted;
        a refused subscription stops those topics (status ``stopped`` per symbol)."""
        reason = f"{env.status} {env.error}"[:200]
        self.bad_input("exchange error", reason, data)
        req = env.request
        if req is None or req.op != "subscribe":
            return
        args = [req.args] if isinstance(req.args, str) else (req.args or [])
        for topic in args:
            table, _, native = topic.partition(":")
            symbol = self.symbol_of(native) if native in self._symbols or native in self.instruments else ""
            self.status(symbol, "stopped", f"subscribe {table} failed: {reason}", recv_ns)

    def _on_subscribed(self, env: m.Envelope, data: bytes, recv_ns: int) -> None:
        if env.unsubscribe:
            return
        if not env.success:
            self.bad_input("subscription error", env.error or env.subscribe, data)
            return
        table, _, native = env.subscribe.partition(":")
        if native and self.known(native, data):
            self.status(self.symbol_of(native), "subscribed", table, recv_ns)

    def _row_symbols(self, raw: msgspec.Raw) -> list[str]:
        """The symbols named by rows that failed validation (to resync their books)."""
        try:
            rows = _any_decoder.decode(raw)
        except DECODE_ERRORS:
            return []
        if not isinstance(rows, list):
            return []
        out = []
        for r in rows:
            s = r.get("symbol") if isinstance(r, dict) else None
            if isinstance(s, str) and s not in out:
                out.append(s)
        return out

    # --- book ---------------------------------------------------------------------------------
    def _on_book(self, conn: Connection, env: m.Envelope, data: bytes, recv_ns: int) -> None:
        action = env.action
        try:
            rows = m.l2_decoder.decode(env.data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed book message", str(exc), data)
            natives = self._row_symbols(env.data)
            if env.filter is not None and env.filter.symbol:
                natives.append(env.filter.symbol)
            if not natives:  # whose book it was cannot be told: every book of the connection
                self._unreadable(conn, data, f"malformed book message: {exc}"[:120], recv_ns)
                return
            for native in natives:
                if native in self.books or (action == "partial" and native in self.instruments):
                    self.resync(conn, native, "malformed book message", recv_ns)
            return
        # the common case in one C call: a live book's rows of one market, nothing amiss
        if self._id_message(self, action, rows, recv_ns) >= 0:
            return
        if action == "partial":
            self._on_partial(conn, env, rows, data, recv_ns)
            return
        if action not in ("insert", "update", "delete"):
            self.bad_input("malformed book message", f"action {action!r}", data)
            return
        if not rows:
            return
        natives = set(map(_row_symbol, rows))
        if len(natives) == 1:  # (one symbol: nearly every message)
            first = rows[0].symbol
            if first in self._symbols or self.known(first, data):
                self._apply_rows(conn, first, rows, action, data, recv_ns)
            return
        groups: dict[str, list[m.L2Row]] = {}
        for r in rows:
            groups.setdefault(r.symbol, []).append(r)
        if not all(n in self._symbols or self.known(n, data) for n in groups):
            # a row naming no market: the message is corrupt, and the rows of the others are lost
            for native in groups:
                if native in self.books:
                    self.resync(conn, native, "book message with a row of no market", recv_ns)
            return
        for native, group in groups.items():
            self._apply_rows(conn, native, group, action, data, recv_ns)

    def _apply_rows(self, conn: Connection, native: str, rows: list[m.L2Row], action: str, data: bytes,
                    recv_ns: int) -> None:
        book = self.books.get(native)
        if book is None or native in self.unsynced:
            return  # before its partial (BitMEX: drop them), or resyncing
        if len(rows) == 1 and self._apply_row(native, book, rows[0], action, recv_ns):
            return
        try:
            ops, changes = self._check_rows(self.ids[native], rows, action, book.price_decimals,
                                            book.size_decimals, recv_ns // 1_000_000)
        except _Gap as exc:
            self.gap(conn, native, str(exc), recv_ns, kind="book gap")
            return
        except _Malformed as exc:
            self.book_failed(conn, native, "malformed book row", str(exc), data, recv_ns)
            return
        atom_us = recv_ns // 1000
        try:
            flags = self._apply_runs(book, ops, self._symbols[native], atom_us)
        except BOOK_ERRORS as exc:  # not expected after the checks above
            self.book_failed(conn, native, "book refused a level", str(exc), data, recv_ns)
            return
        if changes:
            ids = self.ids[native]
            for rid, entry in changes.items():
                if entry is None:
                    ids.pop(rid, None)
                else:
                    ids[rid] = entry
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, ops[-1][2], atom_us)

    def _apply_row(self, native: str, book, r: m.L2Row, action: str, recv_ns: int) -> bool:
        """A message of one row (nearly every one) in the common case: a well-formed row of an
        ``id`` in the expected state (an insert of an id not held; an update or delete of one held
        on that side, at the price held where a price is sent), applied as ``_apply_rows`` would.
        False, with nothing changed, for anything else: ``_apply_rows`` then checks the row whole
        and says what is wrong (the book refusing the level means a malformed row)."""
        side = _SIDES.get(r.side)
        if side is None:
            return False
        ts = r.timestamp
        if ts:
            try:
                event_ms = iso_to_ms(ts)
            except ValueError:
                return False
        else:
            event_ms = recv_ns // 1_000_000
        ids = self.ids[native]
        rid = r.id
        known = ids.get(rid)
        if action == "insert":
            if known is not None:
                return False
            price = bytes(r.price)
            level = (price, r.size)
        else:
            if known is None or known[0] != side:
                return False
            price = known[1]
            if r.price and bytes(r.price) != price:
                return False
            level = (price, r.size if action == "update" else _ZERO)
        atom_us = recv_ns // 1000
        try:
            flags = book.apply_sides(side, [level], None, self.rows("lob"), Lob, self.exchange, self._symbols[native],
                                     event_ms, atom_us)
        except BOOK_ERRORS:
            return False  # nothing applied
        if action == "insert":
            ids[rid] = (side, price)
        elif action == "delete":
            del ids[rid]
        if flags & TOP_CHANGED:
            self.emit_spread(native, book, event_ms, atom_us)
        return True

    def _apply_runs(self, book, ops: list[tuple[int, tuple[bytes, bytes], int]], symbol: str, atom_us: int) -> int:
        """``(side, (price, size), event ms)`` in message order onto the book, a book call per
        run of one side and one time (each row keeps its own event time); returns the flags."""
        rows_out, exchange = self.rows("lob"), self.exchange
        flags = 0
        for (side, event_ms), run in groupby(ops, _op_run):
            flags |= book.apply_sides(side, list(map(_op_level, run)), None, rows_out, Lob, exchange, symbol,
                                      event_ms, atom_us)
        return flags

    @staticmethod
    def _check_rows(ids: dict, rows: list[m.L2Row], action: str, pd: int, sd: int, recv_ms: int):
        """The (side, price, size, event ms) of each row, and the id changes, without touching
        anything; raises _Gap (a row that shows a lost message) or _Malformed."""
        ops = []
        changes: dict[int, tuple[int, bytes] | None] = {}
        for r in rows:
            side = _SIDES.get(r.side)
            if side is None:
                raise _Malformed(f"side {r.side!r}")
            rid = r.id
            known = changes[rid] if rid in changes else ids.get(rid)
            ts = r.timestamp
            if ts:
                try:
                    event_ms = iso_to_ms(ts)
                except ValueError as exc:
                    raise _Malformed(str(exc)) from None
            else:
                event_ms = recv_ms
            if action == "insert":
                price = bytes(r.price)
                size = bytes(r.size)
                if not valid_level(price, size, pd, sd):
                    raise _Malformed(f"level {price!r} {size!r}")
                if known is not None and (known[0] != side or not _same_price(known[1], price, pd)):
                    raise _Gap(f"insert of id {rid} held at another level")
                changes[rid] = (side, price)
                ops.append((side, (price, size), event_ms))
                continue
            if known is None:
                raise _Gap(f"{action} of unknown id {rid}")
            if known[0] != side:
                raise _Gap(f"{action} of id {rid} on the other side")
            price = known[1]
            if r.price:
                sent = bytes(r.price)
                if sent != price and not _same_price(sent, price, pd):
                    if not valid_level(sent, _ZERO, pd, sd):
                        raise _Malformed(f"price {sent!r}")
                    raise _Gap(f"{action} of id {rid} at price {sent.decode()}, held at {price.decode()}")
            if action == "update":
                size = bytes(r.size)
                if not _valid_size(size, sd):
                    raise _Malformed(f"size {size!r}")
            else:
                size = _ZERO
                changes[rid] = None
            ops.append((side, (price, size), event_ms))
        return ops, changes

    def _on_partial(self, conn: Connection, env: m.Envelope, rows: list[m.L2Row], data: bytes, recv_ns: int) -> None:
        filtered = env.filter.symbol if env.filter is not None else ""
        native = self._id_market(rows)  # (one symbol: nearly every partial)
        if native is not None and (not filtered or filtered == native):
            groups = {native: rows}
        else:
            groups = {}
            if filtered:
                groups[filtered] = []
            for r in rows:
                groups.setdefault(r.symbol, []).append(r)
        recv_ms = recv_ns // 1_000_000
        atom_us = recv_ns // 1000
        for native, group in groups.items():
            if not self.known(native, data):
                continue
            try:
                # the rows in runs of one side and one time, and the ids {id: (side, price as sent)}:
                # in C where every side and time is in the common form (atomfast.kit.idlevels)
                prepared = self._id_partial(group, recv_ms)
                runs, ids = prepared if prepared is not None else (self._partial_runs(group, recv_ms), None)
                # two runs, one a side, of one time (a partial of a stream without row times): one
                # apply_sides call of both, its levels' parse kept from the check
                both = len(runs) == 2 and runs[0][0] != runs[1][0] and runs[0][2] == runs[1][2]
                book = self.book(native)
                try:  # every level parsed before the book is cleared for them (the rows are levels)
                    if both:
                        book.check_sides(runs[0][1], runs[1][1])
                    else:
                        book.check_sides(group)
                except BOOK_ERRORS as exc:
                    raise _Malformed(str(exc)) from None
            except _Malformed as exc:
                self.book_failed(conn, native, "malformed book partial", str(exc), data, recv_ns)
                continue
            snap_ms = max([run[2] for run in runs]) if group and group[0].timestamp else 0
            book = self.begin_snapshot(native, recv_ns, snap_ms)
            if ids is None:  # id -> (side, price as sent), built in C run by run
                ids = {}
                for side, levels, _ in runs:
                    ids.update(zip(map(_row_id, levels), zip(repeat(side), map(bytes, map(_row_price, levels)))))
            self.ids[native] = ids
            carried = conn.state.get(_BOOKS)
            if carried is None:
                carried = conn.state[_BOOKS] = set()
            carried.add(native)
            rows_out, exchange, symbol = self.rows("lob"), self.exchange, self.symbol_of(native)
            if both:
                (side, first, event_ms), (_, second, _) = runs
                flags = book.apply_sides(side, first, second, rows_out, Lob, exchange, symbol, event_ms, atom_us)
            else:
                flags = 0
                for side, levels, event_ms in runs:
                    flags |= book.apply_sides(side, levels, None, rows_out, Lob, exchange, symbol, event_ms, atom_us)
            if flags & TOP_CHANGED:
                self.emit_spread(native, book, snap_ms or recv_ms, atom_us)

    @staticmethod
    def _partial_runs(group: list[m.L2Row], recv_ms: int) -> list[tuple[int, list[m.L2Row], int]]:
        """A partial's rows in runs of one side and one timestamp (a partial is sorted by side and
        its rows share a few timestamps: each distinct one is parsed once), checked in row order:
        ``(side, rows, event ms)``; raises _Malformed."""
        runs = []
        times: dict[str, int] = {}
        for (side_name, ts), run in groupby(group, _row_run):
            side = _SIDES.get(side_name)
            if side is None:
                raise _Malformed(f"side {side_name!r}")
            if not ts:
                event_ms = recv_ms
            else:
                event_ms = times.get(ts)
                if event_ms is None:
                    try:
                        event_ms = times[ts] = iso_to_ms(ts)
                    except ValueError as exc:
                        raise _Malformed(str(exc)) from None
            runs.append((side, list(run), event_ms))
        return runs

    # --- trades, quotes, instruments, bins ----------------------------------------------------
    def _on_trades(self, conn: Connection, env: m.Envelope, data: bytes, recv_ns: int) -> None:
        try:
            rows = m.trade_decoder.decode(env.data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed trade message", str(exc), data)
            return
        parsed = []
        for t in rows:
            taker = _TAKER.get(t.side)
            try:
                ms = iso_to_ms(t.timestamp)
            except ValueError:
                ms = -1
            if taker is None or ms < 0 or not (ok_float(t.price) and ok_float(t.size)) or not t.trdMatchID:
                self.bad_input("malformed trade", f"{t.side!r} {t.price!r} {t.size!r} {t.timestamp!r}", data)
                return
            if not self.known(t.symbol, data):
                return
            parsed.append((t, taker, ms))
        partial = env.action == "partial"
        if partial:
            parsed.sort(key=lambda x: x[2])
        atom_us = recv_ns // 1000
        rows_out, exchange, seen_all = self.rows("trades"), self.exchange, self._trades_seen
        for t, taker, ms in parsed:
            native = t.symbol
            seen = seen_all.get(native)
            if seen is None or ms > seen[0]:
                seen_all[native] = (ms, {t.trdMatchID})
            elif ms == seen[0]:
                if t.trdMatchID in seen[1]:
                    continue  # published already
                seen[1].add(t.trdMatchID)
            elif partial:
                continue  # older than what we published: a repeat
            # the typed writer checks what ok_float leaves: a price of 0, a value of 1e15 or more (no
            # market's) is a malformed trade, as on every venue
            if not rows_out.trade(exchange, self._symbols[native], t.price, t.size, taker == "buy", t.trdMatchID, ms,
                                  atom_us):
                self.bad_input("malformed trade", f"{t.side!r} {t.price!r} {t.size!r} {t.timestamp!r}", data)

    def _on_quotes(self, conn: Connection, env: m.Envelope, data: bytes, recv_ns: int) -> None:
        try:
            rows = m.quote_decoder.decode(env.data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed quote message", str(exc), data)
            return
        out = []
        symbols = self._symbols
        for q in rows:
            bp, bs, ap, asz = q.bidPrice, q.bidSize, q.askPrice, q.askSize
            if bp is None:
                bp = 0.0
            if bs is None:
                bs = 0.0
            if ap is None:
                ap = 0.0
            if asz is None:
                asz = 0.0
            ms = iso_ms(q.timestamp)  # (BitMEX's form, in C; -1: read by iso_to_ms's rules)
            if ms < 0:
                try:
                    ms = iso_to_ms(q.timestamp)
                except ValueError:
                    ms = -1
            # (ok_float inline: 0 <= x < MAX_FLOAT, False for NaN)
            if ms < 0 or not (0.0 <= bp < MAX_FLOAT and 0.0 <= bs < MAX_FLOAT and 0.0 <= ap < MAX_FLOAT
                              and 0.0 <= asz < MAX_FLOAT):
                self.bad_input("malformed quote", f"{bp!r} {bs!r} {ap!r} {asz!r} {q.timestamp!r}", data)
                return
            if q.symbol not in symbols and not self.known(q.symbol, data):
                return
            out.append((q.symbol, bp, bs, ap, asz, ms))
        atom_us = recv_ns // 1000
        rows_out, exchange = self.rows("ticker"), self.exchange
        for native, bp, bs, ap, asz, ms in out:
            # the typed writer checks what ok_float leaves: a value of 1e15 or more (no market's) is
            # a malformed quote, as on every venue
            if not rows_out.quote(exchange, symbols[native], bp, bs, ap, asz, ms, atom_us):
                self.bad_input("malformed quote", f"{bp!r} {bs!r} {ap!r} {asz!r} {ms!r}", data)

    def _on_liquidations(self, conn: Connection, env: m.Envelope, data: bytes, recv_ns: int) -> None:
        try:
            rows = m.liquidation_decoder.decode(env.data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed liquidation message", str(exc), data)
            return
        published = self._liquidations
        if env.action == "delete":
            for r in rows:
                published.pop(r.orderID, None)
            return
        if env.action not in ("partial", "insert"):
            return  # ``update``: the order fills; it was published when it came
        out = []
        for r in rows:
            side = _TAKER.get(r.side)
            price, size = r.price, r.leavesQty
            if (side is None or not r.orderID or len(r.orderID) > 64 or price is None or size is None
                    or not (ok_float(price) and price > 0 and ok_float(size))):
                self.bad_input("malformed liquidation", f"{r.orderID!r} {r.side!r} {price!r} {size!r}", data)
                return
            if not self.known(r.symbol, data):
                return
            out.append((r, side, price, size))
        atom_us = recv_ns // 1000
        if env.action == "partial":  # the whole table of its symbols: what it lacks is gone
            symbols = {r.symbol for r, *_ in out} | ({env.filter.symbol} if env.filter and env.filter.symbol else set())
            current = {r.orderID for r, *_ in out}
            for oid in [o for o, sym in published.items() if sym in symbols and o not in current]:
                del published[oid]
        for r, side, price, size in out:
            if r.orderID in published:
                continue  # a re-subscription's partial repeats it
            published[r.orderID] = r.symbol
            self.emit("liquidations", Liquidation(self.exchange, self._symbols[r.symbol], side, price, size,
                                                  atom_us // 1000, atom_us, r.orderID))

    def _on_instruments(self, conn: Connection, env: m.Envelope, data: bytes, recv_ns: int) -> None:
        try:
            rows = m.instrument_decoder.decode(env.data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed instrument message", str(exc), data)
            return
        recv_ms = recv_ns // 1_000_000
        checked = []
        for r in rows:
            try:
                ms = iso_to_ms(r.timestamp) if r.timestamp is not UNSET else recv_ms
                fts = r.fundingTimestamp
                fts_ms = iso_to_ms(fts) if fts is not UNSET and fts is not None else fts
            except ValueError as exc:
                self.bad_input("malformed instrument", str(exc), data)
                return
            for name in ("markPrice", "openInterest"):
                v = getattr(r, name)
                if v is not UNSET and v is not None and not ok_float(v):
                    self.bad_input("malformed instrument", f"{name} {v!r}", data)
                    return
            for name in ("fundingRate", "indicativeFundingRate"):
                v = getattr(r, name)
                if v is not UNSET and v is not None and not math.isfinite(v):
                    self.bad_input("malformed instrument", f"{name} {v!r}", data)
                    return
            if r.symbol.startswith("."):
                continue  # an index (.BXBT), not a market
            if not self.known(r.symbol, data):
                return
            checked.append((r, ms, fts_ms))
        atom_us = recv_ns // 1000
        partial = env.action == "partial"
        for r, ms, fts_ms in checked:
            native = r.symbol
            state = self._instrument_state.get(native)
            if state is None:
                state = self._instrument_state[native] = [None, None, None, None]
            if r.markPrice is not UNSET:
                state[0] = r.markPrice
            funding_changed = partial
            if r.fundingRate is not UNSET:
                state[1] = r.fundingRate
                funding_changed = True
            if r.indicativeFundingRate is not UNSET:
                state[2] = r.indicativeFundingRate
                funding_changed = True
            if fts_ms is not UNSET:
                state[3] = fts_ms
                funding_changed = True
            symbol = self._symbols[native]
            if self._want_funding and funding_changed and state[1] is not None:
                self.emit("funding_rate", FundingRate(
                    self.exchange, symbol, state[0] if state[0] is not None else 0.0, state[1],
                    state[3] if state[3] is not None else 0, state[2] if state[2] is not None else 0.0, ms, atom_us))
            if self._want_oi and r.openInterest is not UNSET and r.openInterest is not None:
                self.emit("open_interest", OpenInterest(self.exchange, symbol, r.openInterest, ms, atom_us))

    def _on_bins(self, conn: Connection, env: m.Envelope, data: bytes, recv_ns: int) -> None:
        minutes = _BIN_MINUTES[env.table]
        try:
            rows = m.tradebin_decoder.decode(env.data)
        except DECODE_ERRORS as exc:
            self.bad_input("malformed trade bin", str(exc), data)
            return
        out = []
        for b in rows:
            if b.open is None or b.high is None or b.low is None or b.close is None:
                continue  # a bin without a price (no trade ever)
            vol = b.volume if b.volume is not None else 0.0
            try:
                end = iso_to_ms(b.timestamp)
            except ValueError:
                end = -1
            prices_ok = (ok_float(b.open) and ok_float(b.high) and ok_float(b.low) and ok_float(b.close)
                         and ok_float(vol))
            if end < minutes * 60_000 or not prices_ok or not 0 <= b.trades < 2**31:
                self.bad_input("malformed trade bin", f"{b.timestamp!r} {b.open!r} {b.close!r} {b.trades!r}", data)
                return
            if not self.known(b.symbol, data):
                return
            out.append((b, end, vol))
        atom_us = recv_ns // 1000
        for b, end, vol in out:
            self.emit("candle", Candle(self.exchange, self._symbols[b.symbol], end - minutes * 60_000, end,
                                       _BIN_NAMES[minutes], b.trades, True, b.open, b.high, b.low, b.close, vol, end,
                                       atom_us))
