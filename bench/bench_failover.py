"""Failover time of `atomfast serve`: from a node's death (kill -9) to every one of its markets
producing again on the survivors, over several runs.

Set-up (as tests/test_cluster.py): a real broker, two `atomfast simulate --loop` processes (the
recorded Kraken spot book and Kraken Futures captures), three nodes on loopback, nine markets
started through the gRPC API. Each run kills the node running the most markets and measures,
for each of its markets, the time from the kill to the first record of that market's key
(``exchange:symbol``) in ``lob``/``spread``/``trades`` (the Kafka record timestamp, set by the
producer at produce()); the run's figure is the slowest of its markets. It also notes when the
``moved`` status of each market was published (the takeover, before the feed connects). The
dead node is then started again (the group gives it slots back) and the cluster settles before
the next run.

    python bench/bench_failover.py [--runs 10] [--session-timeout 6] [--json]
    pytest bench/bench_failover.py --benchmark-only -s      # the same, 10 runs, as a benchmark

Without KAFKA_BOOTSTRAP_SERVERS the script starts its own broker (tools/kafka/broker.py).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from atomfast.testing import (  # noqa: E402
    MARKETS,
    ClusterHarness as Harness,
    all_online,
    measure_failover,
    node_reports,
    start_markets,
    statuses,
    wait_for,
)

NODES = ("node-a", "node-b", "node-c")


def _settle(h: Harness, session_timeout: float) -> None:
    """Every node up, each running some markets, all nine online."""
    from atomfast.control import level4_pb2 as pb

    for name in NODES:
        node = h.nodes.get(name)
        if node is None or node.proc.poll() is not None:
            h.start_node(name, "--session-timeout", session_timeout)
    stub = h.stub(NODES[0]) if h.nodes[NODES[0]].proc.poll() is None else h.stub(NODES[1])

    def spread():
        nodes = stub.ListNodes(pb.ListNodesRequest(), timeout=10).nodes
        return len(nodes) == 3 and all(n.active_market_count > 0 for n in nodes) and \
            sum(n.active_market_count for n in nodes) == len(MARKETS)

    wait_for(spread, 90, what="markets spread over three nodes")
    wait_for(lambda: all_online(stub, [m[0] for m in MARKETS]), 60, what="all markets online")
    time.sleep(1.0)


def run_bench(bootstrap: str, runs: int = 10, session_timeout: float = 6.0, log_dir: str | None = None,
              verbose: bool = True) -> dict:
    from atomfast.control import level4_pb2 as pb

    results = []
    with Harness(bootstrap, log_dir=log_dir) as h:
        for name in NODES:
            h.start_node(name, "--session-timeout", session_timeout)
        stub = h.stub(NODES[0])
        wait_for(lambda: len(stub.ListNodes(pb.ListNodesRequest(), timeout=10).nodes) == 3, 60, what="three nodes")
        start_markets(stub)
        for i in range(runs):
            _settle(h, session_timeout)
            reports = node_reports(h.bootstrap, h.prefix)
            live = {n: r for n, r in reports.items() if n in NODES and h.nodes[n].proc.poll() is None}
            victim = max(live, key=lambda n: len(live[n].markets))
            survivor = next(n for n in NODES if n != victim)
            r = measure_failover(h, victim)
            if r["missing"]:
                raise RuntimeError(f"run {i + 1}: markets {r['missing']} did not produce again within 60 s")
            since = int(r["t_kill"] * 1000)
            symbols = {m[0]: m[5] for m in MARKETS}
            moved_at = {}
            for rec in statuses(h.bootstrap, h.prefix, since):
                if rec["status"] == "moved":
                    for mid in r["moved"]:
                        if rec["symbol"] == symbols[mid] and mid not in moved_at:
                            moved_at[mid] = (rec["event_timestamp"] - since) / 1000
            row = {"run": i + 1, "victim": victim, "markets": len(r["moved"]), "producing_s": round(r["seconds"], 3),
                   "takeover_s": round(max(moved_at.values()), 3) if moved_at else None,
                   "per_market_s": {k: round(v, 3) for k, v in r["per_market"].items()}}
            results.append(row)
            if verbose:
                print(f"run {row['run']:2d}: {victim} ({row['markets']} markets) takeover {row['takeover_s']} s, "
                      f"all producing again after {row['producing_s']:.2f} s", file=sys.stderr, flush=True)
            # wait until the dead node has left the group before it comes back
            s = h.stub(survivor)
            wait_for(lambda: len(s.ListNodes(pb.ListNodesRequest(), timeout=10).nodes) == 2, 60, what="two nodes")
    values = [r["producing_s"] for r in results]
    takeovers = [r["takeover_s"] for r in results if r["takeover_s"] is not None]
    return {
        "runs": len(results),
        "session_timeout_s": session_timeout,
        "producing_median_s": round(statistics.median(values), 3),
        "producing_max_s": round(max(values), 3),
        "producing_min_s": round(min(values), 3),
        "takeover_median_s": round(statistics.median(takeovers), 3) if takeovers else None,
        "takeover_max_s": round(max(takeovers), 3) if takeovers else None,
        "results": results,
    }


def _broker():
    import importlib.util

    path = HERE.parent / "tools" / "kafka" / "broker.py"
    spec = importlib.util.spec_from_file_location("atomfast_tools_kafka_broker", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    broker = module.KafkaBroker(Path(tempfile.mkdtemp(prefix="bench-failover-kafka-")))
    broker.start()
    return broker


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--session-timeout", type=float, default=6.0)
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = p.parse_args(argv)
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = _broker()
        bootstrap = broker.bootstrap
    try:
        with tempfile.TemporaryDirectory(prefix="bench-failover-") as logs:
            out = run_bench(bootstrap, args.runs, args.session_timeout, logs)
    finally:
        if broker is not None:
            broker.stop()
    if args.json:
        print(json.dumps(out, indent=2))
    print(f"failover over {out['runs']} runs (session timeout {out['session_timeout_s']:g} s): every market of the "
          f"dead node producing again after median {out['producing_median_s']:.2f} s, max {out['producing_max_s']:.2f} s "
          f"(takeover: median {out['takeover_median_s']} s, max {out['takeover_max_s']} s)")
    return 0


def test_failover_time(benchmark, kafka_bootstrap, tmp_path):
    """pytest --benchmark-only: the same measurement, 10 runs."""
    benchmark.group = "failover: kill -9 of a node -> its markets producing again"
    out = benchmark.pedantic(run_bench, args=(kafka_bootstrap, 10, 6.0, str(tmp_path)), rounds=1, iterations=1)
    benchmark.extra_info.update({k: v for k, v in out.items() if k != "results"})
    print(f"\nfailover, {out['runs']} runs: median {out['producing_median_s']:.2f} s, max {out['producing_max_s']:.2f} s")
    assert out["producing_max_s"] < 20


if __name__ == "__main__":
    sys.exit(main())
