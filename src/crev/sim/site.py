"""The physics behind a simulated site's devices: PV, load and the grid point, second by second.

The fleet simulator (:mod:`crev.sim.fleet`) gives each site's *available* PV power and its load,
minute by minute. A real site's inverter may be limited (curtailed) by its DGC, and then the
meters show less generation and less export than the sun allowed. :class:`SitePhysics` integrates
the flows under the inverter's current limit so the simulated smart meter (ECHONET Lite,
``sim/echonet.py``) and the simulated inverter and grid meter (SunSpec Modbus,
``sim/sunspec.py``) all read one consistent site:

* PV output ``pv = min(available, limit)`` [W]; net at the grid point ``net = load − pv`` [W]
  (+ import, − export);
* energies are integrated exactly in joules (W·s) over whole simulated seconds and read in
  whole Wh (floored);
* the smart meter reads the true import and export and fixes them at every 30-minute
  boundary (ECHONET Lite EA/EB); the DGC's own grid meter may read with an error
  (``dgc_export_error_bp``, ``dgc_import_error_bp``), the calibration drift reconciliation finds.

Time comes from a :class:`Clock`: :class:`ScaledClock` runs simulated time faster than the wall
clock (the demo), :class:`ManualClock` is stepped by hand (tests). Threads may share a site (each
simulated device serves its socket on its own thread): every method takes the site's lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from crev.device.clock import ScaledClock as ScaledClock  # the DGC's own: devices and agents agree on the time
from crev.sim.fleet import DAY_S, JST_OFFSET_S, FleetSimulator

SLOT_S = 1800
J_PER_WH = 3600


class Clock(Protocol):
    def now(self) -> int:
        """Simulated unix time [s]."""
        ...


@dataclass
class ManualClock:
    """A clock tests step by hand."""

    t: int

    def now(self) -> int:
        return self.t

    def advance(self, seconds: int) -> int:
        self.t += seconds
        return self.t


class FleetPhysics:
    """A fleet simulator shared by many sites' devices (its day cache is guarded by a lock)."""

    def __init__(self, sim: FleetSimulator) -> None:
        self.sim = sim
        self._lock = threading.Lock()
        self._index = {s.site_id: j for j, s in enumerate(sim.sites)}

    def minute(self, site_id: str, t: int) -> tuple[int, int]:
        """(available PV [W], load [W]) of ``site_id`` in the minute containing ``t`` [unix s]."""
        j = self._index[site_id]
        with self._lock:
            prof = self.sim.day_profile(t)
        m = (t + JST_OFFSET_S) % DAY_S // 60
        return int(prof.generation_w[j, m]), int(prof.load_w[j, m])


class SitePhysics:
    """One site's power flows under its inverter limit; see the module docstring."""

    def __init__(self, fleet: FleetPhysics, site_id: str, clock: Clock, *, start: int | None = None,
                 dgc_export_error_bp: int = 0, dgc_import_error_bp: int = 0) -> None:
        spec = next(s for s in fleet.sim.sites if s.site_id == site_id)
        self.fleet = fleet
        self.site_id = site_id
        self.clock = clock
        self.rated_w = spec.pv_capacity_w  # [W]
        self.limit_w = spec.pv_capacity_w  # the inverter's active-power limit now [W]
        self.dgc_export_error_bp = dgc_export_error_bp
        self.dgc_import_error_bp = dgc_import_error_bp
        self.t = clock.now() if start is None else start  # integrated up to here [unix s]
        self.generation_j = 0  # PV AC energy delivered [J]
        self.import_j = 0  # true grid import [J]
        self.export_j = 0  # true grid export [J]
        self.pv_w = 0
        self.load_w = 0
        self.fixed: dict[int, tuple[int, int]] = {}  # slot end [unix s] → (import, export) [Wh]
        self.last_fixed_at = 0  # the latest fixing time [unix s], 0 = none yet
        self._lock = threading.RLock()

    # --- integration ---------------------------------------------------------------------------

    def advance(self) -> int:
        """Integrate up to the clock's now; returns the simulated time [unix s]."""
        return self.advance_to(self.clock.now())

    def advance_to(self, t: int) -> int:
        with self._lock:
            while self.t < t:
                step_end = min(t, (self.t // 60 + 1) * 60, (self.t // SLOT_S + 1) * SLOT_S)
                avail, load = self.fleet.minute(self.site_id, self.t)
                pv = min(avail, self.limit_w)
                net = load - pv
                dt = step_end - self.t
                self.pv_w, self.load_w = pv, load
                self.generation_j += pv * dt
                if net > 0:
                    self.import_j += net * dt
                else:
                    self.export_j += -net * dt
                self.t = step_end
                if step_end % SLOT_S == 0:
                    self.fixed[step_end] = (self.import_j // J_PER_WH, self.export_j // J_PER_WH)
                    self.last_fixed_at = step_end
                    if len(self.fixed) > 96:  # two days of history, as a real meter keeps
                        del self.fixed[min(self.fixed)]
            return self.t

    def set_limit_w(self, limit_w: int) -> int:
        """The inverter applies a new active-power limit from now on (clamped to 0..rated) [W]."""
        with self._lock:
            self.advance()
            self.limit_w = max(0, min(self.rated_w, limit_w))
            avail, load = self.fleet.minute(self.site_id, self.t)
            self.pv_w, self.load_w = min(avail, self.limit_w), load
            return self.limit_w

    # --- what each meter reads -----------------------------------------------------------------

    def net_power_w(self) -> int:
        """Net power at the grid point now, + import / − export [W] (what E7 reads)."""
        with self._lock:
            self.advance()
            return self.load_w - self.pv_w

    def smart_meter_wh(self) -> tuple[int, int]:
        """The smart meter's true cumulative (import, export) [Wh]."""
        with self._lock:
            self.advance()
            return self.import_j // J_PER_WH, self.export_j // J_PER_WH

    def dgc_meter_wh(self) -> tuple[int, int]:
        """The DGC's own grid meter's cumulative (import, export) [Wh], with its error."""
        with self._lock:
            self.advance()
            imp = self.import_j * (10_000 + self.dgc_import_error_bp) // 10_000
            exp = self.export_j * (10_000 + self.dgc_export_error_bp) // 10_000
            return imp // J_PER_WH, exp // J_PER_WH

    def generation_wh(self) -> int:
        """The inverter's lifetime AC energy [Wh]."""
        with self._lock:
            self.advance()
            return self.generation_j // J_PER_WH

    def pv_power_w(self) -> int:
        with self._lock:
            self.advance()
            return self.pv_w
