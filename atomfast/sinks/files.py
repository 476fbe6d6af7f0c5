"""The files sink: a local Avro data lake of object container files, rotated hourly.

Layout: ``DATA/<topic>/<YYYY-MM-DDTHH>-<pid>-<n>.avro``, the hour in UTC (of the time the
records were written, by the sink's clock). Every process start and every hour gets new
files (created exclusively, never appended to), so several collectors can share one data
directory. Any Avro reader reads them (``fastavro.reader``, ``avro-tools tojson``, Spark...).

The sink takes the bare Avro bodies the pipeline encoded for it (``framing = "none"``) and
writes the object container format itself: the header (magic ``Obj\\x01``, metadata with
``avro.schema`` and ``avro.codec``, a random 16-byte sync marker), then blocks of
``count, byte size, bodies, sync``. A block is written when ~1000 records or ~64 KiB are
buffered for a topic, by ``poll()`` once the oldest buffered record is a second old, and on
``flush()``/``close()``. Each block goes to the file in one ``write`` and is flushed to the
OS, so a reader never sees a partial block of a live process.
"""
from __future__ import annotations

import itertools
import json
import os
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Literal

from atomfast.avro import AvroEncoder, load_schemas
from atomfast.sinks.base import Framing

__all__ = ["FileSink", "OCF_MAGIC"]

OCF_MAGIC = b"Obj\x01"
Codec = Literal["null", "deflate"]

#: Per-process file sequence: several sinks (or a re-opened hour) never share a file name.
_file_seq = itertools.count()


def _long(n: int) -> bytes:
    """Avro long: zigzag varint."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _bytes(b: bytes) -> bytes:
    return _long(len(b)) + b


def ocf_header(schema_json: str, codec: Codec, sync: bytes) -> bytes:
    """Object container file header: magic, metadata map (avro.schema, avro.codec), sync."""
    meta = {"avro.schema": schema_json.encode("utf-8"), "avro.codec": codec.encode("ascii")}
    out = [OCF_MAGIC, _long(len(meta))]
    for key, value in meta.items():
        out.append(_bytes(key.encode("utf-8")))
        out.append(_bytes(value))
    out.append(_long(0))
    out.append(sync)
    return b"".join(out)


@dataclass
class _Topic:
    """Buffered records of one topic, and its open file."""

    name: str
    directory: Path
    schema_json: str
    buf: bytearray = field(default_factory=bytearray)
    count: int = 0
    #: Clock time of the oldest buffered record, and its UTC hour (hours since the epoch).
    first: float = 0.0
    hour: int = -1
    file: BinaryIO | None = None
    file_hour: int = -1
    path: Path | None = None
    sync: bytes = b""


class FileSink:
    """Avro object container files under ``data_dir``, one folder per topic, hourly files.

    ``codec``: ``"null"`` (default) or ``"deflate"``. ``block_records`` / ``block_bytes`` /
    ``block_seconds`` bound what is buffered per topic before a block is written. ``clock``
    (seconds since the epoch, default ``time.time``) decides the hour of a file; inject one to
    test rotation. ``write`` takes the encoded bodies (``values``); when it is given
    ``values=None`` it encodes ``records`` itself.
    """

    framing: Framing | None = "none"

    def __init__(
        self,
        data_dir: str | os.PathLike[str] = "data",
        *,
        codec: Codec = "null",
        compression_level: int = 6,
        block_records: int = 1000,
        block_bytes: int = 64 * 1024,
        block_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
        schemas: Mapping[str, dict] | None = None,
        encoder: AvroEncoder | None = None,
    ) -> None:
        if codec not in ("null", "deflate"):
            raise ValueError(f"unsupported codec {codec!r} (null or deflate)")
        if encoder is not None and encoder.framing != "none":
            raise ValueError("the files sink needs an encoder with framing 'none'")
        self.data_dir = Path(data_dir)
        self.codec: Codec = codec
        self.compression_level = compression_level
        self.block_records = block_records
        self.block_bytes = block_bytes
        self.block_seconds = block_seconds
        self._clock = clock
        self._schemas: dict[str, dict] = dict(schemas) if schemas is not None else load_schemas()
        self._encoder = encoder
        self._topics: dict[str, _Topic] = {}
        self._closed = False
        self._records = 0
        self._blocks = 0
        self._bytes = 0
        self._files = 0
        self._errors = 0

    # ---- Sink protocol --------------------------------------------------------------------

    def write(
        self,
        topic: str,
        records: Sequence[tuple],
        keys: Sequence[bytes],
        values: Sequence[bytes] | None,
    ) -> None:
        """Buffer one frame's events of one topic; write a block when enough is buffered."""
        if self._closed:
            raise RuntimeError("FileSink is closed")
        if values is None:
            if not records:
                return
            data = self._get_encoder().encode_block(topic, records)
            count = len(records)
        else:
            if not values:
                return
            data = b"".join(values)
            count = len(values)
        state = self._topics.get(topic) or self._open_topic(topic)
        now = self._clock()
        hour = int(now // 3600)
        if state.count and hour != state.hour:
            # The buffered records belong to the previous hour's file.
            self._write_block(state)
        if state.file is not None and hour != state.file_hour:
            self._close_file(state)
        if not state.count:
            state.first = now
            state.hour = hour
        state.buf += data
        state.count += count
        if state.count >= self.block_records or len(state.buf) >= self.block_bytes:
            self._write_block(state)

    def poll(self) -> None:
        """Write blocks buffered for a second or more; close files of a past hour."""
        if self._closed:
            return
        now = self._clock()
        hour = int(now // 3600)
        for state in self._topics.values():
            if state.count and (now - state.first >= self.block_seconds or hour != state.hour):
                self._write_block(state)
            if state.file is not None and state.file_hour != hour and not state.count:
                self._close_file(state)

    def flush(self, timeout: float = 30.0) -> int:
        """Write every buffered block; return the records still pending (0)."""
        for state in self._topics.values():
            if state.count:
                self._write_block(state)
        return sum(s.count for s in self._topics.values())

    def close(self) -> None:
        """Flush and close every file. Idempotent."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            for state in self._topics.values():
                self._close_file(state)
            self._closed = True

    def stats(self) -> dict:
        return {
            "sink": "files",
            "data_dir": str(self.data_dir),
            "codec": self.codec,
            "delivered": self._records,
            "pending": sum(s.count for s in self._topics.values()),
            "failed": 0,  # records are never dropped: a failed block stays buffered
            "errors": self._errors,
            "blocks": self._blocks,
            "bytes": self._bytes,
            "files": self._files,
            "open_files": sum(1 for s in self._topics.values() if s.file is not None),
        }

    # ---- internals -------------------------------------------------------------------------

    def __enter__(self) -> FileSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def current_files(self) -> dict[str, Path]:
        """topic -> path of the file currently open for it."""
        return {t: s.path for t, s in self._topics.items() if s.file is not None and s.path}

    def _get_encoder(self) -> AvroEncoder:
        if self._encoder is None:
            self._encoder = AvroEncoder("none", schemas=self._schemas)
        return self._encoder

    def _open_topic(self, topic: str) -> _Topic:
        try:
            schema = self._schemas[topic]
        except KeyError:
            raise KeyError(f"unknown topic {topic!r}") from None
        state = _Topic(
            name=topic,
            directory=self.data_dir / topic,
            schema_json=json.dumps(schema, separators=(",", ":")),
        )
        self._topics[topic] = state
        return state

    def _open_file(self, state: _Topic, hour: int) -> None:
        state.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(hour * 3600, tz=timezone.utc).strftime("%Y-%m-%dT%H")
        pid = os.getpid()
        while True:
            path = state.directory / f"{stamp}-{pid}-{next(_file_seq)}.avro"
            try:
                f = open(path, "xb")  # noqa: SIM115 (kept open across calls)
            except FileExistsError:  # a previous process with the same pid (containers)
                continue
            break
        state.sync = os.urandom(16)
        header = ocf_header(state.schema_json, self.codec, state.sync)
        try:
            f.write(header)
            f.flush()
        except BaseException:
            f.close()
            raise
        state.file, state.file_hour, state.path = f, hour, path
        self._files += 1
        self._bytes += len(header)

    def _close_file(self, state: _Topic) -> None:
        if state.file is not None:
            f, state.file = state.file, None
            state.file_hour = -1
            f.close()

    def _write_block(self, state: _Topic) -> None:
        if not state.count:
            return
        if state.file is not None and state.file_hour != state.hour:
            self._close_file(state)
        if state.file is None:
            self._open_file(state, state.hour)
        assert state.file is not None
        data = bytes(state.buf)
        if self.codec == "deflate":
            c = zlib.compressobj(self.compression_level, zlib.DEFLATED, -15)
            data = c.compress(data) + c.flush()
        block = b"".join((_long(state.count), _long(len(data)), data, state.sync))
        try:
            state.file.write(block)
            state.file.flush()
        except BaseException:
            # The file may end in a partial block now: leave it, keep the records buffered
            # and retry them in a new file on the next write/poll/flush.
            self._errors += 1
            try:
                self._close_file(state)
            except OSError:
                pass
            raise
        self._records += state.count
        self._blocks += 1
        self._bytes += len(block)
        state.buf.clear()
        state.count = 0
