"""Avro for atomfast: the schemas, their fingerprints and framings, encoding and decoding.

Encoding is done by the Rust encoder (``atomfast_avro.Encoder``, built from ``native/avro``):
one call per batch (one frame's events of one topic). This module is its typed facade:

- ``load_schemas()``: topic -> parsed schema, from ``schemas/*.avsc``; ``TOPICS`` in the order of
  ``atomfast.events.TOPICS``.
- ``parsing_canonical_form``, ``fingerprint64`` (CRC-64-AVRO), ``single_object_prefix``
  (``C3 01`` + 8-byte little-endian fingerprint) and ``confluent_prefix`` (``00`` + 4-byte
  big-endian schema id): the two Kafka value framings of DESIGN.md.
- ``AvroEncoder(framing)``: ``encode`` / ``encode_many`` / ``encode_block`` by topic name.
- ``decode(value)``: detect the framing and decode with fastavro (``atomfast consume``, tests).

Records are the NamedTuples of ``atomfast.events`` (any tuple in schema field order).
Decoded values are returned as written: logical types are not applied, so
``decode(encode(topic, event))[1] == event._asdict()``.
"""
from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import fastavro
from atomfast_avro import Encoder

from atomfast import events

Framing = Literal["single_object", "confluent", "none"]
Schema = dict[str, Any] | list[Any] | str

__all__ = [
    "SCHEMA_DIR",
    "TOPICS",
    "SINGLE_OBJECT_MAGIC",
    "CONFLUENT_MAGIC",
    "AvroEncoder",
    "load_schemas",
    "parsing_canonical_form",
    "fingerprint64",
    "single_object_prefix",
    "confluent_prefix",
    "detect_framing",
    "decode",
]

#: The published schemas, one ``<topic>.avsc`` per topic (``schemas/`` at the top of the repo
#: is a symlink to this directory).
SCHEMA_DIR: Path = Path(__file__).resolve().parent / "schemas"

#: Topic names, in the order of ``atomfast.events.TOPICS`` (the encoder's schema indexes).
TOPICS: tuple[str, ...] = tuple(events.TOPICS)

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"


# ---- schemas ------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _schema_texts() -> tuple[tuple[str, str], ...]:
    found = {p.stem: p.read_text(encoding="utf-8") for p in sorted(SCHEMA_DIR.glob("*.avsc"))}
    missing = [t for t in TOPICS if t not in found]
    if missing:
        raise FileNotFoundError(f"no schema for topic(s) {', '.join(missing)} in {SCHEMA_DIR}")
    order = list(TOPICS) + sorted(t for t in found if t not in TOPICS)
    return tuple((t, found[t]) for t in order)


def load_schemas() -> dict[str, dict]:
    """Topic -> parsed schema JSON (a fresh copy), ``TOPICS`` first, then any other ``.avsc``."""
    return {topic: json.loads(text) for topic, text in _schema_texts()}


def _as_schema(schema: Schema) -> Any:
    """A schema object from a parsed schema or a JSON text (a bare name such as ``long`` too)."""
    if isinstance(schema, str):
        text = schema.strip()
        if text[:1] in ("{", "[", '"'):
            return json.loads(text)
        return text
    return schema


_PRIMITIVES = frozenset(("null", "boolean", "int", "long", "float", "double", "bytes", "string"))
_PCF_KEYS = ("name", "type", "fields", "symbols", "items", "values", "size")


def _pcf(schema: Any, ns: str) -> Any:
    """The schema reduced per the PCF rules, as a JSON-ready object."""
    if isinstance(schema, str):  # a primitive or a reference: [FULLNAMES]
        if schema in _PRIMITIVES or "." in schema or not ns:
            return schema
        return f"{ns}.{schema}"
    if isinstance(schema, list):
        return [_pcf(s, ns) for s in schema]
    if not isinstance(schema, dict):
        raise ValueError(f"invalid schema: {schema!r}")
    t = schema.get("type")
    if isinstance(t, (dict, list)):
        return _pcf(t, ns)
    if t in ("record", "error", "enum", "fixed"):
        name = schema["name"]
        if "." in name:
            full, ns = name, name.rsplit(".", 1)[0]
        else:
            space = schema.get("namespace")
            ns = ns if space is None else space
            full = f"{ns}.{name}" if ns else name
        out: dict[str, Any] = {"name": full, "type": "record" if t == "error" else t}
        if t in ("record", "error"):
            out["fields"] = [{"name": f["name"], "type": _pcf(f["type"], ns)} for f in schema["fields"]]
        elif t == "enum":
            out["symbols"] = list(schema["symbols"])
        else:
            out["size"] = int(schema["size"])  # [INTEGERS]
        return out
    if t == "array":
        return {"type": "array", "items": _pcf(schema["items"], ns)}
    if t == "map":
        return {"type": "map", "values": _pcf(schema["values"], ns)}
    if isinstance(t, str):  # [PRIMITIVES] {"type": "long", ...} -> "long"; or a reference
        return _pcf(t, ns)
    raise ValueError(f"invalid schema: {schema!r}")


def parsing_canonical_form(schema: Schema) -> str:
    """The Parsing Canonical Form of a schema (Avro spec, "Parsing Canonical Form for Schemas").

    [PRIMITIVES] simple form, [FULLNAMES], [STRIP] to name/type/fields/symbols/items/values/
    size, [ORDER] in that order, [STRINGS] unescaped UTF-8, [INTEGERS], [WHITESPACE] none.
    Written here because fastavro's ``to_parsing_canonical_form`` also validates field
    defaults and rejects some schemas the spec (and the Java reference) canonicalise; the
    tests check both agree on the bundled schemas and on the spec's test vectors.
    """
    return json.dumps(_pcf(_as_schema(schema), ""), separators=(",", ":"), ensure_ascii=False)


_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO of ``data`` (the Rabin fingerprint of the Avro spec), as an unsigned int."""
    fp = _CRC64_EMPTY
    table = _CRC64_TABLE
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def fingerprint64(schema: Schema) -> int:
    """CRC-64-AVRO fingerprint of the schema's canonical form, unsigned (0 <= fp < 2**64).

    The Java reference prints it as a signed long: ``fp - 2**64 if fp >= 2**63``.
    """
    return _canonical_fingerprint(parsing_canonical_form(schema))


@functools.lru_cache(maxsize=256)
def _canonical_fingerprint(canonical: str) -> int:
    """The CRC of a canonical form, computed once per process (a pure-Python CRC costs ~70 µs
    per schema: every encoder, hence every replay and every sink, asked it again)."""
    return crc64_avro(canonical.encode("utf-8"))


def single_object_prefix(schema: Schema) -> bytes:
    """Avro single-object encoding header: ``C3 01`` + 8-byte little-endian fingerprint."""
    return SINGLE_OBJECT_MAGIC + fingerprint64(schema).to_bytes(8, "little")


def confluent_prefix(schema_id: int) -> bytes:
    """Confluent wire-format header: magic ``00`` + 4-byte big-endian Schema Registry id."""
    if not 0 <= schema_id < 2**31:
        raise ValueError(f"schema id {schema_id} out of range (0 <= id < 2**31)")
    return CONFLUENT_MAGIC + schema_id.to_bytes(4, "big")


# ---- encoding -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _stock_encoding() -> tuple[tuple[str, ...], tuple[bytes, ...]]:
    """The stock schemas' (``load_schemas()``) JSON texts and single-object prefixes, in topic
    order: made once per process (an encoder is made per pipeline; these took ~0.3 ms of it)."""
    schemas = load_schemas()
    return tuple(json.dumps(v) for v in schemas.values()), tuple(single_object_prefix(v) for v in schemas.values())


@functools.lru_cache(maxsize=None)
def _stock_encoder(framing: Framing) -> Encoder:
    """The native encoder of the stock schemas for a framing whose prefixes never change
    (``single_object``, ``none``): one per process, shared (it keeps no state of a call: its
    scratch buffers are per thread), instead of ~90 µs of schema parsing per pipeline."""
    texts, single = _stock_encoding()
    return Encoder(list(texts), list(single) if framing == "single_object" else [b""] * len(texts))


class AvroEncoder:
    """Encode atomfast events (tuples in schema field order) by topic, with a framing.

    ``framing``: ``"single_object"`` (C3 01 + CRC-64-AVRO fingerprint + body, the default
    for Kafka without a Schema Registry), ``"confluent"`` (00 + schema id + body; needs
    ``schema_ids``: topic -> registry id) or ``"none"`` (bare body, e.g. for object container
    files). ``schemas`` defaults to ``load_schemas()``.

    ``encode_many`` / ``encode_block`` encode a whole batch in one call; prefer them in the
    pipeline (one frame's events of one topic). With confluent framing, a topic without an
    id raises KeyError until ``set_schema_id`` gives it one.
    """

    def __init__(
        self,
        framing: Framing = "single_object",
        schema_ids: Mapping[str, int] | None = None,
        schemas: Mapping[str, dict] | None = None,
    ) -> None:
        if framing not in ("single_object", "confluent", "none"):
            raise ValueError(f"unknown framing {framing!r} (single_object, confluent or none)")
        if framing == "confluent" and schema_ids is None:
            raise ValueError("confluent framing needs schema_ids (topic -> Schema Registry id)")
        self.framing: Framing = framing
        #: topic -> parsed schema (the stock ones parsed on first use of ``schemas``: a replay's
        #: encoder needs only their texts, made once per process)
        self._schemas: dict[str, dict] | None = dict(schemas) if schemas is not None else None
        self.topics: tuple[str, ...] = (
            tuple(self._schemas) if self._schemas is not None else tuple(t for t, _ in _schema_texts()))
        self._all_index = {topic: i for i, topic in enumerate(self.topics)}
        ids = dict(schema_ids or {})
        unknown = set(ids) - set(self.topics)
        if unknown:
            raise ValueError(f"schema_ids for unknown topic(s): {', '.join(sorted(unknown))}")
        self.schema_ids: dict[str, int] = ids
        if schemas is None and framing != "confluent":  # the stock schemas, prefixes never changed
            self._native = _stock_encoder(framing)
        elif schemas is None:
            texts, _ = _stock_encoding()
            self._native = Encoder(list(texts), [self._prefix_for(t) or b"" for t in self.topics])
        else:
            prefixes = [self._prefix_for(topic) or b"" for topic in self.topics]
            self._native = Encoder([json.dumps(self.schemas[t]) for t in self.topics], prefixes)
        #: topic -> schema index, for the topics that can be encoded with this framing.
        self._index: dict[str, int] = {
            t: i for t, i in self._all_index.items() if framing != "confluent" or t in ids
        }

    @property
    def schemas(self) -> dict[str, dict]:
        """Topic -> parsed schema JSON (this encoder's own copy)."""
        if self._schemas is None:
            self._schemas = load_schemas()
        return self._schemas

    def _prefix_for(self, topic: str) -> bytes | None:
        if self.framing == "single_object":
            return single_object_prefix(self.schemas[topic])
        if self.framing == "confluent":
            schema_id = self.schema_ids.get(topic)
            return None if schema_id is None else confluent_prefix(schema_id)
        return b""

    def set_schema_id(self, topic: str, schema_id: int) -> None:
        """Give a topic its Schema Registry id (confluent framing)."""
        if self.framing != "confluent":
            raise ValueError(f"schema ids are for confluent framing, not {self.framing!r}")
        index = self._all_index[topic]
        self._native.set_prefix(index, confluent_prefix(schema_id))
        self.schema_ids[topic] = schema_id
        self._index[topic] = index

    def prefix(self, topic: str) -> bytes:
        """The bytes put in front of every value of ``topic``."""
        return self._native.prefix(self._lookup(topic))

    def _lookup(self, topic: str) -> int:
        try:
            return self._index[topic]
        except KeyError:
            if topic in self._all_index:
                raise KeyError(f"topic {topic!r} has no schema id (confluent framing)") from None
            raise KeyError(f"unknown topic {topic!r}") from None

    def encode(self, topic: str, record: tuple) -> bytes:
        """prefix + body of one record."""
        try:
            index = self._index[topic]
        except KeyError:
            index = self._lookup(topic)
        return self._native.encode(index, record)

    def encode_many(self, topic: str, records: Sequence[tuple]) -> list[bytes]:
        """prefix + body of each record of a batch, in one native call."""
        try:
            index = self._index[topic]
        except KeyError:
            index = self._lookup(topic)
        return self._native.encode_many(index, records)

    def encode_keyed(self, topic: str, records: Sequence[tuple]) -> tuple[list[bytes], list[bytes]]:
        """``(keys, values)``: ``encode_many``'s values and each record's Kafka key
        ``b"exchange:symbol"`` (its first two fields), in the same native call."""
        try:
            index = self._index[topic]
        except KeyError:
            index = self._lookup(topic)
        return self._native.encode_keyed(index, records)

    def encode_block(self, topic: str, records: Sequence[tuple]) -> bytes:
        """The bodies of a batch concatenated, no prefix: an object container file block."""
        return self._native.encode_block(self._all_index[topic], records)


# ---- decoding -----------------------------------------------------------------------------


def _strip_logical(schema: Any) -> Any:
    """A copy of the schema without logicalType, so values read back exactly as written."""
    if isinstance(schema, dict):
        return {k: _strip_logical(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_strip_logical(s) for s in schema]
    return schema


@lru_cache(maxsize=None)
def _local() -> tuple[dict[str, Any], dict[int, str]]:
    """Parsed reading schemas by topic, and topic by fingerprint, for the bundled schemas."""
    schemas = load_schemas()
    readers = {t: fastavro.parse_schema(_strip_logical(s)) for t, s in schemas.items()}
    by_fp = {fingerprint64(s): t for t, s in schemas.items()}
    return readers, by_fp


#: (id(registry), schema id) -> (registry, bundled topic or None, parsed schema). The entry
#: holds the registry itself, so its id cannot be reused by another object while cached.
_registry_cache: dict[tuple[int, int], tuple[Any, str | None, Any]] = {}


def _registry_schema(schema_id: int, registry: Callable[[int], dict]) -> tuple[str | None, Any]:
    key = (id(registry), schema_id)
    hit = _registry_cache.get(key)
    if hit is None:
        schema = _as_schema(registry(schema_id))
        topic = _local()[1].get(fingerprint64(schema))
        hit = (registry, topic, fastavro.parse_schema(_strip_logical(schema)))
        if len(_registry_cache) > 4096:
            _registry_cache.clear()
        _registry_cache[key] = hit
    return hit[1], hit[2]


def detect_framing(value: bytes) -> Framing:
    """``single_object`` (C3 01 + 8 bytes), ``confluent`` (00 + 4 bytes) or ``none``.

    A bare body whose first string is empty also starts with 00: pass ``framing=`` to
    ``decode`` when that can happen.
    """
    if len(value) >= 10 and value[:2] == SINGLE_OBJECT_MAGIC:
        return "single_object"
    if len(value) >= 5 and value[:1] == CONFLUENT_MAGIC:
        return "confluent"
    return "none"


def _read(body: bytes, schema: Any) -> dict:
    stream = io.BytesIO(body)
    record = fastavro.schemaless_reader(stream, schema, None)
    if stream.tell() != len(body):
        raise ValueError(f"{len(body) - stream.tell()} trailing bytes after the Avro value")
    return record  # type: ignore[return-value]


def decode(
    value: bytes,
    topic: str | None = None,
    registry: Callable[[int], dict] | None = None,
    *,
    framing: Framing | None = None,
) -> tuple[str, dict]:
    """Decode a Kafka value or a bare body: ``(topic, record as dict)``.

    The framing is detected unless given: single-object values name their schema by
    fingerprint (the bundled schemas are known); Confluent values need ``registry``
    (schema id -> schema) or the ``topic`` (then the bundled schema is assumed); a bare body
    needs ``topic``. The topic returned is the bundled topic whose schema matches, else
    ``topic``, else the registry schema's name.
    """
    readers, by_fp = _local()
    value = bytes(value)
    framing = framing or detect_framing(value)
    if framing == "single_object":
        if value[:2] != SINGLE_OBJECT_MAGIC or len(value) < 10:
            raise ValueError("not a single-object encoded value (no C3 01 header)")
        fp = int.from_bytes(value[2:10], "little")
        found = by_fp.get(fp)
        if found is None:
            raise ValueError(f"unknown schema fingerprint {fp:#018x} (not a bundled schema)")
        if topic is not None and topic != found:
            raise ValueError(f"value is a {found!r} record, not {topic!r}")
        return found, _read(value[10:], readers[found])
    if framing == "confluent":
        if value[:1] != CONFLUENT_MAGIC or len(value) < 5:
            raise ValueError("not a Confluent-framed value (no 00 + schema id header)")
        schema_id = int.from_bytes(value[1:5], "big")
        if registry is not None:
            found, schema = _registry_schema(schema_id, registry)
            name = found or topic
            if name is None:
                name = schema.get("name", str(schema_id)) if isinstance(schema, dict) else str(schema_id)
            return name, _read(value[5:], schema)
        if topic is None:
            raise ValueError(f"Confluent-framed value (schema id {schema_id}): pass registry= or topic=")
        return topic, _read(value[5:], _reader_for(topic, readers))
    if framing != "none":
        raise ValueError(f"unknown framing {framing!r}")
    if topic is None:
        raise ValueError("a bare Avro body (no framing header) needs topic=")
    return topic, _read(value, _reader_for(topic, readers))


def _reader_for(topic: str, readers: dict[str, Any]) -> Any:
    try:
        return readers[topic]
    except KeyError:
        raise KeyError(f"unknown topic {topic!r}") from None
