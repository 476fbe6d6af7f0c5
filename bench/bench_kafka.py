"""Kafka producer: events/s into a real local broker from one process, and latency from frame
receipt to delivery report, at the chosen settings and with compression off / zstd, and linger
0 / 1 / 10 / 20 ms for comparison (the settings in ``atomfast/sinks/kafka.py`` were chosen from these).

    pytest bench/bench_kafka.py --benchmark-only -s

The broker is the test suite's (``kafka_bootstrap``: KAFKA_BOOTSTRAP_SERVERS or a local KRaft
broker started for the session) on loopback: no network between, so compression shows its CPU
cost and its bytes on the wire (librdkafka's ``txbytes``, from its statistics: ``stats_cb``,
served by the sink's compiled producer), not a bandwidth gain.

- throughput: the recorded Kraken book capture's encoded events (lob/spread/status, 60-byte
  values, written one frame's events per ``write`` as the pipeline does), 100k events a round,
  as fast as one process produces them, ending when every delivery report is in.
- latency: the capture replayed through scheme, book, encoder and the Kafka sink at a steady
  20k events/s; for every event, time from the frame's receipt (before the scheme sees it) to
  its delivery report: the test tells the sink each frame's receipt (``KafkaSink.note_receipt``,
  as the live pipeline does) and the sink's compiled producer records receipt -> delivery report
  and produce() -> delivery report per message into the ``receipt_latency`` and ``latency``
  histograms it was given.
"""
from __future__ import annotations

import json
import time
import uuid

import pytest

from atomfast.capture import open_capture
from atomfast.metrics import LatencyHistogram
from atomfast.replay import Replay
from atomfast.sinks.kafka import KafkaSink

from .conftest import capture

BOOK = "cryptofeed/KRAKEN.ws.50.0"
TOPICS = ["lob", "spread", "status"]

CONFIGS = {
    "atomfast": {},  # the defaults: linger.ms 5, lz4, batch 1 MiB
    "compression-none": {"compression.type": "none"},
    "compression-zstd": {"compression.type": "zstd"},
    "linger-0": {"linger.ms": 0},
    "linger-1": {"linger.ms": 1},
    "linger-10": {"linger.ms": 10},
    "linger-20": {"linger.ms": 20},
}


class _Writes:
    """Records what the pipeline writes: (topic, keys, values) per frame and topic."""

    framing = "single_object"

    def __init__(self):
        self.writes = []

    def write(self, topic, records, keys, values):
        self.writes.append((topic, list(keys), list(values)))

    def poll(self):
        pass

    def flush(self, timeout=30.0):
        return 0

    def close(self):
        pass

    def stats(self):
        return {}


_WRITES: list = []


def writes() -> list:
    if not _WRITES:
        sink = _Writes()
        Replay(open_capture(capture(BOOK)), "kraken", sink).run()
        _WRITES.extend(sink.writes)
    return _WRITES


def make_sink(bootstrap: str, overrides: dict, **kw) -> tuple[KafkaSink, dict]:
    wire: dict = {}

    def stats_cb(text: str) -> None:
        d = json.loads(text)
        wire["txbytes"] = sum(b.get("txbytes", 0) for b in d["brokers"].values())
        wire["requests"] = sum(b.get("tx", 0) for b in d["brokers"].values())

    conf = {"bootstrap.servers": bootstrap, "statistics.interval.ms": 500, "stats_cb": stats_cb, **overrides}
    sink = KafkaSink(conf, topic_prefix=f"bench-{uuid.uuid4().hex[:6]}.", **kw)
    sink.ensure_topics(TOPICS, partitions=1)
    sink.write("status", [()], [b"warm:"], [b"up"])  # connect and get the producer id first
    assert sink.flush(30) == 0
    return sink, wire


@pytest.fixture(scope="module")
def warm_broker(kafka_bootstrap):
    """A freshly started broker (and its JIT) is slower for the first few hundred thousand
    messages: whichever configuration ran first would pay for it. Warm it up once."""
    sink, _ = make_sink(kafka_bootstrap, {})
    items = writes()
    sent = 0
    i = 0
    while sent < 300_000:
        topic, keys, values = items[i % len(items)]
        i += 1
        sink.write(topic, (), keys, values)
        sent += len(keys)
        if not i % 256:
            sink.poll()
    assert sink.flush(60) == 0
    sink.close()
    return kafka_bootstrap


@pytest.mark.parametrize("name", list(CONFIGS))
def test_throughput(benchmark, warm_broker, name):
    kafka_bootstrap = warm_broker
    items = writes()
    total = 100_000
    sink, wire = make_sink(kafka_bootstrap, CONFIGS[name])
    sent_before = [0]

    def round_():
        sent = 0
        i = 0
        n = len(items)
        write = sink.write
        while sent < total:
            topic, keys, values = items[i % n]
            i += 1
            write(topic, (), keys, values)
            sent += len(keys)
            if not i % 256:
                sink.poll()
        assert sink.flush(60) == 0
        sent_before[0] += sent
        return sent

    benchmark.group = "kafka produce, one process, delivered"
    benchmark.extra_info.update(units=total, unit="event")
    benchmark.pedantic(round_, rounds=5, iterations=1, warmup_rounds=1)
    time.sleep(0.6)
    sink.poll()  # the last statistics
    stats = sink.stats()
    sink.close()
    assert stats["failed_total"] == 0
    benchmark.extra_info["wire_bytes_per_event"] = round(wire.get("txbytes", 0) / max(1, sent_before[0]), 1)
    print(f"\n{name}: {total / benchmark.stats.stats.median:,.0f} events/s delivered (median of 5), "
          f"{benchmark.extra_info['wire_bytes_per_event']} bytes/event on the wire")


class _KeepOpen:
    """The Kafka sink as each pass's pipeline sees it: each pass of the capture closes its
    pipeline, the sink stays open (``close`` does nothing); no ``note_receipt``: the replay's
    pipeline is untimed (recorded receive times), the test notes each frame's receipt itself."""

    framing = "single_object"

    def __init__(self, sink: KafkaSink):
        self.sink = sink
        self.write = sink.write

    def poll(self):
        self.sink.poll()

    def flush(self, timeout=30.0):
        return self.sink.flush(timeout)

    def close(self):
        pass

    def stats(self):
        return self.sink.stats()


def _paced_frames(frames, events_per_s: float, events_per_frame: float, poll):
    rate = events_per_s / events_per_frame  # frames per second
    start = time.perf_counter()
    n = 0
    for frame in frames:
        if frame.kind == "recv":
            n += 1
            while time.perf_counter() < start + n / rate:
                poll()
                time.sleep(0.0005)
        yield frame


@pytest.mark.parametrize("name", ["atomfast", "compression-none", "compression-zstd", "linger-0", "linger-1",
                                  "linger-10", "linger-20"])
def test_latency_frame_to_delivery(benchmark, warm_broker, name):
    kafka_bootstrap = warm_broker
    rate = 20_000.0  # events/s
    passes = 6  # of the capture (~0.37 s each at this rate)
    items = writes()
    per_frame = sum(len(k) for _t, k, _v in items) / sum(
        1 for f in open_capture(capture(BOOK)).frames() if f.kind == "recv")
    # the sink's own histograms: produce() -> delivery report, and frame receipt (note_receipt)
    # -> delivery report, per message, recorded by the compiled producer
    produce_to_delivery, receipt_to_delivery = LatencyHistogram(), LatencyHistogram()
    sink, _wire = make_sink(kafka_bootstrap, CONFIGS[name], latency=produce_to_delivery,
                           receipt_latency=receipt_to_delivery)
    # the warm-up message carried no receipt time; its produce() -> delivery sample goes
    produce_to_delivery.counts = [0] * len(produce_to_delivery.counts)
    produce_to_delivery.total = produce_to_delivery.max_ns = 0
    note_receipt = sink.note_receipt
    time_ns = time.time_ns  # the producer's clock: wall time (CLOCK_REALTIME)

    def one_pass():
        cap = open_capture(capture(BOOK))
        frames = cap.frames
        cap.frames = lambda: _paced_frames(frames(), rate, per_frame, sink.poll)
        replay = Replay(cap, "kraken", _KeepOpen(sink))
        # a frame goes to the frame driver's ``on_frame`` (the scheme's, bound when the driver
        # was built: replacing ``scheme.on_frame`` now would not be seen); ``open`` calls the
        # scheme's ``on_open`` when it happens
        driver, scheme = replay.driver, replay.scheme
        on_frame, on_open = driver.on_frame, scheme.on_open

        def stamped_frame(conn, data, recv_ns):
            note_receipt(time_ns())  # the frame's receipt (before the scheme sees it)
            on_frame(conn, data, recv_ns)

        def stamped_open(conn, recv_ns):
            note_receipt(time_ns())  # (the "connected" status event)
            on_open(conn, recv_ns)

        driver.on_frame, scheme.on_open = stamped_frame, stamped_open
        replay.run()

    def round_():
        for _ in range(passes):
            one_pass()
        assert sink.flush(60) == 0

    benchmark.group = "kafka latency, frame receipt -> delivery report, 20k events/s"
    benchmark.pedantic(round_, rounds=1, iterations=1)
    sink.close()
    h = receipt_to_delivery
    # every message written has its sample (a write after the pass's last frame, as the close's
    # status event, carries that frame's receipt: the sink keeps the last one noted)
    assert h.total == sum(len(k) for _t, k, _v in items) * passes
    p50, p99, p999 = (h.percentile(q) / 1e6 for q in (50, 99, 99.9))
    d50, d99 = (produce_to_delivery.percentile(q) / 1e6 for q in (50, 99))
    benchmark.extra_info.update(events=h.total, p50_ms=round(p50, 2), p99_ms=round(p99, 2),
                                p999_ms=round(p999, 2), max_ms=round(h.max_ns / 1e6, 2),
                                produce_to_delivery_p50_ms=round(d50, 2), produce_to_delivery_p99_ms=round(d99, 2))
    print(f"\n{name}: frame receipt -> delivery report at {rate:,.0f} events/s: p50 {p50:.2f} ms, "
          f"p99 {p99:.2f} ms, p99.9 {p999:.2f} ms, max {h.max_ns / 1e6:.1f} ms ({h.total} events; "
          f"produce() -> delivery report p50 {d50:.2f} ms, p99 {d99:.2f} ms; histogram buckets ~4.4%: "
          "a percentile is its bucket's upper bound)")
