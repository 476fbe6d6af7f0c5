"""Fuzzing the Bitstamp scheme's decoders with malformed frames (hypothesis).

As ``test_coinbase_fuzz`` (same garbage, same checks): the real stream is ``BITSTAMP.ws.1.0``
(its 7 markets with small books, and all trades; each market's REST snapshot answered from the
recording when the scheme asks for it; a later request, after a resync, with the exchange's
book at that moment from the reference model of ``test_bitstamp``), or the generated ``live_orders`` stream of
``test_bitstamp`` in the documented shape. Garbage frames are inserted before some real frames;
``on_frame`` is called directly. No exception escapes; every event is valid for its schema;
non-JSON garbage is counted; at the end every book is intact and equals the clean run's
unless it was resynced and not yet rebuilt.
"""
from __future__ import annotations

import functools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from atomfast.book import ASK, BID
from atomfast.capture import RECV
from tests.test_bitstamp import Harness, frames, l3_stream, listing, model_until, recorded_snapshots
from tests.test_coinbase_fuzz import _EXAMPLES, SETTINGS, check_all_events, feed_checked, garbage


#: the markets with small books (ethusd, xrpeur and sgbeur hold thousands of levels: their
#: snapshots would be most of the time of each example)
SMALL = (b"bateur", b"usdteur", b"usdtusd", b"xlmgbp", b"adaeur", b"batbtc", b"galaeur")


@functools.lru_cache(maxsize=1)
def l2_stream() -> tuple:
    return tuple((i, f.ts_ns, f.data) for i, f in enumerate(frames())
                 if f.kind == RECV and (b'"event":"trade"' in f.data
                                        or f.data.rpartition(b'"channel":"')[2].split(b'"')[0].rpartition(b"_")[2] in SMALL))


def run_l2(data=None):
    h = Harness(instruments=listing())
    snaps = recorded_snapshots()
    answered: set[str] = set()
    stream = l2_stream()
    spots = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), min_size=1, max_size=6))) if data else []
    first = None
    for n, (i, ts, frame) in enumerate(stream):
        if spots and spots[0] == n:
            spots.pop(0)
            if first is None:
                first = len(h.sink.records)
            kind, bad = data.draw(garbage(stream[n - data.draw(st.integers(0, 1))][2]))
            feed_checked(h, bad, ts, kind)
        feed_checked(h, frame, ts)
        while h.conn.fetches:
            url = h.conn.fetches.pop(0)
            pair = url.rsplit("/", 1)[1]
            if pair not in answered:
                answered.add(pair)
                h.rest(url, json.dumps(snaps[pair]).encode(), ts)
            else:
                h.rest(url, model_until(pair, i), ts)
    return h, first or 0


@functools.lru_cache(maxsize=1)
def l2_clean() -> dict:
    h, _ = run_l2()
    assert h.metrics.errors.total == 0
    return {p: (b.levels(BID), b.levels(ASK)) for p, b in h.scheme.books.items()}


@settings(SETTINGS, max_examples=_EXAMPLES or 40)
@given(st.data())
def test_fuzz_diff_order_book_and_trades_capture(data):
    clean = l2_clean()
    h, first = run_l2(data)
    check_all_events(h, first)
    for pair, book in h.scheme.books.items():
        book._validate()
        if h.scheme.l2[pair].buffer is None:
            assert (book.levels(BID), book.levels(ASK)) == clean[pair], pair


@functools.lru_cache(maxsize=1)
def orders_stream():
    ref, start, msgs, snaps = l3_stream(seed=5, n=250)
    return start, tuple(json.dumps(m, separators=(",", ":")).encode() for m in msgs), tuple(snaps)


def run_l3(data=None):
    start, msgs, snaps = orders_stream()
    h = Harness(channels=("lob_l3",), instruments=listing())
    h.feed({"event": "bts:subscription_succeeded", "channel": "live_orders_ethusd", "data": {}})
    h.rest(h.conn.fetches.pop(), start)
    spots = sorted(data.draw(st.sets(st.integers(1, len(msgs) - 1), min_size=1, max_size=6))) if data else []
    for i, frame in enumerate(msgs):
        if spots and spots[0] == i:
            spots.pop(0)
            kind, bad = data.draw(garbage(msgs[i - data.draw(st.integers(0, 1))]))
            feed_checked(h, bad, 1_700_000_000_000_000_000 + i, kind)
        feed_checked(h, frame, 1_700_000_000_000_000_000 + i)
        if h.conn.fetches:
            h.rest(h.conn.fetches.pop(), snaps[i])
    return h


def _state(book) -> tuple:
    return book.levels(BID), book.levels(ASK), [book.orders_at(s, p) for s in (BID, ASK) for p, _, _ in book.levels(s)]


@functools.lru_cache(maxsize=1)
def l3_clean():
    h = run_l3()
    assert (h.metrics.errors.total, h.metrics.gaps) == (0, 0)
    return _state(h.scheme.l3["ethusd"].book)


@SETTINGS
@given(st.data())
def test_fuzz_live_orders_generated(data):
    h = run_l3(data)
    check_all_events(h)
    sync = h.scheme.l3["ethusd"]
    sync.book._validate()
    if sync.buffer is None:
        assert _state(sync.book) == l3_clean()
