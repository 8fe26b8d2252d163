"""The DGC's PCS control policy: what active-power limit the inverter should apply, and why.

Two layers, both pure functions here (the agent, ``device/agent.py``, does the I/O):

* **The slot decision** (:func:`decide`), once per 30-minute slot and whenever an input changes:
  from the site's export limit (``0`` = no reverse power flow, 逆潮流なし; a cap in W; or none),
  the value the owner gets for exported energy against the owner's threshold, the grid operator's
  output-control schedule (出力制御, a limit in % of the rated power for listed slots) and the
  market's C-REV price (recorded; see :func:`decide` for why it does not move the limit). The
  decision is an export cap [W] at the grid point (or none) and a ceiling on the inverter limit
  [W], with one reason out of :data:`REASONS`.
* **The closed loop** (:func:`loop_limit`), every control tick: from the smart meter's
  instantaneous net power (E7, + import / − export) and the inverter's output now, the inverter
  limit that keeps the export at or below the cap less a margin, and lets PV follow the load up
  again when the load rises.

Units: powers in W, prices of exported energy in milli-JPY per kWh, the C-REV price in JPY per
t-CO2e (the market's unit), times in unix seconds.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from crev.core.units import SLOT_SECONDS, parse_time
from crev.errors import MalformedError

#: The reasons a control record may give, most binding first.
REASONS = ("grid_operator", "zero_export", "export_unpaid", "export_cap", "released")


@dataclass(frozen=True, slots=True)
class OperatorWindow:
    """One entry of the grid operator's output-control schedule: [start, end) at ``limit_pct``."""

    start: int  # [unix s], on a slot boundary
    end: int  # [unix s], on a slot boundary, after start
    limit_pct: int  # the PCS may deliver at most this share of its rated power [%], 0..100


@dataclass(frozen=True, slots=True)
class Policy:
    """The owner's and the grid contract's inputs (config ``[sites.control]``)."""

    export_limit_w: int | None  # the connection contract's export cap [W]; 0 = no reverse flow; None = none
    export_value_milli_jpy_per_kwh: int  # what exported energy earns (FIT, buy-back) [milli-JPY/kWh]
    curtail_below_milli_jpy_per_kwh: int  # the owner curtails export worth less than this [milli-JPY/kWh]


@dataclass(frozen=True, slots=True)
class Decision:
    """The slot's decision: the reason, the export cap at the grid point and the inverter ceiling."""

    slot_start: int  # [unix s]
    reason: str  # one of REASONS
    export_cap_w: int | None  # export allowed at the grid point [W]; None = no cap
    ceiling_w: int  # the inverter limit never exceeds this [W] (rated unless the grid operator limits)
    operator_limit_pct: int | None  # [%], None when the schedule has no window for this slot
    crev_price_jpy_per_t: int  # the C-REV price seen [JPY/t-CO2e], 0 = none known


def parse_schedule(text: str, where: str = "schedule") -> tuple[OperatorWindow, ...]:
    """The grid operator's output-control schedule from CSV text.

    One window a line: ``start,end,limit_pct`` with ISO times (JST if no offset) on 30-minute
    boundaries, e.g. ``2026-05-03T10:00,2026-05-03T15:00,0``. Blank lines and lines starting with
    ``#`` are skipped; a header line ``start,end,limit_pct`` is allowed. Raises MalformedError
    naming ``<where>[line n].<field>``."""
    out: list[OperatorWindow] = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in row]
        if n == 1 and cells[:3] == ["start", "end", "limit_pct"]:
            continue
        at = f"{where}[line {n}]"
        if len(cells) != 3:
            raise MalformedError(at, f"expected 3 fields start,end,limit_pct, found {len(cells)}")
        times = []
        for name, cell in zip(("start", "end"), cells[:2], strict=True):
            try:
                t = parse_time(cell)
            except ValueError:
                raise MalformedError(f"{at}.{name}", f"{cell!r} is not an ISO date-time") from None
            if t % SLOT_SECONDS:
                raise MalformedError(f"{at}.{name}", f"{cell} is not on a 30-minute boundary")
            times.append(t)
        if times[1] <= times[0]:
            raise MalformedError(f"{at}.end", "must be after start")
        try:
            pct = int(cells[2])
        except ValueError:
            raise MalformedError(f"{at}.limit_pct", f"{cells[2]!r} is not an integer") from None
        if not 0 <= pct <= 100:
            raise MalformedError(f"{at}.limit_pct", f"must be 0..100, found {pct}")
        out.append(OperatorWindow(times[0], times[1], pct))
    return tuple(out)


def operator_limit_pct(schedule: tuple[OperatorWindow, ...], slot_start: int) -> int | None:
    """The grid operator's limit for the slot starting at ``slot_start`` [%]: the lowest of the
    windows covering it, None if none does."""
    return min((w.limit_pct for w in schedule if w.start <= slot_start < w.end), default=None)


def export_unpaid(policy: Policy) -> bool:
    """Exported energy is worth less to the owner than the owner's threshold."""
    return policy.export_value_milli_jpy_per_kwh < policy.curtail_below_milli_jpy_per_kwh


def decide(policy: Policy, rated_w: int, slot_start: int, operator_pct: int | None,
           crev_price_jpy_per_t: int) -> Decision:
    """The slot's decision.

    * The grid operator's limit (< 100 %) caps the inverter at ``rated_w × pct / 100`` (floor) and
      is the reason whatever else applies (it is an order, the others are choices or contracts).
    * A contract export limit of 0 W (no reverse power flow) gives ``zero_export``.
    * Export worth less than the owner's threshold gives ``export_unpaid``: curtail to consumption
      (cap 0 W at the grid point).
    * A contract cap above 0 W gives ``export_cap``.
    * Otherwise ``released``: no cap, the inverter at its rating.

    The C-REV price is recorded but moves nothing: C-REV is issued for self-consumed energy
    (generation − export), and curtailing only removes exported energy, which earns no C-REV
    either way. The price would matter to a decision that moves energy into self-consumption
    (storage, load shifting); this DGC has none."""
    ceiling = rated_w if operator_pct is None else rated_w * operator_pct // 100
    caps = [c for c in (policy.export_limit_w, 0 if export_unpaid(policy) else None) if c is not None]
    cap = min(caps) if caps else None
    if operator_pct is not None and operator_pct < 100:
        reason = "grid_operator"
    elif policy.export_limit_w == 0:
        reason = "zero_export"
    elif export_unpaid(policy):
        reason = "export_unpaid"
    elif cap is not None:
        reason = "export_cap"
    else:
        reason = "released"
    return Decision(slot_start, reason, cap, ceiling, operator_pct, crev_price_jpy_per_t)


def loop_limit(net_w: int, pv_w: int, export_cap_w: int | None, ceiling_w: int, margin_w: int) -> int:
    """The inverter limit for the next control tick [W].

    ``net_w`` is the grid point's net power now (+ import / − export, the smart meter's E7) and
    ``pv_w`` the inverter's output now, so the load is ``net_w + pv_w``. With a cap the PV may
    cover the load plus ``export_cap_w − margin_w``; without one the limit is the ceiling. The
    result is clamped to 0..``ceiling_w``."""
    if export_cap_w is None:
        return ceiling_w
    load = net_w + pv_w
    return max(0, min(ceiling_w, load + export_cap_w - margin_w))
