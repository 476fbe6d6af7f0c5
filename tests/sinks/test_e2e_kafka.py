"""End to end over the real network path and a real broker (issue: `run --exchange kraken`).

`atomfast simulate` serves the recorded Kraken captures over a local websocket, `atomfast run
--endpoint ws://127.0.0.1:P --sink kafka` collects them into a real Kafka broker, and
`atomfast consume` reads every topic back. Compared with the recorded frames themselves and
with an offline replay of the same capture: every checksum verified, the trades equal to the
recorded trades, every event there exactly once, nothing lost, nothing invented.
"""
from __future__ import annotations

import json
import os
import uuid
from collections import Counter

import pytest

from atomfast.metrics import Metrics
from atomfast.replay import replay_capture

from atomfast.testing import MemorySink, SimProcess, cli_summary, fixture_path, run_cli

pytestmark = pytest.mark.kafka

BOOK = "cryptofeed/KRAKEN.ws.50.0"
TRADES = "cryptofeed/KRAKEN.ws.48.0"


def offline(relative: str) -> tuple[dict, dict[str, list[dict]]]:
    sink, metrics = MemorySink(), Metrics()
    replay_capture([fixture_path(relative)], "kraken", sink, metrics)
    return metrics.summary(), sink.as_dicts()


def run_through_simulator(relative: str, channels: str, symbols: str, frames: int, env) -> dict:
    with SimProcess(fixture_path(relative), "--pace", "fast") as sim:
        r = run_cli("run", "--exchange", "kraken", "--endpoint", sim.url, "--sink", "kafka", "--no-status",
                "--symbols", symbols, "--channels", channels, "--max-frames", frames, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return cli_summary(r.stderr)


def consume(topic: str, env) -> list[dict]:
    r = run_cli("consume", topic, "--from", "kafka", "--timeout", "30", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads(ln) for ln in r.stdout.splitlines() if ln]


def without_receive_time(events: list[dict]) -> list[dict]:
    """atom_timestamp is the local receive time: it differs between a live run and a replay."""
    return [{k: v for k, v in e.items() if k not in ("topic", "atom_timestamp")} for e in events]


def recorded_trades(relative: str) -> list[tuple]:
    """The trades exactly as Kraken sent them: [price, volume, time, side, type, misc]."""
    out = []
    for line in fixture_path(relative).read_text().splitlines():
        _ts, sep, payload = line.partition(": ")
        if sep and payload.startswith("[") and '"trade"' in payload:
            msg = json.loads(payload)
            for price, volume, t, side, _type, _misc in msg[1]:
                out.append((msg[3], price, volume, t, side))
    return out


@pytest.fixture
def kafka_env(kafka_bootstrap):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SCHEMA_REGISTRY"))}
    env["KAFKA_BOOTSTRAP_SERVERS"] = kafka_bootstrap
    env["KAFKA_TOPIC_PREFIX"] = f"e2e-{uuid.uuid4().hex[:8]}."
    return env


def test_book_capture_through_simulator_kafka_and_consume(kafka_env):
    summary, expected = offline(BOOK)
    assert summary["checksum_ok"] == 2437 and summary["checksum_failed"] == 0
    live = run_through_simulator(BOOK, "lob", "WAVES-EUR,KSM-BTC,ETH-CHF,OMG-USD,BTC-CHF,ADA-BTC",
                                 summary["frames"], kafka_env)
    # every update's checksum verified on the live path, none failed, no resync
    assert (live["checksum_ok"], live["checksum_failed"], live["resyncs"], live["gaps"]) == (2437, 0, 0, 0)
    assert live["errors"] == 0
    lob = consume("lob", kafka_env)
    spread = consume("spread", kafka_env)
    # nothing lost, nothing invented: exactly the offline replay's events, in order
    assert len(lob) == len(expected["lob"]) == 6855
    assert without_receive_time(lob) == without_receive_time(expected["lob"])
    assert without_receive_time(spread) == without_receive_time(expected["spread"])
    status = consume("status", kafka_env)
    snapshots = Counter(s["symbol"] for s in status if s["status"] == "snapshot")
    assert snapshots == Counter({s: 1 for s in ("WAVES-EUR", "KSM-BTC", "ETH-CHF", "OMG-USD", "BTC-CHF", "ADA-BTC")})
    assert [s["status"] for s in status if not s["symbol"]][-1] == "stopped"
    # a recorded level, unchanged: the best ask of the ADA/XBT snapshot,
    # ["0.000022900","13355.87450757","1618678123.481570"]
    ada = [e for e in lob if e["symbol"] == "ADA-BTC" and e["side"] == "sell"][0]
    assert (ada["exchange"], ada["price"], ada["size"]) == ("kraken", 0.0000229, 13355.87450757)


def test_trades_capture_equal_to_the_recorded_trades(kafka_env):
    summary, expected = offline(TRADES)
    live = run_through_simulator(
        TRADES, "trades",
        "WAVES-EUR,XMR-USD,KSM-BTC,GRT-ETH,SC-EUR,ETH-CHF,OCEAN-BTC,OMG-USD,BTC-CHF,ADA-BTC",
        summary["frames"], kafka_env)
    assert live["errors"] == 0
    trades = consume("trades", kafka_env)
    recorded = recorded_trades(TRADES)
    assert len(trades) == len(recorded) == 10
    for got, (pair, price, volume, t, side) in zip(trades, recorded):
        assert got["symbol"] == pair.replace("XBT", "BTC").replace("/", "-")
        assert got["price"] == float(price) and got["size"] == float(volume)
        assert got["taker_side"] == {"b": "buy", "s": "sell"}[side]
        whole, frac = t.split(".")
        assert got["event_timestamp"] == int(whole) * 1000 + int(frac[:3])
    first = trades[0]
    assert (first["symbol"], first["price"], first["size"], first["taker_side"], first["event_timestamp"]) == (
        "XMR-USD", 354.11, 0.89594024, "sell", 1618678142557)
    assert without_receive_time(trades) == without_receive_time(expected["trades"])
