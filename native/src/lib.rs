//! `crev_native`: Ed25519 signature verification off the Python interpreter, accepting exactly what
//! libsodium's `crypto_sign_verify_detached` accepts (libsodium 1.0.20-stable, as bundled by PyNaCl
//! 1.6: `crypto_sign/ed25519/ref10/open.c`, built without `ED25519_COMPAT`).
//!
//! libsodium's rules, in its order, for a signature `R ‖ S` by public key `A` over message `M`:
//!
//! 1. `S` is canonical: `S < L` (`sc25519_is_canonical`).
//! 2. The 32 bytes of `R` are none of the 7 blocklisted small-order encodings, the sign bit ignored
//!    (`ge25519_has_small_order`): `R` is never decoded.
//! 3. `A` encodes `y < p` (`ge25519_is_canonical`, the sign bit ignored) and is not blocklisted.
//! 4. `A` decodes to a curve point (x² = (y² − 1)/(d·y² + 1) has a root).
//! 5. `h = SHA-512(R ‖ A ‖ M) mod L`; `[S]B − [h]A` encoded canonically equals the 32 bytes of `R`
//!    (the cofactorless equation, compared on encodings: a non-canonical `R` never matches).
//!
//! Mixed-order `A` and `R` are *not* refused by libsodium; the equation decides. `verify` and
//! `verify_many` apply the rules above one signature at a time (the kernel crev uses).
//! `verify_batch` is the alternative measured against it: a random-linear-combination batch
//! equation, sound for libsodium's rule only where every `R` and `A` is torsion-free, so it checks
//! that of each (at a cost) and falls back to single verification for the rest and for a batch
//! that fails. Every entry point releases the GIL while it computes.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
mod bucket;
mod codec;
mod merkle;
mod records;
mod rows;
mod spans;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use sha2::{Digest, Sha512};
use std::cell::RefCell;
use std::collections::HashMap;

/// L = 2^252 + 27742317777372353535851937790883648493, little-endian.
const L_BYTES: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

/// libsodium's `ge25519_has_small_order` blocklist: every encoding of a point of order 1, 2, 4 or 8
/// (with the sign bit cleared): y = 0, 1, the two order-8 y, p − 1, p (= 0) and p + 1 (= 1).
const SMALL_ORDER: [[u8; 32]; 7] = [
    [0; 32],
    [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf,
        0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20,
        0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
    [
        0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
];

/// Signatures per batch equation in `verify_batch`.
const BATCH: usize = 64;

/// `sc25519_is_canonical`: the little-endian integer `s` is below L.
fn scalar_is_canonical(s: &[u8; 32]) -> bool {
    for i in (0..32).rev() {
        if s[i] != L_BYTES[i] {
            return s[i] < L_BYTES[i];
        }
    }
    false // s == L
}

/// `ge25519_has_small_order` on an encoding: the first 31 bytes and the last without its sign bit
/// equal a blocklisted encoding.
fn has_small_order(s: &[u8; 32]) -> bool {
    SMALL_ORDER.iter().any(|b| s[..31] == b[..31] && (s[31] & 0x7f) == b[31])
}

/// `ge25519_is_canonical`: the encoded y (sign bit ignored) is below p = 2^255 − 19.
fn y_is_canonical(s: &[u8; 32]) -> bool {
    !((s[31] & 0x7f) == 0x7f && s[1..31].iter().all(|&b| b == 0xff) && s[0] >= 0xed)
}

/// Rules 1–3, which need no curve arithmetic.
fn encodings_pass(pk: &[u8; 32], r: &[u8; 32], s: &[u8; 32]) -> bool {
    scalar_is_canonical(s) && !has_small_order(r) && y_is_canonical(pk) && !has_small_order(pk)
}

fn challenge(r: &[u8; 32], pk: &[u8; 32], msg: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(pk);
    h.update(msg);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

fn split(pk: &[u8], sig: &[u8]) -> Option<([u8; 32], [u8; 32], [u8; 32])> {
    if pk.len() != 32 || sig.len() != 64 {
        return None;
    }
    Some((pk.try_into().ok()?, sig[..32].try_into().ok()?, sig[32..].try_into().ok()?))
}

// Public keys already decoded (rule 4), negated as the equation uses them, by their 32 bytes:
// a node verifies each device's readings with the same registered key every minute, and decoding
// it (a square root) is ~4.7 µs of a ~42 µs verification here (docs/benchmarks.md). Only keys
// that passed rules 1–4 are held, and what a key decodes to never changes, so holding it changes
// no result. One cache per thread: shared by the verify threads behind a lock (one, or 64 shards)
// it made two threads verifying at once slower than decoding every time (45–47 µs against 42),
// where a thread's own made them faster (38–40). Each entry is ~200 B; at KEY_CACHE_MAX keys (the
// most a table of 2^20 slots holds without growing: ≤ ~200 MB a thread) it starts again empty.
thread_local! {
    static DECODED_KEYS: RefCell<HashMap<[u8; 32], EdwardsPoint>> = RefCell::new(HashMap::new());
}
const KEY_CACHE_MAX: usize = (1 << 20) / 8 * 7;

/// −A for the (rule-3-checked) encoding `pk`, or None where it is not a curve point (rule 4).
fn negated_key(pk: &[u8; 32]) -> Option<EdwardsPoint> {
    DECODED_KEYS.with(|cell| {
        let mut held = cell.borrow_mut();
        if let Some(p) = held.get(pk) {
            return Some(*p);
        }
        let minus_a = -CompressedEdwardsY(*pk).decompress()?;
        if held.len() >= KEY_CACHE_MAX {
            held.clear();
        }
        held.insert(*pk, minus_a);
        Some(minus_a)
    })
}

/// One signature, exactly as libsodium's `crypto_sign_verify_detached` decides it.
fn verify_single(pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let Some((pk, r, s)) = split(pk, sig) else { return false };
    if !encodings_pass(&pk, &r, &s) {
        return false;
    }
    let Some(minus_a) = negated_key(&pk) else { return false };
    let s = Scalar::from_bytes_mod_order(s); // already < L: unchanged
    let h = challenge(&r, &pk, msg);
    let check = EdwardsPoint::vartime_double_scalar_mul_basepoint(&h, &minus_a, &s);
    check.compress().to_bytes() == r
}

/// [L]P = O, computed as [L − 1]P = −P with a variable-time multiplication (L − 1 is the scalar −1).
fn torsion_free(p: &EdwardsPoint) -> bool {
    let minus_one = -Scalar::ONE;
    let q = EdwardsPoint::vartime_multiscalar_mul([minus_one], [*p]);
    (q + p).is_identity()
}

/// One batch of at most `BATCH` signatures: results in `out`.
fn verify_chunk(items: &[(&[u8], &[u8], &[u8])], out: &mut [bool]) {
    let mut zs = [0u8; 16 * BATCH];
    if getrandom::getrandom(&mut zs).is_err() {
        for (o, (pk, msg, sig)) in out.iter_mut().zip(items) {
            *o = verify_single(pk, msg, sig);
        }
        return;
    }
    let mut scalars: Vec<Scalar> = Vec::with_capacity(2 * items.len() + 1);
    let mut points: Vec<EdwardsPoint> = Vec::with_capacity(2 * items.len() + 1);
    let mut s_sum = Scalar::ZERO;
    let mut in_batch: Vec<usize> = Vec::with_capacity(items.len());
    for (i, (pk, msg, sig)) in items.iter().enumerate() {
        out[i] = false;
        let Some((pk, r, s)) = split(pk, sig) else { continue };
        // A non-canonical R never matches libsodium's re-encoded R; x = 0 (y = ±1) is blocklisted.
        if !encodings_pass(&pk, &r, &s) || !y_is_canonical(&r) {
            continue;
        }
        let Some(a) = CompressedEdwardsY(pk).decompress() else { continue };
        let Some(rp) = CompressedEdwardsY(r).decompress() else { continue };
        if !torsion_free(&rp) || !torsion_free(&a) {
            // the batch equation would not decide these as libsodium does
            out[i] = verify_single(&pk, msg, sig);
            continue;
        }
        let mut zb = [0u8; 32];
        zb[..16].copy_from_slice(&zs[16 * i..16 * i + 16]);
        let z = Scalar::from_bytes_mod_order(zb);
        let h = challenge(&r, &pk, msg);
        s_sum += z * Scalar::from_bytes_mod_order(s);
        scalars.push(z);
        points.push(rp);
        scalars.push(z * h);
        points.push(a);
        in_batch.push(i);
    }
    if in_batch.is_empty() {
        return;
    }
    scalars.push(-s_sum);
    points.push(curve25519_dalek::constants::ED25519_BASEPOINT_POINT);
    if EdwardsPoint::vartime_multiscalar_mul(&scalars, &points).is_identity() {
        for i in in_batch {
            out[i] = true;
        }
    } else {
        for i in in_batch {
            let (pk, msg, sig) = items[i];
            out[i] = verify_single(pk, msg, sig);
        }
    }
}

type Triple<'py> = (Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>);

fn triples<'py>(items: &Bound<'py, PyAny>) -> PyResult<Vec<Triple<'py>>> {
    items.try_iter()?.map(|it| it?.extract::<Triple<'py>>()).collect()
}

/// True if `signature` (64 bytes) is `public_key`'s (32 bytes) signature of `message`, by
/// libsodium's rules. Wrong lengths are False, as in crev.core.signing.
#[pyfunction]
fn verify(py: Python<'_>, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    py.detach(|| verify_single(public_key, message, signature))
}

/// Verify an iterable of (public_key, message, signature) bytes triples one by one; the list of
/// results in order. The GIL is released for the whole list.
#[pyfunction]
fn verify_many(py: Python<'_>, items: &Bound<'_, PyAny>) -> PyResult<Vec<bool>> {
    let held = triples(items)?;
    let views: Vec<(&[u8], &[u8], &[u8])> =
        held.iter().map(|(p, m, s)| (p.as_bytes(), m.as_bytes(), s.as_bytes())).collect();
    Ok(py.detach(|| views.iter().map(|(p, m, s)| verify_single(p, m, s)).collect()))
}

/// As `verify_many`, by batch equations of 64 signatures (random 128-bit coefficients), each R and
/// A checked torsion-free first; a failing batch is verified one by one, so each result is exactly
/// `verify`'s (but for a 2^-128 chance).
#[pyfunction]
fn verify_batch(py: Python<'_>, items: &Bound<'_, PyAny>) -> PyResult<Vec<bool>> {
    let held = triples(items)?;
    let views: Vec<(&[u8], &[u8], &[u8])> =
        held.iter().map(|(p, m, s)| (p.as_bytes(), m.as_bytes(), s.as_bytes())).collect();
    Ok(py.detach(|| {
        let mut out = vec![false; views.len()];
        for (chunk, res) in views.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            verify_chunk(chunk, res);
        }
        out
    }))
}

#[pymodule(gil_used = false)]
fn crev_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(verify_many, m)?)?;
    m.add_function(wrap_pyfunction!(verify_batch, m)?)?;
    m.add_function(wrap_pyfunction!(codec::encode, m)?)?;
    m.add_function(wrap_pyfunction!(codec::parse_readings_tx, m)?)?;
    m.add_function(wrap_pyfunction!(codec::new_slotted, m)?)?;
    m.add_function(wrap_pyfunction!(codec::state_leaf, m)?)?;
    m.add_function(wrap_pyfunction!(codec::event_dict, m)?)?;
    m.add_function(wrap_pyfunction!(merkle::merkle_parents, m)?)?;
    m.add_function(wrap_pyfunction!(merkle::merkle_update, m)?)?;
    m.add_function(wrap_pyfunction!(bucket::bucket_pack, m)?)?;
    m.add_function(wrap_pyfunction!(bucket::bucket_fold, m)?)?;
    m.add_function(wrap_pyfunction!(bucket::tree_set_many, m)?)?;
    m.add_function(wrap_pyfunction!(bucket::bucket_fold_many, m)?)?;
    m.add_function(wrap_pyfunction!(rows::pack_state_rows, m)?)?;
    m.add_function(wrap_pyfunction!(rows::pack_event_rows, m)?)?;
    m.add_class::<spans::SpanReader>()?;
    m.add_class::<records::RecordCodec>()?;
    m.add_function(wrap_pyfunction!(records::map_keys, m)?)?;
    m.add("LIBSODIUM_RULES", "1.0.20-stable crypto_sign_verify_detached")?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
