//! The hot loop: Python objects -> Avro binary, appended to a `Vec<u8>`.
//!
//! Works on borrowed object pointers through the C API (stable ABI). No Python code runs
//! while a batch is encoded (only type checks and C accessors that never call back into
//! Python), so borrowed items of the caller's tuples, lists and dicts stay valid throughout.

use std::os::raw::c_int;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyAnyMethods;

use crate::schema::*;

/// Deepest nesting of records/arrays/maps accepted (guards against self-containing lists).
const MAX_DEPTH: u32 = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrKind {
    Type,
    Value,
}

/// An encoding failure. `path` collects field names / indexes innermost first.
///
/// The offending value is kept (a strong reference) and described only when the message is
/// rendered, after encoding has stopped: its `repr` may run Python code, which must not
/// happen while borrowed items of the batch are in use. `{got}` in `msg` stands for it.
#[derive(Debug)]
pub struct EncodeError {
    pub kind: ErrKind,
    pub msg: String,
    pub got: Option<Py<PyAny>>,
    pub path: Vec<String>,
    /// For a union no branch took: the failure of the first branch tried.
    pub cause: Option<Box<EncodeError>>,
}

pub type EResult<T> = Result<T, Box<EncodeError>>;

impl EncodeError {
    pub fn new(kind: ErrKind, msg: String) -> Box<Self> {
        Box::new(EncodeError {
            kind,
            msg,
            got: None,
            path: Vec::new(),
            cause: None,
        })
    }

    /// An error about `obj`; `msg` mentions it as `{got}`.
    fn about(py: Python<'_>, kind: ErrKind, msg: String, obj: *mut ffi::PyObject) -> Box<Self> {
        // SAFETY: obj is a live (borrowed) object; we take our own reference.
        let got = unsafe { Bound::from_borrowed_ptr(py, obj) }.unbind();
        Box::new(EncodeError {
            kind,
            msg,
            got: Some(got),
            path: Vec::new(),
            cause: None,
        })
    }

    /// Dotted field path, outermost first (`book.levels[3].price`).
    pub fn path_string(&self) -> String {
        let mut out = String::new();
        for seg in self.path.iter().rev() {
            if !seg.starts_with('[') && !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
        out
    }

    /// The message, with the offending value described (may run Python code).
    pub fn render(&self, py: Python<'_>) -> String {
        let mut out = match &self.got {
            Some(obj) => self.msg.replace("{got}", &describe(obj.bind(py))),
            None => self.msg.clone(),
        };
        if let Some(cause) = &self.cause {
            let path = cause.path_string();
            let sep = if path.is_empty() { "" } else { ": " };
            out.push_str(&format!(
                " (first branch tried: {path}{sep}{})",
                cause.render(py)
            ));
        }
        out
    }
}

#[inline(always)]
fn with_seg<T>(r: EResult<T>, seg: impl FnOnce() -> String) -> EResult<T> {
    match r {
        Ok(v) => Ok(v),
        Err(mut e) => {
            e.path.push(seg());
            Err(e)
        }
    }
}

/// `type name repr` of a value, for messages.
fn describe(any: &Bound<'_, PyAny>) -> String {
    let tname = any
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_string());
    let mut repr = any
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<repr failed>".into());
    if repr.chars().count() > 80 {
        repr = repr.chars().take(77).collect::<String>() + "...";
    }
    format!("{tname} {repr}")
}

fn type_error(py: Python<'_>, expected: &str, obj: *mut ffi::PyObject) -> Box<EncodeError> {
    EncodeError::about(
        py,
        ErrKind::Type,
        format!("expected {expected}, got {{got}}"),
        obj,
    )
}

fn value_error(py: Python<'_>, msg: String, obj: *mut ffi::PyObject) -> Box<EncodeError> {
    EncodeError::about(py, ErrKind::Value, msg, obj)
}

/// Turn a pending Python exception into a ValueError-kind EncodeError.
fn fetch_error(py: Python<'_>, what: &str) -> Box<EncodeError> {
    let msg = match PyErr::take(py) {
        Some(err) => format!("{what}: {err}"),
        None => what.to_string(),
    };
    EncodeError::new(ErrKind::Value, msg)
}

// ---- primitive writers -------------------------------------------------------------------

#[inline(always)]
pub fn put_long(buf: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    if z < 0x80 {
        buf.push(z as u8);
        return;
    }
    // At most 10 bytes: reserve once, then write without per-byte capacity checks.
    buf.reserve(10);
    let len = buf.len();
    // SAFETY: capacity >= len + 10 and a zigzag u64 takes at most 10 varint bytes.
    unsafe {
        let p = buf.as_mut_ptr().add(len);
        let mut i = 0;
        while z >= 0x80 {
            *p.add(i) = (z as u8) | 0x80;
            z >>= 7;
            i += 1;
        }
        *p.add(i) = z as u8;
        buf.set_len(len + i + 1);
    }
}

#[inline(always)]
fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_long(buf, b.len() as i64);
    buf.extend_from_slice(b);
}

// ---- Python accessors ---------------------------------------------------------------------

#[inline(always)]
unsafe fn is_type(obj: *mut ffi::PyObject, ty: *mut ffi::PyTypeObject) -> bool {
    ffi::Py_TYPE(obj) == ty
}

#[inline(always)]
unsafe fn is_str(obj: *mut ffi::PyObject) -> bool {
    is_type(obj, &raw mut ffi::PyUnicode_Type) || ffi::PyUnicode_Check(obj) != 0
}

#[inline(always)]
unsafe fn is_int(obj: *mut ffi::PyObject) -> bool {
    // bool is an int subclass but never an integer value here.
    is_type(obj, &raw mut ffi::PyLong_Type)
        || (ffi::PyLong_Check(obj) != 0 && !is_type(obj, &raw mut ffi::PyBool_Type))
}

#[inline(always)]
unsafe fn is_float(obj: *mut ffi::PyObject) -> bool {
    is_type(obj, &raw mut ffi::PyFloat_Type) || ffi::PyFloat_Check(obj) != 0
}

/// UTF-8 of a `str` (cached by CPython; ASCII strings are returned in place).
#[inline(always)]
unsafe fn str_utf8<'a>(py: Python<'_>, obj: *mut ffi::PyObject) -> EResult<&'a [u8]> {
    let mut size: ffi::Py_ssize_t = 0;
    let p = ffi::PyUnicode_AsUTF8AndSize(obj, &mut size);
    if p.is_null() {
        return Err(fetch_error(py, "cannot encode string as UTF-8"));
    }
    Ok(std::slice::from_raw_parts(p as *const u8, size as usize))
}

/// Bytes of a `bytes` or `bytearray`; None for other types.
#[inline(always)]
unsafe fn bytes_of<'a>(obj: *mut ffi::PyObject) -> Option<&'a [u8]> {
    if is_type(obj, &raw mut ffi::PyBytes_Type) || ffi::PyBytes_Check(obj) != 0 {
        let mut p: *mut std::os::raw::c_char = std::ptr::null_mut();
        let mut n: ffi::Py_ssize_t = 0;
        if ffi::PyBytes_AsStringAndSize(obj, &mut p, &mut n) != 0 {
            ffi::PyErr_Clear();
            return None;
        }
        Some(std::slice::from_raw_parts(p as *const u8, n as usize))
    } else if ffi::PyByteArray_Check(obj) != 0 {
        let n = ffi::PyByteArray_Size(obj);
        let p = ffi::PyByteArray_AsString(obj);
        if n == 0 || p.is_null() {
            return Some(&[]);
        }
        Some(std::slice::from_raw_parts(p as *const u8, n as usize))
    } else {
        None
    }
}

/// An int as i64: Ok(None) when it does not fit.
#[inline(always)]
unsafe fn int_value(py: Python<'_>, obj: *mut ffi::PyObject) -> EResult<Option<i64>> {
    let mut overflow: c_int = 0;
    let v = ffi::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
    if overflow != 0 {
        return Ok(None);
    }
    if v == -1 && !ffi::PyErr_Occurred().is_null() {
        return Err(fetch_error(py, "cannot read int"));
    }
    Ok(Some(v))
}

/// A float or int as f64 (the types Avro float/double accept).
#[inline(always)]
unsafe fn number_value(py: Python<'_>, obj: *mut ffi::PyObject, ty: &str) -> EResult<f64> {
    if is_float(obj) {
        // For float (and subclasses) this reads the value without calling back into Python.
        Ok(ffi::PyFloat_AsDouble(obj))
    } else if is_int(obj) {
        let v = ffi::PyLong_AsDouble(obj);
        if v == -1.0 && !ffi::PyErr_Occurred().is_null() {
            return Err(fetch_error(py, &format!("int out of range for {ty}")));
        }
        Ok(v)
    } else {
        Err(type_error(py, &format!("float or int for {ty}"), obj))
    }
}

#[inline(always)]
unsafe fn classify(obj: *mut ffi::PyObject) -> usize {
    let t = ffi::Py_TYPE(obj);
    if obj == ffi::Py_None() {
        K_NONE
    } else if t == &raw mut ffi::PyUnicode_Type {
        K_STR
    } else if t == &raw mut ffi::PyFloat_Type {
        K_FLOAT
    } else if t == &raw mut ffi::PyBool_Type {
        K_BOOL
    } else if t == &raw mut ffi::PyLong_Type {
        K_INT
    } else if ffi::PyTuple_Check(obj) != 0 {
        K_TUPLE
    } else if ffi::PyList_Check(obj) != 0 {
        K_LIST
    } else if ffi::PyDict_Check(obj) != 0 {
        K_DICT
    } else if ffi::PyUnicode_Check(obj) != 0 {
        K_STR
    } else if ffi::PyLong_Check(obj) != 0 {
        K_INT
    } else if ffi::PyFloat_Check(obj) != 0 {
        K_FLOAT
    } else if ffi::PyBytes_Check(obj) != 0 || ffi::PyByteArray_Check(obj) != 0 {
        K_BYTES
    } else {
        K_OTHER
    }
}

// ---- the encoder --------------------------------------------------------------------------

pub struct Writer<'a, 'py> {
    pub py: Python<'py>,
    pub prog: &'a Program,
}

impl<'a, 'py> Writer<'a, 'py> {
    /// Encode one value of the schema's root type.
    #[inline]
    pub unsafe fn root(&self, obj: *mut ffi::PyObject, buf: &mut Vec<u8>) -> EResult<()> {
        self.value(&self.prog.root, obj, buf, 0)
    }

    #[inline(always)]
    unsafe fn value(
        &self,
        node: &Node,
        obj: *mut ffi::PyObject,
        buf: &mut Vec<u8>,
        depth: u32,
    ) -> EResult<()> {
        let py = self.py;
        match node {
            Node::String => {
                if !is_str(obj) {
                    return Err(type_error(py, "str for string", obj));
                }
                put_bytes(buf, str_utf8(py, obj)?);
            }
            Node::Double => {
                let v = if is_type(obj, &raw mut ffi::PyFloat_Type) {
                    ffi::PyFloat_AsDouble(obj)
                } else {
                    number_value(py, obj, "double")?
                };
                buf.extend_from_slice(&v.to_le_bytes());
            }
            Node::Long => {
                if !is_int(obj) {
                    return Err(type_error(py, "int for long", obj));
                }
                match int_value(py, obj)? {
                    Some(v) => put_long(buf, v),
                    None => {
                        return Err(value_error(
                            py,
                            "{got} out of range for long (64-bit)".into(),
                            obj,
                        ))
                    }
                }
            }
            Node::Int => {
                if !is_int(obj) {
                    return Err(type_error(py, "int for int", obj));
                }
                match int_value(py, obj)? {
                    Some(v) if v >= i32::MIN as i64 && v <= i32::MAX as i64 => put_long(buf, v),
                    _ => {
                        return Err(value_error(
                            py,
                            "{got} out of range for int (32-bit)".into(),
                            obj,
                        ))
                    }
                }
            }
            Node::Boolean => {
                if obj == ffi::Py_True() {
                    buf.push(1);
                } else if obj == ffi::Py_False() {
                    buf.push(0);
                } else {
                    return Err(type_error(py, "bool for boolean", obj));
                }
            }
            Node::Null => {
                if obj != ffi::Py_None() {
                    return Err(type_error(py, "None for null", obj));
                }
            }
            Node::Float => {
                let v = number_value(py, obj, "float")?;
                let f = v as f32;
                if f.is_infinite() && !v.is_infinite() {
                    return Err(EncodeError::new(
                        ErrKind::Value,
                        format!("{v} out of range for float (32-bit)"),
                    ));
                }
                buf.extend_from_slice(&f.to_le_bytes());
            }
            Node::Bytes => match bytes_of(obj) {
                Some(b) => put_bytes(buf, b),
                None => return Err(type_error(py, "bytes or bytearray for bytes", obj)),
            },
            Node::Record(i) => self.record(*i, obj, buf, depth)?,
            Node::Enum(i) => {
                let named = &self.prog.named[*i];
                if !is_str(obj) {
                    return Err(type_error(
                        py,
                        &format!("str for enum {}", named.fullname),
                        obj,
                    ));
                }
                let s = str_utf8(py, obj)?;
                match named.enum_index(s) {
                    Some(idx) => put_long(buf, idx as i64),
                    None => {
                        return Err(value_error(
                            py,
                            format!("{{got}} is not a symbol of enum {}", named.fullname),
                            obj,
                        ))
                    }
                }
            }
            Node::Fixed(i) => {
                let named = &self.prog.named[*i];
                let size = match named.kind {
                    NamedKind::Fixed { size } => size,
                    _ => unreachable!(),
                };
                match bytes_of(obj) {
                    Some(b) if b.len() == size => buf.extend_from_slice(b),
                    Some(b) => {
                        return Err(EncodeError::new(
                            ErrKind::Value,
                            format!(
                                "fixed {} needs {size} bytes, got {}",
                                named.fullname,
                                b.len()
                            ),
                        ))
                    }
                    None => {
                        return Err(type_error(
                            py,
                            &format!("bytes for fixed {}", named.fullname),
                            obj,
                        ))
                    }
                }
            }
            Node::Array(item) => self.array(item, obj, buf, depth)?,
            Node::Map(values) => self.map(values, obj, buf, depth)?,
            Node::Union(u) => self.union(u, obj, buf, depth)?,
        }
        Ok(())
    }

    #[inline(always)]
    unsafe fn record(
        &self,
        index: usize,
        obj: *mut ffi::PyObject,
        buf: &mut Vec<u8>,
        depth: u32,
    ) -> EResult<()> {
        let named = &self.prog.named[index];
        let fields = match &named.kind {
            NamedKind::Record { fields } => fields,
            _ => unreachable!(),
        };
        if depth > MAX_DEPTH {
            return Err(EncodeError::new(
                ErrKind::Value,
                format!("nesting deeper than {MAX_DEPTH}"),
            ));
        }
        if ffi::PyTuple_Check(obj) == 0 {
            return Err(type_error(
                self.py,
                &format!(
                    "a tuple of {} values for record {}",
                    fields.len(),
                    named.fullname
                ),
                obj,
            ));
        }
        let n = ffi::PyTuple_Size(obj) as usize;
        if n != fields.len() {
            let detail = if n < fields.len() {
                let missing: Vec<&str> = fields[n..].iter().map(|f| f.name.as_str()).collect();
                format!("missing field(s) {}", missing.join(", "))
            } else {
                format!(
                    "{} extra value(s) after field {}",
                    n - fields.len(),
                    fields.last().map_or("", |f| &f.name)
                )
            };
            return Err(EncodeError::new(
                ErrKind::Type,
                format!(
                    "record {} has {} fields, got a tuple of {n}: {detail}",
                    named.fullname,
                    fields.len()
                ),
            ));
        }
        for (i, f) in fields.iter().enumerate() {
            let item = ffi::PyTuple_GetItem(obj, i as ffi::Py_ssize_t);
            with_seg(self.value(&f.node, item, buf, depth + 1), || f.name.clone())?;
        }
        Ok(())
    }

    unsafe fn array(
        &self,
        item: &Node,
        obj: *mut ffi::PyObject,
        buf: &mut Vec<u8>,
        depth: u32,
    ) -> EResult<()> {
        if depth > MAX_DEPTH {
            return Err(EncodeError::new(
                ErrKind::Value,
                format!("nesting deeper than {MAX_DEPTH}"),
            ));
        }
        let (n, get): (
            ffi::Py_ssize_t,
            unsafe extern "C" fn(*mut ffi::PyObject, ffi::Py_ssize_t) -> *mut ffi::PyObject,
        ) = if ffi::PyList_Check(obj) != 0 {
            (ffi::PyList_Size(obj), ffi::PyList_GetItem)
        } else if ffi::PyTuple_Check(obj) != 0 {
            (ffi::PyTuple_Size(obj), ffi::PyTuple_GetItem)
        } else {
            return Err(type_error(self.py, "list or tuple for array", obj));
        };
        if n > 0 {
            put_long(buf, n as i64);
            for i in 0..n {
                let it = get(obj, i);
                with_seg(self.value(item, it, buf, depth + 1), || format!("[{i}]"))?;
            }
        }
        put_long(buf, 0);
        Ok(())
    }

    unsafe fn map(
        &self,
        values: &Node,
        obj: *mut ffi::PyObject,
        buf: &mut Vec<u8>,
        depth: u32,
    ) -> EResult<()> {
        if depth > MAX_DEPTH {
            return Err(EncodeError::new(
                ErrKind::Value,
                format!("nesting deeper than {MAX_DEPTH}"),
            ));
        }
        if ffi::PyDict_Check(obj) == 0 {
            return Err(type_error(self.py, "dict for map", obj));
        }
        let n = ffi::PyDict_Size(obj);
        if n > 0 {
            put_long(buf, n as i64);
            let mut pos: ffi::Py_ssize_t = 0;
            let mut key: *mut ffi::PyObject = std::ptr::null_mut();
            let mut val: *mut ffi::PyObject = std::ptr::null_mut();
            while ffi::PyDict_Next(obj, &mut pos, &mut key, &mut val) != 0 {
                if !is_str(key) {
                    return Err(type_error(self.py, "str map key", key));
                }
                let k = str_utf8(self.py, key)?;
                put_bytes(buf, k);
                with_seg(self.value(values, val, buf, depth + 1), || {
                    format!("[{:?}]", String::from_utf8_lossy(k))
                })?;
            }
        }
        put_long(buf, 0);
        Ok(())
    }

    unsafe fn union(
        &self,
        u: &Union,
        obj: *mut ffi::PyObject,
        buf: &mut Vec<u8>,
        depth: u32,
    ) -> EResult<()> {
        let kind = classify(obj);
        let cands = &u.candidates[kind];
        if cands.is_empty() {
            return Err(type_error(
                self.py,
                &format!("a value for union [{}]", u.labels.join(", ")),
                obj,
            ));
        }
        if cands.len() == 1 {
            // The common case (["null", X]): one branch for this kind of value.
            let b = cands[0] as usize;
            put_long(buf, b as i64);
            return self.value(&u.branches[b], obj, buf, depth);
        }
        let mark = buf.len();
        let mut first: Option<Box<EncodeError>> = None;
        for &b in cands {
            let b = b as usize;
            put_long(buf, b as i64);
            match self.value(&u.branches[b], obj, buf, depth) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    buf.truncate(mark);
                    if first.is_none() {
                        first = Some(e);
                    }
                }
            }
        }
        let cause = first.expect("at least one candidate");
        let mut e = EncodeError::about(
            self.py,
            cause.kind,
            format!(
                "no branch of union [{}] accepts {{got}}",
                u.labels.join(", ")
            ),
            obj,
        );
        e.cause = Some(cause);
        Err(e)
    }
}
