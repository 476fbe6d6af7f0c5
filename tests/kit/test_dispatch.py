"""The venue kit's route table (``atomfast.kit.dispatch.Dispatch``), executed by the compiled
``atomfast._dispatch.Router``: every branch, on real frames of the recorded captures (Kraken v1's
book and ticker, Binance's combined streams), through the product's frame driver (the test kit's
``Harness``), with the exact bad-input kinds and details.

- decode first: the lead byte; the route key by type or by ``field``; a known and ignored route;
  a key no route names (``unrouted``, its kind and the key's name); a refusal (``refused`` or
  ``unknown message``); malformed JSON (always counted, even with a fallback);
- prefiltered: a method's key, ``ByteAfter`` (Binance: the byte after ``@``, depth only as
  ``depth@``/``depth"``), ``Lookup`` (Kraken v1: the channelID in ``conn.state``, the channel kept
  on the scheme); the decoder of each key, a route without one (``msg=None``), ``unwrap``; no
  route (``no route for the frame``); refusals and malformed JSON (``refused``, the fallback, or
  counted);
- the venues moved onto the declarative prefilters (Binance, Kraken v1) on their captures.
"""
from __future__ import annotations

import msgspec
import pytest

from atomfast._dispatch import Router
from atomfast.exchanges.binance import BinanceSpotScheme
from atomfast.exchanges.kraken import KrakenSpotV1Scheme
from atomfast.kit.dispatch import ByteAfter, Dispatch, Lookup
from atomfast.scheme import Scheme
from atomfast.testing import T0, Harness, capture_instruments, fixture_path, recv_frames

KRAKEN_BOOK = "cryptofeed/KRAKEN.ws.50.0"
KRAKEN_TICKER = "cryptofeed/KRAKEN.ws.49.0"
BINANCE = "cryptofeed/BINANCE.ws.1.0"


def _frames(capture: str) -> list[bytes]:
    return [data for _, data in recv_frames(fixture_path(capture))]


def _first(capture: str, start: bytes) -> bytes:
    return next(d for d in _frames(capture) if d.startswith(start))


# --- real frames -----------------------------------------------------------------------------
SYSTEM_STATUS = b'{"connectionID":17843232920108168701,"event":"systemStatus","status":"online","version":"1.8.3"}'
HEARTBEAT = b'{"event":"heartbeat"}'


@pytest.fixture(scope="module")
def kraken():
    """(subscriptionStatus of channel 1664, a book update on it, a ticker frame of channel 1668)."""
    status = _first(KRAKEN_BOOK, b'{"channelID":1664,')
    update = _first(KRAKEN_BOOK, b'[1664,{"a":')
    ticker = _first(KRAKEN_TICKER, b"[1668,")
    assert SYSTEM_STATUS in _frames(KRAKEN_BOOK) and HEARTBEAT in _frames(KRAKEN_BOOK)
    return status, update, ticker


@pytest.fixture(scope="module")
def binance():
    """(a diff-depth frame, a bookTicker frame, an aggTrade frame) of nknusdt."""
    return (_first(BINANCE, b'{"stream":"nknusdt@depth@100ms"'), _first(BINANCE, b'{"stream":"nknusdt@bookTicker"'),
            _first(BINANCE, b'{"stream":"nknusdt@aggTrade"'))


# --- toy messages (msgspec decoders of those frames' shapes) ----------------------------------
class SystemStatus(msgspec.Struct, tag_field="event", tag="systemStatus"):
    status: str


class Heartbeat(msgspec.Struct, tag_field="event", tag="heartbeat"):
    pass


class SubscriptionStatus(msgspec.Struct, tag_field="event", tag="subscriptionStatus"):
    channelID: int
    pair: str


EVENTS = msgspec.json.Decoder(SystemStatus | Heartbeat | SubscriptionStatus)


class Event(msgspec.Struct):
    event: str


class Subscribed(msgspec.Struct):
    channelID: int


class Depth(msgspec.Struct):
    s: str
    U: int
    u: int


class DepthFrame(msgspec.Struct):
    stream: str
    data: Depth


class Ticker(msgspec.Struct):
    s: str
    b: str


class TickerFrame(msgspec.Struct):
    stream: str
    data: Ticker


ARRAY = msgspec.json.Decoder(list)


class Channel:
    """What Kraken v1 keeps in ``conn.state`` per channelID (its ``kind`` routes)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind


class Rec(Scheme):
    """Records what the route table hands it."""

    exchange = "toy"
    ws_url = "ws://toy.example"
    channels = {"trades": "trades"}

    def __init__(self, *args, **kwargs) -> None:
        self.calls: list[tuple] = []
        super().__init__(*args, **kwargs)

    def subscribe_messages(self, channel, natives):
        return []

    def _a(self, conn, msg, data, recv_ns):
        self.calls.append(("a", msg, data, recv_ns))

    def _b(self, conn, msg, data, recv_ns):
        self.calls.append(("b", msg, data, recv_ns))

    def _fallback(self, conn, data, recv_ns):
        self.calls.append(("fallback", data, recv_ns))

    def _refused(self, conn, data, recv_ns, exc):
        self.calls.append(("refused", type(exc), str(exc), data))

    def _key(self, conn, data):
        """A prefilter method: the frame's first byte (bytes)."""
        return data[:1]


def harness(dispatch: Dispatch) -> Harness:
    return Harness(type("Toy", (Rec,), {"dispatch": dispatch}))


def fed(h: Harness, data: bytes) -> tuple[list, list]:
    """(what the scheme was handed, the bad input counted) for one frame."""
    calls, reports = len(h.scheme.calls), len(h.reports)
    h.feed(data, T0)
    return h.scheme.calls[calls:], h.reports[reports:]


def _error(decoder, data: bytes) -> tuple[type, str]:
    try:
        decoder.decode(data)
    except msgspec.DecodeError as exc:
        return type(exc), str(exc)
    raise AssertionError("decoded")


# ------------------------------------------------------------------------------------------------
# the binding


def test_bind_hands_the_scheme_the_routers_bound_method():
    h = harness(Dispatch({SystemStatus: "_a"}, decoder=EVENTS))
    on_frame = h.scheme.on_frame
    assert type(on_frame).__name__ == "builtin_function_or_method"
    assert isinstance(on_frame.__self__, Router) and on_frame.__self__.scheme is h.scheme
    assert on_frame.__self__.dispatch is type(h.scheme).dispatch


def test_a_route_naming_no_method_is_refused_at_bind():
    with pytest.raises(TypeError, match="Toy: dispatch names '_nowhere', which it does not define"):
        harness(Dispatch({SystemStatus: "_nowhere"}, decoder=EVENTS))


def test_the_declaration_is_checked():
    with pytest.raises(ValueError, match="a decoder, or a prefilter, is needed"):
        Dispatch({})
    with pytest.raises(ValueError, match="need a prefilter"):
        Dispatch({}, decoder=EVENTS, decoders={b"x": EVENTS})
    with pytest.raises(ValueError, match="lead"):
        Dispatch({}, prefilter="_key", lead=b"{")
    with pytest.raises(ValueError, match="lead"):
        Dispatch({}, decoder=EVENTS, lead=b"{[")
    with pytest.raises(ValueError, match="unwrap goes with a prefilter"):
        Dispatch({}, decoder=EVENTS, unwrap="data")
    with pytest.raises(TypeError, match="neither a method name, ByteAfter nor Lookup"):
        Dispatch({}, prefilter=42)
    with pytest.raises(ValueError, match="each starts with the key byte"):
        ByteAfter(b'{"s":"', b"@", end=40, only={b"d": (b"xdepth",)})
    with pytest.raises(ValueError, match="one byte"):
        ByteAfter(b'{"s":"', b"@@", end=40)
    with pytest.raises(ValueError, match="end is past the prefix"):
        ByteAfter(b'{"s":"', b"@", end=3)
    with pytest.raises(ValueError, match="one byte"):
        Lookup(b",,", attr="kind")
    assert ByteAfter(b'{"s":"', b"@", end=40, only={b"d": b"depth@"}).only == {ord("d"): (b"depth@",)}


# ------------------------------------------------------------------------------------------------
# decode first


def test_decoded_routes_by_type_ignores_a_none_route_and_counts_an_unrouted_key(kraken):
    status, update, _ = kraken
    h = harness(Dispatch({SystemStatus: "_a", Heartbeat: None}, decoder=EVENTS))
    calls, reports = fed(h, SYSTEM_STATUS)
    assert calls == [("a", SystemStatus(status="online"), SYSTEM_STATUS, T0)] and reports == []
    assert fed(h, HEARTBEAT) == ([], [])
    # a known shape no route names: ``unrouted`` and the key's name
    assert fed(h, status) == ([], [("toy: unrouted", "'SubscriptionStatus'", status)])
    # the venue names the kind
    h = harness(Dispatch({SystemStatus: "_a"}, decoder=EVENTS, unrouted="unknown event"))
    assert fed(h, status) == ([], [("toy: unknown event", "'SubscriptionStatus'", status)])
    # the fallback takes it instead
    h = harness(Dispatch({SystemStatus: "_a"}, decoder=EVENTS, fallback="_fallback"))
    assert fed(h, status) == ([("fallback", status, T0)], [])


def test_decoded_routes_by_field_and_names_an_unrouted_value(kraken):
    status, _, _ = kraken
    h = harness(Dispatch({"systemStatus": "_a", "heartbeat": None}, decoder=msgspec.json.Decoder(Event), field="event"))
    assert fed(h, SYSTEM_STATUS) == ([("a", Event("systemStatus"), SYSTEM_STATUS, T0)], [])
    assert fed(h, HEARTBEAT) == ([], [])
    assert fed(h, status) == ([], [("toy: unrouted", "'subscriptionStatus'", status)])


def test_decoded_refusal_goes_to_refused_else_to_the_fallback_else_unknown_message(kraken):
    _, update, _ = kraken
    exc_type, text = _error(msgspec.json.Decoder(Event), update)
    assert exc_type is msgspec.ValidationError and text == "Expected `object`, got `array`"
    dispatch = dict(decoder=msgspec.json.Decoder(Event), field="event")
    h = harness(Dispatch({"systemStatus": "_a"}, **dispatch))
    assert fed(h, update) == ([], [("toy: unknown message", text, update)])
    h = harness(Dispatch({"systemStatus": "_a"}, fallback="_fallback", **dispatch))
    assert fed(h, update) == ([("fallback", update, T0)], [])
    h = harness(Dispatch({"systemStatus": "_a"}, fallback="_fallback", refused="_refused", **dispatch))
    assert fed(h, update) == ([("refused", msgspec.ValidationError, text, update)], [])


def test_decoded_malformed_json_is_counted_even_with_a_fallback_or_refused():
    truncated = SYSTEM_STATUS[:40]
    exc_type, text = _error(EVENTS, truncated)
    assert exc_type is msgspec.DecodeError and text == "Input data was truncated"
    for extra in ({}, {"fallback": "_fallback"}, {"fallback": "_fallback", "refused": "_refused"}):
        h = harness(Dispatch({SystemStatus: "_a"}, decoder=EVENTS, **extra))
        assert fed(h, truncated) == ([], [("toy: malformed JSON", text, truncated)])
        assert fed(h, b"pong") == ([], [("toy: malformed JSON", "JSON is malformed: invalid character (byte 0)", b"pong")])


def test_decoded_with_a_lead_byte(kraken):
    _, update, _ = kraken
    h = harness(Dispatch({SystemStatus: "_a"}, decoder=EVENTS, lead=b"{"))
    assert fed(h, SYSTEM_STATUS)[0][0][0] == "a"
    assert fed(h, update) == ([], [("toy: not a JSON object", "frame does not start with {", update)])
    assert fed(h, b"pong") == ([], [("toy: not a JSON object", "frame does not start with {", b"pong")])
    assert fed(h, b"") == ([], [("toy: not a JSON object", "frame does not start with {", b"")])
    # a frame that does start with it, malformed: decoded, counted as such
    assert fed(h, b"{") == ([], [("toy: malformed JSON", "Input data was truncated", b"{")])
    h = harness(Dispatch({SystemStatus: "_a"}, decoder=EVENTS, lead=b"{", fallback="_fallback"))
    assert fed(h, update) == ([("fallback", update, T0)], [])
    # a memoryview (a scheme with ``accepts_memoryview``) is read the same
    h.scheme.on_frame(h.conn, memoryview(SYSTEM_STATUS), T0)
    h.scheme.on_frame(h.conn, memoryview(update), T0)
    assert [c[0] for c in h.scheme.calls[-2:]] == ["a", "fallback"]


# ------------------------------------------------------------------------------------------------
# prefiltered: a method's key


def test_method_prefilter_decoders_per_key_and_a_route_without_one(kraken):
    _, update, _ = kraken
    h = harness(Dispatch({b"[": "_a", b"{": "_b", b"p": None}, prefilter="_key", decoders={b"[": ARRAY}))
    calls, reports = fed(h, update)
    assert reports == [] and calls[0][0] == "a" and calls[0][1][0] == 1664 and calls[0][1][2:] == ["book-1000", "WAVES/EUR"]
    assert fed(h, HEARTBEAT) == ([("b", None, HEARTBEAT, T0)], [])  # no decoder: handed msg=None
    assert fed(h, b"pong") == ([], [])  # ignored: not decoded
    assert fed(h, b"garbage") == ([], [("toy: unrouted", "no route for the frame", b"garbage")])
    assert fed(h, b"") == ([], [("toy: unrouted", "no route for the frame", b"")])


def test_prefiltered_refusal_and_malformed_go_to_refused_else_the_fallback_else_are_counted():
    d = {b"{": msgspec.json.Decoder(Subscribed)}
    invalid = SYSTEM_STATUS
    _, invalid_text = _error(d[b"{"], invalid)
    assert invalid_text == "Object missing required field `channelID`"
    truncated = SYSTEM_STATUS[:40]
    h = harness(Dispatch({b"{": "_a"}, prefilter="_key", decoders=d))
    assert fed(h, invalid) == ([], [("toy: unknown message", invalid_text, invalid)])
    assert fed(h, truncated) == ([], [("toy: malformed JSON", "Input data was truncated", truncated)])
    h = harness(Dispatch({b"{": "_a"}, prefilter="_key", decoders=d, unrouted="unknown channel"))
    assert fed(h, b"x") == ([], [("toy: unknown channel", "no route for the frame", b"x")])
    h = harness(Dispatch({b"{": "_a"}, prefilter="_key", decoders=d, fallback="_fallback"))
    assert fed(h, invalid) == ([("fallback", invalid, T0)], [])
    assert fed(h, truncated) == ([("fallback", truncated, T0)], [])
    assert fed(h, b"x") == ([("fallback", b"x", T0)], [])
    h = harness(Dispatch({b"{": "_a"}, prefilter="_key", decoders=d, fallback="_fallback", refused="_refused"))
    assert fed(h, invalid) == ([("refused", msgspec.ValidationError, invalid_text, invalid)], [])
    assert fed(h, truncated) == ([("refused", msgspec.DecodeError, "Input data was truncated", truncated)], [])
    assert fed(h, b"x") == ([("fallback", b"x", T0)], [])  # not routed: not a refusal


def test_prefiltered_default_decoder_for_keys_without_their_own():
    h = harness(Dispatch({b"{": "_a", b"[": "_b"}, prefilter="_key", decoder=EVENTS, decoders={b"[": ARRAY}))
    assert fed(h, HEARTBEAT) == ([("a", Heartbeat(), HEARTBEAT, T0)], [])
    assert fed(h, b"[1]") == ([("b", [1], b"[1]", T0)], [])


# ------------------------------------------------------------------------------------------------
# prefiltered: ByteAfter (Binance's combined streams)

STREAM = ByteAfter(b'{"stream":"', b"@", end=96, only={ord("d"): (b"depth@", b'depth"')})


def test_byte_after_routes_by_the_byte_after_the_marker_and_unwraps(binance):
    depth, ticker, agg = binance
    h = harness(Dispatch({ord("d"): "_a", ord("b"): "_b", ord("a"): None}, prefilter=STREAM, unwrap="data",
                         decoders={ord("d"): msgspec.json.Decoder(DepthFrame), ord("b"): msgspec.json.Decoder(TickerFrame)}))
    calls, reports = fed(h, depth)
    assert reports == [] and calls == [("a", Depth("NKNUSDT", 499869750, 499869752), depth, T0)]
    calls, reports = fed(h, ticker)
    assert reports == [] and calls == [("b", Ticker("NKNUSDT", "0.35210000"), ticker, T0)]
    assert fed(h, agg) == ([], [])  # ignored
    # a stream "depth" (no speed), as Binance spells the 1000 ms diff depth
    plain = depth.replace(b"@depth@100ms", b"@depth", 1)
    assert fed(h, plain)[0][0][0] == "a"
    # the byte must come after the marker within [len(prefix), end), the frame must start with the prefix
    unrouted = ("toy: unrouted", "no route for the frame")
    for frame in (depth.replace(b"@depth@100ms", b"@depth5@100ms", 1),  # partial depth: not ours
                  depth.replace(b"@depth@100ms", b"@depth20", 1),
                  depth.replace(b"@depth@100ms", b"@dxxxx@100ms", 1),  # d, but not "depth"
                  depth.replace(b'{"stream":', b'{"stream" :', 1),  # not the prefix
                  b'{"stream":"' + b"x" * 85 + b"@depth@100ms", b'{"stream":"nknusdt@',  # @ at byte 96; at the end
                  b'{"stream":"nknusdt', b'{"stream":"', b"", depth.replace(b"nknusdt@", b"nknusdt#", 1)):
        assert fed(h, frame) == ([], [(*unrouted, frame)]), frame
    # the last byte of the window: an @ at byte 95 counts (its key at byte 96)
    edge = b'{"stream":"' + b"x" * 84 + b'@bookTicker","data":{"s":"X","b":"1"}}'
    assert edge.index(b"@") == 95 and fed(h, edge) == ([("b", Ticker("X", "1"), edge, T0)], [])


def test_byte_after_on_a_memoryview(binance):
    depth, ticker, _ = binance
    h = harness(Dispatch({ord("d"): "_a", ord("b"): "_b"}, prefilter=STREAM, unwrap="data",
                         decoders={ord("d"): msgspec.json.Decoder(DepthFrame), ord("b"): msgspec.json.Decoder(TickerFrame)}))
    h.scheme.on_frame(h.conn, memoryview(depth), T0)
    h.scheme.on_frame(h.conn, memoryview(depth.replace(b"@depth@", b"@depth5@", 1)), T0)
    assert [c[0] for c in h.scheme.calls] == ["a"] and [r[:2] for r in h.reports] == [("toy: unrouted", "no route for the frame")]


# ------------------------------------------------------------------------------------------------
# prefiltered: Lookup (Kraken v1's channelIDs)

CHANNEL = Lookup(b",", attr="kind", keep="_channel")


def test_lookup_routes_by_the_state_entrys_kind_and_keeps_it_on_the_scheme(kraken):
    status, update, ticker = kraken
    h = harness(Dispatch({"book": "_a", "ticker": None, b"[": "_b", b"{": "_b"}, prefilter=CHANNEL,
                         decoders={"book": ARRAY, b"{": EVENTS}))
    book, tick = Channel("book"), Channel("ticker")
    h.conn.state.update({b"[1664,": book, b"[1668,": tick})
    h.scheme._channel = None
    calls, reports = fed(h, update)
    assert reports == [] and calls[0][0] == "a" and calls[0][1][0] == 1664 and h.scheme._channel is book
    assert fed(h, ticker) == ([], []) and h.scheme._channel is tick  # ignored, but the channel kept
    # a channelID not in the state: the first byte routes, the kept channel is left as it was
    other = update.replace(b"[1664,", b"[999,", 1)
    assert fed(h, other) == ([("b", None, other, T0)], []) and h.scheme._channel is tick
    assert fed(h, status) == ([("b", SubscriptionStatus(1664, "WAVES/EUR"), status, T0)], [])
    assert fed(h, b"pong") == ([], [("toy: unrouted", "no route for the frame", b"pong")])
    assert fed(h, b"") == ([], [("toy: unrouted", "no route for the frame", b"")])
    # a frame without the delimiter looks up b"" (never learnt: the first byte routes)
    assert fed(h, b"[1664") == ([("b", None, b"[1664", T0)], [])
    h.conn.state[b""] = book
    assert fed(h, b"[]")[0][0][:2] == ("a", [])
    # a state entry whose kind no route names: not routed
    h.conn.state[b"[7,"] = Channel("spread")
    assert fed(h, b'[7,{}]') == ([], [("toy: unrouted", "no route for the frame", b'[7,{}]')])
    # a refusal of the channel's decoder: counted (or the venue's fallback / refused)
    assert fed(h, b"[1664,") == ([], [("toy: malformed JSON", "Input data was truncated", b"[1664,")])


def test_lookup_follows_the_state_as_it_changes(kraken):
    """The Router keeps what a prefix found (no dict lookup per frame): a state entry replaced,
    removed, or its kind changed in place is seen at the next frame."""
    _, update, _ = kraken
    h = harness(Dispatch({"book": "_a", "ticker": "_b", b"[": "_b"}, prefilter=CHANNEL, decoders={"book": ARRAY}))
    book, tick = Channel("book"), Channel("ticker")
    h.conn.state[b"[1664,"] = book
    assert [c[0] for c in fed(h, update)[0]] == ["a"] and [c[0] for c in fed(h, update)[0]] == ["a"]
    h.conn.state[b"[1664,"] = tick  # replaced
    assert [c[:2] for c in fed(h, update)[0]] == [("b", None)] and h.scheme._channel is tick
    tick.kind = "book"  # changed in place
    assert [c[0] for c in fed(h, update)[0]] == ["a"] and h.scheme._channel is tick
    del h.conn.state[b"[1664,"]  # removed: the first byte routes
    assert [c[:2] for c in fed(h, update)[0]] == [("b", None)]
    h.conn.state[b"[1664,"] = book
    assert [c[0] for c in fed(h, update)[0]] == ["a"]
    first, h.conn = h.conn, h.conn.__class__(7, "wss://x")  # another connection: its own state
    assert [c[:2] for c in fed(h, update)[0]] == [("b", None)]
    h.conn = first
    assert [c[0] for c in fed(h, update)[0]] == ["a"]


def test_lookup_without_keep_and_on_a_memoryview(kraken):
    _, update, _ = kraken
    h = harness(Dispatch({"book": "_a"}, prefilter=Lookup(b",", attr="kind"), decoders={"book": ARRAY}))
    h.conn.state[b"[1664,"] = Channel("book")
    h.scheme.on_frame(h.conn, memoryview(update), T0)
    assert h.scheme.calls[0][0] == "a" and not hasattr(h.scheme, "_channel")


# ------------------------------------------------------------------------------------------------
# the venues on the declarative prefilters, on their captures


def test_binance_routes_its_capture_and_sends_the_rest_to_its_slow_path(binance):
    depth, ticker, _ = binance
    assert isinstance(BinanceSpotScheme.dispatch.prefilter, ByteAfter)
    path = fixture_path(BINANCE)
    h = Harness(BinanceSpotScheme, capture_instruments(path, BinanceSpotScheme))
    h.feed_all(recv_frames(path))  # (the books wait for their REST snapshots: no lob here)
    assert h.reports == [] and h.metrics.events["ticker"] > 0 and h.metrics.events["candle"] > 0
    # a partial-depth stream is not the diff depth: the slow path says so
    partial = depth.replace(b"@depth@100ms", b"@depth5@100ms", 1)
    h.feed(partial)
    assert h.reports == [("binance: unknown stream", "'nknusdt@depth5@100ms'", partial)]
    # a routed frame its decoder refuses: the slow path classifies it
    truncated = ticker[:60]
    h.feed(truncated)
    assert h.reports[-1] == ("binance: malformed JSON", "Input data was truncated", truncated)


def test_kraken_v1_keeps_the_routed_channel_for_its_handler(kraken):
    status, update, _ = kraken
    assert isinstance(KrakenSpotV1Scheme.dispatch.prefilter, Lookup)
    path = fixture_path(KRAKEN_BOOK)
    h = Harness(KrakenSpotV1Scheme, capture_instruments(path, KrakenSpotV1Scheme))
    h.feed(status)
    channel = h.conn.state[b"[1664,"]
    assert channel.kind == "book" and channel.pair == "WAVES/EUR"
    h.feed(update)  # routed by the channel's kind to ``_on_book``, which reads ``_channel``
    assert h.scheme._channel is channel
    # an event that does not decode as one: the fallback decodes it again to say why
    h.feed(b'{"event":1}')
    assert h.reports[-1][0] == "kraken: unknown message" and h.reports[-1][2] == b'{"event":1}'
    # neither [ nor {
    h.feed(b"pong")
    assert h.reports[-1] == ("kraken: not a JSON message", "frame starts with neither [ nor {", b"pong")


# ------------------------------------------------------------------------------------------------
# under a profiler


def test_under_a_profile_hook_the_routers_decoder_calls_are_seen(kraken):
    """A C call made from C is invisible to ``sys.setprofile``; under a hook (cProfile, the bench's
    count of decode calls) the Router decodes through Python, so that the hook sees it."""
    import sys

    _, update, _ = kraken
    h = harness(Dispatch({b"[": "_a", b"{": "_b"}, prefilter="_key", decoders={b"[": ARRAY, b"{": EVENTS}))
    seen = []

    def hook(frame, event, arg):
        if event == "c_call" and getattr(arg, "__name__", "") == "decode":
            seen.append(arg.__self__)

    sys.setprofile(hook)
    try:
        h.scheme.on_frame(h.conn, update, T0)
        h.scheme.on_frame(h.conn, HEARTBEAT, T0)
    finally:
        sys.setprofile(None)
    assert seen == [ARRAY, EVENTS] and [c[0] for c in h.scheme.calls] == ["a", "b"]
    h.scheme.on_frame(h.conn, update, T0)  # (no hook: the direct call)
    assert len(seen) == 2 and len(h.scheme.calls) == 3


# ------------------------------------------------------------------------------------------------
# declared shapes (atomfast.kit.shapes), executed by the Router

class BookTicker(msgspec.Struct):
    s: str
    b: str
    B: str
    a: str
    A: str
    E: int = 0
    T: int = 0


class AggTrade(msgspec.Struct):
    s: str
    a: int
    p: str
    q: str
    T: int
    m: bool


class Plain:
    """Not a Struct: its fields are read by getattr."""

    def __init__(self, **fields) -> None:
        self.__dict__.update(fields)


def _shaped(decoders: dict) -> Harness:
    from atomfast.kit.shapes import Quote, Trade

    class Shaped(Rec):
        exchange = "binance"

        def known(self, native, data):  # NKNUSDT and XUSDT name markets; anything else is counted
            if native in ("NKNUSDT", "XUSDT"):
                return True
            self.bad_input("unknown market", repr(native), data)
            return False

        def symbol_of(self, native):
            return self._symbols.setdefault(native, native[:-4] + "-USDT")

    Shaped.dispatch = Dispatch(
        {ord("b"): Quote(symbol="s", bid="b", bid_size="B", ask="a", ask_size="A", time=("T", "E"), or_receipt=True),
         ord("a"): Trade(symbol="s", price="p", size="q", id="a", time="T", buyer_maker="m"),
         ord("t"): Trade(symbol="s", price="p", size="q", id="i", time="ts", side="S", buy="Buy", malformed="bad trade")},
        prefilter=STREAM, unwrap="data", decoders=decoders)
    return Harness(Shaped)


def test_shapes_write_the_events_the_fields_declare(binance):
    """A bookTicker (no time: the time of receipt) and an aggTrade of the Binance capture, by
    declaration alone: the fields at their Struct offsets, the symbol through ``known`` and
    ``symbol_of`` once, then from the cache; the taker's side from ``m`` (the buyer was not the
    maker: the taker bought) or from a side field."""
    from atomfast.events import Ticker, Trade as TradeEvent

    _, ticker, agg = binance
    h = _shaped({ord("b"): msgspec.json.Decoder(msgspec.defstruct("F", [("data", BookTicker)])),
                 ord("a"): msgspec.json.Decoder(msgspec.defstruct("G", [("data", AggTrade)]))})
    at = 1633998523970_123456
    assert h.feed(ticker, at) == [("ticker", Ticker("binance", "NKN-USDT", 0.3521, 672.0, 0.3526, 3199.0,
                                                    1633998523970, 1633998523970_123))]
    assert h.feed(agg, at) == [("trades", TradeEvent("binance", "NKN-USDT", 0.3528, 58.0, "buy", "15683430",
                                                      1633998523963, 1633998523970_123))]
    assert h.scheme._symbols == {"NKNUSDT": "NKN-USDT"} and h.reports == []
    # the time: T, else E; the buyer the maker: the taker sold
    sold = agg.replace(b'"m":false', b'"m":true')
    assert h.feed(sold, at)[0][1].taker_side == "sell"
    stamped = ticker.replace(b'"A":"3199.00000000"', b'"A":"3199.00000000","E":1633998523900')
    assert h.feed(stamped, at)[0][1].event_timestamp == 1633998523900
    stamped = stamped.replace(b'"E":', b'"T":1633998523901,"E":')
    assert h.feed(stamped, at)[0][1].event_timestamp == 1633998523901


def test_shapes_count_what_the_writer_refuses_and_unknown_markets(binance):
    """A value the typed writer refuses: nothing written, one bad input of the shape's kind with
    the fields as sent; an unknown market: what ``known`` counted, nothing written."""
    _, ticker, agg = binance
    h = _shaped({ord("b"): msgspec.json.Decoder(msgspec.defstruct("F", [("data", BookTicker)])),
                 ord("a"): msgspec.json.Decoder(msgspec.defstruct("G", [("data", AggTrade)]))})
    bad = ticker.replace(b'"b":"0.35210000"', b'"b":"1e15"')
    assert h.feed(bad) == [] and h.reports == [("binance: malformed ticker", "'1e15' '672.00000000' '0.35260000' "
                                                "'3199.00000000' T=0", bad)]
    zero = agg.replace(b'"p":"0.35280000"', b'"p":"0"')
    assert h.feed(zero) == [] and h.reports[-1] == ("binance: malformed trade", "'0' '58.00000000' T=1633998523963", zero)
    late = agg.replace(b'"T":1633998523963', b'"T":100000000000000')
    assert h.feed(late) == [] and h.reports[-1][1] == "'0.35280000' '58.00000000' T=100000000000000"
    other = ticker.replace(b'"s":"NKNUSDT"', b'"s":"ZZZ"')
    assert h.feed(other) == [] and h.reports[-1] == ("binance: unknown market", "'ZZZ'", other)
    assert len(h.reports) == 4


def test_shapes_read_any_message_type_by_getattr_and_a_side_field():
    """A message that is not a Struct (or a Struct of another type than the last one): its fields
    by getattr; a trade's side from its ``side`` field (``buy``: the taker bought)."""
    h = _shaped({})
    run = h.scheme.route(ord("t"))
    run(h.conn, Plain(s="XUSDT", p="61000.5", q="0.25", i="t-1", ts=1700000000000, S="Buy"), b"x", T0)
    run(h.conn, Plain(s="XUSDT", p="61000.5", q="0.25", i=7, ts=1700000000001, S="Sell"), b"y", T0)
    h.pipeline.end_frame()
    got = [r for t, r in h.records if t == "trades"]
    assert [(r.symbol, r.price, r.size, r.taker_side, r.trade_id, r.event_timestamp) for r in got] == [
        ("X-USDT", 61000.5, 0.25, "buy", "t-1", 1700000000000), ("X-USDT", 61000.5, 0.25, "sell", "7", 1700000000001)]
    # a missing field: the getattr's own error (a declaration that names no field of the message)
    with pytest.raises(AttributeError):
        run(h.conn, Plain(s="XUSDT", p="1", q="1", i=1, ts=1), b"z", T0)


def test_a_shape_declaration_is_checked():
    from atomfast.kit.shapes import Trade

    with pytest.raises(ValueError, match="buyer_maker"):
        Trade(symbol="s", price="p", size="q", id="t", time="T")
    with pytest.raises(ValueError, match="buyer_maker"):
        Trade(symbol="s", price="p", size="q", id="t", time="T", side="S")
    with pytest.raises(ValueError, match="names no field"):
        Trade(symbol="s", price="p", size="q", id="t", time=(), buyer_maker="m")


# ------------------------------------------------------------------------------------------------
# a declared book update (atomfast.kit.shapes.BookUpdate): Kraken v1's book route

KRAKEN_FIRST_UPDATE = b'[1664,{"a":[["13.284500","1396.00000000","1618678133.383209"]],"c":"176333288"},"book-1000","WAVES/EUR"]'


class _KrakenHandlerBook(KrakenSpotV1Scheme):
    """Kraken v1 with its book route a handler method again (``_on_book``, all in Python): what
    the declared ``BookUpdate`` took over, to compare with."""

    dispatch = Dispatch({**KrakenSpotV1Scheme.dispatch.routes, "book": "_on_book"},
                        prefilter=KrakenSpotV1Scheme.dispatch.prefilter, decoders=KrakenSpotV1Scheme.dispatch.decoders,
                        fallback=KrakenSpotV1Scheme.dispatch.fallback)


class _KrakenCountingBook(KrakenSpotV1Scheme):
    """The stock route table; the messages its ``BookUpdate`` hands the venue's ``_on_book``, kept."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.handed: list[tuple[bytes, object]] = []

    def _on_book(self, conn, msg, data, recv_ns) -> None:
        self.handed.append((data, self._channel))
        super()._on_book(conn, msg, data, recv_ns)


def _fed_up_to(scheme_cls, capture: str, listing_cls, frame: bytes) -> tuple[Harness, tuple[int, bytes]]:
    """A harness of ``scheme_cls`` (the capture's listing read as ``listing_cls``'s) fed the
    capture up to ``frame``; that frame (time, data)."""
    path = fixture_path(capture)
    frames = list(recv_frames(path))
    i = next(k for k, (_, d) in enumerate(frames) if d == frame)
    h = Harness(scheme_cls, capture_instruments(path, listing_cls))
    h.feed_all(frames[:i])
    return h, frames[i]


def _kraken_book(scheme_cls=KrakenSpotV1Scheme) -> tuple[Harness, tuple[int, bytes]]:
    """A harness fed the book capture up to channel 1664's (WAVES/EUR) first update; that update."""
    return _fed_up_to(scheme_cls, KRAKEN_BOOK, KrakenSpotV1Scheme, KRAKEN_FIRST_UPDATE)


def test_kraken_book_updates_are_declared_and_give_what_the_handler_gave_on_the_whole_capture():
    """Every common update of the capture applied and checked in C (none handed to ``_on_book``):
    the events and counts of the handler it replaced, exactly."""
    from atomfast.kit.shapes import BookUpdate

    assert isinstance(KrakenSpotV1Scheme.dispatch.routes["book"], BookUpdate)
    path = fixture_path(KRAKEN_BOOK)
    declared = Harness(_KrakenCountingBook, capture_instruments(path, KrakenSpotV1Scheme))
    handler = Harness(_KrakenHandlerBook, capture_instruments(path, KrakenSpotV1Scheme))
    declared.feed_all(recv_frames(path))
    handler.feed_all(recv_frames(path))
    assert declared.scheme.handed == []
    assert declared.records == handler.records and declared.reports == handler.reports == []
    assert dict(declared.metrics.events) == {"lob": 6855, "spread": 460, "status": 12}
    assert (declared.metrics.checksum_ok, declared.metrics.checksum_failed) == (2437, 0)
    assert handler.metrics.checksum_ok == 2437


def test_a_declared_book_update_writes_the_exchanges_levels_with_the_newest_levels_time():
    from atomfast.events import Lob

    h, (at, update) = _kraken_book()
    ok = h.metrics.checksum_ok
    assert h.feed(update, at) == [("lob", Lob("kraken", "WAVES-EUR", 13.2845, 1396.0, "sell", 1618678133383,
                                               1618678134221057))]
    assert h.metrics.checksum_ok == ok + 1 and h.scheme.books["WAVES/EUR"].checksum_kraken() == 176333288


def test_a_declared_book_update_hands_the_venue_what_is_not_the_common_case():
    """Nothing applied in C, the venue's ``_on_book`` says what is amiss, with the channel kept for
    it (a malformed level or checksum: counted, the pair resyncs; a message on another pair than
    its channel's; no book yet). A reloading pair's update is dropped; a checksum that differs
    (the update applied, no spread) resyncs the pair."""
    for change, kind, detail in [
            ((b'"1396.00000000"', b'"1396.0.0"'), "malformed book level", "invalid size '1396.0.0': not a decimal number"),
            ((b'"c":"176333288"', b'"c":"x"'), "malformed checksum", "'x'")]:
        h, (at, update) = _kraken_book(_KrakenCountingBook)
        bad = update.replace(*change)
        events = h.feed(bad, at)
        assert h.scheme.handed == [(bad, h.conn.state[b"[1664,"])]
        assert h.reports == [(f"kraken: {kind}", detail, bad)]
        assert [(t, e.status) for t, e in events] == [("status", "resync")] and "WAVES/EUR" in h.scheme.unsynced

    h, (at, update) = _kraken_book(_KrakenCountingBook)
    h.scheme.unsynced.add("WAVES/EUR")
    assert h.feed(update, at) == [] and h.scheme.handed == [] and h.reports == []
    h.scheme.unsynced.discard("WAVES/EUR")
    del h.scheme.books["WAVES/EUR"]
    events = h.feed(update, at)
    assert h.scheme.handed == [(update, h.conn.state[b"[1664,"])]
    assert [(t, e.status, e.reason) for t, e in events] == [("status", "resync", "book update before its snapshot")]

    h, (at, update) = _kraken_book(_KrakenCountingBook)
    other = update.replace(b'"WAVES/EUR"]', b'"XBT/EUR"]')
    channel = h.conn.state[b"[1664,"]
    h.feed(other, at)
    assert h.scheme.handed == [(other, channel)] and h.conn.state[b"[1664,"].pair == "XBT/EUR"  # learnt anew
    assert h.reports[0][:2] == ("kraken: channel mismatch", "channelID 1664: 'WAVES/EUR' in state, 'XBT/EUR' in message")

    h, (at, update) = _kraken_book(_KrakenCountingBook)
    ok = h.metrics.checksum_ok
    wrong = update.replace(b'"c":"176333288"', b'"c":"176333289"')
    events = h.feed(wrong, at)
    assert h.scheme.handed == [] and [(t, e.status, e.reason) for t, e in events] == [
        ("status", "resync", "checksum mismatch: exchange 176333289, book 176333288")]  # (its lob rows dropped)
    assert (h.metrics.checksum_ok, h.metrics.checksum_failed, h.metrics.resyncs) == (ok, 1, 1)
    h, (at, update) = _kraken_book(_KrakenHandlerBook)
    assert h.feed(wrong, at) == events  # as the handler did


def test_a_book_update_declared_without_a_channel_takes_the_cached_symbol_and_its_depth():
    """The same capture through a ``BookUpdate`` with no channel (the symbol from the scheme's
    cache, the book cut to the declared depth, the capture's 1000): the stock events."""
    from atomfast.book import CHECKSUM_KRAKEN
    from atomfast.kit.shapes import BookUpdate

    class NoChannel(KrakenSpotV1Scheme):
        dispatch = Dispatch({**KrakenSpotV1Scheme.dispatch.routes,
                             "book": BookUpdate(market="pair", at="update", asks="a", bids="b", checksum="c",
                                                kind=CHECKSUM_KRAKEN, otherwise="_on_book", depth=1000)},
                            prefilter=KrakenSpotV1Scheme.dispatch.prefilter,
                            decoders=KrakenSpotV1Scheme.dispatch.decoders, fallback=KrakenSpotV1Scheme.dispatch.fallback)

    path = fixture_path(KRAKEN_BOOK)
    plain = Harness(NoChannel, capture_instruments(path, KrakenSpotV1Scheme))
    stock = Harness(KrakenSpotV1Scheme, capture_instruments(path, KrakenSpotV1Scheme))
    plain.feed_all(recv_frames(path))
    stock.feed_all(recv_frames(path))
    assert plain.records == stock.records and plain.metrics.checksum_ok == 2437 and plain.reports == []
    # a book update declared through ``Scheme.route`` (no channel handed): the venue's method
    h, (at, update) = _kraken_book(_KrakenCountingBook)
    run = h.scheme.route("book")
    run(h.conn, msgspec.json.decode(update, type=h.scheme.dispatch.decoders["book"].type), update, at)
    assert [d for d, _ in h.scheme.handed] == [update] and h.metrics.checksum_ok > 0


def test_a_book_update_declaration_is_checked():
    from atomfast.book import CHECKSUM_KRAKEN, CHECKSUM_NONE
    from atomfast.kit.shapes import BookUpdate

    with pytest.raises(ValueError, match="no checksum kind"):
        BookUpdate(market="pair", asks="a", bids="b", checksum="c", kind=CHECKSUM_NONE, otherwise="_x")
    with pytest.raises(ValueError, match="asks or bids"):
        BookUpdate(market="pair", asks="a", bids="b", checksum="c", kind=CHECKSUM_KRAKEN, otherwise="_x", first="a")
    with pytest.raises(ValueError, match="otherwise"):
        BookUpdate(market="pair", asks="a", bids="b", checksum="c", kind=CHECKSUM_KRAKEN, otherwise="")
    with pytest.raises(ValueError, match="depth"):
        BookUpdate(market="pair", asks="a", bids="b", checksum="c", kind=CHECKSUM_KRAKEN, otherwise="_x", depth=-1)


# ------------------------------------------------------------------------------------------------
# a declared one-level delta with a sequence (atomfast.kit.shapes.LevelDelta): Kraken Futures' book

from atomfast.exchanges.kraken_futures import KrakenFuturesScheme  # noqa: E402
from atomfast.exchanges.kraken_futures import messages as kf_messages  # noqa: E402

KRAKEN_FUTURES = "cryptofeed/KRAKEN_FUTURES.ws.1.0"
KF_FIRST_DELTA = (b'{"feed":"book","product_id":"PI_ETHUSD","side":"sell","seq":26660860,"price":2004.85,'
                  b'"qty":4787.0,"timestamp":1626994927744}')


class _KFHandlerDelta(KrakenFuturesScheme):
    """Kraken Futures with its delta route the handler method again (``_on_delta``, in Python)."""

    dispatch = Dispatch({**KrakenFuturesScheme.dispatch.routes, kf_messages.FBook: "_on_delta"},
                        decoder=KrakenFuturesScheme.dispatch.decoder, lead=b"{", fallback="_on_other")


class _KFCountingDelta(KrakenFuturesScheme):
    """The stock route table; the deltas its ``LevelDelta`` hands ``_on_delta``, kept."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.handed: list[bytes] = []

    def _on_delta(self, conn, msg, data, recv_ns) -> None:
        self.handed.append(data)
        super()._on_delta(conn, msg, data, recv_ns)


def _kf(scheme_cls=KrakenFuturesScheme) -> tuple[Harness, tuple[int, bytes]]:
    """A harness fed the Kraken Futures capture up to its first book delta; that delta."""
    return _fed_up_to(scheme_cls, KRAKEN_FUTURES, KrakenFuturesScheme, KF_FIRST_DELTA)


def test_kraken_futures_deltas_are_declared_and_give_what_the_handler_gave_on_the_whole_capture():
    from atomfast.kit.shapes import LevelDelta

    assert isinstance(KrakenFuturesScheme.dispatch.routes[kf_messages.FBook], LevelDelta)
    path = fixture_path(KRAKEN_FUTURES)
    declared = Harness(_KFCountingDelta, capture_instruments(path, KrakenFuturesScheme))
    handler = Harness(_KFHandlerDelta, capture_instruments(path, KrakenFuturesScheme))
    declared.feed_all(recv_frames(path))
    handler.feed_all(recv_frames(path))
    assert declared.scheme.handed == []
    assert declared.records == handler.records and declared.reports == handler.reports
    assert declared.metrics.events == handler.metrics.events and declared.metrics.gaps == handler.metrics.gaps == 0
    assert declared.scheme.seqs == handler.scheme.seqs and declared.scheme.seqs["PI_ETHUSD"] > 26660860


def test_a_declared_level_delta_writes_the_level_and_follows_the_chain():
    from atomfast.events import Lob

    h, (at, delta) = _kf()
    assert h.scheme.seqs["PI_ETHUSD"] == 26660859
    events = h.feed(delta, at)
    assert events[0] == ("lob", Lob("kraken-futures", "ETH-USD-PERP", 2004.85, 4787.0, "sell", 1626994927744,
                                    at // 1000))
    assert [t for t, _ in events] in (["lob"], ["lob", "spread"]) and h.scheme.seqs["PI_ETHUSD"] == 26660860


def test_a_declared_level_delta_hands_the_venue_what_is_not_the_common_case():
    """Nothing applied in C, ``_on_delta`` says what is amiss: a gap (counted, the product resyncs),
    a side or time it does not know, a malformed level, no book yet; a reloading product's delta
    is dropped. Each as the handler did."""
    cases = [
        (KF_FIRST_DELTA.replace(b'"seq":26660860', b'"seq":26660862'), "gap"),
        (KF_FIRST_DELTA.replace(b'"side":"sell"', b'"side":"ask"'), "side"),
        (KF_FIRST_DELTA.replace(b'"timestamp":1626994927744', b'"timestamp":-1'), "time"),
        (KF_FIRST_DELTA.replace(b'"qty":4787.0', b'"qty":-4787.0'), "level"),
    ]
    for bad, what in cases:
        h, (at, _) = _kf(_KFCountingDelta)
        ref, _ = _kf(_KFHandlerDelta)
        events = h.feed(bad, at)
        assert h.scheme.handed == [bad], what
        assert events == ref.feed(bad, at) and h.reports == ref.reports, what
        assert [(t, e.status) for t, e in events] == [("status", "resync")] and "PI_ETHUSD" in h.scheme.unsynced, what
        assert h.scheme.seqs.get("PI_ETHUSD") == ref.scheme.seqs.get("PI_ETHUSD"), what
    h, (at, _) = _kf(_KFCountingDelta)
    assert h.feed(cases[0][0], at)[0][1].reason == "sequence gap: expected seq 26660860, got 26660862" and h.metrics.gaps == 1

    h, (at, delta) = _kf(_KFCountingDelta)
    h.scheme.unsynced.add("PI_ETHUSD")
    assert h.feed(delta, at) == [] and h.scheme.handed == [] and h.reports == []
    h.scheme.unsynced.discard("PI_ETHUSD")
    del h.scheme.books["PI_ETHUSD"]
    events = h.feed(delta, at)
    assert h.scheme.handed == [delta]
    assert [(t, e.status, e.reason) for t, e in events] == [("status", "resync", "book delta before its snapshot")]


def test_a_level_delta_declaration_is_checked():
    from atomfast.book import BID
    from atomfast.kit.shapes import LevelDelta

    args = dict(market="m", side="s", price="p", size="q", seq="n", time="T", chain="chain", otherwise="_x")
    with pytest.raises(ValueError, match="BID or ASK"):
        LevelDelta(**args, sides={"buy": 7})
    with pytest.raises(ValueError, match="otherwise"):
        LevelDelta(**{**args, "otherwise": ""}, sides={"buy": BID})
    with pytest.raises(ValueError, match="names no field"):
        LevelDelta(**{**args, "time": ()}, sides={"buy": BID})
    assert LevelDelta(**args, sides={"buy": BID}, prev="p0").fields() == ("m", "s", "p", "q", "n", "p0", "T")
