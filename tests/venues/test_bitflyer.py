"""bitFlyer Lightning scheme (``bitflyer``).

The recorded capture ``BITFLYER.ws.1.0`` (cryptofeed, 2021-12-12, JSON-RPC 2.0 at
``wss://ws.lightstream.bitflyer.com/json-rpc``; shapes still current) holds
``lightning_board_snapshot``, ``lightning_board``, ``lightning_executions`` and
``lightning_ticker`` of 10 products (spot, ``FX_BTC_JPY``, two Lightning Futures);
``BITFLYER.0`` the listings (``/v1/getmarkets``, ``/usa``, ``/eu``). The capture is replayed
through the product's replay and through an independent reference model in this file (dicts of
Decimal; bitFlyer's mid-price rule written with ``Decimal.quantize(ROUND_DOWN)``, the snapshot
comparison with sets), which must agree on every count and on every final book.

``tests/data/bitflyer/documented.json``: the documentation's example messages (its keys say
which page). Fault tests drop, reorder or duplicate one real message of the capture.
"""
from __future__ import annotations

import functools
import json
import logging
from decimal import ROUND_DOWN, Decimal

import pytest

from atomfast.book import ASK, BID
from atomfast.events import Spread, Status, Ticker, Trade, TradeL3
from atomfast.exchanges import scheme_for
from atomfast.exchanges.bitflyer import BitflyerScheme
from atomfast.exchanges.bitflyer.parse import guess_instrument, mid_ok, parse_markets
from atomfast.testing import (ROOT, T0, Harness, MemorySink, RefBook, SimProcess, capture_instruments, cli_summary,
                              decimal_levels, fixture_path, of, recv_frames, replay_fixture, run_cli)

CAPTURE = "cryptofeed/BITFLYER.ws.1.0"
DOCUMENTED = json.loads((ROOT / "tests" / "data" / "bitflyer" / "documented.json").read_text())


@pytest.fixture(autouse=True)
def _quiet():
    logging.getLogger("atomfast.scheme").setLevel(logging.ERROR)


def listing() -> dict:
    return capture_instruments(CAPTURE, BitflyerScheme)


def frames() -> list[tuple[int, bytes]]:
    return recv_frames(CAPTURE)


def channel_of(data: bytes) -> str:
    return json.loads(data)["params"]["channel"]


def run(stream) -> Harness:
    h = Harness(BitflyerScheme, listing())
    h.feed_all(stream)
    return h


# ------------------------------------------------------------------------------------------------
# the independent reference


def ref_mid_ok(mid: Decimal, bid: Decimal, ask: Decimal) -> bool:
    """bitFlyer's mid: the mean, truncated to one digit less than the mean has when it ends in 5."""
    mean = (bid + ask) / 2
    exp = mean.normalize().as_tuple().exponent
    if mid == mean:
        return True
    return mean.normalize().as_tuple().digits[-1] == 5 and mid == mean.quantize(Decimal(10) ** (exp + 1), ROUND_DOWN)


class Reference:
    """The capture as the rules in the scheme's doc say, on plain dicts."""

    def __init__(self) -> None:
        self.books: dict[str, RefBook] = {}
        self.bounds: dict[str, tuple] = {}
        self.pending: dict[str, set] = {}
        self.lob = self.spread = self.mid_checks = self.compared = self.differed = self.resyncs = 0
        self.loads = 0

    @staticmethod
    def levels(side: list) -> list[tuple[str, str]]:
        return [(json.dumps(lv["price"]), json.dumps(lv["size"])) for lv in side if Decimal(str(lv["price"])) != 0]

    def load(self, product: str, msg: dict) -> None:
        ref = self.books[product] = RefBook()
        self.lob += ref.load("b", self.levels(msg["bids"])) + ref.load("a", self.levels(msg["asks"]))
        self.spread += 1
        self.loads += 1
        bids, asks = ref.sides["b"], ref.sides["a"]
        self.bounds[product] = (min(bids) if bids else None, max(asks) if asks else None)
        self.pending[product] = set()

    def snapshot(self, product: str, msg: dict) -> None:
        if product not in self.books:
            self.load(product, msg)
            return
        if self.pending[product]:
            self.resyncs += 1
            self.load(product, msg)
            return
        self.compared += 1
        ref = self.books[product]
        snap = {"b": {Decimal(p): Decimal(s) for p, s in self.levels(msg["bids"])},
                "a": {Decimal(p): Decimal(s) for p, s in self.levels(msg["asks"])}}
        floor, ceiling = self.bounds[product]
        lo = max(floor, min(snap["b"])) if snap["b"] else floor
        hi = min(ceiling, max(snap["a"])) if snap["a"] else ceiling
        for side, inside in (("b", lambda p: lo is None or p >= lo), ("a", lambda p: hi is None or p <= hi)):
            ours = {p: Decimal(s) for p, (_t, s) in ref.sides[side].items() if inside(p)}
            theirs = {p: s for p, s in snap[side].items() if inside(p)}
            self.pending[product] |= {(side, p) for p in set(ours) | set(theirs) if ours.get(p) != theirs.get(p)}
        self.differed += bool(self.pending[product])

    def diff(self, product: str, msg: dict) -> None:
        ref = self.books.get(product)
        if ref is None:
            return
        top_changed = False
        for side, key in (("bids", "b"), ("asks", "a")):
            for price, size in self.levels(msg[side]):
                before = ref.top()
                self.lob += ref.set(key, price, size)
                top_changed = top_changed or ref.top() != before
                self.pending[product].discard((key, Decimal(price)))
        self.spread += top_changed
        bid, _bs, ask, _as = ref.top()
        if bid is not None and ask is not None and bid < ask:
            self.mid_checks += 1
            assert ref_mid_ok(Decimal(str(msg["mid_price"])), bid, ask), (product, msg["mid_price"], bid, ask)

    def feed(self, data: bytes) -> None:
        params = json.loads(data)["params"]
        channel, msg = params["channel"], params["message"]
        if channel.startswith("lightning_board_snapshot_"):
            self.snapshot(channel[len("lightning_board_snapshot_"):], msg)
        elif channel.startswith("lightning_board_"):
            self.diff(channel[len("lightning_board_"):], msg)


@functools.lru_cache(maxsize=1)
def reference() -> Reference:
    ref = Reference()
    for _ts, data in frames():
        ref.feed(data)
    return ref


# ------------------------------------------------------------------------------------------------
# registry, symbols, subscriptions


def test_registry_listing_and_symbols():
    assert scheme_for("bitflyer") is BitflyerScheme
    inst = listing()
    assert {n: (i.symbol, i.kind) for n, i in inst.items()} == {
        "BTC_JPY": ("BTC-JPY", "spot"), "XRP_JPY": ("XRP-JPY", "spot"), "ETH_JPY": ("ETH-JPY", "spot"),
        "XLM_JPY": ("XLM-JPY", "spot"), "MONA_JPY": ("MONA-JPY", "spot"), "ETH_BTC": ("ETH-BTC", "spot"),
        "BCH_BTC": ("BCH-BTC", "spot"), "FX_BTC_JPY": ("BTC-JPY-PERP", "perp"),
        "BTCJPY17DEC2021": ("BTC-JPY-20211217", "future"), "BTCJPY24DEC2021": ("BTC-JPY-20211224", "future"),
        "BTCJPY31DEC2021": ("BTC-JPY-20211231", "future"), "BTC_USD": ("BTC-USD", "spot"),
        "BTC_EUR": ("BTC-EUR", "spot")}
    assert inst["BTCJPY31DEC2021"].expiry == "20211231"
    assert parse_markets(json.dumps(DOCUMENTED["getmarkets"]).encode())["FX_BTC_JPY"].symbol == "BTC-JPY-PERP"
    # a product code the listing did not name; an alias (the websocket takes none) is no market
    assert guess_instrument("ETH_JPY").symbol == "ETH-JPY"
    with pytest.raises(KeyError):
        guess_instrument("BTCJPY_MAT1WK")
    assert set(BitflyerScheme.default_symbols) <= {i.symbol for i in inst.values()}


def test_subscriptions_are_json_rpc_requests_and_answers_say_subscribed():
    h = Harness(BitflyerScheme, listing(), ("lob", "trades", "ticker"), ("BTC-JPY-PERP",))
    h.conn.plan = h.scheme.plan()[0]
    assert of(h.open(), "status") == [Status("bitflyer", "", "connected", h.conn.url, T0 // 10**6, T0 // 1000)]
    sent = h.sent()
    assert [s["params"]["channel"] for s in sent] == [
        "lightning_board_snapshot_FX_BTC_JPY", "lightning_board_FX_BTC_JPY", "lightning_executions_FX_BTC_JPY",
        "lightning_ticker_FX_BTC_JPY"]
    assert all(s["jsonrpc"] == "2.0" and s["method"] == "subscribe" for s in sent)
    assert len({s["id"] for s in sent}) == 4
    first = sent[0]["id"]
    assert of(h.feed({"jsonrpc": "2.0", "id": first, "result": True}), "status") == [
        Status("bitflyer", "BTC-JPY-PERP", "subscribed", "lightning_board_snapshot_FX_BTC_JPY", T0 // 10**6,
               T0 // 1000)]
    out = h.feed({"jsonrpc": "2.0", "id": sent[1]["id"], "error": {"code": -32602, "message": "Invalid params"}})
    assert [(r.status, r.symbol) for r in of(out, "status")] == [("stopped", "BTC-JPY-PERP")]
    assert h.reports[-1][0] == "bitflyer: exchange error"


# ------------------------------------------------------------------------------------------------
# the capture


def test_capture_replay_agrees_with_the_reference():
    replay, sink = replay_fixture(CAPTURE, exchange="bitflyer")
    ref = reference()
    counts = sink.counts()
    assert counts == {"lob": 7305, "spread": 294, "status": 11, "ticker": 249, "trades": 162, "trades_l3": 162}
    assert (counts["lob"], counts["spread"]) == (ref.lob, ref.spread)
    # the reference: 10 books loaded, 689 diffs' mids checked, 50 later snapshots compared of which
    # 15 differed (each explained by the next diffs), no resync
    assert (ref.loads, ref.mid_checks, ref.compared, ref.differed, ref.resyncs) == (10, 689, 50, 15, 0)
    m = replay.metrics
    assert (m.gaps, m.resyncs, m.errors.total) == (0, 0, 0)
    assert [s.status for s in sink.events("status")] == ["connected"] + ["snapshot"] * 10
    for product, book in replay.scheme.books.items():
        assert ref.books[product].equals(book), product
    assert not any(st.pending for st in replay.scheme.sync.values())


def test_capture_trades_ticker_and_first_snapshot_exact():
    _replay, sink = replay_fixture(CAPTURE, exchange="bitflyer")
    trades, l3 = sink.events("trades"), sink.events("trades_l3")
    atom = 1639350330082294
    assert trades[0] == Trade("bitflyer", "BTC-JPY-PERP", 5860832.0, 0.01, "buy", "2284079807", 1639350329969, atom)
    assert l3[0] == TradeL3("bitflyer", "BTC-JPY-PERP", 5860832.0, 0.01, "buy", "2284079807",
                            "JRF20211212-230529-081757", "JRF20211212-230529-223057", 1639350329969, atom)
    sell = next(t for t in l3 if t.trade_id == "2284078760")
    assert sell == TradeL3("bitflyer", "XRP-JPY", 95.96, 918.992246, "sell", "2284078760",
                           "JRF20211212-230529-124865", "JRF20211212-230529-196525", 1639350330094, 1639350330190262)
    assert sum(t.taker_side == "buy" for t in trades) == 84 and sum(t.taker_side == "sell" for t in trades) == 78
    tickers = sink.events("ticker")
    assert tickers[0] == Ticker("bitflyer", "BTC-JPY-PERP", 5859870.0, 0.04, 5862038.0, 0.02, 1639350330137,
                                1639350330240389)
    mona = next(t for t in tickers if t.symbol == "MONA-JPY")
    assert mona == Ticker("bitflyer", "MONA-JPY", 165.021, 98.0, 166.998, 0.80479767, 1639350337241,
                          1639350337433082)
    # MONA_JPY's first snapshot: 110 bids, 312 asks, its spread the top of them
    h = Harness(BitflyerScheme, listing())
    ts, data = next((t, d) for t, d in frames() if channel_of(d) == "lightning_board_snapshot_MONA_JPY")
    out = h.feed(data, ts)
    assert of(out, "status")[0].status == "snapshot" and len(of(out, "lob")) == 110 + 312
    assert of(out, "spread") == [Spread("bitflyer", "MONA-JPY", 165.021, 98.0, 166.998, 0.80479767, ts // 10**6,
                                        ts // 1000)]


def test_mid_price_rule():
    # the recording: ETH_JPY 472275 / 472556 -> 472415.0; BCH_BTC 0.00918 / 0.00923 -> 0.0092
    assert mid_ok(47241500000000, 47227500000000, 47255600000000)
    assert mid_ok(920000, 918000, 923000)
    assert not mid_ok(47241600000000, 47227500000000, 47255600000000)  # rounded up: not bitFlyer's
    assert mid_ok(3332000000000, 3000000000000, 3664000000000)  # the documented snapshot: 33320
    assert mid_ok(1, 1, 2) and not mid_ok(2, 1, 2) and not mid_ok(0, 1, 1)  # mean 1.5 ticks: 1


def test_documented_snapshot_loads_and_documented_diff_is_checked():
    h = Harness(BitflyerScheme, listing())
    snap = {"jsonrpc": "2.0", "method": "channelMessage",
            "params": {"channel": "lightning_board_snapshot_BTC_JPY", "message": DOCUMENTED["board_snapshot"]}}
    out = h.feed(snap)
    assert [(r.price, r.size, r.side) for r in of(out, "lob")] == [
        (30000.0, 0.1, "buy"), (25570.0, 3.0, "buy"), (36640.0, 5.0, "sell"), (36700.0, 1.2, "sell")]
    # the documented diff is an illustration of its own: on the documented snapshot its mid (35625)
    # is not the book's ((33350 + 36640) / 2 = 34995): seen, resynced
    diff = {"jsonrpc": "2.0", "method": "channelMessage",
            "params": {"channel": "lightning_board_BTC_JPY", "message": DOCUMENTED["board"]}}
    out = h.feed(diff)
    assert [r.reason for r in of(out, "status")] == [
        "mid_price mismatch: mid_price 35625, book's best bid 33350 ask 36640"]
    assert h.metrics.gaps == 1 and len(h.scheme.books["BTC_JPY"]) == 0


# ------------------------------------------------------------------------------------------------
# faults on the capture's real messages: the gap seen, status resync with the reason, the book
# rebuilt from the next snapshot and equal to the reference


def rebuilt_equals_reference(h: Harness, stream: list, product: str, resync_at: int) -> None:
    """After the resync, the next snapshot of ``product`` reloads the book; from there to the end
    it must equal a RefBook loaded from that snapshot and given the later diffs."""
    snap_i = next(i for i in range(resync_at, len(stream))
                  if channel_of(stream[i][1]) == f"lightning_board_snapshot_{product}")
    ref = Reference()
    for _ts, data in stream[snap_i:]:
        if product in channel_of(data) and "lightning_board" in channel_of(data):
            ch = channel_of(data)
            msg = json.loads(data)["params"]["message"]
            (ref.load if ch.startswith("lightning_board_snapshot_") and product not in ref.books else
             ref.snapshot if ch.startswith("lightning_board_snapshot_") else ref.diff)(product, msg)
    assert product not in h.scheme.unsynced
    assert ref.books[product].equals(h.scheme.books[product])


def fault_run(stream: list, product: str, reason: str) -> Harness:
    h = Harness(BitflyerScheme, listing())
    resync_at = None
    for i, (ts, data) in enumerate(stream):
        out = h.feed(data, ts)
        resyncs = [r for r in of(out, "status") if r.status == "resync"]
        if resyncs and resync_at is None:
            resync_at = i
            assert resyncs == [Status("bitflyer", listing()[product].symbol, "resync", reason, ts // 10**6,
                                      ts // 1000)]
            if reason.startswith("mid_price"):
                assert len(h.scheme.books[product]) == 0 and product in h.scheme.unsynced
    assert resync_at is not None
    assert (h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (1, 1, 0)
    rebuilt_equals_reference(h, stream, product, resync_at)
    return h


def test_fault_dropped_diff_seen_by_mid_price():
    stream = frames()
    assert channel_of(stream[68][1]) == "lightning_board_FX_BTC_JPY"
    fault_run(stream[:68] + stream[69:], "FX_BTC_JPY",
              "mid_price mismatch: mid_price 5862606.0, book's best bid 5862039.0 ask 5863179.0")


def test_fault_dropped_deep_diff_seen_by_the_snapshot_comparison():
    stream = frames()
    assert channel_of(stream[162][1]) == "lightning_board_BTCJPY17DEC2021"
    h = fault_run(stream[:162] + stream[163:], "BTCJPY17DEC2021",
                  "snapshot mismatch: 1 level(s) differ from the last snapshot and no diff set them, first bid "
                  "5691316: book none, snapshot 0.01")
    # reloaded at once from the snapshot that found it: two snapshots (the first load, the reload)
    assert [r.status for r in h.events("status") if r.symbol == "BTC-JPY-20211217"] == [
        "snapshot", "resync", "snapshot"]


def test_fault_reordered_diffs_seen_by_mid_price():
    stream = frames()
    a, b = 74, 77
    assert channel_of(stream[a][1]) == channel_of(stream[b][1]) == "lightning_board_FX_BTC_JPY"
    swapped = list(stream)
    swapped[a], swapped[b] = (stream[a][0], stream[b][1]), (stream[b][0], stream[a][1])
    fault_run(swapped, "FX_BTC_JPY", "mid_price mismatch: mid_price 5860745.0, book's best bid 5859870.0 ask 5861619.0")


def test_fault_duplicated_diff():
    stream = frames()
    # delivered twice in a row: a level total set twice is the same book (harmless, not a gap)
    h = run(stream[:75] + [stream[74]] + stream[75:])
    assert (h.metrics.gaps, h.metrics.resyncs) == (0, 0)
    assert reference().books["FX_BTC_JPY"].equals(h.scheme.books["FX_BTC_JPY"])
    # delivered again after the next diff of the market: it sets the top back, the mid says so
    a, b = 74, 77
    fault_run(stream[:b + 1] + [(stream[b][0], stream[a][1])] + stream[b + 1:], "FX_BTC_JPY",
              "mid_price mismatch: mid_price 5860745.0, book's best bid 5859870.0 ask 5861619.0")


# ------------------------------------------------------------------------------------------------
# auctions, bad input


def test_auction_entries_and_empty_side():
    stream = frames()
    h = run(stream[:69])
    ts, data = stream[69]
    frame = json.loads(data)
    # a diff with the documented auction entry (price 0: a market order executed in itayose)
    frame["params"]["message"]["bids"].append({"price": 0, "size": 0.5})
    clean = run(stream[:70])
    out = h.feed(frame, ts)
    assert h.metrics.gaps == 0 and h.reports == []
    assert all(r.price > 0 for r in of(out, "lob"))
    assert RefBook().equals(h.scheme.books["FX_BTC_JPY"]) is False
    assert decimal_levels(h.scheme.books["FX_BTC_JPY"].levels(BID)) == decimal_levels(
        clean.scheme.books["FX_BTC_JPY"].levels(BID))
    # an auction execution: bitFlyer sends an empty side (no taker)
    ts, data = next((t, d) for t, d in stream if channel_of(d) == "lightning_executions_XRP_JPY")
    msg = json.loads(data)
    msg["params"]["message"][0]["side"] = ""
    out = h.feed(msg, ts)
    assert [(t.taker_side, t.maker_order_id, t.taker_order_id) for t in of(out, "trades_l3")] == [
        ("", "JRF20211212-230529-124865", "JRF20211212-230529-196525")]


def test_bad_input_is_counted_never_applied():
    stream = frames()
    h = run(stream[:69])
    ts, data = stream[69]
    book = h.scheme.books["FX_BTC_JPY"]
    before = (book.levels(BID), book.levels(ASK))
    bad = json.loads(data)
    bad["params"]["message"]["asks"][0]["price"] = -1
    out = h.feed(bad, ts)
    assert [r.status for r in of(out, "status")] == ["resync"] and of(out, "lob") == []
    assert h.reports[-1][0] == "bitflyer: malformed board message"
    # a malformed snapshot is ignored (bad input), the book waits for a good one
    snap_i = next(i for i in range(69, len(stream)) if channel_of(stream[i][1]) == "lightning_board_snapshot_FX_BTC_JPY")
    bad = json.loads(stream[snap_i][1])
    bad["params"]["message"]["mid_price"] = "x"
    h.feed(bad, stream[snap_i][0])
    assert h.reports[-1][0] == "bitflyer: malformed board snapshot" and "FX_BTC_JPY" in h.scheme.unsynced
    h.feed(stream[snap_i][1], stream[snap_i][0])
    assert "FX_BTC_JPY" not in h.scheme.unsynced and before != (book.levels(BID), book.levels(ASK))
    for frame, kind in [(b"[1]", "bitflyer: not a JSON object"), (b'{"jsonrpc":"1.0","method":"x"}',
                                                                  "bitflyer: unknown message"),
                        (b'{"jsonrpc":"2.0","method":"channelMessage","params":{"channel":"nope","message":1}}',
                         "bitflyer: unknown channel"),
                        (b'{"jsonrpc":"2.0","method":"channelMessage","params":{"channel":"lightning_ticker_BTC_JPY",'
                         b'"message":{"product_code":"BTC_JPY","timestamp":"x","best_bid":1,"best_ask":2,'
                         b'"best_bid_size":1,"best_ask_size":1}}}', "bitflyer: malformed ticker"),
                        (b'{"jsonrpc":"2.0","id":999,"result":true}', "bitflyer: unknown message")]:
        n = h.metrics.errors.total
        h.feed(frame)
        assert h.metrics.errors.total == n + 1 and h.reports[-1][0] == kind, frame


# ------------------------------------------------------------------------------------------------
# simulate + run


def test_simulate_and_run_endpoint_publish_what_replay_does():
    _replay, sink = replay_fixture(CAPTURE, exchange="bitflyer", sink=MemorySink())
    offline = sink.counts()
    symbols = sorted({r.symbol for t, r in sink.records if t != "status"})
    with SimProcess(fixture_path(CAPTURE), "--pace", "fast") as sim:
        r = run_cli("run", "--exchange", "bitflyer", "--endpoint", sim.url, "--rest-endpoint", sim.rest_url,
                    "--sink", "null", "--symbols", ",".join(symbols), "--channels", "lob,trades,trades_l3,ticker",
                    "--max-frames", 1103, "--backoff", "0.01", timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    s = cli_summary(r.stderr)
    assert s["frames"] == 1103 and (s["gaps"], s["resyncs"], s["errors"]) == (0, 0, 0)
    assert {t: n for t, n in s["events"].items() if t != "status"} == {
        t: n for t, n in offline.items() if t != "status"}
