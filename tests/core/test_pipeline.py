"""Pipeline: one frame's events, grouped per topic, encoded in one call, keyed exchange:symbol."""
import pytest

from atomfast.avro import decode
from atomfast.events import Lob, LobL3, Spread, Trade
from atomfast.metrics import Metrics
from atomfast.pipeline import Pipeline
from atomfast.testing import MemorySink


def test_one_write_per_topic_per_frame_with_keys_and_values():
    sink = MemorySink("single_object", writes=True)
    metrics = Metrics()
    p = Pipeline(sink, metrics)
    a = Lob("kraken", "BTC-USD", 61000.1, 0.5, "buy", 1618678133626, 1618678133626511)
    b = Lob("kraken", "ETH-USD", 2400.25, 0.0, "sell", 1618678133626, 1618678133626511)
    t = Trade("kraken", "BTC-USD", 61000.1, 0.01, "sell", "1618678133626511-0", 1618678133626, 1618678133626600)
    s = Spread("kraken", "BTC-USD", 61000.1, 0.5, 61000.2, 1.0, 1618678133626, 1618678133626511)
    for topic, rec in (("lob", a), ("trades", t), ("lob", b), ("spread", s)):
        p.emit(topic, rec)
    assert sink.writes == []  # nothing leaves before the frame ends
    assert p.end_frame() == 4
    assert [w[0] for w in sink.writes] == ["lob", "trades", "spread"]
    lob = sink.writes[0]
    assert lob[1] == [a, b]
    assert lob[2] == [b"kraken:BTC-USD", b"kraken:ETH-USD"]
    assert [decode(v) for v in lob[3]] == [("lob", a._asdict()), ("lob", b._asdict())]
    assert decode(sink.writes[1][3][0]) == ("trades", t._asdict())
    assert dict(metrics.events) == {"lob": 2, "trades": 1, "spread": 1}
    assert p.end_frame() == 0  # nothing pending: no write
    assert len(sink.writes) == 3
    p.close()
    assert sink.closed


def test_records_only_sink_gets_no_values():
    sink = MemorySink(writes=True)
    p = Pipeline(sink)
    rec = Lob("kraken", "BTC-USD", 1.0, 2.0, "buy", 1, 2)
    p.emit("lob", rec)
    p.end_frame()
    assert sink.writes == [("lob", [rec], [b"kraken:BTC-USD"], None)]


def test_rows_is_the_frame_list_a_batch_call_appends_to():
    """A book's apply_sides appends straight to Pipeline.rows(topic); the frame then leaves as
    one write with the keys computed in Rust (encode_keyed), equal to f"{exchange}:{symbol}"."""
    from atomfast.book import ASK, L2Book

    sink = MemorySink("single_object", writes=True)
    p = Pipeline(sink)
    book = L2Book(8, 8)
    # a real Kraken v1 update (KRAKEN.ws.50.0, KSM/XBT): one ask removed, one added
    book.apply(ASK, "0.00761700", "1.00000000")
    rows = p.rows("lob")
    assert p.rows("lob") is rows
    flags = book.apply_sides(ASK, [("0.00761700", "0.00000000"), ("0.00762600", "0.62480000")], None, rows, Lob,
                             "kraken", "KSM-BTC", 1618678134675, 1618678134675900)
    assert flags & 1  # the best ask changed
    p.emit("lob", Lob("kraken", "ADA-BTC", 0.0000229, 1.0, "buy", 1, 2))
    assert p.end_frame() == 3
    ((topic, records, keys, values),) = sink.writes
    assert records == [Lob("kraken", "KSM-BTC", 0.007617, 0.0, "sell", 1618678134675, 1618678134675900),
                       Lob("kraken", "KSM-BTC", 0.007626, 0.6248, "sell", 1618678134675, 1618678134675900),
                       Lob("kraken", "ADA-BTC", 0.0000229, 1.0, "buy", 1, 2)]
    assert keys == [b"kraken:KSM-BTC", b"kraken:KSM-BTC", b"kraken:ADA-BTC"]
    assert [decode(v)[1] for v in values] == [r._asdict() for r in records]


def test_an_unused_rows_list_writes_nothing():
    sink = MemorySink("single_object", writes=True)
    p = Pipeline(sink)
    p.rows("lob")
    assert p.end_frame() == 0
    assert sink.writes == []


def test_scheme_rows_hands_records_to_any_emit():
    """A scheme whose emit is not a pipeline's (a cluster filter, a test) still gets every
    record of a batch call, in order, through emit."""
    from atomfast.book import BID, L2Book
    from atomfast.exchanges.kraken import KrakenSpotV1Scheme

    got = []
    scheme = KrakenSpotV1Scheme(lambda topic, record: got.append((topic, record)))
    book = L2Book(1, 8)
    book.apply_sides(BID, [("56274.9", "0.5"), ("56270.0", "1")], None, scheme.rows("lob"), Lob, "kraken",
                     "BTC-CHF", 5, 6)
    assert got == [("lob", Lob("kraken", "BTC-CHF", 56274.9, 0.5, "buy", 5, 6)),
                   ("lob", Lob("kraken", "BTC-CHF", 56270.0, 1.0, "buy", 5, 6))]
    p = Pipeline(MemorySink("single_object", writes=True))
    assert KrakenSpotV1Scheme(p.emit).rows("lob") is p.rows("lob")


def test_lob_as_bytes_for_a_sink_that_needs_no_records():
    """A sink that needs no records (Kafka, files, null): the book writes the frame's ``lob``
    events as Avro values itself (``AvroRows``), a scheme's own ``emit`` of a Lob joins them;
    the write carries no records, and the values are the encoder's bytes for the same events."""
    from atomfast.avro import AvroEncoder
    from atomfast.book import ASK, AvroRows, L2Book

    sink = MemorySink("single_object", writes=True, records_needed=False)
    p = Pipeline(sink)
    rows = p.rows("lob")
    assert type(rows) is AvroRows and p.rows("lob") is rows
    book = L2Book(8, 8)
    book.apply(ASK, "0.00761700", "1.00000000")
    # the real Kraken v1 update of test_rows_is_the_frame_list_a_batch_call_appends_to
    book.apply_sides(ASK, [("0.00761700", "0.00000000"), ("0.00762600", "0.62480000")], None, rows, Lob,
                     "kraken", "KSM-BTC", 1618678134675, 1618678134675900)
    p.emit("lob", Lob("kraken", "ADA-BTC", 0.0000229, 1.0, "buy", 1, 2))
    trade = Trade("kraken", "ADA-BTC", 0.0000229, 1.0, "buy", "7", 1, 2)
    p.emit("trades", trade)
    assert p.end_frame() == 4
    (topic, records, keys, values), trades = sink.writes
    expected = [Lob("kraken", "KSM-BTC", 0.007617, 0.0, "sell", 1618678134675, 1618678134675900),
                Lob("kraken", "KSM-BTC", 0.007626, 0.6248, "sell", 1618678134675, 1618678134675900),
                Lob("kraken", "ADA-BTC", 0.0000229, 1.0, "buy", 1, 2)]
    assert (topic, records) == ("lob", [])
    assert keys == [b"kraken:KSM-BTC", b"kraken:KSM-BTC", b"kraken:ADA-BTC"]
    assert values == AvroEncoder("single_object").encode_many("lob", expected)
    # trades too (every topic of atomfast._book.SHAPES): an emitted tuple is encoded into its rows
    assert trades == ("trades", [], [b"kraken:ADA-BTC"], AvroEncoder("single_object").encode_many("trades", [trade]))
    assert sink.events("lob") == expected  # decoded by the test sink
    assert len(rows) == 0 and p.end_frame() == 0  # taken: the next frame starts empty


# a recorded Binance USD-M bookTicker and aggTrade (cryptofeed/BINANCE_FUTURES.ws.1.0)
_BOOK_TICKER = ("binance-futures", "SUSHI-USDT-PERP", "7.6110", "2", "7.6120", "297", 1626992741012)
_AGG_TRADE = ("binance-futures", "CTK-USDT-PERP", "1.01100", "10", False, 16599292, 1626992741421)


def test_typed_writers_write_the_encoders_bytes():
    """``AvroRows.quote``/``trade`` (the fields as the exchange sent them) write what the Rust
    encoder makes of the event tuple; ``RecordRows`` (the sinks that read records) builds that
    tuple; ``L2Book.spread_into`` writes the top of the book as ``emit_spread`` did."""
    from atomfast.avro import AvroEncoder
    from atomfast.book import BID, ASK, SHAPES, AvroRows, L2Book, RecordRows
    from atomfast.events import Spread, Ticker

    enc = AvroEncoder("single_object")
    ex, sym, b, bq, a, aq, ms = _BOOK_TICKER
    ticker = Ticker(ex, sym, 7.611, 2.0, 7.612, 297.0, ms, ms * 1000 + 5)
    ex2, sym2, p, q, buy, trade_id, ms2 = _AGG_TRADE
    trade = Trade(ex2, sym2, 1.011, 10.0, "sell", "16599292", ms2, ms2 * 1000 + 9)
    for rows, records in ((AvroRows(enc.prefix("ticker"), SHAPES["ticker"]), None), (RecordRows(Ticker), [ticker])):
        assert rows.quote(ex, sym, b, bq, a, aq, ms, ms * 1000 + 5) is True
        assert rows.quote(ex, sym, 7.611, 2.0, 7.612, 297, ms, ms * 1000 + 5) is True  # floats, an int
        got = list(rows) if records else rows.take()
        assert got == ([ticker, ticker] if records else ([b"binance-futures:SUSHI-USDT-PERP"] * 2,
                                                          enc.encode_many("ticker", [ticker, ticker])))
    trades = AvroRows(enc.prefix("trades"), SHAPES["trades"])
    assert trades.trade(ex2, sym2, p, q, buy, trade_id, ms2, ms2 * 1000 + 9) is True
    assert trades.trade(ex2, sym2, p, q, True, "a-b-1", ms2, 0) is True  # an id as text; the taker bought
    assert trades.trade(ex2, sym2, p, q, True, 2**70, ms2, 0) is True  # an id past int64: its digits
    expected = [trade, trade._replace(taker_side="buy", trade_id="a-b-1", atom_timestamp=0),
                trade._replace(taker_side="buy", trade_id=str(2**70), atom_timestamp=0)]
    assert trades.take()[1] == enc.encode_many("trades", expected)
    records = RecordRows(Trade)
    assert records.trade(ex2, sym2, p, q, buy, trade_id, ms2, ms2 * 1000 + 9) and records == [trade]
    # lob_l3 (trades' layout): an order of a recorded Bitstamp snapshot (cryptofeed/BITSTAMP.ws.1.0),
    # its id an int as decoded
    order = LobL3("bitstamp", "ETH-USD", 3802.9, 0.6, "buy", "1443875731320832", 1641343699000, 7)
    for rows, read in ((AvroRows(enc.prefix("lob_l3"), SHAPES["lob_l3"]), lambda r: r.take()[1]), (RecordRows(LobL3), list)):
        assert rows.order("bitstamp", "ETH-USD", "3802.90", "0.60000000", True, 1443875731320832, 1641343699000, 7)
        assert rows.order("bitstamp", "ETH-USD", "0", "1", True, "x", 1, 7) is False  # no order at price 0
        assert read(rows) == (enc.encode_many("lob_l3", [order]) if read is not list else [order])

    book = L2Book(4, 0)
    book.apply_sides(BID, [(b, bq)], [(a, aq)], [], Lob, ex, sym, ms, 0)
    spread = Spread(ex, sym, 7.611, 2.0, 7.612, 297.0, ms, 1)
    spreads, listed = AvroRows(enc.prefix("spread"), SHAPES["spread"]), []
    book.spread_into(spreads, Spread, ex, sym, ms, 1)
    book.spread_into(listed, Spread, ex, sym, ms, 1)
    assert listed == [spread] and spreads.take()[1] == enc.encode_many("spread", [spread])
    book.apply(ASK, a, "0")  # one side empty: 0.0, as best() says
    book.spread_into(listed, Spread, ex, sym, ms, 1)
    assert listed[1] == spread._replace(ask_price=0.0, ask_size=0.0)


@pytest.mark.parametrize("field, value", [
    ("bid_price", "abc"), ("bid_price", ""), ("bid_price", " 7.6"), ("bid_price", "7.6 "), ("bid_price", "1_0"),
    ("bid_price", "0x1p3"), ("bid_price", "nan"), ("bid_price", "inf"), ("bid_price", "-0.1"), ("bid_size", "1e15"),
    ("ask_price", None), ("ask_size", b"1"), ("event_ms", -1), ("event_ms", 10**14), ("event_ms", 2**64 - 1)])
def test_typed_writers_refuse_what_no_exchange_means(field, value):
    """A value that is not a decimal number in [0, 1e15) (a blank, an underscore, hex, NaN,
    infinity, a negative, not text) or a time outside [0, 10**14) ms (past int64 too): False and
    nothing written,
    on both kinds of rows (the scheme then reports the malformed message)."""
    from atomfast.avro import AvroEncoder
    from atomfast.book import SHAPES, AvroRows, RecordRows
    from atomfast.events import Ticker

    ex, sym, b, bq, a, aq, ms = _BOOK_TICKER
    fields = dict(bid_price=b, bid_size=bq, ask_price=a, ask_size=aq, event_ms=ms)
    fields[field] = value
    for rows in (AvroRows(AvroEncoder("none").prefix("ticker"), SHAPES["ticker"]), RecordRows(Ticker)):
        assert rows.quote(ex, sym, fields["bid_price"], fields["bid_size"], fields["ask_price"], fields["ask_size"],
                          fields["event_ms"], 1) is False
        assert len(rows) == 0
    trades = AvroRows(AvroEncoder("none").prefix("trades"), SHAPES["trades"])
    assert trades.trade(ex, sym, "0", "1", True, "1", ms, 1) is False  # a trade's price is > 0
    assert trades.trade(ex, sym, "1", "-1", True, "1", ms, 1) is False and len(trades) == 0


def test_typed_writers_parse_plain_decimals_as_cpython_does():
    """The writers' fast path for plain decimals (``-?digits[.digits]``: one exact division)
    gives the very double CPython's correctly rounded parser gives, bit for bit, and leaves
    everything else to it: 200,000 random and mutated strings, both ways."""
    import random
    import struct

    from atomfast._book import _writer_number

    def bits(x):
        return None if x is None else struct.pack("<d", x)

    rng = random.Random(15)
    cases = ["0", "-0", "-0.0", ".5", "5.", ".", "-", "1e5", "0.1", "9007199254740993", "9007199254740991.5",
             "00000000000000000001.5", "123456789012345678.9", "0.0000000000000000000001", "1.00000000000000000000001",
             "61123.40", "0.00000100", "+1", "1.2.3", "--1"]
    for i in range(200_000):
        kind = i % 4
        if kind == 0:
            s = f"{rng.uniform(0, 10 ** rng.randint(0, 16)):.{rng.randint(0, 18)}f}"
        elif kind == 1:
            s = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 22)))
            at = rng.randint(0, len(s))
            s = s[:at] + "." + s[at:]
        elif kind == 2:
            s = repr(rng.random() * 10 ** rng.randint(-10, 20))
        else:
            s = "".join(rng.choice("0123456789.-+e_ x") for _ in range(rng.randint(1, 8)))
        cases.append("-" + s if rng.random() < 0.2 else s)
    differ = [s for s in cases if bits(_writer_number(s)) != bits(_writer_number(s, False))]
    assert differ == []
    assert _writer_number("61123.40") == 61123.4 and _writer_number("9007199254740993") == 9007199254740992.0
    assert _writer_number("1.2.3") is None and _writer_number("1_0") is None


def test_avro_rows_withdraw_drops_one_markets_rows():
    """``Scheme.resync`` withdraws the frame's rows of a book found corrupt: AvroRows drops the
    rows of that key, keeps the others in order."""
    from atomfast.avro import AvroEncoder
    from atomfast.book import AvroRows

    enc = AvroEncoder("single_object")
    rows = AvroRows(enc.prefix("lob"))
    events = [Lob("kraken", "BTC-USD", 61000.1, 0.5, "buy", 1, 2), Lob("kraken", "ETH-USD", 2400.25, 0.0, "sell", 1, 2),
              Lob("kraken", "BTC-USD", 61000.2, 1.5, "sell", 3, 4), Lob("kraken", "ADA-BTC", 1e-7, 5.0, "buy", 3, 4)]
    for e in events:
        rows.append(e)
    assert rows.withdraw(b"kraken:BTC-USD") == 2 and len(rows) == 2
    assert rows.withdraw(b"kraken:XMR-USD") == 0
    kept = [events[1], events[3]]
    assert rows.take() == ([b"kraken:ETH-USD", b"kraken:ADA-BTC"], enc.encode_many("lob", kept))


def test_a_corrupt_book_publishes_nothing_on_either_path():
    """A Kraken update whose checksum fails (KRAKEN.ws.50.0, XBT/CHF's 11th update altered): the
    levels it applied are withdrawn before the frame is written, with records (tuples) and with
    the book's Avro bytes alike, and both paths publish the same records over the capture."""
    import json

    from atomfast.exchanges.kraken import KrakenSpotV1Scheme
    from atomfast.testing import Harness, capture_instruments, fixture_path, recv_frames

    path = fixture_path("cryptofeed/KRAKEN.ws.50.0")
    inst = capture_instruments(path, KrakenSpotV1Scheme)
    frames = recv_frames(path)
    updates = [i for i, (_ts, data) in enumerate(frames) if data.startswith(b"[464,") and b'"c":"' in data]
    bad = updates[10]
    produced = {}
    for needed in (True, False):
        h = Harness(KrakenSpotV1Scheme, inst, sink=MemorySink("single_object", records_needed=needed))
        for i, (ts, data) in enumerate(frames):
            if i == bad:
                msg = json.loads(data)
                msg[-3]["c"] = str((int(msg[-3]["c"]) + 1) % 2**32)
                data = json.dumps(msg, separators=(",", ":")).encode()
            out = h.feed(data, ts)
            if i == bad:
                assert [r.status for t, r in out if t == "status"] == ["resync"]
                assert not [r for t, r in out if t in ("lob", "spread") and r.symbol == "BTC-CHF"]
        assert h.metrics.checksum_failed == 1
        produced[needed] = h.records
    assert produced[False] == produced[True]


def test_the_sink_is_told_each_frames_receipt_and_never_a_stale_one():
    """``note_receipt`` before a frame's writes: the live frame's receive time, 0 for events
    without one (a connection's status, a timer) and for a replay: a delivery report never
    measures from an earlier frame's receipt."""
    from atomfast.events import Status

    class Noting(MemorySink):
        def __init__(self):
            super().__init__("single_object")
            self.noted = []

        def note_receipt(self, recv_ns):
            self.noted.append(recv_ns)

    status = Status("kraken", "", "connected", "", 1, 2)
    for timed, expected in ((True, [1_700_000_000_000_000_000, 0]), (False, [0, 0])):
        sink = Noting()
        p = Pipeline(sink, timed=timed)
        p.emit("status", status)
        p.end_frame(1_700_000_000_000_000_000)
        p.emit("status", status)
        p.end_frame()
        assert p.end_frame(5) == 0  # an empty frame writes nothing and notes nothing
        assert sink.noted == expected
