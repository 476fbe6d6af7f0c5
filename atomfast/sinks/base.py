"""The interface every sink implements.

The pipeline hands a sink the events of one frame, grouped by topic. A sink that stores or
ships bytes declares its ``framing`` and receives Avro values encoded for it; a sink that
shows records (stdout) declares ``framing = None`` and receives ``values=None``.

A sink that never reads the records (``records_needed = False``: Kafka, files, null) may be
handed ``records=()`` with the values; for the high-volume topics (``atomfast.book.SHAPES``)
the pipeline then writes the events as Avro values into one buffer per topic and frame
(``atomfast.book.AvroRows``), and a sink that defines ``write_rows(topic, rows)`` reads that
buffer itself (no bytes object per event); one that does not gets its ``take()`` through
``write``. The pipeline clears the rows after ``write_rows`` returns: a sink copies what it
keeps.
"""
from __future__ import annotations

from typing import Literal, Protocol, Sequence

Framing = Literal["confluent", "single_object", "none"]


class Sink(Protocol):
    #: "confluent" (magic 0 + schema id), "single_object" (C3 01 + CRC-64-AVRO fingerprint),
    #: "none" (bare Avro body, e.g. inside an object container file), or None: no encoding.
    framing: Framing | None

    def write(
        self,
        topic: str,
        records: Sequence[tuple],
        keys: Sequence[bytes],
        values: Sequence[bytes] | None,
    ) -> None:
        """Take one frame's events of one topic. Must not drop: back-pressure blocks here."""

    def poll(self) -> None:
        """Periodic service from the event loop (delivery reports, file rotation)."""

    def flush(self, timeout: float = 30.0) -> int:
        """Push out everything buffered; return how many messages are still pending."""

    def close(self) -> None:
        """Flush and release resources. Idempotent."""

    def stats(self) -> dict:
        """Counters for the status line and metrics (queue depth, delivered, failed, ...)."""
