"""`atomfast export TOPIC --format parquet --out DIR`: the lake as Hive-partitioned Parquet.

Real captures are replayed into the files sink (and into a real broker), exported as a user runs
it (a subprocess), and read back by DuckDB (`read_parquet(..., hive_partitioning=true)`) and
polars: the row counts are the replay summaries' exactly, every row is the Avro source's record
(decoded independently with fastavro) in the source's order, the types are the schema's
(timestamps as timestamps) and the partitions are `exchange=/date=` (the UTC date of
`event_timestamp`). Incremental runs export only what is new, exactly once, also after an
export that was stopped half-way.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

duckdb = pytest.importorskip("duckdb")
pl = pytest.importorskip("polars")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
fastavro = pytest.importorskip("fastavro")

from atomfast import export as exp  # noqa: E402
from atomfast.events import Lob  # noqa: E402
from atomfast.sinks.files import FileSink  # noqa: E402
from atomfast.testing import fixture_path, run_cli  # noqa: E402

#: capture -> (exchange, the replay's exact events per topic, tests/test_captures.py's rows)
CAPTURES = {
    "cryptofeed/KRAKEN.ws.50.0": ("kraken", {"lob": 6855, "spread": 460, "status": 13}),
    "cryptofeed/KRAKEN.ws.48.0": ("kraken", {"status": 11, "trades": 10}),
    "cryptofeed/BITMEX.ws.1.0": ("bitmex", {"lob": 14333, "spread": 460, "status": 41, "ticker": 436,
                                            "trades": 27}),
}
UTC = dt.timezone.utc


# ------------------------------------------------------------------------------------------------
# helpers


def replay(capture: str, data_dir: Path, *extra: str, env: dict | None = None) -> dict:
    exchange, events = CAPTURES[capture]
    r = run_cli("replay", fixture_path(capture), "--exchange", exchange, "--sink", extra[0] if extra else "files",
                "--data-dir", data_dir, *extra[1:], env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["events"] == events  # the capture table's row
    return summary


def export(topic: str, out: Path, *args, env: dict | None = None, ok: bool = True):
    r = run_cli("export", topic, "--format", "parquet", "--out", out, *args, env=env)
    if ok:
        assert r.returncode == 0, r.stderr[-3000:]
        return json.loads(r.stdout.strip().splitlines()[-1])
    return r


def glob(out: Path, topic: str) -> str:
    return f"{out}/{topic}/**/*.parquet"


def connect():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def parquet_rows(out: Path, topic: str, where: str = "") -> list[tuple]:
    """Every row as DuckDB reads it: the schema's fields as stored (timestamps as ms / µs since
    epoch), in file order (the path, then the row number: source order within a partition)."""
    schema = exp.arrow_schema(topic)
    cols = []
    for f in exp.load_schemas()[topic]["fields"]:
        name = f["name"]
        kind = str(schema.field(name).type) if name != "exchange" else ""
        cols.append(f"epoch_ms({name})" if kind.startswith("timestamp[ms") else
                    f"epoch_us({name})" if kind.startswith("timestamp[us") else name)
    cols = ", ".join(cols)
    sql = (f"SELECT {cols} FROM read_parquet('{glob(out, topic)}', hive_partitioning=true, filename=true, "
           f"file_row_number=true) {where} ORDER BY filename, file_row_number")
    return connect().execute(sql).fetchall()


def avro_records(data_dir: Path, topic: str) -> list[dict]:
    """The files sink's records of ``topic``, decoded by fastavro as any Avro reader does
    (timestamp-millis as aware datetimes), in file name order."""
    out = []
    for path in sorted((data_dir / topic).glob("*.avro"), key=exp._name_key):
        with open(path, "rb") as fo:
            out.extend(fastavro.reader(fo))
    return out


def as_stored(topic: str, record: dict) -> tuple:
    """A fastavro record as the numbers the schema stores (what parquet_rows gives)."""
    values = []
    for f in exp.load_schemas()[topic]["fields"]:
        v = record[f["name"]]
        if isinstance(v, dt.datetime):
            v = (v - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(milliseconds=1)
        values.append(v)
    return tuple(values)


def in_partition_order(topic: str, records: list[dict]) -> list[tuple]:
    """The source's records grouped as the export's partitions (exchange, date), each group in
    source order: the order of parquet_rows for a single export run."""
    groups: dict[tuple, list] = {}
    for r in records:
        stored = as_stored(topic, r)
        day = r["event_timestamp"].astimezone(UTC).date()
        groups.setdefault((exp.partition_dir(r["exchange"], (day - dt.date(1970, 1, 1)).days)), []).append(stored)
    return [row for key in sorted(groups) for row in groups[key]]


# ------------------------------------------------------------------------------------------------
# a real capture, DuckDB and polars


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """Three captures replayed into one files-sink data dir, and lob, trades, status, spread
    exported from it."""
    root = tmp_path_factory.mktemp("export")
    data, out = root / "data", root / "parquet"
    summaries = {c: replay(c, data) for c in CAPTURES}
    exports = {t: export(t, out, "--from", "files", "--data-dir", data) for t in ("lob", "trades", "status", "spread")}
    return data, out, summaries, exports


def expected(summaries: dict, topic: str) -> Counter:
    per = Counter()
    for capture, summary in summaries.items():
        per[CAPTURES[capture][0]] += summary["events"].get(topic, 0)
    return +per


@pytest.mark.parametrize("topic", ["lob", "trades", "status", "spread"])
def test_duckdb_counts_equal_the_replay_summaries(lake, topic):
    data, out, summaries, exports = lake
    want = expected(summaries, topic)
    assert exports[topic]["records"] == sum(want.values())
    assert exports[topic]["run"] == 1 and exports[topic]["problems"] == []
    con = connect()
    src = f"read_parquet('{glob(out, topic)}', hive_partitioning=true)"
    assert con.execute(f"SELECT count(*) FROM {src}").fetchone()[0] == sum(want.values())
    got = dict(con.execute(f"SELECT exchange, count(*) FROM {src} GROUP BY exchange").fetchall())
    assert got == dict(want)


@pytest.mark.parametrize("topic", ["lob", "trades", "status", "spread"])
def test_every_row_is_the_avro_record(lake, topic):
    data, out, summaries, exports = lake
    records = avro_records(data, topic)
    assert len(records) == sum(expected(summaries, topic).values())
    assert parquet_rows(out, topic) == in_partition_order(topic, records)


def test_specific_records_exact(lake):
    """A few records looked up by SQL, compared field by field with fastavro's decoding."""
    data, out, _, _ = lake
    con = connect()
    trades = avro_records(data, "trades")
    src = f"read_parquet('{glob(out, 'trades')}', hive_partitioning=true)"
    for t in (trades[0], trades[len(trades) // 2], trades[-1]):
        rows = con.execute(f"SELECT exchange, symbol, price, size, taker_side, trade_id, event_timestamp, "
                           f"atom_timestamp, date FROM {src} WHERE exchange = ? AND trade_id = ?",
                           [t["exchange"], t["trade_id"]]).fetchall()
        assert len(rows) == 1, (t, rows)
        ex, sym, price, size, side, tid, ets, ats, day = rows[0]
        assert (ex, sym, price, size, side, tid) == (t["exchange"], t["symbol"], t["price"], t["size"],
                                                     t["taker_side"], t["trade_id"])
        assert ets == t["event_timestamp"]  # an aware datetime, to the millisecond
        assert ets.utcoffset() == dt.timedelta(0)
        assert ats == dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=t["atom_timestamp"])
        assert day == t["event_timestamp"].astimezone(UTC).date()
    # a book level: the largest price of kraken's book changes, exactly the source's
    lob = [r for r in avro_records(data, "lob") if r["exchange"] == "kraken"]
    top = max(lob, key=lambda r: (r["price"], r["atom_timestamp"]))
    row = con.execute(f"SELECT symbol, price, size, side, epoch_ms(event_timestamp), epoch_us(atom_timestamp) "
                      f"FROM read_parquet('{glob(out, 'lob')}', hive_partitioning=true) WHERE exchange = 'kraken' "
                      "ORDER BY price DESC, atom_timestamp DESC LIMIT 1").fetchone()
    assert row == (top["symbol"], top["price"], top["size"], top["side"],
                   as_stored("lob", top)[5], top["atom_timestamp"])


def test_types_and_partitions(lake):
    data, out, summaries, _ = lake
    con = connect()
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet("
                             f"'{glob(out, 'trades')}', hive_partitioning=true))").fetchall())
    assert types == {"symbol": "VARCHAR", "price": "DOUBLE", "size": "DOUBLE", "taker_side": "VARCHAR",
                     "trade_id": "VARCHAR", "event_timestamp": "TIMESTAMP WITH TIME ZONE",
                     "atom_timestamp": "TIMESTAMP WITH TIME ZONE", "exchange": "VARCHAR", "date": "DATE"}
    # the files themselves: the schema's types, the partition columns only in the path
    for topic in ("lob", "trades", "status"):
        files = list(exp.iter_parts(out / topic))
        assert files
        for f in files:
            schema = pq.read_schema(f)
            assert schema.field("event_timestamp").type == pa.timestamp("ms", tz="UTC")
            assert schema.field("atom_timestamp").type == pa.timestamp("us", tz="UTC")
            assert "exchange" not in schema.names and "date" not in schema.names
            assert f.name == "part-000001-" + f.name.split("-")[-1]
    # partitions: exchange=/date= directories, each row's date the UTC date of its event_timestamp
    for topic in ("lob", "trades", "status"):
        dirs = {str(f.parent.relative_to(out / topic)) for f in exp.iter_parts(out / topic)}
        records = avro_records(data, topic)
        want = {f"exchange={r['exchange']}/date={r['event_timestamp'].astimezone(UTC).date()}" for r in records}
        assert dirs == want, topic
        assert {d.split("/")[0] for d in dirs} == {f"exchange={x}" for x in expected(summaries, topic)}
        src = f"read_parquet('{glob(out, topic)}', hive_partitioning=true)"
        assert con.execute(f"SELECT count(*) FROM {src} WHERE date <> CAST(event_timestamp AS DATE)").fetchone()[0] == 0
    # the state and lock files are not data: DuckDB's glob and pyarrow's dataset skip them
    assert (out / "lob" / exp.STATE_NAME).is_file()
    import pyarrow.dataset as ds

    dataset = ds.dataset(out / "lob", format="parquet", partitioning="hive")
    assert dataset.count_rows() == sum(expected(summaries, "lob").values())


def test_polars_reads_it(lake):
    data, out, summaries, _ = lake
    for topic in ("lob", "trades"):
        df = pl.scan_parquet(glob(out, topic), hive_partitioning=True).collect()
        assert df.height == sum(expected(summaries, topic).values())
        assert df.schema["event_timestamp"] == pl.Datetime("ms", "UTC")
        assert df.schema["atom_timestamp"] == pl.Datetime("us", "UTC")
        assert df.schema["date"] == pl.Date
        counts = dict(df.group_by("exchange").len().iter_rows())
        assert counts == dict(expected(summaries, topic))
        src = f"read_parquet('{glob(out, topic)}', hive_partitioning=true)"
        first = connect().execute(f"SELECT symbol, price, epoch_us(atom_timestamp) FROM {src} "
                                  "ORDER BY atom_timestamp, price, symbol LIMIT 1").fetchone()
        row = df.sort(["atom_timestamp", "price", "symbol"]).row(0, named=True)
        assert (row["symbol"], row["price"]) == first[:2]
        assert row["atom_timestamp"] == dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=first[2])
        assert sorted(df["price"].to_list()) == sorted(r["price"] for r in avro_records(data, topic))


# ------------------------------------------------------------------------------------------------
# incremental


def test_incremental_export_append_export_exact(tmp_path):
    data, out = tmp_path / "data", tmp_path / "parquet"
    first = replay("cryptofeed/KRAKEN.ws.50.0", data)
    s1 = export("lob", out, "--from", "files", "--data-dir", data)
    assert (s1["records"], s1["files"], s1["run"]) == (first["events"]["lob"], 1, 1)
    again = export("lob", out, "--from", "files", "--data-dir", data)
    assert (again["records"], again["files"], again["run"]) == (0, 0, 1)  # nothing new: nothing written
    # more data in the lake: another capture, and the first one once more (new files)
    second = replay("cryptofeed/BITMEX.ws.1.0", data)
    third = replay("cryptofeed/KRAKEN.ws.50.0", data)
    s2 = export("lob", out, "--from", "files", "--data-dir", data)
    assert s2["records"] == second["events"]["lob"] + third["events"]["lob"]
    assert s2["run"] == 2
    con = connect()
    src = f"read_parquet('{glob(out, 'lob')}', hive_partitioning=true)"
    assert con.execute(f"SELECT count(*) FROM {src}").fetchone()[0] == 2 * 6855 + 14333
    assert dict(con.execute(f"SELECT exchange, count(*) FROM {src} GROUP BY 1").fetchall()) == {
        "kraken": 2 * 6855, "bitmex": 14333}
    # exactly the source, as a multiset (the runs' files interleave the partitions' orders)
    assert Counter(parquet_rows(out, "lob")) == Counter(as_stored("lob", r) for r in avro_records(data, "lob"))
    state = json.loads((out / "lob" / exp.STATE_NAME).read_text())
    assert state["records"] == 2 * 6855 + 14333 and len(state["files"]) == 3
    s3 = export("lob", out, "--from", "files", "--data-dir", data)
    assert s3["records"] == 0 and s3["files"] == 0


def _lob(i: int, t_ms: int) -> Lob:
    return Lob("kraken", "BTC-USD", 97000.0 + i, 0.5 + i / 1000, "buy" if i % 2 else "sell", t_ms + i, t_ms * 1000 + i)


def test_the_open_file_complete_blocks_only(tmp_path):
    """A file a collector is still writing: its complete blocks are exported, a block being
    written is not (yet), and the next run takes the rest of the same file, exactly once."""
    data, out = tmp_path / "data", tmp_path / "parquet"
    t_ms = 1_763_680_000_000  # 2025-11-20T23:06:40Z, an hour before midnight: two dates
    sink = FileSink(data, clock=lambda: 1_763_679_600 + 60.0, block_records=100)
    try:
        for start, n in ((0, 100), (100, 100), (200, 50)):  # 2 blocks written, 50 buffered
            sink.write("lob", [_lob(i, t_ms) for i in range(start, start + n)], [b"k"] * n, None)
        path = sink.current_files()["lob"]
        s1 = exp.export("lob", out, source="files", data_dir=data)
        assert s1.records == 200 and not s1.problems
        sink.flush()  # the 50 buffered: a third block in the same file
        # a fourth block, half written: what a reader may see while the sink's write lands
        sink.write("lob", [_lob(250 + i, t_ms + 3_600_000) for i in range(100)], [b"k"] * 100, None)
        whole = path.read_bytes()
        tail = len(whole)
        blocks = list(fastavro.block_reader(open(path, "rb")))
        last = blocks[-1]
        assert last.offset + last.size == tail and last.num_records == 100
    finally:
        sink.close()
    # replace the file by its prefix ending half-way through the last block
    shutil.copy(path, tmp_path / "whole.avro")
    with open(path, "r+b") as fo:
        fo.truncate(last.offset + last.size // 2)
    s2 = exp.export("lob", out, source="files", data_dir=data)
    assert (s2.records, s2.problems) == (50, [])
    state = json.loads((out / "lob" / exp.STATE_NAME).read_text())
    assert state["files"][path.name]["offset"] == last.offset
    shutil.copy(tmp_path / "whole.avro", path)  # the write completes
    s3 = exp.export("lob", out, source="files", data_dir=data)
    assert (s3.records, s3.problems) == (100, [])
    rows = parquet_rows(out, "lob")
    assert Counter(rows) == Counter(tuple(_lob(i, t_ms)) for i in range(250)) + Counter(
        tuple(_lob(250 + i, t_ms + 3_600_000)) for i in range(100))
    dates = connect().execute(f"SELECT date, count(*) FROM read_parquet('{glob(out, 'lob')}', "
                              "hive_partitioning=true) GROUP BY 1 ORDER BY 1").fetchall()
    assert dates == [(dt.date(2025, 11, 20), 250), (dt.date(2025, 11, 21), 100)]


def test_a_stopped_export_leaves_no_partial_file_and_no_duplicate(tmp_path, monkeypatch):
    data, out = tmp_path / "data", tmp_path / "parquet"
    replay("cryptofeed/KRAKEN.ws.50.0", data)
    replay("cryptofeed/BITMEX.ws.1.0", data)
    total = 6855 + 14333

    # 1. killed while writing (no clean-up runs, as under SIGKILL): only hidden temporary
    # files exist, nothing a reader sees, no state
    def killed_before_rename(self):
        for part in list(self._buffers):
            self._flush(part)
        for writer in self._open.values():
            writer.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(exp._Writers, "finish", killed_before_rename)
    monkeypatch.setattr(exp._Writers, "abort", lambda self: None)
    with pytest.raises(KeyboardInterrupt):
        exp.export("lob", out, source="files", data_dir=data)
    monkeypatch.undo()
    leftovers = [p for p in (out / "lob").rglob("*") if p.is_file() and p.name.startswith(".part-")]
    assert leftovers and not list(exp.iter_parts(out / "lob"))
    assert not connect().execute(f"SELECT count(*) FROM glob('{glob(out, 'lob')}')").fetchone()[0]
    assert not (out / "lob" / exp.STATE_NAME).exists()

    # 2. killed after its files were renamed into place, before the state was committed
    def no_commit(path, payload):
        raise KeyboardInterrupt

    monkeypatch.setattr(exp, "_write_atomic", no_commit)
    with pytest.raises(KeyboardInterrupt):
        exp.export("lob", out, source="files", data_dir=data)
    monkeypatch.undo()
    assert sum(pq.read_metadata(p).num_rows for p in exp.iter_parts(out / "lob")) == total
    # ... a first export that was stopped (no state yet): the next run removes its files (they
    # carry a run number no state has committed) and exports the same events once
    assert not (out / "lob" / exp.STATE_NAME).exists()
    s1 = export("lob", out, "--from", "files", "--data-dir", data)
    assert (s1["records"], s1["run"]) == (total, 1)
    assert sum(pq.read_metadata(p).num_rows for p in exp.iter_parts(out / "lob")) == total
    assert not any(p.name.startswith(".part-") for p in (out / "lob").rglob("*"))

    # 3. the same after a committed run: the uncommitted run's files are removed and redone
    replay("cryptofeed/KRAKEN.ws.50.0", data)
    monkeypatch.setattr(exp, "_write_atomic", no_commit)
    with pytest.raises(KeyboardInterrupt):
        exp.export("lob", out, source="files", data_dir=data)
    monkeypatch.undo()
    assert sum(pq.read_metadata(p).num_rows for p in exp.iter_parts(out / "lob")) == total + 6855  # visible
    s2 = export("lob", out, "--from", "files", "--data-dir", data)
    assert (s2["records"], s2["run"]) == (6855, 2)
    con = connect()
    assert con.execute(f"SELECT count(*) FROM read_parquet('{glob(out, 'lob')}')").fetchone()[0] == total + 6855
    assert Counter(parquet_rows(out, "lob")) == Counter(as_stored("lob", r) for r in avro_records(data, "lob"))


def test_one_export_at_a_time(tmp_path):
    data, out = tmp_path / "data", tmp_path / "parquet"
    replay("cryptofeed/KRAKEN.ws.48.0", data)
    (out / "trades").mkdir(parents=True)
    fd = os.open(out / "trades" / exp.LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        r = export("trades", out, "--from", "files", "--data-dir", data, ok=False)
        assert r.returncode == 1 and "another export" in r.stderr
    finally:
        os.close(fd)
    assert export("trades", out, "--from", "files", "--data-dir", data)["records"] == 10


# ------------------------------------------------------------------------------------------------
# errors: one clear line, an exit code


def error_line(r) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("atomfast export: ")]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def test_errors(tmp_path):
    data, out = tmp_path / "data", tmp_path / "parquet"
    r = export("foo", out, "--from", "files", "--data-dir", data, ok=False)
    assert r.returncode == 2
    line = error_line(r)
    assert "unknown topic 'foo'" in line and "lob, lob_l3" in line and "trades" in line
    # empty source: no folder, an empty folder, files without events
    r = export("trades", out, "--from", "files", "--data-dir", data, ok=False)
    assert r.returncode == 1 and "nothing to export" in error_line(r) and str(data / "trades") in r.stderr
    (data / "trades").mkdir(parents=True)
    r = export("trades", out, "--from", "files", "--data-dir", data, ok=False)
    assert r.returncode == 1 and "holds no .avro files" in error_line(r)
    assert not list((out / "trades").rglob("*.parquet"))
    # an unreadable file beside good ones: the good ones are exported, the bad one named, exit 1
    replay("cryptofeed/KRAKEN.ws.48.0", data)
    bad = data / "trades" / "0000-garbage.avro"
    bad.write_bytes(b"this is not avro at all\n" * 10)
    r = export("trades", out, "--from", "files", "--data-dir", data, ok=False)
    assert r.returncode == 1
    assert str(bad) in error_line(r) and "unreadable" in error_line(r)
    assert json.loads(r.stdout.splitlines()[-1])["records"] == 10
    # ... reported again by the next run (not forgotten), and nothing is exported twice
    r = export("trades", out, "--from", "files", "--data-dir", data, ok=False)
    assert r.returncode == 1 and str(bad) in error_line(r)
    assert json.loads(r.stdout.splitlines()[-1])["records"] == 0
    bad.unlink()
    assert export("trades", out, "--from", "files", "--data-dir", data)["records"] == 0
    # a damaged block in the middle of a closed file
    other = data / "lob"
    replay("cryptofeed/KRAKEN.ws.50.0", data)
    (path,) = other.glob("*.avro")
    blocks = list(fastavro.block_reader(open(path, "rb")))
    assert len(blocks) >= 3
    raw = bytearray(path.read_bytes())
    sync_at = blocks[1].offset + blocks[1].size - 16
    raw[sync_at:sync_at + 16] = b"\0" * 16  # the second block's sync marker destroyed
    path.write_bytes(bytes(raw))
    r = export("lob", out, "--from", "files", "--data-dir", data, ok=False)
    assert r.returncode == 1 and "damaged at byte" in error_line(r) and str(path) in r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["records"] == blocks[0].num_records
    # another source into the same --out: refused (it would duplicate)
    r = export("trades", out, "--from", "files", "--data-dir", tmp_path / "elsewhere", ok=False)
    assert r.returncode == 1 and "use another --out" in error_line(r)
    # an --out whose topic folder holds Parquet files that are not an export's: refused
    (out / "status" / "x").mkdir(parents=True)
    (out / "status" / "x" / "mine.parquet").write_bytes(b"PAR1")
    r = export("status", out, "--from", "files", "--data-dir", data, ok=False)
    assert r.returncode == 1 and "no export state" in error_line(r)
    assert (out / "status" / "x" / "mine.parquet").read_bytes() == b"PAR1"
    # Kafka without a broker configured
    r = export("trades", tmp_path / "k", "--from", "kafka", ok=False,
               env={k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")})
    assert r.returncode == 2 and "KAFKA_BOOTSTRAP_SERVERS" in error_line(r)


# ------------------------------------------------------------------------------------------------
# Kafka


def _create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        t = admin.list_topics(name, timeout=5).topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == partitions and all(
                p.leader >= 0 for p in t.partitions.values()):
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {name} not ready")


@pytest.mark.kafka
def test_from_kafka_exact_and_incremental(kafka_bootstrap, tmp_path):
    prefix = f"test-export-{uuid.uuid4().hex[:10]}."
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, KAFKA_TOPIC_PREFIX=prefix)
    env.pop("SCHEMA_REGISTRY_URL", None)
    for topic in ("lob", "spread", "status"):
        _create_topic(kafka_bootstrap, prefix + topic, 3)
    out, data = tmp_path / "parquet", tmp_path / "data"
    r = export("lob", out, "--from", "kafka", env=env, ok=False)
    assert r.returncode == 1 and "is empty" in error_line(r)
    r = export("nope", out, "--from", "kafka", env=env, ok=False)
    assert r.returncode == 2 and "unknown topic" in error_line(r)

    replay("cryptofeed/KRAKEN.ws.50.0", tmp_path / "unused", "kafka", env=env)
    replay("cryptofeed/KRAKEN.ws.50.0", data)  # the same capture into the files sink: the Avro source
    s1 = export("lob", out, "--from", "kafka", env=env)
    assert (s1["records"], s1["skipped"], s1["source"]) == (6855, 0, "kafka")
    state = json.loads((out / "lob" / exp.STATE_NAME).read_text())
    assert state["source"] == {"kind": "kafka", "topic": prefix + "lob"}
    assert sum(state["offsets"].values()) == 6855 and len(state["offsets"]) == 3
    source = Counter(as_stored("lob", r) for r in avro_records(data, "lob"))
    assert Counter(parquet_rows(out, "lob")) == source
    assert export("lob", out, "--from", "kafka", env=env)["records"] == 0  # nothing new
    # more events on the topic: only they are exported
    replay("cryptofeed/KRAKEN.ws.50.0", tmp_path / "unused", "kafka", env=env)
    s2 = export("lob", out, "--from", "kafka", env=env)
    assert (s2["records"], s2["run"]) == (6855, 2)
    con = connect()
    src = f"read_parquet('{glob(out, 'lob')}', hive_partitioning=true)"
    assert con.execute(f"SELECT count(*) FROM {src}").fetchone()[0] == 2 * 6855
    assert Counter(parquet_rows(out, "lob")) == Counter({k: 2 * n for k, n in source.items()})
    status = export("status", out, "--from", "kafka", env=env)
    assert status["records"] == 2 * 13
    # the files lake into the same --out: refused
    r = export("lob", out, "--from", "files", "--data-dir", data, env=env, ok=False)
    assert r.returncode == 1 and "use another --out" in error_line(r)
