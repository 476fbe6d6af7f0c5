"""Fuzzing the BitMEX scheme with malformed frames (hypothesis): the same garbage and the same
checks (``atomfast.testing.run_fuzz``) as ``test_deribit_fuzz.py`` (see there), on the recorded
``BITMEX.ws.1.0`` stream after every ``orderBookL2`` partial. A damaged row ``id`` or ``side`` is a lost message to
BitMEX's protocol (no sequence numbers): the symbol is resynced, never left wrong.

The stream leaves XBTUSD out: its 9346-level partial makes every example five times slower
(each example rebuilds its books from the partials), and the nine other contracts go through
the same code (the capture tests cover XBTUSD)."""
from __future__ import annotations

from functools import lru_cache

from hypothesis import given
from hypothesis import strategies as st

from atomfast.exchanges.bitmex import BitmexScheme
from atomfast.exchanges.bitmex.parse import iso_to_ms, symbol_instrument, valid_level
from atomfast.testing import Harness, capture_instruments, check_events, fuzz_settings, is_json, parse_or_none
from atomfast.testing import recv_frames, run_fuzz

CAPTURE = "cryptofeed/BITMEX.ws.1.0"


@lru_cache(maxsize=1)
def bitmex_stream():
    frames = [(ts, d) for ts, d in recv_frames(CAPTURE) if b"XBTUSD" not in d]
    partial = b'{"table":"orderBookL2","action":"partial"'
    last_partial = max(i for i, (_, d) in enumerate(frames) if d.startswith(partial))
    return BitmexScheme, capture_instruments(CAPTURE, BitmexScheme), frames, last_partial + 1


@fuzz_settings(40)
@given(data=st.data())
def test_fuzz_bitmex(data):
    run_fuzz(bitmex_stream(), data, named_only=True, exact_resyncs=False, not_bad=frozenset({b"pong"}))


@fuzz_settings(200)
@given(frame=st.binary(max_size=400))
def test_random_bytes(frame):
    h = Harness(BitmexScheme)
    check_events(h.feed(frame))
    if not is_json(frame) and frame != b"pong":
        assert h.metrics.errors.total == 1


@fuzz_settings(200)
@given(text=st.text(max_size=40), price=st.binary(max_size=30))
def test_parsers_raise_nothing_unexpected(text, price):
    ms = parse_or_none(iso_to_ms, text)
    assert ms is None or 0 <= ms < 2**63
    inst = parse_or_none(symbol_instrument, text, KeyError)
    assert inst is None or (inst.symbol and inst.native == text)
    assert valid_level(price, price, 8, 4) in (True, False)
