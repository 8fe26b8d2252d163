"""Certificates (lots) and retirements as flat rows for CSV and JSON export."""

from __future__ import annotations

from typing import Any

from crev.core.units import jst
from crev.ledger.holdings import available
from crev.ledger.records import CANCELLED, ESCROWED, RETIRED, TRADABLE
from crev.ledger.state import State


def lot_rows(state: State) -> list[dict[str, Any]]:
    out = []
    for lot in sorted(state.lots.values(), key=lambda x: x.first_unit):
        out.append({
            "lot_id": lot.lot_id, "first_unit": lot.first_unit, "last_unit": lot.end_unit - 1,
            "quantity_g": lot.quantity_g, "device_id": lot.device_id, "issued_to": lot.issued_to,
            "interval_start_jst": jst(lot.interval_start).isoformat(),
            "interval_end_jst": jst(lot.interval_end).isoformat(), "slot_id": lot.slot_id,
            "self_consumed_wh": lot.self_consumed_wh, "factor_g_per_kwh": lot.factor_g_per_kwh,
            "factor": lot.factor_ref, "factor_source": state.factor_source(lot.factor_ref),
            "technology": lot.technology,
            "latitude": lot.latitude_e6 / 1e6, "longitude": lot.longitude_e6 / 1e6,
            "grid_area": lot.grid_area, "fit": lot.fit, "height": lot.height,
            "issued_at_jst": jst(lot.block_time).isoformat(), "reading_hash": lot.reading_hash.hex(),
            "origin": lot.origin, "reference": lot.reference,
            "tradable_g": available(lot, None, TRADABLE), "escrowed_g": available(lot, None, ESCROWED),
            "retired_g": available(lot, None, RETIRED), "cancelled_g": available(lot, None, CANCELLED),
        })
    return out


def retirement_rows(state: State) -> list[dict[str, Any]]:
    out = []
    for r in sorted(state.retirements.values(), key=lambda x: x.retirement_id):
        out.append({
            "retirement_id": r.retirement_id, "account": r.account, "beneficiary": r.beneficiary,
            "purpose": r.purpose, "period_start_jst": jst(r.period_start).date().isoformat(),
            "period_last_day_jst": jst(r.period_end - 1).date().isoformat(), "jurisdiction": r.jurisdiction,
            "note": r.note, "quantity_g": r.quantity_g, "height": r.height,
            "retired_at_jst": jst(r.block_time).isoformat(), "tx_hash": r.tx_hash.hex(),
            "unit_ranges": ";".join(f"{lot}:{a}-{b - 1}" for lot, a, b in r.ranges),
        })
    return out
