"""Signed smart-meter items and control records for tests (on top of tests/ledger_kit.py)."""

from __future__ import annotations

from typing import Any

from crev.core.encoding import encode
from crev.core.signing import Signer
from crev.ledger.messages.submit_controls import control_payload
from crev.ledger.messages.submit_meter_values import FIELDS as METER_FIELDS
from crev.ledger.messages.submit_meter_values import meter_values_payload
from tests.ledger_kit import CHAIN, key

CONTROL_FIELDS = ("version", "chain_id", "device_id", "seq", "slot_start", "applied_at", "limit_w", "export_cap_w",
                  "reason", "export_limit_w", "export_value_milli_jpy_per_kwh", "crev_price_jpy_per_t",
                  "curtail_below_milli_jpy_per_kwh", "operator_limit_pct")


def meter(start: int, import_wh: int, export_wh: int, *, device: str = "dgc-1", resolution_wh: int = 1,
          regs: tuple[int, int] = (5_000_000, 600_000), meter_id: str = "SM-0001", signer: Signer | None = None,
          **override: Any) -> list[Any]:
    """A signed smart-meter item for the slot starting at ``start``."""
    fields = meter_values_payload(CHAIN, device, start, import_wh, export_wh, regs[0], regs[1], resolution_wh,
                                  meter_id)
    for k, v in override.items():
        fields[METER_FIELDS.index(k)] = v
    return [*fields, (signer or key(f"dev/{device}")).sign(encode(fields))]


def submit_meter(*items: list[Any]) -> bytes:
    return encode(["crev/tx/1", CHAIN, "submit_meter_values", "", 0, list(items), b""])


def control(seq: int, start: int, *, device: str = "dgc-1", applied_at: int | None = None, limit_w: int = 0,
            export_cap_w: int = -1, reason: str = "zero_export", export_limit_w: int = 0,
            export_value: int = 0, crev_price: int = 5_000, curtail_below: int = 1_000,
            operator_limit_pct: int = -1, signer: Signer | None = None, **override: Any) -> list[Any]:
    fields = control_payload(CHAIN, device, seq, start, start + 60 if applied_at is None else applied_at, limit_w,
                             export_cap_w, reason, export_limit_w, export_value, crev_price, curtail_below,
                             operator_limit_pct)
    for k, v in override.items():
        fields[CONTROL_FIELDS.index(k)] = v
    return [*fields, (signer or key(f"dev/{device}")).sign(encode(fields))]


def submit_controls(*items: list[Any]) -> bytes:
    return encode(["crev/tx/1", CHAIN, "submit_controls", "", 0, list(items), b""])
