"""Root pytest configuration: benchmarks (bench/) are off unless --benchmark-only is given.

`pytest` runs the test suite; `pytest --benchmark-only` runs the benchmarks (see README).
"""


def pytest_configure(config):
    if not config.getoption("benchmark_only", default=False):
        config.option.benchmark_skip = True
