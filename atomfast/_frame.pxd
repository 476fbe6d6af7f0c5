# The C interface of atomfast._frame that other compiled modules use (native/dispatch/_dispatch.pyx:
# a declared book shape counts its verified checksums without an attribute lookup). Implemented
# in native/frame/_frame.pyx.


cdef class Counters:
    cdef public long long frames
    cdef public long long bytes
    cdef public object events
    cdef public long long checksum_ok
