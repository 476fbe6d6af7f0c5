"""Fuzzing the Bitget schemes with malformed frames (hypothesis, ``atomfast.testing.run_fuzz``:
random bytes, truncated and oversized frames, JSON nested deeper than a decoder goes, copies of a
real frame with one field replaced by a value of another JSON type or an absurd number or string).

Streams (no recording of Bitget exists here): the documented ``books`` snapshot of
``tests/data/bitget`` (with its checksum computed, so that a damaged copy is caught), then the
documented change cycle (best ask out, best bid out, both back) repeated, ``seq`` + 1 each and
the checksum of the docs' algorithm computed by the test kit (RefBook.okx_checksum, with zlib),
interleaved with every other documented message of the capture; the same for the futures
capture. A damaged ``seq`` is a gap, a damaged level or checksum resyncs the book: after every
frame each book equals the clean run's (or the run one frame ahead's), or is resynced and empty;
every event is valid for its schema; garbage that is not JSON is counted.
"""
from __future__ import annotations

import json
from functools import lru_cache

from hypothesis import given
from hypothesis import strategies as st

from atomfast.exchanges.bitget import BitgetFuturesScheme, BitgetScheme
from atomfast.exchanges.bitget.parse import guess_perp, guess_spot, ms_of, seq_of, split_native
from atomfast.testing import (ABSURD_STRINGS, ROOT, Harness, RefBook, capture_instruments, check_events,
                              check_random_frame, fuzz_settings, parse_or_none, recv_frames, run_fuzz)

DATA = ROOT / "tests" / "data" / "bitget"
GARBAGE = {"numeric_strings": True, "absurd_strings": [*ABSURD_STRINGS, "1" * 30 + ".5", "-0.5"]}


def _dumps(msg: dict) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode()


def _numbered(capture, cycles: int = 30):
    frames = recv_frames(capture)
    books = [json.loads(d) for _, d in frames if b'"channel":"books"' in d]
    others = [d for _, d in frames if b'"channel":"books"' not in d]
    snap = books[0]
    ref = RefBook()
    d = snap["data"][0]
    ref.load("b", d["bids"])
    ref.load("a", d["asks"])
    d["checksum"] = ref.okx_checksum()
    out = [_dumps(snap)]
    seq = d["seq"]
    changes = [(u["data"][0]["bids"], u["data"][0]["asks"]) for u in books[1:]]
    for i in range(cycles * len(changes)):
        bids, asks = changes[i % len(changes)]
        for side, levels in (("b", bids), ("a", asks)):
            for p, s in levels:
                ref.set(side, p, s)
        seq += 1
        out.append(_dumps({"action": "update", "arg": snap["arg"], "data": [
            {"asks": asks, "bids": bids, "checksum": ref.okx_checksum(), "seq": seq, "ts": d["ts"]}], "ts": snap["ts"]}))
        if i < len(others):
            out.append(others[i])
    t0 = frames[0][0]
    return [(t0 + i * 1_000_000, x) for i, x in enumerate(out)]


@lru_cache(maxsize=2)
def stream(futures: bool):
    capture = DATA / ("BITGET_FUTURES.ws.1.0" if futures else "BITGET.ws.1.0")
    scheme = BitgetFuturesScheme if futures else BitgetScheme
    return scheme, capture_instruments(capture, scheme), _numbered(capture), 1


def test_the_streams_are_clean():
    for futures in (False, True):
        scheme, instruments, frames, _ = stream(futures)
        h = Harness(scheme, instruments)
        check_events(h.feed_all(frames))
        assert (h.metrics.checksum_ok, h.metrics.gaps, h.metrics.resyncs, h.metrics.errors.total) == (91, 0, 0, 0)


@fuzz_settings(50)
@given(data=st.data())
def test_fuzz_bitget_spot(data):
    run_fuzz(stream(False), data, garbage_options=GARBAGE, exact_resyncs=False)


@fuzz_settings(50)
@given(data=st.data())
def test_fuzz_bitget_futures(data):
    run_fuzz(stream(True), data, garbage_options=GARBAGE, exact_resyncs=False)


@fuzz_settings(200)
@given(frame=st.binary(max_size=400))
def test_random_bytes(frame):
    check_random_frame(frame, BitgetScheme, BitgetFuturesScheme, answers=(b"pong",))  # its heartbeat answer


@fuzz_settings(200)
@given(name=st.text(max_size=40), text=st.text(max_size=30),
       seq=st.one_of(st.integers(), st.text(max_size=25), st.floats(), st.booleans(), st.none()))
def test_parsers_raise_nothing_unexpected(name, text, seq):
    for guess in (guess_spot, guess_perp):
        inst = parse_or_none(guess, name, KeyError)
        assert inst is None or (inst.native == name and inst.base + inst.quote == name)
    assert parse_or_none(split_native, name, KeyError) is None or name.isalnum()
    ms = ms_of(text)
    assert ms == -1 or 0 <= ms < 10**14
    n = parse_or_none(seq_of, seq)
    assert n is None or 0 <= n < 2**63
