"""Fuzzing the Deribit scheme with malformed frames (hypothesis); ``run_fuzz`` also serves the
BitMEX fuzz tests (``tests/test_bitmex_fuzz.py``).

Each example starts from books synced on the real capture, then interleaves the following real
frames with garbage: random bytes, truncated real frames, oversized frames, JSON nested 20000
deep, and copies of a real frame with one field (or container) replaced by a value of another
JSON type or an absurd number (``1e400``, ``-1``, ``-0.5``, ``2**64+1``, ``"9"*40``, ...).
After every frame:

- no exception escapes ``on_frame`` (called directly, without the replay's safety net);
- every event is valid for its Avro schema (types, finite doubles, longs/ints in range);
- every book equals the book of a clean run of the same real frames, or has been resynced
  (and is then empty);
- garbage that is not JSON at all (or nested deeper than a decoder goes) is counted as bad input.

Damage never makes a well-formed alternative message (a number is only replaced by an absurd
one, a string by an absurd one, anything else by a value of another type): a well-formed but
different message is not malformed input. The garbage copies are made of the last real frame or
of the next one; a copy of the next one whose damage lands in a field the scheme does not use is
that real message applied early: until the real one arrives the book may equal the book of a run
one frame ahead.
"""
from __future__ import annotations

import json
import math
import os
from functools import lru_cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atomfast.exchanges.deribit import DeribitScheme
from atomfast.exchanges.deribit.parse import name_instrument, strike_text, valid_level
from tests.conftest import fixture_path
from tests.test_deribit import Harness, listing, recv_frames

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "atomfast" / "schemas"
#: ATOMFAST_FUZZ_EXAMPLES=N: N random examples per test (a deeper hunt); by default a fixed
#: (derandomized) set, the same on every run
_EXAMPLES = int(os.environ.get("ATOMFAST_FUZZ_EXAMPLES", "0"))
SETTINGS = settings(max_examples=_EXAMPLES or 60, deadline=None, derandomize=not _EXAMPLES, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

HUGE = "\x00HUGE\x00"  # replaced by the bare JSON number 1e400 after encoding
NEG = "\x00NEG\x00"  # replaced by the bare JSON number -0.5
ABSURD_NUMBERS = [-1, 2**64 + 1, HUGE, NEG]
ABSURD_STRINGS = ["", "x", "-1", "NaN", "inf", "1e400", "9" * 40, "9" * 5000]
WRONG = [None, True, False, 0, 1.5, -2.5, [], {}, [1, 2], {"a": 1}, *ABSURD_NUMBERS, *ABSURD_STRINGS]


@lru_cache(maxsize=1)
def _schemas() -> dict[str, list[tuple[str, object]]]:
    out = {}
    for path in SCHEMA_DIR.glob("*.avsc"):
        schema = json.loads(path.read_text())
        out[path.stem] = [(f["name"], f["type"]) for f in schema["fields"]]
    return out


def check_event(topic: str, record: tuple) -> None:
    fields = _schemas()[topic]
    assert len(record) == len(fields), (topic, record)
    for (name, ftype), value in zip(fields, record):
        kind = ftype["type"] if isinstance(ftype, dict) else ftype
        if kind == "string":
            assert isinstance(value, str), (topic, name, value)
            value.encode("utf-8")
        elif kind == "double":
            assert isinstance(value, float) and math.isfinite(value), (topic, name, value)
        elif kind == "long":
            assert isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63, (topic, name)
        elif kind == "int":
            assert isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31, (topic, name)
        elif kind == "boolean":
            assert isinstance(value, bool), (topic, name, value)
        else:  # pragma: no cover
            raise AssertionError(f"{topic}.{name}: unexpected schema type {ftype!r}")


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))


def _replace(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(value)]
    return {k: (_replace(v, rest, new) if k == head else v) for k, v in value.items()}


def _category(value) -> str:
    if value in (HUGE, NEG):
        return "number"
    if isinstance(value, bool) or value is None:
        return "literal"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _differs(old, new) -> bool:
    if _category(old) != _category(new):
        return True
    if _category(old) == "number":
        return new in ABSURD_NUMBERS
    if isinstance(old, str):
        return new in ABSURD_STRINGS
    return False


@st.composite
def garbage(draw, seed: bytes, limit: int):
    """(kind, bytes) of one malformed frame derived from ``seed`` (a real frame)."""
    kind = draw(st.sampled_from(["random", "truncated", "wrong type", "wrong type", "absurd number", "oversize",
                                 "deep"]))
    if kind == "random":
        return kind, draw(st.binary(max_size=300))
    if kind == "deep":
        n = draw(st.sampled_from([2000, 20000]))
        return kind, b'{"a":' + b"[" * n + b"]" * n + b"}"
    if kind == "truncated":
        return kind, seed[: draw(st.integers(0, max(0, len(seed) - 1)))]
    if kind == "oversize":
        return kind, seed[:-1] + b" " * (limit + 1) + seed[-1:]
    value = json.loads(seed)
    paths = []
    for path in _paths(value):
        old = value
        for p in path:
            old = old[p]
        if kind == "absurd number":
            if _category(old) == "number":
                paths.append((path, ABSURD_NUMBERS))
            continue
        options = [w for w in WRONG if _differs(old, w)]
        if options:
            paths.append((path, options))
    if not paths:
        return "truncated", seed[:-1]
    path, options = draw(st.sampled_from(paths))
    new = draw(st.sampled_from(options))
    text = json.dumps(_replace(value, path, new), separators=(",", ":"))
    text = text.replace(json.dumps(HUGE), "1e400").replace(json.dumps(NEG), "-0.5")
    return kind, text.encode()


def is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return False
    return True


def _same(book, other) -> bool:
    return book.levels(0) == other.levels(0) and book.levels(1) == other.levels(1)


def _check_books(faulty, clean, ahead, early: bool, frame: bytes | None) -> None:
    """Every book (named in ``frame``, or all when None) equals the clean run's, or the run one
    frame ahead's (after garbage made of the next frame), or is resynced and empty."""
    assert set(faulty.scheme.books) <= set(clean.scheme.books)
    for native, book in faulty.scheme.books.items():
        if frame is not None and native.encode() not in frame:
            continue
        if native in faulty.scheme.unsynced:
            assert book.count(0) == 0 and book.count(1) == 0
            continue
        assert _same(book, clean.scheme.books[native]) or (early and _same(book, ahead.scheme.books[native])), native


def run_fuzz(stream, data) -> None:
    """Real frames to three harnesses: ``faulty`` (also gets the garbage), ``clean``, and
    ``ahead`` (one real frame further). ``stream`` = (scheme class, instruments, frames, prefix
    length after which every book is synced)."""
    scheme_cls, instruments, frames, prefix = stream
    faulty, clean, ahead = (Harness(scheme_cls, instruments) for _ in range(3))
    start = data.draw(st.integers(prefix, min(prefix + 400, len(frames) - 42)), label="start")
    for ts, frame in frames[:start]:
        faulty.feed(frame, ts)
        clean.feed(frame, ts)
        ahead.feed(frame, ts)
    ahead.feed(frames[start][1], frames[start][0])
    assert faulty.scheme.books and not faulty.scheme.unsynced
    limit = 64 * 1024
    faulty.scheme.max_frame_bytes = limit  # smaller than the default, to reach it cheaply
    steps = data.draw(st.lists(st.booleans(), min_size=1, max_size=40), label="steps (True = garbage)")
    i = start
    not_json = 0
    early = False
    for is_garbage in steps:
        if is_garbage:
            use_next = data.draw(st.booleans(), label="seed: next frame (else the last)")
            seed_ts, seed = frames[i] if use_next else frames[i - 1]
            kind, frame = data.draw(garbage(seed, limit), label="garbage")
            early = early or use_next
            errors_before = faulty.metrics.errors.total
            produced = faulty.feed(frame, seed_ts)
            if (kind in ("oversize", "deep") or not is_json(frame)) and frame != b"pong":
                not_json += 1
                assert faulty.metrics.errors.total > errors_before, (kind, frame[:200])
        else:
            ts, frame = frames[i]
            produced = faulty.feed(frame, ts)
            clean.feed(frame, ts)
            i += 1
            ahead.feed(frames[i][1], frames[i][0])
            early = False
        for topic, record in produced:
            check_event(topic, record)
        # a frame can only touch the books it names (damage never writes another valid name);
        # the books it does not name are compared once more at the end
        _check_books(faulty, clean, ahead, early, frame)
    _check_books(faulty, clean, ahead, early, None)
    assert faulty.metrics.errors.total >= not_json
    assert clean.metrics.errors.total == 0 and clean.metrics.gaps == 0
    # every resynced book is counted (a copy of a real snapshot may have rebuilt one already)
    assert faulty.metrics.resyncs >= len(faulty.scheme.unsynced)


@lru_cache(maxsize=1)
def deribit_stream():
    frames = recv_frames(fixture_path("cryptofeed/DERIBIT.ws.1.0"))
    last_snapshot = max(i for i, (_, d) in enumerate(frames) if b'"type":"snapshot"' in d)
    return DeribitScheme, listing(), frames, last_snapshot + 1


@SETTINGS
@given(data=st.data())
def test_fuzz_deribit(data):
    run_fuzz(deribit_stream(), data)


@settings(max_examples=_EXAMPLES or 200, deadline=None, derandomize=not _EXAMPLES, database=None)
@given(frame=st.binary(max_size=400))
def test_random_bytes(frame):
    h = Harness(DeribitScheme)
    for topic, record in h.feed(frame):
        check_event(topic, record)
    if not is_json(frame):
        assert h.metrics.errors.total == 1


@settings(max_examples=_EXAMPLES or 200, deadline=None, derandomize=not _EXAMPLES, database=None)
@given(name=st.text(max_size=40), strike=st.text(max_size=12), price=st.binary(max_size=30))
def test_parsers_raise_nothing_unexpected(name, strike, price):
    try:
        inst = name_instrument(name)
    except KeyError:
        pass
    else:
        assert inst.symbol and inst.native == name
    try:
        assert strike_text(strike)
    except KeyError:
        pass
    assert valid_level(price, price, 8, 8) in (True, False)
