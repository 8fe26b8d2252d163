"""Seeded weather: a clear-sky index and an air temperature per site per minute of a JST day.

Sky type of the day
    Each site's day is ``clear``, ``partly`` (cloudy) or ``overcast``. The type comes from a
    latent standard-normal variable ``z = ρ·z_area + √(1-ρ²)·z_site`` with ρ = 0.92 (two sites of
    one area are thus correlated at ρ² ≈ 0.85), mapped through the normal CDF onto the monthly
    climatology of the site's climate class (sunny Pacific winters, grey Sea-of-Japan winters,
    tsuyu in June–July, ...). ``z_area`` is shared by every site of a grid area, so weather is
    strongly correlated within an area but not identical; it is a short moving average over the
    area's last three daily innovations, so weather also persists for a couple of days. Where
    ``z`` falls inside its type's probability band sets the severity (how many clouds on a partly
    cloudy day, how dark an overcast day is).

Intra-day clear-sky index ``k`` [-] (GHI / clear-sky GHI), one value per minute
    clear     ``k ≈ 0.95–1.0`` with a few percent of haze variation;
    partly    sunny minutes (``k ≈ 1``) alternate with shaded ones (``k ≈ 0.25–0.55``); the shaded
              fraction of the day is 20–75 %, cloud passages last minutes, and an hourly "slow"
              component shared across the grid area makes some hours cloudier than others;
    overcast  ``k ≈ 0.1–0.4`` with slow variation.

Air temperature [°C]
    Annual mean and seasonal swing from latitude (fitted to Sapporo, Tokyo and Naha normals),
    an area-wide daily anomaly, and a diurnal cycle peaking at 14:30 whose range depends on the
    sky type.

All draws come from streams keyed by (seed, area or site, JST day) — see :mod:`crev.sim.seeding`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from crev.sim import seeding

SKY_KINDS: Final[tuple[str, ...]] = ("clear", "partly", "overcast")

MINUTES_PER_DAY: Final = 1440
_AREA_CORRELATION: Final = 0.92  # ρ between a site's and its area's latent sky variable [-]
_SLOW_CORRELATION: Final = 0.7  # same for the hourly cloudiness component [-]
_PERSISTENCE: Final = (1.0, 0.6, 0.3)  # MA weights of today's, yesterday's, ... area innovation [-]
_FAST_WINDOW: Final = 9  # cloud-passage smoothing window [min]

# Monthly (P(clear), P(partly)) [-] per climate class, January first; P(overcast) is the rest.
CLIMATOLOGY: Final[dict[str, tuple[tuple[float, float], ...]]] = {
    "pacific": (
        (0.60, 0.28), (0.55, 0.30), (0.45, 0.32), (0.42, 0.33), (0.45, 0.33), (0.20, 0.35),
        (0.30, 0.38), (0.45, 0.38), (0.30, 0.38), (0.40, 0.33), (0.50, 0.30), (0.60, 0.28),
    ),
    "japan_sea": (
        (0.08, 0.27), (0.12, 0.30), (0.30, 0.35), (0.42, 0.33), (0.48, 0.32), (0.30, 0.35),
        (0.32, 0.38), (0.45, 0.35), (0.35, 0.35), (0.35, 0.35), (0.20, 0.35), (0.08, 0.27),
    ),
    "subtropical": (
        (0.15, 0.45), (0.18, 0.45), (0.25, 0.42), (0.28, 0.42), (0.18, 0.40), (0.25, 0.40),
        (0.45, 0.40), (0.42, 0.40), (0.38, 0.40), (0.32, 0.42), (0.22, 0.45), (0.15, 0.45),
    ),
}  # fmt: skip


@dataclass(frozen=True)
class AreaDay:
    """What every site of one grid area shares on one JST day."""

    z: float  # latent sky variable [-], standard normal
    slow: NDArray[np.float64]  # hourly cloudiness component at 26 knots, 00:00..25:00 JST [-]
    temp_anomaly_c: float  # departure of the day's mean air temperature from normal [K]


@dataclass(frozen=True)
class SiteWeather:
    """One site's weather over the 1440 minutes of one JST day."""

    sky: str  # one of SKY_KINDS
    clearsky_index: NDArray[np.float64]  # [-], shape (1440,)
    temp_air_c: NDArray[np.float64]  # [°C], shape (1440,)


def area_day(seed: int, area_index: int, day: int) -> AreaDay:
    """Shared weather drivers of grid area number ``area_index`` on JST day ``day`` [d since epoch]."""
    weights = np.asarray(_PERSISTENCE)
    innovations = np.array(
        [
            seeding.stream(seed, seeding.AREA_WEATHER, area_index, seeding.day_key(day - lag), 0).standard_normal()
            for lag in range(len(weights))
        ]
    )
    z = float(weights @ innovations / math.sqrt(float(weights @ weights)))
    rng = seeding.stream(seed, seeding.AREA_WEATHER, area_index, seeding.day_key(day), 1)
    slow = rng.standard_normal(26)
    return AreaDay(z=z, slow=slow, temp_anomaly_c=float(rng.normal(0.0, 2.0)))


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _moving_average(x: NDArray[np.float64], window: int) -> NDArray[np.float64]:
    """'valid' moving average of ``x`` over ``window`` samples."""
    kernel = np.full(window, 1.0 / window)
    out: NDArray[np.float64] = np.convolve(x, kernel, mode="valid")
    return out


def _hourly_to_minutes(knots: NDArray[np.float64]) -> NDArray[np.float64]:
    """Linear interpolation of 26 hourly knots (00:00..25:00) to the 1440 minute midpoints."""
    hours = (np.arange(MINUTES_PER_DAY) + 0.5) / 60.0
    out: NDArray[np.float64] = np.interp(hours, np.arange(len(knots), dtype=np.float64), knots)
    return out


def normal_temperature_c(latitude_deg: float, day_of_year: int) -> float:
    """Climatological daily mean air temperature [°C] at a latitude [deg] on a day of year [d]."""
    annual_mean = 9.2 + (43.06 - latitude_deg) * 0.83
    half_swing = 5.9 + (latitude_deg - 26.2) * 0.39
    return annual_mean - half_swing * math.cos(2.0 * math.pi * (day_of_year - 25) / 365.25)


def site_weather(
    seed: int,
    site_key: int,
    day: int,
    *,
    month: int,
    day_of_year: int,
    climate: str,
    latitude_deg: float,
    area: AreaDay,
) -> SiteWeather:
    """Weather of one site (``site_key`` from :func:`crev.sim.seeding.text_key`) on JST day ``day``.

    ``month`` [1..12] and ``day_of_year`` [1..366] are those of the JST date.
    """
    rng = seeding.stream(seed, seeding.SITE_WEATHER, site_key, seeding.day_key(day))
    z_site = float(rng.standard_normal())
    slow_site = rng.standard_normal(26)
    fast_raw = rng.standard_normal(MINUTES_PER_DAY + _FAST_WINDOW - 1)
    shade_depth = float(rng.uniform(0.25, 0.55))

    rho = _AREA_CORRELATION
    u = _normal_cdf(rho * area.z + math.sqrt(1.0 - rho * rho) * z_site)
    p_clear, p_partly = CLIMATOLOGY[climate][month - 1]
    if u < p_clear:
        sky, severity = "clear", u / p_clear
    elif u < p_clear + p_partly:
        sky, severity = "partly", (u - p_clear) / p_partly
    else:
        sky, severity = "overcast", (u - p_clear - p_partly) / (1.0 - p_clear - p_partly)

    rs = _SLOW_CORRELATION
    slow = _hourly_to_minutes(rs * area.slow + math.sqrt(1.0 - rs * rs) * slow_site)
    fast = _moving_average(fast_raw, _FAST_WINDOW) * math.sqrt(_FAST_WINDOW)  # unit variance

    if sky == "clear":
        k = (1.0 - 0.05 * severity) * (1.0 + 0.012 * slow + 0.004 * fast)
        k = np.clip(k, 0.85, 1.0)
        diurnal_range = 9.0
    elif sky == "partly":
        cloud_fraction = 0.20 + 0.55 * severity
        score = fast + 0.8 * slow
        kth = min(MINUTES_PER_DAY - 1, int(cloud_fraction * MINUTES_PER_DAY))
        threshold = np.partition(score, kth)[kth]
        sunny = np.clip(1.0 + 0.02 * fast, 0.9, 1.06)
        shaded = np.clip(shade_depth * np.exp(0.15 * fast), 0.1, 0.8)
        stepped = np.where(score < threshold, shaded, sunny)
        # Cloud edges take a minute or two to pass: soften the steps with a 3-minute average.
        k = _moving_average(np.concatenate(([stepped[0]], stepped, [stepped[-1]])), 3)
        diurnal_range = 7.0
    else:
        level = 0.40 - 0.28 * severity
        k = np.clip(level * np.exp(0.3 * slow + 0.05 * fast), 0.03, 0.85)
        diurnal_range = 3.0

    hours = (np.arange(MINUTES_PER_DAY) + 0.5) / 60.0
    mean_c = normal_temperature_c(latitude_deg, day_of_year) + area.temp_anomaly_c
    temp = mean_c + 0.5 * diurnal_range * np.cos(2.0 * math.pi * (hours - 14.5) / 24.0)
    return SiteWeather(sky=sky, clearsky_index=np.asarray(k, dtype=np.float64), temp_air_c=temp)
