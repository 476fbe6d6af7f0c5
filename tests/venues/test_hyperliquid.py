"""Hyperliquid: perpetuals (``hyperliquid``) and spot (``hyperliquid-spot``).

Data (tests/data/hyperliquid/README.md says where each message comes from): a capture-format file
of documented and recorded messages (the BTC ``l2Book`` documentation example, a real DYDX and a
real BTC snapshot, a documented trade, a real ``activeAssetCtx``, a real candle, the recorded
``meta`` listing), and the gitbook's ``spotMeta`` example.

The book rule is checked against an independent model (json + Decimal, plain dicts): each
``l2Book`` is a whole snapshot, turned into the level changes against the previous one. The
fault tests run on snapshots DERIVED from the recorded DYDX one (levels removed, times advanced
by 0.5 s, as the venue pushes them; one with its best ask moved onto the best bid to cross it):
a lost snapshot changes nothing (the next is whole), a repeated or reordered one is stale
(counted, the book keeps the newer one), a crossed one is refused (status ``resync``) and the
next one reloads the book equal to the reference.
"""
from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import pytest

from atomfast import collector
from atomfast.events import BUY, SELL
from atomfast.exchanges.hyperliquid import HyperliquidScheme, HyperliquidSpotScheme
from atomfast.exchanges.hyperliquid.parse import parse_meta, parse_spot_meta
from atomfast.kit.endpoints import Post, Routes
from atomfast.testing import (Harness, RefBook, SimProcess, T0, capture_instruments, check_events, cli_summary,
                              fixture_path, recv_frames, replay_fixture, run_cli)

CAPTURE = "repo:tests/data/hyperliquid/HYPERLIQUID.ws.1.0"
DATA = Path(__file__).resolve().parents[1] / "data" / "hyperliquid"


def frames() -> list[tuple[int, bytes]]:
    return recv_frames(CAPTURE)


def instruments() -> dict:
    return capture_instruments(CAPTURE, HyperliquidScheme)


def payload(i: int) -> dict:
    return json.loads(frames()[i][1])


# --------------------------------------------------------------------------------------------------
# the capture, against an independent model


def model(recorded):
    """lob rows (symbol, price, size, side, time) as Decimal, per l2Book frame, from the raw
    frames: a market's first snapshot is all its levels; a later one the changed and new levels
    (as sent) then the gone ones (size 0), bids first."""
    books: dict[str, dict[str, dict[Decimal, Decimal]]] = {}
    rows = []
    for _ts, data in recorded:
        msg = json.loads(data)
        if msg.get("channel") != "l2Book":
            continue
        d = msg["data"]
        coin, (bids, asks) = d["coin"], d["levels"]
        old = books.get(coin)
        new = {"buy": {Decimal(lv["px"]): Decimal(lv["sz"]) for lv in bids},
               "sell": {Decimal(lv["px"]): Decimal(lv["sz"]) for lv in asks}}
        symbol = f"{coin.upper()}-USD-PERP"
        for side in ("buy", "sell"):
            before = old[side] if old else {}
            for p, s in new[side].items():
                if before.get(p) != s:
                    rows.append((symbol, p, s, side, d["time"]))
            rows.extend((symbol, p, Decimal(0), side, d["time"]) for p in before if p not in new[side])
        books[coin] = new
    return rows, books


@pytest.fixture(scope="module")
def replayed():
    return replay_fixture(fixture_path(CAPTURE), exchange="hyperliquid")


def test_capture_replays_as_the_model_says(replayed):
    replay, sink = replayed
    rows, books = model(frames())
    assert len(rows) == 70
    got = [(r.symbol, Decimal(repr(r.price)), Decimal(repr(r.size)), r.side, r.event_timestamp)
           for r in sink.events("lob")]
    assert got == rows
    assert sink.counts() == {"candle": 1, "funding_rate": 1, "lob": 70, "open_interest": 1, "spread": 3,
                             "status": 4, "trades": 1, "trades_l3": 1}
    assert replay.metrics.errors.total == 0 and replay.metrics.gaps == 0 and replay.metrics.resyncs == 0
    scheme = replay.scheme
    for coin, sides in books.items():
        for side, name in ((0, "buy"), (1, "sell")):
            assert {Decimal(p): Decimal(s) for p, s in scheme.books[coin].levels(side)} == sides[name]
    assert [(s.symbol, s.status) for s in sink.events("status")] == [
        ("", "connected"), ("BTC-USD-PERP", "subscribed"), ("BTC-USD-PERP", "snapshot"), ("DYDX-USD-PERP", "snapshot")]
    check_events(sink.records)


def test_spreads_exact(replayed):
    _replay, sink = replayed
    assert [(s.symbol, s.bid_price, s.bid_size, s.ask_price, s.ask_size, s.event_timestamp)
            for s in sink.events("spread")] == [
        ("BTC-USD-PERP", 98450.5, 2.5, 98451.0, 1.5, 1703875200000),
        ("DYDX-USD-PERP", 2.111, 134.4, 2.1124, 352.3, 1689630203930),
        ("BTC-USD-PERP", 110427.0, 4.11882, 110428.0, 3.72573, 1761786491067)]


def test_trade_values(replayed):
    _replay, sink = replayed
    atom = 1_700_000_000_500_000
    assert sink.events("trades") == [("hyperliquid", "BTC-USD-PERP", 90058.0, 0.00012, BUY, "907188554740561",
                                      1767878803102, atom)]
    # side B: the taker bought; users = [buyer, seller]: the seller is the maker
    assert sink.events("trades_l3") == [("hyperliquid", "BTC-USD-PERP", 90058.0, 0.00012, BUY, "907188554740561",
                                         "0x13558be785661958932ceac35ba20de187275a42",
                                         "0xb08ed6f6ad7b22138d4db6d0549efcf1f5e51767", 1767878803102, atom)]


def test_sell_side_trade_maps_the_buyer_as_maker():
    """The documented trade with ``side`` "A" (the taker sold): the taker is the seller."""
    msg = payload(4)
    msg["data"][0]["side"] = "A"
    h = Harness(HyperliquidScheme, instruments())
    (t,) = h.feed(msg)[-1:]
    assert t[0] == "trades_l3"
    assert t[1].taker_side == SELL
    assert (t[1].maker_order_id, t[1].taker_order_id) == ("0xb08ed6f6ad7b22138d4db6d0549efcf1f5e51767",
                                                          "0x13558be785661958932ceac35ba20de187275a42")


def test_funding_and_open_interest(replayed):
    _replay, sink = replayed
    recv_ms = 1_700_000_000_600
    (f,) = sink.events("funding_rate")
    assert tuple(f) == ("hyperliquid", "RENDER-USD-PERP", 4.919, 0.0000125, 1_700_002_800_000, 0.0, recv_ms,
                        recv_ms * 1000)
    (oi,) = sink.events("open_interest")
    assert tuple(oi) == ("hyperliquid", "RENDER-USD-PERP", 231067.2, recv_ms, recv_ms * 1000)


def test_candle(replayed):
    _replay, sink = replayed
    (c,) = sink.events("candle")
    assert tuple(c) == ("hyperliquid", "KPEPE-USD-PERP", 1684699200000, 1684702800000, "1h", 709, False, 0.001601,
                        0.001616, 0.001601, 0.001604, 520665683.0, 1_700_000_000_700, 1_700_000_000_700_000)


def test_trades_repeated_on_resubscribing_are_not_published_again():
    h = Harness(HyperliquidScheme, instruments())
    assert len(h.feed(payload(4))) == 2
    assert h.feed(payload(4)) == []
    assert h.metrics.errors.total == 0


# --------------------------------------------------------------------------------------------------
# listings, subscriptions, endpoints


def test_perpetual_listing():
    inst = parse_meta((DATA / "HYPERLIQUID.0").read_text().split(": ", 1)[1].splitlines()[0].encode())
    assert len(inst) == 28
    assert inst["BTC"].symbol == "BTC-USD-PERP" and inst["BTC"].size_decimals == 5 and inst["BTC"].quote == "USD"
    assert inst["kPEPE"].symbol == "KPEPE-USD-PERP" and inst["kPEPE"].size_decimals == 0
    assert inst["DYDX"].price_decimals == 8 and inst["DYDX"].kind == "perp"
    # nautilus_trader's re-serialised sample writes the absent flags as null
    sample = (b'{"universe":[{"isDelisted":null,"marginTableId":56,"maxLeverage":40,"name":"BTC",'
              b'"onlyIsolated":null,"szDecimals":5}]}')
    assert parse_meta(sample)["BTC"].symbol == "BTC-USD-PERP"


def test_spot_listing():
    inst = parse_spot_meta((DATA / "spot_meta.json").read_bytes())
    assert {k: (v.symbol, v.kind, v.size_decimals) for k, v in inst.items()} == {
        "PURR/USDC": ("PURR-USDC", "spot", 0), "@1": ("HFUN-USDC", "spot", 2)}
    h = Harness(HyperliquidSpotScheme, inst)
    assert h.scheme.instrument("@1").symbol == "HFUN-USDC"
    with pytest.raises(KeyError):
        h.scheme.guess_instrument("@7")  # an index says nothing of its tokens


def test_names_that_are_no_coin_are_refused():
    h = Harness(HyperliquidScheme, instruments())
    for coin in ("x", "NaN", "inf", "", "9" * 40, "BTC-USD"):
        msg = payload(4)
        msg["data"][0]["coin"] = coin
        assert h.feed(msg) == []
    assert h.metrics.errors.total == 6 and not h.scheme.books


def test_subscriptions_ping_endpoints():
    h = Harness(HyperliquidScheme, instruments(), channels=["lob", "trades", "funding_rate", "candle"],
                symbols=["BTC-USD-PERP", "KPEPE-USD-PERP"])
    (plan,) = h.scheme.plan()
    h.conn.plan = plan
    h.open()
    assert h.sent() == [
        {"method": "subscribe", "subscription": {"type": "l2Book", "coin": "BTC"}},
        {"method": "subscribe", "subscription": {"type": "l2Book", "coin": "kPEPE"}},
        {"method": "subscribe", "subscription": {"type": "trades", "coin": "BTC"}},
        {"method": "subscribe", "subscription": {"type": "trades", "coin": "kPEPE"}},
        {"method": "subscribe", "subscription": {"type": "activeAssetCtx", "coin": "BTC"}},
        {"method": "subscribe", "subscription": {"type": "activeAssetCtx", "coin": "kPEPE"}},
        {"method": "subscribe", "subscription": {"type": "candle", "coin": "BTC", "interval": "1m"}},
        {"method": "subscribe", "subscription": {"type": "candle", "coin": "kPEPE", "interval": "1m"}}]
    assert json.loads(h.scheme.ping_message()) == {"method": "ping"}
    assert HyperliquidScheme.ws_url == "wss://api.hyperliquid.xyz/ws"
    assert HyperliquidScheme.instruments_paths == ("/info",) == HyperliquidSpotScheme.instruments_paths
    assert HyperliquidScheme.rest_endpoint.routes.instrument_bodies == (b'{"type":"meta"}',)
    assert HyperliquidSpotScheme.rest_endpoint.routes.instrument_bodies == (b'{"type":"spotMeta"}',)


def test_control_frames():
    h = Harness(HyperliquidScheme, instruments())
    assert h.feed(b'{"channel":"pong"}') == []
    assert h.feed(b'{"channel":"error","data":"Invalid subscription {\\"type\\":\\"l2Book\\"}"}') == []
    assert h.reports[-1][0] == "hyperliquid: exchange error"
    # a frame whose channel does not lead is read all the same
    moved = json.dumps({"data": payload(4)["data"], "channel": "trades"}, separators=(",", ":"))
    assert [t for t, _r in h.feed(moved)] == ["trades", "trades_l3"]
    assert h.feed(b'{"channel":"somethingNew","data":{}}') == []
    assert h.reports[-1][0] == "hyperliquid: unknown channel"
    assert h.feed(b"Websocket connection established.") == []
    assert h.metrics.errors.total == 3


def test_kit_post_routes():
    r = Routes(instruments=("/a", Post("/info", b'{"type":"meta"}')))
    assert r.instrument_paths == ("/a", "/info") and r.instrument_bodies == (None, b'{"type":"meta"}')
    assert Routes(instruments="/a").instrument_bodies == (None,)
    assert Routes(instruments=Post("/info")).instrument_paths == ("/info",)


def test_collector_posts_a_post_listing(monkeypatch):
    """``resolve`` POSTs a ``Post`` listing's body to its URL (and GETs nothing)."""
    from atomfast import rest

    calls = []
    body = (DATA / "HYPERLIQUID.0").read_text().split(": ", 1)[1].splitlines()[0].encode()

    async def post(url, data=b"{}", *a, **kw):
        calls.append((url, data))
        return body

    async def fetch(url, *a, **kw):
        raise AssertionError(f"GET {url}")

    monkeypatch.setattr(rest, "post", post)
    monkeypatch.setattr(rest, "fetch", fetch)
    setup = collector.Setup("run", "hyperliquid", None, [], [], None, None, scheme_cls=HyperliquidScheme)
    asyncio.run(collector.resolve(setup))
    assert calls == [("https://api.hyperliquid.xyz/info", b'{"type":"meta"}')]
    assert setup.instruments["BTC"].symbol == "BTC-USD-PERP" and len(setup.instruments) == 28
    assert setup.listings == [("https://api.hyperliquid.xyz/info", body)]


# --------------------------------------------------------------------------------------------------
# the snapshot rule: derived snapshots of the recorded DYDX book


def derived():
    """S1: the recorded DYDX snapshot; S2: S1 without its best bid, 0.5 s later; S3: S2 without its
    best ask, 0.5 s later; X: S1 with its best ask moved onto the best bid's price (crossed)."""
    s1 = payload(2)
    t = s1["data"]["time"]
    s2 = json.loads(json.dumps(s1))
    s2["data"]["time"] = t + 500
    del s2["data"]["levels"][0][0]
    s3 = json.loads(json.dumps(s2))
    s3["data"]["time"] = t + 1000
    del s3["data"]["levels"][1][0]
    x = json.loads(json.dumps(s1))
    x["data"]["time"] = t + 500
    x["data"]["levels"][1][0]["px"] = x["data"]["levels"][0][0]["px"]
    return s1, s2, s3, x


def ref(snapshot) -> RefBook:
    r = RefBook("buy", "sell")
    bids, asks = snapshot["data"]["levels"]
    r.load("buy", [(lv["px"], lv["sz"]) for lv in bids])
    r.load("sell", [(lv["px"], lv["sz"]) for lv in asks])
    return r


def assert_book(h: Harness, snapshot) -> None:
    r = ref(snapshot)
    book = h.scheme.books["DYDX"]
    assert [(Decimal(p), Decimal(s)) for p, s in book.levels(0)] == r.levels("buy")
    assert [(Decimal(p), Decimal(s)) for p, s in book.levels(1)] == r.levels("sell")


def run(*snaps):
    h = Harness(HyperliquidScheme, instruments(), strict=True)
    out = [h.feed(s, T0 + i * 1_000_000) for i, s in enumerate(snaps)]
    return h, out


def test_in_order_each_snapshot_is_its_changes():
    s1, s2, s3, _x = derived()
    h, (a, b, c) = run(s1, s2, s3)
    assert [t for t, _r in a].count("lob") == 40
    assert [(t, r.price, r.size, r.side) for t, r in b if t == "lob"] == [("lob", 2.111, 0.0, BUY)]
    assert [(t, r.price, r.size, r.side) for t, r in c if t == "lob"] == [("lob", 2.1124, 0.0, SELL)]
    assert [tuple(r)[2:6] for t, r in c if t == "spread"] == [(2.1105, 141.1, 2.1125, 364.9)]
    assert_book(h, s3)
    assert h.metrics.errors.total == 0


def test_lost_snapshot_changes_nothing():
    s1, _s2, s3, _x = derived()
    h, (_a, c) = run(s1, s3)
    assert sorted((r.price, r.size, r.side) for t, r in c if t == "lob") == [(2.111, 0.0, BUY), (2.1124, 0.0, SELL)]
    assert_book(h, s3)
    assert h.metrics.errors.total == 0 and h.metrics.resyncs == 0 and h.metrics.gaps == 0


def test_repeated_snapshot_is_stale():
    s1, s2, s3, _x = derived()
    h, (_a, _b, again, _c) = run(s1, s2, s2, s3)
    assert again == []
    assert [k for k, _d, _s in h.reports] == ["hyperliquid: stale l2Book"]
    assert_book(h, s3)
    assert h.metrics.resyncs == 0 and [r.status for r in h.events("status")] == ["snapshot"]


def test_reordered_snapshot_is_stale_and_the_book_keeps_the_newer():
    s1, s2, s3, _x = derived()
    h, (_a, _c, late) = run(s1, s3, s2)
    assert late == []
    assert [k for k, _d, _s in h.reports] == ["hyperliquid: stale l2Book"]
    assert_book(h, s3)


def test_crossed_snapshot_resyncs_and_the_next_reloads():
    s1, _s2, s3, x = derived()
    h, (_a, crossed, c) = run(s1, x, s3)
    assert [(t, r.status, r.reason) for t, r in crossed] == [
        ("status", "resync", "crossed snapshot: bid 2.111 >= ask 2.111")]
    assert [k for k, _d, _s in h.reports] == ["hyperliquid: crossed l2Book"]
    assert h.metrics.resyncs == 1
    assert [(t, r.status) for t, r in c if t == "status"] == [("status", "snapshot")]
    assert [t for t, _r in c].count("lob") == 38
    assert_book(h, s3)
    assert not h.scheme.unsynced


def test_malformed_snapshot_is_counted_and_the_book_kept():
    s1, s2, _s3, _x = derived()
    bad = json.loads(json.dumps(s2))
    bad["data"]["levels"][1][3]["sz"] = "-1"
    h, (_a, got) = run(s1, bad)
    assert got == [] and [k for k, _d, _s in h.reports] == ["hyperliquid: malformed l2Book"]
    assert_book(h, s1)
    assert h.feed(s2, T0 + 9_000_000) and h.metrics.errors.total == 1
    assert_book(h, s2)


def test_reconnect_reloads_with_a_snapshot():
    s1, s2, _s3, _x = derived()
    h = Harness(HyperliquidScheme, instruments(), symbols=["DYDX-USD-PERP"], channels=["lob"])
    (plan,) = h.scheme.plan()
    h.conn.plan = plan
    h.feed(s1)
    h.close()
    got = h.feed(s1, T0 + 1)  # the new connection's first snapshot (the same time: not stale)
    assert [(t, r.status) for t, r in got if t == "status"] == [("status", "snapshot")]
    assert [t for t, _r in got].count("lob") == 40
    assert_book(h, s1)
    h.feed(s2, T0 + 2)
    assert_book(h, s2)


# --------------------------------------------------------------------------------------------------
# simulate + run


def test_simulate_and_run(replayed):
    """``atomfast simulate`` (with its REST listener, which answers the listing's POST) + ``atomfast
    run --endpoint``: the network path publishes what the replay does."""
    _replay, sink = replayed
    with SimProcess(fixture_path(CAPTURE), "--rest-port", 0, "--rate", 20) as sim:
        r = run_cli("run", "--exchange", "hyperliquid", "--endpoint", sim.url, "--rest-endpoint", sim.rest_url,
                    "--sink", "null", "--symbols", "BTC-USD-PERP,DYDX-USD-PERP,KPEPE-USD-PERP",
                    "--channels", "lob,trades,trades_l3,funding_rate,open_interest,candle",
                    "--max-frames", 8, "--backoff", "0.01", timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    s = cli_summary(r.stderr)
    assert s["frames"] == 8 and s["errors"] == 0 and s["gaps"] == 0 and s["resyncs"] == 0
    assert {t: n for t, n in s["events"].items() if t != "status"} == {
        t: n for t, n in sink.counts().items() if t != "status"}
