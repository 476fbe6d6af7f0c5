"""Kraken spot websocket v2 ``level3`` -> ``lob_l3`` (``KrakenSpotScheme``), on the documented
example and messages derived from it (``kraken_l3_stream``: where each comes from, and the
independent reference model ``RefL3`` whose checksums the derived updates carry).

What is checked: Kraken's level-3 checksum reproduces the guide's worked example exactly; the
snapshot and every update are applied order by order (queue priority kept where Kraken keeps it),
cut to the subscribed depth and verified on every message, the book equal to the reference
after each; a dropped, repeated or reordered update is a checksum mismatch (status ``resync``
``lob_l3: checksum mismatch: ...``), the pair resubscribed and rebuilt from a fresh snapshot equal
to the reference; malformed messages are refused before the book is touched; the token: Kraken's
documented signature vector, the missing-variable error, the token in the subscribe message and
nowhere in what is logged or recorded; the capture replays (and serves ``simulate`` + ``run
--endpoint``, which ask for no token).
"""
from __future__ import annotations

import base64
import json
import logging
import zlib
from decimal import Decimal

import pytest

from atomfast.book import ASK, BID, L3Book
from atomfast.events import LobL3, Spread, Status
from atomfast.exchanges.kraken import KrakenSpotScheme
from atomfast.exchanges.kraken.handler import L3_URL, TOKEN_PATH, api_sign
from atomfast.scheme import Instrument
from atomfast.testing import Harness, replay_fixture

from .kraken_l3_stream import (CAPTURE, DOC_CHECKSUM, RefL3, documented_snapshot, numbers, stream_frames,
                               update_messages)

BTC = {"BTC/USD": Instrument("BTC/USD", "BTC-USD", "spot", "BTC", "USD", 1, 8)}
#: the concatenations printed in the guide (asks, then bids)
DOC_ASKS = ("44939545230839344939511126144939510000044939510000004495001033492644953064537449550250000"
            "449596356300004495963563000044960133807244960288967575449670314392283449785677896044979235630000")
DOC_BIDS = ("449394889686994493944521000044939410000000449394142963234493942500000044939410292988449394338800004493941"
            "281408604493713346877449347356300004493022273429944930210000004493025550000449302700000004493021500000044"
            "928010524044919633870000449195761000044912035630000449097669000044901988982")
T = 1_704_716_805_000_000_000


def harness() -> Harness:
    return Harness(KrakenSpotScheme, BTC, ["lob_l3"], url=L3_URL)


def book_orders(book: L3Book, side: int) -> list[tuple[str, Decimal, Decimal]]:
    return [(oid, Decimal(price), Decimal(size)) for price, _t, _n in book.levels(side)
            for oid, size in book.orders_at(side, price)]


def assert_equal(book: L3Book, ref: RefL3) -> None:
    assert book_orders(book, BID) == ref.orders("bids")
    assert book_orders(book, ASK) == ref.orders("asks")
    book._validate()


# --- the checksum ---------------------------------------------------------------------------------
def test_checksum_reproduces_the_documented_example():
    doc = documented_snapshot()["data"][0]
    assert doc["checksum"] == DOC_CHECKSUM == zlib.crc32((DOC_ASKS + DOC_BIDS).encode())
    for book_scale in (False, True):
        book = L3Book(1, 8)
        for side, orders in ((BID, doc["bids"]), (ASK, doc["asks"])):
            for o in orders:
                book.add(o["order_id"], side, o["limit_price"], o["order_qty"])
        assert book.checksum_kraken(book_scale) == DOC_CHECKSUM
        # an 11th level a side is not in it; queue order is
        book.add("X-BID", BID, "44900.0", "1.00000000")
        book.add("X-ASK", ASK, "44990.0", "1.00000000")
        assert book.checksum_kraken(book_scale) == DOC_CHECKSUM
        book.remove("OFGP5R-B3E7G-54EZD6")
        book.add("OFGP5R-B3E7G-54EZD6", BID, "44939.4", "0.45210000")  # to the back of its level
        assert book.checksum_kraken(book_scale) != DOC_CHECKSUM
    ref = RefL3()
    ref.load(documented_snapshot())
    assert ref.checksum() == DOC_CHECKSUM


def test_checksum_at_the_pairs_precision_writes_dropped_trailing_zeros():
    """JSON numbers drop trailing zeros (0.10000000 arrives as 0.1): at the book's scale the
    text is the pair's precision again."""
    book = L3Book(1, 8)
    book.add("A", ASK, "44939.5", "0.1")
    book.add("B", BID, "44939", "2")
    assert book.checksum_kraken(True) == zlib.crc32(b"449395" b"10000000" b"449390" b"200000000")
    assert book.checksum_kraken(False) == zlib.crc32(b"449395" b"1" b"44939" b"2")


# --- snapshot and updates -------------------------------------------------------------------------
def test_documented_snapshot_builds_the_book_order_by_order():
    h = harness()
    out = h.feed(numbers(documented_snapshot()), T)
    assert [r for t, r in out if t == "status"] == [Status("kraken", "BTC-USD", "snapshot", "lob_l3", T // 10**6, T // 1000)]
    events = [r for t, r in out if t == "lob_l3"]
    assert len(events) == 35
    assert events[0] == LobL3("kraken", "BTC-USD", 44939.4, 0.88968699, "buy", "OTCFZG-YOE2Q-LQKNM3", T // 10**6, T // 1000)
    assert events[-1] == LobL3("kraken", "BTC-USD", 44979.2, 0.3563, "sell", "OFO525-PHRVS-236RMN", T // 10**6, T // 1000)
    assert [r for t, r in out if t == "spread"] == [
        Spread("kraken", "BTC-USD", 44939.4, 3.5578887, 44939.5, 4.53519654, T // 10**6, T // 1000)]
    book = h.scheme.l3books["BTC/USD"]
    assert book.count(BID) == 21 and book.count(ASK) == 14 and book.level_count(BID) == book.level_count(ASK) == 10
    assert book.orders_at(BID, "44930.2")[1] == ("OCIU7J-VB3CI-HPULSF", "0.01000000")
    assert h.metrics.checksum_ok == 1 and h.metrics.errors.total == 0


def test_updates_applied_truncated_and_verified_on_every_message():
    h = harness()
    h.feed(numbers(documented_snapshot()), T)
    updates, final = update_messages()
    ref = RefL3()
    ref.load(documented_snapshot())
    produced = []
    for i, msg in enumerate(updates, 1):
        produced.append(h.feed(numbers(msg), T + i))
        for side in ("bids", "asks"):
            for o in msg["data"][0][side]:
                ref.apply(side, o)
        ref.truncate()
        assert_equal(h.scheme.l3books["BTC/USD"], ref)
    assert_equal(h.scheme.l3books["BTC/USD"], final)
    assert h.metrics.checksum_ok == 7 and h.metrics.checksum_failed == 0 and h.metrics.errors.total == 0
    ms = 1704716806000  # the updates' own timestamps (12:26:46)
    # 2: a partial fill keeps the order first in its queue
    assert h.scheme.l3books["BTC/USD"].orders_at(ASK, "44939.5")[0] == ("OFVLAA-HRSSP-BK75KB", "4.00000000")
    # 4: the new best ask pushes the 11th ask level out: its order published gone
    lob4 = [r for t, r in produced[3] if t == "lob_l3"]
    assert [(r.order_id, r.price, r.size, r.side) for r in lob4] == [
        ("OQ4ADD-AAAAA-BBBBB2", 44939.0, 0.2, "sell"), ("OFO525-PHRVS-236RMN", 44979.2, 0.0, "sell")]
    assert lob4[0].event_timestamp == ms + 0  # "2024-01-08T12:26:46.000004000Z"
    # 5: the amended bid moves to a new best level (11 bid levels: 44901.9 goes)
    lob5 = [(r.order_id, r.price, r.size) for t, r in produced[4] if t == "lob_l3"]
    assert lob5 == [("OSMYPE-S5VOC-YSS3WM", 44939.8, 1.2814086), ("O73C6Y-VZXYA-H4LDFY", 44901.9, 0.0)]
    # 6: a level emptied, the next one published again by Kraken (an add)
    lob6 = [(r.order_id, r.price, r.size) for t, r in produced[5] if t == "lob_l3"]
    assert lob6 == [("OJPMIN-NXZL5-SOWP6V", 44937.1, 0.0), ("O73C6Y-VZXYA-H4LDFY", 44901.9, 0.00088982)]
    spreads = [r for out in produced for t, r in out if t == "spread"]
    assert len(spreads) == 5 and spreads[-1][2:6] == (44939.8, 1.2814086, 44939.0, 0.2)


# --- faults: drop, duplicate, reorder ---------------------------------------------------------------
@pytest.mark.parametrize("fault", ["drop", "duplicate", "reorder"])
def test_fault_is_a_checksum_mismatch_then_rebuilt_from_a_fresh_snapshot(fault):
    updates, final = update_messages()
    order = list(range(len(updates)))
    if fault == "drop":
        order.remove(2)  # update 3 (a new bid at the best level) lost
    elif fault == "duplicate":
        order.insert(3, 1)  # update 2 again after update 3
    else:
        order[2], order[3] = order[3], order[2]  # 4 before 3
    h = harness()
    h.feed(numbers(documented_snapshot()), T)
    statuses = []
    for k, i in enumerate(order, 1):
        statuses += [r for t, r in h.feed(numbers(updates[i]), T + k) if t == "status"]
    assert len(statuses) == 1 and statuses[0].status == "resync"
    assert statuses[0].reason.startswith("lob_l3: checksum mismatch: exchange ")
    assert h.metrics.checksum_failed == 1 and h.metrics.resyncs == 1 and h.metrics.errors.total == 0
    assert h.scheme.l3books["BTC/USD"].count(BID) == 0 and "BTC/USD" in h.scheme.unsynced_l3
    assert h.sent()[-2:] == [
        {"method": "unsubscribe", "params": {"channel": "level3", "symbol": ["BTC/USD"], "depth": 10}},
        {"method": "subscribe", "params": {"channel": "level3", "symbol": ["BTC/USD"], "depth": 10, "snapshot": True}}]
    # the updates still on their way are ignored until the fresh snapshot, which rebuilds the book
    before = len(h.records)
    h.feed(numbers(updates[-1]), T + 100)
    assert len(h.records) == before
    out = h.feed(numbers(final.snapshot("2024-01-08T12:26:47.000000000Z")), T + 200)
    assert [r.reason for t, r in out if t == "status"] == ["lob_l3"]
    assert_equal(h.scheme.l3books["BTC/USD"], final)
    assert "BTC/USD" not in h.scheme.unsynced_l3 and h.metrics.checksum_failed == 1


def test_modify_of_an_order_the_book_lacks_resyncs_a_repeated_delete_changes_nothing():
    h = harness()
    h.feed(numbers(documented_snapshot()), T)
    updates, _ = update_messages()
    h.feed(numbers(updates[0]), T + 1)
    before = h.metrics.checksum_ok
    assert h.feed(numbers({**updates[0], "data": [{**updates[0]["data"][0]}]}), T + 2) == []  # delete again
    assert h.metrics.checksum_ok == before + 1 and h.metrics.resyncs == 0
    ghost = {"channel": "level3", "type": "update", "data": [{"symbol": "BTC/USD", "checksum": 1, "bids": [
        {"event": "modify", "order_id": "OTCFZG-YOE2Q-LQKNM3", "limit_price": "44939.4", "order_qty": "0.1"}], "asks": []}]}
    out = h.feed(numbers(ghost), T + 3)
    assert [r.reason for t, r in out if t == "status"] == [
        "lob_l3: unknown order: modify of order 'OTCFZG-YOE2Q-LQKNM3', not on the book"]
    assert h.metrics.gaps == 1 and h.scheme.l3books["BTC/USD"].count(ASK) == 0


@pytest.mark.parametrize("bad, detail", [
    ({"event": "replace"}, "event 'replace' of 'OQ3ADD-AAAAA-BBBBB1'"),
    ({"order_qty": "-1"}, "'OQ3ADD-AAAAA-BBBBB1': price b'44939.4' qty b'-1'"),
    ({"limit_price": '"44939.4"'}, None),  # a string, not a number: refused by the book's parser
    ({"order_qty": "0.000000001"}, None),  # beyond the pair's 8 decimals
])
def test_malformed_update_refused_whole_before_the_book_is_touched(bad, detail):
    h = harness()
    h.feed(numbers(documented_snapshot()), T)
    updates, _ = update_messages()
    msg = json.loads(json.dumps(updates[2]))
    good = {"event": "delete", "order_id": "OFGP5R-B3E7G-54EZD6", "limit_price": "44939.4", "order_qty": "0"}
    msg["data"][0]["bids"] = [good, {**msg["data"][0]["bids"][0], **bad}]
    out = h.feed(numbers(msg).replace(b'"\\"44939.4\\""', b'"44939.4"'), T + 1)
    (status,) = [r for t, r in out if t == "status"]
    assert status.status == "resync" and status.reason.startswith("lob_l3: malformed level3 message: ")
    if detail:
        assert status.reason == f"lob_l3: malformed level3 message: {detail}"
    assert [t for t, _ in out] == ["status"]  # nothing of it published (the good delete neither)
    assert h.metrics.errors.total == 1 and h.metrics.resyncs == 1


def test_an_order_the_writer_refuses_is_a_malformed_message_and_resyncs():
    """A price within the pair's scale but of 1e15 or more (no market's): the book's checks take
    it, the lob_l3 writer refuses it: counted as a malformed level3 message naming the order, the
    book resynced (it was a NameError, an internal error, before)."""
    h = harness()
    h.feed(numbers(documented_snapshot()), T)
    updates, _ = update_messages()
    msg = json.loads(json.dumps(updates[2]))
    add = {"event": "add", "order_id": "OQ3ADD-AAAAA-BBBBB9", "limit_price": "1000000000000000.0", "order_qty": "1"}
    msg["data"][0]["bids"] = [add]
    out = h.feed(numbers(msg), T + 1)
    assert [r.reason for t, r in out if t == "status"] == [
        "lob_l3: malformed level3 message: 'OQ3ADD-AAAAA-BBBBB9': price b'1000000000000000.0' qty b'1'"]
    assert h.reports[-1][0] == "kraken: malformed level3 message"
    assert h.metrics.errors.total == 1 and h.metrics.resyncs == 1
    assert not any(k.endswith("internal error") for k in h.metrics.errors.counts)


def test_update_before_a_snapshot_and_bad_type_resync():
    h = harness()
    updates, _ = update_messages()
    out = h.feed(numbers(updates[0]), T)
    assert [r.reason for t, r in out if t == "status"] == ["lob_l3: book update before its snapshot"]
    h.feed(numbers(documented_snapshot()), T + 1)
    out = h.feed(json.dumps({"channel": "level3", "type": "delta", "data": [{"symbol": "BTC/USD", "checksum": 1}]}), T + 2)
    assert [r.reason for t, r in out if t == "status"] == ["lob_l3: malformed level3 message: type 'delta'"]
    out = h.feed('{"channel":"level3","type":"update","data":[{"symbol":"BTC/USD","checksum":"x"}]}', T + 3)
    assert out == [] and h.reports[-1][0] == "kraken: malformed level3 message"


# --- authentication -----------------------------------------------------------------------------
def test_api_sign_reproduces_krakens_documented_vector():
    """https://docs.kraken.com/api/docs/guides/spot-rest-auth, the worked example."""
    assert api_sign("/0/private/AddOrder", "1616492376594",
                    "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25",
                    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==") == (
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ==")


KEY = "KEY-marker-7f3a"
SECRET = base64.b64encode(b"SECRET-marker-91c2-" + bytes(range(40))).decode()
TOKEN = "TOKEN-marker-b5e8d0"


def test_lob_l3_needs_the_api_key_named_when_missing(monkeypatch):
    monkeypatch.delenv("KRAKEN_API_KEY", raising=False)
    monkeypatch.delenv("KRAKEN_API_SECRET", raising=False)
    scheme = KrakenSpotScheme(lambda t, r: None, None, BTC, ["BTC-USD"], ["lob", "lob_l3"])
    with pytest.raises(ValueError) as err:
        scheme.plan()
    assert str(err.value) == ("kraken: channel lob_l3 (level3) is authenticated: set KRAKEN_API_KEY and "
                              "KRAKEN_API_SECRET in the environment (a Kraken API key; any permission)")
    monkeypatch.setenv("KRAKEN_API_KEY", KEY)
    with pytest.raises(ValueError, match=r"set KRAKEN_API_SECRET in"):
        scheme.plan()
    # a simulator (an --endpoint of one's own) needs none; without lob_l3 nothing is asked
    assert scheme.plan("ws://127.0.0.1:9") == [("ws://127.0.0.1:9", [("book", ["BTC/USD"]), ("level3", ["BTC/USD"])])]
    plain = KrakenSpotScheme(lambda t, r: None, None, BTC, ["BTC-USD"], ["lob"])
    assert plain.token_path == "" and [p.url for p in plain.plan()] == ["wss://ws.kraken.com/v2"]


def test_token_request_signed_answer_read_token_in_subscribe_and_redacted(monkeypatch, caplog):
    monkeypatch.setenv("KRAKEN_API_KEY", KEY)
    monkeypatch.setenv("KRAKEN_API_SECRET", SECRET)
    scheme = KrakenSpotScheme(lambda t, r: None, None, BTC, ["BTC-USD"], ["lob", "lob_l3"])
    assert scheme.token_path == TOKEN_PATH == "/0/private/GetWebSocketsToken"
    assert [p.url for p in scheme.plan()] == ["wss://ws.kraken.com/v2", L3_URL]
    assert scheme.needs_token(L3_URL) and not scheme.needs_token("wss://ws.kraken.com/v2")
    body, headers = scheme.token_request()
    nonce = body.decode().removeprefix("nonce=")
    assert nonce.isdigit() and headers["API-Key"] == KEY
    assert headers["API-Sign"] == api_sign(TOKEN_PATH, nonce, body.decode(), SECRET)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    with pytest.raises(ValueError) as err:
        scheme.connect_url(b'{"error":["EAPI:Invalid key"]}')
    assert str(err.value) == "GetWebSocketsToken: EAPI:Invalid key"
    assert scheme.connect_url(json.dumps({"error": [], "result": {"token": TOKEN, "expires": 900}}).encode()) == (L3_URL, 0.0)
    (sub,) = scheme.subscribe_messages("level3", ["BTC/USD"])
    assert json.loads(sub) == {"method": "subscribe", "params": {
        "channel": "level3", "symbol": ["BTC/USD"], "depth": 10, "snapshot": True, "token": TOKEN}}
    assert KrakenSpotScheme.redact(sub) == (
        '{"method":"subscribe","params":{"channel":"level3","symbol":["BTC/USD"],"depth":10,"snapshot":true,"token":"***"}}')
    (book,) = scheme.subscribe_messages("book", ["BTC/USD"])
    assert KrakenSpotScheme.redact(book) is book
    # a resync's messages carry it too; the statuses and logs of a session carry no secret
    h = Harness(KrakenSpotScheme, BTC, ["lob_l3"], url=L3_URL)
    h.scheme._token = TOKEN
    with caplog.at_level(logging.DEBUG):
        h.feed(numbers(documented_snapshot()), T)
        h.feed(numbers(update_messages()[0][1]), T + 1)  # update 2 first: a mismatch
    assert [m["params"].get("token") for m in h.sent()] == [TOKEN, TOKEN]
    said = repr(h.records) + caplog.text + repr(h.reports)
    assert "resync" in said and not any(s in said for s in (KEY, SECRET, TOKEN))


# --- the capture: replay, the other channels unaffected -----------------------------------------------
def test_capture_is_the_stream_and_replays_exactly():
    lines = CAPTURE.read_text().splitlines()
    assert [line.split(": ", 1)[1].encode() for line in lines[2:]] == stream_frames()
    replay, sink = replay_fixture(f"repo:{CAPTURE.relative_to(CAPTURE.parents[3])}", exchange="kraken")
    metrics = replay.metrics
    # a replay collects every channel: the level-2 book is among them, so spread is its (none
    # here); a run of lob_l3 alone takes spread from the level-3 book (the next test)
    assert sink.counts() == {"lob_l3": 44, "status": 3}
    assert (metrics.checksum_ok, metrics.checksum_failed, metrics.gaps, metrics.resyncs, metrics.errors.total) == (7, 0, 0, 0, 0)


def test_simulate_and_run_endpoint_need_no_token_and_publish_what_replay_does():
    """``atomfast simulate`` serving the capture, ``atomfast run --channels lob_l3 --endpoint``:
    no key in the environment (an endpoint of one's own asks for no token), the same events as
    the replay; the same run against Kraken's own URL refuses at once, naming the variables."""
    from atomfast.testing import ROOT, SimProcess, cli_summary, run_cli

    replay, sink = replay_fixture(f"repo:{CAPTURE.relative_to(ROOT)}", exchange="kraken")
    env = {"KRAKEN_API_KEY": "", "KRAKEN_API_SECRET": ""}
    with SimProcess(CAPTURE, "--pace", "fast") as sim:
        r = run_cli("run", "--exchange", "kraken", "--symbols", "BTC-USD", "--channels", "lob_l3", "--endpoint",
                    sim.url, "--sink", "stdout", "--max-frames", 8, env=env, timeout=60)
        # Kraken's own websocket (the listing from the simulator): refused before connecting
        refused = run_cli("run", "--exchange", "kraken", "--symbols", "BTC-USD", "--channels", "lob_l3",
                          "--rest-endpoint", sim.rest_url, "--max-frames", 1, env=env, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    s = cli_summary(r.stderr)
    assert s["frames"] == 8 and s["checksum_ok"] == 7 and s["errors"] == 0 and s["resyncs"] == 0
    assert {k: v for k, v in s["events"].items() if k != "status"} == {"lob_l3": 44, "spread": 6}
    lines = [json.loads(ln) for ln in r.stdout.splitlines() if ln]
    first = [x for x in lines if x["topic"] == "lob_l3"][0]
    assert (first["price"], first["size"], first["side"], first["order_id"]) == (
        44939.4, 0.88968699, "buy", "OTCFZG-YOE2Q-LQKNM3")
    assert refused.returncode != 0, refused.stderr[-3000:]
    assert "set KRAKEN_API_KEY and KRAKEN_API_SECRET in the environment" in refused.stderr
