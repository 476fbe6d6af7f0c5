"""The raw topic, both ends: what ``run --raw`` publishes (:class:`RawTap`) and how ``atomfast
process`` turns it back into the normalised topics (:class:`RawProcessor`, :class:`Processor`).

L3 Atom ran collector -> ``raw`` -> processor -> Avro topics. atomfast normalises inline, and
``run --raw`` also publishes what it received, so that ``atomfast process`` workers can
produce the normalised topics from ``raw`` alone, byte for byte as inline normalisation does.

What the raw stream holds
-------------------------
One ``Raw`` record (``schemas/raw.avsc``) per thing the scheme saw, in the order it saw them:

- ``open``: a connection is up. ``data`` is the session description (JSON): the scheme class,
  the symbols and channels it was made with, this connection's plan (url, subscriptions) and
  the instrument listing as parsed at start (every instrument: native name, symbol, kind,
  base, quote, decimals, expiry). ``attach``: the same description for a connection the
  scheme was handed frames from without being told it opened (a replayed capture that
  recorded no connect).
- ``frame``: a websocket message, untouched (``binary``: a binary frame, or text that is not
  UTF-8, carried byte for byte as latin-1 code points).
- ``rest`` / ``rest_error``: the answer (or failure) of a REST request the scheme made on that
  connection (Binance book snapshots, open-interest polls), when it arrived.
- ``close``: the connection dropped (``data``: the reason); ``stop``: the collector stopped
  (``data``: the reason; on the first connection, which says ``stopped``); ``end``: the
  connection's part of the stream is over (the other connections at a stop, every connection
  at the end of a replayed capture).

Each record has the receive time in ns (``receive_ns``: exactly what the scheme was given),
the collector ``session`` (host-pid-random) and the ``connection`` number. The key is
``exchange:session/connection``: a connection's records stay in order in one partition.

Why per connection
------------------
A book is per market, and a market's subscription lives on one connection; the state a scheme
needs to read a frame is that connection's (Kraken v1's channelID -> pair mapping comes from
the ``subscriptionStatus`` frames of the same connection) plus the market's book, built from the
snapshot messages in the same stream. So the processor keeps one scheme instance per
(session, connection), made from the ``open`` record, fed that connection's records in order,
and dropped at ``stop``/``end`` (or after ``evict_after`` seconds of stream time without a
record: a collector that died without saying so). The outputs are the inline outputs: same
scheme code, same inputs, same receive times, same encoder: the same keys and value bytes.
(What this does not reproduce: a scheme whose state spans connections, e.g. one market's book
on two connections; none of ours does. Status events with symbol ``""`` of different
connections may interleave differently in the ``status`` topic.)

Consumer group, commits and rebuilds
------------------------------------
Workers share the partitions of ``raw`` in one consumer group (cooperative-sticky: a
rebalance moves only the partitions that change hands). A batch is read, processed, its
outputs flushed (every delivery report in), and only then are its offsets committed
(at-least-once). The commit's metadata holds the partition's *rebuild offset*: the offset of
the latest ``open`` of every connection still live in it. A worker that is given a partition
seeks to that offset and replays up to the committed offset with outputs discarded (those were
delivered by the previous owner), rebuilding channel maps and books; from the committed offset
on it publishes. A worker that dies is replaced by the group's rebalance this way.

Duplicates: the outputs of records processed after the last commit of a worker that died (or
lost its partitions, or whose commit failed) are published again by the next owner: at most
one batch per partition per failure (``--batch`` records). Consumers that need exactly-once
deduplicate on (topic, key, value).
Loss: none while the raw records are retained; if retention removed a connection's ``open``
before a rebuild, that connection's records are skipped (counted, logged) until its next
``open``: keep ``raw`` longer than a connection lives (they reconnect at least daily).
"""
from __future__ import annotations

import io
import json
import logging
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from .driver import FrameDriver
from .events import Raw
from .metrics import Metrics
from .scheme import ConnectionPlan, Instrument

if TYPE_CHECKING:
    from .pipeline import Pipeline
    from .scheme import Scheme

log = logging.getLogger("atomfast.processor")

RAW_TOPIC = "raw"
DESCRIPTION_VERSION = 1


def new_session_id() -> str:
    """host-pid-random: one per collector process run."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def raw_key(exchange: str, session: str, connection: int) -> bytes:
    return f"{exchange}:{session}/{connection}".encode()


def _text(data: bytes | bytearray | memoryview | str, binary: bool) -> tuple[str, bool]:
    """The payload as the record's text and its binary flag (non-UTF-8 text goes as binary)."""
    if isinstance(data, str):
        return data, False
    data = bytes(data)
    if not binary:
        try:
            return data.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return data.decode("latin-1"), True


def payload(record: Mapping[str, Any] | Raw) -> bytes:
    """The bytes a Raw record carries (as they were received)."""
    if isinstance(record, Raw):
        data, binary = record.data, record.binary
    else:
        data, binary = record["data"], record["binary"]
    return data.encode("latin-1" if binary else "utf-8")


# ------------------------------------------------------------------------------------------------
# collector side


class RawTap:
    """Writes what a scheme sees to the ``raw`` topic, through the pipeline's sink and encoder.

    The feed (``FeedGroup(raw=True)``) and replay (``Replay(raw=True)``) call it at each point
    where they hand something to the scheme, before the scheme sees it."""

    def __init__(self, pipeline: "Pipeline", scheme: "Scheme", session: str | None = None) -> None:
        self.pipeline = pipeline
        self.sink = pipeline.sink
        self.encoder = pipeline.encoder
        self.metrics = pipeline.metrics
        self.exchange = scheme.exchange
        self.session = session or new_session_id()
        cls = type(scheme)
        # what the scheme was made with: the listing as parsed at start (nothing guessed yet)
        self._description = {
            "v": DESCRIPTION_VERSION,
            "exchange": scheme.exchange,
            "scheme": cls.__name__,
            "symbols": list(scheme.symbols),
            "channels": list(scheme.channel_names),
            "instruments": [list(i) for i in scheme.instruments.values()],
        }
        self._keys: dict[int, bytes] = {}
        #: connections whose session description is in the stream (open or attach)
        self._announced: set[int] = set()
        #: the connection of the latest frame: where an answer that names none belongs (replay)
        self.last_conn: int = 0
        self.written = 0

    def _key(self, conn_id: int) -> bytes:
        key = self._keys.get(conn_id)
        if key is None:
            key = self._keys[conn_id] = raw_key(self.exchange, self.session, conn_id)
        return key

    def _write(self, conn_id: int, kind: str, url: str, data, recv_ns: int, binary: bool = False) -> None:
        text, binary = _text(data, binary)
        rec = Raw(self.exchange, "", self.session, conn_id, kind, url, binary, text, recv_ns,
                  recv_ns // 1_000_000, recv_ns // 1000)
        records = [rec]
        values = self.encoder.encode_many(RAW_TOPIC, records) if self.encoder is not None else None
        self.sink.write(RAW_TOPIC, records, [self._key(conn_id)], values)
        self.metrics.events[RAW_TOPIC] += 1
        self.written += 1

    def description(self, conn: Any, conn_id: int | None = None) -> str:
        plan = getattr(conn, "plan", None)
        subs = [[ch, list(natives)] for ch, natives in (plan.subscriptions if plan is not None else [])]
        desc = dict(self._description, connection=conn.id if conn is not None else conn_id,
                    url=getattr(conn, "url", ""), subscriptions=subs)
        return json.dumps(desc, separators=(",", ":"))

    def _announce(self, conn: Any, conn_id: int, recv_ns: int) -> None:
        """A connection the scheme got frames from without an open (a replayed capture that
        recorded no connect): its description, as ``attach`` (the processor makes its state
        without calling ``on_open``)."""
        self._announced.add(conn_id)
        self._write(conn_id, "attach", getattr(conn, "url", ""), self.description(conn, conn_id), recv_ns)

    # --- the points where the scheme is handed something -----------------------------------
    def open(self, conn: Any, recv_ns: int) -> None:
        self.last_conn = conn.id
        self._announced.add(conn.id)
        self._write(conn.id, "open", conn.url, self.description(conn), recv_ns)

    def frame(self, conn: Any, data, recv_ns: int, binary: bool = False) -> None:
        conn_id = self.last_conn = conn.id
        if conn_id not in self._announced:
            self._announce(conn, conn_id, recv_ns)
        self._write(conn_id, "frame", "", data, recv_ns, binary)

    def _conn_id(self, conn: Any | None, recv_ns: int) -> int:
        conn_id = self.last_conn if conn is None else conn.id
        if conn_id not in self._announced:
            self._announce(conn, conn_id, recv_ns)
        return conn_id

    def rest(self, conn: Any | None, url: str, body, recv_ns: int) -> None:
        self._write(self._conn_id(conn, recv_ns), "rest", url, body, recv_ns)

    def rest_error(self, conn: Any | None, url: str, exc: BaseException, recv_ns: int) -> None:
        text = json.dumps({"error": str(exc), "status": getattr(exc, "status", 0)})
        self._write(self._conn_id(conn, recv_ns), "rest_error", url, text, recv_ns)

    def close(self, conn: Any, reason: str, recv_ns: int) -> None:
        self._write(conn.id, "close", "", reason, recv_ns)

    def stop(self, reason: str, recv_ns: int, conn_ids: Iterable[int]) -> None:
        """The collector stopped: ``stop`` on the first connection (the processor says
        ``stopped`` once, as the feed does), ``end`` on the others."""
        for i, conn_id in enumerate(sorted(conn_ids)):
            self._write(conn_id, "stop" if i == 0 else "end", "", reason, recv_ns)

    def end(self, recv_ns: int, conn_ids: Iterable[int]) -> None:
        """The stream of these connections is over, nothing to say (end of a replay)."""
        for conn_id in sorted(conn_ids):
            self._write(conn_id, "end", "", "", recv_ns)


# ------------------------------------------------------------------------------------------------
# reading raw values


class RawDecoder:
    """Raw Kafka values (single-object, Confluent or bare Avro) -> dict, with fastavro."""

    def __init__(self) -> None:
        import fastavro

        from .avro import _strip_logical, fingerprint64, load_schemas

        schema = load_schemas()[RAW_TOPIC]
        self._schema = fastavro.parse_schema(_strip_logical(schema))
        self._fp = fingerprint64(schema).to_bytes(8, "little")
        self._read = fastavro.schemaless_reader

    def decode(self, value: bytes) -> dict:
        if value[:2] == b"\xc3\x01":
            if value[2:10] != self._fp:
                raise ValueError("a single-object value that is not a Raw record (fingerprint)")
            body = value[10:]
        elif value[:1] == b"\x00" and len(value) >= 5:
            body = value[5:]  # Confluent framing: our own raw schema, registered by the collector
        else:
            body = value
        stream = io.BytesIO(body)
        record = self._read(stream, self._schema, None)
        if stream.tell() != len(body):
            raise ValueError(f"{len(body) - stream.tell()} trailing bytes after a Raw record")
        return record  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------
# raw records -> schemes -> pipeline


class ProcessedConnection:
    """The Connection a scheme sees in the processor: what it sends, asks to reconnect or to
    fetch is what the collector did at the time; the answers are in the stream."""

    __slots__ = ("id", "url", "plan", "state", "sent", "reconnects", "fetches")

    def __init__(self, conn_id: int, url: str, plan: ConnectionPlan) -> None:
        self.id = conn_id
        self.url = url
        self.plan = plan
        self.state: dict = {}
        self.sent = 0
        self.reconnects = 0
        self.fetches = 0

    def send(self, message) -> None:
        self.sent += 1

    def reconnect(self, reason: str, abort: bool = False) -> None:
        self.reconnects += 1

    def fetch(self, url: str) -> None:
        self.fetches += 1


@dataclass
class ConnectionState:
    scheme: Any
    conn: ProcessedConnection
    partition: int
    open_offset: int
    last_ns: int  # receive time of its latest record (stream time)
    driver: Any = None  # the connection's FrameDriver (atomfast.driver)


def _rest_error(url: str, data: str):
    from .rest import RestError

    try:
        info = json.loads(data)
        text, status = str(info.get("error", data)), int(info.get("status", 0) or 0)
    except (ValueError, AttributeError, TypeError):
        text, status = data, 0
    exc = RestError.__new__(RestError)
    Exception.__init__(exc, text)
    exc.url, exc.status = url, status
    return exc


class RawProcessor:
    """Raw records -> the schemes of their connections -> the pipeline (no Kafka here).

    ``handle(record, live, partition, offset)``: ``live=False`` rebuilds state only (the
    outputs are discarded: the previous owner of the partition delivered them)."""

    def __init__(self, pipeline: "Pipeline", metrics: Metrics | None = None,
                 scheme_lookup: Callable[[str, str], type] | None = None,
                 evict_after: float = 600.0) -> None:
        self.pipeline = pipeline
        # a raw record's receive time is the collector's: receipt -> produce() latency is the
        # collector's measure (here it would be the record's age)
        pipeline.timed = False
        self.metrics = metrics if metrics is not None else pipeline.metrics
        self.states: dict[tuple[str, int], ConnectionState] = {}
        self._lookup = scheme_lookup or _scheme_class
        self.evict_after_ns = int(evict_after * 1e9)
        #: partition -> the newest receive time seen in it (stream time, for eviction)
        self.stream_ns: dict[int, int] = {}
        self.records = 0
        self.rebuilt = 0  # records processed with outputs discarded
        self.orphans = 0  # records of a connection whose open the processor never saw
        self.evicted = 0
        self._orphan_logged: set[tuple[str, int]] = set()

    # --- the records -----------------------------------------------------------------------
    def handle(self, rec: Mapping[str, Any], live: bool = True, partition: int = 0, offset: int = -1) -> None:
        self.records += 1
        if not live:
            self.rebuilt += 1
        key = (rec["session"], rec["connection"])
        kind = rec["kind"]
        recv_ns = rec["receive_ns"]
        if recv_ns > self.stream_ns.get(partition, 0):
            self.stream_ns[partition] = recv_ns
        st = self.states.get(key)
        pipeline = self.pipeline
        if kind == "open" or kind == "attach":
            if st is None:
                st = self._make(rec, partition, offset)
                if st is None:
                    return
            elif kind == "open":
                st.conn.state.clear()
                st.conn.url = rec["url"]
                st.open_offset = offset
                st.partition = partition
            st.last_ns = recv_ns
            if kind == "open":
                st.driver.open(st.conn, recv_ns, live)
            return
        if st is None:
            self._orphan(key, rec)
            return
        st.last_ns = recv_ns
        driver = st.driver
        if kind == "frame":
            if live:
                driver.frame(st.conn, payload(rec), recv_ns)
            else:
                data = payload(rec)
                self.metrics.frames += 1
                self.metrics.bytes += len(data)
                driver.apply(st.conn, data, recv_ns)
        elif kind == "rest":
            driver.rest(st.conn, rec["url"], payload(rec), recv_ns, live)
        elif kind == "rest_error":
            driver.rest_error(st.conn, rec["url"], _rest_error(rec["url"], rec["data"]), recv_ns, live)
        elif kind == "close":
            driver.close(st.conn, rec["data"], recv_ns, live)
        elif kind == "stop":
            driver.status("", "stopped", rec["data"], recv_ns, live)
            del self.states[key]
        elif kind == "end":
            del self.states[key]
        else:
            self.metrics.errors.report("raw: unknown kind", f"{kind!r} from {key}")

    def _make(self, rec: Mapping[str, Any], partition: int, offset: int) -> ConnectionState | None:
        try:
            desc = json.loads(rec["data"])
            cls = self._lookup(desc.get("exchange") or rec["exchange"], desc["scheme"])
            instruments = {i[0]: Instrument(*i) for i in desc.get("instruments", [])}
            scheme = cls(self.pipeline.emit, self.metrics, instruments, desc.get("symbols", ()),
                         desc.get("channels", ()))
            subs = [(ch, list(natives)) for ch, natives in desc.get("subscriptions", [])]
        except Exception as exc:  # noqa: BLE001 - a description this worker cannot use
            self.metrics.errors.report("raw: unusable open record",
                                       f"{rec['exchange']} {rec['session']}/{rec['connection']}: "
                                       f"{type(exc).__name__}: {exc}")
            return None
        conn = ProcessedConnection(rec["connection"], rec["url"], ConnectionPlan(rec["url"], subs))
        st = ConnectionState(scheme, conn, partition, offset, rec["receive_ns"], FrameDriver(scheme, self.pipeline))
        self.states[(rec["session"], rec["connection"])] = st
        return st

    def _orphan(self, key: tuple[str, int], rec: Mapping[str, Any]) -> None:
        self.orphans += 1
        if key not in self._orphan_logged:
            self._orphan_logged.add(key)
            self.metrics.errors.report(
                "raw: no open record",
                f"{rec['exchange']} {key[0]}/{key[1]}: a {rec['kind']} record of a connection whose "
                "open record this worker never saw (removed by retention?): skipped until its next open")

    # --- partitions ------------------------------------------------------------------------
    def evict(self, partition: int) -> int:
        """Drop the connections of ``partition`` silent for ``evict_after`` of stream time (a
        collector that died without ``stop``): they no longer hold the rebuild offset back."""
        now = self.stream_ns.get(partition, 0)
        gone = [k for k, st in self.states.items()
                if st.partition == partition and now - st.last_ns > self.evict_after_ns]
        for k in gone:
            del self.states[k]
            log.info("connection %s/%d: no record for %.0fs of stream time: forgotten", k[0], k[1],
                     self.evict_after_ns / 1e9)
        self.evicted += len(gone)
        return len(gone)

    def rebuild_offset(self, partition: int, next_offset: int) -> int:
        """Where a new owner of ``partition`` must start to rebuild every live connection."""
        opens = [st.open_offset for st in self.states.values() if st.partition == partition]
        return min([next_offset, *opens])

    def drop_partition(self, partition: int) -> None:
        for k in [k for k, st in self.states.items() if st.partition == partition]:
            del self.states[k]
        self.stream_ns.pop(partition, None)


def _scheme_class(exchange: str, name: str) -> type:
    from .exchanges import schemes

    options = schemes().get(exchange)
    if not options:
        raise KeyError(f"unknown exchange {exchange!r}")
    for cls in options:
        if cls.__name__ == name:
            return cls
    raise KeyError(f"{exchange}: no scheme {name!r} in this build ({', '.join(c.__name__ for c in options)})")


def process_records(records: Iterable[Mapping[str, Any] | Raw], sink, metrics: Metrics | None = None) -> RawProcessor:
    """Raw records (dicts or ``Raw`` tuples) through a processor into ``sink``, then close it:
    the offline equivalent of ``atomfast process`` (tests, tools)."""
    from .pipeline import Pipeline

    pipeline = Pipeline(sink, metrics)
    core = RawProcessor(pipeline)
    for offset, rec in enumerate(records):
        if isinstance(rec, Raw):
            rec = rec._asdict()
        core.handle(rec, True, 0, offset)
    pipeline.close()
    return core


# ------------------------------------------------------------------------------------------------
# the Kafka worker


@dataclass
class ProcessorOptions:
    group: str = "atomfast-process"
    input_prefix: str = ""
    output_prefix: str = ""
    batch: int = 2000
    poll_timeout: float = 0.5
    idle_timeout: float | None = None  # stop after this long without a raw record (once assigned)
    session_timeout_ms: int = 10000
    evict_after: float = 600.0
    consumer_overrides: dict = field(default_factory=dict)


class ProcessorError(RuntimeError):
    pass


class Processor:
    """One ``atomfast process`` worker: consumes ``<input_prefix>raw`` in a consumer group,
    publishes the normalised topics under ``output_prefix``; commits after delivery."""

    def __init__(self, settings: Any, options: ProcessorOptions, metrics: Metrics | None = None,
                 sink: Any = None) -> None:
        from confluent_kafka import Consumer

        from .pipeline import Pipeline

        self.settings = settings
        self.options = options
        self.metrics = metrics if metrics is not None else Metrics()
        if sink is None:
            from .sinks import all_topics, make_kafka_sink

            sink = make_kafka_sink(settings, self.metrics, topic_prefix=options.output_prefix,
                                   topics=[t for t in all_topics() if t != RAW_TOPIC], policy="block")
        self.sink = sink
        self.pipeline = Pipeline(sink, self.metrics)
        self.core = RawProcessor(self.pipeline, self.metrics, evict_after=options.evict_after)
        self.decoder = RawDecoder()
        self.topic = options.input_prefix + RAW_TOPIC
        self.consumer = Consumer(self._consumer_config())
        #: partitions we own -> offset below which outputs are discarded (rebuild)
        self.replay_until: dict[int, int] = {}
        #: partitions we own -> next offset to commit (after the current batch is delivered)
        self.next_offset: dict[int, int] = {}
        self.committed: dict[int, int] = {}
        self.consumed = 0
        self.commits = 0
        self.rebalances = 0
        self.undecodable = 0
        self.stopping = False
        self.stop_reason = ""
        self._last_input = time.monotonic()

    def _consumer_config(self) -> dict:
        return consumer_config(self.settings, self.options)

    # --- rebalance callbacks (called from consume(), between batches) -------------------------
    def _on_assign(self, consumer, partitions) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        self.rebalances += 1
        self._last_input = time.monotonic()  # the idle timeout counts from an assignment
        if not partitions:
            consumer.incremental_assign(partitions)
            return
        try:
            committed = consumer.committed(partitions, timeout=30)
        except KafkaException as exc:
            log.error("process: cannot read the committed offsets of %s: %s", partitions, exc)
            committed = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        starts = []
        for tp in committed:
            p = tp.partition
            self.core.drop_partition(p)
            if tp.offset is None or tp.offset < 0:
                start, until = -2, -1  # OFFSET_BEGINNING: nothing published yet
            else:
                until = tp.offset
                start = until
                try:
                    meta = json.loads(tp.metadata or "{}")
                    start = min(until, int(meta.get("rebuild", until)))
                except (ValueError, TypeError, AttributeError):
                    pass
            self.replay_until[p] = until
            self.committed[p] = until
            starts.append(TopicPartition(tp.topic, p, start))
            log.info("process: partition %d assigned: %s", p,
                     "from the beginning" if start == -2 else
                     f"rebuilding from offset {start}, publishing from {until}")
        consumer.incremental_assign(starts)

    def _on_revoke(self, consumer, partitions) -> None:
        self.rebalances += 1
        for tp in partitions:
            self.core.drop_partition(tp.partition)
            self.replay_until.pop(tp.partition, None)
            self.next_offset.pop(tp.partition, None)
            self.committed.pop(tp.partition, None)
        if partitions:
            log.info("process: partitions %s revoked", sorted(tp.partition for tp in partitions))

    _on_lost = _on_revoke

    # --- the loop ------------------------------------------------------------------------------
    def stop(self, reason: str = "stopped") -> None:
        self.stopping = True
        self.stop_reason = self.stop_reason or reason

    def run(self) -> str:
        from confluent_kafka import KafkaError

        consumer = self.consumer
        consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                           on_lost=self._on_lost)
        decode = self.decoder.decode
        handle = self.core.handle
        self._last_input = time.monotonic()
        opts = self.options
        try:
            while not self.stopping:
                messages = consumer.consume(opts.batch, opts.poll_timeout)
                touched: set[int] = set()
                for m in messages:
                    err = m.error()
                    if err is not None:
                        if err.fatal():
                            raise ProcessorError(f"consumer: {err.name()}: {err.str()}")
                        if err.code() != KafkaError._PARTITION_EOF:
                            self.metrics.errors.report("kafka consumer error", f"{err.name()}: {err.str()}")
                        continue
                    p = m.partition()
                    until = self.replay_until.get(p)
                    if until is None:
                        continue  # revoked meanwhile
                    offset = m.offset()
                    self.consumed += 1
                    try:
                        rec = decode(m.value())
                    except Exception as exc:  # noqa: BLE001 - not a Raw record: counted, skipped
                        self.undecodable += 1
                        self.metrics.errors.report("raw: undecodable value",
                                                   f"partition {p} offset {offset}: {type(exc).__name__}: {exc}")
                    else:
                        handle(rec, offset >= until, p, offset)
                    self.next_offset[p] = offset + 1
                    touched.add(p)
                if messages:
                    self._last_input = time.monotonic()
                    self._deliver_and_commit(touched)
                else:
                    self.sink.poll()
                    if (opts.idle_timeout is not None and self.replay_until
                            and time.monotonic() - self._last_input > opts.idle_timeout):
                        self.stop(f"no raw records for {opts.idle_timeout:g}s")
        finally:
            self._close()
        return self.stop_reason or "stopped"

    def _deliver_and_commit(self, touched: set[int]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        failed_before = self.sink.stats().get("failed_total", 0)
        while True:
            remaining = self.sink.flush(5.0)
            if not remaining:
                break
            log.warning("process: %d output message(s) still undelivered: waiting for the broker "
                        "before committing", remaining)
        failed = self.sink.stats().get("failed_total", 0) - failed_before
        if failed:
            # outputs of this batch were lost: its offsets must not be committed. Stop; the group
            # gives our partitions to another worker, which starts again at the last commit.
            raise ProcessorError(f"{failed} output message(s) could not be delivered (see the log): "
                                 "stopping without committing this batch")
        offsets = []
        for p in touched:
            if p not in self.replay_until:
                continue
            self.core.evict(p)
            nxt = self.next_offset[p]
            meta = json.dumps({"rebuild": self.core.rebuild_offset(p, nxt)}, separators=(",", ":"))
            offsets.append(TopicPartition(self.topic, p, nxt, metadata=meta))
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # e.g. the partitions moved meanwhile: the next owner starts at the previous commit
            self.metrics.errors.report("commit failed", str(exc))
            return
        self.commits += 1
        for tp in offsets:
            self.committed[tp.partition] = tp.offset

    def _close(self) -> None:
        try:
            self.consumer.close()  # leaves the group: the others take our partitions at once
        except Exception:  # noqa: BLE001
            pass
        try:
            self.pipeline.close()
        except Exception as exc:  # noqa: BLE001
            log.error("process: closing the output sink: %s", exc)

    def summary(self) -> dict:
        out = self.metrics.summary()
        out.update({
            "consumed": self.consumed,
            "rebuilt": self.core.rebuilt,
            "orphans": self.core.orphans,
            "undecodable": self.undecodable,
            "commits": self.commits,
            "rebalances": self.rebalances,
            "connections": len(self.core.states),
            "stopped": self.stop_reason,
        })
        return out


def consumer_config(settings: Any, options: ProcessorOptions) -> dict:
    """The processor's consumer: manual commits after delivery, cooperative rebalancing, the
    settings' SASL (KAFKA_SASL_KEY/SECRET, PLAIN or SCRAM over SSL) as the producer uses."""
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "group.id": options.group,
        "client.id": "atomfast-process",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": options.session_timeout_ms,
        "heartbeat.interval.ms": max(500, options.session_timeout_ms // 5),
        # flushing a batch's outputs waits for the broker: a long outage may exceed it, and
        # then the group moves our partitions (at-least-once either way)
        "max.poll.interval.ms": 600_000,
        "fetch.max.bytes": 64 * 1024 * 1024,
        "logger": _QuietLog(),
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
    conf.update(options.consumer_overrides)
    return conf


class _QuietLog:
    _log = logging.getLogger("atomfast.process.librdkafka")

    def log(self, level: int, msg: str, *args: Any) -> None:
        if self._log.isEnabledFor(logging.DEBUG):
            self._log.debug("%s", msg % args if args else msg)


__all__ = [
    "RAW_TOPIC",
    "ConnectionState",
    "ProcessedConnection",
    "Processor",
    "ProcessorError",
    "ProcessorOptions",
    "RawDecoder",
    "RawProcessor",
    "RawTap",
    "new_session_id",
    "payload",
    "consumer_config",
    "process_records",
    "raw_key",
]
