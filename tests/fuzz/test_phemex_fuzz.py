"""Fuzzing the Phemex schemes with malformed frames (hypothesis), with the test kit's
``run_fuzz`` (as the Deribit, BitMEX and Kraken fuzz tests).

The real stream is ``cryptofeed/PHEMEX.ws.1.0`` (scaled-integer books and trades of spot pairs
and contracts, with three periodic snapshots), from the point where every book is loaded.
Garbage (random bytes, truncated frames, oversized ones, JSON nested 20000 deep, copies of a
real frame with one field replaced by a value of another type or an absurd number) is
interleaved with the real frames. After every frame: no exception escapes, every event is valid
for its schema, every book equals the clean run's (or the run one frame ahead's) or has been
resynced and is empty, and garbage that is not JSON is counted as bad input. A resynced book may
be rebuilt by a later periodic snapshot (``exact_resyncs=False``).

The USDT-M messages (strings, the 24-hour pack) are fuzzed from the documented messages of
``tests/data/phemex/PHEMEX_FUTURES.ws.1.0``: every garbage copy of one is refused or counted,
never raises, and every event stays valid.
"""
from __future__ import annotations

from functools import lru_cache

from hypothesis import given
from hypothesis import strategies as st

from atomfast.exchanges.phemex import PhemexFuturesScheme, PhemexScheme
from atomfast.exchanges.phemex.parse import guess_instrument, scaled_text
from atomfast.testing import (ROOT, Harness, capture_instruments, check_events, check_random_frame, fuzz_settings,
                              garbage, is_json, parse_or_none, recv_frames, run_fuzz)

CAPTURE = "cryptofeed/PHEMEX.ws.1.0"
FUTURES = ROOT / "tests" / "data" / "phemex" / "PHEMEX_FUTURES.ws.1.0"


@lru_cache(maxsize=1)
def phemex_stream():
    frames = recv_frames(CAPTURE)
    first_snapshots = [i for i, (_, d) in enumerate(frames) if b'"book"' in d and b'"snapshot"' in d][:10]
    return PhemexScheme, capture_instruments(CAPTURE, PhemexScheme), frames, first_snapshots[-1] + 1


@fuzz_settings(60)
@given(data=st.data())
def test_fuzz_phemex_capture(data):
    run_fuzz(phemex_stream(), data, named_only=True, exact_resyncs=False)


@fuzz_settings(150)
@given(data=st.data())
def test_fuzz_phemex_futures_documented(data):
    frames = recv_frames(FUTURES)
    h = Harness(PhemexFuturesScheme, capture_instruments(FUTURES, PhemexFuturesScheme))
    cut = data.draw(st.integers(0, len(frames) - 1))
    for ts, frame in frames[:cut]:
        check_events(h.feed(frame, ts))
    kind, bad = data.draw(garbage(frames[cut][1], numeric_strings=True))
    before = h.metrics.errors.total
    check_events(h.feed(bad, frames[cut][0]))
    if not is_json(bad):
        assert h.metrics.errors.total > before
    for ts, frame in frames[cut:]:
        check_events(h.feed(frame, ts))
    book = h.scheme.books.get("BTCUSDT")
    if book is not None:
        book._validate()


@fuzz_settings(200)
@given(frame=st.binary(max_size=400))
def test_random_bytes(frame):
    check_random_frame(frame, PhemexScheme)


@fuzz_settings(200)
@given(name=st.text(max_size=40), n=st.integers(-2**70, 2**70), scale=st.integers(0, 18))
def test_parsers_raise_nothing_unexpected(name, n, scale):
    inst = parse_or_none(guess_instrument, name, KeyError)
    assert inst is None or (inst.symbol and inst.native == name)
    out = parse_or_none(lambda v: scaled_text(v, scale), n, ValueError)
    assert (out is None) == (not 0 <= n < 2**63)
    assert out is None or int(out.replace(".", "")) == n
