"""`crev demo --consortium 4`: the demo's fleet and market agents on a localnet of four CometBFT
validators written into the demo's data directory, then the dashboard and API over the first
member's node: the validators with their heights, who signed each block, a retirement traced with
the CometBFT commits that prove its blocks; SIGTERM stops the API, the nodes and the apps, and the
member's ledger replays."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path
from typing import Any

from tests.cli.test_cli import crev
from tests.consortium.abcikit import cometbft_binary
from tests.consortium.netkit import free_base
from tests.service.test_demo_serves import free_port, start_demo
from tests.service.test_demo_serves import get as get_json


def get(url: str) -> Any:
    return get_json(url, timeout=20)  # a trace over a busy localnet takes longer than the embedded demo's


def test_demo_on_four_validators_serves_the_consortium(tmp_path: Path) -> None:
    cometbft_binary()  # skips, saying why, where Go (and so the binary) is missing
    d = tmp_path / "demo"
    port = free_port()
    proc, base, info = start_demo(d, port, "--consortium", "4", "--base-port", str(free_base(4)))
    try:
        assert info["consortium"]["api_member"] == "registry" and info["height"] >= 2
        assert len(info["consortium"]["validators_hash"]) == 64  # the genesis set's, which Verify pins
        assert get(f"{base}/v1/devices")["total"] == 3

        c = get(f"{base}/v1/consortium")
        assert sorted(v["name"] for v in c["validators"]) == ["auditor", "registry", "retailer", "utility"]
        assert all(m["up"] and m["height"] >= 1 for m in c["members"]) and len(c["members"]) == 4
        b = get(f"{base}/v1/blocks/{info['height']}")
        assert b["total_power"] == 40 and 3 * b["signed_power"] > 2 * b["total_power"]

        # the market ran: a retirement, traced with the CometBFT commit of every block it names
        rets = get(f"{base}/v1/retirements")["items"]
        assert rets, "the demo's buyers retire C-REV at the end of each day"
        t = get(f"{base}/v1/trace/{rets[0]['retirement_id']}")
        assert t["consortium"]["engine"] == "cometbft-v0.38" and set(t["consortium"]["blocks"]) == set(t["blocks"])
        with urllib.request.urlopen(f"{base}/", timeout=10) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert base in out and "Traceback" not in out
    member = d / "0-registry" / "crev"
    v = crev("verify", str(member), "--replay-only")
    assert v.returncode == 0, v.stdout + v.stderr
    for p in ("cometbft.log", "abci.log"):  # every member's processes were stopped, logs kept
        assert (d / "3-auditor" / p).exists()
