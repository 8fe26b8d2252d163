"""The consortium's commands: `consortium init` writes a localnet (homes, one genesis, peers),
refuses to overwrite one, `abci` refuses a data directory it cannot serve; loadgen measures a
small net end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from crev.consortium import loadgen
from crev.consortium.cli import main
from crev.ledger.genesis import Genesis
from tests.consortium.abcikit import cometbft_binary, pb
from tests.consortium.netkit import free_base


def test_consortium_init_writes_a_localnet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREV_COMETBFT", str(cometbft_binary()))
    root = tmp_path / "net"
    r = CliRunner().invoke(main, ["consortium", "init", str(root), "--validators", "3", "--base-port", "31000",
                                  "--chain-id", "jp-consortium"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((root / "consortium.json").read_text())
    assert [m["name"] for m in manifest["members"]] == ["registry", "utility", "retailer"]
    assert [m["rpc"] for m in manifest["members"]] == [31000, 31010, 31020]
    genesis = [json.loads((root / f"{i}-{n}" / "cometbft" / "config" / "genesis.json").read_text())
               for i, n in enumerate(("registry", "utility", "retailer"))]
    assert all(g == genesis[0] for g in genesis)
    assert genesis[0]["chain_id"] == "jp-consortium" and len(genesis[0]["validators"]) == 3
    crev = Genesis.from_json(json.dumps(genesis[0]["app_state"]))
    assert crev.chain_id == "jp-consortium" and crev.operator_id == "registry"
    assert len(bytes.fromhex((root / "operator.key").read_text().strip())) == 32
    assert (root / "operator.key").stat().st_mode & 0o077 == 0
    for i, n in enumerate(("registry", "utility", "retailer")):
        member = root / f"{i}-{n}"
        assert Genesis.from_json((member / "crev" / "genesis.json").read_text()).hash == crev.hash
        config = (member / "cometbft" / "config" / "config.toml").read_text()
        assert f'proxy_app = "tcp://127.0.0.1:{31002 + 10 * i}"' in config
        assert config.count("@127.0.0.1:") == 2  # the two other members as persistent peers
    again = CliRunner().invoke(main, ["consortium", "init", str(root)])
    assert again.exit_code != 0 and "already holds a consortium" in again.output


def test_abci_refuses_an_embedded_nodes_ledger(tmp_path: Path) -> None:
    from tests.node import nodekit as k

    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d)
    try:
        k.register_fleet(node, 1)
    finally:
        node.close()
    r = CliRunner().invoke(main, ["abci", str(d), "--addr", "tcp://127.0.0.1:0"])
    assert r.exit_code != 0 and "holds an embedded node's ledger" in r.output


def test_loadgen_measures_a_small_net(tmp_path: Path) -> None:
    cometbft_binary()
    pb()
    out = loadgen.run(1, 20, 3, "100ms", tmp_path / "net", free_base(1), "summary", 0)
    assert out["readings"] == 60 and out["readings_per_s"] > 0 and out["p99_s"] >= out["p50_s"] > 0
