"""Benchmark helpers: where the captures are, and one ratio table per group at the end.

Each benchmark sets ``benchmark.extra_info["units"]`` (what one round processes: frames,
deltas, records), ``["unit"]`` (its name) and optionally ``["impl"]`` (the implementation's
name, where the test's parameter is not it). The table shows the median cost per unit and
each row's ratio to the atomfast row of its group (names starting with ``atomfast``).
"""
from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"


def capture(relative: str) -> Path:
    """A capture under ../shared/fixtures, or ``repo:PATH`` in the repository (tests/data)."""
    if relative.startswith("repo:"):
        return Path(__file__).resolve().parent.parent / relative[len("repo:"):]
    path = FIXTURES / relative
    if not path.exists():
        pytest.skip(f"recorded capture {path} is absent (expected ../shared/fixtures)")
    return path


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not getattr(session, "benchmarks", None):
        return
    groups: dict[str, list] = {}
    for bench in session.benchmarks:
        if not bench.get("extra_info", {}).get("units") or not bench.stats:
            continue
        groups.setdefault(bench.group or "", []).append(bench)
    if not groups:
        return
    tr = terminalreporter
    tr.write_sep("=", "per-unit cost (median of rounds) and ratio to atomfast")
    tr.write_line("| group | implementation | unit | ns/unit | units/s | x atomfast |")
    tr.write_line("|---|---|---|---:|---:|---:|")
    for group, benches in sorted(groups.items()):
        rows = []
        for b in benches:
            info = b["extra_info"]
            ns = b.stats.median / info["units"] * 1e9
            name = info.get("impl") or (b.name.split("[")[-1].rstrip("]") if "[" in b.name else b.name)
            rows.append((name, info.get("unit", "unit"), ns))
        base = next((ns for name, _u, ns in rows if name.startswith("atomfast")), None)
        for name, unit, ns in sorted(rows, key=lambda r: r[2]):
            ratio = f"{ns / base:.2f}" if base else "-"
            tr.write_line(f"| {group} | {name} | {unit} | {ns:,.0f} | {1e9 / ns:,.0f} | {ratio} |")


# the real Kafka broker of the test suite (started once per session, or KAFKA_BOOTSTRAP_SERVERS)
from atomfast.testing import _kafka_session, kafka_bootstrap  # noqa: E402,F401
