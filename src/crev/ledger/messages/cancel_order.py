"""cancel_order: the owner takes its open order out of the book; what it reserved is released.

body = [order_id]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import ConflictError, NotFoundError, PermissionError_
from crev.ledger.params import Params
from crev.ledger.records import OPEN
from crev.ledger.shape import need_list, need_text
from crev.ledger.trading import close_order
from crev.ledger.tx import register


@dataclass(frozen=True, slots=True)
class CancelOrder:
    kind: ClassVar[str] = "cancel_order"
    order_id: str

    def to_body(self) -> list[Any]:
        return [self.order_id]

    def handle(self, ctx: Any) -> Any:
        order = ctx.state.orders.get(self.order_id)
        if order is None:
            raise NotFoundError("body.order_id", f"no order {self.order_id!r}")
        if order.account != ctx.signer.account_id:
            raise PermissionError_("body.order_id", f"{self.order_id} is {order.account}'s order: only "
                                                    "its owner can cancel it")
        if order.status != OPEN:
            raise ConflictError("body.order_id", f"{self.order_id} is no longer open: it was closed "
                                                 f"as {order.status}")
        close_order(ctx, order, "cancelled")
        return [order.order_id, order.remaining_g]


@register(CancelOrder.kind)
def from_body(body: Any, params: Params) -> CancelOrder:
    b = need_list(body, "body", 1)
    return CancelOrder(need_text(b[0], "body.order_id", 32))
