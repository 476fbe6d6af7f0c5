"""Sinks: where encoded events go. ``make_sink`` picks one by name; sinks are imported lazily,
so confluent_kafka is loaded only when Kafka is used.

- ``kafka``: confluent-kafka producer (KAFKA_BOOTSTRAP_SERVERS required)
- ``files``: Avro object container files under the data directory (the default without Kafka)
- ``stdout``: JSON lines, ``{"topic": ..., fields...}``
- ``null``: encodes and discards (benchmarks)
"""
from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING

from ..config import SettingsError

if TYPE_CHECKING:
    from ..config import Settings
    from ..metrics import Metrics
    from .base import Sink

log = logging.getLogger("atomfast.sinks")

SINK_NAMES = ("kafka", "files", "stdout", "null")

#: every topic the producer may write: one per event type, plus untouched frames
RAW_TOPIC = "raw"


def all_topics() -> list[str]:
    from ..events import TOPICS

    return [*TOPICS, RAW_TOPIC]


def default_sink_name(settings: "Settings") -> str:
    """kafka when bootstrap servers are configured, else files."""
    return "kafka" if settings.kafka_bootstrap_servers else "files"


def _accepts(callable_, name: str) -> bool:
    try:
        params = inspect.signature(callable_).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def make_sink(
    name: str | None,
    settings: "Settings",
    metrics: "Metrics | None" = None,
    data_dir: str | None = None,
) -> "Sink":
    """The sink called ``name``; ``None`` means kafka when KAFKA_BOOTSTRAP_SERVERS (or
    KAFKA_ENDPOINTS) is configured, else files. Raises SettingsError for an unknown name or
    when kafka is asked for without bootstrap servers."""
    if name is None:
        name = default_sink_name(settings)
    name = name.strip().lower()
    if name == "stdout":
        from .stdout import StdoutSink

        return StdoutSink()
    if name == "files":
        from .files import FileSink

        directory = data_dir or settings.data_dir
        if metrics is not None and _accepts(FileSink, "metrics"):
            return FileSink(directory, metrics=metrics)
        return FileSink(directory)
    if name == "kafka":
        return _make_kafka(settings, metrics)
    if name == "null":
        from .null import NullSink

        return NullSink()
    raise SettingsError(f"unknown sink {name!r}: choose one of {', '.join(SINK_NAMES)}")


def _make_kafka(settings: "Settings", metrics: "Metrics | None") -> "Sink":
    if not settings.kafka_bootstrap_servers:
        raise SettingsError(
            "the kafka sink needs KAFKA_BOOTSTRAP_SERVERS (or KAFKA_ENDPOINTS): set it in the "
            "environment, keys/.env or config.ini [atomfast], or choose --sink files"
        )
    from .kafka import KafkaSink, KafkaSinkError

    if settings.schema_registry_url:
        # TODO: register schemas/*.avsc under "<prefix><topic>-value" and publish framing="confluent"
        log.warning("SCHEMA_REGISTRY_URL is set, but registering schemas is not implemented yet: "
                    "publishing Avro single-object encoding")
    kwargs = {}
    if metrics is not None:
        record = metrics.delivery_latency.record  # produce() -> broker acknowledgement, ns
        kwargs["on_delivered"] = lambda _topic, latency_ns: record(latency_ns)
    where = f"kafka sink (KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers})"
    try:
        sink = KafkaSink.from_settings(
            settings.kafka_bootstrap_servers,
            sasl_key=settings.kafka_sasl_key or None,
            sasl_secret=settings.kafka_sasl_secret.get() or None,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            topic_prefix=settings.kafka_topic_prefix,
            **kwargs,
        )
    except KafkaSinkError as exc:  # messages are free of secrets
        raise SettingsError(f"{where}: {exc}") from None
    try:
        sink.ensure_topics(all_topics())
    except KafkaSinkError as exc:
        sink.close(timeout=1.0)
        raise SettingsError(f"{where}: {exc}") from None
    except BaseException:
        sink.close(timeout=1.0)
        raise
    return sink
