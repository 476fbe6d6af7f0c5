"""The files sink on real captures: µs per frame to Avro object container files vs the null sink.

Each round replays one preloaded capture (``bench.throughput.Venue``: the frames in memory, the
instrument listings parsed before the clock starts) through ``Replay.run`` to one sink, close
included (the last blocks written, the files closed), files into a fresh directory:

- ``null``: ``NullSink("none")``: the pipeline encodes the bare Avro bodies, the sink only
  counts them (the floor of any sink);
- ``files``: ``FileSink`` (codec null): the pipeline's Rust encoder writes the bodies, the sink
  joins them into blocks and writes the container format itself (header, count, size, bodies,
  sync marker);
- ``files-deflate``: the same with ``codec="deflate"`` (raw zlib, level 6);
- ``fastavro``: a reference sink (``FastavroSink``, here) with ``framing = None``: the pipeline
  hands it the event tuples and it re-encodes them as dicts with ``fastavro.Writer`` (one writer
  per topic, 64 KiB blocks, same codec null): what writing the container files with fastavro
  would cost. It is not an earlier version of the files sink (that one always took the encoded
  bodies), it prices the alternative.

Numbers: median of ``--runs`` rounds, the sinks interleaved round by round::

    python -m bench.bench_files                      # kraken-book, binance-usdm-session, 5 runs
    python -m bench.bench_files --runs 7 --cases kraken-book
    pytest bench/bench_files.py --benchmark-only     # the same rounds under pytest-benchmark

Every round checks its output: the same events per topic in every sink, and for the file sinks
the files read back by fastavro hold exactly that many records (once per case, untimed).
"""
from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import pytest

from .conftest import capture

CASES = ("kraken-book", "binance-usdm-session")
SINKS = ("null", "files", "files-deflate", "fastavro")


class FastavroSink:
    """Reference: container files written by ``fastavro.Writer`` from the event tuples (as dicts)."""

    framing = None

    def __init__(self, data_dir: str | Path, codec: str = "null", block_bytes: int = 64 * 1024) -> None:
        import fastavro

        from atomfast.avro import load_schemas

        self._fastavro = fastavro
        self.data_dir = Path(data_dir)
        self.codec = codec
        self.block_bytes = block_bytes
        self._schemas = load_schemas()
        self._writers: dict[str, tuple[Any, Any, tuple[str, ...]]] = {}
        self.messages: Counter[str] = Counter()

    def _writer(self, topic: str):
        w = self._writers.get(topic)
        if w is None:
            schema = self._schemas[topic]
            folder = self.data_dir / topic
            folder.mkdir(parents=True, exist_ok=True)
            fo = open(folder / "fastavro.avro", "wb")
            writer = self._fastavro.write.Writer(fo, self._fastavro.parse_schema(schema), codec=self.codec,
                                                 sync_interval=self.block_bytes)
            w = self._writers[topic] = (writer, fo, tuple(f["name"] for f in schema["fields"]))
        return w

    def write(self, topic: str, records: Sequence[tuple], keys: Sequence[bytes], values: Any) -> None:
        writer, _, fields = self._writer(topic)
        for r in records:
            writer.write(dict(zip(fields, r)))
        self.messages[topic] += len(records)

    def poll(self) -> None:
        pass

    def flush(self, timeout: float = 30.0) -> int:
        for writer, fo, _ in self._writers.values():
            writer.flush()
        return 0

    def close(self) -> None:
        for writer, fo, _ in self._writers.values():
            writer.flush()
            fo.close()
        self._writers.clear()

    def stats(self) -> dict:
        return {"messages": dict(self.messages)}


def make_sink(kind: str, data_dir: Path):
    from atomfast.sinks.files import FileSink
    from atomfast.sinks.null import NullSink

    if kind == "null":
        return NullSink("none")
    if kind == "files":
        return FileSink(data_dir)
    if kind == "files-deflate":
        return FileSink(data_dir, codec="deflate")
    if kind == "fastavro":
        return FastavroSink(data_dir)
    raise ValueError(kind)


def _events(metrics) -> dict[str, int]:
    return {t: n for t, n in metrics.events.items() if n}


def one_round(venue, kind: str, root: Path) -> tuple[float, float, dict[str, int], int]:
    """Wall and CPU seconds of one replay to a fresh sink (close included), its events per
    topic, bytes on disk."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=root))
    sink = make_sink(kind, data_dir)
    replay = venue.replay(sink)
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    metrics = replay.run()  # closes the pipeline, so the sink: last blocks written
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert metrics.frames == len(venue.recv), f"{venue.case}: {metrics.frames} frames, {len(venue.recv)} expected"
    size = sum(p.stat().st_size for p in data_dir.rglob("*.avro"))
    return dt, cpu, _events(metrics), size


class Recorder:
    """Framing "none": keeps every write (topic, records, keys, values) of a replay."""

    framing = "none"

    def __init__(self) -> None:
        self.batches: list[tuple[str, list, list, list]] = []

    def write(self, topic, records, keys, values) -> None:
        self.batches.append((topic, list(records), list(keys), list(values)))

    def poll(self) -> None:
        pass

    def flush(self, timeout: float = 30.0) -> int:
        return 0

    def close(self) -> None:
        pass

    def stats(self) -> dict:
        return {}


def sink_round(batches, kind: str, root: Path) -> float:
    """CPU seconds of the sink alone: its ``write`` over a replay's recorded batches, then
    ``close``."""
    sink = make_sink(kind, Path(tempfile.mkdtemp(prefix=f"alone-{kind}-", dir=root)))
    write = sink.write
    framed = sink.framing is not None
    gc.collect()
    c0 = time.process_time()
    for topic, records, keys, values in batches:
        write(topic, records, keys, values if framed else None)
    sink.close()
    return time.process_time() - c0


def check_files(data_dir: Path, events: dict[str, int]) -> None:
    """Every topic's files read back by fastavro hold exactly the events counted."""
    import fastavro

    got: Counter[str] = Counter()
    for path in data_dir.rglob("*.avro"):
        with open(path, "rb") as f:
            got[path.parent.name] += sum(1 for _ in fastavro.reader(f))
    assert dict(got) == events, (dict(got), events)


def measure(cases: Sequence[str] = CASES, sinks: Sequence[str] = SINKS, runs: int = 5) -> dict:
    from .throughput import Venue

    results: dict[str, dict] = {}
    batches: dict[str, list] = {}
    venues = {case: Venue(case) for case in cases}
    root = Path(tempfile.mkdtemp(prefix="atomfast-bench-files-"))
    try:
        for case, venue in venues.items():
            # untimed: one round per sink, outputs checked
            events = None
            for kind in sinks:
                data_dir = Path(tempfile.mkdtemp(prefix=f"check-{kind}-", dir=root))
                sink = make_sink(kind, data_dir)
                metrics = venue.replay(sink).run()
                got = _events(metrics)
                if events is None:
                    events = got
                assert got == events, f"{case} {kind}: {got} != {events}"
                if kind != "null":
                    check_files(data_dir, got)
                shutil.rmtree(data_dir)
            recorder = Recorder()
            venue.replay(recorder).run()
            batches[case] = recorder.batches
            results[case] = {"frames": len(venue.recv), "events": sum(events.values()), "writes": len(recorder.batches),
                             "seconds": {k: [] for k in sinks}, "cpu": {k: [] for k in sinks},
                             "alone_cpu": {k: [] for k in sinks}, "bytes": {}}
        for _ in range(runs):
            for case, venue in venues.items():
                r = results[case]
                for kind in sinks:
                    dt, cpu, _, size = one_round(venue, kind, root)
                    r["seconds"][kind].append(dt)
                    r["cpu"][kind].append(cpu)
                    r["bytes"][kind] = size
                    r["alone_cpu"][kind].append(sink_round(batches[case], kind, root))
                    for p in root.iterdir():
                        shutil.rmtree(p)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for case, r in results.items():
        for name in ("seconds", "cpu", "alone_cpu"):
            r[f"{name}_us_per_frame"] = {k: statistics.median(v) / r["frames"] * 1e6 for k, v in r[name].items()}
    return results


def markdown(results: dict) -> str:
    """Per case and sink: the replay's wall and CPU µs per frame (and CPU over the null sink's,
    per frame and per event), the sink alone (CPU of its writes over the recorded batches), the
    bytes written."""
    out = ["| case | sink | wall µs/frame | CPU µs/frame | CPU − null, µs/frame | CPU − null, ns/event | "
           "CPU x null | sink alone, CPU µs/frame | sink alone − null, ns/event | MB written |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case, r in results.items():
        wall, cpu, alone = r["seconds_us_per_frame"], r["cpu_us_per_frame"], r["alone_cpu_us_per_frame"]
        per_event = r["frames"] / r["events"] * 1000
        for kind in wall:
            extra = cpu[kind] - cpu["null"] if "null" in cpu else None
            extra_alone = alone[kind] - alone["null"] if "null" in alone else None
            out.append("| " + " | ".join(str(c) for c in (
                f"{case} ({r['frames']} frames, {r['events']} events)", kind, f"{wall[kind]:.2f}", f"{cpu[kind]:.2f}",
                "" if extra is None else f"{extra:+.2f}",
                "" if extra is None else f"{extra * per_event:+.0f}",
                "" if extra is None else f"{cpu[kind] / cpu['null']:.2f}",
                f"{alone[kind]:.2f}",
                "" if extra_alone is None else f"{extra_alone * per_event:+.0f}",
                f"{r['bytes'].get(kind, 0) / 1e6:.2f}" if kind != "null" else "")) + " |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_files", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--sinks", default=",".join(SINKS))
    p.add_argument("--json", default="", help="also write the raw figures to this file")
    args = p.parse_args(argv)
    results = measure([c for c in args.cases.split(",") if c], [s for s in args.sinks.split(",") if s], args.runs)
    print(markdown(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


# ---- pytest-benchmark -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def _venues():
    from .bench_replay import CASES as ALL
    from .throughput import Venue

    out = {}

    def get(case):
        if case not in out:
            for rel in ALL[case][1]:
                capture(rel)  # skips where the capture is absent
            out[case] = Venue(case)
        return out[case]

    return get


@pytest.mark.parametrize("kind", SINKS)
@pytest.mark.parametrize("case", CASES)
def test_files_sink(benchmark, _venues, tmp_path, case, kind):
    venue = _venues(case)
    benchmark.group = f"files sink {case}"
    benchmark.extra_info.update(units=len(venue.recv), unit="frame", impl=f"atomfast {kind}" if kind == "files" else kind)

    def rnd():
        return one_round(venue, kind, tmp_path)

    def cleanup():
        for p in tmp_path.iterdir():
            shutil.rmtree(p)
        return (), {}

    dt, cpu, events, _ = benchmark.pedantic(rnd, setup=cleanup, rounds=5, iterations=1, warmup_rounds=1)
    assert events


if __name__ == "__main__":
    sys.exit(main())
