"""dYdX v4 indexer scheme (``dydx``) on real indexer messages.

Messages: ``../shared/fixtures/nautilus/dydx/`` (real July/August 2024 indexer messages kept by
nautilus_trader, one per file, re-serialised with sorted keys; see that folder's README row).
They come from many connections: the ETH-USD snapshot (connection 7ad53844, ``message_id`` 4,
book around 3393) and the batched updates (connection 3fcea53b, ``message_id`` 17, book around
2396) do NOT belong to one book. So:

- exact values are asserted message by message on the recorded files;
- the book tests put the real batch after the real snapshot as what it is: newer updates whose
  asks lie below every bid of the older snapshot, the crossing dYdX's documented uncrossing
  rule is for. Where a test needs one ``message_id`` per update (the sync fault tests), the
  batch's 41 entries are sent as the 41 ``channel_data`` messages they would have been without
  ``batched``, numbered 5, 6, ... after the snapshot's 4 by the indexer's counter rule: those ids
  are the test's; every price and size is the recording's;
- the uncrossing example of dYdX's guide (docs.dydx.exchange/api_integration-guides/
  how_to_uncross_orderbook: best bid 26854.0 x 0.556 set by message 8468, best ask 26826.0 x
  0.0027 by message 8489) is replayed as the two messages it describes.

The reference book is the kit's ``RefBook`` plus the offsets of dYdX's documented client code
(each level remembers the message that set it; while crossed the older one goes, equal offsets
compare sizes), written here on Decimals, independently of the scheme.
"""
from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

from atomfast.book import ASK, BID
from atomfast.events import Candle, FundingRate, Lob, OpenInterest, Spread, Status, Trade
from atomfast.exchanges import schemes
from atomfast.exchanges.dydx import DydxScheme
from atomfast.exchanges.dydx.handler import _Seq
from atomfast.exchanges.dydx.parse import parse_instruments, ticker_instrument
from atomfast.replay import replay_capture
from atomfast.scheme import ConnectionPlan, Instrument
from atomfast.sinks.null import NullSink
from atomfast.metrics import Metrics
from atomfast.testing import (ROOT, T0, Harness, RefBook, SimProcess, cli_summary, decimal_levels, fixture_path,
                              run_cli)

FIX = "nautilus/dydx"
CAPTURE = ROOT / "tests" / "data" / "dydx" / "DYDX.ws.1.0"
URL = DydxScheme.ws_url


def load(name: str) -> dict:
    return json.loads(fixture_path(f"{FIX}/{name}").read_text())


def instruments() -> dict[str, Instrument]:
    """The listing: ``/v4/perpetualMarkets`` answers what the v4_markets subscription's initial
    state holds (the indexer's socks fetches that very endpoint for it)."""
    return parse_instruments(json.dumps(load("v4_markets_subscribed.json")["contents"]).encode())


def harness(counted: bool = False) -> Harness:
    """A harness; ``counted``: its connection subscribed four channels of ETH-USD (so the
    indexer's ids 1-3 before the snapshot's 4 are the other three subscribes, still unanswered)."""
    plan = ConnectionPlan(URL, [("v4_orderbook", ["ETH-USD"]), ("v4_trades", ["ETH-USD"]), ("v4_markets", ["ETH-USD"]),
                                ("v4_candles", ["ETH-USD"])])
    h = Harness(DydxScheme, instruments(), plan=plan if counted else None)
    if counted:
        h.open()
    return h


def alone(h: Harness, msg: dict, recv_ns: int = T0) -> list:
    """A recorded message of its own connection, whose earlier messages are not recorded: the
    connection's numbering is set to continue at it (each file is another connection)."""
    h.conn.state["seq"] = seq = _Seq()
    seq.last = msg["message_id"] - 1
    return h.feed(msg, recv_ns)


def entries() -> list[dict]:
    """The real batch's 41 updates as the channel_data messages they would have been, ids 5.."""
    batch = load("v4_orderbook_batched_data.json")
    return [{"type": "channel_data", "connection_id": batch["connection_id"], "message_id": 5 + i, "id": "ETH-USD",
             "channel": "v4_orderbook", "version": "1.0.0", "contents": c} for i, c in enumerate(batch["contents"])]


class Reference:
    """dYdX's documented client book: RefBook levels + each level's offset, uncrossed after each
    message by the guide's loop."""

    def __init__(self) -> None:
        self.book = RefBook()
        self.offset: dict[tuple[str, Decimal], int] = {}
        self.removed = 0

    def message(self, contents: dict, offset: int) -> None:
        for key, side in (("bids", "b"), ("asks", "a")):
            for lv in contents.get(key, []):
                price, size = (lv["price"], lv["size"]) if isinstance(lv, dict) else lv
                self.book.set(side, price, size)
                self.offset[(side, Decimal(price))] = offset
        self.uncross()

    def uncross(self) -> None:
        while True:
            bp, bs, ap, asz = self.book.top()
            if bp is None or ap is None or bp < ap:
                return
            bo, ao = self.offset[("b", bp)], self.offset[("a", ap)]
            btext, atext = self.book.sides["b"][bp][0], self.book.sides["a"][ap][0]
            if bo < ao or (bo == ao and bs < asz):
                self.book.remove("b", btext)
                if bo == ao:
                    self.book.set("a", atext, str(asz - bs))
            elif bo > ao or bs > asz:
                self.book.remove("a", atext)
                if bo == ao:
                    self.book.set("b", btext, str(bs - asz))
            else:
                self.book.remove("b", btext)
                self.book.remove("a", atext)
            self.removed += 1

    def same(self, book) -> bool:
        return (decimal_levels(book.levels(BID)) == self.book.levels("b")
                and decimal_levels(book.levels(ASK)) == self.book.levels("a"))


# --- registry, instruments, subscriptions -------------------------------------------------------
def test_registry_instruments_and_symbols():
    assert schemes()["dydx"] == [DydxScheme]
    inst = instruments()
    assert len(inst) == 98
    # ETH-USD: tickSize "0.1", stepSize "0.001" (+2 decimals of headroom)
    assert inst["ETH-USD"] == Instrument("ETH-USD", "ETH-USD-PERP", "perp", "ETH", "USD", 3, 5)
    assert inst["BTC-USD"] == Instrument("BTC-USD", "BTC-USD-PERP", "perp", "BTC", "USD", 2, 6)
    assert all(s in {i.symbol for i in inst.values()} for s in DydxScheme.default_symbols)
    assert ticker_instrument("1INCH-USD").symbol == "1INCH-USD-PERP"
    for bad in ("ETHUSD", "eth-usd", "A-B-C", "", "-USD", "ETH-"):
        try:
            ticker_instrument(bad)
        except KeyError:
            continue
        raise AssertionError(bad)


def test_subscriptions_one_markets_subscription_and_batched_book():
    h = Harness(DydxScheme)
    s = DydxScheme(h.pipeline.emit, h.metrics, instruments(), ["BTC-USD-PERP", "ETH-USD-PERP"])
    plan = s.plan()
    assert len(plan) == 1
    assert plan[0].subscriptions == [("v4_orderbook", ["BTC-USD", "ETH-USD"]), ("v4_trades", ["BTC-USD", "ETH-USD"]),
                                     ("v4_markets", ["BTC-USD"]), ("v4_candles", ["BTC-USD", "ETH-USD"])]
    assert [json.loads(x) for x in s.subscribe_plan(plan[0])] == [
        {"type": "subscribe", "channel": "v4_orderbook", "id": "BTC-USD", "batched": True},
        {"type": "subscribe", "channel": "v4_orderbook", "id": "ETH-USD", "batched": True},
        {"type": "subscribe", "channel": "v4_trades", "id": "BTC-USD"},
        {"type": "subscribe", "channel": "v4_trades", "id": "ETH-USD"},
        {"type": "subscribe", "channel": "v4_markets"},
        {"type": "subscribe", "channel": "v4_candles", "id": "BTC-USD/1MIN"},
        {"type": "subscribe", "channel": "v4_candles", "id": "ETH-USD/1MIN"}]
    assert s.ping_message() is None and s.ping_interval == 0.0


# --- book -------------------------------------------------------------------------------------
def test_snapshot_exact_levels_and_spread():
    h = harness()
    assert h.feed(load("connected.json")) == []
    out = h.feed(load("v4_orderbook_snapshot.json"), T0)
    snap = load("v4_orderbook_snapshot.json")["contents"]
    ref = Reference()
    ref.message(snap, 4)
    assert Counter(t for t, _ in out) == {"lob": 200, "status": 1, "spread": 1}
    assert out[0] == ("status", Status("dydx", "ETH-USD-PERP", "snapshot", "", T0 // 10**6, T0 // 1000))
    # bids first, best first: {"price": "3393.2", "size": "7.795"}
    assert out[1] == ("lob", Lob("dydx", "ETH-USD-PERP", 3393.2, 7.795, "buy", T0 // 10**6, T0 // 1000))
    assert ("lob", Lob("dydx", "ETH-USD-PERP", 3564.8, 0.15, "sell", T0 // 10**6, T0 // 1000)) in out
    assert out[-1] == ("spread", Spread("dydx", "ETH-USD-PERP", 3393.2, 7.795, 3393.5, 4.946, T0 // 10**6, T0 // 1000))
    assert ref.same(h.scheme.books["ETH-USD"]) and ref.removed == 0
    assert h.metrics.gaps == h.metrics.resyncs == h.metrics.errors.total == 0


def test_newer_batch_uncrosses_the_older_snapshot_by_the_documented_rule():
    """The batch's asks (2396.9 ...) lie below the snapshot's bids (3260.9 ... 3393.2): the
    documented rule removes the OLDER levels, here every bid of the snapshot they cross."""
    h = harness()
    h.feed(load("connected.json"))
    h.feed(load("v4_orderbook_snapshot.json"))
    ref = Reference()
    ref.message(load("v4_orderbook_snapshot.json")["contents"], 4)
    for i, c in enumerate(load("v4_orderbook_batched_data.json")["contents"]):
        ref.message(c, 5 + i)  # each entry of the batch, in order, is one message
    out = h.feed(load("v4_orderbook_batched_data.json"))
    book = h.scheme.books["ETH-USD"]
    assert ref.same(book)
    assert ref.removed == 100  # the snapshot's 100 bids, all at or above the new ask 2397.1
    uncrossed = [r for t, r in out if t == "status"]
    assert [s.status for s in uncrossed] == ["uncrossed"]
    assert uncrossed[0].symbol == "ETH-USD-PERP" and uncrossed[0].reason.startswith(
        "message_id 17 entry 3: bid 3393.2 removed (older); bid 3393.1 removed (older);")
    assert uncrossed[0].reason.endswith("and 92 more")
    lob = [r for t, r in out if t == "lob"]
    # 41 entries' levels (5 deletes of levels the book lacks publish nothing) + 100 removals
    assert len(lob) == 41 - 5 + 100
    assert Lob("dydx", "ETH-USD-PERP", 3260.9, 0.0, "buy", T0 // 10**6, T0 // 1000) in lob
    bp, bs, ap, asz = book.best()
    assert (bp, bs, ap, asz) == (2396.3, 4.788, 2396.9, 4.0)  # 2396.6 was deleted (entry 7)
    assert [r for t, r in out if t == "spread"] == [Spread("dydx", "ETH-USD-PERP", 2396.3, 4.788, 2396.9, 4.0,
                                                           T0 // 10**6, T0 // 1000)]
    assert h.metrics.gaps == h.metrics.resyncs == h.metrics.errors.total == 0


def _doc_snapshot(bids, asks, message_id):
    return {"type": "subscribed", "connection_id": "c", "message_id": message_id, "channel": "v4_orderbook",
            "id": "BTC-USD", "contents": {"bids": bids, "asks": asks}}


def test_documented_uncross_example_older_bid_removed():
    """The guide's example: best bid 26854.0 x 0.556 (message 8468) is older than the best ask
    26826.0 x 0.0027 (message 8489): the bid goes."""
    h = harness()
    h.feed(_doc_snapshot([{"price": "26854.0", "size": "0.556"}], [], 8468))
    out = h.feed({"type": "channel_data", "connection_id": "c", "message_id": 8489, "channel": "v4_orderbook",
                  "id": "BTC-USD", "contents": {"asks": [["26826.0", "0.0027"]]}})
    book = h.scheme.books["BTC-USD"]
    assert book.levels(BID) == [] and book.levels(ASK) == [("26826.0", "0.0027")]
    assert [r for t, r in out if t == "status"] == [
        Status("dydx", "BTC-USD-PERP", "uncrossed", "message_id 8489: bid 26854.0 removed (older)", T0 // 10**6,
               T0 // 1000)]
    assert Lob("dydx", "BTC-USD-PERP", 26854.0, 0.0, "buy", T0 // 10**6, T0 // 1000) in [r for t, r in out]


def test_documented_uncross_same_message_compares_sizes():
    """Both levels in one message (one offset): the smaller size goes, the larger keeps the rest."""
    h = harness()
    out = h.feed(_doc_snapshot([{"price": "26854.0", "size": "0.556"}], [{"price": "26826.0", "size": "0.0027"}], 1))
    book = h.scheme.books["BTC-USD"]
    assert book.levels(BID) == [("26854.0", "0.5533")] and book.levels(ASK) == []
    assert ("status", Status("dydx", "BTC-USD-PERP", "uncrossed",
                             "snapshot message_id 1: ask 26826.0 removed, bid 26854.0 reduced to 0.5533 (same message)",
                             T0 // 10**6, T0 // 1000)) in out
    assert out[-1][0] == "spread" and out[-1][1][2:6] == (26854.0, 0.5533, 0.0, 0.0)


# --- message_id continuity: drop, duplicate, reorder ------------------------------------------
def _synced(counted: bool = True) -> Harness:
    h = harness(counted)
    h.feed(load("connected.json"))
    h.feed(load("v4_orderbook_snapshot.json"))
    return h


def _resubscribed(h: Harness, next_id: int) -> None:
    """The indexer's answers to the resync's unsubscribe + subscribe (ids next_id, next_id + 1:
    the counter goes on), the fresh snapshot being the recorded one, then the 41 updates again."""
    assert h.sent()[-2:] == [{"type": "unsubscribe", "channel": "v4_orderbook", "id": "ETH-USD"},
                             {"type": "subscribe", "channel": "v4_orderbook", "id": "ETH-USD", "batched": True}]
    h.feed({"type": "unsubscribed", "connection_id": "c", "message_id": next_id, "channel": "v4_orderbook",
            "id": "ETH-USD"})
    snap = dict(load("v4_orderbook_snapshot.json"), message_id=next_id + 1)
    assert [r.status for t, r in h.feed(snap) if t == "status"] == ["snapshot"]
    for i, msg in enumerate(entries()):
        h.feed(dict(msg, message_id=next_id + 2 + i))


def _clean_reference() -> Reference:
    ref = Reference()
    ref.message(load("v4_orderbook_snapshot.json")["contents"], 4)
    for msg in entries():
        ref.message(msg["contents"], msg["message_id"])
    return ref


def test_clean_stream_counted_has_no_gap_and_matches_the_reference():
    h = _synced()
    for msg in entries():
        h.feed(msg)
    assert h.metrics.gaps == h.metrics.resyncs == h.metrics.errors.total == 0
    assert _clean_reference().same(h.scheme.books["ETH-USD"])
    # the other three subscribes (ids 1-3) still owe their answers: a late one fills its id
    assert h.feed({"type": "subscribed", "connection_id": "c", "message_id": 2, "channel": "v4_markets",
                   "contents": {"markets": {}}}) == [("status", Status("dydx", "", "subscribed", "v4_markets",
                                                                       T0 // 10**6, T0 // 1000))]
    assert h.metrics.gaps == 0


def test_dropped_message_is_a_gap_resyncs_and_rebuilds():
    h = _synced()
    msgs = entries()
    for msg in msgs[:15]:  # ids 5..19
        h.feed(msg)
    out = h.feed(msgs[16])  # id 21: 20 is lost
    assert h.metrics.gaps == 1 and h.metrics.resyncs == 1
    assert [r for t, r in out if t == "status"] == [
        Status("dydx", "ETH-USD-PERP", "resync", "message_id gap: message_id 21 after 19: 1 missing", T0 // 10**6,
               T0 // 1000)]
    assert not [t for t, _ in out if t == "lob"] and h.scheme.books["ETH-USD"].levels(BID) == []
    for msg in msgs[17:]:  # ids 22..45: dropped while the book reloads
        assert not [t for t, _ in h.feed(msg) if t == "lob"]
    _resubscribed(h, 46)
    assert h.metrics.gaps == 1 and h.metrics.resyncs == 1 and h.metrics.errors.total == 0
    assert _clean_reference().same(h.scheme.books["ETH-USD"])


def test_duplicated_message_is_a_gap_resyncs_and_rebuilds():
    h = _synced()
    msgs = entries()
    for msg in msgs[:10]:  # ids 5..14
        h.feed(msg)
    out = h.feed(msgs[9])  # 14 again
    assert [r.reason for t, r in out if t == "status"] == [
        "message_id gap: message_id 14 after 14 (repeated or reordered)"]
    assert h.metrics.gaps == 1 and h.metrics.resyncs == 1
    for msg in msgs[10:]:
        h.feed(msg)
    _resubscribed(h, 46)
    assert h.metrics.gaps == 1 and h.metrics.resyncs == 1
    assert _clean_reference().same(h.scheme.books["ETH-USD"])


def test_reordered_messages_are_a_gap_resync_and_rebuild():
    h = _synced()
    msgs = entries()
    for msg in msgs[:10]:  # ids 5..14
        h.feed(msg)
    out = h.feed(msgs[11])  # 16 before 15
    assert [r.reason for t, r in out if t == "status"] == ["message_id gap: message_id 16 after 14: 1 missing"]
    assert h.feed(msgs[10]) == []  # 15 late: a second break, the book already reloading
    assert h.metrics.gaps == 2 and h.metrics.resyncs == 1
    for msg in msgs[12:]:
        h.feed(msg)
    _resubscribed(h, 46)
    assert h.metrics.resyncs == 1 and _clean_reference().same(h.scheme.books["ETH-USD"])


def test_replayed_connection_takes_a_jump_as_reserved_ids_but_not_a_repeat():
    """Without the subscribes sent (a replay), ids 1-3 before the snapshot's 4 are taken as
    subscribes' reserved ids; a repeated id is still a gap."""
    h = _synced(counted=False)
    assert h.metrics.gaps == 0
    h.feed(entries()[0])
    h.feed(entries()[0])
    assert h.metrics.gaps == 1 and h.scheme.unsynced == {"ETH-USD"}


# --- trades, markets, candles -----------------------------------------------------------------
def test_trades_exact():
    h = harness()
    out = alone(h, load("v4_trades.json"))
    assert out == [("trades", Trade("dydx", "ETH-USD-PERP", 3392.9, 0.01, "buy", "014206cf0000000200000002",
                                    1721848355705, T0 // 1000)),
                   ("trades", Trade("dydx", "ETH-USD-PERP", 3392.9, 1.738, "buy", "014206cf000000020000000e",
                                    1721848355705, T0 // 1000))]
    out = alone(h, load("trade_deleveraged.json"))
    assert [r for _, r in out][2] == Trade("dydx", "ETH-USD-PERP", float("2340.7442700369913687"), 0.811, "sell",
                                           "015034b90000000200000026", 1722820168338, T0 // 1000)
    assert len(out) == 3
    # a resubscription's recent trades (newest first) repeat the ones emitted: nothing twice
    h.conn.state.clear()  # a new connection
    again = {"type": "subscribed", "connection_id": "c", "message_id": 1, "channel": "v4_trades", "id": "ETH-USD",
             "contents": {"trades": list(reversed(load("v4_trades.json")["contents"]["trades"]))}}
    assert [t for t, _ in h.feed(again)] == ["status"]


def test_markets_funding_rate_and_open_interest_exact():
    h = harness()
    t0_ms, t0_us = T0 // 10**6, T0 // 1000
    next_hour = (t0_ms // 3_600_000 + 1) * 3_600_000
    out = alone(h, load("v4_markets_subscribed.json"))
    counts = Counter(t for t, _ in out)
    assert counts == {"funding_rate": 98, "open_interest": 98, "status": 1}
    eth = load("v4_markets_subscribed.json")["contents"]["markets"]["ETH-USD"]
    assert ("funding_rate", FundingRate("dydx", "ETH-USD-PERP", float(eth["oraclePrice"]), float(eth["nextFundingRate"]),
                                        next_hour, float(eth["nextFundingRate"]), t0_ms, t0_us)) in out
    assert ("open_interest", OpenInterest("dydx", "AAVE-USD-PERP", 19.3, t0_ms, t0_us)) in out
    # an oracle price update, then FTM-USD's trading update: its funding carries that mark price
    assert alone(h, load("v4_markets_oracle_price.json")) == []
    out = alone(h, load("v4_markets_cross.json"))
    assert out == [("funding_rate", FundingRate("dydx", "FTM-USD-PERP", 0.3866273177, 0.0, next_hour, 0.0, t0_ms, t0_us)),
                   ("open_interest", OpenInterest("dydx", "FTM-USD-PERP", 564710.0, t0_ms, t0_us))]
    # TRY-USD (a newer listing, not in the 2024 listing: named from its ticker)
    out = alone(h, load("v4_markets_channel_data_v8.json"))
    assert [(t, r.symbol) for t, r in out] == [("funding_rate", "TRY-USD-PERP"), ("open_interest", "TRY-USD-PERP")]
    assert out[1][1].open_interest == 1257800.0
    # only baseOpenInterest changed: nothing to publish
    assert alone(h, load("v4_markets_trading_data.json")) == []
    assert h.metrics.errors.total == 0


def test_markets_only_configured_symbols():
    h = Harness(DydxScheme, instruments(), symbols=("ETH-USD-PERP",))
    out = alone(h, load("v4_markets_subscribed.json"))
    assert Counter(t for t, _ in out) == {"funding_rate": 1, "open_interest": 1, "status": 1}


def test_candles_exact():
    h = harness()
    out = alone(h, load("v4_candles_subscribed.json"))  # 100 candles, newest first: the running one
    assert out == [("status", Status("dydx", "ETH-USD-PERP", "subscribed", "v4_candles", T0 // 10**6, T0 // 1000)),
                   ("candle", Candle("dydx", "ETH-USD-PERP", 1723703460000, 1723703520000, "1m", 0, False, 2625.6,
                                     2625.6, 2625.6, 2625.6, 0.0, T0 // 10**6, T0 // 1000))]
    out = alone(h, load("v4_candles_channel_data.json"))
    assert out == [("candle", Candle("dydx", "ETH-USD-PERP", 1722016440000, 1722016500000, "1m", 10, False, 3246.5,
                                     3247.6, 3246.5, 3247.6, 6.364, T0 // 10**6, T0 // 1000))]


def test_control_messages_and_bad_input():
    h = harness()
    assert h.feed(load("unsubscribed.json")) == [("status", Status("dydx", "", "resync",
                                                  "message_id gap: message_id 1905 after 0: 1904 missing",
                                                  T0 // 10**6, T0 // 1000))]
    before = h.metrics.errors.total
    h.feed({"type": "error", "message": "Invalid subscribe message: channel is required", "connection_id": "c",
            "message_id": 1905})
    h.feed(b"not json")
    h.feed({"type": "channel_data", "message_id": 1906, "channel": "v4_accounts", "id": "x", "contents": {}})
    h.feed({"type": "channel_data", "message_id": 1907, "channel": "v4_trades", "id": "ETH-USD",
            "contents": {"trades": [{"id": "1", "side": "UP", "size": "1", "price": "1", "createdAt": "x"}]}})
    h.feed({"type": "channel_data", "message_id": 1908, "channel": "v4_candles", "id": "ETH-USD/1MIN",
            "contents": {"x": 1}})
    kinds = [k for k, _, _ in h.reports[before:]]
    assert kinds == ["dydx: exchange error", "dydx: not a JSON object", "dydx: unknown channel", "dydx: malformed trade",
                     "dydx: malformed v4_candles"]
    assert h.events("trades") == []


def test_malformed_book_update_resyncs():
    h = _synced()
    out = h.feed({"type": "channel_data", "message_id": 5, "channel": "v4_orderbook", "id": "ETH-USD",
                  "version": "1.0.0", "contents": {"bids": [["-1", "2"]]}})
    assert [r.status for t, r in out if t == "status"] == ["resync"]
    assert h.metrics.resyncs == 1 and h.scheme.books["ETH-USD"].levels(ASK) == []


# --- the capture-format file: replay, and simulate + run --endpoint ------------------------------
def test_capture_file_replay_summary():
    """tests/data/dydx/DYDX.ws.1.0: connection 7ad53844's first two messages (connected, the
    ETH-USD snapshot), the only consecutive part of it recorded (its next is message 1491)."""
    metrics = Metrics()
    replay = replay_capture([CAPTURE], "dydx", NullSink(framing=None), metrics)
    s = metrics.summary()
    # status: connected (the replay's open) + snapshot; 100 + 100 levels; one spread
    assert (s["frames"], s["events"], s["gaps"], s["resyncs"], s["errors"]) == (
        2, {"lob": 200, "spread": 1, "status": 2}, 0, 0, 0)
    assert replay.unanswered == []


def test_simulate_and_run_endpoint_publish_what_replay_does():
    with SimProcess(CAPTURE, "--pace", "fast") as sim:
        r = run_cli("run", "--exchange", "dydx", "--endpoint", sim.url, "--sink", "stdout", "--max-frames", 2,
                    timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    s = cli_summary(r.stderr)
    assert s["frames"] == 2 and s["gaps"] == 0 and s["errors"] == 0
    topics = Counter(json.loads(line)["topic"] for line in r.stdout.splitlines())
    assert topics["lob"] == 200 and topics["spread"] == 1
    statuses = [(x["symbol"], x["status"]) for x in map(json.loads, r.stdout.splitlines()) if x["topic"] == "status"]
    assert statuses == [("", "connected"), ("ETH-USD-PERP", "snapshot"), ("", "disconnected"), ("", "stopped")]


def test_capture_file_is_the_recorded_messages():
    """The capture's received lines are the recorded files, re-serialised compactly."""
    lines = Path(CAPTURE).read_text().splitlines()
    assert json.loads(lines[2].split(": ", 1)[1]) == load("connected.json")
    assert json.loads(lines[3].split(": ", 1)[1]) == load("v4_orderbook_snapshot.json")
    listing = (CAPTURE.parent / "DYDX.0").read_text().splitlines()[0].split(": ", 1)[1]
    assert json.loads(listing) == load("v4_markets_subscribed.json")["contents"]
