"""Fuzzing Kraken's v2 ``level3`` (``lob_l3``) with malformed frames (hypothesis).

The real stream: the documented snapshot and the updates derived from it
(``tests/venues/kraken_l3_stream.py``: provenance and the reference checksums). Each example
feeds a prefix of it, then interleaves the remaining real frames with garbage made of a
neighbouring real frame (``atomfast.testing.garbage``: random bytes, the frame truncated, nested
20000 deep, over the frame size limit, one field or container replaced by a value of another
JSON type or an absurd number: ``1e400``, ``2**64+1``, ``1e-30``). Order ids only get values of
another JSON type (another id would be a well-formed message). After every frame:

- no exception escapes the scheme (the harness fails the test if the frame driver caught one);
- every event is valid for its Avro schema;
- garbage that is not JSON at all is counted as bad input;
- the level-3 book equals the clean run's (or the run one real frame ahead's, when garbage made
  of the next frame applied it early), or it is resynced and empty: never a corrupt book.

A damaged copy of a frame that still parses (a checksum, a price made absurd) is refused whole or
fails the checksum: the book resyncs; nothing of it is published.
"""
from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from atomfast.exchanges.kraken import KrakenSpotScheme
from atomfast.exchanges.kraken.handler import L3_URL
from atomfast.scheme import Instrument
from atomfast.testing import Harness, check_events, fuzz_settings, garbage, is_json

from ..venues.kraken_l3_stream import stream_frames

BTC = {"BTC/USD": Instrument("BTC/USD", "BTC-USD", "spot", "BTC", "USD", 1, 8)}
FRAMES = stream_frames()
LIMIT = 64 * 1024


def harness() -> Harness:
    return Harness(KrakenSpotScheme, BTC, ["lob_l3"], url=L3_URL)


def orders(h: Harness):
    book = h.scheme.l3books.get("BTC/USD")
    if book is None:
        return None
    book._validate()
    # (values, not texts: a damaged copy is re-encoded, 0.50000000 -> 0.5)
    return [(Decimal(price), [(oid, Decimal(size)) for oid, size in book.orders_at(side, price)])
            for side in (0, 1) for price, _t, _n in book.levels(side)]


@fuzz_settings(150)
@given(st.data())
def test_garbage_never_corrupts_the_level3_book(data):
    start = data.draw(st.integers(2, len(FRAMES) - 1), label="start")  # after the snapshot
    faulty, clean, ahead = harness(), harness(), harness()
    for i, frame in enumerate(FRAMES[:start]):
        for h in (faulty, clean, ahead):
            h.feed(frame, 1 + i)
    ahead.feed(FRAMES[start], 1 + start)
    faulty.max_frame_bytes = LIMIT
    steps = data.draw(st.lists(st.booleans(), min_size=1, max_size=20), label="steps (True = garbage)")
    i, early, not_json = start, False, 0
    for is_garbage in steps:
        if is_garbage:
            use_next = i < len(FRAMES) and data.draw(st.booleans(), label="seed: next frame")
            seed = FRAMES[i] if use_next else FRAMES[i - 1]
            kind, frame = data.draw(garbage(seed, LIMIT, id_keys=frozenset({"order_id", "symbol"})), label="garbage")
            early = early or use_next
            before = faulty.metrics.errors.total
            produced = faulty.feed(frame, 1 + i)
            if kind in ("oversize", "deep") or not is_json(frame):
                not_json += 1
                assert faulty.metrics.errors.total > before, (kind, frame[:200])
        elif i < len(FRAMES):
            produced = faulty.feed(FRAMES[i], 1 + i)
            clean.feed(FRAMES[i], 1 + i)
            i += 1
            if i < len(FRAMES):
                ahead.feed(FRAMES[i], 1 + i)
            early = False
        else:
            continue
        check_events(produced)
        mine = orders(faulty)
        if "BTC/USD" in faulty.scheme.unsynced_l3:
            assert mine == []
        else:
            assert mine == orders(clean) or (early and mine == orders(ahead))
    assert faulty.metrics.errors.total >= not_json
    assert clean.metrics.errors.total == 0 and clean.metrics.checksum_failed == 0
