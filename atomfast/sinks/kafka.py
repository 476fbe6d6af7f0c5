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

Delivery latency: pass ``on_delivered(topic, latency_ns)`` and it is called from
:meth:`poll` / :meth:`flush` for every delivered message, with the time librdkafka measured
from ``produce()`` to the broker's acknowledgement. Time from a frame's receipt to the delivery
report is that plus (write time - receive time), which the caller knows; the sink does not
carry a per-message receive time (it would cost an object per message on the hot path).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from .base import Framing

__all__ = ["KafkaSink", "KafkaSinkError", "Secret", "DEFAULT_PRODUCER_CONFIG", "SASL_MECHANISMS"]

log = logging.getLogger(__name__)
_rdlog = logging.getLogger(__name__ + ".librdkafka")

FRAMINGS = ("single_object", "confluent", "none")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
COMPRESSION = ("lz4", "zstd", "none", "gzip", "snappy")

#: Producer defaults. The first three are the design's guarantees and cannot be overridden.
#: The throughput knobs are educated first picks, to be settled by the producer benchmark:
#: - linger.ms 10: market data arrives in bursts of small (50-100 byte) records; waiting 10 ms
#:   fills batches of hundreds to thousands of records (good lz4 ratio, few requests) while
#:   keeping publish latency well under a typical consumer's tolerance.
#: - batch.size 1 MiB / batch.num.messages 20000: upper bounds that linger reaches first at
#:   normal rates, and that keep requests large during a snapshot burst (an order-book load).
#: - queue.buffering.max.messages 500000: ~50 MB of records absorbs a burst or a broker
#:   fail-over of several seconds before write() starts to block (back-pressure).
DEFAULT_PRODUCER_CONFIG: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "partitioner": "murmur2_random",
    "compression.type": "lz4",
    "linger.ms": 10,
    "batch.size": 1_048_576,
    "batch.num.messages": 20_000,
    "queue.buffering.max.messages": 500_000,
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
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        topic_prefix: str = "",
        framing: Framing = "single_object",
        on_delivered: Callable[[str, int], None] | None = None,
        log_interval: float = 10.0,
    ):
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, not {framing!r}")
        conf: dict[str, Any] = dict(DEFAULT_PRODUCER_CONFIG)
        for key, value in config.items():
            if isinstance(value, Secret):
                conf[key] = value
            elif _is_secret_key(key) and value is not None:
                conf[key] = Secret(value)
            else:
                conf[key] = value
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

        self.framing: Framing | None = framing
        self.topic_prefix = topic_prefix
        self._conf = conf
        self._redact = _Redactor(v.reveal() for v in conf.values() if isinstance(v, Secret))
        self._on_delivered = on_delivered
        self._failures = _RateLimitedLog(log, logging.ERROR, "kafka delivery failed", log_interval)
        self._errors = _RateLimitedLog(log, logging.WARNING, "kafka client error", log_interval)
        self._topics: dict[str, str] = {}
        self._delivered: dict[str, int] = {}
        self._failed: dict[str, int] = {}
        self._delivered_total = 0
        self._failed_total = 0
        self.backpressure_waits = 0
        self._closed = False
        self._admin: AdminClient | None = None
        producer_conf = self._client_config(conf)
        producer_conf["on_delivery"] = self._on_delivery
        producer_conf["error_cb"] = self._on_error
        self._producer = self._make(Producer, producer_conf)
        # Hot-path bindings.
        self._produce = self._producer.produce
        self._poll = self._producer.poll

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
        on_delivered: Callable[[str, int], None] | None = None,
        log_interval: float = 10.0,
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
            on_delivered=on_delivered,
            log_interval=log_interval,
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
        queue is full (back-pressure), serving delivery reports meanwhile; never drops."""
        if values is None:
            raise TypeError("KafkaSink publishes encoded values: values must not be None")
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys for {len(values)} values on topic {topic!r}")
        if self._closed:
            raise KafkaSinkError("write() on a closed KafkaSink")
        name = self._topics.get(topic)
        if name is None:
            name = self._topics[topic] = self.topic_prefix + topic
        produce = self._produce
        for key, value in zip(keys, values):
            try:
                produce(name, value, key)
            except BufferError:
                self._wait_and_produce(name, value, key)

    def _wait_and_produce(self, name: str, value: bytes, key: bytes) -> None:
        while True:
            self.backpressure_waits += 1
            self._poll(0.05)
            try:
                self._produce(name, value, key)
                return
            except BufferError:
                continue

    def poll(self) -> None:
        """Serve delivery reports and client errors; emit pending failure counts."""
        self._poll(0)
        self._failures.maybe_report()
        self._errors.maybe_report()

    def flush(self, timeout: float = 30.0) -> int:
        """Wait up to ``timeout`` seconds for every queued message; return how many remain."""
        if self._closed:
            return 0
        remaining = self._producer.flush(timeout)
        self._failures.maybe_report()
        return remaining

    def close(self, timeout: float = 30.0) -> None:
        """Flush (up to ``timeout``), report what could not be delivered, release. Idempotent."""
        if self._closed:
            return
        remaining = self._producer.flush(timeout)
        self._closed = True
        if remaining:
            log.error(
                "kafka sink closed with %d message(s) undelivered after %.0fs "
                "(delivered %d, failed %d)",
                remaining, timeout, self._delivered_total, self._failed_total,
            )
        self._failures.maybe_report(force=True)
        self._errors.maybe_report(force=True)
        self._admin = None

    def stats(self) -> dict:
        closed = self._closed
        return {
            "queue": 0 if closed else len(self._producer),
            "delivered": dict(self._delivered),
            "failed": dict(self._failed),
            "delivered_total": self._delivered_total,
            "failed_total": self._failed_total,
            "backpressure_waits": self.backpressure_waits,
            "failure_reasons": dict(self._failures.totals),
            "client_errors": dict(self._errors.totals),
            "closed": closed,
        }

    # ---------------------------------------------------------------------------------------
    # callbacks (from poll/flush, on this thread)

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        topic = msg.topic()
        if err is None:
            self._delivered[topic] = self._delivered.get(topic, 0) + 1
            self._delivered_total += 1
            hook = self._on_delivered
            if hook is not None:
                latency = msg.latency()
                if latency is not None:
                    try:
                        hook(topic, int(latency * 1e9))
                    except Exception:  # a broken hook must not break delivery accounting
                        log.exception("on_delivered hook failed")
        else:
            self._failed[topic] = self._failed.get(topic, 0) + 1
            self._failed_total += 1
            self._failures.event(err.name(), self._redact(f": {err.str()} (topic {topic})"))

    def _on_error(self, err: KafkaError) -> None:
        text = self._redact(f": {err.str()}")
        if err.fatal():
            log.error("kafka producer fatal error: %s%s", err.name(), text)
        self._errors.event(err.name(), text)

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
        are. Waits until the created topics show in the metadata; returns their names.
        Raises :class:`KafkaSinkError` naming each topic that could not be created and why."""
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
        problems: list[str] = []
        for name, future in futures.items():
            try:
                future.result(timeout=timeout + 5)
                created.append(name)
            except KafkaException as e:
                err = e.args[0] if e.args else None
                if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                problems.append(f"{name}: {self._redact(_describe(e))}")
            except Exception as e:  # futures' TimeoutError and the like
                problems.append(f"{name}: {self._redact(_describe(e))}")
        if problems:
            raise KafkaSinkError(
                f"could not create Kafka topic(s) at {self._conf.get('bootstrap.servers')}: "
                + "; ".join(problems)
            )
        if created:
            self._wait_for_metadata(admin, created, timeout)
            log.info("created Kafka topics %s (%d partitions, rf %d)", created, partitions,
                     replication_factor)
        return created

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


def _describe(e: BaseException) -> str:
    if isinstance(e, KafkaException) and e.args and isinstance(e.args[0], KafkaError):
        err = e.args[0]
        return f"{err.name()}: {err.str()}"
    return f"{type(e).__name__}: {e}"
