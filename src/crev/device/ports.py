"""What the DGC agent needs from a site's devices, in crev's own types.

Two devices stand at a site besides the DGC itself:

* the utility **smart meter** at the grid connection point (the billing truth for grid import
  and export), read over ECHONET Lite (``device/echonet.py``);
* the **PCS** (the PV inverter), read and commanded over SunSpec Modbus (``device/sunspec.py``);
  the DGC's own grid meter (CT sensors at the same connection point) is a SunSpec meter model on
  the same Modbus link.

Adapters turn vendor frames into the values below and raise :class:`crev.errors.DeviceError`
naming the device and field when a device answers wrongly; the agent (``device/agent.py``) sees
nothing vendor-specific. All energies are integers in Wh, powers in W, times in unix seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class MeterRegisters:
    """The smart meter's cumulative registers now (ECHONET Lite 0x0288 E0/E3 × E1 unit × D3)."""

    import_wh: int  # normal direction (bought from the grid) [Wh]
    export_wh: int  # reverse direction (sold to the grid) [Wh]
    resolution_wh: int  # one register step [Wh], at least 1
    modulus_wh: int  # the registers wrap to 0 here (10^D7 digits × one step) [Wh]


@dataclass(frozen=True, slots=True)
class FixedValue:
    """A 30-minute fixed cumulative value (ECHONET Lite 0x0288 EA import / EB export)."""

    at: int  # the fixing time, a 30-minute boundary [unix s]
    wh: int  # the cumulative register at that time [Wh]


@dataclass(frozen=True, slots=True)
class GridMeterRegisters:
    """The DGC's own meter at the grid connection point (SunSpec meter model 201/203)."""

    import_wh: int  # TotWhImp [Wh]
    export_wh: int  # TotWhExp [Wh]
    power_w: int  # net power, + import / − export [W]


@dataclass(frozen=True, slots=True)
class InverterIdentity:
    """SunSpec model 1 (common)."""

    manufacturer: str
    model: str
    serial: str
    rated_w: int  # WRtg of the nameplate model, or the configured rating [W]


@dataclass(frozen=True, slots=True)
class InverterStatus:
    """SunSpec model 101/103 (AC energy and power) and the active-power limit applied (123/704)."""

    energy_wh: int  # lifetime AC energy delivered (WH) [Wh]
    power_w: int  # AC power now (W) [W]
    limit_w: int  # the active-power limit the inverter applies now; rated_w when released [W]


class SmartMeter(Protocol):
    """The utility smart meter over the B-route (ECHONET Lite, low-voltage smart meter 0x0288)."""

    name: str  # for errors and alerts, e.g. "smart-meter 127.0.0.1:3610"

    def registers(self) -> MeterRegisters: ...

    def fixed_values(self) -> tuple[FixedValue, FixedValue]:
        """(import, export) 30-minute fixed values (EA, EB); DeviceError on "no data"."""
        ...

    def instant_power_w(self) -> int:
        """E7: net power at the grid point now, + import / − export [W]."""
        ...

    def history(self, day_offset: int) -> tuple[list[FixedValue], list[FixedValue]]:
        """(import, export) 30-minute fixed values the meter keeps for the JST day ``day_offset``
        days before its today (0..99; E5 then E2/E4), oldest first; "no data" slots are left out.
        DeviceError if the meter has no history or answers wrongly."""
        ...


class Inverter(Protocol):
    """The PCS over SunSpec Modbus."""

    name: str

    def identity(self) -> InverterIdentity: ...

    def status(self) -> InverterStatus: ...

    def set_limit_w(self, limit_w: int) -> int:
        """Set the active-power limit [W] (rated_w releases it); returns what the inverter
        reports it applied [W]. DeviceError if it refuses."""
        ...


class GridMeter(Protocol):
    """The DGC's own grid-point meter."""

    name: str

    def registers(self) -> GridMeterRegisters: ...
