"""HitBTC API v3 (``hitbtc``) and FMFW (``fmfw``, the same engine on api.fmfw.io).

Recorded: ``cryptofeed/FMFW.ws.1.0`` (2021-10-09; ``orderbook/full``, ``ticker/1s`` of six
spot symbols; the capture holds no trades or candles) with its listing ``FMFW.0``.
Documented and published single messages (trades, candles, a perpetual's book, ``futures/info``):
``tests/data/hitbtc/HITBTC_V3.ws.1.0``, whose SOURCES.md says where each message comes from.

The book rule (docs, "Subscribe to full order book"; the ``s + 1`` chain as probed on the wire):
a ``snapshot`` sets the symbol's sequence ``s``; each ``update`` must carry the previous ``s`` + 1.
"""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from atomfast.book import ASK, BID
from atomfast.events import FundingRate, OpenInterest, Status, Ticker
from atomfast.exchanges.hitbtc import FmfwScheme, HitbtcScheme
from atomfast.exchanges.hitbtc.parse import expiry_date, guess_instrument, parse_symbols
from atomfast.scheme import Instrument
from atomfast.testing import (Harness, RefBook, SimProcess, capture_instruments, cli_summary, decimal_levels, faulty,
                              fixture_path, recv_frames, replay_fixture, run_cli)

CAPTURE = "cryptofeed/FMFW.ws.1.0"
DOCS = Path(__file__).resolve().parent.parent / "data" / "hitbtc" / "HITBTC_V3.ws.1.0"


def fmfw() -> tuple[Harness, list]:
    path = fixture_path(CAPTURE)
    return Harness(FmfwScheme, capture_instruments(path, FmfwScheme)), recv_frames(path)


def docs() -> tuple[Harness, list]:
    return Harness(HitbtcScheme, capture_instruments(DOCS, HitbtcScheme)), recv_frames(DOCS)


def book_part(data: bytes):
    """(kind, symbol, payload) of an ``orderbook/full`` frame, else None."""
    msg = json.loads(data)
    if msg.get("ch") != "orderbook/full":
        return None
    kind = "snapshot" if "snapshot" in msg else "update"
    ((symbol, payload),) = msg[kind].items()
    return kind, symbol, payload


# --- registry, listing, subscriptions -------------------------------------------------------------

def test_registry_and_listing():
    from atomfast.exchanges import scheme_for, schemes

    assert schemes()["hitbtc"] == [HitbtcScheme] and schemes()["fmfw"] == [FmfwScheme]
    assert scheme_for("fmfw", "wss://api.fmfw.io/api/3/ws/public") is FmfwScheme
    assert FmfwScheme.rest_url == "https://api.fmfw.io" and HitbtcScheme.rest_url == "https://api.hitbtc.com"
    assert FmfwScheme.instruments_paths == HitbtcScheme.instruments_paths == ("/api/3/public/symbol",)
    inst = capture_instruments(fixture_path(CAPTURE), FmfwScheme)
    assert len(inst) == 424  # 423 spot symbols and one perpetual
    assert inst["EOSUSDT"] == Instrument("EOSUSDT", "EOS-USDT", "spot", "EOS", "USDT", 5, 2)
    assert inst["USDTUSDP"] == Instrument("USDTUSDP", "USDT-USDP", "spot", "USDT", "USDP", 6, 2)
    assert inst["DOGEUSDT"][5:7] == (8, 0)  # tick 0.00000001, lot 10
    assert inst["BTCUSDT_PERP"] == Instrument("BTCUSDT_PERP", "BTC-USDT-PERP", "perp", "BTC", "USDT", 2, 4)
    assert set(HitbtcScheme.default_symbols) <= {i.symbol for i in inst.values()}
    assert set(HitbtcScheme.default_symbols) <= {i.symbol for i in capture_instruments(DOCS, HitbtcScheme).values()}
    assert expiry_date("2026-12-25T08:00:00.000Z") == "20261225"
    assert guess_instrument("ETHUSDT_PERP").symbol == "ETH-USDT-PERP" and guess_instrument("ETHBTC").symbol == "ETH-BTC"
    with pytest.raises(KeyError):
        guess_instrument("not a symbol")
    assert parse_symbols(b'{"X":{"type":"option"}}') == {}


def test_subscriptions_plan_and_resubscribe():
    inst = capture_instruments(DOCS, HitbtcScheme)
    h = Harness(HitbtcScheme, inst, symbols=["ETH-BTC", "BTC-USDT-PERP"])
    plan = h.scheme.plan()
    assert len(plan) == 1 and plan[0].url == "wss://api.hitbtc.com/api/3/ws/public"
    # funding_rate and open_interest share futures/info, which exists for futures only
    assert plan[0].subscriptions == [("orderbook/full", ["ETHBTC", "BTCUSDT_PERP"]),
                                     ("trades", ["ETHBTC", "BTCUSDT_PERP"]), ("ticker/1s", ["ETHBTC", "BTCUSDT_PERP"]),
                                     ("candles/M1", ["ETHBTC", "BTCUSDT_PERP"]), ("futures/info", ["BTCUSDT_PERP"])]
    msgs = [json.loads(x) for x in h.scheme.subscribe_plan(plan[0])]
    assert msgs[0] == {"method": "subscribe", "ch": "orderbook/full", "params": {"symbols": ["ETHBTC", "BTCUSDT_PERP"]},
                       "id": 1}
    assert [x["ch"] for x in msgs] == ["orderbook/full", "trades", "ticker/1s", "candles/M1", "futures/info"]
    h.scheme.resubscribe(h.conn, "ETHBTC")
    assert [(x["method"], x["ch"], x["params"]) for x in h.sent()] == [
        ("unsubscribe", "orderbook/full", {"symbols": ["ETHBTC"]}), ("subscribe", "orderbook/full", {"symbols": ["ETHBTC"]})]
    assert h.scheme.ping_message() is None and 0 < h.scheme.ping_interval < 30


# --- the recorded FMFW capture --------------------------------------------------------------------

def test_capture_books_against_reference_model():
    """Every book of the capture rebuilt from its own frames by an independent model (RefBook on
    the texts), every sequence checked independently: the scheme's events and books agree."""
    h, frames = fmfw()
    ref: dict[str, RefBook] = {}
    seq: dict[str, int] = {}
    expected_lob = expected_spread = updates = 0
    for ts, data in frames:
        produced = h.feed(data, ts)
        part = book_part(data)
        if part is None:
            continue
        kind, symbol, d = part
        if kind == "snapshot":
            book = ref[symbol] = RefBook(empty=Decimal(0))
            before = book.top()
            for side in ("b", "a"):
                for price, size in d[side]:
                    expected_lob += book.set(side, price, size) if Decimal(size) else 0
        else:
            assert d["s"] == seq[symbol] + 1  # the capture itself keeps the rule
            updates += 1
            book = ref[symbol]
            before = book.top()
            for side in ("b", "a"):
                for price, size in d[side]:
                    expected_lob += book.set(side, price, size)
        seq[symbol] = d["s"]
        if book.top() != before:
            expected_spread += 1
        for topic, rec in produced:
            if topic == "spread":
                assert tuple(Decimal(repr(x)) for x in rec[2:6]) == book.top()
    assert h.metrics.gaps == h.metrics.resyncs == h.metrics.errors.total == 0
    assert updates == 538 and len(ref) == 6
    assert len(h.events("lob")) == expected_lob == 12755
    assert len(h.events("spread")) == expected_spread == 156
    for symbol, book in ref.items():
        assert decimal_levels(h.scheme.books[symbol].levels(BID)) == book.levels("b")
        assert decimal_levels(h.scheme.books[symbol].levels(ASK)) == book.levels("a")
        h.scheme.books[symbol]._validate()
    assert h.scheme.seqs == seq
    assert seq["EOSUSDT"] == 1876011 + sum(1 for _, d in frames if b'"update":{"EOSUSDT"' in d)


def test_capture_first_update_exact():
    h, frames = fmfw()
    i = next(k for k, (_, d) in enumerate(frames) if d.startswith(b'{"ch":"orderbook/full","update"'))
    for ts, data in frames[:i]:
        h.feed(data, ts)
    ts, data = frames[i]
    lob = [(r.side, r.price, r.size, r.event_timestamp) for t, r in h.feed(data, ts) if t == "lob"]
    # EOSUSDT s 1876012: bids first, then asks, in the message's order; every level is a change
    # (the five "0" sizes remove levels the snapshot had)
    t = 1633806854814
    assert lob == [("buy", 4.98139, 760.0, t), ("buy", 4.98106, 31.66, t), ("buy", 4.98097, 0.0, t),
                   ("sell", 4.98223, 0.0, t), ("sell", 4.98231, 26.49, t), ("sell", 4.9829, 100.26, t),
                   ("sell", 4.98362, 0.0, t), ("sell", 4.98363, 0.0, t), ("sell", 4.98378, 0.0, t),
                   ("sell", 4.98598, 100.26, t), ("sell", 4.99469, 1561.88, t), ("sell", 4.99726, 0.0, t)]
    assert h.scheme.seqs["EOSUSDT"] == 1876012


def test_capture_ticker_exact():
    h, frames = fmfw()
    h.feed_all(frames)
    tickers = h.events("ticker")
    assert len(tickers) == 41
    assert tickers[0] == Ticker("fmfw", "EOS-USDT", 4.98136, 31.67, 4.98223, 26.49, 1633806854744,
                                next(ts for ts, d in frames if d.startswith(b'{"ch":"ticker/1s"')) // 1000)
    assert tickers[-1][:7] == ("fmfw", "EOS-USDT", 4.97951, 760.0, 4.98039, 760.0, 1633806884844)


def test_capture_statuses():
    path = fixture_path(CAPTURE)
    _, sink = replay_fixture(path, exchange="fmfw")
    statuses = sink.statuses()
    assert statuses.count(("subscribed", "orderbook/full")) == 10  # the answer lists all ten symbols
    assert [s for s in statuses if s[0] == "snapshot"] == [("snapshot", "")] * 6
    assert len(statuses) == 47


# --- the sync rule: drop, duplicate, reorder one real update --------------------------------------

def _eos_updates(frames) -> list[int]:
    return [i for i, (_, d) in enumerate(frames) if d.startswith(b'{"ch":"orderbook/full","update":{"EOSUSDT"')]


@pytest.mark.parametrize("fault", ["drop", "duplicate", "reorder"])
def test_sequence_fault_resyncs_and_rebuilds(fault):
    """One EOSUSDT update of the real capture dropped, repeated or swapped with the next: the break
    is seen at once (a gap, status ``resync`` with the expected and received ``s``), the book is
    dropped, unsubscribe + subscribe is sent, later updates are ignored; the snapshot the
    resubscription brings (built here from an independent RefBook of the undisturbed stream)
    rebuilds it, and from there on it equals that reference."""
    h, frames = fmfw()
    updates = _eos_updates(frames)
    assert len(updates) > 150
    victim, nxt, inject = updates[20], updates[21], updates[60]
    order = faulty(range(len(frames)), victim, fault, nxt)  # (reorder: with EOSUSDT's next update)
    detect = victim if fault == "duplicate" else nxt
    # the undisturbed reference: EOSUSDT's book and s after each of its frames
    ref = RefBook()
    ref_after: dict[int, tuple[list, list, int]] = {}
    for i, (_, data) in enumerate(frames):
        part = book_part(data)
        if part is None or part[1] != "EOSUSDT":
            continue
        for side in ("b", "a"):
            for price, size in part[2][side]:
                ref.set(side, price, size)
        ref_after[i] = (ref.ordered("b"), ref.ordered("a"), part[2]["s"])
    bids, asks, s = ref_after[inject]
    snapshot = json.dumps({"ch": "orderbook/full", "snapshot": {"EOSUSDT": {
        "t": 1633806900000, "s": s, "a": [list(x) for x in asks], "b": [list(x) for x in bids]}}})
    s_of = {i: json.loads(frames[i][1])["update"]["EOSUSDT"]["s"] for i in (victim, nxt)}
    if fault == "duplicate":
        pos_detect = order.index(victim) + 1
        reason = f"sequence gap: expected s {s_of[victim] + 1}, got {s_of[victim]}"
    else:
        pos_detect = order.index(nxt)
        reason = f"sequence gap: expected s {s_of[victim]}, got {s_of[nxt]}"
    for k, i in enumerate(order):
        ts, data = frames[i]
        produced = h.feed(data, ts)
        if k == pos_detect:
            status = [r for t, r in produced if t == "status"]
            assert status == [Status("fmfw", "EOS-USDT", "resync", reason, ts // 1_000_000, ts // 1000)]
            assert not [r for t, r in produced if t in ("lob", "spread")]
            assert h.metrics.gaps == 1 and h.metrics.resyncs == 1
            assert h.scheme.books["EOSUSDT"].count(BID) == h.scheme.books["EOSUSDT"].count(ASK) == 0
            assert [(x["method"], x["ch"], x["params"]) for x in h.sent()] == [
                ("unsubscribe", "orderbook/full", {"symbols": ["EOSUSDT"]}),
                ("subscribe", "orderbook/full", {"symbols": ["EOSUSDT"]})]
        elif k < pos_detect:
            assert h.metrics.gaps == 0
        elif i <= inject:
            assert not [r for t, r in produced if t in ("lob", "spread") and r.symbol == "EOS-USDT"]
        if i == inject:
            produced = h.feed(snapshot, ts)
            assert produced[0][1] == Status("fmfw", "EOS-USDT", "snapshot", "", 1633806900000, ts // 1000)
            assert "EOSUSDT" not in h.scheme.unsynced
    assert h.metrics.gaps == 1 and h.metrics.resyncs == 1 and h.metrics.errors.total == 0
    book = h.scheme.books["EOSUSDT"]
    assert decimal_levels(book.levels(BID)) == ref.levels("b") and decimal_levels(book.levels(ASK)) == ref.levels("a")
    assert h.scheme.seqs["EOSUSDT"] == ref_after[updates[-1]][2]


def test_update_before_snapshot_resyncs_without_gap():
    h, frames = fmfw()
    update = next(d for _, d in frames if d.startswith(b'{"ch":"orderbook/full","update":{"EOSUSDT"'))
    produced = h.feed(update)
    assert [(r.status, r.reason) for t, r in produced if t == "status"] == [
        ("resync", "book update before its snapshot")]
    assert h.metrics.gaps == 0 and h.metrics.resyncs == 1 and not h.events("lob")
    assert h.feed(update) == []  # ignored while the snapshot is on its way
    assert h.metrics.resyncs == 1


# --- documented and published messages ------------------------------------------------------------

def test_documented_messages_exact():
    h, frames = docs()
    h.feed_all(frames)
    assert h.metrics.errors.total == h.metrics.gaps == 0
    trades = [r[:7] for r in h.events("trades")]
    assert trades == [("hitbtc", "BTC-USDT", 30881.96, 12.66828, "buy", "1555634969", 1626861109494),
                      ("hitbtc", "BTC-USDT", 21460.55, 0.00105, "buy", "1872478761", 1661352113934),
                      ("hitbtc", "BTC-USDT", 21460.56, 0.07, "buy", "1872478762", 1661352113934)]
    assert [r[:7] for r in h.events("ticker")] == [
        ("hitbtc", "ETH-BTC", 0.031148, 0.10565, 0.031175, 0.03329, 1614815872000),
        ("hitbtc", "BTC-USDT", 17280.80, 0.07226, 17290.25, 0.1, 1670238331387)]
    candles = h.events("candle")
    assert [c[:12] for c in candles] == [
        ("hitbtc", "BTC-USDT", 1626860340000, 1626860400000, "1m", 0, False, 30881.95, 30900.8, 30861.27, 30890.96,
         1.27852),
        ("hitbtc", "ETH-BTC", 1626860880000, 1626860940000, "1m", 0, False, 0.060711, 0.060749, 0.060711, 0.060749,
         12.28)]
    f = frames[-1][0] // 1000
    assert h.events("funding_rate") == [FundingRate("hitbtc", "BTC-USDT-PERP", 87201.65, 0.0001, 1790150400000, 0.0001,
                                                    1790138282100, f)]
    assert h.events("open_interest") == [OpenInterest("hitbtc", "BTC-USDT-PERP", 12.3564, 1790138282100, f)]
    # the books: ETHBTC's documented snapshot + update, the perpetual's real snapshot + update
    eth, perp = h.scheme.books["ETHBTC"], h.scheme.books["BTCUSDT_PERP"]
    assert eth.levels(BID) == [("0.060501", "3.9000"), ("0.060500", "3.0459"), ("0.060439", "4.4095"),
                               ("0.060407", "7.3349")]
    assert eth.levels(ASK) == [("0.060509", "2.5486"), ("0.060549", "12.6431")]
    assert perp.levels(BID) == [("87195.11", "0.0579"), ("87191.90", "0.0111")]
    assert h.scheme.seqs == {"ETHBTC": 27617208, "BTCUSDT_PERP": 1334526}
    assert len(h.events("lob")) == 13 and len(h.events("spread")) == 3


def test_trade_snapshot_repeats_are_published_once():
    h, frames = docs()
    h.feed_all(frames)
    snapshot = next(d for _, d in frames if d.startswith(b'{"ch":"trades","snapshot"'))
    update = next(d for _, d in frames if d.startswith(b'{"ch":"trades","update"'))
    assert h.feed(snapshot) == []  # id 1555634969 is not above the last one published
    again = [r for t, r in h.feed(update) if t == "trades"]
    assert [r.trade_id for r in again] == ["1872478761", "1872478762"]  # live trades always go out


def test_candle_is_closed_when_the_next_one_starts():
    h, frames = docs()
    update = json.loads(next(d for _, d in frames if d.startswith(b'{"ch":"candles/M1","update"')))
    h.feed(update, 1_700_000_000_000_000_000)
    nxt = json.loads(json.dumps(update))
    nxt["update"]["ETHBTC"][0]["t"] += 60_000  # the next minute's candle (same figures)
    produced = [r for t, r in h.feed(nxt, 1_700_000_001_000_000_000) if t == "candle"]
    assert [(c.start, c.closed, c.event_timestamp) for c in produced] == [
        (1626860880000, True, 1_700_000_001_000), (1626860940000, False, 1_700_000_001_000)]
    stale = json.loads(json.dumps(update))
    assert [r for t, r in h.feed(stale) if t == "candle"] == []  # older than the open one


def test_answers_errors_and_bad_input():
    h, _ = docs()
    # the error the venue answers an unknown channel with (as probed on FMFW and Changelly PRO)
    err = b'{"error":{"code":2003,"message":"Unknown channel","description":"Channel is not supported: orderbook/D30/100ms"},"id":5}'
    produced = h.feed(err)
    assert [(r.status, r.reason) for t, r in produced if t == "status"] == [("stopped", "request 5 failed: 2003 Unknown channel")]
    assert h.reports[-1][0] == "hitbtc: exchange error"
    assert h.feed(b'{"id":6,"result":"pong"}') == []
    kinds = []
    for frame in (b"not json", b"[1,2]", b'{"ch":"orderbook/top/100ms","data":{}}', b'{"ch":"trades","update":7}',
                  b'{"ch":"orderbook/full","update":{"ETHBTC":{"t":1,"s":"x"}}}', b'{"ch":"ticker/1s","data":{"ETHBTC":{"t":1,"a":"-1"}}}',
                  b'{"ch":"trades","update":{"BTCUSDT":[{"t":1,"i":2,"p":"1","q":"1","s":"up"}]}}', b'{"nothing":1}'):
        before = len(h.reports)
        assert [r for t, r in h.feed(frame) if t not in ("status",)] == []
        assert len(h.reports) == before + 1, frame
        kinds.append(h.reports[-1][0])
    assert kinds == ["hitbtc: not a JSON object", "hitbtc: not a JSON object", "hitbtc: unknown channel",
                     "hitbtc: malformed trades message", "hitbtc: malformed book message", "hitbtc: malformed ticker",
                     "hitbtc: malformed trade", "hitbtc: unknown message"]
    assert h.metrics.resyncs == 0  # ETHBTC had no book yet: nothing to resync


def test_malformed_update_of_a_live_book_resyncs_it():
    h, frames = docs()
    h.feed_all(frames)
    bad = b'{"ch":"orderbook/full","update":{"ETHBTC":{"t":1626866579000,"s":27617209,"a":[["0.0605x","1"]],"b":[]}}}'
    produced = h.feed(bad)
    assert [(r.status, r.reason) for t, r in produced if t == "status"] == [
        ("resync", "malformed book update: invalid price '0.0605x': not a decimal number")]
    assert h.scheme.books["ETHBTC"].count(BID) == 0 and h.metrics.resyncs == 1 and h.metrics.gaps == 0



def test_levels_read_as_text_and_what_is_not():
    """The levels are read by the book from the message's text; what the book does not read there
    takes the way of decoded levels, with the same outcome: a price with a JSON escape (decoded
    whole, applied), a level of numbers (refused as the decoder of lists refuses it: a malformed
    book message, the book resynced), a far level of 2**53 ticks or more (applied from the text)."""
    h, frames = docs()
    h.feed_all(frames)
    book = h.scheme.books["ETHBTC"]
    seq = h.scheme.seqs["ETHBTC"]
    escaped = ('{"ch":"orderbook/full","update":{"ETHBTC":{"t":1626866579000,"s":%d,"a":[["0.06\\u00305","1.5"]],'
               '"b":[]}}}' % (seq + 1)).encode()
    lob = [r for t, r in h.feed(escaped) if t == "lob"]
    assert [(r.price, r.size, r.side) for r in lob] == [(0.0605, 1.5, "sell")] and book.get(ASK, "0.0605") == "1.5"
    far = ('{"ch":"orderbook/full","update":{"ETHBTC":{"t":1626866579000,"s":%d,"a":[["99999999999.000001","2"]],'
           '"b":[]}}}' % (seq + 2)).encode()
    lob = [r for t, r in h.feed(far) if t == "lob"]
    assert [(r.price, r.size) for r in lob] == [(99999999999.000001, 2.0)] and h.scheme.seqs["ETHBTC"] == seq + 2
    numbers = ('{"ch":"orderbook/full","update":{"ETHBTC":{"t":1626866579000,"s":%d,"a":[[0.0606,"1"]],'
               '"b":[]}}}' % (seq + 3)).encode()
    produced = h.feed(numbers)
    assert h.reports[-1][:2] == ("hitbtc: malformed book message", "failed validation")
    assert [(r.status, r.reason) for t, r in produced if t == "status"] == [("resync", "malformed book message")]
    assert h.metrics.resyncs == 1 and h.metrics.gaps == 0


def test_book_reads_update_text_as_decoded_levels():
    """``L2Book.json_update_wide`` (the update's one call: the levels read from the text in one pass, then
    applied) gives what ``check_json_sides_wide`` + ``apply_json_update`` give, and the levels of
    ``check_json_sides`` equal those the former reading (``check_json_lists``) takes, on the
    capture's books and on numbers outside the one pass's form (exponents, 20 digits, too precise,
    escapes); a text not read is ``UPDATE_NOT_APPLIED``, nothing applied."""
    from msgspec import Raw

    from atomfast._book import UPDATE_NOT_APPLIED, UPDATE_OK
    from atomfast.book import L2Book
    from atomfast.events import Lob, Spread

    texts = [(p.get("b", []), p.get("a", [])) for _, _, p in filter(None, (book_part(d) for _, d in recv_frames(
        fixture_path(CAPTURE))))]
    odd = ["1e2", "0.5E-1", "12345678901234567890", "0.123456789", "00.50", "1.", ".5", "-1", "+1", "0",
           "0.0", "9" * 19, "0.06\\u00305", "99999999999999.000", "1 ", ""]
    texts += [([[p, "1"]], [["2", s]]) for p in odd for s in ("3", *odd)]
    for bids, asks in texts:
        b, a = (Raw(("[" + ",".join(f'["{p}","{s}"]' for p, s in side) + "]").encode()) for side in (bids, asks))
        one, two, old = L2Book(8, 4), L2Book(8, 4), L2Book(8, 4)
        rows1, rows2 = [], []
        spreads1, spreads2 = [], []
        of1 = {"lob": rows1, "spread": spreads1}.__getitem__
        of2 = {"lob": rows2, "spread": spreads2}.__getitem__
        read = two.check_json_sides_wide(b, a)
        got = one.json_update_wide(BID, b, a, of1, Lob, Spread, "x", "X-Y", 1_000_000, 7)
        assert got == (UPDATE_OK if read else UPDATE_NOT_APPLIED)
        if read:
            two.apply_json_update(BID, b, a, of2, Lob, Spread, "x", "X-Y", 1_000_000, 7)
        assert (rows1, spreads1) == (rows2, spreads2) and one.levels(BID) == two.levels(BID)
        if two.check_json_sides(b, a):
            assert old.check_json_lists(b, a)
            two.apply_json_sides(BID, b, a, rows1, Lob, "x", "X-Y", 1, 2)
            old.apply_json_sides(BID, b, a, rows2, Lob, "x", "X-Y", 1, 2)
            assert rows1 == rows2
        else:
            assert not old.check_json_lists(b, a)


def test_update_shape_in_c_publishes_what_the_handler_does():
    """The book route is the kit's ``KeyedTextLevels`` (the common update runs in C); fed the capture
    with odd messages mixed in (an update of two markets, a snapshot and an update in one message,
    an update of a market without a book, a gap, a time out of range, levels of numbers, an escaped
    price, a far level, updates of a market reloading), it publishes what ``_on_book`` alone
    publishes: the same records, reports, metrics and requests."""
    from atomfast.exchanges.hitbtc import messages as m
    from atomfast.kit.dispatch import Dispatch
    from atomfast.kit.shapes import KeyedTextLevels

    assert isinstance(FmfwScheme.dispatch.routes[m.BookMsg], KeyedTextLevels)
    with pytest.raises(ValueError, match="first="):
        KeyedTextLevels(at="update", unless="snapshot", seq="s", time="t", asks="a", bids="b", first="up",
                        chain="chain", otherwise="_on_book")

    class Handled(FmfwScheme):
        dispatch = Dispatch({**FmfwScheme.dispatch.routes, m.BookMsg: "_on_book"}, decoder=m.decoder, lead=b"{",
                            fallback="_on_other")

    path = fixture_path(CAPTURE)
    shaped, handled = (Harness(cls, capture_instruments(path, FmfwScheme)) for cls in (FmfwScheme, Handled))

    def update(native: str, s: int, t: int = 1633806860000, a: str = '[["99.5","1"]]', b: str = "[]") -> bytes:
        return ('{"ch":"orderbook/full","update":{"%s":{"t":%d,"s":%d,"a":%s,"b":%s}}}' % (native, t, s, a, b)).encode()

    def odd(k: int) -> list[bytes]:
        seq = shaped.scheme.seqs.get("DOGEUSDT")
        if seq is None:
            return []
        nxt = seq + 1
        return [
            [update("DOGEUSDT", nxt, a='[["1.5","3"]]')[:-2] + b',"HTBTC":{"t":1,"s":1,"a":[],"b":[]}}}'],
            [b'{"ch":"orderbook/full","snapshot":{"NEOBTC":{"t":1,"s":1,"a":[],"b":[]}},'
             b'"update":{"DOGEUSDT":{"t":1,"s":1,"a":[],"b":[]}}}'],
            [update("NEOBTC", 5)],
            [update("DOGEUSDT", nxt, t=10**15)],
            [update("DOGEUSDT", nxt, a='[[1.5,"3"]]')],
            [update("DOGEUSDT", nxt, a='[["1.\\u0035","3"]]'), update("DOGEUSDT", nxt + 1, a='[["9999999999.5","2"]]')],
            [update("DOGEUSDT", nxt + 2), update("DOGEUSDT", nxt + 3)],
        ][k % 7]

    for i, (ts, data) in enumerate(recv_frames(path)):
        for d in [data, *(odd(i // 40) if i % 40 == 39 else [])]:
            assert shaped.feed(d, ts) == handled.feed(d, ts), (i, d[:120])
    assert shaped.records == handled.records and shaped.reports == handled.reports
    assert shaped.sent() == handled.sent() and shaped.scheme.seqs == handled.scheme.seqs
    for what in ("gaps", "resyncs", "frames"):
        assert getattr(shaped.metrics, what) == getattr(handled.metrics, what), what
    assert shaped.metrics.gaps >= 2 and shaped.metrics.resyncs >= 3 and shaped.reports
    assert {n: (b.levels(BID), b.levels(ASK)) for n, b in shaped.scheme.books.items()} == {
        n: (b.levels(BID), b.levels(ASK)) for n, b in handled.scheme.books.items()}

# --- simulate + run ------------------------------------------------------------------------------

def test_simulate_and_run_publish_what_replay_does():
    """``atomfast simulate`` serving the documented capture, ``atomfast run --exchange hitbtc
    --endpoint``: the same events per topic as the replay of that capture."""
    _, sink = replay_fixture(DOCS, exchange="hitbtc")
    replayed = sink.counts()
    with SimProcess(DOCS, "--pace", "fast") as sim:
        run = run_cli("run", "--exchange", "hitbtc", "--endpoint", sim.url, "--sink", "null",
                      "--symbols", "ETH-BTC,BTC-USDT,BTC-USDT-PERP", "--max-frames", "16", "--duration", "20")
    assert run.returncode == 0, run.stderr[-3000:]
    live = cli_summary(run.stderr)
    assert live["frames"] == 16 and live["errors"] == 0 and live["gaps"] == 0
    for topic in ("lob", "spread", "trades", "ticker", "candle", "funding_rate", "open_interest"):
        assert live["events"][topic] == replayed[topic], topic
    assert replayed == {"status": 16, "lob": 13, "spread": 3, "trades": 3, "ticker": 2, "candle": 2,
                        "funding_rate": 1, "open_interest": 1}
