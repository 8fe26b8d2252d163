"""The ABCI 2.0-shaped surface: info, check_tx, finalize_block (app hash), commit, query.

A block decided elsewhere keeps its failed transactions with their error (CometBFT semantics), is
stored only at commit, and the stored chain passes the auditor's replay.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crev.audit.replay import verify_chain
from crev.errors import MalformedError
from crev.ledger.messages.transfer import Transfer
from tests.node import nodekit as k


def test_finalize_then_commit_stores_a_block_that_replays(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d)
    signers = k.register_fleet(node, 2)
    node.stop()  # from here on, blocks come only through finalize_block / commit
    height = node.state.height
    good = k.batch(2, 0)
    too_much = signers.tx(k.OWNER, Transfer(k.BUYER, ((f"{k.device_id(0)}:20260601T0900", 10**9),), ""))
    outcome = node.finalize_block([good, too_much], k.NOW)
    # the app hash is the state root after the block, before anything is stored
    assert outcome.header.state_root == node.state.tree.root()
    assert node.info()["app_hash"] == outcome.header.state_root.hex()
    assert [r.ok for r in outcome.results] == [True, False]
    assert outcome.results[1].error is not None and outcome.results[1].error.field == "body.items[0].quantity_g"
    assert node.store.height() == height  # not stored until commit
    assert node.commit() == height + 1
    assert node.store.height() == height + 1
    stored = node.store.block(height + 1)
    assert stored is not None and stored.header == outcome.header and stored.txs == (good, too_much)
    with pytest.raises(RuntimeError):
        node.commit()  # nothing finalized
    # each reading issued ⌊(GEN − EXP) × 450 / 1000⌋ g
    expected = (k.GEN - k.EXP) * k.FACTOR // 1000
    assert outcome.results[0].detail == [["accepted", f"{k.device_id(i)}:20260601T0900", expected] for i in range(2)]
    record, proof = node.query(f"lot/{k.device_id(0)}:20260601T0900")
    assert record is not None and record[2] == expected and proof.verify(node.state.tree.root())
    node.close()
    rep = verify_chain(d)
    assert rep.ok, rep


def test_check_tx_is_stateless_and_names_the_field(tmp_path: Path) -> None:
    node = k.open_node(k.init_dir(tmp_path / "ledger"), start=False)
    with pytest.raises(MalformedError) as err:
        node.check_tx(b"\xff\x00")
    assert err.value.field == "tx"
    tx = node.check_tx(k.batch(1, 0))  # unknown device: shape is fine, state decides later
    assert tx.kind == "submit_readings"
    node.close()
