"""Fuzzing the Bitstamp scheme's decoders with malformed frames (hypothesis).

As ``test_coinbase_fuzz`` (same garbage, same checks): the real stream is ``BITSTAMP.ws.1.0``
(its 7 markets with small books, and all trades; each market's REST snapshot answered from the
recording when the scheme asks for it; a later request, after a resync, with the exchange's
book at that moment from the reference model, ``atomfast.testing.bitstamp_book_at``), or the
generated ``live_orders`` stream (``atomfast.testing.bitstamp_l3_stream``) in the documented
shape. Garbage frames are inserted before some real frames, through the test kit's harness. No exception escapes; every event is valid for its schema;
non-JSON garbage is counted; at the end every book is intact and equals the clean run's
unless it was resynced and not yet rebuilt.
"""
from __future__ import annotations

import functools
import json

from hypothesis import given
from hypothesis import strategies as st

from atomfast.book import ASK, BID
from atomfast.capture import RECV
from atomfast.exchanges.bitstamp import BitstampScheme
from atomfast.testing import (
    ORDER_FEED_GARBAGE,
    T0,
    Harness,
    bitstamp_book_at,
    bitstamp_l3_stream,
    bitstamp_snapshots,
    capture_frames,
    capture_instruments,
    check_events,
    feed_with_garbage,
    fuzz_settings,
)

CAPTURE = "cryptofeed/BITSTAMP.ws.1.0"


#: the markets with small books (ethusd, xrpeur and sgbeur hold thousands of levels: their
#: snapshots would be most of the time of each example)
SMALL = (b"bateur", b"usdteur", b"usdtusd", b"xlmgbp", b"adaeur", b"batbtc", b"galaeur")


@functools.lru_cache(maxsize=1)
def l2_stream() -> tuple:
    return tuple((i, f.ts_ns, f.data) for i, f in enumerate(capture_frames(CAPTURE))
                 if f.kind == RECV and (b'"event":"trade"' in f.data
                                        or f.data.rpartition(b'"channel":"')[2].split(b'"')[0].rpartition(b"_")[2] in SMALL))


def run_l2(data=None):
    h = Harness(BitstampScheme, capture_instruments(CAPTURE, BitstampScheme))
    snaps = bitstamp_snapshots(CAPTURE)
    answered: set[str] = set()
    stream = l2_stream()

    def answer(n, ts):
        while h.conn.fetches:
            url = h.conn.fetches.pop(0)
            pair = url.rsplit("/", 1)[1]
            if pair not in answered:
                answered.add(pair)
                h.rest(url, json.dumps(snaps[pair]).encode(), ts)
            else:
                h.rest(url, bitstamp_book_at(CAPTURE, pair, stream[n][0]), ts)

    first = feed_with_garbage(h, [(ts, frame) for _i, ts, frame in stream], data, answer, **ORDER_FEED_GARBAGE)
    return h, first


@functools.lru_cache(maxsize=1)
def l2_clean() -> dict:
    h, _ = run_l2()
    assert h.metrics.errors.total == 0
    return {p: (b.levels(BID), b.levels(ASK)) for p, b in h.scheme.books.items()}


@fuzz_settings(40)
@given(st.data())
def test_fuzz_diff_order_book_and_trades_capture(data):
    clean = l2_clean()
    h, first = run_l2(data)
    check_events(h.records[first:])
    compared = 0
    for pair, book in h.scheme.books.items():
        book._validate()
        if pair not in h.scheme.unsynced:  # not resynced, or rebuilt since
            assert (book.levels(BID), book.levels(ASK)) == clean[pair], pair
            compared += 1
    assert compared  # (a few garbage frames cannot leave every book reloading)


@functools.lru_cache(maxsize=1)
def orders_stream():
    ref, start, msgs, snaps = bitstamp_l3_stream(seed=5, n=250)
    return start, tuple(json.dumps(m, separators=(",", ":")).encode() for m in msgs), tuple(snaps)


def run_l3(data=None):
    start, msgs, snaps = orders_stream()
    h = Harness(BitstampScheme, capture_instruments(CAPTURE, BitstampScheme), ("lob_l3",))
    h.feed({"event": "bts:subscription_succeeded", "channel": "live_orders_ethusd", "data": {}})
    h.rest(h.conn.fetches.pop(), start)

    def answer(i, _ts):
        if h.conn.fetches:
            h.rest(h.conn.fetches.pop(), snaps[i])

    feed_with_garbage(h, [(T0 + i, m) for i, m in enumerate(msgs)], data, answer, **ORDER_FEED_GARBAGE)
    return h


def _state(book) -> tuple:
    return book.levels(BID), book.levels(ASK), [book.orders_at(s, p) for s in (BID, ASK) for p, _, _ in book.levels(s)]


@functools.lru_cache(maxsize=1)
def l3_clean():
    h = run_l3()
    assert (h.metrics.errors.total, h.metrics.gaps) == (0, 0)
    return _state(h.scheme.l3books["ethusd"])


@fuzz_settings(60)
@given(st.data())
def test_fuzz_live_orders_generated(data):
    h = run_l3(data)
    check_events(h.records)
    book = h.scheme.l3books["ethusd"]
    book._validate()
    if "ethusd" not in h.scheme.unsynced_l3:  # not resynced, or rebuilt since
        assert _state(book) == l3_clean()
