"""The sequencer's limits and the manual (ABCI-shaped) path's guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from crev.ledger.messages.register_participant import RegisterParticipant
from tests.node import nodekit as k


def test_a_block_holds_at_most_max_txs_transactions_and_seals_without_waiting(tmp_path: Path) -> None:
    node = k.open_node(k.init_dir(tmp_path), block_interval_ms=60_000, max_block_txs=5)
    try:
        s = k.Signers()
        futs = [node.submit(s.tx(k.OPERATOR, RegisterParticipant(f"p-{i}", f"P {i}", "buyer",
                                                                 k.key(f"p-{i}").public_key))) for i in range(10)]
        receipts = [f.result(20) for f in futs]  # well before the 60 s interval
        assert all(r.ok for r in receipts)
        per_block: dict[int, int] = {}
        for r in receipts:
            per_block[r.height] = per_block.get(r.height, 0) + 1
        assert max(per_block.values()) <= 5 and sum(per_block.values()) == 10
    finally:
        node.close()


def test_finalize_block_is_refused_while_the_sealer_runs(tmp_path: Path) -> None:
    node = k.open_node(k.init_dir(tmp_path))
    try:
        with pytest.raises(RuntimeError, match="sealer"):
            node.finalize_block([], int(k.NOW))
    finally:
        node.close()
