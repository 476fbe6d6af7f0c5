"""Fuzzing the Hyperliquid scheme with malformed frames (hypothesis), with the test kit's ``run_fuzz``.

The real stream: the messages of tests/data/hyperliquid/HYPERLIQUID.ws.1.0 (documented and
recorded ones, see its README), made long enough to fuzz: the two BTC snapshots (the documented
one and the recorded one) and the recorded DYDX snapshot with and without its best bid, pushed
in turn every 0.5 s (the times advanced, the levels as recorded), between them the trade, the
asset context and the candle. From the frame after which both books are loaded, garbage is
inserted between real frames (random bytes, truncated, oversized, nested too deep, copies of the
last or next frame with one field of another JSON type or an absurd value). After every frame:
no exception escapes, every event is valid for its schema, every book equals the clean run's (or
the run one frame ahead's) or is resynced and empty.
"""
from __future__ import annotations

import functools
import json

from hypothesis import given
from hypothesis import strategies as st

from atomfast.exchanges.hyperliquid import HyperliquidScheme
from atomfast.testing import Harness, capture_instruments, fuzz_settings, recv_frames, run_fuzz

CAPTURE = "repo:tests/data/hyperliquid/HYPERLIQUID.ws.1.0"


def _dump(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@functools.lru_cache(maxsize=1)
def stream():
    recorded = [json.loads(data) for _ts, data in recv_frames(CAPTURE)]
    btc = [m for m in recorded if m["channel"] == "l2Book" and m["data"]["coin"] == "BTC"]
    dydx = next(m for m in recorded if m["channel"] == "l2Book" and m["data"]["coin"] == "DYDX")
    dydx_less = json.loads(json.dumps(dydx))
    del dydx_less["data"]["levels"][0][0]
    others = [m for m in recorded if m["channel"] in ("trades", "activeAssetCtx", "candle")]
    frames = []
    ts = 1_700_000_000_000_000_000
    for i in range(40):
        for book, base in ((btc[i % 2], 1_761_786_491_067), ((dydx, dydx_less)[i % 2], 1_689_630_203_930)):
            msg = json.loads(json.dumps(book))
            msg["data"]["time"] = base + 500 * i
            frames.append((ts, _dump(msg)))
            ts += 100_000_000
        frames.append((ts, _dump(others[i % len(others)])))
        ts += 100_000_000
    return HyperliquidScheme, capture_instruments(CAPTURE, HyperliquidScheme), frames, 2


@fuzz_settings(60)
@given(data=st.data())
def test_fuzz_hyperliquid(data):
    run_fuzz(stream(), data)


@fuzz_settings(40)
@given(raw=st.binary(max_size=300))
def test_random_bytes_are_counted(raw):
    h = Harness(HyperliquidScheme, capture_instruments(CAPTURE, HyperliquidScheme))
    before = h.metrics.errors.total
    h.feed(b'{"channel":"l2Book","data":' + raw)
    h.feed(raw)
    assert h.metrics.errors.total >= before + 1
    assert not h.scheme.books
