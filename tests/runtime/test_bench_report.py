"""``python -m bench`` (the performance report) end to end on one small venue: the report, a
figure and the raw figures are written, the floor's numbers are positive. No timing assertions."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from atomfast.testing import ROOT, fixture_path

VENUE = "kraken-trades+ticker"  # 109 frames


def test_quick_throughput_report(tmp_path: Path):
    fixture_path("cryptofeed/KRAKEN.ws.48.0")
    fixture_path("cryptofeed/KRAKEN.ws.49.0")
    out = tmp_path / "results"
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
