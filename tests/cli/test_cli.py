"""The real ``crev`` command on a small demo ledger (4 sites, 1 day): demo, verify, trace, report
(recomputed here by hand from the export and the readings in the store), export, keys, init."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from crev.cli import main
from crev.core.signing import Signer
from tests.node import nodekit as k

ENV = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}


def crev(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crev.cli", *args], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=300)


def flat(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class Demo:
    d: Path
    lots: list[dict[str, Any]]
    retirements: list[dict[str, str]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    d = tmp_path_factory.mktemp("cli") / "demo"
    r = crev("demo", "--data-dir", str(d), "--sites", "4", "--days", "1", "--start", "2026-06-01", "--seed", "3",
             "--no-serve")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "done" in r.stdout
    lots = crev("export", str(d), "lots", "--format", "json")
    assert lots.returncode == 0, lots.stderr
    rets = crev("export", str(d), "retirements", "--format", "csv")
    assert rets.returncode == 0, rets.stderr
    return Demo(d, json.loads(lots.stdout), list(csv.DictReader(io.StringIO(rets.stdout))))


def test_verify_passes(demo: Demo) -> None:
    r = crev("verify", str(demo.d))
    assert r.returncode == 0, r.stdout + r.stderr
    out = flat(r.stdout)
    assert "OK" in out and "FAILED" not in out
    readings = len([1 for _, det, _ in k.accepted_readings(demo.d) if det[0] == "accepted"])
    assert readings == 4 * 48  # 4 sites, 48 half-hour intervals
    assert f"{readings:,} readings verified" in out


def test_verify_fails_on_a_tampered_copy(demo: Demo, tmp_path: Path) -> None:
    c = tmp_path / "tampered"
    shutil.copytree(demo.d, c)
    with closing(k.sql(c)) as db:
        db.execute("DELETE FROM blocks WHERE height = 3")
    r = crev("verify", str(c))
    assert r.returncode == 1
    assert "FAILED at block" in flat(r.stdout)


def test_trace_a_lot(demo: Demo) -> None:
    # a lot some of which was sold and retired: the full story
    lot = next(x for x in demo.lots if x["origin"] == "reading" and x["retired_g"] > 0)
    r = crev("trace", str(demo.d), lot["lot_id"])
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert lot["lot_id"] in out
    steps = re.findall(r"^\s+(signed_reading|issued|transferred|traded|retired|cancelled|current_state)\s", out,
                       re.M)
    assert steps[:2] == ["signed_reading", "issued"]
    assert ("transferred" in steps or "traded" in steps) and "retired" in steps and steps[-1] == "current_state"
    assert "✗" not in out
    j = crev("trace", str(demo.d), lot["lot_id"], "--json")
    assert j.returncode == 0
    t = json.loads(j.stdout)["lots"][0]
    assert t["lot_id"] == lot["lot_id"] and t["device_id"] == lot["device_id"]
    first = t["steps"][0]
    assert first["step"] == "signed_reading" and first["signature_verified"] is True
    assert first["reading_hash"] == lot["reading_hash"]
    assert all(s["proof"]["verified"] for s in t["steps"] if "proof" in s)
    sp = t["steps"][-1]["state_proof"]
    assert sp["verified"] is True and sp["state_root"] == sp["header_state_root"]
    assert len(sp["siblings"]) == sp["depth"] == 16 and sp["key"] == f"l/{lot['lot_id']}"
    issued = t["steps"][1]
    assert issued["step"] == "issued" and issued["quantity_g"] == lot["quantity_g"]


def test_trace_a_retirement(demo: Demo) -> None:
    ret = demo.retirements[0]
    r = crev("trace", str(demo.d), ret["retirement_id"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^\s+retired\s", r.stdout, re.M)
    assert ret["retirement_id"] in r.stdout
    j = json.loads(crev("trace", str(demo.d), ret["retirement_id"], "--json").stdout)
    # every lot the retirement drew on is traced, in the order of its ranges
    lots = list(dict.fromkeys(part.rsplit(":", 1)[0] for part in ret["unit_ranges"].split(";")))
    assert [t["lot_id"] for t in j["lots"]] == lots
    for t in j["lots"]:
        retired = [s for s in t["steps"] if s["step"] == "retired" and s["retirement_id"] == ret["retirement_id"]]
        assert retired and retired[0]["from"] == ret["account"]
        assert t["steps"][0]["step"] == "signed_reading" and t["steps"][0]["signature_verified"]
    r_ = j["retirement"]
    assert r_["quantity_g"] == int(ret["quantity_g"]) and r_["proof"]["verified"] and r_["state_proof"]["verified"]


def test_trace_unknown_id_fails_clearly(demo: Demo) -> None:
    r = crev("trace", str(demo.d), "no-such-thing")
    assert r.returncode != 0
    assert "'no-such-thing' is not a lot id" in flat(r.stdout)


def test_export_retirements_csv(demo: Demo) -> None:
    r = crev("export", str(demo.d), "retirements", "--format", "csv")
    assert r.returncode == 0
    header = r.stdout.splitlines()[0].split(",")
    assert header == ["retirement_id", "account", "beneficiary", "purpose", "period_start_jst", "period_last_day_jst",
                      "jurisdiction", "note", "quantity_g", "height", "retired_at_jst", "tx_hash", "unit_ranges",
                      "final_g_at_retirement", "provisional_g_at_retirement", "finality_at_retirement"]
    rows = demo.retirements
    assert len(rows) >= 1
    for row in rows:
        assert re.fullmatch(r"ret-\d{8}", row["retirement_id"])
        assert row["period_last_day_jst"].endswith("-03-31")  # fiscal years, end shown inclusive
        # the ranges add up to the retired quantity
        total = 0
        for part in row["unit_ranges"].split(";"):
            a, b = part.rsplit(":", 1)[1].split("-")
            total += int(b) - int(a) + 1
        assert total == int(row["quantity_g"]) > 0
        assert len(row["tx_hash"]) == 64
    assert sum(int(r["quantity_g"]) for r in rows) == sum(x["retired_g"] for x in demo.lots)


# --- report, recomputed by hand -----------------------------------------------------------------


def _ceil_g(wh: int, f: int) -> int:
    return -(-wh * f // 1000)


def _owner_claims(demo: Demo, owner: str, device: str) -> dict[int, tuple[int, int]]:
    """slot → (g, Wh) of C-REV from ``device``'s lots that ``owner`` still holds or retired, read from
    each lot's current segments (``crev trace --json``)."""
    runner = CliRunner()
    out: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for lot in (x for x in demo.lots if x["device_id"] == device):
        res = runner.invoke(main, ["trace", str(demo.d), lot["lot_id"], "--json"])
        assert res.exit_code == 0, res.output
        segments = json.loads(res.output)["lots"][0]["steps"][-1]["segments"]
        g = sum(s["units"][1] - s["units"][0] + 1 for s in segments
                if s["holder"] == owner and s["status"] != "cancelled")
        c = out[lot["slot_id"]]
        c[0] += g
        c[1] += lot["self_consumed_wh"] * g // lot["quantity_g"]
    return {s: (g, wh) for s, (g, wh) in out.items()}


def test_report_figures_recomputed_by_hand(demo: Demo) -> None:
    # a site whose C-REV was partly sold (and retired by the buyer) and partly kept
    lot = next(x for x in demo.lots if x["origin"] == "reading" and x["retired_g"] > 0)
    owner, device = lot["issued_to"], lot["device_id"]
    r = crev("report", str(demo.d), owner, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(r.stdout)
    assert rep["participant"] == owner and rep["role"] == "prosumer"
    owner_sites = sorted({x["device_id"] for x in demo.lots if x["issued_to"] == owner})
    assert sorted(rep["sites"]) == owner_sites

    # the readings as they are stored in the committed transactions
    per_slot: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    for reading, det, _ in k.accepted_readings(demo.d):
        if det[0] == "accepted":
            acc = per_slot[reading[2]][reading[4] // 1800]
            acc[0] += reading[6]
            acc[1] += reading[7]
            acc[2] += reading[8]

    # hand check: demand = G + I − E, summed over the site's readings, for each of the owner's sites
    for site in owner_sites:
        demand = sum(g + i - e for g, i, e in per_slot[site].values())
        assert sum(f["demand_wh"] for f in rep["sites"][site].values()) == demand
    assert rep["total"]["demand_wh"] == sum(g + i - e for s in owner_sites for g, i, e in per_slot[s].values())

    # every figure of every slot of one site, from the export and the readings
    factors = {x["factor_g_per_kwh"] for x in demo.lots if x["device_id"] == device}
    assert len(factors) == 1
    f = factors.pop()
    claims = _owner_claims(demo, owner, device)
    expect: dict[str, dict[str, int]] = {}
    for slot, (g, i, e) in per_slot[device].items():
        demand, self_wh = g + i - e, g - e
        cg, cw = claims.get(slot, (0, 0))
        gross = _ceil_g(demand, f)
        market = max(0, gross - cg)
        expect[str(slot)] = {
            "generation_wh": g, "import_wh": i, "export_wh": e, "demand_wh": demand, "self_consumed_wh": self_wh,
            "claimed_wh": cw, "claimed_g": cg, "location_based_g": _ceil_g(i, f), "market_based_g": market,
            "onsite_share_bp": self_wh * 10_000 // demand if demand else 0,
            "renewable_share_bp": min(10_000, cw * 10_000 // demand) if demand else 0,
            "average_factor_g_per_kwh": -(-market * 1000 // demand) if demand else 0,
        }
    extra = ("finality", "crev_g")  # the slot's finality and the C-REV it stands at (test_cli_finality.py)
    assert {s: {k_: v for k_, v in d.items() if k_ not in extra} for s, d in rep["sites"][device].items()} == expect
    assert {d["finality"] for d in rep["sites"][device].values()} <= {"provisional", "final", "corrected", "late"}
    assert any(v["claimed_g"] for v in expect.values())  # the owner kept some
    # the owner sold half of each lot: it may claim less than it generated
    sold = sum(x["quantity_g"] for x in demo.lots if x["device_id"] == device) - sum(c[0] for c in claims.values())
    assert sold > 0


def test_report_unknown_participant_fails_clearly(demo: Demo) -> None:
    r = crev("report", str(demo.d), "nobody-co")
    assert r.returncode != 0
    assert "no participant 'nobody-co'" in flat(r.stdout + r.stderr)


# --- keys and init --------------------------------------------------------------------------------


def test_keys_new_writes_a_private_key_and_refuses_to_overwrite(tmp_path: Path) -> None:
    p = tmp_path / "keys" / "op.key"
    r = crev("keys", "new", str(p))
    assert r.returncode == 0, r.stdout + r.stderr
    pub = r.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", pub)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    seed = p.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", seed)
    assert Signer(bytes.fromhex(seed)).public_key.hex() == pub
    again = crev("keys", "new", str(p))
    assert again.returncode != 0
    assert "refusing to overwrite" in flat(again.stdout + again.stderr)
    assert p.read_text().strip() == seed


def test_init_then_verify_an_empty_chain(tmp_path: Path) -> None:
    key = tmp_path / "op.key"
    assert crev("keys", "new", str(key)).returncode == 0
    d = tmp_path / "ledger"
    args = ["init", str(d), "--chain-id", "crev-test-1", "--operator-id", "registry", "--operator-name",
            "Test Registry", "--operator-key", str(key), "--genesis-time", "2026-06-01T00:00"]
    r = crev(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "initialised" in r.stdout
    assert stat.S_IMODE((d / "sequencer.key").stat().st_mode) == 0o600
    g = json.loads((d / "genesis.json").read_text())
    assert g["chain_id"] == "crev-test-1" and g["operator"]["account_id"] == "registry"
    v = crev("verify", str(d))
    assert v.returncode == 0, v.stdout + v.stderr
    assert "OK 0 blocks" in flat(v.stdout)
    again = crev(*args)
    assert again.returncode != 0
    assert "already holds a ledger" in flat(again.stdout + again.stderr)


def test_init_with_a_deeper_state_tree_for_a_large_fleet(tmp_path: Path) -> None:
    """The depth is a genesis parameter: written to genesis.json, it fixes how the chain's state
    root is computed (2^depth buckets), and a node started on the ledger uses it."""
    from crev.core.statetree import root_of
    from crev.ledger.genesis import Genesis
    from crev.node.node import Node

    key = tmp_path / "op.key"
    assert crev("keys", "new", str(key)).returncode == 0
    d = tmp_path / "ledger"
    r = crev("init", str(d), "--chain-id", "crev-big-1", "--operator-id", "registry", "--operator-name", "Big",
             "--operator-key", str(key), "--genesis-time", "2026-06-01T00:00", "--state-tree-depth", "20")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "state tree depth 20" in flat(r.stdout)
    g = Genesis.from_json((d / "genesis.json").read_text())
    assert g.params.state_tree_depth == 20
    assert json.loads((d / "genesis.json").read_text())["params"]["state_tree_depth"] == 20
    node = Node(d).start()
    try:
        st = node.state
        entries = [(k, v) for k in st.all_keys() if (v := st.value_of(k)) is not None]
        assert st.tree.depth == 20
        assert st.tree.root() == root_of(entries, 20) != root_of(entries, 16)
    finally:
        node.stop()


def test_a_command_loads_only_its_own_modules_and_help_lists_every_group() -> None:
    """The groups in their own modules (market, DGC agent, consortium, simulator …) are imported
    when one of them runs: ``crev report`` starts without them; ``crev --help`` lists them all and
    each one runs."""
    heavy = ("crev.device.agent", "crev.consortium.app", "crev.cli.sim", "crev.cli.market", "httpx")
    code = ("import sys; from click.testing import CliRunner; from crev.cli import main; "
            "r = CliRunner().invoke(main, ['report', '--help']); assert r.exit_code == 0, r.output; "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    r = CliRunner().invoke(main, ["--help"])
    listed = re.findall(r"^  (\S+)\s", r.output.split("Commands:")[1], re.M)
    assert {"report", "verify", "jpy", "market", "order", "delegate", "statement", "abci", "consortium", "dgc",
            "sim", "device"} <= set(listed)
    for name in ("market", "dgc", "consortium", "sim", "device"):
        r = CliRunner().invoke(main, [name, "--help"])
        assert r.exit_code == 0 and "Usage: main " + name in r.output, r.output
