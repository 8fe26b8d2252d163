"""crev trace shows each lot's finality and, for a reconciled slot, the smart meter against the DGC
with the transaction that did it, the smart-meter item and a state proof of the slot tally. The
ledger is tests/audit/meter_ledger.py (its docstring has the hand-computed figures); it is read
through LedgerView, whose records are fetched lazily from the checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from crev.audit.trace import proof_heights, trace
from crev.cli.render import print_trace
from crev.core.encoding import decode, encode
from crev.core.hashing import sha256
from crev.ledger.records import SlotTally
from crev.node.node import LedgerView
from tests.audit import meter_ledger as m
from tests.audit.test_trace import check_state_proof, check_tx_proof
from tests.node import nodekit as k


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return m.build_meter_ledger(tmp_path_factory.mktemp("finality") / "ledger")


@pytest.fixture(scope="module")
def view(ledger: Path) -> Iterator[LedgerView]:
    v = LedgerView(ledger)
    assert v.loaded_in_full is None  # records are fetched lazily
    yield v
    v.close()


def lot_of(view: LedgerView, ident: str) -> dict[str, Any]:
    lots: list[dict[str, Any]] = trace(view.store, view.state, ident)["lots"]
    assert len(lots) == 1
    return lots[0]


def steps(lot: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for s in lot["steps"] if s["step"] == name]


def test_a_corrected_slot_shows_the_smart_meter_against_the_dgc_and_the_cancelled_grams(
        ledger: Path, view: LedgerView) -> None:
    lot = lot_of(view, m.LOT_A)
    assert (lot["finality"], lot["finality_basis"]) == ("corrected", "smart meter")
    [rec] = steps(lot, "reconciled")
    assert rec["status"] == "corrected"
    # export: DGC 2,000 Wh, smart meter 3,000 Wh; tolerance max(1 + 10, 2 % of 3,000) = 60 Wh
    assert rec["export_wh"] == {"dgc": 2_000, "smart_meter": 3_000, "difference": -1_000, "tolerance": 60}
    assert rec["import_wh"] == {"dgc": 0, "smart_meter": 0, "difference": 0, "tolerance": 11}
    # stood 3,600 g; target ⌊(10,000 − 3,000) × 450 / 1000⌋ = 3,150 g: 450 g cancelled from
    # sun-co's tradable units, lowest first after the 1,000 sent to buyer-co
    assert (rec["stood_g"], rec["target_g"], rec["cancelled_g"], rec["debt_g"], rec["topup_g"]) == (
        3_600, 3_150, 450, 0, 0)
    assert rec["cancellations"] == [{"lot_id": m.LOT_A, "holder": k.OWNER, "units": [1_001, 1_450],
                                     "quantity_g": 450}]
    # the reconciliation comes before the cancellation it made, in the same transaction
    names = [s["step"] for s in lot["steps"]]
    assert names == ["signed_reading", "issued", "transferred", "retired", "reconciled", "cancelled",
                     "current_state"]
    [cancel] = steps(lot, "cancelled")
    assert cancel["tx_hash"] == rec["tx_hash"] and cancel["quantity_g"] == 450
    # the smart-meter item: its hash is SHA-256 of the signed item, carried by this very transaction
    mi = rec["meter_item"]
    assert mi["item_hash"] == sha256(encode(m.meter_item("dgc-0", m.A, 0, 3_000))).hex()
    assert (mi["tx_hash"], mi["meter_id"], mi["export_wh"]) == (rec["tx_hash"], "SM-0001", 3_000)
    check_tx_proof(ledger, rec["proof"])
    check_tx_proof(ledger, mi["proof"])


def test_the_slot_tally_has_a_state_proof_that_recomputes_the_header_root(ledger: Path, view: LedgerView) -> None:
    [rec] = steps(lot_of(view, m.LOT_A), "reconciled")
    sp = rec["state_proof"]
    assert sp["key"] == f"v/dgc-0/{m.A // 1800}"
    check_state_proof(ledger, sp)
    tally = SlotTally.from_value(decode(bytes.fromhex(sp["value"])))
    assert (tally.status, tally.issued_g, tally.withdrawn_g, tally.target_g) == ("corrected", 3_600, 450, 3_150)
    assert (tally.export_wh, tally.sm_export_wh, tally.reconciled_height) == (2_000, 3_000, rec["height"])


def test_a_slot_within_tolerance_is_final_and_changes_nothing(ledger: Path, view: LedgerView) -> None:
    lot = lot_of(view, m.LOT_B)
    assert lot["finality"] == "final"
    [rec] = steps(lot, "reconciled")
    # export 2,000 against 2,030 (tolerance 40); import 500 against 500 (tolerance 11)
    assert (rec["export_wh"]["difference"], rec["export_wh"]["tolerance"], rec["import_wh"]["dgc"]) == (-30, 40, 500)
    assert (rec["stood_g"], rec["target_g"], rec["cancelled_g"], rec["cancellations"]) == (3_600, 3_586, 0, [])
    assert not steps(lot, "cancelled")
    check_state_proof(ledger, rec["state_proof"])


def test_a_slot_without_smart_meter_values_is_provisional_until_the_window_ends(view: LedgerView) -> None:
    lot = lot_of(view, m.LOT_C)
    assert lot["finality"] == "provisional"
    assert lot["finality_basis"] == "awaiting the smart meter until 2026-06-02T10:30:00+09:00"
    assert not steps(lot, "reconciled")


def test_debt_is_shown_when_the_units_were_already_sold(view: LedgerView) -> None:
    [rec] = steps(lot_of(view, m.D1), "reconciled")
    assert (rec["status"], rec["cancelled_g"], rec["debt_g"], rec["cancellations"]) == ("corrected", 0, 450, [])


def test_a_retirement_traces_its_lots_with_their_finality(view: LedgerView) -> None:
    out = trace(view.store, view.state, "ret-00000001")
    [lot] = out["lots"]
    assert lot["finality"] == "corrected" and lot["units_traced"] == [[1, 500]]
    [rec] = steps(lot, "reconciled")
    assert rec["height"] in proof_heights(out)


def test_the_timeline_prints_the_finality_and_the_reconciliation(view: LedgerView) -> None:
    c = Console(record=True, width=400)
    print_trace(c, trace(view.store, view.state, m.LOT_A))
    text = c.export_text()
    assert "finality corrected / 補正済" in text and "(smart meter)" in text
    assert "export DGC 2,000 / smart meter 3,000 Wh (Δ -1,000, ±60)" in text
    assert "stood 3,600 g → target 3,150 g: cancelled 450 g" in text
    assert f"key v/dgc-0/{m.A // 1800}" in text and "✗" not in text
    c = Console(record=True, width=400)
    print_trace(c, trace(view.store, view.state, m.LOT_C))
    assert "finality provisional / 暫定" in c.export_text()
