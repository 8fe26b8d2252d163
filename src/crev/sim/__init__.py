"""Seeded, deterministic fleet simulator: Japanese business sites with rooftop PV and their meters.

See :mod:`crev.sim.fleet` for the model. Typical use::

    from crev.sim import FleetSimulator, make_fleet

    sim = FleetSimulator(make_fleet(40, seed=1), seed=7, interval_s=1800)
    readings = sim.interval(1_767_225_600)  # 2026-01-01 09:00 JST
"""

from crev.sim.fleet import DayProfile, FleetSimulator, IntervalEnergy, SiteSpec, make_fleet

__all__ = ["DayProfile", "FleetSimulator", "IntervalEnergy", "SiteSpec", "make_fleet"]
