"""The SQLite store's index: each unit movement indexed once however often its block is indexed,
readings indexed with the owner at the time, and databases from earlier versions brought up to
date when opened."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from crev.core.statetree import key_hash32
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.transfer import Transfer
from crev.ledger.messages.update_device import UpdateDevice
from crev.node.node import DB_FILE, LedgerView
from crev.node.store import Store
from tests.node import nodekit as k

LOT = "dgc-0:20260601T0900"
MOVES = "SELECT lot_id, kind, party, counterparty, start_unit, end_unit, height FROM ix_moves ORDER BY rowid"
READINGS = "SELECT device_id, seq, lot_id, owner FROM ix_readings ORDER BY device_id, seq"


def test_indexing_a_block_twice_adds_no_row(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path)
    node = k.open_node(d)
    s = k.register_fleet(node, 1)
    assert node.submit_wait(k.batch(1, 0)).ok
    r = node.submit_wait(s.tx(k.OWNER, Transfer(k.BUYER, ((LOT, 100),), "sale")))
    assert r.ok
    first = node.state.lots[LOT].first_unit
    assert node.last_outcome is not None and node.last_outcome.header.height == r.height
    results = node.last_outcome.results
    node.close()
    store = Store(d / DB_FILE)
    try:
        moves, readings = store.db.execute(MOVES).fetchall(), store.db.execute(READINGS).fetchall()
        assert moves == [(LOT, "transfer", k.OWNER, k.BUYER, first, first + 100, r.height)]
        # the checkpoint (at the tip) written again with the same block, as a replay would
        store.write_checkpoint(store.checkpoint_height(), {}, [(r.height, results)])
        store.write_checkpoint(store.checkpoint_height(), {}, [(r.height, results)])
        assert store.db.execute(MOVES).fetchall() == moves
        assert store.db.execute(READINGS).fetchall() == readings
    finally:
        store.close()


def test_a_reading_is_indexed_with_the_owner_at_the_time(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path)
    node = k.open_node(d, checkpoint_s=3600)
    s = k.register_fleet(node, 1)
    assert node.submit_wait(s.tx(k.OPERATOR, RegisterParticipant("new-co", "New Co", "prosumer",
                                                                 k.key("new-co").public_key))).ok
    assert node.submit_wait(k.readings_tx([k.reading(0, 0)])).ok
    node.flush()  # this reading reaches the file's index...
    assert node.submit_wait(s.tx(k.OPERATOR, UpdateDevice("dgc-0", (("owner", "new-co"),)))).ok
    assert node.submit_wait(k.readings_tx([k.reading(0, 1)])).ok  # ...this one only a replay's
    expected = [("dgc-0", 1, "dgc-0:20260601T0900", k.OWNER), ("dgc-0", 2, "dgc-0:20260601T0901", "new-co")]
    view = LedgerView(d)  # the index replayed in memory
    try:
        assert view.store.db.execute(READINGS).fetchall() == expected
    finally:
        view.close()
    node.close()  # the index the node writes
    with closing(k.sql(d)) as db:
        assert db.execute(READINGS).fetchall() == expected
        assert [c[1] for c in db.execute("PRAGMA table_info(ix_readings)")][-1] == "owner"


def test_a_database_from_an_earlier_version_is_brought_up_to_date(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path)
    node = k.open_node(d)
    s = k.register_fleet(node, 1)
    assert node.submit_wait(k.batch(1, 0)).ok
    assert node.submit_wait(s.tx(k.OWNER, Transfer(k.BUYER, ((LOT, 100),), "sale"))).ok
    node.close()
    with closing(k.sql(d)) as db:
        moves = db.execute(MOVES).fetchall()
        readings = db.execute(READINGS).fetchall()
        # what an earlier version left: no unique key on ix_moves and a replay's duplicate rows,
        # ix_readings without its owner column
        db.executescript("""
            DROP INDEX ix_moves_once;
            INSERT INTO ix_moves SELECT * FROM ix_moves;
            DROP INDEX ix_readings_owner;
            ALTER TABLE ix_readings DROP COLUMN owner;
        """)
        assert db.execute("SELECT COUNT(*) FROM ix_moves").fetchone()[0] == 2 * len(moves)
    Store(d / DB_FILE).close()
    with closing(k.sql(d)) as db:
        assert db.execute(MOVES).fetchall() == moves
        assert db.execute(READINGS).fetchall() == readings == [("dgc-0", 1, LOT, k.OWNER)]
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'ix_moves_once'").fetchone() is not None
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'ix_readings_owner'").fetchone() is not None
    node = k.open_node(d)  # and the node runs on it
    try:
        assert node.submit_wait(k.batch(1, 1)).ok
    finally:
        node.close()


def test_a_checkpoint_rewrites_only_the_bucket_hash_rows_its_changes_fall_in(tmp_path: Path) -> None:
    from crev.core.statetree import BucketHashes, StateTree, bucket_index
    from crev.node.store import CHUNK_BUCKETS

    store = Store(tmp_path / DB_FILE)
    try:
        tree = StateTree(16)
        tree.set("a/x", b"1")
        store.write_checkpoint(1, {"a/x": b"1"}, [], BucketHashes(16, tree.bucket_hashes()))
        assert store.db.execute("SELECT COUNT(*) FROM state_buckets").fetchone()[0] == (1 << 16) // CHUNK_BUCKETS
        store.db.execute("UPDATE state_buckets SET hashes = x'00'")  # mark every row
        tree.set("l/y", b"2")
        tree.delete("a/x")
        store.write_checkpoint(2, {"l/y": b"2", "a/x": None}, [], BucketHashes(16, tree.bucket_hashes()))
        rewritten = {int(r[0]) for r in store.db.execute("SELECT chunk FROM state_buckets WHERE hashes != x'00'")}
        assert rewritten == {bucket_index(k, 16) // CHUNK_BUCKETS for k in ("l/y", "a/x")}
        assert store.db.execute("SELECT key, kh FROM state").fetchall() == [("l/y", key_hash32("l/y"))]
        store.write_checkpoint(3, {}, [])  # without bucket hashes: the stored ones would be another height's
        assert store.bucket_hashes() is None
        assert store.db.execute("SELECT COUNT(*) FROM state_buckets").fetchone()[0] == 0
    finally:
        store.close()


def test_readings_of_a_day_are_found_by_their_index(tmp_path: Path) -> None:
    """/v1/devices' "today": the readings of one JST day, without scanning them all."""
    store = Store(tmp_path / DB_FILE)
    try:
        plan = " ".join(str(r[3]) for r in store.db.execute(
            "EXPLAIN QUERY PLAN SELECT device_id, SUM(generation_wh) FROM ix_readings WHERE interval_start >= ? "
            "AND interval_start < ? GROUP BY device_id", (0, 86400)))
        assert "USING INDEX ix_readings_start" in plan, plan
    finally:
        store.close()
