"""submit_controls: a batch of control records, each signed by its device: what the DGC applied to
the inverter (the PCS active-power limit) and why.

body = [item, ...]; an item is the 15-element array

    [ "crev/control/1", chain_id, device_id, seq, slot_start, applied_at, limit_w, export_cap_w,
      reason, export_limit_w, export_value_milli_jpy_per_kwh, crev_price_jpy_per_t,
      curtail_below_milli_jpy_per_kwh, operator_limit_pct, signature ]

The device signs the canonical encoding of the first fourteen elements.
"""

from __future__ import annotations

from typing import Any

CONTROL_VERSION = "crev/control/1"


def control_payload(chain_id: str, device_id: str, seq: int, slot_start: int, applied_at: int, limit_w: int,
                    export_cap_w: int, reason: str, export_limit_w: int, export_value_milli_jpy_per_kwh: int,
                    crev_price_jpy_per_t: int, curtail_below_milli_jpy_per_kwh: int,
                    operator_limit_pct: int) -> list[Any]:
    """The fourteen signed elements of a control record, in order (sign ``encode(payload)`` and
    append the signature to send it)."""
    return [CONTROL_VERSION, chain_id, device_id, seq, slot_start, applied_at, limit_w, export_cap_w, reason,
            export_limit_w, export_value_milli_jpy_per_kwh, crev_price_jpy_per_t,
            curtail_below_milli_jpy_per_kwh, operator_limit_pct]
