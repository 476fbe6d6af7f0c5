"""Section ``throughput`` of ``python -m bench``: per venue, µs per received websocket frame.

Implementations, timed side by side in one process, interleaved run by run (for each run: for
each venue: every implementation), the median of the runs reported:

1. ``floor``: msgspec decoding only (``bench/floor.py``), frames preloaded as ``bytes``.
2. ``atomfast``: the same preloaded frames through ``Replay.run`` (scheme, book, checksums,
   events, Avro encoding, ``NullSink``) with the capture's reader replaced by the preloaded
   list; the ``Replay`` (instrument listings parsed) is built before the clock starts.
   ``atomfast incl. reading``: ``Replay(open_capture(...), ...).run()`` whole, as
   bench/bench_replay.py times it (reading the files and parsing the listings included, as
   cryptofeed's playback does).
3. ``atomfast -> Kafka``: as 2 with the real ``KafkaSink`` to a real local broker (a fresh topic
   prefix per run), until the sink's final flush returns with every message delivered.
4. ``cryptofeed``: bench/bench_replay.py's ``_cryptofeed_round`` (playback of the same files,
   ``checksum_validation=True``, every event serialised to bytes).

The split of 2 (decode, normalise, book, encode, produce) is measured from one extra,
untimed, recording run per venue: see ``SPLIT_METHOD``. Two more untimed passes per venue: the
Python bytecode per frame, by function and by part (``python_profile``), and the check that the
floor makes the scheme's decode calls (``floor_check``). ``comparison``: this run against the
previous one (bench/previous.py), per venue.
"""
from __future__ import annotations

import asyncio
import copy
import gc
import os
import sys
import tempfile
import uuid
from pathlib import Path

from . import report as R
from .floor import FLOORS

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures"

KAFKA_VENUES = ["kraken-book", "binance-usdm-session", "binance-futures"]
QUICK_VENUES = ["kraken-book", "binance-futures"]
#: the issue's targets
TARGET_FLOOR = 2.0  # atomfast / floor, at most, on these venues:
TARGET_FLOOR_VENUES = ("kraken-book", "binance-usdm-session")
TARGET_CRYPTOFEED = 10.0  # cryptofeed / atomfast, at least, wherever cryptofeed has the venue
CRYPTOFEED_MAX_RUNS = 3

IMPLS = ["floor", "atomfast", "atomfast_reading", "kafka", "cryptofeed"]
LABELS = {
    "floor": "floor (msgspec decode)",
    "atomfast": "atomfast",
    "atomfast_reading": "atomfast incl. reading",
    "kafka": "atomfast -> Kafka",
    "cryptofeed": "cryptofeed",
}
SPLIT_PARTS = ["decode", "normalise", "book", "encode", "produce"]

SPLIT_METHOD = """\
How the split is measured (per venue, µs per received frame, each part the median of the runs).
It follows the path the null-sink run takes: the null sink needs no records (`records_needed =
False`), so the pipeline hands the schemes, for the high-volume topics (`lob`, `lob_l3`,
`trades`, `ticker`, `spread`: `atomfast._book.SHAPES`), an `AvroRows` per topic into which the
framed Avro values are written as the events are made (by the book's `apply_sides` and
`spread_into`, by the typed writers `quote`/`trade`, by `append` for a scheme's `emit`), and the
sink reads that buffer (`write_rows`); only the other topics (`status`, `candle`,
`funding_rate`, ...) still go tuple -> Rust encoder -> `sink.write`. One untimed recording run
per venue, on that same path, logs the work the parts below replay:

- **decode** = the floor (column 1): the scheme's own msgspec decoders on every frame, nothing else.
- **book** = the L2Book/L3Book work of the run, replayed, *including the `lob` and `spread`
  values the book writes into the AvroRows* (`apply_sides`, `spread_into`) and the checksums.
  The recording run puts a thin Python proxy in place of `L2Book`/`L3Book` in the atomfast
  modules (module attributes patched for that run only, restored after) which logs every book
  constructed and every method call made on it (`apply_sides`, `apply`, `best`, `truncate`,
  `levels`, `count`, `checksum_kraken`, `spread_into`, ...) with its arguments. The timed part
  replays that exact call log on fresh compiled books, with an AvroRows of the topic's framing
  and shape (not the run's) where the call wrote into the pipeline's: `for method, args, rows in
  calls: method(*args)` (then `rows.clear()` where the call appended to a list, and every
  {clear_every}th call writing into an AvroRows, to keep it small: emptying a frame's rows is the
  pipeline's work, *normalise*), so it includes one Python call per book call, as the scheme
  pays. Exact-decimal parsing done outside the book (`parse_ticks` in validation and in
  Binance's `_ticks`) is not book work here: it counts to normalise.
- **encode** = the events the scheme's Python writes itself, plus the Rust encoder for the rest.
  (a) *writers*: every `append(record)` (a scheme's `emit` of a SHAPES topic: the pipeline
  appends the tuple to the topic's AvroRows, which encodes it as the Rust encoder would),
  `quote(...)` and `trade(...)` (the typed writers: they parse the exchange's decimal strings,
  check the ranges and write the value; that parsing counts here, not to normalise) the run
  made, logged in the recording run (the scheme's `emit` and `rows` wrapped for that run) and
  replayed in order on one AvroRows per topic (not the run's; emptied at a frame's end once it
  holds {clear_every} rows, to keep it small): one Python call per write, as the scheme pays
  (for `emit`, its call into the pipeline stays in normalise, the `append` is here). (b) *Rust*:
  {encode_call}, over the exact per-frame, per-topic record batches of the topics outside
  SHAPES (captured by the recording sink).
- **produce** = the null sink over the same batches: its compiled `write_rows(topic, rows)`
  over one AvroRows per SHAPES batch of the run, holding that batch's events (rebuilt before
  the clock by replaying the logs above), and its compiled `write(topic, records, keys,
  values)` over the other batches (what the null sink does: count messages and bytes), each
  called from a Python loop here (the pipeline calls them from C).
- **normalise** = atomfast (column 2) − decode − book − encode − produce: everything else
  (dispatch, validation, sequence checks, event tuples and floats made outside the book and
  the writers, the calls of `emit`, and the compiled frame core: the driver's loop and
  counters, the pipeline's per-frame batching and emptying of the rows). A residual: it
  carries the noise of the other measurements.

Check of the logs, {bytes_match}: replayed in the run's order on fresh books and rows, the book
calls and the writes give, batch for batch, the very keys and values the run handed the sink.
"""


# ---------------------------------------------------------------------------------------------
# venues


def cases() -> dict:
    from .bench_replay import CASES

    return CASES


class Venue:
    """A capture preloaded in memory: every frame (``Frame`` tuples) and the received bytes."""

    def __init__(self, case: str):
        from atomfast.capture import RECV, open_capture

        exchange, rel, feed = cases()[case]
        self.case = case
        self.exchange = exchange
        self.rel = rel
        self.feed = feed
        # ``repo:PATH``: a capture of the repository's tests/data (see tests/test_captures.py)
        self.paths = [ROOT / r[len("repo:"):] if r.startswith("repo:") else FIXTURES / r for r in rel]
        missing = [str(p) for p in self.paths if not p.exists()]
        if missing:
            raise FileNotFoundError(f"capture files absent: {missing}")
        self.capture = open_capture(*self.paths)
        self.frames = list(self.capture.frames())
        self.recv = [f.data for f in self.frames if f.kind == RECV]

    def preloaded(self):
        """A copy of the capture whose ``frames()`` hands out the preloaded list (no reading)."""
        cap = copy.copy(self.capture)
        frames = self.frames
        cap.frames = lambda: iter(frames)
        return cap

    def replay(self, sink):
        from atomfast.replay import Replay

        return Replay(self.preloaded(), self.exchange, sink)


# ---------------------------------------------------------------------------------------------
# the implementations: each returns seconds of the timed part


def time_floor(v: Venue) -> float:
    dt, n = R.timed(FLOORS[v.case], v.recv)
    v.floor_errors = len(v.recv) - n
    return dt


def _check(v: Venue, metrics) -> None:
    assert metrics.frames == len(v.recv), f"{v.case}: {metrics.frames} frames, {len(v.recv)} expected"
    assert metrics.checksum_failed == 0, f"{v.case}: {metrics.checksum_failed} checksums failed"


def time_atomfast(v: Venue) -> float:
    from atomfast.sinks.null import NullSink

    replay = v.replay(NullSink())
    dt, metrics = R.timed(replay.run)
    _check(v, metrics)
    v.metrics = metrics
    return dt


def time_atomfast_reading(v: Venue) -> float:
    from atomfast.capture import open_capture
    from atomfast.replay import Replay
    from atomfast.sinks.null import NullSink

    def whole():
        return Replay(open_capture(*v.paths), v.exchange, NullSink()).run()

    dt, metrics = R.timed(whole)
    _check(v, metrics)
    return dt


#: the parts of the traced profile, by where a function's code is (first match)
PROFILE_PARTS = [
    ("venue", "the venue's handler (`atomfast/exchanges/`)"),
    ("kit", "the kit (`atomfast/kit/`: dispatch, book sync)"),
    ("scheme", "the scheme base (`atomfast/scheme.py`)"),
    ("records", "event records built by a NamedTuple's `__new__`"),
    ("sink", "a sink's Python (`atomfast/sinks/`; the null sink's `write_rows` and `write` are compiled)"),
    ("core", "frame core in Python (`replay.py`, `driver.py`, `pipeline.py`, `feed.py`, `processor.py`)"),
    ("other", "anything else (msgspec, the standard library, ...)"),
]
_CORE_FILES = ("atomfast/replay.py", "atomfast/driver.py", "atomfast/pipeline.py", "atomfast/feed.py",
               "atomfast/processor.py")


def _profile_key(code) -> tuple[str, str]:
    """(``dir/file.py:function`` as the report names it, its part of PROFILE_PARTS)."""
    path = code.co_filename.replace("\\", "/")
    name = "/".join(path.rsplit("/", 2)[-2:]) + ":" + code.co_name
    if path == "<string>" and code.co_name == "<lambda>":
        # a NamedTuple's __new__ (collections.namedtuple builds it with eval): an event record
        return "<string>:<lambda> (a NamedTuple's __new__)", "records"
    if "/atomfast/exchanges/" in path:
        return name, "venue"
    if "/atomfast/kit/" in path:
        return name, "kit"
    if path.endswith("atomfast/scheme.py"):
        return name, "scheme"
    if "/atomfast/sinks/" in path:
        return name, "sink"
    if path.endswith(_CORE_FILES):
        return name, "core"
    return name, "other"


def python_profile(v: Venue, top: int = 8) -> dict:
    """The Python bytecode atomfast executes per received frame, by function and by part: one
    untimed pass of ``Replay.run`` on the preloaded frames with opcode tracing (``sys.settrace``,
    ``f_trace_opcodes``). Deterministic (no clock), so it shows what a change removed. Compiled
    code (the frame core ``atomfast._frame``, the books, msgspec, the Avro encoder) runs no
    bytecode and is not in it; the Python it calls back (the scheme's ``on_frame``, the sink's
    ``write``) is."""
    from atomfast.sinks.null import NullSink

    replay = v.replay(NullSink())
    replay.run()  # first-call costs (msgspec's type info, lazy imports) are not the frame's
    replay = v.replay(NullSink())
    counts: dict = {}  # code object -> opcodes

    def tracer(frame, event, arg):
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            counts[code] = counts.get(code, 0) + 1
        return tracer

    sys.settrace(tracer)
    try:
        replay.run()
    finally:
        sys.settrace(None)
    frames = len(v.recv)
    by_name: dict[str, float] = {}
    parts = {part: 0.0 for part, _ in PROFILE_PARTS}
    for code, n in counts.items():
        name, part = _profile_key(code)
        by_name[name] = by_name.get(name, 0.0) + n / frames
        parts[part] += n / frames
    ranked = sorted(by_name.items(), key=lambda kv: -kv[1])
    return {"opcodes_per_frame": sum(counts.values()) / frames, "parts": parts,
            "functions": [(name, n) for name, n in ranked[:top]]}


def floor_check(v: Venue) -> dict:
    """Does the floor decode what atomfast decodes? The msgspec decode calls of one untimed
    ``Replay.run`` (received frames only: not the REST answers) and of one floor pass, counted
    by decoder type (``bench.floor.decoder_calls``)."""
    from atomfast.sinks.null import NullSink

    from .floor import decoder_calls

    scheme = decoder_calls(v.replay(NullSink()).run)
    floor = decoder_calls(FLOORS[v.case], v.recv)
    diff = [(k, scheme.get(k, 0), floor.get(k, 0)) for k in sorted(set(scheme) | set(floor))
            if scheme.get(k, 0) != floor.get(k, 0)]
    return {"same": not diff, "decodes": sum(scheme.values()), "differences": diff}


def time_cryptofeed(v: Venue) -> float:
    from .bench_replay import _cryptofeed_round

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        dt, _ = R.timed(_cryptofeed_round, v.feed, v.paths)
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    return dt


# --- Kafka ------------------------------------------------------------------------------------


class Broker:
    """KAFKA_BOOTSTRAP_SERVERS, or a single-node KRaft broker of the test suite's machinery
    (tools/kafka/broker.py) in a temporary directory, stopped by ``close()``."""

    def __init__(self):
        self.external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
        self.broker = None
        self.tmp = None
        if self.external:
            self.bootstrap = self.external
            return
        sys.path.insert(0, str(ROOT)) if str(ROOT) not in sys.path else None
        from atomfast.testing import load_broker_tool as _load_broker_tool

        tool = _load_broker_tool()
        self.tmp = tempfile.TemporaryDirectory(prefix="atomfast-bench-kafka-")
        self.broker = tool.KafkaBroker(Path(self.tmp.name) / "kafka")
        self.bootstrap = self.broker.start()

    def describe(self) -> str:
        if self.external:
            return f"external broker KAFKA_BOOTSTRAP_SERVERS={self.external}"
        return "a local single-node KRaft broker started by tools/kafka/broker.py for this run"

    def close(self) -> None:
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.tmp is not None:
            self.tmp.cleanup()
            self.tmp = None


def _topics() -> list[str]:
    from atomfast.events import TOPICS

    return list(TOPICS)


WARM_UP_MESSAGES = len(_topics())


def _kafka_sink(bootstrap: str):
    from atomfast.events import TOPICS
    from atomfast.sinks.kafka import KafkaSink

    sink = KafkaSink({"bootstrap.servers": bootstrap}, topic_prefix=f"bench-{uuid.uuid4().hex[:10]}.")
    sink.ensure_topics(list(TOPICS), partitions=1)
    # before the clock: connected, producer id obtained, every topic's metadata and leader known
    # (a running collector has them); a throwaway message per topic (the topics are deleted after)
    for topic in TOPICS:
        sink.write(topic, [()], [b"warm:up"], [b"warm-up"])
    assert sink.flush(30) == 0, "the broker did not take the warm-up messages"
    return sink


class _Quiet:
    def log(self, *args, **kwargs):
        pass


_QUIET = _Quiet()


def _drop_topics(sink) -> None:
    """Delete the run's topics (they would pile up on an external broker); best effort."""
    try:
        from confluent_kafka.admin import AdminClient

        from atomfast.events import TOPICS

        admin = AdminClient({"bootstrap.servers": sink._conf["bootstrap.servers"], "logger": _QUIET})
        for f in admin.delete_topics([sink.topic_prefix + t for t in TOPICS], operation_timeout=30).values():
            try:
                f.result(30)
            except Exception:
                pass
    except Exception:
        pass


def time_kafka(v: Venue, bootstrap: str) -> float:
    """Replay.run to a KafkaSink: ends with ``pipeline.close()`` -> ``KafkaSink.close()``, whose
    flush returns once every message is delivered (checked from the delivery reports)."""
    sink = _kafka_sink(bootstrap)
    try:
        replay = v.replay(sink)
        dt, metrics = R.timed(replay.run)
        _check(v, metrics)
        st = sink.stats()
        events = sum(metrics.events.values())
        assert st["failed_total"] == 0, f"{v.case}: {st['failed_total']} Kafka deliveries failed"
        delivered = st["delivered_total"] - WARM_UP_MESSAGES
        assert delivered == events, f"{v.case}: {delivered} of {events} events delivered"
    finally:
        _drop_topics(sink)
    return dt


# --- the split ----------------------------------------------------------------------------------


class _RecordingSink:
    """Takes what the pipeline writes, as the null sink is handed it (``records_needed`` False:
    the pipeline gives the high-volume topics, ``SHAPES``, their ``AvroRows`` as for the null
    sink): ``write`` batches (topic, records, keys, values) of the other topics, and per
    ``write_rows`` the (topic, keys, values) of the buffer, with an end marker in the call log."""

    framing = "single_object"
    records_needed = False

    def __init__(self, log: "BookLog"):
        self.batches: list[tuple[str, list, list, list]] = []
        self.rows_batches: list[tuple[str, list, list]] = []
        self.log = log

    def write(self, topic, records, keys, values):
        self.batches.append((topic, list(records), list(keys), list(values)))

    def write_rows(self, topic, rows):
        self.log.end_rows(topic, rows)
        keys, values = rows.take()  # (the pipeline empties the rows after this call anyway)
        self.rows_batches.append((topic, keys, values))

    def poll(self):
        pass

    def flush(self, timeout=30.0):
        return 0

    def close(self):
        pass

    def stats(self):
        return {}


#: the replays of the split empty their AvroRows every so many writes (see ``BookLog.bound``)
CLEAR_EVERY = 64

#: what the scheme's Python calls on a topic's AvroRows (``emit`` of a SHAPES topic is an
#: ``append``): encoding, logged as such
_WRITERS = ("append", "quote", "trade")


class _RowsProxy:
    """Stands for a topic's ``AvroRows`` in the scheme's hands during the recording run: logs the
    calls the scheme's Python makes on it (``append``, ``quote``, ``trade``, ``withdraw``) and
    forwards them; the book proxies hand the real rows to the compiled books. ``rows.__class__``
    is ``AvroRows``, as the scheme's checks expect."""

    __slots__ = ("_rows", "_log")

    def __init__(self, rows, log: "BookLog"):
        self._rows = rows
        self._log = log

    @property
    def __class__(self):
        from atomfast._book import AvroRows

        return AvroRows

    def __len__(self):
        return len(self._rows)

    def __getattr__(self, name):
        attr = getattr(self._rows, name)
        if name not in _WRITERS and name != "withdraw":
            return attr
        log, rows = self._log, self._rows

        def call(*args):
            return log.rows_call(rows, name, attr, args)

        return call


class _RowsOf:
    """Stands, in a logged book call, for the ``rows_of`` the call got (``L2Book.apply_update``:
    ``topic -> rows``): the rows key of each topic the book asked for (``keys``)."""

    __slots__ = ("keys",)

    def __init__(self):
        self.keys: dict[str, int] = {}


class BookLog:
    """Every L2Book/L3Book built during a run and every method call made on them; and, in the
    same order (``seq``), every write the scheme's Python made into a topic's AvroRows and every
    end of a frame's rows (the sink's ``write_rows``)."""

    def __init__(self):
        self.books: list[tuple[type, tuple, dict]] = []
        #: (book, method, args, kwargs, raised, indexes of output arguments)
        self.calls: list[tuple[int, str, tuple, dict, bool, tuple]] = []
        #: (rows key, method, args, raised): append / quote / trade / withdraw on an AvroRows
        self.writes: list[tuple[int, str, tuple, bool]] = []
        #: the order of it all: ("book", index in calls, {rows key: its length before}),
        #: ("rows", index in writes, length before), ("end", rows key)
        self.seq: list[tuple] = []
        #: rows key (id of the pipeline's AvroRows) -> (topic, prefix, shape, the rows)
        self.rows: dict[int, tuple] = {}
        #: the scheme's ``rows`` as ``wrap_scheme`` made it, and the pipeline's behind it: a book
        #: call handed the former (``rows_of``) gets one that hands the book the real rows
        self.rows_fn = self.real_rows = None

    # --- the recording

    def _key(self, rows, topic: str | None = None) -> int:
        key = id(rows)
        if key not in self.rows:
            self.rows[key] = (topic, rows.prefix, rows.shape, rows)  # (kept alive: the key stays its id)
        elif topic and self.rows[key][0] is None:
            self.rows[key] = (topic, *self.rows[key][1:])
        return key

    def rows_call(self, rows, name: str, method, args: tuple):
        key, before = self._key(rows), len(rows)
        index = len(self.writes)
        self.seq.append(("rows", index, before))
        try:
            result = method(*args)
        except Exception:
            self.writes.append((key, name, args, True))
            raise
        self.writes.append((key, name, args, False))
        return result

    def end_rows(self, topic: str, rows) -> None:
        self.seq.append(("end", self._key(rows, topic)))

    def wrap_scheme(self, scheme) -> None:
        """The scheme's ``emit`` and ``rows`` (the pipeline's) through the log, for this scheme
        instance only: a SHAPES topic's rows are handed out as a ``_RowsProxy``, its ``emit``
        logged as the ``append`` the pipeline makes."""
        from atomfast._book import AvroRows

        real_emit, real_rows = scheme.emit, scheme.rows
        log = self

        def rows(topic):
            r = real_rows(topic)
            if type(r) is AvroRows:
                log._key(r, topic)
                return _RowsProxy(r, log)
            return r

        def emit(topic, record):
            r = real_rows(topic)
            if type(r) is AvroRows:
                log._key(r, topic)
                return log.rows_call(r, "append", lambda rec: real_emit(topic, rec), (record,))
            return real_emit(topic, record)

        scheme.emit, scheme.rows = emit, rows
        self.rows_fn, self.real_rows = rows, real_rows

    def proxy(self, real: type) -> type:
        log = self

        class BookProxy:
            __slots__ = ("_book", "_index")

            def __init__(self, *args, **kwargs):
                self._book = real(*args, **kwargs)
                self._index = len(log.books)
                log.books.append((real, args, kwargs))

            def __getattr__(self, name):
                attr = getattr(self._book, name)
                if not callable(attr):
                    return attr  # properties (price_decimals, ...): not book work
                index = self._index
                calls = log.calls

                def call(*args, **kwargs):
                    # the scheme's rows go to the book as the pipeline's AvroRows themselves
                    if any(type(a) is _RowsProxy for a in args):
                        args = tuple(a._rows if type(a) is _RowsProxy else a for a in args)
                    # an output: a list argument that grows (the event rows of a records path),
                    # an AvroRows (apply_sides', spread_into's encoded rows): the replay gets a
                    # fresh one there
                    before = [len(a) if a.__class__ is list else -1 for a in args]
                    avro = {i: log._key(a) for i, a in enumerate(args) if _is_avro(a)}
                    lengths = {k: len(args[i]) for i, k in avro.items()}
                    logged = args
                    if log.rows_fn is not None and any(a is log.rows_fn for a in args):
                        # the scheme's rows (apply_update's rows_of): the book gets the pipeline's
                        # AvroRows themselves, each topic's logged (with its length before the
                        # book writes into it) for the replays to hand it a fresh one
                        marker, real_rows = _RowsOf(), log.real_rows

                        def rows_of(topic):
                            r = real_rows(topic)
                            if _is_avro(r):
                                key = marker.keys[topic] = log._key(r, topic)
                                lengths.setdefault(key, len(r))
                            return r

                        logged = tuple(marker if a is log.rows_fn else a for a in args)
                        args = tuple(rows_of if a is log.rows_fn else a for a in args)
                    log.seq.append(("book", len(calls), lengths))
                    try:
                        result = attr(*args, **kwargs)
                    except Exception:
                        calls.append((index, name, logged, kwargs, True, _outputs(args, before, avro)))
                        raise
                    calls.append((index, name, logged, kwargs, False, _outputs(args, before, avro)))
                    return result

                return call

            def __len__(self):
                log.seq.append(("book", len(log.calls), {}))
                log.calls.append((self._index, "__len__", (), {}, False, ()))
                return len(self._book)

            def __contains__(self, item):
                log.seq.append(("book", len(log.calls), {}))
                log.calls.append((self._index, "__contains__", (item,), {}, False, ()))
                return item in self._book

        BookProxy.__name__ = BookProxy.__qualname__ = f"Recording{real.__name__}"
        return BookProxy

    def patch(self):
        """Put the proxies in place of the compiled classes in every atomfast module; returns
        the undo list."""
        from atomfast import _book

        proxies = {_book.L2Book: self.proxy(_book.L2Book), _book.L3Book: self.proxy(_book.L3Book)}
        self._proxies = {proxy: real for real, proxy in proxies.items()}
        undo = []
        for mod in _atomfast_modules():
            for attr in ("L2Book", "L3Book"):
                real = getattr(mod, attr, None)
                if real in proxies:
                    undo.append((mod, attr, real))
                    setattr(mod, attr, proxies[real])
        return undo

    def unpatch(self, undo) -> None:
        for mod, attr, real in undo:
            setattr(mod, attr, real)
        # a module first imported while patched took a proxy from atomfast.book: put it right too
        for mod in _atomfast_modules():
            for attr in ("L2Book", "L3Book"):
                real = self._proxies.get(getattr(mod, attr, None))
                if real is not None:
                    setattr(mod, attr, real)

    # --- what the replays are built from (before the clock)

    def _fresh_rows(self):
        """rows key -> an empty AvroRows of the same topic, framing and shape, not the run's: made
        once and emptied for each replay, so that, as the pipeline's rows in a run, they know their
        keys' heads after a first pass (``record`` makes one, untimed)."""
        from atomfast._book import AvroRows

        rows = getattr(self, "_replay_rows", None)
        if rows is None:
            rows = self._replay_rows = {key: AvroRows(prefix, shape)
                                        for key, (_t, prefix, shape, _r) in self.rows.items()}
        for r in rows.values():
            r.clear()
        return rows

    def _book_call(self, books, call, rows_for) -> tuple:
        """(method, args, the output argument or None) of one logged book call on ``books``."""
        import functools

        index, name, args, kwargs, raised, outputs = call
        method = getattr(books[index], name)
        out = None
        for i, a in enumerate(args):
            if type(a) is _RowsOf:  # rows_of: the topics' rows of the replay
                keys = a.keys

                def rows_of(topic, keys=keys):
                    key = keys.get(topic)
                    return [] if key is None else rows_for(key)

                args = args[:i] + (rows_of,) + args[i + 1:]
                if "lob" in keys:  # the output the replay empties now and then
                    out = rows_for(keys["lob"])
        if outputs:
            subst = {}
            for i in outputs:
                a = args[i]
                subst[i] = rows_for(self._key(a)) if _is_avro(a) else []
            out = next(iter(subst.values()))
            args = tuple(subst.get(i, a) for i, a in enumerate(args))
        if kwargs:
            method = functools.partial(method, **kwargs)
        if raised:
            method = _swallowing(method)
        return method, args, out

    def bound(self) -> list:
        """Fresh books and the book call log bound to them: [(method, args, output or None)]
        (built before the clock). An output is a fresh list per call (emptied after it), or one
        AvroRows per topic, emptied after every ``CLEAR_EVERY``-th call that writes into it: the
        pipeline's emptying of a frame's rows is the pipeline's work (*normalise*), not the
        book's; this only keeps the buffer small."""
        books = [cls(*args, **kwargs) for cls, args, kwargs in self.books]
        fresh = self._fresh_rows()
        calls, written = [], dict.fromkeys(fresh, 0)
        for call in self.calls:
            method, args, out = self._book_call(books, call, fresh.__getitem__)
            if _is_avro(out):
                key = next(k for k, r in fresh.items() if r is out)
                written[key] += 1
                if written[key] % CLEAR_EVERY:
                    out = None
            calls.append((method, args, out))
        return calls

    def writers(self) -> list:
        """The scheme's own writes into AvroRows (``append``, ``quote``, ``trade``), in order, bound
        to one AvroRows per topic (not the run's): [(method, args)] (built before the clock). The
        rows are emptied (their ``clear``) at the end of a frame once they hold ``CLEAR_EVERY``
        rows or more, to keep them small: the pipeline's emptying of every frame's rows is its
        own work (*normalise*), not the encoding. ``withdraw`` (a corrupt book's events taken
        back) is not encoding: left out."""
        fresh = self._fresh_rows()
        ops, written = [], dict.fromkeys(fresh, 0)
        for entry in self.seq:
            if entry[0] == "rows":
                key, name, args, raised = self.writes[entry[1]]
                if name == "withdraw":
                    continue
                method = getattr(fresh[key], name)
                ops.append((_swallowing(method) if raised else method, args))
                written[key] += 1
            elif entry[0] == "end" and written.get(entry[1], 0) >= CLEAR_EVERY:
                written[entry[1]] = 0
                ops.append((fresh[entry[1]].clear, ()))
        return ops

    def filled(self) -> list:
        """Every logged book call and write replayed in the run's order on fresh books and
        fresh rows, the rows taken at each end of a frame's rows: [(topic, AvroRows)], one per
        ``write_rows`` of the run, holding what the run's rows held then (checked against the
        recording by ``record``)."""
        from atomfast._book import AvroRows

        books = [cls(*args, **kwargs) for cls, args, kwargs in self.books]
        current: dict[int, AvroRows] = {}

        def rows_for(key, before=None):
            r = current.get(key)
            if r is None:
                _t, prefix, shape, _r = self.rows[key]
                r = current[key] = AvroRows(prefix, shape)
            elif before == 0 and len(r):
                r.clear()  # the run's rows were emptied without a write (a frame discarded)
            return r

        out = []
        for entry in self.seq:
            kind = entry[0]
            if kind == "book":
                call = self.calls[entry[1]]
                for key, before in entry[2].items():
                    rows_for(key, before)
                method, args, _out = self._book_call(books, call, rows_for)
                method(*args)
            elif kind == "rows":
                key, name, args, raised = self.writes[entry[1]]
                method = getattr(rows_for(key, entry[2]), name)
                (_swallowing(method) if raised else method)(*args)
            else:
                key = entry[1]
                out.append((self.rows[key][0], rows_for(key)))
                del current[key]
        return out


def _is_avro(a) -> bool:
    from atomfast._book import AvroRows

    return type(a) is AvroRows


def _atomfast_modules() -> list:
    return [mod for name, mod in list(sys.modules.items())
            if mod is not None and (name == "atomfast" or name.startswith("atomfast.")) and name != "atomfast._book"]


def _outputs(args: tuple, before: list[int], avro: dict) -> tuple:
    return tuple(i for i, (a, n) in enumerate(zip(args, before)) if (n >= 0 and len(a) != n) or i in avro)


def _swallowing(method):
    def call(*args):
        try:
            method(*args)
        except Exception:
            pass

    return call


def _replay_calls(calls) -> int:
    for method, args, out in calls:
        method(*args)
        if out is not None:
            out.clear()
    return len(calls)


def _replay_writers(ops) -> int:
    for method, args in ops:
        method(*args)
    return len(ops)


def record(v: Venue) -> dict:
    """The untimed recording run: the batches written, the book call log and the scheme's writes
    into the AvroRows, on the path the null-sink run takes (a sink with ``records_needed``
    False and ``write_rows``). Checked: the logged calls, replayed, write the very bytes the run
    handed the sink (``bytes_match``)."""
    from atomfast.sinks.null import NullSink

    log = BookLog()
    sink = _RecordingSink(log)
    replay = v.replay(sink)  # the scheme's modules imported before the patch
    log.wrap_scheme(replay.scheme)
    # the route table bound again: its compiled executors of declared shapes took the scheme's
    # ``rows``, ``emit`` and ``bad_input`` when bound, and must take the logged ones
    scheme = replay.scheme
    if getattr(scheme, "dispatch", None) is not None:
        if getattr(scheme, "_route_frame", None) is not None:
            # a scheme that reads its frames before routing them (HTX's gzip): its route table
            scheme._route_frame = scheme.dispatch.bind(scheme)
        else:
            scheme.on_frame = replay.driver.on_frame = scheme.dispatch.bind(scheme)
    undo = log.patch()
    try:
        metrics = replay.run()
    finally:
        log.unpatch(undo)
    _check(v, metrics)
    calls = len(log.calls)
    time_atomfast(v)
    assert len(log.calls) == calls, "a book proxy is still in place after the recording run"
    from atomfast.pipeline import Pipeline

    _replay_calls(log.bound())  # warm-up of the replays' rows (their keys' heads), untimed
    _replay_writers(log.writers())
    filled = log.filled()
    got = [(t, *r.take()) for t, r in filled]
    mismatch = sum(1 for a, b in zip(got, sink.rows_batches) if a != b) + abs(len(got) - len(sink.rows_batches))
    del got, filled
    rec = {"batches": sink.batches, "book": log, "pipeline": Pipeline(NullSink()), "events": dict(metrics.events),
           "checksum_ok": metrics.checksum_ok,  # the encoder a Pipeline builds for the NullSink
           # (the SHAPES batches' bytes were for the check: their number is kept)
           "rows_batches": len(sink.rows_batches), "bytes_match": not mismatch, "rows_mismatch": mismatch,
           "writer_calls": sum(1 for k, name, _a, _r in log.writes if name in _WRITERS)}
    rec["encode_plan"] = _encode_plan(rec)
    return rec


def _filled_rows(rec: dict) -> list:
    """[(topic, AvroRows)]: the run's SHAPES batches as the null sink's ``write_rows`` got them,
    rebuilt (before the clock) by replaying the logs."""
    return rec["book"].filled()


def _encode_plan(rec: dict) -> tuple:
    """(function, [(first argument, records)], description): the encoder call the pipeline
    makes per frame and topic for the topics that still go through the Rust encoder (those
    outside SHAPES: ``encode_keyed``, keys and values in one native call, where the pipeline
    has it; else ``encode_many``), with the topic lookups done before the clock."""
    p = rec["pipeline"]
    batches = rec["batches"]
    # the pipeline's own call (native/frame/_frame.pyx): the encoder's topic index, then its Rust
    # ``encode_keyed`` without the Python method's frame
    native = getattr(getattr(p.encoder, "_native", None), "encode_keyed", None)
    index = getattr(p.encoder, "_index", None)
    if native is not None and index is not None:
        items = [(index[t] if t in index else p.encoder._lookup(t), r) for t, r, _k, _v in batches]
        return native, items, ("the pipeline's own native call, `encode_keyed` (Avro values and Kafka keys "
                               "in one call)")
    if hasattr(p.encoder, "encode_keyed"):
        return p.encoder.encode_keyed, [(t, r) for t, r, _k, _v in batches], "`encoder.encode_keyed(topic, records)`"
    return p.encoder.encode_many, [(t, r) for t, r, _k, _v in batches], "`encoder.encode_many(topic, records)`"


def time_encode_writers(rec: dict) -> float:
    """The scheme's writes into AvroRows (``append``, ``quote``, ``trade``) replayed in order on
    fresh rows (``BookLog.writers``, built before the clock)."""
    return R.timed(_replay_writers, rec["book"].writers())[0]


def time_encode_rust(rec: dict) -> float:
    """The Rust encoder over the batches of the topics outside SHAPES, as the pipeline calls it."""
    encode, items, _ = rec["encode_plan"]

    def run():
        for first, records in items:
            encode(first, records)

    return R.timed(run)[0]


def time_produce_null(rec: dict) -> float:
    """The null sink's compiled ``write_rows`` over the run's SHAPES batches (AvroRows holding
    each batch's events) and ``write`` over the other topics' batches."""
    from atomfast.sinks.null import NullSink

    sink = NullSink()
    write, write_rows = sink.write, sink.write_rows
    batches = rec["batches"]
    if "filled" not in rec:
        rec["filled"] = _filled_rows(rec)
    filled = rec["filled"]

    def run():
        for topic, records, keys, values in batches:
            write(topic, records, keys, values)
        for topic, rows in filled:
            write_rows(topic, rows)

    dt = R.timed(run)[0]
    assert sink.messages.total() == sum(len(k) for _t, _r, k, _v in batches) + sum(len(r) for _t, r in filled)
    return dt


def time_produce_kafka(rec: dict, bootstrap: str) -> float:
    """KafkaSink.write_rows of the run's SHAPES batches (AvroRows rebuilt for this pass: a
    write the sink does not take from the buffer empties them) and KafkaSink.write of the other
    topics' batches (keys, encoded values) to the broker, then flush: the wall time until every
    message is delivered."""
    sink = _kafka_sink(bootstrap)
    batches = rec["batches"]
    filled = _filled_rows(rec)
    expected = sum(len(k) for _t, _r, k, _v in batches) + sum(len(r) for _t, r in filled)
    try:
        def run():
            write, write_rows = sink.write, sink.write_rows
            for topic, records, keys, values in batches:
                write(topic, records, keys, values)
            for topic, rows in filled:
                write_rows(topic, rows)
            return sink.flush(60)

        dt, remaining = R.timed(run)
        assert remaining == 0
        st = sink.stats()
        assert st["failed_total"] == 0
        assert st["delivered_total"] - WARM_UP_MESSAGES == expected, \
            f"{st['delivered_total'] - WARM_UP_MESSAGES} of {expected} messages delivered"
    finally:
        _drop_topics(sink)
        sink.close()
    return dt


def time_book(rec: dict) -> float:
    calls = rec["book"].bound()
    return R.timed(_replay_calls, calls)[0]


def time_book_deltas(case: str, data) -> float:
    """Cross-check for kraken-book / binance-usdm-session: bench/bench_book.py's delta
    extraction of the whole capture into fresh L2Books (Kraken: with truncate + checksum per
    update; Binance: best() after each change of the top, as the scheme's spread event)."""
    from .bench_book import CHECKSUMS, replay_checksums

    if case == "kraken-book":
        events, scales = data
        return R.timed(replay_checksums, events, scales, CHECKSUMS["atomfast"])[0]
    deltas, scales = data
    return R.timed(_apply_deltas, deltas, scales)[0]


def _apply_deltas(deltas, scales):
    from atomfast._book import TOP_CHANGED, L2Book

    books = [L2Book(p, s) for p, s in scales]
    for i, side, price, size in deltas:
        book = books[i]
        if book.apply(side, price, size) & TOP_CHANGED:
            book.best()
    return books


def _book_deltas(case: str):
    from . import bench_book

    if case == "kraken-book":
        return bench_book._kraken_updates()
    if case == "binance-usdm-session":
        return bench_book._binance_deltas(None)
    return None


# ---------------------------------------------------------------------------------------------
# the section


def run(runs: int, quick: bool, kafka: bool = True, venues: list[str] | None = None, log=print) -> dict:
    all_cases = cases()
    selected = venues or (QUICK_VENUES if quick else list(all_cases))
    unknown = [c for c in selected if c not in all_cases]
    if unknown:
        raise ValueError(f"unknown venue(s) {unknown}; known: {', '.join(all_cases)}")
    try:
        import cryptofeed  # noqa: F401

        have_cryptofeed = True
    except ImportError:
        have_cryptofeed = False
    cf_runs = min(runs, CRYPTOFEED_MAX_RUNS)
    results: dict = {"runs": runs, "cryptofeed_runs": cf_runs if have_cryptofeed else 0, "quick": quick,
                     "venues": {}, "kafka": {"enabled": False, "venues": [], "note": ""}, "notes": []}
    loaded: dict[str, Venue] = {}
    for case in selected:
        try:
            loaded[case] = Venue(case)
        except Exception as exc:
            results["notes"].append(f"{case}: skipped ({type(exc).__name__}: {exc})")
    kafka_cases = [c for c in KAFKA_VENUES if c in loaded] if kafka else []
    broker = None
    if kafka_cases:
        try:
            broker = Broker()
            results["kafka"].update(enabled=True, venues=kafka_cases, note=broker.describe())
        except BaseException as exc:  # a missing Java/Maven: section 3 is skipped, said so
            results["kafka"]["note"] = f"no broker ({type(exc).__name__}: {exc}); atomfast -> Kafka skipped"
            kafka_cases = []
    elif not kafka:
        results["kafka"]["note"] = "skipped (--no-kafka)"

    try:
        recs: dict[str, dict] = {}
        deltas: dict[str, object] = {}
        for case, v in loaded.items():
            entry = results["venues"][case] = {
                "exchange": v.exchange, "files": v.rel, "frames": len(v.recv), "cryptofeed": v.feed,
                "times": {k: [] for k in IMPLS + ["split_" + p for p in ("encode", "encode_writers", "encode_rust",
                                                                           "produce", "book", "book_deltas",
                                                                           "kafka_produce")]},
            }
            log(f"  {case}: {len(v.recv):,} frames; recording run for the split")
            recs[case] = record(v)
            entry["events"] = recs[case]["events"]
            entry["checksum_ok"] = recs[case]["checksum_ok"]
            entry["book_calls"] = len(recs[case]["book"].calls)
            entry["batches"] = len(recs[case]["batches"]) + recs[case]["rows_batches"]
            entry["rows_batches"] = recs[case]["rows_batches"]
            entry["writer_calls"] = recs[case]["writer_calls"]
            entry["bytes_match"] = recs[case]["bytes_match"]
            if not recs[case]["bytes_match"]:
                results["notes"].append(f"{case}: the split's logs, replayed, do not give the run's bytes on "
                                        f"{recs[case]['rows_mismatch']} batch(es): its book, encode and produce "
                                        "parts are not exact there")
            results["encode_call"] = recs[case]["encode_plan"][2]
            if not quick:
                try:
                    d = _book_deltas(case)
                except BaseException as exc:  # pytest.skip from bench_book's capture(): absent file
                    d = None
                    results["notes"].append(f"{case}: no book cross-check ({type(exc).__name__}: {exc})")
                if d is not None:
                    deltas[case] = d
            # untimed, deterministic: the Python bytecode per frame, and the floor's decodes
            # against the scheme's
            entry["python_profile"] = python_profile(v)
            entry["floor_check"] = floor_check(v)
            # warm-up (imports, first-call costs), not timed
            time_floor(v)
            time_atomfast(v)
        if kafka_cases:  # a fresh broker (and its JIT) is slower at first: one throwaway pass each
            log("  kafka warm-up")
            for case in (kafka_cases[:1] if quick else kafka_cases):
                time_kafka(loaded[case], broker.bootstrap)
        if have_cryptofeed and not quick:
            log("  cryptofeed warm-up")
            for case, v in loaded.items():
                if v.feed:
                    try:
                        time_cryptofeed(v)
                    except Exception as exc:
                        results["venues"][case]["cryptofeed_error"] = f"{type(exc).__name__}: {exc}"

        # The benchmark's own data (preloaded frames, recorded batches and book calls: millions
        # of objects) must not make the timed code's garbage collections slower than they are
        # in a collector: move it out of the collector's view.
        gc.collect()
        gc.freeze()
        for r in range(runs):
            log(f"  run {r + 1}/{runs}")
            for case, v in loaded.items():
                t = results["venues"][case]["times"]
                t["floor"].append(time_floor(v))
                t["atomfast"].append(time_atomfast(v))
                t["atomfast_reading"].append(time_atomfast_reading(v))
                if case in kafka_cases:
                    t["kafka"].append(time_kafka(v, broker.bootstrap))
                if have_cryptofeed and v.feed and r < cf_runs and "cryptofeed_error" not in results["venues"][case]:
                    try:
                        t["cryptofeed"].append(time_cryptofeed(v))
                    except Exception as exc:
                        results["venues"][case]["cryptofeed_error"] = f"{type(exc).__name__}: {exc}"
                rec = recs[case]
                writers, rust = time_encode_writers(rec), time_encode_rust(rec)
                t["split_encode_writers"].append(writers)
                t["split_encode_rust"].append(rust)
                t["split_encode"].append(writers + rust)
                t["split_produce"].append(time_produce_null(rec))
                t["split_book"].append(time_book(rec))
                if case in deltas:
                    t["split_book_deltas"].append(time_book_deltas(case, deltas[case]))
                if case in kafka_cases:
                    t["split_kafka_produce"].append(time_produce_kafka(rec, broker.bootstrap))
                results["venues"][case]["floor_errors"] = v.floor_errors
    finally:
        gc.unfreeze()
        if broker is not None:
            broker.close()
    _summarise(results)
    return results


def _summarise(results: dict) -> None:
    for case, e in results["venues"].items():
        frames = e["frames"]
        us = {k: (R.median(v) / frames * 1e6 if v else None) for k, v in e["times"].items()}
        e["us_per_frame"] = us
        floor, af, afr, cf = us["floor"], us["atomfast"], us["atomfast_reading"], us["cryptofeed"]
        e["ratios"] = {
            "atomfast_floor": af / floor if af and floor else None,
            "cryptofeed_atomfast_reading": cf / afr if cf and afr else None,
            "cryptofeed_atomfast": cf / af if cf and af else None,
            "kafka_atomfast": us["kafka"] / af if us["kafka"] and af else None,
        }
        if af and floor:
            book, enc, prod = us["split_book"] or 0.0, us["split_encode"] or 0.0, us["split_produce"] or 0.0
            e["split"] = {"decode": floor, "book": book, "encode": enc, "produce": prod,
                          "normalise": af - floor - book - enc - prod,
                          "encode_writers": us.get("split_encode_writers"), "encode_rust": us.get("split_encode_rust")}


# ---------------------------------------------------------------------------------------------
# Markdown and figures


def markdown(results: dict, previous: dict | None = None, previous_source: str = "") -> str:
    """The section; ``previous``: the summary of the run to compare against (bench/previous.py),
    None where there is none (``previous_source`` says why)."""
    venues = results["venues"]
    runs, cf_runs = results["runs"], results["cryptofeed_runs"]
    out = ["## Throughput: µs per received websocket frame, per venue", ""]
    out.append(
        f"Median of {runs} run{'s' if runs != 1 else ''} per figure (cryptofeed: {cf_runs}, its rounds are slow, "
        "bitstamp's ~5 s), "
        "all in one process, the implementations interleaved within each run; one untimed warm-up "
        "pass first. Frames are the capture's received websocket frames (the denominator of every "
        "column). The benchmark's own data (preloaded frames, the split's recordings) is moved out of "
        "the garbage collector's view (`gc.freeze()`) before the timed runs, so that it does not slow "
        "the collections of the code under test. Columns:")
    out.append("")
    out.append("1. **floor**: msgspec decoding only, each frame into the scheme's own Structs with the "
               "decoder(s) its `Dispatch` and handlers pick (`bench/floor.py`); frames preloaded in memory.")
    out.append("2. **atomfast**: `Replay.run` on the same preloaded frames (the capture reader replaced "
               "by the list): scheme, validation, book, checksums, events, Avro encoding, `NullSink`; "
               "`checksum_failed == 0` asserted. **incl. reading**: `Replay(open_capture(...)).run()` "
               "whole: reading the files and parsing the recorded instrument listings included, as "
               "cryptofeed's playback does.")
    kafka = results["kafka"]
    if kafka["enabled"]:
        out.append(f"3. **atomfast -> Kafka**: as 2 with the real `KafkaSink` (default producer settings: "
                   f"lz4, linger 5 ms, acks=all, idempotent; one partition per topic; a fresh topic prefix "
                   f"per run) to {kafka['note']}, timed until the final flush returns with every message "
                   f"delivered. Only for {', '.join(kafka['venues'])}, to keep the run short. Wall time: "
                   f"librdkafka's threads and the broker share the machine's cores with the replay, and "
                   f"the final wait for the last acknowledgements (linger 5 ms + the broker's round trip) "
                   f"weighs on a short capture.")
    else:
        out.append(f"3. **atomfast -> Kafka**: {kafka['note'] or 'not run'}.")
    out.append("4. **cryptofeed** 2.4: `raw_data_collection.playback` of the same files "
               "(bench/bench_replay.py `_cryptofeed_round`: `checksum_validation=True`, every event "
               "serialised to bytes), where it can replay the capture; it reads its files inside the "
               "round, so compare it with *incl. reading*.")
    out.append("")
    rows = []
    for case, e in venues.items():
        us, rt = e["us_per_frame"], e["ratios"]
        target_floor = (R.verdict(rt["atomfast_floor"], TARGET_FLOOR, True) if case in TARGET_FLOOR_VENUES
                        else R.ratio(rt["atomfast_floor"]))
        cf_note = "" if e["cryptofeed"] else " (cannot replay)"
        if e.get("cryptofeed_error"):
            cf_note = " (failed)"
        rows.append([
            case, f"{e['frames']:,}", R.num(us["floor"]), R.num(us["atomfast"]), R.num(us["atomfast_reading"]),
            R.num(us["kafka"]), R.num(us["cryptofeed"]) + cf_note, target_floor,
            R.verdict(rt["cryptofeed_atomfast_reading"], TARGET_CRYPTOFEED, False),
            R.verdict(rt["cryptofeed_atomfast"], TARGET_CRYPTOFEED, False),
        ])
    out.append(R.table(
        ["venue", "frames", "(1) floor", "(2) atomfast", "(2) incl. reading", "(3) -> Kafka", "(4) cryptofeed",
         "(2)/(1), target ≤ 2.0", "(4)/(2 incl. reading), target ≥ 10", "(4)/(2), target ≥ 10"],
        rows))
    out.append("")
    out.append(f"Targets (issue \"Performance to the floor\"): (2)/(1) ≤ {TARGET_FLOOR} on "
               f"{' and '.join(TARGET_FLOOR_VENUES)} (other venues: ratio shown, no target); cryptofeed at "
               f"least {TARGET_CRYPTOFEED:.0f}x slower than atomfast wherever it has the venue.")
    errs = {c: e.get("floor_errors") for c, e in venues.items() if e.get("floor_errors")}
    if errs:
        out.append("")
        out.append("Frames the floor's decoders refused (counted, not aborted): "
                   + ", ".join(f"{c} {n}" for c, n in errs.items()) + ".")
    bad = {c: e["cryptofeed_error"] for c, e in venues.items() if e.get("cryptofeed_error")}
    for c, err in bad.items():
        out.append(f"\ncryptofeed failed on {c}: `{err}`")
    if results["notes"]:
        out.append("")
        out += [f"- {n}" for n in results["notes"]]
    out += _floor_check_lines(venues)
    out += comparison_markdown(results, previous, previous_source)

    # the split
    out += ["", "### Where atomfast's time goes: decode, normalise, book, encode, produce", ""]
    split_venues = {c: e for c, e in venues.items() if e.get("split")}
    matched = [c for c, e in split_venues.items() if e.get("bytes_match")]
    unmatched = [c for c, e in split_venues.items() if e.get("bytes_match") is False]
    check = (f"passed on all {len(matched)} venue{'s' if len(matched) != 1 else ''} here" if not unmatched else
             f"passed on {len(matched)} of {len(split_venues)} venues, **failed** on {', '.join(unmatched)} (whose "
             "book, encode and produce parts are therefore not exact)")
    out.append(SPLIT_METHOD.format(encode_call=results.get("encode_call", "`encode_many(topic, records)`"),
                                   bytes_match=check, clear_every=CLEAR_EVERY))
    rows = []
    for case, e in split_venues.items():
        s = e["split"]
        total = e["us_per_frame"]["atomfast"]
        cells = [case, R.num(total)]
        for part in SPLIT_PARTS:
            cells.append(f"{R.num(s[part])} ({s[part] / total * 100:.0f}%)")
        w, r = s.get("encode_writers"), s.get("encode_rust")
        cells.append(f"{R.num(w)} + {R.num(r)}" if w is not None and r is not None else "-")
        cells.append(f"{e.get('book_calls', 0) / e['frames']:.1f}")
        cells.append(f"{e.get('writer_calls', 0) / e['frames']:.1f}" if "writer_calls" in e else "-")
        bd = e["us_per_frame"].get("split_book_deltas")
        cells.append(R.num(bd) if bd else "-")
        rows.append(cells)
    out.append(R.table(["venue", "atomfast µs/frame", *SPLIT_PARTS, "encode: writers + Rust", "book calls/frame",
                        "writes/frame", "book, bench_book deltas"], rows))
    out.append("")
    out.append("*encode: writers + Rust*: the encode column's two parts, (a) the scheme's writes into the "
               "AvroRows and (b) the Rust encoder on the topics outside SHAPES (medians of the runs each, so "
               "their sum may differ a little from the column, the median of the runs' sums). *writes/frame*: the `append`/`quote`/`trade` calls "
               "of (a) per frame. *book, bench_book deltas*: a cross-check of the book column for the two "
               "target venues, bench/bench_book.py's own extraction of the capture's levels fed to fresh "
               "`L2Book`s (Kraken: apply + truncate(1000) + `checksum_kraken` per update; Binance USD-M: "
               "`apply(side, price, size)` with the exchange strings, `best()` after a change of the top), not "
               "what the scheme calls and without the event values the book writes, so close to but not equal "
               "to the book column.")
    out += _what_remains(venues)
    kp = [(c, e["us_per_frame"].get("split_kafka_produce")) for c, e in venues.items()
          if e["us_per_frame"].get("split_kafka_produce")]
    if kp:
        out.append("")
        out.append("Produce to Kafka instead of the null sink: the same batches to the broker as the run "
                   "produces them (`KafkaSink.write_rows` of the SHAPES batches' AvroRows, `KafkaSink.write` of "
                   "the others' keys and encoded values), then `flush()` until every message is delivered, "
                   "wall time per frame (librdkafka compresses and sends on its own threads, so this is "
                   "not all on the collector's core): "
                   + "; ".join(f"{c} {R.num(x)} µs/frame" for c, x in kp) + ".")
    return "\n".join(out)


def _floor_check_lines(venues: dict) -> list[str]:
    """Does each floor decode what the scheme decodes (``floor_check``)?"""
    checked = {c: e["floor_check"] for c, e in venues.items() if e.get("floor_check")}
    if not checked:
        return []
    differ = {c: f for c, f in checked.items() if not f["same"]}
    out = [""]
    if not differ:
        out.append(f"The floor makes the same msgspec decode calls as atomfast on every venue here ({len(checked)}): "
                   "counted by decoder type in an untimed pass of each on the capture's received frames "
                   "(`bench.floor.decoder_calls`).")
        return out
    out.append(f"**The floor does not decode what atomfast decodes** on {', '.join(differ)} (decode calls by "
               "decoder type in an untimed pass of each, `bench.floor.decoder_calls`; `bench/floor.py` must follow "
               "the scheme), so (1) and (2)/(1) are not comparable there:")
    out.append("")
    for case, f in differ.items():
        out.append(f"- {case}: " + "; ".join(f"`{k}` atomfast {a:,}, floor {b:,}" for k, a, b in f["differences"]))
    return out


# --- against the previous run ------------------------------------------------------------------

#: issue 11: the Python opcodes per Kraken book frame (the traced profile), at most
TARGET_OPCODES = 250
TARGET_OPCODES_VENUE = "kraken-book"


def _opcodes(e: dict | None) -> float | None:
    if not e:
        return None
    if "opcodes_per_frame" in e:  # a previous run's summary
        return e.get("opcodes_per_frame")
    return (e.get("python_profile") or {}).get("opcodes_per_frame")


def comparison(results: dict, previous: dict | None) -> list[dict]:
    """Per venue of this run (then those only the previous run has): before and now of atomfast
    µs/frame, the floor, atomfast/floor, cryptofeed/atomfast, Python opcodes per frame."""
    if not previous:
        return []
    old_venues = previous.get("venues") or {}
    rows = []
    for case, e in results["venues"].items():
        old = old_venues.get(case)
        now_us, now_rt = e["us_per_frame"], e["ratios"]
        row = {"venue": case, "in_previous": old is not None, "frames": e["frames"],
               "frames_before": (old or {}).get("frames")}
        for key, before, now in (
            ("atomfast", ((old or {}).get("us_per_frame") or {}).get("atomfast"), now_us.get("atomfast")),
            ("floor", ((old or {}).get("us_per_frame") or {}).get("floor"), now_us.get("floor")),
            ("atomfast_floor", ((old or {}).get("ratios") or {}).get("atomfast_floor"), now_rt.get("atomfast_floor")),
            ("cryptofeed_atomfast", ((old or {}).get("ratios") or {}).get("cryptofeed_atomfast"),
             now_rt.get("cryptofeed_atomfast")),
            ("opcodes", _opcodes(old), _opcodes(e)),
        ):
            row[key] = (before, now)
        b, n = row["atomfast"]
        row["atomfast_change"] = n / b if b and n else None
        rows.append(row)
    for case, old in old_venues.items():
        if case not in results["venues"]:
            rows.append({"venue": case, "in_previous": True, "in_now": False})
    return rows


def _arrow(before, now, fmt, missing: str = "-") -> str:
    return f"{missing if before is None else fmt(before)} -> {'-' if now is None else fmt(now)}"


def _geomean(values: list[float]) -> float | None:
    import math

    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def comparison_summary(results: dict, previous: dict | None) -> list[str]:
    """Sentences for the report's head: the change of atomfast's µs per frame over the venues
    both runs have, the opcodes, issue 11's target."""
    rows = [r for r in comparison(results, previous) if r.get("in_now", True) and r["in_previous"]]
    if not rows:
        return []
    out = []
    changes = [(r["venue"], r["atomfast_change"]) for r in rows if r["atomfast_change"]]
    if changes:
        gm = _geomean([c for _, c in changes])
        lo = min(changes, key=lambda x: x[1])
        hi = max(changes, key=lambda x: x[1])
        faster = sum(1 for _, c in changes if c < 1)
        out.append(f"atomfast µs per frame, now / before: geometric mean **{R.ratio(gm)}** over the {len(changes)} "
                   f"venue{'s' if len(changes) != 1 else ''} both runs measured ({faster} of them faster), from "
                   f"{R.ratio(lo[1])} ({lo[0]}) to {R.ratio(hi[1])} ({hi[0]}).")
    floors = [r["floor"][1] / r["floor"][0] for r in rows if r["floor"][0] and r["floor"][1]]
    if floors:
        out.append(f"The floor (msgspec decoding alone), now / before: geometric mean {R.ratio(_geomean(floors))}: "
                   "where a venue's decoders did not change, that is the machine's load of the one run against "
                   "the other, not the code.")
    both = [r["atomfast_floor"] for r in rows if r["atomfast_floor"][0] and r["atomfast_floor"][1]]
    if both:
        out.append(f"atomfast / floor, measured side by side within each run: geometric mean "
                   f"{R.ratio(_geomean([b for b, _ in both]))} -> **{R.ratio(_geomean([n for _, n in both]))}** "
                   f"over {len(both)} venue{'s' if len(both) != 1 else ''}.")
    ops = [(r["venue"], *r["opcodes"]) for r in rows if r["opcodes"][0] is not None and r["opcodes"][1] is not None]
    if ops:
        out.append("Python opcodes per frame (the traced profile, deterministic): "
                   + "; ".join(f"{c} {b:.0f} -> {n:.0f}" for c, b, n in ops)
                   + (f" (not recorded before for the other {len(rows) - len(ops)} "
                      f"venue{'s' if len(rows) - len(ops) != 1 else ''})." if len(rows) > len(ops) else "."))
    out += _opcode_target(rows)
    return out


def _opcode_target(rows: list[dict]) -> list[str]:
    row = next((r for r in rows if r["venue"] == TARGET_OPCODES_VENUE and r.get("in_now", True)), None)
    if row is None or row["opcodes"][1] is None:
        return []
    before, now = row["opcodes"]
    ok = now <= TARGET_OPCODES
    return [f"Issue 11's target, Python opcodes per {TARGET_OPCODES_VENUE} frame at most {TARGET_OPCODES}: "
            f"{'not recorded' if before is None else f'{before:.0f}'} -> **{now:.0f}**, "
            f"{'✓ met' if ok else '✗ **not met**'}."]


def comparison_markdown(results: dict, previous: dict | None, source: str = "") -> list[str]:
    """The throughput section's table against the previous run (bench/previous.py)."""
    if not previous:
        return ["", "### Against the previous run", "",
                f"Nothing to compare with: {source or 'no previous run'}."]
    from .previous import label

    out = ["", f"### Against the previous run ({label(previous)})", ""]
    runs = previous.get("runs")
    out.append(f"Before: `{previous.get('command') or 'python -m bench'}` at {label(previous)}"
               + (f", median of {runs} run{'s' if runs != 1 else ''}" if runs else "")
               + (f": {source}" if source else "") + ". Now: this report. Both ran on a shared VM with other "
               "work beside them, at different times: the absolute µs per frame of one run against the other carry "
               "that noise, so read the ratios, each measured side by side within one run (atomfast / floor, "
               "cryptofeed / atomfast (4)/(2)), and the opcode counts, which involve no clock. The floor follows "
               "each venue's decoders (`bench/floor.py`): where a venue now decodes differently, its floor changed "
               "too, and with it atomfast / floor.")
    out.append("")
    rows = []
    absent = []
    for r in comparison(results, previous):
        if not r.get("in_now", True):
            absent.append(r["venue"])
            continue
        if not r["in_previous"]:
            rows.append([r["venue"], f"not in the previous run -> {R.num(r['atomfast'][1])}", "-",
                         f"- -> {R.num(r['floor'][1])}", f"- -> {R.ratio(r['atomfast_floor'][1])}",
                         f"- -> {R.ratio(r['cryptofeed_atomfast'][1])}",
                         f"- -> {R.num(r['opcodes'][1], 0)}" if r["opcodes"][1] is not None else "-"])
            continue
        frames_note = (f" (frames {r['frames_before']:,} -> {r['frames']:,})"
                       if r["frames_before"] not in (None, r["frames"]) else "")
        rows.append([
            r["venue"] + frames_note,
            _arrow(*r["atomfast"], R.num),
            R.ratio(r["atomfast_change"]),
            _arrow(*r["floor"], R.num),
            _arrow(*r["atomfast_floor"], R.ratio),
            _arrow(*r["cryptofeed_atomfast"], R.ratio),
            _arrow(*r["opcodes"], lambda x: f"{x:.0f}", missing="not recorded"),
        ])
    out.append(R.table(["venue", "atomfast µs/frame, before -> now", "now / before (< 1: faster)",
                        "floor µs/frame, before -> now", "atomfast / floor, before -> now",
                        "cryptofeed / atomfast, before -> now", "Python opcodes/frame, before -> now"], rows))
    if absent:
        out += ["", f"In the previous run, not in this one: {', '.join(absent)}."]
    lines = _opcode_target(comparison(results, previous))
    if lines:
        out += [""] + lines
    return out


# --- what remains ------------------------------------------------------------------------------


def _part_share(prof: dict, part: str) -> str:
    total = prof["opcodes_per_frame"]
    n = (prof.get("parts") or {}).get(part, 0.0)
    return f"{n:.0f} ({n / total * 100:.0f}%)" if total else "-"


def _what_remains(venues: dict) -> list[str]:
    """Where the time over the floor goes: the split's compiled parts and the traced Python
    profile (every venue; the function tables for the target venues)."""
    profiled = [(c, e) for c, e in venues.items() if e.get("python_profile")]
    if not profiled:
        return []
    missed = [c for c, e in venues.items() if c in TARGET_FLOOR_VENUES and e["ratios"]["atomfast_floor"]
              and e["ratios"]["atomfast_floor"] > TARGET_FLOOR]
    met = [c for c, e in venues.items() if c in TARGET_FLOOR_VENUES and e["ratios"]["atomfast_floor"]
           and e["ratios"]["atomfast_floor"] <= TARGET_FLOOR]
    title = "### What remains over the floor"
    if missed:
        title += f", and why (2)/(1) ≤ {TARGET_FLOOR} is not reached"
    out = ["", title, ""]
    python = f"CPython {sys.version_info.major}.{sys.version_info.minor}"
    core_ops = max((e["python_profile"].get("parts") or {}).get("core", 0.0) for _, e in profiled)
    out.append(
        "The frame core is compiled (`atomfast._frame`, native/frame/_frame.pyx: the replay loop, "
        "`FrameDriver.frame` with its counters, size limit and error accounting, and `Pipeline.emit`/`rows`/"
        "`end_frame`: an AvroRows per high-volume topic handed to the scheme and read by the sink's `write_rows`, "
        "the per-topic encoder call and `sink.write` for the other topics), and so is the null sink's counting "
        "(`atomfast._frame.NullCounts`: its `write_rows` and `write`): they run no Python bytecode, so they are not "
        "in the traced profile below (the frame core's Python files, replay.py, driver.py, pipeline.py, count at most "
        f"{core_ops:.1f} opcodes per frame on any venue here: the replay's handling of connection opens and "
        "REST answers). The frame core's cost is in the C part of each frame: in the split it falls in *normalise* "
        "(what is neither decode, book, encode nor produce), beside the Python of the venue; the sink's is "
        "*produce*. What the profile shows is "
        f"the Python that is left ({python} bytecode, counted in an untimed traced pass of `Replay.run` on the "
        "preloaded frames): the venue's handlers, the kit's dispatch that calls them (`kit/dispatch.py:on_frame` "
        "and the venue's prefilter, where it has one), the scheme base's helpers and event records built by a "
        "NamedTuple's `__new__`. The calls it makes into compiled code (the book's, the typed writers `quote`/"
        "`trade`, `emit`) are in it as the opcodes that make them; their work is *book* and *encode* in the split.")
    out.append("")
    for case, e in profiled:
        if case not in TARGET_FLOOR_VENUES or not e.get("split"):
            continue
        sp, prof = e["split"], e["python_profile"]
        af = e["us_per_frame"]["atomfast"]
        over = af - sp["decode"]
        compiled = sp["book"] + sp["encode"] + sp["produce"]
        budget = TARGET_FLOOR * sp["decode"] - sp["decode"] - compiled
        ops = prof["opcodes_per_frame"]
        w, r = sp.get("encode_writers"), sp.get("encode_rust")
        enc_parts = (f" (the scheme's writes into the AvroRows, typed writers' parsing included, {R.num(w)}; the "
                     f"Rust encoder for the topics outside SHAPES {R.num(r)})" if w is not None and r is not None
                     else "")
        out.append(f"**{case}**: {R.num(af)} µs/frame against a floor of {R.num(sp['decode'])} "
                   f"({R.ratio(e['ratios']['atomfast_floor'])}): {R.num(over)} µs over it, of which the book "
                   f"(its updates, checksums and the `lob`/`spread` values it writes) {R.num(sp['book'])} µs, "
                   f"the encoding {R.num(sp['encode'])} µs{enc_parts}, the null sink's compiled `write_rows`/`write` "
                   f"{R.num(sp['produce'])} µs, and the rest (*normalise*: the Python below and the compiled frame "
                   f"core) {R.num(sp['normalise'])} µs. "
                   f"A {TARGET_FLOOR:g}x target leaves {R.num(sp['decode'])} µs over the floor; after book, encode "
                   f"and produce ({R.num(compiled)} µs), " + (f"{R.num(budget)} µs per frame for everything else"
                                                               if budget > 0 else
                                                               f"nothing: they alone exceed it by {R.num(-budget)} µs")
                   + ". "
                   f"Python bytecode per frame: **{ops:.0f} opcodes**"
                   + (f" (*normalise* / opcodes: {sp['normalise'] / ops * 1000:.0f} ns per opcode, an upper "
                      "bound, since *normalise* also holds the compiled frame core)" if ops and sp["normalise"] > 0
                      else "")
                   + ", by function:")
        out.append("")
        out.append("| function | opcodes/frame |")
        out.append("|---|---:|")
        for name, n in prof["functions"]:
            out.append(f"| `{name}` | {n:.1f} |")
        out.append("")
    # every venue, by part
    labels = dict(PROFILE_PARTS)
    parts = [p for p, _ in PROFILE_PARTS
             if any((e["python_profile"].get("parts") or {}).get(p, 0.0) >= 0.05 for _, e in profiled)]
    out.append("Python opcodes per frame on every venue, by part (" + "; ".join(f"*{p}*: {labels[p]}" for p in parts)
               + "), and the venue's three costliest functions:")
    out.append("")
    rows = []
    for case, e in profiled:
        prof = e["python_profile"]
        if "parts" not in prof:
            continue
        top = ", ".join(f"`{n.split('/')[-1]}` {x:.0f}" for n, x in prof["functions"][:3])
        rows.append([case, f"{prof['opcodes_per_frame']:.0f}", *[_part_share(prof, p) for p in parts], top])
    out.append(R.table(["venue", "opcodes/frame", *parts, "costliest functions"], rows,
                       "l" + "r" * (len(parts) + 1) + "l"))
    out.append("")
    ops = {c: e["python_profile"]["opcodes_per_frame"] for c, e in profiled}
    lo, hi = min(ops, key=ops.get), max(ops, key=ops.get)
    venue_share = [(e["python_profile"].get("parts") or {}).get("venue", 0.0) / ops[c] for c, e in profiled if ops[c]]
    def spread(part: str) -> str:
        vals = [(e["python_profile"].get("parts") or {}).get(part, 0.0) for _, e in profiled]
        return f"{min(vals):.0f}" if round(min(vals)) == round(max(vals)) else f"{min(vals):.0f}-{max(vals):.0f}"

    text = (f"Reading: a frame runs {ops[lo]:.0f} ({lo}) to {ops[hi]:.0f} ({hi}) opcodes of Python, "
            f"{min(venue_share) * 100:.0f}-{max(venue_share) * 100:.0f}% of them in the venue's own handlers "
            "(its checks and, where a handler walks a message's levels or rows in Python, a cost per level); "
            f"the kit takes {spread('kit')} per frame (dispatch, and the book sync where the venue uses it)"
            + (f", a sink's Python {spread('sink')}. " if "sink" in parts else
               "; the null sink runs none (its `write_rows` and `write` are compiled). "))
    if missed:
        over_budget = [c for c in missed if venues[c].get("split") and
                       venues[c]["split"]["book"] + venues[c]["split"]["encode"] + venues[c]["split"]["produce"]
                       >= (TARGET_FLOOR - 1) * venues[c]["split"]["decode"]]
        text += (f"(2)/(1) ≤ {TARGET_FLOOR:g} is not met on {', '.join(missed)}: what would close the gap is less "
                 "Python per frame (a venue handler compiled, or its checks moved into the book or the decoder)"
                 + (f", and on {', '.join(over_budget)} less compiled work per frame too (book, encoding, sink), "
                    "which alone takes the target's room over the floor." if over_budget else "."))
    elif met:
        text += f"(2)/(1) ≤ {TARGET_FLOOR:g} is met on {', '.join(met)}."
    out.append(text)
    return out


def plot(results: dict, outdir: Path, previous: dict | None = None) -> list[Path]:
    venues = results["venues"]
    names = list(venues)
    if not names:
        return []
    outdir = Path(outdir)
    paths = []
    series = {LABELS[k]: [venues[c]["us_per_frame"][k] for c in names] for k in IMPLS
              if any(venues[c]["us_per_frame"][k] for c in names)}
    paths.append(R.grouped_bars(outdir / "throughput_us_per_frame.png", names, series, "µs per frame (log)",
                                f"µs per received frame, median of {results['runs']} runs"))
    plt = R.pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 5))
    x = range(len(names))
    af = [venues[c]["ratios"]["atomfast_floor"] or 0 for c in names]
    bars = a1.bar(x, af, color=["tab:orange" if c in TARGET_FLOOR_VENUES else "tab:gray" for c in names])
    a1.bar_label(bars, labels=[f"{v:.1f}" if v else "" for v in af], fontsize=7)
    a1.axhline(TARGET_FLOOR, color="crimson", linestyle="--", linewidth=1, label=f"target ≤ {TARGET_FLOOR}")
    a1.set_title("atomfast / floor (orange: target venues)", fontsize=10)
    a2w = 0.4
    cr = [venues[c]["ratios"]["cryptofeed_atomfast_reading"] for c in names]
    ca = [venues[c]["ratios"]["cryptofeed_atomfast"] for c in names]
    for offset, values, label in ((-a2w / 2, cr, "cryptofeed / atomfast incl. reading"),
                                  (a2w / 2, ca, "cryptofeed / atomfast")):
        pts = [(i + offset, v) for i, v in zip(x, values) if v]
        if pts:
            bars = a2.bar([p[0] for p in pts], [p[1] for p in pts], width=a2w, label=label)
            a2.bar_label(bars, labels=[f"{p[1]:.1f}" for p in pts], fontsize=7)
    a2.axhline(TARGET_CRYPTOFEED, color="crimson", linestyle="--", linewidth=1, label=f"target ≥ {TARGET_CRYPTOFEED:.0f}")
    R.log_axis(a2)
    a2.set_ylim(bottom=0.5)
    a2.set_title("cryptofeed / atomfast (none: cryptofeed cannot replay it)", fontsize=10)
    for ax in (a1, a2):
        ax.set_xticks(list(x))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    p = outdir / "throughput_ratios.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)
    split_names = [c for c in names if venues[c].get("split")]
    if split_names:
        parts = {part: [venues[c]["split"][part] for c in split_names] for part in SPLIT_PARTS}
        paths.append(R.stacked_bars(outdir / "throughput_split.png", split_names, parts, "µs per frame",
                                    "atomfast per frame: decode / normalise / book / encode / produce "
                                    "(negative residuals drawn as 0)"))
    rows = [r for r in comparison(results, previous) if r.get("in_now", True) and r["in_previous"]]
    if rows:
        from .previous import label

        paths.append(R.grouped_bars(
            outdir / "throughput_vs_previous.png", [r["venue"] for r in rows],
            {f"before ({label(previous)})": [r["atomfast"][0] for r in rows],
             "now": [r["atomfast"][1] for r in rows]},
            "atomfast µs per frame (log)", "atomfast µs per received frame: the previous run and this one "
            "(shared VM: read with the ratios)"))
    return paths
