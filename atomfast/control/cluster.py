"""The cluster, on Kafka: the desired markets, the nodes' reports, and who owns what.

Three topics (names ``<KAFKA_TOPIC_PREFIX><cluster>.<name>``, cluster ``atomfast`` by default)
and one consumer group; nothing else is shared between nodes, and no node talks to another:

``markets`` (compacted, 1 partition): the desired set. Key: the market id (decimal text);
    value: JSON ``{"market": {level4's fields + exchange, symbol}, "slot": S, "op": "start" |
    "move", "by": node, "ts": ms}``; a tombstone stops the market. Every node reads the whole
    topic from the beginning and follows it, so any node can accept a StartMarket and every node
    can answer ListActiveMarkets.
``assign`` (``--slots`` partitions, 64 by default; never written): the unit of ownership. A
    market runs on the node whose consumer-group member owns partition ``slot`` of this topic.
    The group (``<prefix><cluster>.serve``, classic protocol, cooperative-sticky assignor)
    spreads the partitions over the live nodes: when a node dies (no heartbeat for
    ``session.timeout.ms``) or leaves, its partitions, hence its markets, go to the survivors;
    when a node joins, some move to it. Kafka's group coordinator is the only arbiter.
``nodes`` (compacted, 1 partition): each node's report, key = node name (HOSTNAME): capacity
    (MAX_DATA_FEEDS), gRPC address, group member id and the state of every market it runs
    (``starting`` / ``online`` / ``offline`` / ``failed``). Written on every change. A report
    counts only while its node is a live member of the group (AdminClient
    ``describe_consumer_groups``, i.e. Kafka's own membership): that list is what ListNodes shows.

Slots: a new market gets a slot owned by the live node with the most free room (capacity minus
the markets in its slots), the emptiest of its partitions. A node runs the markets of its slots
up to MAX_DATA_FEEDS; beyond that it moves the excess to a node with room (rewriting the
market's slot, ``op: move``), or, when no node has room, reports it (status ``unplaced``) and
keeps it in the desired set, to be placed when room appears.

Duplicate ids without consensus: the log orders the writes. A StartMarket first reads the
``markets`` topic up to its end (read-your-writes) and refuses a known id; two concurrent starts
of the same id both write, and the one whose write lands second in the log sees a live record it
did not know of, writes that record back and answers ALREADY_EXISTS.

Failover time: a node that dies stops heartbeating; the coordinator expires it after
``session.timeout.ms`` (6 s by default: the broker's default ``group.min.session.timeout.ms``),
the survivors learn of the rebalance at their next heartbeat (``heartbeat.interval.ms``, 1 s) and
get its partitions in one cooperative round; each moved market then starts (connect, subscribe,
snapshot). So a market is back within session timeout + heartbeat + the exchange's
time-to-snapshot: measured 6.6-8.3 s (median 7.5 s) over 10 runs, bench/bench_failover.py. A
node that leaves cleanly (SIGTERM) hands over at once (LeaveGroup). The classic group protocol
is used on purpose: with Kafka 4's consumer protocol (KIP-848, ``group.protocol=consumer``,
supported by librdkafka 2.16 and Kafka 4.3) the client may not set ``session.timeout.ms``; it is
the broker's ``group.consumer.session.timeout.ms``, 45 s by default and at least
``group.consumer.min.session.timeout.ms`` (45 s), so failover would take 45 s or more unless every
broker's configuration is changed. Until the session expires, the dead node is still listed
(ListNodes) and its markets still read as online (IsMarketOnline): Kafka does not know yet either.
A node cut off from Kafka for the session timeout loses its slots (``on_lost``) and stops their
feeds, so a market never runs on two nodes for long.

Threads: ``reader`` (follows markets + nodes), ``member`` (the group consumer: heartbeats are
librdkafka's own, the thread only serves rebalance callbacks), ``watch`` (describes the group
every ``describe_interval``). Callbacks into the node are plain calls from those threads.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .markets import MarketSpec, decode, encode

log = logging.getLogger("atomfast.control.cluster")

DEFAULT_SLOTS = 64
DEFAULT_SESSION_TIMEOUT = 6.0  # the broker's default group.min.session.timeout.ms
DEFAULT_HEARTBEAT = 1.0


class ClusterError(Exception):
    """Kafka refused or did not answer; the message says what and why."""


def kafka_config(settings: Any) -> dict[str, Any]:
    """librdkafka connection properties from the settings (KAFKA_BOOTSTRAP_SERVERS /
    KAFKA_ENDPOINTS, KAFKA_SASL_KEY + KAFKA_SASL_SECRET with KAFKA_SASL_MECHANISM)."""
    if not settings.kafka_bootstrap_servers:
        raise ClusterError("atomfast serve needs Kafka: set KAFKA_BOOTSTRAP_SERVERS (or KAFKA_ENDPOINTS)")
    conf: dict[str, Any] = {"bootstrap.servers": settings.kafka_bootstrap_servers}
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


class _QuietLogger:
    """librdkafka's log lines, at debug level (connection chatter while brokers come and go)."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(f"atomfast.control.librdkafka.{name}")

    def log(self, level: int, msg: str, *args: Any) -> None:  # pragma: no cover - librdkafka's
        self._logger.debug(msg, *args)


@dataclass(frozen=True)
class Names:
    markets: str
    nodes: str
    assign: str
    group: str

    @classmethod
    def for_cluster(cls, prefix: str, cluster: str) -> "Names":
        base = f"{prefix}{cluster}"
        return cls(f"{base}.markets", f"{base}.nodes", f"{base}.assign", f"{base}.serve")


@dataclass(frozen=True)
class MarketRecord:
    spec: MarketSpec
    slot: int
    offset: int
    by: str = ""
    ts: int = 0  # ms, when written
    op: str = "start"


@dataclass(frozen=True)
class NodeRecord:
    name: str
    max_feeds: int
    rpc: str = ""
    member_id: str = ""
    markets: dict = field(default_factory=dict)  # market id (int) -> state
    ts: int = 0
    left: bool = False
    released: dict = field(default_factory=dict)  # market id -> ms: handed over lately (for "moved from")

    def to_json(self) -> dict:
        return {"name": self.name, "max": self.max_feeds, "rpc": self.rpc, "member_id": self.member_id,
                "markets": {str(k): v for k, v in self.markets.items()}, "ts": self.ts, "left": self.left,
                "released": {str(k): v for k, v in self.released.items()}}

    @classmethod
    def from_json(cls, d: dict) -> "NodeRecord":
        return cls(str(d.get("name", "")), int(d.get("max", 0)), str(d.get("rpc", "")), str(d.get("member_id", "")),
                   {int(k): str(v) for k, v in (d.get("markets") or {}).items()}, int(d.get("ts", 0)),
                   bool(d.get("left", False)), {int(k): int(v) for k, v in (d.get("released") or {}).items()})


@dataclass(frozen=True)
class Member:
    """A live member of the group, as the coordinator describes it."""

    name: str  # client.id = the node's HOSTNAME
    member_id: str
    host: str
    slots: frozenset


def _now_ms() -> int:
    return int(time.time() * 1000)


class Cluster:
    """One node's handle on the cluster: see the module doc."""

    def __init__(
        self,
        kconf: dict[str, Any],
        names: Names,
        node_name: str,
        *,
        slots: int = DEFAULT_SLOTS,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
        heartbeat: float = DEFAULT_HEARTBEAT,
        describe_interval: float = 1.0,
        on_change: Callable[[], None] | None = None,
        on_assign: Callable[[set[int]], None] | None = None,
        on_revoke: Callable[[set[int]], None] | None = None,
        on_lost: Callable[[set[int]], None] | None = None,
    ) -> None:
        self.kconf = dict(kconf)
        self.names = names
        self.node_name = node_name
        self.slots_wanted = slots
        self.slots = slots
        self.session_timeout = session_timeout
        self.heartbeat = heartbeat
        self.describe_interval = describe_interval
        self.on_change = on_change or (lambda: None)
        self.on_assign = on_assign or (lambda s: None)
        self.on_revoke = on_revoke or (lambda s: None)
        self.on_lost = on_lost or (lambda s: None)

        self._lock = threading.Condition()
        self._markets: dict[int, MarketRecord] = {}
        self._nodes: dict[str, NodeRecord] = {}
        self._positions = {names.markets: 0, names.nodes: 0}  # next offset to apply
        self._replaced: dict[int, MarketRecord] = {}  # offset of a start -> live record it overwrote
        self._members: list[Member] = []
        self._members_at = 0.0
        self.group_state = ""  # the coordinator's word: STABLE, PREPARING_REBALANCE, ...
        self._describe_lock = threading.Lock()
        self.owned: frozenset[int] = frozenset()  # rebound, never mutated: safe to read anywhere
        self.member_id = ""
        self.assigned_at = 0.0  # time.monotonic() of the last assignment
        self.joined = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._admin: AdminClient | None = None
        self._producer: Producer | None = None
        self._reader: Consumer | None = None
        self._probe: Consumer | None = None
        self._probe_lock = threading.Lock()
        self._member: Consumer | None = None
        self._member_done = threading.Event()
        self._fatal: str | None = None

    # --- life ------------------------------------------------------------------------------------
    def _client(self, extra: dict[str, Any], name: str) -> dict[str, Any]:
        conf = dict(self.kconf)
        conf.update(extra)
        conf["logger"] = _QuietLogger(name)
        conf["error_cb"] = self._on_client_error
        return conf

    def _on_client_error(self, err: KafkaError) -> None:
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            log.warning("kafka: %s", err.str())
        else:
            log.debug("kafka: %s", err.str())

    def start(self, timeout: float = 30.0) -> None:
        """Create the topics if missing, read the cluster state up to its end, start following
        it, and join the group. Raises ClusterError."""
        try:
            self._admin = AdminClient(self._client({}, "admin"))
            self._ensure_topics(timeout)
            self._producer = Producer(self._client({
                "enable.idempotence": True, "acks": "all", "linger.ms": 0,
                "client.id": f"{self.node_name}-control",
            }, "producer"))
            reader_conf = {
                "group.id": f"{self.names.group}.reader.{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False, "enable.partition.eof": False,
                "client.id": f"{self.node_name}-reader", "fetch.wait.max.ms": 50,
            }
            self._reader = Consumer(self._client(reader_conf, "reader"))
            self._probe = Consumer(self._client(dict(reader_conf, **{"client.id": f"{self.node_name}-probe"}), "probe"))
        except KafkaException as exc:
            raise ClusterError(f"kafka at {self.kconf.get('bootstrap.servers')}: {exc}") from None
        self._reader.assign([TopicPartition(self.names.markets, 0, OFFSET_BEGINNING),
                             TopicPartition(self.names.nodes, 0, OFFSET_BEGINNING)])
        self._spawn("reader", self._read_loop)
        if not self.sync(timeout):
            raise ClusterError(f"could not read {self.names.markets} / {self.names.nodes} within {timeout:.0f} s")
        self._spawn("watch", self._watch_loop)
        self._spawn("member", self._member_loop)

    def wait_joined(self, timeout: float) -> bool:
        return self.joined.wait(timeout)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=f"cluster-{name}", daemon=True)
        t.start()
        self._threads.append(t)

    def leave(self, timeout: float = 10.0) -> None:
        """Leave the group (the revoke callback stops our feeds first), so that the others take
        our markets at once instead of after the session timeout."""
        self._stop.set()
        if any(t.name == "cluster-member" for t in self._threads):
            self._member_done.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        if any(t.name == "cluster-member" for t in self._threads):
            self._member_done.wait(10.0)
        for t in self._threads:
            t.join(5.0)
        for c in (self._reader, self._probe):
            if c is not None:
                try:
                    c.close()
                except Exception:  # noqa: BLE001
                    pass
        if self._producer is not None:
            self._producer.flush(5.0)

    def _ensure_topics(self, timeout: float) -> None:
        admin = self._admin
        assert admin is not None
        try:
            md = admin.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise ClusterError(f"kafka at {self.kconf.get('bootstrap.servers')} does not answer: {exc}") from None
        wanted = {
            # compacted, with hourly segments so that compaction keeps a restarting node's read short
            self.names.markets: (1, {"cleanup.policy": "compact", "segment.ms": "3600000"}),
            self.names.nodes: (1, {"cleanup.policy": "compact", "segment.ms": "3600000"}),
            self.names.assign: (self.slots_wanted, {"retention.ms": "3600000"}),
        }
        new = [NewTopic(n, num_partitions=p, replication_factor=-1, config=c)
               for n, (p, c) in wanted.items() if n not in md.topics]
        if new:
            futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
            for name, fut in futures.items():
                try:
                    fut.result(timeout + 5)
                    log.info("created topic %s", name)
                except KafkaException as exc:
                    err = exc.args[0] if exc.args else None
                    if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                        raise ClusterError(f"cannot create topic {name}: {exc}") from None
        deadline = time.monotonic() + timeout
        while True:
            md = admin.list_topics(timeout=timeout)
            t = md.topics.get(self.names.assign)
            ok = all(n in md.topics and md.topics[n].error is None
                     and md.topics[n].partitions and all(p.leader >= 0 for p in md.topics[n].partitions.values())
                     for n in wanted)
            if ok and t is not None:
                self.slots = len(t.partitions)
                if self.slots != self.slots_wanted:
                    log.info("%s has %d partitions (slots), not %d: using %d", self.names.assign, self.slots,
                             self.slots_wanted, self.slots)
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"topics {list(wanted)} have no leader after {timeout:.0f} s")
            time.sleep(0.1)

    # --- following the state topics -------------------------------------------------------------
    def _read_loop(self) -> None:
        reader = self._reader
        assert reader is not None
        while not self._stop.is_set():
            try:
                msgs = reader.consume(500, 0.1)
            except KafkaException as exc:  # pragma: no cover - transient client errors
                log.warning("reader: %s", exc)
                time.sleep(0.5)
                continue
            if not msgs:
                continue
            changed = False
            with self._lock:
                for msg in msgs:
                    if msg.error():
                        if msg.error().code() != KafkaError._PARTITION_EOF:
                            log.warning("reader: %s", msg.error().str())
                        continue
                    try:
                        if msg.topic() == self.names.markets:
                            self._apply_market(msg)
                        else:
                            self._apply_node(msg)
                        changed = True
                    except Exception as exc:  # noqa: BLE001 - a bad record must not stop the reader
                        log.error("skipping bad record at %s/%d: %s: %s", msg.topic(), msg.offset(),
                                  type(exc).__name__, exc)
                    self._positions[msg.topic()] = msg.offset() + 1
                self._lock.notify_all()
            if changed:
                self._notify()

    def _apply_market(self, msg) -> None:
        key = int(msg.key())
        value = msg.value()
        if value is None:
            self._markets.pop(key, None)
            return
        d = decode(value)
        rec = MarketRecord(MarketSpec.from_json(d["market"]), int(d["slot"]), msg.offset(), str(d.get("by", "")),
                           int(d.get("ts", 0)), str(d.get("op", "start")))
        prev = self._markets.get(key)
        if rec.op == "start" and prev is not None:
            self._replaced[msg.offset()] = prev
            if len(self._replaced) > 1000:
                for o in sorted(self._replaced)[:-500]:
                    del self._replaced[o]
        if rec.op == "move" and prev is None:
            return  # a move of a market stopped meanwhile: it stays stopped
        self._markets[key] = rec

    def _apply_node(self, msg) -> None:
        name = msg.key().decode()
        if msg.value() is None:
            self._nodes.pop(name, None)
        else:
            self._nodes[name] = NodeRecord.from_json(decode(msg.value()))

    def _notify(self) -> None:
        try:
            self.on_change()
        except Exception:  # noqa: BLE001
            log.exception("on_change failed")

    def sync(self, timeout: float = 10.0) -> bool:
        """Wait until the reader has applied everything written to markets and nodes before
        this call (read-your-writes). False on timeout."""
        deadline = time.monotonic() + timeout
        ends = {}
        with self._probe_lock:
            for topic in (self.names.markets, self.names.nodes):
                while True:
                    try:
                        _low, high = self._probe.get_watermark_offsets(TopicPartition(topic, 0),
                                                                       timeout=max(0.5, deadline - time.monotonic()))
                        ends[topic] = high
                        break
                    except KafkaException as exc:
                        if time.monotonic() > deadline:
                            log.warning("cannot read the end of %s: %s", topic, exc)
                            return False
                        time.sleep(0.2)
        with self._lock:
            return self._lock.wait_for(lambda: all(self._positions[t] >= e for t, e in ends.items()),
                                       max(0.0, deadline - time.monotonic()))

    def wait_applied(self, topic: str, offset: int, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self._positions[topic] > offset, timeout)

    # --- views ---------------------------------------------------------------------------------
    def markets(self) -> dict[int, MarketRecord]:
        with self._lock:
            return dict(self._markets)

    def node_records(self) -> dict[str, NodeRecord]:
        with self._lock:
            return dict(self._nodes)

    def replaced(self, offset: int) -> MarketRecord | None:
        with self._lock:
            return self._replaced.get(offset)

    def members(self, max_age: float | None = None) -> list[Member]:
        """Live members of the group (cached; refreshed when older than ``max_age`` s)."""
        if max_age is not None and time.monotonic() - self._members_at > max_age:
            self.refresh_members()
        with self._lock:
            return list(self._members)

    def refresh_members(self, timeout: float = 5.0, newer_than: float | None = None) -> list[Member] | None:
        """Ask the coordinator for the members; with ``newer_than`` (time.monotonic()), a
        description asked for after that time is good enough (bursts share one request)."""
        admin = self._admin
        if admin is None:
            return None
        with self._describe_lock:
            if newer_than is not None and self._members_at >= newer_than:
                with self._lock:
                    return list(self._members)
            asked = time.monotonic()
            try:
                fut = admin.describe_consumer_groups([self.names.group], request_timeout=timeout)[self.names.group]
                desc = fut.result(timeout + 1)
            except Exception as exc:  # noqa: BLE001 - KafkaException, timeouts
                log.debug("describe %s: %s", self.names.group, exc)
                return None
            members = []
            for m in desc.members:
                parts = m.assignment.topic_partitions if m.assignment is not None else []
                slots = frozenset(p.partition for p in parts if p.topic == self.names.assign)
                members.append(Member(m.client_id, m.member_id, m.host, slots))
            members.sort(key=lambda m: (m.name, m.member_id))
            state = getattr(desc.state, "name", str(desc.state or ""))
            with self._lock:
                self.group_state = state
                changed = members != self._members
                self._members = members
                self._members_at = asked
        if changed:
            self._notify()
        return members

    def _watch_loop(self) -> None:
        while not self._stop.wait(self.describe_interval):
            self.refresh_members()
            if self._producer is not None:
                self._producer.poll(0)

    # --- writing ---------------------------------------------------------------------------------
    def _produce(self, topic: str, key: bytes, value: bytes | None, timeout: float = 10.0) -> int:
        """Write one record and wait for the broker's acknowledgement; its offset."""
        producer = self._producer
        assert producer is not None
        done = threading.Event()
        result: dict[str, Any] = {}

        def delivered(err, msg) -> None:
            result["err"], result["offset"] = err, (msg.offset() if err is None else -1)
            done.set()

        producer.produce(topic, key=key, value=value, on_delivery=delivered)
        deadline = time.monotonic() + timeout
        while not done.is_set():
            producer.poll(0.05)
            if time.monotonic() > deadline:
                raise ClusterError(f"no acknowledgement from Kafka for {topic} within {timeout:.0f} s")
        if result["err"] is not None:
            raise ClusterError(f"writing {topic}: {result['err'].str()}")
        return int(result["offset"])

    def write_market(self, spec: MarketSpec, slot: int, op: str = "start") -> int:
        value = encode({"market": spec.to_json(), "slot": slot, "op": op, "by": self.node_name, "ts": _now_ms()})
        return self._produce(self.names.markets, spec.key.encode(), value)

    def restore_market(self, rec: MarketRecord) -> int:
        value = encode({"market": rec.spec.to_json(), "slot": rec.slot, "op": "move", "by": rec.by, "ts": rec.ts})
        return self._produce(self.names.markets, rec.spec.key.encode(), value)

    def delete_market(self, market_id: int) -> int:
        return self._produce(self.names.markets, str(market_id).encode(), None)

    def publish_node(self, record: NodeRecord) -> None:
        """Non-blocking: the report goes out with the next poll."""
        producer = self._producer
        if producer is None:
            return
        try:
            producer.produce(self.names.nodes, key=record.name.encode(), value=encode(record.to_json()))
            producer.poll(0)
        except (BufferError, KafkaException) as exc:
            log.warning("cannot publish the node report: %s", exc)

    def flush(self, timeout: float = 5.0) -> None:
        if self._producer is not None:
            self._producer.flush(timeout)

    # --- the group -----------------------------------------------------------------------------
    def _member_loop(self) -> None:
        conf = self._client({
            "group.id": self.names.group,
            "client.id": self.node_name,
            "group.protocol": "classic",
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": int(self.session_timeout * 1000),
            "heartbeat.interval.ms": int(self.heartbeat * 1000),
            "enable.auto.commit": False,
            "auto.offset.reset": "latest",
            "fetch.wait.max.ms": 100,
        }, "member")
        try:
            consumer = self._member = Consumer(conf)
            consumer.subscribe([self.names.assign], on_assign=self._assigned, on_revoke=self._revoked,
                               on_lost=self._lost)
        except KafkaException as exc:
            self._fatal = f"cannot join the group {self.names.group}: {exc}"
            log.error("%s", self._fatal)
            self._member_done.set()
            return
        try:
            while not self._stop.is_set():
                try:
                    msg = consumer.poll(0.1)
                except KafkaException as exc:  # pragma: no cover
                    log.warning("group: %s", exc)
                    continue
                if msg is not None and msg.error() and msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("group: %s", msg.error().str())
        finally:
            try:
                consumer.close()  # revokes (our callback stops the feeds), then leaves the group
            except Exception as exc:  # noqa: BLE001
                log.warning("leaving the group: %s", exc)
            if self.owned:  # close() did not revoke them: stop their feeds all the same
                self._revoked(consumer, [TopicPartition(self.names.assign, s) for s in sorted(self.owned)])
            self._member_done.set()

    def _assigned(self, consumer, partitions) -> None:
        slots = {p.partition for p in partitions}
        self.assigned_at = time.monotonic()
        self.member_id = consumer.memberid() or self.member_id
        with self._lock:
            self.owned = self.owned | slots
        log.info("group: %d slot(s) assigned%s; %d owned", len(slots),
                 f" ({_ranges(slots)})" if slots else "", len(self.owned))
        self.joined.set()
        try:
            self.on_assign(slots)
        except Exception:  # noqa: BLE001
            log.exception("on_assign failed")
        threading.Thread(target=self.refresh_members, daemon=True).start()

    def _revoked(self, consumer, partitions) -> None:
        slots = {p.partition for p in partitions}
        if not slots:
            return
        log.info("group: %d slot(s) revoked (%s)", len(slots), _ranges(slots))
        with self._lock:
            self.owned = self.owned - slots
        try:
            self.on_revoke(slots)  # blocks until those feeds are stopped
        except Exception:  # noqa: BLE001
            log.exception("on_revoke failed")

    def _lost(self, consumer, partitions) -> None:
        slots = {p.partition for p in partitions}
        log.warning("group: %d slot(s) lost (session expired?): %s", len(slots), _ranges(slots))
        with self._lock:
            self.owned = self.owned - slots
        try:
            self.on_lost(slots)
        except Exception:  # noqa: BLE001
            log.exception("on_lost failed")


def _ranges(slots: Iterable[int]) -> str:
    s = sorted(slots)
    if not s:
        return "-"
    out, start, prev = [], s[0], s[0]
    for x in s[1:] + [None]:
        if x is not None and x == prev + 1:
            prev = x
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if x is not None:
            start = prev = x
    return ",".join(out)


__all__ = ["Cluster", "ClusterError", "Member", "MarketRecord", "Names", "NodeRecord", "kafka_config"]
