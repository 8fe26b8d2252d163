//! A checkpoint's rows, made ready for SQLite with the interpreter lock held as little as possible
//! (crev.node.store's `prepare_checkpoint` is the reference and decides when to use these).
//!
//! A table's rows are handed to SQLite as one JSON array of arrays that SQLite's `json_each`
//! expands inside one `INSERT … SELECT` (see `store.insert_packed`): the Python `sqlite3` module then
//! binds two values for the whole table instead of one per cell, and SQLite parses them with the
//! lock released. In a row, an integer is a JSON number, a text a JSON string, and a blob two
//! numbers: its 1-based offset and its length in one byte string bound beside the JSON (read back
//! with `substr`). *Exact or silent*, like the codec: a value these do not render exactly as the
//! reference binds it (an integer beyond 64 bits, a bool, a float, a text holding NUL, a lone
//! surrogate, an unexpected type) makes them return `None`, and the reference builds the rows.

use std::io::Write;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyList, PyString, PyTuple, PyType};

/// One table's rows as `json_each` reads them: the JSON text, the blob the blob cells point
/// into, the number of rows.
struct Pack {
    json: Vec<u8>,
    blob: Vec<u8>,
    rows: usize,
    first: bool,
}

impl Pack {
    fn new() -> Self {
        Pack { json: vec![b'['], blob: Vec::new(), rows: 0, first: true }
    }

    fn row(&mut self) {
        if self.rows > 0 {
            self.json.push(b',');
        }
        self.json.push(b'[');
        self.rows += 1;
        self.first = true;
    }

    fn end_row(&mut self) {
        self.json.push(b']');
    }

    fn sep(&mut self) {
        if !self.first {
            self.json.push(b',');
        }
        self.first = false;
    }

    fn int(&mut self, v: i64) {
        self.sep();
        let _ = write!(self.json, "{v}");
    }

    /// False for a text holding NUL (SQLite's JSON would not give it back whole).
    fn text(&mut self, s: &str) -> bool {
        if s.as_bytes().contains(&0) {
            return false;
        }
        self.sep();
        // serde_json writes it as a JSON string: quotes, backslashes and control characters escaped
        serde_json::to_writer(&mut self.json, s).is_ok()
    }

    fn bytes(&mut self, b: &[u8]) {
        self.sep();
        let _ = write!(self.json, "{},{}", self.blob.len() + 1, b.len());
        self.blob.extend_from_slice(b);
    }

    fn finish<'py>(mut self, py: Python<'py>) -> (Bound<'py, PyString>, Bound<'py, PyBytes>, usize) {
        self.json.push(b']');
        if self.blob.is_empty() {
            // SQLite's substr of an empty blob is NULL, not an empty blob: never bind an empty one
            self.blob.push(0);
        }
        let json = String::from_utf8(self.json).expect("numbers, punctuation and JSON strings of str are UTF-8");
        (PyString::new(py, &json), PyBytes::new(py, &self.blob), self.rows)
    }
}

/// A cell from a Python value, by the kind the table's column takes: `i` an exact int within
/// 64 bits, `t` an exact str, `b` exact bytes. False for anything else.
fn cell(p: &mut Pack, v: &Bound<'_, PyAny>, kind: u8) -> bool {
    match kind {
        b'i' => {
            if !v.is_exact_instance_of::<PyInt>() {
                return false;
            }
            match v.extract::<i64>() {
                Ok(n) => {
                    p.int(n);
                    true
                }
                Err(_) => false,
            }
        }
        b't' => match v.cast_exact::<PyString>() {
            Ok(s) => match s.to_str() {
                Ok(s) => p.text(s),
                Err(_) => false,
            },
            Err(_) => false,
        },
        b'b' => match v.cast_exact::<PyBytes>() {
            Ok(b) => {
                p.bytes(b.as_bytes());
                true
            }
            Err(_) => false,
        },
        _ => false,
    }
}

type StatePack<'py> = (
    (Bound<'py, PyString>, Bound<'py, PyBytes>, usize),
    Vec<(u32, Bound<'py, PyString>)>,
    Vec<u32>,
    Vec<(Bound<'py, PyString>, Bound<'py, PyBytes>)>,
);

/// The state rows of a checkpoint's changes (key → canonical bytes, or None: deleted), as
/// `prepare_checkpoint` builds them: the upserts `[kh, key, value]` in table order (by
/// `key_hash32`, then key) packed for `json_each`; the deletes `(kh, key)`; the key hashes of the
/// upserts in that order, then of the deletes; and the upserts of orders (`o/` keys) as (key,
/// value), in the same order. None if a key is not an exact str (or holds NUL or a lone surrogate)
/// or a value is neither exact bytes nor None.
#[pyfunction]
pub fn pack_state_rows<'py>(py: Python<'py>, changes: &Bound<'py, PyDict>) -> Option<StatePack<'py>> {
    let mut held: Vec<(Bound<'py, PyString>, Option<Bound<'py, PyBytes>>)> = Vec::with_capacity(changes.len());
    for (k, v) in changes.iter() {
        let k = k.cast_exact::<PyString>().ok()?.clone();
        let v = if v.is_none() { None } else { Some(v.cast_exact::<PyBytes>().ok()?.clone()) };
        held.push((k, v));
    }
    let mut views: Vec<(&str, Option<&[u8]>)> = Vec::with_capacity(held.len());
    for (k, v) in &held {
        views.push((k.to_str().ok()?, v.as_ref().map(|b| b.as_bytes())));
    }
    // hashed, sorted and rendered without the lock (str and bytes are immutable, and `held` keeps them)
    let (order, pack) = py.detach(|| -> Option<(Vec<(u32, usize)>, Pack)> {
        let mut order: Vec<(u32, usize)> = views
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (crate::bucket::key_hash32(k.as_bytes()), i))
            .collect();
        // Python sorts (kh, key) and str order is code-point order, which UTF-8 byte order keeps
        order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| views[a.1].0.as_bytes().cmp(views[b.1].0.as_bytes())));
        let mut pack = Pack::new();
        for &(kh, i) in &order {
            if let (k, Some(v)) = views[i] {
                pack.row();
                pack.int(i64::from(kh));
                if !pack.text(k) {
                    return None;
                }
                pack.bytes(v);
                pack.end_row();
            }
        }
        Some((order, pack))
    })?;
    let mut hashes = Vec::with_capacity(order.len());
    let mut orders = Vec::new();
    let mut khs = vec![0u32; held.len()];
    for &(kh, i) in &order {
        khs[i] = kh;
        if let (k, Some(v)) = &held[i] {
            hashes.push(kh);
            if views[i].0.starts_with("o/") {
                orders.push((k.clone(), v.clone()));
            }
        }
    }
    // the deletes in the changes' own order, as the reference lists them
    let deletes: Vec<(u32, Bound<'py, PyString>)> =
        held.iter().enumerate().filter(|(_, (_, v))| v.is_none()).map(|(i, (k, _))| (khs[i], k.clone())).collect();
    hashes.extend(deletes.iter().map(|(kh, _)| *kh));
    Some((pack.finish(py), deletes, hashes, orders))
}

/// A row's source: an attribute of the event, or the block height or transaction hash it came with.
enum Source<'py> {
    Attr(Bound<'py, PyString>),
    Height,
    TxHash,
}

struct Table<'py> {
    cls: Bound<'py, PyType>,
    sources: Vec<Source<'py>>,
    /// each attribute source's slot offset in the class's instances, where probing found one
    /// (`records::probe_offsets`); `getattr` otherwise, and for an unset slot
    offsets: Vec<Option<usize>>,
    kinds: Vec<u8>,
    pack: Pack,
}

/// `records::probe_offsets` of each attribute source on its own (None where it is not a slot).
fn slot_offsets(cls: &Bound<'_, PyType>, sources: &[Source<'_>]) -> Vec<Option<usize>> {
    sources.iter().map(|s| match s {
        Source::Attr(n) => crate::records::probe_offsets(cls, std::slice::from_ref(n)).ok().map(|o| o[0]),
        _ => None,
    }).collect()
}

/// Attribute `name` of `obj`: read from its slot at `offset` (`obj`'s class is exactly the class
/// whose offset it is), else, or if the slot is unset, by `getattr`.
fn attr<'py>(obj: &Bound<'py, PyAny>, name: &Bound<'py, PyString>, offset: Option<usize>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: `offset` was probed on exactly `obj`'s class (the caller matched its type with `is`)
    if let Some(v) = offset.and_then(|off| unsafe { crate::records::slot(obj, off) }) {
        return Ok(v);
    }
    obj.getattr(name)
}

type EventPack<'py> = (
    Vec<(Bound<'py, PyString>, Bound<'py, PyBytes>, usize)>,
    Vec<(i64, Bound<'py, PyAny>, Bound<'py, PyAny>)>,
);

/// The index rows of blocks' results (`outcomes`: (height, [TxResult])) for the event classes in
/// `tables`, each (class, sources, kinds): a row per event of exactly that class, in order, of the
/// attributes named in `sources` (`@height` is the block's height, `@tx` the result's `tx_hash`),
/// each of the kind at the same place in `kinds` (`i`, `t`, `b`: see `cell`). Returns each table's
/// pack, and every other event as (height, tx_hash, event), in order, for the reference to index.
/// None if a cell is not of its kind. An attribute is read from its slot at the offset probed on
/// the class once a call (`records::probe_offsets`), by `getattr` where it is not a slot or is unset.
#[pyfunction]
pub fn pack_event_rows<'py>(py: Python<'py>, outcomes: &Bound<'py, PyList>, tables: &Bound<'py, PyList>)
                            -> PyResult<Option<EventPack<'py>>> {
    let mut specs: Vec<Table<'py>> = Vec::with_capacity(tables.len());
    for t in tables.iter() {
        let (cls, names, kinds): (Bound<'py, PyType>, Bound<'py, PyTuple>, String) = t.extract()?;
        let sources = names
            .iter()
            .map(|n| {
                let n = n.cast_into::<PyString>()?;
                Ok(match n.to_str()? {
                    "@height" => Source::Height,
                    "@tx" => Source::TxHash,
                    _ => Source::Attr(n),
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        if sources.len() != kinds.len() {
            return Err(pyo3::exceptions::PyValueError::new_err("one kind per source"));
        }
        let offsets = slot_offsets(&cls, &sources);
        specs.push(Table { cls, sources, offsets, kinds: kinds.into_bytes(), pack: Pack::new() });
    }
    let tx_hash = pyo3::intern!(py, "tx_hash");
    let events = pyo3::intern!(py, "events");
    let mut others = Vec::new();
    for item in outcomes.iter() {
        let (height, results): (i64, Bound<'py, PyAny>) = item.extract()?;
        for res in results.try_iter()? {
            let res = res?;
            let th = res.getattr(tx_hash)?;
            for e in res.getattr(events)?.try_iter()? {
                let e = e?;
                let ty = e.get_type();
                let Some(t) = specs.iter_mut().find(|t| t.cls.is(&ty)) else {
                    others.push((height, th.clone(), e));
                    continue;
                };
                t.pack.row();
                for ((s, &k), &off) in t.sources.iter().zip(&t.kinds).zip(&t.offsets) {
                    let ok = match s {
                        Source::Attr(n) => cell(&mut t.pack, &attr(&e, n, off)?, k),
                        Source::Height if k == b'i' => {
                            t.pack.int(height);
                            true
                        }
                        Source::TxHash => cell(&mut t.pack, &th, k),
                        Source::Height => false,
                    };
                    if !ok {
                        return Ok(None);
                    }
                }
                t.pack.end_row();
            }
        }
    }
    Ok(Some((specs.into_iter().map(|t| t.pack.finish(py)).collect(), others)))
}
