"""OKX v5 public websocket scheme (``okx``): spot, perpetual swaps, dated futures and options.

Data, and where each message comes from:

- ``../shared/fixtures/cryptofeed/OKX.ws.1.0`` + ``OKX.0`` (REAL, 2022-05-13): ``books``,
  ``trades`` and ``tickers`` of BTC-USD-220527, UNI-USD-SWAP and BTC-USDT, with OKX's instrument
  listings. Every book message carries the CRC32 ``checksum``, none a ``seqId``/``prevSeqId``
  (OKX added them in 2022-06). The tests replay it against an independent model (a RefBook per
  market and zlib's CRC32 of its top 25 levels): all 290 checksums agree.
- ``tests/data/okx/OKX.ws.1.0`` + ``OKX.0``: a capture-format file of the CURRENT v5 shapes (see
  ``tests/data/okx/README.md``): OKX's documentation examples (books snapshot and update with
  ``seqId``/``prevSeqId``, trades, tickers, funding-rate, open-interest, liquidation-orders,
  subscribe answers), a real ``candle1m`` push from crypto-msg-parser's tests (tests/okx.rs), and
  the real 2022 listings filtered to the markets these messages name.
- The sequence rule's fault tests: the real 2022 BTC-USDT book stream (real levels, real
  checksums) numbered with ``seqId``/``prevSeqId`` as the docs' "Sequence ID" section says; the
  no-change and reset cases with the docs' own example numbers (10, 15, 15, 3, 5).
- Real 2022 single messages from crypto-msg-parser's tests/okx.rs: a funding-rate push without
  ``ts`` and an option ticker with an empty bid.
"""
from __future__ import annotations

import json
import zlib

import pytest

from atomfast.book import ASK, BID
from atomfast.events import BUY, SELL, Candle, FundingRate, Liquidation, Lob, Status, Ticker, Trade
from atomfast.exchanges import scheme_for, schemes
from atomfast.exchanges.okx import OkxScheme
from atomfast.exchanges.okx.handler import bar_of
from atomfast.exchanges.okx.parse import name_instrument, parse_listing
from atomfast.scheme import Instrument
from atomfast.testing import (ROOT, Harness, RefBook, SimProcess, capture_instruments, check_events, cli_summary,
                              faulty, fixture_path, recv_frames, replay_fixture, run_cli)

REAL = "cryptofeed/OKX.ws.1.0"
DOCS = ROOT / "tests" / "data" / "okx" / "OKX.ws.1.0"
NAUTILUS = "nautilus/okx"
PUBLIC = "wss://ws.okx.com:8443/ws/v5/public"
BUSINESS = "wss://ws.okx.com:8443/ws/v5/business"


class Reference:
    """An independent model of OKX's books: a RefBook per instId, the lob and spread events the
    scheme must publish, and the checksums the exchange sent compared with our own CRC32."""

    def __init__(self) -> None:
        self.books: dict[str, RefBook] = {}
        self.lob = self.spread = self.checksum_ok = 0

    def feed(self, msg: dict) -> None:
        native = msg["arg"]["instId"]
        d = msg["data"][0]
        if msg["action"] == "snapshot":
            book = self.books[native] = RefBook()
            before = (None, None, None, None)
        else:
            book = self.books[native]
            before = book.top()
        for side, key in (("b", "bids"), ("a", "asks")):
            self.lob += sum(book.set(side, p, s) for p, s, *_ in d[key])
        self.spread += book.top() != before
        if d.get("checksum"):
            assert book.okx_checksum() == d["checksum"]
            self.checksum_ok += 1


def real_book_messages(inst: str = "BTC-USDT") -> list[tuple[int, dict]]:
    return [(ts, json.loads(data)) for ts, data in recv_frames(REAL)
            if data.startswith(b'{"arg":{"channel":"books","instId":"' + inst.encode())]


def harness(capture=DOCS, **kw) -> Harness:
    return Harness(OkxScheme, capture_instruments(capture, OkxScheme), **kw)


# --- registry, endpoints, symbols -------------------------------------------------------------

def test_registry_endpoints_and_limits():
    assert schemes()["okx"] == [OkxScheme] and scheme_for("okx", PUBLIC) is OkxScheme
    assert OkxScheme.ws_url == PUBLIC and OkxScheme.channel_urls == {"candle": BUSINESS}
    assert OkxScheme.rest_url == "https://www.okx.com"
    assert OkxScheme.instruments_paths == tuple("/api/v5/public/instruments?instType=" + t for t in (
        "SPOT", "SWAP", "FUTURES", "OPTION&uly=BTC-USD", "OPTION&uly=ETH-USD"))
    assert OkxScheme(lambda t, r: None).ping_message() == "ping" and OkxScheme.ping_interval == 20.0
    assert OkxScheme.channels["candle"] == "candle1m" and OkxScheme.channels["liquidations"] == "liquidation-orders"


def test_names_from_the_issue_and_the_listing():
    assert [name_instrument(n).symbol for n in ("BTC-USDT", "BTC-USDT-SWAP", "BTC-USD-261225",
                                                "BTC-USD-261225-100000-C")] == [
        "BTC-USDT", "BTC-USDT-PERP", "BTC-USD-20261225", "BTC-USD-20261225-100000-C"]
    assert name_instrument("BTC-USD-SWAP").kind == "perp" and name_instrument("BTC-USD-261225").expiry == "20261225"
    for bad in ("btc-usdt", "BTC", "BTC-USD-261325", "BTC-USD-261225-0-C", "BTC-USD-261225-100-X", "A-B-C-D",
                "BTC-USD-SWAP-1"):
        with pytest.raises(KeyError):
            name_instrument(bad)
    # the real 2022 listings (filtered, tests/data/okx/OKX.0): decimals = tick/lot decimals + 2
    listed = capture_instruments(DOCS, OkxScheme)
    assert listed == {
        "BTC-USDT": Instrument("BTC-USDT", "BTC-USDT", "spot", "BTC", "USDT", 3, 10),
        "BTC-USD-SWAP": Instrument("BTC-USD-SWAP", "BTC-USD-PERP", "perp", "BTC", "USD", 3, 2),
        "BTC-USDT-SWAP": Instrument("BTC-USDT-SWAP", "BTC-USDT-PERP", "perp", "BTC", "USDT", 3, 2),
        "IOST-USDT-SWAP": Instrument("IOST-USDT-SWAP", "IOST-USDT-PERP", "perp", "IOST", "USDT", 8, 2),
        "BTC-USD-220624": Instrument("BTC-USD-220624", "BTC-USD-20220624", "future", "BTC", "USD", 3, 2, "20220624"),
        "BTC-USD-220624-50000-C": Instrument("BTC-USD-220624-50000-C", "BTC-USD-20220624-50000-C", "option", "BTC",
                                             "USD", 6, 2, "20220624")}
    assert parse_listing(b'{"code":"51001","msg":"Instrument ID does not exist","data":[]}') == {}
    # an id listed under another instType than its shape is left out
    assert parse_listing(b'{"code":"0","data":[{"instId":"BTC-USDT","instType":"SWAP","tickSz":"0.1"}]}') == {}


def test_subscriptions_per_channel_and_endpoint():
    insts = {n: name_instrument(n) for n in ("BTC-USDT", "BTC-USDT-SWAP", "ETH-USD-SWAP", "BTC-USD-261225",
                                             "BTC-USD-261225-100000-C")}
    s = OkxScheme(lambda t, r: None, None, insts, [i.symbol for i in insts.values()])
    plans = s.plan()
    # candles on the business endpoint, everything else on the public one
    assert [p.url for p in plans] == [PUBLIC, BUSINESS]
    subs = {c: n for p in plans for c, n in p.subscriptions}
    assert subs["funding-rate"] == ["BTC-USDT-SWAP", "ETH-USD-SWAP"]
    assert subs["open-interest"] == ["BTC-USDT-SWAP", "ETH-USD-SWAP", "BTC-USD-261225", "BTC-USD-261225-100000-C"]
    assert subs["liquidation-orders"] == ["BTC-USDT-SWAP", "ETH-USD-SWAP", "BTC-USD-261225"]
    assert subs["candle1m"] == list(insts)
    # books, trades, tickers 5 each, funding 2, open interest 4, liquidations 3; candles 5
    assert [sum(len(n) for _, n in p.subscriptions) for p in plans] == [24, 5]
    args = [a for msg in s.subscribe_plan(plans[0]) for a in json.loads(msg)["args"]]
    # liquidation-orders is subscribed per instType, once each
    assert [a for a in args if a["channel"] == "liquidation-orders"] == [
        {"channel": "liquidation-orders", "instType": "SWAP"}, {"channel": "liquidation-orders", "instType": "FUTURES"}]
    assert {"channel": "books", "instId": "BTC-USD-261225-100000-C"} in args
    # at most 30 (channel, market) pairs a connection (the docs: fewer than 30 400-level books)
    spot = {f"C{i}-USDT": name_instrument(f"C{i}-USDT") for i in range(11)}
    s = OkxScheme(lambda t, r: None, None, spot, [i.symbol for i in spot.values()], ["lob", "trades", "ticker", "candle"])
    assert [(p.url, sum(len(n) for _, n in p.subscriptions)) for p in s.plan()] == [(PUBLIC, 30), (PUBLIC, 3),
                                                                                   (BUSINESS, 11)]
    many = [{"channel": "books", "instId": f"C{i}-USDT"} for i in range(150)]
    sent = [json.loads(x) for x in s._requests("subscribe", many + many)]
    assert [len(x["args"]) for x in sent] == [100, 50] and all(x["op"] == "subscribe" for x in sent)


# --- the real 2022 capture --------------------------------------------------------------------

def test_real_capture_against_an_independent_model():
    ref = Reference()
    for _, msg in [(ts, json.loads(d)) for ts, d in recv_frames(REAL) if b'"channel":"books"' in d[:30]]:
        ref.feed(msg)
    assert (ref.lob, ref.spread, ref.checksum_ok) == (7311, 204, 290)
    replay, sink = replay_fixture(REAL, exchange="okx")
    m = replay.metrics
    assert (m.checksum_ok, m.checksum_failed, m.gaps, m.resyncs, m.errors.total) == (290, 0, 0, 0, 0)
    assert sink.counts() == {"status": 22, "ticker": 28, "trades": 74, "lob": ref.lob, "spread": ref.spread}
    check_events(sink.records)
    for native, book in replay.scheme.books.items():
        assert ref.books[native].equals(book), native
    assert set(replay.scheme.books) == {"BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT"}
    assert replay.scheme.seq_ids == {"BTC-USD-220527": None, "UNI-USD-SWAP": None, "BTC-USDT": None}
    # 1 connected, 18 subscribe answers (cryptofeed subscribed tickers 3 times, trades twice), 3 snapshots
    statuses = sink.statuses()
    assert statuses[0] == ("connected", PUBLIC) and statuses.count(("snapshot", "")) == 3
    assert statuses.count(("subscribed", "tickers")) == 9 and statuses.count(("subscribed", "books")) == 3
    # the first trade and ticker as sent
    assert sink.events("trades")[0][:7] == ("okx", "BTC-USD-20220527", 30218.8, 1.0, BUY, "7849", 1652459199958)
    assert sink.events("trades")[1][:7] == ("okx", "UNI-USD-PERP", 5.123, 100.0, SELL, "12883020", 1652459215150)
    assert sink.events("ticker")[0][:7] == ("okx", "BTC-USD-20220527", 30210.4, 4.0, 30220.1, 3.0,
                                            sink.events("ticker")[0].event_timestamp)
    # BTC-USD-220527's first update: bid 30182.6 -> 452, asks 30261 -> 4, 30310.3 -> 19; its removal
    # of 30249.4, a level the snapshot does not hold (its asks start 30238.8, 30249.5), changes nothing
    lob = [r for r in sink.events("lob") if r.event_timestamp == 1652459225464 and r.symbol == "BTC-USD-20220527"]
    assert [(r.price, r.size, r.side) for r in lob] == [(30182.6, 452.0, BUY), (30261.0, 4.0, SELL),
                                                         (30310.3, 19.0, SELL)]


def test_real_capture_a_dropped_update_fails_the_checksum_and_is_rebuilt():
    """2022 pushes carry no seqId: the checksum is the check. Dropping one real BTC-USDT update
    leaves the book wrong, and the next update's checksum says so."""
    msgs = real_book_messages()
    h = harness(REAL)
    for ts, msg in msgs[:4]:
        h.feed(msg, ts)
    dropped = msgs[4]
    ts, nxt = msgs[5]
    produced = h.feed(nxt, ts)
    ref = RefBook()
    for _, msg in msgs[:4] + msgs[5:6]:
        for side, key in (("b", "bids"), ("a", "asks")):
            for p, s, *_ in msg["data"][0][key]:
                ref.set(side, p, s)
    got = ref.okx_checksum()  # the book with the update missing, by our own CRC32
    assert got != nxt["data"][0]["checksum"]
    reason = f"checksum mismatch: exchange {nxt['data'][0]['checksum']}, book {got}"
    assert [r for t, r in produced if t == "status"] == [Status("okx", "BTC-USDT", "resync", reason, ts // 1_000_000,
                                                                ts // 1000)]
    assert (h.metrics.checksum_failed, h.metrics.checksum_ok, h.metrics.resyncs, h.metrics.gaps) == (1, 4, 1, 0)
    assert h.sent() == [{"op": "unsubscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]},
                        {"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]}]
    assert h.scheme.books["BTC-USDT"].count(BID) == 0 and dropped[1]["action"] == "update"


# --- the sequence rule ------------------------------------------------------------------------

def numbered(start: int = 1000) -> list[tuple[int, dict]]:
    """The real BTC-USDT book stream of 2022 (real levels and checksums), numbered as the docs
    say: the snapshot ``prevSeqId`` -1, each update's ``prevSeqId`` the previous ``seqId``."""
    out = []
    seq = start
    for ts, msg in real_book_messages():
        d = msg["data"][0]
        d["prevSeqId"] = -1 if msg["action"] == "snapshot" else seq
        seq += 7  # OKX's ids are not contiguous (the docs' example steps by 5)
        d["seqId"] = seq
        out.append((ts, msg))
    return out


@pytest.mark.parametrize("fault,seen", [("drop", "prevSeqId 1070 != previous seqId 1063"),
                                        ("duplicate", "prevSeqId 1063 != previous seqId 1070"),
                                        ("reorder", "prevSeqId 1070 != previous seqId 1063")])
def test_fault_detected_resynced_and_rebuilt(fault, seen):
    frames = numbered()
    index = 9  # the update with prevSeqId 1063, seqId 1070
    assert (frames[index][1]["data"][0]["prevSeqId"], frames[index][1]["data"][0]["seqId"]) == (1063, 1070)
    h = harness(REAL)
    gap_at = None
    for i, (ts, msg) in enumerate(faulty(frames, index, fault)):
        produced = h.feed(msg, ts)
        check_events(produced)
        resyncs = [r for t, r in produced if t == "status" and r.status == "resync"]
        if resyncs and gap_at is None:
            gap_at = i
            assert resyncs == [Status("okx", "BTC-USDT", "resync", f"sequence gap: {seen}", ts // 1_000_000, ts // 1000)]
            assert h.sent() == [{"op": "unsubscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]},
                                {"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]}]
            assert h.scheme.books["BTC-USDT"].count(BID) == 0
        elif gap_at is not None:
            assert not [r for t, r in produced if t in ("lob", "spread")]  # dropped until the snapshot
    assert gap_at is not None and (h.metrics.gaps, h.metrics.resyncs, h.metrics.checksum_failed) == (1, 1, 0)
    # OKX answers the resubscription with a snapshot of the book as it is now (our reference of
    # the whole real stream), with its checksum, and the stream goes on from its seqId
    ref = Reference()
    for _, msg in frames:
        ref.feed(msg)
    book = ref.books["BTC-USDT"]
    last = frames[-1][1]["data"][0]["seqId"]
    snap = {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "snapshot", "data": [{
        "asks": [[p, s, "0", "1"] for p, s in book.ordered("a")], "bids": [[p, s, "0", "1"] for p, s in book.ordered("b")],
        "ts": "1652459260000", "checksum": book.okx_checksum(), "prevSeqId": -1, "seqId": last}]}
    produced = h.feed(snap, 1652459260000_000_000)
    assert [r.status for t, r in produced if t == "status"] == ["snapshot"]
    assert book.equals(h.scheme.books["BTC-USDT"]) and "BTC-USDT" not in h.scheme.unsynced
    best = book.ordered("b")[0][0]
    book.set("b", best, "1")
    nxt = {"arg": snap["arg"], "action": "update", "data": [{"asks": [], "bids": [[best, "1", "0", "1"]],
                                                             "ts": "1652459260100", "checksum": book.okx_checksum(),
                                                             "prevSeqId": last, "seqId": last + 3}]}
    assert [t for t, _ in h.feed(nxt)] == ["lob", "spread"]
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (1, 1, 0)


def test_no_change_and_reset_as_the_docs_say():
    """The docs' "Sequence ID" example: snapshot (prevSeqId -1, seqId 10), update (10 -> 15), no
    change (15 -> 15, no levels), a reset for maintenance (15 -> 3), then 3 -> 5: no gap."""
    snap = json.loads(fixture_path(f"{NAUTILUS}/ws_books_snapshot.json").read_text())
    snap["data"][0].update(checksum=0, prevSeqId=-1, seqId=10)
    h = harness()
    h.feed(snap)

    def update(prev, seq, bids=(), asks=()):
        return h.feed({"arg": snap["arg"], "action": "update", "data": [{
            "asks": [list(a) for a in asks], "bids": [list(b) for b in bids], "ts": "1597026383085", "checksum": 0,
            "prevSeqId": prev, "seqId": seq}]})

    assert [t for t, _ in update(10, 15, bids=[("8476.97", "200", "0", "3")])] == ["lob", "spread"]
    assert update(15, 15) == []  # no change: keeps the connection alive
    assert [t for t, _ in update(15, 3, asks=[("8476.98", "0", "0", "0")])] == ["lob", "spread"]  # reset
    assert [t for t, _ in update(3, 5, asks=[("8477", "8", "0", "2")])] == ["lob", "spread"]
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (0, 0, 0)
    assert h.scheme.seq_ids["BTC-USDT"] == 5
    assert h.scheme.books["BTC-USDT"].levels(ASK, 1) == [("8477", "8")]
    # an update that repeats the reset (prevSeqId 15 again) is a gap now
    produced = update(15, 3)
    assert [r.reason for t, r in produced if t == "status"] == ["sequence gap: prevSeqId 15 != previous seqId 5"]


def test_documented_checksum_is_not_its_own_books():
    """The docs' book example carries ``checksum`` -855196043, which is not the CRC32 of its own
    levels (-2102840145, by zlib here): verified, it fails, and the book is reloaded."""
    snap = json.loads(fixture_path(f"{NAUTILUS}/ws_books_snapshot.json").read_text())
    ref = RefBook()
    for side, key in (("b", "bids"), ("a", "asks")):
        ref.load(side, snap["data"][0][key])
    assert (snap["data"][0]["checksum"], ref.okx_checksum()) == (-855196043, -2102840145)
    h = harness()
    produced = h.feed(snap, 1597026383100_000_000)
    assert [(r.status, r.reason) for t, r in produced if t == "status"] == [
        ("snapshot", ""), ("resync", "checksum mismatch: exchange -855196043, book -2102840145")]
    assert (h.metrics.checksum_failed, h.metrics.resyncs, len(h.sent())) == (1, 1, 2)


def test_book_messages_that_cannot_be_verified_or_read():
    snap = json.loads(fixture_path(f"{NAUTILUS}/ws_books_snapshot.json").read_text())
    upd = json.loads(fixture_path(f"{NAUTILUS}/ws_books_update.json").read_text())
    upd["data"][0]["checksum"] = 0
    h = harness()
    produced = h.feed(upd)
    assert [(r.status, r.reason) for t, r in produced if t == "status"] == [("resync", "book update before its snapshot")]
    assert h.feed(upd) == []  # waiting for the snapshot
    snap["data"][0]["checksum"] = 0
    h.feed(snap)
    assert "BTC-USDT" not in h.scheme.unsynced
    for change, kind in (({"seqId": None, "prevSeqId": None}, "malformed book update"),
                         ({"prevSeqId": None}, "malformed book update"),
                         ({"bids": [["-1", "2", "0", "1"]]}, "malformed book update"),
                         ({"ts": "x"}, "malformed book update")):
        h.feed(snap)
        bad = json.loads(json.dumps(upd))
        bad["data"][0].update(change)
        produced = h.feed(bad)
        assert [r.reason.split(":")[0] for t, r in produced if t == "status"] == [kind], change
        assert not [t for t, _ in produced if t == "lob"]
    assert h.metrics.errors.counts["okx: malformed book update"] == 4 and h.metrics.gaps == 0
    h.feed(snap)
    produced = h.feed(b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":5}]}')
    assert [r.reason.split(":")[0] for t, r in produced if t == "status"] == ["malformed book message"]


def test_book_levels_read_as_text_as_the_decoder_read_them():
    """The levels are decoded as JSON text (msgspec.Raw) and read by the book: every push gives
    what it gave when they were decoded as list[list[str]] (the same errors, kinds and details,
    at the same point; the same rows), whether the book reads the text or not."""
    snap = json.loads(fixture_path(f"{NAUTILUS}/ws_books_snapshot.json").read_text())
    upd = json.loads(fixture_path(f"{NAUTILUS}/ws_books_update.json").read_text())
    snap["data"][0]["checksum"] = upd["data"][0]["checksum"] = 0
    S, U = (json.dumps(x, separators=(",", ":")).encode() for x in (snap, upd))
    level = b'["8476.97","256","0","12"]'
    assert level in U and b'"415"' in S
    h = harness(strict=False)
    h.feed(S)
    fine = h.feed(U)
    assert len([t for t, _ in fine if t == "lob"]) > 4
    str_at = "malformed book message: Expected `str`, got `int` - at `$.data[0]."
    cases = {  # the update changed -> what it gives: the same rows as the push unchanged, or a resync
        U.replace(b'"256"', b'"25\\u0036"', 1): fine,  # an escape: not read as text, the same
        U.replace(level, b'["8476.97","256"]', 1): fine,
        U.replace(b'"256"', b'"2.56e2"', 1): fine,
        U.replace(level, b'[ "8476.97" , "256" ,"0","12" ]', 1): fine,
        U.replace(level, b'["8476.97",256,"0","12"]', 1): str_at + "bids[0][1]`",
        U.replace(level, b'["8476.97","256",0,"12"]', 1): str_at + "bids[0][2]`",
        U.replace(level, b'["8476.97",256]', 1).replace(b'"ts":', b'"tsx":', 1): str_at + "bids[0][1]`",
        U.replace(b'"data":[{', b'"data":[{"ts":"1","asks":[[1]]},{', 1): str_at + "asks[0][0]`",
        U.replace(b'"update"', b'"x"', 1).replace(level, b'["8476.97",256]', 1): str_at + "bids[0][1]`",
        U.replace(b'"asks":[', b'"asks":null,"x":[', 1):
            "malformed book message: Expected `array`, got `null` - at `$.data[0].asks`",
        U.replace(level, b'["8476.97"]', 1): "malformed book update: level ['8476.97']: expected [price, size]",
        U.replace(level, b'[]', 1): "malformed book update: level []: expected [price, size]",
        U.replace(b'"256"', b'"-256"', 1): "malformed book update: invalid size '-256': signed",
        U.replace(b'"8476.97"', b'"0"', 1): "malformed book update: invalid price '0': zero",
        U.replace(b'"256"', b'"99999999999999999"', 1):
            "malformed book update: size '99999999999999999' is out of range at 10 decimals (int64 ticks)",
        U.replace(b'"256"', '"25\u00e9"'.encode(), 1): "malformed book update: invalid size '25\u00e9': not a decimal number",
        S.replace(b'"415"', b'"41\\u0035"', 1): None,  # a snapshot, loaded
        S.replace(b'"415"', b'415', 1): "malformed book message: Expected `str`, got `int` - at `$.data[0].asks[0][1]`",
        S.replace(b'"415"', b'"-415"', 1): "malformed book snapshot: invalid size '-415': signed",
    }
    for data, want in cases.items():
        h.feed(S)
        got = h.feed(data)
        if want is None:
            assert got[0][1].status == "snapshot" and [r for t, r in got if t == "lob"] == \
                [r for t, r in h.feed(S) if t == "lob"], data
        elif isinstance(want, str):
            assert [(t, r.status, r.reason) for t, r in got] == [("status", "resync", want)], data
        else:
            assert got == want, data
    h.feed(S)
    produced = h.feed(U.replace(b'"256",', b'"256",,', 1))
    assert produced == [] and h.reports[-1][:2] == ("okx: malformed JSON", "JSON is malformed: invalid character (byte 304)")
    # a bad level while the book reloads: refused as the decoder refused it, before the drop
    h.feed(U.replace(b'"256"', b'"-256"', 1))
    assert h.feed(U) == [] and h.feed(U.replace(level, b'["8476.97",256]', 1)) == []
    assert h.reports[-1][:2] == ("okx: malformed book message", str_at[len("malformed book message: "):] + "bids[0][1]`")

    # a checksum beyond a signed 32-bit one does not match, as any other that differs
    got = -2102840145  # the book's, after this update (the fixture's own is not its books': see above)
    for ck in (2**31, -2**31 - 1, 2**63, 123):
        h.feed(S)
        upd["data"][0]["checksum"] = ck
        failed = h.metrics.checksum_failed
        produced = h.feed(upd)
        assert [(r.status, r.reason) for t, r in produced if t == "status"] == \
            [("resync", f"checksum mismatch: exchange {ck}, book {got}")]
        assert h.metrics.checksum_failed == failed + 1 and not [t for t, _ in produced if t == "spread"]


def test_json_level_lists_and_check_json_lists():
    import msgspec

    from atomfast._book import L2Book, json_level_lists

    assert json_level_lists(b'[["1.5","2","0","3"],["2","1"]]') and json_level_lists(b" [ ] ")
    assert json_level_lists(msgspec.Raw(b'[["1","2","x"]]'))
    for text in (b'[["1"]]', b"[[]]", b'[["1",2]]', b'[["1","2",0]]', b'[["1","2\\u0030"]]', b"null", b"",
                 b'[["1","2"],]', b'[["1","2"]] x', '[["1","\u00e9"]]'.encode()):
        assert not json_level_lists(text), text
    book, rows = L2Book(2, 3), []
    assert not book.check_json_lists(b'[["1","-2","0","1"]]', b"[]")  # a number refused: apply_sides says why
    first, second = b'[["1.5","2","0","3"]]', b'[["1.6","0.25","0","1"],["1.7","1","0","1"]]'
    assert book.check_json_lists(first, second)
    book.apply_json_sides(BID, first, second, rows, Lob, "okx", "X", 1, 2)
    assert book.levels(BID) == [("1.5", "2")] and book.levels(ASK) == [("1.6", "0.25"), ("1.7", "1")]
    assert [(r.price, r.size, r.side) for r in rows] == [(1.5, 2.0, "buy"), (1.6, 0.25, "sell"), (1.7, 1.0, "sell")]


def test_apply_json_update_is_apply_update_of_the_text():
    from atomfast._book import (CHECKSUM_OKX, UPDATE_MISMATCH, UPDATE_NOT_APPLIED, UPDATE_OK, L2Book)
    from atomfast.events import Spread

    snap = ([["1.5", "2", "0", "3"], ["1.4", "1", "0", "1"]], [["1.6", "0.25", "0", "1"], ["1.7", "1", "0", "1"]])
    upd = ([["1.55", "3", "0", "1"]], [["1.6", "0", "0", "0"]])
    for expected in (None, "ok", "bad", 2**40):
        lists, text = L2Book(2, 3), L2Book(2, 3)
        for book in (lists, text):
            book.apply_sides(BID, *snap, [], Lob, "okx", "X", 1, 2)
        want = lists.apply_update(BID, *upd, lambda t: [], Lob, Spread, "okx", "X", 5_000_999, 0, CHECKSUM_OKX, 0,
                                  event_ms=7)  # (the book's checksum, to know it)
        ck = {None: 0, "ok": lists.checksum_okx(), "bad": 123, 2**40: 2**40}[expected]
        lists = L2Book(2, 3)
        lists.apply_sides(BID, *snap, [], Lob, "okx", "X", 1, 2)
        got_rows: dict = {}
        want_rows: dict = {}
        kind = CHECKSUM_OKX if ck else 0
        want = lists.apply_update(BID, *upd, lambda t: want_rows.setdefault(t, []), Lob, Spread, "okx", "X",
                                  5_000_999, 0, kind, ck, event_ms=7)
        first, second = (json.dumps(x).encode() for x in upd)
        assert text.check_json_lists(first, second)
        got = text.apply_json_update(BID, first, second, lambda t: got_rows.setdefault(t, []), Lob, Spread, "okx",
                                     "X", 5_000_999, 7, kind, ck)
        assert got == want == {None: UPDATE_OK, "ok": UPDATE_OK, "bad": UPDATE_MISMATCH,
                               2**40: UPDATE_NOT_APPLIED}[expected]
        assert got_rows == want_rows and text.levels(BID) == lists.levels(BID) and text.levels(ASK) == lists.levels(ASK)
        if got == UPDATE_NOT_APPLIED:  # nothing done, the reading kept
            assert not got_rows and text.apply_json_sides(BID, first, second, [], Lob, "okx", "X", 7, 5000) == 1
        else:
            assert got_rows["lob"][0] == Lob("okx", "X", 1.55, 3.0, "buy", 7, 5000)


# --- the documented capture: every channel --------------------------------------------------

def test_documented_capture_exact():
    replay, sink = replay_fixture(DOCS, exchange="okx")
    m = replay.metrics
    assert (m.checksum_ok, m.checksum_failed, m.gaps, m.resyncs, m.errors.total) == (0, 0, 0, 0, 0)
    # 8 levels a side in the snapshot; the update restates the same 16 levels
    assert sink.counts() == {"status": 9, "lob": 32, "spread": 1, "trades": 1, "ticker": 1, "candle": 1,
                             "funding_rate": 1, "open_interest": 1, "liquidations": 1}
    check_events(sink.records)
    assert replay.scheme.seq_ids["BTC-USDT"] == 123457
    book = replay.scheme.books["BTC-USDT"]
    assert book.levels(BID, 2) == [("8476.97", "256"), ("8475.55", "101")] and book.levels(ASK, 1) == [("8476.98", "415")]
    assert sink.statuses()[:2] == [("connected", PUBLIC), ("subscribed", "books")]
    assert ("subscribed", "liquidation-orders SWAP") in sink.statuses()

    def at(topic):
        (record,) = sink.events(topic)
        return record

    us = at("trades").atom_timestamp
    assert at("trades") == Trade("okx", "BTC-USDT", 42219.9, 0.12060306, BUY, "130639474", 1630048897897, us)
    assert at("ticker")[:7] == ("okx", "BTC-USDT", 8888.88, 5.0, 9999.99, 11.0, 1597026383085)
    candle = at("candle")
    assert candle == Candle("okx", "BTC-USDT", 1654154580000, 1654154640000, "1m", 0, False, 29930.7, 29936.3,
                            29930.7, 29936.3, 0.0111536, candle.atom_timestamp // 1000, candle.atom_timestamp)
    assert at("funding_rate")[:7] == ("okx", "BTC-USD-PERP", 0.0, 0.0001875391284828, 1700726400000, 0.0,
                                      1700724675402)
    assert at("open_interest")[:4] == ("okx", "BTC-USDT-PERP", 2216113.01000000309, 1743041250440)
    # posSide short, side buy: a short was liquidated, the liquidation order bought
    assert at("liquidations")[:6] == ("okx", "IOST-USDT-PERP", BUY, 0.007831, 13.0, 1692266434010)


def test_tickers_funding_candles_real_2022_messages():
    h = harness()
    # crypto-msg-parser tests/okx.rs ticker::option: no bid ("")
    produced = h.feed('{"arg":{"channel":"tickers","instId":"BTC-USD-220624-50000-C"},"data":[{"instType":"OPTION",'
                      '"instId":"BTC-USD-220624-50000-C","last":"0.0005","lastSz":"6","askPx":"0.0015","askSz":"330",'
                      '"bidPx":"","bidSz":"","open24h":"0.0005","high24h":"0.0005","low24h":"0.0005","sodUtc0":"0.0005",'
                      '"sodUtc8":"0.0005","volCcy24h":"0","vol24h":"0","ts":"1654166283149"}]}', 1654166283200_000_000)
    assert produced == [("ticker", Ticker("okx", "BTC-USD-20220624-50000-C", 0.0, 0.0, 0.0015, 330.0, 1654166283149,
                                          1654166283200000))]
    # crypto-msg-parser funding_rate::linear_swap (2022: no ts): the receive time
    produced = h.feed('{"arg":{"channel":"funding-rate","instId":"BTC-USDT-SWAP"},"data":[{"fundingRate":'
                      '"0.0001534702159002","fundingTime":"1646323200000","instId":"BTC-USDT-SWAP","instType":"SWAP",'
                      '"nextFundingRate":"0.0001542145319804"}]}', 1646323212345_000_000)
    assert produced == [("funding_rate", FundingRate("okx", "BTC-USDT-PERP", 0.0, 0.0001534702159002, 1646323200000,
                                                     0.0001542145319804, 1646323212345, 1646323212345000))]
    negative = h.feed('{"arg":{"channel":"funding-rate","instId":"BTC-USDT-SWAP"},"data":[{"fundingRate":"-0.0002",'
                      '"fundingTime":"1646323200000","instId":"BTC-USDT-SWAP"}]}')
    assert negative[0][1].funding_rate == -0.0002
    # the docs' candle1D example (9 fields, confirm "0"), and a closed one
    doc = json.loads(fixture_path(f"{NAUTILUS}/ws_candle.json").read_text())
    produced = h.feed(doc, 1597026383100_000_000)
    assert [r[2:12] for t, r in produced] == [(1597026383085, 1597112783085, "1d", 0, True, 8533.02, 8553.74,
                                                8527.17, 8548.26, 45247.0)]
    assert [bar_of(c) for c in ("candle1m", "candle4H", "candle1Dutc", "candle1M", "candle", "candle0m")] == [
        ("1m", 60_000), ("4h", 14_400_000), ("1d", 86_400_000), None, None, None]
    for bad in ('{"arg":{"channel":"candle1M","instId":"BTC-USDT"},"data":[["1","1","1","1","1","1"]]}',
                '{"arg":{"channel":"candle1m","instId":"BTC-USDT"},"data":[["1","1","1"]]}',
                '{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","ts":"1","bidPx":"NaN"}]}',
                '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"1",'
                '"sz":"1","side":"long","ts":"1"}]}'):
        assert h.feed(bad) == []
    assert dict(h.metrics.errors.counts) == {"okx: malformed candle": 2, "okx: malformed ticker": 1,
                                             "okx: malformed trade": 1}


def test_liquidations_for_the_configured_markets_only():
    doc = [d for _, d in recv_frames(DOCS) if b"liquidation-orders" in d[:60]][-1]
    listed = capture_instruments(DOCS, OkxScheme)
    h = Harness(OkxScheme, listed, symbols=["BTC-USDT-PERP"])
    assert h.feed(doc) == []  # IOST-USDT-SWAP is not configured
    h = Harness(OkxScheme, listed, symbols=["IOST-USDT-PERP"])
    assert h.feed(doc, 1692266434100_000_000) == [("liquidations", Liquidation(
        "okx", "IOST-USDT-PERP", BUY, 0.007831, 13.0, 1692266434010, 1692266434100000))]
    assert [r.side for t, r in h.feed(doc.replace(b'"side":"buy"', b'"side":"sell"'))] == [SELL]
    # MARGIN liquidations carry no side or price (the docs): not subscribed, refused
    h.feed(doc.replace(b'"instType":"SWAP"}', b'"instType":"MARGIN"}', 1))
    h.feed(doc.replace(b'"bkPx":"0.007831"', b'"bkPx":""'))
    assert h.metrics.errors.counts["okx: malformed liquidation"] == 2


def test_events_pong_and_bad_input():
    h = harness()
    assert h.feed("pong") == []
    assert h.feed('{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade.",'
                  '"connId":"a4d3ae55"}') == []
    assert h.metrics.errors.total == 0
    # the docs' failure answer to a subscribe
    produced = h.feed('{"id":"1512","event":"error","code":"60012","msg":"Invalid request: {\\"op\\": \\"subscribe\\", '
                      '\\"argss\\":[{ \\"channel\\" : \\"books\\", \\"instId\\" : \\"BTC-USD-191227\\"}]}",'
                      '"connId":"a4d3ae55"}', 5_000_000_000)
    assert [(r.status, r.reason[:30]) for t, r in produced] == [("stopped", "60012 Invalid request: {\"op\": ")]
    h.feed(b"\x00\x01")
    h.feed(b'{"arg":{"channel":"books"')
    h.feed(b'{"arg":{"channel":"mark-price","instId":"BTC-USDT"},"data":[]}')
    h.feed(b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"px":1}]}')
    h.feed(b'{"arg":{"channel":"' + b"[" * 50_000 + b"]" * 50_000 + b'"}')
    h.feed(b'{"arg":{"channel":"trades","instId":"NOPE"},"data":[]}')
    assert dict(h.metrics.errors.counts) == {
        "okx: subscription error": 1, "okx: not a JSON object": 1, "okx: malformed JSON": 2,
        "okx: unknown message": 1, "okx: malformed trade": 1, "okx: unknown instrument": 1}


# --- simulate + run --endpoint --------------------------------------------------------------

def test_simulate_and_run_publish_what_replay_does():
    replay, sink = replay_fixture(DOCS, exchange="okx")
    symbols = sorted({r.symbol for t, r in sink.records if t != "status"})
    with SimProcess(DOCS, "--pace", "fast") as sim:
        r = run_cli("run", "--exchange", "okx", "--endpoint", sim.url, "--rest-endpoint", sim.rest_url,
                    "--symbols", ",".join(symbols), "--sink", "stdout", "--max-frames", 16, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    s = cli_summary(r.stderr)
    assert s["frames"] == 16 and s["gaps"] == 0 and s["errors"] == 0
    assert {k: v for k, v in s["events"].items() if k != "status"} == {
        k: v for k, v in sink.counts().items() if k != "status"}
    lines = [json.loads(ln) for ln in r.stdout.splitlines() if ln]
    assert [(x["symbol"], x["price"], x["trade_id"]) for x in lines if x["topic"] == "trades"] == [
        ("BTC-USDT", 42219.9, "130639474")]
    assert [(x["symbol"], x["side"], x["size"]) for x in lines if x["topic"] == "liquidations"] == [
        ("IOST-USDT-PERP", "buy", 13.0)]
    assert [x["open_interest"] for x in lines if x["topic"] == "open_interest"] == [float("2216113.01000000309")]
