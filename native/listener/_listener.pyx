# cython: language_level=3
# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# cython: nonecheck=False, overflowcheck=False, infer_types=True, embedsignature=True
"""picows' listener, compiled: the common frame (a whole TEXT or BINARY message within the
scheme's limit) goes from picows' read buffer to the frame driver without a Python frame.

``atomfast.feed._Listener`` subclasses it and handles the rest in Python (fragments, control
frames, frames over the limit: ``on_other_frame``). Built against picows' own declarations
(``picows.pxd``); where the installed picows does not match the one it was built with, its
import fails and the feed uses its Python listener (same behaviour, slower).

Measured before it existed (a live run against ``atomfast simulate`` of the Kraken book capture,
opcode tracing): the Python ``on_ws_frame`` ran 63 CPython opcodes per frame.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

from picows.picows cimport WSFrame, WSListener, WSMsgType, WSTransport


cdef inline long long _now_ns() noexcept:
    """``time.time_ns()`` without the Python call."""
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return ts.tv_sec * 1000000000LL + ts.tv_nsec


cdef class FrameListener(WSListener):
    """One connection attempt's picows callbacks; the hot one here."""

    #: the ``FeedConnection`` (``closing``, ``last_ns``), the driver's ``frame``, the group
    cdef public object conn
    cdef public object deliver
    cdef public object group
    cdef public object metrics
    #: ``scheme.max_frame_bytes``; ``max_frames`` (0: none) stops the group
    cdef public Py_ssize_t limit
    cdef public Py_ssize_t max_frames
    #: hand the scheme a memoryview of picows' buffer (valid during the call) instead of bytes
    cdef public bint memoryview

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef object conn = self.conn
        if conn.closing is not None:
            return  # closing (reconnect/stop requested): nothing more from this connection
        cdef WSMsgType mt = frame.msg_type
        cdef long long recv_ns
        if (mt == WSMsgType.TEXT or mt == WSMsgType.BINARY) and frame.fin and frame.payload_size <= self.limit:
            if self.memoryview:
                data = frame.get_payload_as_memoryview()
            else:
                data = PyBytes_FromStringAndSize(frame.payload_ptr, frame.payload_size)
            recv_ns = _now_ns()
            conn.last_ns = recv_ns
            self.deliver(conn, data, recv_ns, mt == WSMsgType.BINARY)
            if self.max_frames and self.metrics.frames >= self.max_frames:
                self.group.stop("max frames")
            return
        self.on_other_frame(transport, frame)

    def on_other_frame(self, transport, frame):
        """Everything but a whole message within the limit (the subclass's)."""
        raise NotImplementedError
