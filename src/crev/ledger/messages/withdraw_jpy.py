"""withdraw_jpy: the operator records money paid out of the bank to a participant.

body = [account_id, amount_jpy, reference] or [account_id, amount_jpy, reference, salt]

Only available JPY can be withdrawn: what open bids reserve stays until they fill, are cancelled
or expire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import MalformedError, RuleError
from crev.ledger.blinding import need_blind, next_supply_blind
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
    salt: bytes = b""  # 16 random bytes that re-blind the supply's JPY total; b"" = none

    def to_body(self) -> list[Any]:
        body = [self.account_id, self.amount_jpy, self.reference]
        return [*body, self.salt] if self.salt else body

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
        if self.salt:
            st.supply.jpy_blind = next_supply_blind(st.supply.jpy_blind, self.salt)
        st.mark("s")
        ctx.emit(JpyWithdrawn(acct.account_id, self.amount_jpy, self.reference))
        return [acct.account_id, acct.jpy]


@register(WithdrawJpy.kind)
def from_body(body: Any, params: Params) -> WithdrawJpy:
    b = need_list(body, "body")
    if len(b) not in (3, 4):
        raise MalformedError("body", f"must have 3 elements, or 4 with a salt last; found {len(b)}")
    return WithdrawJpy(need_id(b[0], "body.account_id"), need_int(b[1], "body.amount_jpy", 1, MAX_JPY),
                       need_text(b[2], "body.reference", params.max_text_len),
                       need_blind(b[3], "body.salt") if len(b) == 4 else b"")
