"""``python -m bench`` (the performance report) end to end on one small venue: the report, a
figure and the raw figures are written, the floor's numbers are positive, the run is compared
with the ``results.json`` it replaces. No timing assertions."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from atomfast.testing import ROOT, fixture_path

VENUE = "kraken-trades+ticker"  # 109 frames
#: a previous run as the committed one of 71a6093 wrote it (no traced profile for VENUE)
PREVIOUS_DATE, PREVIOUS_REV = "2026-11-21 03:19 UTC", "5c54bdf"


def _previous_run(quick: bool = False, previous: dict | None = None) -> dict:
    raw = {
        "machine": {"date": PREVIOUS_DATE, "revision": PREVIOUS_REV, "command": "python -m bench" + (
            " --quick" if quick else ""), "cpu": "Intel(R) Xeon(R) Processor", "cores": 2, "python": "CPython 3.11.7",
            "versions": {"msgspec": "0.22.0"}},
        "sections": {"throughput": {"runs": 1 if quick else 5, "cryptofeed_runs": 3, "quick": quick, "venues": {
            VENUE: {"frames": 109, "us_per_frame": {"floor": 1.34, "atomfast": 3.95, "atomfast_reading": 26.4,
                                                    "kafka": None, "cryptofeed": 31.3},
                    "ratios": {"atomfast_floor": 2.95, "cryptofeed_atomfast": 7.91}},
            "kraken-book": {"frames": 2481, "us_per_frame": {"floor": 1.2, "atomfast": 6.32},
                            "ratios": {"atomfast_floor": 5.26}, "python_profile": {"opcodes_per_frame": 498.1}}}}},
        "total_seconds": 700.0,
    }
    if previous is not None:
        raw["previous"] = previous
    return raw


def test_quick_throughput_report(tmp_path: Path):
    fixture_path("cryptofeed/KRAKEN.ws.48.0")
    fixture_path("cryptofeed/KRAKEN.ws.49.0")
    out = tmp_path / "results"
    out.mkdir()
    (out / "results.json").write_text(json.dumps(_previous_run()), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-kafka", "--only", "throughput", "--venues", VENUE,
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    report = (out / "REPORT.md").read_text(encoding="utf-8")
    assert "## Throughput" in report
    assert VENUE in report
    assert "python -m bench --quick --no-kafka --only throughput" in report  # the exact command
    assert "CPython 3." in report and "msgspec" in report
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "throughput_us_per_frame.png" in pngs, pngs
    assert (out / "throughput_us_per_frame.png").stat().st_size > 1000

    raw = json.loads((out / "results.json").read_text(encoding="utf-8"))
    venue = raw["sections"]["throughput"]["venues"][VENUE]
    assert venue["frames"] == 109
    assert venue["floor_errors"] == 0
    assert venue["times"]["floor"] and all(t > 0 for t in venue["times"]["floor"])
    assert venue["us_per_frame"]["floor"] > 0
    assert venue["us_per_frame"]["atomfast"] > 0
    split = venue["split"]
    assert split["decode"] == venue["us_per_frame"]["floor"]
    assert split["encode"] > 0 and split["produce"] > 0
    assert venue["python_profile"]["opcodes_per_frame"] > 0
    assert venue["floor_check"]["same"], venue["floor_check"]

    # against the run it replaced: its date and revision from its own metadata, before -> now
    assert f"## Against the previous run ({PREVIOUS_DATE}, git {PREVIOUS_REV})" in report
    assert f"### Against the previous run ({PREVIOUS_DATE}, git {PREVIOUS_REV})" in report
    row = next(line for line in report.splitlines() if line.startswith(f"| {VENUE} | 3.95 -> "))
    assert "| 1.34 -> " in row and "| 2.95x -> " in row and "| 7.91x -> " in row
    assert "| not recorded -> " in row  # the previous run traced no profile for it
    assert "In the previous run, not in this one: kraken-book." in report
    assert "msgspec 0.22.0 -> " in report or "msgspec" not in raw["machine"]["versions"]
    assert raw["previous"]["revision"] == PREVIOUS_REV
    assert raw["previous"]["venues"][VENUE]["us_per_frame"]["atomfast"] == 3.95
    assert raw["previous"]["venues"]["kraken-book"]["opcodes_per_frame"] == 498.1


def test_previous_run_is_the_replaced_one_unless_a_smoke_run(tmp_path: Path):
    """The baseline is the results.json a run replaces; a --quick one is not a baseline: the run
    after it compares against what it compared against."""
    from bench.previous import baseline

    path = tmp_path / "results.json"
    assert baseline(path)[0] is None
    full = _previous_run()
    path.write_text(json.dumps(full), encoding="utf-8")
    prev, _ = baseline(path)
    assert prev["date"] == PREVIOUS_DATE and prev["venues"][VENUE]["ratios"]["atomfast_floor"] == 2.95
    assert prev["venues"][VENUE]["opcodes_per_frame"] is None

    smoke = _previous_run(quick=True, previous=prev)
    smoke["machine"]["date"], smoke["machine"]["revision"] = "2026-12-01 10:00 UTC", "abcdef0"
    path.write_text(json.dumps(smoke), encoding="utf-8")
    assert baseline(path)[0] == prev
    del smoke["previous"]
    path.write_text(json.dumps(smoke), encoding="utf-8")
    assert baseline(path)[0] is None

    newer = _previous_run(previous=prev)
    newer["machine"]["date"] = "2026-12-02 10:00 UTC"
    path.write_text(json.dumps(newer), encoding="utf-8")
    assert baseline(path)[0]["date"] == "2026-12-02 10:00 UTC"  # the replaced run, not its previous


def test_floor_decodes_every_frame():
    """Each venue's floor decodes its capture with the scheme's decoders and refuses nothing."""
    from atomfast.capture import RECV, open_capture
    from bench.bench_replay import CASES
    from bench.floor import FLOORS

    assert set(FLOORS) == set(CASES)
    for case in ("kraken-book", "kraken-trades+ticker", "binance-futures", "bitfinex", "bitmex", "deribit"):
        _exchange, rel, _feed = CASES[case]
        paths = [fixture_path(r) for r in rel]
        frames = [f.data for f in open_capture(*paths).frames() if f.kind == RECV]
        assert FLOORS[case](frames) == len(frames), case


def test_floor_decodes_what_the_scheme_decodes():
    """Each venue's floor makes the msgspec decode calls its scheme makes on the capture's
    received frames (counted by decoder type): a venue that changes its decoders needs its floor
    in bench/floor.py changed too, or (1) and (2)/(1) of the report measure something else."""
    from bench.bench_replay import CASES
    from bench.throughput import Venue, floor_check

    differ = {}
    for case, (_exchange, rel, _feed) in CASES.items():
        if case == "binance-usdm-session":  # the binance floor on 94k frames: binance-futures covers it
            continue
        for r in rel:
            fixture_path(r)
        check = floor_check(Venue(case))
        if not check["same"]:
            differ[case] = check["differences"]
    assert not differ, f"(decoder, scheme's calls, floor's calls): {differ}"


def test_outside_floor_and_replay_count_the_same_frames():
    """The outside-the-project check (bench/outside.py) reads the capture's received frames as the
    replay does: Kraken's book capture has 2,481 received frames (the send and the connect are
    not frames), the replay's checksums all pass (2,437 of them: the other 44 frames are the
    system status, subscription answers, snapshots and heartbeats), and the Binance USD-M
    session's 93,953 frames (its inline REST depth snapshot is decoded but is no frame)."""
    from bench.outside import decode_floor, replay_child

    kraken = fixture_path("cryptofeed/KRAKEN.ws.50.0")
    assert decode_floor(kraken)[0] == 2481
    summary = replay_child("kraken", kraken)
    assert (summary["frames"], summary["checksum_ok"], summary["checksum_failed"], summary["errors"]) == (2481, 2437, 0, 0)
    assert summary["child_cpu"] > 0
    assert decode_floor(fixture_path("hftbacktest/usdm/btcusdt_20240808.gz"))[0] == 93953
