"""`atomfast process`: raw -> normalised topics, byte for byte as inline normalisation.

Offline: each recorded capture is replayed with ``raw=True`` (inline outputs and the raw stream
side by side, as ``run --raw`` publishes them); the raw stream is decoded from its Avro values
and processed: every topic's keys and value bytes equal the inline ones, in order. A worker that
takes a partition over mid-stream (at any cut) rebuilds its books and channel maps from the
rebuild offset with outputs discarded, and publishes from the cut: together the two workers'
outputs are the inline outputs exactly.

Real network and broker: `atomfast simulate` -> `atomfast run --raw --sink kafka` ->
`atomfast process --output-prefix` -> the processed topics hold the same bytes as the inline
ones (Kraken v1 with its channelID mapping from subscriptionStatus frames; Binance USD-M with
its REST book snapshots routed to the connection that asked).
"""
from __future__ import annotations

import json
import os
import uuid

import pytest

from atomfast.events import Raw
from atomfast.metrics import Metrics
from atomfast.pipeline import Pipeline
from atomfast.processor import (
    RawDecoder,
    RawProcessor,
    RawTap,
    payload,
    process_records,
    raw_key,
)
from atomfast.scheme import ConnectionPlan

from atomfast.testing import (
    NAMED_CAPTURES,
    MemorySink,
    SimProcess,
    cli_summary,
    fixture_path,
    read_topics,
    replay_fixture,
    run_cli,
)


def Mem() -> MemorySink:
    """A sink keeping (key, value) per topic, single-object framed as in Kafka."""
    return MemorySink("single_object")


def inline_and_raw(name: str) -> tuple[MemorySink, list[dict], Metrics]:
    exchange, files = NAMED_CAPTURES[name]
    sink, metrics = Mem(), Metrics()
    replay_fixture(*files, exchange=exchange, sink=sink, metrics=metrics, raw=True)
    decoder = RawDecoder()
    raws = [decoder.decode(v) for _k, v in sink.out["raw"]]
    return sink, raws, metrics


@pytest.mark.parametrize("name", list(NAMED_CAPTURES))
def test_process_output_is_the_inline_output_byte_for_byte(name):
    inline, raws, metrics = inline_and_raw(name)
    assert metrics.errors.total == 0
    processed = Mem()
    core = process_records(raws, processed)
    assert core.orphans == 0 and core.metrics.errors.total == 0
    assert not core.states  # every connection ended with the capture
    expected = inline.normalised()
    assert sum(map(len, expected.values())) > 0
    assert processed.normalised().keys() == expected.keys()
    for topic, items in expected.items():
        assert processed.out[topic] == items, topic  # same keys, same bytes, same order
    if name == "kraken-book":
        assert metrics.checksum_ok == 2437 and core.metrics.checksum_ok == 2437
        assert len(expected["lob"]) == 6855


def _rebuild_run(raws: list[dict], cut: int) -> tuple[MemorySink, MemorySink, int]:
    """Worker A processes raws[:cut] and 'dies'; worker B takes the partition over from A's
    commit: it rebuilds from the committed rebuild offset with outputs discarded, then publishes."""
    a_out, b_out = Mem(), Mem()
    a = RawProcessor(Pipeline(a_out))
    for offset in range(cut):
        a.handle(raws[offset], True, 0, offset)
    a.pipeline.close()
    rebuild = a.rebuild_offset(0, cut)  # what A commits as metadata with offset `cut`
    b = RawProcessor(Pipeline(b_out))
    for offset in range(rebuild, len(raws)):
        b.handle(raws[offset], offset >= cut, 0, offset)
    b.pipeline.close()
    assert b.rebuilt == cut - rebuild
    return a_out, b_out, rebuild


@pytest.mark.parametrize("name", ["kraken-book", "kraken-futures", "binance-usdm"])
def test_a_worker_taking_over_rebuilds_books_and_publishes_from_the_commit(name):
    inline, raws, _ = inline_and_raw(name)
    expected = inline.normalised()
    n = len(raws)
    for cut in sorted({1, 2, 5, 50, n // 3, n // 2, n - 2}):
        a_out, b_out, rebuild = _rebuild_run(raws, cut)
        assert rebuild == 0  # one connection, opened at offset 0 and still live
        for topic, items in expected.items():
            assert a_out.out[topic] + b_out.out[topic] == items, (topic, cut)


def test_rebuild_offset_follows_the_latest_open_and_the_end_of_connections():
    inline, raws, _ = inline_and_raw("kraken-book")
    tap_keys = {(r["session"], r["connection"]) for r in raws}
    assert len(tap_keys) == 1
    core = RawProcessor(Pipeline(Mem()))
    for offset, rec in enumerate(raws[:-1]):
        core.handle(rec, True, 0, offset)
    assert core.rebuild_offset(0, len(raws) - 1) == 0
    # a second open of the same connection (a reconnect): the rebuild starts there
    reopen = dict(raws[0], receive_ns=raws[-2]["receive_ns"] + 1)
    core.handle(reopen, True, 0, 5000)
    assert core.rebuild_offset(0, 5001) == 5000
    core.handle(raws[-1], True, 0, 5001)  # end
    assert raws[-1]["kind"] == "end" and not core.states
    assert core.rebuild_offset(0, 5002) == 5002


def test_eviction_by_stream_time_frees_the_rebuild_offset():
    _, raws, _ = inline_and_raw("kraken-trades-ticker")
    core = RawProcessor(Pipeline(Mem()), evict_after=60.0)
    first = [r for r in raws if r["connection"] == 0 and r["kind"] != "end"]
    for offset, rec in enumerate(first):
        core.handle(rec, True, 3, offset)
    assert core.rebuild_offset(3, 10**6) == 0 and core.evict(3) == 0
    # another session's record, two minutes of stream time later, on the same partition
    later = dict(first[0], session="other-1-x", receive_ns=first[-1]["receive_ns"] + 120 * 10**9)
    core.handle(later, True, 3, 10**6)
    assert core.evict(3) == 1  # the first session went silent: a collector that died
    assert core.rebuild_offset(3, 10**6 + 1) == 10**6


def test_raw_records_carry_the_frames_untouched():
    class Conn:
        id, url, plan = 3, "wss://example.test/ws", ConnectionPlan("wss://example.test/ws", [("book", ["XBT/USD"])])

    from atomfast.exchanges.kraken import KrakenSpotV1Scheme

    sink = Mem()
    pipeline = Pipeline(sink)
    scheme = KrakenSpotV1Scheme(pipeline.emit, pipeline.metrics)
    tap = RawTap(pipeline, scheme, session="host-1-abc")
    binary = bytes(range(256))
    tap.open(Conn, 1_700_000_000_123_456_789)
    tap.frame(Conn, b'{"event":"heartbeat"}', 1_700_000_000_223_456_789)
    tap.frame(Conn, binary, 1_700_000_000_323_456_789, True)
    tap.frame(Conn, b"\xff\xfe not utf-8", 1_700_000_000_423_456_789)  # a "text" frame that is not UTF-8
    tap.frame(Conn, memoryview(b"[1,2]"), 1_700_000_000_523_456_789)
    tap.rest(None, "https://example.test/snap?x=1", b'{"a":1}', 1_700_000_000_623_456_789)
    tap.close(Conn, "connection lost", 1_700_000_000_723_456_789)
    tap.stop("SIGINT", 1_700_000_000_823_456_789, [3, 4])
    decoder = RawDecoder()
    keys = [k for k, _ in sink.out["raw"]]
    recs = [decoder.decode(v) for _, v in sink.out["raw"]]
    assert keys[:-1] == [raw_key("kraken", "host-1-abc", 3)] * (len(keys) - 1) == [b"kraken:host-1-abc/3"] * 8
    assert keys[-1] == b"kraken:host-1-abc/4"
    assert [r["kind"] for r in recs] == ["open", "frame", "frame", "frame", "frame", "rest", "close", "stop", "end"]
    desc = json.loads(recs[0]["data"])
    assert desc["scheme"] == "KrakenSpotV1Scheme" and desc["subscriptions"] == [["book", ["XBT/USD"]]]
    assert desc["url"] == recs[0]["url"] == "wss://example.test/ws"
    assert [payload(r) for r in recs[1:5]] == [b'{"event":"heartbeat"}', binary, b"\xff\xfe not utf-8", b"[1,2]"]
    assert [r["binary"] for r in recs[1:5]] == [False, True, True, False]
    assert recs[1]["data"] == '{"event":"heartbeat"}'  # text frames are readable text
    r = recs[1]
    assert (r["receive_ns"], r["atom_timestamp"], r["event_timestamp"]) == (
        1_700_000_000_223_456_789, 1_700_000_000_223_456, 1_700_000_000_223)
    assert (recs[5]["url"], payload(recs[5])) == ("https://example.test/snap?x=1", b'{"a":1}')
    assert (recs[6]["data"], recs[7]["data"]) == ("connection lost", "SIGINT")
    assert all(isinstance(Raw(**r), Raw) for r in recs)


def test_records_without_their_open_are_counted_not_guessed():
    _, raws, _ = inline_and_raw("kraken-book")
    sink = Mem()
    core = process_records(raws[1:], sink)  # the open is gone (retention)
    assert core.orphans == len(raws) - 1
    assert not sink.normalised()
    assert core.metrics.errors.counts["raw: no open record"] == 1
    bad = dict(raws[0], data=json.dumps({"scheme": "NoSuchScheme", "exchange": "kraken"}))
    core = process_records([bad, *raws[1:3]], Mem())
    assert core.metrics.errors.counts["raw: unusable open record"] == 1 and core.orphans == 2


def test_consumer_config_commits_by_hand_and_uses_the_sasl_settings():
    from atomfast.config import Secret, Settings
    from atomfast.processor import ProcessorOptions, consumer_config

    options = ProcessorOptions(group="g1", session_timeout_ms=6000)
    conf = consumer_config(Settings(kafka_bootstrap_servers="b:9092"), options)
    assert (conf["group.id"], conf["enable.auto.commit"], conf["auto.offset.reset"]) == ("g1", False, "earliest")
    assert conf["partition.assignment.strategy"] == "cooperative-sticky" and conf["session.timeout.ms"] == 6000
    assert "security.protocol" not in conf
    hosted = Settings(kafka_bootstrap_servers="pkc.example:9092", kafka_sasl_key="KEY",
                      kafka_sasl_secret=Secret("SECRET"), kafka_sasl_mechanism="SCRAM-SHA-512")
    conf = consumer_config(hosted, options)
    assert (conf["security.protocol"], conf["sasl.mechanisms"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (conf["sasl.username"], conf["sasl.password"]) == ("KEY", "SECRET")


# ------------------------------------------------------------------------------------------------
# real network path and a real broker


@pytest.fixture
def kafka_env(kafka_bootstrap):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SCHEMA_REGISTRY"))}
    env["KAFKA_BOOTSTRAP_SERVERS"] = kafka_bootstrap
    return env


LIVE = {
    "kraken": ("cryptofeed/KRAKEN.ws.50.0", "kraken", "WAVES-EUR,KSM-BTC,ETH-CHF,OMG-USD,BTC-CHF,ADA-BTC",
               ["lob", "spread", "status"]),
    "binance-usdm": ("cryptofeed/BINANCE_FUTURES.ws.1.0", "binance-futures",
                     "SUSHI-USDT-PERP,AKRO-USDT-PERP,KEEP-USDT-PERP,CTK-USDT-PERP",
                     ["lob", "spread", "status", "trades", "ticker", "candle"]),
}


@pytest.mark.parametrize("name", list(LIVE))
def test_run_raw_then_process_gives_the_inline_bytes(name, kafka_env, kafka_bootstrap):
    capture, exchange, symbols, topics = LIVE[name]
    prefix = f"proc-{uuid.uuid4().hex[:8]}."
    env = dict(kafka_env, KAFKA_TOPIC_PREFIX=prefix, KAFKA_TOPIC_PARTITIONS="3")
    with SimProcess(fixture_path(capture), "--pace", "fast") as sim:
        # --duration, not --max-frames: Binance's REST snapshots arrive after the last frame
        run = run_cli("run", "--exchange", exchange, "--endpoint", sim.url, "--sink", "kafka", "--raw",
                  "--no-status", "--symbols", symbols, "--duration", "4", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    live = cli_summary(run.stderr)
    assert live["errors"] == 0 and live["events"]["raw"] > live["frames"]
    proc = run_cli("process", "--output-prefix", prefix + "p.", "--idle-timeout", "2", "--group", f"g-{prefix}",
               env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = cli_summary(proc.stderr)
    assert done["consumed"] == live["events"]["raw"] and done["orphans"] == 0 and done["errors"] == 0
    assert done["frames"] == live["frames"]
    read = read_topics(kafka_bootstrap, [prefix + t for t in topics] + [prefix + "p." + t for t in topics])
    for topic in topics:
        inline, processed = read[prefix + topic], read[prefix + "p." + topic]
        assert len(inline) == live["events"][topic] == done["events"][topic], topic
        assert processed == inline, topic  # the same keys and bytes, partition by partition, in order
    if name == "kraken":
        assert live["checksum_ok"] == done["checksum_ok"] == 2437
