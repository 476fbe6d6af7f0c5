"""Shared test fixtures: the recorded captures in ../shared/fixtures, and a real Kafka broker."""
from __future__ import annotations

import importlib.util
import os
import sys
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


# ---------------------------------------------------------------------------------------------
# Kafka: a real broker for the tests marked `kafka`.
#
# `kafka_bootstrap` (session): KAFKA_BOOTSTRAP_SERVERS when set (an external broker), else a
# single-node KRaft broker started from tools/kafka/broker.py under a pytest tmp dir and stopped
# at the end of the session. A test that needs Kafka and cannot have it FAILS (never skips).
# `kafka_broker`: the KafkaBroker object, for tests that stop/kill/restart it; skipped when an
# external broker is in use (we must not restart someone else's broker). Such a test may leave the
# broker stopped: the fixture starts it again afterwards.

KAFKA_BROKER_TOOL = ROOT / "tools" / "kafka" / "broker.py"


def _load_broker_tool():
    name = "atomfast_tools_kafka_broker"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, KAFKA_BROKER_TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _external_bootstrap() -> str | None:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None


def _check_reachable(bootstrap: str, timeout: float = 15.0) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    class _Quiet:
        def log(self, *args, **kwargs):
            pass

    problem = None
    try:
        AdminClient({"bootstrap.servers": bootstrap, "logger": _Quiet()}).list_topics(timeout=timeout)
    except KafkaException as e:
        problem = str(e)
    if problem is not None:
        pytest.fail(
            f"KAFKA_BOOTSTRAP_SERVERS={bootstrap} does not answer metadata requests within "
            f"{timeout:.0f}s ({problem}); unset it to let the tests start their own broker",
            pytrace=False,
        )


def pytest_collection_modifyitems(config, items):
    # A test that uses a Kafka fixture is a `kafka` test, marked or not (so `-m "not kafka"`
    # deselects it).
    for item in items:
        if {"kafka_bootstrap", "kafka_broker"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def _kafka_session(tmp_path_factory):
    """(bootstrap, KafkaBroker or None) for the whole session."""
    external = _external_bootstrap()
    if external:
        _check_reachable(external)
        yield external, None
        return
    problem = None
    try:
        tool = _load_broker_tool()
        broker = tool.KafkaBroker(tmp_path_factory.mktemp("kafka"))
        broker.start()
    except Exception as e:  # BrokerError, missing java/mvn, confluent_kafka, ...
        problem = f"{type(e).__name__}: {e}"
    if problem is not None:
        pytest.fail(
            "this test needs a Kafka broker and none could be started: set "
            "KAFKA_BOOTSTRAP_SERVERS to use a running one, or fix the local broker "
            f"(tools/kafka/broker.py needs Java 17+, and Maven or a filled tools/kafka/lib):\n{problem}",
            pytrace=False,
        )
    try:
        yield broker.bootstrap, broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(_kafka_session) -> str:
    """Bootstrap servers of a real Kafka broker (external or started for this session)."""
    return _kafka_session[0]


@pytest.fixture
def kafka_broker(_kafka_session):
    """The session's KafkaBroker, for tests that stop, kill or restart it."""
    bootstrap, broker = _kafka_session
    if broker is None:
        pytest.skip(
            f"KAFKA_BOOTSTRAP_SERVERS={bootstrap} is an external broker: this test restarts the "
            "broker, which it only does to the one the session starts (unset the variable)"
        )
    yield broker
    if not broker.is_running():
        broker.start()
