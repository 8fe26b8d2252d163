"""Resuming the auditor's replay (``crev verify --resume``) from its own record: it replays only the
blocks after the last audited height and ends where a full replay ends, and it refuses, naming what
differs, a tampered checkpoint entry, a rewritten audited header, a changed record or a record of
another chain."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from crev.audit.replay import verify_chain
from crev.audit.resume import read_record
from crev.cli import main
from crev.core.encoding import decode, encode
from crev.ledger.block import Header
from crev.node.node import DB_FILE, Node
from tests.node import nodekit as k

LOT0 = "dgc-0:20260601T0900"


@dataclass(frozen=True)
class Audited:
    d: Path  # a ledger whose checkpoint is at its head
    record: Path  # the auditor's record of a full replay of it
    head: int


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Audited:
    base = tmp_path_factory.mktemp("resume")
    d = k.init_dir(base / "ledger")
    node = k.open_node(d)
    try:
        k.register_fleet(node, 2)
        for kk in range(3):
            assert node.submit_wait(k.batch(2, kk)).ok
        head = node.state.height
    finally:
        node.close()  # checkpoint at the head
    rec = base / "audit.sqlite"
    rep = verify_chain(d, record=rec)
    assert rep.ok and rep.record == str(rec), rep
    return Audited(d, rec, head)


@pytest.fixture
def copy(audited: Audited, tmp_path: Path) -> Callable[[], tuple[Path, Path]]:
    def make() -> tuple[Path, Path]:
        d = tmp_path / "ledger"
        shutil.copytree(audited.d, d)
        rec = tmp_path / "audit.sqlite"
        shutil.copy(audited.record, rec)
        return d, rec

    return make


def _grow(d: Path, first: int, n: int, **kw: object) -> Node:
    """Open the node on ``d`` and add ``n`` reading batches (the ``first``-th onwards); returns it open."""
    node = k.open_node(d, **kw)  # type: ignore[arg-type]
    for kk in range(first, first + n):
        assert node.submit_wait(k.batch(2, kk)).ok
    return node


def _full_root(d: Path) -> str:
    rep = verify_chain(d)
    assert rep.ok, rep
    return rep.state_root


def test_record_holds_the_replayed_head_and_the_state_there(audited: Audited) -> None:
    rec = read_record(audited.record)
    assert rec.chain_id == k.CHAIN and rec.head == audited.head and rec.snapshot_height == audited.head
    _, root = k.replay_root(audited.d)
    assert rec.points[audited.head].state_root == root and rec.points[audited.head].kind == "head"


def test_resume_with_nothing_new_starts_from_the_node_checkpoint(copy: Callable[[], tuple[Path, Path]],
                                                                 audited: Audited) -> None:
    d, rec = copy()
    rep = verify_chain(d, resume=rec)
    assert rep.ok, rep
    assert (rep.resumed_from, rep.resumed_with, rep.blocks_replayed) == (audited.head, "node checkpoint", 0)
    assert rep.blocks == audited.head and rep.state_root == _full_root(d)


def test_resume_after_more_blocks_replays_only_the_new_ones(copy: Callable[[], tuple[Path, Path]],
                                                            audited: Audited) -> None:
    d, rec = copy()
    _grow(d, 3, 2).close()  # the node's checkpoint moves past the audited head
    rep = verify_chain(d, resume=rec)
    assert rep.ok, rep
    head = rep.blocks
    assert head > audited.head
    # the node's checkpoint is past what was audited: the auditor's own snapshot serves
    assert (rep.resumed_from, rep.resumed_with) == (audited.head, "auditor snapshot")
    assert rep.blocks_replayed == head - audited.head and rep.readings == 4
    assert rep.state_root == _full_root(d)
    # the record now vouches for the new head, and its snapshot was brought there
    r = read_record(rec)
    assert r.head == head and r.snapshot_height == head and audited.head in r.points
    again = verify_chain(d, resume=rec)
    assert again.ok and (again.resumed_from, again.blocks_replayed) == (head, 0)
    assert again.state_root == rep.state_root


def test_resume_from_the_node_checkpoint_replays_the_blocks_after_it(copy: Callable[[], tuple[Path, Path]],
                                                                     audited: Audited) -> None:
    d, rec = copy()
    node = _grow(d, 3, 2, checkpoint_s=3600)  # running: the checkpoint stays at the audited head
    try:
        rep = verify_chain(d, resume=rec)
        assert rep.ok, rep
        assert (rep.resumed_from, rep.resumed_with) == (audited.head, "node checkpoint")
        assert rep.blocks_replayed == 2 and rep.readings == 4
        root = node.state.tree.root().hex()
    finally:
        node.close()
    assert rep.state_root == root == _full_root(d)
    r = read_record(rec)
    assert r.head == rep.blocks and r.snapshot_height == rep.blocks
    # the snapshot updated in place equals the one a full replay writes
    again = verify_chain(d, resume=rec)
    assert again.ok and again.state_root == root


def _edit(path: Path, sql: str, args: tuple[object, ...]) -> None:
    """One statement on a ledger's state file with its chain's file attached, or on an auditor's record."""
    with closing(k.sql(path.parent) if path.name == DB_FILE else sqlite3.connect(path, isolation_level=None)) as db:
        assert db.execute(sql, args).rowcount == 1


def test_a_tampered_checkpoint_entry_is_refused_naming_it(copy: Callable[[], tuple[Path, Path]],
                                                          audited: Audited) -> None:
    d, rec = copy()
    with closing(k.sql(d)) as db:
        value = bytes(db.execute("SELECT value FROM state WHERE key = ?", (f"l/{LOT0}",)).fetchone()[0])
    v = decode(value)  # a lot: [lot_id, first_unit, quantity_g, ...]
    forged = encode([*v[:2], v[2] + 1, *v[3:]])  # one more gram, still a well-formed record
    _edit(d / DB_FILE, "UPDATE state SET value = ? WHERE key = ?", (forged, f"l/{LOT0}"))
    rep = verify_chain(d, resume=rec)
    assert not rep.ok and rep.first_bad_height == audited.head
    assert rep.error.startswith("state: the node's checkpoint at block") and f"l/{LOT0}" in rep.error
    assert read_record(rec).head == audited.head  # the record is not touched by a refusal


def test_a_rewritten_header_at_an_audited_height_is_refused(copy: Callable[[], tuple[Path, Path]],
                                                            audited: Audited) -> None:
    d, rec = copy()
    h = audited.head
    with closing(k.sql(d)) as db:
        head = Header.decode(bytes(db.execute("SELECT header FROM blocks WHERE height = ?", (h,)).fetchone()[0]))
    moved = Header(head.chain_id, head.height, head.time + 1, head.prev_hash, head.tx_root, head.results_root,
                   head.state_root, head.tx_count)
    _edit(d / DB_FILE, "UPDATE blocks SET header = ? WHERE height = ?", (moved.encode(), h))
    rep = verify_chain(d, resume=rec)
    assert not rep.ok and rep.first_bad_height == h
    assert rep.error.startswith(f"header: block {h} hashes to {moved.hash.hex()}; the auditor recorded")


def test_a_rewritten_header_below_an_audited_height_breaks_the_link(copy: Callable[[], tuple[Path, Path]]) -> None:
    d, rec = copy()
    with closing(k.sql(d)) as db:
        one = Header.decode(bytes(db.execute("SELECT header FROM blocks WHERE height = 1").fetchone()[0]))
    moved = Header(one.chain_id, 1, one.time + 1, one.prev_hash, one.tx_root, one.results_root, one.state_root,
                   one.tx_count)
    _edit(d / DB_FILE, "UPDATE blocks SET header = ? WHERE height = 1", (moved.encode(),))
    rep = verify_chain(d, resume=rec)
    assert not rep.ok and rep.first_bad_height == 2
    assert rep.error.startswith("header.prev_hash: block 2 does not link to the stored block 1")


def test_a_missing_audited_block_is_refused(copy: Callable[[], tuple[Path, Path]], audited: Audited) -> None:
    d, rec = copy()
    _edit(d / DB_FILE, "DELETE FROM blocks WHERE height = ?", (audited.head,))
    rep = verify_chain(d, resume=rec)
    assert not rep.ok and rep.first_bad_height == audited.head
    assert rep.error.startswith(f"header.height: block {audited.head} is missing")


@pytest.mark.parametrize(("key", "value", "field"), [
    ("chain_id", "another-chain", "audit_record.chain_id"),
    ("genesis_hash", "00" * 32, "audit_record.genesis_hash"),
])
def test_a_record_of_another_chain_is_refused(copy: Callable[[], tuple[Path, Path]], key: str, value: str,
                                              field: str) -> None:
    d, rec = copy()
    _edit(rec, "UPDATE meta SET v = ? WHERE k = ?", (value, key))
    rep = verify_chain(d, resume=rec)
    assert not rep.ok and rep.first_bad_height is None and rep.error.startswith(f"{field}: ")
    assert value in rep.error


def test_an_undecodable_checkpoint_entry_is_refused_at_the_checkpoint(copy: Callable[[], tuple[Path, Path]],
                                                                      audited: Audited) -> None:
    d, rec = copy()
    _edit(d / DB_FILE, "UPDATE state SET value = ? WHERE key = ?", (b"\xff", f"l/{LOT0}"))
    rep = verify_chain(d, resume=rec)
    assert not rep.ok and rep.first_bad_height == audited.head
    assert rep.error.startswith(f"state: the node's checkpoint at block {audited.head} cannot be loaded")


def test_a_changed_auditor_snapshot_is_refused(copy: Callable[[], tuple[Path, Path]]) -> None:
    d, rec = copy()
    _grow(d, 3, 1).close()  # past the audit: the auditor's own snapshot is the starting state
    _edit(rec, "DELETE FROM state WHERE key = ?", (f"l/{LOT0}",))
    rep = verify_chain(d, resume=rec)
    assert not rep.ok and rep.error.startswith("audit_record.state: the auditor's own snapshot at block")


def test_no_usable_starting_state_replays_from_genesis_and_says_why(copy: Callable[[], tuple[Path, Path]]) -> None:
    d, rec = copy()
    _grow(d, 3, 1).close()
    _edit(rec, "UPDATE meta SET v = '0' WHERE k = 'snapshot_height'", ())
    rep = verify_chain(d, resume=rec)
    assert rep.ok and rep.resumed_from == 0 and rep.blocks_replayed == rep.blocks
    assert "past the audited head" in rep.full_replay_reason and "no state snapshot" in rep.full_replay_reason
    assert rep.state_root == _full_root(d)
    assert read_record(rec).snapshot_height == rep.blocks  # rewritten whole


def test_resume_with_a_missing_file_is_a_clear_error(audited: Audited, tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite"
    with pytest.raises(FileNotFoundError, match="no such audit record"):
        verify_chain(audited.d, resume=missing)
    out = CliRunner().invoke(main, ["verify", str(audited.d), "--resume", str(missing)])
    assert out.exit_code == 2 and "no such audit record" in out.output
    junk = tmp_path / "junk"
    junk.write_text("not a record")
    out = CliRunner().invoke(main, ["verify", str(audited.d), "--resume", str(junk)])
    assert out.exit_code == 2 and "is not a crev audit record" in out.output


def test_cli_resume_says_what_it_resumed_from(copy: Callable[[], tuple[Path, Path]], audited: Audited) -> None:
    d, rec = copy()
    _grow(d, 3, 1).close()
    out = CliRunner().invoke(main, ["verify", str(d), "--resume", str(rec), "--json", "--threads", "1"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["ok"] and doc["resumed_from"] == audited.head and doc["resumed_with"] == "auditor snapshot"
    assert doc["blocks_replayed"] == 1 and doc["record"] == str(rec) and "seen" not in doc
    out = CliRunner().invoke(main, ["verify", str(d), "--resume", str(rec), "--threads", "1"])
    assert out.exit_code == 0, out.output
    assert f"resumed from block {doc['blocks']}" in out.output and "replayed 0 blocks" in out.output
