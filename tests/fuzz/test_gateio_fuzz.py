"""Fuzzing the Gate.io schemes with malformed frames (hypothesis, ``atomfast.testing.run_fuzz``:
random bytes, truncated and oversized frames, JSON nested deeper than a decoder goes, copies of a
real frame with one field replaced by a value of another JSON type or an absurd number or string).

Streams (no recording of Gate.io exists here): the documented spot order book V2 full book, then
documented change sets numbered as the docs' rule says (``U`` = previous ``u`` + 1; see
tests/venues/test_gateio.py), interleaved with the documented and real messages of every other
channel of ``tests/data/gateio``; the same for the futures capture. A damaged ``U``/``u`` is a
gap, a damaged level or ``t`` resyncs the book: after every frame each book equals the clean
run's (or the run one frame ahead's), or is resynced and empty; every event is valid for its
schema; garbage that is not JSON is counted.
"""
from __future__ import annotations

import json
from functools import lru_cache

from hypothesis import given
from hypothesis import strategies as st

from atomfast.exchanges.gateio import GateioFuturesScheme, GateioScheme
from atomfast.exchanges.gateio.parse import guess_spot, ms_of_text, number_text, stream_market
from atomfast.testing import (ABSURD_STRINGS, ROOT, capture_instruments, check_random_frame, fuzz_settings,
                              parse_or_none, recv_frames, run_fuzz)

DATA = ROOT / "tests" / "data" / "gateio"
GARBAGE = {"numeric_strings": True, "absurd_strings": [*ABSURD_STRINGS, "1" * 30 + ".5", "-0.5"],
           "id_keys": frozenset({"id"})}


def _numbered(capture, channel: str, changes: int = 60):
    frames = recv_frames(capture)
    books = [json.loads(d) for _, d in frames if d.startswith(b'{"channel":"' + channel.encode() + b'"')]
    others = [d for _, d in frames if not d.startswith(b'{"channel":"' + channel.encode() + b'"')]
    full, inc = books[0]["result"], books[1]["result"]
    sets = [(inc.get("b", []), inc.get("a", [])), (full["b"], full["a"])]
    out = [json.dumps({"channel": channel, "result": full, "time_ms": full["t"]}, separators=(",", ":")).encode()]
    u = full["u"]
    for i in range(changes):
        b, a = sets[i % 2]
        msg = {"channel": channel, "result": {"t": inc["t"] + i, "s": full["s"], "U": u + 1, "u": u + 44, "b": b, "a": a}}
        u += 44
        out.append(json.dumps(msg, separators=(",", ":")).encode())
        if i < len(others):
            out.append(others[i])
    t0 = frames[0][0]
    return [(t0 + i * 1_000_000, d) for i, d in enumerate(out)]


@lru_cache(maxsize=2)
def stream(futures: bool):
    capture = DATA / ("GATEIO_FUTURES.ws.1.0" if futures else "GATEIO.ws.1.0")
    scheme = GateioFuturesScheme if futures else GateioScheme
    frames = _numbered(capture, "futures.obu" if futures else "spot.obu")
    return scheme, capture_instruments(capture, scheme), frames, 1


@fuzz_settings(50)
@given(data=st.data())
def test_fuzz_gateio_spot(data):
    run_fuzz(stream(False), data, garbage_options=GARBAGE, exact_resyncs=False)


@fuzz_settings(50)
@given(data=st.data())
def test_fuzz_gateio_futures(data):
    run_fuzz(stream(True), data, garbage_options=GARBAGE, exact_resyncs=False)


@fuzz_settings(200)
@given(frame=st.binary(max_size=400))
def test_random_bytes(frame):
    check_random_frame(frame, GateioScheme, GateioFuturesScheme)


@fuzz_settings(200)
@given(name=st.text(max_size=40), text=st.text(max_size=30), number=st.one_of(st.integers(), st.floats(),
                                                                              st.text(max_size=20), st.booleans()))
def test_parsers_raise_nothing_unexpected(name, text, number):
    inst = parse_or_none(guess_spot, name, KeyError)
    assert inst is None or (inst.native == name and inst.symbol.count("-") == 1)
    native, level = stream_market(name)
    assert (native, level) == ("", "") or (native and level.isdigit())
    ms = parse_or_none(ms_of_text, text)
    assert ms is None or 0 <= ms < 10**14
    out = parse_or_none(number_text, number)
    assert out is None or isinstance(out, str)
