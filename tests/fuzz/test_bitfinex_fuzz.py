"""Fuzzing the Bitfinex scheme with malformed frames (hypothesis).

Two real streams: the capture (``BITFINEX.ws.11.0``) with the checksum messages Bitfinex would
have sent inserted after every book message (so that the stream exercises P0 books, checksums,
sequence numbers, heartbeats, tickers and trade snapshots), and a stream of Bitfinex's documented
messages for the shapes the capture does not hold (R0 raw book, ``te``/``tu`` trades, candles,
derivatives status). Each example interleaves the real frames with garbage: random bytes,
truncated real frames, oversized frames, JSON nested 20000 deep, and copies of a neighbouring
real frame with one element replaced by a value of another JSON type or an absurd number
(``1e400``, ``2**64+1``, ``1e-30``). After every frame:

- no exception escapes ``on_frame`` (the harness fails the test if the frame driver had to
  catch one);
- every event is valid for its Avro schema (types, finite doubles, longs/ints in range);
- garbage that is not JSON at all (or nested deeper than a decoder goes) is counted as bad input.

At the end every book equals the book of a clean run of the same real frames, or is being
reloaded (resynced). Damage never makes a well-formed alternative message: a number is only
replaced by an absurd one (never by, say, -1, which is a valid ask amount on Bitfinex), anything
else by a value of another JSON type. A damaged copy still carries a sequence number already
seen (or none): the sequence rule sees it, so garbage with a readable number reloads the books.
"""
from __future__ import annotations

import json
from functools import lru_cache

from hypothesis import given, settings
from hypothesis import strategies as st

from atomfast.exchanges.bitfinex import BitfinexScheme
from atomfast.testing import ABSURD_STRINGS as KIT_ABSURD_STRINGS
from atomfast.testing import (
    HUGE,
    T0,
    TINY,
    Harness,
    bitfinex_with_checksums,
    capture_instruments,
    check_events,
    encode_damaged,
    fixture_path,
    fuzz_settings,
    json_paths,
    recv_frames,
    replace_at,
    signed32,
    value_at,
)

CAPTURE = "cryptofeed/BITFINEX.ws.11.0"
#: a number is only damaged into one of these (-1, say, is a valid ask amount on Bitfinex)
ABSURD_NUMBERS = [2**64 + 1, HUGE, TINY]
ABSURD_STRINGS = [s for s in KIT_ABSURD_STRINGS if s != "-1"]
WRONG = [None, True, False, [], {}, [1, 2], {"a": 1}, *ABSURD_STRINGS]


# ------------------------------------------------------------------------------------------------
# the real streams


@lru_cache(maxsize=1)
def capture_stream() -> tuple[tuple[int, bytes], ...]:
    return tuple(bitfinex_with_checksums(recv_frames(fixture_path(CAPTURE))))


def _cs(text: str) -> int:
    import zlib

    return signed32(zlib.crc32(text.encode()))


DOC_STREAM: tuple[bytes, ...] = tuple(s.encode() for s in [
    '{"event":"info","version":2,"serverId":"x","platform":{"status":1}}',
    '{"event":"conf","status":"OK","flags":196608}',
    '{"event":"subscribed","channel":"book","chanId":10092,"symbol":"tETHUSD","prec":"R0","freq":"F0","len":"25",'
    '"pair":"ETHUSD"}',
    "[10092,[[34753002978,7294.7,1.54340371],[34753002980,7294.7,0.5],[34753002979,7295,-2]],1]",
    f'[10092,"cs",{_cs("34753002978:1.54340371:34753002979:-2:34753002980:0.5")},2]',
    '{"event":"subscribed","channel":"trades","chanId":17470,"symbol":"tBTCUSD","pair":"BTCUSD"}',
    "[17470,[[401597393,1574694475039,0.005,7244.9],[401597392,1574694470503,-0.01,7245.3]],3]",
    "[10092,[34753002978,7294.7,1.2],4]",
    '[17470,"te",[401597395,1574694478808,0.005,7245.3],5]',
    '{"event":"subscribed","channel":"candles","chanId":343351,"key":"trade:1m:tBTCUSD"}',
    "[343351,[[1574698260000,7379.785503,7383.8,7388.3,7379.785503,1.68829482]],6]",
    '[17470,"tu",[401597395,1574694478808,0.005,7245.3],7]',
    "[343351,[1574698200000,7399.9,7379.7,7399.9,7371.8,41.63633658],8]",
    '{"event":"subscribed","channel":"status","chanId":335856,"key":"deriv:tBTCF0:USTF0"}',
    "[335856,[1596124822000,null,0.896,0.771995,null,1396531.67460709,null,1596153600000,0.0001056,6,null,"
    "-0.01381344,null,null,0.7664,null,null,246502.09001551,null,null,null,null,0.3],9]",
    "[10092,[34753002979,7295.5,-2],10]",
    '[10092,"hb",11]',
    "[10092,[34753002980,0,1],12]",
    f'[10092,"cs",{_cs("34753002978:1.2:34753002979:-2")},13]',
    '{"event":"subscribed","channel":"ticker","chanId":2,"symbol":"tBTCUSD","pair":"BTCUSD"}',
    "[2,[7616.5,31.89055171,7617.5,43.358118629999986,-550.8,-0.0674,7617.1,8314.71200815,8257.8,7500],14]",
    "[10092,[34753002981,7290,3],15]",
])


# ------------------------------------------------------------------------------------------------
# garbage


@st.composite
def damaged(draw, frame: bytes) -> bytes:
    value = json.loads(frame)
    paths = list(json_paths(value))
    path = draw(st.sampled_from(paths))
    old = value_at(value, path)
    if isinstance(old, bool) or old is None:
        new = draw(st.sampled_from([v for v in WRONG if type(v) is not type(old)] + [0, 1.5]))
    elif isinstance(old, (int, float)):
        new = draw(st.sampled_from(ABSURD_NUMBERS + WRONG))
    elif isinstance(old, str):
        new = draw(st.sampled_from([v for v in WRONG if v != old] + ABSURD_NUMBERS))
    else:
        new = draw(st.sampled_from([v for v in WRONG + ABSURD_NUMBERS if type(v) is not type(old)]))
    return encode_damaged(replace_at(value, path, new))


def garbage(frames):
    """Garbage made of ``frames`` (the real neighbours): (bytes, is_not_json)."""
    return st.one_of(
        st.binary(min_size=1, max_size=64).filter(lambda b: b[:1] not in (b"[", b"{")).map(lambda b: (b, True)),
        st.sampled_from(frames).flatmap(
            lambda f: st.integers(1, max(1, len(f) - 1)).map(lambda n: (f[:n], False))),
        st.sampled_from(frames).flatmap(lambda f: damaged(f).map(lambda b: (b, False))),
        st.just((b"[" * 20000 + b"]" * 20000, False)),
        st.just((b"[1," + b"9" * (9 * 1024 * 1024) + b"]", False)),
    )


def run(stream, inserts: dict[int, list[bytes]], instruments, channels) -> Harness:
    h = Harness(BitfinexScheme, instruments, channels)
    h.open(T0)
    for i, (ts, data) in enumerate(stream):
        for junk, not_json in inserts.get(i, ()):
            before = h.metrics.errors.total
            check_events(h.feed(junk, ts))
            if not_json:
                assert h.metrics.errors.total == before + 1
        check_events(h.feed(data, ts))
    return h


def check_books(fuzzed: Harness, clean: Harness) -> None:
    for key, book in clean.scheme.books.items():
        if key in fuzzed.scheme.unsynced:
            continue
        got = fuzzed.scheme.books[key]
        got._validate()
        if hasattr(book, "levels"):
            assert got.levels(0) == book.levels(0), key
            assert got.levels(1) == book.levels(1), key


@st.composite
def plan(draw, stream):
    n = len(stream)
    start = draw(st.integers(0, max(0, n - 40)))
    inserts: dict[int, list] = {}
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(start, min(n - 1, start + 40)))
        near = [stream[j][1] for j in range(max(0, at - 1), min(n, at + 2))]
        inserts.setdefault(at, []).append(draw(garbage(near)))
    return inserts


@lru_cache(maxsize=128)
def _clean_capture(end: int) -> Harness:
    return run(capture_stream()[:end], {}, capture_instruments(CAPTURE, BitfinexScheme), None)


@fuzz_settings(40)
@given(st.data())
def test_fuzz_capture_stream(data):
    stream = capture_stream()
    inserts = data.draw(plan(stream))
    end = min(len(stream), max(inserts) + 20)  # the stream up to a little after the last garbage
    fuzzed = run(stream[:end], inserts, capture_instruments(CAPTURE, BitfinexScheme), None)
    check_books(fuzzed, _clean_capture(end))


DOC = tuple((T0 + i * 1_000_000, f) for i, f in enumerate(DOC_STREAM))


def test_doc_stream_clean():
    h = run(DOC, {}, {}, BitfinexScheme.channels)
    m = h.metrics
    assert (m.errors.total, m.gaps, m.resyncs, m.checksum_ok, m.checksum_failed) == (0, 0, 0, 2, 0)
    # no spread: the raw book's top is not published when "lob" (P0) is subscribed too
    assert {t for t, _r in h.records} == {"status", "lob_l3", "trades", "candle", "funding_rate", "open_interest",
                                          "ticker"}
    # and the Avro encoder takes every one of them
    from atomfast.avro import AvroEncoder

    encoder = AvroEncoder("single_object")
    for topic in {t for t, _r in h.records}:
        records = [r for t, r in h.records if t == topic]
        assert len(encoder.encode_many(topic, records)) == len(records)


@fuzz_settings(40)
@given(st.data())
def test_fuzz_documented_stream(data):
    inserts = data.draw(plan(DOC))
    fuzzed = run(DOC, inserts, {}, BitfinexScheme.channels)
    check_books(fuzzed, run(DOC, {}, {}, BitfinexScheme.channels))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(JSON_VALUES, st.sampled_from([10092, 17470, 343351, 335856, 2, 777]))
def test_fuzz_decoders_any_payload(payload, chan):
    """Any JSON payload on every channel kind (R0 book, trades, candles, status, ticker, an
    unknown channel), with and without a sequence number, and as an event: no exception, every
    event valid for its schema."""
    h = run(DOC, {}, {}, BitfinexScheme.channels)
    frames = [encode_damaged([chan, payload, 16]), encode_damaged([chan, payload]), encode_damaged([chan, "te", payload, 16]),
              encode_damaged(payload), encode_damaged({"event": "subscribed", "channel": payload, "chanId": chan}),
              encode_damaged({"event": payload, "code": 20061})]
    for frame in frames:
        check_events(h.feed(frame, T0))
