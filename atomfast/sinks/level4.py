"""The ``level4`` topic profile: level4's Kafka layout, published from atomfast's events.

level4 (tradingmachines/level4) users' consumers read three topics (facts read from level4's
``config/runtime.exs`` and ``lib/market/datafeed/datafeed.ex``):

- ``level4.spread``: ``{side: "bids"|"asks", price, liquidity}``, one record per side whose best
  price or liquidity changed;
- ``level4.timesale``: ``{side: "buy"|"sell", price, size}``, one record per trade (the side is
  the aggressor's: a buy took from the asks);
- ``level4.status``: ``{event, node}``, a market's feed changing state on a node;

each value Avro in the Confluent wire format through a Schema Registry (subject
``<topic>-value``), each message keyed by the market's numeric id as a decimal string and written
to the partition of that number (level4's ``partition_strategy`` returns the parsed key), so the
topics need more partitions than the largest market id. level4 also puts
``unix_timestamp_microseconds`` into every payload before encoding: the schemas here carry it
(a long, default 0, so a reader schema without it, or with it, reads these records).

``Level4Sink`` is the translation, on the sink side: the pipeline hands it atomfast's records
(``framing = None``: nothing is encoded for atomfast's topics) and it publishes level4's records
instead, through a :class:`KafkaSink` whose messages go to the partition named by their key.
Only markets with a numeric id are published: :meth:`Level4Sink.for_market` gives the sink of
one market (its id, its node), which ``atomfast serve`` asks for each market the control plane
starts (StartMarket carries the id). Events of anything else are counted (``unmapped``) and
logged once per exchange:symbol. What each of atomfast's topics becomes:

- ``spread`` (best bid/ask of atomfast's own book) -> ``level4.spread``: a ``bids`` record when
  the best bid price or size differs from the last one published for the market, an ``asks``
  record likewise (the first spread of a feed run publishes both sides);
- ``trades`` -> ``level4.timesale`` (``taker_side`` buy/sell);
- ``status`` -> ``level4.status``: ``event`` is atomfast's status word (started, connected,
  subscribed, snapshot, resync, disconnected, stopped, moved, handover, failed, unplaced, ...),
  ``node`` the node's name (HOSTNAME);
- every other topic (lob, ticker, candle, ...) has no level4 counterpart and is not published.

Subjects follow the topics as named on the broker: with ``KAFKA_TOPIC_PREFIX`` empty (level4's
deployments) they are exactly ``level4.spread-value``, ``level4.timesale-value`` and
``level4.status-value``. The profile needs ``SCHEMA_REGISTRY_URL`` (level4 has no other
framing) and the ``block`` buffer policy (a level4 record has no place in atomfast's files).
"""
from __future__ import annotations

import json
import logging
import struct
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..config import SettingsError

if TYPE_CHECKING:
    from ..config import Settings
    from ..metrics import Metrics

log = logging.getLogger("atomfast.sinks.level4")

PROFILES = ("atomfast", "level4")
#: atomfast's topic -> level4's
TOPICS = {"spread": "level4.spread", "trades": "level4.timesale", "status": "level4.status"}
LEVEL4_TOPICS = tuple(TOPICS.values())
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "level4"
#: partitions a level4 topic is grown to at most (a market id must be below it)
MAX_PARTITIONS = 10_000


def topic_profile(settings: "Settings") -> str:
    """KAFKA_TOPIC_PROFILE, checked: ``atomfast`` (default) or ``level4``."""
    name = (getattr(settings, "kafka_topic_profile", "") or "atomfast").strip().lower()
    if name not in PROFILES:
        raise SettingsError(f"KAFKA_TOPIC_PROFILE (--topic-profile) must be one of {', '.join(PROFILES)}, "
                            f"not {name!r}")
    return name


def load_level4_schemas() -> dict[str, dict]:
    """level4 topic -> its Avro schema (parsed JSON)."""
    out = {}
    for topic in LEVEL4_TOPICS:
        path = SCHEMA_DIR / f"{topic.split('.', 1)[1]}.avsc"
        out[topic] = json.loads(path.read_text(encoding="utf-8"))
    return out


# --- Avro bodies (three flat records: strings, doubles, a long) ---------------------------------
_double = struct.Struct("<d").pack


def _long(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)  # zigzag
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string(s: str) -> bytes:
    b = s.encode("utf-8")
    return _long(len(b)) + b


def encode_body(topic: str, record: tuple) -> bytes:
    """The Avro body of a level4 record: spread/timesale ``(side, price, amount, ts_us)``,
    status ``(event, node, ts_us)``."""
    if topic == "level4.status":
        event, node, ts = record
        return _string(event) + _string(node) + _long(ts)
    side, price, amount, ts = record
    return _string(side) + _double(price) + _double(amount) + _long(ts)


class Level4Profile:
    """The translation for one market: atomfast's records -> (level4 topic, record)."""

    __slots__ = ("market_id", "node", "_bid", "_ask")

    def __init__(self, market_id: int, node: str) -> None:
        self.market_id = market_id
        self.node = node
        self._bid: tuple | None = None
        self._ask: tuple | None = None

    def translate(self, topic: str, record: tuple) -> list[tuple[str, tuple]]:
        if topic == "spread":
            out = []
            bid, ask = (record[2], record[3]), (record[4], record[5])
            ts = record[7]
            if bid != self._bid:
                self._bid = bid
                out.append(("level4.spread", ("bids", float(bid[0]), float(bid[1]), ts)))
            if ask != self._ask:
                self._ask = ask
                out.append(("level4.spread", ("asks", float(ask[0]), float(ask[1]), ts)))
            return out
        if topic == "trades":
            side = record[4]
            if side not in ("buy", "sell"):
                return []
            return [("level4.timesale", (side, float(record[2]), float(record[3]), record[7]))]
        if topic == "status":
            return [("level4.status", (record[2], self.node, record[5]))]
        return []


class MarketSink:
    """The sink of one market (``Level4Sink.for_market``): what the market's pipeline writes to."""

    framing = None

    def __init__(self, parent: "Level4Sink", profile: Level4Profile) -> None:
        self.parent = parent
        self.profile = profile
        self.key = str(profile.market_id).encode()

    def write(self, topic: str, records: Sequence[tuple], keys: Sequence[bytes], values: Any) -> None:
        self.parent.publish(self.profile, self.key, topic, records)

    def poll(self) -> None:
        self.parent.poll()

    def flush(self, timeout: float = 30.0) -> int:
        return self.parent.flush(timeout)

    def close(self) -> None:
        """A market's pipeline ends: the shared sink stays open (the node closes it)."""

    def stats(self) -> dict:
        return self.parent.stats()


class Level4Sink:
    """Publishes level4's layout (module doc) through ``kafka``, a KafkaSink that partitions by
    key; ``schema_ids``: level4 topic -> Schema Registry id."""

    framing = None

    def __init__(self, kafka: Any, schema_ids: dict[str, int], node: str = "") -> None:
        self.kafka = kafka
        self.node = node
        self.schema_ids = None  # the pipeline encodes nothing for us (framing None)
        self._prefix = {t: b"\x00" + struct.pack(">I", i) for t, i in schema_ids.items()}
        self._partitions: dict[str, int] = {}
        self._lock = threading.Lock()
        self.unmapped = 0
        self._unmapped_seen: set[str] = set()
        self.published: dict[str, int] = {}

    # --- markets ---------------------------------------------------------------------------------
    def for_market(self, market_id: int, node: str | None = None) -> MarketSink:
        """The sink of market ``market_id`` (its events keyed and partitioned by the id);
        the topics are grown to more partitions than the id when they have too few."""
        self.ensure_partitions(market_id)
        return MarketSink(self, Level4Profile(market_id, node if node is not None else self.node))

    def check_market_id(self, market_id: int) -> str | None:
        """Why the profile cannot publish market ``market_id`` (None: it can)."""
        if market_id >= MAX_PARTITIONS:
            return (f"the level4 topic profile writes market {market_id} to partition {market_id} of "
                    f"{', '.join(LEVEL4_TOPICS)}: ids must be below {MAX_PARTITIONS}")
        return None

    def ensure_partitions(self, market_id: int, timeout: float = 30.0) -> None:
        """Every level4 topic has more partitions than ``market_id`` (created partitions are
        waited for in the producer's own metadata). Raises SettingsError when it cannot be."""
        problem = self.check_market_id(market_id)
        if problem:
            raise SettingsError(problem)
        need = market_id + 1
        if all(self._partitions.get(t, 0) >= need for t in LEVEL4_TOPICS):
            return
        with self._lock:
            from confluent_kafka.admin import NewPartitions

            names = {t: self.kafka.topic_prefix + t for t in LEVEL4_TOPICS}
            counts = self._counts(names, timeout)
            grow = [NewPartitions(names[t], need) for t in LEVEL4_TOPICS if counts.get(t, 0) < need]
            if grow:
                admin = self.kafka._admin_client()
                futures = admin.create_partitions(grow, request_timeout=timeout)
                for name, fut in futures.items():
                    try:
                        fut.result(timeout + 5)
                    except Exception as exc:  # noqa: BLE001 - another node grew it first: fine if enough
                        log.info("growing %s to %d partitions: %s", name, need, exc)
                log.warning("level4 profile: %s grown to %d partitions (market id %d; level4 writes a market "
                            "to the partition of its id)", ", ".join(p.topic for p in grow), need, market_id)
                deadline = time.monotonic() + timeout
                while True:
                    counts = self._counts(names, 5.0)
                    if all(counts.get(t, 0) >= need for t in LEVEL4_TOPICS):
                        break
                    if time.monotonic() > deadline:
                        raise SettingsError(f"level4 profile: the topics did not reach {need} partitions "
                                            f"within {timeout:.0f} s: {counts}")
                    time.sleep(0.2)
            self._partitions.update(counts)

    def _counts(self, names: dict[str, str], timeout: float) -> dict[str, int]:
        """Partitions per level4 topic, as the producer sees them (its metadata refreshed)."""
        return {topic: self.kafka.partition_count(topic, timeout) for topic in names}

    # --- the Sink protocol -----------------------------------------------------------------------
    def publish(self, profile: Level4Profile, key: bytes, topic: str, records: Sequence[tuple]) -> None:
        out: dict[str, list[bytes]] = {}
        for record in records:
            for l4topic, l4record in profile.translate(topic, record):
                out.setdefault(l4topic, []).append(self._prefix[l4topic] + encode_body(l4topic, l4record))
        for l4topic, values in out.items():
            self.kafka.write(l4topic, (), [key] * len(values), values)
            self.published[l4topic] = self.published.get(l4topic, 0) + len(values)

    def write(self, topic: str, records: Sequence[tuple], keys: Sequence[bytes], values: Any) -> None:
        """Events outside any market's sink: they have no market id, so level4 has no place for
        them; counted, and logged once per exchange:symbol."""
        if topic not in TOPICS:
            return
        self.unmapped += len(records)
        for r in records:
            name = f"{r[0]}:{r[1]}"
            if name not in self._unmapped_seen:
                self._unmapped_seen.add(name)
                log.warning("level4 profile: %s events of %s have no market id: not published (level4's "
                            "layout keys every record by the market's numeric id)", topic, name or "?")

    def poll(self) -> None:
        self.kafka.poll()

    def flush(self, timeout: float = 30.0) -> int:
        return self.kafka.flush(timeout)

    def close(self) -> None:
        self.kafka.close()

    def stats(self) -> dict:
        stats = dict(self.kafka.stats())
        stats["unmapped"] = self.unmapped
        stats["level4"] = dict(self.published)
        return stats

    def delivery_progress(self) -> dict:
        return self.kafka.delivery_progress()


def _partitioned_sink_class():
    from .kafka import KafkaSink

    class PartitionedKafkaSink(KafkaSink):
        """A KafkaSink whose messages go to the partition their key names (level4's
        ``partition_strategy``: the key is the market id)."""

        key_partition = True

        def _say(self, status: str, reason: str, wall_ns: int, spill: bool = False) -> None:
            # back-pressure episodes concern no market: level4's status topic has no record
            # for them (the ERROR log line says it)
            log.warning("level4 profile: kafka %s: %s", status, reason)

    return PartitionedKafkaSink


def make_level4_sink(settings: "Settings", metrics: "Metrics | None" = None, *, node: str = "",
                     data_dir: str | None = None) -> Level4Sink:
    """The level4 profile's sink from the settings: the level4 topics created when missing,
    their schemas registered under ``<prefix><topic>-value``. SettingsError when the settings
    cannot carry it (no bootstrap servers, no registry, the spill policy)."""
    from . import kafka_options

    if not settings.kafka_bootstrap_servers:
        raise SettingsError("the level4 topic profile publishes to Kafka: set KAFKA_BOOTSTRAP_SERVERS "
                            "(or KAFKA_ENDPOINTS)")
    if not settings.schema_registry_url:
        raise SettingsError("the level4 topic profile writes Avro through a Schema Registry, as level4 does: "
                            "set SCHEMA_REGISTRY_URL")
    options = kafka_options(settings)
    if options["policy"] != "block":
        raise SettingsError("KAFKA_BUFFER_POLICY spill cannot hold level4's records (the files sink stores "
                            "atomfast's topics): use block with the level4 topic profile")
    from .kafka import KafkaSinkError
    from .registry import RegistryError, SchemaRegistry
    from .registry import register_schemas as register

    prefix = settings.kafka_topic_prefix
    try:
        registry = SchemaRegistry(settings.schema_registry_url, settings.schema_registry_api_key,
                                  settings.schema_registry_api_secret.get())
        ids = register(registry, LEVEL4_TOPICS, prefix, schemas=load_level4_schemas())
    except RegistryError as exc:
        raise SettingsError(f"schema registry: {exc}") from None
    kwargs: dict = {}
    if metrics is not None:
        kwargs["latency"] = metrics.delivery_latency
        kwargs["receipt_latency"] = metrics.receipt_latency
    where = f"kafka sink (KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers})"
    cls = _partitioned_sink_class()
    try:
        kafka = cls.from_settings(
            settings.kafka_bootstrap_servers,
            sasl_key=settings.kafka_sasl_key or None,
            sasl_secret=settings.kafka_sasl_secret.get() or None,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            topic_prefix=prefix,
            framing="confluent",
            schema_ids=ids,
            policy="block",
            **{"compression.type": options["compression"]},
            **kwargs,
        )
    except KafkaSinkError as exc:
        raise SettingsError(f"{where}: {exc}") from None
    try:
        kafka.ensure_topics(list(LEVEL4_TOPICS), options["partitions"], options["replication_factor"])
    except KafkaSinkError as exc:
        kafka.close(timeout=1.0)
        raise SettingsError(f"{where}: {exc}") from None
    log.info("level4 topic profile: %s (subjects %s), keyed and partitioned by market id",
             ", ".join(prefix + t for t in LEVEL4_TOPICS), ", ".join(f"{prefix}{t}-value" for t in LEVEL4_TOPICS))
    return Level4Sink(kafka, ids, node)


__all__ = ["LEVEL4_TOPICS", "Level4Profile", "Level4Sink", "MarketSink", "PROFILES", "TOPICS", "encode_body",
           "load_level4_schemas", "make_level4_sink", "topic_profile"]
