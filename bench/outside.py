"""Section ``outside`` of ``python -m bench``: the floor target checked from outside the project,
as the issue first measured it.

The throughput section's floor is the scheme's own msgspec decoders, run by the benchmark on
preloaded frames. This section asks the same question with nothing of atomfast's on the floor's
side, and with the collector as a user runs it:

- **floor, outside**: this module's ``decode_floor``, which imports nothing of atomfast: it opens
  the capture file (``gzip`` for ``.gz``), splits it into lines, takes each received frame's
  payload by the file format's own rule (cryptofeed ``<secs>: <payload>``; hftbacktest
  ``<ns> <json>``) and decodes it with ``msgspec.json.Decoder().decode`` into Python objects
  (untyped: no per-venue knowledge). Timed in this process, best of the runs.
- **atomfast replay**: ``atomfast replay FILE --exchange X --sink null`` in a subprocess; its
  summary's ``seconds`` (``Replay.run``: reading the file, every frame through scheme, book,
  checksums, Avro and the null sink; not the interpreter's start nor the REST listing's parse,
  which happen before) and ``frames``. Best of the runs. The child's whole CPU time (start-up
  included) is shown beside it, for scale.

Both are per received websocket frame (the replay's ``frames``: the denominator of every column),
runs interleaved (floor, replay, floor, ...). Target (the issue's): atomfast / floor <= 2.0 on
kraken-book and binance-usdm-session, as in the throughput section, which this must agree with.

    python -m bench.outside                       # both cases, 9 runs, prints the table
    python -m bench --only outside                # as a section of the report
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import msgspec

from . import report as R

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures"
#: the issue's two target captures (bench/bench_replay.py's CASES: one file each)
CASES = ["kraken-book", "binance-usdm-session"]
TARGET = 2.0  # atomfast / floor, at most
RUNS = 9  # at least the "best of 5": the child runs are one replay each, on a shared machine


def decode_floor(path: Path) -> tuple[int, float]:
    """(received frames, seconds): read ``path`` and decode every received frame's JSON payload.

    cryptofeed (first line ``wss://... <-> <secs>``): a received frame is a line that starts with
    a digit, its payload after the first ``": "``; the others are the client's sends and the
    connection's opens (``wss://...``). hftbacktest (``<ns> <json>`` every line): every line's JSON
    after the first space; a line holding the REST depth snapshot (``{"lastUpdateId"...``, where
    the recorder put it) is decoded too but is no websocket frame."""
    decode = msgspec.json.Decoder().decode
    frames = 0
    t0 = time.perf_counter()
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fh:
        first = fh.readline()
        if b" <-> " in first:  # cryptofeed
            for line in fh:
                if 48 <= line[0] <= 57:
                    decode(line[line.index(b": ") + 2:])
                    frames += 1
        else:  # hftbacktest
            for line in (first, *fh) if first else ():
                payload = line[line.index(b" ") + 1:]
                decode(payload)
                if not payload.startswith(b'{"lastUpdateId"'):
                    frames += 1
    return frames, time.perf_counter() - t0


def replay_child(exchange: str, path: Path) -> dict:
    """``atomfast replay PATH --exchange EXCHANGE --sink null`` in a subprocess: its summary (the
    JSON line it prints) with the child's CPU seconds (user + system, start-up included) added."""
    code = "import sys; from atomfast.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", code, "replay", str(path), "--exchange", exchange, "--sink", "null"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0  # reaped by wait4
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"atomfast replay printed no summary: {out[-500:]!r} {err[-500:]!r}")
    summary = json.loads(lines[-1])
    summary["child_cpu"] = usage.ru_utime + usage.ru_stime
    return summary


def run(runs: int = RUNS, quick: bool = False, cases: list[str] | None = None) -> dict:
    runs = 1 if quick else max(runs, RUNS)
    out: dict = {"runs": runs, "target": TARGET, "cases": {}}
    from .bench_replay import CASES as REPLAY_CASES

    for case in cases or CASES:
        exchange, (rel,), _feed = REPLAY_CASES[case]
        path = FIXTURES / rel
        floors, replays = [], []
        decode_floor(path)  # warm the page cache and msgspec, untimed
        for _ in range(runs):
            floors.append(decode_floor(path))
            replays.append(replay_child(exchange, path))
        frames = {s["frames"] for s in replays}
        if len(frames) != 1:
            raise RuntimeError(f"{case}: the replays counted different frames: {sorted(frames)}")
        n = frames.pop()
        floor_frames = floors[0][0]
        floor_s = min(s for _, s in floors)
        replay_s = min(s["seconds"] for s in replays)
        checksum_failed = max(s["checksum_failed"] for s in replays)
        out["cases"][case] = {
            "exchange": exchange, "capture": rel, "frames": n, "floor_frames": floor_frames,
            "floor_us": floor_s / n * 1e6, "atomfast_us": replay_s / n * 1e6,
            "ratio": replay_s / floor_s, "child_cpu_s": min(s["child_cpu"] for s in replays),
            "events": sum(replays[0]["events"].values()), "checksum_ok": replays[0]["checksum_ok"],
            "checksum_failed": checksum_failed, "errors": max(s["errors"] for s in replays),
        }
    return out


def markdown(results: dict) -> str:
    rows = []
    for case, r in results["cases"].items():
        rows.append([case, f"`{r['capture']}`", f"{r['frames']:,}", R.num(r["floor_us"]), R.num(r["atomfast_us"]),
                     R.verdict(r["ratio"], results["target"], at_most=True), f"{r['child_cpu_s']:.2f} s",
                     f"{r['events']:,}", f"{r['checksum_ok']:,} / {r['checksum_failed']}"])
    text = [
        "## Outside the project: reading and decoding the file against `atomfast replay`",
        "",
        "The floor target checked as the issue first measured it, with nothing of atomfast's on the floor's side. "
        "**floor**: `bench/outside.py:decode_floor`, which imports nothing of atomfast: it opens the capture file "
        "(gzip for `.gz`), splits the lines, takes each received frame's payload by the format's own rule "
        "(cryptofeed `<secs>: <payload>`, hftbacktest `<ns> <json>`) and decodes it with msgspec into Python "
        "objects (untyped, no venue knowledge). **atomfast**: `atomfast replay FILE --exchange X --sink null` in a "
        "subprocess, its summary's `seconds` (`Replay.run`: reading the file, and every frame through scheme, "
        "book, checksums, Avro and the null sink; not the interpreter's start nor the listing's parse, which come "
        "before it). Both per received websocket frame (the replay's `frames`), best of "
        f"{results['runs']} run{'s' if results['runs'] != 1 else ''}, interleaved. *child CPU*: the replay "
        "process's whole CPU time (user + system, start-up and imports included), for scale. "
        f"Target: atomfast / floor ≤ {results['target']:.1f}.",
        "",
        R.table(["case", "capture", "frames", "floor µs/frame", "atomfast replay µs/frame", "atomfast / floor",
                 "child CPU", "events", "checksums ok / failed"], rows),
    ]
    for case, r in results["cases"].items():
        if r["floor_frames"] != r["frames"]:
            text += ["", f"{case}: the floor read {r['floor_frames']:,} frames, the replay {r['frames']:,}."]
    return "\n".join(text)


def plot(results: dict, outdir: Path) -> list:
    return []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.outside", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=RUNS)
    p.add_argument("--cases", default="", help=f"comma-separated among {', '.join(CASES)}")
    args = p.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()] or None
    print(markdown(run(args.runs, cases=cases)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
