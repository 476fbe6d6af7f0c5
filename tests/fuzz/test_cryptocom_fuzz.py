"""Fuzzing the Crypto.com scheme with malformed frames (hypothesis, ``atomfast.testing.run_fuzz``:
random bytes, truncated and oversized frames, JSON nested deeper than a decoder goes, copies of a
real frame with one field replaced by a value of another JSON type or an absurd number or string).

Stream (no recording of Crypto.com exists here): the documented BTCUSD-PERP snapshot, then
deltas of its own documented levels chained as the docs' rule says (``pu`` = the previous
``u``; see tests/venues/test_cryptocom.py), each changing one level of one side (or none: the
documented idle delta), interleaved with the documented and real frames of every other channel
of ``tests/data/cryptocom``. A damaged ``u``/``pu`` is a gap, a damaged level or time resyncs the
book: after every frame each book equals the clean run's (or the run one frame ahead's), or is
resynced and empty; every event is valid for its schema; garbage that is not JSON is counted.

The fuzzed frames start after the snapshot (``prefix``): a snapshot carries no check of its own
(``cs`` is undocumented), so a snapshot damaged into another well-formed book cannot be told
from a real one; a delta damaged the same way breaks the chain at the next delta.
"""
from __future__ import annotations

import json
from functools import lru_cache

from hypothesis import given
from hypothesis import strategies as st

from atomfast.exchanges.cryptocom import CryptocomScheme
from atomfast.exchanges.cryptocom.handler import next_hour
from atomfast.exchanges.cryptocom.parse import expiry_of, guess, parse_listing
from atomfast.testing import (ABSURD_STRINGS, ROOT, capture_instruments, check_random_frame, fuzz_settings,
                              parse_or_none, recv_frames, run_fuzz)

CAPTURE = ROOT / "tests" / "data" / "cryptocom" / "CRYPTOCOM.ws.1.0"
GARBAGE = {"numeric_strings": True, "absurd_strings": [*ABSURD_STRINGS, "1" * 30 + ".5", "-0.5"],
           "id_keys": frozenset({"d"})}
SETS = [({"bids": [["30079.0", "0", "0"]], "asks": []}, 1), ({"bids": [["30079.0", "0.0505", "1"]], "asks": []}, 1),
        ({"bids": [], "asks": [["30082.5", "0", "0"]]}, 1), ({"bids": [], "asks": [["30082.5", "0.1689", "1"]]}, 1),
        ({"bids": [], "asks": []}, 0)]


def _enc(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@lru_cache(maxsize=1)
def stream():
    frames = recv_frames(CAPTURE)
    books = [json.loads(d) for _, d in frames if b'"channel":"book"' in d and b'"BTCUSD-PERP"' in d]
    others = [d for _, d in frames if b'"channel":"book' not in d]
    snap = books[0]
    u, t = snap["result"]["data"][0]["u"], snap["result"]["data"][0]["t"]
    out = [_enc(snap), others[0]]  # a trade after the snapshot: the snapshot is never a garbage seed
    for i in range(60):
        update, step = SETS[i % len(SETS)]
        out.append(_enc({"id": -1, "method": "subscribe", "code": 0, "result": {
            "instrument_name": "BTCUSD-PERP", "subscription": "book.BTCUSD-PERP.50", "channel": "book.update",
            "depth": 50, "data": [{"update": update, "t": t + i + 1, "tt": t + i + 1, "u": u + step, "pu": u}]}}))
        u += step
        out.append(others[(i + 1) % len(others)])
    t0 = frames[0][0]
    return CryptocomScheme, capture_instruments(CAPTURE, CryptocomScheme), [
        (t0 + i * 1_000_000, d) for i, d in enumerate(out)], 2


@fuzz_settings(60)
@given(data=st.data())
def test_fuzz_cryptocom(data):
    run_fuzz(stream(), data, garbage_options=GARBAGE, exact_resyncs=False)


@fuzz_settings(200)
@given(frame=st.binary(max_size=400))
def test_random_bytes(frame):
    check_random_frame(frame, CryptocomScheme)


@fuzz_settings(200)
@given(name=st.text(max_size=40), text=st.text(max_size=12), ms=st.integers(0, 10**14))
def test_parsers_raise_nothing_unexpected(name, text, ms):
    inst = parse_or_none(guess, name, KeyError)
    assert inst is None or (inst.native == name and inst.kind in ("spot", "perp", "future"))
    day = parse_or_none(expiry_of, text)
    assert day is None or (len(day) == 8 and day.startswith("20"))
    assert ms < next_hour(ms) <= ms + 3_600_000 and next_hour(ms) % 3_600_000 == 0


@fuzz_settings(100)
@given(body=st.binary(max_size=300))
def test_listing_refuses_garbage(body):
    listing = parse_or_none(parse_listing, body, ValueError)
    assert listing is None or isinstance(listing, dict)
