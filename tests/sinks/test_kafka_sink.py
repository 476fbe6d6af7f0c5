"""KafkaSink against a real broker: exact values back, partitions as Java's, back-pressure
without loss, failures counted, secrets never shown.

The broker comes from the `kafka_bootstrap` fixture (tests/conftest.py): KAFKA_BOOTSTRAP_SERVERS
or a local KRaft broker started for the session (tools/kafka/broker.py).
"""
from __future__ import annotations

import json
import logging
import random
import struct
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from atomfast.metrics import LatencyHistogram
from atomfast.sinks.kafka import KafkaSink, KafkaSinkError, Secret
from atomfast.testing import java_partition, murmur2

# --------------------------------------------------------------------------------------------
# helpers


# Utils.murmur2 as computed by the Java client itself (kafka-clients 4.3.1, tools/kafka/lib),
# with toPositive(h) % 3, % 7 and % 12.
JAVA_MURMUR2 = {
    b"kraken:BTC-USD": (1292765858, 2, 6, 2),
    b"kraken:ETH-USD": (-906645808, 1, 4, 4),
    b"binance:BTC-USDT": (646878651, 0, 6, 3),
    b"coinbase:SOL-USD": (944380859, 2, 2, 11),
    b"bybit:BTC-USDT-PERP": (-1033096040, 0, 5, 0),
    b"21": (-973932308, 0, 3, 0),
    b"foobar": (-790332482, 0, 0, 6),
    b"a-little-bit-long-string": (-985981536, 2, 1, 8),
    b"abc": (479470107, 0, 4, 3),
    b"": (275646681, 0, 2, 9),
}

MARKETS = [
    b"kraken:BTC-USD",
    b"kraken:ETH-USD",
    b"binance:BTC-USDT",
    b"coinbase:SOL-USD",
    b"bybit:BTC-USDT-PERP",
    b"kraken:XRP-EUR",
]

SECRET = "s3cr3t-Pa55word-that-must-never-show-7f3a"
API_KEY = "AKIA-atomfast-api-key-9921"


def fresh_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}."


def make_value(rng: random.Random, seq: int, key: bytes) -> bytes:
    """Bytes shaped like an Avro single-object value: C3 01, 8-byte fingerprint, a body with
    every byte value possible (zeros included) and a varying length."""
    body = struct.pack(">I", seq) + key + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120)))
    return b"\xc3\x01" + b"\x00\x11\x22\x33\x44\x55\x66\x77" + body


def consume(bootstrap: str, topics: list[str], expected: int, timeout: float = 60.0) -> list:
    """Every message of ``topics`` from the beginning: (topic, partition, offset, key, value).
    Reads until ``expected`` messages arrived, then one more second to catch any extra."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(timeout=10)
    assignment = [
        TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in md.topics[t].partitions
    ]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }
    )
    out = []
    try:
        consumer.assign(assignment)
        deadline = time.monotonic() + timeout
        grace_end = None
        while time.monotonic() < deadline:
            if len(out) >= expected and grace_end is None:
                grace_end = time.monotonic() + 1.0
            if grace_end is not None and time.monotonic() >= grace_end:
                break
            for msg in consumer.consume(num_messages=1000, timeout=0.2):
                assert msg.error() is None, msg.error()
                out.append((msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value()))
    finally:
        consumer.close()
    return out


def exception_text(info: pytest.ExceptionInfo) -> str:
    """All an exception shows: its message, repr, the chained exceptions and the traceback."""
    parts = [str(info.getrepr(showlocals=False, chain=True))]
    exc: BaseException | None = info.value
    while exc is not None:
        parts += [str(exc), repr(exc)]
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return {t: len(md.topics[t].partitions) for t in topics}


# --------------------------------------------------------------------------------------------
# no broker needed


def test_murmur2_matches_the_java_client():
    for key, (h, p3, p7, p12) in JAVA_MURMUR2.items():
        assert murmur2(key) == h, key
        assert (java_partition(key, 3), java_partition(key, 7), java_partition(key, 12)) == (p3, p7, p12)


def test_guarantees_cannot_be_overridden():
    for bad in ({"acks": 1}, {"enable.idempotence": False}, {"partitioner": "consistent_random"}):
        with pytest.raises(KafkaSinkError):
            KafkaSink({"bootstrap.servers": "127.0.0.1:1", **bad})
    with pytest.raises(KafkaSinkError):
        KafkaSink({"bootstrap.servers": "127.0.0.1:1", "compression.type": "brotli"})
    with pytest.raises(ValueError):
        KafkaSink({"bootstrap.servers": "127.0.0.1:1"}, framing="json")
    with pytest.raises(KafkaSinkError):
        KafkaSink.from_settings("")
    sink = KafkaSink.from_settings("127.0.0.1:1", compression_type="zstd", acks="all")
    assert sink.framing == "single_object"
    assert "zstd" in repr(sink)
    assert KafkaSink.from_settings("127.0.0.1:1", framing="confluent").framing == "confluent"


def test_python_callbacks_are_refused_by_name():
    """confluent-kafka's Python hooks (throttle_cb, oauth_cb, ...) cannot reach the compiled
    producer: refused with one message naming them, not a librdkafka error (stats_cb is served:
    test_latency_histograms_and_close)."""
    with pytest.raises(KafkaSinkError) as info:
        KafkaSink({"bootstrap.servers": "127.0.0.1:1", "oauth_cb": print, "throttle_cb": print,
                   "statistics.interval.ms": 1000})
    assert str(info.value).startswith("oauth_cb, throttle_cb: a Python callback in the producer settings is "
                                      "not supported")


def test_secrets_absent_from_config_errors(caplog, capfd):
    caplog.set_level(logging.DEBUG)
    errors = []
    # librdkafka quotes an invalid value in its message: here the secret itself.
    for conf in (
        {"sasl.password": SECRET, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": SECRET},
        {"sasl.password": SECRET, "security.protocol": SECRET},
        {"sasl.password": SECRET, "no.such.property": SECRET},
    ):
        with pytest.raises(KafkaSinkError) as info:
            KafkaSink({"bootstrap.servers": "127.0.0.1:1", **conf})
        errors.append(info)
    with pytest.raises(KafkaSinkError) as info:
        KafkaSink.from_settings("127.0.0.1:1", sasl_key=API_KEY, sasl_secret=SECRET, sasl_mechanism="GSSAPI")
    errors.append(info)
    with pytest.raises(KafkaSinkError) as info:
        KafkaSink.from_settings("127.0.0.1:1", sasl_secret=SECRET)
    errors.append(info)
    for info in errors:
        text = exception_text(info)
        assert SECRET not in text and API_KEY not in text
    out, err = capfd.readouterr()
    assert SECRET not in caplog.text + out + err
    assert repr(Secret(SECRET)) == "'***'" and str(Secret(SECRET)) == "'***'"


def test_sasl_settings_and_repr():
    sink = KafkaSink.from_settings(
        "broker.example:9092", sasl_key=API_KEY, sasl_secret=SECRET, sasl_mechanism="scram-sha-512"
    )
    try:
        text = repr(sink) + str(sink) + repr(vars(sink)) + repr(sink.stats())
        assert SECRET not in text and API_KEY not in text
        assert "SASL_SSL" in repr(sink) and "SCRAM-SHA-512" in repr(sink)
        assert sink._conf["sasl.password"].reveal() == SECRET
        assert sink._conf["sasl.username"].reveal() == API_KEY
        assert sink._conf["security.protocol"] == "SASL_SSL"
    finally:
        sink.close(timeout=0)


# --------------------------------------------------------------------------------------------
# real broker


@pytest.mark.kafka
def test_roundtrip_exact(kafka_bootstrap):
    prefix = fresh_prefix()
    sink = KafkaSink.from_settings(kafka_bootstrap, topic_prefix=prefix)
    topics = ["lob", "trades"]
    names = [prefix + t for t in topics]
    assert sink.ensure_topics(topics, partitions=3) == names
    assert sink.ensure_topics(topics, partitions=3) == []  # already there: fine
    assert partition_counts(kafka_bootstrap, names) == {n: 3 for n in names}

    rng = random.Random(20241120)
    expected: dict[tuple[str, bytes], list[bytes]] = {}
    total = 4000
    seq = 0
    while seq < total:
        topic = rng.choice(topics)
        key = rng.choice(MARKETS)
        n = min(rng.randrange(1, 60), total - seq)  # one frame's events of one market
        values = [make_value(rng, seq + i, key) for i in range(n)]
        sink.write(topic, [()] * n, [key] * n, values)
        expected.setdefault((prefix + topic, key), []).extend(values)
        seq += n
        if rng.random() < 0.2:
            sink.poll()
    assert sink.flush(30) == 0
    sink.close()

    stats = sink.stats()
    assert stats["delivered_total"] == total
    assert stats["failed_total"] == 0 and stats["failed"] == {}
    assert stats["delivered"] == {
        n: sum(len(v) for (t, _), v in expected.items() if t == n) for n in names
    }

    got = consume(kafka_bootstrap, names, total)
    assert len(got) == total
    received: dict[tuple[str, bytes], list[bytes]] = {}
    for topic, partition, offset, key, value in got:
        assert partition == java_partition(key, 3), (key, partition)
        received.setdefault((topic, key), [])
    # In order per key: sort each partition's messages by offset, then group by key.
    for topic, partition, offset, key, value in sorted(got, key=lambda m: (m[0], m[1], m[2])):
        received[(topic, key)].append(value)
    assert received.keys() == expected.keys()
    for k in expected:
        assert received[k] == expected[k], k  # byte-identical, same order, same count


@pytest.mark.kafka
def test_partition_is_the_java_clients(kafka_bootstrap):
    prefix = fresh_prefix()
    sink = KafkaSink.from_settings(kafka_bootstrap, topic_prefix=prefix)
    sink.ensure_topics(["ticker"], partitions=7)
    assert java_partition(b"kraken:BTC-USD", 7) == 6  # the Java client's answer
    keys = list(JAVA_MURMUR2)
    sink.write("ticker", [()] * len(keys), keys, [b"v:" + k for k in keys])
    assert sink.flush(30) == 0
    sink.close()
    got = consume(kafka_bootstrap, [prefix + "ticker"], len(keys))
    assert len(got) == len(keys)
    for _, partition, _, key, value in got:
        assert value == b"v:" + key
        assert partition == JAVA_MURMUR2[key][2], key


@pytest.mark.kafka
def test_backpressure_never_drops(kafka_bootstrap):
    prefix = fresh_prefix()
    sink = KafkaSink.from_settings(
        kafka_bootstrap, topic_prefix=prefix, **{"queue.buffering.max.messages": 10}
    )
    sink.ensure_topics(["lob"], partitions=1)
    total = 5000
    values = [b"\xc3\x01" + struct.pack(">I", i) * 4 for i in range(total)]
    for start in range(0, total, 1000):
        chunk = values[start : start + 1000]
        sink.write("lob", [()] * len(chunk), [b"kraken:BTC-USD"] * len(chunk), chunk)
        # The local queue stays bounded (librdkafka's count adds pending events to the 10).
        assert sink.stats()["queue"] < 100
    assert sink.flush(30) == 0
    stats = sink.stats()
    sink.close()
    assert stats["backpressure_waits"] > 0
    assert stats["delivered_total"] == total and stats["failed_total"] == 0
    got = consume(kafka_bootstrap, [prefix + "lob"], total)
    assert [m[4] for m in sorted(got, key=lambda m: m[2])] == values


@pytest.mark.kafka
def test_latency_histograms_and_close(kafka_bootstrap):
    """Every delivery report records produce -> delivery and, for messages written after
    note_receipt, receipt -> delivery: here a receipt 5 s before the write."""
    prefix = fresh_prefix()
    latency, receipt = LatencyHistogram(), LatencyHistogram()
    stats: list[dict] = []
    sink = KafkaSink({"bootstrap.servers": kafka_bootstrap, "statistics.interval.ms": 100,
                      "stats_cb": lambda text: stats.append(json.loads(text))},
                     topic_prefix=prefix, latency=latency, receipt_latency=receipt)
    sink.ensure_topics(["spread"])
    sink.write("spread", [()] * 40, [b"kraken:BTC-USD"] * 40, [b"x%d" % i for i in range(40)])
    sink.note_receipt(time.time_ns() - 5_000_000_000)
    sink.write("spread", [()] * 60, [b"kraken:BTC-USD"] * 60, [b"y%d" % i for i in range(60)])
    assert sink.flush(30) == 0
    assert latency.total == 100 and 0 < latency.max_ns < 30e9
    assert receipt.total == 60  # the 40 written before any receipt was noted carry none
    assert 5e9 <= receipt.percentile(1) and receipt.max_ns < 35e9
    assert sink.stats()["delivered"] == {prefix + "spread": 100}
    time.sleep(0.3)
    sink.poll()  # librdkafka's statistics (stats_cb), served by poll: its own count of what it sent
    assert stats and stats[-1]["txmsgs"] == 100
    sink.close()
    sink.close()  # idempotent
    assert sink.flush() == 0
    assert sink.stats()["closed"] is True
    with pytest.raises(KafkaSinkError):
        sink.write("spread", [()], [b"k"], [b"v"])
    with pytest.raises(ValueError):
        KafkaSink.from_settings(kafka_bootstrap).write("spread", [()], [b"k", b"k2"], [b"v"])


@pytest.mark.kafka
def test_exact_receipt_samples_and_poll_after_write(kafka_bootstrap):
    """The benchmark's hooks on the compiled producer (bench/latency.py): keep_receipt_samples
    keeps each receipt -> delivery latency exactly as the histogram records it, up to its bound
    (the rest counted as missed); poll_after_write False leaves the delivery reports to poll()."""
    from array import array

    prefix = fresh_prefix()
    receipt = LatencyHistogram()
    sink = KafkaSink({"bootstrap.servers": kafka_bootstrap}, topic_prefix=prefix, receipt_latency=receipt)
    producer = sink._producer
    sink.ensure_topics(["spread"])
    producer.keep_receipt_samples(50)
    sink.write("spread", [()] * 10, [b"kraken:BTC-USD"] * 10, [b"x%d" % i for i in range(10)])  # no receipt
    sink.note_receipt(time.time_ns() - 2_000_000_000)
    sink.write("spread", [()] * 60, [b"kraken:BTC-USD"] * 60, [b"y%d" % i for i in range(60)])
    assert sink.flush(30) == 0
    samples = array("q")
    samples.frombytes(producer.receipt_samples())
    assert len(samples) == 50 and producer.receipt_samples_missed == 10 and receipt.total == 60
    assert all(2e9 <= ns < 32e9 for ns in samples)
    check = LatencyHistogram()
    for ns in samples:
        check.record(ns)
    assert check.percentile(100) <= receipt.percentile(100)  # the same values the histogram got
    producer.keep_receipt_samples(0)
    assert producer.receipt_samples() == b"" and producer.receipt_samples_missed == 0

    producer.poll_after_write = False
    delivered = sink.stats()["delivered_total"]
    sink.write("spread", [()] * 5, [b"kraken:BTC-USD"] * 5, [b"z%d" % i for i in range(5)])
    for _ in range(50):  # 1 s: delivered long since (linger 5 ms, loopback), its report not served
        time.sleep(0.02)
        sink.write("spread", [], [], [])  # writes that do not poll
    assert sink.stats()["delivered_total"] == delivered and len(producer) >= 5  # (+ reports waiting)
    sink.poll()
    assert sink.flush(30) == 0 and sink.stats()["delivered_total"] == delivered + 5
    producer.poll_after_write = True
    sink.write("spread", [()] * 5, [b"kraken:BTC-USD"] * 5, [b"w%d" % i for i in range(5)])
    deadline = time.monotonic() + 30
    while sink.stats()["delivered_total"] != delivered + 10 and time.monotonic() < deadline:
        time.sleep(0.01)
        sink.write("spread", [], [], [])  # each write serves the reports that are in
    assert sink.stats()["delivered_total"] == delivered + 10
    sink.close()


@pytest.mark.kafka
def test_ensure_topics_reports_failure(kafka_bootstrap):
    prefix = fresh_prefix()
    sink = KafkaSink.from_settings(kafka_bootstrap, topic_prefix=prefix)
    with pytest.raises(KafkaSinkError) as info:
        sink.ensure_topics(["candle"], partitions=1, replication_factor=3)  # one broker only
    assert prefix + "candle" in str(info.value)
    assert "INVALID_REPLICATION_FACTOR" in str(info.value)
    created = sink.ensure_topics(["candle"], partitions=2, config={"retention.ms": 3600000})
    assert created == [prefix + "candle"]
    assert partition_counts(kafka_bootstrap, created) == {prefix + "candle": 2}
    sink.close()


@pytest.mark.kafka
def test_failures_counted_logged_and_secret_never_shown(kafka_bootstrap, caplog, capfd):
    """SASL_SSL against the test broker's PLAINTEXT listener: every connection fails, every
    message times out. The failures are counted and logged (rate-limited) and nothing the
    sink emits contains the secret or the API key."""
    caplog.set_level(logging.DEBUG)
    sink = KafkaSink.from_settings(
        kafka_bootstrap,
        sasl_key=API_KEY,
        sasl_secret=SECRET,
        topic_prefix=fresh_prefix(),
        log_interval=0.2,
        message_timeout_ms=1500,
    )
    n = 50
    sink.write("trades", [()] * n, [b"kraken:BTC-USD"] * n, [b"v%d" % i for i in range(n)])
    deadline = time.monotonic() + 20
    while sink.stats()["failed_total"] < n and time.monotonic() < deadline:
        sink.poll()
        time.sleep(0.05)
    with pytest.raises(KafkaSinkError) as info:
        sink.ensure_topics(["trades"], timeout=2)
    sink.flush(5)
    stats = sink.stats()
    sink.close(timeout=1)

    assert stats["delivered_total"] == 0
    assert stats["failed_total"] == n
    assert stats["failed"] == {sink.topic_prefix + "trades": n}
    assert stats["failure_reasons"] == {"_MSG_TIMED_OUT": n}
    failure_lines = [r.getMessage() for r in caplog.records if "kafka delivery failed" in r.getMessage()]
    assert failure_lines[0] == (
        f"kafka delivery failed: _MSG_TIMED_OUT: Local: Message timed out (topic {sink.topic_prefix}trades)"
    )
    assert len(failure_lines) < n  # rate-limited
    assert any("more x _MSG_TIMED_OUT" in line for line in failure_lines)

    out, err = capfd.readouterr()
    shown = "\n".join(
        [
            caplog.text,
            out,
            err,
            repr(sink),
            str(sink),
            repr(stats),
            exception_text(info),
        ]
    )
    assert SECRET not in shown
    assert API_KEY not in shown


@pytest.mark.kafka
def test_broker_restart_same_port_and_data(kafka_broker):
    bootstrap = kafka_broker.bootstrap
    prefix = fresh_prefix()
    sink = KafkaSink.from_settings(bootstrap, topic_prefix=prefix)
    sink.ensure_topics(["status"], partitions=2)
    first = [b"before-%d" % i for i in range(200)]
    sink.write("status", [()] * 200, [b"kraken:"] * 200, first)
    assert sink.flush(30) == 0
    kafka_broker.restart()
    assert kafka_broker.bootstrap == bootstrap
    second = [b"after-%d" % i for i in range(200)]
    sink.write("status", [()] * 200, [b"kraken:"] * 200, second)
    assert sink.flush(60) == 0
    assert sink.stats()["failed_total"] == 0
    sink.close()
    got = consume(bootstrap, [prefix + "status"], 400)
    assert [m[4] for m in sorted(got, key=lambda m: (m[1], m[2]))] == first + second
