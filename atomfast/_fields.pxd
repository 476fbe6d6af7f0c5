# A decoded message's fields read at its type's slot offsets: the one reader of the compiled
# modules that execute declarations (native/dispatch: the Router's shapes and ``unwrap``;
# native/booksync: an L2 diff's fields). A msgspec Struct's fields are member descriptors whose
# offsets are found once per type; a type whose fields are not plain object slots is read by
# ``getattr``. cimported (inline): nothing of it is built on its own.
from cpython.object cimport PyObject, PyTypeObject

cdef extern from "structmember.h":
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
    enum:
        T_OBJECT
        T_OBJECT_EX

cdef extern from "Python.h":
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    PyTypeObject PyMemberDescr_Type
    PyObject* _PyType_Lookup(PyTypeObject* tp, object name)
    PyTypeObject* Py_TYPE(object o)

cdef enum:
    MAX_FIELDS = 12


cdef struct FieldSlots:
    PyTypeObject* tp            # the type the offsets were found on (NULL: none yet)
    bint slots                  # its fields are plain object slots (else: getattr)
    Py_ssize_t n
    Py_ssize_t offs[MAX_FIELDS]


cdef inline int fields_init(FieldSlots* f, tuple names) except -1:
    if len(names) > MAX_FIELDS:
        raise ValueError(f"{len(names)} fields, at most {MAX_FIELDS}")
    f.tp = NULL
    f.slots = False
    f.n = len(names)
    return 0


cdef inline int fields_resolve(FieldSlots* f, tuple names, object msg) except -1:
    """The offsets of ``names`` on ``msg``'s type (the caller keeps the type alive)."""
    cdef PyObject* d
    cdef PyMemberDef* member
    cdef Py_ssize_t i
    f.tp = Py_TYPE(msg)
    f.slots = True
    for i in range(f.n):
        d = _PyType_Lookup(f.tp, names[i])
        if d == NULL or Py_TYPE(<object>d) != &PyMemberDescr_Type:
            f.slots = False
            return 0
        member = (<PyMemberDescrObject*>d).d_member
        if member.type != T_OBJECT_EX and member.type != T_OBJECT:
            f.slots = False
            return 0
        f.offs[i] = member.offset
    return 0


cdef inline PyObject* field_slot(FieldSlots* f, object msg, Py_ssize_t i) noexcept:
    """Field ``i`` of ``msg`` from its slot (borrowed), NULL where the caller must ``getattr``
    (fields not in slots, or an unset slot); ``fields_resolve`` done for ``msg``'s type."""
    if not f.slots:
        return NULL
    return (<PyObject**>((<char*><PyObject*>msg) + f.offs[i]))[0]
