"""crev report splits each site's C-REV into provisional and final and lists the device alerts, on
tests/audit/meter_ledger.py read through a lazy LedgerView at 11:00 JST (FY2026).

dgc-0: A corrected (3,600 − 450 = 3,150 g), B final (3,600 g), C provisional (1,800 g)
→ final 6,750 g, provisional 1,800 g, 1 corrected slot. dgc-1: three corrected slots of
3,600 − 450 = 3,150 g each → final 9,450 g; debt 450 g (450 repaid), drift −3, 1 alert."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rich.console import Console

from crev.cli.render import print_report
from crev.node.node import LedgerView
from crev.reports.report import participant_report, report_dict
from tests.audit import meter_ledger as m
from tests.node import nodekit as k


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerView]:
    v = LedgerView(m.build_meter_ledger(tmp_path_factory.mktemp("report") / "ledger"))
    yield v
    v.close()


def test_the_report_splits_provisional_and_final_per_site(view: LedgerView) -> None:
    now = view.state.last_time
    out = report_dict(participant_report(view.state, view.store, k.OWNER), now)
    f0, f1 = out["finality"]["dgc-0"], out["finality"]["dgc-1"]
    assert (f0["final_g"], f0["provisional_g"], f0["corrected_slots"], f0["late_slots"]) == (
        6_750, 1_800, [m.A // 1800], [])
    assert f0["fiscal_year_to_date"] == {"final_g": 6_750, "provisional_g": 1_800}
    assert (f0["debt_g"], f0["drift_slots"], f0["alerts"]) == (0, 0, [])
    assert (f1["final_g"], f1["provisional_g"], f1["corrected_slots"]) == (
        9_450, 0, [m.A // 1800, m.B // 1800, m.C // 1800])
    assert (f1["debt_g"], f1["debt_repaid_g"], f1["drift_slots"], f1["drift_alerts"]) == (450, 450, -3, 1)
    assert len(f1["alerts"]) == 2 and "DGC below the smart meter" in f1["alerts"][0]
    slots = out["sites"]["dgc-0"]
    assert [(slots[str(s // 1800)]["finality"], slots[str(s // 1800)]["crev_g"]) for s in (m.A, m.B, m.C)] == [
        ("corrected", 3_150), ("final", 3_600), ("provisional", 1_800)]


def test_the_printed_report_shows_the_split_and_the_alerts(view: LedgerView) -> None:
    rep = participant_report(view.state, view.store, k.OWNER)
    c = Console(record=True, width=300)
    print_report(c, rep, view.state.last_time)
    text = c.export_text()
    assert "C-REV provisional and final / 暫定・確定" in text
    row = next(line for line in text.splitlines() if "dgc-0" in line and "6.75" in line)
    assert "1.80" in row and "1 (06-01 09:00)" in row
    assert "⚠ dgc-1: calibration drift: 3 consecutive slots out of tolerance, the DGC below the smart meter" in text
    assert "⚠ dgc-1: reconciliation debt: 450 g to repay" in text
