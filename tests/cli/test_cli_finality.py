"""The CLI faces of provisional → final C-REV on tests/audit/meter_ledger.py: crev trace (timeline
and --json), crev export, crev verify, crev report, crev device slots / controls."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from crev.cli import main
from tests.audit import meter_ledger as m
from tests.node import nodekit as k


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return m.build_meter_ledger(tmp_path_factory.mktemp("cli") / "ledger")


def run(*args: str) -> str:
    res = CliRunner().invoke(main, list(args), terminal_width=300)
    assert res.exit_code == 0, res.output
    return res.output


def test_trace_shows_finality_and_the_reconciliation(ledger: Path) -> None:
    out = " ".join(run("trace", str(ledger), m.LOT_A).split())
    assert "finality corrected / 補正済" in out and "stood 3,600 g → target 3,150 g: cancelled 450 g" in out
    j = json.loads(run("trace", str(ledger), m.LOT_A, "--json"))
    [lot] = j["lots"]
    [rec] = [s for s in lot["steps"] if s["step"] == "reconciled"]
    assert lot["finality"] == "corrected" and rec["cancelled_g"] == 450 and rec["state_proof"]["verified"]


def test_export_lots_has_a_finality_column(ledger: Path) -> None:
    rows = {r["lot_id"]: r for r in csv.DictReader(io.StringIO(run("export", str(ledger), "lots")))}
    assert (rows[m.LOT_A]["finality"], rows[m.LOT_B]["finality"], rows[m.LOT_C]["finality"]) == (
        "corrected", "final", "provisional")
    rets = {r["retirement_id"]: r for r in csv.DictReader(io.StringIO(run("export", str(ledger), "retirements")))}
    assert rets["ret-00000001"]["finality_at_retirement"] == "provisional"
    assert rets["ret-00000002"]["finality_at_retirement"] == "final"


def test_verify_reports_the_smart_meter(ledger: Path) -> None:
    out = " ".join(run("verify", str(ledger), "--threads", "1").split())  # the console folds long lines
    assert "5 items, 5 slots reconciled (1 final, 4 corrected)" in out and "1 control record" in out


def test_report_json_splits_provisional_and_final(ledger: Path) -> None:
    j = json.loads(run("report", str(ledger), k.OWNER, "--json"))
    assert (j["finality"]["dgc-0"]["final_g"], j["finality"]["dgc-0"]["provisional_g"]) == (6_750, 1_800)


def test_device_slots_lists_the_dgc_against_the_smart_meter(ledger: Path) -> None:
    j = json.loads(run("device", "slots", str(ledger), "dgc-0", "--from", "2026-06-01T09:00",
                       "--to", "2026-06-01T10:30", "--json"))
    rows = {r["slot_start_jst"][11:16]: r for r in j["slots"]}
    assert list(rows) == ["09:00", "09:30", "10:00"]
    a, b, c = rows["09:00"], rows["09:30"], rows["10:00"]
    assert (a["finality"], a["export_wh"], a["sm_export_wh"], a["export_tolerance_wh"], a["stands_g"]) == (
        "corrected", 2_000, 3_000, 60, 3_150)
    assert (b["finality"], b["sm_export_wh"], b["target_g"]) == ("final", 2_030, 3_586)
    assert (c["finality"], c["sm_export_wh"], c["target_g"], c["stands_g"]) == ("provisional", None, None, 1_800)
    j1 = json.loads(run("device", "slots", str(ledger), "dgc-1", "--json"))  # the last day by default
    assert (j1["debt_g"], j1["drift_slots"], j1["drift_alerts"], len(j1["slots"])) == (450, -3, 1, 3)
    table = run("device", "slots", str(ledger), "dgc-0")
    assert "dgc-0: slots" in table and "device debt 0 g (repaid 0 g)" in table


def test_device_controls_lists_the_control_records(ledger: Path) -> None:
    j = json.loads(run("device", "controls", str(ledger), "dgc-0", "--json"))
    [c] = j["controls"]
    assert (c["seq"], c["limit_w"], c["reason"], c["export_cap_w"], c["crev_price_jpy_per_t"]) == (
        1, 0, "zero_export", -1, 5_000)
    assert c["slot_start_jst"] == "2026-06-01T10:00:00+09:00"
    assert "dgc-0: control records" in run("device", "controls", str(ledger), "dgc-0")
    assert "no control records" in run("device", "controls", str(ledger), "dgc-1")


def test_an_unknown_device_fails_clearly(ledger: Path) -> None:
    res = CliRunner().invoke(main, ["device", "slots", str(ledger), "nope"])
    assert res.exit_code == 2 and "no device 'nope'" in res.output
