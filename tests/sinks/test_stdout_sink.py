"""`--sink stdout`: one JSON object per event and line, `{"topic": ..., fields in schema order}`."""
from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys

from atomfast.events import (
    TOPICS,
    Candle,
    FundingRate,
    Liquidation,
    Lob,
    LobL3,
    OpenInterest,
    Raw,
    Spread,
    Status,
    Ticker,
    Trade,
    TradeL3,
)
from atomfast.sinks.stdout import StdoutSink
from atomfast.testing import ROOT

SCHEMAS = ROOT / "atomfast" / "schemas"

T_MS = 1_763_680_000_123
T_US = 1_763_680_000_123_456

#: one record of every event type, with awkward values (tiny and huge floats, unicode, zeros)
RECORDS = {
    "lob": [
        Lob("kraken", "BTC-USD", 97123.4, 0.000022900, "buy", T_MS, T_US),
        Lob("kraken", "BTC-USD", 97125.1, 0.0, "sell", T_MS, T_US + 1),
    ],
    "lob_l3": [LobL3("coinbase", "ETH-USD", 3012.55, 1.23456789, "sell", "ord-1", T_MS, T_US)],
    "trades": [
        Trade("binance", "BTC-USDT", 0.000022900, 123456789.123456, "buy", "t-1", T_MS, T_US),
        Trade("binance", "BTC-USDT", 1e22, 5e-324, "sell", "t-2", T_MS, T_US),
        Trade("binance", "BTC-USDT", 0.1 + 0.2, 1.7976931348623157e308, "sell", "ünï\"cødé\n", 0, 0),
    ],
    "trades_l3": [TradeL3("bitstamp", "BTC-USD", 1.0, 2.0, "buy", "9", "m-1", "t-1", T_MS, T_US)],
    "ticker": [Ticker("kraken", "XRP-USD", 0.5123, 100.0, 0.5124, 2500.5, T_MS, T_US)],
    "spread": [Spread("kraken", "XRP-USD", 0.5123, 100.0, 0.5124, 2500.5, T_MS, T_US)],
    "candle": [
        Candle("binance", "BTC-USDT", T_MS - 60_000, T_MS, "1m", 42, True, 1.0, 2.5, 0.5, 2.0, 1234.5, T_MS, T_US),
        Candle("binance", "BTC-USDT", T_MS, T_MS + 60_000, "1m", 0, False, 2.0, 2.0, 2.0, 2.0, 0.0, T_MS, T_US),
    ],
    "funding_rate": [
        FundingRate("binance-futures", "BTC-USDT-PERP", 97000.5, -0.0001, T_MS + 3600_000, 0.000095, T_MS, T_US)
    ],
    "open_interest": [OpenInterest("binance-futures", "BTC-USDT-PERP", 81234.567, T_MS, T_US)],
    "liquidations": [Liquidation("binance-futures", "BTC-USDT-PERP", "sell", 9910.0, 0.014, T_MS, T_US, "", "FILLED",
                                 0.014, 9910.0)],
    "raw": [Raw("kraken", "", "host-1-ab", 0, "frame", "", False, '{"event":"heartbeat"}', T_US * 1000, T_MS, T_US)],
    "status": [
        Status("kraken", "", "connected", "", T_MS, T_US),
        Status("kraken", "BTC-USD", "resync", "checksum mismatch", T_MS, T_US),
    ],
}


def schema_fields(topic: str) -> list[str]:
    return [f["name"] for f in json.loads((SCHEMAS / f"{topic}.avsc").read_text())["fields"]]


def test_every_event_type_is_covered():
    assert sorted(RECORDS) == sorted(TOPICS)


def test_records_of_every_type_become_exact_json_lines():
    out = io.BytesIO()
    sink = StdoutSink(out)
    assert sink.framing is None
    for topic, records in RECORDS.items():
        sink.write(topic, records, [f"{r[0]}:{r[1]}".encode() for r in records], None)
    sink.close()
    data = out.getvalue()
    assert data.endswith(b"\n")
    lines = data.decode("utf-8").split("\n")[:-1]
    expected = [(topic, r) for topic, records in RECORDS.items() for r in records]
    assert len(lines) == len(expected)
    for line, (topic, record) in zip(lines, expected):
        obj = json.loads(line)
        assert list(obj) == ["topic", *schema_fields(topic)]  # schema order
        assert obj["topic"] == topic
        for name, value in zip(record._fields, record):
            got = obj[name]
            assert type(got) is type(value), (topic, name, got, value)
            assert got == value, (topic, name)
    assert sink.stats()["messages"] == {t: len(r) for t, r in RECORDS.items()}
    assert sink.stats()["bytes"] == len(data)
    assert sink.stats()["dropped"] == 0


def test_floats_round_trip_exactly():
    out = io.BytesIO()
    sink = StdoutSink(out)
    values = [0.000022900, 2.29e-05, 0.1 + 0.2, 1 / 3, 97123.40000000001, 5e-324, 1e-7, 123456789012345.67, -0.0]
    sink.write("lob", [Lob("x", "Y", v, v, "buy", 1, 2) for v in values], [b"x:Y"] * len(values), None)
    sink.flush()
    for line, v in zip(out.getvalue().splitlines(), values):
        obj = json.loads(line)
        assert obj["price"] == v and math.copysign(1, obj["price"]) == math.copysign(1, v)
        assert float.hex(obj["size"]) == float.hex(v)
    first = json.loads(out.getvalue().splitlines()[0])
    assert first["price"] == 2.29e-05


def test_exact_text_of_one_line():
    out = io.BytesIO()
    sink = StdoutSink(out)
    sink.write("trades", [Trade("kraken", "BTC-USD", 0.000022900, 1.5, "buy", "7", T_MS, T_US)], [b"kraken:BTC-USD"], None)
    sink.close()
    assert out.getvalue() == (
        b'{"topic":"trades","exchange":"kraken","symbol":"BTC-USD","price":0.0000229,"size":1.5,'
        b'"taker_side":"buy","trade_id":"7","event_timestamp":1763680000123,"atom_timestamp":1763680000123456}\n'
    )


def test_plain_tuples_use_the_schema_field_names():
    out = io.BytesIO()
    sink = StdoutSink(out)
    sink.write("ticker", [("kraken", "BTC-USD", 1.0, 2.0, 3.0, 4.0, 5, 6)], [b"kraken:BTC-USD"], None)
    sink.close()
    obj = json.loads(out.getvalue())
    assert list(obj) == ["topic", *schema_fields("ticker")]
    assert obj["ask_size"] == 4.0


def test_one_write_per_call_and_text_streams():
    class Recorder(io.BytesIO):
        calls = 0

        def write(self, b):
            Recorder.calls += 1
            return super().write(b)

    rec = Recorder()
    sink = StdoutSink(rec)
    sink.write("lob", RECORDS["lob"] * 50, [b"k"] * 100, None)
    assert Recorder.calls == 1
    assert len(rec.getvalue().splitlines()) == 100

    text = io.StringIO()
    sink = StdoutSink(text)
    sink.write("status", RECORDS["status"], [b"k"] * 2, None)
    sink.close()
    assert [json.loads(x)["status"] for x in text.getvalue().splitlines()] == ["connected", "resync"]

    wrapped = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    wrapped.write("before\n")
    sink = StdoutSink(wrapped)
    sink.write("status", RECORDS["status"][:1], [b"k"], None)
    sink.close()
    assert wrapped.buffer.getvalue().splitlines()[0] == b"before"
    assert not wrapped.closed  # the stream belongs to the caller


def test_empty_write_and_close_idempotent():
    out = io.BytesIO()
    sink = StdoutSink(out)
    sink.write("trades", [], [], None)
    sink.poll()
    assert sink.flush() == 0
    sink.close()
    sink.close()
    assert out.getvalue() == b""


def test_broken_pipe_stops_quietly_and_counts():
    class Closed(io.RawIOBase):
        def writable(self):
            return True

        def write(self, b):
            raise BrokenPipeError(32, "Broken pipe")

    sink = StdoutSink(Closed())
    sink.write("lob", RECORDS["lob"], [b"k"] * 2, None)
    sink.write("trades", RECORDS["trades"], [b"k"] * 3, None)
    sink.poll()
    sink.flush()
    sink.close()
    stats = sink.stats()
    assert stats["broken_pipe"] is True
    assert stats["dropped"] == 5
    assert stats["messages"] == {}


def test_broken_pipe_in_a_real_pipe_into_head():
    """`... --sink stdout | head -1`: no traceback, no 'Exception ignored', exit status 0."""
    code = (
        "import sys\n"
        "from atomfast.events import Trade\n"
        "from atomfast.sinks.stdout import StdoutSink\n"
        "s = StdoutSink()\n"
        "r = [Trade('kraken', 'BTC-USD', 1.5, 2.5, 'buy', str(i), 1, 2) for i in range(1000)]\n"
        "for _ in range(2000):\n"
        "    s.write('trades', r, [b'k'] * len(r), None)\n"
        "s.close()\n"
        "print(s.stats()['broken_pipe'], s.stats()['dropped'] > 0, file=sys.stderr)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    producer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = producer.stdout.readline()
    producer.stdout.close()  # the reader goes away, as `head -1` does
    _, err = producer.communicate(timeout=60)
    assert json.loads(first)["trade_id"] == "0"
    assert producer.returncode == 0, err.decode()
    assert err.decode().split() == ["True", "True"], err.decode()
