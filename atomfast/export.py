"""The lake as Parquet: one topic's events, from the files sink or Kafka, to Hive-partitioned
Parquet files that DuckDB, polars, pandas, Spark and pyarrow read as one table.

Layout (``OUT`` is ``--out``)::

    OUT/<topic>/exchange=<exchange>/date=<YYYY-MM-DD>/part-<run>-<n>.parquet
    OUT/<topic>/_atomfast_export.json      what has been exported (the state)
    OUT/<topic>/_atomfast_export.lock      held while an export of the topic runs

``date`` is the UTC date of the event's ``event_timestamp``; ``exchange`` and ``date`` live in
the path only (the Hive convention: readers add them as columns). Names starting with ``_`` or
``.`` are not data (pyarrow, Spark and Hive skip them; ``**/*.parquet`` does not match them).

Types are the Avro schema's (``atomfast/schemas/<topic>.avsc``, the bundled version: older
files are read through Avro schema resolution, so every Parquet file has today's columns):
string -> string, double -> double, float -> float, long -> int64, int -> int32, boolean ->
bool, bytes -> binary, a union with null -> the nullable type; ``timestamp-millis`` (e.g.
``event_timestamp``) -> ``timestamp[ms, UTC]``, ``timestamp-micros`` -> ``timestamp[us,
UTC]``, and ``atom_timestamp`` (a plain long of µs since epoch, DESIGN.md) -> ``timestamp[us,
UTC]``. Rows keep the source order within a file (files in name order, block by block; Kafka
partitions in offset order).

Incremental and exactly once: the state records what was exported, and a run exports only what
came after it.

- From the files sink: per source file (by name) its sync marker (the file's identity: a new
  file under an old name is a new file), the offset where its last exported block ends, and the
  size and mtime seen then. Every COMPLETE block is exported, of closed files and of the file a
  running collector is still appending to (the sink writes a block in one write, and a block
  without its trailing sync marker is not complete): the next run goes on at the next block. A
  file whose size and mtime have not changed is not opened again.
- From Kafka: the next offset per partition, stored in the state file (no consumer group, so
  the state travels with the Parquet files it describes). A run reads every partition from its
  stored offset to the high watermark as it was when the run started.

A run writes each Parquet file under a temporary name (``.part-….parquet.tmp``), fsyncs it,
renames it into place, and only then commits the state (written to a temporary file, fsynced,
renamed). A run that is killed leaves no partial Parquet file visible; files it had already
renamed but not committed carry its run number, higher than the state's, and the next run
deletes them before exporting the same data again: nothing is lost or exported twice (a reader
may see such a run's whole files until then). Deleting the state file means "export everything
again": the next run removes the old ``part-`` files first. Two exports of one topic into one
``OUT`` never run at once (an flock on the lock file); a different source (another data dir,
Kafka instead of files) into the same ``OUT/<topic>`` is refused.
"""
from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .avro import _strip_logical, load_schemas

__all__ = ["ExportError", "ExportResult", "FORMATS", "SOURCES", "STATE_NAME", "arrow_schema", "export"]

log = logging.getLogger("atomfast.export")

FORMATS = ("parquet",)
SOURCES = ("files", "kafka")
STATE_NAME = "_atomfast_export.json"
LOCK_NAME = "_atomfast_export.lock"
STATE_VERSION = 1
#: records decoded before they are split into partitions and handed to the writers
CHUNK_RECORDS = 100_000
#: rows buffered per partition before a row group is written
ROW_GROUP_ROWS = 128 * 1024
#: the partition value of an empty exchange (read back as NULL, as Hive writes it)
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
_PART = re.compile(r"^part-(\d+)-(\d+)\.parquet$")
_TMP = re.compile(r"^\.part-\d+-\d+\.parquet\.tmp$")
_DAY_MS = 86_400_000
_EPOCH_DATE = date(1970, 1, 1)


class ExportError(Exception):
    """What stops an export, said in one line; ``code`` is the exit code (2: the command line
    or settings, 1: the source or the output)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class ExportResult:
    topic: str
    source: str
    out: Path
    run: int
    records: int = 0
    files: list[Path] = field(default_factory=list)
    partitions: list[str] = field(default_factory=list)
    skipped: int = 0  # Kafka values that could not be decoded (counted, logged)
    problems: list[str] = field(default_factory=list)  # unreadable or damaged source files
    lost: int = 0  # Kafka offsets removed by retention before they were exported
    seconds: float = 0.0

    def summary(self) -> dict:
        return {"topic": self.topic, "source": self.source, "out": str(self.out), "run": self.run,
                "records": self.records, "files": len(self.files), "partitions": self.partitions,
                "skipped": self.skipped, "lost": self.lost, "problems": self.problems,
                "seconds": round(self.seconds, 6)}


# ------------------------------------------------------------------------------------------------
# types


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError("atomfast export needs pyarrow: pip install 'atomfast[export]'", 2) from None
    return pa, pq


def _arrow_type(pa, name: str, avro_type: Any) -> tuple[Any, bool]:
    """(arrow type, nullable) of one Avro field."""
    if isinstance(avro_type, list):
        branches = [b for b in avro_type if b != "null"]
        if len(branches) != 1:
            raise ExportError(f"field {name!r}: a union of {avro_type} has no Parquet type here", 2)
        return _arrow_type(pa, name, branches[0])[0], "null" in avro_type
    logical = None
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        base = avro_type.get("type")
        if base == "enum":
            return pa.string(), False
        avro_type = base
    if logical in ("timestamp-millis", "local-timestamp-millis") and avro_type == "long":
        return pa.timestamp("ms", tz="UTC" if logical == "timestamp-millis" else None), False
    if logical in ("timestamp-micros", "local-timestamp-micros") and avro_type == "long":
        return pa.timestamp("us", tz="UTC" if logical == "timestamp-micros" else None), False
    if logical == "date" and avro_type == "int":
        return pa.date32(), False
    if name == "atom_timestamp" and avro_type == "long":
        return pa.timestamp("us", tz="UTC"), False  # DESIGN.md: local receive time, µs since epoch
    simple = {"string": pa.string(), "double": pa.float64(), "float": pa.float32(), "long": pa.int64(),
              "int": pa.int32(), "boolean": pa.bool_(), "bytes": pa.binary()}
    if isinstance(avro_type, str) and avro_type in simple:
        return simple[avro_type], False
    raise ExportError(f"field {name!r}: Avro type {avro_type!r} has no Parquet type here", 2)


def arrow_schema(topic: str):
    """The Parquet schema of ``topic``'s files: its Avro fields with their types, without the
    partition column ``exchange`` (in the path)."""
    pa, _ = _pa()
    schema = load_schemas()[topic]
    fields = []
    for f in schema["fields"]:
        if f["name"] == "exchange":
            continue
        t, nullable = _arrow_type(pa, f["name"], f["type"])
        fields.append(pa.field(f["name"], t, nullable=nullable))
    return pa.schema(fields, metadata={"atomfast.topic": topic, "atomfast.schema": json.dumps(schema)})


def known_topics() -> list[str]:
    return sorted(load_schemas())


def check_topic(topic: str) -> None:
    schemas = load_schemas()
    if topic not in schemas:
        raise ExportError(f"unknown topic {topic!r}; the topics are: {', '.join(sorted(schemas))}", 2)
    names = {f["name"] for f in schemas[topic]["fields"]}
    if not {"exchange", "event_timestamp"} <= names:  # pragma: no cover - every bundled schema has both
        raise ExportError(f"topic {topic!r} has no exchange or event_timestamp to partition by", 2)


# ------------------------------------------------------------------------------------------------
# the output: partition writers, temp files, the state


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync of a directory
        pass
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fo:
            fo.write(data)
            fo.flush()
            os.fsync(fo.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def partition_dir(exchange: str, day: int) -> str:
    """``exchange=<x>/date=<YYYY-MM-DD>`` (the exchange URI-encoded, empty as Hive's null)."""
    x = quote(exchange, safe="") if exchange else HIVE_NULL
    d = (_EPOCH_DATE + timedelta(days=day)).isoformat()
    return f"exchange={x}/date={d}"


class _Writers:
    """One Parquet file per partition and run, written under a temporary name."""

    def __init__(self, root: Path, topic: str, run: int, compression: str) -> None:
        self.pa, self.pq = _pa()
        self.root = root
        self.run = run
        self.schema = arrow_schema(topic)
        self.names = [f.name for f in self.schema]
        self.compression = compression
        self._open: dict[str, Any] = {}  # partition -> ParquetWriter
        self._tmp: dict[str, Path] = {}
        self._buffers: dict[str, list] = {}
        self._buffered: dict[str, int] = {}
        self._seq = 0
        self.rows: dict[str, int] = {}

    def add(self, columns: dict[str, list], exchanges: list[str], days: list[int]) -> None:
        """Rows (columns of Python values in the schema's order) with their partitions."""
        pa = self.pa
        table = pa.table([pa.array(columns[f.name], type=f.type) for f in self.schema], schema=self.schema)
        groups: dict[tuple[str, int], list[int]] = {}
        for i, key in enumerate(zip(exchanges, days)):
            rows = groups.get(key)
            if rows is None:
                groups[key] = [i]
            else:
                rows.append(i)
        for (exchange, day), rows in groups.items():
            part = partition_dir(exchange, day)
            piece = table if len(rows) == table.num_rows else table.take(pa.array(rows, type=pa.int64()))
            self._buffers.setdefault(part, []).append(piece)
            self._buffered[part] = self._buffered.get(part, 0) + piece.num_rows
            self.rows[part] = self.rows.get(part, 0) + piece.num_rows
            if self._buffered[part] >= ROW_GROUP_ROWS:
                self._flush(part)

    def _flush(self, part: str) -> None:
        pieces = self._buffers.pop(part, None)
        self._buffered.pop(part, None)
        if not pieces:
            return
        writer = self._open.get(part)
        if writer is None:
            directory = self.root / part
            directory.mkdir(parents=True, exist_ok=True)
            tmp = directory / f".part-{self.run:06d}-{self._seq:04d}.parquet.tmp"
            self._seq += 1
            writer = self.pq.ParquetWriter(tmp, self.schema, compression=self.compression,
                                           use_dictionary=True, write_statistics=True)
            self._open[part], self._tmp[part] = writer, tmp
        table = self.pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)

    def finish(self) -> list[Path]:
        """Close every file, fsync it and rename it into place; the final paths."""
        for part in list(self._buffers):
            self._flush(part)
        done = []
        dirs = set()
        for part, writer in sorted(self._open.items()):
            writer.close()
            tmp = self._tmp[part]
            with open(tmp, "rb+") as fo:
                os.fsync(fo.fileno())
            final = tmp.with_name(tmp.name[1:-len(".tmp")])
            os.replace(tmp, final)
            done.append(final)
            dirs.add(final.parent)
        for d in dirs:
            _fsync_dir(d)
        self._open.clear()
        return done

    def abort(self) -> None:
        for part, writer in self._open.items():
            try:
                writer.close()
            except Exception:  # pragma: no cover
                pass
            try:
                self._tmp[part].unlink()
            except OSError:
                pass
        self._open.clear()


class _Columns:
    """Records (dicts of stored values) -> columns, exchanges and days, in chunks."""

    def __init__(self, topic: str, writers: _Writers) -> None:
        self.writers = writers
        self.names = writers.names
        self.columns: dict[str, list] = {n: [] for n in self.names}
        self.exchanges: list[str] = []
        self.days: list[int] = []
        self.count = 0
        self.total = 0

    def add(self, records: list[dict]) -> None:
        if not records:
            return
        for name, column in self.columns.items():
            column.extend([r[name] for r in records])
        self.exchanges.extend([r["exchange"] for r in records])
        self.days.extend([r["event_timestamp"] // _DAY_MS for r in records])
        self.count += len(records)
        if self.count >= CHUNK_RECORDS:
            self.flush()

    def flush(self) -> None:
        if not self.count:
            return
        self.writers.add(self.columns, self.exchanges, self.days)
        self.total += self.count
        self.columns = {n: [] for n in self.names}
        self.exchanges, self.days, self.count = [], [], 0


def _lock(topic_dir: Path):
    import fcntl

    fd = os.open(topic_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise ExportError(f"another export of this topic into {topic_dir} is running (it holds "
                              f"{topic_dir / LOCK_NAME})") from None
        raise
    return fd


def load_state(topic_dir: Path) -> dict | None:
    path = topic_dir / STATE_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ExportError(f"cannot read the export state {path}: {exc.strerror or exc}") from None
    try:
        state = json.loads(data)
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError(f"version {state.get('version') if isinstance(state, dict) else None!r}")
        int(state["run"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"the export state {path} is damaged ({exc}); it says what the Parquet files beside "
                          "it hold, so it is not guessed: export into a new --out") from None
    return state


def _recover(topic_dir: Path, state: dict | None) -> None:
    """Remove what a killed run left: temporary files, and the ``part-<run>-<n>.parquet`` files
    of a run the state never committed (without a state: every such file; a deleted state thus
    means "export everything again", never twice). Other Parquet files in a folder without a
    state are not an export's: refuse to write beside them."""
    committed = int(state["run"]) if state else 0
    stale, tmp = [], []
    for dirpath, dirnames, filenames in os.walk(topic_dir):
        for name in filenames:
            m = _PART.match(name)
            if m and int(m.group(1)) > committed:
                stale.append(Path(dirpath) / name)
            elif _TMP.match(name):
                tmp.append(Path(dirpath) / name)
            elif state is None and name.endswith(".parquet"):
                raise ExportError(f"{topic_dir} holds Parquet files ({Path(dirpath, name)}) but no export state "
                                  f"({STATE_NAME}): exporting into it would duplicate them; use an empty --out")
    for path in tmp:
        path.unlink(missing_ok=True)
    if stale:
        log.warning("removing %d Parquet file(s) of an export that was stopped before it committed (run %s): "
                    "their events are exported again now", len(stale),
                    ", ".join(sorted({_PART.match(p.name).group(1).lstrip("0") or "0" for p in stale})))
        for path in stale:
            path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------
# the files sink as a source


def _name_key(path: Path) -> list:
    """Name order, with runs of digits compared as numbers (…-9.avro before …-10.avro)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    """An Avro long at ``pos``: (value, next position), None when the data ends first."""
    shift = result = 0
    while pos < len(data):
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            return None
    return None


def _incomplete_block(fo, offset: int, size: int) -> bool:
    """Does the data from ``offset`` to the end look like a block still being written (its
    header, or its declared length plus the sync marker, runs past the end of the file)?"""
    fo.seek(offset)
    head = fo.read(20)
    count = _varint(head, 0)
    if count is None:
        return True
    length = _varint(head, count[1])
    if length is None:
        return True
    return count[0] >= 0 and length[0] >= 0 and offset + length[1] + length[0] + 16 > size


class _FileSource:
    def __init__(self, folder: Path, topic: str) -> None:
        self.folder = folder
        self.topic = topic
        self.reader = _strip_logical(load_schemas()[topic])
        self._parsed_reader: Any = None
        self.problems: list[str] = []

    def identity(self) -> dict:
        return {"kind": "files", "data_dir": str(self.folder.parent.resolve())}

    def read(self, state: dict, sink: Callable[[list[dict]], None]) -> dict:
        """Feed every new complete block to ``sink``; the new ``files`` state."""
        import fastavro

        files = dict(state.get("files") or {})
        if not self.folder.is_dir():
            raise ExportError(f"nothing to export: {self.folder} does not exist (no {self.topic!r} events were "
                              f"written to the files sink at {self.folder.parent})")
        paths = sorted((p for p in self.folder.iterdir() if p.suffix == ".avro" and p.is_file()), key=_name_key)
        if not paths and not files:
            raise ExportError(f"nothing to export: {self.folder} holds no .avro files")
        parsed: dict[str, Any] = {}
        for path in paths:
            try:
                st = path.stat()
            except FileNotFoundError:  # removed (retention) since the listing
                continue
            entry = files.get(path.name)
            if entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
                continue  # unchanged since the last run
            if st.st_size == 0:
                continue  # created, header not written yet
            new = self._read_file(fastavro, path, st, entry, sink, parsed)
            if new is not None:
                files[path.name] = new
        return files

    def _read_file(self, fastavro, path: Path, st, entry: dict | None, sink, parsed: dict) -> dict | None:
        size = st.st_size
        try:
            fo = open(path, "rb")
        except OSError as exc:
            self._problem(f"{path}: cannot be read: {exc.strerror or exc}")
            return None
        with fo:
            try:
                if fo.read(4) != b"Obj\x01":
                    raise ValueError("not an Avro object container file (no Obj 01 magic)")
                fo.seek(0)
                blocks = fastavro.block_reader(fo)
                header_end = fo.tell()
                sync = blocks._header["sync"].hex()
                schema_text = blocks.metadata["avro.schema"]
                codec = blocks.metadata.get("avro.codec", "null")
            except Exception as exc:  # truncated header, not Avro, bad metadata
                self._problem(f"{path}: unreadable: {type(exc).__name__}: {exc}")
                return None
            offset, records, damaged = header_end, 0, False
            if entry is not None:
                if entry.get("sync") != sync:
                    log.warning("%s is a new file under a name exported before (another sync marker): "
                                "exporting it whole", path)
                elif entry["offset"] > size:
                    self._problem(f"{path} is shorter ({size} bytes) than what was exported of it "
                                  f"({entry['offset']} bytes): it was changed after the export; not read again")
                    return None
                else:
                    offset, records = int(entry["offset"]), int(entry.get("records", 0))
            key = (schema_text, codec)
            writer = parsed.get(key)
            if writer is None:
                try:
                    writer = parsed[key] = fastavro.parse_schema(_strip_logical(json.loads(schema_text)))
                except Exception as exc:
                    self._problem(f"{path}: unreadable schema: {type(exc).__name__}: {exc}")
                    return None
            reader = None
            if _strip_logical(json.loads(schema_text)) != self.reader:  # an older schema: resolved to today's
                if self._parsed_reader is None:
                    self._parsed_reader = fastavro.parse_schema(self.reader)
                reader = self._parsed_reader
            read = fastavro.schemaless_reader
            fo.seek(offset)
            try:
                for block in blocks:
                    data = block.bytes_  # the decompressed block, a stream
                    if not hasattr(data, "read"):  # pragma: no cover - fastavro versions differ
                        data = io.BytesIO(data)
                    batch = [read(data, writer, reader) for _ in range(block.num_records)]
                    sink(batch)
                    offset = block.offset + block.size
                    records += block.num_records
            except Exception as exc:
                if _incomplete_block(fo, offset, size):
                    log.info("%s: %d byte(s) after byte %d are not a complete block yet (a file being written): "
                             "exported up to there, the rest next time", path, size - offset, offset)
                else:
                    damaged = True
                    self._problem(f"{path}: damaged at byte {offset}: {type(exc).__name__}: {exc}; "
                                  f"the blocks before it are exported, the rest is not")
            if damaged:  # no size/mtime: read (and reported) again by every run
                return {"sync": sync, "offset": offset, "records": records, "damaged": True}
            return {"sync": sync, "offset": offset, "records": records, "size": size, "mtime_ns": st.st_mtime_ns}

    def _problem(self, text: str) -> None:
        log.error("%s", text)
        self.problems.append(text)


# ------------------------------------------------------------------------------------------------
# Kafka as a source


class _KafkaLog:
    _log = logging.getLogger("atomfast.export.librdkafka")

    def log(self, level: int, msg: str, *args: Any) -> None:  # pragma: no cover - librdkafka's
        if self._log.isEnabledFor(logging.DEBUG):
            self._log.debug("%s", msg % args if args else msg)


class _KafkaSource:
    def __init__(self, settings: Any, topic: str, timeout: float) -> None:
        self.settings = settings
        self.topic = topic
        self.name = settings.kafka_topic_prefix + topic
        self.timeout = timeout
        self.skipped = 0
        self.lost = 0
        self._kinds: set[str] = set()

    def identity(self) -> dict:
        return {"kind": "kafka", "topic": self.name}

    def _config(self) -> dict:
        s = self.settings
        conf: dict[str, Any] = {
            "bootstrap.servers": s.kafka_bootstrap_servers,
            "group.id": f"atomfast-export-{uuid.uuid4().hex[:12]}",  # never committed: offsets live in the state
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "client.id": "atomfast-export",
            "logger": _KafkaLog(),
        }
        if s.kafka_sasl_key:
            conf.update({"security.protocol": "SASL_SSL", "sasl.mechanisms": s.kafka_sasl_mechanism,
                         "sasl.username": s.kafka_sasl_key, "sasl.password": s.kafka_sasl_secret.get()})
            try:
                import certifi

                conf["ssl.ca.location"] = certifi.where()
            except ImportError:  # pragma: no cover
                pass
        return conf

    def _skip(self, kind: str, detail: str) -> None:
        self.skipped += 1
        if kind not in self._kinds:
            self._kinds.add(kind)
            log.warning("%s: %s (skipped; further ones counted)", kind, detail)

    def read(self, state: dict, sink: Callable[[list[dict]], None]) -> dict:
        """Every value from the stored offsets to the high watermarks; the new ``offsets``."""
        from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

        from . import avro
        from .sinks.registry import RegistryError, SchemaLookup

        s = self.settings
        where = s.kafka_bootstrap_servers
        registry = None
        if s.schema_registry_url:
            registry = SchemaLookup(s.schema_registry_url, s.schema_registry_api_key,
                                    s.schema_registry_api_secret.get())
        stored = {int(p): int(o) for p, o in (state.get("offsets") or {}).items()}
        try:
            consumer = Consumer(self._config())
        except (KafkaException, ValueError, TypeError) as exc:
            raise ExportError(f"bad Kafka configuration: {_kafka_text(exc)}", 2) from None
        try:
            try:
                md = consumer.list_topics(self.name, timeout=15)
            except KafkaException as exc:
                raise ExportError(f"Kafka at {where} does not answer: {_kafka_text(exc)}") from None
            tmeta = md.topics.get(self.name)
            if tmeta is None or tmeta.error is not None or not tmeta.partitions:
                reason = tmeta.error.str() if tmeta is not None and tmeta.error is not None else "no partitions"
                raise ExportError(f"nothing to export: topic {self.name!r} is not available at {where}: {reason}")
            offsets: dict[int, int] = {}
            ends: dict[int, int] = {}
            try:
                for p in sorted(tmeta.partitions):
                    low, high = consumer.get_watermark_offsets(TopicPartition(self.name, p), timeout=15)
                    start = stored.get(p, low)
                    if start > high:
                        raise ExportError(f"{self.name} partition {p} ends at offset {high}, before the {start} "
                                          "already exported: the topic was recreated; export it into a new --out")
                    if start < low:
                        log.warning("%s partition %d: offsets %d to %d were deleted (retention) before they were "
                                    "exported", self.name, p, start, low - 1)
                        self.lost += low - start
                        start = low
                    offsets[p], ends[p] = start, high
            except KafkaException as exc:
                raise ExportError(f"{self.name} at {where}: offsets unavailable: {_kafka_text(exc)}") from None
            if not stored and all(offsets[p] >= ends[p] for p in offsets):
                raise ExportError(f"nothing to export: topic {self.name!r} at {where} is empty")
            active = {p for p in offsets if offsets[p] < ends[p]}
            if active:
                consumer.assign([TopicPartition(self.name, p, offsets[p]) for p in sorted(active)])
            last = time.monotonic()
            while active:
                messages = consumer.consume(2000, 0.5)
                batch: list[dict] = []
                for m in messages:
                    err = m.error()
                    p = m.partition()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            if m.offset() >= ends[p]:
                                active.discard(p)
                            continue
                        if err.fatal() or err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART,
                                                         KafkaError.TOPIC_AUTHORIZATION_FAILED):
                            raise ExportError(f"{self.name} at {where}: {err.str()}")
                        log.warning("%s: %s", err.name(), err.str())
                        continue
                    offset = m.offset()
                    if p not in active or offset >= ends[p]:
                        active.discard(p)
                        continue
                    offsets[p] = offset + 1
                    if offset + 1 >= ends[p]:
                        active.discard(p)
                    value = m.value()
                    if not value:
                        self._skip("empty value", f"{self.name} partition {p} offset {offset}")
                        continue
                    try:
                        found, record = avro.decode(value, self.topic, registry)
                    except RegistryError as exc:
                        self._skip("unknown schema id", f"{self.name} partition {p} offset {offset}: {exc}")
                        continue
                    except Exception as exc:
                        self._skip("undecodable value", f"{self.name} partition {p} offset {offset}: "
                                                        f"{type(exc).__name__}: {exc}")
                        continue
                    if found != self.topic:
                        self._skip("another record type", f"{self.name} partition {p} offset {offset}: a {found!r} "
                                                          "record")
                        continue
                    batch.append(record)
                if messages:
                    last = time.monotonic()
                if batch:
                    sink(_complete(batch, self.topic))
                if active and time.monotonic() - last > self.timeout:
                    raise ExportError(f"{self.name} at {where}: the end offsets were not reached within "
                                      f"{self.timeout:.1f} s without messages (partitions left: {sorted(active)})")
            return {str(p): o for p, o in sorted(offsets.items())}
        finally:
            try:
                consumer.close()
            except (KafkaException, RuntimeError):  # pragma: no cover
                pass


def _complete(records: list[dict], topic: str) -> list[dict]:
    """Records decoded with another (older or registry) schema: today's fields, defaults filled."""
    fields = load_schemas()[topic]["fields"]
    names = [f["name"] for f in fields]
    if all(len(r) == len(names) for r in records):
        return records
    defaults = {f["name"]: f.get("default") for f in fields}
    return [{n: r.get(n, defaults[n]) for n in names} for r in records]


def _kafka_text(exc: BaseException) -> str:
    err = exc.args[0] if exc.args else None
    if hasattr(err, "str") and hasattr(err, "name"):
        return f"{err.name()}: {err.str()}"
    return str(exc)


# ------------------------------------------------------------------------------------------------


def export(topic: str, out: str | Path, *, source: str = "files", data_dir: str | Path | None = None,
           settings: Any = None, compression: str = "zstd", timeout: float = 30.0) -> ExportResult:
    """Export what is new of ``topic`` since the last export into ``out`` (see the module's
    doc). Raises ExportError; unreadable source files are reported in ``result.problems`` (the
    rest is exported)."""
    started = time.monotonic()
    check_topic(topic)
    if source not in SOURCES:
        raise ExportError(f"unknown source {source!r}: {', '.join(SOURCES)}", 2)
    _pa()
    topic_dir = Path(out) / topic
    try:
        topic_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {topic_dir}: {exc.strerror or exc}") from None
    if source == "files":
        if data_dir is None:
            data_dir = settings.data_dir if settings is not None else "data"
        src: Any = _FileSource(Path(data_dir) / topic, topic)
    else:
        if settings is None or not settings.kafka_bootstrap_servers:
            raise ExportError("--from kafka needs KAFKA_BOOTSTRAP_SERVERS (or KAFKA_ENDPOINTS)", 2)
        src = _KafkaSource(settings, topic, timeout)

    lock = _lock(topic_dir)
    try:
        state = load_state(topic_dir)
        if state is not None:
            if state.get("topic") != topic or state.get("source") != src.identity():
                raise ExportError(f"{topic_dir} holds an export of {state.get('topic')!r} from "
                                  f"{_describe(state.get('source'))}, not from {_describe(src.identity())}: "
                                  "mixing sources would duplicate events; use another --out")
        _recover(topic_dir, state)
        run = (int(state["run"]) if state else 0) + 1
        result = ExportResult(topic, source, topic_dir, run)
        writers = _Writers(topic_dir, topic, run, compression)
        columns = _Columns(topic, writers)
        new_state = dict(state or {"version": STATE_VERSION, "topic": topic, "source": src.identity(),
                                   "run": 0, "records": 0})
        try:
            if source == "files":
                new_state["files"] = src.read(state or {}, columns.add)
                result.problems = src.problems
            else:
                new_state["offsets"] = src.read(state or {}, columns.add)
                result.skipped, result.lost = src.skipped, src.lost
            columns.flush()
            if not columns.total and state is None and not result.problems and not result.skipped:
                raise ExportError(f"nothing to export: {_describe(src.identity())} holds no {topic!r} events")
            result.files = writers.finish()
        except BaseException:
            writers.abort()
            raise
        result.records = columns.total
        result.partitions = sorted(writers.rows)
        if result.files or state is None or new_state.get("files") != state.get("files") \
                or new_state.get("offsets") != state.get("offsets"):
            new_state["run"] = run if result.files else int(new_state["run"])
            new_state["records"] = int(new_state.get("records", 0)) + result.records
            new_state["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            new_state["last_run"] = {"run": run, "records": result.records,
                                     "files": [str(p.relative_to(topic_dir)) for p in result.files]}
            _write_atomic(topic_dir / STATE_NAME, json.dumps(new_state, indent=1, sort_keys=True).encode())
        if not result.files:
            result.run = int(new_state["run"])
        result.seconds = time.monotonic() - started
        return result
    finally:
        os.close(lock)


def _describe(source: Any) -> str:
    if isinstance(source, dict) and source.get("kind") == "files":
        return f"the files sink at {source.get('data_dir')}"
    if isinstance(source, dict) and source.get("kind") == "kafka":
        return f"Kafka topic {source.get('topic')!r}"
    return repr(source)


def iter_parts(topic_dir: Path) -> Iterator[Path]:
    """The committed Parquet files of an export, in path order."""
    yield from sorted(p for p in Path(topic_dir).rglob("part-*.parquet") if _PART.match(p.name))
