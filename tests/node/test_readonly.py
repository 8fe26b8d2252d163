"""LedgerView: reading a ledger (report, trace, export, statements) never writes its database, and
sees the blocks the last checkpoint does not cover yet, even while the node runs."""

from __future__ import annotations

import hashlib
from contextlib import closing
from pathlib import Path

from crev.node.node import DB_FILE, LedgerView
from crev.node.trace import trace
from tests.node import nodekit as k


def fingerprint(d: Path) -> tuple[int, int, int, str]:
    with closing(k.sql(d)) as db:
        cp = int(db.execute("SELECT v FROM meta WHERE k = 'checkpoint_height'").fetchone()[0])
        moves = db.execute("SELECT COUNT(*) FROM ix_moves").fetchone()[0]
        readings = db.execute("SELECT COUNT(*) FROM ix_readings").fetchone()[0]
        state = hashlib.sha256(repr(db.execute("SELECT * FROM state ORDER BY key").fetchall()).encode()).hexdigest()
    return cp, moves, readings, state


def test_a_read_only_view_beside_a_running_node_sees_everything_and_writes_nothing(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path)
    node = k.open_node(d, checkpoint_s=3600)  # checkpoints lag far behind the blocks
    try:
        k.register_fleet(node, 2)
        node.flush()  # a checkpoint now; the readings below stay after it
        for j in range(3):
            assert node.submit_wait(k.batch(2, j)).ok
        before = fingerprint(d)
        assert before[0] < node.state.height  # the checkpoint does not cover the readings
        mtime = (d / DB_FILE).stat().st_mtime_ns
        view = LedgerView(d)  # while the node is running
        try:
            assert view.state.height == node.state.height
            assert view.state.tree.root() == node.state.tree.root()
            out = trace(view.store, view.state, "dgc-1:20260601T0902")
            assert out["lots"][0]["steps"][0]["step"] == "signed_reading"  # indexed from the replay
            assert out["lots"][0]["steps"][-1]["state_proof"]["verified"]
        finally:
            view.close()
        assert fingerprint(d) == before
        assert (d / DB_FILE).stat().st_mtime_ns == mtime
    finally:
        node.close()
    # and the node starts again from what it wrote itself
    again = k.open_node(d)
    try:
        assert again.state.supply.issued_g == 6 * k.PER_READING_G
    finally:
        again.close()


def test_a_checkpoint_never_goes_back(tmp_path: Path) -> None:
    import pytest

    from crev.node.store import Store

    d = k.init_dir(tmp_path)
    node = k.open_node(d)
    k.register_fleet(node, 1)
    node.close()
    store = Store(d / DB_FILE)
    try:
        with pytest.raises(ValueError, match="would go back"):
            store.write_checkpoint(0, {}, [])
    finally:
        store.close()
