"""The clocks a DGC agent runs on: the wall clock for a real site, a scaled one for simulations.

Times are unix seconds [s]; ``wall_until`` answers in wall-clock seconds, so a loop can sleep
until the simulated time it needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    def now(self) -> int:
        """Simulated (or wall) unix time [s]."""
        ...

    def wall_until(self, t: int) -> float:
        """Wall seconds until the clock reads ``t`` (≤ 0 if it already does)."""
        ...


@dataclass
class WallClock:
    """The real time."""

    def now(self) -> int:
        return int(time.time())

    def wall_until(self, t: int) -> float:
        return t - time.time()


@dataclass
class ScaledClock:
    """Simulated time ``min(origin + (wall − wall_origin) × speed, wall)`` [unix s]: it catches up
    from a past ``origin`` at ``speed``, then runs in real time. It never runs ahead of the wall
    clock, since the ledger refuses an interval ending after its block time (+ ``max_future_s``).
    A `crev dgc run` process and simulated devices (``crev sim devices``, which use this very
    class) given the same three numbers share one clock."""

    origin: int
    speed: float = 1.0
    wall_origin: float = field(default_factory=time.time)

    def now(self) -> int:
        return self.at(time.time())

    def at(self, wall: float) -> int:
        """The simulated time when the wall clock reads ``wall`` [unix s]."""
        return min(self.origin + int((wall - self.wall_origin) * self.speed), int(wall))

    def wall_until(self, t: int) -> float:
        """Wall seconds until the clock reads ``t``: both the scaled time and the wall must reach it."""
        return max((t - self.origin) / self.speed + self.wall_origin, float(t)) - time.time()
