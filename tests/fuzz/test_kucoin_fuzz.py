"""Fuzzing the KuCoin spot scheme with malformed frames (hypothesis).

The real stream is ``cryptofeed/KUCOIN.ws.1.0`` (its first 1500 received frames: level2 updates
of 9 markets, tickers, trades, candles); each market's first snapshot request is answered with
its recorded REST snapshot (``KUCOIN.http.0.0``); a later request (after a resync) is left
unanswered, so that book stays resynced and empty. Garbage frames (``atomfast.testing.garbage``:
random bytes, truncated, too deep, wrong types, absurd numbers and digit strings) are inserted
before some real frames through the kit's harness. No exception escapes (strict harness); every
event is valid for its schema; non-JSON garbage is counted; at the end every book is intact and
equals the clean run's unless it was resynced and not yet rebuilt.
"""
from __future__ import annotations

import functools
import json

from hypothesis import given
from hypothesis import strategies as st

from atomfast.book import ASK, BID
from atomfast.capture import RECV, open_capture
from atomfast.exchanges.kucoin import KucoinScheme
from atomfast.testing import (Harness, capture_frames, capture_instruments, check_events, feed_with_garbage,
                              fixture_path, fuzz_settings)

CAPTURE = "cryptofeed/KUCOIN.ws.1.0"


@functools.lru_cache(maxsize=1)
def stream() -> tuple:
    return tuple((f.ts_ns, f.data) for f in capture_frames(CAPTURE) if f.kind == RECV)[:1500]


@functools.lru_cache(maxsize=1)
def snapshots() -> dict[str, bytes]:
    rest = open_capture(fixture_path(CAPTURE)).rest
    return {url: answers[0][1] for url, answers in rest.items() if "orderbook" in url}


def run(data=None):
    h = Harness(KucoinScheme, capture_instruments(CAPTURE, KucoinScheme))
    answered: set[str] = set()

    def answer(_i, ts):
        while h.conn.fetches:
            url = h.conn.fetches.pop(0)
            if url not in answered and url in snapshots():
                answered.add(url)
                h.rest(url, snapshots()[url], ts)

    first = feed_with_garbage(h, list(stream()), data, answer, numeric_strings=True,
                              id_keys=frozenset({"tradeId", "makerOrderId", "takerOrderId", "id"}))
    return h, first


@functools.lru_cache(maxsize=1)
def clean() -> dict:
    h, _ = run()
    assert (h.metrics.errors.total, h.metrics.gaps, h.metrics.resyncs) == (0, 0, 0)
    return {n: (b.levels(BID), b.levels(ASK)) for n, b in h.scheme.books.items()}


@fuzz_settings(40)
@given(st.data())
def test_fuzz_level2_trades_ticker_candles_capture(data):
    reference = clean()
    h, first = run(data)
    check_events(h.records[first:])
    compared = 0
    for native, book in h.scheme.books.items():
        book._validate()
        if native in h.scheme.unsynced:
            assert book.count(BID) == 0 and book.count(ASK) == 0
        else:
            assert (book.levels(BID), book.levels(ASK)) == reference[native], native
            compared += 1
    assert compared
    assert h.metrics.resyncs >= len(h.scheme.unsynced)


def test_random_bytes_and_wrong_shapes_are_counted():
    h = Harness(KucoinScheme, capture_instruments(CAPTURE, KucoinScheme))
    for frame in (b"\x00\xff", b"[]", b"{}", b'{"type":1}', b'{"type":"message","subject":"trade.l2update"}',
                  b'{"type":"message","topic":"/market/level2:SNX-BTC","subject":"trade.l2update","data":[]}',
                  json.dumps({"type": "message", "topic": "/market/match:SNX-BTC", "subject": "trade.l3match",
                              "data": {"symbol": "SNX-BTC", "side": "up", "size": "1", "price": "1", "tradeId": "a",
                                       "time": "1"}}).encode()):
        h.feed(frame)
    assert h.metrics.errors.total == 7 and h.records == []
