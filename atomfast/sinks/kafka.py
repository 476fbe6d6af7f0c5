"""Kafka sink: confluent-kafka producer, batched, idempotent, never dropping.

Producer rules (DESIGN.md, "Kafka"): idempotent (``enable.idempotence=true``), ``acks=all``,
lz4 (or zstd / none) compression, linger and batch tuned for throughput,
``partitioner=murmur2_random`` (Java clients pick the same partition for a key), message key
``exchange:symbol``. A full local queue is back-pressure: :meth:`KafkaSink.write` polls and
retries the same message until it fits (counted in ``backpressure_waits``), it never drops one.
Delivery reports are counted per topic; every failure is logged with its reason, rate-limited
(the first of each reason at once, then a count every ``log_interval`` seconds).

Secrets (``sasl.password``, ``sasl.username`` i.e. the API key, any ``*password*`` /
``*secret*`` property) are kept in :class:`Secret` wrappers and scrubbed from every log line
and exception message the sink produces; ``repr()`` shows none of them.

When the broker is gone longer than the local queue can hold (``produce`` keeps failing for
``stall_timeout`` seconds), the sink says so loudly, a log line at ERROR and a ``status``
event (``backpressure`` or ``spilling``, symbol ``""``, for each exchange whose events wait),
then applies ``policy``:

- ``block`` (default): :meth:`write` keeps waiting (polling and retrying) until the broker
  takes messages again: the feed stops reading its websockets meanwhile, and its connections
  may be dropped by the exchange (the books then reload from fresh snapshots). A reminder is
  logged every ``log_interval`` seconds.
- ``spill``: every event goes to a :class:`~atomfast.sinks.files.FileSink` under
  ``spill_dir`` (the data lake layout: ``consume --from files`` reads it) until the local
  queue has drained below half, then Kafka again. Messages still queued when the sink is
  closed without a broker are taken back from librdkafka (purged) and spilled too.

Either way a ``recovered`` status event follows, with how long it lasted and how many events
were spilled. Messages never expire in the local queue (``message.timeout.ms=0``): only the
policy decides, nothing is dropped by a timer.

The producer is compiled (``KafkaProducer`` in ``native/frame/_kafka.pxi``): it drives the
librdkafka that confluent-kafka ships, a topic's batch of a frame in one call, and counts the
delivery reports in C (per topic, and the last offset and timestamp per partition). Python is
called back only for a failure, a client error or a log line. confluent-kafka itself serves
the admin client (and the consumers elsewhere).

Delivery latency: pass ``latency`` (a :class:`~atomfast.metrics.LatencyHistogram`) and every
delivery report records the time librdkafka measured from ``produce()`` to the broker's
acknowledgement; pass ``receipt_latency`` and it records the time from the frame's receipt
(:meth:`KafkaSink.note_receipt`, called by the pipeline before a live frame's writes) to the
delivery report, per message.
"""
from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import confluent_kafka
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from .._frame import KafkaProducer, error_name, error_text, load_librdkafka
from .base import Framing

if TYPE_CHECKING:
    from ..metrics import LatencyHistogram
    from ..book import AvroRows

__all__ = [
    "KafkaSink",
    "KafkaSinkError",
    "Secret",
    "DEFAULT_PRODUCER_CONFIG",
    "SASL_MECHANISMS",
    "POLICIES",
    "RAW_TOPIC_CONFIG",
]

log = logging.getLogger(__name__)
_rdlog = logging.getLogger(__name__ + ".librdkafka")

FRAMINGS = ("single_object", "confluent", "none")
#: what write() does when the broker is gone longer than the local queue can hold
POLICIES = ("block", "spill")
#: the raw topic holds whole websocket frames (up to a scheme's max_frame_bytes, 8 MiB) and
#: session descriptions: its batches may exceed the broker's 1 MiB default
RAW_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
RAW_TOPIC_CONFIG = {"max.message.bytes": str(RAW_MAX_MESSAGE_BYTES + 65536)}
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
COMPRESSION = ("lz4", "zstd", "none", "gzip", "snappy")

#: Producer defaults. The first three are the design's guarantees and cannot be overridden.
#: The throughput knobs were settled by bench/bench_kafka.py (and a sweep of linger.ms 0..50 x
#: none/lz4/zstd) against a local broker, with the Kraken book capture's events (60-byte
#: values, 2.5 per frame):
#: - linger.ms 5 (librdkafka's default since 1.5, and Java's since Kafka 4.0; Java's was 0):
#:   at 20k events/s the delivery latency p50 is ~6 ms with 5 ms, ~2.5 ms with 1 ms and ~11 ms
#:   with 10 ms, while 5 ms makes 2.6x fewer produce requests than 1 ms (5x fewer than 0) and
#:   costs ~4% more bytes on the wire than 10 ms. Market data is latency-sensitive: 5 ms.
#: - compression lz4: 84 -> 27 bytes per event on the wire (3.1x) for ~0.3 us of CPU per event;
#:   zstd gives 19 bytes (4.4x) for ~0.5 us more: set KAFKA_COMPRESSION=zstd where the link
#:   or the hosted cluster's bill is the limit.
#: - batch.size 1 MiB / batch.num.messages 20000 (librdkafka's 1 MB / 10000; Java's batch.size
#:   is 16 KiB, which would cut a book snapshot into ~270-event requests): linger fills
#:   batches first at normal rates; the bounds keep requests large in a snapshot burst.
#: - queue.buffering.max.messages 500000 (~50 MB of records): a burst or a broker fail-over
#:   of many seconds before write() meets a full queue and the back-pressure policy.
#: - message.timeout.ms 0: a message waits in the queue until it is delivered (librdkafka's
#:   default would drop it after 5 minutes): only the policy decides what happens when the
#:   broker stays away (block, or spill to local files), never a timer.
#: - message.max.bytes 16 MiB + 64 KiB: a whole websocket frame (raw topic) fits.
DEFAULT_PRODUCER_CONFIG: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "partitioner": "murmur2_random",
    "compression.type": "lz4",
    "linger.ms": 5,
    "batch.size": 1_048_576,
    "batch.num.messages": 20_000,
    "queue.buffering.max.messages": 500_000,
    "message.timeout.ms": 0,
    "message.max.bytes": RAW_MAX_MESSAGE_BYTES + 65536,
    "client.id": "atomfast",
}
_FIXED = {"enable.idempotence": True, "acks": "all", "partitioner": "murmur2_random"}
_FIXED_ACCEPT = {  # equivalent spellings a caller may pass
    "enable.idempotence": {True, "true", "True", 1, "1"},
    "acks": {"all", "-1", -1},
    "partitioner": {"murmur2_random"},
}


class KafkaSinkError(RuntimeError):
    """Configuration or admin failure of the Kafka sink (message free of secrets)."""


class Secret:
    """A string that does not show itself: ``repr``/``str`` give ``'***'``."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = str(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):
        raise TypeError("a Secret is not picklable")


def _is_secret_key(name: str) -> bool:
    n = name.lower()
    return (
        "password" in n
        or "secret" in n
        or n == "sasl.username"
        or n.endswith(".pem")
        or n == "sasl.oauthbearer.config"
    )


class _Redactor:
    """Replaces every secret value in a text with ``***``."""

    def __init__(self, secrets: Iterable[str]):
        # Longest first, so that a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: object) -> str:
        text = str(text)
        for s in self._secrets:
            if s in text:
                text = text.replace(s, "***")
        return text


class _RdkafkaLogger:
    """librdkafka's log lines (``logger`` config) into Python logging, scrubbed of secrets."""

    def __init__(self, redact: _Redactor):
        self._redact = redact

    #: syslog levels (librdkafka's) -> logging levels, as confluent-kafka maps them
    LEVELS = (logging.CRITICAL, logging.CRITICAL, logging.CRITICAL, logging.ERROR, logging.WARNING,
              logging.INFO, logging.INFO, logging.DEBUG)

    def line(self, level: int, facility: str, text: str) -> None:
        """A log line of the native producer (syslog ``level``)."""
        self.log(self.LEVELS[min(max(level, 0), 7)], "%s [producer] %s", facility, text)

    def log(self, level: int, msg: str, *args: Any) -> None:
        # args are (facility, client name, text). FAIL lines repeat what error_cb reports
        # (rate-limited there): they go to DEBUG so that a dead broker does not flood the log.
        if args and args[0] == "FAIL" and level > logging.DEBUG:
            level = logging.DEBUG
        if _rdlog.isEnabledFor(level):
            _rdlog.log(level, "%s", self._redact(msg % args if args else msg))


class _RateLimitedLog:
    """The first event of each reason logged at once; then a count every ``interval`` seconds."""

    def __init__(self, logger: logging.Logger, level: int, what: str, interval: float):
        self._log = logger
        self._level = level
        self._what = what
        self.interval = interval
        self.totals: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self._last_text: dict[str, str] = {}
        self._last_report = time.monotonic()

    def event(self, reason: str, text: str = "") -> None:
        """One event of ``reason`` (a stable key: the error code's name); ``text`` tells the
        particulars (varying from one event to the next), shown with the first and the last."""
        n = self.totals.get(reason, 0)
        self.totals[reason] = n + 1
        self._last_text[reason] = text
        if n == 0:
            self._log.log(self._level, "%s: %s%s", self._what, reason, text)
        else:
            self._pending[reason] = self._pending.get(reason, 0) + 1
            self.maybe_report()

    def maybe_report(self, force: bool = False) -> None:
        if not self._pending:
            return
        now = time.monotonic()
        if not force and now - self._last_report < self.interval:
            return
        for reason, count in self._pending.items():
            self._log.log(
                self._level,
                "%s: %d more x %s in the last %.0fs, %d in all (latest%s)",
                self._what, count, reason, now - self._last_report, self.totals[reason],
                self._last_text.get(reason) or "",
            )
        self._pending.clear()
        self._last_report = now


class KafkaSink:
    """Publishes encoded events to Kafka: one topic per event type, key ``exchange:symbol``.

    ``config`` is a librdkafka configuration (``bootstrap.servers`` at least); it is laid over
    :data:`DEFAULT_PRODUCER_CONFIG`. ``framing`` says how the values given to :meth:`write` are
    framed: ``"single_object"`` (default, no registry) or ``"confluent"`` (registry schema ids).
    ``topic_prefix`` is put in front of every topic name, in :meth:`write` and
    :meth:`ensure_topics` alike; :meth:`stats` reports the topics as named on the broker.
    ``schema_ids`` (topic -> Schema Registry id, confluent framing) is what the pipeline's
    encoder frames values with (``Pipeline`` reads ``sink.schema_ids``).

    ``policy`` (``block`` or ``spill``), ``spill_dir`` and ``stall_timeout``: what happens when
    the local queue stays full (module docstring).
    """

    #: it publishes the encoded values; records (when given) only serve the spill files
    records_needed = False

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        topic_prefix: str = "",
        framing: Framing = "single_object",
        schema_ids: Mapping[str, int] | None = None,
        latency: "LatencyHistogram | None" = None,
        receipt_latency: "LatencyHistogram | None" = None,
        log_interval: float = 10.0,
        policy: str = "block",
        spill_dir: str | os.PathLike | None = None,
        stall_timeout: float = 2.0,
    ):
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, not {framing!r}")
        if framing == "confluent" and not schema_ids:
            # values may be framed by the caller (tests, tools); status events need the ids
            schema_ids = None
        policy = (policy or "block").strip().lower()
        if policy not in POLICIES:
            raise KafkaSinkError(f"buffer policy must be one of {POLICIES}, not {policy!r}")
        if policy == "spill" and not spill_dir:
            raise KafkaSinkError("the spill policy needs a directory for the local files (spill_dir)")
        conf: dict[str, Any] = dict(DEFAULT_PRODUCER_CONFIG)
        for key, value in config.items():
            if isinstance(value, Secret):
                conf[key] = value
            elif _is_secret_key(key) and value is not None:
                conf[key] = Secret(value)
            else:
                conf[key] = value
        on_stats = conf.pop("stats_cb", None)  # librdkafka's statistics JSON: called from poll()
        callbacks = sorted(k for k, v in conf.items() if callable(v) and not isinstance(v, Secret))
        if callbacks:  # confluent-kafka's Python hooks: the compiled producer calls none
            raise KafkaSinkError(
                f"{', '.join(callbacks)}: a Python callback in the producer settings is not supported (the "
                "producer is compiled; delivery counts, errors and librdkafka's log lines come through the sink)")
        for key in ("compression.codec",):  # the alias would fight our compression.type
            if key in conf:
                conf["compression.type"] = conf.pop(key)
        if conf.get("compression.type") not in COMPRESSION:
            raise KafkaSinkError(
                f"compression.type must be one of {COMPRESSION}, not {conf.get('compression.type')!r}"
            )
        for key, accepted in _FIXED_ACCEPT.items():
            if conf.get(key) not in accepted:
                raise KafkaSinkError(
                    f"{key}={conf.get(key)!r} breaks the sink's guarantees; it is always {_FIXED[key]!r}"
                )
            conf[key] = _FIXED[key]
        if not conf.get("bootstrap.servers"):
            raise KafkaSinkError("bootstrap.servers is required (KAFKA_BOOTSTRAP_SERVERS)")
        # A batch can never hold more than the queue: keep the two settings consistent (a
        # small queue is how the tests provoke back-pressure).
        qmax = int(conf.get("queue.buffering.max.messages", 100_000))
        if int(conf.get("batch.num.messages", 10_000)) > qmax:
            conf["batch.num.messages"] = qmax
        self._queue_max = qmax

        self.framing: Framing | None = framing
        self.schema_ids: dict[str, int] | None = dict(schema_ids) if schema_ids else None
        self.topic_prefix = topic_prefix
        self.policy = policy
        self.spill_dir = Path(spill_dir) if spill_dir else None
        self.stall_timeout = float(stall_timeout)
        self._log_interval = log_interval
        self._state = "ok"
        self._stall_since = 0.0  # monotonic time the current episode began
        self._stall_wall_ns = 0  # its wall-clock time (for the status events)
        self._stall_reminder = 0.0
        self._stall_exchanges: set[str] = set()
        self._spill: Any = None  # the FileSink, created when first needed
        self._spilled = 0  # events written to the spill files, in all
        self._spilled_episode = 0
        self._episodes = 0
        self._pending_status: list[tuple[str, bytes, bytes]] = []  # (topic, key, value) to produce
        self._status_encoder: Any = None
        self._purging = False
        self._conf = conf
        self._redact = _Redactor(v.reveal() for v in conf.values() if isinstance(v, Secret))
        self._failures = _RateLimitedLog(log, logging.ERROR, "kafka delivery failed", log_interval)
        self._errors = _RateLimitedLog(log, logging.WARNING, "kafka client error", log_interval)
        self._topics: dict[str, int] = {}  # topic (unprefixed) -> the producer's topic number
        self._failed: dict[str, int] = {}  # delivered counts are the producer's
        self._failed_total = 0
        self.backpressure_waits = 0
        self.__closed = False
        self._admin: AdminClient | None = None
        producer_conf = self._client_config(conf)
        rdlog = producer_conf.pop("logger")
        _load_librdkafka()
        self._producer = self._make(
            lambda c: KafkaProducer(c, self._on_failure, self._on_error, rdlog.line, latency, receipt_latency,
                                    on_stats),
            producer_conf)
        # Hot path: write and note_receipt are the compiled producer's (KafkaProducer.write:
        # the batch produced and the reports that are in served, in C); what it does not take
        # (a new topic, the spill mode, a closed sink, a full queue) comes back to the methods
        # below
        self._poll = self._producer.poll
        self._producer.bind_sink(self._write, self._write_queue_full, self.key_partition)
        self.write = self._producer.write  # type: ignore[method-assign]
        self.write_rows = self._producer.write_rows  # type: ignore[method-assign]
        self.note_receipt = self._producer.note_receipt  # type: ignore[method-assign]

    #: "ok", "blocked" (write() waits for room) or "spilling" (events go to local files)
    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        self._state = value
        self._divert()

    @property
    def _closed(self) -> bool:
        return self.__closed

    @_closed.setter
    def _closed(self, value: bool) -> None:
        self.__closed = value
        self._divert()

    def _divert(self) -> None:
        """The compiled write hands every write to the Python one while spilling or closed."""
        producer = getattr(self, "_producer", None)
        if producer is not None and producer.slow_write is not None:
            producer.diverted = self.__closed or self._state == "spilling"

    # ---------------------------------------------------------------------------------------
    # construction

    @classmethod
    def from_settings(
        cls,
        bootstrap: str,
        sasl_key: str | None = None,
        sasl_secret: str | None = None,
        sasl_mechanism: str = "PLAIN",
        topic_prefix: str = "",
        *,
        framing: Framing = "single_object",
        schema_ids: Mapping[str, int] | None = None,
        latency: "LatencyHistogram | None" = None,
        receipt_latency: "LatencyHistogram | None" = None,
        log_interval: float = 10.0,
        policy: str = "block",
        spill_dir: str | os.PathLike | None = None,
        stall_timeout: float = 2.0,
        **overrides: Any,
    ) -> "KafkaSink":
        """The sink from the deployment settings (KAFKA_BOOTSTRAP_SERVERS, KAFKA_SASL_KEY,
        KAFKA_SASL_SECRET). With a key and secret: ``SASL_SSL`` with ``sasl_mechanism``
        (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512). ``overrides`` are librdkafka properties, either
        spelled with dots (``**{"linger.ms": 5}``) or with underscores (``linger_ms=5``)."""
        if not bootstrap:
            raise KafkaSinkError("no Kafka bootstrap servers given (KAFKA_BOOTSTRAP_SERVERS)")
        config: dict[str, Any] = {"bootstrap.servers": bootstrap}
        if sasl_key or sasl_secret:
            if not (sasl_key and sasl_secret):
                raise KafkaSinkError(
                    "SASL needs both KAFKA_SASL_KEY and KAFKA_SASL_SECRET; only "
                    + ("the key" if sasl_key else "the secret")
                    + " is set"
                )
            mechanism = (sasl_mechanism or "PLAIN").upper()
            if mechanism not in SASL_MECHANISMS:
                raise KafkaSinkError(
                    f"SASL mechanism must be one of {SASL_MECHANISMS}, not {sasl_mechanism!r}"
                )
            config.update(
                {
                    "security.protocol": "SASL_SSL",
                    "sasl.mechanisms": mechanism,
                    "sasl.username": Secret(sasl_key),
                    "sasl.password": Secret(sasl_secret),
                }
            )
            try:  # the CA bundle of the certifi package, unless the caller gives one
                import certifi

                config["ssl.ca.location"] = certifi.where()
            except ImportError:  # pragma: no cover
                pass
        for key, value in overrides.items():
            config[key if "." in key else key.replace("_", ".")] = value
        return cls(
            config,
            topic_prefix=topic_prefix,
            framing=framing,
            schema_ids=schema_ids,
            latency=latency,
            receipt_latency=receipt_latency,
            log_interval=log_interval,
            policy=policy,
            spill_dir=spill_dir,
            stall_timeout=stall_timeout,
        )

    def _client_config(self, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``base`` (or the connection part of our config) with secrets revealed, plus our
        scrubbing logger."""
        if base is None:
            base = {
                k: v
                for k, v in self._conf.items()
                if k == "bootstrap.servers"
                or k.startswith(("security.", "sasl.", "ssl.", "client.", "socket.", "broker."))
                or k in ("debug",)
            }
        out = {k: (v.reveal() if isinstance(v, Secret) else v) for k, v in base.items()}
        out["logger"] = _RdkafkaLogger(self._redact)
        return out

    def _make(self, factory: Callable[[dict], Any], conf: dict) -> Any:
        try:
            return factory(conf)
        except (KafkaException, ValueError, TypeError) as e:
            problem = self._redact(_describe(e))
        # Raised outside the handler, so the original (whose text may quote a secret value)
        # is not even kept as __context__.
        raise KafkaSinkError(f"invalid Kafka client configuration: {problem}")

    # ---------------------------------------------------------------------------------------
    # Sink protocol

    def write(
        self,
        topic: str,
        records: Sequence[tuple],
        keys: Sequence[bytes],
        values: Sequence[bytes] | None,
    ) -> None:
        """Produce ``values`` to ``topic`` (prefixed), keyed by ``keys``. Blocks while the local
        queue is full (back-pressure), serving delivery reports meanwhile; never drops.
        (An instance's ``write`` is the compiled ``KafkaProducer.write``, which does the same
        and calls this for what it does not take.)"""
        self._write(topic, records, keys, values)

    def write_rows(self, topic: str, rows: "AvroRows") -> None:
        """A frame's events of ``topic`` as Avro values in one buffer (``atomfast.book.AvroRows``,
        written by the book and the typed writers): produced from the buffer, one message each,
        as ``write`` produces a list. (An instance's ``write_rows`` is the compiled
        ``KafkaProducer.write_rows``, which gives what it does not take to ``_write``.)"""
        keys, values = rows.take()
        self._write(topic, (), keys, values)

    def _write(self, topic: str, records: Sequence[tuple], keys: Sequence[bytes],
               values: Sequence[bytes] | None) -> None:
        if values is None:
            raise TypeError("KafkaSink publishes encoded values: values must not be None")
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys for {len(values)} values on topic {topic!r}")
        if self._closed:
            raise KafkaSinkError("write() on a closed KafkaSink")
        if self.state == "spilling":
            if self._spilling(topic, records, keys, values):
                return
            self._recovered()
        number = self._topics.get(topic)
        if number is None:
            number = self._topic(topic)
        if type(keys) is not list:
            keys = list(keys)
        if type(values) is not list:
            values = list(values)
        i = self._producer.produce(number, keys, values, 0, self._producer.receipt_ns, self.key_partition)
        if i < len(values):
            self._write_queue_full(topic, number, records, keys, values, i)
            return
        # serve the delivery reports that are in: without this they wait for the feed's next
        # housekeeping poll (every 100 ms), which is what produce -> delivery then measures
        # (57-65 ms p50 instead of 9-12 ms: bench/latency.py)
        self._poll(0)

    def _write_queue_full(self, topic: str, number: int, records: Sequence[tuple], keys: list[bytes],
                          values: list[bytes], start: int) -> None:
        self._queue_full(topic, number, records, keys, values, start)
        if self.state == "blocked":
            self._recovered()
        self._poll(0)

    #: the key is the partition number (level4's layout), not hashed by the partitioner
    key_partition = False

    def note_receipt(self, recv_ns: int) -> None:
        """The receive time (wall clock, ns) of the live frame whose events the next writes
        carry: the delivery reports measure receipt -> delivery from it (``receipt_latency``).
        Called by the pipeline before a frame's writes; 0: unknown (a replay). (An instance's
        ``note_receipt`` is the compiled producer's.)"""
        self._producer.note_receipt(recv_ns)

    def _topic(self, topic: str) -> int:
        number = self._topics[topic] = self._producer.topic(self.topic_prefix + topic)
        self._producer.sink_topic(topic, number)
        return number

    def partition_count(self, topic: str, timeout: float = 5.0) -> int:
        """Partitions of ``topic`` (prefixed) as the broker says now; the producer's own
        metadata is refreshed with it (a topic grown since the producer last looked)."""
        return self._producer.partition_count(self.topic_prefix + topic, timeout)

    # ---------------------------------------------------------------------------------------
    # back-pressure (rare path)

    def _queue_full(self, topic: str, number: int, records: Sequence[tuple], keys: list[bytes],
                    values: list[bytes], start: int) -> None:
        """The local queue is full at message ``start`` of this write: poll and retry; after
        ``stall_timeout`` seconds without room, say so and apply the policy."""
        produce, poll = self._producer.produce, self._poll
        n = len(values)
        i = start
        began = time.monotonic()
        while True:
            self.backpressure_waits += 1
            poll(0.05)
            now = time.monotonic()
            if self.state == "ok" and now - began >= self.stall_timeout:
                self._stalled(keys[i], began)
            if self.state == "blocked" and now - self._stall_reminder >= self._log_interval:
                self._stall_reminder = now
                log.error("kafka: still waiting for the broker after %.0fs (%d messages queued "
                          "locally; policy block: the feed waits)", now - self._stall_since,
                          len(self._producer))
            if self.state == "spilling":
                self._spill_write(topic, records[i:] if len(records) == n else (), keys[i:], values[i:])
                return
            i = produce(number, keys, values, i, self._producer.receipt_ns, self.key_partition)
            if i >= n:
                return

    def _stalled(self, key: bytes, began: float) -> None:
        """The queue has been full for stall_timeout seconds: the broker is gone longer than
        the local buffer can hold. Loud: an ERROR and a status event; then the policy."""
        self._episodes += 1
        self._stall_since = began
        self._stall_reminder = time.monotonic()
        self._stall_wall_ns = time.time_ns() - int((time.monotonic() - began) * 1e9)
        self._stall_exchanges = {_exchange_of(key)}
        queued = len(self._producer)
        errors = ", ".join(f"{k} x{v}" for k, v in self._errors.totals.items()) or "none"
        if self.policy == "spill":
            self.state = "spilling"
            self._spilled_episode = 0
            reason = (f"kafka local queue full for {self.stall_timeout:g}s ({queued} messages): "
                      f"events go to local files in {self.spill_dir}")
            log.error("kafka: the broker is gone longer than the local queue can hold (%d messages "
                      "queued, client errors: %s): policy spill: every event goes to %s until it is back",
                      queued, errors, self.spill_dir)
            self._say("spilling", reason, self._stall_wall_ns, spill=True)
        else:
            self.state = "blocked"
            reason = (f"kafka local queue full for {self.stall_timeout:g}s ({queued} messages): "
                      "the feed waits for the broker")
            log.error("kafka: the broker is gone longer than the local queue can hold (%d messages "
                      "queued, client errors: %s): policy block: the feed waits until it is back",
                      queued, errors)
            self._say("backpressure", reason, self._stall_wall_ns)

    def _spilling(self, topic: str, records: Sequence[tuple], keys: Sequence[bytes],
                  values: Sequence[bytes]) -> bool:
        """In spill mode: True when this write went to the files (Kafka still backed up)."""
        self._poll(0)
        if len(self._producer) * 2 > self._queue_max:
            self._spill_write(topic, records, keys, values)
            return True
        return False  # drained below half: back to Kafka (write() then says "recovered")

    def _spill_write(self, topic: str, records: Sequence[tuple], keys: Sequence[bytes],
                     values: Sequence[bytes]) -> None:
        if not keys:
            return
        for key in keys[:1]:
            self._stall_exchanges.add(_exchange_of(key))
        if len(records) != len(values) or not records or not isinstance(records[0], tuple) or not records[0]:
            # values framed by the caller without records: their bodies, as stored
            self._spill_sink().write(topic, (), keys, [self._body(v) for v in values])
        else:
            self._spill_sink().write(topic, records, keys, None)
        self._spilled += len(keys)
        self._spilled_episode += len(keys)

    def _spill_sink(self) -> Any:
        if self._spill is None:
            from .files import FileSink

            self._spill = FileSink(self.spill_dir)
        return self._spill

    def _body(self, value: bytes) -> bytes:
        """A framed value's bare Avro body (what the files hold)."""
        if self.framing == "single_object" and value[:2] == b"\xc3\x01":
            return value[10:]
        if self.framing == "confluent" and value[:1] == b"\x00":
            return value[5:]
        return value

    def _recovered(self) -> None:
        """The broker takes messages again: produce the pending status events, say so."""
        seconds = time.monotonic() - self._stall_since
        was = self.state
        self.state = "ok"
        if was == "spilling":
            if self._spill is not None:
                self._spill.flush()
            reason = (f"kafka back after {seconds:.1f}s; {self._spilled_episode} events were "
                      f"written to local files in {self.spill_dir}")
        else:
            reason = f"kafka back after {seconds:.1f}s of back-pressure; nothing was dropped"
        log.warning("kafka: %s", reason)
        self._say("recovered", reason, time.time_ns(), spill=was == "spilling")
        self._produce_pending()

    def _say(self, status: str, reason: str, wall_ns: int, spill: bool = False) -> None:
        """A ``status`` event per exchange of the episode: to the spill files (when spilling)
        and to Kafka (now if the queue has room, else as soon as it has)."""
        from ..events import Status

        ms, us = wall_ns // 1_000_000, wall_ns // 1000
        records = [Status(x, "", status, reason, ms, us) for x in sorted(self._stall_exchanges)]
        if not records:
            return
        keys = [f"{r.exchange}:".encode() for r in records]
        if spill:
            self._spill_sink().write("status", records, keys, None)
        try:
            values = self._encoder().encode_many("status", records)
        except Exception as exc:  # noqa: BLE001 - no schema id for status: the log line stays
            log.warning("kafka: cannot encode the %s status event: %s", status, exc)
            return
        self._pending_status.extend(("status", k, v) for k, v in zip(keys, values))
        self._produce_pending()

    def _produce_pending(self) -> None:
        while self._pending_status:
            topic, key, value = self._pending_status[0]
            number = self._topics.get(topic)
            if number is None:
                number = self._topic(topic)
            if not self._producer.produce(number, [key], [value]):
                return  # the local queue is full: the next poll() tries again
            self._pending_status.pop(0)

    def _encoder(self) -> Any:
        if self._status_encoder is None:
            from ..avro import AvroEncoder

            framing = self.framing if self.framing in ("single_object", "confluent") else "single_object"
            self._status_encoder = AvroEncoder(framing, self.schema_ids or {}) if framing == "confluent" \
                else AvroEncoder(framing)
        return self._status_encoder

    def poll(self) -> None:
        """Serve delivery reports and client errors; emit pending failure counts; leave spill
        mode once the queue has drained."""
        self._poll(0)
        if self._pending_status:
            self._produce_pending()
        if self.state == "spilling" and len(self._producer) * 2 <= self._queue_max:
            self._recovered()
        if self._spill is not None:
            self._spill.poll()
        self._failures.maybe_report()
        self._errors.maybe_report()

    def flush(self, timeout: float = 30.0) -> int:
        """Wait up to ``timeout`` seconds for every queued message; return how many remain."""
        if self._closed:
            return 0
        if self._pending_status:
            self._produce_pending()
        remaining = self._producer.flush(timeout)
        if self._pending_status:  # produced now that the queue has room
            self._produce_pending()
            remaining = self._producer.flush(timeout)
        if self._spill is not None:
            self._spill.flush()
        self._failures.maybe_report()
        return remaining

    def close(self, timeout: float = 30.0) -> None:
        """Flush (up to ``timeout``), report what could not be delivered, release. Idempotent.

        With the spill policy, what is still queued after ``timeout`` is taken back from
        librdkafka and written to the spill files (messages already sent, whose answer is
        missing, cannot be taken back: they are reported as undelivered)."""
        if self._closed:
            return
        remaining = self.flush(timeout)
        if remaining and self.policy == "spill":
            self._purging = True
            try:
                self._producer.purge(in_queue=True, in_flight=False)
                self._producer.poll(0)  # the purged messages' reports: spilled in _on_delivery
                remaining = self._producer.flush(min(timeout, 5.0))
            finally:
                self._purging = False
        self._closed = True
        if remaining:
            log.error(
                "kafka sink closed with %d message(s) undelivered after %.0fs "
                "(delivered %d, failed %d)",
                remaining, timeout, self._producer.delivered_total, self._failed_total,
            )
        if self._spill is not None:
            self._spill.close()
            log.warning("kafka sink: %d event(s) in all were written to the spill files in %s",
                        self._spilled, self.spill_dir)
        self._failures.maybe_report(force=True)
        self._errors.maybe_report(force=True)
        self._producer.close()
        self._admin = None

    def stats(self) -> dict:
        closed = self._closed
        return {
            "queue": 0 if closed else len(self._producer),
            "delivered": self._producer.progress()[0],
            "failed": dict(self._failed),
            "delivered_total": self._producer.delivered_total,
            "failed_total": self._failed_total,
            "backpressure_waits": self.backpressure_waits,
            "failure_reasons": dict(self._failures.totals),
            "client_errors": dict(self._errors.totals),
            "closed": closed,
            "policy": self.policy,
            "state": self.state,
            "stalls": self._episodes,
            "spilled": self._spilled,
        }

    def delivery_progress(self) -> dict:
        """What the broker has confirmed so far, from the delivery reports served: ``delivered``
        and ``failed`` (topic as named on the broker -> count) and ``partitions`` (topic ->
        partition -> [the last delivered offset, that message's timestamp in ms: its produce
        time, or the broker's append time for a LogAppendTime topic]). Read by
        ``atomfast.runstate`` about once a second."""
        delivered, partitions = self._producer.progress()
        return {"delivered": delivered, "failed": dict(self._failed), "partitions": partitions,
                "delivered_total": self._producer.delivered_total}

    # ---------------------------------------------------------------------------------------
    # callbacks (from poll/flush, on this thread)

    def _on_failure(self, topic: str, code: int, key: bytes | None, value: bytes) -> None:
        """A message not delivered (its delivery report, or refused by ``produce``)."""
        if self._purging and code == KafkaError._PURGE_QUEUE:
            # closing without a broker, spill policy: the message goes to the local files
            bare = topic[len(self.topic_prefix):] if topic.startswith(self.topic_prefix) else topic
            self._spill_write(bare, (), [key or b""], [value])
            return
        self._failed[topic] = self._failed.get(topic, 0) + 1
        self._failed_total += 1
        self._failures.event(error_name(code), self._redact(f": {error_text(code)} (topic {topic})"))

    def _on_error(self, code: int, reason: str, fatal: bool) -> None:
        name = error_name(code)
        text = self._redact(f": {reason}")
        if fatal:
            log.error("kafka producer fatal error: %s%s", name, text)
        self._errors.event(name, text)

    # ---------------------------------------------------------------------------------------
    # admin

    def ensure_topics(
        self,
        topics: Iterable[str],
        partitions: int = 1,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> list[str]:
        """Create the missing ones of ``topics`` (prefixed). Existing topics are left as they
        are. ``partitions`` / ``replication_factor`` -1: the cluster's own defaults
        (num.partitions, default.replication.factor; brokers 2.4+). Waits until the created
        topics show in the metadata; returns their names. Raises :class:`KafkaSinkError` naming each topic that could not be created and why."""
        names = [self.topic_prefix + t for t in topics]
        if not names:
            return []
        admin = self._admin_client()
        new = [
            NewTopic(
                n,
                num_partitions=partitions,
                replication_factor=replication_factor,
                config={k: str(v) for k, v in (config or {}).items()},
            )
            for n in names
        ]
        try:
            futures = admin.create_topics(
                new, operation_timeout=timeout, request_timeout=timeout
            )
        except (KafkaException, ValueError, TypeError) as e:
            futures, problem = None, self._redact(_describe(e))
        if futures is None:
            raise KafkaSinkError(f"creating topics {names} failed: {problem}")
        created: list[str] = []
        problems: list[tuple[str, str]] = []
        for name, future in futures.items():
            try:
                future.result(timeout=timeout + 5)
                created.append(name)
            except KafkaException as e:
                err = e.args[0] if e.args else None
                if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                problems.append((name, self._redact(_describe(e))))
            except Exception as e:  # futures' TimeoutError and the like
                problems.append((name, self._redact(_describe(e))))
        if problems:
            # one line per distinct problem (a broker that is gone fails every topic alike)
            by_problem: dict[str, list[str]] = {}
            for name, problem in problems:
                by_problem.setdefault(problem, []).append(name)
            raise KafkaSinkError(
                f"could not create Kafka topic(s) at {self._conf.get('bootstrap.servers')}: "
                + "; ".join(f"{', '.join(names)}: {problem}" for problem, names in by_problem.items())
            )
        if created:
            self._wait_for_metadata(admin, created, timeout)
            self._wait_until_writable(admin, created, timeout)
            log.info("created Kafka topics %s (%s partitions, replication factor %s)", created,
                     partitions if partitions > 0 else "the cluster's default",
                     replication_factor if replication_factor > 0 else "the cluster's default")
        return created

    def wait_for_broker(self, timeout: float = 30.0) -> None:
        """Return once a broker answers a metadata request; meanwhile a WARNING every few
        seconds saying what the client meets. KafkaSinkError after ``timeout`` seconds."""
        admin = self._admin_client()
        where = self._conf.get("bootstrap.servers")
        began = time.monotonic()
        while True:
            left = timeout - (time.monotonic() - began)
            try:
                admin.list_topics(timeout=max(0.5, min(3.0, left)))
                break
            except KafkaException as e:
                problem = self._redact(_describe(e))
            waited = time.monotonic() - began
            if waited >= timeout:
                raise KafkaSinkError(f"no Kafka broker answered at {where} within {timeout:.0f} s ({problem})")
            log.warning("kafka: no broker answers at %s yet (%.0f s: %s); waiting up to %.0f s", where, waited,
                        problem, timeout)
        if time.monotonic() - began > 3.0:
            log.info("kafka: the broker at %s answered after %.1f s", where, time.monotonic() - began)

    def _admin_client(self) -> AdminClient:
        if self._closed:
            raise KafkaSinkError("ensure_topics() on a closed KafkaSink")
        if self._admin is None:
            self._admin = self._make(AdminClient, self._client_config())
        return self._admin

    def _wait_for_metadata(self, admin: AdminClient, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        missing = list(names)
        while True:
            try:
                md = admin.list_topics(timeout=max(0.5, min(5.0, deadline - time.monotonic())))
                missing = [
                    n
                    for n in names
                    if n not in md.topics
                    or md.topics[n].error is not None
                    or any(p.leader < 0 for p in md.topics[n].partitions.values())
                ]
                if not missing:
                    return
            except KafkaException:
                pass
            if time.monotonic() >= deadline:
                raise KafkaSinkError(
                    f"topics {missing} were created but have no leader after {timeout:.0f}s"
                )
            time.sleep(0.1)

    def _wait_until_writable(self, admin: AdminClient, names: list[str], timeout: float) -> None:
        """Wait until the leader of every partition of ``names`` answers for it (ListOffsets).
        The metadata names a new partition's leader a little before that leader has made the
        partition's log (tens of ms, more under load); a produce in that gap is refused
        (NOT_LEADER_OR_FOLLOWER), and the idempotent producer, if its next batch is then taken
        (a partition without producer state accepts any first sequence), counts the refused
        batch as delivered ("implicitly acked"): it is lost. So no write before this returns."""
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        deadline = time.monotonic() + timeout
        md = admin.list_topics(timeout=max(0.5, min(5.0, deadline - time.monotonic())))
        waiting = [TopicPartition(n, p) for n in names for p in md.topics[n].partitions]
        problem = "no answer"
        while waiting:
            try:
                futures = admin.list_offsets({tp: OffsetSpec.latest() for tp in waiting},
                                             request_timeout=max(0.5, min(5.0, deadline - time.monotonic())))
                still = []
                for tp, future in futures.items():
                    try:
                        future.result()
                    except KafkaException as e:
                        still.append(tp)
                        problem = self._redact(_describe(e))
                waiting = still
            except KafkaException as e:
                problem = self._redact(_describe(e))
            if not waiting:
                return
            if time.monotonic() >= deadline:
                raise KafkaSinkError(
                    f"topics {sorted({tp.topic for tp in waiting})} were created but their leader does not "
                    f"serve them after {timeout:.0f}s ({problem})")
            time.sleep(0.05)

    # ---------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        sasl = self._conf.get("sasl.mechanisms")
        return (
            f"KafkaSink(bootstrap={self._conf.get('bootstrap.servers')!r}, "
            f"topic_prefix={self.topic_prefix!r}, framing={self.framing!r}, "
            f"compression={self._conf.get('compression.type')!r}, "
            f"security={self._conf.get('security.protocol', 'PLAINTEXT')!r}"
            + (f", sasl={sasl!r}" if sasl else "")
            + (", closed" if self._closed else "")
            + ")"
        )

    def __enter__(self) -> "KafkaSink":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self):
        raise TypeError("a KafkaSink is not picklable")


def _load_librdkafka() -> None:
    """Open the librdkafka that confluent-kafka loaded (the native producer calls it)."""
    path = _librdkafka_path()
    if path is None:
        raise KafkaSinkError(
            "cannot find librdkafka: the native Kafka producer uses the one confluent-kafka loads "
            f"(confluent-kafka {confluent_kafka.version()[0]}, librdkafka {confluent_kafka.libversion()[0]})")
    try:
        load_librdkafka(path)
    except OSError as exc:
        raise KafkaSinkError(str(exc)) from None


def _librdkafka_path() -> str | None:
    """The path of the librdkafka confluent-kafka's extension loaded: from this process's memory
    map (Linux), else a copy bundled beside the package (its wheels' ``confluent_kafka.libs`` /
    ``.dylibs``), else the system's."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                found = re.search(r"(/\S*librdkafka\S*\.(?:so|dylib)\S*)$", line.strip())
                if found:
                    return found.group(1)
    except OSError:
        pass
    package = Path(confluent_kafka.__file__).parent
    for folder in (package.parent / "confluent_kafka.libs", package / ".dylibs"):
        for candidate in sorted(folder.glob("librdkafka*")):
            return str(candidate)
    import ctypes.util

    return ctypes.util.find_library("rdkafka")


def _exchange_of(key: bytes) -> str:
    """The exchange of a message key ``exchange:symbol`` (or ``exchange:session/conn``)."""
    return bytes(key).split(b":", 1)[0].decode("utf-8", "replace")


def _describe(e: BaseException) -> str:
    if isinstance(e, KafkaException) and e.args and isinstance(e.args[0], KafkaError):
        err = e.args[0]
        return f"{err.name()}: {err.str()}"
    return f"{type(e).__name__}: {e}"
