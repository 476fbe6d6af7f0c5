"""Counters and latency histograms shared by schemes, pipeline, feeds and sinks.

Plain attributes and a log-bucketed histogram: increments on the hot path are attribute
additions, nothing more. ``Metrics.summary()`` is the replay summary of the design.
"""
from __future__ import annotations

import logging
import time
from collections import Counter

from . import _frame

log = logging.getLogger("atomfast")


#: Nanosecond latencies in buckets of ~4.4% width (16 per power of two), 1 ns .. ~1100 s:
#: ``record(ns)``, ``percentile(q)``, ``snapshot()``, ``counts``/``total``/``max_ns``. Compiled
#: (``native/frame/_frame.pyx``): it records once per frame and once per delivery report.
LatencyHistogram = _frame.LatencyHistogram


class ErrorLog:
    """Bad input is counted per kind and logged once per kind with a sample (then every 1000th)."""

    __slots__ = ("counts", "logger")

    def __init__(self, logger: logging.Logger = log) -> None:
        self.counts: Counter[str] = Counter()
        self.logger = logger

    def report(self, kind: str, detail: str, sample: bytes | str = b"") -> None:
        n = self.counts[kind] + 1
        self.counts[kind] = n
        if n == 1 or n % 1000 == 0:
            if isinstance(sample, (bytes, bytearray, memoryview)):
                sample = bytes(sample[:200]).decode("utf-8", "replace")
            self.logger.warning("%s (%d so far): %s; sample: %.200s", kind, n, detail, sample)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class Metrics(_frame.Counters):
    """One per process: what the status line, the metrics endpoint and the replay summary show.
    ``frames``, ``bytes`` and ``events`` live in the compiled base (``_frame.Counters``): the
    frame core adds to them in C."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.frames = 0
        self.bytes = 0
        self.events: Counter[str] = Counter()
        self.checksum_ok = 0
        self.checksum_failed = 0
        self.gaps = 0
        self.resyncs = 0
        self.reconnects = 0
        self.errors = ErrorLog()
        #: frame receipt -> produce() handed over (or written); produce() -> broker delivery report
        self.produce_latency = LatencyHistogram()
        self.delivery_latency = LatencyHistogram()
        #: frame receipt -> the broker's delivery report, per message (a live feed to Kafka)
        self.receipt_latency = LatencyHistogram()

    def summary(self, seconds: float | None = None) -> dict:
        if seconds is None:
            seconds = time.monotonic() - self.started
        return {
            "frames": self.frames,
            "events": dict(sorted(self.events.items())),
            "checksum_ok": self.checksum_ok,
            "checksum_failed": self.checksum_failed,
            "gaps": self.gaps,
            "resyncs": self.resyncs,
            "errors": self.errors.total,
            "seconds": round(seconds, 6),
            "error_kinds": dict(self.errors.counts),
            "reconnects": self.reconnects,
            "latency": {
                "frame_to_produce": self.produce_latency.snapshot(),
                "produce_to_delivery": self.delivery_latency.snapshot(),
                "receipt_to_delivery": self.receipt_latency.snapshot(),
            },
        }
