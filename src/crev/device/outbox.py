"""The DGC's store and forward: a durable SQLite outbox of signed items, with the agent's state.

Every signed item (reading, smart-meter values, control record) is written here *before* it is
sent, and the agent's own state (its DGC registers, sequence numbers, the last boundary and the
device baselines) is saved **in the same transaction** as the item that advanced it: SQLite in
WAL mode with ``synchronous=FULL`` (each commit is on disk before ``put`` returns), so a kill -9
at any moment leaves either both (the item will be sent, the seq is used) or neither (the
boundary was not signed; the agent signs it again from the same device values or records the
gap). No seq is signed twice with different values, and no register step is lost.

An item leaves the outbox only when the ledger's receipt names it ``accepted`` or ``duplicate``
(:meth:`Outbox.done`), or moves to the dead-letter table with the ledger's reason when it was
refused for a reason that will not change (:meth:`Outbox.dead`). Nothing is ever dropped silently.

Besides: alerts (one row per device, field and reason, counted), device health (last good read,
last error per device and field), the last receipt per kind and a short log of signed items for
``crev dgc status``. Each ``Outbox`` holds one connection guarded by a lock, so the agent's step
and the sender thread may share it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crev.core.encoding import decode, encode

KINDS = ("submit_readings", "submit_meter_values", "submit_controls")  # sent in batches (device-signed items)
OFFER = "offer"  # a whole place_order transaction signed by the owner's delegate, sent alone (device/offers.py)
LOG_KEEP = 200  # signed items kept in the status log

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, ref TEXT NOT NULL, item BLOB NOT NULL,
    created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS outbox_kind ON outbox (kind, id);
CREATE TABLE IF NOT EXISTS dead (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, ref TEXT NOT NULL, item BLOB NOT NULL, created REAL NOT NULL,
    dead_at REAL NOT NULL, code TEXT NOT NULL, field TEXT NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    device TEXT NOT NULL, field TEXT NOT NULL, reason TEXT NOT NULL, first_at INTEGER NOT NULL,
    last_at INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (device, field, reason));
CREATE TABLE IF NOT EXISTS health (
    device TEXT PRIMARY KEY, last_good_at INTEGER NOT NULL DEFAULT 0, last_error_at INTEGER NOT NULL DEFAULT 0,
    last_error_field TEXT NOT NULL DEFAULT '', last_error TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS receipts (
    kind TEXT PRIMARY KEY, tx_hash TEXT NOT NULL, height INTEGER NOT NULL, at REAL NOT NULL,
    accepted INTEGER NOT NULL, duplicate INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, ref TEXT NOT NULL, summary TEXT NOT NULL,
    status TEXT NOT NULL, at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS log_ref ON log (kind, ref);
"""


@dataclass(frozen=True, slots=True)
class Pending:
    """An item waiting to be sent."""

    id: int
    kind: str
    ref: str  # e.g. "seq 17", "slot 1780000200", "control 3"
    item: list[Any]  # the signed item, as the ledger takes it in a batch body
    attempts: int


class Outbox:
    """One site's outbox and state in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- state -------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The agent's saved state (JSON values by key)."""
        with self._lock:
            return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM state")}

    def save(self, updates: dict[str, Any]) -> None:
        with self._tx() as db:
            _save(db, updates)

    # --- items -------------------------------------------------------------------------------

    def put(self, kind: str, ref: str, item: list[Any], summary: dict[str, Any], at: int,
            state: dict[str, Any]) -> None:
        """Store a signed item and the state it advanced, in one transaction (durable on return)."""
        if kind not in KINDS and kind != OFFER:
            raise ValueError(f"unknown kind {kind!r}")
        with self._tx() as db:
            db.execute("INSERT INTO outbox (kind, ref, item, created) VALUES (?, ?, ?, ?)",
                       (kind, ref, encode(item), time.time()))
            db.execute("INSERT INTO log (kind, ref, summary, status, at) VALUES (?, ?, ?, 'pending', ?)",
                       (kind, ref, json.dumps(summary, sort_keys=True), at))
            db.execute("DELETE FROM log WHERE id <= (SELECT MAX(id) FROM log) - ?", (LOG_KEEP,))
            _save(db, state)

    def pending(self, kind: str, limit: int) -> list[Pending]:
        """The oldest items of ``kind`` waiting to be sent, in the order they were signed."""
        with self._lock:
            rows = self._db.execute("SELECT id, kind, ref, item, attempts FROM outbox WHERE kind = ? "
                                    "ORDER BY id LIMIT ?", (kind, limit)).fetchall()
        return [Pending(i, k, r, decode(bytes(b)), a) for i, k, r, b, a in rows]

    def replace(self, p: Pending, item: list[Any]) -> None:
        """Put a re-signed ``item`` in place of ``p``'s (an offer signed again with a new nonce)."""
        with self._tx() as db:
            db.execute("UPDATE outbox SET item = ? WHERE id = ?", (encode(item), p.id))

    def note(self, kind: str, ref: str, summary: dict[str, Any], status: str, at: int) -> None:
        """A log line for something decided without an item (an offer not placed, and why)."""
        with self._tx() as db:
            db.execute("INSERT INTO log (kind, ref, summary, status, at) VALUES (?, ?, ?, ?, ?)",
                       (kind, ref, json.dumps(summary, sort_keys=True), status, at))
            db.execute("DELETE FROM log WHERE id <= (SELECT MAX(id) FROM log) - ?", (LOG_KEEP,))

    def depth(self) -> dict[str, int]:
        """Items waiting, per kind."""
        with self._lock:
            got = dict(self._db.execute("SELECT kind, COUNT(*) FROM outbox GROUP BY kind").fetchall())
        return {k: int(got.get(k, 0)) for k in KINDS}

    def done(self, items: list[tuple[Pending, str]]) -> None:
        """The ledger accepted these items (status "accepted" or "duplicate"): delete them."""
        with self._tx() as db:
            for p, status in items:
                db.execute("DELETE FROM outbox WHERE id = ?", (p.id,))
                db.execute("UPDATE log SET status = ? WHERE kind = ? AND ref = ?", (status, p.kind, p.ref))

    def failed(self, items: list[Pending], error: str) -> None:
        """A try that did not settle these items (the ledger unreachable, busy, or not ready)."""
        with self._tx() as db:
            for p in items:
                db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?", (error, p.id))

    def dead(self, p: Pending, code: str, field: str, reason: str) -> None:
        """The ledger refused the item for a reason that will not change: keep it, with the reason."""
        with self._tx() as db:
            row = db.execute("SELECT created FROM outbox WHERE id = ?", (p.id,)).fetchone()
            if row is None:
                return
            db.execute("DELETE FROM outbox WHERE id = ?", (p.id,))
            db.execute("INSERT OR REPLACE INTO dead (id, kind, ref, item, created, dead_at, code, field, reason) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (p.id, p.kind, p.ref, encode(p.item), row[0], time.time(), code, field, reason))
            db.execute("UPDATE log SET status = 'dead' WHERE kind = ? AND ref = ?", (p.kind, p.ref))

    def dead_letters(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT kind, ref, dead_at, code, field, reason FROM dead ORDER BY id").fetchall()
        return [dict(zip(("kind", "ref", "dead_at", "code", "field", "reason"), r, strict=True)) for r in rows]

    def receipt(self, kind: str, tx_hash: str, height: int, accepted: int, duplicate: int) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO receipts VALUES (?, ?, ?, ?, ?, ?)",
                       (kind, tx_hash, height, time.time(), accepted, duplicate))

    def receipts(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT kind, tx_hash, height, at, accepted, duplicate FROM receipts "
                                    "ORDER BY at DESC").fetchall()
        return [dict(zip(("kind", "tx_hash", "height", "at", "accepted", "duplicate"), r, strict=True))
                for r in rows]

    def log(self, kind: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        """The latest signed items (newest first) with their delivery status."""
        with self._lock:
            q = "SELECT kind, ref, summary, status, at FROM log"
            args: tuple[Any, ...] = ()
            if kind:
                q += " WHERE kind = ?"
                args = (kind,)
            rows = self._db.execute(q + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [{"kind": k, "ref": r, **json.loads(s), "status": st, "at": at} for k, r, s, st, at in rows]

    # --- alerts and health -------------------------------------------------------------------

    def alert(self, device: str, field: str, reason: str, at: int) -> bool:
        """Record an alert (at simulated time ``at``); True if it is new (not a repeat)."""
        with self._tx() as db:
            cur = db.execute("UPDATE alerts SET last_at = ?, count = count + 1 WHERE device = ? AND field = ? "
                             "AND reason = ?", (at, device, field, reason))
            if cur.rowcount:
                return False
            db.execute("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, 1)", (device, field, reason, at, at))
            return True

    def alerts(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT device, field, reason, first_at, last_at, count FROM alerts "
                                    "ORDER BY last_at DESC").fetchall()
        return [dict(zip(("device", "field", "reason", "first_at", "last_at", "count"), r, strict=True))
                for r in rows]

    def good(self, device: str, at: int) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO health (device, last_good_at) VALUES (?, ?) "
                       "ON CONFLICT (device) DO UPDATE SET last_good_at = excluded.last_good_at", (device, at))

    def bad(self, device: str, field: str, error: str, at: int) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO health (device, last_error_at, last_error_field, last_error) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (device) DO UPDATE SET last_error_at = excluded.last_error_at, "
                       "last_error_field = excluded.last_error_field, last_error = excluded.last_error",
                       (device, at, field, error))

    def health(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT device, last_good_at, last_error_at, last_error_field, last_error "
                                    "FROM health ORDER BY device").fetchall()
        return [dict(zip(("device", "last_good_at", "last_error_at", "last_error_field", "last_error"), r,
                         strict=True)) for r in rows]


def _save(db: sqlite3.Connection, updates: dict[str, Any]) -> None:
    for k, v in updates.items():
        db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (k, json.dumps(v)))
