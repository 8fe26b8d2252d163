"""SQLite storage for blocks, transactions with their results, the state snapshot and the
off-chain index (readings, lots, unit movements) that reports, trace and export read.

Two kinds of write, both in WAL mode with ``synchronous=FULL``:

* ``commit_block`` appends a block with its transactions and results, one transaction and one
  fsync per block. When it returns, the block survives a power cut or kill -9; this is the point at
  which a submitter gets its receipt.
* ``write_checkpoint`` stores the state entries and index rows up to some height, coalesced over
  many blocks, in the background. After a crash the node loads the last checkpoint and replays the
  blocks after it through ``apply_block``, which recreates both exactly. The checkpoint height
  never goes back (``CheckpointError``), and index rows are keyed so that indexing a block twice
  adds nothing.

A ``Store(path, readonly=True)`` never writes the file: it opens it ``mode=ro`` inside one read
transaction (a consistent snapshot beside a running writer) and indexes blocks the checkpoint does
not cover yet into TEMP tables that shadow the index tables on its own connection only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from crev.ledger.apply import BlockOutcome, TxResult
from crev.ledger.block import Block, Header
from crev.ledger.events import Cancelled, Issued, ReadingAccepted, Retired, Traded, Transferred

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
  height INTEGER PRIMARY KEY, hash BLOB NOT NULL, header BLOB NOT NULL, signature BLOB NOT NULL,
  time INTEGER NOT NULL, tx_count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
  height INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, kind TEXT NOT NULL,
  ok INTEGER NOT NULL, raw BLOB NOT NULL, result BLOB NOT NULL, PRIMARY KEY (height, idx));
CREATE INDEX IF NOT EXISTS txs_by_hash ON txs(hash);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
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
"""
# A unit movement is indexed once however often its block is indexed (a replay after a crash, a
# checkpoint written twice): INSERT OR IGNORE against this key.
MOVES_KEY = "CREATE UNIQUE INDEX IF NOT EXISTS ix_moves_once ON ix_moves(tx_hash, lot_id, kind, start_unit)"
INDEX_TABLES = ("ix_readings", "ix_lots", "ix_moves")


class CheckpointError(ValueError):
    """A checkpoint that would move the stored checkpoint height backwards: the state snapshot
    and index would no longer match the height recorded with them."""


class Store:
    def __init__(self, path: Path | str, readonly: bool = False) -> None:
        """``readonly``: never write the file (``mode=ro``), for reading a ledger another process may
        be writing. Index rows for blocks after the checkpoint then go to TEMP tables that shadow
        the index tables on this connection only (``index_in_memory``)."""
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            self._shadowed = False
            if not self.path.exists():  # a ledger initialised but never run: no blocks yet
                self.db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                self.db.executescript(SCHEMA)
                self.db.execute(MOVES_KEY)
                return
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                      check_same_thread=False, timeout=120)
            # One read transaction for the store's life: every query sees the same snapshot (WAL
            # readers do not block the writer), so the checkpoint, the state entries and the blocks
            # after it cannot come from different moments of a running node.
            self.db.execute("BEGIN")
            return
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=120)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Bring a database written by an earlier version up to SCHEMA: ``ix_readings.owner`` (the
        owner at the time is the owner its lot was issued to), and ``ix_moves`` without the
        duplicate rows that replays used to add, before its unique key is created."""
        db = self.db
        cols = [r[1] for r in db.execute("PRAGMA table_info(ix_readings)")]
        if "owner" not in cols:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("ALTER TABLE ix_readings ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
                db.execute("UPDATE ix_readings SET owner = coalesce((SELECT owner FROM ix_lots "
                           "WHERE ix_lots.lot_id = ix_readings.lot_id), '')")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        # after the column exists (a database from before ix_readings.owner gets it just above)
        db.execute("CREATE INDEX IF NOT EXISTS ix_readings_owner ON ix_readings(owner, device_id)")
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'ix_moves_once'").fetchone() is None:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM ix_moves WHERE rowid NOT IN (SELECT MIN(rowid) FROM ix_moves "
                           "GROUP BY tx_hash, lot_id, kind, start_unit)")
                db.execute(MOVES_KEY)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def close(self) -> None:
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
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?)",
                       (h.height, h.hash, h.encode(), block.signature, h.time, h.tx_count))
            db.executemany("INSERT INTO txs VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def write_checkpoint(self, height: int, changes: dict[str, bytes | None],
                         outcomes: Sequence[tuple[int, list[TxResult]]]) -> None:
        """Write the state entries changed up to block ``height`` and the index rows of the given
        blocks' results, and record ``height`` as the checkpoint, in one transaction."""
        if self.readonly:
            raise PermissionError(f"{self.path} is open read-only")
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            current = db.execute("SELECT v FROM meta WHERE k = 'checkpoint_height'").fetchone()
            if current is not None and int(current[0]) > height:
                raise CheckpointError(f"{self.path}: refusing to move the checkpoint back from height "
                                      f"{int(current[0])} to {height} (another writer has run on this ledger)")
            db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)",
                           [(k, v) for k, v in changes.items() if v is not None])
            db.executemany("DELETE FROM state WHERE key = ?", [(k,) for k, v in changes.items() if v is None])
            self._insert_index(outcomes)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('checkpoint_height', ?)", (str(height).encode(),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _insert_index(self, outcomes: Sequence[tuple[int, list[TxResult]]]) -> None:
        readings: list[tuple[Any, ...]] = []
        lots: list[tuple[Any, ...]] = []
        moves: list[tuple[Any, ...]] = []
        for h, results in outcomes:
            for res in results:
                index_events(res, h, readings, lots, moves)
        db = self.db
        db.executemany("INSERT OR REPLACE INTO ix_readings VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", readings)
        db.executemany("INSERT OR REPLACE INTO ix_lots VALUES (?,?,?,?,?,?,?,?,?,?,?)", lots)
        db.executemany("INSERT OR IGNORE INTO ix_moves VALUES (?,?,?,?,?,?,?,?,?)", moves)

    def index_in_memory(self, outcomes: Sequence[tuple[int, list[TxResult]]]) -> None:
        """Read-only stores: index blocks the checkpoint does not cover yet, on this connection only
        (TEMP copies of the index tables shadow the file's, so every query sees both)."""
        if not self._shadowed:
            for t in INDEX_TABLES:
                self.db.execute(f"CREATE TEMP TABLE {t} AS SELECT * FROM main.{t}")
            self.db.execute("CREATE UNIQUE INDEX temp.ixr ON ix_readings(device_id, seq)")
            self.db.execute("CREATE UNIQUE INDEX temp.ixl ON ix_lots(lot_id)")
            self.db.execute("CREATE INDEX temp.ixl_unit ON ix_lots(first_unit)")
            self.db.execute("CREATE INDEX temp.ixm_lot ON ix_moves(lot_id)")
            self.db.execute("CREATE INDEX temp.ixm_to ON ix_moves(counterparty)")
            self.db.execute("CREATE INDEX temp.ixl_owner ON ix_lots(owner)")
            self.db.execute("CREATE INDEX temp.ixr_owner ON ix_readings(owner, device_id)")
            self.db.execute("CREATE UNIQUE INDEX temp.ixm_once ON ix_moves(tx_hash, lot_id, kind, start_unit)")
            self._shadowed = True
        self._insert_index(outcomes)

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
        for k, v in self.db.execute("SELECT key, value FROM state"):
            yield str(k), bytes(v)


def index_events(res: TxResult, height: int, readings: list[tuple[Any, ...]],
                 lots: list[tuple[Any, ...]], moves: list[tuple[Any, ...]]) -> None:
    """Turn a result's events into index rows."""
    th = res.tx_hash
    for e in res.events:
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
