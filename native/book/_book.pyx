# cython: language_level=3
# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# cython: nonecheck=False, overflowcheck=False, infer_types=True, embedsignature=True
"""Compiled order books for atomfast: L2 (price levels) and L3 (order by order).

Everything that moves on the hot path lives in C:

* Prices and sizes arrive as the exchange's decimal strings (``str`` or ``bytes``) and are
  parsed here, straight from the string's buffer, into ``int64`` ticks at the book's fixed
  scale (``price_decimals`` / ``size_decimals``). Floats are never compared: a float only
  appears on the way out (``best_bid()`` and friends).
* Each side is a red-black tree of ``Level`` structs keyed on the exact price in ticks. The
  nodes live in one pool per book: a malloc/realloc'ed array of structs, addressed by
  ``int32`` index (index 0 is the tree's black sentinel), with a free list. No Python
  object exists per level. Insert/update/delete are O(log n); the best level of each side
  is cached, so best bid/ask are O(1); top-N walks the tree in order.
* Each level remembers how many decimals its price and size were SENT with, so the
  exchange's string can be rebuilt exactly ("0.1000" comes back as "0.1000"); the
  exchange checksums (Kraken, OKX, Bitfinex) are computed from those rebuilt strings:
  written into one stack buffer (digits 8 at a time, SWAR), then one CRC-32 pass over it
  (the same CRC as zlib's; carry-less multiplication where the CPU has PCLMULQDQ, else
  slicing-by-8 tables). No Python string. A book that computes checksums keeps the texts
  of the levels its last checksum wrote (a fixed 6.4 KB, see "Checksum text cache") and
  only rewrites the levels that changed since.
* The parse of a plain ``digits[.digits]`` string (what exchanges send) takes a fast path
  (one pass, 8 fraction digits at once); exponents and errors go to the general parser.

The L3 book keeps, per level, a doubly linked list of ``Order`` structs (arrival order) in a
second pool and maintains the level's total size. Only the order-id -> slot map is a Python
``dict`` (see ``L3Book``).

Not thread-safe: a book belongs to one thread (the hot path holds the GIL throughout).
"""

from libc.stdint cimport int64_t, uint64_t, int32_t, uint32_t, uint16_t, uint8_t, INT64_MAX
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memset, memcpy, memmove, memcmp
from cpython.unicode cimport PyUnicode_Check, PyUnicode_CheckExact
from cpython.long cimport PyLong_CheckExact
from cpython.bytes cimport PyBytes_Check, PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from cpython.object cimport PyObject, PyTypeObject, PyObject_GetAttr
from cpython.list cimport PyList_CheckExact, PyList_GET_SIZE, PyList_GET_ITEM, PyList_Append
from cpython.tuple cimport PyTuple_Check, PyTuple_CheckExact, PyTuple_GET_SIZE, PyTuple_GET_ITEM
from cpython.type cimport PyType_IsSubtype
from cpython.buffer cimport PyObject_CheckBuffer, PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytearray cimport PyByteArray_Check


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t* size) except NULL
    bint PyUnicode_IS_COMPACT_ASCII(object unicode)
    void* PyUnicode_DATA(object unicode)
    Py_ssize_t PyUnicode_GET_LENGTH(object unicode)
    object PyUnicode_DecodeASCII(const char* s, Py_ssize_t size, const char* errors)
    long long PyLong_AsLongLongAndOverflow(object obj, int* overflow) except? -1


cdef extern from *:
    """
    /* One event row: an instance of a tuple subclass (a NamedTuple such as events.Lob) built
       the way tuple.__new__(cls, ...) builds one (cls->tp_alloc), with its 7 fields
       (exchange, symbol, price, size, side, event_timestamp, atom_timestamp) set in place. */
    static PyObject* af_row7(PyTypeObject* t, PyObject* a, PyObject* b, double p, PyObject* pobj,
                             double s, PyObject* sobj, PyObject* side, PyObject* e, PyObject* at) {
        PyObject* row = t->tp_alloc(t, 7);
        PyObject* fp;
        PyObject* fs;
        if (row == NULL) return NULL;
        fp = pobj ? PyFloat_FromString(pobj) : PyFloat_FromDouble(p);
        if (fp == NULL) { Py_DECREF(row); return NULL; }
        fs = sobj ? PyFloat_FromString(sobj) : PyFloat_FromDouble(s);
        if (fs == NULL) { Py_DECREF(fp); Py_DECREF(row); return NULL; }
        Py_INCREF(a); Py_INCREF(b); Py_INCREF(side); Py_INCREF(e); Py_INCREF(at);
        PyTuple_SET_ITEM(row, 0, a);
        PyTuple_SET_ITEM(row, 1, b);
        PyTuple_SET_ITEM(row, 2, fp);
        PyTuple_SET_ITEM(row, 3, fs);
        PyTuple_SET_ITEM(row, 4, side);
        PyTuple_SET_ITEM(row, 5, e);
        PyTuple_SET_ITEM(row, 6, at);
        return row;
    }
    """
    object af_row7(PyTypeObject* t, object a, object b, double p, PyObject* pobj, double s,
                   PyObject* sobj, object side, object e, object at)


# ---------------------------------------------------------------------------------------
# Public constants
# ---------------------------------------------------------------------------------------

BID = 0
ASK = 1
TOP_CHANGED = 1   # best bid or best ask price or size changed by this call
CROSSED = 2       # after this call best bid >= best ask (both sides non-empty)
UNKNOWN = 4       # delete/update of a level or order that is not in the book (book unchanged)

# L2Book.apply_update: the checksum an update is checked against (its kind: the book's
# checksum_* method that computes it) ...
CHECKSUM_NONE = 0           # none: the update is applied unchecked
CHECKSUM_KRAKEN = 1         # checksum_kraken(): the values as sent (Kraken v1 strings)
CHECKSUM_KRAKEN_SCALED = 2  # checksum_kraken(True): at the book's scale (Kraken v2 numbers)
CHECKSUM_OKX = 3            # checksum_okx() (signed)
CHECKSUM_BITFINEX = 4       # checksum_bitfinex() (signed)
# ... and what came of it
UPDATE_OK = 0               # applied, its rows written, the checksum equal (or none asked)
UPDATE_MISMATCH = 1         # applied, its lob rows written, the checksum different: no spread
UPDATE_NOT_APPLIED = -1     # a malformed level, time or expected checksum: nothing applied,
                            # nothing written (the caller's step-by-step path says what)

cdef enum:
    C_BID = 0
    C_ASK = 1
    F_TOP = 1
    F_CROSSED = 2
    F_UNKNOWN = 4

cdef enum:
    K_NONE = 0
    K_KRAKEN = 1
    K_KRAKEN_SCALED = 2
    K_OKX = 3
    K_BITFINEX = 4
    U_OK = 0
    U_MISMATCH = 1
    U_NOT_APPLIED = -1

cdef enum:
    MAX_SCALE = 18           # 10**18 < 2**63: the largest scale whose unit fits in int64
    MAX_SENT = 255           # sent decimals are stored in a uint8
    FMT_BUF = 320            # sign + 19 integer digits + '.' + 255 decimals, with room for
                             # the fixed-size (8..25 byte) stores the formatters make
    CK_BUF = 4096            # a checksum's string buffer (on the stack), flushed to the CRC
                             # when more than CK_BUF - 2 * FMT_BUF (Kraken; OKX/Bitfinex: 4 *)
                             # bytes are pending: room for the longest level(s) and the
                             # fixed-size copies past them
    MAX_CAPACITY = 1 << 30   # int32 indices

cdef int64_t P10[19]
cdef int64_t P10_LIMIT[19]   # INT64_MAX // 10**k: m * 10**k fits in int64 iff m <= P10_LIMIT[k]
cdef int _i
P10[0] = 1
for _i in range(1, 19):
    P10[_i] = P10[_i - 1] * 10
for _i in range(19):
    P10_LIMIT[_i] = INT64_MAX // P10[_i]


# ---------------------------------------------------------------------------------------
# CRC-32 (ISO-HDLC, reflected polynomial 0xEDB88320): identical to zlib.crc32
# ---------------------------------------------------------------------------------------
#
# A checksum first writes its whole string into one stack buffer, then runs the CRC over it
# in one go. On x86-64 CPUs with PCLMULQDQ (every x86-64 CPU since 2010; checked at import
# with cpuid) the CRC folds 64 bytes per step with carry-less multiplications, as in
# "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ Instruction" (Gopal et al.,
# Intel, 2009): a few hundred instructions for a Kraken string (~300 bytes), where a
# byte-by-byte table CRC needs ~6 instructions per byte and zlib 1.2.13's ~4 per byte.
# Elsewhere (and for the last < 16 bytes, and for buffers < 64 bytes) a slicing-by-8 table
# CRC. The running state is kept pre-inverted: start with 0xFFFFFFFF, finish with ~state.

cdef extern from *:
    """
    #include <stdint.h>
    #include <stddef.h>

    static uint32_t af_crc_tab[8][256];
    static int af_crc_clmul_ok = 0;     /* the CPU has PCLMULQDQ (set by af_crc_init) */
    static int af_crc_use_clmul = 0;    /* use it (tests switch it off to check the tables) */

    static uint32_t af_crc_sw(uint32_t c, const unsigned char *p, size_t n)
    {
        while (n >= 8) {
            uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8
                               | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
            uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8
                          | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
            c = af_crc_tab[7][lo & 0xff] ^ af_crc_tab[6][(lo >> 8) & 0xff]
                ^ af_crc_tab[5][(lo >> 16) & 0xff] ^ af_crc_tab[4][lo >> 24]
                ^ af_crc_tab[3][hi & 0xff] ^ af_crc_tab[2][(hi >> 8) & 0xff]
                ^ af_crc_tab[1][(hi >> 16) & 0xff] ^ af_crc_tab[0][hi >> 24];
            p += 8;
            n -= 8;
        }
        while (n--)
            c = af_crc_tab[0][(c ^ *p++) & 0xff] ^ (c >> 8);
        return c;
    }

    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    #define AF_CRC_CLMUL 1
    #include <cpuid.h>
    #include <emmintrin.h>
    #include <wmmintrin.h>

    /* x * k (both 64-bit halves, carry-less) folded onto y: the 128-bit lane x moved
       forward by the distance k encodes, then the next data added. */
    #define AF_FOLD(x, k, y) _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128((x), (k), 0x00), \
                                         _mm_clmulepi64_si128((x), (k), 0x11)), (y))
    #define AF_LOAD(p) _mm_loadu_si128((const __m128i *)(const void *)(p))

    /* n >= 64 and a multiple of 16. Constants: x^k mod P(x), bit-reflected, from the paper
       (k1/k2: fold by 4x128 bits, k3/k4: by 128, k5: 96 -> 64 bits, then P and mu). */
    __attribute__((target("sse2,pclmul")))
    static uint32_t af_crc_clmul(uint32_t c, const unsigned char *p, size_t n)
    {
        const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596LL, 0x0154442bd4LL);
        const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009eLL, 0x01751997d0LL);
        const __m128i k5 = _mm_set_epi64x(0, 0x0163cd6124LL);
        const __m128i pmu = _mm_set_epi64x(0x01f7011641LL, 0x01db710641LL);
        const __m128i low32 = _mm_setr_epi32(-1, 0, -1, 0);
        __m128i a = AF_LOAD(p), b = AF_LOAD(p + 16), d = AF_LOAD(p + 32), e = AF_LOAD(p + 48);
        a = _mm_xor_si128(a, _mm_cvtsi32_si128((int)c));
        p += 64;
        n -= 64;
        while (n >= 64) {
            a = AF_FOLD(a, k1k2, AF_LOAD(p));
            b = AF_FOLD(b, k1k2, AF_LOAD(p + 16));
            d = AF_FOLD(d, k1k2, AF_LOAD(p + 32));
            e = AF_FOLD(e, k1k2, AF_LOAD(p + 48));
            p += 64;
            n -= 64;
        }
        a = AF_FOLD(a, k3k4, b);
        a = AF_FOLD(a, k3k4, d);
        a = AF_FOLD(a, k3k4, e);
        while (n >= 16) {
            a = AF_FOLD(a, k3k4, AF_LOAD(p));
            p += 16;
            n -= 16;
        }
        /* 128 -> 64 bits */
        b = _mm_clmulepi64_si128(a, k3k4, 0x10);
        a = _mm_xor_si128(_mm_srli_si128(a, 8), b);
        /* 96 -> 64 bits */
        b = _mm_srli_si128(a, 4);
        a = _mm_clmulepi64_si128(_mm_and_si128(a, low32), k5, 0x00);
        a = _mm_xor_si128(a, b);
        /* Barrett reduction to 32 bits */
        b = _mm_clmulepi64_si128(_mm_and_si128(a, low32), pmu, 0x10);
        b = _mm_clmulepi64_si128(_mm_and_si128(b, low32), pmu, 0x00);
        a = _mm_xor_si128(a, b);
        return (uint32_t)_mm_cvtsi128_si32(_mm_srli_si128(a, 4));
    }
    #undef AF_FOLD
    #undef AF_LOAD
    #endif

    static void af_crc_init(void)
    {
        uint32_t c;
        int i, k;
        for (i = 0; i < 256; i++) {
            c = (uint32_t)i;
            for (k = 0; k < 8; k++)
                c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
            af_crc_tab[0][i] = c;
        }
        for (i = 0; i < 256; i++)
            for (k = 1; k < 8; k++)
                af_crc_tab[k][i] = (af_crc_tab[k - 1][i] >> 8)
                                   ^ af_crc_tab[0][af_crc_tab[k - 1][i] & 0xff];
    #ifdef AF_CRC_CLMUL
        {
            unsigned int eax, ebx, ecx, edx;
            if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_PCLMUL))
                af_crc_clmul_ok = 1;
        }
    #endif
        af_crc_use_clmul = af_crc_clmul_ok;
    }

    /* The running (pre-inverted) state after n more bytes. */
    static inline uint32_t af_crc(uint32_t c, const char *s, size_t n)
    {
        const unsigned char *p = (const unsigned char *)s;
    #ifdef AF_CRC_CLMUL
        if (n >= 64 && af_crc_use_clmul) {
            size_t m = n & ~(size_t)15;
            c = af_crc_clmul(c, p, m);
            p += m;
            n -= m;
        }
    #endif
        return af_crc_sw(c, p, n);
    }
    """
    int af_crc_clmul_ok
    int af_crc_use_clmul
    void af_crc_init() noexcept nogil
    uint32_t af_crc(uint32_t state, const char* p, size_t n) noexcept nogil


af_crc_init()


# ---------------------------------------------------------------------------------------
# Decimal parsing: exchange string -> int64 ticks at a fixed scale, plus decimals as sent
# ---------------------------------------------------------------------------------------

cdef enum ParseStatus:
    P_OK = 0
    P_EMPTY = 1
    P_SYNTAX = 2
    P_NEGATIVE = 3
    P_PRECISION = 4     # non-zero digits beyond the book's scale
    P_RANGE = 5         # does not fit in int64 ticks
    P_SENT = 6          # more than 255 decimals as sent: cannot be remembered


cdef int _parse_dec(const char* s, Py_ssize_t n, int scale, bint allow_negative,
                    int64_t* out, int* sent) noexcept nogil:
    """Parse ``[+-]digits[.digits][(e|E)[+-]digits]`` exactly.

    The value is kept as m * 10**(-need) with m free of trailing zeros, so that a string
    like "1.000000000000000000000" (many zeros) neither overflows nor loses exactness.
    ``sent`` receives the number of decimals the string was written with (after the
    exponent), e.g. "0.1000" -> 4, "1.5e-7" -> 8, "1e3" -> 0.
    """
    cdef Py_ssize_t i = 0
    cdef bint neg = False
    cdef bint over = False
    cdef uint64_t m = 0
    cdef int pend = 0          # zeros after the last non-zero digit, not yet folded into m
    cdef int frac = 0          # digits written after '.'
    cdef int exp = 0
    cdef bint eneg = False
    cdef Py_ssize_t start
    cdef int d, k
    cdef int64_t need, shift, sent_dec
    cdef char c

    if n <= 0:
        return P_EMPTY
    c = s[0]
    if c == c'-' or c == c'+':
        neg = c == c'-'
        i = 1
    # integer part: at least one digit
    start = i
    while i < n:
        c = s[i]
        if c < c'0' or c > c'9':
            break
        d = c - c'0'
        if d == 0:
            if m != 0:
                pend += 1
        elif not over:
            k = pend + 1
            if k > 18 or m > (<uint64_t>INT64_MAX - <uint64_t>d) // <uint64_t>P10[k]:
                over = True
            else:
                m = m * <uint64_t>P10[k] + <uint64_t>d
                pend = 0
        i += 1
    if i == start:
        return P_SYNTAX
    # fraction: '.' must be followed by at least one digit
    if i < n and s[i] == c'.':
        i += 1
        start = i
        while i < n:
            c = s[i]
            if c < c'0' or c > c'9':
                break
            d = c - c'0'
            frac += 1
            if frac > 100000:
                return P_SENT
            if d == 0:
                if m != 0:
                    pend += 1
            elif not over:
                k = pend + 1
                if k > 18 or m > (<uint64_t>INT64_MAX - <uint64_t>d) // <uint64_t>P10[k]:
                    over = True
                else:
                    m = m * <uint64_t>P10[k] + <uint64_t>d
                    pend = 0
            i += 1
        if i == start:
            return P_SYNTAX
    # exponent (JSON numbers such as Bitfinex's 1.5e-7)
    if i < n and (s[i] == c'e' or s[i] == c'E'):
        i += 1
        if i < n and (s[i] == c'-' or s[i] == c'+'):
            eneg = s[i] == c'-'
            i += 1
        start = i
        while i < n:
            c = s[i]
            if c < c'0' or c > c'9':
                break
            if exp < 100000:
                exp = exp * 10 + (c - c'0')
            i += 1
        if i == start:
            return P_SYNTAX
        if eneg:
            exp = -exp
    if i != n:
        return P_SYNTAX
    if over:
        return P_RANGE
    if neg and m != 0 and not allow_negative:
        return P_NEGATIVE

    sent_dec = <int64_t>frac - exp
    if sent_dec < 0:
        sent_dec = 0
    if sent_dec > MAX_SENT:
        return P_SENT
    if m == 0:
        out[0] = 0
        sent[0] = <int>sent_dec
        return P_OK
    # value = m * 10**(pend - frac + exp); ticks = value * 10**scale
    need = <int64_t>frac - exp - pend
    shift = scale - need
    if shift < 0:
        return P_PRECISION       # m has no trailing zeros: the extra digits are non-zero
    if shift > 18 or m > <uint64_t>INT64_MAX // <uint64_t>P10[shift]:
        return P_RANGE
    out[0] = <int64_t>(m * <uint64_t>P10[shift])
    if neg:
        out[0] = -out[0]
    sent[0] = <int>sent_dec
    return P_OK


cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) \
        && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* If p[0:8] are 8 ASCII digits, their value into *v and 1; else 0. (SWAR: the digit
       test and the 8 -> 4 -> 2 -> 1 lane merges of the usual 8-digit parser.) */
    static inline int af_parse8(const char *p, uint64_t *v)
    {
        uint64_t w;
        memcpy(&w, p, 8);
        if (((w + 0x4646464646464646ULL) | (w - 0x3030303030303030ULL)) & 0x8080808080808080ULL)
            return 0;
        w -= 0x3030303030303030ULL;
        w = (w * 10) + (w >> 8);
        *v = (((w & 0x000000FF000000FFULL) * 0x000F424000000064ULL)
              + (((w >> 16) & 0x000000FF000000FFULL) * 0x0000271000000001ULL)) >> 32;
        return 1;
    }
    #else
    static inline int af_parse8(const char *p, uint64_t *v)
    {
        (void)p;
        (void)v;
        return 0;
    }
    #endif
    """
    int af_parse8(const char* p, uint64_t* v) noexcept nogil


cdef inline int _parse_plain(const char* s, Py_ssize_t n, int scale, bint allow_negative,
                             int64_t* out, int* sent) noexcept nogil:
    """Fast path of _parse_dec for what exchanges send: ``[+-]digits[.digits]`` with at most
    19 digits in all. Returns the same status as _parse_dec, or -1 when the string is not of
    that form (exponent, syntax error, too many digits): _parse_dec then decides.

    All digits go into one uint64 (< 10**19: no overflow); the value is m * 10**-frac, so
    the ticks are m * 10**(scale - frac), or m / 10**(frac - scale) when that is exact."""
    cdef Py_ssize_t i = 0, start
    cdef bint neg = False
    cdef uint64_t m = 0, d, q
    cdef int frac = 0, shift
    cdef char c
    if n <= 0 or n > 21:                # sign + 19 digits + '.'
        return -1
    c = s[0]
    if c == c'-' or c == c'+':
        neg = c == c'-'
        i = 1
    start = i
    while i < n:                        # integer part
        d = <uint64_t>(<uint8_t>s[i]) - <uint64_t>48      # '0'
        if d > 9:
            break
        m = m * 10 + d
        i += 1
    if i == start:
        return -1
    if i < n:                           # fraction
        if s[i] != c'.':
            return -1
        i += 1
        frac = <int>(n - i)
        if frac == 0:
            return -1
        if i + 8 <= n and af_parse8(s + i, &q):     # 8 digits at once (sizes at 8 decimals)
            m = m * 100000000 + q
            i += 8
        while i < n:
            d = <uint64_t>(<uint8_t>s[i]) - <uint64_t>48
            if d > 9:
                return -1
            m = m * 10 + d
            i += 1
        if n - start - 1 > 19:
            return -1
    elif n - start > 19:
        return -1
    if m > <uint64_t>INT64_MAX:
        return -1
    if neg and m != 0 and not allow_negative:
        return P_NEGATIVE
    sent[0] = frac
    if m == 0:
        out[0] = 0
        return P_OK
    shift = scale - frac
    if shift >= 0:
        if m > <uint64_t>P10_LIMIT[shift]:
            return P_RANGE
        m *= <uint64_t>P10[shift]
    else:
        if -shift > 18:                 # m < 10**19 is not a multiple of 10**19
            return P_PRECISION
        q = m // <uint64_t>P10[-shift]
        if q * <uint64_t>P10[-shift] != m:
            return P_PRECISION          # non-zero digits beyond the scale
        m = q
    out[0] = -<int64_t>m if neg else <int64_t>m
    return P_OK


cdef const char* _buffer(object value, Py_ssize_t* n) except NULL:
    cdef Py_buffer view
    cdef const char* p
    if PyUnicode_Check(value):
        if PyUnicode_IS_COMPACT_ASCII(value):
            # ASCII str (what json decoders make): its own buffer, nothing is allocated
            n[0] = PyUnicode_GET_LENGTH(value)
            return <const char*>PyUnicode_DATA(value)
        return PyUnicode_AsUTF8AndSize(value, n)
    if PyBytes_Check(value):
        n[0] = PyBytes_GET_SIZE(value)
        return PyBytes_AS_STRING(value)
    if PyObject_CheckBuffer(value) and not PyByteArray_Check(value):
        # a read-only bytes-like view (msgspec.Raw: the digits of a JSON number as sent) whose
        # memory is owned by an immutable object and stays put while `value` lives
        if PyObject_GetBuffer(value, &view, PyBUF_SIMPLE) == 0:
            n[0] = view.len
            p = <const char*>view.buf
            PyBuffer_Release(&view)
            if view.readonly:
                return p
    raise TypeError(f"expected a decimal number as str or bytes, got {type(value).__name__}")


cdef str _shown(object value):
    """A number as an error message shows it: its text, also where it came as a buffer (msgspec.Raw,
    memoryview) whose repr would be an object address."""
    if isinstance(value, (str, bytes)):
        return repr(value)
    try:
        return repr(bytes(value))
    except Exception:
        return repr(value)


cdef int _raise_parse(int status, object value, str what, int scale) except -1:
    if status == P_EMPTY:
        raise ValueError(f"empty {what} string")
    if status == P_SYNTAX:
        raise ValueError(f"invalid {what} {_shown(value)}: not a decimal number")
    if status == P_NEGATIVE:
        raise ValueError(f"invalid {what} {_shown(value)}: negative")
    if status == P_PRECISION:
        raise ValueError(f"{what} {_shown(value)} has non-zero digits beyond the book's "
                         f"{scale} decimals")
    if status == P_RANGE:
        raise ValueError(f"{what} {_shown(value)} is out of range at {scale} decimals "
                         f"(int64 ticks)")
    raise ValueError(f"{what} {_shown(value)} is written with more than {MAX_SENT} decimals")


cdef inline int _parse(object value, int scale, bint allow_negative, str what,
                       int64_t* out, int* sent) except -1:
    cdef Py_ssize_t n
    cdef const char* s = _buffer(value, &n)
    cdef int status = _parse_plain(s, n, scale, allow_negative, out, sent)
    if status < 0:
        status = _parse_dec(s, n, scale, allow_negative, out, sent)
    if status != P_OK:
        _raise_parse(status, value, what, scale)
    return 0


cdef int _parse_round(const char* s, Py_ssize_t n, int scale, int64_t* out) noexcept nogil:
    """A size with more decimals than ``scale`` (or written with too many), rounded to ``scale``
    decimals half-even, a non-zero value to at least one tick: what ``Decimal(text).quantize(
    Decimal(1).scaleb(-scale), ROUND_HALF_EVEN)`` gives (1 tick where that is 0), as ticks.
    Only for ``digits[.digits][(e|E)[+-]digits]`` (a JSON number without sign), non-zero, an
    exponent within +-400, rounding needed, and the ticks within int64: P_OK; -1 for anything
    else (the caller decides)."""
    cdef Py_ssize_t i = 0, i0, i1, f0 = 0, f1 = 0, L, j, keep
    cdef int exp = 0, d, rd = 0
    cdef bint eneg = False, sticky = False, nonzero = False
    cdef int64_t k
    cdef uint64_t q = 0
    i0 = i
    while i < n and 48 <= s[i] <= 57:
        i += 1
    i1 = i
    if i1 == i0:
        return -1
    f0 = f1 = i
    if i < n and s[i] == 46:                # '.'
        i += 1
        f0 = i
        while i < n and 48 <= s[i] <= 57:
            i += 1
        f1 = i
        if f1 == f0:
            return -1
    if i < n and (s[i] == 101 or s[i] == 69):   # 'e' / 'E'
        i += 1
        if i < n and (s[i] == 43 or s[i] == 45):
            eneg = s[i] == 45
            i += 1
        j = i
        while i < n and 48 <= s[i] <= 57:
            if exp <= 400:
                exp = exp * 10 + (s[i] - 48)
            i += 1
        if i == j or exp > 400:
            return -1
        if eneg:
            exp = -exp
    if i != n:
        return -1
    # the digits D (integer part, then fraction): ticks = D * 10**k
    L = (i1 - i0) + (f1 - f0)
    k = <int64_t>exp - (f1 - f0) + scale
    if k >= 0:
        return -1                           # nothing to round
    keep = L + k                            # the leading digits of D kept (may be <= 0)
    for j in range(L):
        d = (s[i0 + j] if j < i1 - i0 else s[f0 + j - (i1 - i0)]) - 48
        if d:
            nonzero = True
        if j < keep:
            if q > (<uint64_t>INT64_MAX - <uint64_t>d) // 10:
                return -1
            q = q * 10 + <uint64_t>d
        elif j == keep:
            rd = d
        elif d:
            sticky = True
    if not nonzero:
        return -1
    if rd > 5 or (rd == 5 and (sticky or (q & 1))):
        if q == <uint64_t>INT64_MAX:
            return -1
        q += 1
    if q == 0:
        q = 1
    out[0] = <int64_t>q
    return P_OK


# ---------------------------------------------------------------------------------------
# Formatting: ticks -> decimal text (exact, as sent) and JavaScript Number text (Bitfinex)
# ---------------------------------------------------------------------------------------

cdef extern from *:
    """
    #include <string.h>

    static const uint64_t af_pow10[20] = {
        1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
        100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
        10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
        100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL};

    /* Number of decimal digits of v (1 for 0). */
    static inline int af_ndigits(uint64_t v)
    {
    #if defined(__GNUC__) || defined(__clang__)
        /* floor(log10(2) * bits) is the digit count or one less */
        int t = ((64 - __builtin_clzll(v | 1)) * 1233) >> 12;
        return t + ((v | 1) >= af_pow10[t]);
    #else
        int t = 1;
        while (t < 20 && v >= af_pow10[t])
            t++;
        return t;
    #endif
    }

    #if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) \
        && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* The 8 digits of n < 10**8 as ASCII in one word, the first digit in the lowest byte
       (SWAR: the lanes are split 4+4 digits, then 2+2, then 1+1, by multiplications with
       reciprocals that are exact in range: x*10486 >> 20 == x/100 for x < 10**4 and
       x*103 >> 10 == x/10 for x < 100). */
    static inline uint64_t af_digits8(uint32_t n)
    {
        uint64_t hi = n / 10000u, x, q;
        x = hi | ((uint64_t)(n - (uint32_t)hi * 10000u) << 32);
        q = ((x * 10486u) >> 20) & 0x0000007F0000007FULL;
        x = q | ((x - q * 100u) << 16);
        q = ((x * 103u) >> 10) & 0x000F000F000F000FULL;
        x = q | ((x - q * 10u) << 8);
        return x | 0x3030303030303030ULL;
    }

    #if defined(__GNUC__) || defined(__clang__)
    #define AF_INLINE static inline __attribute__((always_inline))
    #else
    #define AF_INLINE static inline
    #endif

    /* The last k digits of v, zero-padded, at out[0:k] (k <= 20, v < 10**k). Stores 8 bytes
       at a time: may write up to 8 bytes past out + k (every caller leaves that room). */
    AF_INLINE void af_put_digits(char *out, uint64_t v, int k)
    {
        uint64_t w, mid, lo;
        if (k <= 8) {
            if (k <= 0)
                return;
            w = af_digits8((uint32_t)v) >> (8 * (8 - k));
            memcpy(out, &w, 8);
            return;
        }
        lo = v % 100000000u;
        v /= 100000000u;
        if (k <= 16) {
            w = af_digits8((uint32_t)v) >> (8 * (16 - k));
            memcpy(out, &w, 8);
        } else {
            mid = v % 100000000u;
            w = af_digits8((uint32_t)(v / 100000000u)) >> (8 * (24 - k));
            memcpy(out, &w, 8);
            w = af_digits8((uint32_t)mid);
            memcpy(out + k - 16, &w, 8);
        }
        w = af_digits8((uint32_t)lo);
        memcpy(out + k - 8, &w, 8);
    }
    #else
    static inline void af_put_digits(char *out, uint64_t v, int k)
    {
        while (k > 0) {
            out[--k] = (char)('0' + (int)(v % 10));
            v /= 10;
        }
    }
    #endif

    /* Move p[0:n] (n <= 23) one byte right; moves 24 bytes: p[1:25] is overwritten. */
    static inline void af_shift1(char *p, int n)
    {
        char t[24];
        (void)n;
        memcpy(t, p, 24);
        memcpy(p + 1, t, 24);
    }

    /* n <= 24 '0's at p; writes 24 bytes. */
    static inline void af_zeros24(char *p, int n)
    {
        (void)n;
        memcpy(p, "000000000000000000000000", 24);
    }
    """
    int af_ndigits(uint64_t v) noexcept nogil
    void af_put_digits(char* out, uint64_t v, int k) noexcept nogil
    void af_shift1(char* p, int n) noexcept nogil
    void af_zeros24(char* p, int n) noexcept nogil


cdef inline int _utoa(char* out, uint64_t v) noexcept nogil:
    """Decimal digits of v (at least one), returns the length."""
    cdef int k = af_ndigits(v)
    af_put_digits(out, v, k)
    return k


cdef int _fmt_fixed(char* out, int64_t ticks, int scale, int dec) noexcept nogil:
    """ticks at `scale` written with exactly `dec` decimals (no exponent).

    Exact when the value has at most `dec` significant decimals, which holds for every
    value stored with the decimals it was sent with. Returns the length (at most
    1 + 19 + 1 + 255 < FMT_BUF); may write up to 25 bytes past it."""
    cdef int pos = 0, d, k
    cdef uint64_t u
    if ticks < 0:
        out[0] = c'-'
        pos = 1
        u = <uint64_t>(-(ticks + 1)) + 1
    else:
        u = <uint64_t>ticks
    # u: the value times 10**d, an integer; the text is u with d decimals, then zeros
    if dec < scale:
        u //= <uint64_t>P10[scale - dec]
        d = dec
    else:
        d = scale
    k = af_ndigits(u)
    if k > d:                           # "ddd" or "ddd.ddd"
        af_put_digits(out + pos, u, k)
        if dec > 0:
            af_shift1(out + pos + k - d, d)
            out[pos + k - d] = c'.'
            pos += 1
        pos += k
    else:                               # "0.0ddd" (d >= k >= 1)
        out[pos] = c'0'
        out[pos + 1] = c'.'
        pos += 2
        af_zeros24(out + pos, d - k)    # d <= 18
        af_put_digits(out + pos + d - k, u, k)
        pos += d
    if dec > d:
        memset(out + pos, c'0', dec - d)
        pos += dec - d
    return pos


cdef inline int _fmt_kraken(char* out, int64_t ticks, int scale, int dec) noexcept nogil:
    """Kraken's checksum text of a value: its text with `dec` decimals, '.' removed, then
    leading zeros removed, i.e. the digits of the integer value * 10**dec (nothing for 0).
    Returns the length (at most 19 + 255 < FMT_BUF)."""
    cdef uint64_t v
    cdef int k, i, j
    cdef char tmp[FMT_BUF]
    if ticks < 0:                       # not in a book (negatives are rejected): '-' is the
        k = _fmt_fixed(tmp, ticks, scale, dec)      # first character, no zero is leading
        j = 0
        for i in range(k):
            if tmp[i] != c'.':
                out[j] = tmp[i]
                j += 1
        return j
    v = <uint64_t>ticks
    if dec < scale:
        v //= <uint64_t>P10[scale - dec]
    if v == 0:
        return 0
    k = af_ndigits(v)
    af_put_digits(out, v, k)
    if dec > scale:
        memset(out + k, c'0', dec - scale)
        k += dec - scale
    return k


cdef int _fmt_js(char* out, int64_t ticks, int scale, bint negate) noexcept nogil:
    """The text JavaScript's Number.prototype.toString gives for ticks * 10**-scale.

    ECMAScript Number::toString: shortest digits s (k of them) and exponent n with
    value = s * 10**(n - k); plain notation while 1e-7 < |value| < 1e21, otherwise
    "d.ddde-7". The decimal stored here is taken as the shortest representation of the
    double the exchange formatted, which holds for up to 15 significant digits.
    """
    cdef int pos = 0, k, t = 0, n, e
    cdef uint64_t v, q
    if ticks == 0:
        out[0] = c'0'
        return 1
    if ticks < 0:
        v = <uint64_t>(-(ticks + 1)) + 1
        negate = not negate
    else:
        v = <uint64_t>ticks
    # strip the trailing zeros: v * 10**t (a quotient and a product per test)
    q = v // 10000
    while q * 10000 == v:
        v = q
        t += 4
        q = v // 10000
    q = v // 100
    if q * 100 == v:
        v = q
        t += 2
    q = v // 10
    if q * 10 == v:
        v = q
        t += 1
    k = af_ndigits(v)
    n = k + t - scale
    if negate:
        out[0] = c'-'
        pos = 1
    if k <= n <= 21:                    # "ddd000"
        af_put_digits(out + pos, v, k)
        af_zeros24(out + pos + k, n - k)
        pos += n
    elif 0 < n <= 21:                   # k > n: "ddd.ddd" (k - n <= 18)
        af_put_digits(out + pos, v, k)
        af_shift1(out + pos + n, k - n)
        out[pos + n] = c'.'
        pos += k + 1
    elif -6 < n <= 0:                   # "0.00ddd"
        out[pos] = c'0'
        out[pos + 1] = c'.'
        pos += 2
        af_zeros24(out + pos, -n)
        pos += -n
        af_put_digits(out + pos, v, k)
        pos += k
    else:                               # "d.ddde-7"
        af_put_digits(out + pos + 1, v, k)
        out[pos] = out[pos + 1]
        if k > 1:
            out[pos + 1] = c'.'
            pos += k + 1
        else:
            pos += 1
        out[pos] = c'e'
        pos += 1
        e = n - 1
        if e < 0:
            out[pos] = c'-'
            e = -e
        else:
            out[pos] = c'+'
        pos += 1
        pos += _utoa(out + pos, <uint64_t>e)
    return pos


# ---------------------------------------------------------------------------------------
# Checksum text cache
# ---------------------------------------------------------------------------------------
#
# The checksums write the same levels call after call: an update rarely touches more than
# a level or two of the top 10/25. A book that computes checksums keeps, per side, the
# text each of the levels its last checksum wrote ("price", separator, "size"), in book
# order (TL_MAX levels at most). The next checksum walks the same side in the same order,
# so it meets the old entries in order too: a level whose price, size and decimals are
# those of an old entry copies its text; one whose price and decimals are those of an old
# entry reuses the price part and only writes the size; any other level is written in
# full. Levels inserted or removed above only shift the list. Nothing can go stale: the
# entries are keyed on the values (the text of a value depends only on the value, its
# decimals, the book's scale and the kind of checksum), not on the nodes. 2 sides x 2
# lists x 25 levels x 64 bytes (6.4 KB per book), allocated by the first checksum call;
# without that memory the checksums write every level.

cdef enum:
    TL_MAX = 25                 # levels per side (the deepest checksum: OKX, Bitfinex)
    TE_TEXT = 42                # longer texts are not kept (exotic decimals)
    TE_COPY = 48                # bytes copied on a hit (a fixed-size copy)

cdef enum LevelKind:            # how a checksum writes a level; 0: no text
    LK_KRAKEN = 1               # digits of price then size, no '.' nor leading zeros
    LK_OKX = 2                  # "price:size" as sent
    LK_BFX_BID = 3              # "price:size" as JavaScript prints them
    LK_BFX_ASK = 4              # "price:-size"


cdef struct TextEntry:          # 64 bytes: the text of one level
    int64_t price
    int64_t size
    uint32_t key                # kind | price decimals << 8 | size decimals << 16 (0: none)
    uint8_t plen                # length of the price part (with the separator)
    uint8_t len
    char text[TE_TEXT]


cdef struct TextSide:
    TextEntry* old              # the last checksum's list, best level first
    TextEntry* cur              # the list being written
    int32_t nold
    int32_t ncur
    int32_t j                   # first old entry not yet passed


cdef struct TextCache:
    TextSide side[2]
    TextEntry* mem


cdef TextCache* _tc_new() noexcept nogil:
    cdef TextCache* tc = <TextCache*>calloc(1, sizeof(TextCache))
    cdef int k
    if tc == NULL:
        return NULL
    # one spare entry at the end: a hit copies TE_COPY bytes from a TE_TEXT field
    tc.mem = <TextEntry*>calloc(4 * TL_MAX + 1, sizeof(TextEntry))
    if tc.mem == NULL:
        free(tc)
        return NULL
    for k in range(2):
        tc.side[k].old = tc.mem + (2 * k) * TL_MAX
        tc.side[k].cur = tc.mem + (2 * k + 1) * TL_MAX
    return tc


cdef void _tc_free(TextCache* tc) noexcept nogil:
    if tc != NULL:
        free(tc.mem)
        free(tc)


cdef inline void _tc_begin(TextCache* tc) noexcept nogil:
    if tc != NULL:
        tc.side[0].j = 0
        tc.side[0].ncur = 0
        tc.side[1].j = 0
        tc.side[1].ncur = 0


cdef inline void _tc_end(TextCache* tc) noexcept nogil:
    cdef TextEntry* t
    cdef int k
    if tc != NULL:
        for k in range(2):
            t = tc.side[k].old
            tc.side[k].old = tc.side[k].cur
            tc.side[k].cur = t
            tc.side[k].nold = tc.side[k].ncur


cdef inline void _tc_end_side(TextCache* tc, int k) noexcept nogil:
    """``_tc_end`` of one side (a checksum that did not walk the other keeps its list)."""
    cdef TextEntry* t
    if tc != NULL:
        t = tc.side[k].old
        tc.side[k].old = tc.side[k].cur
        tc.side[k].cur = t
        tc.side[k].nold = tc.side[k].ncur


cdef inline bint _tc_texts(TextCache* tc, int k) noexcept nogil:
    """Whether the last checksum's list of side ``k`` holds the text of each of its levels."""
    cdef int i
    if tc == NULL:
        return False
    for i in range(tc.side[k].nold):
        if tc.side[k].old[i].key == 0:
            return False
    return True


cdef inline int _fmt_price(char* out, int kind, int64_t ticks, int scale, int dec) noexcept nogil:
    """The price part of a level's text (with its separator)."""
    cdef int n
    if kind == LK_KRAKEN:
        return _fmt_kraken(out, ticks, scale, dec)
    if kind == LK_OKX:
        n = _fmt_fixed(out, ticks, scale, dec)
    else:
        n = _fmt_js(out, ticks, scale, False)
    out[n] = c':'
    return n + 1


cdef inline int _fmt_size(char* out, int kind, int64_t ticks, int scale, int dec) noexcept nogil:
    if kind == LK_KRAKEN:
        return _fmt_kraken(out, ticks, scale, dec)
    if kind == LK_OKX:
        return _fmt_fixed(out, ticks, scale, dec)
    return _fmt_js(out, ticks, scale, kind == LK_BFX_ASK)


cdef inline int _tc_level(TextCache* tc, int side, Level* lv, int kind, int pscale, int pdec,
                          int sscale, int sdec, char* out) noexcept nogil:
    """Write the text of level lv, the next level of `side` in book order, into out (which
    has room for TE_COPY bytes past it). Returns the length. At most TL_MAX levels per side
    and per checksum (the callers' loops guarantee it)."""
    cdef TextSide* ts
    cdef TextEntry* o = NULL
    cdef TextEntry* e
    cdef int64_t price = lv.price, size = lv.size
    cdef uint32_t key
    cdef int n, p
    if kind >= LK_BFX_BID:
        pdec = 0                        # the JavaScript text does not depend on decimals
        sdec = 0
    if tc == NULL:
        n = _fmt_price(out, kind, price, pscale, pdec)
        return n + _fmt_size(out + n, kind, size, sscale, sdec)
    ts = &tc.side[side]
    key = <uint32_t>kind | (<uint32_t>pdec << 8) | (<uint32_t>sdec << 16)
    e = &ts.cur[ts.ncur]
    ts.ncur += 1
    # the old entry at this price, if any (old entries better than it were removed)
    while ts.j < ts.nold:
        o = &ts.old[ts.j]
        if o.price == price:
            ts.j += 1
            break
        if (o.price < price) if side == C_BID else (o.price > price):
            o = NULL                    # not reached yet: a new level
            break
        ts.j += 1
        o = NULL
    if o != NULL and (o.key & 0xFFFF) == (key & 0xFFFF):
        if o.key == key and o.size == size:
            memcpy(out, o.text, TE_COPY)
            e[0] = o[0]
            return e.len
        p = o.plen                      # the price part is still right
        memcpy(out, o.text, TE_COPY)
    else:
        p = _fmt_price(out, kind, price, pscale, pdec)
    n = p + _fmt_size(out + p, kind, size, sscale, sdec)
    e.price = price
    e.size = size
    e.key = 0
    if n <= TE_TEXT:
        e.key = key
        e.plen = <uint8_t>p
        e.len = <uint8_t>n
        memcpy(e.text, out, TE_TEXT)    # a fixed-size copy (out has the room)
    return n


cdef inline str _text(int64_t ticks, int scale, int dec):
    cdef char buf[FMT_BUF]
    cdef int n = _fmt_fixed(buf, ticks, scale, dec)
    return PyUnicode_DecodeASCII(buf, n, NULL)


# ---------------------------------------------------------------------------------------
# Red-black tree of price levels over a node pool
# ---------------------------------------------------------------------------------------

# One price level: 32 bytes (8 price + 8 size + 3*4 links + 4 flag bytes), so a 1000-level
# L2 book costs 32 KB of nodes (32 bytes per level, plus pool slack up to the capacity).
# The L3 book adds a 12-byte LevelQueue per level (44 bytes per level) and 24 bytes per order.
cdef struct Level:
    int64_t price       # ticks at price_decimals (the key)
    int64_t size        # ticks at size_decimals (L3: the level's total)
    int32_t left
    int32_t right
    int32_t parent
    uint8_t red
    uint8_t pdec        # decimals the price was sent with
    uint8_t sdec        # decimals the size was sent with (L3: the most any order used)
    uint8_t spare


cdef struct Pool:
    Level* n            # n[0] is the black sentinel (CLRS "nil")
    char* extra         # optional parallel array (L3: LevelQueue), esize bytes per node
    size_t esize
    int32_t cap         # allocated nodes, sentinel included
    int32_t top         # first never-used index
    int32_t free        # head of the free list (linked through .right), 0 = empty


cdef struct Side:
    int32_t root
    int32_t best        # cached: max for bids, min for asks; 0 when empty
    int32_t count
    int32_t is_bid
    # the levels by price (open addressing, linear probing, at most half full): a level that
    # exists is found in one or two probes instead of a walk down the tree; NULL: none (the
    # tree alone answers, as when it could not be allocated)
    int32_t* slots
    uint32_t mask       # slots - 1 (a power of two)


cdef int _pool_init(Pool* p, Py_ssize_t capacity, size_t esize) except -1:
    if capacity < 1:
        capacity = 1
    if capacity > MAX_CAPACITY:
        raise ValueError(f"capacity must be at most {MAX_CAPACITY}")
    p.cap = <int32_t>capacity + 1
    p.n = <Level*>malloc(<size_t>p.cap * sizeof(Level))
    p.esize = esize
    p.extra = NULL
    if p.n == NULL:
        raise MemoryError()
    if esize:
        p.extra = <char*>malloc(<size_t>p.cap * esize)
        if p.extra == NULL:
            free(p.n)
            p.n = NULL
            raise MemoryError()
    memset(&p.n[0], 0, sizeof(Level))
    p.top = 1
    p.free = 0
    return 0


cdef void _pool_release(Pool* p) noexcept nogil:
    free(p.n)
    free(p.extra)
    p.n = NULL
    p.extra = NULL


cdef inline void _pool_reset(Pool* p) noexcept nogil:
    memset(&p.n[0], 0, sizeof(Level))
    p.top = 1
    p.free = 0


cdef int32_t _pool_grow(Pool* p) noexcept nogil:
    """Double the pool; indices stay valid (realloc may move the arrays). 0 = no memory."""
    cdef int64_t cap = <int64_t>p.cap * 2
    cdef Level* nn
    cdef char* ne
    if cap > MAX_CAPACITY + 1:
        cap = MAX_CAPACITY + 1
    if cap <= p.cap:
        return 0
    nn = <Level*>realloc(p.n, <size_t>cap * sizeof(Level))
    if nn == NULL:
        return 0
    p.n = nn
    if p.esize:
        ne = <char*>realloc(p.extra, <size_t>cap * p.esize)
        if ne == NULL:
            return 0
        p.extra = ne
    p.cap = <int32_t>cap
    return 1


cdef inline int32_t _pool_alloc(Pool* p) noexcept nogil:
    cdef int32_t i = p.free
    if i != 0:
        p.free = p.n[i].right
        return i
    if p.top == p.cap and not _pool_grow(p):
        return 0
    i = p.top
    p.top += 1
    return i


cdef inline void _pool_free(Pool* p, int32_t i) noexcept nogil:
    p.n[i].right = p.free
    p.free = i


cdef inline int32_t _minimum(Level* n, int32_t x) noexcept nogil:
    while n[x].left != 0:
        x = n[x].left
    return x


cdef inline int32_t _maximum(Level* n, int32_t x) noexcept nogil:
    while n[x].right != 0:
        x = n[x].right
    return x


cdef inline int32_t _successor(Level* n, int32_t x) noexcept nogil:
    cdef int32_t y
    if n[x].right != 0:
        return _minimum(n, n[x].right)
    y = n[x].parent
    while y != 0 and x == n[y].right:
        x = y
        y = n[y].parent
    return y


cdef inline int32_t _predecessor(Level* n, int32_t x) noexcept nogil:
    cdef int32_t y
    if n[x].left != 0:
        return _maximum(n, n[x].left)
    y = n[x].parent
    while y != 0 and x == n[y].left:
        x = y
        y = n[y].parent
    return y


cdef inline int32_t _next_worse(Level* n, Side* t, int32_t x) noexcept nogil:
    """The next level away from the top of the book (0 at the end)."""
    if t.is_bid:
        return _predecessor(n, x)
    return _successor(n, x)


cdef inline int32_t _next_better(Level* n, Side* t, int32_t x) noexcept nogil:
    if t.is_bid:
        return _successor(n, x)
    return _predecessor(n, x)


cdef inline int32_t _worst(Level* n, Side* t) noexcept nogil:
    if t.root == 0:
        return 0
    if t.is_bid:
        return _minimum(n, t.root)
    return _maximum(n, t.root)


cdef inline void _rotate_left(Level* n, Side* t, int32_t x) noexcept nogil:
    cdef int32_t y = n[x].right
    cdef int32_t xp = n[x].parent
    n[x].right = n[y].left
    if n[y].left != 0:
        n[n[y].left].parent = x
    n[y].parent = xp
    if xp == 0:
        t.root = y
    elif x == n[xp].left:
        n[xp].left = y
    else:
        n[xp].right = y
    n[y].left = x
    n[x].parent = y


cdef inline void _rotate_right(Level* n, Side* t, int32_t x) noexcept nogil:
    cdef int32_t y = n[x].left
    cdef int32_t xp = n[x].parent
    n[x].left = n[y].right
    if n[y].right != 0:
        n[n[y].right].parent = x
    n[y].parent = xp
    if xp == 0:
        t.root = y
    elif x == n[xp].right:
        n[xp].right = y
    else:
        n[xp].left = y
    n[y].right = x
    n[x].parent = y


cdef inline uint32_t _home(int64_t price, uint32_t mask) noexcept nogil:
    """A price's first slot: Fibonacci hashing (the product's high bits)."""
    return <uint32_t>((<uint64_t>price * <uint64_t>0x9E3779B97F4A7C15) >> 32) & mask


cdef inline int32_t _index_find(Level* n, Side* t, int64_t price) noexcept nogil:
    """The level at ``price`` by the index (0: none); the index must exist."""
    cdef uint32_t i = _home(price, t.mask)
    cdef int32_t x
    while True:
        x = t.slots[i]
        if x == 0 or n[x].price == price:
            return x
        i = (i + 1) & t.mask


cdef bint _index_grow(Level* n, Side* t) noexcept nogil:
    """Slots for the side's ``count`` levels at most half full (a power of two, 16 at least),
    every indexed level placed again; False: no memory (the index is dropped: the tree answers
    alone)."""
    cdef uint32_t cap = 16
    while cap < <uint32_t>t.count * 2 + 2:
        cap *= 2
    cdef int32_t* slots = <int32_t*>calloc(cap, sizeof(int32_t))
    cdef int32_t* old = t.slots
    cdef uint32_t i, j, oldcap = t.mask + 1 if t.slots != NULL else 0
    if slots == NULL:
        free(t.slots)
        t.slots = NULL
        t.mask = 0
        return False
    for i in range(oldcap):
        if old[i] != 0:
            j = _home(n[old[i]].price, cap - 1)
            while slots[j] != 0:
                j = (j + 1) & (cap - 1)
            slots[j] = old[i]
    free(old)
    t.slots = slots
    t.mask = cap - 1
    return True


cdef inline void _index_add(Level* n, Side* t, int32_t x) noexcept nogil:
    """Level ``x`` (just created; the side's count includes it) into the index."""
    cdef uint32_t i
    if t.slots == NULL or <uint32_t>t.count * 2 > t.mask + 1:
        if not _index_grow(n, t):
            return
    i = _home(n[x].price, t.mask)
    while t.slots[i] != 0:
        i = (i + 1) & t.mask
    t.slots[i] = x


cdef inline void _index_remove(Level* n, Side* t, int32_t x) noexcept nogil:
    """Level ``x`` out of the index; the entries after it move back so that every probe still
    finds its level (deletion by backward shift: no tombstones)."""
    cdef uint32_t i, j, k
    if t.slots == NULL:
        return
    i = _home(n[x].price, t.mask)
    while t.slots[i] != x:
        if t.slots[i] == 0:
            return  # (not indexed: cannot happen)
        i = (i + 1) & t.mask
    j = i
    while True:
        j = (j + 1) & t.mask
        if t.slots[j] == 0:
            break
        k = _home(n[t.slots[j]].price, t.mask)
        # the entry at j stays where its home k lies cyclically in (i, j]
        if (k > i and k <= j) if i <= j else (k > i or k <= j):
            continue
        t.slots[i] = t.slots[j]
        i = j
    t.slots[i] = 0


cdef inline int32_t _find(Level* n, Side* t, int64_t price) noexcept nogil:
    cdef int32_t x = t.best
    if x != 0 and n[x].price == price:     # updates at the top of the book are the most common
        return x
    if t.slots != NULL:
        return _index_find(n, t, price)
    x = t.root
    while x != 0:
        if price < n[x].price:
            x = n[x].left
        elif price > n[x].price:
            x = n[x].right
        else:
            return x
    return 0


cdef void _insert_fixup(Level* n, Side* t, int32_t z) noexcept nogil:
    cdef int32_t zp, zpp, y
    while n[n[z].parent].red:
        zp = n[z].parent
        zpp = n[zp].parent
        if zp == n[zpp].left:
            y = n[zpp].right
            if n[y].red:
                n[zp].red = 0
                n[y].red = 0
                n[zpp].red = 1
                z = zpp
            else:
                if z == n[zp].right:
                    z = zp
                    _rotate_left(n, t, z)
                    zp = n[z].parent
                    zpp = n[zp].parent
                n[zp].red = 0
                n[zpp].red = 1
                _rotate_right(n, t, zpp)
        else:
            y = n[zpp].left
            if n[y].red:
                n[zp].red = 0
                n[y].red = 0
                n[zpp].red = 1
                z = zpp
            else:
                if z == n[zp].left:
                    z = zp
                    _rotate_right(n, t, z)
                    zp = n[z].parent
                    zpp = n[zp].parent
                n[zp].red = 0
                n[zpp].red = 1
                _rotate_left(n, t, zpp)
    n[t.root].red = 0


cdef int32_t _find_or_insert(Pool* p, Side* t, int64_t price, bint* created) noexcept nogil:
    """The level at `price`, created (size 0) if absent. 0 = out of memory."""
    cdef Level* n = p.n
    cdef int32_t x = t.best, y = 0, z
    created[0] = False
    if x != 0 and n[x].price == price:
        return x
    if t.slots != NULL:
        x = _index_find(n, t, price)
        if x != 0:
            return x
    x = t.root
    while x != 0:
        y = x
        if price < n[x].price:
            x = n[x].left
        elif price > n[x].price:
            x = n[x].right
        else:
            return x
    z = _pool_alloc(p)
    if z == 0:
        return 0
    n = p.n                                 # the pool may have moved
    n[z].price = price
    n[z].size = 0
    n[z].left = 0
    n[z].right = 0
    n[z].parent = y
    n[z].red = 1
    n[z].pdec = 0
    n[z].sdec = 0
    n[z].spare = 0
    if y == 0:
        t.root = z
    elif price < n[y].price:
        n[y].left = z
    else:
        n[y].right = z
    _insert_fixup(n, t, z)
    t.count += 1
    _index_add(n, t, z)
    if t.best == 0 or (price > n[t.best].price if t.is_bid else price < n[t.best].price):
        t.best = z
    created[0] = True
    return z


cdef inline void _transplant(Level* n, Side* t, int32_t u, int32_t v) noexcept nogil:
    cdef int32_t up = n[u].parent
    if up == 0:
        t.root = v
    elif u == n[up].left:
        n[up].left = v
    else:
        n[up].right = v
    n[v].parent = up                        # also on the sentinel: the fixup reads it


cdef void _delete_fixup(Level* n, Side* t, int32_t x) noexcept nogil:
    cdef int32_t xp, w
    while x != t.root and not n[x].red:
        xp = n[x].parent
        if x == n[xp].left:
            w = n[xp].right
            if n[w].red:
                n[w].red = 0
                n[xp].red = 1
                _rotate_left(n, t, xp)
                w = n[xp].right
            if not n[n[w].left].red and not n[n[w].right].red:
                n[w].red = 1
                x = xp
            else:
                if not n[n[w].right].red:
                    n[n[w].left].red = 0
                    n[w].red = 1
                    _rotate_right(n, t, w)
                    w = n[xp].right
                n[w].red = n[xp].red
                n[xp].red = 0
                n[n[w].right].red = 0
                _rotate_left(n, t, xp)
                x = t.root
        else:
            w = n[xp].left
            if n[w].red:
                n[w].red = 0
                n[xp].red = 1
                _rotate_right(n, t, xp)
                w = n[xp].left
            if not n[n[w].right].red and not n[n[w].left].red:
                n[w].red = 1
                x = xp
            else:
                if not n[n[w].left].red:
                    n[n[w].right].red = 0
                    n[w].red = 1
                    _rotate_left(n, t, w)
                    w = n[xp].left
                n[w].red = n[xp].red
                n[xp].red = 0
                n[n[w].left].red = 0
                _rotate_right(n, t, xp)
                x = t.root
    n[x].red = 0


cdef void _erase(Pool* p, Side* t, int32_t z) noexcept nogil:
    """Unlink level z and return its node to the pool. Nodes are relinked, never copied,
    so every other index (and an iteration cursor) stays valid."""
    cdef Level* n = p.n
    cdef int32_t x, y = z
    cdef uint8_t y_red = n[z].red
    _index_remove(n, t, z)
    if z == t.best:
        t.best = _next_worse(n, t, z)
    if n[z].left == 0:
        x = n[z].right
        _transplant(n, t, z, x)
    elif n[z].right == 0:
        x = n[z].left
        _transplant(n, t, z, x)
    else:
        y = _minimum(n, n[z].right)
        y_red = n[y].red
        x = n[y].right
        if n[y].parent == z:
            n[x].parent = y
        else:
            _transplant(n, t, y, x)
            n[y].right = n[z].right
            n[n[y].right].parent = y
        _transplant(n, t, z, y)
        n[y].left = n[z].left
        n[n[y].left].parent = y
        n[y].red = n[z].red
    if not y_red:
        _delete_fixup(n, t, x)
    n[0].parent = 0
    n[0].red = 0
    t.count -= 1
    _pool_free(p, z)


cdef inline void _side_reset(Side* t, bint is_bid) noexcept nogil:
    """An empty side (its index emptied, its slots kept for reuse)."""
    t.root = 0
    t.best = 0
    t.count = 0
    t.is_bid = is_bid
    if t.slots != NULL:
        memset(t.slots, 0, (t.mask + 1) * sizeof(int32_t))


cdef inline void _side_release(Side* t) noexcept nogil:
    free(t.slots)
    t.slots = NULL
    t.mask = 0


cdef inline Py_ssize_t _side_nbytes(Side* t) noexcept nogil:
    return (t.mask + 1) * sizeof(int32_t) if t.slots != NULL else 0


cdef int _black_height(Level* n, int32_t x, str name) except -1:
    cdef int hl, hr
    if x == 0:
        return 1
    if n[x].red and (n[n[x].left].red or n[n[x].right].red):
        raise AssertionError(f"{name}: red node with a red child")
    if n[x].left != 0 and (n[n[x].left].parent != x or n[n[x].left].price >= n[x].price):
        raise AssertionError(f"{name}: bad left link")
    if n[x].right != 0 and (n[n[x].right].parent != x or n[n[x].right].price <= n[x].price):
        raise AssertionError(f"{name}: bad right link")
    hl = _black_height(n, n[x].left, name)
    hr = _black_height(n, n[x].right, name)
    if hl != hr:
        raise AssertionError(f"{name}: black heights differ")
    return hl + (0 if n[x].red else 1)


cdef int _validate_side(Level* n, Side* t, str name) except -1:
    """Check every red-black and cache invariant of one side (tests only)."""
    cdef int32_t x, prev = 0, seen = 0
    cdef uint32_t i
    if n[0].red:
        raise AssertionError("sentinel is red")
    if t.root != 0 and (n[t.root].red or n[t.root].parent != 0):
        raise AssertionError(f"{name}: bad root")
    _black_height(n, t.root, name)
    x = _minimum(n, t.root) if t.root else 0
    while x != 0:
        if prev != 0 and n[prev].price >= n[x].price:
            raise AssertionError(f"{name}: in-order walk not increasing")
        prev = x
        seen += 1
        x = _successor(n, x)
    if seen != t.count:
        raise AssertionError(f"{name}: count {t.count} but {seen} nodes")
    if t.slots != NULL:
        seen = 0
        for i in range(t.mask + 1):
            if t.slots[i] != 0:
                seen += 1
        if seen != t.count:
            raise AssertionError(f"{name}: {seen} levels indexed, {t.count} in the tree")
        x = _minimum(n, t.root) if t.root else 0
        while x != 0:
            if _index_find(n, t, n[x].price) != x:
                raise AssertionError(f"{name}: level {n[x].price} not found by the index")
            x = _successor(n, x)
    if t.count == 0:
        if t.best != 0:
            raise AssertionError(f"{name}: best cached on an empty side")
    else:
        x = _maximum(n, t.root) if t.is_bid else _minimum(n, t.root)
        if x != t.best:
            raise AssertionError(f"{name}: cached best is stale")
    return 0


cdef inline int _check_side(int side) except -1:
    if side != C_BID and side != C_ASK:
        raise ValueError(f"side must be BID (0) or ASK (1), got {side}")
    return 0


cdef int _check_decimals(int price_decimals, int size_decimals) except -1:
    if not 0 <= price_decimals <= MAX_SCALE:
        raise ValueError(f"price_decimals must be within 0..{MAX_SCALE}, got {price_decimals}")
    if not 0 <= size_decimals <= MAX_SCALE:
        raise ValueError(f"size_decimals must be within 0..{MAX_SCALE}, got {size_decimals}")
    return 0


# Flags shared by both books. A snapshot of one side's top before a call:
cdef struct Top:
    int64_t price
    int64_t size
    bint present


cdef inline void _top(Level* n, Side* t, Top* out) noexcept nogil:
    cdef int32_t b = t.best
    out.present = b != 0
    out.price = n[b].price if b else 0
    out.size = n[b].size if b else 0


cdef inline int _top_changed(Level* n, Side* t, Top* before) noexcept nogil:
    cdef int32_t b = t.best
    if (b != 0) != before.present:
        return F_TOP
    if b != 0 and (n[b].price != before.price or n[b].size != before.size):
        return F_TOP
    return 0


cdef inline int _crossed(Level* n, Side* sides) noexcept nogil:
    cdef int32_t b = sides[C_BID].best, a = sides[C_ASK].best
    if b != 0 and a != 0 and n[b].price >= n[a].price:
        return F_CROSSED
    return 0


cdef inline object _best_tuple(Level* n, Side* t, double pscale, double sscale):
    cdef int32_t b = t.best
    if b == 0:
        return None
    return (n[b].price / pscale, n[b].size / sscale)


# ---------------------------------------------------------------------------------------
# Batches: a message's levels validated whole, applied, and published as event rows
# ---------------------------------------------------------------------------------------

# One parsed level of a batch (apply_sides): what the book stores, plus the level it came from
# (borrowed from the caller's list for the call) for the rare float that needs the string.
cdef struct Parsed:
    int64_t price
    int64_t size
    int32_t pdec
    int32_t sdec
    PyObject* item

# ticks below 2**53 convert to float exactly: ticks / 10**scale is then the double nearest
# the decimal (IEEE division rounds correctly), which is what float(text) gives
cdef int64_t EXACT_FLOAT = 9007199254740992

# side names of the event rows (events.BUY / events.SELL; DESIGN.md: bid = buy, ask = sell)
cdef str ROW_BUY = "buy"
cdef str ROW_SELL = "sell"
cdef str _PRICE = "price"
cdef str _SIZE = "size"


cdef extern from *:
    """
    #include "structmember.h"
    /* The fields of a level object (a msgspec Struct: price, size, timestamp) read where its
       type keeps them, as getattr() would find them, without getattr()'s lookups: per type
       (one at a time: a message's levels are of one type), the offset of each name that is a
       plain object slot (a member descriptor, T_OBJECT_EX, found on the type by the usual
       lookup, under the generic __getattribute__); -1 for any other attribute. Valid while the
       type's version tag is (any change to the type or its bases clears it). */
    typedef struct {
        PyTypeObject* type;         /* strong reference; NULL: nothing cached */
        unsigned int version;
        Py_ssize_t off[3];
    } af_slots;

    static void af_slots_fill(af_slots* c, PyTypeObject* t, PyObject** names, int k) {
        int i;
        PyTypeObject* old = c->type;
        c->type = NULL;
        Py_XDECREF(old);
        if (t->tp_getattro != PyObject_GenericGetAttr) return;
        for (i = 0; i < k; i++) {
            PyObject* d = _PyType_Lookup(t, names[i]);
            c->off[i] = -1;
            if (d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type)) {
                PyMemberDef* m = ((PyMemberDescrObject*)d)->d_member;
                if (m->type == T_OBJECT_EX && !(m->flags & PY_AUDIT_READ)) c->off[i] = m->offset;
            }
        }
        if (!(t->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)) return;  /* no tag: not kept */
        Py_INCREF(t);
        c->type = t;
        c->version = t->tp_version_tag;
    }

    /* Field i (of the k names) of item, borrowed, or NULL: read it with getattr(). */
    static inline PyObject* af_slot(af_slots* c, PyObject* item, int i, PyObject** names, int k) {
        PyTypeObject* t = Py_TYPE(item);
        if (t != c->type || t->tp_version_tag != c->version || !(t->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)) {
            af_slots_fill(c, t, names, k);
            if (c->type != t) return NULL;
        }
        if (c->off[i] < 0) return NULL;
        return *(PyObject**)((char*)item + c->off[i]);
    }
    """
    ctypedef struct af_slots:
        pass
    PyObject* af_slot(af_slots* c, PyObject* item, int i, PyObject** names, int k) noexcept


cdef af_slots _LEVEL_SLOTS
cdef PyObject* _LEVEL_NAMES[3]
cdef str _TIMESTAMP = "timestamp"
_LEVEL_NAMES[0] = <PyObject*>_PRICE
_LEVEL_NAMES[1] = <PyObject*>_SIZE
_LEVEL_NAMES[2] = <PyObject*>_TIMESTAMP


cdef inline int _level_item(object item, PyObject** price, PyObject** size) except -1:
    """(price, size) of one level: a tuple/list (first two items) or an object with ``price``
    and ``size`` attributes (a msgspec Struct: read from its slots where they are plain ones).
    Borrowed references, valid while ``item`` is."""
    cdef Py_ssize_t n
    cdef object v
    cdef PyObject* p
    cdef PyObject* z
    if PyTuple_CheckExact(item):
        n = PyTuple_GET_SIZE(item)
        if n < 2:
            raise ValueError(f"level {item!r}: expected [price, size]")
        price[0] = PyTuple_GET_ITEM(item, 0)
        size[0] = PyTuple_GET_ITEM(item, 1)
    elif PyList_CheckExact(item):
        n = PyList_GET_SIZE(item)
        if n < 2:
            raise ValueError(f"level {item!r}: expected [price, size]")
        price[0] = PyList_GET_ITEM(item, 0)
        size[0] = PyList_GET_ITEM(item, 1)
    else:
        p = af_slot(&_LEVEL_SLOTS, <PyObject*>item, 0, _LEVEL_NAMES, 3)
        z = af_slot(&_LEVEL_SLOTS, <PyObject*>item, 1, _LEVEL_NAMES, 3)
        if p != NULL and z != NULL:
            price[0] = p
            size[0] = z
            return 0
        # a Struct holds its fields: the borrowed pointers stay valid while the item lives
        v = PyObject_GetAttr(item, _PRICE)
        price[0] = <PyObject*>v
        v = PyObject_GetAttr(item, _SIZE)
        size[0] = <PyObject*>v
    return 0


cdef inline int _parse_unsigned(object value, int scale, str what, int64_t* out, int32_t* sent) except -1:
    """A level's price or size as the exchange sends it: an unsigned decimal (no sign)."""
    cdef Py_ssize_t n
    cdef const char* b = _buffer(value, &n)
    cdef int status, dec
    if n and (b[0] == 43 or b[0] == 45):       # '+' / '-': exchanges send no signs
        raise ValueError(f"invalid {what} {_shown(value)}: signed")
    status = _parse_plain(b, n, scale, False, out, &dec)
    if status < 0:
        status = _parse_dec(b, n, scale, False, out, &dec)
    if status != P_OK:
        _raise_parse(status, value, what, scale)
    sent[0] = dec
    return 0


cdef inline int64_t _tick_value(object value, str what) except -1:
    """A level's price or size sent as an integer already at the book's scale (a scaled
    integer: Phemex's ``priceEp``): an int in [0, 2**53) (``EXACT_FLOAT``: a row's float is
    then ticks / 10**scale, as float() of its text), else ValueError (TypeError: not an int)."""
    cdef int overflow = 0
    cdef long long v
    if not PyLong_CheckExact(value):
        raise TypeError(f"{what} {value!r}: expected an int (ticks)")
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or v < 0 or v >= EXACT_FLOAT:
        raise ValueError(f"{what} {value!r} (ticks) is not in [0, 2**53)")
    return v


cdef inline Py_ssize_t _batch_len(object levels) except -1:
    if levels is None:
        return 0
    if PyList_CheckExact(levels):
        return PyList_GET_SIZE(levels)
    if PyTuple_CheckExact(levels):
        return PyTuple_GET_SIZE(levels)
    raise TypeError(f"levels must be a list or tuple, got {type(levels).__name__}")


cdef inline object _batch_item(object levels, Py_ssize_t i):
    if PyList_CheckExact(levels):
        return <object>PyList_GET_ITEM(levels, i)
    return <object>PyTuple_GET_ITEM(levels, i)


cdef inline int _put_row(object rows, object row) except -1:
    if PyList_CheckExact(rows):
        PyList_Append(rows, row)
    else:
        rows.append(row)
    return 0


# ---------------------------------------------------------------------------------------
# A frame's events as Avro bytes
# ---------------------------------------------------------------------------------------

cdef extern from "Python.h":
    double PyOS_string_to_double(const char* s, char** endptr, PyObject* overflow_exception) except? -1.0


cdef inline Py_ssize_t _put_long(char* out, int64_t v) noexcept nogil:
    """Avro long: zigzag, then base-128 varint, low groups first."""
    cdef uint64_t z = (<uint64_t>v << 1) ^ <uint64_t>(v >> 63)
    cdef Py_ssize_t k = 0
    while z >= 0x80:
        out[k] = <char>((z & 0x7F) | 0x80)
        z >>= 7
        k += 1
    out[k] = <char>z
    return k + 1


cdef bytes _avro_string(object text):
    """Avro string: length (long), then the UTF-8 bytes."""
    cdef bytes b = (<str>text).encode("utf-8") if PyUnicode_Check(text) else bytes(text)
    cdef char head[10]
    cdef Py_ssize_t k = _put_long(head, PyBytes_GET_SIZE(b))
    return head[:k] + b


cdef bytes AVRO_BUY = _avro_string("buy")
cdef bytes AVRO_SELL = _avro_string("sell")

#: the largest price or size (and 10**14 the largest ms timestamp) a typed writer takes: no
#: exchange means more, and a value past it is a malformed field, not a market
cdef double MAX_VALUE = 1e15
cdef int64_t MAX_MS = 100000000000000

#: the shapes of the topics AvroRows writes: the fields after ``exchange, symbol``, one code
#: each (d: double, l: long, s: string), in the schemas' order (atomfast/schemas/*.avsc)
SHAPES = {
    "lob": b"ddsll",        # price, size, side, event_timestamp, atom_timestamp
    "lob_l3": b"ddssll",    # price, size, side, order_id, event_timestamp, atom_timestamp (trades' layout)
    "trades": b"ddssll",    # price, size, taker_side, trade_id, event_timestamp, atom_timestamp
    "ticker": b"ddddll",    # bid_price, bid_size, ask_price, ask_size, event_timestamp, atom_timestamp
    "spread": b"ddddll",
}
cdef bytes LOB_SHAPE = b"ddsll"
cdef bytes QUOTE_SHAPE = b"ddddll"
cdef bytes TRADE_SHAPE = b"ddssll"


#: 10**k, exact as doubles up to 10**22
cdef double _POW10[23]
for _k in range(23):
    _POW10[_k] = 10.0 ** _k


cdef inline bint _plain_decimal(const char* s, Py_ssize_t n, double* out) noexcept nogil:
    """The common decimal string (``-?digits[.digits]``, at most 19 digits, their integer below
    2**53 and at most 22 of them after the point) parsed exactly: the integer and 10**k are
    exact doubles, so one IEEE division rounds as CPython's correctly rounded parser does (the
    classic fast path of Clinger's algorithm). 0 for anything else: the caller parses it the
    slow way."""
    cdef uint64_t w = 0
    cdef Py_ssize_t i = 0
    cdef int digits = 0, frac = 0
    cdef bint dot = False
    cdef unsigned char c
    cdef double d
    if s[0] == c'-':
        i = 1
    while i < n:
        c = <unsigned char>s[i]
        if c'0' <= c <= c'9':
            digits += 1
            if digits > 19:
                return 0
            w = w * 10 + (c - c'0')
            frac += dot
        elif c == c'.' and not dot:
            dot = True
        else:
            return 0
        i += 1
    if digits == 0 or w >= (<uint64_t>1 << 53) or frac > 22:
        return 0
    d = (<double>w) / _POW10[frac]
    out[0] = -d if s[0] == c'-' else d
    return 1


cdef int _number(object value, double* out, bint plain=True) except -1:
    """A price or size as a typed writer takes it: a float, or an exchange's decimal string
    (parsed as float() parses it, without float()'s blanks and underscores); 0 when it is
    neither a number nor such a string. (``plain=False``: without the fast path, for tests.)"""
    cdef const char* s
    cdef char* end
    cdef Py_ssize_t n
    if type(value) is float:
        out[0] = <double>value
        return 1
    if PyUnicode_Check(value):
        s = PyUnicode_AsUTF8AndSize(value, &n)
        if n == 0 or n > 64 or s[0] == b' ' or s[n - 1] == b' ':
            return 0
        if plain and _plain_decimal(s, n, out):
            return 1
        try:
            out[0] = PyOS_string_to_double(s, &end, NULL)
        except ValueError:  # no number at all
            return 0
        return end == s + n
    if PyLong_CheckExact(value):
        out[0] = <double>value
        return 1
    return 0


cdef int _time_ms(object value, int64_t* out) except -1:
    """A typed writer's event time: an int in [0, 10**14) ms -> 1 (``out``); any other int,
    however large, -> 0 (no time an exchange means); TypeError for what is not an int."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or not 0 <= v < MAX_MS:
        return 0
    out[0] = v
    return 1


cdef inline bint _fits(double x) noexcept nogil:
    return 0.0 <= x < MAX_VALUE  # (NaN: False)


cdef class AvroRows:
    """The current frame's events of one topic as framed Avro values, each with its
    ``exchange:symbol`` key, in one buffer: no event tuple, no float object and no encoder
    call per event (issue 15, "events as bytes"). ``Pipeline.rows(topic)`` hands one to the
    schemes for the high-volume topics (``SHAPES``) when the sink needs no records (Kafka,
    files, null). ``L2Book.apply_sides`` and ``L2Book.spread_into`` write into it with C calls,
    the typed writers ``quote`` and ``trade`` take an exchange's fields as sent, ``append``
    takes an event tuple (a scheme's own ``emit``); ``take`` gives the frame's (keys, values)
    and empties it, a sink with ``write_rows`` reads the buffer itself (``view``). The bytes
    equal the Rust encoder's (tests/test_captures.py compares them on every capture)."""

    def __cinit__(self):
        self.buf = NULL
        self.ends = NULL
        self.size = self.cap = self.n = self.ncap = 0

    def __init__(self, bytes prefix=b"", bytes shape=LOB_SHAPE):
        for c in shape:
            if c not in b"dls":
                raise ValueError(f"AvroRows: field code {chr(c)!r} (d, l or s)")
        self.prefix = prefix
        self.shape = shape
        self.keys = []
        self._heads = {}
        self._hx = self._hs = None

    def __dealloc__(self):
        free(self.buf)
        free(self.ends)

    def __len__(self):
        return self.n

    @property
    def nbytes(self):
        """Bytes of the values written so far (framing included)."""
        return self.size

    cdef int _head(self, object exchange, object symbol) except -1:
        if exchange is self._hx and symbol is self._hs:
            return 0
        # ``_heads``: (exchange, symbol) -> (key, body), and, for a symbol str, symbol ->
        # (exchange, key, body) of the first exchange seen with it (a str key: no tuple to make
        # and hash where a frame's symbol is not the previous frame's)
        cdef object h = self._heads.get(symbol) if PyUnicode_CheckExact(symbol) else None
        cdef tuple t
        if h is not None and (<tuple>h)[0] is exchange:
            self._hkey, self._hbody = (<tuple>h)[1], (<tuple>h)[2]
        else:
            t = (exchange, symbol)
            h = self._heads.get(t)
            if h is None:
                h = self._heads[t] = (f"{exchange}:{symbol}".encode(), _avro_string(exchange) + _avro_string(symbol))
                if PyUnicode_CheckExact(symbol) and symbol not in self._heads:
                    self._heads[symbol] = (exchange, (<tuple>h)[0], (<tuple>h)[1])
            self._hkey, self._hbody = (<tuple>h)[0], (<tuple>h)[1]
        self._hx, self._hs = exchange, symbol
        return 0

    cdef char* _begin(self, object exchange, object symbol, Py_ssize_t body) except NULL:
        """Room for a row of at most ``body`` bytes after its head; the head and the framing
        written: returns where the fields go. ``_end`` completes the row."""
        self._head(exchange, symbol)
        cdef Py_ssize_t plen = PyBytes_GET_SIZE(self.prefix), hlen = PyBytes_GET_SIZE(self._hbody)
        cdef Py_ssize_t need = self.size + plen + hlen + body
        cdef char* grown
        cdef Py_ssize_t* grown_ends
        if need > self.cap:
            grown = <char*>realloc(self.buf, need * 2 + 256)
            if grown == NULL:
                raise MemoryError()
            self.buf, self.cap = grown, need * 2 + 256
        if self.n == self.ncap:
            grown_ends = <Py_ssize_t*>realloc(self.ends, (self.ncap * 2 + 16) * sizeof(Py_ssize_t))
            if grown_ends == NULL:
                raise MemoryError()
            self.ends, self.ncap = grown_ends, self.ncap * 2 + 16
        cdef char* out = self.buf + self.size
        memcpy(out, PyBytes_AS_STRING(self.prefix), plen)
        memcpy(out + plen, PyBytes_AS_STRING(self._hbody), hlen)
        return out + plen + hlen

    cdef int _end(self, char* out) except -1:
        self.size = out - self.buf
        self.ends[self.n] = self.size
        self.n += 1
        self.keys.append(self._hkey)
        return 0

    cdef int add(self, object exchange, object symbol, double price, double size, bint buy,
                 int64_t event_ms, int64_t atom_us) except -1:
        """One ``lob`` row (the book's): the framed value into the buffer, its key into the keys."""
        cdef bytes side = AVRO_BUY if buy else AVRO_SELL
        cdef char* out = self._begin(exchange, symbol, 16 + PyBytes_GET_SIZE(side) + 20)
        memcpy(out, &price, 8)  # Avro double: IEEE 754, little-endian (this machine's order)
        memcpy(out + 8, &size, 8)
        out += 16
        memcpy(out, PyBytes_AS_STRING(side), PyBytes_GET_SIZE(side))
        out += PyBytes_GET_SIZE(side)
        out += _put_long(out, event_ms)
        out += _put_long(out, atom_us)
        return self._end(out)

    cdef int add_quote(self, object exchange, object symbol, double bp, double bs, double ap,
                       double asz, int64_t event_ms, int64_t atom_us) except -1:
        """One ``ticker``/``spread`` row from C values."""
        cdef char* out = self._begin(exchange, symbol, 32 + 20)
        memcpy(out, &bp, 8)
        memcpy(out + 8, &bs, 8)
        memcpy(out + 16, &ap, 8)
        memcpy(out + 24, &asz, 8)
        out += 32
        out += _put_long(out, event_ms)
        out += _put_long(out, atom_us)
        return self._end(out)

    cpdef bint quote(self, object exchange, object symbol, object bid_price, object bid_size,
                     object ask_price, object ask_size, object event_ms, int64_t atom_us) except -1:
        """A ``ticker``/``spread`` event from an exchange's fields as sent (decimal strings or
        floats): written, True; or nothing written, False, where a value is not a number in
        [0, 1e15) or the time not in [0, 10**14) ms (the scheme reports the malformed message)."""
        cdef double bp, bs, ap, asz
        cdef int64_t ems = 0
        if self.shape is not QUOTE_SHAPE and self.shape != QUOTE_SHAPE:
            raise TypeError(f"quote() on rows of shape {self.shape!r}")
        if not (_number(bid_price, &bp) and _number(bid_size, &bs) and _number(ask_price, &ap)
                and _number(ask_size, &asz) and _fits(bp) and _fits(bs) and _fits(ap) and _fits(asz)
                and _time_ms(event_ms, &ems)):
            return False
        self.add_quote(exchange, symbol, bp, bs, ap, asz, ems, atom_us)
        return True

    cpdef bint trade(self, object exchange, object symbol, object price, object size, bint buy,
                     object trade_id, object event_ms, int64_t atom_us) except -1:
        """A ``trades`` event from an exchange's fields as sent (``buy``: the taker bought):
        written, True; or nothing written, False, where the price is not a number in (0, 1e15),
        the size not in [0, 1e15) or the time not in [0, 10**14) ms."""
        cdef double p, s
        cdef int64_t ems = 0
        cdef Py_ssize_t idlen
        cdef const char* ids
        if self.shape is not TRADE_SHAPE and self.shape != TRADE_SHAPE:
            raise TypeError(f"trade() on rows of shape {self.shape!r}")
        if not (_number(price, &p) and _number(size, &s) and 0.0 < p < MAX_VALUE and _fits(s)
                and _time_ms(event_ms, &ems)):
            return False
        cdef char digits[48]  # (_utoa may store up to 24 bytes past the digits)
        if PyLong_CheckExact(trade_id):
            if 0 <= trade_id <= INT64_MAX:
                idlen = _utoa(digits, <uint64_t>(<int64_t>trade_id))
                ids = digits
            else:
                trade_id = str(trade_id)
        if not PyLong_CheckExact(trade_id):
            ids = PyUnicode_AsUTF8AndSize(trade_id, &idlen)  # TypeError: neither str nor int
        cdef bytes side = AVRO_BUY if buy else AVRO_SELL
        cdef char* out = self._begin(exchange, symbol, 16 + PyBytes_GET_SIZE(side) + 10 + idlen + 20)
        memcpy(out, &p, 8)
        memcpy(out + 8, &s, 8)
        out += 16
        memcpy(out, PyBytes_AS_STRING(side), PyBytes_GET_SIZE(side))
        out += PyBytes_GET_SIZE(side)
        out += _put_long(out, idlen)
        memcpy(out, ids, idlen)
        out += idlen
        out += _put_long(out, ems)
        out += _put_long(out, atom_us)
        self._end(out)
        return True

    cpdef bint order(self, object exchange, object symbol, object price, object size, bint bid,
                     object order_id, object event_ms, int64_t atom_us) except -1:
        """A ``lob_l3`` event (an order's price and remaining size; size 0: gone; ``bid``: a buy
        order) from an exchange's fields as sent, checked as ``trade`` (the two topics have one
        layout: price, size, side, id, times)."""
        return self.trade(exchange, symbol, price, size, bid, order_id, event_ms, atom_us)

    def append(self, row):
        """An event tuple of this topic (``events.Lob``, ``Trade``, ...; any tuple of its fields in
        the schema's order), encoded as the Rust encoder encodes it, as ``list.append`` takes it."""
        if not PyTuple_Check(row):
            row = tuple(row)
        cdef const char* codes = PyBytes_AS_STRING(self.shape)
        cdef Py_ssize_t nf = PyBytes_GET_SIZE(self.shape), i, body = 0, slen
        cdef const char* s
        cdef double d
        cdef int64_t v
        if PyTuple_GET_SIZE(row) != nf + 2:
            raise ValueError(f"a row of {PyTuple_GET_SIZE(row)} fields for a shape of {nf + 2}")
        # the strings' lengths first (and every field's type checked before anything is written)
        for i in range(nf):
            value = <object>PyTuple_GET_ITEM(row, i + 2)
            if codes[i] == b"s":
                PyUnicode_AsUTF8AndSize(value, &slen)
                body += 10 + slen
            elif codes[i] == b"d":
                d = value  # TypeError for what is not a number, as the encoder's
                body += 8
            else:
                v = value
                body += 10
        cdef char* out = self._begin(<object>PyTuple_GET_ITEM(row, 0), <object>PyTuple_GET_ITEM(row, 1), body)
        for i in range(nf):
            value = <object>PyTuple_GET_ITEM(row, i + 2)
            if codes[i] == b"s":
                s = PyUnicode_AsUTF8AndSize(value, &slen)
                out += _put_long(out, slen)
                memcpy(out, s, slen)
                out += slen
            elif codes[i] == b"d":
                d = value
                memcpy(out, &d, 8)
                out += 8
            else:
                out += _put_long(out, <int64_t>value)
        self._end(out)

    def take(self):
        """``(keys, values)`` of the rows so far (bytes each), and the rows emptied."""
        cdef list values = []
        cdef Py_ssize_t i, start = 0
        for i in range(self.n):
            values.append(self.buf[start:self.ends[i]])
            start = self.ends[i]
        keys = self.keys
        self.keys = []
        self.n = self.size = 0
        return keys, values

    def take_block(self):
        """``(keys, data)``: the rows' keys and their values concatenated (one bytes object: an
        Avro container block's data where the prefix is empty), and the rows emptied."""
        cdef bytes data = self.buf[:self.size]
        keys = self.keys
        self.keys = []
        self.n = self.size = 0
        return keys, data

    def withdraw(self, bytes key):
        """Drop the rows keyed ``key`` (a book found corrupt within the frame: none of its
        levels is published); returns how many."""
        cdef Py_ssize_t i, j = 0, start = 0, end, kept = 0, dropped = 0
        cdef list keys = []
        for i in range(self.n):
            end = self.ends[i]
            if self.keys[i] == key:
                dropped += 1
            else:
                if start != kept:
                    memmove(self.buf + kept, self.buf + start, end - start)
                kept += end - start
                self.ends[j] = kept
                j += 1
                keys.append(self.keys[i])
            start = end
        self.n, self.size, self.keys = j, kept, keys
        return dropped

    cpdef clear(self):
        # empty already: no new list (the pipeline clears a topic's rows after a frame, and again
        # at its first use in the next)
        if self.n or self.keys is None or PyList_GET_SIZE(self.keys):
            self.keys = []
        self.n = self.size = 0


cdef class RecordRows(list):
    """The current frame's events of one topic as event tuples (``row_type``: ``events.Ticker``,
    ...): a list, with ``AvroRows``' typed writers (``quote``, ``trade``) for the sinks that
    read records (stdout, memory, level4). Same checks, same values: the tuple's floats are
    the doubles AvroRows writes."""

    cdef type row_type

    def __init__(self, type row_type):
        self.row_type = row_type

    cpdef bint quote(self, object exchange, object symbol, object bid_price, object bid_size,
                     object ask_price, object ask_size, object event_ms, int64_t atom_us) except -1:
        cdef double bp, bs, ap, asz
        cdef int64_t ems = 0
        if not (_number(bid_price, &bp) and _number(bid_size, &bs) and _number(ask_price, &ap)
                and _number(ask_size, &asz) and _fits(bp) and _fits(bs) and _fits(ap) and _fits(asz)
                and _time_ms(event_ms, &ems)):
            return False
        self.append(tuple.__new__(self.row_type, (exchange, symbol, bp, bs, ap, asz, ems, atom_us)))
        return True

    cpdef bint trade(self, object exchange, object symbol, object price, object size, bint buy,
                     object trade_id, object event_ms, int64_t atom_us) except -1:
        cdef double p, s
        cdef int64_t ems = 0
        if not (_number(price, &p) and _number(size, &s) and 0.0 < p < MAX_VALUE and _fits(s)
                and _time_ms(event_ms, &ems)):
            return False
        if PyLong_CheckExact(trade_id):
            trade_id = str(trade_id)
        elif not PyUnicode_Check(trade_id):
            raise TypeError(f"trade id {trade_id!r}: str or int")
        self.append(tuple.__new__(self.row_type, (exchange, symbol, p, s, ROW_BUY if buy else ROW_SELL, trade_id,
                                                  ems, atom_us)))
        return True

    cpdef bint order(self, object exchange, object symbol, object price, object size, bint bid,
                     object order_id, object event_ms, int64_t atom_us) except -1:
        return self.trade(exchange, symbol, price, size, bid, order_id, event_ms, atom_us)


cdef int _spread_into(Level* n, Side* sides, double pdiv, double sdiv, object book, object rows,
                      type row_type, object exchange, object symbol, int64_t event_ms,
                      int64_t atom_us) except -1:
    """A book's ``spread_into``: its top (``best()``) as a spread event, into ``rows``."""
    cdef int32_t b = sides[C_BID].best, a = sides[C_ASK].best
    if type(rows) is AvroRows:
        (<AvroRows>rows).add_quote(
            exchange, symbol, n[b].price / pdiv if b else 0.0, n[b].size / sdiv if b else 0.0,
            n[a].price / pdiv if a else 0.0, n[a].size / sdiv if a else 0.0, event_ms, atom_us)
    else:
        rows.append(tuple.__new__(row_type, (exchange, symbol) + book.best() + (event_ms, atom_us)))
    return 0


cdef str _LOB = "lob"
cdef str _SPREAD = "spread"

cdef enum:
    BULK_MIN = 8                # levels of a side loaded whole into an empty side (L2Book._load)


cdef bint _loadable(Parsed* lv, Py_ssize_t m, int side) noexcept nogil:
    """Whether levels of ``side`` are best first, strictly (each price worse than the one before),
    and all of size > 0: what ``L2Book._load`` takes (a snapshot's side)."""
    cdef Py_ssize_t i
    for i in range(m):
        if lv[i].size <= 0:
            return False
        if i and ((lv[i].price >= lv[i - 1].price) if side == C_BID else (lv[i].price <= lv[i - 1].price)):
            return False
    return True


cdef int32_t _build(Level* n, int32_t* z, Py_ssize_t lo, Py_ssize_t hi, int depth, int red_depth,
                    int32_t parent) noexcept nogil:
    """The balanced subtree of the nodes ``z[lo..hi]`` (ascending prices): its root."""
    cdef Py_ssize_t mid
    cdef int32_t x
    if lo > hi:
        return 0
    mid = (lo + hi) // 2
    x = z[mid]
    n[x].parent = parent
    n[x].red = 1 if depth == red_depth else 0
    n[x].left = _build(n, z, lo, mid - 1, depth + 1, red_depth, x)
    n[x].right = _build(n, z, mid + 1, hi, depth + 1, red_depth, x)
    return x


cdef int64_t I32_MIN = -2147483648, I32_MAX = 2147483647, U32_MAX = 4294967295


cdef int _expected_checksum(object value, int kind, int64_t* out) except -1:
    """The checksum an update says the book has (``apply_update``'s ``expected``), for a
    checksum of ``kind``: an int, or its decimal digits as text (str or bytes: 1..10 ASCII
    digits, a '-' first for the signed kinds), within the kind's range (unsigned or signed
    32 bits) -> 1, ``out``; anything else -> 0."""
    cdef Py_ssize_t n, i = 0
    cdef const char* s
    cdef int64_t v = 0
    cdef long long x
    cdef int overflow = 0
    cdef bint neg = False, signed = kind == K_OKX or kind == K_BITFINEX
    if PyLong_CheckExact(value):
        x = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow:
            return 0
        v = x
    elif PyUnicode_Check(value) or PyBytes_Check(value):
        s = _buffer(value, &n)
        if signed and n and s[0] == 45:     # '-'
            neg = True
            i = 1
        if n - i == 0 or n - i > 10:
            return 0
        while i < n:
            if not 48 <= s[i] <= 57:
                return 0
            v = v * 10 + (s[i] - 48)
            i += 1
        if neg:
            v = -v
    else:
        return 0
    if signed:
        if not I32_MIN <= v <= I32_MAX:
            return 0
    elif not 0 <= v <= U32_MAX:
        return 0
    out[0] = v
    return 1


cdef inline object _level_time(object item):
    """A level's time (its third field: ``timestamp`` of a Struct, item 2 of a tuple or list)
    where it is a str or bytes; None if it has none, or one of another type."""
    cdef object v
    cdef PyObject* t
    if PyTuple_CheckExact(item):
        if PyTuple_GET_SIZE(item) < 3:
            return None
        v = <object>PyTuple_GET_ITEM(item, 2)
    elif PyList_CheckExact(item):
        if PyList_GET_SIZE(item) < 3:
            return None
        v = <object>PyList_GET_ITEM(item, 2)
    else:
        t = af_slot(&_LEVEL_SLOTS, <PyObject*>item, 2, _LEVEL_NAMES, 3)
        if t != NULL:
            v = <object>t
        else:
            try:
                v = PyObject_GetAttr(item, _TIMESTAMP)
            except AttributeError:
                return None
    if PyUnicode_Check(v) or PyBytes_Check(v):
        return v
    return None


cdef object _newest_time(object first, Py_ssize_t n1, object second, Py_ssize_t n2):
    """The time of a message's newest level: the greatest level time by its text (as max() of the
    strings: the first of equal ones), "" where there is no level; None where a level has no time
    (or one that is no str or bytes)."""
    cdef Py_ssize_t i, n, best_n = 0
    cdef const char* s
    cdef const char* best_s = NULL
    cdef object t, best = ""
    cdef int c
    for i in range(n1 + n2):
        t = _level_time(_batch_item(first, i) if i < n1 else _batch_item(second, i - n1))
        if t is None:
            return None
        s = _buffer(t, &n)
        if best_s != NULL:
            # bytewise, as str compares (UTF-8 keeps the order of code points)
            c = memcmp(s, best_s, n if n < best_n else best_n)
            if c < 0 or (c == 0 and n <= best_n):
                continue
        best, best_s, best_n = t, s, n
    return best


cdef int _newest_ms(object first, Py_ssize_t n1, object second, Py_ssize_t n2, int64_t atom_us,
                    int64_t* out) except -1:
    """The time of an update's newest level (``apply_update``'s ``event_ms=None``, ``_newest_time``)
    as decimal seconds -> ms; ``atom_us // 1000`` where there is no level, or its time is "". 1, or
    0 where a level has no time, or the newest is no decimal seconds."""
    cdef Py_ssize_t n
    cdef const char* s
    cdef object t = _newest_time(first, n1, second, n2)
    if t is None:
        return 0
    s = _buffer(t, &n)
    if n == 0:
        out[0] = atom_us // 1000 if atom_us >= 0 else -((-atom_us + 999) // 1000)
        return 1
    return _seconds_c(s, n, 3, out) == 0


def newest_time(first_levels, second_levels=None):
    """The time of a message's newest level: of the levels' times (their third field: a Struct's
    ``timestamp``, item 2 of a tuple or list; str or bytes), the greatest text, as ``max()`` of
    the strings gives it (Kraken v1 writes them all with the same digits); "" for no level.
    TypeError where a level has no such time. Either side may be None."""
    cdef object t = _newest_time(first_levels, _batch_len(first_levels), second_levels,
                                 _batch_len(second_levels))
    if t is None:
        raise TypeError("a level without a time (its third field, str or bytes)")
    return t


# ---------------------------------------------------------------------------------------
# L2 book
# ---------------------------------------------------------------------------------------

cdef struct JsonCache:
    # check_json_numbers' last texts read, per side (0: the first text, 1: the second): each
    # level's parse and where its text ("[price,size]") was; a level whose text comes again is
    # not parsed again (its parse is a function of its text, the book's scales and the rounding)
    Parsed* lv[2]
    int32_t* at[2]
    int32_t* ln[2]
    Py_ssize_t n[2]
    int32_t* tat[2]             # the read in progress (swapped in where it succeeds)
    int32_t* tln[2]
    Py_ssize_t cap              # of every array
    int rounded                 # the round_sizes of the texts kept


cdef void _jc_free(JsonCache* c) noexcept nogil:
    cdef int k
    if c == NULL:
        return
    for k in range(2):
        free(c.lv[k])
        free(c.at[k])
        free(c.ln[k])
        free(c.tat[k])
        free(c.tln[k])
    free(c)


cdef int _jc_reserve(JsonCache* c, Py_ssize_t need) noexcept nogil:
    """Every array of ``c`` grown to ``need`` entries at least (the kept ones' contents kept):
    0, or -1 (out of memory; ``c`` as it was, every array at least its old capacity)."""
    cdef int k
    cdef Py_ssize_t cap = need + 64
    if need <= c.cap:
        return 0
    for k in range(2):
        if (_grow(<void**>&c.lv[k], cap * sizeof(Parsed)) or _grow(<void**>&c.at[k], cap * sizeof(int32_t))
                or _grow(<void**>&c.ln[k], cap * sizeof(int32_t)) or _grow(<void**>&c.tat[k], cap * sizeof(int32_t))
                or _grow(<void**>&c.tln[k], cap * sizeof(int32_t))):
            return -1
    c.cap = cap
    return 0


cdef inline int _grow(void** p, size_t size) noexcept nogil:
    """``p[0]`` reallocated to ``size`` bytes: 0, or -1 (out of memory; ``p[0]`` as it was)."""
    cdef void* q = realloc(p[0], size)
    if q == NULL:
        return -1
    p[0] = q
    return 0


cdef class L2Book:
    """Level-2 book: price -> total size per side, keyed on exact prices.

    ``apply(side, price, size)`` sets the total size at a price (0 removes the level) and
    returns flags (TOP_CHANGED | CROSSED | UNKNOWN). Bad input raises ValueError and
    leaves the book unchanged. ``capacity`` is the initial number of level nodes (both
    sides together); the pool grows by doubling as needed.
    """

    cdef Pool pool
    cdef Side sides[2]
    cdef int pscale
    cdef int sscale
    cdef double pdiv
    cdef double sdiv
    # The tuples last returned by best_bid()/best_ask()/best(), reused until the top of the
    # book changes (tuples are immutable): most reads follow updates below the top.
    cdef object _cache_bid
    cdef object _cache_ask
    cdef object _cache_best
    cdef TextCache* tcache      # checksum texts (NULL until the first checksum call)
    cdef Parsed* scratch        # apply_sides: the message's levels, parsed (grown as needed)
    cdef Py_ssize_t scratch_cap
    # The last checksum computed (``_checksum``): its kind (0: none), its value, and, per side,
    # whether it covered its full depth of levels (``ck_full``) and the price of the last one it
    # covered (``ck_edge``). A change at a price beyond the edge of a full side (an insert,
    # update or removal below the levels a checksum covers) leaves the value as it is; any
    # other change makes that side's part stale (``ck_stale``; a truncate into the covered
    # levels or a clear: all of it, ``ck_kind = 0``). Kraken's text is the asks', then the
    # bids': ``ck_mid`` is the CRC state after the asks, the bids' texts are the text cache's.
    cdef int ck_kind
    cdef int64_t ck_value
    cdef int64_t ck_edge[2]
    cdef bint ck_full[2]
    cdef bint ck_stale[2]
    cdef uint32_t ck_mid
    # check_sides' lists (held) and their lengths while ``scratch`` holds their parse, for the
    # apply_sides of the same lists that follows (a snapshot: checked, the book cleared, applied)
    cdef object chk_first, chk_second
    cdef Py_ssize_t chk_n1, chk_n2
    # check_json_numbers' texts while ``scratch`` holds their parse (for replace_json_sides; not
    # apply_json_sides: a level of 2**53 ticks or more has no item, replace_json_sides makes it)
    cdef object chk_nfirst, chk_nsecond
    # check_json_numbers' last texts (held: their bytes are what jcache's offsets point into)
    cdef JsonCache* jcache
    cdef object jc_text0, jc_text1
    # check_json_sides_wide: the (price, size) strings of the levels of 2**53 ticks or more it
    # read (``scratch``'s items point at them), held until its next call
    cdef list chk_wide

    def __cinit__(self, int price_decimals=8, int size_decimals=8, Py_ssize_t capacity=1024):
        _check_decimals(price_decimals, size_decimals)
        self.pscale = price_decimals
        self.sscale = size_decimals
        self.pdiv = <double>P10[price_decimals]
        self.sdiv = <double>P10[size_decimals]
        self.tcache = NULL
        self.scratch = NULL
        self.scratch_cap = 0
        self.jcache = NULL
        self.ck_kind = 0
        _pool_init(&self.pool, capacity, 0)
        _side_reset(&self.sides[C_BID], True)
        _side_reset(&self.sides[C_ASK], False)

    def __dealloc__(self):
        _pool_release(&self.pool)
        _side_release(&self.sides[C_BID])
        _side_release(&self.sides[C_ASK])
        _tc_free(self.tcache)
        free(self.scratch)
        _jc_free(self.jcache)

    cdef inline TextCache* _tc(self) noexcept:
        if self.tcache == NULL:
            self.tcache = _tc_new()
        _tc_begin(self.tcache)
        return self.tcache

    @property
    def price_decimals(self):
        """Fixed scale of prices: a price is stored as round(price * 10**price_decimals)."""
        return self.pscale

    @property
    def size_decimals(self):
        """Fixed scale of sizes."""
        return self.sscale

    @property
    def nbytes(self):
        """Bytes of C memory held by the level pool (allocated nodes, used or free) and the
        sides' price indexes."""
        return (<Py_ssize_t>self.pool.cap * sizeof(Level) + _side_nbytes(&self.sides[C_BID])
                + _side_nbytes(&self.sides[C_ASK]))

    cdef int _set(self, int side, int64_t price, int64_t size, int pdec, int sdec) except -1:
        cdef Side* t = &self.sides[side]
        cdef Top before
        cdef int32_t x
        cdef bint created
        cdef int flags = 0
        cdef Level* n = self.pool.n
        if not (self.ck_full[side] and (price < self.ck_edge[side] if side == C_BID
                                        else price > self.ck_edge[side])):
            self.ck_stale[side] = True  # within the levels the last checksum covered
        _top(n, t, &before)
        if size == 0:
            x = _find(n, t, price)
            if x == 0:
                flags = F_UNKNOWN
            else:
                _erase(&self.pool, t, x)
        else:
            x = _find_or_insert(&self.pool, t, price, &created)
            if x == 0:
                raise MemoryError("order book level pool exhausted")
            n = self.pool.n
            n[x].size = size
            n[x].pdec = <uint8_t>pdec
            n[x].sdec = <uint8_t>sdec
        n = self.pool.n
        if _top_changed(n, t, &before):
            flags |= F_TOP
            self._cache_best = None
            if side == C_BID:
                self._cache_bid = None
            else:
                self._cache_ask = None
        return flags | _crossed(n, self.sides)

    cdef void _forget_tops(self) noexcept:
        self._cache_bid = None
        self._cache_ask = None
        self._cache_best = None

    def apply(self, int side, price, size):
        """Set the total size at `price` on `side` (BID or ASK); size 0 removes the level.

        `price` and `size` are exchange decimal strings (str or bytes). Returns
        TOP_CHANGED | CROSSED | UNKNOWN flags (UNKNOWN: removal of an absent level).
        Raises ValueError (book unchanged) on a malformed, negative or too precise value.
        """
        cdef int64_t p, s
        cdef int pd, sd
        _check_side(side)
        _parse(price, self.pscale, False, "price", &p, &pd)
        _parse(size, self.sscale, False, "size", &s, &sd)
        return self._set(side, p, s, pd, sd)

    def apply_ticks(self, int side, int64_t price, int64_t size):
        """As apply(), with already-scaled integers (sent decimals = the book's scale)."""
        _check_side(side)
        if price < 0:
            raise ValueError(f"invalid price {price}: negative")
        if size < 0:
            raise ValueError(f"invalid size {size}: negative")
        return self._set(side, price, size, self.pscale, self.sscale)

    cdef Parsed* _scratch(self, Py_ssize_t n) except NULL:
        cdef Parsed* grown
        if n > self.scratch_cap:
            grown = <Parsed*>realloc(self.scratch, (n + 16) * sizeof(Parsed))
            if grown == NULL:
                raise MemoryError()
            self.scratch = grown
            self.scratch_cap = n + 16
        return self.scratch

    cdef int _parse_batch(self, object levels, Py_ssize_t n, Parsed* out) except -1:
        cdef Py_ssize_t i
        cdef PyObject* po
        cdef PyObject* so
        cdef object item
        for i in range(n):
            item = _batch_item(levels, i)
            _level_item(item, &po, &so)
            out[i].item = <PyObject*>item
            _parse_unsigned(<object>po, self.pscale, "price", &out[i].price, &out[i].pdec)
            if out[i].price == 0:
                raise ValueError(f"invalid price {_shown(<object>po)}: zero")
            _parse_unsigned(<object>so, self.sscale, "size", &out[i].size, &out[i].sdec)
        return 0

    cdef object _row(self, type row_type, object exchange, object symbol, int side, Parsed* lv,
                     object event_ms, object atom_us):
        cdef PyObject* po = NULL
        cdef PyObject* so = NULL
        cdef object price_obj, size_obj
        if lv.price >= EXACT_FLOAT or lv.size >= EXACT_FLOAT:
            # beyond 2**53 ticks the division may round differently: float() of the text
            _level_item(<object>lv.item, &po, &so)
            if lv.price < EXACT_FLOAT:
                po = NULL
            if lv.size < EXACT_FLOAT:
                so = NULL
        return af_row7(<PyTypeObject*>row_type, exchange, symbol, lv.price / self.pdiv, po,
                       lv.size / self.sdiv, so, ROW_BUY if side == C_BID else ROW_SELL,
                       event_ms, atom_us)

    def check_sides(self, first_levels, second_levels=None):
        """Parse the levels as apply_sides() would, applying nothing: ValueError on the first
        bad level (e.g. a snapshot is checked whole before the book is cleared for it). The
        parse is kept for an apply_sides of the same lists next (not parsed again): the levels
        must not change in between."""
        cdef Py_ssize_t n1 = _batch_len(first_levels)
        cdef Py_ssize_t n2 = _batch_len(second_levels)
        cdef Parsed* lv
        self._forget_check()
        if n1 + n2:
            lv = self._scratch(n1 + n2)
            self._parse_batch(first_levels, n1, lv)
            self._parse_batch(second_levels, n2, lv + n1)
            self.chk_first, self.chk_second, self.chk_n1, self.chk_n2 = first_levels, second_levels, n1, n2

    cdef inline void _forget_check(self) noexcept:
        self.chk_first = self.chk_second = None
        self.chk_nfirst = self.chk_nsecond = None
        self.chk_n1 = self.chk_n2 = 0

    cdef bint _checked(self, object first_levels, Py_ssize_t n1, object second_levels, Py_ssize_t n2) noexcept:
        """Whether ``scratch`` holds the parse of these levels: check_sides' (the same lists, of
        the same lengths, holding the same level objects; the levels themselves unchanged since,
        which is the caller's part: a message's levels are not changed between the two calls)."""
        cdef Py_ssize_t i
        cdef object item
        if n1 + n2 == 0 or first_levels is not self.chk_first or second_levels is not self.chk_second \
                or n1 != self.chk_n1 or n2 != self.chk_n2:
            return False
        for i in range(n1 + n2):
            item = _batch_item(first_levels, i) if i < n1 else _batch_item(second_levels, i - n1)
            if <PyObject*>item != self.scratch[i].item:
                return False
        return True

    def apply_sides(self, int first, first_levels, second_levels, rows, type row_type,
                    exchange, symbol, event_ms, atom_us, Py_ssize_t depth=0):
        """Apply one message's levels: `first_levels` on side `first` (BID or ASK), then
        `second_levels` on the other side, and append an event row to `rows` for each level
        that changed the book; returns the OR of the flags (as apply()).

        Each side's levels are a list (or tuple) of `(price, size)` pairs or of objects with
        `price` and `size` attributes (exchange decimal strings, str or bytes; None: no
        levels). EVERY level is parsed before any is applied: a malformed, signed, zero
        (price) or too precise value raises ValueError and leaves the book unchanged.
        A removal of a level the book does not hold changes nothing and makes no row.

        A row is `row_type(exchange, symbol, price, size, side, event_ms, atom_us)` (a tuple
        subclass: events.Lob), with `side` "buy" (BID) or "sell" (ASK) and the price and size
        as floats equal to float() of the strings. `rows` is a list (or anything with
        `append`), or an AvroRows: the rows are then written as encoded `lob` values. With `depth` > 0, the levels beyond the best `depth` of each side are then
        removed, each with a row of size 0.0 (bids first, best first), as truncate(depth).
        """
        cdef Py_ssize_t n1 = _batch_len(first_levels)
        cdef Py_ssize_t n2 = _batch_len(second_levels)
        cdef Parsed* lv = NULL
        cdef int64_t ems = 0, aus = 0
        _check_side(first)
        if not PyType_IsSubtype(row_type, tuple):
            raise TypeError("row_type must be a tuple subclass (a NamedTuple)")
        if n1 + n2 == 0 and depth <= 0:
            return 0
        if type(rows) is AvroRows:
            ems, aus = event_ms, atom_us
        if self._checked(first_levels, n1, second_levels, n2):
            lv = self.scratch               # parsed by check_sides
        elif n1 + n2:
            lv = self._scratch(n1 + n2)
            self._parse_batch(first_levels, n1, lv)
            self._parse_batch(second_levels, n2, lv + n1)
        self._forget_check()
        return self._apply_parsed(first, lv, n1, n2, rows, row_type, exchange, symbol, event_ms, atom_us, ems, aus,
                                  depth)

    def apply_scaled_sides(self, int first, first_levels, second_levels, rows, type row_type,
                           exchange, symbol, event_ms, atom_us):
        """``apply_sides`` (without ``depth``) of levels whose prices and sizes are integers
        already at the book's scale, as a venue sending scaled integers has them (Phemex's
        ``[priceEp, size]``): each level as ``apply_ticks`` sets it (written with the book's
        decimals), the rows' floats ticks / 10**scale (what float() of that text gives).

        EVERY level is read before any is applied: a value that is not an int (TypeError), a
        negative one, one of 2**53 ticks or more (its float needs the text: apply such a level
        as text with ``apply_sides``) or a zero price raises ValueError and leaves the book
        unchanged. Returns the flags (as ``apply_sides``)."""
        cdef Py_ssize_t n1 = _batch_len(first_levels)
        cdef Py_ssize_t n2 = _batch_len(second_levels)
        cdef Parsed* lv
        cdef int64_t ems = 0, aus = 0
        _check_side(first)
        if not PyType_IsSubtype(row_type, tuple):
            raise TypeError("row_type must be a tuple subclass (a NamedTuple)")
        self._forget_check()
        if n1 + n2 == 0:
            return 0
        if type(rows) is AvroRows:
            ems, aus = event_ms, atom_us
        lv = self._scratch(n1 + n2)
        self._tick_batch(first_levels, n1, lv)
        self._tick_batch(second_levels, n2, lv + n1)
        return self._apply_parsed(first, lv, n1, n2, rows, row_type, exchange, symbol, event_ms, atom_us, ems, aus, 0)

    cdef int _tick_batch(self, object levels, Py_ssize_t n, Parsed* out) except -1:
        """``_parse_batch`` of levels sent as scaled integers (``apply_scaled_sides``)."""
        cdef Py_ssize_t i
        cdef PyObject* po
        cdef PyObject* so
        cdef object item
        for i in range(n):
            item = _batch_item(levels, i)
            _level_item(item, &po, &so)
            out[i].item = <PyObject*>item
            out[i].price = _tick_value(<object>po, "price")
            if out[i].price == 0:
                raise ValueError(f"invalid price {<object>po!r}: zero")
            out[i].size = _tick_value(<object>so, "size")
            out[i].pdec = self.pscale
            out[i].sdec = self.sscale
        return 0

    cdef int _apply_parsed(self, int first, Parsed* lv, Py_ssize_t n1, Py_ssize_t n2, object rows, type row_type,
                           object exchange, object symbol, object event_ms, object atom_us, int64_t ems,
                           int64_t aus, Py_ssize_t depth) except -1:
        """``apply_sides`` once its levels are parsed (``lv``: ``n1`` levels of side ``first``,
        then ``n2`` of the other): applied, a row per change, then the cut to ``depth``. The
        times as objects (a row tuple's) and as C ints (an AvroRows'). Returns the flags."""
        cdef Py_ssize_t i, lo, hi
        cdef int side, f, flags = 0, s, seg
        cdef Side* t
        cdef int32_t x
        cdef Level* n
        cdef AvroRows avro = rows if type(rows) is AvroRows else None
        cdef LobTail tail
        if avro is not None:
            _lob_tail(&tail, ems, aus)  # (each row's side and times, encoded once: _avro_lob_row)
        for seg in range(2):
            side = first if seg == 0 else 1 - first
            lo = 0 if seg == 0 else n1
            hi = n1 if seg == 0 else n1 + n2
            if hi - lo >= BULK_MIN and self.sides[side].count == 0 and _loadable(lv + lo, hi - lo, side):
                # a snapshot's side into an empty side: the tree built whole, as the levels one by
                # one would leave it (the same levels, top and flags), the rows in their order
                flags |= self._load(side, lv + lo, hi - lo)
                for i in range(lo, hi):
                    if avro is not None:
                        _avro_lob_row(self, avro, exchange, symbol, side, &lv[i], &tail)
                    else:
                        _put_row(rows, self._row(row_type, exchange, symbol, side, &lv[i], event_ms, atom_us))
                continue
            for i in range(lo, hi):
                f = self._set(side, lv[i].price, lv[i].size, lv[i].pdec, lv[i].sdec)
                if f & F_UNKNOWN:
                    continue
                flags |= f
                if avro is not None:
                    _avro_lob_row(self, avro, exchange, symbol, side, &lv[i], &tail)
                else:
                    _put_row(rows, self._row(row_type, exchange, symbol, side, &lv[i], event_ms, atom_us))
        if depth > 0 and (self.sides[C_BID].count > depth or self.sides[C_ASK].count > depth):
            for s in range(2):
                t = &self.sides[s]
                if t.count <= depth:
                    continue
                n = self.pool.n
                x = t.best
                for i in range(depth):
                    x = _next_worse(n, t, x)
                while x != 0:
                    if avro is not None:
                        avro.add(exchange, symbol, n[x].price / self.pdiv, 0.0, s == C_BID, ems, aus)
                    else:
                        _put_row(rows, af_row7(<PyTypeObject*>row_type, exchange, symbol,
                                               n[x].price / self.pdiv, NULL, 0.0, NULL,
                                               ROW_BUY if s == C_BID else ROW_SELL, event_ms, atom_us))
                    x = _next_worse(n, t, x)
            self.truncate(depth)
        return flags

    cdef int _load(self, int side, Parsed* lv, Py_ssize_t m) except -1:
        """The ``m`` levels ``lv`` (``_loadable``: best first, strictly, sizes > 0) as side ``side``,
        empty before: the nodes made and linked as a balanced red-black tree (every level black
        but the deepest where it is not full, red). Returns the flags ``_set`` would have given
        them together: TOP_CHANGED, and CROSSED as after the first (the best) of them."""
        cdef Side* t = &self.sides[side]
        cdef int32_t* z = <int32_t*>malloc(m * sizeof(int32_t))
        cdef Py_ssize_t i, j
        cdef int32_t x
        cdef Level* n
        cdef int h = 0, red_depth
        if z == NULL:
            raise MemoryError()
        for i in range(m):                          # z: the nodes by ascending price
            x = _pool_alloc(&self.pool)
            if x == 0:
                for j in range(i):
                    _pool_free(&self.pool, z[j] if side == C_ASK else z[m - 1 - j])
                free(z)
                raise MemoryError("order book level pool exhausted")
            z[i if side == C_ASK else m - 1 - i] = x
        n = self.pool.n                             # (the pool may have moved)
        for i in range(m):
            x = z[i if side == C_ASK else m - 1 - i]
            n[x].price = lv[i].price
            n[x].size = lv[i].size
            n[x].pdec = <uint8_t>lv[i].pdec
            n[x].sdec = <uint8_t>lv[i].sdec
            n[x].spare = 0
        while (2 << h) <= m:                        # the depth of the deepest: floor(log2(m))
            h += 1
        red_depth = -1 if m == (2 << h) - 1 else h
        t.root = _build(n, z, 0, m - 1, 0, red_depth, 0)
        t.count = <int32_t>m
        t.best = z[0] if side == C_ASK else z[m - 1]
        for i in range(m):                          # the price index (sized for m at the first)
            _index_add(n, t, z[i])
        free(z)
        self._cache_best = None
        if side == C_BID:
            self._cache_bid = None
        else:
            self._cache_ask = None
        self.ck_stale[side] = True
        return F_TOP | _crossed(n, self.sides)

    def apply_update(self, int first, first_levels, second_levels, rows_of, type row_type not None,
                     type spread_type not None, exchange, symbol, int64_t recv_ns, Py_ssize_t depth=0,
                     int checksum=CHECKSUM_NONE, expected=None, event_ms=None):
        """One L2 update, checked, in one call: ``apply_sides`` (the levels, all parsed before any
        is applied, a ``lob`` row per change, the cut to ``depth``), then the book's checksum of
        kind ``checksum`` (``CHECKSUM_KRAKEN``: ``checksum_kraken()``, ``CHECKSUM_KRAKEN_SCALED``:
        ``checksum_kraken(True)``, ``CHECKSUM_OKX``, ``CHECKSUM_BITFINEX``; ``CHECKSUM_NONE``:
        no check) compared with ``expected`` (an int, or its decimal digits as text: Kraken v1's
        ``"c"``), then, where the checksum matched and the top changed, the top as a ``spread``
        row (``spread_into``). The rows' ``atom_timestamp``: ``recv_ns // 1000`` (the frame's receive
        time in ns, as a handler has it; in µs).

        ``rows_of(topic)`` gives the rows a topic's events go to (``Scheme.rows``: a list, an
        AvroRows, anything with ``append``): ``rows_of("lob")`` once the update is found sound,
        ``rows_of("spread")`` only for a spread row. ``event_ms``: the events' time; None: the
        time of the newest level, its third field (``timestamp``: decimal seconds as text,
        Kraken v1; the newest is the greatest text, as all are written with the same digits),
        the receive time's ms where there is no level or it is "".

        Returns ``UPDATE_OK``, ``UPDATE_MISMATCH`` (applied, lob rows written, no spread: the
        caller resyncs; the book's checksum is the checksum method's), or
        ``UPDATE_NOT_APPLIED``: a malformed level (as apply_sides' ValueError), level time or
        expected checksum (text other than 1..10 digits, or an int that is no checksum of
        that kind): the book untouched, no row written, ``rows_of`` not called."""
        return self._update(first, first_levels, second_levels, rows_of, row_type, spread_type, exchange, symbol,
                            recv_ns, depth, checksum, expected, event_ms)

    cdef int _update(self, int first, first_levels, second_levels, rows_of, type row_type, type spread_type,
                     exchange, symbol, int64_t recv_ns, Py_ssize_t depth, int checksum, expected,
                     event_ms) except -2:
        """``apply_update``'s work (also ``book_update``'s, for compiled callers)."""
        cdef Py_ssize_t n1 = _batch_len(first_levels)
        cdef Py_ssize_t n2 = _batch_len(second_levels)
        cdef Parsed* lv = NULL
        cdef int64_t ems = 0, aus, want = 0
        cdef object rows, event, atom_us
        cdef int flags
        _check_side(first)
        if row_type is None or spread_type is None or not (PyType_IsSubtype(row_type, tuple)
                                                           and PyType_IsSubtype(spread_type, tuple)):
            raise TypeError("row_type and spread_type must be tuple subclasses (NamedTuples)")
        if not K_NONE <= checksum <= K_BITFINEX:
            raise ValueError(f"checksum kind {checksum}: one of the CHECKSUM_ constants")
        aus = recv_ns // 1000 if recv_ns >= 0 else -((-recv_ns + 999) // 1000)  # (floored, as //)
        if checksum != K_NONE and not _expected_checksum(expected, checksum, &want):
            return U_NOT_APPLIED
        if event_ms is None:
            if not _newest_ms(first_levels, n1, second_levels, n2, aus, &ems):
                return U_NOT_APPLIED
        else:
            ems = event_ms
        if n1 + n2:
            self._forget_check()
            lv = self._scratch(n1 + n2)
            try:
                self._parse_batch(first_levels, n1, lv)
                self._parse_batch(second_levels, n2, lv + n1)
            except (ValueError, OverflowError, TypeError):
                return U_NOT_APPLIED
        rows = rows_of(_LOB)
        if type(rows) is AvroRows:
            event = atom_us = None      # (an AvroRows takes the C ints)
        else:
            event = ems if event_ms is None else event_ms
            atom_us = aus
        flags = self._apply_parsed(first, lv, n1, n2, rows, row_type, exchange, symbol, event, atom_us, ems, aus,
                                   depth)
        if checksum != K_NONE and self._checksum(checksum) != want:
            return U_MISMATCH
        if flags & F_TOP:
            _spread_into(self.pool.n, self.sides, self.pdiv, self.sdiv, self, rows_of(_SPREAD), spread_type,
                         exchange, symbol, ems, aus)
        return U_OK

    def replace_sides(self, int first, first_levels, second_levels, rows, type row_type,
                      exchange, symbol, event_ms, atom_us, bint round_sizes=False):
        """Each side replaced whole by a message's levels (the whole side as sent: HTX
        ``depth.step0``, Hyperliquid ``l2Book``), with a row only per change: what
        ``apply_sides(first, side_changes(book, first, first_levels), side_changes(book, other,
        second_levels), ...)`` (``atomfast.kit.levels``) does, in one call. Per side: the levels
        new or of another size than the book's (sizes compared as ticks), in their order (a
        price sent twice: its second level counts as new), then every level of the book the
        message does not name, best first, with size 0 (its row's price as the book holds it).
        Returns the flags of that ``apply_sides`` (a crossing on the way included).

        EVERY level is parsed before anything changes (as ``apply_sides``; ValueError, book
        unchanged); the parse of a ``check_sides`` of the same lists just before is used.
        ``round_sizes``: a size with more decimals than the book's scale (or written with too
        many) is rounded to the scale half-even, a non-zero one to at least one tick (as
        ``Decimal.quantize``), and then held as written with the scale's decimals; it must be a
        JSON number without sign (ValueError for any other such size)."""
        cdef Py_ssize_t n1 = _batch_len(first_levels)
        cdef Py_ssize_t n2 = _batch_len(second_levels)
        cdef Parsed* lv = NULL
        cdef int64_t ems = 0, aus = 0
        cdef list keep = []
        _check_side(first)
        if not PyType_IsSubtype(row_type, tuple):
            raise TypeError("row_type must be a tuple subclass (a NamedTuple)")
        if type(rows) is AvroRows:
            ems, aus = event_ms, atom_us
        if not round_sizes and self._checked(first_levels, n1, second_levels, n2):
            lv = self.scratch               # parsed by check_sides
        elif n1 + n2:
            lv = self._scratch(n1 + n2)
            if round_sizes:
                self._parse_fit(first_levels, n1, lv, keep)
                self._parse_fit(second_levels, n2, lv + n1, keep)
            else:
                self._parse_batch(first_levels, n1, lv)
                self._parse_batch(second_levels, n2, lv + n1)
        self._forget_check()
        return self._replace_parsed(first, lv, n1, n2, rows, row_type, exchange, symbol, event_ms, atom_us, ems, aus,
                                    keep)

    cdef int _replace_parsed(self, int first, Parsed* lv, Py_ssize_t n1, Py_ssize_t n2, object rows, type row_type,
                             object exchange, object symbol, object event_ms, object atom_us, int64_t ems,
                             int64_t aus, list keep) except -1:
        """``replace_sides`` once its levels are parsed (``lv``: ``n1`` levels of side ``first``,
        then ``n2`` of the other; ``keep``: the objects their items borrow)."""
        cdef Py_ssize_t c1, c2, cap, i
        cdef Parsed* ch
        cdef tuple removed
        if keep is None:
            keep = []
        cap = n1 + n2 + self.sides[C_BID].count + self.sides[C_ASK].count
        if cap == 0:
            return 0
        ch = <Parsed*>malloc(cap * sizeof(Parsed))
        if ch == NULL:
            raise MemoryError()
        try:
            c1 = self._side_changes(first, lv, n1, ch)
            c2 = self._side_changes(1 - first, lv + n1, n2, ch + c1)
            for i in range(c1 + c2):
                if ch[i].item == NULL and (ch[i].price >= EXACT_FLOAT or ch[i].size >= EXACT_FLOAT):
                    # (a removal, or a level read from JSON text) whose row's floats are float() of
                    # its texts, as _row reads them: its values written with their decimals as sent
                    removed = (_text(ch[i].price, self.pscale, ch[i].pdec), _text(ch[i].size, self.sscale, ch[i].sdec))
                    keep.append(removed)
                    ch[i].item = <PyObject*>removed
            return self._apply_parsed(first, ch, c1, c2, rows, row_type, exchange, symbol, event_ms, atom_us, ems,
                                      aus, 0)
        finally:
            free(ch)

    cdef Py_ssize_t _side_changes(self, int side, Parsed* lv, Py_ssize_t m, Parsed* out) noexcept:
        """``replace_sides``' changes of one side into ``out`` (their number): the levels ``lv``
        that are new or of another size, then the book's levels they do not name (size 0, no
        item), best first. The book's levels named are marked (``spare``) while this runs."""
        cdef Side* t = &self.sides[side]
        cdef Level* n = self.pool.n
        cdef Py_ssize_t i, k = 0
        cdef int32_t x
        for i in range(m):
            x = _find(n, t, lv[i].price)
            if x != 0 and n[x].spare == 0:
                n[x].spare = 1
                if n[x].size == lv[i].size:
                    continue
            out[k] = lv[i]
            k += 1
        x = t.best
        while x != 0:
            if n[x].spare:
                n[x].spare = 0
            else:
                out[k].price = n[x].price
                out[k].size = 0
                out[k].pdec = n[x].pdec
                out[k].sdec = 0
                out[k].item = NULL
                k += 1
            x = _next_worse(n, t, x)
        return k

    cdef int _parse_fit(self, object levels, Py_ssize_t n, Parsed* out, list keep) except -1:
        """``_parse_batch`` with sizes rounded to the book's scale (``replace_sides``'
        ``round_sizes``); a rounded size of 2**53 ticks or more gets a level of its rounded text
        (held in ``keep``) for its row's float."""
        cdef Py_ssize_t i, ln
        cdef PyObject* po
        cdef PyObject* so
        cdef object item
        cdef const char* b
        cdef int status, dec
        cdef char buf[FMT_BUF]
        cdef tuple fitted
        for i in range(n):
            item = _batch_item(levels, i)
            _level_item(item, &po, &so)
            out[i].item = <PyObject*>item
            _parse_unsigned(<object>po, self.pscale, "price", &out[i].price, &out[i].pdec)
            if out[i].price == 0:
                raise ValueError(f"invalid price {_shown(<object>po)}: zero")
            b = _buffer(<object>so, &ln)
            if ln and (b[0] == 43 or b[0] == 45):
                raise ValueError(f"invalid size {_shown(<object>so)}: signed")
            status = _parse_plain(b, ln, self.sscale, False, &out[i].size, &dec)
            if status < 0:
                status = _parse_dec(b, ln, self.sscale, False, &out[i].size, &dec)
            if status != P_OK:
                if _parse_round(b, ln, self.sscale, &out[i].size) != P_OK:
                    _raise_parse(status, <object>so, "size", self.sscale)
                dec = self.sscale
                if out[i].size >= EXACT_FLOAT:
                    fitted = (<object>po, PyBytes_FromStringAndSize(buf, _fmt_fixed(buf, out[i].size, self.sscale,
                                                                                     self.sscale)))
                    keep.append(fitted)
                    out[i].item = <PyObject*>fitted
            out[i].sdec = dec
        return 0

    cdef int64_t _checksum(self, int kind) noexcept:
        """The book's checksum of kind ``kind`` (a CHECKSUM_ constant but NONE): the last one
        computed where no change since touched the levels it covers, else computed."""
        cdef int64_t v
        cdef bint same = kind == self.ck_kind
        if same and not (self.ck_stale[C_ASK] or self.ck_stale[C_BID]):
            return self.ck_value
        if kind == K_KRAKEN or kind == K_KRAKEN_SCALED:
            # a side no change reached since the last one (of this kind) is not walked again
            v = self._ck_kraken(kind == K_KRAKEN_SCALED, same and not self.ck_stale[C_ASK],
                                same and not self.ck_stale[C_BID])
        elif kind == K_OKX:
            v = self._ck_okx()
        else:
            v = self._ck_bitfinex()
        self.ck_kind = kind
        self.ck_value = v
        self.ck_stale[C_ASK] = self.ck_stale[C_BID] = False
        return v

    cdef inline void _ck_covered(self, int side, int32_t last, int count, int depth) noexcept:
        """What a checksum covered of ``side``: ``count`` levels of at most ``depth``, the last
        ``last`` (a node, 0 for none)."""
        self.ck_full[side] = count >= depth
        self.ck_edge[side] = self.pool.n[last].price if last else 0

    def truncate(self, Py_ssize_t depth):
        """Keep only the best `depth` levels of each side; returns how many were removed.

        Kraken: "after each update, truncate your book to the subscribed depth: you will
        not receive qty 0 for levels that fall out of scope"
        (https://docs.kraken.com/api/docs/guides/spot-ws-book-v2).
        """
        cdef int removed = 0, s
        cdef Side* t
        cdef int32_t x, nx
        if depth < 0:
            raise ValueError("depth must be >= 0")
        for s in range(2):
            t = &self.sides[s]
            if t.count <= depth:
                continue
            x = _worst(self.pool.n, t)
            while t.count > depth:
                nx = _next_better(self.pool.n, t, x)
                _erase(&self.pool, t, x)
                removed += 1
                x = nx
        if removed:
            self._forget_tops()
            if depth < TL_MAX:
                self.ck_kind = 0        # (a checksum covers at most TL_MAX levels a side)
        return removed

    def clear(self):
        """Remove every level (memory is kept for reuse)."""
        self.ck_kind = 0
        self._forget_tops()
        _pool_reset(&self.pool)
        _side_reset(&self.sides[C_BID], True)
        _side_reset(&self.sides[C_ASK], False)

    def best_bid(self):
        """(price, size) of the best bid as floats, or None."""
        if self._cache_bid is None:
            self._cache_bid = _best_tuple(self.pool.n, &self.sides[C_BID], self.pdiv, self.sdiv)
        return self._cache_bid

    def best_ask(self):
        """(price, size) of the best ask as floats, or None."""
        if self._cache_ask is None:
            self._cache_ask = _best_tuple(self.pool.n, &self.sides[C_ASK], self.pdiv, self.sdiv)
        return self._cache_ask

    def best(self):
        """(bid_price, bid_size, ask_price, ask_size) as floats; 0.0 for an empty side."""
        cdef Level* n = self.pool.n
        cdef int32_t b = self.sides[C_BID].best, a = self.sides[C_ASK].best
        if self._cache_best is None:
            self._cache_best = (
                n[b].price / self.pdiv if b else 0.0, n[b].size / self.sdiv if b else 0.0,
                n[a].price / self.pdiv if a else 0.0, n[a].size / self.sdiv if a else 0.0)
        return self._cache_best

    def spread_into(self, rows, type row_type, exchange, symbol, int64_t event_ms, int64_t atom_us):
        """Append the top of the book as a ``spread`` event to ``rows``: ``row_type(exchange,
        symbol, *best(), event_ms, atom_us)`` (``events.Spread``), or, where ``rows`` is an
        AvroRows, its Avro value written from the book's doubles (no tuple, no float object)."""
        _spread_into(self.pool.n, self.sides, self.pdiv, self.sdiv, self, rows, row_type, exchange, symbol,
                     event_ms, atom_us)

    def levels(self, int side, Py_ssize_t n=-1, Py_ssize_t start=0):
        """The best `n` levels of `side` (all when n < 0), best first, as (price, size)
        strings rebuilt with the decimals they were sent with; `start` skips the best
        `start` levels first (levels(side, start=depth): what truncate(depth) would drop)."""
        cdef Side* t
        cdef int32_t x
        cdef list out = []
        _check_side(side)
        t = &self.sides[side]
        x = t.best
        while x != 0 and start > 0:
            x = _next_worse(self.pool.n, t, x)
            start -= 1
        while x != 0 and n != 0:
            out.append((_text(self.pool.n[x].price, self.pscale, self.pool.n[x].pdec),
                        _text(self.pool.n[x].size, self.sscale, self.pool.n[x].sdec)))
            x = _next_worse(self.pool.n, t, x)
            n -= 1
        return out

    def get(self, int side, price):
        """The size string at `price` on `side`, or None."""
        cdef int64_t p
        cdef int pd
        cdef int32_t x
        _check_side(side)
        _parse(price, self.pscale, False, "price", &p, &pd)
        x = _find(self.pool.n, &self.sides[side], p)
        if x == 0:
            return None
        return _text(self.pool.n[x].size, self.sscale, self.pool.n[x].sdec)

    def count(self, int side):
        """Number of levels on `side`."""
        _check_side(side)
        return self.sides[side].count

    def __len__(self):
        return self.sides[C_BID].count + self.sides[C_ASK].count

    def __repr__(self):
        return (f"L2Book(price_decimals={self.pscale}, size_decimals={self.sscale}, "
                f"bids={self.sides[C_BID].count}, asks={self.sides[C_ASK].count})")

    def checksum_kraken(self, bint book_scale=False):
        """Kraken spot websocket (v1 and v2) book checksum, as an unsigned CRC-32.

        Top 10 asks (low to high) then top 10 bids (high to low); for each level the price
        then the size, each with '.' removed and then leading zeros removed; CRC-32 of the
        concatenation. v1 sends fixed-precision strings: use the decimals as sent
        (book_scale=False). v2 sends JSON numbers: construct the book at the pair's
        price/qty precision and pass book_scale=True.
        https://docs.kraken.com/api/docs/guides/spot-ws-book-v1
        https://docs.kraken.com/api/docs/guides/spot-ws-book-v2
        """
        return self._checksum(K_KRAKEN_SCALED if book_scale else K_KRAKEN)

    cdef int64_t _ck_kraken(self, bint book_scale, bint asks_kept=False, bint bids_kept=False) noexcept:
        """``asks_kept``/``bids_kept``: that side's top 10 are those of the last Kraken checksum of
        this scale (the asks' CRC state kept, the bids' texts in the text cache)."""
        cdef uint32_t state = 0xFFFFFFFFu
        cdef char buf[CK_BUF]
        cdef Py_ssize_t pos = 0
        cdef int i
        cdef int ps = self.pscale, ss = self.sscale
        cdef int32_t x, last = 0
        cdef Level* n = self.pool.n
        cdef TextCache* tc = self._tc()
        cdef TextSide* ts
        if asks_kept:
            state = self.ck_mid
        else:
            x = self.sides[C_ASK].best                 # asks, low to high
            i = 0
            while x != 0 and i < 10:
                if pos > CK_BUF - 2 * FMT_BUF:
                    state = af_crc(state, buf, pos)
                    pos = 0
                pos += _tc_level(tc, C_ASK, &n[x], LK_KRAKEN, ps, ps if book_scale else n[x].pdec,
                                 ss, ss if book_scale else n[x].sdec, buf + pos)
                last = x
                x = _successor(n, x)
                i += 1
            self._ck_covered(C_ASK, last, i, 10)
            _tc_end_side(tc, C_ASK)
            state = af_crc(state, buf, pos)
            pos = 0
            self.ck_mid = state
        if bids_kept and _tc_texts(tc, C_BID):
            ts = &tc.side[C_BID]
            for i in range(ts.nold):                 # the same texts as the last time
                memcpy(buf + pos, ts.old[i].text, TE_COPY)
                pos += ts.old[i].len
            return <uint32_t>~af_crc(state, buf, pos)
        x = self.sides[C_BID].best                 # bids, high to low
        i = 0
        last = 0
        while x != 0 and i < 10:
            if pos > CK_BUF - 2 * FMT_BUF:
                state = af_crc(state, buf, pos)
                pos = 0
            pos += _tc_level(tc, C_BID, &n[x], LK_KRAKEN, ps, ps if book_scale else n[x].pdec,
                             ss, ss if book_scale else n[x].sdec, buf + pos)
            last = x
            x = _predecessor(n, x)
            i += 1
        self._ck_covered(C_BID, last, i, 10)
        _tc_end_side(tc, C_BID)
        return <uint32_t>~af_crc(state, buf, pos)

    def checksum_okx(self):
        """OKX order book checksum (signed int32).

        Top 25 levels interleaved per rank "bidPx:bidSz:askPx:askSz:..." (once one side
        runs out, the other continues alone), prices and sizes exactly as sent, CRC-32 as
        a signed 32-bit integer. https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel
        """
        return self._checksum(K_OKX)

    cdef int64_t _ck_okx(self) noexcept:
        cdef uint32_t state = 0xFFFFFFFFu
        cdef char buf[CK_BUF]
        cdef Py_ssize_t pos = 0
        cdef int i
        cdef int ps = self.pscale, ss = self.sscale
        cdef Level* n = self.pool.n
        cdef int32_t b = self.sides[C_BID].best, a = self.sides[C_ASK].best, lb = 0, la = 0
        cdef int nb = 0, na = 0
        cdef TextCache* tc = self._tc()
        for i in range(25):
            if b == 0 and a == 0:
                break
            if pos > CK_BUF - 4 * FMT_BUF:
                state = af_crc(state, buf, pos)
                pos = 0
            if b:
                pos += _tc_level(tc, C_BID, &n[b], LK_OKX, ps, n[b].pdec, ss, n[b].sdec, buf + pos)
                buf[pos] = c':'
                pos += 1
                lb = b
                nb += 1
                b = _predecessor(n, b)
            if a:
                pos += _tc_level(tc, C_ASK, &n[a], LK_OKX, ps, n[a].pdec, ss, n[a].sdec, buf + pos)
                buf[pos] = c':'
                pos += 1
                la = a
                na += 1
                a = _successor(n, a)
        self._ck_covered(C_BID, lb, nb, 25)
        self._ck_covered(C_ASK, la, na, 25)
        _tc_end(tc)
        if pos:
            pos -= 1                    # no ':' after the last number
        return <int32_t>(~af_crc(state, buf, pos))

    def checksum_bitfinex(self):
        """Bitfinex P0 (price-aggregated) book checksum (signed int32).

        Top 25 per side interleaved "bidPrice:bidAmount:askPrice:-askAmount" (ask amounts
        negative, as Bitfinex sends them), every number as JavaScript's Number toString
        prints it ("0.5", "1e-7": exponent form below 1e-6), CRC-32 as a signed int.
        https://docs.bitfinex.com/docs/ws-websocket-checksum; the exponent form for prices
        below 1e-6 is what the server uses (bitfinexcom/bfx-api-node-models issue #70).
        """
        return self._checksum(K_BITFINEX)

    cdef int64_t _ck_bitfinex(self) noexcept:
        cdef uint32_t state = 0xFFFFFFFFu
        cdef char buf[CK_BUF]
        cdef Py_ssize_t pos = 0
        cdef int i
        cdef int ps = self.pscale, ss = self.sscale
        cdef Level* n = self.pool.n
        cdef int32_t b = self.sides[C_BID].best, a = self.sides[C_ASK].best, lb = 0, la = 0
        cdef int nb = 0, na = 0
        cdef TextCache* tc = self._tc()
        for i in range(25):
            if b == 0 and a == 0:
                break
            if pos > CK_BUF - 4 * FMT_BUF:
                state = af_crc(state, buf, pos)
                pos = 0
            if b:
                pos += _tc_level(tc, C_BID, &n[b], LK_BFX_BID, ps, 0, ss, 0, buf + pos)
                buf[pos] = c':'
                pos += 1
                lb = b
                nb += 1
                b = _predecessor(n, b)
            if a:
                pos += _tc_level(tc, C_ASK, &n[a], LK_BFX_ASK, ps, 0, ss, 0, buf + pos)
                buf[pos] = c':'
                pos += 1
                la = a
                na += 1
                a = _successor(n, a)
        self._ck_covered(C_BID, lb, nb, 25)
        self._ck_covered(C_ASK, la, na, 25)
        _tc_end(tc)
        if pos:
            pos -= 1                    # no ':' after the last number
        return <int32_t>(~af_crc(state, buf, pos))

    def _validate(self):
        """Check the red-black tree and cache invariants; raises AssertionError (tests)."""
        _validate_side(self.pool.n, &self.sides[C_BID], "bids")
        _validate_side(self.pool.n, &self.sides[C_ASK], "asks")

    # --- levels as JSON text (a REST snapshot's, kept as msgspec.Raw: no list, tuple or str
    # made per level; _json_levels at the end of the module reads them)
    def check_json_sides(self, first_text, second_text):
        """``check_sides`` of two sides' levels as JSON text (the module's ``json_levels``): True where every
        level parsed, kept for ``apply_json_sides`` of the same two texts next; False (nothing
        kept, nothing raised) where a text is not of that shape, or holds a number the book
        refuses or one of 2**53 ticks or more (its row is made from the text): the caller then
        decodes the levels and takes ``check_sides``, which says why."""
        return self._check_json(first_text, second_text, False, None)

    cdef bint _check_json(self, first_text, second_text, bint more, list wide) except -1:
        """``check_json_sides`` (``more``: ``check_json_lists``; ``wide``: ``check_json_sides_wide``,
        the list that holds the strings of its levels of 2**53 ticks or more)."""
        cdef Py_ssize_t n1, n2, len1, len2
        cdef const char* s1 = _buffer(first_text, &len1)
        cdef const char* s2 = _buffer(second_text, &len2)
        cdef Parsed* lv
        self._forget_check()
        self.chk_wide = wide
        lv = self._scratch(len1 // 4 + len2 // 4 + 2)  # a level takes 9 bytes of text at least
        n1 = _json_levels(s1, len1, self.pscale, self.sscale, lv, more, wide)
        if n1 < 0:
            return False
        n2 = _json_levels(s2, len2, self.pscale, self.sscale, lv + n1, more, wide)
        if n2 < 0:
            return False
        self.chk_first, self.chk_second, self.chk_n1, self.chk_n2 = first_text, second_text, n1, n2
        return True

    def check_json_sides_wide(self, first_text, second_text):
        """``check_json_sides`` that reads from the text levels of 2**53 ticks or more too (a
        level of such a price or size gets its two strings, made from the text, for its row's
        float: ``float()`` of the string, as ``apply_sides`` makes it from the decoded level):
        True where every level parsed, kept for ``apply_json_sides`` of the same two texts next;
        False (nothing kept, nothing raised) where a text is not of the shape (``json_levels``)
        or holds a number the book refuses: the caller decodes the levels and takes
        ``check_sides``, which says why."""
        return self._check_json(first_text, second_text, False, [])

    def apply_json_sides(self, int first, first_text, second_text, rows, type row_type, exchange, symbol,
                         event_ms, atom_us):
        """``apply_sides`` of the levels ``check_json_sides`` just read from these two texts (the
        book may be cleared in between, as for a snapshot): the same rows and flags."""
        cdef int64_t ems = 0, aus = 0
        cdef Py_ssize_t n1 = self.chk_n1, n2 = self.chk_n2
        _check_side(first)
        if not PyType_IsSubtype(row_type, tuple):
            raise TypeError("row_type must be a tuple subclass (a NamedTuple)")
        if first_text is not self.chk_first or second_text is not self.chk_second:
            raise ValueError("apply_json_sides: not the texts check_json_sides read last")
        if type(rows) is AvroRows:
            ems, aus = event_ms, atom_us
        self._forget_check()
        return self._apply_parsed(first, self.scratch, n1, n2, rows, row_type, exchange, symbol, event_ms, atom_us,
                                  ems, aus, 0)

    def apply_json_update(self, int first, first_text, second_text, rows_of, type row_type not None,
                          type spread_type not None, exchange, symbol, int64_t recv_ns, int64_t event_ms,
                          int checksum=CHECKSUM_NONE, expected=None):
        """``apply_update`` of the levels ``check_json_sides`` or ``check_json_lists`` just read
        from these two texts (``event_ms``: the events' time, given): ``apply_json_sides`` (a
        ``row_type`` row per change into ``rows_of("lob")``), the book's checksum of kind
        ``checksum`` compared with ``expected``, and where it matched (or none is asked) and the
        top changed, the top as a ``spread_type`` row into ``rows_of("spread")``. The rows'
        ``atom_timestamp``: ``recv_ns // 1000``.

        Returns ``UPDATE_OK``, ``UPDATE_MISMATCH`` (applied, lob rows written, no spread), or
        ``UPDATE_NOT_APPLIED`` where ``expected`` is no checksum of that kind (as
        ``apply_update``): nothing done, the texts' reading kept for an ``apply_json_sides``."""
        cdef int64_t aus, want = 0
        cdef Py_ssize_t n1 = self.chk_n1, n2 = self.chk_n2
        _check_side(first)
        if not (PyType_IsSubtype(row_type, tuple) and PyType_IsSubtype(spread_type, tuple)):
            raise TypeError("row_type and spread_type must be tuple subclasses (NamedTuples)")
        if not K_NONE <= checksum <= K_BITFINEX:
            raise ValueError(f"checksum kind {checksum}: one of the CHECKSUM_ constants")
        if first_text is not self.chk_first or second_text is not self.chk_second:
            raise ValueError("apply_json_update: not the texts check_json_sides/check_json_lists read last")
        aus = recv_ns // 1000 if recv_ns >= 0 else -((-recv_ns + 999) // 1000)  # (floored, as //)
        if checksum != K_NONE and not _expected_checksum(expected, checksum, &want):
            return U_NOT_APPLIED
        return self._apply_read(first, n1, n2, rows_of, row_type, spread_type, exchange, symbol, event_ms, aus,
                                checksum, want)

    cdef int _apply_read(self, int first, Py_ssize_t n1, Py_ssize_t n2, object rows_of, type row_type,
                         type spread_type, object exchange, object symbol, int64_t event_ms, int64_t aus,
                         int checksum, int64_t want) except -2:
        """The ``n1`` + ``n2`` levels the last check read (the scratch) applied (a ``lob`` row per
        change into ``rows_of("lob")``), the checksum of kind ``checksum`` compared with ``want``,
        and where it matched (or none is asked) and the top changed, a ``spread`` row:
        ``apply_json_update``'s and ``json_update_wide``'s common end. ``U_OK`` or ``U_MISMATCH``."""
        cdef object rows, event, atom_us
        cdef int flags
        rows = rows_of(_LOB)
        if type(rows) is AvroRows:
            event = atom_us = None      # (an AvroRows takes the C ints)
        else:
            event = event_ms
            atom_us = aus
        self._forget_check()
        flags = self._apply_parsed(first, self.scratch, n1, n2, rows, row_type, exchange, symbol, event, atom_us,
                                   event_ms, aus, 0)
        if checksum != K_NONE and self._checksum(checksum) != want:
            return U_MISMATCH
        if flags & F_TOP:
            _spread_into(self.pool.n, self.sides, self.pdiv, self.sdiv, self, rows_of(_SPREAD), spread_type,
                         exchange, symbol, event_ms, aus)
        return U_OK

    def json_update_wide(self, int first, first_text, second_text, rows_of, type row_type not None,
                         type spread_type not None, exchange, symbol, int64_t recv_ns, int64_t event_ms):
        """``check_json_sides_wide(first_text, second_text)`` then, where it read every level,
        ``apply_json_update(first, first_text, second_text, rows_of, row_type, spread_type,
        exchange, symbol, recv_ns, event_ms)`` (no checksum), in one call: ``UPDATE_OK`` (applied,
        a ``lob`` row per change into ``rows_of("lob")``, the top as a ``spread`` row where it
        changed), or ``UPDATE_NOT_APPLIED`` where a text is not read (``check_json_sides_wide``'s
        False): nothing applied, nothing kept, ``rows_of`` not called (the caller decodes the
        levels and says why). For a venue whose update is checked in the caller (its sequence,
        its time)."""
        cdef int64_t aus
        _check_side(first)
        if not (PyType_IsSubtype(row_type, tuple) and PyType_IsSubtype(spread_type, tuple)):
            raise TypeError("row_type and spread_type must be tuple subclasses (NamedTuples)")
        if not self._check_json(first_text, second_text, False, []):
            return U_NOT_APPLIED
        aus = recv_ns // 1000 if recv_ns >= 0 else -((-recv_ns + 999) // 1000)  # (floored, as //)
        return self._apply_read(first, self.chk_n1, self.chk_n2, rows_of, row_type, spread_type, exchange, symbol,
                                event_ms, aus, K_NONE, 0)

    def check_json_lists(self, first_text, second_text):
        """``check_json_sides`` of levels written as arrays of two or more strings (the module's
        ``json_level_lists``: price, size, then strings the book does not read, e.g. OKX's
        ``[price, size, "0", orders]``): True where every level parsed, kept for
        ``apply_json_sides`` of the same two texts next; False (nothing kept, nothing raised)
        where a text is not of that shape, or holds a number the book refuses or one of 2**53
        ticks or more: the caller then decodes the levels and takes ``check_sides`` or
        ``apply_sides``, which say why."""
        return self._check_json(first_text, second_text, True, None)

    def check_json_numbers(self, first_text, second_text, bint round_sizes=False):
        """``check_json_sides`` of levels written as JSON numbers (``[[0.1,2.5],...]``, raw JSON:
        bytes or a msgspec.Raw; empty text or ``null``: no levels): True where every level parsed
        (as ``check_sides``; with ``round_sizes``, sizes rounded as ``replace_sides`` rounds
        them), kept for ``replace_json_sides`` of the same two texts next (a load: into the
        cleared book); False (nothing kept, nothing raised) where a text is not of that shape (a number
        must start with a digit), or holds a number the book refuses (values of 2**53 ticks or
        more are read, their rows' floats float() of their texts): the caller then decodes the
        levels and takes ``check_sides``/``replace_sides``.

        The book keeps the two texts it read last (a reference: their bytes must not change) and
        their levels' parse: a level written as it was then (the same bytes, "[" to "]", compared
        where the reading of that side's last text is, which follows the levels by price) is
        taken as parsed then (a whole book sent again and again: most levels unchanged)."""
        cdef Py_ssize_t n1, n2, len1, len2, plen0 = 0, plen1 = 0
        cdef const char* s1 = _buffer(first_text, &len1)
        cdef const char* s2 = _buffer(second_text, &len2)
        cdef const char* p0 = NULL
        cdef const char* p1 = NULL
        cdef Parsed* lv
        cdef JsonCache* c = self.jcache
        cdef int k
        cdef int32_t* t
        self._forget_check()
        if len1 > 2147483647 or len2 > 2147483647:  # (the kept levels' offsets are int32)
            return False
        lv = self._scratch(len1 // 6 + len2 // 6 + 2)  # a level takes 6 bytes of text at least
        if c == NULL:
            c = self.jcache = <JsonCache*>calloc(1, sizeof(JsonCache))
            if c == NULL:
                raise MemoryError()
        if _jc_reserve(c, (len1 if len1 > len2 else len2) // 6 + 2) < 0:
            raise MemoryError()
        if c.rounded == <int>round_sizes:           # the texts kept were read as these are
            if self.jc_text0 is not None:
                p0 = _buffer(self.jc_text0, &plen0)
            if self.jc_text1 is not None:
                p1 = _buffer(self.jc_text1, &plen1)
        n1 = _json_number_levels(s1, len1, self.pscale, self.sscale, round_sizes, lv, p0,
                                 c.lv[0], c.at[0], c.ln[0], c.n[0] if p0 != NULL else 0, c.tat[0], c.tln[0])
        if n1 < 0:
            return False
        n2 = _json_number_levels(s2, len2, self.pscale, self.sscale, round_sizes, lv + n1, p1,
                                 c.lv[1], c.at[1], c.ln[1], c.n[1] if p1 != NULL else 0, c.tat[1], c.tln[1])
        if n2 < 0:
            return False
        # these texts are kept for the next read
        memcpy(c.lv[0], lv, n1 * sizeof(Parsed))
        memcpy(c.lv[1], lv + n1, n2 * sizeof(Parsed))
        for k in range(2):
            t = c.at[k]
            c.at[k] = c.tat[k]
            c.tat[k] = t
            t = c.ln[k]
            c.ln[k] = c.tln[k]
            c.tln[k] = t
        c.n[0] = n1
        c.n[1] = n2
        c.rounded = round_sizes
        self.jc_text0, self.jc_text1 = first_text, second_text
        self.chk_nfirst, self.chk_nsecond, self.chk_n1, self.chk_n2 = first_text, second_text, n1, n2
        return True

    def replace_json_sides(self, int first, first_text, second_text, rows, type row_type, exchange, symbol,
                           event_ms, atom_us):
        """``replace_sides`` of the levels ``check_json_numbers`` (or ``check_json_sides``) just
        read from these two texts (the book may be cleared in between, as for a snapshot: the
        levels loaded): the same rows and flags."""
        cdef int64_t ems = 0, aus = 0
        cdef Py_ssize_t n1 = self.chk_n1, n2 = self.chk_n2
        _check_side(first)
        if not PyType_IsSubtype(row_type, tuple):
            raise TypeError("row_type must be a tuple subclass (a NamedTuple)")
        if not ((first_text is self.chk_nfirst and second_text is self.chk_nsecond)
                or (first_text is self.chk_first and second_text is self.chk_second)) \
                or self.chk_nfirst is None and self.chk_first is None:
            raise ValueError("replace_json_sides: not the texts check_json_numbers read last")
        if type(rows) is AvroRows:
            ems, aus = event_ms, atom_us
        self._forget_check()
        return self._replace_parsed(first, self.scratch, n1, n2, rows, row_type, exchange, symbol, event_ms, atom_us,
                                    ems, aus, None)


# ---------------------------------------------------------------------------------------
# L3 book
# ---------------------------------------------------------------------------------------

# One resting order: 24 bytes.
cdef struct Order:
    int64_t size        # remaining size, ticks at size_decimals
    int32_t prev        # neighbours in the level's queue (arrival order), -1 = none
    int32_t next        # (also the free-list link)
    int32_t level       # node index of its price level
    uint8_t side
    uint8_t pdec        # decimals its price was sent with
    uint8_t sdec        # decimals its size was sent with
    uint8_t spare


# Per level, parallel to the level pool (Pool.extra): 12 bytes.
cdef struct LevelQueue:
    int32_t head
    int32_t tail
    int32_t count


LEVEL_BYTES = sizeof(Level)                             # 32: one L2 price level
L3_LEVEL_BYTES = sizeof(Level) + sizeof(LevelQueue)     # 44: one L3 price level
ORDER_BYTES = sizeof(Order)                             # 24: one L3 order


cdef class L3Book:
    """Level-3 (order-by-order) book.

    order id -> (side, price, remaining size). Each price level keeps its orders in arrival
    order (a doubly linked list of C structs) and its total size; levels live in the same
    red-black tree as the L2 book. Order ids are any hashable object as given (Coinbase
    UUID str, Bitfinex int, ...): the id -> slot map is a Python dict keyed by the id object
    (acceptable for now: one dict lookup per call; everything else is C).

    Semantics (all mutating calls return TOP_CHANGED | CROSSED | UNKNOWN flags, where
    "top" is the best level's price and total size):
    * add(id, side, price, size): new order at the back of its level. An id that is
      already present is REPLACED (the old order is removed, the new one joins the back
      of its level). A size of 0 behaves like remove(id).
    * update(id, size): new remaining size, keeps its queue position; 0 removes.
    * change(id, price, size): new price (and size): the order goes to the back of the
      level at the new price; if the price is unchanged it keeps its position (= update).
    * remove(id).
    Unknown ids in update/change/remove return UNKNOWN and leave the book unchanged.
    """

    cdef Pool pool
    cdef Side sides[2]
    cdef Order* o
    cdef int32_t ocap
    cdef int32_t otop
    cdef int32_t ofree
    cdef int32_t norders[2]
    cdef dict _index            # order id -> slot (int)
    cdef list _ids              # slot -> order id
    cdef int pscale
    cdef int sscale
    cdef double pdiv
    cdef double sdiv
    cdef object _cache_bid      # as in L2Book: the last best tuples, until the top changes
    cdef object _cache_ask
    cdef object _cache_best

    def __cinit__(self, int price_decimals=8, int size_decimals=8, Py_ssize_t capacity=1024):
        _check_decimals(price_decimals, size_decimals)
        self.pscale = price_decimals
        self.sscale = size_decimals
        self.pdiv = <double>P10[price_decimals]
        self.sdiv = <double>P10[size_decimals]
        _pool_init(&self.pool, capacity, sizeof(LevelQueue))
        _side_reset(&self.sides[C_BID], True)
        _side_reset(&self.sides[C_ASK], False)
        if capacity < 1:
            capacity = 1
        self.ocap = <int32_t>capacity
        self.o = <Order*>malloc(<size_t>self.ocap * sizeof(Order))
        if self.o == NULL:
            raise MemoryError()
        self.otop = 0
        self.ofree = -1
        self.norders[0] = 0
        self.norders[1] = 0
        self._index = {}
        self._ids = [None] * self.ocap

    def __dealloc__(self):
        _pool_release(&self.pool)
        _side_release(&self.sides[C_BID])
        _side_release(&self.sides[C_ASK])
        free(self.o)

    @property
    def price_decimals(self):
        return self.pscale

    @property
    def size_decimals(self):
        return self.sscale

    @property
    def nbytes(self):
        """Bytes of C memory held by the level and order pools (allocated, used or free) and the
        sides' price indexes."""
        return (<Py_ssize_t>self.pool.cap * (sizeof(Level) + sizeof(LevelQueue))
                + <Py_ssize_t>self.ocap * sizeof(Order) + _side_nbytes(&self.sides[C_BID])
                + _side_nbytes(&self.sides[C_ASK]))

    # -- order slots ---------------------------------------------------------------

    cdef int32_t _alloc_order(self) except -1:
        cdef int32_t i = self.ofree
        cdef int64_t cap
        cdef Order* no
        if i != -1:
            self.ofree = self.o[i].next
            return i
        if self.otop == self.ocap:
            cap = <int64_t>self.ocap * 2
            if cap > MAX_CAPACITY:
                cap = MAX_CAPACITY
            if cap <= self.ocap:
                raise MemoryError("order pool exhausted")
            no = <Order*>realloc(self.o, <size_t>cap * sizeof(Order))
            if no == NULL:
                raise MemoryError("order pool exhausted")
            self.o = no
            self._ids.extend([None] * <Py_ssize_t>(cap - self.ocap))
            self.ocap = <int32_t>cap
        i = self.otop
        self.otop += 1
        return i

    cdef inline int32_t _slot(self, object order_id) except -2:
        v = self._index.get(order_id)
        if v is None:
            return -1
        return <int32_t>v

    cdef inline LevelQueue* _queues(self) noexcept:
        return <LevelQueue*>self.pool.extra

    cdef void _unlink(self, int32_t i) noexcept:
        """Take order i out of its level (dropping the level when it empties)."""
        cdef Order* o = &self.o[i]
        cdef LevelQueue* q = &self._queues()[o.level]
        if o.prev != -1:
            self.o[o.prev].next = o.next
        else:
            q.head = o.next
        if o.next != -1:
            self.o[o.next].prev = o.prev
        else:
            q.tail = o.prev
        q.count -= 1
        self.pool.n[o.level].size -= o.size
        self.norders[o.side] -= 1
        if q.count == 0:
            _erase(&self.pool, &self.sides[o.side], o.level)

    cdef int _link(self, int32_t i, int side, int64_t price, int pdec) except -1:
        """Append order i (size, sdec already set) to the back of its level."""
        cdef bint created
        cdef int32_t x = _find_or_insert(&self.pool, &self.sides[side], price, &created)
        cdef LevelQueue* q
        cdef Order* o = &self.o[i]
        cdef Level* lv
        if x == 0:
            raise MemoryError("order book level pool exhausted")
        lv = &self.pool.n[x]
        q = &self._queues()[x]
        if created:
            q.head = -1
            q.tail = -1
            q.count = 0
            lv.pdec = <uint8_t>pdec
        o.side = <uint8_t>side
        o.pdec = <uint8_t>pdec
        o.level = x
        o.prev = q.tail
        o.next = -1
        if q.tail != -1:
            self.o[q.tail].next = i
        else:
            q.head = i
        q.tail = i
        q.count += 1
        lv.size += o.size
        if o.sdec > lv.sdec:
            lv.sdec = o.sdec
        self.norders[side] += 1
        return 0

    cdef void _free_order(self, int32_t i, object order_id) noexcept:
        del self._index[order_id]
        self._ids[i] = None
        self.o[i].next = self.ofree
        self.ofree = i

    cdef int _flags(self, Top* tb, Top* ta) noexcept:
        cdef Level* n = self.pool.n
        cdef int flags = _crossed(n, self.sides)
        if _top_changed(n, &self.sides[C_BID], tb):
            flags |= F_TOP
            self._cache_bid = None
            self._cache_best = None
        if _top_changed(n, &self.sides[C_ASK], ta):
            flags |= F_TOP
            self._cache_ask = None
            self._cache_best = None
        return flags

    cdef int _check_room(self, int side, int64_t price, int64_t size) except -1:
        cdef int32_t x = _find(self.pool.n, &self.sides[side], price)
        if x != 0 and self.pool.n[x].size > INT64_MAX - size:
            raise ValueError("level total size would overflow int64 ticks")
        return 0

    # -- public API ----------------------------------------------------------------

    def add(self, order_id, int side, price, size):
        """Add an order at the back of its price level (an existing id is replaced)."""
        cdef int64_t p, s
        cdef int pd, sd
        cdef int32_t i
        cdef Top tb, ta
        _check_side(side)
        _parse(price, self.pscale, False, "price", &p, &pd)
        _parse(size, self.sscale, False, "size", &s, &sd)
        if s == 0:
            return self.remove(order_id)
        self._check_room(side, p, s)
        i = self._slot(order_id)
        _top(self.pool.n, &self.sides[C_BID], &tb)
        _top(self.pool.n, &self.sides[C_ASK], &ta)
        if i != -1:
            self._unlink(i)                  # replace: keep the slot, requeue at the back
        else:
            i = self._alloc_order()
            self._index[order_id] = i
            self._ids[i] = order_id
        self.o[i].size = s
        self.o[i].sdec = <uint8_t>sd
        try:
            self._link(i, side, p, pd)
        except MemoryError:
            self._free_order(i, order_id)
            raise
        return self._flags(&tb, &ta)

    def update(self, order_id, size):
        """New remaining size of an order, keeping its queue position; 0 removes it."""
        cdef int64_t s
        cdef int sd
        cdef int32_t i
        cdef Order* o
        cdef Level* lv
        cdef Top tb, ta
        _parse(size, self.sscale, False, "size", &s, &sd)
        i = self._slot(order_id)
        if i == -1:
            return F_UNKNOWN | _crossed(self.pool.n, self.sides)
        if s == 0:
            return self.remove(order_id)
        o = &self.o[i]
        lv = &self.pool.n[o.level]
        if s > o.size and lv.size - o.size > INT64_MAX - s:
            raise ValueError("level total size would overflow int64 ticks")
        _top(self.pool.n, &self.sides[C_BID], &tb)
        _top(self.pool.n, &self.sides[C_ASK], &ta)
        lv.size += s - o.size
        o.size = s
        o.sdec = <uint8_t>sd
        if o.sdec > lv.sdec:
            lv.sdec = o.sdec
        return self._flags(&tb, &ta)

    def change(self, order_id, price, size):
        """New price and size of an order: it moves to the back of the new level (keeps its
        place if the price is unchanged); size 0 removes it."""
        cdef int64_t p, s
        cdef int pd, sd, side
        cdef int32_t i
        cdef Top tb, ta
        _parse(price, self.pscale, False, "price", &p, &pd)
        _parse(size, self.sscale, False, "size", &s, &sd)
        i = self._slot(order_id)
        if i == -1:
            return F_UNKNOWN | _crossed(self.pool.n, self.sides)
        if s == 0:
            return self.remove(order_id)
        side = self.o[i].side
        if self.pool.n[self.o[i].level].price == p:
            flags = self.update(order_id, size)
            self.o[i].pdec = <uint8_t>pd
            return flags
        self._check_room(side, p, s)
        _top(self.pool.n, &self.sides[C_BID], &tb)
        _top(self.pool.n, &self.sides[C_ASK], &ta)
        self._unlink(i)
        self.o[i].size = s
        self.o[i].sdec = <uint8_t>sd
        try:
            self._link(i, side, p, pd)
        except MemoryError:
            self._free_order(i, order_id)
            raise
        return self._flags(&tb, &ta)

    def remove(self, order_id):
        """Remove an order; UNKNOWN if the id is not in the book."""
        cdef int32_t i = self._slot(order_id)
        cdef Top tb, ta
        if i == -1:
            return F_UNKNOWN | _crossed(self.pool.n, self.sides)
        _top(self.pool.n, &self.sides[C_BID], &tb)
        _top(self.pool.n, &self.sides[C_ASK], &ta)
        self._unlink(i)
        self._free_order(i, order_id)
        return self._flags(&tb, &ta)

    def order(self, order_id):
        """(side, price, size) of an order with strings as sent, or None."""
        cdef int32_t i = self._slot(order_id)
        cdef Order* o
        if i == -1:
            return None
        o = &self.o[i]
        return (<int>o.side, _text(self.pool.n[o.level].price, self.pscale, o.pdec),
                _text(o.size, self.sscale, o.sdec))

    def __contains__(self, order_id):
        return order_id in self._index

    def clear(self):
        """Remove every order (memory is kept for reuse)."""
        self._cache_bid = None
        self._cache_ask = None
        self._cache_best = None
        _pool_reset(&self.pool)
        _side_reset(&self.sides[C_BID], True)
        _side_reset(&self.sides[C_ASK], False)
        self.otop = 0
        self.ofree = -1
        self.norders[0] = 0
        self.norders[1] = 0
        self._index.clear()
        self._ids = [None] * self.ocap

    def best_bid(self):
        """(price, level total) of the best bid as floats, or None."""
        if self._cache_bid is None:
            self._cache_bid = _best_tuple(self.pool.n, &self.sides[C_BID], self.pdiv, self.sdiv)
        return self._cache_bid

    def best_ask(self):
        """(price, level total) of the best ask as floats, or None."""
        if self._cache_ask is None:
            self._cache_ask = _best_tuple(self.pool.n, &self.sides[C_ASK], self.pdiv, self.sdiv)
        return self._cache_ask

    def best(self):
        """(bid_price, bid_total, ask_price, ask_total) as floats; 0.0 for an empty side."""
        cdef Level* n = self.pool.n
        cdef int32_t b = self.sides[C_BID].best, a = self.sides[C_ASK].best
        if self._cache_best is None:
            self._cache_best = (
                n[b].price / self.pdiv if b else 0.0, n[b].size / self.sdiv if b else 0.0,
                n[a].price / self.pdiv if a else 0.0, n[a].size / self.sdiv if a else 0.0)
        return self._cache_best

    def spread_into(self, rows, type row_type, exchange, symbol, int64_t event_ms, int64_t atom_us):
        """``L2Book.spread_into``: the best prices with their total sizes."""
        _spread_into(self.pool.n, self.sides, self.pdiv, self.sdiv, self, rows, row_type, exchange, symbol,
                     event_ms, atom_us)

    def levels(self, int side, Py_ssize_t n=-1, Py_ssize_t start=0):
        """The best `n` levels (all when n < 0), best first: (price, total size, order count),
        after skipping the best `start` levels. The total is written with the most decimals
        any of its orders was sent with."""
        cdef Side* t
        cdef int32_t x
        cdef list out = []
        cdef Level* lv
        _check_side(side)
        t = &self.sides[side]
        x = t.best
        while x != 0 and start > 0:
            x = _next_worse(self.pool.n, t, x)
            start -= 1
        while x != 0 and n != 0:
            lv = &self.pool.n[x]
            out.append((_text(lv.price, self.pscale, lv.pdec), _text(lv.size, self.sscale, lv.sdec),
                        self._queues()[x].count))
            x = _next_worse(self.pool.n, t, x)
            n -= 1
        return out

    def orders_at(self, int side, price):
        """[(order_id, size), ...] at `price` on `side`, in arrival (queue) order."""
        cdef int64_t p
        cdef int pd
        cdef int32_t x, i
        cdef list out = []
        _check_side(side)
        _parse(price, self.pscale, False, "price", &p, &pd)
        x = _find(self.pool.n, &self.sides[side], p)
        if x == 0:
            return out
        i = self._queues()[x].head
        while i != -1:
            out.append((self._ids[i], _text(self.o[i].size, self.sscale, self.o[i].sdec)))
            i = self.o[i].next
        return out

    def count(self, int side):
        """Number of orders on `side`."""
        _check_side(side)
        return self.norders[side]

    def level_count(self, int side):
        """Number of price levels on `side`."""
        _check_side(side)
        return self.sides[side].count

    def __len__(self):
        return self.norders[0] + self.norders[1]

    def __repr__(self):
        return (f"L3Book(price_decimals={self.pscale}, size_decimals={self.sscale}, "
                f"bid_orders={self.norders[0]}, ask_orders={self.norders[1]})")

    def checksum_kraken(self, bint book_scale=False):
        """Kraken spot websocket v2 ``level3`` checksum, as an unsigned CRC-32.

        The top 10 ask levels (low to high), then the top 10 bid levels (high to low); at each
        level every order in queue order: its price, then its remaining size, each with '.'
        removed and then leading zeros removed; CRC-32 of the concatenation. ``book_scale``:
        values written at the book's scale (build the book at the pair's precision: v2 sends
        JSON numbers, which drop trailing zeros); False: with the decimals each was sent with.
        https://docs.kraken.com/api/docs/guides/spot-ws-l3-v2
        """
        cdef uint32_t state = 0xFFFFFFFFu
        cdef char buf[CK_BUF]
        cdef Py_ssize_t pos = 0
        cdef int i, k, side
        cdef int ps = self.pscale, ss = self.sscale
        cdef int32_t x, j
        cdef Level* n = self.pool.n
        cdef LevelQueue* q = self._queues()
        cdef Order* o
        for k in range(2):
            side = C_ASK if k == 0 else C_BID
            x = self.sides[side].best
            i = 0
            while x != 0 and i < 10:
                j = q[x].head
                while j != -1:
                    if pos > CK_BUF - 2 * FMT_BUF:
                        state = af_crc(state, buf, pos)
                        pos = 0
                    o = &self.o[j]
                    pos += _fmt_kraken(buf + pos, n[x].price, ps, ps if book_scale else o.pdec)
                    pos += _fmt_kraken(buf + pos, o.size, ss, ss if book_scale else o.sdec)
                    j = o.next
                x = _next_worse(n, &self.sides[side], x)
                i += 1
        return <uint32_t>~af_crc(state, buf, pos)

    def checksum_bitfinex(self):
        """Bitfinex raw book (R0) checksum (signed int32).

        The top 25 orders per side (best price first, arrival order within a price),
        interleaved "bidId:bidAmount:askId:-askAmount:...", amounts as JavaScript's Number
        toString prints them, CRC-32 as a signed int.
        https://docs.bitfinex.com/docs/ws-websocket-checksum
        """
        cdef uint32_t state = 0xFFFFFFFFu
        cdef char buf[CK_BUF]
        cdef Py_ssize_t pos = 0
        cdef int32_t cur[2]
        cdef int32_t lvl[2]
        cdef int i, k, overflow
        cdef long long iid
        cdef Py_ssize_t idlen
        cdef const char* idp
        cdef Level* n = self.pool.n
        cdef LevelQueue* q = self._queues()
        cdef object oid
        cdef str idtext
        for k in range(2):
            lvl[k] = self.sides[k].best
            cur[k] = q[lvl[k]].head if lvl[k] else -1
        for i in range(25):
            if cur[0] == -1 and cur[1] == -1:
                break
            for k in range(2):
                if cur[k] == -1:
                    continue
                if pos > CK_BUF - 2 * FMT_BUF:
                    state = af_crc(state, buf, pos)
                    pos = 0
                oid = self._ids[cur[k]]
                iid = -1
                overflow = 1
                if PyLong_CheckExact(oid):  # Bitfinex ids: int, written in C (= str(int))
                    iid = PyLong_AsLongLongAndOverflow(oid, &overflow)
                if overflow == 0 and iid >= 0:
                    pos += _utoa(buf + pos, <uint64_t>iid)
                else:
                    idtext = str(oid)
                    idp = PyUnicode_AsUTF8AndSize(idtext, &idlen)
                    if idlen > CK_BUF - FMT_BUF - pos:
                        state = af_crc(af_crc(state, buf, pos), idp, idlen)
                        pos = 0
                    else:
                        memcpy(buf + pos, idp, idlen)
                        pos += idlen
                buf[pos] = c':'
                pos += 1
                pos += _fmt_js(buf + pos, self.o[cur[k]].size, self.sscale, k == C_ASK)
                buf[pos] = c':'
                pos += 1
                # next order: along the queue, then the next level's head
                cur[k] = self.o[cur[k]].next
                if cur[k] == -1:
                    lvl[k] = _next_worse(n, &self.sides[k], lvl[k])
                    cur[k] = q[lvl[k]].head if lvl[k] else -1
        if pos:
            pos -= 1                    # no ':' after the last number
        return <int32_t>(~af_crc(state, buf, pos))

    def _validate(self):
        """Check tree, queue and total invariants; raises AssertionError (tests)."""
        cdef int s, cnt, total_orders
        cdef int32_t x, i, prev
        cdef int64_t total
        cdef LevelQueue* q
        for s in range(2):
            _validate_side(self.pool.n, &self.sides[s], "bids" if s == 0 else "asks")
            total_orders = 0
            x = self.sides[s].best
            while x != 0:
                q = &self._queues()[x]
                cnt = 0
                total = 0
                prev = -1
                i = q.head
                while i != -1:
                    if self.o[i].prev != prev or self.o[i].level != x or self.o[i].side != s:
                        raise AssertionError("broken order queue")
                    total += self.o[i].size
                    cnt += 1
                    prev = i
                    i = self.o[i].next
                if prev != q.tail or cnt != q.count or cnt == 0:
                    raise AssertionError("bad queue tail/count")
                if total != self.pool.n[x].size:
                    raise AssertionError("level total differs from the sum of its orders")
                total_orders += cnt
                x = _next_worse(self.pool.n, &self.sides[s], x)
            if total_orders != self.norders[s]:
                raise AssertionError("order count mismatch")
        if len(self._index) != self.norders[0] + self.norders[1]:
            raise AssertionError("index size mismatch")


# ---------------------------------------------------------------------------------------
# Parse helpers (for schemes and tests)
# ---------------------------------------------------------------------------------------

def parse_decimal(value, int decimals=8):
    """(ticks, sent_decimals) of a decimal string at `decimals` scale; negatives allowed.

    parse_decimal("0.1000", 8) == (10000000, 4). Raises ValueError like the books do."""
    cdef int64_t t
    cdef int sent
    if not 0 <= decimals <= MAX_SCALE:
        raise ValueError(f"decimals must be within 0..{MAX_SCALE}")
    _parse(value, decimals, True, "value", &t, &sent)
    return (t, sent)


def parse_ticks(value, int decimals=8):
    """The int64 ticks of a decimal string at `decimals` scale: parse_ticks("1.5", 2) == 150."""
    return parse_decimal(value, decimals)[0]


def round_sizes(levels, int decimals=8):
    """``levels`` ((price, size) pairs) with every size that ``parse_ticks(size, decimals)``
    refuses rounded to ``decimals`` decimals, half-even (a non-zero size to at least one tick),
    as ASCII bytes written with exactly ``decimals`` decimals: what ``format(Decimal(size).
    quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_EVEN), "f").encode()`` gives. The levels
    whose size it reads are kept as they are. A new list; None where a level is not a (price,
    size) pair (tuple or list) or a size to round is not a JSON number without sign whose
    rounding fits in int64 ticks: the caller rounds those itself."""
    cdef Py_ssize_t n, i, ln
    cdef object item, price, size
    cdef const char* b
    cdef int status, dec
    cdef int64_t v
    cdef char buf[FMT_BUF]
    cdef list out
    if not 0 <= decimals <= MAX_SCALE:
        raise ValueError(f"decimals must be within 0..{MAX_SCALE}")
    if not (PyList_CheckExact(levels) or PyTuple_CheckExact(levels)):
        return None
    n = _batch_len(levels)
    out = []
    for i in range(n):
        item = _batch_item(levels, i)
        if PyTuple_CheckExact(item) and PyTuple_GET_SIZE(item) == 2:
            price = <object>PyTuple_GET_ITEM(item, 0)
            size = <object>PyTuple_GET_ITEM(item, 1)
        elif PyList_CheckExact(item) and PyList_GET_SIZE(item) == 2:
            price = <object>PyList_GET_ITEM(item, 0)
            size = <object>PyList_GET_ITEM(item, 1)
            item = (price, size)
        else:
            return None
        if not (PyBytes_Check(size) or (PyUnicode_Check(size) and PyUnicode_IS_COMPACT_ASCII(size))
                or (PyObject_CheckBuffer(size) and not PyByteArray_Check(size))):
            return None
        try:
            b = _buffer(size, &ln)
        except (TypeError, ValueError):
            return None
        status = _parse_plain(b, ln, decimals, True, &v, &dec)
        if status < 0:
            status = _parse_dec(b, ln, decimals, True, &v, &dec)
        if status != P_OK:
            if _parse_round(b, ln, decimals, &v) != P_OK:
                return None
            item = (price, PyBytes_FromStringAndSize(buf, _fmt_fixed(buf, v, decimals, decimals)))
        out.append(item)
    return out


cdef int _seconds_c(const char* s, Py_ssize_t n, int digits, int64_t* out) noexcept nogil:
    """Decimal seconds ``WHOLE[.FRAC]`` (1..11 integer digits, at most 12 decimals, ASCII
    digits only) -> an integer count of 10**-digits s, truncated, into ``out``: 0; -1 if
    malformed."""
    cdef Py_ssize_t i = 0, nw, nf = 0
    cdef int64_t whole = 0, frac = 0
    cdef int kept = 0
    while i < n and 48 <= s[i] <= 57:
        if i < 11:
            whole = whole * 10 + (s[i] - 48)
        i += 1
    nw = i
    if nw == 0 or nw > 11:
        return -1
    if i < n:
        if s[i] != 46:              # '.'
            return -1
        i += 1
        while i < n and 48 <= s[i] <= 57:
            if kept < digits:
                frac = frac * 10 + (s[i] - 48)
                kept += 1
            nf += 1
            i += 1
        if i < n or nf > 12:
            return -1
    while kept < digits:
        frac *= 10
        kept += 1
    out[0] = whole * P10[digits] + frac
    return 0


cdef object _seconds(object text, int digits):
    """``_seconds_c`` of a str or bytes; ValueError if malformed."""
    cdef Py_ssize_t n
    cdef const char* s
    cdef int64_t v
    if not PyUnicode_Check(text) and not PyBytes_Check(text):
        raise ValueError(f"bad timestamp {text!r}")
    s = _buffer(text, &n)
    if _seconds_c(s, n, digits, &v) < 0:
        raise ValueError(f"bad timestamp {text!r}")
    return v


def parse_checksum(text):
    """A CRC-32 as an exchange writes it in text (Kraken v1 ``"c":"974947235"``): 1..10 ASCII
    digits of a value below 2**32 -> int; ValueError otherwise."""
    cdef Py_ssize_t n, i
    cdef const char* s
    cdef uint64_t v = 0
    if not PyUnicode_Check(text) and not PyBytes_Check(text):
        raise ValueError(f"malformed checksum {text!r}")
    s = _buffer(text, &n)
    if n == 0 or n > 10:
        raise ValueError(f"malformed checksum {text!r}")
    for i in range(n):
        if not 48 <= s[i] <= 57:
            raise ValueError(f"malformed checksum {text!r}")
        v = v * 10 + <uint64_t>(s[i] - 48)
    if v >> 32:
        raise ValueError(f"malformed checksum {text!r}")
    return v


def seconds_to_ms(text):
    """Exchange seconds as text -> ms, exact and truncated: ``"1618678133.626511"`` ->
    1618678133626 (Kraken v1). 1..11 integer digits, at most 12 decimals; else ValueError."""
    return _seconds(text, 3)


def seconds_to_us(text):
    """As seconds_to_ms, in µs: ``"1618678142.557535"`` -> 1618678142557535."""
    return _seconds(text, 6)


cdef inline int _two(const char* s) noexcept nogil:
    """Two ASCII digits -> 0..99; -1 otherwise."""
    if 48 <= s[0] <= 57 and 48 <= s[1] <= 57:
        return (s[0] - 48) * 10 + (s[1] - 48)
    return -1


cdef inline int64_t _days_from_civil(int64_t y, int m, int d) noexcept nogil:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil)."""
    y -= m <= 2
    cdef int64_t era = (y if y >= 0 else y - 399) // 400
    cdef int64_t yoe = y - era * 400
    cdef int64_t doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    cdef int64_t doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef int _MONTH_DAYS[13]
_MONTH_DAYS[:] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


def rfc3339_to_ms(text):
    """An RFC 3339 UTC time -> ms since the epoch, truncated: ``"2021-04-17T16:43:37.075687Z"``
    -> 1618677817075. ``T`` (or ``t`` or a space) between date and time, ``Z``, ``z``,
    ``+00:00`` or nothing after it, up to 12 fraction digits (Kraken's v2 ohlc sends nine) or
    none, second 60 (a leap second) allowed, a real date of years 1..9999, and a result in
    [0, 10**14); ValueError ``bad timestamp '...'`` otherwise (also for what is not a str)."""
    cdef int64_t ms
    if rfc3339_ms(text, &ms) != 0:
        raise ValueError(f"bad timestamp {text!r}")
    return ms


cdef int rfc3339_ms(object text, int64_t* out) except -2:
    """``rfc3339_to_ms`` for compiled callers (atomfast/_book.pxd): 0 and the ms in ``out``; -1
    where it raises ``bad timestamp``."""
    cdef Py_ssize_t n, i, nf
    cdef const char* s
    cdef int64_t y, ms = 0
    cdef int mo, d, h, mi, sec, c1, c2, dim
    if not PyUnicode_Check(text):
        return -1
    s = _buffer(text, &n)
    if n < 19 or s[4] != 45 or s[7] != 45 or not (s[10] == 84 or s[10] == 116 or s[10] == 32) \
            or s[13] != 58 or s[16] != 58:                      # '-', 'T' 't' ' ', ':'
        return -1
    c1, c2, mo, d = _two(s), _two(s + 2), _two(s + 5), _two(s + 8)
    h, mi, sec = _two(s + 11), _two(s + 14), _two(s + 17)
    if c1 < 0 or c2 < 0 or mo < 1 or mo > 12 or d < 1 or h < 0 or h > 23 or mi < 0 or mi > 59 \
            or sec < 0 or sec > 60:
        return -1
    y = c1 * 100 + c2
    dim = _MONTH_DAYS[mo]
    if mo == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0):
        dim = 29
    if y < 1 or d > dim:
        return -1
    i = 19
    if i < n and s[i] == 46:                                    # '.'
        i += 1
        nf = 0
        while i < n and 48 <= s[i] <= 57:
            if nf < 3:
                ms = ms * 10 + (s[i] - 48)
            nf += 1
            i += 1
        if nf == 0 or nf > 12:
            return -1
        while nf < 3:
            ms *= 10
            nf += 1
    n -= i
    if not (n == 0 or (n == 1 and (s[i] == 90 or s[i] == 122))             # 'Z' 'z'
            or (n == 6 and memcmp(s + i, b"+00:00", 6) == 0)):
        return -1
    ms += _days_from_civil(y, mo, d) * 86400000 + ((h * 60 + mi) * 60 + sec) * 1000
    if not 0 <= ms < 100000000000000:
        return -1
    out[0] = ms
    return 0


def format_ticks(int64_t ticks, int decimals=8, int sent_decimals=-1):
    """Text of `ticks` at `decimals` scale, written with `sent_decimals` decimals (default:
    the scale). Raises ValueError if that would drop non-zero digits."""
    cdef int64_t rem
    if not 0 <= decimals <= MAX_SCALE:
        raise ValueError(f"decimals must be within 0..{MAX_SCALE}")
    if sent_decimals < 0:
        sent_decimals = decimals
    if sent_decimals > MAX_SENT:
        raise ValueError(f"sent_decimals must be at most {MAX_SENT}")
    if sent_decimals < decimals:
        rem = ticks % P10[decimals - sent_decimals]
        if rem != 0:
            raise ValueError(f"{ticks} at {decimals} decimals needs more than "
                             f"{sent_decimals} decimals")
    return _text(ticks, decimals, sent_decimals)


def format_js(int64_t ticks, int decimals=8):
    """Text JavaScript's Number toString gives for ticks * 10**-decimals (Bitfinex)."""
    cdef char buf[FMT_BUF]
    cdef int n
    if not 0 <= decimals <= MAX_SCALE:
        raise ValueError(f"decimals must be within 0..{MAX_SCALE}")
    n = _fmt_js(buf, ticks, decimals, False)
    return PyUnicode_DecodeASCII(buf, n, NULL)


# ---------------------------------------------------------------------------------------
# CRC self-check (tests)
# ---------------------------------------------------------------------------------------

_CRC_CLMUL = bool(af_crc_clmul_ok)   # the CPU's PCLMULQDQ is used for strings >= 64 bytes


def _writer_number(value, bint plain=True):
    """What a typed writer makes of a price or size (a float; None: refused, before the range
    checks); ``plain=False`` without the exact fast path for plain decimals (tests compare)."""
    cdef double d
    return d if _number(value, &d, plain) else None


def _crc32(bytes data, uint32_t value=0, bint clmul=True):
    """zlib.crc32(data, value) as the checksums compute it (tests); clmul=False forces the
    table CRC. Not thread-safe (switches the CRC for the whole module while it runs)."""
    global af_crc_use_clmul
    cdef uint32_t r
    cdef int saved = af_crc_use_clmul
    af_crc_use_clmul = af_crc_clmul_ok if clmul else 0
    r = ~af_crc(~value, PyBytes_AS_STRING(data), <size_t>PyBytes_GET_SIZE(data))
    af_crc_use_clmul = saved
    return r


cdef int book_update(object book, int first, object first_levels, object second_levels, object rows_of,
                     type row_type, type spread_type, object exchange, object symbol, int64_t recv_ns,
                     Py_ssize_t depth, int checksum, object expected) except -2:
    """``book.apply_update(...)`` (the event time the newest level's) for compiled callers
    (atomfast/_book.pxd: a declared book shape in native/dispatch), without a Python call."""
    if type(book) is not L2Book:
        raise TypeError(f"book_update: an L2Book, not {type(book).__name__}")
    return (<L2Book>book)._update(first, first_levels, second_levels, rows_of, row_type, spread_type, exchange,
                                  symbol, recv_ns, depth, checksum, expected, None)



cdef int book_sided(object book, int first, list changes, object rows, type row_type, object exchange,
                    object symbol, int64_t event_ms, int64_t atom_us) except -1:
    """``book.apply_sides(first, [(price, size), ...], None, rows, row_type, exchange, symbol,
    event_ms, atom_us)`` of changes written ``[side, price, size]`` (Coinbase's ``l2update``), all
    of side ``first`` (the caller has read their sides), for compiled callers (atomfast/_book.pxd: a
    declared book shape in native/dispatch): no Python call, no pair made per change. The flags;
    ValueError (book unchanged) on a bad level (every level parsed before any is applied) or a
    change that is no three-item list or tuple."""
    cdef L2Book b
    cdef Py_ssize_t i, n = len(changes)
    cdef Parsed* lv
    cdef list kept = None       # (price, size) of a level of 2**53 ticks or more (its row reads the text)
    cdef object item, po, so, pair
    if type(book) is not L2Book:
        raise TypeError(f"book_sided: an L2Book, not {type(book).__name__}")
    b = <L2Book>book
    _check_side(first)
    if not PyType_IsSubtype(row_type, tuple):
        raise TypeError("row_type must be a tuple subclass (a NamedTuple)")
    b._forget_check()
    if n == 0:
        return 0
    lv = b._scratch(n)
    for i in range(n):
        item = changes[i]
        if not ((PyTuple_CheckExact(item) or PyList_CheckExact(item)) and len(item) == 3):
            raise ValueError(f"level {item!r}: expected [side, price, size]")
        po = item[1]
        so = item[2]
        _parse_unsigned(po, b.pscale, "price", &lv[i].price, &lv[i].pdec)
        if lv[i].price == 0:
            raise ValueError(f"invalid price {_shown(po)}: zero")
        _parse_unsigned(so, b.sscale, "size", &lv[i].size, &lv[i].sdec)
        if lv[i].price >= EXACT_FLOAT or lv[i].size >= EXACT_FLOAT:
            pair = (po, so)
            if kept is None:
                kept = []
            kept.append(pair)
            lv[i].item = <PyObject*>pair
        else:
            lv[i].item = <PyObject*>item    # (not read below 2**53 ticks)
    if type(rows) is AvroRows:
        return b._apply_parsed(first, lv, n, 0, rows, row_type, exchange, symbol, None, None, event_ms, atom_us, 0)
    return b._apply_parsed(first, lv, n, 0, rows, row_type, exchange, symbol, event_ms, atom_us, event_ms, atom_us, 0)


cdef int book_spread(object book, object rows, type row_type, object exchange, object symbol, int64_t event_ms,
                     int64_t atom_us) except -1:
    """``book.spread_into(rows, row_type, exchange, symbol, event_ms, atom_us)`` for compiled
    callers (atomfast/_book.pxd), without a Python call."""
    cdef L2Book b
    if type(book) is not L2Book:
        raise TypeError(f"book_spread: an L2Book, not {type(book).__name__}")
    b = <L2Book>book
    _spread_into(b.pool.n, b.sides, b.pdiv, b.sdiv, b, rows, row_type, exchange, symbol, event_ms, atom_us)
    return 0

# ---------------------------------------------------------------------------------------
# Levels as JSON text: ``[["price", "size"], ...]`` (json_levels, L2Book.check_json_sides)
# ---------------------------------------------------------------------------------------

def json_levels(text):
    """Whether ``text`` (raw JSON: bytes, or a msgspec.Raw) is an array of ``[price, size]``
    strings that a JSON decoder takes as such and ``L2Book.check_json_sides`` reads: exactly two
    strings a level, printable ASCII without escapes. Its shape only: the numbers are the book's
    to judge."""
    cdef Py_ssize_t n
    cdef const char* s = _buffer(text, &n)
    return _json_levels(s, n, 0, 0, NULL, False, None) >= 0


cdef inline Py_ssize_t _json_space(const char* s, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    while i < n and (s[i] == 32 or s[i] == 10 or s[i] == 13 or s[i] == 9):
        i += 1
    return i


# a byte in a JSON level string: 0 plain (printable ASCII), 1 the closing quote, 2 refused (an
# escape, a control byte, not ASCII)
cdef unsigned char _JSON_CHAR[256]
for _c in range(256):
    _JSON_CHAR[_c] = 1 if _c == 34 else 2 if _c == 92 or _c < 32 or _c > 126 else 0


cdef inline Py_ssize_t _json_string(const char* s, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """The end (the closing quote) of the string opening at ``s[i]``, or -1: not a string, or
    one with an escape or a byte outside printable ASCII."""
    if i >= n or s[i] != 34:
        return -1
    i += 1
    while i < n and _JSON_CHAR[<unsigned char>s[i]] == 0:
        i += 1
    if i < n and s[i] == 34:
        return i
    return -1


cdef inline int _json_number(const char* s, Py_ssize_t n, int scale, int64_t* out, int32_t* sent) noexcept nogil:
    """One level's number, as ``_parse_unsigned`` reads it (no sign): 1 (below 2**53 ticks), 2 (2**53
    ticks or more: its row's float is made from the text), 0 (refused)."""
    cdef int status, dec
    if n and (s[0] == 43 or s[0] == 45):
        return 0
    status = _parse_plain(s, n, scale, False, out, &dec)
    if status < 0:
        status = _parse_dec(s, n, scale, False, out, &dec)
    if status != P_OK:
        return 0
    sent[0] = dec
    return 2 if out[0] >= EXACT_FLOAT else 1


cdef Py_ssize_t _json_levels(const char* s, Py_ssize_t n, int pscale, int sscale, Parsed* out, bint more,
                             list wide) except -2:
    """The number of levels of ``s[:n]``, a JSON array of ``[price, size]`` strings (each parsed
    into ``out``, at the scales, where ``out`` is not NULL: a price > 0), or -1 where it is
    anything else (``json_levels``), or (parsing) a number is refused. ``more``: a level may hold
    more strings after the size (``json_level_lists``), checked to be plain strings, not read.
    ``wide`` (a list): a number of 2**53 ticks or more is taken, its level's item the (price,
    size) strings made from the text (appended to ``wide``, which holds them) for its row's float,
    the others' item NULL; None: such a number is refused."""
    cdef Py_ssize_t i = _json_space(s, 0, n), k = 0, p0, p1, z0, z1, e
    cdef int a = -1, b = -1
    cdef object item
    if i >= n or s[i] != 91:
        return -1
    i = _json_space(s, i + 1, n)
    if i < n and s[i] == 93:
        return -1 if _json_space(s, i + 1, n) != n else 0
    while True:
        if i >= n or s[i] != 91:
            return -1
        p0 = _json_space(s, i + 1, n)
        # (parsing: a plain number is read in the pass that finds its string's end,
        # ``_json_plain_number``; any other text as before: a = b = -1, read below)
        p1 = _json_plain_number(s, p0, n, pscale, &out[k].price, &out[k].pdec, &a) if out != NULL else -1
        if p1 < 0:
            a = -1
            p1 = _json_string(s, p0, n)
            if p1 < 0:
                return -1
        i = _json_space(s, p1 + 1, n)
        if i >= n or s[i] != 44:
            return -1
        z0 = _json_space(s, i + 1, n)
        z1 = _json_plain_number(s, z0, n, sscale, &out[k].size, &out[k].sdec, &b) if out != NULL else -1
        if z1 < 0:
            b = -1
            z1 = _json_string(s, z0, n)
            if z1 < 0:
                return -1
        i = _json_space(s, z1 + 1, n)
        while more and i < n and s[i] == 44:    # the strings the book does not read
            e = _json_string(s, _json_space(s, i + 1, n), n)
            if e < 0:
                return -1
            i = _json_space(s, e + 1, n)
        if i >= n or s[i] != 93:
            return -1
        if out != NULL:
            if a < 0:
                a = _json_number(s + p0 + 1, p1 - p0 - 1, pscale, &out[k].price, &out[k].pdec)
            if a == 0 or out[k].price == 0:
                return -1
            if b < 0:
                b = _json_number(s + z0 + 1, z1 - z0 - 1, sscale, &out[k].size, &out[k].sdec)
            if b == 0:
                return -1
            out[k].item = NULL
            if a == 2 or b == 2:
                if wide is None:
                    return -1
                item = (PyUnicode_DecodeASCII(s + p0 + 1, p1 - p0 - 1, NULL),
                        PyUnicode_DecodeASCII(s + z0 + 1, z1 - z0 - 1, NULL))
                wide.append(item)
                out[k].item = <PyObject*>item
        k += 1
        i = _json_space(s, i + 1, n)
        if i < n and s[i] == 44:
            i = _json_space(s, i + 1, n)
            continue
        if i < n and s[i] == 93:
            return k if _json_space(s, i + 1, n) == n else -1
        return -1


# ---------------------------------------------------------------------------------------
# Levels as JSON arrays of two or more strings: ``[["price", "size", "0", "3"], ...]``
# (json_level_lists, L2Book.check_json_lists): the strings after the size are not read
# ---------------------------------------------------------------------------------------

def json_level_lists(text):
    """Whether ``text`` (raw JSON: bytes, or a msgspec.Raw) is an array of arrays of two or more
    strings (a level: price, size, then any strings) that a JSON decoder takes as
    ``list[list[str]]`` and ``L2Book.check_json_lists`` reads: printable ASCII without escapes.
    Its shape only: the numbers are the book's to judge."""
    cdef Py_ssize_t n
    cdef const char* s = _buffer(text, &n)
    return _json_levels(s, n, 0, 0, NULL, True, None) >= 0


cdef inline int _json_num(const char* s, Py_ssize_t n, int scale, bint round_sizes, int64_t* out,
                          int32_t* sent) noexcept nogil:
    """One level's JSON number (starting with a digit), as ``_parse_unsigned`` reads it (with
    ``round_sizes``, a size beyond the scale as ``_parse_round`` rounds it): 1 as written, 2
    rounded, 0 refused."""
    cdef int status, dec
    if n == 0 or s[0] < 48 or s[0] > 57:
        return 0
    status = _parse_plain(s, n, scale, False, out, &dec)
    if status < 0:
        status = _parse_dec(s, n, scale, False, out, &dec)
    if status != P_OK:
        if not round_sizes or _parse_round(s, n, scale, out) != P_OK:
            return 0
        sent[0] = scale
        return 2
    sent[0] = dec
    return 1


cdef inline int _json_fast(const char* s, Py_ssize_t i, Py_ssize_t n, int scale, bint round_sizes, int64_t* out,
                           int32_t* sent, Py_ssize_t* end) noexcept nogil:
    """``_json_num``'s one pass over the number at ``s[i]`` for what HTX sends
    (``digits[.digits][(e|E)[+-]digits]`` with at most 19 significant digits, below 2**63,
    written with at most 255 decimals): the ticks as ``_parse_plain``/``_parse_dec`` read them
    (1), or rounded as ``_parse_round`` rounds them (2), and the number's end into ``end``; -1
    for anything else (its token is then read by the general parsers)."""
    cdef Py_ssize_t start
    cdef uint64_t m = 0, p, q, r, v
    cdef unsigned int d
    cdef int digits = 0, frac = 0, exp = 0, need, shift
    cdef bint eneg = False
    start = i
    while i < n:                                    # integer part
        d = <unsigned char>s[i] - 48
        if d > 9:
            break
        if m or d:
            digits += 1
        m = m * 10 + d
        i += 1
    if i == start:
        return -1
    if i < n and s[i] == 46:                        # '.'
        i += 1
        start = i
        while i < n:
            if m and i + 8 <= n and af_parse8(s + i, &v):   # 8 digits at once
                m = m * 100000000 + v
                digits += 8
                i += 8
                continue
            d = <unsigned char>s[i] - 48
            if d > 9:
                break
            if m or d:
                digits += 1
            m = m * 10 + d
            i += 1
        frac = <int>(i - start)
        if frac == 0 or frac > 4096:
            return -1
    if i < n and (s[i] == 101 or s[i] == 69):       # 'e' / 'E'
        i += 1
        if i < n and (s[i] == 43 or s[i] == 45):
            eneg = s[i] == 45
            i += 1
        start = i
        while i < n:
            d = <unsigned char>s[i] - 48
            if d > 9:
                break
            if exp < 10000:
                exp = exp * 10 + <int>d
            i += 1
        if i == start:
            return -1
        if eneg:
            exp = -exp
    if i < n and (s[i] == 46 or s[i] == 101 or s[i] == 69 or s[i] == 43 or s[i] == 45):
        return -1                                   # (the token goes on: not of this form)
    if digits > 19 or m > <uint64_t>INT64_MAX:
        return -1
    need = frac - exp                               # the decimals as sent (when > 0)
    if need > MAX_SENT:
        return -1
    end[0] = i
    if m == 0:
        out[0] = 0
        sent[0] = need if need > 0 else 0
        return 1
    shift = scale - need
    if shift >= 0:
        if shift > 18 or m > <uint64_t>P10_LIMIT[shift]:
            return -1
        out[0] = <int64_t>(m * <uint64_t>P10[shift])
        sent[0] = need if need > 0 else 0
        return 1
    if -shift > 18:
        return -1
    p = <uint64_t>P10[-shift]
    q = m // p
    r = m - q * p
    if r == 0:
        out[0] = <int64_t>q
        sent[0] = need
        return 1
    if not round_sizes:
        return -1
    if r > p // 2 or (r == p // 2 and (q & 1)):     # half-even
        q += 1
    if q == 0:
        q = 1
    out[0] = <int64_t>q
    sent[0] = scale
    return 2


cdef inline Py_ssize_t _json_token(const char* s, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """The end of the number token at ``s[i]`` (its characters: digits, '.', 'e', 'E', '+', '-')."""
    cdef char c
    while i < n:
        c = s[i]
        if not ((48 <= c <= 57) or c == 46 or c == 101 or c == 69 or c == 43 or c == 45):
            break
        i += 1
    return i


cdef Py_ssize_t _json_number_levels(const char* s, Py_ssize_t n, int pscale, int sscale, bint round_sizes,
                                    Parsed* out, const char* ps, Parsed* plv, int32_t* pat, int32_t* pln,
                                    Py_ssize_t pn, int32_t* at, int32_t* ln) noexcept nogil:
    """The number of levels of ``s[:n]``, a JSON array of ``[price, size]`` numbers (empty text
    or ``null``: none), each parsed into ``out`` at the scales (a price > 0), or -1 where it is
    anything else or a number is refused (``L2Book.check_json_numbers``). No item (NULL), also
    for a value of 2**53 ticks or more (``_replace_parsed`` makes its texts).

    ``ps``: the text read last (NULL: none), its ``pn`` levels' parse ``plv`` and texts (``pat``
    offsets, ``pln`` lengths, '[' to ']'): a level written as one of those (compared where the
    reading is, and a few levels on) is taken as parsed then. Each level's text into ``at``,
    ``ln``."""
    cdef Py_ssize_t i = _json_space(s, 0, n), k = 0, p0, p1, z0, z1, j = 0, x, start
    cdef int sized
    if i >= n:
        return 0
    if s[i] == 110:                                     # null
        if n - i >= 4 and s[i + 1] == 117 and s[i + 2] == 108 and s[i + 3] == 108:
            return 0 if _json_space(s, i + 4, n) == n else -1
        return -1
    if s[i] != 91:
        return -1
    i = _json_space(s, i + 1, n)
    if i < n and s[i] == 93:
        return -1 if _json_space(s, i + 1, n) != n else 0
    while True:
        if i >= n or s[i] != 91:
            return -1
        start = i
        if j < pn and pln[j] <= n - i and memcmp(s + i, ps + pat[j], pln[j]) == 0:
            # the level as it was written last time (its text ends with its ']'): its parse
            out[k] = plv[j]
            at[k] = <int32_t>i
            ln[k] = pln[j]
            i += pln[j]
            j += 1
        else:
            p0 = _json_space(s, i + 1, n)
            if _json_fast(s, p0, n, pscale, False, &out[k].price, &out[k].pdec, &p1) < 0:
                p1 = _json_token(s, p0, n)
                if _json_num(s + p0, p1 - p0, pscale, False, &out[k].price, &out[k].pdec) != 1:
                    return -1
            if out[k].price == 0:
                return -1
            i = _json_space(s, p1, n)
            if i >= n or s[i] != 44:
                return -1
            z0 = _json_space(s, i + 1, n)
            sized = _json_fast(s, z0, n, sscale, round_sizes, &out[k].size, &out[k].sdec, &z1)
            if sized < 0:
                z1 = _json_token(s, z0, n)
                sized = _json_num(s + z0, z1 - z0, sscale, round_sizes, &out[k].size, &out[k].sdec)
                if sized == 0:
                    return -1
            i = _json_space(s, z1, n)
            if i >= n or s[i] != 93:
                return -1
            out[k].item = NULL
            i += 1
            at[k] = <int32_t>start
            ln[k] = <int32_t>(i - start)
            # the last text's reading goes on after this price (a changed level), or where it is
            # found a few levels on (levels gone); else where it was (a new level)
            x = j
            while x < pn and x < j + 4:
                if plv[x].price == out[k].price:
                    j = x + 1
                    break
                x += 1
        k += 1
        i = _json_space(s, i, n)
        if i < n and s[i] == 44:
            i = _json_space(s, i + 1, n)
            continue
        if i < n and s[i] == 93:
            return k if _json_space(s, i + 1, n) == n else -1
        return -1


# ---------------------------------------------------------------------------------------
# A level's number read in the pass that finds its string's end (``_json_levels``)
# ---------------------------------------------------------------------------------------

cdef inline Py_ssize_t _json_plain_number(const char* s, Py_ssize_t i, Py_ssize_t n, int scale, int64_t* out,
                                          int32_t* sent, int* kind) noexcept nogil:
    """At ``s[i]``, a JSON string of digits with at most one ``.`` between digits (at most 19
    digits): its end (the closing quote), the number read in the same pass as ``_json_number``
    reads it from the text between the quotes: ``kind`` 1 (below 2**53 ticks), 2 (2**53 ticks or
    more), 0 (refused: out of range or too precise at ``scale``), ``out`` and ``sent`` as there.
    -1 for any other text (a sign, an exponent, a byte that is not a digit, no digit before or
    after the point, more digits, a value over INT64_MAX): ``_json_string`` and
    ``_json_number`` then take it, as before this pass existed (``_parse_plain`` gives -1 for
    exactly these, and the same status and values for the others)."""
    cdef Py_ssize_t j
    cdef uint64_t m = 0, d, q
    cdef int digits = 0, point = -1, frac, shift
    cdef char c
    if i >= n or s[i] != 34:
        return -1
    j = i + 1
    while j < n:
        c = s[j]
        d = <uint64_t>(<uint8_t>c) - <uint64_t>48
        if d <= 9:
            m = m * 10 + d              # (wraps past 19 digits: not used then)
            digits += 1
        elif c == 34:
            break
        elif c == 46 and point < 0:     # '.'
            point = digits
        else:
            return -1
        j += 1
    if j >= n or digits == 0 or digits > 19 or point == 0 or point == digits:
        return -1
    if m > <uint64_t>INT64_MAX:
        return -1
    frac = 0 if point < 0 else digits - point
    sent[0] = frac
    if m == 0:
        out[0] = 0
        kind[0] = 1
        return j
    shift = scale - frac
    if shift >= 0:
        if m > <uint64_t>P10_LIMIT[shift]:
            kind[0] = 0                 # P_RANGE
            return j
        m *= <uint64_t>P10[shift]
    else:
        if -shift > 18:
            kind[0] = 0                 # P_PRECISION
            return j
        q = m // <uint64_t>P10[-shift]
        if q * <uint64_t>P10[-shift] != m:
            kind[0] = 0                 # P_PRECISION
            return j
        m = q
    out[0] = <int64_t>m
    kind[0] = 2 if out[0] >= EXACT_FLOAT else 1
    return j


# ---------------------------------------------------------------------------------------
# lob rows of one apply (``L2Book._apply_parsed`` into an AvroRows): what follows a row's
# price and size (its side and the two times, the same for every row of the call) encoded
# once per call, not per row
# ---------------------------------------------------------------------------------------

cdef struct LobTail:
    char b[2][40]           # per book side (C_BID, C_ASK): the side string, then the two longs
    Py_ssize_t n[2]


cdef void _lob_tail(LobTail* t, int64_t event_ms, int64_t atom_us) noexcept:
    """The tails ``AvroRows.add`` writes after a ``lob`` row's price and size, for both sides."""
    cdef int s
    cdef bytes side
    cdef Py_ssize_t k
    for s in range(2):
        side = AVRO_BUY if s == C_BID else AVRO_SELL
        k = PyBytes_GET_SIZE(side)
        memcpy(t.b[s], PyBytes_AS_STRING(side), k)
        k += _put_long(t.b[s] + k, event_ms)
        k += _put_long(t.b[s] + k, atom_us)
        t.n[s] = k


cdef int _avro_lob_row(L2Book book, AvroRows rows, object exchange, object symbol, int side, Parsed* lv,
                       LobTail* t) except -1:
    """``L2Book._row``'s event as Avro bytes, with the row's tail from ``t``: what ``AvroRows.add``
    writes (price and size the same doubles, a level of 2**53 ticks or more from its strings),
    the same key."""
    cdef PyObject* po = NULL
    cdef PyObject* so = NULL
    cdef double price = lv.price / book.pdiv, size = lv.size / book.sdiv
    cdef char* out
    if lv.price >= EXACT_FLOAT or lv.size >= EXACT_FLOAT:
        _level_item(<object>lv.item, &po, &so)
        if lv.price >= EXACT_FLOAT:
            price = float(<object>po)
        if lv.size >= EXACT_FLOAT:
            size = float(<object>so)
    out = rows._begin(exchange, symbol, 16 + t.n[side])
    memcpy(out, &price, 8)  # Avro double: IEEE 754, little-endian (this machine's order)
    memcpy(out + 8, &size, 8)
    memcpy(out + 16, t.b[side], t.n[side])
    return rows._end(out + 16 + t.n[side])


# ---------------------------------------------------------------------------------------
# Levels written ``[side, price, size]``, of both sides in one message (Gemini's l2_updates)
# ---------------------------------------------------------------------------------------

cdef inline bint _same_word(object text, str word) except -1:
    """``text == word`` of an exact str: a byte compare where both are ASCII (a venue's words)."""
    cdef Py_ssize_t n
    if text is word:
        return True
    n = PyUnicode_GET_LENGTH(text)
    if n != PyUnicode_GET_LENGTH(word):
        return False
    if PyUnicode_IS_COMPACT_ASCII(text) and PyUnicode_IS_COMPACT_ASCII(word):
        return memcmp(PyUnicode_DATA(text), PyUnicode_DATA(word), n) == 0
    return text == word


cdef inline int _sided_side(object item, str bid_word, str ask_word, PyObject** po, PyObject** so) except -2:
    """One change ``[side, price, size]``: 0 a bid, 1 an ask, -1 a side neither word; its price
    and size (borrowed) in ``po``/``so``. ValueError: no three-item list or tuple."""
    cdef object side
    if PyTuple_CheckExact(item) and PyTuple_GET_SIZE(item) == 3:
        side = <object>PyTuple_GET_ITEM(item, 0)
        po[0] = PyTuple_GET_ITEM(item, 1)
        so[0] = PyTuple_GET_ITEM(item, 2)
    elif PyList_CheckExact(item) and PyList_GET_SIZE(item) == 3:
        side = <object>PyList_GET_ITEM(item, 0)
        po[0] = PyList_GET_ITEM(item, 1)
        so[0] = PyList_GET_ITEM(item, 2)
    else:
        raise ValueError(f"level {item!r}: expected [side, price, size]")
    if PyUnicode_CheckExact(side):
        if _same_word(side, bid_word):
            return 0
        if _same_word(side, ask_word):
            return 1
        return -1
    if side == bid_word:  # (a str subclass)
        return 0
    return 1 if side == ask_word else -1


cdef Py_ssize_t _sided_parse(L2Book b, list changes, str bid_word, str ask_word, list kept) except -2:
    """The changes into ``b``'s scratch, as ``apply_sides(BID, bids, asks)`` parses its levels:
    those whose side is ``bid_word`` first (in the message's order), then ``ask_word``'s. The
    number of bid changes; -1 (nothing parsed) where a change's side is neither word (every side
    is read before any level is parsed). ValueError on a change that is no three-item list or
    tuple, or on a bad level (the bids' levels parsed before the asks'). ``b`` None: the sides
    only."""
    cdef Py_ssize_t i, k = 0, nb = 0, n = PyList_GET_SIZE(changes)
    cdef int step, side
    cdef Parsed* lv
    cdef PyObject* po
    cdef PyObject* so
    cdef object item, pair
    for i in range(n):
        side = _sided_side(<object>PyList_GET_ITEM(changes, i), bid_word, ask_word, &po, &so)
        if side < 0:
            return -1
        if side == 0:
            nb += 1
    if b is None or n == 0:
        return nb
    lv = b._scratch(n)
    for step in range(2):  # the bids, then the asks
        if (nb == 0 and step == 0) or (nb == n and step == 1):
            continue
        for i in range(n):
            item = <object>PyList_GET_ITEM(changes, i)
            if nb != 0 and nb != n and _sided_side(item, bid_word, ask_word, &po, &so) != step:
                continue
            elif nb == 0 or nb == n:
                _sided_side(item, bid_word, ask_word, &po, &so)
            _parse_unsigned(<object>po, b.pscale, "price", &lv[k].price, &lv[k].pdec)
            if lv[k].price == 0:
                raise ValueError(f"invalid price {_shown(<object>po)}: zero")
            _parse_unsigned(<object>so, b.sscale, "size", &lv[k].size, &lv[k].sdec)
            if lv[k].price >= EXACT_FLOAT or lv[k].size >= EXACT_FLOAT:
                pair = (<object>po, <object>so)     # (its row reads the text: a (price, size) pair, kept alive)
                kept.append(pair)
                lv[k].item = <PyObject*>pair
            else:
                lv[k].item = <PyObject*>item
            k += 1
    return nb


def check_sided_levels(book, list changes, str bid_word, str ask_word):
    """Check changes written ``[side, price, size]`` of either side, in any order (Gemini's
    ``l2_updates``: ``["buy", "302.75", "0.00001"]``), as ``apply_sided_levels`` reads them,
    applying nothing: -1 where a change's side is neither ``bid_word`` nor ``ask_word`` (the
    sides are read before any level), else the number of bid changes; ValueError on a bad level
    (as ``check_sides(bids, asks)`` raises it: the bids' levels first). ``book`` None: the sides
    only (no level parsed). A stand-in for an L2Book (the benchmark's recording proxy): its
    ``check_sides(bids, asks)``."""
    cdef list kept = []
    cdef Py_ssize_t nb
    if book is None or type(book) is L2Book:
        if book is not None:
            (<L2Book>book)._forget_check()
        return _sided_parse(<L2Book>book, changes, bid_word, ask_word, kept)
    nb = _sided_parse(None, changes, bid_word, ask_word, kept)
    if nb >= 0:
        book.check_sides(*_sided_pairs(changes, bid_word))
    return nb


cdef tuple _sided_pairs(list changes, str bid_word):
    """(bids, asks): the changes' (price, size), by side (their sides read already)."""
    bids, asks = [], []
    for c in changes:
        (bids if c[0] == bid_word else asks).append((c[1], c[2]))
    return bids, asks


def apply_sided_levels(book, list changes, str bid_word, str ask_word, rows, type row_type, exchange,
                       symbol, int64_t event_ms, int64_t atom_us):
    """``book.apply_sides(BID, bids, asks, rows, row_type, exchange, symbol, event_ms, atom_us)``
    of changes written ``[side, price, size]`` of either side, in any order (Gemini's
    ``l2_updates``), without a pair made per change: ``bids`` the ``(price, size)`` of the changes
    whose side is ``bid_word``, in the message's order, ``asks`` those of ``ask_word``. The flags
    (as ``apply_sides``); -1, the book unchanged, where a change's side is neither word (every
    side read before any level is parsed). EVERY level is parsed before any is applied: a bad one
    raises ValueError (the same as ``apply_sides(BID, bids, asks)``'s) and leaves the book
    unchanged. A stand-in for an L2Book (the benchmark's recording proxy): its ``apply_sides``
    of those lists."""
    cdef list kept = []
    cdef Py_ssize_t nb, n
    cdef L2Book b
    if not PyType_IsSubtype(row_type, tuple):
        raise TypeError("row_type must be a tuple subclass (a NamedTuple)")
    if type(book) is not L2Book:
        if _sided_parse(None, changes, bid_word, ask_word, kept) < 0:
            return -1
        bids, asks = _sided_pairs(changes, bid_word)
        return book.apply_sides(C_BID, bids, asks, rows, row_type, exchange, symbol, event_ms, atom_us)
    b = <L2Book>book
    b._forget_check()
    nb = _sided_parse(b, changes, bid_word, ask_word, kept)
    if nb < 0:
        return -1
    n = len(changes)
    if n == 0:
        return 0
    if type(rows) is AvroRows:
        return b._apply_parsed(C_BID, b.scratch, nb, n - nb, rows, row_type, exchange, symbol, None, None,
                               event_ms, atom_us, 0)
    return b._apply_parsed(C_BID, b.scratch, nb, n - nb, rows, row_type, exchange, symbol, event_ms, atom_us,
                           event_ms, atom_us, 0)


# the asks of a text ``_json_sided`` reads, parsed before they are put after its bids (grown as
# needed; used with the GIL held, by no code that can run Python in between)
cdef Parsed* _sided_asks = NULL
cdef Py_ssize_t _sided_asks_cap = 0
# ``L2Book.chk_second`` of a book whose scratch holds a sided text's reading (``chk_first``: the text)
cdef object _SIDED_TEXT = object()


cdef Parsed* _sided_room(Py_ssize_t n) except NULL:
    global _sided_asks, _sided_asks_cap
    cdef Parsed* grown
    if n > _sided_asks_cap:
        grown = <Parsed*>realloc(_sided_asks, (2 * n + 16) * sizeof(Parsed))
        if grown == NULL:
            raise MemoryError()
        _sided_asks = grown
        _sided_asks_cap = 2 * n + 16
    return _sided_asks


cdef Py_ssize_t _json_sided(const char* s, Py_ssize_t n, const char* bw, Py_ssize_t bn, const char* aw,
                            Py_ssize_t an, Py_ssize_t* nbids, L2Book b, list wide) except -2:
    """Changes ``[side, price, size]`` as JSON text (``s[:n]``: an array of arrays of three plain
    strings, printable ASCII without escapes; each side the bid word ``bw`` or the ask word
    ``aw``), read in one pass: their number, the bids' in ``nbids``; -1 where the text is anything
    else. ``b`` not None: the levels parsed into its scratch, the bids first then the asks, each
    in the text's order (-1 where a number is refused, or is a price 0); a level of 2**53 ticks
    or more gets its (price, size) strings, made from the text and held by ``wide``, as its item."""
    cdef Py_ssize_t i = _json_space(s, 0, n), kb = 0, ka = 0, w0, w1, p0, p1, z0, z1
    cdef bint bid
    cdef int x, y
    cdef Parsed* lv
    cdef object item
    nbids[0] = 0
    if i >= n or s[i] != 91:
        return -1
    i = _json_space(s, i + 1, n)
    if i < n and s[i] == 93:
        return -1 if _json_space(s, i + 1, n) != n else 0
    while True:
        if i >= n or s[i] != 91:
            return -1
        w0 = _json_space(s, i + 1, n)
        w1 = _json_string(s, w0, n)
        if w1 < 0:
            return -1
        if w1 - w0 - 1 == bn and memcmp(s + w0 + 1, bw, bn) == 0:
            bid = True
        elif w1 - w0 - 1 == an and memcmp(s + w0 + 1, aw, an) == 0:
            bid = False
        else:
            return -1
        i = _json_space(s, w1 + 1, n)
        if i >= n or s[i] != 44:
            return -1
        p0 = _json_space(s, i + 1, n)
        p1 = _json_string(s, p0, n)
        if p1 < 0:
            return -1
        i = _json_space(s, p1 + 1, n)
        if i >= n or s[i] != 44:
            return -1
        z0 = _json_space(s, i + 1, n)
        z1 = _json_string(s, z0, n)
        if z1 < 0:
            return -1
        i = _json_space(s, z1 + 1, n)
        if i >= n or s[i] != 93:
            return -1
        if b is not None:
            if bid:
                lv = (b._scratch(2 * kb + 16) if kb >= b.scratch_cap else b.scratch) + kb
            else:
                lv = _sided_room(ka + 1) + ka
            x = _json_number(s + p0 + 1, p1 - p0 - 1, b.pscale, &lv.price, &lv.pdec)
            if x == 0 or lv.price == 0:
                return -1
            y = _json_number(s + z0 + 1, z1 - z0 - 1, b.sscale, &lv.size, &lv.sdec)
            if y == 0:
                return -1
            lv.item = NULL
            if x == 2 or y == 2:
                item = (PyUnicode_DecodeASCII(s + p0 + 1, p1 - p0 - 1, NULL),
                        PyUnicode_DecodeASCII(s + z0 + 1, z1 - z0 - 1, NULL))
                wide.append(item)
                lv.item = <PyObject*>item
        if bid:
            kb += 1
        else:
            ka += 1
        i = _json_space(s, i + 1, n)
        if i < n and s[i] == 44:
            i = _json_space(s, i + 1, n)
            continue
        if i < n and s[i] == 93:
            if _json_space(s, i + 1, n) != n:
                return -1
            break
        return -1
    nbids[0] = kb
    if b is not None and ka:
        memcpy(b._scratch(kb + ka) + kb, _sided_asks, ka * sizeof(Parsed))
    return kb + ka


cdef Py_ssize_t _json_sided_read(L2Book b, object text, str bid_word, str ask_word, Py_ssize_t* nb) except -2:
    """``_json_sided`` of ``text`` (``b`` None: shape and sides only); where ``b`` read it whole,
    its scratch is kept as the reading of ``text`` (``chk_first``) for ``apply_json_sided_levels``
    (the book may be cleared in between, as for a snapshot)."""
    cdef Py_ssize_t n, bn, an, count
    cdef const char* s = _buffer(text, &n)
    cdef const char* bw = PyUnicode_AsUTF8AndSize(bid_word, &bn)
    cdef const char* aw = PyUnicode_AsUTF8AndSize(ask_word, &an)
    cdef list wide
    if b is None:
        return _json_sided(s, n, bw, bn, aw, an, nb, None, None)
    wide = []
    b._forget_check()
    count = _json_sided(s, n, bw, bn, aw, an, nb, b, wide)
    if count > 0:
        b.chk_first, b.chk_second, b.chk_n1, b.chk_n2, b.chk_wide = text, _SIDED_TEXT, nb[0], count - nb[0], wide
    return count


def apply_json_sided_levels(book, text, str bid_word, str ask_word, rows, type row_type, exchange, symbol,
                            int64_t event_ms, int64_t atom_us):
    """``apply_sided_levels`` of changes ``[side, price, size]`` given as their JSON text (raw
    JSON: bytes or a msgspec.Raw; Gemini's ``l2_updates`` ``changes``), read in C without a
    Python object per change (or the reading ``check_json_sided_levels`` just kept of this very
    text: the book may be cleared in between, as for a snapshot): the flags; -2, nothing applied,
    where the text is not an array of arrays of three plain strings (printable ASCII, no escapes)
    whose sides are the two words, a number is one the book refuses, or ``book`` is no L2Book:
    the caller then decodes the changes and takes ``apply_sided_levels``, which says why."""
    return book_json_sided(book, text, bid_word, ask_word, rows, row_type, exchange, symbol, event_ms, atom_us)


cdef int book_json_sided(object book, object text, str bid_word, str ask_word, object rows, type row_type,
                         object exchange, object symbol, int64_t event_ms, int64_t atom_us) except -3:
    """``apply_json_sided_levels`` for compiled callers (atomfast/_book.pxd), without a Python call."""
    cdef Py_ssize_t count, nb
    cdef L2Book b
    if not PyType_IsSubtype(row_type, tuple):
        raise TypeError("row_type must be a tuple subclass (a NamedTuple)")
    if type(book) is not L2Book:
        return -2
    b = <L2Book>book
    if b.chk_first is text and b.chk_second is _SIDED_TEXT:
        nb, count = b.chk_n1, b.chk_n1 + b.chk_n2
    else:
        count = _json_sided_read(b, text, bid_word, ask_word, &nb)
        if count < 0:
            b._forget_check()
            return -2
    b._forget_check()
    if count == 0:
        return 0
    if type(rows) is AvroRows:
        return b._apply_parsed(C_BID, b.scratch, nb, count - nb, rows, row_type, exchange, symbol, None, None,
                               event_ms, atom_us, 0)
    return b._apply_parsed(C_BID, b.scratch, nb, count - nb, rows, row_type, exchange, symbol, event_ms, atom_us,
                           event_ms, atom_us, 0)


def check_json_sided_levels(book, text, str bid_word, str ask_word):
    """``apply_json_sided_levels``' reading of the text, applying nothing: the number of changes,
    or -2 where it would return -2 (``book`` None: the text's shape and sides only, no number
    read). A book's reading is kept for ``apply_json_sided_levels`` of the same text next."""
    cdef Py_ssize_t count, nb
    if book is not None and type(book) is not L2Book:
        return -2
    count = _json_sided_read(<L2Book>book, text, bid_word, ask_word, &nb)
    if count < 0:
        if book is not None:
            (<L2Book>book)._forget_check()
        return -2
    return count
