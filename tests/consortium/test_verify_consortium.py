"""`crev verify` and `crev trace` on consortium members' ledgers, with real processes: four
validators and an auditor's full node (not a validator; it syncs from genesis through its own crev
app). Every crev block of both members is proven by a CometBFT commit of more than 2/3 of the
genesis validators' power carrying its app hash; both replay to the same state root and the full
node reaches the validators' app hash at every height; a commit with one forged signature is
refused naming the height and the validator."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from crev.audit.consortium import Consortium, RpcSource, home_settings
from crev.audit.replay import verify_chain
from crev.audit.trace import consortium_proofs, trace
from crev.cli.commands import main
from crev.consortium import localnet
from crev.consortium.app import CrevApp
from crev.consortium.cometbft import Rpc
from crev.core.units import fiscal_year_bounds
from crev.ledger.genesis import Genesis
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.retire import Retire
from crev.ledger.messages.transfer import Transfer
from crev.node.node import LedgerView
from crev.node.store import Store
from crev.service.queries import browser_trace
from tests.audit.test_verify_js_consortium import run as run_js
from tests.consortium.abcikit import cometbft_binary, pb
from tests.consortium.netkit import committed, free_base, register
from tests.node import nodekit as k

pytestmark = pytest.mark.slow


def consortium(m: localnet.MemberSpec, source: Any = None) -> Consortium:
    doc, rpc = home_settings(m.home)
    assert rpc == m.rpc_url
    return Consortium(doc, source or RpcSource(rpc), Genesis.from_json((m.data / "genesis.json").read_text()))


class Forged:
    """An RPC source whose commit at one height has one validator's signature altered."""

    def __init__(self, inner: RpcSource, height: int, slot: int) -> None:
        self.inner, self.height, self.slot = inner, height, slot

    def signed_header(self, height: int) -> Mapping[str, Any]:
        sh = json.loads(json.dumps(self.inner.signed_header(height)))
        if height == self.height:
            import base64
            s = sh["commit"]["signatures"][self.slot]
            sig = bytearray(base64.b64decode(s["signature"]))
            sig[0] ^= 0x80
            s["signature"] = base64.b64encode(bytes(sig)).decode()
        return dict(sh)

    def header(self, height: int) -> Mapping[str, Any]:
        return self.inner.header(height)


def checkpointed(data: Path, timeout: float = 30.0) -> int:
    """Wait until the app's checkpoint covers every stored crev block; the crev height."""
    end = time.monotonic() + timeout
    while True:
        store = Store(data / "ledger.sqlite", readonly=True)
        try:
            h, cp = store.height(), store.checkpoint_height()
        finally:
            store.close()
        if h == cp or time.monotonic() > end:
            assert h == cp, (h, cp)
            return h
        time.sleep(0.2)


def test_a_members_first_checkpoint_holds_the_genesis_entries(tmp_path: Path) -> None:
    """A member's stored snapshot must be the whole state (``crev verify`` recomputes its root, a
    read-only view reads its buckets), genesis entries included."""
    app = CrevApp(tmp_path, checkpoint_s=0)
    app.init_chain(k.CHAIN, k.T0, k.genesis().to_json().encode(), [])
    for h, tx in enumerate([k.Signers().tx(k.OPERATOR, RegisterParticipant(k.OWNER, "Sun Co", "prosumer",
                                                                          k.key(k.OWNER).public_key))], 1):
        app.finalize_block([tx], h, k.T0 + h)
        app.commit()
    app.close()
    rep = verify_chain(tmp_path, threads=1)
    assert rep.ok, rep.error
    assert rep.engine == "cometbft-v0.38" and rep.blocks == 1


def test_verify_and_trace_against_the_consortium(tmp_path: Path) -> None:
    binary = cometbft_binary()
    pb()
    localnet.init(tmp_path, 4, observers=1, base_port=free_base(5), timeout_commit="200ms", genesis=k.genesis(),
                  binary=binary)
    net = localnet.Localnet(tmp_path, binary)
    *validators, auditor = net.members
    assert not auditor.validator and all(v.validator for v in validators)
    try:
        net.start()
        rpc = Rpc(validators[1].rpc_url)
        rpc.wait_height(1, 60)
        s = register(rpc, 2)
        r = committed(rpc, k.readings_tx([k.reading(d, j) for d in range(2) for j in range(2)]))
        assert r["code"] == 0
        lot = r["result"][5][0][1]
        assert committed(rpc, s.tx(k.OWNER, Transfer(k.BUYER, ((lot, 100),), "sale")))["code"] == 0
        ret = committed(rpc, s.tx(k.BUYER, Retire(((lot, 40),), "Buyer Co", "re100", *fiscal_year_bounds(2026),
                                                   "JP", "FY2026")))
        assert ret["code"] == 0, ret
        retirement = ret["result"][5][0]
        top = rpc.height()
        follower = Rpc(auditor.rpc_url)
        follower.wait_height(top + 2, 90)
        rpc.wait_height(top + 2, 90)  # both sides need header h + 1 for the app hash of h (a node may lag one)
        # the auditor's full node reaches the validators' app hash at every height
        for h in range(1, top + 2):
            assert follower.app_hash_at(h) == rpc.app_hash_at(h), h
        crev_height = checkpointed(validators[0].data)
        assert checkpointed(auditor.data) == crev_height >= 4

        # every crev block of a validator and of the full node, proven by the consortium
        reports = [verify_chain(m.data, threads=1, consortium=consortium(m)) for m in (validators[0], auditor)]
        for rep in reports:
            assert rep.ok, rep.error
            assert rep.engine == "cometbft-v0.38" and rep.blocks == rep.commits_checked == crev_height
            assert rep.validators == 4 and rep.total_power == 40 and rep.signed_power_min >= 30
        assert reports[0].state_root == reports[1].state_root

        # one forged signature in the commit carrying crev block 3's app hash: refused, named
        store = Store(auditor.data / "ledger.sqlite", readonly=True)
        try:
            c3 = int(store.get_meta("cmt/3") or b"0")
        finally:
            store.close()
        # a validator whose vote missed that commit has no signature in it (a loaded machine): forge
        # the first one present
        sigs = RpcSource(auditor.rpc_url).signed_header(c3 + 1)["commit"]["signatures"]
        slot = next(i for i, sig in enumerate(sigs) if sig.get("signature"))
        forged = Forged(RpcSource(auditor.rpc_url), c3 + 1, slot)
        bad = verify_chain(auditor.data, threads=1, consortium=consortium(auditor, forged))
        addr = sigs[slot]["validator_address"]
        assert not bad.ok and bad.first_bad_height == 3 and bad.commits_checked == 2
        assert f"height {c3 + 1}" in bad.error and addr.lower() in bad.error and "bad Ed25519" in bad.error

        # the command line finds the CometBFT home beside the member's data directory
        out = CliRunner().invoke(main, ["verify", str(auditor.data), "--threads", "1"])
        assert out.exit_code == 0, out.output
        text = " ".join(out.output.split())  # rich folds long lines
        assert f"all {crev_height} blocks proven by CometBFT commits of the 4 genesis validators" in text
        assert f"validator set hash {reports[1].validators and consortium(auditor).vals.hash.hex()}" in text
        out = CliRunner().invoke(main, ["verify", str(auditor.data), "--threads", "1", "--replay-only"])
        assert out.exit_code == 0 and "NOT checked" in " ".join(out.output.split())

        # a trace: every block it names carries its CometBFT header, commit and the validator set
        view = LedgerView(auditor.data)
        try:
            t = trace(view.store, view.state, retirement, consortium(auditor))
            # the dashboard's answer (/v1/trace) with the consortium's proofs of every block it
            # carries, verified by verify.js in WebCrypto: tx paths, state proofs, device signatures
            # and each block through its CometBFT commit
            page = browser_trace(view.state, view.store, retirement)
            page["consortium"] = consortium_proofs(view.store, consortium(auditor),
                                                   sorted(int(h) for h in page["blocks"]))
            info = {"chain_id": k.CHAIN, "state_tree_depth": view.state.params.state_tree_depth}
        finally:
            view.close()
        res = run_js(tmp_path, page, info)
        assert res["ok"], [c for c in res["checks"] if not c["ok"]]
        passed = [c["label"][0] for c in res["checks"]]
        assert passed.count("chk.cmt_power") == len(page["blocks"]) >= 3
        for key in ("chk.tx_inclusion", "chk.state_proof", "chk.device_sig", "chk.cmt_app_hash", "chk.cmt_sig"):
            assert key in passed, key
        c = t["consortium"]
        assert c["validator_set"]["total_power"] == 40 and len(c["validator_set"]["validators"]) == 4
        named = {str(st["height"]) for lot_ in t["lots"] for st in lot_["steps"] if "height" in st}
        assert named <= set(c["blocks"]) and str(crev_height) in c["blocks"]
        for h, p in c["blocks"].items():
            assert p["header"]["app_hash"] == p["crev_header_hash"] and p["verified"]
            assert p["header"]["hash"] == p["commit"]["block_id"]["hash"] and p["signed_power"] > 26
            assert p["crev_height"] == int(h)
        out = CliRunner().invoke(main, ["trace", str(auditor.data), retirement, "--json"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.output)["consortium"]["blocks"].keys() == c["blocks"].keys()
        out = CliRunner().invoke(main, ["trace", str(auditor.data), retirement])
        text = " ".join(out.output.split())
        assert out.exit_code == 0, out.output
        for h, p in c["blocks"].items():
            assert (f"block {h}: app hash {p['crev_header_hash'][:16]}… in CometBFT header {p['header']['height']}, "
                    f"signed by {p['signed_power']} of 40 voting power (> 26 needed)") in text
    finally:
        net.stop()
