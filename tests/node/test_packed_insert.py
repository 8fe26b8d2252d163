"""``packed.insert_packed`` writes the rows it is given and keeps none of them: SQLite holds a
statement's bound values until they are bound again, and the connection caches the statement, so
a checkpoint's packed arrays (tens of MB at full load) stayed allocated until the next checkpoint
(``sqlite3_memory_used`` after a flush grew to 156 MB at 2M readings, docs/benchmarks.md)."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from crev.node.packed import SQLITE_JSON, PackedRows, insert_packed

pytestmark = pytest.mark.skipif(not SQLITE_JSON, reason="packed rows need SQLite >= 3.38 (->>)")

BLOB = 20_000_000  # [B] one blob cell's value


def memory_used() -> int:
    """``sqlite3_memory_used()`` of the SQLite library Python's ``sqlite3`` module uses."""
    name = ctypes.util.find_library("sqlite3")
    if name is None:
        pytest.skip("no shared SQLite library to ask (Python's may be linked in statically)")
    lib = ctypes.CDLL(name)
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    return int(lib.sqlite3_memory_used())


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A file database caching 16 pages: what it writes is not held in memory."""
    con = sqlite3.connect(tmp_path / "t.sqlite", isolation_level=None)
    con.execute("PRAGMA cache_size = 16")
    con.execute("CREATE TABLE t (n INTEGER, s TEXT, b BLOB)")
    yield con
    con.close()


def test_the_rows_are_written_and_the_bound_arrays_let_go(db: sqlite3.Connection) -> None:
    blob = bytes(range(256)) * (BLOB // 256)
    rows = PackedRows(json.dumps([[7, "a\u00e9\"", 1, 3], [8, "b", 4, len(blob) - 3]]), blob, 2)
    # the probe sees this library's memory: a statement left bound to the blob holds it
    before = memory_used()
    db.execute("SELECT length(?)", (blob,)).fetchall()
    if memory_used() - before < BLOB:
        pytest.skip("sqlite3_memory_used does not count the sqlite3 module's connections here")
    db.execute("SELECT length(?)", (b"",)).fetchall()
    before = memory_used()
    insert_packed(db, "INSERT INTO t", "itb", rows)
    assert db.execute("SELECT n, s, length(b), substr(b, 1, 3) FROM t ORDER BY n").fetchall() == [
        (7, "a\u00e9\"", 3, b"\x00\x01\x02"), (8, "b", len(blob) - 3, b"\x03\x04\x05")]
    assert memory_used() - before < 1_000_000, "the packed arrays are still bound"
