"""Fleet simulator speed: computing a simulated day for N sites, and one interval() call after it.

    python bench/bench_sim.py [--sites 40] [--days 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(__file__))

from common import machine, now
from crev.core.units import parse_time
from crev.sim.fleet import FleetSimulator, make_fleet


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=40)
    ap.add_argument("--days", type=int, default=7)
    a = ap.parse_args()
    print(f"machine: {machine()}")
    sim = FleetSimulator(make_fleet(a.sites, 1), 1, 1800)
    start = parse_time("2026-06-01")
    firsts: list[float] = []
    rest: list[float] = []
    for day in range(a.days):
        t0 = start + day * 86400
        t = now()
        sim.interval(t0)  # computes the day
        firsts.append(now() - t)
        for k in range(1, 48):
            t = now()
            sim.interval(t0 + k * 1800)
            rest.append(now() - t)
    print(f"one simulated day for {a.sites} sites (1-minute resolution): "
          f"median {statistics.median(firsts) * 1000:.0f} ms, "
          f"max {max(firsts) * 1000:.0f} ms over {a.days} days")
    print(f"one interval() call for {a.sites} sites once the day is computed: median "
          f"{statistics.median(rest) * 1e6:.0f} µs, max {max(rest) * 1e6:.0f} µs")
    print(f"so a simulated day costs {(statistics.median(firsts) + 47 * statistics.median(rest)) * 1000:.0f} ms "
          f"of simulation, against {86400:,} s of real time")


if __name__ == "__main__":
    main()
