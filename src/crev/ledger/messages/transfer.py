"""transfer: a holder sends tradable C-REV to another participant, by lot and quantity (partial
transfers split the lot's unit range, lowest unit ids first).

body = [recipient, [[lot_id, quantity_g], ...], memo]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import NotFoundError, RuleError
from crev.ledger.events import Transferred
from crev.ledger.holdings import move_units
from crev.ledger.messages.common import check_holdings, parse_items
from crev.ledger.params import Params
from crev.ledger.records import TRADABLE
from crev.ledger.shape import need_id, need_list, need_text
from crev.ledger.tx import register


@dataclass(frozen=True, slots=True)
class Transfer:
    kind: ClassVar[str] = "transfer"
    recipient: str
    items: tuple[tuple[str, int], ...]
    memo: str

    def to_body(self) -> list[Any]:
        return [self.recipient, [list(i) for i in self.items], self.memo]

    def handle(self, ctx: Any) -> Any:
        st = ctx.state
        sender = ctx.signer
        recipient = st.accounts.get(self.recipient)
        if recipient is None:
            raise NotFoundError("body.recipient", f"no participant {self.recipient!r}")
        if recipient.account_id == sender.account_id:
            raise RuleError("body.recipient", "cannot transfer to yourself")
        lots = check_holdings(ctx, sender.account_id, self.items, "body.items")
        total = 0
        for lot, (_, q) in zip(lots, self.items, strict=True):
            for _, a, b in move_units(lot, sender.account_id, TRADABLE, q, recipient.account_id, TRADABLE):
                ctx.emit(Transferred(lot.lot_id, sender.account_id, recipient.account_id, a, b))
            st.mark(f"l/{lot.lot_id}")
            total += q
        sender.tradable_g -= total
        recipient.tradable_g += total
        st.mark(f"a/{sender.account_id}")
        st.mark(f"a/{recipient.account_id}")
        return [total]


@register(Transfer.kind)
def from_body(body: Any, params: Params) -> Transfer:
    b = need_list(body, "body", 3)
    return Transfer(need_id(b[0], "body.recipient"), parse_items(b[1], "body.items"),
                    need_text(b[2], "body.memo", params.max_text_len, empty=True))
