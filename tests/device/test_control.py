"""The control policy's pure functions (device/control.py): the slot decision, the closed loop, the
grid operator's schedule."""

from __future__ import annotations

import pytest

from crev.core.units import parse_time
from crev.device.control import Policy, decide, loop_limit, operator_limit_pct, parse_schedule
from crev.errors import MalformedError

SLOT = parse_time("2026-05-03T12:00")
RATED = 17_000


def test_zero_export_caps_the_grid_point_at_zero() -> None:
    d = decide(Policy(0, 16_000, 0), RATED, SLOT, None, 3_000)
    assert (d.reason, d.export_cap_w, d.ceiling_w) == ("zero_export", 0, RATED)
    assert d.crev_price_jpy_per_t == 3_000 and d.operator_limit_pct is None


def test_export_worth_less_than_the_threshold_curtails_to_consumption() -> None:
    d = decide(Policy(None, 7_000, 8_500), RATED, SLOT, None, 0)
    assert (d.reason, d.export_cap_w) == ("export_unpaid", 0)


def test_export_that_pays_is_released() -> None:
    d = decide(Policy(None, 16_000, 8_500), RATED, SLOT, None, 0)
    assert (d.reason, d.export_cap_w, d.ceiling_w) == ("released", None, RATED)


def test_a_contract_cap_above_zero() -> None:
    d = decide(Policy(5_000, 16_000, 0), RATED, SLOT, None, 0)
    assert (d.reason, d.export_cap_w) == ("export_cap", 5_000)
    # unpaid export tightens the cap to 0 but keeps its own reason
    d = decide(Policy(5_000, 0, 1), RATED, SLOT, None, 0)
    assert (d.reason, d.export_cap_w) == ("export_unpaid", 0)


def test_the_grid_operator_limit_wins_and_floors() -> None:
    d = decide(Policy(0, 16_000, 0), 17_001, SLOT, 50, 0)
    assert (d.reason, d.ceiling_w, d.export_cap_w) == ("grid_operator", 8_500, 0)


def test_the_crev_price_does_not_move_the_limit() -> None:
    a = decide(Policy(None, 7_000, 8_500), RATED, SLOT, None, 0)
    b = decide(Policy(None, 7_000, 8_500), RATED, SLOT, None, 10_000_000)
    assert (a.reason, a.export_cap_w, a.ceiling_w) == (b.reason, b.export_cap_w, b.ceiling_w)


def test_loop_limit_follows_the_load_less_the_margin() -> None:
    # load = net + pv = -2,000 + 10,000 = 8,000 W; zero export with 100 W margin → 7,900 W
    assert loop_limit(-2_000, 10_000, 0, RATED, 100) == 7_900
    # the load rose to 12,000 W: the limit rises with it
    assert loop_limit(4_000, 8_000, 0, RATED, 100) == 11_900
    # a 3 kW cap lets PV cover the load plus 2.9 kW
    assert loop_limit(-2_000, 10_000, 3_000, RATED, 100) == 10_900
    # clamped to the ceiling and to 0
    assert loop_limit(50_000, 0, 0, RATED, 100) == RATED
    assert loop_limit(-5_000, 5_000, 0, RATED, 100) == 0
    # no cap: the ceiling
    assert loop_limit(-9_000, 10_000, None, 8_000, 100) == 8_000


def test_schedule_parses_and_the_lowest_window_wins() -> None:
    text = ("start,end,limit_pct\n# golden week\n2026-05-03T10:00,2026-05-03T15:00,50\n\n"
            "2026-05-03T12:00,2026-05-03T12:30,0\n")
    sched = parse_schedule(text)
    assert len(sched) == 2
    assert operator_limit_pct(sched, SLOT - 1800) == 50
    assert operator_limit_pct(sched, SLOT) == 0
    assert operator_limit_pct(sched, SLOT + 1800) == 50
    assert operator_limit_pct(sched, parse_time("2026-05-03T15:00")) is None


@pytest.mark.parametrize(("line", "field"), [
    ("2026-05-03T10:00,2026-05-03T15:00", "schedule[line 1]"),
    ("2026-05-03T10:10,2026-05-03T15:00,50", "schedule[line 1].start"),
    ("2026-05-03T10:00,2026-05-03T10:00,50", "schedule[line 1].end"),
    ("2026-05-03T10:00,soon,50", "schedule[line 1].end"),
    ("2026-05-03T10:00,2026-05-03T15:00,101", "schedule[line 1].limit_pct"),
    ("2026-05-03T10:00,2026-05-03T15:00,half", "schedule[line 1].limit_pct"),
])
def test_a_bad_schedule_line_names_its_field(line: str, field: str) -> None:
    with pytest.raises(MalformedError) as e:
        parse_schedule(line)
    assert e.value.field == field
