"""Each event type mirrors its schema exactly: the contract (DESIGN.md: Schemas)."""
import json

import pytest

from atomfast.events import TOPICS
from atomfast.testing import ROOT

SCHEMAS = ROOT / "schemas"

# The seed schemas (L3 Atom): record names and field order are a published contract.
SEED_RECORD_NAMES = {
    "lob": "LOB",
    "lob_l3": "L3_LOB",
    "trades": "Trade",
    "trades_l3": "L3_Trades",
    "ticker": "Ticker",
    "candle": "Candle",
    "funding_rate": "funding_rate",
    "open_interest": "open_interest",
    "spread": "Spread",
    "liquidations": "Liquidation",
    "status": "Status",
    "raw": "Raw",
}


def test_every_topic_has_a_schema_and_nothing_else():
    assert sorted(p.stem for p in SCHEMAS.glob("*.avsc")) == sorted(TOPICS)


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_event_type_mirrors_schema(topic):
    schema = json.loads((SCHEMAS / f"{topic}.avsc").read_text())
    assert schema["type"] == "record"
    assert schema["namespace"] == "com.acme.avro"
    assert schema["name"] == SEED_RECORD_NAMES[topic]
    assert [f["name"] for f in schema["fields"]] == list(TOPICS[topic]._fields)
    names = [f["name"] for f in schema["fields"]]
    assert names[:2] == ["exchange", "symbol"]
    # fields added after the timestamps are optional: each has a default, in the event type too
    added = [f for f in schema["fields"][names.index("atom_timestamp") + 1:]]
    assert all("default" in f for f in added)
    assert {f["name"]: f["default"] for f in added} == TOPICS[topic]._field_defaults
    assert names[len(names) - len(added) - 2:len(names) - len(added)] == ["event_timestamp", "atom_timestamp"]
    fields = {f["name"]: f["type"] for f in schema["fields"]}
    assert fields["event_timestamp"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert fields["atom_timestamp"] == "long"


def test_seed_lob_fields_exact():
    schema = json.loads((SCHEMAS / "lob.avsc").read_text())
    assert [(f["name"], f["type"]) for f in schema["fields"][:5]] == [
        ("exchange", "string"), ("symbol", "string"), ("price", "double"), ("size", "double"), ("side", "string"),
    ]


def test_raw_record_fields():
    """raw (run --raw, the input of atomfast process): an added record, same conventions."""
    schema = json.loads((SCHEMAS / "raw.avsc").read_text())
    assert [(f["name"], f["type"]) for f in schema["fields"][:-2]] == [
        ("exchange", "string"), ("symbol", "string"), ("session", "string"), ("connection", "int"),
        ("kind", "string"), ("url", "string"), ("binary", "boolean"), ("data", "string"),
        ("receive_ns", "long"),
    ]
