"""Seeded electricity demand of business sites at 1-minute resolution, in JST local time.

A site's load [W] is

    peak_load_w × profile(kind, day type, time of day) × season(kind, day of year)
                × daily level × (1 + slow noise + fast noise),

clipped to ``[0, peak_load_w]``. The profile is a piecewise-linear shape (fraction of peak [-])
per load kind and day type:

office     weekdays 08–19 high (with a lunch dip), ~18 % standby at night, weekends and holidays
factory    weekdays 08–17 near peak, a lunch dip, a moderate night shift (~50 %); reduced
           Saturday operation; idle on Sundays, holidays, New Year and Obon
retail     open 10–21 every day (busier on weekends and holidays), refrigeration at night;
           closed only on 1 January
warehouse  flatter: 06–20 operation Monday–Saturday, ~35–40 % base otherwise

Day types use Japanese national holidays (fixed-date ones, Happy-Monday ones, the equinoxes
from the usual approximation formula and Sunday substitutes), the New Year break (29 Dec – 3 Jan)
and, for factories, the Obon break (13–16 Aug). The seasonal factor raises office and retail
demand in the air-conditioning months (July–September, and less so in winter). Noise: a daily
level ~N(1, 0.04), an hourly-knot component (σ 4 %) and a minute-scale component (σ 3 %), all
drawn from the site's own stream for the day.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from functools import lru_cache
from typing import Final

import numpy as np
from numpy.typing import NDArray

from crev.sim import seeding

MINUTES_PER_DAY: Final = 1440

# (hour of day [h], fraction of peak load [-]) knots; the first knot is at 0 h, the last at 24 h.
_Knots = tuple[tuple[float, float], ...]
PROFILES: Final[dict[tuple[str, str], _Knots]] = {
    ("office", "work"): (
        (0, 0.18), (6, 0.18), (7.5, 0.35), (8.5, 0.85), (11.75, 0.95), (12.0, 0.84), (13.0, 0.84),
        (13.25, 0.97), (17.5, 0.93), (19.0, 0.60), (20.5, 0.30), (22.0, 0.20), (24, 0.18),
    ),
    ("office", "off"): ((0, 0.17), (9, 0.17), (10, 0.22), (17, 0.22), (18, 0.17), (24, 0.17)),
    ("factory", "work"): (
        (0, 0.50), (5.5, 0.50), (7.5, 0.70), (8.25, 0.97), (11.9, 1.00), (12.1, 0.78), (12.9, 0.78),
        (13.1, 0.98), (17.0, 0.95), (17.5, 0.62), (22.0, 0.55), (24, 0.50),
    ),
    ("factory", "saturday"): ((0, 0.42), (8, 0.48), (9, 0.62), (17, 0.62), (18, 0.45), (24, 0.42)),
    ("factory", "off"): ((0, 0.30), (24, 0.30)),
    ("retail", "work"): (
        (0, 0.28), (7, 0.28), (8.5, 0.50), (10, 0.85), (13, 0.90), (15, 0.88), (18, 0.93), (21, 0.86),
        (21.5, 0.50), (22.5, 0.30), (24, 0.28),
    ),
    ("retail", "busy"): (
        (0, 0.28), (7, 0.28), (8.5, 0.52), (10, 0.92), (13, 0.98), (15, 0.96), (18, 1.00), (21, 0.92),
        (21.5, 0.52), (22.5, 0.30), (24, 0.28),
    ),
    ("retail", "off"): ((0, 0.28), (24, 0.28)),
    ("warehouse", "work"): (
        (0, 0.38), (5.5, 0.40), (6.5, 0.62), (8, 0.70), (12, 0.66), (13, 0.70), (18, 0.68), (20, 0.55),
        (22, 0.42), (24, 0.38),
    ),
    ("warehouse", "off"): ((0, 0.35), (8, 0.42), (17, 0.42), (18, 0.35), (24, 0.35)),
}  # fmt: skip

# Seasonal factor: base + summer × (July–Sept bump) + winter × (January bump) [-].
_SEASON: Final[dict[str, tuple[float, float, float]]] = {
    "office": (0.82, 0.18, 0.10),
    "factory": (0.93, 0.07, 0.03),
    "retail": (0.85, 0.15, 0.07),
    "warehouse": (0.90, 0.10, 0.05),
}

_FIXED_HOLIDAYS: Final = frozenset(
    {(1, 1), (2, 11), (2, 23), (4, 29), (5, 3), (5, 4), (5, 5), (8, 11), (11, 3), (11, 23)}
)
# (month, week number, weekday Monday=0): Coming of Age, Marine, Respect for the Aged, Sports Day.
_HAPPY_MONDAYS: Final = ((1, 2), (7, 3), (9, 3), (10, 2))


def _equinox_days(year: int) -> tuple[int, int]:
    """Day of month of the vernal (March) and autumnal (September) equinox holidays, 1980–2099."""
    leap_shift = (year - 1980) // 4
    spring = int(20.8431 + 0.242194 * (year - 1980)) - leap_shift
    autumn = int(23.2488 + 0.242194 * (year - 1980)) - leap_shift
    return spring, autumn


def _is_plain_holiday(d: date) -> bool:
    if (d.month, d.day) in _FIXED_HOLIDAYS:
        return True
    for month, week in _HAPPY_MONDAYS:
        if d.month == month and d.weekday() == 0 and (d.day - 1) // 7 + 1 == week:
            return True
    spring, autumn = _equinox_days(d.year)
    return (d.month, d.day) in {(3, spring), (9, autumn)}


@lru_cache(maxsize=4096)
def is_holiday(d: date) -> bool:
    """Japanese national holiday (approximate rules, see module docstring), including substitutes."""
    if _is_plain_holiday(d):
        return True
    if d.weekday() == 6:
        return False
    # Substitute holiday: the first non-holiday after a run of holidays that includes a Sunday.
    prev = d - timedelta(days=1)
    while _is_plain_holiday(prev):
        if prev.weekday() == 6:
            return True
        prev -= timedelta(days=1)
    return False


def day_type(kind: str, d: date) -> str:
    """Which profile of ``kind`` applies on JST date ``d``."""
    new_year = (d.month == 12 and d.day >= 29) or (d.month == 1 and d.day <= 3)
    off_day = d.weekday() == 6 or is_holiday(d)
    if kind == "retail":
        if (d.month, d.day) == (1, 1):
            return "off"
        return "busy" if off_day or d.weekday() == 5 else "work"
    if new_year or off_day:
        return "off"
    if kind == "factory":
        if d.month == 8 and 13 <= d.day <= 16:
            return "off"
        return "saturday" if d.weekday() == 5 else "work"
    if kind == "office":
        return "off" if d.weekday() == 5 else "work"
    return "work"  # warehouse: Monday–Saturday


@lru_cache(maxsize=32)
def _profile_minutes(kind: str, dtype: str) -> NDArray[np.float64]:
    knots = PROFILES[(kind, dtype)]
    hours = (np.arange(MINUTES_PER_DAY) + 0.5) / 60.0
    out: NDArray[np.float64] = np.interp(hours, [h for h, _ in knots], [f for _, f in knots])
    out.setflags(write=False)
    return out


def seasonal_factor(kind: str, day_of_year: int) -> float:
    """Multiplier [-] on the profile for air-conditioning season; 1.0 at the summer maximum."""
    base, summer, winter = _SEASON[kind]
    phase = 2.0 * math.pi / 365.25
    return (
        base
        + summer * max(0.0, math.cos(phase * (day_of_year - 225)))
        + winter * max(0.0, math.cos(phase * (day_of_year - 25)))
    )


def site_load_w(
    seed: int, site_key: int, day: int, *, kind: str, peak_load_w: int, jst_date: date
) -> NDArray[np.float64]:
    """Mean load [W] of each minute of JST day ``day`` [d since epoch] (calendar date ``jst_date``)."""
    rng = seeding.stream(seed, seeding.SITE_LOAD, site_key, seeding.day_key(day))
    level = float(rng.normal(1.0, 0.04))
    slow_knots = rng.normal(0.0, 0.04, 26)
    fast_raw = rng.normal(0.0, 0.03 * math.sqrt(3.0), MINUTES_PER_DAY + 2)

    hours = (np.arange(MINUTES_PER_DAY) + 0.5) / 60.0
    slow = np.interp(hours, np.arange(26, dtype=np.float64), slow_knots)
    fast = np.convolve(fast_raw, np.full(3, 1.0 / 3.0), mode="valid")

    shape = _profile_minutes(kind, day_type(kind, jst_date))
    season = seasonal_factor(kind, jst_date.timetuple().tm_yday)
    load = peak_load_w * shape * season * level * (1.0 + slow + fast)
    out: NDArray[np.float64] = np.clip(load, 0.0, float(peak_load_w))
    return out
