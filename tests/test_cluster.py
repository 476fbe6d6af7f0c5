"""The cluster on a real broker: several `atomfast serve` processes on loopback, each with its own
HOSTNAME and gRPC port, markets served by `atomfast simulate` replaying the recorded Kraken
captures (spot book: KRAKEN.ws.50.0; futures: KRAKEN_FUTURES.ws.1.0), both with --loop.

- failover: three nodes, nine markets started through the gRPC API, kill -9 of one node: every
  market of the dead node produces again on the other two (first Kafka record of its key after
  the kill) within FAILOVER_BOUND, its move is on the status topic, all nine are online and
  ListNodes shows two nodes.
- capacity: a market that no node can take is reported (status ``unplaced``), kept in the
  desired set, and placed when a node with room joins.

The harness here (ServeProcess, Harness, measure_failover) is shared with
tests/test_control.py and bench/bench_failover.py.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from .conftest import ROOT, fixture_path

pytestmark = pytest.mark.kafka

BOOK = "cryptofeed/KRAKEN.ws.50.0"
FUTURES = "cryptofeed/KRAKEN_FUTURES.ws.1.0"
SESSION_TIMEOUT = 6.0  # s: the broker's default group.min.session.timeout.ms
HEARTBEAT = 1.0  # s: serve's default heartbeat.interval.ms
#: the dead node expires after the session timeout (counted from its last heartbeat), the
#: survivors hear of it at their next heartbeat, then each moved market connects and gets its
#: snapshot (~1 s for the recorded Kraken spot book). Measured 6.6-8.3 s over 10 runs
#: (bench/bench_failover.py); 5 s of room for a busy 2-core machine.
FAILOVER_BOUND = SESSION_TIMEOUT + HEARTBEAT + 5.0

#: (id, exchange, base, quote, type) -> the normalised symbol they map to
MARKETS = [
    (1, "kraken", "BTC", "CHF", "SPOT", "BTC-CHF"),
    (2, "kraken", "ETH", "CHF", "SPOT", "ETH-CHF"),
    (3, "kraken", "ADA", "BTC", "SPOT", "ADA-BTC"),
    (4, "KRAKEN", "KSM", "XBT", "SPOT", "KSM-BTC"),  # level4 spelling, Kraken's XBT alias
    (5, "kraken", "OMG", "USD", "SPOT", "OMG-USD"),
    (6, "kraken", "WAVES", "EUR", "SPOT", "WAVES-EUR"),
    (7, "kraken-futures", "XRP", "USD", "INVERSE", "XRP-USD-PERP"),
    (8, "kraken-futures", "LTC", "USD", "PERP", "LTC-USD-PERP"),
    (9, "kraken-futures", "ETH", "USD", "PERP", "ETH-USD-PERP"),
]
DATA_TOPICS = ("lob", "spread", "trades")


def _env(bootstrap: str, prefix: str, extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SCHEMA_REGISTRY", "ATOMFAST_RPC"))}
    env.update(KAFKA_BOOTSTRAP_SERVERS=bootstrap, KAFKA_TOPIC_PREFIX=prefix,
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("HOSTNAME", None)
    env.update(extra or {})
    return env


class ServeProcess:
    """`atomfast serve` in a subprocess; ``address`` from its ``listening`` line."""

    def __init__(self, name: str, env: dict, *args: str, timeout: float = 60.0, log_dir: str | None = None) -> None:
        self.name = name
        self.log_path = Path(log_dir or tempfile.gettempdir()) / f"serve-{name}-{uuid.uuid4().hex[:6]}.log"
        self._log = open(self.log_path, "w")
        cmd = [sys.executable, "-m", "atomfast.cli", "serve", "--port", "0", "--hostname", name, *map(str, args)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True)
        self.address = ""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline and self.proc.poll() is None:
            if sel.select(timeout=0.2):
                line = self.proc.stdout.readline()
                if line.startswith("listening "):
                    break
        sel.close()
        if not line.startswith("listening "):
            self.kill()
            raise AssertionError(f"serve {name} did not start: {line!r}\n{self.log_tail()}")
        self.address = line.split()[1]

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text()[-n:]
        except OSError:
            return ""

    def kill(self) -> None:
        """kill -9."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def terminate(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def close(self) -> None:
        self.terminate()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()


def stub_for(address: str, token: str | None = None):
    import grpc

    from atomfast.control import level4_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(address)
    return pb_grpc.ControlStub(channel), channel


def market_msg(mid, exchange, base, quote, kind):
    from atomfast.control import level4_pb2 as pb

    return pb.Market(id=mid, base_symbol=base, quote_symbol=quote, exchange_name=exchange, type=kind)


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def node_reports(bootstrap: str, prefix: str, cluster: str = "atomfast") -> dict:
    """The latest report of every node, read from the nodes topic."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from atomfast.control.cluster import NodeRecord

    topic = f"{prefix}{cluster}.nodes"
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
    try:
        _low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out: dict = {}
        pos = 0
        deadline = time.monotonic() + 20
        while pos < high and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None or msg.error():
                continue
            pos = msg.offset() + 1
            name = msg.key().decode()
            out[name] = None if msg.value() is None else NodeRecord.from_json(json.loads(msg.value()))
        return {k: v for k, v in out.items() if v is not None}
    finally:
        c.close()


class Harness:
    """Simulators + nodes for one cluster (its own topic prefix)."""

    def __init__(self, bootstrap: str, prefix: str | None = None, log_dir: str | None = None) -> None:
        from .test_simulator import SimProcess

        self.bootstrap = bootstrap
        self.prefix = prefix or f"cl-{uuid.uuid4().hex[:8]}."
        self.log_dir = log_dir
        self.sims = [SimProcess(fixture_path(BOOK), "--loop"), SimProcess(fixture_path(FUTURES), "--loop")]
        self.nodes: dict[str, ServeProcess] = {}
        self.channels = []

    def endpoint_args(self) -> list[str]:
        return ["--endpoint", f"kraken={self.sims[0].url}", "--endpoint", f"kraken-futures={self.sims[1].url}"]

    def start_node(self, name: str, *args: str, env_extra: dict | None = None) -> ServeProcess:
        old = self.nodes.pop(name, None)
        if old is not None:
            old.close()
        node = ServeProcess(name, _env(self.bootstrap, self.prefix, env_extra), *self.endpoint_args(), *args,
                            log_dir=self.log_dir)
        self.nodes[name] = node
        return node

    def stub(self, name: str):
        stub, channel = stub_for(self.nodes[name].address)
        self.channels.append(channel)
        return stub

    def close(self) -> None:
        for ch in self.channels:
            ch.close()
        for node in self.nodes.values():
            node.close()
        for sim in self.sims:
            sim.close()

    def __enter__(self) -> "Harness":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start_markets(stub, markets=MARKETS) -> dict[int, str]:
    """StartMarket each; market id -> the node the reply names."""
    from atomfast.control import level4_pb2 as pb

    owners = {}
    for mid, exchange, base, quote, kind, _sym in markets:
        reply = stub.StartMarket(pb.StartMarketRequest(market=market_msg(mid, exchange, base, quote, kind)), timeout=60)
        assert reply.market.id == mid
        owners[mid] = reply.node.name
    return owners


def all_online(stub, ids) -> bool:
    from atomfast.control import level4_pb2 as pb

    return all(stub.IsMarketOnline(pb.MarketOnlineRequest(market=pb.Market(id=i)), timeout=10).is_online for i in ids)


def first_records_after(bootstrap: str, prefix: str, keys: set[bytes], since_ms: int, timeout: float,
                        topics=DATA_TOPICS) -> dict[bytes, int]:
    """key -> Kafka timestamp (ms) of its first record in ``topics`` at or after ``since_ms``."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 50})
    try:
        md = c.list_topics(timeout=10)
        parts = [TopicPartition(f"{prefix}{t}", p, since_ms) for t in topics
                 for p in (md.topics[f"{prefix}{t}"].partitions if f"{prefix}{t}" in md.topics else {})]
        c.assign(c.offsets_for_times(parts, timeout=10))
        first: dict[bytes, int] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not keys <= set(first):
            for msg in c.consume(1000, 0.2):
                if msg.error():
                    continue
                ts = msg.timestamp()[1]
                k = msg.key()
                if ts >= since_ms and k in keys and (k not in first or ts < first[k]):
                    first[k] = ts
        return first
    finally:
        c.close()


def statuses(bootstrap: str, prefix: str, since_ms: int = 0, timeout: float = 10.0) -> list[dict]:
    """Decoded records of the status topic (from ``since_ms``)."""
    from confluent_kafka import Consumer, TopicPartition

    from atomfast.avro import decode

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
    try:
        tp = TopicPartition(f"{prefix}status", 0, since_ms)
        _low, high = c.get_watermark_offsets(tp, timeout=10)
        start = c.offsets_for_times([tp], timeout=10)[0]
        c.assign([start])
        out = []
        pos = start.offset if start.offset >= 0 else high
        deadline = time.monotonic() + timeout
        while pos < high and time.monotonic() < deadline:
            for msg in c.consume(1000, 0.2):
                if msg.error():
                    continue
                pos = msg.offset() + 1
                out.append(decode(msg.value(), "status")[1])
        return out
    finally:
        c.close()


def measure_failover(h: Harness, victim: str, markets=MARKETS) -> dict:
    """kill -9 ``victim``; seconds until each of its markets produces again (first record of
    its key after the kill), and how the cluster looks afterwards."""
    reports = node_reports(h.bootstrap, h.prefix)
    moved = sorted(reports[victim].markets) if victim in reports else []
    symbols = {m[0]: f"{m[1].lower()}:{m[5]}".encode() for m in markets}
    h.nodes[victim].kill()
    t_kill = time.time()
    since = int(t_kill * 1000) + 1
    keys = {symbols[i] for i in moved}
    first = first_records_after(h.bootstrap, h.prefix, keys, since, timeout=60.0)
    per_market = {i: (first[symbols[i]] - since) / 1000 if symbols[i] in first else None for i in moved}
    missing = [i for i, t in per_market.items() if t is None]
    return {"moved": moved, "per_market": per_market, "missing": missing, "t_kill": t_kill,
            "seconds": max((t for t in per_market.values() if t is not None), default=0.0)}


# --- the tests ---------------------------------------------------------------------------------

@pytest.fixture
def harness(kafka_bootstrap, tmp_path):
    with Harness(kafka_bootstrap, log_dir=str(tmp_path)) as h:
        yield h


def test_failover_three_nodes_nine_markets_kill_one(harness):
    from atomfast.control import level4_pb2 as pb

    h = harness
    for name in ("node-a", "node-b", "node-c"):
        h.start_node(name, "--session-timeout", SESSION_TIMEOUT)
    a = h.stub("node-a")
    wait_for(lambda: len(a.ListNodes(pb.ListNodesRequest(), timeout=10).nodes) == 3, 30, what="three nodes")
    owners = start_markets(a)
    assert set(owners.values()) == {"node-a", "node-b", "node-c"}, owners  # spread over the three
    ids = [m[0] for m in MARKETS]
    wait_for(lambda: all_online(a, ids), 60, what="nine markets online")
    listed = a.ListActiveMarkets(pb.ListMarketsRequest(), timeout=10).markets
    assert [m.id for m in listed] == ids

    # the node running the most markets dies
    victim = max(("node-a", "node-b", "node-c"), key=lambda n: sum(1 for o in owners.values() if o == n))
    survivor = next(n for n in ("node-a", "node-b", "node-c") if n != victim)
    s = h.stub(survivor)
    result = measure_failover(h, victim)
    print(f"\nfailover: {len(result['moved'])} market(s) of {victim} producing again after "
          + ", ".join(f"{i}: {t:.2f} s" if t is not None else f"{i}: -" for i, t in result["per_market"].items()))
    assert result["moved"], f"{victim} ran no market"
    assert not result["missing"], f"markets {result['missing']} did not produce again within 60 s\n" + \
        "\n".join(h.nodes[n].log_tail(3000) for n in h.nodes if n != victim)
    assert result["seconds"] <= FAILOVER_BOUND, result

    # the cluster afterwards: two nodes, nine markets, all online on the survivors
    def two_nodes():
        nodes = s.ListNodes(pb.ListNodesRequest(), timeout=10).nodes
        return nodes if len(nodes) == 2 else None
    nodes = wait_for(two_nodes, 30, what="two nodes")
    assert {n.name for n in nodes} == {"node-a", "node-b", "node-c"} - {victim}
    assert all(n.max_active_markets == 25 for n in nodes)
    wait_for(lambda: sum(n.active_market_count for n in s.ListNodes(pb.ListNodesRequest(), timeout=10).nodes) == 9,
             20, what="nine markets on two nodes")
    wait_for(lambda: all_online(s, ids), 30, what="nine markets online again")
    assert [m.id for m in s.ListActiveMarkets(pb.ListMarketsRequest(), timeout=10).markets] == ids

    # the moves are on the status topic; each moved market reloads its book (snapshot) and its
    # spread (and, for futures, trades) carry on after it
    since = int(result["t_kill"] * 1000)
    status = statuses(h.bootstrap, h.prefix, since)
    symbols = {m[0]: m[5] for m in MARKETS}
    for mid in result["moved"]:
        moved = [r for r in status if r["symbol"] == symbols[mid] and r["status"] == "moved"]
        assert moved and f"from {victim}" in moved[0]["reason"] and "left the group" in moved[0]["reason"], \
            (mid, [r for r in status if r["symbol"] == symbols[mid]])
        assert any(r["symbol"] == symbols[mid] and r["status"] == "snapshot" for r in status), mid
    exchanges = {m[0]: m[1].lower() for m in MARKETS}
    keys = {f"{exchanges[i]}:{symbols[i]}".encode() for i in result["moved"]}
    spread = first_records_after(h.bootstrap, h.prefix, keys, since, 30.0, topics=("spread",))
    assert set(spread) == keys
    fut_keys = {k for k in keys if k.startswith(b"kraken-futures:")}
    if fut_keys:
        trades = first_records_after(h.bootstrap, h.prefix, fut_keys, since, 30.0, topics=("trades",))
        assert set(trades) == fut_keys


def test_unplaced_market_is_reported_then_placed_when_a_node_joins(harness):
    from atomfast.control import level4_pb2 as pb

    h = harness
    h.start_node("small-a", "--max-feeds", 3, "--session-timeout", SESSION_TIMEOUT)
    h.start_node("small-b", "--max-feeds", 3, "--session-timeout", SESSION_TIMEOUT)
    a = h.stub("small-a")
    wait_for(lambda: len(a.ListNodes(pb.ListNodesRequest(), timeout=10).nodes) == 2, 30, what="two nodes")
    markets = MARKETS[:5]
    start_markets(a, markets)
    ids = [m[0] for m in markets]
    wait_for(lambda: all_online(a, ids), 60, what="five markets online")
    # no room left beyond 6: the sixth is accepted, the seventh refused
    start_markets(a, MARKETS[5:6])
    with pytest.raises(Exception) as err:
        start_markets(a, MARKETS[6:7])
    assert "RESOURCE_EXHAUSTED" in str(err.value.code()), err.value
    ids.append(MARKETS[5][0])

    # small-b dies: small-a has room for 3 of the 6; the other 3 are reported, not dropped
    h.nodes["small-b"].kill()
    t_kill = int(time.time() * 1000)
    nodes = wait_for(lambda: (lambda ns: ns if len(ns) == 1 else None)(a.ListNodes(pb.ListNodesRequest(), timeout=10).nodes),
                     30, what="one node")
    assert (nodes[0].name, nodes[0].max_active_markets) == ("small-a", 3)
    wait_for(lambda: a.ListNodes(pb.ListNodesRequest(), timeout=10).nodes[0].active_market_count == 3, 30,
             what="small-a full")
    assert [m.id for m in a.ListActiveMarkets(pb.ListMarketsRequest(), timeout=10).markets] == ids
    online = [i for i in ids if all_online(a, [i])]
    assert len(online) == 3, online
    unplaced = wait_for(lambda: {r["symbol"] for r in statuses(h.bootstrap, h.prefix, t_kill) if r["status"] == "unplaced"}
                        or None, 20, what="unplaced status")
    symbols = {m[0]: m[5] for m in MARKETS}
    assert unplaced == {symbols[i] for i in ids if i not in online}, (unplaced, online)

    # a node with room joins: everything runs again
    h.start_node("small-c", "--max-feeds", 3, "--session-timeout", SESSION_TIMEOUT)
    wait_for(lambda: all_online(a, ids), 60, what="six markets online on two nodes")
    counts = {n.name: n.active_market_count for n in a.ListNodes(pb.ListNodesRequest(), timeout=10).nodes}
    assert counts == {"small-a": 3, "small-c": 3}, counts


def test_the_log_decides_between_concurrent_starts_of_one_id(kafka_bootstrap):
    """Two nodes accept the same id at once: both write; the one whose record lands second sees
    the other's live record it did not know of (what StartMarket then restores and refuses)."""
    from atomfast.control.cluster import Cluster, Names
    from atomfast.control.markets import MarketSpec

    names = Names.for_cluster(f"dup-{uuid.uuid4().hex[:8]}.", "atomfast")
    conf = {"bootstrap.servers": kafka_bootstrap}
    first, second = Cluster(conf, names, "w1", slots=4), Cluster(conf, names, "w2", slots=4)
    try:
        first.start(30)
        second.start(30)
        a = MarketSpec(7, "BTC", "CHF", "kraken", "SPOT", "kraken", "BTC-CHF")
        b = MarketSpec(7, "ETH", "CHF", "kraken", "SPOT", "kraken", "ETH-CHF")
        assert first.sync() and second.sync() and 7 not in second.markets()  # both checked: id free
        o1 = first.write_market(a, 0)
        o2 = second.write_market(b, 1)
        assert o2 > o1
        assert second.wait_applied(names.markets, o2, 10) and first.wait_applied(names.markets, o2, 10)
        assert first.replaced(o1) is None  # first in the log: accepted
        loser = second.replaced(o2)
        assert loser is not None and loser.spec == a and loser.slot == 0
        o3 = second.restore_market(loser)
        assert first.wait_applied(names.markets, o3, 10)
        assert first.markets()[7].spec == a and first.markets()[7].slot == 0
        assert first.replaced(o3) is None  # a restore is not a start
        o4 = first.delete_market(7)
        assert second.wait_applied(names.markets, o4, 10) and 7 not in second.markets()
        # a move of a market stopped meanwhile does not bring it back
        o5 = second.write_market(a, 2, op="move")
        assert first.wait_applied(names.markets, o5, 10) and 7 not in first.markets()
    finally:
        first.close()
        second.close()
