"""Latency at a fixed replay rate: `simulate --rate R` -> `run --sink kafka` -> a real local broker.

Section "Latency" of ``python -m bench``. For each rate, ``runs`` runs of the real collector
process against a local single-node broker (started like the tests start it,
``tools/kafka/broker.py``, or ``KAFKA_BOOTSTRAP_SERVERS``), each replaying the Kraken book
capture (``cryptofeed/KRAKEN.ws.50.0``, 6 markets, ``--loop``) for about ``SECONDS`` seconds
after a warm-up that is not measured (whole passes, at least ``WARMUP_SECONDS``: ``warmup_frames``).
RATES ends at the issue 15 target:
receipt -> delivery report p99 < 10 ms at 20,000 frames/s.

Three latencies, all ending on this machine's clock, all the run's own histograms
(``atomfast.metrics``; the run's ``summary.latency`` has their percentiles):

- **receipt -> produce()** (``frame_to_produce``: frame receipt to the end of the frame's
  ``sink.write``, one sample per frame);
- **produce() -> delivery report** (``produce_to_delivery``: librdkafka's
  ``rd_kafka_message_latency()``, one sample per message). librdkafka computes it when the
  delivery report is *served* (``rd_clock() - enqueue time`` inside ``poll()``), so it includes
  the wait for the application's next ``poll()``;
- **receipt -> delivery report** (``receipt_to_delivery``: exact per message). The pipeline
  hands the sink each live frame's receive time (``KafkaSink.note_receipt``), every message of
  the frame's writes carries it, and the compiled producer records now - receipt when it serves
  the message's delivery report.

The collector process is started through a small probe (``python -m bench.latency --collector
-- <run args>``) that runs ``atomfast.cli.main`` with a ``Pipeline`` subclass whose
``end_frame`` counts the frames, ends the warm-up frames as frames without a receive time (no
sample, their messages carry no receipt time), and clears the three histograms at the first
measured frame. At the end it dumps them whole (the summary only has percentiles) with the
process's CPU time and the rate the measured frames were received at. Everything else is the
stock ``atomfast run``. A fourth measure, **receipt -> broker append**, reads the lob records
back from a topic created with ``LogAppendTime``.

Three variants:

- ``stock``: as shipped (since commit 900d410 ``KafkaSink.write`` ends with the producer's
  ``poll(0)``, so the delivery reports that are in are served after every write);
- ``updates-only``: the same, except that the probe wraps the sink's ``write`` and
  ``write_rows`` (the instance's: the compiled producer's methods) to produce the
  messages of a snapshot write (more than 100 events: a book snapshot) without a receipt time
  (``note_receipt(0)`` around that write), so the run's receipt -> delivery histogram holds the
  update frames' messages only (``receipt_to_delivery_updates``). The producer has one such
  histogram, so this split takes runs of its own;
- ``housekeeping-poll-only`` (contrast, at CONTRAST_RATES: the behaviour before commit 900d410):
  as ``updates-only``, and the probe turns off the ``poll(0)`` that ends the compiled producer's
  ``write`` / ``write_rows`` (``KafkaProducer.poll_after_write = False``), so
  reports are served only by the feed's housekeeping timer (``sink.poll()`` every 100 ms), to
  show where the delivery latency went. Its receipt -> delivery is the update frames' (compared
  with ``updates-only``): a pass's ~4,400 snapshot messages are produced together and wait for
  the same tick, one random draw that would decide the percentiles of a run.

    python -m bench.latency --out bench/results [--quick] [--runs 3] [--rates 20000]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures"

RATES = [1000, 5000, 20000]  # frames/s played by the simulator
BOOK = "cryptofeed/KRAKEN.ws.50.0"
SYMBOLS = "WAVES-EUR,KSM-BTC,ETH-CHF,OMG-USD,BTC-CHF,ADA-BTC"
PASS_FRAMES = 2481  # frames in one pass of the capture
#: not measured at the start of each run (connection, snapshots, the producer's first requests,
#: the broker's new producer): whole passes, at least this long
WARMUP_SECONDS = 2.0
SECONDS = 10.0  # of replay per run (a whole number of passes, at least 4)
VARIANTS = ("stock", "updates-only", "housekeeping-poll-only")
UPDATES = "updates-only"  # as stock; snapshot writes' messages carry no receipt time
CONTRAST = "housekeeping-poll-only"  # the behaviour before commit 900d410
CONTRAST_RATES = (1000, 5000)  # where the contrast variant runs (it makes its point at any rate)
#: issue 15: receipt -> delivery report p99 under 10 ms at 20k frames/s on loopback
TARGET_RATE, TARGET_P99_US = 20000, 10_000
MEASURES = ("frame_to_produce", "produce_to_delivery", "receipt_to_delivery", "receipt_to_delivery_updates",
            "receipt_to_append")
MEASURE_NAMES = {
    "frame_to_produce": "receipt -> produce()",
    "produce_to_delivery": "produce() -> delivery report",
    "receipt_to_delivery": "receipt -> delivery report",
    "receipt_to_delivery_updates": "receipt -> delivery report, update frames only",
    "receipt_to_append": "receipt -> broker append (LogAppendTime, lob)",
}
#: receipt -> delivery report is "receipt_to_delivery" in the stock and contrast variants and
#: "receipt_to_delivery_updates" in the updates-only one; the broker append only where the lob
#: topic is read back (not in the updates-only variant)
APPEND = "receipt_to_append"
QS = (50, 99, 99.9)
#: receipt -> delivery samples the probe keeps exactly (~10 s at 60k events/s is ~600k)
MAX_SAMPLES = 4_000_000


def exact_percentiles(samples_ns, qs=QS) -> dict[str, float]:
    """The ``qs`` percentiles (µs) of the exact samples: nearest rank (the ceil(n q / 100)-th
    smallest), as the histogram ranks them, without its buckets."""
    import math

    xs = sorted(samples_ns)
    if not xs:
        return {str(q): 0.0 for q in qs}
    return {str(q): xs[max(1, math.ceil(len(xs) * q / 100.0)) - 1] / 1000 for q in qs}


def fixture(relative: str) -> Path:
    path = FIXTURES / relative
    if not path.exists():
        raise FileNotFoundError(f"recorded capture {path} is absent (expected ../shared/fixtures)")
    return path


def warmup_frames(rate: float, seconds: float = WARMUP_SECONDS) -> int:
    """The frames of a run's warm-up at ``rate``: whole passes of the capture, at least one, lasting
    at least ``seconds``. (One pass is 124 ms at 20,000 frames/s: the delivery-ordered exact samples
    showed the collector's start still in the first measured half second, ~90% of a run's samples
    above its p99 there.)"""
    import math

    return max(1, math.ceil(rate * seconds / PASS_FRAMES)) * PASS_FRAMES


def frames_for(rate: float, seconds: float = SECONDS, min_passes: int = 4) -> int:
    """A whole number of passes of the capture lasting about ``seconds`` at ``rate``."""
    return max(min_passes, round(rate * seconds / PASS_FRAMES)) * PASS_FRAMES


# =============================================================================================
# the broker


class Broker:
    """KAFKA_BOOTSTRAP_SERVERS when set, else a single-node broker under a temp dir (as the tests)."""

    def __init__(self) -> None:
        self.bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or ""
        self.broker = None
        self.tmp = None
        self.start_seconds = 0.0

    def __enter__(self) -> "Broker":
        if self.bootstrap:
            return self
        from atomfast.testing import load_broker_tool as _load_broker_tool

        t0 = time.monotonic()
        self.tmp = tempfile.TemporaryDirectory(prefix="atomfast-bench-kafka-")
        self.broker = _load_broker_tool().KafkaBroker(Path(self.tmp.name) / "kafka")
        self.broker.start()
        self.bootstrap = self.broker.bootstrap
        self.start_seconds = time.monotonic() - t0
        return self

    def __exit__(self, *exc) -> None:
        if self.broker is not None:
            self.broker.stop()
        if self.tmp is not None:
            self.tmp.cleanup()


# =============================================================================================
# one collector run


def run_collector(bootstrap: str, rate: float, frames: int, *, variant: str = "stock", probe: bool = True,
                  skip_frames: int = 0, topic_prefix: str | None = None, append_topic: str | None = None,
                  timeout: float = 300, producer_config: dict | None = None) -> dict:
    """One `atomfast run --sink kafka` against `atomfast simulate --rate R --loop`, until ``frames``
    frames. Returns the run's summary (``summary: {json}`` of stderr); with ``probe`` also
    ``probe``: full histograms of the frames after the first ``skip_frames`` (receipt -> delivery
    report among them), CPU seconds. ``topic_prefix``: default a new one (new topics).
    ``append_topic``: the run's lob topic, created beforehand with LogAppendTime: its new records
    give receipt -> broker append (``probe.histograms.receipt_to_append``)."""
    from atomfast.testing import SimProcess

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}")
    if variant != "stock" and not probe:
        raise ValueError(f"the {variant} variant needs the probe")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env.update(KAFKA_BOOTSTRAP_SERVERS=bootstrap, KAFKA_TOPIC_PREFIX=topic_prefix or f"bench-{uuid.uuid4().hex[:8]}.",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run_args = ["run", "--exchange", "kraken", "--endpoint", "", "--sink", "kafka", "--no-status", "--symbols", SYMBOLS,
                "--channels", "lob", "--max-frames", str(frames)]
    append_from = _watermarks(bootstrap, append_topic) if probe and append_topic else None
    with tempfile.TemporaryDirectory(prefix="atomfast-latency-") as tmp:
        probe_out = Path(tmp) / "probe.json"
        with SimProcess(fixture(BOOK), "--rate", str(rate), "--loop") as sim:
            run_args[run_args.index("--endpoint") + 1] = sim.url
            if probe:
                cmd = [sys.executable, "-m", "bench.latency", "--collector", "--probe-out", str(probe_out),
                       "--variant", variant, "--skip-frames", str(skip_frames),
                       "--producer-config", json.dumps(producer_config or {}), "--", *run_args]
            else:
                cmd = [sys.executable, "-m", "atomfast.cli", *run_args]
            t0 = time.monotonic()
            r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
            wall = time.monotonic() - t0
        if r.returncode != 0:
            raise RuntimeError(f"atomfast run failed (exit {r.returncode}): {r.stderr[-2000:]}")
        line = [ln for ln in r.stderr.splitlines() if ln.startswith("summary: ")][-1]
        summary = json.loads(line[len("summary: "):])
        summary["wall_seconds"] = round(wall, 3)
        if probe:
            summary["probe"] = json.loads(probe_out.read_text())
            samples = Path(str(probe_out) + ".samples")
            if samples.exists():  # receipt -> delivery, every message: exact percentiles
                from array import array

                a = array("q")
                a.frombytes(samples.read_bytes())
                summary["probe"]["receipt_exact_us"] = exact_percentiles(a)
                # the share of messages at or over the target (how much of the run a p99 says)
                over = sum(1 for x in a if x >= TARGET_P99_US * 1000)
                summary["probe"]["receipt_over_target"] = over / len(a) if len(a) else 0.0
            if append_from is not None:
                first = summary["probe"].get("first_recv_ns") or 0
                summary["probe"]["histograms"][APPEND] = _append_latency(bootstrap, append_topic, append_from, first)
    return summary


def _watermarks(bootstrap: str, topic: str) -> dict[int, int]:
    """partition -> high watermark of ``topic``."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10)
        parts = sorted(md.topics[topic].partitions)
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    finally:
        c.close()


def _append_latency(bootstrap: str, topic: str, start: dict[int, int], first_recv_ns: int) -> dict:
    """Histogram (dumped) of broker append time - frame receipt for the lob messages of ``topic``
    from offsets ``start`` to the current end whose receipt is at or after ``first_recv_ns``.
    Append time: the record's LogAppendTime (ms, the broker's clock); receipt: its atom_timestamp
    (µs); the broker stamps whole ms, so each sample is dithered uniformly within its ms (floor
    1 µs). The Avro body is read by hand: the lob fields up to atom_timestamp."""
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, TopicPartition

    from atomfast.metrics import LatencyHistogram

    end = _watermarks(bootstrap, topic)
    h = LatencyHistogram()
    rng = random.Random(1)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "fetch.max.bytes": 52428800})
    wrong = 0
    try:
        todo = {p: e for p, e in end.items() if e > start.get(p, 0)}
        c.assign([TopicPartition(topic, p, start.get(p, 0)) for p in todo])
        deadline = time.monotonic() + 120
        while todo and time.monotonic() < deadline:
            for msg in c.consume(num_messages=10000, timeout=1.0):
                if msg.error():
                    continue
                p, off = msg.partition(), msg.offset()
                if p in todo and off >= todo[p] - 1:
                    del todo[p]
                ts_type, ts_ms = msg.timestamp()
                if ts_type != TIMESTAMP_LOG_APPEND_TIME:
                    wrong += 1
                    continue
                atom_us = _lob_atom_us(msg.value())
                if atom_us * 1000 >= first_recv_ns:
                    # the append happened within [ts_ms, ts_ms + 1 ms): dithered uniformly over it
                    h.record(max(1000, ts_ms * 1_000_000 + int(rng.random() * 1e6) - atom_us * 1000))
    finally:
        c.close()
    if wrong:
        raise RuntimeError(f"{topic}: {wrong} records without LogAppendTime")
    return {"counts": {str(i): n for i, n in enumerate(h.counts) if n}, "total": h.total, "max_ns": h.max_ns}


def _lob_atom_us(value: bytes) -> int:
    """atom_timestamp of a lob record in Avro single-object encoding (C3 01 + 8-byte fingerprint)."""
    pos = 10

    def varint() -> int:
        nonlocal pos
        shift = n = 0
        while True:
            b = value[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            if b < 0x80:
                return (n >> 1) ^ -(n & 1)
            shift += 7

    n = varint()  # exchange (read the length first: varint() moves pos)
    pos += n
    n = varint()  # symbol
    pos += n + 16  # + price, size (doubles)
    n = varint()  # side
    pos += n
    varint()  # event_timestamp
    return varint()


# --- the probe (runs inside the collector process) ----------------------------------------------


def _collector_main(probe_out: str, variant: str, skip_frames: int, argv: list[str],
                    producer_config: dict | None = None) -> int:
    """``atomfast.cli.main(argv)`` through the probe (module docstring); writes the run's
    histograms of the frames after the first ``skip_frames`` to ``probe_out``."""
    import resource

    from atomfast import cli
    from atomfast import pipeline as pipeline_module
    from atomfast.sinks import kafka as kafka_module
    from atomfast.sinks.kafka import KafkaSink

    # an experiment's producer settings over the sink's defaults (``--producer-config``)
    kafka_module.DEFAULT_PRODUCER_CONFIG.update(producer_config or {})

    # recv: receipt time (ns) of the frame being written, 0 for one not measured (warm-up, timer)
    state = {"recv": 0, "frames": 0, "t0": 0.0, "t_last": 0.0, "cpu0": 0.0, "first_recv_ns": 0,
             "metrics": None, "events0": 0}
    untimed = [0]  # the updates-only variant: messages of measured snapshot writes, not timed
    monotonic = time.monotonic

    def cpu_s() -> float:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    def clear(h) -> None:
        h.counts = [0] * len(h.counts)
        h.total = 0
        h.max_ns = 0

    def start(metrics) -> None:
        # The first measured frame: the run's histograms restart empty (receipt -> delivery has
        # nothing yet: warm-up messages carry no receipt time), CPU and time count from here.
        for h in (metrics.produce_latency, metrics.delivery_latency, metrics.receipt_latency):
            clear(h)
        state["metrics"] = metrics
        state["events0"] = sum(metrics.events.values())
        if state.get("sink") is not None:  # every receipt -> delivery latency, exact
            state["sink"]._producer.keep_receipt_samples(MAX_SAMPLES)
        state["t0"], state["cpu0"] = monotonic(), cpu_s()

    # The Pipeline is compiled (atomfast._frame): its class cannot be patched, so the collector
    # gets a subclass whose end_frame wraps the compiled one (the collector looks
    # ``atomfast.pipeline.Pipeline`` up when it builds the feed; the frame driver binds the
    # instance's ``end_frame``, and the compiled ``close()`` dispatches to the override too).
    # A warm-up frame is ended as a frame without a receive time: no receipt -> produce()
    # sample, and no note_receipt(), so its messages carry none (the sink starts with 0).
    base = pipeline_module.Pipeline
    orig_end = base.end_frame

    class ProbePipeline(base):
        def end_frame(self, recv_ns: int = 0):
            if recv_ns:
                state["frames"] += 1
                if state["frames"] <= skip_frames:
                    recv_ns = 0
                else:
                    if not state["t0"]:
                        state["first_recv_ns"] = recv_ns
                        start(self.metrics)
                    state["t_last"] = monotonic()
            state["recv"] = recv_ns
            return orig_end(self, recv_ns)

    # The sink's hot path is the compiled producer's (``write`` and ``write_rows`` are instance
    # attributes bound to ``KafkaProducer``): the variants wrap the instance's, once the sink
    # exists (``KafkaSink.__init__`` wrapped to catch it).
    orig_init = KafkaSink.__init__

    def init(self, *args, **kwargs):
        orig_init(self, *args, **kwargs)
        state["sink"] = self
        if variant in (UPDATES, CONTRAST):
            self.write = updates_only(self, self.write, len)
            self.write_rows = updates_only(self, self.write_rows, len)
        if variant == CONTRAST:
            # the write as before commit 900d410: no poll(0) at its end (the compiled write's
            # switch; the back-pressure and spill-mode polls still poll), reports served by the
            # feed's 100 ms housekeeping poll (``KafkaSink.poll()``) only
            self._producer.poll_after_write = False

    def updates_only(sink, write, size):
        # a snapshot write (more than 100 events: a book snapshot) is produced without a receipt
        # time: the run's receipt -> delivery histogram gets the update frames' messages only
        def wrapped(topic, *rest):
            n = size(rest[-2] if len(rest) == 3 else rest[0])  # write: keys; write_rows: the rows
            recv = state["recv"]
            if not recv or n <= 100:
                return write(topic, *rest)
            untimed[0] += n
            sink.note_receipt(0)
            try:
                return write(topic, *rest)
            finally:
                sink.note_receipt(recv)
        return wrapped

    pipeline_module.Pipeline = ProbePipeline
    KafkaSink.__init__ = init
    rc = cli.main(argv)  # closes the sink: every delivery report is in (or the run says not)
    feed_seconds = monotonic() - state["t0"] if state["t0"] else 0.0
    feed_cpu = cpu_s() - state["cpu0"]

    def dump(h):
        return {"counts": {str(i): n for i, n in enumerate(h.counts) if n}, "total": h.total, "max_ns": h.max_ns}

    m = state["metrics"]
    hist = {}
    events = 0
    if m is not None:
        receipt = "receipt_to_delivery" if variant == "stock" else "receipt_to_delivery_updates"
        hist = {"frame_to_produce": dump(m.produce_latency), "produce_to_delivery": dump(m.delivery_latency),
                receipt: dump(m.receipt_latency)}
        events = sum(m.events.values()) - state["events0"]
    measured = max(0, state["frames"] - skip_frames)
    span = state["t_last"] - state["t0"]
    out = {"variant": variant, "rc": rc, "skip_frames": skip_frames, "frames": state["frames"],
           "measured_frames": measured, "measured_events": events,
           "frames_per_s": measured / span if span > 0 else 0.0, "span_seconds": span,
           "first_recv_ns": state["first_recv_ns"],
           "cpu_s": feed_cpu, "feed_seconds": feed_seconds,
           "untimed_messages": untimed[0],
           # measured messages without a receipt -> delivery sample (not delivered): 0 expected
           "undelivered": (events - untimed[0] - m.receipt_latency.total) if m is not None else 0,
           "histograms": hist}
    sink = state.get("sink")
    if sink is not None and m is not None:
        samples = sink._producer.receipt_samples()
        Path(probe_out + ".samples").write_bytes(samples)  # int64 ns, native order
        out["receipt_samples"] = len(samples) // 8
        out["receipt_samples_missed"] = sink._producer.receipt_samples_missed
    Path(probe_out).write_text(json.dumps(out))
    return rc


# --- histogram helpers (LatencyHistogram's buckets: 16 per power of two) ----------------------

SUB = 16


def _bucket_bounds(idx: int) -> tuple[float, float]:
    exp, sub = divmod(idx, SUB)
    lo = ((SUB + sub) << exp) / SUB
    hi = ((SUB + sub + 1) << exp) / SUB
    return lo, hi


def hist_percentile(h: dict, q: float) -> float:
    """As LatencyHistogram.percentile: the upper bound (ns) of the bucket holding the q-th percentile."""
    import math

    total = h["total"]
    if not total:
        return 0.0
    rank = max(1, math.ceil(total * q / 100.0))
    seen = 0
    for idx in sorted(int(i) for i in h["counts"]):
        seen += h["counts"][str(idx)]
        if seen >= rank:
            return min(_bucket_bounds(idx)[1], h["max_ns"])
    return h["max_ns"]


def merge(hists: list[dict]) -> dict:
    counts: dict[str, int] = {}
    for h in hists:
        for i, n in h["counts"].items():
            counts[i] = counts.get(i, 0) + n
    return {"counts": counts, "total": sum(h["total"] for h in hists), "max_ns": max(h["max_ns"] for h in hists)}


# =============================================================================================
# the section


def _create_append_topic(bootstrap: str, name: str) -> str:
    """The lob topic, created before the collector creates it, with the broker's append time as
    record timestamps (one partition, as the collector's default on a one-broker cluster)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1,
                                        config={"message.timestamp.type": "LogAppendTime"})])
    fut[name].result(30)
    deadline = time.monotonic() + 30
    while name not in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    return name


def variants_at(rate: float) -> tuple[str, ...]:
    """The variants measured at ``rate`` (the contrast only at CONTRAST_RATES)."""
    return tuple(v for v in VARIANTS if v != CONTRAST or rate in CONTRAST_RATES)


def run(runs: int = 3, quick: bool = False, kafka: bool = True, rates: list[float] | None = None,
        producer_config: dict | None = None) -> dict:
    """The section: ``runs`` runs per rate and variant (quick: one rate, one run each).
    ``kafka=False`` (``python -m bench --no-kafka``): nothing is measured, the result says so.
    ``rates``: instead of RATES (quick: 1000)."""
    rates = list(rates) if rates else [1000] if quick else RATES
    runs = 1 if quick else max(1, runs)
    out: dict = {"quick": quick, "runs": runs, "rates": rates, "variants": list(VARIANTS), "results": {},
                 "producer_config": producer_config or {}}
    if not kafka:
        out.update(skipped="--no-kafka", rates=[], seconds=0.0)
        return out
    t0 = time.monotonic()
    with Broker() as broker:
        out["broker"] = ("external (KAFKA_BOOTSTRAP_SERVERS)" if broker.broker is None
                         else "local, started by tools/kafka/broker.py")
        out["broker_start_seconds"] = round(broker.start_seconds, 1)
        # one set of topics for all runs (a collector restarting against its topics), created by a
        # first throw-away run, which also warms the broker
        prefix = f"bench-latency-{uuid.uuid4().hex[:8]}."
        lob = _create_append_topic(broker.bootstrap, prefix + "lob")
        if not quick:
            run_collector(broker.bootstrap, 1000, PASS_FRAMES, topic_prefix=prefix, producer_config=producer_config)
        for rate in rates:
            # the first passes of each run (at least WARMUP_SECONDS) are its warm-up (connection,
            # snapshots, the producer's
            # first requests): not measured
            warmup = PASS_FRAMES if quick else warmup_frames(rate)
            frames = warmup + (PASS_FRAMES if quick else frames_for(rate))
            for variant in variants_at(rate):
                rows = []
                for _ in range(runs):
                    # receipt -> broker append: read back for the variants that time every message
                    s = run_collector(broker.bootstrap, rate, frames, variant=variant, skip_frames=warmup,
                                      topic_prefix=prefix, append_topic=None if variant == UPDATES else lob,
                                      producer_config=producer_config)
                    if s["checksum_failed"] or s["frames"] < frames:
                        raise RuntimeError(f"rate {rate} {variant}: bad run: {json.dumps(s)[:1000]}")
                    rows.append(s)
                out["results"][f"{rate}/{variant}"] = summarise(rows, rate, frames, variant)
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out


def summarise(rows: list[dict], rate: float, frames: int, variant: str) -> dict:
    measures = [m for m in MEASURES if m in rows[0]["probe"]["histograms"]]
    per_run = []
    for s in rows:
        p = s["probe"]
        hs = p["histograms"]
        per_run.append({
            "percentiles_us": {m: {str(q): hist_percentile(hs[m], q) / 1000 for q in QS} for m in measures},
            "counts": {m: hs[m]["total"] for m in measures},
            "seconds": s["seconds"], "frames": s["frames"], "events": s["events"],
            "measured_frames": p["measured_frames"], "measured_events": p["measured_events"],
            "frames_per_s": p["frames_per_s"], "span_seconds": p["span_seconds"],
            "cpu_s": p["cpu_s"], "feed_seconds": p["feed_seconds"],
            "undelivered": p["undelivered"], "untimed_messages": p["untimed_messages"],
            "summary_latency": s["latency"],
            # receipt -> delivery from every message's own sample (no buckets); missed: samples
            # beyond MAX_SAMPLES (0 expected)
            "receipt_exact_us": p.get("receipt_exact_us"),
            "receipt_samples": p.get("receipt_samples", 0),
            "receipt_samples_missed": p.get("receipt_samples_missed", 0),
            "receipt_over_target": p.get("receipt_over_target"),
        })
    med = {m: {str(q): statistics.median(r["percentiles_us"][m][str(q)] for r in per_run) for q in QS}
           for m in measures}
    merged = {m: merge([s["probe"]["histograms"][m] for s in rows]) for m in measures}
    return {"rate": rate, "frames": frames, "variant": variant, "measures": measures, "runs": per_run,
            "median_us": med, "merged": merged,
            "exact_median_us": ({str(q): statistics.median(r["receipt_exact_us"][str(q)] for r in per_run) for q in QS}
                                if all(r["receipt_exact_us"] for r in per_run) else None),
            "cpu_pct": statistics.median(r["cpu_s"] / r["feed_seconds"] * 100 for r in per_run if r["feed_seconds"]),
            "frames_per_s": statistics.median(r["frames_per_s"] for r in per_run),
            "events_per_s": statistics.median(r["measured_events"] / r["span_seconds"]
                                              for r in per_run if r["span_seconds"]),
            "undelivered": sum(r["undelivered"] for r in per_run)}


def _exact(us: float) -> str:
    """An exact latency (µs) to the µs: 9.617 ms, 84 µs."""
    return f"{us / 1000:.3f} ms" if us >= 1000 else f"{us:.0f} µs"


def _us(x: float) -> str:
    if x >= 1000:
        return f"{x / 1000:.1f} ms" if x < 100_000 else f"{x / 1000:.0f} ms"
    return f"{x:.0f} µs"


def markdown(results: dict) -> str:
    if results.get("skipped"):
        return ("## Latency: frame receipt -> Kafka delivery\n\nNot measured: skipped by "
                f"`{results['skipped']}` (the section needs a Kafka broker).\n")
    res = results["results"]
    rates = results["rates"]
    quick = results.get("quick")
    lines = ["## Latency: frame receipt -> Kafka delivery", ""]
    lines += [
        "`atomfast simulate cryptofeed/KRAKEN.ws.50.0 --loop --rate R` -> `atomfast run --exchange kraken "
        "--sink kafka --channels lob --symbols <the 6 pairs> --max-frames N` -> a single-node Kafka broker "
        f"({results.get('broker', 'local')}; the sink's compiled producer: idempotent, acks=all, lz4, linger.ms 5"
        + (f"; **an experiment: with {json.dumps(results['producer_config'])} over the defaults**"
           if results.get("producer_config") else "") + "). "
        f"Each run plays {'1 pass' if quick else f'about {SECONDS:.0f} s'} of the 2,481-frame "
        + ("capture after a first pass that is not measured (warm-up)" if quick else
           f"capture after a warm-up that is not measured (whole passes, at least {WARMUP_SECONDS:g} s: one "
           "pass at 1,000 frames/s, 17 at 20,000; with one pass, 124 ms at 20,000 frames/s, the collector's "
           "start was still in the first measured half second: in a run measured so, the exact samples in "
           "delivery order had 91% of those above the run's p99 in its first 5%)")
        + "; every pass starts with the 6 book "
        "snapshots (4,418 levels in all, of 7,329 events a pass), so bursts of ~4,400 events recur every "
        "2,481 frames. Percentiles "
        f"are the median over {results['runs']} run(s) per rate and variant"
        + ("" if quick else " (a first throw-away run creates the topics and warms the broker)")
        + ". Simulator, collector and broker share the 2-core machine. \"frames/s\" is the rate the "
        "collector received the measured frames at (the simulator's pace as the collector saw it).",
        "",
        "- All latencies are the run's own histograms (`atomfast.metrics`, as the run's "
        "`summary.latency`), cleared at the first measured frame: **receipt -> produce()** (per frame: "
        "receipt to the end of the frame's `sink.write`, `frame_to_produce`), **produce() -> delivery "
        "report** (per message: librdkafka's `rd_kafka_message_latency()`, `produce_to_delivery`; it "
        "counts the messages delivered after the first measured frame, the warm-up's last few among "
        "them) and **receipt -> delivery report** (per message, exact: the pipeline hands the sink each "
        "live frame's receive time (`KafkaSink.note_receipt`), the message carries it and the compiled "
        "producer records now - receipt when it serves the delivery report, `receipt_to_delivery`). The "
        "collector runs through a small probe (`python -m bench.latency --collector -- <run args>`) that "
        "ends the warm-up frames as frames without a receive time (their messages carry none), clears "
        "the histograms at the first measured frame, dumps them whole at the end (the summary has "
        "percentiles only) and measures the process's CPU time; everything else is the stock "
        "`atomfast run`.",
        "- **receipt -> broker append**: the lob topic is created beforehand "
        "with `message.timestamp.type=LogAppendTime`, and after each run its new records are read back: the "
        "broker's append time (whole ms, dithered within its ms; a result at or below 0, i.e. under 1 ms, "
        "counts as 1 µs) minus the record's `atom_timestamp` (the frame's receipt, µs): when the event is in "
        "Kafka, whenever the collector hears of it.",
        "- Variant **stock**: as shipped, the figures to report (`KafkaSink.write` ends with the producer's "
        "`poll(0)`, since commit 900d410, so the delivery reports that are in are served after every write). "
        f"Variant **{UPDATES}**: the same run, except that the probe produces the messages of each snapshot "
        "write (more than 100 events: a book snapshot) without a receipt time, so the run's receipt -> "
        "delivery histogram holds the update frames' messages only (the snapshots are still produced and "
        "compete for the producer and the broker; one histogram per producer, so the split takes its own "
        f"runs). Variant **{CONTRAST}** (contrast: the behaviour before commit 900d410; at "
        f"{', '.join(f'{r:,}' for r in CONTRAST_RATES)} frames/s): as {UPDATES}, and the probe turns that "
        "final `poll(0)` off (`KafkaProducer.poll_after_write = False`; the back-pressure and spill-mode "
        "polls still poll), so "
        "reports are served only by the feed's 100 ms housekeeping timer (`KafkaSink.poll()`); its receipt "
        "-> delivery is the update frames' (a pass's ~4,400 snapshot messages are produced together and "
        "wait for the same tick: one random draw that would decide a run's percentiles).",
        "- Buckets are ~4.4% wide; a percentile is its bucket's upper bound (10.0 ms is the bound "
        "9.96 ms, the next one 10.5 ms: too coarse to compare with a 10 ms target). So receipt -> delivery is "
        "also given **exact**: the probe has the compiled producer keep every measured message's "
        "receipt -> delivery sample (`KafkaProducer.keep_receipt_samples`, the very value it records in the "
        "histogram) and the percentiles are the nearest-rank ones of the sorted samples (the "
        "ceil(n q / 100)-th smallest), per run, then the median over the runs; the target is judged on "
        "them. Every measured message had its "
        "receipt -> delivery sample: " + (
            "yes." if not any(r.get("undelivered") for r in res.values())
            else "NO: " + ", ".join(f"{k}: {r['undelivered']} missing" for k, r in res.items()
                                    if r.get("undelivered")) + "."),
        "",
        "| rate (frames/s) | received frames/s | events/s | variant | measure | p50 | p99 | p99.9 | collector CPU |",
        "|---:|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    receipt = ("receipt_to_delivery", "receipt_to_delivery_updates")
    for rate in rates:
        for variant in results["variants"]:
            r = res.get(f"{rate}/{variant}")
            if r is None:
                continue
            for i, m in enumerate(r["measures"]):
                p = r["median_us"][m]
                head = (f"| {rate:,} | {r['frames_per_s']:,.0f} | {r['events_per_s']:,.0f} | {variant} |"
                        if i == 0 else "| | | | |")
                cpu = f"{r['cpu_pct']:.0f}%" if i == 0 else ""
                bold = "**" if m in receipt else ""
                lines.append(f"{head} {MEASURE_NAMES[m]} | {bold}{_us(p['50'])}{bold} | {bold}{_us(p['99'])}{bold} | "
                             f"{bold}{_us(p['99.9'])}{bold} | {cpu} |")
                if m in receipt and r.get("exact_median_us"):
                    x = r["exact_median_us"]
                    lines.append(f"| | | | | {MEASURE_NAMES[m]}: exact (every message's sample) | **{_exact(x['50'])}** | "
                                 f"**{_exact(x['99'])}** | **{_exact(x['99.9'])}** | |")
    lines.append("")
    # per-run spread of the headline numbers
    spread = []
    for rate in rates:
        for variant in results["variants"]:
            r = res.get(f"{rate}/{variant}")
            if r:
                m = next(x for x in receipt if x in r["measures"])
                vals = ", ".join(f"{_us(x['percentiles_us'][m]['50'])} / {_us(x['percentiles_us'][m]['99'])}"
                                 for x in r["runs"])
                spread.append(f"{rate:,}/s {variant}: {vals}")
    lines.append("receipt -> delivery report p50 / p99 of each run: " + "; ".join(spread) + ".")
    lines.append("")
    # the target
    st, up = res.get(f"{TARGET_RATE}/stock"), res.get(f"{TARGET_RATE}/{UPDATES}")
    if st:
        # exact samples where the runs have them, else the histogram (a bucket's upper bound)
        sx = st.get("exact_median_us") or st["median_us"]["receipt_to_delivery"]
        ux = (up.get("exact_median_us") or up["median_us"]["receipt_to_delivery_updates"]) if up else None
        fmt = _exact if st.get("exact_median_us") else _us
        p99 = sx["99"]
        upd = f"; update frames only: p50 {fmt(ux['50'])}, p99 {fmt(ux['99'])}" if ux else ""
        runs99 = ", ".join(fmt(r["receipt_exact_us"]["99"]) for r in st["runs"] if r.get("receipt_exact_us"))
        lines += [f"**Target (issue 15): receipt -> delivery report p99 < {_us(TARGET_P99_US)} at "
                  f"{TARGET_RATE:,} frames/s: {'met' if p99 < TARGET_P99_US else 'NOT met'}** (stock, every "
                  f"message, {'exact samples' if st.get('exact_median_us') else 'histogram buckets'}: "
                  f"p50 {fmt(sx['50'])}, p99 {fmt(p99)}, p99.9 {fmt(sx['99.9'])}, received at "
                  f"{st['frames_per_s']:,.0f} frames/s{upd}; median over {len(st['runs'])} run(s)"
                  + (f"; the runs' p99: {runs99}" if runs99 else "")
                  + ("; share of the messages at or over " + _us(TARGET_P99_US) + " in each run: "
                     + ", ".join(f"{r['receipt_over_target'] * 100:.2f}%" for r in st["runs"])
                     if all(r.get("receipt_over_target") is not None for r in st["runs"]) else "")
                  + (", quick mode: one pass" if quick else "") + ").", ""]
    # the finding: the contrast (before commit 900d410) -> stock (as shipped)
    stk = {rate: res.get(f"{rate}/stock") for rate in rates}
    hk = {rate: res.get(f"{rate}/{CONTRAST}") for rate in rates}
    lines += ["### Where produce() -> delivery went before commit 900d410 (~60 ms in `run`, 11-15 ms in "
              "`bench/bench_kafka.py`)", ""]

    def pick(d, m, q="50"):
        return _us(d["median_us"][m][q]) if d and m in d["median_us"] else "-"

    parts, appends = [], []
    for rate in rates:
        a, b, u = hk[rate], stk[rate], res.get(f"{rate}/{UPDATES}")
        if a and b:
            parts.append(f"at {rate:,} frames/s produce() -> delivery report p50 {pick(a, 'produce_to_delivery')} -> "
                         f"{pick(b, 'produce_to_delivery')}, p99 {pick(a, 'produce_to_delivery', '99')} -> "
                         f"{pick(b, 'produce_to_delivery', '99')}; update frames' receipt -> delivery report "
                         f"p50 {pick(a, 'receipt_to_delivery_updates')} -> {pick(u, 'receipt_to_delivery_updates')}"
                         f", p99 {pick(a, 'receipt_to_delivery_updates', '99')} -> "
                         f"{pick(u, 'receipt_to_delivery_updates', '99')} "
                         f"(collector CPU {a['cpu_pct']:.0f}% -> {b['cpu_pct']:.0f}%)")
            appends.append(f"{rate:,} frames/s: p50 {pick(a, APPEND)} / {pick(b, APPEND)}, p99 "
                           f"{pick(a, APPEND, '99')} / {pick(b, APPEND, '99')}")
    lines += [
        "The delivery latencies are taken when the report is *served*, not when the broker answered: "
        "librdkafka's `rd_kafka_message_latency()` is `rd_clock() - enqueue time` evaluated in the "
        "delivery report callback, which runs inside the producer's `poll()`, and the compiled producer "
        "takes receipt -> delivery at the same moment. "
        "Before commit 900d410, `run` served reports only from the feed's housekeeping timer "
        "(`FeedGroup.poll_interval` = 100 ms -> `KafkaSink.poll()`; neither `KafkaSink.write` nor "
        "`Pipeline.end_frame` polled), so each report waited 0-100 ms (50 ms on average) for the next tick "
        f"on top of the real delivery time: that is the {CONTRAST} variant. `bench_kafka.py` polls every "
        "0.5 ms in its pacing loop: hence its 11-15 ms then. The broker's own append time says the same: the "
        "records are in the partition log long before the collector hears of it (receipt -> broker append, "
        f"{CONTRAST} / stock: " + ("; ".join(appends) if appends else "(not measured in this run)") + "). "
        "Serving the reports after each write (stock, as shipped) removes the wait "
        f"({CONTRAST} -> stock; update frames: -> {UPDATES}): "
        + ("; ".join(parts) if parts else "(not measured in this run)") + ". "
        "What remains at p50 for update frames is mostly `linger.ms` 5 and the broker's acks=all round "
        "trip; snapshot frames (6 of the 2,481 frames of a pass, but ~60% of its events) take longer "
        f"(bursts of 150-840 events per frame and side): compare stock with {UPDATES}.",
        "",
        "What the 100 ms cadence delayed was mainly the collector's knowledge of delivery: the "
        "delivery-latency metric (what an operator watches), the delivered counts, the release of "
        "delivered messages from librdkafka's queue; the p50 of the append itself does not depend on the "
        "variant, its tail (p99 and beyond) varies from run to run on this shared 2-core machine (broker, "
        "simulator and collector compete for the cores). The poll after each write is one non-blocking "
        "call per frame: compare the CPU column of the two variants. `linger.ms` and `batch.size` are not "
        "the cause of the gap (bench_kafka.py uses the same).",
        "",
    ]
    if quick:
        lines += [f"(quick mode: one run per variant, 2 passes of the capture, at "
                  f"{', '.join(f'{r:,}' for r in rates)} frames/s.)", ""]
    return "\n".join(lines)


def plot(results: dict, outdir: Path) -> list[Path]:
    if results.get("skipped"):
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    shown = {"frame_to_produce": "tab:blue", "receipt_to_delivery": "tab:red",
             "receipt_to_delivery_updates": "tab:purple", APPEND: "tab:green"}
    for rate in results["rates"]:
        variants = [v for v in results["variants"] if f"{rate}/{v}" in results["results"]]
        if not variants:
            continue
        fig, axes = plt.subplots(len(variants), 1, figsize=(9, 3.4 * len(variants)), sharex=True, squeeze=False)
        for ax, variant in zip(axes[:, 0], variants):
            r = results["results"].get(f"{rate}/{variant}")
            if r is None:
                continue
            for m, colour in shown.items():
                h = r["merged"].get(m)
                if not h or not h["total"]:
                    continue
                idx = sorted(int(i) for i in h["counts"])
                xs, ys = [], []
                for i in range(idx[0], idx[-1] + 1):
                    lo, hi = _bucket_bounds(i)
                    # share of the samples per unit of log width: buckets of any width compare
                    y = h["counts"].get(str(i), 0) / h["total"] / ((hi - lo) / lo)
                    xs += [lo / 1000, hi / 1000]
                    ys += [y, y]
                p = r["median_us"][m]
                label = (f"{MEASURE_NAMES[m]}: p50 {_us(p['50'])}, p99 {_us(p['99'])}, p99.9 {_us(p['99.9'])}")
                ax.plot(xs, ys, color=colour, lw=1, label=label)
                ax.fill_between(xs, ys, color=colour, alpha=0.12)
                for q, ls in zip(QS, ("-", "--", ":")):
                    ax.axvline(p[str(q)], color=colour, ls=ls, lw=1.2, ymax=0.92)
            ax.set_xscale("log")
            ax.set_ylabel("share per log width")
            ax.set_title(f"{rate:,} frames/s, {variant} ({len(r['runs'])} run(s) merged; lines: median "
                         "p50 solid, p99 dashed, p99.9 dotted)", fontsize=9)
            ax.legend(fontsize=7.5, loc="upper left")
            ax.grid(alpha=0.3, which="both")
            ax.set_ylim(0, ax.get_ylim()[1] * 1.35)
        axes[-1, 0].set_xlabel("latency (µs, log scale)")
        fig.suptitle(f"simulate --rate {rate} -> atomfast run -> Kafka (local broker, 2-core machine)", fontsize=10)
        fig.tight_layout()
        path = outdir / f"latency_{rate}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--collector":
        ap = argparse.ArgumentParser(prog="python -m bench.latency --collector")
        ap.add_argument("--collector", action="store_true")
        ap.add_argument("--probe-out", required=True)
        ap.add_argument("--variant", default="stock", choices=VARIANTS)
        ap.add_argument("--skip-frames", type=int, default=0)
        ap.add_argument("--producer-config", default="{}")
        split = argv.index("--")
        args = ap.parse_args(argv[:split])
        return _collector_main(args.probe_out, args.variant, args.skip_frames, argv[split + 1:],
                               json.loads(args.producer_config))
    ap = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rates", default="", help=f"comma-separated frames/s (default {','.join(map(str, RATES))}; "
                    "--quick: 1000)")
    ap.add_argument("--producer-config", default="", help="JSON of producer settings over the sink's defaults "
                    "(an experiment: the report says so)")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    rates = [int(r) for r in args.rates.split(",") if r.strip()] or None
    results = run(args.runs, args.quick, rates=rates,
                  producer_config=json.loads(args.producer_config) if args.producer_config else None)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency.json").write_text(json.dumps(results, indent=1))
    text = markdown(results)
    (args.out / "latency.md").write_text(text)
    paths = plot(results, args.out)
    print(text)
    print(f"written: {args.out / 'latency.md'}, {', '.join(str(p) for p in paths)} ({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
