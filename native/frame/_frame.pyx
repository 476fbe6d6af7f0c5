# cython: language_level=3
# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# cython: nonecheck=False, overflowcheck=False, infer_types=True, embedsignature=True
"""The per-frame core of atomfast, compiled: ``Pipeline`` (a frame's events -> encoder -> sink)
and ``FrameCore`` (a received frame -> scheme -> pipeline, with its accounting).

Every frame of every venue passes through both, so their Python bytecode was a third of the
per-frame cost of a Kraken book frame (~250 of ~500 opcodes; bench/results/REPORT.md). Here the
same steps run as C calls into the scheme, the Rust encoder and the sink. The typed Python
facades are ``atomfast.pipeline`` and ``atomfast.driver`` (documented there); stubs in
``atomfast/_frame.pyi``.
"""
import math
from time import time_ns as _time_ns
from libc.string cimport memset
from cpython.list cimport PyList_GET_ITEM
from cpython.dict cimport PyDict_SetItem
from cpython.object cimport PyObject
from collections import Counter as _Counter
from atomfast._book cimport AvroRows

cdef extern from "Python.h":
    PyObject* PyDict_GetItemWithError(object d, object key) except? NULL


cdef inline int _add_count(object counts, object topic, Py_ssize_t n) except -1:
    """``counts[topic] = counts.get(topic, 0) + n``. For a dict or a Counter with the dict's own
    calls: a Counter's item assignment goes through Python (it defines ``__delitem__``, which
    shares the slot), one method lookup and call per count."""
    cdef PyObject* old
    if type(counts) is _Counter or type(counts) is dict:
        old = PyDict_GetItemWithError(counts, topic)
        PyDict_SetItem(counts, topic, n if old == NULL else <object>old + n)
    else:
        counts[topic] = counts.get(topic, 0) + n
    return 0


cdef extern from *:
    int __builtin_clzll(unsigned long long)


cdef class LatencyHistogram:
    """Nanosecond latencies in buckets of ~4.4% width (16 per power of two), 1 ns .. ~1100 s
    (see ``atomfast.metrics``). ``record`` runs once per frame (receipt -> produce) and once per
    delivery report: compiled, the counts in a C array (``counts`` reads and sets them as a
    list)."""

    cdef long long c_counts[640]
    cdef public long long total
    cdef public long long max_ns

    SUB = 16
    NBUCKETS = 40 * 16

    def __init__(self):
        self.clear()

    def clear(self):
        memset(self.c_counts, 0, sizeof(self.c_counts))
        self.total = 0
        self.max_ns = 0

    @property
    def counts(self):
        return [self.c_counts[i] for i in range(640)]

    @counts.setter
    def counts(self, values):
        cdef Py_ssize_t i
        values = list(values)
        if len(values) != 640:
            raise ValueError(f"{len(values)} counts for 640 buckets")
        for i in range(640):
            self.c_counts[i] = values[i]

    cpdef record(self, long long ns):
        if ns < 1:
            ns = 1
        cdef int exp = 63 - __builtin_clzll(<unsigned long long>ns)
        # the position within the power of two in 16 steps: ((ns << 4) >> exp) & 15, without overflow
        cdef long long sub = ((ns >> (exp - 4)) if exp >= 4 else (ns << (4 - exp))) & 15
        cdef Py_ssize_t idx = exp * 16 + sub
        if idx >= 40 * 16:
            idx = 40 * 16 - 1
        self.c_counts[idx] += 1
        self.total += 1
        if ns > self.max_ns:
            self.max_ns = ns

    def percentile(self, double q):
        """Upper bound (ns) of the bucket holding the q-th percentile (0 < q <= 100); 0 if empty."""
        if not self.total:
            return 0
        rank = max(1, math.ceil(self.total * q / 100.0))
        seen = 0
        for idx, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                exp, sub = divmod(idx, 16)
                return min(((16 + sub + 1) << exp) >> 4, self.max_ns)
        return self.max_ns

    def snapshot(self):
        return {
            "count": self.total,
            "p50_us": self.percentile(50) / 1000,
            "p99_us": self.percentile(99) / 1000,
            "p99.9_us": self.percentile(99.9) / 1000,
            "max_us": self.max_ns / 1000,
        }


cdef class Counters:
    """What the compiled parts count on every frame, as C integers: the base of
    ``atomfast.metrics.Metrics`` (``frames``, ``bytes``, ``events`` per topic: the frame core;
    ``checksum_ok``: a declared book shape, native/dispatch), so that they add to them without an
    attribute lookup; Python reads and sets them as ever. Declared in atomfast/_frame.pxd."""


cdef class Pipeline:
    """From scheme events to sink writes: the per-frame batch (see ``atomfast.pipeline``)."""

    cdef public object sink
    cdef public object encoder
    cdef public object metrics
    cdef Counters _counters     # metrics, where it is one (else None)
    #: whether a frame's ``recv_ns`` is this machine's clock (a live feed): receipt -> produce()
    #: latency is recorded; a replay's recorded times are not
    cdef public bint timed
    #: topic -> the records of the current frame (topics in first-use order)
    cdef dict _frame
    #: (exchange, symbol) -> b"exchange:symbol", the Kafka message key (without an encoder)
    cdef dict _keys
    cdef dict _schema_index
    cdef object _encode_keyed
    cdef object _write
    cdef object _note_receipt
    #: topic -> the frame's events as Avro bytes (an ``atomfast._book.AvroRows`` each), for the
    #: high-volume topics (``atomfast._book.SHAPES``) when the sink needs no records
    #: (``records_needed`` False: Kafka, files, null); empty otherwise
    cdef dict _bytes
    #: topic -> event type, for the topics whose rows have typed writers (``RecordRows``) when
    #: the sink reads records
    cdef dict _record_types
    #: the sink's ``write_rows(topic, rows)``: it reads an AvroRows' buffer itself (else the
    #: rows' ``take()`` goes to ``write`` as keys and values)
    cdef object _write_rows

    def __init__(self, sink, metrics=None, encoder=None, bint timed=True):
        if metrics is None:
            from atomfast.metrics import Metrics

            metrics = Metrics()
        self.sink = sink
        self.metrics = metrics
        self._counters = metrics if isinstance(metrics, Counters) else None
        if encoder is None and sink.framing is not None:
            from atomfast.avro import AvroEncoder

            encoder = AvroEncoder(sink.framing, getattr(sink, "schema_ids", None))
        self.encoder = encoder
        if encoder is not None:
            # AvroEncoder.encode_keyed without its Python frame: topic -> schema index (the
            # encoder's own dict, which set_schema_id keeps current), then the Rust call
            self._schema_index = encoder._index
            self._encode_keyed = encoder._native.encode_keyed
        self._write = sink.write
        self._write_rows = getattr(sink, "write_rows", None)
        self._bytes = {}
        self._record_types = {}
        from atomfast._book import SHAPES

        if encoder is not None and not getattr(sink, "records_needed", True):
            for topic, shape in SHAPES.items():
                try:
                    prefix = encoder.prefix(topic)
                except KeyError:  # confluent framing without an id for it: tuples, encoded as ever
                    continue
                self._bytes[topic] = AvroRows(prefix, shape)
        else:
            from atomfast.events import TOPICS

            self._record_types = {topic: TOPICS[topic] for topic in ("spread", "ticker", "trades", "lob_l3")}
        # a sink that measures receipt -> delivery (KafkaSink) is told each live frame's receipt
        self._note_receipt = getattr(sink, "note_receipt", None)
        self.timed = timed
        self._frame = {}
        self._keys = {}

    cpdef emit(self, str topic, object record):
        cdef object rows = self._frame.get(topic)
        if rows is None:
            rows = self.rows(topic)
        if type(rows) is list:
            (<list>rows).append(record)
        else:
            rows.append(record)

    cpdef object rows(self, str topic):
        """The list the current frame's ``topic`` records go to: a batch call (the book's
        ``apply_sides``) appends to it directly, as ``emit`` would one by one. For the
        high-volume topics with a sink that needs no records: the topic's ``AvroRows`` (the
        book and the typed writers write encoded values into it); with one that reads records,
        for spread, ticker, trades and lob_l3 a ``RecordRows`` (a list with the same typed
        writers)."""
        cdef object rows = self._frame.get(topic)
        cdef object kind
        if rows is None:
            rows = self._bytes.get(topic)
            if rows is not None:
                (<AvroRows>rows).clear()  # what a failed end_frame left
                self._frame[topic] = rows
            else:
                kind = self._record_types.get(topic)
                rows = self._frame[topic] = [] if kind is None else RecordRows(kind)
        return rows

    cpdef Py_ssize_t end_frame(self, long long recv_ns=0) except -1:
        """Encode and write what the frame produced; returns the number of events written.
        Each topic's records go to the encoder in one call (values and keys together) and to
        the sink in one ``write``."""
        cdef dict frame = self._frame
        if not frame:
            return 0
        self._frame = {}
        cdef Py_ssize_t written = 0, n
        cdef object events = self._counters.events if self._counters is not None else self.metrics.events
        cdef object topic, records, index, keys, values
        if self._note_receipt is not None:
            # this frame's receipt, or none (a replay, a timer's or a connection's events): never
            # the previous frame's
            self._note_receipt(recv_ns if self.timed else 0)
        for topic, records in frame.items():
            n = len(records)
            if not n:
                continue
            if type(records) is AvroRows:
                if self._write_rows is not None:  # the sink reads the buffer itself
                    self._write_rows(topic, records)
                    (<AvroRows>records).clear()
                else:
                    keys, values = (<AvroRows>records).take()
                    self._write(topic, (), keys, values)
            else:
                if self.encoder is not None:
                    index = self._schema_index.get(topic)
                    if index is None:
                        index = self.encoder._lookup(topic)  # KeyError: unknown (or id-less) topic
                    keys, values = self._encode_keyed(index, records)
                else:
                    keys, values = self._keys_of(<list>records), None
                self._write(topic, records, keys, values)
            _add_count(events, topic, n)
            written += n
        if recv_ns and written and self.timed:
            self.metrics.produce_latency.record(_time_ns() - recv_ns)
        return written

    cdef list _keys_of(self, list records):
        cdef dict cache = self._keys
        cdef list keys = []
        cdef object r, k, key
        for r in records:
            k = (r[0], r[1])
            key = cache.get(k)
            if key is None:
                key = cache[k] = f"{r[0]}:{r[1]}".encode()
            keys.append(key)
        return keys

    def discard(self):
        """Drop what the frame produced, unwritten (``atomfast process`` rebuilding its state
        from records whose outputs were delivered before)."""
        self._frame = {}
        for rows in self._bytes.values():
            (<AvroRows>rows).clear()

    def close(self):
        self.end_frame()
        self.sink.close()


cdef class NullCounts:
    """``atomfast.sinks.null.NullSink``'s counting, compiled (the sink is the benchmark's floor
    of the in-process path: its own Python was 30-40 opcodes per frame): messages per topic
    (``messages``, a dict or Counter) and value bytes."""

    cdef public object messages
    cdef public long long bytes

    def __init__(self, messages):
        self.messages = messages
        self.bytes = 0

    cdef inline void _count(self, str topic, Py_ssize_t n) except *:
        _add_count(self.messages, topic, n)

    cpdef write(self, str topic, object records, object keys, object values):
        cdef object v
        self._count(topic, len(keys))
        if values is not None:
            for v in values:
                self.bytes += len(v)

    cpdef write_rows(self, str topic, AvroRows rows):
        self._count(topic, rows.n)
        self.bytes += rows.size


cdef class FrameCore:
    """The hot part of ``atomfast.driver.FrameDriver``: one received frame, from its payload to
    the sink."""

    cdef public object scheme
    cdef public object pipeline
    cdef public object metrics
    cdef public object raw_tap
    cdef public object frame_hook
    #: ``scheme.max_frame_bytes``
    cdef public Py_ssize_t limit
    #: what a frame is handed to: the scheme's ``on_frame`` (its bound route table)
    cdef public object on_frame
    cdef object _end_frame
    cdef Pipeline _pipeline     # pipeline, where it is one: its end_frame called in C (else None)
    cdef bint _own_frame        # ``frame`` is this class's (no Python subclass overrides it)
    cdef object _errors
    cdef Counters _counters     # metrics, where it is one (else None)

    def __init__(self, scheme, pipeline, raw_tap=None, frame_hook=None):
        self.scheme = scheme
        self.pipeline = pipeline
        self.metrics = scheme.metrics
        self.raw_tap = raw_tap
        self.frame_hook = frame_hook
        self.limit = scheme.max_frame_bytes
        self.on_frame = scheme.on_frame
        self._end_frame = pipeline.end_frame
        self._pipeline = pipeline if isinstance(pipeline, Pipeline) else None
        self._own_frame = getattr(type(self), "frame") is getattr(FrameCore, "frame")
        self._errors = self.metrics.errors
        self._counters = self.metrics if isinstance(self.metrics, Counters) else None

    cpdef frame(self, conn, data, long long recv_ns, bint binary=False):
        """One received frame (bytes, or a memoryview valid during the call for a scheme with
        ``accepts_memoryview``), through the scheme to the sink."""
        self._frame(conn, data, recv_ns, recv_ns, binary)

    cdef int _frame(self, conn, data, object recv, long long recv_ns, bint binary) except -1:
        """``frame``, the receive time also as the object the caller has (``recv``: the replay's
        frame tuple holds it), handed to the scheme without making another."""
        cdef Py_ssize_t n = len(data)
        if self._counters is not None:
            self._counters.frames += 1
            self._counters.bytes += n
        else:
            self.metrics.frames += 1
            self.metrics.bytes += n
        if n > self.limit:
            self.too_large(conn, n, data)
            return 0
        if self.raw_tap is not None:
            self.raw_tap.frame(conn, data, recv, binary)
        if self.frame_hook is not None:
            self.frame_hook(conn, data, recv, binary)
        try:
            self.on_frame(conn, data, recv)
        except Exception as exc:  # a scheme must not raise; if it does, count it and go on
            self._errors.report("internal error", f"{type(exc).__name__}: {exc}", bytes(data[:200]))
        try:
            if self._pipeline is not None:
                self._pipeline.end_frame(recv_ns)
            else:
                self._end_frame(recv)
        except Exception as exc:
            self._errors.report("sink error", f"{type(exc).__name__}: {exc}")
        return 0

    def apply(self, conn, data, long long recv_ns):
        """A frame whose outputs were delivered before (``atomfast process`` rebuilding its books
        from ``raw``): the scheme's state follows it, nothing is published."""
        if len(data) > self.limit:
            return
        try:
            self.on_frame(conn, data, recv_ns)
        except Exception as exc:
            self._errors.report("internal error", f"{type(exc).__name__}: {exc}", bytes(data[:200]))
        self.pipeline.discard()

    def too_large(self, conn, Py_ssize_t n, data=b""):
        """A frame over ``max_frame_bytes`` (``n`` bytes; ``data`` a sample): counted bad input,
        the connection reconnected (its books reload)."""
        self.scheme.bad_input("frame too large", f"{n} bytes > {self.limit} (max_frame_bytes)", bytes(data[:200]))
        conn.reconnect("frame too large")

    def replay(self, frames, dict connections, connection, other, answer_fetches, list fetches,
               Py_ssize_t max_frames, recv_kind):
        """``atomfast.replay.Replay.run``'s loop over a capture's frames: received frames through
        ``frame`` (``connection(id, url)`` makes a connection ``connections`` lacks), the others
        to ``other(frame)``; after a frame that asked for REST answers (``fetches``),
        ``answer_fetches(recv_ns)``. Returns the receive time of the last frame."""
        cdef long long last_ns = 0
        cdef object metrics = self.metrics
        cdef object f, conn
        for f in frames:
            if type(f) is _Frame:  # (atomfast.capture.Frame: its fields by position)
                last_ns = (<tuple>f)[0]
                if (<tuple>f)[2] != recv_kind:
                    other(f)
                    continue
                conn = connections.get((<tuple>f)[1])
                if conn is None:
                    conn = connection((<tuple>f)[1], (<tuple>f)[3])
                if self._own_frame:
                    self._frame(conn, (<tuple>f)[4], (<tuple>f)[0], last_ns, (<tuple>f)[5])
                else:
                    self.frame(conn, (<tuple>f)[4], last_ns, (<tuple>f)[5])
            else:
                last_ns = f.ts_ns
                if f.kind != recv_kind:
                    other(f)
                    continue
                conn = connections.get(f.conn)
                if conn is None:
                    conn = connection(f.conn, f.url)
                self.frame(conn, f.data, last_ns, f.binary)
            if fetches:
                answer_fetches(last_ns)
            if max_frames and metrics.frames >= max_frames:
                break
        return last_ns
from atomfast._book import RecordRows
from atomfast.capture import Frame as _Frame

include "_kafka.pxi"
