"""Fuzzing the Coinbase scheme's decoders with malformed frames (hypothesis).

Each example replays a real stream -- the first 300 frames of ``COINBASE.ws.28.0`` (level 2,
ticker, matches), or the generated level-3 stream of ``test_coinbase`` in the documented
full-channel shapes -- with garbage frames inserted before some real frames: random bytes,
truncated real frames, JSON nested deeper than msgspec goes, and copies of the real frame (or
of the one before) with one field or container replaced by a value of another JSON type or by
an absurd number or string (``1e400``, ``-1``, ``NaN``, ``"9"*40``, ...). ``on_frame`` is
called directly (no replay safety net):

- no exception escapes;
- every event is valid for its Avro schema (types, finite doubles, longs in range);
- garbage that is not JSON is counted as bad input;
- at the end every book is intact (``_validate``) and equals the clean run's, unless it was
  resynced (level 2: in ``unsynced``; level 3: waiting for its snapshot).

Damage never makes a well-formed alternative message (a number only becomes an absurd one, a
string an absurd one, an order or trade id only a value of another type, anything else a value
of another type): a different but well-formed message is not bad input. A copy damaged in a
field the scheme does not read is the real message itself: sizes are absolute and level-3
messages are sequenced, so it changes nothing once the real one has been applied.
"""
from __future__ import annotations

import functools
import json
import math
import os
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atomfast.book import ASK, BID
from atomfast.capture import RECV, open_capture
from tests.conftest import fixture_path
from tests.test_coinbase import CAPTURE, Harness, _stream, listing

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "atomfast" / "schemas"
_EXAMPLES = int(os.environ.get("ATOMFAST_FUZZ_EXAMPLES", "0"))
SETTINGS = settings(max_examples=_EXAMPLES or 60, deadline=None, derandomize=not _EXAMPLES, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

HUGE = "\x00HUGE\x00"  # the bare JSON number 1e400 after encoding
NEG = "\x00NEG\x00"  # the bare JSON number -0.5
ABSURD_NUMBERS = [-1, 2**64 + 1, HUGE, NEG]
ABSURD_STRINGS = ["", "x", "-1", "NaN", "inf", "1e400", "9" * 40, "9" * 5000, "1" * 30 + ".5"]
WRONG = [None, True, False, 0, 1.5, -2.5, [], {}, [1, 2], {"a": 1}, *ABSURD_NUMBERS, *ABSURD_STRINGS]
NUMERIC = re.compile(r"[0-9]+(\.[0-9]+)?").fullmatch
#: order and trade ids: damaged only into values of another JSON type
ID_KEYS = {"order_id", "maker_order_id", "taker_order_id", "trade_id", "id", "id_str", "buy_order_id", "sell_order_id"}


@functools.lru_cache(maxsize=1)
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
def garbage(draw, seed: bytes):
    """(kind, bytes) of one malformed frame derived from ``seed`` (a real frame)."""
    kind = draw(st.sampled_from(["random", "truncated", "wrong type", "wrong type", "absurd number", "deep"]))
    if kind == "random":
        return kind, draw(st.binary(max_size=200))
    if kind == "deep":
        n = draw(st.sampled_from([2000, 20000]))
        return kind, b'{"a":' + b"[" * n + b"]" * n + b"}"
    if kind == "truncated":
        return kind, seed[: draw(st.integers(0, max(0, len(seed) - 1)))]
    value = json.loads(seed)
    paths = []
    for path in _paths(value):
        old = value
        for p in path:
            old = old[p]
        if kind == "absurd number":
            if path and path[-1] in ID_KEYS:
                continue
            if _category(old) == "number" or (isinstance(old, str) and NUMERIC(old)):
                paths.append((path, ABSURD_NUMBERS + ABSURD_STRINGS if isinstance(old, str) else ABSURD_NUMBERS))
            continue
        options = [w for w in WRONG if _differs(old, w)]
        if path and path[-1] in ID_KEYS:  # another id is a well-formed message about another order
            options = [w for w in options if _category(w) != _category(old)]
        if options:
            paths.append((path, options))
    if not paths:
        return "truncated", seed[:-1]
    path, options = draw(st.sampled_from(paths))
    text = json.dumps(_replace(value, path, draw(st.sampled_from(options))), separators=(",", ":"))
    return kind, text.replace(json.dumps(HUGE), "1e400").replace(json.dumps(NEG), "-0.5").encode()


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return False
    return True


def feed_checked(h, data: bytes, recv_ns: int, garbage_kind: str | None = None) -> None:
    """One frame straight into ``on_frame``; events schema-checked; non-JSON counted."""
    before = h.metrics.errors.total
    h.scheme.on_frame(h.conn, data, recv_ns)  # no safety net: an exception fails the test
    h.pipeline.end_frame()
    if garbage_kind is not None and not _is_json(data):
        assert h.metrics.errors.total > before, (garbage_kind, data[:100])


def check_all_events(h, start: int = 0) -> None:
    for topic, record in h.sink.records[start:]:
        check_event(topic, record)


# ------------------------------------------------------------------------------------------------
# level 2, ticker, matches: the real capture


@functools.lru_cache(maxsize=1)
def l2_stream() -> tuple:
    frames = [f for f in open_capture(fixture_path(CAPTURE)).frames() if f.kind == RECV]
    return tuple((f.ts_ns, f.data) for f in frames[:300])


@functools.lru_cache(maxsize=1)
def l2_clean() -> dict:
    h = Harness(instruments=listing())
    for ts, data in l2_stream():
        h.feed(data, ts)
    assert h.metrics.errors.total == 0
    return {p: (b.levels(BID), b.levels(ASK)) for p, b in h.scheme.books.items()}


@settings(SETTINGS, max_examples=_EXAMPLES or 40)
@given(st.data())
def test_fuzz_level2_capture(data):
    stream = l2_stream()
    clean = l2_clean()
    spots = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), min_size=1, max_size=6)))
    h = Harness(instruments=listing())
    first = None  # the events before the first garbage are the clean run's
    for i, (ts, frame) in enumerate(stream):
        if spots and spots[0] == i:
            if first is None:
                first = len(h.sink.records)
            spots.pop(0)
            seed = stream[i - data.draw(st.integers(0, 1))][1]
            kind, bad = data.draw(garbage(seed))
            feed_checked(h, bad, ts, kind)
        feed_checked(h, frame, ts)
    check_all_events(h, first)
    for product, book in h.scheme.books.items():
        book._validate()
        if product not in h.scheme.unsynced:
            assert (book.levels(BID), book.levels(ASK)) == clean[product], product


# ------------------------------------------------------------------------------------------------
# level 3: the generated full-channel stream


@functools.lru_cache(maxsize=1)
def l3_stream() -> tuple:
    ref, start, msgs, snaps = _stream(seed=11, steps=150)
    frames = [json.dumps(m, separators=(",", ":")).encode() for m in msgs]
    return start, tuple(frames), tuple(snaps)


def run_l3(frames, snaps, start, data=None):
    h = Harness(channels=("lob_l3", "trades_l3", "trades"))
    h.feed({"type": "subscriptions", "channels": [{"name": "full", "product_ids": ["BTC-USD"]}]})
    h.rest(h.conn.fetches.pop(), start)
    spots = sorted(data.draw(st.sets(st.integers(1, len(frames) - 1), min_size=1, max_size=6))) if data else []
    for i, frame in enumerate(frames):
        if spots and spots[0] == i:
            spots.pop(0)
            seed = frames[i - data.draw(st.integers(0, 1))]
            kind, bad = data.draw(garbage(seed))
            feed_checked(h, bad, 1_700_000_000_000_000_000 + i, kind)
        feed_checked(h, frame, 1_700_000_000_000_000_000 + i)
        if h.conn.fetches:  # a resync: the exchange answers with its book as of now
            h.rest(h.conn.fetches.pop(), snaps[i])
    return h


@functools.lru_cache(maxsize=1)
def l3_clean():
    start, frames, snaps = l3_stream()
    h = run_l3(frames, snaps, start)
    assert (h.metrics.errors.total, h.metrics.gaps) == (0, 0)
    book = h.scheme.l3["BTC-USD"].book
    return book.levels(BID), book.levels(ASK), sorted((str(o), book.order(o)) for o in _ids(frames, start)
                                                      if o in book)


def _ids(frames, start) -> set:
    ids = {o for side in ("bids", "asks") for _, _, o in start[side]}
    for f in frames:
        m = json.loads(f)
        ids.add(m.get("order_id") or m.get("maker_order_id"))
    return ids


@SETTINGS
@given(st.data())
def test_fuzz_level3_generated(data):
    start, frames, snaps = l3_stream()
    h = run_l3(frames, snaps, start, data)
    check_all_events(h)
    st_ = h.scheme.l3["BTC-USD"]
    st_.book._validate()
    if st_.buffer is None:
        book = st_.book
        got = (book.levels(BID), book.levels(ASK), sorted((str(o), book.order(o)) for o in _ids(frames, start)
                                                          if o in book))
        assert got == l3_clean()
