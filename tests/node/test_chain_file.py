"""The chain in a file of its own: blocks and state in separate files, a block commit that never
waits for a checkpoint's transaction, a state file whose chain lacks its checkpoint's block
refused, and a ledger written when blocks shared the state file read where it is and moved when
first opened writable."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

from crev.errors import InvalidBlock
from crev.ledger.apply import apply_block
from crev.ledger.genesis import Genesis, state_from_genesis
from crev.node.node import DB_FILE, GENESIS_FILE, LedgerView
from crev.node.store import CHAIN_SCHEMA, Store, WriteLocks, chain_file
from tests.node import nodekit as k


def test_the_chain_file_is_named_after_the_state_file(tmp_path: Path) -> None:
    assert chain_file(tmp_path / "ledger.sqlite") == tmp_path / "ledger.chain.sqlite"
    assert chain_file("x/other.db") == Path("x/other.chain.db")


def _ledger_with_blocks(tmp_path: Path, blocks: int) -> Path:
    d = k.init_dir(tmp_path)
    node = k.open_node(d)
    k.register_fleet(node, 2)
    for i in range(blocks):
        assert node.submit_wait(k.batch(2, i)).ok
    node.close()
    return d


def test_blocks_and_state_live_in_separate_files(tmp_path: Path) -> None:
    d = _ledger_with_blocks(tmp_path, 3)
    with closing(sqlite3.connect(d / DB_FILE)) as db:
        names = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "blocks" not in names and "txs" not in names and {"state", "meta", "ix_readings"} <= names
    with closing(sqlite3.connect(chain_file(d / DB_FILE))) as db:
        names = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert names == {"blocks", "txs"}
        top = db.execute("SELECT MAX(height) FROM blocks").fetchone()[0]
    with closing(Store(d / DB_FILE, readonly=True)) as store:
        assert store.height() == top
        assert store.checkpoint_height() == top  # close() checkpoints at the tip


def test_a_block_commits_while_a_checkpoint_holds_the_state_file(tmp_path: Path) -> None:
    """The checkpoint thread's transaction holds the state file's write lock; a block commit on
    another connection (the sealer's) goes through meanwhile, where in one file it waited."""
    d = _ledger_with_blocks(tmp_path, 2)
    g = Genesis.from_json((d / GENESIS_FILE).read_text("utf-8"))
    st = state_from_genesis(g)
    with closing(Store(d / DB_FILE, readonly=True)) as src:
        blocks = list(src.blocks())
    for block in blocks[:-1]:
        apply_block(st, block)
    tip = blocks[-1]
    outcome = apply_block(st, tip)  # the tip's results, as the sealer commits them
    locks = WriteLocks()
    sealer = Store(tmp_path / "copy.sqlite", locks=locks)
    checkpointer = Store(tmp_path / "copy.sqlite", locks=locks)
    try:
        with locks.state:  # a checkpoint transaction in progress, the state file's write lock taken
            checkpointer.db.execute("BEGIN")
            checkpointer.db.execute("INSERT OR REPLACE INTO meta VALUES ('x', x'01')")
            done = threading.Event()

            def commit() -> None:
                sealer.commit_block(tip, outcome)
                done.set()

            t = threading.Thread(target=commit)
            t.start()
            finished = done.wait(10)
            checkpointer.db.execute("COMMIT")
        t.join()  # (if it waited, it goes on now: the connections are closed only after it)
        assert finished, "the block commit waited for the state file's transaction"
        h = tip.header.height
        assert sealer.height() == h and sealer.get_meta("x") == b"\x01"
        assert sealer.block(h) == tip
        stored = sealer.db.execute("SELECT result FROM txs WHERE height = ? ORDER BY idx", (h,)).fetchall()
        assert [bytes(r[0]) for r in stored] == list(outcome.encoded_results)
    finally:
        sealer.close()
        checkpointer.close()


def _to_one_file(d: Path) -> None:
    """Rewrite a ledger in the layout of the versions before the chain's own file: blocks and
    transactions in the state file, no chain file."""
    path = d / DB_FILE
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("ATTACH ? AS chain", (str(chain_file(path)),))
        db.executescript(CHAIN_SCHEMA.replace("chain.", "main."))
        db.execute("INSERT INTO main.blocks SELECT * FROM chain.blocks")
        db.execute("INSERT INTO main.txs SELECT * FROM chain.txs")
        db.execute("DETACH chain")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{chain_file(path)}{suffix}").unlink(missing_ok=True)


def test_a_ledger_with_blocks_in_the_state_file_is_read_then_moved(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    d = _ledger_with_blocks(tmp_path, 3)
    before_state, before_root = k.replay_root(d)
    view = LedgerView(d)
    height, root = view.state.height, view.state.tree.root()
    view.close()
    _to_one_file(d)
    assert not chain_file(d / DB_FILE).exists()
    # read-only, it is read where it is and nothing is written
    view = LedgerView(d)
    try:
        assert (view.state.height, view.state.tree.root()) == (height, root)
        assert view.store.block(height) is not None
    finally:
        view.close()
    assert not chain_file(d / DB_FILE).exists()
    # opened writable, the blocks move to the chain's file and leave the state file, once, saying so
    with caplog.at_level("WARNING", logger="crev.node.store"):
        node = k.open_node(d)
    moved = [r.getMessage() for r in caplog.records if r.name == "crev.node.store"]
    assert moved == [f"moving {height} blocks (up to height {height}) from ledger.sqlite to ledger.chain.sqlite, once"]
    try:
        assert node.state.height == height and node.state.tree.root() == root
        assert node.submit_wait(k.batch(2, 3)).ok
    finally:
        node.close()
    with closing(sqlite3.connect(d / DB_FILE)) as db:
        assert db.execute("SELECT 1 FROM sqlite_master WHERE name IN ('blocks', 'txs')").fetchall() == []
    with closing(Store(d / DB_FILE, readonly=True)) as store:
        assert store.height() == height + 1
        assert [b.header.height for b in store.blocks()] == list(range(1, height + 2))
    assert before_state.height == height and before_root == root


def test_a_move_cut_short_is_finished_at_the_next_open(tmp_path: Path) -> None:
    """Killed after the copy to the chain's file committed and before the state file's tables were
    dropped: the next open copies again (keeping the rows there) and drops them."""
    d = _ledger_with_blocks(tmp_path, 2)
    path = d / DB_FILE
    with closing(Store(path, readonly=True)) as store:
        height = store.height()
        txs = store.db.execute("SELECT COUNT(*) FROM txs").fetchone()[0]
    _to_one_file(d)
    with closing(sqlite3.connect(path, isolation_level=None)) as db:  # the copy alone, as _move_chain does it
        db.execute("ATTACH ? AS chain", (str(chain_file(path)),))
        db.executescript(CHAIN_SCHEMA)
        db.execute("INSERT INTO chain.blocks SELECT * FROM main.blocks")
        db.execute("INSERT INTO chain.txs SELECT * FROM main.txs")
    Store(path).close()
    with closing(k.sql(d)) as db:
        assert db.execute("SELECT 1 FROM main.sqlite_master WHERE name IN ('blocks', 'txs')").fetchall() == []
        assert db.execute("SELECT COUNT(*), MAX(height) FROM chain.blocks").fetchone() == (height, height)
        assert db.execute("SELECT COUNT(*) FROM chain.txs").fetchone()[0] == txs


def test_a_state_file_without_its_chain_is_refused_naming_both_files(tmp_path: Path) -> None:
    """The chain's file lost (or a state file restored without it): the checkpoint names a block
    nobody holds. Read-only and writable opens refuse, saying which file lacks what."""
    d = _ledger_with_blocks(tmp_path, 2)
    with closing(Store(d / DB_FILE, readonly=True)) as store:
        cp = store.checkpoint_height()
    assert cp > 0
    for suffix in ("", "-wal", "-shm"):
        Path(f"{chain_file(d / DB_FILE)}{suffix}").unlink(missing_ok=True)
    message = (rf"^checkpoint_height: the checkpoint in ledger.sqlite is at height {cp} but "
               rf"ledger.chain.sqlite holds no block {cp} \(its last is 0\): run `crev verify`$")
    with pytest.raises(InvalidBlock, match=message):
        LedgerView(d)
    with pytest.raises(InvalidBlock, match=message):
        k.open_node(d)
