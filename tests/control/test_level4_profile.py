"""The level4 topic profile (issue 16, item 9): ``atomfast serve --topic-profile level4`` publishes
level4's own Kafka layout, so level4 users' consumers keep working.

- unit: the translation (spread per changed side, timesale, status) and the hand-made Avro bodies
  read back by fastavro with the schemas of atomfast/schemas/level4; the settings and flags that
  select it, and ``run`` refusing it with one clear line (no market ids without the control plane);
- a real broker and a real Schema Registry (Apicurio, tools/registry/registry.py): a node with
  the profile, markets started through level4's own client (conftest.py) with ids 5 and 12, the
  recorded Kraken Futures capture served once by the simulator; ``level4.spread``,
  ``level4.timesale`` and ``level4.status`` read by a plain Confluent consumer
  (``AvroDeserializer`` + ``SchemaRegistryClient``, nothing of atomfast): exactly the records an
  independent translation of the capture's offline replay gives, each keyed by the market's id and
  in the partition of that id (the topics grown to 13 partitions), subjects ``<topic>-value``.
"""
from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import time
import uuid

import pytest

from atomfast.events import Spread, Status, Trade
from atomfast.metrics import Metrics
from atomfast.replay import replay_capture
from atomfast.testing import ROOT, MemorySink, ServeProcess, SimProcess, fixture_path, serve_env, wait_for

CAPTURE = "cryptofeed/KRAKEN_FUTURES.ws.1.0"
#: (market id, level4 Market fields, the normalised symbol)
MARKETS = [(12, ("kraken-futures", "ETH", "USD", "PERP"), "ETH-USD-PERP"),
           (5, ("KRAKEN-FUTURES", "LTC", "USD", "PERP"), "LTC-USD-PERP")]
TOPICS = ("level4.spread", "level4.timesale", "level4.status")


# --- unit ----------------------------------------------------------------------------------------

def test_translation_and_avro_bodies():
    import fastavro

    from atomfast.sinks.level4 import Level4Profile, encode_body, load_level4_schemas

    schemas = {t: fastavro.parse_schema(s) for t, s in load_level4_schemas().items()}
    p = Level4Profile(7, "node-1")
    got = []
    for topic, rec in [
        ("spread", Spread("x", "B-Q", 10.0, 1.0, 11.0, 2.0, 1, 100)),   # first: both sides
        ("spread", Spread("x", "B-Q", 10.0, 1.5, 11.0, 2.0, 1, 101)),   # bid size changed
        ("spread", Spread("x", "B-Q", 10.0, 1.5, 10.5, 2.0, 1, 102)),   # ask price changed
        ("spread", Spread("x", "B-Q", 10.0, 1.5, 10.5, 2.0, 1, 103)),   # nothing changed
        ("trades", Trade("x", "B-Q", 10.5, 0.25, "buy", "t1", 1, 104)),
        ("trades", Trade("x", "B-Q", 10.0, 3.0, "sell", "t2", 1, 105)),
        ("status", Status("x", "B-Q", "snapshot", "why", 1, 106)),
        ("lob", ("x", "B-Q", "buy", 10.0, 1.0, 1, 107)),                # no level4 counterpart
    ]:
        for l4topic, l4rec in p.translate(topic, rec):
            got.append((l4topic, fastavro.schemaless_reader(io.BytesIO(encode_body(l4topic, l4rec)), schemas[l4topic])))
    assert got == [
        ("level4.spread", {"side": "bids", "price": 10.0, "liquidity": 1.0, "unix_timestamp_microseconds": 100}),
        ("level4.spread", {"side": "asks", "price": 11.0, "liquidity": 2.0, "unix_timestamp_microseconds": 100}),
        ("level4.spread", {"side": "bids", "price": 10.0, "liquidity": 1.5, "unix_timestamp_microseconds": 101}),
        ("level4.spread", {"side": "asks", "price": 10.5, "liquidity": 2.0, "unix_timestamp_microseconds": 102}),
        ("level4.timesale", {"side": "buy", "price": 10.5, "size": 0.25, "unix_timestamp_microseconds": 104}),
        ("level4.timesale", {"side": "sell", "price": 10.0, "size": 3.0, "unix_timestamp_microseconds": 105}),
        ("level4.status", {"event": "snapshot", "node": "node-1", "unix_timestamp_microseconds": 106}),
    ]
    # a reader schema of level4's three fields only reads these records too
    bare = fastavro.parse_schema({"type": "record", "name": "spread", "namespace": "level4", "fields": [
        {"name": "side", "type": "string"}, {"name": "price", "type": "double"},
        {"name": "liquidity", "type": "double"}]})
    body = encode_body("level4.spread", ("asks", 1.25, 3.5, 9))
    assert fastavro.schemaless_reader(io.BytesIO(body), schemas["level4.spread"], bare) == {
        "side": "asks", "price": 1.25, "liquidity": 3.5}


def test_the_setting_and_the_flags():
    from atomfast.config import SettingsError, load_settings
    from atomfast.sinks import make_sink
    from atomfast.sinks.level4 import topic_profile

    assert topic_profile(load_settings(env={}, env_file="/nonexistent")) == "atomfast"
    settings = load_settings(env={"KAFKA_TOPIC_PROFILE": "LEVEL4", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"},
                             env_file="/nonexistent")
    assert topic_profile(settings) == "level4"
    with pytest.raises(SettingsError, match="only the control plane knows"):
        make_sink("kafka", settings)  # replay, record, run: no market ids
    with pytest.raises(SettingsError, match="must be one of atomfast, level4, not 'cryptofeed'"):
        topic_profile(load_settings(env={"KAFKA_TOPIC_PROFILE": "cryptofeed"}, env_file="/nonexistent"))


def _cli(*args, env_extra=None):
    env = serve_env("127.0.0.1:9", "x.", env_extra)
    return subprocess.run([sys.executable, "-m", "atomfast.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_run_refuses_the_profile_with_one_clear_line():
    r = _cli("run", "--exchange", "kraken", "--topic-profile", "level4")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "only the control plane knows" in r.stderr and "atomfast serve" in r.stderr
    # the setting: refused before any connection is tried (127.0.0.1:9 answers nothing)
    r = _cli("run", "--exchange", "kraken", "--sink", "kafka", "--fail-fast", env_extra={"KAFKA_TOPIC_PROFILE": "level4"})
    assert r.returncode == 2 and "only the control plane knows" in r.stderr, r.stderr
    r = _cli("serve", "--topic-profile", "level4", "--sink", "files")
    assert r.returncode == 2 and "needs --sink kafka" in r.stderr, r.stderr
    r = _cli("serve", "--topic-profile", "level4")  # no SCHEMA_REGISTRY_URL
    assert r.returncode == 2 and "SCHEMA_REGISTRY_URL" in r.stderr, r.stderr


# --- a real broker and registry -------------------------------------------------------------------

def _registry_tool():
    name = "atomfast_tools_registry"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "registry" / "registry.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    problem = None
    try:
        server = _registry_tool().ApicurioRegistry(tmp_path_factory.mktemp("registry"))
        server.start()
    except Exception as exc:  # no java, no download, no start
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        pytest.skip(f"no Schema Registry server could be started on this machine ({problem}); "
                    "see tools/registry/registry.py")
    try:
        yield server
    finally:
        server.stop()


def expected_records(symbol: str, node: str) -> dict[str, list[dict]]:
    """level4's records for one market of the capture, from atomfast's offline replay, by a
    translation written here from level4's datafeed (not atomfast's)."""
    sink = MemorySink()
    replay_capture([fixture_path(CAPTURE)], "kraken-futures", sink, Metrics())
    out: dict[str, list[dict]] = {"level4.spread": [], "level4.timesale": []}
    best = {"bids": None, "asks": None}
    for topic, r in sink.records:
        if r[1] != symbol:
            continue
        if topic == "spread":
            for side, now in (("bids", (r.bid_price, r.bid_size)), ("asks", (r.ask_price, r.ask_size))):
                if best[side] != now:
                    best[side] = now
                    out["level4.spread"].append({"side": side, "price": now[0], "liquidity": now[1]})
        elif topic == "trades":
            out["level4.timesale"].append({"side": r.taker_side, "price": r.price, "size": r.size})
    return out


def _consume(bootstrap: str, registry_url: str, topic: str, want: int, timeout: float = 60.0) -> list:
    """(key, partition, record) of ``topic`` from the beginning, decoded by the standard consumer."""
    from confluent_kafka import Consumer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    deserialise = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"level4-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    got = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout
        quiet_until = None
        while time.monotonic() < deadline:
            msgs = c.consume(1000, 0.5)
            for m in msgs:
                assert m.error() is None, m.error()
                got.append((m.key(), m.partition(),
                            deserialise(m.value(), SerializationContext(topic, MessageField.VALUE))))
            if len(got) >= want:
                quiet_until = quiet_until or time.monotonic() + 2.0  # anything beyond: read it too
                if time.monotonic() > quiet_until:
                    break
        return got
    finally:
        c.close()


@pytest.mark.kafka
def test_serve_publishes_level4s_layout_read_by_a_plain_confluent_consumer(kafka_bootstrap, registry, level4,
                                                                           tmp_path):
    from confluent_kafka.admin import AdminClient

    prefix = f"l4-{uuid.uuid4().hex[:6]}."
    node_name = "l4-node"
    sim = SimProcess(fixture_path(CAPTURE))  # played once per connection, then idle
    env = serve_env(kafka_bootstrap, prefix, {"SCHEMA_REGISTRY_URL": registry.url})
    node = ServeProcess(node_name, env, "--topic-profile", "level4", "--endpoint", f"kraken-futures={sim.url}",
                        "--max-feeds", 3, log_dir=str(tmp_path))
    t0_us = int(time.time() * 1e6)
    try:
        stub = level4.stub(node.address)
        pb = level4.pb
        for mid, fields, _sym in MARKETS:
            reply = stub.StartMarket(pb.StartMarketRequest(market=level4.market(mid, *fields)), timeout=60)
            assert (reply.market.id, reply.node.name) == (mid, node_name)
        wait_for(lambda: level4.all_online(stub, [m[0] for m in MARKETS]), 60, what="markets online")
        # an id the layout cannot hold (a partition per id) is refused, naming the field
        import grpc

        with pytest.raises(grpc.RpcError) as err:
            stub.StartMarket(pb.StartMarketRequest(market=level4.market(10_000, "kraken-futures", "XRP", "USD", "INVERSE")),
                             timeout=60)
        assert err.value.code().name == "INVALID_ARGUMENT" and "market.id 10000" in err.value.details()

        expected = {mid: expected_records(sym, node_name) for mid, _f, sym in MARKETS}
        data = {}
        for topic in ("level4.spread", "level4.timesale"):
            want = sum(len(e[topic]) for e in expected.values())
            assert want > 50, (topic, want)
            data[topic] = _consume(kafka_bootstrap, registry.url, prefix + topic, want)
        for mid in (m[0] for m in MARKETS):
            stub.StopMarket(pb.StopMarketRequest(market=pb.Market(id=mid)), timeout=30)
        t1_us = int(time.time() * 1e6)

        for topic, got in data.items():
            for mid, _f, sym in MARKETS:
                mine = [(k, part, rec) for k, part, rec in got if k == str(mid).encode()]
                assert {part for _k, part, _r in mine} == {mid}, (topic, mid)  # the partition of the id
                records = [rec for _k, _p, rec in mine]
                assert all(t0_us <= r.pop("unix_timestamp_microseconds") <= t1_us for r in records)
                assert records == expected[mid][topic], (topic, sym, len(records), len(expected[mid][topic]))
            assert {k for k, _p, _r in got} == {str(m[0]).encode() for m in MARKETS}

        def stopped():
            got = _consume(kafka_bootstrap, registry.url, prefix + "level4.status", 1, timeout=10)
            done = {k for k, _p, r in got if r["event"] == "stopped"}  # the feed's, then StopMarket's
            return got if done == {str(m[0]).encode() for m in MARKETS} else None

        status = wait_for(stopped, 30, interval=0.5, what="the stopped status of both markets")
        for mid, _f, _sym in MARKETS:
            mine = [r for k, part, r in status if k == str(mid).encode() and part == mid]
            events = [r["event"] for r in mine]
            assert events[0] == "started" and events[-1] == "stopped", events
            assert "snapshot" in events, events
            assert {r["node"] for r in mine} == {node_name}
        assert len(status) == sum(1 for k, part, _r in status if int(k) == part)

        # level4's subjects, and the topics grown past the largest id
        from atomfast.sinks.registry import SchemaRegistry

        assert {f"{prefix}{t}-value" for t in TOPICS} <= set(SchemaRegistry(registry.url).subjects())
        md = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10)
        assert all(len(md.topics[prefix + t].partitions) >= 13 for t in TOPICS)
        assert not any(name.startswith(prefix) and name[len(prefix):] in ("spread", "trades", "lob", "status")
                       for name in md.topics)  # none of atomfast's own topics
        log = node.log_tail(10**7)
        assert "Traceback" not in log, log[-3000:]
    finally:
        node.close()
        sim.close()
