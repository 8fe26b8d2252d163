"""LedgerView: reading a ledger (report, trace, export, statements) never writes its database, and
sees the blocks the last checkpoint does not cover yet, even while the node runs and writes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from crev.audit.trace import trace
from crev.cli import main
from crev.node.node import DB_FILE, LedgerView
from crev.node.store import CheckpointError, Store
from tests.node import nodekit as k

ROOT = Path(__file__).resolve().parents[2]
LOT = "dgc-0:20260601T0900"  # dgc-0's first reading: 100 g transferred to the buyer, 40 g of it retired


def fingerprint(d: Path) -> tuple[int, int, int, int, str]:
    """Checkpoint height, index row counts and the state snapshot, read behind the node's back
    (read-only: a writable connection would fold the WAL into the file when it closes)."""
    with closing(sqlite3.connect(f"file:{d / DB_FILE}?mode=ro", uri=True)) as db:
        cp = int(db.execute("SELECT v FROM meta WHERE k = 'checkpoint_height'").fetchone()[0])
        counts = [db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("ix_readings", "ix_lots", "ix_moves")]
        state = hashlib.sha256(repr(db.execute("SELECT * FROM state ORDER BY key").fetchall()).encode()).hexdigest()
    return cp, counts[0], counts[1], counts[2], state


def file_bytes(d: Path) -> tuple[str, int]:
    p = d / DB_FILE
    return hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns


def test_a_view_replays_what_the_checkpoint_lacks_in_memory_and_writes_nothing(tmp_path: Path) -> None:
    d = tmp_path / "ledger"
    dead = k.stopped_ledger(d)
    assert dead.height == 6
    raw_before = file_bytes(d)  # before anything else opens the file
    before = fingerprint(d)
    assert before[:4] == (1, 0, 0, 0)  # checkpointed: the registrations only

    view = LedgerView(d)
    try:
        assert view.loaded_in_full is None  # read lazily: the checkpoint stored its bucket hashes
        assert view.state.height == 6 and view.store.height() == 6
        assert view.state.tree.root() == dead.root
        assert view.state.supply.issued_g == 6 * k.PER_READING_G
        # the index on the view's connection covers the replayed blocks...
        db = view.store.db
        assert db.execute("SELECT COUNT(*) FROM ix_readings").fetchone()[0] == 6
        assert db.execute("SELECT COUNT(*) FROM ix_lots").fetchone()[0] == 6
        first = view.state.lots[LOT].first_unit
        moves = db.execute("SELECT kind, party, counterparty, start_unit, end_unit FROM ix_moves "
                           "WHERE lot_id = ? ORDER BY height", (LOT,)).fetchall()
        assert moves == [("transfer", k.OWNER, k.BUYER, first, first + 100),
                         ("retire", k.BUYER, "Buyer Co", first, first + 40)]
        # ...the file's own tables do not: the names are TEMP views over them and the tail's rows
        assert db.execute("SELECT COUNT(*) FROM main.ix_readings").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM temp.tail_ix_readings").fetchone()[0] == 6
        steps = [s["step"] for s in trace(view.store, view.state, "ret-00000001")["lots"][0]["steps"]]
        assert steps == ["signed_reading", "issued", "transferred", "retired", "current_state"]
    finally:
        view.close()
    assert fingerprint(d) == before
    assert file_bytes(d) == raw_before

    # the commands that read a ledger go through the same read-only open
    runner = CliRunner()
    res = runner.invoke(main, ["export", str(d), "lots", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert sorted(r["lot_id"] for r in json.loads(res.output)) == sorted(
        f"dgc-{dev}:20260601T090{j}" for dev in range(2) for j in range(3))
    res = runner.invoke(main, ["trace", str(d), LOT, "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["report", str(d), k.OWNER, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["total"]["self_consumed_wh"] == 6 * (k.GEN - k.EXP)
    assert fingerprint(d) == before
    assert file_bytes(d) == raw_before

    # the node then starts from what it wrote itself, and indexes each movement once
    node = k.open_node(d)
    try:
        assert node.state.tree.root() == dead.root
    finally:
        node.close()
    cp, readings, lots, moves_n, _ = fingerprint(d)
    assert (cp, readings, lots, moves_n) == (6, 6, 6, 2)


def test_views_beside_a_node_that_keeps_writing(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d, checkpoint_s=0.02)  # the checkpoint moves while views load
    batches = 60
    try:
        k.register_fleet(node, 2)
        done = threading.Event()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                for j in range(batches):
                    r = node.submit_wait(k.batch(2, j))
                    assert r.ok, r.error
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        writer = threading.Thread(target=write)
        writer.start()
        heights: list[int] = []
        cli = None
        while not done.is_set() or not heights:
            if cli is None and heights:  # and once from another process
                cli = subprocess.Popen([sys.executable, "-m", "crev.cli", "export", str(d), "lots", "--format",
                                        "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
            view = LedgerView(d)
            try:
                h = view.state.height
                head = view.store.block(h)
                assert head is not None and view.store.height() == h  # one snapshot for everything
                assert view.state.tree.root() == head.header.state_root
                db = view.store.db
                batches_in = db.execute("SELECT COUNT(*) FROM txs WHERE kind = 'submit_readings' AND height <= ?",
                                        (h,)).fetchone()[0]
                assert db.execute("SELECT COUNT(*) FROM ix_readings").fetchone()[0] == 2 * batches_in
                assert view.state.supply.issued_g == 2 * batches_in * k.PER_READING_G
                heights.append(h)
            finally:
                view.close()
        writer.join()
        assert not errors, errors
        assert len(heights) >= 2 and heights == sorted(heights)
        assert cli is not None
        out, err = cli.communicate(timeout=120)
        assert cli.returncode == 0, err
        assert 0 <= len(json.loads(out)) <= 2 * batches
        tip = node.state.height
    finally:
        node.close()
    node = k.open_node(d)  # restarts on what the node itself wrote
    try:
        assert node.state.height == tip and node.state.supply.issued_g == 2 * batches * k.PER_READING_G
    finally:
        node.close()
    cp, readings, lots, moves, _ = fingerprint(d)
    assert (cp, readings, lots, moves) == (tip, 2 * batches, 2 * batches, 0)


def test_a_checkpoint_never_goes_back(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path)
    node = k.open_node(d)
    k.register_fleet(node, 1)
    node.close()
    store = Store(d / DB_FILE)
    try:
        top = store.checkpoint_height()
        assert top == store.height() >= 1
        with pytest.raises(CheckpointError, match=f"refusing to move the checkpoint back from height {top} to 0"):
            store.write_checkpoint(0, {"x/junk": b"1"}, [])
        assert store.checkpoint_height() == top
        assert store.db.execute("SELECT COUNT(*) FROM state WHERE key = 'x/junk'").fetchone()[0] == 0
        store.write_checkpoint(top, {}, [])  # the same height again is fine
    finally:
        store.close()


def test_a_read_only_store_refuses_to_write(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path)
    k.open_node(d).close()
    store = Store(d / DB_FILE, readonly=True)
    try:
        with pytest.raises(PermissionError, match="read-only"):
            store.write_checkpoint(5, {}, [])
    finally:
        store.close()
