"""crev report's rules, hand-computed: history follows the owner at the time, location-based
emissions use the grid area's basic factor, market-based the adjusted one."""

from __future__ import annotations

from pathlib import Path

from crev.core.factors import FactorRow
from crev.core.units import SLOT_SECONDS
from crev.ledger.genesis import Genesis
from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.transfer import Transfer
from crev.ledger.messages.update_device import UpdateDevice
from crev.node.node import LedgerView, Node
from crev.reports.report import ParticipantReport, participant_report, report_dict
from tests.node import nodekit as k

FACTORS = (FactorRow("tokyo", 2025, "adjusted", 450, "test"), FactorRow("tokyo", 2025, "basic", 420, "test"),
           FactorRow("national", 2025, "national_average", 400, "test"))


def test_history_follows_the_owner_at_the_time_and_each_method_uses_its_factor(tmp_path: Path) -> None:
    g = Genesis(k.CHAIN, k.T0 - 86400, k.OPERATOR, "Op", k.key(k.OPERATOR).public_key,
                k.key("sequencer").public_key, emission_factors=FACTORS)
    Node.init(tmp_path, g, k.key("sequencer").seed)
    node = k.open_node(tmp_path)
    s = k.register_fleet(node, 1)
    assert node.submit_wait(s.tx(k.OPERATOR, RegisterParticipant("new-co", "New Co", "prosumer",
                                                                 k.key("new-co").public_key))).ok
    assert node.submit_wait(k.readings_tx([k.reading(0, 0), k.reading(0, 1)])).ok  # sun-co's
    assert node.submit_wait(s.tx(k.OPERATOR, UpdateDevice("dgc-0", (("owner", "new-co"),)))).ok
    assert node.submit_wait(k.readings_tx([k.reading(0, 2)])).ok  # new-co's
    node.close()
    view = LedgerView(tmp_path)
    try:
        old = participant_report(view.state, view.store, k.OWNER)
        new = participant_report(view.state, view.store, "new-co")
    finally:
        view.close()
    # each reading: G 800, I 300, E 100 → demand 1,000 Wh, self-consumed 700 Wh; the three
    # 1-minute readings fall in one 30-minute slot
    t_old, t_new = old.total(), new.total()
    assert (t_old.demand_wh, t_old.import_wh) == (2_000, 600)
    assert (t_new.demand_wh, t_new.import_wh) == (1_000, 300)
    # location-based: ⌈600 Wh × 420 (tokyo basic) / 1000⌉ = 252 g (not 450 × 0.6 = 270)
    assert t_old.location_based_g == 252
    assert t_new.location_based_g == 126
    # market-based: ⌈2,000 × 450 / 1000⌉ = 900 g minus the C-REV still held: 2 × 315 = 630 → 270
    assert (t_old.claimed_g, t_old.market_based_g) == (630, 270)
    assert (t_new.claimed_g, t_new.market_based_g) == (315, 135)


def _node_with(tmp_path: Path, factors: tuple[FactorRow, ...]) -> Node:
    g = Genesis(k.CHAIN, k.T0 - 86400, k.OPERATOR, "Op", k.key(k.OPERATOR).public_key,
                k.key("sequencer").public_key, emission_factors=factors)
    Node.init(tmp_path, g, k.key("sequencer").seed)
    return k.open_node(tmp_path)


def _reports(d: Path, *accounts: str) -> list[ParticipantReport]:
    view = LedgerView(d)
    try:
        return [participant_report(view.state, view.store, a) for a in accounts]
    finally:
        view.close()


def test_slots_before_a_change_of_owner_stay_with_the_earlier_owner(tmp_path: Path) -> None:
    """30-minute readings at 09:00 and 09:30 under sun-co, then the device passes to new-co, then
    10:00: two slots in sun-co's report, one in new-co's, each slot's C-REV with its owner."""
    node = _node_with(tmp_path, FACTORS)
    s = k.register_fleet(node, 1)
    assert node.submit_wait(s.tx(k.OPERATOR, RegisterParticipant("new-co", "New Co", "prosumer",
                                                                 k.key("new-co").public_key))).ok
    assert node.submit_wait(k.readings_tx([k.reading(0, 0, interval_s=1800), k.reading(0, 1, interval_s=1800)])).ok
    assert node.submit_wait(s.tx(k.OPERATOR, UpdateDevice("dgc-0", (("owner", "new-co"),)))).ok
    assert node.submit_wait(k.readings_tx([k.reading(0, 2, interval_s=1800)])).ok
    node.close()
    old, new = _reports(tmp_path, k.OWNER, "new-co")
    nine = (k.T0 + 9 * 3600) // SLOT_SECONDS
    assert [site.device_id for site in old.sites] == [site.device_id for site in new.sites] == ["dgc-0"]
    assert sorted(old.sites[0].slots) == [nine, nine + 1]
    assert sorted(new.sites[0].slots) == [nine + 2]
    assert old.by_day() == {"2026-06-01": old.total()} and list(new.by_day()) == ["2026-06-01"]
    # per slot: G 800, I 300, E 100 Wh; location ⌈300 × 420 / 1000⌉ = 126 g; market
    # ⌈1,000 × 450 / 1000⌉ = 450 g less the slot's own 315 g of C-REV = 135 g
    for rep, n in ((old, 2), (new, 1)):
        t = rep.total()
        assert (t.demand_wh, t.import_wh, t.self_consumed_wh) == (1_000 * n, 300 * n, 700 * n)
        assert (t.location_based_g, t.claimed_g, t.market_based_g) == (126 * n, 315 * n, 135 * n)
        assert t.average_factor_g_per_kwh == 135  # ⌈135 × 1000 / 1000⌉
        assert rep.bought_g == 0
    assert old.sites[0].location_factors == {"tokyo/2025/basic": 420}
    assert old.sites[0].market_factors == {"tokyo/2025/adjusted": 450}


def test_location_based_falls_back_to_the_national_average_where_the_area_has_no_basic_factor(
        tmp_path: Path) -> None:
    """A hokkaido site: the table has hokkaido/2025/adjusted = 500 but no basic row, so
    location-based uses national/2025/national_average = 400 and market-based (and issuance) 500."""
    factors = (*FACTORS, FactorRow("hokkaido", 2025, "adjusted", 500, "test"))
    node = _node_with(tmp_path, factors)
    s = k.register_fleet(node, 0)
    assert node.submit_wait(s.tx(k.OPERATOR, RegisterDevice(
        "dgc-0", k.OWNER, k.key("dev/dgc-0").public_key, k.CAPACITY_W, k.T0 - 30 * 86400, 43_064_000,
        141_347_000, "hokkaido", "SN-H", k.T0 + 5 * 365 * 86400, False, "solar_pv"))).ok
    assert node.submit_wait(k.readings_tx([k.reading(0, 0)])).ok
    # sun-co sells 100 g of the 350 g lot (⌊700 × 500 / 1000⌋) to buyer-co
    assert node.submit_wait(s.tx(k.OWNER, Transfer(k.BUYER, (("dgc-0:20260601T0900", 100),), ""))).ok
    node.close()
    seller, buyer = _reports(tmp_path, k.OWNER, k.BUYER)
    t = seller.total()
    assert t.location_based_g == 120  # ⌈300 × 400 / 1000⌉, not ⌈300 × 500 / 1000⌉ = 150
    # ⌈1,000 × 500 / 1000⌉ = 500 g less the 250 g still held; claimed Wh = ⌊700 × 250 / 350⌋ = 500
    assert (t.claimed_g, t.claimed_wh, t.market_based_g) == (250, 500, 250)
    assert (t.onsite_share_bp, t.renewable_share_bp) == (7_000, 5_000)
    assert seller.sites[0].location_factors == {"national/2025/national_average": 400}
    assert seller.sites[0].market_factors == {"hokkaido/2025/adjusted": 500}
    # the buyer has no site: 100 g bought (⌊700 × 100 / 350⌋ = 200 Wh), nothing to emit
    b = buyer.total()
    assert (buyer.sites, buyer.bought_g, b.claimed_g, b.claimed_wh, b.market_based_g) == ([], 100, 100, 200, 0)
    assert report_dict(seller, k.NOW)["factors"] == {"dgc-0": {
        "grid_area": "hokkaido", "location_based": {"national/2025/national_average": 400},
        "market_based": {"hokkaido/2025/adjusted": 500}}}
