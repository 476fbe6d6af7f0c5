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
    __slots__ = ("sink", "encoder", "metrics", "timed", "_frame", "_keys", "_schema_index", "_encode_keyed")

    def __init__(self, sink: "Sink", metrics: Metrics | None = None, encoder: "AvroEncoder | None" = None,
                 timed: bool = True) -> None:
        self.sink = sink
        #: whether a frame's ``recv_ns`` is this machine's clock (a live feed): receipt -> produce()
        #: latency is recorded; a replay's recorded times are not
        self.timed = timed
        self.metrics = metrics if metrics is not None else Metrics()
        if encoder is None and sink.framing is not None:
            from .avro import AvroEncoder

            encoder = AvroEncoder(sink.framing, getattr(sink, "schema_ids", None))
        self.encoder = encoder
        if encoder is not None:
            # AvroEncoder.encode_keyed without its Python frame: topic -> schema index (the
            # encoder's own dict, which set_schema_id keeps current), then the Rust call
            self._schema_index = encoder._index
            self._encode_keyed = encoder._native.encode_keyed
        #: topic -> the records of the current frame (topics in first-use order)
        self._frame: dict[str, list[tuple]] = {}
        #: (exchange, symbol) -> b"exchange:symbol", the Kafka message key (without an encoder)
        self._keys: dict[tuple[str, str], bytes] = {}

    def emit(self, topic: str, record: tuple) -> None:
        rows = self._frame.get(topic)
        if rows is None:
            rows = self._frame[topic] = []
        rows.append(record)

    def rows(self, topic: str) -> list[tuple]:
        """The list the current frame's ``topic`` records go to: a batch call (the book's
        ``apply_sides``) appends to it directly, as ``emit`` would one by one."""
        rows = self._frame.get(topic)
        if rows is None:
            rows = self._frame[topic] = []
        return rows

    def end_frame(self, recv_ns: int = 0) -> int:
        """Encode and write what the frame produced; returns the number of events written.
        Each topic's records go to the encoder in one call (values and keys together) and to
        the sink in one ``write``."""
        frame = self._frame
        if not frame:
            return 0
        self._frame = {}
        written = 0
        events = self.metrics.events
        for topic, records in frame.items():
            n = len(records)
            if not n:
                continue
            if self.encoder is not None:
                index = self._schema_index.get(topic)
                if index is None:
                    index = self.encoder._lookup(topic)  # KeyError: unknown (or id-less) topic
                keys, values = self._encode_keyed(index, records)
            else:
                keys, values = self._keys_of(records), None
            self.sink.write(topic, records, keys, values)
            events[topic] = events.get(topic, 0) + n  # (a Counter's += is 2x slower)
            written += n
        if recv_ns and written and self.timed:
            self.metrics.produce_latency.record(time.time_ns() - recv_ns)
        return written

    def _keys_of(self, records: list[tuple]) -> list[bytes]:
        cache = self._keys
        keys = []
        for r in records:
            k = (r[0], r[1])
            key = cache.get(k)
            if key is None:
                key = cache[k] = f"{r[0]}:{r[1]}".encode()
            keys.append(key)
        return keys

    def discard(self) -> None:
        """Drop what the frame produced, unwritten (``atomfast process`` rebuilding its state
        from records whose outputs were delivered before)."""
        self._frame = {}

    def close(self) -> None:
        self.end_frame()
        self.sink.close()
