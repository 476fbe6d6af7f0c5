"""Fuzzing the Deribit scheme with malformed frames (hypothesis), with the test kit's
``run_fuzz`` (``atomfast.testing``; the BitMEX and Kraken fuzz tests use it too).

Each example starts from books synced on the real capture, then interleaves the following real
frames with garbage: random bytes, truncated real frames, oversized frames, JSON nested 20000
deep, and copies of a real frame with one field (or container) replaced by a value of another
JSON type or an absurd number (``1e400``, ``-1``, ``-0.5``, ``2**64+1``, ``"9"*40``, ...).
After every frame:

- no exception escapes ``on_frame`` (the harness fails the test if the frame driver had to
  catch one);
- every event is valid for its Avro schema (types, finite doubles, longs/ints in range);
- every book equals the book of a clean run of the same real frames, or has been resynced
  (and is then empty);
- garbage that is not JSON at all (or nested deeper than a decoder goes) is counted as bad input.

Damage never makes a well-formed alternative message (a number is only replaced by an absurd
one, a string by an absurd one, anything else by a value of another type): a well-formed but
different message is not malformed input. The garbage copies are made of the last real frame or
of the next one; a copy of the next one whose damage lands in a field the scheme does not use is
that real message applied early: until the real one arrives the book may equal the book of a run
one frame ahead.
"""
from __future__ import annotations

from functools import lru_cache

from hypothesis import given
from hypothesis import strategies as st

from atomfast.exchanges.deribit import DeribitScheme
from atomfast.exchanges.deribit.parse import name_instrument, strike_text, valid_level
from atomfast.testing import (
    capture_instruments,
    check_random_frame,
    fuzz_settings,
    parse_or_none,
    recv_frames,
    run_fuzz,
)

CAPTURE = "cryptofeed/DERIBIT.ws.1.0"


@lru_cache(maxsize=1)
def deribit_stream():
    frames = recv_frames(CAPTURE)
    last_snapshot = max(i for i, (_, d) in enumerate(frames) if b'"type":"snapshot"' in d)
    return DeribitScheme, capture_instruments(CAPTURE, DeribitScheme), frames, last_snapshot + 1


@fuzz_settings(60)
@given(data=st.data())
def test_fuzz_deribit(data):
    run_fuzz(deribit_stream(), data, named_only=True, exact_resyncs=False)


@fuzz_settings(200)
@given(frame=st.binary(max_size=400))
def test_random_bytes(frame):
    check_random_frame(frame, DeribitScheme)


@fuzz_settings(200)
@given(name=st.text(max_size=40), strike=st.text(max_size=12), price=st.binary(max_size=30))
def test_parsers_raise_nothing_unexpected(name, strike, price):
    inst = parse_or_none(name_instrument, name, KeyError)
    assert inst is None or (inst.symbol and inst.native == name)
    try:
        assert strike_text(strike)
    except KeyError:
        pass
    assert valid_level(price, price, 8, 8) in (True, False)
