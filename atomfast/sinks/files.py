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
``flush()``/``close()``. Each block goes to the file in one ``write`` (a new file's header
with its first block), so a reader never sees a partial block of a live process.

Disk faults (a full disk or quota, a read-only file system, any other ``OSError`` of the data
directory) never reach the caller. The block that failed is cut off the file again (the file
ends on its last whole block) and held in memory with every later one; the sink says so: a
log line at ERROR, a ``status`` event ``disk_full`` / ``disk_readonly`` / ``disk_error``
(symbol ``""``, one per exchange whose events are held; written to the status topic itself
once the disk takes data again) and its :meth:`stats` (``state``, ``disk_fault``, ``held``,
``held_bytes``). It retries the SAME file (no new file per failed write) every
``retry_seconds`` from :meth:`write` and :meth:`poll`; once every held block is written it
says ``recovered`` (how long it lasted, how many events were held, how many dropped).

What is held is bounded by ``buffer_bytes`` (FILES_BUFFER_BYTES, default 64 MiB). Beyond it,
``policy`` (FILES_BUFFER_POLICY) decides, like KAFKA_BUFFER_POLICY:

- ``block`` (default): :meth:`write` waits (retrying the disk every ``retry_seconds``) until
  the held blocks fit again: the feed stops reading its websockets meanwhile (status
  ``backpressure``; the exchange may drop the connection, the books then reload). SIGINT and
  SIGTERM end the wait, so a stop during a fault still ends with the summary.
- ``drop``: the new events are dropped, counted exactly (``dropped`` in :meth:`stats`, the
  metrics' error kind ``events dropped: disk fault``, the ``recovered`` status's reason),
  with a status ``dropping`` when dropping begins.

Closed while the disk is still faulty, the sink tries once more and reports the events it
could not write (``lost`` in :meth:`stats`, the error kind ``events lost: disk fault at
shutdown``, one ERROR line): it never raises, and leaves no empty file behind.
"""
from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import signal
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from atomfast.avro import AvroEncoder, load_schemas
from atomfast.sinks.base import Framing

if TYPE_CHECKING:
    from atomfast.book import AvroRows
    from atomfast.config import Settings
    from atomfast.metrics import Metrics

__all__ = [
    "DEFAULT_BUFFER_BYTES",
    "FileSink",
    "OCF_MAGIC",
    "POLICIES",
    "fault_kind",
    "files_options",
    "parse_bytes",
]

log = logging.getLogger(__name__)

OCF_MAGIC = b"Obj\x01"
Codec = Literal["null", "deflate"]
#: what write() does when the disk is faulty and more than ``buffer_bytes`` are held
POLICIES = ("block", "drop")
DEFAULT_BUFFER_BYTES = 64 * 1024 * 1024
#: the error kinds (``Metrics.errors``) of the events a disk fault cost
DROPPED_KIND = "events dropped: disk fault"
LOST_KIND = "events lost: disk fault at shutdown"

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


def fault_kind(exc: OSError) -> str:
    """The status of a disk fault: ``disk_full`` (no space, quota), ``disk_readonly``,
    ``disk_error`` (anything else: permissions, I/O errors)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk_full"
    if exc.errno == errno.EROFS:
        return "disk_readonly"
    return "disk_error"


_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
          "g": 1024**3, "gb": 1024**3, "gib": 1024**3}


def parse_bytes(name: str, text: str, minimum: int = 4096) -> int:
    """``65536``, ``512k``, ``64M``, ``1G`` (binary units) -> bytes; SettingsError naming ``name``."""
    from ..config import SettingsError

    raw = (text or "").strip()
    number = raw.rstrip("bBkKmMgGiI ")
    unit = raw[len(number):].strip().lower()
    try:
        value = int(number) * _UNITS[unit]
    except (ValueError, KeyError):
        raise SettingsError(f"{name} must be a number of bytes (65536, 512k, 64M, 1G), not {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum} bytes, not {raw!r}")
    return value


def files_options(settings: "Settings") -> dict:
    """The files sink's fault settings, checked (SettingsError): FILES_BUFFER_BYTES and
    FILES_BUFFER_POLICY as ``FileSink`` keyword arguments."""
    from ..config import SettingsError

    policy = (getattr(settings, "files_buffer_policy", "") or "block").strip().lower()
    if policy not in POLICIES:
        raise SettingsError(f"FILES_BUFFER_POLICY must be one of {', '.join(POLICIES)}, not {policy!r}")
    text = (getattr(settings, "files_buffer_bytes", "") or "").strip()
    size = parse_bytes("FILES_BUFFER_BYTES", text) if text else DEFAULT_BUFFER_BYTES
    return {"buffer_bytes": size, "policy": policy}


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB" if n >= 1048576 else f"{n / 1024:.0f} KiB"


@dataclass
class _Topic:
    """Buffered records of one topic, the blocks it holds, and its open file."""

    name: str
    directory: Path
    schema_json: str
    buf: bytearray = field(default_factory=bytearray)
    count: int = 0
    #: Clock time of the oldest buffered record, and its UTC hour (hours since the epoch).
    first: float = 0.0
    hour: int = -1
    #: blocks not yet on disk, oldest first: (record count, block data (compressed), hour)
    held: deque = field(default_factory=deque)
    held_count: int = 0
    fd: int = -1
    file_hour: int = -1
    path: Path | None = None
    #: bytes of the open file that hold whole blocks (the header included); 0: not even the header
    size: int = 0
    #: a failed write left bytes past ``size`` that could not be cut off yet
    dirty_tail: bool = False
    sync: bytes = b""


class FileSink:
    """Avro object container files under ``data_dir``, one folder per topic, hourly files.

    ``codec``: ``"null"`` (default) or ``"deflate"``. ``block_records`` / ``block_bytes`` /
    ``block_seconds`` bound what is buffered per topic before a block is written. ``clock``
    (seconds since the epoch, default ``time.time``) decides the hour of a file; inject one to
    test rotation. ``write`` takes the encoded bodies (``values``); when it is given
    ``values=None`` it encodes ``records`` itself.

    Disk faults (module docstring): ``buffer_bytes`` bounds what is held in memory, ``policy``
    (``block`` or ``drop``) says what happens beyond it, ``retry_seconds`` is how often the disk
    is tried again, ``log_interval`` how often a lasting fault is logged again. ``metrics``
    (optional): the sink's own status events are counted in ``metrics.events["status"]`` and the
    events dropped or lost in ``metrics.errors`` (so the run's summary shows them).
    ``monotonic`` and ``sleep`` are injectable for tests.
    """

    #: values given (the pipeline's encoded bodies) are written as they are: records unused
    records_needed = False

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
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        policy: str = "block",
        retry_seconds: float = 1.0,
        log_interval: float = 10.0,
        metrics: "Metrics | None" = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        if codec not in ("null", "deflate"):
            raise ValueError(f"unsupported codec {codec!r} (null or deflate)")
        if encoder is not None and encoder.framing != "none":
            raise ValueError("the files sink needs an encoder with framing 'none'")
        policy = (policy or "block").strip().lower()
        if policy not in POLICIES:
            raise ValueError(f"files buffer policy must be one of {POLICIES}, not {policy!r}")
        self.data_dir = Path(data_dir)
        self.codec: Codec = codec
        self.compression_level = compression_level
        self.block_records = block_records
        self.block_bytes = block_bytes
        self.block_seconds = block_seconds
        self.buffer_bytes = int(buffer_bytes)
        self.policy = policy
        self.retry_seconds = float(retry_seconds)
        self.log_interval = float(log_interval)
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._metrics = metrics
        self._schemas: dict[str, dict] = dict(schemas) if schemas is not None else load_schemas()
        self._encoder = encoder
        self._topics: dict[str, _Topic] = {}
        self._closed = False
        self._records = 0
        self._blocks = 0
        self._bytes = 0
        self._files = 0
        self._errors = 0  # failed disk operations
        # -- disk faults --
        #: None, or the current fault: "disk_full", "disk_readonly", "disk_error"
        self._fault: str | None = None
        #: "holding" (under the bound), "blocked" (write() waits) or "dropping", in a fault
        self._mode = "holding"
        self._fault_text = ""
        self._fault_since = 0.0
        self._last_attempt = 0.0
        self._reminder = 0.0
        self._episodes = 0
        self._held_bytes = 0  # bytes of the held blocks (the open buffers not included)
        self._held_episode = 0  # events written on recovery, this episode
        self._dropped = 0
        self._dropped_episode = 0
        self._lost = 0
        self._own_status = 0  # status events the sink said itself
        self.backpressure_waits = 0
        #: exchanges of the keys written (one per block): who the status events are for
        self._exchanges: set[bytes] = set()
        self._stopping = False
        self._interrupted = False

    # ---- Sink protocol --------------------------------------------------------------------

    def write(
        self,
        topic: str,
        records: Sequence[tuple],
        keys: Sequence[bytes],
        values: Sequence[bytes] | None,
    ) -> None:
        """Buffer one frame's events of one topic; write a block when enough is buffered.
        Never raises for a disk fault: the events are held (or, beyond the bound, the policy
        blocks or drops them)."""
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
        self._buffer(topic, keys, data, count)

    def write_rows(self, topic: str, rows: "AvroRows") -> None:
        """``write`` of a frame's events as the book and the typed writers wrote them (an
        ``atomfast.book.AvroRows`` without framing): the bodies are already a block's data, taken
        in one piece (no bytes object per event)."""
        if self._closed:
            raise RuntimeError("FileSink is closed")
        keys, data = rows.take_block()
        if keys:
            self._buffer(topic, keys, data, len(keys))

    def _buffer(self, topic: str, keys: Sequence[bytes], data: bytes, count: int) -> None:
        """Buffer ``count`` encoded records (``data``) of ``topic``; write a block when enough
        is buffered (or, in a disk fault, hold them as the policy says)."""
        state = self._topics.get(topic) or self._open_topic(topic)
        if self._fault is not None and not self._admit(count, len(data), keys):
            return
        self._append(state, data, count, keys)

    def poll(self) -> None:
        """Write blocks buffered for a second or more; close files of a past hour; in a disk
        fault, try the disk again every ``retry_seconds``."""
        if self._closed:
            return
        now = self._clock()
        hour = int(now // 3600)
        for state in self._topics.values():
            if state.count and (now - state.first >= self.block_seconds or hour != state.hour):
                self._write_block(state)
            if state.fd >= 0 and state.file_hour != hour and not state.count and not state.held:
                self._close_file(state)
        if self._fault is not None:
            if self._monotonic() - self._last_attempt >= self.retry_seconds:
                self._retry()
            self._remind()

    def flush(self, timeout: float = 30.0) -> int:
        """Write every buffered block (in a disk fault: one more attempt, no waiting); return
        the records still pending (held in memory)."""
        if self._flush_once() and self._fault is not None:
            self._recovered()  # its status event is written at once
            self._flush_once()
        return self._pending()

    def _flush_once(self) -> bool:
        for state in self._topics.values():
            if state.count:
                self._freeze(state)
        return self._drain_all()

    def close(self) -> None:
        """Flush and close every file. Idempotent. Never raises for a disk fault: what could
        not be written is reported (``lost``)."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            lost = self._pending()
            if lost:
                self._lost += lost
                per_topic = ", ".join(f"{t} {s.count + s.held_count}" for t, s in self._topics.items()
                                      if s.count + s.held_count)
                log.error("files sink closed during a disk fault (%s: %s): %d event(s) held in memory could not "
                          "be written to %s and are lost (%s)", self._fault, self._fault_text, lost,
                          self.data_dir, per_topic)
                if self._metrics is not None:
                    self._metrics.errors.counts[LOST_KIND] += lost
            for state in self._topics.values():
                state.buf.clear()
                state.count = state.held_count = 0
                state.held.clear()
                self._close_file(state)
            self._held_bytes = 0
            self._closed = True

    def stats(self) -> dict:
        pending = self._pending()
        return {
            "sink": "files",
            "data_dir": str(self.data_dir),
            "codec": self.codec,
            "delivered": self._records,
            "pending": pending,
            "queue": pending,
            "failed": self._dropped + self._lost,
            "dropped": self._dropped,
            "lost": self._lost,
            "errors": self._errors,
            "blocks": self._blocks,
            "bytes": self._bytes,
            "files": self._files,
            "open_files": sum(1 for s in self._topics.values() if s.fd >= 0),
            "state": self._fault or "ok",
            "mode": self._mode if self._fault else "ok",
            "disk_fault": 1 if self._fault else 0,
            "disk_faults": self._episodes,
            "held": sum(s.held_count for s in self._topics.values()),
            "held_bytes": self._held(),
            "buffer_bytes": self.buffer_bytes,
            "policy": self.policy,
            "backpressure_waits": self.backpressure_waits,
            "status_events": self._own_status,
        }

    def interrupt(self) -> None:
        """End a ``block`` wait at once (what SIGINT/SIGTERM do); later writes are held even
        beyond the bound, for the close that follows."""
        self._interrupted = True

    # ---- internals -------------------------------------------------------------------------

    def __enter__(self) -> FileSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def current_files(self) -> dict[str, Path]:
        """topic -> path of the file currently open for it."""
        return {t: s.path for t, s in self._topics.items() if s.fd >= 0 and s.path}

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

    def _append(self, state: _Topic, data: bytes, count: int, keys: Sequence[bytes]) -> None:
        """Buffer ``count`` records of ``state``'s topic."""
        now = self._clock()
        hour = int(now // 3600)
        if state.count and hour != state.hour:
            # The buffered records belong to the previous hour's file.
            self._write_block(state)
        if not state.count:
            state.first = now
            state.hour = hour
            if keys:
                self._exchanges.add(bytes(keys[0]).split(b":", 1)[0])
        state.buf += data
        state.count += count
        if state.count >= self.block_records or len(state.buf) >= self.block_bytes:
            self._write_block(state)

    def _write_block(self, state: _Topic) -> None:
        if not state.count:
            return
        self._freeze(state)
        if self._fault is None:
            self._drain(state)

    def _freeze(self, state: _Topic) -> None:
        """The buffered records become a block (compressed), the last of the held ones."""
        data = bytes(state.buf)
        if self.codec == "deflate":
            c = zlib.compressobj(self.compression_level, zlib.DEFLATED, -15)
            data = c.compress(data) + c.flush()
        state.held.append((state.count, data, state.hour))
        state.held_count += state.count
        self._held_bytes += len(data)
        state.buf.clear()
        state.count = 0

    def _drain(self, state: _Topic) -> bool:
        """Write the topic's held blocks, oldest first; False (and the fault said) when the
        disk refused one."""
        while state.held:
            count, data, hour = state.held[0]
            try:
                if state.fd >= 0 and state.file_hour != hour:
                    self._close_file(state)
                if state.fd < 0:
                    self._open_file(state, hour)
                block = b"".join((_long(count), _long(len(data)), data, state.sync))
                payload = ocf_header(state.schema_json, self.codec, state.sync) + block if state.size == 0 \
                    else block
                self._write_at(state, payload)
            except OSError as exc:
                self._failed(state, exc)
                return False
            state.held.popleft()
            state.held_count -= count
            self._held_bytes -= len(data)
            self._records += count
            self._blocks += 1
            self._bytes += len(payload)
            if self._fault is not None:
                self._held_episode += count
        return True

    def _drain_all(self) -> bool:
        for state in list(self._topics.values()):
            if state.held and not self._drain(state):
                return False
        return True

    def _write_at(self, state: _Topic, payload: bytes) -> None:
        """``payload`` at the end of the file's whole blocks, all of it or nothing: a failed
        (or short, then failed) write is cut off again, so the file ends on a whole block."""
        fd, offset = state.fd, state.size
        view = memoryview(payload)
        done = 0
        try:
            while done < len(payload):
                n = os.pwrite(fd, view[done:], offset + done)
                if n <= 0:  # pragma: no cover - pwrite raises rather than writing nothing
                    raise OSError(errno.EIO, "write returned 0", str(state.path))
                done += n
        except OSError:
            if done or state.dirty_tail:
                try:
                    os.ftruncate(fd, offset)
                    state.dirty_tail = False
                except OSError:
                    state.dirty_tail = True  # cut off after the next whole write
            raise
        state.size = offset + len(payload)
        if state.dirty_tail:
            try:
                os.ftruncate(fd, state.size)
                state.dirty_tail = False
            except OSError:
                pass

    def _open_file(self, state: _Topic, hour: int) -> None:
        state.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(hour * 3600, tz=timezone.utc).strftime("%Y-%m-%dT%H")
        pid = os.getpid()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        while True:
            path = state.directory / f"{stamp}-{pid}-{next(_file_seq)}.avro"
            try:
                fd = os.open(path, flags, 0o644)
            except FileExistsError:  # a previous process with the same pid (containers)
                continue
            break
        state.sync = os.urandom(16)
        state.fd, state.file_hour, state.path, state.size, state.dirty_tail = fd, hour, path, 0, False
        self._files += 1

    def _close_file(self, state: _Topic) -> None:
        if state.fd < 0:
            return
        fd, state.fd = state.fd, -1
        state.file_hour = -1
        if state.size == 0 and state.path is not None:
            # created, but the disk never took its header: leave no empty file behind
            try:
                os.unlink(state.path)
                self._files -= 1
            except OSError as exc:
                log.warning("files sink: cannot remove the empty file %s: %s", state.path, exc.strerror or exc)
        try:
            os.close(fd)
        except OSError as exc:  # pragma: no cover - close of a local file
            log.warning("files sink: closing %s: %s", state.path, exc.strerror or exc)

    # ---- disk faults -----------------------------------------------------------------------

    def _pending(self) -> int:
        return sum(s.count + s.held_count for s in self._topics.values())

    def _held(self) -> int:
        return self._held_bytes + sum(len(s.buf) for s in self._topics.values())

    def _failed(self, state: _Topic, exc: OSError) -> None:
        """A disk operation failed: start (or update) the fault: log, status event."""
        self._errors += 1
        self._last_attempt = self._monotonic()
        kind = fault_kind(exc)
        where = exc.filename or state.path or state.directory
        text = f"{exc.strerror or exc} ({where})"
        if kind == self._fault:
            self._fault_text = text
            return
        first = self._fault is None
        self._fault, self._fault_text = kind, text
        if first:
            self._episodes += 1
            self._fault_since = self._last_attempt
            self._reminder = self._last_attempt
            self._held_episode = 0
            self._dropped_episode = 0
            self._mode = "holding"
        log.error("files sink: %s: %s: holding events in memory (up to %s, FILES_BUFFER_BYTES; then "
                  "FILES_BUFFER_POLICY=%s) and retrying the same file every %gs",
                  kind.replace("_", " "), text, _mib(self.buffer_bytes), self.policy, self.retry_seconds)
        self._say(kind, f"files sink: {text}: events held in memory (up to {self.buffer_bytes} bytes), "
                        f"retried every {self.retry_seconds:g}s; then policy {self.policy}")

    def _retry(self) -> bool:
        """Try the held blocks again; True when all are written (the fault is over)."""
        self._last_attempt = self._monotonic()
        if not self._drain_all():
            return False
        self._recovered()
        return True

    def _recovered(self) -> None:
        seconds = self._monotonic() - self._fault_since
        was, mode = self._fault, self._mode
        self._fault, self._mode = None, "holding"
        dropped = self._dropped_episode
        reason = (f"files sink: the disk takes data again after {seconds:.1f}s ({was}); "
                  f"{self._held_episode} events held in memory were written; "
                  + (f"{dropped} events were dropped (FILES_BUFFER_POLICY=drop)" if dropped else "nothing was lost"))
        if mode == "blocked":
            reason += "; the feed waited"
        log.warning("%s", reason)
        self._say("recovered", reason)

    def _admit(self, count: int, size: int, keys: Sequence[bytes]) -> bool:
        """In a disk fault: may this write's events be held? (the fault path, rare)"""
        if keys:
            exchange = bytes(keys[0]).split(b":", 1)[0]
            if exchange not in self._exchanges:
                self._exchanges.add(exchange)
                self._say(self._fault or "disk_error", f"files sink: {self._fault_text}: events held in memory",
                          [exchange])
        if self._monotonic() - self._last_attempt >= self.retry_seconds and self._retry():
            return True
        self._remind()
        if self._stopping or self._held() + size <= self.buffer_bytes:
            return True
        if self.policy == "drop":
            if self._mode != "dropping":
                self._mode = "dropping"
                reason = (f"files sink: {self._fault_text}: {self._held()} bytes held (FILES_BUFFER_BYTES="
                          f"{self.buffer_bytes}): new events are dropped and counted until the disk takes data")
                log.error("%s", reason)
                self._say("dropping", reason)
            self._dropped += count
            self._dropped_episode += count
            if self._metrics is not None:
                self._metrics.errors.counts[DROPPED_KIND] += count
            return False
        if self._mode != "blocked":
            self._mode = "blocked"
            reason = (f"files sink: {self._fault_text}: {self._held()} bytes held (FILES_BUFFER_BYTES="
                      f"{self.buffer_bytes}): the feed waits until the disk takes data")
            log.error("%s", reason)
            self._say("backpressure", reason)
        self._block(size)
        return True

    def _block(self, size: int) -> None:
        """Policy block: wait, retrying the disk, until ``size`` more bytes fit the bound; a
        SIGINT/SIGTERM (or :meth:`interrupt`) ends the wait."""
        restore = self._trap_signals()
        try:
            while self._fault is not None and self._held() + size > self.buffer_bytes:
                if self._interrupted:
                    self._stopping = True
                    log.warning("files sink: stop requested while the feed waits for the disk (%s): %d "
                                "event(s) held; one more attempt at close", self._fault, self._pending())
                    return
                self.backpressure_waits += 1
                self._sleep(self.retry_seconds)
                if not self._interrupted:
                    self._retry()
                    self._remind()
        finally:
            restore()

    def _trap_signals(self) -> Callable[[], None]:
        """While write() blocks, SIGINT/SIGTERM set a flag (the event loop still sees them:
        the signal wakeup fd is written by the interpreter whatever the Python handler)."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        saved: list[tuple[int, Any]] = []

        def handler(signum: int, frame: Any) -> None:
            self._interrupted = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous = signal.getsignal(sig)
                if previous is None:  # installed outside Python: leave it
                    continue
                signal.signal(sig, handler)
                saved.append((sig, previous))
            except (ValueError, OSError):  # pragma: no cover
                pass

        def restore() -> None:
            for sig, previous in saved:
                try:
                    signal.signal(sig, previous)
                except (ValueError, OSError, TypeError):  # pragma: no cover
                    pass

        return restore

    def _remind(self) -> None:
        now = self._monotonic()
        if self._fault is not None and now - self._reminder >= self.log_interval:
            self._reminder = now
            log.error("files sink: still %s after %.0fs (%s): %d event(s), %s held in memory%s",
                      self._fault.replace("_", " "), now - self._fault_since, self._fault_text, self._pending(),
                      _mib(self._held()),
                      f"; {self._dropped_episode} dropped" if self._dropped_episode else
                      ("; the feed waits" if self._mode == "blocked" else ""))

    def _say(self, status: str, reason: str, exchanges: Sequence[bytes] | None = None) -> None:
        """A ``status`` event per exchange (symbol ""), into the status topic (held while the
        disk is faulty; never subject to the bound or the policy)."""
        from ..events import Status

        wall_ns = time.time_ns()
        ms, us = wall_ns // 1_000_000, wall_ns // 1000
        names = sorted(x.decode("utf-8", "replace") for x in (exchanges if exchanges is not None else self._exchanges))
        records = [Status(x, "", status, reason, ms, us) for x in names or [""]]
        state = self._topics.get("status") or self._open_topic("status")
        data = self._get_encoder().encode_block("status", records)
        self._own_status += len(records)
        if self._metrics is not None:
            events = self._metrics.events
            events["status"] = events.get("status", 0) + len(records)
        self._append(state, data, len(records), ())
