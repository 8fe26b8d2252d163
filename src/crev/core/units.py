"""Units, 30-minute JST slots and the April–March fiscal year.

All quantities are integers: energy in Wh, mass in g-CO2e, money in JPY, time in unix seconds
(UTC). Japan Standard Time is UTC+9 with no daylight saving, and 9 h is a whole number of
30-minute slots, so a slot boundary in UTC is a slot boundary in JST.

A *slot id* is the number of 30-minute slots since the unix epoch: ``slot_id = ts // 1800``.
It is stable, sortable and needs no time zone. Slot *n of the JST day* (0..47, JEPX "koma" 1..48
minus one) is ``slot_of_day``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

SLOT_SECONDS = 1800
SLOTS_PER_DAY = 48
JST_OFFSET_SECONDS = 9 * 3600
JST = timezone(timedelta(hours=9), "JST")

# Interval lengths a DGC may report [s]: whole minutes that divide a 30-minute slot.
ALLOWED_INTERVAL_SECONDS = frozenset(s for s in range(60, SLOT_SECONDS + 1, 60) if SLOT_SECONDS % s == 0)


def slot_id(ts: int) -> int:
    """The slot containing unix time ``ts`` [s]."""
    return ts // SLOT_SECONDS


def slot_start(slot: int) -> int:
    """Unix time [s] at which ``slot`` starts."""
    return slot * SLOT_SECONDS


def slot_of_day(slot: int) -> int:
    """0..47: the slot's position in its JST day (0 = 00:00–00:30 JST)."""
    return (slot * SLOT_SECONDS + JST_OFFSET_SECONDS) // SLOT_SECONDS % SLOTS_PER_DAY


def jst(ts: int) -> datetime:
    """Unix time [s] as an aware JST datetime."""
    return datetime.fromtimestamp(ts, JST)


def jst_label(ts: int) -> str:
    """``2026-11-28T10:30`` in JST: the compact form used in lot ids."""
    return jst(ts).strftime("%Y-%m-%dT%H:%M")


def jst_date(ts: int) -> str:
    return jst(ts).strftime("%Y-%m-%d")


def fiscal_year(ts: int) -> int:
    """Japanese fiscal year (April–March, JST) containing unix time ``ts``: 2026-03-31 → 2025."""
    d = jst(ts)
    return d.year if d.month >= 4 else d.year - 1


def fiscal_year_bounds(fy: int) -> tuple[int, int]:
    """Unix seconds [start, end) of fiscal year ``fy`` in JST."""
    start = datetime(fy, 4, 1, tzinfo=JST)
    end = datetime(fy + 1, 4, 1, tzinfo=JST)
    return int(start.timestamp()), int(end.timestamp())


def parse_time(text: str) -> int:
    """ISO date or date-time → unix seconds. A value without an offset is read as JST."""
    d = datetime.fromisoformat(text)
    if d.tzinfo is None:
        d = d.replace(tzinfo=JST)
    return int(d.astimezone(UTC).timestamp())


# --- rounding: one named function per direction ----------------------------------------------


def co2_g_floor(energy_wh: int, factor_g_per_kwh: int) -> int:
    """g-CO2e avoided by ``energy_wh`` at ``factor_g_per_kwh``, rounded DOWN.

    Used for issuance: the ledger never issues more than was measured.
    """
    return energy_wh * factor_g_per_kwh // 1000


def co2_g_floor_carried(energy_wh: int, factor_g_per_kwh: int, carried_mg: int) -> tuple[int, int]:
    """Issuance for one interval of a slot measured in several intervals (say 1-minute readings).

    ``carried_mg`` is the remainder (0-999 mg) the slot's earlier intervals did not issue. Returns
    (g rounded DOWN, the new remainder in mg). Summed over a slot this issues exactly
    ``co2_g_floor`` of the slot's total energy, never more, where flooring each interval apart
    would lose up to 1 g per interval.
    """
    mg = energy_wh * factor_g_per_kwh + carried_mg
    return mg // 1000, mg % 1000


def co2_g_ceil(energy_wh: int, factor_g_per_kwh: int) -> int:
    """g-CO2e emitted by ``energy_wh`` at ``factor_g_per_kwh``, rounded UP.

    Used for reported emissions: a consumer never under-reports.
    """
    return -(-energy_wh * factor_g_per_kwh // 1000)
