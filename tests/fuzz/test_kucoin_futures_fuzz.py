"""Fuzzing the KuCoin futures scheme with malformed frames and REST answers (hypothesis).

The real stream: the documented capture ``tests/data/kucoin/KUCOIN_FUTURES.ws.1.0`` (the docs'
level-2 worked example, trade, tickerV2, candle, mark price, funding rate), continued by the
level-2 updates 19..24 of the venue test (the documented format over the example's prices). The
first snapshot request is answered with the docs' snapshot (sequence 16); a later one (after a
resync) is left unanswered, so that book stays resynced and empty. Garbage frames
(``atomfast.testing.garbage``: random bytes, truncated, too deep, wrong types, absurd numbers)
go before some real frames. No exception escapes (strict harness); every event is valid for its
schema; non-JSON garbage is counted; at the end the book equals the clean run's, or is resynced
and empty. The REST answers (snapshot, open interest) get the same garbage: counted, never a
book or an event from it.
"""
from __future__ import annotations

import functools
import json

from hypothesis import given
from hypothesis import strategies as st

from atomfast.book import ASK, BID
from atomfast.exchanges.kucoin import KucoinFuturesScheme
from atomfast.testing import (Harness, check_events, feed_with_garbage, fuzz_settings, garbage, is_json,
                              recv_frames)
from tests.venues.test_kucoin_futures import (CAPTURE, DOC_SNAPSHOT, OI, SNAP, STREAM, instruments, l2, xbt_row)

SNAPSHOT = json.dumps({"code": "200000", "data": DOC_SNAPSHOT}).encode()


@functools.lru_cache(maxsize=1)
def stream() -> tuple:
    frames = recv_frames(CAPTURE)
    last = frames[-1][0]
    more = [(last + 1_000_000 * (i + 1), json.dumps(l2(seq, change)).encode()) for i, (seq, change) in
            enumerate(STREAM[2:])]
    return tuple(frames) + tuple(more)


def run(data=None):
    h = Harness(KucoinFuturesScheme, instruments())
    answered: set[str] = set()

    def answer(_i, ts):
        while h.conn.fetches:
            url = h.conn.fetches.pop(0)
            if url == SNAP and url not in answered:
                answered.add(url)
                h.rest(url, SNAPSHOT, ts)

    first = feed_with_garbage(h, list(stream()), data, answer, numeric_strings=True,
                              id_keys=frozenset({"tradeId", "makerOrderId", "takerOrderId", "id"}))
    return h, first


@functools.lru_cache(maxsize=1)
def clean() -> tuple:
    h, _ = run()
    assert (h.metrics.errors.total, h.metrics.gaps, h.metrics.resyncs) == (0, 0, 0)
    assert h.scheme.sync.markets["XBTUSDTM"].last == 24
    book = h.scheme.books["XBTUSDTM"]
    return book.levels(BID), book.levels(ASK)


@fuzz_settings(60)
@given(st.data())
def test_fuzz_frames_of_every_channel(data):
    reference = clean()
    h, first = run(data)
    check_events(h.records[first:])
    book = h.scheme.books.get("XBTUSDTM")
    if book is not None:
        book._validate()
        if "XBTUSDTM" in h.scheme.unsynced:
            assert book.count(BID) == 0 and book.count(ASK) == 0
            assert h.metrics.resyncs >= 1
        else:
            assert (book.levels(BID), book.levels(ASK)) == reference


@fuzz_settings(60)
@given(st.data(), st.sampled_from(["snapshot", "open_interest"]))
def test_fuzz_rest_answers(data, which):
    """A damaged snapshot is never loaded (counted; the book waits for another); a damaged open
    interest answer publishes nothing but what is valid for the schema."""
    h = Harness(KucoinFuturesScheme, instruments())
    seed = SNAPSHOT if which == "snapshot" else json.dumps({"code": "200000", "data": xbt_row()}).encode()
    kind, body = data.draw(garbage(seed, numeric_strings=True))
    before = h.metrics.errors.total
    if which == "snapshot":
        h.feed(l2(*STREAM[0]))
        out = h.rest(SNAP, body)
        book = h.scheme.books.get("XBTUSDTM")
        if book is not None and h.scheme.sync.markets["XBTUSDTM"].live:
            book._validate()  # a damaged copy may still be a valid snapshot: then it is one
        else:
            assert not [t for t, _r in out if t == "lob"]
    else:
        out = h.rest(OI, body)
        assert len(out) <= 1
    check_events(out)
    if not is_json(body):
        assert h.metrics.errors.total > before, (kind, body[:100])
