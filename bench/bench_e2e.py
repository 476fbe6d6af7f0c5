"""End to end at a stated rate: `simulate --rate R` -> `run --sink kafka` -> a real local broker.

Reports the latency from frame receipt to produce() and from produce() to the broker's
delivery report (p50 / p99 / p99.9, from the run's own histograms), and the run's frames/s.
The simulator and the collector are separate processes on the same 2-core machine. The run
itself is ``bench.latency.run_collector`` (the stock `atomfast run`, no probe); ``python -m
bench.latency`` measures receipt -> delivery report per message and explains the numbers.

    pytest bench/bench_e2e.py --benchmark-only -s
"""
from __future__ import annotations

import pytest

from .conftest import capture
from .latency import BOOK, PASS_FRAMES, RATES, run_collector

FRAMES = PASS_FRAMES * 4  # the capture played four times (--loop)


@pytest.mark.parametrize("rate", RATES)
def test_atomfast_kafka_latency(benchmark, kafka_bootstrap, rate):
    capture(BOOK)  # skips when the fixtures are absent
    benchmark.group = f"end to end, simulate --rate {rate} -> run -> kafka"
    benchmark.extra_info.update(units=FRAMES, unit="frame")
    summary = benchmark.pedantic(run_collector, args=(kafka_bootstrap, rate, FRAMES), kwargs={"probe": False},
                                 rounds=1, iterations=1)
    assert summary["checksum_failed"] == 0 and summary["frames"] == FRAMES
    lat = summary["latency"]
    benchmark.extra_info.update(latency=lat)
    f2p, p2d = lat["frame_to_produce"], lat["produce_to_delivery"]
    print(f"\nrate {rate}/s: frame->produce p50 {f2p['p50_us']:.1f} us p99 {f2p['p99_us']:.1f} us "
          f"p99.9 {f2p['p99.9_us']:.1f} us | produce->delivery p50 {p2d['p50_us'] / 1000:.2f} ms "
          f"p99 {p2d['p99_us'] / 1000:.2f} ms p99.9 {p2d['p99.9_us'] / 1000:.2f} ms")
