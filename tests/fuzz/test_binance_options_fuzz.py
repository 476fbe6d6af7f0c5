"""Fuzzing the Binance options scheme with malformed frames (hypothesis), on the documented
messages of ``tests/data/binance_options`` (its README names each one's source).

The stream is the capture's nine frames (an answer, four depth diffs chained by ``pu``, a trade, a
book ticker, a kline, an expiry's open interest); the scheme's REST depth requests are answered
after each real frame: the first with the recorded snapshot, a later one (after a resync) with
what ``/eapi/v1/depth`` would hold then (an independent ``RefBook`` fed the real diffs so far,
``u`` = the last one's). Garbage made of a real frame (the kit's ``garbage``: random bytes,
truncation, nesting, a field of the wrong type or an absurd number, ``ORDER_FEED_GARBAGE``'s
numeric strings) is inserted before one to six real frames (``feed_with_garbage``). No exception
escapes (the harness is strict); every event is valid for its schema; non-JSON garbage is counted;
the book is intact (``_validate``) and, unless it is still resyncing, equals the clean run's.
"""
from __future__ import annotations

import functools
import json

from hypothesis import given
from hypothesis import strategies as st

from atomfast.book import ASK, BID
from atomfast.capture import RECV, open_capture
from atomfast.exchanges.binance_options import BinanceOptionsScheme
from atomfast.testing import (ORDER_FEED_GARBAGE, ROOT, Harness, RefBook, capture_frames, capture_instruments,
                              check_events, feed_with_garbage, fuzz_settings)

CAPTURE = ROOT / "tests" / "data" / "binance_options" / "BINANCE_OPTIONS.ws.1.0"
NATIVE = "BTC-251123-126000-C"
SNAP_URL = f"https://eapi.binance.com/eapi/v1/depth?symbol={NATIVE}&limit=1000"
GARBAGE = {**ORDER_FEED_GARBAGE, "id_keys": frozenset({"t", "id"})}


@functools.lru_cache(maxsize=1)
def stream() -> tuple[tuple[int, bytes], ...]:
    return tuple((f.ts_ns, f.data) for f in capture_frames(CAPTURE) if f.kind == RECV)


@functools.lru_cache(maxsize=1)
def recorded_snapshot() -> bytes:
    return open_capture(CAPTURE).rest_body(SNAP_URL)


@functools.lru_cache(maxsize=8)
def snapshot_after(i: int) -> bytes:
    """``/eapi/v1/depth`` after the real frames up to ``i``: the reference book, ``u`` = the last
    diff's (the recorded snapshot's where no diff came yet)."""
    snap = json.loads(recorded_snapshot())
    ref = RefBook()
    ref.load("b", snap["bids"])
    ref.load("a", snap["asks"])
    u = snap["u"]
    for _ts, frame in stream()[: i + 1]:
        if b"@depth@" in frame[:60]:
            d = json.loads(frame)["data"]
            for side in ("b", "a"):
                for price, size in d[side]:
                    ref.set(side, price, size)
            u = d["u"]
    return json.dumps({"u": u, "bids": [list(x) for x in ref.ordered("b")],
                       "asks": [list(x) for x in ref.ordered("a")]}).encode()


def run(data=None) -> Harness:
    h = Harness(BinanceOptionsScheme, capture_instruments(CAPTURE, BinanceOptionsScheme))
    h.open()
    answered = []

    def answer(i: int, ts: int) -> None:
        while h.conn.fetches:
            url = h.conn.fetches.pop(0)
            if url != SNAP_URL:  # a market garbage named: no such book on the exchange
                h.rest_error(url, OSError("404"), ts)
                continue
            h.rest(url, snapshot_after(i) if answered else recorded_snapshot(), ts)
            answered.append(url)

    feed_with_garbage(h, list(stream()), data, answer, **GARBAGE)
    return h


@functools.lru_cache(maxsize=1)
def clean() -> tuple:
    h = run()
    assert (h.metrics.errors.total, h.metrics.gaps, h.metrics.resyncs) == (0, 0, 0)
    book = h.scheme.books[NATIVE]
    return book.levels(BID), book.levels(ASK)


@fuzz_settings(80)
@given(st.data())
def test_fuzz_documented_stream(data):
    expected = clean()
    h = run(data)
    check_events(h.records)
    book = h.scheme.books.get(NATIVE)
    if book is not None:
        book._validate()
        if NATIVE not in h.scheme.unsynced and h.scheme.sync[NATIVE].live:
            assert (book.levels(BID), book.levels(ASK)) == expected
    assert h.metrics.resyncs >= len(h.scheme.unsynced & {NATIVE})
