"""Fuzzing the BitMEX scheme with malformed frames (hypothesis): the same garbage and the same
checks as ``tests/test_deribit_fuzz.py`` (see there), on the recorded ``BITMEX.ws.1.0`` stream
after every ``orderBookL2`` partial. A damaged row ``id`` or ``side`` is a lost message to
BitMEX's protocol (no sequence numbers): the symbol is resynced, never left wrong.

The stream leaves XBTUSD out: its 9346-level partial makes every example five times slower
(each example rebuilds its books from the partials), and the nine other contracts go through
the same code (the capture tests cover XBTUSD)."""
from __future__ import annotations

from functools import lru_cache

from hypothesis import given, settings
from hypothesis import strategies as st

from atomfast.exchanges.bitmex import BitmexScheme
from atomfast.exchanges.bitmex.parse import iso_to_ms, symbol_instrument, valid_level
from tests.conftest import fixture_path
from tests.test_bitmex import listing
from tests.test_deribit import Harness, recv_frames
from tests.test_deribit_fuzz import _EXAMPLES, SETTINGS, check_event, is_json, run_fuzz


@lru_cache(maxsize=1)
def bitmex_stream():
    frames = [(ts, d) for ts, d in recv_frames(fixture_path("cryptofeed/BITMEX.ws.1.0")) if b"XBTUSD" not in d]
    partial = b'{"table":"orderBookL2","action":"partial"'
    last_partial = max(i for i, (_, d) in enumerate(frames) if d.startswith(partial))
    return BitmexScheme, listing(), frames, last_partial + 1


@settings(SETTINGS, max_examples=_EXAMPLES or 40)
@given(data=st.data())
def test_fuzz_bitmex(data):
    run_fuzz(bitmex_stream(), data)


@settings(max_examples=_EXAMPLES or 200, deadline=None, derandomize=not _EXAMPLES, database=None)
@given(frame=st.binary(max_size=400))
def test_random_bytes(frame):
    h = Harness(BitmexScheme)
    for topic, record in h.feed(frame):
        check_event(topic, record)
    if not is_json(frame) and frame != b"pong":
        assert h.metrics.errors.total == 1


@settings(max_examples=_EXAMPLES or 200, deadline=None, derandomize=not _EXAMPLES, database=None)
@given(text=st.text(max_size=40), price=st.binary(max_size=30))
def test_parsers_raise_nothing_unexpected(text, price):
    try:
        ms = iso_to_ms(text)
    except ValueError:
        pass
    else:
        assert 0 <= ms < 2**63
    try:
        inst = symbol_instrument(text)
    except KeyError:
        pass
    else:
        assert inst.symbol and inst.native == text
    assert valid_level(price, price, 8, 4) in (True, False)
