"""Fuzzing the Kraken schemes with malformed frames (hypothesis).

Each example starts from books synced on a real stream (the v1 book capture, the same stream in
the v2 wire format, the Kraken Futures capture), then interleaves the following real frames with
garbage: random bytes, truncated real frames, oversized frames, JSON nested 20000 deep, and copies
of a real frame
with one field (or container) replaced by a value of another type or an absurd number (``1e400``,
``-1``, ``NaN``, ``"9"*40``, ...). After every frame:

- no exception escapes ``on_frame`` (it is called directly, without the replay's safety net);
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
import math
import os
import re
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atomfast.exchanges.kraken import KrakenSpotScheme, KrakenSpotV1Scheme
from atomfast.exchanges.kraken.parse import rfc3339_to_ms, secs_to_ms, valid_level
from atomfast.exchanges.kraken_futures import KrakenFuturesScheme
from tests.conftest import FIXTURES
from tests.test_kraken_spot import Harness, capture_instruments, recv_frames, v1_to_v2_frames

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "atomfast" / "schemas"
#: ATOMFAST_FUZZ_EXAMPLES=N: N random examples per test (a deeper hunt); by default a fixed
#: (derandomized) set, the same on every run
_EXAMPLES = int(os.environ.get("ATOMFAST_FUZZ_EXAMPLES", "0"))
SETTINGS = settings(max_examples=_EXAMPLES or 75, deadline=None, derandomize=not _EXAMPLES, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

HUGE = "\x00HUGE\x00"  # replaced by the bare JSON number 1e400 after encoding
NEG = "\x00NEG\x00"  # replaced by the bare JSON number -0.5
#: absurd values: for a number field only these (another number could be a valid lie, e.g. qty 0);
#: for any other field, any value of another JSON type
ABSURD_NUMBERS = [-1, 2**64 + 1, HUGE, NEG]
NUMERIC = re.compile(r"[0-9]+(\.[0-9]+)?").fullmatch
ABSURD_STRINGS = ["", "x", "-1", "NaN", "inf", "1e400", "9" * 40, "9" * 5000]
WRONG = [None, True, False, 0, 1.5, -2.5, [], {}, [1, 2], {"a": 1}, *ABSURD_NUMBERS, *ABSURD_STRINGS]


# ------------------------------------------------------------------------------------------------
# schema check of every event


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
            value.encode("utf-8")  # no lone surrogates
        elif kind == "double":
            assert isinstance(value, float) and math.isfinite(value), (topic, name, value)
        elif kind == "long":
            assert isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63, (topic, name, value)
        elif kind == "int":
            assert isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31, (topic, name, value)
        elif kind == "boolean":
            assert isinstance(value, bool), (topic, name, value)
        else:  # pragma: no cover - a schema type this check does not know
            raise AssertionError(f"{topic}.{name}: unexpected schema type {ftype!r}")


# ------------------------------------------------------------------------------------------------
# garbage


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
    """Damage, never a well-formed alternative: a value of another JSON type, an absurd number
    where a number was, an absurd string where a string was."""
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
    if kind == "deep":  # nested deeper than msgspec goes (it raises RecursionError)
        n = draw(st.sampled_from([2000, 20000]))
        return kind, (seed[:1] + b'"a",' if seed[:1] == b"[" else b'{"a":') + b"[" * n + b"]" * n + seed[-1:]
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
        if kind == "absurd number":  # aim at the numbers: prices, sizes, times, sequence numbers
            if _category(old) == "number" or (isinstance(old, str) and NUMERIC(old)):
                paths.append((path, ABSURD_NUMBERS + ABSURD_STRINGS if isinstance(old, str) else ABSURD_NUMBERS))
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


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return False
    return True


# ------------------------------------------------------------------------------------------------
# the streams


def _path(name: str) -> Path:
    path = FIXTURES / "cryptofeed" / name
    if not path.exists():
        pytest.skip(f"recorded capture {path} is absent")
    return path


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
        path = _path("KRAKEN_FUTURES.ws.1.0")
        frames = recv_frames(path)
        last_snapshot = max(i for i, (_, d) in enumerate(frames) if b'"book_snapshot"' in d)
        return KrakenFuturesScheme, capture_instruments(path, KrakenFuturesScheme), frames, last_snapshot + 1
    path = _path("KRAKEN.ws.50.0")
    frames = batched(recv_frames(path))
    if which == "v2":
        v1_inst = capture_instruments(path, KrakenSpotV1Scheme)
        frames = v1_to_v2_frames(frames, v1_inst, exponent=True)
        return KrakenSpotScheme, capture_instruments(path, KrakenSpotScheme), frames, 6
    last_snapshot = max(i for i, (_, d) in enumerate(frames) if b'"as":' in d)
    return KrakenSpotV1Scheme, capture_instruments(path, KrakenSpotV1Scheme), frames, last_snapshot + 1


def _same(book, other) -> bool:
    return book.levels(0) == other.levels(0) and book.levels(1) == other.levels(1)


def run_fuzz(which: str, data) -> None:
    """Real frames to three harnesses: ``faulty`` (also gets the garbage), ``clean``, and
    ``ahead`` (one real frame further). Garbage is made from the last real frame or from the
    next one; a well-formed leftover of the next one may apply it early, so until that frame
    arrives a book may also equal the ``ahead`` book."""
    scheme_cls, instruments, frames, prefix = stream(which)
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
    early = False  # garbage made of the next frame was fed since the last real frame
    for is_garbage in steps:
        if is_garbage:
            use_next = data.draw(st.booleans(), label="seed: next frame (else the last)")
            seed_ts, seed = frames[i] if use_next else frames[i - 1]
            kind, frame = data.draw(garbage(seed, limit), label="garbage")
            early = early or use_next
            errors_before = faulty.metrics.errors.total
            produced = faulty.feed(frame, seed_ts)  # on_frame called directly: nothing may escape
            if kind in ("oversize", "deep") or not _is_json(frame):
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
        # every book: equal to the clean run's, or resynced (never silently wrong)
        assert set(faulty.scheme.books) <= set(clean.scheme.books)
        for native, book in faulty.scheme.books.items():
            if native in faulty.scheme.unsynced:
                assert book.count(0) == 0 and book.count(1) == 0
                continue
            assert _same(book, clean.scheme.books[native]) or (early and _same(book, ahead.scheme.books[native])), native
    assert faulty.metrics.errors.total >= not_json
    assert clean.metrics.errors.total == 0 and clean.metrics.checksum_failed == 0 and clean.metrics.gaps == 0
    assert faulty.metrics.resyncs == len(faulty.scheme.unsynced)


@SETTINGS
@given(data=st.data())
def test_fuzz_spot_v1(data):
    run_fuzz("v1", data)


@SETTINGS
@given(data=st.data())
def test_fuzz_spot_v2(data):
    run_fuzz("v2", data)


@SETTINGS
@given(data=st.data())
def test_fuzz_futures(data):
    run_fuzz("futures", data)


@settings(max_examples=_EXAMPLES or 300, deadline=None, derandomize=not _EXAMPLES, database=None)
@given(frame=st.binary(max_size=400))
def test_random_bytes_into_every_scheme(frame):
    for scheme_cls in (KrakenSpotV1Scheme, KrakenSpotScheme, KrakenFuturesScheme):
        h = Harness(scheme_cls)
        before = h.metrics.errors.total
        for topic, record in h.feed(frame):
            check_event(topic, record)
        if not _is_json(frame):
            assert h.metrics.errors.total == before + 1


@settings(max_examples=_EXAMPLES or 300, deadline=None, derandomize=not _EXAMPLES, database=None)
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
