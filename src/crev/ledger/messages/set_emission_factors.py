"""set_emission_factors: the operator loads emission factor rows (e.g. from a CSV), each citing its
source. Rows with the same (key, fiscal_year, kind) replace earlier ones; lots already issued keep
the factor they were issued with.

body = [[key, fiscal_year, kind, g_per_kwh, source, note], ...]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.core.encoding import encode
from crev.core.factors import FactorRow
from crev.core.hashing import sha256
from crev.errors import MalformedError
from crev.ledger.events import EmissionFactorsSet
from crev.ledger.messages.common import require_operator
from crev.ledger.params import Params
from crev.ledger.shape import need_list
from crev.ledger.tx import register


@dataclass(frozen=True, slots=True)
class SetEmissionFactors:
    kind: ClassVar[str] = "set_emission_factors"
    rows: tuple[FactorRow, ...]

    def to_body(self) -> list[Any]:
        return [r.as_list() for r in self.rows]

    def handle(self, ctx: Any) -> Any:
        require_operator(ctx)
        ctx.state.set_factor_rows(list(self.rows))
        ctx.emit(EmissionFactorsSet(len(self.rows), sha256(encode(self.to_body()))))
        return [len(self.rows)]


@register(SetEmissionFactors.kind)
def from_body(body: Any, params: Params) -> SetEmissionFactors:
    items = need_list(body, "body")
    if not items or len(items) > 5000:
        raise MalformedError("body", "must hold 1..5000 rows")
    rows = tuple(FactorRow.from_list(v, f"body[{i}]") for i, v in enumerate(items))
    if len({(r.key, r.fiscal_year, r.kind) for r in rows}) != len(rows):
        raise MalformedError("body", "a (key, fiscal_year, kind) appears twice")
    return SetEmissionFactors(rows)
