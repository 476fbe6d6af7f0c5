"""Pipeline: one frame's events, grouped per topic, encoded in one call, keyed exchange:symbol."""
from atomfast.avro import decode
from atomfast.events import Lob, Spread, Trade
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
