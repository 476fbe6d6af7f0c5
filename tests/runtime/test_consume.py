"""`atomfast consume TOPIC`: Avro (files sink or Kafka) back to the JSON lines of `--sink stdout`.

The command runs as a subprocess, as a user runs it; every line is compared exactly with what
the stdout sink prints for the records that were written.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from atomfast.avro import AvroEncoder, load_schemas
from atomfast.commands.consume import (
    DecodeProblem,
    RegistryError,
    SchemaRegistry,
    ValueDecoder,
    _name_key,
    plain_converter,
)
from atomfast.events import Lob, Status, Trade
from atomfast.sinks.files import FileSink
from atomfast.sinks.stdout import StdoutSink
from atomfast.testing import ROOT

HOUR = 1_763_679_600  # 2025-11-20T23:00:00Z
T_MS = 1_763_680_000_123

MARKETS = [("kraken", "BTC-USD"), ("kraken", "ETH-USD"), ("binance", "BTC-USDT"), ("coinbase", "BTC-USD")]


def make_trades(n: int, seed: int = 1) -> list[Trade]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        exchange, symbol = MARKETS[rng.randrange(len(MARKETS))]
        price = rng.choice([0.000022900, 97123.4, 0.1 + 0.2, rng.uniform(0, 1e5), 1e-9 * rng.random()])
        out.append(Trade(exchange, symbol, price, rng.random() * 10, rng.choice(["buy", "sell"]),
                         f"t-{i}-ü", T_MS + i, T_MS * 1000 + i * 7))
    return out


def stdout_lines(topic: str, records) -> list[bytes]:
    """What `--sink stdout` prints for these records: the expected output of consume."""
    out = io.BytesIO()
    sink = StdoutSink(out)
    sink.write(topic, list(records), [b""] * len(records), None)
    sink.close()
    return out.getvalue().splitlines()


def run_consume(*args: str, env: dict | None = None, cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "atomfast.cli", "consume", *args],
        capture_output=True, timeout=timeout, cwd=cwd, env=child_env(env),
    )


def child_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KAFKA_", "SCHEMA_REGISTRY_", "ATOMFAST_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def write_files(data_dir: Path, topic: str, batches: list[list[tuple]], clock=lambda: HOUR + 60.0) -> None:
    """Each batch through its own FileSink: one file per batch (as one per process start)."""
    for batch in batches:
        with FileSink(data_dir, clock=clock) as sink:
            for i in range(0, len(batch), 7):  # frames of a few events
                sink.write(topic, batch[i:i + 7], [b"k"] * len(batch[i:i + 7]), None)


# ------------------------------------------------------------------------------------------------
# files


@pytest.fixture
def lake(tmp_path):
    """A files-sink data directory: 12 files of trades (name order = write order), lob, status."""
    data = tmp_path / "data"
    trades = make_trades(600)
    write_files(data, "trades", [trades[i:i + 50] for i in range(0, 600, 50)])
    lob = [Lob("kraken", "BTC-USD", 97000.0 + i, 0.000022900 * i, "buy" if i % 2 else "sell", T_MS, T_MS * 1000)
           for i in range(30)]
    write_files(data, "lob", [lob])
    status = [Status("kraken", "", "connected", "", T_MS, T_MS * 1000),
              Status("kraken", "BTC-USD", "snapshot", "", T_MS, T_MS * 1000)]
    write_files(data, "status", [status])
    return data, {"trades": trades, "lob": lob, "status": status}


def test_files_every_line_exact(lake, tmp_path):
    data, written = lake
    assert len(list((data / "trades").glob("*.avro"))) == 12
    for topic, records in written.items():
        r = run_consume(topic, "--from", "files", "--data-dir", str(data), cwd=tmp_path)
        assert r.returncode == 0, r.stderr.decode()
        lines = r.stdout.splitlines()
        assert lines == stdout_lines(topic, records)  # byte for byte, in write order
        fields = list(records[0]._fields)
        for line, record in zip(lines, records):
            obj = json.loads(line)
            assert list(obj) == ["topic", *fields]
            assert obj["topic"] == topic
            assert tuple(obj[f] for f in fields) == tuple(record)
        assert b"Traceback" not in r.stderr


def test_files_data_dir_from_environment(lake, tmp_path):
    data, written = lake
    r = run_consume("status", env={"ATOMFAST_DATA_DIR": str(data)}, cwd=tmp_path)  # files: no Kafka set
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.splitlines() == stdout_lines("status", written["status"])


@pytest.mark.parametrize(
    "flags, keep",
    [
        (["--exchange", "kraken"], lambda t: t.exchange == "kraken"),
        (["--symbol", "BTC-USD"], lambda t: t.symbol == "BTC-USD"),
        (["--exchange", "kraken", "--symbol", "BTC-USD"], lambda t: (t.exchange, t.symbol) == ("kraken", "BTC-USD")),
        (["--exchange", "binance,coinbase"], lambda t: t.exchange in ("binance", "coinbase")),
        (["--exchange", "bitfinex"], lambda t: False),
    ],
)
def test_files_filters(lake, tmp_path, flags, keep):
    data, written = lake
    r = run_consume("trades", "--from", "files", "--data-dir", str(data), *flags, cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    expected = [t for t in written["trades"] if keep(t)]
    assert r.stdout.splitlines() == (stdout_lines("trades", expected) if expected else [])


def test_files_max_messages(lake, tmp_path):
    data, written = lake
    r = run_consume("trades", "--from", "files", "--data-dir", str(data), "--max-messages", "77",
                    "--symbol", "BTC-USD", cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    expected = [t for t in written["trades"] if t.symbol == "BTC-USD"][:77]
    assert r.stdout.splitlines() == stdout_lines("trades", expected)


def test_files_timestamps_printed_as_stored(tmp_path):
    """timestamp-millis is a long on the wire: printed as that number, whatever its value
    (no detour through datetime, which cannot hold year 146 million)."""
    data = tmp_path / "data"
    odd = [Trade("k", "S", 1.0, 1.0, "buy", "1", ts, ts) for ts in (0, -1, 2**62, -(2**63), 2**63 - 1)]
    write_files(data, "trades", [odd])
    r = run_consume("trades", "--from", "files", "--data-dir", str(data), cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.splitlines() == stdout_lines("trades", odd)


def test_files_name_order_across_hours_and_numbers(tmp_path):
    data = tmp_path / "data"
    trades = make_trades(40, seed=2)
    # hour 22 written after hour 23 (a late process): name order puts it first
    write_files(data, "trades", [trades[20:30], trades[30:40]], clock=lambda: HOUR + 10.0)
    write_files(data, "trades", [trades[0:20]], clock=lambda: HOUR - 10.0)
    names = sorted((p for p in (data / "trades").iterdir()), key=_name_key)
    assert names[0].name.startswith("2025-11-20T22-")
    r = run_consume("trades", "--from", "files", "--data-dir", str(data), cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.splitlines() == stdout_lines("trades", trades)


def test_name_key_compares_numbers_as_numbers():
    names = ["2025-11-20T23-77-10.avro", "2025-11-20T23-77-9.avro", "2025-11-20T22-99-1.avro", "2025-11-20T23-100-0.avro"]
    assert sorted(names, key=lambda n: _name_key(Path(n))) == [
        "2025-11-20T22-99-1.avro", "2025-11-20T23-77-9.avro", "2025-11-20T23-77-10.avro", "2025-11-20T23-100-0.avro"]


def test_files_damaged_file_counted_and_skipped(tmp_path):
    data = tmp_path / "data"
    trades = make_trades(60, seed=3)
    write_files(data, "trades", [trades[0:20], trades[20:40], trades[40:60]])
    first, middle, last = sorted((data / "trades").iterdir(), key=_name_key)
    raw = middle.read_bytes()
    middle.write_bytes(raw[:-3])  # the last block lost its sync marker's end
    (data / "trades" / "2025-11-20T23-1-99.avro").write_bytes(b"not avro at all")
    r = run_consume("trades", "--from", "files", "--data-dir", str(data), cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    stderr = r.stderr.decode()
    # the damaged block of the middle file is skipped, everything else printed
    lines = r.stdout.splitlines()
    assert lines[:20] == stdout_lines("trades", trades[0:20])
    assert lines[-20:] == stdout_lines("trades", trades[40:60])
    assert set(lines[20:-20]) <= set(stdout_lines("trades", trades[20:40]))
    assert len(lines) < 60
    assert stderr.count("incomplete or damaged file:") == 2  # the first of the kind + summary
    assert "unreadable file" in stderr
    assert "Traceback" not in stderr


def test_files_missing_topic_folder(tmp_path):
    r = run_consume("trades", "--from", "files", "--data-dir", str(tmp_path / "nothing"), cwd=tmp_path)
    assert r.returncode == 1
    assert b"does not exist" in r.stderr
    assert r.stdout == b""


def test_bad_topic_name(tmp_path):
    r = run_consume("../trades", "--from", "files", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2 and b"bad topic" in r.stderr


def test_kafka_without_bootstrap_servers(tmp_path):
    r = run_consume("trades", "--from", "kafka", cwd=tmp_path)
    assert r.returncode == 2 and b"KAFKA_BOOTSTRAP_SERVERS" in r.stderr


@contextlib.contextmanager
def following(*args: str, cwd: Path, env: dict | None = None, stop_within: float = 15):
    """`atomfast consume ARGS` in a subprocess, following inside the block; then interrupted
    (SIGINT): it must still be running, and stop quietly (exit 0, no traceback)."""
    proc = subprocess.Popen([sys.executable, "-m", "atomfast.cli", "consume", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=child_env(env))
    try:
        yield proc
        assert proc.poll() is None  # still following
        proc.send_signal(signal.SIGINT)
        assert proc.wait(stop_within) == 0
        assert b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _read_lines(proc: subprocess.Popen, n: int, timeout: float) -> list[bytes]:
    """n lines from the child's stdout, or fail after timeout (a reader thread: no blocking)."""
    lines: list[bytes] = []
    done = threading.Event()

    def reader():
        while len(lines) < n:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip(b"\n"))
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    done.wait(timeout)
    return lines


def test_files_follow_until_sigint(tmp_path):
    data = tmp_path / "data"
    trades = make_trades(90, seed=4)
    write_files(data, "trades", [trades[0:30]])
    with following("trades", "--from", "files", "--data-dir", str(data), "--follow", cwd=tmp_path) as proc:
        assert _read_lines(proc, 30, 30) == stdout_lines("trades", trades[0:30])
        # a live sink: blocks appended to an open file, then a new file
        sink = FileSink(data, clock=lambda: HOUR + 60.0)
        sink.write("trades", trades[30:45], [b"k"] * 15, None)
        sink.flush()
        assert _read_lines(proc, 15, 30) == stdout_lines("trades", trades[30:45])
        sink.write("trades", trades[45:60], [b"k"] * 15, None)
        sink.close()
        write_files(data, "trades", [trades[60:90]])
        assert _read_lines(proc, 45, 30) == stdout_lines("trades", trades[45:90])


def test_files_follow_timeout(tmp_path):
    data = tmp_path / "data"
    write_files(data, "trades", [make_trades(5)])
    started = time.monotonic()
    r = run_consume("trades", "--from", "files", "--data-dir", str(data), "--follow", "--timeout", "1",
                    cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    assert len(r.stdout.splitlines()) == 5
    assert time.monotonic() - started < 20


def test_broken_pipe_is_quiet(lake, tmp_path):
    data, _ = lake
    env = child_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "atomfast.cli", "consume", "trades", "--from", "files", "--data-dir", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env,
    )
    proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err and b"Exception ignored" not in err


# ------------------------------------------------------------------------------------------------
# decoding units (no broker)


def test_plain_converter_restores_stored_numbers():
    schema = load_schemas()["trades"]
    convert = plain_converter(schema)
    when = dt.datetime(2025, 11, 20, 23, 6, 40, 123000, tzinfo=dt.timezone.utc)
    record = {"exchange": "k", "event_timestamp": when, "atom_timestamp": 5}
    assert convert(record) == {"exchange": "k", "event_timestamp": 1_763_680_000_123, "atom_timestamp": 5}
    micros = plain_converter({"type": "record", "name": "x", "fields": [
        {"name": "t", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]}]})
    assert micros({"t": dt.datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=dt.timezone.utc)}) == {"t": 1_000_005}
    assert micros({"t": None}) == {"t": None}


def test_value_decoder_framings_and_kinds():
    trades = make_trades(3)
    dec = ValueDecoder("trades", None)
    single = AvroEncoder("single_object").encode_many("trades", trades)
    bare = AvroEncoder("none").encode_many("trades", trades)
    confluent = AvroEncoder("confluent", {"trades": 7}).encode_many("trades", trades)
    for values in (single, bare, confluent):
        assert [dec.decode(v) for v in values] == [("trades", t._asdict()) for t in trades]
    # a single-object value names its own type, whatever the topic
    spread = AvroEncoder("single_object").encode("status", Status("k", "", "connected", "", 1, 2))
    assert dec.decode(spread)[0] == "status"

    def kind(value, decoder=dec):
        with pytest.raises(DecodeProblem) as exc:
            decoder.decode(value)
        return exc.value.kind

    assert kind(b"") == "empty value"
    assert kind(None) == "empty value"
    assert kind(b"\xc3\x01" + b"\x11" * 8 + bare[0]) == "unknown schema fingerprint"
    assert kind(single[0][:-3]) == "undecodable value"
    assert kind(single[0] + b"\x00") == "undecodable value"
    assert kind(b"\x07garbage") == "undecodable value"
    assert kind(b"\x00\x00\x00\x00\x07" + b"\xff" * 3) == "undecodable value"
    other = ValueDecoder("not_a_schema", None)
    assert kind(bare[0], other) == "bad framing"
    assert kind(confluent[0], other) == "bad framing"
    assert other.decode(single[1]) == ("trades", trades[1]._asdict())


class _Registry(http.server.BaseHTTPRequestHandler):
    schemas: dict[int, str] = {}
    requests: list[str] = []

    def do_GET(self):  # noqa: N802
        type(self).requests.append((self.path, self.headers.get("Authorization")))
        prefix = "/schemas/ids/"
        if self.path.startswith(prefix) and int(self.path[len(prefix):]) in self.schemas:
            body = json.dumps({"schema": self.schemas[int(self.path[len(prefix):])]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            body = b'{"error_code":40403,"message":"Schema not found"}'
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def registry_url():
    schemas = load_schemas()
    handler = type("Registry", (_Registry,), {
        "schemas": {42: json.dumps(schemas["trades"]), 43: json.dumps(schemas["lob"])}, "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_schema_registry_lookup_cached(registry_url):
    url, handler = registry_url
    reg = SchemaRegistry(url + "/", api_key="key", api_secret="secret")
    assert reg.schema(42)["name"] == "Trade"
    assert reg(42) is reg.schema(42)
    assert len(handler.requests) == 1
    assert handler.requests[0][1].startswith("Basic ")
    with pytest.raises(RegistryError, match="404"):
        reg.schema(99)
    with pytest.raises(RegistryError):
        reg.schema(99)  # remembered: no second request
    assert len(handler.requests) == 2
    assert "secret" not in repr(reg)
    trades = make_trades(4)
    dec = ValueDecoder("trades", reg)
    values = AvroEncoder("confluent", {"trades": 42}).encode_many("trades", trades)
    assert [dec.decode(v) for v in values] == [("trades", t._asdict()) for t in trades]
    with pytest.raises(DecodeProblem) as exc:
        dec.decode(b"\x00\x00\x00\x00\x63" + values[0][5:])
    assert exc.value.kind == "unknown schema id"


# ------------------------------------------------------------------------------------------------
# Kafka (a real broker)


def _create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(name, timeout=5)
        t = md.topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == partitions and all(
                p.leader >= 0 for p in t.partitions.values()):
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {name} not ready")


def _produce(bootstrap: str, name: str, items: list[tuple[bytes, bytes | None]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5})
    failed = []
    for key, value in items:
        producer.produce(name, value, key, on_delivery=lambda err, msg: err and failed.append(err))
    assert producer.flush(30) == 0
    assert not failed, failed


def _key(t: tuple) -> bytes:
    return f"{t[0]}:{t[1]}".encode()


def _by_market(lines: list[bytes]) -> dict[tuple[str, str], list[bytes]]:
    out: dict[tuple[str, str], list[bytes]] = {}
    for line in lines:
        obj = json.loads(line)
        out.setdefault((obj["exchange"], obj["symbol"]), []).append(line)
    return out


@pytest.fixture
def prefix() -> str:
    return f"test-consume-{uuid.uuid4().hex[:10]}."


@pytest.mark.kafka
def test_kafka_single_object_exact_and_bad_values_skipped(kafka_bootstrap, prefix, tmp_path):
    name = prefix + "trades"
    _create_topic(kafka_bootstrap, name, 3)
    trades = make_trades(500, seed=5)
    encoder = AvroEncoder("single_object")
    values = encoder.encode_many("trades", trades)
    items = [(_key(t), v) for t, v in zip(trades, values)]
    bad = [
        (b"kraken:BTC-USD", values[0][:-4]),  # truncated body
        (b"kraken:BTC-USD", b"\xc3\x01" + b"\x42" * 8 + b"\x00\x00"),  # unknown fingerprint
        (b"kraken:ETH-USD", b"\x06abc\xff"),  # bare and undecodable
        (b"kraken:ETH-USD", None),  # a tombstone
    ]
    items[100:100] = bad[:2]
    items[300:300] = bad[2:]
    _produce(kafka_bootstrap, name, items)

    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_TOPIC_PREFIX": prefix}
    r = run_consume("trades", env=env, cwd=tmp_path)  # kafka: the default once bootstrap is set
    stderr = r.stderr.decode()
    assert r.returncode == 0, stderr
    lines = r.stdout.splitlines()
    expected = stdout_lines("trades", trades)
    assert sorted(lines) == sorted(expected)
    assert _by_market(lines) == _by_market(expected)  # per market (key, partition) in order
    assert "undecodable value: 2" in stderr
    assert "unknown schema fingerprint: 1" in stderr
    assert "empty value: 1" in stderr
    assert stderr.count("undecodable value") == 2  # the first one's line, and the summary
    assert "Traceback" not in stderr

    # filters, a prefix given on the command line, --max-messages
    r = run_consume("trades", "--from", "kafka", "--prefix", prefix, "--exchange", "kraken", "--symbol", "ETH-USD",
                    env={"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    want = [t for t in trades if (t.exchange, t.symbol) == ("kraken", "ETH-USD")]
    assert r.stdout.splitlines() == stdout_lines("trades", want)  # one key: one partition, in order
    r = run_consume("trades", "--max-messages", "10", env=env, cwd=tmp_path)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 10


@pytest.mark.kafka
def test_kafka_confluent_framing_with_and_without_registry(kafka_bootstrap, prefix, tmp_path, registry_url):
    url, handler = registry_url
    name = prefix + "lob"
    _create_topic(kafka_bootstrap, name, 1)
    lob = [Lob(e, s, 100.0 + i, 0.000022900 * i, "buy", T_MS + i, T_MS * 1000 + i) for i, (e, s) in
           enumerate(MARKETS * 5)]
    values = AvroEncoder("confluent", {"lob": 43}).encode_many("lob", lob)
    unknown_id = b"\x00\x00\x00\x01\x00" + values[0][5:]
    _produce(kafka_bootstrap, name, [(_key(t), v) for t, v in zip(lob, values)] + [(b"k", unknown_id)])
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_TOPIC_PREFIX": prefix}

    r = run_consume("lob", env={**env, "SCHEMA_REGISTRY_URL": url}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.splitlines() == stdout_lines("lob", lob)
    assert "unknown schema id: 1" in r.stderr.decode()
    assert sorted(p for p, _ in handler.requests) == ["/schemas/ids/256", "/schemas/ids/43"]  # cached

    # without a registry the topic's own schema decodes the body
    r = run_consume("lob", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.splitlines() == stdout_lines("lob", lob + lob[:1])


@pytest.mark.kafka
def test_kafka_group_commits_what_was_printed(kafka_bootstrap, prefix, tmp_path):
    name = prefix + "trades"
    _create_topic(kafka_bootstrap, name, 1)
    trades = make_trades(50, seed=6)
    _produce(kafka_bootstrap, name, [(_key(t), v) for t, v in
                                     zip(trades, AvroEncoder("single_object").encode_many("trades", trades))])
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_TOPIC_PREFIX": prefix}
    group = prefix + "group"
    expected = stdout_lines("trades", trades)
    r1 = run_consume("trades", "--group", group, "-n", "20", env=env, cwd=tmp_path)
    assert r1.returncode == 0, r1.stderr.decode()
    assert r1.stdout.splitlines() == expected[:20]
    r2 = run_consume("trades", "--group", group, env=env, cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr.decode()
    assert r2.stdout.splitlines() == expected[20:]
    r3 = run_consume("trades", "--group", group, env=env, cwd=tmp_path)
    assert r3.returncode == 0 and r3.stdout == b""
    r4 = run_consume("trades", "--group", group, "--from-beginning", env=env, cwd=tmp_path)
    assert r4.stdout.splitlines() == expected


@pytest.mark.kafka
def test_kafka_follow_until_sigint(kafka_bootstrap, prefix, tmp_path):
    name = prefix + "trades"
    _create_topic(kafka_bootstrap, name, 2)
    trades = make_trades(80, seed=7)
    values = AvroEncoder("single_object").encode_many("trades", trades)
    items = [(_key(t), v) for t, v in zip(trades, values)]
    _produce(kafka_bootstrap, name, items[:40])
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_TOPIC_PREFIX": prefix}
    with following("trades", "--follow", "--from-beginning", cwd=tmp_path, env=env, stop_within=20) as proc:
        first = _read_lines(proc, 40, 60)
        assert sorted(first) == sorted(stdout_lines("trades", trades[:40]))
        _produce(kafka_bootstrap, name, items[40:])
        second = _read_lines(proc, 40, 60)
        assert sorted(second) == sorted(stdout_lines("trades", trades[40:]))
        assert _by_market(first + second) == _by_market(stdout_lines("trades", trades))


@pytest.mark.kafka
def test_kafka_missing_topic_and_empty_topic(kafka_bootstrap, prefix, tmp_path):
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_TOPIC_PREFIX": prefix}
    _create_topic(kafka_bootstrap, prefix + "ticker", 2)
    r = run_consume("ticker", env=env, cwd=tmp_path, timeout=60)
    assert r.returncode == 0 and r.stdout == b"", r.stderr.decode()
    r = run_consume("spread", env=env, cwd=tmp_path, timeout=60)
    assert r.returncode == 1
    assert (prefix + "spread").encode() in r.stderr
