"""KuCoin spot scheme (``kucoin``).

The recording ``cryptofeed/KUCOIN.ws.1.0`` (2021-04-25, ``/market/level2``, ``/market/match``,
``/market/ticker``, ``/market/candles`` of 10 markets; shapes still those of the current docs,
https://www.kucoin.com/docs-new/3470068w0 and siblings, which add a ``time`` to level2) with
``KUCOIN.http.0.0`` (the full-book REST snapshots ``/api/v3/market/orderbook/level2`` cryptofeed
fetched) and ``KUCOIN.0`` (the ``/api/v1/symbols`` listing). It is replayed through the product's
``Replay`` and checked against an independent reference model written here (json + Decimal
dicts: ``RefBook``), which follows the documented calibration procedure.

The straddling update and its per-change sequences come from the documentation's own example
(snapshot ``sequence`` 16; changes 15, 16, 18, 19). The bullet answer is built from the
documented fields of ``POST /api/v1/bullet-public`` (token, instanceServers[endpoint,
pingInterval, pingTimeout, ...]) with the documentation's example token.
"""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from atomfast.book import ASK, BID
from atomfast.capture import RECV, open_capture
from atomfast.exchanges import scheme_for
from atomfast.exchanges.kucoin import KucoinScheme
from atomfast.exchanges.kucoin.parse import guess_spot, ns_to_ms, parse_spot
from atomfast.rest import RestError
from atomfast.testing import Harness, RefBook, capture_frames, capture_instruments, fixture_path, replay_fixture

CAPTURE = "cryptofeed/KUCOIN.ws.1.0"
FULL = "https://api.kucoin.com/api/v3/market/orderbook/level2?symbol="
PARTIAL = "https://api.kucoin.com/api/v1/market/orderbook/level2_100?symbol="


def listing() -> dict:
    return capture_instruments(CAPTURE, KucoinScheme)


def recorded() -> tuple[list[tuple[int, dict, bytes]], dict[str, dict]]:
    """(recv ns, message, bytes) of every received frame; symbol -> its recorded snapshot."""
    msgs = [(f.ts_ns, json.loads(f.data), f.data) for f in capture_frames(CAPTURE) if f.kind == RECV]
    rest = open_capture(fixture_path(CAPTURE)).rest
    snaps = {url.rpartition("=")[2]: json.loads(answers[0][1])["data"] for url, answers in rest.items()
             if "orderbook" in url}
    return msgs, snaps


class Reference:
    """The documented procedure on dicts: the snapshot (in a replay, answered right after the
    market's first update), updates it covers dropped, each next one ``sequenceStart <= book +
    1``, changes at or below the book's sequence and price-0 changes skipped."""

    def __init__(self) -> None:
        self.books: dict[str, RefBook] = {}
        self.last: dict[str, int] = {}
        self.lob = self.spread = 0
        self.gaps = 0

    def load(self, sym: str, snap: dict) -> None:
        book = self.books[sym] = RefBook()
        self.lob += book.load("b", snap["bids"]) + book.load("a", snap["asks"])
        self.spread += 1
        self.last[sym] = int(snap["sequence"])

    def update(self, sym: str, d: dict) -> None:
        last = self.last[sym]
        if d["sequenceEnd"] <= last:
            return
        if d["sequenceStart"] > last + 1:
            self.gaps += 1
            return
        book = self.books[sym]
        before = book.top()
        for side, key in (("b", "bids"), ("a", "asks")):
            for price, size, seq in d["changes"][key]:
                if price != "0" and int(seq) > last:
                    self.lob += book.set(side, price, size)
        self.spread += book.top() != before
        self.last[sym] = d["sequenceEnd"]


def reference() -> Reference:
    msgs, snaps = recorded()
    ref = Reference()
    for _ts, msg, _data in msgs:
        if msg.get("subject") != "trade.l2update":
            continue
        sym = msg["data"]["symbol"]
        if sym not in ref.books:
            ref.load(sym, snaps[sym])
        ref.update(sym, msg["data"])
    return ref


def replayed():
    return replay_fixture(CAPTURE, exchange="kucoin")


def test_the_capture_picks_the_spot_scheme():
    assert scheme_for("kucoin", "wss://push-private.kucoin.com/endpoint?token=TOKEN") is KucoinScheme


def test_replay_equals_the_reference_model():
    replay, sink = replayed()
    ref = reference()
    msgs, _snaps = recorded()
    counts = sink.counts()
    subjects = [msg.get("subject") for _ts, msg, _d in msgs]
    assert ref.gaps == 0 and replay.metrics.gaps == 0 and replay.metrics.errors.total == 0
    assert counts["lob"] == ref.lob == 10325
    assert counts["spread"] == ref.spread == 560
    assert counts["ticker"] == subjects.count("trade.ticker") == 830
    assert counts["trades"] == counts["trades_l3"] == subjects.count("trade.l3match") == 18
    assert counts["candle"] == subjects.count("trade.candles.add") + subjects.count("trade.candles.update") == 6
    # one snapshot per market with updates (LTX-USDT sent none), plus "connected"
    assert [s.symbol for s in sink.events("status") if s.status == "snapshot"] == [
        sym for sym in ("BSV-USDT", "SNX-BTC", "CAPP-BTC", "ANKR-BTC", "FET-BTC", "DAPPT-BTC", "NRG-BTC",
                                      "COV-BTC", "EQZ-BTC")]
    assert replay.unanswered == [] and len(replay.scheme.books) == 9
    for native, book in replay.scheme.books.items():
        mine = ([(Decimal(p), Decimal(s)) for p, s in book.levels(BID)], [(Decimal(p), Decimal(s)) for p, s in book.levels(ASK)])
        assert mine == (ref.books[native].levels("b"), ref.books[native].levels("a")), native
        assert replay.scheme.sync.markets[native].last == ref.last[native]


def test_recorded_values_exactly():
    _replay, sink = replayed()
    trades = sink.events("trades")
    assert trades[0][:7] == ("kucoin", "DAPPT-BTC", 0.0000001117, 81.8814, "buy", "6085c09769bc506996295e36",
                              1619378327739)
    l3 = sink.events("trades_l3")[0]
    assert (l3.maker_order_id, l3.taker_order_id) == ("6085c06144b3790006512a4d", "6085c097587c2000060cde57")
    ticker = sink.events("ticker")[0]
    assert ticker[:7] == ("kucoin", "SNX-BTC", 0.00028678, 3.70422021, 0.00028717, 14.04274325, 1619378326323)
    candle = sink.events("candle")[1]
    assert candle[:13] == ("kucoin", "DAPPT-BTC", 1619378280000, 1619378340000, "1m", 0, False, 0.0000001117,
                          0.0000001123, 0.0000001117, 0.0000001123, 3437.9375, 1619378328806)
    # BSV-USDT's snapshot (sequence 1613277183892) then the first update after it
    assert _replay.scheme.instruments["BCHSV-USDT"].symbol == "BSV-USDT"


def test_documented_straddling_update_applies_only_its_later_changes():
    """The documentation's example: snapshot sequence 16; an update [15, 19] whose changes carry
    15, 16 (ignored: in the snapshot), 19 (remove 3988.61) and 18 (3988.50 -> 44)."""
    inst = {"BTC-USDT": parse_spot(b'{"code":"200000","data":[{"symbol":"BTC-USDT","baseCurrency":"BTC",'
                                   b'"quoteCurrency":"USDT","priceIncrement":"0.01","baseIncrement":"1"}]}')["BTC-USDT"]}
    h = Harness(KucoinScheme, inst, ["lob"])
    update = {"type": "message", "topic": "/market/level2:BTC-USDT", "subject": "trade.l2update",
              "data": {"changes": {"asks": [["3988.59", "3", "16"], ["3988.61", "0", "19"], ["3988.62", "8", "15"]],
                                   "bids": [["3988.50", "44", "18"]]},
                       "sequenceEnd": 19, "sequenceStart": 15, "symbol": "BTC-USDT", "time": 1729816425625}}
    h.feed(update)
    assert h.conn.fetches == [FULL + "BTC-USDT"]
    h.rest(FULL + "BTC-USDT", {"code": "200000", "data": {
        "sequence": "16", "time": 1729816425000,
        "asks": [["3988.62", "8"], ["3988.61", "32"], ["3988.60", "47"], ["3988.59", "3"]],
        "bids": [["3988.51", "56"], ["3988.50", "15"], ["3988.49", "100"], ["3988.48", "10"]]}})
    book = h.scheme.books["BTC-USDT"]
    assert book.levels(ASK) == [("3988.59", "3"), ("3988.60", "47"), ("3988.62", "8")]
    assert book.levels(BID) == [("3988.51", "56"), ("3988.50", "44"), ("3988.49", "100"), ("3988.48", "10")]
    assert h.scheme.sync.markets["BTC-USDT"].last == 19 and h.metrics.gaps == 0


# --- faults on the recorded BSV-USDT stream -----------------------------------------------------------

def _bsv():
    """BSV-USDT's recorded updates (recv ns, bytes, data) and its recorded snapshot."""
    msgs, snaps = recorded()
    ups = [(ts, raw, msg["data"]) for ts, msg, raw in msgs
           if msg.get("subject") == "trade.l2update" and msg["data"]["symbol"] == "BCHSV-USDT"]
    return ups, snaps["BCHSV-USDT"]


def _synced(n: int):
    """A harness with BSV-USDT live after its snapshot and the first ``n`` recorded updates, and
    the reference in the same state."""
    ups, snap = _bsv()
    h = Harness(KucoinScheme, listing(), ["lob"])
    ref = Reference()
    for i, (ts, raw, d) in enumerate(ups[:n]):
        h.feed(raw, ts)
        if i == 0:
            h.rest(FULL + "BCHSV-USDT", {"code": "200000", "data": snap}, ts)
            ref.load("BCHSV-USDT", snap)
        ref.update("BCHSV-USDT", d)
    return h, ref, ups


def _snapshot_of(ref: Reference) -> dict:
    book = ref.books["BCHSV-USDT"]
    return {"code": "200000", "data": {"sequence": str(ref.last["BCHSV-USDT"]), "time": 1619378330000,
                                       "bids": [list(x) for x in book.ordered("b")],
                                       "asks": [list(x) for x in book.ordered("a")]}}


def _same(h: Harness, ref: Reference) -> bool:
    book = h.scheme.books["BCHSV-USDT"]
    return ([(Decimal(p), Decimal(s)) for p, s in book.levels(BID)] == ref.books["BCHSV-USDT"].levels("b")
            and [(Decimal(p), Decimal(s)) for p, s in book.levels(ASK)] == ref.books["BCHSV-USDT"].levels("a"))


@pytest.mark.parametrize("fault", ["drop", "reorder"])
def test_a_lost_or_reordered_update_is_a_gap_and_the_book_is_rebuilt(fault):
    h, ref, ups = _synced(60)
    assert _same(h, ref)
    k = 60
    first, second = ups[k], ups[k + 1]
    seq_missing = first[2]["sequenceStart"]
    h.conn.fetches.clear()
    produced = h.feed(second[1], second[0])  # (drop: `first` never comes; reorder: it comes after)
    assert h.metrics.gaps == 1 and h.metrics.resyncs == 1
    status = [r for t, r in produced if t == "status"]
    assert [(s.symbol, s.status, s.reason) for s in status] == [
        ("BSV-USDT", "resync", f"gap: sequenceStart {seq_missing + 1} > previous sequenceEnd {seq_missing - 1} + 1")]
    assert h.scheme.books["BCHSV-USDT"].count(BID) == 0 and "BCHSV-USDT" in h.scheme.unsynced
    assert h.conn.fetches == [FULL + "BCHSV-USDT"]
    if fault == "reorder":
        h.feed(first[1], first[0])  # the late one: buffered, then covered by the snapshot
    for u in (first, second):
        ref.update("BCHSV-USDT", u[2])
    h.rest(FULL + "BCHSV-USDT", _snapshot_of(ref), second[0])
    assert _same(h, ref) and "BCHSV-USDT" not in h.scheme.unsynced
    for ts, raw, d in ups[k + 2:k + 40]:
        h.feed(raw, ts)
        ref.update("BCHSV-USDT", d)
    assert _same(h, ref) and h.metrics.gaps == 1 and h.metrics.errors.total == 0


def test_a_duplicated_update_is_stale_and_changes_nothing():
    """A repeat has ``sequenceEnd`` <= the book's: the documented rule ignores it (no gap)."""
    h, ref, ups = _synced(60)
    ts, raw, _d = ups[59]
    assert h.feed(raw, ts) == []
    assert _same(h, ref) and h.metrics.gaps == 0 and h.metrics.resyncs == 0


def test_a_malformed_update_resyncs_the_book():
    h, ref, ups = _synced(20)
    bad = ups[20][1].replace(b'"sequenceStart":', b'"sequenceStart":"x",', 1).replace(b'"x",', b'"x","y":', 1)
    produced = h.feed(bad, ups[20][0])
    assert [r.reason[:20] for t, r in produced if t == "status"] == ["malformed l2update: "]
    assert h.metrics.errors.total == 1 and h.metrics.resyncs == 1 and h.metrics.gaps == 0


# --- the snapshot route ------------------------------------------------------------------------------

def test_a_refused_full_book_turns_to_the_public_partial_snapshot():
    h = Harness(KucoinScheme, listing(), ["lob"])
    ups, snap = _bsv()
    h.feed(ups[0][1], ups[0][0])
    h.rest_error(FULL + "BCHSV-USDT", RestError(FULL + "BCHSV-USDT", "HTTP 401 Unauthorized", 401))
    assert h.conn.fetches == [FULL + "BCHSV-USDT", PARTIAL + "BCHSV-USDT"] and h.scheme.partial
    h.feed(ups[1][1], ups[1][0])
    assert h.conn.fetches[2:] == []  # (one request in flight)


def test_a_partial_snapshot_vouches_for_its_price_range_only():
    """A side of 100 levels: updates beyond its last price are not applied; a side that empties
    is rebuilt ("partial snapshot exhausted")."""
    inst = {"BTC-USDT": guess_spot("BTC-USDT")}
    h = Harness(KucoinScheme, inst, ["lob"])
    h.scheme.partial = True

    def upd(seq, asks=(), bids=()):
        return {"type": "message", "topic": "/market/level2:BTC-USDT", "subject": "trade.l2update",
                "data": {"changes": {"asks": [[p, s, str(seq)] for p, s in asks], "bids": [[p, s, str(seq)] for p, s in bids]},
                         "sequenceStart": seq, "sequenceEnd": seq, "symbol": "BTC-USDT"}}
    h.feed(upd(10, bids=[("50", "1")]))
    bids = [[str(1000 - i), "1"] for i in range(100)]  # 1000 .. 901
    h.rest(PARTIAL + "BTC-USDT", {"code": "200000", "data": {"sequence": "10", "bids": bids, "asks": [["1001", "2"]]}})
    assert h.scheme.horizon["BTC-USDT"] == (901.0, None)
    h.feed(upd(11, bids=[("900", "5"), ("950", "0")]))
    book = h.scheme.books["BTC-USDT"]
    assert book.get(BID, "900") is None and book.get(BID, "950") is None and book.count(BID) == 99
    produced = h.feed(upd(12, bids=[(p, "0") for p, _ in bids if p != "950"]))
    assert [(r.status, r.reason) for t, r in produced if t == "status"] == [("resync", "partial snapshot exhausted")]


# --- parsing -----------------------------------------------------------------------------------------

def test_listing_symbols_and_precision():
    inst = listing()
    assert len(inst) == 634
    assert inst["BCHSV-USDT"][:5] == ("BCHSV-USDT", "BSV-USDT", "spot", "BSV", "USDT")
    assert (inst["CAPP-BTC"].price_decimals, inst["BCHSV-USDT"].size_decimals) == (10, 12)
    assert guess_spot("ETH-USDT").symbol == "ETH-USDT"
    with pytest.raises(KeyError):
        guess_spot("nonsense")
    assert ns_to_ms("1619378327739050725") == 1619378327739
    with pytest.raises(ValueError):
        ns_to_ms("-1")


def test_subscriptions_and_ping():
    h = Harness(KucoinScheme, listing(), ["lob", "trades", "candle"], ["SNX-BTC", "BSV-USDT"],
                plan=KucoinScheme(lambda t, r: None, None, listing(), ["SNX-BTC", "BSV-USDT"],
                                  ["lob", "trades", "candle"]).plan()[0])
    h.open()
    topics = [(m["type"], m["topic"], m["response"]) for m in h.sent()]
    assert topics == [("subscribe", "/market/level2:SNX-BTC,BCHSV-USDT", True),
                      ("subscribe", "/market/match:SNX-BTC,BCHSV-USDT", True),
                      ("subscribe", "/market/candles:SNX-BTC_1min", True),
                      ("subscribe", "/market/candles:BCHSV-USDT_1min", True)]
    assert json.loads(h.scheme.ping_message())["type"] == "ping"


def test_the_bullet_answer_gives_the_connect_url():
    body = json.dumps({"code": "200000", "data": {
        "token": "2neAiuYvAU61ZDXANAGAsiL4-iAExhsBXZxftpOeh_55i3Ysy2q2LEsEWU64mdzUOPusi34M_wGoSf7iNyEWJ2gZJLp3fgqG",
        "instanceServers": [{"endpoint": "wss://ws-api-spot.kucoin.com/", "encrypt": True, "protocol": "websocket",
                             "pingInterval": 18000, "pingTimeout": 10000}]}}).encode()
    url, ping = KucoinScheme.connect_url(body, "121345")
    assert url == ("wss://ws-api-spot.kucoin.com/?token=2neAiuYvAU61ZDXANAGAsiL4-iAExhsBXZxftpOeh_55i3Ysy2q2LEsEWU64"
                   "mdzUOPusi34M_wGoSf7iNyEWJ2gZJLp3fgqG&connectId=121345")
    assert ping == 18.0
    with pytest.raises(ValueError):
        KucoinScheme.connect_url(b'{"code":"400100","data":null}')


def test_session_messages_and_errors():
    h = Harness(KucoinScheme, listing(), strict=False)
    assert h.feed({"id": "NSkIrWGB1s", "type": "welcome"}) == []
    assert h.feed({"id": "1", "type": "ack"}) == [] and h.feed({"id": "2", "type": "pong"}) == []
    h.feed({"id": "3", "type": "error", "code": 404, "data": "topic /market/x is not found"})
    h.feed({"type": "message", "topic": "/market/x:SNX-BTC", "subject": "trade.other", "data": {}})
    h.feed(b"not json")
    assert [k for k, _d, _s in h.reports] == ["kucoin: exchange error", "kucoin: unknown subject", "kucoin: not a JSON object"]
