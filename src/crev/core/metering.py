"""The DGC-C metering rule and the checks a reading must pass.

Per interval, with G = PV generation, I = grid import, E = grid export (all Wh):

* demand = G + I − E                (what the site consumed)
* self-consumed renewable = G − E   (the part of generation used on site)

When generation exceeds demand the site exports and buys nothing; self-consumed = G − E = demand.
When generation falls short, E = 0 and all generation is self-consumed. Both cases are the same two
formulas, which hold in every interval (the brief's two cases are special cases of them).

A DGC also reports its cumulative registers (never-resetting meter counters). Registers wrap at
``REGISTER_MODULUS_WH``; a smaller new value is a rollover only if the wrapped delta is plausible
(see :func:`register_delta`).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Registers count Wh modulo 10**10 (ten decimal digits, as on a 10-digit kWh display × 1000).
REGISTER_MODULUS_WH = 10**10
#: The largest interval value or register the ledger accepts [Wh].
MAX_WH = REGISTER_MODULUS_WH - 1


@dataclass(frozen=True, slots=True)
class IntervalFigures:
    """The metering rule's output for one interval [Wh]."""

    demand_wh: int
    self_consumed_wh: int


def interval_figures(generation_wh: int, import_wh: int, export_wh: int) -> IntervalFigures:
    """Apply the DGC-C metering rule. Inputs must already satisfy ``0 <= E <= G``."""
    return IntervalFigures(
        demand_wh=generation_wh + import_wh - export_wh,
        self_consumed_wh=generation_wh - export_wh,
    )


def capacity_limit_wh(rated_capacity_w: int, interval_s: int, tolerance_bp: int) -> int:
    """The most a PV system of ``rated_capacity_w`` [W] can generate in ``interval_s`` [s],
    plus ``tolerance_bp`` [basis points] for meter and rating tolerance, rounded down [Wh]."""
    return rated_capacity_w * interval_s * (10_000 + tolerance_bp) // (3600 * 10_000)


def register_delta(previous_wh: int, current_wh: int) -> int | None:
    """How far a register advanced [Wh], or None if it went backwards.

    A smaller value is accepted as a rollover only when the register was in the top tenth of its
    range and is now in the bottom tenth; any other decrease is a register going backwards.
    """
    if current_wh >= previous_wh:
        return current_wh - previous_wh
    if previous_wh >= REGISTER_MODULUS_WH * 9 // 10 and current_wh < REGISTER_MODULUS_WH // 10:
        return current_wh + REGISTER_MODULUS_WH - previous_wh
    return None
