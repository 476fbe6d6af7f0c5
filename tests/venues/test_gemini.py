"""Gemini schemes: ``GeminiScheme`` (``wss://ws.gemini.com``, the current WebSocket API, default)
and ``GeminiV2Scheme`` (market data v2, the recorded capture's protocol).

Recorded: ``cryptofeed/GEMINI.ws.1.0`` (2021-06-24, v2 ``l2`` of 10 markets: 655 ``l2_updates``,
the first of each market the full book with its recent ``trades``; 16 ``trade``; 7
``heartbeat``) and ``GEMINI.0`` (``/v1/symbols`` and ``/v1/symbols/details/*``). Replayed whole
here against an independent model (``RefBook`` per market, from the JSON).

The current API has no recording: ``tests/data/gemini/GEMINI.ws.1.0`` (capture format) holds
documented messages: the subscription ack ``{"id":1,"status":200}`` (the AsyncAPI spec's
``GenericSuccessResponse``: ``id``, ``status``); depth frames from Gemini's own SDK tests
(github.com/gemini/developer-platform ``packages/sdk-go/websocket/orderbook/book_test.go``:
``TestLiveOrderBook_AutoBootInitialDepthUpdate``, the wire snapshot U=u=100 bids 65000.00/2.0
asks 65100.00/1.5 then 101..102 bid 65050.00/3.0; ``TestLiveOrderBook_SequenceAndGaps``: 103..105
bid 64700.00/2.0), with ``"E":1700000000000`` and the trade of Gemini's conformance fixture
``conformance/websocket/events/trade.json`` (t 123456789, p 1000.00, q 0.25, m true). Its
``GEMINI.0`` is the recorded ``/v1/symbols`` line.
"""
from __future__ import annotations

import functools
import json
from collections import Counter
from decimal import Decimal

import msgspec
import pytest

from atomfast.capture import open_capture
from atomfast.events import Lob, Spread, Status, Ticker, Trade
from atomfast.exchanges import scheme_for
from atomfast.exchanges.gemini import GeminiScheme, GeminiV2Scheme
from atomfast.exchanges.gemini.parse import parse_listing, split, to_ms
from atomfast.replay import Replay
from atomfast.testing import (ROOT, T0, Harness, MemorySink, RefBook, SimProcess, capture_instruments, cli_summary,
                              feed_answering, fixture_path, of, recv_frames, replay_fixture, run_cli)

CAPTURE = "cryptofeed/GEMINI.ws.1.0"
DOCUMENTED = ROOT / "tests" / "data" / "gemini" / "GEMINI.ws.1.0"
V2_URL = "wss://api.gemini.com/v2/marketdata/"


def v2_listing() -> dict:
    return capture_instruments(CAPTURE, GeminiV2Scheme)


def listing() -> dict:
    return capture_instruments(DOCUMENTED, GeminiScheme)


def documented() -> list[tuple[int, bytes]]:
    return recv_frames(DOCUMENTED)


# ------------------------------------------------------------------------------------------------
# registry, instruments


def test_registry_and_subscriptions():
    assert scheme_for("gemini") is GeminiScheme
    assert scheme_for("gemini", V2_URL) is GeminiV2Scheme
    assert scheme_for("gemini", "wss://ws.gemini.com/?snapshot=-1") is GeminiScheme
    assert GeminiScheme.channels == {"lob": "depth@100ms", "trades": "trade", "ticker": "bookTicker"}
    assert GeminiV2Scheme.channels == {"lob": "l2", "trades": "l2"}
    h = Harness(GeminiScheme, listing(), symbols=["BTC-USD", "ETH-USD"])
    h.conn.plan = h.scheme.plan()[0]
    h.open()
    assert h.sent() == [{"id": 1, "method": "subscribe", "params": [
        "btcusd@depth@100ms", "ethusd@depth@100ms", "btcusd@trade", "ethusd@trade", "btcusd@bookTicker",
        "ethusd@bookTicker"]}]
    v2 = Harness(GeminiV2Scheme, v2_listing(), symbols=["BTC-GBP"])
    assert [json.loads(x) for x in v2.scheme.subscribe_plan(v2.scheme.plan()[0])] == [
        {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": ["BTCGBP"]}]}]
    # the capture's own subscription is what this scheme sends for its markets
    sent = [f.data for f in open_capture(fixture_path(CAPTURE)).frames() if f.kind == "sent"]
    assert json.loads(sent[0]) == {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": [
        "BTCGBP", "LINKETH", "FILUSD", "ZECLTC", "BATBTC", "ETHEUR", "LTCETH", "GRTUSD", "ANKRUSD", "ALCXUSD"]}]}


def test_instruments_from_the_recorded_listing():
    inst = listing()
    assert len(inst) == 71
    assert [(inst[n].symbol, inst[n].base, inst[n].quote) for n in ("btcusd", "btcgusd", "zecltc", "1inchusd",
                                                                      "gusdusd", "ltcbch", "ethdai")] == [
        ("BTC-USD", "BTC", "USD"), ("BTC-GUSD", "BTC", "GUSD"), ("ZEC-LTC", "ZEC", "LTC"),
        ("1INCH-USD", "1INCH", "USD"), ("GUSD-USD", "GUSD", "USD"), ("LTC-BCH", "LTC", "BCH"),
        ("ETH-DAI", "ETH", "DAI")]
    assert set(v2_listing()) == {n.upper() for n in inst}
    # a details answer names base and quote itself (the capture's /v1/symbols/details/btcgusd)
    details = b'{"symbol":"BTCGUSD","base_currency":"BTC","quote_currency":"GUSD","tick_size":1E-8}'
    assert parse_listing(details, upper=False)["btcgusd"].symbol == "BTC-GUSD"
    assert split("btcgusdperp").symbol == "BTC-GUSD-PERP"
    with pytest.raises(KeyError):
        split("usd")
    # E: ns per the spec, ms in Gemini's conformance frames: both read exactly
    assert to_ms(1700000000000) == to_ms(1700000000000_000_000) == to_ms(1700000000000_000) == 1700000000000
    for bad in (-1, 10**20, True):
        with pytest.raises(ValueError):
            to_ms(bad)


# ------------------------------------------------------------------------------------------------
# v2: the recorded capture


@functools.lru_cache(maxsize=1)
def _parsed() -> tuple:
    return tuple(json.loads(d) for _ts, d in recv_frames(CAPTURE))


def parsed() -> list[dict]:
    """The v2 capture's received messages, decoded (read-only)."""
    return list(_parsed())


class V2Reference:
    """The v2 capture in an independent model: a RefBook per market, reset by each message that
    carries ``trades`` (the subscription's first: the whole book); lob events = level changes,
    spread = top changes per message."""

    def __init__(self, msgs, skip=()) -> None:
        self.books: dict[str, RefBook] = {}
        self.counts: Counter = Counter()
        for i, msg in enumerate(msgs):
            if i not in skip:
                self.feed(msg)

    def feed(self, msg: dict) -> None:
        if msg["type"] == "trade":
            self.counts["trades"] += 1
        if msg["type"] != "l2_updates":
            return
        sym = msg["symbol"]
        if "trades" in msg:
            self.books[sym] = RefBook("buy", "sell")
            self.counts["status"] += 1
        book = self.books[sym]
        before = book.top()
        for side, p, q in msg["changes"]:
            self.counts["lob"] += book.set(side, p, q)
        self.counts["spread"] += book.top() != before


def ref_top(capture, index):
    """The best bid and ask (price, size floats) of frame ``index``'s snapshot, from its JSON."""
    msg = json.loads(recv_frames(capture)[index][1])
    book = RefBook("buy", "sell")
    for side, p, q in msg["changes"]:
        book.set(side, p, q)
    bp, bs, ap, asz = book.top()
    return (float(bp), float(bs)), (float(ap), float(asz))


def test_v2_capture_replay_exact():
    ref = V2Reference(parsed())
    assert dict(ref.counts) == {"status": 10, "lob": 4540, "spread": 232, "trades": 16}
    rp, sink = replay_fixture(CAPTURE, exchange="gemini")
    assert rp.scheme_cls is GeminiV2Scheme
    m = rp.metrics.summary()
    assert (m["frames"], m["gaps"], m["resyncs"], m["errors"]) == (678, 0, 0, 0)
    assert m["events"] == {"lob": 4540, "spread": 232, "status": 11, "trades": 16}
    for native, book in ref.books.items():
        assert book.equals(rp.scheme.books[native]), native
    trades = sink.events("trades")
    # line 14: the first live trade (the 50 past trades of each snapshot are not published)
    assert trades[0] == Trade("gemini", "ANKR-USD", 0.07946, 1020.482111, "buy", "45465818387", 1624493670759,
                              1624493670760541)
    assert trades[-1] == Trade("gemini", "ALCX-USD", 303.05, 8.12974, "buy", "45465890462", 1624493694054,
                               1624493694054478)
    lob, spread = of(sink.records, "lob"), of(sink.records, "spread")
    # the ALCXUSD snapshot (line 3): its first level; no exchange time: the receive time
    assert lob[0] == Lob("gemini", "ALCX-USD", 302.75, 0.00001, "buy", 1624493666638, 1624493666638480)
    bid, ask = ref_top(CAPTURE, 0)
    assert spread[0] == Spread("gemini", "ALCX-USD", bid[0], bid[1], ask[0], ask[1], 1624493666638, 1624493666638480)
    assert spread[0].bid_price == 302.75
    status = of(sink.records, "status")
    assert [(s.symbol, s.status) for s in status][:2] == [("", "connected"), ("ALCX-USD", "snapshot")]


def _v2_run(mutate, answer=None):
    """The v2 capture frame by frame through a harness: ``mutate(i, data)`` gives the frames to
    feed for frame i; after a resync the scheme's resubscription is answered by ``answer(symbol,
    i)`` (the exchange's book now, as a first ``l2_updates``)."""
    def answered(msg: dict, i: int, ts: int) -> list[bytes]:
        if msg["type"] != "subscribe" or answer is None:
            return []
        return [answer(sym, i) for sym in msg["subscriptions"][0]["symbols"]]

    return feed_answering(Harness(GeminiV2Scheme, v2_listing(), url=V2_URL), recv_frames(CAPTURE), mutate, answered)


def _v2_book_now():
    def answer(sym: str, i: int) -> bytes:
        ref = V2Reference(parsed()[: i + 1])
        book = ref.books[sym]
        changes = [["buy", p, s] for p, s in book.ordered("buy")] + [["sell", p, s] for p, s in book.ordered("sell")]
        return json.dumps({"type": "l2_updates", "symbol": sym, "changes": changes, "trades": [],
                           "auction_events": []}).encode()
    return answer


def _index_of(symbol: str, pred, last: bool = False) -> int:
    """The first (``last``: the last) non-snapshot ``l2_updates`` of ``symbol`` with ``pred``."""
    msgs = list(enumerate(parsed()))
    for i, msg in reversed(msgs) if last else msgs:
        if msg.get("symbol") == symbol and msg["type"] == "l2_updates" and "trades" not in msg and pred(msg):
            return i
    raise AssertionError("no such message")


def test_v2_lost_top_removal_seen_as_crossed_book_resync_rebuild():
    """Line 33 (frame 30) removes GRTUSD's best ask, 0.6165; lost, the book keeps that ask, and
    frame 304 bids at or above it: the book is crossed (a gap), resynced (status, unsubscribe +
    subscribe) and rebuilt from the new subscription's first message (the exchange's book)."""
    k = 30
    msg = parsed()[k]
    assert msg["symbol"] == "GRTUSD" and msg["changes"] == [["sell", "0.6165", "0"]]
    before = V2Reference(parsed()[:k]).books["GRTUSD"]
    assert before.top()[2] == Decimal("0.6165")
    h = _v2_run(lambda i, d: [] if i == k else [d], _v2_book_now())
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (1, 1, 0)
    resync = [s for s in h.events("status") if s.status == "resync"]
    assert [(s.symbol, s.reason) for s in resync] == [("GRT-USD", resync[0].reason)]
    assert resync[0].reason.startswith("gap: book crossed: bid ") and resync[0].reason.endswith(">= ask 0.6165")
    assert [s.status for s in h.events("status") if s.symbol == "GRT-USD"] == ["snapshot", "resync", "snapshot"]
    # rebuilt: every book equals the exchange's (the whole capture's)
    ref = V2Reference(parsed())
    for native, book in ref.books.items():
        assert book.equals(h.scheme.books[native]), native


def test_v2_dropped_update_deeper_in_the_book_is_not_detectable():
    """The documented limitation: no sequence number, so a lost update that leaves the book
    uncrossed goes unseen (its level stays wrong)."""
    k = _index_of("FILUSD", lambda msg: all(Decimal(q) > 0 for _s, _p, q in msg["changes"]), last=True)
    h = _v2_run(lambda i, d: [] if i == k else [d])
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (0, 0, 0)
    ref = V2Reference(parsed())
    assert not ref.books["FILUSD"].equals(h.scheme.books["FILUSD"])
    # a repeated update changes nothing (absolute sizes); a reordered pair of updates of
    # different levels cannot be told apart either
    h2 = _v2_run(lambda i, d: [d, d] if i == k else [d])
    assert ref.books["FILUSD"].equals(h2.scheme.books["FILUSD"]) and h2.metrics.gaps == 0


def test_v2_malformed_update_resyncs():
    k = _index_of("BTCGBP", lambda msg: True)

    def mutate(i, d):
        if i == k:
            msg = json.loads(d)
            msg["changes"][0][1] = "-5"
            return [json.dumps(msg).encode()]
        return [d]

    h = _v2_run(mutate, _v2_book_now())
    assert (h.metrics.gaps, h.metrics.resyncs) == (0, 1)
    assert dict(h.metrics.errors.counts) == {"gemini: malformed book level": 1}
    assert [s.symbol for s in h.events("status") if s.status == "resync"] == ["BTC-GBP"]
    ref = V2Reference(parsed())
    assert ref.books["BTCGBP"].equals(h.scheme.books["BTCGBP"])


def test_v2_bad_input_counted():
    h = Harness(GeminiV2Scheme, v2_listing(), url=V2_URL, strict=True)
    h.feed(b'{"type":"candles_1m_updates","symbol":"BTCUSD","changes":[]}')
    h.feed(b'{"type":"trade","symbol":"BTCUSD","event_id":1,"timestamp":1,"price":"-1","quantity":"1","side":"buy"}')
    h.feed(b'{"type":"trade","symbol":"BTCUSD","event_id":1,"timestamp":1,"price":"1","quantity":"1","side":"x"}')
    h.feed(b"not json")
    h.feed(b'{"type":"l2_updates","symbol":"NOPE!","changes":[]}')
    assert dict(h.metrics.errors.counts) == {"gemini: unknown message": 1, "gemini: malformed trade": 2,
                                             "gemini: not a JSON object": 1, "gemini: unknown market": 1}
    assert h.records == []


def test_v2_snapshot_trades_not_decoded_but_checked():
    """A subscription's first ``l2_updates`` carries its market's past trades (not published: kept
    as raw JSON): ``null`` is none (an update), anything but an array is malformed, as when they
    were decoded."""
    h = Harness(GeminiV2Scheme, v2_listing(), url=V2_URL)
    snap = {"type": "l2_updates", "symbol": "BTCUSD", "changes": [["buy", "1", "1"], ["sell", "2", "1"]]}
    assert [e[0] for e in h.feed({**snap, "trades": [{"type": "trade", "price": "1"}], "auction_events": []})] \
        == ["status", "lob", "lob", "spread"]
    assert [e[0] for e in h.feed({**snap, "changes": [["buy", "1.5", "1"]], "trades": None})] == ["lob", "spread"]
    out = [h.feed({**snap, "trades": bad}) for bad in ("x", {}, 1)]
    assert [[(e[0], e[1].status, e[1].reason) for e in o] for o in out] == [
        [("status", "resync", "malformed l2_updates message: Expected `array | null`, got `str` - at `$.trades`")],
        [], []]  # (the book reloading already)
    assert dict(h.metrics.errors.counts) == {"gemini: malformed l2_updates message": 3}
    assert h.metrics.resyncs == 1
    assert h.feed({**snap, "symbol": "NOTLISTED!", "trades": "x"}) == []
    assert dict(h.metrics.errors.counts) == {"gemini: malformed l2_updates message": 4}


def test_v2_snapshot_read_from_text_as_decoded():
    """A snapshot's changes are read by the book from their JSON text where it is plain, else
    decoded: the same events either way; a number the book refuses is a malformed snapshot, a
    bad side a malformed l2_updates (the book resyncs)."""
    def run(raw):
        h = Harness(GeminiV2Scheme, v2_listing(), url=V2_URL)
        h.feed({"type": "l2_updates", "symbol": "BTCUSD", "changes": [["buy", "5", "1"]], "trades": []})
        out = h.feed(b'{"type":"l2_updates","symbol":"BTCUSD","changes":' + raw + b',"trades":[]}')
        return out, h.scheme.books["BTCUSD"].levels(0), dict(h.metrics.errors.counts), h.metrics.resyncs

    plain = run(b'[["buy","1.5","2"],["sell","2","1"],["buy","1","3"]]')
    assert [(e[0], getattr(e[1], "price", None)) for e in plain[0]] == [
        ("status", None), ("lob", 1.5), ("lob", 1.0), ("lob", 2.0), ("spread", None)]
    assert plain[1:] == ([("1.5", "2"), ("1", "3")], {}, 0)
    assert run(b'[["b\\u0075y","1.5","2"],["sell","2","1"],["buy","1","\\u0033"]]') == plain
    for raw, kind, reason in (
            (b'[["buy","1.5","2"],["sell","-2","1"]]', "malformed snapshot",
             "malformed snapshot: invalid price '-2': signed"),
            (b'[["buy","1.5","2"],["ask","2","1"]]', "malformed l2_updates",
             "malformed l2_updates: side not buy or sell")):
        out, bids, errors, resyncs = run(raw)
        assert [(e[0], e[1].status, e[1].reason) for e in out] == [("status", "resync", reason)]
        assert (bids, errors, resyncs) == ([], {f"gemini: {kind}": 1}, 1)


def test_v2_updates_of_a_reloading_book_dropped_malformed_counted():
    """While a book reloads (after a resync, until its snapshot), its updates are dropped; a
    malformed one is still counted, as it was by the handler alone."""
    h = Harness(GeminiV2Scheme, v2_listing(), url=V2_URL)
    snap = {"type": "l2_updates", "symbol": "BTCUSD", "changes": [["buy", "1", "1"], ["sell", "2", "1"]],
            "trades": []}
    h.feed(snap)
    h.feed({"type": "l2_updates", "symbol": "BTCUSD", "changes": [["sell", "0.5", "1"]]})  # crossed: resync
    assert "BTCUSD" in h.scheme.unsynced and h.metrics.gaps == 1
    outs = [h.feed(b'{"type":"l2_updates","symbol":"BTCUSD","changes":' + raw + b'}')
            for raw in (b'[["buy","1.5","1"]]', b'[["bid","1.5","1"]]', b'[["buy",1.5,"1"]]', b'[["buy","-1","1"]]')]
    assert outs == [[], [], [], []]
    assert dict(h.metrics.errors.counts) == {"gemini: malformed l2_updates": 1,
                                             "gemini: malformed l2_updates message": 1}
    assert h.scheme.books["BTCUSD"].levels(0) == []


def test_v2_first_snapshot_malformed_or_of_no_market():
    """A market's first snapshot: a refused number is a malformed snapshot (its empty book made,
    as the handler always did), a bad type a malformed message (before the market is looked up),
    a market not listed an unknown market."""
    h = Harness(GeminiV2Scheme, v2_listing(), url=V2_URL)

    def feed(symbol, changes):
        return h.feed(b'{"type":"l2_updates","symbol":"' + symbol + b'","changes":' + changes + b',"trades":[]}')

    assert feed(b"ETHUSD", b'[["buy","-1","1"]]') == []
    assert h.scheme.books["ETHUSD"].levels(0) == []
    assert feed(b"NOTLISTED!", b'[["buy",1,"1"]]') == []
    assert feed(b"NOTLISTED!", b'[["buy","1","1"]]') == []
    assert feed(b"BTCUSD", b'[["ask","1","1"]]') == []
    assert "BTCUSD" not in h.scheme.books
    assert dict(h.metrics.errors.counts) == {"gemini: malformed snapshot": 1, "gemini: malformed l2_updates message": 1,
                                             "gemini: unknown market": 1, "gemini: malformed l2_updates": 1}
    assert [e[0] for e in feed(b"BTCUSD", b'[["buy","1","1"]]')] == ["status", "lob", "spread"]


def test_v2_sided_levels_as_apply_sides():
    """``apply_sided_levels`` (the v2 changes applied in C) is ``apply_sides(BID, bids, asks)`` of
    the changes split by side: the same rows, flags, book and errors (nothing applied)."""
    from atomfast._book import apply_sided_levels, check_sided_levels
    from atomfast.book import BID, L2Book

    changes = [("sell", "101.5", "2"), ("buy", "100.25", "1.5"), ("buy", "99", "3"), ("sell", "102", "0.5"),
               ("buy", "100.25", "0"), ("sell", "90071992547.40993", "1")]
    a, b = L2Book(8, 8), L2Book(8, 8)
    ra, rb = [], []
    fa = apply_sided_levels(a, changes, "buy", "sell", ra, Lob, "gemini", "X-Y", 5, 5000)
    fb = b.apply_sides(BID, [(p, q) for s, p, q in changes if s == "buy"],
                       [(p, q) for s, p, q in changes if s == "sell"], rb, Lob, "gemini", "X-Y", 5, 5000)
    assert (fa, ra) == (fb, rb) and a.levels(0) == b.levels(0) and a.levels(1) == b.levels(1)
    assert check_sided_levels(None, changes, "buy", "sell") == 3
    assert check_sided_levels(None, changes + [("bid", "1", "1")], "buy", "sell") == -1
    assert apply_sided_levels(a, [("buy", "-1", "1"), ("x", "1", "1")], "buy", "sell", ra, Lob, "gemini", "X-Y",
                              5, 5000) == -1
    for bad in ([("sell", "1e", "1"), ("buy", "1", "-2")], [("buy", "0", "1")]):
        with pytest.raises(ValueError) as sided:
            apply_sided_levels(a, bad, "buy", "sell", ra, Lob, "gemini", "X-Y", 5, 5000)
        with pytest.raises(ValueError) as sides:
            b.apply_sides(BID, [(p, q) for s, p, q in bad if s == "buy"], [(p, q) for s, p, q in bad if s == "sell"],
                          rb, Lob, "gemini", "X-Y", 5, 5000)
        assert str(sided.value) == str(sides.value)
    assert (ra, a.levels(0), a.levels(1)) == (rb, b.levels(0), b.levels(1))


def test_v2_sided_levels_from_text_as_decoded():
    """``apply_json_sided_levels`` (the changes' JSON text read in C; or the reading
    ``check_json_sided_levels`` kept of it) gives what ``apply_sided_levels`` of the decoded
    changes gives: flags, rows (tuples and Avro), books; every l2_updates of the capture, and many
    changes of both sides with numbers of 2**53 ticks or more."""
    import random

    from atomfast._book import AvroRows, apply_json_sided_levels, apply_sided_levels, check_json_sided_levels
    from atomfast.book import L2Book

    class Raw(msgspec.Struct):
        changes: msgspec.Raw = None

    raw_of = msgspec.json.Decoder(Raw).decode
    rng = random.Random(1)
    big = [(rng.choice(["buy", "sell"]), f"{rng.randint(1, 10**6)}.{rng.randint(0, 99):02d}",
            rng.choice(["0", "1.5", "90071992547.40993"])) for _ in range(3000)]
    texts = [(m_["symbol"], [tuple(c) for c in m_["changes"]], raw_of(d).changes)
             for _ts, d in recv_frames(CAPTURE) if (m_ := json.loads(d))["type"] == "l2_updates"]
    texts.append(("BIG", big, json.dumps(big).encode()))
    books: dict = {}
    for symbol, changes, text in texts:
        a, b, c = books.setdefault(symbol, (L2Book(8, 8), L2Book(8, 8), L2Book(8, 8)))
        ra, rb, rc = [], [], []
        assert check_json_sided_levels(c, text, "buy", "sell") == len(changes)
        assert (apply_sided_levels(a, changes, "buy", "sell", ra, Lob, "gemini", "X-Y", 1, 2), ra) \
            == (apply_json_sided_levels(b, text, "buy", "sell", rb, Lob, "gemini", "X-Y", 1, 2), rb) \
            == (apply_json_sided_levels(c, text, "buy", "sell", rc, Lob, "gemini", "X-Y", 1, 2), rc)
    for a, b, c in books.values():
        assert a.levels(0) == b.levels(0) == c.levels(0) and a.levels(1) == b.levels(1) == c.levels(1)
    va, vb = AvroRows(), AvroRows()
    apply_sided_levels(L2Book(8, 8), big, "buy", "sell", va, Lob, "gemini", "X-Y", 1, 2)
    apply_json_sided_levels(L2Book(8, 8), json.dumps(big).encode(), "buy", "sell", vb, Lob, "gemini", "X-Y", 1, 2)
    assert va.take() == vb.take()


def test_v2_update_bad_side_resyncs():
    k = _index_of("BTCGBP", lambda msg: True)

    def mutate(i, d):
        if i == k:
            msg = json.loads(d)
            msg["changes"][-1][0] = "bid"
            return [json.dumps(msg).encode()]
        return [d]

    h = _v2_run(mutate, _v2_book_now())
    assert (h.metrics.gaps, h.metrics.resyncs) == (0, 1)
    assert dict(h.metrics.errors.counts) == {"gemini: malformed l2_updates": 1}
    ref = V2Reference(parsed())
    assert ref.books["BTCGBP"].equals(h.scheme.books["BTCGBP"])


def test_v2_declared_shape_gives_what_the_handler_gives():
    """The ``l2_updates`` route (``SidedLevels``: an update in C, the rest to ``_on_l2``) writes
    the very events, errors and resyncs the handler alone writes, message for message: one side,
    both sides, a removal of a level not held, 2**53 ticks or more, a crossing, malformed sides
    and levels, a snapshot on a live book and on a reloading one, a market not listed."""
    from atomfast.book import ASK, BID
    from atomfast.exchanges.gemini import messages as gm
    from atomfast.kit.dispatch import Dispatch
    from atomfast.kit.shapes import SidedLevels

    d = GeminiV2Scheme.dispatch
    assert isinstance(d.routes[gm.L2Updates], SidedLevels)

    class HandlerOnly(GeminiV2Scheme):
        dispatch = Dispatch({**d.routes, gm.L2Updates: "_on_l2"}, decoder=d.decoder, lead=d.lead, refused=d.refused)

    def l2(changes, symbol="BTCUSD", **extra):
        return {"type": "l2_updates", "symbol": symbol, "changes": changes, **extra}

    snapshot = l2([["buy", "0.70", "1"], ["sell", "0.90", "1"]], trades=[], auction_events=[])
    updates = [
        [["buy", "0.70", "5"]],
        [["sell", "0.90", "1.5"], ["sell", "0.91", "2"]],
        [["buy", "0.60", "0"]],  # not held: no event
        [["sell", "0.91", "0"], ["buy", "0.71", "1"], ["sell", "0.92", "3"], ["buy", "0.70", "0"]],
        [["sell", "99999999.12345678", "1"], ["sell", "0.95", "90071992.54740993"]],  # 2**53 ticks or more
        [],
        [["buy", "0.72", "1"]],
        [["sell", "0.72", "1"], ["buy", "0.50", "1"]],  # crosses the bid: a gap, resync
        [["buy", "0.73", "1"]],  # reloading: dropped
    ]
    bad = [
        [["bid", "0.70", "5"]],
        [["buy", "0.70", "-5"], ["sel", "1", "1"]],
        [["buy", "0.70", "-5"]],
        [["sell", "x", "2"], ["buy", "0.70", "1"]],
        [["buy", "0.700000001", "5"]],
        [["buy", "0", "5"]],
    ]
    outs = []
    for cls in (GeminiV2Scheme, HandlerOnly):
        h = Harness(cls, v2_listing(), url=V2_URL)
        out = [h.feed(l2([["buy", "0.70", "1"]])), h.feed(snapshot)]  # no book yet: dropped
        for i, changes in enumerate(updates):
            out.append(h.feed(l2(changes), T0 + i))
        out.append(h.feed(snapshot))  # the reloading book's snapshot
        out.append(h.feed(snapshot))  # a snapshot on a live book
        for i, changes in enumerate(bad):
            out.append(h.feed(snapshot))
            out.append(h.feed(l2(changes), T0 + 100 + i))
        out.append(h.feed(l2([["buy", "1", "1"]], symbol="NOTLISTED!")))
        out.append(h.feed(l2([["buy", "1", "1"]], symbol="ETHUSD")))  # listed, no book
        # the changes' JSON as the C reading takes it (plain strings) and as it leaves it to the venue
        for raw in (b'[ [ "buy" , "0.70" , "2" ] , ["sell","0.9","1"] ]', b'[["bu\\u0079","0.70","3"]]',
                    b'[["buy","0.70\\u0030","4"]]', b'[["buy",0.7,"1"]]', b'[["buy","0.70"]]',
                    b'[["buy","0.70","1","x"]]', b'{}', b'[["buy","0.70","1"]],"trades":"x"', b'[]'):
            out.append(h.feed(snapshot))
            out.append(h.feed(b'{"type":"l2_updates","symbol":"BTCUSD","changes":' + raw + b'}'))
        book = h.scheme.books["BTCUSD"]
        book._validate()
        outs.append((out, book.levels(BID), book.levels(ASK), dict(h.metrics.errors.counts),
                     (h.metrics.gaps, h.metrics.resyncs), [m for m in h.conn.sent]))
    assert outs[0] == outs[1]
    assert outs[0][4] == (1, 12)


# ------------------------------------------------------------------------------------------------
# the current API: documented messages


def _harness() -> Harness:
    h = Harness(GeminiScheme, listing(), symbols=["BTC-USD"])
    h.conn.plan = h.scheme.plan()[0]
    h.open(T0)
    assert h.sent() == [{"id": 1, "method": "subscribe",
                         "params": ["btcusd@depth@100ms", "btcusd@trade", "btcusd@bookTicker"]}]
    h.conn.sent.clear()
    return h


def _ref(frames) -> RefBook:
    ref = RefBook()
    for _ts, data in frames:
        msg = json.loads(data)
        if msg.get("e") == "depthUpdate":
            for side in ("b", "a"):
                for p, q in msg[side]:
                    ref.set(side, p, q)
    return ref


def _snapshot_frame(ref: RefBook, u: int) -> bytes:
    """The exchange's book now as the first frame of a subscription (U = u)."""
    return json.dumps({"e": "depthUpdate", "E": 1700000000000, "s": "btcusd", "U": u, "u": u,
                       "b": [list(x) for x in ref.ordered("b")], "a": [list(x) for x in ref.ordered("a")]}).encode()


def test_documented_stream_exact():
    h = _harness()
    out = h.feed_all(documented())
    ts = [t for t, _ in documented()]
    assert out == [
        ("status", Status("gemini", "", "subscribed", "request 1", ts[0] // 10**6, ts[0] // 1000)),
        ("status", Status("gemini", "BTC-USD", "snapshot", "", 1700000000000, ts[1] // 1000)),
        ("lob", Lob("gemini", "BTC-USD", 65000.0, 2.0, "buy", 1700000000000, ts[1] // 1000)),
        ("lob", Lob("gemini", "BTC-USD", 65100.0, 1.5, "sell", 1700000000000, ts[1] // 1000)),
        ("spread", Spread("gemini", "BTC-USD", 65000.0, 2.0, 65100.0, 1.5, 1700000000000, ts[1] // 1000)),
        ("lob", Lob("gemini", "BTC-USD", 65050.0, 3.0, "buy", 1700000000000, ts[2] // 1000)),
        ("spread", Spread("gemini", "BTC-USD", 65050.0, 3.0, 65100.0, 1.5, 1700000000000, ts[2] // 1000)),
        ("trades", Trade("gemini", "BTC-USD", 1000.0, 0.25, "sell", "123456789", 1700000000000, ts[3] // 1000)),
        ("lob", Lob("gemini", "BTC-USD", 64700.0, 2.0, "buy", 1700000000000, ts[4] // 1000)),
    ]
    assert h.scheme.book_sync.markets["btcusd"].last == 105
    assert _ref(documented()).equals(h.scheme.books["btcusd"])
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (0, 0, 0)


def test_book_ticker_and_symbol_case():
    """The spec's bookTicker fields (u, E in ns, s, b, B, a, A); prices those of the book above.
    An inbound symbol in upper case (Gemini's ``ws-inbound-symbol-case``) names the same market."""
    h = _harness()
    h.feed_all(documented()[:1])
    out = h.feed(b'{"u":102,"E":1700000000000000000,"s":"BTCUSD","b":"65050.00","B":"3.0","a":"65100.00","A":"1.5"}')
    assert out == [("ticker", Ticker("gemini", "BTC-USD", 65050.0, 3.0, 65100.0, 1.5, 1700000000000, T0 // 1000))]


def _fault(mutate):
    """The documented stream with ``mutate(i, data)`` in place of frame i; a resubscription is
    answered (its ack, then the exchange's book now as its first frame)."""
    frames = documented()

    def answer(msg: dict, i: int, ts: int) -> list:
        ack = {"id": msg["id"], "status": 200}
        if msg["method"] != "subscribe":
            return [ack]
        return [ack, _snapshot_frame(_ref(frames[: i + 1]), 105 if i >= 4 else 102 + i)]

    return feed_answering(_harness(), frames, mutate, answer)


def test_fault_dropped_diff_gap_resync_rebuild():
    h = _fault(lambda i, d: [] if i == 2 else [d])  # 101..102 lost
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (1, 1, 0)
    assert [(s.symbol, s.status, s.reason) for s in h.events("status") if s.symbol] == [
        ("BTC-USD", "snapshot", ""), ("BTC-USD", "resync", "gap: U 103 != previous u 100 + 1"),
        ("BTC-USD", "snapshot", "")]
    assert _ref(documented()).equals(h.scheme.books["btcusd"])
    assert h.scheme.book_sync.markets["btcusd"].live


def test_fault_duplicated_diff_is_stale_and_ignored():
    """A repeated frame (``u`` <= the book's) is stale: ignored, the book unchanged (no resync)."""
    h = _fault(lambda i, d: [d, d] if i == 2 else [d])
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (0, 0, 0)
    assert len(h.events("lob")) == 4
    assert _ref(documented()).equals(h.scheme.books["btcusd"])


def test_fault_reordered_diffs_gap_resync_rebuild():
    frames = documented()

    def mutate(i, d):
        if i == 2:
            return [frames[4][1]]  # 103..105 before 101..102
        if i == 4:
            return [frames[2][1]]
        return [d]

    h = _fault(mutate)
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (1, 1, 0)
    resync = [s for s in h.events("status") if s.status == "resync"]
    assert [s.reason for s in resync] == ["gap: U 103 != previous u 100 + 1"]
    assert _ref(documented()).equals(h.scheme.books["btcusd"])


def test_fault_malformed_level_and_unreadable_frame_resync():
    bad = b'{"e":"depthUpdate","E":1700000000000,"s":"btcusd","U":101,"u":102,"b":[["65050.00","-3.0"]],"a":[]}'
    h = _fault(lambda i, d: [bad] if i == 2 else [d])
    assert (h.metrics.gaps, h.metrics.resyncs) == (0, 1)
    assert dict(h.metrics.errors.counts) == {"gemini: malformed book level": 1}
    assert [s.reason for s in h.events("status") if s.status == "resync"] == [
        "malformed book level: invalid size '-3.0': signed"]
    assert _ref(documented()).equals(h.scheme.books["btcusd"])
    # a depth frame that is not of the documented shape: counted, the book resyncs
    h2 = _harness()
    h2.feed_all(documented()[:3])
    h2.feed(b'{"e":"depthUpdate","E":1,"s":"btcusd","U":"x","u":103,"b":[],"a":[]}')
    assert h2.metrics.errors.counts["gemini: malformed depthUpdate"] == 1
    assert [s.status for s in h2.events("status")][-1] == "resync" and "btcusd" in h2.scheme.unsynced
    assert h2.sent()[-2:] == [{"id": 2, "method": "unsubscribe", "params": ["btcusd@depth@100ms"]},
                              {"id": 3, "method": "subscribe", "params": ["btcusd@depth@100ms"]}]
    # frames before the resubscription's answer are dropped; the first after it is the snapshot
    h2.feed(documented()[4][1])
    h2.feed({"id": 2, "status": 200})
    h2.feed({"id": 3, "status": 200})
    out = h2.feed(_snapshot_frame(_ref(documented()), 105))
    assert out[0][1].status == "snapshot" and _ref(documented()).equals(h2.scheme.books["btcusd"])


def test_lost_removal_seen_as_crossed_book():
    h = _harness()
    h.feed_all(documented()[:2])
    out = h.feed(b'{"e":"depthUpdate","E":1700000000000,"s":"btcusd","U":101,"u":101,"b":[["65100.00","1.0"]],"a":[]}')
    assert out[-1] == ("status", Status("gemini", "BTC-USD", "resync", "gap: book crossed: bid 65100.0 >= ask 65100.0",
                                        T0 // 10**6, T0 // 1000))
    assert (h.metrics.gaps, h.metrics.resyncs) == (1, 1)


def test_subscription_error_and_bad_input():
    h = _harness()
    h.feed({"id": 1, "status": 400, "error": {"code": -1002, "msg": "invalid stream"}})
    h.feed(b'{"e":"trade","E":1,"s":"btcusd","t":1,"p":"1e400","q":"1","m":true}')
    h.feed(b'{"e":"trade","E":1,"s":"btcusd","t":1,"p":"1","q":"1","m":"yes"}')
    h.feed(b'{"u":1,"E":1,"s":"btcusd","b":"1","B":"x","a":"2","A":"1"}')
    h.feed(b'{"hello":1}')
    h.feed(b'{"e":"trade","E":1,"s":"nope!","t":1,"p":"1","q":"1","m":true}')
    assert dict(h.metrics.errors.counts) == {"gemini: exchange error": 1, "gemini: malformed trade": 1,
                                             "gemini: unknown message": 2, "gemini: malformed bookTicker": 1,
                                             "gemini: unknown market": 1}
    assert h.events("trades") == [] and h.events("ticker") == []


def test_reconnect_reloads_the_book():
    h = _harness()
    h.feed_all(documented())
    h.close("test")
    assert "btcusd" in h.scheme.unsynced
    h.open(T0)
    assert h.sent()[-1]["method"] == "subscribe" and h.sent()[-1]["id"] == 2
    h.feed({"id": 2, "status": 200})
    out = h.feed(_snapshot_frame(_ref(documented()), 105))
    assert out[0][1].status == "snapshot" and "btcusd" not in h.scheme.unsynced


# ------------------------------------------------------------------------------------------------
# simulate + run --endpoint


@pytest.mark.parametrize("capture,symbols", [(CAPTURE, "BTC-GBP,LINK-ETH,FIL-USD,ZEC-LTC,BAT-BTC,ETH-EUR,LTC-ETH,"
                                                       "GRT-USD,ANKR-USD,ALCX-USD"),
                                             (DOCUMENTED, "BTC-USD")], ids=["v2", "current"])
def test_simulator_and_run_endpoint(capture, symbols):
    path = capture if not isinstance(capture, str) else fixture_path(capture)
    replay = Replay(open_capture(path), "gemini", MemorySink())
    replay.run(0)
    offline = replay.metrics.summary()
    with SimProcess(path, "--pace", "fast") as sim:
        r = run_cli("run", "--exchange", "gemini", "--endpoint", sim.url, "--sink", "stdout", "--symbols", symbols,
                    "--max-frames", offline["frames"], timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    s = cli_summary(r.stderr)
    assert s["frames"] == offline["frames"] and s["gaps"] == 0 and s["errors"] == 0
    for topic in ("lob", "spread", "trades"):
        assert s["events"].get(topic, 0) == offline["events"].get(topic, 0), topic
