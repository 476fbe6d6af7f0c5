"""Shared test fixtures: the recorded captures in ../shared/fixtures, and a real Kafka broker.

What test modules share is in ``atomfast.testing`` (the test kit); no test module imports from
another. Under CI (``CI=true``) a missing ../shared/fixtures, or a missing capture, FAILS the
test that needs it (``atomfast.testing.fixture_path``); elsewhere the test skips.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from atomfast import testing
from atomfast.testing import _kafka_session, kafka_bootstrap, kafka_broker  # noqa: F401 (fixtures)


@pytest.fixture
def fixtures_dir() -> Path:
    """../shared/fixtures (skips where it is absent; fails under CI)."""
    return testing.fixtures_dir()


def pytest_collection_modifyitems(config, items):
    # A test that uses a Kafka fixture is a `kafka` test, marked or not (so `-m "not kafka"`
    # deselects it).
    for item in items:
        if {"kafka_bootstrap", "kafka_broker"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)
