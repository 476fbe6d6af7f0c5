"""Shared test fixtures: the recorded captures in ../shared/fixtures, and a real Kafka broker."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures"


def fixture_path(relative: str) -> Path:
    """Path of a recorded capture; skips the test with a clear reason where it is absent."""
    path = FIXTURES / relative
    if not path.exists():
        pytest.skip(f"recorded capture {path} is absent (expected ../shared/fixtures beside the project)")
    return path


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"{FIXTURES} is absent: the recorded captures live in ../shared/fixtures")
    return FIXTURES
