"""The dashboard's Verify (src/crev/web/static/js/verify.js) in consortium mode, run in Node's
WebCrypto (the same SHA-256 and Ed25519 API as the browser's) on a trace built from the consortium
golden vector (a real 4-validator CometBFT block): it recomputes the CometBFT header hash from the
fields, the vote sign bytes of every signature, verifies them with Ed25519 and the > 2/3 power
rule, and the app hash link to the crev header; a forged signature or missing power fails."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from crev.audit.cometbft import ValidatorSet
from crev.audit.consortium import Consortium
from crev.ledger.genesis import Genesis
from tests.audit.test_cometbft_vector import VECTOR, Recorded

JS = Path(__file__).resolve().parents[2] / "src" / "crev" / "web" / "static" / "js"

RUNNER = """
import { verifyTrace } from './verify.js';
import { readFileSync } from 'node:fs';
const [trace, info] = JSON.parse(readFileSync(0, 'utf8'));
const out = await verifyTrace(trace, info);
process.stdout.write(JSON.stringify(out));
"""


def node() -> str:
    exe = shutil.which("node")
    if exe is None:
        pytest.skip("Node.js is not installed")
    return exe


def consortium_trace() -> tuple[dict[str, Any], dict[str, Any]]:
    """A trace as /v1/trace answers it for a consortium member, holding just block n (no steps)."""
    crev = VECTOR["crev"]
    gen = Genesis.from_json(json.dumps(VECTOR["cometbft_genesis"]["app_state"]))
    c = Consortium(VECTOR["cometbft_genesis"], Recorded(VECTOR), gen)
    proof = c.proof(crev["height"], bytes.fromhex(crev["header"]), crev["cometbft_height"])
    trace = {"query": "x", "kind": "lot", "lots": [],
             "blocks": {str(crev["height"]): {"header": crev["header"], "hash": crev["header_hash"], "signature": ""}},
             "consortium": {**c.to_json(), "blocks": {str(crev["height"]): proof}}}
    info = {"chain_id": gen.chain_id, "state_tree_depth": gen.params.state_tree_depth}
    return trace, info


def run(tmp_path: Path, trace: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    work = tmp_path / "js"
    if not work.exists():
        shutil.copytree(JS, work)
        (work / "package.json").write_text('{"type": "module"}')
        (work / "run.js").write_text(RUNNER)
    out = subprocess.run([node(), "run.js"], cwd=work, input=json.dumps([trace, info]), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def labels(res: dict[str, Any], ok: bool) -> list[str]:
    return [c["label"][0] for c in res["checks"] if c["ok"] is ok]


def test_a_real_commit_verifies_in_webcrypto(tmp_path: Path) -> None:
    trace, info = consortium_trace()
    res = run(tmp_path, trace, info)
    assert res["ok"], [c for c in res["checks"] if not c["ok"]]
    passed = labels(res, True)
    n = sum(1 for s in trace["consortium"]["blocks"][str(VECTOR["crev"]["height"])]["commit"]["signatures"]
            if s["flag"] == 2)
    assert passed.count("chk.cmt_sig") == n >= 3
    for key in ("chk.cmt_valset", "chk.cmt_app_hash", "chk.cmt_fields", "chk.cmt_header_hash", "chk.cmt_power",
                "chk.block_hash"):
        assert key in passed, key
    assert "chk.block_sig" not in passed + labels(res, False)  # no sequencer in consortium mode
    power = next(c for c in res["checks"] if c["label"][0] == "chk.cmt_power")["label"][1]
    assert power == {"ch": VECTOR["crev"]["cometbft_height"] + 1, "signed": 10 * n, "total": 40, "needed": 26}
    # the set's hash is the one the header carries
    vs = ValidatorSet.from_genesis(VECTOR["cometbft_genesis"])
    valset = next(c for c in res["checks"] if c["label"][0] == "chk.cmt_valset")["label"][1]
    assert valset["hash"] == vs.hash.hex()[:12] + "…" and valset["total"] == 40


def edited(edit: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    trace, info = consortium_trace()
    t = copy.deepcopy(trace)
    edit(t["consortium"]["blocks"][str(VECTOR["crev"]["height"])], t)
    return t, info


def flip(hex_: str) -> str:
    b = bytearray(bytes.fromhex(hex_))
    b[3] ^= 1
    return b.hex()


def test_forged_signatures_and_too_little_power_fail(tmp_path: Path) -> None:
    def one(p: dict[str, Any], t: dict[str, Any]) -> None:
        p["commit"]["signatures"][0]["signature"] = flip(p["commit"]["signatures"][0]["signature"])
    res = run(tmp_path, *edited(one))
    assert not res["ok"] and labels(res, False) == ["chk.cmt_sig"]  # 30 of 40 still signed: the power holds

    def two(p: dict[str, Any], t: dict[str, Any]) -> None:
        for s in p["commit"]["signatures"][:2]:
            s["signature"] = flip(s["signature"])
    res = run(tmp_path, *edited(two))
    assert sorted(labels(res, False)) == ["chk.cmt_power", "chk.cmt_sig", "chk.cmt_sig"]
    power = next(c for c in res["checks"] if c["label"][0] == "chk.cmt_power")
    assert power["reason"] == ["r.power", {"signed": 20, "total": 40, "needed": 26}]


@pytest.mark.parametrize("what, edit, failed", [
    ("app hash", lambda p, t: p["header"].update(app_hash="00" * 32), ["chk.cmt_app_hash", "chk.cmt_header_hash"]),
    ("a header field", lambda p, t: p["header"].update(time_nanos=p["header"]["time_nanos"] + 1),
     ["chk.cmt_header_hash"]),
    ("the validator set", lambda p, t: t["consortium"]["validator_set"]["validators"].pop(), ["chk.cmt_fields",
                                                                                             "chk.cmt_power"]),
    ("the crev header", lambda p, t: t["blocks"][str(VECTOR["crev"]["height"])].update(
        header=VECTOR["crev"]["header"][:-2] + "07"), ["chk.block_hash", "chk.cmt_app_hash"]),
    ("the commit's block id", lambda p, t: p["commit"]["block_id"].update(hash="ab" * 32),
     ["chk.cmt_header_hash", *["chk.cmt_sig"] * 4, "chk.cmt_power"]),
])
def test_any_change_fails(tmp_path: Path, what: str, edit: Any, failed: list[str]) -> None:
    res = run(tmp_path, *edited(edit))
    assert not res["ok"]
    got = labels(res, False)
    n_sigs = sum(1 for s in VECTOR["rpc"]["commit"]["commit"]["signatures"] if s["block_id_flag"] == 2)
    want = [f for f in failed if f != "chk.cmt_sig"] + ["chk.cmt_sig"] * min(failed.count("chk.cmt_sig"), n_sigs)
    assert sorted(got) == sorted(want), (what, got)
