"""Fuzzing the Binance decoders: nothing escapes ``on_frame`` / ``on_rest`` (the test kit's harness
fails the test if the frame driver had to catch an exception), bad input is counted,
and a book is never left corrupted (its invariants hold; a live book only ever holds what valid
messages put there).

Inputs: arbitrary bytes; documented message shapes with any field replaced by arbitrary JSON;
real recorded frames (hftbacktest spot and USD-M) with random byte edits, fed to a scheme whose
books are live.
"""
from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from atomfast.capture import REST, RECV
from atomfast.exchanges.binance import BinanceDeliveryScheme, BinanceFuturesScheme, BinanceSpotScheme
from atomfast.testing import Harness, capture_frames, fuzz_settings, is_json

HB_SPOT = "hftbacktest/spot/btcusdt_20240808.gz"
HB_USDM = "hftbacktest/usdm/btcusdt_20240808.gz"

SCHEMES = [BinanceSpotScheme, BinanceFuturesScheme, BinanceDeliveryScheme]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
    | st.sampled_from(["0", "-1", "1e400", "nan", "0.000000001", "99999999999999999999", "1.5", "BTCUSDT", ""]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=12,
)

TEMPLATES = [
    ("btcusdt@depth@100ms", {"e": "depthUpdate", "E": 1, "T": 1, "s": "BTCUSDT", "U": 2, "u": 3, "pu": 1,
                             "b": [["100.0", "1"]], "a": [["101.0", "0"]]}),
    ("btcusdt@trade", {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 5, "p": "1.5", "q": "2", "T": 3, "m": True}),
    ("btcusdt@aggTrade", {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 5, "p": "1.5", "q": "2", "f": 1, "l": 2,
                          "T": 3, "m": False}),
    ("btcusdt@bookTicker", {"u": 1, "s": "BTCUSDT", "b": "1", "B": "2", "a": "3", "A": "4"}),
    ("btcusdt@kline_1m", {"e": "kline", "E": 1, "s": "BTCUSDT", "k": {
        "t": 0, "T": 59999, "s": "BTCUSDT", "i": "1m", "o": "1", "c": "1", "h": "1", "l": "1", "v": "1", "n": 1,
        "x": False}}),
    ("btcusdt@markPrice@1s", {"e": "markPriceUpdate", "E": 1, "s": "BTCUSDT", "p": "1", "r": "0.0001", "T": 2}),
]


def _check_books(scheme) -> None:
    for native, book in scheme.books.items():
        book._validate()
        st_ = scheme.sync.get(native)
        if st_ is not None and not st_.live:
            # a book not live is empty (dropped by a resync) or marked unsynced (disconnected)
            assert len(book) == 0 or native in scheme.unsynced


@fuzz_settings(200)
@given(st.sampled_from(SCHEMES), st.binary(max_size=300))
def test_arbitrary_bytes(scheme_cls, data):
    h = Harness(scheme_cls)
    before = h.metrics.errors.total
    h.feed(data)
    if not is_json(data):
        assert h.metrics.errors.total == before + 1
    _check_books(h.scheme)


@fuzz_settings(200)
@given(st.sampled_from(SCHEMES), st.sampled_from(TEMPLATES), st.data())
def test_documented_shapes_with_any_field_replaced(scheme_cls, template, data):
    stream, payload = template
    payload = json.loads(json.dumps(payload))
    target = payload["k"] if "k" in payload and data.draw(st.booleans()) else payload
    key = data.draw(st.sampled_from(sorted(target)))
    if data.draw(st.booleans()):
        target[key] = data.draw(json_values)
    else:
        del target[key]
    wrapped = data.draw(st.booleans())
    frame = json.dumps({"stream": stream, "data": payload} if wrapped else payload, separators=(",", ":"))
    h = Harness(scheme_cls)
    # a live book first, so depth messages reach the book
    h.feed({"stream": "btcusdt@depth@100ms", "data": {"e": "depthUpdate", "E": 1, "T": 1, "s": "BTCUSDT", "U": 1,
                                                      "u": 1, "pu": 0, "b": [], "a": []}})
    url = h.scheme.snapshot_url("BTCUSDT")
    h.rest(url, {"lastUpdateId": 1, "bids": [["99.0", "1"]], "asks": [["102.0", "1"]]})
    assert h.scheme.sync["BTCUSDT"].live
    levels = dict(zip(("b", "a"), (h.scheme.books["BTCUSDT"].levels(0), h.scheme.books["BTCUSDT"].levels(1))))
    errors = h.metrics.errors.total
    out = h.feed(frame)
    _check_books(h.scheme)
    book = h.scheme.books["BTCUSDT"]
    if h.metrics.errors.total > errors:
        # refused: nothing published but (for a book message) the resync status; the book is
        # either untouched or dropped
        assert {t for t, _ in out} <= {"status"}
        assert len(book) == 0 or (book.levels(0), book.levels(1)) == (levels["b"], levels["a"])
    for _, rec in out:
        for v in rec:
            if isinstance(v, float):
                assert v == v and abs(v) < 1e15


@fuzz_settings(100)
@given(st.sampled_from(SCHEMES), st.sampled_from(["depth", "oi", ""]), json_values | st.binary(max_size=100))
def test_rest_answers(scheme_cls, kind, body):
    h = Harness(scheme_cls)
    h.feed({"stream": "btcusdt@depth@100ms", "data": {"e": "depthUpdate", "E": 1, "T": 1, "s": "BTCUSDT", "U": 5,
                                                      "u": 6, "pu": 4, "b": [], "a": []}})
    oi_url = f"{h.scheme.rest_url}{h.scheme.rest_endpoint.routes.open_interest or '/x'}?symbol=BTCUSDT"
    url = {"depth": h.scheme.snapshot_url("BTCUSDT"), "oi": oi_url, "": ""}[kind]
    h.rest(url, body if isinstance(body, bytes) else json.dumps(body).encode())
    _check_books(h.scheme)


# ------------------------------------------------------------------------------------------------
# real frames, randomly edited


def _session(relative: str, n: int) -> tuple[list[bytes], bytes, list[bytes]]:
    """The frames before the inline snapshot, the snapshot, and the next n frames."""
    before: list[bytes] = []
    after: list[bytes] = []
    snapshot = b""
    for f in capture_frames(relative):
        if f.kind == REST:
            snapshot = f.data
        elif f.kind == RECV:
            (after if snapshot else before).append(f.data)
            if len(after) >= n:
                break
    return before, snapshot, after


_SESSIONS: dict[str, tuple] = {}


def session(relative: str):
    if relative not in _SESSIONS:
        _SESSIONS[relative] = _session(relative, 120)
    return _SESSIONS[relative]


edits = st.lists(st.tuples(st.sampled_from(["set", "del", "ins"]), st.integers(0, 5000),
                           st.binary(min_size=1, max_size=3)), min_size=1, max_size=3)


@fuzz_settings(100)
@given(st.sampled_from([(HB_SPOT, BinanceSpotScheme), (HB_USDM, BinanceFuturesScheme)]), st.integers(0, 119), edits)
def test_edited_real_frames(case, index, changes):
    relative, scheme_cls = case
    before, snapshot, after = session(relative)
    h = Harness(scheme_cls)
    for data in before:
        h.feed(data, 1)
    h.rest("", snapshot, 1)
    for data in after[:index]:
        h.feed(data, 1)
    assert h.metrics.errors.total == 0 and h.scheme.sync["BTCUSDT"].live
    frame = bytearray(after[index])
    for op, pos, blob in changes:
        pos %= len(frame) + 1
        if op == "set":
            frame[pos : pos + len(blob)] = blob
        elif op == "del":
            del frame[pos : pos + len(blob)]
        else:
            frame[pos:pos] = blob
    h.feed(bytes(frame), 2)
    _check_books(h.scheme)
    # the rest of the session goes on: either the book is live, or it waits for a snapshot
    for data in after[index + 1 :]:
        h.feed(data, 3)
    _check_books(h.scheme)
    st_ = h.scheme.sync["BTCUSDT"]
    assert st_.live or st_.pending
