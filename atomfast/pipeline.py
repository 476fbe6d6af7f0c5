"""From scheme events to sink writes: the per-frame batch.

A scheme calls ``emit(topic, record)`` for every event of a frame; the feed (or replay) calls
``end_frame(recv_ns)`` after the frame. Each topic's events of the frame are encoded in ONE call
to the Rust encoder and handed to the sink in one ``write``: no queue, task or Future between a
frame and ``producer.produce()``.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .metrics import Metrics

if TYPE_CHECKING:
    from .avro import AvroEncoder
    from .sinks.base import Sink


class Pipeline:
    __slots__ = ("sink", "encoder", "metrics", "_pending", "_keys", "_topics_used")

    def __init__(self, sink: "Sink", metrics: Metrics | None = None, encoder: "AvroEncoder | None" = None) -> None:
        self.sink = sink
        self.metrics = metrics if metrics is not None else Metrics()
        if encoder is None and sink.framing is not None:
            from .avro import AvroEncoder

            encoder = AvroEncoder(sink.framing, getattr(sink, "schema_ids", None))
        self.encoder = encoder
        self._pending: dict[str, list[tuple]] = {}
        self._topics_used: list[str] = []
        #: (exchange, symbol) -> b"exchange:symbol", the Kafka message key
        self._keys: dict[tuple[str, str], bytes] = {}

    def emit(self, topic: str, record: tuple) -> None:
        pending = self._pending.get(topic)
        if pending is None:
            pending = self._pending[topic] = []
        if not pending:
            self._topics_used.append(topic)
        pending.append(record)

    def end_frame(self, recv_ns: int = 0) -> int:
        """Encode and write what the frame produced; returns the number of events written."""
        if not self._topics_used:
            return 0
        written = 0
        keys_cache = self._keys
        events = self.metrics.events
        for topic in self._topics_used:
            records = self._pending[topic]
            keys = []
            for r in records:
                k = (r[0], r[1])
                key = keys_cache.get(k)
                if key is None:
                    key = keys_cache[k] = f"{r[0]}:{r[1]}".encode()
                keys.append(key)
            values = self.encoder.encode_many(topic, records) if self.encoder is not None else None
            self.sink.write(topic, records, keys, values)
            n = len(records)
            events[topic] += n
            written += n
            self._pending[topic] = []
        self._topics_used.clear()
        if recv_ns:
            self.metrics.produce_latency.record(time.time_ns() - recv_ns)
        return written

    def discard(self) -> None:
        """Drop what the frame produced, unwritten (``atomfast process`` rebuilding its state
        from records whose outputs were delivered before)."""
        for topic in self._topics_used:
            self._pending[topic] = []
        self._topics_used.clear()

    def close(self) -> None:
        self.end_frame()
        self.sink.close()
