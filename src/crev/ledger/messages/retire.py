"""retire: the final consumption of C-REV against an emission claim. Final: retired units never
move again.

body = [[[lot_id, quantity_g], ...], beneficiary, purpose, period_start, period_end, jurisdiction, note]

``purpose`` says what the claim is for; ``period_start``/``period_end`` (unix s) the reporting
period the reduction is claimed in (for a statutory report: the fiscal year). The retirement id is
``ret-<8 digits>``, in order of retirement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import MalformedError
from crev.ledger.events import Retired
from crev.ledger.holdings import move_units
from crev.ledger.messages.common import check_holdings, parse_items
from crev.ledger.params import Params
from crev.ledger.records import RETIRED, TRADABLE, Retirement
from crev.ledger.shape import need_choice, need_list, need_text, need_time
from crev.ledger.tx import register
from crev.ledger.vocab import PURPOSES


@dataclass(frozen=True, slots=True)
class Retire:
    kind: ClassVar[str] = "retire"
    items: tuple[tuple[str, int], ...]
    beneficiary: str
    purpose: str
    period_start: int
    period_end: int
    jurisdiction: str
    note: str

    def to_body(self) -> list[Any]:
        return [[list(i) for i in self.items], self.beneficiary, self.purpose, self.period_start,
                self.period_end, self.jurisdiction, self.note]

    def handle(self, ctx: Any) -> Any:
        st = ctx.state
        acct = ctx.signer
        lots = check_holdings(ctx, acct.account_id, self.items, "body.items")
        rid = f"ret-{st.supply.retirements + 1:08d}"
        ranges: list[tuple[str, int, int]] = []
        total = 0
        for lot, (_, q) in zip(lots, self.items, strict=True):
            for _, a, b in move_units(lot, acct.account_id, TRADABLE, q, None, RETIRED, rid):
                ranges.append((lot.lot_id, a, b))
                ctx.emit(Retired(rid, acct.account_id, self.beneficiary, self.purpose, lot.lot_id, a, b))
            st.mark(f"l/{lot.lot_id}")
            total += q
        acct.tradable_g -= total
        acct.retired_g += total
        st.supply.tradable_g -= total
        st.supply.retired_g += total
        st.supply.retirements += 1
        st.retirements[rid] = Retirement(rid, acct.account_id, self.beneficiary, self.purpose,
                                         self.period_start, self.period_end, self.jurisdiction,
                                         self.note, ranges, total, ctx.height, ctx.time, ctx.tx_hash)
        st.mark(f"t/{rid}")
        st.mark(f"a/{acct.account_id}")
        st.mark("s")
        return [rid, total]


@register(Retire.kind)
def from_body(body: Any, params: Params) -> Retire:
    b = need_list(body, "body", 7)
    msg = Retire(parse_items(b[0], "body.items"),
                 need_text(b[1], "body.beneficiary", params.max_text_len),
                 need_choice(b[2], "body.purpose", PURPOSES),
                 need_time(b[3], "body.period_start"), need_time(b[4], "body.period_end"),
                 need_text(b[5], "body.jurisdiction", 16),
                 need_text(b[6], "body.note", params.max_text_len, empty=True))
    if msg.period_end <= msg.period_start:
        raise MalformedError("body.period_end", "must be after period_start")
    return msg
