"""Avro encoding: the Rust encoder (atomfast_avro) against fastavro, ns per record.

Run: ``pytest bench/bench_encoder.py --benchmark-only`` (skipped in a plain ``pytest`` run).
Optionally ``--benchmark-columns=min,median,mean,ops --benchmark-sort=name``.

Groups ``<topic> batch=<n>`` put every implementation side by side for one topic and batch
size: 1 record, and 20 records (a typical frame's events of one topic). Each benchmark
encodes one batch; ``extra_info["ns_per_record"]`` is its median divided by the batch size
(also ``ns_per_record_min``); ``units``/``unit`` feed the ratio table of ``bench/conftest.py``
(the reference row is ``atomfast_encode_many``, what the pipeline calls per frame and topic).

- ``harness_noop``: a function that returns at once: the benchmark's own overhead per call.
- ``atomfast_encode``: ``Encoder.encode`` once per record (single-object framing).
- ``atomfast_encode_many``: one ``encode_many`` call per batch -> list of framed values.
- ``atomfast_encode_block``: one ``encode_block`` call -> the concatenated bare bodies.
- ``atomfast_facade_encode_many``: ``atomfast.avro.AvroEncoder.encode_many`` (topic lookup included).
- ``fastavro_bytesio_reused``: ``fastavro.schemaless_writer`` per record into one reused
  BytesIO (bare bodies; the cheapest way to use fastavro, like encode_block).
- ``fastavro_new_bytes``: per record a new BytesIO, the single-object header, the body and
  ``getvalue()``: what a Kafka value needs (compare with atomfast_encode_many).

fastavro gets the records as dicts, built before timing (the events are NamedTuples, so a
real pipeline would also pay ``_asdict()``); the Rust encoder takes the NamedTuples as they are.
"""
from __future__ import annotations

import io
import json
from collections.abc import Callable

import fastavro
import pytest
from atomfast_avro import Encoder

from atomfast import events as ev
from atomfast.avro import AvroEncoder, load_schemas, single_object_prefix

SCHEMAS = load_schemas()
T_MS = 1_763_680_799_123
T_US = 1_763_680_799_123_456


def make_records(topic: str, n: int) -> list[tuple]:
    if topic == "lob":
        return [
            ev.Lob("kraken", "BTC-USD", 37251.3 + i * 0.1, 0.51234 * (i % 5), ev.BUY if i % 2 else ev.SELL, T_MS + i, T_US + i)
            for i in range(n)
        ]
    return [
        ev.Trade("kraken", "SHIB-USD", 0.000022900, 1_234_567.0 + i, ev.SELL, f"TX4ZQK-ABCDE-{i:06d}", T_MS + i, T_US + i)
        for i in range(n)
    ]


TOPICS = ["lob", "trades"]
BATCHES = [1, 20]
IMPLS = [
    "atomfast_encode_many",  # first atomfast row: the ratio table's reference (bench/conftest.py)
    "atomfast_encode",
    "atomfast_encode_block",
    "atomfast_facade_encode_many",
    "harness_noop",
    "fastavro_bytesio_reused",
    "fastavro_new_bytes",
]


def make_fn(impl: str, topic: str, records: list[tuple]) -> Callable[[], object]:
    schema = SCHEMAS[topic]
    prefix = single_object_prefix(schema)
    native = Encoder([json.dumps(schema)], [prefix])
    facade = AvroEncoder("single_object")
    parsed = fastavro.parse_schema(schema)
    dicts = [r._asdict() for r in records]  # type: ignore[attr-defined]
    writer = fastavro.schemaless_writer

    if impl == "harness_noop":

        def fn() -> object:
            return records

    elif impl == "atomfast_encode" and len(records) == 1:
        encode, record = native.encode, records[0]

        def fn() -> object:
            return encode(0, record)

    elif impl == "atomfast_encode":
        encode = native.encode

        def fn() -> object:
            return [encode(0, r) for r in records]

    elif impl == "atomfast_encode_many":

        def fn() -> object:
            return native.encode_many(0, records)

    elif impl == "atomfast_encode_block":

        def fn() -> object:
            return native.encode_block(0, records)

    elif impl == "atomfast_facade_encode_many":

        def fn() -> object:
            return facade.encode_many(topic, records)

    elif impl == "fastavro_bytesio_reused":
        bio = io.BytesIO()

        def fn() -> object:
            bio.seek(0)
            bio.truncate()
            for d in dicts:
                writer(bio, parsed, d)
            return bio

    elif impl == "fastavro_new_bytes":

        def fn() -> object:
            out = []
            for d in dicts:
                b = io.BytesIO()
                b.write(prefix)
                writer(b, parsed, d)
                out.append(b.getvalue())
            return out

    else:
        raise AssertionError(impl)
    return fn


def check_same_output(topic: str, records: list[tuple]) -> None:
    """Every implementation produces the same bytes (a benchmark of wrong output is moot)."""
    values = make_fn("atomfast_encode_many", topic, records)()
    single = make_fn("atomfast_encode", topic, records)()
    assert (single if isinstance(single, list) else [single]) == values
    assert make_fn("atomfast_facade_encode_many", topic, records)() == values
    assert make_fn("fastavro_new_bytes", topic, records)() == values
    block = make_fn("atomfast_encode_block", topic, records)()
    assert make_fn("fastavro_bytesio_reused", topic, records)().getvalue() == block  # type: ignore[attr-defined]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("topic", TOPICS)
def test_encode(benchmark, topic: str, batch: int, impl: str) -> None:
    records = make_records(topic, batch)
    check_same_output(topic, records)
    benchmark.group = f"{topic} batch={batch}"
    benchmark.name = impl
    benchmark.extra_info.update(topic=topic, batch=batch, impl=impl)
    if impl != "harness_noop":  # bench/conftest.py's ratio table: cost per record
        benchmark.extra_info.update(units=batch, unit="record")
    fn = make_fn(impl, topic, records)
    # Fixed iterations per round (~20-80 us) after a warm-up, the same for every row of a group.
    iterations = max(1, 20_000 // (batch * (4_000 if impl.startswith("fastavro") else 100)))
    benchmark.pedantic(fn, rounds=300 if impl.startswith("fastavro") else 1_000, iterations=iterations, warmup_rounds=20)
    stats = benchmark.stats.stats
    benchmark.extra_info["ns_per_record"] = round(stats.median / batch * 1e9, 1)
    benchmark.extra_info["ns_per_record_min"] = round(stats.min / batch * 1e9, 1)
