"""Four validators on loopback, brought up by `crev consortium up` (a real process tree: four
cometbft nodes and four crev apps): transactions submitted to one member are committed, every
member's app reaches the same app hash at every height and stores the same crev blocks, and
SIGTERM stops everything cleanly."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crev.consortium.cometbft import Rpc
from crev.node.store import Store
from tests.consortium.netkit import committed, make_net, register
from tests.consortium.test_cometbft import replayed_root
from tests.node import nodekit as k

pytestmark = pytest.mark.slow


def crev_headers(data: Path) -> list[tuple[bytes, int]]:
    store = Store(data / "ledger.sqlite", readonly=True)
    try:
        return [(b.header.hash, b.header.tx_count) for b in store.blocks()]
    finally:
        store.close()


def test_four_validators_agree_at_every_height(tmp_path: Path) -> None:
    net = make_net(tmp_path, 4)
    up = subprocess.Popen([sys.executable, "-m", "crev.consortium.cli", "consortium", "up", str(tmp_path),
                           "--no-api"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert up.stdout is not None
        lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            assert line, f"consortium up ended: {''.join(lines)}"
            lines.append(line)
            if line.startswith("consortium up:"):
                break
        assert "4 validators committing blocks" in lines[-1], lines
        registry, utility = Rpc(net.member("registry").rpc_url), Rpc(net.member("utility").rpc_url)
        register(utility, 4)
        batches = [k.readings_tx([k.reading(d, j) for d in range(4)]) for j in range(5)]
        for tx in batches[:-1]:
            assert utility.broadcast_sync(tx)["code"] == 0
        last = committed(utility, batches[-1])
        assert last["code"] == 0 and [d[0] for d in last["result"][5]] == ["accepted"] * 4
        top = last["height"] + 2
        rpcs = [Rpc(m.rpc_url) for m in net.members]
        for r in rpcs:
            r.wait_height(top + 1, 60)
        for h in range(1, top + 1):
            hashes = {r.app_hash_at(h) for r in rpcs}
            assert len(hashes) == 1, (h, hashes)
        # the registry's app answers what the utility's RPC committed
        q = registry.call("abci_query", path=f"/state/a/{k.OWNER}", data="", height="0", prove=False)["response"]
        assert q["code"] == 0
    finally:
        up.send_signal(signal.SIGTERM)
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0, out
    assert "consortium stopped" in out
    chains = [crev_headers(m.data) for m in net.members]
    # 2 participants, 4 devices and 5 reading batches, however CometBFT grouped them into blocks
    assert sum(n for _, n in chains[0]) == 11 and all(c == chains[0] for c in chains)
    roots = {replayed_root(m.data) for m in net.members}
    assert len(roots) == 1
    for m in net.members:  # every port is closed again
        for port in (m.rpc, m.p2p, m.abci):
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
