"""Fuzzing the Gemini schemes with malformed frames (hypothesis), with the test kit's ``run_fuzz``.

v2 (``GeminiV2Scheme``): the recorded ``GEMINI.ws.1.0`` itself, from the frame after the tenth
market's snapshot on. The current API (``GeminiScheme``) has no recording: its stream is the same
capture in the current API's documented shapes (AsyncAPI ``DepthUpdate`` and ``Trade``): each
``l2_updates`` a ``depthUpdate`` (the market's first one its snapshot, then U = u = the next
number of a per-market sequence; ``E`` the receive time in ms), each ``trade`` a trade (``m``:
the buyer made, i.e. the taker sold). Garbage (malformed frames made of real ones) is inserted:
no exception escapes, every event is valid for its schema, non-JSON garbage is counted, and every
book equals the clean run's unless it was resynced (and, with no exchange to answer the
resubscription here, stays empty).
"""
from __future__ import annotations

import functools
import json

from hypothesis import given
from hypothesis import strategies as st

from atomfast.exchanges.gemini import GeminiScheme, GeminiV2Scheme
from atomfast.testing import ROOT, capture_instruments, fuzz_settings, recv_frames, run_fuzz

CAPTURE = "cryptofeed/GEMINI.ws.1.0"
LISTING = ROOT / "tests" / "data" / "gemini" / "GEMINI.ws.1.0"
#: frames 0..9 are the ten markets' snapshots
PREFIX = 10


@functools.lru_cache(maxsize=1)
def v2_stream() -> tuple:
    frames = recv_frames(CAPTURE)
    assert sum(b'"trades":[' in d for _ts, d in frames[:PREFIX]) == PREFIX
    return GeminiV2Scheme, capture_instruments(CAPTURE, GeminiV2Scheme), frames, PREFIX


@functools.lru_cache(maxsize=1)
def current_stream() -> tuple:
    """The capture in the current API's shapes (see the module's doc)."""
    seq: dict[str, int] = {}
    out = []
    for ts, data in recv_frames(CAPTURE):
        msg = json.loads(data)
        if msg["type"] == "l2_updates":
            sym = msg["symbol"].lower()
            first = seq.get(sym, 1_000) + 1
            seq[sym] = first
            frame = {"e": "depthUpdate", "E": ts // 1_000_000, "s": sym, "U": first, "u": first,
                     "b": [[p, q] for side, p, q in msg["changes"] if side == "buy"],
                     "a": [[p, q] for side, p, q in msg["changes"] if side == "sell"]}
        elif msg["type"] == "trade":
            frame = {"E": msg["timestamp"], "s": msg["symbol"].lower(), "t": msg["event_id"], "p": msg["price"],
                     "q": msg["quantity"], "m": msg["side"] == "sell"}
        else:
            continue
        out.append((ts, json.dumps(frame, separators=(",", ":")).encode()))
    return GeminiScheme, capture_instruments(LISTING, GeminiScheme), out, PREFIX


def test_streams_replay_clean():
    for cls, instruments, frames, _prefix in (v2_stream(), current_stream()):
        from atomfast.testing import Harness

        h = Harness(cls, instruments)
        h.feed_all(frames)
        assert (h.metrics.errors.total, h.metrics.gaps, h.metrics.resyncs) == (0, 0, 0)
        assert len(h.scheme.books) == 10 and not h.scheme.unsynced
        assert len(h.events("lob")) == 4540 and len(h.events("trades")) == 16


@fuzz_settings(40)
@given(st.data())
def test_fuzz_v2_capture(data):
    run_fuzz(v2_stream(), data, named_only=True)


@fuzz_settings(40)
@given(st.data())
def test_fuzz_current_api(data):
    run_fuzz(current_stream(), data, named_only=True)
