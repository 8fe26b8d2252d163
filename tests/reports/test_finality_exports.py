"""Finality in certificate exports and statements, on tests/audit/meter_ledger.py (read through a
lazy LedgerView): lot rows carry their slot's finality now; retirements and statement lines say
what was final when they happened; CSV cells are still neutralised."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest

from crev.node.node import LedgerView
from crev.reports.export import lot_rows, retirement_rows, rows_csv
from crev.reports.statements import CSV_FIELDS, monthly_statement, retirement_statement, statement_csv
from tests.audit import meter_ledger as m
from tests.node import nodekit as k


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerView]:
    v = LedgerView(m.build_meter_ledger(tmp_path_factory.mktemp("finality") / "ledger"))
    yield v
    v.close()


def test_lot_rows_have_a_finality_column(view: LedgerView) -> None:
    rows = {r["lot_id"]: r for r in lot_rows(view.state)}
    assert {lot: rows[lot]["finality"] for lot in (m.LOT_A, m.LOT_B, m.LOT_C, m.D1, m.D2, m.D3)} == {
        m.LOT_A: "corrected", m.LOT_B: "final", m.LOT_C: "provisional",
        m.D1: "corrected", m.D2: "corrected", m.D3: "corrected"}
    # lot A: 3,600 g; 500 retired by buyer-co, 450 cancelled by the reconciliation
    a = rows[m.LOT_A]
    assert (a["retired_g"], a["cancelled_g"], a["tradable_g"]) == (500, 450, 2_650)
    header, *body = list(csv.reader(io.StringIO(rows_csv(list(rows.values())))))
    assert header[-1] == "finality" and {r[-1] for r in body} == {"corrected", "final", "provisional"}


def test_a_retirement_says_whether_its_units_were_final_when_retired(view: LedgerView) -> None:
    rows = {r["retirement_id"]: r for r in retirement_rows(view.state)}
    # ret-00000001: 500 g of lot A, retired before the smart meter corrected A
    first = rows["ret-00000001"]
    assert (first["final_g_at_retirement"], first["provisional_g_at_retirement"],
            first["finality_at_retirement"]) == (0, 500, "provisional")
    # ret-00000002: 100 g of lot B, retired after the smart meter agreed
    second = rows["ret-00000002"]
    assert (second["final_g_at_retirement"], second["provisional_g_at_retirement"],
            second["finality_at_retirement"]) == (100, 0, "final")
    cert = retirement_statement(view.state, "ret-00000001")
    assert [(r["lot_id"], r["finality_at_retirement"], r["finality_now"]) for r in cert["ranges"]] == [
        (m.LOT_A, "provisional", "corrected")]
    assert (cert["final_g_at_retirement"], cert["provisional_g_at_retirement"]) == (0, 500)


def test_statement_lines_carry_the_finality_of_what_they_moved(view: LedgerView) -> None:
    stmt = monthly_statement(view.state, view.store, k.BUYER, 202606)
    retired = {x.ref: x for x in stmt.lines if x.kind == "retired"}
    assert (retired["ret-00000001"].quantity_g, retired["ret-00000001"].finality) == (500, "provisional")
    assert (retired["ret-00000002"].quantity_g, retired["ret-00000002"].finality) == (100, "final")
    text = statement_csv(stmt)
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[1]) == CSV_FIELDS and CSV_FIELDS[-1] == "finality"
    by_ref = {r[2]: r for r in rows[2:]}
    assert by_ref["ret-00000001"][-1] == "provisional" and by_ref["ret-00000002"][-1] == "final"
