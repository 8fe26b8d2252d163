//! The state tree's levels above the bucket hashes (crev.core.statetree): a node's hash is
//! `SHA-256(0x01 ‖ left ‖ right)`. Rebuilding the 2^depth − 1 nodes over the stored bucket hashes is
//! what opening a ledger lazily costs (2^20 − 1 hashes at depth 20); in Python that is the call
//! overhead of a million short hashes, here one pass with the GIL released.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::critical_section::with_critical_section2;
use pyo3::types::{PyByteArray, PyBytes, PyList};
use sha2::{Digest, Sha256};

/// The level above `level` (pairs of 32-byte hashes, left then right): one 32-byte parent per
/// pair, in order. `level`'s length must be a multiple of 64.
#[pyfunction]
pub fn merkle_parents<'py>(py: Python<'py>, level: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    if !level.len().is_multiple_of(64) {
        return Err(PyValueError::new_err(format!(
            "level: {} bytes, not whole pairs of 32-byte hashes",
            level.len()
        )));
    }
    let out = py.detach(|| {
        let mut out = vec![0u8; level.len() / 2];
        for (pair, parent) in level.chunks_exact(64).zip(out.chunks_exact_mut(32)) {
            let mut h = Sha256::new();
            h.update([0x01u8]);
            h.update(pair);
            parent.copy_from_slice(&h.finalize());
        }
        out
    });
    Ok(PyBytes::new(py, &out))
}

/// The levels above changed buckets, recomputed in place: `levels[d]` is level d's bytearray
/// (2^(depth − d) hashes of 32 bytes, `depth = len(levels) − 1`), level 0 already holding the new
/// bucket hashes; `dirty` the buckets that changed. Every ancestor of a dirty bucket is rehashed,
/// level by level, as `StateTree._recompute` does (the reference). Each pair of levels is read and
/// written inside a critical section on both (nothing on a build with the GIL, which is held
/// throughout; per-object locks on a free-threaded one), and no Python code runs inside it.
#[pyfunction]
pub fn merkle_update(levels: &Bound<'_, PyList>, dirty: Vec<u64>) -> PyResult<()> {
    let n = levels.len();
    if n == 0 || n > 25 {
        return Err(PyValueError::new_err(format!("levels: {n}, a tree of depth 0..24 has 1..25")));
    }
    let depth = n - 1;
    let arrays: Vec<Bound<'_, PyByteArray>> =
        levels.iter().map(|l| l.cast_into::<PyByteArray>().map_err(PyErr::from)).collect::<PyResult<_>>()?;
    let size = |d: usize| 32usize << (depth - d);
    let wrong = |d: usize, a: &Bound<'_, PyByteArray>| {
        PyValueError::new_err(format!("level {d}: {} bytes, depth {depth} needs {}", a.len(), size(d)))
    };
    if let Some((d, a)) = arrays.iter().enumerate().find(|(d, a)| a.len() != size(*d)) {
        return Err(wrong(d, a));
    }
    let mut cur = dirty;
    if let Some(&b) = cur.iter().find(|&&b| b >> depth != 0) {
        return Err(PyValueError::new_err(format!("bucket {b}: depth {depth} has {} buckets", 1u64 << depth)));
    }
    cur.sort_unstable();
    cur.dedup();
    for d in 0..depth {
        let (lower, upper) = (&arrays[d], &arrays[d + 1]);
        with_critical_section2(lower.as_any(), upper.as_any(), || -> PyResult<()> {
            if lower.len() != size(d) {
                return Err(wrong(d, lower));
            }
            if upper.len() != size(d + 1) {
                return Err(wrong(d + 1, upper));
            }
            // SAFETY: both lengths were checked inside this critical section, which (with the GIL
            // on a default build) keeps every other thread from resizing or touching the two
            // bytearrays while it lasts; no Python code runs in it. `lower` and `upper` are
            // distinct objects: their lengths differ.
            let below = unsafe { lower.as_bytes() };
            let above = unsafe { upper.as_bytes_mut() };
            cur.dedup_by_key(|i| *i >> 1);
            for i in cur.iter_mut() {
                let p = (*i >> 1) as usize;
                let mut h = Sha256::new();
                h.update([0x01u8]);
                h.update(&below[p * 64..p * 64 + 64]);
                above[p * 32..p * 32 + 32].copy_from_slice(&h.finalize());
                *i = p as u64;
            }
            Ok(())
        })?;
    }
    Ok(())
}
