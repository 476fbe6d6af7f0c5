"""Fuzzing the Coinbase scheme's decoders with malformed frames (hypothesis).

Each example replays a real stream -- the first 300 frames of ``COINBASE.ws.28.0`` (level 2,
ticker, matches), or the generated level-3 stream (``atomfast.testing.coinbase_l3_stream``) in
the documented full-channel shapes -- with garbage frames inserted before some real frames:
random bytes, truncated real frames, JSON nested deeper than msgspec goes, and copies of the
real frame (or of the one before) with one field or container replaced by a value of another
JSON type or by an absurd number or string (``1e400``, ``-1``, ``NaN``, ``"9"*40``, ...),
through the test kit's harness (the product's frame driver):

- no exception escapes (the harness fails the test if the driver had to catch one);
- every event is valid for its Avro schema (types, finite doubles, longs in range);
- garbage that is not JSON is counted as bad input;
- at the end every book is intact (``_validate``) and equals the clean run's, unless it was
  resynced (level 2: in ``unsynced``; level 3: waiting for its snapshot).

Damage never makes a well-formed alternative message (a number only becomes an absurd one, a
string an absurd one, an order or trade id only a value of another type, anything else a value
of another type): a different but well-formed message is not bad input. A copy damaged in a
field the scheme does not read is the real message itself: sizes are absolute and level-3
messages are sequenced, so it changes nothing once the real one has been applied.
"""
from __future__ import annotations

import functools
import json

from hypothesis import given
from hypothesis import strategies as st

from atomfast.book import ASK, BID
from atomfast.exchanges.coinbase import CoinbaseScheme
from atomfast.testing import (
    ORDER_FEED_GARBAGE,
    T0,
    Harness,
    capture_instruments,
    check_events,
    coinbase_l3_stream,
    feed_with_garbage,
    fuzz_settings,
    recv_frames,
)

CAPTURE = "cryptofeed/COINBASE.ws.28.0"


def listing() -> dict:
    return capture_instruments(CAPTURE, CoinbaseScheme)


# ------------------------------------------------------------------------------------------------
# level 2, ticker, matches: the real capture


@functools.lru_cache(maxsize=1)
def l2_stream() -> tuple:
    return tuple(recv_frames(CAPTURE)[:300])


@functools.lru_cache(maxsize=1)
def l2_clean() -> dict:
    h = Harness(CoinbaseScheme, instruments=listing())
    h.feed_all(l2_stream())
    assert h.metrics.errors.total == 0
    return {p: (b.levels(BID), b.levels(ASK)) for p, b in h.scheme.books.items()}


@fuzz_settings(40)
@given(st.data())
def test_fuzz_level2_capture(data):
    stream = l2_stream()
    clean = l2_clean()
    h = Harness(CoinbaseScheme, instruments=listing())
    first = feed_with_garbage(h, stream, data, **ORDER_FEED_GARBAGE)  # before it: the clean run's events
    check_events(h.records[first:])
    for product, book in h.scheme.books.items():
        book._validate()
        if product not in h.scheme.unsynced:
            assert (book.levels(BID), book.levels(ASK)) == clean[product], product


# ------------------------------------------------------------------------------------------------
# level 3: the generated full-channel stream


@functools.lru_cache(maxsize=1)
def l3_stream() -> tuple:
    ref, start, msgs, snaps = coinbase_l3_stream(seed=11, steps=150)
    frames = [json.dumps(m, separators=(",", ":")).encode() for m in msgs]
    return start, tuple(frames), tuple(snaps)


def run_l3(frames, snaps, start, data=None):
    h = Harness(CoinbaseScheme, channels=("lob_l3", "trades_l3", "trades"))
    h.feed({"type": "subscriptions", "channels": [{"name": "full", "product_ids": ["BTC-USD"]}]})
    h.rest(h.conn.fetches.pop(), start)

    def answer(i, _ts):
        if h.conn.fetches:  # a resync: the exchange answers with its book as of now
            h.rest(h.conn.fetches.pop(), snaps[i])

    feed_with_garbage(h, [(T0 + i, f) for i, f in enumerate(frames)], data, answer, **ORDER_FEED_GARBAGE)
    return h


@functools.lru_cache(maxsize=1)
def l3_clean():
    start, frames, snaps = l3_stream()
    h = run_l3(frames, snaps, start)
    assert (h.metrics.errors.total, h.metrics.gaps) == (0, 0)
    book = h.scheme.l3books["BTC-USD"]
    return book.levels(BID), book.levels(ASK), sorted((str(o), book.order(o)) for o in _ids(frames, start)
                                                      if o in book)


def _ids(frames, start) -> set:
    ids = {o for side in ("bids", "asks") for _, _, o in start[side]}
    for f in frames:
        m = json.loads(f)
        ids.add(m.get("order_id") or m.get("maker_order_id"))
    return ids


@fuzz_settings(60)
@given(st.data())
def test_fuzz_level3_generated(data):
    start, frames, snaps = l3_stream()
    h = run_l3(frames, snaps, start, data)
    check_events(h.records)
    book = h.scheme.l3books["BTC-USD"]
    book._validate()
    if "BTC-USD" not in h.scheme.unsynced_l3:  # not resynced, or rebuilt since
        got = (book.levels(BID), book.levels(ASK), sorted((str(o), book.order(o)) for o in _ids(frames, start)
                                                          if o in book))
        assert got == l3_clean()
