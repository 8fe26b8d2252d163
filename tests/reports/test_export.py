"""crev export's rows on the hand-built ledger of test_trace.py: a retirement's period is shown as
its first and inclusive last JST day (the stored end is exclusive), and lot balances add up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crev.node.node import LedgerView
from crev.reports.export import lot_rows, retirement_rows
from tests.audit.test_trace import L0, L1, L2, build_ledger
from tests.node import nodekit as k


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerView]:
    v = LedgerView(build_ledger(tmp_path_factory.mktemp("export") / "ledger"))
    yield v
    v.close()


def test_retirement_periods_show_the_inclusive_last_day(view: LedgerView) -> None:
    rows = {r["retirement_id"]: r for r in retirement_rows(view.state)}
    june, fy = rows["ret-00000001"], rows["ret-00000002"]
    # [2026-06-01, 2026-07-01) → 1 to 30 June; [2026-04-01, 2027-04-01) → FY2026, to 31 March 2027
    assert (june["period_start_jst"], june["period_last_day_jst"]) == ("2026-06-01", "2026-06-30")
    assert (fy["period_start_jst"], fy["period_last_day_jst"]) == ("2026-04-01", "2027-03-31")
    assert "period_end_jst" not in fy  # no column that could be read as an inclusive end
    assert fy["unit_ranges"] == f"{L0}:1-60;{L1}:316-465"
    assert (fy["quantity_g"], fy["account"], fy["note"]) == (210, k.BUYER, "FY2026 claim [bold]x[/")
    assert (june["quantity_g"], june["unit_ranges"]) == (50, f"{L0}:101-150")


def test_lot_rows_split_each_lot_by_status(view: LedgerView) -> None:
    rows = {r["lot_id"]: r for r in lot_rows(view.state)}
    assert list(rows) == [L0, L1, L2]  # by first unit
    # L0: 315 g; 60 + 50 retired, the rest tradable (40 with buyer-co, 165 with sun-co)
    assert (rows[L0]["first_unit"], rows[L0]["last_unit"], rows[L0]["tradable_g"], rows[L0]["retired_g"]) == (
        1, 315, 205, 110)
    assert (rows[L1]["first_unit"], rows[L1]["last_unit"], rows[L1]["tradable_g"], rows[L1]["retired_g"]) == (
        316, 630, 165, 150)
    assert (rows[L2]["quantity_g"], rows[L2]["self_consumed_wh"]) == (1, 1)
    assert rows[L0]["interval_start_jst"] == "2026-06-01T09:00:00+09:00"
