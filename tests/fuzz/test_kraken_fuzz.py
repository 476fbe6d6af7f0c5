"""Fuzzing the Kraken schemes with malformed frames (hypothesis).

Each example starts from books synced on a real stream (the v1 book capture, the same stream in
the v2 wire format, the Kraken Futures capture), then interleaves the following real frames with
garbage: random bytes, truncated real frames, oversized frames, JSON nested 20000 deep, and copies
of a real frame
with one field (or container) replaced by a value of another type or an absurd number (``1e400``,
``-1``, ``NaN``, ``"9"*40``, ...). After every frame:

- no exception escapes ``on_frame`` (the harness fails the test if the frame driver had to
  catch one);
- every event is valid for its Avro schema (types, finite doubles, longs/ints in range);
- every book equals the book of a clean run of the same real frames, or has been resynced;
- garbage that is not JSON at all (or nested deeper than a decoder goes) is counted as bad input.

The garbage copies are made of the last real frame or of the next one. Damage never makes a
well-formed alternative message (a number is only replaced by an absurd one, a string by an
absurd one, anything else by a value of another JSON type): a well-formed but different book
message is not malformed input, only the exchange's checksum (top ten levels) could catch it,
and that is what the capture tests do. A copy whose damage lands in a field the scheme does not
use is the real message itself: applied again it changes nothing (a level update sets an
absolute size), applied early the book runs one frame ahead until the real one arrives.
"""
from __future__ import annotations

import json
from functools import lru_cache

from hypothesis import given
from hypothesis import strategies as st

from atomfast.exchanges.kraken import KrakenSpotScheme, KrakenSpotV1Scheme
from atomfast.exchanges.kraken.parse import rfc3339_to_ms, secs_to_ms, valid_level
from atomfast.exchanges.kraken_futures import KrakenFuturesScheme
from atomfast.testing import (
    capture_instruments,
    check_random_frame,
    fuzz_settings,
    kraken_v2_frames,
    recv_frames,
    run_fuzz,
)

SPOT_BOOK = "cryptofeed/KRAKEN.ws.50.0"
FUTURES = "cryptofeed/KRAKEN_FUTURES.ws.1.0"


# ------------------------------------------------------------------------------------------------
# the streams


def batched(frames, size: int = 3) -> list[tuple[int, bytes]]:
    """The v1 book capture with each pair's updates merged ``size`` at a time into one message
    (asks in the first dict, bids in a second one with the checksum of the last): every
    recorded update holds a single level, Kraken's may hold many, and a message of several
    levels is what shows whether a bad level late in a message leaves the earlier ones unapplied."""
    pending: dict[str, list] = {}
    out: list[tuple[int, bytes]] = []

    def merge(msgs) -> bytes:
        cid, name, pair = msgs[-1][0], msgs[-1][-2], msgs[-1][-1]
        asks = [lv for m in msgs for d in m[1:-2] for lv in d.get("a", [])]
        bids = [lv for m in msgs for d in m[1:-2] for lv in d.get("b", [])]
        c = msgs[-1][-3]["c"]
        if asks and bids:
            body = [cid, {"a": asks}, {"b": bids, "c": c}, name, pair]
        else:
            body = [cid, {"a": asks, "c": c} if asks else {"b": bids, "c": c}, name, pair]
        return json.dumps(body, separators=(",", ":")).encode()

    for ts, data in frames:
        msg = json.loads(data)
        if isinstance(msg, list) and msg[-2].startswith("book") and "as" not in msg[1] and "bs" not in msg[1]:
            group = pending.setdefault(msg[-1], [])
            group.append(msg)
            if len(group) == size:
                out.append((ts, merge(pending.pop(msg[-1]))))
        else:
            out.append((ts, data))
    return out


@lru_cache(maxsize=None)
def stream(which: str):
    """(scheme class, instruments, frames, prefix length: every book synced after it)."""
    if which == "futures":
        frames = recv_frames(FUTURES)
        last_snapshot = max(i for i, (_, d) in enumerate(frames) if b'"book_snapshot"' in d)
        return KrakenFuturesScheme, capture_instruments(FUTURES, KrakenFuturesScheme), frames, last_snapshot + 1
    frames = batched(recv_frames(SPOT_BOOK))
    if which == "v2":
        v1_inst = capture_instruments(SPOT_BOOK, KrakenSpotV1Scheme)
        frames = kraken_v2_frames(frames, v1_inst, exponent=True)
        return KrakenSpotScheme, capture_instruments(SPOT_BOOK, KrakenSpotScheme), frames, 6
    last_snapshot = max(i for i, (_, d) in enumerate(frames) if b'"as":' in d)
    return KrakenSpotV1Scheme, capture_instruments(SPOT_BOOK, KrakenSpotV1Scheme), frames, last_snapshot + 1


def fuzz(which: str, data) -> None:
    """The kit's ``run_fuzz`` on one stream: every book checked after every frame; a number
    written as a string (Kraken's prices and sizes) is damaged like a number."""
    run_fuzz(stream(which), data, garbage_options={"numeric_strings": True})


@fuzz_settings(75)
@given(data=st.data())
def test_fuzz_spot_v1(data):
    fuzz("v1", data)


@fuzz_settings(75)
@given(data=st.data())
def test_fuzz_spot_v2(data):
    fuzz("v2", data)


@fuzz_settings(75)
@given(data=st.data())
def test_fuzz_futures(data):
    fuzz("futures", data)


@fuzz_settings(300)
@given(frame=st.binary(max_size=400))
def test_random_bytes_into_every_scheme(frame):
    check_random_frame(frame, KrakenSpotV1Scheme, KrakenSpotScheme, KrakenFuturesScheme)


@fuzz_settings(300)
@given(text=st.text(max_size=40), price=st.text(max_size=30), size=st.binary(max_size=30))
def test_parsers_raise_nothing_unexpected(text, price, size):
    for parse in (secs_to_ms, rfc3339_to_ms):
        try:
            ms = parse(text)
        except ValueError:
            continue
        assert 0 <= ms < 2**63
    assert valid_level(price, price, 8, 8) in (True, False)
    assert valid_level(size, size, 8, 8) in (True, False)
