"""Schema Registry: schemas registered once at start (topic-name subjects), values in the
Confluent wire format, decoded by a standard consumer and by `atomfast consume`.

The registry is a real server speaking the Confluent REST API: Apicurio Registry 2.6 from
Maven Central (tools/registry/registry.py), at its compatibility API /apis/ccompat/v7. Where
none can be started (no Java, Maven Central unreachable), these tests are skipped with the
reason. The standard consumer is confluent_kafka's ``AvroDeserializer`` with its
``SchemaRegistryClient``: it knows nothing of atomfast.
"""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from atomfast.avro import confluent_prefix, load_schemas
from atomfast.config import Settings
from atomfast.metrics import Metrics
from atomfast.sinks.registry import RegistryError, SchemaRegistry, register_schemas, subject_for
from atomfast.replay import replay_capture

from atomfast.testing import ROOT, MemorySink, fixture_path

TOOL = ROOT / "tools" / "registry" / "registry.py"
BOOK = "cryptofeed/KRAKEN.ws.50.0"
TRADES = "cryptofeed/KRAKEN.ws.48.0"


def _tool():
    name = "atomfast_tools_registry"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TOOL)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    tool = _tool()
    problem = None
    try:
        server = tool.ApicurioRegistry(tmp_path_factory.mktemp("registry"))
        server.start()
    except Exception as exc:  # RegistryToolError (no java, no download, no start), OSError
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        pytest.skip(f"no Schema Registry server could be started on this machine ({problem}); "
                    "see tools/registry/registry.py")
    try:
        yield server
    finally:
        server.stop()


def offline(relative: str) -> dict[str, list[dict]]:
    sink = MemorySink()
    replay_capture([fixture_path(relative)], "kraken", sink, Metrics(), raw=True)
    return sink.as_dicts()


def test_schemas_registered_once_under_topic_name_subjects(registry):
    prefix = f"reg-{uuid.uuid4().hex[:6]}."
    client = SchemaRegistry(registry.url)
    schemas = load_schemas()
    ids = register_schemas(client, list(schemas), prefix)
    assert set(ids) == set(schemas) and len(set(ids.values())) == len(ids)
    assert client.requests == len(schemas)  # one registration per subject, nothing else
    assert {subject_for(t, prefix) for t in schemas} <= set(client.subjects())
    assert subject_for("trades", "prod.") == "prod.trades-value"
    again = SchemaRegistry(registry.url)
    assert register_schemas(again, list(schemas), prefix) == ids  # a restart gets the same ids
    for topic, schema_id in ids.items():  # what a consumer fetches by id is our schema
        assert json.loads(json.dumps(SchemaRegistry(registry.url).schema(schema_id))) == schemas[topic]


def _ms(value) -> int:
    if isinstance(value, dt.datetime):
        return (value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(milliseconds=1)
    return value


@pytest.mark.kafka
def test_a_standard_consumer_decodes_our_values(registry, kafka_bootstrap):
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from atomfast.sinks import make_sink

    prefix = f"reg-{uuid.uuid4().hex[:6]}."
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, kafka_topic_prefix=prefix,
                        schema_registry_url=registry.url)
    sink = make_sink("kafka", settings)
    assert sink.framing == "confluent" and set(sink.schema_ids) >= {"lob", "trades", "raw", "status"}
    metrics = Metrics()
    replay_capture([fixture_path(BOOK)], "kraken", sink, metrics, raw=True)  # closes (flushes) the sink
    assert sink.stats()["failed_total"] == 0
    expected = offline(BOOK)

    client = SchemaRegistryClient({"url": registry.url})
    deserialise = AvroDeserializer(client)
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"g-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        for topic in ("lob", "spread", "status", "raw"):
            name = prefix + topic
            low, high = consumer.get_watermark_offsets(TopicPartition(name, 0), timeout=10)
            consumer.assign([TopicPartition(name, 0, low)])
            got = []
            deadline = time.monotonic() + 30
            while len(got) < high - low and time.monotonic() < deadline:
                for m in consumer.consume(min(2000, high - low - len(got)), 5):
                    assert m.error() is None
                    value = m.value()
                    assert value[:5] == confluent_prefix(sink.schema_ids[topic])  # magic 0 + id
                    record = deserialise(value, SerializationContext(name, MessageField.VALUE))
                    record["event_timestamp"] = _ms(record["event_timestamp"])
                    got.append(record)
            if topic == "raw":  # each replay is a collector session of its own
                got = [dict(r, session="") for r in got]
                expected[topic] = [dict(r, session="") for r in expected[topic]]
            assert got == expected[topic], topic
            assert len(got) == metrics.events[topic]
    finally:
        consumer.close()


@pytest.mark.kafka
def test_atomfast_consume_reads_registry_framed_values(registry, kafka_bootstrap):
    prefix = f"reg-{uuid.uuid4().hex[:6]}."
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SCHEMA_REGISTRY"))}
    env.update(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, KAFKA_TOPIC_PREFIX=prefix,
               SCHEMA_REGISTRY_URL=registry.url, PYTHONPATH=str(ROOT))

    def cli(*args):
        r = subprocess.run([sys.executable, "-m", "atomfast.cli", *args], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]
        return r

    cli("replay", str(fixture_path(TRADES)), "--exchange", "kraken", "--sink", "kafka")
    expected = offline(TRADES)
    lines = [json.loads(ln) for ln in cli("consume", "trades", "--from", "kafka", "--timeout", "30").stdout.splitlines()]
    assert [{k: v for k, v in ln.items() if k != "topic"} for ln in lines] == expected["trades"]
    assert len(lines) == 10
    xmr = cli("consume", "trades", "--from", "kafka", "--symbol", "XMR-USD", "--timeout", "30").stdout.splitlines()
    assert xmr and all(json.loads(x)["symbol"] == "XMR-USD" for x in xmr)
    assert len(xmr) == sum(1 for t in expected["trades"] if t["symbol"] == "XMR-USD")


def test_registry_failures_are_clear_and_show_no_credentials():
    with pytest.raises(RegistryError) as info:
        SchemaRegistry("http://user:hunter2@127.0.0.1:1/apis/ccompat/v7").register("x-value", {"type": "string"},
                                                                                 retry_for=0.3)
    text = str(info.value)
    assert "cannot be reached" in text and "127.0.0.1:1" in text and "hunter2" not in text
    with pytest.raises(RegistryError):
        SchemaRegistry("ftp://example.test")
    assert "hunter2" not in repr(SchemaRegistry("http://u:hunter2@h.test", "key", "hunter3"))


def test_api_key_and_secret_go_as_basic_auth(monkeypatch):
    """The header a hosted registry (Confluent Cloud) expects; no server involved."""
    import base64
    import urllib.request

    seen = {}

    class Answer:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return b'{"id": 7}'

    def urlopen(request, timeout):
        seen["auth"] = request.get_header("Authorization")
        seen["url"] = request.full_url
        seen["body"] = json.loads(request.data)
        return Answer()

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    client = SchemaRegistry("https://psrc-x.example.test", "KEY", "SECRET")
    assert client.register("prod.lob-value", load_schemas()["lob"]) == 7
    assert seen["auth"] == "Basic " + base64.b64encode(b"KEY:SECRET").decode()
    assert seen["url"] == "https://psrc-x.example.test/subjects/prod.lob-value/versions"
    assert seen["body"]["schemaType"] == "AVRO" and json.loads(seen["body"]["schema"]) == load_schemas()["lob"]

    # credentials in the URL (percent-encoded as URLs require): the same header, the URL without them
    client = SchemaRegistry("https://KEY:S%40CRET@psrc-x.example.test:8443/")
    assert client.register("prod.lob-value", load_schemas()["lob"]) == 7
    assert seen["auth"] == "Basic " + base64.b64encode(b"KEY:S@CRET").decode()
    assert seen["url"] == "https://psrc-x.example.test:8443/subjects/prod.lob-value/versions"
    assert "CRET" not in repr(client)
