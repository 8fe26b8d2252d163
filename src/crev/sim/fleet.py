"""A seeded fleet of Japanese business sites with rooftop PV, metered like a DGC would meter them.

Overview
--------
:func:`make_fleet` invents ``n_sites`` plausible sites (names, owners, coordinates in real cities
spread over at least six grid areas, PV size and orientation, load kind and peak demand).
:class:`FleetSimulator` then produces, for any metering interval, the energy each site's meters
record: PV generation ``G``, grid import ``I`` and grid export ``E`` [Wh].

Everything is a pure function of the seeds: the only randomness is :class:`numpy.random.Generator`
streams derived from the seed and from *what* is being drawn (see :mod:`crev.sim.seeding`), so the
same inputs give byte-identical outputs regardless of call order, and nothing reads the wall clock
or the network.

Model, per site and per JST day (UTC+9, no daylight saving), at 1-minute resolution
--------------------------------------------------------------------------------
* Weather (:mod:`crev.sim.weather`): the day is clear, partly cloudy or overcast, drawn from a
  monthly climatology of the site's climate class and correlated within the grid area; a
  per-minute clear-sky index gives intra-day variability (passing clouds), plus an air temperature.
* PV (:mod:`crev.sim.solar`): pvlib sun position, simplified-Solis clear sky × clear-sky index,
  Erbs decomposition, Hay–Davies transposition to the module plane, SAPM cell temperature,
  PVWatts DC and inverter models. AC power is capped at the rated capacity (and at the meter
  limit below), is zero at night and ages by 0.5 %/yr from the commissioning date.
* Load (:mod:`crev.sim.load`): office / factory / retail / warehouse day profiles in JST with
  weekends, Japanese holidays, seasonal air-conditioning demand and seeded noise.

Metering
--------
Each minute's mean power is turned into an integer energy in mWh by flooring
(``floor(P [W] × 1000 / 60)``). Per minute ``m`` the meter nets instantaneously:
``import_m = max(load_m − gen_m, 0)`` and ``export_m = max(gen_m − load_m, 0)`` [mWh].

* ``generation_wh`` is read from a cumulative generation register in whole Wh that restarts at
  00:00 JST: ``G = ⌊ΣG_mWh(00:00..end)/1000⌋ − ⌊ΣG_mWh(00:00..start)/1000⌋``. Hence generation is
  exactly additive: a 30-minute interval's G equals the sum of its two 15-minute G's.
* ``import_wh`` and ``export_wh`` are the interval totals of ``import_m`` and ``export_m``, each
  **floored** to whole Wh: ``I = ⌊Σ import_m / 1000⌋``, ``E = ⌊Σ export_m / 1000⌋``. Splitting an
  interval into ``k`` parts therefore can lose up to ``k − 1`` Wh of I and of E in the parts'
  sum (at most 1 Wh per sub-interval). One interval can contain both import and export.

Guarantees: all three values are ints >= 0; ``E <= G`` (export minutes never exceed generation
minutes and ``⌊x⌋ <= ⌊c + x⌋ − ⌊c⌋``); and ``G <= pv_capacity_w × interval_s / 3600``, because
the power is capped at the *meter limit* ``60 W × ⌊pv_capacity_w / 60 W⌋`` (a whole number of Wh
per minute, < 60 W below the rating), so the integer register can never round above the rating.

Performance
-----------
All 1440 minutes of a day are computed at once per site (numpy/pvlib vectorised), turned into
cumulative registers and cached for the two most recently used JST days; :meth:`interval` then
costs a few array look-ups for the whole fleet.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Final, TypeVar

import numpy as np
from numpy.typing import NDArray

from crev.sim import catalog, load, seeding, solar, weather

JST_OFFSET_S: Final = 9 * 3600  # JST − UTC [s]
DAY_S: Final = 86_400  # [s]
MINUTES_PER_DAY: Final = 1440
CACHE_DAYS: Final = 2  # JST days kept in the simulator's cache [d]
_EPOCH: Final = date(1970, 1, 1)


@dataclass(frozen=True)
class SiteSpec:
    """A business site with rooftop PV behind a DGC meter."""

    site_id: str  # e.g. "site-007"
    name: str  # English business name, e.g. "Osaka Foods Plant 2"
    name_ja: str  # the same in Japanese, e.g. "大阪フーズ 第2工場"
    owner_id: str  # participant id, lowercase a-z0-9-, e.g. "osaka-foods"
    latitude: float  # [deg], north positive
    longitude: float  # [deg], east positive
    grid_area: str  # one of crev.sim.catalog.GRID_AREAS
    pv_capacity_w: int  # rated PV AC capacity [W]
    surface_tilt_deg: float  # module tilt from horizontal [deg]
    surface_azimuth_deg: float  # module azimuth, pvlib convention (180 = south) [deg]
    load_kind: str  # "office" | "factory" | "retail" | "warehouse"
    peak_load_w: int  # maximum demand [W]
    commissioned: str  # ISO date the PV entered service, e.g. "2019-04-01"


@dataclass(frozen=True)
class IntervalEnergy:
    """What a site's meters record over one interval (see the module docstring for rounding)."""

    site_id: str
    generation_wh: int  # G: PV generation [Wh], >= 0
    import_wh: int  # I: bought from the grid [Wh], >= 0
    export_wh: int  # E: sold to the grid [Wh], >= 0, <= generation_wh


# ---------------------------------------------------------------------------------------------
# Fleet generation
# ---------------------------------------------------------------------------------------------

# Log-uniform ranges per load kind: PV AC capacity [kW] and peak load / PV capacity [-].
_CAPACITY_KW: Final[dict[str, tuple[float, float]]] = {
    "office": (10.0, 120.0),
    "factory": (80.0, 500.0),
    "retail": (20.0, 250.0),
    "warehouse": (50.0, 500.0),
}
_LOAD_RATIO: Final[dict[str, tuple[float, float]]] = {
    "office": (0.5, 2.2),
    "factory": (0.8, 3.0),
    "retail": (0.7, 2.5),
    "warehouse": (0.35, 1.4),
}
# Peak load / PV capacity [-] forced onto one site each if the draw produced no clear case:
# 0.5 always leaves a surplus at a sunny noon (clear-sky PV ≈ 0.8 × capacity), 2.0 never does.
_SURPLUS_RATIO: Final = 0.5
_DEFICIT_RATIO: Final = 2.0
_MIN_AREAS: Final = 6
_COMMISSIONED_FIRST: Final = date(2013, 4, 1)
_COMMISSIONED_LAST: Final = date(2024, 12, 31)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def make_fleet(n_sites: int = 40, seed: int = 1) -> list[SiteSpec]:
    """``n_sites`` [-] invented business sites, a pure function of (``n_sites``, ``seed``).

    Sites get ids ``site-001``, ``site-002``, ... (at least 3 digits). With 6 or more sites at
    least 6 grid areas are covered; the rest are spread roughly by regional electricity demand.
    Owners run ~1.5 sites on average. Peak loads are drawn relative to the PV size so that at a
    sunny noon some sites export a surplus and others still import (with 2 or more sites, at least
    one of each kind is guaranteed).
    """
    if isinstance(n_sites, bool) or not isinstance(n_sites, int) or n_sites < 1:
        raise ValueError(f"n_sites must be a positive integer, got {n_sites!r}")
    seed = seeding.check_seed(seed)
    rng = seeding.stream(seed, seeding.FLEET, n_sites)

    # Owners: each owns one site, the remaining sites go to random owners (~1.5 sites per owner).
    n_owners = max(1, int(n_sites / 1.5 + 0.5))
    owner_seq = np.concatenate([np.arange(n_owners), rng.integers(0, n_owners, n_sites - n_owners)])
    owner_of = [int(o) for o in owner_seq[rng.permutation(n_sites)]]

    # Grid areas: the first sites cover distinct areas, the rest follow regional demand.
    weights = np.array([catalog.AREA_WEIGHTS[a] for a in catalog.GRID_AREAS])
    weights = weights / weights.sum()
    n_distinct = min(n_sites, _MIN_AREAS)
    areas = [int(a) for a in rng.choice(len(catalog.GRID_AREAS), size=n_distinct, replace=False, p=weights)]
    areas += [int(a) for a in rng.choice(len(catalog.GRID_AREAS), size=n_sites - n_distinct, p=weights)]
    areas = [areas[i] for i in rng.permutation(n_sites)]
    cities: list[catalog.City] = []
    for a in areas:
        in_area = [c for c in catalog.CITIES if c.grid_area == catalog.GRID_AREAS[a]]
        cities.append(in_area[int(rng.integers(0, len(in_area)))])

    # Owner names: a brand or the city of the owner's first site, plus a line of business.
    first_site = {o: i for i, o in reversed(list(enumerate(owner_of)))}
    owner_names: list[tuple[str, str]] = []
    owner_industry: list[catalog.Industry] = []
    used: set[str] = set()
    for o in range(n_owners):
        for attempt in range(100):
            industry = catalog.INDUSTRIES[int(rng.integers(0, len(catalog.INDUSTRIES)))]
            if rng.random() < 0.45:
                city = cities[first_site[o]]
                prefix = (city.name, city.name_ja)
            else:
                prefix = catalog.BRANDS[int(rng.integers(0, len(catalog.BRANDS)))]
            en, ja = f"{prefix[0]} {industry.name}", f"{prefix[1]}{industry.name_ja}"
            if attempt >= 50:  # name space exhausted (very large fleets): number the company
                en, ja = f"{en} {attempt - 48}", f"{ja}{attempt - 48}"
            if _slug(en) not in used:
                break
        used.add(_slug(en))
        owner_names.append((en, ja))
        owner_industry.append(industry)

    kinds: list[str] = []
    for o in owner_of:
        options = owner_industry[o].kinds
        p = np.array([w for _, w in options])
        kinds.append(options[int(rng.choice(len(options), p=p / p.sum()))][0])

    capacities = [round(_log_uniform(rng, _CAPACITY_KW[k]) * 2.0) * 500 for k in kinds]
    ratios = [_log_uniform(rng, _LOAD_RATIO[k]) for k in kinds]
    if n_sites >= 2:
        lowest = int(np.argmin(ratios))
        if ratios[lowest] > _SURPLUS_RATIO:
            ratios[lowest] = _SURPLUS_RATIO
        highest = int(np.argmax(ratios))
        if ratios[highest] < _DEFICIT_RATIO:
            ratios[highest] = _DEFICIT_RATIO

    width = max(3, len(str(n_sites)))
    span_days = (_COMMISSIONED_LAST - _COMMISSIONED_FIRST).days
    specs: list[SiteSpec] = []
    for i in range(n_sites):
        kind, city = kinds[i], cities[i]
        flat_roof = kind in ("factory", "warehouse")
        tilt = float(rng.uniform(5.0, 15.0) if flat_roof else rng.uniform(10.0, 30.0))
        azimuth = float(np.clip(rng.normal(180.0, 20.0), 120.0, 240.0))
        commissioned = _COMMISSIONED_FIRST + timedelta(days=int(rng.integers(0, span_days + 1)))
        specs.append(
            SiteSpec(
                site_id=f"site-{i + 1:0{width}d}",
                name="",
                name_ja="",
                owner_id=_slug(owner_names[owner_of[i]][0]),
                latitude=round(city.latitude + float(rng.uniform(-0.03, 0.03)), 4),
                longitude=round(city.longitude + float(rng.uniform(-0.03, 0.03)), 4),
                grid_area=city.grid_area,
                pv_capacity_w=capacities[i],
                surface_tilt_deg=round(tilt * 2.0) / 2.0,
                surface_azimuth_deg=round(azimuth),
                load_kind=kind,
                peak_load_w=max(1000, round(capacities[i] * ratios[i] / 100.0) * 100),
                commissioned=commissioned.isoformat(),
            )
        )
    return _name_sites(specs, owner_of, owner_names, cities)


def _name_sites(
    specs: list[SiteSpec],
    owner_of: list[int],
    owner_names: list[tuple[str, str]],
    cities: list[catalog.City],
) -> list[SiteSpec]:
    """Fill in ``name``/``name_ja``: "<owner> <City> <facility>", numbered where ambiguous."""
    groups: dict[tuple[int, str], list[int]] = {}
    for i, spec in enumerate(specs):
        groups.setdefault((owner_of[i], spec.load_kind), []).append(i)
    named: list[SiteSpec] = []
    for i, spec in enumerate(specs):
        owner_en, owner_ja = owner_names[owner_of[i]]
        fac_en, fac_ja = catalog.FACILITY[spec.load_kind]
        city = cities[i]
        siblings = groups[(owner_of[i], spec.load_kind)]
        if spec.load_kind == "factory" and len(siblings) > 1:
            k = siblings.index(i) + 1
            en, ja = f"Plant {k}", f"第{k}工場"
        else:
            same_city = [j for j in siblings if cities[j] == city]
            en, ja = f"{city.name} {fac_en}", f"{city.name_ja}{fac_ja}"
            if len(same_city) > 1:
                k = same_city.index(i) + 1
                en, ja = f"{en} {k}", f"{city.name_ja}第{k}{fac_ja}"
        named.append(replace(spec, name=f"{owner_en} {en}", name_ja=f"{owner_ja} {ja}"))
    return named


# ---------------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayProfile:
    """One JST day of the whole fleet at 1-minute resolution (arrays are read-only).

    Row ``j`` of every array belongs to ``site_ids[j]``; column ``m`` to minute ``m`` after 00:00 JST.
    """

    day_start_ts: int  # unix time of 00:00 JST [s]
    jst_date: str  # ISO date
    site_ids: tuple[str, ...]
    sky: tuple[str, ...]  # each site's sky type: "clear" | "partly" | "overcast"
    generation_w: NDArray[np.float64]  # mean PV power per minute [W], shape (n, 1440)
    load_w: NDArray[np.float64]  # mean load per minute [W], shape (n, 1440)
    # generation since 00:00 JST at each minute boundary, floored [Wh], shape (n, 1441)
    generation_register_wh: NDArray[np.int64]
    import_mwh: NDArray[np.int64]  # cumulative import at each minute boundary [mWh], (n, 1441)
    export_mwh: NDArray[np.int64]  # cumulative export at each minute boundary [mWh], (n, 1441)


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _check_interval_s(interval_s: object) -> int:
    value = _check_int("interval_s", interval_s)
    if value <= 0 or value % 60 != 0 or 1800 % value != 0:
        raise ValueError(f"interval_s must be a multiple of 60 that divides 1800 [s], got {value}")
    return value


def _climate_of(spec: SiteSpec) -> str:
    """Climate class of the catalogue city in the site's grid area nearest to the site."""
    candidates = [c for c in catalog.CITIES if c.grid_area == spec.grid_area]
    nearest = min(
        candidates,
        key=lambda c: (
            (c.latitude - spec.latitude) ** 2
            + ((c.longitude - spec.longitude) * math.cos(math.radians(spec.latitude))) ** 2
        ),
    )
    return nearest.climate


def _cumulative(per_minute: NDArray[np.int64]) -> NDArray[np.int64]:
    """Prefix sums along the minutes with a leading zero column: shape (n, 1440) → (n, 1441)."""
    out = np.zeros((per_minute.shape[0], per_minute.shape[1] + 1), dtype=np.int64)
    np.cumsum(per_minute, axis=1, out=out[:, 1:])
    return out


_T = TypeVar("_T", bound=np.generic)


def _readonly(a: NDArray[_T]) -> NDArray[_T]:
    a.setflags(write=False)
    return a


class FleetSimulator:
    """Meter readings of a fleet, interval by interval; see the module docstring for the model.

    ``seed`` [-] drives weather and load noise (independently of the seed used by
    :func:`make_fleet`); ``interval_s`` [s] is the metering interval: a multiple of 60 that
    divides 1800.
    """

    def __init__(self, sites: Sequence[SiteSpec], seed: int, interval_s: int = 1800) -> None:
        self._interval_s = _check_interval_s(interval_s)
        self._seed = seeding.check_seed(seed)
        self._sites: tuple[SiteSpec, ...] = tuple(sites)
        ids = [s.site_id for s in self._sites]
        if len(set(ids)) != len(ids):
            raise ValueError("sites must have distinct site_id values")
        for s in self._sites:
            if s.grid_area not in catalog.GRID_AREAS:
                raise ValueError(f"{s.site_id}: unknown grid_area {s.grid_area!r}")
            if s.load_kind not in catalog.LOAD_KINDS:
                raise ValueError(f"{s.site_id}: unknown load_kind {s.load_kind!r}")
            if s.pv_capacity_w <= 0 or s.peak_load_w < 0:
                raise ValueError(f"{s.site_id}: pv_capacity_w must be > 0 and peak_load_w >= 0 [W]")
        self._site_ids: tuple[str, ...] = tuple(ids)
        self._site_keys = [seeding.text_key(i) for i in ids]
        self._area_index = [catalog.GRID_AREAS.index(s.grid_area) for s in self._sites]
        self._climates = [_climate_of(s) for s in self._sites]
        self._commissioned = [date.fromisoformat(s.commissioned) for s in self._sites]
        # Highest power [W] whose 1-minute energy is a whole number of Wh not above the rating.
        self._meter_limit_w = np.array([60.0 * (s.pv_capacity_w // 60) for s in self._sites])
        self._cache: OrderedDict[int, DayProfile] = OrderedDict()

    @property
    def sites(self) -> tuple[SiteSpec, ...]:
        return self._sites

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def interval_s(self) -> int:
        """Metering interval [s]."""
        return self._interval_s

    def interval(self, start_ts: int) -> list[IntervalEnergy]:
        """Energy of every site for the interval [start_ts, start_ts + interval_s).

        ``start_ts`` is unix seconds [s], aligned to ``interval_s`` (ValueError otherwise). The list
        follows the order of ``sites``.
        """
        ts = _check_int("start_ts", start_ts)
        if ts % self._interval_s != 0:
            raise ValueError(f"start_ts must be a multiple of interval_s={self._interval_s} [s], got {ts}")
        local = ts + JST_OFFSET_S
        day, m0 = local // DAY_S, local % DAY_S // 60
        m1 = m0 + self._interval_s // 60
        prof = self._day(day)
        reg = prof.generation_register_wh
        gen = (reg[:, m1] - reg[:, m0]).tolist()
        imp = ((prof.import_mwh[:, m1] - prof.import_mwh[:, m0]) // 1000).tolist()
        exp = ((prof.export_mwh[:, m1] - prof.export_mwh[:, m0]) // 1000).tolist()
        return [
            IntervalEnergy(site_id=s, generation_wh=g, import_wh=i, export_wh=e)
            for s, g, i, e in zip(self._site_ids, gen, imp, exp, strict=True)
        ]

    def day_profile(self, ts: int) -> DayProfile:
        """The minute-level profile of the JST day containing unix time ``ts`` [s] (cached)."""
        return self._day((_check_int("ts", ts) + JST_OFFSET_S) // DAY_S)

    def _day(self, day: int) -> DayProfile:
        hit = self._cache.get(day)
        if hit is not None:
            self._cache.move_to_end(day)
            return hit
        prof = self._compute_day(day)
        self._cache[day] = prof
        while len(self._cache) > CACHE_DAYS:
            self._cache.popitem(last=False)
        return prof

    def _compute_day(self, day: int) -> DayProfile:
        """Simulate JST day number ``day`` [d since 1970-01-01] for every site."""
        n = len(self._sites)
        day_start = day * DAY_S - JST_OFFSET_S
        jst_date = _EPOCH + timedelta(days=day)
        doy = jst_date.timetuple().tm_yday
        times = solar.minute_midpoints(day_start)
        areas = {a: weather.area_day(self._seed, a, day) for a in sorted(set(self._area_index))}

        gen_w = np.zeros((n, MINUTES_PER_DAY))
        load_w = np.zeros((n, MINUTES_PER_DAY))
        skies: list[str] = []
        for j, spec in enumerate(self._sites):
            wx = weather.site_weather(
                self._seed,
                self._site_keys[j],
                day,
                month=jst_date.month,
                day_of_year=doy,
                climate=self._climates[j],
                latitude_deg=spec.latitude,
                area=areas[self._area_index[j]],
            )
            skies.append(wx.sky)
            power = solar.pv_ac_power_w(
                times,
                latitude_deg=spec.latitude,
                longitude_deg=spec.longitude,
                tilt_deg=spec.surface_tilt_deg,
                azimuth_deg=spec.surface_azimuth_deg,
                ac_capacity_w=float(spec.pv_capacity_w),
                clearsky_index=wx.clearsky_index,
                temp_air_c=wx.temp_air_c,
                years_in_service=(jst_date - self._commissioned[j]).days / 365.25,
            )
            gen_w[j] = np.minimum(power, self._meter_limit_w[j])
            load_w[j] = load.site_load_w(
                self._seed,
                self._site_keys[j],
                day,
                kind=spec.load_kind,
                peak_load_w=spec.peak_load_w,
                jst_date=jst_date,
            )

        # Whole mWh per minute (floored); the meter nets generation against load minute by minute.
        gen_mwh = np.floor(gen_w * 1000.0 / 60.0).astype(np.int64)
        load_mwh = np.floor(load_w * 1000.0 / 60.0).astype(np.int64)
        net = gen_mwh - load_mwh
        return DayProfile(
            day_start_ts=day_start,
            jst_date=jst_date.isoformat(),
            site_ids=self._site_ids,
            sky=tuple(skies),
            generation_w=_readonly(gen_w),
            load_w=_readonly(load_w),
            generation_register_wh=_readonly(_cumulative(gen_mwh) // 1000),
            import_mwh=_readonly(_cumulative(np.maximum(-net, 0))),
            export_mwh=_readonly(_cumulative(np.maximum(net, 0))),
        )
