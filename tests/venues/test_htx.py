"""HTX (formerly Huobi): spot (``htx``), USDT-margined swaps (``htx-futures``), coin-margined swaps.

Recorded data:
- ``cryptofeed/HUOBI.ws.44.0`` + ``HUOBI.0`` (2021-04-17, ``wss://api.huobi.pro/ws``): gzip frames of
  ``market.$symbol.depth.step0`` (the top 150 as a whole, once a second) and ``trade.detail`` of
  10 markets, with the ``/v1/common/symbols`` listing. Its values are asserted against an
  independent reference below (gzip + json with Decimal numbers, plain dicts).
- ``tests/data/htx/HTX_FUTURES.ws.1.0`` + ``.0``: single USDT-M messages written in the capture
  format (gzip payloads): the depth snapshot, trade, bbo and kline of BTC-USDT are real messages
  from crypto-msg-parser's tests (tests/huobi.rs); the funding notification too; the liquidation
  is HTX's documentation example (as quoted in cryptofeed's huobi_swap.py); the listing is a real
  ``swap_contract_info`` answer (quoted in a public test suite). See tests/data/htx/README.md.

The sync rules are exercised on streams DERIVED from the real capture: the recorded step0 books of
one market turned into the MBP protocol (a ``req`` answer with ``seqNum`` = the book's
``version``, then updates carrying the level changes between consecutive books, ``prevSeqNum`` =
the previous book's ``version``) and into the futures incremental protocol (``event`` snapshot /
update, ``version`` + 1). The levels and numbers are the recorded ones; only the envelopes are
the documented ones (huobiapi.github.io/docs/spot/v1/en "Market By Price (incremental
update)", docs/usdt_swap/v1/en "Subscribe Incremental Market Depth Data").
"""
from __future__ import annotations

import ast
import gzip
import json
from decimal import ROUND_HALF_EVEN, Decimal

import pytest

from atomfast.exchanges.htx import HtxCoinSwapScheme, HtxFuturesScheme, HtxScheme
from atomfast.exchanges.htx import messages as htx_messages
from atomfast.exchanges.htx.parse import contract_instrument
from atomfast.scheme import Dispatch
from atomfast.testing import (Harness, MemorySink, RefBook, SimProcess, T0, capture_instruments, check_events,
                              cli_summary, fixture_path, recv_frames, replay_fixture, run_cli)

CAPTURE = "cryptofeed/HUOBI.ws.44.0"
FUTURES = "repo:tests/data/htx/HTX_FUTURES.ws.1.0"


# --------------------------------------------------------------------------------------------------
# the independent reference of the spot capture


def _inflate(data: bytes) -> dict:
    return json.loads(gzip.decompress(data), parse_float=Decimal, parse_int=Decimal)


def _fit(size: Decimal, decimals: int) -> Decimal:
    """The reference's rounding of a size written with more decimals than the book holds."""
    if -size.as_tuple().exponent <= decimals:
        return size
    q = size.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)
    return q if q or not size else Decimal(1).scaleb(-decimals)


def _listing() -> dict:
    text = fixture_path("cryptofeed/HUOBI.0").read_text().splitlines()[0]
    return {d["symbol"]: d for d in json.loads(text.split(": ", 1)[1])["data"]}


class SpotReference:
    """The capture's step0 books on plain dicts: lob events (changes), spreads (top changes)."""

    def __init__(self) -> None:
        self.listing = _listing()
        self.books: dict[str, dict[str, dict[Decimal, Decimal]]] = {}
        self.tops: dict[str, tuple] = {}
        self.versions: dict[str, list] = {}  # native -> [(version, ts, bids, asks)] as recorded
        self.lob = self.spread = self.snapshots = self.trades = 0
        self.first_trade = None

    def size_decimals(self, native: str) -> int:
        return min(12, self.listing[native]["amount-precision"] + 5)

    def feed(self, msg: dict) -> None:
        ch = msg.get("ch", "")
        if ".trade.detail" in ch:
            self.trades += len(msg["tick"]["data"])
            self.first_trade = self.first_trade or (ch.split(".")[1], msg["tick"]["data"][0])
            return
        if ".depth.step0" not in ch:
            return
        native = ch.split(".")[1]
        tick = msg["tick"]
        self.versions.setdefault(native, []).append((tick["version"], msg["ts"], tick["bids"], tick["asks"]))
        sd = self.size_decimals(native)
        new = {side: {p: _fit(s, sd) for p, s in tick[side]} for side in ("bids", "asks")}
        old = self.books.get(native)
        if old is None:
            self.snapshots += 1
            self.lob += sum(1 for side in new.values() for s in side.values() if s)
        else:
            for side in ("bids", "asks"):
                self.lob += sum(1 for p, s in new[side].items() if old[side].get(p) != s)
                self.lob += sum(1 for p in old[side] if p not in new[side])
        self.books[native] = new
        top = (max(new["bids"]), new["bids"][max(new["bids"])], min(new["asks"]), new["asks"][min(new["asks"])])
        if self.tops.get(native) != top:
            self.spread += 1
        self.tops[native] = top


@pytest.fixture(scope="module")
def reference() -> SpotReference:
    ref = SpotReference()
    for _ts, data in recv_frames(CAPTURE):
        ref.feed(_inflate(data))
    return ref


@pytest.fixture(scope="module")
def replayed():
    return replay_fixture(CAPTURE, exchange="htx")


def _levels(book, side: int) -> dict:
    return {Decimal(p): Decimal(s) for p, s in book.levels(side)}


def test_capture_replays_as_the_reference_says(replayed, reference):
    replay, sink = replayed
    counts = sink.counts()
    assert reference.snapshots == 10 and reference.trades == 73
    assert counts == {"status": 31, "lob": reference.lob, "spread": reference.spread, "trades": 73}
    assert (reference.lob, reference.spread) == (5512, 251)
    m = replay.metrics
    assert (m.frames, m.gaps, m.resyncs, m.errors.total) == (362, 0, 0, 0)
    # 20 subscription answers, 10 books loaded, the connection
    statuses = sink.statuses()
    assert statuses.count(("subscribed", "depth.step0")) == 10
    assert statuses.count(("subscribed", "trade.detail")) == 10
    assert statuses.count(("snapshot", "")) == 10
    for native, book in replay.scheme.books.items():
        ref = reference.books[native]
        assert _levels(book, 0) == ref["bids"] and _levels(book, 1) == ref["asks"], native
    check_events(sink.records)


def test_recorded_trade_values(replayed, reference):
    _replay, sink = replayed
    first = sink.events("trades")[0]
    # {"ch":"market.trioeth.trade.detail","ts":1618678027942,"tick":{"id":100182534526,"ts":1618678027940,
    #  "data":[{"id":100182534526255757567432481,"ts":1618678027940,"tradeId":100045088885,"amount":20995.88,
    #  "price":9.2E-7,"direction":"buy"}]}}
    assert reference.first_trade[0] == "trioeth"
    assert (first.symbol, first.price, first.size, first.taker_side, first.trade_id, first.event_timestamp) == (
        "TRIO-ETH", 9.2e-07, 20995.88, "buy", "100045088885", 1618678027940)
    ids = [t.trade_id for t in sink.events("trades")]
    assert len(ids) == len(set(ids)) == 73


def test_first_book_and_spread_exact(replayed):
    _replay, sink = replayed
    lob = [r for r in sink.events("lob") if r.symbol == "TRIO-ETH"]
    # the first recorded book: {"ch":"market.trioeth.depth.step0","ts":1618678069870,"tick":{"bids":[[9.121E-7,
    # 92730.24],[9.12E-7,66053.68],...
    assert (lob[0].price, lob[0].size, lob[0].side, lob[0].event_timestamp) == (9.121e-07, 92730.24, "buy",
                                                                                 1618678069870)
    spread = next(r for r in sink.events("spread") if r.symbol == "TRIO-ETH")
    assert (spread.bid_price, spread.bid_size) == (9.121e-07, 92730.24)


# --------------------------------------------------------------------------------------------------
# gzip frames, the heartbeat


def test_gzip_frames_and_ping():
    h = Harness(HtxScheme, capture_instruments(CAPTURE, HtxScheme))
    h.feed(gzip.compress(b'{"ping":1618678073643}'), binary=True)
    assert h.sent() == [{"pong": 1618678073643}]
    h.feed(b"\x1f\x8b\x08\x00garbage", binary=True)
    h.feed(gzip.compress(b'{"ping":1}')[:-6], binary=True)
    bomb = gzip.compress(b" " * (HtxScheme.max_inflated_bytes + 1))
    h.feed(bomb, binary=True)
    kinds = [r[0] for r in h.reports]
    assert kinds == ["htx: malformed gzip", "htx: malformed gzip", "htx: frame too large"]


def test_gzip_read_alike_by_zlib_and_zlib_ng(monkeypatch):
    """Whichever inflates (zlib-ng where installed, else zlib): the same records and reports for
    sound, malformed, truncated and oversized frames."""
    import zlib

    from atomfast.exchanges.htx import handler

    frames = [gzip.compress(b'{"ping":1618678073643}'), b"\x1f\x8b\x08\x00garbage", gzip.compress(b'{"ping":1}')[:-6],
              gzip.compress(b'{"ping":1}') + b"trailing", gzip.compress(b" " * (HtxScheme.max_inflated_bytes + 1)),
              *(d for _, d in recv_frames(CAPTURE)[:40])]

    def run():
        h = Harness(HtxScheme, capture_instruments(CAPTURE, HtxScheme))
        out = [h.feed(f, binary=True) for f in frames]
        return out, h.reports, h.conn.sent

    used = run()
    monkeypatch.setattr(handler, "_zlib", zlib)
    assert run() == used
    assert [r[0] for r in used[1][:3]] == ["htx: malformed gzip", "htx: malformed gzip", "htx: frame too large"]


def test_futures_heartbeats():
    h = Harness(HtxFuturesScheme, capture_instruments(FUTURES, HtxFuturesScheme))
    h.feed(gzip.compress(b'{"ping":1622711946534}'))
    h.feed(gzip.compress(b'{"op":"ping","ts":"1492420473058"}'))
    assert h.sent() == [{"pong": 1622711946534}, {"op": "pong", "ts": "1492420473058"}]
    assert h.reports == []


# --------------------------------------------------------------------------------------------------
# MBP (spot): a req snapshot aligned on prevSeqNum, then prevSeqNum = previous seqNum


def _num(x: Decimal) -> str:
    return str(x)


def _dumps(obj) -> bytes:
    """JSON with Decimal numbers written as the recorded text."""
    if isinstance(obj, Decimal):
        return str(obj).encode()
    if isinstance(obj, dict):
        return b"{" + b",".join(json.dumps(k).encode() + b":" + _dumps(v) for k, v in obj.items()) + b"}"
    if isinstance(obj, (list, tuple)):
        return b"[" + b",".join(_dumps(v) for v in obj) + b"]"
    return json.dumps(obj).encode()


def _changes(old: list, new: list) -> list:
    o = {p: s for p, s in old}
    n = {p: s for p, s in new}
    out = [[p, s] for p, s in new if o.get(p) != s]
    return out + [[p, Decimal(0)] for p, _s in old if p not in n]


def mbp_stream(reference: SpotReference, native: str):
    """(rep answers by seqNum, updates in order, the recorded books by seqNum), from the step0 books."""
    books = reference.versions[native]
    reps, updates, by_seq = {}, [], {}
    for i, (version, ts, bids, asks) in enumerate(books):
        by_seq[int(version)] = (bids, asks)
        reps[int(version)] = _dumps({"id": native, "rep": f"market.{native}.mbp.150", "status": "ok", "ts": ts,
                                     "data": {"seqNum": version, "bids": bids, "asks": asks}})
        if i:
            pv, _pts, pbids, pasks = books[i - 1]
            updates.append(gzip.compress(_dumps({"ch": f"market.{native}.mbp.150", "ts": ts, "tick": {
                "seqNum": version, "prevSeqNum": pv, "bids": _changes(pbids, bids), "asks": _changes(pasks, asks)}})))
    return reps, updates, by_seq


def _ref_book(bids, asks, sd: int) -> tuple[dict, dict]:
    return ({p: _fit(s, sd) for p, s in bids}, {p: _fit(s, sd) for p, s in asks})


class MbpRun:
    def __init__(self, reference: SpotReference, native: str = "omgbtc") -> None:
        self.native = native
        self.reps, self.updates, self.by_seq = mbp_stream(reference, native)
        self.seqs = sorted(self.by_seq)
        self.sd = reference.size_decimals(native)
        self.h = Harness(HtxScheme, capture_instruments(CAPTURE, HtxScheme), channels=("lob",))

    def feed(self, i: int):
        return self.h.feed(self.updates[i], T0 + i, binary=True)

    def answer(self, seq: int):
        return self.h.feed(self.reps[seq], T0)

    def requests(self) -> int:
        return sum(1 for s in self.h.sent() if s == {"req": f"market.{self.native}.mbp.150", "id": self.native})

    def book_is(self, seq: int) -> bool:
        book = self.h.scheme.books[self.native]
        bids, asks = _ref_book(*self.by_seq[seq], self.sd)
        return _levels(book, 0) == bids and _levels(book, 1) == asks


@pytest.fixture
def mbp(reference):
    run = MbpRun(reference)
    assert len(run.updates) >= 20
    return run


def test_mbp_snapshot_aligned_then_chained(mbp):
    mbp.feed(0)  # (prevSeqNum = seqs[0]) buffered; the req is sent on this connection
    mbp.feed(1)
    assert mbp.requests() == 1 and mbp.native not in mbp.h.scheme.books
    produced = mbp.answer(mbp.seqs[0])  # seqNum == the first update's prevSeqNum: both buffered applied
    assert [r.status for t, r in produced if t == "status"] == ["snapshot"]
    assert mbp.book_is(mbp.seqs[2])
    for i in range(2, len(mbp.updates)):
        mbp.feed(i)
    assert mbp.book_is(mbp.seqs[-1])
    assert (mbp.h.metrics.gaps, mbp.h.metrics.resyncs, mbp.h.errors.total) == (0, 0, 0)
    check_events(mbp.h.records)


def test_mbp_snapshot_older_than_the_stream_is_asked_again(mbp):
    mbp.feed(3)  # prevSeqNum = seqs[3]
    mbp.answer(mbp.seqs[1])  # older: the buffered update does not follow it
    assert mbp.requests() == 2 and mbp.native not in mbp.h.scheme.books
    mbp.answer(mbp.seqs[3])
    assert mbp.book_is(mbp.seqs[4])


def test_mbp_covered_updates_are_dropped(mbp):
    for i in range(4):
        mbp.feed(i)
    mbp.answer(mbp.seqs[2])  # updates 0, 1 (seqNum <= 2) are in it; 2 and 3 follow
    assert mbp.book_is(mbp.seqs[4])
    assert mbp.h.metrics.gaps == 0


def _live(mbp, upto: int) -> None:
    mbp.feed(0)
    mbp.answer(mbp.seqs[0])
    for i in range(1, upto):
        mbp.feed(i)
    assert mbp.book_is(mbp.seqs[upto])


def _rebuilt(mbp, k_snapshot: int, after: int) -> None:
    """The snapshot at seqs[k_snapshot] answers the new req; the stream goes on from ``after``."""
    assert mbp.requests() == 2
    produced = mbp.answer(mbp.seqs[k_snapshot])
    assert "snapshot" in [r.status for t, r in produced if t == "status"]
    for i in range(after, len(mbp.updates)):
        mbp.feed(i)
    assert mbp.book_is(mbp.seqs[-1])
    assert mbp.h.metrics.resyncs == 1 and mbp.h.metrics.gaps == 1 and mbp.h.errors.total == 0
    check_events(mbp.h.records)


def test_mbp_dropped_update_is_a_gap(mbp):
    _live(mbp, 5)
    produced = mbp.feed(6)  # update 5 (prevSeqNum seqs[5]) lost
    assert [(r.status, r.reason) for t, r in produced if t == "status"] == [
        ("resync", f"gap: prevSeqNum {mbp.seqs[6]} != previous seqNum {mbp.seqs[5]}")]
    assert mbp.h.scheme.books[mbp.native].count(0) == 0
    _rebuilt(mbp, 6, 7)


def test_mbp_duplicated_update_is_a_gap(mbp):
    _live(mbp, 5)
    mbp.feed(5)
    produced = mbp.feed(5)
    assert [(r.status, r.reason) for t, r in produced if t == "status"] == [
        ("resync", f"gap: prevSeqNum {mbp.seqs[5]} != previous seqNum {mbp.seqs[6]}")]
    _rebuilt(mbp, 6, 6)


def test_mbp_reordered_update_is_a_gap(mbp):
    _live(mbp, 5)
    produced = mbp.feed(6)
    assert [(r.status, r.reason) for t, r in produced if t == "status"] == [
        ("resync", f"gap: prevSeqNum {mbp.seqs[6]} != previous seqNum {mbp.seqs[5]}")]
    mbp.feed(5)  # (buffered with 6: the snapshot at seqs[6] covers it)
    _rebuilt(mbp, 6, 7)


def test_mbp_malformed_update_resyncs(mbp):
    _live(mbp, 5)
    bad = gzip.decompress(mbp.updates[5]).replace(b'"seqNum":', b'"seqNum":"x","q":', 1)
    produced = mbp.h.feed(bad)
    assert [r.status for t, r in produced if t == "status"] == ["resync"]
    assert mbp.h.reports[0][0] == "htx: malformed book message"


# --------------------------------------------------------------------------------------------------
# futures: snapshot then version + 1


def _depth_msg(code: str, event: str, version: int, ts, bids, asks) -> bytes:
    ch = f"market.{code}.depth.size_150.high_freq"
    return gzip.compress(_dumps({"ch": ch, "tick": {"asks": asks, "bids": bids, "ch": ch, "event": event,
                                                    "ts": ts, "version": version}, "ts": ts}))


class VersionRun:
    """borusdt's recorded books as the USDT-M incremental depth of a contract ``BOR-USDT``."""

    def __init__(self, reference: SpotReference) -> None:
        books = reference.versions["borusdt"]
        self.books = [(bids, asks) for _v, _ts, bids, asks in books]
        self.snapshots = [_depth_msg("BOR-USDT", "snapshot", 1000 + i, ts, bids, asks)
                          for i, (_v, ts, bids, asks) in enumerate(books)]
        self.updates = [None] + [_depth_msg("BOR-USDT", "update", 1000 + i, ts, _changes(books[i - 1][2], bids),
                                            _changes(books[i - 1][3], asks))
                                 for i, (_v, ts, bids, asks) in enumerate(books) if i]
        inst = contract_instrument("BOR-USDT", price_tick=0.01)
        self.sd = inst.size_decimals
        self.h = Harness(HtxFuturesScheme, {"BOR-USDT": inst}, channels=("lob",))

    def book_is(self, i: int) -> bool:
        book = self.h.scheme.books["BOR-USDT"]
        bids, asks = _ref_book(*self.books[i], self.sd)
        return _levels(book, 0) == bids and _levels(book, 1) == asks


@pytest.fixture
def versions(reference):
    run = VersionRun(reference)
    run.h.feed(run.snapshots[0])
    for i in range(1, 6):
        run.h.feed(run.updates[i])
    assert run.book_is(5) and len(run.books) >= 20
    return run


def _resubscribed(run: VersionRun, produced, reason: str, resume: int) -> None:
    assert [(r.status, r.reason) for t, r in produced if t == "status"] == [("resync", reason)]
    assert run.h.sent()[-2:] == [
        {"unsub": "market.BOR-USDT.depth.size_150.high_freq", "id": "BOR-USDT.unsub", "data_type": "incremental"},
        {"sub": "market.BOR-USDT.depth.size_150.high_freq", "id": "BOR-USDT.depth.size_150.high_freq",
         "data_type": "incremental"}]
    assert run.h.feed(run.updates[resume]) == [] and run.h.scheme.books["BOR-USDT"].count(0) == 0  # waiting
    run.h.feed(run.snapshots[resume])
    for i in range(resume + 1, len(run.books)):
        run.h.feed(run.updates[i])
    assert run.book_is(len(run.books) - 1)
    assert (run.h.metrics.gaps, run.h.metrics.resyncs, run.h.errors.total) == (1, 1, 0)
    check_events(run.h.records)


def test_version_in_order_is_the_recorded_book(versions):
    for i in range(6, len(versions.books)):
        versions.h.feed(versions.updates[i])
    assert versions.book_is(len(versions.books) - 1)
    assert versions.h.metrics.gaps == 0


def test_version_dropped(versions):
    produced = versions.h.feed(versions.updates[7])
    _resubscribed(versions, produced, "version gap: version 1007 != previous version 1005 + 1", 8)


def test_version_duplicated(versions):
    produced = versions.h.feed(versions.updates[5])
    _resubscribed(versions, produced, "version gap: version 1005 != previous version 1005 + 1", 8)


def test_version_reordered(versions):
    produced = versions.h.feed(versions.updates[7])
    versions.h.feed(versions.updates[6])  # dropped: the book waits for its snapshot
    _resubscribed(versions, produced, "version gap: version 1007 != previous version 1005 + 1", 9)


def test_futures_documented_update_follows_the_snapshot():
    """crypto-msg-parser's real BTC-USDT snapshot, then its real update renumbered to version + 1
    (the two were recorded 2 s apart: their versions are 709648689 and 709648808)."""
    h = Harness(HtxFuturesScheme, capture_instruments(FUTURES, HtxFuturesScheme))
    h.feed(recv_frames(FUTURES)[0][1])
    update = (b'{"ch":"market.BTC-USDT.depth.size_150.high_freq","tick":{"asks":[[39055,16634],[39060.1,0]],'
              b'"bids":[[39050.8,40]],"ch":"market.BTC-USDT.depth.size_150.high_freq","event":"update",'
              b'"id":39536668357,"mrid":39536668357,"ts":1622711948514,"version":709648690},"ts":1622711948514}')
    produced = h.feed(gzip.compress(update))
    assert [(r.price, r.size, r.side) for t, r in produced if t == "lob"] == [
        (39050.8, 40.0, "buy"), (39055.0, 16634.0, "sell")]  # (39060.1 was no level: no event)
    spread = [r for t, r in produced if t == "spread"]
    assert [(s.bid_price, s.bid_size, s.ask_price, s.ask_size) for s in spread] == [(39054.9, 4754.0, 39055.0, 16634.0)]


# --------------------------------------------------------------------------------------------------
# the futures capture (documented and single real messages): exact values


def test_futures_capture_values():
    replay, sink = replay_fixture(FUTURES, exchange="htx-futures")
    assert sink.counts() == {"status": 2, "lob": 6, "spread": 1, "trades": 1, "ticker": 1, "candle": 1,
                             "funding_rate": 1, "liquidations": 1}
    (t,) = sink.events("trades")
    assert (t.symbol, t.price, t.size, t.taker_side, t.trade_id, t.event_timestamp) == (
        "BTC-USDT-PERP", 58769.9, 40.0, "sell", "224199951640000", 1616233478583)
    (k,) = sink.events("ticker")
    assert (k.bid_price, k.bid_size, k.ask_price, k.ask_size, k.event_timestamp) == (
        31784.1, 5911.0, 31784.2, 4.0, 1654031855127)
    (c,) = sink.events("candle")
    assert (c.start, c.end, c.interval, c.trades, c.closed, c.o, c.h, c.l, c.c, c.v, c.event_timestamp) == (
        1654081440000, 1654081500000, "1m", 5, False, 31531.9, 31532.0, 31531.9, 31531.9, 532.0, 1654081448870)
    (f,) = sink.events("funding_rate")
    assert (f.funding_rate, f.predicted_rate, f.next_funding_time, f.mark_price, f.event_timestamp) == (
        0.000754108135233895, 0.000429934303518805, 1617321600000, 0.0, 1617309787271)
    (q,) = sink.events("liquidations")
    assert (q.symbol, q.side, q.price, q.size, q.event_timestamp) == ("BTC-USDT-PERP", "sell", 16701.4, 624.0,
                                                                      1606380004694)
    assert replay.metrics.errors.total == 0
    check_events(sink.records)


# --------------------------------------------------------------------------------------------------
# subscriptions, listings, symbols


def test_subscriptions_and_endpoints():
    insts = capture_instruments(CAPTURE, HtxScheme)
    s = HtxScheme(MemorySink().write, None, insts, ("BTC-USDT",) if "btcusdt" in insts else ("TRIO-ETH",),
                  ("lob", "trades", "ticker", "candle"))
    native = s.native_symbols()[0]
    plans = s.plan()
    assert {p.url for p in plans} == {"wss://api.huobi.pro/ws", "wss://api.huobi.pro/feed"}
    feed = next(p for p in plans if p.url.endswith("/feed"))
    assert json.loads(s.subscribe_plan(feed)[0]) == {"sub": f"market.{native}.mbp.150", "id": f"{native}.mbp.150"}
    f = HtxFuturesScheme(MemorySink().write, None, capture_instruments(FUTURES, HtxFuturesScheme), ("BTC-USDT-PERP",),
                         ("lob", "funding_rate", "liquidations"))
    urls = {p.url: [json.loads(x) for x in f.subscribe_plan(p)] for p in f.plan()}
    assert urls == {
        "wss://api.hbdm.com/linear-swap-ws": [{"sub": "market.BTC-USDT.depth.size_150.high_freq",
                                               "id": "BTC-USDT.depth.size_150.high_freq", "data_type": "incremental"}],
        "wss://api.hbdm.com/linear-swap-notification": [
            {"op": "sub", "cid": "BTC-USDT.funding_rate", "topic": "public.BTC-USDT.funding_rate"},
            {"op": "sub", "cid": "BTC-USDT.liquidation_orders", "topic": "public.BTC-USDT.liquidation_orders"}]}
    assert HtxCoinSwapScheme.ws_url == "wss://api.hbdm.com/swap-ws"


def test_listings():
    insts = capture_instruments(CAPTURE, HtxScheme)
    assert len(insts) == 938
    i = insts["trioeth"]
    assert (i.symbol, i.kind, i.base, i.quote, i.price_decimals, i.size_decimals) == ("TRIO-ETH", "spot", "TRIO",
                                                                                      "ETH", 12, 7)
    v2 = (b'{"status":"ok","data":[{"tags":"","state":"online","sc":"btcusdt","bcdn":"BTC","qcdn":"USDT","tpp":2,'
          b'"tap":6,"fp":8,"bc":"btc","qc":"usdt","dn":"BTC/USDT"}],"ts":"1641870869718","full":1}')
    (b,) = HtxScheme.parse_instruments(v2).values()
    assert (b.native, b.symbol, b.price_decimals, b.size_decimals) == ("btcusdt", "BTC-USDT", 4, 11)
    (p,) = capture_instruments(FUTURES, HtxFuturesScheme).values()
    assert (p.native, p.symbol, p.kind, p.price_decimals) == ("BTC-USDT", "BTC-USDT-PERP", "perp", 3)
    fut = (b'{"status":"ok","data":[{"symbol":"BTC","contract_code":"BTC-USDT-240628","contract_size":0.001,'
           b'"price_tick":0.1,"delivery_date":"20240628","business_type":"futures","pair":"BTC-USDT",'
           b'"contract_type":"quarter","trade_partition":"USDT"}]}')
    (d,) = HtxFuturesScheme.parse_instruments(fut).values()
    assert (d.symbol, d.kind, d.expiry) == ("BTC-USDT-20240628", "future", "20240628")


def test_exchange_errors_are_counted():
    h = Harness(HtxScheme, capture_instruments(CAPTURE, HtxScheme))
    h.feed(gzip.compress(b'{"status":"error","ts":1618678070653,"id":"x","err-code":"bad-request",'
                         b'"err-msg":"invalid topic market.nosuch.trade.detail"}'))
    assert h.reports[0][:2] == ("htx: exchange error", "bad-request: invalid topic market.nosuch.trade.detail")


# --------------------------------------------------------------------------------------------------
# simulate + run


def test_simulate_and_run_the_spot_capture(replayed):
    _replay, sink = replayed
    with SimProcess(fixture_path(CAPTURE), "--rate", 700) as sim:
        r = run_cli("run", "--exchange", "htx", "--endpoint", sim.url, "--rest-endpoint", sim.rest_url,
                    "--sink", "null", "--symbols", ",".join(sorted({x.symbol for x in sink.events("lob")})),
                    "--channels", "lob,trades", "--max-frames", 362, "--backoff", "0.01", timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    s = cli_summary(r.stderr)
    assert s["frames"] == 362
    assert {t: n for t, n in s["events"].items() if t != "status"} == {"lob": 5512, "spread": 251, "trades": 73}
    assert (s["gaps"], s["resyncs"], s["errors"]) == (0, 0, 0)


# --------------------------------------------------------------------------------------------------
# spot depth.step0 on a live book: the message replaces it whole (L2Book.replace_sides), or is refused


def _step0(version: int, bids: str, asks: str, native: str = "trioeth") -> bytes:
    return (f'{{"ch":"market.{native}.depth.step0","ts":{1618678069870 + version},'
            f'"tick":{{"bids":{bids},"asks":{asks},"version":{version},"ts":1618678069000}}}}').encode()


def _step0_harness() -> Harness:
    h = Harness(HtxScheme, capture_instruments(CAPTURE, HtxScheme))
    # trioeth: 10 price decimals (8 + 2), 7 size decimals (2 + 5)
    h.feed(_step0(1, "[[9.121E-7,92730.24],[9.12E-7,66053.68]]", "[[9.13E-7,100],[9.14E-7,5.5]]"))
    return h


def test_step0_changes_only_with_sizes_fitted():
    h = _step0_harness()
    produced = h.feed(_step0(2, "[[9.121E-7,92730.240000000001],[9.11E-7,1.123456789]]",
                             "[[9.13E-7,100.0],[9.14E-7,5.50000015]]"))
    lob = [(r.price, r.size, r.side) for t, r in produced if t == "lob"]
    assert lob == [(9.11e-07, 1.1234568, "buy"), (9.12e-07, 0.0, "buy"), (9.14e-07, 5.5000002, "sell")]
    assert [t for t, _r in produced if t == "spread"] == []
    book = h.scheme.books["trioeth"]
    assert book.levels(0) == [("0.0000009121", "92730.24"), ("0.000000911", "1.1234568")]
    assert book.levels(1) == [("0.000000913", "100"), ("0.000000914", "5.5000002")]
    assert h.reports == []


def test_step0_refused_on_a_live_book():
    h = _step0_harness()
    # a negative size: nothing applied, counted, the book reloaded by the next message
    produced = h.feed(_step0(2, "[[9.121E-7,-1]]", "[[9.13E-7,100]]"))
    assert [t for t, _r in produced if t == "lob"] == []
    assert [(r.status, r.reason) for t, r in produced if t == "status"] == [
        ("resync", "malformed depth snapshot: invalid size b'-1': signed")]
    assert [r[:2] for r in h.reports] == [("htx: malformed book message",
                                           "malformed depth snapshot: invalid size b'-1': signed")]
    # a stale version: ignored
    h.feed(_step0(1, "[[9.121E-7,1]]", "[[9.13E-7,100]]"))
    assert h.reports[-1][:2] == ("htx: stale depth snapshot", "trioeth: version 1 after 1")
    # the next message loads the book again
    produced = h.feed(_step0(3, "[[9.121E-7,1]]", "[[9.13E-7,100]]"))
    assert [(r.status, r.reason) for t, r in produced if t == "status"] == [("snapshot", "")]
    assert [(r.price, r.size) for t, r in produced if t == "lob"] == [(9.121e-07, 1.0), (9.13e-07, 100.0)]


def test_step0_crossed_on_a_live_book_resyncs():
    h = _step0_harness()
    produced = h.feed(_step0(2, "[[9.2E-7,1]]", "[[9.13E-7,100]]"))
    assert [(r.status, r.reason) for t, r in produced if t == "status"] == [
        ("resync", "snapshot book crossed: bid 9.2e-07 >= ask 9.13e-07")]
    assert h.reports[-1][:2] == ("htx: crossed snapshot", "trioeth: book crossed: bid 9.2e-07 >= ask 9.13e-07")


class _WholeDecoded(HtxScheme):
    """HtxScheme as it was before its step0 levels were read from the raw JSON by the book: the
    route decodes the whole message (``DepthMsg``) and ``_on_depth`` handles it."""

    dispatch = Dispatch(
        {b"mbp": "_on_mbp", b"dep": "_on_depth", b"tra": "_on_trades", b"bbo": "_on_bbo", b"kli": "_on_kline",
         b"ping": "_on_ping", b"rep": "_on_rep"},
        prefilter="_route",
        decoders={b"mbp": htx_messages.mbp_decoder, b"dep": htx_messages.depth_decoder,
                  b"tra": htx_messages.trade_decoder, b"bbo": htx_messages.spot_bbo_decoder,
                  b"kli": htx_messages.kline_decoder, b"ping": htx_messages.ping_decoder,
                  b"rep": htx_messages.rep_decoder},
        fallback="_on_other", refused="_on_refused")


_STEP0_CASES = [
    # a book loaded, changed (sizes fitted), then every kind of message the raw read leaves to the decoder
    _step0(1, "[[9.121E-7,92730.24],[9.12E-7,66053.68]]", "[[9.13E-7,100],[9.14E-7,5.5]]"),
    _step0(2, "[[9.121E-7,92730.240000000001],[9.11E-7,1.123456789]]", "[[9.13E-7,100.0],[9.14E-7,5.50000015]]"),
    _step0(3, "[[9.121E-7]]", "[]"),                                    # a level of one number
    _step0(3, '[["9.121E-7","1"]]', "[]"),                              # strings
    _step0(3, "[[9.121E-7,1],[9.12E-7,null]]", "[]"),
    _step0(3, "[[9.121E-7,1]", "[]"),                                   # not JSON
    _step0(1, "[[9.121E-7]]", "[]"),                                    # stale and malformed
    _step0(4, "[[9.121E-7,1]]", "[[9.13E-7,1]]"),                       # reloads (after the resync)
    _step0(3, "[[9.121E-7,2]]", "[[9.13E-7,1]]"),                       # stale
    _step0(5, "[[9.121E-7,-2]]", "[[9.13E-7,1]]"),                      # negative
    _step0(6, "[[0,2]]", "[[9.13E-7,1]]"),                              # price 0
    _step0(7, "[[9.1211111111111E-7,2]]", "[[9.13E-7,1]]"),             # price beyond the scale
    _step0(8, "[[9.121E-7,1]]", "null"),
    _step0(9, "[[9.121E-7,1],[9.121E-7,3]]", "[[9.13E-7,1]]"),          # a price twice
    _step0(10, "[[9.2E-7,1]]", "[[9.13E-7,1]]"),                        # crossed
    _step0(11, "[[9.121E-7,1E+30]]", "[[9.13E-7,1]]"),                  # out of range
    _step0(12, "[[9.121E-7,1.5E7]]", "[[9.13E-7,25000000.123456789]]"),  # beyond 2**53 ticks
    _step0(13, "[[9.121E-7,1.5E7]]", "[[9.13E-7,25000000.123456789]]").replace(b"step0", b"step1"),
    _step0(14, "[[9.121E-7,1]]", "[[9.13E-7,1]]", native="zzzzzz9"),
    _step0(15, "[[9.121E-7,1]]", "[[9.13E-7,1]]").replace(b'"ts":1618678069885', b'"ts":-5'),
    _step0(16, "[[9.121E-7, 2] , [9.12E-7,3]]", " [ [9.13E-7,1] ]"),
    _step0(17, "[[9.121E-7,1]]", "[[9.13E-7,1]]").replace(b'"version":17', b'"version":"17"'),
    _step0(18, "[]", "[]"),
    _step0(19, "[[9.121E-7,1]]", "[[9.13E-7,1]]").replace(b'"bids":[[9.121E-7,1]],', b""),
    _step0(1, "[[9.121E-7,1]]", "[[9.13E-7,1]]", native="xvgeth"),
    _step0(1, "[[1E-9,1]]", "[[9.13E-7,1]]", native="omgbtc"),
]


def test_step0_read_raw_as_decoded_whole():
    """Every message gives what the whole message's decoder and ``_on_depth`` gave: the same
    records (events, statuses) and the same counted bad input, in the same order."""
    new = Harness(HtxScheme, capture_instruments(CAPTURE, HtxScheme))
    old = Harness(_WholeDecoded, capture_instruments(CAPTURE, HtxScheme))
    for i, frame in enumerate(_STEP0_CASES):
        data = gzip.compress(frame) if i % 2 else frame
        assert new.feed(data, binary=bool(i % 2)) == old.feed(data, binary=bool(i % 2)), frame
        assert new.reports == old.reports, frame
    assert len(old.reports) >= 12
    assert {k: (b.levels(0), b.levels(1)) for k, b in new.scheme.books.items()} == {
        k: (b.levels(0), b.levels(1)) for k, b in old.scheme.books.items()}


class _PrefilteredInPython(HtxScheme):
    """HtxScheme as it was routed before its market data was prefiltered in C (``ByteAfter``):
    ``_route``'s key for every frame, the ping and ``req`` answers as routes of the table."""

    dispatch = Dispatch(
        {b"mbp": "_on_mbp", b"dep": "_on_step0", b"tra": "_on_trades", b"bbo": "_on_bbo", b"kli": "_on_kline",
         b"ping": "_on_ping", b"rep": "_on_rep"},
        prefilter="_route",
        decoders={b"mbp": htx_messages.mbp_decoder, b"dep": htx_messages.depth_raw_decoder,
                  b"tra": htx_messages.trade_decoder, b"bbo": htx_messages.spot_bbo_decoder,
                  b"kli": htx_messages.kline_decoder, b"ping": htx_messages.ping_decoder,
                  b"rep": htx_messages.rep_decoder},
        fallback="_on_other", refused="_on_refused")


_ROUTING_CASES = [
    b'{"ping":1618678073643}', b'{"ping":', b'{"ping":1', b'{"pong":1}', b'{"op":"ping","ts":1}',
    b'{"id":"trioeth","rep":"market.trioeth.mbp.150","status":"ok","data":{"seqNum":5,"bids":[],"asks":[]}}',
    b'{"id":"trioeth","rep":"market.trioeth.mbp.150","status":"ok","data":{"seqNum":"x"}}',
    b'{"id":"x","status":"error","err-code":"bad-request","err-msg":"invalid topic","rep":"market.x.mbp.150"}',
    b'{"id":1,"status":"ok","subbed":"market.trioeth.depth.step0","ts":1618678069772}',
    b'{"status":"error","ts":1618678070653,"id":"x","err-code":"bad-request","err-msg":"invalid"}',
    b'{"ch":"market.trioeth.foo","ts":1}', b'{"ch":"market.trioeth', b'{"ch":"market.trioeth.', b'{"ch":"market.trioeth.db',
    b'{"ch":"market.trioeth.depth.step0","tick":5}', b'{"ch":"market.trioeth.depth.step0"',
    b'{"ch":"market.trioeth.trade.detail","ts":1618678069870,"tick":{"data":[{"ts":1618678069870,"price":9.13E-7,'
    b'"amount":12.5,"direction":"buy","tradeId":100,"id":123456789012345678901234567}]}}',
    b'{"ch":"market.trioeth.trade.detail","tick":{"data":[{"price":"x"}]}}',
    b'{"ch":"market.trioeth.bbo","ts":1618678069870,"tick":{"bid":9.12E-7,"bidSize":1,"ask":9.13E-7,"askSize":2,'
    b'"quoteTime":1618678069870}}',
    b'{"ch":"market.trioeth.bbo","tick":{}}',
    b'{"ch":"market.trioeth.kline.1min","ts":1618678069870,"tick":{"id":1618678020,"open":1,"close":1,"high":1,'
    b'"low":1,"amount":2,"vol":2,"count":3}}',
    b'{"ch":"market.trioeth.mbp.150","ts":1618678069870,"tick":{"seqNum":6,"prevSeqNum":5,"bids":[[9.12E-7,1]]}}',
    b'{"ch":"market.trioeth.mbp.150","tick":{"seqNum":"6"}}',
    b'{"ch":"market.trioeth.mbpx.150","ts":1,"tick":{"seqNum":6,"prevSeqNum":5}}',
    _step0(1, "[[9.121E-7,1]]", "[[9.13E-7,1]]"),
    b'{"ch":"market.trioeth.depth.step0","ts":1,"tick":{"bids":[[9.121E-7,1]],"asks":[],"version":2}}x',
    b"[]", b"hello", b"", b'{"ch":"MARKET.trioeth.bbo"}',
]


def test_routes_read_in_c_as_in_python():
    """The C prefilter and ``_on_unrouted`` route every frame as ``_route`` did: the same records
    and the same counted bad input, in the same order."""
    new = Harness(HtxScheme, capture_instruments(CAPTURE, HtxScheme))
    old = Harness(_PrefilteredInPython, capture_instruments(CAPTURE, HtxScheme))
    for i, frame in enumerate(_ROUTING_CASES):
        data = gzip.compress(frame) if i % 2 else frame
        assert new.feed(data, binary=bool(i % 2)) == old.feed(data, binary=bool(i % 2)), frame
        assert new.reports == old.reports, frame
    assert len(old.reports) >= 12
    assert new.conn.sent == old.conn.sent and new.conn.sent  # (the pongs)
