"""A validator whose app computes a different state is detected and not followed: one member of
four runs an app that stamps each block one second late (so its crev headers, and app hashes,
differ). The other three keep committing and agree; the wrong one stops at the first block whose
app hash disagrees, and its CometBFT says so."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from crev.consortium.cometbft import Rpc
from crev.consortium.localnet import wait_port
from tests.consortium.abcikit import ROOT
from tests.consortium.netkit import committed, make_net, register
from tests.node import nodekit as k

pytestmark = pytest.mark.slow

WRONG_APP = """
import sys
from crev.consortium.app import CrevApp
from crev.consortium.server import AbciServer

class Late(CrevApp):
    def finalize_block(self, txs, height, time_s):
        return super().finalize_block(txs, height, time_s + 1)

AbciServer(Late(sys.argv[1]), sys.argv[2]).serve_forever()
"""


def test_a_validator_with_a_wrong_app_is_detected_and_not_followed(tmp_path: Path) -> None:
    net = make_net(tmp_path, 4)
    wrong = net.member("auditor")
    try:
        for m in net.members:
            if m is not wrong:
                net.start_app(m)
        log = open(wrong.dir / "abci.log", "ab")  # noqa: SIM115 - closed below
        net.apps[wrong.name] = subprocess.Popen(
            [sys.executable, "-c", WRONG_APP, str(wrong.data), f"tcp://127.0.0.1:{wrong.abci}"], stdout=log,
            stderr=subprocess.STDOUT, cwd=ROOT)
        wait_port(wrong.abci, net.apps[wrong.name], "the wrong app")
        for m in net.members:
            net.start_node(m)
        registry = net.rpc("registry")
        registry.wait_height(2, 60)
        register(registry, 2)  # the first non-empty block: the wrong app's hash departs here
        r = committed(registry, k.readings_tx([k.reading(d, 0) for d in range(2)]))
        assert r["code"] == 0
        top = registry.height() + 3
        honest = [Rpc(m.rpc_url) for m in net.members if m is not wrong]
        for rpc in honest:
            rpc.wait_height(top + 1, 60)
        for h in range(1, top + 1):
            assert len({rpc.app_hash_at(h) for rpc in honest}) == 1, h
        # the wrong member never got past the first block its app hash disagreed with
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline:
            text = (wrong.dir / "cometbft.log").read_text(errors="replace")
            if "wrong Block.Header.AppHash" in text:
                break
            time.sleep(0.2)
        assert "wrong Block.Header.AppHash" in text
        try:
            stuck = Rpc(wrong.rpc_url, timeout=2).height()
        except Exception:  # its node may have stopped altogether
            stuck = -1
        assert stuck < top
        log.close()
    finally:
        net.stop()
