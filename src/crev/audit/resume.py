"""The auditor's own record of what it verified, and resuming ``crev verify`` from it.

A full replay (``crev verify --record AUDIT_FILE``) leaves the auditor a record it computed itself,
never copied from the node: the chain id and genesis hash, and for the heights worth keeping (the
node's checkpoint height if the replay passed it, and the head) the block hash and the state root
the replay recomputed; plus the auditor's own snapshot of the state at the head (every state entry,
the same (key, canonical value) pairs the node checkpoints).

``crev verify --resume AUDIT_FILE`` then starts from a state it has already verified instead of
from genesis (``resume_point``):

1. the record must be of this chain (same chain id, same genesis hash);
2. every stored header up to the audited head must be there, each linking to the one before by its
   ``prev_hash``, and at every recorded height hash to the block hash and carry the state root the
   auditor recorded: the node has not rewritten audited history;
3. the starting state is the node's checkpoint, if it lies at a height the auditor recorded, or
   else the auditor's own snapshot at the audited head; its recomputed state root must equal the
   root the AUDITOR recorded for that height (not the header's, not the node's bucket hashes).

The blocks after it go through the same replay as a full ``crev verify``. Any difference is an
``InvalidBlock`` naming it; no usable starting state means a full replay, and the report says why.

The record is one SQLite file (``RECORD_SCHEMA``), written whole after a full replay (to a temporary
file, then renamed), and updated in one transaction after a resume (the new heights, and the state
entries the replayed blocks changed).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from crev.core.hashing import sha256
from crev.errors import CrevError, InvalidBlock
from crev.ledger.block import Header
from crev.ledger.genesis import Genesis, state_from_genesis
from crev.ledger.snapshot import load_state
from crev.ledger.state import State
from crev.node.store import Store

RECORD_FORMAT = "crev-audit/1"
RECORD_SCHEMA = """
CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE audited (height INTEGER PRIMARY KEY, block_hash BLOB NOT NULL, state_root BLOB NOT NULL,
                      kind TEXT NOT NULL);
CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
"""
DIFF_NAMED = 3  # state entries named when a checkpoint differs from the auditor's snapshot


@dataclass(frozen=True)
class Audited:
    """One height the auditor verified: the block hash and state root its own replay computed.
    ``kind``: ``head`` (where a replay ended) or ``checkpoint`` (the node's checkpoint height)."""

    height: int
    block_hash: bytes
    state_root: bytes
    kind: str


@dataclass(frozen=True)
class AuditRecord:
    """What an auditor's record file holds (``read_record``); ``snapshot_height`` 0: no snapshot."""

    path: Path
    chain_id: str
    genesis_hash: bytes
    points: dict[int, Audited]
    snapshot_height: int

    @property
    def head(self) -> int:
        return max(self.points) if self.points else 0


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed replay starts: ``state`` at ``height``, loaded ``source`` (``node checkpoint``
    or ``auditor snapshot``), and what was checked (``checked``, in words)."""

    state: State
    height: int
    source: str
    checked: str


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    return sqlite3.connect(path, isolation_level=None)


def read_record(path: Path | str) -> AuditRecord:
    """Read an auditor's record. Raises FileNotFoundError, or ValueError if the file is not one."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such audit record (write one with `crev verify --record {p}`)")
    try:
        db = _connect(p, readonly=True)
        try:
            meta = {str(k): str(v) for k, v in db.execute("SELECT k, v FROM meta")}
            rows = db.execute("SELECT height, block_hash, state_root, kind FROM audited ORDER BY height").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{p} is not a crev audit record ({err})") from err
    if meta.get("format") != RECORD_FORMAT:
        raise ValueError(f"{p} is not a crev audit record (format {meta.get('format')!r}, expected {RECORD_FORMAT!r})")
    points = {int(h): Audited(int(h), bytes(b), bytes(r), str(k)) for h, b, r, k in rows}
    return AuditRecord(p, meta["chain_id"], bytes.fromhex(meta["genesis_hash"]), points,
                       int(meta.get("snapshot_height", "0")))


def record_snapshot(record: AuditRecord) -> Iterator[tuple[str, bytes]]:
    """The auditor's own state entries at ``record.snapshot_height``."""
    db = _connect(record.path, readonly=True)
    try:
        for k, v in db.execute("SELECT key, value FROM state"):
            yield str(k), bytes(v)
    finally:
        db.close()


def write_record(path: Path | str, genesis: Genesis, points: Iterable[Audited], state: State) -> None:
    """Write a new record: ``points`` and the whole of ``state`` as the snapshot at its height.
    Written to ``<path>.tmp`` and renamed over ``path``: a crash leaves the old record or the new."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.unlink(missing_ok=True)
    db = _connect(tmp, readonly=False)
    try:
        db.executescript(RECORD_SCHEMA)
        db.execute("BEGIN")
        db.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("format", RECORD_FORMAT), ("chain_id", genesis.chain_id), ("genesis_hash", genesis.hash.hex()),
            ("snapshot_height", str(state.height))])
        db.executemany("INSERT INTO audited VALUES (?, ?, ?, ?)",
                       [(a.height, a.block_hash, a.state_root, a.kind) for a in points])
        db.executemany("INSERT INTO state VALUES (?, ?)",
                       ((k, v) for k in state.all_keys() if (v := state.value_of(k)) is not None))
        db.execute("COMMIT")
    finally:
        db.close()
    os.replace(tmp, p)


def update_record(record: AuditRecord, points: Iterable[Audited], height: int,
                  changed: dict[str, bytes | None]) -> None:
    """Add ``points`` to a record whose snapshot is at the height the replay resumed from, and bring
    the snapshot to ``height`` by the entries ``changed`` since (None: removed): one transaction."""
    db = _connect(record.path, readonly=False)
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO audited VALUES (?, ?, ?, ?)",
                           [(a.height, a.block_hash, a.state_root, a.kind) for a in points])
            db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)",
                           [(k, v) for k, v in changed.items() if v is not None])
            db.executemany("DELETE FROM state WHERE key = ?", [(k,) for k, v in changed.items() if v is None])
            db.execute("INSERT OR REPLACE INTO meta VALUES ('snapshot_height', ?)", (str(height),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        db.close()


# --- resuming ------------------------------------------------------------------------------------


def check_record(record: AuditRecord, genesis: Genesis) -> None:
    """The record must be of this ledger's chain. Raises InvalidBlock naming what differs."""
    if record.chain_id != genesis.chain_id:
        raise InvalidBlock("audit_record.chain_id", f"{record.path} records chain {record.chain_id!r}; this "
                                                    f"ledger is chain {genesis.chain_id!r}")
    if record.genesis_hash != genesis.hash:
        raise InvalidBlock("audit_record.genesis_hash", f"{record.path} records genesis {record.genesis_hash.hex()}; "
                                                        f"this ledger's genesis.json hashes to {genesis.hash.hex()}")
    if not record.points:
        raise InvalidBlock("audit_record.audited", f"{record.path} records no verified height")


class HistoryError(InvalidBlock):
    """Audited history differs: ``height`` is the first block that does."""

    def __init__(self, height: int, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.height = height


def check_history(store: Store, genesis: Genesis, record: AuditRecord) -> dict[int, Header]:
    """Every stored header up to the audited head: present, linked each to the one before by
    ``prev_hash``, and at every recorded height hashing to the recorded block hash with the recorded
    state root. Returns the headers at the recorded heights. Raises HistoryError (costs one header
    decode and one SHA-256 per block; the transactions below the head are not read: each header's
    tx_root commits to them)."""
    head = record.head
    prev = state_from_genesis(genesis).last_block_hash
    expect = 1
    at: dict[int, Header] = {}
    for height, raw in store.db.execute("SELECT height, header FROM blocks WHERE height <= ? ORDER BY height",
                                        (head,)):
        if height != expect:
            raise HistoryError(expect, "header.height", f"block {expect} is missing: the auditor verified "
                                                        f"blocks 1 to {head}")
        data = bytes(raw)
        h = Header.decode(data)  # canonical: sha256 of the stored bytes is the header's hash
        digest = sha256(data)
        if h.height != height:
            raise HistoryError(height, "header.height", f"block {height}'s stored header says height {h.height}")
        if h.prev_hash != prev:
            raise HistoryError(height, "header.prev_hash", f"block {height} does not link to the stored block "
                                                           f"{height - 1}: audited history was rewritten")
        rec = record.points.get(height)
        if rec is not None:
            if digest != rec.block_hash:
                raise HistoryError(height, "header", f"block {height} hashes to {digest.hex()}; the auditor "
                                                     f"recorded {rec.block_hash.hex()}: audited history was rewritten")
            at[height] = h
        prev = digest
        expect += 1
    if expect <= head:
        raise HistoryError(expect, "header.height", f"block {expect} is missing: the auditor verified blocks "
                                                    f"1 to {head}")
    return at


def resume_point(store: Store, genesis: Genesis, record: AuditRecord) -> tuple[ResumePoint | None, str]:
    """The verified state to resume from, or None and why a full replay is needed. Checks the record
    (``check_record``) and the audited history (``check_history``) first. Raises InvalidBlock
    (HistoryError with a height) when something differs from what the auditor recorded."""
    check_record(record, genesis)
    headers = check_history(store, genesis, record)
    cp = store.checkpoint_height()
    snap = record.snapshot_height if record.snapshot_height in record.points else 0
    use_node = 0 < cp <= record.head and cp in record.points and cp >= snap
    if use_node:
        head = headers[cp]
        try:
            st = load_state(genesis, store.state_items(), cp, sha256(head.encode()), head.time)
        except Exception as err:  # hostile bytes: named, never a crash
            raise HistoryError(cp, "state", f"the node's checkpoint at block {cp} cannot be loaded "
                                            f"({_why(err)})") from err
        root = st.tree.root()
        want = record.points[cp].state_root
        if root != want:
            raise HistoryError(cp, "state", f"the node's checkpoint at block {cp} has state root {root.hex()}; "
                                            f"the auditor recorded {want.hex()}{_named_diff(store, record, cp)}")
        return ResumePoint(st, cp, "node checkpoint", "its state root recomputed from every stored entry equals the "
                                                      "auditor's recorded root"), ""
    if snap:
        head = headers[snap]
        try:
            st = load_state(genesis, record_snapshot(record), snap, sha256(head.encode()), head.time)
        except Exception as err:
            raise InvalidBlock("audit_record.state", f"the auditor's own snapshot at block {snap} in "
                                                     f"{record.path} cannot be loaded ({_why(err)})"
                                                     ": the record file was changed") from err
        root = st.tree.root()
        want = record.points[snap].state_root
        if root != want:
            raise InvalidBlock("audit_record.state", f"the auditor's own snapshot at block {snap} in {record.path} "
                                                     f"has state root {root.hex()}; the record says {want.hex()}: "
                                                     "the record file was changed (verify without --resume)")
        return ResumePoint(st, snap, "auditor snapshot", "its state root recomputed from every entry equals the "
                                                         "auditor's recorded root"), ""
    if cp == 0:
        why = "the node has no checkpoint"
    elif cp > record.head:
        why = f"the node's checkpoint (block {cp}) is past the audited head (block {record.head})"
    else:
        why = f"the node's checkpoint (block {cp}) is not a height the auditor recorded"
    return None, why + " and the record holds no state snapshot"


def _why(err: Exception) -> str:
    return f"{err.field}: {err.reason}" if isinstance(err, CrevError) else f"{type(err).__name__}: {err}"


def _named_diff(store: Store, record: AuditRecord, height: int) -> str:
    """The state entries a checkpoint differs in from the auditor's own snapshot at the same height
    (only on the refusal path: it reads both)."""
    if record.snapshot_height != height:
        return ""
    mine = dict(record_snapshot(record))
    differ: list[str] = []
    for k, v in store.state_items():
        if mine.pop(k, None) != v:
            differ.append(k)
    differ += list(mine)  # entries the node's checkpoint lacks
    if not differ:
        return ""
    more = f" and {len(differ) - DIFF_NAMED} more" if len(differ) > DIFF_NAMED else ""
    return f" (state entries differing from the auditor's snapshot: {', '.join(sorted(differ)[:DIFF_NAMED])}{more})"
