"""Fuzzing the bitFlyer scheme with malformed frames (hypothesis), with the test kit's ``run_fuzz``.

The real stream is ``BITFLYER.ws.1.0`` (board snapshots and diffs, executions, tickers of 10
products), from the frame after which every product's book is loaded. Garbage is inserted between
real frames: random bytes, truncated real frames, oversized frames, JSON nested deeper than
msgspec goes, and copies of the last or the next real frame with one field replaced by a value of
another JSON type or an absurd number (``jsonrpc`` too: a frame whose ``jsonrpc`` is not "2.0" is
no message of the protocol, so a damaged copy is never a well-formed duplicate). After every
frame: no exception escapes, every event is valid for its schema, every book the frame names
equals the clean run's (or the run one frame ahead's) or is resynced and empty; non-JSON garbage
is counted. A resynced book is reloaded by the next real snapshot, so resyncs are at least the
books still waiting (``exact_resyncs=False``).
"""
from __future__ import annotations

import functools
import json

from hypothesis import given
from hypothesis import strategies as st

from atomfast.exchanges.bitflyer import BitflyerScheme
from atomfast.testing import capture_instruments, fuzz_settings, recv_frames, run_fuzz

CAPTURE = "cryptofeed/BITFLYER.ws.1.0"


@functools.lru_cache(maxsize=1)
def stream():
    frames = recv_frames(CAPTURE)
    loaded: set[str] = set()
    prefix = 0
    for i, (_ts, data) in enumerate(frames):
        channel = json.loads(data)["params"]["channel"]
        if channel.startswith("lightning_board_snapshot_") and channel not in loaded:
            loaded.add(channel)
            prefix = i + 1
    assert len(loaded) == 10
    return BitflyerScheme, capture_instruments(CAPTURE, BitflyerScheme), frames, prefix


@fuzz_settings(60)
@given(data=st.data())
def test_fuzz_bitflyer(data):
    run_fuzz(stream(), data, named_only=True, exact_resyncs=False)
