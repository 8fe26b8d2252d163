"""deposit_jpy: the operator records money a participant paid into the registry's bank account.

body = [account_id, amount_jpy, reference]

The ledger's JPY mirrors the bank: every deposit and withdrawal is signed by the operator and
carries the bank reference, so the sum of all accounts always equals what the bank holds for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.ledger.events import JpyDeposited
from crev.ledger.messages.common import existing_account, require_operator
from crev.ledger.params import Params
from crev.ledger.shape import need_id, need_int, need_list, need_text
from crev.ledger.tx import register

MAX_JPY = 10**15  # one quadrillion yen: far above any deposit, far below 2^63


@dataclass(frozen=True, slots=True)
class DepositJpy:
    kind: ClassVar[str] = "deposit_jpy"
    account_id: str
    amount_jpy: int
    reference: str

    def to_body(self) -> list[Any]:
        return [self.account_id, self.amount_jpy, self.reference]

    def handle(self, ctx: Any) -> Any:
        require_operator(ctx)
        st = ctx.state
        acct = existing_account(ctx, self.account_id)
        acct.jpy += self.amount_jpy
        st.supply.jpy += self.amount_jpy
        st.mark(f"a/{acct.account_id}")
        st.mark("s")
        ctx.emit(JpyDeposited(acct.account_id, self.amount_jpy, self.reference))
        return [acct.account_id, acct.jpy]


@register(DepositJpy.kind)
def from_body(body: Any, params: Params) -> DepositJpy:
    b = need_list(body, "body", 3)
    return DepositJpy(need_id(b[0], "body.account_id"), need_int(b[1], "body.amount_jpy", 1, MAX_JPY),
                      need_text(b[2], "body.reference", params.max_text_len))
