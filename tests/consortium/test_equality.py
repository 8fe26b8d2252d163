"""The embedded node and the ABCI app compute the same ledger: the same transactions in the same
order, fed to the embedded node's finalize_block/commit (BlockBuilder) and to CrevApp's
FinalizeBlock/Commit (in process, no CometBFT), give identical crev headers (so identical tx,
results and state roots and app hashes) and identical result bytes, block by block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crev.consortium.app import CODES, CrevApp
from crev.core.encoding import decode, encode
from crev.ledger.apply import TxResult
from crev.ledger.genesis import Genesis
from crev.ledger.messages.market_tick import MarketTick
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.transfer import Transfer
from crev.ledger.tx import build_tx
from crev.node.node import Node
from tests import ledger_kit
from tests.ledger import market_kit
from tests.ledger_kit import CHAIN, FACTORS, T0, key

Blocks = list[tuple[list[bytes], int]]


def kit_genesis() -> Genesis:
    return Genesis(CHAIN, T0 - 86400, "operator", "Test Operator", key("operator").public_key,
                   key("sequencer").public_key, emission_factors=FACTORS)


def recorded_scenario(monkeypatch: pytest.MonkeyPatch) -> tuple[Blocks, bytes]:
    """The market kit's ledger (registrations, readings, a market, deposits), then a good-till-time
    bid that expires at a market_tick, a failed transfer (bad nonce), undecodable bytes, a bytes
    of another chain and a batch repeating an accepted reading: every block as the kit applied it,
    and the kit's final state root."""
    blocks: Blocks = []
    original = ledger_kit.Kit.block

    def recording(self: ledger_kit.Kit, *raws: bytes, dt: int = 10) -> list[TxResult]:
        blocks.append((list(raws), self.time + dt))
        return original(self, *raws, dt=dt)

    monkeypatch.setattr(ledger_kit.Kit, "block", recording)
    kit = market_kit.make_market_kit()
    until = kit.time + 600
    market_kit.ok(kit, "buyer-co", market_kit.order("bid", 50_000, 2_000, tif="gtt", expires_at=until))
    kit.time = until - 10
    res = kit.block(build_tx(CHAIN, MarketTick(until)))
    assert res[0].ok and res[0].detail == [1, 0, []]
    stale = kit.tx("sun-co", Transfer("buyer-co", ((market_kit.L1, 100),), "x"), nonce=0)
    kit.block(kit.tx("sun-co", Transfer("buyer-co", ((market_kit.L1, 100),), "gift")), stale,
              b"\xff garbage", build_tx("other-chain", Transfer("buyer-co", ((market_kit.L1, 1),), "x"), "sun-co",
                                        1, key("sun-co")),
              kit.submit(kit.reading(ledger_kit.NOON, 10_000, 0, 0, seq=1, regs=(1_010_000, 2_000_000, 300_000))))
    return blocks, kit.root()


def test_embedded_node_and_abci_app_agree_block_by_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks, kit_root = recorded_scenario(monkeypatch)
    g = kit_genesis()
    Node.init(tmp_path / "node", g, key("sequencer").seed)
    node = Node(tmp_path / "node", verify_threads=1, verify_processes=False)
    app = CrevApp(tmp_path / "app")
    assert app.init_chain(CHAIN, g.genesis_time, g.to_json().encode(), []) == g.hash
    results: list[list[Any]] = []
    try:
        for height, (txs, t) in enumerate(blocks, start=1):
            expected = node.finalize_block(txs, t)
            node.commit()
            if any(raw == build_tx(CHAIN, MarketTick(t)) for raw in txs):
                # the app's proposer adds the market clock exactly where the embedded sealer does
                assert app.prepare_proposal([], 1 << 20, t) == txs
                assert app.process_proposal(txs, height, t) is None
            got = app.finalize_block(txs, height, t)
            assert got.outcome is not None
            assert got.outcome.header == expected.header, height
            assert got.outcome.encoded_results == expected.encoded_results, height
            assert got.app_hash == expected.header.hash
            assert app.commit() == height
            results.append([r.to_value() for r in got.outcome.results])
        assert app.state is not None and app.state.tree.root() == node.state.tree.root() == kit_root
        assert node.info()["height"] == app.info()["crev_height"] == len(blocks)
    finally:
        node.close()
    last = results[-1]
    assert [r[2] for r in last] == [True, False, False, False, False]
    assert [r[1] for r in last] == ["transfer", "transfer", "?", "?", "submit_readings"]
    assert [r[3][0] for r in last[1:]] == ["bad_nonce", "malformed", "malformed", "conflict"]
    assert last[3][3][1] == "tx.chain_id"
    # the app survives a restart: same height, app hash and state root, read back from its store
    hash_before, root_before = app.app_hash, app.state.tree.root()
    app.close()
    again = CrevApp(tmp_path / "app")
    try:
        assert again.info()["last_block_height"] == len(blocks)
        assert again.app_hash == hash_before and again.state is not None
        assert again.state.tree.root() == root_before
    finally:
        again.close()


def test_a_failed_transaction_gets_its_crev_error_code(tmp_path: Path) -> None:
    g = kit_genesis()
    app = CrevApp(tmp_path)
    app.init_chain(CHAIN, g.genesis_time, g.to_json().encode(), [])
    bad = encode(["crev/tx/1", CHAIN, "transfer", "nobody", 0, [], b"\x00" * 64])
    f = app.finalize_block([bad], 1, g.genesis_time + 5)
    assert f.outcome is not None
    r = f.outcome.results[0]
    assert not r.ok and r.error is not None and CODES[r.error.code] == CODES["malformed"]
    app.commit()
    app.close()


def test_a_block_finalized_but_never_committed_is_dropped_when_consensus_moves_on(tmp_path: Path) -> None:
    """CometBFT died between FinalizeBlock and Commit; the new one replays the height, perhaps
    with another block: the app reloads its committed state first, and Info never reports the
    uncommitted block."""
    g = kit_genesis()
    app = CrevApp(tmp_path / "a")
    app.init_chain(CHAIN, g.genesis_time, g.to_json().encode(), [])
    reg = build_tx(CHAIN, RegisterParticipant("sun-co", "Sun Co", "prosumer", key("sun-co").public_key),
                   "operator", 0, key("operator"))
    other = build_tx(CHAIN, RegisterParticipant("buyer-co", "Buyer Co", "buyer",
                                                           key("buyer-co").public_key), "operator", 0, key("operator"))
    f = app.finalize_block([reg], 1, g.genesis_time + 10)
    assert f.outcome is not None
    info = app.info()
    assert (info["last_block_height"], info["last_block_app_hash"]) == (0, g.hash)
    again = app.finalize_block([other], 1, g.genesis_time + 11)  # the replayed height holds another block
    app.commit()
    fresh = CrevApp(tmp_path / "b")
    fresh.init_chain(CHAIN, g.genesis_time, g.to_json().encode(), [])
    want = fresh.finalize_block([other], 1, g.genesis_time + 11)
    fresh.commit()
    assert again.app_hash == want.app_hash == app.info()["last_block_app_hash"]
    assert app.state is not None and "sun-co" not in app.state.accounts
    app.close()
    fresh.close()


def test_check_tx_verifies_signatures_once_for_the_block_and_never_changes_results(tmp_path: Path) -> None:
    """CheckTx puts the good signatures of a new transaction in the SigCache that FinalizeBlock
    reads (a forged one is left out and judged in the block); the results equal an app that
    never ran CheckTx."""
    from tests.node import nodekit as k

    g = k.genesis()
    apps = [CrevApp(tmp_path / n) for n in ("checked", "unchecked")]
    s = k.Signers()
    setup = [s.tx(k.OPERATOR, RegisterParticipant(k.OWNER, "Sun Co", "prosumer", k.key(k.OWNER).public_key))]
    setup += [s.tx(k.OPERATOR, market_kit.RegisterDevice(
        k.device_id(i), k.OWNER, k.key(f"dev/{k.device_id(i)}").public_key, k.CAPACITY_W, k.T0 - 30 * 86400,
        35_681_236, 139_767_125, "tokyo", f"SN-{i}", k.T0 + 5 * 365 * 86400, False, "solar_pv")) for i in range(3)]
    forged = k.reading(2, 0, signer=k.key("not the device"))
    batch = k.readings_tx([k.reading(0, 0), k.reading(1, 0), forged])
    out = []
    for app in apps:
        app.init_chain(k.CHAIN, g.genesis_time, g.to_json().encode(), [])
        app.finalize_block(setup, 1, k.NOW)
        app.commit()
        if app is apps[0]:
            assert app.check_tx(batch).code == 0  # a forged reading does not refuse the batch here
            assert len(app.sigs) == 2  # the two good device signatures
        f = app.finalize_block([batch], 2, k.NOW + 1)
        assert f.outcome is not None
        out.append((f.app_hash, f.outcome.encoded_results))
        app.commit()
        assert len(app.sigs) == 0  # used by the block
        app.close()
    assert out[0] == out[1]
    detail = decode(out[0][1][0])[5]
    assert [d[0] for d in detail] == ["accepted", "accepted", "refused"] and detail[2][1] == "bad_signature"


def test_info_after_a_crash_between_storing_a_block_and_its_cometbft_height(tmp_path: Path) -> None:
    """Commit writes cmt/<crev height> → the crev block → cometbft_height. A kill -9 after the
    block but before the height: the block's own record says which CometBFT height it was, so
    Info reports it and the handshake does not replay it (no block applied twice). A kill -9
    before the block: Info reports the height before it, and CometBFT replays it."""
    g = kit_genesis()
    reg = build_tx(CHAIN, RegisterParticipant("sun-co", "Sun Co", "prosumer", key("sun-co").public_key),
                   "operator", 0, key("operator"))
    app = CrevApp(tmp_path)
    app.init_chain(CHAIN, g.genesis_time, g.to_json().encode(), [])
    for h in (1, 2, 3):  # two empty CometBFT blocks first
        app.finalize_block([], h, g.genesis_time + h)
        app.commit()
    f = app.finalize_block([reg], 4, g.genesis_time + 4)
    assert app.store is not None and f.outcome is not None
    app.store.set_meta("cmt/1", b"4")  # what commit does, stopped before the cometbft_height write
    from crev.ledger.block import Block
    app.store.commit_block(Block(f.outcome.header, b"", tuple(f.outcome.txs)), f.outcome)
    app.store.close()
    app.store = None  # the process died here
    after = CrevApp(tmp_path)
    assert after.info()["last_block_height"] == 4 and after.info()["crev_height"] == 1
    assert after.app_hash == f.app_hash
    after.close()
    # the other order: the record written, the block not
    other = tmp_path / "other"
    app = CrevApp(other)
    app.init_chain(CHAIN, g.genesis_time, g.to_json().encode(), [])
    app.finalize_block([], 1, g.genesis_time + 1)
    app.commit()
    app.finalize_block([reg], 2, g.genesis_time + 2)
    assert app.store is not None
    app.store.set_meta("cmt/1", b"2")
    app.store.close()
    app.store = None
    after = CrevApp(other)
    assert after.info()["last_block_height"] == 1 and after.info()["crev_height"] == 0
    assert after.app_hash == g.hash
    after.close()
