"""Consumer figures: what each site and participant sees.

Per slot, from a site's metered energy [Wh] and two factors [g-CO2e/kWh]: the grid area's
average ``f_loc`` (location-based method: the area's basic factor, else the national average) and
the supplier's ``f_mkt`` (market-based method: the adjusted factor, the one issuance also uses):

* ``demand_wh = G + I − E``, ``self_consumed_wh = G − E`` (the metering rule)
* ``location_based_g = ⌈I × f_loc / 1000⌉``: emissions of the electricity drawn from the grid
* ``claimed_g``: C-REV from this slot the participant still holds (tradable or escrowed) or has
  retired. C-REV it sold no longer counts: its self-consumed solar is then reported like grid
  power, so nothing is counted twice.
* ``market_based_g = max(0, ⌈demand × f_mkt / 1000⌉ − claimed_g)``
* ``onsite_share_bp = self_consumed / demand`` (physical), ``renewable_share_bp = claimed_wh /
  demand`` (what the participant may claim), both in basis points (10000 = 100 %)
* ``average_factor_g_per_kwh = ⌈market_based_g × 1000 / demand⌉``

Emissions round up and shares round down: a consumer never under-reports. Totals add the
components first and compute the ratios from the sums.

Why market-based is ``gross − claimed``: under the GHG Protocol's market-based method a
consumer reports with the factor of its supply contract and may count as zero-emission only the
energy whose attributes it holds. A site's self-consumed solar is covered by its own C-REV
(⌊self_consumed × f_issuance / 1000⌋ g, f_issuance = f_mkt); while the site still holds or has
retired that C-REV the solar counts as zero, and once it sells it the buyer claims the reduction
and the seller must report that energy like grid power, so counting all demand at f_mkt and
subtracting the C-REV still claimed gives exactly ``⌈I × f_mkt⌉ + unclaimed solar × f_mkt``
(± rounding). C-REV bought from other sites has no demand of its own (``gross_g = 0``) and
reduces the buyer's total in grams, like any other reduction value; ``max(0, …)`` keeps a total
from going negative.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from crev.core.units import co2_g_ceil


@dataclass(frozen=True, slots=True)
class Figures:
    generation_wh: int
    import_wh: int
    export_wh: int
    demand_wh: int
    self_consumed_wh: int
    location_based_g: int
    gross_g: int  # ⌈demand × f_mkt⌉: the emissions if all demand came from the grid
    claimed_g: int
    claimed_wh: int

    @property
    def market_based_g(self) -> int:
        return max(0, self.gross_g - self.claimed_g)

    @property
    def onsite_share_bp(self) -> int:
        return self.self_consumed_wh * 10_000 // self.demand_wh if self.demand_wh else 0

    @property
    def renewable_share_bp(self) -> int:
        return min(10_000, self.claimed_wh * 10_000 // self.demand_wh) if self.demand_wh else 0

    @property
    def average_factor_g_per_kwh(self) -> int:
        return -(-self.market_based_g * 1000 // self.demand_wh) if self.demand_wh else 0

    def to_dict(self) -> dict[str, int]:
        return {
            "generation_wh": self.generation_wh, "import_wh": self.import_wh,
            "export_wh": self.export_wh, "demand_wh": self.demand_wh,
            "self_consumed_wh": self.self_consumed_wh, "claimed_wh": self.claimed_wh,
            "claimed_g": self.claimed_g, "location_based_g": self.location_based_g,
            "market_based_g": self.market_based_g, "onsite_share_bp": self.onsite_share_bp,
            "renewable_share_bp": self.renewable_share_bp,
            "average_factor_g_per_kwh": self.average_factor_g_per_kwh,
        }


def slot_figures(generation_wh: int, import_wh: int, export_wh: int, factor_g_per_kwh: int,
                 claimed_g: int = 0, claimed_wh: int = 0, market_factor_g_per_kwh: int | None = None) -> Figures:
    """Figures of one site in one slot (see the module doc for the formulas). ``factor_g_per_kwh``
    is f_loc; ``market_factor_g_per_kwh`` is f_mkt (the same if not given)."""
    demand = generation_wh + import_wh - export_wh
    f_mkt = factor_g_per_kwh if market_factor_g_per_kwh is None else market_factor_g_per_kwh
    return Figures(generation_wh, import_wh, export_wh, demand, generation_wh - export_wh,
                   co2_g_ceil(import_wh, factor_g_per_kwh), co2_g_ceil(demand, f_mkt),
                   claimed_g, claimed_wh)


def total(items: Iterable[Figures]) -> Figures:
    g = i = e = d = s = loc = gross = cg = cw = 0
    for f in items:
        g += f.generation_wh
        i += f.import_wh
        e += f.export_wh
        d += f.demand_wh
        s += f.self_consumed_wh
        loc += f.location_based_g
        gross += f.gross_g
        cg += f.claimed_g
        cw += f.claimed_wh
    return Figures(g, i, e, d, s, loc, gross, cg, cw)


def claimed_wh_of(units_g: int, lot_quantity_g: int, lot_self_consumed_wh: int) -> int:
    """The Wh a claim of ``units_g`` out of a lot stands for, rounded down."""
    return lot_self_consumed_wh * units_g // lot_quantity_g if lot_quantity_g else 0
