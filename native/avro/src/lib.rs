//! atomfast_avro._native: Avro binary encoding of Python tuples, a whole batch per call.
//!
//! `Encoder(schemas, prefixes)` parses each schema JSON once into a compact program
//! (see `schema.rs`); `encode`, `encode_many` and `encode_block` walk that program over the
//! tuples of a batch, appending to one Rust buffer, and hand bytes to Python only when the
//! whole batch has been encoded (an error leaves no output behind).

mod encode;
mod schema;

use std::cell::RefCell;

use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList};

use encode::{EncodeError, ErrKind, Writer};
use schema::Program;

/// Reused output buffers: encoded bytes and the end offset of each value in a batch.
struct Scratch {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            buf: Vec::with_capacity(16 * 1024),
            ends: Vec::with_capacity(256),
        }
    }

    fn trim(&mut self) {
        if self.buf.capacity() > 4 * 1024 * 1024 {
            self.buf = Vec::with_capacity(16 * 1024);
        }
        if self.ends.capacity() > 64 * 1024 {
            self.ends = Vec::with_capacity(256);
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// Run `f` with this thread's scratch buffers (fresh ones if they are in use).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => {
            s.buf.clear();
            s.ends.clear();
            let r = f(&mut s);
            s.trim();
            r
        }
        Err(_) => f(&mut Scratch::new()),
    })
}

/// The records of a batch: a list or tuple read in place, any other iterable collected.
enum Batch<'py> {
    List(*mut ffi::PyObject, usize),
    Tuple(*mut ffi::PyObject, usize),
    Owned(Vec<Bound<'py, PyAny>>),
}

impl<'py> Batch<'py> {
    fn new(records: &Bound<'py, PyAny>) -> PyResult<Self> {
        let p = records.as_ptr();
        unsafe {
            if ffi::PyList_Check(p) != 0 {
                return Ok(Batch::List(p, ffi::PyList_Size(p) as usize));
            }
            if ffi::PyTuple_Check(p) != 0 {
                return Ok(Batch::Tuple(p, ffi::PyTuple_Size(p) as usize));
            }
        }
        let items = records
            .try_iter()
            .map_err(|_| PyTypeError::new_err("records must be a sequence of tuples"))?
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Batch::Owned(items))
    }

    fn len(&self) -> usize {
        match self {
            Batch::List(_, n) | Batch::Tuple(_, n) => *n,
            Batch::Owned(v) => v.len(),
        }
    }

    /// Borrowed item `i` (< len). No Python code runs while a batch is encoded, so the
    /// container cannot change under us.
    #[inline(always)]
    unsafe fn get(&self, i: usize) -> *mut ffi::PyObject {
        match self {
            Batch::List(p, _) => ffi::PyList_GetItem(*p, i as ffi::Py_ssize_t),
            Batch::Tuple(p, _) => ffi::PyTuple_GetItem(*p, i as ffi::Py_ssize_t),
            Batch::Owned(v) => v[i].as_ptr(),
        }
    }
}

/// `f"{r[0]}:{r[1]}"` as bytes for each record `r` of a batch (records already encoded, so
/// each is a tuple whose first two fields are strings).
fn message_keys<'py>(py: Python<'py>, batch: &Batch<'py>) -> PyResult<Bound<'py, PyList>> {
    let n = batch.len();
    let mut key: Vec<u8> = Vec::with_capacity(64);
    // SAFETY: borrowed items of a container we hold; no Python code runs in the loop.
    unsafe {
        let list = ffi::PyList_New(n as ffi::Py_ssize_t);
        let list = Bound::from_owned_ptr_or_err(py, list)?;
        let mut last: (*mut ffi::PyObject, *mut ffi::PyObject, *mut ffi::PyObject) =
            (std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut());
        for i in 0..n {
            let r = batch.get(i);
            if ffi::PyTuple_Check(r) == 0 || ffi::PyTuple_Size(r) < 2 {
                return Err(PyTypeError::new_err(format!("record {i}: not a tuple of two fields or more")));
            }
            let a = ffi::PyTuple_GetItem(r, 0);
            let b = ffi::PyTuple_GetItem(r, 1);
            if a != last.0 || b != last.1 {
                let mut la: ffi::Py_ssize_t = 0;
                let mut lb: ffi::Py_ssize_t = 0;
                let pa = ffi::PyUnicode_AsUTF8AndSize(a, &mut la);
                if pa.is_null() {
                    return Err(PyErr::fetch(py));
                }
                let pb = ffi::PyUnicode_AsUTF8AndSize(b, &mut lb);
                if pb.is_null() {
                    return Err(PyErr::fetch(py));
                }
                key.clear();
                key.extend_from_slice(std::slice::from_raw_parts(pa as *const u8, la as usize));
                key.push(b':');
                key.extend_from_slice(std::slice::from_raw_parts(pb as *const u8, lb as usize));
                let k = ffi::PyBytes_FromStringAndSize(key.as_ptr() as *const _, key.len() as ffi::Py_ssize_t);
                if k.is_null() {
                    return Err(PyErr::fetch(py));
                }
                last = (a, b, k); // the list owns k; we keep a borrowed pointer to share it
                ffi::PyList_SetItem(list.as_ptr(), i as ffi::Py_ssize_t, k);
            } else {
                ffi::Py_INCREF(last.2);
                ffi::PyList_SetItem(list.as_ptr(), i as ffi::Py_ssize_t, last.2);
            }
        }
        Ok(list.cast_into_unchecked::<PyList>())
    }
}

/// Avro binary encoder for a fixed list of schemas.
///
/// `Encoder(schemas, prefixes=None)`: `schemas` are schema JSON texts, `prefixes[i]` is
/// prepended to every value `encode`/`encode_many` produce for schema `i` (the framing:
/// single-object or Confluent header). Records are tuples (NamedTuples) in field order.
#[pyclass(module = "atomfast_avro._native")]
pub struct Encoder {
    programs: Vec<Program>,
    prefixes: Vec<Vec<u8>>,
}

fn prefix_bytes(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        Ok(b.as_bytes().to_vec())
    } else if let Ok(b) = obj.cast::<PyByteArray>() {
        Ok(b.to_vec())
    } else {
        Err(PyTypeError::new_err("a prefix must be bytes"))
    }
}

impl Encoder {
    #[inline(always)]
    fn program(&self, schema: usize) -> PyResult<&Program> {
        self.programs.get(schema).ok_or_else(|| {
            PyIndexError::new_err(format!(
                "schema index {schema} out of range ({} schemas)",
                self.programs.len()
            ))
        })
    }

    fn error(
        &self,
        py: Python<'_>,
        schema: usize,
        record: Option<usize>,
        e: &EncodeError,
    ) -> PyErr {
        let prog = &self.programs[schema];
        let mut msg = format!("schema {schema} ({})", prog.name);
        if let Some(i) = record {
            msg.push_str(&format!(", record {i}"));
        }
        let path = e.path_string();
        if !path.is_empty() {
            msg.push_str(&format!(", field '{path}'"));
        }
        msg.push_str(": ");
        msg.push_str(&e.render(py));
        match e.kind {
            ErrKind::Type => PyTypeError::new_err(msg),
            ErrKind::Value => PyValueError::new_err(msg),
        }
    }

    /// Encode every record of the batch into `s.buf`, each preceded by `prefix`, recording
    /// the end offset of each value in `s.ends`.
    fn encode_batch(
        &self,
        py: Python<'_>,
        schema: usize,
        batch: &Batch<'_>,
        prefix: &[u8],
        s: &mut Scratch,
    ) -> PyResult<()> {
        let prog = self.program(schema)?;
        let w = Writer { py, prog };
        let n = batch.len();
        s.ends.reserve(n);
        for i in 0..n {
            s.buf.extend_from_slice(prefix);
            // SAFETY: i < len; items are borrowed from a container we hold.
            let r = unsafe { w.root(batch.get(i), &mut s.buf) };
            if let Err(e) = r {
                return Err(self.error(py, schema, Some(i), &e));
            }
            s.ends.push(s.buf.len());
        }
        Ok(())
    }
}

#[pymethods]
impl Encoder {
    #[new]
    #[pyo3(signature = (schemas, prefixes = None))]
    fn new(schemas: Vec<String>, prefixes: Option<Vec<Bound<'_, PyAny>>>) -> PyResult<Self> {
        let mut programs = Vec::with_capacity(schemas.len());
        for (i, text) in schemas.iter().enumerate() {
            programs.push(
                schema::parse(text)
                    .map_err(|e| PyValueError::new_err(format!("schema {i}: {e}")))?,
            );
        }
        let prefixes = match prefixes {
            None => vec![Vec::new(); programs.len()],
            Some(p) => {
                if p.len() != programs.len() {
                    return Err(PyValueError::new_err(format!(
                        "{} prefixes for {} schemas",
                        p.len(),
                        programs.len()
                    )));
                }
                p.iter().map(prefix_bytes).collect::<PyResult<_>>()?
            }
        };
        Ok(Encoder { programs, prefixes })
    }

    /// Encode one record: prefix + Avro body.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        schema: usize,
        record: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let prog = self.program(schema)?;
        let prefix = &self.prefixes[schema];
        with_scratch(|s| {
            s.buf.extend_from_slice(prefix);
            let w = Writer { py, prog };
            // SAFETY: record is a live object; see encode.rs for the borrowing rules.
            match unsafe { w.root(record.as_ptr(), &mut s.buf) } {
                Ok(()) => Ok(PyBytes::new(py, &s.buf)),
                Err(e) => Err(self.error(py, schema, None, &e)),
            }
        })
    }

    /// Encode a batch: one `bytes` (prefix + body) per record. All or nothing.
    fn encode_many<'py>(
        &self,
        py: Python<'py>,
        schema: usize,
        records: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let batch = Batch::new(records)?;
        self.program(schema)?;
        let prefix = &self.prefixes[schema];
        with_scratch(|s| {
            self.encode_batch(py, schema, &batch, prefix, s)?;
            // SAFETY: standard list construction; every slot is filled before the list is
            // handed out, and the list is released on any failure.
            unsafe {
                let list = ffi::PyList_New(s.ends.len() as ffi::Py_ssize_t);
                let list = Bound::from_owned_ptr_or_err(py, list)?;
                let mut start = 0usize;
                for (i, &end) in s.ends.iter().enumerate() {
                    let chunk = &s.buf[start..end];
                    let b = ffi::PyBytes_FromStringAndSize(
                        chunk.as_ptr() as *const _,
                        chunk.len() as ffi::Py_ssize_t,
                    );
                    if b.is_null() {
                        return Err(PyErr::fetch(py));
                    }
                    ffi::PyList_SetItem(list.as_ptr(), i as ffi::Py_ssize_t, b);
                    start = end;
                }
                Ok(list.cast_into_unchecked::<PyList>())
            }
        })
    }

    /// Encode a batch as `encode_many` does, and give each record its message key too:
    /// `(keys, values)`, where a key is `f"{record[0]}:{record[1]}"` as UTF-8 bytes (the
    /// Kafka key `exchange:symbol`). Consecutive records naming the same two string objects
    /// share one key object. All or nothing.
    fn encode_keyed<'py>(
        &self,
        py: Python<'py>,
        schema: usize,
        records: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
        let values = self.encode_many(py, schema, records)?;
        let batch = Batch::new(records)?;
        let keys = message_keys(py, &batch)?;
        Ok((keys, values))
    }

    /// Encode a batch as the concatenation of the bodies (no prefix): the data of an Avro
    /// object container file block.
    fn encode_block<'py>(
        &self,
        py: Python<'py>,
        schema: usize,
        records: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let batch = Batch::new(records)?;
        with_scratch(|s| {
            self.encode_batch(py, schema, &batch, &[], s)?;
            Ok(PyBytes::new(py, &s.buf))
        })
    }

    /// Replace the prefix of schema `schema`.
    fn set_prefix(&mut self, schema: usize, prefix: &Bound<'_, PyAny>) -> PyResult<()> {
        self.program(schema)?;
        self.prefixes[schema] = prefix_bytes(prefix)?;
        Ok(())
    }

    /// The prefix of schema `schema`.
    fn prefix<'py>(&self, py: Python<'py>, schema: usize) -> PyResult<Bound<'py, PyBytes>> {
        self.program(schema)?;
        Ok(PyBytes::new(py, &self.prefixes[schema]))
    }

    /// Full names of the schemas' top-level types, in order.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.programs.iter().map(|p| p.name.clone()).collect()
    }

    fn __len__(&self) -> usize {
        self.programs.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "Encoder({} schemas: {})",
            self.programs.len(),
            self.names().join(", ")
        )
    }
}

#[pymodule]
mod _native {
    #[pymodule_export]
    use super::Encoder;

    #[allow(non_upper_case_globals)]
    #[pymodule_export]
    const __version__: &str = env!("CARGO_PKG_VERSION");
}
