"""Fuzzing the HitBTC v3 / FMFW scheme with malformed frames (hypothesis), with the test kit's
``run_fuzz`` (``atomfast.testing``).

Each example starts from the six books synced on the real capture ``cryptofeed/FMFW.ws.1.0``,
then interleaves the following real frames (``orderbook/full`` updates, ``ticker/1s``) with
garbage: random bytes, truncated real frames, oversized frames, JSON nested 20000 deep, and
copies of a real frame with one field (or container) replaced by a value of another JSON type
or an absurd one (numbers such as ``1e400``, ``-1``, ``2**64+1``; HitBTC writes prices and
sizes as strings, so digit strings are damaged too: ``""``, ``"-1"``, ``"NaN"``, ``"9"*40``).
After every frame: no exception escapes the scheme, every event is valid for its Avro schema,
every book the frame names equals the clean run's book (or the run one frame ahead's, where a
copy of the next frame applied it early) or has been resynced and is empty, and garbage that is
not JSON is counted as bad input. A damaged ``s`` is a gap, a damaged level or time a malformed
book message: each resyncs its book once (``exact_resyncs``).

The documented messages (``tests/data/hitbtc/HITBTC_V3.ws.1.0``: trades, candles, futures info)
are fuzzed field by field too: nothing raises, every event is schema-valid.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from atomfast.exchanges.hitbtc import FmfwScheme, HitbtcScheme
from atomfast.exchanges.hitbtc.parse import guess_instrument, number, rate
from atomfast.testing import (
    Harness,
    capture_instruments,
    check_events,
    check_random_frame,
    fuzz_settings,
    garbage,
    is_json,
    parse_or_none,
    recv_frames,
    run_fuzz,
)

CAPTURE = "cryptofeed/FMFW.ws.1.0"
DOCS = Path(__file__).resolve().parent.parent / "data" / "hitbtc" / "HITBTC_V3.ws.1.0"
GARBAGE = {"numeric_strings": True, "id_keys": frozenset({"i", "L"})}


@lru_cache(maxsize=1)
def fmfw_stream():
    frames = recv_frames(CAPTURE)
    last_snapshot = max(i for i, (_, d) in enumerate(frames) if b'"snapshot"' in d)
    return FmfwScheme, capture_instruments(CAPTURE, FmfwScheme), frames, last_snapshot + 1


@fuzz_settings(60)
@given(data=st.data())
def test_fuzz_fmfw(data):
    run_fuzz(fmfw_stream(), data, garbage_options=GARBAGE, named_only=True)


@fuzz_settings(150)
@given(data=st.data())
def test_fuzz_documented_messages(data):
    """A damaged copy of one documented message after the real ones: schema-valid events only,
    never an exception, not-JSON counted; the books left equal or resynced."""
    frames = recv_frames(DOCS)
    h = Harness(HitbtcScheme, capture_instruments(DOCS, HitbtcScheme))
    h.feed_all(frames)
    seed = data.draw(st.sampled_from([d for _, d in frames]), label="seed")
    kind, bad = data.draw(garbage(seed, None, **GARBAGE), label="garbage")
    before = h.metrics.errors.total
    check_events(h.feed(bad))
    if not is_json(bad):
        assert h.metrics.errors.total > before, (kind, bad[:100])
    for native, book in h.scheme.books.items():
        if native in h.scheme.unsynced:
            assert book.count(0) == book.count(1) == 0
        else:
            book._validate()


@fuzz_settings(200)
@given(frame=st.binary(max_size=400))
def test_random_bytes(frame):
    check_random_frame(frame, HitbtcScheme)


@fuzz_settings(200)
@given(text=st.text(max_size=40))
def test_parsers_raise_nothing_unexpected(text):
    inst = parse_or_none(guess_instrument, text, KeyError)
    assert inst is None or (inst.native == text and inst.symbol)
    x = parse_or_none(number, text)
    assert x is None or 0.0 <= x < 1e17
    y = parse_or_none(rate, text)
    assert y is None or -1e17 < y < 1e17
