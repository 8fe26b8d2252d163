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
        return p
