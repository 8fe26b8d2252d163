"""Faults with real processes on a four-validator localnet, under a stream of reading batches:
kill -9 of one validator's CometBFT (the others keep committing, it catches up), kill -9 of a crev
app while its CometBFT runs (restart recovers through the handshake), two of four down (the chain
halts, and resumes when one returns). Afterwards every member has the same app hash at every
height and the same crev blocks, and every acknowledged batch is committed exactly once."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from crev.consortium.cometbft import Rpc
from crev.node.store import Store
from tests.consortium.netkit import make_net, register
from tests.consortium.test_cometbft import replayed_root
from tests.consortium.test_localnet import crev_headers
from tests.node import nodekit as k

pytestmark = pytest.mark.slow
BATCHES = 40


def readings_batches(data: Path) -> int:
    store = Store(data / "ledger.sqlite", readonly=True)
    try:
        return int(store.db.execute("SELECT count(*) FROM txs WHERE kind = 'submit_readings' AND ok").fetchone()[0])
    finally:
        store.close()


def test_validators_killed_and_restarted_under_load_agree(tmp_path: Path) -> None:
    net = make_net(tmp_path, 4)
    try:
        net.start()
        net.wait_blocks(2)
        registry = net.rpc("registry")
        register(registry, 4)
        acked: list[int] = []
        errors: list[str] = []

        def load() -> None:
            for j in range(BATCHES):
                try:
                    r = registry.broadcast_sync(k.readings_tx([k.reading(d, j) for d in range(4)]))
                    (acked if r["code"] == 0 else errors).append(j)
                except Exception as exc:  # the member we submit to never goes down here
                    errors.append(f"{j}: {exc}")
                time.sleep(0.15)

        loader = threading.Thread(target=load)
        loader.start()
        # 1. kill -9 the auditor's CometBFT: the other three keep committing
        net.nodes["auditor"].send_signal(signal.SIGKILL)
        net.nodes.pop("auditor").wait(10)
        h = registry.height()
        registry.wait_height(h + 3, 30)
        net.start_node(net.member("auditor"))  # its app kept running: the handshake replays what it lacks
        # 2. kill -9 the utility's app while its CometBFT runs: CometBFT stops; both restart
        time.sleep(1)
        net.apps["utility"].send_signal(signal.SIGKILL)
        net.apps.pop("utility").wait(10)
        # CometBFT stops once it sees its app gone; on a loaded 2-core machine that took over 30 s once
        net.nodes.pop("utility").wait(90)
        net.start_app(net.member("utility"))
        net.start_node(net.member("utility"))
        loader.join(60)
        assert not errors and len(acked) == BATCHES, errors
        # 3. two of four down: nothing is committed; one returns: the chain resumes
        top = max(Rpc(m.rpc_url).height() for m in net.members)
        for m in net.members:
            Rpc(m.rpc_url).wait_height(top, 60)
        for name in ("retailer", "auditor"):
            net.nodes[name].send_signal(signal.SIGKILL)
            net.nodes.pop(name).wait(10)
        time.sleep(1)
        halted = registry.height()
        time.sleep(3)
        assert registry.height() <= halted + 1  # at most the block already being committed
        net.start_node(net.member("retailer"))
        registry.wait_height(halted + 3, 60)
        net.start_node(net.member("auditor"))
        final = registry.height() + 2
        rpcs = [Rpc(m.rpc_url) for m in net.members]
        for r in rpcs:
            r.wait_height(final + 1, 90)
        for height in range(1, final + 1):
            assert len({r.app_hash_at(height) for r in rpcs}) == 1, height
    finally:
        net.stop()
    chains = [crev_headers(m.data) for m in net.members]
    assert all(c[:len(chains[0])] == chains[0][:len(c)] for c in chains)
    assert all(readings_batches(m.data) == BATCHES for m in net.members)
    assert len({replayed_root(m.data) for m in net.members}) == 1
