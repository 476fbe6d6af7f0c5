"""Pipeline: one frame's events, grouped per topic, encoded in one call, keyed exchange:symbol."""
from atomfast.avro import decode
from atomfast.events import Lob, Spread, Trade
from atomfast.metrics import Metrics
from atomfast.pipeline import Pipeline


class CollectingSink:
    framing = "single_object"

    def __init__(self):
        self.writes = []
        self.closed = False

    def write(self, topic, records, keys, values):
        self.writes.append((topic, list(records), list(keys), None if values is None else list(values)))

    def poll(self):
        pass

    def flush(self, timeout=30.0):
        return 0

    def close(self):
        self.closed = True

    def stats(self):
        return {}


def test_one_write_per_topic_per_frame_with_keys_and_values():
    sink = CollectingSink()
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
    class RecordsSink(CollectingSink):
        framing = None

    sink = RecordsSink()
    p = Pipeline(sink)
    rec = Lob("kraken", "BTC-USD", 1.0, 2.0, "buy", 1, 2)
    p.emit("lob", rec)
    p.end_frame()
    assert sink.writes == [("lob", [rec], [b"kraken:BTC-USD"], None)]
