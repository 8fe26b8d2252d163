"""deposit_jpy: the operator records money a participant paid into the registry's bank account.

body = [account_id, amount_jpy, reference] or [account_id, amount_jpy, reference, salt]

The ledger's JPY mirrors the bank: every deposit and withdrawal is signed by the operator and
carries the bank reference, so the sum of all accounts always equals what the bank holds for them.

``salt`` (16 random bytes the operator's tooling draws; ledger/blinding.py) re-blinds the supply
record's JPY total: its ``jpy_blind`` becomes SHA-256(previous blind ‖ salt)[:16], so that the
record's leaf hash, which public state proofs of its bucket list, cannot be searched for the
total (and so for this deposit's amount). A withdrawal's salt does the same. The account's own
record is blinded by its own ``blind`` (register_participant), not by this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import MalformedError
from crev.ledger.blinding import need_blind, next_supply_blind
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
    salt: bytes = b""  # 16 random bytes that re-blind the supply's JPY total; b"" = none

    def to_body(self) -> list[Any]:
        body = [self.account_id, self.amount_jpy, self.reference]
        return [*body, self.salt] if self.salt else body

    def handle(self, ctx: Any) -> Any:
        require_operator(ctx)
        st = ctx.state
        acct = existing_account(ctx, self.account_id)
        acct.jpy += self.amount_jpy
        st.supply.jpy += self.amount_jpy
        st.mark(f"a/{acct.account_id}")
        if self.salt:
            st.supply.jpy_blind = next_supply_blind(st.supply.jpy_blind, self.salt)
        st.mark("s")
        ctx.emit(JpyDeposited(acct.account_id, self.amount_jpy, self.reference))
        return [acct.account_id, acct.jpy]


@register(DepositJpy.kind)
def from_body(body: Any, params: Params) -> DepositJpy:
    b = need_list(body, "body")
    if len(b) not in (3, 4):
        raise MalformedError("body", f"must have 3 elements, or 4 with a salt last; found {len(b)}")
    return DepositJpy(need_id(b[0], "body.account_id"), need_int(b[1], "body.amount_jpy", 1, MAX_JPY),
                      need_text(b[2], "body.reference", params.max_text_len),
                      need_blind(b[3], "body.salt") if len(b) == 4 else b"")
