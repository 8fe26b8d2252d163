"""A state key may hold a NUL: an emission factor row's key is free text (``FactorRow.check``:
non-empty, at most 64 characters) and its state key is ``f/<key>/<fy>/<kind>``. A plain ``State``
(``crev verify``, a consortium member, any full replay) seals such a block; the node, whose state
tree is lazy and holds each loaded bucket's keys NUL-separated, must seal the same block with the
same root (a review found it raised instead and stopped the sealer)."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from crev.core.factors import FactorRow
from crev.ledger.apply import BlockBuilder, SigCache, apply_block
from crev.ledger.genesis import Genesis, state_from_genesis
from crev.ledger.messages.set_emission_factors import SetEmissionFactors
from crev.node.node import DB_FILE, GENESIS_FILE
from crev.node.store import Store
from tests.node import nodekit as k


def test_a_factor_key_with_nul_seals_on_the_node_as_on_a_plain_state(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d, checkpoint_s=0.0)
    s = k.register_fleet(node, 1)
    node.stop()
    try:
        tx = s.tx(k.OPERATOR, SetEmissionFactors((FactorRow("kan\x00sai", 2025, "adjusted", 400, "typo"),)))
        # the plain state: genesis and every stored block, then the same transaction in the next block
        plain = state_from_genesis(Genesis.from_json((d / GENESIS_FILE).read_text("utf-8")))
        with closing(Store(d / DB_FILE)) as store:
            for block in store.blocks():
                apply_block(plain, block)
        builder = BlockBuilder(plain, plain.height + 1, k.NOW, SigCache())
        builder.add(tx)
        expected = builder.finish()
        assert expected.results[0].ok, expected.results[0].error
        # the node (its state read lazily): the same block must give the same root
        out = node.finalize_block([tx], k.NOW)
        assert out.results[0].ok, out.results[0].error
        assert out.header.state_root == expected.header.state_root
    finally:
        node.close()
