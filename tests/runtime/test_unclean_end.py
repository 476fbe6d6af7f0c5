"""Process faults (issue 14, item 4): `atomfast run` killed by SIGKILL and started again.

The next start publishes one `status` `unclean_end` (symbol "") whose reason says when the
killed run started and last saved its state, and what the sink had confirmed by then (Kafka:
per topic the delivered count, per partition the last delivered offset and its time; files: the
records written and the last files), from the run-state file (`atomfast.runstate`). A clean end
(SIGTERM, --max-frames) writes `clean: true`: no `unclean_end` at the next start.

The Kafka tests use a real broker and a real `atomfast run` against `atomfast simulate`; the
numbers of the status are compared with the state file the killed run left and with what the
broker holds. The state file's own faults (missing, empty, corrupt, partial, of another format,
locked, unwritable) are unit tests: one WARNING, no crash.
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from atomfast import runstate
from atomfast.events import RUN_STATUS_VALUES, STATUS_VALUES, SINK_STATUS_VALUES, CONTROL_STATUS_VALUES
from atomfast.runstate import RunState, StateError, load_state, state_path, unclean_reason
from atomfast.pipeline import Pipeline
from atomfast.sinks.files import FileSink
from atomfast.testing import (ROOT, MemorySink, SimProcess, child_env, cli_summary, fixture_path, read_topics,
                              run_cli, stop_process, wait_for)

BOOK = "cryptofeed/KRAKEN.ws.50.0"
SYMBOLS = "WAVES-EUR,KSM-BTC,ETH-CHF,OMG-USD,BTC-CHF,ADA-BTC"


# --- unit: the state file ------------------------------------------------------------------------
class FakeKafka:
    """What RunState reads of a KafkaSink: its target and ``delivery_progress()``."""

    framing = "none"

    def __init__(self, bootstrap: str = "b1:9092", prefix: str = "x.") -> None:
        self._conf = {"bootstrap.servers": bootstrap}
        self.topic_prefix = prefix
        self.progress = {"delivered": {}, "failed": {}, "partitions": {}}

    def delivery_progress(self) -> dict:
        return self.progress


STATE = {
    "format": 1, "exchange": "kraken", "sink": "kafka", "target": "b1:9092 prefix 'x.'", "pid": 4242,
    "host": "h1", "started_ns": 1_714_557_600_123_000_000, "persisted_ns": 1_714_557_605_456_000_000,
    "clean": False, "delivered": {"x.lob": 1200, "x.status": 7}, "failed": {"x.lob": 2},
    "partitions": {"x.lob": {"0": [599, 1_714_557_605_401], "1": [598, 1_714_557_605_399]},
                   "x.status": {"0": [6, 1_714_557_600_200]}},
}


def kafka_state(tmp_path: Path, sink=None) -> Path:
    sink = sink or FakeKafka()
    return state_path(tmp_path, "kraken", *runstate.sink_target(sink))


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_status_value_added_not_changed():
    assert RUN_STATUS_VALUES == ("unclean_end",)
    assert not set(RUN_STATUS_VALUES) & set(STATUS_VALUES + SINK_STATUS_VALUES + CONTROL_STATUS_VALUES)


def test_reason_format_kafka_and_files():
    assert unclean_reason(STATE) == (
        "previous run (pid 4242 on h1, started 2024-05-01T10:00:00.123Z) ended without a clean stop; its state "
        "was last saved 2024-05-01T10:00:05.456Z; delivered by then (confirmed by the broker): "
        "x.lob 1200 [p0 offset 599 at 2024-05-01T10:00:05.401Z, p1 offset 598 at 2024-05-01T10:00:05.399Z]; "
        "x.status 7 [p0 offset 6 at 2024-05-01T10:00:00.200Z]; failed: x.lob 2; "
        "events after these offsets and times may be missing")
    files = {**STATE, "sink": "files", "target": "/d", "written": 31, "files": {"lob": "/d/lob/a.avro"}}
    for k in ("delivered", "failed", "partitions"):
        del files[k]
    assert unclean_reason(files).endswith(
        "; written by then: 31 records in all, the last files: lob /d/lob/a.avro; events after these may be missing")
    nothing = {**STATE, "delivered": {}, "failed": {}, "partitions": {}}
    assert "delivered by then (confirmed by the broker): nothing; events after" in unclean_reason(nothing)


def test_first_run_then_unclean_then_clean(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    sink = FakeKafka()
    first = RunState.open("kraken", sink, tmp_path)
    assert first is not None and first.previous is None and not first.unclean
    mem = MemorySink()
    assert first.begin(Pipeline(mem)) is None and mem.events("status") == []
    assert warnings_of(caplog) == []
    sink.progress = {"delivered": {"x.lob": 3}, "failed": {},
                     "partitions": {"x.lob": {1: [2, 1_714_557_605_401]}}}
    assert first.persist() is True
    assert first.persist() is False  # nothing changed: not written again
    saved = load_state(first.path)
    assert (saved["clean"], saved["delivered"], saved["partitions"]) == (
        False, {"x.lob": 3}, {"x.lob": {"1": [2, 1_714_557_605_401]}})
    first._lock_fd, fd = -1, first._lock_fd  # the process "dies": the lock goes, no clean end
    os.close(fd)

    second = RunState.open("kraken", FakeKafka(), tmp_path)
    assert second.unclean and second.previous == saved
    mem = MemorySink()
    reason = second.begin(Pipeline(mem))
    assert reason == unclean_reason(saved)
    [status] = mem.events("status")
    assert (status.exchange, status.symbol, status.status, status.reason) == ("kraken", "", "unclean_end", reason)
    assert warnings_of(caplog) == [f"kraken: unclean_end: {reason}"]
    second.end(clean=True)
    assert load_state(second.path)["clean"] is True

    caplog.clear()
    third = RunState.open("kraken", FakeKafka(), tmp_path)
    mem = MemorySink()
    assert not third.unclean and third.begin(Pipeline(mem)) is None and mem.events("status") == []
    third.end(clean=True)
    assert warnings_of(caplog) == []


@pytest.mark.parametrize("content, why", [
    (b"", "it is empty"),
    (b"\x00\xff\xfe garbage", "not JSON"),
    (json.dumps(STATE).encode()[:57], "not JSON"),  # a partial file
    (b"[1, 2]", "not a JSON object but list"),
    (json.dumps({**STATE, "format": 99}).encode(), "format 99, not 1"),
    (json.dumps({**STATE, "clean": "no"}).encode(), "'clean' is missing or not true/false"),
    (json.dumps({**STATE, "delivered": {"x.lob": -1}}).encode(), "'delivered' is not a map of topic -> count"),
    (json.dumps({**STATE, "partitions": {"x.lob": {"0": [1]}}}).encode(), "partition '0' of 'x.lob'"),
    (json.dumps({**STATE, "exchange": "binance"}).encode(), "it is the state of exchange 'binance'"),
])
def test_unreadable_state_one_warning_no_crash(tmp_path, caplog, content, why):
    caplog.set_level(logging.WARNING)
    path = kafka_state(tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    state = RunState.open("kraken", FakeKafka(), tmp_path)
    assert state is not None and state.previous is None and not state.unclean
    [warning] = warnings_of(caplog)
    assert warning.startswith(f"kraken: the run state file {path} is unreadable (") and why in warning
    assert "whether the previous run ended cleanly cannot be told" in warning
    mem = MemorySink()
    assert state.begin(Pipeline(mem)) is None and mem.events("status") == []
    assert load_state(path)["exchange"] == "kraken"  # replaced by this run's
    state.end(clean=True)
    assert len(warnings_of(caplog)) == 1


def test_load_state_raises_state_error_and_none_when_missing(tmp_path):
    assert load_state(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(StateError, match="not JSON"):
        load_state(tmp_path / "bad.json")


def test_a_second_live_run_keeps_no_state(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    first = RunState.open("kraken", FakeKafka(), tmp_path)
    first.begin()
    assert RunState.open("kraken", FakeKafka(), tmp_path) is None
    [warning] = warnings_of(caplog)
    assert "another atomfast run to the same kafka sink (b1:9092 prefix 'x.') holds" in warning
    # another target (prefix), another exchange: their own files
    other = RunState.open("kraken", FakeKafka(prefix="y."), tmp_path)
    assert other is not None and other.path != first.path
    assert RunState.open("binance", FakeKafka(), tmp_path) is not None
    first.end(clean=True)


def test_state_dir_that_cannot_be_made_one_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    blocker = tmp_path / "data"
    blocker.write_text("a file, not a directory")
    assert RunState.open("kraken", FakeKafka(), blocker / ".runstate") is None
    [warning] = warnings_of(caplog)
    assert warning.startswith("kraken: no run state is kept: cannot use ")


def test_unwritable_state_one_warning_then_recovers(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    sink = FakeKafka()
    state = RunState.open("kraken", sink, tmp_path)
    state.begin()
    tmp = state.path.with_name(state.path.name + ".tmp")
    tmp.mkdir()  # the temporary file cannot be opened
    for n in range(1, 4):
        sink.progress = {"delivered": {"x.lob": n}, "failed": {}, "partitions": {}}
        assert state.persist() is False
    [warning] = warnings_of(caplog)
    assert warning.startswith(f"kraken: run state: cannot write {state.path}")
    tmp.rmdir()
    assert state.persist() is True and load_state(state.path)["delivered"] == {"x.lob": 3}
    assert warnings_of(caplog)[-1] == f"kraken: the run state file {state.path} is written again"
    state.end(clean=True)


def test_sinks_without_accounting_keep_no_state(tmp_path):
    from atomfast.sinks.null import NullSink
    from atomfast.sinks.stdout import StdoutSink

    assert RunState.open("kraken", NullSink(), tmp_path) is None
    assert RunState.open("kraken", StdoutSink(), tmp_path) is None
    assert not list(tmp_path.iterdir())


def test_files_sink_state(tmp_path):
    sink = FileSink(tmp_path / "data")
    state = RunState.open("kraken", sink, tmp_path / "data" / ".runstate")
    state.begin()
    from atomfast.events import Status

    sink.write("status", [Status("kraken", "", "connected", "", 1, 1)], [b"kraken:"], None)
    sink.flush()
    assert state.persist() is True
    saved = load_state(state.path)
    assert saved["written"] == 1 and saved["files"]["status"].startswith(str(tmp_path / "data" / "status"))
    sink.close()
    state.end(clean=True)
    final = load_state(state.path)
    assert final["clean"] is True and final["files"] == saved["files"]  # the closed file stays the last


# --- a real `atomfast run`: SIGKILL, restart -----------------------------------------------------
def start_run(env: dict, url: str, *extra) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "atomfast.cli", "run", "--exchange", "kraken", "--endpoint", url, "--no-status",
           "--channels", "lob", "--symbols", SYMBOLS, *map(str, extra)]
    return subprocess.Popen(cmd, cwd=ROOT, env=child_env(base=env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def the_state_file(data_dir: Path, sink: str) -> Path:
    [path] = (data_dir / ".runstate").glob(f"kraken.{sink}.*.json")
    return path


def saved(path: Path) -> dict | None:
    try:
        return load_state(path)
    except (StateError, FileNotFoundError):
        return None


def kill_mid_stream(proc: subprocess.Popen, data_dir: Path, sink: str, progress) -> dict:
    """SIGKILL ``proc`` once its state file shows progress (``progress(state)``); the state it left."""
    def ready():
        files = list((data_dir / ".runstate").glob(f"kraken.{sink}.*.json"))
        state = saved(files[0]) if files else None
        return state if state and progress(state) else None

    try:
        wait_for(lambda: ready() or proc.poll() is not None, 90, what="the run's state file to show progress")
    except AssertionError:
        proc.kill()
        raise
    assert proc.poll() is None, proc.stderr.read()[-3000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert "summary: " not in stderr  # killed: no summary, no stopped status
    state = load_state(the_state_file(data_dir, sink))
    assert state["clean"] is False
    return state


REASON = re.compile(r"^previous run \(pid (\d+) on [^,]+, started (\S+)\) ended without a clean stop; its state was "
                    r"last saved (\S+); delivered by then \(confirmed by the broker\): (.*); events after these "
                    r"offsets and times may be missing$")
TOPIC = re.compile(r"(\S+) (\d+) \[([^\]]*)\]")
PART = re.compile(r"p(\d+) offset (\d+) at ([^,\s]+)")


def parse_reason(reason: str) -> dict:
    """The numbers of a Kafka ``unclean_end`` reason (the format of ``runstate.unclean_reason``)."""
    m = REASON.match(reason)
    assert m, reason
    topics = {}
    for name, count, parts in TOPIC.findall(m.group(4)):
        topics[name] = (int(count), {int(p): (int(o), at) for p, o, at in PART.findall(parts)})
    return {"pid": int(m.group(1)), "started": m.group(2), "saved": m.group(3), "topics": topics}


@pytest.fixture
def kafka_env(kafka_bootstrap, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SCHEMA_REGISTRY", "ATOMFAST_"))}
    env["KAFKA_BOOTSTRAP_SERVERS"] = kafka_bootstrap
    env["KAFKA_TOPIC_PREFIX"] = f"unclean-{uuid.uuid4().hex[:8]}."
    env["KAFKA_TOPIC_PARTITIONS"] = "2"  # the state keeps every partition's last offset
    env["ATOMFAST_DATA_DIR"] = str(tmp_path / "data")
    return env


def unclean_statuses(bootstrap: str, prefix: str) -> list[dict]:
    """Every ``unclean_end`` status on the broker's status topic (read back with a consumer)."""
    from atomfast.avro import decode

    records = read_topics(bootstrap, [prefix + "status"])[prefix + "status"]
    said = [decode(value, "status")[1] for _key, value in records]
    return [s for s in said if s["status"] == "unclean_end"]


def records_in(path: Path) -> int:
    """The records of an Avro container file, up to a block cut short by the kill."""
    import fastavro

    n = 0
    with open(path, "rb") as f:
        try:
            for _ in fastavro.reader(f):
                n += 1
        except Exception:  # noqa: BLE001 - the killed run's last block may be partial
            pass
    return n


@pytest.mark.kafka
def test_kafka_run_killed_then_restarted_says_how_far_it_delivered(kafka_env, kafka_bootstrap, tmp_path):
    from confluent_kafka import Consumer, TopicPartition

    prefix = kafka_env["KAFKA_TOPIC_PREFIX"]
    data_dir = tmp_path / "data"
    lob, status = prefix + "lob", prefix + "status"
    with SimProcess(fixture_path(BOOK), "--pace", "fast", "--rate", "400", "--loop") as sim:
        # 1. a run killed mid-stream, once its state shows lob deliveries on both partitions
        first = start_run(kafka_env, sim.url, "--sink", "kafka")
        state = kill_mid_stream(first, data_dir, "kafka",
                                lambda s: len(s["partitions"].get(lob, {})) == 2 and s["delivered"][lob] >= 500)
        assert state["pid"] == first.pid and state["sink"] == "kafka"
        assert state["target"] == f"{kafka_bootstrap} prefix {prefix!r}"

        # what the broker holds of that run: the topics are new, only the killed run wrote them
        c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"t-{uuid.uuid4().hex[:8]}"})
        try:
            held = {t: {p: c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1] for p in (0, 1)}
                    for t in state["delivered"]}
        finally:
            c.close()
        read_back = read_topics(kafka_bootstrap, list(state["delivered"]))
        assert set(state["delivered"]) == {lob, prefix + "spread", status}
        for topic, n in state["delivered"].items():
            parts = state["partitions"][topic]
            # delivery reports come in offset order: each partition's count is its last offset + 1
            assert n == sum(offset + 1 for offset, _ts in parts.values())
            assert n <= sum(held[topic].values()) == len(read_back[topic])
            for p, (offset, ts) in parts.items():
                assert offset < held[topic][int(p)]
                assert state["started_ns"] // 1_000_000 <= ts <= state["persisted_ns"] // 1_000_000
        assert not state["failed"]

        # 2. the restart says so, once, with exactly the numbers of the state file
        second = start_run(kafka_env, sim.url, "--sink", "kafka")
        wait_for(lambda: (s := saved(the_state_file(data_dir, "kafka"))) and s["pid"] == second.pid
                 and s["delivered"].get(lob, 0) > 0, 90, what="the restarted run's deliveries")
        assert stop_process(second, 60) == 0  # SIGTERM: an orderly end
        stderr = second.stderr.read()
        second.stderr.close()
        assert cli_summary(stderr)["events"]["status"] >= 1
        after = load_state(the_state_file(data_dir, "kafka"))
        assert after["clean"] is True and after["pid"] == second.pid
        warned = [ln for ln in stderr.splitlines() if "unclean_end" in ln]
        assert len(warned) == 1 and warned[0].endswith(f"kraken: unclean_end: {unclean_reason(state)}")

        [said] = unclean_statuses(kafka_bootstrap, prefix)
        assert (said["exchange"], said["symbol"], said["status"]) == ("kraken", "", "unclean_end")
        assert said["reason"] == unclean_reason(state)
        numbers = parse_reason(said["reason"])
        assert numbers["pid"] == state["pid"]
        assert numbers["started"] == runstate.iso(state["started_ns"])
        assert numbers["saved"] == runstate.iso(state["persisted_ns"])
        assert {t: n for t, (n, _p) in numbers["topics"].items()} == state["delivered"]
        for topic, (n, parts) in numbers["topics"].items():
            assert {p: o for p, (o, _at) in parts.items()} == {int(p): o for p, (o, _ts) in
                                                                state["partitions"][topic].items()}
            assert {p: at for p, (_o, at) in parts.items()} == {int(p): runstate.iso(ts, "ms") for p, (_o, ts) in
                                                                  state["partitions"][topic].items()}
            assert n <= sum(held[topic].values())  # never more than the broker held of the killed run

        # 3. after the clean SIGTERM end: no unclean_end at the next start
        r = run_cli("run", "--exchange", "kraken", "--endpoint", sim.url, "--sink", "kafka", "--no-status",
                    "--channels", "lob", "--symbols", SYMBOLS, "--max-frames", 20, env=kafka_env)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "unclean_end" not in r.stderr
    assert len(unclean_statuses(kafka_bootstrap, prefix)) == 1


def test_files_run_killed_then_restarted_says_what_it_wrote(tmp_path):
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SCHEMA_REGISTRY", "ATOMFAST_"))}
    env["ATOMFAST_DATA_DIR"] = str(data_dir)
    with SimProcess(fixture_path(BOOK), "--pace", "fast", "--rate", "400", "--loop") as sim:
        first = start_run(env, sim.url, "--sink", "files")
        state = kill_mid_stream(first, data_dir, "files", lambda s: s["written"] >= 500 and "lob" in s["files"])
        assert state["target"] == str(data_dir.resolve())
        # the killed run's files hold at least the records the state counted (whole blocks)
        killed = [p for p in data_dir.glob("*/*.avro") if f"-{first.pid}-" in p.name]
        assert {str(p) for p in killed} >= set(state["files"].values())
        assert sum(records_in(p) for p in killed) >= state["written"]
        r = run_cli("run", "--exchange", "kraken", "--endpoint", sim.url, "--sink", "files", "--no-status",
                    "--channels", "lob", "--symbols", SYMBOLS, "--max-frames", 20, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        warned = [ln for ln in r.stderr.splitlines() if "unclean_end" in ln]
        assert len(warned) == 1 and warned[0].endswith(f"kraken: unclean_end: {unclean_reason(state)}")
        assert load_state(the_state_file(data_dir, "files"))["clean"] is True
        again = run_cli("run", "--exchange", "kraken", "--endpoint", sim.url, "--sink", "files", "--no-status",
                        "--channels", "lob", "--symbols", SYMBOLS, "--max-frames", 20, env=env)
        assert again.returncode == 0 and "unclean_end" not in again.stderr
    r = run_cli("consume", "status", "--from", "files", "--data-dir", data_dir, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    said = [json.loads(ln) for ln in r.stdout.splitlines() if '"unclean_end"' in ln]
    assert [(s["exchange"], s["symbol"], s["reason"]) for s in said] == [("kraken", "", unclean_reason(state))]
