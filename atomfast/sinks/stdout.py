"""``--sink stdout``: one JSON object per event and line, ``{"topic": "trades", ...fields}``.

Fields follow the record's schema order. Floats are written in their shortest form that reads
back as the same double (msgspec), so ``0.000022900`` prints as ``0.0000229`` and parses to the
identical value; a non-finite float (NaN, inf: JSON has none) prints as ``null``. Each
``write()`` call (one frame's events of one topic) is encoded and written in one piece; the
stream is flushed by ``poll()``/``flush()`` and at most ~0.1 s after a write, so a live
``run --sink stdout`` shows its events promptly while a fast replay is not slowed by flushes.

A closed pipe (``atomfast replay ... --sink stdout | head``) stops the output quietly: later
events are counted as ``dropped`` and nothing is raised.
"""
from __future__ import annotations

import io
import logging
import os
import sys
import time
from collections import Counter
from typing import Any, Sequence

import msgspec

from ..events import TOPICS

log = logging.getLogger("atomfast.sinks.stdout")

#: flush a buffered stream at most this long after a write
FLUSH_INTERVAL = 0.1


def _schema_fields(topic: str) -> tuple[str, ...] | None:
    """Field names of ``atomfast/schemas/<topic>.avsc``, for records that are plain tuples."""
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "schemas", f"{topic}.avsc")
    try:
        with open(path, "rb") as fh:
            schema = msgspec.json.decode(fh.read())
        return tuple(f["name"] for f in schema["fields"])
    except (OSError, msgspec.DecodeError, KeyError, TypeError):
        return None


def line_struct(topic: str, fields: Sequence[str]) -> type:
    """A msgspec Struct that encodes as ``{"topic": topic, field: value, ...}`` in field order."""
    return msgspec.defstruct(
        f"Stdout_{topic}", [(name, Any) for name in fields], tag_field="topic", tag=topic, gc=False
    )


class StdoutSink:
    framing = None  # records, not Avro values

    def __init__(self, stream: Any = None) -> None:
        stream = sys.stdout if stream is None else stream
        self._text = stream if isinstance(stream, io.TextIOBase) else None
        buffer = getattr(stream, "buffer", None) if self._text is not None else stream
        if self._text is not None and buffer is None:  # a text stream without bytes below (StringIO)
            self._write = lambda data: stream.write(data.decode("utf-8"))
            self._flush_target = stream
        else:
            self._write = buffer.write
            self._flush_target = buffer
        self.stream = stream
        self._encoder = msgspec.json.Encoder()
        #: topic -> (record type, Struct type or field names for the dict fallback)
        self._types: dict[str, tuple[type, Any]] = {}
        self.messages: Counter[str] = Counter()
        self.bytes = 0
        self.dropped = 0
        self.broken_pipe = False
        self.closed = False
        self._dirty = False
        self._last_flush = time.monotonic()
        if self._text is not None:
            try:
                self._text.flush()  # what was printed before must come first
            except (BrokenPipeError, ValueError):
                pass

    # -- encoding ---------------------------------------------------------------------------

    def _line_type(self, topic: str, record: tuple) -> Any:
        rtype = type(record)
        cached = self._types.get(topic)
        if cached is not None and cached[0] is rtype:
            return cached[1]
        fields = getattr(rtype, "_fields", None)
        if fields is None:
            known = TOPICS.get(topic)
            fields = known._fields if known is not None and len(known._fields) == len(record) else None
        if fields is None:
            fields = _schema_fields(topic)
            if fields is not None and len(fields) != len(record):
                fields = None
        if fields is None:
            fields = tuple(f"f{i}" for i in range(len(record)))
        try:
            made: Any = line_struct(topic, fields)
        except (TypeError, ValueError):  # e.g. a field named "topic": fall back to dicts
            made = tuple(fields)
        self._types[topic] = (rtype, made)
        return made

    def encode(self, topic: str, records: Sequence[tuple]) -> bytes:
        """The JSON lines of ``records`` (each line ends with a newline)."""
        if not records:
            return b""
        made = self._line_type(topic, records[0])
        if isinstance(made, tuple):
            items = [{"topic": topic, **dict(zip(made, r))} for r in records]
        else:
            items = [made(*r) for r in records]
        return self._encoder.encode_lines(items)

    # -- Sink -------------------------------------------------------------------------------

    def write(
        self,
        topic: str,
        records: Sequence[tuple],
        keys: Sequence[bytes],
        values: Sequence[bytes] | None,
    ) -> None:
        if self.broken_pipe or self.closed:
            self.dropped += len(records)
            return
        data = self.encode(topic, records)
        try:
            self._write(data)
        except BrokenPipeError:
            self._on_broken_pipe(len(records))
            return
        self.messages[topic] += len(records)
        self.bytes += len(data)
        self._dirty = True
        now = time.monotonic()
        if now - self._last_flush >= FLUSH_INTERVAL:
            self._flush_stream(now)

    def _flush_stream(self, now: float | None = None) -> None:
        self._last_flush = time.monotonic() if now is None else now
        if not self._dirty or self.broken_pipe:
            return
        self._dirty = False
        try:
            self._flush_target.flush()
        except BrokenPipeError:
            self._on_broken_pipe(0)
        except ValueError:  # the stream was closed under us
            pass

    def _on_broken_pipe(self, lost: int) -> None:
        """The reader went away: stop quietly, count what could not be written."""
        self.broken_pipe = True
        self.dropped += lost
        log.info("stdout closed by the reader (broken pipe): discarding further events")
        # Keep the interpreter's final flush of sys.stdout from raising again at exit.
        if self.stream is sys.stdout or self.stream is getattr(sys.stdout, "buffer", None):
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
            except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
                pass

    def poll(self) -> None:
        if self._dirty:
            self._flush_stream()

    def flush(self, timeout: float = 30.0) -> int:
        self._flush_stream()
        return 0

    def close(self) -> None:
        if self.closed:
            return
        self._flush_stream()
        self.closed = True  # the stream belongs to the caller: it stays open

    def stats(self) -> dict:
        return {
            "messages": dict(self.messages),
            "bytes": self.bytes,
            "queue": 0,
            "dropped": self.dropped,
            "broken_pipe": self.broken_pipe,
        }
