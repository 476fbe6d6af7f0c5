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
untimed, recording run per venue: see ``SPLIT_METHOD``.
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
How the split is measured (per venue, µs per received frame, each part the median of the runs):

- **decode** = the floor (column 1): the scheme's own msgspec decoders on every frame, nothing else.
- **book** = the L2Book/L3Book work of the run, replayed. One untimed recording run puts a thin
  Python proxy in place of `L2Book`/`L3Book` in the atomfast modules (module attributes patched
  for that run only, restored after) which logs every book constructed and every method call
  made on it (`apply`, `apply_ticks`, `best`, `truncate`, `levels`, `count`, `checksum_kraken`,
  ...) with its arguments. The timed part replays that exact call log on fresh compiled books:
  `for method, args, rows in calls: method(*args)` (then `rows.clear()` where the call appended
  event rows to a list), so it includes one Python call per book call, as the scheme pays. Exact-decimal parsing done outside the book (`parse_ticks` in validation and
  in Binance's `_ticks`) is not book work here: it counts to normalise.
- **encode** = {encode_call}, over the exact per-frame, per-topic record batches the run
  produced (captured by a recording sink in the same untimed run).
- **produce** = `NullSink.write(topic, records, keys, values)` over the same batches (what the
  null sink does: count messages and bytes).
- **normalise** = atomfast (column 2) − decode − book − encode − produce: everything else
  (dispatch, validation, sequence checks, event tuples and floats made outside the book, the
  pipeline's per-frame batching). A residual: it carries the noise of the other measurements.

Since the book's batch calls (`apply_sides`) build the `lob` event rows themselves, that part of
event building counts to *book* wherever a scheme uses them.
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
        self.paths = [FIXTURES / r for r in rel]
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


def python_profile(v: Venue, top: int = 8) -> dict:
    """The Python bytecode atomfast executes per received frame, by function: one untimed pass
    of ``Replay.run`` on the preloaded frames with opcode tracing (``sys.settrace``,
    ``f_trace_opcodes``). Deterministic (no clock), so it shows what a change removed."""
    from atomfast.sinks.null import NullSink

    replay = v.replay(NullSink())
    counts: dict[tuple[str, str], int] = {}

    def tracer(frame, event, arg):
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            key = ("/".join(code.co_filename.rsplit("/", 2)[-2:]), code.co_name)
            counts[key] = counts.get(key, 0) + 1
        return tracer

    sys.settrace(tracer)
    try:
        replay.run()
    finally:
        sys.settrace(None)
    frames = len(v.recv)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    return {"opcodes_per_frame": sum(counts.values()) / frames,
            "functions": [(f"{path}:{name}", n / frames) for (path, name), n in ranked[:top]]}


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
    """Keeps what the pipeline writes: (topic, records, keys, values) per frame and topic."""

    framing = "single_object"

    def __init__(self):
        self.batches: list[tuple[str, list, list, list]] = []

    def write(self, topic, records, keys, values):
        self.batches.append((topic, list(records), list(keys), list(values)))

    def poll(self):
        pass

    def flush(self, timeout=30.0):
        return 0

    def close(self):
        pass

    def stats(self):
        return {}


class BookLog:
    """Every L2Book/L3Book built during a run and every method call made on them."""

    def __init__(self):
        self.books: list[tuple[type, tuple, dict]] = []
        #: (book, method, args, kwargs, raised, indexes of output list arguments)
        self.calls: list[tuple[int, str, tuple, dict, bool, tuple]] = []

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
                    # a list argument that grows is an output (apply_sides' event rows, the
                    # pipeline's pending list): the replay gets a fresh empty list there
                    before = [len(a) if a.__class__ is list else -1 for a in args]
                    try:
                        result = attr(*args, **kwargs)
                    except Exception:
                        calls.append((index, name, args, kwargs, True, _outputs(args, before)))
                        raise
                    calls.append((index, name, args, kwargs, False, _outputs(args, before)))
                    return result

                return call

            def __len__(self):
                log.calls.append((self._index, "__len__", (), {}, False, ()))
                return len(self._book)

            def __contains__(self, item):
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

    def bound(self) -> list:
        """Fresh books and the call log bound to them: [(method, args, output list or None)]
        (built before the clock)."""
        import functools

        books = [cls(*args, **kwargs) for cls, args, kwargs in self.books]
        bound = []
        for index, name, args, kwargs, raised, outputs in self.calls:
            method = getattr(books[index], name)
            out = None
            if outputs:  # one fresh list, emptied after the call (the pipeline drops a frame's rows)
                out = []
                args = tuple(out if i in outputs else a for i, a in enumerate(args))
            if kwargs:
                method = functools.partial(method, **kwargs)
            if raised:
                method = _swallowing(method)
            bound.append((method, args, out))
        return bound


def _atomfast_modules() -> list:
    return [mod for name, mod in list(sys.modules.items())
            if mod is not None and (name == "atomfast" or name.startswith("atomfast.")) and name != "atomfast._book"]


def _outputs(args: tuple, before: list[int]) -> tuple:
    return tuple(i for i, (a, n) in enumerate(zip(args, before)) if n >= 0 and len(a) != n)


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


def record(v: Venue) -> dict:
    """The untimed recording run: the batches written and the book call log."""
    from atomfast.sinks.null import NullSink

    sink = _RecordingSink()
    log = BookLog()
    replay = v.replay(sink)  # the scheme's modules imported before the patch
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

    rec = {"batches": sink.batches, "book": log, "pipeline": Pipeline(NullSink()), "events": dict(metrics.events),
           "checksum_ok": metrics.checksum_ok}  # the encoder a Pipeline builds for the NullSink
    rec["encode_plan"] = _encode_plan(rec)
    return rec


def _encode_plan(rec: dict) -> tuple:
    """(function, [(first argument, records)], description): the encoder call the pipeline
    makes per frame and topic (``encode_keyed``: keys and values in one native call, where the
    pipeline has it; else ``encode_many``), with the topic lookups done before the clock."""
    p = rec["pipeline"]
    batches = rec["batches"]
    native, index = getattr(p, "_encode_keyed", None), getattr(p, "_schema_index", None)
    if native is not None and index is not None:
        items = [(index[t] if t in index else p.encoder._lookup(t), r) for t, r, _k, _v in batches]
        return native, items, ("the pipeline's own native call, `encode_keyed` (Avro values and Kafka keys "
                               "in one call)")
    if hasattr(p.encoder, "encode_keyed"):
        return p.encoder.encode_keyed, [(t, r) for t, r, _k, _v in batches], "`encoder.encode_keyed(topic, records)`"
    return p.encoder.encode_many, [(t, r) for t, r, _k, _v in batches], "`encoder.encode_many(topic, records)`"


def time_encode(rec: dict) -> float:
    encode, items, _ = rec["encode_plan"]

    def run():
        for first, records in items:
            encode(first, records)

    return R.timed(run)[0]


def time_produce_null(rec: dict) -> float:
    from atomfast.sinks.null import NullSink

    write = NullSink().write
    batches = rec["batches"]

    def run():
        for topic, records, keys, values in batches:
            write(topic, records, keys, values)

    return R.timed(run)[0]


def time_produce_kafka(rec: dict, bootstrap: str) -> float:
    """KafkaSink.write of the run's batches (encoded values, keys) to the broker, then flush:
    the wall time until every message is delivered."""
    sink = _kafka_sink(bootstrap)
    batches = rec["batches"]
    try:
        def run():
            write = sink.write
            for topic, records, keys, values in batches:
                write(topic, records, keys, values)
            return sink.flush(60)

        dt, remaining = R.timed(run)
        assert remaining == 0
        assert sink.stats()["failed_total"] == 0
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
                "times": {k: [] for k in IMPLS + ["split_" + p for p in ("encode", "produce", "book", "book_deltas",
                                                                           "kafka_produce")]},
            }
            log(f"  {case}: {len(v.recv):,} frames; recording run for the split")
            recs[case] = record(v)
            entry["events"] = recs[case]["events"]
            entry["checksum_ok"] = recs[case]["checksum_ok"]
            entry["book_calls"] = len(recs[case]["book"].calls)
            entry["batches"] = len(recs[case]["batches"])
            results["encode_call"] = recs[case]["encode_plan"][2]
            if not quick:
                try:
                    d = _book_deltas(case)
                except BaseException as exc:  # pytest.skip from bench_book's capture(): absent file
                    d = None
                    results["notes"].append(f"{case}: no book cross-check ({type(exc).__name__}: {exc})")
                if d is not None:
                    deltas[case] = d
            if case in TARGET_FLOOR_VENUES:
                entry["python_profile"] = python_profile(v)
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
                t["split_encode"].append(time_encode(rec))
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
                          "normalise": af - floor - book - enc - prod}


# ---------------------------------------------------------------------------------------------
# Markdown and figures


def markdown(results: dict) -> str:
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
               "decoder its `on_frame` would pick (`bench/floor.py`); frames preloaded in memory.")
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

    # the split
    out += ["", "### Where atomfast's time goes: decode, normalise, book, encode, produce", ""]
    out.append(SPLIT_METHOD.format(encode_call=results.get("encode_call", "`encode_many(topic, records)`")))
    rows = []
    for case, e in venues.items():
        s = e.get("split")
        if not s:
            continue
        total = e["us_per_frame"]["atomfast"]
        cells = [case, R.num(total)]
        for part in SPLIT_PARTS:
            cells.append(f"{R.num(s[part])} ({s[part] / total * 100:.0f}%)")
        cells.append(f"{e.get('book_calls', 0) / e['frames']:.1f}")
        bd = e["us_per_frame"].get("split_book_deltas")
        cells.append(R.num(bd) if bd else "-")
        rows.append(cells)
    out.append(R.table(["venue", "atomfast µs/frame", *SPLIT_PARTS, "book calls/frame", "book, bench_book deltas"],
                       rows))
    out.append("")
    out.append("*book, bench_book deltas*: a cross-check of the book column for the two target venues, "
               "bench/bench_book.py's own extraction of the capture's levels fed to fresh `L2Book`s "
               "(Kraken: apply + truncate(1000) + `checksum_kraken` per update; Binance USD-M: "
               "`apply(side, price, size)` with the exchange strings, `best()` after a change of the "
               "top), not what the scheme calls, so close to but not equal to the book column.")
    out += _what_remains(venues)
    kp = [(c, e["us_per_frame"].get("split_kafka_produce")) for c, e in venues.items()
          if e["us_per_frame"].get("split_kafka_produce")]
    if kp:
        out.append("")
        out.append("Produce to Kafka instead of the null sink: `KafkaSink.write` of the same batches (keys "
                   "and encoded values) to the broker, then `flush()` until every message is delivered, "
                   "wall time per frame (librdkafka compresses and sends on its own threads, so this is "
                   "not all on the collector's core): "
                   + "; ".join(f"{c} {R.num(x)} µs/frame" for c, x in kp) + ".")
    return "\n".join(out)


def _what_remains(venues: dict) -> list[str]:
    """The profile behind a (2)/(1) target not met: where the time over the floor goes."""
    profiled = [(c, e) for c, e in venues.items() if e.get("python_profile") and e.get("split")]
    if not profiled:
        return []
    out = ["", "### What remains over the floor, and why (2)/(1) ≤ 2 is not reached", ""]
    for case, e in profiled:
        sp, prof = e["split"], e["python_profile"]
        over = e["us_per_frame"]["atomfast"] - sp["decode"]
        out.append(f"**{case}**: {R.num(e['us_per_frame']['atomfast'])} µs/frame against a floor of "
                   f"{R.num(sp['decode'])}: {R.num(over)} µs over it, of which the compiled parts (book incl. "
                   f"its C-built event rows and checksums, Avro encoding with keys) are "
                   f"{R.num(sp['book'] + sp['encode'])} µs, the null sink's write {R.num(sp['produce'])} µs, "
                   f"and the Python around them (*normalise*) {R.num(sp['normalise'])} µs. The Python bytecode "
                   f"executed per frame (an untimed traced pass): **{prof['opcodes_per_frame']:.0f} opcodes**, by "
                   "function:")
        out.append("")
        out.append("| function | opcodes/frame |")
        out.append("|---|---:|")
        for name, n in prof["functions"]:
            out.append(f"| `{name}` | {n:.1f} |")
        out.append("")
    out.append(
        "Reading: the compiled work alone (book, checksum, event rows, encoding) is already about the size "
        "of the floor on these captures, so the 2x target leaves the Python between them almost nothing. "
        "Each frame still runs a few hundred CPython 3.11 opcodes (~10-30 ns each): the scheme's dispatch "
        "and per-message checks (channel, pair, sync state, sequence, timestamp, checksum text), the "
        "pipeline's per-frame batching (`Pipeline.end_frame`: one encoder call and one `sink.write` per "
        "topic, metrics), the sink's accounting, and `Replay.run`'s loop (the live feed's `on_ws_frame` "
        "does the same). Per level there is no Python left on the book paths that use "
        "`L2Book.apply_sides` (Kraken v1/v2/Futures, Binance, BitMEX, and the venues on "
        "`Scheme.apply_levels`). What would close the gap: a compiled per-venue frame handler (decode, "
        "checks, book, rows, encode in one C call), which trades the declarative Python exchange "
        "modules for speed. Instruction counts (callgrind, frames preloaded, NullSink; measured for "
        "commit e8870cc, which moved the per-level work into the book): Kraken book 90.4k -> 51.6k "
        "instructions/frame against an 8.7k floor, Binance USD-M (first 20k frames) 94.0k -> 54.7k "
        "against 14.8k.")
    return out


def plot(results: dict, outdir: Path) -> list[Path]:
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
    return paths
