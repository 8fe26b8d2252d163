//! The ledger's records encoded from their slots: `State.value_of`'s `encode(record.to_value())`
//! (crev.ledger.records, the reference) without building the list.
//!
//! A `RecordCodec` learns each record class once (`register`): its fields in `to_value`'s order,
//! which of them hold a list of records of another registered class, and whether the last field
//! is left out when it is empty (`Account.blind`, `Supply.jpy_blind`). Each field's place in the
//! instance is found by probing, not assumed: a fresh instance gets a distinct object in each
//! field through `object.__setattr__`, and the one word of the instance that holds it is the
//! field's offset. Encoding then reads each field straight from its slot, as the interpreter's
//! specialised slot load does, where the C API's generic attribute lookup cost more than the
//! bytecode it replaced (docs/benchmarks.md, "the reading rule in the kernel, tried").
//!
//! *Exact or silent*, as `codec::encode`: an instance of another class (a subclass too), an unset
//! field, or a value `codec::put` leaves to cbor2 gives `None`, and the caller encodes the
//! reference's way. crev.ledger.state checks each registration against `to_value` on a probe
//! record when it is imported, and tests/native/test_record_codec.py on random records.

use std::collections::HashMap;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple, PyType};

use crate::codec::{head, put};

struct Field {
    offset: usize,
    /// the type (pointer) of the records this field lists, if it lists records
    nested: Option<usize>,
}

struct Layout {
    /// constant items before the fields (an event's type), encoded, and how many
    prefix: Vec<u8>,
    prefix_items: usize,
    fields: Vec<Field>,
    optional_last: bool,
    _cls: Py<PyType>, // keeps the type (and so its pointer, the map's key) alive
}

/// Encoders of registered record classes (see the module's documentation).
#[pyclass(module = "crev_native")]
pub struct RecordCodec {
    layouts: HashMap<usize, Layout>,
}

/// The object in the slot at `offset` of `obj` (None if the slot is unset).
///
/// Safety: `obj` is an instance of exactly the class whose probed slot offsets these are.
pub(crate) unsafe fn slot<'py>(obj: &Bound<'py, PyAny>, offset: usize) -> Option<Bound<'py, PyAny>> {
    unsafe {
        let p = *(obj.as_ptr() as *const u8).add(offset).cast::<*mut ffi::PyObject>();
        if p.is_null() { None } else { Some(Bound::from_borrowed_ptr(obj.py(), p)) }
    }
}

/// The byte offset of each of `names` in instances of `cls`, found by probing a fresh instance.
pub(crate) fn probe_offsets(cls: &Bound<'_, PyType>, names: &[Bound<'_, PyString>]) -> PyResult<Vec<usize>> {
    let py = cls.py();
    let object_new = py.get_type::<pyo3::types::PyAny>().getattr(pyo3::intern!(py, "__new__"))?;
    if !cls.getattr(pyo3::intern!(py, "__new__"))?.is(&object_new) {
        return Err(PyTypeError::new_err("RecordCodec learns plain classes only"));
    }
    let basic: usize = cls.getattr(pyo3::intern!(py, "__basicsize__"))?.extract()?;
    let probe = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyType_GenericAlloc(cls.as_type_ptr(), 0))? };
    let object = py.get_type::<pyo3::types::PyAny>();
    let marks: Vec<Bound<'_, PyAny>> = names.iter().map(|_| object.call0()).collect::<PyResult<_>>()?;
    for (n, m) in names.iter().zip(&marks) {
        if unsafe { ffi::PyObject_GenericSetAttr(probe.as_ptr(), n.as_ptr(), m.as_ptr()) } != 0 {
            return Err(PyErr::fetch(py));
        }
    }
    let word = std::mem::size_of::<*mut ffi::PyObject>();
    let base = probe.as_ptr() as *const u8;
    let mut out = Vec::with_capacity(names.len());
    for (n, m) in names.iter().zip(&marks) {
        // the words of the instance after its header (refcount and type): where slots live
        let found: Vec<usize> = (2 * word..basic.saturating_sub(word - 1)).step_by(word)
            .filter(|&off| unsafe { *base.add(off).cast::<*mut ffi::PyObject>() } == m.as_ptr())
            .collect();
        match found[..] {
            [off] => out.push(off),
            _ => return Err(PyValueError::new_err(format!("{n} is not a slot of {}", cls.name()?))),
        }
    }
    Ok(out)
}

impl RecordCodec {
    /// Append `obj`'s canonical encoding; false where the reference must encode it.
    fn put_record(&self, out: &mut Vec<u8>, obj: &Bound<'_, PyAny>, depth: u32) -> bool {
        if depth > 8 {
            return false;
        }
        let Some(layout) = self.layouts.get(&(obj.get_type_ptr() as usize)) else { return false };
        let mut count = layout.fields.len();
        if layout.optional_last {
            let Some(last) = layout.fields.last() else { return false };
            let Some(v) = (unsafe { slot(obj, last.offset) }) else { return false };
            let Ok(b) = v.cast_exact::<PyBytes>() else { return false };
            if b.as_bytes().is_empty() {
                count -= 1;
            }
        }
        head(out, 4, (layout.prefix_items + count) as u64);
        out.extend_from_slice(&layout.prefix);
        for f in &layout.fields[..count] {
            let Some(v) = (unsafe { slot(obj, f.offset) }) else { return false };
            match f.nested {
                None => {
                    if !put(out, &v, depth + 1) {
                        return false;
                    }
                }
                Some(tp) => {
                    let Ok(items) = v.cast_exact::<PyList>() else { return false };
                    head(out, 4, items.len() as u64);
                    for item in items.iter() {
                        if item.get_type_ptr() as usize != tp || !self.put_record(out, &item, depth + 1) {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }

    /// `codec::put`, but a registered record anywhere in a list or tuple is encoded as its
    /// `to_value` would be.
    fn put_any(&self, out: &mut Vec<u8>, v: &Bound<'_, PyAny>, depth: u32) -> bool {
        if depth > 32 {
            return false;
        }
        if self.layouts.contains_key(&(v.get_type_ptr() as usize)) {
            return self.put_record(out, v, depth);
        }
        if let Ok(l) = v.cast_exact::<PyList>() {
            head(out, 4, l.len() as u64);
            return l.iter().all(|x| self.put_any(out, &x, depth + 1));
        }
        if let Ok(t) = v.cast_exact::<PyTuple>() {
            head(out, 4, t.len() as u64);
            return t.iter().all(|x| self.put_any(out, &x, depth + 1));
        }
        put(out, v, depth)
    }

    fn encoded<'py>(&self, obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyBytes>> {
        let mut out = Vec::with_capacity(256);
        if self.put_record(&mut out, obj, 0) { Some(PyBytes::new(obj.py(), &out)) } else { None }
    }
}

/// `<name>/<n>` split at its last "/" with `n` 1–18 ASCII digits (and, if `canonical`, no leading
/// zero), as (name, n); None where the reference must decide.
fn split_number(rest: &str, canonical: bool) -> Option<(&str, i64)> {
    let (name, n) = rest.rsplit_once('/')?;
    let b = n.as_bytes();
    if b.is_empty() || b.len() > 18 || !b.iter().all(u8::is_ascii_digit) || (canonical && b[0] == b'0' && b.len() > 1) {
        return None;
    }
    Some((name, n.parse().ok()?))
}

/// `<name>/<n>` with `n` a canonical decimal (as `crev.ledger.state._num_key` takes it, in ASCII)
/// as the map key (name, n); None where the reference must decide.
fn num_key<'py>(py: Python<'py>, rest: &str) -> Option<Bound<'py, PyTuple>> {
    let (name, n) = split_number(rest, true)?;
    PyTuple::new(py, [PyString::new(py, name).into_any(), n.into_pyobject(py).ok()?.into_any()]).ok()
}

#[pymethods]
impl RecordCodec {
    #[new]
    fn new() -> Self {
        RecordCodec { layouts: HashMap::new() }
    }

    /// Learn `cls`: `names`, its fields in `to_value`'s order; `nested`, for each field None or the
    /// (registered) class of the records it lists; `optional_last`, whether the last field (bytes)
    /// is left out when empty; `prefix`, constant items `to_value` puts before the fields (an
    /// event's type).
    #[pyo3(signature = (cls, names, nested, optional_last, prefix=None))]
    fn register(&mut self, cls: &Bound<'_, PyType>, names: Vec<Bound<'_, PyString>>, nested: Vec<Option<Bound<'_, PyType>>>,
                optional_last: bool, prefix: Option<&Bound<'_, PyTuple>>) -> PyResult<()> {
        if names.len() != nested.len() {
            return Err(PyValueError::new_err("one nested entry a field"));
        }
        let mut pre = Vec::new();
        let prefix_items = prefix.map_or(0, |p| p.len());
        for item in prefix.into_iter().flat_map(|p| p.iter()) {
            if !put(&mut pre, &item, 1) {
                return Err(PyValueError::new_err("a prefix item this codec cannot encode"));
            }
        }
        if names.is_empty() && (prefix_items == 0 || optional_last) {
            return Err(PyValueError::new_err("at least one field or prefix item, and a last field if optional"));
        }
        let offsets = probe_offsets(cls, &names)?;
        let mut fields = Vec::with_capacity(names.len());
        for (off, n) in offsets.into_iter().zip(nested) {
            let nested = match n {
                None => None,
                Some(t) => {
                    let p = t.as_type_ptr() as usize;
                    if !self.layouts.contains_key(&p) {
                        return Err(PyValueError::new_err(format!("register {} first", t.name()?)));
                    }
                    Some(p)
                }
            };
            fields.push(Field { offset: off, nested });
        }
        self.layouts.insert(cls.as_type_ptr() as usize,
                            Layout { prefix: pre, prefix_items, fields, optional_last, _cls: cls.clone().unbind() });
        Ok(())
    }

    /// `encode(obj.to_value())` for an instance of exactly a registered class; None otherwise, or
    /// where a value is one the reference encodes (a float, a subclass, an integer beyond 64 bits).
    fn encode<'py>(&self, obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyBytes>> {
        self.encoded(obj)
    }

    /// `encode(value)` where each registered record anywhere in `value`'s lists and tuples stands
    /// for its `to_value` (a block's results with their events); None where the reference must
    /// encode it.
    fn encode_value<'py>(&self, value: &Bound<'py, PyAny>) -> Option<Bound<'py, PyBytes>> {
        let mut out = Vec::with_capacity(512);
        if self.put_any(&mut out, value, 0) { Some(PyBytes::new(value.py(), &out)) } else { None }
    }

    /// For each state key of `keys`, the canonical bytes of its record, where this codec can tell:
    /// `maps` gives each kind's map by its key prefix ("a", "d", "l": by id; "r", "v": by
    /// (id, n)) and "s" the supply record. None where the caller must ask `State.value_of`: another
    /// kind, a record the map does not hold now (removed, or on disk), a key not in canonical
    /// form, or a record this codec leaves to the reference. A map is read as a dict (a subclass's
    /// `get` and `__missing__` are not called).
    fn values_of<'py>(&self, maps: &Bound<'py, PyDict>, keys: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyList>> {
        let py = maps.py();
        let mut by_kind: [Option<Bound<'py, PyDict>>; 5] = [None, None, None, None, None];
        for (i, k) in ["a", "d", "l", "r", "v"].iter().enumerate() {
            if let Some(m) = maps.get_item(k)? {
                by_kind[i] = Some(m.cast_into::<PyDict>().map_err(PyErr::from)?);
            }
        }
        let supply = maps.get_item("s")?;
        let out = PyList::empty(py);
        for key in keys.iter() {
            let key = key.cast_into::<PyString>().map_err(PyErr::from)?;
            let s = key.to_str()?;
            let record = if s == "s" {
                supply.clone()
            } else {
                match s.split_once('/') {
                    Some((kind, rest)) => {
                        let (i, numbered) = match kind {
                            "a" => (0, false),
                            "d" => (1, false),
                            "l" => (2, false),
                            "r" => (3, true),
                            "v" => (4, true),
                            _ => (usize::MAX, false),
                        };
                        match by_kind.get(i).and_then(Option::as_ref) {
                            None => None,
                            Some(map) if numbered => match num_key(py, rest) {
                                Some(k) => map.get_item(k)?,
                                None => None,
                            },
                            Some(map) => map.get_item(rest)?,
                        }
                    }
                    None => None,
                }
            };
            match record.and_then(|r| self.encoded(&r)) {
                Some(b) => out.append(b)?,
                None => out.append(py.None())?,
            }
        }
        Ok(out)
    }
}

/// `crev.ledger.snapshot.map_key` of each state key of `keys` whose kind (its first character,
/// then "/") is one of `kinds`, grouped by kind: `(device, n)` for "r", "v" and "c", `(account,
/// market)` for "b", the rest of the key otherwise. Returns (kind → map keys, the keys of those
/// kinds left to the reference): an "r", "v" or "c" key whose number is not 1–18 ASCII digits, or
/// that has no second "/". Keys of other kinds are skipped, as `lazystate.evict` skips them.
#[pyfunction]
pub fn map_keys<'py>(keys: &Bound<'py, PyAny>, kinds: &str) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyList>)> {
    let py = keys.py();
    let out = PyDict::new(py);
    let left = PyList::empty(py);
    let mut lists: Vec<(char, Bound<'py, PyList>)> = Vec::new();
    for c in kinds.chars() {
        let l = PyList::empty(py);
        out.set_item(c.to_string(), &l)?;
        lists.push((c, l));
    }
    for key in keys.try_iter()? {
        let key = key?;
        let s = key.cast::<PyString>()?.to_str()?;
        let b = s.as_bytes();
        if b.len() < 2 || b[1] != b'/' {
            continue;
        }
        let kind = b[0] as char;
        let Some((_, list)) = lists.iter().find(|(c, _)| *c == kind) else { continue };
        let rest = &s[2..];
        match kind {
            'r' | 'v' | 'c' => {
                match split_number(rest, false) {  // `map_key`'s int() takes leading zeros too
                    Some((name, n)) => list.append((name, n))?,
                    None => left.append(&key)?,
                }
            }
            'b' => match rest.split_once('/') {
                Some((acct, market)) => list.append((acct, market))?,
                None => list.append((rest, ""))?,
            },
            _ => list.append(rest)?,
        }
    }
    Ok((out, left))
}
