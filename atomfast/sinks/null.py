"""A sink that encodes everything and keeps nothing but counts: the benchmark's floor sink.

Its counting is compiled (``atomfast._frame.NullCounts``): an instance's ``write`` and
``write_rows`` are the counter's, unless a subclass defines its own."""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Sequence

from .._frame import NullCounts

if TYPE_CHECKING:
    from ..book import AvroRows


class NullSink:
    #: it counts keys and value bytes: the pipeline may hand encoded values without records
    records_needed = False

    def __init__(self, framing: str = "single_object") -> None:
        self.framing = framing
        self.messages: Counter[str] = Counter()
        self._counts = NullCounts(self.messages)
        cls = type(self)
        if cls.write is NullSink.write:
            self.write = self._counts.write  # type: ignore[method-assign]
        if cls.write_rows is NullSink.write_rows:
            self.write_rows = self._counts.write_rows  # type: ignore[method-assign]

    @property
    def bytes(self) -> int:
        """Value bytes written (framing included)."""
        return self._counts.bytes

    def write(self, topic: str, records: Sequence[tuple], keys: Sequence[bytes], values: Sequence[bytes] | None) -> None:
        self._counts.write(topic, records, keys, values)

    def write_rows(self, topic: str, rows: "AvroRows") -> None:
        """A frame's events of ``topic`` as the book and the typed writers wrote them (an
        ``atomfast.book.AvroRows``): counted from the buffer, no bytes object per event."""
        self._counts.write_rows(topic, rows)

    def poll(self) -> None:
        pass

    def flush(self, timeout: float = 30.0) -> int:
        return 0

    def close(self) -> None:
        pass

    def stats(self) -> dict:
        return {"messages": dict(self.messages), "bytes": self.bytes, "queue": 0}
