//! The state tree's levels above the bucket hashes (crev.core.statetree): a node's hash is
//! `SHA-256(0x01 ‖ left ‖ right)`. Rebuilding the 2^depth − 1 nodes over the stored bucket hashes is
//! what opening a ledger lazily costs (2^20 − 1 hashes at depth 20); in Python that is the call
//! overhead of a million short hashes, here one pass with the GIL released.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use sha2::{Digest, Sha256};

/// The level above `level` (pairs of 32-byte hashes, left then right): one 32-byte parent per
/// pair, in order. `level`'s length must be a multiple of 64.
#[pyfunction]
pub fn merkle_parents<'py>(py: Python<'py>, level: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    if level.len() % 64 != 0 {
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
