"""Fuzzing the HTX schemes with malformed frames (hypothesis), with the test kit's ``run_fuzz``.

The real stream is ``cryptofeed/HUOBI.ws.44.0`` (depth.step0 books and trades of 10 markets),
INFLATED: the garbage generator damages JSON, so the frames are fed as the plain JSON HTX
gzips (the scheme reads a text frame as it is; the gzip layer has its own test below and in
tests/venues/test_htx.py). From the frame after which every market's book is loaded, garbage is
inserted between real frames: random bytes, truncated frames, oversized, nested too deep, and
copies of the last or next real frame with one field of another JSON type or an absurd number.
After every frame: no exception escapes, every event is valid for its schema, every book equals
the clean run's (or the run one frame ahead's) or is resynced and empty. A resynced step0 book is
reloaded by its next message, so resyncs are at least the books still waiting.
"""
from __future__ import annotations

import functools
import gzip
import json

from hypothesis import given
from hypothesis import strategies as st

from atomfast.exchanges.htx import HtxFuturesScheme, HtxScheme
from atomfast.testing import Harness, capture_instruments, fuzz_settings, recv_frames, run_fuzz

CAPTURE = "cryptofeed/HUOBI.ws.44.0"
FUTURES = "repo:tests/data/htx/HTX_FUTURES.ws.1.0"


@functools.lru_cache(maxsize=1)
def stream():
    frames = [(ts, gzip.decompress(data)) for ts, data in recv_frames(CAPTURE)]
    loaded: set[str] = set()
    prefix = 0
    for i, (_ts, data) in enumerate(frames):
        ch = json.loads(data).get("ch", "")
        if ch.endswith(".depth.step0") and ch not in loaded:
            loaded.add(ch)
            prefix = i + 1
    assert len(loaded) == 10
    return HtxScheme, capture_instruments(CAPTURE, HtxScheme), frames, prefix


@fuzz_settings(60)
@given(data=st.data())
def test_fuzz_htx_spot(data):
    run_fuzz(stream(), data, exact_resyncs=False)


@fuzz_settings(40)
@given(raw=st.binary(max_size=300), cut=st.integers(0, 400))
def test_random_and_damaged_gzip_is_counted(raw, cut):
    """Random bytes, random bytes behind the gzip magic, a real gzip frame cut short: counted bad
    input, never an exception."""
    h = Harness(HtxScheme, capture_instruments(CAPTURE, HtxScheme))
    real = recv_frames(CAPTURE)[25][1]
    for frame in (raw, b"\x1f\x8b" + raw, real[:cut] if cut < len(real) else real[:-1]):
        before = h.metrics.errors.total
        h.feed(frame, binary=True)
        assert h.metrics.errors.total == before + 1, frame[:40]


@fuzz_settings(40)
@given(data=st.data())
def test_fuzz_futures_messages(data):
    """Each documented futures message with one field damaged: refused and counted, or read as a
    well-formed message; never an exception, never an invalid event."""
    from atomfast.testing import garbage, check_events

    frames = [gzip.decompress(d) for _ts, d in recv_frames(FUTURES)]
    h = Harness(HtxFuturesScheme, capture_instruments(FUTURES, HtxFuturesScheme))
    h.feed(frames[0])
    seed = data.draw(st.sampled_from(frames))
    _kind, bad = data.draw(garbage(seed, 64 * 1024))
    check_events(h.feed(bad))
    check_events(h.feed(gzip.compress(bad)))
