"""Consumer figures by hand (core/figures.py), all at f = 450 g/kWh unless said otherwise.

Slots (Wh):
  surplus  G 20,000  I      0  E 5,000 → demand 15,000, self 15,000, C-REV ⌊15,000 × 0.45⌋ = 6,750
  deficit  G  8,000  I 12,000  E     0 → demand 20,000, self  8,000, C-REV ⌊ 8,000 × 0.45⌋ = 3,600
  night    G      0  I  9,000  E     0 → demand  9,000, self      0, C-REV 0

location_based = ⌈I × f / 1000⌉, gross = ⌈demand × f / 1000⌉, market_based = max(0, gross − claimed),
onsite_share = ⌊self × 10⁴ / demand⌋, renewable_share = min(10⁴, ⌊claimed_wh × 10⁴ / demand⌋),
average_factor = ⌈market_based × 1000 / demand⌉.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from crev.core.figures import Figures, claimed_wh_of, slot_figures, total
from crev.core.units import co2_g_floor

F = 450
SURPLUS = (20_000, 0, 5_000)
DEFICIT = (8_000, 12_000, 0)
NIGHT = (0, 9_000, 0)


def kept(g: int, i: int, e: int, share_num: int = 1, share_den: int = 1) -> Figures:
    """Figures when the site keeps ``share_num/share_den`` of the C-REV its own slot issued."""
    issued = co2_g_floor(g - e, F)
    claimed_g = issued * share_num // share_den
    return slot_figures(g, i, e, F, claimed_g, claimed_wh_of(claimed_g, issued, g - e))


# --- surplus slot ------------------------------------------------------------------------------


def test_surplus_slot_energy_and_location_based() -> None:
    f = slot_figures(*SURPLUS, F)
    assert (f.demand_wh, f.self_consumed_wh) == (15_000, 15_000)
    assert f.location_based_g == 0  # nothing drawn from the grid
    assert f.gross_g == 6_750  # 15,000 × 0.45


def test_surplus_slot_keeping_all_c_rev_reports_zero_market_based() -> None:
    f = kept(*SURPLUS)
    assert (f.claimed_g, f.claimed_wh) == (6_750, 15_000)
    assert f.market_based_g == 0
    assert f.onsite_share_bp == 10_000
    assert f.renewable_share_bp == 10_000
    assert f.average_factor_g_per_kwh == 0


def test_surplus_slot_selling_half_reports_half_as_grid_power() -> None:
    f = kept(*SURPLUS, 1, 2)
    assert (f.claimed_g, f.claimed_wh) == (3_375, 7_500)
    assert f.market_based_g == 3_375  # 6,750 − 3,375
    assert f.onsite_share_bp == 10_000  # physics does not change when C-REV is sold
    assert f.renewable_share_bp == 5_000  # 7,500 / 15,000
    assert f.average_factor_g_per_kwh == 225  # ⌈3,375,000 / 15,000⌉


def test_surplus_slot_selling_all_reports_everything_as_grid_power() -> None:
    f = slot_figures(*SURPLUS, F)
    assert f.market_based_g == 6_750
    assert f.onsite_share_bp == 10_000
    assert f.renewable_share_bp == 0
    assert f.average_factor_g_per_kwh == 450


# --- deficit slot ------------------------------------------------------------------------------


def test_deficit_slot_energy_and_location_based() -> None:
    f = slot_figures(*DEFICIT, F)
    assert (f.demand_wh, f.self_consumed_wh) == (20_000, 8_000)
    assert f.location_based_g == 5_400  # 12,000 × 0.45
    assert f.gross_g == 9_000  # 20,000 × 0.45


def test_deficit_slot_keeping_all_c_rev_reports_only_the_import() -> None:
    f = kept(*DEFICIT)
    assert (f.claimed_g, f.claimed_wh) == (3_600, 8_000)
    assert f.market_based_g == 5_400  # 9,000 − 3,600 = the location-based figure
    assert f.onsite_share_bp == 4_000  # 8,000 / 20,000
    assert f.renewable_share_bp == 4_000
    assert f.average_factor_g_per_kwh == 270  # ⌈5,400,000 / 20,000⌉


def test_deficit_slot_selling_half() -> None:
    f = kept(*DEFICIT, 1, 2)
    assert (f.claimed_g, f.claimed_wh) == (1_800, 4_000)
    assert f.market_based_g == 7_200
    assert f.onsite_share_bp == 4_000
    assert f.renewable_share_bp == 2_000
    assert f.average_factor_g_per_kwh == 360  # 7,200,000 / 20,000


def test_deficit_slot_selling_all() -> None:
    f = slot_figures(*DEFICIT, F)
    assert f.market_based_g == 9_000
    assert f.renewable_share_bp == 0
    assert f.average_factor_g_per_kwh == 450


# --- night slot --------------------------------------------------------------------------------


def test_night_slot_is_all_grid() -> None:
    f = slot_figures(*NIGHT, F)
    assert (f.demand_wh, f.self_consumed_wh) == (9_000, 0)
    assert f.location_based_g == f.gross_g == f.market_based_g == 4_050
    assert f.onsite_share_bp == f.renewable_share_bp == 0
    assert f.average_factor_g_per_kwh == 450
    assert co2_g_floor(0, F) == 0  # nothing issued, nothing to claim


# --- rounding directions -----------------------------------------------------------------------


def test_emissions_round_up_and_shares_round_down() -> None:
    # G 1,001, I 1,001, E 0 at 441 g/kWh: demand 2,002
    # location ⌈441.441⌉ = 442; gross ⌈882.882⌉ = 883; C-REV kept ⌊441.441⌋ = 441
    f = slot_figures(1_001, 1_001, 0, 441, claimed_g=441, claimed_wh=1_001)
    assert f.location_based_g == 442
    assert f.gross_g == 883
    assert f.market_based_g == 442  # 883 − 441
    assert f.onsite_share_bp == 5_000  # 1,001 / 2,002
    assert f.average_factor_g_per_kwh == 221  # ⌈442,000 / 2,002 = 220.78⌉


def test_shares_round_down_on_a_third() -> None:
    # self 1,000 of demand 3,000 = 3,333.3 bp → 3,333
    f = slot_figures(1_000, 2_000, 0, F, claimed_g=450, claimed_wh=1_000)
    assert f.onsite_share_bp == 3_333
    assert f.renewable_share_bp == 3_333


def test_renewable_share_is_capped_at_100_percent() -> None:
    # a night slot claiming C-REV bought from elsewhere for 12,000 Wh against 9,000 Wh demand
    f = slot_figures(*NIGHT, F, claimed_g=5_400, claimed_wh=12_000)
    assert f.renewable_share_bp == 10_000
    assert f.market_based_g == 0  # max(0, 4,050 − 5,400)
    assert f.average_factor_g_per_kwh == 0


def test_zero_demand_gives_zero_ratios_not_a_division_error() -> None:
    f = slot_figures(0, 0, 0, F, claimed_g=100, claimed_wh=200)
    assert (f.onsite_share_bp, f.renewable_share_bp, f.average_factor_g_per_kwh) == (0, 0, 0)
    assert f.market_based_g == 0


def test_to_dict_carries_every_figure() -> None:
    d = kept(*DEFICIT).to_dict()
    assert d == {
        "generation_wh": 8_000, "import_wh": 12_000, "export_wh": 0, "demand_wh": 20_000,
        "self_consumed_wh": 8_000, "claimed_wh": 8_000, "claimed_g": 3_600, "location_based_g": 5_400,
        "market_based_g": 5_400, "onsite_share_bp": 4_000, "renewable_share_bp": 4_000,
        "average_factor_g_per_kwh": 270,
    }


# --- totals ------------------------------------------------------------------------------------


def test_total_adds_components() -> None:
    t = total([kept(*SURPLUS), kept(*DEFICIT), slot_figures(*NIGHT, F)])
    assert (t.generation_wh, t.import_wh, t.export_wh) == (28_000, 21_000, 5_000)
    assert (t.demand_wh, t.self_consumed_wh) == (44_000, 23_000)
    assert t.location_based_g == 0 + 5_400 + 4_050
    assert t.gross_g == 6_750 + 9_000 + 4_050
    assert (t.claimed_g, t.claimed_wh) == (6_750 + 3_600, 15_000 + 8_000)
    assert t.market_based_g == 19_800 - 10_350  # 9,450 = the sum of the slots' 0 + 5,400 + 4,050


def test_total_ratios_come_from_the_sums_not_from_averaging_slot_ratios() -> None:
    t = total([kept(*DEFICIT), slot_figures(*NIGHT, F)])
    # onsite: 8,000 / 29,000 = 2,758.6 bp → 2,758 (the mean of 4,000 and 0 would be 2,000)
    assert t.onsite_share_bp == 2_758
    assert t.renewable_share_bp == 2_758
    # market 5,400 + 4,050 = 9,450; ⌈9,450,000 / 29,000 = 325.86⌉ = 326
    assert t.average_factor_g_per_kwh == 326


def test_total_market_based_nets_an_over_claim_against_other_slots() -> None:
    # the night slot claims 6,750 g (C-REV bought from elsewhere) against a gross of only 4,050:
    # on its own it reports max(0, 4,050 − 6,750) = 0, wasting 2,700 g of claim.
    night = slot_figures(*NIGHT, F, claimed_g=6_750, claimed_wh=15_000)
    deficit = slot_figures(*DEFICIT, F)  # sold everything: market 9,000
    assert night.market_based_g == 0
    assert deficit.market_based_g == 9_000
    t = total([night, deficit])
    # totals add gross (13,050) and claimed (6,750) first: 13,050 − 6,750 = 6,300
    assert t.market_based_g == 6_300
    assert t.market_based_g != night.market_based_g + deficit.market_based_g  # 9,000


def test_total_rounding_is_per_slot_then_summed() -> None:
    # two slots each importing 1 Wh at 450: each reports ⌈0.45⌉ = 1 g, so the total is 2 g,
    # not ⌈0.9⌉ = 1 g: a consumer never under-reports a slot
    t = total([slot_figures(0, 1, 0, F), slot_figures(0, 1, 0, F)])
    assert t.location_based_g == 2
    assert t.gross_g == 2


def test_total_of_nothing_is_zero() -> None:
    t = total([])
    assert t == Figures(0, 0, 0, 0, 0, 0, 0, 0, 0)
    assert (t.market_based_g, t.onsite_share_bp, t.average_factor_g_per_kwh) == (0, 0, 0)


# --- claimed_wh_of -----------------------------------------------------------------------------


def test_claimed_wh_of_a_whole_lot_is_its_energy() -> None:
    assert claimed_wh_of(6_750, 6_750, 15_000) == 15_000


def test_claimed_wh_of_part_of_a_lot_is_proportional() -> None:
    assert claimed_wh_of(3_375, 6_750, 15_000) == 7_500


def test_claimed_wh_of_rounds_down() -> None:
    # 1 g of a 6,750 g lot for 15,000 Wh: 2.22 Wh → 2
    assert claimed_wh_of(1, 6_750, 15_000) == 2
    # lot of 1,001 Wh at 441 g/kWh = 441 g; 220 g stand for 220 × 1,001 / 441 = 499.37 → 499 Wh
    assert claimed_wh_of(220, 441, 1_001) == 499
    assert claimed_wh_of(221, 441, 1_001) == 501  # 501.64
    assert claimed_wh_of(220, 441, 1_001) + claimed_wh_of(221, 441, 1_001) == 1_000  # ≤ 1,001


def test_claimed_wh_of_an_empty_lot_is_zero() -> None:
    assert claimed_wh_of(0, 0, 100) == 0
    assert claimed_wh_of(5, 0, 100) == 0


@given(st.integers(1, 26_250), st.integers(1, 2_000), st.lists(st.integers(1, 10**6), min_size=1, max_size=8))
def test_claims_split_from_one_lot_never_stand_for_more_energy_than_the_lot(
    self_wh: int, factor: int, weights: list[int]
) -> None:
    q = co2_g_floor(self_wh, factor)
    if q == 0:
        return
    # split the lot's q units into len(weights) parts (some possibly empty)
    cuts = sorted(q * w // sum(weights) for w in weights[:-1])
    parts = [b - a for a, b in zip([0, *cuts], [*cuts, q], strict=True)]
    assert sum(parts) == q
    assert sum(claimed_wh_of(p, q, self_wh) for p in parts) <= self_wh
