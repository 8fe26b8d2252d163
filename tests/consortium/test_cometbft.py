"""A real single-validator CometBFT chain driving the crev app over the ABCI socket: signed
transactions through CometBFT's RPC, results and state read back with proofs that link to the
app hash in CometBFT's headers, and kill -9 of the app recovered through the handshake."""

from __future__ import annotations

import base64
import signal
import time
from pathlib import Path

from crev.consortium.app import CODES
from crev.core.encoding import decode
from crev.core.hashing import sha256
from crev.core.statetree import StateProof
from crev.ledger.apply import apply_block
from crev.ledger.block import Header
from crev.ledger.genesis import state_from_genesis
from crev.ledger.messages.transfer import Transfer
from crev.ledger.tx import build_tx
from crev.node.store import Store
from tests.consortium.netkit import committed, make_net, register
from tests.node import nodekit as k


def replayed_root(data: Path) -> tuple[bytes, int]:
    """Genesis + every stored crev block through apply_block: the state root and crev height."""
    st = state_from_genesis(k.genesis())
    store = Store(data / "ledger.sqlite", readonly=True)
    try:
        for block in store.blocks():
            apply_block(st, block, check_signature=False)
    finally:
        store.close()
    return st.tree.root(), st.height


def test_single_validator_chain_commits_crev_transactions(tmp_path: Path) -> None:
    net = make_net(tmp_path, 1)
    m = net.members[0]
    try:
        net.start()
        rpc = net.rpc()
        rpc.wait_height(1, 60)
        s = register(rpc, 3)
        r = committed(rpc, k.readings_tx([k.reading(d, j) for d in range(3) for j in range(2)]))
        assert r["code"] == 0 and r["result"][1] == "submit_readings"
        details = r["result"][5]
        assert [d[0] for d in details] == ["accepted"] * 6 and all(d[2] == k.PER_READING_G for d in details)
        lot = details[0][1]
        # a transaction that fails in the block keeps its crev error code and field
        ahead = k.Signers({k.OWNER: 5}).tx(k.OWNER, Transfer(k.BUYER, ((lot, 10),), "early"))
        r = committed(rpc, ahead)
        assert r["code"] == CODES["bad_nonce"] and r["codespace"] == "crev" and r["info"] == "tx.nonce"
        assert r["result"][2] is False and r["result"][3][:2] == ["bad_nonce", "tx.nonce"]
        ok = committed(rpc, s.tx(k.OWNER, Transfer(k.BUYER, ((lot, 100),), "sale")))
        assert ok["code"] == 0 and ok["result"][5] == [100]
        # CheckTx refuses garbage, another chain's transaction, a used nonce and a repeated batch
        for bad, code in ((b"garbage", "malformed"),
                          (build_tx("other", Transfer(k.BUYER, ((lot, 1),), "x"), k.OWNER, 1, k.key(k.OWNER)),
                           "malformed"),
                          (k.Signers({k.OWNER: 0}).tx(k.OWNER, Transfer(k.BUYER, ((lot, 1),), "x")), "bad_nonce"),
                          (k.readings_tx([k.reading(0, 0)]), "conflict")):
            chk = rpc.broadcast_sync(bad)
            assert chk["code"] == CODES[code], (bad[:20], chk)
        # the buyer's account with its state proof, linked to the app hash the validators signed
        q = rpc.call("abci_query", path=f"/state/l/{lot}", data="", height="0", prove=True)["response"]
        assert q["code"] == 0
        value = base64.b64decode(q["value"])
        ops = {op["type"]: base64.b64decode(op["data"]) for op in q["proofOps"]["ops"]}
        header = Header.decode(ops["crev/header"])
        v = decode(ops["crev/state"])
        proof = StateProof(v[0], v[2], v[3], v[4], tuple((a, b) for a, b in v[5]), tuple(v[6]))
        assert proof.value == value and proof.verify(header.state_root)
        h = int(q["height"])
        rpc.wait_height(h + 1)
        assert rpc.app_hash_at(h) == sha256(ops["crev/header"]) == header.hash
        holder = decode(value)
        assert lot in repr(holder)
        height_before = rpc.height()
        root_before, crev_before = replayed_root(m.data)

        # kill -9 the app: CometBFT loses its app and stops; both restart and the handshake
        # replays what the app lacks; nothing acknowledged is lost, nothing applied twice
        net.apps[m.name].send_signal(signal.SIGKILL)
        net.apps.pop(m.name).wait(10)
        node = net.nodes.pop(m.name)
        node.wait(30)
        net.start_app(m)
        net.start_node(m)
        rpc.wait_height(height_before + 2, 60)
        root_after, crev_after = replayed_root(m.data)
        assert crev_after == crev_before and root_after == root_before
        r = committed(rpc, s.tx(k.OWNER, Transfer(k.BUYER, ((lot, 50),), "after restart")))
        assert r["code"] == 0 and r["result"][5] == [50]
        info = rpc.call("abci_info")["response"]
        assert int(info["last_block_height"]) >= r["height"]
        store = Store(m.data / "ledger.sqlite", readonly=True)
        try:
            kinds = [row[0] for row in store.db.execute("SELECT kind FROM txs ORDER BY height, idx")]
            hashes = [bytes(row[0]) for row in store.db.execute("SELECT hash FROM txs")]
        finally:
            store.close()
        assert kinds.count("transfer") == 3 and len(hashes) == len(set(hashes))
        # every block's app hash: the crev header hash of the last crev block at or before it
        for height in range(1, r["height"]):
            assert len(rpc.app_hash_at(height)) == 32
    finally:
        net.stop()
    t0 = time.monotonic()
    assert all(p.poll() is not None for p in (*net.apps.values(), *net.nodes.values()))
    assert time.monotonic() - t0 < 1


def test_a_full_node_started_later_replays_from_genesis_to_the_same_app_hashes(tmp_path: Path) -> None:
    """An auditor's replica (a full node, not a validator, with its own crev app) that joins after
    blocks were committed syncs them from genesis through its app and reaches the validators' app
    hash at every height, and the same crev blocks and state root."""
    from crev.consortium import localnet
    from crev.consortium.cometbft import Rpc
    from tests.consortium.abcikit import cometbft_binary, pb
    from tests.consortium.netkit import free_base

    binary = cometbft_binary()
    pb()
    localnet.init(tmp_path, 1, observers=1, base_port=free_base(2), timeout_commit="200ms", genesis=k.genesis(),
                  binary=binary)
    net = localnet.Localnet(tmp_path, binary)
    validator, replica = net.members
    assert validator.validator and not replica.validator
    try:
        net.start_app(validator)
        net.start_node(validator)
        rpc = Rpc(validator.rpc_url)
        rpc.wait_height(1, 60)
        s = register(rpc, 2)
        r = committed(rpc, k.readings_tx([k.reading(d, j) for d in range(2) for j in range(3)]))
        assert r["code"] == 0
        committed(rpc, s.tx(k.OWNER, Transfer(k.BUYER, ((r["result"][5][0][1], 7),), "to the buyer")))
        top = rpc.height()
        net.start_app(replica)
        net.start_node(replica)
        follower = Rpc(replica.rpc_url)
        follower.wait_height(top + 2, 60)
        rpc.wait_height(top + 2, 60)
        for h in range(1, top + 2):
            assert follower.app_hash_at(h) == rpc.app_hash_at(h), h
        validators = rpc.call("validators")["validators"]
        assert len(validators) == 1  # the replica follows, it does not vote
    finally:
        net.stop()
    assert replayed_root(replica.data) == replayed_root(validator.data)
    assert replayed_root(replica.data)[1] >= 4


def test_the_proposer_adds_the_market_clock_when_an_order_expires(tmp_path: Path) -> None:
    """A good-till-time bid placed through CometBFT expires on time: nobody submits a market_tick,
    the proposer's PrepareProposal adds it at the first block at or after the expiry, and the
    validators' ProcessProposal accepts it."""
    from crev.ledger.messages.deposit_jpy import DepositJpy
    from tests.ledger.market_kit import order, spot

    net = make_net(tmp_path, 1)
    m = net.members[0]
    try:
        net.start()
        rpc = net.rpc()
        rpc.wait_height(1, 60)
        s = register(rpc, 1)
        assert committed(rpc, s.tx(k.OPERATOR, spot()))["code"] == 0
        assert committed(rpc, s.tx(k.OPERATOR, DepositJpy(k.BUYER, 10_000, "BANK-1")))["code"] == 0
        until = int(time.time()) + 3
        placed = committed(rpc, s.tx(k.BUYER, order("bid", 50_000, 2_000, tif="gtt", expires_at=until)))
        assert placed["code"] == 0 and placed["result"][5][:2] == ["o-00000001", "open"]
        deadline = time.monotonic() + 30
        ticks: list[tuple[int, bytes]] = []
        while time.monotonic() < deadline and not ticks:
            time.sleep(0.5)
            store = Store(m.data / "ledger.sqlite", readonly=True)
            try:
                ticks = [(int(h), bytes(r)) for h, r in store.db.execute(
                    "SELECT height, result FROM txs WHERE kind = 'market_tick' AND ok")]
            finally:
                store.close()
        assert len(ticks) == 1, "no market_tick was committed"
        result = decode(ticks[0][1])
        assert result[5] == [1, 0, []]  # one order expired
        assert [e[0] for e in result[4]] == ["order_closed"] and result[4][0][3] == "expired"
    finally:
        net.stop()
