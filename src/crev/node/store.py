"""SQLite storage for blocks, transactions with their results, the state snapshot and the
off-chain index (readings, lots, unit movements, orders) that reports, trace, export and the node's
open-order index read.

Two files, each in WAL mode with ``synchronous=FULL`` and each with its own write lock: the chain
(blocks, transactions, results; ``ledger.chain.sqlite``, ``chain_file``) and the state file (state
snapshot, index, meta; ``ledger.sqlite``), attached to one connection as schemas ``chain`` and
``main``, so queries join them as one database. Two kinds of write, one per file:

* ``commit_block`` appends a block with its transactions and results to the chain's file, one
  transaction and one fsync per block. When it returns, the block survives a power cut or kill -9;
  this is the point at which a submitter gets its receipt.
* ``write_checkpoint`` stores the state entries and index rows up to some height, coalesced over
  many blocks, in the background, to the state file. After a crash the node loads the last
  checkpoint and replays the blocks after it through ``apply_block``, which recreates both
  exactly. The checkpoint height never goes back (``CheckpointError``), and index rows are keyed so
  that indexing a block twice adds nothing. A checkpoint covers blocks already committed, so the
  chain's file always reaches at least the state file's checkpoint.

SQLite lets one transaction at a time write a file: in one file, a block commit that came while a
checkpoint was being written waited for all of it (measured: checkpoints held the lock about half
the time at 4,000 readings/s, and the p99 from submission to receipt passed 1 s). In two files, it
never waits for one.

Each state entry is stored under (``kh``, key), ``kh`` being the first 32 bits of SHA-256(key)
(``key_hash32``), so the entries of one state-tree bucket are one range of the table. Each
checkpoint also stores the state tree's bucket hashes (table ``state_buckets``: 32 bytes per
bucket, 64 buckets a row, only the rows whose buckets changed rewritten) in the same
transaction: a reader rebuilds the tree from them, checks the root against the checkpoint block's
signed header, and then loads and checks only the buckets it needs (``node/lazystate.py``).

The state file's write-ahead log is copied into the database and emptied after every state
checkpoint (``checkpoint_wal``; the chain's is copied by SQLite's automatic checkpoints), and both
are cut back to ``WAL_LIMIT`` bytes whenever SQLite restarts them (``journal_size_limit``), so the
state file's stays near the size of one checkpoint's writes instead of growing until the last
connection closes.

A ``Store(path, readonly=True)`` never writes the files: it opens them ``mode=ro`` inside one read
transaction (a consistent snapshot beside a running writer) and indexes blocks the checkpoint does
not cover yet into TEMP tables on its own connection only, behind TEMP views that show the file's
rows and those together under the index tables' names (``index_in_memory``).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crev.core.encoding import decode
from crev.core.statetree import HASH_SIZE, BucketHashes, BucketHashRows, SpansRead, key_hash32
from crev.ledger.apply import BlockOutcome, TxResult
from crev.ledger.block import Block, Header
from crev.ledger.events import (
    Cancelled,
    DeviceRegistered,
    DeviceUpdated,
    Issued,
    ReadingAccepted,
    Retired,
    Traded,
    Transferred,
)
from crev.ledger.messages.submit_readings import SubmitReadings
from crev.node.packed import LOT_ROWS, READING_ROWS, STATE_KINDS, PackedRows, insert_packed, packed, rows_kernel
from crev.node.spans import SpanReader, open_span_reader

log = logging.getLogger(__name__)

# The chain: blocks and their transactions with results, in a file of their own (``chain_file``),
# attached to every connection as schema ``chain``.
CHAIN_SCHEMA = """
CREATE TABLE IF NOT EXISTS chain.blocks (
  height INTEGER PRIMARY KEY, hash BLOB NOT NULL, header BLOB NOT NULL, signature BLOB NOT NULL,
  time INTEGER NOT NULL, tx_count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chain.txs (
  height INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, kind TEXT NOT NULL,
  ok INTEGER NOT NULL, raw BLOB NOT NULL, result BLOB NOT NULL, PRIMARY KEY (height, idx));
CREATE INDEX IF NOT EXISTS chain.txs_by_hash ON txs(hash);
"""
# The state snapshot, the off-chain index and meta: the file the checkpoints write.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS state (
  kh INTEGER NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (kh, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state_buckets (chunk INTEGER PRIMARY KEY, hashes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ix_readings (
  device_id TEXT NOT NULL, seq INTEGER NOT NULL, interval_start INTEGER NOT NULL,
  interval_s INTEGER NOT NULL, generation_wh INTEGER NOT NULL, import_wh INTEGER NOT NULL,
  export_wh INTEGER NOT NULL, lot_id TEXT NOT NULL, reading_hash BLOB NOT NULL,
  height INTEGER NOT NULL, tx_hash BLOB NOT NULL, owner TEXT NOT NULL,
  PRIMARY KEY (device_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ix_lots (
  lot_id TEXT PRIMARY KEY, first_unit INTEGER NOT NULL, quantity_g INTEGER NOT NULL,
  device_id TEXT NOT NULL, owner TEXT NOT NULL, slot_id INTEGER NOT NULL,
  self_consumed_wh INTEGER NOT NULL, factor_g_per_kwh INTEGER NOT NULL, origin TEXT NOT NULL,
  height INTEGER NOT NULL, tx_hash BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS ix_lots_unit ON ix_lots(first_unit);
CREATE TABLE IF NOT EXISTS ix_moves (
  lot_id TEXT NOT NULL, kind TEXT NOT NULL, party TEXT NOT NULL, counterparty TEXT NOT NULL,
  start_unit INTEGER NOT NULL, end_unit INTEGER NOT NULL, ref TEXT NOT NULL,
  height INTEGER NOT NULL, tx_hash BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS ix_moves_lot ON ix_moves(lot_id);
CREATE INDEX IF NOT EXISTS ix_moves_to ON ix_moves(counterparty);
CREATE INDEX IF NOT EXISTS ix_lots_owner ON ix_lots(owner);
CREATE TABLE IF NOT EXISTS ix_orders (
  order_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, market_id TEXT NOT NULL, account TEXT NOT NULL,
  side TEXT NOT NULL, status TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_orders_account ON ix_orders(account, seq);
CREATE INDEX IF NOT EXISTS ix_orders_open ON ix_orders(seq) WHERE status = 'open';
CREATE TABLE IF NOT EXISTS ix_devices (device_id TEXT PRIMARY KEY, owner TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_devices_owner ON ix_devices(owner);
"""
# A unit movement is indexed once however often its block is indexed (a replay after a crash, a
# checkpoint written twice): INSERT OR IGNORE against this key.
MOVES_KEY = "CREATE UNIQUE INDEX IF NOT EXISTS ix_moves_once ON ix_moves(tx_hash, lot_id, kind, start_unit)"
# The state's big kinds (lots l/, reading records r/, retirements t/, slot tallies v/, control
# records c/), read in one pass over the table when a read-only view needs all of one; the small
# kinds (all others) are listed by key (all devices, all markets, all factor rows). Orders (o/) are
# listed by key too, but a node holds only the open ones (``ix_orders`` finds the others).
BIG_KINDS = ("l/", "r/", "t/", "v/", "c/")
SMALL_KINDS = "substr(key, 1, 2) NOT IN ('l/', 'r/', 't/', 'v/', 'c/')"
# Created by _migrate, after the columns they cover exist in a database from an earlier version.
LATER_INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_readings_owner ON ix_readings(owner, device_id)",
    "CREATE INDEX IF NOT EXISTS ix_readings_start ON ix_readings(interval_start)",  # /v1/devices "today"
    # named _2 since v/ and c/ joined the big kinds (a partial index serves only the WHERE it was made
    # with); the first one is dropped
    "DROP INDEX IF EXISTS state_small_kinds",
    f"CREATE INDEX IF NOT EXISTS state_small_kinds_2 ON state(key) WHERE {SMALL_KINDS}",
)
INDEX_TABLES = ("ix_readings", "ix_lots", "ix_moves")
# meta key set once ix_orders holds a row for every order of the stored state (filled on migration)
ORDERS_INDEXED_KEY = "ix_orders_filled"
# ... and once ix_devices holds every stored device's owner
DEVICES_INDEXED_KEY = "ix_devices_filled"
# The index tables' shape and indexes for the TEMP tables of a read-only store's later blocks.
TAIL_SCHEMA = """
CREATE TEMP TABLE tail_ix_readings (
  device_id TEXT NOT NULL, seq INTEGER NOT NULL, interval_start INTEGER NOT NULL,
  interval_s INTEGER NOT NULL, generation_wh INTEGER NOT NULL, import_wh INTEGER NOT NULL,
  export_wh INTEGER NOT NULL, lot_id TEXT NOT NULL, reading_hash BLOB NOT NULL,
  height INTEGER NOT NULL, tx_hash BLOB NOT NULL, owner TEXT NOT NULL,
  PRIMARY KEY (device_id, seq)) WITHOUT ROWID;
CREATE INDEX temp.tail_ix_readings_owner ON tail_ix_readings(owner, device_id);
CREATE INDEX temp.tail_ix_readings_start ON tail_ix_readings(interval_start);
CREATE TEMP TABLE tail_ix_lots (
  lot_id TEXT PRIMARY KEY, first_unit INTEGER NOT NULL, quantity_g INTEGER NOT NULL,
  device_id TEXT NOT NULL, owner TEXT NOT NULL, slot_id INTEGER NOT NULL,
  self_consumed_wh INTEGER NOT NULL, factor_g_per_kwh INTEGER NOT NULL, origin TEXT NOT NULL,
  height INTEGER NOT NULL, tx_hash BLOB NOT NULL);
CREATE INDEX temp.tail_ix_lots_unit ON tail_ix_lots(first_unit);
CREATE INDEX temp.tail_ix_lots_owner ON tail_ix_lots(owner);
CREATE TEMP TABLE tail_ix_moves (
  lot_id TEXT NOT NULL, kind TEXT NOT NULL, party TEXT NOT NULL, counterparty TEXT NOT NULL,
  start_unit INTEGER NOT NULL, end_unit INTEGER NOT NULL, ref TEXT NOT NULL,
  height INTEGER NOT NULL, tx_hash BLOB NOT NULL);
CREATE INDEX temp.tail_ix_moves_lot ON tail_ix_moves(lot_id);
CREATE INDEX temp.tail_ix_moves_to ON tail_ix_moves(counterparty);
CREATE UNIQUE INDEX temp.tail_ix_moves_once ON tail_ix_moves(tx_hash, lot_id, kind, start_unit);
"""
# The write-ahead log is cut back to this size whenever SQLite restarts it (journal_size_limit).
WAL_LIMIT = 64 << 20
WAL_WAIT_MS = 50  # how long emptying the log after a checkpoint waits for readers (block commits wait too)
BUSY_TIMEOUT_S = 120
# The state tree's bucket hashes at the checkpoint are stored in rows of CHUNK_BUCKETS (2 KiB), so a
# checkpoint rewrites only the rows whose buckets changed; meta state_buckets_height says which
# checkpoint they belong to.
CHUNK_BUCKETS = 64
# connections that read a query's buckets ahead at once (``Store.read_ahead``)
READ_AHEAD_THREADS = 8
BUCKETS_HEIGHT_KEY = "state_buckets_height"


class CheckpointError(ValueError):
    """A checkpoint that would move the stored checkpoint height backwards: the state snapshot
    and index would no longer match the height recorded with them."""


def chain_file(path: Path | str) -> Path:
    """The file holding the chain (blocks, transactions, results) of the store at ``path``:
    ``ledger.sqlite`` → ``ledger.chain.sqlite``."""
    p = Path(path)
    return p.with_name(f"{p.stem}.chain{p.suffix}")


@dataclass(frozen=True)
class WriteLocks:
    """The locks shared by the stores of one process that write one ledger (the node's sealer and
    its checkpoint thread): one per file. Each write transaction holds its file's lock, so a writer
    waiting for the other waits on it and starts the moment it is released, instead of in SQLite's
    busy handler, which sleeps in growing steps (up to 100 ms each) and retries. A block commit
    takes ``chain`` only and a checkpoint ``state`` only: neither waits for the other."""

    state: threading.Lock = field(default_factory=threading.Lock)
    chain: threading.Lock = field(default_factory=threading.Lock)


class Store:
    def __init__(self, path: Path | str, readonly: bool = False, locks: WriteLocks | None = None) -> None:
        """``path``: the state file; the chain is in ``chain_file(path)`` beside it, attached as
        schema ``chain`` (a ledger written before the chain had a file of its own is moved there
        when first opened writable; opened read-only, its blocks are read where they are).

        ``readonly``: never write the files (``mode=ro``), for reading a ledger another process may
        be writing. Index rows for blocks after the checkpoint then go to TEMP tables that shadow
        the index tables on this connection only (``index_in_memory``).

        ``locks``: the process's write locks for this ledger (``WriteLocks``)."""
        self.path = Path(path)
        self.chain_path = chain_file(self.path)
        self.readonly = readonly
        self.locks = locks if locks is not None else WriteLocks()
        self._shadowed = False
        if readonly:
            if not self.path.exists():  # a ledger initialised but never run: no blocks yet
                self.db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                self.db.executescript(SCHEMA)
                self.db.execute(MOVES_KEY)
                for ddl in LATER_INDEXES:
                    self.db.execute(ddl)
                self._attach_empty_chain()
            else:
                self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                          check_same_thread=False, timeout=120)
                legacy = self.db.execute("SELECT 1 FROM main.sqlite_master WHERE name = 'blocks'").fetchone()
                if self.chain_path.exists():
                    self.db.execute("ATTACH ? AS chain", (f"file:{self.chain_path}?mode=ro",))
                elif legacy is None:  # the writer has created the state file but not yet the chain's
                    self._attach_empty_chain()
                # One read transaction for the store's life: every query sees the same snapshot (WAL
                # readers do not block the writer), so the checkpoint, the state entries and the
                # blocks after it cannot come from different moments of a running node. The state
                # file's snapshot is taken first: a node commits a block before any checkpoint that
                # covers it, so the chain read after it holds every block the checkpoint covers.
                self.db.execute("BEGIN")
                self.db.execute("SELECT count(*) FROM main.meta").fetchone()
                self.db.execute("SELECT MAX(height) FROM blocks").fetchone()
        else:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                      timeout=BUSY_TIMEOUT_S)
            self.db.execute("ATTACH ? AS chain", (str(self.chain_path),))
            for schema in ("main", "chain"):
                self.db.execute(f"PRAGMA {schema}.journal_mode=WAL")
                self.db.execute(f"PRAGMA {schema}.synchronous=FULL")
                self.db.execute(f"PRAGMA {schema}.journal_size_limit={WAL_LIMIT}")
            self.db.executescript(SCHEMA)
            self.db.executescript(CHAIN_SCHEMA)
            self._migrate()
        # an earlier version's file opened read-only may lack them (LedgerView then loads in full)
        self.has_key_hashes = ([(r[1], r[5]) for r in self.db.execute("PRAGMA main.table_info(state)")][:2]
                               == [("kh", 1), ("key", 2)]
                               and self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'state_buckets'"
                                                   ).fetchone() is not None)
        # ix_orders lists every stored order (a file written by an earlier version opened read-only may lack it)
        self.has_order_index = self.get_meta(ORDERS_INDEXED_KEY) is not None
        self.has_device_index = self.get_meta(DEVICES_INDEXED_KEY) is not None
        # the kernel's readers of buckets (node/spans.py): the sealer's, the reader thread's; opened on first use
        self._spans: list[SpanReader | None] = []
        self._spans_tried = readonly
        self._spans_lock = threading.Lock()

    def _attach_empty_chain(self) -> None:
        """A read-only store with no chain file to read: an empty chain in memory in its place."""
        self.db.execute("ATTACH ':memory:' AS chain")
        self.db.executescript(CHAIN_SCHEMA)

    def _migrate(self) -> None:
        """Bring a database written by an earlier version up to SCHEMA: ``ix_readings.owner`` (the
        owner at the time is the owner its lot was issued to), ``state`` keyed by (``kh``, key)
        (the table rebuilt, each key's hash prefix computed here), the indexes added since, and
        ``ix_moves`` without the duplicate rows that replays used to add, before its unique key is
        created, and ``ix_orders`` and ``ix_devices`` filled from the stored orders and devices."""
        db = self.db
        self._move_chain()
        if [(r[1], r[5]) for r in db.execute("PRAGMA main.table_info(state)")][:2] != [("kh", 1), ("key", 2)]:
            db.create_function("crev_key_hash32", 1, key_hash32, deterministic=True)
            with self._writing(self.locks.state):
                db.execute("DROP INDEX IF EXISTS state_kh")
                db.execute("CREATE TABLE main.state_keyed (kh INTEGER NOT NULL, key TEXT NOT NULL, "
                           "value BLOB NOT NULL, PRIMARY KEY (kh, key)) WITHOUT ROWID")
                db.execute("INSERT INTO state_keyed SELECT crev_key_hash32(key), key, value FROM state ORDER BY 1, 2")
                db.execute("DROP TABLE state")
                db.execute("ALTER TABLE state_keyed RENAME TO state")
        cols = [r[1] for r in db.execute("PRAGMA main.table_info(ix_readings)")]
        if "owner" not in cols:
            with self._writing(self.locks.state):
                db.execute("ALTER TABLE ix_readings ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
                db.execute("UPDATE ix_readings SET owner = coalesce((SELECT owner FROM ix_lots "
                           "WHERE ix_lots.lot_id = ix_readings.lot_id), '')")
        # after the columns exist (a database from before them gets them just above)
        for ddl in LATER_INDEXES:
            db.execute(ddl)
        self._fill_index(ORDERS_INDEXED_KEY, "o/", "ix_orders", order_index_row)  # orders from before ix_orders
        self._fill_index(DEVICES_INDEXED_KEY, "d/", "ix_devices", device_index_row)  # devices from before ix_devices
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'ix_moves_once'").fetchone() is None:
            with self._writing(self.locks.state):
                db.execute("DELETE FROM ix_moves WHERE rowid NOT IN (SELECT MIN(rowid) FROM ix_moves "
                           "GROUP BY tx_hash, lot_id, kind, start_unit)")
                db.execute(MOVES_KEY)

    def _move_chain(self) -> None:
        """A ledger written before the chain had a file of its own holds its blocks and
        transactions in the state file: copy them to the chain's file, then drop them from the
        state file. Each step is one transaction; after a crash between them, the next open copies
        again (rows already there are kept) and drops. The state file keeps the pages it frees for
        its own later writes (``VACUUM`` gives them back to the file system)."""
        db = self.db
        if db.execute("SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'blocks'").fetchone() is None:
            return
        count, top = db.execute("SELECT COUNT(*), MAX(height) FROM main.blocks").fetchone()
        log.warning("moving %d blocks (up to height %s) from %s to %s, once", count, top, self.path.name,
                    self.chain_path.name)
        with self._writing(self.locks.chain):
            db.execute("INSERT OR IGNORE INTO chain.blocks SELECT * FROM main.blocks")
            db.execute("INSERT OR IGNORE INTO chain.txs SELECT * FROM main.txs")
        with self._writing(self.locks.state):
            db.execute("DROP TABLE main.txs")
            db.execute("DROP TABLE main.blocks")

    def _fill_index(self, done_key: str, prefix: str, table: str, row: Callable[[str, bytes], Row]) -> None:
        """Fill ``table`` with ``row(key, value)`` of every stored state entry under ``prefix`` (a
        small kind), once: ``done_key`` in meta records that it was."""
        if self.get_meta(done_key) is not None:
            return
        with self._writing(self.locks.state) as db:
            entries = db.execute("SELECT key, CAST(value AS BLOB) FROM state WHERE key >= ? AND key < ? "
                                 f"AND {SMALL_KINDS}", (prefix, prefix[0] + "0")).fetchall()
            rows = [row(str(k), bytes(v)) for k, v in entries]
            if rows:
                insert_rows(db, f"INSERT OR REPLACE INTO {table}", rows)
            self.set_meta(done_key, b"1")

    def close(self) -> None:
        self._spans, self._spans_tried = [], True
        self.db.close()  # a read-only store's read transaction ends with it

    # --- meta ------------------------------------------------------------------------------

    def set_meta(self, key: str, value: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    # --- writing a block -------------------------------------------------------------------

    def commit_block(self, block: Block, outcome: BlockOutcome) -> None:
        """Durably append a block and its transactions with their results (one fsync)."""
        h = block.header
        rows = [(h.height, i, res.tx_hash, res.kind, int(res.ok), raw, enc)
                for i, (raw, res, enc) in enumerate(zip(block.txs, outcome.results, outcome.encoded_results,
                                                        strict=True))]
        with self._writing(self.locks.chain) as db:
            db.execute("INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?)",
                       (h.height, h.hash, h.encode(), block.signature, h.time, h.tx_count))
            insert_rows(db, "INSERT INTO txs", rows)

    @contextlib.contextmanager
    def _writing(self, lock: threading.Lock) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding ``lock`` (``self.locks.state`` or ``.chain``: the file it
        writes). BEGIN is deferred, each file's write lock taken by its first write: BEGIN
        IMMEDIATE would take both files' at once, and a block commit would wait for a checkpoint
        again. (A deferred transaction that reads before it writes fails if another connection
        wrote meanwhile; the lock keeps this process's writers of a file apart.)"""
        if self.readonly:
            raise PermissionError(f"{self.path} is open read-only")
        db = self.db
        with lock:
            db.execute("BEGIN")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def write_checkpoint(self, height: int, changes: dict[str, bytes | None],
                         outcomes: Sequence[tuple[int, list[TxResult]]],
                         bucket_hashes: bytes | BucketHashes | BucketHashRows | None = None) -> None:
        """Write the state entries changed up to block ``height``, the index rows of the given
        blocks' results and the state tree's bucket hashes at ``height`` (packed, or as the tree
        gave them, or only the rows of ``CHUNK_BUCKETS`` buckets that changed since the stored ones,
        which must be the previous checkpoint's; without them, any stored ones are dropped: they
        would belong to another height), and record ``height`` as the checkpoint, in one
        transaction. Then copy and empty the write-ahead log. (``prepare_checkpoint`` then
        ``store_checkpoint``, which is this in two steps.)"""
        self.store_checkpoint(prepare_checkpoint(height, changes, outcomes, bucket_hashes))
        self.checkpoint_wal()

    def store_checkpoint(self, cp: PreparedCheckpoint) -> None:
        """Write a prepared checkpoint in one transaction (without emptying the write-ahead log:
        ``checkpoint_wal``). Raises CheckpointError if the stored checkpoint is higher. The rows
        are built already, so the state file's write lock is held for SQLite's own work only, not
        for the Python that built them. It writes the state file only: block commits, which write
        the chain's, go on meanwhile."""
        height = cp.height
        with self._writing(self.locks.state) as db:
            current = db.execute("SELECT v FROM meta WHERE k = 'checkpoint_height'").fetchone()
            if current is not None and int(current[0]) > height:
                raise CheckpointError(f"{self.path}: refusing to move the checkpoint back from height "
                                      f"{int(current[0])} to {height} (another writer has run on this ledger)")
            # an upsert, not INSERT OR REPLACE: a changed device or account keeps its row, so the
            # partial index of the small kinds is not rewritten (measured: 190 → 140 ms CPU for the
            # 32,000 entries of 8,000 readings)
            write_rows(db, "INSERT INTO state (kh, key, value)", STATE_KINDS, cp.upserts,
                       " ON CONFLICT (kh, key) DO UPDATE SET value = excluded.value")
            db.executemany("DELETE FROM state WHERE kh = ? AND key = ?", cp.deletes)
            write_rows(db, "INSERT OR REPLACE INTO ix_readings", READING_ROWS[2], cp.readings)
            write_rows(db, "INSERT OR REPLACE INTO ix_lots", LOT_ROWS[2], cp.lots)
            insert_rows(db, "INSERT OR IGNORE INTO ix_moves", cp.moves)
            insert_rows(db, "INSERT OR REPLACE INTO ix_orders", cp.orders)
            insert_rows(db, "INSERT OR REPLACE INTO ix_devices", cp.devices)
            # the stored bucket hashes are those of the current checkpoint: rewrite the changed rows only
            same = current is not None and self.get_meta(BUCKETS_HEIGHT_KEY) == bytes(current[0])
            self._put_bucket_hashes(height, cp.bucket_hashes, cp.key_hashes if same else None)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('checkpoint_height', ?)", (str(height).encode(),))

    def write_bucket_hashes(self, height: int, bucket_hashes: bytes | BucketHashes) -> None:
        """Store the packed bucket hashes of the state at ``height``, which must be the checkpoint's
        (a node that loaded a snapshot stored without them)."""
        with self._writing(self.locks.state):
            if self.checkpoint_height() != height:
                raise CheckpointError(f"{self.path}: bucket hashes for height {height}, but the checkpoint is "
                                      f"at {self.checkpoint_height()}")
            self._put_bucket_hashes(height, bucket_hashes)

    def _put_bucket_hashes(self, height: int, hashes: bytes | BucketHashes | BucketHashRows | None,
                           changed: Iterable[int] | None = None) -> None:
        """Store ``hashes`` as the bucket hashes of ``height``: only the rows holding the buckets
        of the key hashes ``changed`` if given (the others are already stored), else every row.
        ``hashes`` None drops them."""
        db = self.db
        if hashes is None:
            db.execute("DELETE FROM state_buckets")
            db.execute("DELETE FROM meta WHERE k = ?", (BUCKETS_HEIGHT_KEY,))
            return
        if isinstance(hashes, BucketHashRows):  # the rows that changed since the stored ones: exactly those
            if changed is None or hashes.size != CHUNK_BUCKETS:
                raise CheckpointError(f"{self.path}: only some rows of the bucket hashes of height {height} were "
                                      f"given, and the stored ones are not the previous checkpoint's")
            insert_rows(db, "INSERT OR REPLACE INTO state_buckets", sorted(hashes.rows.items()))
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (BUCKETS_HEIGHT_KEY, str(height).encode()))
            return
        if isinstance(hashes, BucketHashes):
            depth = hashes.depth

            def part(c: int) -> bytes:
                return hashes.packed(c * CHUNK_BUCKETS, CHUNK_BUCKETS)
        else:
            packed = hashes
            depth = (len(packed) // HASH_SIZE).bit_length() - 1
            if len(packed) != HASH_SIZE << depth:
                raise ValueError(f"packed bucket hashes of {len(packed)} bytes: not 32 × a power of two")
            size = HASH_SIZE * CHUNK_BUCKETS

            def part(c: int) -> bytes:
                return packed[c * size:(c + 1) * size]
        if changed is None:
            db.execute("DELETE FROM state_buckets")
            chunks: Iterable[int] = range(-(-(1 << depth) // CHUNK_BUCKETS))
        else:
            chunks = {(kh >> (32 - depth)) // CHUNK_BUCKETS for kh in changed}
        insert_rows(db, "INSERT OR REPLACE INTO state_buckets", [(c, part(c)) for c in sorted(chunks)])
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (BUCKETS_HEIGHT_KEY, str(height).encode()))

    def checkpoint_wal(self) -> None:
        """Copy the write-ahead log into the database and cut it to nothing. First PASSIVE (copies
        what it can, blocking no one), then TRUNCATE, which copies the frames committed meanwhile
        and empties the file, but holds block commits off while it waits for readers: so it waits
        at most ``WAL_WAIT_MS`` for them (a long read beside the node, e.g. an open ``LedgerView``,
        keeps its snapshot; the log is then cut back to ``WAL_LIMIT`` when SQLite next restarts it)."""
        db = self.db
        db.execute("PRAGMA main.wal_checkpoint(PASSIVE)").fetchall()
        db.execute(f"PRAGMA busy_timeout={WAL_WAIT_MS}")
        try:
            with self.locks.state:  # it holds writers off: they wait on the lock, not in SQLite's busy sleeps
                db.execute("PRAGMA main.wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")

    def _insert_index(self, outcomes: Sequence[tuple[int, list[TxResult]]], prefix: str = "") -> None:
        readings, lots, moves = event_index_rows(outcomes)
        db = self.db
        write_rows(db, f"INSERT OR REPLACE INTO {prefix}ix_readings", READING_ROWS[2], readings)
        write_rows(db, f"INSERT OR REPLACE INTO {prefix}ix_lots", LOT_ROWS[2], lots)
        insert_rows(db, f"INSERT OR IGNORE INTO {prefix}ix_moves", moves)

    def index_in_memory(self, outcomes: Sequence[tuple[int, list[TxResult]]]) -> None:
        """Read-only stores: index blocks the checkpoint does not cover yet, on this connection only.
        Their rows go to TEMP tables (``tail_ix_*``); TEMP views named like the index tables show the
        file's rows followed by those (SQLite resolves an unqualified name to TEMP first), so every
        query sees both and still uses each side's indexes (SQLite pushes the WHERE terms into both
        arms of the UNION ALL). Costs what the later blocks hold, not what the file holds.
        ``ix_moves`` keeps a ``rowid`` column: the file's rowids, then the tail's after them."""
        db = self.db
        if not self._shadowed:
            for ddl in TAIL_SCHEMA.split(";"):  # not executescript: it would commit the read transaction
                if ddl.strip():
                    db.execute(ddl)
            for t in INDEX_TABLES:
                cols = [r[1] for r in db.execute(f"PRAGMA temp.table_info(tail_{t})")]
                have = {r[1] for r in db.execute(f"PRAGMA main.table_info({t})")}
                main_cols = ", ".join(c if c in have else f"'' AS {c}" for c in cols)
                names = ", ".join(cols)
                if t == "ix_moves":  # trace orders a lot's movements by rowid
                    top = int(db.execute("SELECT coalesce(max(rowid), 0) FROM main.ix_moves").fetchone()[0])
                    db.execute(f"CREATE TEMP VIEW ix_moves({names}, rowid) AS SELECT {main_cols}, rowid FROM "
                               f"main.ix_moves UNION ALL SELECT {names}, rowid + {top} FROM temp.tail_ix_moves")
                else:
                    db.execute(f"CREATE TEMP VIEW {t}({names}) AS SELECT {main_cols} FROM main.{t} "
                               f"UNION ALL SELECT {names} FROM temp.tail_{t}")
            self._shadowed = True
        self._insert_index(outcomes, "tail_")

    def checkpoint_height(self) -> int:
        v = self.get_meta("checkpoint_height")
        return int(v) if v else 0

    # --- reading ---------------------------------------------------------------------------

    def height(self) -> int:
        row = self.db.execute("SELECT MAX(height) FROM blocks").fetchone()
        return int(row[0] or 0)

    def block(self, height: int) -> Block | None:
        row = self.db.execute("SELECT header, signature, height FROM blocks WHERE height = ?",
                              (height,)).fetchone()
        if row is None:
            return None
        txs = [bytes(r[0]) for r in self.db.execute(
            "SELECT raw FROM txs WHERE height = ? ORDER BY idx", (height,))]
        return Block(Header.decode(bytes(row[0])), bytes(row[1]), tuple(txs))

    def header(self, height: int) -> Header | None:
        """Block ``height``'s header alone (``block`` also reads every transaction)."""
        row = self.db.execute("SELECT header FROM blocks WHERE height = ?", (height,)).fetchone()
        return None if row is None else Header.decode(bytes(row[0]))

    def signature(self, height: int) -> bytes | None:
        """The signature stored with block ``height``'s header."""
        row = self.db.execute("SELECT signature FROM blocks WHERE height = ?", (height,)).fetchone()
        return None if row is None else bytes(row[0])

    def blocks(self, start: int = 1) -> Iterator[Block]:
        """Every block from ``start`` in order (streamed; memory stays flat)."""
        cur = self.db.cursor()
        hdrs = cur.execute("SELECT height, header, signature FROM blocks WHERE height >= ? ORDER BY height",
                           (start,))
        txcur = self.db.cursor()
        for height, header, sig in hdrs.fetchall():
            txs = [bytes(r[0]) for r in txcur.execute(
                "SELECT raw FROM txs WHERE height = ? ORDER BY idx", (height,))]
            yield Block(Header.decode(bytes(header)), bytes(sig), tuple(txs))

    def tx(self, tx_hash: bytes) -> tuple[int, int, str, bool, bytes, bytes] | None:
        row = self.db.execute("SELECT height, idx, kind, ok, raw, result FROM txs WHERE hash = ? "
                              "ORDER BY height, idx LIMIT 1", (tx_hash,)).fetchone()
        if row is None:
            return None
        return int(row[0]), int(row[1]), str(row[2]), bool(row[3]), bytes(row[4]), bytes(row[5])

    def state_items(self) -> Iterator[tuple[str, bytes]]:
        for k, v in self.db.execute("SELECT key, CAST(value AS BLOB) FROM state"):
            yield str(k), bytes(v)

    def bucket_hashes(self) -> tuple[int, bytes] | None:
        """The packed bucket hashes stored with a checkpoint and its height, if any."""
        height = self.get_meta(BUCKETS_HEIGHT_KEY)
        if height is None or not self.has_key_hashes:
            return None
        rows = self.db.execute("SELECT chunk, hashes FROM state_buckets ORDER BY chunk").fetchall()
        if [r[0] for r in rows] != list(range(len(rows))):
            return None
        return int(height), b"".join(bytes(r[1]) for r in rows)

    def state_span(self, low: int, high: int) -> list[tuple[str, bytes]]:
        """The state entries whose ``kh`` lies in [low, high): one state-tree bucket's entries. Every
        loaded bucket comes through here, so SQLite gives the types, not a per-row conversion in
        Python (measured: a third of the call at 6 rows a bucket): ``key`` is TEXT by the column's
        affinity, ``value`` is cast to a BLOB (SQLite keeps any type in the column; one that was
        stored as text or a number, which no node writes, then fails its bucket's check as changed
        bytes do, in ``LazyStateTree.load``)."""
        return self.db.execute("SELECT key, CAST(value AS BLOB) FROM state WHERE kh >= ? AND kh < ?",
                               (low, high)).fetchall()

    def reads_spans(self) -> bool:
        """Whether ``state_spans`` has the kernel's reader (else it returns None)."""
        self._open_spans()
        return bool(self._spans) and self._spans[0] is not None

    def _open_spans(self) -> None:
        if not self._spans_tried:
            with self._spans_lock:
                if not self._spans_tried:
                    self._spans = [open_span_reader(self.path), open_span_reader(self.path)]
                    self._spans_tried = True

    def state_spans(self, keys: list[str], depth: int, held: dict[int, bytes], reads: list[str],
                    early: bool = False) -> SpansRead | None:
        """The state-tree buckets (at ``depth``) of ``keys`` that ``held`` lacks, and the stored
        values of ``reads``, read by the kernel in one call with the interpreter lock released for
        all of them (node/spans.py): the buckets, for each its held form and hash as
        ``LazyStateTree`` holds a loaded bucket (None: rows the reference must judge), and the
        values of ``reads`` found.
        None where there is no kernel reader (the kernel is absent or not in use, or the store is
        read-only: its one read transaction is the snapshot every read must see); the caller then
        reads bucket by bucket (``state_span``). Only what other connections committed is seen,
        never this one's open transaction. ``early``: on the reader thread's connection
        (``Node._read_early``), not the sealer's."""
        self._open_spans()
        reader = self._spans[1 if early else 0] if self._spans else None
        if reader is None:
            return None
        try:
            return reader.read(keys, 32 - depth, held, reads)
        except OSError as err:
            raise sqlite3.OperationalError(str(err)) from None

    def read_ahead(self, spans: Sequence[tuple[int, int]], threads: int = READ_AHEAD_THREADS) -> None:
        """Read the state entries of the ``kh`` spans (state-tree buckets) on ``threads`` connections
        of their own at once, and drop them: the reads that follow (``state_span``, which checks
        them) then find their pages in the OS page cache. For a ledger whose file the cache does not
        hold, where a query's few thousand buckets are as many random reads of the disk, one at a
        time: issued together, the disk serves them in parallel (docs/benchmarks.md, ``crev report``
        of one site). Only the file's reading changes, never what is read."""
        if len(spans) < 2 * threads or not self.path.exists():
            return
        ordered = sorted(spans)

        def read(part: Sequence[tuple[int, int]]) -> None:
            try:
                with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=120)) as db:
                    for low, high in part:
                        db.execute("SELECT count(*) FROM state WHERE kh >= ? AND kh < ?", (low, high)).fetchone()
            except sqlite3.Error:  # only a head start: the reads that follow meet (and report) any such error
                return

        workers = [threading.Thread(target=read, args=(ordered[i::threads],), daemon=True) for i in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()

    def state_value(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT CAST(value AS BLOB) FROM state WHERE kh = ? AND key = ?",
                              (key_hash32(key), key)).fetchone()
        return None if row is None else bytes(row[0])

    def state_prefix(self, prefix: str) -> list[tuple[str, bytes]]:
        """The state entries whose key starts with ``prefix`` (lots ``"l/"``, reading records or
        retirements: by reading the whole table), in table order."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return [(str(k), bytes(v)) for k, v in self.db.execute(
            "SELECT key, CAST(value AS BLOB) FROM state WHERE key >= ? AND key < ? ORDER BY kh, key", (prefix, end))]

    def small_kind_keys(self, prefix: str) -> list[str]:
        """The keys starting with ``prefix`` of one of the small kinds (devices ``"d/"``, accounts,
        markets, orders, factor rows…), in table order, from their index alone."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return [str(r[0]) for r in self.db.execute(
            f"SELECT key FROM state WHERE key >= ? AND key < ? AND {SMALL_KINDS} ORDER BY kh, key", (prefix, end))]

    def open_order_ids(self) -> list[str]:
        """The orders open at the checkpoint, in sequence order (``ix_orders``)."""
        return [str(r[0]) for r in self.db.execute("SELECT order_id FROM ix_orders WHERE status = 'open' ORDER BY seq")]

    def account_orders(self, account: str, side: str | None = None,
                       market_id: str | None = None) -> list[tuple[str, int]]:
        """(order id, seq) of the orders of ``account`` at the checkpoint, of one side or market if
        given, newest first (``ix_orders``)."""
        sql = "SELECT order_id, seq FROM ix_orders WHERE account = ?"
        args: list[str] = [account]
        for col, want in (("side", side), ("market_id", market_id)):
            if want is not None:
                sql += f" AND {col} = ?"
                args.append(want)
        return [(str(r[0]), int(r[1])) for r in self.db.execute(sql + " ORDER BY seq DESC", args)]

Row = tuple[Any, ...]

# Rows per INSERT statement when many are written at once (``insert_rows``), within SQLite's limit
# of 32,766 parameters a statement at 12 columns.
ROWS_PER_STATEMENT = 500


def insert_rows(db: sqlite3.Connection, head: str, rows: Sequence[Row], tail: str = "") -> None:
    """``head VALUES (…), (…), … tail`` for ``rows`` (all of one width), ``ROWS_PER_STATEMENT`` rows a
    statement, in order: what ``executemany`` does row by row, with the same outcome (SQLite
    inserts a statement's rows in order, so a later row still meets an earlier one's conflict).
    One ``execute`` binds a whole chunk and runs it with the interpreter lock released throughout,
    where ``executemany`` takes the lock back after every row; beside a thread running Python (the
    node's sealer), taking it back waits up to the switch interval (5 ms) each time. Measured on
    20,000 state rows beside a busy thread: 3,200 µs a row with ``executemany``, 10 µs a row so
    (alone, both 2–3 µs); a checkpoint written with ``executemany`` lagged the blocks by tens of
    seconds once block commits stopped waiting for it."""
    if not rows:
        return
    one = "(" + ",".join("?" * len(rows[0])) + ")"
    for i in range(0, len(rows), ROWS_PER_STATEMENT):
        part = rows[i:i + ROWS_PER_STATEMENT]
        db.execute(f"{head} VALUES {','.join([one] * len(part))}{tail}", [v for row in part for v in row])


def write_rows(db: sqlite3.Connection, head: str, kinds: str, rows: Sequence[Row] | PackedRows,
               tail: str = "") -> None:
    """``insert_rows``, or ``packed.insert_packed`` for the kernel's pack of the same rows (whose
    cells are of ``kinds``)."""
    if isinstance(rows, PackedRows):
        insert_packed(db, head, kinds, rows, tail)
    else:
        insert_rows(db, head, rows, tail)


@dataclass(frozen=True)
class PreparedCheckpoint:
    """A checkpoint's rows, built before its write transaction (``prepare_checkpoint``) and
    written by ``Store.store_checkpoint``: the state entries to upsert as (kh, key, value) in table
    order and those to delete as (kh, key), the index rows of its blocks, the key hashes of every
    changed entry (which rows of stored bucket hashes they touch) and the bucket hashes. The state
    upserts and the reading and lot index rows are Python rows, or the kernel's packs of the same
    rows (``node/packed.py``)."""

    height: int
    upserts: list[tuple[int, str, bytes]] | PackedRows
    deletes: list[tuple[int, str]]
    key_hashes: list[int]
    readings: list[Row] | PackedRows
    lots: list[Row] | PackedRows
    moves: list[Row]
    orders: list[Row]
    devices: list[Row]
    bucket_hashes: bytes | BucketHashes | BucketHashRows | None


def prepare_checkpoint(height: int, changes: dict[str, bytes | None], outcomes: Sequence[tuple[int, list[TxResult]]],
                       bucket_hashes: bytes | BucketHashes | BucketHashRows | None = None) -> PreparedCheckpoint:
    """The rows ``Store.write_checkpoint`` writes (see there), built without touching the database:
    the Python half of a checkpoint, which the node's checkpoint thread does before it takes the
    database's write lock, so a block commit never waits for it. With the kernel, the bulk of them
    are packed by it instead (the same rows)."""
    devices = [device_index_row(key, v) for key in sorted(f"d/{d}" for d in owner_changes(outcomes))
               if (v := changes.get(key)) is not None]
    readings, lots, moves = event_index_rows(outcomes)
    kernel = rows_kernel()
    state = None if kernel is None else kernel.pack_state_rows(changes)
    if state is not None:
        pack, deletes, key_hashes, order_entries = state
        orders = [order_index_row(k, v) for k, v in order_entries]
        return PreparedCheckpoint(height, packed(pack), deletes, key_hashes, readings, lots, moves, orders,
                                  devices, bucket_hashes)
    upserts = sorted((key_hash32(k), k, v) for k, v in changes.items() if v is not None)  # in table order
    deletes = [(key_hash32(k), k) for k, v in changes.items() if v is None]
    orders = [order_index_row(k, v) for _, k, v in upserts if k[:2] == "o/"]  # orders are never deleted
    return PreparedCheckpoint(height, upserts, deletes, [r[0] for r in upserts] + [r[0] for r in deletes],
                              readings, lots, moves, orders, devices, bucket_hashes)


def event_index_rows(outcomes: Sequence[tuple[int, list[TxResult]]]
                     ) -> tuple[list[Row] | PackedRows, list[Row] | PackedRows, list[Row]]:
    """The index rows (readings, lots, unit movements) of blocks' results: the first two packed by
    the kernel where it is in use (every event of the other kinds is indexed by ``index_event``)."""
    kernel = rows_kernel()
    got = None if kernel is None else kernel.pack_event_rows(list(outcomes), [READING_ROWS, LOT_ROWS])
    if got is None:
        return index_rows(outcomes)
    (readings, lots), others = got
    moves: list[Row] = []
    rest: list[Row] = []
    for h, th, e in others:
        index_event(e, h, th, rest, rest, moves)
    assert not rest, "the kernel packs every reading and lot row"
    return packed(readings), packed(lots), moves


def owner_changes(outcomes: Sequence[tuple[int, list[TxResult]]]) -> set[str]:
    """The devices whose owner blocks' results set: registered, or given another owner. (A
    device's record changes with each of its readings; only these change its ``ix_devices`` row,
    so the checkpoint decodes only their records.)"""
    out: set[str] = set()
    for _, results in outcomes:
        for res in results:
            if res.kind == SubmitReadings.kind:  # most of them: a batch of readings sets no owner
                continue
            for e in res.events:
                if type(e) is DeviceRegistered or (type(e) is DeviceUpdated and "owner" in e.changed):
                    out.add(e.device_id)
    return out


def device_index_row(key: str, value: bytes) -> Row:
    """A device's ``ix_devices`` row (device_id, owner) from its state entry (``Device.to_value``)."""
    v = decode(value, key)
    return v[0], v[1]


def order_index_row(key: str, value: bytes) -> Row:
    """An order's ``ix_orders`` row (order_id, seq, market_id, account, side, status) from its
    state entry (``Order.to_value``'s canonical bytes)."""
    v = decode(value, key)
    return v[0], v[1], v[2], v[3], v[4], v[14]


def index_rows(outcomes: Sequence[tuple[int, list[TxResult]]]) -> tuple[list[Row], list[Row], list[Row]]:
    """The index rows (readings, lots, unit movements) of blocks' results."""
    readings: list[Row] = []
    lots: list[Row] = []
    moves: list[Row] = []
    for h, results in outcomes:
        for res in results:
            index_events(res, h, readings, lots, moves)
    return readings, lots, moves


def index_events(res: TxResult, height: int, readings: list[tuple[Any, ...]],
                 lots: list[tuple[Any, ...]], moves: list[tuple[Any, ...]]) -> None:
    """Turn a result's events into index rows."""
    th = res.tx_hash
    for e in res.events:
        index_event(e, height, th, readings, lots, moves)


def index_event(e: Any, height: int, th: bytes, readings: list[tuple[Any, ...]],
                lots: list[tuple[Any, ...]], moves: list[tuple[Any, ...]]) -> None:
    """An event's index row, if it has one (``packed.READING_ROWS`` and ``LOT_ROWS`` are the first
    two rows below, for the kernel)."""
    if type(e) is ReadingAccepted:
        readings.append((e.device_id, e.seq, e.interval_start, e.interval_s, e.generation_wh,
                         e.import_wh, e.export_wh, e.lot_id, e.reading_hash, height, th, e.owner))
    elif type(e) is Issued:
        lots.append((e.lot_id, e.first_unit, e.quantity_g, e.device_id, e.owner, e.slot_id,
                     e.self_consumed_wh, e.factor_g_per_kwh, e.origin, height, th))
    elif type(e) is Transferred:
        moves.append((e.lot_id, "transfer", e.sender, e.recipient, e.start_unit, e.end_unit, "",
                      height, th))
    elif type(e) is Traded:
        for lot_id, start, end in e.ranges:
            moves.append((lot_id, "trade", e.seller, e.buyer, start, end,
                          f"{e.trade_id} {e.market_id} @{e.price} JPY/t", height, th))
    elif type(e) is Retired:
        moves.append((e.lot_id, "retire", e.account, e.beneficiary, e.start_unit, e.end_unit,
                      e.retirement_id, height, th))
    elif type(e) is Cancelled:
        moves.append((e.lot_id, "cancel", e.holder, "", e.start_unit, e.end_unit,
                      f"{e.reason} [{e.reference}]", height, th))
