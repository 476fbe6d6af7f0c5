"""The files sink: Avro object container files, hourly, read back exactly with fastavro.

The clock is injected, so blocks written by time and the hourly rotation are tested without
waiting. Files are read with ``fastavro.reader`` and with a small independent parser of the
container format (the spec's layout, byte by byte).
"""
from __future__ import annotations

import io
import json
import os
import re
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import fastavro
import pytest

from atomfast import events as ev
from atomfast.avro import AvroEncoder, load_schemas
from atomfast.sinks.base import Sink
from atomfast.sinks.files import OCF_MAGIC, FileSink
from atomfast.testing import SAMPLE_EVENTS, strip_logical

SCHEMAS = load_schemas()
ENC = AvroEncoder("none")

# 2026-11-20T23:59:59.500Z, half a second before the hour changes
T0 = datetime(2026, 11, 20, 23, 59, 59, 500_000, tzinfo=timezone.utc).timestamp()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def trades(n: int, start: int = 0) -> list[ev.Trade]:
    return [
        ev.Trade(
            "kraken",
            "SHIB-USD" if i % 2 else "BTC-USD",
            0.000022900 if i % 2 else 37251.3 + i / 10,
            1.5 + i,
            ev.BUY if i % 3 else ev.SELL,
            f"T{i:08d}-ü",
            1_795_219_199_000 + i,
            1_795_219_199_000_000 + i,
        )
        for i in range(start, start + n)
    ]


def lobs(n: int) -> list[ev.Lob]:
    return [ev.Lob("binance", "ETH-USDT", 3000.0 + i, float(i % 4), ev.SELL, i, -i) for i in range(n)]


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def read_fastavro(path: Path, topic: str) -> list[dict]:
    """The file read by fastavro.reader (timestamp-millis values come back as datetimes)."""
    with open(path, "rb") as f:
        reader = fastavro.reader(f)
        assert reader.writer_schema["name"] == fastavro.parse_schema(SCHEMAS[topic])["name"]
        return list(reader)


def as_dicts(records: list[tuple]) -> list[dict]:
    """What fastavro.reader gives for these records: timestamp-millis as aware datetimes."""
    out = []
    for r in records:
        d = r._asdict()  # type: ignore[attr-defined]
        for f in SCHEMAS[TOPIC_OF[type(r)]]["fields"]:
            if isinstance(f["type"], dict) and f["type"].get("logicalType") == "timestamp-millis":
                d[f["name"]] = EPOCH + timedelta(milliseconds=d[f["name"]])
        out.append(d)
    return out


TOPIC_OF = {cls: topic for topic, cls in ev.TOPICS.items()}


def read_ocf(path: Path) -> tuple[dict[str, bytes], bytes, list[tuple[int, bytes]]]:
    """Independent parse of an object container file: (metadata, sync, [(count, data)])."""
    buf = io.BytesIO(path.read_bytes())

    def long() -> int:
        shift = result = 0
        while True:
            b = buf.read(1)[0]
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return (result >> 1) ^ -(result & 1)

    assert buf.read(4) == OCF_MAGIC == b"Obj\x01"
    meta: dict[str, bytes] = {}
    while True:
        n = long()
        if n == 0:
            break
        if n < 0:
            long()
            n = -n
        for _ in range(n):
            key = buf.read(long()).decode()
            meta[key] = buf.read(long())
    sync = buf.read(16)
    blocks = []
    while buf.tell() < len(buf.getvalue()):
        count = long()
        size = long()
        data = buf.read(size)
        assert len(data) == size
        assert buf.read(16) == sync, "block not followed by the sync marker"
        if meta.get("avro.codec", b"null") == b"deflate":
            data = zlib.decompress(data, -15)
        blocks.append((count, data))
    return meta, sync, blocks


def files(root: Path, topic: str) -> list[Path]:
    return sorted((root / topic).glob("*.avro"))


# ---- tests ----------------------------------------------------------------------------------


def test_is_a_sink(tmp_path):
    sink = FileSink(tmp_path)
    assert isinstance(sink, FileSink)
    s: Sink = sink  # structural: the protocol's methods and attribute
    assert s.framing == "none"
    for name in ("write", "poll", "flush", "close", "stats"):
        assert callable(getattr(sink, name))
    sink.close()


def test_round_trip_exact(tmp_path):
    clock = Clock(T0 - 10)
    sink = FileSink(tmp_path, clock=clock)
    t = trades(25)
    lb = lobs(7)
    # one frame of each topic at a time, as the pipeline does
    for i in range(0, 25, 5):
        batch = t[i : i + 5]
        sink.write("trades", batch, [b"kraken:BTC-USD"] * len(batch), ENC.encode_many("trades", batch))
    sink.write("lob", lb, [b"binance:ETH-USDT"] * 7, ENC.encode_many("lob", lb))
    status = [ev.Status("kraken", "", "connected", "", 1, 2)]
    sink.write("status", status, [b"kraken:"], None)  # values=None: the sink encodes
    assert sink.stats()["pending"] == 33
    sink.close()

    [tf] = files(tmp_path, "trades")
    assert re.fullmatch(rf"2026-11-20T23-{os.getpid()}-\d+\.avro", tf.name)
    assert read_fastavro(tf, "trades") == as_dicts(t)
    [lf] = files(tmp_path, "lob")
    assert read_fastavro(lf, "lob") == as_dicts(lb)
    [sf] = files(tmp_path, "status")
    assert read_fastavro(sf, "status") == as_dicts(status)

    # schema resolution against a reader schema works as well (fastavro still applies the
    # writer's logical types, so the timestamp is left out of this comparison)
    with open(tf, "rb") as f:
        got = list(fastavro.reader(f, reader_schema=strip_logical(SCHEMAS["trades"])))
    assert [{k: v for k, v in g.items() if k != "event_timestamp"} for g in got] == [
        {k: v for k, v in r._asdict().items() if k != "event_timestamp"} for r in t
    ]

    # independent parse: header metadata, sync marker, one block with the bodies
    meta, sync, blocks = read_ocf(tf)
    assert json.loads(meta["avro.schema"]) == SCHEMAS["trades"]
    assert meta["avro.codec"] == b"null"
    assert len(sync) == 16
    assert blocks == [(25, ENC.encode_block("trades", t))]
    assert not files(tmp_path, "ticker")  # nothing written, no file

    stats = sink.stats()
    assert stats["delivered"] == 33 and stats["pending"] == 0 and stats["failed"] == 0
    assert stats["files"] == 3 and stats["open_files"] == 0 and stats["blocks"] == 3
    assert stats["bytes"] == sum(p.stat().st_size for p in (tf, lf, sf))


def test_blocks_by_count_and_bytes(tmp_path):
    sink = FileSink(tmp_path, clock=Clock(T0 - 100))
    t = trades(2500)
    for i in range(0, 2500, 20):
        batch = t[i : i + 20]
        sink.write("trades", batch, [], ENC.encode_many("trades", batch))
    # blocks at 1000 and 2000 records; the file is readable while the sink is open
    assert sink.stats()["blocks"] == 2 and sink.stats()["pending"] == 500
    [tf] = files(tmp_path, "trades")
    assert read_fastavro(tf, "trades") == as_dicts(t[:2000])
    sink.flush()
    assert sink.stats()["pending"] == 0
    assert read_fastavro(tf, "trades") == as_dicts(t)
    assert [c for c, _ in read_ocf(tf)[2]] == [1000, 1000, 500]

    big = [r._replace(trade_id="x" * 10_000) for r in trades(10)]
    for r in big:
        sink.write("trades", [r], [], [ENC.encode("trades", r)])
    sink.close()
    # 64 KiB: a block after the 7th 10 kB record, the rest on close
    assert [c for c, _ in read_ocf(tf)[2]] == [1000, 1000, 500, 7, 3]
    assert read_fastavro(tf, "trades") == as_dicts(t + big)


def test_block_after_a_second_on_poll(tmp_path):
    clock = Clock(T0 - 100)
    sink = FileSink(tmp_path, clock=clock)
    t = trades(10)
    sink.write("trades", t[:5], [], ENC.encode_many("trades", t[:5]))
    clock.t += 0.5
    sink.write("trades", t[5:], [], ENC.encode_many("trades", t[5:]))
    sink.poll()
    assert sink.stats()["blocks"] == 0 and not files(tmp_path, "trades")
    clock.t += 0.5  # the oldest record is now a second old
    sink.poll()
    assert sink.stats()["blocks"] == 1 and sink.stats()["pending"] == 0
    [tf] = files(tmp_path, "trades")
    assert read_fastavro(tf, "trades") == as_dicts(t)
    sink.close()


def test_rotation_on_the_hour(tmp_path):
    clock = Clock(T0)  # 23:59:59.5
    sink = FileSink(tmp_path, clock=clock)
    before, after = trades(30), trades(40, start=30)
    sink.write("trades", before[:10], [], ENC.encode_many("trades", before[:10]))
    clock.t += 0.2
    sink.write("trades", before[10:], [], ENC.encode_many("trades", before[10:]))
    clock.t += 0.4  # 00:00:00.1 on the 21st: a new file
    sink.write("trades", after[:25], [], ENC.encode_many("trades", after[:25]))
    first = files(tmp_path, "trades")
    assert len(first) == 1 and first[0].name.startswith("2026-11-20T23-")
    assert read_fastavro(first[0], "trades") == as_dicts(before)  # complete and closed
    sink.write("trades", after[25:], [], ENC.encode_many("trades", after[25:]))
    sink.close()
    old, new = files(tmp_path, "trades")
    assert old == first[0]
    assert re.fullmatch(rf"2026-11-21T00-{os.getpid()}-\d+\.avro", new.name)
    assert read_fastavro(old, "trades") == as_dicts(before)
    assert read_fastavro(new, "trades") == as_dicts(after)
    assert sink.stats()["files"] == 2


def test_rotation_by_poll_alone(tmp_path):
    clock = Clock(T0)
    sink = FileSink(tmp_path, clock=clock)
    t = trades(3)
    sink.write("trades", t, [], ENC.encode_many("trades", t))
    clock.t += 0.3  # 23:59:59.8: not yet a second old
    sink.poll()
    assert sink.stats()["pending"] == 3
    clock.t += 0.3  # 00:00:00.1: the block belongs to the 23h file, which is then closed
    sink.poll()
    assert sink.stats()["pending"] == 0 and sink.stats()["open_files"] == 0
    [f23] = files(tmp_path, "trades")
    assert f23.name.startswith("2026-11-20T23-")
    assert read_fastavro(f23, "trades") == as_dicts(t)
    clock.t += 3600 * 5  # hours without a record: no empty files
    sink.poll()
    u = trades(2, start=3)
    sink.write("trades", u, [], ENC.encode_many("trades", u))
    sink.close()
    f23b, f05 = files(tmp_path, "trades")
    assert f23b == f23 and f05.name.startswith("2026-11-21T05-")
    assert read_fastavro(f05, "trades") == as_dicts(u)


def test_deflate(tmp_path):
    sink = FileSink(tmp_path, codec="deflate", clock=Clock(T0 - 100), block_records=100)
    t = trades(250)
    sink.write("trades", t, [], ENC.encode_many("trades", t))
    sink.close()
    [tf] = files(tmp_path, "trades")
    with open(tf, "rb") as f:
        reader = fastavro.reader(f, reader_schema=strip_logical(SCHEMAS["trades"]))
        assert reader.codec == "deflate"
        assert list(reader) == as_dicts(t)
    meta, _, blocks = read_ocf(tf)
    assert meta["avro.codec"] == b"deflate"
    assert [c for c, _ in blocks] == [250]  # one write() of 250 records: one block
    assert tf.stat().st_size < len(ENC.encode_block("trades", t))


def test_new_files_per_process_never_appended(tmp_path):
    clock = Clock(T0 - 100)
    a = FileSink(tmp_path, clock=clock)
    b = FileSink(tmp_path, clock=clock)  # another process's sink in the same hour and folder
    ta, tb = trades(5), trades(6, start=5)
    a.write("trades", ta, [], ENC.encode_many("trades", ta))
    b.write("trades", tb, [], ENC.encode_many("trades", tb))
    a.close()
    b.close()
    fa, fb = files(tmp_path, "trades")
    assert fa != fb
    got = sorted([read_fastavro(fa, "trades"), read_fastavro(fb, "trades")], key=len)
    assert got == [as_dicts(ta), as_dicts(tb)]
    # a restarted process (a new sink) starts a new file, leaving the old ones untouched
    sizes = {p: p.stat().st_size for p in (fa, fb)}
    c = FileSink(tmp_path, clock=clock)
    c.write("trades", ta, [], ENC.encode_many("trades", ta))
    c.close()
    assert len(files(tmp_path, "trades")) == 3
    assert {p: p.stat().st_size for p in (fa, fb)} == sizes


def test_existing_file_name_is_skipped(tmp_path, monkeypatch):
    import atomfast.sinks.files as mod

    monkeypatch.setattr(mod, "_file_seq", iter(range(10)))
    stamp = f"2026-11-20T23-{os.getpid()}"
    (tmp_path / "trades").mkdir()
    squatter = tmp_path / "trades" / f"{stamp}-0.avro"
    squatter.write_bytes(b"someone else's")
    sink = FileSink(tmp_path, clock=Clock(T0 - 100))
    t = trades(2)
    sink.write("trades", t, [], ENC.encode_many("trades", t))
    sink.close()
    assert squatter.read_bytes() == b"someone else's"
    assert read_fastavro(tmp_path / "trades" / f"{stamp}-1.avro", "trades") == as_dicts(t)


def test_close_idempotent_and_write_after_close(tmp_path):
    sink = FileSink(tmp_path, clock=Clock(T0 - 100))
    t = trades(3)
    with sink:
        sink.write("trades", t, [], ENC.encode_many("trades", t))
        sink.write("trades", [], [], [])  # empty frames are fine
        sink.write("trades", [], [], None)
        assert sink.flush() == 0
    sink.close()
    sink.close()
    sink.poll()  # harmless after close
    with pytest.raises(RuntimeError):
        sink.write("trades", t, [], ENC.encode_many("trades", t))
    [tf] = files(tmp_path, "trades")
    assert read_fastavro(tf, "trades") == as_dicts(t)


def test_rejects_unknown_topic_and_codec(tmp_path):
    with pytest.raises(ValueError):
        FileSink(tmp_path, codec="snappy")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FileSink(tmp_path, encoder=AvroEncoder("single_object"))
    sink = FileSink(tmp_path)
    with pytest.raises(KeyError):
        sink.write("nope", [("x",)], [b""], [b"\x02x"])
    sink.close()


def test_every_topic_round_trips(tmp_path):
    """One event of every bundled topic, through the sink's own encoding."""
    sink = FileSink(tmp_path, clock=Clock(T0 - 100))
    for topic, records in SAMPLE_EVENTS.items():
        sink.write(topic, records, [], None)
    sink.close()
    for topic, records in SAMPLE_EVENTS.items():
        [path] = files(tmp_path, topic)
        # independent container parse + fastavro bodies (logical types off: some of these
        # timestamps are beyond datetime's range)
        meta, _, blocks = read_ocf(path)
        schema = fastavro.parse_schema(strip_logical(json.loads(meta["avro.schema"])))
        [(count, data)] = blocks
        stream = io.BytesIO(data)
        got = [fastavro.schemaless_reader(stream, schema, None) for _ in range(count)]
        assert stream.tell() == len(data)
        assert got == [r._asdict() for r in records]


def test_the_pipeline_bodies_are_written_as_they_are(tmp_path):
    """Behind the pipeline, the files sink declares framing "none": the bare bodies, written by
    the pipeline's rows (``AvroRows``) or the Rust encoder, go into its blocks byte for byte,
    the encoder's bytes exactly; the sink encodes nothing itself (no encoder of its own, no
    fastavro). The high-volume topics come as one buffer per frame (``write_rows``), the others
    as a list of values (``write``)."""
    from atomfast.events import Status
    from atomfast.pipeline import Pipeline

    sink = FileSink(tmp_path, clock=Clock(T0 - 100), block_records=20)
    seen: list[tuple[str, bytes]] = []
    calls: list[tuple[str, str]] = []
    buffer, write, write_rows = sink._buffer, sink.write, sink.write_rows

    def spy_buffer(topic, keys, data, count):
        assert isinstance(data, bytes) and len(keys) == count
        seen.append((topic, data))
        buffer(topic, keys, data, count)

    def spy_write(topic, records, keys, values):
        calls.append(("write", topic))
        write(topic, records, keys, values)

    def spy_write_rows(topic, rows):
        calls.append(("write_rows", topic))
        write_rows(topic, rows)

    def no_encoding():
        raise AssertionError("the files sink encoded records itself")

    # (the pipeline takes sink.write and sink.write_rows once)
    sink._buffer, sink.write, sink.write_rows = spy_buffer, spy_write, spy_write_rows  # type: ignore[method-assign]
    sink._get_encoder = no_encoding  # type: ignore[method-assign]
    pipe = Pipeline(sink, timed=False)
    assert pipe.encoder.framing == "none"
    t, lb = trades(30), lobs(10)
    status = Status("kraken", "BTC-USD", "subscribed", "", int(T0 * 1000), int(T0 * 1000000))
    for i in range(10):  # ten frames: three trades and a lob each
        for r in t[3 * i:3 * i + 3]:
            pipe.emit("trades", r)
        pipe.emit("lob", lb[i])
        assert pipe.end_frame() == 4
    pipe.emit("status", status)
    assert pipe.end_frame() == 1
    pipe.close()

    assert calls == [("write_rows", "trades"), ("write_rows", "lob")] * 10 + [("write", "status")]
    bodies = {topic: b"".join(d for tp, d in seen if tp == topic) for topic in ("trades", "lob", "status")}
    assert bodies == {"trades": ENC.encode_block("trades", t), "lob": ENC.encode_block("lob", lb),
                      "status": ENC.encode_block("status", [status])}
    [tf] = files(tmp_path, "trades")
    _, _, blocks = read_ocf(tf)
    assert [c for c, _ in blocks] == [21, 9]  # cut after the write that reached 20 records
    assert b"".join(d for _, d in blocks) == bodies["trades"]
    assert read_fastavro(tf, "trades") == as_dicts(t)
    [lf] = files(tmp_path, "lob")
    assert read_ocf(lf)[2] == [(10, bodies["lob"])]
    assert read_fastavro(lf, "lob") == as_dicts(lb)
