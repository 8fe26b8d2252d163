"""market_tick: the market's clock. At block time it expires good-till-time orders, renews standing
bids in a new JST month and clears the call auctions that are due, in that order.

body = [block_time]

Unsigned, like submit_readings: it only does what the block time makes due, so it needs no
authority. The sequencer puts one at the head of a block whenever something is due
(``trading.tick_due``); one that finds nothing due is refused, so it never sits in a block idle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import ConflictError, RuleError
from crev.ledger.params import Params
from crev.ledger.shape import need_list, need_time
from crev.ledger.trading import run_tick, tick_due
from crev.ledger.tx import register


@dataclass(frozen=True, slots=True)
class MarketTick:
    kind: ClassVar[str] = "market_tick"
    block_time: int

    def to_body(self) -> list[Any]:
        return [self.block_time]

    def handle(self, ctx: Any) -> Any:
        if self.block_time != ctx.time:
            raise RuleError("body.block_time", f"is {self.block_time}, this block's time is {ctx.time}")
        if not tick_due(ctx.state, ctx.time):
            raise ConflictError("body.block_time", "nothing is due at this time")
        return run_tick(ctx)


@register(MarketTick.kind)
def from_body(body: Any, params: Params) -> MarketTick:
    b = need_list(body, "body", 1)
    return MarketTick(need_time(b[0], "body.block_time"))
