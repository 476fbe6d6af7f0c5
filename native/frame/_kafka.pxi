# The Kafka producer of the frame path, compiled (included by _frame.pyx: it records delivery
# latencies straight into LatencyHistogram, a C call).
#
# It drives librdkafka itself: the very library confluent-kafka loaded (found in this process's
# memory map, or beside the confluent_kafka package), opened with dlopen and called through a
# table of function pointers, so no librdkafka headers or development package are needed to
# build atomfast, and the version is always the one confluent-kafka ships. confluent-kafka is
# kept for the admin client and the consumers.
#
# Why (issue 15, bench/kafka_cpu.py): through confluent-kafka's Producer every message cost a
# Python call into C (``produce(topic, value, key)``: argument parsing, a message-state object)
# and a Python delivery callback (a Message object, a KafkaError, our bookkeeping in Python).
# Here a topic's batch of a frame is produced in one call, and the delivery reports are counted
# in C: per topic, the last offset and timestamp per partition, and the latencies into the
# histograms. Python is called only for a failure, a client error or a log line.
#
# The batch goes to librdkafka as one ``rd_kafka_produce_batch`` call (the partitioner's
# partition, RD_KAFKA_PARTITION_UA): ``rd_kafka_produce`` per message read the clock three times
# and took the topic's lock per message. What stays per message is librdkafka's own (an
# allocation and copy, the message-count lock, the partitioner's clock read, murmur2 and the
# partition's lock; at delivery the message-count lock again and the free). Serving the reports
# costs no measurable CPU beyond that: a build with no accounting at all in the callback (no
# GIL, no counting) measured the same, so librdkafka's event API would not gain either.
#
# The librdkafka API used is its stable public C API (rdkafka.h); the message struct below is
# ``rd_kafka_message_t`` as rdkafka.h declares it, unchanged since librdkafka 0.8.
from libc.stdint cimport int32_t, int64_t, intptr_t
from libc.stdlib cimport calloc, free, realloc
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize, PyBytes_GET_SIZE

cdef extern from *:
    """
    #include <dlfcn.h>
    #include <stdio.h>
    #include <time.h>
    typedef struct rd_kafka_s rd_kafka_t;
    typedef struct rd_kafka_conf_s rd_kafka_conf_t;
    typedef struct rd_kafka_topic_s rd_kafka_topic_t;
    typedef struct rd_kafka_topic_conf_s rd_kafka_topic_conf_t;
    typedef struct af_rd_kafka_message_s {
        int err;
        rd_kafka_topic_t *rkt;
        int32_t partition;
        void *payload;
        size_t len;
        void *key;
        size_t key_len;
        int64_t offset;
        void *_private;
    } af_message_t;
    typedef struct { int32_t id; char *host; int port; } af_md_broker_t;
    typedef struct { int32_t id; int err; int32_t leader; int replica_cnt; int32_t *replicas;
                     int isr_cnt; int32_t *isrs; } af_md_partition_t;
    typedef struct { char *topic; int partition_cnt; af_md_partition_t *partitions; int err; } af_md_topic_t;
    typedef struct { int broker_cnt; af_md_broker_t *brokers; int topic_cnt; af_md_topic_t *topics;
                     int32_t orig_broker_id; char *orig_broker_name; } af_metadata_t;
    typedef void (*af_dr_cb_t)(rd_kafka_t *, const af_message_t *, void *);
    typedef void (*af_error_cb_t)(rd_kafka_t *, int, const char *, void *);
    typedef void (*af_log_cb_t)(const rd_kafka_t *, int, const char *, const char *);
    typedef int (*af_stats_cb_t)(rd_kafka_t *, char *, size_t, void *);

    /* rdkafka.h's functions this producer calls, in the order of af_rdk_names */
    typedef struct {
        rd_kafka_conf_t *(*conf_new)(void);
        int (*conf_set)(rd_kafka_conf_t *, const char *, const char *, char *, size_t);
        void (*conf_set_dr_msg_cb)(rd_kafka_conf_t *, af_dr_cb_t);
        void (*conf_set_error_cb)(rd_kafka_conf_t *, af_error_cb_t);
        void (*conf_set_log_cb)(rd_kafka_conf_t *, af_log_cb_t);
        void (*conf_set_opaque)(rd_kafka_conf_t *, void *);
        void (*conf_destroy)(rd_kafka_conf_t *);
        rd_kafka_t *(*new_)(int, rd_kafka_conf_t *, char *, size_t);
        int (*set_log_queue)(rd_kafka_t *, void *);
        rd_kafka_topic_conf_t *(*default_topic_conf_dup)(rd_kafka_t *);
        void (*topic_conf_set_opaque)(rd_kafka_topic_conf_t *, void *);
        rd_kafka_topic_t *(*topic_new)(rd_kafka_t *, const char *, rd_kafka_topic_conf_t *);
        void *(*topic_opaque)(const rd_kafka_topic_t *);
        void (*topic_destroy)(rd_kafka_topic_t *);
        int (*produce)(rd_kafka_topic_t *, int32_t, int, void *, size_t, const void *, size_t, void *);
        int (*last_error)(void);
        int (*poll)(rd_kafka_t *, int);
        int (*flush)(rd_kafka_t *, int);
        int (*outq_len)(rd_kafka_t *);
        int (*purge)(rd_kafka_t *, int);
        void (*destroy)(rd_kafka_t *);
        const char *(*err2name)(int);
        const char *(*err2str)(int);
        int64_t (*message_timestamp)(const af_message_t *, int *);
        int64_t (*message_latency)(const af_message_t *);
        int (*fatal_error)(rd_kafka_t *, char *, size_t);
        const char *(*name)(const rd_kafka_t *);
        const char *(*version_str)(void);
        int (*metadata)(rd_kafka_t *, int, rd_kafka_topic_t *, const af_metadata_t **, int);
        void (*metadata_destroy)(const af_metadata_t *);
        void *(*opaque)(const rd_kafka_t *);
        void (*conf_set_stats_cb)(rd_kafka_conf_t *, af_stats_cb_t);
        int (*produce_batch)(rd_kafka_topic_t *, int32_t, int, af_message_t *, int);
    } af_rdk_t;
    static af_rdk_t af_rdk;
    static const char *af_rdk_names[] = {
        "rd_kafka_conf_new", "rd_kafka_conf_set", "rd_kafka_conf_set_dr_msg_cb",
        "rd_kafka_conf_set_error_cb", "rd_kafka_conf_set_log_cb", "rd_kafka_conf_set_opaque",
        "rd_kafka_conf_destroy", "rd_kafka_new", "rd_kafka_set_log_queue",
        "rd_kafka_default_topic_conf_dup", "rd_kafka_topic_conf_set_opaque", "rd_kafka_topic_new",
        "rd_kafka_topic_opaque", "rd_kafka_topic_destroy", "rd_kafka_produce", "rd_kafka_last_error",
        "rd_kafka_poll", "rd_kafka_flush", "rd_kafka_outq_len", "rd_kafka_purge", "rd_kafka_destroy",
        "rd_kafka_err2name", "rd_kafka_err2str", "rd_kafka_message_timestamp",
        "rd_kafka_message_latency", "rd_kafka_fatal_error", "rd_kafka_name", "rd_kafka_version_str",
        "rd_kafka_metadata", "rd_kafka_metadata_destroy", "rd_kafka_opaque",
        "rd_kafka_conf_set_stats_cb", "rd_kafka_produce_batch",
    };
    static int af_rdk_loaded = 0;
    static char af_rdk_problem[512];

    /* NULL when every function is found in the library at path, else what is wrong */
    static const char *af_rdk_load(const char *path) {
        size_t i, n = sizeof(af_rdk_names) / sizeof(af_rdk_names[0]);
        void **slots = (void **)&af_rdk;
        void *lib;
        if (af_rdk_loaded) return NULL;
        lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            snprintf(af_rdk_problem, sizeof af_rdk_problem, "%s", dlerror());
            return af_rdk_problem;
        }
        for (i = 0; i < n; i++) {
            slots[i] = dlsym(lib, af_rdk_names[i]);
            if (!slots[i]) {
                snprintf(af_rdk_problem, sizeof af_rdk_problem, "%s has no %s", path, af_rdk_names[i]);
                return af_rdk_problem;
            }
        }
        af_rdk_loaded = 1;
        return NULL;
    }

    static long long af_now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }
    """
    ctypedef struct rd_kafka_t
    ctypedef struct rd_kafka_conf_t
    ctypedef struct rd_kafka_topic_t
    ctypedef struct rd_kafka_topic_conf_t
    ctypedef struct af_message_t:
        int err
        rd_kafka_topic_t *rkt
        int32_t partition
        void *payload
        size_t len
        void *key
        size_t key_len
        int64_t offset
        void *_private
    ctypedef struct af_md_topic_t:
        char *topic
        int partition_cnt
        int err
    ctypedef struct af_metadata_t:
        int topic_cnt
        af_md_topic_t *topics
    ctypedef void (*af_dr_cb_t)(rd_kafka_t *, const af_message_t *, void *)
    ctypedef void (*af_error_cb_t)(rd_kafka_t *, int, const char *, void *)
    ctypedef void (*af_log_cb_t)(const rd_kafka_t *, int, const char *, const char *)
    ctypedef int (*af_stats_cb_t)(rd_kafka_t *, char *, size_t, void *)
    ctypedef struct af_rdk_t:
        rd_kafka_conf_t *(*conf_new)() nogil
        int (*conf_set)(rd_kafka_conf_t *, const char *, const char *, char *, size_t) nogil
        void (*conf_set_dr_msg_cb)(rd_kafka_conf_t *, af_dr_cb_t) nogil
        void (*conf_set_error_cb)(rd_kafka_conf_t *, af_error_cb_t) nogil
        void (*conf_set_log_cb)(rd_kafka_conf_t *, af_log_cb_t) nogil
        void (*conf_set_opaque)(rd_kafka_conf_t *, void *) nogil
        void (*conf_destroy)(rd_kafka_conf_t *) nogil
        rd_kafka_t *(*new_)(int, rd_kafka_conf_t *, char *, size_t) nogil
        int (*set_log_queue)(rd_kafka_t *, void *) nogil
        rd_kafka_topic_conf_t *(*default_topic_conf_dup)(rd_kafka_t *) nogil
        void (*topic_conf_set_opaque)(rd_kafka_topic_conf_t *, void *) nogil
        rd_kafka_topic_t *(*topic_new)(rd_kafka_t *, const char *, rd_kafka_topic_conf_t *) nogil
        void *(*topic_opaque)(const rd_kafka_topic_t *) nogil
        void (*topic_destroy)(rd_kafka_topic_t *) nogil
        int (*produce)(rd_kafka_topic_t *, int32_t, int, void *, size_t, const void *, size_t, void *) nogil
        int (*last_error)() nogil
        int (*poll)(rd_kafka_t *, int) nogil
        int (*flush)(rd_kafka_t *, int) nogil
        int (*outq_len)(rd_kafka_t *) nogil
        int (*purge)(rd_kafka_t *, int) nogil
        void (*destroy)(rd_kafka_t *) nogil
        const char *(*err2name)(int) nogil
        const char *(*err2str)(int) nogil
        int64_t (*message_timestamp)(const af_message_t *, int *) nogil
        int64_t (*message_latency)(const af_message_t *) nogil
        int (*fatal_error)(rd_kafka_t *, char *, size_t) nogil
        const char *(*name)(const rd_kafka_t *) nogil
        const char *(*version_str)() nogil
        int (*metadata)(rd_kafka_t *, int, rd_kafka_topic_t *, const af_metadata_t **, int) nogil
        void (*metadata_destroy)(const af_metadata_t *) nogil
        void *(*opaque)(const rd_kafka_t *) nogil
        void (*conf_set_stats_cb)(rd_kafka_conf_t *, af_stats_cb_t) nogil
        int (*produce_batch)(rd_kafka_topic_t *, int32_t, int, af_message_t *, int) nogil
    af_rdk_t af_rdk
    const char *af_rdk_load(const char *path)
    long long _af_now_ns "af_now_ns"() nogil

# rdkafka.h's constants
cdef enum:
    RD_KAFKA_PRODUCER = 0
    RD_KAFKA_PARTITION_UA = -1
    RD_KAFKA_MSG_F_COPY = 0x2
    RD_KAFKA_MSG_F_PARTITION = 0x8
    RD_KAFKA_RESP_ERR__QUEUE_FULL = -184
    RD_KAFKA_RESP_ERR__FATAL = -150
    RD_KAFKA_PURGE_F_QUEUE = 0x1
    RD_KAFKA_PURGE_F_INFLIGHT = 0x2

# messages per rd_kafka_produce_batch call (a frame's batch of a topic is one call, a book
# snapshot's a few)
cdef enum:
    AF_BATCH = 1024


def load_librdkafka(str path):
    """Open librdkafka at ``path`` (once per process; later calls are no-ops). Raises OSError
    naming what is missing."""
    cdef bytes b = path.encode()
    cdef const char *problem = af_rdk_load(b)
    if problem != NULL:
        raise OSError(f"librdkafka at {path}: {problem.decode('utf-8', 'replace')}")
    return af_rdk.version_str().decode()


ctypedef struct TopicState:
    rd_kafka_topic_t *rkt
    int64_t delivered
    int32_t nparts          # size of the two arrays below
    int64_t *offsets        # per partition: the last delivered offset (-1: none yet)
    int64_t *times          # and that message's timestamp (ms)


cdef class KafkaProducer:
    """A librdkafka producer whose hot path is C: :meth:`produce` takes a topic's keys and values
    (lists of bytes) in one call; delivery reports are counted here.

    ``config``: librdkafka properties (values str, int or bool). ``on_failure(topic, code, key,
    value)``: a message that was not delivered (or not accepted by ``produce``); ``on_error(code,
    reason, fatal)``: a client error; ``on_log(level, facility, text)``: a librdkafka log line
    (syslog level); ``on_stats(json)``: librdkafka's statistics (``statistics.interval.ms``).
    All of them are called from :meth:`poll` / :meth:`flush` on the caller's thread
    (``log.queue``: librdkafka's threads never call Python). ``latency`` (produce -> delivery
    report) and ``receipt_latency`` (the ``receipt_ns`` a message was produced with -> delivery
    report) are LatencyHistograms or None."""

    cdef rd_kafka_t *rk
    cdef af_message_t *batch  # AF_BATCH messages: the next rd_kafka_produce_batch call's
    cdef TopicState *topics
    cdef int ntopics
    cdef int cap
    cdef dict _index
    cdef list _names
    cdef public object on_failure
    cdef public object on_error
    cdef public object on_log
    cdef public object on_stats
    cdef public LatencyHistogram latency
    cdef public LatencyHistogram receipt_latency
    cdef readonly long long delivered_total
    # KafkaSink.write's common case, compiled (``write``): the sink's topics by their unprefixed
    # names, what it does when something is amiss, and the frame's receipt (``note_receipt``)
    cdef dict _sink_topics
    cdef public object slow_write
    cdef public object queue_full
    cdef public bint diverted
    cdef public bint key_partition
    cdef public long long receipt_ns
    # ``write`` / ``write_rows`` end with ``poll(0)`` (the reports that are in, served); False:
    # only the sink's housekeeping polls (the benchmark's contrast, bench/latency.py)
    cdef public bint poll_after_write
    # exact receipt -> delivery samples (ns), for the benchmark (``keep_receipt_samples``)
    cdef int64_t *rsamples
    cdef Py_ssize_t rsamples_n, rsamples_cap, rsamples_max
    cdef readonly long long receipt_samples_missed

    def __cinit__(self):
        self.rk = NULL
        self.topics = NULL
        self.batch = <af_message_t *>calloc(AF_BATCH, sizeof(af_message_t))
        if self.batch == NULL:
            raise MemoryError()
        self.ntopics = 0
        self.cap = 0
        self.poll_after_write = True
        self.rsamples = NULL
        self.rsamples_n = self.rsamples_cap = self.rsamples_max = 0

    def __init__(self, dict config, on_failure, on_error=None, on_log=None,
                 LatencyHistogram latency=None, LatencyHistogram receipt_latency=None, on_stats=None):
        if af_rdk.conf_new == NULL:
            raise RuntimeError("librdkafka is not loaded: call load_librdkafka(path) first")
        self._index = {}
        self._names = []
        self._sink_topics = {}
        self.slow_write = self.queue_full = None
        self.diverted = True  # until a sink says how to fall back (bind_sink)
        self.on_failure = on_failure
        self.on_error = on_error
        self.on_log = on_log
        self.on_stats = on_stats
        self.latency = latency
        self.receipt_latency = receipt_latency
        cdef char errstr[512]
        cdef rd_kafka_conf_t *conf = af_rdk.conf_new()
        cdef bytes k, v
        items = dict(config)
        items["log.queue"] = True  # log lines wait for poll(): no Python from librdkafka's threads
        try:
            for key, value in items.items():
                if isinstance(value, bool):
                    value = "true" if value else "false"
                k, v = str(key).encode(), str(value).encode()
                if af_rdk.conf_set(conf, k, v, errstr, sizeof(errstr)) != 0:
                    raise ValueError(errstr.decode("utf-8", "replace"))
        except BaseException:
            af_rdk.conf_destroy(conf)
            raise
        af_rdk.conf_set_dr_msg_cb(conf, <af_dr_cb_t>_on_delivery_report)
        af_rdk.conf_set_error_cb(conf, <af_error_cb_t>_on_client_error)
        af_rdk.conf_set_log_cb(conf, <af_log_cb_t>_on_log_line)
        if on_stats is not None:
            af_rdk.conf_set_stats_cb(conf, <af_stats_cb_t>_on_statistics)
        af_rdk.conf_set_opaque(conf, <void *>self)
        self.rk = af_rdk.new_(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr))
        if self.rk == NULL:  # conf is still ours
            af_rdk.conf_destroy(conf)
            raise ValueError(errstr.decode("utf-8", "replace"))
        af_rdk.set_log_queue(self.rk, NULL)  # the main queue: served by poll()

    def __dealloc__(self):
        self._destroy()
        cdef int i
        for i in range(self.ntopics):
            free(self.topics[i].offsets)
            free(self.topics[i].times)
        free(self.topics)
        free(self.batch)
        free(self.rsamples)

    cdef void _destroy(self) noexcept:
        """The librdkafka handle and topics (the counts stay readable)."""
        cdef int i
        cdef rd_kafka_t *rk = self.rk
        if rk == NULL:
            return
        self.rk = NULL
        for i in range(self.ntopics):
            af_rdk.topic_destroy(self.topics[i].rkt)
            self.topics[i].rkt = NULL
        with nogil:
            af_rdk.destroy(rk)

    cdef inline int _check(self) except -1:
        if self.rk == NULL:
            raise RuntimeError("the Kafka producer is closed")
        return 0

    cpdef int topic(self, str name) except -1:
        """The index of topic ``name`` (created on first use)."""
        cdef object i = self._index.get(name)
        if i is not None:
            return <int>i
        self._check()
        cdef bytes b = name.encode()
        cdef TopicState *grown
        if self.ntopics == self.cap:
            grown = <TopicState *>realloc(self.topics, (self.cap * 2 + 8) * sizeof(TopicState))
            if grown == NULL:
                raise MemoryError()
            self.topics = grown
            self.cap = self.cap * 2 + 8
        cdef rd_kafka_topic_conf_t *tconf = af_rdk.default_topic_conf_dup(self.rk)
        af_rdk.topic_conf_set_opaque(tconf, <void *><intptr_t>self.ntopics)
        cdef rd_kafka_topic_t *rkt = af_rdk.topic_new(self.rk, b, tconf)
        if rkt == NULL:
            raise ValueError(f"topic {name!r}: {af_rdk.err2str(af_rdk.last_error()).decode()}")
        cdef TopicState *t = &self.topics[self.ntopics]
        t.rkt = rkt
        t.delivered = 0
        t.nparts = 0
        t.offsets = NULL
        t.times = NULL
        self._index[name] = self.ntopics
        self._names.append(name)
        self.ntopics += 1
        return self.ntopics - 1

    cpdef Py_ssize_t produce(self, int topic, list keys, list values, Py_ssize_t start=0,
                             long long receipt_ns=0, bint key_partition=False) except -1:
        """Produce ``values[start:]`` keyed by ``keys[start:]`` (bytes; a key may be None) to
        topic number ``topic``; returns where it stopped: ``len(values)``, or the index of the
        first message the full local queue did not take (back-pressure: poll and call again
        from there). A message librdkafka refuses for another reason (too large, say) goes to
        ``on_failure``. ``key_partition``: the key is the partition number
        (decimal). ``receipt_ns``: the frame's receive time (wall clock), for
        ``receipt_latency``."""
        self._check()
        if topic < 0 or topic >= self.ntopics:
            raise IndexError(f"no topic number {topic}")
        cdef Py_ssize_t i, n = len(values)
        if len(keys) != n:
            raise ValueError(f"{len(keys)} keys for {n} values")
        cdef rd_kafka_topic_t *rkt = self.topics[topic].rkt
        cdef object key, value
        cdef const char *kp
        cdef Py_ssize_t kn
        cdef int32_t partition = RD_KAFKA_PARTITION_UA
        cdef int err, j, cnt, took
        cdef af_message_t *m
        cdef object bad
        if not key_partition:
            # the partitioner's (murmur2_random): one rd_kafka_produce_batch call per AF_BATCH
            i = start
            while i < n:
                cnt = <int>(n - i) if n - i < AF_BATCH else AF_BATCH
                bad = None
                for j in range(cnt):
                    key = keys[i + j]
                    value = values[i + j]
                    if not PyBytes_Check(value):
                        bad = TypeError(f"values must be bytes, not {type(value).__name__}")
                    elif key is None:
                        kp, kn = NULL, 0
                    elif PyBytes_Check(key):
                        kp, kn = PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key)
                    else:
                        bad = TypeError(f"keys must be bytes or None, not {type(key).__name__}")
                    if bad is not None:  # the messages before it are produced, as one by one
                        cnt = j
                        break
                    m = &self.batch[j]
                    m.payload = PyBytes_AS_STRING(value)
                    m.len = PyBytes_GET_SIZE(value)
                    m.key = <void *>kp
                    m.key_len = kn
                    m._private = <void *><intptr_t>receipt_ns
                took = self._produce_batch(topic, cnt, keys, values, i)
                if took < cnt:
                    return i + took
                if bad is not None:
                    raise bad
                i += cnt
            return n
        for i in range(start, n):
            key = keys[i]
            value = values[i]
            if not PyBytes_Check(value):
                raise TypeError(f"values must be bytes, not {type(value).__name__}")
            if key is None:
                kp, kn = NULL, 0
            elif PyBytes_Check(key):
                kp, kn = PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key)
            else:
                raise TypeError(f"keys must be bytes or None, not {type(key).__name__}")
            if key_partition:
                partition = int(key)
            if af_rdk.produce(rkt, partition, RD_KAFKA_MSG_F_COPY, PyBytes_AS_STRING(value),
                              PyBytes_GET_SIZE(value), kp, kn, <void *><intptr_t>receipt_ns) != 0:
                err = af_rdk.last_error()
                if err == RD_KAFKA_RESP_ERR__QUEUE_FULL:
                    return i
                self.on_failure(self._names[topic], err, key, value)
        return n

    cdef int _produce_batch(self, int topic, int cnt, list keys, list values, Py_ssize_t base) except -1:
        """``rd_kafka_produce_batch`` of the ``cnt`` messages set up in ``self.batch`` (message
        ``j`` is ``keys[base + j]`` and ``values[base + j]``, or its payload when ``values`` is
        None) to topic number ``topic``, partitioned by the configured partitioner. Returns how
        many were taken before the first that the full local queue refused (``cnt``: all);
        librdkafka refuses every later message of the call too (``_QUEUE_FULL`` is propagated),
        so the caller retries from there. A message refused for another reason goes to
        ``on_failure``."""
        cdef af_message_t *ms = self.batch
        cdef int j, err, took = cnt
        if cnt <= 0:
            return 0
        if af_rdk.produce_batch(self.topics[topic].rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                                ms, cnt) == cnt:
            return cnt
        failed = []  # read out of the array before any Python runs (it may produce again)
        for j in range(cnt):
            err = ms[j].err
            if err == 0:
                continue
            if err == RD_KAFKA_RESP_ERR__QUEUE_FULL:
                took = j
                break
            if values is not None:
                value = values[base + j]
            else:
                value = PyBytes_FromStringAndSize(<char *>ms[j].payload, ms[j].len)
            failed.append((err, keys[base + j], value))
        for err, key, value in failed:
            self.on_failure(self._names[topic], err, key, value)
        return took

    cdef Py_ssize_t _produce_rows(self, int topic, AvroRows rows, long long receipt_ns) except -1:
        """``produce`` of a frame's ``AvroRows``: each value straight from the rows' buffer (no
        bytes object per event); returns where it stopped (as ``produce``)."""
        cdef rd_kafka_topic_t *rkt = self.topics[topic].rkt
        cdef Py_ssize_t i, base, start = 0, n = rows.n
        cdef list keys = rows.keys
        cdef object key
        cdef int32_t partition = RD_KAFKA_PARTITION_UA
        cdef int err, j, cnt, took
        cdef af_message_t *m
        if not self.key_partition:
            base = 0
            while base < n:
                cnt = <int>(n - base) if n - base < AF_BATCH else AF_BATCH
                for j in range(cnt):
                    key = <object>PyList_GET_ITEM(keys, base + j)
                    m = &self.batch[j]
                    m.payload = rows.buf + start
                    m.len = rows.ends[base + j] - start
                    m.key = PyBytes_AS_STRING(key)
                    m.key_len = PyBytes_GET_SIZE(key)
                    m._private = <void *><intptr_t>receipt_ns
                    start = rows.ends[base + j]
                took = self._produce_batch(topic, cnt, keys, None, base)
                if took < cnt:
                    return base + took
                base += cnt
            return n
        for i in range(n):
            key = <object>PyList_GET_ITEM(keys, i)
            if self.key_partition:
                partition = int(key)
            if af_rdk.produce(rkt, partition, RD_KAFKA_MSG_F_COPY, rows.buf + start, rows.ends[i] - start,
                              PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), <void *><intptr_t>receipt_ns) != 0:
                err = af_rdk.last_error()
                if err == RD_KAFKA_RESP_ERR__QUEUE_FULL:
                    return i
                self.on_failure(self._names[topic], err, key, rows.buf[start:rows.ends[i]])
            start = rows.ends[i]
        return n

    cpdef write_rows(self, str topic, AvroRows rows):
        """``KafkaSink.write_rows``: a frame's events of ``topic`` as written by the book and the
        typed writers, produced from the rows' buffer; what the compiled path does not take (as
        ``write``) goes to the sink's Python as ``(keys, values)``. The rows are left to the
        caller to clear."""
        cdef object number = self._sink_topics.get(topic)
        if self.diverted or self.rk == NULL or number is None:
            keys, values = rows.take()
            return self.slow_write(topic, (), keys, values)
        cdef Py_ssize_t i = self._produce_rows(<int>number, rows, self.receipt_ns)
        if i < rows.n:
            keys, values = rows.take()
            return self.queue_full(topic, number, (), keys, values, i)
        if self.poll_after_write:
            af_rdk.poll(self.rk, 0)

    def bind_sink(self, slow_write, queue_full, bint key_partition):
        """``write`` serves a sink: ``slow_write(topic, records, keys, values)`` takes what the
        compiled path does not (``diverted``, a topic not seen yet, keys or values not lists);
        ``queue_full(topic, number, records, keys, values, i)`` a write the local queue filled at
        message ``i``."""
        self.slow_write, self.queue_full, self.key_partition = slow_write, queue_full, key_partition
        self.diverted = False

    def sink_topic(self, str topic, int number):
        """The sink's ``topic`` (unprefixed) is topic number ``number`` here."""
        self._sink_topics[topic] = number

    cpdef note_receipt(self, long long recv_ns):
        """The receive time of the frame whose events the next writes carry (0: none)."""
        self.receipt_ns = recv_ns

    cpdef write(self, str topic, object records, object keys, object values):
        """``KafkaSink.write`` (the Sink protocol) when nothing is amiss: the batch produced, the
        delivery reports that are in served; anything else goes to the sink's Python."""
        if self.diverted or self.rk == NULL or type(keys) is not list or type(values) is not list:
            return self.slow_write(topic, records, keys, values)
        cdef object number = self._sink_topics.get(topic)
        cdef Py_ssize_t n = len(<list>values)
        if number is None or len(<list>keys) != n:
            return self.slow_write(topic, records, keys, values)
        cdef Py_ssize_t i = self.produce(<int>number, <list>keys, <list>values, 0, self.receipt_ns,
                                         self.key_partition)
        if i < n:
            return self.queue_full(topic, number, records, keys, values, i)
        if self.poll_after_write:
            af_rdk.poll(self.rk, 0)

    cpdef int poll(self, double timeout=0) except -1:
        """Serve the delivery reports, errors and log lines that are in (waiting up to
        ``timeout`` seconds for one); returns how many events were served."""
        self._check()
        cdef int ms = <int>(timeout * 1000)
        cdef int served
        if ms <= 0:
            return af_rdk.poll(self.rk, 0)
        with nogil:
            served = af_rdk.poll(self.rk, ms)
        return served

    def flush(self, double timeout):
        """Wait up to ``timeout`` seconds until every queued message has its delivery report
        served; returns how many remain."""
        self._check()
        cdef int ms = <int>(timeout * 1000)
        with nogil:
            af_rdk.flush(self.rk, ms)
        return af_rdk.outq_len(self.rk)

    def purge(self, bint in_queue=True, bint in_flight=False):
        """Take back the queued messages (their reports, error ``_PURGE_QUEUE``, come with the
        next poll)."""
        self._check()
        af_rdk.purge(self.rk, (RD_KAFKA_PURGE_F_QUEUE if in_queue else 0)
                     | (RD_KAFKA_PURGE_F_INFLIGHT if in_flight else 0))

    def partition_count(self, str name, double timeout):
        """The number of partitions of topic ``name`` as the broker says now (refreshing this
        producer's metadata); 0 when it has none or is unknown."""
        self._check()
        cdef rd_kafka_topic_t *rkt = self.topics[self.topic(name)].rkt
        cdef const af_metadata_t *md = NULL
        cdef int err, count = 0
        with nogil:
            err = af_rdk.metadata(self.rk, 0, rkt, &md, <int>(timeout * 1000))
        if err != 0:
            raise OSError(f"metadata of {name!r}: {af_rdk.err2name(err).decode()}")
        if md.topic_cnt > 0 and md.topics[0].err == 0:
            count = md.topics[0].partition_cnt
        af_rdk.metadata_destroy(md)
        return count

    def keep_receipt_samples(self, Py_ssize_t max_samples):
        """From now on keep every receipt -> delivery latency (ns) as well as recording it in
        ``receipt_latency``, up to ``max_samples`` (later ones are counted in
        ``receipt_samples_missed``); the samples kept so far are dropped. 0: keep none. For
        the benchmark's exact percentiles (the histogram's buckets are ~4.4% wide)."""
        free(self.rsamples)
        self.rsamples = NULL
        self.rsamples_n = self.rsamples_cap = 0
        self.rsamples_max = max_samples if max_samples > 0 else 0
        self.receipt_samples_missed = 0

    def receipt_samples(self):
        """The receipt -> delivery samples kept (``keep_receipt_samples``), in delivery order:
        bytes of native int64 (``array('q', ...)``), ns."""
        return PyBytes_FromStringAndSize(<char *>self.rsamples, self.rsamples_n * sizeof(int64_t))

    cdef int _keep_receipt_sample(self, int64_t ns) except -1:
        cdef Py_ssize_t cap
        cdef int64_t *grown
        if self.rsamples_n == self.rsamples_cap:
            if self.rsamples_cap >= self.rsamples_max:
                self.receipt_samples_missed += 1
                return 0
            cap = self.rsamples_cap * 2 if self.rsamples_cap else 65536
            if cap > self.rsamples_max:
                cap = self.rsamples_max
            grown = <int64_t *>realloc(self.rsamples, cap * sizeof(int64_t))
            if grown == NULL:
                raise MemoryError()
            self.rsamples, self.rsamples_cap = grown, cap
        self.rsamples[self.rsamples_n] = ns
        self.rsamples_n += 1
        return 0

    def __len__(self):
        """Messages in the local queue or in flight, without a delivery report served yet."""
        return 0 if self.rk == NULL else af_rdk.outq_len(self.rk)

    def progress(self):
        """``(delivered, partitions)``: topic -> delivered count (topics with any), and topic ->
        partition -> [last delivered offset, its timestamp in ms]."""
        cdef int i, p
        cdef TopicState *t
        delivered, partitions = {}, {}
        for i in range(self.ntopics):
            t = &self.topics[i]
            name = self._names[i]
            if t.delivered:
                delivered[name] = t.delivered
            for p in range(t.nparts):
                if t.offsets[p] >= 0:
                    partitions.setdefault(name, {})[p] = [t.offsets[p], t.times[p]]
        return delivered, partitions

    def close(self):
        """Destroy the librdkafka handle (flush first: what is still queued is lost). Idempotent."""
        self._destroy()

    cdef int _delivered(self, const af_message_t *m) except -1:
        cdef intptr_t i = <intptr_t>af_rdk.topic_opaque(m.rkt)
        cdef TopicState *t = &self.topics[i]
        cdef int32_t p = m.partition
        cdef int32_t n, j
        cdef int64_t *grown
        cdef int tstype
        t.delivered += 1
        self.delivered_total += 1
        if p >= t.nparts:
            n = p + 1 if p + 1 > t.nparts * 2 else t.nparts * 2
            grown = <int64_t *>realloc(t.offsets, n * sizeof(int64_t))
            if grown == NULL:
                raise MemoryError()
            t.offsets = grown
            grown = <int64_t *>realloc(t.times, n * sizeof(int64_t))
            if grown == NULL:
                raise MemoryError()
            t.times = grown
            for j in range(t.nparts, n):
                t.offsets[j] = -1
                t.times[j] = 0
            t.nparts = n
        t.offsets[p] = m.offset
        t.times[p] = af_rdk.message_timestamp(m, &tstype)
        cdef int64_t us
        if self.latency is not None:
            us = af_rdk.message_latency(m)
            if us >= 0:
                self.latency.record(us * 1000)
        cdef long long since_receipt
        if self.receipt_latency is not None and m._private != NULL:
            since_receipt = _af_now_ns() - <long long><intptr_t>m._private
            self.receipt_latency.record(since_receipt)
            if self.rsamples_max:
                self._keep_receipt_sample(since_receipt)
        return 0

    cdef int _failed(self, const af_message_t *m) except -1:
        cdef intptr_t i = <intptr_t>af_rdk.topic_opaque(m.rkt)
        key = None if m.key == NULL else PyBytes_FromStringAndSize(<char *>m.key, m.key_len)
        value = b"" if m.payload == NULL else PyBytes_FromStringAndSize(<char *>m.payload, m.len)
        self.on_failure(self._names[i], m.err, key, value)
        return 0


def error_name(int code):
    """librdkafka's name of an error code (``_QUEUE_FULL``, ``MSG_SIZE_TOO_LARGE``...)."""
    return af_rdk.err2name(code).decode()


def error_text(int code):
    return af_rdk.err2str(code).decode("utf-8", "replace")


cdef void _on_delivery_report(rd_kafka_t *rk, const af_message_t *m, void *opaque) noexcept with gil:
    cdef KafkaProducer self = <KafkaProducer>opaque
    try:
        if m.err == 0:
            self._delivered(m)
        else:
            self._failed(m)
    except BaseException:  # noqa - a broken hook must not break the accounting of the others
        import logging
        logging.getLogger("atomfast.sinks.kafka").exception("kafka delivery report handling failed")


cdef void _on_client_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) noexcept with gil:
    cdef KafkaProducer self = <KafkaProducer>opaque
    cdef char buf[512]
    cdef bint fatal = err == RD_KAFKA_RESP_ERR__FATAL
    if fatal:  # the underlying error
        err = af_rdk.fatal_error(rk, buf, sizeof(buf))
        text = buf.decode("utf-8", "replace")
    else:
        text = reason.decode("utf-8", "replace")
    if self.on_error is None:
        return
    try:
        self.on_error(err, text, fatal)
    except BaseException:
        import logging
        logging.getLogger("atomfast.sinks.kafka").exception("kafka error callback failed")


cdef void _on_log_line(const rd_kafka_t *rk, int level, const char *fac, const char *buf) noexcept with gil:
    cdef KafkaProducer self
    cdef void *opaque = NULL
    # the conf opaque is not passed to log_cb: find the producer through rd_kafka_opaque
    opaque = af_rdk.opaque(rk)
    if opaque == NULL:
        return
    self = <KafkaProducer>opaque
    if self.on_log is None:
        return
    try:
        self.on_log(level, fac.decode("utf-8", "replace"), buf.decode("utf-8", "replace"))
    except BaseException:
        pass


cdef int _on_statistics(rd_kafka_t *rk, char *json, size_t n, void *opaque) noexcept with gil:
    cdef KafkaProducer self = <KafkaProducer>opaque
    try:
        self.on_stats(json[:n].decode("utf-8", "replace"))
    except BaseException:
        import logging
        logging.getLogger("atomfast.sinks.kafka").exception("kafka statistics callback failed")
    return 0  # librdkafka frees the text
