"""Sinks: where encoded events go. ``make_sink`` picks one by name; sinks are imported lazily,
so confluent_kafka is loaded only when Kafka is used.

- ``kafka``: confluent-kafka producer (KAFKA_BOOTSTRAP_SERVERS required); with
  SCHEMA_REGISTRY_URL the schemas are registered at start and values are Confluent-framed
  (``atomfast.sinks.registry``); topics are created when missing (KAFKA_TOPIC_PARTITIONS,
  KAFKA_REPLICATION_FACTOR; default: the cluster's own defaults); KAFKA_COMPRESSION;
  KAFKA_BUFFER_POLICY block|spill (spill: to the files sink's data dir); KAFKA_TOPIC_PROFILE
  atomfast (default) or level4 (level4's topics keyed by market id, ``atomfast.sinks.level4``:
  ``atomfast serve`` only, which knows the ids)
- ``files``: Avro object container files under the data directory (the default without Kafka);
  on a full or read-only disk FILES_BUFFER_BYTES held in memory, then FILES_BUFFER_POLICY block|drop
- ``stdout``: JSON lines, ``{"topic": ..., fields...}``
- ``null``: encodes and discards (benchmarks)
"""
from __future__ import annotations

import os

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
    """Every topic, raw last (``atomfast.events.TOPICS`` holds raw as well)."""
    from ..events import TOPICS

    return [*(t for t in TOPICS if t != RAW_TOPIC), RAW_TOPIC]


def default_sink_name(settings: "Settings") -> str:
    """kafka when bootstrap servers are configured, else files."""
    return "kafka" if settings.kafka_bootstrap_servers else "files"


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
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise SettingsError(f"the data directory {directory} is a file, not a directory (--data-dir / DATA_DIR)")
        from .files import files_options

        return FileSink(directory, metrics=metrics, **files_options(settings))
    if name == "kafka":
        return _make_kafka(settings, metrics, data_dir)
    if name == "null":
        from .null import NullSink

        return NullSink()
    raise SettingsError(f"unknown sink {name!r}: choose one of {', '.join(SINK_NAMES)}")


def _int_setting(name: str, text: str, minimum: int) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {text!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, not {value}")
    return value


def kafka_options(settings: "Settings") -> dict:
    """The Kafka sink's settings beyond the connection, checked (SettingsError)."""
    from .kafka import COMPRESSION, POLICIES

    compression = (settings.kafka_compression or "lz4").strip().lower()
    if compression not in COMPRESSION:
        raise SettingsError(f"KAFKA_COMPRESSION must be one of {', '.join(COMPRESSION)}, not {compression!r}")
    policy = (settings.kafka_buffer_policy or "block").strip().lower()
    if policy not in POLICIES:
        raise SettingsError(f"KAFKA_BUFFER_POLICY must be one of {', '.join(POLICIES)}, not {policy!r}")
    return {
        "partitions": _int_setting("KAFKA_TOPIC_PARTITIONS", settings.kafka_topic_partitions, 1) or -1,
        "replication_factor": _int_setting("KAFKA_REPLICATION_FACTOR", settings.kafka_replication_factor, 1) or -1,
        "compression": compression,
        "policy": policy,
    }


def register_schemas(settings: "Settings", topics: list[str], prefix: str | None = None) -> dict[str, int]:
    """Register the topics' schemas at SCHEMA_REGISTRY_URL (once, at start): topic -> id."""
    from .registry import RegistryError, SchemaRegistry
    from .registry import register_schemas as register

    try:
        registry = SchemaRegistry(settings.schema_registry_url, settings.schema_registry_api_key,
                                  settings.schema_registry_api_secret.get())
        return register(registry, topics, settings.kafka_topic_prefix if prefix is None else prefix)
    except RegistryError as exc:
        raise SettingsError(f"schema registry: {exc}") from None


def make_kafka_sink(
    settings: "Settings",
    metrics: "Metrics | None" = None,
    *,
    topic_prefix: str | None = None,
    topics: list[str] | None = None,
    data_dir: str | None = None,
    policy: str | None = None,
    **overrides,
) -> "Sink":
    """The Kafka sink of the settings: SASL, compression, buffer policy (spilling to the data
    dir), the Schema Registry's ids (confluent framing) when SCHEMA_REGISTRY_URL is set, and
    every topic of ``topics`` (default: all) created when missing. ``topic_prefix`` defaults
    to KAFKA_TOPIC_PREFIX; ``policy`` overrides KAFKA_BUFFER_POLICY; ``overrides`` are
    librdkafka properties."""
    if not settings.kafka_bootstrap_servers:
        raise SettingsError(
            "the kafka sink needs KAFKA_BOOTSTRAP_SERVERS (or KAFKA_ENDPOINTS): set it in the "
            "environment, keys/.env or config.ini [atomfast], or choose --sink files"
        )
    from .kafka import RAW_TOPIC_CONFIG, KafkaSink, KafkaSinkError

    options = kafka_options(settings)
    prefix = settings.kafka_topic_prefix if topic_prefix is None else topic_prefix
    topics = all_topics() if topics is None else list(topics)
    kwargs: dict = {}
    if settings.schema_registry_url:
        kwargs["framing"] = "confluent"
        kwargs["schema_ids"] = register_schemas(settings, topics, prefix)
    if metrics is not None:
        kwargs["latency"] = metrics.delivery_latency  # produce() -> broker acknowledgement
        kwargs["receipt_latency"] = metrics.receipt_latency  # frame receipt -> acknowledgement
    where = f"kafka sink (KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers})"
    try:
        sink = KafkaSink.from_settings(
            settings.kafka_bootstrap_servers,
            sasl_key=settings.kafka_sasl_key or None,
            sasl_secret=settings.kafka_sasl_secret.get() or None,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            topic_prefix=prefix,
            policy=policy or options["policy"],
            spill_dir=data_dir or settings.data_dir,
            **{"compression.type": options["compression"], **overrides},
            **kwargs,
        )
    except KafkaSinkError as exc:  # messages are free of secrets
        raise SettingsError(f"{where}: {exc}") from None
    try:
        sink.wait_for_broker()
        plain = [t for t in topics if t != RAW_TOPIC]
        sink.ensure_topics(plain, options["partitions"], options["replication_factor"])
        if RAW_TOPIC in topics:
            sink.ensure_topics([RAW_TOPIC], options["partitions"], options["replication_factor"],
                               config=RAW_TOPIC_CONFIG)
    except KafkaSinkError as exc:
        sink.close(timeout=1.0)
        raise SettingsError(f"{where}: {exc}") from None
    except BaseException:
        sink.close(timeout=1.0)
        raise
    return sink


def _make_kafka(settings: "Settings", metrics: "Metrics | None", data_dir: str | None = None) -> "Sink":
    from .level4 import topic_profile

    if topic_profile(settings) == "level4":
        raise SettingsError(
            "KAFKA_TOPIC_PROFILE=level4 (--topic-profile level4) keys every record by the market's numeric id, "
            "which only the control plane knows: run the markets with atomfast serve and StartMarket "
            "(atomfast ctl start ID EXCHANGE SYMBOL), or use --topic-profile atomfast here")
    return make_kafka_sink(settings, metrics, data_dir=data_dir)
