"""Fuzzing the Poloniex spot scheme with malformed frames (hypothesis, ``atomfast.testing.run_fuzz``).

Books are first synced on the real capture ``cryptofeed/POLONIEX.ws.1.0`` (the eleven
``book_lv2`` snapshots), then the following real frames (updates chained by ``lastId``, trades)
are interleaved with garbage: random bytes, truncated frames, oversized frames, JSON nested
deeper than the decoder goes, and copies of a real frame with one field replaced by a value of
another JSON type or an absurd one (a price or size ``"-1"``, ``"1e400"``, ``"9"*40``; an id
``-1`` or ``2**64+1``). After every frame: no exception escapes, every event fits its schema,
every book equals the clean run's (or the run one frame ahead, for garbage made of the next
frame that was still well formed) or is resynced and empty, garbage that is not JSON is counted
as bad input, and each resync is counted once.

A copy with a damaged ``lastId`` or ``id`` breaks the chain: that is a gap, the book resyncs
(which run_fuzz accepts: resynced and empty). The futures scheme shares the book code (only the
field names differ); its documented messages are too few for this test and are covered by the
venue tests.
"""
from __future__ import annotations

from functools import lru_cache

from hypothesis import given
from hypothesis import strategies as st

from atomfast.exchanges.poloniex import PoloniexScheme
from atomfast.testing import capture_instruments, fixture_path, fuzz_settings, recv_frames, run_fuzz

CAPTURE = "cryptofeed/POLONIEX.ws.1.0"


@lru_cache(maxsize=1)
def _stream():
    path = fixture_path(CAPTURE)
    frames = recv_frames(path)
    # every book is synced once the last of the eleven snapshots has come
    prefix = max(i for i, (_, d) in enumerate(frames) if b'"action":"snapshot"' in d) + 1
    return PoloniexScheme, capture_instruments(path, PoloniexScheme), frames, prefix


@fuzz_settings(60)
@given(st.data())
def test_fuzz_book_and_trades_capture(data):
    run_fuzz(_stream(), data, garbage_options={"numeric_strings": True, "id_keys": frozenset({"symbol"})})
