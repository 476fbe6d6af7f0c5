"""A sink that encodes everything and keeps nothing but counts: the benchmark's floor sink."""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from ..book import AvroRows


class NullSink:
    #: it counts keys and value bytes: the pipeline may hand encoded values without records
    records_needed = False

    def __init__(self, framing: str = "single_object") -> None:
        self.framing = framing
        self.messages: Counter[str] = Counter()
        self.bytes = 0

    def write(self, topic: str, records: Sequence[tuple], keys: Sequence[bytes], values: Sequence[bytes] | None) -> None:
        messages = self.messages
        messages[topic] = messages.get(topic, 0) + len(keys)
        if values is not None:
            self.bytes += sum(map(len, values))

    def write_rows(self, topic: str, rows: "AvroRows") -> None:
        """A frame's events of ``topic`` as the book and the typed writers wrote them (an
        ``atomfast.book.AvroRows``): counted from the buffer, no bytes object per event."""
        messages = self.messages
        messages[topic] = messages.get(topic, 0) + len(rows)
        self.bytes += rows.nbytes

    def poll(self) -> None:
        pass

    def flush(self, timeout: float = 30.0) -> int:
        return 0

    def close(self) -> None:
        pass

    def stats(self) -> dict:
        return {"messages": dict(self.messages), "bytes": self.bytes, "queue": 0}
