"""`atomfast consume TOPIC`: decode Avro to JSON lines, from Kafka or from the files sink.

Each line is what ``--sink stdout`` prints for the same event: ``{"topic": "trades", ...the
record's fields in schema order}``; timestamps are the plain numbers of the schema (ms or µs
since epoch), floats are printed so that they read back exactly.

From files (``--from files``): the Avro object container files of ``DATA/<topic>/`` in name
order (numbers in names compared as numbers), block by block. From Kafka (``--from kafka``):
the topic ``<KAFKA_TOPIC_PREFIX><topic>``; a value is Avro single-object encoded (C3 01 +
CRC-64-AVRO fingerprint, looked up among the schemas), in the Confluent wire format (magic 0 +
schema id, looked up in the Schema Registry at SCHEMA_REGISTRY_URL, cached; without a registry,
decoded with the topic's schema) or a bare Avro body (the topic's schema).

Without ``--follow`` it stops at the end: the last complete block of the last file, or the
high watermarks of all partitions as they were at start. With ``--follow`` it keeps reading
until SIGINT/SIGTERM (or ``--timeout`` seconds without a message). A value that cannot be
decoded is counted and skipped; the first of each kind is logged, and a summary goes to stderr
at the end.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import decimal
import io
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable

import msgspec

from ..sinks.registry import RegistryError
from ..sinks.registry import SchemaLookup as SchemaRegistry  # the lookup side, beside the Kafka sink

log = logging.getLogger("atomfast.consume")

SOURCES = ("kafka", "files")
#: poll interval of --follow on files, and Kafka's poll timeout (how fast SIGINT is noticed)
POLL_SECONDS = 0.5
#: without --follow, give up waiting for the end offsets after this long without a message
DEFAULT_END_TIMEOUT = 30.0
MAX_BATCH = 2000


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("topic", help="event type / topic: lob, trades, ticker, spread, status, ...")
    p.add_argument("--from", dest="source", choices=SOURCES, default=None,
                   help="read Kafka or the files sink's Avro files (default: kafka when "
                        "KAFKA_BOOTSTRAP_SERVERS is set, else files)")
    p.add_argument("--data-dir", default=None, help="files sink directory (default: the settings' data dir)")
    p.add_argument("--exchange", default=None, help="only events of this exchange (comma-separated list allowed)")
    p.add_argument("--symbol", default=None, help="only events of this symbol (comma-separated list allowed)")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep reading new events until interrupted (SIGINT)")
    p.add_argument("--max-messages", "-n", type=int, default=0, metavar="N",
                   help="stop after printing N events (after filtering)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="stop after S seconds without a new message (default: never with --follow; "
                        f"{DEFAULT_END_TIMEOUT:.0f} s of waiting for the end offsets without it)")
    p.add_argument("--group", default=None, metavar="G",
                   help="Kafka consumer group: start from its committed offsets and commit what was "
                        "printed (default: an anonymous consumer that commits nothing)")
    p.add_argument("--from-beginning", action="store_true",
                   help="Kafka: start at the oldest retained message (the default without --follow "
                        "unless --group has committed offsets; with --follow the default is the end)")
    p.add_argument("--prefix", default=None, help="Kafka topic prefix (default: KAFKA_TOPIC_PREFIX)")


# ------------------------------------------------------------------------------------------------
# output


class Output:
    """JSON lines to a binary stream, one write per batch; a closed pipe stops quietly."""

    def __init__(self, stream: Any = None) -> None:
        stream = sys.stdout if stream is None else stream
        if isinstance(stream, io.TextIOBase):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
            stream = getattr(stream, "buffer", stream)
        self.stream = stream
        self.encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
        self.printed = 0
        self.broken = False

    def write(self, items: list[dict]) -> None:
        if not items or self.broken:
            return
        data = self.encoder.encode_lines(items)
        try:
            self.stream.write(data if not isinstance(self.stream, io.TextIOBase) else data.decode())
            self.stream.flush()
        except BrokenPipeError:
            self._broken_pipe()
            return
        self.printed += len(items)

    def _broken_pipe(self) -> None:
        self.broken = True
        log.info("stdout closed by the reader: stopping")
        try:  # keep the interpreter's last flush of stdout from complaining
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            pass


def _enc_hook(obj: Any) -> Any:
    """Values a logical type left that JSON has no type for (outside our own schemas)."""
    if isinstance(obj, (decimal.Decimal, uuid.UUID)):
        return str(obj)
    if isinstance(obj, (_dt.date, _dt.time)):
        return obj.isoformat()
    raise NotImplementedError(f"cannot print a {type(obj).__name__}")


# ------------------------------------------------------------------------------------------------
# errors: counted per kind, the first of each kind logged


class Problems:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def report(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] == 1:
            log.warning("%s: %s (counting further ones, summary at the end)", kind, detail)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# ------------------------------------------------------------------------------------------------
# records: logical types back to the schema's plain numbers, filters


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_EPOCH_NAIVE = _dt.datetime(1970, 1, 1)
_EPOCH_DATE = _dt.date(1970, 1, 1)
_UNITS = {
    "timestamp-millis": _dt.timedelta(milliseconds=1),
    "local-timestamp-millis": _dt.timedelta(milliseconds=1),
    "timestamp-micros": _dt.timedelta(microseconds=1),
    "local-timestamp-micros": _dt.timedelta(microseconds=1),
    "time-millis": _dt.timedelta(milliseconds=1),
    "time-micros": _dt.timedelta(microseconds=1),
}


def _logical_types(avro_type: Any, found: set[str]) -> set[str]:
    if isinstance(avro_type, dict):
        if "logicalType" in avro_type:
            found.add(avro_type["logicalType"])
        if avro_type.get("type") in ("array", "map", "record"):
            pass  # nested values are printed as fastavro gives them
    elif isinstance(avro_type, list):
        for branch in avro_type:
            _logical_types(branch, found)
    return found


def plain_converter(schema: Any) -> Callable[[dict], dict]:
    """A function that turns a decoded record's logical-type values (datetime, ...) back into
    the numbers the schema stores, for the top-level fields that have a logical type."""
    fields = schema.get("fields", []) if isinstance(schema, dict) else []
    conv: list[tuple[str, tuple[str, ...]]] = []
    for f in fields:
        types = _logical_types(f.get("type"), set())
        if types:
            conv.append((f["name"], tuple(sorted(types))))
    if not conv:
        return lambda record: record

    def convert(record: dict) -> dict:
        for name, types in conv:
            value = record.get(name)
            if value is None or isinstance(value, (int, float, str, bytes)):
                continue
            record[name] = _plain(value, types)
        return record

    return convert


def _plain(value: Any, types: tuple[str, ...]) -> Any:
    if isinstance(value, _dt.datetime):
        unit = next((_UNITS[t] for t in types if t in _UNITS and "timestamp" in t), _UNITS["timestamp-millis"])
        epoch = _EPOCH if value.tzinfo is not None else _EPOCH_NAIVE
        return (value - epoch) // unit
    if isinstance(value, _dt.date):
        return (value - _EPOCH_DATE).days
    if isinstance(value, _dt.time):
        unit = next((_UNITS[t] for t in types if t.startswith("time-")), _UNITS["time-millis"])
        delta = _dt.timedelta(hours=value.hour, minutes=value.minute, seconds=value.second,
                              microseconds=value.microsecond)
        return delta // unit
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def make_filter(exchange: str | None, symbol: str | None) -> Callable[[dict], bool] | None:
    exchanges = {x.strip() for x in exchange.split(",") if x.strip()} if exchange else None
    symbols = {x.strip() for x in symbol.split(",") if x.strip()} if symbol else None
    if not exchanges and not symbols:
        return None

    def keep(record: dict) -> bool:
        if exchanges is not None and record.get("exchange") not in exchanges:
            return False
        if symbols is not None and record.get("symbol") not in symbols:
            return False
        return True

    return keep


class Printer:
    """Filters records, prints them in batches, counts, and knows when --max-messages is reached."""

    def __init__(self, output: Output, keep: Callable[[dict], bool] | None, max_messages: int) -> None:
        self.output = output
        self._keep = keep
        self.max_messages = max_messages
        self.filtered = 0
        self.last_message = time.monotonic()

    @property
    def done(self) -> bool:
        return self.output.broken or (0 < self.max_messages <= self.output.printed)

    def room(self) -> int:
        """How many more records may be printed (-1: no limit)."""
        return self.max_messages - self.output.printed if self.max_messages > 0 else -1

    def keep(self, record: dict) -> bool:
        if self._keep is None or self._keep(record):
            return True
        self.filtered += 1
        return False

    def emit(self, topic: str, records: Iterable[dict], filtered: bool = False) -> None:
        """Print the records (plain values) of ``topic`` that pass the filter, up to --max-messages."""
        items = []
        room = self.room()
        for record in records:
            if not filtered and not self.keep(record):
                continue
            line = {"topic": topic}
            line.update(record)
            items.append(line)
            if len(items) == room:
                break
        self.last_message = time.monotonic()
        self.output.write(items)


# ------------------------------------------------------------------------------------------------
# stop: SIGINT / SIGTERM end --follow cleanly


class Stop:
    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "Stop":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue  # e.g. SIGINT of a background job: stays ignored
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.event.is_set():  # a second ^C: leave at once
            raise KeyboardInterrupt
        self.event.set()

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __bool__(self) -> bool:
        return self.event.is_set()

    def sleep(self, seconds: float) -> None:
        self.event.wait(seconds)


# ------------------------------------------------------------------------------------------------
# files


def _name_key(path: Path) -> list:
    """Name order, with runs of digits compared as numbers (…-9.avro before …-10.avro)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


class _FileState:
    __slots__ = ("offset", "convert", "reader_schema", "failed_size", "failures", "done")

    def __init__(self) -> None:
        self.offset = 0  # where the next unread block starts (0: header not read yet)
        #: the file's schema without logical types (values read as stored), and the fallback:
        #: logical-type values (datetime, ...) turned back into the stored numbers
        self.reader_schema: Any = None
        self.convert: Callable[[dict], dict] | None = None
        self.failed_size = -1  # file size at the last failed read (-1: none)
        self.failures = 0  # failed reads at self.offset although the file had grown
        self.done = False


#: --follow: a file that still fails at the same block after growing this often is damaged
GROWN_FAILURES = 3


def read_files(folder: Path, topic: str, printer: Printer, problems: Problems, follow: bool,
               stop: Stop, timeout: float | None) -> int:
    import fastavro

    states: dict[Path, _FileState] = {}
    waiting = False
    while True:
        if folder.is_dir():
            paths = sorted((p for p in folder.iterdir() if p.suffix == ".avro" and p.is_file()), key=_name_key)
        else:
            if not follow:
                print(f"atomfast consume: no files for topic {topic!r}: {folder} does not exist", file=sys.stderr)
                return 1
            if not waiting:
                log.info("waiting for %s to appear", folder)
                waiting = True
            paths = []
        for path in paths:
            state = states.get(path)
            if state is None:
                state = states[path] = _FileState()
            if not state.done:
                _read_file(fastavro, path, state, topic, printer, problems, follow)
            if printer.done or stop:
                return 0
        if not follow:
            return 0
        if timeout is not None and time.monotonic() - printer.last_message > timeout:
            log.info("no new events for %.1f s: stopping", timeout)
            return 0
        stop.sleep(POLL_SECONDS)
        if stop:
            return 0


def _file_schema(fastavro, blocks, state: _FileState) -> None:
    schema = blocks.writer_schema
    state.convert = plain_converter(schema)
    try:
        from ..avro import _strip_logical

        state.reader_schema = fastavro.parse_schema(_strip_logical(json.loads(blocks.metadata["avro.schema"])))
    except Exception:  # fall back to converting what fastavro's logical readers give
        state.reader_schema = None


def _block_records(fastavro, block, state: _FileState) -> list[dict]:
    """The records of one block, with the values as stored (timestamps as numbers)."""
    data = getattr(block, "bytes_", None)  # the decompressed block
    if state.reader_schema is not None and data is not None:
        read = fastavro.schemaless_reader
        schema = state.reader_schema
        return [read(data, schema, None) for _ in range(block.num_records)]
    convert = state.convert
    return [convert(r) for r in block]


def _read_file(fastavro, path: Path, state: _FileState, topic: str, printer: Printer,
               problems: Problems, follow: bool) -> None:
    """Print the complete blocks of ``path`` after ``state.offset``. Without --follow a file is
    read once; with it, a file is read again when it has grown, and a block that cannot be read
    yet (being written) is retried then."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:  # removed (retention) between listing and reading
        state.done = True
        return
    if follow and (size == state.failed_size or (state.offset and size <= state.offset)):
        return  # nothing new
    if size == 0:
        state.done = not follow  # created, header not written yet
        return
    try:
        with open(path, "rb") as fo:
            blocks = fastavro.block_reader(fo)
            if state.convert is None:
                _file_schema(fastavro, blocks, state)
                state.offset = fo.tell()
            fo.seek(state.offset)
            for block in blocks:
                records = _block_records(fastavro, block, state)
                state.offset = block.offset + block.size
                state.failures = 0
                printer.emit(topic, records)
                if printer.done:
                    return
    except Exception as exc:  # truncated, damaged, not Avro at all: never a traceback
        if follow:
            # Probably a block being written: retry when the file grows. If it still fails at
            # the same place after growing several times, the file is damaged there.
            if state.failed_size >= 0:
                state.failures += 1
            state.failed_size = size
            if state.failures < GROWN_FAILURES:
                return
        state.done = True
        kind = "unreadable file" if state.convert is None else "incomplete or damaged file"
        problems.report(kind, f"{path} at byte {state.offset}: {type(exc).__name__}: {exc}; "
                              "the rest of this file is skipped")
        return
    state.failed_size = -1
    if not follow:
        state.done = True


# ------------------------------------------------------------------------------------------------
# Kafka values


class DecodeProblem(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class ValueDecoder:
    """Kafka value bytes -> (topic, record dict with the stored values); raises DecodeProblem
    with the kind of problem. Decoding is ``atomfast.avro.decode``; this sorts out the kinds."""

    def __init__(self, topic: str, registry: SchemaRegistry | None) -> None:
        from .. import avro

        self._avro = avro
        self.topic = topic
        self.registry = registry
        schemas = avro.load_schemas()
        self._known_topic = topic in schemas
        self._fingerprints = {avro.fingerprint64(s) for s in schemas.values()}

    def decode(self, value: bytes | None) -> tuple[str, dict]:
        if not value:
            raise DecodeProblem("empty value", "a message without a value (a tombstone?)")
        avro = self._avro
        framing = avro.detect_framing(value)
        topic: str | None = self.topic
        if framing == "single_object":
            fp = int.from_bytes(value[2:10], "little")
            if fp not in self._fingerprints:
                raise DecodeProblem("unknown schema fingerprint",
                                    f"single-object value with fingerprint {fp:#018x}, which is none "
                                    "of atomfast's schemas")
            topic = None  # the fingerprint names the record type
        elif not self._known_topic and (framing == "none" or self.registry is None):
            what = "a bare Avro value" if framing == "none" else "a Confluent-framed value without SCHEMA_REGISTRY_URL"
            raise DecodeProblem("bad framing", f"{what} on topic {self.topic!r}, which has no schema of its own: "
                                               f"starts with {bytes(value[:10]).hex()}")
        try:
            return avro.decode(value, topic, self.registry if framing == "confluent" else None, framing=framing)
        except RegistryError as exc:
            raise DecodeProblem("unknown schema id", str(exc)) from None
        except Exception as exc:  # truncated, wrong schema, bad UTF-8, trailing bytes, ...
            what = {"single_object": "single-object", "confluent": "Confluent-framed", "none": "bare Avro"}[framing]
            raise DecodeProblem("undecodable value", f"{what} value: {type(exc).__name__}: {exc}") from None


# ------------------------------------------------------------------------------------------------
# Kafka


def _consumer_config(settings, group: str | None, from_beginning: bool) -> dict:
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "group.id": group or f"atomfast-consume-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "client.id": "atomfast-consume",
        "logger": _KafkaLog(),
    }
    if settings.kafka_sasl_key:
        conf.update({
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": settings.kafka_sasl_mechanism,
            "sasl.username": settings.kafka_sasl_key,
            "sasl.password": settings.kafka_sasl_secret.get(),
        })
        try:
            import certifi

            conf["ssl.ca.location"] = certifi.where()
        except ImportError:  # pragma: no cover
            pass
    return conf


class _KafkaLog:
    """librdkafka's log lines at DEBUG (its connection chatter would drown the JSON)."""

    _log = logging.getLogger("atomfast.consume.librdkafka")

    def log(self, level: int, msg: str, *args: Any) -> None:
        if self._log.isEnabledFor(logging.DEBUG):
            self._log.debug("%s", msg % args if args else msg)


def read_kafka(settings, args, printer: Printer, problems: Problems, stop: Stop) -> int:
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

    registry = None
    if settings.schema_registry_url:
        registry = SchemaRegistry(settings.schema_registry_url, settings.schema_registry_api_key,
                                  settings.schema_registry_api_secret.get())
    decoder = ValueDecoder(args.topic, registry)
    name = settings.kafka_topic_prefix + args.topic
    where = settings.kafka_bootstrap_servers
    try:
        consumer = Consumer(_consumer_config(settings, args.group, args.from_beginning))
    except (KafkaException, ValueError, TypeError) as exc:
        print(f"atomfast consume: bad Kafka configuration: {_kafka_text(exc)}", file=sys.stderr)
        return 2
    committed: dict[int, int] = {}  # partition -> next offset to commit (printed or skipped)
    last_commit = time.monotonic()

    def commit(force: bool = False) -> None:
        nonlocal last_commit
        if not args.group or not committed:
            return
        if not force and time.monotonic() - last_commit < 5.0:
            return
        last_commit = time.monotonic()
        try:
            consumer.commit(offsets=[TopicPartition(name, p, o) for p, o in committed.items()],
                            asynchronous=not force)
        except KafkaException as exc:
            problems.report("commit failed", _kafka_text(exc))

    try:
        try:
            md = consumer.list_topics(name, timeout=15)
        except KafkaException as exc:
            print(f"atomfast consume: Kafka at {where} does not answer: {_kafka_text(exc)}", file=sys.stderr)
            return 1
        tmeta = md.topics.get(name)
        if tmeta is None or tmeta.error is not None or not tmeta.partitions:
            reason = tmeta.error.str() if tmeta is not None and tmeta.error is not None else "no partitions"
            print(f"atomfast consume: topic {name!r} is not available at {where}: {reason}", file=sys.stderr)
            return 1
        partitions = sorted(tmeta.partitions)

        # where to start, and (without --follow) where to end
        ends: dict[int, int] = {}
        starts: dict[int, int] = {}
        if not args.follow or not args.group:
            stored = {}
            try:
                if args.group and not args.from_beginning:
                    for tp in consumer.committed([TopicPartition(name, p) for p in partitions], timeout=15):
                        if tp.offset >= 0:
                            stored[tp.partition] = tp.offset
                for p in partitions:
                    low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=15)
                    if p in stored:
                        starts[p] = max(stored[p], low)
                    elif args.from_beginning or not args.follow:
                        starts[p] = low
                    else:
                        starts[p] = OFFSET_END
                    ends[p] = high
            except KafkaException as exc:
                print(f"atomfast consume: {name} at {where}: offsets unavailable: {_kafka_text(exc)}",
                      file=sys.stderr)
                return 1
        if args.follow and args.group:
            def on_assign(c, tps):
                if args.from_beginning:
                    for tp in tps:
                        tp.offset = OFFSET_BEGINNING
                c.assign(tps)

            consumer.subscribe([name], on_assign=on_assign)
            active = None
        else:
            consumer.assign([TopicPartition(name, p, starts[p]) for p in partitions])
            active = set(partitions) if args.follow else {p for p in partitions if starts[p] < ends[p]}
            if not args.follow:
                log.debug("reading %s: %s", name, {p: (starts[p], ends[p]) for p in partitions})

        timeout = args.timeout
        if timeout is None and not args.follow:
            timeout = DEFAULT_END_TIMEOUT
        printer.last_message = time.monotonic()
        while not stop and not printer.done:
            if not args.follow and not active:
                break
            messages = consumer.consume(MAX_BATCH, POLL_SECONDS)
            batches: list[tuple[str, list[dict]]] = []
            room = printer.room()
            for m in messages:
                err = m.error()
                p = m.partition()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        if not args.follow and m.offset() >= ends[p]:
                            active.discard(p)
                        continue
                    if err.fatal() or err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART,
                                                     KafkaError.TOPIC_AUTHORIZATION_FAILED):
                        print(f"atomfast consume: {name}: {err.str()}", file=sys.stderr)
                        return 1
                    problems.report("kafka error", f"{err.name()}: {err.str()}")
                    continue
                offset = m.offset()
                if not args.follow:
                    if p not in active or offset >= ends[p]:
                        active.discard(p)
                        continue
                    if offset >= ends[p] - 1:
                        active.discard(p)
                committed[p] = offset + 1
                try:
                    topic, record = decoder.decode(m.value())
                except DecodeProblem as exc:
                    problems.report(exc.kind, f"{name} partition {p} offset {offset}: {exc}")
                    continue
                if not printer.keep(record):
                    continue
                if batches and batches[-1][0] == topic:
                    batches[-1][1].append(record)
                else:
                    batches.append((topic, [record]))
                if room > 0:
                    room -= 1
                    if room == 0:
                        break  # --max-messages: later messages stay unconsumed (and uncommitted)
            for topic, records in batches:
                printer.emit(topic, records, filtered=True)
            if messages:
                printer.last_message = time.monotonic()
            commit()
            if timeout is not None and time.monotonic() - printer.last_message > timeout:
                if args.follow:
                    log.info("no new events for %.1f s: stopping", timeout)
                    break
                print(f"atomfast consume: {name}: the end offsets were not reached within "
                      f"{timeout:.1f} s without messages (partitions left: {sorted(active)})",
                      file=sys.stderr)
                return 1
        return 0
    finally:
        commit(force=True)
        try:
            consumer.close()
        except (KafkaException, RuntimeError):
            pass


def _kafka_text(exc: BaseException) -> str:
    err = exc.args[0] if exc.args else None
    if hasattr(err, "str") and hasattr(err, "name"):
        return f"{err.name()}: {err.str()}"
    return str(exc)


# ------------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    from ..config import SettingsError, load_settings

    topic = args.topic.strip()
    if not topic or "/" in topic or "\\" in topic or topic in (".", ".."):
        print(f"atomfast consume: bad topic name {args.topic!r}", file=sys.stderr)
        return 2
    from ..events import TOPICS

    if topic not in TOPICS:
        print(f"atomfast consume: unknown topic {topic!r}; the topics are {', '.join(TOPICS)}", file=sys.stderr)
        return 2
    args.topic = topic
    if args.max_messages < 0:
        print("atomfast consume: --max-messages must be 0 (no limit) or more", file=sys.stderr)
        return 2
    try:
        settings = load_settings({"data_dir": args.data_dir, "kafka_topic_prefix": args.prefix})
    except SettingsError as exc:
        print(f"atomfast consume: {exc}", file=sys.stderr)
        return 2
    source = args.source or ("kafka" if settings.kafka_bootstrap_servers else "files")
    if source == "kafka" and not settings.kafka_bootstrap_servers:
        print("atomfast consume: --from kafka needs KAFKA_BOOTSTRAP_SERVERS (or KAFKA_ENDPOINTS)", file=sys.stderr)
        return 2
    problems = Problems()
    printer = Printer(Output(), make_filter(args.exchange, args.symbol), args.max_messages)
    started = time.monotonic()
    with Stop() as stop:
        if source == "files":
            folder = Path(args.data_dir or settings.data_dir) / topic
            code = read_files(folder, topic, printer, problems, args.follow, stop, args.timeout)
        else:
            code = read_kafka(settings, args, printer, problems, stop)
    summary = (f"consume {topic} from {source}: {printer.output.printed} printed, "
               f"{printer.filtered} filtered out, {problems.total} skipped in {time.monotonic() - started:.2f} s")
    if problems.total:
        summary += " (" + ", ".join(f"{k}: {n}" for k, n in sorted(problems.counts.items())) + ")"
        log.warning("%s", summary)
    else:
        log.info("%s", summary)
    return code
