"""Grid emission factors: the shipped table, the lookup rule and CSV errors.

Lookup rule (core/factors.py): for an interval in fiscal year F, take the newest row of the grid
area and issuance kind with results year ≤ F − 1; else the national average by the same rule; else
NotFoundError. Later rows with the same (key, results year, kind) replace earlier ones.
"""

from __future__ import annotations

import pytest

from crev.core.factors import COLUMNS, KINDS, MAX_FACTOR_G_PER_KWH, FactorRow, FactorTable, parse_csv
from crev.core.units import fiscal_year, parse_time
from crev.data import shipped_rows
from crev.errors import MalformedError, NotFoundError
from crev.ledger.vocab import GRID_AREAS

HEADER = "key,fiscal_year,kind,g_per_kwh,source,note\n"


def row(key: str, fy: int, kind: str, g: int, source: str = "test") -> FactorRow:
    return FactorRow(key, fy, kind, g, source)


# --- the shipped table -------------------------------------------------------------------------


def test_shipped_csv_parses() -> None:
    rows = shipped_rows()
    assert len(rows) >= 10
    assert all(r.kind in KINDS for r in rows)
    assert all(0 < r.g_per_kwh <= MAX_FACTOR_G_PER_KWH for r in rows)


def test_every_shipped_row_cites_a_source_with_an_address() -> None:
    for r in shipped_rows():
        assert r.source.strip(), r
        assert "http" in r.source, f"{r.key}/{r.fiscal_year}/{r.kind} cites no address: {r.source!r}"


def test_shipped_rows_are_unique_per_key_year_kind() -> None:
    idents = [(r.key, r.fiscal_year, r.kind) for r in shipped_rows()]
    assert len(idents) == len(set(idents))


def test_shipped_table_has_a_national_average() -> None:
    assert any(r.key == "national" and r.kind == "national_average" for r in shipped_rows())


def test_shipped_table_gives_every_grid_area_an_adjusted_factor_for_fy2026() -> None:
    table = FactorTable(shipped_rows())
    for area in GRID_AREAS:
        found = table.lookup(area, 2026, "adjusted")
        assert found.fiscal_year <= 2025
        assert found.key in (area, "national")


def test_shipped_tokyo_fy2026_uses_its_fy2024_results_of_452() -> None:
    # newest tokyo/adjusted with results year ≤ 2025 is 2024: 452 g/kWh (MOE R6年度実績)
    found = FactorTable(shipped_rows()).lookup("tokyo", 2026, "adjusted")
    assert (found.key, found.fiscal_year, found.g_per_kwh) == ("tokyo", 2024, 452)


def test_shipped_tokyo_fy2024_falls_back_to_the_newest_published_national_average() -> None:
    # tokyo has no row ≤ 2023; the national average ≤ 2023 is the FY2018 one (462)
    found = FactorTable(shipped_rows()).lookup("tokyo", 2024, "adjusted")
    assert (found.key, found.fiscal_year, found.g_per_kwh) == ("national", 2018, 462)


# --- lookup by hand ----------------------------------------------------------------------------

SMALL = [
    row("tokyo", 2023, "adjusted", 460),
    row("tokyo", 2024, "adjusted", 450),
    row("tokyo", 2025, "adjusted", 440),  # results of FY2025: used from FY2026 on
    row("chubu", 2021, "adjusted", 480),
    row("national", 2022, "national_average", 430),
    row("national", 2024, "national_average", 423),
    row("national", 2023, "adjusted", 999),  # national but not the national-average kind
]


def lookup(area: str, fy: int, kind: str = "adjusted", rows: list[FactorRow] | None = None) -> tuple[str, int, int]:
    r = FactorTable(SMALL if rows is None else rows).lookup(area, fy, kind)
    return r.key, r.fiscal_year, r.g_per_kwh


def test_interval_in_fy_f_uses_results_year_f_minus_1() -> None:
    assert lookup("tokyo", 2026) == ("tokyo", 2025, 440)
    assert lookup("tokyo", 2025) == ("tokyo", 2024, 450)
    assert lookup("tokyo", 2024) == ("tokyo", 2023, 460)


def test_a_factor_of_the_current_year_is_never_used() -> None:
    # in FY2025 the FY2025 results (440) are not yet published
    assert lookup("tokyo", 2025)[1] == 2024


def test_without_a_row_for_f_minus_1_the_newest_older_row_of_the_area_is_used() -> None:
    assert lookup("tokyo", 2030) == ("tokyo", 2025, 440)
    assert lookup("chubu", 2026) == ("chubu", 2021, 480)


def test_an_older_area_row_wins_over_a_newer_national_average() -> None:
    # chubu FY2026: chubu/2021 (480) beats national/2024 (423)
    assert lookup("chubu", 2026) == ("chubu", 2021, 480)


def test_area_without_any_published_row_falls_back_to_the_national_average() -> None:
    assert lookup("kansai", 2026) == ("national", 2024, 423)
    assert lookup("kansai", 2024) == ("national", 2022, 430)


def test_area_whose_rows_are_all_too_new_falls_back_to_the_national_average() -> None:
    # tokyo FY2023 needs results ≤ 2022; tokyo's rows start at 2023
    assert lookup("tokyo", 2023) == ("national", 2022, 430)
    # chubu FY2021 needs ≤ 2020; chubu/2021 is too new, national/2022 too
    with pytest.raises(NotFoundError):
        lookup("chubu", 2021)


def test_other_kind_falls_back_to_the_national_average_not_to_another_kind() -> None:
    # no tokyo "basic" row: the adjusted tokyo rows are not used
    assert lookup("tokyo", 2026, "basic") == ("national", 2024, 423)


def test_fallback_uses_only_the_national_average_kind() -> None:
    # national/2023/adjusted (999) is never a fallback
    assert lookup("kansai", 2024) == ("national", 2022, 430)


def test_nothing_published_before_the_year_is_not_found() -> None:
    with pytest.raises(NotFoundError) as exc:
        lookup("kansai", 2022)
    assert exc.value.field == "emission_factor"
    with pytest.raises(NotFoundError):
        FactorTable([]).lookup("tokyo", 2026, "adjusted")


def test_later_row_with_the_same_key_year_kind_replaces_the_earlier() -> None:
    rows = [row("tokyo", 2025, "adjusted", 440, "first"), row("tokyo", 2025, "adjusted", 441, "second")]
    found = FactorTable(rows).lookup("tokyo", 2026, "adjusted")
    assert (found.g_per_kwh, found.source) == (441, "second")
    assert len(FactorTable(rows).rows()) == 1


def test_upsert_overrides_even_after_a_cached_lookup() -> None:
    table = FactorTable(list(SMALL))
    assert table.lookup("tokyo", 2026, "adjusted").g_per_kwh == 440
    table.upsert([row("tokyo", 2025, "adjusted", 300, "correction")])
    assert table.lookup("tokyo", 2026, "adjusted").g_per_kwh == 300
    # a newly published area row replaces a cached national fallback
    assert table.lookup("kansai", 2026, "adjusted").key == "national"
    table.upsert([row("kansai", 2024, "adjusted", 415)])
    assert table.lookup("kansai", 2026, "adjusted").g_per_kwh == 415


def test_lookup_year_comes_from_the_jst_fiscal_year_of_the_interval() -> None:
    table = FactorTable(SMALL)
    last_fy2025 = fiscal_year(parse_time("2026-03-31T23:30"))
    first_fy2026 = fiscal_year(parse_time("2026-04-01T00:00"))
    assert table.lookup("tokyo", last_fy2025, "adjusted").g_per_kwh == 450
    assert table.lookup("tokyo", first_fy2026, "adjusted").g_per_kwh == 440


def test_rows_are_listed_sorted_by_key_year_kind() -> None:
    listed = [(r.key, r.fiscal_year, r.kind) for r in FactorTable(list(reversed(SMALL))).rows()]
    assert listed == sorted(listed)


# --- parse_csv ---------------------------------------------------------------------------------


def parse_error(text: str, name: str = "f.csv") -> MalformedError:
    with pytest.raises(MalformedError) as exc:
        parse_csv(text, name)
    return exc.value


def test_parse_csv_reads_a_good_table() -> None:
    rows = parse_csv(HEADER + 'tokyo,2024,adjusted,452,"MOE, 2026",note\nnational,2024,national_average,423,MOE,\n')
    assert rows == [FactorRow("tokyo", 2024, "adjusted", 452, "MOE, 2026", "note"),
                    FactorRow("national", 2024, "national_average", 423, "MOE", "")]


def test_parse_csv_strips_spaces_and_skips_blank_lines() -> None:
    rows = parse_csv(HEADER + "\n tokyo , 2024 , adjusted , 452 , MOE , \n\n")
    assert rows == [FactorRow("tokyo", 2024, "adjusted", 452, "MOE", "")]


def test_parse_csv_accepts_the_bounds_0_and_2000() -> None:
    rows = parse_csv(HEADER + "a,2024,basic,0,s,\nb,2024,basic,2000,s,\n")
    assert [r.g_per_kwh for r in rows] == [0, 2000]


def test_bad_header_names_line_1() -> None:
    e = parse_error("key,year,kind,g_per_kwh,source,note\ntokyo,2024,adjusted,452,MOE,\n")
    assert e.field == "f.csv:1"
    assert ",".join(COLUMNS) in e.reason


def test_empty_file_is_refused() -> None:
    assert parse_error("").field == "f.csv"


def test_header_only_is_refused() -> None:
    e = parse_error(HEADER)
    assert (e.field, e.reason) == ("f.csv", "no rows")


def test_wrong_column_count_names_the_line() -> None:
    e = parse_error(HEADER + "tokyo,2024,adjusted,452,MOE,\ntokyo,2023,adjusted,460,MOE\n")
    assert e.field == "f.csv:3"
    assert "found 5" in e.reason


def test_non_integer_year_names_line_and_column() -> None:
    e = parse_error(HEADER + "tokyo,FY2024,adjusted,452,MOE,\n")
    assert e.field == "f.csv:2.fiscal_year"
    assert "FY2024" in e.reason


def test_non_integer_factor_names_line_and_column() -> None:
    e = parse_error(HEADER + "tokyo,2024,adjusted,452,MOE,\ntokyo,2023,adjusted,0.460,MOE,\n")
    assert e.field == "f.csv:3.g_per_kwh"
    assert "0.460" in e.reason


def test_negative_factor_names_line_and_column() -> None:
    e = parse_error(HEADER + "tokyo,2024,adjusted,-1,MOE,\n")
    assert e.field == "f.csv:2.g_per_kwh"


def test_factor_above_2000_is_a_unit_mistake() -> None:
    e = parse_error(HEADER + "tokyo,2024,adjusted,2001,MOE,\n")
    assert e.field == "f.csv:2.g_per_kwh"
    assert "2000" in e.reason


def test_year_out_of_range_names_line_and_column() -> None:
    assert parse_error(HEADER + "tokyo,1989,adjusted,452,MOE,\n").field == "f.csv:2.fiscal_year"


def test_unknown_kind_names_line_and_column() -> None:
    e = parse_error(HEADER + "tokyo,2024,adjusted,452,MOE,\ntokyo,2024,residual,452,MOE,\n")
    assert e.field == "f.csv:3.kind"


def test_missing_source_names_line_and_column() -> None:
    e = parse_error(HEADER + "tokyo,2024,adjusted,452,  ,\n")
    assert e.field == "f.csv:2.source"


def test_empty_key_names_line_and_column() -> None:
    assert parse_error(HEADER + ",2024,adjusted,452,MOE,\n").field == "f.csv:2.key"


def test_duplicate_row_names_the_second_line() -> None:
    e = parse_error(HEADER + "tokyo,2024,adjusted,452,MOE,\ntokyo,2024,basic,452,MOE,\n"
                             "tokyo,2024,adjusted,451,MOE,\n")
    assert e.field == "f.csv:4"
    assert "duplicate" in e.reason


def test_line_numbers_count_blank_lines() -> None:
    e = parse_error(HEADER + "\n\ntokyo,2024,adjusted,x,MOE,\n")
    assert e.field == "f.csv:4.g_per_kwh"


def test_error_uses_the_given_file_name() -> None:
    assert parse_error(HEADER + "tokyo,2024,adjusted,x,MOE,\n", name="upload.csv").field == "upload.csv:2.g_per_kwh"


def test_line_numbers_stay_physical_after_a_multi_line_quoted_note() -> None:
    text = HEADER + 'tokyo,2024,adjusted,452,MOE,"first line\nsecond line"\ntokyo,2023,adjusted,x,MOE,\n'
    # the bad factor is on physical line 4 (line 3 holds the rest of the quoted note)
    assert parse_error(text).field == "f.csv:4.g_per_kwh"


# --- FactorRow.from_list (the wire form in genesis and set_emission_factors) ---------------------


def test_factor_row_round_trips_through_its_list_form() -> None:
    r = FactorRow("tokyo", 2024, "adjusted", 452, "MOE", "n")
    assert FactorRow.from_list(r.as_list()) == r


@pytest.mark.parametrize(("value", "field"), [
    (["tokyo", 2024, "adjusted", 452, "MOE"], "f"),
    (["tokyo", "2024", "adjusted", 452, "MOE", ""], "f.fiscal_year"),
    (["tokyo", 2024, "adjusted", True, "MOE", ""], "f.g_per_kwh"),
    (["tokyo", 2024, "adjusted", 452.0, "MOE", ""], "f.g_per_kwh"),
    (["tokyo", 2024, "bogus", 452, "MOE", ""], "f.kind"),
    (["tokyo", 2024, "adjusted", 452, "", ""], "f.source"),
    (["tokyo", 2024, "adjusted", 452, "MOE", 5], "f.note"),
])
def test_factor_row_from_list_names_the_bad_field(value: list[object], field: str) -> None:
    with pytest.raises(MalformedError) as exc:
        FactorRow.from_list(value, "f")
    assert exc.value.field == field
