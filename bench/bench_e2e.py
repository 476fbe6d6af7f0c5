"""End to end at a stated rate: `simulate --rate R` -> `run --sink kafka` -> a real local broker.

Reports the latency from frame receipt to produce() and from produce() to the broker's
delivery report (p50 / p99 / p99.9, from the run's own histograms), and the run's frames/s.
The simulator and the collector are separate processes on the same 2-core machine.

    pytest bench/bench_e2e.py --benchmark-only -s
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from tests.conftest import ROOT
from tests.test_simulator import SimProcess

from .conftest import capture

RATES = [1000, 5000]  # frames/s played by the simulator
BOOK = "cryptofeed/KRAKEN.ws.50.0"
SYMBOLS = "WAVES-EUR,KSM-BTC,ETH-CHF,OMG-USD,BTC-CHF,ADA-BTC"
FRAMES = 2481 * 4  # the capture played four times (--loop)


def _run(kafka_bootstrap, rate):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env.update(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, KAFKA_TOPIC_PREFIX=f"bench-{uuid.uuid4().hex[:8]}.",
               PYTHONPATH=str(ROOT))
    with SimProcess(capture(BOOK), "--rate", str(rate), "--loop") as sim:
        r = subprocess.run([sys.executable, "-m", "atomfast.cli", "run", "--exchange", "kraken", "--endpoint", sim.url,
                            "--sink", "kafka", "--no-status", "--symbols", SYMBOLS, "--channels", "lob",
                            "--max-frames", str(FRAMES)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("summary: ")][-1]
    return json.loads(line[len("summary: "):])


@pytest.mark.parametrize("rate", RATES)
def test_atomfast_kafka_latency(benchmark, kafka_bootstrap, rate):
    benchmark.group = f"end to end, simulate --rate {rate} -> run -> kafka"
    benchmark.extra_info.update(units=FRAMES, unit="frame")
    summary = benchmark.pedantic(_run, args=(kafka_bootstrap, rate), rounds=1, iterations=1)
    assert summary["checksum_failed"] == 0 and summary["frames"] == FRAMES
    lat = summary["latency"]
    benchmark.extra_info.update(latency=lat)
    f2p, p2d = lat["frame_to_produce"], lat["produce_to_delivery"]
    print(f"\nrate {rate}/s: frame->produce p50 {f2p['p50_us']:.1f} us p99 {f2p['p99_us']:.1f} us "
          f"p99.9 {f2p['p99.9_us']:.1f} us | produce->delivery p50 {p2d['p50_us'] / 1000:.2f} ms "
          f"p99 {p2d['p99_us'] / 1000:.2f} ms p99.9 {p2d['p99.9_us'] / 1000:.2f} ms")
