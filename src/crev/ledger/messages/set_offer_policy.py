"""set_offer_policy: a device owner's auto-offer. Each new lot of its devices is offered at once,
in the block that issues it: ``share_bp`` of the lot (basis points; the rest is kept, for example
for its own claim) at ``price`` JPY/t-CO2e, good till cancelled, in ``market_id``.

body = [market_id, share_bp, price]; market_id "" removes the policy (open offers stay).

Lots the market's product does not accept, or shares below its minimum, are not offered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import NotFoundError
from crev.ledger.events import OfferPolicySet
from crev.ledger.messages.common import check_price, need_price, open_market
from crev.ledger.params import Params
from crev.ledger.records import OfferPolicy
from crev.ledger.shape import need_id, need_int, need_list
from crev.ledger.tx import register


@dataclass(frozen=True, slots=True)
class SetOfferPolicy:
    kind: ClassVar[str] = "set_offer_policy"
    market_id: str
    share_bp: int
    price: int

    def to_body(self) -> list[Any]:
        return [self.market_id, self.share_bp, self.price]

    def handle(self, ctx: Any) -> Any:
        st = ctx.state
        account = ctx.signer.account_id
        if not self.market_id:
            if account not in st.offer_policies:
                raise NotFoundError("body.market_id", f"{account} has no offer policy to remove")
            del st.offer_policies[account]
        else:
            m = open_market(ctx, self.market_id)
            check_price(m, self.price)
            st.offer_policies[account] = OfferPolicy(account, self.market_id, self.share_bp, self.price)
        st.mark(f"p/{account}")
        ctx.emit(OfferPolicySet(account, self.market_id, self.share_bp, self.price))
        return [account]


@register(SetOfferPolicy.kind)
def from_body(body: Any, params: Params) -> SetOfferPolicy:
    b = need_list(body, "body", 3)
    if b[0] == "":
        return SetOfferPolicy("", need_int(b[1], "body.share_bp", 0, 0), need_int(b[2], "body.price", 0, 0))
    return SetOfferPolicy(need_id(b[0], "body.market_id"), need_int(b[1], "body.share_bp", 1, 10_000),
                          need_price(b[2], "body.price"))
