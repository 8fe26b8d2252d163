"""withdraw_jpy: the operator records money paid out of the bank to a participant.

body = [account_id, amount_jpy, reference]

Only available JPY can be withdrawn: what open bids reserve stays until they fill, are cancelled
or expire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import RuleError
from crev.ledger.events import JpyWithdrawn
from crev.ledger.messages.common import existing_account, require_operator
from crev.ledger.messages.deposit_jpy import MAX_JPY
from crev.ledger.params import Params
from crev.ledger.shape import need_id, need_int, need_list, need_text
from crev.ledger.tx import register


@dataclass(frozen=True, slots=True)
class WithdrawJpy:
    kind: ClassVar[str] = "withdraw_jpy"
    account_id: str
    amount_jpy: int
    reference: str

    def to_body(self) -> list[Any]:
        return [self.account_id, self.amount_jpy, self.reference]

    def handle(self, ctx: Any) -> Any:
        require_operator(ctx)
        st = ctx.state
        acct = existing_account(ctx, self.account_id)
        if self.amount_jpy > acct.jpy:
            raise RuleError("body.amount_jpy", f"{self.amount_jpy} JPY exceeds the {acct.jpy} JPY "
                                               f"{acct.account_id} has available "
                                               f"({acct.jpy_escrowed} JPY more are reserved by open bids)")
        acct.jpy -= self.amount_jpy
        st.supply.jpy -= self.amount_jpy
        st.mark(f"a/{acct.account_id}")
        st.mark("s")
        ctx.emit(JpyWithdrawn(acct.account_id, self.amount_jpy, self.reference))
        return [acct.account_id, acct.jpy]


@register(WithdrawJpy.kind)
def from_body(body: Any, params: Params) -> WithdrawJpy:
    b = need_list(body, "body", 3)
    return WithdrawJpy(need_id(b[0], "body.account_id"), need_int(b[1], "body.amount_jpy", 1, MAX_JPY),
                       need_text(b[2], "body.reference", params.max_text_len))
