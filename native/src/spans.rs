//! A block's state-tree buckets read from the node's SQLite state file in one call, with the GIL
//! released for all of them (crev.node.store.Store.span_reader, LazyStateTree.load_many).
//!
//! Python's `sqlite3` module hands the interpreter lock back around every step of a query (every
//! row), and a thread beside busy ones then waits up to the switch interval (5 ms) to take it back:
//! a sealer that reads a block's few thousand buckets one query each spent most of its time
//! waiting for the lock (docs/benchmarks.md, "Where the latency goes"). Here every row of every
//! bucket is read, hashed and packed into the held form (`bucket.rs`) while the lock is free, in
//! one read transaction, and the lock is taken back once.
//!
//! The SQLite library is the one Python's `_sqlite3` module uses, found in the process with
//! `dlopen(RTLD_NOLOAD)`, never a copy of its own: SQLite keeps its POSIX advisory locks in a table
//! per library copy, and a second copy that closed its own descriptor of the file would drop the
//! locks the first holds (a corrupt write-ahead log). `SpanReader.open` declines (None) unless the
//! `sqlite3_open_v2` that `_sqlite3`'s own handle resolves is the very function it calls.
//!
//! Rows it cannot judge the way the reference does (a key that is not UTF-8 text, a value that is
//! NULL, a key twice, a key over 65,535 bytes) leave their bucket to the reference (None), which
//! reads it again and refuses it with the keys named.

use std::collections::HashSet;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::Mutex;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::bucket::{Entry, key_hash32, leaf_hash_raw, pack_rows};

const RTLD_NOW: c_int = 2;
const RTLD_NOLOAD: c_int = 4;
const SQLITE_OK: c_int = 0;
const SQLITE_ROW: c_int = 100;
const SQLITE_DONE: c_int = 101;
const SQLITE_TEXT: c_int = 3;
const SQLITE_NULL: c_int = 5;
const SQLITE_OPEN_READONLY: c_int = 0x1;
const SQLITE_OPEN_NOMUTEX: c_int = 0x8000; // the Mutex below serialises the connection's use
const BUSY_TIMEOUT_MS: c_int = 120_000;
const SPAN_SQL: &CStr = c"SELECT key, CAST(value AS BLOB) FROM state WHERE kh >= ?1 AND kh < ?2";
const VALUE_SQL: &CStr = c"SELECT CAST(value AS BLOB) FROM state WHERE kh = ?1 AND key = ?2";
const SQLITE_TRANSIENT: isize = -1;

unsafe extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

type Db = *mut c_void;
type Stmt = *mut c_void;

type OpenV2 = unsafe extern "C" fn(*const c_char, *mut Db, c_int, *const c_char) -> c_int;
type OfDb = unsafe extern "C" fn(Db) -> c_int;
type PrepareV2 = unsafe extern "C" fn(Db, *const c_char, c_int, *mut Stmt, *mut *const c_char) -> c_int;
type BindInt64 = unsafe extern "C" fn(Stmt, c_int, i64) -> c_int;
type BindText = unsafe extern "C" fn(Stmt, c_int, *const c_char, c_int, isize) -> c_int;
type OfStmt = unsafe extern "C" fn(Stmt) -> c_int;
type ColumnInt = unsafe extern "C" fn(Stmt, c_int) -> c_int;
type ColumnBlob = unsafe extern "C" fn(Stmt, c_int) -> *const c_void;
type ColumnText = unsafe extern "C" fn(Stmt, c_int) -> *const u8;
type Exec = unsafe extern "C" fn(Db, *const c_char, *const c_void, *const c_void, *mut *mut c_char) -> c_int;
type BusyTimeout = unsafe extern "C" fn(Db, c_int) -> c_int;
type ErrMsg = unsafe extern "C" fn(Db) -> *const c_char;

/// The SQLite C functions used, as resolved in the process's one copy of the library.
#[derive(Clone, Copy)]
struct Api {
    open_v2: OpenV2,
    close_v2: OfDb,
    prepare_v2: PrepareV2,
    bind_int64: BindInt64,
    bind_text: BindText,
    step: OfStmt,
    reset: OfStmt,
    finalize: OfStmt,
    column_type: ColumnInt,
    column_blob: ColumnBlob,
    column_text: ColumnText,
    column_bytes: ColumnInt,
    exec: Exec,
    busy_timeout: BusyTimeout,
    errmsg: ErrMsg,
}

/// The functions of the SQLite library already loaded in the process, provided that `module_file`
/// (the path of Python's `_sqlite3` extension) resolves `sqlite3_open_v2` to the same function.
fn process_sqlite(module_file: &str) -> Option<Api> {
    let lib = CString::new("libsqlite3.so.0").ok()?;
    let module = CString::new(module_file).ok()?;
    let flags = RTLD_NOW | RTLD_NOLOAD;
    // SAFETY: RTLD_NOLOAD only looks up objects already loaded; the handles are never closed.
    let (h, hm) = unsafe { (dlopen(lib.as_ptr(), flags), dlopen(module.as_ptr(), flags)) };
    if h.is_null() || hm.is_null() {
        return None;
    }
    let sym = |name: &CStr| -> Option<*mut c_void> {
        // SAFETY: dlsym on a live handle with a NUL-terminated name.
        let p = unsafe { dlsym(h, name.as_ptr()) };
        (!p.is_null()).then_some(p)
    };
    let open = sym(c"sqlite3_open_v2")?;
    // SAFETY: as above, on _sqlite3's handle (searched with its dependencies).
    if unsafe { dlsym(hm, c"sqlite3_open_v2".as_ptr()) } != open {
        return None; // _sqlite3 uses another copy (linked statically, say): not ours to open a second
    }
    macro_rules! f {
        ($name:literal, $ty:ty) => {
            // SAFETY: the symbol is SQLite's C function of that name, whose C signature `$ty` is.
            unsafe { std::mem::transmute::<*mut c_void, $ty>(sym($name)?) }
        };
    }
    Some(Api {
        open_v2: f!(c"sqlite3_open_v2", OpenV2),
        close_v2: f!(c"sqlite3_close_v2", OfDb),
        prepare_v2: f!(c"sqlite3_prepare_v2", PrepareV2),
        bind_int64: f!(c"sqlite3_bind_int64", BindInt64),
        bind_text: f!(c"sqlite3_bind_text", BindText),
        step: f!(c"sqlite3_step", OfStmt),
        reset: f!(c"sqlite3_reset", OfStmt),
        finalize: f!(c"sqlite3_finalize", OfStmt),
        column_type: f!(c"sqlite3_column_type", ColumnInt),
        column_blob: f!(c"sqlite3_column_blob", ColumnBlob),
        column_text: f!(c"sqlite3_column_text", ColumnText),
        column_bytes: f!(c"sqlite3_column_bytes", ColumnInt),
        exec: f!(c"sqlite3_exec", Exec),
        busy_timeout: f!(c"sqlite3_busy_timeout", BusyTimeout),
        errmsg: f!(c"sqlite3_errmsg", ErrMsg),
    })
}

/// One read-only connection and its prepared queries: a bucket's rows, one entry's value.
struct Conn {
    api: Api,
    db: Db,
    stmt: Stmt,
    value_stmt: Stmt,
}

// SAFETY: the connection is opened NOMUTEX and only ever used under SpanReader's Mutex.
unsafe impl Send for Conn {}

impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: both were created by this Conn and are released once.
        unsafe {
            (self.api.finalize)(self.stmt);
            (self.api.finalize)(self.value_stmt);
            (self.api.close_v2)(self.db);
        }
    }
}

type Rows = Vec<(Vec<u8>, Vec<u8>)>;

impl Conn {
    fn error(&self, what: &str) -> String {
        // SAFETY: errmsg returns a NUL-terminated string owned by the connection.
        let msg = unsafe { CStr::from_ptr((self.api.errmsg)(self.db)) };
        format!("{what}: {}", msg.to_string_lossy())
    }

    fn exec(&self, sql: &CStr) -> Result<(), String> {
        let (none, no_err) = (std::ptr::null(), std::ptr::null_mut());
        // SAFETY: a live connection and a NUL-terminated statement.
        let rc = unsafe { (self.api.exec)(self.db, sql.as_ptr(), none, none, no_err) };
        if rc == SQLITE_OK { Ok(()) } else { Err(self.error(&sql.to_string_lossy())) }
    }

    /// The (key, value) rows of `kh` in [low, high); Ok(None) if one is not (UTF-8 text, non-NULL).
    fn span(&self, low: i64, high: i64) -> Result<Option<Rows>, String> {
        let api = &self.api;
        let st = self.stmt;
        let mut rows = Vec::new();
        let mut judged = true;
        // SAFETY: the prepared statement of this connection; a column's pointer is read before the
        // next step and copied.
        unsafe {
            (api.reset)(st);
            (api.bind_int64)(st, 1, low);
            (api.bind_int64)(st, 2, high);
            loop {
                match (api.step)(st) {
                    SQLITE_ROW => {
                        if (api.column_type)(st, 0) != SQLITE_TEXT || (api.column_type)(st, 1) == SQLITE_NULL {
                            judged = false;
                            continue;
                        }
                        let k = (api.column_text)(st, 0);
                        let kn = (api.column_bytes)(st, 0) as usize;
                        let key = if kn == 0 { Vec::new() } else { std::slice::from_raw_parts(k, kn).to_vec() };
                        let v = (api.column_blob)(st, 1) as *const u8;
                        let vn = (api.column_bytes)(st, 1) as usize;
                        let value = if vn == 0 { Vec::new() } else { std::slice::from_raw_parts(v, vn).to_vec() };
                        if std::str::from_utf8(&key).is_err() {
                            judged = false;
                        }
                        rows.push((key, value));
                    }
                    SQLITE_DONE => break,
                    _ => {
                        let err = self.error("reading the state entries of a bucket");
                        (api.reset)(st);
                        return Err(err);
                    }
                }
            }
            (api.reset)(st);
        }
        Ok(judged.then_some(rows))
    }

    /// The stored value of `key` (whose `kh` is `kh`), if any (None also for a NULL value, which
    /// `Checkpoint.value` then reads and refuses itself).
    fn value(&self, kh: u32, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let api = &self.api;
        let st = self.value_stmt;
        let Ok(n) = c_int::try_from(key.len()) else { return Ok(None) };
        // SAFETY: the prepared statement of this connection; the text is copied (TRANSIENT); the
        // column's pointer is read before the next step and copied.
        unsafe {
            (api.reset)(st);
            (api.bind_int64)(st, 1, i64::from(kh));
            (api.bind_text)(st, 2, key.as_ptr().cast(), n, SQLITE_TRANSIENT);
            let out = match (api.step)(st) {
                SQLITE_ROW if (api.column_type)(st, 0) != SQLITE_NULL => {
                    let v = (api.column_blob)(st, 0) as *const u8;
                    let vn = (api.column_bytes)(st, 0) as usize;
                    Ok(Some(if vn == 0 { Vec::new() } else { std::slice::from_raw_parts(v, vn).to_vec() }))
                }
                SQLITE_ROW | SQLITE_DONE => Ok(None),
                _ => Err(self.error("reading a state entry")),
            };
            (api.reset)(st);
            out
        }
    }
}

/// A bucket's rows → its held form and hash, as `bucket_pack` gives them (None: a key twice or
/// too long, for the reference to refuse).
fn packed_bucket(rows: &Rows) -> Option<(Vec<u8>, [u8; 32])> {
    let entries: Option<Vec<Entry>> = rows.iter().map(|(k, v)| Some((k.clone(), leaf_hash_raw(k, v)?))).collect();
    pack_rows(entries?)
}

type Read = (Vec<Option<(Vec<u8>, [u8; 32])>>, Rows);

/// `SpanReader.read`'s reads, inside its transaction.
fn read_in(conn: &Conn, buckets: &[u32], shift: u32, reads: &[(u32, Vec<u8>)], wanted: &HashSet<&[u8]>)
           -> Result<Read, String> {
    let mut out = Vec::with_capacity(buckets.len());
    let mut found: Rows = Vec::new();
    for &b in buckets {
        let Some(rows) = conn.span(i64::from(b) << shift, (i64::from(b) + 1) << shift)? else {
            out.push(None);
            continue;
        };
        let h = packed_bucket(&rows);
        if h.is_some() {
            found.extend(rows.into_iter().filter(|(k, _)| wanted.contains(k.as_slice())));
        }
        out.push(h);
    }
    let fetched: HashSet<u32> = buckets.iter().copied().collect();
    for (kh, key) in reads {
        if fetched.contains(&(kh >> shift)) {
            continue; // read with its bucket
        }
        if let Some(v) = conn.value(*kh, key)? {
            found.push((key.clone(), v));
        }
    }
    Ok((out, found))
}

/// A read-only connection to a node's state file through the process's own SQLite.
#[pyclass(frozen, module = "crev_native")]
pub struct SpanReader {
    conn: Mutex<Conn>,
}

#[pymethods]
impl SpanReader {
    /// A reader of the state file at `path`, or None where the SQLite library Python's `_sqlite3`
    /// (at `sqlite_module_file`) uses is not one this process can share (module docstring).
    /// Raises OSError if SQLite cannot open the file.
    #[staticmethod]
    fn open(path: &str, sqlite_module_file: &str) -> PyResult<Option<SpanReader>> {
        let Some(api) = process_sqlite(sqlite_module_file) else { return Ok(None) };
        let cpath = CString::new(path).map_err(|_| PyOSError::new_err("a path holding NUL"))?;
        let mut db: Db = std::ptr::null_mut();
        let flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX;
        // SAFETY: open_v2 writes a handle (even on failure, which close_v2 then releases).
        let rc = unsafe { (api.open_v2)(cpath.as_ptr(), &mut db, flags, std::ptr::null()) };
        let mut conn = Conn { api, db, stmt: std::ptr::null_mut(), value_stmt: std::ptr::null_mut() };
        if rc != SQLITE_OK {
            return Err(PyOSError::new_err(conn.error(&format!("opening {path}"))));
        }
        // SAFETY: a live connection; the statement is finalized by Conn's Drop.
        let rc = unsafe {
            (api.busy_timeout)(db, BUSY_TIMEOUT_MS);
            let rc = (api.prepare_v2)(db, SPAN_SQL.as_ptr(), -1, &mut conn.stmt, std::ptr::null_mut());
            if rc == SQLITE_OK {
                (api.prepare_v2)(db, VALUE_SQL.as_ptr(), -1, &mut conn.value_stmt, std::ptr::null_mut())
            } else {
                rc
            }
        };
        if rc != SQLITE_OK {
            return Err(PyOSError::new_err(conn.error("preparing the state queries")));
        }
        Ok(Some(SpanReader { conn: Mutex::new(conn) }))
    }

    /// Read the buckets of `keys` (a key's bucket: its `key_hash32` >> `shift`; its entries: those
    /// whose `kh` lies in [b << shift, (b + 1) << shift)) that `held` (bucket → held form) lacks,
    /// and the stored values of `reads` (from those buckets' rows, or one by one where the bucket
    /// is held), in one read transaction with the GIL released. Returns the buckets read, in
    /// order; for each, (held bucket, bucket hash) as `bucket_pack` gives them, or None where the
    /// reference must judge its rows; and the values of `reads` found.
    fn read<'py>(&self, py: Python<'py>, keys: Vec<String>, shift: u32, held: &Bound<'py, PyDict>,
                 reads: Vec<String>) -> PyResult<(Vec<u32>, Bound<'py, PyList>, Bound<'py, PyDict>)> {
        if !(1..=31).contains(&shift) {
            return Err(PyOSError::new_err("shift must be 1..31"));
        }
        let mut all: Vec<u32> = keys.iter().map(|k| key_hash32(k.as_bytes()) >> shift).collect();
        all.sort_unstable();
        all.dedup();
        let mut buckets = Vec::with_capacity(all.len());
        for b in all {
            if !held.contains(b)? {
                buckets.push(b);
            }
        }
        let reads: Vec<(u32, Vec<u8>)> =
            reads.into_iter().map(|k| (key_hash32(k.as_bytes()), k.into_bytes())).collect();
        let wanted: HashSet<&[u8]> = reads.iter().map(|(_, k)| k.as_slice()).collect();
        let read = py.detach(|| -> Result<Read, String> {
            let conn = self.conn.lock().map_err(|_| "the span reader failed before".to_string())?;
            conn.exec(c"BEGIN")?;
            let got = read_in(&conn, &buckets, shift, &reads, &wanted);
            conn.exec(if got.is_ok() { c"COMMIT" } else { c"ROLLBACK" })?;
            got
        });
        let (packed, found) = read.map_err(PyOSError::new_err)?;
        let list = PyList::empty(py);
        for item in packed {
            match item {
                Some((h, hash)) => list.append((PyBytes::new(py, &h), PyBytes::new(py, &hash)))?,
                None => list.append(py.None())?,
            }
        }
        let dict = PyDict::new(py);
        for (k, v) in found {
            // a key from `reads` (a str), or one `span` checked UTF-8
            dict.set_item(String::from_utf8_lossy(&k), PyBytes::new(py, &v))?;
        }
        Ok((buckets, list, dict))
    }
}
