"""Units, 30-minute slots in JST, the April–March fiscal year and the two rounding directions.

Every expected value is worked out by hand (unix times via ``calendar.timegm`` of the UTC wall
clock, which shares no code with ``crev.core.units``).

2026-06-01 00:00 JST = 2026-05-31 15:00 UTC = 1,780,239,600 s = slot 989,022 (× 1800 exactly).
"""

from __future__ import annotations

import calendar

import pytest

from crev.core.units import (
    ALLOWED_INTERVAL_SECONDS,
    SLOT_SECONDS,
    SLOTS_PER_DAY,
    co2_g_ceil,
    co2_g_floor,
    fiscal_year,
    fiscal_year_bounds,
    jst_date,
    jst_label,
    parse_time,
    slot_id,
    slot_of_day,
    slot_start,
)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> int:
    """Unix seconds of a UTC wall-clock time, computed without crev."""
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))


JST_MIDNIGHT_0601 = utc(2026, 5, 31, 15)  # 2026-06-01 00:00 JST


# --- constants ---------------------------------------------------------------------------------


def test_slot_is_30_minutes_and_a_day_has_48() -> None:
    assert SLOT_SECONDS == 1800
    assert SLOTS_PER_DAY == 48


def test_allowed_intervals_are_whole_minutes_dividing_30_minutes() -> None:
    # minutes dividing 30: 1, 2, 3, 5, 6, 10, 15, 30
    assert frozenset({60, 120, 180, 300, 360, 600, 900, 1800}) == ALLOWED_INTERVAL_SECONDS


# --- slot ids ----------------------------------------------------------------------------------


def test_hand_computed_unix_time_of_jst_midnight() -> None:
    assert JST_MIDNIGHT_0601 == 1_780_239_600
    assert slot_id(JST_MIDNIGHT_0601) == 989_022


def test_slot_id_counts_30_minute_slots_since_the_epoch() -> None:
    assert slot_id(0) == 0
    assert slot_id(1799) == 0
    assert slot_id(1800) == 1
    assert slot_id(3599) == 1
    assert slot_id(3600) == 2


def test_slot_start_is_the_inverse_of_slot_id_on_boundaries() -> None:
    assert slot_start(989_022) == JST_MIDNIGHT_0601
    for ts in (JST_MIDNIGHT_0601, JST_MIDNIGHT_0601 + 1, JST_MIDNIGHT_0601 + 1799):
        assert slot_start(slot_id(ts)) == JST_MIDNIGHT_0601
    assert slot_start(slot_id(JST_MIDNIGHT_0601 + 1800)) == JST_MIDNIGHT_0601 + 1800


def test_slot_of_day_is_0_at_jst_midnight() -> None:
    assert slot_of_day(slot_id(JST_MIDNIGHT_0601)) == 0
    assert slot_of_day(slot_id(JST_MIDNIGHT_0601 + 1799)) == 0  # 00:29:59 JST


def test_slot_of_day_is_1_at_0030_jst() -> None:
    assert slot_of_day(slot_id(JST_MIDNIGHT_0601 + 1800)) == 1


def test_slot_of_day_is_47_at_2330_jst() -> None:
    assert slot_of_day(slot_id(utc(2026, 6, 1, 14, 30))) == 47  # 23:30 JST
    assert slot_of_day(slot_id(utc(2026, 6, 1, 14, 59, 59))) == 47  # 23:59:59 JST


def test_slot_of_day_of_utc_midnight_is_jst_0900_slot_18() -> None:
    assert slot_of_day(slot_id(utc(2026, 6, 1))) == 18  # 09:00 JST = 18 half hours
    assert slot_of_day(0) == 18  # the epoch itself: 1970-01-01 09:00 JST


def test_slot_of_day_of_jst_noon_is_24() -> None:
    assert slot_of_day(slot_id(utc(2026, 6, 1, 3))) == 24  # 12:00 JST


def test_slot_of_day_wraps_every_48_slots() -> None:
    s = slot_id(JST_MIDNIGHT_0601)
    assert [slot_of_day(s + k) for k in (0, 47, 48, 95, 96)] == [0, 47, 0, 47, 0]


# --- JST labels --------------------------------------------------------------------------------


def test_jst_label_and_date_are_jst_wall_clock() -> None:
    assert jst_label(JST_MIDNIGHT_0601) == "2026-06-01T00:00"
    assert jst_date(JST_MIDNIGHT_0601) == "2026-06-01"
    # one second earlier it is still 31 May in Japan
    assert jst_date(JST_MIDNIGHT_0601 - 1) == "2026-05-31"
    assert jst_label(utc(2026, 6, 1, 1, 30)) == "2026-06-01T10:30"


# --- fiscal year -------------------------------------------------------------------------------


def test_last_minute_of_march_31_jst_is_the_previous_fiscal_year() -> None:
    assert fiscal_year(utc(2026, 3, 31, 14, 59)) == 2025  # 2026-03-31 23:59 JST
    assert fiscal_year(utc(2026, 3, 31, 14, 59, 59)) == 2025  # 23:59:59 JST


def test_april_1_0000_jst_starts_the_new_fiscal_year_even_though_it_is_still_march_in_utc() -> None:
    assert fiscal_year(utc(2026, 3, 31, 15)) == 2026  # 2026-04-01 00:00 JST = 03-31 15:00 UTC


def test_january_to_march_belong_to_the_fiscal_year_that_began_the_april_before() -> None:
    assert fiscal_year(utc(2027, 1, 15)) == 2026
    assert fiscal_year(utc(2027, 3, 1)) == 2026
    assert fiscal_year(utc(2026, 12, 31, 14, 59)) == 2026  # 2026-12-31 23:59 JST


def test_fiscal_year_bounds_are_april_1_jst_to_april_1_jst() -> None:
    start, end = fiscal_year_bounds(2026)
    assert start == utc(2026, 3, 31, 15)  # 2026-04-01 00:00 JST
    assert end == utc(2027, 3, 31, 15)  # 2027-04-01 00:00 JST
    assert end - start == 365 * 86_400


def test_fiscal_year_bounds_include_a_leap_day_in_the_following_february() -> None:
    start, end = fiscal_year_bounds(2027)  # Apr 2027 – Mar 2028 contains 2028-02-29
    assert end - start == 366 * 86_400


def test_fiscal_year_bounds_are_half_open_and_agree_with_fiscal_year() -> None:
    start, end = fiscal_year_bounds(2025)
    assert fiscal_year(start) == 2025
    assert fiscal_year(end - 1) == 2025
    assert fiscal_year(end) == 2026
    assert fiscal_year(start - 1) == 2024
    assert fiscal_year_bounds(2026)[0] == end  # consecutive years tile time


# --- parse_time --------------------------------------------------------------------------------


def test_parse_time_without_offset_reads_jst() -> None:
    assert parse_time("2026-06-01T00:00") == JST_MIDNIGHT_0601
    assert parse_time("2026-06-01T00:00:00") == JST_MIDNIGHT_0601


def test_parse_time_of_a_bare_date_is_jst_midnight() -> None:
    assert parse_time("2026-06-01") == JST_MIDNIGHT_0601


def test_parse_time_honours_an_explicit_offset() -> None:
    assert parse_time("2026-06-01T00:00+09:00") == JST_MIDNIGHT_0601
    assert parse_time("2026-06-01T00:00+00:00") == utc(2026, 6, 1)
    assert parse_time("2026-06-01T00:00Z") == utc(2026, 6, 1)
    assert parse_time("2026-05-31T15:00Z") == JST_MIDNIGHT_0601
    assert parse_time("2026-06-01T00:00-05:00") == utc(2026, 6, 1, 5)


def test_parse_time_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_time("June 1st")


# --- rounding ----------------------------------------------------------------------------------


def test_co2_floor_and_ceil_differ_on_a_fraction() -> None:
    # 1,001 Wh × 441 g/kWh = 441.441 g
    assert co2_g_floor(1_001, 441) == 441
    assert co2_g_ceil(1_001, 441) == 442


def test_co2_floor_and_ceil_agree_on_an_exact_value() -> None:
    # 1,000 Wh × 441 g/kWh = 441 g; 15,000 Wh × 450 g/kWh = 6,750 g
    assert co2_g_floor(1_000, 441) == co2_g_ceil(1_000, 441) == 441
    assert co2_g_floor(15_000, 450) == co2_g_ceil(15_000, 450) == 6_750


def test_co2_of_a_sliver_floors_to_zero_and_ceils_to_one() -> None:
    # 1 Wh × 450 g/kWh = 0.45 g
    assert co2_g_floor(1, 450) == 0
    assert co2_g_ceil(1, 450) == 1


def test_co2_of_nothing_is_zero_both_ways() -> None:
    assert co2_g_floor(0, 450) == co2_g_ceil(0, 450) == 0
    assert co2_g_floor(12_345, 0) == co2_g_ceil(12_345, 0) == 0


def test_co2_rounding_is_exact_on_huge_integers() -> None:
    # 9,999,999,999 Wh × 2,000 g/kWh = 19,999,999,998 g exactly (no float anywhere)
    assert co2_g_floor(9_999_999_999, 2000) == co2_g_ceil(9_999_999_999, 2000) == 19_999_999_998
    # 9,999,999,999 Wh × 1 g/kWh = 9,999,999.999 g
    assert co2_g_floor(9_999_999_999, 1) == 9_999_999
    assert co2_g_ceil(9_999_999_999, 1) == 10_000_000
