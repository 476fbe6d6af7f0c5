"""Kafka misbehaving, for real (a local broker on loopback, stopped and restarted; a processor
killed with SIGKILL): nothing is lost, nothing is invented.

- A replay at a steady rate into the Kafka sink; the broker stops in the middle and comes back
  later. Every event produced before, during and after the outage is in Kafka exactly once (one
  idempotent producer session), compared byte for byte with an offline replay and counted
  against the replay's summary. The local queue is small, so the outage outlasts it: with the
  ``block`` policy the replay waits (status ``backpressure`` then ``recovered`` in Kafka); with
  ``spill`` the events of the outage go to local Avro files (status ``spilling`` /
  ``recovered``), and Kafka plus the files hold every event exactly once.
- Two ``atomfast process`` workers share the raw topic's partitions; one is killed mid-stream;
  the other takes its partitions over (rebuilding books from the commit metadata) and the
  normalised output holds every input frame's events, in order per market (duplicates: only
  the last uncommitted batch of the dead worker, at-least-once).
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import fastavro
import pytest

from atomfast.avro import decode
from atomfast.capture import open_capture
from atomfast.config import Settings
from atomfast.events import SINK_STATUS_VALUES
from atomfast.metrics import Metrics
from atomfast.replay import Replay
from atomfast.sinks import make_kafka_sink

from atomfast.testing import ROOT, NAMED_CAPTURES, MemorySink, fixture_path, java_partition, read_topics, stop_process

BOOK = "cryptofeed/KRAKEN.ws.50.0"


def paced(frames, phases):
    """The capture's frames, ``phases`` = [(until_recv_index, frames_per_second, wait_for)]:
    before each phase, wait for its event (if any); then frames at a steady rate."""
    it = iter(frames)
    n = 0
    for until, rate, wait_for in phases:
        if wait_for is not None:
            assert wait_for.wait(120), "the broker did not come back"
        start = time.monotonic()
        sent = 0
        for frame in it:
            yield frame
            if frame.kind != "recv":
                continue
            n += 1
            sent += 1
            delay = start + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if n >= until:
                break
    yield from it


def offline(relative: str) -> tuple[dict, dict]:
    sink, metrics = MemorySink("single_object"), Metrics()
    Replay(open_capture(fixture_path(relative)), "kraken", sink, metrics).run()
    return metrics.summary(), {t: [v for _k, v in kv] for t, kv in sink.out.items()}


def spilled(data_dir: Path, topic: str) -> list[dict]:
    out = []
    folder = data_dir / topic
    for path in sorted(folder.glob("*.avro")) if folder.is_dir() else []:
        with open(path, "rb") as f:
            out += list(fastavro.reader(f, return_record_name=False))
    for r in out:  # the files' reader applies logical types; values as written
        ts = r.get("event_timestamp")
        if hasattr(ts, "timestamp"):
            r["event_timestamp"] = round(ts.timestamp() * 1000)
    return out


def is_subsequence(short: list, long: list) -> bool:
    it = iter(long)
    return all(any(x == y for y in it) for x in short)


@pytest.mark.kafka
@pytest.mark.parametrize("policy", ["block", "spill"])
def test_broker_outage_mid_replay_every_event_exactly_once(policy, kafka_broker, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="atomfast.sinks.kafka")
    expected_summary, expected = offline(BOOK)
    prefix = f"outage-{policy}-{uuid.uuid4().hex[:6]}."
    settings = Settings(kafka_bootstrap_servers=kafka_broker.bootstrap, kafka_topic_prefix=prefix,
                        kafka_buffer_policy=policy, data_dir=str(tmp_path))
    metrics = Metrics()
    # a small local queue, so that the outage outlasts it and the policy has to act
    sink = make_kafka_sink(settings, metrics, topics=["lob", "spread", "status"],
                           **{"queue.buffering.max.messages": 400})
    sink.stall_timeout = 1.0

    go, stopped, restarted = threading.Event(), threading.Event(), threading.Event()
    capture = open_capture(fixture_path(BOOK))
    frames = capture.frames
    # before (frames 0-600), during (600-1500, the broker down), after (the rest, once it is back)
    capture.frames = lambda: paced(frames(), [(600, 300, None), (1500, 300, stopped), (10**9, 300, restarted)])
    replay = Replay(capture, "kraken", sink, metrics)
    inner = replay.driver.on_frame

    def on_frame(conn, data, recv_ns):
        inner(conn, data, recv_ns)
        if metrics.frames == 600:
            go.set()

    replay.driver.on_frame = on_frame  # what the frame driver calls
    failed: list = []

    def run():
        try:
            replay.run()  # closes the sink: flushes whatever waited for the broker
        except BaseException as exc:  # noqa: BLE001
            failed.append(exc)

    # the replay in a thread; the broker stopped and started from this one (the broker gets
    # SIGTERM when the thread that started it ends: tools/kafka/broker.py, die_with_parent)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert go.wait(60), "the replay did not reach frame 600"
        kafka_broker.stop()
    finally:
        stopped.set()
    time.sleep(3.0)
    try:
        kafka_broker.start()
    finally:
        restarted.set()
    thread.join(180)
    assert not thread.is_alive(), "the replay is still waiting for the broker"
    assert not failed, failed
    stats = sink.stats()
    summary = metrics.summary()
    assert summary["frames"] == expected_summary["frames"] and summary["checksum_failed"] == 0
    assert stats["failed_total"] == 0 and stats["stalls"] >= 1 and stats["queue"] == 0
    loud = [r for r in caplog.records if r.levelno == logging.ERROR and "gone longer than the local queue" in r.getMessage()]
    assert loud and (policy in loud[0].getMessage())

    got = read_topics(kafka_broker.bootstrap, [prefix + t for t in ("lob", "spread", "status")])
    for topic in ("lob", "spread", "status"):
        values = [v for _k, v in got[prefix + topic]]
        if topic == "status":
            said = [decode(v)[1] for v in values]
            sink_said = [s for s in said if s["status"] in SINK_STATUS_VALUES]
            values = [v for v, s in zip(values, said) if s["status"] not in SINK_STATUS_VALUES]
            first = "spilling" if policy == "spill" else "backpressure"
            assert [s["status"] for s in sink_said][:2] == [first, "recovered"], sink_said
            assert all(s["exchange"] == "kraken" and s["symbol"] == "" for s in sink_said)
        if policy == "block":
            # exactly once, in order: the same bytes as the offline replay
            assert values == expected[topic], topic
            assert len(values) == summary["events"][topic]
        else:
            files = spilled(tmp_path, topic)
            if topic == "status":
                files = [r for r in files if r["status"] not in SINK_STATUS_VALUES]
            in_kafka = [decode(v)[1] for v in values]
            want = [decode(v)[1] for v in expected[topic]]
            key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
            assert Counter(map(key, in_kafka + files)) == Counter(map(key, want)), topic
            assert len(in_kafka) + len(files) == summary["events"][topic]
            assert is_subsequence(in_kafka, want) and is_subsequence(files, want)
            if topic == "lob":
                assert files and in_kafka  # the outage's events went to the files, the rest to Kafka
                assert stats["spilled"] >= len(files)


@pytest.mark.kafka
def test_first_messages_to_topics_just_created_are_all_there(kafka_bootstrap, caplog):
    """Writes at once to topics ensure_topics has just created, with a producer that already has
    its producer id: every message is in Kafka, in order. (The broker's metadata lists a new
    partition's leader a few ms before that leader has the partition's log: a first batch in
    that gap got NOT_LEADER_OR_FOLLOWER, the next one was taken as the producer's first, and
    librdkafka counted the first as delivered, "implicitly acked by subsequent batch success";
    so ensure_topics returns only when the created partitions take writes.)"""
    from atomfast.sinks.kafka import KafkaSink

    caplog.set_level(logging.DEBUG, logger="atomfast.sinks.kafka.librdkafka")  # debug=msg: each batch's outcome
    prefix = f"fresh-{uuid.uuid4().hex[:6]}."
    # linger.ms 0: a request per write, several in flight before the broker answers the first
    sink = KafkaSink.from_settings(kafka_bootstrap, topic_prefix=prefix, linger_ms=0, debug="msg")
    try:
        sink.ensure_topics(["warm"])  # the producer's id, before the topics under test exist
        sink.write("warm", [()], [b"x:"], [b"warm"])
        assert sink.flush(30) == 0
        topics = [f"t{i}" for i in range(16)]  # many partitions: their logs are made one by one
        assert sink.ensure_topics(topics) == [prefix + t for t in topics]
        sent: dict[str, list[bytes]] = {t: [] for t in topics}
        for n in range(150):  # ~0.3 s of writes: new requests while the first ones are answered
            for t in topics:
                value = f"{t}-{n}".encode()
                sink.write(t, [()], [b"kraken:X"], [value])
                sent[t].append(value)
            time.sleep(0.002)
        assert sink.flush(30) == 0
        stats = sink.stats()
    finally:
        sink.close()
    refused = [r.getMessage() for r in caplog.records if "Not leader for partition" in r.getMessage()]
    # the precondition of the loss, seen every time when ensure_topics returned too early (the
    # loss itself needs a second request in flight before the broker refuses the first one)
    assert not refused, f"{len(refused)} batches refused by the new partitions' leader: {refused[0]}"
    assert stats["failed_total"] == 0 and stats["delivered_total"] == 1 + 150 * len(topics)
    got = read_topics(kafka_bootstrap, [prefix + t for t in topics])
    lost = {t: len(sent[t]) - len(got[prefix + t]) for t in topics if [v for _k, v in got[prefix + t]] != sent[t]}
    assert not lost, f"reported delivered, not in Kafka (topic: messages missing): {lost}"


def test_closing_without_a_broker_spills_what_is_still_queued(tmp_path, caplog):
    """spill policy, no broker at all (a port nobody listens on): close() takes the queued
    messages back from librdkafka and writes them to the files; nothing is lost."""
    from atomfast.sinks.kafka import KafkaSink

    sink, metrics = KafkaSink({"bootstrap.servers": "127.0.0.1:1"}, policy="spill", spill_dir=tmp_path,
                              log_interval=60), Metrics()
    replay = Replay(open_capture(fixture_path("cryptofeed/KRAKEN.ws.48.0")), "kraken", sink, metrics)
    original_close = sink.close
    sink.close = lambda timeout=1.0: original_close(timeout)  # don't wait 30 s for a broker that never comes
    replay.run()
    stats = sink.stats()
    assert stats["delivered_total"] == 0 and stats["failed_total"] == 0
    for topic in ("trades", "status", "ticker"):
        assert len(spilled(tmp_path, topic)) == metrics.events.get(topic, 0), topic
    assert stats["spilled"] == sum(metrics.events.values()) > 0
    assert "written to the spill files" in caplog.text


# ------------------------------------------------------------------------------------------------
# a processor killed mid-stream


class Worker:
    """`atomfast process` in a subprocess; its stderr collected by a thread."""

    def __init__(self, name: str, env: dict, *args: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "atomfast.cli", "process", *args], cwd=ROOT,
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def assigned(self) -> list[str]:
        return [ln for ln in self.lines if " assigned: " in ln]

    def summary(self) -> dict:
        found = [ln for ln in self.lines if ln.startswith("summary: ")]
        assert found, "\n".join(self.lines[-40:])
        return json.loads(found[-1][len("summary: "):])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # SIGKILL, by pid: no goodbye to the group, no last commit
        self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc, 30)


def _session_for(exchange: str, partition: int, partitions: int, taken: set[str]) -> str:
    """A session id whose connection 0 key lands on ``partition`` (murmur2, as the producer)."""
    for i in range(10_000):
        session = f"test-{partition}-{i}"
        if java_partition(f"{exchange}:{session}/0".encode(), partitions) == partition and session not in taken:
            taken.add(session)
            return session
    raise AssertionError("no session id for that partition")


@pytest.mark.kafka
def test_killed_processor_is_replaced_and_no_frame_is_lost(kafka_bootstrap):
    names = ["kraken-book", "kraken-futures", "kraken-trades-ticker"]
    names.append("binance-usdm")
    partitions = 4
    prefix = f"kill-{uuid.uuid4().hex[:6]}."
    out_prefix = prefix + "p."
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SCHEMA_REGISTRY"))}
    env.update(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, KAFKA_TOPIC_PREFIX=prefix,
               KAFKA_TOPIC_PARTITIONS=str(partitions), PYTHONPATH=str(ROOT))
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, kafka_topic_prefix=prefix,
                        kafka_topic_partitions=str(partitions))
    make_kafka_sink(settings).close()  # the topics, 4 partitions each, before the workers subscribe

    group = f"g-{prefix}"
    args = ("--output-prefix", out_prefix, "--group", group, "--batch", "50", "--session-timeout", "6",
            "--idle-timeout", "8")
    a, b = Worker("a", env, *args), Worker("b", env, *args)
    workers = [a, b]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (a.assigned() and b.assigned()):
            time.sleep(0.2)
        assert a.assigned() and b.assigned(), "\n".join(a.lines[-20:] + b.lines[-20:])

        # four collector sessions, one per partition, at a steady rate for ~8 s each
        taken: set[str] = set()
        errors: list = []

        def produce(i: int, name: str) -> None:
            try:
                exchange, files = NAMED_CAPTURES[name]
                capture = open_capture(*[fixture_path(f) for f in files])
                n = sum(1 for f in capture.frames() if f.kind == "recv")
                frames = capture.frames
                capture.frames = lambda: paced(frames(), [(10**9, max(20.0, n / 8.0), None)])
                sink = make_kafka_sink(settings, topics=["raw"])
                Replay(capture, exchange, sink, raw=True,
                       session=_session_for(exchange, i, partitions, taken)).run()
                assert sink.stats()["failed_total"] == 0
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        # (topics=["raw"]: the inline outputs are the reference, made offline below)
        threads = [threading.Thread(target=produce, args=(i, name)) for i, name in enumerate(names)]
        for t in threads:
            t.start()
        time.sleep(3.0)
        victim = a if a.assigned() else b
        victim.kill()
        for t in threads:
            t.join(120)
        assert not errors, errors
        survivor = b if victim is a else a
        survivor.proc.wait(120)
        done = survivor.summary()
    finally:
        for w in workers:
            w.stop()

    assert survivor.proc.returncode == 0, "\n".join(survivor.lines[-40:])
    takeover = [ln for ln in survivor.assigned() if "publishing from" in ln]
    assert takeover, "the survivor never took a partition over:\n" + "\n".join(survivor.lines[-40:])
    assert done["orphans"] == 0 and done["undecodable"] == 0 and done["rebuilt"] > 0

    # the reference: each capture's inline outputs (the same raw stream processed offline)
    expected: dict[str, list[tuple[bytes, bytes]]] = defaultdict(list)
    per_capture = []
    for name in names:
        exchange, files = NAMED_CAPTURES[name]
        sink = MemorySink("single_object")
        Replay(open_capture(*[fixture_path(f) for f in files]), exchange, sink).run()
        per_capture.append(sink.normalised())
        for topic, items in sink.normalised().items():
            expected[topic] += items
    topics = sorted(expected)
    got = read_topics(kafka_bootstrap, [out_prefix + t for t in topics])
    duplicates = 0
    for topic in topics:
        processed = got[out_prefix + topic]
        want = Counter(expected[topic])
        have = Counter(processed)
        assert not (want - have), f"{topic}: {sum((want - have).values())} events missing"
        assert set(have) == set(want), f"{topic}: events that no frame made"
        duplicates += sum((have - want).values())
        by_key_have = defaultdict(list)
        for k, v in processed:
            by_key_have[k].append(v)
        for outputs in per_capture:  # each connection's events of a market: in its order
            by_key_want = defaultdict(list)
            for k, v in outputs.get(topic, []):
                by_key_want[k].append(v)
            for k, values in by_key_want.items():
                assert is_subsequence(values, by_key_have[k]), (topic, k)
    total = sum(len(v) for v in expected.values())
    # at-least-once: the duplicates are the dead worker's last uncommitted batches (--batch 50
    # records of each of its partitions), a small share of the output
    assert duplicates < total * 0.25, (duplicates, total)
    print(f"\nkill test: {total} events expected, all present; {duplicates} duplicates; "
          f"survivor rebuilt {done['rebuilt']} records; takeover: {takeover}")
