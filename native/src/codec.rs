//! crev's canonical CBOR (docs/wire-format.md; `crev.core.encoding` is the reference) off the
//! interpreter's slow paths: `encode` of a value and `parse_readings_tx`, the decode + canonical
//! check + shape check of a `submit_readings` transaction.
//!
//! Both are *exact or silent*: where they cannot produce exactly what the Python reference
//! produces they return `None`, and the reference runs. `encode` handles the exact built-in types
//! crev encodes (int within ±2^64, bool, None, str, bytes, list, tuple) and returns `None` for any
//! other (a float, a subclass, a big integer, a dict), so its bytes equal
//! `cbor2.dumps(value, canonical=True)` whenever it returns bytes. `parse_readings_tx` accepts only
//! a batch every element of which is canonical and well formed; anything else (another kind,
//! one malformed reading, a non-shortest head, a tag, a float, trailing bytes) is left to the
//! reference, which names the field and the reason. tests/native/ compares the two.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyList, PyString, PyTuple};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Deeper values are left to cbor2 (crev's deepest message nests 5 arrays).
const MAX_DEPTH: u32 = 32;

pub(crate) fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n < 0x1_0000 {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n < 0x1_0000_0000 {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Append the canonical encoding of `v`; false if `v` holds anything but the handled exact types.
pub(crate) fn put(out: &mut Vec<u8>, v: &Bound<'_, PyAny>, depth: u32) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    if let Ok(s) = v.cast_exact::<PyString>() {
        let Ok(t) = s.to_str() else { return false }; // a lone surrogate: cbor2 raises, as it will
        head(out, 3, t.len() as u64);
        out.extend_from_slice(t.as_bytes());
        return true;
    }
    if let Ok(b) = v.cast_exact::<PyBytes>() {
        let b = b.as_bytes();
        head(out, 2, b.len() as u64);
        out.extend_from_slice(b);
        return true;
    }
    if let Ok(b) = v.cast_exact::<PyBool>() {
        out.push(if b.is_true() { 0xf5 } else { 0xf4 });
        return true;
    }
    if v.is_exact_instance_of::<pyo3::types::PyInt>() {
        // within ±2^63 without raising (an OverflowError costs more than the whole encoding)
        let mut overflow: std::os::raw::c_int = 0;
        let n = unsafe { pyo3::ffi::PyLong_AsLongLongAndOverflow(v.as_ptr(), &mut overflow) };
        if overflow == 0 {
            if n >= 0 {
                head(out, 0, n as u64);
            } else {
                head(out, 1, (-1 - n) as u64); // CBOR's −1 − n
            }
            return true;
        }
        let n = unsafe { pyo3::ffi::PyLong_AsUnsignedLongLong(v.as_ptr()) };
        if n != u64::MAX || unsafe { pyo3::ffi::PyErr_Occurred() }.is_null() {
            head(out, 0, n); // 2^63 … 2^64 − 1
            return true;
        }
        unsafe { pyo3::ffi::PyErr_Clear() }; // below −2^63 or at 2^64 and beyond: left to cbor2
        return false;
    }
    if let Ok(l) = v.cast_exact::<PyList>() {
        head(out, 4, l.len() as u64);
        return l.iter().all(|x| put(out, &x, depth + 1));
    }
    if let Ok(t) = v.cast_exact::<PyTuple>() {
        head(out, 4, t.len() as u64);
        return t.iter().all(|x| put(out, &x, depth + 1));
    }
    if v.is_none() {
        out.push(0xf6);
        return true;
    }
    false
}

/// The canonical CBOR bytes of `value`, equal to `cbor2.dumps(value, canonical=True)`, or None
/// where `value` holds a type this encoder leaves to cbor2.
#[pyfunction]
pub fn encode<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> Option<Bound<'py, PyBytes>> {
    let mut out = Vec::with_capacity(128);
    if put(&mut out, value, 0) { Some(PyBytes::new(py, &out)) } else { None }
}

// --- submit_readings ----------------------------------------------------------------------------

/// A cursor over canonical CBOR: every read fails (None) on anything non-shortest or unexpected.
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    /// A head of `major` in its shortest form: its argument.
    fn head(&mut self, major: u8) -> Option<u64> {
        let ib = *self.b.get(self.i)?;
        if ib >> 5 != major {
            return None;
        }
        let ai = ib & 31;
        self.i += 1;
        let (n, min) = match ai {
            0..=23 => return Some(ai as u64),
            24 => (1, 24u64),
            25 => (2, 0x100),
            26 => (4, 0x1_0000),
            27 => (8, 0x1_0000_0000),
            _ => return None, // indefinite lengths and reserved values
        };
        let s = self.b.get(self.i..self.i + n)?;
        self.i += n;
        let v = s.iter().fold(0u64, |a, &x| (a << 8) | x as u64);
        if v < min { None } else { Some(v) }
    }

    fn bytes_of(&mut self, major: u8) -> Option<&'a [u8]> {
        let n = usize::try_from(self.head(major)?).ok()?;
        let s = self.b.get(self.i..self.i.checked_add(n)?)?;
        self.i += n;
        Some(s)
    }

    fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes_of(3)?).ok()
    }
}

const READING_VERSION: &str = "crev/reading/1";
const TX_VERSION: &str = "crev/tx/1";
const MAX_WH: u64 = 9_999_999_999; // crev.core.metering.MAX_WH (registers modulo 10^10 Wh)
const MAX_TIME: u64 = 1 << 40;
const MAX_SEQ: u64 = (1 << 63) - 1;

/// `ID_RE` (crev.ledger.shape): 1–64 of a-z 0-9 . _ -, starting with a letter or digit.
fn is_id(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty() && b.len() <= 64 && ok(b[0]) && b[1..].iter().all(|&c| ok(c) || c == b'.' || c == b'_' || c == b'-')
}

struct Parsed<'a> {
    chain_id: &'a str,
    device_id: &'a str,
    ints: [u64; 9], // seq … export_register_wh
    sig: &'a [u8],
    start: usize, // the reading's span in the transaction
    sig_at: usize,
    end: usize,
    hash: [u8; 32],
}

/// One reading as `parse_reading` accepts it, or None.
fn reading<'a>(c: &mut Cur<'a>) -> Option<Parsed<'a>> {
    let start = c.i;
    if *c.b.get(start)? != 0x8d {
        return None; // a 13-element array
    }
    c.i += 1;
    if c.text()? != READING_VERSION {
        return None;
    }
    let chain_id = c.text()?;
    let device_id = c.text()?;
    if !is_id(device_id) {
        return None;
    }
    let mut ints = [0u64; 9];
    for (k, x) in ints.iter_mut().enumerate() {
        *x = c.head(0)?;
        if k >= 3 && *x > MAX_WH {
            return None;
        }
    }
    let [seq, interval_start, interval_s, generation, _, export, ..] = ints;
    let interval_ok = (60..=1800).contains(&interval_s) && interval_s % 60 == 0 && 1800 % interval_s == 0;
    if !(1..=MAX_SEQ).contains(&seq) || interval_start > MAX_TIME || !interval_ok || interval_start % interval_s != 0
        || export > generation
    {
        return None;
    }
    let sig_at = c.i;
    let sig = c.bytes_of(2)?;
    if sig.len() != 64 {
        return None;
    }
    Some(Parsed { chain_id, device_id, ints, sig, start, sig_at, end: c.i, hash: [0; 32] })
}

/// The whole transaction as `decode_tx` accepts it with every reading well formed, or None.
fn readings_tx<'a>(raw: &'a [u8], chain_id: &str, max_batch: u64) -> Option<Vec<Parsed<'a>>> {
    let mut c = Cur { b: raw, i: 0 };
    if c.head(4)? != 7 || c.text()? != TX_VERSION || c.text()? != chain_id || c.text()? != "submit_readings"
        || !c.text()?.is_empty() || c.head(0)? != 0
    {
        return None;
    }
    let n = c.head(4)?;
    if n == 0 || n > max_batch {
        return None;
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        out.push(reading(&mut c)?);
    }
    if c.bytes_of(2)? != b"" || c.i != raw.len() {
        return None;
    }
    for p in out.iter_mut() {
        p.hash = Sha256::digest(&raw[p.start..p.end]).into();
    }
    Some(out)
}

/// Decode, check canonical and check the shape of a `submit_readings` transaction in one pass:
/// for each reading, in order, the tuple (chain_id, device_id, seq, interval_start, interval_s,
/// generation_wh, import_wh, export_wh, generation_register_wh, import_register_wh,
/// export_register_wh, signature, signed_bytes, hash) that `crev.ledger.messages.submit_readings`
/// builds its `Reading` from. None unless the transaction is such a batch, canonical, of
/// `max_tx_bytes` bytes at most, with every reading well formed: the reference then decides.
/// The signed bytes and the hash are the reading's own bytes (canonical input re-encodes to
/// itself): the twelve-element array is the reading's span with head 0x8c and no signature.
#[pyfunction]
pub fn parse_readings_tx<'py>(py: Python<'py>, raw: &Bound<'py, PyBytes>, chain_id: &Bound<'py, PyString>,
                              max_tx_bytes: u64, max_batch: u64) -> PyResult<Option<Bound<'py, PyList>>> {
    let data = raw.as_bytes();
    let cid = chain_id.to_str()?;
    if data.len() as u64 > max_tx_bytes {
        return Ok(None);
    }
    let Some(parsed) = py.detach(|| readings_tx(data, cid, max_batch)) else { return Ok(None) };
    let out = PyList::empty(py);
    let mut signed = Vec::with_capacity(256);
    for p in &parsed {
        let cid_obj = if p.chain_id == cid { chain_id.clone() } else { PyString::new(py, p.chain_id) };
        signed.clear();
        signed.push(0x8c);
        signed.extend_from_slice(&data[p.start + 1..p.sig_at]);
        let [a, b, c, d, e, f, g, h, i] = p.ints;
        let mut items: Vec<Bound<'py, PyAny>> = Vec::with_capacity(14);
        items.push(cid_obj.into_any());
        items.push(PyString::new(py, p.device_id).into_any());
        for n in [a, b, c, d, e, f, g, h, i] {
            items.push(n.into_pyobject(py)?.into_any());
        }
        items.push(PyBytes::new(py, p.sig).into_any());
        items.push(PyBytes::new(py, &signed).into_any());
        items.push(PyBytes::new(py, &p.hash).into_any());
        out.append(PyTuple::new(py, items)?)?;
    }
    Ok(Some(out))
}

// --- records ----------------------------------------------------------------------------------

/// A new instance of the slotted class `cls` with its fields `names` set to `values`, in order,
/// each stored straight into its slot (the offsets probed once, `slot_offsets`), else through
/// `object.__setattr__` (either way a frozen dataclass's own `__setattr__` is not in the way):
/// what the class's dataclass `__init__` does when it is given every field and has no
/// `__post_init__`. crev.core.records_fast checks those conditions before it uses this.
#[pyfunction]
pub fn new_slotted<'py>(cls: &Bound<'py, pyo3::types::PyType>, names: &Bound<'py, PyTuple>,
                        values: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    if names.len() != values.len() {
        return Err(pyo3::exceptions::PyTypeError::new_err("one value per field"));
    }
    // only a class whose instances object.__new__ makes (a plain class, not int or a C type): its
    // instances are what PyType_GenericAlloc allocates
    let object_new = py.get_type::<pyo3::types::PyAny>().getattr(pyo3::intern!(py, "__new__"))?;
    if !cls.getattr(pyo3::intern!(py, "__new__"))?.is(&object_new) {
        return Err(pyo3::exceptions::PyTypeError::new_err("new_slotted builds instances of plain classes only"));
    }
    let obj = unsafe {
        let p = pyo3::ffi::PyType_GenericAlloc(cls.as_type_ptr(), 0);
        Bound::from_owned_ptr_or_err(py, p)?
    };
    let mut atomic = true;
    match slot_offsets(cls, names) {
        Some(offsets) => {
            // each field straight into its slot, as `object.__setattr__` would put it there (the
            // instance is fresh: every slot is empty)
            for (&off, v) in offsets.iter().zip(values.iter()) {
                atomic &= is_atomic(&v);
                unsafe {
                    let slot = (obj.as_ptr() as *mut u8).add(off).cast::<*mut pyo3::ffi::PyObject>();
                    let old = std::mem::replace(&mut *slot, v.into_ptr());
                    if !old.is_null() {
                        pyo3::ffi::Py_DECREF(old);
                    }
                }
            }
        }
        None => {
            for (n, v) in names.iter().zip(values.iter()) {
                let r = unsafe { pyo3::ffi::PyObject_GenericSetAttr(obj.as_ptr(), n.as_ptr(), v.as_ptr()) };
                if r != 0 {
                    return Err(PyErr::fetch(py));
                }
                atomic &= is_atomic(&v);
            }
        }
    }
    let gc = unsafe { pyo3::ffi::PyType_GetFlags(cls.as_type_ptr()) } & pyo3::ffi::Py_TPFLAGS_HAVE_GC != 0;
    if atomic && gc {
        // Nothing it holds can lead back to it: no reference cycle can pass through it, so the
        // cyclic collector need not scan it (refcounting frees it). CPython does the same for a
        // tuple or dict of atomic values. A record stays untracked if a container is set on it
        // later; that only matters if a cycle then runs through it, which crev's records, whose
        // fields are typed atomic, never make.
        unsafe { pyo3::ffi::PyObject_GC_UnTrack(obj.as_ptr().cast()) };
    }
    Ok(obj)
}

/// A class's slot offsets for one tuple of field names, kept alive with them.
struct Offsets {
    _cls: Py<pyo3::types::PyType>,
    names: Py<PyTuple>,
    offsets: Option<Arc<[usize]>>,
}

static OFFSETS: OnceLock<Mutex<HashMap<usize, Offsets>>> = OnceLock::new();

/// The slot offset of each of `names` in instances of `cls` (`records::probe_offsets`), probed
/// once per class and names tuple (`crev.core.slotted.constructor` passes the same tuple each
/// time); None where a name is not a slot of the class (then `new_slotted` sets it by name).
fn slot_offsets(cls: &Bound<'_, pyo3::types::PyType>, names: &Bound<'_, PyTuple>) -> Option<Arc<[usize]>> {
    let key = cls.as_type_ptr() as usize;
    let map = OFFSETS.get_or_init(|| Mutex::new(HashMap::new()));
    {
        let m = map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = m.get(&key)
            && o.names.bind(cls.py()).is(names)
        {
            return o.offsets.clone();
        }
    }
    // probed without the lock held: probing runs Python code
    let strs: Option<Vec<Bound<'_, PyString>>> = names.iter().map(|n| n.cast_into::<PyString>().ok()).collect();
    let offsets: Option<Arc<[usize]>> =
        strs.and_then(|s| crate::records::probe_offsets(cls, &s).ok()).map(Arc::from);
    let entry = Offsets { _cls: cls.clone().unbind(), names: names.clone().unbind(), offsets: offsets.clone() };
    map.lock().unwrap_or_else(|e| e.into_inner()).insert(key, entry);
    offsets
}

/// An int, bool, float, str, bytes or None (exactly, not a subclass): a value that holds no
/// other object.
fn is_atomic(v: &Bound<'_, PyAny>) -> bool {
    v.is_none() || v.is_exact_instance_of::<pyo3::types::PyInt>() || v.is_exact_instance_of::<pyo3::types::PyString>()
        || v.is_exact_instance_of::<PyBytes>() || v.is_exact_instance_of::<pyo3::types::PyBool>()
        || v.is_exact_instance_of::<pyo3::types::PyFloat>()
}

// --- state tree -------------------------------------------------------------------------------

/// A state entry's place and leaf in the state tree (crev.core.statetree, the reference):
/// (`key_hash32(key)`, `entry_leaf_hash(key, value)`) = (the first 4 bytes of SHA-256(key) as a
/// big-endian integer, SHA-256(0x00 ‖ u16 len(key) ‖ key ‖ value)). The bucket at depth d is the
/// first integer shifted right by 32 − d. ValueError for a key of 65,536 UTF-8 bytes or more
/// (the reference's `struct.pack(">H")` refuses it too).
#[pyfunction]
pub fn state_leaf(key: &str, value: &[u8]) -> PyResult<(u32, [u8; 32])> {
    let k = key.as_bytes();
    let leaf = crate::bucket::leaf_hash(k, value)?;
    Ok((crate::bucket::key_hash32(k), leaf))
}

// --- events -----------------------------------------------------------------------------------

const HEX: &[u8; 16] = b"0123456789abcdef";

/// An event's JSON form, as `crev.ledger.events.Event.to_dict` builds it: `{"type": type_, name:
/// value, ...}` for each of `names` in order, a bytes value as its lowercase hex text, a tuple as a
/// list of its items, anything else as it is.
#[pyfunction]
pub fn event_dict<'py>(event: &Bound<'py, PyAny>, type_: &Bound<'py, PyAny>, names: &Bound<'py, PyTuple>)
                       -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let py = event.py();
    let d = pyo3::types::PyDict::new(py);
    d.set_item(pyo3::intern!(py, "type"), type_)?;
    let mut hex = String::new();
    for n in names.iter() {
        let n = n.cast_into::<PyString>()?;
        let v = event.getattr(&n)?;
        if let Ok(b) = v.cast_exact::<PyBytes>() {
            hex.clear();
            for &x in b.as_bytes() {
                hex.push(HEX[(x >> 4) as usize] as char);
                hex.push(HEX[(x & 15) as usize] as char);
            }
            d.set_item(n, PyString::new(py, &hex))?;
        } else if v.is_instance_of::<PyBytes>() {
            d.set_item(n, v.call_method0(pyo3::intern!(py, "hex"))?)?;
        } else if v.is_instance_of::<PyTuple>() {
            d.set_item(n, PyList::new(py, v.try_iter()?.collect::<PyResult<Vec<_>>>()?)?)?;
        } else {
            d.set_item(n, v)?;
        }
    }
    Ok(d)
}
