"""Section ``kafka_cpu`` of ``python -m bench``: the collector's CPU time per frame and per event
to a real broker, against the null sink, and the broker's CPU apart (issue 15 item 3).

Wall time to Kafka (the throughput section's column 3) mixes three things on a small shared
machine: the collector's Python thread, librdkafka's threads, and the broker's JVM, all on the
same cores. This section counts CPU instead, per process:

- Each measurement is a SUBPROCESS (``python -m bench.kafka_cpu --child CASE SINK ...``). It
  preloads the capture (``bench.throughput.Venue``: no file reading in the measured part), builds
  the sink (Kafka: fresh topics, connected, producer id obtained, one warm-up message per topic)
  and the ``Replay`` objects of every pass, runs one untimed warm-up pass, then says ``ready``
  and waits.
- The parent reads the child's CPU from ``/proc/<pid>/task/*/schedstat`` (time on CPU, user +
  system, every thread, nanoseconds; ``/proc/<pid>/stat`` utime + stime in clock ticks as a
  cross-check) and the broker's the same way, then says ``go``.
- The child replays the capture ``passes`` times into the sink (the sink's ``close`` is held
  back between passes), then flushes (Kafka: until every message is delivered and its delivery
  report served: the delivered count is checked against the events), says ``done`` and waits:
  the parent reads both processes' CPU again. Waiting costs no CPU: the difference is the work.
- Per thread (``/proc/<pid>/task/<tid>/comm``): the Python thread (``python``) apart from
  librdkafka's (``rdk:main``, ``rdk:broker...``): where the cost is.

Null and Kafka children alternate run by run; the figure is the median of the runs. The target
(the issue's): collector CPU per frame to Kafka <= 1.5x its CPU per frame to the null sink.

    python -m bench.kafka_cpu                      # both cases, 3 runs, prints a table
    python -m bench.kafka_cpu --runs 1 --cases kraken-book
    python -m bench.kafka_cpu --config '{"linger.ms": 20}'   # producer overrides (Kafka child)
    python -m bench --only kafka_cpu               # as a section of the report

The broker is KAFKA_BOOTSTRAP_SERVERS (its CPU is then not read: not our process) or a local
KRaft broker started for the run (tools/kafka/broker.py).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from . import report as R

ROOT = Path(__file__).resolve().parent.parent
CASES = ["kraken-book", "binance-usdm-session"]
#: passes of the capture per measurement: ~75k frames (kraken-book), ~190k frames / 1M events
PASSES = {"kraken-book": 30, "binance-usdm-session": 2}
QUICK_PASSES = {"kraken-book": 5, "binance-usdm-session": 1}
TARGET = 1.5  # Kafka CPU / null CPU per frame, at most
#: the children of a run, interleaved: the replay into each sink, then the replay's recorded
#: sink writes alone into each (``*-writes``: what the sink costs without the replay)
KINDS = ("null", "kafka", "null-writes", "kafka-writes")


# ---------------------------------------------------------------------------------------------
# /proc


def proc_cpu(pid: int) -> dict:
    """CPU time of process ``pid`` so far: ``ns`` (sum of its threads' schedstat run time),
    ``ticks_s`` (utime + stime of /proc/<pid>/stat, in seconds) and ``threads`` (tid -> [comm,
    ns])."""
    threads: dict[str, list] = {}
    total = 0
    task = Path(f"/proc/{pid}/task")
    for t in task.iterdir():
        try:
            ns = int((t / "schedstat").read_text().split()[0])
            comm = (t / "comm").read_text().strip()
        except (OSError, ValueError, IndexError):  # a thread that ended meanwhile
            continue
        threads[t.name] = [comm, ns]
        total += ns
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return {"ns": total, "ticks_s": ticks / os.sysconf("SC_CLK_TCK"), "threads": threads}


def cpu_delta(before: dict, after: dict) -> dict:
    """CPU between two :func:`proc_cpu` readings: ``s`` (schedstat), ``ticks_s`` and ``by_kind``
    (``python``: the main thread and any Python threads; ``rdk:main``, ``rdk:broker``, ...:
    librdkafka's threads by role; ``other``)."""
    by_kind: dict[str, float] = {}
    for tid, (comm, ns) in after["threads"].items():
        prev = before["threads"].get(tid, [comm, 0])[1]
        kind = _thread_kind(comm)
        by_kind[kind] = by_kind.get(kind, 0.0) + (ns - prev) / 1e9
    return {"s": (after["ns"] - before["ns"]) / 1e9, "ticks_s": after["ticks_s"] - before["ticks_s"],
            "by_kind": {k: round(v, 6) for k, v in sorted(by_kind.items())}}


def _thread_kind(comm: str) -> str:
    if comm.startswith("rdk:broker"):
        # rdk:broker1 (the broker), rdk:broker-1 (the bootstrap connection): one kind
        return "rdk:broker"
    if comm.startswith("rdk:"):
        return comm
    if comm.startswith(("python", "pytest")):
        return "python"
    return "other"


# ---------------------------------------------------------------------------------------------
# the child


def _child(case: str, sink_kind: str, passes: int, bootstrap: str, config: dict,
           poll_after_write: bool = True) -> int:
    sys.path.insert(0, str(ROOT)) if str(ROOT) not in sys.path else None
    import gc

    from .throughput import Venue, _check, _drop_topics

    v = Venue(case)
    writes = _recorded_writes(v) if sink_kind.endswith("-writes") else None
    sink_kind = sink_kind.removesuffix("-writes")
    if sink_kind == "null":
        from atomfast.sinks.null import NullSink

        sink = NullSink()
    else:
        from atomfast.events import TOPICS
        from atomfast.sinks.kafka import KafkaSink
        import uuid

        sink = KafkaSink({"bootstrap.servers": bootstrap, **config},
                         topic_prefix=f"bench-cpu-{uuid.uuid4().hex[:10]}.")
        sink.ensure_topics(list(TOPICS), partitions=1)
        # an experiment (--no-poll-after-write): the reports served by the final flush only
        sink._producer.poll_after_write = poll_after_write
        for topic in TOPICS:
            sink.write(topic, [()], [b"warm:up"], [b"warm-up"])
        assert sink.flush(30) == 0, "the broker did not take the warm-up messages"
    real_close = sink.close
    sink.close = lambda *a, **k: None  # every pass's pipeline closes the sink: keep it open
    warm = sink.stats().get("delivered_total", 0)
    try:
        if writes is None:
            metrics = v.replay(sink).run()  # warm-up pass, untimed
            _check(v, metrics)
            replays = [v.replay(sink) for _ in range(passes)]
        else:
            _write_all(sink, writes)  # warm-up pass, untimed
            replays = [_RecordedPass(v, sink, writes) for _ in range(passes)]
        sink.flush(120)
        warm = sink.stats().get("delivered_total", 0)
        gc.collect()
        gc.freeze()
        print("ready", flush=True)
        sys.stdin.readline()
        t0 = time.perf_counter()
        ru0 = os.times()
        events = 0
        frames = 0
        for replay in replays:
            m = replay.run()
            _check(v, m)
            frames += m.frames
            events += sum(m.events.values())
        remaining = sink.flush(120)
        wall = time.perf_counter() - t0
        ru1 = os.times()
        st = sink.stats()
        out = {"frames": frames, "events": events, "wall_s": wall,
               "self_cpu_s": (ru1.user - ru0.user) + (ru1.system - ru0.system), "remaining": remaining}
        if sink_kind == "kafka":
            out.update(delivered=st["delivered_total"] - warm, failed=st["failed_total"],
                       backpressure_waits=st["backpressure_waits"])
            assert remaining == 0 and st["failed_total"] == 0, st
            if not config.get("delivery.report.only.error"):  # (an experiment: no success reports)
                assert out["delivered"] == events, f"{out['delivered']} of {events} events delivered"
        print("done " + json.dumps(out), flush=True)
        sys.stdin.readline()
    finally:
        gc.unfreeze()
        if sink_kind == "kafka":
            _drop_topics(sink)
        real_close()
    return 0


def _recorded_writes(v) -> list[tuple[str, list, list]]:
    """The sink writes of one replay of ``v``, in order: ``(topic, keys, values)``, the values
    the Avro bytes the replay hands the sink (``write_rows``' rows taken as bytes)."""
    from atomfast.sinks.null import NullSink

    from .throughput import _check

    class Recorder(NullSink):
        def __init__(self):
            super().__init__()
            self.writes: list[tuple[str, list, list]] = []

        def write(self, topic, records, keys, values):
            self.writes.append((topic, list(keys), list(values)))

        def write_rows(self, topic, rows):
            keys, values = rows.take()
            self.writes.append((topic, keys, values))

    recorder = Recorder()
    _check(v, v.replay(recorder).run())
    return recorder.writes


def _write_all(sink, writes) -> None:
    write = sink.write
    for topic, keys, values in writes:
        write(topic, (), keys, values)


class _RecordedPass:
    """One pass of the recorded writes into ``sink`` (the ``*-writes`` children): what a replay
    asks of the sink, without the replay. Kafka: each write is ``KafkaProducer.write`` (the
    batch produced with one ``rd_kafka_produce_batch`` call, then ``poll(0)``), as in a replay."""

    def __init__(self, v, sink, writes):
        self.v, self.sink, self.writes = v, sink, writes

    def run(self):
        from types import SimpleNamespace

        _write_all(self.sink, self.writes)
        events: dict[str, int] = {}
        for topic, keys, _ in self.writes:
            events[topic] = events.get(topic, 0) + len(keys)
        return SimpleNamespace(frames=len(self.v.recv), checksum_failed=0, events=events)


# ---------------------------------------------------------------------------------------------
# the parent


def measure(case: str, sink_kind: str, passes: int, bootstrap: str = "", broker_pid: int | None = None,
            config: dict | None = None, poll_after_write: bool = True) -> dict:
    """One child: its CPU (and the broker's) over ``passes`` replays of ``case``."""
    cmd = [sys.executable, "-m", "bench.kafka_cpu", "--child", case, sink_kind, str(passes),
           bootstrap or "-", json.dumps(config or {}), "poll" if poll_after_write else "no-poll"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONHASHSEED": "0"})
    try:
        line = proc.stdout.readline()
        if line.strip() != "ready":
            proc.wait(60)
            raise RuntimeError(f"{case} -> {sink_kind}: the child did not start ({line.strip()!r}, "
                               f"exit {proc.returncode})")
        c0 = proc_cpu(proc.pid)
        b0 = proc_cpu(broker_pid) if broker_pid else None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line.startswith("done "):
            proc.wait(60)
            raise RuntimeError(f"{case} -> {sink_kind}: the child failed (exit {proc.returncode})")
        c1 = proc_cpu(proc.pid)
        b1 = proc_cpu(broker_pid) if broker_pid else None
        out = json.loads(line[5:])
        proc.stdin.write("exit\n")
        proc.stdin.flush()
        if proc.wait(120) != 0:
            raise RuntimeError(f"{case} -> {sink_kind}: the child exited with {proc.returncode}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out["cpu"] = cpu_delta(c0, c1)
    if b0 is not None:
        out["broker_cpu"] = cpu_delta(b0, b1)
    return out


def run(runs: int = 3, quick: bool = False, kafka: bool = True, cases: list[str] | None = None,
        config: dict | None = None, log=print, poll_after_write: bool = True) -> dict:
    from .throughput import Broker

    cases = cases or (CASES[:1] if quick else CASES)
    passes = QUICK_PASSES if quick else PASSES
    results: dict = {"runs": runs, "quick": quick, "config": config or {}, "cases": {}, "note": "",
                     "poll_after_write": poll_after_write}
    broker = None
    if kafka:
        try:
            broker = Broker()
            results["note"] = broker.describe()
        except BaseException as exc:  # no Java: Kafka skipped, said so
            results["note"] = f"no broker ({type(exc).__name__}: {exc}); Kafka not measured"
    else:
        results["note"] = "skipped (--no-kafka)"
    try:
        broker_pid = broker.broker.pid if broker is not None and broker.broker is not None else None
        if broker is not None:  # a fresh broker (and its JIT) is slower at first: one throwaway run
            log("  kafka_cpu: broker warm-up")
            measure(cases[0], "kafka", passes[cases[0]], broker.bootstrap, None, config, poll_after_write)
        for case in cases:
            results["cases"][case] = {"passes": passes[case], **{kind: [] for kind in KINDS}}
        for r in range(runs):
            for case in cases:
                e = results["cases"][case]
                for kind in KINDS:
                    if kind.startswith("kafka") and broker is None:
                        continue
                    log(f"  kafka_cpu run {r + 1}/{runs}: {case} -> {kind}")
                    if kind.startswith("kafka"):
                        e[kind].append(measure(case, kind, passes[case], broker.bootstrap, broker_pid, config,
                                               poll_after_write))
                    else:
                        e[kind].append(measure(case, kind, passes[case]))
    finally:
        if broker is not None:
            broker.close()
    _summarise(results)
    return results


def _summarise(results: dict) -> None:
    for e in results["cases"].values():
        s: dict = {}
        for kind in KINDS:
            ms = e.get(kind)
            if not ms:
                continue
            frames, events = ms[0]["frames"], ms[0]["events"]
            s[kind] = {
                "frames": frames, "events": events,
                "us_frame": R.median(m["cpu"]["s"] / frames * 1e6 for m in ms),
                "us_event": R.median(m["cpu"]["s"] / events * 1e6 for m in ms),
                "ticks_us_frame": R.median(m["cpu"]["ticks_s"] / frames * 1e6 for m in ms),
                "wall_us_frame": R.median(m["wall_s"] / frames * 1e6 for m in ms),
                "by_kind_us_frame": {k: R.median(m["cpu"]["by_kind"].get(k, 0.0) / frames * 1e6 for m in ms)
                                     for k in sorted({k for m in ms for k in m["cpu"]["by_kind"]})},
            }
            if kind == "kafka" and all("broker_cpu" in m for m in ms):
                s[kind]["broker_us_frame"] = R.median(m["broker_cpu"]["s"] / frames * 1e6 for m in ms)
                s[kind]["broker_us_event"] = R.median(m["broker_cpu"]["s"] / events * 1e6 for m in ms)
        if "null" in s and "kafka" in s:
            s["ratio"] = s["kafka"]["us_frame"] / s["null"]["us_frame"]
            s["extra_us_event"] = (s["kafka"]["us_frame"] - s["null"]["us_frame"]) * s["null"]["frames"] \
                / s["null"]["events"]
        if "null" in s and "kafka" in s:
            # the extra CPU per event by where it is spent: the replay's thread (KafkaProducer's
            # produce of each batch and its C delivery report callbacks) and librdkafka's threads
            nb, kb = s["null"]["by_kind_us_frame"], s["kafka"]["by_kind_us_frame"]
            per_event = s["null"]["frames"] / s["null"]["events"]
            s["extra_us_event_by_kind"] = {
                "python": (kb.get("python", 0.0) - nb.get("python", 0.0)) * per_event,
                "librdkafka": sum(v for k, v in kb.items() if k.startswith("rdk:")) * per_event,
            }
        if "null-writes" in s and "kafka-writes" in s and "null" in s:
            # librdkafka's own CPU per frame: the same writes into Kafka less into the null sink
            # (no replay around them); the ratio a collector whose replay cost nothing extra
            # would reach: (null + that) / null
            own = s["kafka-writes"]["us_frame"] - s["null-writes"]["us_frame"]
            s["librdkafka_us_frame"] = own
            s["librdkafka_us_event"] = own * s["null"]["frames"] / s["null"]["events"]
            s["ratio_floor"] = (s["null"]["us_frame"] + own) / s["null"]["us_frame"]
        e["summary"] = s


def markdown(results: dict) -> str:
    runs = results["runs"]
    cfg = results.get("config") or {}
    out = ["## Kafka: the collector's CPU per frame and per event, against the null sink", ""]
    out.append(
        f"Median of {runs} run{'s' if runs != 1 else ''}; each measurement is its own subprocess "
        "(`bench/kafka_cpu.py`) replaying the preloaded capture N times into the sink (Kafka: "
        f"{results['note']}; default producer settings"
        + (f" with {json.dumps(cfg)}" if cfg else "")
        + ("" if results.get("poll_after_write", True) else
           "; **an experiment: the writes do not poll (`KafkaProducer.poll_after_write` False), the delivery "
           "reports are all served by the final flush**")
        + "; ended by a flush with every delivery report "
        "served). CPU = user + system of **all the process's threads** from `/proc/<pid>/task/*/schedstat`, "
        "read by the parent before and after the replays (the child waits meanwhile); the broker's CPU "
        "(its JVM, read the same way) is apart. Target: Kafka / null <= "
        f"{TARGET:g} per frame.")
    out.append("")
    rows = []
    for case, e in results["cases"].items():
        s = e.get("summary", {})
        n, k = s.get("null"), s.get("kafka")
        if not n:
            continue
        rows.append([
            case, f"{n['frames']:,} ({e['passes']} passes)", f"{n['events'] / n['frames']:.2f}",
            R.num(n["us_frame"]), R.num(k["us_frame"]) if k else "-",
            R.verdict(s.get("ratio"), TARGET, True) if k else "-",
            R.num(n["us_event"]), R.num(k["us_event"]) if k else "-",
            R.num(s.get("extra_us_event")) if k else "-",
            R.num(k.get("broker_us_frame")) if k and k.get("broker_us_frame") is not None else "-",
            R.num(n["wall_us_frame"]), R.num(k["wall_us_frame"]) if k else "-",
        ])
    out.append(R.table(["case", "frames", "events/frame", "null µs CPU/frame", "Kafka µs CPU/frame",
                        f"Kafka/null (target <= {TARGET:g})", "null µs/event", "Kafka µs/event",
                        "Kafka extra µs/event", "broker µs CPU/frame", "null wall µs/frame",
                        "Kafka wall µs/frame"], rows))
    out.append("")
    out.append("Where the collector's CPU goes, by thread (µs per frame; `python` is the replay's thread, "
               "`rdk:*` librdkafka's):")
    out.append("")
    rows = []
    for case, e in results["cases"].items():
        for kind in KINDS:
            s = e.get("summary", {}).get(kind)
            if s:
                rows.append([case, kind, ", ".join(f"{k} {v:.2f}" for k, v in s["by_kind_us_frame"].items())])
    out.append(R.table(["case", "sink", "threads"], rows))
    extra = [f"{case} {x['python']:.2f} µs in the replay's thread (the compiled "
             f"producer's produce calls and its delivery reports, counted in C) + {x['librdkafka']:.2f} µs in librdkafka's threads"
             for case, e in results["cases"].items() if (x := e.get("summary", {}).get("extra_us_event_by_kind"))]
    if extra:
        out += ["", "Kafka's extra CPU per event: " + "; ".join(extra) + "."]
    floors = [(case, e["summary"]) for case, e in results["cases"].items()
              if "ratio_floor" in e.get("summary", {})]
    if floors:
        out += ["", "### librdkafka's own cost: the same writes without the replay", "",
                "Children `null-writes` and `kafka-writes` (interleaved with the two above, same runs): one "
                "replay of the capture into a recording sink first, untimed, keeps every sink write (topic, "
                "keys, the Avro values as bytes); the measured part then makes the same writes, pass after "
                "pass, into the sink alone, with no replay: Kafka's `write` is the compiled producer's "
                "(one `rd_kafka_produce_batch` per write, then `poll(0)`), as in a replay; then the final "
                "flush. **librdkafka's own CPU** = kafka-writes - null-writes (the Python loop over the writes "
                "cancels out): what one librdkafka message per event costs in this process, all threads. "
                "**Floor of Kafka/null** = (null + librdkafka's own) / null: the ratio the collector would "
                "show if the replay and the producer cost nothing for each other (caches, cores).", ""]
        rows = []
        for case, s in floors:
            kw, nw = s["kafka-writes"], s["null-writes"]
            rows.append([case, R.num(nw["us_frame"]), R.num(kw["us_frame"]),
                         ", ".join(f"{k} {v:.2f}" for k, v in kw["by_kind_us_frame"].items() if v >= 0.005),
                         R.num(s["librdkafka_us_frame"]), R.num(s["librdkafka_us_event"]),
                         f"{s['ratio_floor']:.2f}x", f"{s['ratio']:.2f}x" if "ratio" in s else "-"])
        out.append(R.table(["case", "null-writes µs CPU/frame", "kafka-writes µs CPU/frame",
                            "kafka-writes by thread", "librdkafka's own µs/frame", "librdkafka's own µs/event",
                            "floor of Kafka/null", "Kafka/null measured"], rows))
        out += ["", "Where the floor is above the target, the target cannot be met with one librdkafka "
                "message per event (a contract of the design) whatever the collector's own code does: "
                "what remains is librdkafka's per-message work (the message allocation and copy, its "
                "locks, the partitioner, the delivery report and the free in the producing thread; "
                "the message set, lz4 and the request in `rdk:broker`)."]
    return "\n".join(out)


def plot(results: dict, outdir: Path) -> list:
    return []


def _format_console(results: dict) -> str:
    return markdown(results)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        case, sink_kind, passes, bootstrap, config = argv[1:6]
        return _child(case, sink_kind, int(passes), bootstrap, json.loads(config), argv[6:7] != ["no-poll"])
    p = argparse.ArgumentParser(prog="python -m bench.kafka_cpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--cases", default="", help=f"comma-separated among {', '.join(CASES)}")
    p.add_argument("--config", default="", help="JSON of producer overrides for the Kafka child")
    p.add_argument("--no-poll-after-write", action="store_true",
                   help="an experiment: the Kafka children's writes do not serve the delivery reports "
                        "(KafkaProducer.poll_after_write False); the final flush serves them all")
    p.add_argument("--json", default="", help="write the raw results to this file")
    args = p.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()] or None
    results = run(args.runs, args.quick, True, cases, json.loads(args.config) if args.config else None,
                  poll_after_write=not args.no_poll_after_write)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
