"""Root pytest configuration: the benchmarks (bench/bench_*.py) run only when asked for.

* ``pytest``: the test suite. Benchmarks (tests using pytest-benchmark's ``benchmark``
  fixture) are deselected, so the closing line counts them as ``deselected``.
* ``pytest --benchmark``: the benchmarks, and nothing else (the other tests are deselected).
  Paths narrow it as usual: ``pytest --benchmark bench/bench_book.py``.
* ``pytest --benchmark-only`` (pytest-benchmark's own option) keeps working: benchmarks run,
  the other tests are reported as skipped.
"""
from __future__ import annotations

import pytest

_BENCHMARKS_DESELECTED = pytest.StashKey[int]()


def pytest_addoption(parser):
    parser.addoption(
        "--benchmark",
        action="store_true",
        default=False,
        dest="atomfast_benchmark",
        help="run the benchmarks (bench/bench_*.py, pytest-benchmark) instead of the tests; "
        "a plain `pytest` does not run them",
    )


def _mode(config) -> str:
    """'bench' (--benchmark), 'only' (--benchmark-only) or 'tests' (plain run)."""
    if config.getoption("atomfast_benchmark", default=False):
        return "bench"
    if config.getoption("benchmark_only", default=False):
        return "only"
    return "tests"


def pytest_configure(config):
    mode = _mode(config)
    if mode == "bench":
        if not config.pluginmanager.hasplugin("benchmark"):
            raise pytest.UsageError(
                "--benchmark needs pytest-benchmark: pip install -e '.[bench]' (or '.[test]')"
            )
        if config.getoption("benchmark_skip", default=False):
            raise pytest.UsageError("--benchmark and --benchmark-skip contradict each other")
    elif mode == "tests":
        # belt and braces: a benchmark the deselection below misses is skipped, never timed
        if hasattr(config.option, "benchmark_skip"):
            config.option.benchmark_skip = True


def _is_benchmark(item) -> bool:
    # the test asked for pytest-benchmark's fixture (directly or through another fixture);
    # the same rule pytest-benchmark applies for --benchmark-skip / --benchmark-only
    return "benchmark" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config, items):
    mode = _mode(config)
    if mode == "only":
        return
    want_benchmarks = mode == "bench"
    keep, drop = [], []
    for item in items:
        (keep if _is_benchmark(item) == want_benchmarks else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    if not want_benchmarks:
        config.stash[_BENCHMARKS_DESELECTED] = len(drop)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    n = config.stash.get(_BENCHMARKS_DESELECTED, 0)
    if n:
        terminalreporter.write_line(f"{n} benchmark(s) deselected: `pytest --benchmark` runs them")
