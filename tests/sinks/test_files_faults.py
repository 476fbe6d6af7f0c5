"""The files sink on a REAL full or read-only disk: a small tmpfs mounted for each test.

The disk is filled with a filler file until the kernel answers ENOSPC; space comes back by
deleting it. Read-only is ``mount -o remount,ro`` (Linux refuses it while a file is open for
writing, so the sink's files are closed first, by the hourly rotation). Everything written is
read back with fastavro and compared exactly; no timing is asserted: the sink's clock, its
retry clock and its sleep are injected where the order of events matters.

The end-to-end tests run ``atomfast run`` against ``atomfast simulate`` writing to the small
disk: it fills, the run goes on, the filler is deleted, the run resumes; SIGINT/SIGTERM during
the fault end with the summary line and no traceback.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import fastavro
import pytest

from atomfast import events as ev
from atomfast.avro import AvroEncoder
from atomfast.config import Settings, SettingsError
from atomfast.metrics import Metrics
from atomfast.sinks import make_sink
from atomfast.sinks.files import DROPPED_KIND, LOST_KIND, FileSink, files_options, parse_bytes
from atomfast.testing import ROOT, SimProcess, child_env, cli_summary, fixture_path

ENC = AvroEncoder("none")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# 2026-11-20T22:00:00Z + 100 s: well inside an hour
T0 = datetime(2026, 11, 20, 22, 1, 40, tzinfo=timezone.utc).timestamp()
KEY = b"kraken:BTC-USD"


# --- a real small disk --------------------------------------------------------------------------
def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    """A tmpfs of ``size`` mounted at ``where`` (root only: skipped with the reason otherwise)."""
    where.mkdir()
    r = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {r.stderr.strip()}")
    try:
        yield where
    finally:
        _mount("-o", "remount,rw", str(where))
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def disk(tmp_path):
    """A 512 KiB tmpfs at tmp_path/disk."""
    with tmpfs(tmp_path / "disk", "512k") as where:
        yield where


@pytest.fixture
def run_disk(tmp_path):
    """An 8 MiB tmpfs at tmp_path/disk, for a whole run (what is held while the disk is full
    must fit once the filler is gone)."""
    with tmpfs(tmp_path / "disk", "8m") as where:
        yield where


def fill(where: Path, name: str = "filler") -> Path:
    """Write a file until the disk answers ENOSPC: the disk is full."""
    path = where / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    chunk = b"\0" * 65536
    try:
        while True:
            os.write(fd, chunk)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    # the last page too (a short write may have left a few bytes of room)
    try:
        while True:
            os.write(fd, b"\0")
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    os.close(fd)
    return path


def remount(where: Path, mode: str) -> None:
    r = _mount("-o", f"remount,{mode}", str(where))
    assert r.returncode == 0, r.stderr


# --- helpers -----------------------------------------------------------------------------------
class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def trades(n: int, start: int = 0) -> list[ev.Trade]:
    return [ev.Trade("kraken", "BTC-USD", 37251.5 + i, 0.25 + i, ev.BUY if i % 2 else ev.SELL, f"T{i:08d}",
                     1_795_219_199_000 + i, 1_795_219_199_000_000 + i) for i in range(start, start + n)]


def batches(records: list, size: int) -> list[list]:
    return [records[i:i + size] for i in range(0, len(records), size)]


def write(sink: FileSink, batch: list[ev.Trade]) -> None:
    sink.write("trades", batch, [KEY] * len(batch), ENC.encode_many("trades", batch))


def all_files(root: Path) -> list[Path]:
    """The sink's files (other parts of a run may keep their own files in the data dir)."""
    return sorted(p for p in root.glob("*/*.avro") if p.is_file())


def read(root: Path, topic: str) -> list[dict]:
    out: list[dict] = []
    for path in sorted((root / topic).glob("*.avro"), key=lambda p: int(p.stem.rsplit("-", 1)[1])):
        with open(path, "rb") as f:
            out.extend(fastavro.reader(f))
    return out


def as_dicts(records: list[ev.Trade]) -> list[dict]:
    out = []
    for r in records:
        d = r._asdict()
        d["event_timestamp"] = EPOCH + timedelta(milliseconds=d["event_timestamp"])
        out.append(d)
    return out


def said(root: Path) -> list[tuple[str, str, str]]:
    return [(s["exchange"], s["symbol"], s["status"]) for s in read(root, "status")]


# --- (a) a full disk -----------------------------------------------------------------------------
def test_full_disk_holds_retries_the_same_file_and_resumes(disk, caplog):
    """Within the bound: every failed block is held, the same file retried, no file created per
    failure; space back -> every record written exactly once, status disk_full then recovered."""
    data = disk / "data"
    metrics = Metrics()
    sink = FileSink(data, clock=Clock(T0), block_records=100, retry_seconds=0, metrics=metrics)
    t = trades(510)
    parts = batches(t, 10)
    for b in parts[:20]:  # 200 records: two blocks on disk
        write(sink, b)
    [trades_file] = all_files(data)
    assert sink.stats()["delivered"] == 200 and sink.stats()["state"] == "ok"
    filler = fill(disk)

    caplog.set_level(logging.ERROR, logger="atomfast.sinks.files")
    for b in parts[20:50]:  # 300 records: the disk refuses them
        write(sink, b)
    st = sink.stats()
    assert (st["state"], st["disk_fault"], st["disk_faults"], st["mode"]) == ("disk_full", 1, 1, "holding")
    assert (st["delivered"], st["pending"], st["held"], st["dropped"], st["lost"]) == (200, 301, 300, 0, 0)
    # the 10th write fills a block: the first failure; then each of the 20 writes retries once
    assert st["errors"] == 21
    assert all_files(data) == [trades_file]  # no file per failed write
    assert trades_file.stat().st_size == st["bytes"]  # the file ends on its last whole block
    assert sum("disk full: No space left on device" in r.getMessage() for r in caplog.records) == 1
    poll_errors = st["errors"]
    sink.poll()  # poll retries too (retry_seconds=0), and the status block is not due yet
    assert sink.stats()["errors"] == poll_errors + 1 and all_files(data) == [trades_file]

    filler.unlink()  # space comes back
    write(sink, parts[50])  # the next write retries first: all 300 held records go out
    st = sink.stats()
    assert (st["state"], st["disk_fault"], st["held"], st["delivered"]) == ("ok", 0, 0, 500)
    sink.close()
    assert read(data, "trades") == as_dicts(t)  # every record, once, in order
    status = read(data, "status")
    assert [(s["exchange"], s["symbol"], s["status"]) for s in status] == [
        ("kraken", "", "disk_full"), ("kraken", "", "recovered")]
    assert "No space left on device" in status[0]["reason"]
    assert status[1]["reason"].endswith("300 events held in memory were written; nothing was lost")
    assert [p.parent.name for p in all_files(data)] == ["status", "trades"]
    assert metrics.events["status"] == 2 and metrics.errors.total == 0
    st = sink.stats()
    assert (st["delivered"], st["dropped"], st["lost"], st["failed"], st["status_events"]) == (512, 0, 0, 0, 2)


def test_full_disk_beyond_the_bound_blocks_the_feed_until_space_returns(disk):
    """Policy block: the write that would pass FILES_BUFFER_BYTES waits (retrying) until the disk
    takes data; nothing is dropped."""
    data = disk / "data"
    t = trades(400)
    parts = batches(t, 20)
    returned: list[int] = []
    waits: list[tuple[str, int]] = []
    filler: list[Path] = []

    def sleep(_seconds: float) -> None:  # the sink's wait, observed: the write has not returned
        st = sink.stats()
        waits.append((st["mode"], len(returned), st["held"], st["held_bytes"]))
        if len(waits) == 3:
            filler.pop().unlink()

    sink = FileSink(data, clock=Clock(T0), block_records=20, retry_seconds=0, buffer_bytes=4096,
                    policy="block", sleep=sleep)
    write(sink, parts[0])
    filler.append(fill(disk))
    for i, b in enumerate(parts[1:], 1):
        write(sink, b)
        returned.append(i)
        if waits:
            break
    # every write before the bound returned at once; the one past it waited 3 retries
    blocked_at = returned[-1]
    held, held_bytes = waits[0][2], waits[0][3]
    assert waits == [("blocked", blocked_at - 1, held, held_bytes)] * 3
    # (the bound is checked before a block is added: the block that failed when the disk filled
    # can take the held bytes past it by at most one block)
    block = len(ENC.encode_block("trades", parts[blocked_at]))
    assert held > 0 and held_bytes <= 4096 + block and 4096 < held_bytes + block
    st = sink.stats()
    assert (st["state"], st["backpressure_waits"], st["dropped"]) == ("ok", 3, 0)
    for b in parts[blocked_at + 1:]:
        write(sink, b)
    sink.close()
    assert read(data, "trades") == as_dicts(t)
    assert said(data) == [("kraken", "", "disk_full"), ("kraken", "", "backpressure"), ("kraken", "", "recovered")]
    reason = read(data, "status")[2]["reason"]
    assert reason.endswith(f"{held} events held in memory were written; nothing was lost; the feed waited")
    assert [p.parent.name for p in all_files(data)] == ["status", "trades"]  # one file each


def test_full_disk_beyond_the_bound_drops_new_events_with_an_exact_count(disk):
    """Policy drop: past FILES_BUFFER_BYTES the new events are dropped; the count is exact in the
    stats, the metrics (the summary's error kinds) and the recovered status's reason; everything
    not dropped is on disk exactly once."""
    data = disk / "data"
    metrics = Metrics()
    sink = FileSink(data, clock=Clock(T0), block_records=20, retry_seconds=3600, buffer_bytes=4096,
                    policy="drop", metrics=metrics, monotonic=Clock(0.0))
    t = trades(600)
    parts = batches(t, 20)
    write(sink, parts[0])
    filler = fill(disk)
    kept, dropped = [parts[0]], []
    for b in parts[1:]:
        before = sink.stats()
        size = len(ENC.encode_block("trades", b))
        write(sink, b)
        now = sink.stats()["dropped"] - before["dropped"]
        # dropped exactly when the disk is faulty and the batch would pass the bound
        assert now == (len(b) if before["state"] == "disk_full" and before["held_bytes"] + size > 4096 else 0)
        (dropped if now else kept).append(b)
    n_dropped = sum(len(b) for b in dropped)
    assert n_dropped == sink.stats()["dropped"] == metrics.errors.counts[DROPPED_KIND] > 0
    assert kept == parts[:len(kept)] and dropped == parts[len(kept):]  # no retry due: all later ones drop
    assert sink.stats()["mode"] == "dropping"

    filler.unlink()
    sink._monotonic = Clock(3600.0)  # the next retry is due
    sink.poll()
    sink.close()
    assert read(data, "trades") == as_dicts([r for b in kept for r in b])
    status = read(data, "status")
    assert [s["status"] for s in status] == ["disk_full", "dropping", "recovered"]
    assert status[2]["reason"].endswith(f"{n_dropped} events were dropped (FILES_BUFFER_POLICY=drop)")
    st = sink.stats()
    assert (st["dropped"], st["failed"], st["lost"], st["pending"]) == (n_dropped, n_dropped, 0, 0)


def test_close_on_a_full_disk_reports_the_lost_events_and_leaves_no_empty_file(disk, caplog):
    """Shutdown during the fault: no exception, the exact count lost, no empty .avro file."""
    data = disk / "data"
    metrics = Metrics()
    filler = fill(disk)
    sink = FileSink(data, clock=Clock(T0), block_records=50, metrics=metrics)
    t = trades(120)
    for b in batches(t, 10):
        write(sink, b)
    assert sink.stats()["state"] == "disk_full"
    caplog.set_level(logging.ERROR, logger="atomfast.sinks.files")
    sink.close()  # never raises
    sink.close()
    st = sink.stats()
    # 120 trades and the disk_full status event, none written
    assert (st["lost"], st["delivered"], st["pending"], st["files"], st["open_files"]) == (121, 0, 0, 0, 0)
    assert metrics.errors.counts[LOST_KIND] == 121
    assert all_files(data) == []  # the files created on the full disk held nothing: removed
    [line] = [r.getMessage() for r in caplog.records if "are lost" in r.getMessage()]
    assert "121 event(s) held in memory could not be written" in line and "trades 120, status 1" in line
    filler.unlink()


# --- (b) a read-only disk ------------------------------------------------------------------------
def test_read_only_disk_holds_and_resumes_when_writable_again(disk):
    data = disk / "data"
    clock = Clock(T0)
    sink = FileSink(data, clock=clock, block_records=10, retry_seconds=0)
    t = trades(100)
    parts = batches(t, 10)
    for b in parts[:3]:
        write(sink, b)
    clock.t += 3600  # the next hour: poll closes the hour's files (Linux refuses ro while open)
    sink.poll()
    assert sink.stats()["open_files"] == 0
    remount(disk, "ro")
    for b in parts[3:8]:
        write(sink, b)
    st = sink.stats()
    assert (st["state"], st["held"], st["delivered"], st["errors"]) == ("disk_readonly", 50, 30, 5)
    sink.poll()
    assert sink.stats()["errors"] == 6
    assert len(all_files(data)) == 1  # nothing created while read-only
    remount(disk, "rw")
    for b in parts[8:]:
        write(sink, b)
    sink.close()
    assert read(data, "trades") == as_dicts(t)
    status = read(data, "status")
    assert [(s["exchange"], s["status"]) for s in status] == [("kraken", "disk_readonly"), ("kraken", "recovered")]
    assert "Read-only file system" in status[0]["reason"]
    assert "50 events held in memory were written; nothing was lost" in status[1]["reason"]
    hours = sorted(p.name.split("-")[2] for p in (data / "trades").glob("*.avro"))
    assert hours == ["20T22", "20T23"]  # one file per hour, none per failure


def test_read_only_at_close_loses_exactly_what_was_held(disk):
    data = disk / "data"
    clock = Clock(T0)
    metrics = Metrics()
    sink = FileSink(data, clock=clock, block_records=10, metrics=metrics)
    t = trades(45)
    for b in batches(t[:20], 10):
        write(sink, b)
    clock.t += 3600
    sink.poll()
    remount(disk, "ro")
    for b in batches(t[20:], 5):
        write(sink, b)
    sink.close()
    assert sink.stats()["lost"] == 26 == metrics.errors.counts[LOST_KIND]  # 25 trades + its status
    remount(disk, "rw")
    assert read(data, "trades") == as_dicts(t[:20])
    assert all(p.stat().st_size > 0 for p in all_files(data))


# --- settings -------------------------------------------------------------------------------------
def test_settings_files_buffer_bytes_and_policy(tmp_path):
    assert files_options(Settings()) == {"buffer_bytes": 64 * 1024 * 1024, "policy": "block"}
    assert files_options(Settings(files_buffer_bytes="512k", files_buffer_policy="DROP")) == {
        "buffer_bytes": 524288, "policy": "drop"}
    assert [parse_bytes("X", s) for s in ("65536", "64M", "1G", "8 KiB")] == [65536, 67108864, 1073741824, 8192]
    for bad, text in (("lots", "FILES_BUFFER_BYTES must be a number of bytes (65536, 512k, 64M, 1G), not 'lots'"),
                      ("100", "FILES_BUFFER_BYTES must be at least 4096 bytes, not '100'")):
        with pytest.raises(SettingsError) as info:
            files_options(Settings(files_buffer_bytes=bad))
        assert str(info.value) == text
    with pytest.raises(SettingsError) as info:
        files_options(Settings(files_buffer_policy="spill"))
    assert str(info.value) == "FILES_BUFFER_POLICY must be one of block, drop, not 'spill'"
    from atomfast.config import load_settings

    s = load_settings(env={"FILES_BUFFER_BYTES": "1M", "FILES_BUFFER_POLICY": "drop"}, env_file=tmp_path / "none",
                      config_ini=tmp_path / "none.ini")
    sink = make_sink("files", s, Metrics(), data_dir=str(tmp_path / "d"))
    assert (sink.buffer_bytes, sink.policy) == (1048576, "drop")
    sink.close()
    bad = load_settings(env={"FILES_BUFFER_POLICY": "maybe"}, env_file=tmp_path / "none",
                        config_ini=tmp_path / "none.ini")
    with pytest.raises(SettingsError) as info:  # `run` prints it as one line, exit 2
        make_sink("files", bad, Metrics(), data_dir=str(tmp_path / "d"))
    assert str(info.value) == "FILES_BUFFER_POLICY must be one of block, drop, not 'maybe'"


# --- (c) end to end: atomfast run -> a small disk ----------------------------------------------------
KRAKEN_50 = "cryptofeed/KRAKEN.ws.50.0"
KRAKEN_50_SYMBOLS = "WAVES-EUR,KSM-BTC,ETH-CHF,OMG-USD,BTC-CHF,ADA-BTC"


def _kraken_v1() -> None:
    try:
        from atomfast.exchanges.kraken import KrakenSpotV1Scheme  # noqa: F401
    except ImportError as exc:  # pragma: no cover
        pytest.skip(f"the Kraken v1 scheme is not available: {exc}")
    if not fixture_path(KRAKEN_50).exists():
        pytest.skip(f"no fixture {KRAKEN_50}")


def _wait_for(predicate, what: str, proc: subprocess.Popen, err_path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"waited for {what}; stderr: {err_path.read_text()[-3000:]}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metric(port: int, name: str) -> float:
    """One sample of the run's Prometheus endpoint (-1 when it does not answer)."""
    import urllib.request

    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return -1
    for line in body.splitlines():
        if line.startswith(f"atomfast_{name} "):
            return float(line.split()[1])
    return -1


def _run(sim_url: str, data: Path, err_path: Path, env: dict, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "atomfast.cli", "run", "--exchange", "kraken", "--endpoint", sim_url,
         "--sink", "files", "--data-dir", str(data), "--symbols", KRAKEN_50_SYMBOLS, "--channels", "lob",
         "--backoff", "0.01", *extra],
        cwd=ROOT, env=child_env(base=env), stdout=subprocess.DEVNULL, stderr=open(err_path, "w"), text=True)


def _records(data: Path) -> dict[str, list[dict]]:
    return {topic: read(data, topic) for topic in ("lob", "spread", "status")}


def test_run_on_a_disk_that_fills_goes_on_and_resumes_when_space_returns(run_disk, tmp_path):
    """`atomfast run` -> files on the small disk: the disk fills (status disk_full, events held),
    a filler file is deleted, the run resumes (status recovered) and writes on; SIGINT ends with
    the summary, no traceback; every event the summary counts is in the files, once."""
    _kraken_v1()
    data = run_disk / "data"
    err_path = tmp_path / "run.err"
    # leave 96 KiB: the first blocks fit, then the disk is full
    ballast = fill(run_disk, "ballast")
    os.truncate(ballast, ballast.stat().st_size - 96 * 1024)
    port = _free_port()
    env = {"FILES_BUFFER_BYTES": "64M", "FILES_BUFFER_POLICY": "block"}
    with SimProcess(fixture_path(KRAKEN_50), "--rate", "400", "--close-after", "600") as sim:
        proc = _run(sim.url, data, err_path, env, "--metrics-port", str(port))
        try:
            _wait_for(lambda: "disk full" in err_path.read_text(), "disk full", proc, err_path)
            # the fault lasts: the sink retries the same files every second (its metrics say so)
            _wait_for(lambda: _metric(port, "sink_errors") >= 3, "retries", proc, err_path)
            files_in_fault = all_files(data)
            errors = _metric(port, "sink_errors")
            _wait_for(lambda: _metric(port, "sink_errors") >= errors + 3, "3 more retries", proc, err_path)
            assert _metric(port, "sink_disk_fault") == 1 and _metric(port, "sink_held") > 0
            assert all_files(data) == files_in_fault  # no new file per failed write
            assert max(Counter(p.parent.name for p in files_in_fault).values()) == 1
            ballast.unlink()  # space comes back
            _wait_for(lambda: "the disk takes data again" in err_path.read_text(), "recovery", proc, err_path)
            assert _metric(port, "sink_disk_fault") == 0 and _metric(port, "sink_disk_faults") == 1
            lob_dir = data / "lob"
            size_at_recovery = sum(p.stat().st_size for p in lob_dir.glob("*.avro"))
            _wait_for(lambda: sum(p.stat().st_size for p in lob_dir.glob("*.avro")) > size_at_recovery + 4096,
                      "writing to go on", proc, err_path)
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    err = err_path.read_text()
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    s = cli_summary(err)
    assert s["stopped"] == "SIGINT"
    got = _records(data)
    assert len(got["lob"]) == s["events"]["lob"] > 0
    assert len(got["spread"]) == s["events"]["spread"]
    assert len(got["status"]) == s["events"]["status"]
    sink_said = [x["status"] for x in got["status"] if x["symbol"] == "" and x["status"] in ev.SINK_STATUS_VALUES]
    assert sink_said == ["disk_full", "recovered"]
    assert s["errors"] == 0
    assert all(p.stat().st_size > 0 for p in all_files(data))
    per_topic = Counter(p.parent.name for p in all_files(data))
    assert set(per_topic) == {"lob", "spread", "status"} and max(per_topic.values()) <= 2  # 2: an hour turned


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_while_the_feed_waits_on_a_full_disk_ends_with_the_summary(run_disk, tmp_path, sig):
    """The disk stays full, the bound is passed (policy block: the feed waits); SIGINT/SIGTERM
    ends the run with the summary, no traceback; the events that could not be written are
    counted exactly: in the files + lost == the events the summary counts."""
    _kraken_v1()
    data = run_disk / "data"
    err_path = tmp_path / "run.err"
    ballast = fill(run_disk, "ballast")
    os.truncate(ballast, ballast.stat().st_size - 64 * 1024)
    env = {"FILES_BUFFER_BYTES": "64k", "FILES_BUFFER_POLICY": "block"}
    with SimProcess(fixture_path(KRAKEN_50), "--rate", "2000", "--close-after", "600") as sim:
        proc = _run(sim.url, data, err_path, env)
        try:
            _wait_for(lambda: "the feed waits until the disk takes data" in err_path.read_text(), "back-pressure",
                      proc, err_path)
            proc.send_signal(sig)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    err = err_path.read_text()
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err and "OSError" not in err
    s = cli_summary(err)
    assert s["stopped"] == signal.Signals(sig).name
    lost = s["error_kinds"][LOST_KIND]
    assert lost > 0 and s["errors"] == lost
    ballast.unlink()
    got = _records(data)
    assert sum(len(v) for v in got.values()) + lost == sum(s["events"].values())
    assert all(p.stat().st_size > 0 for p in all_files(data))
