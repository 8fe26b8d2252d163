"""crev verify counts the smart meter's part of the chain: on tests/audit/meter_ledger.py, 5
smart-meter items, 5 slots reconciled (B final; A and dgc-1's three corrected), 900 g cancelled
(A and dgc-1 slot 2), 900 g recorded as debt (dgc-1 slots 1 and 3), 1 drift alert, 1 control record."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from crev.audit.replay import verify_chain
from crev.cli.render import print_verify
from tests.audit import meter_ledger as m


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return m.build_meter_ledger(tmp_path_factory.mktemp("verify") / "ledger")


def test_verify_counts_smart_meter_items_reconciled_slots_and_control_records(ledger: Path) -> None:
    rep = verify_chain(ledger, threads=1)
    assert rep.ok, rep.error
    assert rep.meter_items == 5 and rep.control_records == 1
    assert rep.slots_reconciled == {"corrected": 4, "final": 1}
    # cancelled: A 450 (sun-co's tradable), dgc-1 slot 2 450; debt: dgc-1 slots 1 and 3, 450 each
    assert (rep.reconcile_cancelled_g, rep.reconcile_debt_g, rep.reconcile_topup_g) == (900, 900, 0)
    assert rep.drift_alerts == 1
    c = Console(record=True, width=400)
    print_verify(c, rep, 1.0)
    lines = c.export_text().splitlines()
    assert lines[0].startswith("OK ") and len(lines) == 2
    assert lines[1] == ("smart meter / スマートメーター: 5 items, 5 slots reconciled (1 final, 4 corrected) · "
                        "900 g cancelled, 900 g recorded as debt · 1 calibration drift alert · 1 control record")
