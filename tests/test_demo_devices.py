"""`crev demo`'s device sites: readings travel the real path (simulated ECHONET Lite smart meter and
SunSpec inverter and grid meter on loopback sockets → DGC agent → outbox → HTTP API → ledger), and
the ledger shows what each site is there to show: a zero-export site curtailed to its load with its
control records, provisional C-REV made final by the smart meter's values, a drifting DGC meter's
slots corrected and flagged, and nothing refused."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from crev.core.units import SLOT_SECONDS
from crev.demo import (
    AGREES,
    EXPORT_UNPAID,
    READS_HIGH,
    READS_LOW,
    ZERO_EXPORT,
    DemoStats,
    choose_device_sites,
    run_demo,
)
from crev.device.outbox import Outbox
from crev.ledger.records import CORRECTED, FINAL
from crev.node.node import LedgerView
from crev.sim.fleet import make_fleet

SITES, DAYS, START = 8, 2, "2026-05-02"  # two spring days: sunny noons, surplus at the low-load sites
ZERO_EXPORT_TOLERANCE_BP = 100  # the zero-export site's smart-meter export over sunny slots ≤ 1 % of its PV


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoStats]:
    d = tmp_path_factory.mktemp("demo") / "data"
    stats = run_demo(d, sites=SITES, days=DAYS, start=START, live=False, console=Console(file=io.StringIO()))
    return d, stats


def roles() -> dict[str, str]:
    return {role: s.site_id for s, role in choose_device_sites(make_fleet(SITES, 1), 6)}


def test_the_device_sites_have_every_role() -> None:
    chosen = choose_device_sites(make_fleet(SITES, 1), 6)
    assert [r for _, r in chosen] == [READS_LOW, ZERO_EXPORT, READS_HIGH, EXPORT_UNPAID, AGREES, AGREES]
    assert len({s.site_id for s, _ in chosen}) == 6


def test_device_readings_and_meter_values_reach_the_ledger_through_the_agents(demo: tuple[Path, DemoStats]) -> None:
    d, stats = demo
    view = LedgerView(d, full=True)
    slots = DAYS * 86400 // SLOT_SECONDS
    for site in [s.site_id for s, _ in choose_device_sites(make_fleet(SITES, 1), 6)]:
        tallies = [t for (dev, _), t in view.state.tallies.items() if dev == site]
        complete = [t for t in tallies if t.covered_s == SLOT_SECONDS and t.has_meter]
        assert len(complete) == slots, (site, len(tallies), len(complete))
        assert view.state.devices[site].last_seq == slots  # every interval signed by the agent
        outbox = Outbox(d / "dgc" / f"{site}.outbox.sqlite")
        try:
            assert not any(outbox.depth().values()) and outbox.dead_letters() == []
        finally:
            outbox.close()
    assert stats.device_readings == 6 * slots and stats.meter_values == 6 * slots
    assert stats.refused == 0


def test_the_zero_export_site_is_curtailed_with_control_records(demo: tuple[Path, DemoStats]) -> None:
    d, stats = demo
    view = LedgerView(d, full=True)
    site = roles()[ZERO_EXPORT]
    records = [c for (dev, _), c in view.state.controls.items() if dev == site]
    assert records and {c.reason for c in records} == {"zero_export"}
    assert all(c.export_cap_w == 0 and c.export_limit_w == 0 for c in records)
    sunny = [t for (dev, _), t in view.state.tallies.items() if dev == site and t.generation_wh > 10_000]
    assert sunny
    generation = sum(t.generation_wh for t in sunny)
    exported = sum(t.sm_export_wh for t in sunny)
    assert exported * 10_000 <= generation * ZERO_EXPORT_TOLERANCE_BP, (exported, generation)
    assert stats.curtailed_wh > 0 and stats.curtailed_slots > 0


def test_provisional_c_rev_becomes_final_and_a_drifting_meter_is_corrected(demo: tuple[Path, DemoStats]) -> None:
    d, stats = demo
    view = LedgerView(d, full=True)
    r = roles()
    statuses = {t.status for t in view.state.tallies.values()}
    assert FINAL in statuses and CORRECTED in statuses
    low = [t for (dev, _), t in view.state.tallies.items() if dev == r[READS_LOW] and t.status == CORRECTED]
    assert low and all(t.withdrawn_g > 0 for t in low)  # the DGC over-issued: cancelled
    assert view.state.devices[r[READS_LOW]].drift_alerts >= 1
    assert any(a.startswith(f"{r[READS_LOW]} export") for a in stats.drift_alerts)
    high = [t for (dev, _), t in view.state.tallies.items() if dev == r[READS_HIGH] and t.status == CORRECTED]
    assert high and all(len(t.lots) >= 2 for t in high)  # topped up
    agrees = [t for (dev, _), t in view.state.tallies.items() if dev == r[AGREES]]
    assert agrees and all(t.status == FINAL for t in agrees)
    # the direct sites' slots have no smart-meter values: provisional until the finality window passes
    assert stats.provisional_g > 0 and stats.final_g > 0 and stats.corrected_g > 0
