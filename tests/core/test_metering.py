"""The DGC-C metering rule, the PV capacity ceiling and register deltas, by hand.

Per interval: demand = G + I − E, self-consumed = G − E (G generation, I import, E export, Wh).
"""

from __future__ import annotations

import pytest

from crev.core.metering import (
    MAX_WH,
    REGISTER_MODULUS_WH,
    IntervalFigures,
    capacity_limit_wh,
    interval_figures,
    register_delta,
)

# --- the metering rule -------------------------------------------------------------------------


def test_surplus_slot_exports_the_excess_and_self_consumes_all_demand() -> None:
    # G 20,000, I 0, E 5,000 → demand 15,000; self-consumed 15,000 (= demand: nothing bought)
    f = interval_figures(20_000, 0, 5_000)
    assert f == IntervalFigures(demand_wh=15_000, self_consumed_wh=15_000)


def test_deficit_slot_self_consumes_all_generation_and_buys_the_rest() -> None:
    # G 8,000, I 12,000, E 0 → demand 20,000; self-consumed 8,000 (= all generation)
    f = interval_figures(8_000, 12_000, 0)
    assert f == IntervalFigures(demand_wh=20_000, self_consumed_wh=8_000)


def test_night_slot_self_consumes_nothing() -> None:
    # G 0, I 9,000, E 0 → demand 9,000; self-consumed 0
    f = interval_figures(0, 9_000, 0)
    assert f == IntervalFigures(demand_wh=9_000, self_consumed_wh=0)


def test_mixed_slot_with_import_and_export_uses_the_same_two_formulas() -> None:
    # within 30 min a cloud passes: G 10,000, I 3,000, E 4,000
    # → demand 10,000 + 3,000 − 4,000 = 9,000; self-consumed 10,000 − 4,000 = 6,000
    f = interval_figures(10_000, 3_000, 4_000)
    assert f == IntervalFigures(demand_wh=9_000, self_consumed_wh=6_000)


def test_all_generation_exported_self_consumes_nothing() -> None:
    # G 7,000, I 2,000, E 7,000 → demand 2,000; self-consumed 0
    assert interval_figures(7_000, 2_000, 7_000) == IntervalFigures(2_000, 0)


def test_idle_slot_is_all_zero() -> None:
    assert interval_figures(0, 0, 0) == IntervalFigures(0, 0)


def test_self_consumed_never_exceeds_demand_or_generation() -> None:
    for g, i, e in ((20_000, 0, 5_000), (8_000, 12_000, 0), (0, 9_000, 0), (10_000, 3_000, 4_000),
                    (1, 0, 1), (26_250, 0, 0)):
        f = interval_figures(g, i, e)
        assert 0 <= f.self_consumed_wh <= min(f.demand_wh, g)


# --- capacity ----------------------------------------------------------------------------------


def test_capacity_limit_of_50_kw_over_30_minutes_with_5_percent_is_26250_wh() -> None:
    # 50,000 W × 0.5 h = 25,000 Wh; × 1.05 = 26,250 Wh
    assert capacity_limit_wh(50_000, 1800, 500) == 26_250


def test_capacity_limit_of_10_kw_over_1_minute_with_5_percent_is_175_wh() -> None:
    # 10,000 W × 1/60 h = 166.67 Wh; × 1.05 = 175 Wh exactly
    assert capacity_limit_wh(10_000, 60, 500) == 175


def test_capacity_limit_without_tolerance_is_the_nameplate_energy() -> None:
    assert capacity_limit_wh(50_000, 1800, 0) == 25_000


def test_capacity_limit_rounds_down() -> None:
    # 333 W × 0.5 h = 166.5 Wh → 166;  1 W × 0.5 h × 1.05 = 0.525 Wh → 0
    assert capacity_limit_wh(333, 1800, 0) == 166
    assert capacity_limit_wh(1, 1800, 500) == 0
    # 4,000 W × 0.25 h × 1.05 = 1,050 Wh exactly; 3,999 W → 1,049.7375 → 1,049
    assert capacity_limit_wh(4_000, 900, 500) == 1_050
    assert capacity_limit_wh(3_999, 900, 500) == 1_049


def test_capacity_limit_scales_with_the_span_for_gaps() -> None:
    # three missed slots plus the reported one: 2 h of 50 kW × 1.05 = 105,000 Wh
    assert capacity_limit_wh(50_000, 4 * 1800, 500) == 105_000


# --- register deltas ---------------------------------------------------------------------------


def test_register_modulus_is_ten_decimal_digits() -> None:
    assert REGISTER_MODULUS_WH == 10_000_000_000
    assert MAX_WH == 9_999_999_999


def test_register_delta_of_an_advancing_register_is_the_difference() -> None:
    assert register_delta(1_000_000, 1_020_000) == 20_000
    assert register_delta(0, 1) == 1


def test_register_delta_of_an_unchanged_register_is_zero() -> None:
    assert register_delta(1_234_567, 1_234_567) == 0
    assert register_delta(0, 0) == 0


def test_register_rollover_near_the_top_counts_through_zero() -> None:
    # 9,999,999,000 → 500: 1,000 Wh to reach 10**10, then 500 more
    assert register_delta(9_999_999_000, 500) == 1_500
    assert register_delta(MAX_WH, 0) == 1


def test_register_rollover_window_edges() -> None:
    # accepted only from the top tenth [9e9, 1e10) into the bottom tenth [0, 1e9)
    assert register_delta(9_000_000_000, 999_999_999) == 1_999_999_999
    assert register_delta(8_999_999_999, 0) is None  # previous not in the top tenth
    assert register_delta(9_500_000_000, 1_000_000_000) is None  # current not in the bottom tenth


def test_register_going_backwards_is_refused() -> None:
    assert register_delta(1_020_000, 1_000_000) is None
    assert register_delta(1, 0) is None


def test_register_decrease_far_from_the_top_is_not_a_rollover() -> None:
    # small current value but the previous was mid-range: a reset or a swapped meter, not a wrap
    assert register_delta(5_000_000_000, 500) is None


@pytest.mark.parametrize("prev", [0, 1, 999_999_999, 5_000_000_000, 9_000_000_000, 9_999_999_999])
def test_register_delta_of_a_plausible_step_is_the_step_even_across_the_wrap(prev: int) -> None:
    for step in (0, 1, 26_250, 999_999):
        assert register_delta(prev, (prev + step) % REGISTER_MODULUS_WH) == step
