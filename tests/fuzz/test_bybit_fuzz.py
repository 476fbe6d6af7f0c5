"""Fuzzing the Bybit linear scheme with malformed frames (hypothesis): the same garbage and checks
as ``test_deribit_fuzz.py`` (``atomfast.testing.run_fuzz``: random bytes, truncated and oversized
frames, JSON nested deeper than a decoder goes, copies of a real frame with one field replaced by a
value of another JSON type or an absurd number or string), on ``tests/data/bybit/BYBIT_LINEAR.ws.1.0``:
Bybit's real ``orderbook.500.XRPUSDT`` archive (snapshot + 49 deltas) followed by documented
trade, ticker, kline and liquidation messages (see tests/venues/test_bybit.py for their sources).

Bybit writes its numbers as strings: digit strings are damaged as numbers too
(``numeric_strings``); the trade id ``i`` only into values of another JSON type (another id would be
a well-formed trade). A damaged ``u`` is a lost delta to Bybit's rule: the book resyncs, never stays
wrong. After every frame each book equals the clean run's (or the run one frame ahead's), or is
resynced and empty; every event is valid for its schema; garbage that is not JSON is counted.
"""
from __future__ import annotations

from functools import lru_cache

from hypothesis import given
from hypothesis import strategies as st

from atomfast.exchanges.bybit import BybitLinearScheme, BybitOptionsScheme, BybitSpotScheme
from atomfast.exchanges.bybit.parse import name_instrument, number, option_instrument, signed
from atomfast.testing import (ABSURD_STRINGS, ROOT, capture_instruments, check_random_frame, fuzz_settings,
                              parse_or_none, recv_frames, run_fuzz)

CAPTURE = ROOT / "tests" / "data" / "bybit" / "BYBIT_LINEAR.ws.1.0"
GARBAGE = {"numeric_strings": True, "absurd_strings": [*ABSURD_STRINGS, "1" * 30 + ".5", "-0.5"],
           "id_keys": frozenset({"i"})}


@lru_cache(maxsize=1)
def bybit_stream():
    frames = recv_frames(CAPTURE)
    snapshot = next(i for i, (_, d) in enumerate(frames) if b'"type":"snapshot"' in d and b"orderbook" in d)
    return BybitLinearScheme, capture_instruments(CAPTURE, BybitLinearScheme), frames, snapshot + 1


@fuzz_settings(60)
@given(data=st.data())
def test_fuzz_bybit(data):
    # a delta damaged in ``u`` or a level is a lost message: its book resyncs (one resync per book
    # unless a copy of the real snapshot rebuilt it)
    run_fuzz(bybit_stream(), data, garbage_options=GARBAGE, exact_resyncs=False)


@fuzz_settings(200)
@given(frame=st.binary(max_size=400))
def test_random_bytes(frame):
    check_random_frame(frame, BybitLinearScheme, BybitSpotScheme, BybitOptionsScheme)


@fuzz_settings(200)
@given(name=st.text(max_size=40), category=st.sampled_from(["spot", "linear", "inverse", "option"]),
       text=st.text(max_size=30))
def test_parsers_raise_nothing_unexpected(name, category, text):
    inst = parse_or_none(lambda n: name_instrument(category, n), name, KeyError)
    assert inst is None or (inst.symbol and inst.native == name)
    inst = parse_or_none(option_instrument, name, KeyError)
    assert inst is None or inst.kind == "option"
    x = parse_or_none(number, text)
    assert x is None or 0.0 <= x < 1e18
    y = parse_or_none(signed, text)
    assert y is None or abs(y) < 1e18
