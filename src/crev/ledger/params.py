"""Chain parameters, fixed at genesis and part of what every node must agree on."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from crev.errors import MalformedError


@dataclass(frozen=True, slots=True)
class Params:
    max_tx_bytes: int = 4 * 1024 * 1024
    max_batch_readings: int = 20_000
    capacity_tolerance_bp: int = 500  # 5 %: meter class and nameplate tolerance
    max_future_s: int = 300  # a reading's interval may end at most this far after block time
    issuance_factor_kind: str = "adjusted"
    state_tree_depth: int = 16
    max_text_len: int = 256
    # Reconciliation with the utility smart meter (see ledger/reconcile.py). The tolerance is the
    # accuracy class of an ordinary Japanese watt-hour meter: JIS C 1211 class 2 (±2 %).
    reconcile_tolerance_bp: int = 200  # [bp of the smart meter's value]
    reconcile_floor_wh: int = 10  # [Wh] added to the meter's register resolution: the least tolerance
    final_after_s: int = 86_400  # [s] after a slot's end, a slot with no smart-meter values is final
    drift_alert_slots: int = 3  # consecutive reconciled slots out of tolerance that raise CalibrationDrift

    def to_value(self) -> list[Any]:
        return list(asdict(self).values())

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Params:
        known = set(Params.__dataclass_fields__)
        for k, v in d.items():
            if k not in known:
                raise MalformedError(f"params.{k}", "unknown parameter")
            if k != "issuance_factor_kind" and type(v) is not int:
                raise MalformedError(f"params.{k}", "must be an integer")
        p = Params(**d)
        if p.issuance_factor_kind not in ("national_average", "basic", "adjusted"):
            raise MalformedError("params.issuance_factor_kind", "must be national_average, basic or adjusted")
        for name, low, high in (("reconcile_tolerance_bp", 0, 10_000), ("reconcile_floor_wh", 0, 1_000_000),
                                ("final_after_s", 1800, 366 * 86_400), ("drift_alert_slots", 1, 10_000)):
            if not low <= getattr(p, name) <= high:
                raise MalformedError(f"params.{name}", f"must be {low} .. {high}")
        return p
