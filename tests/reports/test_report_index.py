"""A report looks only at the lots its participant ever held (index lookups), and gets exactly
what a scan of every lot gets: on a demo ledger with transfers, trades and retirements."""

from __future__ import annotations

import pytest
from rich.console import Console

from crev.demo import run_demo
from crev.node.node import LedgerView
from crev.reports.report import claims_by_slot, lots_ever_held


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> LedgerView:
    d = tmp_path_factory.mktemp("ri") / "demo"
    run_demo(d, sites=6, days=2, start="2026-06-01", seed=5, console=Console(quiet=True), live=False)
    return LedgerView(d)


def test_indexed_claims_equal_a_full_scan_for_everyone(view: LedgerView) -> None:
    st = view.state
    nonempty = 0
    for acct in st.accounts:
        fast = claims_by_slot(st, acct, view.store)
        assert fast == claims_by_slot(st, acct)
        nonempty += bool(fast)
    assert nonempty >= 5  # owners and buyers alike hold or retired something


def test_a_buyer_ever_held_only_what_it_bought_or_was_sent(view: LedgerView) -> None:
    st = view.state
    held = lots_ever_held(view.store, "kanto-rail")
    assert held  # its standing bid bought and retired
    touched = {lot.lot_id for lot in st.lots.values() if any(s.holder == "kanto-rail" for s in lot.segments)}
    assert touched <= held
    assert all(st.lots[i].issued_to != "kanto-rail" for i in held)  # a buyer has no sites


def test_one_device_s_claims_equal_the_full_scan_of_that_device(view: LedgerView) -> None:
    st = view.state
    for acct in ("kanto-rail", *sorted({d.owner for d in st.devices.values()})):
        full = claims_by_slot(st, acct)
        for dev in st.devices:
            assert claims_by_slot(st, acct, view.store, dev) == {k: v for k, v in full.items() if k[0] == dev}
