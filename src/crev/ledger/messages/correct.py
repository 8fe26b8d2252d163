"""correct: the operator corrects an issuance without editing history.

body = [action, lot_id, quantity_g, self_consumed_wh, reason, reference, holder]

* ``cancel``: cancels ``quantity_g`` of the tradable units ``holder`` holds in the lot (lowest
  unit ids first); retired or escrowed units cannot be cancelled. ``self_consumed_wh`` must be 0.
* ``topup``: issues a new lot ``<lot_id>+<n>`` of ``quantity_g`` units for ``self_consumed_wh``
  more Wh of the same interval (for example after reconciling with the utility smart meter) to
  whoever the original lot was issued to. The quantity may not exceed what the factor gives
  for that energy, and the lot's Wh with all its top-ups may not exceed what the device's rated
  capacity can generate in the interval (the same limit readings have). ``holder`` must be "".

``reason`` and ``reference`` (a ticket, a smart-meter statement ...) are required and recorded.
Both count in the slot's tally (ledger/reconcile.py): a cancellation as withdrawn, a top-up as
issued (and a top-up repays the device's reconciliation debt like any new lot). Smart-meter
reconciliation itself is automatic (messages/submit_meter_values.py); this is the operator's
manual path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.core.metering import capacity_limit_wh
from crev.core.units import co2_g_floor
from crev.errors import MalformedError, NotFoundError, RuleError
from crev.ledger.events import Cancelled
from crev.ledger.holdings import available, move_units, shift_balance
from crev.ledger.issuance import issue_lot
from crev.ledger.messages.common import require_operator
from crev.ledger.params import Params
from crev.ledger.reconcile import count_lot, repay_debt, tally_for
from crev.ledger.records import CANCELLED, TRADABLE
from crev.ledger.shape import MAX_U63, need_choice, need_id, need_int, need_list, need_text
from crev.ledger.tx import register


@dataclass(frozen=True, slots=True)
class Correct:
    kind: ClassVar[str] = "correct"
    action: str
    lot_id: str
    quantity_g: int
    self_consumed_wh: int
    reason: str
    reference: str
    holder: str = ""

    def to_body(self) -> list[Any]:
        return [self.action, self.lot_id, self.quantity_g, self.self_consumed_wh, self.reason,
                self.reference, self.holder]

    def handle(self, ctx: Any) -> Any:
        require_operator(ctx)
        st = ctx.state
        lot = st.lots.get(self.lot_id)
        if lot is None:
            raise NotFoundError("body.lot_id", f"no lot {self.lot_id!r}")
        if self.action == "cancel":
            if self.holder not in st.accounts:
                raise NotFoundError("body.holder", f"no participant {self.holder!r}")
            have = available(lot, self.holder, TRADABLE)
            if self.quantity_g > have:
                raise RuleError("body.quantity_g", f"{self.quantity_g} g exceeds the {have} g of "
                                                   f"{self.lot_id} that {self.holder} holds tradable")
            note = f"{self.reason} [{self.reference}]"
            for holder, a, b in move_units(lot, self.holder, TRADABLE, self.quantity_g, None, CANCELLED,
                                           note):
                shift_balance(st.accounts[holder], TRADABLE, CANCELLED, b - a)
                st.mark(f"a/{holder}")
                ctx.emit(Cancelled(lot.lot_id, holder, a, b, self.reason, self.reference))
            st.supply.tradable_g -= self.quantity_g
            st.supply.cancelled_g += self.quantity_g
            tally_for(st, lot.device_id, lot.interval_start).withdrawn_g += self.quantity_g
            st.mark(f"l/{lot.lot_id}")
            st.mark("s")
            return [lot.lot_id, self.quantity_g]
        # top-up
        if lot.origin != "reading":
            raise RuleError("body.lot_id", "top up the original lot, not a top-up")
        limit = co2_g_floor(self.self_consumed_wh, lot.factor_g_per_kwh)
        if self.quantity_g > limit:
            raise RuleError("body.quantity_g", f"{self.quantity_g} g exceeds {limit} g, what "
                                               f"{self.self_consumed_wh} Wh gives at "
                                               f"{lot.factor_g_per_kwh} g/kWh")
        n = 1
        wh = lot.self_consumed_wh + self.self_consumed_wh
        while f"{lot.lot_id}+{n}" in st.lots:
            wh += st.lots[f"{lot.lot_id}+{n}"].self_consumed_wh
            n += 1
        dev = st.devices[lot.device_id]
        cap = capacity_limit_wh(dev.rated_capacity_w, lot.interval_end - lot.interval_start,
                                st.params.capacity_tolerance_bp)
        if wh > cap:
            raise RuleError("body.self_consumed_wh", f"the lot's {wh - self.self_consumed_wh} Wh plus "
                                                     f"{self.self_consumed_wh} Wh exceed the {cap} Wh "
                                                     f"device {dev.device_id} can generate in the interval")
        new = issue_lot(st, ctx.events, lot_id=f"{lot.lot_id}+{n}", device=dev, owner=lot.issued_to,
                        interval_start=lot.interval_start, interval_end=lot.interval_end,
                        self_consumed_wh=self.self_consumed_wh, quantity_g=self.quantity_g,
                        factor_g_per_kwh=lot.factor_g_per_kwh, factor_ref=lot.factor_ref,
                        height=ctx.height, block_time=ctx.time,
                        reading_hash=b"", origin="topup",
                        reference=f"{lot.lot_id}: {self.reason} [{self.reference}]")
        count_lot(st, new)
        repay_debt(ctx, dev, new)
        st.mark(f"d/{dev.device_id}")
        return [new.lot_id, self.quantity_g]


@register(Correct.kind)
def from_body(body: Any, params: Params) -> Correct:
    b = need_list(body, "body", 7)
    msg = Correct(need_choice(b[0], "body.action", ("cancel", "topup")),
                  need_text(b[1], "body.lot_id", 128),
                  need_int(b[2], "body.quantity_g", 1, MAX_U63),
                  need_int(b[3], "body.self_consumed_wh", 0, MAX_U63),
                  need_text(b[4], "body.reason", params.max_text_len),
                  need_text(b[5], "body.reference", params.max_text_len),
                  b[6] if b[6] == "" and b[0] == "topup" else need_id(b[6], "body.holder"))
    if msg.action == "cancel" and msg.self_consumed_wh:
        raise MalformedError("body.self_consumed_wh", "must be 0 for a cancellation")
    if msg.action == "topup" and msg.holder:
        raise MalformedError("body.holder", "must be empty for a top-up (it goes to the lot's owner)")
    if msg.action == "topup" and not msg.self_consumed_wh:
        raise MalformedError("body.self_consumed_wh", "a top-up must state the extra Wh")
    return msg
