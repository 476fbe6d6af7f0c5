"""Fuzzing the OKX scheme with malformed frames (hypothesis, ``atomfast.testing.run_fuzz``: random
bytes, truncated and oversized frames, JSON nested deeper than a decoder goes, copies of a real
frame with one field replaced by a value of another JSON type or an absurd number or string).

Streams:

- ``cryptofeed/OKX.ws.1.0`` (real, 2022): books of three markets verified by their CRC32 checksum
  alone, trades and tickers. A damaged level, ``ts`` or checksum resyncs its book, never leaves it
  wrong.
- the same real BTC-USDT book messages numbered with ``seqId``/``prevSeqId`` as OKX's docs say
  (tests/venues/test_okx.py ``numbered``), then the documented messages of every other channel
  (``tests/data/okx/OKX.ws.1.0``): a damaged ``seqId`` or ``prevSeqId`` is a gap, the book resyncs.

OKX writes its numbers as strings: digit strings are damaged as numbers too (``numeric_strings``);
trade ids only into values of another JSON type. After every frame each book equals the clean
run's (or the run one frame ahead's), or is resynced and empty; every event is valid for its
schema; garbage that is not JSON is counted.
"""
from __future__ import annotations

import json
from functools import lru_cache

from hypothesis import given
from hypothesis import strategies as st

from atomfast.exchanges.okx import OkxScheme
from atomfast.exchanges.okx.handler import bar_of
from atomfast.exchanges.okx.parse import ms_text, name_instrument, number, signed
from atomfast.testing import (ABSURD_STRINGS, ROOT, capture_instruments, check_random_frame, fuzz_settings,
                              parse_or_none, recv_frames, run_fuzz)

REAL = "cryptofeed/OKX.ws.1.0"
DOCS = ROOT / "tests" / "data" / "okx" / "OKX.ws.1.0"
GARBAGE = {"numeric_strings": True, "absurd_strings": [*ABSURD_STRINGS, "1" * 30 + ".5", "-0.5"],
           "id_keys": frozenset({"tradeId"})}


@lru_cache(maxsize=1)
def real_stream():
    frames = recv_frames(REAL)
    last_snapshot = max(i for i, (_, d) in enumerate(frames) if b'"action":"snapshot"' in d)
    return OkxScheme, capture_instruments(REAL, OkxScheme), frames, last_snapshot + 1


@lru_cache(maxsize=1)
def numbered_stream():
    """The real BTC-USDT book stream numbered as the docs say, then the documented channels."""
    frames = []
    seq = 1000
    for ts, data in recv_frames(REAL):
        if not data.startswith(b'{"arg":{"channel":"books","instId":"BTC-USDT"'):
            continue
        msg = json.loads(data)
        d = msg["data"][0]
        d["prevSeqId"] = -1 if msg["action"] == "snapshot" else seq
        seq += 7
        d["seqId"] = seq
        frames.append((ts, json.dumps(msg, separators=(",", ":")).encode()))
    last = frames[-1][0]
    docs = [d for _, d in recv_frames(DOCS) if b'"channel":"books"' not in d[:30]]
    frames += [(last + (i + 1) * 1_000_000, d) for i, d in enumerate(docs)]
    instruments = {**capture_instruments(REAL, OkxScheme), **capture_instruments(DOCS, OkxScheme)}
    return OkxScheme, instruments, frames, 1


@fuzz_settings(50)
@given(data=st.data())
def test_fuzz_okx_checksummed_capture(data):
    run_fuzz(real_stream(), data, garbage_options=GARBAGE, exact_resyncs=False)


@fuzz_settings(50)
@given(data=st.data())
def test_fuzz_okx_sequenced_stream(data):
    run_fuzz(numbered_stream(), data, garbage_options=GARBAGE, exact_resyncs=False)


@fuzz_settings(200)
@given(frame=st.binary(max_size=400))
def test_random_bytes(frame):
    check_random_frame(frame, OkxScheme, answers=(b"pong",))


@fuzz_settings(200)
@given(name=st.text(max_size=40), text=st.text(max_size=30))
def test_parsers_raise_nothing_unexpected(name, text):
    inst = parse_or_none(name_instrument, name, KeyError)
    assert inst is None or (inst.symbol and inst.native == name)
    x = parse_or_none(number, text)
    assert x is None or 0.0 <= x < 1e18
    y = parse_or_none(signed, text)
    assert y is None or abs(y) < 1e18
    assert -1 <= ms_text(text) < 10**14
    bar = bar_of(name)
    assert bar is None or bar[1] > 0
