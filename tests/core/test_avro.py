"""The Rust Avro encoder (atomfast_avro) and its facade (atomfast.avro), against fastavro.

Every bundled schema: realistic events encode byte for byte as fastavro.schemaless_writer
encodes them and decode back exactly; the framings' prefixes are exact (CRC-64-AVRO checked
against the Avro spec's test vectors); hypothesis compares random values per schema; errors
name the schema and the field. The generic types (union, enum, array, map, fixed, nested and
recursive records) are tested with schemas defined here.
"""
from __future__ import annotations

import io
import json
import gc
import math
import struct
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import fastavro
import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atomfast import events as ev
from atomfast.avro import (
    SCHEMA_DIR,
    TOPICS,
    AvroEncoder,
    confluent_prefix,
    crc64_avro,
    decode,
    detect_framing,
    fingerprint64,
    load_schemas,
    parsing_canonical_form,
    single_object_prefix,
)
from atomfast.testing import SAMPLE_EVENTS as EVENTS
from atomfast.testing import SAMPLE_US as T_US
from atomfast.testing import strip_logical
from atomfast_avro import Encoder

SCHEMAS = load_schemas()

# ---- helpers ------------------------------------------------------------------------------


def named_types(schema: Any, ns: str = "", out: dict | None = None) -> dict[str, Any]:
    """fullname -> definition of every named type in a schema (for the converters below)."""
    out = {} if out is None else out
    if isinstance(schema, list):
        for s in schema:
            named_types(s, ns, out)
    elif isinstance(schema, dict):
        t = schema.get("type")
        if t in ("record", "enum", "fixed"):
            name = schema["name"]
            if "." in name:
                full, own = name, name.rsplit(".", 1)[0]
            else:
                own = schema.get("namespace", ns) or ""
                full = f"{own}.{name}" if own else name
            out[full] = schema
            out.setdefault(name, schema)
            for f in schema.get("fields", []):
                named_types(f["type"], own, out)
        elif t == "array":
            named_types(schema["items"], ns, out)
        elif t == "map":
            named_types(schema["values"], ns, out)
        elif isinstance(t, (dict, list)):
            named_types(t, ns, out)
    return out


def resolve(schema: Any, names: dict[str, Any]) -> Any:
    if isinstance(schema, str) and schema in names:
        return names[schema]
    if isinstance(schema, dict) and isinstance(schema.get("type"), str) and schema["type"] in names:
        return names[schema["type"]]
    return schema


def kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        t = schema["type"]
        return kind(t) if isinstance(t, (dict, list)) else t
    return schema


def to_fastavro(value: Any, schema: Any, names: dict[str, Any]) -> Any:
    """Our datum (records as tuples) -> fastavro's (records as dicts)."""
    schema = resolve(schema, names)
    k = kind(schema)
    if k == "record":
        return {f["name"]: to_fastavro(v, f["type"], names) for f, v in zip(schema["fields"], value)}
    if k == "array":
        return [to_fastavro(v, schema["items"], names) for v in value]
    if k == "map":
        return {key: to_fastavro(v, schema["values"], names) for key, v in value.items()}
    if k == "union":
        if isinstance(value, tuple):  # our records; pick the record branch of that arity
            for branch in schema:
                b = resolve(branch, names)
                if kind(b) == "record" and len(b["fields"]) == len(value):
                    return to_fastavro(value, b, names)
        if isinstance(value, (list, dict)):
            for branch in schema:
                b = resolve(branch, names)
                if kind(b) == ("array" if isinstance(value, list) else "map"):
                    return to_fastavro(value, b, names)
        if isinstance(value, (bytes, bytearray)) and "bytes" in schema:
            # fastavro takes the first branch that validates, and bytes validate as an array
            # of ints; atomfast takes the bytes branch. Name it (fastavro's tuple notation).
            return ("bytes", value)
        return value
    return value


def fastavro_body(schema: Any, value: Any) -> bytes:
    names = named_types(schema)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), to_fastavro(value, schema, names))
    return out.getvalue()


def fastavro_read(schema: Any, body: bytes) -> Any:
    stream = io.BytesIO(body)
    value = fastavro.schemaless_reader(stream, fastavro.parse_schema(schema), None)
    assert stream.tell() == len(body)
    return value


def native(schema: Any, prefix: bytes = b"") -> Encoder:
    return Encoder([json.dumps(schema)], [prefix])


def test_every_schema_has_events_and_topics_in_order():
    assert TOPICS == tuple(ev.TOPICS)
    assert tuple(SCHEMAS)[: len(TOPICS)] == TOPICS
    assert {p.stem for p in SCHEMA_DIR.glob("*.avsc")} == set(SCHEMAS)
    assert set(EVENTS) == set(SCHEMAS), "add realistic events for the new schema"
    for topic, schema in SCHEMAS.items():
        assert tuple(ev.TOPICS[topic]._fields) == tuple(f["name"] for f in schema["fields"])


@pytest.mark.parametrize("topic", list(SCHEMAS))
def test_bodies_equal_fastavro(topic):
    schema = SCHEMAS[topic]
    bare = AvroEncoder("none")
    for record in EVENTS[topic]:
        expected = fastavro_body(schema, record)
        assert bare.encode(topic, record) == expected
        assert native(schema).encode(0, record) == expected


@pytest.mark.parametrize("topic", list(SCHEMAS))
def test_batches_equal_single_encodes(topic):
    records = EVENTS[topic]
    for framing, ids in (("single_object", None), ("confluent", {t: 100 + i for i, t in enumerate(TOPICS)}), ("none", None)):
        enc = AvroEncoder(framing, ids)
        singles = [enc.encode(topic, r) for r in records]
        assert enc.encode_many(topic, records) == singles
        assert enc.encode_many(topic, tuple(records)) == singles
        assert enc.encode_many(topic, iter(records)) == singles  # any iterable
        prefix = enc.prefix(topic)
        assert all(v.startswith(prefix) for v in singles)
        assert enc.encode_block(topic, records) == b"".join(v[len(prefix):] for v in singles)
    assert enc.encode_many(topic, []) == []
    assert enc.encode_block(topic, []) == b""


@pytest.mark.parametrize("topic", list(SCHEMAS))
def test_decode_back(topic):
    schema = SCHEMAS[topic]
    enc = AvroEncoder("single_object")
    for record in EVENTS[topic]:
        value = enc.encode(topic, record)
        got_topic, got = decode(value)
        assert got_topic == topic
        assert got == record._asdict()
        assert [type(v) for v in got.values()] == [
            float if f["type"] in ("double", "float") else type(v) for f, v in zip(schema["fields"], record)
        ]
        # fastavro with the published schema (logical types applied), where datetime can
        # hold the timestamps (years 1..9999)
        millis = [
            v for f, v in zip(schema["fields"], record)
            if isinstance(f["type"], dict) and f["type"].get("logicalType") == "timestamp-millis"
        ]
        if all(0 <= v <= 253_402_300_799_999 for v in millis):
            read = fastavro_read(schema, value[10:])
            for f, v in zip(schema["fields"], record):
                if isinstance(f["type"], dict) and f["type"].get("logicalType") == "timestamp-millis":
                    v = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=v)
                assert read[f["name"]] == v


def test_kraken_price_bytes():
    """0.0000229 travels as the exact IEEE double, little-endian."""
    body = AvroEncoder("none").encode("trades", EVENTS["trades"][0])
    assert struct.pack("<d", 0.000022900) in body
    assert decode(body, "trades")[1]["price"] == 0.000022900


def test_hand_checked_body():
    rec = ev.Lob("k", "B", 1.0, 0.0, "buy", 1, -1)
    assert AvroEncoder("none").encode("lob", rec) == (
        b"\x02k" + b"\x02B" + struct.pack("<d", 1.0) + struct.pack("<d", 0.0) + b"\x06buy" + b"\x02" + b"\x01"
    )


# ---- framings -------------------------------------------------------------------------------

# From the Avro specification's test data (share/test/data/schema-tests.txt): canonical form
# and the signed 64-bit CRC-64-AVRO fingerprint printed by the Java reference.
SPEC_VECTORS = [
    ('"null"', '"null"', 7195948357588979594),
    ('{"type":"null"}', '"null"', 7195948357588979594),
    ('"boolean"', '"boolean"', -6970731678124411036),
    ('"int"', '"int"', 8247732601305521295),
    ('"long"', '"long"', -3434872931120570953),
    ('"float"', '"float"', 5583340709985441680),
    ('"double"', '"double"', -8181574048448539266),
    ('"bytes"', '"bytes"', 5746618253357095269),
    ('"string"', '"string"', -8142146995180207161),
    ('[ "int" , {"type":"boolean"} ]', '["int","boolean"]', 5392556393470105090),
    ('{"fields":[], "type":"record", "name":"foo"}', '{"name":"foo","type":"record","fields":[]}', -4824392279771201922),
    ('{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}', '{"name":"x.y.foo","type":"record","fields":[]}', 5916914534497305771),
    ('{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}', '{"name":"a.b.foo","type":"record","fields":[]}', -4616218487480524110),
    ('{"fields":[], "type":"record", "name":"foo", "doc":"Useful info"}', '{"name":"foo","type":"record","fields":[]}', -4824392279771201922),
    ('{"fields":[{"type":{"type":"boolean"}, "name":"f1"}], "type":"record", "name":"foo"}',
     '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}', 7843277075252814651),
    ('{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":"true"}, '
     '{"order":"descending","name":"f2","doc":"Hello","type":"int"}], "type":"record", "name":"foo"}',
     '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}', -4860222112080293046),
    ('{"type":"enum", "name":"foo", "symbols":["A1"]}', '{"name":"foo","type":"enum","symbols":["A1"]}', -6342190197741309591),
    ('{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}',
     '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}', -4448647247586288245),
    ('{"name":"foo","type":"fixed","size":15}', '{"name":"foo","type":"fixed","size":15}', 1756455273707447556),
    ('{ "items":{"type":"null"}, "type":"array"}', '{"type":"array","items":"null"}', -589620603366471059),
    ('{ "values":"string", "type":"map"}', '{"type":"map","values":"string"}', -8732877298790414990),
    ('{"name":"PigValue","type":"record", "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}',
     '{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}', -1759257747318642341),
]


@pytest.mark.parametrize("text,canonical,signed_fp", SPEC_VECTORS)
def test_canonical_form_and_fingerprint_spec_vectors(text, canonical, signed_fp):
    assert parsing_canonical_form(text) == canonical
    if '"default":"true"' not in text:  # fastavro rejects that (invalid) default
        assert to_parsing_canonical_form(json.loads(text)) == canonical
    assert parsing_canonical_form(json.loads(text)) == canonical
    assert fingerprint64(text) == signed_fp % 2**64
    assert crc64_avro(canonical.encode()) == signed_fp % 2**64
    assert single_object_prefix(text) == b"\xc3\x01" + (signed_fp % 2**64).to_bytes(8, "little")


def test_canonical_form_nested_names_match_fastavro():
    for schema in (GENERIC, HYPO_GENERIC):
        pcf = parsing_canonical_form(schema)
        assert pcf == to_parsing_canonical_form(schema)
        assert '"test.avro.Side"' in pcf and '"other.ns.Inner"' in pcf and "logicalType" not in pcf
    assert parsing_canonical_form({"type": "fixed", "name": "f", "size": "015"}) == '{"name":"f","type":"fixed","size":15}'
    # [STRINGS]: JSON escapes become UTF-8 characters
    assert parsing_canonical_form(r'{"type": "enum", "name": "\u00e9", "symbols": ["\u00fc"]}') == '{"name":"é","type":"enum","symbols":["ü"]}'


def test_null_schema_single_object_prefix_bytes():
    # 7195948357588979594 == 0x63DD24E7CC258F8A, written little-endian
    assert single_object_prefix("null") == bytes.fromhex("c3018a8f25cce724dd63")


@pytest.mark.parametrize("topic", list(SCHEMAS))
def test_prefixes_exact(topic):
    schema = SCHEMAS[topic]
    pcf = to_parsing_canonical_form(schema)
    assert parsing_canonical_form(schema) == pcf
    assert "logicalType" not in pcf and "doc" not in pcf and pcf.startswith('{"name":"com.acme.avro.')
    fp_le = bytes.fromhex(fastavro_fingerprint(pcf, "CRC-64-AVRO"))  # fastavro: little-endian hex
    assert fingerprint64(schema) == int.from_bytes(fp_le, "little")
    assert single_object_prefix(schema) == b"\xc3\x01" + fp_le
    record = EVENTS[topic][0]
    body = fastavro_body(schema, record)
    assert AvroEncoder("single_object").encode(topic, record) == b"\xc3\x01" + fp_le + body
    assert AvroEncoder("confluent", {topic: 258}).encode(topic, record) == b"\x00\x00\x00\x01\x02" + body


def test_fingerprints_distinct():
    fps = {fingerprint64(s) for s in SCHEMAS.values()}
    assert len(fps) == len(SCHEMAS)


def test_confluent_prefix():
    assert confluent_prefix(0) == b"\x00\x00\x00\x00\x00"
    assert confluent_prefix(42) == b"\x00\x00\x00\x00\x2a"
    assert confluent_prefix(100_001) == b"\x00" + (100_001).to_bytes(4, "big")
    with pytest.raises(ValueError):
        confluent_prefix(-1)
    with pytest.raises(ValueError):
        confluent_prefix(2**31)


def test_confluent_encoder_needs_ids():
    with pytest.raises(ValueError):
        AvroEncoder("confluent")
    enc = AvroEncoder("confluent", {"trades": 7})
    rec = EVENTS["lob"][0]
    with pytest.raises(KeyError, match="no schema id"):
        enc.encode("lob", rec)
    with pytest.raises(KeyError, match="no schema id"):
        enc.encode_many("lob", [rec])
    enc.set_schema_id("lob", 9)
    assert enc.encode("lob", rec) == b"\x00\x00\x00\x00\x09" + fastavro_body(SCHEMAS["lob"], rec)
    with pytest.raises(KeyError, match="unknown topic"):
        enc.encode("nope", rec)
    with pytest.raises(ValueError):
        AvroEncoder("confluent", {"nope": 1})
    with pytest.raises(ValueError):
        AvroEncoder("json")  # type: ignore[arg-type]


# ---- decode -------------------------------------------------------------------------------


def test_decode_framings():
    rec = EVENTS["trades"][0]
    expected = rec._asdict()
    so = AvroEncoder("single_object").encode("trades", rec)
    assert detect_framing(so) == "single_object"
    assert decode(so) == ("trades", expected)
    assert decode(so, "trades") == ("trades", expected)
    with pytest.raises(ValueError, match="not 'lob'"):
        decode(so, "lob")

    cf = AvroEncoder("confluent", {"trades": 31}).encode("trades", rec)
    assert detect_framing(cf) == "confluent"
    assert decode(cf, "trades") == ("trades", expected)
    calls = []

    def registry(schema_id: int) -> dict:
        calls.append(schema_id)
        return SCHEMAS["trades"]

    assert decode(cf, registry=registry) == ("trades", expected)
    assert decode(cf, registry=registry) == ("trades", expected)
    assert calls == [31]  # cached
    # a registry answer as JSON text, as the Schema Registry REST API gives it
    assert decode(cf, registry=lambda i: json.dumps(SCHEMAS["trades"])) == ("trades", expected)
    with pytest.raises(ValueError, match="registry"):
        decode(cf)

    bare = AvroEncoder("none").encode("trades", rec)
    assert detect_framing(bare) == "none"
    assert decode(bare, "trades") == ("trades", expected)
    with pytest.raises(ValueError, match="topic"):
        decode(bare)
    with pytest.raises(ValueError, match="trailing"):
        decode(bare + b"\x00", "trades", framing="none")
    with pytest.raises(ValueError, match="fingerprint"):
        decode(b"\xc3\x01" + bytes(8) + bare)


# ---- errors -------------------------------------------------------------------------------


def test_error_wrong_arity():
    enc = AvroEncoder("none")
    rec = EVENTS["trades"][0]
    with pytest.raises(TypeError, match=r"com\.acme\.avro\.Trade.*missing field\(s\) atom_timestamp"):
        enc.encode("trades", rec[:-1])
    with pytest.raises(TypeError, match="extra value"):
        enc.encode("trades", tuple(rec) + (1,))
    with pytest.raises(TypeError, match="tuple"):
        enc.encode("trades", list(rec))
    with pytest.raises(TypeError, match="tuple"):
        enc.encode("trades", rec._asdict())


def test_error_str_for_double_names_field():
    enc = AvroEncoder("single_object")
    bad = EVENTS["trades"][0]._replace(price="0.0000229")
    with pytest.raises(TypeError, match=r"Trade.*field 'price'.*double.*str") as info:
        enc.encode("trades", bad)
    assert "'0.0000229'" in str(info.value)


def test_error_int_overflow():
    enc = AvroEncoder("none")
    candle = EVENTS["candle"][0]
    with pytest.raises(ValueError, match=r"Candle.*field 'trades'.*out of range for int"):
        enc.encode("candle", candle._replace(trades=2**31))
    with pytest.raises(ValueError, match="field 'trades'"):
        enc.encode("candle", candle._replace(trades=-(2**31) - 1))
    with pytest.raises(ValueError, match=r"field 'atom_timestamp'.*out of range for long"):
        enc.encode("candle", candle._replace(atom_timestamp=2**63))
    with pytest.raises(ValueError, match=r"field 'event_timestamp'"):
        enc.encode("candle", candle._replace(event_timestamp=-(2**63) - 1))
    with pytest.raises(ValueError, match=r"field 'o'"):
        enc.encode("candle", candle._replace(o=10**400))  # int too large for a double


@pytest.mark.parametrize(
    "field,value,exc",
    [
        ("closed", 1, TypeError),  # int for boolean
        ("closed", None, TypeError),
        ("trades", True, TypeError),  # bool for int
        ("trades", 1.0, TypeError),  # float for int
        ("start", True, TypeError),  # bool for long
        ("start", 1.5, TypeError),
        ("start", "1", TypeError),
        ("o", True, TypeError),  # bool for double
        ("o", None, TypeError),
        ("o", b"1", TypeError),
        ("symbol", None, TypeError),
        ("symbol", b"BTC-USD", TypeError),  # bytes for string
        ("symbol", 1, TypeError),
        ("symbol", "\ud800", ValueError),  # lone surrogate: not UTF-8
    ],
)
def test_error_types_name_field(field, value, exc):
    enc = AvroEncoder("none")
    bad = EVENTS["candle"][0]._replace(**{field: value})
    with pytest.raises(exc, match=f"field '{field}'"):
        enc.encode("candle", bad)
    with pytest.raises(exc, match=f"record 2, field '{field}'"):
        enc.encode_many("candle", [EVENTS["candle"][0], EVENTS["candle"][1], bad])
    with pytest.raises(exc, match=f"record 1, field '{field}'"):
        enc.encode_block("candle", [EVENTS["candle"][0], bad])


def test_error_leaves_encoder_usable_and_no_refcount_leak():
    enc = AvroEncoder("single_object")
    # every field made anew (not the interned "binance", "buy", nor the sample's ints and floats,
    # which other objects share: their counts move with whatever else runs in the process, e.g.
    # the collection of an earlier test's garbage during the loop)
    rec = EVENTS["trades"][1]
    rec = rec._replace(**{f: "".join(list(getattr(rec, f))) for f in ("exchange", "symbol", "taker_side", "trade_id")})
    rec = rec._replace(**{f: type(getattr(rec, f))(str(getattr(rec, f)))
                          for f in ("price", "size", "event_timestamp", "atom_timestamp")})
    batch = [rec] * 50
    gc.collect()
    before = [sys.getrefcount(x) for x in rec]
    for _ in range(2000):
        enc.encode_many("trades", batch)
        enc.encode_block("trades", batch)
        enc.encode("trades", rec)
        with pytest.raises(TypeError):
            enc.encode_many("trades", batch + [rec._replace(price="x")])
    assert [sys.getrefcount(x) for x in rec] == before
    assert enc.encode("trades", rec) == enc.prefix("trades") + fastavro_body(SCHEMAS["trades"], rec)


def test_error_repr_runs_after_encoding_stopped():
    """The offending value's repr (arbitrary Python) runs only once the batch is abandoned."""
    enc = AvroEncoder("none")
    good = EVENTS["trades"][0]
    batch: list = []

    class Evil:
        def __repr__(self) -> str:
            batch.clear()  # mutate the batch being encoded...
            enc.encode_many("trades", [good] * 3)  # ...and re-enter the encoder
            return "<evil>"

    batch.extend([good, good._replace(trade_id=Evil()), good])
    with pytest.raises(TypeError, match=r"record 1, field 'trade_id'.*Evil <evil>"):
        enc.encode_many("trades", batch)
    assert enc.encode_many("trades", [good]) == [fastavro_body(SCHEMAS["trades"], good)]


def test_subclasses_accepted():
    from enum import Enum, IntEnum

    class Side(str, Enum):
        BUY = "buy"

    class N(IntEnum):
        ONE = 1

    class F(float):
        pass

    enc = AvroEncoder("none")
    rec = ev.Lob("kraken", "BTC-USD", F(1.5), 2.0, Side.BUY, N.ONE, 7)
    assert enc.encode("lob", rec) == enc.encode("lob", ev.Lob("kraken", "BTC-USD", 1.5, 2.0, "buy", 1, 7))


def test_native_encoder_api_errors():
    text = json.dumps(SCHEMAS["lob"])
    with pytest.raises(ValueError, match="invalid JSON"):
        Encoder(["{"])
    with pytest.raises(ValueError, match="unknown type"):
        Encoder(['{"type":"record","name":"R","fields":[{"name":"a","type":"Nope"}]}'])
    with pytest.raises(ValueError, match="prefixes"):
        Encoder([text], [b"", b""])
    with pytest.raises(TypeError):
        Encoder([text], ["str"])  # type: ignore[list-item]
    enc = Encoder([text])
    assert len(enc) == 1 and enc.names == ["com.acme.avro.LOB"]
    with pytest.raises(IndexError):
        enc.encode(1, EVENTS["lob"][0])
    with pytest.raises(IndexError):
        enc.set_prefix(3, b"")
    with pytest.raises(TypeError):
        enc.encode_many(0, 5)
    enc.set_prefix(0, b"\xff")
    assert enc.prefix(0) == b"\xff"
    assert enc.encode(0, EVENTS["lob"][0])[:1] == b"\xff"
    assert enc.encode_block(0, [EVENTS["lob"][0]])[:1] != b"\xff"


# ---- generic types ------------------------------------------------------------------------

LEVEL = {
    "type": "record",
    "name": "Level",
    "fields": [{"name": "price", "type": "double"}, {"name": "size", "type": "double"}],
}
GENERIC = {
    "type": "record",
    "name": "Everything",
    "namespace": "test.avro",
    "fields": [
        {"name": "n", "type": "null"},
        {"name": "flag", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "b", "type": "bytes"},
        {"name": "s", "type": "string"},
        {"name": "side", "type": {"type": "enum", "name": "Side", "symbols": ["buy", "sell"]}},
        {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}},
        {"name": "levels", "type": {"type": "array", "items": LEVEL}},
        {"name": "tags", "type": {"type": "map", "values": "string"}},
        {"name": "maybe", "type": ["null", "string"]},
        {
            "name": "choice",
            "type": [
                "null",
                "long",
                "double",
                "string",
                "Side",
                "Level",
                {"type": "array", "items": "int"},
                {"type": "map", "values": "long"},
                "bytes",
                "boolean",
            ],
        },
        {"name": "best", "type": ["null", "test.avro.Level"]},
        {"name": "next_side", "type": "Side"},
        {
            "name": "inner",
            "type": {
                "type": "record",
                "name": "Inner",
                "namespace": "other.ns",
                "fields": [{"name": "x", "type": "int"}, {"name": "h", "type": "test.avro.Hash"}],
            },
        },
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "matrix", "type": {"type": "array", "items": {"type": "array", "items": "long"}}},
        {"name": "many_symbols", "type": {"type": "enum", "name": "Big", "symbols": [f"S{i}" for i in range(20)]}},
    ],
}
GENERIC_FIELDS = [f["name"] for f in GENERIC["fields"]]


def generic_record(**overrides: Any) -> tuple:
    base = dict(
        n=None,
        flag=True,
        i=-42,
        l=2**40,
        f=1.5,
        d=-0.000022900,
        b=b"\x00\xff raw",
        s="héllo",
        side="sell",
        hash=b"\x01\x02\x03\x04",
        levels=[(37251.3, 0.5), (37251.4, 0.0)],
        tags={"venue": "kraken", "": "empty key", "ü": ""},
        maybe="x",
        choice=None,
        best=(1.0, 2.0),
        next_side="buy",
        inner=(7, b"abcd"),
        ts=T_US,
        matrix=[[1, 2], [], [-(2**63)]],
        many_symbols="S17",
    )
    base.update(overrides)
    return tuple(base[name] for name in GENERIC_FIELDS)


CHOICES = [None, 5, -(2**62), 2.5, float("-inf"), "text", "", "buy", (1.0, 2.0), [1, -2, 3], [], {"a": 1, "b": -2}, {}, b"bytes", b"", True, False]


@pytest.mark.parametrize("choice", CHOICES, ids=repr)
def test_generic_equals_fastavro(choice):
    enc = native(GENERIC)
    record = generic_record(choice=choice)
    body = enc.encode(0, record)
    assert body == fastavro_body(GENERIC, record)
    assert enc.encode_block(0, [record, record]) == body * 2
    fastavro_read(GENERIC, body)


def test_generic_variants_equal_fastavro():
    enc = native(GENERIC)
    for record in [
        generic_record(maybe=None, best=None, levels=[], tags={}, matrix=[], b=b"", s=""),
        generic_record(levels=tuple((float(i), float(i)) for i in range(300)), b=bytearray(b"ba")),
        generic_record(tags={f"k{i}": str(i) * i for i in range(200)}, l=-1, i=2**31 - 1),
        generic_record(f=3.4e38, d=float("nan"), many_symbols="S0"),
    ]:
        assert enc.encode(0, record) == fastavro_body(GENERIC, record)


def test_union_branch_selection():
    """A union takes the branch matching the Python type; an int prefers int/long."""
    def idx(schema: list, value: Any) -> int:
        body = native({"type": "record", "name": "U", "fields": [{"name": "u", "type": schema}]}).encode(0, (value,))
        return body[0] >> 1  # zigzag of a small non-negative index

    assert idx(["null", "string"], None) == 0
    assert idx(["null", "string"], "x") == 1
    assert idx(["int", "long"], 5) == 0
    assert idx(["int", "long"], 2**40) == 1  # does not fit int
    assert idx(["double", "long"], 5) == 1  # int -> integer branch first (fastavro: double)
    assert idx(["double", "long"], 5.0) == 0
    assert idx(["float", "double"], 5.0) == 1  # float prefers double
    assert idx(["float", "string"], 5) == 0  # no integer branch: int -> float
    assert idx(["boolean", "long"], True) == 0
    assert idx(["long", "boolean"], True) == 1  # bool is not an int
    assert idx([{"type": "enum", "name": "E", "symbols": ["a"]}, "string"], "a") == 0
    assert idx([{"type": "enum", "name": "E", "symbols": ["a"]}, "string"], "b") == 1
    assert idx([{"type": "fixed", "name": "F", "size": 2}, "bytes"], b"ab") == 0
    assert idx([{"type": "fixed", "name": "F", "size": 2}, "bytes"], b"abc") == 1
    two_records = [
        "null",
        {"type": "record", "name": "A", "fields": [{"name": "a", "type": "long"}]},
        {"type": "record", "name": "B", "fields": [{"name": "b", "type": "string"}]},
        {"type": "array", "items": "long"},
    ]
    assert idx(two_records, (1,)) == 1
    assert idx(two_records, ("x",)) == 2  # A fails, B takes it
    assert idx(two_records, (1, 2)) == 3  # a tuple that is no record: the array
    assert idx(two_records, [1, 2]) == 3
    for bad, exc in ((1.5, TypeError), ((1.5,), TypeError), ({}, TypeError)):
        with pytest.raises(exc, match="union"):
            idx(two_records, bad)
    with pytest.raises(TypeError, match="field 'u'.*union"):
        idx(["null", "string"], 3)


def test_generic_errors_name_nested_path():
    enc = native(GENERIC)
    cases = [
        (dict(levels=[(1.0, 2.0), (1.0, "x")]), TypeError, r"field 'levels\[1\]\.size'"),
        (dict(tags={"a": 1}), TypeError, r"field 'tags\[\"a\"\]'"),
        (dict(tags={1: "a"}), TypeError, r"field 'tags'.*str map key"),
        (dict(side="hold"), ValueError, r"field 'side'.*not a symbol of enum test\.avro\.Side"),
        (dict(many_symbols="S20"), ValueError, r"field 'many_symbols'.*Big"),
        (dict(hash=b"123"), ValueError, r"field 'hash'.*needs 4 bytes"),
        (dict(hash="1234"), TypeError, r"field 'hash'"),
        (dict(inner=(2**31, b"abcd")), ValueError, r"field 'inner\.x'"),
        (dict(inner=(1,)), TypeError, r"field 'inner'.*missing field\(s\) h"),
        (dict(matrix=[[1], [2, "3"]]), TypeError, r"field 'matrix\[1\]\[1\]'"),
        (dict(matrix="12"), TypeError, r"field 'matrix'.*list or tuple"),
        (dict(f=1e39), ValueError, r"field 'f'.*out of range for float"),
        (dict(n=0), TypeError, r"field 'n'"),
        (dict(b="str"), TypeError, r"field 'b'"),
        (dict(best=(1.0,)), TypeError, r"field 'best'"),
    ]
    for overrides, exc, pattern in cases:
        with pytest.raises(exc, match=r"Everything.*" + pattern):
            enc.encode(0, generic_record(**overrides))


def test_recursive_schema():
    schema = {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "value", "type": "long"}, {"name": "next", "type": ["null", "Node"]}],
    }
    enc = native(schema)
    for value in [(1, None), (1, (2, (3, None)))]:
        assert enc.encode(0, value) == fastavro_body(schema, value)
    deep: Any = None
    for i in range(1000):
        deep = (i, deep)
    with pytest.raises(ValueError, match="deeper"):
        enc.encode(0, deep)
    # a self-containing list cannot hang or crash the encoder
    loop: list = []
    loop.append(loop)
    arr = native({"type": "array", "items": {"type": "array", "items": "long"}})
    with pytest.raises((TypeError, ValueError)):
        arr.encode(0, loop)


def test_non_record_top_level_schemas():
    for schema, value in [
        ("long", -5),
        ("string", "ü"),
        ({"type": "array", "items": "double"}, [1.0, 2]),
        ({"type": "map", "values": ["null", "int"]}, {"a": None, "b": 3}),
        (["null", "long"], 7),
        ({"type": "enum", "name": "E", "symbols": ["x", "y"]}, "y"),
    ]:
        enc = native(schema)
        out = io.BytesIO()
        fastavro.schemaless_writer(out, fastavro.parse_schema(schema), value)
        assert enc.encode(0, value) == out.getvalue()
        assert enc.encode_many(0, [value, value]) == [out.getvalue()] * 2


def test_schema_parse_errors():
    for bad in [
        '{"type":"record","name":"R"}',
        '{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"a","type":"long"}]}',
        '{"type":"enum","name":"E","symbols":["a","a"]}',
        '{"type":"fixed","name":"F"}',
        '["null",["null","long"]]',
        '["long","long"]',
        '{"type":"array"}',
        '"nothing"',
        '{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"record","name":"R","fields":[]}}]}',
    ]:
        with pytest.raises(ValueError):
            Encoder([bad])


# ---- hypothesis: random values per schema ---------------------------------------------------

LONGS = st.integers(-(2**63), 2**63 - 1)
INTS = st.integers(-(2**31), 2**31 - 1)
DOUBLES = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**53), 2**53)
FLOATS32 = st.floats(width=32, allow_nan=False) | st.floats(-3.4e38, 3.4e38)


def strategy(schema: Any, names: dict[str, Any], depth: int = 0) -> st.SearchStrategy:
    """Values for a schema, as the encoder takes them (records as tuples)."""
    schema = resolve(schema, names)
    k = kind(schema)
    if isinstance(schema, dict) and isinstance(schema["type"], (dict, list)):
        return strategy(schema["type"], names, depth)
    simple = {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": INTS,
        "long": LONGS,
        "float": FLOATS32,
        "double": DOUBLES,
        "bytes": st.binary(max_size=40),
        "string": st.text(max_size=30),
    }
    if k in simple:
        return simple[k]
    if k == "record":
        return st.tuples(*(strategy(f["type"], names, depth + 1) for f in schema["fields"]))
    if k == "enum":
        return st.sampled_from(schema["symbols"])
    if k == "fixed":
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    if k == "array":
        return st.lists(strategy(schema["items"], names, depth + 1), max_size=5 if depth < 3 else 0)
    if k == "map":
        return st.dictionaries(st.text(max_size=8), strategy(schema["values"], names, depth + 1), max_size=4)
    if k == "union":
        return st.one_of(*(strategy(b, names, depth + 1) for b in schema))
    raise AssertionError(schema)


def same_encoding(schema: Any, value: Any) -> None:
    body = native(schema).encode(0, value)
    assert body == fastavro_body(schema, value)
    fastavro_read(strip_logical(schema), body)


HYPO = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("topic", list(SCHEMAS))
def test_hypothesis_bundled_schemas(topic):
    schema = SCHEMAS[topic]
    enc = AvroEncoder("single_object")
    prefix = single_object_prefix(schema)

    @HYPO
    @given(value=strategy(schema, named_types(schema)))
    def check(value):
        record = ev.TOPICS[topic](*value)
        body = fastavro_body(schema, record)
        assert enc.encode(topic, record) == prefix + body
        assert enc.encode_many(topic, [record, record]) == [prefix + body] * 2
        got_topic, got = decode(prefix + body)
        assert got_topic == topic
        for (name, want), have in zip(record._asdict().items(), got.values()):
            assert have == want or (isinstance(want, float) and math.isnan(want) and math.isnan(have)), name

    check()


# A generic schema for hypothesis: unions here only hold branches whose choice agrees with
# fastavro's (first branch that validates), so bytes can be compared directly.
HYPO_GENERIC = {
    "type": "record",
    "name": "H",
    "namespace": "test.avro",
    "fields": [f for f in GENERIC["fields"] if f["name"] != "choice"]
    + [
        {"name": "u1", "type": ["null", "long", "string", "bytes", "boolean"]},
        {"name": "u2", "type": ["null", {"type": "array", "items": ["null", "double"]}, {"type": "map", "values": "Level"}]},
        {"name": "u3", "type": ["Side", "string"]},
    ],
}


@HYPO
@given(value=strategy(HYPO_GENERIC, named_types(HYPO_GENERIC)))
def test_hypothesis_generic_schema(value):
    same_encoding(HYPO_GENERIC, value)


def test_encode_keyed_gives_encode_many_values_and_exchange_symbol_keys():
    enc = AvroEncoder("single_object")
    records = [ev.Lob("kraken", "KSM-BTC", 0.007626, 0.6248, "sell", 1618678134675, 1618678134675900),
               ev.Lob("kraken", "KSM-BTC", 0.007617, 0.0, "sell", 1618678134675, 1618678134675900),
               ev.Lob("binance", "BTC-USDT-PERP", 56999.9, 1.5, "buy", 1723075200001, 1723075200001234),
               ev.Lob("kraken", "KSM-BTC", 0.0076, 1.0, "buy", 1618678134675, 1618678134675900)]
    keys, values = enc.encode_keyed("lob", records)
    assert keys == [b"kraken:KSM-BTC", b"kraken:KSM-BTC", b"binance:BTC-USDT-PERP", b"kraken:KSM-BTC"]
    assert keys[0] is keys[1]  # consecutive records of one market share their key object
    assert values == enc.encode_many("lob", records)
    assert enc.encode_keyed("lob", []) == ([], [])
    st_ = ev.Status("kraken", "Ünïcode", "snapshot", "", 1, 2)
    assert enc.encode_keyed("status", [st_])[0] == ["kraken:Ünïcode".encode()]
