//! The state tree's held buckets (crev.core.statetree.LazyStateTree): a loaded bucket is one
//! `bytes` object, `u32 n ‖ u32 word ‖ n leaf hashes ‖ keys`, in key order, padded with NULs to at
//! least 512 bytes. The keys are `NUL k1 NUL k2 … kn NUL` (`word` = their length), or, when a key
//! holds a NUL itself, each prefixed by its u16 length (`word` = their length | 2^31). A leaf hash is
//! `SHA-256(0x00 ‖ u16 len(key) ‖ key ‖ value)`; a bucket's hash is `SHA-256(0x02 ‖ its leaf hashes
//! in key order)`. Python's `_pack`/`_unpack`/`load`/`_fold` are the reference; these do the same
//! in one call each (Python `str` order is code-point order, which UTF-8 byte order preserves).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use sha2::{Digest, Sha256};

const HELD_MIN: usize = 512;
const PREFIXED: u32 = 1 << 31;

pub(crate) type Entry = (Vec<u8>, [u8; 32]);

/// A key's place in the tree (`crev.core.statetree.key_hash32`): the first 4 bytes of SHA-256(key),
/// big-endian; its bucket at depth d is this shifted right by 32 − d.
pub(crate) fn key_hash32(key: &[u8]) -> u32 {
    let d = Sha256::digest(key);
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

pub(crate) fn leaf_hash(key: &[u8], value: &[u8]) -> PyResult<[u8; 32]> {
    leaf_hash_raw(key, value).ok_or_else(|| PyValueError::new_err("a state key is at most 65,535 bytes"))
}

/// `leaf_hash` without Python: None for a key over 65,535 bytes.
pub(crate) fn leaf_hash_raw(key: &[u8], value: &[u8]) -> Option<[u8; 32]> {
    let n = u16::try_from(key.len()).ok()?;
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(n.to_be_bytes());
    h.update(key);
    h.update(value);
    Some(h.finalize().into())
}

fn word(bytes: &[u8]) -> usize {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize
}

/// A held bucket's entries, in its (key) order.
fn unpack(held: &[u8]) -> PyResult<Vec<Entry>> {
    let bad = || PyValueError::new_err("held bucket: truncated or malformed");
    if held.len() < 8 {
        return Err(bad());
    }
    let n = word(&held[..4]);
    let w = word(&held[4..8]) as u32;
    let start = n.checked_mul(32).and_then(|s| s.checked_add(8)).ok_or_else(bad)?;
    let size = (w & !PREFIXED) as usize;
    let keys = held.get(start..start.checked_add(size).ok_or_else(bad)?).ok_or_else(bad)?;
    let mut out = Vec::with_capacity(n);
    let leaf = |i: usize| -> [u8; 32] { held[8 + i * 32..8 + (i + 1) * 32].try_into().unwrap() };
    if n == 0 {
        return Ok(out);
    }
    if w & PREFIXED != 0 {
        let mut at = 0usize;
        for i in 0..n {
            let len = keys.get(at..at + 2).ok_or_else(bad)?;
            let len = u16::from_be_bytes([len[0], len[1]]) as usize;
            let k = keys.get(at + 2..at + 2 + len).ok_or_else(bad)?;
            out.push((k.to_vec(), leaf(i)));
            at += 2 + len;
        }
    } else {
        if keys.len() < 2 {
            return Err(bad());
        }
        let inner = &keys[1..keys.len() - 1];
        let mut parts = inner.split(|&c| c == 0);
        for i in 0..n {
            out.push((parts.next().ok_or_else(bad)?.to_vec(), leaf(i)));
        }
        if parts.next().is_some() {
            return Err(bad());
        }
    }
    Ok(out)
}

/// Entries sorted by key (no duplicates) as a held bucket, and the bucket's hash.
pub(crate) fn pack(entries: &[Entry]) -> (Vec<u8>, [u8; 32]) {
    let prefixed = entries.iter().any(|(k, _)| k.contains(&0));
    let keys_len: usize = if prefixed {
        entries.iter().map(|(k, _)| 2 + k.len()).sum()
    } else {
        1 + entries.iter().map(|(k, _)| k.len() + 1).sum::<usize>()
    };
    let mut out = Vec::with_capacity((8 + entries.len() * 32 + keys_len).max(HELD_MIN));
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    out.extend_from_slice(&((keys_len as u32) | if prefixed { PREFIXED } else { 0 }).to_be_bytes());
    let mut h = Sha256::new();
    h.update([0x02u8]);
    for (_, leaf) in entries {
        out.extend_from_slice(leaf);
        h.update(leaf);
    }
    if prefixed {
        for (k, _) in entries {
            out.extend_from_slice(&(k.len() as u16).to_be_bytes());
            out.extend_from_slice(k);
        }
    } else {
        out.push(0);
        for (k, _) in entries {
            out.extend_from_slice(k);
            out.push(0);
        }
    }
    if out.len() < HELD_MIN {
        out.resize(HELD_MIN, 0);
    }
    (out, h.finalize().into())
}

/// A bucket's (key, value) rows as fetched from the store → (held bucket, bucket hash), or None if
/// a key comes twice (the caller then refuses the bucket, as the reference does).
#[pyfunction]
pub fn bucket_pack<'py>(py: Python<'py>, rows: &Bound<'py, PyAny>)
                        -> PyResult<Option<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
    let mut entries: Vec<Entry> = Vec::new();
    for row in rows.try_iter()? {
        let (k, v): (Bound<'py, PyString>, Vec<u8>) = row?.extract()?;
        let k = k.to_str()?.as_bytes().to_vec();
        let leaf = leaf_hash(&k, &v)?;
        entries.push((k, leaf));
    }
    Ok(pack_rows(entries).map(|(held, hash)| (PyBytes::new(py, &held), PyBytes::new(py, &hash))))
}

/// A bucket's entries in any order → its held form and hash (`pack`), or None if a key comes twice
/// (the caller then leaves the bucket to the reference, which refuses it).
pub(crate) fn pack_rows(mut entries: Vec<Entry>) -> Option<(Vec<u8>, [u8; 32])> {
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if entries.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    Some(pack(&entries))
}

/// A held bucket with `changes` (key → new leaf hash, or None: deleted) folded in, and its hash.
#[pyfunction]
pub fn bucket_fold<'py>(py: Python<'py>, held: &[u8], changes: &Bound<'py, PyDict>)
                        -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let (held, hash) = fold(held, changes)?;
    Ok((PyBytes::new(py, &held), PyBytes::new(py, &hash)))
}

/// `bucket_fold`'s held form and hash, as Rust values.
fn fold<'py>(held: &[u8], changes: &Bound<'py, PyDict>) -> PyResult<(Vec<u8>, [u8; 32])> {
    let old = unpack(held)?;
    let mut ch: Vec<(Vec<u8>, Option<[u8; 32]>)> = Vec::with_capacity(changes.len());
    for item in changes.items().iter() {  // a snapshot of the dict's items
        let (k, v): (Bound<'py, PyAny>, Bound<'py, PyAny>) = item.extract()?;
        let k = k.cast_into::<PyString>()?;
        if k.to_str()?.len() > u16::MAX as usize {
            return Err(PyValueError::new_err("a state key is at most 65,535 bytes"));
        }
        let leaf: Option<[u8; 32]> = if v.is_none() {
            None
        } else {
            let b: &[u8] = v.extract()?;
            Some(b.try_into().map_err(|_| PyValueError::new_err("a leaf hash is 32 bytes"))?)
        };
        ch.push((k.to_str()?.as_bytes().to_vec(), leaf));
    }
    ch.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut merged: Vec<Entry> = Vec::with_capacity(old.len() + ch.len());
    let mut old = old.into_iter().peekable();
    for (k, leaf) in ch {
        while let Some(o) = old.next_if(|o| o.0 < k) {
            merged.push(o);
        }
        old.next_if(|o| o.0 == k); // replaced or deleted
        if let Some(l) = leaf {
            merged.push((k, l));
        }
    }
    merged.extend(old);
    Ok(pack(&merged))
}

/// A `LazyStateTree`'s recomputation of its dirty buckets' hashes (`_recompute`, by way of
/// `_bucket_hash` and `_fold`) in one call: for each bucket of `dirty`, its waiting changes
/// (`pending[b]`, removed) folded into `held[b]` as `bucket_fold` does, and its hash written into
/// `level0` (32 bytes at b × 32). A dirty bucket with no changes waiting (folded earlier by a read)
/// keeps its held form; its hash is that of its leaves.
#[pyfunction]
pub fn bucket_fold_many(held: &Bound<'_, PyDict>, pending: &Bound<'_, PyDict>, dirty: Vec<usize>,
                        level0: &Bound<'_, pyo3::types::PyByteArray>) -> PyResult<()> {
    let py = held.py();
    for b in dirty {
        let at = b.checked_mul(32).filter(|&a| a + 32 <= level0.len())
            .ok_or_else(|| PyValueError::new_err(format!("bucket {b} is past level 0")))?;
        let bucket = held.get_item(b)?.ok_or_else(|| PyValueError::new_err(format!("bucket {b} is not loaded")))?;
        let bucket = bucket.cast_into::<PyBytes>()?;
        let changes = match pending.get_item(b)? {
            Some(c) => {
                pending.del_item(b)?;
                Some(c.cast_into::<PyDict>()?)
            }
            None => None,
        };
        let hash = match changes.filter(|c| !c.is_empty()) {
            Some(c) => {
                let (new, hash) = fold(bucket.as_bytes(), &c)?;
                held.set_item(b, PyBytes::new(py, &new))?;
                hash
            }
            None => {
                let h = bucket.as_bytes();
                let n = word(h.get(..4).ok_or_else(|| PyValueError::new_err("held bucket: truncated"))?);
                let leaves = h.get(8..8 + n * 32).ok_or_else(|| PyValueError::new_err("held bucket: truncated"))?;
                let mut d = Sha256::new();
                d.update([0x02u8]);
                d.update(leaves);
                d.finalize().into()
            }
        };
        // the level is the caller's own bytearray, not resized while this runs (the GIL is held)
        unsafe { level0.as_bytes_mut()[at..at + 32].copy_from_slice(&hash) };
    }
    Ok(())
}

/// `set(key, value)` of a state tree (crev.core.statetree) for each `(key, value)` of `entries`
/// (distinct keys), in one call: each entry's leaf (`state_leaf`) goes into `pending[bucket][key]`
/// and its bucket into `dirty`, where `held` (a `LazyStateTree`'s loaded buckets; None for a
/// `StateTree`, which holds every bucket) holds the bucket. Returns the entries left to the
/// caller's own `set` or `delete`: those whose value is None (deletions) or whose bucket is not
/// loaded (the caller's `set` loads and checks it first).
#[pyfunction]
pub fn tree_set_many<'py>(held: Option<&Bound<'py, PyDict>>, pending: &Bound<'py, PyDict>,
                          dirty: &Bound<'py, pyo3::types::PySet>, entries: &Bound<'py, pyo3::types::PyList>,
                          depth: u32) -> PyResult<Bound<'py, pyo3::types::PyList>> {
    let py = pending.py();
    if !(1..=24).contains(&depth) {
        return Err(PyValueError::new_err("depth must be 1..24"));
    }
    let left = pyo3::types::PyList::empty(py);
    for item in entries.iter() {
        let (key, value): (Bound<'py, PyString>, Bound<'py, PyAny>) = item.extract()?;
        let Ok(value) = value.cast_exact::<PyBytes>() else {
            left.append(item)?;
            continue;
        };
        let k = key.to_str()?.as_bytes();
        let leaf = leaf_hash(k, value.as_bytes())?;
        let b = key_hash32(k) >> (32 - depth);
        if let Some(h) = held
            && !h.contains(b)?
        {
            left.append(item)?;
            continue;
        }
        let bucket = match pending.get_item(b)? {
            Some(d) => d.cast_into::<PyDict>()?,
            None => {
                let d = PyDict::new(py);
                pending.set_item(b, &d)?;
                d
            }
        };
        bucket.set_item(&key, PyBytes::new(py, &leaf))?;
        dirty.add(b)?;
    }
    Ok(left)
}
