"""The files sink's object container files read by Apache Avro's Java reader.

``tools/avro-java`` (``AvroToJson.java``: ``DataFileReader`` + ``GenericDatumReader``, the
writer's schema from the file header; Avro's jars resolved by Maven into a git-ignored
``lib/``) prints every file it reads as JSON: codec, schema, block count and the records as read
(no logical types applied). Each test compares that with the events written, value by value and
type by type (a double is a float, a long an int), and with fastavro's reading of the same file.

Needs Java 17+ and, for the first run, Maven (Maven Central): a test that cannot have them
FAILS, as the Kafka tests do without a broker; ``-m "not java"`` deselects them.
"""
from __future__ import annotations

import errno
import importlib.util
import io
import json
import os
import sys
import zlib
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import fastavro
import pytest

from atomfast import events as ev
from atomfast.avro import AvroEncoder, load_schemas
from atomfast.sinks.files import OCF_MAGIC, FileSink
from atomfast.testing import ROOT, SAMPLE_EVENTS, fixture_path, strip_logical

pytestmark = pytest.mark.java

SCHEMAS = load_schemas()
ENC = AvroEncoder("none")
TOPIC_OF = {cls: topic for topic, cls in ev.TOPICS.items()}
# 2026-11-20T23:59:58Z: two seconds before the hour changes
T0 = datetime(2026, 11, 20, 23, 59, 58, tzinfo=timezone.utc).timestamp()
TOOL = ROOT / "tools" / "avro-java" / "avro_java.py"


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def java():
    """tools/avro-java/avro_java.py as a module, its jars resolved and the reader compiled."""
    name = "atomfast_tools_avro_java"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, TOOL)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    try:
        module.prepare()
    except module.AvroJavaError as exc:
        pytest.fail(f"the Java Avro reader cannot run (tools/avro-java needs Java 17+, and Maven or a filled "
                    f"tools/avro-java/lib):\n{exc}", pytrace=False)
    return module


# ---- what the records must read as --------------------------------------------------------


def _primitive(schema_type) -> str:
    t = schema_type
    while isinstance(t, dict):
        t = t["type"]
    return t


def expected(topic: str, records) -> list[dict]:
    """The records as Java prints them: field order of the schema, doubles as floats, longs as
    ints (no logical types)."""
    fields = [(f["name"], _primitive(f["type"])) for f in SCHEMAS[topic]["fields"]]
    out = []
    for r in records:
        row = {}
        for (name, kind), value in zip(fields, r):
            if kind in ("double", "float"):
                value = float(value)
            elif kind in ("long", "int"):
                value = int(value)
            row[name] = value
        out.append(row)
    return out


def typed(value):
    """``value`` with every leaf tagged by its type: 1 != 1.0 != True here."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, float) and value != value:
        return ("float", "nan")
    return (type(value).__name__, value)


def assert_same(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert list(g) == list(w), f"record {i}: fields {list(g)} != {list(w)}"
        assert typed(g) == typed(w), f"record {i}: {g} != {w}"


def _blocks(path: Path) -> tuple[dict[str, bytes], list[tuple[int, bytes]]]:
    """Independent parse of the container: (metadata, [(count, data decompressed)]); every
    block is followed by the header's sync marker."""
    buf = io.BytesIO(path.read_bytes())

    def long() -> int:
        shift = result = 0
        while True:
            b = buf.read(1)[0]
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return (result >> 1) ^ -(result & 1)

    assert buf.read(4) == OCF_MAGIC
    meta: dict[str, bytes] = {}
    while (n := long()) != 0:
        if n < 0:
            long()
        for _ in range(abs(n)):
            key = buf.read(long()).decode()
            meta[key] = buf.read(long())
    sync = buf.read(16)
    blocks = []
    end = len(buf.getvalue())
    while buf.tell() < end:
        count = long()
        data = buf.read(long())
        assert buf.read(16) == sync, "a block not followed by the sync marker"
        if meta.get("avro.codec", b"null") == b"deflate":
            data = zlib.decompress(data, -15)
        blocks.append((count, data))
    return meta, blocks


def blocks_of(path: Path) -> int:
    return len(_blocks(path)[1])


def fastavro_records(path: Path) -> tuple[list[dict], str]:
    """The file's records decoded by fastavro (the blocks by ``schemaless_reader`` with the
    logical types stripped: some sample timestamps are beyond datetime's range) and the codec
    ``fastavro.reader`` sees."""
    with open(path, "rb") as f:
        codec = fastavro.reader(f).codec
    meta, blocks = _blocks(path)
    schema = fastavro.parse_schema(strip_logical(json.loads(meta["avro.schema"])))
    out = []
    for count, data in blocks:
        stream = io.BytesIO(data)
        out.extend(fastavro.schemaless_reader(stream, schema, None) for _ in range(count))
        assert stream.tell() == len(data)
    return out, codec


def files(root: Path, topic: str) -> list[Path]:
    return sorted((root / topic).glob("*.avro"))


# ---- tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_every_topic_in_several_blocks(java, tmp_path, codec):
    """Every bundled topic, each event its own write and block (several blocks per file)."""
    sink = FileSink(tmp_path, codec=codec, clock=Clock(T0 - 100), block_records=2)
    for topic, records in SAMPLE_EVENTS.items():
        batch = list(records) * 3
        for i in range(0, len(batch), 2):
            part = batch[i:i + 2]
            sink.write(topic, part, [], ENC.encode_many(topic, part))
    sink.close()
    paths = {topic: files(tmp_path, topic) for topic in SAMPLE_EVENTS}
    assert all(len(p) == 1 for p in paths.values())
    docs = java.read_files([p[0] for p in paths.values()])
    for (topic, [path]), doc in zip(paths.items(), docs):
        assert doc["file"] == str(path)
        assert doc["codec"] == codec
        assert doc["schema"] == SCHEMAS[topic]  # the writer's schema Java parsed from the header
        assert doc["blocks"] == blocks_of(path) == -(-len(SAMPLE_EVENTS[topic]) * 3 // 2)
        want = expected(topic, list(SAMPLE_EVENTS[topic]) * 3)
        assert_same(doc["records"], want)
        got, fa_codec = fastavro_records(path)
        assert fa_codec == codec
        assert_same(got, want)


def _trades(n: int, start: int = 0) -> list[ev.Trade]:
    return [ev.Trade("kraken", "BTC-USD" if i % 2 else "SHIB-USD", 37251.3 + i / 7 if i % 2 else 2.29e-05 * (i + 1),
                     0.1 * i, ev.BUY if i % 3 else ev.SELL, f"T{i}-\u00fc\u20ac\U0001f600\"\\\n",
                     1_795_219_199_000 + i, 1_795_219_199_000_000 + i)
            for i in range(start, start + n)]


def test_rotated_files_many_blocks_and_edge_values(java, tmp_path):
    """Blocks cut by size, a file per hour; strings with quotes, escapes, non-BMP characters;
    doubles at their extremes."""
    clock = Clock(T0)
    sink = FileSink(tmp_path, clock=clock, block_bytes=4096, codec="deflate")
    before = _trades(1500)
    odd = [ev.Trade("x", "", v, -v, ev.BUY, "", -(2**63), 2**63 - 1)
           for v in (0.0, -0.0, 5e-324, 1.7976931348623157e308, float("inf"), float("-inf"), 1e23, 0.1 + 0.2)]
    for i in range(0, 1500, 50):
        sink.write("trades", before[i:i + 50], [b"kraken:BTC-USD"], ENC.encode_many("trades", before[i:i + 50]))
    sink.write("trades", odd, [b"x:"], ENC.encode_many("trades", odd))
    clock.t = T0 + 5  # the next hour
    after = _trades(300, start=1500)
    sink.write("trades", after, [b"kraken:BTC-USD"], ENC.encode_many("trades", after))
    sink.close()
    first, second = files(tmp_path, "trades")
    assert first.name.startswith("2026-11-20T23-") and second.name.startswith("2026-11-21T00-")
    d1, d2 = java.read_files([first, second])
    assert d1["blocks"] == blocks_of(first) > 5
    assert d2["blocks"] == blocks_of(second) == 1
    assert_same(d1["records"], expected("trades", before + odd))
    assert_same(d2["records"], expected("trades", after))
    # -0.0 keeps its sign, the extremes are exact
    got = [r["price"] for r in d1["records"][-len(odd):]]
    assert [repr(x) for x in got] == [repr(float(o.price)) for o in odd]


def test_file_written_through_a_disk_fault(java, tmp_path, monkeypatch):
    """A block whose write failed halfway is cut off the file, held, and written again once the
    disk takes data: Java reads every event once, and the sink's status events."""
    clock, mono = Clock(T0 - 100), Clock(1000.0)
    sink = FileSink(tmp_path, clock=clock, monotonic=mono, retry_seconds=1.0, block_records=100)
    a, b, c = _trades(100), _trades(100, start=100), _trades(100, start=200)
    sink.write("trades", a, [b"kraken:BTC-USD"], ENC.encode_many("trades", a))
    [path] = files(tmp_path, "trades")
    size_a = path.stat().st_size

    real = os.pwrite
    failures = []

    def half_then_full(fd, data, offset):
        if fd == sink._topics["trades"].fd:
            failures.append(len(data))
            if len(failures) == 1:
                return real(fd, bytes(data)[: len(data) // 2], offset)  # a short write...
            raise OSError(errno.ENOSPC, "No space left on device")  # ...then the disk is full
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", half_then_full)
    sink.write("trades", b, [b"kraken:BTC-USD"], ENC.encode_many("trades", b))
    assert len(failures) >= 2 and sink.stats()["state"] == "disk_full"
    assert path.stat().st_size == size_a  # the half block was cut off
    sink.write("trades", c, [b"kraken:BTC-USD"], ENC.encode_many("trades", c))  # held too
    assert java.read_files([path])[0]["records"] == expected("trades", a)  # a live file reads whole

    monkeypatch.setattr(os, "pwrite", real)
    mono.t += 2
    sink.poll()
    assert sink.stats()["state"] == "ok"
    sink.close()
    [doc] = java.read_files([path])
    assert doc["blocks"] == blocks_of(path) == 3
    assert_same(doc["records"], expected("trades", a + b + c))
    [status] = files(tmp_path, "status")
    [sdoc] = java.read_files([status])
    assert [(r["exchange"], r["status"]) for r in sdoc["records"]] == [("kraken", "disk_full"), ("kraken", "recovered")]


class Recorder:
    """A sink with no framing: the pipeline hands it the event tuples."""

    framing = None

    def __init__(self) -> None:
        self.records: dict[str, list] = {}

    def write(self, topic, records, keys, values):
        assert values is None
        self.records.setdefault(topic, []).extend(records)

    def poll(self) -> None:
        pass

    def flush(self, timeout: float = 30.0) -> int:
        return 0

    def close(self) -> None:
        pass

    def stats(self) -> dict:
        return {}


@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_a_replayed_capture(java, tmp_path, codec):
    """A real capture (Kraken's book channel) replayed to the files sink: the pipeline's Rust
    encoder writes the bodies, the sink the container; Java reads exactly the events the
    pipeline made (recorded as tuples by a sink without framing, in a second replay)."""
    from atomfast.replay import replay_capture

    capture = fixture_path("cryptofeed/KRAKEN.ws.50.0")
    sink = FileSink(tmp_path / "data", codec=codec)
    metrics = replay_capture([capture], "kraken", sink).metrics
    recorder = Recorder()
    replay_capture([capture], "kraken", recorder)
    counted = {t: n for t, n in metrics.events.items() if n}
    assert {t: len(r) for t, r in recorder.records.items()} == counted
    assert counted.get("lob", 0) > 1000  # the book's events are most of it

    topics = sorted(counted)
    paths = [p for t in topics for p in files(tmp_path / "data", t)]
    assert sorted({p.parent.name for p in paths}) == topics
    docs = java.read_files(paths)
    got: dict[str, list] = {}
    for path, doc in zip(paths, docs):
        assert doc["codec"] == codec and doc["blocks"] == blocks_of(path)
        got.setdefault(path.parent.name, []).extend(doc["records"])
        fa, _ = fastavro_records(path)
        assert_same(doc["records"], fa)
    assert Counter({t: len(r) for t, r in got.items()}) == Counter(counted)
    for topic in topics:
        assert_same(got[topic], expected(topic, recorder.records[topic]))


def test_a_bad_file_fails_in_java(java, tmp_path):
    """The reader is a real check: a block with a wrong sync marker makes Java fail."""
    sink = FileSink(tmp_path, clock=Clock(T0 - 100))
    t = _trades(10)
    sink.write("trades", t, [], ENC.encode_many("trades", t))
    sink.close()
    [path] = files(tmp_path, "trades")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the block's trailing sync marker
    path.write_bytes(bytes(data))
    with pytest.raises(java.AvroJavaError, match="(?i)sync"):
        java.read_files([path])
