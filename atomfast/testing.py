"""atomfast's test kit: what the tests (``tests/``) and the benchmarks (``bench/``) share.

Nothing here is used by the collector itself; ``pytest`` (and, for the fuzz helpers,
``hypothesis``) are needed to use it. Benchmarks import from here, never from ``tests``.

- **Captures**: ``FIXTURES`` (``../shared/fixtures`` beside the project), ``fixture_path`` (a
  missing capture skips the test, or FAILS it under CI: ``CI=true``), ``recv_frames``,
  ``capture_frames``, ``capture_instruments``, ``replay_fixture`` (a whole capture through the
  product's ``atomfast.replay.Replay``).
- **MemorySink**: the one in-memory sink (records, and the encoded keys/values when it is given
  a framing).
- **Harness**: one scheme on the product's own ``ReplayConnection``, frames pushed through the
  product's ``FrameDriver`` (size limit, counters, error accounting, end of frame) into a real
  ``Pipeline`` and a ``MemorySink``. A scheme that raises fails the test (``strict``).
- **Sync faults**: ``faulty`` (one message of a stream dropped, repeated or swapped: the fault
  tests of every sync rule), ``feed_answering`` (a stream fed through a ``Harness`` with what the
  scheme sends answered: a resubscription by the exchange's book now).
- **check_event**: every event valid for its Avro schema (types, finite doubles, ranges).
- **Fuzzing** (hypothesis): ``fuzz_settings``, the absurd values, ``garbage`` (malformed frames
  made of a real one), ``run_fuzz`` (real frames interleaved with garbage against a clean run),
  ``check_random_frame`` (random bytes: valid events only, non-JSON counted once).
- **RefBook**: an independent reference of a level-2 book on plain dicts of the venue's texts.
- **Processes**: ``run_cli``, ``SimProcess`` (``atomfast simulate``), ``ws_collect``/``ws_receive``, the cluster
  helpers (``ServeProcess``, ``ClusterHarness``, ...), and the Kafka broker of the test session
  (``load_broker_tool``, the ``kafka_bootstrap``/``kafka_broker`` fixtures, ``read_topics``,
  ``java_partition``).
"""
from __future__ import annotations

import functools
import json
import math
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pytest

from . import events as _ev
from .avro import _strip_logical
from .book import ASK, BID
from .capture import RECV, Frame, open_capture
from .driver import FrameDriver
from .metrics import ErrorLog, Metrics
from .pipeline import Pipeline
from .replay import Replay, ReplayConnection, instruments_from_capture
from .scheme import ConnectionPlan, Scheme

# ------------------------------------------------------------------------------------------------
# where things are

_CHECKOUT = Path(__file__).resolve().parent.parent
#: the project root (the checkout this module lives in, else the working directory)
ROOT = _CHECKOUT if (_CHECKOUT / "pyproject.toml").is_file() else Path.cwd()
#: the recorded exchange captures: ../shared/fixtures beside the project (its README.md says what)
FIXTURES = ROOT.parent / "shared" / "fixtures"
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
#: the receive time tests use when the time does not matter (2023-11-14T22:13:20Z)
T0 = 1_700_000_000_000_000_000


def in_ci() -> bool:
    """Whether this run is CI's (``CI=true``): there, a missing capture is a failure."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _absent(what: str) -> None:
    if in_ci():
        pytest.fail(f"{what}: under CI (CI=true) the recorded captures must be present; put the shared "
                    f"fixtures at {FIXTURES} (../shared/fixtures beside the project, see its README.md)",
                    pytrace=False)
    pytest.skip(what)


def fixtures_dir() -> Path:
    """``FIXTURES``; the test skips where it is absent (fails under CI)."""
    if not FIXTURES.is_dir():
        _absent(f"{FIXTURES} is absent: the recorded captures live in ../shared/fixtures")
    return FIXTURES


def fixture_path(relative: str | Path) -> Path:
    """Path of a recorded capture (relative to ``FIXTURES``, or ``repo:PATH`` relative to the
    repository: captures written for the tests from documented or single recorded messages, whose
    folder says where each came from); the test skips with a clear reason where a fixture is
    absent, and fails under CI."""
    if isinstance(relative, str) and relative.startswith("repo:"):
        return ROOT / relative[len("repo:"):]
    path = FIXTURES / relative
    if not path.exists():
        _absent(f"recorded capture {path} is absent (expected ../shared/fixtures beside the project)")
    return path


# ------------------------------------------------------------------------------------------------
# captures


def _path(capture: str | Path) -> Path:
    return capture if isinstance(capture, Path) else fixture_path(capture)


@functools.lru_cache(maxsize=16)
def _frames(path: Path) -> tuple[Frame, ...]:
    return tuple(open_capture(path).frames())


def capture_frames(capture: str | Path) -> list[Frame]:
    """Every frame of a capture (received, sent, opened, REST), in recorded order."""
    return list(_frames(_path(capture)))


def recv_frames(capture: str | Path) -> list[tuple[int, bytes]]:
    """(receive time ns, payload) of every received websocket frame of a capture."""
    return [(f.ts_ns, f.data) for f in _frames(_path(capture)) if f.kind == RECV]


@functools.lru_cache(maxsize=16)
def _instruments(path: Path, scheme_cls: type[Scheme]) -> dict:
    return instruments_from_capture(scheme_cls, open_capture(path))


def capture_instruments(capture: str | Path, scheme_cls: type[Scheme]) -> dict:
    """The instrument listings a capture recorded, parsed by ``scheme_cls`` and merged (as a
    replay does); a new dict each call."""
    return dict(_instruments(_path(capture), scheme_cls))


#: named sets of captures (a session's connections replayed together): name -> (exchange, files)
NAMED_CAPTURES: dict[str, tuple[str, list[str]]] = {
    "kraken-book": ("kraken", ["cryptofeed/KRAKEN.ws.50.0"]),
    "kraken-trades-ticker": ("kraken", ["cryptofeed/KRAKEN.ws.48.0", "cryptofeed/KRAKEN.ws.49.0"]),
    "kraken-futures": ("kraken-futures", ["cryptofeed/KRAKEN_FUTURES.ws.1.0"]),
    "binance-spot": ("binance", ["cryptofeed/BINANCE.ws.1.0"]),
    "binance-usdm": ("binance-futures", ["cryptofeed/BINANCE_FUTURES.ws.1.0"]),
    "binance-coinm": ("binance-delivery", ["cryptofeed/BINANCE_DELIVERY.ws.1.0"]),
    "binance-spot-hftbacktest": ("binance", ["hftbacktest/spot/btcusdt_20240808.gz"]),
    "bitfinex": ("bitfinex", ["cryptofeed/BITFINEX.ws.11.0"]),
    "bitmex": ("bitmex", ["cryptofeed/BITMEX.ws.1.0"]),
    "bitstamp": ("bitstamp", ["cryptofeed/BITSTAMP.ws.1.0"]),
    "coinbase": ("coinbase", ["cryptofeed/COINBASE.ws.28.0"]),
    "deribit": ("deribit", ["cryptofeed/DERIBIT.ws.1.0"]),
}


def replay_fixture(*captures: str | Path, exchange: str, sink=None, metrics: Metrics | None = None,
                   raw: bool = False, max_frames: int = 0, capture=None,
                   frame_hook: Callable | None = None) -> tuple[Replay, "MemorySink"]:
    """Recorded captures (relative to ``FIXTURES``, or an opened ``capture``) through the
    product's ``Replay`` into ``sink`` (a new ``MemorySink`` by default). ``frame_hook(conn, data,
    recv_ns, binary)`` sees every frame before the scheme (the driver's hook)."""
    sink = sink if sink is not None else MemorySink()
    replay = Replay(capture or open_capture(*map(_path, captures)), exchange, sink, metrics, raw=raw)
    replay.driver.frame_hook = frame_hook
    replay.run(max_frames)
    return replay, sink


# ------------------------------------------------------------------------------------------------
# the in-memory sink


class MemorySink:
    """Keeps what the pipeline writes: ``records`` [(topic, record)] always; with a ``framing``
    (the pipeline then encodes Avro for it, as for Kafka) also ``out`` {topic: [(key, value)]};
    with ``writes=True`` every write call (topic, records, keys, values) as it came.

    ``records_needed=False`` (with a framing): the pipeline may hand values without records, as
    it does to Kafka (the book's ``lob`` events as Avro bytes); ``records`` then holds them
    decoded, so a test reads the same records on either path."""

    def __init__(self, framing: str | None = None, writes: bool = False, records_needed: bool = True) -> None:
        if not records_needed and framing != "single_object":
            raise ValueError("records_needed=False decodes the values: it needs framing='single_object'")
        self.records_needed = records_needed
        self.framing = framing
        self.records: list[tuple[str, tuple]] = []
        self.out: dict[str, list[tuple[bytes, bytes]]] = defaultdict(list)
        self.writes: list[tuple[str, list, list, list | None]] | None = [] if writes else None
        self.polls = 0
        self.closed = False

    def write(self, topic, records, keys, values) -> None:
        assert (values is None) == (self.framing is None), (topic, self.framing)
        if self.writes is not None:
            self.writes.append((topic, list(records), list(keys), None if values is None else list(values)))
        if not records and values and not self.records_needed:
            from .avro import decode
            from .events import TOPICS

            records = [TOPICS[topic](**decode(v)[1]) for v in values]
        self.records.extend((topic, r) for r in records)
        if values is not None:
            self.out[topic].extend(zip(keys, values))

    def poll(self) -> None:
        self.polls += 1

    def flush(self, timeout: float = 30.0) -> int:
        return 0

    def close(self) -> None:
        self.closed = True

    def stats(self) -> dict:
        return {"queue": 0, "records": len(self.records)}

    # --- reading it ---------------------------------------------------------------------------
    def events(self, topic: str) -> list[tuple]:
        return [r for t, r in self.records if t == topic]

    def counts(self) -> dict[str, int]:
        """topic -> number of records (topics in first-written order)."""
        out: dict[str, int] = {}
        for t, _ in self.records:
            out[t] = out.get(t, 0) + 1
        return out

    def statuses(self) -> list[tuple[str, str]]:
        return [(r.status, r.reason) for t, r in self.records if t == "status"]

    def as_dicts(self) -> dict[str, list[dict]]:
        """topic -> the records as dicts (field -> value)."""
        out: dict[str, list[dict]] = {}
        for t, r in self.records:
            out.setdefault(t, []).append(r._asdict())
        return out

    def normalised(self) -> dict[str, list[tuple[bytes, bytes]]]:
        """``out`` without the raw topic: what a normalising run published."""
        return {t: v for t, v in self.out.items() if t != "raw" and v}


def of(records: Iterable[tuple[str, tuple]], topic: str) -> list[tuple]:
    """The records of ``topic`` among (topic, record) pairs."""
    return [r for t, r in records if t == topic]


# ------------------------------------------------------------------------------------------------
# the harness


class ErrorRecorder(ErrorLog):
    """A harness's ``metrics.errors``: counted and logged as ``ErrorLog`` does, and every report
    kept in ``reports`` (kind, detail, sample). An "internal error" (the scheme raised, the driver
    caught it) fails the test at once when ``strict``, with the scheme's exception chained."""

    def __init__(self, strict: bool = True) -> None:
        super().__init__()
        self.strict = strict
        self.reports: list[tuple[str, str, bytes | str]] = []

    def report(self, kind: str, detail: str, sample: bytes | str = b"") -> None:
        super().report(kind, detail, sample)
        self.reports.append((kind, detail, bytes(sample) if isinstance(sample, (bytearray, memoryview)) else sample))
        if self.strict and kind == "internal error":
            raise AssertionError(f"the scheme raised: {detail}")


def encode_json(data: Any) -> bytes:
    """A frame's bytes: a dict or list as compact JSON (as venues send it), a str as UTF-8."""
    if isinstance(data, (dict, list)):
        data = json.dumps(data, separators=(",", ":"))
    if isinstance(data, str):
        data = data.encode()
    return data


class Harness:
    """One scheme on a ``ReplayConnection``, fed frame by frame through the product's
    ``FrameDriver`` into a real ``Pipeline`` and a ``MemorySink``.

    ``feed``/``rest``/``open``/``close``/``rest_error``/``timer`` are the driver's entry points
    and return the records the call produced. With ``strict`` (the default) a scheme that
    raises fails the test (``ErrorRecorder``); every bad input is kept in ``reports``."""

    def __init__(self, scheme_cls: type[Scheme], instruments: dict | None = None,
                 channels: Sequence[str] | None = None, symbols: Sequence[str] = (), *, url: str | None = None,
                 plan: ConnectionPlan | None = None, conn_id: int = 1, sink: MemorySink | None = None,
                 strict: bool = True, raw_tap=None, frame_hook=None) -> None:
        self.metrics = Metrics()
        self.metrics.errors = self.errors = ErrorRecorder(strict)
        self.sink = sink if sink is not None else MemorySink()
        self.pipeline = Pipeline(self.sink, self.metrics, timed=False)
        self.scheme = scheme_cls(self.pipeline.emit, self.metrics, instruments or {}, tuple(symbols),
                                 tuple(channels or scheme_cls.channels))
        self.driver = FrameDriver(self.scheme, self.pipeline, raw_tap, frame_hook)
        self.conn = ReplayConnection(conn_id, url or scheme_cls.ws_url)
        if plan is not None:
            self.conn.plan = plan

    @property
    def records(self) -> list[tuple[str, tuple]]:
        return self.sink.records

    @property
    def reports(self) -> list[tuple[str, str, bytes | str]]:
        """Every bad input so far: (kind, detail, sample)."""
        return self.errors.reports

    @property
    def max_frame_bytes(self) -> int:
        return self.driver.limit

    @max_frame_bytes.setter
    def max_frame_bytes(self, limit: int) -> None:
        self.scheme.max_frame_bytes = self.driver.limit = limit

    def _since(self, before: int) -> list[tuple[str, tuple]]:
        return self.sink.records[before:]

    def feed(self, data: Any, recv_ns: int = T0, binary: bool = False) -> list[tuple[str, tuple]]:
        """One received frame (bytes, str, or a dict/list sent as compact JSON)."""
        before = len(self.sink.records)
        self.driver.frame(self.conn, encode_json(data), recv_ns, binary)
        return self._since(before)

    def feed_all(self, frames: Iterable[tuple[int, bytes]]) -> list[tuple[str, tuple]]:
        """Frames (recv_ns, data) one after the other; the records they produced."""
        before = len(self.sink.records)
        for ts, data in frames:
            self.driver.frame(self.conn, data, ts)
        return self._since(before)

    def rest(self, url: str, body: Any, recv_ns: int = T0) -> list[tuple[str, tuple]]:
        """A REST answer (bytes, str, or a dict/list as JSON)."""
        before = len(self.sink.records)
        self.driver.rest(self.conn, url, encode_json(body), recv_ns)
        return self._since(before)

    def rest_error(self, url: str, exc: Exception, recv_ns: int = T0) -> list[tuple[str, tuple]]:
        before = len(self.sink.records)
        self.driver.rest_error(self.conn, url, exc, recv_ns)
        return self._since(before)

    def open(self, recv_ns: int = T0) -> list[tuple[str, tuple]]:
        before = len(self.sink.records)
        self.driver.open(self.conn, recv_ns)
        return self._since(before)

    def close(self, reason: str = "closed", recv_ns: int = T0) -> list[tuple[str, tuple]]:
        before = len(self.sink.records)
        self.driver.close(self.conn, reason, recv_ns)
        return self._since(before)

    def timer(self, now_ns: int = T0) -> list[tuple[str, tuple]]:
        before = len(self.sink.records)
        self.driver.timer([self.conn], now_ns)
        return self._since(before)

    def events(self, topic: str) -> list[tuple]:
        return self.sink.events(topic)

    def sent(self) -> list:
        """What the scheme sent on the connection, JSON-decoded."""
        return [json.loads(m) for m in self.conn.sent]


# ------------------------------------------------------------------------------------------------
# sync faults

#: the faults of a sync rule's tests (``faulty``)
FAULTS = ("drop", "duplicate", "reorder")


def faulty(items: Iterable, index: int, fault: str, other: int | None = None) -> list:
    """``items`` (frames, messages, or their indices) with one fault at ``index``: ``drop`` (it
    is lost), ``duplicate`` (it comes again right after itself), ``reorder`` (it swaps places
    with ``other``, by default the next one). A new list; ``items`` is not changed."""
    out = list(items)
    if fault == "drop":
        del out[index]
    elif fault == "duplicate":
        out.insert(index + 1, out[index])
    elif fault == "reorder":
        other = index + 1 if other is None else other
        out[index], out[other] = out[other], out[index]
    else:
        raise ValueError(f"unknown fault {fault!r}: one of {', '.join(FAULTS)}")
    return out


def feed_answering(h: Harness, frames: Iterable[tuple[int, Any]],
                   mutate: Callable[[int, Any], Iterable] | None = None,
                   answer: Callable[[dict, int, int], Iterable] | None = None, rounds: int = 3) -> Harness:
    """Feed ``frames`` (recv_ns, data) through ``h``, ``mutate(i, data)`` giving the frames fed in
    place of frame i (a fault: ``[]``, ``[d, d]``, another frame); after each, what the scheme
    sent (``h.conn.sent``, JSON-decoded, then cleared) is answered: ``answer(msg, i, recv_ns)``
    gives the frames the exchange sends back (an ack; for a resubscription, its book now), fed
    at the same time. What the answers make the scheme send is answered too, ``rounds`` times at
    the most (a resync answered by a snapshot that resyncs again: bounded, a test never loops).
    Without ``answer`` what is sent is dropped. Returns ``h``."""
    for i, (ts, data) in enumerate(frames):
        for d in (mutate(i, data) if mutate is not None else (data,)):
            h.feed(d, ts)
        for _round in range(rounds):
            msgs = [json.loads(x) for x in h.conn.sent]
            h.conn.sent.clear()
            if answer is not None:
                for msg in msgs:
                    for d in answer(msg, i, ts):
                        h.feed(d, ts)
    return h


# ------------------------------------------------------------------------------------------------
# the event checker


@functools.lru_cache(maxsize=1)
def _schemas() -> dict[str, list[tuple[str, Any]]]:
    out = {}
    for path in SCHEMA_DIR.glob("*.avsc"):
        schema = json.loads(path.read_text())
        out[path.stem] = [(f["name"], f["type"]) for f in schema["fields"]]
    return out


def _integer(value: Any, bits: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)


#: Avro type -> what a value of it must be (a string must encode as UTF-8: no lone surrogates)
_VALID: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str) and v.encode("utf-8") is not None,
    "double": lambda v: isinstance(v, float) and math.isfinite(v),
    "long": lambda v: _integer(v, 64),
    "int": lambda v: _integer(v, 32),
    "boolean": lambda v: isinstance(v, bool),
}


def check_event(topic: str, record: tuple) -> None:
    """``record`` is valid for ``topic``'s Avro schema: its fields, strings that encode as UTF-8
    (no lone surrogates), finite doubles, longs and ints in range, booleans."""
    fields = _schemas()[topic]
    assert len(record) == len(fields), (topic, record)
    for (name, ftype), value in zip(fields, record):
        kind = ftype["type"] if isinstance(ftype, dict) else ftype
        assert kind in _VALID, f"{topic}.{name}: unexpected schema type {ftype!r}"
        assert _VALID[kind](value), (topic, name, value)


def check_events(records: Iterable[tuple[str, tuple]]) -> None:
    for topic, record in records:
        check_event(topic, record)


# ------------------------------------------------------------------------------------------------
# sample events and schemas


SAMPLE_MS = 1_763_680_799_123  # 2025-11-20T23:19:59.123Z
SAMPLE_US = 1_763_680_799_456_789
#: realistic events of every topic, with the edges of each type (a new topic adds its own)
SAMPLE_EVENTS: dict[str, list[tuple]] = {
    "lob": [
        _ev.Lob("kraken", "BTC-USD", 37251.3, 0.51234, _ev.BUY, SAMPLE_MS, SAMPLE_US),
        _ev.Lob("kraken", "SHIB-USD", 0.000022900, 0.0, _ev.SELL, SAMPLE_MS, SAMPLE_US),  # 0 removes
        _ev.Lob("binance", "ETH-USDT", 1e-8, 123456789.123456789, _ev.SELL, 0, 0),
    ],
    "lob_l3": [
        _ev.LobL3("coinbase", "BTC-USD", 64000.01, 0.002, _ev.BUY, "d50ec984-77a8-460a-b958-66f114b0de9b", SAMPLE_MS,
                  SAMPLE_US),
        _ev.LobL3("bitstamp", "BTC-EUR", 0.000022900, 0.0, _ev.SELL, "", SAMPLE_MS, SAMPLE_US),
    ],
    "trades": [
        _ev.Trade("kraken", "SHIB-USD", 0.000022900, 1_234_567.0, _ev.SELL, "TX4ZQK-ABCDE-FGHIJK", SAMPLE_MS,
                  SAMPLE_US),
        _ev.Trade("binance", "BTC-USDT", 37251.3, 0.001, _ev.BUY, "3402189455", SAMPLE_MS, SAMPLE_US),
        _ev.Trade("deribit", "BTC-USD-20261225-100000-C", 0.0455, 12.0, _ev.BUY, "", -1, -(2**63)),
        _ev.Trade("bitfinex", "ΞTH-€", -0.5, -1e300, _ev.SELL, "日本語-🚀", 2**63 - 1, 2**53 + 1),
    ],
    "trades_l3": [
        _ev.TradeL3("coinbase", "ETH-USD", 3012.55, 0.25, _ev.BUY, "584551302", "maker-1", "taker-2", SAMPLE_MS,
                    SAMPLE_US),
    ],
    "ticker": [
        _ev.Ticker("kraken", "BTC-USD", 37251.2, 1.5, 37251.3, 0.25, SAMPLE_MS, SAMPLE_US),
        _ev.Ticker("okx", "DOGE-USDT-PERP", 0.08123, 1e6, 0.08124, 2e6, SAMPLE_MS, SAMPLE_US),
    ],
    "spread": [
        _ev.Spread("kraken", "BTC-USD", 37251.2, 1.5, 37251.3, 0.25, SAMPLE_MS, SAMPLE_US),
        _ev.Spread("kraken", "SHIB-USD", 0.0000229, 5e9, 0.00002291, 1e9, SAMPLE_MS, SAMPLE_US),
    ],
    "candle": [
        _ev.Candle("binance", "BTC-USDT", SAMPLE_MS - 60_000, SAMPLE_MS, "1m", 1523, True, 37200.0, 37300.5, 37150.25,
                   37251.3, 123.456, SAMPLE_MS, SAMPLE_US),
        _ev.Candle("kraken", "BTC-USD", 0, 1, "1d", 0, False, 0.0, -0.0, 1e-300, float("inf"), 0.0, 0, 0),
        _ev.Candle("x", "y", 0, 0, "", 2**31 - 1, False, 1, 2, 3, 4, 5, 0, 0),  # ints as doubles
        _ev.Candle("x", "y", 0, 0, "", -(2**31), True, 1.0, 2.0, 3.0, 4.0, 5.0, 0, 0),
    ],
    "funding_rate": [
        _ev.FundingRate("binance-futures", "BTC-USDT-PERP", 37260.1, 0.0001, SAMPLE_MS + 8 * 3_600_000, -0.000125,
                        SAMPLE_MS, SAMPLE_US),
    ],
    "open_interest": [
        _ev.OpenInterest("bybit", "ETH-USDT-PERP", 1_234_567.891, SAMPLE_MS, SAMPLE_US),
    ],
    "liquidations": [
        _ev.Liquidation("binance-futures", "BTC-USDT-PERP", _ev.SELL, 9910.0, 0.014, SAMPLE_MS, SAMPLE_US,
                        "", "FILLED", 0.014, 9910.0),
        _ev.Liquidation("bitmex", "XBT-USD-PERP", _ev.BUY, 64000.5, 1e6, SAMPLE_MS, SAMPLE_US,
                        "d50ec984-77a8-460a-b958-66f114b0de9b"),
    ],
    "status": [
        _ev.Status("kraken", "", "connected", "", SAMPLE_MS, SAMPLE_US),
        _ev.Status("kraken", "BTC-USD", "resync", "checksum mismatch: 3512 != 991", SAMPLE_MS, SAMPLE_US),
        _ev.Status("binance", "BTC-USDT", "snapshot", "", SAMPLE_MS, SAMPLE_US),
    ],
    "raw": [
        _ev.Raw("kraken", "", "host-123-ab12cd34", 0, "frame", "", False,
               '[1234,{"a":[["5541.30000","2.50700000","1534614248.456738"]],"c":"974942666"},"book-10","XBT/USD"]',
               SAMPLE_US * 1000 + 789, SAMPLE_MS, SAMPLE_US),
        _ev.Raw("huobi", "", "h-1-x", 7, "frame", "", True, bytes(range(256)).decode("latin-1"), 1, 0, 0),
        _ev.Raw("binance", "", "s", 2**31 - 1, "rest", "https://api.binance.com/api/v3/depth?symbol=BTCUSDT", False,
               '{"lastUpdateId":1,"bids":[],"asks":[]} ünï', 0, 0, 0),
    ],
}


#: an Avro schema without its logical types (what a reader that ignores them sees)
strip_logical = _strip_logical


# ------------------------------------------------------------------------------------------------
# fuzzing (hypothesis)

#: ATOMFAST_FUZZ_EXAMPLES=N: N random examples per fuzz test (a deeper hunt); by default a fixed
#: (derandomized) set, the same on every run
FUZZ_EXAMPLES = int(os.environ.get("ATOMFAST_FUZZ_EXAMPLES", "0"))


def fuzz_settings(examples: int, **overrides):
    """The fuzz tests' hypothesis settings: ``examples`` derandomized examples (or
    ATOMFAST_FUZZ_EXAMPLES random ones), no deadline, no example database."""
    from hypothesis import HealthCheck, settings

    kw = dict(max_examples=FUZZ_EXAMPLES or examples, deadline=None, derandomize=not FUZZ_EXAMPLES, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    kw.update(overrides)
    return settings(**kw)


HUGE = "\x00HUGE\x00"  # the bare JSON number 1e400 once encoded (encode_damaged)
NEG = "\x00NEG\x00"  # the bare JSON number -0.5
TINY = "\x00TINY\x00"  # the bare JSON number 1e-30 (beyond every book's decimals)
#: absurd values: for a number only these (another number could be a valid lie, e.g. a size 0)
ABSURD_NUMBERS = [-1, 2**64 + 1, HUGE, NEG]
ABSURD_STRINGS = ["", "x", "-1", "NaN", "inf", "1e400", "9" * 40, "9" * 5000]
#: values of every JSON type (what a field of another type is damaged into)
WRONG_TYPES = [None, True, False, 0, 1.5, -2.5, [], {}, [1, 2], {"a": 1}]
WRONG = [*WRONG_TYPES, *ABSURD_NUMBERS, *ABSURD_STRINGS]
_NUMERIC = re.compile(r"[0-9]+(\.[0-9]+)?").fullmatch


def json_paths(value: Any, prefix: tuple = ()):
    """Every position in a JSON value, the root first."""
    yield prefix
    if isinstance(value, list):
        for i, v in enumerate(value):
            yield from json_paths(v, prefix + (i,))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from json_paths(v, prefix + (k,))


def value_at(value: Any, path: tuple) -> Any:
    for p in path:
        value = value[p]
    return value


def replace_at(value: Any, path: tuple, new: Any) -> Any:
    """A copy of ``value`` with the position ``path`` replaced by ``new``."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        return [(replace_at(v, rest, new) if i == head else v) for i, v in enumerate(value)]
    return {k: (replace_at(v, rest, new) if k == head else v) for k, v in value.items()}


def encode_damaged(value: Any) -> bytes:
    """Compact JSON, with the placeholders HUGE/NEG/TINY written as the bare numbers they stand for."""
    text = json.dumps(value, separators=(",", ":"))
    return (text.replace(json.dumps(HUGE), "1e400").replace(json.dumps(NEG), "-0.5")
            .replace(json.dumps(TINY), "1e-30").encode())


def category(value: Any) -> str:
    """A JSON value's kind: number, literal (true/false/null), str, list, dict."""
    if value in (HUGE, NEG, TINY):
        return "number"
    if isinstance(value, bool) or value is None:
        return "literal"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def damages(old: Any, new: Any, absurd_strings: Sequence[str] = ABSURD_STRINGS) -> bool:
    """``new`` in place of ``old`` is damage, never a well-formed alternative: a value of another
    JSON type, an absurd number where a number was, an absurd string where a string was."""
    if category(old) != category(new):
        return True
    if category(old) == "number":
        return new in ABSURD_NUMBERS
    if isinstance(old, str):
        return new in absurd_strings
    return False


def parse_or_none(parse: Callable, value: Any, *refusals: type[Exception]):
    """``parse(value)``, or None where it refuses the input with one of ``refusals`` (ValueError
    by default); any other exception propagates (fails the test)."""
    try:
        return parse(value)
    except refusals or (ValueError,):
        return None


def is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return False
    return True


def check_random_frame(frame: bytes, *schemes: type[Scheme], answers: Sequence[bytes] = ()) -> None:
    """Random bytes into a fresh ``Harness`` of each scheme: whatever it publishes is a valid
    event, and a frame that is not JSON (nor one of the venue's bare text ``answers``, e.g.
    ``b"pong"``) is counted as bad input exactly once."""
    for scheme_cls in schemes:
        h = Harness(scheme_cls)
        before = h.metrics.errors.total
        check_events(h.feed(frame))
        if not is_json(frame) and frame not in answers:
            assert h.metrics.errors.total == before + 1


#: the garbage options for venues whose numbers come as strings and whose messages name orders
#: and trades by id (Coinbase, Bitstamp): a digit string is damaged as a number; an id only into a
#: value of another JSON type (another id would be a well-formed message about another order)
ORDER_FEED_GARBAGE = {
    "numeric_strings": True, "absurd_strings": [*ABSURD_STRINGS, "1" * 30 + ".5"], "random_size": 200,
    "id_keys": frozenset({"order_id", "maker_order_id", "taker_order_id", "trade_id", "id", "id_str",
                          "buy_order_id", "sell_order_id"}),
}


def garbage(seed: bytes, limit: int | None = None, *, numeric_strings: bool = False,
            absurd_strings: Sequence[str] = ABSURD_STRINGS, id_keys: frozenset | set = frozenset(),
            random_size: int = 300):
    """A hypothesis strategy: (kind, bytes) of one malformed frame made of ``seed`` (a real
    frame): random bytes, the seed truncated, nested deeper than a decoder goes, over ``limit``
    bytes (when given), or the seed with one field or container replaced ("wrong type": by a
    value of another JSON type or an absurd one; "absurd number": a number, or with
    ``numeric_strings`` a string of digits, by an absurd one). Fields named in ``id_keys`` only
    get values of another JSON type (another id would be a well-formed message)."""
    from hypothesis import strategies as st

    wrong = [*WRONG_TYPES, *ABSURD_NUMBERS, *absurd_strings]
    kinds = ["random", "truncated", "wrong type", "wrong type", "absurd number"]
    kinds += ["oversize"] if limit is not None else []

    @st.composite
    def strategy(draw):
        kind = draw(st.sampled_from([*kinds, "deep"]))
        if kind == "random":
            return kind, draw(st.binary(max_size=random_size))
        if kind == "deep":  # nested deeper than msgspec goes (it raises RecursionError)
            n = draw(st.sampled_from([2000, 20000]))
            return kind, (seed[:1] + b'"a",' if seed[:1] == b"[" else b'{"a":') + b"[" * n + b"]" * n + seed[-1:]
        if kind == "truncated":
            return kind, seed[: draw(st.integers(0, max(0, len(seed) - 1)))]
        if kind == "oversize":
            return kind, seed[:-1] + b" " * (limit + 1) + seed[-1:]
        value = json.loads(seed)
        paths = []
        for path in json_paths(value):
            old = value_at(value, path)
            is_id = bool(path) and path[-1] in id_keys
            if kind == "absurd number":  # aim at the numbers: prices, sizes, times, sequence numbers
                if is_id:
                    continue
                if category(old) == "number":
                    paths.append((path, ABSURD_NUMBERS))
                elif numeric_strings and isinstance(old, str) and _NUMERIC(old):
                    paths.append((path, ABSURD_NUMBERS + list(absurd_strings)))
                continue
            options = [w for w in wrong if damages(old, w, absurd_strings)]
            if is_id:
                options = [w for w in options if category(w) != category(old)]
            if options:
                paths.append((path, options))
        if not paths:
            return "truncated", seed[:-1]
        path, options = draw(st.sampled_from(paths))
        return kind, encode_damaged(replace_at(value, path, draw(st.sampled_from(options))))

    return strategy()


def feed_checked(h: Harness, data: bytes, recv_ns: int, garbage_kind: str | None = None) -> list:
    """One frame through the harness; its events schema-checked; garbage that is not JSON must
    be counted as bad input."""
    before = h.metrics.errors.total
    produced = h.feed(data, recv_ns)
    check_events(produced)
    if garbage_kind is not None and not is_json(data):
        assert h.metrics.errors.total > before, (garbage_kind, data[:100])
    return produced


def feed_with_garbage(h: Harness, stream: Sequence[tuple[int, bytes]], data=None,
                      after: Callable[[int, int], Any] | None = None, **options) -> int:
    """Real frames ``stream`` [(recv_ns, bytes)] through ``h`` (``feed_checked``), with garbage
    (``garbage(seed, **options)``, made of that real frame or of the one before) inserted before
    one to six of them, drawn from hypothesis' ``data`` (none without it); ``after(i, recv_ns)``
    follows each real frame (to answer the scheme's REST requests). Returns the number of
    records published before the first garbage (the clean run's)."""
    from hypothesis import strategies as st

    spots = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), min_size=1, max_size=6))) if data else []
    first = None
    for i, (ts, frame) in enumerate(stream):
        if spots and spots[0] == i:
            spots.pop(0)
            if first is None:
                first = len(h.records)
            kind, bad = data.draw(garbage(stream[i - data.draw(st.integers(0, 1))][1], **options))
            feed_checked(h, bad, ts, kind)
        feed_checked(h, frame, ts)
        if after is not None:
            after(i, ts)
    return first or 0


def same_levels(book, other) -> bool:
    return book.levels(0) == other.levels(0) and book.levels(1) == other.levels(1)


def run_fuzz(stream, data, *, garbage_options: dict | None = None, named_only: bool = False,
             exact_resyncs: bool = True, not_bad: frozenset = frozenset(), limit: int = 64 * 1024) -> None:
    """Real frames to three harnesses: ``faulty`` (also gets garbage), ``clean``, and ``ahead``
    (one real frame further). ``stream`` = (scheme class, instruments, frames, prefix length
    after which every book is synced). After every frame: each event valid for its schema; each
    book (``named_only``: each book the frame names; all at the end) equals the clean run's, or
    the run one frame ahead's (garbage made of the next frame may apply it early), or is resynced
    and empty. Garbage that is not JSON (but ``not_bad``) is counted as bad input; resyncs are
    counted (``exact_resyncs``: one per resynced book)."""
    from hypothesis import strategies as st

    scheme_cls, instruments, frames, prefix = stream
    faulty, clean, ahead = (Harness(scheme_cls, instruments) for _ in range(3))
    start = data.draw(st.integers(prefix, min(prefix + 400, len(frames) - 42)), label="start")
    for ts, frame in frames[:start]:
        faulty.feed(frame, ts)
        clean.feed(frame, ts)
        ahead.feed(frame, ts)
    ahead.feed(frames[start][1], frames[start][0])
    assert faulty.scheme.books and not faulty.scheme.unsynced
    faulty.max_frame_bytes = limit  # smaller than the default, to reach it cheaply
    steps = data.draw(st.lists(st.booleans(), min_size=1, max_size=40), label="steps (True = garbage)")
    i = start
    not_json = 0
    early = False  # garbage made of the next frame was fed since the last real frame

    def check_books(frame: bytes | None) -> None:
        assert set(faulty.scheme.books) <= set(clean.scheme.books)
        for native, book in faulty.scheme.books.items():
            if frame is not None and native.encode() not in frame:
                continue
            if native in faulty.scheme.unsynced:
                assert book.count(0) == 0 and book.count(1) == 0
                continue
            assert same_levels(book, clean.scheme.books[native]) or (
                early and same_levels(book, ahead.scheme.books[native])), native

    for is_garbage in steps:
        if is_garbage:
            use_next = data.draw(st.booleans(), label="seed: next frame (else the last)")
            seed_ts, seed = frames[i] if use_next else frames[i - 1]
            kind, frame = data.draw(garbage(seed, limit, **(garbage_options or {})), label="garbage")
            early = early or use_next
            errors_before = faulty.metrics.errors.total
            produced = faulty.feed(frame, seed_ts)
            if (kind in ("oversize", "deep") or not is_json(frame)) and frame not in not_bad:
                not_json += 1
                assert faulty.metrics.errors.total > errors_before, (kind, frame[:200])
        else:
            ts, frame = frames[i]
            produced = faulty.feed(frame, ts)
            clean.feed(frame, ts)
            i += 1
            ahead.feed(frames[i][1], frames[i][0])
            early = False
        check_events(produced)
        check_books(frame if named_only else None)
    check_books(None)
    assert faulty.metrics.errors.total >= not_json
    assert clean.metrics.errors.total == 0 and clean.metrics.checksum_failed == 0 and clean.metrics.gaps == 0
    if exact_resyncs:
        assert faulty.metrics.resyncs == len(faulty.scheme.unsynced)
    else:  # a copy of a real snapshot may have rebuilt a resynced book already
        assert faulty.metrics.resyncs >= len(faulty.scheme.unsynced)


# ------------------------------------------------------------------------------------------------
# the reference book

_UNKNOWN = object()


class RefBook:
    """An independent reference of one level-2 book, on plain dicts: per side (named ``bid`` and
    ``ask``), Decimal price -> (price text, size text) as the venue sent them. ``rows`` maps a
    row id to its (side, price) for venues whose updates name a level by id (BitMEX). ``top()``
    gives ``empty`` for the price and size of an empty side."""

    def __init__(self, bid: str = "b", ask: str = "a", empty: Any = None) -> None:
        self.bid, self.ask, self.empty = bid, ask, empty
        self.sides: dict[str, dict[Decimal, tuple[str, str]]] = {bid: {}, ask: {}}
        self.rows: dict[Any, tuple[str, str]] = {}
        self._best: dict[str, Any] = {bid: None, ask: None}  # the best price, None if empty, _UNKNOWN

    def set(self, side: str, price: str, size: str) -> int:
        """Set a level; a size of zero deletes it. 1 if that is a published change (a lob
        event), 0 for the delete of an absent level."""
        if Decimal(size) == 0:
            return self.remove(side, price)
        p = Decimal(price)
        self.sides[side][p] = (price, size)
        best = self._best[side]
        if best is None or (best is not _UNKNOWN and (p > best if side == self.bid else p < best)):
            self._best[side] = p
        return 1

    def remove(self, side: str, price: str) -> int:
        """Delete a level: 1 if it was there."""
        p = Decimal(price)
        if self.sides[side].pop(p, None) is None:
            return 0
        if self._best[side] == p:
            self._best[side] = _UNKNOWN
        return 1

    def load(self, side: str, levels) -> int:
        """A snapshot's levels of ``side`` ([price, size, ...] texts; a zero size is left out);
        how many there were."""
        for price, size, *_ in levels:
            if Decimal(size) != 0:
                self.set(side, price, size)
        return len(levels)

    def apply_row(self, action: str, row: dict) -> int:
        """A row of a venue that names levels by id (BitMEX ``orderBookL2``): ``partial``/``insert``
        bring id, side, price and size; ``update`` id and size; ``delete`` the id."""
        if action in ("partial", "insert"):
            side, price = row["side"], str(row["price"])
            self.rows[row["id"]] = (side, price)
            return self.set(side, price, str(row["size"]))
        side, price = self.rows[row["id"]]
        if action == "update":
            return self.set(side, price, str(row["size"]))
        del self.rows[row["id"]]
        return self.remove(side, price)

    def _best_of(self, side: str):
        best = self._best[side]
        if best is _UNKNOWN:
            levels = self.sides[side]
            best = self._best[side] = ((max if side == self.bid else min)(levels) if levels else None)
        return best

    def top(self) -> tuple:
        """(best bid price, its size, best ask price, its size) as Decimal."""
        out: list = []
        for side in (self.bid, self.ask):
            p = self._best_of(side)
            out += [p, Decimal(self.sides[side][p][1])] if p is not None else [self.empty, self.empty]
        return tuple(out)

    def ordered(self, side: str) -> list[tuple[str, str]]:
        """The side's levels as sent (price text, size text), best first."""
        levels = self.sides[side]
        return [levels[p] for p in sorted(levels, reverse=(side == self.bid))]

    def levels(self, side: str) -> list[tuple[Decimal, Decimal]]:
        """The side's levels as (price, size) Decimals, best first."""
        return [(p, Decimal(s)) for p, (_t, s) in sorted(self.sides[side].items(), reverse=(side == self.bid))]

    def truncate(self, depth: int) -> int:
        """Keep the best ``depth`` levels of each side; the number dropped."""
        dropped = 0
        for side in (self.bid, self.ask):
            levels = self.sides[side]
            for p in sorted(levels, reverse=(side == self.bid))[depth:]:
                del levels[p]
                dropped += 1
        return dropped

    def equals(self, book) -> bool:
        """Whether ``book`` (an ``L2Book``) holds exactly this reference's levels, compared as
        Decimals (``"1.50"`` is ``"1.5"``)."""
        return (decimal_levels(book.levels(BID)) == self.levels(self.bid)
                and decimal_levels(book.levels(ASK)) == self.levels(self.ask))

    def okx_checksum(self) -> int:
        """OKX's CRC32 (Bitget's is the same): the top 25 bids and asks interleaved,
        ``bid:size:ask:size:...`` as sent (a side that runs out is left out), signed 32-bit."""
        bids, asks = self.ordered(self.bid)[:25], self.ordered(self.ask)[:25]
        parts = []
        for i in range(25):
            if i < len(bids):
                parts.append(f"{bids[i][0]}:{bids[i][1]}")
            if i < len(asks):
                parts.append(f"{asks[i][0]}:{asks[i][1]}")
        return signed32(zlib.crc32(":".join(parts).encode()))

    def kraken_checksum(self, price_fmt: Callable[[str], str] = str, size_fmt: Callable[[str], str] = str) -> int:
        """Kraken's CRC32 of the top ten asks then the top ten bids, each price and size with its
        '.' and leading zeros removed; v1 checks the texts as sent, v2 the pair's precision
        (``price_fmt``/``size_fmt``)."""
        def f(x: str) -> str:
            return x.replace(".", "").lstrip("0")

        text = "".join(f(price_fmt(p)) + f(size_fmt(s)) for p, s in self.ordered(self.ask)[:10])
        text += "".join(f(price_fmt(p)) + f(size_fmt(s)) for p, s in self.ordered(self.bid)[:10])
        return zlib.crc32(text.encode())


def decimal_levels(levels) -> list[tuple[Decimal, Decimal]]:
    """A book's levels (price, size texts or numbers) as Decimals."""
    return [(Decimal(p), Decimal(s)) for p, s in levels]


def book_dict(book) -> tuple[dict, dict]:
    """A book's two sides (bids, asks) as {price: size} dicts of Decimal."""
    return ({Decimal(p): Decimal(s) for p, s in book.levels(0)}, {Decimal(p): Decimal(s) for p, s in book.levels(1)})


def signed32(x: int) -> int:
    """A CRC32 as the signed 32-bit integer venues send (Bitfinex, OKX)."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x >= 1 << 31 else x


# ------------------------------------------------------------------------------------------------
# venue references that several test modules use

def _kraken_json_number(text: str, exponent: bool) -> str:
    """A decimal string as a JSON number the way a JSON encoder writes it: no trailing zeros;
    with ``exponent``, numbers below 1 in exponent form (``2.29E-5``)."""
    d = Decimal(text).normalize()
    if exponent and 0 < d < 1:
        return f"{d:E}"
    return format(d, "f")


def kraken_v2_frames(frames, v1_instruments: dict, exponent: bool = False) -> list[tuple[int, bytes]]:
    """Kraken's v1 book frames re-written as v2 ``book`` messages (the same books, JSON numbers,
    RFC 3339 times, and the v2 checksum at the pair's precision computed by ``RefBook``)."""
    import datetime as dt

    ref: dict[str, RefBook] = {}
    out = []
    for ts, data in frames:
        msg = json.loads(data)
        if not (isinstance(msg, list) and msg[-2].startswith("book")):
            continue
        pair, dicts = msg[-1], msg[1:-2]
        inst = v1_instruments[pair]
        if "as" in dicts[0] or "bs" in dicts[0]:
            kind, book = "snapshot", RefBook()
            ref[pair] = book
            asks, bids = dicts[0].get("as", []), dicts[0].get("bs", [])
        else:
            kind, book = "update", ref[pair]
            asks = [lv for d in dicts for lv in d.get("a", [])]
            bids = [lv for d in dicts for lv in d.get("b", [])]
        for lv in asks:
            book.set("a", lv[0], lv[1])
        for lv in bids:
            book.set("b", lv[0], lv[1])
        book.truncate(1000)
        pd, sd = inst.price_decimals, inst.size_decimals
        checksum = book.kraken_checksum(lambda p: format(Decimal(p), f".{pd}f"),
                                        lambda q: format(Decimal(q), f".{sd}f"))
        newest = max(lv[2] for lv in asks + bids)
        stamp = dt.datetime.fromtimestamp(int(newest.split(".")[0]), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        stamp += "." + newest.split(".")[1] + "Z"

        def levels(side):
            return ",".join('{"price":%s,"qty":%s}' % (_kraken_json_number(lv[0], exponent),
                                                       _kraken_json_number(lv[1], exponent))
                            for lv in side)

        body = ('{"channel":"book","type":"%s","data":[{"symbol":"%s","bids":[%s],"asks":[%s],"checksum":%d,'
                '"timestamp":"%s"}]}' % (kind, inst.symbol.replace("-", "/"), levels(bids), levels(asks), checksum,
                                         stamp))
        out.append((ts, body.encode()))
    return out


class BitfinexReference:
    """Bitfinex websocket v2 channel data (P0 books, trades, tickers) processed with json and
    Decimal only: an independent model of what the Bitfinex scheme must produce (its books:
    symbol -> side "b"/"a" -> Decimal price -> (price text, amount text) as the wire wrote them)."""

    def __init__(self) -> None:
        self.channels: dict[int, tuple[str, str]] = {}  # chanId -> (channel, symbol)
        self.books: dict[str, dict[str, dict[Decimal, tuple[str, str]]]] = {}  # symbol -> side -> price
        self.lob = self.spread = self.snapshots = 0
        self.trade_rows: list[tuple[str, list]] = []
        self.tickers = 0

    def top(self, symbol: str):
        b = self.books[symbol]
        bid = max(b["b"]) if b["b"] else None
        ask = min(b["a"]) if b["a"] else None
        return (bid, b["b"][bid][1] if bid is not None else None, ask, b["a"][ask][1] if ask is not None else None)

    def feed(self, payload: bytes) -> None:
        msg = json.loads(payload, parse_float=str, parse_int=str)
        if isinstance(msg, dict):
            if msg.get("event") == "subscribed":
                self.channels[int(msg["chanId"])] = (msg["channel"], msg["symbol"])
            return
        channel, symbol = self.channels.get(int(msg[0]), ("?", "?"))
        body = msg[1]
        if body == "hb":
            return
        if channel == "trades":
            self.trade_rows.append((symbol, body))
        elif channel == "ticker":
            self.tickers += 1
        elif channel == "book":
            if isinstance(body[0], list):
                self.books[symbol] = {"b": {}, "a": {}}
                self.snapshots += 1
                rows, before = body, (None, None, None, None)
            else:
                rows, before = [body], self.top(symbol)
            book = self.books[symbol]
            for price, count, amount in rows:
                side = "a" if amount.startswith("-") else "b"
                if int(count) == 0:
                    if book[side].pop(Decimal(price), None) is not None:
                        self.lob += 1
                else:
                    book[side][Decimal(price)] = (price, amount)
                    self.lob += 1
            after = self.top(symbol)
            if after != before and (isinstance(body[0], list) is False or any(x is not None for x in after)):
                self.spread += 1

    def checksum(self, symbol: str) -> int:
        """Bitfinex's documented checksum: top 25 bids and asks interleaved, price:amount."""
        book = self.books[symbol]
        bids = [book["b"][k] for k in sorted(book["b"], reverse=True)[:25]]
        asks = [book["a"][k] for k in sorted(book["a"])[:25]]
        parts = []
        for i in range(max(len(bids), len(asks))):
            parts += [f"{p}:{a}" for p, a in (bids[i:i + 1] + asks[i:i + 1])]
        return signed32(zlib.crc32(":".join(parts).encode()))

    def levels(self, symbol: str, side: str) -> list[tuple[Decimal, Decimal]]:
        book = self.books[symbol][side]
        return sorted(((k, abs(Decimal(v[1]))) for k, v in book.items()), reverse=(side == "b"))


def bitfinex_renumbered(data: bytes, seq: int) -> bytes:
    """A Bitfinex channel message with its sequence number set to ``seq`` (number texts kept)."""
    msg = json.loads(data, parse_float=str, parse_int=str)
    msg[-1] = str(seq)
    return bitfinex_dumps(msg)


def bitfinex_dumps(msg) -> bytes:
    """JSON with the number texts kept (numbers were parsed as str: written back bare)."""
    def enc(x):
        if isinstance(x, list):
            return "[" + ",".join(enc(v) for v in x) + "]"
        if isinstance(x, str) and x and (x[0].isdigit() or x[0] == "-") and x not in ("-",):
            return x
        return json.dumps(x)
    return enc(msg).encode()


def bitfinex_with_checksums(frames: Iterable[tuple[int, bytes]],
                            corrupt_at: int | None = None) -> list[tuple[int, bytes]]:
    """Bitfinex frames (recv_ns, data) with the ``[chanId,"cs",CHECKSUM,seq]`` message Bitfinex
    would have sent after every book message (computed by ``BitfinexReference``; the one after
    frame ``corrupt_at`` made wrong), sequence numbers renumbered to make room."""
    ref = BitfinexReference()
    out = []
    seq = 0
    for i, (ts, data) in enumerate(frames):
        ref.feed(data)
        if data[:1] != b"[":
            out.append((ts, data))
            continue
        seq += 1
        out.append((ts, bitfinex_renumbered(data, seq)))
        msg = json.loads(data)
        channel, symbol = ref.channels.get(msg[0], ("?", "?"))
        if channel == "book" and isinstance(msg[1], list):
            cs = ref.checksum(symbol)
            if i == corrupt_at:
                cs ^= 1
            seq += 1
            out.append((ts, f'[{msg[0]},"cs",{cs},{seq}]'.encode()))
    return out


class RefOrders:
    """An independent reference of one level-3 book: order id -> [side, price, size] (Decimal),
    and per (side, price) the queue of order ids in time priority. Subclasses generate a venue's
    message stream from it (``BitstampOrders``, ``CoinbaseOrders``)."""

    def __init__(self, rng=None) -> None:
        self.rng = rng  # (a random.Random, for the subclasses' generated streams)
        self.orders: dict[Any, list] = {}
        self.queue: dict[tuple[Any, Decimal], list] = {}

    def rest(self, oid, side, price: Decimal, size: Decimal) -> None:
        """An order joins the back of its level."""
        self.orders[oid] = [side, price, size]
        self.queue.setdefault((side, price), []).append(oid)

    def unrest(self, oid) -> None:
        """An order leaves the book."""
        side, price, _ = self.orders.pop(oid)
        q = self.queue[(side, price)]
        q.remove(oid)
        if not q:
            del self.queue[(side, price)]

    def prices(self, side, descending: bool) -> list[Decimal]:
        return sorted({p for (s, p) in self.queue if s == side}, reverse=descending)


class BitstampReference:
    """Bitstamp's full order book per market (``diff_order_book``): the REST snapshot, then the
    diffs newer than it, on ``RefBook``s; ``rest_body`` is the exchange's answer as of now."""

    def __init__(self) -> None:
        self.books: dict[str, RefBook] = {}
        self.snap_mts: dict[str, int] = {}
        self.last_mts: dict[str, int] = {}
        self.lob = 0
        self.spread = 0

    def snapshot(self, pair: str, body: dict) -> None:
        book = self.books[pair] = RefBook()
        self.lob += book.load("b", body["bids"]) + book.load("a", body["asks"])
        self.spread += 1
        self.snap_mts[pair] = self.last_mts[pair] = int(body["microtimestamp"])

    def diff(self, pair: str, data: dict) -> None:
        mts = int(data["microtimestamp"])
        if pair not in self.books or mts <= self.snap_mts[pair]:
            return
        self.last_mts[pair] = mts
        book = self.books[pair]
        before = book.top()
        for key, side in (("bids", "b"), ("asks", "a")):
            for p, q in data[key]:
                self.lob += book.set(side, p, q)
        if book.top() != before:
            self.spread += 1

    def rest_body(self, pair: str) -> bytes:
        book, mts = self.books[pair], self.last_mts[pair]
        return json.dumps({"timestamp": str(mts // 10**6), "microtimestamp": str(mts),
                           "bids": [[str(p), str(s)] for p, s in book.levels("b")],
                           "asks": [[str(p), str(s)] for p, s in book.levels("a")]}).encode()


@functools.lru_cache(maxsize=4)
def _bitstamp_snapshots(path: Path) -> dict[str, dict]:
    rest = open_capture(path).rest
    return {url.rsplit("/", 1)[1]: json.loads(answers[0][1]) for url, answers in rest.items() if "/order_book/" in url}


def bitstamp_snapshots(capture: str | Path) -> dict[str, dict]:
    """pair -> the REST order-book snapshot a Bitstamp capture recorded for it (shared: read only)."""
    return _bitstamp_snapshots(_path(capture))


def bitstamp_book_at(capture: str | Path, pair: str, index: int, skip=()) -> bytes:
    """The REST answer for ``pair``'s book after the capture's frames ..index (frames in
    ``skip`` left out): the exchange's state then, from ``BitstampReference``."""
    ref = BitstampReference()
    snaps = bitstamp_snapshots(capture)
    for i, f in enumerate(capture_frames(capture)[: index + 1]):
        if f.kind != RECV or i in skip:
            continue
        d = json.loads(f.data)
        if d["channel"] == f"diff_order_book_{pair}":
            if d["event"] == "bts:subscription_succeeded":
                ref.snapshot(pair, snaps[pair])
            elif d["event"] == "data":
                ref.diff(pair, d["data"])
    return ref.rest_body(pair)


def bitstamp_order_msg(event: str, pair: str, oid: int, side: int, price: str, amount: str, mts: int) -> dict:
    """A documented ``live_orders`` message."""
    return {"data": {"id": oid, "id_str": str(oid), "order_type": side, "datetime": str(mts // 10**6),
                     "microtimestamp": str(mts), "amount": float(amount), "amount_str": amount,
                     "price": float(price), "price_str": price}, "channel": f"live_orders_{pair}", "event": event}


class BitstampOrders(RefOrders):
    """Bitstamp's order book as ``live_orders`` shows it, for one market: a random stream of
    order_created / order_changed / order_deleted (``step``) and the REST snapshot (``snapshot``)."""

    def __init__(self, rng, pair: str = "ethusd") -> None:
        super().__init__(rng)
        self.pair = pair
        self.mts = 1_641_343_700_000_000
        self.next_id = 1_443_875_700_000_000

    def snapshot(self) -> dict:
        out = {"timestamp": str(self.mts // 10**6), "microtimestamp": str(self.mts), "bids": [], "asks": []}
        for side, key in ((0, "bids"), (1, "asks")):
            for price in self.prices(side, side == 0):
                out[key] += [[f"{price:.2f}", f"{self.orders[o][2]:.8f}", str(o)] for o in self.queue[(side, price)]]
        return out

    def step(self) -> dict:
        self.mts += self.rng.randint(1, 3000)
        r = self.rng.random()
        if r < 0.45 or len(self.orders) < 5:
            side = self.rng.randint(0, 1)
            price = Decimal(self.rng.randint(380000, 380499) if side == 0 else self.rng.randint(380500, 381000)) / 100
            amount = Decimal(self.rng.randint(1, 10**8)) / 10**8
            self.next_id += self.rng.randint(1, 1000)
            self.rest(self.next_id, side, price, amount)
            return bitstamp_order_msg("order_created", self.pair, self.next_id, side, f"{price:.2f}", f"{amount:.8f}",
                                      self.mts)
        oid = self.rng.choice(sorted(self.orders))
        side, price, amount = self.orders[oid]
        if r < 0.75:
            self.unrest(oid)
            return bitstamp_order_msg("order_deleted", self.pair, oid, side, f"{price:.2f}", f"{amount:.8f}", self.mts)
        new = (amount * Decimal(self.rng.randint(1, 99)) / 100).quantize(Decimal("0.00000001"))
        if new == 0:
            return self.step()
        self.orders[oid][2] = new
        return bitstamp_order_msg("order_changed", self.pair, oid, side, f"{price:.2f}", f"{new:.8f}", self.mts)


def bitstamp_l3_stream(seed=3, n=600):
    """(reference, snapshot at the start, ``n`` live_orders messages, the snapshot after each)."""
    import random

    rng = random.Random(seed)
    ref = BitstampOrders(rng)
    for _ in range(30):
        ref.step()
    start = ref.snapshot()
    msgs, snaps = [], []
    for _ in range(n):
        msgs.append(ref.step())
        snaps.append(ref.snapshot())
    return ref, start, msgs, snaps


class CoinbaseOrders(RefOrders):
    """Coinbase's matching engine as the ``full`` channel shows it, for one product: a random
    stream of received/open/match/done/change messages (``step``) in the documented shapes, and
    the level-3 REST snapshot (``snapshot``)."""

    def __init__(self, rng, product: str = "BTC-USD") -> None:
        super().__init__(rng)
        self.product = product
        self.seq = 1000
        self.trade_id = 1
        self.n = 0
        self.t = 1_618_677_817_000_000  # µs

    def _oid(self) -> str:
        self.n += 1
        return f"{self.n:08x}-0000-4000-8000-{self.rng.getrandbits(48):012x}"

    def _msg(self, kind: str, **fields) -> dict:
        self.seq += 1
        self.t += self.rng.randint(1, 5000)
        s, us = divmod(self.t, 1_000_000)
        import datetime as dt

        when = dt.datetime.fromtimestamp(s, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{us:06d}Z"
        return {"type": kind, "product_id": self.product, "sequence": self.seq, "time": when, **fields}

    def best(self, side):
        prices = [p for (s, p) in self.queue if s == side]
        if not prices:
            return None
        return max(prices) if side == "buy" else min(prices)

    def seed(self, n: int = 40) -> None:
        for _ in range(n):
            side = self.rng.choice(["buy", "sell"])
            price = Decimal(self.rng.randint(9900, 9999) if side == "buy" else self.rng.randint(10001, 10100)) / 100
            self.rest(self._oid(), side, price, Decimal(self.rng.randint(1, 400)) / 100)

    def snapshot(self) -> dict:
        out = {"sequence": self.seq, "bids": [], "asks": []}
        for side, key in (("buy", "bids"), ("sell", "asks")):
            for price in self.prices(side, side == "buy"):
                for oid in self.queue[(side, price)]:
                    out[key].append([f"{price:.2f}", f"{self.orders[oid][2]:.8f}", oid])
        return out

    def step(self) -> list[dict]:
        r = self.rng.random()
        out = []
        if r < 0.35 or not self.orders:  # a passive limit order
            side = self.rng.choice(["buy", "sell"])
            best_other = self.best("sell" if side == "buy" else "buy")
            base = Decimal(self.rng.randint(9900, 9999) if side == "buy" else self.rng.randint(10001, 10100)) / 100
            if best_other is not None and ((side == "buy" and base >= best_other)
                                           or (side == "sell" and base <= best_other)):
                base = best_other - Decimal("0.01") if side == "buy" else best_other + Decimal("0.01")
            size = Decimal(self.rng.randint(1, 400)) / 100
            oid = self._oid()
            out.append(self._msg("received", order_id=oid, size=f"{size:.8f}", price=f"{base:.2f}", side=side,
                                 order_type="limit"))
            out.append(self._msg("open", order_id=oid, price=f"{base:.2f}", remaining_size=f"{size:.8f}", side=side))
            self.rest(oid, side, base, size)
        elif r < 0.55:  # an aggressive order: matches the best makers
            taker_side = self.rng.choice(["buy", "sell"])
            maker_side = "sell" if taker_side == "buy" else "buy"
            if self.best(maker_side) is None:
                return self.step()
            want = Decimal(self.rng.randint(1, 600)) / 100
            oid = self._oid()
            out.append(self._msg("received", order_id=oid, size=f"{want:.8f}", side=taker_side, order_type="market"))
            while want > 0 and self.best(maker_side) is not None:
                price = self.best(maker_side)
                maker = self.queue[(maker_side, price)][0]
                fill = min(want, self.orders[maker][2])
                out.append(self._msg("match", trade_id=self.trade_id, maker_order_id=maker, taker_order_id=oid,
                                     side=maker_side, size=f"{fill:.8f}", price=f"{price:.2f}"))
                self.trade_id += 1
                want -= fill
                self.orders[maker][2] -= fill
                if self.orders[maker][2] == 0:
                    self.unrest(maker)
                    out.append(self._msg("done", order_id=maker, side=maker_side, reason="filled", price=f"{price:.2f}",
                                         remaining_size="0"))
            out.append(self._msg("done", order_id=oid, side=taker_side, reason="filled"))
        elif r < 0.75:  # a cancel
            oid = self.rng.choice(sorted(self.orders))
            side, price, size = self.orders[oid]
            self.unrest(oid)
            out.append(self._msg("done", order_id=oid, side=side, reason="canceled", price=f"{price:.2f}",
                                 remaining_size=f"{size:.8f}"))
        elif r < 0.87:  # self-trade prevention: smaller, same place
            oid = self.rng.choice(sorted(self.orders))
            side, price, size = self.orders[oid]
            new = (size / 2).quantize(Decimal("0.00000001"))
            if new == 0:
                return self.step()
            self.orders[oid][2] = new
            out.append(self._msg("change", reason="STP", order_id=oid, side=side, old_size=f"{size:.8f}",
                                 new_size=f"{new:.8f}", price=f"{price:.2f}"))
        else:  # modify_order: a new price, to the back of its new level
            oid = self.rng.choice(sorted(self.orders))
            side, price, size = self.orders[oid]
            other = self.best("sell" if side == "buy" else "buy")
            new_price = price - Decimal("0.01") if side == "buy" else price + Decimal("0.01")
            if other is not None and ((side == "buy" and new_price >= other)
                                      or (side == "sell" and new_price <= other)):
                return self.step()
            self.unrest(oid)
            self.rest(oid, side, new_price, size)
            out.append(self._msg("change", reason="modify_order", order_id=oid, side=side, old_size=f"{size:.8f}",
                                 new_size=f"{size:.8f}", old_price=f"{price:.2f}", new_price=f"{new_price:.2f}"))
        return out


def coinbase_l3_stream(seed=7, steps=400):
    """(reference, snapshot at the start, the full channel's messages of ``steps`` steps, the
    snapshot after each message)."""
    import random

    rng = random.Random(seed)
    ref = CoinbaseOrders(rng)
    ref.seed()
    start = ref.snapshot()
    msgs, snaps = [], []
    for _ in range(steps):
        for msg in ref.step():
            msgs.append(msg)
            snaps.append(ref.snapshot())
    return ref, start, msgs, snaps


# ------------------------------------------------------------------------------------------------
# processes: the CLI, the simulator, the cluster


def child_env(extra: dict | None = None, base: dict | None = None) -> dict:
    """An environment for a child ``python -m atomfast.cli``: this checkout first on PYTHONPATH."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def run_cli(*args: Any, env: dict | None = None, timeout: float = 120, cwd: str | Path = ROOT,
            **kw) -> subprocess.CompletedProcess:
    """``python -m atomfast.cli ARGS`` from the project root, or ``cwd`` (stdout and stderr
    captured as text)."""
    return subprocess.run([sys.executable, "-m", "atomfast.cli", *map(str, args)], cwd=cwd, env=child_env(base=env),
                          capture_output=True, text=True, timeout=timeout, **kw)


def cli_summary(stderr: str) -> dict:
    """The ``summary: {...}`` line a run or replay prints last on stderr."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("summary: ")]
    assert lines, stderr[-3000:]
    return json.loads(lines[-1][len("summary: "):])


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGTERM, and SIGKILL if it has not exited within ``timeout`` s; its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class SimProcess:
    """``atomfast simulate`` in a subprocess; ``url``/``rest_url`` from its ``listening`` line."""

    def __init__(self, *args: Any, timeout: float = 20.0) -> None:
        cmd = [sys.executable, "-m", "atomfast.cli", "simulate", *map(str, args)]
        if "--port" not in args:
            cmd += ["--port", "0"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("listening ") or not line:
                break
        if not line.startswith("listening "):
            self.close()
            raise AssertionError(f"simulator did not start: {line!r} {self.proc.stderr.read()[-2000:]}")
        parts = line.split()
        assert parts[0] == "listening" and parts[2] == "rest", line
        self.url, self.rest_url = parts[1], parts[3]

    def close(self) -> int:
        code = stop_process(self.proc)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code

    def __enter__(self) -> "SimProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


async def ws_collect(url: str, send: Sequence[bytes] = (), want: int = 0):
    """A plain picows client: connects and sends ``send``. Returns (collector, transport):
    ``collector.frames`` [(type, payload)] of every data frame, ``collector.closed_with`` (the
    close code); ``collector.event`` is set at the close or once ``want`` frames have come."""
    import asyncio

    from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

    class Collector(WSListener):
        def __init__(self) -> None:
            super().__init__()
            self.frames: list[tuple[WSMsgType, bytes]] = []
            self.closed_with: int | None = None
            self.event = asyncio.Event()
            self.want = 0

        def on_ws_frame(self, transport, frame) -> None:
            if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
                self.frames.append((frame.msg_type, frame.get_payload_as_bytes()))
                if self.want and len(self.frames) >= self.want:
                    self.event.set()
            elif frame.msg_type is WSMsgType.CLOSE:
                self.closed_with = frame.get_close_code().value
                transport.send_close(WSCloseCode.OK)
                transport.disconnect()
                self.event.set()

    transport, client = await ws_connect(Collector, url)
    client.want = want
    for msg in send:
        transport.send(WSMsgType.TEXT, msg)
    return client, transport


async def ws_receive(url: str, send: Sequence[bytes], want: int, timeout: float = 20.0):
    """``ws_collect``, then wait (``timeout`` s at most) for ``want`` frames or the close."""
    import asyncio

    client, transport = await ws_collect(url, send, want)
    await asyncio.wait_for(client.event.wait(), timeout)
    return client, transport


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll ``predicate`` until it is true (its value is returned) or ``timeout`` s pass (fails)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


#: the cluster's markets, served by the recorded Kraken captures:
#: (id, exchange, base, quote, type, the normalised symbol they map to)
MARKETS = [
    (1, "kraken", "BTC", "CHF", "SPOT", "BTC-CHF"),
    (2, "kraken", "ETH", "CHF", "SPOT", "ETH-CHF"),
    (3, "kraken", "ADA", "BTC", "SPOT", "ADA-BTC"),
    (4, "KRAKEN", "KSM", "XBT", "SPOT", "KSM-BTC"),  # level4 spelling, Kraken's XBT alias
    (5, "kraken", "OMG", "USD", "SPOT", "OMG-USD"),
    (6, "kraken", "WAVES", "EUR", "SPOT", "WAVES-EUR"),
    (7, "kraken-futures", "XRP", "USD", "INVERSE", "XRP-USD-PERP"),
    (8, "kraken-futures", "LTC", "USD", "PERP", "LTC-USD-PERP"),
    (9, "kraken-futures", "ETH", "USD", "PERP", "ETH-USD-PERP"),
]
CLUSTER_BOOK = "cryptofeed/KRAKEN.ws.50.0"
CLUSTER_FUTURES = "cryptofeed/KRAKEN_FUTURES.ws.1.0"
DATA_TOPICS = ("lob", "spread", "trades")


def serve_env(bootstrap: str, prefix: str, extra: dict | None = None) -> dict:
    """The environment of an ``atomfast serve`` node: this broker and prefix, no inherited
    Kafka/registry/RPC settings, no HOSTNAME (the node is named on its command line)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SCHEMA_REGISTRY", "ATOMFAST_RPC"))}
    env = child_env({"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_TOPIC_PREFIX": prefix}, base=env)
    env.pop("HOSTNAME", None)
    env.update(extra or {})
    return env


class ServeProcess:
    """`atomfast serve` in a subprocess; ``address`` from its ``listening`` line."""

    def __init__(self, name: str, env: dict, *args: Any, timeout: float = 60.0, log_dir: str | None = None) -> None:
        self.name = name
        self.log_path = Path(log_dir or tempfile.gettempdir()) / f"serve-{name}-{uuid.uuid4().hex[:6]}.log"
        self._log = open(self.log_path, "w")
        cmd = [sys.executable, "-m", "atomfast.cli", "serve", "--port", "0", "--hostname", name, *map(str, args)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True)
        self.address = ""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline and self.proc.poll() is None:
            if sel.select(timeout=0.2):
                line = self.proc.stdout.readline()
                if line.startswith("listening "):
                    break
        sel.close()
        if not line.startswith("listening "):
            self.kill()
            raise AssertionError(f"serve {name} did not start: {line!r}\n{self.log_tail()}")
        self.address = line.split()[1]

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text()[-n:]
        except OSError:
            return ""

    def kill(self) -> None:
        """kill -9."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def terminate(self, timeout: float = 30.0) -> int:
        return stop_process(self.proc, timeout)

    def close(self) -> None:
        self.terminate()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()


def stub_for(address: str):
    """(level4 Control stub, its gRPC channel) for a node's address."""
    import grpc

    from .control import level4_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(address)
    return pb_grpc.ControlStub(channel), channel


def market_msg(mid, exchange, base, quote, kind):
    from .control import level4_pb2 as pb

    return pb.Market(id=mid, base_symbol=base, quote_symbol=quote, exchange_name=exchange, type=kind)


def _consumer(bootstrap: str, **extra):
    from confluent_kafka import Consumer

    return Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False, **extra})


def node_reports(bootstrap: str, prefix: str, cluster: str = "atomfast") -> dict:
    """The latest report of every node, read from the nodes topic."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from .control.cluster import NodeRecord

    topic = f"{prefix}{cluster}.nodes"
    c = _consumer(bootstrap)
    try:
        _low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out: dict = {}
        pos = 0
        deadline = time.monotonic() + 20
        while pos < high and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None or msg.error():
                continue
            pos = msg.offset() + 1
            name = msg.key().decode()
            out[name] = None if msg.value() is None else NodeRecord.from_json(json.loads(msg.value()))
        return {k: v for k, v in out.items() if v is not None}
    finally:
        c.close()


class ClusterHarness:
    """Simulators (the recorded Kraken spot book and Kraken Futures captures, looping) + nodes
    for one cluster (its own topic prefix)."""

    def __init__(self, bootstrap: str, prefix: str | None = None, log_dir: str | None = None) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix or f"cl-{uuid.uuid4().hex[:8]}."
        self.log_dir = log_dir
        self.sims = [SimProcess(fixture_path(CLUSTER_BOOK), "--loop"),
                     SimProcess(fixture_path(CLUSTER_FUTURES), "--loop")]
        self.nodes: dict[str, ServeProcess] = {}
        self.channels: list = []

    def endpoint_args(self) -> list[str]:
        return ["--endpoint", f"kraken={self.sims[0].url}", "--endpoint", f"kraken-futures={self.sims[1].url}"]

    def start_node(self, name: str, *args: Any, env_extra: dict | None = None) -> ServeProcess:
        old = self.nodes.pop(name, None)
        if old is not None:
            old.close()
        node = ServeProcess(name, serve_env(self.bootstrap, self.prefix, env_extra), *self.endpoint_args(), *args,
                            log_dir=self.log_dir)
        self.nodes[name] = node
        return node

    def stub(self, name: str):
        stub, channel = stub_for(self.nodes[name].address)
        self.channels.append(channel)
        return stub

    def close(self) -> None:
        for ch in self.channels:
            ch.close()
        for node in self.nodes.values():
            node.close()
        for sim in self.sims:
            sim.close()

    def __enter__(self) -> "ClusterHarness":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start_markets(stub, markets=MARKETS) -> dict[int, str]:
    """StartMarket each; market id -> the node the reply names."""
    from .control import level4_pb2 as pb

    owners = {}
    for mid, exchange, base, quote, kind, _sym in markets:
        reply = stub.StartMarket(pb.StartMarketRequest(market=market_msg(mid, exchange, base, quote, kind)), timeout=60)
        assert reply.market.id == mid
        owners[mid] = reply.node.name
    return owners


def all_online(stub, ids) -> bool:
    from .control import level4_pb2 as pb

    return all(stub.IsMarketOnline(pb.MarketOnlineRequest(market=pb.Market(id=i)), timeout=10).is_online for i in ids)


def first_records_after(bootstrap: str, prefix: str, keys: set[bytes], since_ms: int, timeout: float,
                        topics=DATA_TOPICS) -> dict[bytes, int]:
    """key -> Kafka timestamp (ms) of its first record in ``topics`` at or after ``since_ms``."""
    from confluent_kafka import TopicPartition

    c = _consumer(bootstrap, **{"fetch.wait.max.ms": 50})
    try:
        md = c.list_topics(timeout=10)
        parts = [TopicPartition(f"{prefix}{t}", p, since_ms) for t in topics
                 for p in (md.topics[f"{prefix}{t}"].partitions if f"{prefix}{t}" in md.topics else {})]
        c.assign(c.offsets_for_times(parts, timeout=10))
        first: dict[bytes, int] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not keys <= set(first):
            for msg in c.consume(1000, 0.2):
                if msg.error():
                    continue
                ts = msg.timestamp()[1]
                k = msg.key()
                if ts >= since_ms and k in keys and (k not in first or ts < first[k]):
                    first[k] = ts
        return first
    finally:
        c.close()


def statuses(bootstrap: str, prefix: str, since_ms: int = 0, timeout: float = 10.0) -> list[dict]:
    """Decoded records of the status topic (from ``since_ms``)."""
    from confluent_kafka import TopicPartition

    from .avro import decode

    c = _consumer(bootstrap)
    try:
        tp = TopicPartition(f"{prefix}status", 0, since_ms)
        _low, high = c.get_watermark_offsets(tp, timeout=10)
        start = c.offsets_for_times([tp], timeout=10)[0]
        c.assign([start])
        out = []
        pos = start.offset if start.offset >= 0 else high
        deadline = time.monotonic() + timeout
        while pos < high and time.monotonic() < deadline:
            for msg in c.consume(1000, 0.2):
                if msg.error():
                    continue
                pos = msg.offset() + 1
                out.append(decode(msg.value(), "status")[1])
        return out
    finally:
        c.close()


def measure_failover(h: ClusterHarness, victim: str, markets=MARKETS) -> dict:
    """kill -9 ``victim``; seconds until each of its markets produces again (first record of
    its key after the kill), and how the cluster looks afterwards."""
    reports = node_reports(h.bootstrap, h.prefix)
    moved = sorted(reports[victim].markets) if victim in reports else []
    symbols = {m[0]: f"{m[1].lower()}:{m[5]}".encode() for m in markets}
    h.nodes[victim].kill()
    t_kill = time.time()
    since = int(t_kill * 1000) + 1
    keys = {symbols[i] for i in moved}
    first = first_records_after(h.bootstrap, h.prefix, keys, since, timeout=60.0)
    per_market = {i: (first[symbols[i]] - since) / 1000 if symbols[i] in first else None for i in moved}
    missing = [i for i, t in per_market.items() if t is None]
    return {"moved": moved, "per_market": per_market, "missing": missing, "t_kill": t_kill,
            "seconds": max((t for t in per_market.values() if t is not None), default=0.0)}


# ------------------------------------------------------------------------------------------------
# Kafka: a real broker for the tests marked `kafka` (and the benchmarks that need one)
#
# `kafka_bootstrap` (session): KAFKA_BOOTSTRAP_SERVERS when set (an external broker), else a
# single-node KRaft broker started from tools/kafka/broker.py under a pytest tmp dir and stopped
# at the end of the session. A test that needs Kafka and cannot have it FAILS (never skips).
# `kafka_broker`: the KafkaBroker object, for tests that stop/kill/restart it; skipped when an
# external broker is in use (we must not restart someone else's broker). Such a test may leave the
# broker stopped: the fixture starts it again afterwards.

KAFKA_BROKER_TOOL = ROOT / "tools" / "kafka" / "broker.py"


def load_broker_tool():
    """tools/kafka/broker.py as a module (``KafkaBroker``)."""
    import importlib.util

    name = "atomfast_tools_kafka_broker"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, KAFKA_BROKER_TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


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


@pytest.fixture(scope="session")
def _kafka_session(tmp_path_factory):
    """(bootstrap, KafkaBroker or None) for the whole session."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
    if external:
        _check_reachable(external)
        yield external, None
        return
    problem = None
    try:
        broker = load_broker_tool().KafkaBroker(tmp_path_factory.mktemp("kafka"))
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


def read_topics(bootstrap: str, names: list[str]) -> dict[str, list[tuple[bytes, bytes]]]:
    """Every (key, value) of each topic, partition by partition, in offset order (one consumer)."""
    from confluent_kafka import TopicPartition

    c = _consumer(bootstrap, **{"auto.offset.reset": "earliest"})
    try:
        md = c.list_topics(timeout=10).topics
        want: dict[tuple[str, int], int] = {}
        starts = []
        for name in names:
            for p in sorted(md[name].partitions):
                low, high = c.get_watermark_offsets(TopicPartition(name, p), timeout=10)
                if high > low:
                    want[(name, p)] = high - low
                    starts.append(TopicPartition(name, p, low))
        got: dict[tuple[str, int], list] = {tp: [] for tp in want}
        c.assign(starts)
        left = sum(want.values())
        deadline = time.monotonic() + 60
        while left and time.monotonic() < deadline:
            for m in c.consume(min(5000, left), 2):
                assert m.error() is None, m.error()
                got[(m.topic(), m.partition())].append((m.key(), m.value()))
                left -= 1
        assert not left, f"{left} messages not read"
        return {name: [kv for (t, _p), kvs in sorted(got.items()) if t == name for kv in kvs] for name in names}
    finally:
        c.close()


def murmur2(data: bytes) -> int:
    """Kafka's org.apache.kafka.common.utils.Utils.murmur2 (a signed 32-bit result)."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    for i in range(length // 4):
        i4 = i * 4
        k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r  # Java's >>> on an int: logical shift of the unsigned value
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    tail = length & ~3
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's Java client picks for ``key``: toPositive(murmur2(key)) % partitions."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
